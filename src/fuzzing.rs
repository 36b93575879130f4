//! Differential fuzzing of [`SessionService`] against a reference model of pomelo's session
//! service: **not public API, outside semver**.
//!
//! [`fuzz_service_ops`] decodes arbitrary bytes into a sequence of service operations (create,
//! bind, unbind, import, import_all, kick, kick_by_session_id, close, remove, send,
//! send_message_by_uid, get/snapshot/lookups, for_each (optionally kicking from inside the
//! callback), counts, and transport polls through a [`MemoryDriver`]) and runs each against
//! the real service and against `Model`: plain `HashMap`s, a `Vec` per uid in bind order,
//! and pomelo's error texts (spec §1.3, pinus wording), written from the spec rather than from
//! the service's code. After every operation the results, the listener events (`bound`,
//! `unbound`, `closed` with their snapshots and reasons), and, after each poll, every
//! connection's delivered frames and close reason must be identical.
//!
//! The model encodes pomelo's semantics plus the service's documented differences (see
//! [`SessionService`]): uids are `Option`s and must be 1..=`max_uid_len` bytes (checked
//! first), `create` allocates never-reused sids round-robin over the shards and fails on a
//! full shard, `remove` also closes the connection (reason `Removed`, no event), a kick from a
//! `closed` listener is safe, sends to a full shard inbox are refused (closes never are), and
//! `for_each_*` order is unspecified (compared as sets).

use crate::events::{CloseReason, SessionListener};
use crate::frame::Frame;
use crate::id::Sid;
use crate::session::{SessionSnapshot, SessionState, Settings};
use crate::sync::Mutex;
use crate::uid::Uid;
use crate::{MemoryDriver, SendErrorKind, SessionConfig, SessionService, UidSendError};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

/// Uids the operations pick from: short, numeric, long (not inline), over the small
/// `max_uid_len`, empty, multi-byte.
const UIDS: [&str; 8] = [
    "u1",
    "u2",
    "u3",
    "123",
    "",
    "user-with-a-long-id-000001",
    "ninebytes",
    "é",
];
const KEYS: [&str; 3] = ["level", "room", "k"];
const CHAIN_REASON: &str = "chain";

/// One listener event, as recorded (the real service) or predicted (the model).
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Bound(Sid, String),
    Unbound(Sid, String),
    Closed {
        session: SessionSnapshot,
        reason: CloseReason,
    },
}

/// Records events; in chain mode a `closed` event for a bound session kicks the rest of its
/// uid from inside the listener (pomelo #355's situation).
struct Recorder {
    events: Mutex<Vec<Event>>,
    chain: bool,
    service: OnceLock<Weak<SessionService>>,
}

impl SessionListener for Recorder {
    fn bound(&self, sid: Sid, uid: &Uid) {
        self.events.lock().push(Event::Bound(sid, uid.to_string()));
    }

    fn unbound(&self, sid: Sid, uid: &Uid) {
        self.events
            .lock()
            .push(Event::Unbound(sid, uid.to_string()));
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        self.events.lock().push(Event::Closed {
            session: session.clone(),
            reason: reason.clone(),
        });
        if let (true, Some(uid)) = (self.chain, &session.uid) {
            if let Some(service) = self.service.get().and_then(Weak::upgrade) {
                service.kick(uid.as_str(), Some(CHAIN_REASON));
            }
        }
    }
}

// === the reference model =====================================================================

struct ModelSession {
    uid: Option<String>,
    settings: Settings,
    remote: Option<SocketAddr>,
}

enum ModelCommand {
    Send(Sid, Frame),
    Close(Sid, CloseReason),
}

#[derive(Default)]
struct ModelConn {
    frames: Vec<Frame>,
    closed: Option<CloseReason>,
}

