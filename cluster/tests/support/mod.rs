//! Shared helpers for the cluster integration tests.

pub mod redis_server;
