//! [`Sessions`]: the game's handle on the session service — the game methods of
//! [`SessionService`], and pushes by route and body (pinus `channelService.pushMessageByUids`,
//! `Session.sendBatch`).

use crate::error::{
    BindError, BroadcastError, SendError, SendErrorKind, UidSendError, UnbindError, UnknownSession,
};
use crate::frame::Frame;
use crate::id::Sid;
use crate::index::SidList;
use crate::protocol::{encode_push, encode_push_with, Dictionary, EncodeError, Protos, Route};
use crate::service::SessionService;
use crate::session::{SessionInfo, SessionSnapshot, Settings};
use crate::uid::Uid;
use serde_json::Value;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// The session service as game code sees it: every game method of [`SessionService`] (bind,
/// kick, settings, sends, walks), plus pushes that take a route and a body and do the encoding.
///
/// # Who holds which handle
///
/// * **Game code** (handlers, game threads) holds a `Sessions`: [`Request::service`] and
///   [`Server::service`] hand one out. It cannot reach the transport's methods —
///   [`create`](SessionService::create), [`create_in`](SessionService::create_in),
///   [`close`](SessionService::close) and [`inbox`](SessionService::inbox) (hence no waker, no
///   drain) — so it cannot create phantom sessions, close one behind the transport's back
///   without the KICK/`closed` protocol, or steal a shard's commands.
/// * **The transport** (the connector's I/O threads, or an embedder's own I/O loop) holds the
///   `Arc<SessionService>` itself. An embedder builds the `Sessions` for its game code with
///   [`Sessions::new`].
///
/// `Sessions` is `Clone + Send + Sync`: a clone is two reference-count increments. Move one
/// into any thread.
///
/// The transport's methods do not exist on it (nor does it deref to the service):
///
/// ```compile_fail
/// # use gatehouse::{SessionConfig, SessionService, Sessions};
/// # use std::sync::Arc;
/// let sessions = Sessions::new(Arc::new(SessionService::new(SessionConfig::default()).unwrap()), None);
/// let sid = sessions.create(None); // error: only the transport creates sessions
/// ```
///
/// ```compile_fail
/// # use gatehouse::{SessionConfig, SessionService, Sessions};
/// # use std::sync::Arc;
/// let sessions = Sessions::new(Arc::new(SessionService::new(SessionConfig::default()).unwrap()), None);
/// sessions.inbox(0).unwrap().drain(|_| {}); // error: the inboxes are the transport's
/// ```
///
/// ```compile_fail
/// # use gatehouse::{CloseReason, SessionConfig, SessionService, Sessions, Sid};
/// # use std::sync::Arc;
/// let sessions = Sessions::new(Arc::new(SessionService::new(SessionConfig::default()).unwrap()), None);
/// sessions.close(Sid::from_raw(1), CloseReason::Shutdown); // error: kick instead
/// ```
///
/// # Pushes
///
/// [`push`](Self::push), [`push_to_uid`](Self::push_to_uid), [`push_to_uids`](Self::push_to_uids)
/// and [`push_to_all`](Self::push_to_all) take a route and a [`PushBody`] (a JSON value, or bytes
/// already serialised). Each call encodes the pomelo PUSH message **once**, into one [`Frame`]
/// that every recipient shares by reference count: the route becomes its 2-byte dictionary
/// code when the server's dictionary has it (pinus with `useDict`), else it is sent by name. A
/// JSON body is serialised straight into the package — in protobuf when the route has a server
/// proto ([`with_protos`](Self::with_protos), pinus with `useProtobuf`), else as JSON text — so
/// the only allocations of a call are the frame's bytes (exactly their length) and, for the
/// calls that fan out, the frame's one shared header — none per recipient
/// (`tests/push_alloc.rs` counts them). Raw bodies ([`PushBody::Raw`]) are sent as given.
///
/// A message that cannot be encoded (the whole message over the package limit of 2²⁴ − 1
/// bytes, a route of more than 255 bytes that the dictionary does not compress, or a JSON
/// body that does not fit its route's server proto) is an [`EncodeError`]; nothing is queued.
///
/// # Back-pressure and retries
///
/// A full shard inbox (its I/O thread is behind) refuses a push; nothing is dropped silently.
/// [`push_to_all`](Self::push_to_all) and [`push_to_uids`](Self::push_to_uids) return a
/// [`PushReport`] listing exactly the sessions that were skipped; [`retry`](Self::retry) sends
/// the same frame to exactly those, so a retried broadcast never delivers twice:
///
/// ```
/// use gatehouse::{SessionConfig, SessionService, Sessions};
/// use serde_json::json;
/// use std::sync::Arc;
///
/// let service = Arc::new(SessionService::new(SessionConfig::default().shards(1).inbox_capacity(2)).unwrap());
/// let sessions = Sessions::new(service.clone(), None);
/// for uid in ["a", "b", "c"] {
///     let sid = service.create(None).unwrap(); // the transport's job
///     sessions.bind(sid, uid).unwrap();
/// }
///
/// let mut report = sessions.push_to_all("onTick", &json!({"t": 1})).unwrap();
/// assert_eq!((report.enqueued(), report.skipped().len()), (2, 1)); // the inbox holds 2
/// while !report.is_complete() {
///     // In a real server the I/O thread drains meanwhile; wait a little, then retry.
///     service.inbox(0).unwrap().drain(|_| {});
///     sessions.retry(&mut report);
/// }
/// assert_eq!(report.enqueued(), 3);
/// ```
///
/// Per session, frames keep their order only if you retry before pushing the next message
/// to the same sessions (a retried frame goes behind whatever was queued meanwhile).
///
/// [`Request::service`]: crate::server::Request::service
/// [`Server::service`]: crate::server::Server::service
#[derive(Clone)]
pub struct Sessions {
    service: Arc<SessionService>,
    dictionary: Option<Arc<Dictionary>>,
    protos: Option<Arc<Protos>>,
}

