//! `SessionService` behaviour without a socket: pomelo's session edge cases (spec §1.4), the
//! behaviours spec §8.3 asks to pin, and the core contracts (events, sids, inboxes, the memory
//! transport). One `#[test]` per behaviour; each asserts the exact observable result.

use gatehouse::{
    BindError, BroadcastError, CloseReason, Command, CreateError, Frame, MemoryDriver, SendError,
    SendErrorKind, SessionConfig, SessionListener, SessionService, SessionSnapshot, SessionState,
    Settings, Sid, Uid, UidSendError, UnbindError, UnknownSession,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock, Weak};
use std::thread;
use std::time::Duration;

// === test listener =============================================================================

/// One listener event, as recorded.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Bound(Sid, String),
    Unbound(Sid, String),
    Closed(SessionSnapshot, CloseReason),
}

type BoundHook = Box<dyn Fn(&SessionService, Sid, &Uid) + Send + Sync>;
type ClosedHook = Box<dyn Fn(&SessionService, &SessionSnapshot, &CloseReason) + Send + Sync>;

/// Code a test runs inside the listener callbacks (after the event is recorded).
#[derive(Default)]
struct Hooks {
    bound: Option<BoundHook>,
    closed: Option<ClosedHook>,
}

/// Records every event into a channel and runs the test's hooks with the service in hand.
struct Recorder {
    events: mpsc::Sender<Event>,
    service: OnceLock<Weak<SessionService>>,
    hooks: Hooks,
}

impl Recorder {
    fn service(&self) -> Arc<SessionService> {
        self.service
            .get()
            .and_then(Weak::upgrade)
            .expect("service outlives its events")
    }
}

impl SessionListener for Recorder {
    fn bound(&self, sid: Sid, uid: &Uid) {
        self.events
            .send(Event::Bound(sid, uid.to_string()))
            .unwrap();
        if let Some(hook) = &self.hooks.bound {
            hook(&self.service(), sid, uid);
        }
    }

    fn unbound(&self, sid: Sid, uid: &Uid) {
        self.events
            .send(Event::Unbound(sid, uid.to_string()))
            .unwrap();
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        self.events
            .send(Event::Closed(session.clone(), reason.clone()))
            .unwrap();
        if let Some(hook) = &self.hooks.closed {
            hook(&self.service(), session, reason);
        }
    }
}

/// A service whose events are recorded (and hooks run), plus the receiving end of the record.
fn recorded(config: SessionConfig, hooks: Hooks) -> (Arc<SessionService>, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel();
    let recorder = Arc::new(Recorder {
        events: tx,
        service: OnceLock::new(),
        hooks,
    });
    let service = Arc::new(SessionService::with_listener(config, recorder.clone()).unwrap());
    recorder.service.set(Arc::downgrade(&service)).unwrap();
    (service, rx)
}

fn service() -> (Arc<SessionService>, mpsc::Receiver<Event>) {
    recorded(SessionConfig::default(), Hooks::default())
}

/// Events recorded since the last call.
fn events(rx: &mpsc::Receiver<Event>) -> Vec<Event> {
    rx.try_iter().collect()
}

fn closed_sids(events: &[Event]) -> Vec<Sid> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed(snapshot, _) => Some(snapshot.sid),
            _ => None,
        })
        .collect()
}

/// Every command queued in every inbox, in per-shard FIFO order.
fn drain_all(service: &SessionService) -> Vec<Command> {
    let mut out = Vec::new();
    for shard in 0..service.config().shard_count() {
        service.inbox(shard).unwrap().drain(|cmd| out.push(cmd));
    }
    out
}

fn sids_of(service: &SessionService, uid: &str) -> Option<Vec<Sid>> {
    service.get_by_uid(uid).map(|list| list.to_vec())
}

fn uid_of(service: &SessionService, sid: Sid) -> Option<String> {
    service
        .get(sid)
        .expect("live session")
        .uid
        .map(|u| u.to_string())
}

fn frame(text: &str) -> Frame {
    Frame::new(text.as_bytes().to_vec())
}

fn bytes(frames: &[Frame]) -> Vec<&[u8]> {
    frames.iter().map(Frame::as_bytes).collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Runs `f` on another thread and fails (instead of hanging) if it deadlocks.
fn without_deadlock<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(value) => {
            handle.join().unwrap();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("re-entrant call deadlocked"),
    }
}

// === bind ======================================================================================

#[test]
fn bind_same_uid_twice_is_ok_and_fires_bound_once() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    assert_eq!(service.bind(sid, "u1"), Ok(()));
    assert_eq!(service.bind(sid, "u1"), Ok(()));
    assert_eq!(events(&rx), vec![Event::Bound(sid, "u1".into())]);
    assert_eq!(sids_of(&service, "u1"), Some(vec![sid]));
    assert_eq!(service.bound_uids_count(), 1);
}

#[test]
fn bind_to_another_uid_fails_with_already_bound() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    service.bind(sid, "A").unwrap();
    let _ = events(&rx);

    let err = service.bind(sid, "B").unwrap_err();
    assert_eq!(err, BindError::AlreadyBound(Uid::from("A")));
    assert_eq!(err.to_string(), "session has already bound with A");
    // Nothing changed: no implicit unbind, no event, B unknown.
    assert_eq!(uid_of(&service, sid).as_deref(), Some("A"));
    assert_eq!(sids_of(&service, "A"), Some(vec![sid]));
    assert_eq!(sids_of(&service, "B"), None);
    assert_eq!(events(&rx), vec![]);
}

#[test]
fn single_session_refuses_second_session_and_keeps_the_first() {
    let (service, rx) = recorded(
        SessionConfig::default().single_session(true),
        Hooks::default(),
    );
    let old = service.create(None).unwrap();
    let new = service.create(None).unwrap();
    service.bind(old, "U").unwrap();
    let _ = events(&rx);

    let err = service.bind(new, "U").unwrap_err();
    assert_eq!(err, BindError::SingleSession(Uid::from("U")));
    assert_eq!(
        err.to_string(),
        "singleSession is enabled, and session has already bound with uid: U"
    );
    assert_eq!(uid_of(&service, new), None, "the new session stays unbound");
    assert_eq!(uid_of(&service, old).as_deref(), Some("U"), "old one kept");
    assert!(service.contains(old), "old one not kicked");
    assert_eq!(sids_of(&service, "U"), Some(vec![old]));
    assert_eq!(events(&rx), vec![]);
    assert!(drain_all(&service).is_empty(), "nobody was kicked");

    // The app's recipe: kick the old session, then bind the new one.
    assert_eq!(service.kick("U", Some("logged in elsewhere")), 1);
    assert_eq!(service.bind(new, "U"), Ok(()));
    assert_eq!(sids_of(&service, "U"), Some(vec![new]));
}

#[test]
fn single_session_allows_rebind_after_unbind() {
    let (service, _rx) = recorded(
        SessionConfig::default().single_session(true),
        Hooks::default(),
    );
    let a = service.create(None).unwrap();
    let b = service.create(None).unwrap();
    service.bind(a, "U").unwrap();
    service.unbind(a, "U").unwrap();
    assert_eq!(service.bind(b, "U"), Ok(()));
    assert_eq!(
        service.bind(a, "U"),
        Err(BindError::SingleSession(Uid::from("U")))
    );
}

