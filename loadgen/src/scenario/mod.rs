//! The scenarios, one module each, in the order a run takes them:
//!
//! | scenario | what | figures |
//! | --- | --- | --- |
//! | [`setup`] | `--clients` connections connect, handshake and bind (at most `--connect-concurrency` in flight) | sessions/s, setup latency, server CPU per setup |
//! | [`memory`] | right after setup: server RSS (VmRSS) and the `stats` route's rss, before vs. with the sessions | bytes per session, idle CPU |
//! | [`hold`] | (only when asked) every session held idle but for heartbeats for `--hold` seconds | sessions still alive, RSS, CPU |
//! | [`blast`] | one `blast {"m":rounds,"size":size}`; every client counts its pushes until all clients × rounds arrived | pushes/s, latency from the request to each push, per-round spread, server CPU per push |
//! | [`fanout`] | `--fanouts` blasts of one round, one after the other | per-push delivery latency of a single broadcast |
//! | [`echo`] | open loop: `--rate` echo requests/s over `--echo-conns` connections for `--seconds` | RTT from the intended send time |
//! | [`saturation`] | closed loop: `--window` echo requests outstanding on each of `--sat-conns` connections for `--seconds` | max req/s, RTT, CPU per request |
//!
//! Each adds rows to [`Results`] and, for its latency, one JSON `latencies` entry; an `Err`
//! is the scenario failing outright (its row says why, the exit status is 1).

pub mod blast;
pub mod echo;
pub mod fanout;
pub mod hold;
pub mod memory;
pub mod saturation;
pub mod setup;

use crate::cli::Opts;
use crate::client::Pool;
use crate::report::Results;
use crate::server::Server;
use serde_json::Value;
use std::time::Duration;

/// What a timed scenario (blast, fan-out, echo, saturation) runs with, once setup bound the
/// sessions.
pub struct Ctx<'a> {
    /// The options of the run.
    pub opts: &'a Opts,
    /// The client threads and their connections.
    pub pool: &'a mut Pool,
    /// The server under test.
    pub server: &'a Server,
    /// Sessions setup bound.
    pub sessions: usize,
}

/// A timed scenario: adds its rows (and latency entries) to the results; an `Err` is the
/// scenario failing outright.
pub type Scenario = fn(Ctx<'_>, &mut Results) -> Result<(), String>;

/// The server's memory before the clients connected.
pub struct MemBefore {
    /// VmRSS in bytes, when the pid is known.
    pub vm_rss: Option<u64>,
    /// The `stats` route's answer.
    pub stats: Option<Value>,
}

/// Warns when connections were lost during `scenario` (`before`: the count at its start).
pub fn check_closes(pool: &mut Pool, res: &mut Results, scenario: &str, before: u64) {
    if pool.refresh_status().is_err() {
        return;
    }
    let after = pool.unexpected_closes();
    if after > before {
        res.warnings.push(format!(
            "{scenario}: {} connection(s) closed by the server or lost",
            after - before
        ));
    }
}

/// How long a blast of `rounds` to `clients` may take.
pub fn push_budget(clients: usize, rounds: u64) -> Duration {
    Duration::from_secs(15) + Duration::from_micros(clients as u64 * rounds * 10)
}
