//! What TLS costs the gate, end to end on loopback sockets: server CPU per session setup (plain,
//! full TLS handshake, resumed TLS handshake) and per push delivered (plain, TLS), side by side
//! in one run.
//!
//! ```sh
//! cargo build --release --features tls --example gate --example tls_cost
//! target/release/examples/tls_cost   # --clients 300 --rounds 10 --runs 3 --concurrency 2
//!                                     # --push-clients 100 --pushes 1000 --blasts 5 --size 64
//! ```
//!
//! It spawns two gates (`--gate-bin`, default: `gate` next to this executable; it is not built
//! here) with `--threads 1 --heartbeat 60` and a throw-away CA and server certificate (ECDSA
//! P-256, for `127.0.0.1`, made with rcgen in a temporary directory), so one port serves plain
//! and TLS clients, and kills them by their pid at the end, on errors too (a guard's `Drop`).
//!
//! **Setup.** A run is `--rounds` rounds; each round gives every mode its share of `--clients`
//! setups, the modes in an order that rotates from round to round, so that noise from the rest
//! of the machine falls on every mode alike. A setup is what the load generator does: connect
//! (and the TLS handshake), HANDSHAKE → reply, ACK → the server's first HEARTBEAT, request
//! `connector.entryHandler.entry {"uid":…}` → response, then close (TLS close_notify, FIN) and
//! wait for the server's end of stream. `--concurrency` client threads share a slice. Modes:
//! * `plain`: TCP;
//! * `tls-full`: TLS 1.3, client resumption disabled, rustls' client defaults with *ring*, whose
//!   key share is secp384r1 (the group *ring* lists first);
//! * `tls-full-x25519`: the same, the client limited to X25519 (what browsers and Node send);
//! * `tls-resumed`, `tls-resumed-x25519`: one client configuration (and session cache) per mode,
//!   `--concurrency` warm-up setups before each slice (not measured: tickets are single-use,
//!   two per connection); every measured handshake must be a resumption (`handshake_kind()`),
//!   else the run fails.
//!
//! Clients connect by IP (no SNI) and trust only the test CA.
//!
//! **Push.** Per run and per mode (plain on the first gate, TLS 1.3 with X25519 on the second:
//! a blast reaches every bound session of its gate), `--push-clients` clients set up and bind;
//! then `--blasts` times, the modes alternating, an unbound plain control connection asks for
//! `connector.entryHandler.blast {"m": pushes/blasts, "size": size}` (its reply must count
//! exactly those clients) and `--concurrency` reader threads wait until every client got all
//! its `onPush` messages. The gate's blast thread pushes round after round,
//! waiting only when a session's inbox is full, so the I/O thread may find several pushes
//! queued for a session and write them at once (as few TLS records as fit): this is the
//! broadcast case, not one push at a time (BENCHMARKS.md §7 has that one, in process).
//!
//! **Server CPU** is the sum over the gate's threads of the on-CPU nanoseconds in
//! `/proc/PID/task/TID/schedstat` (user and kernel, so the socket work counts), sampled before
//! and after a slice; during a blast every millisecond too, so the short-lived blast thread is
//! counted up to its last sample. Per setup = the mode's CPU over all its slices / its setups;
//! per push = CPU from the blast requests to their last push / pushes delivered. Not measured:
//! the clients' CPU (the same 2 cores, so it competes with the gate but is not counted), a real
//! network (loopback only), more than one I/O thread, TLS 1.2, WSS.
//!
//! Output: one line per run, a table (median of the runs, min–max) and each mode's ratio to
//! plain within each run (median, min–max). Exit status 1 if any connection failed or a
//! resumption did not happen (or the gate binary is missing), 2 for bad arguments.

