//! Per-peer reliability, sans-IO: sequencing, cumulative acks, go-back-N retransmission and
//! deadlines on the sending side ([`Outbound`]); in-order, at-most-once acceptance and a bounded
//! reply cache for duplicates on the receiving side ([`Inbound`]).
//!
//! Nothing here reads a clock or touches a socket: the caller passes `Instant`s in and puts the
//! frames [`Outbound::transmit`] hands it on the wire. The link is assumed FIFO (Redis pub/sub
//! is, per connection) but may drop and duplicate frames, silently.
//!
//! The guarantee, per (origin incarnation → destination incarnation) stream: the receiver
//! executes each frame at most once and in sequence order; the sender learns each frame's
//! outcome exactly once, either acknowledged ([`Outbound::on_ack`]: executed) or expired
//! ([`Outbound::expire`]: maybe executed, never twice).

use crate::frame;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Bounds of one [`Outbound`] stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most frames held (sent or not, until acked or expired).
    pub max_frames: usize,
    /// Most encoded bytes held. Should be at least the frame size limit, or a frame of that
    /// size is always refused.
    pub max_bytes: usize,
    /// First retransmission timeout, and the timeout after every acknowledged progress.
    pub rto_min: Duration,
    /// The timeout doubles on every retransmission up to this.
    pub rto_max: Duration,
}

impl Default for Limits {
    /// 1024 frames, 16 MiB, retransmission after 50 ms doubling up to 1 s.
    fn default() -> Limits {
        Limits {
            max_frames: 1024,
            max_bytes: 16 << 20,
            rto_min: Duration::from_millis(50),
            rto_max: Duration::from_secs(1),
        }
    }
}

/// A push was refused because the stream holds its maximum of frames or bytes; nothing changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backpressure;

impl fmt::Display for Backpressure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cluster stream buffer full")
    }
}

impl std::error::Error for Backpressure {}

/// One frame held by an [`Outbound`].
struct Held<T> {
    seq: u64,
    frame: Vec<u8>,
    meta: T,
    deadline: Instant,
    /// Put on the wire at least once (its next sends are retransmissions).
    sent_before: bool,
}

/// Sender side of one stream (this node → one destination incarnation): go-back-N.
///
/// Frames get consecutive sequence numbers from 1. Each is held, with the caller's metadata
/// `T` (for example its request ids), until a cumulative ack covers it or its deadline passes.
/// Memory is bounded by [`Limits`]: a full stream refuses pushes with [`Backpressure`].
pub struct Outbound<T> {
    limits: Limits,
    held: VecDeque<Held<T>>,
    next_seq: u64,
    /// `held[..sent]` are on the wire in this pass; `held[sent..]` go out at the next transmit.
    sent: usize,
    bytes: usize,
    rto: Duration,
    timer: Option<Instant>,
    retransmits: u64,
}

impl<T> Outbound<T> {
    /// An empty stream whose first frame will be seq 1.
    pub fn new(limits: Limits) -> Self {
        Outbound {
            limits,
            held: VecDeque::new(),
            next_seq: 1,
            sent: 0,
            bytes: 0,
            rto: limits.rto_min,
            timer: None,
            retransmits: 0,
        }
    }

    /// Assigns the next sequence number (1, 2, …), writes it and the current floor into
    /// `frame` (an encoded Data frame, from [`frame::DataWriter::finish`]) and holds it, not yet
    /// sent, until acked or past `deadline`. Returns the sequence number.
    ///
    /// `Err(Backpressure)` if the stream already holds `max_frames` frames or the frame would
    /// take it past `max_bytes`; nothing changes then (the next push gets the same number).
    pub fn push(
        &mut self,
        mut frame: Vec<u8>,
        meta: T,
        deadline: Instant,
    ) -> Result<u64, Backpressure> {
        if self.held.len() >= self.limits.max_frames
            || self.bytes.saturating_add(frame.len()) > self.limits.max_bytes
            || self.next_seq == u64::MAX
        {
            return Err(Backpressure);
        }
        let seq = self.next_seq;
        frame::set_seq(&mut frame, seq);
        frame::set_floor(&mut frame, self.floor());
        self.next_seq += 1;
        self.bytes += frame.len();
        self.held.push_back(Held {
            seq,
            frame,
            meta,
            deadline,
            sent_before: false,
        });
        Ok(seq)
    }

