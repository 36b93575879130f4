//! Heap allocations per call on the session core's paths, counted by a global allocator.
//!
//! design.md, "Invariants": *zero heap allocations per call on `send_message`,
//! `send_message_by_uid`, `for_each_session`, `for_each_bound_session`, `get` … once warmed.*
//! This binary checks that, plus the consumer side (`Inbox::drain`), and pins explicit upper
//! bounds on the cold paths (`create`, `bind`, `unbind`, kicks) so a new allocation there shows
//! up as a failure too.
//!
//! The counter is **per thread** (a const-initialised `thread_local!` `Cell`), so tests running
//! in parallel under `cargo test` cannot disturb each other; only work done on the measuring
//! thread is seen, which is all of it here (the core runs on the caller's thread).
//! `detector_sees_allocations` proves the counter is live, so the zeros below cannot be
//! vacuous. Runs in the dev profile (unoptimised) too: the optimiser can only remove
//! allocations, never add them, so debug counts are an upper bound on release counts.

use gatehouse::{Command, Frame, SessionConfig, SessionService, Sid};
use std::hint::black_box;

// === the counting allocator ======================================================================

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::allocs_so_far;

/// Runs `f` and returns how many allocations this thread made meanwhile, with `f`'s result.
fn allocs_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocs_so_far();
    let result = f();
    (allocs_so_far() - before, result)
}

#[test]
fn detector_sees_allocations() {
    let (n, v) = allocs_in(|| black_box(Vec::<u64>::with_capacity(black_box(16))));
    assert!(n >= 1, "alloc not counted: the counter is broken");
    drop(v);
    let (n, _) = allocs_in(|| black_box(vec![0u8; black_box(4096)]));
    assert!(n >= 1, "alloc_zeroed not counted");
    let mut v = Vec::<u8>::with_capacity(1);
    let (n, _) = allocs_in(|| v.extend_from_slice(black_box(&[1u8; 1000])));
    assert!(n >= 1, "realloc not counted");
    // The cold path the assertions below rely on being seen: `create` boxes its cold data.
    let service = SessionService::new(SessionConfig::default().shards(1)).unwrap();
    let (n, _) = allocs_in(|| service.create(None).unwrap());
    assert!(
        n >= 1,
        "a path known to allocate was counted as allocation-free"
    );
}

// === fixture =====================================================================================

/// Calls per measured loop (the brief: ≥ 1000).
const CALLS: usize = 1000;
/// Measured loops per test; the inboxes are drained (and that drain measured) after each.
const BATCHES: usize = 3;

const SHORT_UID: &str = "10086";
const SHORT_TRIO: &str = "20086";
const SHORT_QUAD: &str = "30086";
/// Over 22 bytes: stored in an `Arc<str>`, not inline.
const LONG_UID: &str = "account:0123456789abcdef0123";
const LONG_TRIO: &str = "account:fedcba9876543210fedc";

struct Fixture {
    service: SessionService,
    frame: Frame,
    /// The one session of `SHORT_UID`.
    single: Sid,
    /// The one session of `LONG_UID`.
    long_single: Sid,
    /// An unbound session.
    unbound: Sid,
    /// Every session, for `get`.
    all: Vec<Sid>,
    bound_sessions: usize,
}

fn fixture() -> Fixture {
    assert!(LONG_UID.len() > 22 && LONG_TRIO.len() > 22);
    // Two shards, so sends fan out over two inboxes; every inbox holds far more than one
    // batch (at most 4 × CALLS commands per shard per batch), so no send in a measured loop
    // can be refused for a full queue.
    let service =
        SessionService::new(SessionConfig::default().shards(2).inbox_capacity(1 << 14)).unwrap();
    let remote = Some("10.0.0.1:40000".parse().unwrap());
    let mut all = Vec::new();
    let mut new_session = |uid: Option<&str>| {
        let sid = service.create(remote).unwrap();
        if let Some(uid) = uid {
            service.bind(sid, uid).unwrap();
        }
        all.push(sid);
        sid
    };
    let single = new_session(Some(SHORT_UID));
    let long_single = new_session(Some(LONG_UID));
    for _ in 0..3 {
        new_session(Some(SHORT_TRIO));
        new_session(Some(LONG_TRIO));
    }
    for _ in 0..4 {
        new_session(Some(SHORT_QUAD));
    }
    // Enough sessions that iteration spans several 32-session chunks on both shards.
    for i in 0..200 {
        new_session(Some(&format!("bulk-{i}")));
    }
    let unbound = new_session(None);
    for _ in 0..49 {
        new_session(None);
    }
    let bound_sessions = 2 + 6 + 4 + 200;
    Fixture {
        service,
        frame: Frame::new(b"\x04\x00\x00\x0c\x06\x06onPush{}".to_vec()),
        single,
        long_single,
        unbound,
        all,
        bound_sessions,
    }
}

