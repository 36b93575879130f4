//! Hold: every session open, idle but for heartbeats, for `--hold` seconds (default 2.5
//! heartbeat intervals), then a check that the server still has all of them: the capacity
//! figure (bench/capacity.sh runs it at 10,000 clients and more). Not in the default set.
use super::MemBefore;
use crate::cli::Opts;
use crate::client::Pool;
use crate::cpu::CpuWatch;
use crate::proc::vm_rss;
use crate::report::Results;
use crate::server::Server;
use std::time::{Duration, Instant};

/// Runs the hold scenario.
pub fn run(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    before: &MemBefore,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "hold";
    pool.refresh_status()?;
    let heartbeat = pool.heartbeat();
    let secs = opts
        .hold
        .unwrap_or_else(|| heartbeat.map_or(10.0, |h| h as f64 * 2.5));
    let (closes0, beats0) = (pool.unexpected_closes(), pool.heartbeats_in());
    eprintln!(
        "loadgen: scenario hold: {sessions} sessions for {secs:.0} s (heartbeat {})",
        heartbeat.map_or("off".into(), |h| format!("{h} s"))
    );
    pool.progress.begin(
        format!("hold: {sessions} sessions"),
        Some(Duration::from_secs_f64(secs)),
    );
    let mut watch = CpuWatch::new(server.pid, server.tck);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut next_line = start + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_line {
            next_line += Duration::from_secs(10);
            pool.refresh_status()?;
            let line = format!(
                "loadgen: hold: {:.0} s of {secs:.0}, {} connection(s) lost so far, {} heartbeats received",
                now.duration_since(start).as_secs_f64(),
                pool.unexpected_closes() - closes0,
                pool.heartbeats_in() - beats0
            );
            pool.progress.say(&line);
        }
        if let Some(w) = watch.as_mut() {
            w.poke();
        }
        pool.progress.tick();
        std::thread::sleep((end - now).min(Duration::from_millis(200)));
    }
    pool.progress.end();
    let cpu = watch.and_then(CpuWatch::finish);
    pool.refresh_status()?;
    let lost = pool.unexpected_closes() - closes0;
    let beats = pool.heartbeats_in() - beats0;
    let stats = pool.stats()?;
    res.row(S, "seconds", "held for".into(), secs, "s");
    let alive = stats["sessions"].as_u64();
    if let Some(n) = alive {
        res.row(
            S,
            "sessions",
            "sessions alive at the end (stats route, incl. control)".into(),
            n as f64,
            "sessions",
        );
    }
    if let Some(b) = stats["bound"].as_u64() {
        res.row(S, "bound", "bound uids at the end".into(), b as f64, "uids");
    }
    res.row(
        S,
        "lost",
        "client connections lost while holding".into(),
        lost as f64,
        "connections",
    );
    res.row(
        S,
        "heartbeats",
        "HEARTBEATs received by the clients while holding".into(),
        beats as f64,
        "packages",
    );
    if let Some((ns, wall)) = cpu {
        res.row(
            S,
            "server_cpu",
            format!("server CPU while holding {sessions} sessions"),
            100.0 * ns as f64 / wall.as_nanos() as f64,
            "% of a core",
        );
    }
    if let Some(b) = server.pid.and_then(vm_rss) {
        res.row(
            S,
            "rss_end",
            "server VmRSS at the end".into(),
            b as f64 / 1048576.0,
            "MiB",
        );
        if let Some(a) = before.vm_rss {
            res.row(
                S,
                "rss_per_session",
                "RSS per held session at the end (VmRSS delta)".into(),
                (b as f64 - a as f64) / sessions as f64,
                "B/session",
            );
        }
    }
    if heartbeat.is_some() && secs >= 2.0 * heartbeat.unwrap_or(0) as f64 && beats == 0 {
        res.warnings
            .push("hold: heartbeats are on, but no client received one".into());
    }
    if lost > 0 || alive.is_some_and(|n| n < sessions as u64 + 1) {
        return Err(format!(
            "{lost} of {sessions} connection(s) lost while holding; the server reports {} sessions",
            alive.map_or("?".into(), |n| n.to_string())
        ));
    }
    Ok(())
}
