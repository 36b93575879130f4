//! The load generator: a pomelo client over TCP (mio, non-blocking, a few client threads) that
//! drives the example gate (or any server with the same routes) through six bounded scenarios
//! and prints one table.
//!
//! ```sh
//! # the main job: builds and starts the gate itself, runs everything, stops the gate
//! cargo run --release --example loadgen -- --spawn-gate
//! # against a gate that is already running (CPU and RSS figures need its pid)
//! cargo run --release --example loadgen -- --addr 127.0.0.1:3010 --server-pid 12345
//! ```
//!
//! Every client connection does what a pomelo client does: HANDSHAKE
//! (`{"sys":{"type":"loadgen","version":"0.1.0"},"user":{}}`) → the server's reply (code 200,
//! heartbeat H) → HANDSHAKE_ACK → the server's first HEARTBEAT → request
//! `connector.entryHandler.entry {"uid":"u<i>"}` → bound. From then on it sends a HEARTBEAT
//! every H seconds, so runs of any length never hit the server's heartbeat timeout. One extra
//! unbound "control" connection asks for `stats` and starts the blasts (it receives no pushes).
//!
//! Scenarios (in this order; each prints rows of `scenario | figure | value | unit`):
//!
//! | scenario | what | figures |
//! | --- | --- | --- |
//! | setup | `--clients` connections connect, handshake and bind (at most `--connect-concurrency` in flight) | sessions/s, setup latency, server CPU per setup |
//! | memory | right after setup: server RSS (VmRSS) and the `stats` route's rss, before vs. with the sessions | bytes per session |
//! | blast | one `blast {"m":rounds,"size":size}`; every client counts its pushes until all clients × rounds arrived | pushes/s, latency from the request to each push, per-round spread, server CPU per push |
//! | fanout | `--fanouts` blasts of one round, one after the other | per-push delivery latency of a single broadcast |
//! | echo | open loop: `--rate` echo requests/s over `--echo-conns` connections for `--seconds` | RTT p50/p99/p999 |
//! | saturation | closed loop: `--window` echo requests outstanding on each of `--sat-conns` connections for `--seconds` | max req/s, RTT, CPU per request |
//!
//! Server CPU comes from `/proc/<pid>/task/*/schedstat` (on-CPU nanoseconds of every thread,
//! sampled every 2 ms while the main thread waits, so the gate's short-lived blast threads are
//! counted up to their last sample), cross-checked with `/proc/<pid>/stat` utime+stime (clock
//! ticks; `getconf CLK_TCK`, 100 assumed if that fails), which is used when it is clearly
//! higher. Both need the pid: the spawned gate's, or `--server-pid`. The "machine CPU" line
//! splits the whole run's CPU (from /proc/stat) into gate, loadgen and other processes, to show
//! how noisy the figures are.
//!
//! The open-file limit must cover `--clients` + 100 (in both processes; the spawned gate
//! inherits it). Without libc there is no setrlimit, so when the soft limit is too low but the
//! hard one allows it, the load generator re-runs itself under `sh -c 'ulimit -n …'`; otherwise
//! it stops and says which `ulimit -n` to run.
//!
//! Exit status: 0 when every scenario ran (warnings such as a few failed connections are
//! printed), 1 when one failed outright (no connection, no push, no response, server died),
//! 2 for bad arguments.

#![forbid(unsafe_code)]

use gatehouse::protocol::{
    decode_message, decode_package, encode_data, encode_package, Message, MessageType, PackageType,
    Route, HANDSHAKE_ACK_PACKAGE, HEARTBEAT_PACKAGE, MAX_BODY_LEN,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use serde_json::{json, Value};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// === settings ================================================================================

pub(crate) const USAGE: &str = "\
usage: loadgen [--spawn-gate | --addr IP:PORT [--server-pid PID]] [options]

  --spawn-gate            build (cargo build --release --example gate) and start the gate on a
                          free loopback port, run everything, stop it
  --addr IP:PORT          the server to drive (loopback only; default 127.0.0.1:3010); with
                          --spawn-gate, the gate's listen address (default 127.0.0.1:0)
  --server-pid PID        the server's pid, for CPU and RSS figures (automatic with --spawn-gate)
  --gate-bin PATH         with --spawn-gate: use this gate binary, do not build
  --threads N             the spawned gate's I/O threads (default 2)
  --heartbeat SECS        the spawned gate's heartbeat interval (default: the gate's, 30)
  --max-connections N     the spawned gate's connection limit (default: the gate's, 100000,
                          raised to clients + 100 when --clients needs more)
  --client-threads N      loadgen threads holding the connections (default 1 on <= 2 cores, else 2)
  --clients N             bound client connections (default 1000)
  --source-addrs K        spread the clients over K source addresses 127.0.0.1..127.0.0.K
                          (each has its own ephemeral port range; default: as many as
                          --clients needs, 1 = let the kernel pick)
  --hold SECS             the hold scenario's length (default 2.5 heartbeat intervals, or 10 s
                          without heartbeats)
  --connect-concurrency N handshakes in flight at once during setup (default 64: below the
                          gate's listen backlog of 128, mio's default, so no SYN is dropped)
  --rounds M              blast rounds (default 100): clients x M pushes
  --size S                blast payload bytes (default 16)
  --blast-runs B          blasts in a row; the median one is reported (default 3)
  --fanouts K             single-round blasts for the fan-out latency (default 20)
  --rate R                echo requests/s in the latency scenario (default 1000)
  --echo-conns C          connections sharing that rate (default 100)
  --seconds T             duration of the echo and saturation scenarios (default 5)
  --sat-conns C           connections in the saturation scenario (default 200)
  --window W              requests outstanding per connection when saturating (default 8)
  --scenarios LIST        comma-separated subset of memory,hold,blast,fanout,echo,saturation
                          (setup always runs; default: all but hold)
  --json                  print one JSON object instead of the table (progress goes to stderr)
  -h, --help              this text
";

/// What runs by default.
const ALL_SCENARIOS: [&str; 5] = ["memory", "blast", "fanout", "echo", "saturation"];
/// Every scenario `--scenarios` accepts: the default ones, plus `hold` (long: it waits out
/// several heartbeat intervals).
const KNOWN_SCENARIOS: [&str; 6] = ["memory", "hold", "blast", "fanout", "echo", "saturation"];

#[derive(Clone, Debug)]
pub(crate) struct Opts {
    spawn_gate: bool,
    addr: Option<SocketAddr>,
    server_pid: Option<u32>,
    gate_bin: Option<PathBuf>,
    threads: usize,
    heartbeat: Option<u64>,
    max_connections: Option<usize>,
    source_addrs: Option<usize>,
    hold: Option<f64>,
    /// Derived, not a flag: the source addresses clients bind to (empty: the kernel picks).
    sources: Vec<IpAddr>,
    client_threads: usize,
    clients: usize,
    connect_concurrency: usize,
    rounds: u64,
    size: usize,
    blast_runs: usize,
    fanouts: usize,
    rate: u64,
    echo_conns: usize,
    seconds: f64,
    sat_conns: usize,
    window: usize,
    scenarios: Vec<String>,
    json: bool,
}

impl Opts {
    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Opts {
        spawn_gate: false,
        addr: None,
        server_pid: None,
        gate_bin: None,
        threads: 2,
        heartbeat: None,
        max_connections: None,
        source_addrs: None,
        hold: None,
        sources: Vec::new(),
        client_threads: if nproc <= 2 { 1 } else { 2 },
        clients: 1000,
        connect_concurrency: 64,
        rounds: 100,
        size: 16,
        blast_runs: 3,
        fanouts: 20,
        rate: 1000,
        echo_conns: 100,
        seconds: 5.0,
        sat_conns: 200,
        window: 8,
        scenarios: ALL_SCENARIOS.iter().map(|s| s.to_string()).collect(),
        json: false,
    };
    let mut i = 0;
    while i < args.len() {
        let (flag, inline) = match args[i].split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (args[i].clone(), None),
        };
        i += 1;
        let mut value = |name: &str| -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| format!("{name}: missing value"))?;
            i += 1;
            Ok(v)
        };
        fn num<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{name}: expected a number, got {v:?}"))
        }
        // A flag without a value must not take one silently (`--json=no` would mean `--json`).
        let switch = matches!(flag.as_str(), "-h" | "--help" | "--spawn-gate" | "--json");
        if let (true, Some(v)) = (switch, &inline) {
            return Err(format!("{flag} takes no value (got {flag}={v})"));
        }
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--spawn-gate" => o.spawn_gate = true,
            "--json" => o.json = true,
            "--addr" => {
                let v = value("--addr")?;
                o.addr = Some(
                    v.parse()
                        .map_err(|_| format!("--addr: expected IP:PORT, got {v:?}"))?,
                );
            }
            "--server-pid" => o.server_pid = Some(num("--server-pid", value("--server-pid")?)?),
            "--gate-bin" => o.gate_bin = Some(PathBuf::from(value("--gate-bin")?)),
            "--threads" => o.threads = num("--threads", value("--threads")?)?,
            "--heartbeat" => o.heartbeat = Some(num("--heartbeat", value("--heartbeat")?)?),
            "--max-connections" => {
                o.max_connections = Some(num("--max-connections", value("--max-connections")?)?)
            }
            "--source-addrs" => {
                o.source_addrs = Some(num("--source-addrs", value("--source-addrs")?)?)
            }
            "--hold" => o.hold = Some(num("--hold", value("--hold")?)?),
            "--client-threads" => {
                o.client_threads = num("--client-threads", value("--client-threads")?)?
            }
            "--clients" => o.clients = num("--clients", value("--clients")?)?,
            "--connect-concurrency" => {
                o.connect_concurrency =
                    num("--connect-concurrency", value("--connect-concurrency")?)?
            }
            "--rounds" => o.rounds = num("--rounds", value("--rounds")?)?,
            "--size" => o.size = num("--size", value("--size")?)?,
            "--blast-runs" => o.blast_runs = num("--blast-runs", value("--blast-runs")?)?,
            "--fanouts" => o.fanouts = num("--fanouts", value("--fanouts")?)?,
            "--rate" => o.rate = num("--rate", value("--rate")?)?,
            "--echo-conns" => o.echo_conns = num("--echo-conns", value("--echo-conns")?)?,
            "--seconds" => o.seconds = num("--seconds", value("--seconds")?)?,
            "--sat-conns" => o.sat_conns = num("--sat-conns", value("--sat-conns")?)?,
            "--window" => o.window = num("--window", value("--window")?)?,
            "--scenarios" => {
                let v = value("--scenarios")?;
                let list: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && *s != "setup")
                    .map(str::to_string)
                    .collect();
                if let Some(bad) = list.iter().find(|s| !KNOWN_SCENARIOS.contains(&s.as_str())) {
                    return Err(format!(
                        "--scenarios: unknown scenario {bad:?} (known: setup,{})",
                        KNOWN_SCENARIOS.join(",")
                    ));
                }
                o.scenarios = list;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    if !(1..=64).contains(&o.client_threads) {
        return Err("--client-threads must be 1..=64".into());
    }
    if !(1..=256).contains(&o.threads) {
        return Err("--threads must be 1..=256".into());
    }
    if !(o.seconds.is_finite() && o.seconds > 0.0 && o.seconds <= 3600.0) {
        return Err("--seconds must be in (0, 3600]".into());
    }
    if o.rounds == 0 || o.rounds > 1_000_000 {
        return Err("--rounds must be 1..=1000000 (the gate caps it there)".into());
    }
    if o.size > 1 << 20 {
        return Err("--size must be at most 1048576 (the gate caps it there)".into());
    }
    if o.rate == 0 || o.rate > 1_000_000 {
        return Err("--rate must be 1..=1000000".into());
    }
    if o.window == 0 || o.window > 4096 {
        return Err("--window must be 1..=4096".into());
    }
    if o.source_addrs.is_some_and(|k| !(1..=254).contains(&k)) {
        return Err("--source-addrs must be 1..=254 (127.0.0.1..127.0.0.254)".into());
    }
    if o.hold
        .is_some_and(|h| !(h.is_finite() && h > 0.0 && h <= 86_400.0))
    {
        return Err("--hold must be in (0, 86400] seconds".into());
    }
    if o.max_connections == Some(0) {
        return Err("--max-connections must be at least 1".into());
    }
    o.connect_concurrency = o.connect_concurrency.max(1);
    o.blast_runs = o.blast_runs.clamp(1, 100);
    o.echo_conns = o.echo_conns.max(1);
    o.sat_conns = o.sat_conns.max(1);
    if let Some(addr) = o.addr {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--addr {addr}: the load generator only drives loopback addresses (127.0.0.1)"
            ));
        }
    }
    if o.spawn_gate && o.server_pid.is_some() {
        return Err("--server-pid and --spawn-gate exclude each other".into());
    }
    Ok(o)
}

