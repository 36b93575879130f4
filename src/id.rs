//! [`Sid`]: the session id, packing creation sequence, shard and slot.

use std::fmt;

/// Bits of the slot (index into the shard's slab).
pub(crate) const SLOT_BITS: u32 = 24;
/// Bits of the shard number.
pub(crate) const SHARD_BITS: u32 = 8;
/// Bits of the creation sequence number.
pub(crate) const SEQ_BITS: u32 = 64 - SLOT_BITS - SHARD_BITS;

/// Sessions one shard can hold at most (the slot field's range).
pub const MAX_SESSIONS_PER_SHARD: usize = 1 << SLOT_BITS;
/// Session shards a service can have at most (the shard field's range).
pub const MAX_SHARDS: usize = 1 << SHARD_BITS;

const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const SHARD_MASK: u64 = (1 << SHARD_BITS) - 1;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// A session id: opaque, `Copy`, printable, never reused for another session.
///
/// A `Sid` packs three fields into a `u64`, from the high bits down:
///
/// | bits | field | meaning |
/// | --- | --- | --- |
/// | 63..32 | sequence | service-wide creation counter, starting at 1 |
/// | 31..24 | shard | which shard (and so which I/O thread) owns the session |
/// | 23..0 | slot | index into that shard's slab |
///
/// Slots are reused once a session closes, but the sequence makes the id itself unique (until
/// the 32-bit counter wraps after 4 294 967 295 sessions, and even then only an id with the same
/// shard *and* slot could collide). Every lookup compares the whole stored id, so a stale id can
/// never reach the session that now occupies its slot. Because the sequence is in the high
/// bits, sids compare in creation order, as pomelo's integer ids do.
///
/// # Examples
///
/// ```
/// use gatehouse::{SessionConfig, SessionService};
///
/// let service = SessionService::new(SessionConfig::default()).unwrap();
/// let a = service.create(None).unwrap();
/// let b = service.create(None).unwrap();
/// assert!(a < b);
/// assert_eq!(gatehouse::Sid::from_raw(a.into_raw()), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid(u64);

impl Sid {
    pub(crate) fn new(seq: u64, shard: usize, slot: usize) -> Sid {
        debug_assert!(shard < MAX_SHARDS && slot < MAX_SESSIONS_PER_SHARD);
        Sid(((seq & SEQ_MASK) << (SHARD_BITS + SLOT_BITS))
            | ((shard as u64) << SLOT_BITS)
            | slot as u64)
    }

    /// The id as a plain integer (what [`Display`](fmt::Display) prints), for logs, exports and
    /// RPC to other processes.
    pub const fn into_raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`Sid::into_raw`]. Any `u64` is accepted: an id that names no live
    /// session simply finds nothing.
    pub const fn from_raw(raw: u64) -> Sid {
        Sid(raw)
    }

    /// The shard (I/O thread) that owns this session.
    pub const fn shard(self) -> usize {
        ((self.0 >> SLOT_BITS) & SHARD_MASK) as usize
    }

    pub(crate) const fn slot(self) -> usize {
        (self.0 & SLOT_MASK) as usize
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sid({}:{}#{})",
            self.shard(),
            self.slot(),
            self.0 >> (SHARD_BITS + SLOT_BITS)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let sid = Sid::new(7, 3, 12345);
        assert_eq!(sid.shard(), 3);
        assert_eq!(sid.slot(), 12345);
        assert_eq!(Sid::from_raw(sid.into_raw()), sid);
        assert_eq!(sid.to_string(), sid.into_raw().to_string());
    }

    #[test]
    fn later_sequence_orders_after_any_slot() {
        let early = Sid::new(1, MAX_SHARDS - 1, MAX_SESSIONS_PER_SHARD - 1);
        let late = Sid::new(2, 0, 0);
        assert!(early < late);
    }

    #[test]
    fn same_slot_different_sequence_differs() {
        assert_ne!(Sid::new(1, 0, 5), Sid::new(2, 0, 5));
    }
}
