//! The measurement behind gatehouse's own WebSocket frame codec (`src/ws/frame.rs`).
//!
//! design.md requires zero heap allocations in the reactor's steady-state read/decode/write
//! cycle. This binary counts the allocations `tungstenite` (a dev-dependency used only here)
//! makes per binary message, after warm-up, over an in-memory duplex stream:
//!
//! * server side `WebSocket::read` of a masked client binary frame;
//! * server side `WebSocket::send` (write + flush), and `write` + one `flush` per batch.
//!
//! Figures on tungstenite 0.30.0 (print them with `cargo test --release --test
//! ws_tungstenite_allocs -- --nocapture --test-threads=1`), per message after warm-up:
//! **read: 0 allocations** for a whole 64 B or 4 KiB binary message (payloads are split off a
//! `BytesMut`), **2 for a message in 2 fragments**; **send: 0**. Time per 64 B read: ≈ 750 ns
//! with the default config (it zero-fills its 128 KiB read buffer before each read), ≈ 120 ns
//! with a 4 KiB read buffer, against ≈ 18 ns for gatehouse's `FrameDecoder` on the same bytes.
//! An idle server `WebSocket` holds 131 KiB (4.2 KiB with the 4 KiB buffer). The decision and
//! its reasons are in `src/ws/mod.rs`.
//!
//! The assertions pin what the numbers rest on (fragmented reads allocate, an idle connection
//! holds kilobytes, gatehouse's decoder allocates nothing): if a tungstenite upgrade breaks them,
//! the decision deserves a new look.
//!
//! Own test binary: `#[global_allocator]` applies to the whole binary. The counter is per thread
//! (toolchain.md §6), so parallel tests don't pollute each other.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System

use gatehouse::__private::ws::{FrameDecoder, WsEvent};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::{Bytes, Message};

struct Counting;

thread_local! {
    // const init, no Drop: touching it never allocates.
    static THREAD_ALLOCS: Cell<usize> = const { Cell::new(0) };
    // Live heap bytes allocated minus freed on this thread (wrapping: frees of memory
    // allocated elsewhere may be seen first).
    static THREAD_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add_bytes(n: isize) {
    let _ = THREAD_BYTES.try_with(|c| c.set(c.get().wrapping_add(n)));
}

fn count() {
    // try_with: the TLS slot may be gone while a thread exits.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the counting touches only a thread-local `Cell`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        add_bytes(layout.size() as isize);
        // SAFETY: forwarded verbatim; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        add_bytes(layout.size() as isize);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        add_bytes(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr`/`layout` came from this allocator, which is `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_bytes(-(layout.size() as isize));
        // SAFETY: `ptr`/`layout` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocs_in<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = THREAD_ALLOCS.with(Cell::get);
    let r = f();
    (THREAD_ALLOCS.with(Cell::get) - before, r)
}

/// An in-memory duplex stream. Reads drain `rx[pos..avail]` and then return `WouldBlock`, so a
/// test advances `avail` by one frame per "poll" (one message arrives per readiness event, as
/// on a real socket). Writes are counted in `tx` and discarded (a socket that always accepts).
struct Duplex {
    rx: Vec<u8>,
    pos: usize,
    avail: usize,
    tx: usize,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.rx[self.pos..self.avail];
        if left.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends one masked client frame (`fin`, `opcode`) carrying `payload`.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

const WARM: usize = 200;
/// Enough messages that the stream carries far more than tungstenite's 128 KiB read buffer.
const MEASURED: usize = 5_000;

fn server(rx: Vec<u8>) -> WebSocket<Duplex> {
    server_with(rx, WebSocketConfig::default())
}

fn server_with(rx: Vec<u8>, config: WebSocketConfig) -> WebSocket<Duplex> {
    let stream = Duplex {
        rx,
        pos: 0,
        avail: 0,
        tx: 0,
    };
    WebSocket::from_raw_socket(stream, Role::Server, Some(config))
}

struct ReadFigures {
    allocs_per_message: f64,
    ns_per_message: f64,
}

/// The client traffic: `WARM + MEASURED` messages of `size` bytes, each in `fragments` frames,
/// and where each message ends in the stream.
fn client_traffic(size: usize, fragments: usize) -> (Vec<u8>, Vec<usize>) {
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    for i in 0..WARM + MEASURED {
        let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes();
        let step = size.div_ceil(fragments);
        for (k, part) in payload.chunks(step).enumerate() {
            let last = (k + 1) * step >= size;
            client_frame(last, if k == 0 { 2 } else { 0 }, part, mask, &mut wire);
        }
        ends.push(wire.len());
    }
    (wire, ends)
}

/// Allocations and time per received binary message of `size` bytes, after warm-up. Each
/// message arrives on its own (one message per poll), split in `fragments` frames.
fn read_figures(size: usize, fragments: usize, config: WebSocketConfig) -> ReadFigures {
    let (wire, ends) = client_traffic(size, fragments);
    let mut ws = server_with(wire, config);
    let mut next = ends.iter();
    let mut read_one = |ws: &mut WebSocket<Duplex>| {
        ws.get_mut().avail = *next.next().expect("enough frames");
        let m = ws.read().expect("read");
        assert!(matches!(&m, Message::Binary(b) if b.len() == size));
        // The handler is done with the message before the next readiness event.
        std::hint::black_box(m);
    };
    for _ in 0..WARM {
        read_one(&mut ws);
    }
    let t0 = std::time::Instant::now();
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED {
            read_one(&mut ws);
        }
    });
    let ns = t0.elapsed().as_nanos() as f64;
    ReadFigures {
        allocs_per_message: n as f64 / MEASURED as f64,
        ns_per_message: ns / MEASURED as f64,
    }
}

