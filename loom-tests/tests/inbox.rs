//! Model 1: the shard inbox's coalesced wake-up, and its overflow path for closes.

use gatehouse::__private::loom::{inbox, push_close, push_send, sid};
use gatehouse::{CloseReason, Command, Frame, Sid};
use gatehouse_loom_tests::{run_model, set_waker, NotifyWaker};
use loom::thread;
use std::sync::Arc;

fn frame(tag: &'static str) -> Frame {
    Frame::from_static(tag.as_bytes())
}

fn tag(cmd: &Command) -> String {
    match cmd {
        Command::Send { frame, .. } => String::from_utf8(frame.as_bytes().to_vec()).unwrap(),
        Command::Close { sid, .. } => format!("close {sid:?}"),
        _ => unreachable!(),
    }
}

/// **Property (no lost wake-up, no double delivery).** Two producers push three sends (two by
/// the first, in order) while a consumer that *sleeps until woken* drains and re-arms. The
/// consumer always gets every command: a wake-up lost in the re-arm window leaves it asleep
/// forever, which loom reports as a deadlock. Each command arrives exactly once, each
/// producer's commands in push order, and the wake-ups stay coalesced (at most one per drain,
/// plus the one that started the first drain).
///
/// Threads: 2 producers + the consumer (main). Ops: 3 pushes, up to 3 drains.
/// Catches `gatehouse_loom_mutant="rearm_after_drain"` (the flag re-armed after the pops: a
/// push landing between the last pop and the re-arm sees the flag still set and skips its wake).
#[test]
fn inbox_coalesced_wake() {
    run_model("inbox_coalesced_wake", || {
        let inbox = Arc::new(inbox(4));
        let waker = Arc::new(NotifyWaker::default());
        set_waker(&inbox, &waker);
        let s1 = sid(1, 0, 0);
        let s2 = sid(2, 0, 1);

        let p1 = {
            let inbox = inbox.clone();
            thread::spawn(move || {
                push_send(&inbox, s1, frame("a1")).unwrap();
                push_send(&inbox, s1, frame("a2")).unwrap();
            })
        };
        let p2 = {
            let inbox = inbox.clone();
            thread::spawn(move || push_send(&inbox, s2, frame("b1")).unwrap())
        };

        let mut got = Vec::new();
        let mut drains = 0;
        while got.len() < 3 {
            waker.wait();
            drains += 1;
            inbox.drain(|cmd| got.push(tag(&cmd)));
        }
        p1.join().unwrap();
        p2.join().unwrap();

        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, ["a1", "a2", "b1"], "lost or duplicated: {got:?}");
        let a1 = got.iter().position(|t| t == "a1");
        let a2 = got.iter().position(|t| t == "a2");
        assert!(a1 < a2, "one producer's sends reordered: {got:?}");
        assert!(inbox.is_empty());
        assert!(
            waker.wakes() <= drains + 1,
            "{} wakes for {drains} drains: not coalesced",
            waker.wakes()
        );
    });
}