    /// Puts frames on the wire through `send(seq, bytes)`, in sequence order: every frame not
    /// yet sent in the current pass, and, when the retransmission timer has fired, every
    /// unacked frame from the first (go-back-N). Each frame gets the current floor and, if it
    /// was sent before, [`frame::FLAG_RETRANSMIT`] (counted in [`Outbound::retransmits`]).
    ///
    /// The timer is armed at the first send while none is armed, `rto` ahead; every firing
    /// doubles `rto` (up to `rto_max`); acknowledged progress resets it to `rto_min`.
    /// If `send` returns false (the link failed) transmission stops there: that frame and the
    /// rest stay pending for a later call, and the timer is armed if it was not, so
    /// [`Outbound::next_timeout`] still bounds the retry. Returns the number of frames sent.
    pub fn transmit(&mut self, now: Instant, mut send: impl FnMut(u64, &[u8]) -> bool) -> usize {
        if self.timer.is_some_and(|at| now >= at) {
            self.sent = 0;
            self.timer = None;
            self.rto = self.rto.saturating_mul(2).min(self.limits.rto_max);
        }
        let floor = self.floor();
        let mut count = 0;
        while let Some(held) = self.held.get_mut(self.sent) {
            let flags = if held.sent_before {
                frame::FLAG_RETRANSMIT
            } else {
                0
            };
            frame::set_flags(&mut held.frame, flags);
            frame::set_floor(&mut held.frame, floor);
            let ok = send(held.seq, &held.frame);
            if self.timer.is_none() {
                self.timer = Some(now + self.rto);
            }
            if !ok {
                break;
            }
            if held.sent_before {
                self.retransmits += 1;
            }
            held.sent_before = true;
            self.sent += 1;
            count += 1;
        }
        count
    }

    /// The encoded frame `seq` as `transmit` last patched it, while it is still held (the
    /// caller publishes it after `transmit` named it, without copying it out).
    pub fn frame(&self, seq: u64) -> Option<&[u8]> {
        let first = self.held.front()?.seq;
        let at = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.held
            .get(at)
            .filter(|h| h.seq == seq)
            .map(|h| h.frame.as_slice())
    }

    /// A cumulative ack from the destination: removes and returns, in order, the frames with
    /// `seq <= through`. An ack at or beyond the next unassigned sequence number acknowledges
    /// frames never pushed and is ignored, as is a stale one (below the floor). Progress
    /// resets the timeout to `rto_min` and re-arms the timer if sent frames remain.
    pub fn on_ack(&mut self, through: u64, now: Instant) -> Vec<(u64, T)> {
        let mut done = Vec::new();
        if through >= self.next_seq {
            return done;
        }
        while self.held.front().is_some_and(|h| h.seq <= through) {
            if let Some(held) = self.pop_front() {
                done.push((held.seq, held.meta));
            }
        }
        if !done.is_empty() {
            self.rto = self.limits.rto_min;
            self.timer = (self.sent > 0).then(|| now + self.rto);
        }
        done
    }

    /// Removes and returns the frames whose deadline is at or before `now`, from the front
    /// only: a frame behind one whose deadline has not passed waits (deadlines grow with push
    /// order in practice). The floor moves past them, so the receiver skips them once it sees
    /// a later frame. An expired frame may or may not have been executed; it is never resent.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, T)> {
        let mut gone = Vec::new();
        while self.held.front().is_some_and(|h| h.deadline <= now) {
            if let Some(held) = self.pop_front() {
                gone.push((held.seq, held.meta));
            }
        }
        if self.sent == 0 {
            self.timer = None;
        }
        gone
    }

    /// Marks every held frame to be sent again at the next [`Outbound::transmit`] (after a
    /// reconnect: whatever was in flight may be lost). The timer is disarmed and the timeout
    /// reset to `rto_min`; the next send re-arms it.
    pub fn resend_all(&mut self) {
        self.sent = 0;
        self.timer = None;
        self.rto = self.limits.rto_min;
    }

    /// Drops every held frame (the destination is gone for good) and returns them in order
    /// with their metadata. Sequence numbers keep counting from where they were.
    pub fn drain(&mut self) -> Vec<(u64, T)> {
        self.sent = 0;
        self.bytes = 0;
        self.timer = None;
        self.rto = self.limits.rto_min;
        self.held.drain(..).map(|h| (h.seq, h.meta)).collect()
    }

    /// When the caller should next call [`Outbound::transmit`] and [`Outbound::expire`]: the
    /// earlier of the retransmission timer and the first held frame's deadline. `None` when
    /// nothing is held and no timer is armed.
    pub fn next_timeout(&self) -> Option<Instant> {
        let deadline = self.held.front().map(|h| h.deadline);
        match (self.timer, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True if no frame is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Number of frames held (sent or not).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames resent so far (each resend of each frame counts once).
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// Sequence number of the first frame still held, or the next one to be assigned if none
    /// is: the receiver may skip everything below it.
    pub fn floor(&self) -> u64 {
        self.held.front().map_or(self.next_seq, |h| h.seq)
    }

    /// The sequence number the next push will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn pop_front(&mut self) -> Option<Held<T>> {
        let held = self.held.pop_front()?;
        self.bytes -= held.frame.len();
        self.sent = self.sent.saturating_sub(1);
        Some(held)
    }
}

