//! Shared helpers for the loopback connector tests: a small blocking pomelo client over std
//! `TcpStream` (raw TCP framing, or WebSocket with masked client frames), a test [`Handler`]
//! and a [`SessionListener`] that reports `closed` events through a channel.
//!
//! Every read has a deadline: a test that waits for something that never comes fails with a
//! message instead of hanging.

#![allow(dead_code)] // each test binary uses a different subset

use gatehouse::__private::ws::{accept_key, encode_client_frame};
use gatehouse::protocol::{
    decode_message, decode_package, encode_data, encode_package, Message, MessageType, PackageType,
    Route, MAX_BODY_LEN,
};
use gatehouse::server::{Handler, Request, Response, ServerBuilder};
use gatehouse::{CloseReason, Frame, SessionListener, SessionSnapshot, Sid};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bound on any single wait at time scale 1; [`wait`] is the scaled one every wait uses.
pub const WAIT: Duration = Duration::from_secs(5);

/// The time scale of these tests: `GATEHOUSE_TEST_TIME_SCALE` (a whole number >= 1), default
/// [`DEFAULT_TIME_SCALE`]. Every duration that a test *depends on* (the upper bound of a wait,
/// and a server timeout whose firing or non-firing is what a test checks, together with the
/// client pacing measured against it) is multiplied by it, so that a loaded machine, where a
/// thread can stall for hundreds of milliseconds, does not turn a client that is on time into a
/// late one. An invalid value fails the test rather than running it at some other scale.
pub fn time_scale() -> u32 {
    static SCALE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| match std::env::var("GATEHOUSE_TEST_TIME_SCALE") {
        Err(std::env::VarError::NotPresent) => DEFAULT_TIME_SCALE,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("GATEHOUSE_TEST_TIME_SCALE must be a whole number >= 1, not {v:?}"),
        },
        Err(e) => panic!("GATEHOUSE_TEST_TIME_SCALE: {e}"),
    })
}

/// Chosen for a 2-core machine shared with other builds: the tightest margin it affects (a
/// heartbeating client against the heartbeat timeout) then tolerates a 1.4 s stall.
pub const DEFAULT_TIME_SCALE: u32 = 4;

/// `d` times [`time_scale`].
pub fn scaled(d: Duration) -> Duration {
    d * time_scale()
}

/// The upper bound of any single wait for an event: [`WAIT`] scaled. Only a failing test waits
/// this long.
pub fn wait() -> Duration {
    scaled(WAIT)
}

/// A builder on 127.0.0.1:0 with two I/O threads (so the accept hand-off is exercised), a 3 s
/// heartbeat and otherwise the defaults.
pub fn builder() -> ServerBuilder {
    gatehouse::server::Server::builder()
        .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .io_threads(2)
        .heartbeat(Some(Duration::from_secs(3)))
}

/// Polls `cond` every 5 ms until it holds or [`wait`] passes; panics with `what` on timeout.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait();
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// === listener ===================================================================================

/// One `closed` event.
#[derive(Debug, Clone)]
pub struct Closed {
    pub sid: u64,
    pub uid: Option<String>,
    pub reason: CloseReason,
}

/// Forwards `closed` events to a channel (`mpsc::Sender` is `Sync`).
pub struct Recorder(Sender<Closed>);

impl SessionListener for Recorder {
    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        let _ = self.0.send(Closed {
            sid: session.sid.into_raw(),
            uid: session.uid.as_ref().map(|u| u.as_str().to_owned()),
            reason: reason.clone(),
        });
    }
}

/// The receiving side of a [`Recorder`], with the events seen so far.
pub struct ClosedEvents {
    rx: Receiver<Closed>,
    pub seen: Vec<Closed>,
}

/// A listener and the handle to read what it records.
pub fn recorder() -> (Arc<Recorder>, ClosedEvents) {
    let (tx, rx) = channel();
    (
        Arc::new(Recorder(tx)),
        ClosedEvents {
            rx,
            seen: Vec::new(),
        },
    )
}