// === /proc: machine, CPU, memory, limits =====================================================

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn cpu_model() -> String {
    read("/proc/cpuinfo")
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// Clock ticks per second for /proc/<pid>/stat, from `getconf CLK_TCK`; 100 if that fails.
fn clk_tck() -> (u64, bool) {
    Command::new("getconf")
        .arg("CLK_TCK")
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .map_or((100, false), |t| (t, true))
}

/// One reading of a process's CPU time: utime+stime in ticks (counts exited threads too) and
/// every live thread's on-CPU nanoseconds from schedstat.
#[derive(Clone, Debug)]
struct CpuSample {
    ticks: u64,
    tasks: Vec<(u32, u64)>,
    at: Instant,
}

fn cpu_sample(pid: &str) -> Option<CpuSample> {
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
fn task_times(pid: &str) -> Vec<(u32, u64)> {
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
struct CpuWatch {
    pid: String,
    start: CpuSample,
    last: BTreeMap<u32, u64>,
    tck: u64,
    next_poke: Instant,
}

impl CpuWatch {
    fn new(pid: Option<u32>, tck: u64) -> Option<CpuWatch> {
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

    fn poke(&mut self) {
        let now = Instant::now();
        if now >= self.next_poke {
            self.next_poke = now + Duration::from_millis(2);
            self.last.extend(task_times(&self.pid));
        }
    }

    /// CPU nanoseconds used since `new`, and the wall time.
    fn finish(mut self) -> Option<(u64, Duration)> {
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
fn cpu_used_ns(a: &CpuSample, b: &CpuSample, tck: u64) -> u64 {
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

/// Machine-wide (busy, total) jiffies from /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
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
fn vm_rss(pid: u32) -> Option<u64> {
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
fn nofile_limits() -> Option<(Option<u64>, Option<u64>)> {
    let limits = read("/proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let parse = |s: &str| s.parse::<u64>().ok();
    Some((parse(it.next()?), parse(it.next()?)))
}

/// The source addresses the clients bind to, 127.0.0.1..127.0.0.K, when one address's ephemeral
/// ports (`ip_local_port_range`, ~28k by default) cannot hold `--clients`; empty when the kernel's
/// own choice will do. Linux answers on all of 127.0.0.0/8, and each source address has its own
/// port range, so K addresses hold about K × 28k connections to one server port.
fn source_addrs(opts: &Opts) -> Result<Vec<IpAddr>, String> {
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
                "{} clients need as many local ports, but {k} source address(es) ×                  ip_local_port_range {} hold {}; use --source-addrs {} (IPv4 loopback only),                  widen the range (sysctl net.ipv4.ip_local_port_range) or use fewer --clients",
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
            "{k} source addresses are needed (127.0.0.1..127.0.0.{k}), but the server              address {server_ip} is not IPv4"
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

fn port_range() -> Option<(u64, u64)> {
    let s = read("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((it.next()??, it.next()??))
}

const REEXEC_ENV: &str = "GATEHOUSE_LOADGEN_NOFILE";

/// Whether this process may raise its hard limits (CAP_SYS_RESOURCE, bit 24 of CapEff: root).
fn may_raise_hard_limits() -> bool {
    read("/proc/self/status")
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("CapEff:"))?.to_string();
            u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// Makes sure this process (and the gate it spawns, which inherits the limit) may open enough
/// files. Without libc (and without `unsafe`) setrlimit is out of reach, so when the soft limit
/// is too low but the hard one allows it — or the hard one is too low but this process may
/// raise it (root, up to `fs.nr_open`) — the load generator re-runs itself under
/// `sh -c 'ulimit -n …'`. Returns `Some(exit code)` when it did.
fn ensure_fd_limit(needed: u64) -> Result<Option<ExitCode>, String> {
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

// === the spawned gate ========================================================================

/// The gate process the load generator started; killed (and reaped) on drop, so every exit
/// path, including errors and panics, stops it.
struct GateProc {
    child: Child,
    pid: u32,
}

impl GateProc {
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn stop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for GateProc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_child(child: &mut Child, limit: Duration, what: &str) -> Result<(), String> {
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{what} failed: {status}")),
            Ok(None) if Instant::now() >= until => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what} did not finish within {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

fn build_gate() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let dir = env!("CARGO_MANIFEST_DIR");
    eprintln!(
        "loadgen: {} build --release --example gate   (in {dir}; the first build takes a few minutes)",
        Path::new(&cargo).display()
    );
    // cargo's stdout goes to our stderr, so `--json` output stays clean.
    let stdout = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--example", "gate"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    wait_child(
        &mut child,
        Duration::from_secs(30 * 60),
        "cargo build --example gate",
    )
}

/// Where `cargo build --release --example gate` put the gate: next to this binary when this is
/// a release example, else `$CARGO_TARGET_DIR` or the crate's `target/`.
fn gate_path() -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let is_release_examples = dir.file_name().is_some_and(|n| n == "examples")
                && dir
                    .parent()
                    .and_then(Path::file_name)
                    .is_some_and(|n| n == "release");
            if is_release_examples {
                return dir.join("gate");
            }
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| manifest.join("target"), |t| manifest.join(t));
    target.join("release").join("examples").join("gate")
}

/// The gate's default connection limit (`ServerBuilder::max_connections`).
const GATE_DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// `--max-connections` for the spawned gate: the user's, or enough for every client plus the
/// control connection when the gate's default is too small; `None` keeps the default.
fn gate_max_connections(opts: &Opts) -> Option<usize> {
    opts.max_connections.or_else(|| {
        let needed = opts.clients + 100;
        (needed > GATE_DEFAULT_MAX_CONNECTIONS).then_some(needed)
    })
}

fn spawn_gate(opts: &Opts, lifetime: Duration) -> Result<(GateProc, SocketAddr), String> {
    let bin = match &opts.gate_bin {
        Some(bin) => bin.clone(),
        None => {
            build_gate()?;
            gate_path()
        }
    };
    if !bin.exists() {
        return Err(format!("gate binary {} not found", bin.display()));
    }
    let listen = opts
        .addr
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let mut cmd = Command::new(&bin);
    cmd.arg("--addr")
        .arg(listen.to_string())
        .arg("--threads")
        .arg(opts.threads.to_string())
        // A safety net: should the load generator be killed, the gate still stops by itself.
        .arg("--seconds")
        .arg(lifetime.as_secs().to_string());
    if let Some(h) = opts.heartbeat {
        cmd.arg("--heartbeat").arg(h.to_string());
    }
    let max_connections = gate_max_connections(opts);
    if let Some(n) = max_connections {
        cmd.arg("--max-connections").arg(n.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!(
        "loadgen: starting {} --addr {listen} --threads {}{}{}",
        bin.display(),
        opts.threads,
        opts.heartbeat
            .map_or(String::new(), |h| format!(" --heartbeat {h}")),
        max_connections.map_or(String::new(), |n| format!(" --max-connections {n}"))
    );
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take();
    let pid = child.id();
    let mut gate = GateProc { child, pid };
    let (tx, rx) = mpsc::channel::<String>();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            let mut first = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match first.take() {
                    Some(tx) => {
                        let _ = tx.send(line);
                    }
                    None => eprintln!("[gate] {line}"),
                }
            }
        });
    }
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err("the gate did not report listening within 20 s".into())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::thread::sleep(Duration::from_millis(100));
            let status = gate.exited().unwrap_or_else(|| "no output".into());
            return Err(format!("the gate exited before listening ({status})"));
        }
    };
    let addr = line
        .strip_prefix("gate: listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse::<SocketAddr>().ok())
        .ok_or_else(|| format!("unexpected first line from the gate: {line:?}"))?;
    eprintln!("loadgen: {line}");
    Ok((gate, addr))
}

// === wire helpers ============================================================================

const HANDSHAKE_BODY: &[u8] = br#"{"sys":{"type":"loadgen","version":"0.1.0"},"user":{}}"#;
const ENTRY: &str = "connector.entryHandler.entry";
const ECHO: &str = "connector.entryHandler.echo";
const BLAST: &str = "connector.entryHandler.blast";
const STATS: &str = "connector.entryHandler.stats";
/// The server's default `max_message_id`.
const MAX_ID: u32 = i32::MAX as u32;

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The unsigned integer after `key` (e.g. `"t":`) in a small JSON body.
fn find_u64(hay: &[u8], key: &[u8]) -> Option<u64> {
    let mut i = find(hay, key)? + key.len();
    while hay.get(i) == Some(&b' ') {
        i += 1;
    }
    let mut v: u64 = 0;
    let start = i;
    while let Some(d) = hay.get(i).filter(|d| d.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    (i > start).then_some(v)
}

fn code_200(body: &[u8]) -> bool {
    find(body, b"\"code\":200").is_some()
}

fn lossy(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if body.len() > 200 {
        s + "…"
    } else {
        s
    }
}

// === the client threads ======================================================================

const WAKER: Token = Token(usize::MAX);
const READ_CHUNK: usize = 64 * 1024;
/// Reads per readiness event before the connection yields to the others for one turn.
const MAX_READS: usize = 32;
const MAX_SAMPLES: usize = 4_000_000;
const SWEEP: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Bound as uid `u<i>`.
    Client(usize),
    /// Unbound; sends `stats` and `blast` for the main thread.
    Control,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Handshaking,
    WaitHeartbeat,
    Binding,
    Ready,
}

struct CtlReply {
    /// When the request was written (ns since the run's epoch).
    sent_ns: u64,
    result: Result<Vec<u8>, String>,
}

struct Conn {
    stream: TcpStream,
    role: Role,
    phase: Phase,
    started: Instant,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    next_id: u32,
    bind_id: u32,
    heartbeat: Option<Duration>,
    next_hb: Option<Instant>,
    outstanding: usize,
    ctl: VecDeque<(u32, u64, mpsc::Sender<CtlReply>)>,
}

impl Conn {
    fn request(&mut self, route: &str, body: &[u8]) -> Result<u32, String> {
        let id = self.next_id;
        self.next_id = if id >= MAX_ID { 1 } else { id + 1 };
        encode_data(
            &Message::request(id, Route::Name(route), body),
            &mut self.wbuf,
        )
        .map_err(|e| format!("encoding {route}: {e}"))?;
        Ok(id)
    }

    fn echo(&mut self, now_ns: u64) -> Result<(), String> {
        let mut body = [0u8; 32];
        let mut cur = io::Cursor::new(&mut body[..]);
        write!(cur, "{{\"t\":{now_ns}}}").map_err(|e| e.to_string())?;
        let n = cur.position() as usize;
        self.request(ECHO, &body[..n])?;
        self.outstanding += 1;
        Ok(())
    }
}

enum Cmd {
    Setup {
        addr: SocketAddr,
        roles: Vec<Role>,
        /// Client `i` binds to `sources[i % len]`; empty: the kernel picks.
        sources: Vec<IpAddr>,
        max_inflight: usize,
        deadline: Instant,
    },
    ArmPushes {
        per_conn: u64,
        rounds: u64,
        deadline: Instant,
    },
    Request {
        route: &'static str,
        body: Vec<u8>,
        reply: mpsc::Sender<CtlReply>,
    },
    Echo {
        conns: usize,
        /// Open loop: one request per interval (round-robin over the conns), first at `first`.
        open: Option<(Duration, Instant)>,
        /// Closed loop: requests outstanding per connection.
        window: usize,
        end: Instant,
        drain: Duration,
    },
    Status,
    Stop,
}

#[derive(Clone, Debug, Default)]
struct Status {
    unexpected_closes: u64,
    stray_pushes: u64,
    /// HEARTBEAT packages received on bound (or binding) connections.
    heartbeats_in: u64,
    heartbeat: Option<u64>,
    notes: BTreeMap<String, u64>,
}

enum Report {
    Setup {
        ok: usize,
        failed: usize,
        first_ns: Option<u64>,
        last_ns: u64,
        latencies: Vec<u64>,
    },
    Armed,
    Pushes {
        target: u64,
        got: u64,
        bad: u64,
        arrivals: Vec<u64>,
        round_first: Vec<u64>,
        round_last: Vec<u64>,
    },
    Echo {
        sent: u64,
        ok: u64,
        ok_in_window: u64,
        bad: u64,
        samples: Vec<u64>,
    },
    Status,
}

struct Envelope {
    worker: usize,
    /// The phase (see [`Pool::begin`]) the report belongs to.
    seq: u64,
    report: Report,
    status: Status,
}

struct SetupTask {
    addr: SocketAddr,
    queue: VecDeque<Role>,
    sources: Vec<IpAddr>,
    inflight: usize,
    max_inflight: usize,
    deadline: Instant,
    ok: usize,
    failed: usize,
    first_ns: Option<u64>,
    last_ns: u64,
    latencies: Vec<u64>,
}

struct PushTask {
    target: u64,
    got: u64,
    bad: u64,
    deadline: Instant,
    arrivals: Vec<u64>,
    round_first: Vec<u64>,
    round_last: Vec<u64>,
}

struct EchoTask {
    conns: Vec<usize>,
    open: Option<(Duration, Instant)>,
    rr: usize,
    end: Instant,
    drain_until: Instant,
    inflight: usize,
    sent: u64,
    ok: u64,
    ok_in_window: u64,
    bad: u64,
    samples: Vec<u64>,
}

enum Task {
    Idle,
    Setup(SetupTask),
    Pushes(PushTask),
    Echo(EchoTask),
}

/// What a package handler changes besides the connection.
struct Shared<'a> {
    task: &'a mut Task,
    control: &'a mut Option<usize>,
    stray_pushes: &'a mut u64,
    heartbeats_in: &'a mut u64,
    heartbeat_seen: &'a mut Option<u64>,
}

struct Worker {
    index: usize,
    epoch: Instant,
    poll: Poll,
    conns: Slab<Conn>,
    control: Option<usize>,
    cmds: mpsc::Receiver<(u64, Cmd)>,
    reports: mpsc::Sender<Envelope>,
    /// The phase of the command being handled, and of the running task.
    seq: u64,
    task_seq: u64,
    task: Task,
    again: Vec<usize>,
    scratch: Vec<u8>,
    unexpected_closes: u64,
    stray_pushes: u64,
    heartbeats_in: u64,
    heartbeat_seen: Option<u64>,
    notes: BTreeMap<String, u64>,
    next_sweep: Instant,
}

fn ns_since(epoch: Instant, t: Instant) -> u64 {
    t.saturating_duration_since(epoch).as_nanos() as u64
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.note(format!("poll failed: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_error();
                self.on_event(event.token().0, readable, writable);
            }
            for key in std::mem::take(&mut self.again) {
                self.on_event(key, true, false);
            }
            loop {
                match self.cmds.try_recv() {
                    Ok((_, Cmd::Stop)) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Ok((seq, cmd)) => {
                        self.seq = seq;
                        self.command(cmd);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            self.tick(now);
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + SWEEP;
            }
        }
    }

    fn timeout(&self, now: Instant) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        let mut until = self.next_sweep.min(now + Duration::from_millis(100));
        match &self.task {
            Task::Idle => {}
            Task::Setup(s) => until = until.min(s.deadline),
            Task::Pushes(p) => until = until.min(p.deadline),
            Task::Echo(e) => {
                until = until.min(if now < e.end { e.end } else { e.drain_until });
                if let Some((_, next)) = e.open {
                    until = until.min(next);
                }
            }
        }
        until.saturating_duration_since(now)
    }

    fn note(&mut self, what: String) {
        *self.notes.entry(what).or_insert(0) += 1;
    }

    fn status(&self) -> Status {
        Status {
            unexpected_closes: self.unexpected_closes,
            heartbeats_in: self.heartbeats_in,
            stray_pushes: self.stray_pushes,
            heartbeat: self.heartbeat_seen,
            notes: self.notes.clone(),
        }
    }

    fn report(&self, seq: u64, report: Report) {
        let _ = self.reports.send(Envelope {
            worker: self.index,
            seq,
            report,
            status: self.status(),
        });
    }

    fn ready_clients(&self) -> impl Iterator<Item = usize> + '_ {
        self.conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Ready && matches!(c.role, Role::Client(_)))
            .map(|(k, _)| k)
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Setup {
                addr,
                roles,
                sources,
                max_inflight,
                deadline,
            } => {
                self.task_seq = self.seq;
                self.task = Task::Setup(SetupTask {
                    addr,
                    queue: roles.into(),
                    sources,
                    inflight: 0,
                    max_inflight: max_inflight.max(1),
                    deadline,
                    ok: 0,
                    failed: 0,
                    first_ns: None,
                    last_ns: 0,
                    latencies: Vec::new(),
                });
            }
            Cmd::ArmPushes {
                per_conn,
                rounds,
                deadline,
            } => {
                let ready = self.ready_clients().count() as u64;
                let tracked = rounds.min(1 << 20) as usize;
                self.task = Task::Pushes(PushTask {
                    target: per_conn * ready,
                    got: 0,
                    bad: 0,
                    deadline,
                    arrivals: Vec::with_capacity(((per_conn * ready) as usize).min(MAX_SAMPLES)),
                    round_first: vec![u64::MAX; tracked],
                    round_last: vec![0; tracked],
                });
                self.task_seq = self.seq;
                self.report(self.seq, Report::Armed);
            }
            Cmd::Request { route, body, reply } => {
                let result = match self.control.and_then(|k| self.conns.get_mut(k)) {
                    Some(conn) if conn.phase == Phase::Ready => {
                        conn.request(route, &body).map(|id| (id, conn))
                    }
                    _ => Err("no control connection".into()),
                };
                match result {
                    Ok((id, conn)) => {
                        let sent_ns = ns_since(self.epoch, Instant::now());
                        conn.ctl.push_back((id, sent_ns, reply));
                        if let Some(key) = self.control {
                            self.flush_or_close(key);
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(CtlReply {
                            sent_ns: 0,
                            result: Err(e),
                        });
                    }
                }
            }
            Cmd::Echo {
                conns,
                open,
                window,
                end,
                drain,
            } => {
                let keys: Vec<usize> = self.ready_clients().take(conns).collect();
                let mut task = EchoTask {
                    conns: keys.clone(),
                    open,
                    rr: 0,
                    end,
                    drain_until: end + drain,
                    inflight: 0,
                    sent: 0,
                    ok: 0,
                    ok_in_window: 0,
                    bad: 0,
                    samples: Vec::new(),
                };
                if open.is_none() {
                    for key in keys {
                        let now_ns = ns_since(self.epoch, Instant::now());
                        let Some(conn) = self.conns.get_mut(key) else {
                            continue;
                        };
                        let mut sent = 0;
                        for _ in 0..window {
                            if conn.echo(now_ns).is_ok() {
                                sent += 1;
                            }
                        }
                        task.sent += sent;
                        task.inflight += sent as usize;
                        self.flush_or_close(key);
                    }
                }
                self.task_seq = self.seq;
                self.task = Task::Echo(task);
            }
            Cmd::Status => self.report(self.seq, Report::Status),
            Cmd::Stop => {}
        }
    }

    fn connect(
        &mut self,
        addr: SocketAddr,
        role: Role,
        source: Option<IpAddr>,
    ) -> Result<(), String> {
        let mut stream = match source {
            None => TcpStream::connect(addr),
            Some(ip) => connect_from(ip, addr),
        }
        .map_err(|e| {
            if e.raw_os_error() == Some(24) {
                format!("connect: {e} (raise the limit: ulimit -n)")
            } else {
                format!("connect: {e}")
            }
        })?;
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        let mut wbuf = Vec::with_capacity(128);
        encode_package(PackageType::Handshake, HANDSHAKE_BODY, &mut wbuf)
            .map_err(|e| e.to_string())?;
        entry.insert(Conn {
            stream,
            role,
            phase: Phase::Connecting,
            started: Instant::now(),
            rbuf: Vec::new(),
            wbuf,
            wpos: 0,
            next_id: 1,
            bind_id: 0,
            heartbeat: None,
            next_hb: None,
            outstanding: 0,
            ctl: VecDeque::new(),
        });
        Ok(())
    }

    fn on_event(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            let state = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                },
            };
            match state {
                Ok(true) => conn.phase = Phase::Handshaking,
                Ok(false) => return,
                Err(e) => {
                    self.close(key, format!("connect: {e}"));
                    return;
                }
            }
            self.flush_or_close(key);
        } else if writable {
            self.flush_or_close(key);
        }
        if readable {
            self.read(key);
        }
    }

    /// Writes what is queued; on error, closes the connection. Returns whether it is still open.
    fn flush_or_close(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.phase == Phase::Connecting {
            return true;
        }
        while conn.wpos < conn.wbuf.len() {
            match conn.stream.write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => {
                    self.close(key, "write: connection closed".into());
                    return false;
                }
                Ok(n) => conn.wpos += n,
                Err(e) if would_block(&e) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, format!("write: {e}"));
                    return false;
                }
            }
        }
        conn.wbuf.clear();
        conn.wpos = 0;
        true
    }

    fn read(&mut self, key: usize) {
        for _ in 0..MAX_READS {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.close(key, "closed by the server".into());
                    return;
                }
                Ok(n) => {
                    conn.rbuf.extend_from_slice(&self.scratch[..n]);
                    if let Err(e) = self.process(key, Instant::now()) {
                        self.close(key, e);
                        return;
                    }
                }
                Err(e) if would_block(&e) => {
                    self.flush_or_close(key);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, format!("read: {e}"));
                    return;
                }
            }
        }
        // More may be waiting: come back next turn (edge-triggered, so no new event).
        if self.flush_or_close(key) {
            self.again.push(key);
        }
    }

    fn process(&mut self, key: usize, now: Instant) -> Result<(), String> {
        let now_ns = ns_since(self.epoch, now);
        let Worker {
            conns,
            task,
            control,
            stray_pushes,
            heartbeats_in,
            heartbeat_seen,
            ..
        } = self;
        let conn = &mut conns[key];
        let rbuf = std::mem::take(&mut conn.rbuf);
        let mut shared = Shared {
            task,
            control,
            stray_pushes,
            heartbeats_in,
            heartbeat_seen,
        };
        let mut pos = 0;
        let mut result = Ok(());
        while pos < rbuf.len() {
            match decode_package(&rbuf[pos..], MAX_BODY_LEN) {
                Ok(Some((pkg, used))) => {
                    pos += used;
                    if let Err(e) =
                        on_package(conn, key, &mut shared, pkg.kind, pkg.body, now, now_ns)
                    {
                        result = Err(e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(format!("undecodable package from the server: {e}"));
                    break;
                }
            }
        }
        let mut rbuf = rbuf;
        rbuf.drain(..pos);
        conn.rbuf = rbuf;
        result
    }

    fn close(&mut self, key: usize, why: String) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        for (_, sent_ns, reply) in conn.ctl.drain(..) {
            let _ = reply.send(CtlReply {
                sent_ns,
                result: Err(why.clone()),
            });
        }
        if self.control == Some(key) {
            self.control = None;
        }
        if let Task::Echo(e) = &mut self.task {
            e.inflight = e.inflight.saturating_sub(conn.outstanding);
        }
        if conn.phase == Phase::Ready {
            self.unexpected_closes += 1;
            self.note(format!("connection lost: {why}"));
        } else {
            if let Task::Setup(s) = &mut self.task {
                s.failed += 1;
                s.inflight = s.inflight.saturating_sub(1);
            }
            self.note(format!("setup ({:?}): {why}", conn.phase));
        }
    }

    fn tick(&mut self, now: Instant) {
        let mut task = std::mem::replace(&mut self.task, Task::Idle);
        let done = match &mut task {
            Task::Idle => false,
            Task::Setup(s) => self.tick_setup(s, now),
            Task::Pushes(p) => p.got >= p.target || now >= p.deadline,
            Task::Echo(e) => self.tick_echo(e, now),
        };
        if !done {
            self.task = task;
            return;
        }
        self.task = Task::Idle;
        let report = match task {
            Task::Idle => return,
            Task::Setup(s) => Report::Setup {
                ok: s.ok,
                failed: s.failed,
                first_ns: s.first_ns,
                last_ns: s.last_ns,
                latencies: s.latencies,
            },
            Task::Pushes(p) => Report::Pushes {
                target: p.target,
                got: p.got,
                bad: p.bad,
                arrivals: p.arrivals,
                round_first: p.round_first,
                round_last: p.round_last,
            },
            Task::Echo(e) => Report::Echo {
                sent: e.sent,
                ok: e.ok,
                ok_in_window: e.ok_in_window,
                bad: e.bad,
                samples: e.samples,
            },
        };
        self.report(self.task_seq, report);
    }

    fn tick_setup(&mut self, s: &mut SetupTask, now: Instant) -> bool {
        while s.inflight < s.max_inflight && now < s.deadline {
            let Some(role) = s.queue.pop_front() else {
                break;
            };
            if s.first_ns.is_none() {
                s.first_ns = Some(ns_since(self.epoch, now));
            }
            let source = match role {
                Role::Client(i) if !s.sources.is_empty() => Some(s.sources[i % s.sources.len()]),
                _ => None,
            };
            match self.connect(s.addr, role, source) {
                Ok(()) => s.inflight += 1,
                Err(e) => {
                    s.failed += 1;
                    self.note(format!("setup: {e}"));
                }
            }
        }
        if now >= s.deadline {
            let stuck: Vec<(usize, Phase)> = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase != Phase::Ready)
                .map(|(k, c)| (k, c.phase))
                .collect();
            for (key, phase) in stuck {
                if let Some(mut conn) = self.conns.try_remove(key) {
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
                self.note(format!("setup: timed out in phase {phase:?}"));
                s.failed += 1;
            }
            let left = s.queue.len();
            if left > 0 {
                s.failed += left;
                *self
                    .notes
                    .entry("setup: not started before the deadline".into())
                    .or_insert(0) += left as u64;
                s.queue.clear();
            }
            s.inflight = 0;
            return true;
        }
        s.queue.is_empty() && s.inflight == 0
    }

    fn tick_echo(&mut self, e: &mut EchoTask, now: Instant) -> bool {
        if let Some((interval, mut next)) = e.open {
            let mut burst = 0;
            while next <= now && now < e.end && burst < 1000 && !e.conns.is_empty() {
                let key = e.conns[e.rr % e.conns.len()];
                e.rr += 1;
                burst += 1;
                next += interval;
                let now_ns = ns_since(self.epoch, Instant::now());
                // A lost connection is reported by the scenario; its turns are skipped.
                let Some(conn) = self.conns.get_mut(key) else {
                    continue;
                };
                if conn.echo(now_ns).is_ok() {
                    e.sent += 1;
                    e.inflight += 1;
                }
                if !self.flush_or_close(key) {
                    e.inflight = e.inflight.saturating_sub(1);
                }
            }
            e.open = Some((interval, next));
        }
        now >= e.end && (e.inflight == 0 || now >= e.drain_until)
    }

    /// Sends due heartbeats.
    fn sweep(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.next_hb.is_some_and(|t| t <= now))
            .map(|(k, _)| k)
            .collect();
        for key in due {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.wbuf.extend_from_slice(&HEARTBEAT_PACKAGE);
                conn.next_hb = conn.heartbeat.map(|h| now + h);
                self.flush_or_close(key);
            }
        }
    }
}

