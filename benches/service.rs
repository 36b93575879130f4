//! The session core's hot paths, each beside the obvious design in the same criterion group.
//!
//! `gatehouse` is [`SessionService`] with two shards (this machine's core count, also the
//! default here) and default index sharding. `rwlock_hashmap` is what a straightforward port
//! of pomelo's `SessionService` would be (see [`baseline`]): one `RwLock<HashMap<String,
//! Vec<u64>>>` uid map, one `RwLock<HashMap<u64, Session>>` session map and one bounded
//! `Mutex<VecDeque>` outbound queue, with parking_lot locks (the same lock implementation
//! gatehouse uses) and std's default hasher. Both push a reference-counted frame (`Frame` /
//! `Arc<[u8]>`), so fan-out copies no payload on either side, and both refuse a push when their
//! queue is full.
//!
//! # What is timed
//!
//! Sends fill the outbound queues, which a transport would drain on its I/O thread. Here the
//! benchmarks that send run `iter_custom`: calls are timed in batches of [`BATCH`] and the
//! queues are drained **between** batches, outside the timed region (the drain is the
//! consumer's cost, not the caller's). Every send benchmark checks afterwards that no push was
//! refused, so no timed call took the cheap "queue full" exit. Per-call benchmarks report
//! nanoseconds per call; `for_each_bound_session` and `broadcast_enqueue` set
//! `Throughput::Elements(sessions)` so criterion also reports the rate per session (divide the
//! time by the session count for ns/session).
//!
//! Lookups by uid use keys pre-shuffled with a fixed xorshift seed and laid out contiguously
//! in that order, so reading the next key is a sequential stream and the random access is the
//! service's own.
//!
//! Run: `cargo bench --bench service` (under a minute with the short config below, plus the build). Numbers on a
//! shared 2-core VM drift ±30 % between runs: compare the two rows of a group from one run.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use gatehouse::__private::XorShift;
use gatehouse::{Frame, SessionConfig, SessionInfo, SessionService, Sid, Uid};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Outbound commands one gatehouse shard queues (the baseline's single queue gets twice this,
/// the same total). Big enough for a whole 10 000-session broadcast (5 000 per shard) between
/// drains, and no bigger: an `ArrayQueue` producer walks the whole ring, so an oversized ring
/// (the default 65 536 slots × 56 bytes = 3.6 MiB per shard) is streamed through the caches.
const INBOX: usize = 1 << 13;
/// Calls per timed batch; queues are drained between batches. 2 048 calls × ≤ 3 sessions stay
/// below [`INBOX`] even if every session were on one shard.
const BATCH: u64 = 2048;
/// Sends per thread per round in the 2-thread benchmark (2 × 4 096 commands per round, spread
/// over both shards).
const ROUND: u64 = 4096;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

// === helpers =====================================================================================

/// The `i`-th user id: 9 decimal digits, like a game account id (inline in gatehouse's `Uid`,
/// a heap `String` in the baseline).
fn uid_of(i: usize) -> String {
    format!("{}", 100_000_000 + i)
}

fn remote_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40_000))
}

/// A pushed message as the connector would encode it: a pomelo DATA package carrying a PUSH.
fn push_bytes() -> Vec<u8> {
    let mut bytes = b"\x04\x00\x00\x2a\x06\x06onChat".to_vec();
    bytes.extend_from_slice(br#"{"from":"10086","text":"hello, world"}"#);
    bytes
}

/// All uids in a shuffled order, concatenated into one buffer in that order (leaked: a few
/// hundred KiB per benchmark, so the slices can live as long as the lazily built state).
fn shuffled_keys(uids: &[String], seed: u64) -> Vec<&'static str> {
    let mut order: Vec<usize> = (0..uids.len()).collect();
    XorShift::new(seed).shuffle(&mut order);
    let arena: &'static str = order
        .iter()
        .map(|&i| uids[i].as_str())
        .collect::<String>()
        .leak();
    let mut rest = arena;
    order
        .iter()
        .map(|&i| {
            let (key, tail) = rest.split_at(uids[i].len());
            rest = tail;
            key
        })
        .collect()
}

