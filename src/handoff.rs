//! [`Handoff`]: items one thread hands to another that sleeps until woken — the connector's
//! accepting I/O thread giving accepted sockets to the other I/O threads.
//!
//! The protocol: the producer pushes under the lock and learns whether the queue was empty;
//! only then does it wake the consumer. The consumer takes the whole queue on every turn of its
//! loop, after any wake-up. So a non-empty queue always has a wake-up pending for it — the one
//! issued by whoever pushed onto it when it was empty — and a burst of hand-offs costs one
//! wake-up (an `eventfd` write and an `epoll_wait` return), not one per item. Both the
//! emptiness check and the take happen under the one lock, which is what makes that argument
//! hold; the loom model `loom-tests/tests/handoff.rs` checks it, and its mutant (the check
//! outside the lock) loses a wake-up.

use crate::sync::Mutex;
use std::fmt;

/// A queue handed from producer threads to one consumer thread, with coalesced wake-ups (see
/// the module docs).
pub struct Handoff<T> {
    queue: Mutex<Vec<T>>,
}

impl<T> Handoff<T> {
    /// An empty hand-off queue.
    pub fn new() -> Self {
        Handoff {
            queue: Mutex::new(Vec::new()),
        }
    }

    /// Queues `item`. Returns `true` when the caller must wake the consumer: the queue was
    /// empty, so no wake-up is pending for it.
    pub fn push(&self, item: T) -> bool {
        // Seeded bug for the loom model: the emptiness check under a lock of its own, so the
        // consumer may take the queue between the check and the push.
        #[cfg(gatehouse_loom_mutant = "handoff_check_outside_lock")]
        let was_empty = {
            let was_empty = self.queue.lock().is_empty();
            self.queue.lock().push(item);
            was_empty
        };
        #[cfg(not(gatehouse_loom_mutant = "handoff_check_outside_lock"))]
        let was_empty = {
            let mut queue = self.queue.lock();
            let was_empty = queue.is_empty();
            queue.push(item);
            was_empty
        };
        was_empty
    }

    /// Moves everything queued into `out`, which must be empty; the two buffers are swapped, so
    /// a consumer that keeps `out` (drained) allocates nothing once warm.
    pub fn take_into(&self, out: &mut Vec<T>) {
        debug_assert!(out.is_empty(), "take_into: drain the previous batch first");
        std::mem::swap(&mut *self.queue.lock(), out);
    }
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff::new()
    }
}

impl<T> fmt::Debug for Handoff<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("queued", &self.queue.lock().len())
            .finish()
    }
}

#[cfg(all(test, not(gatehouse_loom)))]
mod tests {
    use super::*;

    #[test]
    fn only_the_push_onto_an_empty_queue_asks_for_a_wake_up() {
        let h = Handoff::new();
        assert!(h.push(1));
        assert!(!h.push(2));
        let mut batch = Vec::new();
        h.take_into(&mut batch);
        assert_eq!(batch, [1, 2]);
        batch.clear();
        assert!(h.push(3), "taken: the next push must wake again");
        h.take_into(&mut batch);
        assert_eq!(batch, [3]);
    }
}
