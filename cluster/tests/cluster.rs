//! The multi-process cluster suite (research.md §4.9), a `harness = false` target.
//!
//! Without `GH_ROLE` in the environment this binary is the test driver: it runs every scenario
//! (or those whose name contains one of the command-line arguments), each under `catch_unwind`,
//! prints `ok` or `FAILED` with the panic message and its time, and ends with the line
//! `cluster: N passed, M failed` (counted by .ci/run); the exit code is 1 if any failed.
//!
//! With `GH_ROLE=<role>` it is a child process started by a scenario (tests/support/procs.rs):
//! it talks JSON lines with the driver (stdout: events, stdin: commands) and exits when its
//! stdin ends, so no child outlives the driver.
//!
//! `--list` (what cargo-nextest sends to enumerate tests) prints nothing: the scenarios start
//! processes and servers of their own and run only through `cargo test --test cluster`.

#[path = "support/harness.rs"]
mod harness;
#[path = "cluster/scenarios.rs"]
mod scenarios;
mod support;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse::server::{Handler, Request, Response, Server};
use harness::pomelo::{push_package, Event, PomeloClient};
use harness::procs::{emit, stdin_lines, Child};
use serde_json::{json, Value};
use support::redis_server::RedisServer;

/// The scenarios, in the order they run.
const SCENARIOS: &[(&str, fn())] = &[
    ("harness_selftest", harness_selftest),
    ("pomelo_client_selftest", pomelo_client_selftest),
    (
        "push_reaches_a_client_on_another_frontend",
        scenarios::push_across_frontends,
    ),
    (
        "kick_by_uid_across_frontends",
        scenarios::kick_across_frontends,
    ),
    (
        "crashed_frontend_cleaned_within_its_lease",
        scenarios::crash_cleanup,
    ),
    (
        "restart_under_the_same_id_gets_a_new_epoch",
        scenarios::restart_new_epoch,
    ),
    (
        "redis_kill9_restart_under_a_steady_stream",
        scenarios::redis_restart_stream,
    ),
    (
        "swallowing_proxy_loses_nothing",
        scenarios::swallowing_proxy,
    ),
    (
        "swallowing_proxy_without_acks_loses_pushes",
        scenarios::swallowing_proxy_mutant,
    ),
    (
        "deadline_passed_is_unconfirmed_never_twice",
        scenarios::deadline_unconfirmed,
    ),
    (
        "single_session_with_concurrent_logins",
        scenarios::single_session,
    ),
    (
        "bad_frames_on_the_bus_are_counted_and_dropped",
        scenarios::bad_frames,
    ),
];

fn main() -> ExitCode {
    match std::env::var("GH_ROLE") {
        Ok(role) => run_role(&role),
        Err(_) => run_scenarios(),
    }
}

// === driver =====================================================================================

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

fn run_scenarios() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    // Flags libtest would take (--nocapture, --test-threads=1…) are accepted and ignored.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, fn())> = SCENARIOS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if selected.is_empty() {
        println!("cluster: no scenario matches {filters:?}");
        println!("cluster: 0 passed, 1 failed");
        return ExitCode::FAILURE;
    }
    let start = Instant::now();
    let (mut passed, mut failed) = (0usize, 0usize);
    for (name, scenario) in selected {
        println!("scenario {name} ...");
        let t0 = Instant::now();
        match std::panic::catch_unwind(scenario) {
            Ok(()) => {
                passed += 1;
                println!("scenario {name} ... ok ({:.2?})", t0.elapsed());
            }
            Err(p) => {
                failed += 1;
                println!(
                    "scenario {name} ... FAILED ({:.2?}): {}",
                    t0.elapsed(),
                    panic_message(&*p)
                );
            }
        }
    }
    println!("cluster: total time {:.2?}", start.elapsed());
    println!("cluster: {passed} passed, {failed} failed");
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// === child roles ================================================================================

fn run_role(role: &str) -> ExitCode {
    match role {
        "echo" => role_echo(),
        "gate" => role_gate(),
        "frontend" => scenarios::role_frontend(),
        other => {
            eprintln!("cluster test: unknown GH_ROLE {other:?}");
            ExitCode::FAILURE
        }
    }
}

/// Emits `{"ev":"ready","pid":…,"redis":$GH_REDIS_URL}`, then `{"ev":"echo","line":<cmd>}` for
/// every command line; exits when stdin ends.
fn role_echo() -> ExitCode {
    let commands = stdin_lines();
    emit(json!({
        "ev": "ready",
        "pid": std::process::id(),
        "redis": std::env::var("GH_REDIS_URL").ok(),
    }));
    for cmd in commands.iter() {
        emit(json!({"ev": "echo", "line": cmd}));
    }
    ExitCode::SUCCESS
}

/// A plain gatehouse server (no cluster) for the pomelo client's selftest: `test.echo` answers
/// `{"code":200,"body":…}`; `test.push` answers, then pushes `push_package("onPush", body)`
/// to the caller; `test.kick` kicks the caller with `body.reason`. Emits
/// `{"ev":"listening","addr":…}`, then `{"ev":"request","sid":…,"route":…}` per request.
struct Gate;