/// pomelo's session service, as spec §1 describes it, plus the documented differences.
struct Model {
    frontend: Arc<str>,
    single: bool,
    max_uid_len: usize,
    max_per_shard: usize,
    inbox_capacity: usize,
    chain: bool,
    /// `sessions`: sid → session.
    sessions: HashMap<Sid, ModelSession>,
    /// `uidMap`: uid → sessions in bind order; never an empty list.
    uid_map: HashMap<String, Vec<Sid>>,
    /// `create`'s round-robin cursor (advances on failures too).
    next_shard: usize,
    /// Per shard: the commands waiting for the transport, and how many of them occupy the
    /// bounded queue (closes that find it full go past it, and are never refused).
    inboxes: Vec<(Vec<ModelCommand>, usize)>,
    /// What the transport delivered, per connection.
    conns: HashMap<Sid, ModelConn>,
    /// Events fired so far, in order.
    events: Vec<Event>,
    /// Per shard: events committed but not fired yet, and whether that shard's events are being
    /// fired further up the call stack (the service's per-shard event queue: events of one shard
    /// fire in commit order, and one a listener causes in the shard it is firing for waits for
    /// the current event to end; see `src/event_queue.rs`).
    pending: Vec<(std::collections::VecDeque<Event>, bool)>,
}

fn unknown(sid: Sid) -> String {
    format!("session does not exist, sid: {sid}")
}

impl Model {
    fn shard_len(&self, shard: usize) -> usize {
        self.sessions.keys().filter(|s| s.shard() == shard).count()
    }

    fn bind(&mut self, sid: Sid, uid: &str) -> Result<(), String> {
        if uid.is_empty() || uid.len() > self.max_uid_len {
            return Err(format!(
                "invalid uid: {} bytes, must be 1..={}",
                uid.len(),
                self.max_uid_len
            ));
        }
        let session = self.sessions.get_mut(&sid).ok_or_else(|| unknown(sid))?;
        match &session.uid {
            Some(current) if current == uid => return Ok(()),
            Some(current) => return Err(format!("session has already bound with {current}")),
            None => {}
        }
        if self.single && self.uid_map.contains_key(uid) {
            return Err(format!(
                "singleSession is enabled, and session has already bound with uid: {uid}"
            ));
        }
        self.uid_map.entry(uid.to_owned()).or_default().push(sid);
        session.uid = Some(uid.to_owned());
        self.commit(sid, Event::Bound(sid, uid.to_owned()));
        self.dispatch(sid.shard());
        Ok(())
    }

    fn unbind(&mut self, sid: Sid, uid: &str) -> Result<(), String> {
        let session = self.sessions.get_mut(&sid).ok_or_else(|| unknown(sid))?;
        if session.uid.as_deref() != Some(uid) {
            let current = session.uid.as_deref().unwrap_or("null");
            return Err(format!("session has not bind with {current}"));
        }
        session.uid = None;
        Self::unindex(&mut self.uid_map, uid, sid);
        self.commit(sid, Event::Unbound(sid, uid.to_owned()));
        self.dispatch(sid.shard());
        Ok(())
    }

    fn unindex(uid_map: &mut HashMap<String, Vec<Sid>>, uid: &str, sid: Sid) {
        if let Some(list) = uid_map.get_mut(uid) {
            list.retain(|s| *s != sid);
            if list.is_empty() {
                uid_map.remove(uid);
            }
        }
    }

    fn settings(&mut self, sid: Sid) -> Result<&mut Settings, String> {
        self.sessions
            .get_mut(&sid)
            .map(|s| &mut s.settings)
            .ok_or_else(|| unknown(sid))
    }

    /// Takes a session out (`sessions` and `uidMap`), with its last state.
    fn detach(&mut self, sid: Sid) -> Option<SessionSnapshot> {
        let session = self.sessions.remove(&sid)?;
        if let Some(uid) = &session.uid {
            Self::unindex(&mut self.uid_map, uid, sid);
        }
        Some(SessionSnapshot {
            sid,
            frontend_id: self.frontend.clone(),
            uid: session.uid.as_deref().map(Uid::new),
            settings: session.settings,
            remote: session.remote,
            state: SessionState::Closed,
        })
    }

    fn push_close(&mut self, sid: Sid, reason: CloseReason) {
        let cap = self.inbox_capacity;
        let (queue, queued) = &mut self.inboxes[sid.shard()];
        if *queued < cap {
            *queued += 1;
        }
        queue.push(ModelCommand::Close(sid, reason));
    }

    fn push_send(&mut self, sid: Sid, frame: Frame) -> bool {
        let cap = self.inbox_capacity;
        let (queue, queued) = &mut self.inboxes[sid.shard()];
        if *queued >= cap {
            return false;
        }
        *queued += 1;
        queue.push(ModelCommand::Send(sid, frame));
        true
    }