use clap::Parser;
use gatehouse::protocol::{
    decode_message, decode_package, encode_data, encode_package, Message, MessageType, PackageType,
    Route, HANDSHAKE_ACK_PACKAGE, MAX_BODY_LEN,
};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Server CPU per TLS session setup and per push against plain, end to end, in one run.
#[derive(Debug, Parser)]
#[command(name = "tls_cost")]
struct Cli {
    /// Session setups per mode and run.
    #[arg(long, default_value_t = 300)]
    clients: usize,
    /// Rounds per run that interleave the modes (each gets clients/rounds setups a round).
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Runs; the table shows their median and range.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Client threads sharing a slice of setups (at most 8: see `slice`).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Bound clients per push mode.
    #[arg(long, default_value_t = 100)]
    push_clients: usize,
    /// Pushes each of them receives per run, in `--blasts` blasts.
    #[arg(long, default_value_t = 1000)]
    pushes: u64,
    /// Blasts per push mode and run, alternating between the modes.
    #[arg(long, default_value_t = 5)]
    blasts: u64,
    /// Push body padding in bytes (the blast's `size`).
    #[arg(long, default_value_t = 64)]
    size: u64,
    /// The gate binary [default: `gate` next to this executable].
    #[arg(long, value_name = "PATH")]
    gate_bin: Option<PathBuf>,
}

const HELLO: &[u8] = br#"{"sys":{"type":"tls_cost","version":"0.1.0"},"user":{}}"#;
const ENTRY: &str = "connector.entryHandler.entry";
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// === the gate and its CPU ======================================================================

/// The spawned gate; killed (by its pid) when dropped. Owns the temporary certificate directory.
struct Gate {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a CA and a server certificate for 127.0.0.1 into a new temporary directory, starts
/// the gate with them, and returns it with the CA certificate the clients trust.
fn spawn_gate(bin: &Path) -> Result<(Gate, CertificateDer<'static>), String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let err = |e: rcgen::Error| format!("certificate generation: {e}");
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "tls_cost test CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(err)?;
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;

    static GATES: AtomicUsize = AtomicUsize::new(0);
    let n = GATES.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tls_cost-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, pem) in [(&cert_path, cert.pem()), (&key_path, key.serialize_pem())] {
        std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut child = Command::new(bin)
        .args("--addr 127.0.0.1:0 --threads 1 --heartbeat 60".split(' '))
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no gate stdout")?;
    // From here on the guard kills the gate whatever happens.
    let mut gate = Gate {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        dir,
    };
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .map_err(|e| format!("reading the gate's stdout: {e}"))?;
    // The gate prints more (`gate: tls: optional`); a closed pipe would make it panic.
    std::thread::spawn(move || stdout.lines().map_while(Result::ok).for_each(drop));
    let addr = line
        .strip_prefix("gate: listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("unexpected first line from the gate: {line:?}"))?;
    gate.addr = addr;
    Ok((gate, ca_cert.der().clone()))
}

/// On-CPU nanoseconds of each of a process's live threads.
fn thread_ns(pid: u32) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for tid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        let ns = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(ns) = ns {
            out.insert(tid, ns);
        }
    }
    out
}

/// The gate's CPU from `start` on: a thread born meanwhile counts from zero, one that exits
/// counts up to the last [`poke`](Self::poke) that saw it.
struct CpuWatch {
    pid: u32,
    first: BTreeMap<u32, u64>,
    last: BTreeMap<u32, u64>,
}

impl CpuWatch {
    fn start(pid: u32) -> CpuWatch {
        let first = thread_ns(pid);
        CpuWatch {
            pid,
            last: first.clone(),
            first,
        }
    }

    fn poke(&mut self) {
        self.last.extend(thread_ns(self.pid));
    }

    fn ns(mut self) -> u64 {
        self.poke();
        let first = &self.first;
        let used = |(tid, ns): (&u32, &u64)| ns.saturating_sub(*first.get(tid).unwrap_or(&0));
        self.last.iter().map(used).sum()
    }
}

// === a blocking pomelo client, plain or TLS ====================================================

/// `map_err` helper: "what: error".
fn ctx<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

struct Peer {
    sock: TcpStream,
    /// The TLS client, if any; the socket then carries its records.
    tls: Option<ClientConnection>,
    buf: Vec<u8>,
}

