//! [`SessionService`]: the frontend session registry (pomelo's `SessionService`).

use crate::config::{ConfigError, SessionConfig};
use crate::error::{
    BindError, BroadcastError, CreateError, SendError, SendErrorKind, UidSendError, UnbindError,
    UnknownSession,
};
use crate::event_queue::Event;
use crate::events::{CloseReason, SessionListener};
use crate::frame::Frame;
use crate::id::Sid;
use crate::inbox::Inbox;
use crate::index::{SidList, UidIndex};
use crate::registry::{Registry, Shard};
use crate::session::{
    ColdData, SessionEntry, SessionInfo, SessionSnapshot, SessionState, Settings,
};
use crate::sync::{AtomicU64, AtomicUsize, CachePadded, Ordering, RwLock};
use crate::uid::Uid;
use serde_json::Value;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Sessions copied out of a shard per lock hold while iterating (see `for_each_session`).
const VISIT_CHUNK: usize = 32;
/// Live sessions a broadcast walks per shard read-lock hold (see `broadcast`), rounded up to a
/// whole bitmap word: long enough that the lock's two atomic operations vanish in the
/// per-session cost, short enough that a writer (`bind`, `close`) waits at most a few
/// microseconds behind it. (Vacant slots cost one bitmap word per 64 and are not counted.)
const BROADCAST_CHUNK: usize = 256;
/// Slots per word of a registry's occupancy bitmap.
const WORD_SLOTS: usize = u64::BITS as usize;

/// The frontend session registry: one session per client connection, bound to user ids,
/// kicked, pushed to by sid or by uid. pomelo's `SessionService`, sharded and lock-light.
///
/// `SessionService` is `Send + Sync`; share it with `Arc`. It is transport-agnostic: it never
/// touches a socket. Everything that must reach a connection (frames, kicks, closes) becomes a
/// [`Command`](crate::Command) in the owning shard's [`Inbox`], which the transport drains (the
/// pomelo connector in this crate, your own I/O loop, or [`MemoryDriver`](crate::MemoryDriver)).
///
/// # Who holds it
///
/// This is the **transport's (or embedder's) full view**: besides the game methods it has the
/// life-cycle and plumbing methods only a transport may call — [`create`](Self::create) /
/// [`create_in`](Self::create_in) for a new connection, [`close`](Self::close) when one ends,
/// [`inbox`](Self::inbox) to plug in a waker and drain a shard. **Game code holds a
/// [`Sessions`](crate::Sessions)** instead (the connector hands one to every handler and
/// from [`Server::service`](crate::server::Server::service)): the same game methods without
/// those, plus pushes by route and body.
///
/// # Concurrency and cost
///
/// | method | locks | allocates |
/// | --- | --- | --- |
/// | [`get`](Self::get), [`send_message`](Self::send_message) | one shard read lock | no |
/// | [`send_message_by_uid`](Self::send_message_by_uid) | one index shard read lock | no |
/// | [`for_each_session`](Self::for_each_session), [`for_each_bound_session`](Self::for_each_bound_session) | each shard's read lock, briefly, once per 32 sessions | no |
/// | [`broadcast`](Self::broadcast), [`broadcast_reporting`](Self::broadcast_reporting) | each shard's read lock once per 256 sessions; lock-free pushes under it | no |
/// | [`bind`](Self::bind), [`unbind`](Self::unbind) | one shard write lock, with one index shard write lock nested inside it | first bind of a uid only |
/// | [`create`](Self::create), close/kick | one shard write lock (+ one index shard lock) | yes (cold) |
///
/// No method holds a lock while it calls your code ([`SessionListener`] events and `for_each`
/// callbacks), so callbacks may call any method of the service, including ones that close or
/// bind sessions.
///
/// # Differences from pomelo
///
/// * Uids are `Option<Uid>`: the falsy-uid bug (`0`/`""` treated as unbound, leaving stale
///   index entries) cannot happen. Empty uids and uids over `max_uid_len` are refused.
/// * Sids are allocated here (`create` does not take one) and are never reused; `create`
///   cannot silently overwrite a live session. They are at most 2^53 − 1, so exact as
///   JavaScript numbers, and are **not** ordered by creation (see [`Sid`]): pomelo's integer
///   ids are, but its backends never compare sids, and exactness in JavaScript matters more.
/// * `for_each_bound_session` visits each bound *session* once. pomelo's binded broadcast
///   (`forEachBindedSession` + `sendMessageByUid`) delivers k copies to each of a uid's k
///   sessions; here you send by sid and each session gets one.
/// * `send_message` to a live session whose connection has not finished the handshake is
///   queued; the pomelo transport drops it (as pinus does) and counts it.
/// * `remove` also tells the transport to drop the connection (pomelo leaves it dangling).
/// * A `closed` listener kicking other sessions of the uid being kicked is safe (pinus throws
///   a `TypeError`).
/// * `for_each_*` order is shard by shard, slot by slot, not ascending sid.
///
/// # Examples
///
/// ```
/// use gatehouse::{Command, Frame, SessionConfig, SessionService};
///
/// let service = SessionService::new(SessionConfig::default()).unwrap();
/// let sid = service.create(None).unwrap();
/// service.bind(sid, "player-1").unwrap();
///
/// let frame = Frame::from_static(b"\x04\x00\x00\x01\x06");
/// assert_eq!(service.send_message_by_uid("player-1", &frame), Ok(1));
/// assert_eq!(service.kick("player-1", Some("maintenance")), 1);
///
/// // The transport drains the shard: the frame, then the close with its KICK text.
/// let mut seen = Vec::new();
/// service.inbox(sid.shard()).unwrap().drain(|cmd| seen.push(cmd));
/// assert!(matches!(&seen[0], Command::Send { .. }));
/// assert!(matches!(&seen[1], Command::Close { reason, .. } if reason.kick_message() == Some("maintenance")));
/// ```
pub struct SessionService {
    config: SessionConfig,
    shards: Box<[CachePadded<Shard>]>,
    index: UidIndex,
    /// Round-robin cursor for [`create`](Self::create).
    next_shard: AtomicUsize,
    listener: Option<Arc<dyn SessionListener>>,
    /// Listener callbacks that panicked (each caught; see `fire`).
    listener_panics: AtomicU64,
}

