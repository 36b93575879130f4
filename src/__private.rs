//! Internals for gatehouse's own test crates (`loom-tests/`, `fuzz/`, `tests/`).
//!
//! **Not part of the public API and outside semver**: anything here may change or vanish in
//! any release.