    /// `Session.closed(reason)`: leave the service, tell the transport, fire `closed`.
    fn close(&mut self, sid: Sid, reason: CloseReason) -> bool {
        let Some(session) = self.detach(sid) else {
            return false;
        };
        self.commit(
            sid,
            Event::Closed {
                session,
                reason: reason.clone(),
            },
        );
        self.push_close(sid, reason);
        self.dispatch(sid.shard());
        true
    }

    fn commit(&mut self, sid: Sid, event: Event) {
        self.pending[sid.shard()].0.push_back(event);
    }

    /// Fires a shard's pending events in order, unless they are being fired further up the
    /// stack (then that loop fires them once the current event's listener returns). The
    /// listener records the event, then (chain mode, `closed` of a bound session) kicks the rest
    /// of its uid.
    fn dispatch(&mut self, shard: usize) {
        if self.pending[shard].1 {
            return;
        }
        self.pending[shard].1 = true;
        while let Some(event) = self.pending[shard].0.pop_front() {
            let chain_uid = match &event {
                Event::Closed { session, .. } if self.chain => session.uid.clone(),
                _ => None,
            };
            self.events.push(event);
            if let Some(uid) = chain_uid {
                self.kick(uid.as_str(), Some(CHAIN_REASON));
            }
        }
        self.pending[shard].1 = false;
    }

    /// pomelo's `kick`, from a snapshot of the uid's sessions; each is closed only if it is
    /// still bound to `uid` when its turn comes.
    fn kick(&mut self, uid: &str, reason: Option<&str>) -> usize {
        let Some(sids) = self.uid_map.get(uid).cloned() else {
            return 0;
        };
        let reason = CloseReason::kick(reason);
        sids.into_iter()
            .filter(|sid| {
                let bound = self
                    .sessions
                    .get(sid)
                    .is_some_and(|s| s.uid.as_deref() == Some(uid));
                bound && self.close(*sid, reason.clone())
            })
            .count()
    }

    fn remove(&mut self, sid: Sid) -> Option<SessionSnapshot> {
        let snapshot = self.detach(sid)?;
        self.push_close(sid, CloseReason::Removed);
        Some(snapshot)
    }

    fn send(&mut self, sid: Sid, frame: Frame) -> Result<(), SendErrorKind> {
        if !self.sessions.contains_key(&sid) {
            return Err(SendErrorKind::UnknownSession);
        }
        if self.push_send(sid, frame) {
            Ok(())
        } else {
            Err(SendErrorKind::InboxFull)
        }
    }

    fn send_by_uid(&mut self, uid: &str, frame: &Frame) -> Result<usize, UidSendError> {
        let sids = self
            .uid_map
            .get(uid)
            .cloned()
            .ok_or(UidSendError::UnknownUid)?;
        let refused = sids
            .iter()
            .filter(|sid| !self.push_send(**sid, frame.clone()))
            .count();
        match refused {
            0 => Ok(sids.len()),
            _ => Err(UidSendError::InboxFull {
                enqueued: sids.len() - refused,
                refused,
            }),
        }
    }

    /// The transport drains every shard: sends reach open connections, closes end them.
    fn poll(&mut self) {
        for (queue, queued) in &mut self.inboxes {
            *queued = 0;
            for cmd in queue.drain(..) {
                match cmd {
                    ModelCommand::Send(sid, frame) => {
                        let conn = self.conns.get_mut(&sid).expect("a connected sid");
                        assert!(conn.closed.is_none(), "the model never sends after a close");
                        conn.frames.push(frame);
                    }
                    ModelCommand::Close(sid, reason) => {
                        let conn = self.conns.get_mut(&sid).expect("a connected sid");
                        conn.closed.get_or_insert(reason);
                    }
                }
            }
        }
    }
}

// === the differential ========================================================================

/// Reads the fuzz input; past its end every read yields zeros.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

struct Diff {
    service: Arc<SessionService>,
    recorder: Arc<Recorder>,
    driver: MemoryDriver,
    model: Model,
    /// Every sid ever created, in creation order.
    sids: Vec<Sid>,
    frames: u32,
}