/// A non-blocking connect to `addr` from `source` (port chosen by the kernel from that address's
/// ephemeral range).
fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || would_block(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

/// Linux's "operation now in progress", a non-blocking connect's usual answer.
const EINPROGRESS: i32 = 115;

/// Counts a finished (or failed) connection setup into the setup task.
fn setup_finished(task: &mut Task, conn: &Conn, now: Instant, now_ns: u64) {
    if let Task::Setup(s) = task {
        s.ok += 1;
        s.inflight = s.inflight.saturating_sub(1);
        s.last_ns = s.last_ns.max(now_ns);
        s.latencies
            .push(now.saturating_duration_since(conn.started).as_nanos() as u64);
    }
}

/// After the handshake (and the server's first HEARTBEAT, when heartbeats are on): bind, or be
/// ready (control).
fn handshake_complete(
    conn: &mut Conn,
    key: usize,
    shared: &mut Shared<'_>,
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    match conn.role {
        Role::Client(i) => {
            let body = format!("{{\"uid\":\"u{i}\"}}");
            conn.bind_id = conn.request(ENTRY, body.as_bytes())?;
            conn.phase = Phase::Binding;
        }
        Role::Control => {
            conn.phase = Phase::Ready;
            *shared.control = Some(key);
            setup_finished(shared.task, conn, now, now_ns);
        }
    }
    Ok(())
}

fn on_package(
    conn: &mut Conn,
    key: usize,
    shared: &mut Shared<'_>,
    kind: PackageType,
    body: &[u8],
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    match kind {
        PackageType::Handshake => {
            if conn.phase != Phase::Handshaking {
                return Err(format!(
                    "unexpected HANDSHAKE package in phase {:?}",
                    conn.phase
                ));
            }
            let reply: Value = serde_json::from_slice(body)
                .map_err(|e| format!("handshake reply is not JSON ({e}): {}", lossy(body)))?;
            if reply["code"] != 200 {
                return Err(format!("handshake refused: {}", lossy(body)));
            }
            let secs = reply["sys"]["heartbeat"].as_u64().filter(|&h| h > 0);
            *shared.heartbeat_seen = secs;
            conn.heartbeat = secs.map(Duration::from_secs);
            conn.wbuf.extend_from_slice(&HANDSHAKE_ACK_PACKAGE);
            if conn.heartbeat.is_some() {
                conn.phase = Phase::WaitHeartbeat;
            } else {
                handshake_complete(conn, key, shared, now, now_ns)?;
            }
        }
        PackageType::Heartbeat => match conn.phase {
            Phase::WaitHeartbeat => {
                conn.next_hb = conn.heartbeat.map(|h| now + h);
                handshake_complete(conn, key, shared, now, now_ns)?;
            }
            Phase::Connecting | Phase::Handshaking => {
                return Err("HEARTBEAT before the handshake".into());
            }
            // The echo of ours (or the server's own): counted; the sweep keeps time.
            Phase::Binding | Phase::Ready => *shared.heartbeats_in += 1,
        },
        PackageType::Data => {
            let msg = decode_message(body)
                .map_err(|e| format!("undecodable message from the server: {e}"))?;
            match msg.kind {
                MessageType::Response => on_response(conn, shared, msg.id, msg.body, now, now_ns)?,
                MessageType::Push => on_push(shared, msg.body, now_ns),
                other => return Err(format!("unexpected {other:?} message from the server")),
            }
        }
        PackageType::Kick => return Err(format!("kicked by the server: {}", lossy(body))),
        PackageType::HandshakeAck => return Err("unexpected HANDSHAKE_ACK from the server".into()),
    }
    Ok(())
}

fn on_response(
    conn: &mut Conn,
    shared: &mut Shared<'_>,
    id: u32,
    body: &[u8],
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    if conn.phase == Phase::Binding && id == conn.bind_id {
        if !code_200(body) {
            return Err(format!("bind refused: {}", lossy(body)));
        }
        conn.phase = Phase::Ready;
        setup_finished(shared.task, conn, now, now_ns);
        return Ok(());
    }
    if let Some(i) = conn.ctl.iter().position(|(cid, _, _)| *cid == id) {
        if let Some((_, sent_ns, reply)) = conn.ctl.remove(i) {
            let _ = reply.send(CtlReply {
                sent_ns,
                result: Ok(body.to_vec()),
            });
        }
        return Ok(());
    }
    // An echo response.
    let counted = conn.outstanding > 0;
    conn.outstanding = conn.outstanding.saturating_sub(1);
    let Task::Echo(e) = shared.task else {
        return Ok(()); // late, after its scenario ended
    };
    if counted {
        e.inflight = e.inflight.saturating_sub(1);
    }
    match find_u64(body, b"\"t\":").filter(|_| code_200(body)) {
        Some(t) => {
            e.ok += 1;
            if now < e.end {
                e.ok_in_window += 1;
            }
            if e.samples.len() < MAX_SAMPLES {
                e.samples.push(now_ns.saturating_sub(t));
            }
        }
        None => e.bad += 1,
    }
    if e.open.is_none() && now < e.end && counted {
        conn.echo(now_ns)?;
        e.sent += 1;
        e.inflight += 1;
    }
    Ok(())
}

fn on_push(shared: &mut Shared<'_>, body: &[u8], now_ns: u64) {
    let Task::Pushes(p) = shared.task else {
        *shared.stray_pushes += 1;
        return;
    };
    p.got += 1;
    if p.arrivals.len() < MAX_SAMPLES {
        p.arrivals.push(now_ns);
    }
    match find_u64(&body[..body.len().min(64)], b"\"i\":") {
        Some(i) => {
            if let (Some(first), Some(last)) = (
                p.round_first.get_mut(i as usize),
                p.round_last.get_mut(i as usize),
            ) {
                *first = (*first).min(now_ns);
                *last = (*last).max(now_ns);
            }
        }
        None => p.bad += 1,
    }
}

// === the pool of client threads, driven from the main thread =================================

struct Pool {
    workers: Vec<(mpsc::Sender<(u64, Cmd)>, Waker)>,
    /// The current phase: reports of earlier phases (a scenario that timed out) are ignored.
    seq: u64,
    reports: mpsc::Receiver<Envelope>,
    handles: Vec<JoinHandle<()>>,
    statuses: Vec<Status>,
    /// The server's CPU, sampled while waiting for reports.
    watch: Option<CpuWatch>,
}

impl Pool {
    fn start(n: usize, epoch: Instant) -> Result<Pool, String> {
        let (report_tx, reports) = mpsc::channel();
        let mut pool = Pool {
            workers: Vec::new(),
            reports,
            handles: Vec::new(),
            statuses: vec![Status::default(); n],
            watch: None,
            seq: 0,
        };
        for index in 0..n {
            let poll = Poll::new().map_err(|e| format!("mio::Poll: {e}"))?;
            let waker =
                Waker::new(poll.registry(), WAKER).map_err(|e| format!("mio::Waker: {e}"))?;
            let (tx, cmds) = mpsc::channel();
            let worker = Worker {
                index,
                epoch,
                poll,
                conns: Slab::new(),
                control: None,
                cmds,
                reports: report_tx.clone(),
                seq: 0,
                task_seq: 0,
                task: Task::Idle,
                again: Vec::new(),
                scratch: vec![0; READ_CHUNK],
                unexpected_closes: 0,
                stray_pushes: 0,
                heartbeats_in: 0,
                heartbeat_seen: None,
                notes: BTreeMap::new(),
                next_sweep: Instant::now() + SWEEP,
            };
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || worker.run())
                .map_err(|e| format!("spawning a client thread: {e}"))?;
            pool.workers.push((tx, waker));
            pool.handles.push(handle);
        }
        Ok(pool)
    }

    fn len(&self) -> usize {
        self.workers.len()
    }

    fn send(&self, worker: usize, cmd: Cmd) -> Result<(), String> {
        let (tx, waker) = &self.workers[worker];
        tx.send((self.seq, cmd))
            .map_err(|_| format!("client thread {worker} is gone"))?;
        waker
            .wake()
            .map_err(|e| format!("waking client thread {worker}: {e}"))
    }

    /// Waits for `n` reports (one per addressed worker), at most `timeout`.
    fn gather(&mut self, n: usize, timeout: Duration) -> Result<Vec<(usize, Report)>, String> {
        let until = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let mut left = until.saturating_duration_since(Instant::now());
            if let Some(watch) = self.watch.as_mut() {
                watch.poke();
                left = left.min(Duration::from_millis(2));
            }
            match self.reports.recv_timeout(left) {
                Ok(env) => {
                    self.statuses[env.worker] = env.status;
                    if env.seq == self.seq {
                        out.push((env.worker, env.report));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "client threads did not report within {timeout:?} ({} of {n})",
                        out.len()
                    ))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("client threads are gone".into())
                }
            }
        }
        Ok(out)
    }

    /// Starts a new phase.
    fn begin(&mut self) {
        self.seq += 1;
    }

    /// Starts a new phase and sends every client thread its command.
    fn broadcast(&mut self, mut cmd: impl FnMut(usize) -> Cmd) -> Result<(), String> {
        self.begin();
        for w in 0..self.len() {
            self.send(w, cmd(w))?;
        }
        Ok(())
    }

    /// A request on the control connection: (sent at, ns since epoch; response body).
    fn request(&self, route: &'static str, body: Value) -> Result<(u64, Vec<u8>), String> {
        let (reply, rx) = mpsc::channel();
        let body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        self.send(0, Cmd::Request { route, body, reply })?;
        let r = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("{route}: no response within 10 s"))?;
        let body = r.result.map_err(|e| format!("{route}: {e}"))?;
        Ok((r.sent_ns, body))
    }

    fn stats(&self) -> Result<Value, String> {
        let (_, body) = self.request(STATS, json!({}))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("stats: response is not JSON ({e}): {}", lossy(&body)))?;
        if v["code"] != 200 {
            return Err(format!("stats: {}", lossy(&body)));
        }
        Ok(v)
    }

    /// Starts following the server's CPU (see [`CpuWatch`]).
    fn watch_server(&mut self, server: &Server) {
        self.watch = CpuWatch::new(server.pid, server.tck);
    }

    /// Server CPU ns and wall time since `watch_server`.
    fn server_cpu(&mut self) -> Option<(u64, Duration)> {
        self.watch.take()?.finish()
    }

    fn refresh_status(&mut self) -> Result<(), String> {
        self.broadcast(|_| Cmd::Status)?;
        self.gather(self.len(), Duration::from_secs(5)).map(|_| ())
    }

    fn unexpected_closes(&self) -> u64 {
        self.statuses.iter().map(|s| s.unexpected_closes).sum()
    }

    fn heartbeats_in(&self) -> u64 {
        self.statuses.iter().map(|s| s.heartbeats_in).sum()
    }

    fn notes(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for s in &self.statuses {
            for (k, v) in &s.notes {
                *all.entry(k.clone()).or_insert(0) += v;
            }
        }
        all
    }

    fn stop(&mut self) {
        for (tx, waker) in &self.workers {
            let _ = tx.send((0, Cmd::Stop));
            let _ = waker.wake();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

// === results =================================================================================

struct Row {
    scenario: &'static str,
    key: String,
    figure: String,
    value: Option<f64>,
    unit: String,
}

#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    warnings: Vec<String>,
    failures: Vec<String>,
}

impl Results {
    fn row(&mut self, scenario: &'static str, key: &str, figure: String, value: f64, unit: &str) {
        self.rows.push(Row {
            scenario,
            key: format!("{scenario}.{key}"),
            figure,
            value: value.is_finite().then_some(value),
            unit: unit.into(),
        });
    }

    fn fail(&mut self, scenario: &'static str, why: String) {
        self.rows.push(Row {
            scenario,
            key: format!("{scenario}.failed"),
            figure: format!("FAILED: {why}"),
            value: None,
            unit: String::new(),
        });
        self.failures.push(format!("{scenario}: {why}"));
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

fn fmt_value(v: Option<f64>) -> String {
    let Some(v) = v else {
        return "n/a".into();
    };
    let a = v.abs();
    if a >= 1000.0 {
        let s = format!("{:.0}", v.abs());
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

// === the run =================================================================================

/// The server being measured: where, and its pid when known.
struct Server {
    addr: SocketAddr,
    pid: Option<u32>,
    tck: u64,
}

impl Server {
    fn cpu(&self) -> Option<CpuSample> {
        cpu_sample(&self.pid?.to_string())
    }

    /// Server CPU ns between `a` and now.
    fn cpu_since(&self, a: &Option<CpuSample>) -> Option<(u64, Duration)> {
        let a = a.as_ref()?;
        let b = self.cpu()?;
        Some((cpu_used_ns(a, &b, self.tck), b.at.duration_since(a.at)))
    }
}

fn self_cpu() -> Option<CpuSample> {
    cpu_sample("self")
}

fn self_cpu_since(a: &Option<CpuSample>, tck: u64) -> Option<(u64, Duration)> {
    let a = a.as_ref()?;
    let b = self_cpu()?;
    Some((cpu_used_ns(a, &b, tck), b.at.duration_since(a.at)))
}

fn check_closes(pool: &mut Pool, res: &mut Results, scenario: &str, before: u64) {
    if pool.refresh_status().is_err() {
        return;
    }
    let after = pool.unexpected_closes();
    if after > before {
        res.warnings.push(format!(
            "{scenario}: {} connection(s) closed by the server or lost",
            after - before
        ));
    }
}

fn scenario_setup(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    res: &mut Results,
) -> Result<usize, String> {
    const S: &str = "setup";
    let n = pool.len();
    let budget = Duration::from_secs(10) + Duration::from_millis(opts.clients as u64);
    pool.watch_server(server);
    let deadline = Instant::now() + budget;
    pool.broadcast(|w| Cmd::Setup {
        addr: server.addr,
        roles: (0..opts.clients)
            .filter(|i| i % n == w)
            .map(Role::Client)
            .collect(),
        sources: opts.sources.clone(),
        max_inflight: opts.connect_concurrency.div_ceil(n),
        deadline,
    })?;
    let reports = pool.gather(n, budget + Duration::from_secs(5))?;
    let cpu = pool.server_cpu();
    let (mut ok, mut failed, mut first, mut last, mut lat) = (0, 0, u64::MAX, 0, Vec::new());
    for (_, r) in reports {
        if let Report::Setup {
            ok: o,
            failed: f,
            first_ns,
            last_ns,
            latencies,
        } = r
        {
            ok += o;
            failed += f;
            first = first.min(first_ns.unwrap_or(u64::MAX));
            last = last.max(last_ns);
            lat.extend(latencies);
        }
    }
    lat.sort_unstable();
    res.row(
        S,
        "bound",
        format!("sessions bound (of {})", opts.clients),
        ok as f64,
        "sessions",
    );
    if failed > 0 {
        let notes: Vec<String> = pool
            .notes()
            .into_iter()
            .filter(|(k, _)| k.starts_with("setup"))
            .take(5)
            .map(|(k, v)| format!("{v}× {k}"))
            .collect();
        res.row(
            S,
            "failed",
            "connections failed".into(),
            failed as f64,
            "connections",
        );
        res.warnings.push(format!(
            "setup: {failed} connection(s) failed: {}",
            notes.join("; ")
        ));
    }
    if ok == 0 {
        return Err("no client connected and bound".into());
    }
    let secs = last.saturating_sub(first) as f64 / 1e9;
    res.row(
        S,
        "rate",
        "setup rate (connect+handshake+ack+bind)".into(),
        ok as f64 / secs,
        "sessions/s",
    );
    res.row(
        S,
        "latency_p50",
        "setup latency p50 (connect → bound)".into(),
        percentile(&lat, 0.5) / 1e6,
        "ms",
    );
    res.row(
        S,
        "latency_p99",
        "setup latency p99".into(),
        percentile(&lat, 0.99) / 1e6,
        "ms",
    );
    if let Some((ns, _)) = cpu {
        res.row(
            S,
            "server_cpu_per_setup",
            "server CPU per session setup".into(),
            ns as f64 / 1e3 / ok as f64,
            "µs",
        );
    }
    Ok(ok)
}

struct MemBefore {
    vm_rss: Option<u64>,
    stats: Option<Value>,
}

fn scenario_memory(
    pool: &Pool,
    server: &Server,
    before: &MemBefore,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "memory";
    let vm_after = server.pid.and_then(vm_rss);
    let stats = pool.stats()?;
    let per = |a: u64, b: u64| (b as f64 - a as f64) / sessions as f64;
    if let (Some(a), Some(b)) = (before.vm_rss, vm_after) {
        res.row(
            S,
            "rss_before",
            "server VmRSS before connecting".into(),
            a as f64 / 1048576.0,
            "MiB",
        );
        res.row(
            S,
            "rss_with_sessions",
            format!("server VmRSS with {sessions} sessions"),
            b as f64 / 1048576.0,
            "MiB",
        );
        res.row(
            S,
            "rss_per_session",
            "RSS per idle bound session (VmRSS delta)".into(),
            per(a, b),
            "B/session",
        );
    }
    let (sa, sb) = (
        before.stats.as_ref().and_then(|s| s["rss"].as_u64()),
        stats["rss"].as_u64(),
    );
    if let (Some(a), Some(b)) = (sa, sb) {
        res.row(
            S,
            "stats_rss_per_session",
            "RSS per session (stats route delta)".into(),
            per(a, b),
            "B/session",
        );
    }
    if let Some(s) = stats["sessions"].as_u64() {
        res.row(
            S,
            "stats_sessions",
            "sessions (stats route, incl. control)".into(),
            s as f64,
            "sessions",
        );
    }
    if let Some(b) = stats["bound"].as_u64() {
        res.row(
            S,
            "stats_bound",
            "bound uids (stats route)".into(),
            b as f64,
            "uids",
        );
        if b as usize != sessions {
            res.warnings.push(format!(
                "memory: the stats route reports {b} bound uids, {sessions} clients are bound"
            ));
        }
    }
    // What the held sessions cost while nothing happens (timers, heartbeats); the CPU-per-request
    // figures of the echo scenarios include it.
    if let Some(watch) = CpuWatch::new(server.pid, server.tck) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some((ns, wall)) = watch.finish() {
            res.row(
                S,
                "server_cpu_idle",
                format!("server CPU while idle with {sessions} sessions (1 s)"),
                100.0 * ns as f64 / wall.as_nanos() as f64,
                "% of a core",
            );
        }
    }
    Ok(())
}

/// Holds every session open, idle but for heartbeats, for `--hold` seconds (default 2.5
/// heartbeat intervals), then checks that the server still has all of them: the capacity figure.
fn scenario_hold(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    before: &MemBefore,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "hold";
    pool.refresh_status()?;
    let heartbeat = pool.statuses.iter().find_map(|s| s.heartbeat);
    let secs = opts
        .hold
        .unwrap_or_else(|| heartbeat.map_or(10.0, |h| h as f64 * 2.5));
    let (closes0, beats0) = (pool.unexpected_closes(), pool.heartbeats_in());
    eprintln!(
        "loadgen: scenario hold: {sessions} sessions for {secs:.0} s (heartbeat {})",
        heartbeat.map_or("off".into(), |h| format!("{h} s"))
    );
    let mut watch = CpuWatch::new(server.pid, server.tck);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut next_line = start + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_line {
            next_line += Duration::from_secs(10);
            pool.refresh_status()?;
            eprintln!(
                "loadgen: hold: {:.0} s of {secs:.0}, {} connection(s) lost so far, {} heartbeats received",
                now.duration_since(start).as_secs_f64(),
                pool.unexpected_closes() - closes0,
                pool.heartbeats_in() - beats0
            );
        }
        if let Some(w) = watch.as_mut() {
            w.poke();
        }
        std::thread::sleep((end - now).min(Duration::from_millis(200)));
    }
    let cpu = watch.and_then(CpuWatch::finish);
    pool.refresh_status()?;
    let lost = pool.unexpected_closes() - closes0;
    let beats = pool.heartbeats_in() - beats0;
    let stats = pool.stats()?;
    res.row(S, "seconds", "held for".into(), secs, "s");
    let alive = stats["sessions"].as_u64();
    if let Some(n) = alive {
        res.row(
            S,
            "sessions",
            "sessions alive at the end (stats route, incl. control)".into(),
            n as f64,
            "sessions",
        );
    }
    if let Some(b) = stats["bound"].as_u64() {
        res.row(S, "bound", "bound uids at the end".into(), b as f64, "uids");
    }
    res.row(
        S,
        "lost",
        "client connections lost while holding".into(),
        lost as f64,
        "connections",
    );
    res.row(
        S,
        "heartbeats",
        "HEARTBEATs received by the clients while holding".into(),
        beats as f64,
        "packages",
    );
    if let Some((ns, wall)) = cpu {
        res.row(
            S,
            "server_cpu",
            format!("server CPU while holding {sessions} sessions"),
            100.0 * ns as f64 / wall.as_nanos() as f64,
            "% of a core",
        );
    }
    if let Some(b) = server.pid.and_then(vm_rss) {
        res.row(
            S,
            "rss_end",
            "server VmRSS at the end".into(),
            b as f64 / 1048576.0,
            "MiB",
        );
        if let Some(a) = before.vm_rss {
            res.row(
                S,
                "rss_per_session",
                "RSS per held session at the end (VmRSS delta)".into(),
                (b as f64 - a as f64) / sessions as f64,
                "B/session",
            );
        }
    }
    if heartbeat.is_some() && secs >= 2.0 * heartbeat.unwrap_or(0) as f64 && beats == 0 {
        res.warnings
            .push("hold: heartbeats are on, but no client received one".into());
    }
    if lost > 0 || alive.is_some_and(|n| n < sessions as u64 + 1) {
        return Err(format!(
            "{lost} of {sessions} connection(s) lost while holding; the server reports {} sessions",
            alive.map_or("?".into(), |n| n.to_string())
        ));
    }
    Ok(())
}

struct PushRun {
    sent_ns: u64,
    uids: u64,
    target: u64,
    got: u64,
    bad: u64,
    arrivals: Vec<u64>,
    round_first: Vec<u64>,
    round_last: Vec<u64>,
}

/// Arms every client thread, sends one blast, waits for the pushes.
fn run_blast(
    pool: &mut Pool,
    rounds: u64,
    size: usize,
    budget: Duration,
) -> Result<PushRun, String> {
    let n = pool.len();
    let deadline = Instant::now() + budget;
    pool.broadcast(|_| Cmd::ArmPushes {
        per_conn: rounds,
        rounds,
        deadline,
    })?;
    pool.gather(n, Duration::from_secs(5))?;
    let (sent_ns, body) = pool.request(BLAST, json!({"m": rounds, "size": size}))?;
    if !code_200(&body) {
        return Err(format!("blast refused: {}", lossy(&body)));
    }
    let uids = find_u64(&body, b"\"uids\":").unwrap_or(0);
    let mut run = PushRun {
        sent_ns,
        uids,
        target: 0,
        got: 0,
        bad: 0,
        arrivals: Vec::new(),
        round_first: vec![u64::MAX; rounds.min(1 << 20) as usize],
        round_last: vec![0; rounds.min(1 << 20) as usize],
    };
    for (_, r) in pool.gather(n, budget + Duration::from_secs(5))? {
        if let Report::Pushes {
            target,
            got,
            bad,
            arrivals,
            round_first,
            round_last,
        } = r
        {
            run.target += target;
            run.got += got;
            run.bad += bad;
            run.arrivals.extend(arrivals);
            for (i, (f, l)) in round_first.iter().zip(&round_last).enumerate() {
                run.round_first[i] = run.round_first[i].min(*f);
                run.round_last[i] = run.round_last[i].max(*l);
            }
        }
    }
    Ok(run)
}

fn push_budget(clients: usize, rounds: u64) -> Duration {
    Duration::from_secs(15) + Duration::from_micros(clients as u64 * rounds * 10)
}

fn scenario_blast(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "blast";
    let budget = push_budget(sessions, opts.rounds);
    // Several blasts; the figures are those of the median one (by pushes/s): this VM is noisy.
    struct One {
        rate: f64,
        run: PushRun,
        lat: Vec<u64>,
        cpu: Option<(u64, Duration)>,
        me: Option<(u64, Duration)>,
    }
    let mut runs = Vec::new();
    for _ in 0..opts.blast_runs {
        pool.watch_server(server);
        let me0 = self_cpu();
        let run = run_blast(pool, opts.rounds, opts.size, budget)?;
        let cpu = pool.server_cpu();
        let me = self_cpu_since(&me0, server.tck);
        let expected = run.uids * opts.rounds;
        if run.got == 0 {
            res.row(S, "delivered", "pushes delivered".into(), 0.0, "pushes");
            return Err(format!("no push arrived within {budget:?}"));
        }
        if run.got < expected || run.got < run.target {
            res.warnings.push(format!(
                "blast: only {} of {expected} pushes arrived within {budget:?}",
                run.got
            ));
        }
        if run.uids as usize != sessions {
            res.warnings.push(format!(
                "blast: the gate pushed to {} uids, {sessions} clients are bound",
                run.uids
            ));
        }
        if run.bad > 0 {
            res.warnings
                .push(format!("blast: {} pushes without a round number", run.bad));
        }
        let mut lat: Vec<u64> = run
            .arrivals
            .iter()
            .map(|a| a.saturating_sub(run.sent_ns))
            .collect();
        lat.sort_unstable();
        let span = lat.last().copied().unwrap_or(0).max(1) as f64 / 1e9;
        runs.push(One {
            rate: run.got as f64 / span,
            run,
            lat,
            cpu,
            me,
        });
    }
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let (min, max) = match (runs.first(), runs.last()) {
        (Some(a), Some(b)) => (a.rate, b.rate),
        _ => return Ok(()),
    };
    let n = runs.len();
    let One {
        rate,
        run,
        lat,
        cpu,
        me,
    } = runs.swap_remove(n / 2);
    res.row(
        S,
        "delivered",
        format!(
            "pushes delivered (of {}: {} uids × {} rounds, {} B)",
            run.uids * opts.rounds,
            run.uids,
            opts.rounds,
            opts.size
        ),
        run.got as f64,
        "pushes",
    );
    res.row(
        S,
        "pushes_per_s",
        if n > 1 {
            format!(
                "delivered pushes/s, median of {n} (min {}, max {})",
                fmt_value(Some(min)),
                fmt_value(Some(max))
            )
        } else {
            "delivered pushes/s (request → last push)".into()
        },
        rate,
        "pushes/s",
    );
    res.row(
        S,
        "latency_p50",
        "delivery latency p50 (blast request → push)".into(),
        percentile(&lat, 0.5) / 1e6,
        "ms",
    );
    res.row(
        S,
        "latency_p99",
        "delivery latency p99".into(),
        percentile(&lat, 0.99) / 1e6,
        "ms",
    );
    let mut spread: Vec<u64> = run
        .round_first
        .iter()
        .zip(&run.round_last)
        .filter(|(f, l)| **f != u64::MAX && **l >= **f)
        .map(|(f, l)| l - f)
        .collect();
    spread.sort_unstable();
    res.row(
        S,
        "round_spread_p99",
        "per-round spread p99 (first → last client)".into(),
        percentile(&spread, 0.99) / 1e6,
        "ms",
    );
    if let Some((ns, _)) = cpu {
        res.row(
            S,
            "server_cpu_per_push",
            "server CPU per push".into(),
            ns as f64 / 1e3 / run.got as f64,
            "µs",
        );
    }
    if let Some((ns, wall)) = me {
        res.row(
            S,
            "loadgen_cpu",
            "loadgen CPU (of one core)".into(),
            100.0 * ns as f64 / wall.as_nanos() as f64,
            "%",
        );
    }
    Ok(())
}

fn scenario_fanout(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "fanout";
    if opts.fanouts == 0 {
        return Ok(());
    }
    pool.watch_server(server);
    let mut lat = Vec::new();
    let mut last = Vec::new();
    let mut got = 0;
    let mut expected = 0;
    for _ in 0..opts.fanouts {
        let run = run_blast(pool, 1, opts.size, push_budget(sessions, 1))?;
        got += run.got;
        expected += run.uids;
        lat.extend(run.arrivals.iter().map(|a| a.saturating_sub(run.sent_ns)));
        if let Some(m) = run.arrivals.iter().max() {
            last.push(m.saturating_sub(run.sent_ns));
        }
    }
    let cpu = pool.server_cpu();
    lat.sort_unstable();
    last.sort_unstable();
    if got == 0 {
        return Err("no push arrived".into());
    }
    if got < expected {
        res.warnings
            .push(format!("fanout: {got} of {expected} pushes arrived"));
    }
    res.row(
        S,
        "latency_p50",
        format!(
            "{} broadcasts to {sessions} clients: latency p50",
            opts.fanouts
        ),
        percentile(&lat, 0.5) / 1e6,
        "ms",
    );
    res.row(
        S,
        "latency_p99",
        "latency p99 (request → push)".into(),
        percentile(&lat, 0.99) / 1e6,
        "ms",
    );
    res.row(
        S,
        "complete_p50",
        "broadcast complete (last client) p50".into(),
        percentile(&last, 0.5) / 1e6,
        "ms",
    );
    if let Some((ns, _)) = cpu {
        res.row(
            S,
            "server_cpu_per_push",
            "server CPU per push (incl. request, thread spawn)".into(),
            ns as f64 / 1e3 / got as f64,
            "µs",
        );
    }
    Ok(())
}

struct EchoRun {
    sent: u64,
    ok: u64,
    ok_in_window: u64,
    bad: u64,
    samples: Vec<u64>,
    secs: f64,
    server_cpu_ns: Option<u64>,
    loadgen_cpu: Option<(u64, Duration)>,
}

fn run_echo(
    pool: &mut Pool,
    server: &Server,
    conns: usize,
    rate: Option<u64>,
    window: usize,
    secs: f64,
) -> Result<EchoRun, String> {
    let n = pool.len();
    let per = |w: usize| conns / n + usize::from(w < conns % n);
    let dur = Duration::from_secs_f64(secs);
    let drain = Duration::from_secs(5);
    pool.watch_server(server);
    let me0 = self_cpu();
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + dur;
    pool.broadcast(|w| Cmd::Echo {
        conns: per(w),
        open: rate.map(|r| {
            let share = (r as f64 * per(w) as f64 / conns as f64).max(1e-3);
            let interval = Duration::from_secs_f64(1.0 / share);
            (interval, start + interval.mul_f64(w as f64 / n as f64))
        }),
        window,
        end,
        drain,
    })?;
    let reports = pool.gather(n, dur + drain + Duration::from_secs(10))?;
    let server_cpu_ns = pool.server_cpu().map(|(ns, _)| ns);
    let loadgen_cpu = self_cpu_since(&me0, server.tck);
    let mut run = EchoRun {
        sent: 0,
        ok: 0,
        ok_in_window: 0,
        bad: 0,
        samples: Vec::new(),
        secs,
        server_cpu_ns,
        loadgen_cpu,
    };
    for (_, r) in reports {
        if let Report::Echo {
            sent,
            ok,
            ok_in_window,
            bad,
            samples,
        } = r
        {
            run.sent += sent;
            run.ok += ok;
            run.ok_in_window += ok_in_window;
            run.bad += bad;
            run.samples.extend(samples);
        }
    }
    run.samples.sort_unstable();
    Ok(run)
}

fn scenario_echo(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "echo";
    let conns = opts.echo_conns.min(sessions);
    let run = run_echo(pool, server, conns, Some(opts.rate), 1, opts.seconds)?;
    res.row(
        S,
        "responses",
        format!(
            "responses (of {} sent at {}/s over {conns} conns, {} s)",
            run.sent, opts.rate, opts.seconds
        ),
        run.ok as f64,
        "responses",
    );
    if run.ok == 0 {
        return Err("no echo response".into());
    }
    if run.ok < run.sent || run.bad > 0 {
        res.warnings.push(format!(
            "echo: {} of {} requests answered, {} bad responses",
            run.ok, run.sent, run.bad
        ));
    }
    res.row(
        S,
        "rate",
        "achieved rate".into(),
        run.ok_in_window as f64 / run.secs,
        "req/s",
    );
    res.row(
        S,
        "rtt_p50",
        "round trip p50".into(),
        percentile(&run.samples, 0.5) / 1e3,
        "µs",
    );
    res.row(
        S,
        "rtt_p99",
        "round trip p99".into(),
        percentile(&run.samples, 0.99) / 1e3,
        "µs",
    );
    res.row(
        S,
        "rtt_p999",
        "round trip p99.9".into(),
        percentile(&run.samples, 0.999) / 1e3,
        "µs",
    );
    if let Some(ns) = run.server_cpu_ns {
        res.row(
            S,
            "server_cpu_per_req",
            "server CPU per request (incl. idle wakeups)".into(),
            ns as f64 / 1e3 / run.ok as f64,
            "µs",
        );
    }
    Ok(())
}

fn scenario_saturation(
    opts: &Opts,
    pool: &mut Pool,
    server: &Server,
    sessions: usize,
    res: &mut Results,
) -> Result<(), String> {
    const S: &str = "saturation";
    let conns = opts.sat_conns.min(sessions);
    let run = run_echo(pool, server, conns, None, opts.window, opts.seconds)?;
    if run.ok == 0 {
        res.row(S, "responses", "responses".into(), 0.0, "responses");
        return Err("no echo response".into());
    }
    if run.bad > 0 || run.ok < run.sent {
        res.warnings.push(format!(
            "saturation: {} of {} requests answered, {} bad responses",
            run.ok, run.sent, run.bad
        ));
    }
    res.row(
        S,
        "req_per_s",
        format!(
            "max req/s (closed loop, {conns} conns × {} outstanding, {} s)",
            opts.window, opts.seconds
        ),
        run.ok_in_window as f64 / run.secs,
        "req/s",
    );
    res.row(
        S,
        "rtt_p50",
        "round trip p50".into(),
        percentile(&run.samples, 0.5) / 1e6,
        "ms",
    );
    res.row(
        S,
        "rtt_p99",
        "round trip p99".into(),
        percentile(&run.samples, 0.99) / 1e6,
        "ms",
    );
    if let Some(ns) = run.server_cpu_ns {
        res.row(
            S,
            "server_cpu_per_req",
            "server CPU per request".into(),
            ns as f64 / 1e3 / run.ok as f64,
            "µs",
        );
        res.row(
            S,
            "server_cpu",
            "server CPU (of one core)".into(),
            100.0 * ns as f64 / 1e9 / run.secs,
            "%",
        );
    }
    if let Some((ns, wall)) = run.loadgen_cpu {
        res.row(
            S,
            "loadgen_cpu",
            "loadgen CPU (of one core)".into(),
            100.0 * ns as f64 / wall.as_nanos() as f64,
            "%",
        );
    }
    Ok(())
}

struct Header {
    nproc: usize,
    cpu: String,
    kernel: String,
    load_start: String,
    tck: u64,
    tck_measured: bool,
}

/// CPU shares over the whole measured run, in % of the machine.
struct LoadShares {
    machine: f64,
    server: Option<f64>,
    loadgen: f64,
}

/// What the command line asks for: a run with these options, or an exit at once, with its
/// status and what to print first (tests/loadgen_cli.rs checks it).
#[derive(Debug)]
pub(crate) enum Cli {
    Run(Box<Opts>),
    /// `-h`/`--help`: the help on stdout, status 0; bad arguments: a message and the help on
    /// stderr, status 2.
    Exit {
        code: u8,
        stdout: String,
        stderr: String,
    },
}

pub(crate) fn cli(args: &[String]) -> Cli {
    match parse_opts(args) {
        Ok(o) => Cli::Run(Box::new(o)),
        Err(e) if e.is_empty() => Cli::Exit {
            code: 0,
            stdout: USAGE.to_string(),
            stderr: String::new(),
        },
        Err(e) => Cli::Exit {
            code: 2,
            stdout: String::new(),
            stderr: format!("loadgen: {e}\n\n{USAGE}"),
        },
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match cli(&args) {
        Cli::Run(o) => *o,
        Cli::Exit {
            code,
            stdout,
            stderr,
        } => {
            print!("{stdout}");
            eprint!("{stderr}");
            return ExitCode::from(code);
        }
    };
    match ensure_fd_limit(opts.clients as u64 + 100) {
        Ok(Some(code)) => return code,
        Ok(None) => {}
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    }
    let mut opts = opts;
    match source_addrs(&opts) {
        Ok(sources) => opts.sources = sources,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(1);
        }
    }
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs everything; `Ok(false)` when a scenario failed outright.
fn run(opts: &Opts) -> Result<bool, String> {
    let (tck, tck_measured) = clk_tck();
    let header = Header {
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu: cpu_model(),
        kernel: read("/proc/sys/kernel/osrelease")
            .map_or_else(|| "?".into(), |s| s.trim().to_string()),
        load_start: loadavg(),
        tck,
        tck_measured,
    };
    eprintln!(
        "loadgen: {} × {}, load average {}",
        header.nproc, header.cpu, header.load_start
    );
    // Budget of the whole run: the spawned gate's own --seconds safety net.
    let lifetime = Duration::from_secs(300)
        + Duration::from_secs_f64(opts.seconds * 3.0)
        + Duration::from_millis(opts.clients as u64 * 2)
        + push_budget(opts.clients, opts.rounds) * opts.blast_runs as u32
        + push_budget(opts.clients, 1) * opts.fanouts as u32
        + if opts.wants("hold") {
            Duration::from_secs_f64(
                opts.hold
                    .unwrap_or(opts.heartbeat.unwrap_or(30) as f64 * 2.5),
            )
        } else {
            Duration::ZERO
        };
    let (mut gate, server) = if opts.spawn_gate {
        let (gate, addr) = spawn_gate(opts, lifetime)?;
        let pid = gate.pid;
        (
            Some(gate),
            Server {
                addr,
                pid: Some(pid),
                tck,
            },
        )
    } else {
        let addr = opts
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3010)));
        (
            None,
            Server {
                addr,
                pid: opts.server_pid,
                tck,
            },
        )
    };
    let epoch = Instant::now();
    let mut pool = Pool::start(opts.client_threads, epoch)?;
    let mut res = Results::default();

    // The control connection (unbound: it asks for stats and starts blasts, gets no pushes).
    pool.begin();
    pool.send(
        0,
        Cmd::Setup {
            addr: server.addr,
            roles: vec![Role::Control],
            sources: Vec::new(),
            max_inflight: 1,
            deadline: Instant::now() + Duration::from_secs(10),
        },
    )?;
    match pool.gather(1, Duration::from_secs(15))?.pop() {
        Some((_, Report::Setup { ok: 1, .. })) => {}
        _ => {
            let why: Vec<String> = pool.notes().into_keys().collect();
            return Err(format!(
                "cannot connect to {} (handshake, ack, heartbeat): {}",
                server.addr,
                why.join("; ")
            ));
        }
    }
    let mem_before = MemBefore {
        vm_rss: server.pid.and_then(vm_rss),
        stats: pool.stats().ok(),
    };
    let machine0 = machine_jiffies();
    let server0 = server.cpu();
    let me0 = self_cpu();

    let mut sessions = 0;
    let closes = pool.unexpected_closes();
    match scenario_setup(opts, &mut pool, &server, &mut res) {
        Ok(n) => sessions = n,
        Err(e) => res.fail("setup", e),
    }
    check_closes(&mut pool, &mut res, "setup", closes);
    let heartbeat = pool.statuses.iter().find_map(|s| s.heartbeat);

    type Scenario = fn(&Opts, &mut Pool, &Server, usize, &mut Results) -> Result<(), String>;
    let scenarios: [(&'static str, Scenario); 4] = [
        ("blast", scenario_blast),
        ("fanout", scenario_fanout),
        ("echo", scenario_echo),
        ("saturation", scenario_saturation),
    ];
    if sessions > 0 {
        if opts.wants("memory") {
            if let Err(e) = scenario_memory(&pool, &server, &mem_before, sessions, &mut res) {
                res.fail("memory", e);
            }
        }
        if opts.wants("hold") {
            let closes = pool.unexpected_closes();
            if let Err(e) = scenario_hold(opts, &mut pool, &server, &mem_before, sessions, &mut res)
            {
                res.fail("hold", e);
            }
            check_closes(&mut pool, &mut res, "hold", closes);
        }
        for (name, scenario) in scenarios {
            if !opts.wants(name) {
                continue;
            }
            if let Some(status) = gate.as_mut().and_then(GateProc::exited) {
                res.fail(name, format!("the gate exited ({status})"));
                break;
            }
            eprintln!("loadgen: scenario {name}");
            let closes = pool.unexpected_closes();
            if let Err(e) = scenario(opts, &mut pool, &server, sessions, &mut res) {
                res.fail(name, e);
            }
            check_closes(&mut pool, &mut res, name, closes);
        }
    }
    if let Some(status) = gate.as_mut().and_then(GateProc::exited) {
        if !res.failures.iter().any(|f| f.contains("the gate exited")) {
            res.failures
                .push(format!("the gate exited during the run ({status})"));
        }
    }
    let shares = match (machine0, machine_jiffies(), self_cpu_since(&me0, tck)) {
        (Some((b0, t0)), Some((b1, t1)), Some((me_ns, wall))) if t1 > t0 => {
            let cores = header.nproc as f64;
            let wall_ns = wall.as_nanos() as f64 * cores;
            Some(LoadShares {
                machine: 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64,
                server: server
                    .cpu_since(&server0)
                    .map(|(ns, _)| 100.0 * ns as f64 / wall_ns),
                loadgen: 100.0 * me_ns as f64 / wall_ns,
            })
        }
        _ => None,
    };
    let _ = pool.refresh_status();
    let notes = pool.notes();
    let stray: u64 = pool.statuses.iter().map(|s| s.stray_pushes).sum();
    if stray > 0 {
        res.warnings.push(format!(
            "{stray} push(es) arrived outside a blast (duplicates?)"
        ));
    }
    pool.stop();
    if let Some(mut gate) = gate.take() {
        gate.stop();
    }
    let load_end = loadavg();
    let ok = res.failures.is_empty();
    if opts.json {
        print_json(
            opts, &header, &server, heartbeat, &res, &shares, &load_end, ok,
        );
    } else {
        print_table(
            opts, &header, &server, heartbeat, &res, &shares, &load_end, &notes,
        );
    }
    Ok(ok)
}

fn settings_line(opts: &Opts, server: &Server, heartbeat: Option<u64>) -> String {
    let who = if opts.spawn_gate {
        format!(
            "spawned example gate (pid {}, {} I/O threads)",
            server.pid.unwrap_or(0),
            opts.threads
        )
    } else {
        match server.pid {
            Some(pid) => format!("server pid {pid}"),
            None => "server pid unknown (no CPU/RSS figures; pass --server-pid)".into(),
        }
    };
    format!(
        "server {} — {who}, heartbeat {}; clients {} on {} loadgen thread(s); {} blast(s) of {} rounds × {} B; \
         {} fan-outs; echo {}/s over {} conns; saturation {} conns × {}; {} s per timed scenario",
        server.addr,
        heartbeat.map_or("off".into(), |h| format!("{h} s")),
        opts.clients,
        opts.client_threads,
        opts.blast_runs,
        opts.rounds,
        opts.size,
        opts.fanouts,
        opts.rate,
        opts.echo_conns,
        opts.sat_conns,
        opts.window,
        opts.seconds
    )
}

#[allow(clippy::too_many_arguments)]
fn print_table(
    opts: &Opts,
    h: &Header,
    server: &Server,
    heartbeat: Option<u64>,
    res: &Results,
    shares: &Option<LoadShares>,
    load_end: &str,
    notes: &BTreeMap<String, u64>,
) {
    println!(
        "gatehouse loadgen — machine: {}, nproc {}, Linux {}; load average {} at start, {} at end",
        h.cpu, h.nproc, h.kernel, h.load_start, load_end
    );
    println!("{}", settings_line(opts, server, heartbeat));
    println!(
        "server CPU: /proc/PID/task/*/schedstat (ns), /proc/PID/stat ticks when threads exited (CLK_TCK {}{})",
        h.tck,
        if h.tck_measured { "" } else { ", assumed" }
    );
    let values: Vec<String> = res.rows.iter().map(|r| fmt_value(r.value)).collect();
    let w_s = res
        .rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let w_f = res
        .rows
        .iter()
        .map(|r| r.figure.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let w_v = values.iter().map(|v| v.len()).max().unwrap_or(5).max(5);
    println!();
    println!(
        "{:<w_s$}  {:<w_f$}  {:>w_v$}  unit",
        "scenario", "figure", "value"
    );
    println!("{:-<w_s$}  {:-<w_f$}  {:->w_v$}  {:-<10}", "", "", "", "");
    for (r, v) in res.rows.iter().zip(&values) {
        if r.value.is_none() && r.unit.is_empty() {
            println!("{:<w_s$}  {}", r.scenario, r.figure);
        } else {
            let pad = w_f - r.figure.chars().count();
            println!(
                "{:<w_s$}  {}{:pad$}  {:>w_v$}  {}",
                r.scenario, r.figure, "", v, r.unit
            );
        }
    }
    println!();
    if let Some(s) = shares {
        println!(
            "machine CPU during the scenarios: {:.0}% busy (of {} cores) = gate {} + loadgen {:.0}% + other processes {}",
            s.machine,
            h.nproc,
            s.server.map_or("?".into(), |v| format!("{v:.0}%")),
            s.loadgen,
            s.server.map_or("?".into(), |v| format!("{:.0}%", (s.machine - v - s.loadgen).max(0.0)))
        );
    }
    for w in &res.warnings {
        println!("warning: {w}");
    }
    for (note, count) in notes {
        if !note.starts_with("setup") {
            println!("note: {count}× {note}");
        }
    }
    if res.failures.is_empty() {
        println!("result: all scenarios ran");
    } else {
        for f in &res.failures {
            println!("FAILED: {f}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn print_json(
    opts: &Opts,
    h: &Header,
    server: &Server,
    heartbeat: Option<u64>,
    res: &Results,
    shares: &Option<LoadShares>,
    load_end: &str,
    ok: bool,
) {
    let rows: Vec<Value> = res
        .rows
        .iter()
        .map(|r| {
            json!({"key": r.key, "scenario": r.scenario, "figure": r.figure, "value": r.value, "unit": r.unit})
        })
        .collect();
    let out = json!({
        "tool": "gatehouse-loadgen",
        "ok": ok,
        "machine": {
            "nproc": h.nproc, "cpu": h.cpu, "kernel": h.kernel,
            "loadavg_start": h.load_start, "loadavg_end": load_end,
            "clk_tck": h.tck, "clk_tck_assumed": !h.tck_measured,
            "cpu_busy_pct": shares.as_ref().map(|s| s.machine),
            "server_cpu_pct": shares.as_ref().and_then(|s| s.server),
            "loadgen_cpu_pct": shares.as_ref().map(|s| s.loadgen),
        },
        "server": {
            "addr": server.addr.to_string(), "pid": server.pid, "spawned": opts.spawn_gate,
            "io_threads": opts.spawn_gate.then_some(opts.threads), "heartbeat_s": heartbeat,
        },
        "settings": {
            "clients": opts.clients, "client_threads": opts.client_threads,
            "connect_concurrency": opts.connect_concurrency, "rounds": opts.rounds,
            "size": opts.size, "blast_runs": opts.blast_runs, "fanouts": opts.fanouts, "rate": opts.rate,
            "echo_conns": opts.echo_conns, "seconds": opts.seconds, "sat_conns": opts.sat_conns,
            "window": opts.window,
        },
        "rows": rows,
        "warnings": res.warnings,
        "failures": res.failures,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}
