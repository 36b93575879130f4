//! A small blocking pomelo TCP client for the demo: handshake, requests, and a reader thread
//! that timestamps every push on arrival (on the demo's shared clock) and hands it over a
//! channel.
//!
//! Packages are `type (1) | length (3, big endian) | body`; a DATA body holds one message: a
//! flag byte `(type << 1) | compressed-route`, a LEB128 id (requests, responses), a route
//! (requests, notifies, pushes), then the JSON body.

use crate::now_us;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

const HANDSHAKE: u8 = 1;
const HANDSHAKE_ACK: u8 = 2;
const HEARTBEAT: u8 = 3;
const DATA: u8 = 4;
const KICK: u8 = 5;

const MSG_REQUEST: u8 = 0;
const MSG_RESPONSE: u8 = 2;
const MSG_PUSH: u8 = 3;

/// What the server sent.
#[derive(Debug)]
pub enum Event {
    /// A push: its route, its raw body, and when it arrived ([`now_us`]).
    Push {
        route: String,
        body: Vec<u8>,
        at_us: u64,
    },
    /// The response to request `id`.
    Response { id: u32, body: Value },
    /// A KICK package and its body.
    Kick(Value),
    /// EOF, a reset, or a package this client cannot read.
    Closed,
}

/// A connected pomelo client; dropping it closes the socket and joins the reader.
pub struct Client {
    stream: TcpStream,
    events: Receiver<Event>,
    next_id: u32,
    reader: Option<JoinHandle<()>>,
}

fn package(kind: u8, body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() >= 1 << 24 {
        return Err(format!(
            "package body of {} bytes exceeds 24 bits",
            body.len()
        ));
    }
    let len = body.len() as u32;
    let mut out = Vec::with_capacity(4 + body.len());
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    Ok(out)
}

fn read_package(r: &mut impl Read) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 4];
    r.read_exact(&mut head)?;
    let len = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok((head[0], body))
}

/// Decodes one DATA body (server to client: a response or a push).
fn decode(body: &[u8], at_us: u64) -> Option<Event> {
    let (&flag, mut rest) = body.split_first()?;
    let kind = (flag >> 1) & 0x07;
    match kind {
        MSG_RESPONSE => {
            let (mut id, mut shift) = (0u32, 0u32);
            loop {
                let (&b, r) = rest.split_first()?;
                rest = r;
                if shift > 28 {
                    return None;
                }
                id |= u32::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            let body = serde_json::from_slice(rest).unwrap_or(Value::Null);
            Some(Event::Response { id, body })
        }
        MSG_PUSH => {
            let route = if flag & 1 == 1 {
                let code = rest.get(..2)?;
                let route = format!("#{}", u16::from_be_bytes([code[0], code[1]]));
                rest = &rest[2..];
                route
            } else {
                let (&len, r) = rest.split_first()?;
                let name = r.get(..usize::from(len))?;
                rest = &r[usize::from(len)..];
                String::from_utf8_lossy(name).into_owned()
            };
            Some(Event::Push {
                route,
                body: rest.to_vec(),
                at_us,
            })
        }
        _ => None,
    }
}

impl Client {
    /// Connects and completes the pomelo handshake (the gates run without heartbeats).
    pub fn connect(addr: SocketAddr) -> Result<Client, String> {
        let fail = |what: &str, e: std::io::Error| format!("client to {addr}: {what}: {e}");
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| fail("connect", e))?;
        stream.set_nodelay(true).map_err(|e| fail("nodelay", e))?;
        let hello =
            serde_json::json!({"sys": {"type": "gatehouse-demo", "version": "0.1"}, "user": {}});
        (&stream)
            .write_all(&package(HANDSHAKE, hello.to_string().as_bytes())?)
            .map_err(|e| fail("handshake", e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| fail("timeout", e))?;
        let mut reader =
            BufReader::with_capacity(64 << 10, stream.try_clone().map_err(|e| fail("clone", e))?);
        let (kind, body) = read_package(&mut reader).map_err(|e| fail("handshake reply", e))?;
        let reply: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if kind != HANDSHAKE || reply["code"] != 200 {
            return Err(format!(
                "client to {addr}: handshake refused: type {kind}, {reply}"
            ));
        }
        (&stream)
            .write_all(&package(HANDSHAKE_ACK, &[])?)
            .map_err(|e| fail("ack", e))?;
        stream
            .set_read_timeout(None)
            .map_err(|e| fail("timeout", e))?;
        let (tx, events) = crossbeam_channel::unbounded();
        let reader = std::thread::Builder::new()
            .name("demo-client".into())
            .spawn(move || loop {
                let event = match read_package(&mut reader) {
                    Ok((DATA, body)) => decode(&body, now_us()),
                    Ok((KICK, body)) => Some(Event::Kick(
                        serde_json::from_slice(&body).unwrap_or(Value::Null),
                    )),
                    Ok((HEARTBEAT, _)) => continue,
                    Ok(_) | Err(_) => None,
                };
                let end = event.is_none();
                if tx.send(event.unwrap_or(Event::Closed)).is_err() || end {
                    return;
                }
            })
            .map_err(|e| fail("reader thread", e))?;
        Ok(Client {
            stream,
            events,
            next_id: 1,
            reader: Some(reader),
        })
    }

    /// Sends a request and waits (at most 5 s) for its response; other events meanwhile are
    /// an error (the demo only requests on quiet connections).
    pub fn request(&mut self, route: &str, body: &Value) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = vec![MSG_REQUEST << 1];
        let mut v = id;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                msg.push(byte);
                break;
            }
            msg.push(byte | 0x80);
        }
        let route_len = u8::try_from(route.len()).map_err(|_| "route too long".to_string())?;
        msg.push(route_len);
        msg.extend_from_slice(route.as_bytes());
        msg.extend_from_slice(body.to_string().as_bytes());
        (&self.stream)
            .write_all(&package(DATA, &msg)?)
            .map_err(|e| format!("request {route}: {e}"))?;
        match self.next_event(Duration::from_secs(5)) {
            Some(Event::Response { id: got, body }) if got == id => Ok(body),
            Some(other) => Err(format!("request {route}: unexpected {other:?}")),
            None => Err(format!("request {route}: no response within 5 s")),
        }
    }

    /// The next event within `timeout`, `None` on timeout; after the end, always `Closed`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Event::Closed),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
