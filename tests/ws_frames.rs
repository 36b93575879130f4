//! WebSocket frame decoding and encoding (`src/ws/frame.rs`), through `gatehouse::__private::ws`.

use gatehouse::__private::ws::{
    binary_header, encode_binary, encode_binary_header, encode_client_frame, encode_close,
    encode_pong, fuzz_frames, fuzz_frames_roundtrip, header_len, run_decoder, unmask, Decoded,
    Ending, FrameDecoder, OwnedEvent, WsError, WsEvent, DEFAULT_MAX_MESSAGE, MAX_HEADER_LEN,
};
use gatehouse::__private::XorShift;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn decode(decoder: &mut FrameDecoder, buf: &mut [u8]) -> (usize, Result<OwnedEvent, String>) {
    match decoder.decode(buf) {
        Ok(Decoded { consumed, event }) => (
            consumed,
            match event {
                WsEvent::Binary(p) => Ok(OwnedEvent::Binary(p.to_vec())),
                WsEvent::Ping(p) => Ok(OwnedEvent::Ping(p.to_vec())),
                WsEvent::Close { code, reason } => Ok(OwnedEvent::Close(code, reason.to_owned())),
                WsEvent::NeedMore => Err("need more".to_owned()),
            },
        ),
        Err(e) => (0, Err(format!("error {e:?}"))),
    }
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_client_frame(fin, opcode, MASK, payload, &mut out);
    out
}

/// Decodes a whole input and returns its events and ending.
fn all(max: usize, input: &[u8]) -> (Vec<OwnedEvent>, Ending) {
    let (events, ending) = run_decoder(max, input, || usize::MAX);
    assert_eq!(
        run_decoder(max, input, || 1),
        (events.clone(), ending.clone()),
        "byte by byte"
    );
    (events, ending)
}

fn bin(p: &[u8]) -> OwnedEvent {
    OwnedEvent::Binary(p.to_vec())
}

// === RFC 6455 §5.7 examples ===

#[test]
fn rfc_masked_hello() {
    let mut input = *b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    assert_eq!(frame(true, 1, b"Hello"), input);
    let mut d = FrameDecoder::default();
    // Text is tolerated and delivered as bytes (see src/ws/frame.rs).
    assert_eq!(decode(&mut d, &mut input), (11, Ok(bin(b"Hello"))));
    assert_eq!(decode(&mut d, &mut []), (0, Err("need more".into())));
}

#[test]
fn rfc_unmasked_hello_is_refused() {
    let mut d = FrameDecoder::default();
    let err = d
        .decode(&mut b"\x81\x05\x48\x65\x6c\x6c\x6f".to_owned())
        .unwrap_err();
    assert_eq!((err, err.close_code()), (WsError::Unmasked, 1002));
    assert!(d.is_finished());
    // Refused on its second byte, before any payload is buffered.
    assert_eq!(
        FrameDecoder::default().decode(&mut [0x82, 0x05]),
        Err(WsError::Unmasked)
    );
    // A finished decoder consumes and ignores everything.
    let mut more = frame(true, 2, b"late");
    assert_eq!(
        decode(&mut d, &mut more),
        (more.len(), Err("need more".into()))
    );
}

#[test]
fn rfc_fragmented_hello() {
    let mut input = frame(false, 1, b"Hel");
    input.extend(frame(true, 0, b"lo"));
    assert_eq!(all(100, &input), (vec![bin(b"Hello")], Ending::NeedMore(0)));
}

#[test]
fn rfc_ping_and_pong() {
    let mut ping = frame(true, 9, b"Hello");
    let mut d = FrameDecoder::default();
    assert_eq!(
        decode(&mut d, &mut ping),
        (11, Ok(OwnedEvent::Ping(b"Hello".to_vec())))
    );
    let mut out = Vec::new();
    encode_pong(b"Hello", &mut out);
    assert_eq!(out, b"\x8a\x05\x48\x65\x6c\x6c\x6f"); // RFC's unmasked pong form
                                                      // A (masked) pong from the client is absorbed.
    let mut pong = *b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    assert_eq!(decode(&mut d, &mut pong), (11, Err("need more".into())));
}

