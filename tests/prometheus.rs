//! The Prometheus export (feature `prometheus`): the rendered values against a live server
//! with sessions, Prometheus's own `promtool check metrics` on both text formats, and a real
//! `prometheus` server on loopback scraping a [`MetricsEndpoint`], and then the example gate
//! binary's `--metrics` address, until its query API returns the session count.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package, which bin/test.sh
//! installs when they are missing. Without them these tests FAIL, never skip.

mod util;

use gatehouse::server::{MetricsEndpoint, MetricsFormat, Server};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::{wait, wait_until, Client, TestHandler, Transport};

const MISSING: &str = "install Debian's prometheus package (bin/test.sh does)";

/// A server with `n` working clients (handshaken), returned with the clients kept open.
fn server_with_clients(n: usize) -> (Server, Vec<Client>) {
    let (handler, _seen) = TestHandler::new();
    // A long heartbeat: the idle test clients must stay connected however long prometheus
    // takes (`Client::working` expects the server's first HEARTBEAT, so not `None`).
    // Handler timing on: the histogram is part of what promtool checks.
    let server = util::builder()
        .heartbeat(Some(Duration::from_secs(600)))
        .time_handlers(true)
        .start(handler)
        .expect("start");
    let clients: Vec<Client> = (0..n)
        .map(|i| {
            let transport = if i % 2 == 0 {
                Transport::Tcp
            } else {
                Transport::Ws
            };
            Client::working(server.local_addr(), transport)
        })
        .collect();
    wait_until("sessions to be counted", || server.metrics().sessions == n);
    (server, clients)
}

/// The value of the sample line `name` (exact series, labels included) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn render_from_live_server() {
    let (server, mut clients) = server_with_clients(3);
    clients.pop(); // one leaves
    wait_until("the close to be counted", || {
        server.metrics().closes.peer_closed == 1 && server.metrics().sessions == 2
    });
    let m = server.metrics();
    let exporter = server.metrics_exporter();
    for format in [MetricsFormat::OpenMetrics, MetricsFormat::PrometheusText] {
        let text = exporter.render(format);
        let get = |series: &str| {
            sample(&text, series).unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
        };
        assert_eq!(get("gatehouse_sessions"), 2.0, "{text}");
        assert_eq!(get("gatehouse_bound_uids"), 0.0);
        assert_eq!(get("gatehouse_connections_accepted_total"), 3.0);
        assert_eq!(get("gatehouse_connections_refused_total"), 0.0);
        assert_eq!(get("gatehouse_closes_total{reason=\"peer_closed\"}"), 1.0);
        assert_eq!(get("gatehouse_closes_total{reason=\"kicked\"}"), 0.0);
        // The byte and frame counters only grow: at least what the snapshot above saw.
        assert!(get("gatehouse_received_bytes_total") >= m.bytes_in as f64);
        assert!(m.bytes_in > 0 && m.bytes_out > 0, "{m:?}");
        assert!(get("gatehouse_sent_bytes_total") >= m.bytes_out as f64);
        assert!(get("gatehouse_packages_received_total") >= m.packages_in as f64);
        assert!(get("gatehouse_write_calls_total") >= 1.0);
        for shard in 0..2 {
            // The depth is a sample of a live queue (an I/O thread may not have drained a
            // command yet), so only its range is certain.
            let depth = get(&format!("gatehouse_inbox_depth{{shard=\"{shard}\"}}"));
            let capacity = get(&format!("gatehouse_inbox_capacity{{shard=\"{shard}\"}}"));
            assert!(
                capacity > 0.0 && (0.0..=capacity).contains(&depth),
                "{text}"
            );
            let refused = format!("gatehouse_inbox_refused_total{{shard=\"{shard}\"}}");
            assert_eq!(get(&refused), 0.0);
        }
        for reason in [
            "kicked",
            "peer_closed",
            "heartbeat_timeout",
            "handshake_timeout",
            "protocol_violation",
            "slow_consumer",
            "io_error",
            "shutdown",
            "handler_panic",
            "tls",
        ] {
            get(&format!("gatehouse_closes_total{{reason=\"{reason}\"}}"));
        }
        match format {
            MetricsFormat::OpenMetrics => {
                assert!(text.ends_with("# EOF\n"), "{text}");
                assert!(
                    text.contains("# UNIT gatehouse_received_bytes bytes\n"),
                    "{text}"
                );
                assert!(text.contains("# TYPE gatehouse_closes counter\n"), "{text}");
            }
            _ => {
                assert!(!text.contains("# EOF"), "{text}");
                assert!(
                    text.contains("# TYPE gatehouse_closes_total counter\n"),
                    "{text}"
                );
                assert!(text.contains("# TYPE gatehouse_sessions gauge\n"), "{text}");
            }
        }
    }
}

