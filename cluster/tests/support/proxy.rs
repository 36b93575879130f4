//! A deterministic fault-injecting TCP proxy in front of a Redis server (research.md §4.9,
//! scenario 4b): it reproduces "PUBLISH counted a receiver, but the bytes never arrived".
//!
//! The proxy listens on `127.0.0.1:<ephemeral>`; each accepted client gets its own connection
//! to the upstream (unix socket or TCP) and two blocking pump threads, one per direction. On
//! [`FaultProxy::swallow_then_reset`], the upstream → client pumps discard what they read (the
//! clients see silence while Redis believes the bytes were delivered), and after the given time
//! every proxied connection is closed on both sides. Connections accepted after that are
//! proxied normally again, so clients can reconnect.
// Each test binary uses a different subset.
#![allow(dead_code)]
// The workspace's .clippy.toml routes the core's locks through its loom shim; this test-only
// code is never model-checked, so std's locks are the right ones here.
#![allow(clippy::disallowed_types)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::redis_server::RedisAddr;

/// One side of a proxied connection.
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn try_clone(&self) -> std::io::Result<Sock> {
        Ok(match self {
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        // Errors only mean "already closed".
        let _ = match self {
            Sock::Tcp(s) => s.shutdown(Shutdown::Both),
            Sock::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sock::Tcp(s) => s.flush(),
            Sock::Unix(s) => s.flush(),
        }
    }
}

/// A live proxied connection: handles to shut both sockets down from outside its pumps.
struct Conn {
    client: Sock,
    upstream: Sock,
}

impl Conn {
    fn close(&self) {
        self.client.shutdown();
        self.upstream.shutdown();
    }
}

/// Where a swallow stands.
#[derive(Default)]
struct SwallowState {
    /// Increments on every `swallow_then_reset`.
    started: u64,
    /// The last swallow whose reset has happened.
    done: u64,
}

struct Shared {
    upstream: RedisAddr,
    stopping: AtomicBool,
    /// True while upstream → client bytes are discarded. Pumps hold the read lock while they
    /// check it and write, so once `swallow_then_reset` returns no byte reaches a client.
    swallowing: RwLock<bool>,
    swallowed: AtomicU64,
    accepted: AtomicUsize,
    /// Live connections (closed ones are removed by their pumps); keyed by a counter.
    conns: Mutex<Vec<(usize, Arc<Conn>)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    swallow: Mutex<SwallowState>,
    swallow_cv: Condvar,
}

impl Shared {
    /// Closes every live connection (both sides) and forgets it.
    fn close_all(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().expect("conns"));
        for (_, c) in &conns {
            c.close();
        }
    }
}

/// A fault-injecting TCP proxy to a Redis server; see the module docs. Dropping it stops
/// accepting, closes every connection and joins all its threads.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy listening on `127.0.0.1:0` that forwards every accepted connection to
    /// `upstream`. A client whose upstream connection fails is closed at once.
    pub fn start(upstream: RedisAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy: local_addr");
        let shared = Arc::new(Shared {
            upstream,
            stopping: AtomicBool::new(false),
            swallowing: RwLock::new(false),
            swallowed: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            swallow: Mutex::new(SwallowState::default()),
            swallow_cv: Condvar::new(),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("proxy-accept".into())
                .spawn(move || accept_loop(&listener, &shared))
                .expect("spawn proxy acceptor")
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:<port>/`, the URL clients use to go through the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// From now on, bytes from the upstream to the clients are read and discarded (counted in
    /// [`swallowed_bytes`](Self::swallowed_bytes)): the clients see silence. After `d`, every
    /// connection proxied at that moment is closed on both sides and swallowing stops (later
    /// connections are proxied normally). Returns at once; see
    /// [`wait_swallow_done`](Self::wait_swallow_done).
    pub fn swallow_then_reset(&self, d: Duration) {
        *self.shared.swallowing.write().expect("swallow lock") = true;
        let ticket = {
            let mut st = self.shared.swallow.lock().expect("swallow state");
            st.started += 1;
            st.started
        };
        let shared = Arc::clone(&self.shared);
        let timer = std::thread::Builder::new()
            .name("proxy-swallow".into())
            .spawn(move || {
                // The fault's duration, not a synchronisation: the timer is the point.
                std::thread::sleep(d);
                // Close first without the lock: a pump blocked writing to a client holds the
                // read lock, and the shutdown unblocks it.
                shared.close_all();
                {
                    let mut swallowing = shared.swallowing.write().expect("swallow lock");
                    // Connections accepted in between were swallowed too: reset them as well.
                    shared.close_all();
                    *swallowing = false;
                }
                let mut st = shared.swallow.lock().expect("swallow state");
                st.done = st.done.max(ticket);
                shared.swallow_cv.notify_all();
            })
            .expect("spawn proxy swallow timer");
        self.shared.threads.lock().expect("threads").push(timer);
    }

    /// Blocks until the reset of the latest [`swallow_then_reset`](Self::swallow_then_reset)
    /// has happened (returns at once if none was asked for).
    pub fn wait_swallow_done(&self) {
        let mut st = self.shared.swallow.lock().expect("swallow state");
        while st.done < st.started {
            st = self.shared.swallow_cv.wait(st).expect("swallow state");
        }
    }

    /// Bytes from the upstream discarded so far.
    pub fn swallowed_bytes(&self) -> u64 {
        self.shared.swallowed.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the acceptor sees `stopping` and leaves.
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        self.shared.close_all();
        // Pumps exit once their sockets are shut down; timers after their sleep.
        let threads = std::mem::take(&mut *self.shared.threads.lock().expect("threads"));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_key = 0usize;
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let upstream = match &shared.upstream {
            RedisAddr::Unix(p) => UnixStream::connect(p).map(Sock::Unix),
            RedisAddr::Tcp(a) => TcpStream::connect(a).map(Sock::Tcp),
        };
        let Ok(upstream) = upstream else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let client = Sock::Tcp(client);
        let (Ok(c2), Ok(u2), Ok(c3), Ok(u3)) = (
            client.try_clone(),
            upstream.try_clone(),
            client.try_clone(),
            upstream.try_clone(),
        ) else {
            client.shutdown();
            upstream.shutdown();
            continue;
        };
        let key = next_key;
        next_key += 1;
        let conn = Arc::new(Conn { client, upstream });
        shared
            .conns
            .lock()
            .expect("conns")
            .push((key, Arc::clone(&conn)));
        let up = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("proxy-up".into())
                .spawn(move || pump(c2, u2, false, &shared, key))
        };
        let down = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name("proxy-down".into())
                .spawn(move || pump(u3, c3, true, &shared, key))
        };
        let mut threads = shared.threads.lock().expect("threads");
        for t in [up, down] {
            match t {
                Ok(t) => threads.push(t),
                Err(_) => conn.close(),
            }
        }
    }
}

/// Copies `from` → `to` until either side ends, then closes the whole connection. The
/// upstream → client direction (`downstream`) discards instead while the proxy swallows.
fn pump(mut from: Sock, mut to: Sock, downstream: bool, shared: &Shared, key: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if downstream {
            let swallowing = shared.swallowing.read().expect("swallow lock");
            if *swallowing {
                shared.swallowed.fetch_add(n as u64, Ordering::SeqCst);
                continue;
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        } else if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    from.shutdown();
    to.shutdown();
    shared
        .conns
        .lock()
        .expect("conns")
        .retain(|(k, _)| *k != key);
}
