//! Protobuf bodies through a real [`Server`] (pinus `useProtobuf`): the handshake exchange,
//! requests decoded with the client protos, responses and pushes encoded with the server
//! protos (once per push, with the route dictionary when it is on), and what happens to
//! messages that do not fit their proto. Raw pomelo clients on 127.0.0.1, TCP and WebSocket;
//! the client side decodes with the same [`Protos`] (the codec itself is checked byte for byte
//! against npm `pomelo-protobuf` in tests/protobuf_diff.rs).
//!
//! Every wait is bounded (the client's reads carry deadlines); nothing sleeps to synchronise.

mod util;

use gatehouse::protocol::{decode_message, MessageType, PackageType, Protos, Route};
use gatehouse::server::{Handler, Request, Response, Server, ServerBuilder};
use gatehouse::Sid;
use serde_json::{json, Value};
use std::sync::Arc;
use util::{builder, Client, Transport, BOTH};

const SERVER: &str = r#"{
    "game.login": {"required uInt32 code": 1, "optional string uid": 2},
    "game.later": {"required uInt32 code": 1, "optional sInt32 n": 2},
    "game.broken": {"required uInt32 code": 1, "required string must": 2},
    "game.drop": {"optional uInt32 code": 1},
    "onMove": {
        "message Pos": {"required sInt32 x": 1, "required sInt32 y": 2},
        "required uInt32 entityId": 1,
        "repeated Pos path": 2,
        "optional float speed": 3
    }
}"#;

const CLIENT: &str = r#"{
    "game.login": {"required string uid": 1, "optional uInt32 level": 2},
    "game.later": {"required sInt32 n": 1}
}"#;

fn protos() -> Arc<Protos> {
    Arc::new(Protos::from_json(SERVER, CLIENT).expect("test protos parse"))
}

/// `game.login {uid}` binds and answers `{code, uid}` plus what the handler saw (`proto`:
/// whether the body was protobuf; `seen`: the decoded body) on routes without a server proto
/// only; `game.later {n}` answers `{code, n: -n}` later through a `Responder`; `game.broken`
/// answers a value its server proto cannot encode; `game.drop` drops its `Responder`
/// unanswered; `game.move {…}` pushes the body on `onMove`
/// to every bound session; `game.json {…}` (no proto either way) echoes the body and whether
/// it was protobuf.
struct Game;

impl Handler for Game {
    fn handshake(&self, sid: Sid, _: &Value) -> Result<Option<Value>, ()> {
        Ok(Some(json!({"sid": sid.into_raw()})))
    }

    fn request(&self, req: Request<'_>) -> Response {
        let body = req.json();
        match req.route() {
            "game.login" => {
                assert!(req.is_protobuf(), "game.login has a client proto");
                let uid = body["uid"].as_str().unwrap_or_default().to_owned();
                req.service().bind(req.sid(), &uid).expect("bind");
                Response::Json(json!({"code": 200, "uid": uid}))
            }
            "game.later" => {
                let n = body["n"].as_i64().unwrap_or(0);
                let responder = req.responder();
                std::thread::spawn(move || {
                    responder
                        .respond_json(&json!({"code": 200, "n": -n}))
                        .expect("respond");
                });
                Response::Deferred
            }
            "game.broken" => Response::Json(json!({"code": 200})),
            "game.drop" => {
                drop(req.responder()); // forgot to answer
                Response::Deferred
            }
            "game.move" => {
                let report = req.service().push_to_all("onMove", &body).expect("encodes");
                Response::Json(json!({"code": 200, "n": report.enqueued()}))
            }
            "game.json" => Response::Json(json!({
                "code": 200,
                "protobuf": req.is_protobuf(),
                "body": body,
                "strict": req.try_json().is_ok(),
            })),
            _ => Response::Json(json!({"code": 404})),
        }
    }
}

fn start(b: ServerBuilder) -> Server {
    b.protos(Some(protos()))
        .start(Arc::new(Game))
        .expect("server starts")
}

/// A DATA package holding a request whose body is already encoded.
fn request(id: u32, route: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    gatehouse::protocol::encode_data(
        &gatehouse::protocol::Message::request(id, Route::Name(route), body),
        &mut out,
    )
    .unwrap();
    out
}

