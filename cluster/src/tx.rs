//! `gh-bus-tx`: the bridge thread that owns the command connection and every sender-side
//! structure — streams with their retransmit buffers, pending requests, the directory updates,
//! the lease heartbeat and the reaper.
//!
//! One turn: take acknowledgements, take queued calls (up to [`TURN_CALLS`]), route every uid
//! of the turn with one script call, fill one data frame per destination (batching), publish
//! every frame in one pipeline, then run whichever timer is due. Redis failures never lose a
//! call: while disconnected, calls wait (bounded by the queue) until their deadline; frames in
//! flight stay buffered and are sent again after the reconnect.

use crate::backplane::{BusError, Link};
use crate::call::{finish, Call, CallKind, Op, SessionOp};
use crate::directory::{redact_url, Claim, Heartbeat, Holder};
use crate::frame::{self, DataWriter, Status};
use crate::node::{AckIn, Shared};
use crate::reliable::{Limits, Outbound};
use crate::report::Outcome;
use crate::routes::RouteCache;
use crate::stats::{add, bump};
use crate::sync::Arc;
use crate::ticket::{RawReply, Ticket};
use crossbeam_channel::{select, Receiver};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Calls taken from the queue per turn (one route script and one publish pipeline serve them).
pub(crate) const TURN_CALLS: usize = 4096;
/// A call deferred (Redis down, or "offline" during the recovery grace) is retried this often.
const RETRY: Duration = Duration::from_millis(20);
/// Directory entries written per pipeline during a resync.
const RESYNC_CHUNK: usize = 1000;

/// What a request was, so its reply can be turned into outcomes.
enum Part {
    /// A push by uids; `cached[i]`: the route of `uids[i]` came from the route cache, so a
    /// "not there" answer is retried once with a fresh route.
    Uids {
        uids: Vec<String>,
        cached: Vec<bool>,
        package: bytes::Bytes,
    },
    Sids(Vec<u64>),
    Broadcast,
    KickUid(String),
    Session(u64),
    GetUid(String),
}

struct Pending {
    ticket: Arc<Ticket>,
    frontend: String,
    epoch: u64,
    deadline: Instant,
    part: Part,
}

impl Pending {
    /// The entries of a part that ended without a usable reply.
    fn lost(&self, outcome: Outcome) -> Vec<(String, String, Outcome)> {
        let fe = || self.frontend.clone();
        match &self.part {
            Part::Uids { uids, .. } => uids.iter().map(|u| (u.clone(), fe(), outcome)).collect(),
            Part::Sids(sids) => sids
                .iter()
                .map(|s| (s.to_string(), fe(), outcome))
                .collect(),
            Part::Broadcast => vec![(fe(), fe(), outcome)],
            Part::KickUid(uid) | Part::GetUid(uid) => vec![(uid.clone(), fe(), outcome)],
            Part::Session(sid) => vec![(sid.to_string(), fe(), outcome)],
        }
    }
}

/// The frames on their way to one frontend incarnation.
struct Stream {
    frontend: String,
    epoch: u64,
    channel: String,
    out: Outbound<Vec<u32>>,
    /// The frame being filled this turn, with its requests.
    writer: Option<(DataWriter, Vec<u32>, Instant)>,
    /// Highest seq ever published while the channel had a subscriber: frames above it cannot
    /// have been executed.
    reached_through: u64,
    /// Since when publishes found no subscriber.
    no_listener_since: Option<Instant>,
    retransmits_seen: u64,
}

pub(crate) struct Tx {
    shared: Arc<Shared>,
    con: Option<Box<dyn Link>>,
    ops: Receiver<Op>,
    acks: Receiver<AckIn>,
    streams: HashMap<(String, u64), Stream>,
    pending: HashMap<u32, Pending>,
    next_req: u32,
    /// Calls of this turn, then calls waiting for a connection or for the recovery grace.
    batch: Vec<Call>,
    parked: VecDeque<Call>,
    retry_at: Option<Instant>,
    dirty: HashSet<String>,
    routes: RouteCache,
    /// Single-session claims to make, in bind order.
    claims: VecDeque<(gatehouse::Sid, String)>,
    resync: bool,
    grace_until: Option<Instant>,
    disconnected_since: Option<Instant>,
    next_connect: Instant,
    backoff: Duration,
    next_heartbeat: Instant,
    next_sweep: Instant,
    zombie: bool,
    ever_connected: bool,
}

impl Tx {
    pub(crate) fn new(
        shared: Arc<Shared>,
        con: Box<dyn Link>,
        ops: Receiver<Op>,
        acks: Receiver<AckIn>,
    ) -> Tx {
        let now = Instant::now();
        let heartbeat = shared.config.heartbeat;
        let sweep = shared.config.sweep;
        let shared_route_ttl = shared.config.route_cache;
        Tx {
            shared,
            con: Some(con),
            ops,
            acks,
            streams: HashMap::new(),
            pending: HashMap::new(),
            next_req: 1,
            batch: Vec::new(),
            parked: VecDeque::new(),
            retry_at: None,
            dirty: HashSet::new(),
            routes: RouteCache::new(shared_route_ttl),
            claims: VecDeque::new(),
            resync: false,
            grace_until: None,
            disconnected_since: None,
            next_connect: now,
            backoff: Duration::from_millis(10),
            next_heartbeat: now + heartbeat,
            next_sweep: now + jitter(sweep),
            zombie: false,
            ever_connected: true,
        }
    }

