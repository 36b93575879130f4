//! One run: the machine header, the gate (spawned or given), the client pool and the control
//! connection, then every scenario in order, then the report.

use crate::cli::Opts;
use crate::client::{Cmd, Pool, Report, Role};
use crate::cpu::self_cpu;
use crate::cpu::self_cpu_since;
use crate::gate::{spawn_gate, GateProc};
use crate::proc::{clk_tck, cpu_model, loadavg, machine_jiffies, read, vm_rss};
use crate::report::{self, Header, LoadShares, Results};
use crate::scenario::{self, check_closes, push_budget, Ctx, MemBefore, Scenario};
use crate::server::Server;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Runs everything; `Ok(false)` when a scenario failed outright.
pub fn run(opts: &Opts) -> Result<bool, String> {
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
    match scenario::setup::run(opts, &mut pool, &server, &mut res) {
        Ok(n) => sessions = n,
        Err(e) => res.fail("setup", e),
    }
    check_closes(&mut pool, &mut res, "setup", closes);
    let heartbeat = pool.heartbeat();

    let scenarios: [(&'static str, Scenario); 4] = [
        ("blast", scenario::blast::run),
        ("fanout", scenario::fanout::run),
        ("echo", scenario::echo::run),
        ("saturation", scenario::saturation::run),
    ];
    if sessions > 0 {
        if opts.wants("memory") {
            if let Err(e) = scenario::memory::run(&pool, &server, &mem_before, sessions, &mut res) {
                res.fail("memory", e);
            }
        }
        if opts.wants("hold") {
            let closes = pool.unexpected_closes();
            if let Err(e) =
                scenario::hold::run(opts, &mut pool, &server, &mem_before, sessions, &mut res)
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
            let cx = Ctx {
                opts,
                pool: &mut pool,
                server: &server,
                sessions,
            };
            if let Err(e) = scenario(cx, &mut res) {
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
    let stray = pool.stray_pushes();
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
    let out = report::Report {
        opts,
        header: &header,
        server: &server,
        heartbeat,
        res: &res,
        shares: &shares,
        load_end: &load_end,
    };
    if opts.json {
        report::json::print(&out, ok);
    } else {
        report::table::print(&out, &notes);
    }
    Ok(ok)
}
