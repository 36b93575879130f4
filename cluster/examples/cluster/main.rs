//! The cluster demo: two gatehouse gates (separate processes) joined through Redis, a backend
//! that pushes to and kicks their users, and the figures that matter, measured on this machine.
//!
//! ```sh
//! cargo run --release -p gatehouse-cluster --example cluster            # ~40 s
//! cargo run --release -p gatehouse-cluster --example cluster -- --quick # CI smoke, ~10 s
//! cargo run --release -p gatehouse-cluster --example cluster -- --help
//! ```
//!
//! Without `--redis URL` the demo starts its own `redis-server` (from PATH; installed with
//! apt-get if missing, which it says) on a unix socket in a temp dir, and stops it by PID at
//! exit. It then starts itself twice more as gates `fe-a` and `fe-b` (`GH_EXAMPLE_ROLE=gate`);
//! this process is the backend and runs the pomelo clients. Phases:
//!
//! 1. floor: raw Redis PUBLISH → SUBSCRIBE one-way latency at the paced rate;
//! 2. cross-frontend push latency (`push_by_uids` to a client on fe-b) at the same rate, each
//!    push checked to arrive exactly once;
//! 3. peak cross-frontend pushes/s with many tickets in flight (the bus batches them);
//! 4. directory cost per bind (N in-memory sessions bound on fe-b until `is_online` says so);
//! 5. resync after the directory is lost (`FLUSHALL` on the demo's own Redis; with `--redis`,
//!    only the demo's keys are deleted);
//! 6. kick across frontends (one uid on both gates);
//! 7. crash cleanup: `kill -9` fe-b, time until its uids leave the directory.

mod client;
mod gate;
mod procs;

use clap::Parser;
use client::{Client, Event};
use gatehouse_cluster::{Cluster, ClusterConfig, ClusterError, Outcome, PushTicket};
use procs::{Gate, OwnRedis};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Runs two gatehouse gates joined through Redis and measures the cluster layer: raw Redis
/// latency floor, cross-frontend push latency and peak rate, directory bind and resync cost,
/// cross-frontend kick, crash cleanup.
#[derive(Debug, Parser)]
#[command(name = "cluster")]
struct Cli {
    /// Use this Redis (`redis://host:port/db`, `redis+unix:///path`) instead of starting one.
    /// Phase 5 then deletes only the demo's keys instead of FLUSHALL.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Short phases, for CI smoke runs.
    #[arg(long)]
    quick: bool,
    /// Frontend lease for the demo, in ms (heartbeat and reaper sweep: a quarter of it). The
    /// production default is 10 000 ms (heartbeat and sweep 2 s).
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(200..=60_000))]
    lease_ms: u64,
    /// Paced rate of phases 1 and 2, messages per second.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
    rate: u64,
    /// Seconds of phases 1 and 2 each [default: 3, --quick: 0.5].
    #[arg(long, value_name = "SECS")]
    seconds: Option<f64>,
    /// Seconds of phase 3 [default: 4, --quick: 1].
    #[arg(long, value_name = "SECS")]
    peak_seconds: Option<f64>,
    /// Push tickets outstanding at once in phase 3.
    #[arg(long, value_name = "N", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    window: u64,
    /// Clients per gate in phase 3.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Uids bound in phases 4 and 5 [default: 20000, --quick: 2000].
    #[arg(long, value_name = "N")]
    binds: Option<u64>,
}

/// Microseconds since the demo's clock started (one monotonic base for all its threads).
pub fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The timings every node of the demo uses: a short lease so the crash phase is quick.
pub fn demo_config(url: &str, node: &str, prefix: &str, lease_ms: u64) -> ClusterConfig {
    let lease = Duration::from_millis(lease_ms);
    ClusterConfig::new(url, node)
        .prefix(prefix)
        .lease_ttl(lease)
        .heartbeat(lease / 4)
        .sweep(lease / 4)
}

