//! A minimal blocking pomelo TCP client for the cluster tests (pinus wire protocol).
//!
//! Written independently of the core's decoder on purpose: the client checks the server's bytes
//! with its own reading of the protocol. Packages are `type (1 byte) | length (3 bytes, big
//! endian) | body`; DATA bodies hold one pomelo message: a flag byte `(type << 1) | compressed`,
//! a LEB128 id for requests and responses, a route for requests, notifies and pushes, then the
//! JSON body.
//!
//! A background thread owns the reading side: it answers the heartbeat the server asks for
//! (one HEARTBEAT every `sys.heartbeat` seconds, as the official client does) whether or not the
//! test is reading, and hands every decoded message to a channel.
// Each test binary uses a different subset.
#![allow(dead_code)]
// The workspace's .clippy.toml routes the core's locks through its loom shim; this test-only
// code is never model-checked, so std's locks are the right ones here.
#![allow(clippy::disallowed_types)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

/// Package types of the pomelo protocol.
const HANDSHAKE: u8 = 1;
const HANDSHAKE_ACK: u8 = 2;
const HEARTBEAT: u8 = 3;
pub const DATA: u8 = 4;
const KICK: u8 = 5;

/// Message types inside a DATA package.
pub const MSG_REQUEST: u8 = 0;
pub const MSG_NOTIFY: u8 = 1;
pub const MSG_RESPONSE: u8 = 2;
pub const MSG_PUSH: u8 = 3;

/// How long `connect` and `request` wait for the server at most.
const BOUND: Duration = Duration::from_secs(10);

/// What the server sent, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A push message; a route sent as a dictionary code shows as `"#<code>"`. A body that is
    /// not JSON shows as a JSON string of its bytes (lossy UTF-8).
    Push { route: String, body: Value },
    /// The response to request `id`.
    Response { id: u32, body: Value },
    /// A KICK package with its body (pomelo sends `{"reason": …}`).
    Kick(Value),
    /// The connection ended: EOF, reset, or an undecodable package from the server.
    Closed,
}

/// A connected, handshaken pomelo client over TCP. Dropping it closes the socket and joins its
/// reader thread.
pub struct PomeloClient {
    writer: Arc<Mutex<TcpStream>>,
    events: Receiver<Event>,
    /// Events read while `request` waited for its response, handed out first by `next_event`.
    pending: VecDeque<Event>,
    next_id: u32,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    /// The handshake reply, as the server sent it.
    handshake: Value,
}

