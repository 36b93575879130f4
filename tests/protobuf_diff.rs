//! Differential test of `gatehouse::protocol::protobuf` against the reference JavaScript
//! codecs: npm `pomelo-protobuf` 0.4.0 (the official clients' codec) and `pinus-protobuf`
//! 1.7.4 (pinus's), run by `tests/interop/protobuf_peer.js` under node.
//!
//! Checked, over realistic game protos (nested and root messages, recursion, every scalar
//! type, every kind of repeated field, tags ≥ 16) and seeded random messages:
//! * the parsed protos, the handshake `sys.protos` text and the version: byte-identical to
//!   pinus's (and the parsed form to pomelo-protobuf's, which has no `map`/`obj`), also for
//!   random proto sources full of the parser's quirks;
//! * every message: identical bytes from our encoder and each reference encoder; each
//!   reference decoder reads our bytes back to the value, and so does ours.
//!
//! `bool`, `uInt64` and `sInt64` exist in pinus-protobuf only (pomelo-protobuf 0.4.0 writes a
//! key and no value for them): routes using them are compared with pinus alone.
//!
//! Needs node and `tests/interop/node_modules` (`npm ci` in tests/interop; bin/test.sh does
//! it). Missing either is a test FAILURE, never a skip.

use gatehouse::__private::XorShift;
use gatehouse::protocol::protobuf::Protos;
use serde_json::{json, Map, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

// === the peer ===

struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start() -> Peer {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let hint = "run `npm ci` in tests/interop; bin/test.sh does";
        match Command::new("node").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            _ => panic!("node is not installed (needed by the protobuf differential test): install node >= 18, then {hint}"),
        }
        for module in ["pomelo-protobuf", "pinus-protobuf"] {
            let manifest = root
                .join("tests/interop/node_modules")
                .join(module)
                .join("package.json");
            assert!(
                manifest.is_file(),
                "tests/interop/node_modules/{module} is missing: {hint}"
            );
        }
        let mut child = Command::new("node")
            .arg("tests/interop/protobuf_peer.js")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node tests/interop/protobuf_peer.js");
        let stdin = child.stdin.take().expect("peer stdin");
        let stdout = BufReader::new(child.stdout.take().expect("peer stdout"));
        Peer {
            child,
            stdin,
            stdout,
        }
    }

    /// One request, its reply (`ok` checked unless `may_fail`).
    fn call(&mut self, request: &Value) -> Value {
        writeln!(self.stdin, "{request}").expect("write to the peer");
        self.stdin.flush().expect("flush to the peer");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from the peer");
        assert!(!line.is_empty(), "the peer exited (request: {request})");
        let reply: Value = serde_json::from_str(&line).expect("the peer's reply is JSON");
        assert_eq!(
            reply["ok"],
            json!(true),
            "the peer failed: {reply}\nrequest: {request}"
        );
        reply
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // By pid: this child only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === protos ===

const SERVER: &str = r#"{
  "connector.entryHandler.entry": {
    "required uInt32 code": 1, "optional string msg": 2, "optional Player player": 3
  },
  "area.playerHandler.move": {"required uInt32 code": 1},
  "onMove": {
    "required uInt32 entityId": 1, "repeated Pos path": 2, "optional float speed": 3,
    "optional string name": 4,
    "message Pos": {"required float x": 1, "required float y": 2}
  },
  "onAttack": {
    "required uInt32 attacker": 1, "required uInt32 target": 2, "required sInt32 damage": 3,
    "repeated int32 effects": 4, "optional double at": 5, "repeated double history": 6,
    "repeated float weights": 7, "repeated sInt32 deltas": 8, "optional Result result": 16,
    "repeated string tags": 17, "repeated uInt32 ids": 300, "optional int32 crit": 2000000,
    "message Result": {"optional string text": 1, "repeated Item loot": 2}
  },
  "onArea": {
    "repeated Entity entities": 1, "optional uInt32 areaId": 2,
    "message Entity": {
      "required uInt32 id": 1, "optional string kind": 2, "optional Pos pos": 3,
      "repeated Item bag": 4,
      "message Pos": {"required sInt32 x": 1, "required sInt32 y": 2, "optional int32 z": 3}
    }
  },
  "onPinus": {
    "optional bool flag": 1, "repeated bool flags": 2, "optional uInt64 big": 3,
    "optional sInt64 delta": 4, "repeated uInt64 bigs": 5, "repeated sInt64 deltas": 6,
    "required uInt32 n": 7
  },
  "message Item": {
    "required uInt32 id": 1, "optional string name": 2, "optional uInt32 count": 3,
    "repeated Stat stats": 4
  },
  "message Stat": {"required string key": 1, "required sInt32 value": 2},
  "message Player": {
    "required uInt32 id": 1, "required string name": 2, "optional uInt32 level": 3,
    "repeated Item items": 4, "optional Tree tree": 5
  },
  "message Tree": {"optional uInt32 v": 1, "repeated Tree kids": 2}
}"#;

