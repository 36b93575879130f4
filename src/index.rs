//! [`UidIndex`]: the sharded `uid → sids` map.
//!
//! The map is split into a power-of-two number of shards, each a `RwLock` around a
//! `hashbrown::HashTable`, padded to its own cache line. A uid is hashed once with `ahash`
//! under a per-process random seed (uids can come from clients: a fixed seed would let a client
//! pick colliding ids); bits 32.. of that hash pick the shard, and the same hash probes the
//! table, whose buckets use the low bits and whose tag byte uses the top 7 — so the shard choice
//! is uncorrelated with both. Short uids are stored inline in the entry ([`Uid`]), so a probe
//! compares bytes in the bucket instead of chasing a `String` pointer.
//!
//! A lookup read-locks one shard, copies the uid's sids (in bind order) onto the caller's stack
//! and unlocks; nothing else is ever locked while a shard lock is held.

use crate::id::Sid;
use crate::sync::{CachePadded, RwLock};
use crate::uid::Uid;
use hashbrown::HashTable;
use smallvec::SmallVec;

/// Sids of one uid, in bind order; inline (no allocation) up to four.
pub type SidList = SmallVec<[Sid; 4]>;

struct Entry {
    uid: Uid,
    /// Non-empty: an entry whose last sid leaves is removed.
    sids: SmallVec<[Sid; 2]>,
}

type Table = HashTable<Entry>;

/// A table at or below this capacity never shrinks (see [`UidIndex::remove`]).
const SHRINK_FLOOR: usize = 64;

pub(crate) struct UidIndex {
    shards: Box<[CachePadded<RwLock<Table>>]>,
    mask: usize,
    hasher: ahash::RandomState,
}

/// `insert` refused: single-session mode and another session holds the uid.
pub(crate) struct Occupied;

impl UidIndex {
    pub(crate) fn new(shards: usize) -> UidIndex {
        debug_assert!(shards.is_power_of_two());
        UidIndex {
            shards: (0..shards)
                .map(|_| CachePadded::new(RwLock::new(Table::new())))
                .collect(),
            mask: shards - 1,
            hasher: ahash::RandomState::new(),
        }
    }

    fn hash(&self, uid: &str) -> u64 {
        self.hasher.hash_one(uid)
    }

    fn shard(&self, hash: u64) -> &RwLock<Table> {
        &self.shards[(hash >> 32) as usize & self.mask]
    }

    /// Adds `sid` to `uid`'s list. `Ok(true)`: added; `Ok(false)`: it was there already;
    /// `Err(Occupied)`: `single` is set and another sid holds the uid.
    pub(crate) fn insert(&self, uid: &Uid, sid: Sid, single: bool) -> Result<bool, Occupied> {
        let hash = self.hash(uid.as_str());
        let mut table = self.shard(hash).write();
        let hasher = |e: &Entry| self.hash(e.uid.as_str());
        match table.entry(hash, |e| e.uid == *uid, hasher) {
            hashbrown::hash_table::Entry::Occupied(mut occupied) => {
                let sids = &mut occupied.get_mut().sids;
                if sids.contains(&sid) {
                    return Ok(false);
                }
                #[cfg(not(gatehouse_loom_mutant = "split_single_session_check"))]
                if single {
                    return Err(Occupied);
                }
                // (The seeded mutant checks in the caller, in a separate critical section.)
                #[cfg(gatehouse_loom_mutant = "split_single_session_check")]
                let _ = single;
                sids.push(sid);
                Ok(true)
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(Entry {
                    uid: uid.clone(),
                    sids: SmallVec::from_elem(sid, 1),
                });
                Ok(true)
            }
        }
    }

    /// Whether another sid than `sid` holds `uid` (used by the seeded single-session mutant,
    /// which checks in a separate critical section from the insert).
    #[cfg(gatehouse_loom_mutant = "split_single_session_check")]
    pub(crate) fn held_by_other(&self, uid: &str, sid: Sid) -> bool {
        let hash = self.hash(uid);
        let table = self.shard(hash).read();
        table
            .find(hash, |e| e.uid == *uid)
            .is_some_and(|e| e.sids.iter().any(|s| *s != sid))
    }