#[test]
fn without_single_session_a_uid_lists_its_sessions_in_bind_order() {
    let (service, rx) = service();
    let mut driver = MemoryDriver::new(service.clone());
    let first = driver.connect(None).unwrap();
    let second = driver.connect(None).unwrap();
    // Bind the later sid first: the list is in bind order, not sid order.
    service.bind(second, "U").unwrap();
    service.bind(first, "U").unwrap();
    assert_eq!(sids_of(&service, "U"), Some(vec![second, first]));
    assert_eq!(
        events(&rx),
        vec![
            Event::Bound(second, "U".into()),
            Event::Bound(first, "U".into())
        ]
    );

    assert_eq!(service.send_message_by_uid("U", &frame("push")), Ok(2));
    driver.poll();
    assert_eq!(bytes(driver.received(first)), vec![b"push"]);
    assert_eq!(bytes(driver.received(second)), vec![b"push"]);
    assert_eq!(driver.stale(), 0);
}

#[test]
fn bind_unknown_session_fails() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    service.kick_by_session_id(sid, None);
    let _ = events(&rx);
    let err = service.bind(sid, "u").unwrap_err();
    assert_eq!(err, BindError::UnknownSession(sid));
    assert_eq!(
        err.to_string(),
        format!("session does not exist, sid: {}", sid.into_raw())
    );
    assert_eq!(
        sids_of(&service, "u"),
        None,
        "failed bind leaves no index entry"
    );
    assert_eq!(events(&rx), vec![]);
}

// === unbind ====================================================================================

#[test]
fn unbind_with_wrong_uid_quotes_the_current_uid() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    service.bind(sid, "u1").unwrap();
    let _ = events(&rx);

    let err = service.unbind(sid, "zz").unwrap_err();
    assert_eq!(
        err,
        UnbindError::NotBound {
            current: Some(Uid::from("u1"))
        }
    );
    assert_eq!(err.to_string(), "session has not bind with u1");
    assert_eq!(uid_of(&service, sid).as_deref(), Some("u1"));
    assert_eq!(sids_of(&service, "u1"), Some(vec![sid]));
    assert_eq!(events(&rx), vec![]);
}

#[test]
fn unbind_unbound_session_quotes_null() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    let err = service.unbind(sid, "u1").unwrap_err();
    assert_eq!(err, UnbindError::NotBound { current: None });
    assert_eq!(err.to_string(), "session has not bind with null");
    assert_eq!(events(&rx), vec![]);
}

#[test]
fn unbind_removes_the_session_from_the_index_and_fires_once() {
    let (service, rx) = service();
    let a = service.create(None).unwrap();
    let b = service.create(None).unwrap();
    service.bind(a, "U").unwrap();
    service.bind(b, "U").unwrap();
    let _ = events(&rx);

    assert_eq!(service.unbind(a, "U"), Ok(()));
    assert_eq!(sids_of(&service, "U"), Some(vec![b]));
    assert_eq!(uid_of(&service, a), None);
    assert_eq!(
        service.unbind(a, "U"),
        Err(UnbindError::NotBound { current: None })
    );
    service.unbind(b, "U").unwrap();
    assert_eq!(sids_of(&service, "U"), None, "empty lists are deleted");
    assert_eq!(service.bound_uids_count(), 0);
    assert!(service.uid_index_entries().is_empty());
    assert_eq!(
        events(&rx),
        vec![Event::Unbound(a, "U".into()), Event::Unbound(b, "U".into())]
    );
}

#[test]
fn events_fire_in_order_bind_then_unbind() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    service.bind(sid, "A").unwrap();
    service.unbind(sid, "A").unwrap();
    service.bind(sid, "B").unwrap();
    service.kick_by_session_id(sid, Some("bye"));
    let events = events(&rx);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], Event::Bound(sid, "A".into()));
    assert_eq!(events[1], Event::Unbound(sid, "A".into()));
    assert_eq!(events[2], Event::Bound(sid, "B".into()));
    let Event::Closed(snapshot, reason) = &events[3] else {
        panic!("expected closed, got {:?}", events[3]);
    };
    assert_eq!(snapshot.uid.as_ref().map(Uid::as_str), Some("B"));
    assert_eq!(reason.kick_message(), Some("bye"));
}

// === unknown sids and uids =====================================================================

#[test]
fn unknown_sid_errors_quote_the_sid() {
    let (service, rx) = service();
    let closed = service.create(None).unwrap();
    service.kick_by_session_id(closed, None);
    let _ = events(&rx);
    // A closed sid, and ids that never existed (one on a shard the service does not have).
    let never = Sid::from_raw(closed.into_raw() + (1 << 40));
    let bad_shard = Sid::from_raw(u64::MAX);
    for sid in [closed, never, bad_shard] {
        let text = format!("session does not exist, sid: {}", sid.into_raw());
        assert_eq!(service.bind(sid, "u").unwrap_err().to_string(), text);
        assert_eq!(service.unbind(sid, "u").unwrap_err().to_string(), text);
        let err = service.import(sid, "k", json!(1)).unwrap_err();
        assert_eq!(err, UnknownSession(sid));
        assert_eq!(err.to_string(), text);
        let err = service.import_all(sid, Settings::new()).unwrap_err();
        assert_eq!(err.to_string(), text);
        assert!(service.get(sid).is_none());
        assert!(!service.contains(sid));
        assert!(service.snapshot(sid).is_none());
        assert!(service.setting(sid, "k").is_none());
        assert!(service.client_address(sid).is_none());
    }
    assert_eq!(events(&rx), vec![]);
}

#[test]
fn kick_unknown_uid_and_unknown_sid_are_no_ops() {
    let (service, rx) = service();
    let live = service.create(None).unwrap();
    service.bind(live, "someone").unwrap();
    let gone = service.create(None).unwrap();
    service.kick_by_session_id(gone, None);
    let _ = events(&rx);
    let _ = drain_all(&service);

    assert_eq!(service.kick("nobody", Some("x")), 0);
    assert_eq!(service.kick("nobody", None), 0);
    assert!(!service.kick_by_session_id(gone, Some("x")));
    assert!(!service.kick_by_session_id(Sid::from_raw(u64::MAX), None));
    assert!(!service.close(gone, CloseReason::PeerClosed));
    assert_eq!(events(&rx), vec![]);
    assert!(
        drain_all(&service).is_empty(),
        "no command for a no-op kick"
    );
    assert!(service.contains(live));
    assert_eq!(service.sessions_count(), 1);
}

#[test]
fn send_message_to_unknown_or_closed_sid_hands_the_frame_back() {
    let (service, _rx) = service();
    let sid = service.create(None).unwrap();
    service.kick_by_session_id(sid, None);
    let _ = drain_all(&service);

    for target in [sid, Sid::from_raw(u64::MAX), Sid::from_raw(1)] {
        let sent = frame("hello");
        let err = service.send_message(target, sent.clone()).unwrap_err();
        assert_eq!(err.kind, SendErrorKind::UnknownSession);
        assert_eq!(err.frame, sent);
        assert_eq!(err.to_string(), "session does not exist");
        assert_eq!(err.into_frame().as_bytes(), b"hello");
    }
    assert!(drain_all(&service).is_empty(), "nothing was queued");
}

#[test]
fn send_message_by_uid_to_unknown_uid_fails() {
    let (service, _rx) = service();
    let sid = service.create(None).unwrap();
    service.bind(sid, "u").unwrap();
    service.unbind(sid, "u").unwrap();
    assert_eq!(
        service.send_message_by_uid("u", &frame("x")),
        Err(UidSendError::UnknownUid)
    );
    assert_eq!(
        service.send_message_by_uid("never", &frame("x")),
        Err(UidSendError::UnknownUid)
    );
    assert!(drain_all(&service).is_empty());
}

