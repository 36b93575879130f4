//! [`Metrics`]: counters kept by the I/O threads, summed into a snapshot on demand.

use crate::events::CloseReason;
use crate::sync::{AtomicU64, CachePadded, Ordering};
use std::time::Duration;

/// Why connections closed, as counted in [`Metrics::closes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CloseCounts {
    /// Kicked (with or without a reason) or removed by the application.
    pub kicked: u64,
    /// The peer closed the connection.
    pub peer_closed: u64,
    /// No client HEARTBEAT within the timeout.
    pub heartbeat_timeout: u64,
    /// Handshake not completed in time.
    pub handshake_timeout: u64,
    /// Malformed input, oversized packages, rejected handshakes, bad WebSocket frames.
    pub protocol_violation: u64,
    /// Outbound limit exceeded.
    pub slow_consumer: u64,
    /// Socket errors.
    pub io_error: u64,
    /// Closed by server shutdown.
    pub shutdown: u64,
    /// A handler or session listener panicked while serving the connection.
    pub handler_panic: u64,
    /// The TLS layer closed it (feature `tls`): plain client on a TLS-only port, TLS
    /// handshake timeout, TLS error.
    pub tls: u64,
}

/// A snapshot of the connector's counters (sums over all I/O threads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Live sessions (connected clients, handshaken or not).
    pub sessions: usize,
    /// Uids with at least one bound session.
    pub bound_uids: usize,
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at accept: `max_connections` reached, or the process out of file
    /// descriptors (the backlog is accepted and closed with a reserve descriptor).
    pub refused: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Packages received from clients.
    pub packages_in: u64,
    /// Frames (packages) queued to clients.
    pub frames_out: u64,
    /// Frames dropped: the session had closed (stale sid) or had not finished the handshake.
    pub frames_dropped: u64,
    /// `write` system calls made.
    pub write_calls: u64,
    /// Times an I/O thread compacted its connection table after a peak (fewer than a quarter of
    /// its slots in use): the memory of a login storm that left is given back.
    pub compactions: u64,
    /// TLS handshakes completed (feature `tls`).
    pub tls_handshakes: u64,
    /// TLS handshakes that did not complete: the connection closed during one, whatever the
    /// reason (a TLS error, its timeout, the peer leaving), or a plain client came to a
    /// TLS-only port.
    pub tls_handshake_failures: u64,
    /// Closes by reason.
    pub closes: CloseCounts,
    /// The most commands any I/O thread found queued in its inbox when it came to drain it:
    /// how far pushes ran ahead of the I/O threads. A peak between two drains is seen by the
    /// next drain, so this misses nothing that was still queued; it is measured by the I/O
    /// thread (one length read per drain), never by the threads that push.
    pub inbox_high_water: u64,
    /// Time spent in the game's [`Handler`](crate::server::Handler) calls on the I/O threads,
    /// when [`ServerBuilder::time_handlers`](crate::server::ServerBuilder::time_handlers) is on
    /// (all zero otherwise).
    pub handler_time: HandlerTime,
}

/// Buckets of [`HandlerTime::buckets`]: bucket `i` < `HANDLER_TIME_BUCKETS - 1` counts calls
/// that took at most 2^i µs (and more than the bucket before); the last one counts the rest
/// (over 2^20 µs, about a second).
pub const HANDLER_TIME_BUCKETS: usize = 22;

/// How long the game's handler calls (handshake, request, notify) took on the I/O threads: a
/// histogram with power-of-two buckets from 1 µs to about 1 s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerTime {
    /// Calls timed.
    pub calls: u64,
    /// Their total time, in nanoseconds.
    pub total_ns: u64,
    /// Calls per bucket (not cumulative); see [`HANDLER_TIME_BUCKETS`] and
    /// [`HandlerTime::bucket_bound`].
    pub buckets: [u64; HANDLER_TIME_BUCKETS],
}

impl HandlerTime {
    /// The upper bound of bucket `i`: 2^i µs; `None` for the last bucket (no bound) or past
    /// the end.
    pub fn bucket_bound(i: usize) -> Option<Duration> {
        (i + 1 < HANDLER_TIME_BUCKETS).then(|| Duration::from_micros(1 << i))
    }