/// The body of a push: a JSON value, serialised once per call, or bytes already encoded (JSON
/// text, protobuf…) sent as they are.
///
/// Built with `From` from `&Value`, `&[u8]`, `&[u8; N]` and `&Vec<u8>`, so the push methods
/// take `&json!(…)` or `b"…"` directly. There is deliberately no `From<&str>`: a string would
/// be ambiguous between "this JSON text" and "this JSON string value" — pass
/// `text.as_bytes()` for the first, `&Value::from(text)` for the second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PushBody<'a> {
    /// Serialised with `serde_json` into the package (as pinus's `JSON.stringify`).
    Json(&'a Value),
    /// Sent as is.
    Raw(&'a [u8]),
}

impl<'a> From<&'a Value> for PushBody<'a> {
    fn from(value: &'a Value) -> Self {
        PushBody::Json(value)
    }
}

impl<'a> From<&'a [u8]> for PushBody<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        PushBody::Raw(bytes)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for PushBody<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        PushBody::Raw(bytes)
    }
}

impl<'a> From<&'a Vec<u8>> for PushBody<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        PushBody::Raw(bytes)
    }
}

/// Why [`Sessions::push`] or [`Sessions::push_to_uid`] queued nothing (or not everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// The message could not be encoded; nothing was queued.
    Encode(EncodeError),
    /// [`push`](Sessions::push): the session is unknown or closed, or its inbox is full. The
    /// encoded frame is handed back: send it again with
    /// [`send_message`](Sessions::send_message) rather than encoding again.
    Send(SendError),
    /// [`push_to_uid`](Sessions::push_to_uid): no session is bound to the uid, or some inboxes
    /// were full (see [`UidSendError`]).
    Uid(UidSendError),
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Encode(err) => write!(f, "cannot encode push: {err}"),
            PushError::Send(err) => err.fmt(f),
            PushError::Uid(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PushError::Encode(err) => Some(err),
            PushError::Send(err) => Some(err),
            PushError::Uid(err) => Some(err),
        }
    }
}

impl From<EncodeError> for PushError {
    fn from(err: EncodeError) -> Self {
        PushError::Encode(err)
    }
}

