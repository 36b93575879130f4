//! gatehouse-cluster: several gatehouse frontends acting as one on Redis.
//!
//! (Crate documentation: see the end of this work; modules below.)

mod call;
mod cluster;
mod config;
pub mod directory;
mod exec;
pub mod frame;
mod frontend;
mod node;
pub mod reliable;
mod report;
mod rx;
mod stats;
mod sync;
mod ticket;
mod tx;

// Hooks for loom-tests/ only (`--cfg gatehouse_loom`): not public API, outside semver.
#[cfg(gatehouse_loom)]
#[doc(hidden)]
pub mod __loom;

pub use cluster::{encode_push, Cluster};
pub use config::ClusterConfig;
pub use directory::ClaimMode;
pub use frontend::FrontendLink;
pub use report::{ClusterError, Outcome, PushReport, RemoteError, RemoteSession, SessionRef};
pub use stats::ClusterStats;
pub use ticket::PushTicket;
