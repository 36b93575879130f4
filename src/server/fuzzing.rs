//! Fuzz entry point for whole connections: **not public API, outside semver**.
//!
//! [`fuzz_connection`] drives one [`ConnCore`] sans-IO, the way an I/O thread does, with a
//! script decoded from arbitrary bytes: client bytes (raw, or well-formed packages, frames and
//! upgrade requests so the fuzzer reaches every protocol state), partial deliveries, timer
//! ticks, inbox drains, partial client reads, server pushes and kicks. After every step it
//! checks:
//!
//! * **No panic**, and every close carries a reason that an independent model of the protocol
//!   predicts exactly: the model (below) tracks the transport, the pomelo phase and the
//!   deadline from the same client bytes and says, for each input and tick, whether the
//!   connection must stay open or close, and why (`ProtocolViolation` with the decoder's text,
//!   `HandshakeRejected(code)`, `PeerClosed`, the timeouts).
//! * **Bounded memory**: [`ConnCore::heap_bytes`] stays under a bound derived from the limits
//!   (package size, WebSocket message size, upgrade request size, outbound limit) and the
//!   largest chunk ever read; while open, the output a client leaves unread never exceeds
//!   `max_outbound_bytes`.
//! * **Well-formed output**: everything the connection wrote parses, as a client would read
//!   it, into a valid package stream (TCP) or an HTTP answer and valid server frames each
//!   holding one package (WebSocket): handshake reply first and once, nothing after a refused
//!   handshake, a KICK or a close frame; KICK bodies are `{"reason": …}` with the reason given.
//! * Once closing, input is ignored and pushes are dropped: the output never grows again.

use super::conn::{ConnConfig, ConnCore, ConnEnv, ConnLogs, Pushed};
use super::handler::{Handler, Request, Response};
use super::metrics::ThreadMetrics;
use crate::events::CloseReason;
use crate::frame::Frame;
use crate::id::Sid;
use crate::inbox::Command;
use crate::protocol::{
    self, decode_message, decode_package, encode_data, encode_package, ClientHandshake, Dictionary,
    Message, MessageType, PackageType, Protos, Route, HEADER_LEN, MAX_BODY_LEN,
};
use crate::service::SessionService;
use crate::session::SessionSnapshot;
use crate::sessions::Sessions;
use crate::sync::Mutex;
use crate::ws::frame::{FrameDecoder, WsEvent, MAX_HEADER_LEN};
use crate::ws::fuzzing::encode_client_frame;
use crate::ws::handshake::{UpgradeParser, MAX_REQUEST_BYTES};
use crate::ws::sniff::{sniff, Sniff};
use crate::{SessionConfig, SessionListener};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Most bytes one `on_input` call gets (the I/O thread reads into a 64 KiB buffer).
const MAX_CHUNK: usize = 64 * 1024;
/// Output a few server-made packages may add beyond the limits: the handshake reply (with the
/// dictionary), the upgrade answer, a KICK, a close frame.
const FIXED_OUTPUT: usize = 2048;
const KICK_REASON: &str = "kicked by the fuzzer";
const HANDLER_KICK_REASON: &str = "kicked by the handler";
const ROUTES: [&str; 7] = [
    "connector.entry.echo",
    "x.bind",
    "x.kick",
    "x.defer",
    "x.json",
    "nodot",
    "x.proto",
];

fn dictionary() -> &'static Arc<Dictionary> {
    static DICT: OnceLock<Arc<Dictionary>> = OnceLock::new();
    DICT.get_or_init(|| Arc::new(Dictionary::new(ROUTES, ["onPush"]).expect("small dictionary")))
}

/// The protos of the fuzzed server (on with the dictionary): `x.proto` has the same message
/// both ways, so its handler answers what it decoded (`Response::Json(req.json())`), through
/// the server proto; `onPush` pushes too.
const PROTO: &str = r#"{"message P": {"required sInt32 x": 1, "optional string s": 2},
    "optional uInt32 n": 1, "repeated P ps": 2, "optional double d": 3}"#;

fn protos() -> &'static Arc<Protos> {
    static PROTOS: OnceLock<Arc<Protos>> = OnceLock::new();
    PROTOS.get_or_init(|| {
        let both = format!(r#"{{"x.proto": {PROTO}, "onPush": {PROTO}}}"#);
        Arc::new(Protos::from_json(&both, &both).expect("fuzz protos parse"))
    })
}

// === the application =========================================================================

/// pomelo's `checkClient`, as the fuzz handler answers it (pure, so the model can ask too).
fn client_ok(version: &str) -> bool {
    !version.starts_with("0.0.0")
}

