//! The example gate server: a pomelo connector on one port (TCP and WebSocket) with the four
//! routes pinus test apps use, so the same clients drive both.
//!
//! ```sh
//! cargo run --release --example gate -- --addr 127.0.0.1:3010 --threads 2 --heartbeat 30
//! cargo run --release --example gate -- --help
//! ```
//!
//! Options (`--help` lists them; an unknown option is refused with exit status 2):
//! `--addr IP:PORT` (default `127.0.0.1:3010`, or the `GATEHOUSE_ADDR` environment variable;
//! port 0 picks a free port), `--threads N` (I/O threads, default: the available cores),
//! `--heartbeat SECS` (default 30, 0 disables heartbeats), `--max-connections N` (default
//! 100 000), `--seconds N` (run N seconds, then shut down gracefully; default: until killed),
//! `--dict` (route compression for the gate's routes and `onPush`), `--protos DIR` (protobuf
//! bodies with pinus's `serverProtos.json` / `clientProtos.json` from DIR; `examples/protos`
//! has protos for the routes below).
//! TLS (the build needs `--features tls`): `--tls-cert PEM --tls-key PEM` (both or neither)
//! serve TLS-TCP and WSS on the same port next to plain TCP and WebSocket; `--tls-only` (needs
//! them) refuses plain clients. Without the feature these flags are refused with a message
//! saying how to build with it.
//! Metrics (the build needs `--features prometheus`): `--metrics IP:PORT` serves the
//! connector's counters at `http://IP:PORT/metrics` in the Prometheus / OpenMetrics text
//! formats (off by default; an admin address: keep it on loopback or a private network).
//! Without the feature the flag is refused with a message saying how to build with it.
//! Logs go to stderr (`env_logger`); `RUST_LOG` filters them (default `warn`; e.g. `info`,
//! or `gatehouse::server=debug`).
//! Once listening it prints `gate: listening on ADDR (pid N)`; with TLS, a second line
//! `gate: tls: optional` or `gate: tls: only`.
//!
//! ```sh
//! cargo run --release --features tls --example gate -- --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! Routes (JSON bodies):
//! * `connector.entryHandler.entry {uid}` → binds the session to the string uid →
//!   `{"code":200,"uid":uid}` (`{"code":500,"error":…}` if the bind fails);
//! * `connector.entryHandler.echo {t}` → `{"code":200,"t":t}`;
//! * `connector.entryHandler.blast {m,size,route}` → `{"code":200,"uids":U,"m":m}` at once,
//!   then, from a separate thread, `m` rounds of one push to every uid bound at the time of the
//!   request, through [`Sessions::push_to_uids`] on `route` (default `onPush`) with body
//!   `{"i":round,"p":"xxx…"}` (`size` × `x`): each round is encoded once, and the sessions
//!   whose inbox was full are retried with [`Sessions::retry`] (exactly those, never twice)
//!   before the next round starts;
//! * `connector.entryHandler.stats {}` → `{"code":200,"sessions":…,"bound":…,"rss":bytes or null}`;
//! * `connector.entryHandler.kick {uid?, reason?}` (not in pinus's test apps; for interop
//!   tests) → `{"code":200}`, then kicks `uid` (default: the caller's session) with `reason`
//!   (KICK package only when a reason is given).

use clap::Parser;
use gatehouse::protocol::Protos;
use gatehouse::server::{Handler, Request, Response, Server};
use gatehouse::{Sessions, Uid};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Gate;