#[test]
fn rfc_16_and_64_bit_lengths() {
    assert_eq!(binary_header(256).as_bytes(), [0x82, 0x7E, 0x01, 0x00]);
    assert_eq!(
        binary_header(65536).as_bytes(),
        [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
    );
    assert_eq!(binary_header(125).as_bytes(), [0x82, 125]);
    assert_eq!(binary_header(126).as_bytes(), [0x82, 126, 0, 126]);
    assert_eq!(binary_header(65535).as_bytes(), [0x82, 126, 0xFF, 0xFF]);
    for n in [0, 125, 126, 65535, 65536] {
        assert_eq!(header_len(n), binary_header(n).as_bytes().len());
    }

    for size in [0usize, 125, 126, 256, 65535, 65536, 200_000] {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        let input = frame(true, 2, &payload);
        let expected_header = 2
            + 4
            + if size < 126 {
                0
            } else if size <= 65535 {
                2
            } else {
                8
            };
        assert_eq!(input.len(), expected_header + size);
        let (events, ending) = run_decoder(size, &input, || 4096);
        assert_eq!(
            (events, ending),
            (vec![bin(&payload)], Ending::NeedMore(0)),
            "{size}"
        );
        // One byte short: nothing consumed, nothing changed.
        let mut d = FrameDecoder::new(size);
        let mut short = input[..input.len() - 1].to_vec();
        assert_eq!(decode(&mut d, &mut short), (0, Err("need more".into())));
        assert_eq!(
            short,
            input[..input.len() - 1],
            "{size}: unconsumed bytes untouched"
        );
    }
}

#[test]
fn non_minimal_lengths_are_accepted() {
    // "Hi" with a 16-bit and with a 64-bit length.
    let mut input = vec![0x82, 0x80 | 126, 0, 2, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
    input.extend([
        0x82,
        0x80 | 127,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        2,
        0,
        0,
        0,
        0,
        b'H',
        b'i',
    ]);
    assert_eq!(
        all(10, &input),
        (vec![bin(b"Hi"), bin(b"Hi")], Ending::NeedMore(0))
    );
}

#[test]
fn unmask_matches_the_rfc_definition_at_every_length() {
    // RFC 6455 §5.3: octet i is XORed with mask octet i mod 4. Independent of `unmask`, which
    // both sides of the roundtrip tests use.
    let mask = [0x01, 0x20, 0x44, 0x8f];
    for len in 0..70 {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let mut fast = data.clone();
        unmask(&mut fast, mask);
        let naive: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, naive, "{len}");
    }
}

// === pomelo ===

#[test]
fn two_pomelo_packages_in_one_frame_are_one_payload() {
    // HEARTBEAT + HANDSHAKE_ACK, as a client might batch them (pinus would disconnect).
    let packages = [3u8, 0, 0, 0, 2, 0, 0, 0];
    let input = frame(true, 2, &packages);
    assert_eq!(
        all(1024, &input),
        (vec![bin(&packages)], Ending::NeedMore(0))
    );
}

#[test]
fn server_frames_carry_several_packages() {
    let (a, b) = ([4u8, 0, 0, 2, 0x06, 0x01], [3u8, 0, 0, 0]);
    let mut out = Vec::new();
    encode_binary_header(a.len() + b.len(), &mut out);
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    let mut whole = Vec::new();
    encode_binary(&[a.as_slice(), b.as_slice()].concat(), &mut whole);
    assert_eq!(out, whole);
    assert_eq!(out[..2], [0x82, 10]);
}

// === fragmentation and control frames ===

#[test]
fn fragmented_binary_with_interleaved_control_frames() {
    let mut input = frame(false, 2, b"ab");
    input.extend(frame(true, 9, b"p1"));
    input.extend(frame(false, 0, b""));
    input.extend(frame(true, 0xA, b"pong"));
    input.extend(frame(false, 0, b"cd"));
    input.extend(frame(true, 9, b""));
    input.extend(frame(true, 0, b"e"));
    input.extend(frame(true, 2, b"next"));
    input.extend(frame(true, 8, b"\x03\xe8done"));
    let expected = vec![
        OwnedEvent::Ping(b"p1".to_vec()),
        OwnedEvent::Ping(vec![]),
        bin(b"abcde"),
        bin(b"next"),
        OwnedEvent::Close(Some(1000), "done".into()),
    ];
    assert_eq!(all(5, &input), (expected, Ending::Closed));
}

#[test]
fn fragment_buffer_is_reused_and_bounded() {
    let mut d = FrameDecoder::new(1000);
    assert_eq!(d.heap_bytes(), 0);
    for round in 0..3 {
        let mut input = frame(false, 2, &[1; 300]);
        input.extend(frame(false, 0, &[2; 300]));
        input.extend(frame(true, 0, &[3; 400]));
        let (n, event) = decode(&mut d, &mut input);
        assert_eq!(n, input.len());
        assert_eq!(
            event.unwrap(),
            bin(&[[1; 300].as_slice(), &[2; 300], &[3; 400]].concat())
        );
        assert!(d.heap_bytes() <= 1000, "round {round}: {}", d.heap_bytes());
    }
    // Unfragmented messages never touch it; it can be released when idle.
    let mut plain = frame(true, 2, b"x");
    assert_eq!(decode(&mut d, &mut plain).1.unwrap(), bin(b"x"));
    assert_eq!(d.release_memory(), 1000);
    assert_eq!(d.heap_bytes(), 0);
    // Small decoder state per connection.
    assert!(
        std::mem::size_of::<FrameDecoder>() <= 48,
        "{}",
        std::mem::size_of::<FrameDecoder>()
    );
}

#[test]
fn text_messages_must_be_utf8() {
    let euro = "€".as_bytes(); // 3 bytes, split across fragments
    let mut input = frame(false, 1, &euro[..1]);
    input.extend(frame(true, 0, &euro[1..]));
    assert_eq!(all(10, &input), (vec![bin(euro)], Ending::NeedMore(0)));

    let bad = frame(true, 1, &[0xff]);
    assert_eq!(all(10, &bad), (vec![], Ending::Error(WsError::InvalidUtf8)));
    let mut bad = frame(false, 1, &euro[..1]);
    bad.extend(frame(true, 0, b"x"));
    assert_eq!(all(10, &bad), (vec![], Ending::Error(WsError::InvalidUtf8)));
    assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
    // Binary is never checked.
    assert_eq!(all(10, &frame(true, 2, &[0xff])).0, vec![bin(&[0xff])]);
}

#[test]
fn protocol_violations() {
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (vec![0x82 | 0x40, 0x80], WsError::ReservedBits),
        (vec![0x82 | 0x10], WsError::ReservedBits),
        (frame(true, 3, b""), WsError::ReservedOpcode(3)),
        (frame(true, 7, b""), WsError::ReservedOpcode(7)),
        (frame(true, 0xB, b""), WsError::ReservedOpcode(0xB)),
        (frame(true, 0xF, b""), WsError::ReservedOpcode(0xF)),
        (frame(false, 9, b"x"), WsError::BadControlFrame),
        (frame(false, 8, b""), WsError::BadControlFrame),
        (frame(true, 9, &[0; 126]), WsError::BadControlFrame),
        (frame(true, 0, b"x"), WsError::UnexpectedContinuation),
        (
            [frame(false, 2, b"a"), frame(true, 2, b"b")].concat(),
            WsError::ExpectedContinuation,
        ),
        (
            [frame(false, 2, b"a"), frame(false, 1, b"b")].concat(),
            WsError::ExpectedContinuation,
        ),
        (
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1],
            WsError::BadLength,
        ),
        (frame(true, 8, b"\x03"), WsError::BadClose),
        (frame(true, 8, &1005u16.to_be_bytes()), WsError::BadClose),
        (frame(true, 8, &1006u16.to_be_bytes()), WsError::BadClose),
        (frame(true, 8, &999u16.to_be_bytes()), WsError::BadClose),
        (frame(true, 8, &5000u16.to_be_bytes()), WsError::BadClose),
        (frame(true, 8, b"\x03\xe8\xff"), WsError::InvalidUtf8),
    ];
    for (input, err) in cases {
        assert_eq!(
            all(100, &input),
            (vec![], Ending::Error(err)),
            "{input:02x?}"
        );
        assert_eq!(
            err.close_code(),
            if err == WsError::InvalidUtf8 {
                1007
            } else {
                1002
            }
        );
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn oversize_is_refused_before_buffering() {
    let mut d = FrameDecoder::new(1000);
    // Only the header of a 1 MiB frame (no mask, no payload yet): refused already.
    let mut header = vec![0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0x10, 0, 0];
    assert_eq!(d.decode(&mut header), Err(WsError::MessageTooBig));
    assert_eq!(WsError::MessageTooBig.close_code(), 1009);
    let mut d = FrameDecoder::new(1000);
    assert_eq!(
        d.decode(&mut [0x82, 0x80 | 126, 0x03, 0xE9]),
        Err(WsError::MessageTooBig)
    );
    let mut d = FrameDecoder::new(1000);
    assert_eq!(
        d.decode(&mut [0x82, 0x80 | 126, 0x03, 0xE8]).unwrap().event,
        WsEvent::NeedMore
    );
    // Fragments add up: the continuation that would pass the limit is refused at its header.
    let mut input = frame(false, 2, &[0; 600]);
    input.extend_from_slice(&frame(true, 0, &[0; 401])[..4]);
    assert_eq!(
        all(1000, &input),
        (vec![], Ending::Error(WsError::MessageTooBig))
    );
    // Exactly the limit passes; control frames have their own 125-byte limit.
    let mut input = frame(false, 2, &[0; 600]);
    input.extend(frame(true, 9, &[7; 125]));
    input.extend(frame(true, 0, &[0; 400]));
    let (events, ending) = all(1000, &input);
    assert_eq!(ending, Ending::NeedMore(0));
    assert_eq!(
        events,
        vec![OwnedEvent::Ping(vec![7; 125]), bin(&[0; 1000])]
    );
    assert_eq!(
        all(0, &frame(true, 9, b"ping")).0,
        vec![OwnedEvent::Ping(b"ping".to_vec())]
    );
    assert_eq!(all(0, &frame(true, 2, b"")).0, vec![bin(b"")]);
}

#[test]
fn close_frames() {
    assert_eq!(
        all(10, &frame(true, 8, b"")),
        (vec![OwnedEvent::Close(None, String::new())], Ending::Closed)
    );
    for code in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
        let (events, _) = all(10, &frame(true, 8, &code.to_be_bytes()));
        assert_eq!(events, vec![OwnedEvent::Close(Some(code), String::new())]);
    }
    // Input after a close is consumed and ignored.
    let mut input = frame(true, 8, b"\x0f\xa0bye");
    input.extend(frame(true, 2, b"late"));
    let mut d = FrameDecoder::default();
    let (n, event) = decode(&mut d, &mut input);
    assert_eq!(event.unwrap(), OwnedEvent::Close(Some(4000), "bye".into()));
    assert!(d.is_finished());
    let rest = input.len() - n;
    assert_eq!(
        decode(&mut d, &mut input[n..]),
        (rest, Err("need more".into()))
    );
}

