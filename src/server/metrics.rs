//! [`Metrics`]: counters kept by the I/O threads, summed into a snapshot on demand.

use crate::events::CloseReason;
use crate::sync::{AtomicU64, CachePadded, Ordering};

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
    }
}
