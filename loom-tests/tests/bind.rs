//! Models 3 and 6: racing binds (one uid to two sessions; one session to two uids, racing its
//! close).

use gatehouse::{BindError, CloseReason, Frame, SessionService};
use gatehouse_loom_tests::{
    assert_consistent, run_model, run_model_exhaustive, small_config, Event, Recorder,
};
use loom::thread;
use std::sync::Arc;

fn spawn_bind(
    service: &Arc<SessionService>,
    sid: gatehouse::Sid,
    uid: &'static str,
) -> loom::thread::JoinHandle<Result<(), BindError>> {
    let service = service.clone();
    thread::spawn(move || service.bind(sid, uid))
}

/// **Property (single-session: exactly one bind wins).** With `single_session` on, two threads
/// bind the same uid to two different sessions, which live on different shards (so no shard
/// lock serialises the binds; only the index can arbitrate). Exactly one bind succeeds, the
/// other fails with `SingleSession`; the index lists exactly the winner under the uid, the
/// sessions agree with the index, and exactly one `bound` event fired, for the winner.
///
/// Threads: 2 binders + main (checks). Ops: 1 bind each.
/// Catches `gatehouse_loom_mutant="split_single_session_check"` (the "is the uid held?" check
/// in one index critical section, the insert in another: both binds pass the check).
#[test]
fn single_session_bind_race() {
    run_model_exhaustive("single_session_bind_race", || {
        let config = small_config().shards(2).single_session(true);
        let (service, recorder) = Recorder::service(config, true);
        let s1 = service.create_in(0, None).unwrap();
        let s2 = service.create_in(1, None).unwrap();

        let t1 = spawn_bind(&service, s1, "u");
        let t2 = spawn_bind(&service, s2, "u");
        let r1 = t1.join().unwrap();
        let r2 = t2.join().unwrap();

        let (winner, loser_result) = match (&r1, &r2) {
            (Ok(()), Err(e)) => (s1, e),
            (Err(e), Ok(())) => (s2, e),
            _ => panic!("exactly one bind must win: {r1:?}, {r2:?}"),
        };
        assert!(matches!(loser_result, BindError::SingleSession(u) if u.as_str() == "u"));
        assert_eq!(service.get_by_uid("u").as_deref(), Some(&[winner][..]));
        assert_eq!(recorder.events(), [Event::Bound(winner, "u".into())]);
        assert_consistent(&service);
    });
}

/// **Property (one session, two uids, racing its close: never half-registered, never
/// misrouted).** One thread binds session `s` to `a`, another binds it to `b`, a third closes
/// it, and meanwhile main sends by uid to `a` and to `b`. At most one bind succeeds (a session
/// has one uid; the loser gets `AlreadyBound` or, once closed, `UnknownSession`); a by-uid
/// send reaches `s` only under the uid whose bind succeeded (a failed bind is never visible);
/// the `closed` event fires exactly once, after the index dropped `s`, and its snapshot
/// carries the uid of the bind that succeeded (or none); and afterwards the index lists
/// nothing: no bind's index entry outlives the session.
///
/// Threads: 3 (2 binders, 1 closer) + main (2 by-uid sends, then checks). Ops: 1 each.
/// Catches `gatehouse_loom_mutant="unindex_before_detach"` (the close reads the uid to unindex
/// in an earlier critical section than the one removing the session: a bind landing in
/// between stays indexed for a dead session).
#[test]
fn bind_two_uids_racing_close() {
    run_model("bind_two_uids_racing_close", || {
        let (service, recorder) = Recorder::service(small_config(), true);
        let s = service.create_in(0, None).unwrap();

        let ta = spawn_bind(&service, s, "a");
        let tb = spawn_bind(&service, s, "b");
        let closer = {
            let service = service.clone();
            thread::spawn(move || service.close(s, CloseReason::Shutdown))
        };
        let frame = Frame::from_static(b"push");
        let reached_a = service.send_message_by_uid("a", &frame) == Ok(1);
        let reached_b = service.send_message_by_uid("b", &frame) == Ok(1);
        let ra = ta.join().unwrap();
        let rb = tb.join().unwrap();
        assert!(
            closer.join().unwrap(),
            "the only close must find the session"
        );

        let bound = match (&ra, &rb) {
            (Ok(()), Ok(())) => panic!("one session bound to two uids"),
            (Ok(()), _) => Some("a".into()),
            (_, Ok(())) => Some("b".into()),
            _ => None,
        };
        assert!(
            !reached_a || ra.is_ok(),
            "a send to `a` reached {s:?}, bound to b: {rb:?}"
        );
        assert!(
            !reached_b || rb.is_ok(),
            "a send to `b` reached {s:?}, bound to a: {ra:?}"
        );
        for r in [&ra, &rb] {
            assert!(
                matches!(
                    r,
                    Ok(()) | Err(BindError::AlreadyBound(_) | BindError::UnknownSession(_))
                ),
                "{r:?}"
            );
        }
        assert!(service.get(s).is_none());
        let closed: Vec<_> = recorder
            .events()
            .into_iter()
            .filter(|e| matches!(e, Event::Closed(..)))
            .collect();
        assert_eq!(closed, [Event::Closed(s, bound, CloseReason::Shutdown)]);
        assert_eq!(
            service.uid_index_entries(),
            [],
            "index outlived the session"
        );
        assert_consistent(&service);
    });
}
