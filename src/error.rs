//! Error types of the session service.
//!
//! The `Display` texts of the session errors keep pinus's wording (spec §1.3), so logs and
//! messages relayed to clients read the same as before a migration.

use crate::frame::Frame;
use crate::id::Sid;
use crate::uid::Uid;
use std::fmt;

fn uid_or_null(uid: &Option<Uid>) -> &str {
    uid.as_ref().map_or("null", Uid::as_str)
}

/// Why [`SessionService::bind`](crate::SessionService::bind) failed. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindError {
    /// No live session has this sid (never existed, or closed).
    UnknownSession(Sid),
    /// The session is bound to another uid; unbind it first (no implicit unbind, as in pomelo).
    AlreadyBound(Uid),
    /// `single_session` is on and another session holds the uid. The other session is kept;
    /// kick it first to replace it.
    SingleSession(Uid),
    /// The uid is empty or longer than the configured `max_uid_len`.
    InvalidUid {
        /// Length of the refused uid in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::UnknownSession(sid) => write!(f, "session does not exist, sid: {sid}"),
            BindError::AlreadyBound(uid) => write!(f, "session has already bound with {uid}"),
            BindError::SingleSession(uid) => {
                write!(
                    f,
                    "singleSession is enabled, and session has already bound with uid: {uid}"
                )
            }
            BindError::InvalidUid { len, max } => {
                write!(f, "invalid uid: {len} bytes, must be 1..={max}")
            }
        }
    }
}

impl std::error::Error for BindError {}

/// Why [`SessionService::unbind`](crate::SessionService::unbind) failed. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnbindError {
    /// No live session has this sid.
    UnknownSession(Sid),
    /// The session is not bound to the given uid. Carries the uid it *is* bound to, which the
    /// message quotes (`null` when unbound), exactly as pinus does.
    NotBound {
        /// The session's current uid.
        current: Option<Uid>,
    },
}

impl fmt::Display for UnbindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnbindError::UnknownSession(sid) => write!(f, "session does not exist, sid: {sid}"),
            UnbindError::NotBound { current } => {
                write!(f, "session has not bind with {}", uid_or_null(current))
            }
        }
    }
}

impl std::error::Error for UnbindError {}

/// A sid named no live session (`import`, `import_all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownSession(pub Sid);

impl fmt::Display for UnknownSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session does not exist, sid: {}", self.0)
    }
}

impl std::error::Error for UnknownSession {}

/// Why [`SessionService::create`](crate::SessionService::create) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateError {
    /// The shard holds `max_sessions_per_shard` sessions already.
    ShardFull {
        /// The full shard.
        shard: usize,
        /// Its limit.
        limit: usize,
    },
    /// No such shard.
    NoSuchShard(usize),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::ShardFull { shard, limit } => {
                write!(f, "session shard {shard} is full ({limit} sessions)")
            }
            CreateError::NoSuchShard(shard) => write!(f, "no session shard {shard}"),
        }
    }
}

impl std::error::Error for CreateError {}

/// What went wrong with a send; see [`SendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// No live session has this sid (pomelo's `sendMessage` returns `false`).
    UnknownSession,
    /// The owning shard's outbound inbox is full: the I/O thread is behind. Retry later or
    /// shed load; the frame is handed back.
    InboxFull,
    /// The message could not be encoded into one package (its body exceeds 2²⁴ − 1 bytes).
    /// Nothing was queued; the frame handed back is empty.
    TooLarge,
}

/// [`SessionService::send_message`](crate::SessionService::send_message) failed; the frame is
/// handed back, nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Why.
    pub kind: SendErrorKind,
    /// The frame that was not sent.
    pub frame: Frame,
}

impl SendError {
    /// Takes the frame back.
    pub fn into_frame(self) -> Frame {
        self.frame
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SendErrorKind::UnknownSession => f.write_str("session does not exist"),
            SendErrorKind::InboxFull => f.write_str("outbound inbox full"),
            SendErrorKind::TooLarge => f.write_str("message too large for one package"),
        }
    }
}

impl std::error::Error for SendError {}

/// [`SessionService::send_message_by_uid`](crate::SessionService::send_message_by_uid) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UidSendError {
    /// No session is bound to the uid (pomelo returns `false`).
    UnknownUid,
    /// Some inboxes were full: `enqueued` sessions got the frame, `refused` did not.
    InboxFull {
        /// Sessions the frame was queued for.
        enqueued: usize,
        /// Sessions whose shard inbox was full.
        refused: usize,
    },
}

impl fmt::Display for UidSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UidSendError::UnknownUid => f.write_str("no session bound to uid"),
            UidSendError::InboxFull { enqueued, refused } => write!(
                f,
                "outbound inbox full: queued for {enqueued} session(s), refused for {refused}"
            ),
        }
    }
}

impl std::error::Error for UidSendError {}

/// [`SessionService::broadcast`](crate::SessionService::broadcast) could not queue the frame
/// for every bound session it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BroadcastError {
    /// Some shards' inboxes were full: `enqueued` sessions got the frame, `refused` did not
    /// (each refusal is also counted in [`Inbox::refused`](crate::Inbox::refused)). Nothing is
    /// retried: the I/O thread is behind, so shed load or retry the whole broadcast later.
    InboxFull {
        /// Sessions the frame was queued for.
        enqueued: usize,
        /// Sessions whose shard inbox was full.
        refused: usize,
    },
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::InboxFull { enqueued, refused } => write!(
                f,
                "outbound inbox full: broadcast queued for {enqueued} session(s), refused for {refused}"
            ),
        }
    }
}

impl std::error::Error for BroadcastError {}
