//! Production hardening on the real server (loopback): a panicking handler or listener costs
//! one connection, never a thread; responses keep their place behind pushes; every request is
//! answered; one busy producer cannot starve an I/O thread.
//!
//! Every wait is for an event (a package, the end of a stream, a counter reaching a value),
//! bounded by `util::WAIT`.

mod util;

use gatehouse::protocol::{encode_data, Message, MessageType, PackageType, Route};
use gatehouse::server::{Handler, Request, Response, Server};
use gatehouse::{CloseReason, Frame, SessionConfig, SessionListener, SessionSnapshot, Sid, Uid};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use util::{builder, push_frame, wait_until, Client, Transport, BOTH, HELLO};

/// Echo, plus routes that misbehave the way game code does.
struct Faulty;

impl Handler for Faulty {
    fn handshake(&self, sid: Sid, handshake: &Value) -> Result<Option<Value>, ()> {
        if handshake["user"]["panic"] == json!(true) {
            panic!("handshake hook bug");
        }
        Ok(Some(json!({"sid": sid.into_raw()})))
    }

    fn request(&self, req: Request<'_>) -> Response {
        let body = req.json();
        match req.route() {
            "test.panic" => {
                // A game's unwrap on a field the client left out.
                let n = body["n"].as_u64().expect("field n");
                Response::Json(json!({ "n": n }))
            }
            "test.bind" => {
                let uid = body["uid"].as_str().unwrap_or("u");
                let result = req.service().bind(req.sid(), uid);
                Response::Json(json!({"code": if result.is_ok() { 200 } else { 500 }}))
            }
            "test.pushMany" => {
                // Push until the inbox refuses, then answer: the answer must still come last.
                let n = body["n"].as_u64().unwrap_or(1);
                let mut queued = 0;
                for i in 0..n {
                    let frame = push_frame("onPush", &json!({"i": i}));
                    if req.service().send_message(req.sid(), frame).is_ok() {
                        queued += 1;
                    }
                }
                Response::Json(json!({"code": 200, "queued": queued}))
            }
            "test.forget" => {
                drop(req.responder()); // takes a responder and never answers
                Response::Deferred
            }
            _ => Response::Json(json!({"code": 200, "body": body})),
        }
    }

    fn notify(&self, req: Request<'_>) {
        if req.route() == "test.panic" {
            panic!("notify handler bug");
        }
    }
}

fn start(threads: usize) -> Server {
    builder()
        .io_threads(threads)
        .start(Arc::new(Faulty))
        .expect("server starts")
}

fn echo(c: &mut Client, id: u32) {
    c.send_request(id, "test.echo", &json!({"i": id}));
    assert_eq!(
        c.expect_response(id),
        json!({"code": 200, "body": {"i": id}})
    );
}

