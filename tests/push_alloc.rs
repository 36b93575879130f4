//! Heap allocations of `Sessions`' pushes, counted (and sized) by a global allocator, in the
//! style of `tests/alloc_count.rs`.
//!
//! The claim (src/sessions.rs): a push call encodes its PUSH package once, into one frame that
//! every recipient shares, so its allocations are the frame's bytes — exactly the package's
//! length — plus, for the calls that fan out, the frame's one shared header; nothing per
//! recipient. Every figure below is asserted exactly, by count and by size.
//!
//! The counter is per thread (const-initialised thread-locals, no destructor), so tests running
//! in parallel cannot disturb each other; the pushes run on the measuring thread.
//! `detector_sees_allocations_and_their_sizes` proves the counter is live. The dev profile's
//! counts are an upper bound on release's (the optimiser only removes allocations); these are
//! exact in both.

use gatehouse::protocol::{encode_push, Route};
use gatehouse::{Frame, SessionConfig, SessionService, Sessions, Sid};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Arc;

// === the counting allocator ======================================================================

/// Sizes of the first allocations recorded (later ones are counted, not sized).
const SIZED: usize = 8;

thread_local! {
    /// Allocations (alloc, alloc_zeroed, realloc) made by this thread.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    /// Bytes requested by them (for a realloc, the new size).
    static BYTES: Cell<u64> = const { Cell::new(0) };
    /// While `recording` is set, the sizes of the allocations, in order.
    static SIZES: [Cell<usize>; SIZED] = const { [const { Cell::new(0) }; SIZED] };
}

struct Counting;

