//! Fan-out: `--fanouts` blasts of one round, one after the other: the delivery latency of a
//! single broadcast to every client (request → each push, a histogram), and when the last
//! client got it.
use super::blast::run_blast;
use super::push_budget;
use super::Ctx;
use crate::latency::Latency;
use crate::report::{Percentiles, Quantile, Results, Unit};

/// Runs the fan-out scenario.
pub fn run(cx: Ctx<'_>, res: &mut Results) -> Result<(), String> {
    let Ctx {
        opts,
        pool,
        server,
        sessions,
    } = cx;
    const S: &str = "fanout";
    if opts.fanouts == 0 {
        return Ok(());
    }
    pool.watch_server(server);
    pool.progress.begin(
        format!("fanout: {} broadcasts to {sessions} clients", opts.fanouts),
        None,
    );
    let mut lat = Latency::new();
    let mut last = Latency::new();
    let mut got = 0;
    let mut expected = 0;
    for _ in 0..opts.fanouts {
        let run = run_blast(pool, 1, opts.size, push_budget(sessions, 1))?;
        got += run.got;
        expected += run.uids;
        for a in &run.arrivals {
            lat.record_ns(a.saturating_sub(run.sent_ns));
        }
        if let Some(m) = run.arrivals.iter().max() {
            last.record_ns(m.saturating_sub(run.sent_ns));
        }
    }
    let cpu = pool.server_cpu();
    pool.progress.end();
    if got == 0 {
        return Err("no push arrived".into());
    }
    if got < expected {
        res.warnings
            .push(format!("fanout: {got} of {expected} pushes arrived"));
    }
    let what = format!(
        "broadcast delivery latency, request → each push ({} single-round blasts to {sessions} clients)",
        opts.fanouts
    );
    let latency = Percentiles::new("latency", "latency", Unit::Millis, what)
        .p50(format!(
            "{} broadcasts to {sessions} clients: latency p50",
            opts.fanouts
        ))
        .p99("latency p99 (request → push)".into());
    res.percentiles(S, latency, &lat);
    let complete = "broadcast complete (last client) p50";
    res.quantile(
        S,
        "complete",
        Quantile::P50,
        complete.into(),
        &last,
        Unit::Millis,
    );
    res.cpu_per(
        S,
        "server_cpu_per_push",
        "server CPU per push (incl. request, thread spawn)",
        cpu.map(|(ns, _)| ns),
        got,
    );
    Ok(())
}
