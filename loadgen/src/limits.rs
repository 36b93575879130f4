//! The limits a large run meets before the server does: open files and ephemeral ports.

use crate::cli::Opts;
use crate::proc::{may_raise_hard_limits, nofile_limits, port_range, read};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, ExitCode};

/// The source addresses the clients bind to, 127.0.0.1..127.0.0.K, when one address's ephemeral
/// ports (`ip_local_port_range`, ~28k by default) cannot hold `--clients`; empty when the kernel's
/// own choice will do. Linux answers on all of 127.0.0.0/8, and each source address has its own
/// port range, so K addresses hold about K × 28k connections to one server port.
pub fn source_addrs(opts: &Opts) -> Result<Vec<IpAddr>, String> {
    let needed = opts.clients as u64 + 100;
    let per_source = port_range().map(|(lo, hi)| hi.saturating_sub(lo) + 1);
    let k = match (opts.source_addrs, per_source) {
        (Some(k), _) => k as u64,
        (None, Some(p)) if p > 0 => needed.div_ceil(p),
        (None, _) => 1,
    };
    let range_txt = || port_range().map_or("?".into(), |(lo, hi)| format!("{lo}-{hi}"));
    if let Some(p) = per_source {
        if needed > p * k {
            return Err(format!(
                "{} clients need as many local ports, but {k} source address(es) × \
                 ip_local_port_range {} hold {}; use --source-addrs {} (IPv4 loopback only), \
                 widen the range (sysctl net.ipv4.ip_local_port_range) or use fewer --clients",
                opts.clients,
                range_txt(),
                p * k,
                needed.div_ceil(p).max(2)
            ));
        }
    }
    if k <= 1 {
        return Ok(Vec::new());
    }
    let server_ip = opts
        .addr
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    if !server_ip.is_ipv4() {
        return Err(format!(
            "{k} source addresses are needed (127.0.0.1..127.0.0.{k}), but the server \
             address {server_ip} is not IPv4"
        ));
    }
    if k > 254 {
        return Err(format!(
            "{} clients would need {k} source addresses; 127.0.0.1..127.0.0.254 is the limit",
            opts.clients
        ));
    }
    eprintln!(
        "loadgen: {} clients over {k} source addresses 127.0.0.1..127.0.0.{k} (ports {} each)",
        opts.clients,
        range_txt()
    );
    Ok((1..=k as u8)
        .map(|i| IpAddr::from([127, 0, 0, i]))
        .collect())
}

/// Set in the re-run process, so it does not try again.
const REEXEC_ENV: &str = "GATEHOUSE_LOADGEN_NOFILE";

/// files. Without libc (and without `unsafe`) setrlimit is out of reach, so when the soft limit
/// is too low but the hard one allows it — or the hard one is too low but this process may
/// raise it (root, up to `fs.nr_open`) — the load generator re-runs itself under
/// `sh -c 'ulimit -n …'`. Returns `Some(exit code)` when it did.
pub fn ensure_fd_limit(needed: u64) -> Result<Option<ExitCode>, String> {
    let Some((soft, hard)) = nofile_limits() else {
        eprintln!("loadgen: cannot read /proc/self/limits; assuming the open-file limit is enough");
        return Ok(None);
    };
    if soft.is_none_or(|s| s >= needed) {
        return Ok(None);
    }
    let soft = soft.unwrap_or(u64::MAX);
    let hard_ok = hard.is_none_or(|h| h >= needed);
    let nr_open = read("/proc/sys/fs/nr_open").and_then(|s| s.trim().parse::<u64>().ok());
    let raise_hard = !hard_ok && may_raise_hard_limits() && nr_open.is_none_or(|n| n >= needed);
    if (!hard_ok && !raise_hard) || std::env::var_os(REEXEC_ENV).is_some() {
        let hard_txt = hard.map_or("unlimited".to_string(), |h| h.to_string());
        return Err(format!(
            "{needed} file descriptors needed (clients + 100) but RLIMIT_NOFILE is {soft} \
             (hard {hard_txt}): run `ulimit -n {needed}` first (raising the hard limit needs \
             root, e.g. /etc/security/limits.conf), or use fewer --clients"
        ));
    }
    // `ulimit -n` sets the soft and the hard limit (dash and bash alike).
    let target = if raise_hard {
        needed
    } else {
        hard.unwrap_or(needed.max(1 << 16))
    };
    eprintln!(
        "loadgen: raising the open-file limit from {soft} to {target} (re-running under `ulimit -n {target}`)"
    );
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {target} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .status()
        .map_err(|e| format!("re-running under sh: {e}"))?;
    Ok(Some(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8,
    )))
}
