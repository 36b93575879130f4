//! Session events ([`SessionListener`]) and why a session closed ([`CloseReason`]).

use crate::id::Sid;
use crate::session::SessionSnapshot;
use crate::uid::Uid;
use std::fmt;
use std::io;
use std::sync::Arc;

/// Receives the session events pomelo's `Session` emits: `bind`, `unbind` and `closed`.
///
/// Each event fires **exactly once** per change, after the registry and the uid index have been
/// updated and **with no lock held**: a listener may call any
/// [`SessionService`](crate::SessionService) method, including kicking other sessions. Keep it
/// short and never block in it (hand heavy work to your own queue).
///
/// # Order: causal, per session
///
/// Events are recorded in the critical section that makes the change and fired in that order,
/// one at a time per shard (`src/event_queue.rs`). So for every session the listener sees
/// `bound` → `unbound` → … → `closed`, exactly as the changes committed — never a `closed`
/// before the `bound` it follows, whatever threads race. A presence map or a cluster directory
/// that applies events in the order it receives them stays right.
///
/// The price of that order: an event usually fires on the thread that made the change, before
/// the call returns; but if another thread is already firing that shard's events (or your
/// listener itself changes a session of the same shard), that thread fires it right after its
/// current one, and the call that made the change may return first. Listeners of one shard
/// never run concurrently with each other.
///
/// Order on close (pomelo `Session.closed`, spec §2.4): the session leaves the registry and the
/// uid index → the transport is told to close (after a KICK package if the reason carries a
/// text, and once what is queued is flushed) → [`closed`](SessionListener::closed) fires with a
/// snapshot and the reason. The close command is queued before the listener runs, so a
/// panicking listener cannot leave the connection open.
///
/// # Panics in a listener
///
/// A panic is caught per event and counted
/// ([`SessionService::listener_panics`](crate::SessionService::listener_panics)); the session the
/// event was about is closed with [`CloseReason::HandlerPanic`] (a panic in `closed` has
/// nothing left to close). The thread that fired it carries on. (With `panic = "abort"` there
/// is nothing to catch: the process ends.)
///
/// # Examples
///
/// ```
/// use gatehouse::{CloseReason, SessionConfig, SessionListener, SessionService, SessionSnapshot};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Default)]
/// struct Count(AtomicUsize);
/// impl SessionListener for Count {
///     fn closed(&self, _: &SessionSnapshot, _: &CloseReason) {
///         self.0.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let count = Arc::new(Count::default());
/// let service = SessionService::with_listener(SessionConfig::default(), count.clone()).unwrap();
/// let sid = service.create(None).unwrap();
/// service.kick_by_session_id(sid, Some("bye"));
/// service.kick_by_session_id(sid, Some("bye")); // already closed: no second event
/// assert_eq!(count.0.load(Ordering::Relaxed), 1);
/// ```
pub trait SessionListener: Send + Sync + 'static {
    /// `sid` was bound to `uid` (pomelo `bind` / app event `bind_session`).
    fn bound(&self, sid: Sid, uid: &Uid) {
        let _ = (sid, uid);
    }

    /// `sid` was unbound from `uid` (pomelo `unbind` / `unbind_session`).
    fn unbound(&self, sid: Sid, uid: &Uid) {
        let _ = (sid, uid);
    }

    /// The session closed (pomelo `closed` / `close_session`). The snapshot keeps its last uid
    /// and settings; the service no longer knows the sid.
    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        let _ = (session, reason);
    }
}

/// Why a session closed. Carried by the `closed` event and the transport's close command, and
/// logged by the transport.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// Kicked with a reason: the client gets a KICK package `{"reason": …}` before the close.
    Kicked(Arc<str>),
    /// Kicked without a reason: the connection closes with no KICK package (pomelo's
    /// `kickBySessionId(sid)` with no reason).
    KickedSilently,
    /// Removed with [`SessionService::remove`](crate::SessionService::remove): no events, the
    /// transport drops the connection without a KICK package.
    Removed,
    /// The peer closed the connection.
    PeerClosed,
    /// No HEARTBEAT from the client within the heartbeat timeout.
    HeartbeatTimeout,
    /// The client did not complete the handshake in time.
    HandshakeTimeout,
    /// The client broke the protocol (malformed or oversized package, bad WebSocket frame…).
    ProtocolViolation(&'static str),
    /// The handshake was refused with this code (500: malformed or rejected by the hook,
    /// 501: client type/version refused); the reply carried only the code.
    HandshakeRejected(u16),
    /// The client read too slowly: its queued outbound bytes passed the per-connection limit.
    SlowConsumer,
    /// The socket failed.
    Io(io::ErrorKind),
    /// The server is shutting down.
    Shutdown,
    /// Application code panicked while handling this session: a [`Handler`] method or a
    /// [`SessionListener`] callback for it. The panic is caught; it costs this connection only
    /// (logged with the panic message, counted), never the I/O thread or other sessions.
    ///
    /// [`Handler`]: crate::server::Handler
    HandlerPanic,
    /// The TLS layer (feature `tls`) ended the connection: a plain client on a TLS-only port,
    /// a TLS handshake not completed within its timeout, or a TLS error (the text is rustls'
    /// description; its alert, if any, was sent first).
    Tls(Arc<str>),
}

impl CloseReason {
    /// The text for the KICK package, if one must be sent: only [`CloseReason::Kicked`] has one.
    pub fn kick_message(&self) -> Option<&str> {
        match self {
            CloseReason::Kicked(reason) => Some(reason),
            _ => None,
        }
    }

    /// The reason a kick call asked for: `Some(text)` sends a KICK package, `None` closes
    /// silently.
    pub fn kick(reason: Option<&str>) -> CloseReason {
        match reason {
            Some(text) => CloseReason::Kicked(Arc::from(text)),
            None => CloseReason::KickedSilently,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Kicked(reason) => write!(f, "kicked: {reason}"),
            CloseReason::KickedSilently => f.write_str("kicked"),
            CloseReason::Removed => f.write_str("removed from the session service"),
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::HeartbeatTimeout => f.write_str("heartbeat timeout"),
            CloseReason::HandshakeTimeout => f.write_str("handshake timeout"),
            CloseReason::ProtocolViolation(what) => write!(f, "protocol violation: {what}"),
            CloseReason::HandshakeRejected(code) => {
                write!(f, "handshake rejected with code {code}")
            }
            CloseReason::SlowConsumer => f.write_str("slow consumer: outbound limit exceeded"),
            CloseReason::Io(kind) => write!(f, "i/o error: {kind}"),
            CloseReason::Shutdown => f.write_str("server shutting down"),
            CloseReason::HandlerPanic => f.write_str("application handler panicked"),
            CloseReason::Tls(what) => write!(f, "tls: {what}"),
        }
    }
}

impl fmt::Debug for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseReason({self})")
    }
}
