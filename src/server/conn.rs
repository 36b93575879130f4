//! [`ConnCore`]: one client connection's protocol state machine, without sockets.
//!
//! The I/O thread feeds it the bytes it reads ([`ConnCore::on_input`]), the frames the inbox
//! hands over ([`ConnCore::push_frame`]) and the clock ([`ConnCore::on_tick`]); it answers with
//! bytes to write ([`ConnCore::output`]) and, when the connection must end, a
//! [`CloseReason`]. Being sans-IO, it is what the fuzz target for whole connections drives.
//!
//! # States (pomelo `HybridSocket`, spec §5.6)
//!
//! Transport: sniffing the first bytes → raw TCP, or WebSocket upgrade → WebSocket frames.
//! Protocol: INITED (only HANDSHAKE is read; anything else is ignored) → WAIT_ACK (only ACK) →
//! WORKING (HEARTBEAT is echoed at once and resets the heartbeat timeout; DATA carries requests
//! and notifies; a client KICK or unknown type closes) → closing (output flushed, input
//! ignored).

use crate::events::CloseReason;
use crate::id::Sid;
use crate::protocol::{
    self, Dictionary, HandshakeConfig, MessageType, PackageType, Protos, Route, HEADER_LEN,
};
use crate::server::builder::ServerBuilder;
use crate::server::handler::{
    encode_response_frame, json_response_body, Handler, Request, Response,
};
use crate::server::log_limit::LogLimit;
use crate::server::metrics::ThreadMetrics;
use crate::sessions::Sessions;
use crate::ws::frame::{
    encode_binary_header, encode_close, encode_pong, FrameDecoder, WsError, WsEvent,
};
use crate::ws::handshake::{encode_accept, UpgradeParser};
use crate::ws::sniff::{sniff, Sniff};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connection limits and protocol settings, shared by every connection of a server.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub(crate) heartbeat_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_package_size: usize,
    pub(crate) max_outbound_bytes: usize,
    pub(crate) max_message_id: u32,
    pub(crate) close_linger: Duration,
    pub(crate) heartbeat_secs: Option<u32>,
    pub(crate) dictionary: Option<Arc<Dictionary>>,
    pub(crate) protos: Option<Arc<Protos>>,
    /// Time handler calls into the I/O thread's metrics ([`ServerBuilder::time_handlers`]).
    pub(crate) time_handlers: bool,
}

impl ConnConfig {
    /// What the handshake reply announces: the heartbeat and, with `useDict`, the dictionary.
    pub(crate) fn handshake_config(&self) -> HandshakeConfig<'_> {
        let mut config = HandshakeConfig::new();
        if let Some(secs) = self.heartbeat_secs {
            config = config.with_heartbeat(secs);
        }
        if let Some(dict) = self.dictionary.as_deref() {
            config = config.with_dictionary(dict);
        }
        if let Some(protos) = self.protos.as_deref() {
            config = config.with_protos(protos);
        }
        config
    }

    pub(crate) fn from_builder(
        b: &ServerBuilder,
        dictionary: Option<Arc<Dictionary>>,
    ) -> ConnConfig {
        let heartbeat_secs = b.heartbeat.map(|h| {
            u32::try_from(h.as_secs() + u64::from(h.subsec_nanos() > 0)).unwrap_or(u32::MAX)
        });
        ConnConfig {
            heartbeat_timeout: b.effective_heartbeat_timeout(),
            handshake_timeout: b.handshake_timeout,
            max_package_size: b.max_package_size,
            max_outbound_bytes: b.max_outbound_bytes,
            max_message_id: b.max_message_id,
            close_linger: b.close_linger,
            heartbeat_secs,
            dictionary,
            protos: b.protos.clone(),
            time_handlers: b.time_handlers,
        }
    }

    /// Defaults of [`ServerBuilder`], for tests and fuzzing.
    pub fn default_for_tests() -> ConnConfig {
        ConnConfig::from_builder(&ServerBuilder::default(), None)
    }
}

/// What the connection needs from its I/O thread while handling input.
pub(crate) struct ConnEnv<'a> {
    pub(crate) handler: &'a dyn Handler,
    /// What handlers get ([`Request::service`]); the connector reaches the raw service
    /// through it (`Sessions::raw`).
    pub(crate) sessions: &'a Sessions,
    pub(crate) config: &'a ConnConfig,
    pub(crate) metrics: &'a ThreadMetrics,
    /// The I/O thread's rate limits for lines a client can trigger at will.
    pub(crate) logs: &'a ConnLogs,
}