#[test]
fn encode_close_and_pong() {
    let mut out = Vec::new();
    encode_close(None, "ignored", &mut out);
    assert_eq!(out, [0x88, 0]);
    out.clear();
    encode_close(Some(1000), "bye", &mut out);
    assert_eq!(out, b"\x88\x05\x03\xe8bye");
    out.clear();
    encode_close(Some(1005), "", &mut out); // may not be sent: becomes 1011
    assert_eq!(out, b"\x88\x02\x03\xf3");
    out.clear();
    let long = "é".repeat(100); // 200 bytes: cut to 122 (a char boundary ≤ 123)
    encode_close(Some(1009), &long, &mut out);
    assert_eq!(out[1], 2 + 122);
    assert_eq!(out.len(), 2 + 2 + 122);
    assert!(std::str::from_utf8(&out[4..]).is_ok());
    out.clear();
    encode_pong(&[1; 300], &mut out);
    assert_eq!(out.len(), 2 + 125);
    // Our close frames decode (masked by a client) to what was sent.
    let mut masked = Vec::new();
    encode_client_frame(true, 8, MASK, b"\x03\xf1going", &mut masked);
    assert_eq!(
        all(0, &masked).0,
        vec![OwnedEvent::Close(Some(1009), "going".into())]
    );
}

