//! The locks of the structures shared between threads. Under `--cfg gatehouse_loom`
//! (loom-tests/ only) they are loom's, so the models explore every interleaving of the real
//! code. This is the one module of the crate that may name std's (or loom's) lock types
//! (`.clippy.toml` forbids them elsewhere).

#[allow(clippy::disallowed_types)]
mod imp {
    #[cfg(gatehouse_loom)]
    pub(crate) use loom::sync::{
        Condvar as RawCondvar, Mutex as RawMutex, MutexGuard, WaitTimeoutResult,
    };
    #[cfg(not(gatehouse_loom))]
    pub(crate) use std::sync::{
        Condvar as RawCondvar, Mutex as RawMutex, MutexGuard, WaitTimeoutResult,
    };
}

#[cfg(gatehouse_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(gatehouse_loom))]
pub(crate) use std::sync::Arc;

pub(crate) use imp::MutexGuard;
use std::time::Duration;

/// A mutex that ignores poisoning: nothing panics while holding these locks (no user code runs
/// under them), and a report must stay readable if a thread died elsewhere.
#[derive(Default)]
#[allow(clippy::disallowed_types)]
pub(crate) struct Mutex<T>(imp::RawMutex<T>);

#[allow(clippy::disallowed_types)]
impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Mutex<T> {
        Mutex(imp::RawMutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Locks `m` (kept as a free function: the call sites read `lock(&state)`).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

/// A condition variable for [`Mutex`].
#[derive(Default)]
pub(crate) struct Condvar(imp::RawCondvar);

impl Condvar {
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// Waits at most `timeout`; true if it timed out.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        let (guard, result): (_, imp::WaitTimeoutResult) = self
            .0
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner());
        (guard, result.timed_out())
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