/// Log lines a client can cause as often as it likes (junk routes, handler panics): at most
/// one per kind per [`LOG_INTERVAL`](crate::server::log_limit::LOG_INTERVAL) per I/O thread,
/// each saying how many were left out since the previous one. Per thread rather than per
/// connection: a thousand junk clients must not write a thousand lines either.
#[derive(Debug, Default)]
pub(crate) struct ConnLogs {
    limits: [Cell<LogLimit>; LogKind::COUNT],
}

/// What a rate-limited connection log line is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LogKind {
    UnknownRouteCode,
    NoServerType,
    ResponseTooLarge,
    HandlerPanic,
    /// The close line of a connection closed for breaking the protocol or for a panic: a
    /// client can cause those as fast as it can connect.
    CloseForCause,
    /// A JSON response that its route's server proto cannot encode (a game bug).
    ProtoEncode,
}

impl LogKind {
    const COUNT: usize = 6;
}

impl ConnLogs {
    /// Records one occurrence; `Some(left_out)` if a line should be written now.
    pub(crate) fn hit(&self, kind: LogKind, now: Instant) -> Option<u64> {
        let cell = &self.limits[kind as usize];
        let mut limit = cell.take();
        let verdict = limit.hit(now);
        cell.set(limit);
        verdict
    }
}

/// `" (N more since the last such line)"`, or nothing.
pub(crate) fn more(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more since the last such line)")
    }
}

/// Outcome of [`ConnCore::push_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Appended to the output.
    Queued,
    /// Dropped: the handshake is not complete (as pinus does) or the connection is closing.
    Dropped,
    /// The output would exceed `max_outbound_bytes`: close as a slow consumer.
    OverLimit,
}

#[derive(Debug)]
enum Transport {
    /// Waiting for enough bytes to tell TCP from WebSocket.
    Sniffing,
    /// pomelo packages straight on the stream.
    Tcp,
    /// Reading the HTTP upgrade request.
    WsUpgrade(UpgradeParser),
    /// WebSocket frames carrying packages.
    Ws,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Inited,
    WaitAck,
    Working,
}

/// One connection's protocol state, sans I/O (the states and limits: `src/server/conn.rs`).
#[derive(Debug)]
pub struct ConnCore {
    sid: Sid,
    transport: Transport,
    /// The frame decoder once upgraded to WebSocket (taken out while a message is handled).
    ws: Option<FrameDecoder>,
    phase: Phase,
    /// Input not yet consumed: a partial package, WebSocket frame or upgrade request.
    inbuf: Vec<u8>,
    /// Output not yet written; `out[out_pos..]` is pending.
    out: Vec<u8>,
    out_pos: usize,
    /// Handshake deadline, heartbeat deadline, or (closing) the linger deadline.
    deadline: Option<Instant>,
    closing: bool,
    /// A WebSocket close frame is in the output (an echo of the client's, or an error code):
    /// no second one may follow (RFC 6455 §5.5.1).
    close_sent: bool,
    /// The most bytes `out` held at a write since the last tick: a busy connection keeps a
    /// buffer sized to what it uses (no allocation per burst), an idle one gives it back.
    out_peak: usize,
    /// The largest `out_peak` of the ticks since the output buffer was last resized.
    recent_peak: usize,
    /// Consecutive ticks the output buffer has been larger than its use justifies.
    out_slack_ticks: u8,
    /// Consecutive ticks `inbuf` has held more capacity than needed, unused.
    in_slack_ticks: u8,
    /// `inbuf` held more than [`KEEP_CAPACITY`] bytes since the last tick.
    in_busy: bool,
}

/// Buffers above this are released once drained and unused for a whole tick (a burst must not
/// pin memory, and a steady stream of bursts must not reallocate every time).
const KEEP_CAPACITY: usize = 64 * 1024;

/// Ticks (100 ms each) a buffer must stay oversized before it is given back: a connection that
/// is quiet for a moment between bursts keeps its buffer (giving it back at once made it regrow
/// — allocations on the push path — whenever a loaded machine left one tick without a write).
const RELEASE_AFTER_TICKS: u8 = 10;

