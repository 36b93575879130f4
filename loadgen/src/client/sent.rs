//! When each outstanding echo request of one connection actually left: its pomelo request id
//! and the send instant, so a response (which carries the id) can be timed from the actual
//! send as well as from the time its body carries.
//!
//! The server only echoes the body's `t` (the intended send time in the open loop), so the
//! actual send time stays on the client side. A connection has few requests outstanding; the
//! record holds at most [`SendTimes::CAP`] of them, the oldest dropped first when a server
//! leaves requests unanswered, so memory stays bounded whatever the server does. A response
//! whose id is not held (never sent, already answered, or dropped) finds nothing and is
//! counted by the caller, not timed.

use std::collections::VecDeque;

/// The send times of one connection's outstanding requests, oldest first.
#[derive(Debug, Default)]
pub(super) struct SendTimes {
    entries: VecDeque<(u32, u64)>,
}

impl SendTimes {
    /// Requests held at most per connection.
    pub(super) const CAP: usize = 256;

    /// Notes that request `id` left at `sent_ns`; drops the oldest entry when full.
    pub(super) fn insert(&mut self, id: u32, sent_ns: u64) {
        if self.entries.len() >= Self::CAP {
            self.entries.pop_front();
        }
        self.entries.push_back((id, sent_ns));
    }

    /// The send time of request `id`, forgotten once taken; `None` when it is not held.
    ///
    /// Answers mostly come in order, so the search usually stops at the first entry.
    pub(super) fn take(&mut self, id: u32) -> Option<u64> {
        let i = self.entries.iter().position(|&(e, _)| e == id)?;
        self.entries.remove(i).map(|(_, ns)| ns)
    }

    /// Requests held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::SendTimes;

    #[test]
    fn a_response_finds_its_send_time_once() {
        let mut s = SendTimes::default();
        s.insert(7, 1_000);
        s.insert(8, 2_000);
        assert_eq!(s.take(8), Some(2_000), "out of order");
        assert_eq!(s.take(7), Some(1_000));
        assert_eq!(s.take(7), None, "an answered id is forgotten");
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn an_unknown_id_finds_nothing_and_changes_nothing() {
        let mut s = SendTimes::default();
        s.insert(1, 10);
        assert_eq!(s.take(2), None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.take(1), Some(10));
    }

    #[test]
    fn unanswered_requests_never_hold_more_than_the_cap() {
        let mut s = SendTimes::default();
        let n = SendTimes::CAP as u32 * 10;
        for id in 1..=n {
            s.insert(id, u64::from(id) * 100);
        }
        assert_eq!(s.len(), SendTimes::CAP);
        // The oldest were dropped; the newest CAP are still there.
        assert_eq!(s.take(1), None);
        assert_eq!(s.take(n - SendTimes::CAP as u32), None);
        let oldest_kept = n - SendTimes::CAP as u32 + 1;
        assert_eq!(s.take(oldest_kept), Some(u64::from(oldest_kept) * 100));
        assert_eq!(s.take(n), Some(u64::from(n) * 100));
        assert_eq!(s.len(), SendTimes::CAP - 2);
    }
}