    /// The directory must be rewritten from the local sessions before anything else.
    pub(crate) fn request_resync(&mut self) {
        self.resync = self.shared.frontend.is_some();
    }

    pub(crate) fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let wait = self
                .next_wake()
                .saturating_duration_since(now)
                .min(Duration::from_millis(100));
            select! {
                recv(self.acks) -> ack => if let Ok(ack) = ack { self.on_ack(ack) },
                recv(self.ops) -> op => if let Ok(op) = op { self.take(op) },
                default(wait) => {}
            }
            while let Ok(ack) = self.acks.try_recv() {
                self.on_ack(ack);
            }
            for _ in 0..TURN_CALLS {
                match self.ops.try_recv() {
                    Ok(op) => self.take(op),
                    Err(_) => break,
                }
            }
            self.turn(Instant::now());
        }
        self.shutdown();
    }

    fn take(&mut self, op: Op) {
        match op {
            Op::Call(call) => self.batch.push(call),
            Op::Directory(uid) => {
                self.dirty.insert(uid);
            }
            Op::Claim(sid, uid) => self.claims.push_back((sid, uid)),
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_heartbeat.min(self.next_sweep);
        if self.con.is_none() {
            wake = wake.min(self.next_connect);
        }
        if let Some(at) = self.retry_at {
            wake = wake.min(at);
        }
        for stream in self.streams.values() {
            if let Some(at) = stream.out.next_timeout() {
                wake = wake.min(at);
            }
        }
        if let Some(call) = self.parked.front() {
            wake = wake.min(call.deadline);
        }
        wake
    }

    fn in_grace(&self, now: Instant) -> bool {
        self.con.is_none() || self.grace_until.is_some_and(|g| now < g)
    }

    /// One turn of work after taking input.
    fn turn(&mut self, now: Instant) {
        if self.shared.check_link.swap(false, Ordering::AcqRel) {
            if let Some(con) = self.con.as_mut() {
                if let Err(e) = con.ping() {
                    self.lost_connection(now, &e);
                }
            }
        }
        if self.con.is_none() && now >= self.next_connect {
            self.reconnect(now);
        }
        // Calls parked earlier go first (order per caller is kept).
        if self.retry_at.is_some_and(|at| now >= at)
            || self.con.is_some() && self.retry_at.is_none()
        {
            self.retry_at = None;
            if !self.parked.is_empty() {
                let mut calls: Vec<Call> = self.parked.drain(..).collect();
                calls.append(&mut self.batch);
                self.batch = calls;
            }
        }
        self.expire_parked(now);
        if !self.parked.is_empty() {
            // New calls queue behind the waiting ones: a later push to a user must never
            // overtake an earlier one that waits (e.g. for the directory after a restart).
            self.park_batch(now);
        }
        if self.con.is_some() {
            if let Err(e) = self.work(now) {
                self.lost_connection(now, &e);
            }
        } else {
            self.park_batch(now);
        }
        self.expire_streams(now);
        self.check_listeners(now);
        if self.con.is_some() && now >= self.next_heartbeat {
            self.next_heartbeat = now + self.shared.config.heartbeat;
            if let Err(e) = self.heartbeat(now) {
                self.lost_connection(now, &e);
            }
        }
        if self.con.is_some() && now >= self.next_sweep {
            self.next_sweep = now + jitter(self.shared.config.sweep);
            if let Some(front) = self.shared.frontend.as_ref() {
                let sessions = &front.sessions;
                let keep = self.shared.config.deadline * 2;
                crate::sync::lock(&front.claims).tidy(|sid| sessions.contains(sid), keep);
            }
            if let Some(con) = self.con.as_mut() {
                match con.reap() {
                    Ok(n) => add(&self.shared.stats.reaped, n as u64),
                    Err(e) => self.lost_connection(now, &e),
                }
            }
        }
    }

    /// Directory updates, routing, framing and publishing for this turn.
    fn work(&mut self, now: Instant) -> Result<(), BusError> {
        if self.resync {
            self.resync_directory()?;
        }
        self.reconcile_directory()?;
        self.run_claims(now)?;
        if !self.batch.is_empty() {
            self.route_batch(now)?;
        }
        self.transmit(now)
    }

    // ---- routing -------------------------------------------------------------------------

    fn route_batch(&mut self, now: Instant) -> Result<(), BusError> {
        let calls = std::mem::take(&mut self.batch);
        // One route script for every uid of the turn the cache cannot answer. Pushes use the
        // cache; kicks, look-ups and retries always ask Redis.
        let mut ask: Vec<&str> = Vec::new();
        let mut cached: HashSet<&str> = HashSet::new();
        for call in &calls {
            match &call.kind {
                CallKind::PushUids { uids, .. } => {
                    for uid in uids {
                        if !call.fresh && self.routes.get(uid, now).is_some() {
                            cached.insert(uid);
                        } else {
                            ask.push(uid);
                        }
                    }
                }
                CallKind::Locate { uids } => ask.extend(uids.iter().map(String::as_str)),
                CallKind::KickUid { uid, .. } | CallKind::GetUid { uid } => ask.push(uid),
                _ => {}
            }
        }
        let needs_frontends = calls
            .iter()
            .any(|c| matches!(c.kind, CallKind::Broadcast { .. }));
        let looked_up = link(&mut self.con).and_then(|con| {
            let routed = if ask.is_empty() {
                Ok(Vec::new())
            } else {
                con.route(&ask)
            };
            routed.and_then(|routed| {
                let live = if needs_frontends {
                    con.live_frontends()?
                } else {
                    Vec::new()
                };
                Ok((routed, live))
            })
        });
        let (routed, live) = match looked_up {
            Ok(found) => found,
            Err(e) => {
                // Nothing of this turn was sent: every call waits for the connection.
                drop((ask, cached));
                self.batch = calls;
                return Err(e);
            }
        };
        let mut holders: HashMap<String, (std::sync::Arc<[Holder]>, bool)> = HashMap::new();
        for (uid, held) in ask.iter().zip(routed) {
            let held: std::sync::Arc<[Holder]> = held.into();
            self.routes.put(uid, &held, now);
            holders.insert(uid.to_string(), (held, false));
        }
        for uid in cached {
            if let Some(held) = self.routes.get(uid, now) {
                holders.insert(uid.to_string(), (held.clone(), true));
            }
        }
        self.forget_old_epochs(holders.values().flat_map(|h| h.0.iter()).chain(&live));
        let grace = self.in_grace(now);
        for call in calls {
            if self.parked.is_empty() {
                self.dispatch(call, &holders, &live, grace, now);
            } else {
                // An earlier call of this turn is waiting: keep the order behind it.
                self.park(call, now);
            }
        }
        Ok(())
    }

    /// Drops idle streams to incarnations the directory has replaced (a frontend restarted).
    fn forget_old_epochs<'h>(&mut self, current: impl Iterator<Item = &'h Holder>) {
        let mut replaced = Vec::new();
        for h in current {
            for (key, stream) in &self.streams {
                if key.0 == h.fid
                    && key.1 != h.epoch
                    && stream.out.is_empty()
                    && stream.writer.is_none()
                {
                    replaced.push(key.clone());
                }
            }
        }
        for key in replaced {
            self.streams.remove(&key);
        }
    }

    /// Turns one call into requests on streams (or outcomes at once).
    fn dispatch(
        &mut self,
        call: Call,
        holders: &HashMap<String, (std::sync::Arc<[Holder]>, bool)>,
        live: &[Holder],
        grace: bool,
        now: Instant,
    ) {
        let of = |uid: &str| holders.get(uid).map(|h| &h.0[..]).unwrap_or(&[]);
        let from_cache = |uid: &str| holders.get(uid).is_some_and(|h| h.1);
        // During the recovery grace an empty directory answer may just mean "not resynced yet".
        let offline_retry = grace
            && match &call.kind {
                CallKind::PushUids { uids, .. } => uids.iter().any(|u| of(u).is_empty()),
                CallKind::KickUid { uid, .. } | CallKind::GetUid { uid } => of(uid).is_empty(),
                CallKind::Broadcast { .. } => live.is_empty(),
                _ => false,
            };
        if offline_retry && now < call.deadline {
            self.park(call, now);
            return;
        }
        let ticket = call.ticket.clone();
        let held = call.held;
        match call.kind {
            CallKind::PushUids { uids, package } => {
                let mut groups: HashMap<(String, u64), (Vec<String>, Vec<bool>)> = HashMap::new();
                for uid in uids {
                    let held = of(&uid);
                    if held.is_empty() {
                        ticket.record([(uid.clone(), String::new(), Outcome::Offline)]);
                    }
                    for h in held {
                        let group = groups.entry((h.fid.clone(), h.epoch)).or_default();
                        group.0.push(uid.clone());
                        group.1.push(from_cache(&uid));
                    }
                }
                for ((fid, epoch), (uids, cached)) in groups {
                    let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
                    let op = frame::Op::PushUids {
                        uids: refs,
                        package: &package,
                    };
                    let op = frame::encode_op(&op);
                    self.request(
                        &ticket,
                        fid,
                        epoch,
                        op,
                        Part::Uids {
                            uids,
                            cached,
                            package: package.clone(),
                        },
                        call.deadline,
                    );
                }
            }
            CallKind::PushSids { groups, package } => {
                for (frontend, epoch, sids) in groups {
                    let op = frame::encode_op(&frame::Op::PushSids {
                        sids: sids.clone(),
                        package: &package,
                    });
                    let part = Part::Sids(sids);
                    self.request(&ticket, frontend, epoch, op, part, call.deadline);
                }
            }
            CallKind::Broadcast {
                bound_only,
                package,
            } => {
                for h in live {
                    let op = frame::encode_op(&frame::Op::Broadcast {
                        bound_only,
                        package: &package,
                    });
                    let (fid, epoch) = (h.fid.clone(), h.epoch);
                    self.request(&ticket, fid, epoch, op, Part::Broadcast, call.deadline);
                }
            }
            CallKind::KickUid { uid, reason } => {
                let held = of(&uid);
                if held.is_empty() {
                    ticket.record([(uid.clone(), String::new(), Outcome::Offline)]);
                }
                for h in held {
                    let op = frame::encode_op(&frame::Op::KickUid {
                        uid: &uid,
                        reason: reason.as_deref(),
                        below_gen: 0,
                    });
                    let part = Part::KickUid(uid.clone());
                    self.request(&ticket, h.fid.clone(), h.epoch, op, part, call.deadline);
                }
            }
            CallKind::GetUid { uid } => {
                for h in of(&uid) {
                    let op = frame::encode_op(&frame::Op::GetUid { uid: &uid });
                    let part = Part::GetUid(uid.clone());
                    self.request(&ticket, h.fid.clone(), h.epoch, op, part, call.deadline);
                }
            }
            CallKind::Locate { uids } => {
                for uid in uids {
                    let held = of(&uid);
                    if held.is_empty() {
                        ticket.record([(uid.clone(), String::new(), Outcome::Offline)]);
                    } else {
                        ticket.record(
                            held.iter()
                                .map(|h| (uid.clone(), h.fid.clone(), Outcome::Delivered)),
                        );
                    }
                }
            }
            CallKind::Session { at, op } => {
                let sid = at.sid.into_raw();
                let op = match &op {
                    SessionOp::Kick(reason) => frame::encode_op(&frame::Op::KickSid {
                        sid,
                        reason: reason.as_deref(),
                    }),
                    SessionOp::Bind(uid) => frame::encode_op(&frame::Op::Bind { sid, uid }),
                    SessionOp::Unbind(uid) => frame::encode_op(&frame::Op::Unbind { sid, uid }),
                    SessionOp::Import(key, value) => {
                        frame::encode_op(&frame::Op::Import { sid, key, value })
                    }
                    SessionOp::ImportAll(settings) => {
                        frame::encode_op(&frame::Op::ImportAll { sid, settings })
                    }
                    SessionOp::Get => frame::encode_op(&frame::Op::GetSid { sid }),
                };
                self.request(
                    &ticket,
                    at.frontend,
                    at.epoch,
                    op,
                    Part::Session(sid),
                    call.deadline,
                );
            }
        }
        finish(&ticket, held);
    }

    fn park(&mut self, call: Call, now: Instant) {
        self.parked.push_back(call);
        let at = now + RETRY;
        self.retry_at = Some(self.retry_at.map_or(at, |r| r.min(at)));
    }

    fn park_batch(&mut self, now: Instant) {
        for call in std::mem::take(&mut self.batch) {
            self.park(call, now);
        }
    }

    /// Calls that waited past their deadline without being sent.
    fn expire_parked(&mut self, now: Instant) {
        let down = self.con.is_none();
        let mut keep = VecDeque::with_capacity(self.parked.len());
        for call in self.parked.drain(..) {
            if now < call.deadline {
                keep.push_back(call);
                continue;
            }
            // Never sent: Redis was down, or the directory never listed the target.
            let outcome = if down {
                Outcome::RedisDown
            } else {
                Outcome::Offline
            };
            call.ticket.record(
                targets(&call.kind)
                    .into_iter()
                    .map(|t| (t, String::new(), outcome)),
            );
            finish(&call.ticket, call.held);
        }
        self.parked = keep;
    }

    /// Adds one request (already encoded op) to the frame being filled for `(fid, epoch)`.
    fn request(
        &mut self,
        ticket: &Arc<Ticket>,
        fid: String,
        epoch: u64,
        op: Result<Vec<u8>, frame::FrameError>,
        part: Part,
        deadline: Instant,
    ) {
        let req = self.new_req();
        ticket.expect(1);
        let pending = Pending {
            ticket: ticket.clone(),
            frontend: fid.clone(),
            epoch,
            deadline,
            part,
        };
        let op = match op {
            Ok(op) => op,
            Err(e) => {
                // The API checks sizes first; this is a uid list too long for one frame.
                log::warn!("cluster: a call does not fit in a frame ({e}); refused");
                ticket.resolve(pending.lost(Outcome::Backpressure), 0, None);
                return;
            }
        };
        let max = self.shared.config.max_frame;
        let batch = self.shared.config.batch_bytes;
        let key = (fid, epoch);
        if !self.streams.contains_key(&key) {
            let stream = self.new_stream(&key.0, epoch);
            self.streams.insert(key.clone(), stream);
        }
        let stream = self.streams.get_mut(&key).expect("inserted");
        // Start a new frame if this one would pass the batch size.
        if let Some((writer, _, _)) = &stream.writer {
            if writer.len() + op.len() > batch.max(writer.len().min(1)) && !writer.is_empty() {
                Self::seal_frame(stream, &mut self.pending);
            }
        }
        if stream.writer.is_none() {
            match DataWriter::new(
                self.shared.tag,
                &self.shared.config.node_id,
                self.shared.epoch,
                epoch,
                max,
            ) {
                Ok(w) => stream.writer = Some((w, Vec::new(), deadline)),
                Err(_) => {
                    ticket.resolve(pending.lost(Outcome::Backpressure), 0, None);
                    return;
                }
            }
        }
        let (writer, reqs, _) = stream.writer.as_mut().expect("writer");
        if writer.push_encoded(req, &op).is_err() {
            // Cannot fit even alone: the package is too large for a frame.
            ticket.resolve(pending.lost(Outcome::Backpressure), 0, None);
            return;
        }
        reqs.push(req);
        self.pending.insert(req, pending);
    }

    fn new_req(&mut self) -> u32 {
        loop {
            let req = self.next_req;
            self.next_req = self.next_req.wrapping_add(1).max(1);
            if !self.pending.contains_key(&req) {
                return req;
            }
        }
    }

    fn new_stream(&self, fid: &str, epoch: u64) -> Stream {
        let c = &self.shared.config;
        Stream {
            frontend: fid.to_string(),
            epoch,
            channel: self.shared.bus.channel(fid),
            out: Outbound::new(Limits {
                max_frames: c.max_unacked_frames,
                max_bytes: c.max_unacked_bytes,
                rto_min: c.retransmit_min,
                rto_max: c.retransmit_max,
            }),
            writer: None,
            reached_through: 0,
            no_listener_since: None,
            retransmits_seen: 0,
        }
    }

    /// Moves the frame being filled into the retransmit buffer (or refuses its requests).
    fn seal_frame(stream: &mut Stream, pending: &mut HashMap<u32, Pending>) {
        let Some((writer, reqs, deadline)) = stream.writer.take() else {
            return;
        };
        if reqs.is_empty() {
            return;
        }
        let bytes = writer.finish();
        if stream.out.push(bytes, reqs.clone(), deadline).is_err() {
            for req in reqs {
                if let Some(p) = pending.remove(&req) {
                    p.ticket.resolve(p.lost(Outcome::Backpressure), 0, None);
                }
            }
        }
    }

    // ---- publishing ----------------------------------------------------------------------

    fn transmit(&mut self, now: Instant) -> Result<(), BusError> {
        // Which frames go out; they are published from the streams' buffers, not copied.
        let mut sent: Vec<((String, u64), u64)> = Vec::new();
        for (key, stream) in self.streams.iter_mut() {
            Self::seal_frame(stream, &mut self.pending);
            stream.out.transmit(now, |seq, _| {
                sent.push((key.clone(), seq));
                true
            });
            let total = stream.out.retransmits();
            add(
                &self.shared.stats.retransmits,
                total - stream.retransmits_seen,
            );
            stream.retransmits_seen = total;
        }
        if sent.is_empty() {
            return Ok(());
        }
        let streams = &self.streams;
        let batch: Vec<(&str, &[u8])> = sent
            .iter()
            .filter_map(|(key, seq)| {
                let stream = streams.get(key)?;
                Some((stream.channel.as_str(), stream.out.frame(*seq)?))
            })
            .collect();
        let receivers = link(&mut self.con)?.publish(&batch)?;
        add(&self.shared.stats.frames_sent, sent.len() as u64);
        for ((key, seq), n) in sent.into_iter().zip(receivers) {
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            if n > 0 {
                stream.reached_through = stream.reached_through.max(seq);
                stream.no_listener_since = None;
                if self.shared.no_ack {
                    // Test knob: trust the receiver count, as plain pub/sub users do.
                    for (_, reqs) in stream.out.on_ack(seq, now) {
                        for req in reqs {
                            if let Some(p) = self.pending.remove(&req) {
                                p.ticket.resolve(p.lost(Outcome::Delivered), 0, None);
                            }
                        }
                    }
                }
            } else {
                bump(&self.shared.stats.no_listener);
                stream.no_listener_since.get_or_insert(now);
            }
        }
        Ok(())
    }

    /// A destination without a subscriber for longer than the grace is down.
    fn check_listeners(&mut self, now: Instant) {
        if self.in_grace(now) {
            return;
        }
        let grace = self.shared.config.listener_grace;
        let down: Vec<(String, u64)> = self
            .streams
            .iter()
            .filter(|(_, s)| {
                s.no_listener_since
                    .is_some_and(|t| now.duration_since(t) >= grace)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in down {
            if let Some(mut stream) = self.streams.remove(&key) {
                log::warn!(
                    "cluster: frontend {} (epoch {:x}) has no subscriber: its {} pending frame(s) fail",
                    stream.frontend,
                    stream.epoch,
                    stream.out.len()
                );
                let reached = stream.reached_through;
                for (seq, reqs) in stream.out.drain() {
                    self.fail(reqs, seq, reached, Outcome::FrontendDown);
                }
            }
        }
    }

    fn expire_streams(&mut self, now: Instant) {
        let never = if self.con.is_none() {
            Outcome::RedisDown
        } else {
            Outcome::FrontendDown
        };
        let mut expired = Vec::new();
        for stream in self.streams.values_mut() {
            // An idle stream is kept: its sequence numbers must go on where they stopped
            // (the receiver would take a restarted stream for duplicates). Streams of
            // incarnations the directory no longer lists are dropped in `forget_old_epochs`.
            let reached = stream.reached_through;
            for (seq, reqs) in stream.out.expire(now) {
                expired.push((reqs, seq, reached));
            }
        }
        for (reqs, seq, reached) in expired {
            self.fail(reqs, seq, reached, never);
        }
    }

    /// Resolves requests of a frame that will never be acknowledged.
    fn fail(&mut self, reqs: Vec<u32>, seq: u64, reached: u64, never_reached: Outcome) {
        let outcome = if seq <= reached {
            Outcome::Unconfirmed
        } else {
            never_reached
        };
        for req in reqs {
            if let Some(p) = self.pending.remove(&req) {
                p.ticket.resolve(p.lost(outcome), 0, None);
            }
        }
    }

    // ---- acknowledgements ----------------------------------------------------------------

    fn on_ack(&mut self, ack: AckIn) {
        bump(&self.shared.stats.acks_received);
        for (req, status, body) in ack.replies {
            if let Some(p) = self.pending.remove(&req) {
                let resolved = reply_outcome(&p, status, body);
                self.settle(p, resolved);
            }
        }
        let now = Instant::now();
        if let Some(stream) = self.streams.get_mut(&(ack.from.clone(), ack.from_epoch)) {
            stream.no_listener_since = None;
            for (_, reqs) in stream.out.on_ack(ack.through, now) {
                // Acknowledged, but its reply was lost (the frontend answered a duplicate
                // from its bounded reply cache and no longer had it): executed once, result
                // unknown.
                for req in reqs {
                    if let Some(p) = self.pending.remove(&req) {
                        p.ticket.resolve(p.lost(Outcome::Unconfirmed), 0, None);
                    }
                }
            }
        }
    }

    /// Resolves a part — except the uids whose route came from the cache and turned out stale
    /// (the frontend no longer has them, or is gone): those are routed again with Redis, once,
    /// under the same ticket and deadline.
    fn settle(&mut self, p: Pending, (mut entries, sessions, reply): Resolved) {
        if let Part::Uids {
            uids,
            cached,
            package,
        } = &p.part
        {
            let stale = |e: &(String, String, Outcome)| {
                matches!(e.2, Outcome::NotFound | Outcome::FrontendDown)
                    && uids.iter().zip(cached).any(|(u, c)| *c && *u == e.0)
            };
            let retry: Vec<String> = entries
                .iter()
                .filter(|e| stale(e))
                .map(|e| e.0.clone())
                .collect();
            if !retry.is_empty() {
                entries.retain(|e| !stale(e));
                for uid in &retry {
                    self.routes.forget(uid);
                }
                // Hold the ticket open until the retry is routed.
                p.ticket.expect(1);
                self.batch.push(Call {
                    kind: CallKind::PushUids {
                        uids: retry,
                        package: package.clone(),
                    },
                    ticket: p.ticket.clone(),
                    deadline: p.deadline,
                    fresh: true,
                    held: true,
                });
            }
        }
        p.ticket.resolve(entries, sessions, reply);
    }

    // ---- directory (frontends) -----------------------------------------------------------

    fn reconcile_directory(&mut self) -> Result<(), BusError> {
        let Some(front) = self.shared.frontend.as_ref() else {
            self.dirty.clear();
            return Ok(());
        };
        if front.link.take_overflow() {
            bump(&self.shared.stats.event_overflows);
            self.resync = true;
        }
        if self.zombie || self.dirty.is_empty() {
            return Ok(());
        }
        if self.resync {
            self.resync_directory()?;
            return Ok(());
        }
        let (fid, epoch) = (&self.shared.config.node_id, self.shared.epoch);
        let single = self.shared.config.single_session.is_some();
        let (mut bind, mut unbind): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for uid in &self.dirty {
            // The local service is the truth; the entry follows whatever it says now, so
            // events arriving in any order still end right.
            let bound = front
                .sessions
                .get_by_uid(uid)
                .is_some_and(|l| !l.is_empty());
            if bound && single {
                // Single session: entries are written by claims only.
            } else if bound {
                bind.push(uid);
            } else {
                unbind.push(uid);
            }
        }
        let con = link(&mut self.con)?;
        con.write_entries(fid, epoch, &bind, &unbind)?;
        self.dirty.clear();
        Ok(())
    }

    /// Single-session mode: claims each newly bound uid cluster-wide (one atomic script each),
    /// kicks the other holders' older sessions, or kicks ours if it lost.
    fn run_claims(&mut self, now: Instant) -> Result<(), BusError> {
        let shared = self.shared.clone();
        let (Some(mode), Some(front)) = (shared.config.single_session, shared.frontend.as_ref())
        else {
            self.claims.clear();
            return Ok(());
        };
        let (fid, epoch) = (&shared.config.node_id, shared.epoch);
        let reason = shared.config.single_session_reason.as_str();
        while let Some((sid, uid)) = self.claims.front().cloned() {
            let still = front
                .sessions
                .get(sid)
                .and_then(|info| info.uid)
                .is_some_and(|u| u.as_str() == uid);
            if !still || self.zombie {
                self.claims.pop_front();
                continue;
            }
            let con = link(&mut self.con)?;
            let claim = con.claim(&uid, fid, epoch, mode)?;
            self.claims.pop_front();
            match claim {
                Claim::Granted { gen, others } => {
                    if !crate::sync::lock(&front.claims).granted(sid, &uid, gen) {
                        log::info!("cluster: {uid}: session {sid} lost a single-session race (claim {gen})");
                        front.sessions.kick_by_session_id(sid, Some(reason));
                    }
                    for h in others {
                        let ticket = Ticket::new();
                        let op = frame::encode_op(&frame::Op::KickUid {
                            uid: &uid,
                            reason: Some(reason),
                            below_gen: gen,
                        });
                        let deadline = now + shared.config.deadline;
                        let part = Part::KickUid(uid.clone());
                        self.request(&ticket, h.fid, h.epoch, op, part, deadline);
                        ticket.seal();
                    }
                }
                Claim::Refused { holders } => {
                    log::info!(
                        "cluster: {uid} is held by {:?}: single session refuses session {sid}",
                        holders.iter().map(|h| h.fid.as_str()).collect::<Vec<_>>()
                    );
                    front.sessions.kick_by_session_id(sid, Some(reason));
                }
            }
        }
        Ok(())
    }

    /// Rewrites this frontend's directory entries from the local truth.
    fn resync_directory(&mut self) -> Result<(), BusError> {
        let Some(front) = self.shared.frontend.as_ref() else {
            self.resync = false;
            return Ok(());
        };
        if self.zombie {
            self.resync = false;
            return Ok(());
        }
        let started = Instant::now();
        let mut local: HashSet<String> = HashSet::new();
        let mut bound: Vec<(gatehouse::Sid, String)> = Vec::new();
        let single = self.shared.config.single_session.is_some();
        front.sessions.for_each_bound_session(|sid, uid| {
            local.insert(uid.as_str().to_string());
            if single {
                bound.push((sid, uid.as_str().to_string()));
            }
        });
        let (fid, epoch) = (&self.shared.config.node_id, self.shared.epoch);
        let con = link(&mut self.con)?;
        let listed = con.listed_uids(fid)?;
        let stale: Vec<&str> = listed
            .iter()
            .filter(|u| !local.contains(*u))
            .map(String::as_str)
            .collect();
        for chunk in stale.chunks(RESYNC_CHUNK) {
            con.write_entries(fid, epoch, &[], chunk)?;
        }
        let local: Vec<String> = local.into_iter().collect();
        if single {
            // Single session: a plain write could list this frontend beside another holder
            // (both would then refuse, or kick, each other's next claim). Each bound session
            // claims its uid instead, in the claim queue's order.
            for claim in bound {
                if !self.claims.contains(&claim) {
                    self.claims.push_back(claim);
                }
            }
        } else {
            let local: Vec<&str> = local.iter().map(String::as_str).collect();
            for chunk in local.chunks(RESYNC_CHUNK) {
                con.write_entries(fid, epoch, chunk, &[])?;
            }
        }
        self.resync = false;
        self.dirty.clear();
        bump(&self.shared.stats.resyncs);
        log::info!(
            "cluster: {fid} resynced its directory: {} uid(s) bound, {} stale removed in {:?}",
            local.len(),
            stale.len(),
            started.elapsed()
        );
        Ok(())
    }

    fn heartbeat(&mut self, _now: Instant) -> Result<(), BusError> {
        if self.shared.frontend.is_none() || self.zombie {
            return Ok(());
        }
        let (fid, epoch) = (&self.shared.config.node_id, self.shared.epoch);
        let ttl = self.shared.config.lease_ttl;
        let con = link(&mut self.con)?;
        match con.heartbeat(fid, epoch, ttl)? {
            Heartbeat::Renewed => Ok(()),
            Heartbeat::Fenced => match con.lease(fid)? {
                Some(other) if other != epoch => {
                    // Another process registered under our id: we are the zombie. Stop
                    // claiming anything; the new incarnation owns the id.
                    self.zombie = true;
                    bump(&self.shared.stats.fenced);
                    log::error!(
                        "cluster: node id {fid} was taken over by another process (epoch {other:x}, ours {epoch:x}); this frontend stops updating the directory"
                    );
                    Ok(())
                }
                _ => {
                    log::warn!(
                        "cluster: {fid}'s lease had expired; registering again and resyncing"
                    );
                    con.register(fid, epoch, ttl)?;
                    self.resync = true;
                    self.resync_directory()
                }
            },
        }
    }

    // ---- connection ----------------------------------------------------------------------

    fn lost_connection(&mut self, now: Instant, e: &BusError) {
        if self.con.take().is_some() {
            log::warn!(
                "cluster: lost redis {} ({e}); reconnecting, calls wait until their deadline",
                redact_url(&self.shared.config.url)
            );
            self.disconnected_since = Some(now);
        }
        // The calls of the failed turn were not sent: they wait for the connection.
        self.park_batch(now);
        self.next_connect = now;
    }

    fn reconnect(&mut self, now: Instant) {
        match connect_and_prepare(&self.shared) {
            Ok(con) => {
                self.con = Some(con);
                self.disconnected_since = None;
                self.backoff = Duration::from_millis(10);
                if self.ever_connected {
                    bump(&self.shared.stats.reconnects);
                }
                self.ever_connected = true;
                self.grace_until = Some(now + self.shared.config.recovery_grace);
                if self.shared.frontend.is_some() && !self.zombie {
                    self.resync = true;
                }
                for stream in self.streams.values_mut() {
                    stream.out.resend_all();
                    stream.no_listener_since = None;
                }
                self.retry_at = Some(now);
                log::info!(
                    "cluster: reconnected to redis {}",
                    redact_url(&self.shared.config.url)
                );
            }
            Err(e) => {
                log::debug!("cluster: redis still unreachable: {e}");
                self.next_connect = now + self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_millis(200));
            }
        }
    }

    fn shutdown(&mut self) {
        let now = Instant::now();
        if self.con.is_some() {
            let _ = self.work(now);
        }
        for (_, p) in self.pending.drain() {
            p.ticket.resolve(p.lost(Outcome::Unconfirmed), 0, None);
        }
        for call in self.parked.drain(..).chain(self.batch.drain(..)) {
            call.ticket.record(
                targets(&call.kind)
                    .into_iter()
                    .map(|t| (t, String::new(), Outcome::Cancelled)),
            );
            finish(&call.ticket, call.held);
        }
        while let Ok(op) = self.ops.try_recv() {
            if let Op::Call(call) = op {
                call.ticket.record(
                    targets(&call.kind)
                        .into_iter()
                        .map(|t| (t, String::new(), Outcome::Cancelled)),
                );
                finish(&call.ticket, call.held);
            }
        }
        if let (Some(con), Some(_)) = (self.con.as_mut(), self.shared.frontend.as_ref()) {
            // A clean stop removes this frontend's entries at once (no wait for the lease).
            let _ = con.deregister(&self.shared.config.node_id, self.shared.epoch);
        }
    }
}

