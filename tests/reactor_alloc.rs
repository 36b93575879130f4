//! The reactor's memory behaviour under load, measured with a counting `#[global_allocator]`:
//!
//! * steady state allocates nothing (design.md): pushes with `send_message` of a pre-built
//!   [`Frame`](gatehouse::Frame) to working sessions, over TCP and WebSocket, drained from the
//!   inbox, copied into each connection's output buffer and written; and, interleaved, client
//!   HEARTBEATs read, decoded and echoed. The one allowed exception is an output buffer growing
//!   to a new high-water mark (it holds only what the kernel refused, so how high it gets
//!   depends on scheduling: a loaded machine can let a client lag more than in the warm-up).
//!   Each allocation of the measured phase is identified by its backtrace: any other one fails
//!   the test, and the growths are bounded to a few doublings per connection;
//! * a client that keeps reading but always lags a little does not make the output buffer grow
//!   with the traffic.
//!
//! The allocator counts **every** allocation of the process in one atomic (the I/O threads are
//! other threads), so the tests take a lock and never overlap. The client side reads into fixed
//! buffers on threads started before a measurement, and the pushing thread only clones frames,
//! so any allocation counted during a window is the server's.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System

mod util;

use gatehouse::__private::ws::{encode_client_frame, header_len};
use gatehouse::protocol::{encode_package, PackageType};
use gatehouse::{SendErrorKind, Sessions, Sid};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use util::{builder, push_frame, Client, TestHandler, Transport};

struct Counting;

