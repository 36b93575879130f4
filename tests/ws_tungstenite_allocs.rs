//! The comparison behind gatehouse's own WebSocket frame codec (`src/ws/frame.rs`), as exact
//! allocation counts: gatehouse's codec against `tungstenite` (a dev-dependency used only
//! here) on the same traffic, per binary message after warm-up, over an in-memory duplex
//! stream (the allocation counts are deterministic: same code, same inputs, same counts).
//!
//! design.md requires zero heap allocations in the reactor's steady-state read/decode/write
//! cycle. Asserted, tungstenite 0.30 (Cargo.lock) against gatehouse, per message:
//!
//! * read a whole 64 B or 4 KiB binary message: **0 and 0** (tungstenite splits payloads off a
//!   `BytesMut`);
//! * read a message in 2 fragments: **exactly 2 against 0** (tungstenite collects the
//!   fragments into a fresh `Vec`): the case where gatehouse's codec allocates strictly less;
//! * send (`send`, or 32 × `write` + one `flush`): **0 and 0**;
//! * heap held by an idle connection's codec after one message in and one out: tungstenite
//!   holds its read buffer, **at least 128 KiB** by default and 4 KiB with a 4 KiB
//!   `read_buffer_size`, gatehouse's decoder **0 bytes**.
//!
//! So the decision (`src/ws/mod.rs`) rests on fragmented reads and idle memory, not on the
//! unfragmented path or sends, where tungstenite 0.30 allocates nothing either. If a tungstenite
//! upgrade changes a count, the test fails and the decision deserves a new look.
//!
//! Wall-clock figures are not asserted (this machine's noise is far above the differences a
//! test could check). Measured once, release build, idle machine: per 64 B read ≈ 750 ns for
//! tungstenite's default config (it zero-fills its 128 KiB read buffer before each read),
//! ≈ 120 ns with a 4 KiB read buffer, ≈ 18 ns for gatehouse's `FrameDecoder`.
//!
//! Own test binary: `#[global_allocator]` applies to the whole binary. The counter is per thread
//! (toolchain.md §6), so parallel tests don't pollute each other.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System

use gatehouse::__private::ws::{encode_binary_header, FrameDecoder, WsEvent};
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

/// Allocations tungstenite makes reading `MEASURED` binary messages of `size` bytes after
/// warm-up, each arriving on its own (one message per poll), split in `fragments` frames.
fn tungstenite_read_allocs(size: usize, fragments: usize, config: WebSocketConfig) -> usize {
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
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED {
            read_one(&mut ws);
        }
    });
    n
}

/// The same traffic through gatehouse's decoder, the way the reactor drives it: each message's
/// bytes are copied into the connection buffer (the socket read), then decoded. Allocations
/// over the `MEASURED` messages.
fn gatehouse_read_allocs(size: usize, fragments: usize) -> usize {
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
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED {
            read_one(&mut buf, &mut decoder);
        }
    });
    n
}

/// Allocations tungstenite makes sending `MEASURED` binary messages (`send` = write + flush)
/// after warm-up. The payload is a `Bytes` over static memory, so building the `Message`
/// allocates nothing: whatever is counted is tungstenite's own.
fn tungstenite_send_allocs(payload: &'static [u8]) -> usize {
    let mut ws = server(Vec::new());
    for _ in 0..WARM {
        ws.send(Message::Binary(Bytes::from_static(payload)))
            .expect("warm-up send");
    }
    ws.get_mut().tx = 0;
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED {
            ws.send(Message::Binary(Bytes::from_static(payload)))
                .expect("send");
        }
    });
    // Everything was written: the count is of real sends.
    assert_eq!(
        ws.get_ref().tx,
        MEASURED * (payload.len() + header_len(payload.len()))
    );
    n
}

/// The same with `write` for a batch of 32 messages and one `flush` per batch.
fn tungstenite_write_batch_allocs(payload: &'static [u8]) -> usize {
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
    let (n, ()) = allocs_in(|| {
        for _ in 0..MEASURED / 32 {
            batch(&mut ws);
        }
    });
    assert_eq!(
        ws.get_ref().tx,
        (MEASURED / 32) * 32 * (payload.len() + header_len(payload.len()))
    );
    n
}

