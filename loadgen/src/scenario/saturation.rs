//! Saturation: a closed loop. `--window` echo requests outstanding on each of
//! `--sat-conns` connections for `--seconds` (each answer sends the next request at once):
//! the most requests per second the server answers, their round trip (from the actual send:
//! in a closed loop nothing waits to be sent), and the CPU per request of both processes.
use super::echo::run_echo;
use super::Ctx;
use crate::report::{Percentiles, Results, Unit};

/// Runs the saturation scenario.
pub fn run(cx: Ctx<'_>, res: &mut Results) -> Result<(), String> {
    let Ctx {
        opts,
        pool,
        server,
        sessions,
    } = cx;
    const S: &str = "saturation";
    let conns = opts.sat_conns.min(sessions);
    let run = run_echo(
        pool,
        server,
        conns,
        None,
        opts.window,
        opts.seconds,
        opts.pacer,
    )?;
    let c = &run.counts;
    if c.ok == 0 {
        res.row(S, "responses", "responses".into(), 0.0, "responses");
        return Err("no echo response".into());
    }
    if c.bad > 0 || c.ok < c.sent {
        res.warnings.push(format!(
            "saturation: {} of {} requests answered, {} bad responses",
            c.ok, c.sent, c.bad
        ));
    }
    res.row(
        S,
        "req_per_s",
        format!(
            "max req/s (closed loop, {conns} conns × {} outstanding, {} s)",
            opts.window, opts.seconds
        ),
        run.rate(),
        "req/s",
    );
    let what = format!(
        "request round trip, closed loop ({conns} conns × {} outstanding)",
        opts.window
    );
    let rtt = Percentiles::new("rtt", "round trip", Unit::Millis, what);
    res.percentiles(S, rtt, &c.rtt);
    res.cpu_per(
        S,
        "server_cpu_per_req",
        "server CPU per request",
        run.server_cpu_ns,
        c.ok,
    );
    if let Some(ns) = run.server_cpu_ns {
        res.row(
            S,
            "server_cpu",
            "server CPU (of one core)".into(),
            100.0 * ns as f64 / 1e9 / run.secs,
            "%",
        );
    }
    res.loadgen_cpu(S, run.loadgen_cpu);
    Ok(())
}