/// Allocations (alloc, alloc_zeroed, realloc) by any thread of the process.
static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// The largest size asked of alloc / alloc_zeroed / realloc since it was last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// While set, every allocation's backtrace is kept (the first [`TRACED`]).
static RECORD: AtomicBool = AtomicBool::new(false);
const TRACED: usize = 64;
#[allow(clippy::disallowed_types)] // test-only lock, as SERIAL
static TRACES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
thread_local! {
    /// Capturing a backtrace allocates: do not trace those.
    static TRACING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count(size: usize) {
    if TRACING.with(|t| t.get()) {
        return; // the tracer's own allocations (capturing and formatting a backtrace)
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    if RECORD.load(Ordering::Relaxed) && !TRACING.with(|t| t.replace(true)) {
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        if let Ok(mut traces) = TRACES.lock() {
            if traces.len() < TRACED {
                traces.push(format!(
                    "{size} bytes on {:?}\n{trace}",
                    std::thread::current().name()
                ));
            }
        }
        TRACING.with(|t| t.set(false));
    }
    LARGEST.fetch_max(size, Ordering::Relaxed);
}

/// The tests measure the whole process: one at a time.
#[allow(clippy::disallowed_types)] // test-only lock; the loom shim is for the library
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the counting touches only static atomics (no allocation,
// no re-entrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded verbatim; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: `ptr`/`layout` came from this allocator, which is `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr`/`layout` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::SeqCst)
}

/// A client connection in the working state, its socket split into a writer (for heartbeats)
/// and a reader thread that counts bytes into `received` using a fixed buffer.
struct Sink {
    sid: Sid,
    writer: TcpStream,
    received: Arc<AtomicU64>,
    /// Bytes one push takes on this connection's wire.
    push_len: u64,
    /// A client HEARTBEAT as this transport sends it, and the server's echo length.
    heartbeat: Vec<u8>,
    echo_len: u64,
    /// Bytes the server must have written since `received` started counting.
    expected: u64,
}

impl Sink {
    fn new(
        addr: std::net::SocketAddr,
        t: Transport,
        frame_len: usize,
        stop: &Arc<AtomicBool>,
    ) -> Sink {
        let client = Client::working(addr, t);
        let sid = Sid::from_raw(client.sid());
        let stream = client.into_stream();
        let writer = stream.try_clone().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let mut heartbeat = Vec::new();
        encode_package(PackageType::Heartbeat, b"", &mut heartbeat).unwrap();
        let (push_len, echo_len) = match t {
            Transport::Tcp => (frame_len, 4),
            Transport::Ws => {
                let hb = std::mem::take(&mut heartbeat);
                encode_client_frame(true, 2, [7, 7, 7, 7], &hb, &mut heartbeat);
                (header_len(frame_len) + frame_len, header_len(4) + 4)
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let (count, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match stream.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        count.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(_) => {} // timeout (WouldBlock): an OS error, no allocation
                }
            }
        });
        Sink {
            sid,
            writer,
            received,
            push_len: push_len as u64,
            heartbeat,
            echo_len: echo_len as u64,
            expected: 0,
        }
    }
}

/// `rounds` pushes to every sink, with a client HEARTBEAT every 100 rounds; then waits until
/// every byte arrived. With `window`, a sink gets no new push while more than that many bytes
/// are still on their way to it (a client that keeps up); without, the pusher runs flat out
/// and bursts pile up in the inbox. Allocation-free itself (frames are cloned, heartbeats
/// pre-encoded).
fn run(
    service: &Sessions,
    sinks: &mut [Sink],
    frame: &gatehouse::Frame,
    rounds: u64,
    window: Option<u64>,
) {
    let deadline = Instant::now() + util::wait().max(Duration::from_secs(30));
    for round in 0..rounds {
        for sink in sinks.iter_mut() {
            if let Some(window) = window {
                while sink.expected - sink.received.load(Ordering::SeqCst) > window {
                    assert!(Instant::now() < deadline, "client stopped receiving");
                    std::thread::yield_now();
                }
            }
            let mut f = frame.clone();
            loop {
                match service.send_message(sink.sid, f) {
                    Ok(()) => break,
                    Err(err) => {
                        assert_eq!(err.kind, SendErrorKind::InboxFull, "session gone");
                        f = err.into_frame();
                        std::thread::yield_now();
                    }
                }
            }
            sink.expected += sink.push_len;
            if round % 100 == 0 {
                sink.writer.write_all(&sink.heartbeat).unwrap();
                sink.expected += sink.echo_len;
            }
        }
    }
    for sink in sinks.iter() {
        while sink.received.load(Ordering::SeqCst) < sink.expected {
            assert!(
                Instant::now() < deadline,
                "client did not receive everything"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sink.received.load(Ordering::SeqCst), sink.expected);
    }
}

#[test]
fn reactor_push_path_allocates_nothing_once_warm() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (handler, _seen) = TestHandler::new();
    let server = builder()
        .io_threads(2)
        .heartbeat(Some(Duration::from_secs(30)))
        .start(handler)
        .unwrap();
    let addr = server.local_addr();
    let service = server.service().clone();
    let frame = push_frame(
        "onPush",
        &json!({"seq": 12345, "p": "0123456789abcdef0123456789"}),
    );
    let stop = Arc::new(AtomicBool::new(false));
    // Two connections per transport, spread over both I/O threads.
    let mut sinks: Vec<Sink> = [Transport::Tcp, Transport::Ws, Transport::Tcp, Transport::Ws]
        .into_iter()
        .map(|t| Sink::new(addr, t, frame.len(), &stop))
        .collect();
    let window = Some(32 * 1024);

    // Warm-up: buffers reach their working size.
    for _ in 0..3 {
        run(&service, &mut sinks, &frame, 2_000, window);
    }

    // Steady state: clients that keep up.
    let before = allocs();
    RECORD.store(true, Ordering::SeqCst);
    run(&service, &mut sinks, &frame, 10_000, window);
    RECORD.store(false, Ordering::SeqCst);
    let steady = allocs() - before;
    let traces = std::mem::take(&mut *TRACES.lock().unwrap());

    // Flat out: bursts of thousands of frames per connection and loop turn. Buffers may still
    // grow to a new high-water mark (a doubling each time: a handful), but a burst must not
    // cost allocations of its own (it did: ~12 per burst above 64 KiB, the output buffer being
    // freed after each one and regrown from nothing).
    run(&service, &mut sinks, &frame, 10_000, None);
    let before = allocs();
    run(&service, &mut sinks, &frame, 10_000, None);
    let bursts = allocs() - before;

    // Detector: the counter sees allocations made on the I/O threads. A request makes the
    // handler (on an I/O thread) parse JSON and build a response.
    let request = Client::request_bytes(1, "test.echo", &json!({"detector": true}));
    let mark = allocs();
    let got = sinks[0].received.load(Ordering::SeqCst);
    sinks[0].writer.write_all(&request).unwrap();
    let deadline = Instant::now() + util::wait();
    while sinks[0].received.load(Ordering::SeqCst) == got {
        assert!(
            Instant::now() < deadline,
            "no response to the detector request"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let detected = allocs() - mark;

    // Close the clients (readers stop, writers drop) so the shutdown need not linger.
    stop.store(true, Ordering::Relaxed);
    let sessions = sinks.len();
    drop(sinks);
    let m = server.metrics();
    server.shutdown(None);
    assert!(
        detected > 0,
        "the allocation counter saw nothing on the I/O thread: it is broken"
    );
    assert_eq!(m.frames_dropped, 0);
    // Output-buffer growth: the copy of a frame (or a server package) into `out`.
    let is_growth =
        |t: &String| t.contains("ConnCore::write_raw") || t.contains("ConnCore::write_package");
    let other: Vec<&String> = traces.iter().filter(|t| !is_growth(t)).collect();
    assert!(
        steady as usize <= TRACED && other.is_empty(),
        "{steady} allocations during 10 000 pushes to each of {sessions} sessions (TCP and WS), {} not an output buffer reaching a new high-water mark; the first:\n{}",
        other.len(),
        other.first().map_or("(more than were traced)", |t| t.as_str())
    );
    assert!(
        steady as usize <= 3 * sessions,
        "{steady} output-buffer growths during the steady phase: more than a few doublings per connection"
    );
    assert!(
        bursts <= 64,
        "{bursts} allocations during 10 000 unpaced pushes to each of {sessions} sessions"
    );
}

/// A client that reads steadily but always a little less than it is sent: the server's
/// output never drains completely. The written prefix of the output buffer must be reclaimed
/// (it was not: the buffer grew by everything ever sent while its pending part stayed under
/// the limit, hundreds of MiB here).
///
/// The bound asserted holds whatever the kernel buffers: pending output is at most what was
/// queued minus what the client read, the buffer holds at most twice that, and capacity at
/// most doubles past it. (The old behaviour shows only if the lag exceeds what the kernel's
/// socket buffers absorb, which the 16 MiB head start ensures on a default Linux.)
#[test]
fn output_buffer_of_a_lagging_reader_stays_bounded() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const MIB: u64 = 1 << 20;
    let (handler, _seen) = TestHandler::new();
    let server = builder()
        .io_threads(1)
        .max_outbound_bytes(64 << 20)
        .start(handler)
        .unwrap();
    let client = Client::working(server.local_addr(), Transport::Tcp);
    let sid = Sid::from_raw(client.sid());
    let mut stream = client.into_stream();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let frame = push_frame("onBig", &json!({"p": "x".repeat(64 * 1024 - 40)}));
    let per_mib = (MIB / frame.len() as u64) as usize; // frames per step, just under 1 MiB
    let step = (per_mib * frame.len()) as u64;
    let push = |n: usize| {
        for _ in 0..n {
            server
                .service()
                .send_message(sid, frame.clone())
                .expect("session alive");
        }
    };
    let (head_start, lag_per_step, steps) = (16 * per_mib, 4096, 400u64);
    let mut buf = vec![0u8; MIB as usize];
    LARGEST.store(0, Ordering::SeqCst);
    push(head_start);
    for _ in 0..steps {
        push(per_mib);
        stream
            .read_exact(&mut buf[..(step - lag_per_step) as usize])
            .expect("pushes arrive");
    }
    let largest = LARGEST.load(Ordering::SeqCst) as u64;
    let m = server.metrics();
    drop(stream);
    server.shutdown(None);
    assert_eq!(m.closes.slow_consumer, 0, "the limit is above the lag");
    let max_pending = (head_start as u64) * frame.len() as u64 + steps * lag_per_step + step;
    assert!(
        largest <= 4 * max_pending,
        "largest allocation {} MiB while at most {} MiB were pending",
        largest / MIB,
        max_pending / MIB
    );
}
