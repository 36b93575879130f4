//! Fuzz entry points for the WebSocket layer, and the items tests reach through
//! `gatehouse::__private::ws`. **Not public API, outside semver.**
//!
//! Each `fuzz_*` function takes raw bytes, runs the codec on them and asserts its properties,
//! panicking on a violation; a fuzz target is a one-liner calling it, and `tests/ws_*.rs` run
//! them over deterministic inputs on stable. They allocate freely (they build reference results);
//! the code under test does not.

pub use super::frame::{
    binary_header, close_code_may_be_sent, encode_binary, encode_binary_header, encode_close,
    encode_pong, header_len, unmask, Decoded, FrameDecoder, FrameHeader, WsError, WsEvent,
    DEFAULT_MAX_MESSAGE, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN,
};
pub use super::handshake::{
    accept_key, encode_accept, HandshakeError, Upgrade, UpgradeParser, MAX_HEADERS,
    MAX_REQUEST_BYTES,
};
pub use super::sniff::{sniff, Sniff, SNIFF_MAX};
/// The repository's one test generator, also reachable here for the `tests/ws_*.rs` files.
pub use crate::xorshift::XorShift;

/// Appends a masked client frame (what a browser sends) to `out`: `fin`, `opcode` (any 4-bit
/// value, for tests of invalid frames), the payload masked with `mask`, and the shortest length
/// form. A test helper: the server never masks.
pub fn encode_client_frame(
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0F));
    let n = payload.len();
    match n {
        0..=125 => out.push(0x80 | n as u8),
        126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    unmask(&mut out[start..], mask); // XOR is its own inverse
}

/// An owned copy of a [`WsEvent`], for comparing runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedEvent {
    /// [`WsEvent::Binary`].
    Binary(Vec<u8>),
    /// [`WsEvent::Ping`].
    Ping(Vec<u8>),
    /// [`WsEvent::Close`].
    Close(Option<u16>, String),
}

/// How a decode run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Out of input, with this many bytes of an incomplete frame left in the buffer.
    NeedMore(usize),
    /// The client closed.
    Closed,
    /// A protocol error.
    Error(WsError),
}

/// Feeds `input` to a fresh decoder the way a reactor would: `chunk` yields the size of each
/// read (≥ 1), bytes are appended to a connection buffer, `decode` runs until `NeedMore`, and
/// consumed bytes are dropped. Returns the events and how the run ended, after checking the
/// per-call invariants (consumed within the buffer, limits respected, bounded buffering).
pub fn run_decoder(
    max_message: usize,
    input: &[u8],
    mut chunk: impl FnMut() -> usize,
) -> (Vec<OwnedEvent>, Ending) {
    let mut decoder = FrameDecoder::new(max_message);
    let bound = MAX_HEADER_LEN + max_message.max(MAX_CONTROL_PAYLOAD);
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut fed = 0;
    loop {
        let n = chunk().max(1).min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let len = buf.len();
            let decoded = match decoder.decode(&mut buf) {
                Ok(d) => d,
                Err(e) => {
                    assert!(decoder.is_finished());
                    return (events, Ending::Error(e));
                }
            };
            assert!(
                decoded.consumed <= len,
                "consumed {} of {len}",
                decoded.consumed
            );
            let consumed = decoded.consumed;
            let mut closed = false;
            match decoded.event {
                WsEvent::NeedMore => {}
                WsEvent::Binary(p) => {
                    assert!(p.len() <= max_message, "{} > {max_message}", p.len());
                    events.push(OwnedEvent::Binary(p.to_vec()));
                }
                WsEvent::Ping(p) => {
                    assert!(p.len() <= MAX_CONTROL_PAYLOAD);
                    events.push(OwnedEvent::Ping(p.to_vec()));
                }
                WsEvent::Close { code, reason } => {
                    assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
                    assert!(code.is_none_or(close_code_may_be_sent));
                    events.push(OwnedEvent::Close(code, reason.to_owned()));
                    closed = true;
                }
            }
            let need_more = matches!(decoded.event, WsEvent::NeedMore);
            buf.drain(..consumed);
            assert!(
                decoder.heap_bytes() <= max_message,
                "{}",
                decoder.heap_bytes()
            );
            if closed {
                assert!(decoder.is_finished());
                return (events, Ending::Closed);
            }
            if need_more {
                // Bounded memory: what stays buffered is one incomplete, already-accepted frame.
                assert!(
                    buf.len() <= bound,
                    "{} bytes buffered, bound {bound}",
                    buf.len()
                );
                break;
            }
        }
        if fed == input.len() {
            return (events, Ending::NeedMore(buf.len()));
        }
    }
}

/// Arbitrary bytes as client input: decoding must not panic, must respect every limit, and
/// must give the same events and ending whether the input arrives whole, byte by byte, or in
/// chunks whose sizes derive from the data.
///
/// Layout: byte 0 picks the message limit, byte 1 seeds the chunk sizes, the rest is input.
pub fn fuzz_frames(data: &[u8]) {
    let (Some(&limit), Some(&seed)) = (data.first(), data.get(1)) else {
        return;
    };
    let max_message =
        [0, 16, 125, 126, 1000, 65_535, 65_536, DEFAULT_MAX_MESSAGE][usize::from(limit & 7)];
    let input = &data[2..];

    let whole = run_decoder(max_message, input, || usize::MAX);
    let bytewise = run_decoder(max_message, input, || 1);
    assert_eq!(whole, bytewise, "whole vs byte by byte");
    let mut rng = XorShift::new(u64::from(seed) << 8 | u64::from(limit));
    let span = 1 + u64::from(seed % 64);
    let chunked = run_decoder(max_message, input, || 1 + rng.below(span) as usize);
    assert_eq!(whole, chunked, "whole vs chunked");
}