/// The same traffic through gatehouse's decoder, the way the reactor drives it: each message's
/// bytes are copied into the connection buffer (the socket read), then decoded.
fn gatehouse_read_figures(size: usize, fragments: usize) -> ReadFigures {
    let (wire, ends) = client_traffic(size, fragments);
    let mut decoder = FrameDecoder::new(64 * 1024);
    let mut buf = Vec::with_capacity(2 * (size + 64));
    let mut start = 0;
    let mut next = ends.iter();
    let mut read_one = |buf: &mut Vec<u8>, decoder: &mut FrameDecoder| {
        let end = *next.next().expect("enough frames");
        buf.clear();
        buf.extend_from_slice(&wire[start..end]);
        start = end;
        let decoded = decoder.decode(buf).expect("valid");
        assert!(matches!(decoded.event, WsEvent::Binary(p) if p.len() == size));
        std::hint::black_box(decoded);
    };
    for _ in 0..WARM {
        read_one(&mut buf, &mut decoder);
    }
    let t0 = std::time::Instant::now();
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED {
            read_one(&mut buf, &mut decoder);
        }
    });
    let ns = t0.elapsed().as_nanos() as f64;
    ReadFigures {
        allocs_per_message: n as f64 / MEASURED as f64,
        ns_per_message: ns / MEASURED as f64,
    }
}

/// Allocations per sent binary message of `size` bytes (`send` = write + flush), after warm-up.
/// The payload is a `Bytes` over static memory, so building the `Message` allocates nothing:
/// whatever is counted is tungstenite's own.
fn send_allocs_per_message(payload: &'static [u8]) -> f64 {
    let mut ws = server(Vec::new());
    for _ in 0..WARM {
        ws.send(Message::Binary(Bytes::from_static(payload)))
            .expect("warm-up send");
    }
    ws.get_mut().tx = 0;
    let t0 = std::time::Instant::now();
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED {
            ws.send(Message::Binary(Bytes::from_static(payload)))
                .expect("send");
        }
    });
    let ns = t0.elapsed().as_nanos() as f64 / MEASURED as f64;
    assert_eq!(
        ws.get_ref().tx,
        MEASURED * (payload.len() + header_len(payload.len()))
    );
    println!(
        "tungstenite 0.30 send, {} B: {ns:.0} ns per message",
        payload.len()
    );
    n as f64 / MEASURED as f64
}