/// How an [`Inbound`] treats a Data frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The next frame in sequence: execute it (then ack, and [`Inbound::remember`] its replies).
    Execute,
    /// Already executed (or skipped): do not execute; re-ack, with the remembered replies if any.
    Duplicate,
    /// An earlier frame is missing: drop this one without acking; the sender goes back.
    Gap,
}

/// Frames whose replies an [`Inbound`] keeps.
const REMEMBER_FRAMES: usize = 256;
/// Reply bytes an [`Inbound`] keeps.
const REMEMBER_BYTES: usize = 1 << 20;

/// Receiver side of one stream (one origin incarnation → this node): in-order, at-most-once.
#[derive(Debug, Default)]
pub struct Inbound {
    /// Next sequence number to execute, minus 1 (so a fresh stream starts at 0 and the field
    /// can reach `u64::MAX` without overflow).
    through: u64,
    remembered: VecDeque<(u64, Vec<u8>)>,
    remembered_bytes: usize,
}

impl Inbound {
    /// A stream expecting seq 1 first.
    pub fn new() -> Inbound {
        Inbound::default()
    }

    /// Classifies a Data frame by its `seq` and `floor`. First the expected number is raised
    /// to `floor` if that is higher (the sender gave up on older frames), then:
    /// `seq` below it → [`Verdict::Duplicate`]; equal → [`Verdict::Execute`] (and the expected
    /// number advances); above → [`Verdict::Gap`]. Seq 0 is never executed (a Duplicate).
    pub fn accept(&mut self, seq: u64, floor: u64) -> Verdict {
        self.through = self.through.max(floor.saturating_sub(1));
        if seq <= self.through {
            Verdict::Duplicate
        } else if seq - 1 == self.through {
            self.through = seq;
            Verdict::Execute
        } else {
            Verdict::Gap
        }
    }

    /// Cumulative ack to send: every frame through this seq was executed or skipped
    /// (the expected seq minus 1; 0 before the first).
    pub fn acked_through(&self) -> u64 {
        self.through
    }

    /// The next sequence number to execute.
    pub fn next_expected(&self) -> u64 {
        self.through.saturating_add(1)
    }

    /// Keeps the encoded replies of executed frame `seq`, so a duplicate of it can be answered
    /// again. Bounded: the last 256 frames and at most 1 MiB in all, the oldest evicted first
    /// (a single entry over 1 MiB is not kept). Remembering a seq again replaces its entry.
    pub fn remember(&mut self, seq: u64, replies: Vec<u8>) {
        if let Some(at) = self.remembered.iter().position(|(s, _)| *s == seq) {
            if let Some((_, old)) = self.remembered.remove(at) {
                self.remembered_bytes -= old.len();
            }
        }
        self.remembered_bytes += replies.len();
        self.remembered.push_back((seq, replies));
        while self.remembered.len() > REMEMBER_FRAMES || self.remembered_bytes > REMEMBER_BYTES {
            match self.remembered.pop_front() {
                Some((_, old)) => self.remembered_bytes -= old.len(),
                None => break,
            }
        }
    }