const CLIENT: &str = r#"{
  "connector.entryHandler.entry": {"required string token": 1, "optional uInt32 version": 2},
  "area.playerHandler.move": {"required float x": 1, "required float y": 2, "optional uInt32 seq": 3},
  "chat.chatHandler.send": {
    "required string content": 1, "required string target": 2, "repeated uInt32 mentions": 3,
    "optional Meta meta": 4, "message Meta": {"optional double ts": 1, "optional sInt32 tz": 2}
  }
}"#;

/// Routes pomelo-protobuf 0.4.0 cannot encode (pinus-only types).
const PINUS_ONLY: &[&str] = &["onPinus"];

/// Loads `server` / `client` on both sides and compares the parsed form, handshake text and
/// version. Returns our protos.
fn init_and_compare(peer: &mut Peer, server: &str, client: &str, with_pomelo: bool) -> Protos {
    let protos = Protos::from_json(server, client)
        .unwrap_or_else(|e| panic!("our parser refused the source: {e}\n{server}\n{client}"));
    let reply = peer.call(&json!({"op": "init", "server": server, "client": client}));
    let pinus = &reply["pinus"];
    assert_eq!(
        protos.handshake_json(),
        pinus["handshake"].as_str().unwrap(),
        "handshake text differs from pinus's for\n{server}\n{client}"
    );
    assert_eq!(protos.version(), pinus["version"].as_str().unwrap());
    if with_pomelo {
        let pomelo = &reply["pomelo"];
        let text = format!(
            r#"{{"server":{},"client":{},"version":"{}"}}"#,
            pomelo["server"].as_str().unwrap(),
            pomelo["client"].as_str().unwrap(),
            protos.version()
        );
        assert_eq!(
            protos.handshake_json(),
            text,
            "parsed form differs from pomelo-protobuf's"
        );
    }
    protos
}

// === values from a proto (the test's own reading of the source) ===

/// A message's source object and the chain of scopes to resolve its types in.
struct Schema {
    root: Map<String, Value>,
}

impl Schema {
    fn new(source: &str) -> Schema {
        let Value::Object(root) = serde_json::from_str(source).unwrap() else {
            panic!("not an object")
        };
        Schema { root }
    }