impl Handler for Gate {
    fn request(&self, req: Request<'_>) -> Response {
        let body = req.json();
        match req.route() {
            "connector.entryHandler.entry" => {
                let uid = match &body["uid"] {
                    Value::String(s) => s.clone(),
                    Value::Null => {
                        return Response::Json(json!({"code": 500, "error": "missing uid"}))
                    }
                    other => other.to_string(),
                };
                match req.service().bind(req.sid(), &uid) {
                    Ok(()) => Response::Json(json!({"code": 200, "uid": uid})),
                    Err(err) => Response::Json(json!({"code": 500, "error": err.to_string()})),
                }
            }
            "connector.entryHandler.echo" => Response::Json(json!({"code": 200, "t": body["t"]})),
            "connector.entryHandler.blast" => {
                let rounds = body["m"].as_u64().unwrap_or(1).min(1_000_000);
                let size = body["size"].as_u64().unwrap_or(16).min(1 << 20) as usize;
                let route = body["route"].as_str().unwrap_or("onPush").to_owned();
                let service = req.service().clone();
                let uids = bound_uids(&service);
                let responder = req.responder();
                let reply = json!({"code": 200, "uids": uids.len(), "m": rounds});
                std::thread::spawn(move || {
                    // Reply first, then push: the client knows how many pushes to expect.
                    let _ = responder.respond_json(&reply);
                    blast(&service, &uids, rounds, size, &route);
                });
                Response::Deferred
            }
            "connector.entryHandler.kick" => {
                // Replies, then kicks: the reply is queued before the close, so it arrives
                // first, then the KICK package (only if a reason was given), then the close.
                let reason = body["reason"].as_str().map(str::to_owned);
                let responder = req.responder();
                let service = req.service().clone();
                let target = body["uid"].as_str().map(str::to_owned);
                let sid = req.sid();
                let _ = responder.respond_json(&json!({"code": 200}));
                match target {
                    Some(uid) => {
                        service.kick(&uid, reason.as_deref());
                    }
                    None => {
                        service.kick_by_session_id(sid, reason.as_deref());
                    }
                }
                Response::Deferred
            }
            "connector.entryHandler.stats" => Response::Json(json!({
                "code": 200,
                "sessions": req.service().sessions_count(),
                "bound": req.service().bound_uids_count(),
                "rss": rss_bytes(),
            })),
            _ => Response::Json(json!({"code": 500, "error": "unknown route"})),
        }
    }
}

fn bound_uids(sessions: &Sessions) -> Vec<Uid> {
    let mut seen = HashSet::new();
    let mut uids = Vec::new();
    sessions.for_each_bound_session(|_, uid| {
        if seen.insert(uid.clone()) {
            uids.push(uid.clone());
        }
    });
    uids
}

fn blast(sessions: &Sessions, uids: &[Uid], rounds: u64, size: usize, route: &str) {
    let payload = "x".repeat(size);
    let mut gone = 0;
    for round in 0..rounds {
        let body = json!({"i": round, "p": payload});
        let mut report = match sessions.push_to_uids(uids, route, &body) {
            Ok(report) => report,
            Err(err) => {
                log::error!("blast: {err}");
                return;
            }
        };
        // A full inbox means the I/O threads are behind: wait, then send the same frame to
        // exactly the sessions that were skipped (never dropped, never duplicated).
        let mut backoff = Duration::from_micros(20);
        while !report.push.is_complete() {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(5));
            sessions.retry(&mut report.push);
        }
        gone += report.push.gone();
    }
    if gone > 0 {
        log::warn!("blast: {gone} pushes not retried: their session closed meanwhile");
    }
}

/// Resident set size of this process, from /proc; `None` (JSON null) where unavailable, e.g.
/// when the process is out of file descriptors.
fn rss_bytes() -> Option<u64> {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
}

/// The example gate server: a pomelo connector (TCP and WebSocket on one port) with the
/// entry, echo, blast, stats and kick routes.
#[derive(Debug, Parser)]
#[command(
    name = "gate",
    after_help = "Logging: to stderr, level from RUST_LOG (default warn; e.g. RUST_LOG=info, or \
                  RUST_LOG=gatehouse::server=debug for one module)."
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        value_name = "IP:PORT",
        env = "GATEHOUSE_ADDR",
        default_value = "127.0.0.1:3010"
    )]
    addr: SocketAddr,
    /// I/O threads, 1..=256 [default: the available cores].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Heartbeat interval in seconds; 0 disables heartbeats and their timeout.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    heartbeat: u64,
    /// Connections held at once; further ones are refused at accept [default: 100000].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Run this many seconds, then shut down gracefully [default: until killed].
    #[arg(long, value_name = "N")]
    seconds: Option<u64>,
    /// Route compression (pinus `useDict`): the gate's routes and `onPush` get 2-byte codes,
    /// announced in the handshake.
    #[arg(long)]
    dict: bool,
    /// Protobuf bodies (pinus `useProtobuf`): DIR holds pinus's `serverProtos.json` and
    /// `clientProtos.json` (examples/protos has ones for the gate's routes).
    #[arg(long, value_name = "DIR")]
    protos: Option<PathBuf>,
    /// PEM certificate chain (leaf first): serve TLS-TCP and WSS on the same port (needs a
    /// build with `--features tls`).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Refuse plain (non-TLS) clients.
    #[arg(long, requires = "tls_cert")]
    tls_only: bool,
    /// Serve Prometheus metrics at http://IP:PORT/metrics (needs a build with `--features
    /// prometheus`). An admin address: never expose it publicly [default: off].
    #[arg(long, value_name = "IP:PORT")]
    metrics: Option<SocketAddr>,
    /// Time every handler call into the `gatehouse_handler_duration_seconds` histogram (two
    /// clock reads per call).
    #[arg(long)]
    time_handlers: bool,
}