/// Drains every shard's inbox like a transport would, dropping the frames. Returns the number
/// of `Send` commands seen.
fn drain_all(service: &SessionService) -> usize {
    let mut sends = 0;
    for shard in 0..service.config().shard_count() {
        service.inbox(shard).unwrap().drain(|cmd| {
            if matches!(cmd, Command::Send { .. }) {
                sends += 1;
            }
            drop(black_box(cmd));
        });
    }
    sends
}

/// Runs `op` `CALLS` times per batch, `BATCHES` batches after one warm-up batch, draining the
/// inboxes after each batch. Asserts that neither the calls nor the drains allocated and that
/// every batch enqueued `sends_per_call × CALLS` frames (so the loop did real work).
fn assert_hot(name: &str, fx: &Fixture, sends_per_call: usize, op: impl FnMut(usize)) {
    assert_hot_n(name, fx, CALLS, sends_per_call, op);
}

/// [`assert_hot`] with `calls` calls per batch.
fn assert_hot_n(
    name: &str,
    fx: &Fixture,
    calls: usize,
    sends_per_call: usize,
    mut op: impl FnMut(usize),
) {
    // Warm-up (also checks the expected send count before anything is measured).
    (0..calls).for_each(&mut op);
    assert_eq!(drain_all(&fx.service), sends_per_call * calls, "{name}");
    for _ in 0..BATCHES {
        let (n_calls, ()) = allocs_in(|| (0..calls).for_each(&mut op));
        let (n_drain, sends) = allocs_in(|| drain_all(&fx.service));
        assert_eq!(n_calls, 0, "{name}: {n_calls} allocations in {calls} calls");
        assert_eq!(
            n_drain, 0,
            "Inbox::drain after {name}: {n_drain} allocations"
        );
        assert_eq!(sends, sends_per_call * calls, "{name}");
    }
}

// === hot paths: exactly zero =====================================================================

#[test]
fn frame_clone_is_allocation_free() {
    let frame = Frame::new(vec![4, 0, 0, 1, 6]);
    let (n, clones) = allocs_in(|| {
        (0..CALLS)
            .map(|_| frame.clone())
            .fold(0, |n, f| n + f.len())
    });
    assert_eq!(n, 0);
    assert_eq!(clones, 5 * CALLS);
}

#[test]
fn send_message_is_allocation_free() {
    let fx = fixture();
    let sids = [fx.single, fx.long_single, fx.unbound];
    assert_hot("send_message", &fx, 1, |i| {
        let r = fx.service.send_message(sids[i % 3], fx.frame.clone());
        assert!(r.is_ok());
    });
}

#[test]
fn send_message_by_uid_is_allocation_free() {
    let fx = fixture();
    for (uid, sessions) in [
        (SHORT_UID, 1),
        (SHORT_TRIO, 3),
        (SHORT_QUAD, 4),
        (LONG_UID, 1),
        (LONG_TRIO, 3),
    ] {
        assert_hot(
            &format!("send_message_by_uid({uid:?}, {sessions} sessions)"),
            &fx,
            sessions,
            |_| {
                let r = fx.service.send_message_by_uid(black_box(uid), &fx.frame);
                assert_eq!(r, Ok(sessions));
            },
        );
    }
}

#[test]
fn get_is_allocation_free() {
    let fx = fixture();
    let n_all = fx.all.len();
    // Every session: unbound, inline uids and Arc-stored uids (whose clone is a refcount bump).
    assert_hot("get", &fx, 0, |i| {
        let info = fx.service.get(black_box(fx.all[i % n_all]));
        assert!(black_box(info).is_some());
    });
    assert_hot("get(long uid)", &fx, 0, |_| {
        let info = fx.service.get(black_box(fx.long_single)).unwrap();
        assert!(!black_box(info).uid.unwrap().is_inline());
    });
}