fn main() {
    match std::env::var("GH_EXAMPLE_ROLE").ok().as_deref() {
        Some("gate") => {
            logger("gate");
            gate::run();
            return;
        }
        Some(other) => {
            eprintln!("cluster demo: unknown GH_EXAMPLE_ROLE {other:?} (only `gate`)");
            std::process::exit(2);
        }
        None => {}
    }
    let cli = Cli::parse();
    logger("backend");
    if let Err(e) = run(&cli) {
        eprintln!("cluster demo failed: {e}");
        std::process::exit(1);
    }
}

/// Sorted samples (µs) → p50 / p99 / p99.9.
#[derive(Debug, Clone, Copy, Default)]
struct Lat {
    n: usize,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Lat {
    fn of(mut samples: Vec<u64>) -> Lat {
        samples.sort_unstable();
        let n = samples.len();
        let pct = |p: f64| -> u64 {
            if n == 0 {
                return 0;
            }
            let rank = (p * n as f64).ceil() as usize;
            samples[rank.clamp(1, n) - 1]
        };
        Lat {
            n,
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
            max: samples.last().copied().unwrap_or(0),
        }
    }
}

impl std::fmt::Display for Lat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} µs, p99 {} µs, p99.9 {} µs (max {} µs, n = {})",
            self.p50, self.p99, self.p999, self.max, self.n
        )
    }
}