/// Sends `value` on `route` encoded with its client proto.
fn send_proto(c: &mut Client, id: u32, route: &str, value: &Value) {
    let protos = protos();
    let mut body = Vec::new();
    protos
        .client(route)
        .expect("route has a client proto")
        .encode(value, &mut body)
        .expect("test value fits its proto");
    c.send_packages(&request(id, route, &body));
}

/// The next message: kind, id, route (by name or `#code`), raw body.
fn next_raw(c: &mut Client) -> (MessageType, u32, String, Vec<u8>) {
    let package = c.expect_package(PackageType::Data);
    let m = decode_message(&package).expect("server sent a valid message");
    let route = match m.route {
        Route::Name(n) => n.to_owned(),
        Route::Code(code) => format!("#{code}"),
        Route::None => String::new(),
    };
    (m.kind, m.id, route, m.body.to_vec())
}

/// The next message must be the response to `id` on a route with a server proto: decoded.
fn proto_response(c: &mut Client, id: u32, route: &str) -> Value {
    let (kind, got, _, body) = next_raw(c);
    assert_eq!((kind, got), (MessageType::Response, id));
    protos()
        .server(route)
        .expect("route has a server proto")
        .decode(&body)
        .unwrap_or_else(|err| panic!("response to {route} is not its proto ({err}): {body:?}"))
}

fn login(server: &Server, transport: Transport, uid: &str) -> Client {
    let mut c = Client::working(server.local_addr(), transport);
    send_proto(&mut c, 1, "game.login", &json!({"uid": uid}));
    assert_eq!(
        proto_response(&mut c, 1, "game.login"),
        json!({"code": 200, "uid": uid})
    );
    c
}