#[test]
fn get_by_uid_is_allocation_free() {
    let fx = fixture();
    for (uid, sessions) in [
        (SHORT_UID, 1),
        (SHORT_TRIO, 3),
        (SHORT_QUAD, 4),
        (LONG_UID, 1),
        (LONG_TRIO, 3),
    ] {
        assert_hot(&format!("get_by_uid({uid:?})"), &fx, 0, |_| {
            let sids = fx.service.get_by_uid(black_box(uid)).unwrap();
            assert_eq!(black_box(sids).len(), sessions);
        });
    }
}

#[test]
fn for_each_session_is_allocation_free() {
    let fx = fixture();
    let total = fx.all.len();
    assert_hot("for_each_session", &fx, 0, |_| {
        let mut n = 0;
        fx.service.for_each_session(|sid, uid| {
            black_box((sid, uid));
            n += 1;
        });
        assert_eq!(n, total);
    });
}

#[test]
fn for_each_bound_session_is_allocation_free() {
    let fx = fixture();
    let bound = fx.bound_sessions;
    assert_hot("for_each_bound_session", &fx, 0, |_| {
        let mut n = 0;
        fx.service.for_each_bound_session(|sid, uid| {
            black_box((sid, uid));
            n += 1;
        });
        assert_eq!(n, bound);
    });
}

#[test]
fn broadcast_to_bound_sessions_is_allocation_free() {
    // The broadcast idiom: visit every bound session, send by sid, from inside the callback.
    // 50 broadcasts × 212 sessions = 10 600 sends per batch, within the inboxes' 2 × 16 384.
    let fx = fixture();
    let bound = fx.bound_sessions;
    assert_hot_n(
        "for_each_bound_session + send_message",
        &fx,
        50,
        bound,
        |_| {
            fx.service.for_each_bound_session(|sid, _| {
                assert!(fx.service.send_message(sid, fx.frame.clone()).is_ok());
            });
        },
    );
}

#[test]
fn broadcast_is_allocation_free() {
    // `SessionService::broadcast`: 50 broadcasts × 212 bound sessions per batch, exactly 0
    // allocations, and every bound session (none of the 50 unbound ones) gets each frame.
    let fx = fixture();
    let bound = fx.bound_sessions;
    assert_hot_n("broadcast", &fx, 50, bound, |_| {
        assert_eq!(fx.service.broadcast(&fx.frame), Ok(bound));
    });
}

// === cold paths: explicit upper bounds ===========================================================
//
// Each bound is the number measured on this code (rustc 1.95, dev profile) and asserted with
// `<=`, so a path that starts allocating *more* fails, and one that gets cheaper still passes
// (then tighten the bound). The comments say where each allocation comes from.

/// The most allocations any single call of `op(i)`, `i in 0..n`, made (printed with
/// `--nocapture`, to re-measure the bounds).
fn max_per_call(name: &str, n: usize, mut op: impl FnMut(usize)) -> u64 {
    let per_call: Vec<u64> = (0..n).map(|i| allocs_in(|| op(i)).0).collect();
    let max = per_call.iter().copied().max().unwrap_or(0);
    let total: u64 = per_call.iter().sum();
    eprintln!("{name}: max {max} allocations per call, {total} in {n} calls");
    max
}

/// A fresh two-shard service whose slabs hold 1 024 sessions per shard before growing.
fn cold_service() -> SessionService {
    SessionService::new(
        SessionConfig::default()
            .shards(2)
            .initial_sessions_per_shard(1024)
            .inbox_capacity(1 << 14),
    )
    .unwrap()
}

#[test]
fn create_allocates_at_most_once() {
    let service = cold_service();
    // Measured: exactly 1 per call — the `Box<ColdData>` (remote address + empty settings map;
    // an empty serde_json map does not allocate). The slab slots are reserved up front
    // (`initial_sessions_per_shard`), so 1000 creates over 2 shards never grow a slab.
    let max = max_per_call("create", 1000, |_| {
        black_box(
            service
                .create(Some("10.0.0.1:40000".parse().unwrap()))
                .unwrap(),
        );
    });
    assert!(max <= 1, "create: {max} allocations in one call (bound: 1)");
}

