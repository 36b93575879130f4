//! The load generator: pomelo clients over TCP (mio, non-blocking, a few client threads) that
//! drive the example gate (or any server with the same routes, such as a pinus connector)
//! through bounded scenarios and print one table.
//!
//! ```sh
//! # the main job: builds and starts the gate itself, runs everything, stops the gate
//! cargo run --release -p gatehouse-loadgen -- --spawn-gate
//! # against a server that is already running (CPU and RSS figures need its pid)
//! cargo run --release -p gatehouse-loadgen -- --addr 127.0.0.1:3010 --server-pid 12345
//! # one JSON object on stdout instead of the table (bench/*.sh read it)
//! cargo run --release -p gatehouse-loadgen -- --spawn-gate --json
//! ```
//!
//! # Clients
//!
//! Every client connection does what a pomelo client does: HANDSHAKE
//! (`{"sys":{"type":"loadgen","version":"0.1.0"},"user":{}}`) → the server's reply (code 200,
//! heartbeat H) → HANDSHAKE_ACK → the server's first HEARTBEAT → request
//! `connector.entryHandler.entry {"uid":"u<i>"}` → bound; from then on a HEARTBEAT every H
//! seconds, so runs of any length never hit the server's heartbeat timeout. The connections
//! live in `--client-threads` threads, each a mio event loop that drains every socket to
//! `WouldBlock` (see [`client`]). The main thread sends them commands (set up these clients,
//! count pushes, send echo requests) and waits for their reports. One extra unbound "control"
//! connection asks for `stats` and starts the blasts (it receives no pushes). The codec is the
//! gatehouse crate's own (`gatehouse::protocol`).
//!
//! With `--spawn-gate` the load generator builds the example gate (`cargo build --release -p
//! gatehouse --example gate` in the workspace root, the parent of this crate) and starts it on
//! a free loopback port; `--gate-bin PATH` uses a built one instead (see [`gate`]).
//!
//! # Scenarios
//!
//! setup, then by default memory, blast, fanout, echo and saturation (`hold` on request); each
//! has its module under [`scenario`], which says what it measures. Every latency is recorded
//! in an HDR histogram (3 significant figures, see [`latency`]) and reported up to p99.99 and
//! the max, in the table and in the JSON `latencies` array (with a CDF).
//!
//! # No coordinated omission
//!
//! The echo scenario is an open loop: request i of a client thread has an intended send time
//! (its start + i / its share of `--rate`) and carries it; its round trip is measured from
//! that time, not from when it actually left, so a stall of the server or of the load
//! generator counts against every request that should have gone out during it. A pacer
//! thread wakes each client thread at its send times, so the load generator's own timer
//! granularity stays out of the figures (`--pacer` chooses how it waits; see
//! [`scenario::echo`]). The same answers are also timed from their actual send
//! (`echo.rtt_sent_*`), the client keeping each request's send instant by its id, so the two
//! can be compared. Saturation is a closed loop
//! (each answer sends the next request), so there its round trip starts at the actual send.
//!
//! # CPU
//!
//! Server CPU comes from `/proc/<pid>/task/*/schedstat` (on-CPU nanoseconds of every thread,
//! sampled every 2 ms while the main thread waits, so the gate's short-lived blast threads
//! are counted up to their last sample), cross-checked with `/proc/<pid>/stat` utime+stime
//! (clock ticks), which is used when it is clearly higher ([`cpu`]). Both need the pid: the
//! spawned gate's, or `--server-pid`. The "machine CPU" line splits the whole run's CPU
//! (/proc/stat) into gate, load generator and other processes, to show how noisy the figures
//! are.
//!
//! The open-file limit must cover `--clients` + 100 (in both processes; the spawned gate
//! inherits it). Without libc there is no setrlimit, so when the soft limit is too low but
//! the hard one allows it, the load generator re-runs itself under `sh -c 'ulimit -n …'`;
//! otherwise it stops and says which `ulimit -n` to run ([`limits`]).
//!
//! # Output and exit status
//!
//! The table (or with `--json` one JSON object, [`report::json`]) goes to stdout; progress
//! (a status line for every phase longer than a second, [`progress`]) and the gate's output go
//! to stderr. Exit status: 0 when every scenario ran (warnings such as a few failed
//! connections are printed), 1 when one failed outright (no connection, no push, no response,
//! server died) or the run could not start, 2 for bad arguments (clap's usage error).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod cli;
mod client;
mod cpu;
mod gate;
mod latency;
mod limits;
mod proc;
mod progress;
mod report;
mod run;
mod scenario;
mod server;
mod wire;

use cli::Opts;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut opts = match Opts::parse_from_args(std::env::args_os()) {
        Ok(o) => o,
        // `--help` (status 0) or a refusal (status 2, the message and the usage on stderr).
        Err(e) => e.exit(),
    };
    match limits::ensure_fd_limit(opts.clients as u64 + 100) {
        Ok(Some(code)) => return code,
        Ok(None) => {}
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    }
    match limits::source_addrs(&opts) {
        Ok(sources) => opts.sources = sources,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    }
    match run::run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}