/// Starts the `--metrics` endpoint, if asked for; kept alive by the caller.
#[cfg(feature = "prometheus")]
fn metrics_endpoint(server: &Server, cli: &Cli) -> Option<gatehouse::server::MetricsEndpoint> {
    let addr = cli.metrics?;
    let endpoint = gatehouse::server::MetricsEndpoint::start(addr, server.metrics_exporter())
        .unwrap_or_else(|err| {
            eprintln!("gate: cannot serve metrics on {addr}: {err}");
            std::process::exit(1);
        });
    println!("gate: metrics on http://{}/metrics", endpoint.local_addr());
    Some(endpoint)
}

/// Without the `prometheus` feature: `--metrics` is refused (before the server starts).
#[cfg(not(feature = "prometheus"))]
fn refuse_metrics(cli: &Cli) {
    if cli.metrics.is_some() {
        eprintln!(
            "gate: built without the prometheus feature: cargo run --features prometheus --example gate -- …"
        );
        std::process::exit(2);
    }
}

/// Applies the TLS flags to the builder.
#[cfg(feature = "tls")]
fn with_tls(
    builder: gatehouse::server::ServerBuilder,
    cli: &Cli,
) -> gatehouse::server::ServerBuilder {
    let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) else {
        return builder;
    };
    let config = gatehouse::server::TlsConfig::from_pem_files(cert, key).unwrap_or_else(|err| {
        eprintln!("gate: cannot load the TLS certificate: {err}");
        std::process::exit(1);
    });
    builder.tls(config).tls_only(cli.tls_only)
}

/// Without the `tls` feature: the TLS flags are refused.
#[cfg(not(feature = "tls"))]
fn with_tls(
    builder: gatehouse::server::ServerBuilder,
    cli: &Cli,
) -> gatehouse::server::ServerBuilder {
    if cli.tls_cert.is_some() || cli.tls_key.is_some() || cli.tls_only {
        eprintln!(
            "gate: built without the tls feature: cargo run --features tls --example gate -- …"
        );
        std::process::exit(2);
    }
    builder
}

/// The routes `--dict` compresses: the gate's handler routes and its push route.
const DICT_ROUTES: [&str; 6] = [
    "connector.entryHandler.entry",
    "connector.entryHandler.echo",
    "connector.entryHandler.blast",
    "connector.entryHandler.stats",
    "connector.entryHandler.kick",
    "onPush",
];

fn main() {
    let cli = Cli::parse();
    init_logger();
    #[cfg(not(feature = "prometheus"))]
    refuse_metrics(&cli);
    let mut builder = Server::builder().addr(cli.addr);
    if let Some(threads) = cli.threads {
        builder = builder.io_threads(threads);
    }
    builder = builder.heartbeat((cli.heartbeat > 0).then(|| Duration::from_secs(cli.heartbeat)));
    if let Some(max) = cli.max_connections {
        builder = builder.max_connections(max);
    }
    builder = builder.time_handlers(cli.time_handlers);
    if cli.dict {
        builder = builder.dictionary(DICT_ROUTES);
    }
    if let Some(dir) = &cli.protos {
        let protos = Protos::load_dir(dir).unwrap_or_else(|err| {
            eprintln!("gate: cannot load protos from {}: {err}", dir.display());
            std::process::exit(1);
        });
        eprintln!(
            "gate: protobuf on, protos version {} from {}",
            protos.version(),
            dir.display()
        );
        builder = builder.protos(Some(Arc::new(protos)));
    }
    builder = with_tls(builder, &cli);
    let server = builder.start(Arc::new(Gate)).unwrap_or_else(|err| {
        eprintln!("gate: cannot start: {err}");
        std::process::exit(1);
    });
    println!(
        "gate: listening on {} (pid {})",
        server.local_addr(),
        std::process::id()
    );
    if cli.tls_cert.is_some() {
        println!(
            "gate: tls: {}",
            if cli.tls_only { "only" } else { "optional" }
        );
    }
    #[cfg(feature = "prometheus")]
    let _metrics = metrics_endpoint(&server, &cli);
    let until = cli
        .seconds
        .and_then(|s| Instant::now().checked_add(Duration::from_secs(s)));
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
    }
    let m = server.metrics();
    println!("gate: stopping; {m:?}");
    server.shutdown(Some("server shutting down"));
}