/// Finds `tool` on PATH or fails the test with how to get it.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("`{name}` is not on PATH: {MISSING}"))
}

#[test]
fn promtool_accepts_the_output() {
    let promtool = tool("promtool");
    let (server, _clients) = server_with_clients(2);
    let exporter = server.metrics_exporter();
    // promtool reads the classic text format only (it reports every OpenMetrics counter
    // family as lacking help, as it looks for `# HELP x_total`); the OpenMetrics output is
    // checked by a real prometheus server, which asks for it, in `prometheus_scrapes_…`.
    {
        let format = MetricsFormat::PrometheusText;
        let text = exporter.render(format);
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.trim().is_empty(),
            "promtool check metrics refused the {format:?} output ({}):\n{report}\n--- input:\n{text}",
            out.status
        );
    }
}

/// A minimal HTTP GET on loopback; returns (status line, headers, body).
fn http_get(addr: SocketAddr, target: &str, accept: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(wait())).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_owned(),
        headers.to_ascii_lowercase(),
        body.to_owned(),
    )
}

#[test]
fn endpoint_serves_metrics_only() {
    let (server, _clients) = server_with_clients(1);
    let endpoint = MetricsEndpoint::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        server.metrics_exporter(),
    )
    .expect("endpoint");
    let addr = endpoint.local_addr();

    let (status, headers, body) = http_get(addr, "/metrics", "application/openmetrics-text");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: application/openmetrics-text"),
        "{headers}"
    );
    assert!(
        body.ends_with("# EOF\n") && body.contains("\ngatehouse_sessions 1\n"),
        "{body}"
    );

    let (status, headers, body) = http_get(addr, "/metrics", "*/*");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert!(body.contains("\ngatehouse_sessions 1\n"), "{body}");

    assert_eq!(http_get(addr, "/", "*/*").0, "HTTP/1.1 404 Not Found");
    assert_eq!(
        http_get(addr, "/metricsx", "*/*").0,
        "HTTP/1.1 404 Not Found"
    );

    // An oversized request head is refused, and the endpoint keeps serving.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait())).unwrap();
    let _ = s.write_all(format!("GET /metrics HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000)).as_bytes());
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:?}");
    assert_eq!(http_get(addr, "/metrics", "*/*").0, "HTTP/1.1 200 OK");

    // A client that connects and sends nothing is dropped after the 1 s request deadline;
    // the next scrape is answered after it.
    let _silent = TcpStream::connect(addr).unwrap();
    assert_eq!(http_get(addr, "/metrics", "*/*").0, "HTTP/1.1 200 OK");

    drop(endpoint);
    assert!(
        TcpStream::connect(addr).is_err(),
        "endpoint still listening after drop"
    );
}