    /// The message a field of type `ty` declared in `scope` refers to (own nested messages,
    /// then root `"message X"`).
    fn resolve<'a>(
        &'a self,
        scope: &'a Map<String, Value>,
        ty: &str,
    ) -> Option<&'a Map<String, Value>> {
        let key = format!("message {ty}");
        scope
            .get(&key)
            .or_else(|| self.root.get(&key))
            .and_then(Value::as_object)
    }

    fn value(&self, rng: &mut XorShift, message: &Map<String, Value>, depth: usize) -> Value {
        let mut out = Map::new();
        for key in message.keys() {
            let words: Vec<&str> = key.split(' ').collect();
            let [option, ty, name] = words[..] else {
                continue;
            };
            let nested = self.resolve(message, ty);
            match option {
                "required" => {
                    out.insert(
                        name.into(),
                        self.one(rng, message, ty, nested, depth, false),
                    );
                }
                "optional" => {
                    if rng.chance(70) && (nested.is_none() || depth < 5) {
                        out.insert(
                            name.into(),
                            self.one(rng, message, ty, nested, depth, false),
                        );
                    }
                }
                _ => {
                    if rng.chance(75) {
                        let n = if nested.is_some() && depth >= 5 {
                            0
                        } else {
                            rng.below(5)
                        };
                        let items = (0..n)
                            .map(|_| self.one(rng, message, ty, nested, depth, true))
                            .collect();
                        out.insert(name.into(), Value::Array(items));
                    }
                }
            }
        }
        if rng.chance(10) {
            out.insert("zzNotInProto".into(), json!(1));
        }
        Value::Object(out)
    }

    fn one(
        &self,
        rng: &mut XorShift,
        _scope: &Map<String, Value>,
        ty: &str,
        nested: Option<&Map<String, Value>>,
        depth: usize,
        element: bool,
    ) -> Value {
        const BIG: u64 = (1 << 53) - 1;
        let unsigned = |rng: &mut XorShift| -> u64 {
            match rng.below(4) {
                0 => rng.below(128),
                1 => rng.below(1 << 14),
                2 => *rng.pick(&[
                    127,
                    128,
                    300,
                    16_383,
                    16_384,
                    1 << 31,
                    u32::MAX as u64,
                    3_000_000_001,
                    BIG,
                ]),
                _ => rng.below(BIG),
            }
        };
        match ty {
            "uInt32" | "uInt64" => json!(unsigned(rng)),
            "sInt32" | "int32" | "sInt64" => {
                let n = unsigned(rng).min(1 << 52) as i64;
                json!(if rng.chance(50) { -n } else { n })
            }
            "bool" => json!(rng.chance(50)),
            "float" => {
                let f = match rng.below(3) {
                    0 => *rng.pick(&[0.5f32, -2.25, 1e-3, 3.4e38, -1.17e-38, 0.1, 7.0]),
                    _ => loop {
                        let f = f32::from_bits(rng.next_u64() as u32);
                        if f.is_finite() {
                            break f;
                        }
                    },
                };
                json!(f64::from(f))
            }
            "double" => {
                // Repeated doubles: long decimal forms only. pomelo-protobuf sizes its buffer
                // as twice the JSON text, which 8-byte elements written as "1" overflow.
                let short = !element && rng.chance(30);
                let d = if short {
                    *rng.pick(&[0.5, -1.0, 1e300, 0.1])
                } else {
                    loop {
                        let d = f64::from_bits(rng.next_u64());
                        if d.is_finite() && d.abs() > 1e-300 {
                            break d;
                        }
                    }
                };
                json!(d)
            }
            "string" => {
                const PARTS: &[&str] = &[
                    "a", "hero", " ", "é", "中文", "🎮", "\"", "\\", "\n", "\u{1}", "\u{2028}", "0",
                ];
                let n = rng.below(6);
                json!((0..n).map(|_| *rng.pick(PARTS)).collect::<String>())
            }
            _ => self.value(rng, nested.expect("a resolvable type"), depth + 1),
        }
    }
}

/// What a decoder should give back for `value` encoded with `message`'s proto: keys not in
/// the proto and empty arrays gone.
fn expected(schema: &Schema, message: &Map<String, Value>, value: &Value) -> Value {
    let mut out = Map::new();
    for key in message.keys() {
        let words: Vec<&str> = key.split(' ').collect();
        let [option, ty, name] = words[..] else {
            continue;
        };
        let Some(v) = value.get(name) else { continue };
        let nested = schema.resolve(message, ty);
        let one = |v: &Value| match nested {
            Some(m) => expected(schema, m, v),
            None => v.clone(),
        };
        if option == "repeated" {
            let items = v.as_array().unwrap();
            if !items.is_empty() {
                out.insert(name.into(), Value::Array(items.iter().map(one).collect()));
            }
        } else {
            out.insert(name.into(), one(v));
        }
    }
    Value::Object(out)
}

