//! Child processes of the test binary: the test re-executes itself (`std::env::current_exe()`)
//! with `GH_ROLE=<role>`, so a frontend runs in its own process without extra bin targets
//! (research.md §4.9).
//!
//! Parent → child: JSON lines on the child's stdin ([`Child::send_line`], read in the child with
//! [`stdin_lines`]). Child → parent: JSON lines on its stdout ([`emit`]), collected by a reader
//! thread in the parent ([`Child::wait_event`]). The child's stderr is inherited, so its logs and
//! panics show in the test output.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;

/// A child process running this test binary in a role. Dropping it kills it (SIGKILL by PID)
/// and reaps it.
pub struct Child {
    role: String,
    proc: std::process::Child,
    stdin: Option<ChildStdin>,
    events: Receiver<Value>,
    /// Events received but not yet matched by a `wait_event`, in arrival order.
    backlog: VecDeque<Value>,
    /// Every event received, for failure messages.
    history: Vec<Value>,
    reader: Option<JoinHandle<()>>,
    /// The exit status, once reaped.
    status: Option<ExitStatus>,
}

impl Child {
    /// Starts this test binary with env `GH_ROLE=<role>` plus `env`, stdin and stdout piped.
    /// Each stdout line that parses as JSON becomes an event; other lines are copied to this
    /// process's stderr, prefixed with the role. When the child's stdout ends, a final event
    /// `{"ev":"eof"}` is delivered. Panics if the process cannot be started.
    pub fn spawn(role: &str, env: &[(&str, String)]) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.env("GH_ROLE", role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn child role {role}: {e}"));
        let stdin = proc.stdin.take();
        let stdout = proc.stdout.take().expect("piped stdout");
        let (tx, events) = crossbeam_channel::unbounded();
        let tag = format!("{role}[{}]", proc.id());
        let reader = std::thread::Builder::new()
            .name(format!("child-{role}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                        Err(_) => eprintln!("{tag}: {line}"),
                    }
                }
                let _ = tx.send(serde_json::json!({"ev": "eof"}));
            })
            .expect("spawn child reader");
        Child {
            role: role.to_owned(),
            proc,
            stdin,
            events,
            backlog: VecDeque::new(),
            history: Vec::new(),
            reader: Some(reader),
            status: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// Returns (and consumes) the first event, oldest first, for which `pred` is true: events
    /// that arrived earlier and were not consumed by a previous `wait_event` are searched first,
    /// then new ones are awaited. Non-matching events stay available for later waits. Panics
    /// after `timeout` with every event this child has sent so far.
    pub fn wait_event(&mut self, mut pred: impl FnMut(&Value) -> bool, timeout: Duration) -> Value {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            return self.backlog.remove(i).expect("index from position");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    self.history.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                    self.backlog.push_back(ev);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "child {} (pid {}): no matching event within {timeout:?}; events so far: {}",
                    self.role,
                    self.pid(),
                    Value::Array(self.history.clone())
                ),
            }
        }
    }

    /// Waits for the event whose `"ev"` field equals `ev` (see [`wait_event`](Self::wait_event)).
    pub fn wait_ev(&mut self, ev: &str, timeout: Duration) -> Value {
        self.wait_event(|v| v["ev"] == ev, timeout)
    }

    /// Kills the child with SIGKILL and reaps it. Idempotent; a no-op once it has exited.
    pub fn kill9(&mut self) {
        if self.status.is_none() {
            // SIGKILL first, stdin after: closing stdin first would let the child exit
            // cleanly before the signal (a crash test must see a crash).
            // `Child::kill` errs only if the process was already reaped.
            let _ = self.proc.kill();
            self.status = self.proc.wait().ok();
        }
        self.stdin = None;
    }

    /// Closes the child's stdin: a role's command loop ends then, and the child exits.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits (at most `timeout`) for the child to exit and returns its status; panics on
    /// timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status {
                return status;
            }
            match self.proc.try_wait() {
                Ok(Some(status)) => self.status = Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => panic!(
                    "child {} (pid {}) still running after {timeout:?}",
                    self.role,
                    self.pid()
                ),
                Err(e) => panic!("child {}: wait: {e}", self.role),
            }
        }
    }

    /// Writes `line` and a newline to the child's stdin (a command for its loop). Panics if the
    /// child's stdin is closed (it died or was killed).
    pub fn send_line(&mut self, line: &str) {
        let role = &self.role;
        let stdin = self
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("child {role}: stdin closed (killed)"));
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("child {role}: write to stdin: {e}"));
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill9();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// In the child: prints `v` as one line on stdout and flushes, so the parent sees it at once.
pub fn emit(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

/// In the child: reads JSON lines from stdin on a thread and hands them to the returned channel.
/// Lines that are not JSON are reported on stderr and skipped. The channel disconnects when
/// stdin ends, which also happens when the parent dies: a role should exit then, so no child
/// outlives its test.
pub fn stdin_lines() -> Receiver<Value> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("child-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("child stdin: not JSON ({e}): {line}"),
                }
            }
        })
        .expect("spawn stdin reader");
    rx
}