impl Peer {
    /// Connects and, with a configuration, completes the TLS handshake.
    fn connect(addr: SocketAddr, config: Option<&Arc<ClientConfig>>) -> Result<Peer, String> {
        let mut sock = TcpStream::connect(addr).map_err(ctx("connect"))?;
        sock.set_nodelay(true).map_err(ctx("nodelay"))?;
        sock.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(ctx("timeout"))?;
        let tls = match config {
            Some(config) => {
                let name = ServerName::IpAddress(addr.ip().into());
                let mut conn = ClientConnection::new(config.clone(), name).map_err(ctx("TLS"))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock).map_err(ctx("TLS handshake"))?;
                }
                Some(conn)
            }
            None => None,
        };
        let buf = Vec::new();
        Ok(Peer { sock, tls, buf })
    }

    /// "TLSv1_3 full secp384r1" and the like; `None` for plain.
    fn handshake_label(&self) -> Option<String> {
        let conn = self.tls.as_ref()?;
        let kind = match conn.handshake_kind()? {
            HandshakeKind::Full => "full",
            HandshakeKind::Resumed => "resumed",
            HandshakeKind::FullWithHelloRetryRequest => "full+HRR",
        };
        let group = conn.negotiated_key_exchange_group();
        let group = group.map_or("-".to_owned(), |g| format!("{:?}", g.name()));
        Some(format!("{:?} {kind} {group}", conn.protocol_version()?))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.tls {
            Some(conn) => rustls::Stream::new(conn, &mut self.sock).write_all(bytes),
            None => self.sock.write_all(bytes),
        }
        .map_err(ctx("write"))
    }

    fn read(&mut self, chunk: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.tls {
            Some(conn) => rustls::Stream::new(conn, &mut self.sock).read(chunk),
            None => self.sock.read(chunk),
        }
    }

    /// The next whole package: its type and body.
    fn next(&mut self) -> Result<(PackageType, Vec<u8>), String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((p, used)) =
                decode_package(&self.buf, MAX_BODY_LEN).map_err(ctx("bad package"))?
            {
                let out = (p.kind, p.body.to_vec());
                self.buf.drain(..used);
                return Ok(out);
            }
            match self.read(&mut chunk) {
                Ok(0) => return Err("the server ended the stream".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn expect(&mut self, kind: PackageType) -> Result<Vec<u8>, String> {
        match self.next()? {
            (k, body) if k == kind => Ok(body),
            (k, _) => Err(format!("expected {kind:?}, got {k:?}")),
        }
    }

    /// HANDSHAKE, ACK, first HEARTBEAT, then (with a uid) the entry request that binds it.
    fn start(&mut self, uid: Option<&str>) -> Result<(), String> {
        let mut out = Vec::new();
        encode_package(PackageType::Handshake, HELLO, &mut out).map_err(ctx("encode"))?;
        self.send(&out)?;
        let reply: Value = serde_json::from_slice(&self.expect(PackageType::Handshake)?)
            .map_err(ctx("handshake reply"))?;
        if reply["code"] != 200 {
            return Err(format!("handshake refused: {reply}"));
        }
        self.send(&HANDSHAKE_ACK_PACKAGE)?;
        self.expect(PackageType::Heartbeat)?;
        if let Some(uid) = uid {
            let reply = self.request(ENTRY, &json!({ "uid": uid }))?;
            if reply["code"] != 200 {
                return Err(format!("bind refused: {reply}"));
            }
        }
        Ok(())
    }

    /// Request id 1 on `route`; the response's JSON body.
    fn request(&mut self, route: &str, body: &Value) -> Result<Value, String> {
        let (body, mut out) = (body.to_string(), Vec::new());
        let msg = Message::request(1, Route::Name(route), body.as_bytes());
        encode_data(&msg, &mut out).map_err(ctx("encode"))?;
        self.send(&out)?;
        let body = self.expect(PackageType::Data)?;
        let msg = decode_message(&body).map_err(ctx("bad message"))?;
        if (msg.kind, msg.id) != (MessageType::Response, 1) {
            return Err(format!(
                "expected response 1, got {:?} {}",
                msg.kind, msg.id
            ));
        }
        serde_json::from_slice(msg.body).map_err(ctx("response"))
    }

    /// Reads `n` pushes (anything else is an error).
    fn pushes(&mut self, n: u64) -> Result<(), String> {
        for _ in 0..n {
            let body = self.expect(PackageType::Data)?;
            let msg = decode_message(&body).map_err(ctx("bad message"))?;
            if msg.kind != MessageType::Push {
                return Err(format!("expected a push, got a {:?}", msg.kind));
            }
        }
        Ok(())
    }

    /// Closes (TLS close_notify, then FIN) and waits until the server ended its side, so the
    /// server's close work falls inside the measured slice.
    fn close(mut self) {
        if let Some(conn) = &mut self.tls {
            conn.send_close_notify();
            let _ = conn.complete_io(&mut self.sock);
        }
        let _ = self.sock.shutdown(Shutdown::Write);
        let mut chunk = [0u8; 4096];
        while matches!(self.read(&mut chunk), Ok(n) if n > 0) {}
    }
}

// === modes =====================================================================================

struct Mode {
    name: &'static str,
    tls: Option<Arc<ClientConfig>>,
    resumed: bool,
}

/// A client trusting only `ca`; *ring*'s default key exchange groups or only X25519.
fn client_config(ca: &CertificateDer<'static>, x25519: bool, resume: bool) -> Arc<ClientConfig> {
    #[allow(deprecated)] // *ring* on purpose, as the server (src/server/tls/config.rs)
    let mut provider = rustls::crypto::ring::default_provider();
    if x25519 {
        provider.kx_groups = vec![rustls::crypto::ring::kx_group::X25519];
    }
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).expect("the test CA parses");
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.3 and 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Arc::new(config)
}

