//! [`Sid`]: the session id, packing the slot's generation, the shard and the slot into 53 bits.

use std::fmt;

/// Bits of the slot (index into the shard's registry).
pub(crate) const SLOT_BITS: u32 = 24;
/// Bits of the shard number.
pub(crate) const SHARD_BITS: u32 = 8;
/// Bits of the slot's generation: what is left of JavaScript's 53 exact integer bits.
pub(crate) const GENERATION_BITS: u32 = 53 - SLOT_BITS - SHARD_BITS;
/// The last generation a slot can hand out; a slot whose session of this generation closes is
/// retired for good (see [`Sid`]).
pub(crate) const MAX_GENERATION: u32 = (1 << GENERATION_BITS) - 1;

/// Sessions one shard can hold at most (the slot field's range).
pub const MAX_SESSIONS_PER_SHARD: usize = 1 << SLOT_BITS;
/// Session shards a service can have at most (the shard field's range).
pub const MAX_SHARDS: usize = 1 << SHARD_BITS;

const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const SHARD_MASK: u64 = (1 << SHARD_BITS) - 1;
const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

/// A session id: opaque, `Copy`, printable, never reused for another session.
///
/// A `Sid` packs three fields into the low 53 bits of a `u64`, from the high bits down:
///
/// | bits | field | meaning |
/// | --- | --- | --- |
/// | 52..32 | generation | how many sessions this slot has held, this one included (1..=2 097 151) |
/// | 31..24 | shard | which shard (and so which I/O thread) owns the session |
/// | 23..0 | slot | index into that shard's registry |
///
/// Bits 63..53 are always zero, so every sid is at most 2^53 − 1 (`Number.MAX_SAFE_INTEGER`):
/// it goes through `export()`, JSON and a JavaScript `number` exactly, and a pinus backend's
/// `kickBySid` or `getBackendSessionBySid` names the same session. A 64-bit layout would round
/// in JavaScript past 2^53 and address a neighbour.
///
/// **Never reused.** The registry keeps a generation for every slot it ever used, also while
/// the slot is vacant, and increments it each time the slot takes a new session. A slot whose
/// generation is exhausted (its 2 097 151st session closed) is *retired*: never handed out
/// again. So no two sessions of a process's lifetime share a sid; the price of a retired slot is
/// the few bytes of bookkeeping it keeps, after two million sessions through that one slot.
/// Generations start at 1, so no sid is ever raw 0. Every lookup compares the whole stored id,
/// so a stale id can never reach the session that now occupies its slot.
///
/// **Not ordered by creation.** A reused low slot gives a smaller sid than an older session in
/// a higher slot. `Sid` implements `Ord` (for maps and sorting), but the order means nothing
/// about age: exactness in JavaScript is worth more, and pomelo backends never compare sids,
/// they only pass them back.
///
/// # Examples
///
/// ```
/// use gatehouse::{SessionConfig, SessionService, Sid};
///
/// let service = SessionService::new(SessionConfig::default().shards(1)).unwrap();
/// let a = service.create(None).unwrap();
/// service.kick_by_session_id(a, None);
/// // The slot is reused, the id is not: the slot's generation went up.
/// let b = service.create(None).unwrap();
/// assert_ne!(a, b);
/// assert!(service.get(a).is_none());
/// // Every sid survives a trip through a JavaScript number.
/// assert!(b.into_raw() < 1 << 53);
/// assert_eq!(Sid::from_raw(b.into_raw() as f64 as u64), b);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sid(u64);

impl Sid {
    pub(crate) fn new(generation: u32, shard: usize, slot: usize) -> Sid {
        debug_assert!(shard < MAX_SHARDS && slot < MAX_SESSIONS_PER_SHARD);
        debug_assert!((1..=MAX_GENERATION).contains(&generation));
        Sid(
            ((u64::from(generation) & GENERATION_MASK) << (SHARD_BITS + SLOT_BITS))
                | ((shard as u64) << SLOT_BITS)
                | slot as u64,
        )
    }

    /// The id as a plain integer (what [`Display`](fmt::Display) prints), for logs, exports and
    /// RPC to other processes. Always at most 2^53 − 1, so exact as a JavaScript number.
    pub const fn into_raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`Sid::into_raw`]. Any `u64` is accepted: an id that names no live
    /// session (including any above 2^53 − 1, which no session ever has) simply finds nothing.
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

    /// The generation field (bits 63..32 of a raw id from outside may be wider than 21 bits:
    /// shown as they are).
    const fn generation(self) -> u64 {
        self.0 >> (SHARD_BITS + SLOT_BITS)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Sid {
    /// `Sid(shard:slot#generation)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Sid({}:{}#{})",
            self.shard(),
            self.slot(),
            self.generation()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest integer JavaScript represents exactly (`Number.MAX_SAFE_INTEGER`).
    const MAX_RAW: u64 = (1 << 53) - 1;

    #[test]
    fn fields_round_trip() {
        let sid = Sid::new(7, 3, 12345);
        assert_eq!(sid.shard(), 3);
        assert_eq!(sid.slot(), 12345);
        assert_eq!(sid.generation(), 7);
        assert_eq!(Sid::from_raw(sid.into_raw()), sid);
        assert_eq!(sid.to_string(), sid.into_raw().to_string());
        assert_eq!(format!("{sid:?}"), "Sid(3:12345#7)");
    }

    #[test]
    fn the_largest_sid_is_javascripts_largest_exact_integer() {
        let max = Sid::new(MAX_GENERATION, MAX_SHARDS - 1, MAX_SESSIONS_PER_SHARD - 1);
        assert_eq!(max.into_raw(), MAX_RAW);
        assert_eq!(max.into_raw(), 9_007_199_254_740_991);
        assert_eq!(max.shard(), MAX_SHARDS - 1);
        assert_eq!(max.slot(), MAX_SESSIONS_PER_SHARD - 1);
        assert_eq!(max.generation(), u64::from(MAX_GENERATION));
        // A JavaScript number (an f64) holds it exactly; one more would not be distinguishable.
        assert_eq!(max.into_raw() as f64 as u64, max.into_raw());
        assert_eq!((MAX_RAW + 1) as f64, (MAX_RAW + 2) as f64);
    }

    #[test]
    fn the_smallest_sid_is_not_zero() {
        let min = Sid::new(1, 0, 0);
        assert_eq!(min.into_raw(), 1 << 32);
    }

    #[test]
    fn same_slot_different_generation_differs() {
        assert_ne!(Sid::new(1, 0, 5), Sid::new(2, 0, 5));
    }
}