impl ConnCore {
    /// A new connection for session `sid`, accepted at `now`.
    pub fn new(sid: Sid, now: Instant, config: &ConnConfig) -> ConnCore {
        ConnCore {
            sid,
            transport: Transport::Sniffing,
            ws: None,
            phase: Phase::Inited,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            deadline: Some(now + config.handshake_timeout),
            closing: false,
            close_sent: false,
            out_peak: 0,
            recent_peak: 0,
            out_slack_ticks: 0,
            in_slack_ticks: 0,
            in_busy: false,
        }
    }

    /// The session id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// Whether the connection is closing (flushing its last bytes).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether the handshake is complete.
    pub fn is_working(&self) -> bool {
        self.phase == Phase::Working
    }

    /// Whether the connection speaks WebSocket.
    pub fn is_websocket(&self) -> bool {
        matches!(self.transport, Transport::Ws)
    }

    /// Whether bytes are waiting to be written.
    pub fn has_output(&self) -> bool {
        self.out_pos < self.out.len()
    }

    /// The bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Heap bytes held by this connection's buffers (for memory accounting and tests).
    pub fn heap_bytes(&self) -> usize {
        self.inbuf.capacity()
            + self.out.capacity()
            + self.ws.as_ref().map_or(0, FrameDecoder::heap_bytes)
    }

    /// `n` bytes of [`output`](Self::output) were written.
    pub fn consumed(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out_peak = self.out_peak.max(self.out.len());
            self.out_pos = 0;
            self.out.clear();
        } else if self.out_pos >= self.out.len() - self.out_pos {
            // The written prefix is at least as long as what is pending: drop it. Otherwise a
            // client that always leaves a little unread would make `out` grow without bound
            // (appends go after the prefix) while the pending part stays under the limit.
            // Each byte is moved at most once per time it was written: amortised O(1).
            self.out_peak = self.out_peak.max(self.out.len());
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
    }

    /// Bytes read from the client. `Err` means: close with this reason (the output may hold a
    /// last reply, e.g. a handshake error, to flush first).
    pub(crate) fn on_input(
        &mut self,
        data: &[u8],
        now: Instant,
        env: &ConnEnv<'_>,
    ) -> Result<(), CloseReason> {
        if self.closing {
            return Ok(());
        }
        self.inbuf.extend_from_slice(data);
        self.in_busy |= self.inbuf.len() > KEEP_CAPACITY;
        let mut input = std::mem::take(&mut self.inbuf);
        let result = self.process(&mut input, now, env);
        self.inbuf = input;
        result?;
        // Replies written straight to the output (HEARTBEAT echoes, pongs, responses written
        // directly when the inbox is full) count against the outbound limit like pushes do: a
        // client that sends them and never reads must not grow the output without bound.
        if self.out.len() - self.out_pos > env.config.max_outbound_bytes {
            return Err(CloseReason::SlowConsumer);
        }
        Ok(())
    }

    fn process(
        &mut self,
        input: &mut Vec<u8>,
        now: Instant,
        env: &ConnEnv<'_>,
    ) -> Result<(), CloseReason> {
        loop {
            match &mut self.transport {
                Transport::Sniffing => match sniff(input) {
                    Sniff::NeedMore => return Ok(()),
                    Sniff::Tcp => self.transport = Transport::Tcp,
                    Sniff::WebSocket => self.transport = Transport::WsUpgrade(UpgradeParser::new()),
                },
                Transport::WsUpgrade(parser) => match parser.parse(input, None) {
                    Ok(None) => return Ok(()),
                    Ok(Some(upgrade)) => {
                        encode_accept(upgrade.key, &mut self.out);
                        let consumed = upgrade.consumed;
                        input.drain(..consumed);
                        self.transport = Transport::Ws;
                        // A message holds whole packages: the package limit plus headers, and a
                        // few packages per message at most.
                        self.ws = Some(FrameDecoder::new(
                            (env.config.max_package_size + HEADER_LEN) * 4,
                        ));
                    }
                    Err(err) => {
                        err.encode_response(&mut self.out);
                        input.clear();
                        return Err(CloseReason::ProtocolViolation(
                            "bad websocket upgrade request",
                        ));
                    }
                },
                Transport::Tcp => {
                    let mut pos = 0;
                    let result = loop {
                        match protocol::decode_package(&input[pos..], env.config.max_package_size) {
                            Ok(Some((package, used))) => {
                                pos += used;
                                let kind = package.kind;
                                if let Err(reason) = self.on_package(kind, package.body, now, env) {
                                    break Err(reason);
                                }
                                if self.closing {
                                    break Ok(());
                                }
                            }
                            Ok(None) => break Ok(()),
                            Err(err) => break Err(CloseReason::ProtocolViolation(err.as_str())),
                        }
                    };
                    input.drain(..pos);
                    return result;
                }
                Transport::Ws => {
                    let Some(mut decoder) = self.ws.take() else {
                        return Err(CloseReason::ProtocolViolation("websocket state lost"));
                    };
                    let result = self.process_ws(&mut decoder, input, now, env);
                    self.ws = Some(decoder);
                    return result;
                }
            }
        }
    }