/// **Property (closes survive a full queue, in order).** With a one-slot queue, a producer
/// queues a send then closes the same session, while another producer's send competes for the
/// slot and a woken consumer drains. Whatever the interleaving: the close is delivered exactly
/// once (via the queue or the overflow list); every send of the closing session that was
/// accepted is delivered *before* its close (the transport drops sends that arrive after a
/// close as stale, so an accepted send overtaken by its close would be lost); refused sends
/// are never delivered; and when the consumer stops, anything still queued has a wake-up
/// pending (nothing stranded).
///
/// Threads: 2 producers + the consumer (main). Ops: 2 sends, 1 close, 1–3 drains, then a final
/// drain at quiescence.
/// Catches `gatehouse_loom_mutant="drain_overflow_last"` (the overflow list taken after the
/// queue pops: the close overtakes a send pushed in between) and `"rearm_after_drain"`.
#[test]
fn inbox_close_overflow() {
    run_model("inbox_close_overflow", || {
        let inbox = Arc::new(inbox(1));
        let waker = Arc::new(NotifyWaker::default());
        set_waker(&inbox, &waker);
        let s1 = sid(1, 0, 0);
        let s2: Sid = sid(2, 0, 1);

        let p1 = {
            let inbox = inbox.clone();
            thread::spawn(move || {
                let sent = push_send(&inbox, s1, frame("f1")).is_ok();
                push_close(&inbox, s1, CloseReason::kick(Some("bye")));
                sent
            })
        };
        let p2 = {
            let inbox = inbox.clone();
            thread::spawn(move || push_send(&inbox, s2, frame("f2")).is_ok())
        };

        // The consumer: sleep until woken, drain, until the close has arrived.
        let close = format!("close {s1:?}");
        let mut got = Vec::new();
        while !got.contains(&close) {
            waker.wait();
            inbox.drain(|cmd| got.push(tag(&cmd)));
        }
        let f1_sent = p1.join().unwrap();
        let f2_sent = p2.join().unwrap();

        // Quiescent: whatever is left must have a wake-up pending, so a real consumer would
        // come back for it.
        let left = inbox.len();
        if left > 0 {
            assert!(
                inbox.wake_pending(),
                "{left} command(s) stranded without a pending wake"
            );
            inbox.drain(|cmd| got.push(tag(&cmd)));
        }

        let count = |t: &str| got.iter().filter(|g| *g == t).count();
        assert_eq!(
            count(&close),
            1,
            "close not delivered exactly once: {got:?}"
        );
        assert_eq!(
            count("f1"),
            usize::from(f1_sent),
            "f1 (accepted: {f1_sent}): {got:?}"
        );
        assert_eq!(
            count("f2"),
            usize::from(f2_sent),
            "f2 (accepted: {f2_sent}): {got:?}"
        );
        if f1_sent {
            let f1 = got.iter().position(|g| g == "f1").unwrap();
            let c = got.iter().position(|g| *g == close).unwrap();
            assert!(
                f1 < c,
                "the close overtook a send accepted before it: {got:?}"
            );
        }
        assert_eq!(inbox.refused(), u64::from(!f1_sent) + u64::from(!f2_sent));
    });
}

/// **Property (an I/O thread holding its own wake-up strands nothing).** The consumer is an
/// I/O thread: it starts a loop turn with `hold_wake`, queues a response of its own (as a
/// request handler would), and ends the turn with a drain; meanwhile another thread pushes two
/// commands. Then the consumer sleeps until woken and drains until it has all three. Whatever
/// the interleaving: the consumer never wakes itself (its own push finds the wake held),
/// nothing is stranded (a push skips its wake only while a drain is still to come; a lost
/// wake-up would leave the consumer asleep, which loom reports as a deadlock), and each command
/// arrives exactly once, each thread's in push order.
///
/// Threads: 1 producer + the consumer (main). Ops: 2 pushes | hold, 1 push, up to 3 drains.
/// Catches `gatehouse_loom_mutant="rearm_after_drain"`.
#[test]
fn inbox_hold_wake() {
    run_model("inbox_hold_wake", || {
        let inbox = Arc::new(inbox(4));
        let waker = Arc::new(NotifyWaker::default());
        set_waker(&inbox, &waker);
        let s1 = sid(1, 0, 0);
        let s2 = sid(2, 0, 1);

        let producer = {
            let inbox = inbox.clone();
            thread::spawn(move || {
                push_send(&inbox, s2, frame("p1")).unwrap();
                push_send(&inbox, s2, frame("p2")).unwrap();
            })
        };

        // One loop turn of the I/O thread: hold, handle a request (queue its response), drain.
        let mut got = Vec::new();
        inbox.hold_wake();
        push_send(&inbox, s1, frame("r1")).unwrap();
        inbox.drain(|cmd| got.push(tag(&cmd)));
        assert_eq!(
            waker.wakes_by_current_thread(),
            0,
            "the I/O thread woke itself"
        );
        // Then it sleeps in `poll` until woken.
        while got.len() < 3 {
            waker.wait();
            inbox.drain(|cmd| got.push(tag(&cmd)));
        }
        producer.join().unwrap();

        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, ["p1", "p2", "r1"], "lost or duplicated: {got:?}");
        let p1 = got.iter().position(|t| t == "p1");
        let p2 = got.iter().position(|t| t == "p2");
        assert!(p1 < p2, "one producer's sends reordered: {got:?}");
        assert!(inbox.is_empty());
    });
}
