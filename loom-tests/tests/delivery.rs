//! Models 9 and 10: no frame and no kick ever reaches another user, when a session is unbound
//! from one user and rebound to another while a by-uid send or kick is in flight.

use gatehouse::{Command, Frame, Uid};
use gatehouse_loom_tests::{
    assert_consistent, run_model_exhaustive, small_config, Event, Recorder,
};
use loom::thread;

/// **Property (a by-uid send never reaches the next user of a session).** Session `s` is bound
/// to `a`. One thread sends a private frame to uid `a`; another unbinds `s` from `a`, binds it
/// to `b` and sends `b` a frame by sid. In the inbox (the order the connection writes), `a`'s
/// frame, if queued at all, comes before `b`'s: it was queued while `s` still belonged to `a`,
/// and never after the session changed hands.
///
/// Threads: sender + rebinder + main (drains, checks). Ops: send_by_uid | unbind, bind, send.
/// Catches `gatehouse_loom_mutant="send_by_uid_push_unlocked"` (the old hot path: copy the
/// sids under the index lock, push after it, so the unbind + rebind + send slip in between).
#[test]
fn send_by_uid_racing_rebind() {
    run_model_exhaustive("send_by_uid_racing_rebind", || {
        let (service, _recorder) = Recorder::service(small_config(), true);
        let s = service.create_in(0, None).unwrap();
        service.bind(s, "a").unwrap();

        let sender = {
            let service = service.clone();
            thread::spawn(move || service.send_message_by_uid("a", &Frame::from_static(b"to-a")))
        };
        let rebinder = {
            let service = service.clone();
            thread::spawn(move || {
                service.unbind(s, "a").unwrap();
                service.bind(s, "b").unwrap();
                service
                    .send_message(s, Frame::from_static(b"to-b"))
                    .unwrap();
            })
        };
        let sent = sender.join().unwrap();
        rebinder.join().unwrap();

        let mut order = Vec::new();
        service.inbox(0).unwrap().drain(|cmd| {
            if let Command::Send { sid, frame } = cmd {
                assert_eq!(sid, s);
                order.push(frame.as_bytes().to_vec());
            }
        });
        let a_at = order.iter().position(|f| f == b"to-a");
        let b_at = order
            .iter()
            .position(|f| f == b"to-b")
            .expect("b's frame queued");
        match (sent, a_at) {
            (Ok(1), Some(a_at)) => assert!(
                a_at < b_at,
                "a frame for uid a reached {s:?} after it was rebound to b: {order:?}"
            ),
            (Ok(n), at) => panic!("send_message_by_uid(a) said Ok({n}), queued at {at:?}"),
            (Err(_), at) => assert_eq!(at, None, "an unknown-uid send queued a frame"),
        }
        assert_consistent(&service);
    });
}

/// **Property (kick by uid never kicks the session's next user).** Session `s` is bound to
/// `a`. One thread kicks `a`; another unbinds `s` from `a` and binds it to `b`. If the kick
/// closed `s`, `s` was still `a`'s at that moment: the `closed` snapshot carries `a` (and then
/// the rebind failed), never `b`.
///
/// Threads: kicker + rebinder + main (checks). Ops: kick(a) | unbind, bind(b).
/// Catches `gatehouse_loom_mutant="kick_ignores_rebind"` (closing every sid of the lookup's
/// snapshot, whoever it belongs to by then).
#[test]
fn kick_racing_rebind() {
    run_model_exhaustive("kick_racing_rebind", || {
        let (service, recorder) = Recorder::service(small_config(), true);
        let s = service.create_in(0, None).unwrap();
        service.bind(s, "a").unwrap();

        let kicker = {
            let service = service.clone();
            thread::spawn(move || service.kick("a", Some("relogin")))
        };
        let rebinder = {
            let service = service.clone();
            thread::spawn(move || {
                let unbound = service.unbind(s, "a");
                let bound = service.bind(s, "b");
                (unbound, bound)
            })
        };
        let kicked = kicker.join().unwrap();
        let (unbound, bound) = rebinder.join().unwrap();

        for event in recorder.events() {
            if let Event::Closed(sid, uid, _) = event {
                assert_eq!(sid, s);
                assert_eq!(
                    uid,
                    Some(Uid::new("a")),
                    "the kick of uid a closed {s:?} while it was bound to {uid:?}"
                );
            }
        }
        if kicked == 1 {
            assert!(service.get(s).is_none());
            assert!(unbound.is_err() || bound.is_err(), "{unbound:?} {bound:?}");
        } else {
            assert_eq!(kicked, 0);
            assert_eq!(unbound, Ok(()));
            assert_eq!(bound, Ok(()));
            assert_eq!(service.get(s).and_then(|i| i.uid), Some(Uid::new("b")));
        }
        let mut closes = 0;
        service.inbox(0).unwrap().drain(|cmd| {
            closes += usize::from(matches!(cmd, Command::Close { .. }));
        });
        assert_eq!(closes, kicked);
        assert_consistent(&service);
    });
}