impl ClosedEvents {
    fn pull(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(ev) => {
                self.seen.push(ev);
                true
            }
            Err(_) => false,
        }
    }

    /// The reason `sid` closed with, waiting up to [`wait`] for it. Panics if it closed twice.
    pub fn reason_of(&mut self, sid: u64) -> CloseReason {
        let deadline = Instant::now() + wait();
        loop {
            let mut hits = self.seen.iter().filter(|e| e.sid == sid);
            if let Some(first) = hits.next() {
                assert!(hits.next().is_none(), "closed fired twice for sid {sid}");
                return first.reason.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && self.pull(left),
                "no closed event for sid {sid} (seen: {:?})",
                self.seen
            );
        }
    }

    /// Waits until at least `n` events were seen in total.
    pub fn wait_count(&mut self, n: usize) -> &[Closed] {
        let deadline = Instant::now() + wait();
        while self.seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && self.pull(left),
                "expected {n} closed events, saw {:?}",
                self.seen
            );
        }
        &self.seen
    }

    /// Takes whatever else arrives within `settle` (to check nothing more fires).
    pub fn settle(&mut self, settle: Duration) -> &[Closed] {
        let deadline = Instant::now() + settle;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.pull(left) {
                return &self.seen;
            }
        }
    }
}

// === handler ====================================================================================

/// What the test handler saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Request {
        sid: u64,
        id: u32,
        route: String,
        body: Value,
    },
    Notify {
        sid: u64,
        route: String,
        body: Value,
    },
}

/// A push frame on `route` with a JSON `body`.
pub fn push_frame(route: &str, body: &Value) -> Frame {
    let body = serde_json::to_vec(body).unwrap();
    let mut out = Vec::new();
    gatehouse::protocol::encode_push(Route::Name(route), &body, &mut out).unwrap();
    Frame::new(out)
}

/// The test application:
///
/// * `check_client`: refuses client type `"old"` (501);
/// * handshake hook: `Err` if `user.reject` is true (500), else `user = {"sid": <raw sid>}`
///   so the client learns its session id;
/// * routes: `test.echo` → `{"code":200,"body":…}`; `test.push` pushes `onPush {"n":1}` to the
///   caller with `send_message`, then answers; `test.pushUid {uid}` pushes `onPush {"n":2}` to
///   `uid` with `send_message_by_uid`, then answers; `test.bind {uid}` binds the caller
///   (`{"code":500,"error":…}` on failure); `test.defer` answers `{"code":200,"deferred":true}`
///   from another thread after 50 ms; `test.kick {reason?}` answers, then kicks the caller;
///   anything else → `{"code":404}`.
/// * every request and notify is reported on the channel, except notifies on `test.flood`,
///   which are only counted in `floods`.
pub struct TestHandler {
    seen: Sender<Seen>,
    /// Notifies on `test.flood`: counted only.
    pub floods: AtomicU64,
}

impl TestHandler {
    pub fn new() -> (Arc<TestHandler>, Receiver<Seen>) {
        let (tx, rx) = channel();
        (
            Arc::new(TestHandler {
                seen: tx,
                floods: AtomicU64::new(0),
            }),
            rx,
        )
    }
}

impl Handler for TestHandler {
    fn check_client(&self, client_type: &str, _version: &str) -> bool {
        client_type != "old"
    }

    fn handshake(&self, sid: Sid, handshake: &Value) -> Result<Option<Value>, ()> {
        if handshake["user"]["reject"] == json!(true) {
            return Err(());
        }
        Ok(Some(json!({"sid": sid.into_raw()})))
    }

