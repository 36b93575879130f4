//! The pomelo connector: mio I/O threads serving pomelo's wire protocol over TCP and
//! WebSocket on one port (pomelo's `hybridconnector`), multi-core and bounded.
//!
//! # Threads
//!
//! [`ServerBuilder::start`] binds the port and starts `io_threads` threads. Each owns one
//! `mio::Poll`, one shard of the [`SessionService`] (its sessions' connections live on it) and
//! that shard's inbox, whose `mio::Waker` it plugs in. Thread 0 also accepts: it hands each new
//! socket to the threads in turn (its own included) through a small hand-off list and a wake.
//!
//! # One loop turn
//!
//! poll → accept / read every ready socket into one reused 64 KiB buffer and run each
//! connection's protocol state machine ([`ConnCore`], sans-IO) → take handed-off sockets →
//! drain the inbox (frames and closes from any thread, stale sids dropped and counted) →
//! write every connection that has output, once, with everything queued for it → check
//! deadlines every 100 ms.
//!
//! # TLS and WSS (feature `tls`)
//!
//! With `ServerBuilder::tls`, the same port also serves TLS (rustls, TLS 1.2 and 1.3, no
//! SNI needed): a connection whose first byte is `0x16` (a TLS handshake record) is decrypted
//! beneath [`ConnCore`], which then sniffs the plaintext for raw TCP or WebSocket as usual, so
//! TLS-TCP and WSS (`wss://`) come with it. Plain clients are served too unless
//! `ServerBuilder::tls_only` is set. The certificate is a `TlsConfig` (PEM files, PEM in
//! memory or a rustls `ServerConfig`), reloadable while the server runs. Failures (a plain
//! client on a TLS-only port, a TLS error, a handshake past
//! `ServerBuilder::tls_handshake_timeout`) close with [`CloseReason::Tls`](crate::CloseReason),
//! logged and counted ([`CloseCounts::tls`], [`Metrics::tls_handshake_failures`]).
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gatehouse::server::{Handler, Request, Response, Server, TlsConfig};
//! use std::sync::Arc;
//!
//! struct Echo;
//! impl Handler for Echo {
//!     fn request(&self, req: Request<'_>) -> Response {
//!         Response::Json(req.json().clone())
//!     }
//! }
//!
//! let tls = TlsConfig::from_pem_files("cert.pem", "key.pem")?;
//! let server = Server::builder().tls(tls.clone()).tls_only(true).start(Arc::new(Echo))?;
//! // Certificate renewed on disk: new connections get it, open ones keep theirs.
//! tls.reload_pem_files("cert.pem", "key.pem")?;
//! # drop(server);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "tls"))]
//! # fn main() {}
//! ```
//!
//! # Metrics
//!
//! [`Server::metrics`] sums the I/O threads' relaxed counters into a [`Metrics`] snapshot. With
//! the feature `prometheus`, `Server::metrics_exporter` renders the same figures (plus each
//! inbox's depth) in the Prometheus / OpenMetrics text formats at scrape time, and
//! `MetricsEndpoint` serves them on an admin address; the I/O threads do no extra work for
//! either (`src/server/prometheus/` explains the choice of `prometheus-client`).
//!
//! [`ConnCore`]: conn::ConnCore

mod builder;
mod conn;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod io_thread;
mod log_limit;
mod metrics;
#[cfg(feature = "prometheus")]
mod prometheus;
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod tls;

pub use builder::ServerBuilder;
pub use handler::{BodyError, Handler, Request, Responder, Response};
pub use metrics::{CloseCounts, HandlerTime, Metrics, HANDLER_TIME_BUCKETS};
#[cfg(feature = "prometheus")]
pub use prometheus::{MetricsEndpoint, MetricsExporter, MetricsFormat};
#[cfg(feature = "tls")]
pub use tls::{TlsConfig, TlsConfigError};

#[doc(hidden)]
pub use conn::{ConnConfig, ConnCore};

use crate::handoff::Handoff;
use crate::service::SessionService;
use crate::sessions::Sessions;
use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering};
use io_thread::IoThread;
use metrics::ThreadMetrics;
use mio::net::{TcpListener, TcpStream};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Why a [`Server`] could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// A builder setting is out of range.
    Config(&'static str),
    /// The session configuration was refused.
    Session(crate::ConfigError),
    /// Binding the port, creating a poll or spawning a thread failed.
    Io(io::Error),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(what) => write!(f, "invalid server config: {what}"),
            ServerError::Session(err) => err.fmt(f),
            ServerError::Io(err) => write!(f, "server i/o error: {err}"),
        }
    }
}