fn package(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("package body fits 24 bits");
    assert!(len < 1 << 24, "package body of {len} bytes exceeds 24 bits");
    let mut out = Vec::with_capacity(4 + body.len());
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

fn write_route(out: &mut Vec<u8>, route: &str) {
    let len = u8::try_from(route.len()).expect("routes are at most 255 bytes");
    out.push(len);
    out.extend_from_slice(route.as_bytes());
}

fn write_varint(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Encodes a DATA package holding a request (`id` = Some) or a notify, uncompressed route.
fn client_message(id: Option<u32>, route: &str, body: &Value) -> Vec<u8> {
    let mut msg = Vec::new();
    match id {
        Some(id) => {
            msg.push(MSG_REQUEST << 1);
            write_varint(&mut msg, id);
        }
        None => msg.push(MSG_NOTIFY << 1),
    }
    write_route(&mut msg, route);
    msg.extend_from_slice(body.to_string().as_bytes());
    package(DATA, &msg)
}

/// Encodes the DATA package a backend sends through the cluster for a push of `body` on the
/// uncompressed `route` (what a frontend writes to the socket as-is), with the core's own
/// encoder (`gatehouse::protocol::encode_push`).
pub fn push_package(route: &str, body: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    gatehouse::protocol::encode_push(route.into(), body.to_string().as_bytes(), &mut out)
        .expect("push package encodes");
    out
}

fn json_or_string(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Decodes the body of one DATA package from a server: a push or a response; `None` if it is
/// malformed or a type a server never sends (request, notify).
pub fn decode_message(body: &[u8]) -> Option<Event> {
    let (&flag, mut rest) = body.split_first()?;
    let kind = (flag >> 1) & 0x07;
    let compressed = flag & 1 == 1;
    let mut id = None;
    if kind == MSG_REQUEST || kind == MSG_RESPONSE {
        let mut v: u32 = 0;
        let mut shift = 0;
        loop {
            let (&b, r) = rest.split_first()?;
            rest = r;
            if shift > 28 {
                return None;
            }
            v |= u32::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        id = Some(v);
    }
    let mut route = String::new();
    if kind != MSG_RESPONSE {
        if compressed {
            let code = rest.get(..2)?;
            route = format!("#{}", u16::from_be_bytes([code[0], code[1]]));
            rest = &rest[2..];
        } else {
            let (&len, r) = rest.split_first()?;
            let name = r.get(..usize::from(len))?;
            route = String::from_utf8_lossy(name).into_owned();
            rest = &r[usize::from(len)..];
        }
    }
    let body = json_or_string(rest);
    match kind {
        MSG_RESPONSE => Some(Event::Response { id: id?, body }),
        MSG_PUSH => Some(Event::Push { route, body }),
        _ => None,
    }
}

/// Reads exactly one package, with `stream`'s read timeout applying to the first byte only;
/// `Ok(None)` when nothing arrived before the timeout.
fn read_package(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    loop {
        if buf.len() >= 4 {
            let len = usize::from(buf[1]) << 16 | usize::from(buf[2]) << 8 | usize::from(buf[3]);
            if buf.len() >= 4 + len {
                let kind = buf[0];
                let body = buf[4..4 + len].to_vec();
                buf.drain(..4 + len);
                return Ok(Some((kind, body)));
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

impl PomeloClient {
    /// Connects, sends the handshake `{"sys":{"type":"test","version":"0.1"},"user":{}}`,
    /// checks the reply's `code` is 200, sends the handshake ack, and starts the reader thread,
    /// which sends a HEARTBEAT every `sys.heartbeat` seconds (none if the reply has no
    /// heartbeat). Panics if any of that fails or takes over 10 s.
    pub fn connect(addr: SocketAddr) -> PomeloClient {
        let mut stream = TcpStream::connect_timeout(&addr, BOUND)
            .unwrap_or_else(|e| panic!("pomelo client: connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("set_nodelay");
        let hello = serde_json::json!({"sys": {"type": "test", "version": "0.1"}, "user": {}});
        stream
            .write_all(&package(HANDSHAKE, hello.to_string().as_bytes()))
            .expect("pomelo client: send handshake");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("set_read_timeout");
        let deadline = Instant::now() + BOUND;
        let mut buf = Vec::new();
        let reply = loop {
            match read_package(&mut stream, &mut buf) {
                Ok(Some((HANDSHAKE, body))) => break json_or_string(&body),
                Ok(Some((kind, body))) => panic!(
                    "pomelo client: expected the handshake reply, got package type {kind}: {:?}",
                    String::from_utf8_lossy(&body)
                ),
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => {
                    panic!("pomelo client: no handshake reply from {addr} within {BOUND:?}")
                }
                Err(e) => panic!("pomelo client: handshake with {addr}: {e}"),
            }
        };
        assert_eq!(
            reply["code"], 200,
            "pomelo client: handshake refused: {reply}"
        );
        stream
            .write_all(&package(HANDSHAKE_ACK, &[]))
            .expect("pomelo client: send ack");
        let heartbeat = reply["sys"]["heartbeat"]
            .as_f64()
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64);

        let writer = Arc::new(Mutex::new(stream.try_clone().expect("clone stream")));
        let (tx, events) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let writer = Arc::clone(&writer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("pomelo-client".into())
                .spawn(move || {
                    let mut next_beat = heartbeat.map(|h| Instant::now() + h);
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if let (Some(h), Some(at)) = (heartbeat, next_beat) {
                            if Instant::now() >= at {
                                next_beat = Some(at + h);
                                let sent = writer
                                    .lock()
                                    .map(|mut w| w.write_all(&package(HEARTBEAT, &[])));
                                if !matches!(sent, Ok(Ok(()))) {
                                    // The reading side will see the end too.
                                    next_beat = None;
                                }
                            }
                        }
                        let event = match read_package(&mut stream, &mut buf) {
                            Ok(None) | Ok(Some((HEARTBEAT, _))) => continue,
                            Ok(Some((DATA, body))) => decode_message(&body),
                            Ok(Some((KICK, body))) => Some(Event::Kick(json_or_string(&body))),
                            Ok(Some(_)) => None,
                            Err(_) => None,
                        };
                        match event {
                            Some(ev) => {
                                if tx.send(ev).is_err() {
                                    return;
                                }
                            }
                            None => {
                                let _ = tx.send(Event::Closed);
                                return;
                            }
                        }
                    }
                })
                .expect("spawn pomelo reader")
        };
        PomeloClient {
            writer,
            events,
            pending: VecDeque::new(),
            next_id: 1,
            stop,
            reader: Some(reader),
            handshake: reply,
        }
    }

    /// The server's handshake reply (`{"code":200,"sys":{…},…}`).
    pub fn handshake_reply(&self) -> &Value {
        &self.handshake
    }

    fn write(&self, bytes: &[u8]) {
        self.writer
            .lock()
            .expect("writer lock")
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("pomelo client: write: {e}"));
    }

    /// Sends a request on `route` without waiting; returns its id (ids count from 1).
    pub fn send_request(&mut self, route: &str, body: &Value) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.write(&client_message(Some(id), route, body));
        id
    }

    /// Sends a notify (no response expected) on `route`.
    pub fn notify(&mut self, route: &str, body: &Value) {
        self.write(&client_message(None, route, body));
    }

    /// Sends a request and waits (at most 10 s) for its response, which it returns. Other events
    /// read meanwhile are kept for [`next_event`](Self::next_event). Panics on timeout or if the
    /// connection ends first.
    pub fn request(&mut self, route: &str, body: &Value) -> Value {
        let id = self.send_request(route, body);
        let deadline = Instant::now() + BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Response { id: got, body }) if got == id => return body,
                Ok(Event::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("pomelo client: connection closed before the response to {route} (id {id}); earlier events: {:?}", self.pending)
                }
                Ok(other) => self.pending.push_back(other),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "pomelo client: no response to {route} (id {id}) within {BOUND:?}; other events: {:?}",
                    self.pending
                ),
            }
        }
    }

    /// The next event, waiting at most `timeout`; `None` on timeout. Once the connection has
    /// ended this returns `Some(Event::Closed)` on every call.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        if let Some(ev) = self.pending.pop_front() {
            return Some(ev);
        }
        match self.events.recv_timeout(timeout) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Event::Closed),
        }
    }

    /// Asserts that the connection ends (EOF or reset) within `timeout`, with at most KICK
    /// packages before the end; returns the kick bodies seen. Panics on a push or response
    /// before the end, or on timeout.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut kicks = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(Event::Closed) => return kicks,
                Some(Event::Kick(body)) => kicks.push(body),
                Some(other) => {
                    panic!("pomelo client: expected the connection to close, got {other:?}")
                }
                None => {
                    panic!("pomelo client: still open after {timeout:?} (kicks seen: {kicks:?})")
                }
            }
        }
    }
}

impl Drop for PomeloClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(w) = self.writer.lock() {
            let _ = w.shutdown(Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
