//! [`Inbox`]: one shard's bounded outbound command queue with a coalesced wake-up.
//!
//! # Protocol
//!
//! Any thread may push; one consumer (the shard's I/O thread, or a [`MemoryDriver`]) drains.
//! A flag, `wake_pending`, says "a wake-up has been issued and the consumer has not started
//! draining since":
//!
//! * **producer**: push the command, then `wake_pending.swap(true)`; only the producer that
//!   flips it from `false` calls [`Wake::wake`]. Under load that is one wake per drain, not one
//!   per message (mio's `Waker::wake` is a syscall, ≈0.5 µs).
//! * **consumer**: `wake_pending.swap(false)` *first*, then pop until the queue is empty.
//!
//! No lost wake-up: take any push P and the consumer's re-arm R (both read-modify-writes of the
//! flag, so they are totally ordered). If P's swap comes after R, it reads `false` and wakes.
//! If it comes before, R reads `true` from P's release sequence (acquire), so P's push
//! happens-before the consumer's pops, which will find it. Clearing the flag *after* draining
//! would open a window where a push lands after the last pop but sees the flag still set —
//! the loom model in `loom-tests/` checks this, and the mutant
//! `gatehouse_loom_mutant="rearm_after_drain"` proves it catches it.
//!
//! # Close commands never get lost
//!
//! Sends that find the queue full are refused and handed back to the caller. A close cannot be
//! refused (the session already left the registry), so a close that finds the queue full goes
//! to a small overflow list. The consumer takes that list *before* it pops the queue and hands
//! it over *after* the queue is empty: every send queued before a close it took was pushed
//! before that close, so it is already in the queue and comes out first — the KICK still
//! follows it. (Taking the list after the pops instead lets a send and its close that both land
//! after the last pop come out close-first, and the transport then drops the accepted send as
//! stale; the loom model `inbox_close_overflow` found that, and the mutant
//! `gatehouse_loom_mutant="drain_overflow_last"` keeps it caught.) Closes are at most one per
//! session, so the list is bounded by the number of sessions.
//!
//! # Bounded drains
//!
//! A consumer that also serves sockets drains with [`Inbox::drain_bounded`]: one producer in a
//! broadcast loop could otherwise keep it popping for ever while nothing is written, read or
//! timed out. A drain that stops at its bound keeps the overflow it took (`held`) and hands it
//! over only from the drain that finally sees the queue empty — the same argument as above,
//! stretched over several turns: every send queued before a close it took is still ahead of it
//! in the queue. Such a drain reports `more`, and the consumer drains again on its next turn
//! without waiting for a wake-up: its re-arm already consumed the wake-up of the commands left.
//!
//! [`MemoryDriver`]: crate::MemoryDriver

use crate::events::CloseReason;
use crate::frame::Frame;
use crate::id::Sid;
use crate::sync::{Arc, ArrayQueue, AtomicBool, AtomicU64, Mutex, OnceLock, Ordering};
use std::fmt;

/// An outbound command for the transport that owns a session's connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Command {
    /// Write `frame` to the connection of `sid`. A transport that no longer has a connection
    /// with exactly this sid (closed, or its slot reused) must drop the frame and count it with
    /// [`Inbox::record_stale`].
    Send {
        /// The target session.
        sid: Sid,
        /// The encoded bytes.
        frame: Frame,
    },
    /// The session `sid` has closed (it already left the registry and `closed` fired): send a
    /// KICK package if [`CloseReason::kick_message`] has a text, flush, then close the connection.
    Close {
        /// The closed session.
        sid: Sid,
        /// Why; logged by the transport.
        reason: CloseReason,
    },
}

impl Command {
    /// The session the command is for.
    pub fn sid(&self) -> Sid {
        match self {
            Command::Send { sid, .. } | Command::Close { sid, .. } => *sid,
        }
    }
}

/// Wakes the consumer of an [`Inbox`] (the reactor plugs in a `mio::Waker`).
pub trait Wake: Send + Sync + 'static {
    /// Called at most once per drain, from the producer's thread, with no lock held.
    fn wake(&self);
}

#[cfg(not(gatehouse_loom))]
impl Wake for mio::Waker {
    fn wake(&self) {
        if let Err(err) = mio::Waker::wake(self) {
            // Only fails if the eventfd is gone, i.e. the reactor is shutting down.
            log::warn!("gatehouse: failed to wake I/O thread: {err}");
        }
    }
}