/// The command link; "not connected" is an error like a failed call (the turn's calls wait for
/// the reconnection), never a panic on the bridge thread.
fn link(con: &mut Option<Box<dyn Link>>) -> Result<&mut Box<dyn Link>, BusError> {
    con.as_mut().ok_or_else(|| BusError {
        message: "not connected".into(),
        auth: false,
    })
}

/// Connects, loads the scripts and (frontends) registers the lease.
pub(crate) fn connect_and_prepare(shared: &Shared) -> Result<Box<dyn Link>, BusError> {
    let mut link = shared.bus.connect()?;
    link.prepare()?;
    if shared.frontend.is_some() {
        link.register(
            &shared.config.node_id,
            shared.epoch,
            shared.config.lease_ttl,
        )?;
    }
    Ok(link)
}

/// The targets of a call, for outcomes given without any frontend.
fn targets(kind: &CallKind) -> Vec<String> {
    match kind {
        CallKind::PushUids { uids, .. } | CallKind::Locate { uids } => uids.clone(),
        CallKind::PushSids { groups, .. } => groups
            .iter()
            .flat_map(|g| g.2.iter().map(u64::to_string))
            .collect(),
        CallKind::Broadcast { .. } => vec![String::new()],
        CallKind::KickUid { uid, .. } | CallKind::GetUid { uid } => vec![uid.clone()],
        CallKind::Session { at, .. } => vec![at.sid.to_string()],
    }
}