/// Runs `op` `iters` times in batches of `batch`, timing only the calls; `between` runs after
/// each batch, untimed (it drains the queues).
fn timed_batches(
    iters: u64,
    batch: u64,
    mut op: impl FnMut(),
    mut between: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(batch);
        let start = Instant::now();
        for _ in 0..n {
            op();
        }
        total += start.elapsed();
        between();
        left -= n;
    }
    total
}

/// The next item of a cyclic walk over `items`.
fn cycle<'a, T>(items: &'a [T], cursor: &mut usize) -> &'a T {
    let item = &items[*cursor];
    *cursor += 1;
    if *cursor == items.len() {
        *cursor = 0;
    }
    item
}

// === the two implementations behind one interface ================================================

/// What the benchmarks drive; both implementations are monomorphised and inlined, so the
/// trait adds nothing at run time.
trait Api: Sync + Sized {
    const NAME: &'static str;
    type Sid: Copy + Send + Sync;
    type Frame: Clone + Send + Sync;
    type UidRef: ?Sized;
    type Info;
    fn new() -> Self;
    fn frame(bytes: Vec<u8>) -> Self::Frame;
    fn create(&self, remote: SocketAddr) -> Self::Sid;
    fn bind(&self, sid: Self::Sid, uid: &str);
    fn unbind(&self, sid: Self::Sid, uid: &str);
    fn get(&self, sid: Self::Sid) -> Option<Self::Info>;
    fn send_message(&self, sid: Self::Sid, frame: Self::Frame) -> bool;
    fn send_message_by_uid(&self, uid: &str, frame: &Self::Frame) -> usize;
    fn for_each_bound_session(&self, f: impl FnMut(Self::Sid, &Self::UidRef));
    /// Drains the outbound queue(s), dropping the frames; returns how many commands it took.
    fn drain(&self) -> usize;
    /// Pushes refused because a queue was full, so far.
    fn refused(&self) -> u64;
}

struct Gatehouse(SessionService);

impl Api for Gatehouse {
    const NAME: &'static str = "gatehouse";
    type Sid = Sid;
    type Frame = Frame;
    type UidRef = Uid;
    type Info = SessionInfo;

    fn new() -> Self {
        let config = SessionConfig::default().shards(2).inbox_capacity(INBOX);
        Gatehouse(SessionService::new(config).unwrap())
    }
    fn frame(bytes: Vec<u8>) -> Frame {
        Frame::new(bytes)
    }
    fn create(&self, remote: SocketAddr) -> Sid {
        self.0.create(Some(remote)).unwrap()
    }
    #[inline]
    fn bind(&self, sid: Sid, uid: &str) {
        self.0.bind(sid, uid).unwrap();
    }
    #[inline]
    fn unbind(&self, sid: Sid, uid: &str) {
        self.0.unbind(sid, uid).unwrap();
    }
    #[inline]
    fn get(&self, sid: Sid) -> Option<SessionInfo> {
        self.0.get(sid)
    }
    #[inline]
    fn send_message(&self, sid: Sid, frame: Frame) -> bool {
        self.0.send_message(sid, frame).is_ok()
    }
    #[inline]
    fn send_message_by_uid(&self, uid: &str, frame: &Frame) -> usize {
        self.0.send_message_by_uid(uid, frame).unwrap_or(0)
    }
    #[inline]
    fn for_each_bound_session(&self, f: impl FnMut(Sid, &Uid)) {
        self.0.for_each_bound_session(f);
    }
    fn drain(&self) -> usize {
        (0..self.0.config().shard_count())
            .map(|shard| self.0.inbox(shard).unwrap().drain(drop))
            .sum()
    }
    fn refused(&self) -> u64 {
        (0..self.0.config().shard_count())
            .map(|shard| self.0.inbox(shard).unwrap().refused())
            .sum()
    }
}

/// The obvious design: what a straightforward Rust port of pomelo's `SessionService` does.
#[allow(clippy::disallowed_types)] // deliberately not gatehouse's lock shim: this is the baseline
mod baseline {
    use parking_lot::{Mutex, RwLock};
    use serde_json::{Map, Value};
    use std::collections::{HashMap, VecDeque};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// pomelo's session, as a plain struct.
    pub(crate) struct Session {
        pub(crate) id: u64,
        pub(crate) uid: Option<String>,
        #[allow(dead_code)] // carried like pomelo's session carries it
        pub(crate) frontend_id: Arc<str>,
        #[allow(dead_code)]
        pub(crate) settings: Map<String, Value>,
        pub(crate) remote: Option<SocketAddr>,
    }

