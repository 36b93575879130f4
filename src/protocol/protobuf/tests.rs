//! The spec's byte examples, the parsed form against pinus's, and the error paths.

use super::*;
use serde_json::json;

/// The protos of the spec examples: one route per case.
const SERVER: &str = r#"{
  "t.int32": {"required int32 v": 1},
  "t.uint": {"required uInt32 v": 1},
  "t.packed": {"repeated uInt32 v": 2},
  "t.floats": {"repeated float v": 3},
  "t.tag16": {"required string v": 16},
  "t.all": {
    "optional uInt32 u": 1, "optional sInt32 s": 2, "optional int32 i": 3,
    "optional float f": 4, "optional double d": 5, "optional string str": 6,
    "optional bool b": 7, "optional uInt64 u64": 8, "optional sInt64 s64": 9,
    "repeated string names": 10, "repeated Item items": 11, "optional Pos at": 12,
    "repeated double ds": 13, "repeated bool bs": 14,
    "message Pos": {"required sInt32 x": 1, "required sInt32 y": 2}
  },
  "t.deep": {"optional Node n": 1},
  "t.unknown": {"optional Nope n": 1, "optional uInt32 ok": 2, "obj Pair kv": 3},
  "message Item": {"required string name": 1, "optional uInt32 count": 2},
  "message Node": {"optional Node next": 1}
}"#;

fn protos() -> Protos {
    Protos::from_json(SERVER, "{}").unwrap()
}

fn enc(route: &str, value: Value) -> Vec<u8> {
    let protos = protos();
    let m = protos.server(route).unwrap();
    let mut out = vec![0xaa]; // encode appends
    m.encode(&value, &mut out).unwrap();
    assert_eq!(
        m.encoded_len(&value).unwrap(),
        out.len() - 1,
        "{route} {value}"
    );
    out.remove(0);
    out
}

fn dec(route: &str, bytes: &[u8]) -> Result<Value, ProtoDecodeError> {
    protos().server(route).unwrap().decode(bytes)
}

#[test]
fn spec_byte_examples() {
    assert_eq!(enc("t.int32", json!({"v": -7})), [0x08, 0x0d]);
    assert_eq!(
        enc("t.uint", json!({"v": 3_000_000_001u64})),
        [0x08, 0x81, 0xbc, 0xc1, 0x96, 0x0b]
    );
    assert_eq!(
        enc("t.packed", json!({"v": [7, 8, 300, 70000]})),
        [0x10, 0x04, 0x07, 0x08, 0xac, 0x02, 0xf0, 0xa2, 0x04]
    );
    assert_eq!(
        enc("t.floats", json!({"v": [0.5, -2.25]})),
        [0x1d, 0x02, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x10, 0xc0]
    );
    assert_eq!(enc("t.tag16", json!({"v": "a"})), [0x82, 0x01, 0x01, b'a']);
    // And back.
    assert_eq!(dec("t.int32", &[0x08, 0x0d]).unwrap(), json!({"v": -7}));
    assert_eq!(
        dec(
            "t.packed",
            &[0x10, 0x04, 0x07, 0x08, 0xac, 0x02, 0xf0, 0xa2, 0x04]
        )
        .unwrap(),
        json!({"v": [7, 8, 300, 70000]})
    );
    assert_eq!(
        dec("t.tag16", &[0x82, 0x01, 0x01, b'a']).unwrap(),
        json!({"v": "a"})
    );
}

#[test]
fn wire_type_bits_are_ignored() {
    // The browser build: `0a 04 12 03` where pinus writes `08 04 10 03`.
    let protos = Protos::from_json(
        "{}",
        r#"{"c.move": {"required uInt32 a": 1, "required int32 b": 2}}"#,
    )
    .unwrap();
    let m = protos.client("c.move").unwrap();
    let expected = json!({"a": 4, "b": 3});
    let v = m.decode(&[0x0a, 0x04, 0x12, 0x06]).unwrap();
    assert_eq!(v, expected);
    assert_eq!(m.decode(&[0x08, 0x04, 0x10, 0x06]).unwrap(), expected);
    assert!(protos.server("c.move").is_none());
}