#[test]
fn handshake_announces_use_proto_and_sends_protos_unless_the_client_has_them() {
    let server = start(builder());
    let protos = protos();
    // The official client's first handshake: `protoVersion` is the number 0.
    let mut c = Client::connect(server.local_addr(), Transport::Tcp);
    c.send_handshake(r#"{"sys":{"type":"js-websocket","version":"0.0.1","protoVersion":0}}"#);
    let reply = c.expect_handshake_reply();
    assert_eq!(reply["code"], 200);
    assert_eq!(reply["sys"]["useProto"], true);
    let sent = &reply["sys"]["protos"];
    assert_eq!(sent["version"], protos.version());
    let expected: Value = serde_json::from_str(protos.handshake_json()).unwrap();
    assert_eq!(sent, &expected);
    assert!(sent["server"]["onMove"]["__messages"]["Pos"].is_object());
    assert!(sent["client"]["game.login"]["uid"].is_object());
    drop(c);

    // A client that cached the current version gets only `useProto`.
    let mut c = Client::connect(server.local_addr(), Transport::Ws);
    let hello = json!({"sys": {"type": "js-websocket", "protoVersion": protos.version()}});
    c.send_handshake(&hello.to_string());
    let reply = c.expect_handshake_reply();
    assert_eq!(reply["sys"]["useProto"], true);
    assert!(
        reply["sys"].get("protos").is_none(),
        "protos re-sent: {reply}"
    );
    drop(c);

    // A stale version gets them again.
    let mut c = Client::connect(server.local_addr(), Transport::Tcp);
    c.send_handshake(r#"{"sys":{"protoVersion":"stale"}}"#);
    assert_eq!(
        c.expect_handshake_reply()["sys"]["protos"]["version"],
        protos.version()
    );
    drop(c); // closed by the client: the shutdown has no linger to wait out
    server.shutdown(None);
}

#[test]
fn requests_decode_with_client_protos_and_responses_encode_with_server_protos() {
    let server = start(builder());
    for transport in BOTH {
        let mut c = login(&server, transport, &format!("u-{transport:?}"));

        // Deferred answers go through the same proto.
        send_proto(&mut c, 2, "game.later", &json!({"n": 41}));
        assert_eq!(
            proto_response(&mut c, 2, "game.later"),
            json!({"code": 200, "n": -41})
        );

        // A route in neither protos stays JSON both ways.
        c.send_request(3, "game.json", &json!({"a": [1, 2]}));
        assert_eq!(
            c.expect_response(3),
            json!({"code": 200, "protobuf": false, "body": {"a": [1, 2]}, "strict": true})
        );
    }
    server.shutdown(None);
}

#[test]
fn a_response_that_does_not_fit_its_proto_or_is_never_given_is_an_empty_message_not_json() {
    let server = start(builder());
    let mut c = login(&server, Transport::Tcp, "broken");
    c.send_request(2, "game.broken", &json!({}));
    let (kind, id, _, body) = next_raw(&mut c);
    assert_eq!((kind, id), (MessageType::Response, 2));
    assert!(body.is_empty(), "expected an empty message, got {body:?}");
    // The connection goes on.
    send_proto(&mut c, 3, "game.later", &json!({"n": 1}));
    assert_eq!(proto_response(&mut c, 3, "game.later")["n"], -1);
    // A responder dropped unanswered on a server-proto route: an empty message too, not the
    // JSON `{"code":500,…}` the client would misread as protobuf.
    c.send_request(4, "game.drop", &json!({}));
    let (kind, id, _, body) = next_raw(&mut c);
    assert_eq!((kind, id), (MessageType::Response, 4));
    assert!(body.is_empty(), "expected an empty message, got {body:?}");
    drop(c);
    server.shutdown(None);
}

#[test]
fn a_body_that_does_not_decode_reads_as_empty_and_try_json_says_why() {
    // A handler that reports what it saw of a garbage protobuf body.
    struct Probe;
    impl Handler for Probe {
        fn request(&self, req: Request<'_>) -> Response {
            Response::Bytes(
                json!({"json": req.json(), "err": req.try_json().err().map(|e| e.to_string())})
                    .to_string()
                    .into_bytes(),
            )
        }
    }
    let server = builder()
        .protos(Some(protos()))
        .start(Arc::new(Probe))
        .unwrap();
    let mut c = Client::working(server.local_addr(), Transport::Tcp);
    // Field 1 (uid, a string) claims 100 bytes and has 2.
    c.send_packages(&request(1, "game.login", &[0x0a, 100, b'h', b'i']));
    let answer = c.expect_response(1);
    assert_eq!(answer["json"], json!({}));
    let err = answer["err"].as_str().expect("try_json failed");
    assert!(err.contains("client proto"), "{err}");
    drop(c);
    server.shutdown(None);
}

#[test]
fn pushes_are_encoded_once_with_the_server_proto_and_the_dictionary() {
    for dict in [false, true] {
        let mut b = builder();
        if dict {
            b = b.dictionary(["game.login", "game.move", "onMove"]);
        }
        let server = start(b);
        let mut a = login(&server, Transport::Tcp, "a");
        let mut w = login(&server, Transport::Ws, "w");
        let body = json!({"entityId": 7, "path": [{"x": -1, "y": 2}, {"x": 300, "y": -70000}], "speed": 0.5});
        a.send_request(9, "game.move", &body);
        let expected_route = if dict {
            let code = server
                .service()
                .dictionary()
                .and_then(|d| d.code("onMove"))
                .expect("onMove has a code");
            format!("#{code}")
        } else {
            "onMove".to_owned()
        };
        let mut wire = Vec::new();
        for c in [&mut a, &mut w] {
            let (kind, _, route, bytes) = next_raw(c);
            assert_eq!(kind, MessageType::Push);
            assert_eq!(route, expected_route);
            let decoded = protos().server("onMove").unwrap().decode(&bytes).unwrap();
            assert_eq!(decoded, body);
            wire.push(bytes);
        }
        assert_eq!(wire[0], wire[1], "one encoding for every recipient");
        // The push was queued before the response: it arrived first.
        assert_eq!(a.expect_response(9), json!({"code": 200, "n": 2}));

        // Game threads push through `Server::service` with the same protos.
        let sessions = server.service();
        assert_eq!(sessions.push_to_uid("w", "onMove", &body), Ok(1));
        let (_, _, _, bytes) = next_raw(&mut w);
        assert_eq!(bytes, wire[0]);
        // A body that does not fit the proto is an error, nothing is queued.
        let err = sessions
            .push_to_uid("w", "onMove", &json!({"path": []}))
            .unwrap_err();
        assert!(err.to_string().contains("protobuf"), "{err}");
        // A route without a server proto is pushed as JSON.
        assert_eq!(sessions.push_to_uid("w", "onChat", &json!({"m": 1})), Ok(1));
        let (_, _, route, bytes) = next_raw(&mut w);
        assert_eq!(route, "onChat");
        assert_eq!(bytes, br#"{"m":1}"#);
        drop((a, w));
        server.shutdown(None);
    }
}