    /// The hot fields of a session, copied out (gatehouse's `SessionInfo`).
    #[allow(dead_code)] // read through black_box only
    pub(crate) struct Info {
        pub(crate) sid: u64,
        pub(crate) uid: Option<String>,
        pub(crate) remote: Option<SocketAddr>,
    }

    pub(crate) struct Baseline {
        uids: RwLock<HashMap<String, Vec<u64>>>,
        sessions: RwLock<HashMap<u64, Session>>,
        queue: Mutex<VecDeque<(u64, Arc<[u8]>)>>,
        capacity: usize,
        next_sid: AtomicU64,
        refused: AtomicU64,
        frontend_id: Arc<str>,
    }

    impl Baseline {
        pub(crate) fn new(capacity: usize) -> Baseline {
            Baseline {
                uids: RwLock::new(HashMap::new()),
                sessions: RwLock::new(HashMap::new()),
                queue: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
                next_sid: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                frontend_id: Arc::from("connector-server-1"),
            }
        }

        pub(crate) fn create(&self, remote: Option<SocketAddr>) -> u64 {
            let id = self.next_sid.fetch_add(1, Ordering::Relaxed) + 1;
            let session = Session {
                id,
                uid: None,
                frontend_id: self.frontend_id.clone(),
                settings: Map::new(),
                remote,
            };
            self.sessions.write().insert(id, session);
            id
        }

        pub(crate) fn bind(&self, sid: u64, uid: &str) -> Result<(), ()> {
            {
                let mut sessions = self.sessions.write();
                let session = sessions.get_mut(&sid).ok_or(())?;
                match &session.uid {
                    Some(current) if current == uid => return Ok(()),
                    Some(_) => return Err(()),
                    None => session.uid = Some(uid.to_owned()),
                }
            }
            self.uids
                .write()
                .entry(uid.to_owned())
                .or_default()
                .push(sid);
            Ok(())
        }

        pub(crate) fn unbind(&self, sid: u64, uid: &str) -> Result<(), ()> {
            {
                let mut sessions = self.sessions.write();
                let session = sessions.get_mut(&sid).ok_or(())?;
                if session.uid.as_deref() != Some(uid) {
                    return Err(());
                }
                session.uid = None;
            }
            let mut uids = self.uids.write();
            if let Some(sids) = uids.get_mut(uid) {
                sids.retain(|s| *s != sid);
                if sids.is_empty() {
                    uids.remove(uid);
                }
            }
            Ok(())
        }

        pub(crate) fn get(&self, sid: u64) -> Option<Info> {
            self.sessions.read().get(&sid).map(|s| Info {
                sid: s.id,
                uid: s.uid.clone(),
                remote: s.remote,
            })
        }

        fn push(&self, sid: u64, frame: Arc<[u8]>) -> Result<(), Arc<[u8]>> {
            let mut queue = self.queue.lock();
            if queue.len() >= self.capacity {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(frame);
            }
            queue.push_back((sid, frame));
            Ok(())
        }

        pub(crate) fn send_message(&self, sid: u64, frame: Arc<[u8]>) -> Result<(), Arc<[u8]>> {
            if !self.sessions.read().contains_key(&sid) {
                return Err(frame);
            }
            self.push(sid, frame)
        }

        /// Like gatehouse, pushes to every listed sid without a per-sid session lookup (pomelo
        /// would look each session up; skipping it favours the baseline).
        pub(crate) fn send_message_by_uid(&self, uid: &str, frame: &Arc<[u8]>) -> Option<usize> {
            let uids = self.uids.read();
            let sids = uids.get(uid)?;
            Some(
                sids.iter()
                    .filter(|&&sid| self.push(sid, frame.clone()).is_ok())
                    .count(),
            )
        }

        /// Holds the session map's read lock while `f` runs (so a broadcast's `send_message`
        /// takes it again, recursively; fine with no writer waiting, as here).
        pub(crate) fn for_each_bound_session(&self, mut f: impl FnMut(u64, &str)) {
            for session in self.sessions.read().values() {
                if let Some(uid) = &session.uid {
                    f(session.id, uid);
                }
            }
        }