    fn request(&self, req: Request<'_>) -> Response {
        let body = req.json();
        let _ = self.seen.send(Seen::Request {
            sid: req.sid().into_raw(),
            id: req.id(),
            route: req.route().to_owned(),
            body: body.clone(),
        });
        let service = req.service();
        match req.route() {
            "test.echo" => Response::Json(json!({"code": 200, "body": body})),
            "test.push" => {
                service
                    .send_message(req.sid(), push_frame("onPush", &json!({"n": 1})))
                    .expect("push to the caller");
                Response::Json(json!({"code": 200}))
            }
            "test.pushUid" => {
                let uid = body["uid"].as_str().unwrap_or_default();
                let n = service
                    .send_message_by_uid(uid, &push_frame("onPush", &json!({"n": 2})))
                    .expect("push by uid");
                Response::Json(json!({"code": 200, "sessions": n}))
            }
            "test.bind" => {
                let uid = body["uid"].as_str().unwrap_or_default();
                match service.bind(req.sid(), uid) {
                    Ok(()) => Response::Json(json!({"code": 200})),
                    Err(err) => Response::Json(json!({"code": 500, "error": err.to_string()})),
                }
            }
            "test.defer" => {
                let responder = req.responder();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    responder
                        .respond_json(&json!({"code": 200, "deferred": true}))
                        .expect("deferred response");
                });
                Response::Deferred
            }
            "test.kick" => {
                let reason = body["reason"].as_str().map(str::to_owned);
                let responder = req.responder();
                let _ = responder.respond_json(&json!({"code": 200}));
                service.kick_by_session_id(req.sid(), reason.as_deref());
                Response::Deferred
            }
            _ => Response::Json(json!({"code": 404})),
        }
    }

    fn notify(&self, req: Request<'_>) {
        if req.route() == "test.flood" {
            self.floods.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = self.seen.send(Seen::Notify {
            sid: req.sid().into_raw(),
            route: req.route().to_owned(),
            body: req.json(),
        });
    }
}

// === client =====================================================================================

/// Raw TCP framing or WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ws,
}

pub const BOTH: [Transport; 2] = [Transport::Tcp, Transport::Ws];

/// What the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A pomelo package: type byte and body.
    Package(u8, Vec<u8>),
    /// A WebSocket pong.
    Pong(Vec<u8>),
    /// A WebSocket close frame and its code.
    WsClose(Option<u16>),
    /// The server closed the stream (FIN).
    Eof,
    /// The connection was reset.
    Reset,
}

/// A decoded DATA message, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub kind: MessageType,
    pub id: u32,
    pub route: Option<String>,
    pub body: Value,
}

const HEARTBEAT: u8 = PackageType::Heartbeat as u8;
const HANDSHAKE: u8 = PackageType::Handshake as u8;
const DATA: u8 = PackageType::Data as u8;
const KICK: u8 = PackageType::Kick as u8;

/// The default client handshake.
pub const HELLO: &str = r#"{"sys":{"type":"test-client","version":"1.0.0"},"user":{}}"#;

/// A blocking test client.
pub struct Client {
    stream: TcpStream,
    pub transport: Transport,
    /// Bytes received and not yet parsed.
    buf: Vec<u8>,
    events: VecDeque<Event>,
    ended: bool,
    /// Every byte read from and written to the socket (for metrics checks).
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// The session id, once the handshake told it.
    pub sid: Option<u64>,
    /// The server's handshake reply.
    pub reply: Option<Value>,
    mask: u8,
}

impl Client {
    /// Connects without sending anything.
    pub fn connect(addr: SocketAddr, transport: Transport) -> Client {
        let mut client = Client::connect_raw(addr, transport);
        if transport == Transport::Ws {
            client.upgrade();
        }
        client
    }