/// One run of one setup mode: the gate's CPU, setups done, handshake kinds, errors.
#[derive(Default)]
struct Tally {
    ns: u64,
    ok: usize,
    kinds: BTreeMap<String, usize>,
    errors: Vec<String>,
}

/// `n` setups of `mode` from `threads` threads; the gate's CPU is added to `tally`.
fn slice(gate: &Gate, mode: &Mode, n: usize, threads: usize, tag: &str, tally: &mut Tally) {
    let tls = mode.tls.as_ref();
    let one = |uid: String| -> Result<Option<String>, String> {
        let mut peer = Peer::connect(gate.addr, tls)?;
        peer.start(Some(&uid))?;
        let label = peer.handshake_label();
        peer.close();
        Ok(label)
    };
    // Fresh tickets in the client's cache, outside the measured slice: the server sends two
    // per connection, each is used once, so `threads` warm-ups cover the first concurrent
    // setups (rustls keeps at most 8 tickets per server, hence --concurrency <= 8).
    for w in 0..if mode.resumed { threads } else { 0 } {
        if let Err(e) = one(format!("{tag}-warm{w}")) {
            tally.errors.push(format!("{}: warm-up: {e}", mode.name));
        }
    }
    let (one, watch) = (&one, CpuWatch::start(gate.child.id()));
    let results: Vec<Result<Option<String>, String>> = std::thread::scope(|s| {
        let work = move |t: usize| -> Vec<_> {
            let setups = (t..n).step_by(threads);
            setups.map(|i| one(format!("{tag}-{i}"))).collect()
        };
        let workers: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        let results = workers
            .into_iter()
            .map(|w| w.join().expect("client thread"));
        results.flatten().collect()
    });
    tally.ns += watch.ns();
    for result in results {
        match result {
            Ok(label) => {
                tally.ok += 1;
                if let Some(label) = label {
                    if mode.resumed && !label.contains("resumed") {
                        tally
                            .errors
                            .push(format!("{}: not resumed: {label}", mode.name));
                    }
                    *tally.kinds.entry(label).or_default() += 1;
                }
            }
            Err(e) => tally.errors.push(format!("{}: {e}", mode.name)),
        }
    }
}

/// The bound clients of one push mode on their own gate, and an unbound plain control
/// connection that asks for the blasts.
struct PushSet<'g> {
    gate: &'g Gate,
    peers: Vec<Peer>,
    control: Peer,
}

impl<'g> PushSet<'g> {
    fn open(gate: &'g Gate, tls: Option<&Arc<ClientConfig>>, k: usize) -> Result<Self, String> {
        let mut peers = Vec::with_capacity(k);
        for i in 0..k {
            let mut peer = Peer::connect(gate.addr, tls)?;
            peer.start(Some(&format!("p{i}")))?;
            peers.push(peer);
        }
        let mut control = Peer::connect(gate.addr, None)?;
        control.start(None)?;
        Ok(PushSet {
            gate,
            peers,
            control,
        })
    }