/// Equal as JSON values, numbers compared by value (`1 == 1.0`, `-0 == 0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One message through every codec.
fn check_message(
    peer: &mut Peer,
    protos: &Protos,
    side: &str,
    route: &str,
    value: &Value,
    want: &Value,
) {
    let message = match side {
        "server" => protos.server(route),
        _ => protos.client(route),
    }
    .unwrap_or_else(|| panic!("no {side} route {route}"));
    let mut ours = Vec::new();
    message
        .encode(value, &mut ours)
        .unwrap_or_else(|e| panic!("{route}: we refused {value}: {e}"));
    assert_eq!(message.encoded_len(value).unwrap(), ours.len());
    let back = message.decode(&ours).unwrap();
    assert!(
        same(&back, want),
        "{route}: our decode\n  {back}\n!= {want}"
    );
    let codecs: &[&str] = if PINUS_ONLY.contains(&route) {
        &["pinus"]
    } else {
        &["pomelo", "pinus"]
    };
    for codec in codecs {
        let request =
            json!({"op": "encode", "codec": codec, "side": side, "route": route, "value": value});
        let theirs = peer.call(&request)["hex"].clone();
        // The JS encoders return null for an empty message.
        let theirs = theirs.as_str().unwrap_or("");
        assert_eq!(
            hex(&ours),
            theirs,
            "{codec} encodes {route} {value} differently"
        );
        let request = json!({"op": "decode", "codec": codec, "side": side, "route": route, "hex": hex(&ours)});
        let decoded = &peer.call(&request)["value"];
        assert!(
            same(decoded, want),
            "{codec} decodes our {route} bytes {} to\n  {decoded}\n!= {want}",
            hex(&ours)
        );
    }
}

#[test]
fn game_protos_agree_with_pomelo_and_pinus() {
    let mut peer = Peer::start();
    let protos = init_and_compare(&mut peer, SERVER, CLIENT, true);
    let mut rng = XorShift::new(0x005e_ed0f_9a7e_4007);
    let mut count = 0;
    for (side, source) in [("server", SERVER), ("client", CLIENT)] {
        let schema = Schema::new(source);
        let routes: Vec<(String, Map<String, Value>)> = schema
            .root
            .iter()
            .filter(|(route, _)| !route.starts_with("message "))
            .map(|(route, m)| (route.clone(), m.as_object().unwrap().clone()))
            .collect();
        let per_route = if side == "server" { 400 } else { 300 };
        for (route, message) in &routes {
            for _ in 0..per_route {
                let value = schema.value(&mut rng, message, 1);
                let want = expected(&schema, message, &value);
                check_message(&mut peer, &protos, side, route, &value, &want);
                count += 1;
            }
        }
    }
    assert!(count >= 3000, "{count} messages");
    println!("{count} random messages agree with the reference codecs");
}

#[test]
fn the_move_push_of_the_docs() {
    let mut peer = Peer::start();
    let protos = init_and_compare(&mut peer, SERVER, CLIENT, true);
    let value = json!({"entityId": 10293, "path": [{"x": 1.5, "y": 2.25}, {"x": -3.0, "y": 0.5}],
        "speed": 3.5, "name": "hero"});
    check_message(&mut peer, &protos, "server", "onMove", &value, &value);
    // The spec's examples, through pinus too.
    let spec = r#"{"a": {"required int32 v": 1, "repeated uInt32 p": 2, "repeated float f": 3,
        "optional string s": 16}}"#;
    let protos = init_and_compare(&mut peer, spec, "{}", true);
    let value = json!({"v": -7, "p": [7, 8, 300, 70000], "f": [0.5, -2.25], "s": "x"});
    let mut out = Vec::new();
    protos
        .server("a")
        .unwrap()
        .encode(&value, &mut out)
        .unwrap();
    // Keys in the value's order (serde_json sorts them): f, p, s, v.
    let want = [
        "1d020000003f000010c0",
        "10040708ac02f0a204",
        "82010178",
        "080d",
    ];
    assert_eq!(hex(&out), want.concat());
    check_message(&mut peer, &protos, "server", "a", &value, &value);
}

