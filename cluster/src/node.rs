//! A running node: the shared state and the two bridge threads.
//!
//! ```text
//!  callers (any thread) ──try_send──▶ [bounded queue] ──▶ gh-bus-tx ──PUBLISH/EVALSHA──▶ Redis
//!  session events (I/O threads) ──────────┘                  ▲                           │
//!                                          acks, replies ────┘ (ctl)                      │
//!  gh-bus-rx ◀── SUBSCRIBE <prefix>:to:<node> ◀────────────────────────────────────────────┘
//!     ├─ data frame → dedup → execute on the local Sessions (frontends) → ack + replies
//!     └─ ack frame  → ctl → gh-bus-tx resolves the calls
//! ```
//!
//! `gh-bus-tx` owns every sender-side structure (streams, pending requests, timers) alone, so
//! none of it is shared; `gh-bus-rx` owns the receiver-side dedup state alone. The only
//! structures shared between threads are the bounded queues (crossbeam) and each call's
//! [`Ticket`](crate::ticket::Ticket) (a mutex + condvar, loom-modelled).

use crate::call::Op;
use crate::config::ClusterConfig;
use crate::frontend::FrontendLink;
use crate::stats::Stats;
use crate::sync::Mutex;
use crossbeam_channel::Sender;
use gatehouse::Sessions;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

/// An acknowledgement (with replies) that gh-bus-rx hands to gh-bus-tx.
pub(crate) struct AckIn {
    pub(crate) from: String,
    pub(crate) from_epoch: u64,
    pub(crate) through: u64,
    pub(crate) replies: Vec<(u32, u8, Vec<u8>)>,
}

pub(crate) struct FrontendPart {
    pub(crate) sessions: Sessions,
    pub(crate) link: std::sync::Arc<FrontendLink>,
    pub(crate) claims: Mutex<crate::frontend::Claims>,
}

pub(crate) struct Shared {
    pub(crate) config: ClusterConfig,
    pub(crate) epoch: u64,
    pub(crate) tag: u32,
    /// The engine (Redis by default).
    pub(crate) bus: Box<dyn crate::backplane::Backplane>,
    /// This node's own channel.
    pub(crate) channel: String,
    pub(crate) ops: Sender<Op>,
    pub(crate) stats: Stats,
    pub(crate) stop: AtomicBool,
    /// Set by gh-bus-rx when its connection failed: gh-bus-tx checks its own at once (a PING)
    /// instead of finding out at its next command, so a Redis restart is noticed in one turn.
    pub(crate) check_link: AtomicBool,
    pub(crate) frontend: Option<FrontendPart>,
    /// Test-only: acknowledgements and retransmission disabled (`GH_TEST_NO_ACK=1`).
    pub(crate) no_ack: bool,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A fresh random epoch (never 0): std's randomly keyed hasher over the time, the pid and a
/// stack address. Unique per process start with overwhelming probability; not a secret.
pub(crate) fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::time::SystemTime::now().hash(&mut h);
    std::process::id().hash(&mut h);
    let local = 0u8;
    (&local as *const u8 as usize).hash(&mut h);
    h.finish().max(1)
}

/// Whether the test knob is on (compiled only with the `test-knobs` feature).
pub(crate) fn no_ack_knob(config: &ClusterConfig) -> bool {
    #[cfg(feature = "test-knobs")]
    {
        config.test_no_ack || std::env::var("GH_TEST_NO_ACK").is_ok_and(|v| v == "1")
    }
    #[cfg(not(feature = "test-knobs"))]
    {
        let _ = config;
        false
    }
}