    /// One blast of `rounds` pushes to every client; the gate's CPU ns from the request to the
    /// last push read.
    fn blast(&mut self, rounds: u64, size: u64, readers: usize) -> Result<u64, String> {
        let (k, pid) = (self.peers.len(), self.gate.child.id());
        let chunk = k.div_ceil(readers.clamp(1, k));
        let control = &mut self.control;
        let (ns, outcome) = std::thread::scope(|s| {
            let workers: Vec<_> = (self.peers.chunks_mut(chunk))
                .map(|group| s.spawn(|| group.iter_mut().try_for_each(|p| p.pushes(rounds))))
                .collect();
            let mut watch = CpuWatch::start(pid);
            let blast = json!({"m": rounds, "size": size});
            let reply = control.request("connector.entryHandler.blast", &blast);
            while !workers.iter().all(|w| w.is_finished()) {
                watch.poke();
                std::thread::sleep(Duration::from_millis(1));
            }
            let ns = watch.ns();
            let mut outcome = reply.and_then(|r| match r["uids"].as_u64() {
                Some(u) if u == k as u64 => Ok(()),
                _ => Err(format!(
                    "the blast did not reach exactly our {k} clients: {r}"
                )),
            });
            for w in workers {
                outcome = outcome.and(w.join().expect("reader thread"));
            }
            (ns, outcome)
        });
        outcome.map(|()| ns)
    }

    fn close(self) {
        self.peers.into_iter().for_each(Peer::close);
        self.control.close();
    }
}

/// Server CPU ns per push delivered, plain (gate `a`) and TLS (gate `b`), their blasts
/// alternating.
fn push_run(cli: &Cli, a: &Gate, b: &Gate, tls: &Arc<ClientConfig>) -> Result<[f64; 2], String> {
    let mut sets = [
        PushSet::open(a, None, cli.push_clients)?,
        PushSet::open(b, Some(tls), cli.push_clients)?,
    ];
    let mut ns = [0u64; 2];
    let rounds = cli.pushes / cli.blasts;
    for i in 0..cli.blasts as usize {
        for j in 0..2 {
            let m = (i + j) % 2;
            ns[m] += sets[m].blast(rounds, cli.size, cli.concurrency)?;
        }
    }
    sets.into_iter().for_each(PushSet::close);
    let pushes = (cli.push_clients as u64 * rounds * cli.blasts) as f64;
    Ok(ns.map(|ns| ns as f64 / pushes))
}

// === report ====================================================================================

/// "median (min–max)" of per-run figures.
fn spread(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(&lo), Some(&mid), Some(&hi)) => format!("{} ({}–{})", show(mid), show(lo), show(hi)),
        _ => "–".into(),
    }
}

/// Nanoseconds as "612.3 µs" or "386 ns".
fn time(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.1} µs", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

fn main() {
    let cli = Cli::parse();
    if cli.clients == 0 || cli.rounds == 0 || cli.rounds > cli.clients || cli.runs == 0 {
        eprintln!("tls_cost: need 1 <= --rounds <= --clients and --runs >= 1");
        std::process::exit(2);
    }
    if !(1..=8).contains(&cli.concurrency)
        || cli.push_clients == 0
        || cli.blasts == 0
        || cli.pushes < cli.blasts
    {
        eprintln!(
            "tls_cost: need 1 <= --concurrency <= 8, --push-clients >= 1, \
             1 <= --blasts <= --pushes"
        );
        std::process::exit(2);
    }
    let bin = cli.gate_bin.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        exe.with_file_name("gate")
    });
    if !bin.is_file() {
        eprintln!(
            "tls_cost: no gate binary at {}: build it with \
             `cargo build --release --features tls --example gate` (or pass --gate-bin PATH)",
            bin.display()
        );
        std::process::exit(1);
    }
    match run(&cli, &bin) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("tls_cost: {e}");
            std::process::exit(1);
        }
    }
}

