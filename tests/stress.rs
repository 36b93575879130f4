//! Multi-threaded stress of the `SessionService`: four worker threads run a random mix of
//! create / bind / unbind / kick / kick_by_session_id / send_message / send_message_by_uid /
//! iteration over a small shared pool of sessions and uids (so operations collide), while a
//! consumer thread drains the shard inboxes like a transport.
//!
//! Every frame carries its intended target (the sid for `send_message`, the uid for
//! `send_message_by_uid`) and a ticket from a global logical clock taken when the send started.
//! The checks, after all threads are joined and the inboxes drained:
//!
//! * a frame sent to a sid is only ever handed to that sid's connection;
//! * a frame sent to a uid only reaches sessions that were bound to that uid at some point;
//! * nothing is delivered after a connection's `Close`: a `Send` that arrives after it must
//!   come from a send that started before the session closed (the transport then drops it as
//!   stale); one started later means the service still routed to a closed sid;
//! * every enqueued send is handed to the transport exactly once (nothing lost or duplicated);
//! * each closed session got exactly one `closed` event and exactly one `Close` command with the
//!   same reason, and the close calls that returned "closed" match the events one to one;
//! * the registry (`for_each_session`), the uid index (`uid_index_entries`) and a model built
//!   from the listener's events agree: every bound live session is in the index under its uid
//!   and nothing else is; per session and uid, `#bound − #unbound` is 1 exactly for the uid it
//!   is bound to now, or was bound to when it closed, and 0 otherwise;
//! * sids are never handed out twice; with `single_session`, no uid ever lists two sessions.
//!
//! The run is bounded by an operation count (150 000 per worker) *and* a wall-clock budget
//! (3 s), whichever comes first, so it stays short on a slow debug build; nothing asserts on
//! timing. The seed is printed and
//! can be replayed with `GATEHOUSE_STRESS_SEED=<n>`.

use gatehouse::{
    BindError, CloseReason, Command, Frame, SendErrorKind, SessionConfig, SessionListener,
    SessionService, SessionSnapshot, Sid, Uid, UidSendError, UnbindError,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock, Weak};
use std::thread;
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
/// Operations per worker thread, at most.
const OPS_PER_WORKER: u64 = 150_000;
/// Wall-clock budget of the random phase (the workers stop at whichever limit comes first).
const BUDGET: Duration = Duration::from_secs(3);
/// Session slots shared by the workers: small, so operations on one session collide.
const POOL: usize = 12;
const UIDS: [&str; 5] = [
    "0",
    "alice",
    "bob",
    "carol",
    "a-rather-long-user-id-that-is-shared",
];
/// Small enough that `InboxFull` and the close-overflow path are exercised too.
const INBOX_CAPACITY: usize = 512;

// === the global logical clock and frame encoding ==============================================

/// Tickets ordering "send started" against "session closed" (SeqCst read-modify-writes on one
/// atomic are totally ordered and consistent with happens-before).
static CLOCK: AtomicU64 = AtomicU64::new(1);

fn tick() -> u64 {
    CLOCK.fetch_add(1, Ordering::SeqCst)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Sid(u64),
    Uid(usize),
}

fn encode(target: Target, ticket: u64) -> Frame {
    let (kind, value) = match target {
        Target::Sid(raw) => (0u8, raw),
        Target::Uid(i) => (1u8, i as u64),
    };
    let mut bytes = Vec::with_capacity(17);
    bytes.push(kind);
    bytes.extend_from_slice(&value.to_le_bytes());
    bytes.extend_from_slice(&ticket.to_le_bytes());
    Frame::new(bytes)
}

fn decode(frame: &Frame) -> Option<(Target, u64)> {
    let b = frame.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let value = u64::from_le_bytes(b[1..9].try_into().ok()?);
    let ticket = u64::from_le_bytes(b[9..17].try_into().ok()?);
    let target = match b[0] {
        0 => Target::Sid(value),
        1 => Target::Uid(usize::try_from(value).ok().filter(|i| *i < UIDS.len())?),
        _ => return None,
    };
    Some((target, ticket))
}

