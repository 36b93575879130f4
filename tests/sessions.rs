//! `Sessions`, the game's handle: pushes by route and body (encoded once, dictionary codes,
//! per-uid and per-session reports, exact retries), `send_batch`, `remove_setting`, and the
//! `broadcast_reporting` contract `push_to_all` relies on. Without sockets: the inboxes are
//! drained by hand and every frame is decoded back to its route and body.

use gatehouse::protocol::{
    decode_message, decode_package, encode_push, Dictionary, EncodeError, MessageType, PackageType,
    Route, MAX_BODY_LEN,
};
use gatehouse::{
    BroadcastError, Command, Frame, PushBody, PushError, SendErrorKind, SessionConfig,
    SessionService, Sessions, Sid, UidMiss, UidSendError, UnknownSession, Wake,
};
use serde_json::{json, Value};
use std::sync::{mpsc, Arc, OnceLock, Weak};

// === helpers ===================================================================================

fn service(shards: usize, inbox_capacity: usize) -> Arc<SessionService> {
    Arc::new(
        SessionService::new(
            SessionConfig::default()
                .shards(shards)
                .inbox_capacity(inbox_capacity),
        )
        .unwrap(),
    )
}

/// A session bound to `uid` (the transport's `create`, then the game's `bind`).
fn bound(service: &SessionService, uid: &str) -> Sid {
    let sid = service.create(None).unwrap();
    service.bind(sid, uid).unwrap();
    sid
}

/// Every `Send` queued so far on every shard, as `(sid, frame)`, in queue order per shard.
fn drain_sends(service: &SessionService) -> Vec<(Sid, Frame)> {
    let mut sends = Vec::new();
    for shard in 0..service.config().shard_count() {
        service.inbox(shard).unwrap().drain(|cmd| match cmd {
            Command::Send { sid, frame } => sends.push((sid, frame)),
            other => panic!("unexpected command {other:?}"),
        });
    }
    sends
}

/// A frame decoded back: one DATA package holding one PUSH message. A compressed route reads
/// `#code`.
#[derive(Debug, PartialEq)]
struct Push {
    route: String,
    body: Vec<u8>,
}

fn decode_push(frame: &Frame) -> Push {
    let (package, used) = decode_package(frame.as_bytes(), MAX_BODY_LEN)
        .unwrap()
        .expect("a whole package");
    assert_eq!(used, frame.len(), "one package per frame");
    assert_eq!(package.kind, PackageType::Data);
    let msg = decode_message(package.body).unwrap();
    assert_eq!(msg.kind, MessageType::Push);
    let route = match msg.route {
        Route::Name(name) => name.to_owned(),
        Route::Code(code) => format!("#{code}"),
        Route::None => panic!("a push without a route"),
    };
    Push {
        route,
        body: msg.body.to_vec(),
    }
}

/// What the example gate did by hand before `Sessions`: `serde_json::to_vec` + `encode_push`.
fn hand_encoded(route: &str, body: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_push(
        Route::Name(route),
        &serde_json::to_vec(body).unwrap(),
        &mut out,
    )
    .unwrap();
    out
}

// === the handle ================================================================================

#[test]
fn sessions_is_a_cheap_shareable_handle() {
    fn assert_handle<T: Clone + Send + Sync + 'static>() {}
    assert_handle::<Sessions>();

    let service = service(1, 16);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    let clone = sessions.clone();
    // Both handles see the same service.
    clone.bind(sid, "u1").unwrap();
    assert_eq!(sessions.get(sid).unwrap().uid.unwrap(), "u1");
    assert_eq!(sessions.sessions_count(), 1);
    assert_eq!(sessions.bound_uids_count(), 1);
    assert_eq!(
        sessions.get_by_uid("u1").unwrap().as_slice(),
        std::slice::from_ref(&sid)
    );
    assert!(sessions.dictionary().is_none());
    // Moved into another thread.
    std::thread::spawn(move || clone.kick("u1", None))
        .join()
        .unwrap();
    assert!(!sessions.contains(sid));
}

