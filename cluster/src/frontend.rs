//! [`FrontendLink`]: the session listener that keeps a frontend's directory entries following
//! its bind, unbind and close events.

use crate::call::Op;
use crossbeam_channel::Sender;
use gatehouse::{CloseReason, SessionListener, SessionSnapshot, Sid, Uid};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Pass it to [`ServerBuilder::listener`](gatehouse::server::ServerBuilder::listener) when
/// building the frontend's server, then to [`Cluster::start_frontend`](crate::Cluster::start_frontend).
///
/// Each `bound`, `unbound` and `closed` event queues the uid for reconciliation on the bridge
/// thread, which writes (or removes) the directory entry from what the local service says *at
/// that moment* — so the entry ends right whatever order events arrive in, and a burst of
/// events for one uid costs one Redis write. Events never block: if the bridge queue is full,
/// the link notes it and the bridge resyncs the whole directory instead.
///
/// Your own listener, if you have one, is called first ([`FrontendLink::with_listener`]).
pub struct FrontendLink {
    ops: OnceLock<(Sender<Op>, bool)>,
    overflow: AtomicBool,
    user: Option<Arc<dyn SessionListener>>,
}

impl FrontendLink {
    /// A link with no listener of your own.
    pub fn new() -> Arc<FrontendLink> {
        Arc::new(FrontendLink {
            ops: OnceLock::new(),
            overflow: AtomicBool::new(false),
            user: None,
        })
    }

    /// A link that also calls `listener` for every event (before its own work).
    pub fn with_listener(listener: Arc<dyn SessionListener>) -> Arc<FrontendLink> {
        Arc::new(FrontendLink {
            ops: OnceLock::new(),
            overflow: AtomicBool::new(false),
            user: Some(listener),
        })
    }

    /// Connects the link to its node's queue; `claims`: bound events claim the uid
    /// cluster-wide (single-session mode).
    pub(crate) fn attach(&self, ops: Sender<Op>, claims: bool) -> bool {
        self.ops.set((ops, claims)).is_ok()
    }

    /// True (once) if events were lost since the last call: the directory needs a resync.
    pub(crate) fn take_overflow(&self) -> bool {
        self.overflow.swap(false, Ordering::AcqRel)
    }

    fn note(&self, uid: &str, bound: Option<Sid>) {
        // Events before the cluster started are covered by its first resync.
        if let Some((ops, claims)) = self.ops.get() {
            let op = match bound {
                Some(sid) if *claims => Op::Claim(sid, uid.to_string()),
                _ => Op::Directory(uid.to_string()),
            };
            if ops.try_send(op).is_err() {
                self.overflow.store(true, Ordering::Release);
            }
        }
    }
}

impl SessionListener for FrontendLink {
    fn bound(&self, sid: Sid, uid: &Uid) {
        if let Some(user) = &self.user {
            user.bound(sid, uid);
        }
        self.note(uid.as_str(), Some(sid));
    }

    fn unbound(&self, sid: Sid, uid: &Uid) {
        if let Some(user) = &self.user {
            user.unbound(sid, uid);
        }
        self.note(uid.as_str(), None);
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        if let Some(user) = &self.user {
            user.closed(session, reason);
        }
        if let Some(uid) = &session.uid {
            self.note(uid.as_str(), None);
        }
    }
}

/// Single-session state of a frontend, shared by the bridge threads (one short lock per claim
/// result and per claim kick; never on a push path).
///
/// Two facts decide which session survives a race, whatever order they reach this frontend:
/// - a claim result (`gen` for a session here) is recorded, unless a kick with a higher fence
///   already arrived for that uid, in which case the session lost and is kicked;
/// - a claim kick (`below` for a uid) raises the uid's fence and kicks the sessions here whose
///   recorded generation is below it; sessions whose claim has not returned yet are left to
///   the first rule.
///
/// Generations come from one counter on Redis (`P:claims`), so the session with the highest
/// generation is the only one left. Model: `loom-tests/tests/cluster_claims.rs`.
#[derive(Default)]
pub(crate) struct Claims {
    gens: std::collections::HashMap<Sid, u64>,
    fences: std::collections::HashMap<String, (u64, std::time::Instant)>,
}

impl Claims {
    /// Our claim for `sid` returned `gen`: true if the session keeps the uid.
    pub(crate) fn granted(&mut self, sid: Sid, uid: &str, gen: u64) -> bool {
        // Seeded bug for the loom model: a kick that arrived before the claim returned is ignored.
        #[cfg(not(gatehouse_loom_mutant = "claims_granted_ignores_fence"))]
        if self.fences.get(uid).is_some_and(|f| f.0 > gen) {
            return false;
        }
        self.gens.insert(sid, gen);
        true
    }

    /// Another frontend's claim `below` took `uid`: the local sessions to kick, among `bound`.
    pub(crate) fn fence(&mut self, uid: &str, below: u64, bound: &[Sid]) -> Vec<Sid> {
        let now = std::time::Instant::now();
        let fence = self.fences.entry(uid.to_string()).or_insert((below, now));
        if below >= fence.0 {
            *fence = (below, now);
        }
        bound
            .iter()
            .copied()
            .filter(|sid| {
                // Seeded bug for the loom model: every bound session is kicked, whatever its
                // claim's generation.
                cfg!(gatehouse_loom_mutant = "claims_fence_ignores_gen")
                    || self.gens.get(sid).is_some_and(|g| *g < below)
            })
            .collect()
    }

    /// Forgets closed sessions and fences older than `keep` (a fence only matters while a
    /// claim issued before it may still return: at most a call deadline).
    pub(crate) fn tidy(&mut self, alive: impl Fn(Sid) -> bool, keep: std::time::Duration) {
        self.gens.retain(|sid, _| alive(*sid));
        let now = std::time::Instant::now();
        self.fences.retain(|_, f| now.duration_since(f.1) < keep);
    }
}
