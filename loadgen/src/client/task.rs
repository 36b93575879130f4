//! What a client thread is busy with: the task of the current phase, and its tallies.

use super::{EchoCounts, Role};
use crate::latency::Latency;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Connecting, handshaking and binding a list of roles.
pub(super) struct SetupTask {
    pub(super) addr: SocketAddr,
    pub(super) queue: VecDeque<Role>,
    pub(super) sources: Vec<IpAddr>,
    pub(super) inflight: usize,
    pub(super) max_inflight: usize,
    pub(super) deadline: Instant,
    pub(super) ok: usize,
    pub(super) failed: usize,
    pub(super) first_ns: Option<u64>,
    pub(super) last_ns: u64,
    pub(super) latencies: Latency,
}

/// Counting the pushes of one blast.
pub(super) struct PushTask {
    pub(super) target: u64,
    pub(super) got: u64,
    pub(super) bad: u64,
    pub(super) deadline: Instant,
    pub(super) arrivals: Vec<u64>,
    pub(super) round_first: Vec<u64>,
    pub(super) round_last: Vec<u64>,
}

/// Sending echo requests (open or closed loop) and timing the answers.
pub(super) struct EchoTask {
    pub(super) conns: Vec<usize>,
    /// Open loop: the interval and the intended send time of the next request.
    pub(super) open: Option<(Duration, Instant)>,
    pub(super) rr: usize,
    pub(super) end: Instant,
    pub(super) drain_until: Instant,
    pub(super) inflight: usize,
    pub(super) counts: EchoCounts,
}

/// The task of the current phase.
pub(super) enum Task {
    Idle,
    Setup(SetupTask),
    Pushes(PushTask),
    Echo(EchoTask),
}

/// What a package handler changes besides the connection.
pub(super) struct Shared<'a> {
    pub(super) task: &'a mut Task,
    pub(super) control: &'a mut Option<usize>,
    pub(super) stray_pushes: &'a mut u64,
    pub(super) heartbeats_in: &'a mut u64,
    pub(super) heartbeat_seen: &'a mut Option<u64>,
}
