//! Echo: an open loop. `--rate` echo requests per second, round-robin over `--echo-conns`
//! connections, for `--seconds`; the round trip of each.
//!
//! No coordinated omission: each request has an intended send time, `start + i / rate` (per
//! client thread: its share of the rate, its first request offset so the threads interleave),
//! and carries that time in its body (`{"t":ns}`, echoed back). The round trip is measured
//! from the intended time, not from when the request actually left. So when the server (or
//! the load generator) stalls, the requests that should have gone out meanwhile are still
//! sent — late — and their wait counts in the figures, instead of the stall delaying the
//! schedule and hiding behind one slow sample. Every request intended before the end is
//! sent. To keep the load generator's own lateness small, a pacer thread wakes each client
//! thread at its send times, to the microsecond (the client threads' mio poll timeouts are
//! only to the millisecond; see [`Pool::pace`]); what lateness remains is part of every
//! round trip, and shown on its own as the send lag (actual − intended send time).
//!
//! The pacer's wait (`--pacer`) is a trade-off. `spin` (the default) sleeps to 80 µs before
//! each send time, then yields until it: the send lag is ~10 µs, but the yielding costs a few %
//! of a core right before each send — on a 2-core box, a core the server may want at that
//! moment. `sleep` sleeps to the send time itself: no spinning, but the send lag is the timer
//! slack, ~50–80 µs on a busy 2-core box. Either way the lag is in the round trip above.
//!
//! The same answers are also timed from when each request actually left (`echo.rtt_sent_*`):
//! the server echoes only the intended time, so the client keeps each outstanding request's
//! actual send instant by its pomelo request id (a bounded record per connection, see
//! `client::sent`). That round trip leaves out the send lag; the gap between the two is the
//! load generator's own lateness. An answer whose id has no send time on record is counted (a
//! warning), not timed.
//!
//! Figures: responses, the achieved rate, RTT p50 … p99.99 and max, the load generator's send
//! lag p50 and p99, the round trip from the actual send p50, p99 and p99.9, the server's CPU
//! per request. [`run_echo`] also serves the closed-loop saturation scenario.
use super::Ctx;
use crate::client::{Cmd, EchoCounts, Pacer, Pool, Report};
use crate::cpu::{self_cpu, self_cpu_since};
use crate::report::{Percentiles, Quantile, Results, Unit};
use crate::server::Server;
use std::time::{Duration, Instant};

/// The echo requests of one run, over all client threads.
pub struct EchoRun {
    /// The requests, summed over the client threads.
    pub counts: EchoCounts,
    /// The timed window's length.
    pub secs: f64,
    /// Server CPU over the run.
    pub server_cpu_ns: Option<u64>,
    /// The load generator's CPU and the wall time.
    pub loadgen_cpu: Option<(u64, Duration)>,
}

impl EchoRun {
    /// Answers per second in the timed window.
    pub fn rate(&self) -> f64 {
        self.counts.ok_in_window as f64 / self.secs
    }
}