/// The gate's log: `env_logger` on stderr, filtered by `RUST_LOG` (e.g. `info`, `debug`,
/// `gatehouse::server=debug`); default `warn`: why connections are refused or closed
/// abnormally, nothing per request.
fn init_logger() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::error::ErrorKind;
    use clap::Parser;

    /// One test, because clap reads `GATEHOUSE_ADDR` on every parse and this sets it.
    #[test]
    fn command_line() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["gate"], args].concat());

        // `--help` prints help and exits 0; unknown flags are refused with exit status 2.
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!((help.kind(), help.exit_code()), (ErrorKind::DisplayHelp, 0));
        let text = help.to_string();
        for flag in [
            "--addr",
            "--threads",
            "--heartbeat",
            "--max-connections",
            "--seconds",
            "--dict",
            "--protos",
            "--metrics",
            "--time-handlers",
            "GATEHOUSE_ADDR",
        ] {
            assert!(text.contains(flag), "{flag} missing from --help:\n{text}");
        }
        let unknown = parse(&["--bogus"]).unwrap_err();
        assert_eq!(
            (unknown.kind(), unknown.exit_code()),
            (ErrorKind::UnknownArgument, 2)
        );
        let stray = parse(&["extra"]).unwrap_err();
        assert_eq!(stray.exit_code(), 2);
        let bad = parse(&["--threads", "two"]).unwrap_err();
        assert_eq!(
            (bad.kind(), bad.exit_code()),
            (ErrorKind::ValueValidation, 2)
        );

        // Defaults.
        std::env::remove_var("GATEHOUSE_ADDR");
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.addr, "127.0.0.1:3010".parse().unwrap());
        assert_eq!(
            (cli.threads, cli.heartbeat, cli.max_connections, cli.seconds),
            (None, 30, None, None)
        );

        // How loadgen --spawn-gate, tests/interop/run.sh and bench/*.sh start the gate.
        let cli = parse(&[
            "--addr",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--seconds",
            "600",
            "--heartbeat",
            "1",
            "--max-connections",
            "20100",
        ])
        .unwrap();
        assert_eq!(cli.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            (cli.threads, cli.heartbeat, cli.max_connections, cli.seconds),
            (Some(2), 1, Some(20100), Some(600))
        );
        assert_eq!(parse(&["--heartbeat=0"]).unwrap().heartbeat, 0);
        let cli = parse(&["--dict", "--protos", "examples/protos"]).unwrap();
        assert!(cli.dict);
        assert_eq!(cli.protos, Some("examples/protos".into()));
        assert!(!parse(&[]).unwrap().dict);
        // Metrics: off by default, an IP:PORT when given.
        assert_eq!(parse(&[]).unwrap().metrics, None);
        assert_eq!(
            parse(&["--metrics", "127.0.0.1:9100"]).unwrap().metrics,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        assert_eq!(parse(&["--metrics", "9100"]).unwrap_err().exit_code(), 2);

        // GATEHOUSE_ADDR sets the address; --addr wins over it.
        std::env::set_var("GATEHOUSE_ADDR", "0.0.0.0:4000");
        assert_eq!(parse(&[]).unwrap().addr, "0.0.0.0:4000".parse().unwrap());
        assert_eq!(
            parse(&["--addr", "127.0.0.1:5000"]).unwrap().addr,
            "127.0.0.1:5000".parse().unwrap()
        );
        // TLS flags: certificate and key together; --tls-only needs them.
        let cli = parse(&["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-only"]).unwrap();
        assert_eq!(cli.tls_cert.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(cli.tls_key.as_deref(), Some(std::path::Path::new("k.pem")));
        assert!(cli.tls_only);
        assert!(!parse(&[]).unwrap().tls_only);
        for lone in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-only"],
        ] {
            let err = parse(lone).unwrap_err();
            assert_eq!(
                (err.kind(), err.exit_code()),
                (ErrorKind::MissingRequiredArgument, 2),
                "{lone:?}"
            );
        }

        std::env::set_var("GATEHOUSE_ADDR", "not an address");
        assert_eq!(parse(&[]).unwrap_err().exit_code(), 2);
        std::env::remove_var("GATEHOUSE_ADDR");
    }
}