// === uids ======================================================================================

#[test]
fn falsy_looking_uids_are_real_uids() {
    // pomelo tests `if (session.uid)`: uid "0" (or 0) looked unbound, so a second bind to another
    // uid succeeded and left "0" in uidMap forever. Here "0" is a uid like any other.
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    service.bind(sid, "0").unwrap();
    assert_eq!(uid_of(&service, sid).as_deref(), Some("0"));
    assert_eq!(
        service.bind(sid, "1"),
        Err(BindError::AlreadyBound(Uid::from("0")))
    );
    assert_eq!(sids_of(&service, "0"), Some(vec![sid]));
    assert_eq!(sids_of(&service, "1"), None);
    assert_eq!(service.send_message_by_uid("0", &frame("x")), Ok(1));
    assert_eq!(
        service.unbind(sid, "1").unwrap_err().to_string(),
        "session has not bind with 0"
    );
    assert_eq!(service.unbind(sid, "0"), Ok(()));
    assert_eq!(sids_of(&service, "0"), None, "no stale entry");
    service.bind(sid, "1").unwrap();

    // Other strings a JS truthiness test would get wrong, and closing cleans them up.
    let others: Vec<Sid> = ["false", "null", "undefined", " "]
        .iter()
        .map(|uid| {
            let s = service.create(None).unwrap();
            service.bind(s, uid).unwrap();
            s
        })
        .collect();
    for (s, uid) in others.iter().zip(["false", "null", "undefined", " "]) {
        assert_eq!(uid_of(&service, *s).as_deref(), Some(uid));
        assert_eq!(service.kick(uid, None), 1);
        assert_eq!(sids_of(&service, uid), None);
    }
    let entries = service.uid_index_entries();
    assert_eq!(entries, vec![(Uid::from("1"), vec![sid])]);
    assert_eq!(
        events(&rx)
            .iter()
            .filter(|e| matches!(e, Event::Bound(..)))
            .count(),
        6
    );
}

#[test]
fn empty_and_over_long_uids_are_refused() {
    let (service, rx) = recorded(SessionConfig::default().max_uid_len(8), Hooks::default());
    let sid = service.create(None).unwrap();

    let err = service.bind(sid, "").unwrap_err();
    assert_eq!(err, BindError::InvalidUid { len: 0, max: 8 });
    assert_eq!(err.to_string(), "invalid uid: 0 bytes, must be 1..=8");
    let err = service.bind(sid, "123456789").unwrap_err();
    assert_eq!(err, BindError::InvalidUid { len: 9, max: 8 });
    // Length is in bytes: three 3-byte characters are 9 bytes.
    assert_eq!(
        service.bind(sid, "玩家一"),
        Err(BindError::InvalidUid { len: 9, max: 8 })
    );
    assert_eq!(uid_of(&service, sid), None);
    assert!(service.uid_index_entries().is_empty());
    assert_eq!(events(&rx), vec![]);

    // The limit itself is accepted.
    assert_eq!(service.bind(sid, "12345678"), Ok(()));
}

#[test]
fn long_uids_work_like_short_ones() {
    let (service, _rx) = service();
    let long = "x".repeat(200);
    let sid = service.create(None).unwrap();
    service.bind(sid, &long).unwrap();
    assert_eq!(sids_of(&service, &long), Some(vec![sid]));
    assert_eq!(service.send_message_by_uid(&long, &frame("x")), Ok(1));
    assert_eq!(service.kick(&long, None), 1);
    assert!(service.uid_index_entries().is_empty());
}

// === kick and close ============================================================================

#[test]
fn kick_closes_every_session_of_the_uid_in_bind_order() {
    let (service, rx) = service();
    let a = service.create(None).unwrap();
    let b = service.create(None).unwrap();
    let c = service.create(None).unwrap();
    let other = service.create(None).unwrap();
    for sid in [b, c, a] {
        service.bind(sid, "U").unwrap();
    }
    service.bind(other, "V").unwrap();
    let _ = events(&rx);

    assert_eq!(service.kick("U", Some("maintenance")), 3);
    assert_eq!(closed_sids(&events(&rx)), vec![b, c, a]);
    assert_eq!(sids_of(&service, "U"), None);
    assert_eq!(service.sessions_count(), 1);
    assert!(service.contains(other));
    assert_eq!(service.kick("U", Some("maintenance")), 0);
}

#[test]
fn closed_listener_kicking_the_same_uid_during_kick_is_safe() {
    // pinus indexes `sessions[sid]` without a null check and throws a TypeError here.
    let kicks_from_listener = Arc::new(AtomicUsize::new(0));
    let counter = kicks_from_listener.clone();
    let hooks = Hooks {
        closed: Some(Box::new(move |service, snapshot, _| {
            if snapshot.uid.as_ref().is_some_and(|u| *u == "U") {
                counter.fetch_add(service.kick("U", Some("nested")), Ordering::SeqCst);
            }
        })),
        ..Hooks::default()
    };
    let (service, rx) = recorded(SessionConfig::default(), hooks);
    let mut driver = MemoryDriver::new(service.clone());
    let sids: Vec<Sid> = (0..3).map(|_| driver.connect(None).unwrap()).collect();
    for sid in &sids {
        service.bind(*sid, "U").unwrap();
    }
    let _ = events(&rx);

    let closed_by_outer = without_deadlock({
        let service = service.clone();
        move || service.kick("U", Some("outer"))
    });
    // The outer kick closed the first session; its listener's nested kick closed the rest.
    assert_eq!(closed_by_outer, 1);
    assert_eq!(kicks_from_listener.load(Ordering::SeqCst), 2);
    let mut closed = closed_sids(&events(&rx));
    closed.sort();
    let mut want = sids.clone();
    want.sort(); // sids are not ordered by creation
    assert_eq!(closed, want, "each session's closed fired exactly once");
    assert_eq!(service.sessions_count(), 0);
    driver.poll();
    assert_eq!(driver.kick_message(sids[0]), Some("outer"));
    assert_eq!(driver.kick_message(sids[1]), Some("nested"));
    assert_eq!(driver.kick_message(sids[2]), Some("nested"));
}

#[test]
fn closed_listener_kicking_other_sessions_by_sid_during_kick_is_safe() {
    let hooks = Hooks {
        closed: Some(Box::new(move |service, snapshot, _| {
            // Close every other live session (kicks of already-closed sids are no-ops).
            let mut all = Vec::new();
            service.for_each_session(|sid, _| all.push(sid));
            for sid in all {
                if sid != snapshot.sid {
                    service.kick_by_session_id(sid, None);
                }
            }
        })),
        ..Hooks::default()
    };
    let (service, rx) = recorded(SessionConfig::default(), hooks);
    let sids: Vec<Sid> = (0..4).map(|_| service.create(None).unwrap()).collect();
    for sid in &sids {
        service.bind(*sid, "U").unwrap();
    }
    let _ = events(&rx);
    let closed_by_outer = without_deadlock({
        let service = service.clone();
        move || service.kick("U", Some("x"))
    });
    assert_eq!(closed_by_outer, 1);
    let mut closed = closed_sids(&events(&rx));
    closed.sort();
    let mut want = sids.clone();
    want.sort(); // sids are not ordered by creation
    assert_eq!(closed, want);
    let closes = drain_all(&service)
        .into_iter()
        .filter(|c| matches!(c, Command::Close { .. }))
        .count();
    assert_eq!(closes, 4, "one Close command per session");
}