/// Runs echo requests on `conns` connections for `secs`: open loop at `rate`, or closed loop
/// with `window` outstanding per connection.
pub fn run_echo(
    pool: &mut Pool,
    server: &Server,
    conns: usize,
    rate: Option<u64>,
    window: usize,
    secs: f64,
    pacer: Pacer,
) -> Result<EchoRun, String> {
    let n = pool.len();
    let per = |w: usize| conns / n + usize::from(w < conns % n);
    let dur = Duration::from_secs_f64(secs);
    let drain = Duration::from_secs(5);
    pool.watch_server(server);
    let me0 = self_cpu();
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + dur;
    // Each thread's share of the rate: its interval and its first intended send time.
    let open: Vec<Option<(Duration, Instant)>> = (0..n)
        .map(|w| {
            rate.filter(|_| per(w) > 0).map(|r| {
                let share = (r as f64 * per(w) as f64 / conns as f64).max(1e-3);
                let interval = Duration::from_secs_f64(1.0 / share);
                (interval, start + interval.mul_f64(w as f64 / n as f64))
            })
        })
        .collect();
    pool.broadcast(|w| Cmd::Echo {
        conns: per(w),
        open: open[w],
        window,
        end,
        drain,
    })?;
    let mut pacers = Vec::new();
    for (w, o) in open.iter().enumerate() {
        if let Some((interval, first)) = *o {
            pacers.push(pool.pace(w, first, interval, end, pacer)?);
        }
    }
    pool.progress.begin(
        match rate {
            Some(r) => format!("echo: {r} req/s over {conns} conns"),
            None => format!("saturation: {conns} conns × {window} outstanding"),
        },
        Some(dur),
    );
    let reports = pool.gather(n, dur + drain + Duration::from_secs(10));
    pool.progress.end();
    for p in pacers {
        let _ = p.join();
    }
    let reports = reports?;
    let server_cpu_ns = pool.server_cpu().map(|(ns, _)| ns);
    let loadgen_cpu = self_cpu_since(&me0, server.tck);
    let mut run = EchoRun {
        counts: EchoCounts::default(),
        secs,
        server_cpu_ns,
        loadgen_cpu,
    };
    for (_, r) in reports {
        if let Report::Echo(counts) = r {
            run.counts.add(&counts);
        }
    }
    Ok(run)
}

/// Runs the echo scenario.
pub fn run(cx: Ctx<'_>, res: &mut Results) -> Result<(), String> {
    let Ctx {
        opts,
        pool,
        server,
        sessions,
    } = cx;
    const S: &str = "echo";
    let conns = opts.echo_conns.min(sessions);
    let run = run_echo(
        pool,
        server,
        conns,
        Some(opts.rate),
        1,
        opts.seconds,
        opts.pacer,
    )?;
    let c = &run.counts;
    res.row(
        S,
        "responses",
        format!(
            "responses (of {} sent at {}/s over {conns} conns, {} s)",
            c.sent, opts.rate, opts.seconds
        ),
        c.ok as f64,
        "responses",
    );
    if c.ok == 0 {
        return Err("no echo response".into());
    }
    if c.ok < c.sent || c.bad > 0 {
        res.warnings.push(format!(
            "echo: {} of {} requests answered, {} bad responses",
            c.ok, c.sent, c.bad
        ));
    }
    res.row(S, "rate", "achieved rate".into(), run.rate(), "req/s");
    let what = format!(
        "request round trip at {} req/s (open loop, from the intended send time)",
        opts.rate
    );
    let rtt = Percentiles::new("rtt", "round trip", Unit::Micros, what);
    res.percentiles(S, rtt, &c.rtt);
    // The load generator's own lateness, part of every round trip above: how far behind
    // schedule the requests left.
    let p50 = "loadgen send lag p50 (actual − intended send)";
    res.quantile(
        S,
        "send_lag",
        Quantile::P50,
        p50.into(),
        &c.lag,
        Unit::Micros,
    );
    let p99 = "loadgen send lag p99";
    res.quantile(
        S,
        "send_lag",
        Quantile::P99,
        p99.into(),
        &c.lag,
        Unit::Micros,
    );
    // The same answers timed from when each request actually left (the client keeps that
    // instant by request id; the server echoes only the intended time): the round trip
    // without the send lag.
    let sent = "round trip from the actual send";
    for q in [Quantile::P50, Quantile::P99, Quantile::P999] {
        let figure = format!("{sent} {}", q.label());
        res.quantile(S, "rtt_sent", q, figure, &c.rtt_sent, Unit::Micros);
    }
    if c.unknown_ids > 0 {
        res.warnings.push(format!(
            "echo: {} answers had a request id with no send time on record (not in rtt_sent)",
            c.unknown_ids
        ));
    }
    res.cpu_per(
        S,
        "server_cpu_per_req",
        "server CPU per request (incl. idle wakeups)",
        run.server_cpu_ns,
        c.ok,
    );
    Ok(())
}