/// One shard's outbound command queue. The protocol (coalesced wake-up, close overflow) is
/// described in [`implementation`](crate::implementation) and in `src/inbox.rs`.
pub struct Inbox {
    queue: ArrayQueue<Command>,
    /// Close commands (and the consumer's own responses) that found `queue` full. Handed over
    /// after `queue` is seen empty.
    overflow: Mutex<Vec<Command>>,
    /// Consumer-only: overflow taken by a bounded drain that stopped before the queue was
    /// empty; handed over by the drain that next empties it (see "Bounded drains").
    held: Mutex<Vec<Command>>,
    /// Consumer-only: a response of the consumer spilled to `overflow` and is not handed over
    /// yet, so its later responses must spill too (see [`Inbox::push_send_spill`]).
    spilling: AtomicBool,
    /// `true` once a producer has issued a wake-up that no drain has consumed yet.
    wake_pending: AtomicBool,
    waker: OnceLock<Arc<dyn Wake>>,
    /// Sends refused because `queue` was full.
    refused: AtomicU64,
    /// Sends the consumer dropped because their sid was no longer connected.
    stale: AtomicU64,
}

impl Inbox {
    pub(crate) fn new(capacity: usize) -> Inbox {
        Inbox {
            queue: ArrayQueue::new(capacity),
            overflow: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
            spilling: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            waker: OnceLock::new(),
            refused: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }

    /// Plugs in the consumer's waker. Only the first call takes effect; returns `false` if a
    /// waker was already set. Until one is set, producers only flip the flag and the consumer
    /// must poll [`Inbox::drain`] itself.
    pub fn set_waker(&self, waker: Arc<dyn Wake>) -> bool {
        self.waker.set(waker).is_ok()
    }

    /// Queues a send; gives the frame back if the queue is full.
    pub(crate) fn push_send(&self, sid: Sid, frame: Frame) -> Result<(), Frame> {
        self.push_send_unnotified(sid, frame)?;
        self.notify();
        Ok(())
    }

    /// Queues a send of a clone of `frame` **without** the wake-up step (see
    /// [`push_send_unnotified`](Self::push_send_unnotified)); `false` if the queue is full (the
    /// clone is dropped, the caller keeps `frame`). The clone is made right where the command
    /// is built: a clone made by the caller and passed by value was copied once more on the
    /// caller's stack, and that copy re-read the freshly written clone in 16-byte loads over
    /// 8-byte stores, a store-forwarding stall (11 % of `send_message_by_uid`'s samples).
    pub(crate) fn push_send_cloned_unnotified(&self, sid: Sid, frame: &Frame) -> bool {
        match self.queue.push(Command::Send {
            sid,
            frame: frame.clone(),
        }) {
            Ok(()) => true,
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues a send **without** the wake-up step; gives the frame back if the queue is full.
    /// The caller must call [`notify`](Self::notify) after its last push (batched producers:
    /// `SessionService::broadcast` notifies once per shard). Until then the consumer may not
    /// know about the command; that is all: the no-lost-wake-up argument only needs *some*
    /// flag swap after each push in the producer's program order, not one per push.
    pub(crate) fn push_send_unnotified(&self, sid: Sid, frame: Frame) -> Result<(), Frame> {
        match self.queue.push(Command::Send { sid, frame }) {
            Ok(()) => Ok(()),
            Err(Command::Send { frame, .. }) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(frame)
            }
            Err(Command::Close { .. }) => unreachable!("pushed a Send"),
        }
    }

    /// Queues a close; never fails (see "Close commands never get lost").
    pub(crate) fn push_close(&self, sid: Sid, reason: CloseReason) {
        if let Err(cmd) = self.queue.push(Command::Close { sid, reason }) {
            self.overflow.lock().push(cmd);
        }
        self.notify();
    }

    /// For the consumer only (the shard's I/O thread answering a request it just read): queues
    /// a send that is never refused. If the queue is full — or an earlier spilled response is
    /// still waiting — it goes to the overflow list, which is handed over after every command
    /// queued before it, like an overflowed close. So a response keeps its place behind the
    /// pushes its handler queued first (pomelo's order), where writing it straight to the
    /// socket would overtake them. Bounded by what the consumer reads per loop turn.
    pub(crate) fn push_send_spill(&self, sid: Sid, frame: Frame) {
        let cmd = Command::Send { sid, frame };
        if self.spilling.load(Ordering::Relaxed) {
            self.overflow.lock().push(cmd);
        } else if let Err(cmd) = self.queue.push(cmd) {
            self.spilling.store(true, Ordering::Relaxed);
            self.overflow.lock().push(cmd);
        }
    }

    /// The producer's half of the wake-up protocol: flag a wake-up, and issue it if this call
    /// flipped the flag. Covers every push this thread made before it.
    pub(crate) fn notify(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Some(waker) = self.waker.get() {
                waker.wake();
            }
        }
    }

    /// Re-arms the wake-up, then hands every queued command to `f` in FIFO order (overflowed
    /// closes last). Returns how many commands it handed over. Allocation-free unless closes
    /// overflowed. Call it from the shard's single consumer only.
    pub fn drain(&self, f: impl FnMut(Command)) -> usize {
        self.drain_bounded(usize::MAX, f).handed
    }

    /// [`drain`](Self::drain), popping at most `max` commands from the queue, so one busy
    /// producer cannot keep the consumer draining for ever (its sockets, reads and timers wait
    /// meanwhile). If [`Drained::more`] is set, commands are left: drain again soon, without
    /// waiting for a wake-up (none will come for them). Overflowed closes taken by a drain
    /// that stopped early are handed over by the drain that empties the queue, so a close still
    /// follows every send queued before it.
    pub fn drain_bounded(&self, max: usize, mut f: impl FnMut(Command)) -> Drained {
        #[cfg(not(gatehouse_loom_mutant = "rearm_after_drain"))]
        self.wake_pending.swap(false, Ordering::AcqRel);
        let mut held = self.held.lock();
        let mut handed = 0;
        let more = loop {
            // Overflowed closes are taken before the pops (see "Close commands never get lost").
            #[cfg(not(gatehouse_loom_mutant = "drain_overflow_last"))]
            if held.is_empty() {
                std::mem::swap(&mut *held, &mut *self.overflow.lock());
            }
            let mut emptied = false;
            while handed < max {
                match self.queue.pop() {
                    Some(cmd) => {
                        f(cmd);
                        handed += 1;
                    }
                    None => {
                        emptied = true;
                        break;
                    }
                }
            }
            if !emptied {
                break true;
            }
            // Seeded bug for the loom models: taking the overflow after the pops lets a close
            // overtake a send queued before it.
            #[cfg(gatehouse_loom_mutant = "drain_overflow_last")]
            if held.is_empty() {
                std::mem::swap(&mut *held, &mut *self.overflow.lock());
            }
            handed += held.len();
            held.drain(..).for_each(&mut f);
            // More overflow (closes, or responses the consumer spilled while `held` was
            // waiting) is taken by another round: pops first, then it.
            if self.overflow.lock().is_empty() {
                // Every spilled response is handed over: later ones may queue normally.
                self.spilling.store(false, Ordering::Relaxed);
                break false;
            }
        };
        // Seeded bug for the loom models: re-arming after the pops strands a push that lands
        // between the last pop and this swap.
        #[cfg(gatehouse_loom_mutant = "rearm_after_drain")]
        self.wake_pending.swap(false, Ordering::AcqRel);
        Drained { handed, more }
    }

    /// For the consumer, at the start of a loop turn that ends in [`drain`](Self::drain): marks
    /// a wake-up as already pending, so producers skip [`Wake::wake`] until that drain re-arms
    /// the flag. Their commands are not stranded: the drain's re-arm reads the flag after any
    /// such push (both are read-modify-writes) and then pops it. Saves the I/O thread waking
    /// itself (an `eventfd` write and an extra `epoll_wait`) for every response it queues.
    pub fn hold_wake(&self) {
        self.wake_pending.swap(true, Ordering::AcqRel);
    }

    /// True if a wake-up was issued and not yet consumed by a drain. A consumer without a
    /// waker can poll this.
    pub fn wake_pending(&self) -> bool {
        self.wake_pending.load(Ordering::Acquire)
    }

    /// Commands currently queued (approximate under concurrency).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True if no command is queued (approximate under concurrency).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Counts `n` sends the consumer dropped because their sid was stale.
    pub fn record_stale(&self, n: u64) {
        self.stale.fetch_add(n, Ordering::Relaxed);
    }

    /// Sends dropped as stale so far.
    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }

    /// Sends refused because the queue was full, so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// What [`Inbox::drain_bounded`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Drained {
    /// Commands handed to the callback.
    pub handed: usize,
    /// The bound was reached with commands left: drain again without waiting for a wake-up.
    pub more: bool,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("wake_pending", &self.wake_pending())
            .field("refused", &self.refused())
            .field("stale", &self.stale())
            .finish()
    }
}

#[cfg(all(test, not(gatehouse_loom)))]
mod tests {
    use super::*;

    /// A producer that refills the queue as fast as the consumer drains it (a broadcast loop on
    /// another core). An unbounded drain never returns (before `drain_bounded`, the I/O thread
    /// then wrote, read and timed out nothing); a bounded one returns after its bound.
    #[test]
    fn bounded_drain_stops_a_refilling_producer() {
        let inbox = Inbox::new(16);
        let sid = Sid::from_raw(1 << 32);
        for _ in 0..16 {
            inbox.push_send(sid, Frame::from_static(b"x")).unwrap();
        }
        let mut handed = 0u64;
        let drained = inbox.drain_bounded(100, |_| {
            handed += 1;
            assert!(handed <= 100, "the drain went past its bound");
            inbox.push_send(sid, Frame::from_static(b"x")).unwrap(); // refill
        });
        assert_eq!(
            drained,
            Drained {
                handed: 100,
                more: true
            }
        );
        assert_eq!(inbox.len(), 16);
    }

