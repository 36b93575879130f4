//! gatehouse-cluster: several gatehouse frontends acting as one on Redis.
//!
//! (Under construction in this commit: module skeleton only.)

pub mod directory;
pub mod frame;
pub mod reliable;