#[test]
fn kick_with_reason_sends_kick_after_frames_queued_before_it() {
    let (service, _rx) = service();
    let mut driver = MemoryDriver::new(service.clone());
    let sid = driver.connect(None).unwrap();
    service.bind(sid, "U").unwrap();
    service.send_message(sid, frame("one")).unwrap();
    service.send_message_by_uid("U", &frame("two")).unwrap();
    assert_eq!(service.kick("U", Some("bye")), 1);

    // Command order on the shard's inbox: the frames, then the close carrying the KICK text.
    let commands = drain_all(&service);
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert!(
        matches!(&commands[0], Command::Send { sid: s, frame } if *s == sid && frame.as_bytes() == b"one")
    );
    assert!(
        matches!(&commands[1], Command::Send { sid: s, frame } if *s == sid && frame.as_bytes() == b"two")
    );
    match &commands[2] {
        Command::Close { sid: s, reason } => {
            assert_eq!(*s, sid);
            assert_eq!(reason.kick_message(), Some("bye"));
            assert_eq!(*reason, CloseReason::kick(Some("bye")));
        }
        other => panic!("expected Close, got {other:?}"),
    }
    assert!(commands.iter().all(|c| c.sid() == sid));

    // Same through the memory transport.
    let sid = driver.connect(None).unwrap();
    service.bind(sid, "W").unwrap();
    service.send_message(sid, frame("a")).unwrap();
    service.send_message(sid, frame("b")).unwrap();
    assert!(service.kick_by_session_id(sid, Some("moved")));
    driver.poll();
    assert_eq!(bytes(driver.received(sid)), vec![&b"a"[..], b"b"]);
    assert_eq!(driver.kick_message(sid), Some("moved"));
    assert_eq!(
        driver.close_reason(sid),
        Some(&CloseReason::Kicked(Arc::from("moved")))
    );
}

#[test]
fn kick_without_reason_closes_without_kick_message() {
    let (service, rx) = service();
    let mut driver = MemoryDriver::new(service.clone());
    let by_uid = driver.connect(None).unwrap();
    let by_sid = driver.connect(None).unwrap();
    service.bind(by_uid, "U").unwrap();
    let _ = events(&rx);

    assert_eq!(service.kick("U", None), 1);
    assert!(service.kick_by_session_id(by_sid, None));
    driver.poll();
    for sid in [by_uid, by_sid] {
        assert_eq!(driver.close_reason(sid), Some(&CloseReason::KickedSilently));
        assert_eq!(driver.kick_message(sid), None);
    }
    for event in events(&rx) {
        let Event::Closed(_, reason) = event else {
            panic!("unexpected {event:?}")
        };
        assert_eq!(reason, CloseReason::KickedSilently);
        assert_eq!(reason.kick_message(), None);
    }
}

#[test]
fn peer_close_through_the_driver_fires_closed_without_kick() {
    let (service, rx) = service();
    let mut driver = MemoryDriver::new(service.clone());
    let sid = driver.connect(None).unwrap();
    service.bind(sid, "U").unwrap();
    let _ = events(&rx);
    assert!(driver.disconnect(sid));
    assert!(!driver.disconnect(sid));
    driver.poll();
    assert_eq!(driver.close_reason(sid), Some(&CloseReason::PeerClosed));
    assert_eq!(driver.kick_message(sid), None);
    let events = events(&rx);
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0], Event::Closed(s, CloseReason::PeerClosed) if s.sid == sid));
}

#[test]
fn closed_fires_once_after_removal_with_snapshot_and_reason() {
    let checks = Arc::new(AtomicUsize::new(0));
    let ran = checks.clone();
    let hooks = Hooks {
        closed: Some(Box::new(move |service, snapshot, reason| {
            // Inside the callback the service no longer knows the session...
            assert!(service.get(snapshot.sid).is_none());
            assert!(!service.contains(snapshot.sid));
            assert!(service.snapshot(snapshot.sid).is_none());
            let listed = service.get_by_uid("U").map(|l| l.to_vec());
            assert!(
                !listed.unwrap_or_default().contains(&snapshot.sid),
                "closed session still in the uid index"
            );
            assert_eq!(
                service
                    .send_message(snapshot.sid, frame("late"))
                    .unwrap_err()
                    .kind,
                SendErrorKind::UnknownSession
            );
            // ...but the snapshot carries what it was.
            assert_eq!(snapshot.uid.as_ref().map(Uid::as_str), Some("U"));
            assert_eq!(snapshot.get("level"), Some(&json!(7)));
            assert_eq!(snapshot.state, SessionState::Closed);
            assert_eq!(snapshot.remote, Some(addr("10.0.0.1:4000")));
            assert_eq!(&*snapshot.frontend_id, "gate-1");
            assert_eq!(reason.kick_message(), Some("bye"));
            ran.fetch_add(1, Ordering::SeqCst);
        })),
        ..Hooks::default()
    };
    let (service, rx) = recorded(SessionConfig::default().frontend_id("gate-1"), hooks);
    let sid = service.create(Some(addr("10.0.0.1:4000"))).unwrap();
    let other = service.create(None).unwrap();
    service.bind(sid, "U").unwrap();
    service.bind(other, "U").unwrap();
    service.import(sid, "level", json!(7)).unwrap();
    let _ = events(&rx);

    assert!(service.kick_by_session_id(sid, Some("bye")));
    assert!(!service.kick_by_session_id(sid, Some("bye")));
    assert!(!service.close(sid, CloseReason::PeerClosed));
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    let events = events(&rx);
    assert_eq!(events.len(), 1, "closed fires exactly once: {events:?}");
    let Event::Closed(snapshot, reason) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(snapshot.sid, sid);
    assert_eq!(*reason, CloseReason::kick(Some("bye")));
    assert_eq!(sids_of(&service, "U"), Some(vec![other]));
}

// === sids ======================================================================================

/// The slot field of a sid (bits 23..0, as `Sid` documents the layout).
fn slot_of(sid: Sid) -> usize {
    (sid.into_raw() & ((1 << 24) - 1)) as usize
}

#[test]
fn sids_are_unique_and_exact_in_javascript() {
    let (service, _rx) = recorded(SessionConfig::default().shards(3), Hooks::default());
    let sids: Vec<Sid> = (0..21).map(|_| service.create(None).unwrap()).collect();
    // Round-robin over the shards.
    let shards: Vec<usize> = sids.iter().take(6).map(|s| s.shard()).collect();
    assert_eq!(shards, vec![0, 1, 2, 0, 1, 2]);
    for sid in &sids {
        assert_eq!(sid.to_string(), sid.into_raw().to_string());
        assert_eq!(Sid::from_raw(sid.into_raw()), *sid);
        assert_ne!(sid.into_raw(), 0);
        assert!(sid.into_raw() < 1 << 53, "{sid:?}");
    }
    // 21 = 7 per shard, so the round-robin cursor is back at shard 0.
    // Closing sessions does not bring old ids back, though the slots are reused.
    for sid in &sids {
        service.kick_by_session_id(*sid, None);
    }
    let later: Vec<Sid> = (0..21).map(|_| service.create(None).unwrap()).collect();
    let mut all: Vec<Sid> = sids.iter().chain(&later).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 42, "a sid was handed out twice");
    let mut slots_before: Vec<(usize, usize)> =
        sids.iter().map(|s| (s.shard(), slot_of(*s))).collect();
    let mut slots_after: Vec<(usize, usize)> =
        later.iter().map(|s| (s.shard(), slot_of(*s))).collect();
    slots_before.sort();
    slots_after.sort();
    assert_eq!(
        slots_before, slots_after,
        "the lowest free slots are reused"
    );
}

