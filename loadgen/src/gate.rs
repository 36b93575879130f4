//! The gate this run spawns (`--spawn-gate`): building it, starting it, stopping it.
//!
//! Without `--gate-bin` the example gate is built with `cargo build --release -p gatehouse
//! --example gate` in the workspace root (the parent of this crate's manifest directory), and its path is read
//! from cargo's own JSON messages (the `compiler-artifact` of target `gate`), so a
//! `CARGO_TARGET_DIR` or a `build.target-dir` setting is followed wherever it points. It is
//! started on a free loopback port; its first stdout line says where it listens, later lines
//! go to stderr prefixed `[gate]`.

use crate::cli::Opts;
use serde_json::Value;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The gate process the load generator started; killed (and reaped) on drop, so every exit
/// path, including errors and panics, stops it.
pub struct GateProc {
    child: Child,
    /// Its process id, for the CPU and RSS readings.
    pub pid: u32,
}

impl GateProc {
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    pub fn stop(&mut self) {
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

/// Waits for `child` to exit successfully, at most `limit` (then kills it).
pub fn wait_child(child: &mut Child, limit: Duration, what: &str) -> Result<(), String> {
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

/// The workspace root: the parent of this crate's manifest directory (loadgen/ sits in it),
/// checked to hold the gate example.
pub fn workspace_root() -> Result<PathBuf, String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", manifest.display()))?;
    if !root.join("examples").join("gate.rs").is_file() || !root.join("Cargo.toml").is_file() {
        return Err(format!(
            "the gatehouse workspace is not at {} (no Cargo.toml and examples/gate.rs there); \
             build the gate yourself and pass --gate-bin PATH",
            root.display()
        ));
    }
    Ok(root.to_path_buf())
}

/// Builds the example gate (release) in the workspace root and returns its path.
pub fn build_gate() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let dir = workspace_root()?;
    eprintln!(
        "loadgen: {} build --release -p gatehouse --example gate   (in {}; the first build takes a few minutes)",
        Path::new(&cargo).display(),
        dir.display()
    );
    // cargo's JSON messages come to us (the gate's path is in them); its human-readable
    // diagnostics and progress go to stderr, so `--json` output stays clean.
    let mut child = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "gatehouse",
            "--example",
            "gate",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let reader = child.stdout.take().map(|stdout| {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(exe) = gate_artifact(&line) {
                    let _ = tx.send(exe);
                }
            }
        })
    });
    let status = wait_child(
        &mut child,
        Duration::from_secs(30 * 60),
        "cargo build --example gate",
    );
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    status?;
    match rx.try_iter().last() {
        Some(exe) => Ok(exe),
        None => Ok(gate_path(&dir)),
    }
}

/// The gate's executable from one line of cargo's `--message-format=json` output, if the line
/// is the artifact of target `gate`.
fn gate_artifact(line: &str) -> Option<PathBuf> {
    if !line.contains("\"compiler-artifact\"") {
        return None;
    }
    let msg: Value = serde_json::from_str(line).ok()?;
    (msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "gate")
        .then(|| msg["executable"].as_str().map(PathBuf::from))
        .flatten()
}

/// Where `cargo build --release --example gate` puts the gate when cargo's messages did not
/// say: `$CARGO_TARGET_DIR` (relative to the workspace root) or the workspace's `target/`.
fn gate_path(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root.join("target"), |t| root.join(t));
    target.join("release").join("examples").join("gate")
}

/// The gate's default connection limit (`ServerBuilder::max_connections`).
pub const GATE_DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// `--max-connections` for the spawned gate: the user's, or enough for every client plus the
/// control connection when the gate's default is too small; `None` keeps the default.
pub fn gate_max_connections(opts: &Opts) -> Option<usize> {
    opts.max_connections.or_else(|| {
        let needed = opts.clients + 100;
        (needed > GATE_DEFAULT_MAX_CONNECTIONS).then_some(needed)
    })
}

pub fn spawn_gate(opts: &Opts, lifetime: Duration) -> Result<(GateProc, SocketAddr), String> {
    let bin = match &opts.gate_bin {
        Some(bin) => bin.clone(),
        None => build_gate()?,
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
