//! Sniffing and the WebSocket upgrade (`src/ws/{sniff,handshake}.rs`) through
//! `gatehouse::__private::ws`: a connection's whole opening, and random-input sweeps.

use gatehouse::__private::ws::{
    accept_key, encode_accept, encode_client_frame, fuzz_sniff_and_handshake, sniff, FrameDecoder,
    HandshakeError, Sniff, UpgradeParser, WsEvent, XorShift, MAX_REQUEST_BYTES,
};

const REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:3010\r\nConnection: Upgrade\r\n\
    Pragma: no-cache\r\nUpgrade: websocket\r\nOrigin: http://localhost\r\n\
    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
    X-Forwarded-For: 203.0.113.7\r\n\r\n";

#[test]
fn rfc_accept_key() {
    assert_eq!(
        &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// A browser's opening arriving in small pieces, its first frame pipelined behind the request:
/// sniff → upgrade → 101 → frames.
#[test]
fn connection_opening_end_to_end() {
    let mut wire = REQUEST.to_vec();
    let handshake_package = b"\x01\x00\x00\x02{}";
    encode_client_frame(true, 2, [1, 2, 3, 4], handshake_package, &mut wire);

    let mut received = Vec::new();
    let mut parser = UpgradeParser::new();
    let mut verdict = Sniff::NeedMore;
    let mut upgrade_at = None;
    for piece in wire.chunks(3) {
        received.extend_from_slice(piece);
        if verdict == Sniff::NeedMore {
            verdict = sniff(&received);
        }
        if verdict == Sniff::WebSocket && upgrade_at.is_none() {
            if let Some(up) = parser.parse(&received, Some("X-Forwarded-For")).unwrap() {
                assert_eq!(up.path, "/ws");
                assert_eq!(up.real_ip, Some(&b"203.0.113.7"[..]));
                let mut out = Vec::new();
                encode_accept(up.key, &mut out);
                // No extension (permessage-deflate ignored), no subprotocol.
                assert_eq!(
                    out,
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                      Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
                );
                upgrade_at = Some(up.consumed);
            }
        }
    }
    assert_eq!(verdict, Sniff::WebSocket);
    let at = upgrade_at.expect("upgraded");
    assert_eq!(at, REQUEST.len());
    let mut decoder = FrameDecoder::default();
    let decoded = decoder.decode(&mut received[at..]).unwrap();
    assert_eq!(decoded.event, WsEvent::Binary(handshake_package));
}

#[test]
fn refusals_are_answered() {
    let post = [b"POST".as_slice(), &REQUEST[3..]].concat();
    assert_eq!(sniff(&post), Sniff::WebSocket);
    let err = UpgradeParser::new().parse(&post, None).unwrap_err();
    assert_eq!(err, HandshakeError::Method);
    let mut out = Vec::new();
    err.encode_response(&mut out);
    assert_eq!(
        out,
        b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    let req = std::str::from_utf8(REQUEST)
        .unwrap()
        .replace("Version: 13", "Version: 7");
    let err = UpgradeParser::new()
        .parse(req.as_bytes(), None)
        .unwrap_err();
    out.clear();
    err.encode_response(&mut out);
    assert!(out.starts_with(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
}

#[test]
fn xorshift_sweep_random_first_bytes() {
    let mut rng = XorShift::new(0xdead_beef);
    let mut data = Vec::new();
    for i in 0..20_000 {
        data.clear();
        data.push(rng.next_u64() as u8);
        match i % 4 {
            0 => {
                let len = rng.below(64) as usize;
                data.extend((0..len).map(|_| rng.next_u64() as u8));
            }
            1 => {
                // Random method-ish prefixes.
                let m = [
                    &b"GET "[..],
                    b"GE",
                    b"POST ",
                    b"DELETE ",
                    b"DELET",
                    b"PUT ",
                    b"HEAD ",
                ];
                data.extend_from_slice(m[rng.below(m.len() as u64) as usize]);
                let len = rng.below(32) as usize;
                data.extend((0..len).map(|_| rng.next_u64() as u8));
            }
            _ => {
                // A valid request with a few random bytes changed, cut short or not.
                data.extend_from_slice(REQUEST);
                for _ in 0..rng.below(4) {
                    let at = 1 + rng.below(REQUEST.len() as u64) as usize;
                    data[at] = rng.next_u64() as u8;
                }
                let keep = data.len() - rng.below(8) as usize;
                data.truncate(keep);
            }
        }
        fuzz_sniff_and_handshake(&data);
    }
    // The size limit, through the same checks.
    let mut big = vec![7u8];
    big.extend_from_slice(b"GET / HTTP/1.1\r\n");
    big.resize(MAX_REQUEST_BYTES + 100, b'a');
    fuzz_sniff_and_handshake(&big);
}