/// One I/O thread, so it is also the accepting thread: before the fix the first panic unwound
/// it, every other connection froze and new clients hung in the backlog.
#[test]
fn panicking_handler_costs_only_its_connection() {
    let server = start(1);
    let addr = server.local_addr();
    for transport in BOTH {
        let mut bystander = Client::working(addr, transport);

        // A request handler panics.
        let mut victim = Client::working(addr, transport);
        victim.send_request(1, "test.panic", &json!({}));
        victim.expect_end(true);

        // A notify handler panics.
        let mut victim = Client::working(addr, transport);
        victim.send_notify("test.panic", &json!({}));
        victim.expect_end(true);

        // The handshake hook panics: no reply, the connection closes.
        let mut victim = Client::connect(addr, transport);
        victim.send_handshake(r#"{"sys":{"type":"t","version":"1"},"user":{"panic":true}}"#);
        victim.expect_end(true);

        // The thread, its other session and accepting go on.
        echo(&mut bystander, 7);
        let mut newcomer = Client::working(addr, transport);
        echo(&mut newcomer, 8);
    }
    wait_until("three panics counted per transport", || {
        server.metrics().closes.handler_panic == 6
    });
    server.shutdown(None);
}

/// Panics in `closed` (every close) and in `bound` (uid "boom" only).
struct PanickyListener {
    closed_calls: AtomicU64,
}

impl SessionListener for PanickyListener {
    fn bound(&self, _sid: Sid, uid: &Uid) {
        if uid.as_str() == "boom" {
            panic!("bound listener bug");
        }
    }

    fn closed(&self, _session: &SessionSnapshot, _reason: &CloseReason) {
        self.closed_calls.fetch_add(1, Ordering::SeqCst);
        panic!("closed listener bug");
    }
}

/// Before the fix a panicking `closed` listener unwound out of `close` before the transport was
/// told, so the kicked client stayed connected with no session behind it (and the panic reached
/// the caller: here the test thread, in a server the I/O thread).
#[test]
fn panicking_listener_still_closes_the_socket() {
    let listener = Arc::new(PanickyListener {
        closed_calls: AtomicU64::new(0),
    });
    let server = builder()
        .io_threads(1)
        .listener(listener.clone())
        .start(Arc::new(Faulty))
        .expect("server starts");
    let addr = server.local_addr();
    let service = server.service().clone();

    let mut bystander = Client::working(addr, Transport::Tcp);
    let mut kicked = Client::working(addr, Transport::Tcp);
    let sid = Sid::from_raw(kicked.sid());
    assert!(service.kick_by_session_id(sid, Some("bye")));
    let kick: Value = serde_json::from_slice(&kicked.expect_package(PackageType::Kick)).unwrap();
    assert_eq!(kick, json!({"reason": "bye"}));
    kicked.expect_end(true);
    assert_eq!(listener.closed_calls.load(Ordering::SeqCst), 1);

    // A `bound` listener panics: that session is closed with HandlerPanic; the handler's own
    // answer may or may not get out first, the connection ends either way.
    let mut bound = Client::working(addr, Transport::Tcp);
    bound.send_request(1, "test.bind", &json!({"uid": "boom"}));
    let rest = bound.read_to_end();
    assert!(
        rest.iter().all(|ev| matches!(ev, util::Event::Package(..))),
        "{rest:?}"
    );
    assert!(service.get_by_uid("boom").is_none());
    wait_until("the bound-listener panic counted", || {
        server.metrics().closes.handler_panic == 1
    });
    assert_eq!(service.listener_panics(), 3); // closed (kick), bound, closed (HandlerPanic)

    echo(&mut bystander, 9);
    let mut newcomer = Client::working(addr, Transport::Tcp);
    echo(&mut newcomer, 10);
    drop(newcomer);
    drop(bystander);
    server.shutdown(None);
}

/// Before the fix a request with a route code the server cannot resolve, or a route with no
/// server type, was dropped with a log line and the client waited for its own timeout.
#[test]
fn unroutable_requests_are_answered() {
    for dictionary in [false, true] {
        let mut b = builder();
        if dictionary {
            b = b.dictionary(["test.echo"]);
        }
        let server = b.start(Arc::new(Faulty)).expect("server starts");
        for transport in BOTH {
            let mut c = Client::working(server.local_addr(), transport);
            let mut body = Vec::new();
            encode_data(&Message::request(3, Route::Code(999), b"{}"), &mut body).unwrap();
            c.send_packages(&body); // encode_data writes the DATA package header too
            let resp = c.expect_response(3);
            assert_eq!(resp["code"], 500, "{resp}");
            assert_eq!(resp["error"], "unknown route code");

            c.send_request(4, "nodot", &json!({}));
            let resp = c.expect_response(4);
            assert_eq!(resp["code"], 500, "{resp}");
            // A dropped responder answers too.
            c.send_request(5, "test.forget", &json!({}));
            assert_eq!(
                c.expect_response(5),
                json!({"code": 500, "error": "no response"})
            );
            echo(&mut c, 6); // the connection is still fine
        }
        server.shutdown(None);
    }
}

/// Before the fix a response that found the inbox full was written straight to the socket and
/// overtook the pushes its handler had queued before it (against pomelo's order).
#[test]
fn response_stays_behind_pushes_when_the_inbox_is_full() {
    let server = builder()
        .io_threads(1)
        .session_config(SessionConfig::default().inbox_capacity(4))
        .start(Arc::new(Faulty))
        .expect("server starts");
    for transport in BOTH {
        let mut c = Client::working(server.local_addr(), transport);
        c.send_request(1, "test.pushMany", &json!({"n": 8}));
        let mut pushes = 0;
        let resp = loop {
            let msg = c.expect_message();
            match msg.kind {
                MessageType::Push => {
                    assert_eq!(msg.body, json!({"i": pushes}));
                    pushes += 1;
                }
                MessageType::Response => break msg.body,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(
            resp["queued"], pushes,
            "the response overtook queued pushes"
        );
        assert_eq!(pushes, 4, "the inbox holds 4 commands");
        echo(&mut c, 2);
    }
    server.shutdown(None);
}

/// One producer floods the only I/O thread's inbox while another client does echo round trips:
/// they stay served, and the flood reaches its session without it being closed as a slow
/// consumer. (The deterministic failing-before check of the drain bound is the unit test
/// `inbox::tests::bounded_drain_stops_a_refilling_producer`.)
#[test]
fn a_flooding_producer_does_not_starve_the_io_thread() {
    // A long heartbeat: on a loaded machine the round trips may be slow, and a heartbeat
    // timeout would end them for a reason this test is not about.
    let server = builder()
        .io_threads(1)
        .heartbeat(Some(std::time::Duration::from_secs(60)))
        // 8 MiB of slack: a flood only closes the client as a slow consumer if the I/O thread
        // stops writing (the bug), not because this test's reader missed a few milliseconds.
        .max_outbound_bytes(8 << 20)
        .start(Arc::new(Faulty))
        .expect("server starts");
    let addr = server.local_addr();
    let mut flooded = Client::working(addr, Transport::Tcp);
    let target = Sid::from_raw(flooded.sid());
    let service = server.service().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let frame = Frame::from_static(b"\x04\x00\x00\x08\x06\x06onPush");
            while !stop.load(Ordering::Relaxed) {
                if service.send_message(target, frame.clone()).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let reader = std::thread::spawn(move || flooded.drain_raw_to_end());
    let mut c = Client::working(addr, Transport::Tcp);
    wait_until("the flood to start", || {
        sent.load(Ordering::Relaxed) > 10_000
    });
    for id in 1..=20 {
        echo(&mut c, id);
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    assert_eq!(server.metrics().closes.slow_consumer, 0);
    server.shutdown(None);
    assert!(reader.join().unwrap() > 0);
}

#[test]
fn handshake_still_works_after_panics() {
    // The panics above are per connection: a fresh server after a panic storm accepts normally.
    let server = start(2);
    for _ in 0..3 {
        let mut victim = Client::connect(server.local_addr(), Transport::Tcp);
        victim.send_handshake(r#"{"sys":{"type":"t","version":"1"},"user":{"panic":true}}"#);
        victim.expect_end(true);
    }
    let mut c = Client::connect(server.local_addr(), Transport::Tcp);
    let reply = c.handshake(HELLO);
    assert_eq!(reply["code"], 200);
    server.shutdown(None);
}

/// Memory after a peak: 1,100 connections come (the I/O thread's connection table grows past
/// 1,024 slots), 1,050 leave; the table is compacted (sockets re-registered under new keys) and
/// the 50 that stayed, spread over the old key range, are all still served.
#[test]
fn connection_table_compacts_after_a_peak_and_keeps_serving() {
    let server = builder()
        .io_threads(1)
        .start(Arc::new(Faulty))
        .expect("server starts");
    let addr = server.local_addr();
    // Stayers interleaved with leavers, so they sit all over the table.
    let mut stayers = Vec::new();
    let mut leavers = Vec::new();
    for i in 0..1100 {
        if i % 22 == 0 {
            stayers.push(Client::working(addr, Transport::Tcp));
        } else {
            leavers.push(std::net::TcpStream::connect(addr).expect("connect"));
        }
    }
    assert_eq!(stayers.len(), 50);
    wait_until("1,100 sessions", || {
        server.service().sessions_count() == 1100
    });
    drop(leavers);
    wait_until("the leavers' sessions to close", || {
        server.service().sessions_count() == 50
    });
    wait_until("a compaction", || server.metrics().compactions >= 1);
    for (i, c) in stayers.iter_mut().enumerate() {
        echo(c, i as u32 + 1);
    }
    let sid = Sid::from_raw(stayers[7].sid());
    assert!(server
        .service()
        .kick_by_session_id(sid, Some("after compaction")));
    let kick: Value =
        serde_json::from_slice(&stayers[7].expect_package(PackageType::Kick)).unwrap();
    assert_eq!(kick, json!({"reason": "after compaction"}));
    let mut newcomer = Client::working(addr, Transport::Tcp);
    echo(&mut newcomer, 99);
    drop(stayers);
    drop(newcomer);
    server.shutdown(None);
}
