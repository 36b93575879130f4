//! [`EventQueue`]: one shard's session events, fired in the order their changes committed.
//!
//! # Why a queue
//!
//! `bind`, `unbind` and `close` change a session under its shard's write lock, but listeners
//! must run with **no lock held** (they may call back into the service). Firing each event
//! straight after its own unlock lets two threads' events cross: a `bind` commits, a racing
//! `close` commits and fires `closed(s, u)`, and only then does the binder fire `bound(s, u)` —
//! a presence map (or a cluster directory) built from the events then keeps a dead entry for
//! ever. So every change appends its event to the shard's queue **inside the same critical
//! section** (the queue lives in the [`Registry`](crate::registry::Registry), guarded by the
//! shard lock), and events leave the queue in that order.
//!
//! # Who fires them
//!
//! After unlocking, the thread that made a change calls [`SessionService`]'s dispatch: under the
//! shard lock it takes the whole queue if no other thread is dispatching this shard (a flag in
//! the same lock), then fires the batch with no lock held, and repeats until the queue is
//! empty. A thread that finds another dispatching leaves its event to that thread, which picks
//! it up before it stops (it re-checks the queue under the lock when it clears the flag, so no
//! event is stranded). Consequences, documented on [`SessionListener`]:
//!
//! * per shard — so per session — events fire one at a time, in commit order:
//!   `bound` → `unbound` → `closed`, never `closed` before the `bound` it follows;
//! * usually on the calling thread before the call returns; when another thread is already
//!   dispatching that shard (or a listener changes a session of its own shard), the event is
//!   fired by that dispatcher, just after, and the call may return first;
//! * a listener never runs re-entrantly for one shard, so it cannot deadlock by calling the
//!   service, but it must not block waiting for another event of its own shard.
//!
//! A panicking listener is caught per event (see [`SessionService`]): the dispatcher goes on.
//!
//! [`SessionService`]: crate::SessionService
//! [`SessionListener`]: crate::SessionListener

use crate::events::CloseReason;
use crate::id::Sid;
use crate::session::SessionSnapshot;
use crate::uid::Uid;

/// One session event, recorded under the shard lock and fired after it.
pub(crate) enum Event {
    Bound(Sid, Uid),
    Unbound(Sid, Uid),
    Closed(Box<SessionSnapshot>, CloseReason),
}

/// A shard's pending events and whether a thread is firing them. Lives inside the shard's
/// registry, so it is only touched under the shard's write lock.
#[derive(Default)]
pub(crate) struct EventQueue {
    pending: Vec<Event>,
    /// The empty buffer a dispatcher swaps in, so a steady stream of events reuses two vectors.
    spare: Vec<Event>,
    dispatching: bool,
}

impl EventQueue {
    /// Records an event (call under the shard write lock, in the critical section that made
    /// the change).
    pub(crate) fn push(&mut self, event: Event) {
        self.pending.push(event);
    }

    /// Starts or continues a dispatch: if events are pending and nobody else is firing them
    /// (`resuming` says the caller is the current dispatcher coming back for more), marks the
    /// caller as the dispatcher and hands it the batch. Otherwise clears the flag if the caller
    /// was the dispatcher and returns `None`: the caller stops.
    pub(crate) fn take_batch(&mut self, resuming: bool, done: Vec<Event>) -> Option<Vec<Event>> {
        if resuming {
            // The batch just fired comes back empty: keep its capacity for the next swap.
            debug_assert!(done.is_empty());
            if self.spare.capacity() < done.capacity() {
                self.spare = done;
            }
        }
        if self.dispatching && !resuming {
            return None; // the current dispatcher will fire ours
        }
        if self.pending.is_empty() {
            self.dispatching = false;
            return None;
        }
        self.dispatching = true;
        let spare = std::mem::take(&mut self.spare);
        Some(std::mem::replace(&mut self.pending, spare))
    }

    /// Whether any event waits (for tests).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(n: u64) -> Event {
        Event::Bound(Sid::from_raw(n), Uid::new("u"))
    }

    #[test]
    fn second_caller_leaves_its_event_to_the_dispatcher() {
        let mut q = EventQueue::default();
        q.push(bound(1));
        let batch = q
            .take_batch(false, Vec::new())
            .expect("first caller dispatches");
        assert_eq!(batch.len(), 1);
        q.push(bound(2));
        // Another thread: someone is dispatching, so it leaves its event.
        assert!(q.take_batch(false, Vec::new()).is_none());
        // The dispatcher comes back and finds it.
        let mut done = batch;
        done.clear();
        let batch = q
            .take_batch(true, done)
            .expect("dispatcher picks up the late event");
        assert!(matches!(batch[0], Event::Bound(sid, _) if sid.into_raw() == 2));
        let mut done = batch;
        done.clear();
        assert!(q.take_batch(true, done).is_none());
        assert!(q.is_empty());
        // The flag is clear again: the next caller dispatches.
        q.push(bound(3));
        assert!(q.take_batch(false, Vec::new()).is_some());
    }
}
