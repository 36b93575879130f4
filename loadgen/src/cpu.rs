//! CPU time of a process, from /proc: how the server's (and the load generator's own) CPU per
//! operation is measured.
//!
//! Two sources, cross-checked:
//!
//! - `/proc/<pid>/task/*/schedstat`: the on-CPU nanoseconds of every live thread. Exact, but a
//!   thread that exits between two readings takes its time with it. [`CpuWatch`] therefore
//!   samples every thread every 2 ms while the main thread waits for a scenario, so the gate's
//!   short-lived blast threads are counted up to their last sample.
//! - `/proc/<pid>/stat` utime+stime: clock ticks (`getconf CLK_TCK`, 100 assumed if that
//!   fails) that include exited threads, but only to a tick at each end. It is used instead
//!   when it is clearly higher (by more than 3 ticks).

use crate::proc::read;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One reading of a process's CPU time: utime+stime in ticks (counts exited threads too) and
/// every live thread's on-CPU nanoseconds from schedstat.
#[derive(Clone, Debug)]
pub struct CpuSample {
    pub ticks: u64,
    pub tasks: Vec<(u32, u64)>,
    pub at: Instant,
}

/// One reading of process `pid` ("self" for this one), or `None` when it is gone.
pub fn cpu_sample(pid: &str) -> Option<CpuSample> {
    let stat = read(&format!("/proc/{pid}/stat"))?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime and stime are fields 14 and 15.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(CpuSample {
        ticks,
        tasks: task_times(pid),
        at: Instant::now(),
    })
}

/// Every live thread's on-CPU nanoseconds (schedstat), sorted by tid.
pub fn task_times(pid: &str) -> Vec<(u32, u64)> {
    let mut tasks = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for entry in dir.flatten() {
            let Some(tid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(ns) = read(&format!("/proc/{pid}/task/{tid}/schedstat"))
                .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            {
                tasks.push((tid, ns));
            }
        }
    }
    tasks.sort_unstable();
    tasks
}

/// Follows a process's threads through a scenario. The main thread samples them every few
/// milliseconds while it waits, so a thread that exits in between (the gate's blast threads)
/// still counts up to its last sample.
pub struct CpuWatch {
    pid: String,
    start: CpuSample,
    last: BTreeMap<u32, u64>,
    tck: u64,
    next_poke: Instant,
}

impl CpuWatch {
    pub fn new(pid: Option<u32>, tck: u64) -> Option<CpuWatch> {
        let pid = pid?.to_string();
        let start = cpu_sample(&pid)?;
        Some(CpuWatch {
            last: start.tasks.iter().copied().collect(),
            pid,
            start,
            tck,
            next_poke: Instant::now(),
        })
    }

    pub fn poke(&mut self) {
        let now = Instant::now();
        if now >= self.next_poke {
            self.next_poke = now + Duration::from_millis(2);
            self.last.extend(task_times(&self.pid));
        }
    }

    /// CPU nanoseconds used since `new`, and the wall time.
    pub fn finish(mut self) -> Option<(u64, Duration)> {
        let end = cpu_sample(&self.pid)?;
        self.last.extend(end.tasks.iter().copied());
        let before: BTreeMap<u32, u64> = self.start.tasks.iter().copied().collect();
        let fine: u64 = self
            .last
            .iter()
            .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
            .sum();
        let coarse = end.ticks.saturating_sub(self.start.ticks) * 1_000_000_000 / self.tck;
        let slack = 3 * 1_000_000_000 / self.tck;
        let ns = if coarse > fine + slack { coarse } else { fine };
        Some((ns, end.at.duration_since(self.start.at)))
    }
}

/// CPU nanoseconds used between two samples (see the module docs for the method).
pub fn cpu_used_ns(a: &CpuSample, b: &CpuSample, tck: u64) -> u64 {
    let coarse = b.ticks.saturating_sub(a.ticks) * 1_000_000_000 / tck;
    if b.tasks.is_empty() {
        return coarse;
    }
    let mut fine = 0u64;
    for &(tid, ns) in &b.tasks {
        let before = a
            .tasks
            .binary_search_by_key(&tid, |&(t, _)| t)
            .map_or(0, |i| a.tasks[i].1);
        fine += ns.saturating_sub(before);
    }
    // Threads that exited during the interval are missing from `fine`; the tick counts keep
    // them. Sampling error of the ticks is about one tick at each end.
    let slack = 3 * 1_000_000_000 / tck;
    if coarse > fine + slack {
        coarse
    } else {
        fine
    }
}

/// This process's own CPU, now.
pub fn self_cpu() -> Option<CpuSample> {
    cpu_sample("self")
}

pub fn self_cpu_since(a: &Option<CpuSample>, tck: u64) -> Option<(u64, Duration)> {
    let a = a.as_ref()?;
    let b = self_cpu()?;
    Some((cpu_used_ns(a, &b, tck), b.at.duration_since(a.at)))
}
