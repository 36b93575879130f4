//! The session registry's id space and memory: sids exact in JavaScript and never reused (per
//! slot generations, retired slots), walks and storage that follow the live sessions after a
//! peak, the uid index shrinking, and the broadcast's lock discipline toward `Wake` and its
//! `refused` reports.

use gatehouse::__private::registry::{
    registry_lock_held, registry_stats, set_slot_generation, uid_index_capacity, MAX_GENERATION,
};
use gatehouse::{
    BroadcastError, Command, Frame, SessionConfig, SessionService, SessionSnapshot, SessionState,
    Settings, Sid, Wake, MAX_SESSIONS_PER_SHARD, MAX_SHARDS,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// `Number.MAX_SAFE_INTEGER`.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

// The layout `Sid` documents: generation 52..32, shard 31..24, slot 23..0.
fn generation_of(sid: Sid) -> u64 {
    sid.into_raw() >> 32
}
fn slot_of(sid: Sid) -> usize {
    (sid.into_raw() & ((1 << 24) - 1)) as usize
}

fn one_shard(initial: usize) -> SessionService {
    SessionService::new(
        SessionConfig::default()
            .shards(1)
            .initial_sessions_per_shard(initial)
            .inbox_capacity(1 << 17),
    )
    .unwrap()
}

fn frame() -> Frame {
    Frame::from_static(b"\x04\x00\x00\x01\x06")
}

/// What a JavaScript backend makes of an exported session's `id`: the JSON text parsed as a
/// double, as `JSON.parse` does.
fn id_as_javascript_number(snapshot: &SessionSnapshot) -> f64 {
    let json = serde_json::to_string(&snapshot.export()).unwrap();
    let start = json.find("\"id\":").expect("an id field") + 5;
    let digits: String = json[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse::<f64>().unwrap()
}

// === sids: exact in JavaScript, never reused ====================================================

#[test]
fn the_largest_sid_is_max_safe_integer_and_exports_exactly() {
    // Every field at its maximum, by the documented layout.
    let raw = (u64::from(MAX_GENERATION) << 32)
        | (((MAX_SHARDS - 1) as u64) << 24)
        | (MAX_SESSIONS_PER_SHARD - 1) as u64;
    assert_eq!(raw, MAX_SAFE_INTEGER);
    let snapshot = SessionSnapshot {
        sid: Sid::from_raw(raw),
        frontend_id: "connector-server-1".into(),
        uid: None,
        settings: Settings::new(),
        remote: None,
        state: SessionState::Active,
    };
    let id = id_as_javascript_number(&snapshot);
    assert_eq!(id as u64, MAX_SAFE_INTEGER);
    assert_eq!(Sid::from_raw(id as u64), snapshot.sid);
}

#[test]
fn a_last_generation_sid_on_the_last_shard_exports_exactly() {
    let config = SessionConfig::default()
        .shards(MAX_SHARDS)
        .initial_sessions_per_shard(64)
        .inbox_capacity(64);
    let service = SessionService::new(config).unwrap();
    set_slot_generation(&service, MAX_SHARDS - 1, 0, MAX_GENERATION - 1);
    let sid = service.create_in(MAX_SHARDS - 1, None).unwrap();
    assert_eq!(generation_of(sid), u64::from(MAX_GENERATION));
    assert_eq!(sid.shard(), MAX_SHARDS - 1);
    assert!(sid.into_raw() <= MAX_SAFE_INTEGER);
    let id = id_as_javascript_number(&service.snapshot(sid).unwrap());
    assert_eq!(
        Sid::from_raw(id as u64),
        sid,
        "a backend names the same session"
    );
    assert!(service.get(Sid::from_raw(id as u64)).is_some());
}

/// Two million sessions through one slot, the real way (no hook): every sid stays exact in
/// JavaScript, none repeats, and the slot retires at its last generation. On the old layout
/// (a 32-bit global sequence in bits 63..32) the 2 097 152nd sid was 2^53 and failed here.
#[test]
fn two_million_sessions_through_one_slot_stay_exact_and_unique() {
    let service = one_shard(64);
    let mut last_generation = 0;
    for _ in 0..MAX_GENERATION {
        let sid = service.create(None).unwrap();
        assert_eq!(slot_of(sid), 0);
        assert!(sid.into_raw() <= MAX_SAFE_INTEGER, "{sid:?}");
        // One more per reuse: never the same sid twice.
        assert_eq!(generation_of(sid), last_generation + 1);
        last_generation = generation_of(sid);
        assert!(service.kick_by_session_id(sid, None));
        if last_generation % 4096 == 0 {
            service.inbox(0).unwrap().drain(drop); // the `Close`s
        }
    }
    assert_eq!(last_generation, u64::from(MAX_GENERATION));
    assert_eq!(registry_stats(&service, 0).retired, 1);
    let next = service.create(None).unwrap();
    assert_eq!((slot_of(next), generation_of(next)), (1, 1));
    assert!(next.into_raw() <= MAX_SAFE_INTEGER);
}

/// On the old code the second session of shard 0 got the service-wide sequence number 3
/// (a session of shard 1 came in between); now its slot's generation 2.
#[test]
fn the_generation_counts_the_reuses_of_its_slot() {
    let service = SessionService::new(SessionConfig::default().shards(2)).unwrap();
    let a = service.create_in(0, None).unwrap();
    let _other_shard = service.create_in(1, None).unwrap();
    let _other_slot = service.create_in(0, None).unwrap();
    assert_eq!((slot_of(a), generation_of(a)), (0, 1));
    service.remove(a).unwrap();
    let b = service.create_in(0, None).unwrap();
    assert_eq!((slot_of(b), generation_of(b)), (0, 2));
    assert_eq!(b.into_raw() - a.into_raw(), 1 << 32);
    service.remove(b).unwrap();
    let c = service.create_in(0, None).unwrap();
    assert_eq!((slot_of(c), generation_of(c)), (0, 3));
    // The stale sids find nothing, though their slot is live.
    for stale in [a, b] {
        assert!(service.get(stale).is_none());
        assert!(service.remove(stale).is_none());
    }
    assert!(service.get(c).is_some());
}

#[test]
fn an_exhausted_slot_is_retired_and_never_handed_out_again() {
    let service = one_shard(64);
    set_slot_generation(&service, 0, 0, MAX_GENERATION - 1);
    let last = service.create(None).unwrap();
    assert_eq!(slot_of(last), 0);
    assert_eq!(generation_of(last), u64::from(MAX_GENERATION));
    assert_eq!(
        registry_stats(&service, 0).retired,
        0,
        "live, not retired yet"
    );
    service.bind(last, "u").unwrap();
    assert!(service.kick_by_session_id(last, None));
    assert_eq!(registry_stats(&service, 0).retired, 1);

    // The next create takes another slot, and so does every later one, also after the
    // shard emptied and trimmed its storage.
    let mut sids: Vec<Sid> = (0..200).map(|_| service.create(None).unwrap()).collect();
    assert_eq!(slot_of(sids[0]), 1);
    assert!(sids.iter().all(|s| slot_of(*s) != 0), "{sids:?}");
    for sid in sids.drain(..) {
        service.remove(sid).unwrap();
    }
    let again = service.create(None).unwrap();
    assert_eq!((slot_of(again), generation_of(again)), (1, 2));
    assert!(service.get(last).is_none());
    assert_eq!(registry_stats(&service, 0).retired, 1);
}

// === memory after a peak =========================================================================

#[test]
fn storage_and_high_water_fall_after_a_peak_and_generations_survive_the_trim() {
    let service = one_shard(1024);
    let peak: Vec<Sid> = (0..20_000).map(|_| service.create(None).unwrap()).collect();
    let at_peak = registry_stats(&service, 0);
    assert_eq!((at_peak.len, at_peak.high_water), (20_000, 20_000));
    assert!(at_peak.capacity >= 20_000);

    // Close all but the first 100: live sessions are packed low, so the mark falls with them.
    for sid in &peak[100..] {
        service.remove(*sid).unwrap();
    }
    let after = registry_stats(&service, 0);
    assert_eq!((after.len, after.high_water), (100, 100));
    assert_eq!(
        after.capacity, 1024,
        "trimmed back to initial_sessions_per_shard"
    );
    // The generations are all kept: 20 000 slots rounded up to a 64-slot word.
    assert_eq!(after.generations, 20_032);

    // A second peak re-creates the trimmed slots: each one a generation higher, no sid of
    // the first peak comes back.
    let first: HashSet<Sid> = peak.iter().copied().collect();
    let second: Vec<Sid> = (0..19_900).map(|_| service.create(None).unwrap()).collect();
    assert!(second.iter().all(|s| !first.contains(s)));
    assert!(
        second.iter().all(|s| generation_of(*s) == 2),
        "every reused slot is on generation 2"
    );
    let slots: HashSet<usize> = second.iter().map(|s| slot_of(*s)).collect();
    assert_eq!(slots, (100..20_000).collect());
}

#[test]
fn a_survivor_in_a_top_slot_keeps_the_mark_until_it_closes() {
    let service = one_shard(64);
    let sids: Vec<Sid> = (0..5_000).map(|_| service.create(None).unwrap()).collect();
    for sid in &sids[..4_999] {
        service.remove(*sid).unwrap();
    }
    assert_eq!(registry_stats(&service, 0).high_water, 5_000);
    // New sessions take the lowest slots, below the survivor.
    let fresh: Vec<Sid> = (0..10).map(|_| service.create(None).unwrap()).collect();
    assert_eq!(
        fresh.iter().map(|s| slot_of(*s)).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    service.remove(sids[4_999]).unwrap();
    let stats = registry_stats(&service, 0);
    assert_eq!((stats.len, stats.high_water), (10, 10));
    assert_eq!(stats.capacity, 64);
}

/// Survivors scattered over a 100k peak: the walks visit each exactly once, across chunk
/// boundaries and empty bitmap words, and the broadcast reaches exactly the bound ones.
#[test]
fn walks_after_a_scattered_peak_visit_exactly_the_survivors() {
    let service = one_shard(1024);
    let sids: Vec<Sid> = (0..100_000)
        .map(|i| {
            let sid = service.create(None).unwrap();
            if i % 3 != 0 {
                service.bind(sid, &format!("u{i}")).unwrap();
            }
            sid
        })
        .collect();
    // Keep a scattered 1 %: slots 0, 97, 194, … plus runs around word boundaries.
    let keep: HashSet<Sid> = sids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 97 == 0 || (6_390..6_410).contains(i) || *i == 99_999)
        .map(|(_, s)| *s)
        .collect();
    for sid in sids.iter().filter(|s| !keep.contains(s)) {
        assert!(service.kick_by_session_id(*sid, None));
    }
    service.inbox(0).unwrap().drain(drop);
    let bound: HashSet<Sid> = keep
        .iter()
        .filter(|s| service.get(**s).unwrap().uid.is_some())
        .copied()
        .collect();

    let mut all = Vec::new();
    service.for_each_session(|sid, _| all.push(sid));
    assert_eq!(all.len(), keep.len());
    assert_eq!(all.iter().copied().collect::<HashSet<_>>(), keep);
    assert!(
        all.windows(2).all(|w| slot_of(w[0]) < slot_of(w[1])),
        "slot order"
    );

    let mut visited = Vec::new();
    service.for_each_bound_session(|sid, _| visited.push(sid));
    assert_eq!(visited.len(), bound.len());
    assert_eq!(visited.iter().copied().collect::<HashSet<_>>(), bound);

    assert_eq!(service.broadcast(&frame()), Ok(bound.len()));
    let mut sent = Vec::new();
    service.inbox(0).unwrap().drain(|cmd| {
        if let Command::Send { sid, .. } = cmd {
            sent.push(sid);
        }
    });
    assert_eq!(sent, visited, "one frame each, in slot order");
}

#[test]
fn the_uid_index_gives_its_tables_back_after_a_peak() {
    let service = SessionService::new(SessionConfig::default().shards(1).index_shards(4)).unwrap();
    let idle = uid_index_capacity(&service);
    let sids: Vec<Sid> = (0..50_000)
        .map(|i| {
            let sid = service.create(None).unwrap();
            service.bind(sid, &format!("user-{i}")).unwrap();
            sid
        })
        .collect();
    let at_peak = uid_index_capacity(&service);
    assert!(at_peak >= 50_000);
    for (i, sid) in sids.iter().enumerate().skip(100) {
        service.unbind(*sid, &format!("user-{i}")).unwrap();
    }
    let after = uid_index_capacity(&service);
    // 100 uids over 4 tables: each at most 4 × its length, or at the 64-entry floor.
    assert!(
        after <= 4 * 128,
        "capacity {after} (idle {idle}, peak {at_peak})"
    );
    assert_eq!(service.bound_uids_count(), 100);
    for (i, sid) in sids.iter().enumerate().take(100) {
        assert_eq!(
            service.get_by_uid(&format!("user-{i}")).unwrap().as_slice(),
            [*sid]
        );
    }
    // Closing the rest shrinks it further through the close path.
    for sid in &sids[..100] {
        service.remove(*sid).unwrap();
    }
    assert_eq!(service.bound_uids_count(), 0);
    assert!(uid_index_capacity(&service) <= 4 * 64);
}

// === broadcast: Wake without the lock, refused sids reported ====================================

/// A `Wake` that records whether shard 0's registry lock was held while it ran.
struct LockProbe {
    service: OnceLock<Weak<SessionService>>,
    wakes: AtomicUsize,
    under_lock: AtomicUsize,
}

impl Wake for LockProbe {
    fn wake(&self) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let service = self.service.get().and_then(Weak::upgrade).expect("service");
        if registry_lock_held(&service, 0) {
            self.under_lock.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn probed(inbox: usize, bound: usize) -> (Arc<SessionService>, Arc<LockProbe>, Vec<Sid>) {
    let service = Arc::new(
        SessionService::new(SessionConfig::default().shards(1).inbox_capacity(inbox)).unwrap(),
    );
    let probe = Arc::new(LockProbe {
        service: OnceLock::new(),
        wakes: AtomicUsize::new(0),
        under_lock: AtomicUsize::new(0),
    });
    probe.service.set(Arc::downgrade(&service)).unwrap();
    assert!(service.inbox(0).unwrap().set_waker(probe.clone()));
    let sids = (0..bound)
        .map(|i| {
            let sid = service.create(None).unwrap();
            service.bind(sid, &format!("u{i}")).unwrap();
            sid
        })
        .collect();
    (service, probe, sids)
}

/// `Wake`'s contract: called "with no lock held". The old `broadcast` woke the consumer at the
/// first refused push from inside the shard's read lock (this test failed there: the wake ran
/// under the lock).
#[test]
fn broadcast_into_a_full_inbox_wakes_without_the_registry_lock() {
    let (service, probe, _) = probed(4, 40);
    assert!(!registry_lock_held(&service, 0));
    assert_eq!(
        service.broadcast(&frame()),
        Err(BroadcastError::InboxFull {
            enqueued: 4,
            refused: 36
        })
    );
    assert_eq!(
        probe.wakes.load(Ordering::SeqCst),
        1,
        "one wake until a drain re-arms"
    );
    assert_eq!(
        probe.under_lock.load(Ordering::SeqCst),
        0,
        "woken under the shard lock"
    );
    // And the plain case: the one wake after the last push.
    service.inbox(0).unwrap().drain(drop);
    let (service, probe, _) = probed(64, 40);
    assert_eq!(service.broadcast(&frame()), Ok(40));
    assert_eq!(probe.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(probe.under_lock.load(Ordering::SeqCst), 0);
}

#[test]
fn broadcast_reporting_names_exactly_the_refused_sessions() {
    // 100 bound (more than one 32-sid report batch refused) and 7 unbound, inbox of 30.
    let (service, _probe, bound) = probed(30, 100);
    for _ in 0..7 {
        service.create(None).unwrap();
    }
    let mut refused = Vec::new();
    let mut held = false;
    let result = service.broadcast_reporting(&frame(), |sid| {
        // No lock held: the callback may re-enter the service.
        held |= registry_lock_held(&service, 0);
        assert!(service.get(sid).is_some());
        refused.push(sid);
    });
    assert_eq!(
        result,
        Err(BroadcastError::InboxFull {
            enqueued: 30,
            refused: 70
        })
    );
    assert!(!held, "refused() ran under the shard lock");
    let mut enqueued = Vec::new();
    service.inbox(0).unwrap().drain(|cmd| {
        if let Command::Send { sid, .. } = cmd {
            enqueued.push(sid);
        }
    });
    assert_eq!((enqueued.len(), refused.len()), (30, 70));
    let mut union: Vec<Sid> = enqueued.iter().chain(&refused).copied().collect();
    union.sort();
    union.dedup();
    assert_eq!(
        union.len(),
        100,
        "no session both enqueued and refused, none twice"
    );
    let mut want = bound.clone();
    want.sort();
    assert_eq!(union, want);

    // The retry (an inbox-full at a time) reaches exactly the refused ones: every bound
    // session got one frame in all.
    let mut retried = Vec::new();
    for batch in refused.chunks(30) {
        for sid in batch {
            service.send_message(*sid, frame()).unwrap();
        }
        service
            .inbox(0)
            .unwrap()
            .drain(|cmd| retried.push(cmd.sid()));
    }
    assert_eq!(retried, refused);
}

#[test]
fn broadcast_reporting_reports_nothing_when_every_push_fits() {
    let service = SessionService::new(SessionConfig::default().shards(3)).unwrap();
    for i in 0..50 {
        let sid = service.create(None).unwrap();
        service.bind(sid, &format!("u{i}")).unwrap();
    }
    let mut refused = 0;
    assert_eq!(
        service.broadcast_reporting(&frame(), |_| refused += 1),
        Ok(50)
    );
    assert_eq!(refused, 0);
}
