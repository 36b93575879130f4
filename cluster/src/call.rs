//! The calls a [`Cluster`](crate::Cluster) handle hands to its bridge thread.

use crate::report::SessionRef;
use crate::sync::Arc;
use crate::ticket::Ticket;
use bytes::Bytes;
use std::time::Instant;

/// One operation on one session of a known frontend incarnation.
#[derive(Debug, Clone)]
pub(crate) enum SessionOp {
    Kick(Option<String>),
    Bind(String),
    Unbind(String),
    Import(String, Vec<u8>),
    ImportAll(Vec<u8>),
    Get,
}

#[derive(Debug, Clone)]
pub(crate) enum CallKind {
    /// Push to every session of these uids, wherever they are.
    PushUids { uids: Vec<String>, package: Bytes },
    /// Push to these sessions, grouped by frontend incarnation.
    PushSids {
        groups: Vec<(String, u64, Vec<u64>)>,
        package: Bytes,
    },
    /// Push to every (bound) session of every live frontend.
    Broadcast { bound_only: bool, package: Bytes },
    /// Kick every session of the uid on every frontend holding it.
    KickUid { uid: String, reason: Option<String> },
    /// Every session of the uid, across frontends.
    GetUid { uid: String },
    /// One operation on one session.
    Session { at: SessionRef, op: SessionOp },
    /// Directory look-up only: the live frontends of each uid.
    Locate { uids: Vec<String> },
}

pub(crate) struct Call {
    pub(crate) kind: CallKind,
    pub(crate) ticket: Arc<Ticket>,
    pub(crate) deadline: Instant,
}

/// What the bridge thread is asked to do.
pub(crate) enum Op {
    Call(Call),
    /// A session of this uid was bound, unbound or closed here: reconcile its directory entry.
    Directory(String),
    /// Single-session mode: this session was just bound to this uid; claim the uid cluster-wide.
    Claim(gatehouse::Sid, String),
}
