//! The client threads: each one a mio event loop holding a share of the connections, driven by
//! commands from the main thread.
//!
//! Every connection does what a pomelo client does: HANDSHAKE → the server's reply (code 200,
//! heartbeat H) → HANDSHAKE_ACK → the server's first HEARTBEAT → request
//! `connector.entryHandler.entry {"uid":"u<i>"}` → bound. From then on it sends a HEARTBEAT
//! every H seconds (a sweep every 250 ms sends the due ones), so runs of any length never hit
//! the server's heartbeat timeout. One extra unbound "control" connection, on the first
//! thread, asks for `stats` and starts the blasts (it receives no pushes).
//!
//! The main thread talks to the threads through a [`Pool`]: a command channel and a mio
//! `Waker` per thread, one report channel back. Each command belongs to a numbered phase, and
//! reports of an earlier phase (a scenario that timed out) are dropped. A thread runs at most
//! one task at a time (setup, counting pushes, echo) and reports when it is done; its
//! counters (lost connections, stray pushes, heartbeats, notes) ride along with every report.
//!
//! Sockets are non-blocking and edge-triggered: every readiness is drained to `WouldBlock`,
//! at most [`MAX_READS`] reads of [`READ_CHUNK`] bytes per turn before a connection yields to
//! the others. Setup keeps at most `--connect-concurrency` handshakes in flight.

mod conn;
mod package;
mod pool;
mod sent;
mod task;
mod worker;

pub use pool::{Pacer, Pool};

use crate::latency::Latency;
use conn::CtlReply;
use mio::Token;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The token of each thread's waker.
const WAKER: Token = Token(usize::MAX);
/// Bytes per read.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness event before the connection yields to the others for one turn.
const MAX_READS: usize = 32;
/// Push arrival times kept per blast and thread, at most.
const MAX_SAMPLES: usize = 4_000_000;
/// How often due heartbeats are sent.
const SWEEP: Duration = Duration::from_millis(250);

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Bound as uid `u<i>`.
    Client(usize),
    /// Unbound; sends `stats` and `blast` for the main thread.
    Control,
}

/// Where a connection is in the pomelo handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshaking,
    WaitHeartbeat,
    Binding,
    Ready,
}

/// A command from the main thread to one client thread.
pub enum Cmd {
    Setup {
        addr: SocketAddr,
        roles: Vec<Role>,
        /// Client `i` binds to `sources[i % len]`; empty: the kernel picks.
        sources: Vec<IpAddr>,
        max_inflight: usize,
        deadline: Instant,
    },
    ArmPushes {
        per_conn: u64,
        rounds: u64,
        deadline: Instant,
    },
    Request {
        route: &'static str,
        body: Vec<u8>,
        reply: mpsc::Sender<CtlReply>,
    },
    Echo {
        conns: usize,
        /// Open loop: one request per interval (round-robin over the conns), the first at the
        /// instant given; each request carries its intended send time (see the echo scenario).
        open: Option<(Duration, Instant)>,
        /// Closed loop: requests outstanding per connection.
        window: usize,
        end: Instant,
        drain: Duration,
    },
    Status,
    Stop,
}

/// A client thread's counters, sent along with every report.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Ready connections the server closed (or that failed).
    pub unexpected_closes: u64,
    /// Pushes that arrived when no blast was armed.
    pub stray_pushes: u64,
    /// HEARTBEAT packages received on bound (or binding) connections.
    pub heartbeats_in: u64,
    /// The heartbeat interval the server announced, in seconds.
    pub heartbeat: Option<u64>,
    /// Why connections failed or were lost, counted.
    pub notes: BTreeMap<String, u64>,
}

/// The echo requests of one client thread's task, or summed over all of them.
#[derive(Default)]
pub struct EchoCounts {
    /// Requests sent.
    pub sent: u64,
    /// Good answers.
    pub ok: u64,
    /// Good answers before the end of the timed window.
    pub ok_in_window: u64,
    /// Answers without the request's time, or not code 200.
    pub bad: u64,
    /// Round trips (open loop: from the intended send time).
    pub rtt: Latency,
    /// Round trips from the actual send time (the request id's, kept on the client side).
    pub rtt_sent: Latency,
    /// Good answers whose request id had no send time on record (not in `rtt_sent`).
    pub unknown_ids: u64,
    /// Open loop: how late each request left (actual − intended send time).
    pub lag: Latency,
}

impl EchoCounts {
    /// Adds another thread's counts.
    pub fn add(&mut self, other: &EchoCounts) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.ok_in_window += other.ok_in_window;
        self.bad += other.bad;
        self.rtt.add(&other.rtt);
        self.rtt_sent.add(&other.rtt_sent);
        self.unknown_ids += other.unknown_ids;
        self.lag.add(&other.lag);
    }
}

/// What a client thread sends back when a task is done.
pub enum Report {
    /// Connections set up: how many bound (or failed), the first connect and the last bind
    /// (ns since the run's epoch), and the setup latencies (connect → bound).
    Setup {
        ok: usize,
        failed: usize,
        first_ns: Option<u64>,
        last_ns: u64,
        latencies: Latency,
    },
    /// Ready to count pushes.
    Armed,
    /// Pushes counted: expected, arrived, without a round number; the arrival times (ns since
    /// the epoch, at most [`MAX_SAMPLES`]) and each round's first and last arrival.
    Pushes {
        target: u64,
        got: u64,
        bad: u64,
        arrivals: Vec<u64>,
        round_first: Vec<u64>,
        round_last: Vec<u64>,
    },
    /// Echo requests: sent, answered (in the timed window), bad answers, round trips.
    Echo(EchoCounts),
    /// Only the counters.
    Status,
}

/// A report with its sender and phase.
struct Envelope {
    worker: usize,
    /// The phase (see [`Pool::begin`]) the report belongs to.
    seq: u64,
    report: Report,
    status: Status,
}

/// Nanoseconds from `epoch` to `t` (0 before it).
fn ns_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_nanos() as u64
}

/// Whether an I/O error only means "not now".
fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}