        pub(crate) fn drain(&self) -> usize {
            let mut queue = self.queue.lock();
            let n = queue.len();
            queue.clear();
            n
        }

        pub(crate) fn refused(&self) -> u64 {
            self.refused.load(Ordering::Relaxed)
        }
    }
}

struct RwLockHashMap(baseline::Baseline);

impl Api for RwLockHashMap {
    const NAME: &'static str = "rwlock_hashmap";
    type Sid = u64;
    type Frame = Arc<[u8]>;
    type UidRef = str;
    type Info = baseline::Info;

    fn new() -> Self {
        RwLockHashMap(baseline::Baseline::new(2 * INBOX))
    }
    fn frame(bytes: Vec<u8>) -> Arc<[u8]> {
        Arc::from(bytes)
    }
    fn create(&self, remote: SocketAddr) -> u64 {
        self.0.create(Some(remote))
    }
    #[inline]
    fn bind(&self, sid: u64, uid: &str) {
        self.0.bind(sid, uid).unwrap();
    }
    #[inline]
    fn unbind(&self, sid: u64, uid: &str) {
        self.0.unbind(sid, uid).unwrap();
    }
    #[inline]
    fn get(&self, sid: u64) -> Option<baseline::Info> {
        self.0.get(sid)
    }
    #[inline]
    fn send_message(&self, sid: u64, frame: Arc<[u8]>) -> bool {
        self.0.send_message(sid, frame).is_ok()
    }
    #[inline]
    fn send_message_by_uid(&self, uid: &str, frame: &Arc<[u8]>) -> usize {
        self.0.send_message_by_uid(uid, frame).unwrap_or(0)
    }
    #[inline]
    fn for_each_bound_session(&self, f: impl FnMut(u64, &str)) {
        self.0.for_each_bound_session(f);
    }
    fn drain(&self) -> usize {
        self.0.drain()
    }
    fn refused(&self) -> u64 {
        self.0.refused()
    }
}

/// A service with `users` sessions, session `i` bound to `uid_of(i)`.
struct World<A: Api> {
    api: A,
    uids: Vec<String>,
    sids: Vec<A::Sid>,
}

impl<A: Api> World<A> {
    fn new(users: usize) -> World<A> {
        let api = A::new();
        let uids: Vec<String> = (0..users).map(uid_of).collect();
        let sids = uids
            .iter()
            .enumerate()
            .map(|(i, uid)| {
                let sid = api.create(remote_of(i));
                api.bind(sid, uid);
                sid
            })
            .collect();
        World { api, uids, sids }
    }

    /// Panics if any push was refused or anything is left queued: no timed send may have taken
    /// the "queue full" exit.
    fn check_no_refusals(&self) {
        assert_eq!(self.api.drain(), 0, "{}: queue not drained", A::NAME);
        assert_eq!(
            self.api.refused(),
            0,
            "{}: a timed push was refused",
            A::NAME
        );
    }
}

// === benchmarks ==================================================================================
//
// Each benchmark builds its state lazily, inside the criterion closure, so a filtered run
// (`cargo bench --bench service -- get/`) only builds what it measures.

/// `send_message_by_uid` to uids with one session each, in a pre-shuffled random order.
fn send_by_uid<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let (w, keys, frame, cursor) = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            let keys = shuffled_keys(&w.uids, SEED);
            let frame = A::frame(push_bytes());
            assert_eq!(w.api.send_message_by_uid(keys[0], &frame), 1);
            w.api.drain();
            (w, keys, frame, 0)
        });
        b.iter_custom(|iters| {
            timed_batches(
                iters,
                BATCH,
                || {
                    let uid = *cycle(keys, cursor);
                    black_box(w.api.send_message_by_uid(black_box(uid), frame));
                },
                || {
                    w.api.drain();
                },
            )
        });
    });
    if let Some((w, ..)) = &state {
        w.check_no_refusals();
    }
}