/// What a fan-out push did: how many sessions the frame was queued for, and exactly which
/// sessions were skipped because their shard's inbox was full. Hand it to
/// [`Sessions::retry`] to send the same frame to exactly those sessions.
///
/// Holds the encoded frame (a reference count, not a copy). The skipped list allocates only
/// when something was skipped.
#[derive(Debug, Clone)]
pub struct PushReport {
    frame: Frame,
    enqueued: usize,
    skipped: Vec<Sid>,
    /// Per entry of `skipped`: the uid the push was for (`None`: any bound session, for
    /// `push_to_all`). A retry reaches the session only if it is still bound to it.
    skipped_for: Vec<Option<Uid>>,
    gone: usize,
}

impl PushReport {
    fn new(frame: Frame) -> PushReport {
        PushReport {
            frame,
            enqueued: 0,
            skipped: Vec::new(),
            skipped_for: Vec::new(),
            gone: 0,
        }
    }

    /// The encoded PUSH package every recipient shares.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Sessions the frame has been queued for, retries included.
    pub fn enqueued(&self) -> usize {
        self.enqueued
    }

    /// Sessions the frame is still owed to: their inbox was full at the last attempt. Each
    /// appears once; order is the order they were tried in.
    pub fn skipped(&self) -> &[Sid] {
        &self.skipped
    }

    /// Skipped sessions that had closed by the time a [`retry`](Sessions::retry) reached
    /// them: dropped from [`skipped`](Self::skipped), never delivered.
    pub fn gone(&self) -> usize {
        self.gone
    }

    /// True when no session is owed the frame any more.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty()
    }
}

/// Why a uid given to [`Sessions::push_to_uids`] did not get the push on all its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidMiss {
    /// No session is bound to the uid (pinus's `pushMessageByUids` reports these uids as
    /// failed).
    Offline,
    /// Some of the uid's sessions had a full inbox: the frame was queued for `enqueued` of
    /// them and refused for `refused`. The refused sessions are in the report's
    /// [`PushReport::skipped`], for [`Sessions::retry`].
    InboxFull {
        /// Sessions of the uid the frame was queued for.
        enqueued: usize,
        /// Sessions of the uid whose inbox was full.
        refused: usize,
    },
}

/// What [`Sessions::push_to_uids`] did, per uid and per session.
///
/// Lists only the uids that did *not* get the push everywhere, so it allocates only when
/// there is one (or a retry is owed): a push to 10 000 online uids allocates nothing for them.
#[derive(Debug, Clone)]
pub struct UidsReport<'u> {
    /// Per session: sessions reached, sessions skipped on a full inbox. Retry with
    /// `sessions.retry(&mut report.push)`.
    pub push: PushReport,
    /// Uids whose every session got the frame at the first attempt.
    pub delivered_uids: usize,
    /// The other uids, in the order given, with why. Reflects the first attempt: a later
    /// [`retry`](Sessions::retry) updates [`push`](Self::push), not this list.
    pub missed: Vec<(&'u str, UidMiss)>,
}

impl<'u> UidsReport<'u> {
    /// The uids that had no session (pinus's failed uids), in the order given.
    pub fn offline(&self) -> impl Iterator<Item = &'u str> + '_ {
        self.missed
            .iter()
            .filter(|(_, miss)| *miss == UidMiss::Offline)
            .map(|(uid, _)| *uid)
    }
}

/// [`Sessions::send_batch`] did not queue every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchError {
    /// [`SendErrorKind::UnknownSession`] (nothing queued) or [`SendErrorKind::InboxFull`].
    pub kind: SendErrorKind,
    /// How many frames, from the start of the batch, were queued: `frames[queued..]` were not.
    pub queued: usize,
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SendErrorKind::UnknownSession => f.write_str("session does not exist"),
            SendErrorKind::InboxFull => write!(
                f,
                "outbound inbox full: batch queued up to frame {} only",
                self.queued
            ),
            SendErrorKind::TooLarge => f.write_str("message too large for one package"),
        }
    }
}

impl std::error::Error for BatchError {}