fn uid_index(uid: &str) -> usize {
    UIDS.iter()
        .position(|u| *u == uid)
        .unwrap_or_else(|| panic!("unexpected uid {uid:?}"))
}

// === xorshift =================================================================================

struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so nearby seeds give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn seed() -> u64 {
    let seed = std::env::var("GATEHOUSE_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("stress seed: {seed} (replay with GATEHOUSE_STRESS_SEED={seed})");
    seed
}

// === the listener =============================================================================

#[derive(Debug)]
enum Ev {
    Bound(Sid, String),
    Unbound(Sid, String),
    Closed {
        sid: Sid,
        uid: Option<String>,
        reason: CloseReason,
        ticket: u64,
    },
    Violation(String),
}

struct Recorder {
    events: mpsc::Sender<Ev>,
    service: OnceLock<Weak<SessionService>>,
}

impl Recorder {
    fn record(&self, ev: Ev) {
        let _ = self.events.send(ev);
    }
}

impl SessionListener for Recorder {
    fn bound(&self, sid: Sid, uid: &Uid) {
        self.record(Ev::Bound(sid, uid.to_string()));
    }

    fn unbound(&self, sid: Sid, uid: &Uid) {
        self.record(Ev::Unbound(sid, uid.to_string()));
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        let ticket = tick();
        let sid = session.sid;
        if let Some(service) = self.service.get().and_then(Weak::upgrade) {
            if service.contains(sid) {
                self.record(Ev::Violation(format!(
                    "{sid:?} still live in its closed event"
                )));
            }
            if let Some(uid) = &session.uid {
                if service
                    .get_by_uid(uid.as_str())
                    .is_some_and(|l| l.contains(&sid))
                {
                    self.record(Ev::Violation(format!(
                        "{sid:?} still indexed under {uid:?} in its closed event"
                    )));
                }
            }
        }
        self.record(Ev::Closed {
            sid,
            uid: session.uid.as_ref().map(Uid::to_string),
            reason: reason.clone(),
            ticket,
        });
    }
}

// === the consumer (a transport) ===============================================================

#[derive(Default)]
struct Conn {
    close: Option<CloseReason>,
}

#[derive(Default)]
struct Transport {
    conns: HashMap<Sid, Conn>,
    /// `Send` commands handed over by the inboxes, delivered or not.
    sends: u64,
    delivered: u64,
    /// (sid, target, start ticket of the send) of every `Send` that arrived after its sid's
    /// `Close`.
    after_close: Vec<(Sid, Target, u64)>,
    /// (sid, uid) pairs that received a by-uid frame.
    by_uid: HashSet<(Sid, usize)>,
    closes: HashMap<Sid, CloseReason>,
    violations: Vec<String>,
}

impl Transport {
    fn apply(&mut self, cmd: Command, inbox: &gatehouse::Inbox) {
        match cmd {
            Command::Send { sid, frame } => {
                self.sends += 1;
                let Some((target, ticket)) = decode(&frame) else {
                    self.violations
                        .push(format!("undecodable frame for {sid:?}: {frame:?}"));
                    return;
                };
                let conn = self.conns.entry(sid).or_default();
                if conn.close.is_some() {
                    // The transport contract: drop, count as stale, never deliver.
                    self.after_close.push((sid, target, ticket));
                    inbox.record_stale(1);
                    return;
                }
                self.delivered += 1;
                match target {
                    Target::Sid(raw) if raw != sid.into_raw() => self.violations.push(format!(
                        "frame for sid {raw} reached the connection of {sid:?}"
                    )),
                    Target::Sid(_) => {}
                    Target::Uid(uid) => {
                        self.by_uid.insert((sid, uid));
                    }
                }
            }
            Command::Close { sid, reason } => {
                let conn = self.conns.entry(sid).or_default();
                if conn.close.is_some() {
                    self.violations.push(format!("second Close for {sid:?}"));
                }
                conn.close = Some(reason.clone());
                self.closes.insert(sid, reason);
            }
            other => self
                .violations
                .push(format!("unexpected command {other:?}")),
        }
    }

    fn drain(&mut self, service: &SessionService) -> usize {
        let mut handled = 0;
        for shard in 0..service.config().shard_count() {
            let inbox = service.inbox(shard).unwrap();
            let mut batch = Vec::new();
            handled += inbox.drain(|cmd| batch.push(cmd));
            for cmd in batch {
                if cmd.sid().shard() != shard {
                    self.violations
                        .push(format!("{:?} queued on shard {shard}", cmd.sid()));
                }
                self.apply(cmd, inbox);
            }
        }
        handled
    }
}

// === the workers ==============================================================================

#[derive(Default, Debug)]
struct WorkerReport {
    ops: u64,
    created: Vec<Sid>,
    /// Sends the service accepted (one per session a by-uid send was queued for).
    enqueued: u64,
    refused: u64,
    /// Close calls that returned "closed it" (kick counts, kick_by_session_id trues).
    closed_by_me: u64,
    binds_ok: u64,
    unbinds_ok: u64,
    violations: Vec<String>,
}

fn pick_sid(pool: &[AtomicU64], rng: &mut XorShift) -> Option<Sid> {
    match pool[rng.below(POOL)].load(Ordering::Acquire) {
        0 => None,
        raw => Some(Sid::from_raw(raw)),
    }
}

fn worker(
    service: &SessionService,
    pool: &[AtomicU64],
    seed: u64,
    deadline: Instant,
    single: bool,
) -> WorkerReport {
    let mut rng = XorShift::new(seed);
    let mut r = WorkerReport::default();
    let reasons = ["kicked", "moved", "maintenance"];
    while r.ops < OPS_PER_WORKER && (r.ops % 64 != 0 || Instant::now() < deadline) {
        r.ops += 1;
        let uid_i = rng.below(UIDS.len());
        let uid = UIDS[uid_i];
        match rng.below(100) {
            // create (and sometimes an extra session that only uid operations will reach)
            0..=7 => {
                let sid = service.create(None).expect("capacity is ample");
                // Sids are not ordered by creation (a reused slot's can be smaller); they
                // are unique (checked over all threads at the end) and exact in JavaScript.
                if sid.into_raw() >= 1 << 53 {
                    r.violations.push(format!("sid {sid:?} past 2^53 - 1"));
                }
                r.created.push(sid);
                if service.get(sid).is_none_or(|info| info.uid.is_some()) {
                    r.violations
                        .push(format!("{sid:?} not live and unbound after create"));
                }
                pool[rng.below(POOL)].store(sid.into_raw(), Ordering::Release);
            }
            8..=32 => {
                let Some(sid) = pick_sid(pool, &mut rng) else {
                    continue;
                };
                match service.bind(sid, uid) {
                    Ok(()) => r.binds_ok += 1,
                    Err(BindError::UnknownSession(s)) if s == sid => {}
                    Err(BindError::AlreadyBound(other)) if other != *uid => {}
                    Err(BindError::SingleSession(u)) if single && u == *uid => {}
                    Err(e) => r.violations.push(format!("bind({sid:?}, {uid}): {e:?}")),
                }
            }
            33..=44 => {
                let Some(sid) = pick_sid(pool, &mut rng) else {
                    continue;
                };
                // Mostly the uid it has, sometimes a random one.
                let current = service.get(sid).and_then(|i| i.uid);
                let target = match &current {
                    Some(u) if rng.below(4) != 0 => u.to_string(),
                    _ => uid.to_string(),
                };
                match service.unbind(sid, &target) {
                    Ok(()) => r.unbinds_ok += 1,
                    Err(UnbindError::UnknownSession(s)) if s == sid => {}
                    Err(UnbindError::NotBound { current })
                        if current.as_ref().is_none_or(|c| *c != *target) => {}
                    Err(e) => r
                        .violations
                        .push(format!("unbind({sid:?}, {target}): {e:?}")),
                }
            }
            45..=49 => {
                let reason = (rng.below(3) != 0).then(|| reasons[rng.below(3)]);
                r.closed_by_me += service.kick(uid, reason) as u64;
            }
            50..=57 => {
                let Some(sid) = pick_sid(pool, &mut rng) else {
                    continue;
                };
                let reason = (rng.below(2) == 0).then(|| reasons[rng.below(3)]);
                if service.kick_by_session_id(sid, reason) {
                    r.closed_by_me += 1;
                    // Closed means closed, for everyone, at once.
                    let late = encode(Target::Sid(sid.into_raw()), tick());
                    match service.send_message(sid, late.clone()) {
                        Err(e) if e.kind == SendErrorKind::UnknownSession && e.frame == late => {}
                        other => r
                            .violations
                            .push(format!("send to {sid:?} right after its kick: {other:?}")),
                    }
                    if service.get(sid).is_some() || service.kick_by_session_id(sid, None) {
                        r.violations
                            .push(format!("{sid:?} still live after its kick"));
                    }
                }
            }
            58..=77 => {
                let Some(sid) = pick_sid(pool, &mut rng) else {
                    continue;
                };
                let frame = encode(Target::Sid(sid.into_raw()), tick());
                match service.send_message(sid, frame.clone()) {
                    Ok(()) => r.enqueued += 1,
                    Err(e) if e.frame != frame => r
                        .violations
                        .push(format!("send_message handed back another frame: {e:?}")),
                    Err(e) if e.kind == SendErrorKind::InboxFull => r.refused += 1,
                    Err(_) => {}
                }
            }
            78..=95 => {
                let frame = encode(Target::Uid(uid_i), tick());
                match service.send_message_by_uid(uid, &frame) {
                    Ok(n) => {
                        r.enqueued += n as u64;
                        if n == 0 || (single && n > 1) {
                            r.violations
                                .push(format!("send_message_by_uid({uid}) = Ok({n})"));
                        }
                    }
                    Err(UidSendError::InboxFull { enqueued, refused }) => {
                        r.enqueued += enqueued as u64;
                        r.refused += refused as u64;
                    }
                    Err(_) => {}
                }
            }
            96..=97 => {
                if let Some(list) = service.get_by_uid(uid) {
                    let distinct: HashSet<Sid> = list.iter().copied().collect();
                    if list.is_empty() || distinct.len() != list.len() || (single && list.len() > 1)
                    {
                        r.violations.push(format!("get_by_uid({uid}) = {list:?}"));
                    }
                }
            }
            _ => {
                // A walk visits a sid at most once (each slot once), and only real uids.
                let mut seen = HashSet::new();
                let mut bad = Vec::new();
                if rng.below(2) == 0 {
                    service.for_each_bound_session(|sid, u| {
                        if !seen.insert(sid) || !UIDS.contains(&u.as_str()) {
                            bad.push(format!("bound walk: {sid:?} {u:?}"));
                        }
                    });
                } else {
                    service.for_each_session(|sid, u| {
                        if !seen.insert(sid) || u.is_some_and(|u| !UIDS.contains(&u.as_str())) {
                            bad.push(format!("walk: {sid:?} {u:?}"));
                        }
                    });
                }
                r.violations.extend(bad);
            }
        }
    }
    r
}

// === the run and the final checks =============================================================

fn run(single: bool) {
    let seed = seed();
    let (tx, rx) = mpsc::channel();
    let recorder = Arc::new(Recorder {
        events: tx,
        service: OnceLock::new(),
    });
    let config = SessionConfig::default()
        .shards(2)
        .single_session(single)
        .inbox_capacity(INBOX_CAPACITY);
    let service = Arc::new(SessionService::with_listener(config, recorder.clone()).unwrap());
    recorder.service.set(Arc::downgrade(&service)).unwrap();
    let pool: Arc<Vec<AtomicU64>> = Arc::new((0..POOL).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + BUDGET;

    let consumer = {
        let service = service.clone();
        let stop = stop.clone();
        thread::spawn(move || {
            let mut transport = Transport::default();
            loop {
                // Read the flag before draining: once it is set the workers are joined, so this
                // last drain sees every command.
                let last = stop.load(Ordering::Acquire);
                if transport.drain(&service) == 0 {
                    if last {
                        break;
                    }
                    thread::yield_now();
                }
            }
            transport
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let service = service.clone();
            let pool = pool.clone();
            let seed = seed.wrapping_add(i as u64 * 0x1000_0001);
            thread::spawn(move || worker(&service, &pool, seed, deadline, single))
        })
        .collect();
    let reports: Vec<WorkerReport> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Release);
    let transport = consumer.join().unwrap();
    let events: Vec<Ev> = rx.try_iter().collect();

    let ops: u64 = reports.iter().map(|r| r.ops).sum();
    eprintln!(
        "single_session={single}: {ops} ops in {:?}, {} sessions, {} events, {} sends handed over \
         ({} delivered, {} after close), binds ok {}, unbinds ok {}, closes {}, refused {}",
        started.elapsed(),
        reports.iter().map(|r| r.created.len()).sum::<usize>(),
        events.len(),
        transport.sends,
        transport.delivered,
        transport.after_close.len(),
        reports.iter().map(|r| r.binds_ok).sum::<u64>(),
        reports.iter().map(|r| r.unbinds_ok).sum::<u64>(),
        reports.iter().map(|r| r.closed_by_me).sum::<u64>(),
        reports.iter().map(|r| r.refused).sum::<u64>(),
    );

    let mut violations: Vec<String> = Vec::new();
    for r in &reports {
        violations.extend(r.violations.iter().cloned());
    }
    violations.extend(transport.violations.iter().cloned());

    // --- the model built from the events ---
    // (sid, uid) -> #bound - #unbound
    let mut balance: HashMap<(Sid, String), i64> = HashMap::new();
    let mut bound_ever: HashSet<(Sid, usize)> = HashSet::new();
    let mut closed: HashMap<Sid, (Option<String>, CloseReason, u64)> = HashMap::new();
    for ev in &events {
        match ev {
            Ev::Bound(sid, uid) => {
                *balance.entry((*sid, uid.clone())).or_default() += 1;
                bound_ever.insert((*sid, uid_index(uid)));
            }
            Ev::Unbound(sid, uid) => *balance.entry((*sid, uid.clone())).or_default() -= 1,
            Ev::Closed {
                sid,
                uid,
                reason,
                ticket,
            } => {
                if closed
                    .insert(*sid, (uid.clone(), reason.clone(), *ticket))
                    .is_some()
                {
                    violations.push(format!("second closed event for {sid:?}"));
                }
            }
            Ev::Violation(v) => violations.push(v.clone()),
        }
    }

    // --- sids ---
    let created: Vec<Sid> = reports
        .iter()
        .flat_map(|r| r.created.iter().copied())
        .collect();
    let created_set: HashSet<Sid> = created.iter().copied().collect();
    assert_eq!(
        created_set.len(),
        created.len(),
        "a sid was handed out twice"
    );

    // --- registry ---
    let mut registry: HashMap<Sid, Option<String>> = HashMap::new();
    service.for_each_session(|sid, uid| {
        if registry.insert(sid, uid.map(Uid::to_string)).is_some() {
            violations.push(format!("quiescent walk visited {sid:?} twice"));
        }
    });
    assert_eq!(registry.len(), service.sessions_count());
    let mut bound_walk = 0;
    service.for_each_bound_session(|sid, uid| {
        bound_walk += 1;
        if registry.get(&sid) != Some(&Some(uid.to_string())) {
            violations.push(format!("bound walk disagrees on {sid:?} {uid:?}"));
        }
    });
    assert_eq!(
        bound_walk,
        registry.values().filter(|u| u.is_some()).count()
    );

    // Every created session is either live or closed (exactly one closed event), never both.
    for sid in &created {
        match (registry.contains_key(sid), closed.contains_key(sid)) {
            (true, false) | (false, true) => {}
            (true, true) => violations.push(format!("{sid:?} live but got a closed event")),
            (false, false) => violations.push(format!("{sid:?} vanished without a closed event")),
        }
    }
    for sid in registry.keys().chain(closed.keys()) {
        if !created_set.contains(sid) {
            violations.push(format!("{sid:?} was never created"));
        }
    }
    let closed_by_calls: u64 = reports.iter().map(|r| r.closed_by_me).sum();
    assert_eq!(
        closed_by_calls,
        closed.len() as u64,
        "close calls that reported a close vs closed events"
    );

    // --- index vs registry ---
    let mut indexed: HashMap<Sid, String> = HashMap::new();
    for (uid, sids) in service.uid_index_entries() {
        if sids.is_empty() {
            violations.push(format!("empty index entry for {uid:?}"));
        }
        if single && sids.len() > 1 {
            violations.push(format!("single_session, but {uid:?} lists {sids:?}"));
        }
        for sid in sids {
            if let Some(other) = indexed.insert(sid, uid.to_string()) {
                violations.push(format!("{sid:?} indexed under {other:?} and {uid:?}"));
            }
        }
    }
    for (sid, uid) in &registry {
        if indexed.get(sid) != uid.as_ref() {
            violations.push(format!(
                "{sid:?}: registry says {uid:?}, index says {:?}",
                indexed.get(sid)
            ));
        }
    }
    for (sid, uid) in &indexed {
        if !registry.contains_key(sid) {
            violations.push(format!("closed {sid:?} still indexed under {uid:?}"));
        }
    }
    assert_eq!(
        service.bound_uids_count(),
        indexed.values().collect::<HashSet<_>>().len()
    );

    // --- events vs final state ---
    let mut expected_uid: HashMap<Sid, String> = HashMap::new();
    for (sid, uid) in &registry {
        if let Some(uid) = uid {
            expected_uid.insert(*sid, uid.clone());
        }
    }
    for (sid, (uid, _, _)) in &closed {
        if let Some(uid) = uid {
            expected_uid.insert(*sid, uid.clone());
        }
    }
    for ((sid, uid), n) in &balance {
        let want = i64::from(expected_uid.get(sid) == Some(uid));
        if *n != want {
            violations.push(format!(
                "{sid:?} {uid:?}: #bound - #unbound = {n}, expected {want} (bound to {:?})",
                expected_uid.get(sid)
            ));
        }
    }
    for (sid, uid) in &expected_uid {
        if !balance.contains_key(&(*sid, uid.clone())) {
            violations.push(format!("{sid:?} bound to {uid:?} without a bound event"));
        }
    }

    // --- transport view ---
    let enqueued: u64 = reports.iter().map(|r| r.enqueued).sum();
    assert_eq!(
        transport.sends, enqueued,
        "every accepted send is handed to the transport exactly once"
    );
    for (sid, uid) in &transport.by_uid {
        if !bound_ever.contains(&(*sid, *uid)) {
            violations.push(format!(
                "a frame for uid {:?} reached {sid:?}, never bound to it",
                UIDS[*uid]
            ));
        }
    }
    for (sid, target, ticket) in &transport.after_close {
        match closed.get(sid) {
            Some((_, _, closed_at)) if ticket < closed_at => {}
            other => violations.push(format!(
                "a send to {target:?} started at {ticket} was routed to {sid:?} after it \
                 closed ({other:?})"
            )),
        }
    }
    let stale: u64 = (0..2).map(|s| service.inbox(s).unwrap().stale()).sum();
    assert_eq!(stale, transport.after_close.len() as u64);
    for (sid, (_, reason, _)) in &closed {
        match transport.closes.get(sid) {
            Some(r) if r == reason => {}
            other => violations.push(format!(
                "{sid:?} closed with {reason:?}, transport got {other:?}"
            )),
        }
    }
    for sid in transport.closes.keys() {
        if !closed.contains_key(sid) {
            violations.push(format!("Close for {sid:?}, which never closed"));
        }
    }

    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violation(s):\n{}",
        violations.len(),
        violations
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn stress_multi_session() {
    run(false);
}

#[test]
fn stress_single_session() {
    run(true);
}
