//! The floor under the gate's session setup: the least a server can do for the load
//! generator's setup scenario. One thread, one `mio::Poll`, canned replies, nothing else, so
//! that the gate's CPU per setup can be read against it (`bench/setup_floor.sh`, BENCHMARKS.md
//! "Setup cost against its floor").
//!
//! ```sh
//! cargo build --release -p gatehouse --example setup_floor
//! cargo build --release -p gatehouse-loadgen
//! target/release/examples/setup_floor --addr 127.0.0.1:0 --heartbeat 30 --seconds 600
//! # prints "floor: listening on 127.0.0.1:PORT (pid N)", then:
//! target/release/loadgen --addr 127.0.0.1:PORT --server-pid N --scenarios setup
//! ```
//!
//! Per connection it does what the gate does on the wire and no more:
//! * accept (non-blocking, until `WouldBlock`) and register for reading, edge-triggered;
//! * HANDSHAKE in → the canned reply `{"code":200,"sys":{"heartbeat":H}}` out;
//! * HANDSHAKE_ACK in → the server's first HEARTBEAT out (the gate sends it then too);
//! * a request (DATA) in → a response with its id: `{"code":200,"uid":…}` with the request's
//!   `"uid"` value copied byte for byte when it has one (the entry route), else `{"code":200}`
//!   (enough for the load generator's `stats` request on its control connection);
//! * HEARTBEAT in → HEARTBEAT out (the gate echoes them); the connection stays open until the
//!   client closes it (end of stream or an error), then it is dropped.
//!
//! Only the package headers (type, 3-byte length) and a request's id are parsed; the bodies
//! are not JSON-decoded. Reading follows the gate's rule: a read that returns less than the
//! space offered drained the socket, so the read that would only say `WouldBlock` is skipped
//! (the next arrival is a new edge). Writes go straight to the socket; what does not fit
//! waits in the connection's fixed output buffer until it is writable again.
//!
//! Not a server: no timeouts, no sessions, no routes, no TLS or WebSocket. A package longer
//! than [`CONN_BUF`] or of an unknown type closes the connection. Allocation: the slab of
//! connections grows (amortised) with the peak count; nothing else is allocated per connection
//! or per package (each connection's buffers are fixed arrays inside its slab entry).
//!
//! Options: `--addr IP:PORT` (default `127.0.0.1:0`), `--heartbeat SECS` (default 30, the
//! gate's; 0 leaves it out of the reply and sends no first HEARTBEAT), `--seconds N` (exit
//! after N seconds, a safety net when the script that started it dies; default: until killed),
//! `--nodelay` (set TCP_NODELAY on accepted sockets, as the gate does; off by default, since
//! it is one more syscall per setup and the floor counts the minimum).

#![forbid(unsafe_code)]

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The listener's token; connections use their slab key.
const LISTENER: Token = Token(usize::MAX);
/// Per-connection input buffer: the largest package (header included) the floor accepts.
const CONN_BUF: usize = 512;
/// Per-connection output buffer (replies not yet accepted by the socket).
const OUT_BUF: usize = 512;
/// Room a single reply may need: header 4 + flag 1 + id 5 + `{"code":200,"uid":` 18 +
/// [`MAX_UID`] + `}` 1, and the handshake reply.
const MAX_REPLY: usize = 128;
/// The longest `"uid"` value echoed; a longer one is answered without it.
const MAX_UID: usize = 64;

/// pomelo package types (the first header byte).
const HANDSHAKE: u8 = 1;
const HANDSHAKE_ACK: u8 = 2;
const HEARTBEAT: u8 = 3;
const DATA: u8 = 4;
/// A HEARTBEAT package (no body).
const HEARTBEAT_PACKAGE: [u8; 4] = [HEARTBEAT, 0, 0, 0];

struct Opts {
    addr: SocketAddr,
    heartbeat: u64,
    seconds: Option<u64>,
    nodelay: bool,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        heartbeat: 30,
        seconds: None,
        nodelay: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag}: missing value"));
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                o.addr = v
                    .parse()
                    .map_err(|_| format!("--addr: expected IP:PORT, got {v:?}"))?;
            }
            "--heartbeat" => {
                let v = value()?;
                o.heartbeat = v
                    .parse()
                    .map_err(|_| format!("--heartbeat: expected seconds, got {v:?}"))?;
            }
            "--seconds" => {
                let v = value()?;
                o.seconds = Some(
                    v.parse()
                        .map_err(|_| format!("--seconds: expected seconds, got {v:?}"))?,
                );
            }
            "--nodelay" => o.nodelay = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

/// One client connection: the socket and two fixed buffers.
struct Conn {
    stream: TcpStream,
    /// Input not yet parsed: `inp[..in_len]` starts at a package boundary.
    inp: [u8; CONN_BUF],
    in_len: usize,
    /// Output not yet written: `out[out_pos..out_len]`.
    out: [u8; OUT_BUF],
    out_pos: usize,
    out_len: usize,
    /// The socket may hold more input (an edge arrived and no read has drained it since).
    readable: bool,
    /// Registered for WRITABLE too (after a write that did not take everything).
    want_write: bool,
}