    fn process_ws(
        &mut self,
        decoder: &mut FrameDecoder,
        input: &mut Vec<u8>,
        now: Instant,
        env: &ConnEnv<'_>,
    ) -> Result<(), CloseReason> {
        let mut pos = 0;
        let result = loop {
            let decoded = match decoder.decode(&mut input[pos..]) {
                Ok(decoded) => decoded,
                Err(err) => {
                    encode_close(Some(err.close_code()), "", &mut self.out);
                    self.close_sent = true;
                    break Err(CloseReason::ProtocolViolation(ws_error_text(err)));
                }
            };
            pos += decoded.consumed;
            let step = match decoded.event {
                WsEvent::NeedMore => break Ok(()),
                WsEvent::Binary(payload) => self.on_ws_message(payload, now, env),
                WsEvent::Ping(payload) => {
                    encode_pong(payload, &mut self.out);
                    Ok(())
                }
                WsEvent::Close { code, .. } => {
                    // Echo the close; the I/O thread then closes the session (`PeerClosed`)
                    // and flushes the echo before ending the connection.
                    encode_close(code, "", &mut self.out);
                    self.close_sent = true;
                    break Err(CloseReason::PeerClosed);
                }
            };
            if let Err(reason) = step {
                break Err(reason);
            }
            if self.closing {
                break Ok(());
            }
        };
        input.drain(..pos.min(input.len()));
        result
    }

    fn on_ws_message(
        &mut self,
        mut payload: &[u8],
        now: Instant,
        env: &ConnEnv<'_>,
    ) -> Result<(), CloseReason> {
        // Several packages in one frame are fine (pinus disconnects: fixed); a partial one is not.
        while !payload.is_empty() {
            match protocol::decode_package(payload, env.config.max_package_size) {
                Ok(Some((package, used))) => {
                    self.on_package(package.kind, package.body, now, env)?;
                    payload = &payload[used..];
                }
                Ok(None) => {
                    return Err(CloseReason::ProtocolViolation(
                        "truncated package in websocket message",
                    ))
                }
                Err(err) => return Err(CloseReason::ProtocolViolation(err.as_str())),
            }
        }
        Ok(())
    }

    fn on_package(
        &mut self,
        kind: PackageType,
        body: &[u8],
        now: Instant,
        env: &ConnEnv<'_>,
    ) -> Result<(), CloseReason> {
        env.metrics.packages_in(1);
        match (self.phase, kind) {
            (Phase::Inited, PackageType::Handshake) => {
                let sid = self.sid;
                let handler = env.handler;
                // `check_client` and `handshake` are the game's code.
                let reply = self.guard(env, now, "handshake", || {
                    protocol::process_handshake(
                        body,
                        &env.config.handshake_config(),
                        |client_type, version| handler.check_client(client_type, version),
                        |hs| handler.handshake(sid, hs.value()),
                    )
                })?;
                self.write_package(PackageType::Handshake, &reply.body);
                if reply.is_ok() {
                    self.phase = Phase::WaitAck;
                    Ok(())
                } else {
                    Err(CloseReason::HandshakeRejected(reply.code.as_u16()))
                }
            }
            (Phase::WaitAck, PackageType::HandshakeAck) => {
                self.phase = Phase::Working;
                self.deadline = None;
                if let Some(timeout) = env.config.heartbeat_timeout {
                    self.write_package(PackageType::Heartbeat, &[]);
                    self.deadline = Some(now + timeout);
                }
                Ok(())
            }
            (Phase::Working, PackageType::Heartbeat) => {
                if let Some(timeout) = env.config.heartbeat_timeout {
                    self.write_package(PackageType::Heartbeat, &[]);
                    self.deadline = Some(now + timeout);
                }
                Ok(())
            }
            (Phase::Working, PackageType::Data) => self.on_data(body, now, env),
            (Phase::Working, PackageType::Kick) => {
                Err(CloseReason::ProtocolViolation("client sent a KICK package"))
            }
            // Before the ack everything else is ignored, as is a repeated handshake or ack.
            _ => Ok(()),
        }
    }

