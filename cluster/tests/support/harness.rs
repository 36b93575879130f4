//! The multi-process harness's modules (fault proxy, pomelo client, child processes), for test
//! crates that also declare `mod support;` (these modules use `crate::support::redis_server`).
//! Declared here with `#[path]` so `support/mod.rs` stays untouched; a test crate includes them
//! with `#[path = "support/harness.rs"] mod harness;`.

#[path = "pomelo.rs"]
pub mod pomelo;
#[path = "procs.rs"]
pub mod procs;
#[path = "proxy.rs"]
pub mod proxy;