/// Why a connection ends.
enum End {
    /// The client closed (end of stream) or the socket failed.
    Closed,
    /// A package the floor does not serve.
    Protocol,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            inp: [0; CONN_BUF],
            in_len: 0,
            out: [0; OUT_BUF],
            out_pos: 0,
            out_len: 0,
            readable: true,
            want_write: false,
        }
    }

    fn push_out(&mut self, bytes: &[u8]) {
        self.out[self.out_len..self.out_len + bytes.len()].copy_from_slice(bytes);
        self.out_len += bytes.len();
    }

    /// Answers every complete package in the input while the output has room for a reply.
    fn parse(&mut self, canned: &Canned) -> Result<(), End> {
        let mut at = 0;
        while self.in_len - at >= 4 && OUT_BUF - self.out_len >= MAX_REPLY {
            let head = &self.inp[at..at + 4];
            let kind = head[0];
            let len = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
            if 4 + len > CONN_BUF {
                return Err(End::Protocol);
            }
            if self.in_len - at < 4 + len {
                break;
            }
            let body = at + 4..at + 4 + len;
            at += 4 + len;
            match kind {
                HANDSHAKE => self.push_out(&canned.hs_reply),
                HANDSHAKE_ACK if canned.heartbeat => self.push_out(&HEARTBEAT_PACKAGE),
                HANDSHAKE_ACK => {}
                HEARTBEAT => self.push_out(&HEARTBEAT_PACKAGE),
                DATA => {
                    let mut reply = [0u8; MAX_REPLY];
                    let n = respond(&self.inp[body], &mut reply)?;
                    self.push_out(&reply[..n]);
                }
                _ => return Err(End::Protocol),
            }
        }
        self.inp.copy_within(at..self.in_len, 0);
        self.in_len -= at;
        Ok(())
    }

    /// Writes what is pending; `Ok(false)` when the socket took only part of it.
    fn flush(&mut self) -> Result<bool, End> {
        while self.out_pos < self.out_len {
            match self.stream.write(&self.out[self.out_pos..self.out_len]) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(End::Closed),
            }
        }
        self.out_pos = 0;
        self.out_len = 0;
        Ok(true)
    }

    /// Reads, answers and writes until the socket is drained or its output is full.
    fn pump(&mut self, token: Token, poll: &Poll, canned: &Canned) -> Result<(), End> {
        loop {
            self.parse(canned)?;
            if !self.flush()? {
                if !self.want_write {
                    self.want_write = true;
                    let _ = poll.registry().reregister(
                        &mut self.stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    );
                }
                return Ok(());
            }
            if !self.readable {
                return Ok(());
            }
            let space = CONN_BUF - self.in_len;
            if space == 0 {
                // Only complete packages fill the buffer (a longer one was refused), and the
                // output is empty now: the next parse makes progress.
                continue;
            }
            match self.stream.read(&mut self.inp[self.in_len..]) {
                Ok(0) => return Err(End::Closed),
                Ok(n) => {
                    self.in_len += n;
                    // A short read drained the socket: the next arrival is a new edge.
                    self.readable = n == space;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(End::Closed),
            }
        }
    }
}

