//! Design notes: how the session core is built and why. (Documentation only.)
//!
//! # Data layout
//!
//! * **Sessions** live in `S` shards (`SessionConfig::shards`, one per I/O thread). A shard is
//!   a registry (`src/registry.rs`) behind a `parking_lot::RwLock`, plus the shard's [`Inbox`].
//!   The registry is a `Vec<Option<SessionEntry>>` indexed by slot, an occupancy bitmap (one
//!   `u64` per 64 slots), and a generation per slot ever used. An entry is 40 bytes: the
//!   [`Sid`] (for the generation check), `Option<Uid>` (24 bytes, inline for short ids) and a
//!   box with the cold data (remote address, settings); the box is also the `Option`'s niche, so
//!   a slot is 40 bytes too. `create` takes the lowest free slot, so live sessions pack toward
//!   slot 0 and the high-water mark falls as the top slots empty; on the close path the storage
//!   is trimmed when the mark is at a quarter of its capacity (to twice the mark, never below
//!   `initial_sessions_per_shard`). The generations (4 bytes a slot) are kept for every slot
//!   ever used. It is not a `slab::Slab` because a slab keeps no generation for a vacant slot,
//!   reuses the most recently freed slot (scattering sessions after a peak), and has no
//!   bitmap to skip vacant slots with.
//! * **Sids** pack the slot's generation (21 bits, from 1), the shard (8) and the slot (24):
//!   53 bits, so every sid is exact as a JavaScript number (pinus backends address sessions by
//!   it). The generation goes up each time the slot is reused, and a slot whose last generation
//!   has closed is retired, so a sid is never handed out twice. Lookups compare the whole sid
//!   with the stored one: a stale sid whose slot was reused finds nothing (the "generation
//!   check"). Sids are not ordered by creation — a reused low slot gives a smaller sid than an
//!   older session in a high one — which pomelo backends never rely on: they pass sids back,
//!   they do not compare them.
//! * **The uid index** is `index_shards` (power of two) cache-padded `RwLock<HashTable>`s.
//!   One `ahash` hash per operation (random per-process seed: uids may be client-chosen) both
//!   selects the shard (bits 32..) and probes the table. Entries keep the uid inline and the
//!   sids in a `SmallVec<[Sid; 2]>` in bind order. A table left at under a quarter of its
//!   capacity by a remove is shrunk to twice its length (above a 64-entry floor).
//!
//! # Lock discipline
//!
//! No lock is ever held while user code runs, and at most two are held at once, always in the
//! same order: a session shard's lock, then one index shard's lock inside it. No code takes a
//! shard lock while holding an index lock, or two locks of the same kind, so there is no cycle.
//!
//! * `bind`: shard write (validate; index write: insert, with the single-session check in that
//!   same critical section; set the uid) → `bound` event.
//! * `unbind`: shard write (validate; index write: remove; clear the uid) → `unbound` event.
//! * close: shard write (remove from the registry) → index write (remove) → `closed` event →
//!   `Close` command to the transport.
//!
//! The invariant these orders keep: *a live session's entry says it is bound to `u` exactly
//! when the index lists it under `u`*, because bind and unbind change both in one critical
//! section. The one window is a closing session: it has left its shard but is still listed until
//! the close removes it from the index, before the `closed` event. A by-uid send that finds it
//! there queues its frame either before the `Close` (delivered, the session was bound to the
//! uid) or after it (the transport drops it as stale). A bind that fails is never visible.
//!
//! # Outbound path
//!
//! `send_message_by_uid`: hash → read-lock one index shard → copy the sids (≤ 8 inline) →
//! unlock → per sid, push `Command::Send { sid, frame.clone() }` onto the owning shard's
//! bounded `ArrayQueue` and flip its wake flag (see [`Inbox`] for the no-lost-wake-up
//! argument). The I/O thread drains the queue, checks each sid against its own connection
//! table (stale: drop and count) and writes.
//!
//! # Accept hand-off
//!
//! One I/O thread owns the listener and deals accepted sockets round-robin to the others
//! through a per-thread `Handoff` queue (`src/handoff.rs`): the push reports whether the queue
//! was empty, and only then is the target woken; the target takes the whole queue every turn.
//! Check and take share one lock, so a non-empty queue always has a wake-up pending (loom model
//! `handoff_never_strands_an_item`). Out of file descriptors, the accepting thread closes its
//! reserve descriptor, accepts and closes what waits in the backlog, and takes the reserve back.
//!
//! # Iteration
//!
//! `for_each_*` walk each shard's occupancy bitmap word by word, jumping to the set bits
//! (`trailing_zeros`): 64 vacant slots cost one load, so after a peak a walk costs the live
//! sessions plus one word per 64 slots below the high-water mark. They copy up to 32
//! `(sid, uid)` pairs per read-lock hold onto the stack and run the callback after unlocking, so
//! callbacks can re-enter the service and writers wait at most one short chunk.
//! `for_each_bound_session` copies `(Sid, Uid)` rather than `(Sid, Option<Uid>)`. Uids are copied with `Uid::assign`, not the
//! derived `clone_from`: that one staged the inline bytes 1..8 in a stack temporary as two
//! overlapping 4-byte stores and read them back, a store-to-load forwarding stall that made
//! the walk 6.8 ns per session; field by field it is 3.5 ns, with *more* instructions (66.6
//! against 60.6) — instruction counts do not see stalls. A dense per-shard list of bound
//! sessions (a second slab, so positions stay stable while walkers release the lock) was
//! measured and dropped: the same instructions per session with 1% unbound sessions, and
//! `bind` + `unbind` 799 → 950. The same kind of stall is why `send_message_by_uid` and
//! `broadcast` clone the frame inside `Inbox::push_send_cloned`, where the command is built.
//!
//! `broadcast` walks each shard once and pushes under its read lock, up to 256 live sessions
//! per hold, then flips the shard's wake flag once: one `swap` after the last push covers every
//! push before it (the no-lost-wake-up argument needs a swap after each push in program order,
//! not one per push). Pushing under the lock orders a session's frame before its `Close`, which
//! `close` can only queue after taking the write lock. A refused push (full inbox) also wakes
//! the consumer early, but only once that hold's lock is released: `Wake::wake` never runs
//! under a shard lock. `broadcast_reporting` hands the refused sids (collected on the stack, 32
//! per hold at most) to its callback after each hold, for a retry without duplicates. Model:
//! `loom-tests/tests/broadcast.rs`.
//!
//! [`Inbox`]: crate::Inbox
//! [`Sid`]: crate::Sid
