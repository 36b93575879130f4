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
    ops: OnceLock<Sender<Op>>,
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

    pub(crate) fn attach(&self, ops: Sender<Op>) -> bool {
        self.ops.set(ops).is_ok()
    }

    /// True (once) if events were lost since the last call: the directory needs a resync.
    pub(crate) fn take_overflow(&self) -> bool {
        self.overflow.swap(false, Ordering::AcqRel)
    }

    fn note(&self, uid: &str) {
        match self.ops.get() {
            Some(ops) => {
                if ops.try_send(Op::Directory(uid.to_string())).is_err() {
                    self.overflow.store(true, Ordering::Release);
                }
            }
            // Events before the cluster started are covered by its first resync.
            None => {}
        }
    }
}

impl SessionListener for FrontendLink {
    fn bound(&self, sid: Sid, uid: &Uid) {
        if let Some(user) = &self.user {
            user.bound(sid, uid);
        }
        self.note(uid.as_str());
    }

    fn unbound(&self, sid: Sid, uid: &Uid) {
        if let Some(user) = &self.user {
            user.unbound(sid, uid);
        }
        self.note(uid.as_str());
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        if let Some(user) = &self.user {
            user.closed(session, reason);
        }
        if let Some(uid) = &session.uid {
            self.note(uid.as_str());
        }
    }
}