#[test]
fn sids_are_never_reused_even_when_the_slot_is() {
    // One shard of one slot: the second session must reuse the first one's slot.
    let config = SessionConfig::default()
        .shards(1)
        .max_sessions_per_shard(1)
        .initial_sessions_per_shard(1);
    let (service, _rx) = recorded(config, Hooks::default());
    let mut driver = MemoryDriver::new(service.clone());
    let old = driver.connect(None).unwrap();
    assert_eq!(
        service.create(None),
        Err(CreateError::ShardFull { shard: 0, limit: 1 })
    );
    service.bind(old, "U").unwrap();
    service.send_message(old, frame("for-old")).unwrap();
    assert!(service.kick_by_session_id(old, Some("bye")));

    let new = driver.connect(None).unwrap();
    assert_ne!(new, old);
    assert_eq!(slot_of(new), slot_of(old));
    assert!(service.get(old).is_none());
    assert!(service.get(new).is_some());
    let err = service.send_message(old, frame("late")).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::UnknownSession);
    assert_eq!(service.bind(old, "U"), Err(BindError::UnknownSession(old)));
    assert!(!service.kick_by_session_id(old, None));
    assert!(
        service.contains(new),
        "a stale kick must not close the new session"
    );

    // The frame queued for the old session (before its close) reaches only the old connection.
    service.send_message(new, frame("for-new")).unwrap();
    driver.poll();
    assert_eq!(bytes(driver.received(old)), vec![b"for-old"]);
    assert_eq!(bytes(driver.received(new)), vec![b"for-new"]);
    assert_eq!(driver.kick_message(old), Some("bye"));
    assert_eq!(driver.close_reason(new), None);
    assert_eq!(sids_of(&service, "U"), None);
}

#[test]
fn create_in_reports_missing_and_full_shards() {
    let config = SessionConfig::default()
        .shards(2)
        .max_sessions_per_shard(1)
        .initial_sessions_per_shard(1);
    let (service, _rx) = recorded(config, Hooks::default());
    let err = service.create_in(2, None).unwrap_err();
    assert_eq!(err, CreateError::NoSuchShard(2));
    assert_eq!(err.to_string(), "no session shard 2");
    let sid = service.create_in(1, None).unwrap();
    assert_eq!(sid.shard(), 1);
    let err = service.create_in(1, None).unwrap_err();
    assert_eq!(err, CreateError::ShardFull { shard: 1, limit: 1 });
    assert_eq!(err.to_string(), "session shard 1 is full (1 sessions)");
    assert_eq!(service.create_in(0, None).unwrap().shard(), 0);
}

#[test]
fn session_exists_right_after_create() {
    let (service, rx) = service();
    assert_eq!(service.sessions_count(), 0);
    let remote = addr("127.0.0.1:50000");
    let sid = service.create(Some(remote)).unwrap();
    let info = service
        .get(sid)
        .expect("exists before any handshake or bind");
    assert_eq!(info.sid, sid);
    assert_eq!(info.uid, None);
    assert_eq!(info.remote, Some(remote));
    assert!(service.contains(sid));
    assert_eq!(service.sessions_count(), 1, "unbound sessions count");
    assert_eq!(service.bound_uids_count(), 0);
    let snapshot = service.snapshot(sid).unwrap();
    assert_eq!(snapshot.state, SessionState::Active);
    assert!(snapshot.settings.is_empty());
    assert_eq!(&*snapshot.frontend_id, "connector-server-1");
    // A live session with no handshake yet still accepts frames (the transport decides).
    assert_eq!(service.send_message(sid, frame("x")), Ok(()));
    assert_eq!(events(&rx), vec![], "create emits nothing");
}

// === settings ==================================================================================

#[test]
fn import_and_import_all_merge_settings() {
    let (service, rx) = service();
    let sid = service.create(None).unwrap();
    service.import(sid, "a", json!(1)).unwrap();
    service.import(sid, "b", json!({"nested": [1, 2]})).unwrap();
    service.import(sid, "a", json!("one")).unwrap(); // overwrite
    let mut more = Settings::new();
    more.insert("b".into(), json!(null));
    more.insert("c".into(), json!(true));
    service.import_all(sid, more).unwrap();
    service.import_all(sid, Settings::new()).unwrap(); // merging nothing removes nothing

    assert_eq!(
        service.setting(sid, "a"),
        Some(json!("one")),
        "absent key kept"
    );
    assert_eq!(service.setting(sid, "b"), Some(json!(null)));
    assert_eq!(service.setting(sid, "c"), Some(json!(true)));
    assert_eq!(service.setting(sid, "d"), None);
    let snapshot = service.snapshot(sid).unwrap();
    assert_eq!(
        Value::Object(snapshot.settings.clone()),
        json!({"a": "one", "b": null, "c": true})
    );

    // A snapshot is a deep copy: changing it does not change the session.
    let mut copy = snapshot;
    copy.settings.insert("a".into(), json!("changed"));
    assert_eq!(service.setting(sid, "a"), Some(json!("one")));
    assert_eq!(events(&rx), vec![], "settings changes emit nothing");

    // Unknown sid: error, nothing created.
    service.kick_by_session_id(sid, None);
    assert_eq!(service.import(sid, "a", json!(2)), Err(UnknownSession(sid)));
    assert_eq!(
        service.import_all(sid, Settings::new()),
        Err(UnknownSession(sid))
    );
}

#[test]
fn snapshot_export_has_the_pomelo_shape() {
    let (service, _rx) = recorded(
        SessionConfig::default().frontend_id("connector-7"),
        Hooks::default(),
    );
    let sid = service.create(None).unwrap();
    let unbound = service.snapshot(sid).unwrap().export();
    assert_eq!(
        unbound,
        json!({"id": sid.into_raw(), "frontendId": "connector-7", "uid": null, "settings": {}})
    );

    service.bind(sid, "u1").unwrap();
    service.import(sid, "room", json!(12)).unwrap();
    let export = service.snapshot(sid).unwrap().export();
    assert_eq!(
        export,
        json!({
            "id": sid.into_raw(),
            "frontendId": "connector-7",
            "uid": "u1",
            "settings": {"room": 12}
        })
    );
    let keys: Vec<&String> = export.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4);
}

// === remove and client address =================================================================

#[test]
fn remove_emits_no_event_and_tells_the_transport_to_drop_the_connection() {
    let (service, rx) = service();
    let mut driver = MemoryDriver::new(service.clone());
    let sid = driver.connect(Some(addr("10.1.1.1:9"))).unwrap();
    service.bind(sid, "U").unwrap();
    service.import(sid, "k", json!("v")).unwrap();
    let _ = events(&rx);

    let snapshot = service.remove(sid).expect("was live");
    assert_eq!(snapshot.sid, sid);
    assert_eq!(snapshot.uid.as_ref().map(Uid::as_str), Some("U"));
    assert_eq!(snapshot.get("k"), Some(&json!("v")));
    assert_eq!(snapshot.remote, Some(addr("10.1.1.1:9")));
    assert!(service.get(sid).is_none());
    assert_eq!(sids_of(&service, "U"), None);
    assert_eq!(service.sessions_count(), 0);
    assert_eq!(events(&rx), vec![], "remove emits no event");
    assert!(service.remove(sid).is_none());
    assert!(!service.kick_by_session_id(sid, Some("x")));
    assert_eq!(events(&rx), vec![]);

    driver.poll();
    assert_eq!(driver.close_reason(sid), Some(&CloseReason::Removed));
    assert_eq!(driver.kick_message(sid), None);
}

