//! Readings from /proc (and `getconf`): the machine header, memory, limits, port ranges.
//!
//! Every reading is an `Option`: a missing or unreadable file (another kernel, a container)
//! means "no figure", never a failure of the run.

use std::process::{Command, Stdio};

/// A whole small /proc file, or `None`.
pub fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The CPU's model name, from /proc/cpuinfo.
pub fn cpu_model() -> String {
    read("/proc/cpuinfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// Clock ticks per second for `/proc/<pid>/stat`, from `getconf CLK_TCK`; 100 if that fails.
pub fn clk_tck() -> (u64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .map_or((100, false), |t| (t, true))
}

/// Machine-wide (busy, total) jiffies from /proc/stat.
pub fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = read("/proc/stat")?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is already in user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// VmRSS of a process in bytes.
pub fn vm_rss(pid: u32) -> Option<u64> {
    read(&format!("/proc/{pid}/status"))?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

/// (soft, hard) RLIMIT_NOFILE from /proc/self/limits; `None` = unlimited.
pub fn nofile_limits() -> Option<(Option<u64>, Option<u64>)> {
    let limits = read("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let parse = |s: &str| s.parse::<u64>().ok();
    Some((parse(it.next()?), parse(it.next()?)))
}

/// The ephemeral port range (`ip_local_port_range`), inclusive.
pub fn port_range() -> Option<(u64, u64)> {
    let s = read("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

/// Whether this process may raise its hard limits (CAP_SYS_RESOURCE, bit 24 of CapEff: root).
pub fn may_raise_hard_limits() -> bool {
    read("/proc/self/status")
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?.to_string();
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}