    /// The bucket a call of `elapsed` falls into.
    pub fn bucket_of(elapsed: Duration) -> usize {
        // Whole microseconds, rounded up: a call of 1.001 µs is over the 1 µs bound.
        let micros = elapsed.as_nanos().div_ceil(1000);
        if micros <= 1 {
            return 0;
        }
        // The smallest i with micros <= 2^i.
        let i = (u128::BITS - (micros - 1).leading_zeros()) as usize;
        i.min(HANDLER_TIME_BUCKETS - 1)
    }
}

/// One I/O thread's counters. Written by that thread only (relaxed), read by snapshots.
#[derive(Debug, Default)]
pub(crate) struct ThreadMetrics {
    inner: CachePadded<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    packages_in: AtomicU64,
    frames_out: AtomicU64,
    frames_dropped: AtomicU64,
    write_calls: AtomicU64,
    compacted: AtomicU64,
    kicked: AtomicU64,
    peer_closed: AtomicU64,
    heartbeat_timeout: AtomicU64,
    handshake_timeout: AtomicU64,
    protocol_violation: AtomicU64,
    slow_consumer: AtomicU64,
    io_error: AtomicU64,
    shutdown: AtomicU64,
    handler_panic: AtomicU64,
    tls: AtomicU64,
    tls_handshakes: AtomicU64,
    tls_handshake_failures: AtomicU64,
    /// Written only by this I/O thread (a load and a store, no read-modify-write).
    inbox_high_water: AtomicU64,
    handler_calls: AtomicU64,
    handler_ns: AtomicU64,
    handler_buckets: [AtomicU64; HANDLER_TIME_BUCKETS],
}

macro_rules! bump {
    ($($name:ident),*) => {$(
        #[inline]
        pub(crate) fn $name(&self, n: u64) {
            self.inner.$name.fetch_add(n, Ordering::Relaxed);
        }
    )*};
}

impl ThreadMetrics {
    bump!(
        accepted,
        refused,
        bytes_in,
        bytes_out,
        packages_in,
        frames_out,
        frames_dropped,
        write_calls,
        compacted
    );

    #[cfg(feature = "tls")]
    bump!(tls_handshakes, tls_handshake_failures);

    /// The inbox held `depth` commands when this I/O thread came to drain it.
    #[inline]
    pub(crate) fn inbox_depth_seen(&self, depth: usize) {
        let depth = depth as u64;
        // Only this thread writes it: a plain load and store keep the maximum.
        if depth > self.inner.inbox_high_water.load(Ordering::Relaxed) {
            self.inner.inbox_high_water.store(depth, Ordering::Relaxed);
        }
    }

    /// This I/O thread's inbox high-water mark (see [`Metrics::inbox_high_water`]).
    #[cfg(any(test, feature = "prometheus"))]
    pub(crate) fn inbox_high_water(&self) -> u64 {
        self.inner.inbox_high_water.load(Ordering::Relaxed)
    }