impl Sessions {
    /// The game handle on `service`; pushes compress routes through `dictionary` when it has
    /// them. The connector builds one per server ([`Server::service`](crate::server::Server::service));
    /// an embedder with its own transport builds its own.
    pub fn new(service: Arc<SessionService>, dictionary: Option<Arc<Dictionary>>) -> Sessions {
        Sessions {
            service,
            dictionary,
            protos: None,
        }
    }

    /// The same handle, with JSON pushes on routes of `protos`' server protos encoded in
    /// protobuf (pinus `useProtobuf`); `None` turns that off. The connector does this for the
    /// protos given to [`ServerBuilder::protos`](crate::server::ServerBuilder::protos); an
    /// embedder with its own transport must announce the same protos in its handshake
    /// ([`HandshakeConfig::with_protos`](crate::protocol::HandshakeConfig::with_protos)).
    pub fn with_protos(mut self, protos: Option<Arc<Protos>>) -> Sessions {
        self.protos = protos;
        self
    }

    /// The protos pushes are encoded with, if protobuf is on.
    pub fn protos(&self) -> Option<&Arc<Protos>> {
        self.protos.as_ref()
    }

    /// The raw service, for the connector's own use (`Responder`).
    #[cfg_attr(gatehouse_loom, allow(dead_code))] // no connector in loom builds
    pub(crate) fn raw(&self) -> &Arc<SessionService> {
        &self.service
    }

    /// The route dictionary pushes are compressed with, if any.
    pub fn dictionary(&self) -> Option<&Dictionary> {
        self.dictionary.as_deref()
    }

    /// The session configuration in force.
    pub fn config(&self) -> &crate::SessionConfig {
        self.service.config()
    }

    // === lookups (forwarded) =================================================================

    /// See [`SessionService::get`].
    pub fn get(&self, sid: Sid) -> Option<SessionInfo> {
        self.service.get(sid)
    }

    /// See [`SessionService::contains`].
    pub fn contains(&self, sid: Sid) -> bool {
        self.service.contains(sid)
    }

    /// See [`SessionService::snapshot`].
    pub fn snapshot(&self, sid: Sid) -> Option<SessionSnapshot> {
        self.service.snapshot(sid)
    }

    /// See [`SessionService::get_by_uid`].
    pub fn get_by_uid(&self, uid: &str) -> Option<SidList> {
        self.service.get_by_uid(uid)
    }

    /// See [`SessionService::client_address`].
    pub fn client_address(&self, sid: Sid) -> Option<SocketAddr> {
        self.service.client_address(sid)
    }

    /// See [`SessionService::setting`].
    pub fn setting(&self, sid: Sid, key: &str) -> Option<Value> {
        self.service.setting(sid, key)
    }

    /// See [`SessionService::sessions_count`].
    pub fn sessions_count(&self) -> usize {
        self.service.sessions_count()
    }

    /// See [`SessionService::bound_uids_count`].
    pub fn bound_uids_count(&self) -> usize {
        self.service.bound_uids_count()
    }

    /// See [`SessionService::listener_panics`].
    pub fn listener_panics(&self) -> u64 {
        self.service.listener_panics()
    }

    // === bind, settings (forwarded) ==========================================================

    /// See [`SessionService::bind`].
    ///
    /// # Errors
    ///
    /// See [`BindError`].
    pub fn bind(&self, sid: Sid, uid: &str) -> Result<(), BindError> {
        self.service.bind(sid, uid)
    }

    /// See [`SessionService::unbind`].
    ///
    /// # Errors
    ///
    /// See [`UnbindError`].
    pub fn unbind(&self, sid: Sid, uid: &str) -> Result<(), UnbindError> {
        self.service.unbind(sid, uid)
    }

    /// See [`SessionService::import`].
    ///
    /// # Errors
    ///
    /// [`UnknownSession`] if the session does not exist.
    pub fn import(
        &self,
        sid: Sid,
        key: impl Into<String>,
        value: Value,
    ) -> Result<(), UnknownSession> {
        self.service.import(sid, key, value)
    }

    /// See [`SessionService::import_all`].
    ///
    /// # Errors
    ///
    /// [`UnknownSession`] if the session does not exist.
    pub fn import_all(&self, sid: Sid, settings: Settings) -> Result<(), UnknownSession> {
        self.service.import_all(sid, settings)
    }