impl SessionService {
    /// A service with no event listener.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if a setting is out of range.
    pub fn new(config: SessionConfig) -> Result<SessionService, ConfigError> {
        Self::build(config, None)
    }

    /// A service whose events go to `listener`.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if a setting is out of range.
    pub fn with_listener(
        config: SessionConfig,
        listener: Arc<dyn SessionListener>,
    ) -> Result<SessionService, ConfigError> {
        Self::build(config, Some(listener))
    }

    fn build(
        config: SessionConfig,
        listener: Option<Arc<dyn SessionListener>>,
    ) -> Result<SessionService, ConfigError> {
        config.validate()?;
        let shards = (0..config.shards)
            .map(|_| {
                CachePadded::new(Shard {
                    registry: RwLock::new(Registry::with_capacity(
                        config.initial_sessions_per_shard,
                    )),
                    inbox: Inbox::new(config.inbox_capacity),
                })
            })
            .collect();
        Ok(SessionService {
            index: UidIndex::new(config.index_shards),
            shards,
            config,
            next_shard: AtomicUsize::new(0),
            listener,
            listener_panics: AtomicU64::new(0),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The outbound inbox of `shard`, for the transport that drains it.
    pub fn inbox(&self, shard: usize) -> Option<&Inbox> {
        self.shards.get(shard).map(|s| &s.inbox)
    }

    fn shard_of(&self, sid: Sid) -> Option<&Shard> {
        self.shards.get(sid.shard()).map(|s| &**s)
    }

    /// Shard `shard`, for the test hooks in `__private`.
    #[cfg(all(feature = "internals", not(gatehouse_loom)))]
    pub(crate) fn shard_at(&self, shard: usize) -> Option<&Shard> {
        self.shards.get(shard).map(|s| &**s)
    }

    /// The uid index, for the test hooks in `__private`.
    #[cfg(all(feature = "internals", not(gatehouse_loom)))]
    pub(crate) fn uid_index(&self) -> &UidIndex {
        &self.index
    }

    // === create / lookup =====================================================================

    /// Creates an unbound session on the next shard in round-robin order (pomelo `create`).
    /// Transports that own a shard use [`create_in`](Self::create_in).
    ///
    /// # Errors
    ///
    /// [`CreateError::ShardFull`] when that shard holds `max_sessions_per_shard` sessions.
    pub fn create(&self, remote: Option<SocketAddr>) -> Result<Sid, CreateError> {
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.create_in(shard, remote)
    }

    /// Creates an unbound session on `shard`; the transport that drains that shard's inbox owns
    /// its connection. Emits no event (as pomelo).
    ///
    /// The sid takes the shard's lowest free slot, under that slot's next generation (see
    /// [`Sid`]): never one handed out before, and not ordered by creation.
    ///
    /// # Errors
    ///
    /// [`CreateError::NoSuchShard`] or [`CreateError::ShardFull`] (the shard holds
    /// `max_sessions_per_shard` sessions, or — after some 2^45 sessions in it — every slot of
    /// its id space is live or retired).
    pub fn create_in(&self, shard: usize, remote: Option<SocketAddr>) -> Result<Sid, CreateError> {
        let owner = self
            .shards
            .get(shard)
            .ok_or(CreateError::NoSuchShard(shard))?;
        let cold = Box::new(ColdData {
            remote,
            settings: Settings::new(),
        });
        let mut registry = owner.registry.write();
        let limit = self.config.max_sessions_per_shard;
        if registry.len() >= limit {
            return Err(CreateError::ShardFull { shard, limit });
        }
        registry
            .insert(shard, |sid| SessionEntry {
                sid,
                uid: None,
                cold,
            })
            .ok_or(CreateError::ShardFull { shard, limit })
    }

    /// The hot fields of a live session, copied without allocating; `None` if unknown or
    /// closed.
    pub fn get(&self, sid: Sid) -> Option<SessionInfo> {
        let shard = self.shard_of(sid)?;
        let registry = shard.registry.read();
        registry.get(sid).map(|e| SessionInfo {
            sid,
            uid: e.uid.clone(),
            remote: e.cold.remote,
        })
    }

    /// Whether `sid` is a live session.
    pub fn contains(&self, sid: Sid) -> bool {
        self.shard_of(sid)
            .is_some_and(|s| s.registry.read().get(sid).is_some())
    }

    /// A full copy of a live session (pomelo `toFrontendSession()`); allocates for settings.
    pub fn snapshot(&self, sid: Sid) -> Option<SessionSnapshot> {
        let shard = self.shard_of(sid)?;
        let registry = shard.registry.read();
        registry
            .get(sid)
            .map(|e| e.snapshot(&self.config.frontend_id, SessionState::Active))
    }

    /// The sids bound to `uid`, in bind order (pomelo `getByUid`); `None` if no session is
    /// bound to it. Inline for up to four sessions (no allocation).
    pub fn get_by_uid(&self, uid: &str) -> Option<SidList> {
        let mut sids = SidList::new();
        self.index.get_into(uid, &mut sids).then_some(sids)
    }

    /// The client address of a live session (pomelo `getClientAddressBySessionId`).
    pub fn client_address(&self, sid: Sid) -> Option<SocketAddr> {
        let shard = self.shard_of(sid)?;
        let registry = shard.registry.read();
        registry.get(sid).and_then(|e| e.cold.remote)
    }

    /// One settings value of a live session (cloned).
    pub fn setting(&self, sid: Sid, key: &str) -> Option<Value> {
        let shard = self.shard_of(sid)?;
        let registry = shard.registry.read();
        registry
            .get(sid)
            .and_then(|e| e.cold.settings.get(key).cloned())
    }

    /// Number of live sessions, bound or not, handshaken or not (pomelo `getSessionsCount`).
    pub fn sessions_count(&self) -> usize {
        self.shards.iter().map(|s| s.registry.read().len()).sum()
    }

    /// Number of uids with at least one bound session.
    pub fn bound_uids_count(&self) -> usize {
        self.index.uid_count()
    }

    // === bind / unbind =======================================================================

    /// Binds a live session to `uid` and fires [`SessionListener::bound`] (pomelo `bind`).
    ///
    /// Binding a session again to the uid it already has succeeds with no event. Several
    /// sessions may share a uid unless `single_session` is on.
    ///
    /// # Errors
    ///
    /// [`BindError`]: unknown session, bound to another uid, single-session conflict, or an
    /// empty/over-long uid. On error nothing changes and no event fires.
    ///
    /// # Concurrency
    ///
    /// The session's entry and the uid index change in **one critical section**: under the
    /// session's shard write lock, `bind` checks the entry, inserts into the index (the
    /// single-session check is in that same index critical section) and sets the entry's uid.
    /// So the index never lists a session for a uid it is not bound to: a failed or racing
    /// `bind` is never visible to [`send_message_by_uid`](Self::send_message_by_uid) or
    /// [`kick`](Self::kick), and with `single_session` two racing binds of one uid cannot both
    /// succeed. The [`bound`](SessionListener::bound) event fires after the locks are released,
    /// so a concurrent `send_message_by_uid` may reach the session before its listener runs;
    /// the event is queued inside the critical section, so it fires before any later event of
    /// the session (see [`SessionListener`] on event order).
    pub fn bind(&self, sid: Sid, uid: &str) -> Result<(), BindError> {
        if uid.is_empty() || uid.len() > self.config.max_uid_len {
            return Err(BindError::InvalidUid {
                len: uid.len(),
                max: self.config.max_uid_len,
            });
        }
        let shard = self.shard_of(sid).ok_or(BindError::UnknownSession(sid))?;
        // Built before taking the lock: a uid over 22 bytes allocates.
        let uid = Uid::new(uid);
        let single = self.config.single_session;
        {
            let mut registry = shard.registry.write();
            let entry = registry
                .get_mut(sid)
                .ok_or(BindError::UnknownSession(sid))?;
            match &entry.uid {
                Some(current) if *current == uid => return Ok(()),
                Some(current) => return Err(BindError::AlreadyBound(current.clone())),
                None => {}
            }
            // The index lock nests inside the shard lock (the only nesting in the crate, never
            // the other way round, so it cannot deadlock). As two separate steps, the index
            // entry would be visible before the bind commits: a by-uid send could reach a
            // session whose bind then fails (another user's session, or one closed meanwhile),
            // and a racing unbind could leave a bound session missing from the index.
            #[cfg(gatehouse_loom_mutant = "split_single_session_check")]
            if single && self.index.held_by_other(uid.as_str(), sid) {
                return Err(BindError::SingleSession(uid));
            }
            match self.index.insert(&uid, sid, single) {
                // Unbound sessions are in no index list (same critical section discipline).
                Ok(inserted) => debug_assert!(inserted, "unbound {sid:?} was indexed"),
                Err(crate::index::Occupied) => return Err(BindError::SingleSession(uid)),
            }
            entry.uid = Some(uid.clone());
            // The event is queued in the critical section that made the change, so it cannot
            // be overtaken by a racing close's `closed` (see `src/event_queue.rs`).
            #[cfg(not(gatehouse_loom_mutant = "events_fired_unlocked"))]
            if self.listener.is_some() {
                registry.events.push(Event::Bound(sid, uid));
            }
        }
        // Seeded bug for the loom models: fire straight after the unlock (the old code), so a
        // close committed in between can fire `closed` before this `bound`.
        #[cfg(gatehouse_loom_mutant = "events_fired_unlocked")]
        if let Some(listener) = &self.listener {
            listener.bound(sid, &uid);
        }
        self.dispatch(shard);
        Ok(())
    }

    /// Unbinds a session from `uid` and fires [`SessionListener::unbound`] (pomelo `unbind`).
    ///
    /// # Errors
    ///
    /// [`UnbindError::UnknownSession`], or [`UnbindError::NotBound`] quoting the uid the
    /// session *is* bound to (or `null`), as pinus does.
    pub fn unbind(&self, sid: Sid, uid: &str) -> Result<(), UnbindError> {
        let shard = self.shard_of(sid).ok_or(UnbindError::UnknownSession(sid))?;
        {
            let mut registry = shard.registry.write();
            let entry = registry
                .get_mut(sid)
                .ok_or(UnbindError::UnknownSession(sid))?;
            if entry.uid.as_ref().is_none_or(|current| current != uid) {
                return Err(UnbindError::NotBound {
                    current: entry.uid.clone(),
                });
            }
            // Index and entry in one critical section, as in `bind`; the event too.
            self.index.remove(uid, sid);
            let old = entry.uid.take();
            if let (Some(_), Some(old)) = (&self.listener, old) {
                registry.events.push(Event::Unbound(sid, old));
            }
        }
        self.dispatch(shard);
        Ok(())
    }

    // === settings ============================================================================

    /// Sets one settings key of a live session (pomelo `import`).
    ///
    /// # Errors
    ///
    /// [`UnknownSession`] if the session does not exist (for example, it closed meanwhile).
    pub fn import(
        &self,
        sid: Sid,
        key: impl Into<String>,
        value: Value,
    ) -> Result<(), UnknownSession> {
        self.with_settings(sid, |settings| {
            settings.insert(key.into(), value);
        })
    }

    /// Merges `settings` into a live session's settings: keys absent from `settings` stay
    /// (pomelo `importAll`).
    ///
    /// # Errors
    ///
    /// [`UnknownSession`] if the session does not exist.
    pub fn import_all(&self, sid: Sid, settings: Settings) -> Result<(), UnknownSession> {
        self.with_settings(sid, |current| current.extend(settings))
    }

    pub(crate) fn with_settings(
        &self,
        sid: Sid,
        f: impl FnOnce(&mut Settings),
    ) -> Result<(), UnknownSession> {
        let shard = self.shard_of(sid).ok_or(UnknownSession(sid))?;
        let mut registry = shard.registry.write();
        let entry = registry.get_mut(sid).ok_or(UnknownSession(sid))?;
        f(&mut entry.cold.settings);
        Ok(())
    }

    // === close / kick ========================================================================

    /// Closes a live session: it leaves the registry and the uid index, the transport gets a
    /// [`Command::Close`](crate::Command::Close), and [`SessionListener::closed`] fires with a
    /// snapshot and `reason`. Returns `false` (and does nothing) if the session is unknown or
    /// already closed, so the event fires exactly once.
    ///
    /// The close command is queued before the listener runs, so a panicking `closed` listener
    /// cannot leave the connection open with no session behind it.
    ///
    /// Transports call this for peer closes, timeouts and errors; applications usually
    /// [`kick`](Self::kick) or [`kick_by_session_id`](Self::kick_by_session_id).
    pub fn close(&self, sid: Sid, reason: CloseReason) -> bool {
        self.close_if_bound(sid, None, reason)
    }

    /// [`close`](Self::close), only if the session is still bound to `bound_to` (when given)
    /// at the moment it is taken out: `kick(uid)` works from a snapshot of the uid's sids, and
    /// a session unbound and rebound to another user since must not be kicked for the old one.
    fn close_if_bound(&self, sid: Sid, bound_to: Option<&str>, reason: CloseReason) -> bool {
        let Some(shard) = self.shard_of(sid) else {
            return false;
        };
        self.mutant_unindex_early(sid);
        {
            let mut registry = shard.registry.write();
            let Some(entry) = self.take_entry(&mut registry, sid, bound_to) else {
                return false;
            };
            if self.listener.is_some() {
                let snapshot = entry.into_snapshot(&self.config.frontend_id);
                registry
                    .events
                    .push(Event::Closed(Box::new(snapshot), reason.clone()));
            }
        }
        shard.inbox.push_close(sid, reason);
        self.dispatch(shard);
        true
    }

    /// Takes a session out of the registry and the uid index, under the shard's write lock
    /// (`registry`): the index lock nests inside it, as in `bind`. With `bound_to`, only if
    /// the session is bound to that uid.
    fn take_entry(
        &self,
        registry: &mut Registry,
        sid: Sid,
        bound_to: Option<&str>,
    ) -> Option<SessionEntry> {
        let entry = registry.get(sid)?;
        // Seeded bug for the loom models: kick whatever the sid is bound to now.
        #[cfg(not(gatehouse_loom_mutant = "kick_ignores_rebind"))]
        if let Some(uid) = bound_to {
            if entry.uid.as_ref().is_none_or(|current| current != uid) {
                return None;
            }
        }
        #[cfg(gatehouse_loom_mutant = "kick_ignores_rebind")]
        let _ = (entry, bound_to);
        let entry = registry.remove(sid)?;
        #[cfg(not(gatehouse_loom_mutant = "unindex_before_detach"))]
        if let Some(uid) = &entry.uid {
            self.index.remove(uid.as_str(), sid);
        }
        Some(entry)
    }

    /// Seeded bug for the loom models (a no-op otherwise): unindex by the uid read in an
    /// earlier critical section, so a bind landing in between stays indexed for a dead session.
    #[inline]
    fn mutant_unindex_early(&self, sid: Sid) {
        #[cfg(gatehouse_loom_mutant = "unindex_before_detach")]
        if let Some(uid) = self.get(sid).and_then(|info| info.uid) {
            self.index.remove(uid.as_str(), sid);
        }
        let _ = sid;
    }

    /// Kicks every session bound to `uid`, in bind order (pomelo `kick`). With a reason the
    /// client receives a KICK package `{"reason": …}` before the close; with `None` the
    /// connection just closes. Returns how many sessions it closed; an unknown uid is a no-op.
    ///
    /// Only sessions still bound to `uid` when each is closed are kicked: one unbound (and
    /// perhaps rebound to another user) since the uid was looked up is left alone.
    pub fn kick(&self, uid: &str, reason: Option<&str>) -> usize {
        let Some(sids) = self.get_by_uid(uid) else {
            return 0;
        };
        let reason = CloseReason::kick(reason);
        // A snapshot of the sids (pomelo #355); a session a listener closed meanwhile is
        // simply skipped.
        sids.iter()
            .filter(|sid| self.close_if_bound(**sid, Some(uid), reason.clone()))
            .count()
    }

    /// Kicks one session (pomelo `kickBySessionId`); see [`kick`](Self::kick). Returns whether
    /// the session was live.
    pub fn kick_by_session_id(&self, sid: Sid, reason: Option<&str>) -> bool {
        self.close(sid, CloseReason::kick(reason))
    }

    /// Removes a session from the registry and the index **without events** (pomelo
    /// `remove`) and returns its last state. The transport is told to drop the connection
    /// without a KICK package ([`CloseReason::Removed`]), so nothing is left dangling.
    pub fn remove(&self, sid: Sid) -> Option<SessionSnapshot> {
        let shard = self.shard_of(sid)?;
        self.mutant_unindex_early(sid);
        let entry = self.take_entry(&mut shard.registry.write(), sid, None)?;
        shard.inbox.push_close(sid, CloseReason::Removed);
        Some(entry.into_snapshot(&self.config.frontend_id))
    }

    // === events ==============================================================================

    /// Fires the shard's queued events, unless another thread is already firing them (it will
    /// fire ours too). See `src/event_queue.rs` for the protocol.
    fn dispatch(&self, shard: &Shard) {
        let Some(listener) = &self.listener else {
            return;
        };
        let (mut done, mut resuming) = (Vec::new(), false);
        loop {
            let batch = shard.registry.write().events.take_batch(resuming, done);
            let Some(mut batch) = batch else {
                return;
            };
            for event in batch.drain(..) {
                self.fire(&**listener, event);
            }
            (done, resuming) = (batch, true);
        }
    }

    /// Calls the listener for one event, catching a panic: a listener's bug costs the session
    /// it was about (closed with [`CloseReason::HandlerPanic`]), never the calling thread.
    fn fire(&self, listener: &dyn SessionListener, event: Event) {
        let (sid, what) = match &event {
            Event::Bound(sid, _) => (*sid, "bound"),
            Event::Unbound(sid, _) => (*sid, "unbound"),
            Event::Closed(snapshot, _) => (snapshot.sid, "closed"),
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &event {
            Event::Bound(sid, uid) => listener.bound(*sid, uid),
            Event::Unbound(sid, uid) => listener.unbound(*sid, uid),
            Event::Closed(snapshot, reason) => listener.closed(snapshot, reason),
        }));
        if let Err(payload) = outcome {
            self.listener_panics.fetch_add(1, Ordering::Relaxed);
            let closing =
                !matches!(event, Event::Closed(..)) && self.close(sid, CloseReason::HandlerPanic);
            log::error!(
                "gatehouse: session listener panicked in `{what}` for session {sid}: {}{}",
                crate::panic::message(&*payload),
                if closing {
                    "; the session is closed"
                } else {
                    ""
                }
            );
        }
    }

    /// How many [`SessionListener`] callbacks have panicked (each was caught, and the session
    /// it concerned closed with [`CloseReason::HandlerPanic`]).
    pub fn listener_panics(&self) -> u64 {
        self.listener_panics.load(Ordering::Relaxed)
    }

    // === send ================================================================================

    /// Queues `frame` for a live session (pomelo `sendMessage`). The frame must already be
    /// encoded for the wire (see [`Frame`]).
    ///
    /// Hot path: one shard read lock and one lock-free push; no allocation.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the frame handed back: the session is unknown or closed, or the
    /// shard's inbox is full.
    pub fn send_message(&self, sid: Sid, frame: Frame) -> Result<(), SendError> {
        let Some(shard) = self
            .shard_of(sid)
            .filter(|s| s.registry.read().get(sid).is_some())
        else {
            return Err(SendError {
                kind: SendErrorKind::UnknownSession,
                frame,
            });
        };
        // A close racing this push is fine: the transport drops sends for sids it no longer has.
        shard
            .inbox
            .push_send(sid, frame)
            .map_err(|frame| SendError {
                kind: SendErrorKind::InboxFull,
                frame,
            })
    }

    /// For the transport's own thread (the shard's consumer) answering a request it just read:
    /// queues the response behind everything already queued for the session, never refused
    /// (see `Inbox::push_send_spill`). `false` if the session is closed (nothing is sent, as
    /// pinus does when a handler kicked its own session).
    #[cfg_attr(gatehouse_loom, allow(dead_code))] // the connector is not built under loom
    pub(crate) fn queue_response(&self, sid: Sid, frame: Frame) -> bool {
        let Some(shard) = self
            .shard_of(sid)
            .filter(|s| s.registry.read().get(sid).is_some())
        else {
            return false;
        };
        shard.inbox.push_send_spill(sid, frame);
        true
    }

    /// Queues `frame` for every session bound to `uid`, in bind order (pomelo
    /// `sendMessageByUid`). Returns how many sessions it was queued for. Each session gets a
    /// clone of the frame (a reference-count increment, no copy).
    ///
    /// Hot path: one index shard read lock, one lock-free push per session **under that lock**,
    /// then one wake-up per inbox touched after it is released; no allocation, however many
    /// sessions the uid has.
    ///
    /// # No frame reaches another user
    ///
    /// The pushes happen while the index read lock is held, and `unbind`/`bind`/`close` change a
    /// session's uid only under that index shard's write lock. So a frame is queued only for
    /// sessions bound to `uid` at that moment, and it is queued before anything sent after the
    /// session is unbound (an unbind, rebind to user B and a push to B all come after it in the
    /// inbox, so the connection writes A's frame first, while A still owned it). Copying the
    /// sids out and pushing after the unlock — the old code — let an unbind + rebind slip in
    /// between and deliver A's private message to B (loom-tests' `send_by_uid_racing_rebind`).
    ///
    /// # Errors
    ///
    /// [`UidSendError::UnknownUid`] if no session is bound to `uid`;
    /// [`UidSendError::InboxFull`] if some sessions' inboxes were full (the others got it).
    pub fn send_message_by_uid(&self, uid: &str, frame: &Frame) -> Result<usize, UidSendError> {
        self.send_by_uid_reporting(uid, frame, |_| {})
    }

    /// [`send_message_by_uid`](Self::send_message_by_uid), calling `refused(sid)` (under the
    /// index read lock: keep it short, no user code) for each session whose inbox was full.
    #[inline]
    pub(crate) fn send_by_uid_reporting(
        &self,
        uid: &str,
        frame: &Frame,
        mut refused: impl FnMut(Sid),
    ) -> Result<usize, UidSendError> {
        let mut touched = ShardSet::default();
        // Seeded bug for the loom models: copy the sids under the lock, push after it.
        #[cfg(gatehouse_loom_mutant = "send_by_uid_push_unlocked")]
        let (total, refused) = {
            let mut copied = [Sid::from_raw(0); 8];
            let total = self
                .index
                .copy_sids(uid, &mut copied)
                .ok_or(UidSendError::UnknownUid)?;
            self.push_each(&copied[..total.min(8)], frame, &mut touched, &mut refused)
        };
        #[cfg(not(gatehouse_loom_mutant = "send_by_uid_push_unlocked"))]
        let (total, refused) = self
            .index
            .with_sids(uid, |sids| {
                self.push_each(sids, frame, &mut touched, &mut refused)
            })
            .ok_or(UidSendError::UnknownUid)?;
        // Wake-ups after the unlock (`Wake::wake` runs with no lock held); one per inbox.
        touched.for_each(|shard| self.shards[shard].inbox.notify());
        match refused {
            0 => Ok(total),
            _ => Err(UidSendError::InboxFull {
                enqueued: total - refused,
                refused,
            }),
        }
    }

    /// Pushes a clone of `frame` for each of `sids` without waking anyone; records the shards
    /// pushed to in `touched`. Returns `(sids, refused)`.
    #[inline]
    fn push_each(
        &self,
        sids: &[Sid],
        frame: &Frame,
        touched: &mut ShardSet,
        on_refused: &mut impl FnMut(Sid),
    ) -> (usize, usize) {
        let mut refused = 0;
        for &sid in sids {
            match self.shard_of(sid) {
                Some(shard) if shard.inbox.push_send_cloned_unnotified(sid, frame) => {
                    touched.insert(sid.shard());
                }
                _ => {
                    refused += 1;
                    on_refused(sid);
                }
            }
        }
        (sids.len(), refused)
    }

    /// Queues a clone of `frame` for `sid` only if it is live and bound — to `uid` if given,
    /// to any uid otherwise — checked and pushed under the shard's read lock, which `unbind`
    /// and `bind` need for writing: a retry of a by-uid push cannot reach a session that has
    /// changed hands since. `Err(UnknownSession)` if it is closed or no longer so bound.
    pub(crate) fn send_if_bound(
        &self,
        sid: Sid,
        uid: Option<&str>,
        frame: &Frame,
    ) -> Result<(), SendErrorKind> {
        let shard = self.shard_of(sid).ok_or(SendErrorKind::UnknownSession)?;
        {
            let registry = shard.registry.read();
            let bound = registry.get(sid).and_then(|e| e.uid.as_ref());
            let still = match (bound, uid) {
                (Some(current), Some(uid)) => current.as_str() == uid,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !still {
                return Err(SendErrorKind::UnknownSession);
            }
            if !shard.inbox.push_send_cloned_unnotified(sid, frame) {
                return Err(SendErrorKind::InboxFull);
            }
        }
        shard.inbox.notify(); // after the unlock: `Wake::wake` runs with no lock held
        Ok(())
    }

    /// Queues `frame` for every live session bound to a uid, once per session (pomelo's channel
    /// broadcast with `binded: true`, without its duplicate delivery: a uid with k sessions gets
    /// one frame on each, not k). Returns how many sessions it was queued for. Unbound sessions
    /// (connected, not logged in) are skipped, as pomelo's bound broadcast skips them; to reach
    /// them too, use [`for_each_session`](Self::for_each_session) +
    /// [`send_message`](Self::send_message).
    ///
    /// Hot path, allocation-free. Each shard is walked once: under its read lock, held for at
    /// most 256 live sessions at a time, every bound session's `Send` is pushed straight onto
    /// the shard's lock-free inbox (one reference-count increment per session, no per-session
    /// lookup, no second lock). The walk reads the shard's occupancy bitmap and skips 64
    /// vacant slots per word, so after a peak it costs about the live sessions, not the old
    /// peak. The shard's I/O thread is woken once, after its last push (and also right after
    /// the lock hold in which a push was first refused, so that it starts draining a full
    /// inbox); from the I/O thread itself, inside a loop turn opened with
    /// [`Inbox::hold_wake`], not at all. [`Wake::wake`](crate::Wake::wake) is never called
    /// with the shard lock held. This is what makes it cheaper than `for_each_bound_session`
    /// plus `send_message`, which pays a second shard lock, a registry lookup and a wake-flag
    /// swap per session.
    ///
    /// Concurrency: a session bound for the whole call gets exactly one frame. One bound,
    /// unbound, created or closed meanwhile may or may not get it; one that closes gets it
    /// *before* its [`Command::Close`](crate::Command::Close) if at all, because the push
    /// happens under the shard lock that `close` needs to remove it. Size the inboxes for the
    /// largest broadcast (`inbox_capacity` ≥ bound sessions per shard + other traffic): a full
    /// inbox refuses pushes until its consumer drains it. To retry exactly the refused
    /// sessions, use [`broadcast_reporting`](Self::broadcast_reporting).
    ///
    /// # Errors
    ///
    /// [`BroadcastError::InboxFull`] if some shards' inboxes were full: the frame reached
    /// `enqueued` sessions and was refused for `refused` (nothing is dropped silently).
    ///
    /// # Examples
    ///
    /// ```
    /// use gatehouse::{Command, Frame, SessionConfig, SessionService};
    ///
    /// let service = SessionService::new(SessionConfig::default().shards(1)).unwrap();
    /// let a = service.create(None).unwrap();
    /// let b = service.create(None).unwrap();
    /// let _guest = service.create(None).unwrap(); // not logged in: skipped
    /// service.bind(a, "player-1").unwrap();
    /// service.bind(b, "player-1").unwrap(); // a second device of the same player
    ///
    /// let frame = Frame::from_static(b"\x04\x00\x00\x01\x06");
    /// assert_eq!(service.broadcast(&frame), Ok(2)); // one frame per session
    ///
    /// let mut sent_to = Vec::new();
    /// service.inbox(0).unwrap().drain(|cmd| {
    ///     if let Command::Send { sid, .. } = cmd {
    ///         sent_to.push(sid);
    ///     }
    /// });
    /// assert_eq!(sent_to, [a, b]);
    /// ```
    pub fn broadcast(&self, frame: &Frame) -> Result<usize, BroadcastError> {
        self.broadcast_reporting(frame, |_| {})
    }

    /// [`broadcast`](Self::broadcast), calling `refused(sid)` for every session whose push was
    /// refused (its shard's inbox was full), so the caller can retry exactly those sessions
    /// with [`send_message`](Self::send_message) — without sending a second copy to the ones
    /// that got it. The count of `refused` calls equals the error's `refused`.
    ///
    /// `refused` runs with **no lock held** (the sids of one lock hold are collected on the
    /// stack, at most one bitmap word's 64, and reported after it), so it may call any method
    /// of the service. Like
    /// `broadcast`, allocation-free.
    ///
    /// # Errors
    ///
    /// As [`broadcast`](Self::broadcast).
    ///
    /// # Examples
    ///
    /// ```
    /// use gatehouse::{BroadcastError, Frame, SessionConfig, SessionService};
    ///
    /// let service = SessionService::new(SessionConfig::default().shards(1).inbox_capacity(2)).unwrap();
    /// for i in 0..3 {
    ///     let sid = service.create(None).unwrap();
    ///     service.bind(sid, &format!("player-{i}")).unwrap();
    /// }
    /// let frame = Frame::from_static(b"\x04\x00\x00\x01\x06");
    /// let mut retry = Vec::new();
    /// let result = service.broadcast_reporting(&frame, |sid| retry.push(sid));
    /// assert_eq!(result, Err(BroadcastError::InboxFull { enqueued: 2, refused: 1 }));
    /// assert_eq!(retry.len(), 1);
    ///
    /// // Once the transport has drained the inbox, only the refused session is sent again.
    /// service.inbox(0).unwrap().drain(drop);
    /// for sid in retry {
    ///     service.send_message(sid, frame.clone()).unwrap();
    /// }
    /// ```
    pub fn broadcast_reporting(
        &self,
        frame: &Frame,
        mut refused: impl FnMut(Sid),
    ) -> Result<usize, BroadcastError> {
        let (mut enqueued, mut refused_count) = (0, 0);
        // Seeded bug for the loom models: the `for_each_bound_session` + push idiom, which
        // pushes after the shard lock is released, so a close landing in between is overtaken.
        #[cfg(gatehouse_loom_mutant = "broadcast_push_unlocked")]
        self.for_each_bound_session(|sid, _| {
            match self
                .shard_of(sid)
                .map(|s| s.inbox.push_send(sid, frame.clone()))
            {
                Some(Ok(())) => enqueued += 1,
                _ => {
                    refused_count += 1;
                    refused(sid);
                }
            }
        });
        #[cfg(not(gatehouse_loom_mutant = "broadcast_push_unlocked"))]
        for shard in self.shards.iter() {
            let (queued, full) = Self::broadcast_shard(shard, frame, &mut refused);
            enqueued += queued;
            refused_count += full;
        }
        match refused_count {
            0 => Ok(enqueued),
            _ => Err(BroadcastError::InboxFull {
                enqueued,
                refused: refused_count,
            }),
        }
    }

    /// One shard of [`broadcast_reporting`](Self::broadcast_reporting): `(queued, refused)`.
    #[cfg_attr(gatehouse_loom_mutant = "broadcast_push_unlocked", allow(dead_code))]
    // Out of line: 92.9 instead of 94.9 instructions per session inlined into `broadcast`
    // (bin/callgrind.sh `broadcast_10k`).
    #[inline(never)]
    fn broadcast_shard(
        shard: &Shard,
        frame: &Frame,
        report: &mut impl FnMut(Sid),
    ) -> (usize, usize) {
        let (mut queued, mut refused) = (0, 0);
        // The sids refused during one lock hold, reported after it. A hold ends after the
        // bitmap word in which a push was refused, so one word's 64 slots always fit.
        let mut refused_now = [Sid::from_raw(0); WORD_SLOTS];
        // Holds start and end on bitmap word boundaries: `word` is where the next one starts.
        let mut word = 0;
        loop {
            let mut walked = 0;
            let mut n_refused = 0;
            let mut more = false;
            {
                let registry = shard.registry.read();
                let words = registry.live_words();
                while let Some(&live) = words.get(word) {
                    let base = word * WORD_SLOTS;
                    word += 1;
                    walked += live.count_ones() as usize;
                    let mut bits = live;
                    while bits != 0 {
                        let at = base + bits.trailing_zeros() as usize;
                        bits &= bits - 1;
                        if let Some(e) = registry.entry(at).filter(|e| e.uid.is_some()) {
                            if shard.inbox.push_send_cloned_unnotified(e.sid, frame) {
                                queued += 1;
                            } else {
                                refused_now[n_refused] = e.sid;
                                n_refused += 1;
                            }
                        }
                    }
                    if walked >= BROADCAST_CHUNK || n_refused > 0 {
                        more = word < words.len();
                        break;
                    }
                }
            }
            if n_refused > 0 {
                if refused == 0 {
                    // Full: wake the consumer now (the lock is released: `Wake::wake` may run
                    // here), so it drains while we go on.
                    shard.inbox.notify();
                }
                refused += n_refused;
                refused_now[..n_refused].iter().for_each(|sid| report(*sid));
            }
            if !more {
                break;
            }
        }
        // Seeded bug for the loom models: no wake-up after the pushes.
        #[cfg(not(gatehouse_loom_mutant = "broadcast_skip_notify"))]
        if queued > 0 {
            shard.inbox.notify();
        }
        (queued, refused)
    }

    // === iteration ===========================================================================

    /// Calls `f` for every live session, bound or not (pomelo `forEachSession`).
    ///
    /// Allocation-free. Sessions are copied out of each shard 32 at a time under a brief read
    /// lock and `f` runs with **no lock held**, so `f` may call any method of the service
    /// (send, kick, bind…). A session that exists for the whole iteration is visited exactly
    /// once; one created or closed meanwhile may or may not be. Order: shard by shard, slot by
    /// slot. The walk skips vacant slots 64 at a time (one bitmap word), so its cost follows
    /// the live sessions, not a past peak.
    pub fn for_each_session(&self, f: impl FnMut(Sid, Option<&Uid>)) {
        self.visit(f);
    }

    /// Calls `f` for every live session bound to a uid, **once per session** (pomelo
    /// `forEachBindedSession`, without its duplicate-delivery bug). Same guarantees as
    /// [`for_each_session`](Self::for_each_session): allocation-free, no lock held while `f`
    /// runs.
    pub fn for_each_bound_session(&self, mut f: impl FnMut(Sid, &Uid)) {
        // Its own walk rather than `visit` with a filter: the chunk holds `(Sid, Uid)`, not
        // `(Sid, Option<Uid>)`, so filling it clones a `Uid` (one discriminant test) instead of
        // an `Option<Uid>` against an `Option<Uid>` (four cases), and the callback loop tests
        // nothing. `Uid::assign` copies an inline uid over an inline one field by field (see
        // there: the derived `clone_from` went through a stalling stack temporary). One generic
        // walk shared with `visit` (a fill closure per caller) was tried: 72.6 instead of 66.6
        // instructions per session and ~5 % slower in criterion, so the two loops stay apart.
        let mut chunk: [(Sid, Uid); VISIT_CHUNK] =
            std::array::from_fn(|_| (Sid::from_raw(0), Uid::new("")));
        for shard in self.shards.iter() {
            let mut slot = 0;
            loop {
                let mut n = 0;
                let mut more = false;
                {
                    let registry = shard.registry.read();
                    let words = registry.live_words();
                    let mut word = slot / WORD_SLOTS;
                    let mut bits = words
                        .get(word)
                        .map_or(0, |live| live & (u64::MAX << (slot % WORD_SLOTS)));
                    'fill: loop {
                        while bits != 0 {
                            let at = word * WORD_SLOTS + bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            if let Some(SessionEntry {
                                sid,
                                uid: Some(uid),
                                ..
                            }) = registry.entry(at)
                            {
                                let entry = &mut chunk[n];
                                entry.0 = *sid;
                                entry.1.assign(uid);
                                n += 1;
                                if n == VISIT_CHUNK {
                                    slot = at + 1;
                                    more = true;
                                    break 'fill;
                                }
                            }
                        }
                        word += 1;
                        match words.get(word) {
                            Some(&live) => bits = live,
                            None => break,
                        }
                    }
                }
                for (sid, uid) in &chunk[..n] {
                    f(*sid, uid);
                }
                if !more {
                    break;
                }
            }
        }
    }

    fn visit(&self, mut f: impl FnMut(Sid, Option<&Uid>)) {
        // A fixed array reused for every chunk: overwriting an entry drops the previous uid
        // (a no-op for inline ones), with none of a growable vector's bookkeeping.
        let mut chunk: [(Sid, Option<Uid>); VISIT_CHUNK] =
            std::array::from_fn(|_| (Sid::from_raw(0), None));
        for shard in self.shards.iter() {
            let mut slot = 0;
            loop {
                let mut n = 0;
                let mut more = false;
                {
                    let registry = shard.registry.read();
                    let words = registry.live_words();
                    let mut word = slot / WORD_SLOTS;
                    let mut bits = words
                        .get(word)
                        .map_or(0, |live| live & (u64::MAX << (slot % WORD_SLOTS)));
                    'fill: loop {
                        while bits != 0 {
                            let at = word * WORD_SLOTS + bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            if let Some(e) = registry.entry(at) {
                                // In place, and inline uids field by field (`Uid::assign`):
                                // the derived copies moved the inline uid through the stack in
                                // overlapping pieces and stalled on store-to-load forwarding.
                                let entry = &mut chunk[n];
                                entry.0 = e.sid;
                                match (&mut entry.1, &e.uid) {
                                    (Some(to), Some(from)) => to.assign(from),
                                    (to, from) => to.clone_from(from),
                                }
                                n += 1;
                                if n == VISIT_CHUNK {
                                    slot = at + 1;
                                    more = true;
                                    break 'fill;
                                }
                            }
                        }
                        word += 1;
                        match words.get(word) {
                            Some(&live) => bits = live,
                            None => break,
                        }
                    }
                }
                for (sid, uid) in &chunk[..n] {
                    f(*sid, uid.as_ref());
                }
                if !more {
                    break;
                }
            }
        }
    }

    /// Every `(uid, sids)` pair of the uid index. Cold, allocates; for tests, debugging and
    /// consistency checks.
    pub fn uid_index_entries(&self) -> Vec<(Uid, Vec<Sid>)> {
        self.index.entries()
    }
}

impl fmt::Debug for SessionService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("config", &self.config)
            .field("sessions", &self.sessions_count())
            .field("bound_uids", &self.bound_uids_count())
            .finish()
    }
}

/// A set of shard numbers (`< MAX_SHARDS`) on the stack: which inboxes a by-uid send pushed
/// to, so each is woken once after the index lock is released.
#[derive(Default)]
struct ShardSet([u64; crate::id::MAX_SHARDS / 64]);

impl ShardSet {
    #[inline]
    fn insert(&mut self, shard: usize) {
        self.0[shard / 64] |= 1 << (shard % 64);
    }

    #[inline]
    fn for_each(&self, mut f: impl FnMut(usize)) {
        for (word_index, &word) in self.0.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                f(word_index * 64 + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        }
    }
}