/// Random proto sources with the parser's quirks: duplicate tags, redefined names, repeated
/// JSON keys, keys of the wrong word count, unknown options, integer-like names, `map`/`obj`,
/// nested and root messages.
#[test]
fn random_proto_sources_parse_as_pinus_parses_them() {
    let mut peer = Peer::start();
    let mut rng = XorShift::new(0x0000_ddba_11c0_ffee);
    fn message(rng: &mut XorShift, depth: usize, with_map: bool) -> String {
        let mut keys = Vec::new();
        for _ in 0..rng.below(8) {
            let option = *rng.pick(&[
                "required", "optional", "repeated", "repeated", "message", "foo",
            ]);
            let option = if with_map && rng.chance(10) {
                "map"
            } else {
                option
            };
            let name = rng
                .pick(&["a", "b", "id", "Pos", "7", "12", "x y", "é", "q\\\"", "0"])
                .to_string();
            let ty = rng.pick(&[
                "uInt32", "sInt32", "string", "float", "Pos", "Item", "double",
            ]);
            if option == "message" {
                if depth < 3 {
                    let name = name.replace(' ', "");
                    keys.push(format!(
                        "\"message {name}\": {}",
                        message(rng, depth + 1, with_map)
                    ));
                }
            } else {
                let tag = rng.below(12);
                keys.push(format!("\"{option} {ty} {name}\": {tag}"));
            }
        }
        if rng.chance(20) {
            keys.push("\"message\": 1, \"required uInt32\": 2, \"optional  a b\": 3".into());
        }
        if rng.chance(30) && !keys.is_empty() {
            let again = rng.pick(&keys).clone();
            keys.push(again); // a repeated JSON key
        }
        format!("{{{}}}", keys.join(", "))
    }
    for i in 0..150 {
        let with_map = i % 3 == 0;
        let file = |rng: &mut XorShift| {
            let mut routes = Vec::new();
            for _ in 0..rng.below(4) {
                let route =
                    rng.pick(&["area.a.b", "onX", "message Item", "message Pos", "3", "10"]);
                routes.push(format!("\"{route}\": {}", message(rng, 1, with_map)));
            }
            format!("{{{}}}", routes.join(",\n"))
        };
        let server = file(&mut rng);
        let client = file(&mut rng);
        init_and_compare(&mut peer, &server, &client, !with_map);
    }
}

/// What the official web client sends: pomelo-protobuf's browser build writes varint fields
/// with wire type 2 and characters outside the BMP as CESU-8. Our decoder must read those
/// requests exactly as pinus's decoder does (and as the value sent, where no CESU-8 is
/// involved).
#[test]
fn browser_build_requests_decode_as_pinus_decodes_them() {
    let mut peer = Peer::start();
    let protos = init_and_compare(&mut peer, SERVER, CLIENT, true);
    let schema = Schema::new(CLIENT);
    let mut rng = XorShift::new(0x0b0b_5e17_0000_0001);
    let (mut compared, mut with_cesu8) = (0, 0);
    for (route, message) in schema.root.iter() {
        let message = message.as_object().unwrap();
        let ours = protos.client(route).unwrap();
        for _ in 0..300 {
            let value = schema.value(&mut rng, message, 1);
            // The browser build sizes its buffer from the JSON text and silently truncates a
            // longer encoding (a client bug): only compare messages that fit.
            let fits = ours.encoded_len(&value).unwrap() + 4 <= value.to_string().len();
            if !fits {
                continue;
            }
            let request = json!({"op": "encode", "codec": "browser", "side": "client",
                "route": route, "value": value});
            let bytes = peer.call(&request)["hex"].as_str().unwrap_or("").to_owned();
            let raw: Vec<u8> = (0..bytes.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&bytes[i..i + 2], 16).unwrap())
                .collect();
            let decoded = ours
                .decode(&raw)
                .unwrap_or_else(|e| panic!("{route}: browser bytes {bytes} refused: {e}"));
            let request = json!({"op": "decode", "codec": "pinus", "side": "client",
                "route": route, "hex": bytes});
            let pinus = &peer.call(&request)["value"];
            assert!(
                same(&decoded, pinus),
                "{route}: browser bytes {bytes}: ours {decoded} != pinus {pinus}"
            );
            if value.to_string().chars().all(|c| u32::from(c) <= 0xffff) {
                let want = expected(&schema, message, &value);
                assert!(same(&decoded, &want), "{route}: {decoded} != {want}");
            } else {
                with_cesu8 += 1;
            }
            compared += 1;
        }
    }
    assert!(compared >= 500, "only {compared} browser messages compared");
    assert!(with_cesu8 >= 20, "only {with_cesu8} with CESU-8 strings");
    println!(
        "{compared} browser-build requests ({with_cesu8} with CESU-8) decode as pinus decodes them"
    );
}