    /// See [`SessionService::remove_setting`] (pinus `Session.remove(key)`).
    ///
    /// # Errors
    ///
    /// [`UnknownSession`] if the session does not exist.
    pub fn remove_setting(&self, sid: Sid, key: &str) -> Result<Option<Value>, UnknownSession> {
        self.service.remove_setting(sid, key)
    }

    // === kick, remove (forwarded) ============================================================

    /// See [`SessionService::kick`].
    pub fn kick(&self, uid: &str, reason: Option<&str>) -> usize {
        self.service.kick(uid, reason)
    }

    /// See [`SessionService::kick_by_session_id`].
    pub fn kick_by_session_id(&self, sid: Sid, reason: Option<&str>) -> bool {
        self.service.kick_by_session_id(sid, reason)
    }

    /// See [`SessionService::remove`].
    pub fn remove(&self, sid: Sid) -> Option<SessionSnapshot> {
        self.service.remove(sid)
    }

    // === pre-encoded frames (forwarded) ======================================================

    /// See [`SessionService::send_message`].
    ///
    /// # Errors
    ///
    /// See [`SendError`].
    pub fn send_message(&self, sid: Sid, frame: Frame) -> Result<(), SendError> {
        self.service.send_message(sid, frame)
    }

    /// See [`SessionService::send_message_by_uid`].
    ///
    /// # Errors
    ///
    /// See [`UidSendError`].
    pub fn send_message_by_uid(&self, uid: &str, frame: &Frame) -> Result<usize, UidSendError> {
        self.service.send_message_by_uid(uid, frame)
    }

    /// See [`SessionService::broadcast`].
    ///
    /// # Errors
    ///
    /// See [`BroadcastError`].
    pub fn broadcast(&self, frame: &Frame) -> Result<usize, BroadcastError> {
        self.service.broadcast(frame)
    }

    /// Queues `frames` for one session, in order, with one wake-up of its I/O thread (pomelo
    /// `Session.sendBatch`). Returns how many were queued: all of them on success.
    ///
    /// The session is checked once, up front; a close racing the batch is harmless (the
    /// transport drops sends for a sid it no longer has). The connector writes everything
    /// queued for a connection in one go, so the batch leaves in as few writes as pomelo's
    /// concatenated packages. Allocation-free for frames made with [`Frame::new`] (a clone is
    /// a reference count).
    ///
    /// # Errors
    ///
    /// [`BatchError`] with [`SendErrorKind::UnknownSession`] (nothing queued), or with
    /// [`SendErrorKind::InboxFull`] when the inbox filled part-way: the first
    /// [`queued`](BatchError::queued) frames were queued, in order, and none after them (so
    /// that order holds), and the I/O thread has been woken to drain. Send
    /// `&frames[err.queued..]` again later; nothing was lost silently.
    pub fn send_batch(&self, sid: Sid, frames: &[Frame]) -> Result<usize, BatchError> {
        let inbox = self
            .service
            .contains(sid)
            .then(|| self.service.inbox(sid.shard()))
            .flatten()
            .ok_or(BatchError {
                kind: SendErrorKind::UnknownSession,
                queued: 0,
            })?;
        let mut queued = 0;
        for frame in frames {
            if inbox.push_send_unnotified(sid, frame.clone()).is_err() {
                break;
            }
            queued += 1;
        }
        // One wake-up for the batch; on a full inbox too, so its consumer starts draining.
        if !frames.is_empty() {
            inbox.notify();
        }
        if queued == frames.len() {
            Ok(queued)
        } else {
            Err(BatchError {
                kind: SendErrorKind::InboxFull,
                queued,
            })
        }
    }

    // === iteration (forwarded) ===============================================================

    /// See [`SessionService::for_each_session`].
    pub fn for_each_session(&self, f: impl FnMut(Sid, Option<&Uid>)) {
        self.service.for_each_session(f);
    }

    /// See [`SessionService::for_each_bound_session`].
    pub fn for_each_bound_session(&self, f: impl FnMut(Sid, &Uid)) {
        self.service.for_each_bound_session(f);
    }