/// A part's entries, the sessions reached, and (remote session calls) the raw reply.
type Resolved = (Vec<(String, String, Outcome)>, usize, Option<RawReply>);

/// Turns a frontend's reply into outcomes (see `exec.rs` for the bodies).
fn reply_outcome(p: &Pending, status: u8, body: Vec<u8>) -> Resolved {
    let fe = p.frontend.clone();
    let status = Status::from_u8(status);
    let mut sessions = 0usize;
    let entries = match (&p.part, status) {
        (Part::Uids { .. } | Part::Sids(_), Some(Status::Ok)) => {
            let targets: Vec<String> = match &p.part {
                Part::Uids { uids, .. } => uids.clone(),
                Part::Sids(s) => s.iter().map(u64::to_string).collect(),
                _ => Vec::new(),
            };
            if body.len() != 4 + targets.len() {
                log::warn!("cluster: malformed push reply from {fe}");
                return (p.lost(Outcome::Unconfirmed), 0, None);
            }
            sessions = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
            targets
                .into_iter()
                .zip(&body[4..])
                .map(|(t, &b)| {
                    let outcome = match b {
                        crate::exec::DELIVERED => Outcome::Delivered,
                        crate::exec::NOT_FOUND => Outcome::NotFound,
                        _ => Outcome::Backpressure,
                    };
                    (t, fe.clone(), outcome)
                })
                .collect()
        }
        (Part::Broadcast, Some(Status::Ok)) if body.len() == 8 => {
            sessions = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
            let refused = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            let outcome = if refused > 0 {
                Outcome::Backpressure
            } else {
                Outcome::Delivered
            };
            vec![(fe.clone(), fe.clone(), outcome)]
        }
        (Part::KickUid(uid), Some(Status::Ok)) if body.len() == 4 => {
            sessions = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
            let outcome = if sessions > 0 {
                Outcome::Delivered
            } else {
                Outcome::NotFound
            };
            vec![(uid.clone(), fe.clone(), outcome)]
        }
        (Part::Session(_) | Part::GetUid(_), Some(s)) => {
            // Remote session calls: the caller decodes the reply itself.
            let reply = RawReply {
                frontend: fe,
                epoch: p.epoch,
                status: s as u8,
                body,
            };
            return (p.lost(Outcome::Delivered), 0, Some(reply));
        }
        (_, Some(Status::NoSession)) => p.lost(Outcome::NotFound),
        (_, Some(Status::Refused)) if body == frame::RESTARTED_RETRANSMIT => {
            p.lost(Outcome::Unconfirmed)
        }
        (_, Some(Status::Refused)) => p.lost(Outcome::Backpressure),
        _ => {
            log::warn!("cluster: unexpected reply status {status:?} from {fe}");
            p.lost(Outcome::Unconfirmed)
        }
    };
    (entries, sessions, None)
}

/// ±25 % around `d`, so several nodes' sweeps do not line up.
fn jitter(d: Duration) -> Duration {
    let r = crate::node::new_epoch() % 500;
    d * (750 + r as u32) / 1000
}