/// A `prometheus` process, killed (by its PID) and reaped on drop; its data dir removed.
struct PrometheusProcess {
    child: Child,
    dir: PathBuf,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// Starts prometheus scraping `target` every second; retries on another port if the chosen
/// one was taken in between (it then exits at once).
fn start_prometheus(target: SocketAddr) -> (PrometheusProcess, SocketAddr) {
    let binary = tool("prometheus");
    // One directory per prometheus: `cargo test` runs this file's tests as threads of one
    // process, so the pid alone is not unique.
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gatehouse-prometheus-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
             - job_name: gatehouse\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    for _ in 0..5 {
        let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus ({e}): {MISSING}"));
        let mut process = PrometheusProcess {
            child,
            dir: dir.clone(),
        };
        // Ready when its HTTP API answers; if it exits first, the port was probably taken.
        let deadline = Instant::now() + wait() * 2;
        loop {
            if let Some(status) = process.child.try_wait().unwrap() {
                let mut err = String::new();
                let _ = process
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err);
                if err.contains("address already in use") {
                    break;
                }
                panic!("prometheus exited ({status}):\n{err}");
            }
            if TcpStream::connect(web).is_ok() {
                // Drain its log so a full pipe never blocks it.
                let mut stderr = process.child.stderr.take().unwrap();
                std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                return (process, web);
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not start listening on {web}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("prometheus could not get a free loopback port in 5 tries");
}

/// The value of `query` (URL-encoded PromQL for one series) as prometheus' query API
/// reports it, if it has a sample yet.
fn query(web: SocketAddr, query: &str) -> Option<f64> {
    let (status, _, body) = http_get(web, &format!("/api/v1/query?query={query}"), "*/*");
    if !status.contains(" 200 ") {
        return None;
    }
    let json: Value = serde_json::from_str(&body).ok()?;
    let value = json["data"]["result"].get(0)?["value"][1].as_str()?;
    value.parse().ok()
}

/// Waits (scrapes every second; the scaled bound, times a few scrapes) until prometheus'
/// query API reports `gatehouse_sessions = n` for the target `what`.
fn await_sessions(web: SocketAddr, n: f64, what: &str) {
    let deadline = Instant::now() + wait() * 4;
    let mut last = None;
    while last != Some(n) {
        assert!(
            Instant::now() < deadline,
            "prometheus never reported {what}'s gatehouse_sessions = {n} (last: {last:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
        last = query(web, "gatehouse_sessions");
    }
}

#[test]
fn prometheus_scrapes_the_endpoint() {
    let (server, mut clients) = server_with_clients(3);
    let endpoint = MetricsEndpoint::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        server.metrics_exporter(),
    )
    .expect("endpoint");
    let (_prometheus, web) = start_prometheus(endpoint.local_addr());

    await_sessions(web, 3.0, "the endpoint");

    // The count follows the server: two clients leave.
    clients.truncate(1);
    wait_until("the server to count 1 session", || {
        server.metrics().sessions == 1
    });
    await_sessions(web, 1.0, "the endpoint");
    // A labelled counter family (OpenMetrics `_total` samples) came through as well, from the
    // same scrape or an earlier one.
    let closed = query(
        web,
        "gatehouse_closes_total%7Breason%3D%22peer_closed%22%7D",
    );
    assert_eq!(closed, Some(2.0));
}

/// The example gate (`examples/gate.rs`), started by PID with `--metrics`, killed and reaped on
/// drop. Its stdout lines name the listening and metrics addresses.
struct GateProcess {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Drop for GateProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example gate beside this test binary: cargo puts examples in `<profile>/examples/`, and
/// this test runs from `<profile>/deps/`. `cargo test` and `cargo nextest run --all-targets`
/// (bin/test.sh) build it with the same features as this test.
fn gate_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in <target>/<profile>/deps");
    let gate = profile.join("examples").join("gate");
    assert!(
        gate.is_file(),
        "the example gate is not built at {}: run `cargo build --features prometheus --example \
         gate` (bin/test.sh builds it)",
        gate.display()
    );
    gate
}

/// Starts the example gate on free loopback ports with heartbeats long enough for any scrape.
fn start_gate() -> GateProcess {
    let mut child = Command::new(gate_binary())
        .args([
            "--addr",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--heartbeat",
            "600",
            "--seconds",
            "300",
            "--time-handlers",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the example gate");
    let stdout = child.stdout.take().expect("piped stdout");
    // Its two lines arrive within the scaled wait; read them on a thread so a gate that never
    // prints fails the test instead of blocking it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut gate = GateProcess {
        child,
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        metrics: SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let deadline = Instant::now() + wait() * 2;
    while gate.addr.port() == 0 || gate.metrics.port() == 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            let status = gate.child.try_wait().ok().flatten();
            panic!(
                "the example gate printed no listening and metrics lines (exit status: \
                 {status:?}); a build without `--features prometheus` refuses --metrics"
            )
        });
        if let Some(rest) = line.strip_prefix("gate: listening on ") {
            let addr = rest.split_whitespace().next().unwrap_or("");
            gate.addr = addr.parse().expect("listening address");
        } else if let Some(rest) = line.strip_prefix("gate: metrics on http://") {
            let addr = rest.trim_end_matches("/metrics");
            gate.metrics = addr.parse().expect("metrics address");
        }
    }
    gate
}

/// The gate binary users run, scraped by a real prometheus: the session count it reports
/// follows clients connecting and leaving.
#[test]
fn prometheus_scrapes_the_example_gate() {
    let gate = start_gate();
    let mut clients: Vec<Client> = (0..2)
        .map(|_| Client::working(gate.addr, Transport::Tcp))
        .collect();
    let (_prometheus, web) = start_prometheus(gate.metrics);

    await_sessions(web, 2.0, "the example gate");
    clients.pop();
    await_sessions(web, 1.0, "the example gate");
    // `--time-handlers`: the two handshakes went through the handler, timed.
    let timed = query(web, "gatehouse_handler_duration_seconds_count");
    assert!(
        timed.is_some_and(|n| n >= 2.0),
        "handler calls timed: {timed:?}"
    );
}

/// A handler whose `test.block` request parks the I/O thread until the test sets `release`,
/// handing the test the session id first; other requests are answered at once.
struct Blocking {
    entered: std::sync::mpsc::Sender<gatehouse::Sid>,
    release: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl gatehouse::server::Handler for Blocking {
    fn request(&self, req: gatehouse::server::Request<'_>) -> gatehouse::server::Response {
        if req.route() == "test.block" {
            self.entered.send(req.sid()).unwrap();
            // Bounded: a test that fails before releasing still ends (dropping the server
            // joins this thread).
            let deadline = Instant::now() + Duration::from_secs(60);
            while !self.release.load(std::sync::atomic::Ordering::Acquire)
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        gatehouse::server::Response::Json(serde_json::json!({"ok": true}))
    }
}

/// The sample of `series` in an OpenMetrics render, which must be there.
fn value_of(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// The inbox high-water mark is the backlog an I/O thread found when it came to drain: while
/// the only I/O thread is held in a handler, 50 pushes queue up, and the next drain sees them.
#[test]
fn inbox_high_water_counts_the_backlog_a_drain_finds() {
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = util::builder()
        .io_threads(1)
        .heartbeat(Some(Duration::from_secs(600)))
        .start(std::sync::Arc::new(Blocking {
            entered: entered_tx,
            release: release.clone(),
        }))
        .expect("start");
    let mut client = Client::working(server.local_addr(), Transport::Tcp);
    let before = server.metrics().inbox_high_water;
    assert!(before < 50, "high-water {before} before any backlog");

    client.send_request(1, "test.block", &serde_json::json!({}));
    let sid = entered
        .recv_timeout(wait())
        .expect("the handler was entered");
    let frame = util::push_frame("onTick", &serde_json::json!({"k": 1}));
    for _ in 0..50 {
        server
            .service()
            .send_message(sid, frame.clone())
            .expect("queued");
    }
    release.store(true, std::sync::atomic::Ordering::Release);
    // The pushes were queued before the response existed, so they may well come first.
    let (mut pushes, mut responses) = (0, 0);
    for _ in 0..51 {
        let msg = client.expect_message();
        if msg.id == 1 {
            responses += 1;
        } else {
            pushes += 1;
        }
    }
    assert_eq!((pushes, responses), (50, 1));
    let high = server.metrics().inbox_high_water;
    assert!(
        (50..=51).contains(&high),
        "high-water {high}, expected the 50 pushes (+ the response)"
    );
    let text = server.metrics_exporter().render(MetricsFormat::OpenMetrics);
    assert_eq!(
        value_of(&text, "gatehouse_inbox_high_water{shard=\"0\"}"),
        high as f64
    );
}

/// With `time_handlers`, every handler call lands in the histogram: its count and `+Inf`
/// bucket equal the calls made, its buckets are cumulative, its sum is positive. Without it
/// the histogram is absent, not shown empty.
#[test]
fn handler_time_histogram_counts_every_call() {
    let (handler, _seen) = TestHandler::new();
    let server = util::builder()
        .io_threads(1)
        .time_handlers(true)
        .start(handler)
        .expect("start");
    let mut client = Client::working(server.local_addr(), Transport::Tcp);
    for id in 1..=20 {
        client.echo(id);
    }
    let m = server.metrics();
    // 20 requests, plus the handshake's call (the handler sees every handshake).
    assert!(m.handler_time.calls >= 20, "{:?}", m.handler_time);
    assert_eq!(
        m.handler_time.buckets.iter().sum::<u64>(),
        m.handler_time.calls
    );
    assert!(m.handler_time.total_ns > 0);

    let text = server.metrics_exporter().render(MetricsFormat::OpenMetrics);
    let count = value_of(&text, "gatehouse_handler_duration_seconds_count");
    assert_eq!(count, m.handler_time.calls as f64);
    assert_eq!(
        value_of(
            &text,
            "gatehouse_handler_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        count
    );
    assert!(value_of(&text, "gatehouse_handler_duration_seconds_sum") > 0.0);
    let mut last = 0.0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("gatehouse_handler_duration_seconds_bucket"))
    {
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v >= last, "buckets not cumulative: {line}");
        last = v;
    }
    assert!(
        text.contains("# TYPE gatehouse_handler_duration_seconds histogram"),
        "{text}"
    );

    let (handler, _seen) = TestHandler::new();
    let untimed = util::builder().io_threads(1).start(handler).expect("start");
    let mut client = Client::working(untimed.local_addr(), Transport::Tcp);
    client.echo(1);
    assert_eq!(untimed.metrics().handler_time, Default::default());
    let text = untimed
        .metrics_exporter()
        .render(MetricsFormat::OpenMetrics);
    assert!(!text.contains("handler_duration"), "{text}");
}
