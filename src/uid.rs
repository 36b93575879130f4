//! [`Uid`]: a user id stored inline when short, so index probes chase no pointer.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Longest uid (in bytes) kept inline; longer ones live in a shared `Arc<str>`.
const INLINE_CAP: usize = 22;

/// A user id: an immutable UTF-8 string, cheap to clone and compare.
///
/// pomelo keys its `uidMap` by string (a numeric uid `123` and `"123"` share a slot), so
/// gatehouse does the same: convert numeric ids with `to_string()` before binding. Ids of up to
/// 22 bytes — every numeric id and most account names — are stored inline in the 24-byte value,
/// so hashing and comparing them in the uid index touches no other cache line and cloning them
/// allocates nothing. Longer ids are kept in an `Arc<str>`: cloning one is a reference-count
/// increment.
///
/// `Uid` hashes and compares exactly like the `str` it holds and implements `Borrow<str>`, so
/// lookups take a plain `&str`.
///
/// # Examples
///
/// ```
/// use gatehouse::Uid;
///
/// let uid = Uid::from("player-42");
/// assert_eq!(uid.as_str(), "player-42");
/// assert_eq!(uid, *"player-42");
/// ```
#[derive(Clone)]
pub struct Uid(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE_CAP] },
    Shared(Arc<str>),
}

impl Uid {
    /// Makes a uid from a string slice; allocates only when it is longer than 22 bytes.
    pub fn new(s: &str) -> Uid {
        if s.len() <= INLINE_CAP {
            let mut bytes = [0u8; INLINE_CAP];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Uid(Repr::Inline {
                len: s.len() as u8,
                bytes,
            })
        } else {
            Uid(Repr::Shared(Arc::from(s)))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // Built from a `&str` prefix in `new`, so it is valid UTF-8; the check is a
                // short loop over at most 22 bytes and keeps the crate free of `unsafe`.
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            Repr::Shared(s) => s,
        }
    }

    /// The id's UTF-8 bytes (no validity re-check, unlike [`Uid::as_str`]'s inline path).
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..*len as usize],
            Repr::Shared(s) => s.as_bytes(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for the empty string (which `bind` refuses).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the id is stored inline (no heap allocation, no pointer chase).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// Makes `self` a copy of `src`, like `clone_from`, but field by field when both are
    /// inline: nothing to drop, so the bytes go straight from `src` to `self`. The derived
    /// path first copies them to a stack temporary (kept across the possible drop of an old
    /// `Arc`) in overlapping 4-byte pieces and reads them back, a store-to-load forwarding
    /// stall that cost `for_each_bound_session` most of its time.
    #[inline]
    pub(crate) fn assign(&mut self, src: &Uid) {
        match (&mut self.0, &src.0) {
            (
                Repr::Inline { len, bytes },
                Repr::Inline {
                    len: src_len,
                    bytes: src_bytes,
                },
            ) => {
                *len = *src_len;
                *bytes = *src_bytes;
            }
            _ => self.clone_from(src),
        }
    }
}

impl From<&str> for Uid {
    fn from(s: &str) -> Uid {
        Uid::new(s)
    }
}

impl From<String> for Uid {
    fn from(s: String) -> Uid {
        Uid::new(&s)
    }
}

impl From<&String> for Uid {
    fn from(s: &String) -> Uid {
        Uid::new(s)
    }
}

impl PartialEq for Uid {
    fn eq(&self, other: &Uid) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Uid {}

impl PartialEq<str> for Uid {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for Uid {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialOrd for Uid {
    fn partial_cmp(&self, other: &Uid) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Uid {
    fn cmp(&self, other: &Uid) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Uid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must match `str`'s Hash, because of `Borrow<str>`.
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Uid {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Uid {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_inline_and_24_bytes() {
        assert_eq!(std::mem::size_of::<Uid>(), 24);
        assert_eq!(std::mem::size_of::<Option<Uid>>(), 24);
        let uid = Uid::new("1234567890123456789012");
        assert!(uid.is_inline());
        assert_eq!(uid.as_str(), "1234567890123456789012");
    }

    #[test]
    fn long_ids_are_shared() {
        let long = "a".repeat(23);
        let uid = Uid::new(&long);
        assert!(!uid.is_inline());
        assert_eq!(uid.as_str(), long);
        assert_eq!(uid.clone(), uid);
    }

    #[test]
    fn assign_copies_every_combination_of_inline_and_shared() {
        let short = Uid::new("short");
        let long = Uid::new(&"l".repeat(30));
        let other_long = Uid::new(&"m".repeat(30));
        let strong = |u: &Uid| match &u.0 {
            Repr::Shared(a) => Arc::strong_count(a),
            Repr::Inline { .. } => 0,
        };
        for (from, to) in [
            (&short, Uid::new("x")),
            (&short, other_long.clone()),
            (&long, Uid::new("x")),
            (&long, other_long.clone()),
        ] {
            let mut to = to;
            let before = strong(from);
            to.assign(from);
            assert_eq!(to, *from);
            assert_eq!(to.is_inline(), from.is_inline());
            if !from.is_inline() {
                assert_eq!(strong(from), before + 1, "the copy shares the Arc");
            }
        }
        // Every temporary copy of `other_long` that was overwritten released its count.
        assert_eq!(strong(&other_long), 1);
        assert_eq!(strong(&long), 1);
    }

    #[test]
    fn multibyte_utf8_round_trips() {
        let uid = Uid::new("玩家一号");
        assert_eq!(uid.as_str(), "玩家一号");
    }

    #[test]
    fn hash_matches_str() {
        let s = ahash::RandomState::new();
        assert_eq!(s.hash_one(Uid::new("abc")), s.hash_one("abc"));
        let long = "b".repeat(40);
        assert_eq!(s.hash_one(Uid::new(&long)), s.hash_one(long.as_str()));
    }
}