    /// Removes `sid` from `uid`'s list (and the uid once its list is empty). Returns whether
    /// it was there. A table left at under a quarter of its capacity (and above
    /// [`SHRINK_FLOOR`]) is shrunk to twice its length, so after a login storm the index gives
    /// its memory back; the factor-of-two gap on each side keeps grow and shrink from
    /// thrashing, and the rehash is amortised over the removals that emptied the table.
    pub(crate) fn remove(&self, uid: &str, sid: Sid) -> bool {
        let hash = self.hash(uid);
        let mut table = self.shard(hash).write();
        let Ok(mut occupied) = table.find_entry(hash, |e| e.uid == *uid) else {
            return false;
        };
        let sids = &mut occupied.get_mut().sids;
        let Some(pos) = sids.iter().position(|s| *s == sid) else {
            return false;
        };
        // Keeps bind order.
        #[cfg(not(gatehouse_loom_mutant = "unindex_whole_uid"))]
        sids.remove(pos);
        // Seeded bug for the loom models: drop every session of the uid, not just this one.
        #[cfg(gatehouse_loom_mutant = "unindex_whole_uid")]
        {
            let _ = pos;
            sids.clear();
        }
        #[cfg(not(gatehouse_loom_mutant = "split_index_remove"))]
        if sids.is_empty() {
            occupied.remove();
            self.shrink_if_sparse(&mut table);
        }
        // Seeded bug for the loom models: drop the emptied entry in a second critical section,
        // so a reader in between finds the uid with no sessions.
        #[cfg(gatehouse_loom_mutant = "split_index_remove")]
        {
            drop(table);
            let mut table = self.shard(hash).write();
            if let Ok(entry) = table.find_entry(hash, |e| e.uid == *uid) {
                if entry.get().sids.is_empty() {
                    entry.remove();
                }
            }
        }
        true
    }

    fn shrink_if_sparse(&self, table: &mut Table) {
        if table.capacity() > SHRINK_FLOOR && table.len() * 4 < table.capacity() {
            table.shrink_to(table.len() * 2, |e: &Entry| self.hash(e.uid.as_str()));
        }
    }

    /// Runs `f` on `uid`'s sids (bind order) **with the index shard's read lock held**; `None`
    /// if the uid is unknown. The hot path of `send_message_by_uid`, which pushes under the
    /// lock so that no unbind/rebind can slip between the lookup and the pushes. `f` must not
    /// take another index lock or call user code.
    #[inline]
    pub(crate) fn with_sids<R>(&self, uid: &str, f: impl FnOnce(&[Sid]) -> R) -> Option<R> {
        let hash = self.hash(uid);
        let table = self.shard(hash).read();
        let entry = table.find(hash, |e| e.uid.as_bytes() == uid.as_bytes())?;
        Some(f(&entry.sids))
    }

    /// Copies up to `out.len()` of `uid`'s sids (bind order) into `out` and returns how many
    /// the uid has in all (which may exceed what was copied); `None` if the uid is unknown.
    /// Only the seeded loom mutant `send_by_uid_push_unlocked` uses it (the old hot path).
    #[cfg(gatehouse_loom_mutant = "send_by_uid_push_unlocked")]
    #[inline]
    pub(crate) fn copy_sids(&self, uid: &str, out: &mut [Sid]) -> Option<usize> {
        let hash = self.hash(uid);
        let table = self.shard(hash).read();
        let entry = table.find(hash, |e| e.uid.as_bytes() == uid.as_bytes())?;
        let n = entry.sids.len().min(out.len());
        out[..n].copy_from_slice(&entry.sids[..n]);
        Some(entry.sids.len())
    }

    /// Copies `uid`'s sids (bind order) into `out`; false if the uid is unknown.
    pub(crate) fn get_into(&self, uid: &str, out: &mut SidList) -> bool {
        let hash = self.hash(uid);
        let table = self.shard(hash).read();
        match table.find(hash, |e| e.uid == *uid) {
            Some(entry) => {
                out.extend_from_slice(&entry.sids);
                true
            }
            None => false,
        }
    }

    /// The summed capacity of the shards' tables (for the test probes).
    #[cfg(all(feature = "internals", not(gatehouse_loom)))]
    pub(crate) fn capacity(&self) -> usize {
        self.shards.iter().map(|s| s.read().capacity()).sum()
    }

    /// Number of uids with at least one session.
    pub(crate) fn uid_count(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// Every `(uid, sids)` pair; cold (tests and consistency checks).
    pub(crate) fn entries(&self) -> Vec<(Uid, Vec<Sid>)> {
        let mut all = Vec::new();
        for shard in self.shards.iter() {
            let table = shard.read();
            all.extend(table.iter().map(|e| (e.uid.clone(), e.sids.to_vec())));
        }
        all
    }
}
