//! gatehouse: the frontend session layer of pomelo/pinus game servers, in Rust.
//!
//! A game server links gatehouse in to run its frontend: one session per client connection,
//! sessions bound to user ids, kick, push by session id or by user id, iteration over
//! sessions — with pomelo's semantics, so existing game logic ports one call at a time.
//!
//! This crate is built in layers:
//!
//! * **The session core**: [`SessionService`], a sharded registry of sessions with a sharded
//!   uid index and per-shard lock-free outbound inboxes. It knows nothing of sockets: frames and
//!   kicks become [`Command`]s that a transport drains. Its hot paths (`get`, `send_message`,
//!   `send_message_by_uid`, `broadcast`, `for_each_*`) take no global lock and allocate nothing
//!   once warm.
//! * **The game's handle**: [`Sessions`], what game code holds. It forwards the game methods
//!   of the core (bind, kick, settings, sends, walks) and adds pomelo's push API: push by route
//!   and body to a session, a uid, many uids or every bound session, encoded once per call into
//!   one frame shared by every recipient (routes compressed with the server's dictionary), with
//!   reports that name every session a full inbox skipped and an exact [`Sessions::retry`];
//!   plus `send_batch` (pomelo `Session.sendBatch`).
//! * **The connector** ([`server`]): pomelo's wire protocol ([`protocol`]) over TCP and
//!   WebSocket on one port — and, with the `tls` feature (rustls), over TLS and WSS on that
//!   same port — driven by mio I/O threads, one shard per thread. It speaks every pinus client
//!   configuration: route compression (`useDict`) and protobuf bodies (`useProtobuf`, pinus's
//!   own proto files: [`protocol::Protos`]), applied to requests, responses and pushes so game
//!   code never hand-encodes. Embedders with their own I/O use the core alone;
//!   [`MemoryDriver`] is the in-memory transport for tests.
//!
//! # Who holds which handle
//!
//! | handle | held by | can |
//! | --- | --- | --- |
//! | `Arc<`[`SessionService`]`>` | the transport: the connector's I/O threads, or your own I/O loop | everything: also `create`/`create_in` sessions, `close` them, drain the shard [`Inbox`]es |
//! | [`Sessions`] | game code: handlers ([`server::Request::service`]), game threads ([`server::Server::service`]) | the game methods and the push API; not `create`, `close` or the inboxes |
//!
//! With the connector you only ever see a `Sessions`. An embedder with its own transport keeps
//! the `Arc<SessionService>` for its I/O loop and hands game code `Sessions::new(service,
//! dictionary)`.
//!
//! # Example
//!
//! ```
//! use gatehouse::{Frame, MemoryDriver, SessionConfig, SessionService, Sessions};
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! let service = Arc::new(SessionService::new(SessionConfig::default().single_session(true)).unwrap());
//! let mut transport = MemoryDriver::new(service.clone());
//!
//! // A client connects; the login handler binds its session to the account id.
//! let sid = transport.connect(Some("127.0.0.1:50000".parse().unwrap())).unwrap();
//! service.bind(sid, "10086").unwrap();
//!
//! // Push to the user from any thread: the frame is encoded once, shared by every session.
//! let push = Frame::new(b"\x04\x00\x00\x08\x06\x06onPush".to_vec());
//! assert_eq!(service.send_message_by_uid("10086", &push), Ok(1));
//! // Or to every logged-in session at once, one frame each.
//! assert_eq!(service.broadcast(&push), Ok(1));
//!
//! // Game code holds a `Sessions`: pushes by route and body, encoded once per call.
//! let sessions = Sessions::new(service.clone(), None);
//! assert_eq!(sessions.push_to_uid("10086", "onChat", &json!({"msg": "hi"})), Ok(1));
//!
//! // Kick with a reason: the client gets a KICK package, then the connection closes.
//! service.kick("10086", Some("logged in elsewhere"));
//! transport.poll();
//! assert_eq!(transport.received(sid).len(), 3);
//! assert_eq!(transport.kick_message(sid), Some("logged in elsewhere"));
//! assert!(service.get(sid).is_none());
//! ```
//!
//! # Design
//!
//! See [`implementation`] for the data layout, the lock discipline and the no-lost-wake-up
//! argument, and [`SessionService`] for the per-method cost table and the documented
//! differences from pomelo.
//!
//! # Correctness tooling
//!
//! Every concurrency primitive comes from one shim (`src/sync.rs`) that `--cfg gatehouse_loom`
//! swaps for loom's instrumented types; `loom-tests/` model-checks the inbox, the registry and
//! the index. `tests/alloc_count.rs` asserts zero allocations on the hot paths.
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `tls` | TLS-TCP and WSS on the connector's port, next to plain TCP and WebSocket (rustls with *ring*; `ServerBuilder::tls`) |
//! | `prometheus` | the Prometheus / OpenMetrics export of the connector's metrics and a minimal admin endpoint (`prometheus-client`) |
//! | `probe` | only the `gatehouse-probe` binary that `bin/callgrind.sh` counts instructions in |
//! | `internals` | **not API, no semver**: fuzz harnesses and test hooks, for `fuzz/`, `loom-tests/` and this repository's own tests (which enable it through a dev-dependency on the crate itself) |
//!
//! All are off by default; a default build compiles no fuzz harness and no test hook.

#![deny(missing_docs, missing_debug_implementations, unsafe_code)]
#![warn(unreachable_pub, rust_2018_idioms)]
#![doc(test(attr(deny(warnings))))]

mod config;
mod conn_table;
mod driver;
mod error;
mod event_queue;
mod events;
mod frame;
// `pub` for `__private` (the accept hand-off's loom model); crate-private otherwise.
#[cfg_attr(not(feature = "internals"), allow(unreachable_pub))]
mod handoff;
mod id;
mod inbox;
mod index;
mod panic;
mod registry;
mod service;
mod session;
mod sessions;
mod sync;
mod transport;
mod uid;

pub mod implementation;
pub mod protocol;
#[cfg(not(gatehouse_loom))]
pub mod server;
mod ws;
// The deterministic generator of the tests, fuzz harnesses and benches (`__private::XorShift`).
#[cfg(feature = "internals")]
mod xorshift;

// Not API (feature `internals`): fuzz harnesses and test hooks for fuzz/, loom-tests/ and this
// repository's tests. A user's build compiles none of it.
#[cfg(feature = "internals")]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod __private;
#[cfg(all(feature = "internals", not(gatehouse_loom)))]
#[doc(hidden)]
pub mod fuzzing;

// The public interface is:
pub use config::{ConfigError, SessionConfig};
pub use conn_table::ConnTable;
pub use driver::{MemoryConn, MemoryDriver};
pub use error::{
    BindError, BroadcastError, CreateError, SendError, SendErrorKind, UidSendError, UnbindError,
    UnknownSession,
};
pub use events::{CloseReason, SessionListener};
pub use frame::Frame;
pub use id::{Sid, MAX_SESSIONS_PER_SHARD, MAX_SHARDS};
pub use inbox::{Command, Drained, Inbox, Wake};
pub use index::SidList;
pub use service::SessionService;
pub use session::{SessionInfo, SessionSnapshot, SessionState, Settings};
pub use sessions::{BatchError, PushBody, PushError, PushReport, Sessions, UidMiss, UidsReport};
pub use transport::{apply_commands, Applied, CommandTarget};
pub use uid::Uid;