/// `send_message_by_uid` to one uid with three sessions, `users` other users bound.
fn send_by_uid_3_sessions<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    const TRIO: &str = "trio-player";
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let (w, frame) = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            for i in 0..3 {
                let sid = w.api.create(remote_of(users + i));
                w.api.bind(sid, TRIO);
            }
            let frame = A::frame(push_bytes());
            assert_eq!(w.api.send_message_by_uid(TRIO, &frame), 3);
            w.api.drain();
            (w, frame)
        });
        b.iter_custom(|iters| {
            timed_batches(
                iters,
                BATCH,
                || {
                    black_box(w.api.send_message_by_uid(black_box(TRIO), frame));
                },
                || {
                    w.api.drain();
                },
            )
        });
    });
    if let Some((w, _)) = &state {
        w.check_no_refusals();
    }
}

/// One bound-session visit: what the `for_each_bound_session` callback does in the benchmark.
fn pass<A: Api>(api: &A) -> usize {
    let mut n = 0usize;
    api.for_each_bound_session(|sid, uid| {
        black_box((sid, uid));
        n += 1;
    });
    n
}

/// One full `for_each_bound_session` pass over `users` bound sessions.
fn for_each_bound<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let w = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            assert_eq!(pass(&w.api), users);
            w
        });
        b.iter(|| pass(&w.api));
    });
}

/// Broadcast to every bound session: `for_each_bound_session` + `send_message(sid, clone)`.
fn broadcast_once<A: Api>(api: &A, frame: &A::Frame) -> usize {
    let mut sent = 0usize;
    api.for_each_bound_session(|sid, _| {
        sent += usize::from(api.send_message(sid, frame.clone()));
    });
    sent
}

/// One iteration is a whole broadcast to `users` sessions; the queues are drained after each,
/// untimed.
fn broadcast<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let (w, frame) = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            let frame = A::frame(push_bytes());
            assert_eq!(broadcast_once(&w.api, &frame), users);
            assert_eq!(w.api.drain(), users);
            (w, frame)
        });
        b.iter_custom(|iters| {
            timed_batches(
                iters,
                1,
                || {
                    black_box(broadcast_once(&w.api, frame));
                },
                || {
                    w.api.drain();
                },
            )
        });
    });
    if let Some((w, _)) = &state {
        w.check_no_refusals();
    }
}

/// The same broadcast with gatehouse's batched [`SessionService::broadcast`]: one walk per
/// shard, pushes under its read lock, one wake-up per shard (row `gatehouse_broadcast`).
fn broadcast_batched(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(
        BenchmarkId::new("gatehouse_broadcast", users),
        &users,
        |b, _| {
            let (w, frame) = state.get_or_insert_with(|| {
                let w = World::<Gatehouse>::new(users);
                let frame = Frame::new(push_bytes());
                assert_eq!(w.api.0.broadcast(&frame), Ok(users));
                assert_eq!(w.api.drain(), users);
                (w, frame)
            });
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    1,
                    || {
                        black_box(w.api.0.broadcast(frame).unwrap_or(0));
                    },
                    || {
                        w.api.drain();
                    },
                )
            });
        },
    );
    if let Some((w, _)) = &state {
        w.check_no_refusals();
    }
}

/// `bind` of a fresh uid then `unbind`, on one session, with `users` other users bound.
fn bind_unbind<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let (w, sid, fresh, cursor) = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            let sid = w.api.create(remote_of(users));
            let fresh: Vec<String> = (0..1024).map(|i| uid_of(users + 1 + i)).collect();
            (w, sid, fresh, 0)
        });
        b.iter(|| {
            let uid = cycle(fresh, cursor).as_str();
            w.api.bind(*sid, black_box(uid));
            w.api.unbind(*sid, uid);
        });
    });
}

/// `get` of sessions in a pre-shuffled random order.
fn get<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let (w, order, cursor) = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            let mut order = w.sids.clone();
            XorShift::new(SEED ^ 0x5EED).shuffle(&mut order);
            assert!(w.api.get(order[0]).is_some());
            (w, order, 0)
        });
        b.iter(|| w.api.get(black_box(*cycle(order, cursor))));
    });
}