#[test]
fn every_type_round_trips() {
    let value = json!({
        "u": 4_294_967_295u64, "s": -2_147_483_648i64, "i": 123, "f": 0.3, "d": 0.1,
        "str": "héllo 🎮 \u{0}", "b": true, "u64": 9_007_199_254_740_993u64,
        "s64": -9_007_199_254_740_993i64, "names": ["a", "", "ccc"],
        "items": [{"name": "sword", "count": 2}, {"name": "shield"}],
        "at": {"x": -1, "y": 1}, "ds": [1e300, -0.5], "bs": [true, false, true]
    });
    let bytes = enc("t.all", value.clone());
    let back = dec("t.all", &bytes).unwrap();
    let mut expected = value;
    expected["f"] = json!(0.30000001192092896); // f32 widened, as JavaScript reads it
    assert_eq!(back, expected);
    // Unknown keys are dropped, absent optional fields omitted, empty arrays write nothing.
    assert_eq!(
        enc("t.all", json!({"zzz": 1, "names": [], "bs": []})),
        Vec::<u8>::new()
    );
    assert_eq!(dec("t.all", &[]).unwrap(), json!({}));
    // A packed field with count 0 (never written by encoders) decodes to [] as in pinus.
    assert_eq!(dec("t.all", &[0x68, 0x00]).unwrap(), json!({"ds": []}));
    // Repeated occurrences accumulate; a singular field given twice keeps the last.
    assert_eq!(
        dec(
            "t.all",
            &[0x52, 0x01, b'a', 0x08, 0x01, 0x52, 0x00, 0x08, 0x02]
        )
        .unwrap(),
        json!({"names": ["a", ""], "u": 2})
    );
}

#[test]
fn numbers_as_javascript_holds_them() {
    // Fractions are dropped toward zero, as pinus's parseInt does.
    assert_eq!(
        enc("t.all", json!({"u": 2.9})),
        enc("t.all", json!({"u": 2}))
    );
    assert_eq!(
        enc("t.all", json!({"s": -2.9})),
        enc("t.all", json!({"s": -2}))
    );
    assert_eq!(enc("t.all", json!({"u": -0.5})), [0x08, 0x00]);
    // null is NaN in float/double fields; non-finite numbers decode to null.
    let nan = enc("t.all", json!({"f": null, "d": null, "ds": [null, 1.5]}));
    assert_eq!(
        dec("t.all", &nan).unwrap(),
        json!({"f": null, "d": null, "ds": [null, 1.5]})
    );
    let inf = [0x25, 0x00, 0x00, 0x80, 0x7f]; // float +inf
    assert_eq!(dec("t.all", &inf).unwrap(), json!({"f": null}));
    // A required float given as null is NaN, not missing; the field really missing is named.
    let protos = Protos::from_json(
        r#"{"r": {"required float f": 1, "required uInt32 u": 2}}"#,
        "{}",
    )
    .unwrap();
    let r = protos.server("r").unwrap();
    assert_eq!(
        r.encode(&json!({"f": null}), &mut Vec::new()),
        Err(ProtoEncodeError::MissingRequired { field: "u".into() })
    );
    assert_eq!(r.encoded_len(&json!({"f": null, "u": 1})), Ok(7));
    // null elsewhere is an absent field.
    assert_eq!(
        enc("t.all", json!({"u": null, "items": null, "at": null})),
        Vec::<u8>::new()
    );
}

#[test]
fn strings_decode_lossily() {
    // U+1F642 as the browser build writes it (CESU-8) and as UTF-8.
    let cesu = [0x32, 0x06, 0xed, 0xa0, 0xbd, 0xed, 0xb9, 0x82];
    let v = dec("t.all", &cesu).unwrap();
    let s = v["str"].as_str().unwrap();
    assert!(!s.is_empty() && s.chars().all(|c| c == '\u{fffd}'), "{s:?}");
    let utf8 = [0x32, 0x04, 0xf0, 0x9f, 0x99, 0x82];
    assert_eq!(dec("t.all", &utf8).unwrap(), json!({"str": "🙂"}));
}

