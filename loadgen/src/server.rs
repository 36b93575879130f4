//! The server being measured: where it listens, and its pid when known (CPU, RSS).

use crate::cpu::{cpu_sample, cpu_used_ns, CpuSample};
use std::net::SocketAddr;
use std::time::Duration;

/// The server being measured: where, and its pid when known.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its pid, when known.
    pub pid: Option<u32>,
    /// Clock ticks per second (see [`crate::cpu`]).
    pub tck: u64,
}

impl Server {
    /// Its CPU now.
    pub fn cpu(&self) -> Option<CpuSample> {
        cpu_sample(&self.pid?.to_string())
    }

    /// Server CPU ns between `a` and now.
    pub fn cpu_since(&self, a: &Option<CpuSample>) -> Option<(u64, Duration)> {
        let a = a.as_ref()?;
        let b = self.cpu()?;
        Some((cpu_used_ns(a, &b, self.tck), b.at.duration_since(a.at)))
    }
}