impl std::error::Error for ServerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServerError::Io(err) => Some(err),
            ServerError::Session(err) => Some(err),
            ServerError::Config(_) => None,
        }
    }
}

impl From<io::Error> for ServerError {
    fn from(err: io::Error) -> Self {
        ServerError::Io(err)
    }
}

/// State shared by the I/O threads and the [`Server`] handle.
pub(crate) struct Shared {
    /// The transport's full view: create, close, inboxes.
    pub(crate) service: Arc<SessionService>,
    /// The game's view, handed to handlers ([`Request::service`]) and by [`Server::service`];
    /// pushes compress routes with the server's dictionary.
    pub(crate) sessions: Sessions,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) conn: ConnConfig,
    pub(crate) max_connections: usize,
    pub(crate) wakers: Vec<Arc<mio::Waker>>,
    /// Sockets accepted by thread 0 for thread `i`.
    pub(crate) handoff: Vec<Handoff<(TcpStream, SocketAddr)>>,
    pub(crate) metrics: Vec<ThreadMetrics>,
    /// Live connections (all threads); checked at accept against `max_connections`.
    pub(crate) connections: AtomicUsize,
    pub(crate) stopping: AtomicBool,
    /// Accepted sockets inherit TCP_NODELAY from the listener (see `bind_listener`).
    pub(crate) nodelay_inherited: bool,
    pub(crate) shutdown_reason: Mutex<Option<Arc<str>>>,
    /// The TLS settings, if the port serves TLS.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tls::TlsSettings>,
}

impl Shared {
    /// The counters summed over the I/O threads ([`Server::metrics`]).
    fn snapshot(&self) -> Metrics {
        let mut m = Metrics {
            sessions: self.service.sessions_count(),
            bound_uids: self.service.bound_uids_count(),
            ..Metrics::default()
        };
        for t in &self.metrics {
            t.add_to(&mut m);
        }
        m
    }
}

