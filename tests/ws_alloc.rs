//! Zero heap allocations in the WebSocket codec's steady state (design.md): decoding client
//! frames (whole, fragmented, control frames between), encoding server frames, and the
//! opening (sniff, upgrade parse, 101 answer), once buffers are warm.
//!
//! Own test binary: `#[global_allocator]` applies to the whole binary. The counter is per thread
//! (toolchain.md §6), so parallel tests don't pollute each other.

use gatehouse::__private::ws::{
    encode_accept, encode_binary_header, encode_client_frame, encode_close, encode_pong, sniff,
    FrameDecoder, Sniff, UpgradeParser, WsEvent, DEFAULT_MAX_MESSAGE,
};

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::allocs_in;

/// A client's traffic for one reactor turn: small and 16-bit-length binary messages, a
/// fragmented message with a ping and a pong between its fragments, a text message.
fn client_wire() -> Vec<u8> {
    let mut wire = Vec::new();
    let mask = [0x11, 0x22, 0x33, 0x44];
    for i in 0..16u8 {
        encode_client_frame(true, 2, mask, &[4, 0, 0, 3, 0, 1, i], &mut wire);
    }
    encode_client_frame(true, 2, mask, &[7; 1000], &mut wire);
    encode_client_frame(false, 2, mask, &[1; 3000], &mut wire);
    encode_client_frame(true, 9, mask, b"are you there", &mut wire);
    encode_client_frame(false, 0, mask, &[2; 3000], &mut wire);
    encode_client_frame(true, 0xA, mask, b"", &mut wire);
    encode_client_frame(true, 0, mask, &[3; 10], &mut wire);
    encode_client_frame(true, 1, mask, b"\x03\x00\x00\x00", &mut wire);
    wire
}

/// One reactor turn: copy the wire into the connection buffer (as a socket read would), decode
/// everything, answer pings. Returns (messages, payload bytes).
fn turn(
    wire: &[u8],
    buf: &mut Vec<u8>,
    decoder: &mut FrameDecoder,
    out: &mut Vec<u8>,
) -> (usize, usize) {
    buf.clear();
    buf.extend_from_slice(wire);
    out.clear();
    let (mut messages, mut bytes, mut pos) = (0, 0, 0);
    loop {
        let decoded = decoder.decode(&mut buf[pos..]).expect("valid traffic");
        pos += decoded.consumed;
        match decoded.event {
            WsEvent::Binary(p) => {
                messages += 1;
                bytes += p.len();
            }
            WsEvent::Ping(p) => encode_pong(p, out),
            WsEvent::Close { .. } => unreachable!(),
            WsEvent::NeedMore => break,
        }
    }
    assert_eq!(pos, wire.len());
    (messages, bytes)
}

#[test]
fn steady_state_decode_does_not_allocate() {
    let wire = client_wire();
    let mut buf = Vec::with_capacity(wire.len());
    let mut out = Vec::with_capacity(256);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_MESSAGE);
    // Warm-up: the fragment buffer grows once.
    assert_eq!(
        turn(&wire, &mut buf, &mut decoder, &mut out),
        (19, 16 * 7 + 1000 + 6010 + 4)
    );
    let (n, ()) = allocs_in(|| {
        for _ in 0..1000 {
            let (messages, _) = turn(&wire, &mut buf, &mut decoder, &mut out);
            assert_eq!(messages, 19);
        }
    });
    assert_eq!(
        n, 0,
        "allocations in 1000 turns of 19 messages, 1 ping, 1 pong"
    );
}

#[test]
fn steady_state_encode_does_not_allocate() {
    let packages = [[4u8, 0, 0, 3, 0, 1, 2]; 32];
    let mut out = Vec::with_capacity(64 * 1024);
    let encode_turn = |out: &mut Vec<u8>| {
        out.clear();
        // One frame per package, then 32 packages coalesced into one frame.
        for p in &packages {
            encode_binary_header(p.len(), out);
            out.extend_from_slice(p);
        }
        encode_binary_header(packages.len() * 7, out);
        for p in &packages {
            out.extend_from_slice(p);
        }
        encode_binary_header(40_000, out);
        out.resize(out.len() + 40_000, 0);
        encode_pong(b"are you there", out);
        encode_close(Some(1000), "bye", out);
    };
    encode_turn(&mut out);
    let (n, ()) = allocs_in(|| {
        for _ in 0..1000 {
            encode_turn(&mut out);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn opening_does_not_allocate_once_buffers_exist() {
    let request: &[u8] = b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nX-Real-IP: 10.0.0.1\r\n\r\n";
    let mut out = Vec::with_capacity(256);
    let (n, ()) = allocs_in(|| {
        for _ in 0..100 {
            out.clear();
            assert_eq!(sniff(&request[..2]), Sniff::NeedMore);
            assert_eq!(sniff(request), Sniff::WebSocket);
            let mut parser = UpgradeParser::new();
            assert_eq!(parser.parse(&request[..50], Some("x-real-ip")), Ok(None));
            let up = parser.parse(request, Some("x-real-ip")).unwrap().unwrap();
            encode_accept(up.key, &mut out);
            let mut decoder = FrameDecoder::default(); // no heap until a client fragments
            let mut empty = [];
            assert_eq!(decoder.decode(&mut empty).unwrap().event, WsEvent::NeedMore);
        }
    });
    assert_eq!(n, 0);
}

#[test]
fn detector_sees_allocations() {
    let (n, v) = allocs_in(|| vec![1u8; 32]);
    assert_eq!(v.len(), 32);
    assert!(n >= 1);
}