impl Diff {
    /// A sid: one that was created (live or closed), or one that never existed — a forged
    /// generation in a used slot (the generation check), or nothing at all.
    fn sid(&self, b: u8) -> Sid {
        let i = usize::from(b >> 2);
        match (self.sids.get(i % self.sids.len().max(1)), b & 3) {
            (Some(sid), 0..=2) => *sid,
            (Some(sid), _) => Sid::from_raw(sid.into_raw().wrapping_add(1 << 40)),
            (None, _) => Sid::from_raw(u64::from(b) << 32),
        }
    }

    fn frame(&mut self) -> Frame {
        self.frames += 1;
        Frame::new(self.frames.to_be_bytes().to_vec())
    }

    fn reason(b: u8) -> Option<&'static str> {
        match b % 3 {
            0 => None,
            1 => Some("bye"),
            _ => Some(""),
        }
    }

    fn check_events(&mut self, what: &str) {
        let got = std::mem::take(&mut *self.recorder.events.lock());
        let want = std::mem::take(&mut self.model.events);
        assert_eq!(got, want, "events after {what}");
    }

    fn create(&mut self, b: u8) {
        let remote = (b & 1 == 1).then(|| SocketAddr::from(([127, 0, 0, 1], u16::from(b))));
        let shard = self.model.next_shard % self.service.config().shard_count();
        self.model.next_shard += 1;
        let full = self.model.shard_len(shard) >= self.model.max_per_shard;
        match self.driver.connect(remote) {
            Ok(sid) => {
                assert!(!full, "created {sid:?} in a full shard");
                assert_eq!(sid.shard(), shard, "round-robin shard");
                // New: never one handed out before (sids are not ordered by creation: a
                // reused slot's sid can be smaller than an older one), and exact in JavaScript.
                assert!(!self.sids.contains(&sid), "{sid:?} handed out twice");
                assert!(sid.into_raw() < 1 << 53, "{sid:?} past 2^53 - 1");
                self.sids.push(sid);
                self.model.sessions.insert(
                    sid,
                    ModelSession {
                        uid: None,
                        settings: Settings::new(),
                        remote,
                    },
                );
                self.model.conns.insert(sid, ModelConn::default());
            }
            Err(err) => {
                assert!(full, "create failed: {err}");
                assert_eq!(
                    err.to_string(),
                    format!(
                        "session shard {shard} is full ({} sessions)",
                        self.model.max_per_shard
                    )
                );
            }
        }
    }

    fn lookups(&self, sid: Sid, key: &str) {
        let service = &self.service;
        let model = self.model.sessions.get(&sid);
        assert_eq!(service.contains(sid), model.is_some());
        let info = service.get(sid);
        assert_eq!(
            info.as_ref()
                .map(|i| (i.sid, i.uid.as_ref().map(Uid::to_string), i.remote)),
            model.map(|m| (sid, m.uid.clone(), m.remote))
        );
        assert_eq!(service.client_address(sid), model.and_then(|m| m.remote));
        assert_eq!(
            service.setting(sid, key),
            model.and_then(|m| m.settings.get(key).cloned())
        );
        let snapshot = service.snapshot(sid);
        assert_eq!(
            snapshot.as_ref().map(|s| (
                s.sid,
                s.uid.as_ref().map(Uid::to_string),
                &s.settings,
                s.state,
                &*s.frontend_id
            )),
            model.map(|m| (
                sid,
                m.uid.clone(),
                &m.settings,
                SessionState::Active,
                &*self.model.frontend
            ))
        );
    }

    fn for_each(&mut self, b: u8) {
        let mut visited = Vec::new();
        let kick = b & 4 != 0;
        let service = self.service.clone();
        if b & 1 == 0 {
            service.for_each_session(|sid, uid| {
                visited.push((sid, uid.map(Uid::to_string)));
                if kick {
                    service.kick_by_session_id(sid, Some("each"));
                }
            });
        } else {
            service.for_each_bound_session(|sid, uid| {
                visited.push((sid, Some(uid.to_string())));
                if kick {
                    service.kick_by_session_id(sid, Some("each"));
                }
            });
        }
        let mut want: Vec<(Sid, Option<String>)> = self
            .model
            .sessions
            .iter()
            .filter(|(_, s)| b & 1 == 0 || s.uid.is_some())
            .map(|(sid, s)| (*sid, s.uid.clone()))
            .collect();
        want.sort();
        if kick {
            // Kicking as it goes; with the chain listener a kick may close sessions not yet
            // visited, which may still be visited (they were copied out) or not. Replay the
            // visit order on the model.
            let mut seen = std::collections::HashSet::new();
            for (sid, uid) in &visited {
                assert!(seen.insert(*sid), "{sid:?} visited twice");
                match self.model.sessions.get(sid) {
                    Some(session) => assert_eq!(&session.uid, uid, "uid of {sid:?}"),
                    None => assert!(
                        self.model.chain && want.iter().any(|(w, _)| w == sid),
                        "visited {sid:?}, which was not live"
                    ),
                }
                self.model.close(*sid, CloseReason::kick(Some("each")));
            }
            for (sid, _) in &want {
                assert!(
                    !self.model.sessions.contains_key(sid),
                    "{sid:?} was live throughout and never visited"
                );
            }
        } else {
            visited.sort();
            assert_eq!(visited, want, "for_each visits every live session once");
        }
    }

    fn counts(&self) {
        assert_eq!(self.service.sessions_count(), self.model.sessions.len());
        assert_eq!(self.service.bound_uids_count(), self.model.uid_map.len());
        let mut entries: Vec<(String, Vec<Sid>)> = self
            .service
            .uid_index_entries()
            .into_iter()
            .map(|(uid, sids)| (uid.to_string(), sids))
            .collect();
        entries.sort();
        let mut want: Vec<(String, Vec<Sid>)> = self
            .model
            .uid_map
            .iter()
            .map(|(uid, sids)| (uid.clone(), sids.clone()))
            .collect();
        want.sort();
        assert_eq!(entries, want, "the uid index");
    }

    fn poll(&mut self) {
        self.driver.poll();
        self.model.poll();
        assert_eq!(self.driver.stale(), 0, "no send outlives its session");
        for sid in &self.sids {
            let conn = &self.model.conns[sid];
            assert_eq!(
                self.driver.received(*sid),
                &conn.frames[..],
                "frames of {sid:?}"
            );
            assert_eq!(
                self.driver.close_reason(*sid),
                conn.closed.as_ref(),
                "close of {sid:?}"
            );
        }
    }
}

