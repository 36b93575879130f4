//! What a cluster call reports: per-target [`Outcome`]s gathered in a [`PushReport`], the
//! errors, and the addresses of remote sessions.

use gatehouse::{Settings, Sid};
use std::fmt;

/// Where one target of a call ended up. Every target of every accepted call gets exactly one
/// outcome: nothing accepted is dropped without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The frontend acknowledged it and queued the package to the session(s).
    Delivered,
    /// The directory lists no live frontend for this uid.
    Offline,
    /// The frontend answered, but has no such session (or none bound to the uid any more):
    /// pomelo's `fails`.
    NotFound,
    /// The frontend's channel has no subscriber (the process is gone), or its lease expired:
    /// nothing was executed there.
    FrontendDown,
    /// No acknowledgement came before the deadline: maybe executed, **never twice**.
    Unconfirmed,
    /// A bounded queue was full (this node's retransmit buffer, or the session's inbox on the
    /// frontend): not executed; retry later or shed load.
    Backpressure,
    /// Redis stayed unreachable until the deadline: never sent.
    RedisDown,
    /// The node shut down before the call was sent.
    Cancelled,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Delivered => "delivered",
            Outcome::Offline => "offline",
            Outcome::NotFound => "not found",
            Outcome::FrontendDown => "frontend down",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::Backpressure => "backpressure",
            Outcome::RedisDown => "redis down",
            Outcome::Cancelled => "cancelled",
        })
    }
}

/// The per-target results of a push or kick: one entry per (target, frontend) pair, where the
/// target is a uid, a sid (as text) or, for a broadcast, the frontend id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// `(target, frontend, outcome)`; the frontend is empty when none was involved (`Offline`).
    pub entries: Vec<(String, String, Outcome)>,
    /// Sessions reached, summed over the frontends' answers (a uid may have several).
    pub sessions: usize,
}

impl PushReport {
    /// How many entries ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.entries.iter().filter(|e| e.2 == outcome).count()
    }

    /// The targets that ended with `outcome`, in report order.
    pub fn targets(&self, outcome: Outcome) -> Vec<&str> {
        self.entries
            .iter()
            .filter(|e| e.2 == outcome)
            .map(|e| e.0.as_str())
            .collect()
    }

    /// The outcome of one target (the first entry for it), if it was part of the call.
    pub fn outcome(&self, target: &str) -> Option<Outcome> {
        self.entries.iter().find(|e| e.0 == target).map(|e| e.2)
    }

    /// True if every entry is [`Outcome::Delivered`] (and there is at least one).
    pub fn all_delivered(&self) -> bool {
        !self.entries.is_empty() && self.entries.iter().all(|e| e.2 == Outcome::Delivered)
    }
}

/// A call could not be accepted at all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// The bridge queue is full: the call was refused at once, nothing was sent.
    Backpressure,
    /// The package or arguments cannot fit in one frame (`max_frame`).
    TooLarge {
        /// Bytes needed.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An argument is invalid (empty uid, bad node id…).
    Invalid(String),
    /// Connecting to Redis failed at startup (wrong URL, refused, authentication failed…).
    Connect(String),
    /// The node is shut down.
    Closed,
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Backpressure => f.write_str("cluster queue full (backpressure)"),
            ClusterError::TooLarge { len, max } => {
                write!(f, "{len} bytes do not fit in a cluster frame (max {max})")
            }
            ClusterError::Invalid(why) => write!(f, "invalid argument: {why}"),
            ClusterError::Connect(why) => write!(f, "cannot connect to redis: {why}"),
            ClusterError::Closed => f.write_str("cluster node is shut down"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A remote session operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteError {
    /// The call was not accepted.
    Cluster(ClusterError),
    /// The frontend refused with pomelo's error text (e.g. `session does not exist, sid: 7`).
    Pomelo(String),
    /// The frontend has no such session.
    NoSession,
    /// The target could not be reached or did not confirm in time.
    Unreached(Outcome),
    /// The frontend answered something this version does not understand.
    BadReply(String),
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Cluster(e) => e.fmt(f),
            RemoteError::Pomelo(text) => f.write_str(text),
            RemoteError::NoSession => f.write_str("session does not exist"),
            RemoteError::Unreached(outcome) => write!(f, "frontend not reached: {outcome}"),
            RemoteError::BadReply(why) => write!(f, "bad reply from frontend: {why}"),
        }
    }
}

impl std::error::Error for RemoteError {}

impl From<ClusterError> for RemoteError {
    fn from(e: ClusterError) -> RemoteError {
        RemoteError::Cluster(e)
    }
}

/// The cluster-wide address of a session: the frontend, **its incarnation (epoch)** and the sid.
///
/// Sids restart from the same values when a frontend restarts, so a sid alone could name
/// another user's session on the new process. The epoch makes a stale address find nothing
/// instead (the frame is dropped by the new incarnation and the call reports it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionRef {
    /// The frontend's node id.
    pub frontend: String,
    /// The frontend process's epoch.
    pub epoch: u64,
    /// The session id on that frontend.
    pub sid: Sid,
}

/// A session as a frontend exported it (pomelo `BackendSession`: id, frontendId, uid, settings).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSession {
    /// Where it lives.
    pub session: SessionRef,
    /// The uid it is bound to.
    pub uid: Option<String>,
    /// Its settings at the time of the call.
    pub settings: Settings,
}