impl Handler for Gate {
    fn request(&self, req: Request<'_>) -> Response {
        let body = req.json();
        emit(json!({"ev": "request", "sid": req.sid().into_raw(), "route": req.route()}));
        match req.route() {
            "test.echo" => Response::Json(json!({"code": 200, "body": body})),
            "test.push" => {
                let responder = req.responder();
                let _ = responder.respond_json(&json!({"code": 200}));
                let frame = bytes::Bytes::from(push_package("onPush", &body));
                let sent = req.service().send_message(req.sid(), frame.into());
                emit(json!({"ev": "pushed", "ok": sent.is_ok()}));
                Response::Deferred
            }
            "test.kick" => {
                let reason = body["reason"].as_str().map(str::to_owned);
                req.service()
                    .kick_by_session_id(req.sid(), reason.as_deref());
                Response::Deferred
            }
            _ => Response::Json(json!({"code": 404})),
        }
    }
}

fn role_gate() -> ExitCode {
    let commands = stdin_lines();
    let server = match Server::builder()
        .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .heartbeat(Some(Duration::from_secs(1)))
        .start(Arc::new(Gate))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gate role: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    emit(json!({"ev": "listening", "addr": server.local_addr().to_string()}));
    // Commands are ignored; the loop ends when the driver closes stdin or dies.
    for _ in commands.iter() {}
    server.shutdown(None);
    ExitCode::SUCCESS
}

// === scenarios ==================================================================================

const WAIT: Duration = Duration::from_secs(10);

/// The pieces every scenario relies on: a redis-server guard, a child process in a role with
/// extra env, JSON events both ways (matched out of order), stdin EOF ending the child, and
/// kill -9 ending it at once.
fn harness_selftest() {
    let redis = RedisServer::start();
    let mut probe = redis.client();
    let pong: String = redis::cmd("PING").query(&mut probe).expect("PING");
    assert_eq!(pong, "PONG");

    let mut child = Child::spawn("echo", &[("GH_REDIS_URL", redis.url())]);
    let ready = child.wait_ev("ready", WAIT);
    assert_eq!(ready["pid"], child.pid());
    assert_eq!(ready["redis"], redis.url());

    child.send_line(r#"{"n":1}"#);
    child.send_line(r#"{"n":2}"#);
    // Out of order: the second echo first, then the first from the backlog.
    let second = child.wait_event(|e| e["line"]["n"] == 2, WAIT);
    assert_eq!(second, json!({"ev": "echo", "line": {"n": 2}}));
    let first = child.wait_event(|e| e["line"]["n"] == 1, WAIT);
    assert_eq!(first, json!({"ev": "echo", "line": {"n": 1}}));

    // A child whose stdin ends exits by itself (so none outlives a dead driver).
    child.close_stdin();
    child.wait_ev("eof", WAIT);
    let status = child.wait_exit(WAIT);
    assert!(status.success(), "echo child exited with {status}");

    // kill -9 ends one at once, mid-conversation.
    let mut child = Child::spawn("echo", &[]);
    child.wait_ev("ready", WAIT);
    child.send_line(r#"{"n":3}"#);
    child.wait_event(|e| e["line"]["n"] == 3, WAIT);
    child.kill9();
    child.wait_ev("eof", WAIT);
    let status = child.wait_exit(WAIT);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "expected death by SIGKILL, got {status}"
    );
}

/// The pomelo test client against a real gatehouse server in a child process: handshake,
/// request/response, a push package built by `push_package` arriving as sent, heartbeats kept
/// up across a quiet spell longer than the server's timeout, and kick then close.
fn pomelo_client_selftest() {
    let mut gate = Child::spawn("gate", &[]);
    let listening = gate.wait_ev("listening", WAIT);
    let addr: SocketAddr = listening["addr"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bad listening event {listening}"));

    let mut client = PomeloClient::connect(addr);
    assert_eq!(client.handshake_reply()["sys"]["heartbeat"], 1);
    let body = json!({"hello": [1, 2, 3], "s": "ü"});
    assert_eq!(
        client.request("test.echo", &body),
        json!({"code": 200, "body": body})
    );

    assert_eq!(
        client.request("test.push", &json!({"n": 7})),
        json!({"code": 200})
    );
    match client.next_event(WAIT) {
        Some(Event::Push { route, body }) => {
            assert_eq!(route, "onPush");
            assert_eq!(body, json!({"n": 7}));
        }
        other => panic!("expected the push, got {other:?}"),
    }

    // The server's heartbeat timeout is 2 s: nothing may arrive in 2.5 s of silence, and the
    // connection must still be up afterwards (the client's own heartbeats kept it alive).
    assert_eq!(client.next_event(Duration::from_millis(2500)), None);
    assert_eq!(
        client.request("test.echo", &json!(1)),
        json!({"code": 200, "body": 1})
    );

    client.send_request("test.kick", &json!({"reason": "bye"}));
    let kicks = client.expect_closed(WAIT);
    assert_eq!(kicks, vec![json!({"reason": "bye"})]);
    assert_eq!(client.next_event(Duration::ZERO), Some(Event::Closed));

    // A kick with no reason: closed without a KICK package.
    let mut client = PomeloClient::connect(addr);
    client.send_request("test.kick", &json!({}));
    assert_eq!(client.expect_closed(WAIT), Vec::<Value>::new());
}
