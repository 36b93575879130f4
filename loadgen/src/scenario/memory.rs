//! Memory: right after setup, the server's VmRSS (from /proc, with its pid) and the `stats`
//! route's rss, before the clients connected vs. with the sessions: bytes per idle bound
//! session. Then one idle second: the server's CPU with the sessions held.
use super::MemBefore;
use crate::client::Pool;
use crate::cpu::CpuWatch;
use crate::proc::vm_rss;
use crate::report::Results;
use crate::server::Server;
use std::time::Duration;

/// Runs the memory scenario.
pub fn run(
    pool: &Pool,
    server: &Server,
    before: &MemBefore,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "memory";
    let vm_after = server.pid.and_then(vm_rss);
    let stats = pool.stats()?;
    let per = |a: u64, b: u64| (b as f64 - a as f64) / sessions as f64;
    if let (Some(a), Some(b)) = (before.vm_rss, vm_after) {
        res.row(
            S,
            "rss_before",
            "server VmRSS before connecting".into(),
            a as f64 / 1048576.0,
            "MiB",
        );
        res.row(
            S,
            "rss_with_sessions",
            format!("server VmRSS with {sessions} sessions"),
            b as f64 / 1048576.0,
            "MiB",
        );
        res.row(
            S,
            "rss_per_session",
            "RSS per idle bound session (VmRSS delta)".into(),
            per(a, b),
            "B/session",
        );
    }
    let (sa, sb) = (
        before.stats.as_ref().and_then(|s| s["rss"].as_u64()),
        stats["rss"].as_u64(),
    );
    if let (Some(a), Some(b)) = (sa, sb) {
        res.row(
            S,
            "stats_rss_per_session",
            "RSS per session (stats route delta)".into(),
            per(a, b),
            "B/session",
        );
    }
    if let Some(s) = stats["sessions"].as_u64() {
        res.row(
            S,
            "stats_sessions",
            "sessions (stats route, incl. control)".into(),
            s as f64,
            "sessions",
        );
    }
    if let Some(b) = stats["bound"].as_u64() {
        res.row(
            S,
            "stats_bound",
            "bound uids (stats route)".into(),
            b as f64,
            "uids",
        );
        if b as usize != sessions {
            res.warnings.push(format!(
                "memory: the stats route reports {b} bound uids, {sessions} clients are bound"
            ));
        }
    }
    // What the held sessions cost while nothing happens (timers, heartbeats); the CPU-per-request
    // figures of the echo scenarios include it.
    if let Some(watch) = CpuWatch::new(server.pid, server.tck) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some((ns, wall)) = watch.finish() {
            res.row(
                S,
                "server_cpu_idle",
                format!("server CPU while idle with {sessions} sessions (1 s)"),
                100.0 * ns as f64 / wall.as_nanos() as f64,
                "% of a core",
            );
        }
    }
    Ok(())
}