/// The response package to a DATA package's message: request id echoed, a canned body.
/// Notifications get no response (an empty return).
fn respond(msg: &[u8], reply: &mut [u8; MAX_REPLY]) -> Result<usize, End> {
    let (&flag, rest) = msg.split_first().ok_or(End::Protocol)?;
    if (flag >> 1) & 0x07 != 0 {
        // Not a request: nothing to answer.
        return Ok(0);
    }
    // The id: base 128, least significant group first, at most 5 bytes.
    let id_len = rest
        .iter()
        .take(5)
        .position(|b| b & 0x80 == 0)
        .ok_or(End::Protocol)?
        + 1;
    let id = &rest[..id_len];
    let mut n = 4;
    reply[n] = 2 << 1; // a RESPONSE message, no route
    n += 1;
    reply[n..n + id_len].copy_from_slice(id);
    n += id_len;
    let mut put = |bytes: &[u8]| {
        reply[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    match uid_value(msg) {
        Some(uid) => {
            put(br#"{"code":200,"uid":"#);
            put(uid);
            put(b"}");
        }
        None => put(br#"{"code":200}"#),
    }
    let len = n - 4;
    reply[..4].copy_from_slice(&[DATA, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    Ok(n)
}

/// The JSON string value after `"uid":` in `msg` (quotes included, no escapes), if short.
fn uid_value(msg: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = br#""uid":""#;
    let start = msg.windows(KEY.len()).position(|w| w == KEY)? + KEY.len() - 1;
    let rest = &msg[start + 1..];
    let end = rest
        .iter()
        .take(MAX_UID)
        .position(|&b| b == b'"' || b == b'\\')?;
    (rest[end] == b'"').then(|| &msg[start..start + 1 + end + 1])
}

/// What the floor answers with, built once at start.
struct Canned {
    /// The HANDSHAKE reply package.
    hs_reply: Vec<u8>,
    /// Heartbeats are on: a HEARTBEAT follows the client's HANDSHAKE_ACK.
    heartbeat: bool,
}

/// The HANDSHAKE reply package.
fn handshake_reply(heartbeat: u64) -> Vec<u8> {
    let body = if heartbeat > 0 {
        format!(r#"{{"code":200,"sys":{{"heartbeat":{heartbeat}}}}}"#)
    } else {
        r#"{"code":200,"sys":{}}"#.to_string()
    };
    let len = body.len();
    let mut out = vec![HANDSHAKE, (len >> 16) as u8, (len >> 8) as u8, len as u8];
    out.extend_from_slice(body.as_bytes());
    out
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "setup_floor: {e}\nusage: setup_floor [--addr IP:PORT] [--heartbeat SECS] \
                 [--seconds N] [--nodelay]"
            );
            return ExitCode::from(2);
        }
    };
    match serve(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("setup_floor: {e}");
            ExitCode::from(1)
        }
    }
}

fn serve(opts: &Opts) -> io::Result<()> {
    let canned = Canned {
        hs_reply: handshake_reply(opts.heartbeat),
        heartbeat: opts.heartbeat > 0,
    };
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(opts.addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    // The same first line as the gate's, so the load generator and scripts can read it.
    println!(
        "floor: listening on {} (pid {})",
        listener.local_addr()?,
        std::process::id()
    );
    io::stdout().flush()?;
    let until = opts
        .seconds
        .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    loop {
        let timeout = until.map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if until.is_some_and(|t| Instant::now() >= t) {
            return Ok(());
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&listener, &poll, &mut conns, opts.nodelay);
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                conn.readable = true;
            }
            if conn.pump(event.token(), &poll, &canned).is_err() {
                // Closing the descriptor takes it out of the epoll set: no deregister call.
                conns.remove(key);
            }
        }
    }
}

fn accept_all(listener: &TcpListener, poll: &Poll, conns: &mut Slab<Conn>, nodelay: bool) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_err()
                {
                    continue;
                }
                if nodelay {
                    let _ = stream.set_nodelay(true);
                }
                // The client writes first: nothing to read yet, the first edge says when.
                let mut conn = Conn::new(stream);
                conn.readable = false;
                entry.insert(conn);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors or similar: the clients wait in the backlog; say so once
                // per burst and retry on the next listener event.
                eprintln!("setup_floor: accept failed: {e}");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DATA package holding a request: flag 0, the id (base 128), the route, the body.
    fn request(id: &[u8], route: &[u8], body: &[u8]) -> Vec<u8> {
        let mut msg = vec![0u8];
        msg.extend_from_slice(id);
        msg.push(route.len() as u8);
        msg.extend_from_slice(route);
        msg.extend_from_slice(body);
        msg
    }

    #[test]
    fn responds_with_the_request_id_and_uid() {
        let mut out = [0u8; MAX_REPLY];
        // Id 300 is 0xac 0x02 on the wire (as in src/protocol/message.rs's example).
        let msg = request(
            &[0xac, 0x02],
            b"connector.entryHandler.entry",
            br#"{"uid":"u42"}"#,
        );
        let n = respond(&msg, &mut out).ok().expect("a request is answered");
        let body = br#"{"code":200,"uid":"u42"}"#;
        assert_eq!(&out[..4], &[DATA, 0, 0, (3 + body.len()) as u8]);
        assert_eq!(
            &out[4..7],
            &[0x04, 0xac, 0x02],
            "RESPONSE flag, then the id as sent"
        );
        assert_eq!(&out[7..n], body);

        // No uid (the loadgen's stats request): the bare code.
        let msg = request(&[5], b"connector.entryHandler.stats", b"{}");
        let n = respond(&msg, &mut out).ok().expect("a request is answered");
        assert_eq!(&out[4..n], b"\x04\x05{\"code\":200}");

        // A notification gets nothing; an id longer than 5 bytes is refused.
        assert_eq!(
            respond(&[1 << 1, 3, b'a', b'b', b'c'], &mut out).ok(),
            Some(0)
        );
        assert!(respond(&[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0], &mut out).is_err());
        assert!(respond(&[], &mut out).is_err());
    }

    #[test]
    fn uid_is_copied_only_when_short_and_unescaped() {
        assert_eq!(uid_value(br#"{"uid":"u1"}"#), Some(&br#""u1""#[..]));
        assert_eq!(uid_value(br#"{"uid":"a\"b"}"#), None);
        assert_eq!(uid_value(br#"{"uid":7}"#), None);
        let long = format!(r#"{{"uid":"{}"}}"#, "x".repeat(MAX_UID + 1));
        assert_eq!(uid_value(long.as_bytes()), None);
        // Unterminated: nothing, no panic.
        assert_eq!(uid_value(br#"{"uid":"abc"#), None);
    }

    #[test]
    fn handshake_reply_is_one_package() {
        let reply = handshake_reply(30);
        let body = br#"{"code":200,"sys":{"heartbeat":30}}"#;
        assert_eq!(&reply[..4], &[HANDSHAKE, 0, 0, body.len() as u8]);
        assert_eq!(&reply[4..], body);
        assert_eq!(&handshake_reply(0)[4..], br#"{"code":200,"sys":{}}"#);
    }
}