/// Calls `send(i)` for i in 0..n at `rate` per second (sleeping pacer; late sends go at once).
/// Returns the achieved rate.
fn pace(rate: u64, n: u64, mut send: impl FnMut(u64) -> Result<(), String>) -> Result<f64, String> {
    let start = Instant::now();
    let gap = 1e9 / rate as f64;
    for i in 0..n {
        let due = start + Duration::from_nanos((i as f64 * gap) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        send(i)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

struct Table(Vec<(String, String)>);

impl Table {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let (what, value) = (what.into(), value.into());
        println!("  → {what}: {value}");
        self.0.push((what, value));
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let secs = cli.seconds.unwrap_or(if cli.quick { 0.5 } else { 3.0 });
    let peak_secs = cli
        .peak_seconds
        .unwrap_or(if cli.quick { 1.0 } else { 4.0 });
    let binds = cli.binds.unwrap_or(if cli.quick { 2_000 } else { 20_000 });
    if !(secs > 0.0 && peak_secs > 0.0 && binds > 0) {
        return Err("--seconds, --peak-seconds and --binds must be positive".into());
    }
    let n_paced = ((cli.rate as f64 * secs) as u64).max(1);
    now_us();

    let own = match &cli.redis {
        Some(_) => None,
        None => Some(OwnRedis::start()?),
    };
    let url = match &own {
        Some(r) => r.url(),
        None => cli.redis.clone().unwrap_or_default(),
    };
    match &own {
        Some(r) => println!("redis: own redis-server (pid {}) at {}", r.pid(), r.url()),
        None => {
            println!("redis: using --redis (the demo touches only keys and channels of its prefix)")
        }
    }
    let prefix = format!("ghdemo{}", std::process::id());
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let env = [
        ("GH_REDIS_URL", url.clone()),
        ("GH_PREFIX", prefix.clone()),
        ("GH_LEASE_MS", cli.lease_ms.to_string()),
    ];
    let mut fe_a = Gate::spawn(&exe, "fe-a", &env)?;
    let mut fe_b = Gate::spawn(&exe, "fe-b", &env)?;
    println!("gates: fe-a on {}, fe-b on {} (lease {} ms, heartbeat/sweep {} ms; production default lease 10 s)",
        fe_a.addr, fe_b.addr, cli.lease_ms, cli.lease_ms / 4);
    let backend = Cluster::connect(demo_config(&url, "be-demo", &prefix, cli.lease_ms))
        .map_err(|e| format!("backend: {e}"))?;
    let mut table = Table(Vec::new());
    let mut pids = vec![
        ("backend+clients", std::process::id()),
        ("fe-a", fe_a.pid),
        ("fe-b", fe_b.pid),
    ];
    if let Some(r) = &own {
        pids.push(("redis", r.pid()));
    }
    let result = phases(
        &pids,
        cli,
        &url,
        &prefix,
        own.is_some(),
        &backend,
        &mut fe_a,
        &mut fe_b,
        &mut table,
        n_paced,
        peak_secs,
        binds,
    );
    backend.shutdown();
    drop(fe_a);
    drop(fe_b);
    if own.is_none() {
        let _ = delete_prefix(&url, &prefix);
    }
    result?;
    println!(
        "\n=== summary ({}) ===",
        if cli.quick { "--quick" } else { "full run" }
    );
    let w = table
        .0
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0);
    for (what, value) in &table.0 {
        println!("{what:<w$}  {value}");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn phases(
    pids: &[(&'static str, u32)],
    cli: &Cli,
    url: &str,
    prefix: &str,
    own_redis: bool,
    backend: &Cluster,
    fe_a: &mut Gate,
    fe_b: &mut Gate,
    table: &mut Table,
    n_paced: u64,
    peak_secs: f64,
    binds: u64,
) -> Result<(), String> {
    // 1. The floor.
    println!(
        "\n[1] floor: raw PUBLISH → SUBSCRIBE, one at a time, {} msg/s, {n_paced} messages",
        cli.rate
    );
    let (floor, achieved) = floor(url, prefix, cli.rate, n_paced)?;
    println!("    achieved {achieved:.0} msg/s");
    table.add("1 floor: redis pub→sub one-way", floor.to_string());

    // 2. Cross-frontend push latency.
    println!("\n[2] cross-frontend push: backend push_by_uids([uid on fe-b]), {} pushes/s, {n_paced} pushes", cli.rate);
    let lat_b = login(fe_b, "lat-b")?;
    wait_online(backend, &["lat-b".to_string()], Duration::from_secs(5))?;
    let cpu = procs::CpuMeter::start(pids);
    let frames = backend.stats().frames_sent;
    let (push, achieved, exact, stalls) = push_latency(backend, &lat_b, cli.rate, n_paced)?;
    let frames = backend.stats().frames_sent - frames;
    let (cpu, cpu_total) = cpu.stop();
    println!("    achieved {achieved:.0} pushes/s; {exact}");
    println!("    slow pushes: {stalls}");
    println!(
        "    {frames} bus frames ({:.2} pushes/frame); CPU: {cpu} → {:.0} µs CPU per push on {} cores",
        n_paced as f64 / frames.max(1) as f64,
        cpu_total as f64 * 1000.0 / n_paced as f64,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    table.add("2 push one-way (backend → fe-b client)", push.to_string());
    table.add(
        "2 push p50 / floor p50",
        format!("{:.2}×", push.p50 as f64 / floor.p50.max(1) as f64),
    );
    table.add("2 exactly once", exact);

    // 3. Peak.
    println!(
        "\n[3] peak: {} clients per gate, window {} tickets, {peak_secs} s",
        cli.clients, cli.window
    );
    let cpu = procs::CpuMeter::start(pids);
    let (rate, detail) = peak(backend, fe_a, fe_b, cli.clients, cli.window, peak_secs)?;
    println!("    {detail}");
    println!("    CPU: {}", cpu.stop().0);
    table.add(
        "3 peak cross-frontend pushes/s (at the clients)",
        format!("{rate:.0}/s"),
    );

    // 4. Directory cost per bind.
    println!("\n[4] directory: bind {binds} in-memory sessions on fe-b until is_online lists all");
    let bulk: Vec<String> = (0..binds).map(|i| format!("bulk-{i}")).collect();
    let t0 = Instant::now();
    fe_b.send(&json!({"cmd": "bulk", "n": binds, "prefix": "bulk-"}))?;
    let local = fe_b.expect("bulk", Duration::from_secs(60))?;
    let took = wait_online(backend, &bulk, Duration::from_secs(60))?;
    let total = t0.elapsed().max(took);
    println!(
        "    local binds took {} ms on the gate; all {binds} online after {} ms",
        local["us"].as_u64().unwrap_or(0) / 1000,
        total.as_millis()
    );
    table.add(
        "4 directory cost per bind",
        format!(
            "{:.1} µs/bind ({binds} in {} ms, to is_online)",
            total.as_micros() as f64 / binds as f64,
            total.as_millis()
        ),
    );

    // 5. Resync after losing the directory.
    let how = if own_redis {
        "FLUSHALL"
    } else {
        "deleting the demo's keys"
    };
    println!(
        "\n[5] resync: {how} with {binds} uids bound on fe-b; time until all are online again"
    );
    let mut con = procs::connect(url)?;
    let t0 = Instant::now();
    if own_redis {
        redis::cmd("FLUSHALL")
            .query::<()>(&mut con)
            .map_err(|e| format!("FLUSHALL: {e}"))?;
    } else {
        delete_prefix(url, prefix)?;
    }
    wait_online(backend, &bulk, Duration::from_secs(60))?;
    let resync = t0.elapsed();
    fe_b.send(&json!({"cmd": "stats"}))?;
    let stats = fe_b.expect("stats", Duration::from_secs(5))?;
    println!(
        "    fe-b: resyncs {}, fenced {}",
        stats["resyncs"], stats["fenced"]
    );
    table.add(
        "5 resync after directory loss",
        format!(
            "{} ms for {binds} uids (detection ≤ heartbeat {} ms)",
            resync.as_millis(),
            cli.lease_ms / 4
        ),
    );

    // 6. Kick across frontends.
    println!(
        "\n[6] kick: uid `kick-me` logged in on fe-a and on fe-b; kick_by_uid from the backend"
    );
    let ka = login(fe_a, "kick-me")?;
    let kb = login(fe_b, "kick-me")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut fes = backend.frontends_of("kick-me").map_err(|e| e.to_string())?;
        fes.sort();
        if fes == ["fe-a", "fe-b"] {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("kick-me listed on {fes:?}, not on both gates"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let t0 = Instant::now();
    let report = backend
        .kick_by_uid("kick-me", Some("demo kick"))
        .map_err(|e| e.to_string())?;
    let wall = t0.elapsed();
    let mut seen = Vec::new();
    for (fid, c) in [("fe-a", &ka), ("fe-b", &kb)] {
        seen.push(format!("{fid}: {}", kicked_then_closed(c)?));
    }
    println!(
        "    report: {} sessions, {:?}; {}",
        report.sessions,
        report.entries,
        seen.join("; ")
    );
    if report.sessions != 2 {
        return Err(format!("kick reached {} sessions, not 2", report.sessions));
    }
    table.add(
        "6 kick_by_uid across 2 frontends",
        format!(
            "{} µs wall, 2 sessions, both KICK then EOF",
            wall.as_micros()
        ),
    );
    drop((ka, kb));

    // 7. Crash cleanup.
    println!(
        "\n[7] crash: kill -9 fe-b; time until its uids leave the directory (lease {} ms)",
        cli.lease_ms
    );
    let mut fe_b_uids = vec!["lat-b".to_string()];
    fe_b_uids.extend((0..cli.clients).map(|i| format!("peak-b-{i}")));
    fe_b_uids.extend(bulk.iter().cloned());
    drop(lat_b);
    let t0 = Instant::now();
    fe_b.kill9();
    let package = gatehouse_cluster::encode_push("onLat", b"{}").map_err(|e| e.to_string())?;
    // bulk-0's session lives on in fe-b's memory until the kill: the push finds its entry
    // still listed (lease not yet expired) and fe-b's channel without a subscriber.
    let right_away = backend
        .push_by_uids(&["bulk-0"], package)
        .map_err(|e| e.to_string())?
        .wait();
    let right_away = right_away
        .outcome("bulk-0")
        .map_or("no outcome".into(), |o| o.to_string());
    println!("    push to bulk-0 (on fe-b) right after the kill: {right_away}");
    let gone = wait_offline(
        backend,
        &fe_b_uids,
        Duration::from_millis(cli.lease_ms * 3 + 5_000),
    )?;
    let key = format!("{prefix}:fe:fe-b:uids");
    let deadline = Instant::now() + Duration::from_millis(cli.lease_ms * 3 + 5_000);
    let reaped = loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query(&mut con)
            .map_err(|e| format!("EXISTS: {e}"))?;
        if !exists {
            break t0.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("{key} still exists after {:?}", t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    println!(
        "    {} uids offline after {} ms; reverse set reaped after {} ms",
        fe_b_uids.len(),
        gone.as_millis(),
        reaped.as_millis()
    );
    table.add(
        "7 crash cleanup (kill -9 fe-b)",
        format!(
            "offline after {} ms, reaped after {} ms (lease {} ms; production default 10 s); push right after: {}",
            gone.as_millis(),
            reaped.as_millis(),
            cli.lease_ms,
            right_away
        ),
    );
    Ok(())
}

/// A client on `gate` logged in as `uid`.
fn login(gate: &Gate, uid: &str) -> Result<Client, String> {
    let mut c = Client::connect(gate.addr)?;
    let reply = c.request("gate.login", &json!({"uid": uid}))?;
    if reply["code"] != 200 {
        return Err(format!("login {uid} on {}: {reply}", gate.fid));
    }
    Ok(c)
}

/// What a kicked client saw: must be KICK then EOF within 2 s.
fn kicked_then_closed(c: &Client) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut kick = None;
    loop {
        match c.next_event(deadline.saturating_duration_since(Instant::now())) {
            Some(Event::Kick(body)) if kick.is_none() => kick = Some(body),
            Some(Event::Closed) => {
                return match kick {
                    Some(body) => Ok(format!("KICK {body} then EOF")),
                    None => Err("closed without a KICK package".into()),
                }
            }
            Some(other) => return Err(format!("expected KICK then EOF, got {other:?}")),
            None => return Err(format!("not closed within 2 s (kick: {kick:?})")),
        }
    }
}

/// Phase 1: raw PUBLISH → SUBSCRIBE latency on a channel of the demo's prefix.
fn floor(url: &str, prefix: &str, rate: u64, n: u64) -> Result<(Lat, f64), String> {
    let channel = format!("{prefix}:demo-floor");
    let mut sub_con = procs::connect(url)?;
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let sub_channel = channel.clone();
    let subscriber = std::thread::spawn(move || -> Result<Vec<u64>, String> {
        let mut ps = sub_con.as_pubsub();
        ps.subscribe(&sub_channel)
            .map_err(|e| format!("SUBSCRIBE: {e}"))?;
        ps.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let mut lat = Vec::with_capacity(n as usize);
        while (lat.len() as u64) < n {
            let msg = ps.get_message().map_err(|e| format!("subscriber: {e}"))?;
            let at = now_us();
            let payload = msg.get_payload_bytes();
            let sent = payload
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or("short payload")?;
            lat.push(at.saturating_sub(sent));
        }
        Ok(lat)
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "subscriber not ready in 5 s".to_string())?;
    let mut con = procs::connect(url)?;
    let mut payload = [0u8; 64];
    let achieved = pace(rate, n, |i| {
        payload[8..16].copy_from_slice(&i.to_le_bytes());
        payload[..8].copy_from_slice(&now_us().to_le_bytes());
        redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(&payload[..])
            .query::<i64>(&mut con)
            .map(drop)
            .map_err(|e| format!("PUBLISH: {e}"))
    })?;
    let lat = subscriber
        .join()
        .map_err(|_| "subscriber panicked".to_string())??;
    Ok((Lat::of(lat), achieved))
}

/// Phase 2: paced pushes to `lat-b`, each carrying its send time and sequence number.
fn push_latency(
    backend: &Cluster,
    client: &Client,
    rate: u64,
    n: u64,
) -> Result<(Lat, f64, String, String), String> {
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut counts = vec![0u32; n as usize];
            let mut by_seq = vec![0u64; n as usize];
            let mut lat = Vec::with_capacity(n as usize);
            let mut received = 0u64;
            while received < n {
                match client.next_event(Duration::from_secs(3)) {
                    Some(Event::Push { route, .. }) if route != "onLat" => {}
                    Some(Event::Push { body, at_us, .. }) => {
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if let (Some(t), Some(seq)) = (v["t"].as_u64(), v["s"].as_u64()) {
                            let l = at_us.saturating_sub(t);
                            if let Some(c) = counts.get_mut(seq as usize) {
                                *c += 1;
                                by_seq[seq as usize] = l;
                            }
                            lat.push(l);
                        }
                        received += 1;
                    }
                    _ => break,
                }
            }
            (lat, counts, by_seq)
        });
        let mut tickets = Vec::with_capacity(n as usize);
        let achieved = pace(rate, n, |i| {
            let body = format!(r#"{{"t":{},"s":{i}}}"#, now_us());
            let package = gatehouse_cluster::encode_push("onLat", body.as_bytes())
                .map_err(|e| e.to_string())?;
            let ticket = backend
                .push_by_uids(&["lat-b"], package)
                .map_err(|e| format!("push {i}: {e}"))?;
            tickets.push(ticket);
            Ok(())
        });
        let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
        for t in tickets {
            for e in t.wait().entries {
                *outcomes.entry(e.2).or_default() += 1;
            }
        }
        let (lat, counts, by_seq) = receiver
            .join()
            .map_err(|_| "receiver panicked".to_string())?;
        let achieved = achieved?;
        let once = counts.iter().filter(|c| **c == 1).count();
        let missing = counts.iter().filter(|c| **c == 0).count();
        let dup = counts.iter().filter(|c| **c > 1).count();
        let delivered = outcomes.get(&Outcome::Delivered).copied().unwrap_or(0);
        let exact = format!(
            "{once}/{n} arrived exactly once ({missing} missing, {dup} duplicated); tickets: {delivered} delivered{}",
            other_outcomes(&outcomes)
        );
        if once as u64 != n || delivered as u64 != n {
            return Err(format!("phase 2 lost or duplicated pushes: {exact}"));
        }
        let lat = Lat::of(lat);
        Ok((lat, achieved, exact, stalls(&by_seq, lat.p50, rate)))
    })
}

/// Where the slow pushes (over 10 × p50 and 5 ms) sat in the run: episodes of consecutive
/// slow sequence numbers, with when they started (send schedule) and their worst latency.
fn stalls(by_seq: &[u64], p50: u64, rate: u64) -> String {
    let limit = (p50 * 10).max(5_000);
    let mut episodes: Vec<(usize, usize, u64)> = Vec::new();
    for (seq, &l) in by_seq.iter().enumerate() {
        if l <= limit {
            continue;
        }
        match episodes.last_mut() {
            Some(e) if seq <= e.1 + 10 => {
                e.1 = seq;
                e.2 = e.2.max(l);
            }
            _ => episodes.push((seq, seq, l)),
        }
    }
    if episodes.is_empty() {
        return format!("none over {} µs", limit);
    }
    let slow = by_seq.iter().filter(|l| **l > limit).count();
    let list: Vec<String> = episodes
        .iter()
        .take(8)
        .map(|(a, b, worst)| {
            format!(
                "at {} ms for {} pushes (worst {} µs)",
                *a as u64 * 1000 / rate,
                b - a + 1,
                worst
            )
        })
        .collect();
    format!(
        "{slow} over {limit} µs in {} episode(s): {}",
        episodes.len(),
        list.join("; ")
    )
}

fn other_outcomes(outcomes: &HashMap<Outcome, usize>) -> String {
    let mut s = String::new();
    for (o, n) in outcomes {
        if *o != Outcome::Delivered {
            s.push_str(&format!(", {n} {o}"));
        }
    }
    s
}

/// Phase 3: pushes to uids spread over both gates, as fast as a window of tickets allows.
fn peak(
    backend: &Cluster,
    fe_a: &Gate,
    fe_b: &Gate,
    per_gate: u64,
    window: u64,
    secs: f64,
) -> Result<(f64, String), String> {
    let mut clients = Vec::new();
    let mut uids = Vec::new();
    for i in 0..per_gate {
        for (gate, tag) in [(fe_a, "a"), (fe_b, "b")] {
            let uid = format!("peak-{tag}-{i}");
            clients.push(login(gate, &uid)?);
            uids.push(uid);
        }
    }
    wait_online(backend, &uids, Duration::from_secs(5))?;
    let package =
        gatehouse_cluster::encode_push("onPeak", br#"{"p":"peak"}"#).map_err(|e| e.to_string())?;
    let received = AtomicU64::new(0);
    let last_at = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let before = backend.stats();
    std::thread::scope(|s| {
        for c in &clients {
            let (received, last_at, stop) = (&received, &last_at, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Event::Push { route, at_us, .. }) =
                        c.next_event(Duration::from_millis(20))
                    {
                        if route != "onPeak" {
                            continue;
                        }
                        received.fetch_add(1, Ordering::Relaxed);
                        last_at.fetch_max(at_us, Ordering::Relaxed);
                    }
                }
            });
        }
        let start_us = now_us();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut outstanding: VecDeque<PushTicket> = VecDeque::new();
        let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
        let settle = |t: PushTicket, outcomes: &mut HashMap<Outcome, usize>| {
            for e in t.wait().entries {
                *outcomes.entry(e.2).or_default() += 1;
            }
        };
        let (mut sent, mut refused) = (0u64, 0u64);
        let mut i = 0usize;
        while Instant::now() < end {
            if outstanding.len() as u64 >= window {
                if let Some(t) = outstanding.pop_front() {
                    settle(t, &mut outcomes);
                }
            }
            match backend.push_by_uids(&[&uids[i % uids.len()]], package.clone()) {
                Ok(t) => {
                    outstanding.push_back(t);
                    sent += 1;
                    i += 1;
                }
                Err(ClusterError::Backpressure) => {
                    refused += 1;
                    match outstanding.pop_front() {
                        Some(t) => settle(t, &mut outcomes),
                        None => std::thread::yield_now(),
                    }
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(format!("push: {e}"));
                }
            }
        }
        let send_secs = (now_us() - start_us) as f64 / 1e6;
        for t in outstanding {
            settle(t, &mut outcomes);
        }
        let delivered = outcomes.get(&Outcome::Delivered).copied().unwrap_or(0) as u64;
        let deadline = Instant::now() + Duration::from_secs(10);
        while received.load(Ordering::Relaxed) < delivered && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        let got = received.load(Ordering::Relaxed);
        let span = (last_at.load(Ordering::Relaxed).saturating_sub(start_us)) as f64 / 1e6;
        let after = backend.stats();
        let frames = after.frames_sent - before.frames_sent;
        let rate = got as f64 / span.max(1e-6);
        let detail = format!(
            "sent {sent} in {send_secs:.2} s ({:.0}/s; {refused} refused as queue backpressure and retried); \
             clients received {got} in {span:.2} s; tickets: {delivered} delivered{}; \
             {frames} bus frames ({:.1} pushes/frame), {} retransmits",
            sent as f64 / send_secs,
            other_outcomes(&outcomes),
            sent as f64 / frames.max(1) as f64,
            after.retransmits - before.retransmits
        );
        if delivered != sent || got != delivered {
            return Err(format!(
                "phase 3: not every push delivered exactly once: {detail}"
            ));
        }
        Ok((rate, detail))
    })
}

/// Waits until `is_online` lists every uid (checked in chunks of 1000); returns the time taken.
fn wait_online(backend: &Cluster, uids: &[String], timeout: Duration) -> Result<Duration, String> {
    wait_status(backend, uids, true, timeout)
}

/// Waits until `is_online` lists none of the uids; returns the time taken.
fn wait_offline(backend: &Cluster, uids: &[String], timeout: Duration) -> Result<Duration, String> {
    wait_status(backend, uids, false, timeout)
}

fn wait_status(
    backend: &Cluster,
    uids: &[String],
    online: bool,
    timeout: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut pending: Vec<&str> = uids.iter().map(String::as_str).collect();
    let mut last_err = None;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for chunk in pending.chunks(1000) {
            match backend.is_online(chunk) {
                Ok(status) => still.extend(
                    chunk
                        .iter()
                        .zip(status)
                        .filter(|(_, s)| *s != online)
                        .map(|(u, _)| *u),
                ),
                Err(e) => {
                    last_err = Some(e);
                    still.extend_from_slice(chunk);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if start.elapsed() > timeout {
            return Err(format!(
                "{} of {} uids still {} after {timeout:?} (e.g. {}; last error: {last_err:?})",
                pending.len(),
                uids.len(),
                if online { "offline" } else { "online" },
                pending[0]
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(start.elapsed())
}

/// Deletes every key of the demo's prefix (SCAN + DEL), for a Redis the demo does not own.
fn delete_prefix(url: &str, prefix: &str) -> Result<(), String> {
    let mut con = procs::connect(url)?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .map_err(|e| format!("SCAN: {e}"))?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query::<i64>(&mut con)
                .map_err(|e| format!("DEL: {e}"))?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The demo's log: `env_logger` on stderr, each line tagged with the process's role; `RUST_LOG`
/// filters it (default `warn`: warnings and errors).
fn logger(role: &'static str) {
    use std::io::Write as _;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(move |out, record| writeln!(out, "  [{role} {}] {}", record.level(), record.args()))
        .init();
}

#[cfg(test)]
mod tests {
    use super::{Cli, Lat};
    use clap::error::ErrorKind;
    use clap::Parser;

    #[test]
    fn command_line() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["cluster"], args].concat());
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!((help.kind(), help.exit_code()), (ErrorKind::DisplayHelp, 0));
        for flag in [
            "--redis",
            "--quick",
            "--lease-ms",
            "--rate",
            "--window",
            "--binds",
        ] {
            assert!(
                help.to_string().contains(flag),
                "{flag} missing from --help"
            );
        }
        let unknown = parse(&["--bogus"]).unwrap_err();
        assert_eq!(
            (unknown.kind(), unknown.exit_code()),
            (ErrorKind::UnknownArgument, 2)
        );
        assert_eq!(parse(&["stray"]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["--lease-ms", "50"]).unwrap_err().exit_code(), 2);
        let cli = parse(&[]).unwrap();
        assert_eq!(
            (cli.lease_ms, cli.rate, cli.window, cli.quick),
            (2000, 10_000, 50_000, false)
        );
        let cli = parse(&["--quick", "--redis", "redis://127.0.0.1:7000/"]).unwrap();
        assert!(cli.quick);
        assert_eq!(cli.redis.as_deref(), Some("redis://127.0.0.1:7000/"));
    }

    #[test]
    fn percentiles_index_the_sorted_samples() {
        let lat = Lat::of((1..=1000).rev().collect());
        assert_eq!(
            (lat.p50, lat.p99, lat.p999, lat.max, lat.n),
            (500, 990, 999, 1000, 1000)
        );
        let one = Lat::of(vec![7]);
        assert_eq!((one.p50, one.p99, one.p999), (7, 7, 7));
        assert_eq!(Lat::of(Vec::new()).n, 0);
    }
}
