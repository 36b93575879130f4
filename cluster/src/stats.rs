//! Counters of one node ([`ClusterStats`]): what the bus carried, what was refused or repaired.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Default)]
        pub(crate) struct Stats { $(pub(crate) $name: AtomicU64,)* }

        /// A snapshot of a node's counters (monotonic since the node started).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct ClusterStats { $($(#[$doc])* pub $name: u64,)* }

        impl Stats {
            pub(crate) fn snapshot(&self) -> ClusterStats {
                ClusterStats { $($name: self.$name.load(Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Data frames published (first transmissions).
    frames_sent,
    /// Data frames published again (go-back-N retransmissions).
    retransmits,
    /// Data frames received and executed.
    frames_executed,
    /// Acknowledgement frames received.
    acks_received,
    /// Frames that failed to decode (truncated, wrong version, huge lengths, unknown kinds):
    /// counted, logged and dropped.
    bad_frames,
    /// Frames carrying another cluster's tag (another prefix on the same Redis): dropped.
    foreign_frames,
    /// Data frames addressed to another incarnation of this node: answered "restarted".
    stale_frames,
    /// Data frames received twice (already executed): re-acknowledged, not executed.
    duplicates,
    /// Data frames received after a gap (an earlier one was lost): dropped until the sender
    /// goes back.
    gaps,
    /// Reconnections to Redis (either connection).
    reconnects,
    /// Directory resyncs (after a reconnect, a lost lease or a full event queue).
    resyncs,
    /// Directory entries of dead frontends removed by this node's reaper.
    reaped,
    /// Times this node found its lease taken over by another incarnation.
    fenced,
    /// Session events that did not fit in the bridge queue (each forces a resync).
    event_overflows,
    /// Publishes that found no subscriber on the destination channel.
    no_listener,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}
