//! The example gate server: a pomelo connector on one port (TCP and WebSocket) with the four
//! routes pinus test apps use, so the same clients drive both.
//!
//! ```sh
//! cargo run --release --example gate -- --addr 127.0.0.1:3010 --threads 2 --heartbeat 30
//! ```
//! (`GATEHOUSE_ADDR` also sets the address.)
//!
//! Routes (JSON bodies):
//! * `connector.entryHandler.entry {uid}` → binds the session to the string uid →
//!   `{"code":200,"uid":uid}` (`{"code":500,"error":…}` if the bind fails);
//! * `connector.entryHandler.echo {t}` → `{"code":200,"t":t}`;
//! * `connector.entryHandler.blast {m,size,route}` → `{"code":200,"uids":U,"m":m}` at once,
//!   then `m` rounds of pushes to every bound uid through `send_message_by_uid`, on `route`
//!   (default `onPush`) with body `{"i":round,"p":"xxx…"}` (`size` × `x`), encoded once per
//!   round, from a separate thread;
//! * `connector.entryHandler.stats {}` → `{"code":200,"sessions":…,"bound":…,"rss":bytes or null}`;
//! * `connector.entryHandler.kick {uid?, reason?}` (not in pinus's test apps; for interop
//!   tests) → `{"code":200}`, then kicks `uid` (default: the caller's session) with `reason`
//!   (KICK package only when a reason is given).
//!
//! It runs until killed, or for `--seconds N` and then shuts down gracefully.

use gatehouse::server::{Handler, Request, Response, Server};
use gatehouse::{Frame, SessionService, Uid, UidSendError};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
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

fn bound_uids(service: &SessionService) -> Vec<Uid> {
    let mut seen = HashSet::new();
    let mut uids = Vec::new();
    service.for_each_bound_session(|_, uid| {
        if seen.insert(uid.clone()) {
            uids.push(uid.clone());
        }
    });
    uids
}

fn blast(service: &SessionService, uids: &[Uid], rounds: u64, size: usize, route: &str) {
    let payload = "x".repeat(size);
    let mut dropped = 0u64;
    for round in 0..rounds {
        let body = serde_json::to_vec(&json!({"i": round, "p": payload})).unwrap_or_default();
        let mut bytes = Vec::with_capacity(body.len() + route.len() + 8);
        if gatehouse::protocol::encode_push(route.into(), &body, &mut bytes).is_err() {
            log::error!("blast: push too large");
            return;
        }
        let frame = Frame::new(bytes);
        for uid in uids {
            // A full inbox means the I/O threads are behind: wait and retry, never drop
            // silently. (With several sessions per uid a partial send is counted instead.)
            let mut backoff = Duration::from_micros(20);
            loop {
                match service.send_message_by_uid(uid.as_str(), &frame) {
                    Ok(_) | Err(UidSendError::UnknownUid) => break,
                    Err(UidSendError::InboxFull { enqueued: 0, .. }) => {
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_millis(5));
                    }
                    Err(UidSendError::InboxFull { refused, .. }) => {
                        dropped += refused as u64;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
    if dropped > 0 {
        log::warn!("blast: {dropped} pushes refused (inbox full with several sessions per uid)");
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

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn main() {
    simple_logger();
    let addr: SocketAddr = arg("--addr")
        .or_else(|| std::env::var("GATEHOUSE_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:3010".into())
        .parse()
        .expect("--addr: expected ip:port");
    let mut builder = Server::builder().addr(addr);
    if let Some(threads) = arg("--threads") {
        builder = builder.io_threads(threads.parse().expect("--threads: expected a number"));
    }
    let heartbeat = arg("--heartbeat").map_or(30, |h| h.parse().expect("--heartbeat: seconds"));
    builder = builder.heartbeat((heartbeat > 0).then(|| Duration::from_secs(heartbeat)));
    if let Some(max) = arg("--max-connections") {
        builder =
            builder.max_connections(max.parse().expect("--max-connections: expected a number"));
    }
    let server = builder.start(Arc::new(Gate)).unwrap_or_else(|err| {
        eprintln!("gate: cannot start: {err}");
        std::process::exit(1);
    });
    println!(
        "gate: listening on {} (pid {})",
        server.local_addr(),
        std::process::id()
    );
    let until = arg("--seconds")
        .map(|s| Instant::now() + Duration::from_secs(s.parse().expect("--seconds")));
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

/// A minimal `log` backend for the example: stderr, level from RUST_LOG=off|error|warn|info|debug
/// (default warn: why connections are refused or closed abnormally, nothing per request).
fn simple_logger() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            if self.enabled(record.metadata()) {
                eprintln!("{} {}", record.level(), record.args());
            }
        }
        fn flush(&self) {}
    }
    let level = match std::env::var("RUST_LOG").unwrap_or_default().as_str() {
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" | "trace" => log::LevelFilter::Debug,
        "off" => log::LevelFilter::Off,
        _ => log::LevelFilter::Warn,
    };
    if log::set_boxed_logger(Box::new(Stderr)).is_ok() {
        log::set_max_level(level);
    }
}
