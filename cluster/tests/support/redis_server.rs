//! A test guard around a real `redis-server` child process.
//!
//! Every server runs in its own temporary directory (its socket, its log), never on 6379, and is
//! killed by PID (SIGKILL) when the guard drops, so nothing leaks between tests or onto other
//! engineers' servers on the same machine.

#![allow(dead_code)] // Each test binary uses a different part of the guard.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a starting server may take to answer PING before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a test server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisAddr {
    /// A unix socket path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

/// A running `redis-server` child owned by the test; killed (SIGKILL) and its directory removed
/// on drop.
pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    addr: RedisAddr,
    extra: Vec<String>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir, unique per process, call and instant.
fn fresh_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gh-redis-{}-{}-{}", std::process::id(), n, nanos));
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A loopback port that was free a moment ago (bound then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

impl RedisServer {
    /// Starts `redis-server` on a unix socket `<fresh temp dir>/r.sock` (no TCP, no persistence)
    /// and returns once it answers PING. Panics (with the server's log) if it is not ready within
    /// 10 s, or with an install hint if `redis-server` is not on PATH.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// As [`RedisServer::start`], with extra `redis-server` arguments appended, e.g.
    /// `start_with(&["--requirepass", "pw"])`. They are kept for [`RedisServer::restart`].
    pub fn start_with(args: &[&str]) -> RedisServer {
        let dir = fresh_dir();
        let addr = RedisAddr::Unix(dir.join("r.sock"));
        let mut s = RedisServer {
            child: None,
            dir,
            addr,
            extra: args.iter().map(|s| s.to_string()).collect(),
        };
        if let Err(log) = s.spawn_and_wait() {
            panic!("redis-server did not become ready:\n{log}");
        }
        s
    }

    /// Starts `redis-server` on a free loopback TCP port (`--bind 127.0.0.1`), e.g. to put a fault
    /// proxy in front of it. Same readiness guarantee as [`RedisServer::start`].
    pub fn start_tcp() -> RedisServer {
        Self::start_tcp_with(&[])
    }

    /// As [`RedisServer::start_tcp`], with extra `redis-server` arguments.
    pub fn start_tcp_with(args: &[&str]) -> RedisServer {
        let mut s = RedisServer {
            child: None,
            dir: fresh_dir(),
            addr: RedisAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
            extra: args.iter().map(|s| s.to_string()).collect(),
        };
        let mut last = String::new();
        // The free port can be taken by someone else between probe and bind: retry a few times.
        for _ in 0..5 {
            s.addr = RedisAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port())));
            match s.spawn_and_wait() {
                Ok(()) => return s,
                Err(log) => last = log,
            }
        }
        drop(s);
        panic!("redis-server (tcp) did not become ready after 5 attempts:\n{last}");
    }

    /// The URL for `redis::Client::open`: `redis+unix:///…/r.sock` or `redis://127.0.0.1:<port>/`.
    /// It carries no credentials.
    pub fn url(&self) -> String {
        match &self.addr {
            RedisAddr::Unix(p) => format!("redis+unix://{}", p.display()),
            RedisAddr::Tcp(a) => format!("redis://{a}/"),
        }
    }

    /// Where the server listens.
    pub fn addr(&self) -> RedisAddr {
        self.addr.clone()
    }

    /// The server process id (of the current incarnation). Panics if the server was killed and not
    /// restarted.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// The server's temp directory (its socket and `redis.log` live there).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILLs the server (by PID) and reaps it. No-op if it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same address with the same arguments (killing the current
    /// incarnation first if it still runs) and waits until it answers PING. Its data is empty.
    pub fn restart(&mut self) {
        self.kill9();
        if let Err(log) = self.spawn_and_wait() {
            panic!("redis-server did not come back after restart:\n{log}");
        }
    }

    /// A plain connection for assertions (`HEXISTS`, `EXISTS`, …). No credentials are sent.
    pub fn client(&self) -> redis::Connection {
        let client = redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("bad url {}: {e}", self.url()));
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn read_log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// Spawns the server and waits for PING; on failure kills it and returns its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = File::create(self.log_path())
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", self.log_path().display()));
        let log2 = log.try_clone().expect("clone log file handle");
        let mut cmd = Command::new("redis-server");
        match &self.addr {
            RedisAddr::Unix(p) => {
                cmd.args(["--port", "0", "--unixsocket"]).arg(p);
            }
            RedisAddr::Tcp(a) => {
                cmd.args(["--port", &a.port().to_string(), "--bind", "127.0.0.1"]);
            }
        }
        cmd.args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
        ])
        .arg(&self.dir)
        .args(&self.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!(
                    "redis-server not found: install Debian's redis-server (bin/test.sh does it)"
                )
            }
            Err(e) => panic!("cannot spawn redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.answers_ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}; log:\n{}", self.read_log()));
                }
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "no PING answer within {READY_TIMEOUT:?}; log:\n{}",
                    self.read_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// One raw `PING` over a fresh socket; `+PONG` or an auth error (`-NOAUTH`) both mean "up".
    fn answers_ping(&self) -> bool {
        fn ping<S: Read + Write>(mut s: S) -> bool {
            if s.write_all(b"PING\r\n").is_err() {
                return false;
            }
            let mut buf = [0u8; 64];
            matches!(s.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
        }
        let t = Some(Duration::from_millis(500));
        match &self.addr {
            RedisAddr::Unix(p) => match UnixStream::connect(p) {
                Ok(s) => s.set_read_timeout(t).is_ok() && ping(s),
                Err(_) => false,
            },
            RedisAddr::Tcp(a) => match TcpStream::connect_timeout(a, Duration::from_millis(500)) {
                Ok(s) => s.set_read_timeout(t).is_ok() && ping(s),
                Err(_) => false,
            },
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