/// Allocations per message with `write` for a batch of 32 messages and one `flush` per batch.
fn write_batch_allocs_per_message(payload: &'static [u8]) -> f64 {
    let mut ws = server(Vec::new());
    let batch = |ws: &mut WebSocket<Duplex>| {
        for _ in 0..32 {
            ws.write(Message::Binary(Bytes::from_static(payload)))
                .expect("write");
        }
        ws.flush().expect("flush");
    };
    for _ in 0..WARM / 32 + 1 {
        batch(&mut ws);
    }
    ws.get_mut().tx = 0;
    let batches = MEASURED / 32;
    let (n, ()) = allocs_in(|| {
        for _ in 0..batches {
            batch(&mut ws);
        }
    });
    n as f64 / (batches * 32) as f64
}

fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

static SMALL: [u8; 64] = [0x5a; 64];
static LARGE: [u8; 4096] = [0xa5; 4096];

#[test]
fn tungstenite_read_allocations_per_message() {
    let small_buffer = WebSocketConfig::default().read_buffer_size(4096);
    for size in [64, 4096] {
        for (name, config) in [
            ("default", WebSocketConfig::default()),
            ("4 KiB read buffer", small_buffer),
        ] {
            let f = read_figures(size, 1, config);
            let g = read_figures(size, 2, config);
            println!(
                "tungstenite 0.30 WebSocket::read ({name}), {size} B binary message: {} \
                 allocations and {:.0} ns per message; in 2 fragments: {} allocations and \
                 {:.0} ns per message",
                f.allocs_per_message, f.ns_per_message, g.allocs_per_message, g.ns_per_message
            );
            // A fragmented message is collected into a fresh `Vec` every time.
            assert!(
                g.allocs_per_message >= 1.0,
                "{size} B in 2 fragments: {}",
                g.allocs_per_message
            );
        }
        for fragments in [1, 2] {
            let ours = gatehouse_read_figures(size, fragments);
            println!(
                "gatehouse FrameDecoder, {size} B binary message in {fragments} frame(s): {} \
                 allocations and {:.0} ns per message",
                ours.allocs_per_message, ours.ns_per_message
            );
            assert_eq!(ours.allocs_per_message, 0.0);
        }
    }
}

#[test]
fn tungstenite_write_allocations_per_message() {
    let send_small = send_allocs_per_message(&SMALL);
    let send_large = send_allocs_per_message(&LARGE);
    let batch_small = write_batch_allocs_per_message(&SMALL);
    let batch_large = write_batch_allocs_per_message(&LARGE);
    println!(
        "tungstenite 0.30 allocations per sent binary message: send 64 B: {send_small}, \
         send 4096 B: {send_large}, write×32+flush 64 B: {batch_small}, 4096 B: {batch_large}"
    );
}

/// Heap bytes an idle server-side `WebSocket` holds once it has read and sent one message:
/// tungstenite owns a read buffer (`read_buffer_size`, default 128 KiB, allocated up front)
/// and a write buffer per connection, where gatehouse's codec holds none while idle.
#[test]
fn tungstenite_idle_connection_bytes() {
    for (name, config) in [
        ("default config", WebSocketConfig::default()),
        (
            "read_buffer_size 4 KiB",
            WebSocketConfig::default().read_buffer_size(4096),
        ),
    ] {
        let mut wire = Vec::new();
        client_frame(true, 2, &SMALL, [1, 2, 3, 4], &mut wire);
        let avail = wire.len();
        let before = THREAD_BYTES.with(Cell::get);
        let stream = Duplex {
            rx: wire,
            pos: 0,
            avail,
            tx: 0,
        };
        let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
        drop(ws.read().expect("read"));
        ws.send(Message::Binary(Bytes::from_static(&SMALL)))
            .expect("send");
        let held = THREAD_BYTES.with(Cell::get) - before;
        // The duplex's `rx` was allocated before `before`: only tungstenite's bytes count.
        println!("tungstenite 0.30 idle server WebSocket ({name}): {held} heap bytes held");
        assert!(held > 1024, "{name}: {held}");
        drop(ws);
    }
}

#[test]
fn detector_sees_allocations() {
    let (n, v) = allocs_in(|| vec![1u8; 32]);
    assert_eq!(v.len(), 32);
    assert!(n >= 1);
}
