//! Internals for gatehouse's own test crates (`loom-tests/`, `fuzz/`, `tests/`).
//!
//! **Not part of the public API and outside semver**: anything here may change or vanish in
//! any release.

// ws
/// The WebSocket codec (sniffing, upgrade, frames) and its fuzz entry points.
#[doc(hidden)]
pub use crate::ws::fuzzing as ws;
