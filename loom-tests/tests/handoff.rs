//! Model 7: the connector's accept hand-off (`src/handoff.rs`): the accepting I/O thread pushes
//! sockets for another I/O thread and wakes it only when the queue was empty.

use gatehouse::__private::Handoff;
use gatehouse::Wake;
use gatehouse_loom_tests::{run_model_exhaustive, NotifyWaker};
use loom::thread;
use std::sync::Arc;

/// **Property (no lost hand-off, coalesced wake-ups).** The producer hands over two items,
/// waking the consumer only when `push` says the queue was empty; the consumer sleeps until
/// woken and takes the whole queue each time. Whatever the interleaving, the consumer gets both
/// items, in order (a hand-off left in the queue with no wake-up pending is a deadlock), and
/// there are at most as many wake-ups as items.
///
/// Threads: producer + the consumer (main). Exhaustive (no preemption bound).
/// Catches `gatehouse_loom_mutant="handoff_check_outside_lock"` (the emptiness check under a
/// lock of its own: the consumer takes the first item between the check and the second push,
/// which then wakes no one).
#[test]
fn handoff_never_strands_an_item() {
    run_model_exhaustive("handoff_never_strands_an_item", || {
        let handoff = Arc::new(Handoff::new());
        let waker = Arc::new(NotifyWaker::default());
        let producer = {
            let (handoff, waker) = (handoff.clone(), waker.clone());
            thread::spawn(move || {
                for item in 1..=2u32 {
                    if handoff.push(item) {
                        waker.wake();
                    }
                }
            })
        };
        let mut got = Vec::new();
        let mut batch = Vec::new();
        while got.len() < 2 {
            waker.wait();
            handoff.take_into(&mut batch);
            got.append(&mut batch);
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2], "hand-offs lost, duplicated or reordered");
        assert!(waker.wakes() <= 2, "{} wake-ups for 2 items", waker.wakes());
    });
}