    /// A TCP connection, nothing sent yet (not even the WebSocket upgrade).
    fn connect_raw(addr: SocketAddr, transport: Transport) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            transport,
            buf: Vec::new(),
            events: VecDeque::new(),
            ended: false,
            bytes_read: 0,
            bytes_written: 0,
            sid: None,
            reply: None,
            mask: 1,
        }
    }

    /// A working client like [`working`](Self::working) (upgrade, handshake, ACK, first
    /// HEARTBEAT), or `None` if the server ends the connection before its upgrade response or
    /// handshake reply: a connection refused at accept (`max_connections`).
    pub fn try_working(addr: SocketAddr, transport: Transport) -> Option<Client> {
        let mut c = Client::connect_raw(addr, transport);
        if transport == Transport::Ws && !c.try_upgrade() {
            return None;
        }
        c.send_handshake(HELLO);
        match c.recv() {
            Event::Package(HANDSHAKE, body) => {
                let reply: Value = serde_json::from_slice(&body).expect("handshake reply is JSON");
                assert_eq!(reply["code"], 200, "handshake refused: {reply}");
                c.sid = reply["user"]["sid"].as_u64();
                c.reply = Some(reply);
                c.send_ack();
                c.expect_package(PackageType::Heartbeat);
                Some(c)
            }
            Event::Eof | Event::Reset => None,
            other => panic!("expected a handshake reply or the end, got {other:?}"),
        }
    }

    /// The WebSocket opening handshake: request, then a 101 with the right accept key. Bytes
    /// after the response head stay buffered as frames.
    fn upgrade(&mut self) {
        assert!(
            self.try_upgrade(),
            "connection ended before an HTTP response head"
        );
    }

    /// [`upgrade`](Self::upgrade); false if the connection ends before the response head.
    fn try_upgrade(&mut self) -> bool {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET /pomelo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.send_raw(request.as_bytes());
        let Some(head) = self.try_read_http_head() else {
            return false;
        };
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 101"), "upgrade refused: {text}");
        let accept = accept_key(key.as_bytes());
        let accept = std::str::from_utf8(&accept).unwrap().to_ascii_lowercase();
        assert!(
            text.contains(&format!("sec-websocket-accept: {accept}")),
            "bad accept key in {text}"
        );
        true
    }

    /// Reads an HTTP response head (up to the blank line); the rest stays in `buf`.
    pub fn read_http_head(&mut self) -> Vec<u8> {
        self.try_read_http_head()
            .expect("connection ended before an HTTP response head")
    }

    /// [`read_http_head`](Self::read_http_head); `None` if the connection ends first.
    fn try_read_http_head(&mut self) -> Option<Vec<u8>> {
        let deadline = Instant::now() + wait();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(head);
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    /// The underlying stream (for tests that read raw bytes).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Gives up the socket; panics if anything received is still unparsed.
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.buf.is_empty() && self.events.is_empty(),
            "unread input left"
        );
        self.stream
    }

    // --- sending --------------------------------------------------------------------------

    /// Writes bytes as they are. A write to a connection the server already closed may fail;
    /// that is ignored (the reads tell what happened).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_ok() {
            self.bytes_written += bytes.len() as u64;
        }
    }

    /// Wraps `payload` in one masked WebSocket frame and writes it.
    pub fn send_ws_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut out = Vec::new();
        self.mask = self.mask.wrapping_add(37);
        let m = self.mask;
        encode_client_frame(
            fin,
            opcode,
            [m, m ^ 0x5a, m ^ 0xa5, m ^ 0xff],
            payload,
            &mut out,
        );
        self.send_raw(&out);
    }

    /// Sends already-encoded packages: as they are over TCP, in one binary frame over WS.
    pub fn send_packages(&mut self, bytes: &[u8]) {
        match self.transport {
            Transport::Tcp => self.send_raw(bytes),
            Transport::Ws => self.send_ws_frame(true, 2, bytes),
        }
    }

    pub fn send_package(&mut self, kind: PackageType, body: &[u8]) {
        let mut out = Vec::new();
        encode_package(kind, body, &mut out).unwrap();
        self.send_packages(&out);
    }

    pub fn send_handshake(&mut self, body: &str) {
        self.send_package(PackageType::Handshake, body.as_bytes());
    }

    pub fn send_ack(&mut self) {
        self.send_package(PackageType::HandshakeAck, b"");
    }

    pub fn send_heartbeat(&mut self) {
        self.send_package(PackageType::Heartbeat, b"");
    }

    /// A whole DATA package with a request.
    pub fn request_bytes(id: u32, route: &str, body: &Value) -> Vec<u8> {
        let body = serde_json::to_vec(body).unwrap();
        let mut out = Vec::new();
        encode_data(&Message::request(id, Route::Name(route), &body), &mut out).unwrap();
        out
    }

    pub fn send_request(&mut self, id: u32, route: &str, body: &Value) {
        let bytes = Self::request_bytes(id, route, body);
        self.send_packages(&bytes);
    }

    pub fn send_notify(&mut self, route: &str, body: &Value) {
        let body = serde_json::to_vec(body).unwrap();
        let mut out = Vec::new();
        encode_data(&Message::notify(Route::Name(route), &body), &mut out).unwrap();
        self.send_packages(&out);
    }

    // --- receiving ------------------------------------------------------------------------

    /// Reads more bytes into `buf`; false once the stream ended (an `Eof`/`Reset` event is
    /// queued then).
    fn fill(&mut self, deadline: Instant) -> bool {
        if self.ended {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for the server");
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.ended = true;
                    self.events.push_back(Event::Eof);
                    return false;
                }
                Ok(n) => {
                    self.bytes_read += n as u64;
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue; // the assert above ends the loop
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                        ),
                        "unexpected read error: {e}"
                    );
                    self.ended = true;
                    self.events.push_back(Event::Reset);
                    return false;
                }
            }
        }
    }

    /// Parses complete packages (TCP) or frames (WS) out of `buf` into `events`.
    fn parse(&mut self) {
        match self.transport {
            Transport::Tcp => loop {
                match decode_package(&self.buf, MAX_BODY_LEN)
                    .expect("server sent an invalid package")
                {
                    Some((p, used)) => {
                        let ev = Event::Package(p.kind as u8, p.body.to_vec());
                        self.buf.drain(..used);
                        self.events.push_back(ev);
                    }
                    None => return,
                }
            },
            Transport::Ws => loop {
                let Some((fin, opcode, payload, used)) = parse_server_frame(&self.buf) else {
                    return;
                };
                assert!(fin, "the server does not fragment");
                match opcode {
                    2 => {
                        let mut rest = &payload[..];
                        assert!(!rest.is_empty(), "empty binary frame from the server");
                        while !rest.is_empty() {
                            let (p, n) = decode_package(rest, MAX_BODY_LEN)
                                .expect("invalid package in a frame")
                                .expect("partial package in a frame");
                            self.events
                                .push_back(Event::Package(p.kind as u8, p.body.to_vec()));
                            rest = &rest[n..];
                        }
                    }
                    8 => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        self.events.push_back(Event::WsClose(code));
                    }
                    10 => self.events.push_back(Event::Pong(payload)),
                    other => panic!("unexpected frame opcode {other} from the server"),
                }
                self.buf.drain(..used);
            },
        }
    }

    /// The next event, waiting up to `timeout`.
    pub fn recv_within(&mut self, timeout: Duration) -> Event {
        let deadline = Instant::now() + timeout;
        loop {
            self.parse();
            if let Some(ev) = self.events.pop_front() {
                if matches!(ev, Event::Eof | Event::Reset) {
                    assert!(
                        self.buf.is_empty(),
                        "stream ended inside a package/frame: {:?}",
                        self.buf
                    );
                    // stays ended: later calls see it again
                    self.events.push_front(ev.clone());
                }
                return ev;
            }
            self.fill(deadline);
        }
    }

    /// The next event (up to [`wait`]).
    pub fn recv(&mut self) -> Event {
        self.recv_within(wait())
    }

    /// The next event must be a package of `kind`: its body.
    pub fn expect_package(&mut self, kind: PackageType) -> Vec<u8> {
        match self.recv() {
            Event::Package(k, body) if k == kind as u8 => body,
            other => panic!("expected a {kind:?} package, got {other:?}"),
        }
    }

    /// The next event must be a HANDSHAKE reply: it as JSON.
    pub fn expect_handshake_reply(&mut self) -> Value {
        let body = self.expect_package(PackageType::Handshake);
        serde_json::from_slice(&body).expect("handshake reply is JSON")
    }

    /// The next event must be a DATA package: the message in it.
    pub fn expect_message(&mut self) -> Msg {
        let body = self.expect_package(PackageType::Data);
        decode_msg(&body)
    }

    /// The next message must be the response to `id`: its body.
    pub fn expect_response(&mut self, id: u32) -> Value {
        let msg = self.expect_message();
        assert_eq!(
            msg.kind,
            MessageType::Response,
            "expected a response: {msg:?}"
        );
        assert_eq!(msg.id, id, "response to the wrong request: {msg:?}");
        assert_eq!(msg.route, None, "a response carries no route");
        msg.body
    }

    /// The stream must end now: over WS a close frame (its code is returned) then EOF, over TCP
    /// EOF. A reset counts as an end only if `allow_reset`.
    pub fn expect_end(&mut self, allow_reset: bool) -> Option<u16> {
        let mut code = None;
        let mut ev = self.recv();
        if self.transport == Transport::Ws {
            if let Event::WsClose(c) = ev {
                code = c;
                ev = self.recv();
            }
        }
        match ev {
            Event::Eof => {}
            Event::Reset if allow_reset => {}
            other => panic!("expected the connection to end, got {other:?}"),
        }
        code
    }

    /// Everything received until the stream ends (the end event not included).
    pub fn read_to_end(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        loop {
            match self.recv() {
                Event::Eof | Event::Reset => return out,
                ev => out.push(ev),
            }
        }
    }

    /// Reads raw bytes (unparsed) until the stream ends by EOF or reset: how many. For a
    /// connection the server abandoned mid-frame.
    pub fn drain_raw_to_end(&mut self) -> u64 {
        let deadline = Instant::now() + wait();
        let mut total = self.buf.len() as u64;
        self.buf.clear();
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for the end of the stream"
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return total
                }
                Err(e) => panic!("read error: {e}"),
            }
        }
    }

    /// Handshake with `body` and return the reply (code not checked).
    pub fn handshake(&mut self, body: &str) -> Value {
        self.send_handshake(body);
        let reply = self.expect_handshake_reply();
        if let Some(sid) = reply["user"]["sid"].as_u64() {
            self.sid = Some(sid);
        }
        self.reply = Some(reply.clone());
        reply
    }

    /// Handshake (must be 200), ACK, and the server's first HEARTBEAT (the server has
    /// heartbeats on): the connection is working.
    pub fn start(&mut self) -> &mut Client {
        let reply = self.handshake(HELLO);
        assert_eq!(reply["code"], 200, "handshake refused: {reply}");
        self.send_ack();
        self.expect_package(PackageType::Heartbeat);
        self
    }

    /// A connected, working client.
    pub fn working(addr: SocketAddr, transport: Transport) -> Client {
        let mut c = Client::connect(addr, transport);
        c.start();
        c
    }

    /// The session id the handshake reported.
    pub fn sid(&self) -> u64 {
        self.sid.expect("no sid: handshake not done")
    }

    /// A request/response round trip on `test.echo`.
    pub fn echo(&mut self, id: u32) {
        self.send_request(id, "test.echo", &json!({"i": id}));
        let resp = self.expect_response(id);
        assert_eq!(resp, json!({"code": 200, "body": {"i": id}}));
    }

    /// Asserts nothing arrives for `quiet` (a short, bounded check used only to show that
    /// something did *not* happen; never a speed assertion).
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.parse();
        assert!(self.events.is_empty(), "unexpected: {:?}", self.events);
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let mut chunk = [0u8; 1024];
        match self.stream.read(&mut chunk) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Ok(0) => panic!("connection ended, expected it to stay open"),
            Ok(n) => panic!("unexpected bytes: {:?}", &chunk[..n]),
            Err(e) => panic!("read error: {e}"),
        }
    }
}

