//! `Sessions`' pushes on the wire: a real [`Server`] on 127.0.0.1:0 and raw pomelo clients
//! (TCP, and WebSocket once). Checks the exact bytes of the DATA package a client receives for
//! `push_to_uid`, with and without the server's route dictionary, and that the `Sessions`
//! handed to handlers ([`Request::service`]) pushes with the same dictionary.
//!
//! Every wait is bounded (the client's reads carry deadlines); nothing sleeps to synchronise.

mod util;

use gatehouse::protocol::PackageType;
use gatehouse::server::{Handler, Request, Response, Server, ServerBuilder};
use gatehouse::{PushError, Sid, UidSendError};
use serde_json::{json, Value};
use std::sync::Arc;
use util::{builder, Client, Transport};

/// Tells each client its sid in the handshake; `game.login {uid}` binds, `game.shout {…}`
/// pushes the body to every bound session on `onShout` through the handler's `Sessions`, and
/// `game.whisper {…}` pushes it to the caller on `onWhisper`; both then answer with the count.
struct Game;

impl Handler for Game {
    fn handshake(&self, sid: Sid, _: &Value) -> Result<Option<Value>, ()> {
        Ok(Some(json!({"sid": sid.into_raw()})))
    }

    fn request(&self, req: Request<'_>) -> Response {
        let body = req.json();
        let sessions = req.service();
        match req.route() {
            "game.login" => {
                let uid = body["uid"].as_str().unwrap_or_default();
                sessions.bind(req.sid(), uid).expect("bind");
                Response::Json(json!({"code": 200}))
            }
            "game.shout" => {
                let report = sessions.push_to_all("onShout", &body).expect("encodes");
                Response::Json(json!({"code": 200, "n": report.enqueued()}))
            }
            "game.whisper" => {
                sessions
                    .push(req.sid(), "onWhisper", &body)
                    .expect("pushes");
                Response::Json(json!({"code": 200, "n": 1}))
            }
            _ => Response::Json(json!({"code": 404})),
        }
    }
}

fn start(b: ServerBuilder) -> Server {
    b.start(Arc::new(Game)).expect("server starts")
}

fn login(server: &Server, transport: Transport, uid: &str) -> Client {
    let mut c = Client::working(server.local_addr(), transport);
    c.send_request(1, "game.login", &json!({"uid": uid}));
    assert_eq!(c.expect_response(1), json!({"code": 200}));
    c
}

/// The DATA body of a PUSH with the route by name.
fn push_by_name(route: &str, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x06, route.len() as u8];
    out.extend_from_slice(route.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The DATA body of a PUSH with a route code.
fn push_by_code(code: u16, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x07];
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn push_to_uid_without_a_dictionary_sends_the_route_by_name() {
    let server = start(builder());
    assert!(server.service().dictionary().is_none());
    let mut c = login(&server, Transport::Tcp, "hero");

    let sent = server
        .service()
        .push_to_uid("hero", "onPush", &json!({"i": 3, "p": "xx"}));
    assert_eq!(sent, Ok(1));
    assert_eq!(
        c.expect_package(PackageType::Data),
        push_by_name("onPush", br#"{"i":3,"p":"xx"}"#)
    );
    // Raw bytes go out as they are.
    assert_eq!(
        server.service().push_to_uid("hero", "onRaw", b"\x01\x02"),
        Ok(1)
    );
    assert_eq!(
        c.expect_package(PackageType::Data),
        push_by_name("onRaw", b"\x01\x02")
    );
    assert_eq!(
        server.service().push_to_uid("nobody", "onPush", &json!({})),
        Err(PushError::Uid(UidSendError::UnknownUid))
    );
}

#[test]
fn push_to_uid_with_a_dictionary_sends_the_route_code() {
    // Handler routes are numbered in sorted order: "game.login" 1, "onPush" 2.
    let server = start(builder().dictionary(["onPush", "game.login"]));
    let dict = server
        .service()
        .dictionary()
        .expect("the server's dictionary");
    assert_eq!(dict.code("onPush"), Some(2));
    let mut tcp = login(&server, Transport::Tcp, "hero");
    let mut ws = login(&server, Transport::Ws, "hero");

    assert_eq!(
        server
            .service()
            .push_to_uid("hero", "onPush", &json!({"k": [1, 2]})),
        Ok(2)
    );
    for c in [&mut tcp, &mut ws] {
        assert_eq!(
            c.expect_package(PackageType::Data),
            push_by_code(2, br#"{"k":[1,2]}"#)
        );
    }
    // A route the dictionary does not have still goes by name.
    assert_eq!(
        server
            .service()
            .push_to_uid("hero", "onOther", &json!(null)),
        Ok(2)
    );
    for c in [&mut tcp, &mut ws] {
        assert_eq!(
            c.expect_package(PackageType::Data),
            push_by_name("onOther", b"null")
        );
    }
}

#[test]
fn handlers_push_through_their_sessions_with_the_server_dictionary() {
    let server = start(builder().dictionary(["onShout", "game.shout", "game.login"]));
    let code = server
        .service()
        .dictionary()
        .and_then(|d| d.code("onShout"))
        .unwrap();
    let mut a = login(&server, Transport::Tcp, "a");
    let mut b = login(&server, Transport::Tcp, "b");

    a.send_request(2, "game.shout", &json!({"t": "hello"}));
    // pomelo's order: the push the handler made reaches the caller before the response.
    assert_eq!(
        a.expect_package(PackageType::Data),
        push_by_code(code, br#"{"t":"hello"}"#)
    );
    assert_eq!(a.expect_response(2), json!({"code": 200, "n": 2}));
    assert_eq!(
        b.expect_package(PackageType::Data),
        push_by_code(code, br#"{"t":"hello"}"#)
    );

    // `push` to one session, by name (not in the dictionary).
    b.send_request(3, "game.whisper", &json!({"w": 1}));
    assert_eq!(
        b.expect_package(PackageType::Data),
        push_by_name("onWhisper", br#"{"w":1}"#)
    );
    assert_eq!(b.expect_response(3), json!({"code": 200, "n": 1}));
}
