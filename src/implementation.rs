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
//!   same critical section; set the uid; queue the `bound` event) → fire the shard's events.
//! * `unbind`: shard write (validate; index write: remove; clear the uid; queue `unbound`) →
//!   fire the shard's events.
//! * close: shard write (remove from the registry; index write: remove; queue `closed`) → `Close`
//!   command to the transport → fire the shard's events. `kick(uid)` closes each sid of its
//!   snapshot only if, in that critical section, it is still bound to the uid.
//!
//! The invariant these orders keep: *a live session's entry says it is bound to `u` exactly
//! when the index lists it under `u`*, because bind, unbind and close change both in one
//! critical section. A bind that fails is never visible.
//!
//! # Session events
//!
//! Listeners run with no lock held, yet must see each session's events in commit order (a
//! `closed` that overtakes its `bound` leaves a dead entry in any presence map). Each change
//! therefore appends its event to a queue inside the shard's registry, in the critical section
//! that makes the change; after unlocking, the changing thread fires the queue unless another
//! thread is already doing so for that shard (a flag under the same lock), in which case that
//! thread fires it. See `src/event_queue.rs`; loom model `events_in_causal_order`. Each call
//! into a listener is wrapped in `catch_unwind`: a panic closes the session it concerned with
//! `CloseReason::HandlerPanic` and the dispatcher carries on.
//!
//! # Outbound path
//!
//! `send_message_by_uid`: hash → read-lock one index shard → per sid, push
//! `Command::Send { sid, frame.clone() }` onto the owning shard's bounded `ArrayQueue`
//! **under that read lock** → unlock → flip the wake flag of each inbox pushed to (see
//! [`Inbox`] for the no-lost-wake-up argument; the set of inboxes is a 256-bit mask on the
//! stack). Pushing under the lock is what makes a frame unable to reach a session's next user:
//! an unbind needs the index shard's write lock, so it comes wholly before or after the pushes,
//! and a rebind's traffic queues behind them (loom model `send_by_uid_racing_rebind`; the old
//! copy-then-push is its mutant). It also removed the allocating path for uids with more than
//! eight sessions, and costs fewer instructions than the copy did (callgrind `send_uid_1`
//! 343.6 → 335.6 Ir, `send_uid_3` 571.4 → 548.5).
//!
//! # Transport
//!
//! The connector and `MemoryDriver` apply inbox commands through one function,
//! [`apply_commands`](crate::apply_commands): in inbox order (a `Close` ends its connection
//! before the next command is looked at), to the connection of exactly the command's sid
//! ([`ConnTable`](crate::ConnTable): stale sids are dropped and counted), at most 65,536 per
//! I/O loop turn (`Inbox::drain_bounded`: a flooding producer cannot starve reads, writes and
//! timers). A response the I/O thread produces while its inbox is full is not written straight
//! to the socket (it would overtake the pushes its handler queued); it goes to the inbox's
//! overflow list, which is handed over after everything queued before it. Handler calls are
//! wrapped in `catch_unwind`: a panic closes that connection (`HandlerPanic`), never the thread.
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
//! `broadcast` clone the frame inside `Inbox::push_send_cloned_unnotified`, where the command is
//! built.
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