/// Messages derived from the data, encoded as a browser would (masked, randomly fragmented,
/// pings and pongs between fragments), decoded in random chunks: every message and ping must
/// come out exactly as it went in, followed by the close.
pub fn fuzz_frames_roundtrip(data: &[u8]) {
    let mut rng = XorShift::new(data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }));
    let max_message = 1 + rng.below(3000) as usize;
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let take = (rng.below(rest.len() as u64 + 1) as usize).min(max_message);
        let (message, tail) = rest.split_at(take);
        rest = tail;
        let mask = (rng.next_u64() as u32).to_ne_bytes();
        if rng.below(4) == 0 {
            let ping = &message[..message.len().min(MAX_CONTROL_PAYLOAD)];
            encode_client_frame(true, 0x9, mask, ping, &mut wire);
            expected.push(OwnedEvent::Ping(ping.to_vec()));
        }
        let text = rng.below(4) == 0 && std::str::from_utf8(message).is_ok();
        let mut opcode = if text { 0x1 } else { 0x2 };
        let mut left = message;
        loop {
            let n = rng.below(left.len() as u64 + 1) as usize;
            let (part, tail) = left.split_at(n);
            left = tail;
            let fin = left.is_empty() && rng.below(3) != 0;
            encode_client_frame(fin, opcode, mask, part, &mut wire);
            opcode = 0x0;
            if fin {
                break;
            }
            if rng.below(3) == 0 {
                encode_client_frame(true, 0xA, mask, b"pong", &mut wire); // ignored
            }
        }
        expected.push(OwnedEvent::Binary(message.to_vec()));
        if expected.len() > 64 {
            break;
        }
    }
    encode_client_frame(true, 0x8, [9, 8, 7, 6], b"\x03\xe8bye", &mut wire);
    expected.push(OwnedEvent::Close(Some(1000), "bye".to_owned()));
    wire.extend_from_slice(b"ignored after the close");

    let span = 1 + rng.below(200);
    let (events, ending) = run_decoder(max_message, &wire, || 1 + rng.below(span) as usize);
    assert_eq!(ending, Ending::Closed);
    assert_eq!(events, expected);
}

/// Arbitrary bytes as the first bytes of a connection: sniffing must settle on one verdict and
/// keep it; the upgrade parser must give the same answer fed whole or in pieces, respect its
/// size limit, and produce a well-formed HTTP answer either way.
///
/// Layout: byte 0 seeds the piece sizes, the rest is input.
pub fn fuzz_sniff_and_handshake(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };

    // Sniff: NeedMore only for a short proper prefix, then one verdict for every longer prefix.
    let mut verdict = None;
    for n in 0..=input.len().min(64) {
        match (sniff(&input[..n]), verdict) {
            (Sniff::NeedMore, None) => assert!(n < SNIFF_MAX),
            (Sniff::NeedMore, Some(v)) => panic!("{v:?} then NeedMore at {n}"),
            (s, None) => verdict = Some(s),
            (s, Some(v)) => assert_eq!(s, v),
        }
    }
    if sniff(input) == Sniff::WebSocket {
        assert!(matches!(input.first(), Some(b'G' | b'P' | b'D' | b'H')));
    }

    // Handshake: whole vs in pieces.
    let real_ip = (seed & 1 == 0).then_some("x-forwarded-for");
    let whole = UpgradeParser::new().parse(input, real_ip);
    let mut parser = UpgradeParser::new();
    let mut rng = XorShift::new(u64::from(seed));
    let mut n = 0;
    let pieces = loop {
        n = (n + 1 + rng.below(u64::from(seed % 32) + 1) as usize).min(input.len());
        match parser.parse(&input[..n], real_ip) {
            Ok(None) if n < input.len() => continue,
            other => break other,
        }
    };
    assert_eq!(whole, pieces);

    let mut out = Vec::new();
    match whole {
        Ok(None) => assert!(input.len() < MAX_REQUEST_BYTES),
        Ok(Some(up)) => {
            assert!(up.consumed <= input.len() && up.consumed <= MAX_REQUEST_BYTES);
            assert_eq!(up.key.len(), 24);
            // httparse skips empty lines before the request line (RFC 9112 §2.2 allows it);
            // the sniffer never hands such input to the parser (it is not WebSocket there).
            let start = input.iter().position(|b| !matches!(b, b'\r' | b'\n'));
            assert!(input[start.unwrap_or(input.len())..].starts_with(b"GET "));
            assert!(start == Some(0) || sniff(input) != Sniff::WebSocket);
            encode_accept(up.key, &mut out);
            assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            assert!(out.ends_with(b"\r\n\r\n"));
            let key = accept_key(up.key);
            assert!(key
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)));
        }
        Err(e) => {
            e.encode_response(&mut out);
            assert!(out.starts_with(format!("HTTP/1.1 {} ", e.status()).as_bytes()));
            assert!(out.ends_with(b"\r\n\r\n"));
        }
    }
}