/// A running connector. Dropping it shuts it down (as [`Server::shutdown`] with no reason).
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// A builder with the defaults (see [`ServerBuilder`]).
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    fn start(builder: ServerBuilder, handler: Arc<dyn Handler>) -> Result<Server, ServerError> {
        builder.validate()?;
        let threads = builder.io_threads;
        let session_config = builder.session.clone().shards(threads);
        let service = match &builder.listener {
            Some(listener) => SessionService::with_listener(session_config, listener.clone()),
            None => SessionService::new(session_config),
        }
        .map_err(ServerError::Session)?;
        let service = Arc::new(service);

        let dictionary = if builder.dictionary.is_empty() {
            None
        } else {
            let dict = crate::protocol::Dictionary::new(
                builder.dictionary.iter().map(String::as_str),
                std::iter::empty::<&str>(),
            )
            .map_err(|_| ServerError::Config("dictionary has more than 65535 routes"))?;
            Some(Arc::new(dict))
        };
        let (listener, nodelay_inherited) = bind_listener(builder.addr, builder.listen_backlog)?;
        let local_addr = listener.local_addr()?;
        let mut polls = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for shard in 0..threads {
            let poll = mio::Poll::new()?;
            let waker = Arc::new(mio::Waker::new(poll.registry(), io_thread::WAKER)?);
            let inbox = service.inbox(shard).expect("one shard per I/O thread");
            inbox.set_waker(waker.clone());
            polls.push(poll);
            wakers.push(waker);
        }
        let shared = Arc::new(Shared {
            sessions: Sessions::new(service.clone(), dictionary.clone())
                .with_protos(builder.protos.clone()),
            conn: ConnConfig::from_builder(&builder, dictionary),
            service,
            handler,
            max_connections: builder.max_connections,
            wakers,
            handoff: (0..threads).map(|_| Handoff::new()).collect(),
            metrics: (0..threads).map(|_| ThreadMetrics::default()).collect(),
            connections: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            nodelay_inherited,
            shutdown_reason: Mutex::new(None),
            #[cfg(feature = "tls")]
            tls: builder.tls.clone().map(|config| tls::TlsSettings {
                config,
                only: builder.tls_only,
                handshake_timeout: builder.tls_handshake_timeout,
            }),
        });

        let mut listener = Some(listener);
        let mut handles = Vec::with_capacity(threads);
        for (index, poll) in polls.into_iter().enumerate() {
            let io = IoThread::new(index, poll, listener.take(), shared.clone())?;
            let spawned = std::thread::Builder::new()
                .name(format!("gatehouse-io-{index}"))
                .spawn(move || io.run());
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    let server = Server {
                        shared,
                        local_addr,
                        threads: handles,
                    };
                    drop(server); // stops the threads already started
                    return Err(err.into());
                }
            }
        }
        #[cfg(feature = "tls")]
        let transports = match &shared.tls {
            None => "tcp + websocket",
            Some(t) if t.only => "tls + wss only",
            Some(_) => "tcp + websocket + tls + wss",
        };
        #[cfg(not(feature = "tls"))]
        let transports = "tcp + websocket";
        log::info!("gatehouse: listening on {local_addr} ({transports}), {threads} I/O thread(s)");
        Ok(Server {
            shared,
            local_addr,
            threads: handles,
        })
    }

    /// The address the server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The game's handle on the session service (see [`Sessions`]): clone it into every thread
    /// of the application that binds, kicks or pushes.
    pub fn service(&self) -> &Sessions {
        &self.shared.sessions
    }

    /// The raw [`SessionService`], with the transport's methods (`create`, `close`, the
    /// inboxes). **Not for game code**, outside semver: the I/O threads own the sessions'
    /// life cycle and inboxes, and a game that creates, closes or drains through this breaks
    /// the connector. For tests and benchmarks that need to observe the transport.
    #[doc(hidden)]
    pub fn __service(&self) -> &Arc<SessionService> {
        &self.shared.service
    }

    /// Current counters, summed over the I/O threads.
    pub fn metrics(&self) -> Metrics {
        self.shared.snapshot()
    }

    /// A handle that renders the counters in the Prometheus / OpenMetrics text formats from
    /// any thread (feature `prometheus`; see [`MetricsExporter`]). Rendering happens at scrape
    /// time only: the I/O threads do no extra work for it.
    #[cfg(feature = "prometheus")]
    pub fn metrics_exporter(&self) -> MetricsExporter {
        MetricsExporter::new(self.shared.clone())
    }

    /// Graceful shutdown: stop accepting, close every session (with a KICK package carrying
    /// `reason` if one is given; the `closed` event fires for each), flush what is queued,
    /// wait up to the close linger for slow clients, and join the I/O threads.
    pub fn shutdown(mut self, reason: Option<&str>) {
        self.stop(reason);
    }

    fn stop(&mut self, reason: Option<&str>) {
        if self.threads.is_empty() {
            return;
        }
        *self.shared.shutdown_reason.lock() = reason.map(Arc::from);
        self.shared.stopping.store(true, Ordering::Release);
        for waker in &self.shared.wakers {
            let _ = waker.wake();
        }
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                log::error!("gatehouse: an I/O thread panicked");
            }
        }
        log::info!("gatehouse: server on {} stopped", self.local_addr);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(None);
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("io_threads", &self.shared.wakers.len())
            .finish()
    }
}

/// Binds the listening socket with an explicit backlog (mio's `bind` uses 128, which drops
/// SYNs during login storms: the clients then wait a full second for the retransmit).
///
/// Also returns whether accepted sockets come with TCP_NODELAY already set. Linux copies the
/// option from the listener to every socket `accept` returns (`tcp_nodelay_inherits` in the
/// unit tests checks it on the machine at hand), which saves one `setsockopt` per connection,
/// about a ninth of a session setup's system calls (BENCHMARKS.md §2d). Elsewhere, or if the
/// listener refused the option, each accepted socket gets it on its own.
fn bind_listener(addr: SocketAddr, backlog: u32) -> io::Result<(TcpListener, bool)> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    let inherited = cfg!(target_os = "linux") && socket.set_tcp_nodelay(true).is_ok();
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    socket.set_nonblocking(true)?;
    Ok((TcpListener::from_std(socket.into()), inherited))
}

/// How long the I/O loop sleeps at most; deadlines are checked at this granularity.
pub(crate) const TICK: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    /// What `bind_listener` counts on: on Linux a socket `accept` returns already has
    /// TCP_NODELAY when the listener had it, so the I/O threads skip the per-socket call.
    #[test]
    fn tcp_nodelay_inherits() {
        let (listener, inherited) =
            bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)), 16).expect("bind");
        assert_eq!(inherited, cfg!(target_os = "linux"));
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let accepted = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no connection to accept"
                    );
                    std::thread::yield_now();
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        if inherited {
            assert!(
                accepted.nodelay().unwrap(),
                "this kernel does not copy TCP_NODELAY from the listener to accepted sockets"
            );
        }
    }
}
