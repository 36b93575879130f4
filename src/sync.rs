//! The one place gatehouse takes its concurrency primitives from.
//!
//! Every atomic, lock and bounded queue in the crate is imported from here, never from `std`,
//! `parking_lot` or `crossbeam` directly (`.clippy.toml` enforces it for the lock types). A
//! normal build re-exports the fast production types. A build with
//! `RUSTFLAGS="--cfg gatehouse_loom"` (only `loom-tests/` does that, see `bin/loom.sh`) swaps in
//! [loom]'s instrumented types so the model checker sees every synchronisation point:
//!
//! * `parking_lot`'s locks are invisible to loom, so under loom `Mutex`/`RwLock` wrap loom's and
//!   keep the parking_lot signatures (`lock()` returns the guard; no poisoning).
//! * `crossbeam_queue::ArrayQueue` is not loom-instrumented (its atomics are plain `core` ones
//!   and its backoff spins), so under loom [`ArrayQueue`] is a bounded `Mutex<VecDeque>` with the
//!   same contract: `push` hands the value back when full. Loom then checks the protocol *around*
//!   the queue (the wake flag, ordering, generation checks), not crossbeam's internals.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(gatehouse_loom))]
#[allow(clippy::disallowed_types)] // the one place that may name parking_lot's locks
mod imp {
    pub(crate) use crossbeam_queue::ArrayQueue;
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::Arc;

    /// parking_lot's mutex (a newtype, so `.clippy.toml` can ban the type everywhere else).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        #[inline]
        pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// parking_lot's reader-writer lock (newtype, as [`Mutex`]).
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T>(parking_lot::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(parking_lot::RwLock::new(value))
        }

        #[inline]
        pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, T> {
            self.0.read()
        }

        #[inline]
        pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, T> {
            self.0.write()
        }

        /// Whether any thread holds the lock, shared or exclusive (for test probes).
        #[cfg(feature = "internals")]
        pub(crate) fn is_locked(&self) -> bool {
            self.0.is_locked()
        }
    }
}

#[cfg(gatehouse_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::Arc;
    use std::collections::VecDeque;

    /// loom's mutex with parking_lot's signature.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        #[track_caller]
        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .expect("a loom model panicked while holding a lock")
        }
    }

    /// loom's reader-writer lock with parking_lot's signature.
    #[derive(Debug)]
    pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) fn new(value: T) -> Self {
            RwLock(loom::sync::RwLock::new(value))
        }

        #[track_caller]
        pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
            self.0
                .read()
                .expect("a loom model panicked while holding a lock")
        }

        #[track_caller]
        pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
            self.0
                .write()
                .expect("a loom model panicked while holding a lock")
        }
    }

    /// A loom-visible stand-in for `crossbeam_queue::ArrayQueue`: bounded, FIFO, and `push`
    /// returns `Err(value)` when full.
    #[derive(Debug)]
    pub(crate) struct ArrayQueue<T> {
        cap: usize,
        items: loom::sync::Mutex<VecDeque<T>>,
    }

    impl<T> ArrayQueue<T> {
        pub(crate) fn new(cap: usize) -> Self {
            assert!(cap > 0, "capacity must be non-zero");
            ArrayQueue {
                cap,
                items: loom::sync::Mutex::new(VecDeque::with_capacity(cap)),
            }
        }

        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            let mut items = self.items.lock().unwrap();
            if items.len() == self.cap {
                return Err(value);
            }
            items.push_back(value);
            Ok(())
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.items.lock().unwrap().pop_front()
        }

        pub(crate) fn len(&self) -> usize {
            self.items.lock().unwrap().len()
        }

        pub(crate) fn capacity(&self) -> usize {
            self.cap
        }
    }
}

pub(crate) use imp::*;

/// A write-once cell (the inbox's waker). std's in both builds: loom has no `OnceLock`. It is
/// set once, before the consumer relies on wake-ups (see `Inbox::set_waker`), and the loom
/// models set it before they spawn threads, so its internals need no modelling.
pub(crate) use std::sync::OnceLock;

/// Pads and aligns a value to the cache line size, so shards written by different threads do
/// not share a line. Not a synchronisation primitive, so it is the same type under loom.
pub(crate) use crossbeam_utils::CachePadded;
