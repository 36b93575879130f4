//! The demo's child processes: its own `redis-server` (on a unix socket in a temp dir) and the
//! two gates (this executable again, in the gate role). Each is stopped by its PID when its
//! guard drops, and the gates also exit when their stdin closes (if this process dies).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child owned by the demo.
pub struct OwnRedis {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs `apt-get` (directly as root, else through `sudo -n`), saying so on stdout.
fn install_redis() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let (prog, prefix): (&str, &[&str]) = if root {
        ("apt-get", &[])
    } else if on_path("sudo").is_some() {
        ("sudo", &["-n", "apt-get"])
    } else {
        return Err(
            "redis-server is not on PATH, and installing it needs root or sudo: \
                    install the redis-server package, or pass --redis URL"
                .into(),
        );
    };
    if on_path("apt-get").is_none() {
        return Err(
            "redis-server is not on PATH and apt-get is not available: install Redis \
                    (7.x), or pass --redis URL"
                .into(),
        );
    }
    println!("redis-server is not on PATH: installing it with `{prog} {} apt-get install -y redis-server` …", prefix.join(" "));
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "redis-server"][..],
    ] {
        let status = Command::new(prog)
            .args(prefix)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run {prog}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "`apt-get {}` failed ({status}): install redis-server yourself, or pass --redis URL",
                args.join(" ")
            ));
        }
    }
    println!("redis-server installed.");
    Ok(())
}

impl OwnRedis {
    /// Starts `redis-server --port 0 --unixsocket <tmp>/r.sock --save '' --appendonly no`
    /// (installing it first if it is missing) and waits until it answers PING.
    pub fn start() -> Result<OwnRedis, String> {
        if on_path("redis-server").is_none() {
            install_redis()?;
            if on_path("redis-server").is_none() {
                return Err("redis-server still not on PATH after installing it".into());
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-cluster-demo-{}-{}",
            std::process::id(),
            now_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let socket = dir.join("r.sock");
        let log = std::fs::File::create(dir.join("redis.log"))
            .map_err(|e| format!("create redis.log: {e}"))?;
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
            ])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let redis = OwnRedis { child, dir, socket };
        let start = Instant::now();
        loop {
            if let Ok(mut con) = connect(&redis.url()) {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return Ok(redis);
                }
            }
            if start.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(redis.dir.join("redis.log")).unwrap_or_default();
                return Err(format!("redis-server not ready within 10 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis+unix://…/r.sock`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        // Child::kill is SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// A plain Redis connection (5 s timeout).
pub fn connect(url: &str) -> Result<redis::Connection, String> {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        .map_err(|e| format!("cannot connect to redis: {e}"))
}

/// A gate child process: its address, its control pipe and the JSON lines it prints.
pub struct Gate {
    /// `fe-a` or `fe-b`.
    pub fid: String,
    /// Its pomelo TCP address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: crossbeam_channel::Receiver<Value>,
}

impl Gate {
    /// Starts this executable as gate `fid` and waits (10 s) for its `ready` line.
    pub fn spawn(exe: &Path, fid: &str, env: &[(&str, String)]) -> Result<Gate, String> {
        let mut child = Command::new(exe)
            .env("GH_EXAMPLE_ROLE", "gate")
            .env("GH_FID", fid)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start gate {fid}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (tx, lines) = crossbeam_channel::unbounded();
        if let Some(out) = stdout {
            let fid = fid.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                        Err(_) => println!("  [{fid}] {line}"),
                    }
                }
            });
        }
        let mut gate = Gate {
            fid: fid.to_string(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: 0,
            child: Some(child),
            stdin,
            lines,
        };
        let ready = gate.expect("ready", Duration::from_secs(10))?;
        gate.addr = ready["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("gate {fid}: bad ready line {ready}"))?;
        gate.pid = gate.child.as_ref().map_or(0, Child::id);
        Ok(gate)
    }

    /// Sends one JSON command line.
    pub fn send(&mut self, cmd: &Value) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("gate {} is gone", self.fid))?;
        writeln!(stdin, "{cmd}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("gate {}: {e}", self.fid))
    }

    /// Waits for the next line with `"event": event` (others are skipped).
    pub fn expect(&mut self, event: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) if v["event"] == event => return Ok(v),
                Ok(v) if v["event"] == "error" => {
                    return Err(format!("gate {}: {}", self.fid, v["error"]))
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "gate {}: no `{event}` line within {timeout:?}",
                        self.fid
                    ))
                }
            }
        }
    }

    /// SIGKILLs the gate (by PID) and reaps it.
    pub fn kill9(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`, assuming the
/// usual 100 ticks per second; `None` where unavailable.
pub fn cpu_ms(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10)
}

/// CPU used by a set of processes between two points.
pub struct CpuMeter {
    pids: Vec<(&'static str, u32, u64)>,
}

impl CpuMeter {
    /// Starts counting for these `(name, pid)`s.
    pub fn start(pids: &[(&'static str, u32)]) -> CpuMeter {
        CpuMeter {
            pids: pids
                .iter()
                .map(|(n, p)| (*n, *p, cpu_ms(*p).unwrap_or(0)))
                .collect(),
        }
    }

    /// `name N ms, …` and the total in ms.
    pub fn stop(&self) -> (String, u64) {
        let mut parts = Vec::new();
        let mut total = 0;
        for (name, pid, before) in &self.pids {
            let used = cpu_ms(*pid).unwrap_or(*before).saturating_sub(*before);
            total += used;
            parts.push(format!("{name} {used} ms"));
        }
        (parts.join(", "), total)
    }
}
