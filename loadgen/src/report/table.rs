//! The table on stdout: a header (machine, settings, CPU method), the rows, the machine's CPU
//! split, warnings, notes and the result.

use super::Report;
use crate::cli::Opts;
use crate::server::Server;
use std::collections::BTreeMap;

/// A value for people: thousands separated, 3 significant figures below 1000, `n/a`.
pub fn fmt_value(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "n/a".into();
    };
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

// === the run =================================================================================

/// The settings of the run, in one line.
pub fn settings_line(opts: &Opts, server: &Server, heartbeat: Option<u64>) -> String {
    let who = if opts.spawn_gate {
        format!(
            "spawned example gate (pid {}, {} I/O threads)",
            server.pid.unwrap_or(0),
            opts.threads
        )
    } else {
        match server.pid {
            Some(pid) => format!("server pid {pid}"),
            None => "server pid unknown (no CPU/RSS figures; pass --server-pid)".into(),
        }
    };
    format!(
        "server {} — {who}, heartbeat {}; clients {} on {} loadgen thread(s); {} blast(s) of {} rounds × {} B; \
         {} fan-outs; echo {}/s over {} conns; saturation {} conns × {}; {} s per timed scenario",
        server.addr,
        heartbeat.map_or("off".into(), |h| format!("{h} s")),
        opts.clients,
        opts.client_threads,
        opts.blast_runs,
        opts.rounds,
        opts.size,
        opts.fanouts,
        opts.rate,
        opts.echo_conns,
        opts.sat_conns,
        opts.window,
        opts.seconds
    )
}

/// Prints the table; `notes` are the client threads' counted reasons (failed setups are
/// summed up in a warning already).
pub fn print(r: &Report<'_>, notes: &BTreeMap<String, u64>) {
    let Report {
        opts,
        header: h,
        server,
        heartbeat,
        res,
        shares,
        load_end,
    } = *r;
    println!(
        "gatehouse loadgen — machine: {}, nproc {}, Linux {}; load average {} at start, {} at end",
        h.cpu, h.nproc, h.kernel, h.load_start, load_end
    );
    println!("{}", settings_line(opts, server, heartbeat));
    println!(
        "server CPU: /proc/PID/task/*/schedstat (ns), /proc/PID/stat ticks when threads exited (CLK_TCK {}{})",
        h.tck,
        if h.tck_measured { "" } else { ", assumed" }
    );
    let values: Vec<String> = res.rows.iter().map(|r| fmt_value(r.value)).collect();
    let w_s = res
        .rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let w_f = res
        .rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let w_v = values.iter().map(|v| v.len()).max().unwrap_or(5).max(5);
    println!();
    println!(
        "{:<w_s$}  {:<w_f$}  {:>w_v$}  unit",
        "scenario", "figure", "value"
    );
    println!("{:-<w_s$}  {:-<w_f$}  {:->w_v$}  {:-<10}", "", "", "", "");
    for (r, v) in res.rows.iter().zip(&values) {
        if r.value.is_none() && r.unit.is_empty() {
            println!("{:<w_s$}  {}", r.scenario, r.figure);
        } else {
            let pad = w_f - r.figure.chars().count();
            println!(
                "{:<w_s$}  {}{:pad$}  {:>w_v$}  {}",
                r.scenario, r.figure, "", v, r.unit
            );
        }
    }
    println!();
    if let Some(s) = shares {
        println!(
            "machine CPU during the scenarios: {:.0}% busy (of {} cores) = gate {} + loadgen {:.0}% + other processes {}",
            s.machine,
            h.nproc,
            s.server.map_or("?".into(), |v| format!("{v:.0}%")),
            s.loadgen,
            s.server.map_or("?".into(), |v| format!("{:.0}%", (s.machine - v - s.loadgen).max(0.0)))
        );
    }
    for w in &res.warnings {
        println!("warning: {w}");
    }
    for (note, count) in notes {
        if !note.starts_with("setup") {
            println!("note: {count}× {note}");
        }
    }
    if res.failures.is_empty() {
        println!("result: all scenarios ran");
    } else {
        for f in &res.failures {
            println!("FAILED: {f}");
        }
    }
}
