//! Fuzz entry point for the protobuf codec: **not public API, outside semver**.
//!
//! [`fuzz_protobuf_decode`] decodes arbitrary bytes with a fixed set of protos (every type,
//! every kind of repeated field, nested, root and recursive messages, tags ≥ 16) and checks
//! that nothing panics and that whatever decodes re-encodes canonically. The unit tests below
//! run it over seeds and a deterministic random sweep, so plain `cargo test` exercises it.

use super::{Message, ProtoEncodeError, Protos};
use serde_json::Value;
use std::sync::OnceLock;

/// The protos the fuzz target decodes with; `ROUTES[data[0] % len]` picks the message.
const PROTOS: &str = r#"{
  "all": {
    "optional uInt32 u": 1, "optional sInt32 s": 2, "optional int32 i": 3,
    "optional float f": 4, "optional double d": 5, "optional string str": 6,
    "optional bool b": 7, "optional uInt64 u64": 8, "optional sInt64 s64": 9,
    "repeated string names": 10, "repeated Item items": 11, "optional Pos at": 12,
    "repeated double ds": 13, "repeated bool bs": 14, "repeated float fs": 15,
    "repeated sInt32 ss": 16, "repeated uInt32 us": 17, "required uInt32 id": 300,
    "message Pos": {"required sInt32 x": 1, "required sInt32 y": 2}
  },
  "tree": {"optional Tree t": 1, "repeated Tree ts": 2},
  "move": {"required uInt32 entityId": 1, "repeated Pos path": 2, "optional float speed": 3,
           "optional string name": 4, "message Pos": {"required float x": 1, "required float y": 2}},
  "message Item": {"required string name": 1, "optional uInt32 count": 2, "repeated Item inner": 3},
  "message Tree": {"optional uInt32 v": 1, "repeated Tree kids": 2, "optional Tree next": 3}
}"#;

const ROUTES: [&str; 5] = ["all", "tree", "move", "message Item", "message Tree"];

fn protos() -> &'static Protos {
    static PROTOS_ONCE: OnceLock<Protos> = OnceLock::new();
    PROTOS_ONCE.get_or_init(|| Protos::from_json(PROTOS, "{}").expect("fuzz protos load"))
}

fn message(selector: u8) -> &'static Message {
    let route = ROUTES[usize::from(selector) % ROUTES.len()];
    protos().server(route).expect("fuzz route exists")
}

/// `value` without the empty arrays (encoders write nothing for them).
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !matches!(v, Value::Array(a) if a.is_empty()))
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// `data[0]` picks the message, the rest is decoded.
///
/// Checks: decoding never panics; a decoded value re-encodes (or misses a required field,
/// which decoding does not check), `encoded_len` agrees with `encode`, the re-encoding
/// decodes to the same value less its empty arrays, and encoding that gives the same bytes.
pub fn fuzz_protobuf_decode(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let message = message(selector);
    let Ok(value) = message.decode(bytes) else {
        return;
    };
    let mut encoded = Vec::new();
    match message.encode(&value, &mut encoded) {
        Ok(()) => {}
        Err(ProtoEncodeError::MissingRequired { .. }) => {
            assert!(encoded.is_empty(), "output left untouched on error");
            return;
        }
        Err(e) => panic!("a decoded value does not re-encode: {e}: {value}"),
    }
    assert_eq!(message.encoded_len(&value), Ok(encoded.len()));
    let again = message.decode(&encoded).expect("our encoding decodes");
    assert_eq!(again, canonical(&value), "decode(encode(v)) == v");
    let mut twice = Vec::new();
    message.encode(&again, &mut twice).expect("re-encodes");
    assert_eq!(twice, encoded, "the encoding is canonical");
}

/// Seed inputs: a valid encoding of a typical message for each route.
pub fn seeds() -> Vec<Vec<u8>> {
    let values = [
        r#"{"id": 7, "u": 300, "s": -7, "i": 2147483647, "f": 0.5, "d": -1e300, "str": "héllo 🎮",
           "b": true, "u64": 9007199254740993, "s64": -5, "names": ["a", ""],
           "items": [{"name": "sword", "count": 2, "inner": [{"name": "gem"}]}],
           "at": {"x": -1, "y": 1}, "ds": [0.25], "bs": [true, false], "fs": [1.5, -2.25],
           "ss": [-1, 1], "us": [7, 8, 300, 70000]}"#,
        r#"{"t": {"v": 1, "kids": [{"v": 2}, {"next": {"v": 3}}]}, "ts": [{}, {"v": 4}]}"#,
        r#"{"entityId": 10293, "path": [{"x": 1.5, "y": 2.25}, {"x": -3, "y": 0.5}],
           "speed": 3.5, "name": "hero"}"#,
        r#"{"name": "shield", "count": 1}"#,
        r#"{"v": 1, "kids": [{"kids": [{"v": 2}]}]}"#,
    ];
    values
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let value: Value = serde_json::from_str(text).expect("seed JSON");
            let mut out = vec![i as u8];
            message(i as u8)
                .encode(&value, &mut out)
                .expect("seed encodes");
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xorshift::XorShift;

    #[test]
    fn seeds_pass_and_round_trip() {
        for seed in seeds() {
            fuzz_protobuf_decode(&seed);
            let value = message(seed[0]).decode(&seed[1..]).unwrap();
            assert_ne!(value, serde_json::json!({}));
        }
        fuzz_protobuf_decode(&[]);
        fuzz_protobuf_decode(&[0]);
    }

    #[test]
    fn random_sweep() {
        let seeds = seeds();
        let mut rng = XorShift::new(0x7072_6f74_6f62_7566);
        for i in 0..20_000 {
            let input: Vec<u8> = if i % 2 == 0 {
                let n = rng.index(64);
                (0..n).map(|_| rng.next_u64() as u8).collect()
            } else {
                let mut s = seeds[rng.index(seeds.len())].clone();
                for _ in 0..=rng.index(3) {
                    let at = 1 + rng.index(s.len() - 1);
                    match rng.index(3) {
                        0 => s[at] = rng.next_u64() as u8,
                        1 => s.truncate(at),
                        _ => s.insert(at, rng.next_u64() as u8),
                    }
                    if s.len() < 2 {
                        break;
                    }
                }
                s
            };
            fuzz_protobuf_decode(&input);
        }
    }
}
