//! Shared helpers for the cluster integration tests.

pub mod redis_server;

use std::time::{Duration, Instant};

/// Polls `cond` (every 5 ms) until it holds; panics naming `what` after 10 s. Returns how long
/// it took.
#[allow(dead_code)] // not every test binary waits
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}