#[test]
fn encode_errors_name_the_field() {
    let protos = protos();
    let all = protos.server("t.all").unwrap();
    let cases = [
        (
            json!({"u": -1}),
            ProtoEncodeError::OutOfRange { field: "u".into() },
        ),
        (
            json!({"u64": 1.9e19}),
            ProtoEncodeError::OutOfRange {
                field: "u64".into(),
            },
        ),
        (
            json!({"s64": 9_223_372_036_854_775_808u64}),
            ProtoEncodeError::OutOfRange {
                field: "s64".into(),
            },
        ),
        (
            json!({"u": "1"}),
            ProtoEncodeError::WrongType {
                field: "u".into(),
                expected: "a number",
            },
        ),
        (
            json!({"b": 1}),
            ProtoEncodeError::WrongType {
                field: "b".into(),
                expected: "a boolean",
            },
        ),
        (
            json!({"names": "abc"}),
            ProtoEncodeError::WrongType {
                field: "names".into(),
                expected: "an array",
            },
        ),
        (
            json!({"names": ["a", 2]}),
            ProtoEncodeError::WrongType {
                field: "names.1".into(),
                expected: "a string",
            },
        ),
        (
            json!({"items": [{"name": "a"}, {"count": 1}]}),
            ProtoEncodeError::MissingRequired {
                field: "items.1.name".into(),
            },
        ),
        (
            json!({"at": {"x": 1, "y": "2"}}),
            ProtoEncodeError::WrongType {
                field: "at.y".into(),
                expected: "a number",
            },
        ),
        (
            json!({"at": [1]}),
            ProtoEncodeError::WrongType {
                field: "at".into(),
                expected: "an object",
            },
        ),
        (
            json!([1]),
            ProtoEncodeError::WrongType {
                field: String::new(),
                expected: "an object",
            },
        ),
    ];
    for (value, error) in cases {
        let mut out = vec![1, 2, 3];
        assert_eq!(all.encode(&value, &mut out), Err(error.clone()), "{value}");
        assert_eq!(out, [1, 2, 3], "left untouched on error");
        assert_eq!(all.encoded_len(&value), Err(error), "{value}");
    }
    let missing = protos
        .server("t.int32")
        .unwrap()
        .encode(&json!({}), &mut Vec::new());
    assert_eq!(
        missing.unwrap_err().to_string(),
        "required field \"v\" is missing"
    );
    let unknown = protos.server("t.unknown").unwrap();
    assert_eq!(
        unknown.encode(&json!({"ok": 1, "n": {}}), &mut Vec::new()),
        Err(ProtoEncodeError::UnknownType {
            field: "n".into(),
            type_name: "Nope".into()
        })
    );
    assert_eq!(
        unknown.encode(&json!({"kv": {}}), &mut Vec::new()),
        Err(ProtoEncodeError::Unsupported {
            field: "kv".into(),
            option: "obj"
        })
    );
    // Fields never sent are never a problem.
    assert_eq!(enc("t.unknown", json!({"ok": 1})), [0x10, 0x01]);
}

