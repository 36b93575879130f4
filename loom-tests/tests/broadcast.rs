//! Model 6: `SessionService::broadcast` (pushes under the shard read lock, one wake-up per
//! shard) racing a close of one of the sessions it reaches.

use gatehouse::{Command, Frame, SessionService, Sid};
use gatehouse_loom_tests::{run_model, set_waker, small_config, NotifyWaker};
use loom::thread;
use std::sync::Arc;

/// **Property (broadcast racing close: woken, once per session, never after the close).**
/// Sessions `s1` and `s2` are bound; one thread broadcasts while another kicks `s1`, and the
/// consumer (main) sleeps until woken and drains. Whatever the interleaving: the consumer is
/// woken for the broadcast (it waits for `s2`'s frame; a broadcast that never wakes it is a
/// deadlock), `s2` gets exactly one frame, `s1` at most one and never after its `Close` (the
/// push happens under the shard lock that `close` needs), and `broadcast` reports exactly the
/// frames queued.
///
/// Threads: broadcaster + kicker + the consumer (main). Ops: broadcast | kick(sid), drains until
/// `s2`'s frame and `s1`'s close are in, then a final drain at quiescence.
/// Catches `gatehouse_loom_mutant="broadcast_skip_notify"` (no wake-up after the pushes: when
/// the kick's own wake-up came first, the consumer sleeps forever) and
/// `"broadcast_push_unlocked"` (the `for_each_bound_session` + `send_message` idiom: the sid is
/// copied under the lock, the push happens after it, and a close in between is overtaken).
#[test]
fn broadcast_racing_close() {
    run_model("broadcast_racing_close", || {
        let service = Arc::new(SessionService::new(small_config()).unwrap());
        let waker = Arc::new(NotifyWaker::default());
        set_waker(service.inbox(0).unwrap(), &waker);
        let s1 = service.create_in(0, None).unwrap();
        let s2 = service.create_in(0, None).unwrap();
        service.bind(s1, "a").unwrap();
        service.bind(s2, "b").unwrap();

        let broadcaster = {
            let service = service.clone();
            thread::spawn(move || service.broadcast(&Frame::from_static(b"news")))
        };
        let kicker = {
            let service = service.clone();
            thread::spawn(move || service.kick_by_session_id(s1, None))
        };

        let inbox = service.inbox(0).unwrap();
        let mut log: Vec<Command> = Vec::new();
        let has = |log: &[Command], f: &dyn Fn(&Command) -> bool| log.iter().any(f);
        let send_to =
            |sid: Sid| move |c: &Command| matches!(c, Command::Send { sid: s, .. } if *s == sid);
        let close_of =
            |sid: Sid| move |c: &Command| matches!(c, Command::Close { sid: s, .. } if *s == sid);
        while !(has(&log, &send_to(s2)) && has(&log, &close_of(s1))) {
            waker.wait();
            inbox.drain(|cmd| log.push(cmd));
        }
        let sent = broadcaster.join().unwrap();
        assert!(kicker.join().unwrap());
        inbox.drain(|cmd| log.push(cmd));

        let sends = |sid: Sid| log.iter().filter(|c| send_to(sid)(c)).count();
        assert_eq!(sends(s2), 1, "{s2:?} must get exactly one frame: {log:?}");
        assert!(sends(s1) <= 1, "{s1:?} got the frame twice: {log:?}");
        let close = log.iter().position(|c| close_of(s1)(c)).unwrap();
        if let Some(send) = log.iter().position(|c| send_to(s1)(c)) {
            assert!(
                send < close,
                "a frame for {s1:?} was queued after its Close: {log:?}"
            );
        }
        assert_eq!(sent, Ok(sends(s1) + sends(s2)), "{log:?}");
    });
}