    fn on_data(&mut self, body: &[u8], now: Instant, env: &ConnEnv<'_>) -> Result<(), CloseReason> {
        let msg = protocol::decode_message(body)
            .map_err(|err| CloseReason::ProtocolViolation(err.as_str()))?;
        let request = match msg.kind {
            MessageType::Request => true,
            MessageType::Notify => false,
            MessageType::Response | MessageType::Push => {
                return Err(CloseReason::ProtocolViolation(
                    "client sent a response or push message",
                ))
            }
        };
        if request && msg.id > env.config.max_message_id {
            return Err(CloseReason::ProtocolViolation("message id too large"));
        }
        // A request the server cannot route is answered with an error: a client left without
        // an answer waits for its own timeout. A notify expects none; it is dropped.
        let route = match msg.route {
            Route::Name(name) => name,
            Route::Code(code) => {
                match env.config.dictionary.as_deref().and_then(|d| d.route(code)) {
                    Some(name) => name,
                    None => {
                        let why = if env.config.dictionary.is_some() {
                            "not in the dictionary"
                        } else {
                            "no route dictionary is configured"
                        };
                        let what = format_args!("unknown route code {code} ({why})");
                        let kind = LogKind::UnknownRouteCode;
                        self.unroutable(
                            kind,
                            what,
                            "unknown route code",
                            request,
                            msg.id,
                            now,
                            env,
                        );
                        return Ok(());
                    }
                }
            }
            Route::None => "",
        };
        if !route.contains('.') {
            let what = format_args!("route {route:?} has no server type");
            let error = "route has no server type";
            self.unroutable(
                LogKind::NoServerType,
                what,
                error,
                request,
                msg.id,
                now,
                env,
            );
            return Ok(());
        }
        let protos = env.config.protos.as_deref();
        let req = Request {
            sid: self.sid,
            id: msg.id,
            route,
            body: msg.body,
            proto: protos.and_then(|p| p.client(route)),
            service: env.sessions,
        };
        if !request {
            return self.guard(env, now, "notify", || env.handler.notify(req));
        }
        let body = match self.guard(env, now, "request", || env.handler.request(req))? {
            // A response is encoded with the server proto of its request's route (pinus).
            Response::Json(value) => {
                let message = protos.and_then(|p| p.server(route));
                let (body, failed) = json_response_body(message, &value);
                if let Some(err) = failed {
                    self.proto_encode_failed(route, msg.id, &err, now, env);
                }
                body
            }
            Response::Bytes(bytes) => bytes,
            Response::Deferred => return Ok(()),
        };
        self.respond(msg.id, &body, now, env);
        Ok(())
    }

    /// A JSON response that does not fit its route's server proto: logged (rate-limited),
    /// answered with an empty body, which the client decodes as an empty message — pinus
    /// sends the same, silently. Not JSON: the client decodes this route's responses as
    /// protobuf.
    fn proto_encode_failed(
        &self,
        route: &str,
        id: u32,
        err: &protocol::protobuf::ProtoEncodeError,
        now: Instant,
        env: &ConnEnv<'_>,
    ) {
        if let Some(n) = env.logs.hit(LogKind::ProtoEncode, now) {
            log::error!(
                "gatehouse: session {}: the response to request {id} on {route:?} does not fit \
                 its server proto ({err}); sent an empty message instead{}",
                self.sid,
                more(n)
            );
        }
    }

    /// Runs the game's code `f`, catching a panic: a bug in a handler costs this connection
    /// ([`CloseReason::HandlerPanic`], logged with the panic's message, rate-limited), never the
    /// I/O thread, its other connections or accepting.
    fn guard<R>(
        &self,
        env: &ConnEnv<'_>,
        now: Instant,
        what: &str,
        f: impl FnOnce() -> R,
    ) -> Result<R, CloseReason> {
        let start = env.config.time_handlers.then(Instant::now);
        let result = catch_unwind(AssertUnwindSafe(f));
        if let Some(start) = start {
            env.metrics.handler_time(start.elapsed());
        }
        result.map_err(|payload| {
            if let Some(n) = env.logs.hit(LogKind::HandlerPanic, now) {
                log::error!(
                    "gatehouse: session {}: the handler panicked in `{what}`: {}; closing the \
                     connection{}",
                    self.sid,
                    crate::panic::message(&*payload),
                    more(n)
                );
            }
            CloseReason::HandlerPanic
        })
    }

