//! gatehouse-cluster: several gatehouse frontends, and any number of backend processes, acting as
//! one system over Redis (or Valkey).
//!
//! A game that outgrows one machine runs several frontends (pinus: `connector-1…N`) beside
//! processes without sockets (game logic, chat, matchmaking). This crate gives all of them one
//! handle, [`Cluster`], to push to a user wherever they are connected, kick them, bind and inspect
//! remote sessions — and it reports the outcome of every target, because the point of this layer
//! is that **nothing accepted is lost silently**: not across a Redis restart, not when a
//! subscriber's bytes vanish, not when a frontend dies.
//!
//! # Using it
//!
//! A frontend: build the gatehouse server with a [`FrontendLink`] as its listener, then attach.
//! A backend: connect. Both get the same handle.
//!
//! ```no_run
//! use gatehouse::server::{Handler, Request, Response, Server};
//! use gatehouse_cluster::{encode_push, Cluster, ClusterConfig, FrontendLink, Outcome};
//! use std::sync::Arc;
//!
//! struct Game;
//! impl Handler for Game {
//!     fn request(&self, req: Request<'_>) -> Response {
//!         let uid = req.json()["uid"].as_str().unwrap_or_default().to_string();
//!         match req.service().bind(req.sid(), &uid) {
//!             Ok(()) => Response::Json(serde_json::json!({"code": 200})),
//!             Err(e) => Response::Json(serde_json::json!({"code": 500, "error": e.to_string()})),
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // On each frontend process:
//! let link = FrontendLink::new();
//! let server = Server::builder().listener(link.clone()).start(Arc::new(Game))?;
//! let config = ClusterConfig::new("redis://gate:password@127.0.0.1:6379/0", "connector-1");
//! let frontend = Cluster::start_frontend(config, link, server.service().clone())?;
//!
//! // On a backend process (or from any thread of a frontend: `frontend` works the same):
//! let backend = Cluster::connect(ClusterConfig::new("redis://gate:password@127.0.0.1:6379/0", "chat-1"))?;
//! let package = encode_push("onChat", br#"{"text":"hi"}"#)?;
//! let report = backend.push_by_uids(&["alice", "bob"], package)?.wait();
//! for (uid, frontend, outcome) in &report.entries {
//!     if *outcome != Outcome::Delivered {
//!         eprintln!("{uid} on {frontend:?}: {outcome}");
//!     }
//! }
//! backend.kick_by_uid("mallory", Some("banned"))?;
//! # let _ = frontend;
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! **Directory** ([`directory`]): a uid → (frontend, epoch) map in Redis hashes, written by each
//! frontend from its own session events (first bound session writes, last one removes; the
//! local service is the truth and each write follows what it says at that moment, so events in
//! any order end right). Each frontend holds a lease (`<prefix>:fe:<id>` = its epoch, 10 s,
//! renewed every 2 s); an entry counts only while its frontend's lease carries the entry's
//! epoch, routing deletes stale entries it meets, and every node sweeps expired frontends'
//! entries in chunks (the reaper). A process start is a new random epoch, so a restarted
//! frontend never inherits, nor is reaped with, its previous incarnation's entries, and a zombie
//! cannot renew its successor's lease. All multi-key updates are Lua scripts.
//!
//! **Bus**: one channel per node (`<prefix>:to:<id>`), no per-user subscriptions. A call is
//! routed (one script for every uid of a bridge turn, or the short route cache), the requests
//! for one frontend are packed into one frame (batching), and frames are published in one
//! pipeline. Frames ([`frame`]) are binary, versioned, length-checked, tagged with the cluster's
//! prefix, and fuzzed; bad ones are counted and dropped.
//!
//! **Reliability** ([`reliable`]): each (sender, frontend incarnation) stream numbers its
//! frames; the frontend executes a frame only if it is the next one (duplicates are answered
//! again from a reply cache, gaps dropped), and acknowledges cumulatively with the per-target
//! replies. The sender keeps unacknowledged frames (bounded: more is backpressure) and resends
//! them go-back-N (50 ms doubling to 1 s, and at once after a reconnect) until the call's
//! deadline (5 s), after which the outcome is `Unconfirmed` — maybe executed, never twice. A
//! `PUBLISH` that found no subscriber for longer than 250 ms means the frontend is down.
//!
//! **Threads** (per node, none of them an I/O thread of the server): `gh-bus-tx` owns the
//! command connection and every sender-side structure; `gh-bus-rx` owns the subscription and
//! the dedup state and executes requests through the frontend's thread-safe [`gatehouse::Sessions`]
//! (a push lands in the owning I/O thread's inbox, a kick queues the KICK package then the close,
//! exactly as a local call); `gh-bus-ack` publishes coalesced acknowledgements. The server's I/O
//! threads only `try_send` session events into a bounded queue (full: a resync is scheduled
//! instead). Shared between threads are bounded crossbeam channels, each call's ticket
//! (a mutex and a condvar) and the single-session fences; the last two have loom models in
//! `loom-tests/`.
//!
//! **Engine seam** ([`backplane`]): everything above — frames, sequence numbers, acks,
//! retransmission, dedup, tickets, claims' fences, the route cache — is engine-independent. The
//! engine provides a command link (publish with receiver counts, atomic directory operations),
//! a subscription and channel names; [`redis_backplane`] is the one shipped, and
//! [`Cluster::connect_on`] / [`Cluster::start_frontend_on`] take another. The test
//! `tests/backplane_seam.rs` runs the whole cluster on an in-memory engine that loses
//! publishes, and every push still arrives once.
//!
//! **Single session** ([`ClusterConfig::single_session`]): each bind claims the uid with one
//! atomic script that draws a generation from a cluster-wide counter; `Kick` removes the other
//! holders and tells them to kick sessions with an older claim, `Refuse` keeps the first holder.
//! Whatever order claims and kicks reach a frontend, only the session with the highest
//! generation survives (`frontend.rs`, `Claims`).
//!
//! # Limits and defaults
//!
//! All in [`ClusterConfig`]: lease 10 s, heartbeat 2 s, sweep 2 s, call deadline 5 s, bridge
//! queue 65,536 calls, 4,096 unacknowledged frames (64 MiB) per destination, frames up to 1 MiB
//! (batches of 64 KiB), route cache 1 s. One Redis (standalone or a primary with replicas); not
//! Redis Cluster or Sentinel. Whoever can publish on that Redis can push to any user: protect it
//! with an ACL user and keep it off public networks.

mod acks;
pub mod backplane;
mod call;
mod cluster;
mod config;
pub mod directory;
mod exec;
pub mod frame;
mod frontend;
mod node;
pub mod redis_backplane;
pub mod reliable;
mod report;
mod routes;
mod rx;
mod stats;
mod sync;
mod ticket;
mod tx;

// Hooks for loom-tests/ only (`--cfg gatehouse_loom`): not public API, outside semver.
#[cfg(gatehouse_loom)]
#[doc(hidden)]
pub mod __loom;

pub use backplane::{Backplane, BusError};
pub use cluster::{encode_push, Cluster};
pub use config::ClusterConfig;
pub use directory::ClaimMode;
pub use frontend::FrontendLink;
pub use report::{ClusterError, Outcome, PushReport, RemoteError, RemoteSession, SessionRef};
pub use stats::ClusterStats;
pub use ticket::PushTicket;
