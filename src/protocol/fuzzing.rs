//! Fuzz entry points for the protocol layer: **not public API, outside semver**.
//!
//! Each function takes arbitrary bytes, runs them through a decoder and asserts the properties
//! that must hold for every input, panicking on a violation. A fuzz target is a one-liner
//! (`fuzz_target!(|d: &[u8]| gatehouse::protocol::fuzzing::fuzz_message(d));`), and the unit
//! tests below run the same functions over the spec's captures and a deterministic random
//! sweep, so plain `cargo test` exercises them too.

use super::*;
use serde_json::Value;
use std::sync::OnceLock;

use crate::xorshift::XorShift;

/// How a run over a whole stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// Waiting for more bytes, with this many pending.
    NeedMore(usize),
    /// Stopped by an error.
    Failed(PackageError),
}

type Decoded = (Vec<(PackageType, Vec<u8>)>, End);

/// Package stream decoding: `data[0]` picks the body limit, `data[1]` seeds the chunking, the
/// rest is the stream.
///
/// Checks: every package decoded in one pass re-encodes to exactly the bytes it consumed and
/// respects the limit; an `Ok(None)` tail really is an incomplete package; an error is the
/// right one; feeding the stream to a [`PackageDecoder`] one byte at a time and in random
/// chunks yields the same packages and the same end; every DATA body also goes through
/// [`fuzz_message`].
pub fn fuzz_package_stream(data: &[u8]) {
    const LIMITS: [usize; 8] = [0, 1, 3, 4, 16, 255, 4096, MAX_BODY_LEN];
    let (limit, seed, stream) = match data {
        [a, b, rest @ ..] => (LIMITS[usize::from(*a) % LIMITS.len()], u64::from(*b), rest),
        _ => (MAX_BODY_LEN, 0, data),
    };

    // One pass over the whole stream.
    let mut packages = Vec::new();
    let mut offset = 0;
    let end = loop {
        let rest = &stream[offset..];
        match decode_package(rest, limit) {
            Ok(Some((p, n))) => {
                assert!(n >= HEADER_LEN && n <= rest.len());
                assert!(p.body.len() <= limit);
                assert_eq!(p.encoded_len(), n);
                let mut again = Vec::new();
                p.encode(&mut again).expect("a decoded package re-encodes");
                assert_eq!(again, &rest[..n], "re-encoding is byte-exact");
                if p.kind == PackageType::Data {
                    fuzz_message(p.body);
                }
                packages.push((p.kind, p.body.to_vec()));
                offset += n;
            }
            Ok(None) => {
                if let [t, a, b, c, ..] = *rest {
                    let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                    assert!(PackageType::from_u8(t).is_some());
                    assert!(len <= limit && rest.len() < HEADER_LEN + len);
                }
                break End::NeedMore(rest.len());
            }
            Err(e) => {
                match e {
                    PackageError::InvalidType(t) => {
                        assert_eq!(rest.first(), Some(&t));
                        assert!(PackageType::from_u8(t).is_none());
                    }
                    PackageError::TooLarge { len, max } => {
                        assert!(len > max && max == limit.min(MAX_BODY_LEN));
                    }
                }
                break End::Failed(e);
            }
        }
    };
    let reference = (packages, end);

    // The same stream, one byte at a time, then in random chunks.
    assert_eq!(chunked(stream, limit, &mut || 1), reference, "byte-by-byte");
    let mut rng = XorShift::new(seed ^ (stream.len() as u64) << 8);
    let max_chunk = 1 + (seed as usize % 64);
    assert_eq!(
        chunked(stream, limit, &mut || 1 + rng.index(max_chunk)),
        reference,
        "random chunks"
    );
}

/// Feeds `stream` to a [`PackageDecoder`] in chunks of the given sizes.
fn chunked(stream: &[u8], limit: usize, size: &mut dyn FnMut() -> usize) -> Decoded {
    let mut decoder = PackageDecoder::new(limit);
    let mut packages = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(size().clamp(1, rest.len()));
        rest = tail;
        let fed = decoder.feed(chunk, |p| packages.push((p.kind, p.body.to_vec())));
        assert!(decoder.pending() <= decoder.buffer_limit());
        assert!(
            decoder.heap_bytes() <= decoder.buffer_limit(),
            "{} heap bytes, limit {}",
            decoder.heap_bytes(),
            decoder.buffer_limit()
        );
        if let Err(e) = fed {
            return (packages, End::Failed(e));
        }
    }
    (packages, End::NeedMore(decoder.pending()))
}