    /// Overflowed closes taken by a drain that stops early are handed over only by the drain that
    /// empties the queue: the close still follows the sends queued before it.
    #[test]
    fn close_taken_by_a_stopped_drain_waits_for_the_sends_before_it() {
        let inbox = Inbox::new(4);
        let sid = Sid::from_raw(1 << 32);
        for _ in 0..4 {
            inbox.push_send(sid, Frame::from_static(b"x")).unwrap();
        }
        inbox.push_close(sid, CloseReason::Shutdown); // queue full: overflow
        let mut seen = Vec::new();
        let record = |seen: &mut Vec<&str>, cmd: Command| {
            seen.push(match cmd {
                Command::Send { .. } => "send",
                Command::Close { .. } => "close",
            })
        };
        assert!(inbox.drain_bounded(3, |c| record(&mut seen, c)).more);
        assert_eq!(seen, ["send"; 3]);
        let drained = inbox.drain_bounded(3, |c| record(&mut seen, c));
        assert_eq!(
            drained,
            Drained {
                handed: 2,
                more: false
            }
        );
        assert_eq!(seen, ["send", "send", "send", "send", "close"]);
    }

    /// A consumer's response that found the queue full keeps its place behind what was queued
    /// before it, and so do its later responses, even once the queue has room again.
    #[test]
    fn spilled_responses_stay_in_order() {
        let inbox = Inbox::new(2);
        let sid = Sid::from_raw(1 << 32);
        inbox.push_send(sid, Frame::from_static(b"push-1")).unwrap();
        inbox.push_send(sid, Frame::from_static(b"push-2")).unwrap();
        inbox.push_send_spill(sid, Frame::from_static(b"resp-1")); // full: spills
        let mut seen = Vec::new();
        let drained = inbox.drain_bounded(1, |c| {
            if let Command::Send { frame, .. } = c {
                seen.push(frame);
            }
        });
        assert!(drained.more);
        // Room again, but an earlier response is still waiting: this one spills behind it.
        inbox.push_send_spill(sid, Frame::from_static(b"resp-2"));
        let _ = inbox.drain(|c| {
            if let Command::Send { frame, .. } = c {
                seen.push(frame);
            }
        });
        let seen: Vec<&[u8]> = seen.iter().map(Frame::as_bytes).collect();
        assert_eq!(seen, [&b"push-1"[..], b"push-2", b"resp-1", b"resp-2"]);
        // Everything handed over: the next response queues normally.
        inbox.push_send_spill(sid, Frame::from_static(b"resp-3"));
        assert_eq!(inbox.len(), 1);
    }
}