#[test]
fn first_bind_of_a_new_uid_allocation_bounds() {
    let service = cold_service();
    let sids: Vec<Sid> = (0..2000).map(|_| service.create(None).unwrap()).collect();
    let short: Vec<String> = (0..1000).map(|i| format!("{}", 100_000_000 + i)).collect();
    let long: Vec<String> = (0..1000).map(|i| format!("{LONG_UID}-{i:06}")).collect();
    // Short (inline) uid, measured max 1 per call: the index shard's hash table growing
    // (its first insert, then each doubling). Most calls allocate nothing.
    let max = max_per_call("bind(new short uid)", 1000, |i| {
        service.bind(sids[i], &short[i]).unwrap()
    });
    assert!(
        max <= 1,
        "bind(new short uid): {max} allocations (bound: 1)"
    );
    // Long uid, measured max 2: the uid's `Arc<str>` (once per uid), plus a table growth.
    let max = max_per_call("bind(new long uid)", 1000, |i| {
        service.bind(sids[1000 + i], &long[i]).unwrap()
    });
    assert!(max <= 2, "bind(new long uid): {max} allocations (bound: 2)");
    // Measured 0: re-binding a session to the uid it already has is a no-op.
    let (n, r) = allocs_in(|| service.bind(sids[0], &short[0]));
    assert!(r.is_ok());
    assert_eq!(n, 0, "bind(same uid again)");
}

#[test]
fn unbind_allocation_bounds() {
    let service = cold_service();
    let sids: Vec<Sid> = (0..1000).map(|_| service.create(None).unwrap()).collect();
    let uids: Vec<String> = (0..1000)
        .map(|i| match i % 2 {
            0 => format!("{}", 100_000_000 + i),
            _ => format!("{LONG_UID}-{i:06}"),
        })
        .collect();
    for (sid, uid) in sids.iter().zip(&uids) {
        service.bind(*sid, uid).unwrap();
    }
    // Measured 0, short and long uids alike: the index removes in place (the sid list is
    // inline; ~16 uids per index shard stay under the 64-entry floor below which a table never
    // shrinks) and the listener-less service fires no event.
    let max = max_per_call("unbind", 1000, |i| {
        service.unbind(sids[i], &uids[i]).unwrap()
    });
    assert!(max == 0, "unbind: {max} allocations (bound: 0)");
    assert_eq!(service.bound_uids_count(), 0);
}

/// A service with `n` sessions, all bound to distinct short uids.
fn bound_service(n: usize) -> (SessionService, Vec<Sid>) {
    let service = cold_service();
    let sids: Vec<Sid> = (0..n)
        .map(|i| {
            let sid = service.create(None).unwrap();
            service.bind(sid, &format!("{}", 100_000_000 + i)).unwrap();
            sid
        })
        .collect();
    (service, sids)
}

#[test]
fn kick_by_session_id_allocation_bounds() {
    let (service, sids) = bound_service(1000);
    // Without a reason, measured 0: the session leaves the slab and the index in place and the
    // `Close` command carries `CloseReason::KickedSilently` (no heap data). The entry's boxed
    // cold data is *freed*, which the counter does not count.
    let max = max_per_call("kick_by_session_id(None)", 500, |i| {
        assert!(service.kick_by_session_id(sids[i], None))
    });
    assert!(
        max == 0,
        "kick_by_session_id(None): {max} allocations (bound: 0)"
    );
    // With a reason, measured 1: the `Arc<str>` holding the KICK text.
    let max = max_per_call("kick_by_session_id(Some)", 500, |i| {
        assert!(service.kick_by_session_id(sids[500 + i], Some("maintenance")))
    });
    assert!(
        max <= 1,
        "kick_by_session_id(Some): {max} allocations (bound: 1)"
    );
    assert_eq!(drain_all(&service), 0);
    assert_eq!(service.sessions_count(), 0);
}