/// Two threads calling `send_message_by_uid` at once, each over its own shuffled order of the
/// same `users` uids. One iteration is one send (of either thread), so the time reported is
/// wall-clock per message with two producers. Only the parallel section is timed: each round
/// both threads start on a `Barrier`, each records its own start and end, and the round counts
/// from the earlier start to the later end; the queues are drained after the round, untimed,
/// while the other thread waits at the next barrier. Each thread pushes its own frame (as two
/// threads encoding their own messages would), so the two do not contend on one refcount.
fn send_by_uid_2_threads<A: Api>(g: &mut BenchmarkGroup<'_, WallTime>, users: usize) {
    let mut state = None;
    g.bench_with_input(BenchmarkId::new(A::NAME, users), &users, |b, _| {
        let (w, keys, frames, cursors) = state.get_or_insert_with(|| {
            let w = World::<A>::new(users);
            let keys = [
                shuffled_keys(&w.uids, SEED ^ 4),
                shuffled_keys(&w.uids, SEED ^ 2),
            ];
            let frames = [A::frame(push_bytes()), A::frame(push_bytes())];
            (w, keys, frames, [0usize; 2])
        });
        let (w, keys, frames) = (&*w, &*keys, &*frames);
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let rounds: Vec<u64> = (0..per_thread.div_ceil(ROUND))
                .map(|r| ROUND.min(per_thread - r * ROUND))
                .collect();
            let barrier = Barrier::new(2);
            let base = Instant::now();
            let nanos = |t: Instant| t.duration_since(base).as_nanos() as u64;
            let (worker_start, worker_end) = (AtomicU64::new(0), AtomicU64::new(0));
            let [cursor0, cursor1] = &mut *cursors;
            let mut total = Duration::ZERO;
            let sends = |keys: &[&str], frame: &A::Frame, cursor: &mut usize, n: u64| {
                for _ in 0..n {
                    let uid = *cycle(keys, cursor);
                    black_box(w.api.send_message_by_uid(black_box(uid), frame));
                }
            };
            std::thread::scope(|s| {
                s.spawn(|| {
                    for &n in &rounds {
                        barrier.wait();
                        let start = Instant::now();
                        sends(&keys[1], &frames[1], cursor1, n);
                        let end = Instant::now();
                        worker_start.store(nanos(start), Ordering::Relaxed);
                        worker_end.store(nanos(end), Ordering::Relaxed);
                        barrier.wait(); // publishes the two stores to the main thread
                    }
                });
                for &n in &rounds {
                    barrier.wait();
                    let start = Instant::now();
                    sends(&keys[0], &frames[0], cursor0, n);
                    let end = Instant::now();
                    barrier.wait();
                    let first = nanos(start).min(worker_start.load(Ordering::Relaxed));
                    let last = nanos(end).max(worker_end.load(Ordering::Relaxed));
                    total += Duration::from_nanos(last - first);
                    w.api.drain();
                }
            });
            // 2 × per_thread sends were timed; report per requested iteration.
            total.mul_f64(iters as f64 / (2 * per_thread) as f64)
        });
    });
    if let Some((w, ..)) = &state {
        w.check_no_refusals();
    }
}

/// Sessions created and bound at the peak, and how many stay afterwards (see [`after_a_peak`]).
const PEAK: usize = 100_000;
const SURVIVORS: usize = 1_000;

/// One shard after a login storm: [`PEAK`] sessions created and bound, then all but
/// [`SURVIVORS`] (chosen by a fixed shuffle) closed, the closes drained. With `peak == false`,
/// the same survivors' count created fresh, for comparison: what the walk costs with no peak.
fn after_a_peak(peak: bool) -> SessionService {
    let config = SessionConfig::default().shards(1).inbox_capacity(INBOX);
    let service = SessionService::new(config).unwrap();
    let created = if peak { PEAK } else { SURVIVORS };
    let mut sids: Vec<Sid> = (0..created)
        .map(|i| {
            let sid = service.create(Some(remote_of(i))).unwrap();
            service.bind(sid, &uid_of(i)).unwrap();
            sid
        })
        .collect();
    XorShift::new(SEED).shuffle(&mut sids);
    for (i, sid) in sids[SURVIVORS..].iter().enumerate() {
        assert!(service.kick_by_session_id(*sid, None));
        if i % 4096 == 0 {
            service.inbox(0).unwrap().drain(drop);
        }
    }
    service.inbox(0).unwrap().drain(drop);
    assert_eq!(service.sessions_count(), SURVIVORS);
    service
}