// === chunking and random input ===

#[test]
fn arbitrary_chunking_gives_the_same_events() {
    let mut input = Vec::new();
    let mut rng = XorShift::new(7);
    for i in 0..200usize {
        let len = [0, 1, 5, 125, 126, 127, 300, 65535, 65536, 70_000][i % 10];
        let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let mask = (rng.next_u64() as u32).to_le_bytes();
        match i % 4 {
            0 => encode_client_frame(true, 2, mask, &payload, &mut input),
            1 => {
                let cut = len / 3;
                encode_client_frame(false, 2, mask, &payload[..cut], &mut input);
                encode_client_frame(true, 9, mask, &payload[..len.min(125)], &mut input);
                encode_client_frame(true, 0, mask, &payload[cut..], &mut input);
            }
            2 => encode_client_frame(true, 0xA, mask, &payload[..len.min(125)], &mut input),
            _ => encode_client_frame(true, 9, mask, &payload[..len.min(125)], &mut input),
        }
    }
    let whole = run_decoder(DEFAULT_MAX_MESSAGE + 10_000, &input, || usize::MAX);
    assert_eq!(whole.1, Ending::NeedMore(0));
    assert_eq!(whole.0.len(), 50 + 50 * 2 + 50);
    for span in [1u64, 2, 3, 7, 64, 1000, 100_000] {
        let mut rng = XorShift::new(span);
        let chunked = run_decoder(DEFAULT_MAX_MESSAGE + 10_000, &input, || {
            1 + rng.below(span) as usize
        });
        assert_eq!(chunked, whole, "span {span}");
    }
}