/// Everything; `Ok(false)` when some connection failed.
fn run(cli: &Cli, bin: &Path) -> Result<bool, String> {
    let (gate, ca) = spawn_gate(bin)?;
    // The TLS push clients have a gate of their own: a blast reaches every bound session.
    let (push_gate, push_ca) = spawn_gate(bin)?;
    let mode = |name, tls: Option<(bool, bool)>| Mode {
        name,
        resumed: tls.is_some_and(|(_, resume)| resume),
        tls: tls.map(|(x25519, resume)| client_config(&ca, x25519, resume)),
    };
    let modes = [
        mode("plain", None),
        mode("tls-full", Some((false, false))),
        mode("tls-full-x25519", Some((true, false))),
        mode("tls-resumed", Some((false, true))),
        mode("tls-resumed-x25519", Some((true, true))),
    ];
    let push_tls = client_config(&push_ca, true, false);
    println!(
        "tls_cost: gate pid {} on {}, 1 I/O thread; {} setups per mode and run in {} rounds, \
         {} client threads; push: {} clients × {} pushes of {} B in {} blasts; {} runs",
        gate.child.id(),
        gate.addr,
        cli.clients,
        cli.rounds,
        cli.concurrency,
        cli.push_clients,
        cli.pushes,
        cli.size,
        cli.blasts,
        cli.runs
    );
    // Per mode, one figure per run (NaN if none); the ratios to plain of the same run.
    let mut setup: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut push: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); modes.len() + 1];
    let mut kinds: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); modes.len()];
    let mut failures = Vec::new();
    for run in 0..cli.runs {
        let mut tallies: Vec<Tally> = modes.iter().map(|_| Tally::default()).collect();
        for round in 0..cli.rounds {
            let n = cli.clients / cli.rounds + usize::from(round < cli.clients % cli.rounds);
            for j in 0..modes.len() {
                let m = (round + j) % modes.len();
                let tag = format!("{}-r{run}-{round}", modes[m].name);
                slice(&gate, &modes[m], n, cli.concurrency, &tag, &mut tallies[m]);
            }
        }
        let plain = tallies[0].ns as f64 / tallies[0].ok as f64;
        for (m, t) in tallies.into_iter().enumerate() {
            let per_setup = if t.ok > 0 {
                t.ns as f64 / t.ok as f64
            } else {
                f64::NAN
            };
            setup[m].push(per_setup);
            ratio[m].push(per_setup / plain);
            for (k, c) in t.kinds {
                *kinds[m].entry(k).or_default() += c;
            }
            failures.extend(t.errors);
        }
        match push_run(cli, &gate, &push_gate, &push_tls) {
            Ok([plain, tls]) => {
                push[0].push(plain);
                push[1].push(tls);
                ratio[modes.len()].push(tls / plain);
            }
            Err(e) => failures.push(format!("push: {e}")),
        }
        println!(
            "run {}: setup {} | push plain {:.0} ns, tls {:.0} ns",
            run + 1,
            modes
                .iter()
                .zip(&setup)
                .map(|(m, v)| format!("{} {:.1} µs", m.name, v.last().unwrap_or(&f64::NAN) / 1e3))
                .collect::<Vec<_>>()
                .join(", "),
            push[0].last().unwrap_or(&f64::NAN),
            push[1].last().unwrap_or(&f64::NAN),
        );
    }
    println!();
    println!("| mode | server CPU per setup, median (min–max) | per push | handshakes seen |");
    println!("| --- | ---: | ---: | --- |");
    for (m, mode) in modes.iter().enumerate() {
        let per_push = match mode.name {
            "plain" => spread(&push[0], time),
            "tls-full-x25519" => spread(&push[1], time),
            _ => "–".into(),
        };
        let seen = if kinds[m].is_empty() {
            "–".to_owned()
        } else {
            let list = kinds[m].iter().map(|(k, c)| format!("{k} ×{c}"));
            list.collect::<Vec<_>>().join(", ")
        };
        println!(
            "| {} | {} | {per_push} | {seen} |",
            mode.name,
            spread(&setup[m], time)
        );
    }
    println!("(per push: the TLS clients are TLS 1.3 X25519 sessions, hence that row)");
    let times = |v: &[f64]| spread(v, |r| format!("{r:.1}×"));
    let setups: Vec<String> = (modes.iter().zip(&ratio).skip(1))
        .map(|(mode, r)| format!("{} {}", mode.name, times(r)))
        .collect();
    println!(
        "\nover plain, within each run (median, min–max): setup {}; push tls / plain {}",
        setups.join(", "),
        times(&ratio[modes.len()])
    );
    if !failures.is_empty() {
        eprintln!("tls_cost: {} failures; the first ones:", failures.len());
        for f in failures.iter().take(5) {
            eprintln!("  {f}");
        }
    }
    Ok(failures.is_empty())
}