/// `broadcast` and `for_each_bound_session` to the 1 000 sessions left of a 100 000 peak
/// (row `1k_of_100k`), beside the same 1 000 with no peak (row `1k_fresh`). Before the
/// registry's bitmap these walked every slot up to the old peak.
fn bench_after_a_peak(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_after_a_peak");
    g.throughput(Throughput::Elements(SURVIVORS as u64));
    for (name, peak) in [("1k_of_100k", true), ("1k_fresh", false)] {
        let mut state = None;
        g.bench_function(name, |b| {
            let (service, frame) = state.get_or_insert_with(|| {
                let service = after_a_peak(peak);
                let frame = Frame::new(push_bytes());
                assert_eq!(service.broadcast(&frame), Ok(SURVIVORS));
                assert_eq!(service.inbox(0).unwrap().drain(drop), SURVIVORS);
                (service, frame)
            });
            b.iter_custom(|iters| {
                timed_batches(
                    iters,
                    1,
                    || {
                        black_box(service.broadcast(frame).unwrap_or(0));
                    },
                    || {
                        service.inbox(0).unwrap().drain(drop);
                    },
                )
            });
        });
        if let Some((service, _)) = &state {
            assert_eq!(
                service.inbox(0).unwrap().refused(),
                0,
                "a timed push was refused"
            );
        }
    }
    g.finish();

    let mut g = c.benchmark_group("for_each_bound_session_after_a_peak");
    g.throughput(Throughput::Elements(SURVIVORS as u64));
    for (name, peak) in [("1k_of_100k", true), ("1k_fresh", false)] {
        let mut state = None;
        g.bench_function(name, |b| {
            let service = state.get_or_insert_with(|| after_a_peak(peak));
            b.iter(|| {
                let mut n = 0usize;
                service.for_each_bound_session(|sid, uid| {
                    black_box((sid, uid));
                    n += 1;
                });
                n
            });
        });
    }
    g.finish();
}

// === groups ======================================================================================

fn bench_send_message_by_uid(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_message_by_uid");
    g.throughput(Throughput::Elements(1));
    for users in [1_000, 100_000] {
        send_by_uid::<Gatehouse>(&mut g, users);
        send_by_uid::<RwLockHashMap>(&mut g, users);
    }
    g.finish();

    let mut g = c.benchmark_group("send_message_by_uid_3_sessions");
    g.throughput(Throughput::Elements(1));
    send_by_uid_3_sessions::<Gatehouse>(&mut g, 1_000);
    send_by_uid_3_sessions::<RwLockHashMap>(&mut g, 1_000);
    g.finish();
}

fn bench_for_each_bound_session(c: &mut Criterion) {
    let mut g = c.benchmark_group("for_each_bound_session");
    g.throughput(Throughput::Elements(100_000));
    for_each_bound::<Gatehouse>(&mut g, 100_000);
    for_each_bound::<RwLockHashMap>(&mut g, 100_000);
    g.finish();
}

fn bench_broadcast(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_enqueue");
    g.throughput(Throughput::Elements(10_000));
    broadcast::<Gatehouse>(&mut g, 10_000);
    broadcast_batched(&mut g, 10_000);
    broadcast::<RwLockHashMap>(&mut g, 10_000);
    g.finish();
}

fn bench_bind_unbind(c: &mut Criterion) {
    let mut g = c.benchmark_group("bind_unbind");
    g.throughput(Throughput::Elements(1));
    bind_unbind::<Gatehouse>(&mut g, 1_000);
    bind_unbind::<RwLockHashMap>(&mut g, 1_000);
    g.finish();
}

fn bench_get(c: &mut Criterion) {
    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1));
    for users in [1_000, 100_000] {
        get::<Gatehouse>(&mut g, users);
        get::<RwLockHashMap>(&mut g, users);
    }
    g.finish();
}

fn bench_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_message_by_uid_2_threads");
    g.throughput(Throughput::Elements(1));
    send_by_uid_2_threads::<Gatehouse>(&mut g, 100_000);
    send_by_uid_2_threads::<RwLockHashMap>(&mut g, 100_000);
    g.finish();
}

/// Short config: the whole file runs in well under three minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_send_message_by_uid, bench_for_each_bound_session, bench_broadcast,
        bench_bind_unbind, bench_get, bench_contended, bench_after_a_peak
}
criterion_main!(benches);