#[test]
fn client_address_is_reported_for_live_sessions_only() {
    let (service, _rx) = service();
    let with = service.create(Some(addr("192.168.0.9:1234"))).unwrap();
    let without = service.create(None).unwrap();
    assert_eq!(service.client_address(with), Some(addr("192.168.0.9:1234")));
    assert_eq!(service.client_address(without), None);
    let v6 = service.create(Some(addr("[::1]:8080"))).unwrap();
    assert_eq!(service.client_address(v6), Some(addr("[::1]:8080")));
    service.kick_by_session_id(with, None);
    assert_eq!(service.client_address(with), None);
}

// === iteration =================================================================================

#[test]
fn for_each_session_includes_unbound_sessions() {
    let (service, _rx) = service();
    let bound: Vec<Sid> = (0..3).map(|_| service.create(None).unwrap()).collect();
    let unbound: Vec<Sid> = (0..2).map(|_| service.create(None).unwrap()).collect();
    for (i, sid) in bound.iter().enumerate() {
        service.bind(*sid, &format!("u{i}")).unwrap();
    }
    let mut seen = Vec::new();
    service.for_each_session(|sid, uid| seen.push((sid, uid.map(Uid::to_string))));
    seen.sort();
    let mut expected: Vec<(Sid, Option<String>)> = bound
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, Some(format!("u{i}"))))
        .chain(unbound.iter().map(|s| (*s, None)))
        .collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(service.sessions_count(), 5);
}

#[test]
fn for_each_bound_session_visits_each_session_once() {
    // pomelo's binded broadcast delivers k copies to each of a uid's k sessions; here a uid with
    // 3 sessions is visited exactly 3 times, once per session.
    let (service, _rx) = recorded(SessionConfig::default().shards(2), Hooks::default());
    let many: Vec<Sid> = (0..3).map(|_| service.create(None).unwrap()).collect();
    for sid in &many {
        service.bind(*sid, "many").unwrap();
    }
    let single = service.create(None).unwrap();
    service.bind(single, "one").unwrap();
    let _unbound = service.create(None).unwrap();

    let mut visits = Vec::new();
    service.for_each_bound_session(|sid, uid| visits.push((sid, uid.to_string())));
    visits.sort();
    let mut expected: Vec<(Sid, String)> = many.iter().map(|s| (*s, "many".into())).collect();
    expected.push((single, "one".into()));
    expected.sort();
    assert_eq!(visits, expected);
    assert_eq!(visits.iter().filter(|(_, u)| u == "many").count(), 3);
}

#[test]
fn iteration_visits_each_session_exactly_once_across_chunks() {
    // More sessions than one iteration chunk per shard, with holes left by closed sessions.
    let (service, _rx) = recorded(SessionConfig::default().shards(2), Hooks::default());
    let sids: Vec<Sid> = (0..300).map(|_| service.create(None).unwrap()).collect();
    for (i, sid) in sids.iter().enumerate() {
        if i % 7 == 0 {
            service.kick_by_session_id(*sid, None);
        } else if i % 2 == 0 {
            service.bind(*sid, &format!("u{}", i % 10)).unwrap();
        }
    }
    let mut live: Vec<Sid> = sids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, s)| *s)
        .collect();
    let mut bound: Vec<Sid> = sids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0 && i % 2 == 0)
        .map(|(_, s)| *s)
        .collect();
    // Compared sorted: sids are not ordered by creation.
    live.sort();
    bound.sort();

    let mut seen = Vec::new();
    service.for_each_session(|sid, _| seen.push(sid));
    seen.sort();
    assert_eq!(seen, live);
    let mut seen = Vec::new();
    service.for_each_bound_session(|sid, uid| {
        assert_eq!(service.get(sid).unwrap().uid.as_ref(), Some(uid));
        seen.push(sid);
    });
    seen.sort();
    assert_eq!(seen, bound);
}

// === broadcast =================================================================================

/// The `Send` targets in `commands`, in order.
fn send_targets(commands: &[Command]) -> Vec<Sid> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Send { sid, .. } => Some(*sid),
            _ => None,
        })
        .collect()
}

#[test]
fn broadcast_reaches_each_bound_session_once_and_skips_unbound_ones() {
    // Two shards and more sessions than one lock-hold chunk per shard, with holes.
    let (service, _rx) = recorded(SessionConfig::default().shards(2), Hooks::default());
    let many: Vec<Sid> = (0..3).map(|_| service.create(None).unwrap()).collect();
    for sid in &many {
        service.bind(*sid, "many").unwrap();
    }
    let mut bound = many.clone();
    let mut unbound = Vec::new();
    for i in 0..1200 {
        let sid = service.create(None).unwrap();
        match i % 3 {
            0 => {
                service.bind(sid, &format!("u{i}")).unwrap();
                bound.push(sid);
            }
            1 => unbound.push(sid),
            _ => assert!(service.kick_by_session_id(sid, None)),
        }
    }
    drain_all(&service);
    let push = frame("news");
    assert_eq!(service.broadcast(&push), Ok(bound.len()));
    let commands = drain_all(&service);
    assert_eq!(commands.len(), bound.len(), "only sends, nothing else");
    let mut targets = send_targets(&commands);
    targets.sort();
    bound.sort();
    assert_eq!(
        targets, bound,
        "each bound session exactly once, no unbound one"
    );
    // A uid with three sessions gets one frame per session, not three per session (pomelo's
    // binded broadcast bug).
    assert_eq!(targets.iter().filter(|s| many.contains(s)).count(), 3);
    assert!(commands.iter().all(|c| match c {
        Command::Send { frame, .. } => frame.as_bytes() == b"news",
        _ => false,
    }));
    assert!(unbound.iter().all(|s| !targets.contains(s)));
    assert!(service.inbox(0).unwrap().refused() + service.inbox(1).unwrap().refused() == 0);
}

#[test]
fn broadcast_does_not_reach_closed_or_unbound_sessions() {
    let (service, _rx) = recorded(SessionConfig::default().shards(1), Hooks::default());
    let a = service.create(None).unwrap();
    let b = service.create(None).unwrap();
    let c = service.create(None).unwrap();
    for (sid, uid) in [(a, "a"), (b, "b"), (c, "c")] {
        service.bind(sid, uid).unwrap();
    }
    assert!(service.kick_by_session_id(a, Some("bye")));
    service.unbind(b, "b").unwrap();
    // `a`'s slot is reused by a new, unbound session: still not reached.
    let reused = service.create(None).unwrap();
    assert_eq!(reused.into_raw() & 0xff_ffff, a.into_raw() & 0xff_ffff);
    let before = drain_all(&service);
    assert_eq!(send_targets(&before), []);

    assert_eq!(service.broadcast(&frame("x")), Ok(1));
    assert_eq!(send_targets(&drain_all(&service)), [c]);
    // Nobody bound: nothing queued, and no wake-up either.
    service.unbind(c, "c").unwrap();
    assert_eq!(service.broadcast(&frame("y")), Ok(0));
    assert!(drain_all(&service).is_empty());
    assert!(!service.inbox(0).unwrap().wake_pending());
}