/// Message decoding: a decoded message obeys the field table and re-encodes to exactly the
/// input (alone and as a DATA package); an empty input is [`MessageError::Empty`]; prefixes
/// never panic.
pub fn fuzz_message(data: &[u8]) {
    match decode_message(data) {
        Ok(msg) => {
            assert!(msg.kind.has_id() || msg.id == 0);
            assert_eq!(msg.kind.has_route(), msg.route != Route::None);
            if let Route::Name(name) = msg.route {
                assert!(name.len() <= MAX_ROUTE_LEN);
            }
            let mut again = Vec::new();
            encode_message(&msg, &mut again).expect("a decoded message re-encodes");
            assert_eq!(again, data, "re-encoding is byte-exact");
            let mut package = Vec::new();
            if encode_data(&msg, &mut package).is_ok() {
                let (p, n) = decode_package(&package, MAX_BODY_LEN)
                    .expect("valid package")
                    .expect("whole package");
                assert_eq!(
                    (p.kind, p.body, n),
                    (PackageType::Data, data, package.len())
                );
            } else {
                assert!(data.len() > MAX_BODY_LEN);
            }
        }
        Err(MessageError::Empty) => assert!(data.is_empty()),
        Err(_) => assert!(!data.is_empty()),
    }
    for cut in 0..data.len().min(16) {
        let _ = decode_message(&data[..cut]);
    }
}

fn fuzz_dict() -> &'static Dictionary {
    static DICT: OnceLock<Dictionary> = OnceLock::new();
    DICT.get_or_init(|| {
        Dictionary::new(
            ["connector.entryHandler.entry", "chat.chatHandler.say"],
            ["onChat"],
        )
        .expect("small dictionary")
    })
}