    // === pushes by route and body ============================================================

    /// Encodes a PUSH package on `route` with `body`, as the push methods do (route compressed
    /// through the dictionary when it has it): for [`send_message`](Self::send_message),
    /// [`send_batch`](Self::send_batch) or a later [`broadcast`](Self::broadcast). The frame
    /// has its shared header, so clones are allocation-free.
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLarge`] if the message exceeds one package,
    /// [`EncodeError::RouteTooLong`] for an uncompressed route over 255 bytes.
    pub fn encode_push<'b>(
        &self,
        route: &str,
        body: impl Into<PushBody<'b>>,
    ) -> Result<Frame, EncodeError> {
        self.encode(route, body.into()).map(Frame::new)
    }

    /// Pushes `body` on `route` to one session (pinus `channelService.pushMessageByUids` with
    /// one receiver, by sid). Allocates the encoded bytes only, once.
    ///
    /// # Errors
    ///
    /// [`PushError::Encode`] (nothing queued), or [`PushError::Send`] when the session is
    /// unknown or its inbox is full; the encoded frame is in the error for a retry with
    /// [`send_message`](Self::send_message).
    pub fn push<'b>(
        &self,
        sid: Sid,
        route: &str,
        body: impl Into<PushBody<'b>>,
    ) -> Result<(), PushError> {
        // One receiver: no clone is ever made, so the frame needs no shared header.
        let frame = Frame::from(bytes::Bytes::from(self.encode(route, body.into())?));
        self.service
            .send_message(sid, frame)
            .map_err(PushError::Send)
    }

    /// Pushes `body` on `route` to every session bound to `uid`, in bind order (pomelo
    /// `sendMessageByUid` with the encoding done). Returns how many sessions it was queued
    /// for. Allocates the frame (its bytes and its shared header) and nothing per session for
    /// up to eight sessions per uid.
    ///
    /// # Errors
    ///
    /// [`PushError::Encode`] (nothing queued), or [`PushError::Uid`]: the uid has no session,
    /// or some of its sessions' inboxes were full. That error does not say *which* sessions
    /// were refused; to retry exactly, push with [`push_to_uids`](Self::push_to_uids)`(&[uid],
    /// …)` and [`retry`](Self::retry) its report.
    pub fn push_to_uid<'b>(
        &self,
        uid: &str,
        route: &str,
        body: impl Into<PushBody<'b>>,
    ) -> Result<usize, PushError> {
        let frame = Frame::new(self.encode(route, body.into())?);
        self.service
            .send_message_by_uid(uid, &frame)
            .map_err(PushError::Uid)
    }