#[test]
fn broadcast_counts_sessions_refused_by_a_full_inbox() {
    // Shard 0's inbox holds 4 commands, 2 already queued; shard 1's has room.
    let config = SessionConfig::default().shards(2).inbox_capacity(4);
    let (service, _rx) = recorded(config, Hooks::default());
    let on = |shard| {
        let sid = service.create_in(shard, None).unwrap();
        service.bind(sid, &format!("u{}", sid.into_raw())).unwrap();
        sid
    };
    let zero: Vec<Sid> = (0..5).map(|_| on(0)).collect();
    let one: Vec<Sid> = (0..3).map(|_| on(1)).collect();
    service.send_message(zero[0], frame("earlier")).unwrap();
    service.send_message(zero[1], frame("earlier")).unwrap();

    let err = service.broadcast(&frame("b")).unwrap_err();
    assert_eq!(
        err,
        BroadcastError::InboxFull {
            enqueued: 2 + 3,
            refused: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "outbound inbox full: broadcast queued for 5 session(s), refused for 3"
    );
    let inbox0 = service.inbox(0).unwrap();
    assert_eq!((inbox0.refused(), inbox0.len()), (3, 4));
    assert!(
        inbox0.wake_pending(),
        "a refused push still wakes the consumer"
    );
    let mut shard0 = Vec::new();
    inbox0.drain(|cmd| shard0.push(cmd));
    // The earlier sends, then the first two sessions in slot order.
    assert_eq!(send_targets(&shard0), [zero[0], zero[1], zero[0], zero[1]]);
    let mut shard1 = Vec::new();
    service.inbox(1).unwrap().drain(|cmd| shard1.push(cmd));
    assert_eq!(send_targets(&shard1), one);
    // Drained: shard 0 takes 4 of its 5 sessions (its capacity), shard 1 all 3.
    assert_eq!(
        service.broadcast(&frame("c")),
        Err(BroadcastError::InboxFull {
            enqueued: 4 + 3,
            refused: 1
        })
    );
    assert_eq!(inbox0.refused(), 4);
}

#[test]
fn broadcast_frames_precede_the_close_of_a_session_kicked_afterwards() {
    let (service, _rx) = recorded(SessionConfig::default().shards(1), Hooks::default());
    let mut driver = MemoryDriver::new(service.clone());
    let sid = driver.connect(None).unwrap();
    service.bind(sid, "p").unwrap();
    assert_eq!(service.broadcast(&frame("last words")), Ok(1));
    assert!(service.inbox(0).unwrap().wake_pending());
    service.kick("p", Some("maintenance"));
    driver.poll();
    assert_eq!(bytes(driver.received(sid)), vec![b"last words"]);
    assert_eq!(driver.kick_message(sid), Some("maintenance"));
    assert_eq!(driver.stale(), 0);
}

#[test]
fn broadcast_races_binds_and_kicks_without_losing_or_duplicating() {
    // Sessions bound for the whole run get every broadcast exactly once, while other threads
    // bind, unbind and kick their own sessions on the same shards.
    let config = SessionConfig::default().shards(2).inbox_capacity(1 << 16);
    let (service, _rx) = recorded(config, Hooks::default());
    let stable: Vec<Sid> = (0..300)
        .map(|i| {
            let sid = service.create(None).unwrap();
            service.bind(sid, &format!("stable-{i}")).unwrap();
            sid
        })
        .collect();
    const ROUNDS: usize = 50;
    let churn = {
        let service = service.clone();
        thread::spawn(move || {
            for i in 0..2000 {
                let sid = service.create(None).unwrap();
                service.bind(sid, &format!("churn-{}", i % 7)).unwrap();
                if i % 2 == 0 {
                    service.unbind(sid, &format!("churn-{}", i % 7)).unwrap();
                }
                service.kick_by_session_id(sid, None);
            }
        })
    };
    for _ in 0..ROUNDS {
        service.broadcast(&frame("tick")).unwrap();
    }
    churn.join().unwrap();
    let commands = drain_all(&service);
    for sid in &stable {
        let got = send_targets(&commands).iter().filter(|s| *s == sid).count();
        assert_eq!(got, ROUNDS, "{sid:?}");
    }
    // Nothing queued for a churned session after its close.
    let mut closed = std::collections::HashSet::new();
    for cmd in &commands {
        match cmd {
            Command::Close { sid, .. } => assert!(closed.insert(*sid)),
            Command::Send { sid, .. } => assert!(!closed.contains(sid), "{sid:?} sent after close"),
            _ => {}
        }
    }
}

// === re-entrancy ===============================================================================

#[test]
fn for_each_callbacks_may_reenter_the_service() {
    let (service, rx) = recorded(SessionConfig::default().shards(2), Hooks::default());
    let sids: Vec<Sid> = (0..100).map(|_| service.create(None).unwrap()).collect();
    let svc = service.clone();
    let visited = without_deadlock(move || {
        let mut visited = 0;
        // Bind every session from inside the walk, kick every third one, send to the rest.
        svc.for_each_session(|sid, uid| {
            visited += 1;
            assert!(uid.is_none());
            svc.bind(sid, &format!("u{}", sid.into_raw() % 5)).unwrap();
            if sid.into_raw() % 3 == 0 {
                assert!(svc.kick_by_session_id(sid, Some("walk")));
            } else {
                svc.send_message(sid, frame("hi")).unwrap();
            }
            assert!(svc.sessions_count() <= 100);
            svc.for_each_bound_session(|_, _| {});
        });
        // Unbind and rebind from inside the bound walk.
        svc.for_each_bound_session(|sid, uid| {
            let uid = uid.to_string();
            svc.unbind(sid, &uid).unwrap();
            svc.bind(sid, "again").unwrap();
            svc.send_message_by_uid("again", &frame("x")).unwrap();
        });
        visited
    });
    assert_eq!(visited, sids.len());
    let kicked = sids.iter().filter(|s| s.into_raw() % 3 == 0).count();
    assert_eq!(service.sessions_count(), sids.len() - kicked);
    let again = sids_of(&service, "again").unwrap();
    assert_eq!(again.len(), sids.len() - kicked);
    assert_eq!(service.uid_index_entries().len(), 1);
    let events = events(&rx);
    let closed = events
        .iter()
        .filter(|e| matches!(e, Event::Closed(..)))
        .count();
    assert_eq!(closed, kicked);
}

#[test]
fn listeners_may_reenter_the_service() {
    // `bound` kicks sessions bound to "kick-me"; `closed` binds the next session.
    let hooks = Hooks {
        bound: Some(Box::new(|service, sid, uid| {
            assert_eq!(service.get(sid).unwrap().uid.as_ref(), Some(uid));
            assert!(service.get_by_uid(uid.as_str()).unwrap().contains(&sid));
            if *uid == "kick-me" {
                assert!(service.kick_by_session_id(sid, Some("go away")));
            }
        })),
        closed: Some(Box::new(|service, snapshot, _| {
            assert!(!service.contains(snapshot.sid));
            let mut unbound = Vec::new();
            service.for_each_session(|sid, uid| {
                if uid.is_none() {
                    unbound.push(sid);
                }
            });
            if let Some(first) = unbound.first() {
                service.bind(*first, "heir").unwrap();
            }
        })),
    };
    let (service, rx) = recorded(SessionConfig::default(), hooks);
    let a = service.create(None).unwrap();
    let b = service.create(None).unwrap();
    let svc = service.clone();
    without_deadlock(move || {
        // bind succeeds, then the listener kicks it, and the closed listener binds `b`.
        assert_eq!(svc.bind(a, "kick-me"), Ok(()));
    });
    assert!(!service.contains(a));
    assert_eq!(uid_of(&service, b).as_deref(), Some("heir"));
    let events = events(&rx);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0], Event::Bound(a, "kick-me".into()));
    assert!(
        matches!(&events[1], Event::Closed(s, r) if s.sid == a && r.kick_message() == Some("go away"))
    );
    assert_eq!(events[2], Event::Bound(b, "heir".into()));
    assert_eq!(sids_of(&service, "kick-me"), None);
}

