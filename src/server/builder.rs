//! [`ServerBuilder`]: address, threads, heartbeat and the limits that bound every connection.

use crate::config::SessionConfig;
use crate::events::SessionListener;
use crate::protocol::Protos;
use crate::server::handler::Handler;
use crate::server::{Server, ServerError};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds and starts a [`Server`]: the pomelo connector on one TCP port, serving raw TCP and
/// WebSocket clients (told apart by their first bytes).
///
/// Every limit has a default sized for a production frontend and a setter; a connection that
/// breaks a limit is closed with a [`CloseReason`](crate::CloseReason) that is logged, counted in
/// [`Metrics`](crate::server::Metrics) and passed to the `closed` event. Other connections are
/// never affected.
///
/// | setting | default | what happens past it |
/// | --- | --- | --- |
/// | `io_threads` | available cores | — |
/// | `heartbeat` | 30 s | sent in the handshake; `None` disables heartbeats and the timeout |
/// | `heartbeat_timeout` | 2 × heartbeat | closed: `HeartbeatTimeout` (only client HEARTBEATs reset it) |
/// | `handshake_timeout` | 10 s | closed: `HandshakeTimeout` (accept → ACK, TCP and WS alike) |
/// | `max_package_size` | 64 KiB | closed: `ProtocolViolation("package too large")`, before the body is buffered |
/// | `max_outbound_bytes` | 1 MiB | closed: `SlowConsumer` (bytes queued for a client that does not read) |
/// | `max_connections` | 100 000 | refused at accept: no session, no slot used, counted |
/// | `listen_backlog` | 1 024 | the kernel drops further SYNs until accepts catch up (capped by `net.core.somaxconn`) |
/// | `max_message_id` | 2³¹ − 1 | closed: `ProtocolViolation("message id too large")` |
/// | `close_linger` | 5 s | a kicked connection whose KICK cannot be flushed is dropped |
/// | `time_handlers` | `false` | — (when on, handler calls are timed into `Metrics::handler_time`) |
/// | `tls` (feature `tls`) | none | TLS-TCP and WSS on the same port (see `ServerBuilder::tls`) |
/// | `tls_only` (feature `tls`) | `false` | plain clients closed: `Tls("plaintext client on a TLS-only port")` |
/// | `tls_handshake_timeout` (feature `tls`) | 10 s | closed: `Tls("handshake not completed within …")` |
#[derive(Clone)]
pub struct ServerBuilder {
    pub(crate) addr: SocketAddr,
    pub(crate) io_threads: usize,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) heartbeat_timeout: Option<Duration>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_package_size: usize,
    pub(crate) max_outbound_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) listen_backlog: u32,
    pub(crate) max_message_id: u32,
    pub(crate) close_linger: Duration,
    pub(crate) time_handlers: bool,
    pub(crate) dictionary: Vec<String>,
    pub(crate) protos: Option<Arc<Protos>>,
    pub(crate) session: SessionConfig,
    pub(crate) listener: Option<Arc<dyn SessionListener>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::server::TlsConfig>,
    #[cfg(feature = "tls")]
    pub(crate) tls_only: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls_handshake_timeout: Duration,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 3010)),
            io_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            heartbeat: Some(Duration::from_secs(30)),
            heartbeat_timeout: None,
            handshake_timeout: Duration::from_secs(10),
            max_package_size: 64 * 1024,
            max_outbound_bytes: 1024 * 1024,
            max_connections: 100_000,
            listen_backlog: 1024,
            max_message_id: i32::MAX as u32,
            close_linger: Duration::from_secs(5),
            time_handlers: false,
            dictionary: Vec::new(),
            protos: None,
            session: SessionConfig::default(),
            listener: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_only: false,
            #[cfg(feature = "tls")]
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerBuilder {
    /// The address to listen on (default `127.0.0.1:3010`; port 0 picks a free port, see
    /// [`Server::local_addr`]).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Number of I/O threads, each with its own `mio::Poll` and session shard (1..=256).
    pub fn io_threads(mut self, n: usize) -> Self {
        self.io_threads = n;
        self
    }

    /// Heartbeat interval announced in the handshake; `None` turns heartbeats off.
    /// pomelo sends whole seconds, so sub-second parts are rounded up.
    pub fn heartbeat(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat = interval;
        self
    }

    /// How long a working connection may go without a client HEARTBEAT (default 2 × heartbeat).
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = Some(timeout);
        self
    }

    /// Time from accept until the handshake ACK (pomelo has none on WebSocket).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Largest package body a client may send (bytes, at most 2²⁴ − 1).
    pub fn max_package_size(mut self, bytes: usize) -> Self {
        self.max_package_size = bytes;
        self
    }

    /// Outbound bytes one connection may have queued before it is closed as a slow consumer.
    pub fn max_outbound_bytes(mut self, bytes: usize) -> Self {
        self.max_outbound_bytes = bytes;
        self
    }

    /// Connections held at once; further ones are refused at accept.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Pending connections the kernel queues before `accept` (default 1024; mio's own default
    /// of 128 drops SYNs when many clients connect at once).
    pub fn listen_backlog(mut self, n: u32) -> Self {
        self.listen_backlog = n;
        self
    }

    /// Largest request id a client may use.
    pub fn max_message_id(mut self, id: u32) -> Self {
        self.max_message_id = id;
        self
    }

    /// How long a closing connection may take to flush its last bytes (the KICK package).
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.close_linger = linger;
        self
    }

    /// Time every handler call (handshake, request, notify) on the I/O threads into
    /// [`Metrics::handler_time`](crate::server::Metrics::handler_time), a histogram the
    /// Prometheus export serves as `gatehouse_handler_duration_seconds`. Off by default: it
    /// reads the clock twice per call (`Instant::now`, a vDSO call on Linux, tens of
    /// nanoseconds each), which a connector serving mostly small requests would pay on every
    /// one.
    pub fn time_handlers(mut self, on: bool) -> Self {
        self.time_handlers = on;
        self
    }

    /// Routes for pomelo's `useDict` route compression: numbered from 1 in sorted order, as
    /// pinus does. Empty (the default) disables the dictionary.
    pub fn dictionary<I, S>(mut self, routes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.dictionary = routes.into_iter().map(Into::into).collect();
        self
    }

    /// Turns on protobuf bodies (pinus `useProtobuf`) with these protos, usually
    /// [`Protos::load_dir`] of the directory holding pinus's `serverProtos.json` and
    /// `clientProtos.json`. Every handshake reply then says `useProto` (and carries the protos
    /// when the client's cached version differs); requests on routes of the client protos are
    /// decoded from protobuf ([`Request::json`](crate::server::Request::json)); JSON responses
    /// ([`Response::Json`](crate::server::Response::Json),
    /// [`Responder::respond_json`](crate::server::Responder::respond_json)) and JSON pushes
    /// ([`Sessions`](crate::Sessions)) on routes of the server protos are encoded in protobuf.
    /// `None` (the default): JSON everywhere.
    pub fn protos(mut self, protos: Option<Arc<Protos>>) -> Self {
        self.protos = protos;
        self
    }

    /// Session settings (single-session mode, frontend id, shard sizes…). The shard count is
    /// always set to the number of I/O threads.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.session = config;
        self
    }

    /// Receives the session events (`bound`, `unbound`, `closed`).
    pub fn listener(mut self, listener: Arc<dyn SessionListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serves TLS on the port (feature `tls`): a client whose first byte opens a TLS
    /// ClientHello (`0x16`) gets a TLS session with this certificate, then speaks raw pomelo
    /// (TLS-TCP) or WebSocket (WSS) inside it, told apart as on a plain connection. Plain
    /// TCP and WebSocket clients are still served on the same port unless
    /// [`tls_only`](Self::tls_only) is set. Keep a clone of `config` to reload the
    /// certificate later ([`TlsConfig`](crate::server::TlsConfig)).
    ///
    /// Every limit of the table above applies inside TLS as outside; rustls holds at most
    /// 64 KiB more per connection for its own records.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::server::TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Refuses plain (non-TLS) clients: a connection whose first byte is not a TLS handshake
    /// record is closed at once, with [`CloseReason::Tls`](crate::CloseReason::Tls) (logged,
    /// counted). Default `false`. Needs [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    pub fn tls_only(mut self, only: bool) -> Self {
        self.tls_only = only;
        self
    }

    /// Time from accept until the TLS handshake is complete (default 10 s); past it the
    /// connection is closed with [`CloseReason::Tls`](crate::CloseReason::Tls). On a port that
    /// also serves plain clients, it starts with the client's first byte; on a TLS-only port,
    /// at accept. The pomelo `handshake_timeout` runs from accept in both cases, and covers
    /// the TLS handshake too.
    #[cfg(feature = "tls")]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// Binds the port, starts the I/O threads and returns the running server.
    ///
    /// # Errors
    ///
    /// [`ServerError`] if a setting is out of range or the port cannot be bound.
    pub fn start(self, handler: Arc<dyn Handler>) -> Result<Server, ServerError> {
        Server::start(self, handler)
    }

    pub(crate) fn validate(&self) -> Result<(), ServerError> {
        let bad = |what: &'static str| Err(ServerError::Config(what));
        if self.io_threads == 0 || self.io_threads > crate::MAX_SHARDS {
            return bad("io_threads must be in 1..=256");
        }
        if self.max_package_size == 0 || self.max_package_size > 0xFF_FFFF {
            return bad("max_package_size must be in 1..=16777215");
        }
        if self.max_outbound_bytes == 0 {
            return bad("max_outbound_bytes must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.heartbeat.is_some_and(|h| h.is_zero()) {
            return bad("heartbeat must be positive (or None)");
        }
        #[cfg(feature = "tls")]
        if self.tls_only && self.tls.is_none() {
            return bad("tls_only needs a certificate (ServerBuilder::tls)");
        }
        Ok(())
    }

    /// The heartbeat timeout in force, if heartbeats are on.
    pub(crate) fn effective_heartbeat_timeout(&self) -> Option<Duration> {
        self.heartbeat
            .map(|h| self.heartbeat_timeout.unwrap_or(h * 2))
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("ServerBuilder");
        f.field("addr", &self.addr)
            .field("io_threads", &self.io_threads)
            .field("heartbeat", &self.heartbeat)
            .field("heartbeat_timeout", &self.effective_heartbeat_timeout())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_package_size", &self.max_package_size)
            .field("max_outbound_bytes", &self.max_outbound_bytes)
            .field("max_connections", &self.max_connections)
            .field("listen_backlog", &self.listen_backlog)
            .field("max_message_id", &self.max_message_id)
            .field("close_linger", &self.close_linger)
            .field("dictionary", &self.dictionary.len())
            .field("protos", &self.protos.as_ref().map(|p| p.version()))
            .field("session", &self.session);
        #[cfg(feature = "tls")]
        f.field("tls", &self.tls.is_some())
            .field("tls_only", &self.tls_only)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout);
        f.finish()
    }
}
