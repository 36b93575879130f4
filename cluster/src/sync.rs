//! The synchronisation types of the structures shared between threads. Under
//! `--cfg gatehouse_loom` (loom-tests/ only) they are loom's, so the models explore every
//! interleaving of the real code.

#[cfg(gatehouse_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(gatehouse_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks, ignoring poisoning: nothing panics while holding these locks (no user code runs under
/// them), and a report must still be readable if a thread died elsewhere.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