fn count_one(size: usize) {
    // `try_with`: during thread teardown the slots may be gone; such allocations are not ours.
    let n = ALLOCS
        .try_with(|c| {
            let n = c.get();
            c.set(n + 1);
            n
        })
        .unwrap_or(0);
    let _ = BYTES.try_with(|c| c.set(c.get() + size as u64));
    let _ = SIZES.try_with(|sizes| {
        if let Some(slot) = usize::try_from(n).ok().and_then(|n| sizes.get(n)) {
            slot.set(size);
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, so `Counting` upholds the trait's contract exactly as `System` does.
// The only extra work is updating thread-local `Cell`s, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract; we pass it through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one(new_size);
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`; the
        // caller upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What `f` allocated on this thread: the count, the total bytes, and the sizes of the first
/// [`SIZED`] allocations in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allocs {
    count: u64,
    bytes: u64,
    sizes: Vec<usize>,
}

fn allocs_in<R>(f: impl FnOnce() -> R) -> (Allocs, R) {
    // Allocation numbers restart at 0 so that `SIZES` holds `f`'s first allocations.
    let (count0, bytes0) = (ALLOCS.with(Cell::get), BYTES.with(Cell::get));
    ALLOCS.with(|c| c.set(0));
    let result = f();
    let count = ALLOCS.with(Cell::get);
    let bytes = BYTES.with(Cell::get) - bytes0;
    ALLOCS.with(|c| c.set(count0 + count));
    let sizes = SIZES.with(|s| {
        s.iter()
            .take(count.min(SIZED as u64) as usize)
            .map(Cell::get)
            .collect::<Vec<_>>()
    });
    (
        Allocs {
            count,
            bytes,
            sizes,
        },
        result,
    )
}

#[test]
fn detector_sees_allocations_and_their_sizes() {
    let (a, v) = allocs_in(|| black_box(Vec::<u8>::with_capacity(black_box(100))));
    assert_eq!(
        a,
        Allocs {
            count: 1,
            bytes: 100,
            sizes: vec![100]
        }
    );
    drop(v);
    let (a, _) = allocs_in(|| {
        let mut v = black_box(Vec::<u8>::with_capacity(1));
        v.extend_from_slice(black_box(&[1u8; 1000]));
        v
    });
    assert_eq!((a.count, a.sizes[0]), (2, 1), "realloc not counted: {a:?}");
}

// === fixture =====================================================================================

const ROUTE: &str = "onPush";

fn body() -> Value {
    json!({"i": 41, "p": "x".repeat(100), "f": 2.5, "nested": {"ok": true, "list": [1, null]}})
}

/// The package the pushes must produce, encoded by hand.
fn expected_package(body: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_push(
        Route::Name(ROUTE),
        &serde_json::to_vec(body).unwrap(),
        &mut out,
    )
    .unwrap();
    out
}

/// The size of the shared header `Frame::new` allocates (the one allocation it makes over
/// an existing buffer), measured rather than assumed.
fn frame_header_size() -> usize {
    let bytes = vec![0u8; 64];
    let (a, frame) = allocs_in(|| Frame::new(bytes));
    assert_eq!(a.count, 1, "Frame::new allocates its shared header only");
    drop(frame);
    a.sizes[0]
}

/// `uids` uids with `per_uid` sessions each, on two shards with room for every push.
fn fixture(uids: usize, per_uid: usize) -> (Arc<SessionService>, Sessions, Vec<String>) {
    let service = Arc::new(
        SessionService::new(SessionConfig::default().shards(2).inbox_capacity(1 << 12)).unwrap(),
    );
    let names: Vec<String> = (0..uids).map(|i| format!("player-{i}")).collect();
    for name in &names {
        for _ in 0..per_uid {
            let sid = service.create(None).unwrap();
            service.bind(sid, name).unwrap();
        }
    }
    let sessions = Sessions::new(service.clone(), None);
    (service, sessions, names)
}

/// Drains every inbox, checking every frame is the expected package; returns how many.
fn drain(service: &SessionService, expected: &[u8]) -> usize {
    let mut n = 0;
    for shard in 0..2 {
        service.inbox(shard).unwrap().drain(|cmd| {
            if let gatehouse::Command::Send { frame, .. } = cmd {
                assert_eq!(frame.as_bytes(), expected);
                n += 1;
            }
        });
    }
    n
}

// === pushes ======================================================================================

#[test]
fn push_to_one_session_allocates_exactly_the_package() {
    let (service, sessions, names) = fixture(1, 1);
    let sid = sessions.get_by_uid(&names[0]).unwrap()[0];
    let body = body();
    let package = expected_package(&body);
    sessions.push(sid, ROUTE, &body).unwrap(); // warm-up
    drain(&service, &package);

    // JSON body: one allocation, exactly the package's length (one receiver: no shared header).
    let (a, r) = allocs_in(|| sessions.push(sid, ROUTE, &body));
    r.unwrap();
    let want = Allocs {
        count: 1,
        bytes: package.len() as u64,
        sizes: vec![package.len()],
    };
    assert_eq!(a, want);
    // Raw body: the same.
    let raw = serde_json::to_vec(&body).unwrap();
    let (a, r) = allocs_in(|| sessions.push(sid, ROUTE, &raw));
    r.unwrap();
    assert_eq!(a, want);
    assert_eq!(drain(&service, &package), 2);
}

#[test]
fn warm_push_to_uid_allocates_the_package_and_one_frame_header() {
    let header = frame_header_size();
    for per_uid in [1, 3, 8] {
        let (service, sessions, names) = fixture(1, per_uid);
        let body = body();
        let package = expected_package(&body);
        assert_eq!(sessions.push_to_uid(&names[0], ROUTE, &body), Ok(per_uid));
        drain(&service, &package);

        let (a, r) = allocs_in(|| sessions.push_to_uid(&names[0], ROUTE, &body));
        assert_eq!(r, Ok(per_uid));
        assert_eq!(
            a,
            Allocs {
                count: 2,
                bytes: (package.len() + header) as u64,
                sizes: vec![package.len(), header],
            },
            "{per_uid} session(s) per uid"
        );
        assert_eq!(drain(&service, &package), per_uid);
    }
}

#[test]
fn push_to_uids_allocates_nothing_per_uid_or_session() {
    let header = frame_header_size();
    let frame_only = |package: &[u8]| Allocs {
        count: 2,
        bytes: (package.len() + header) as u64,
        sizes: vec![package.len(), header],
    };
    let body = body();
    let package = expected_package(&body);
    let mut seen = Vec::new();
    for (uids, per_uid) in [(1, 1), (100, 1), (100, 4)] {
        let (service, sessions, names) = fixture(uids, per_uid);
        let report = sessions.push_to_uids(&names, ROUTE, &body).unwrap();
        assert_eq!(report.push.enqueued(), uids * per_uid);
        drop(report);
        drain(&service, &package);

        let (a, report) = allocs_in(|| sessions.push_to_uids(&names, ROUTE, &body).unwrap());
        assert_eq!(
            (report.push.enqueued(), report.delivered_uids),
            (uids * per_uid, uids)
        );
        assert!(report.missed.is_empty() && report.push.is_complete());
        drop(report);
        assert_eq!(drain(&service, &package), uids * per_uid);
        assert_eq!(a, frame_only(&package), "{uids} uid(s) x {per_uid}");
        seen.push(a);
    }
    // 1 uid vs 100 uids vs 400 sessions: not one allocation or byte apart.
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
}

#[test]
fn push_to_all_allocates_nothing_per_session() {
    let body = body();
    push_to_all_allocates_the_package_and_one_header(&body, &expected_package(&body), |s| s);
}

/// `push_to_all` of `body` (after `prepare` sets up the sessions' encoding) to 1 and to 100
/// sessions: exactly two allocations each time, `package` (at its exact size) and one frame
/// header; nothing per session.
fn push_to_all_allocates_the_package_and_one_header(
    body: &Value,
    package: &[u8],
    prepare: impl Fn(Sessions) -> Sessions,
) {
    let header = frame_header_size();
    let mut seen = Vec::new();
    for sessions_n in [1, 100] {
        let (service, sessions, _) = fixture(sessions_n, 1);
        let sessions = prepare(sessions);
        sessions.push_to_all(ROUTE, body).unwrap(); // warm-up
        assert_eq!(drain(&service, package), sessions_n);

        let (a, report) = allocs_in(|| sessions.push_to_all(ROUTE, body).unwrap());
        assert_eq!(report.enqueued(), sessions_n);
        assert!(report.is_complete());
        drop(report);
        assert_eq!(drain(&service, package), sessions_n);
        assert_eq!(
            a,
            Allocs {
                count: 2,
                bytes: (package.len() + header) as u64,
                sizes: vec![package.len(), header],
            },
            "{sessions_n} session(s)"
        );
        seen.push(a);
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn retry_and_send_batch_allocate_nothing() {
    // One shard of two commands, five bound sessions: three skipped.
    let service = Arc::new(
        SessionService::new(SessionConfig::default().shards(1).inbox_capacity(2)).unwrap(),
    );
    let sids: Vec<Sid> = (0..5)
        .map(|i| {
            let sid = service.create(None).unwrap();
            service.bind(sid, &format!("u{i}")).unwrap();
            sid
        })
        .collect();
    let sessions = Sessions::new(service.clone(), None);
    let mut report = sessions.push_to_all(ROUTE, b"{}").unwrap();
    assert_eq!(report.skipped().len(), 3);
    let inbox = service.inbox(0).unwrap();
    let mut retried = 0;
    while !report.is_complete() {
        let (n, _) = allocs_in(|| inbox.drain(|_| {}));
        assert_eq!(n.count, 0);
        let (a, queued) = allocs_in(|| sessions.retry(&mut report));
        assert_eq!(a.count, 0, "retry allocated: {a:?}");
        retried += queued;
    }
    assert_eq!((retried, report.enqueued()), (3, 5));
    inbox.drain(|_| {});

    let frames: Vec<Frame> = (0..2).map(|i| Frame::new(vec![i; 8])).collect();
    let (a, r) = allocs_in(|| sessions.send_batch(sids[0], &frames));
    assert_eq!(r, Ok(2));
    assert_eq!(a.count, 0, "send_batch allocated: {a:?}");
}

#[test]
fn protobuf_push_to_all_allocates_the_package_and_one_header_like_json() {
    // A route of the server protos (pinus `useProtobuf`): the body is measured
    // (`Message::encoded_len`), then written into the package allocated at its exact size.
    let protos = Arc::new(
        gatehouse::protocol::Protos::from_json(
            r#"{"onPush": {"required uInt32 i": 1, "optional string p": 2, "optional float f": 3,
            "message N": {"optional uInt32 ok": 1, "repeated sInt32 list": 2},
            "optional N nested": 4}}"#,
            "{}",
        )
        .unwrap(),
    );
    let body =
        json!({"i": 41, "p": "x".repeat(100), "f": 2.5, "nested": {"ok": 1, "list": [1, -2]}});
    let mut proto_body = Vec::new();
    protos
        .server(ROUTE)
        .unwrap()
        .encode(&body, &mut proto_body)
        .unwrap();
    let mut package = Vec::new();
    encode_push(Route::Name(ROUTE), &proto_body, &mut package).unwrap();
    assert!(
        package.len() < expected_package(&body).len(),
        "protobuf is smaller"
    );

    push_to_all_allocates_the_package_and_one_header(&body, &package, |s| {
        s.with_protos(Some(protos.clone()))
    });
}