/// Runs arbitrary service operations against the service and the reference model (see the
/// [module docs](self)).
///
/// Layout: byte 0 picks the configuration (single-session, shards, sessions per shard, inbox
/// capacity, `max_uid_len`), byte 1 the chain listener; then one opcode byte per operation
/// with its argument bytes.
pub fn fuzz_service_ops(data: &[u8]) {
    let mut script = Script(data);
    let setup = script.byte();
    let chain = script.byte() & 1 == 1;
    let config = SessionConfig::default()
        .frontend_id("fuzz-frontend")
        .single_session(setup & 1 == 1)
        .shards(1 + usize::from(setup >> 1) % 3)
        .index_shards(if setup & 8 == 0 { 1 } else { 4 })
        .initial_sessions_per_shard(1)
        .max_sessions_per_shard([2, 5, 1024, 1024][usize::from(setup >> 4) & 3])
        .inbox_capacity([1, 3, 64, 1 << 10][usize::from(setup >> 6) & 3])
        .max_uid_len(if setup & 0x80 == 0 { 8 } else { 64 });
    let recorder = Arc::new(Recorder {
        events: Mutex::new(Vec::new()),
        chain,
        service: OnceLock::new(),
    });
    let service = Arc::new(
        SessionService::with_listener(config.clone(), recorder.clone())
            .expect("valid session config"),
    );
    let _ = recorder.service.set(Arc::downgrade(&service));
    let model = Model {
        frontend: Arc::from("fuzz-frontend"),
        single: config.single_session,
        max_uid_len: config.max_uid_len,
        max_per_shard: config.max_sessions_per_shard,
        inbox_capacity: config.inbox_capacity,
        chain,
        sessions: HashMap::new(),
        uid_map: HashMap::new(),
        next_shard: 0,
        inboxes: (0..config.shards).map(|_| (Vec::new(), 0)).collect(),
        conns: HashMap::new(),
        events: Vec::new(),
        pending: (0..config.shards).map(|_| Default::default()).collect(),
    };
    let mut d = Diff {
        driver: MemoryDriver::new(service.clone()),
        service,
        recorder,
        model,
        sids: Vec::new(),
        frames: 0,
    };

    let mut steps = 0;
    while !script.0.is_empty() && steps < 1000 {
        steps += 1;
        let op = script.byte();
        let what = match op % 16 {
            0 | 1 => {
                d.create(script.byte());
                "create"
            }
            2 => {
                let (sid, uid) = (d.sid(script.byte()), UIDS[usize::from(script.byte()) % 8]);
                let got = d.service.bind(sid, uid).map_err(|e| e.to_string());
                assert_eq!(got, d.model.bind(sid, uid), "bind({sid:?}, {uid:?})");
                "bind"
            }
            3 => {
                let (sid, uid) = (d.sid(script.byte()), UIDS[usize::from(script.byte()) % 8]);
                let got = d.service.unbind(sid, uid).map_err(|e| e.to_string());
                assert_eq!(got, d.model.unbind(sid, uid), "unbind({sid:?}, {uid:?})");
                "unbind"
            }
            4 => {
                let (sid, k, v) = (d.sid(script.byte()), script.byte(), script.byte());
                let key = KEYS[usize::from(k) % KEYS.len()];
                let got = d
                    .service
                    .import(sid, key, Value::from(v))
                    .map_err(|e| e.to_string());
                let want = d.model.settings(sid).map(|s| {
                    s.insert(key.to_owned(), Value::from(v));
                });
                assert_eq!(got, want, "import");
                "import"
            }
            5 => {
                let (sid, k, v) = (d.sid(script.byte()), script.byte(), script.byte());
                let mut settings = Settings::new();
                for (i, key) in KEYS.iter().enumerate() {
                    if k >> i & 1 == 1 {
                        settings.insert((*key).to_owned(), Value::from(v));
                    }
                }
                let got = d
                    .service
                    .import_all(sid, settings.clone())
                    .map_err(|e| e.to_string());
                let want = d.model.settings(sid).map(|s| s.extend(settings));
                assert_eq!(got, want, "import_all");
                "import_all"
            }
            6 => {
                let (uid, r) = (UIDS[usize::from(script.byte()) % 8], script.byte());
                let reason = Diff::reason(r);
                assert_eq!(
                    d.service.kick(uid, reason),
                    d.model.kick(uid, reason),
                    "kick"
                );
                "kick"
            }
            7 => {
                let (sid, r) = (d.sid(script.byte()), script.byte());
                let reason = Diff::reason(r);
                let got = d.service.kick_by_session_id(sid, reason);
                assert_eq!(got, d.model.close(sid, CloseReason::kick(reason)));
                "kick_by_session_id"
            }
            8 => {
                let sid = d.sid(script.byte());
                let got = d.driver.disconnect(sid);
                assert_eq!(got, d.model.close(sid, CloseReason::PeerClosed));
                "disconnect"
            }
            9 => {
                let sid = d.sid(script.byte());
                assert_eq!(d.service.remove(sid), d.model.remove(sid), "remove");
                "remove"
            }
            10 => {
                let sid = d.sid(script.byte());
                let frame = d.frame();
                let got = d
                    .service
                    .send_message(sid, frame.clone())
                    .map_err(|e| e.kind);
                assert_eq!(got, d.model.send(sid, frame), "send_message");
                "send_message"
            }
            11 => {
                let uid = UIDS[usize::from(script.byte()) % 8];
                let frame = d.frame();
                let got = d.service.send_message_by_uid(uid, &frame);
                assert_eq!(got, d.model.send_by_uid(uid, &frame), "send_message_by_uid");
                "send_message_by_uid"
            }
            12 => {
                let (sid, k) = (d.sid(script.byte()), script.byte());
                d.lookups(sid, KEYS[usize::from(k) % KEYS.len()]);
                let uid = UIDS[usize::from(k) % 8];
                assert_eq!(
                    d.service.get_by_uid(uid).map(|l| l.to_vec()),
                    d.model.uid_map.get(uid).cloned(),
                    "get_by_uid({uid:?})"
                );
                "lookups"
            }
            13 => {
                d.for_each(script.byte());
                "for_each"
            }
            14 => {
                d.counts();
                "counts"
            }
            _ => {
                d.poll();
                "poll"
            }
        };
        d.check_events(what);
    }
    d.counts();
    d.poll();
    d.check_events("the end");
}
