//! Loopback integration tests of the connector: a real [`Server`] on 127.0.0.1:0, a test
//! [`Handler`](gatehouse::server::Handler), and blocking clients over std `TcpStream` speaking
//! pomelo's TCP framing or WebSocket (HTTP upgrade + masked frames). See `tests/util/mod.rs`.
//!
//! Every wait is bounded (reads carry deadlines, polls give up after a few seconds) and waits
//! for an event, never for a fixed time. Nothing here asserts on speed: short timeouts
//! (handshake, heartbeat) are set through the builder, and the tests only check that the
//! connection *does* close and why. Where a timeout's firing or not firing is what a test
//! checks, it and the client pacing measured against it are scaled by
//! `GATEHOUSE_TEST_TIME_SCALE` (see `util::time_scale`), so a stalled client thread on a loaded
//! machine is not mistaken for a late client.

mod util;

use gatehouse::protocol::PackageType;
use gatehouse::server::{Server, ServerBuilder};
use gatehouse::{CloseReason, SessionConfig, Sid};
use serde_json::{json, Value};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use util::{
    builder, decode_msg, push_frame, recorder, wait_until, Client, ClosedEvents, Event, Seen,
    TestHandler, Transport, BOTH, DATA_TYPE, HEARTBEAT_TYPE, HELLO, KICK_TYPE,
};

struct Harness {
    server: Server,
    closed: ClosedEvents,
    seen: Receiver<Seen>,
    handler: std::sync::Arc<TestHandler>,
}

fn start(b: ServerBuilder) -> Harness {
    let (listener, closed) = recorder();
    let (handler, seen) = TestHandler::new();
    let server = b
        .listener(listener)
        .start(handler.clone())
        .expect("server starts");
    Harness {
        server,
        handler,
        closed,
        seen,
    }
}

impl Harness {
    fn addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    fn connect(&self, t: Transport) -> Client {
        Client::connect(self.addr(), t)
    }

    fn working(&self, t: Transport) -> Client {
        Client::working(self.addr(), t)
    }