    /// One handler call took `elapsed`.
    pub(crate) fn handler_time(&self, elapsed: Duration) {
        let c = &self.inner;
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        c.handler_calls.fetch_add(1, Ordering::Relaxed);
        c.handler_ns.fetch_add(ns, Ordering::Relaxed);
        c.handler_buckets[HandlerTime::bucket_of(elapsed)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn close(&self, reason: &CloseReason) {
        let c = &self.inner;
        let counter = match reason {
            CloseReason::Kicked(_) | CloseReason::KickedSilently | CloseReason::Removed => {
                &c.kicked
            }
            CloseReason::PeerClosed => &c.peer_closed,
            CloseReason::HeartbeatTimeout => &c.heartbeat_timeout,
            CloseReason::HandshakeTimeout => &c.handshake_timeout,
            CloseReason::ProtocolViolation(_) | CloseReason::HandshakeRejected(_) => {
                &c.protocol_violation
            }
            CloseReason::SlowConsumer => &c.slow_consumer,
            CloseReason::Io(_) => &c.io_error,
            CloseReason::Shutdown => &c.shutdown,
            CloseReason::HandlerPanic => &c.handler_panic,
            CloseReason::Tls(_) => &c.tls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_to(&self, m: &mut Metrics) {
        let c = &self.inner;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        m.accepted += get(&c.accepted);
        m.refused += get(&c.refused);
        m.bytes_in += get(&c.bytes_in);
        m.bytes_out += get(&c.bytes_out);
        m.packages_in += get(&c.packages_in);
        m.frames_out += get(&c.frames_out);
        m.frames_dropped += get(&c.frames_dropped);
        m.write_calls += get(&c.write_calls);
        m.compactions += get(&c.compacted);
        m.tls_handshakes += get(&c.tls_handshakes);
        m.tls_handshake_failures += get(&c.tls_handshake_failures);
        m.closes.kicked += get(&c.kicked);
        m.closes.peer_closed += get(&c.peer_closed);
        m.closes.heartbeat_timeout += get(&c.heartbeat_timeout);
        m.closes.handshake_timeout += get(&c.handshake_timeout);
        m.closes.protocol_violation += get(&c.protocol_violation);
        m.closes.slow_consumer += get(&c.slow_consumer);
        m.closes.io_error += get(&c.io_error);
        m.closes.shutdown += get(&c.shutdown);
        m.closes.handler_panic += get(&c.handler_panic);
        m.closes.tls += get(&c.tls);
        m.inbox_high_water = m.inbox_high_water.max(get(&c.inbox_high_water));
        m.handler_time.calls += get(&c.handler_calls);
        m.handler_time.total_ns += get(&c.handler_ns);
        for (sum, bucket) in m.handler_time.buckets.iter_mut().zip(&c.handler_buckets) {
            *sum += get(bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_time_buckets_are_powers_of_two_microseconds() {
        let at = |ns: u64| HandlerTime::bucket_of(Duration::from_nanos(ns));
        assert_eq!(at(0), 0);
        assert_eq!(at(1_000), 0);
        assert_eq!(at(1_001), 1);
        assert_eq!(at(2_000), 1);
        assert_eq!(at(2_001), 2);
        assert_eq!(at(4_000), 2);
        assert_eq!(at(4_001), 3);
        assert_eq!(at(1_048_576_000), 20);
        assert_eq!(at(1_048_576_001), 21);
        assert_eq!(
            HandlerTime::bucket_of(Duration::MAX),
            HANDLER_TIME_BUCKETS - 1
        );
        assert_eq!(HandlerTime::bucket_bound(0), Some(Duration::from_micros(1)));
        assert_eq!(
            HandlerTime::bucket_bound(20),
            Some(Duration::from_micros(1 << 20))
        );
        assert_eq!(HandlerTime::bucket_bound(21), None);
        // Every call falls at or under its bucket's bound, and over the previous one's.
        for ns in [
            1u64,
            999,
            1_000,
            1_001,
            3_999,
            65_536_000,
            65_536_001,
            900_000_000,
        ] {
            let i = at(ns);
            let d = Duration::from_nanos(ns);
            assert!(
                HandlerTime::bucket_bound(i).is_none_or(|b| d <= b),
                "{ns} ns in {i}"
            );
            if i > 0 {
                assert!(
                    d > HandlerTime::bucket_bound(i - 1).unwrap(),
                    "{ns} ns in {i}"
                );
            }
        }
    }

    #[test]
    fn snapshot_sums_handler_time_and_keeps_the_highest_inbox_mark() {
        let (a, b) = (ThreadMetrics::default(), ThreadMetrics::default());
        a.handler_time(Duration::from_micros(3));
        b.handler_time(Duration::from_micros(3));
        b.handler_time(Duration::from_millis(5));
        a.inbox_depth_seen(7);
        a.inbox_depth_seen(2);
        b.inbox_depth_seen(5);
        let mut m = Metrics::default();
        a.add_to(&mut m);
        b.add_to(&mut m);
        assert_eq!(m.inbox_high_water, 7);
        assert_eq!(a.inbox_high_water(), 7);
        assert_eq!(m.handler_time.calls, 3);
        assert_eq!(m.handler_time.total_ns, 5_006_000);
        assert_eq!(m.handler_time.buckets[2], 2);
        assert_eq!(m.handler_time.buckets[13], 1); // 5 ms <= 8.192 ms
        assert_eq!(m.handler_time.buckets.iter().sum::<u64>(), 3);
    }
}
