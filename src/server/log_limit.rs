//! [`LogLimit`]: at most one log line per interval for a condition that can repeat thousands
//! of times a second (a connect flood past `max_connections`, `accept` failing with EMFILE),
//! with the count of the occurrences it did not log.

use std::time::{Duration, Instant};

/// How often a repeating condition is logged at most.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Remembers when a condition was last logged and how often it happened since.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LogLimit {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogLimit {
    /// Records one occurrence at `now`. Returns `Some(n)` when this one should be logged, `n`
    /// being the occurrences since the last logged one that were not; `None` to stay quiet.
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < LOG_INTERVAL => {
                self.unlogged += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.unlogged))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_once_per_interval_with_the_count_in_between() {
        let t0 = Instant::now();
        let mut l = LogLimit::default();
        assert_eq!(l.hit(t0), Some(0));
        for i in 1..=99 {
            assert_eq!(l.hit(t0 + Duration::from_millis(i * 10)), None);
        }
        assert_eq!(l.hit(t0 + LOG_INTERVAL), Some(99));
        assert_eq!(l.hit(t0 + LOG_INTERVAL + Duration::from_secs(1)), None);
        assert_eq!(l.hit(t0 + LOG_INTERVAL * 3), Some(1));
    }
}