    /// The replies remembered for `seq`, if still kept.
    pub fn remembered(&self, seq: u64) -> Option<&[u8]> {
        self.remembered
            .iter()
            .rev()
            .find(|(s, _)| *s == seq)
            .map(|(_, r)| r.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, Body, DataWriter, Op, FLAG_RETRANSMIT};

    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            max_frames: 16,
            max_bytes: 1 << 20,
            rto_min: 50 * MS,
            rto_max: 200 * MS,
        }
    }

    /// A Data frame carrying one GetSid whose sid identifies it.
    fn frame(id: u64) -> Vec<u8> {
        let mut w = DataWriter::new(1, "be", 10, 20, 1 << 20).unwrap();
        w.push(1, &Op::GetSid { sid: id }).unwrap();
        w.finish()
    }

    /// (seq, floor, flags, the GetSid id) of an encoded frame.
    fn fields(bytes: &[u8]) -> (u64, u64, u16, u64) {
        let d = decode(bytes, 1 << 20).unwrap();
        let id = match d.body {
            Body::Data(r) => match r[..] {
                [frame::Request {
                    op: Op::GetSid { sid },
                    ..
                }] => sid,
                _ => panic!("unexpected requests {r:?}"),
            },
            Body::Ack(_) => panic!("an ack"),
        };
        (d.header.seq, d.header.floor, d.header.flags, id)
    }

    /// Transmits and returns what went on the wire, as `fields`.
    fn wire<T>(out: &mut Outbound<T>, now: Instant) -> Vec<(u64, u64, u16, u64)> {
        let mut sent = Vec::new();
        let n = out.transmit(now, |seq, bytes| {
            let f = fields(bytes);
            assert_eq!(f.0, seq);
            sent.push(f);
            true
        });
        assert_eq!(n, sent.len());
        sent
    }

    #[test]
    fn ordered_delivery_and_ack() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        let mut inb = Inbound::new();
        for id in 100..103 {
            let len = frame(id).len();
            assert_eq!(out.push(frame(id), id, t0 + 5000 * MS), Ok(id - 99));
            assert_eq!(out.bytes(), len * (id - 99) as usize);
        }
        assert_eq!((out.len(), out.floor(), out.next_seq()), (3, 1, 4));
        let sent = wire(&mut out, t0);
        assert_eq!(sent, vec![(1, 1, 0, 100), (2, 1, 0, 101), (3, 1, 0, 102)]);
        assert!(
            wire(&mut out, t0 + MS).is_empty(),
            "nothing sent twice before the timer"
        );
        for (seq, floor, _, _) in &sent {
            assert_eq!(inb.accept(*seq, *floor), Verdict::Execute);
        }
        assert_eq!(inb.acked_through(), 3);
        assert_eq!(out.on_ack(2, t0 + MS), vec![(1, 100), (2, 101)]);
        assert_eq!((out.len(), out.floor()), (1, 3));
        assert_eq!(out.on_ack(3, t0 + MS), vec![(3, 102)]);
        assert!(out.is_empty());
        assert_eq!((out.bytes(), out.floor(), out.next_timeout()), (0, 4, None));
        assert_eq!(out.retransmits(), 0);
    }

    #[test]
    fn frames_are_readable_by_seq_as_transmitted() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        for id in 100..103 {
            out.push(frame(id), id, t0 + 5000 * MS).unwrap();
        }
        let mut wire: Vec<(u64, Vec<u8>)> = Vec::new();
        out.transmit(t0, |seq, bytes| {
            wire.push((seq, bytes.to_vec()));
            true
        });
        for (seq, bytes) in &wire {
            assert_eq!(out.frame(*seq), Some(bytes.as_slice()), "seq {seq}");
        }
        assert_eq!((out.frame(0), out.frame(4)), (None, None));
        out.on_ack(1, t0);
        assert_eq!(out.frame(1), None);
        assert_eq!(out.frame(2), Some(wire[1].1.as_slice()));
    }

    #[test]
    fn inbound_duplicates_and_gaps() {
        let mut inb = Inbound::new();
        assert_eq!(inb.next_expected(), 1);
        assert_eq!(inb.acked_through(), 0);
        assert_eq!(inb.accept(0, 0), Verdict::Duplicate);
        assert_eq!(inb.accept(2, 1), Verdict::Gap);
        assert_eq!(inb.accept(1, 1), Verdict::Execute);
        assert_eq!(inb.accept(1, 1), Verdict::Duplicate);
        assert_eq!(inb.accept(3, 1), Verdict::Gap);
        assert_eq!(inb.accept(2, 1), Verdict::Execute);
        assert_eq!(inb.accept(3, 1), Verdict::Execute);
        assert_eq!(inb.acked_through(), 3);
        // A floor below what was executed changes nothing.
        assert_eq!(inb.accept(2, 2), Verdict::Duplicate);
        assert_eq!(inb.acked_through(), 3);
        // Hostile numbers: no overflow, nothing executed twice.
        assert_eq!(inb.accept(u64::MAX, u64::MAX), Verdict::Execute);
        assert_eq!(inb.accept(u64::MAX, u64::MAX), Verdict::Duplicate);
        assert_eq!(inb.acked_through(), u64::MAX);
        assert_eq!(inb.next_expected(), u64::MAX);
    }

    #[test]
    fn a_gap_is_filled_by_the_retransmission() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        let mut inb = Inbound::new();
        for id in 0..3 {
            out.push(frame(id), id, t0 + 5000 * MS).unwrap();
        }
        // Frame 1 is lost on the link; 2 and 3 arrive and are gaps.
        let sent = wire(&mut out, t0);
        for (seq, floor, _, _) in &sent[1..] {
            assert_eq!(inb.accept(*seq, *floor), Verdict::Gap);
        }
        assert_eq!(inb.acked_through(), 0);
        assert_eq!(out.next_timeout(), Some(t0 + 50 * MS));
        assert!(wire(&mut out, t0 + 49 * MS).is_empty());
        let again = wire(&mut out, t0 + 50 * MS);
        let flags: Vec<u16> = again.iter().map(|f| f.2).collect();
        assert_eq!(flags, vec![FLAG_RETRANSMIT; 3]);
        for (seq, floor, _, _) in &again {
            assert_eq!(inb.accept(*seq, *floor), Verdict::Execute);
        }
        assert_eq!(out.retransmits(), 3);
        assert_eq!(out.on_ack(inb.acked_through(), t0 + 60 * MS).len(), 3);
        assert_eq!(out.next_timeout(), None);
    }

    #[test]
    fn acks_beyond_next_seq_or_stale_are_ignored() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        for id in 0..2 {
            out.push(frame(id), id, t0 + 5000 * MS).unwrap();
        }
        wire(&mut out, t0);
        assert!(out.on_ack(3, t0).is_empty(), "seq 3 was never pushed");
        assert_eq!(out.len(), 2);
        assert!(out.on_ack(0, t0).is_empty());
        assert_eq!(out.on_ack(1, t0), vec![(1, 0)]);
        assert!(out.on_ack(1, t0).is_empty(), "stale");
        assert_eq!(out.len(), 1);
        // A frame pushed but not sent may be acked (it was sent before a resend_all).
        out.push(frame(2), 2, t0 + 5000 * MS).unwrap();
        assert_eq!(out.on_ack(3, t0), vec![(2, 1), (3, 2)]);
        assert!(out.is_empty());
    }

    #[test]
    fn backpressure_leaves_the_state_unchanged() {
        let t0 = Instant::now();
        let len = frame(0).len();
        let mut out = Outbound::new(Limits {
            max_frames: 2,
            ..limits()
        });
        out.push(frame(0), 0, t0 + 5000 * MS).unwrap();
        out.push(frame(1), 1, t0 + 5000 * MS).unwrap();
        assert_eq!(out.push(frame(2), 2, t0 + 5000 * MS), Err(Backpressure));
        assert_eq!((out.len(), out.bytes(), out.next_seq()), (2, 2 * len, 3));
        assert_eq!(wire(&mut out, t0).len(), 2);
        out.on_ack(1, t0);
        assert_eq!(out.push(frame(3), 3, t0 + 5000 * MS), Ok(3));

        let mut out = Outbound::new(Limits {
            max_bytes: 2 * len + 1,
            ..limits()
        });
        out.push(frame(0), 0, t0 + 5000 * MS).unwrap();
        out.push(frame(1), 1, t0 + 5000 * MS).unwrap();
        assert_eq!(out.push(frame(2), 2, t0 + 5000 * MS), Err(Backpressure));
        assert_eq!((out.len(), out.bytes(), out.next_seq()), (2, 2 * len, 3));
        assert_eq!(Backpressure.to_string(), "cluster stream buffer full");
    }

    #[test]
    fn go_back_n_timer_doubles_and_resets_on_progress() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        for id in 0..3 {
            out.push(frame(id), id, t0 + 10_000 * MS).unwrap();
        }
        assert_eq!(
            out.next_timeout(),
            Some(t0 + 10_000 * MS),
            "no timer before a send"
        );
        assert_eq!(wire(&mut out, t0).len(), 3);
        // rto 50 → 100 → 200 → 200 (rto_max).
        let mut at = t0;
        for (n, rto) in [50u32, 100, 200, 200].into_iter().enumerate() {
            assert_eq!(out.next_timeout(), Some(at + rto * MS), "round {n}");
            assert!(wire(&mut out, at + (rto - 1) * MS).is_empty());
            at += rto * MS;
            let again = wire(&mut out, at);
            assert_eq!(again.iter().map(|f| f.0).collect::<Vec<_>>(), vec![1, 2, 3]);
            assert!(again.iter().all(|f| f.2 == FLAG_RETRANSMIT));
            assert_eq!(out.retransmits(), 3 * (n as u64 + 1));
        }
        // Progress: the timeout is back to rto_min, from the ack.
        let ack_at = at + 10 * MS;
        assert_eq!(out.on_ack(1, ack_at), vec![(1, 0)]);
        assert_eq!(out.next_timeout(), Some(ack_at + 50 * MS));
        let again = wire(&mut out, ack_at + 50 * MS);
        assert_eq!(
            again.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            vec![(2, 2), (3, 2)]
        );
        // A new frame after the timer fired goes out once, without the flag.
        out.push(frame(9), 9, t0 + 10_000 * MS).unwrap();
        assert_eq!(wire(&mut out, ack_at + 51 * MS), vec![(4, 2, 0, 9)]);
    }

    #[test]
    fn expiry_from_the_front_moves_the_floor_and_the_receiver_skips() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        let mut inb = Inbound::new();
        out.push(frame(0), 0, t0 + 100 * MS).unwrap();
        out.push(frame(1), 1, t0 + 300 * MS).unwrap();
        out.push(frame(2), 2, t0 + 200 * MS).unwrap(); // behind a later deadline: waits
        out.push(frame(3), 3, t0 + 400 * MS).unwrap();
        // Everything is lost on the link.
        wire(&mut out, t0);
        assert!(out.expire(t0 + 99 * MS).is_empty());
        assert_eq!(out.expire(t0 + 100 * MS), vec![(1, 0)]);
        assert_eq!(out.floor(), 2);
        assert_eq!(
            out.next_timeout(),
            Some(t0 + 50 * MS),
            "the retransmission timer"
        );
        assert_eq!(out.expire(t0 + 299 * MS), vec![]);
        assert_eq!(out.expire(t0 + 300 * MS), vec![(2, 1), (3, 2)]);
        assert_eq!((out.floor(), out.len()), (4, 1));
        // The retransmission carries the new floor; the receiver skips 1..=3 and executes 4.
        let again = wire(&mut out, t0 + 300 * MS);
        assert_eq!(again, vec![(4, 4, FLAG_RETRANSMIT, 3)]);
        assert_eq!(inb.accept(again[0].0, again[0].1), Verdict::Execute);
        assert_eq!(inb.acked_through(), 4);
        assert_eq!(out.expire(t0 + 400 * MS), vec![(4, 3)]);
        assert_eq!((out.floor(), out.next_timeout()), (5, None));
        // A later push starts at the floor.
        out.push(frame(5), 5, t0 + 900 * MS).unwrap();
        assert_eq!(wire(&mut out, t0 + 500 * MS), vec![(5, 5, 0, 5)]);
    }

    #[test]
    fn resend_all_sends_everything_at_once() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        for id in 0..3 {
            out.push(frame(id), id, t0 + 5000 * MS).unwrap();
        }
        assert_eq!(wire(&mut out, t0).len(), 2 + 1);
        out.on_ack(1, t0 + 10 * MS);
        out.push(frame(3), 3, t0 + 5000 * MS).unwrap(); // not yet sent
        out.resend_all();
        assert_eq!(out.next_timeout(), Some(t0 + 5000 * MS), "timer disarmed");
        let again = wire(&mut out, t0 + 11 * MS);
        assert_eq!(
            again.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>(),
            vec![(2, FLAG_RETRANSMIT), (3, FLAG_RETRANSMIT), (4, 0)]
        );
        assert_eq!(out.retransmits(), 2);
        assert_eq!(out.next_timeout(), Some(t0 + 61 * MS));
    }

    #[test]
    fn a_failed_send_stops_and_is_retried() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        for id in 0..3 {
            out.push(frame(id), id, t0 + 5000 * MS).unwrap();
        }
        let mut tried = Vec::new();
        let n = out.transmit(t0, |seq, _| {
            tried.push(seq);
            seq < 2
        });
        assert_eq!((n, tried), (1, vec![1, 2]));
        assert_eq!(out.next_timeout(), Some(t0 + 50 * MS));
        // The link is back: the rest goes out, as first sends.
        assert_eq!(wire(&mut out, t0 + MS), vec![(2, 1, 0, 1), (3, 1, 0, 2)]);
        // A link down from the start still arms the timer.
        let mut out = Outbound::new(limits());
        out.push(frame(0), 0, t0 + 5000 * MS).unwrap();
        assert_eq!(out.transmit(t0, |_, _| false), 0);
        assert_eq!(out.next_timeout(), Some(t0 + 50 * MS));
        assert_eq!(wire(&mut out, t0 + 50 * MS), vec![(1, 1, 0, 0)]);
        assert_eq!(out.retransmits(), 0);
    }

    #[test]
    fn drain_returns_everything() {
        let t0 = Instant::now();
        let mut out = Outbound::new(limits());
        for id in 0..3 {
            out.push(frame(id), id, t0 + 5000 * MS).unwrap();
        }
        wire(&mut out, t0);
        assert_eq!(out.drain(), vec![(1, 0), (2, 1), (3, 2)]);
        assert!(out.is_empty());
        assert_eq!((out.bytes(), out.next_timeout(), out.floor()), (0, None, 4));
        assert!(wire(&mut out, t0 + 100 * MS).is_empty());
    }

    #[test]
    fn remembered_replies_are_bounded() {
        let mut inb = Inbound::new();
        for seq in 1..=300u64 {
            inb.remember(seq, seq.to_le_bytes().to_vec());
        }
        assert_eq!(inb.remembered(44), None);
        assert_eq!(inb.remembered(45), Some(&45u64.to_le_bytes()[..]));
        assert_eq!(inb.remembered(300), Some(&300u64.to_le_bytes()[..]));
        inb.remember(300, b"again".to_vec());
        assert_eq!(inb.remembered(300), Some(&b"again"[..]));
        // Bytes: two 600 KiB entries cannot both stay; the oldest entries go first.
        inb.remember(301, vec![1; 600 << 10]);
        inb.remember(302, vec![2; 600 << 10]);
        assert_eq!(inb.remembered(301), None);
        assert_eq!(inb.remembered(302).map(<[u8]>::len), Some(600 << 10));
        // Eviction is by age: every entry older than 301 went before it.
        assert_eq!(inb.remembered(300), None);
        assert_eq!(inb.remembered.len(), 1);
        inb.remember(303, vec![3; (1 << 20) + 1]);
        assert_eq!(inb.remembered(303), None);
        assert_eq!(inb.remembered(302), None);
        assert_eq!((inb.remembered.len(), inb.remembered_bytes), (0, 0));
    }

    use gatehouse::__private::XorShift as Rng;

    /// A lossy, duplicating, FIFO link in each direction, with a 3 s outage (longer than the
    /// deadline) in the middle. Checks: the receiver executes each frame at most once and in
    /// order; each frame's outcome is reported exactly once, acked or expired; every acked frame
    /// was executed; every frame not executed expired.
    #[test]
    fn lossy_duplicating_link_simulation() {
        for seed in 1..=12u64 {
            simulate(seed);
        }
    }

    fn simulate(seed: u64) {
        const FRAMES: u64 = 400;
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (drop, dup) = (5 + rng.next_u64() % 30, rng.next_u64() % 20);
        let t0 = Instant::now();
        let deadline = 2000 * MS;
        let outage = (t0 + 3000 * MS, t0 + 6000 * MS);
        let mut out = Outbound::new(Limits {
            max_frames: 32,
            max_bytes: 1 << 20,
            rto_min: 20 * MS,
            rto_max: 400 * MS,
        });
        let mut inb = Inbound::new();
        let mut data_link: VecDeque<Vec<u8>> = VecDeque::new();
        let mut ack_link: VecDeque<u64> = VecDeque::new();
        let mut pushed = 0u64;
        let mut executed: Vec<(u64, u64)> = Vec::new(); // (seq, id)
        let mut outcome: Vec<Option<bool>> = vec![None; FRAMES as usize]; // by id: Some(acked)
        let mut seq_of = vec![0u64; FRAMES as usize];
        let mut pushed_at = vec![t0; FRAMES as usize];
        let mut now = t0;
        let mut step = 0;
        while pushed < FRAMES || !out.is_empty() {
            step += 1;
            assert!(step < 100_000, "seed {seed}: no progress");
            let down = now >= outage.0 && now < outage.1;
            // One push every 20 ms on average: the 400 frames span the outage.
            if pushed < FRAMES && rng.chance(5) {
                if let Ok(seq) = out.push(frame(pushed), pushed, now + deadline) {
                    seq_of[pushed as usize] = seq;
                    pushed_at[pushed as usize] = now;
                    pushed += 1;
                }
            }
            out.transmit(now, |_, bytes| {
                if !down && !rng.chance(drop) {
                    data_link.push_back(bytes.to_vec());
                    if rng.chance(dup) {
                        data_link.push_back(bytes.to_vec());
                    }
                }
                true
            });
            // The receiver reads a random prefix of what is in flight (FIFO).
            let n = (rng.next_u64() % 4) as usize;
            for bytes in data_link
                .drain(..n.min(data_link.len()))
                .collect::<Vec<_>>()
            {
                let (seq, floor, _, id) = fields(&bytes);
                let verdict = inb.accept(seq, floor);
                if verdict == Verdict::Execute {
                    executed.push((seq, id));
                }
                if verdict != Verdict::Gap && !down && !rng.chance(drop) {
                    ack_link.push_back(inb.acked_through());
                    if rng.chance(dup) {
                        ack_link.push_back(inb.acked_through());
                    }
                }
            }
            let n = (rng.next_u64() % 4) as usize;
            for through in ack_link.drain(..n.min(ack_link.len())).collect::<Vec<_>>() {
                for (seq, id) in out.on_ack(through, now) {
                    assert_eq!(seq, seq_of[id as usize]);
                    assert_eq!(
                        outcome[id as usize].replace(true),
                        None,
                        "seed {seed}: twice"
                    );
                }
            }
            for (seq, id) in out.expire(now) {
                assert_eq!(seq, seq_of[id as usize]);
                assert_eq!(
                    outcome[id as usize].replace(false),
                    None,
                    "seed {seed}: twice"
                );
            }
            assert!(out.len() <= 32);
            now += MS;
        }
        // At most once, in order; the frame's content travelled with its seq.
        assert!(executed.windows(2).all(|w| w[0].0 < w[1].0), "seed {seed}");
        for (seq, id) in &executed {
            assert_eq!(*seq, seq_of[*id as usize], "seed {seed}");
        }
        let was_executed: Vec<bool> = {
            let mut v = vec![false; FRAMES as usize];
            for (_, id) in &executed {
                v[*id as usize] = true;
            }
            v
        };
        let mut acked = 0;
        for id in 0..FRAMES as usize {
            match outcome[id] {
                Some(true) => {
                    assert!(
                        was_executed[id],
                        "seed {seed}: frame {id} acked, not executed"
                    );
                    acked += 1;
                }
                Some(false) => {}
                None => panic!("seed {seed}: frame {id} has no outcome"),
            }
            if !was_executed[id] {
                assert_eq!(
                    outcome[id],
                    Some(false),
                    "seed {seed}: frame {id} lost silently"
                );
            }
        }
        let expired = FRAMES as usize - acked;
        // After the outage the stream recovers (the floor lets the receiver skip what expired).
        let recovered = (0..FRAMES as usize)
            .filter(|&id| pushed_at[id] >= outage.1 && outcome[id] == Some(true))
            .count();
        assert!(recovered > 0, "seed {seed}: nothing acked after the outage");
        assert!(
            acked > 0 && expired > 0,
            "seed {seed}: {acked} acked, {expired} expired"
        );
        assert!(out.retransmits() > 0, "seed {seed}");
    }
}