/// The handshake hook, as the fuzz handler answers it (pure).
fn hook(handshake: &Value) -> Result<Option<Value>, ()> {
    match handshake.get("user") {
        Some(Value::String(s)) if s == "fail" => Err(()),
        other => Ok(other.cloned()),
    }
}

/// Echoes requests, and exercises the service from inside a handler: bind, kick, deferred
/// responses through a [`Responder`](super::Responder), JSON responses.
struct FuzzHandler;

impl Handler for FuzzHandler {
    fn check_client(&self, _client_type: &str, version: &str) -> bool {
        client_ok(version)
    }

    fn handshake(&self, _sid: Sid, handshake: &Value) -> Result<Option<Value>, ()> {
        hook(handshake)
    }

    fn request(&self, req: Request<'_>) -> Response {
        let service = req.service();
        match req.route() {
            "x.bind" => {
                let uid = String::from_utf8_lossy(req.body());
                let _ = service.bind(req.sid(), &uid);
                Response::Bytes(b"{}".to_vec())
            }
            "x.kick" => {
                service.kick_by_session_id(req.sid(), Some(HANDLER_KICK_REASON));
                Response::Json(json!({"code": 200}))
            }
            "x.defer" => {
                let _ = req.responder().respond(req.body());
                Response::Deferred
            }
            "x.json" | "x.proto" => Response::Json(req.json()),
            _ => Response::Bytes(req.body().to_vec()),
        }
    }

    fn notify(&self, req: Request<'_>) {
        if req.route() == "x.kick" {
            req.service().kick_by_session_id(req.sid(), None);
        }
    }
}

/// Records the reasons of `closed` events.
#[derive(Default)]
struct Closes(Mutex<Vec<CloseReason>>);

impl SessionListener for Closes {
    fn closed(&self, _session: &SessionSnapshot, reason: &CloseReason) {
        self.0.lock().push(reason.clone());
    }
}

// === the reference model =====================================================================

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Inited,
    WaitAck,
    Working,
}

enum Transport {
    Sniffing,
    Tcp,
    Upgrade(UpgradeParser),
    Ws(FrameDecoder),
}

/// What the connection must do, computed independently of [`ConnCore`] from the same bytes.
/// It reuses the byte-level decoders (fuzzed on their own by the other targets) and
/// re-implements the connection's own logic: the transport switch, pomelo's phases, which
/// packages and messages are violations, and the deadlines.
struct Model {
    transport: Transport,
    buf: Vec<u8>,
    phase: Phase,
    deadline: Option<Instant>,
    /// Closing (or dropped): input is ignored from then on.
    closed: bool,
    config: Arc<ConnConfig>,
}

impl Model {
    fn new(now: Instant, config: Arc<ConnConfig>) -> Model {
        Model {
            transport: Transport::Sniffing,
            buf: Vec::new(),
            phase: Phase::Inited,
            deadline: Some(now + config.handshake_timeout),
            closed: false,
            config,
        }
    }

    fn ws_max_message(&self) -> usize {
        (self.config.max_package_size + HEADER_LEN) * 4
    }