/// Random bytes, and valid streams with random damage: never a panic, and the same result for
/// every chunking (checked inside `fuzz_frames`).
#[test]
fn xorshift_sweep_20000_inputs_never_panics() {
    let mut rng = XorShift::new(0x5eed_f00d);
    let mut data = Vec::new();
    for i in 0..20_000 {
        data.clear();
        data.push(rng.next_u64() as u8); // limit
        data.push(rng.next_u64() as u8); // chunking
        if i % 2 == 0 {
            let len = rng.index(200);
            data.extend((0..len).map(|_| rng.next_u64() as u8));
        } else {
            // Plausible frames (masked, small), then a few flipped bytes.
            for _ in 0..1 + rng.below(4) {
                let len = rng.index(140);
                let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                let opcode = *rng.pick(&[0u8, 1, 2, 8, 9, 10]);
                let mask = (rng.next_u64() as u32).to_le_bytes();
                encode_client_frame(rng.below(4) != 0, opcode, mask, &payload, &mut data);
            }
            for _ in 0..rng.below(3) {
                let at = 2 + rng.index(data.len() - 2);
                data[at] ^= 1 << rng.index(8);
            }
        }
        fuzz_frames(&data);
    }
}

#[test]
fn xorshift_sweep_roundtrips() {
    let mut rng = XorShift::new(42);
    for _ in 0..2_000 {
        let len = rng.index(2000);
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        fuzz_frames_roundtrip(&data);
        let text: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        fuzz_frames_roundtrip(&text);
    }
}

#[test]
fn bounded_buffering_per_connection() {
    // A client trickling a frame that announces the maximum: the caller holds at most
    // max + header bytes (asserted inside run_decoder at every step).
    let max = 4096;
    let input = frame(true, 2, &vec![9; max]);
    let (events, _) = run_decoder(max, &input, || 1);
    assert_eq!(events.len(), 1);
    assert!(input.len() <= max + MAX_HEADER_LEN);
}