    /// Pushes `body` on `route` to every session of each of `uids` (pinus
    /// `channelService.pushMessageByUids` / `channelRemote.pushMessage`): one frame, encoded
    /// once, shared by every session. Takes `&["a", "b"]`, `&vec_of_strings`,
    /// `names.iter().map(String::as_str)`, `&[Uid]`…
    ///
    /// The report says, per uid that did not get it everywhere, whether it was offline or
    /// which part of its sessions had a full inbox; per session, how many got it and exactly
    /// which were skipped (for [`retry`](Self::retry)). A uid given twice is pushed twice.
    ///
    /// Allocation: the frame (its bytes and shared header), then nothing per uid or session
    /// while every uid is online with at most four sessions (the `SidList` of
    /// [`get_by_uid`](SessionService::get_by_uid) spills to the heap past four); the report's
    /// lists allocate only when a uid is missed.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] only; nothing was queued.
    ///
    /// # Examples
    ///
    /// ```
    /// use gatehouse::{SessionConfig, SessionService, Sessions, UidMiss};
    /// use serde_json::json;
    /// use std::sync::Arc;
    ///
    /// let service = Arc::new(SessionService::new(SessionConfig::default()).unwrap());
    /// let sessions = Sessions::new(service.clone(), None);
    /// let sid = service.create(None).unwrap();
    /// sessions.bind(sid, "alice").unwrap();
    ///
    /// let report = sessions.push_to_uids(&["alice", "bob"], "onChat", &json!({"msg": "hi"})).unwrap();
    /// assert_eq!(report.push.enqueued(), 1);
    /// assert_eq!(report.delivered_uids, 1);
    /// assert_eq!(report.missed, [("bob", UidMiss::Offline)]);
    /// assert!(report.push.is_complete());
    /// ```
    pub fn push_to_uids<'u, 'b, S>(
        &self,
        uids: impl IntoIterator<Item = &'u S>,
        route: &str,
        body: impl Into<PushBody<'b>>,
    ) -> Result<UidsReport<'u>, EncodeError>
    where
        S: AsRef<str> + ?Sized + 'u,
    {
        let frame = Frame::new(self.encode(route, body.into())?);
        let mut report = UidsReport {
            push: PushReport::new(frame),
            delivered_uids: 0,
            missed: Vec::new(),
        };
        for uid in uids {
            let uid = uid.as_ref();
            // Pushed under the uid index's read lock (see `send_message_by_uid`): never to a
            // session that was unbound and rebound to another user since the lookup.
            let (frame, skipped) = (&report.push.frame, &mut report.push.skipped);
            let mut refused_here = 0;
            let result = self.service.send_by_uid_reporting(uid, frame, |sid| {
                skipped.push(sid);
                refused_here += 1;
            });
            for _ in 0..refused_here {
                report.push.skipped_for.push(Some(Uid::new(uid)));
            }
            match result {
                Ok(enqueued) => {
                    report.push.enqueued += enqueued;
                    report.delivered_uids += 1;
                }
                Err(UidSendError::UnknownUid) => report.missed.push((uid, UidMiss::Offline)),
                Err(UidSendError::InboxFull { enqueued, refused }) => {
                    report.push.enqueued += enqueued;
                    report
                        .missed
                        .push((uid, UidMiss::InboxFull { enqueued, refused }));
                }
            }
        }
        Ok(report)
    }