    /// A message the server cannot route: one log line per kind per interval (a client can
    /// send these at will), and a request is answered with `error` (a notify is dropped).
    #[allow(clippy::too_many_arguments)]
    fn unroutable(
        &mut self,
        kind: LogKind,
        what: std::fmt::Arguments<'_>,
        error: &str,
        request: bool,
        id: u32,
        now: Instant,
        env: &ConnEnv<'_>,
    ) {
        if let Some(n) = env.logs.hit(kind, now) {
            let outcome = if request {
                "answered with code 500"
            } else {
                "notify dropped"
            };
            log::warn!(
                "gatehouse: session {}: {what}, {outcome}{}",
                self.sid,
                more(n)
            );
        }
        if request {
            self.respond_error(id, error, now, env);
        }
    }

    /// Answers request `id` with `{"code":500,"error":text}`.
    fn respond_error(&mut self, id: u32, text: &str, now: Instant, env: &ConnEnv<'_>) {
        let body = serde_json::json!({"code": 500, "error": text});
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        self.respond(id, &bytes, now, env);
    }

    /// Sends a response through the shard inbox, so pushes the handler issued reach the
    /// client first (pomelo's order). If the session was closed by the handler, nothing is
    /// sent (as pinus). If the inbox is full the response still queues behind them (the
    /// inbox's overflow list, handed over after the queue: `Inbox::push_send_spill`).
    fn respond(&mut self, id: u32, body: &[u8], now: Instant, env: &ConnEnv<'_>) {
        let Ok(frame) = encode_response_frame(id, body) else {
            // Answer anyway: a client without a response waits for its own timeout.
            if let Some(n) = env.logs.hit(LogKind::ResponseTooLarge, now) {
                log::warn!(
                    "gatehouse: session {}: response to {id} is over the package limit ({} \
                     bytes), answered with code 500 instead{}",
                    self.sid,
                    body.len(),
                    more(n)
                );
            }
            let fallback = br#"{"code":500,"error":"response too large"}"#;
            if let Ok(frame) = encode_response_frame(id, fallback) {
                env.sessions.raw().queue_response(self.sid, frame);
            }
            return;
        };
        env.sessions.raw().queue_response(self.sid, frame);
    }

    /// A frame from the inbox (a whole package).
    pub(crate) fn push_frame(&mut self, frame: &[u8], limit: usize) -> Pushed {
        if self.closing || self.phase != Phase::Working {
            return Pushed::Dropped;
        }
        let pending = self.out.len() - self.out_pos;
        // The limit bounds the bytes queued, WebSocket framing included.
        let framing = if self.is_websocket() {
            crate::ws::frame::header_len(frame.len())
        } else {
            0
        };
        if pending + framing + frame.len() > limit {
            return Pushed::OverLimit;
        }
        self.write_raw(frame);
        Pushed::Queued
    }

    fn write_package(&mut self, kind: PackageType, body: &[u8]) {
        if self.is_websocket() {
            encode_binary_header(HEADER_LEN + body.len(), &mut self.out);
        }
        // Bodies written here are small server-made ones (handshake reply, heartbeat, kick).
        let _ = protocol::encode_package(kind, body, &mut self.out);
    }

    fn write_raw(&mut self, package: &[u8]) {
        if self.is_websocket() {
            encode_binary_header(package.len(), &mut self.out);
        }
        self.out.extend_from_slice(package);
    }