    /// The result `on_input(chunk)` must have.
    fn input(&mut self, chunk: &[u8], now: Instant) -> Result<(), CloseReason> {
        if self.closed {
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        loop {
            match &mut self.transport {
                Transport::Sniffing => match sniff(&self.buf) {
                    Sniff::NeedMore => return Ok(()),
                    Sniff::Tcp => self.transport = Transport::Tcp,
                    Sniff::WebSocket => self.transport = Transport::Upgrade(UpgradeParser::new()),
                },
                Transport::Upgrade(parser) => match parser.parse(&self.buf, None) {
                    Ok(None) => return Ok(()),
                    Ok(Some(upgrade)) => {
                        let consumed = upgrade.consumed;
                        self.buf.drain(..consumed);
                        self.transport = Transport::Ws(FrameDecoder::new(self.ws_max_message()));
                    }
                    Err(_) => {
                        return Err(CloseReason::ProtocolViolation(
                            "bad websocket upgrade request",
                        ))
                    }
                },
                Transport::Tcp => {
                    let mut buf = std::mem::take(&mut self.buf);
                    let result = self.tcp(&mut buf, now);
                    self.buf = buf;
                    return result;
                }
                Transport::Ws(_) => {
                    let mut buf = std::mem::take(&mut self.buf);
                    let result = self.ws(&mut buf, now);
                    self.buf = buf;
                    return result;
                }
            }
        }
    }

    fn tcp(&mut self, buf: &mut Vec<u8>, now: Instant) -> Result<(), CloseReason> {
        let mut pos = 0;
        let result = loop {
            match decode_package(&buf[pos..], self.config.max_package_size) {
                Ok(Some((package, used))) => {
                    pos += used;
                    if let Err(reason) = self.package(package.kind, package.body, now) {
                        break Err(reason);
                    }
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(CloseReason::ProtocolViolation(err.as_str())),
            }
        };
        buf.drain(..pos);
        result
    }

    fn ws(&mut self, buf: &mut Vec<u8>, now: Instant) -> Result<(), CloseReason> {
        let Transport::Ws(mut decoder) = std::mem::replace(&mut self.transport, Transport::Tcp)
        else {
            unreachable!("called in the WebSocket state")
        };
        let mut pos = 0;
        let result = loop {
            let decoded = match decoder.decode(&mut buf[pos..]) {
                Ok(decoded) => decoded,
                // The text is ConnCore's own mapping of the error; any violation text will do.
                Err(_) => break Err(CloseReason::ProtocolViolation("")),
            };
            pos += decoded.consumed;
            match decoded.event {
                WsEvent::NeedMore => break Ok(()),
                WsEvent::Binary(mut payload) => {
                    let mut step = Ok(());
                    while !payload.is_empty() && step.is_ok() {
                        step = match decode_package(payload, self.config.max_package_size) {
                            Ok(Some((package, used))) => {
                                payload = &payload[used..];
                                self.package(package.kind, package.body, now)
                            }
                            Ok(None) => Err(CloseReason::ProtocolViolation(
                                "truncated package in websocket message",
                            )),
                            Err(err) => Err(CloseReason::ProtocolViolation(err.as_str())),
                        };
                    }
                    if let Err(reason) = step {
                        break Err(reason);
                    }
                }
                WsEvent::Ping(_) => {}
                WsEvent::Close { .. } => break Err(CloseReason::PeerClosed),
            }
        };
        buf.drain(..pos.min(buf.len()));
        self.transport = Transport::Ws(decoder);
        result
    }

    fn package(&mut self, kind: PackageType, body: &[u8], now: Instant) -> Result<(), CloseReason> {
        match (self.phase, kind) {
            (Phase::Inited, PackageType::Handshake) => {
                let reply = protocol::process_handshake(
                    body,
                    &self.config.handshake_config(),
                    |_, version| client_ok(version),
                    |hs: &ClientHandshake| hook(hs.value()),
                );
                if reply.is_ok() {
                    self.phase = Phase::WaitAck;
                    Ok(())
                } else {
                    Err(CloseReason::HandshakeRejected(reply.code.as_u16()))
                }
            }
            (Phase::WaitAck, PackageType::HandshakeAck) => {
                self.phase = Phase::Working;
                self.deadline = self.config.heartbeat_timeout.map(|t| now + t);
                Ok(())
            }
            (Phase::Working, PackageType::Heartbeat) => {
                if let Some(timeout) = self.config.heartbeat_timeout {
                    self.deadline = Some(now + timeout);
                }
                Ok(())
            }
            (Phase::Working, PackageType::Data) => self.data(body),
            (Phase::Working, PackageType::Kick) => {
                Err(CloseReason::ProtocolViolation("client sent a KICK package"))
            }
            _ => Ok(()),
        }
    }

    fn data(&self, body: &[u8]) -> Result<(), CloseReason> {
        let msg = decode_message(body).map_err(|e| CloseReason::ProtocolViolation(e.as_str()))?;
        // The message's kind and id are checked before its route: a response or push from the
        // client, or a request id over the limit, breaks the protocol whatever the route. A
        // route the server cannot resolve then leaves the connection open (a request gets a
        // code 500 answer, a notify is dropped).
        match msg.kind {
            MessageType::Request if msg.id > self.config.max_message_id => {
                Err(CloseReason::ProtocolViolation("message id too large"))
            }
            MessageType::Request | MessageType::Notify => Ok(()),
            MessageType::Response | MessageType::Push => Err(CloseReason::ProtocolViolation(
                "client sent a response or push message",
            )),
        }
    }

    /// What `on_tick(now)` must return.
    fn tick(&self, now: Instant) -> Option<CloseReason> {
        match self.deadline {
            Some(deadline) if now >= deadline => Some(if self.closed {
                CloseReason::Shutdown
            } else if self.phase == Phase::Working {
                CloseReason::HeartbeatTimeout
            } else {
                CloseReason::HandshakeTimeout
            }),
            _ => None,
        }
    }

    fn begin_close(&mut self, now: Instant) {
        if !self.closed {
            self.closed = true;
            self.deadline = Some(now + self.config.close_linger);
        }
    }
}

/// Compares a close reason with the model's; a WebSocket decode error may carry any text.
fn same_reason(got: &Result<(), CloseReason>, want: &Result<(), CloseReason>) -> bool {
    match (got, want) {
        (Err(CloseReason::ProtocolViolation(_)), Err(CloseReason::ProtocolViolation(""))) => true,
        _ => got == want,
    }
}

// === the script ==============================================================================

/// Reads the fuzz input as a script; past the end every read yields zeros.
struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The harness: the connection under test, its I/O thread's side, and the client.
struct Harness {
    core: Option<ConnCore>,
    model: Model,
    service: Arc<SessionService>,
    /// The handlers' view of `service` (what `Request::service` returns).
    sessions: Sessions,
    closes: Arc<Closes>,
    config: Arc<ConnConfig>,
    metrics: ThreadMetrics,
    logs: ConnLogs,
    sid: Sid,
    now: Instant,
    /// Client bytes written but not yet delivered.
    wire: Vec<u8>,
    /// The client sent an upgrade request first: packages go in masked frames.
    client_ws: bool,
    /// Everything the connection wrote, read or not (for the transcript check).
    transcript: Vec<u8>,
    /// The largest chunk one `on_input` call got (part of the memory bound).
    largest_chunk: usize,
    /// Texts of the KICK packages the connection must have written (checked in the transcript).
    kick_reasons: Vec<String>,
}

impl Harness {
    fn env_do<R>(&mut self, f: impl FnOnce(&mut ConnCore, &ConnEnv<'_>) -> R) -> Option<R> {
        let core = self.core.as_mut()?;
        let env = ConnEnv {
            handler: &FuzzHandler,
            sessions: &self.sessions,
            config: &self.config,
            metrics: &self.metrics,
            logs: &self.logs,
        };
        Some(f(core, &env))
    }

    fn write_package(&mut self, kind: u8, body: &[u8], fragment: u8) {
        let mut package = Vec::with_capacity(HEADER_LEN + body.len());
        match PackageType::from_u8(kind) {
            Some(kind) => {
                if encode_package(kind, body, &mut package).is_err() {
                    return;
                }
            }
            None => {
                package.push(kind);
                package.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
                package.extend_from_slice(body);
            }
        }
        self.write_payload(&package, fragment);
    }

    /// Client bytes carrying `payload`: as is over TCP; over WebSocket in a masked binary
    /// message, cut in up to three fragments (with a ping in between) as `fragment` says.
    fn write_payload(&mut self, payload: &[u8], fragment: u8) {
        if !self.client_ws {
            self.wire.extend_from_slice(payload);
            return;
        }
        let mask = [fragment, 0x5a, 0xa5, fragment.wrapping_mul(7)];
        match fragment % 4 {
            0 | 1 => encode_client_frame(true, 0x2, mask, payload, &mut self.wire),
            n => {
                let cut = usize::from(fragment) % (payload.len() + 1);
                let (a, b) = payload.split_at(cut);
                encode_client_frame(false, 0x2, mask, a, &mut self.wire);
                if n == 3 {
                    encode_client_frame(true, 0x9, mask, b"ping", &mut self.wire);
                }
                let mid = b.len() / 2;
                encode_client_frame(false, 0x0, mask, &b[..mid], &mut self.wire);
                encode_client_frame(true, 0x0, mask, &b[mid..], &mut self.wire);
            }
        }
    }

    /// Delivers up to `n` pending client bytes (all if `n` is 0) in one `on_input` call.
    fn deliver(&mut self, n: usize) {
        if self.wire.is_empty() {
            return;
        }
        let n = if n == 0 {
            self.wire.len()
        } else {
            n.min(self.wire.len())
        }
        .min(MAX_CHUNK);
        let chunk: Vec<u8> = self.wire.drain(..n).collect();
        self.largest_chunk = self.largest_chunk.max(chunk.len());
        let now = self.now;
        let Some(core) = self.core.as_ref() else {
            return; // dropped: the socket is gone
        };
        let closing = core.is_closing();
        let before = core.output().len();
        let want = self.model.input(&chunk, now);
        let Some(got) = self.env_do(|core, env| core.on_input(&chunk, now, env)) else {
            return;
        };
        // Input that leaves more unread output than the limit (echoes, pongs, replies)
        // closes the connection as a slow consumer, unless it broke the protocol first.
        let want = match want {
            Ok(()) if !closing && self.output_len() > self.config.max_outbound_bytes => {
                Err(CloseReason::SlowConsumer)
            }
            want => want,
        };
        assert!(
            same_reason(&got, &want),
            "on_input: connection says {got:?}, model says {want:?}"
        );
        if closing {
            assert_eq!(got, Ok(()));
            assert_eq!(
                self.output_len(),
                before,
                "a closing connection ignores input"
            );
        }
        if let Err(reason) = got {
            self.close(reason);
        }
    }

    fn output_len(&self) -> usize {
        self.core.as_ref().map_or(0, |c| c.output().len())
    }

    /// The I/O thread's close path (`IoThread::close_conn`).
    fn close(&mut self, reason: CloseReason) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if core.is_closing() {
            return;
        }
        let before = self.closes.0.lock().len();
        let live = self.service.close(self.sid, reason.clone());
        if live {
            // The session ends with the reason the connection gave.
            assert_eq!(
                self.closes.0.lock()[before..],
                *std::slice::from_ref(&reason)
            );
        }
        self.metrics.close(&reason);
        // Peer gone: drop at once, unless bytes are still due to it (a WebSocket close echo).
        let peer_gone = match &reason {
            CloseReason::Io(_) => true,
            CloseReason::PeerClosed => !core.has_output(),
            _ => false,
        };
        if peer_gone {
            self.drop_conn();
            return;
        }
        if let (true, Some(text)) = (core.is_working(), reason.kick_message()) {
            self.kick_reasons.push(text.to_owned());
        }
        core.begin_close(&reason, self.now, self.config.close_linger);
        self.model.begin_close(self.now);
    }

    fn drop_conn(&mut self) {
        if let Some(core) = self.core.take() {
            self.transcript.extend_from_slice(core.output());
            self.service.close(self.sid, CloseReason::Shutdown);
        }
        self.model.closed = true;
    }

    fn tick(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let now = self.now;
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let got = core.on_tick(now);
        let want = self.model.tick(now);
        assert_eq!(got, want, "on_tick");
        if let Some(reason) = got {
            if core.is_closing() {
                self.drop_conn(); // linger over
            } else {
                self.close(reason);
            }
        }
    }

    /// The I/O thread's inbox drain (`IoThread::drain_inbox`).
    fn drain(&mut self) {
        let Some(inbox) = self.service.inbox(0) else {
            return;
        };
        let mut commands = Vec::new();
        inbox.drain(|cmd| commands.push(cmd));
        let limit = self.config.max_outbound_bytes;
        let mut closes = Vec::new();
        for cmd in commands {
            match cmd {
                Command::Send { sid, frame } => {
                    let Some(core) = self.core.as_mut().filter(|_| sid == self.sid) else {
                        continue;
                    };
                    let (closing, working) = (core.is_closing(), core.is_working());
                    let before = core.output().len();
                    let pushed = core.push_frame(frame.as_bytes(), limit);
                    let after = core.output().len();
                    match pushed {
                        Pushed::Queued => {
                            assert!(working && !closing);
                            assert!(after <= limit, "{after} bytes queued, limit {limit}");
                        }
                        Pushed::Dropped => {
                            assert!(closing || !working);
                            assert_eq!(after, before);
                        }
                        Pushed::OverLimit => {
                            assert!(before + frame.len() > limit || core.is_websocket());
                            assert_eq!(after, before);
                            closes.push(CloseReason::SlowConsumer);
                        }
                    }
                }
                Command::Close { sid, reason } => {
                    if sid == self.sid {
                        closes.push(reason);
                    }
                }
            }
        }
        for reason in closes {
            self.close(reason);
        }
    }

    /// The client reads `n` bytes of output (all if 0).
    fn read(&mut self, n: usize) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let out = core.output();
        let n = if n == 0 { out.len() } else { n.min(out.len()) };
        self.transcript.extend_from_slice(&out[..n]);
        core.consumed(n);
    }

    /// A closing or dropped connection has no session left in the service.
    fn check_session(&self) {
        if self.core.as_ref().is_none_or(ConnCore::is_closing) {
            assert!(
                !self.service.contains(self.sid),
                "the connection is closing but its session is still live"
            );
        }
    }

    fn check_memory(&self) {
        let Some(core) = self.core.as_ref() else {
            return;
        };
        let cfg = &self.config;
        let ws_max = (cfg.max_package_size + HEADER_LEN) * 4;
        // Input: one incomplete package / upgrade request / frame, plus the chunk just read.
        let partial = (HEADER_LEN + cfg.max_package_size)
            .max(MAX_REQUEST_BYTES)
            .max(MAX_HEADER_LEN + ws_max);
        let input = 2 * (partial + self.largest_chunk);
        // Output: the limit, plus what one read's worth of input (echoes, pongs, direct
        // responses) and the server-made packages add before the limit is checked; a consumed
        // prefix waits at most as long as the pending part; Vec growth doubles.
        let output = 4 * (cfg.max_outbound_bytes + 2 * self.largest_chunk + FIXED_OUTPUT);
        let bound = input + ws_max + output;
        assert!(
            core.heap_bytes() <= bound,
            "{} heap bytes, bound {bound} (output pending {})",
            core.heap_bytes(),
            core.output().len()
        );
        if !core.is_closing() {
            assert!(
                core.output().len() <= cfg.max_outbound_bytes,
                "{} bytes of unread output on an open connection, limit {}",
                core.output().len(),
                cfg.max_outbound_bytes
            );
        }
    }
}

/// Client handshake bodies the script can pick (index past the end: raw script bytes).
fn handshake_body(variant: u8, dict: &Dictionary) -> Vec<u8> {
    match variant % 8 {
        0 => br#"{"sys":{"type":"fuzz","version":"1.0.0"},"user":{"name":"x"}}"#.to_vec(),
        1 => format!(
            r#"{{"sys":{{"type":"fuzz","version":"1.0.0","dictVersion":"{}"}}}}"#,
            dict.version()
        )
        .into_bytes(),
        2 => br#"{"sys":{"type":"fuzz","version":"0.0.0"}}"#.to_vec(),
        3 => br#"{"sys":{"version":"1"},"user":"fail"}"#.to_vec(),
        4 => br#"{"sys":"#.to_vec(),
        5 => br#"{}"#.to_vec(),
        6 => br#"{"sys":{"type":"fuzz","version":"2"},"user":0}"#.to_vec(),
        _ => br#"[1,2,3]"#.to_vec(),
    }
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: gate\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// A whole connection driven by arbitrary bytes (see the [module docs](self)).
///
/// Layout: byte 0 picks the limits (heartbeat on/off, dictionary, `max_package_size`,
/// `max_outbound_bytes`, inbox capacity); then a script of one-byte opcodes with their
/// arguments. Opcode bit 7 holds client bytes back (they are delivered by a later
/// `deliver`, possibly in pieces); otherwise every write is delivered at once.
pub fn fuzz_connection(data: &[u8]) {
    let mut script = Script { data };
    let setup = script.byte();
    let dict = dictionary();
    let config = Arc::new(ConnConfig {
        heartbeat_timeout: (setup & 1 == 1).then(|| Duration::from_secs(20)),
        handshake_timeout: Duration::from_secs(10),
        max_package_size: [16, 64, 256, 1024][usize::from(setup >> 1) & 3],
        max_outbound_bytes: [64, 256, 1024, 8192][usize::from(setup >> 3) & 3],
        max_message_id: if setup & 0x20 == 0 {
            i32::MAX as u32
        } else {
            1000
        },
        close_linger: Duration::from_secs(5),
        heartbeat_secs: (setup & 1 == 1).then_some(10),
        dictionary: (setup & 0x40 != 0).then(|| dict.clone()),
        protos: (setup & 0x40 != 0).then(|| protos().clone()),
        time_handlers: setup & 1 == 1,
    });
    let closes = Arc::new(Closes::default());
    let service = Arc::new(
        SessionService::with_listener(
            SessionConfig::default()
                .shards(1)
                .index_shards(1)
                .initial_sessions_per_shard(1)
                .inbox_capacity(if setup & 0x80 == 0 { 64 } else { 1 }),
            closes.clone(),
        )
        .expect("valid session config"),
    );
    let sid = service.create_in(0, None).expect("first session");
    let now = Instant::now();
    let mut h = Harness {
        core: Some(ConnCore::new(sid, now, &config)),
        model: Model::new(now, config.clone()),
        sessions: Sessions::new(service.clone(), config.dictionary.clone())
            .with_protos(config.protos.clone()),
        service,
        closes,
        config,
        metrics: ThreadMetrics::default(),
        logs: ConnLogs::default(),
        sid,
        now,
        wire: Vec::new(),
        client_ws: false,
        transcript: Vec::new(),
        largest_chunk: 0,
        kick_reasons: Vec::new(),
    };

    let mut steps = 0;
    while !script.is_empty() && steps < 512 {
        steps += 1;
        let op = script.byte();
        let hold = op & 0x80 != 0;
        let mut wrote = true;
        match op & 0x7F {
            // Raw bytes (anything, including a first chunk that is neither TCP nor HTTP).
            0..=15 => {
                let n = usize::from(script.byte());
                let bytes = script.bytes(n).to_vec();
                h.wire.extend_from_slice(&bytes);
            }
            // A package of any type byte, with a body from the script.
            16..=31 => {
                let (kind, n, fragment) = (script.byte() % 8, script.byte(), script.byte());
                let body = script.bytes(usize::from(n)).to_vec();
                h.write_package(kind, &body, fragment);
            }
            32..=37 => {
                let (variant, fragment) = (script.byte(), script.byte());
                let body = handshake_body(variant, dict);
                h.write_package(PackageType::Handshake.as_u8(), &body, fragment);
            }
            38..=43 => h.write_package(PackageType::HandshakeAck.as_u8(), &[], op),
            44..=49 => h.write_package(PackageType::Heartbeat.as_u8(), &[], op),
            // A request or notify: route by name or dictionary code, id from the script.
            50..=63 => {
                let (sel, fragment) = (script.byte(), script.byte());
                let id = u32::from(script.u16()) << (sel >> 6 << 3);
                let n = usize::from(script.byte() % 64);
                let body = script.bytes(n).to_vec();
                let name = ROUTES[usize::from(sel & 7) % ROUTES.len()];
                let route = if sel & 8 != 0 {
                    Route::Code(dict.code(name).unwrap_or(u16::from(sel)))
                } else {
                    Route::Name(name)
                };
                let msg = if sel & 0x10 != 0 {
                    Message::notify(route, &body)
                } else {
                    Message::request(id, route, &body)
                };
                let mut package = Vec::new();
                if encode_data(&msg, &mut package).is_ok() {
                    h.write_payload(&package, fragment);
                }
            }
            // An upgrade request, intact or cut short / corrupted at one byte.
            64..=71 => {
                let (variant, at) = (script.byte(), usize::from(script.byte()));
                let mut request = UPGRADE.to_vec();
                match variant % 4 {
                    0 | 1 => {}
                    2 => request.truncate(at % request.len()),
                    _ => {
                        let i = at % request.len();
                        request[i] ^= script.byte() | 1;
                    }
                }
                h.wire.extend_from_slice(&request);
                h.client_ws = true;
            }
            // WebSocket control frames: ping, pong, close, unmasked or reserved-bit frames.
            72..=79 => {
                let (kind, n) = (script.byte(), script.byte() % 130);
                let payload = script.bytes(usize::from(n)).to_vec();
                let mask = [1, 2, 3, kind];
                match kind % 6 {
                    0 => encode_client_frame(true, 0x9, mask, &payload, &mut h.wire),
                    1 => encode_client_frame(true, 0xA, mask, &payload, &mut h.wire),
                    2 => encode_client_frame(true, 0x8, mask, &payload, &mut h.wire),
                    3 => encode_client_frame(true, 0x8, mask, b"\x03\xe8bye", &mut h.wire),
                    4 => {
                        h.wire.push(0x82);
                        h.wire.push(n.min(125));
                        h.wire.extend_from_slice(&payload[..payload.len().min(125)]);
                    }
                    _ => encode_client_frame(true, kind & 0x7F, mask, &payload, &mut h.wire),
                }
            }
            80..=87 => {
                wrote = false;
                let n = usize::from(script.byte()) * usize::from(op % 8 + 1);
                h.deliver(n);
            }
            88..=95 => {
                wrote = false;
                let ms = u64::from(script.u16()) * 16;
                h.tick(ms);
            }
            96..=103 => {
                wrote = false;
                h.drain();
            }
            104..=111 => {
                wrote = false;
                let n = usize::from(script.u16());
                h.read(n);
            }
            // The server pushes to the session (by sid or by uid), with a body size from the
            // script: large ones hit the outbound limit.
            112..=119 => {
                wrote = false;
                let n = usize::from(script.u16()) % 4096;
                let mut frame = Vec::new();
                let body = vec![b'p'; n];
                if protocol::encode_push(Route::Name("onPush"), &body, &mut frame).is_ok() {
                    let frame = Frame::new(frame);
                    if op & 1 == 0 {
                        let _ = h.service.send_message(h.sid, frame);
                    } else {
                        let _ = h.service.send_message_by_uid("u", &frame);
                    }
                }
            }
            120..=123 => {
                wrote = false;
                let reason = (op & 1 == 0).then_some(KICK_REASON);
                h.service.kick_by_session_id(h.sid, reason);
            }
            124 | 125 => {
                wrote = false;
                h.close(CloseReason::PeerClosed);
            }
            _ => {
                wrote = false;
                let _ = h.service.bind(h.sid, "u");
            }
        }
        if wrote && !hold {
            h.deliver(0);
        }
        h.check_memory();
        h.check_session();
    }
    // The end: everything delivered, drained and read.
    h.deliver(0);
    h.drain();
    h.check_memory();
    h.check_session();
    h.read(0);
    if let Some(core) = h.core.as_ref() {
        assert!(!core.has_output());
    }
    check_transcript(&h.transcript, &h.kick_reasons);
}

// === the client's view of the output =========================================================

/// Parses everything the connection wrote as a client would, asserting it is well-formed.
fn check_transcript(out: &[u8], kick_reasons: &[String]) {
    let mut packages = PackageRules::default();
    if !out.starts_with(b"HTTP/1.1 ") {
        let mut rest = out;
        while !rest.is_empty() {
            let (p, n) = decode_package(rest, MAX_BODY_LEN)
                .expect("the server writes valid packages")
                .expect("the server writes whole packages");
            packages.next(p.kind, p.body, kick_reasons);
            rest = &rest[n..];
        }
        assert_eq!(
            packages.kicks,
            kick_reasons.len(),
            "every due KICK was sent"
        );
        return;
    }
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer ends its head")
        + 4;
    let (head, mut rest) = out.split_at(head_end);
    if !head.starts_with(b"HTTP/1.1 101 ") {
        assert!(rest.is_empty(), "nothing follows a refused upgrade");
        return;
    }
    let mut closed = false;
    while !rest.is_empty() {
        assert!(!closed, "nothing follows a close frame");
        let (b0, b1) = (rest[0], rest[1]);
        assert_eq!(
            b0 & 0xF0,
            0x80,
            "server frames are final, without reserved bits"
        );
        assert_eq!(b1 & 0x80, 0, "server frames are not masked");
        let (len, at) = match b1 & 0x7F {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => {
                let len = u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes"));
                (usize::try_from(len).expect("small"), 10)
            }
            n => (usize::from(n), 2),
        };
        let payload = &rest[at..at + len];
        match b0 & 0x0F {
            0x2 => {
                let (p, n) = decode_package(payload, MAX_BODY_LEN)
                    .expect("valid package")
                    .expect("whole package");
                assert_eq!(n, payload.len(), "one package per frame");
                packages.next(p.kind, p.body, kick_reasons);
            }
            0xA => assert!(len <= 125),
            0x8 => {
                assert!(len == 0 || len >= 2);
                closed = true;
            }
            op => panic!("unexpected server opcode {op}"),
        }
        rest = &rest[at + len..];
    }
    assert_eq!(
        packages.kicks,
        kick_reasons.len(),
        "every due KICK was sent"
    );
}

/// The order a client sees packages in: handshake reply first and once; after a refusal or a
/// KICK, nothing.
#[derive(Default)]
struct PackageRules {
    handshaken: bool,
    ended: bool,
    kicks: usize,
}

impl PackageRules {
    fn next(&mut self, kind: PackageType, body: &[u8], kick_reasons: &[String]) {
        assert!(!self.ended, "{kind:?} after the end of the conversation");
        match kind {
            PackageType::Handshake => {
                assert!(!self.handshaken, "one handshake reply");
                self.handshaken = true;
                let reply: Value = serde_json::from_slice(body).expect("JSON reply");
                let code = reply["code"].as_u64().expect("a code");
                assert!([200, 500, 501].contains(&code), "code {code}");
                if code != 200 {
                    assert_eq!(body, format!(r#"{{"code":{code}}}"#).as_bytes());
                    self.ended = true;
                }
            }
            PackageType::Heartbeat => {
                assert!(self.handshaken && body.is_empty());
            }
            PackageType::Data => {
                assert!(self.handshaken);
                let msg = decode_message(body).expect("valid message");
                assert!(matches!(
                    msg.kind,
                    MessageType::Response | MessageType::Push
                ));
            }
            PackageType::Kick => {
                assert!(self.handshaken);
                let kick: Value = serde_json::from_slice(body).expect("JSON kick");
                let reason = kick["reason"].as_str().expect("a reason");
                assert_eq!(
                    Some(reason),
                    kick_reasons.get(self.kicks).map(String::as_str)
                );
                self.kicks += 1;
                self.ended = true;
            }
            PackageType::HandshakeAck => panic!("the server never sends an ACK"),
        }
    }
}