/// Handshake processing: the reply is JSON whose `code` matches; refusals are exactly
/// `{"code":N}`; a 200 reply carries the configured heartbeat, `useDict`, the dictionary exactly
/// when the client's version differs, and the hook's truthy `user` value.
///
/// The configuration comes from the input: its length picks the heartbeat and the dictionary,
/// the client check refuses versions starting with `0.0.0`, the hook fails when `user` is the
/// string `"fail"` and otherwise echoes `user`.
pub fn fuzz_handshake(data: &[u8]) {
    let dict = fuzz_dict();
    let mut cfg = HandshakeConfig::new().with_heartbeat((data.len() % 4) as u32);
    if !data.len().is_multiple_of(3) {
        cfg = cfg.with_dictionary(dict);
    }
    let mut checked = false;
    let reply = process_handshake(
        data,
        &cfg,
        |_, version| {
            checked = true;
            !version.starts_with("0.0.0")
        },
        |hs| match hs.user() {
            Some(Value::String(s)) if s == "fail" => Err(()),
            other => Ok(other.cloned()),
        },
    );
    let body: Value = serde_json::from_slice(&reply.body).expect("the reply is JSON");
    assert_eq!(body["code"], reply.code.as_u16());
    assert!([200, 500, 501].contains(&reply.code.as_u16()));
    let parsed = serde_json::from_slice::<Value>(data).ok();
    match reply.error {
        Some(error) => {
            assert_eq!(reply.code, error.code());
            // Spec §5.3: 501 only for a refused client, 500 for everything else.
            let spec = if error == HandshakeError::ClientRejected {
                501
            } else {
                500
            };
            assert_eq!(reply.code.as_u16(), spec);
            let has_sys = parsed
                .as_ref()
                .is_some_and(|v| v.get("sys").is_some_and(Value::is_object));
            assert_eq!(
                error == HandshakeError::MissingSys,
                parsed.is_some() && !has_sys
            );
            assert_eq!(
                reply.body,
                format!(r#"{{"code":{}}}"#, reply.code.as_u16()).into_bytes()
            );
            assert_eq!(
                error == HandshakeError::InvalidJson,
                parsed.is_none(),
                "only unparsable bodies are InvalidJson"
            );
            assert_eq!(
                checked,
                error == HandshakeError::ClientRejected || error == HandshakeError::HookFailed
            );
        }
        None => {
            assert!(reply.is_ok() && checked);
            let client = reply
                .client
                .as_ref()
                .expect("a 200 reply keeps the handshake");
            assert_eq!(Some(client.value()), parsed.as_ref());
            let sys = &body["sys"];
            assert_eq!(sys["heartbeat"].as_u64(), cfg.heartbeat().map(u64::from));
            let with_dict = cfg.dictionary().is_some();
            assert_eq!(sys["useDict"].as_bool(), with_dict.then_some(true));
            let sent = with_dict && client.dict_version() != Some(dict.version());
            assert_eq!(sys.get("dict").is_some(), sent);
            if sent {
                assert_eq!(sys["dictVersion"], dict.version());
                assert_eq!(sys["dict"]["onChat"], 3);
            }
            let user = client.user().filter(|u| match u {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            });
            assert_eq!(body.get("user"), user);
        }
    }
    let mut package = Vec::new();
    let encoded = reply.encode_package(&mut package);
    assert_eq!(encoded.is_ok(), reply.body.len() <= MAX_BODY_LEN);
}

/// KICK encoding: any reason (the input, lossily UTF-8) gives a KICK package whose body parses
/// back to `{"reason": reason}`, byte-identical to serde_json's (and `JSON.stringify`'s) text.
pub fn fuzz_kick(data: &[u8]) {
    let reason = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    encode_kick(&reason, &mut out).expect("small reason");
    let (p, n) = decode_package(&out, MAX_BODY_LEN)
        .expect("valid")
        .expect("whole");
    assert_eq!((p.kind, n), (PackageType::Kick, out.len()));
    let expected = serde_json::to_vec(&serde_json::json!({ "reason": &*reason })).expect("json");
    assert_eq!(p.body, expected);
}

/// Dictionary building: routes are the input split on `\n` (handler routes) and `\r` (extras).
/// Codes and routes agree both ways, codes are 1..=len, and the JSON parses back to the same
/// route → code map.
pub fn fuzz_dictionary(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (handlers, extras) = text.split_once('\r').unwrap_or((&text, ""));
    let extras = extras.split('\n').filter(|s| !s.is_empty());
    let dict = match Dictionary::new(handlers.split('\n'), extras.clone()) {
        Ok(dict) => dict,
        Err(DictionaryError::TooManyRoutes(_)) => {
            let distinct: std::collections::HashSet<&str> =
                handlers.split('\n').chain(extras).collect();
            assert!(distinct.len() > MAX_DICTIONARY_LEN);
            return;
        }
    };
    let mut count = 0;
    for (route, code) in dict.iter() {
        count += 1;
        assert_eq!(usize::from(code), count);
        assert_eq!(dict.code(route), Some(code));
        assert_eq!(dict.route(code), Some(route));
    }
    assert_eq!(count, dict.len());
    let json: serde_json::Map<String, Value> =
        serde_json::from_str(dict.json()).expect("the dictionary JSON parses");
    assert_eq!(json.len(), dict.len());
    for (route, code) in &json {
        assert_eq!(dict.code(route).map(u64::from), code.as_u64());
    }
    assert_eq!(dict.version().len(), 24);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testutil::hex;

    fn seeds() -> Vec<Vec<u8>> {
        let mut seeds = vec![
            br#"{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0},"user":{"name":"x"}}"#.to_vec(),
            br#"{"sys":{"type":"js-websocket","version":"0.0.0"}}"#.to_vec(),
            br#"{"sys":{"dictVersion":"x"},"user":"fail"}"#.to_vec(),
            format!(r#"{{"sys":{{"dictVersion":"{}"}},"user":0}}"#, fuzz_dict().version()).into_bytes(),
            [&hex("01 000037")[..], br#"{"code":200,"sys":{"heartbeat":2},"user":{"welcome":1}}"#].concat(),
            hex("02 000000 03 000000"),
            [&hex("04 000028 00 01 1c")[..], b"connector.entryHandler.entry", br#"{"uid":7}"#].concat(),
            [&hex("04 000020 02 14")[..], b"chat.chatHandler.say", br#"{"t":"hi"}"#].concat(),
            [&hex("04 000035 04 02")[..], &[b'x'; 51][..]].concat(),
            [&hex("04 000013 06 06")[..], b"onPush", br#"{"hello":5}"#].concat(),
            [&hex("05 000010")[..], br#"{"reason":"bye"}"#].concat(),
            hex("04 000000"),
            hex("09 000000"),
            hex("04 ffffff"),
            hex("00 ffffffff0f 00"),
            b"route.a\nroute.b\rextra\nroute.a".to_vec(),
        ];
        seeds.push(seeds.concat());
        seeds
    }

    fn run_all(input: &[u8]) {
        fuzz_package_stream(input);
        fuzz_message(input);
        fuzz_handshake(input);
        fuzz_kick(input);
        fuzz_dictionary(input);
    }

    #[test]
    fn seeds_pass_every_target() {
        for seed in seeds() {
            run_all(&seed);
            // With a prefix that sets the stream limit and chunking.
            for (limit, chunking) in [(7u8, 0u8), (4, 3), (2, 200)] {
                let mut framed = vec![limit, chunking];
                framed.extend_from_slice(&seed);
                fuzz_package_stream(&framed);
            }
        }
    }

    /// 20 000 deterministic random inputs through every target: raw bytes, and mutations of
    /// the seeds (byte flips, truncations, splices), so the decoders see both garbage and
    /// near-valid input.
    #[test]
    fn random_sweep_never_panics_and_keeps_the_properties() {
        let seeds = seeds();
        let mut rng = XorShift::new(0x5eed_1234_abcd_ef01);
        for i in 0..20_000 {
            let input: Vec<u8> = match i % 4 {
                0 => {
                    let len = rng.index(48);
                    (0..len).map(|_| rng.next_u64() as u8).collect()
                }
                1 => {
                    // Small bytes: mostly valid package and message types.
                    let len = rng.index(48);
                    (0..len).map(|_| (rng.next_u64() % 8) as u8).collect()
                }
                _ => {
                    let mut s = seeds[rng.index(seeds.len())].clone();
                    for _ in 0..=rng.index(4) {
                        if s.is_empty() {
                            break;
                        }
                        match rng.index(3) {
                            0 => {
                                let at = rng.index(s.len());
                                s[at] ^= 1 << rng.index(8);
                            }
                            1 => s.truncate(rng.index(s.len() + 1)),
                            _ => {
                                let at = rng.index(s.len());
                                let other = &seeds[rng.index(seeds.len())];
                                s.splice(at..at, other.iter().take(rng.index(16)).copied());
                            }
                        }
                    }
                    s
                }
            };
            run_all(&input);
        }
    }
}
