//! The gate role (`GH_EXAMPLE_ROLE=gate`): a gatehouse server on 127.0.0.1:0 that is also a
//! cluster frontend. It prints JSON lines on stdout (`ready` with its address first) and reads
//! JSON commands on stdin; it stops when stdin closes.
//!
//! Route `gate.login {uid}` binds the caller's session to `uid` → `{"code":200}`.
//! Commands: `{"cmd":"bulk","n":N,"prefix":P}` binds N in-memory sessions to `P0…P(N-1)` →
//! `{"event":"bulk","n":N,"us":local bind time}`; `{"cmd":"stats"}` → the node's counters.

use gatehouse::server::{Handler, Request, Response, Server};
use gatehouse::SessionConfig;
use gatehouse_cluster::{Cluster, FrontendLink};
use serde_json::{json, Value};
use std::io::BufRead;
use std::sync::Arc;
use std::time::Instant;

struct Login;

impl Handler for Login {
    fn request(&self, req: Request<'_>) -> Response {
        if req.route() != "gate.login" {
            return Response::Json(json!({"code": 500, "error": "unknown route"}));
        }
        let Some(uid) = req.json()["uid"].as_str().map(str::to_owned) else {
            return Response::Json(json!({"code": 500, "error": "missing uid"}));
        };
        match req.service().bind(req.sid(), &uid) {
            Ok(()) => Response::Json(json!({"code": 200, "uid": uid})),
            Err(e) => Response::Json(json!({"code": 500, "error": e.to_string()})),
        }
    }
}

fn emit(v: Value) {
    println!("{v}");
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// Runs the gate until stdin closes; errors are printed as an `error` line.
pub fn run() {
    if let Err(e) = serve() {
        emit(json!({"event": "error", "error": e}));
        std::process::exit(1);
    }
}

fn serve() -> Result<(), String> {
    let fid = env("GH_FID")?;
    let url = env("GH_REDIS_URL")?;
    let prefix = env("GH_PREFIX")?;
    let lease_ms: u64 = env("GH_LEASE_MS")?
        .parse()
        .map_err(|e| format!("GH_LEASE_MS: {e}"))?;
    let link = FrontendLink::new();
    let server = Server::builder()
        .addr(([127, 0, 0, 1], 0).into())
        .io_threads(1)
        .heartbeat(None)
        .session_config(SessionConfig::default().frontend_id(fid.as_str()))
        .listener(link.clone())
        .start(Arc::new(Login))
        .map_err(|e| format!("gate {fid}: {e}"))?;
    let cluster = Cluster::start_frontend(
        crate::demo_config(&url, &fid, &prefix, lease_ms),
        link,
        server.service().clone(),
    )
    .map_err(|e| format!("gate {fid}: {e}"))?;
    emit(
        json!({"event": "ready", "fid": fid, "addr": server.local_addr().to_string(),
                "pid": std::process::id()}),
    );
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let cmd: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                emit(json!({"event": "error", "error": format!("bad command: {e}")}));
                continue;
            }
        };
        match cmd["cmd"].as_str() {
            Some("bulk") => {
                let n = cmd["n"].as_u64().unwrap_or(0);
                let prefix = cmd["prefix"].as_str().unwrap_or("bulk-");
                let service = server.__service();
                let start = Instant::now();
                let mut bound = 0u64;
                for i in 0..n {
                    let ok = service
                        .create(None)
                        .ok()
                        .and_then(|sid| service.bind(sid, &format!("{prefix}{i}")).ok());
                    bound += u64::from(ok.is_some());
                }
                emit(json!({"event": "bulk", "n": bound,
                            "us": start.elapsed().as_micros() as u64}));
            }
            Some("stats") => {
                let s = cluster.stats();
                emit(
                    json!({"event": "stats", "resyncs": s.resyncs, "fenced": s.fenced,
                            "reconnects": s.reconnects, "frames_executed": s.frames_executed,
                            "duplicates": s.duplicates, "event_overflows": s.event_overflows}),
                );
            }
            _ => emit(json!({"event": "error", "error": format!("unknown command {cmd}")})),
        }
    }
    cluster.shutdown();
    server.shutdown(Some("demo over"));
    Ok(())
}