pub const KICK_TYPE: u8 = KICK;
pub const HEARTBEAT_TYPE: u8 = HEARTBEAT;
pub const DATA_TYPE: u8 = DATA;
pub const HANDSHAKE_TYPE: u8 = HANDSHAKE;

/// Decodes a DATA body into an owned message (body parsed as JSON, or `null`).
pub fn decode_msg(body: &[u8]) -> Msg {
    let m = decode_message(body).expect("server sent an invalid message");
    Msg {
        kind: m.kind,
        id: m.id,
        route: match m.route {
            Route::Name(n) => Some(n.to_owned()),
            Route::Code(c) => Some(format!("#{c}")),
            Route::None => None,
        },
        body: serde_json::from_slice(m.body).unwrap_or(Value::Null),
    }
}

/// Parses one server (unmasked) frame at the start of `buf`: (fin, opcode, payload, bytes used).
pub fn parse_server_frame(buf: &[u8]) -> Option<(bool, u8, Vec<u8>, usize)> {
    let (&b0, rest) = buf.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    assert_eq!(b1 & 0x80, 0, "server frames are never masked");
    assert_eq!(b0 & 0x70, 0, "no RSV bits from the server");
    let (len, head) = match b1 & 0x7f {
        126 => {
            let b = rest.get(..2)?;
            (usize::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let b: [u8; 8] = rest.get(..8)?.try_into().unwrap();
            (usize::try_from(u64::from_be_bytes(b)).unwrap(), 10)
        }
        n => (usize::from(n), 2),
    };
    let payload = buf.get(head..head + len)?;
    Some((b0 & 0x80 != 0, b0 & 0x0f, payload.to_vec(), head + len))
}