// === push to one session =======================================================================

#[test]
fn push_encodes_route_and_json_body_as_the_gate_did_by_hand() {
    let service = service(1, 64);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    let bodies = [
        json!({"i": 7, "p": "xxxx"}),
        json!({"nested": {"a": [1, 2.5, null, true]}, "s": "é\"\\\n\u{1}"}),
        json!("just a string"),
        json!([]),
        json!(1e300),
    ];
    for body in &bodies {
        sessions.push(sid, "onPush", body).unwrap();
    }
    let sends = drain_sends(&service);
    assert_eq!(sends.len(), bodies.len());
    for ((to, frame), body) in sends.iter().zip(&bodies) {
        assert_eq!(*to, sid);
        assert_eq!(frame.as_bytes(), hand_encoded("onPush", body).as_slice());
    }
}

#[test]
fn push_sends_raw_bodies_as_they_are() {
    let service = service(1, 64);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    let vec_body = b"\x0a\x03abc".to_vec(); // e.g. protobuf
    sessions.push(sid, "onRaw", b"{\"pre\":1}").unwrap();
    sessions.push(sid, "onRaw", &vec_body).unwrap();
    sessions.push(sid, "onRaw", PushBody::Raw(b"")).unwrap();
    let bodies: Vec<Vec<u8>> = drain_sends(&service)
        .iter()
        .map(|(_, f)| decode_push(f).body)
        .collect();
    assert_eq!(bodies, [b"{\"pre\":1}".to_vec(), vec_body, Vec::new()]);
}