/// After a peak, closes and unbinds give memory back: the registry's entry storage and the
/// uid index's tables shrink on the remove path. Each shrink is one reallocation (a new,
/// smaller buffer), made once the live count fell to a quarter of the capacity, so they are
/// rare: at most one per call, and a handful over the whole descent.
#[test]
fn closes_and_unbinds_after_a_peak_shrink_in_a_few_allocations() {
    const PEAK: usize = 20_000;
    let service = SessionService::new(
        SessionConfig::default()
            .shards(1)
            .index_shards(1)
            .initial_sessions_per_shard(64)
            .inbox_capacity(1 << 16),
    )
    .unwrap();
    let uids: Vec<String> = (0..PEAK).map(|i| format!("{}", 100_000_000 + i)).collect();
    let sids: Vec<Sid> = uids
        .iter()
        .map(|uid| {
            let sid = service.create(None).unwrap();
            service.bind(sid, uid).unwrap();
            sid
        })
        .collect();
    // Unbind the top 90 %: the index table (one shard) shrinks as it empties; the sessions
    // stay, so the registry does not. Measured: max 1 per call, 2 in all.
    let mut total = 0;
    let max = max_per_call("unbind after a peak", PEAK / 10 * 9, |i| {
        let i = PEAK - 1 - i;
        total += allocs_in(|| service.unbind(sids[i], &uids[i]).unwrap()).0;
    });
    assert!(
        max <= 1,
        "unbind after a peak: {max} allocations in one call (bound: 1)"
    );
    assert!(
        total <= 2,
        "unbind after a peak: {total} allocations (bound: 2)"
    );
    // Close everything from the top (bound and unbound): the registry's storage shrinks as
    // its high-water mark falls (halving, from 32 768 slots down to the 64-slot floor), the
    // index table as the last 2 000 bound ones leave. Measured: max 1 per call, 16 in all.
    let mut total = 0;
    let max = max_per_call("kick_by_session_id(None) after a peak", PEAK, |i| {
        let sid = sids[PEAK - 1 - i];
        total += allocs_in(|| assert!(service.kick_by_session_id(sid, None))).0;
    });
    assert!(
        max <= 1,
        "close after a peak: {max} allocations in one call (bound: 1)"
    );
    assert!(
        total <= 16,
        "close after a peak: {total} allocations (bound: 16)"
    );
    assert_eq!(service.sessions_count(), 0);
}

#[test]
fn kick_of_a_uid_with_three_sessions_allocation_bounds() {
    let service = cold_service();
    let uids: Vec<String> = (0..400).map(|i| format!("{}", 100_000_000 + i)).collect();
    for uid in &uids {
        for _ in 0..3 {
            let sid = service.create(None).unwrap();
            service.bind(sid, uid).unwrap();
        }
    }
    // With a reason, measured 1 per call: one `Arc<str>` for the text, shared (refcount) by
    // the three `Close` commands. The sid snapshot is inline (≤ 4 sessions).
    let max = max_per_call("kick(uid x3, Some)", 200, |i| {
        assert_eq!(service.kick(&uids[i], Some("logged in elsewhere")), 3)
    });
    assert!(max <= 1, "kick(uid ×3, Some): {max} allocations (bound: 1)");
    // Without a reason, measured 0.
    let max = max_per_call("kick(uid x3, None)", 200, |i| {
        assert_eq!(service.kick(&uids[200 + i], None), 3)
    });
    assert!(max == 0, "kick(uid ×3, None): {max} allocations (bound: 0)");
    // 1 200 closes, all queued (no overflow), drained without allocating.
    let (n, sends) = allocs_in(|| drain_all(&service));
    assert_eq!((n, sends), (0, 0));
    assert_eq!(service.sessions_count(), 0);
}

/// `send_message_by_uid`'s doc promises "no allocation for up to eight sessions per uid". It
/// once copied the sids through a `SidList` (`SmallVec<[Sid; 4]>`), so 5–8 sessions spilled to
/// the heap (1 allocation per call); the index now copies straight into an 8-slot stack array.
#[test]
fn send_message_by_uid_with_five_to_eight_sessions_is_allocation_free() {
    let service = cold_service();
    let frame = Frame::new(vec![4, 0, 0, 1, 6]);
    for k in 5..=8 {
        let uid = format!("uid-with-{k}-sessions");
        for _ in 0..k {
            let sid = service.create(None).unwrap();
            service.bind(sid, &uid).unwrap();
        }
        let _ = service.send_message_by_uid(&uid, &frame); // warm-up
        let (n, r) = allocs_in(|| {
            (0..CALLS)
                .map(|_| service.send_message_by_uid(&uid, &frame).unwrap())
                .sum::<usize>()
        });
        assert_eq!(r, k * CALLS);
        assert_eq!(n, 0, "{k} sessions: {n} allocations in {CALLS} calls");
        drain_all(&service);
    }
}