/// gatehouse's send path, the way the reactor writes a push: the frame header and the payload
/// appended to the connection's (warm) output buffer, which the socket write then drains.
fn gatehouse_send_allocs(payload: &'static [u8]) -> usize {
    let mut out: Vec<u8> = Vec::new();
    // One push: bytes handed to the socket write, which takes them all.
    let send = |out: &mut Vec<u8>| {
        encode_binary_header(payload.len(), out);
        out.extend_from_slice(payload);
        let written = out.len();
        out.clear();
        written
    };
    for _ in 0..WARM {
        send(&mut out);
    }
    let (n, written) = allocs_in(|| (0..MEASURED).map(|_| send(&mut out)).sum::<usize>());
    assert_eq!(
        written,
        MEASURED * (payload.len() + header_len(payload.len()))
    );
    n
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
fn reading_whole_messages_neither_allocates() {
    for size in [64, 4096] {
        for (name, config) in [
            ("default", WebSocketConfig::default()),
            (
                "4 KiB read buffer",
                WebSocketConfig::default().read_buffer_size(4096),
            ),
        ] {
            assert_eq!(
                tungstenite_read_allocs(size, 1, config),
                0,
                "tungstenite ({name}), {size} B"
            );
        }
        assert_eq!(gatehouse_read_allocs(size, 1), 0, "gatehouse, {size} B");
    }
}

#[test]
fn reading_fragmented_messages_tungstenite_allocates_two_per_message_gatehouse_none() {
    for size in [64, 4096] {
        for (name, config) in [
            ("default", WebSocketConfig::default()),
            (
                "4 KiB read buffer",
                WebSocketConfig::default().read_buffer_size(4096),
            ),
        ] {
            // A fragmented message is collected into a fresh `Vec` (and grown once) every time.
            assert_eq!(
                tungstenite_read_allocs(size, 2, config),
                2 * MEASURED,
                "tungstenite ({name}), {size} B in 2 fragments"
            );
        }
        // Reassembled in the decoder's buffer, warm after the first fragmented message.
        assert_eq!(
            gatehouse_read_allocs(size, 2),
            0,
            "gatehouse, {size} B in 2 fragments"
        );
    }
}

#[test]
fn sending_neither_allocates() {
    for payload in [&SMALL[..], &LARGE[..]] {
        let payload: &'static [u8] = payload;
        let len = payload.len();
        assert_eq!(
            tungstenite_send_allocs(payload),
            0,
            "tungstenite send, {len} B"
        );
        assert_eq!(
            tungstenite_write_batch_allocs(payload),
            0,
            "tungstenite write x32 + flush, {len} B"
        );
        assert_eq!(gatehouse_send_allocs(payload), 0, "gatehouse, {len} B");
    }
}

/// Heap bytes held once a connection's codec has read and sent one message: tungstenite owns a
/// read buffer (`read_buffer_size`, default 128 KiB, allocated up front) and a write buffer per
/// connection; gatehouse's decoder holds nothing for a connection between whole messages (the
/// connection's socket buffers are the reactor's, shared by all codecs alike).
#[test]
fn an_idle_connection_holds_tungstenite_s_read_buffer_and_nothing_of_gatehouse_s() {
    let mut wire = Vec::new();
    client_frame(true, 2, &SMALL, [1, 2, 3, 4], &mut wire);
    for (name, config, at_least) in [
        ("default config", WebSocketConfig::default(), 128 * 1024),
        (
            "read_buffer_size 4 KiB",
            WebSocketConfig::default().read_buffer_size(4096),
            4 * 1024,
        ),
    ] {
        let stream = Duplex {
            rx: wire.clone(),
            pos: 0,
            avail: wire.len(),
            tx: 0,
        };
        // The duplex's `rx` was allocated before `before`: only tungstenite's bytes count.
        let before = THREAD_BYTES.with(Cell::get);
        let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
        drop(ws.read().expect("read"));
        ws.send(Message::Binary(Bytes::from_static(&SMALL)))
            .expect("send");
        let held = THREAD_BYTES.with(Cell::get) - before;
        assert!(held >= at_least, "tungstenite, {name}: {held} bytes held");
        drop(ws);
    }

    let mut buf = wire.clone();
    let mut out = Vec::with_capacity(128);
    let before = THREAD_BYTES.with(Cell::get);
    let mut decoder = FrameDecoder::new(64 * 1024);
    let decoded = decoder.decode(&mut buf).expect("valid");
    assert!(matches!(decoded.event, WsEvent::Binary(p) if p.len() == SMALL.len()));
    encode_binary_header(SMALL.len(), &mut out);
    out.extend_from_slice(&SMALL);
    let held = THREAD_BYTES.with(Cell::get) - before;
    assert_eq!(held, 0, "gatehouse's decoder: {held} bytes held");
    assert_eq!(decoder.heap_bytes(), 0);
    assert_eq!(out.len(), 2 + SMALL.len());
}

#[test]
fn detector_sees_allocations() {
    let (n, v) = allocs_in(|| vec![1u8; 32]);
    assert_eq!(v.len(), 32);
    assert!(n >= 1);
    // And the byte counter sees what is held.
    let before = THREAD_BYTES.with(Cell::get);
    let held = vec![0u8; 1000];
    assert_eq!(THREAD_BYTES.with(Cell::get) - before, 1000);
    drop(held);
    assert_eq!(THREAD_BYTES.with(Cell::get) - before, 0);
}