// === inbox limits ==============================================================================

#[test]
fn full_inbox_refuses_sends_and_hands_the_frame_back() {
    let config = SessionConfig::default().shards(1).inbox_capacity(2);
    let (service, _rx) = recorded(config, Hooks::default());
    let sids: Vec<Sid> = (0..3).map(|_| service.create(None).unwrap()).collect();
    for sid in &sids {
        service.bind(*sid, "U").unwrap();
    }
    let inbox = service.inbox(0).unwrap();
    assert_eq!(inbox.capacity(), 2);

    service.send_message(sids[0], frame("1")).unwrap();
    let refused = frame("refused");
    let err: SendError = service
        .send_message(sids[0], frame("2"))
        .and_then(|()| service.send_message(sids[0], refused.clone()))
        .unwrap_err();
    assert_eq!(err.kind, SendErrorKind::InboxFull);
    assert_eq!(err.frame, refused, "the frame is handed back");
    assert_eq!(err.to_string(), "outbound inbox full");
    assert_eq!(inbox.refused(), 1);
    assert_eq!(inbox.len(), 2);

    // By uid: all three refused while full...
    assert_eq!(
        service.send_message_by_uid("U", &frame("u")),
        Err(UidSendError::InboxFull {
            enqueued: 0,
            refused: 3
        })
    );
    // ...one room: the first session (bind order) gets it, the other two are counted.
    let mut popped = 0;
    inbox.drain(|_| popped += 1);
    assert_eq!(popped, 2);
    service.send_message(sids[2], frame("filler")).unwrap();
    let err = service.send_message_by_uid("U", &frame("u")).unwrap_err();
    assert_eq!(
        err,
        UidSendError::InboxFull {
            enqueued: 1,
            refused: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "outbound inbox full: queued for 1 session(s), refused for 2"
    );
    assert_eq!(inbox.refused(), 1 + 3 + 2);
    let commands = drain_all(&service);
    assert_eq!(commands.len(), 2);
    assert!(matches!(&commands[1], Command::Send { sid, .. } if *sid == sids[0]));

    // Drained: room for two again, so two of the three sessions get the next push.
    assert_eq!(
        service.send_message_by_uid("U", &frame("u")),
        Err(UidSendError::InboxFull {
            enqueued: 2,
            refused: 1
        })
    );
    let _ = drain_all(&service);
    assert_eq!(service.send_message(sids[1], frame("ok")), Ok(()));
}

#[test]
fn close_that_finds_the_inbox_full_is_still_delivered_after_queued_sends() {
    let config = SessionConfig::default().shards(1).inbox_capacity(2);
    let (service, rx) = recorded(config, Hooks::default());
    let mut driver = MemoryDriver::new(service.clone());
    let sid = driver.connect(None).unwrap();
    let other = driver.connect(None).unwrap();
    service.bind(sid, "U").unwrap();
    service.send_message(sid, frame("a")).unwrap();
    service.send_message(sid, frame("b")).unwrap();
    assert_eq!(
        service.send_message(sid, frame("c")).unwrap_err().kind,
        SendErrorKind::InboxFull
    );
    // The queue is full, the closes cannot be refused.
    assert_eq!(service.kick("U", Some("full")), 1);
    assert!(service.kick_by_session_id(other, None));
    assert!(service.inbox(0).unwrap().wake_pending());
    assert_eq!(
        events(&rx)
            .iter()
            .filter(|e| matches!(e, Event::Closed(..)))
            .count(),
        2
    );

    driver.poll();
    assert_eq!(bytes(driver.received(sid)), vec![&b"a"[..], b"b"]);
    assert_eq!(driver.kick_message(sid), Some("full"));
    assert_eq!(
        driver.close_reason(other),
        Some(&CloseReason::KickedSilently)
    );
    assert_eq!(driver.poll(), 0, "nothing left behind");
}

#[test]
fn close_overflow_is_drained_after_the_queue_in_order() {
    let config = SessionConfig::default().shards(1).inbox_capacity(1);
    let (service, _rx) = recorded(config, Hooks::default());
    let a = service.create(None).unwrap();
    let b = service.create(None).unwrap();
    service.send_message(a, frame("a")).unwrap();
    service.kick_by_session_id(a, Some("first"));
    service.kick_by_session_id(b, Some("second"));
    let commands = drain_all(&service);
    assert_eq!(commands.len(), 3);
    assert!(matches!(&commands[0], Command::Send { sid, .. } if *sid == a));
    assert!(
        matches!(&commands[1], Command::Close { sid, reason } if *sid == a && reason.kick_message() == Some("first"))
    );
    assert!(
        matches!(&commands[2], Command::Close { sid, reason } if *sid == b && reason.kick_message() == Some("second"))
    );
    assert!(drain_all(&service).is_empty());
}

#[test]
fn stale_sends_are_dropped_and_counted_by_the_driver() {
    let config = SessionConfig::default().shards(1);
    let (service, _rx) = recorded(config, Hooks::default());
    let mut driver = MemoryDriver::new(service.clone());
    let connected = driver.connect(None).unwrap();
    // A session the driver has no connection for (created behind its back): its frames have
    // nowhere to go and must be dropped and counted, never handed to another connection.
    let orphan = service.create(None).unwrap();
    service.bind(connected, "U").unwrap();
    service.bind(orphan, "U").unwrap();
    service.send_message(orphan, frame("lost")).unwrap();
    assert_eq!(service.send_message_by_uid("U", &frame("both")), Ok(2));

    driver.poll();
    assert_eq!(driver.stale(), 2);
    assert_eq!(service.inbox(0).unwrap().stale(), 2);
    assert_eq!(bytes(driver.received(connected)), vec![b"both"]);
    assert!(driver.received(orphan).is_empty());
    assert!(driver.connection(orphan).is_none());
}

#[test]
fn wake_flag_coalesces_until_the_next_drain() {
    let (service, _rx) = recorded(SessionConfig::default().shards(1), Hooks::default());
    let sid = service.create(None).unwrap();
    let inbox = service.inbox(0).unwrap();
    assert!(!inbox.wake_pending());
    service.send_message(sid, frame("1")).unwrap();
    assert!(inbox.wake_pending());
    service.send_message(sid, frame("2")).unwrap();
    assert_eq!(inbox.drain(|_| {}), 2);
    assert!(!inbox.wake_pending());
    assert!(inbox.is_empty());
}

#[test]
fn memory_driver_records_frames_per_connection() {
    let (service, _rx) = service();
    let mut driver = MemoryDriver::new(service.clone());
    let a = driver.connect(None).unwrap();
    let b = driver.connect(None).unwrap();
    service.send_message(a, frame("to-a")).unwrap();
    service.send_message(b, frame("to-b")).unwrap();
    assert_eq!(driver.poll(), 2);
    assert_eq!(bytes(driver.received(a)), vec![b"to-a"]);
    assert_eq!(bytes(&driver.take_received(b)), vec![b"to-b"]);
    assert!(driver.received(b).is_empty());
    service.kick_by_session_id(a, None);
    driver.poll();
    driver.forget_closed();
    assert!(driver.connection(a).is_none());
    assert!(driver.connection(b).is_some());
}
