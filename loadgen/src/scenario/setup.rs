//! Setup: `--clients` connections connect, handshake and bind, at most
//! `--connect-concurrency` in flight (split over the client threads).
//!
//! Figures: sessions bound, the setup rate (first connect to last bind), the setup latency
//! of each connection (connect → bound; a histogram, p50 … max), and the server's CPU per
//! session setup over the whole phase.
use crate::cli::Opts;
use crate::client::{Cmd, Pool, Report, Role};
use crate::latency::Latency;
use crate::report::{Percentiles, Results, Unit};
use crate::server::Server;
use std::time::{Duration, Instant};

/// Runs setup; the number of bound sessions.
pub fn run(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    res: &mut Results,
) -> Result<usize, String> {
    const S: &str = "setup";
    let n = pool.len();
    let budget = Duration::from_secs(10) + Duration::from_millis(opts.clients as u64);
    pool.watch_server(server);
    let deadline = Instant::now() + budget;
    pool.progress
        .begin(format!("setup: {} clients", opts.clients), None);
    pool.broadcast(|w| Cmd::Setup {
        addr: server.addr,
        roles: (0..opts.clients)
            .filter(|i| i % n == w)
            .map(Role::Client)
            .collect(),
        sources: opts.sources.clone(),
        max_inflight: opts.connect_concurrency.div_ceil(n),
        deadline,
    })?;
    let reports = pool.gather(n, budget + Duration::from_secs(5))?;
    pool.progress.end();
    let cpu = pool.server_cpu();
    let (mut ok, mut failed, mut first, mut last) = (0, 0, u64::MAX, 0);
    let mut lat = Latency::new();
    for (_, r) in reports {
        if let Report::Setup {
            ok: o,
            failed: f,
            first_ns,
            last_ns,
            latencies,
        } = r
        {
            ok += o;
            failed += f;
            first = first.min(first_ns.unwrap_or(u64::MAX));
            last = last.max(last_ns);
            lat.add(&latencies);
        }
    }
    res.row(
        S,
        "bound",
        format!("sessions bound (of {})", opts.clients),
        ok as f64,
        "sessions",
    );
    if failed > 0 {
        let notes: Vec<String> = pool
            .notes()
            .into_iter()
            .filter(|(k, _)| k.starts_with("setup"))
            .take(5)
            .map(|(k, v)| format!("{v}× {k}"))
            .collect();
        res.row(
            S,
            "failed",
            "connections failed".into(),
            failed as f64,
            "connections",
        );
        res.warnings.push(format!(
            "setup: {failed} connection(s) failed: {}",
            notes.join("; ")
        ));
    }
    if ok == 0 {
        return Err("no client connected and bound".into());
    }
    let secs = last.saturating_sub(first) as f64 / 1e9;
    res.row(
        S,
        "rate",
        "setup rate (connect+handshake+ack+bind)".into(),
        ok as f64 / secs,
        "sessions/s",
    );
    let what = format!(
        "session setup, connect → bound ({} clients, {} handshakes in flight)",
        opts.clients, opts.connect_concurrency
    );
    let latency = Percentiles::new("latency", "setup latency", Unit::Millis, what)
        .p50("setup latency p50 (connect → bound)".into());
    res.percentiles(S, latency, &lat);
    res.cpu_per(
        S,
        "server_cpu_per_setup",
        "server CPU per session setup",
        cpu.map(|(ns, _)| ns),
        ok as u64,
    );
    Ok(ok)
}