    /// Pushes `body` on `route` to every live session bound to a uid, once per session (pinus
    /// `channelService.broadcast` with `binded: true`, without its duplicates; see
    /// [`SessionService::broadcast`]). Unbound sessions are skipped.
    ///
    /// Allocation: the frame (its bytes and shared header), nothing per session; the report's
    /// skipped list only when an inbox was full.
    ///
    /// # Errors
    ///
    /// [`EncodeError`] only; nothing was queued. A full inbox is not an error: the report
    /// lists the skipped sessions — see [`retry`](Self::retry) and the
    /// [type docs](Self#back-pressure-and-retries).
    pub fn push_to_all<'b>(
        &self,
        route: &str,
        body: impl Into<PushBody<'b>>,
    ) -> Result<PushReport, EncodeError> {
        let mut report = PushReport::new(Frame::new(self.encode(route, body.into())?));
        let skipped = &mut report.skipped;
        report.enqueued = match self
            .service
            .broadcast_reporting(&report.frame, |sid| skipped.push(sid))
        {
            Ok(enqueued) | Err(BroadcastError::InboxFull { enqueued, .. }) => enqueued,
        };
        report.skipped_for.resize(report.skipped.len(), None);
        Ok(report)
    }

    /// Sends `report`'s frame again to exactly the sessions it skipped, and updates it: they
    /// leave [`skipped`](PushReport::skipped) once queued, or once found closed or no longer
    /// bound as they were when skipped ([`gone`](PushReport::gone): a by-uid push is never
    /// retried onto a session that has changed hands); the ones refused again stay. Returns how many it queued
    /// now. Never delivers to a session twice; allocation-free.
    ///
    /// Wait between retries (the I/O threads need time to drain): a short sleep with backoff,
    /// or the next tick of your game loop.
    pub fn retry(&self, report: &mut PushReport) -> usize {
        let (mut queued, mut gone) = (0, 0);
        let mut kept = 0;
        for i in 0..report.skipped.len() {
            let (sid, uid) = (report.skipped[i], report.skipped_for[i].take());
            // Only if still bound as when it was skipped: never to a session's next user.
            match self
                .service
                .send_if_bound(sid, uid.as_ref().map(Uid::as_str), &report.frame)
            {
                Ok(()) => queued += 1,
                Err(SendErrorKind::InboxFull) => {
                    report.skipped[kept] = sid;
                    report.skipped_for[kept] = uid;
                    kept += 1;
                }
                Err(_) => gone += 1,
            }
        }
        report.skipped.truncate(kept);
        report.skipped_for.truncate(kept);
        report.enqueued += queued;
        report.gone += gone;
        queued
    }

    /// The PUSH package's bytes, in one exact allocation.
    fn encode(&self, route: &str, body: PushBody<'_>) -> Result<Vec<u8>, EncodeError> {
        let proto = match body {
            PushBody::Json(value) => self
                .protos
                .as_deref()
                .and_then(|p| p.server(route))
                .map(|message| (message, value)),
            PushBody::Raw(_) => None,
        };
        let route = match self.dictionary.as_deref() {
            Some(dict) => dict.compress(route),
            None => Route::Name(route),
        };
        let mut out = Vec::new();
        if let Some((message, value)) = proto {
            // A route of the server protos: the body in protobuf, measured then written, so
            // the package is allocated once at its exact size (as for JSON below).
            let len = message.encoded_len(value).map_err(EncodeError::Protobuf)?;
            let (mut failed, mut exact) = (None, true);
            encode_push_with(route, len, &mut out, |out| {
                let start = out.len();
                match message.encode(value, out) {
                    Ok(()) => exact = out.len() - start == len,
                    Err(err) => failed = Some(err),
                }
            })?;
            if let Some(err) = failed {
                return Err(EncodeError::Protobuf(err));
            }
            if !exact {
                // `encoded_len` and `encode` disagree (a codec bug): never send a header
                // with another length; encode the body alone, then the package.
                let mut body = Vec::new();
                message
                    .encode(value, &mut body)
                    .map_err(EncodeError::Protobuf)?;
                out = Vec::new();
                encode_push(route, &body, &mut out)?;
            }
            return Ok(out);
        }
        match body {
            PushBody::Raw(bytes) => encode_push(route, bytes, &mut out)?,
            PushBody::Json(value) => match json_len(value) {
                // Serialised twice, counting then writing, so the package is allocated once,
                // at its exact size, with no intermediate buffer.
                Some(len) => {
                    let mut exact = true;
                    encode_push_with(route, len, &mut out, |out| {
                        let start = out.len();
                        // Writing a `Value` into a `Vec` cannot fail, and writes what the
                        // counting pass counted; checked all the same.
                        exact = serde_json::to_writer(&mut *out, value).is_ok()
                            && out.len() - start == len;
                    })?;
                    // A mismatch (impossible, see above) would leave a wrong length in the
                    // header: fall back to the plain path rather than send that.
                    if !exact {
                        out = Vec::new();
                        encode_push(route, &json_bytes(value), &mut out)?;
                    }
                }
                None => encode_push(route, &json_bytes(value), &mut out)?,
            },
        }
        Ok(out)
    }
}

/// The length of `value` serialised by `serde_json`, without allocating; `None` if it cannot
/// be serialised (a `Value` always can).
fn json_len(value: &Value) -> Option<usize> {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).ok()?;
    Some(count.0)
}

/// `value` as JSON text; `{}` if it cannot be serialised (as [`Responder`](crate::server::Responder)).
fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("service", &self.service)
            .field("dictionary", &self.dictionary.as_ref().map(|d| d.len()))
            .field("protos", &self.protos.as_ref().map(|p| p.version()))
            .finish()
    }
}

// === SessionService additions ====================================================================

impl SessionService {
    /// Removes one settings key of a live session and returns its value, `None` if the key was
    /// not set (pinus `Session.remove(key)`; pomelo's deletes the wrong field, spec §1.5).
    ///
    /// # Errors
    ///
    /// [`UnknownSession`] if the session does not exist.
    pub fn remove_setting(&self, sid: Sid, key: &str) -> Result<Option<Value>, UnknownSession> {
        let mut removed = None;
        self.with_settings(sid, |settings| removed = settings.remove(key))?;
        Ok(removed)
    }
}