#[test]
fn decode_errors() {
    use ProtoDecodeError::*;
    let cases: [(&str, &[u8], ProtoDecodeError); 10] = [
        ("t.all", &[0x08], Truncated),
        ("t.all", &[0x08, 0x80], Truncated),
        ("t.all", &[0x32, 0x05, b'a'], Truncated),
        ("t.all", &[0x25, 0, 0], Truncated),
        ("t.all", &[0x62, 0x03, 0x08, 0x02], Truncated), // nested length past the end
        ("t.all", &[0x62, 0x01, 0x08, 0x10, 0x00], Truncated), // field past the nested end
        ("t.all", &[0x68, 0x03, 0, 0, 0, 0, 0, 0, 0, 0], Truncated), // count > bytes
        ("t.all", &[0x78, 0x00], UnknownTag { tag: 15 }),
        ("t.all", &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00], BadVarint), // key above 2^32
        (
            "t.all",
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            BadVarint,
        ),
    ];
    for (route, bytes, error) in cases {
        assert_eq!(dec(route, bytes), Err(error), "{bytes:02x?}");
    }
    // A huge count with few bytes is refused before anything is allocated.
    assert_eq!(
        dec("t.packed", &[0x10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
        Err(Truncated)
    );
    assert_eq!(
        dec("t.unknown", &[0x0a, 0x00]),
        Err(UnknownType {
            field: "n".into(),
            type_name: "Nope".into()
        })
    );
    assert_eq!(
        dec("t.unknown", &[0x1a, 0x00]),
        Err(Unsupported {
            field: "kv".into(),
            option: "obj"
        })
    );
}

#[test]
fn nesting_is_bounded() {
    let protos = protos();
    let deep = protos.server("t.deep").unwrap();
    // t.deep is level 1, "n" level 2, each "next" one more: MAX_DEPTH levels in all.
    let mut value = json!({});
    for _ in 0..MAX_DEPTH - 2 {
        value = json!({"next": value});
    }
    let ok = json!({"n": value});
    let mut out = Vec::new();
    deep.encode(&ok, &mut out).unwrap();
    assert_eq!(deep.decode(&out).unwrap(), ok);
    let too = json!({"n": {"next": value}});
    assert_eq!(deep.encoded_len(&too), Err(ProtoEncodeError::TooDeep));
    // The same nesting on the wire: key 0a, then lengths.
    let wrap = |bytes: Vec<u8>| {
        let mut outer = vec![0x0a];
        let (len, n) = wire::varint(bytes.len() as u64);
        outer.extend_from_slice(&len[..n]);
        outer.extend_from_slice(&bytes);
        outer
    };
    let mut bytes = Vec::new();
    for _ in 0..MAX_DEPTH - 1 {
        bytes = wrap(bytes);
    }
    assert_eq!(bytes, out);
    assert_eq!(deep.decode(&wrap(bytes)), Err(ProtoDecodeError::TooDeep));
}

#[test]
fn long_nested_messages_move_their_body() {
    // A nested body of 200 bytes needs a 2-byte length: the reserved byte grows.
    let long = "x".repeat(197);
    let value = json!({"items": [{"name": long}, {"name": "y"}]});
    let bytes = enc("t.all", value.clone());
    assert_eq!(&bytes[..4], [0x5a, 0xc8, 0x01, 0x0a]);
    assert_eq!(dec("t.all", &bytes).unwrap(), value);
}

// === the parsed form ===

#[test]
fn parsed_form_and_version_match_pinus() {
    // Expected texts and versions from pinus-protobuf 1.7.4 (tests/interop/protobuf_peer.js).
    let server = r#"{"onMove":{"required uInt32 id":1,"message Pos":{"required float x":1,"required float y":2},"repeated Pos path":2,"repeated int32 hp":3}}"#;
    let protos = Protos::from_json(server, "{}").unwrap();
    let parsed = r#"{"onMove":{"id":{"option":"required","type":"uInt32","tag":1},"path":{"option":"repeated","type":"Pos","tag":2},"hp":{"option":"repeated","type":"int32","tag":3},"__messages":{"Pos":{"x":{"option":"required","type":"float","tag":1},"y":{"option":"required","type":"float","tag":2},"__messages":{},"__tags":{"1":"x","2":"y"}}},"__tags":{"1":"id","2":"path","3":"hp"}}}"#;
    assert_eq!(protos.version(), "IgF6DgvCRHJjkUfdI21Cig==");
    assert_eq!(
        protos.handshake_json(),
        format!(r#"{{"server":{parsed},"client":{{}},"version":"IgF6DgvCRHJjkUfdI21Cig=="}}"#)
    );
}

#[test]
fn parser_quirks_as_pinus() {
    // Dropped: a duplicate tag, keys not of two/three words, unknown options. Kept: map/obj
    // (pinus 1.7), a "message X" at the root, names redefined in place, tags sorted, a
    // repeated JSON key (first place, last value), integer-like names first.
    let src = r#"{
      "r": {"required uInt32 b": 5, "optional string dup": 5, "required  uInt32 two_spaces": 6,
            "message": {}, "message A B": {}, "foo uInt32 x": 7, "map M m": 9, "optional uInt32 z": 9, "obj M o": 8,
            "optional uInt32 b": 2, "required uInt32 b": 4, "message 7": {}, "message Q": {},
            "message 3": {"required string 9": 1}},
      "message Top": [1, 2],
      "5": 1
    }"#;
    let protos = Protos::from_json(src, "{}").unwrap();
    let server = protos
        .handshake_json()
        .strip_prefix(r#"{"server":"#)
        .and_then(|s| s.split(r#","client":"#).next())
        .unwrap();
    // JSON.stringify(require('pinus-protobuf').Protobuf.parse(JSON.parse(src))), pinus 1.7.4.
    assert_eq!(
        server,
        r#"{"5":{"__messages":{},"__tags":{}},"r":{"b":{"option":"optional","type":"uInt32","tag":2},"dup":{"option":"optional","type":"string","tag":5},"m":{"option":"map","type":"M","tag":9},"o":{"option":"obj","type":"M","tag":8},"__messages":{"3":{"9":{"option":"required","type":"string","tag":1},"__messages":{},"__tags":{"1":"9"}},"7":{"__messages":{},"__tags":{}},"Q":{"__messages":{},"__tags":{}}},"__tags":{"2":"b","4":"b","5":"dup","8":"o","9":"m"}},"message Top":{"__messages":{},"__tags":{}}}"#
    );
    // Tags 2 and 4 both decode as "b" (now an optional uInt32), as in pinus.
    let r = protos.server("r").unwrap();
    assert_eq!(
        r.decode(&[0x20, 0x01, 0x10, 0x02]).unwrap(),
        json!({"b": 2})
    );
    assert_eq!(r.encode(&json!({"b": 1, "z": 1}), &mut Vec::new()), Ok(()));
    assert!(protos.server("message Top").is_some());
}

#[test]
fn bad_sources_are_refused_with_the_file_and_key() {
    let cases = [
        (
            r#"{"r": {"required uInt32 a": "1"}}"#,
            "\"r/required uInt32 a\": the tag must be",
        ),
        (r#"{"r": {"required uInt32 a": 1.5}}"#, "the tag must be"),
        (
            r#"{"r": {"required uInt32 a": 268435456}}"#,
            "the tag must be",
        ),
        (r#"{"r": {"required uInt32 a": -1}}"#, "the tag must be"),
        (
            r#"{"r": {"message P": {"required uInt32 ": 1}}}"#,
            "\"r/message P/required uInt32 \": empty field name",
        ),
        (
            r#"{"r": {"required uInt32 __tags": 1}}"#,
            "reserved field name",
        ),
        (r#"{"__proto__": {}}"#, "\"__proto__\""),
        (r#"{"r": {"message __proto__": {}}}"#, "\"__proto__\""),
        ("[]", "the top level is not a JSON object"),
        ("{", "invalid JSON: expected a key string at byte 1"),
    ];
    for (src, needle) in cases {
        let err = Protos::from_json("{}", src).unwrap_err().to_string();
        assert!(err.starts_with("clientProtos.json: "), "{err}");
        assert!(err.contains(needle), "{src}: {err}");
    }
    // Tag 0 and 2^28 - 1 are fine; a BOM is skipped.
    Protos::from_json(
        "\u{feff}{\"r\": {\"required uInt32 a\": 0, \"required uInt32 b\": 268435455}}",
        "{}",
    )
    .unwrap();
}

#[test]
fn load_dir_files() {
    let dir = std::env::temp_dir().join(format!("gatehouse-protos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let err = Protos::load_dir(&dir).unwrap_err();
    assert!(matches!(err, ProtosError::NoFiles { .. }), "{err}");
    std::fs::write(
        dir.join("clientProtos.json"),
        r#"{"c.r": {"required uInt32 a": 1}}"#,
    )
    .unwrap();
    let protos = Protos::load_dir(&dir).unwrap();
    assert!(protos.client("c.r").is_some());
    let same = Protos::from_json("{}", r#"{"c.r": {"required uInt32 a": 1}}"#).unwrap();
    assert_eq!(protos.handshake_json(), same.handshake_json());
    std::fs::write(dir.join("serverProtos.json"), "{oops").unwrap();
    let err = Protos::load_dir(&dir).unwrap_err().to_string();
    assert!(err.contains("serverProtos.json: invalid JSON"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Protos>();
    assert_send_sync::<Message>();
    let text = format!("{:?}", protos());
    assert!(text.starts_with("Protos {"), "{text}");
}