#[test]
fn push_to_an_unknown_or_full_session_hands_the_encoded_frame_back() {
    let service = service(1, 1);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    let gone = service.create(None).unwrap();
    service.kick_by_session_id(gone, None);
    drain_all_commands(&service);

    let Err(PushError::Send(err)) = sessions.push(gone, "onPush", &json!({"n": 1})) else {
        panic!("a push to a closed session must fail");
    };
    assert_eq!(err.kind, SendErrorKind::UnknownSession);
    assert_eq!(
        err.frame.as_bytes(),
        hand_encoded("onPush", &json!({"n": 1}))
    );

    sessions.push(sid, "onPush", &json!({"n": 2})).unwrap();
    let Err(PushError::Send(err)) = sessions.push(sid, "onPush", &json!({"n": 3})) else {
        panic!("the inbox holds one command");
    };
    assert_eq!(err.kind, SendErrorKind::InboxFull);
    // The frame handed back is the encoded push, ready to send again without re-encoding.
    drain_sends(&service);
    sessions.send_message(sid, err.into_frame()).unwrap();
    let sends = drain_sends(&service);
    assert_eq!(decode_push(&sends[0].1).body, br#"{"n":3}"#);
}

fn drain_all_commands(service: &SessionService) {
    for shard in 0..service.config().shard_count() {
        service.inbox(shard).unwrap().drain(|_| {});
    }
}

#[test]
fn routes_the_dictionary_knows_are_sent_as_codes() {
    let service = service(1, 64);
    let dict =
        Arc::new(Dictionary::new(["area.playerHandler.move"], ["onMove", "onChat"]).unwrap());
    let sessions = Sessions::new(service.clone(), Some(dict.clone()));
    let sid = service.create(None).unwrap();
    sessions.push(sid, "onChat", &json!({"t": "hi"})).unwrap();
    sessions
        .push(sid, "onUnknown", &json!({"t": "hi"}))
        .unwrap();
    let pushes: Vec<Push> = drain_sends(&service)
        .iter()
        .map(|(_, f)| decode_push(f))
        .collect();
    assert_eq!(
        pushes,
        [
            Push {
                route: "#3".into(),
                body: br#"{"t":"hi"}"#.to_vec()
            },
            Push {
                route: "onUnknown".into(),
                body: br#"{"t":"hi"}"#.to_vec()
            },
        ]
    );
    assert_eq!(dict.code("onChat"), Some(3));
    assert_eq!(sessions.dictionary().map(Dictionary::len), Some(3));
}

#[test]
fn encode_errors_are_errors_and_queue_nothing() {
    let service = service(1, 64);
    let sessions = Sessions::new(service.clone(), None);
    let sid = bound(&service, "u");

    // flag (1) + route length (1) + "onBig" (5) + body: one byte over the package limit.
    let body = vec![b'x'; MAX_BODY_LEN - 7 + 1];
    let too_large = EncodeError::TooLarge(MAX_BODY_LEN + 1);
    assert_eq!(
        sessions.push(sid, "onBig", &body),
        Err(PushError::Encode(too_large.clone()))
    );
    assert_eq!(
        sessions.push_to_uid("u", "onBig", &body),
        Err(PushError::Encode(too_large.clone()))
    );
    assert_eq!(
        sessions.push_to_uids(["u"], "onBig", &body).unwrap_err(),
        too_large.clone()
    );
    assert_eq!(sessions.push_to_all("onBig", &body).unwrap_err(), too_large);
    // A JSON body (serialised once to count it, in debug builds the slow part of this test):
    // the string's quotes add two bytes.
    let json_body = json!("y".repeat(MAX_BODY_LEN - 7 - 2 + 1));
    assert_eq!(
        sessions.push(sid, "onBig", &json_body),
        Err(PushError::Encode(too_large))
    );
    // At the limit exactly, it fits.
    let fits = sessions
        .encode_push("onBig", &vec![b'x'; MAX_BODY_LEN - 7])
        .unwrap();
    assert_eq!(fits.len(), 4 + MAX_BODY_LEN);

    let long_route = "r".repeat(256);
    assert_eq!(
        sessions.push(sid, &long_route, &json!({})),
        Err(PushError::Encode(EncodeError::RouteTooLong(256)))
    );
    assert_eq!(
        PushError::Encode(EncodeError::RouteTooLong(256)).to_string(),
        "cannot encode push: route of 256 bytes exceeds 255"
    );
    assert!(drain_sends(&service).is_empty(), "nothing may be queued");
}

// === push to uids ==============================================================================

#[test]
fn push_to_uid_reaches_every_session_of_the_uid() {
    let service = service(2, 64);
    let sessions = Sessions::new(service.clone(), None);
    let a = bound(&service, "hero");
    let b = bound(&service, "hero");
    let _other = bound(&service, "villain");
    assert_eq!(
        sessions.push_to_uid("hero", "onHit", &json!({"hp": 3})),
        Ok(2)
    );
    assert_eq!(
        sessions.push_to_uid("nobody", "onHit", &json!({})),
        Err(PushError::Uid(UidSendError::UnknownUid))
    );
    let mut sends = drain_sends(&service);
    sends.sort_by_key(|(sid, _)| *sid);
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(sends.iter().map(|(s, _)| *s).collect::<Vec<_>>(), want);
    // One frame, shared: both sends carry the very same bytes.
    assert_eq!(sends[0].1, sends[1].1);
    assert_eq!(
        sends[0].1.as_bytes(),
        hand_encoded("onHit", &json!({"hp": 3}))
    );
}

#[test]
fn push_to_uids_reports_delivered_offline_and_per_session_counts() {
    let service = service(2, 64);
    let sessions = Sessions::new(service.clone(), None);
    let a = bound(&service, "a");
    let b1 = bound(&service, "b");
    let b2 = bound(&service, "b");
    let owned: Vec<String> = ["a", "ghost", "b", "nobody"]
        .iter()
        .map(|s| s.to_string())
        .collect();

    let report = sessions
        .push_to_uids(&owned, "onChat", &json!({"msg": "hi"}))
        .unwrap();
    assert_eq!(report.push.enqueued(), 3);
    assert_eq!(report.delivered_uids, 2);
    assert_eq!(
        report.missed,
        [("ghost", UidMiss::Offline), ("nobody", UidMiss::Offline)]
    );
    assert_eq!(report.offline().collect::<Vec<_>>(), ["ghost", "nobody"]);
    assert!(report.push.is_complete());
    assert_eq!(report.push.skipped(), &[] as &[Sid]);

    let mut got: Vec<Sid> = drain_sends(&service).iter().map(|(s, _)| *s).collect();
    got.sort();
    let mut want = vec![a, b1, b2];
    want.sort();
    assert_eq!(got, want);

    // Other iterator shapes: `&[&str]`, `&str` items, `&[Uid]`.
    assert_eq!(
        sessions
            .push_to_uids(&["a", "b"], "onChat", b"{}")
            .unwrap()
            .push
            .enqueued(),
        3
    );
    assert_eq!(
        sessions
            .push_to_uids(owned.iter().map(String::as_str), "onChat", b"{}")
            .unwrap()
            .delivered_uids,
        2
    );
    let uids = [gatehouse::Uid::from("a")];
    assert_eq!(
        sessions
            .push_to_uids(&uids, "onChat", b"{}")
            .unwrap()
            .delivered_uids,
        1
    );
}

#[test]
fn push_to_uids_names_the_sessions_a_full_inbox_refused_and_retry_reaches_exactly_them() {
    // One shard holding two commands; "trio" has three sessions.
    let service = service(1, 2);
    let sessions = Sessions::new(service.clone(), None);
    let trio: Vec<Sid> = (0..3).map(|_| bound(&service, "trio")).collect();
    let solo = bound(&service, "solo");

    let mut report = sessions
        .push_to_uids(["trio", "solo"], "onTick", &json!({"t": 1}))
        .unwrap();
    assert_eq!(report.push.enqueued(), 2);
    assert_eq!(report.delivered_uids, 0);
    assert_eq!(
        report.missed,
        [
            (
                "trio",
                UidMiss::InboxFull {
                    enqueued: 2,
                    refused: 1
                }
            ),
            (
                "solo",
                UidMiss::InboxFull {
                    enqueued: 0,
                    refused: 1
                }
            ),
        ]
    );
    assert_eq!(report.push.skipped(), [trio[2], solo]);

    let mut delivered: Vec<Sid> = drain_sends(&service).iter().map(|(s, _)| *s).collect();
    assert_eq!(delivered, trio[..2]);
    assert_eq!(sessions.retry(&mut report.push), 2);
    assert!(report.push.is_complete());
    assert_eq!(report.push.enqueued(), 4);
    let retried = drain_sends(&service);
    delivered.extend(retried.iter().map(|(s, _)| *s));
    // Every session exactly once, and the retry sent the same frame.
    assert_eq!(delivered, [trio[0], trio[1], trio[2], solo]);
    assert!(retried.iter().all(|(_, f)| f == report.push.frame()));
}

// === push to all and retry =====================================================================

#[test]
fn push_to_all_reports_exactly_the_skipped_sessions_and_retry_never_duplicates() {
    // Two shards of three commands each; ten bound sessions (five per shard), one guest.
    let service = service(2, 3);
    let sessions = Sessions::new(service.clone(), None);
    let players: Vec<Sid> = (0..10).map(|i| bound(&service, &format!("p{i}"))).collect();
    let guest = service.create(None).unwrap();

    let mut report = sessions.push_to_all("onTick", &json!({"tick": 9})).unwrap();
    assert_eq!(report.enqueued(), 6);
    assert_eq!(report.skipped().len(), 4);
    let first = drain_sends(&service);
    let first_sids: Vec<Sid> = first.iter().map(|(s, _)| *s).collect();
    // Skipped = exactly the bound sessions the first attempt did not reach.
    let mut expected_skipped: Vec<Sid> = players
        .iter()
        .copied()
        .filter(|s| !first_sids.contains(s))
        .collect();
    expected_skipped.sort();
    let mut skipped = report.skipped().to_vec();
    skipped.sort();
    assert_eq!(skipped, expected_skipped);

    let mut all = first_sids;
    let mut attempts = 0;
    while !report.is_complete() {
        attempts += 1;
        assert!(attempts < 10, "retries make no progress");
        sessions.retry(&mut report);
        all.extend(drain_sends(&service).iter().map(|(s, _)| *s));
    }
    assert_eq!(report.enqueued(), 10);
    assert_eq!(report.gone(), 0);
    all.sort();
    let mut want = players.clone();
    want.sort();
    assert_eq!(
        all, want,
        "each bound session exactly once, the guest never"
    );
    assert!(!all.contains(&guest));
}

#[test]
fn retry_drops_sessions_that_closed_meanwhile() {
    let service = service(1, 1);
    let sessions = Sessions::new(service.clone(), None);
    let a = bound(&service, "a");
    let b = bound(&service, "b");
    let c = bound(&service, "c");
    let mut report = sessions.push_to_all("onTick", b"{}").unwrap();
    assert_eq!((report.enqueued(), report.skipped()), (1, &[b, c][..]));
    assert_eq!(drain_sends(&service)[0].0, a);

    service.kick("b", None);
    drain_all_commands(&service);
    assert_eq!(sessions.retry(&mut report), 1);
    assert_eq!((report.enqueued(), report.gone()), (2, 1));
    assert!(report.is_complete());
    assert_eq!(drain_sends(&service)[0].0, c);
}

/// A by-uid push skipped on a full inbox is never retried onto the session's next user: the
/// retry checks, under the shard lock, that the session is still bound to the uid it was for.
#[test]
fn retry_of_a_uid_push_skips_a_session_rebound_to_another_user() {
    let service = service(1, 1);
    let sessions = Sessions::new(service.clone(), None);
    let filler = bound(&service, "filler");
    let s = bound(&service, "alice");
    let mut report = sessions
        .push_to_uids(["filler", "alice"], "onWhisper", b"{\"to\":\"alice\"}")
        .unwrap();
    assert_eq!(report.push.skipped(), &[s][..]);
    assert_eq!(drain_sends(&service)[0].0, filler);

    // Alice logs out and Bob logs in on the same connection before the retry.
    service.unbind(s, "alice").unwrap();
    service.bind(s, "bob").unwrap();
    assert_eq!(sessions.retry(&mut report.push), 0);
    assert_eq!(report.push.gone(), 1);
    assert!(drain_sends(&service).is_empty(), "alice's push reached bob");

    // Still alice's: the retry goes through.
    let s2 = bound(&service, "carol");
    let filler2 = bound(&service, "filler2");
    let mut report = sessions
        .push_to_uids(["filler2", "carol"], "onWhisper", b"{}")
        .unwrap();
    assert_eq!(report.push.skipped(), &[s2][..]);
    assert_eq!(drain_sends(&service)[0].0, filler2);
    assert_eq!(sessions.retry(&mut report.push), 1);
    assert_eq!(drain_sends(&service)[0].0, s2);
}

#[test]
fn broadcast_reporting_names_every_refused_session() {
    let service = service(1, 2);
    let sids: Vec<Sid> = (0..5).map(|i| bound(&service, &format!("u{i}"))).collect();
    let _guest = service.create(None).unwrap();
    let frame = Frame::from_static(b"\x04\x00\x00\x01\x06");
    let mut refused = Vec::new();
    let result = service.broadcast_reporting(&frame, |sid| refused.push(sid));
    assert_eq!(
        result,
        Err(BroadcastError::InboxFull {
            enqueued: 2,
            refused: 3
        })
    );
    let queued: Vec<Sid> = drain_sends(&service).iter().map(|(s, _)| *s).collect();
    let mut both = [queued.clone(), refused.clone()].concat();
    both.sort();
    assert_eq!(both, sids, "every bound session either queued or reported");
    assert!(queued.iter().all(|s| !refused.contains(s)));

    // Room for every push: `Ok`, and nothing reported.
    for i in 2..5 {
        service.kick(&format!("u{i}"), None);
    }
    drain_all_commands(&service);
    let mut none = Vec::new();
    assert_eq!(
        service.broadcast_reporting(&frame, |sid| none.push(sid)),
        Ok(2)
    );
    assert!(none.is_empty());
}

// === send_batch ================================================================================

/// Records the inbox length each time the consumer is woken. (A weak reference: the inbox
/// holds the waker.)
struct WakeLog {
    service: OnceLock<Weak<SessionService>>,
    lens: mpsc::Sender<usize>,
}

impl Wake for WakeLog {
    fn wake(&self) {
        let service = self.service.get().and_then(Weak::upgrade).unwrap();
        let len = service.inbox(0).unwrap().len();
        self.lens.send(len).unwrap();
    }
}

fn frames(n: usize) -> Vec<Frame> {
    (0..n)
        .map(|i| Frame::new(format!("frame-{i}").into_bytes()))
        .collect()
}

#[test]
fn send_batch_queues_in_order_with_one_wake_up_after_the_last_frame() {
    let service = service(1, 64);
    let (tx, wakes) = mpsc::channel();
    let log = Arc::new(WakeLog {
        service: OnceLock::new(),
        lens: tx,
    });
    log.service.set(Arc::downgrade(&service)).unwrap();
    service.inbox(0).unwrap().set_waker(log.clone());
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    let batch = frames(5);

    assert_eq!(sessions.send_batch(sid, &batch), Ok(5));
    // Woken once, with the whole batch already queued.
    assert_eq!(wakes.try_iter().collect::<Vec<_>>(), [5]);
    let sends = drain_sends(&service);
    assert_eq!(
        sends.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(),
        batch
    );
    assert!(sends.iter().all(|(s, _)| *s == sid));
    // An empty batch queues nothing and wakes no one.
    assert_eq!(sessions.send_batch(sid, &[]), Ok(0));
    assert_eq!(wakes.try_iter().count(), 0);
}

#[test]
fn send_batch_into_a_filling_inbox_reports_how_far_it_got() {
    let service = service(1, 3);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    let batch = frames(5);

    let err = sessions.send_batch(sid, &batch).unwrap_err();
    assert_eq!(err.kind, SendErrorKind::InboxFull);
    assert_eq!(err.queued, 3);
    assert_eq!(
        err.to_string(),
        "outbound inbox full: batch queued up to frame 3 only"
    );
    let first: Vec<Frame> = drain_sends(&service).into_iter().map(|(_, f)| f).collect();
    assert_eq!(first, batch[..3]);
    // The rest, sent again: the session receives the whole batch in order, nothing twice.
    assert_eq!(sessions.send_batch(sid, &batch[err.queued..]), Ok(2));
    let rest: Vec<Frame> = drain_sends(&service).into_iter().map(|(_, f)| f).collect();
    assert_eq!(rest, batch[3..]);
}

#[test]
fn send_batch_to_an_unknown_session_queues_nothing() {
    let service = service(1, 8);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    sessions.kick_by_session_id(sid, None);
    drain_all_commands(&service);
    let err = sessions.send_batch(sid, &frames(2)).unwrap_err();
    assert_eq!((err.kind, err.queued), (SendErrorKind::UnknownSession, 0));
    assert!(drain_sends(&service).is_empty());
}

// === remove_setting ============================================================================

#[test]
fn remove_setting_deletes_one_key_and_returns_its_value() {
    let service = service(1, 8);
    let sessions = Sessions::new(service.clone(), None);
    let sid = service.create(None).unwrap();
    sessions.import(sid, "room", json!(12)).unwrap();
    sessions.import(sid, "team", json!("red")).unwrap();

    assert_eq!(sessions.remove_setting(sid, "room"), Ok(Some(json!(12))));
    assert_eq!(sessions.setting(sid, "room"), None);
    assert_eq!(sessions.setting(sid, "team"), Some(json!("red")));
    // Removing a key that is not set is not an error.
    assert_eq!(service.remove_setting(sid, "room"), Ok(None));
    let snapshot = sessions.snapshot(sid).unwrap();
    assert_eq!(snapshot.settings.len(), 1);

    sessions.kick_by_session_id(sid, None);
    assert_eq!(
        service.remove_setting(sid, "team"),
        Err(UnknownSession(sid))
    );
}