    /// Once per tick, gives back what an output buffer above [`KEEP_CAPACITY`] holds beyond its
    /// recent use, once it has been oversized for [`RELEASE_AFTER_TICKS`] ticks in a row: all of
    /// it if unused, else down to the power of two above the largest use of those ticks (at
    /// least [`KEEP_CAPACITY`]), when it is more than twice that. So a burst does not pin memory
    /// for more than about a second, and a connection busy at a steady volume — even one a
    /// loaded machine leaves without a write for a tick or two — keeps a buffer that fits it.
    /// The input buffer is given back likewise when it was not above [`KEEP_CAPACITY`] for as
    /// many ticks.
    fn release_idle_buffers(&mut self) {
        self.recent_peak = self.recent_peak.max(self.out_peak);
        let fit = match self.recent_peak {
            0 => 0,
            // Never below KEEP_CAPACITY: a buffer that size is kept anyway, and shrinking one
            // in use under it only makes it regrow (tests/reactor_alloc.rs saw that).
            peak => peak.next_power_of_two().max(KEEP_CAPACITY),
        };
        let oversized = !self.has_output()
            && self.out.capacity() > KEEP_CAPACITY
            && (fit == 0 || self.out.capacity() > 2 * fit);
        if oversized {
            self.out_slack_ticks += 1;
            if self.out_slack_ticks >= RELEASE_AFTER_TICKS {
                if fit == 0 {
                    self.out = Vec::new();
                    self.out_pos = 0;
                } else {
                    self.out.shrink_to(fit);
                }
                self.out_slack_ticks = 0;
                self.recent_peak = 0;
            }
        } else {
            self.out_slack_ticks = 0;
            self.recent_peak = self.out_peak;
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > KEEP_CAPACITY && !self.in_busy {
            self.in_slack_ticks += 1;
            if self.in_slack_ticks >= RELEASE_AFTER_TICKS {
                self.inbuf = Vec::new();
                self.in_slack_ticks = 0;
            }
        } else {
            self.in_slack_ticks = 0;
        }
        self.out_peak = 0;
        self.in_busy = false;
    }

    /// Starts closing: a KICK package if the reason has a text and the client is past the
    /// handshake (pomelo sends none before), a WebSocket close frame, then nothing more.
    pub(crate) fn begin_close(&mut self, reason: &CloseReason, now: Instant, linger: Duration) {
        if self.closing {
            return;
        }
        if let (Phase::Working, Some(text)) = (self.phase, reason.kick_message()) {
            let mut body = Vec::with_capacity(text.len() + 16);
            protocol::encode_kick_body(text, &mut body);
            self.write_package(PackageType::Kick, &body);
        }
        if self.is_websocket() && !self.close_sent {
            encode_close(Some(1000), "", &mut self.out);
            self.close_sent = true;
        }
        self.closing = true;
        self.deadline = Some(now + linger);
    }

    /// Checks the deadline: `Some(reason)` if it passed (for a closing connection: the linger
    /// is over, drop it).
    pub(crate) fn on_tick(&mut self, now: Instant) -> Option<CloseReason> {
        self.release_idle_buffers();
        match self.deadline {
            Some(deadline) if now >= deadline => Some(match (self.closing, self.phase) {
                (true, _) => CloseReason::Shutdown,
                (false, Phase::Working) => CloseReason::HeartbeatTimeout,
                (false, _) => CloseReason::HandshakeTimeout,
            }),
            _ => None,
        }
    }
}

/// A static description of a WebSocket violation, for the close reason.
fn ws_error_text(err: WsError) -> &'static str {
    match err {
        WsError::ReservedBits => "websocket frame with reserved bits set",
        WsError::ReservedOpcode(_) => "websocket frame with a reserved opcode",
        WsError::Unmasked => "unmasked websocket frame from the client",
        WsError::BadControlFrame => "malformed websocket control frame",
        WsError::BadLength => "invalid websocket frame length",
        WsError::UnexpectedContinuation | WsError::ExpectedContinuation => {
            "broken websocket fragmentation"
        }
        WsError::BadClose => "malformed websocket close frame",
        WsError::MessageTooBig => "websocket message too large",
        WsError::InvalidUtf8 => "invalid utf-8 in websocket text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::log_limit::LOG_INTERVAL;

    /// A client sending junk as fast as it can gets one line per kind per interval, the next
    /// line saying how many were left out; kinds do not share a budget.
    #[test]
    fn client_triggered_lines_are_limited_per_kind() {
        let logs = ConnLogs::default();
        let t0 = Instant::now();
        assert_eq!(logs.hit(LogKind::UnknownRouteCode, t0), Some(0));
        for _ in 0..10_000 {
            assert_eq!(logs.hit(LogKind::UnknownRouteCode, t0), None);
        }
        assert_eq!(logs.hit(LogKind::HandlerPanic, t0), Some(0));
        assert_eq!(
            logs.hit(LogKind::UnknownRouteCode, t0 + LOG_INTERVAL),
            Some(10_000)
        );
        assert_eq!(more(0), "");
        assert_eq!(more(3), " (3 more since the last such line)");
    }
}