    /// A working client once the server has a connection slot for it, and how many attempts
    /// were refused at accept first. A closed connection's slot is released a little after its
    /// session is gone (same loop turn, with nothing observable marking the moment), so a
    /// connection made right after may still be refused: retried until `util::wait()` passes.
    fn working_when_free(&self, t: Transport) -> (Client, u64) {
        let deadline = Instant::now() + util::wait();
        let mut refused = 0;
        loop {
            if let Some(c) = Client::try_working(self.addr(), t) {
                return (c, refused);
            }
            refused += 1;
            assert!(
                Instant::now() < deadline,
                "{t:?}: no connection slot was freed ({refused} attempts refused): {:?}",
                self.server.metrics()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the handler has seen so far.
    fn seen(&self) -> Vec<Seen> {
        self.seen.try_iter().collect()
    }
}

fn kick_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("KICK body is JSON")
}

// === handshake ===================================================================================

#[test]
fn handshake_ok_reply_carries_heartbeat_and_user() {
    let h = start(builder());
    for t in BOTH {
        let mut c = h.connect(t);
        let reply = c.handshake(HELLO);
        let sid = c.sid();
        assert_eq!(
            reply,
            json!({"code": 200, "sys": {"heartbeat": 3}, "user": {"sid": sid}}),
            "{t:?}"
        );
        // The session exists from accept on (pomelo creates it before the handshake).
        assert!(h.server.service().contains(Sid::from_raw(sid)));
    }
    // Heartbeats off: no `heartbeat` field, and no HEARTBEAT after the ACK.
    let h = start(builder().heartbeat(None));
    for t in BOTH {
        let mut c = h.connect(t);
        let reply = c.handshake(HELLO);
        assert_eq!(reply["code"], 200);
        assert_eq!(reply["sys"], json!({}), "{t:?}: {reply}");
        c.send_ack();
        c.echo(1); // the first thing after the ACK is the response, not a HEARTBEAT
        c.send_heartbeat(); // not echoed without heartbeats
        c.echo(2);
    }
}

/// A refused handshake: the reply is exactly `{"code":N}`, then the connection closes (over
/// WS with a close frame), and `closed` fires with `HandshakeRejected(N)`.
fn assert_refused(h: &mut Harness, t: Transport, body: &str, code: u16) {
    let mut c = h.connect(t);
    c.send_handshake(body);
    let reply = c.expect_handshake_reply();
    assert_eq!(reply, json!({"code": code}), "{t:?} {body}");
    c.expect_end(false);
    let n = h.closed.seen.len();
    let ev = h.closed.wait_count(n + 1)[n].clone();
    assert_eq!(
        ev.reason,
        CloseReason::HandshakeRejected(code),
        "{t:?} {body}"
    );
    assert!(!h.server.service().contains(Sid::from_raw(ev.sid)));
}

#[test]
fn handshake_invalid_json_is_500_and_closes() {
    let mut h = start(builder());
    for t in BOTH {
        assert_refused(&mut h, t, "not json", 500);
        assert_refused(&mut h, t, r#"{"user":{}}"#, 500); // no `sys`
    }
    // Other clients were not affected.
    h.working(Transport::Tcp).echo(1);
    assert_eq!(h.server.metrics().closes.protocol_violation, 4);
}

#[test]
fn handshake_hook_error_is_500_and_closes() {
    let mut h = start(builder());
    let body = r#"{"sys":{"type":"test-client","version":"1.0.0"},"user":{"reject":true}}"#;
    for t in BOTH {
        assert_refused(&mut h, t, body, 500);
    }
}

#[test]
fn handshake_check_client_false_is_501_and_closes() {
    let mut h = start(builder());
    let body = r#"{"sys":{"type":"old","version":"0.0.1"},"user":{}}"#;
    for t in BOTH {
        assert_refused(&mut h, t, body, 501);
    }
}

// === heartbeat ===================================================================================

#[test]
fn ack_is_answered_by_heartbeat_and_heartbeats_are_echoed() {
    let h = start(builder());
    for t in BOTH {
        let mut c = h.connect(t);
        assert_eq!(c.handshake(HELLO)["code"], 200);
        c.send_ack();
        // Immediately after the ACK, before the client sends anything else.
        assert_eq!(c.recv(), Event::Package(HEARTBEAT_TYPE, vec![]), "{t:?}");
        for _ in 0..3 {
            c.send_heartbeat();
            assert_eq!(c.recv(), Event::Package(HEARTBEAT_TYPE, vec![]), "{t:?}");
        }
        c.echo(1);
    }
}

#[test]
fn heartbeat_timeout_closes_the_connection() {
    // 200 ms beats and a 400 ms timeout at time scale 1.
    let interval = util::scaled(Duration::from_millis(200));
    let timeout = util::scaled(Duration::from_millis(400));
    let mut h = start(
        builder()
            .heartbeat(Some(interval))
            .heartbeat_timeout(timeout),
    );
    let mut silent = h.working(Transport::Tcp);
    assert_eq!(
        silent.reply.as_ref().unwrap()["sys"]["heartbeat"],
        interval.as_millis().div_ceil(1000) as u64,
        "rounded up to whole seconds ({interval:?})"
    );
    let mut ws_silent = h.working(Transport::Ws);
    // DATA does not reset the heartbeat timer (pomelo: only HEARTBEAT packages do).
    let mut chatty = h.working(Transport::Tcp);
    let started = Instant::now();
    let mut id = 0;
    loop {
        id += 1;
        chatty.send_request(id, "test.echo", &json!({}));
        match chatty.recv() {
            Event::Package(DATA_TYPE, _) => {}
            Event::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            started.elapsed() < util::wait(),
            "requests kept the connection alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // No KICK package for a timeout: the stream just ends.
    silent.expect_end(false);
    assert_eq!(ws_silent.expect_end(false), Some(1000));
    for c in [&silent, &ws_silent, &chatty] {
        assert_eq!(h.closed.reason_of(c.sid()), CloseReason::HeartbeatTimeout);
    }
    assert_eq!(h.server.metrics().closes.heartbeat_timeout, 3);

    // A client that keeps heartbeating stays, for two timeouts. Generous margin: it beats every
    // eighth of the timeout, so only a stall of 7/8 of the timeout could make it late.
    let mut alive = h.working(Transport::Ws);
    for _ in 0..16 {
        std::thread::sleep(timeout / 8);
        alive.send_heartbeat();
        assert_eq!(alive.recv(), Event::Package(HEARTBEAT_TYPE, vec![]));
    }
    alive.echo(1);
}

// === state machine ===============================================================================

#[test]
fn input_before_the_ack_is_ignored() {
    let h = start(builder());
    for t in BOTH {
        let mut c = h.connect(t);
        // INITED: a request, a heartbeat and an ACK are dropped silently.
        c.send_request(1, "test.echo", &json!({"early": true}));
        c.send_heartbeat();
        c.send_ack();
        c.send_package(PackageType::Kick, b"{}"); // ignored too, not a violation here
                                                  // The first thing the client gets is the handshake reply.
        let reply = c.handshake(HELLO);
        assert_eq!(reply["code"], 200);
        // WAIT_ACK: another request and a second handshake are ignored.
        c.send_request(2, "test.echo", &json!({"early": true}));
        c.send_handshake(HELLO);
        c.send_ack();
        assert_eq!(c.recv(), Event::Package(HEARTBEAT_TYPE, vec![]));
        // WORKING: a repeated handshake or ACK is ignored; requests are answered.
        c.send_handshake(HELLO);
        c.send_ack();
        c.send_request(3, "test.echo", &json!({"i": 3}));
        // Responses are sent in order: had 1 or 2 been handled, they would come first.
        assert_eq!(
            c.expect_response(3),
            json!({"code": 200, "body": {"i": 3}}),
            "{t:?}"
        );
        let seen = h.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(matches!(&seen[0], Seen::Request { id: 3, .. }), "{seen:?}");
    }
}

#[test]
fn request_gets_response_matching_id_without_route() {
    let h = start(builder());
    for t in BOTH {
        let mut c = h.working(t);
        for id in [1, 127, 128, 300, 70_000] {
            c.send_request(id, "test.echo", &json!({"hello": id}));
            // expect_response checks: RESPONSE type, same id, no route.
            assert_eq!(
                c.expect_response(id),
                json!({"code": 200, "body": {"hello": id}})
            );
        }
        // Several requests in one write: answered in order.
        let mut batch = Vec::new();
        for id in 10..15 {
            batch.extend(Client::request_bytes(id, "test.echo", &json!({"i": id})));
        }
        c.send_packages(&batch);
        for id in 10..15 {
            assert_eq!(c.expect_response(id)["body"]["i"], id);
        }
        let seen = h.seen();
        assert_eq!(seen.len(), 10);
        assert!(seen
            .iter()
            .all(|s| matches!(s, Seen::Request { sid, route, .. }
            if *sid == c.sid() && route == "test.echo")));
    }
}

#[test]
fn notify_reaches_the_handler_and_gets_no_response() {
    let h = start(builder());
    for t in BOTH {
        let mut c = h.working(t);
        c.send_notify("chat.chatHandler.say", &json!({"t": "hi"}));
        c.send_request(9, "test.echo", &json!({}));
        // The next message is the response to 9: the notify got none.
        c.expect_response(9);
        let seen = h.seen();
        assert_eq!(
            seen[0],
            Seen::Notify {
                sid: c.sid(),
                route: "chat.chatHandler.say".into(),
                body: json!({"t": "hi"})
            }
        );
        assert_eq!(seen.len(), 2);
    }
}

#[test]
fn push_inside_a_handler_arrives_before_the_response() {
    let h = start(builder());
    for (i, t) in BOTH.into_iter().enumerate() {
        let mut c = h.working(t);
        let uid = format!("pusher-{i}");
        c.send_request(1, "test.bind", &json!({"uid": uid}));
        assert_eq!(c.expect_response(1), json!({"code": 200}));

        c.send_request(2, "test.push", &json!({}));
        let push = c.expect_message();
        assert_eq!(
            push.kind,
            gatehouse::protocol::MessageType::Push,
            "{t:?}: push first"
        );
        assert_eq!(push.route.as_deref(), Some("onPush"));
        assert_eq!(push.body, json!({"n": 1}));
        assert_eq!(c.expect_response(2), json!({"code": 200}));

        c.send_request(3, "test.pushUid", &json!({"uid": uid}));
        let push = c.expect_message();
        assert_eq!(
            (push.route.as_deref(), push.body),
            (Some("onPush"), json!({"n": 2})),
            "{t:?}"
        );
        assert_eq!(c.expect_response(3), json!({"code": 200, "sessions": 1}));

        // And a push from another thread, by uid.
        let n = h
            .server
            .service()
            .send_message_by_uid(&uid, &push_frame("onTick", &json!({"k": 3})));
        assert_eq!(n, Ok(1));
        let push = c.expect_message();
        assert_eq!(
            (push.route.as_deref(), push.body),
            (Some("onTick"), json!({"k": 3}))
        );
    }
}

#[test]
fn deferred_response_from_another_thread() {
    let h = start(builder());
    for t in BOTH {
        let mut c = h.working(t);
        c.send_request(7, "test.defer", &json!({}));
        c.send_request(8, "test.echo", &json!({}));
        // The deferred answer does not hold up the connection; the two may come in any order.
        let mut got = Vec::new();
        for _ in 0..2 {
            let msg = c.expect_message();
            assert_eq!(
                (msg.kind, msg.route.as_deref()),
                (gatehouse::protocol::MessageType::Response, None)
            );
            got.push((msg.id, msg.body));
        }
        got.sort_by_key(|(id, _)| *id);
        assert_eq!(got[0], (7, json!({"code": 200, "deferred": true})), "{t:?}");
        assert_eq!(got[1].0, 8);
    }
}

// === kick ========================================================================================

#[test]
fn kick_with_reason_sends_kick_package_then_eof() {
    let mut h = start(builder());
    for (i, t) in BOTH.into_iter().enumerate() {
        // Kicked by uid from the application thread.
        let mut c = h.working(t);
        let uid = format!("kicked-{i}");
        c.send_request(1, "test.bind", &json!({"uid": uid}));
        c.expect_response(1);
        assert_eq!(
            h.server.service().kick(&uid, Some("logged in elsewhere")),
            1
        );
        let body = c.expect_package(PackageType::Kick);
        assert_eq!(
            kick_body(&body),
            json!({"reason": "logged in elsewhere"}),
            "{t:?}"
        );
        let code = c.expect_end(false);
        if t == Transport::Ws {
            assert_eq!(code, Some(1000));
        }
        assert_eq!(
            h.closed.reason_of(c.sid()),
            CloseReason::Kicked("logged in elsewhere".into())
        );
        assert!(h.server.service().get_by_uid(&uid).is_none());

        // Kicked from inside a handler: the response first, then the KICK.
        let mut c = h.working(t);
        c.send_request(5, "test.kick", &json!({"reason": "bye now"}));
        assert_eq!(c.expect_response(5), json!({"code": 200}));
        assert_eq!(
            kick_body(&c.expect_package(PackageType::Kick)),
            json!({"reason": "bye now"})
        );
        c.expect_end(false);
        assert_eq!(
            h.closed.reason_of(c.sid()),
            CloseReason::Kicked("bye now".into())
        );
    }
    assert_eq!(h.server.metrics().closes.kicked, 4);
}

#[test]
fn kick_without_reason_closes_without_kick_package() {
    let mut h = start(builder());
    for t in BOTH {
        let mut c = h.working(t);
        assert!(h
            .server
            .service()
            .kick_by_session_id(Sid::from_raw(c.sid()), None));
        // No KICK package: the next thing is the end (over WS, a close frame then EOF).
        c.expect_end(false);
        assert_eq!(h.closed.reason_of(c.sid()), CloseReason::KickedSilently);

        let mut c = h.working(t);
        c.send_request(2, "test.kick", &json!({}));
        c.expect_response(2);
        c.expect_end(false);
        assert_eq!(h.closed.reason_of(c.sid()), CloseReason::KickedSilently);

        // `remove`: no events at all, and the connection is dropped without a KICK.
        let mut c = h.working(t);
        let seen = h.closed.seen.len();
        assert!(h.server.service().remove(Sid::from_raw(c.sid())).is_some());
        c.expect_end(false);
        assert_eq!(
            h.closed.settle(Duration::from_millis(100)).len(),
            seen,
            "{t:?}"
        );
    }
    assert_eq!(h.server.metrics().closes.kicked, 6);
}

#[test]
fn single_session_refuses_a_second_bind() {
    let h = start(builder().session_config(SessionConfig::default().single_session(true)));
    let mut first = h.working(Transport::Tcp);
    let mut second = h.working(Transport::Ws);
    first.send_request(1, "test.bind", &json!({"uid": "hero"}));
    assert_eq!(first.expect_response(1), json!({"code": 200}));
    second.send_request(1, "test.bind", &json!({"uid": "hero"}));
    let refused = second.expect_response(1);
    assert_eq!(refused["code"], 500, "{refused}");
    let sids: Vec<u64> = h
        .server
        .service()
        .get_by_uid("hero")
        .unwrap()
        .iter()
        .map(|s| s.into_raw())
        .collect();
    assert_eq!(sids, vec![first.sid()]);
    // The refused client is still connected and working.
    second.echo(2);
    // Once the first leaves, the uid is free.
    drop(first);
    wait_until("the first session to close", || {
        h.server.service().get_by_uid("hero").is_none()
    });
    second.send_request(3, "test.bind", &json!({"uid": "hero"}));
    assert_eq!(second.expect_response(3), json!({"code": 200}));
    assert_eq!(h.server.metrics().bound_uids, 1);
}

// === limits ======================================================================================

#[test]
fn slow_consumer_is_closed_and_others_are_unaffected() {
    let limit = 64 * 1024;
    let mut h = start(
        builder()
            .max_outbound_bytes(limit)
            .close_linger(Duration::from_millis(300)),
    );
    let mut others = Vec::new();
    for t in BOTH {
        let mut slow = h.working(t);
        let mut other = h.working(Transport::Tcp);
        let sid = Sid::from_raw(slow.sid());
        // 16 KiB pushes until the server gives up on the client (it never reads). The kernel's
        // socket buffers absorb a few MB first; the cap only guards against a hang.
        let frame = push_frame("onBig", &json!({"p": "x".repeat(16 * 1024)}));
        // Paced: at most 64 pushes in flight in the inbox (the inbox bounds commands, not
        // bytes), so the loop measures the connection's limit, not the inbox's.
        let mut sent: u64 = 0;
        let mut pushes: u64 = 0;
        let deadline = Instant::now() + util::wait();
        loop {
            let m = h.server.metrics();
            assert!(
                Instant::now() < deadline && sent < (256 << 20),
                "{t:?}: slow consumer never closed ({sent} bytes) {m:?}"
            );
            if pushes > m.frames_out + m.frames_dropped + 64 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            match h.server.service().send_message(sid, frame.clone()) {
                Ok(()) => {
                    sent += frame.len() as u64;
                    pushes += 1;
                }
                Err(e) if e.kind == gatehouse::SendErrorKind::InboxFull => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(_) => break, // the session is gone
            }
        }
        assert_eq!(
            h.closed.reason_of(sid.into_raw()),
            CloseReason::SlowConsumer,
            "{t:?}"
        );
        // The other client still works, pushes included.
        other.echo(1);
        other.send_request(2, "test.push", &json!({}));
        assert_eq!(other.expect_message().body, json!({"n": 1}));
        other.expect_response(2);
        // The slow client finally reads: what was queued, then the end (once the linger is
        // over; the last frame may be cut short, so this reads raw bytes).
        let received = slow.drain_raw_to_end();
        assert!(received > 0, "{t:?}");
        others.push(other);
    }
    let m = h.server.metrics();
    assert_eq!(m.closes.slow_consumer, 2);
    assert_eq!(m.sessions, 2); // the two `other` clients
}

#[test]
fn oversize_length_header_closes_at_once() {
    let max = 1024;
    // Long handshake/heartbeat timeouts: only the size check can close these connections.
    let mut h = start(
        builder()
            .max_package_size(max)
            .handshake_timeout(Duration::from_secs(60))
            .heartbeat(Some(Duration::from_secs(60))),
    );
    let bystander = &mut h.working(Transport::Tcp);

    // A package of exactly the limit is fine.
    let mut c = h.working(Transport::Tcp);
    let overhead = Client::request_bytes(1, "test.echo", &json!({"p": ""})).len() - 4;
    let exact = Client::request_bytes(1, "test.echo", &json!({"p": "y".repeat(max - overhead)}));
    assert_eq!(exact.len(), 4 + max);
    c.send_raw(&exact);
    assert_eq!(c.expect_response(1)["code"], 200);

    // One byte over, header only: closed without the body ever being sent.
    c.send_raw(&[4, 0, 0x04, 0x01]);
    c.expect_end(false);
    assert_eq!(
        h.closed.reason_of(c.sid()),
        CloseReason::ProtocolViolation("package too large")
    );

    // Before the handshake too (a 16 MiB handshake announced).
    let mut c = h.connect(Transport::Tcp);
    c.send_raw(&[1, 0xff, 0xff, 0xff]);
    c.expect_end(false);
    let ev = h.closed.wait_count(2)[1].clone();
    assert_eq!(
        ev.reason,
        CloseReason::ProtocolViolation("package too large")
    );

    // WebSocket: a frame header announcing 1 MiB (no payload sent) → close 1009.
    let mut c = h.working(Transport::Ws);
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    c.send_raw(&header);
    assert_eq!(c.expect_end(false), Some(1009));
    assert!(matches!(
        h.closed.reason_of(c.sid()),
        CloseReason::ProtocolViolation(_)
    ));

    // WebSocket: a small frame whose package header announces too much.
    let mut c = h.working(Transport::Ws);
    c.send_packages(&[4, 0, 0x08, 0, 1, 2, 3]);
    c.expect_end(false);
    assert_eq!(
        h.closed.reason_of(c.sid()),
        CloseReason::ProtocolViolation("package too large")
    );

    bystander.echo(2);
    assert_eq!(h.server.metrics().closes.protocol_violation, 4);
}

#[test]
fn garbage_bytes_close_only_that_connection() {
    let mut h = start(builder());
    let mut bystander = h.working(Transport::Ws);
    let mut expected = 0;
    let mut check = |h: &mut Harness, what: &str| {
        expected += 1;
        let ev = h.closed.wait_count(expected)[expected - 1].clone();
        assert!(
            matches!(ev.reason, CloseReason::ProtocolViolation(_)),
            "{what}: {:?}",
            ev.reason
        );
    };

    // An invalid package type as the very first bytes.
    let mut c = h.connect(Transport::Tcp);
    c.send_raw(&[9, 0, 0, 0]);
    c.expect_end(false);
    check(&mut h, "type 9");

    // Random bytes after the handshake.
    let mut c = h.working(Transport::Tcp);
    let noise: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80)
        .collect();
    c.send_raw(&noise);
    c.expect_end(false);
    check(&mut h, "noise");

    // A DATA package whose message is malformed (a RESPONSE from the client).
    let mut c = h.working(Transport::Tcp);
    c.send_raw(&[4, 0, 0, 3, 0x04, 0x01, b'x']);
    c.expect_end(false);
    check(&mut h, "client response");

    // A KICK package from the client while working.
    let mut c = h.working(Transport::Ws);
    c.send_package(PackageType::Kick, b"{}");
    c.expect_end(false);
    check(&mut h, "client kick");

    // An HTTP request that is not a WebSocket upgrade: 400, then the end.
    let mut c = h.connect(Transport::Tcp);
    c.send_raw(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = String::from_utf8(c.read_http_head()).unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    c.expect_end(false);
    check(&mut h, "http");

    // WebSocket: an unmasked frame → close 1002.
    let mut c = h.working(Transport::Ws);
    c.send_raw(&[0x82, 0x04, 3, 0, 0, 0]);
    assert_eq!(c.expect_end(false), Some(1002));
    check(&mut h, "unmasked");

    // WebSocket: RSV bits → close 1002.
    let mut c = h.working(Transport::Ws);
    let mut frame = Vec::new();
    gatehouse::__private::ws::encode_client_frame(true, 2, [9, 9, 9, 9], &[3, 0, 0, 0], &mut frame);
    frame[0] |= 0x40;
    c.send_raw(&frame);
    assert_eq!(c.expect_end(false), Some(1002));
    check(&mut h, "rsv");

    // WebSocket: a frame holding a partial package.
    let mut c = h.working(Transport::Ws);
    c.send_packages(&[4, 0, 0, 10, 0, 1]);
    c.expect_end(false);
    check(&mut h, "partial package");

    bystander.echo(1);
    assert_eq!(
        h.server.metrics().closes.protocol_violation,
        expected as u64
    );
    assert_eq!(h.server.metrics().sessions, 1);
}

#[test]
fn empty_data_package_closes_only_that_connection() {
    // pinus 1.7.4 crashes the whole process on this package.
    let mut h = start(builder());
    let mut other = h.working(Transport::Tcp);
    let mut other_ws = h.working(Transport::Ws);
    for t in BOTH {
        let mut bad = h.working(t);
        bad.send_packages(&[4, 0, 0, 0]);
        bad.expect_end(false);
        assert!(
            matches!(
                h.closed.reason_of(bad.sid()),
                CloseReason::ProtocolViolation(_)
            ),
            "{t:?}"
        );
        other.echo(1);
        other_ws.echo(2);
    }
    assert_eq!(h.server.metrics().closes.protocol_violation, 2);
}

#[test]
fn connection_limit_refuses_and_frees_slots() {
    let h = start(builder().max_connections(2));
    let refused = |h: &Harness| {
        let mut c = h.connect(Transport::Tcp);
        // The server accepts and drops it at once: no session, no handshake reply.
        c.send_handshake(HELLO);
        c.expect_end(true);
    };
    let a = h.working(Transport::Tcp);
    let b = h.working(Transport::Ws);
    refused(&h);
    assert_eq!(h.server.metrics().refused, 1);
    assert_eq!(h.server.metrics().sessions, 2);
    drop((a, b));
    wait_until("both sessions to close", || {
        h.server.metrics().sessions == 0
    });
    // Two new clients fit again (pinus leaks a slot per refusal), and a third is refused. The
    // slot count is released right after the session (same loop turn): an attempt made before
    // that turn ends is refused and retried, and counted.
    let (mut c, early_c) = h.working_when_free(Transport::Ws);
    let (mut d, early_d) = h.working_when_free(Transport::Tcp);
    refused(&h);
    c.echo(1);
    d.echo(2);
    let m = h.server.metrics();
    assert_eq!(
        (m.accepted, m.refused, m.sessions),
        (4, 2 + early_c + early_d, 2)
    );
}

#[test]
fn handshake_deadline_closes_idle_tcp_connections() {
    let mut h = start(builder().handshake_timeout(util::scaled(Duration::from_millis(300))));
    // Sends nothing at all.
    let mut silent = h.connect(Transport::Tcp);
    silent.expect_end(false);
    // Handshakes but never ACKs (the deadline runs from accept to ACK).
    let mut no_ack = h.connect(Transport::Tcp);
    assert_eq!(no_ack.handshake(HELLO)["code"], 200);
    no_ack.expect_end(false);
    let events = h.closed.wait_count(2).to_vec();
    assert!(
        events
            .iter()
            .all(|e| e.reason == CloseReason::HandshakeTimeout),
        "{events:?}"
    );
    assert_eq!(
        h.closed.reason_of(no_ack.sid()),
        CloseReason::HandshakeTimeout
    );
    // A client that completes in time is not touched by it. Two silent clients connected after
    // it (one per I/O thread if accepts alternate) time out first: once both deadlines fired,
    // `ok`'s, which ran from an earlier accept, is over too.
    let mut ok = h.working(Transport::Tcp);
    let mut later: Vec<Client> = (0..2).map(|_| h.connect(Transport::Tcp)).collect();
    for c in &mut later {
        c.expect_end(false);
    }
    let events = h.closed.wait_count(4).to_vec();
    assert!(
        events
            .iter()
            .all(|e| e.reason == CloseReason::HandshakeTimeout && e.sid != ok.sid()),
        "{events:?}"
    );
    ok.echo(1);
    assert!(h.server.service().contains(Sid::from_raw(ok.sid())));
    assert_eq!(h.server.metrics().closes.handshake_timeout, 4);
}

#[test]
fn handshake_deadline_closes_idle_websocket_connections() {
    // pomelo has no deadline at all on WebSocket.
    let mut h = start(builder().handshake_timeout(util::scaled(Duration::from_millis(300))));
    // Upgrades, then never handshakes: a close frame, then the end.
    let mut upgraded = h.connect(Transport::Ws);
    assert_eq!(upgraded.expect_end(false), Some(1000));
    // Half an upgrade request.
    let mut partial = h.connect(Transport::Tcp);
    partial.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n");
    partial.expect_end(false);
    // Three bytes: not enough to tell TCP from WebSocket.
    let mut sniffing = h.connect(Transport::Tcp);
    sniffing.send_raw(b"GE");
    sniffing.expect_end(false);
    // Handshakes over WS, never ACKs.
    let mut no_ack = h.connect(Transport::Ws);
    assert_eq!(no_ack.handshake(HELLO)["code"], 200);
    assert_eq!(no_ack.expect_end(false), Some(1000));
    let events = h.closed.wait_count(4).to_vec();
    assert!(
        events
            .iter()
            .all(|e| e.reason == CloseReason::HandshakeTimeout),
        "{events:?}"
    );
    assert_eq!(h.server.metrics().closes.handshake_timeout, 4);
}

#[test]
fn max_message_id_is_enforced() {
    let mut h = start(builder().max_message_id(1000));
    for t in BOTH {
        let mut c = h.working(t);
        c.send_request(1000, "test.echo", &json!({}));
        assert_eq!(c.expect_response(1000)["code"], 200);
        c.send_request(1001, "test.echo", &json!({}));
        c.expect_end(false);
        assert_eq!(
            h.closed.reason_of(c.sid()),
            CloseReason::ProtocolViolation("message id too large")
        );
    }
    // The default: ids up to 2^31 - 1 (pinus breaks at 2^31); one above is refused.
    let mut h = start(builder());
    let mut c = h.working(Transport::Tcp);
    c.send_request(i32::MAX as u32, "test.echo", &json!({}));
    assert_eq!(c.expect_response(i32::MAX as u32)["code"], 200);
    c.send_request(1 << 31, "test.echo", &json!({}));
    c.expect_end(false);
    assert_eq!(
        h.closed.reason_of(c.sid()),
        CloseReason::ProtocolViolation("message id too large")
    );
}

// === WebSocket specifics =========================================================================

#[test]
fn two_packages_in_one_websocket_frame_are_both_handled() {
    // pinus disconnects a client that does this.
    let h = start(builder());
    let mut c = h.working(Transport::Ws);
    let mut payload = Client::request_bytes(1, "test.echo", &json!({"i": 1}));
    payload.extend_from_slice(&[3, 0, 0, 0]); // a HEARTBEAT
    payload.extend(Client::request_bytes(2, "test.echo", &json!({"i": 2})));
    c.send_ws_frame(true, 2, &payload);
    let mut events: Vec<Event> = (0..3).map(|_| c.recv()).collect();
    // The heartbeat echo is written at once; responses go through the inbox.
    let hb = events
        .iter()
        .position(|e| *e == Event::Package(HEARTBEAT_TYPE, vec![]))
        .expect("heartbeat echoed");
    events.remove(hb);
    let ids: Vec<u32> = events
        .iter()
        .map(|e| match e {
            Event::Package(DATA_TYPE, body) => decode_msg(body).id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids, vec![1, 2]);
    // Also in one frame: the handshake and the ACK.
    let mut c = h.connect(Transport::Ws);
    let mut payload = Vec::new();
    gatehouse::protocol::encode_package(PackageType::Handshake, HELLO.as_bytes(), &mut payload)
        .unwrap();
    payload.extend_from_slice(&[2, 0, 0, 0]);
    c.send_ws_frame(true, 2, &payload);
    assert_eq!(c.expect_handshake_reply()["code"], 200);
    c.expect_package(PackageType::Heartbeat);
    c.echo(3);
}

#[test]
fn websocket_ping_gets_pong() {
    let h = start(builder());
    // Before the pomelo handshake too: pings are a WebSocket matter.
    let mut c = h.connect(Transport::Ws);
    c.send_ws_frame(true, 9, b"are you there");
    assert_eq!(c.recv(), Event::Pong(b"are you there".to_vec()));
    c.start();
    c.send_ws_frame(true, 9, b"");
    assert_eq!(c.recv(), Event::Pong(vec![]));
    // A ping between two fragments of a message.
    let req = Client::request_bytes(4, "test.echo", &json!({"i": 4}));
    c.send_ws_frame(false, 2, &req[..5]);
    c.send_ws_frame(true, 9, b"mid");
    c.send_ws_frame(true, 0, &req[5..]);
    assert_eq!(c.recv(), Event::Pong(b"mid".to_vec()));
    assert_eq!(c.expect_response(4)["body"]["i"], 4);
    // Pongs from the client are ignored.
    c.send_ws_frame(true, 10, b"unsolicited");
    c.echo(5);
}

#[test]
fn websocket_close_from_the_client() {
    let mut h = start(builder());
    let mut c = h.working(Transport::Ws);
    c.send_ws_frame(true, 8, &1000u16.to_be_bytes());
    // The session ends at once, while the client still holds the TCP connection open (it
    // used to stay registered, with no `closed` event, until the socket went away).
    assert_eq!(h.closed.reason_of(c.sid()), CloseReason::PeerClosed);
    assert!(!h.server.service().contains(Sid::from_raw(c.sid())));
    // The server echoes the close code (once, nothing after it), then ends the stream.
    assert_eq!(c.expect_end(false), Some(1000));
    assert_eq!(h.server.metrics().closes.peer_closed, 1);
}

// === shutdown and metrics ========================================================================

#[test]
fn graceful_shutdown_kicks_every_client_once() {
    let mut h = start(builder().close_linger(Duration::from_secs(3)));
    let mut tcp = h.working(Transport::Tcp);
    let mut ws = h.working(Transport::Ws);
    let mut fresh = h.connect(Transport::Tcp); // connected, no handshake
    wait_until("three sessions", || h.server.metrics().sessions == 3);
    let service = h.server.service().clone();

    let server = h.server;
    let stopper = std::thread::spawn(move || server.shutdown(Some("bye")));
    for c in [&mut tcp, &mut ws] {
        assert_eq!(
            kick_body(&c.expect_package(PackageType::Kick)),
            json!({"reason": "bye"}),
            "{:?}",
            c.transport
        );
        c.expect_end(false);
    }
    // No KICK before the handshake (pomelo sends none), just the end.
    fresh.expect_end(false);
    drop((tcp, ws, fresh));
    stopper.join().expect("shutdown returns");

    let events = h.closed.wait_count(3).to_vec();
    let mut sids: Vec<u64> = events.iter().map(|e| e.sid).collect();
    sids.sort_unstable();
    sids.dedup();
    assert_eq!(sids.len(), 3, "{events:?}");
    assert!(
        events
            .iter()
            .all(|e| e.reason == CloseReason::Kicked("bye".into())),
        "{events:?}"
    );
    // Exactly once each: nothing more fires.
    assert_eq!(h.closed.settle(Duration::from_millis(200)).len(), 3);
    assert_eq!(service.sessions_count(), 0);
}

#[test]
fn shutdown_without_reason_and_drop() {
    let mut h = start(builder().close_linger(Duration::from_secs(3)));
    let mut c = h.working(Transport::Ws);
    let service = h.server.service().clone();
    let server = h.server;
    let stopper = std::thread::spawn(move || drop(server));
    // No reason: no KICK package, just the close.
    assert_eq!(c.expect_end(false), Some(1000));
    drop(c);
    stopper.join().unwrap();
    assert_eq!(h.closed.wait_count(1)[0].reason, CloseReason::Shutdown);
    assert_eq!(service.sessions_count(), 0);
}

#[test]
fn metrics_are_consistent() {
    let mut h = start(builder());
    let mut clients = Vec::new();

    // A: a normal session that leaves on its own (4 packages in: handshake, ack, heartbeat,
    // request).
    let mut a = h.working(Transport::Tcp);
    a.send_heartbeat();
    a.expect_package(PackageType::Heartbeat);
    a.echo(1);
    let a_sid = a.sid();
    a.stream().shutdown(std::net::Shutdown::Write).unwrap();
    a.expect_end(false);
    clients.push(a);

    // B: a refused handshake (1 package).
    let mut b = h.connect(Transport::Ws);
    b.send_handshake("nope");
    b.expect_handshake_reply();
    b.expect_end(false);
    clients.push(b);

    // C: kicked with a reason (2 packages).
    let mut c = h.working(Transport::Ws);
    h.server
        .service()
        .kick_by_session_id(Sid::from_raw(c.sid()), Some("out"));
    assert_eq!(
        c.recv(),
        Event::Package(KICK_TYPE, br#"{"reason":"out"}"#.to_vec())
    );
    c.expect_end(false);
    let c_sid = c.sid();
    clients.push(c);

    // D: garbage (0 packages).
    let mut d = h.connect(Transport::Tcp);
    d.send_raw(&[0xee; 64]);
    d.expect_end(false);
    clients.push(d);

    assert_eq!(h.closed.reason_of(a_sid), CloseReason::PeerClosed);
    assert_eq!(h.closed.reason_of(c_sid), CloseReason::Kicked("out".into()));
    h.closed.wait_count(4);

    let m = h.server.metrics();
    assert_eq!(m.accepted, 4);
    assert_eq!(m.refused, 0);
    assert_eq!(m.sessions, 0);
    assert_eq!(m.bound_uids, 0);
    assert_eq!(m.packages_in, 4 + 1 + 2);
    assert_eq!(m.frames_out, 1, "one response went through the inbox");
    assert_eq!(m.frames_dropped, 0);
    let closes = m.closes;
    assert_eq!(
        (closes.peer_closed, closes.protocol_violation, closes.kicked),
        (1, 2, 1),
        "{closes:?}"
    );
    assert_eq!(
        (
            closes.heartbeat_timeout,
            closes.handshake_timeout,
            closes.slow_consumer,
            closes.io_error,
            closes.shutdown
        ),
        (0, 0, 0, 0, 0)
    );
    assert!(m.write_calls >= 1 && m.write_calls <= m.bytes_out);
}

#[test]
fn metrics_count_every_byte() {
    let h = start(builder());
    let mut totals = (0u64, 0u64);
    for t in BOTH {
        let mut c = h.working(t);
        c.echo(1);
        c.send_request(2, "test.push", &json!({}));
        c.expect_message();
        c.expect_response(2);
        c.send_request(3, "test.kick", &json!({"reason": "done"}));
        let rest = c.read_to_end();
        assert!(
            rest.contains(&Event::Package(KICK_TYPE, br#"{"reason":"done"}"#.to_vec())),
            "{rest:?}"
        );
        totals.0 += c.bytes_read;
        totals.1 += c.bytes_written;
    }
    wait_until("sessions to close", || h.server.metrics().sessions == 0);
    let m = h.server.metrics();
    assert_eq!(m.bytes_out, totals.0, "every byte the clients read");
    assert_eq!(m.bytes_in, totals.1, "every byte the clients wrote");
    // Per client: echo response, push, push's response, kick response.
    assert_eq!(m.frames_out, 2 * 4);
    assert_eq!(m.closes.kicked, 2);
}

#[test]
fn half_closed_client_with_output_pending_frees_its_slot() {
    // A HEARTBEAT and the client's FIN in one go: the echo is still owed when the server reads
    // the EOF. It is flushed, then the connection ends without waiting for the linger.
    let mut h = start(
        builder()
            .max_connections(1)
            .close_linger(Duration::from_secs(30)),
    );
    let mut c = h.working(Transport::Tcp);
    c.send_heartbeat();
    c.stream().shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.recv(), Event::Package(HEARTBEAT_TYPE, vec![]));
    c.expect_end(false);
    assert_eq!(h.closed.reason_of(c.sid()), CloseReason::PeerClosed);
    drop(c);
    // The slot is released right after the session: `working_when_free` retries until it is.
    let (mut d, _refused_first) = h.working_when_free(Transport::Tcp);
    d.echo(1);
}

#[test]
fn control_replies_to_a_client_that_never_reads_are_bounded() {
    // HEARTBEAT echoes and WebSocket pongs are output too: a client that sends them without
    // ever reading must hit `max_outbound_bytes` like pushes do, not grow the server's buffer.
    let mut h = start(
        builder()
            .max_outbound_bytes(64 * 1024)
            .close_linger(Duration::from_millis(200)),
    );
    for t in BOTH {
        let mut c = h.working(t);
        let sid = c.sid();
        let mut chunk = Vec::new();
        for _ in 0..256 {
            match t {
                Transport::Tcp => chunk.extend_from_slice(&[3, 0, 0, 0]),
                Transport::Ws => gatehouse::__private::ws::encode_client_frame(
                    true,
                    9,
                    [1, 2, 3, 4],
                    &[b'p'; 120],
                    &mut chunk,
                ),
            }
        }
        let mut sent = 0usize;
        let writer = c.stream().try_clone().unwrap();
        writer
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let deadline = Instant::now() + util::wait();
        while h.server.service().contains(Sid::from_raw(sid)) {
            assert!(
                Instant::now() < deadline && sent < (256 << 20),
                "{t:?}: still open after {sent} bytes of control packages {:?}",
                h.server.metrics()
            );
            // A timed-out write may be partial: carry on from where it stopped.
            if let Ok(n) = std::io::Write::write(&mut &writer, &chunk[sent % chunk.len()..]) {
                sent += n;
            }
        }
        assert_eq!(h.closed.reason_of(sid), CloseReason::SlowConsumer, "{t:?}");
        c.drain_raw_to_end();
    }
}

#[test]
fn a_client_sending_flat_out_does_not_starve_its_io_thread() {
    // One I/O thread: the flooder and the others share it. The flooder sends notifies as fast
    // as it can (no output, so it is no slow consumer); the others must still be served.
    let h = start(builder().io_threads(1));
    let mut flooder = h.working(Transport::Tcp);
    let mut other = h.working(Transport::Ws);
    let mut chunk = Vec::new();
    let mut one = Vec::new();
    gatehouse::protocol::encode_data(
        &gatehouse::protocol::Message::notify("test.flood".into(), b"{}"),
        &mut one,
    )
    .unwrap();
    while chunk.len() < 64 * 1024 {
        chunk.extend_from_slice(&one);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Stops the flood even if an assertion fails (the server's drop waits for its threads).
    struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _guard = StopOnDrop(stop.clone());
    let writer = flooder.stream().try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(n) = std::io::Write::write(&mut &writer, &chunk[sent % chunk.len()..]) {
                    sent += n;
                }
            }
            // End on a package boundary.
            writer.set_write_timeout(None).unwrap();
            std::io::Write::write_all(&mut &writer, &chunk[sent % chunk.len()..]).unwrap();
        })
    };
    wait_until("the flood to reach the handler", || {
        h.handler.floods.load(std::sync::atomic::Ordering::Relaxed) > 10_000
    });
    for id in 1..=3 {
        other.echo(id);
        let n = h.server.service().send_message(
            Sid::from_raw(other.sid()),
            push_frame("onPush", &json!({"id": id})),
        );
        assert!(n.is_ok());
        assert_eq!(other.expect_message().body, json!({"id": id}));
    }
    // The flood was still going on meanwhile.
    assert!(!flood.is_finished());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    flooder.echo(1);
}
