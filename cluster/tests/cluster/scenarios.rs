//! The research.md §4.9 scenarios: gatehouse frontends in child processes (role `frontend`),
//! real pomelo TCP clients, a real redis-server, and the test process as the backend node.

use crate::harness::pomelo::{Event, PomeloClient};
use crate::harness::procs::{emit, stdin_lines, Child};
use crate::harness::proxy::FaultProxy;
use crate::support::redis_server::RedisServer;
use crate::support::wait_until;
use gatehouse::server::{Handler, Request, Response, Server};
use gatehouse::{CloseReason, SessionConfig, SessionListener, SessionSnapshot, Sid, Uid};
use gatehouse_cluster::{
    encode_push, ClaimMode, Cluster, ClusterConfig, FrontendLink, Outcome, RemoteError, SessionRef,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
/// Timings of the test cluster (research.md §4.9): lease 1 s, heartbeat and sweep 200 ms.
const LEASE: Duration = Duration::from_millis(1000);
const BEAT: Duration = Duration::from_millis(200);

fn config(url: &str, node: &str) -> ClusterConfig {
    ClusterConfig::new(url, node)
        .lease_ttl(LEASE)
        .heartbeat(BEAT)
        .sweep(BEAT)
        .deadline(Duration::from_secs(3))
}

// === the frontend role ==========================================================================

/// Emits the session events the driver follows.
struct EventsOut;

impl SessionListener for EventsOut {
    fn bound(&self, sid: Sid, uid: &Uid) {
        emit(json!({"ev": "bound", "sid": sid.into_raw(), "uid": uid.as_str()}));
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        emit(
            json!({"ev": "closed", "sid": session.sid.into_raw(), "reason": format!("{reason:?}")}),
        );
    }
}

/// `gate.login {uid}` binds the caller locally (a handler's own `bind`, as a pinus connector's
/// entry handler does) and answers `{"code":200,"sid":…}`; `gate.whoami` answers the sid only.
struct FrontHandler;

impl Handler for FrontHandler {
    fn request(&self, req: Request<'_>) -> Response {
        let sid = req.sid().into_raw();
        match req.route() {
            "gate.login" => {
                let body = req.json();
                let uid = body["uid"].as_str().unwrap_or_default();
                match req.service().bind(req.sid(), uid) {
                    Ok(()) => Response::Json(json!({"code": 200, "sid": sid})),
                    Err(e) => Response::Json(json!({"code": 500, "error": e.to_string()})),
                }
            }
            "gate.whoami" => Response::Json(json!({"code": 200, "sid": sid})),
            _ => Response::Json(json!({"code": 404})),
        }
    }
}

/// A gatehouse server with the cluster attached. Env: `GH_REDIS_URL`, `GH_FID`, optional
/// `GH_SUB_URL` (the subscriber's own route), `GH_SINGLE` (`kick` | `refuse`).
pub fn role_frontend() -> ExitCode {
    let commands = stdin_lines();
    let url = std::env::var("GH_REDIS_URL").expect("GH_REDIS_URL");
    let fid = std::env::var("GH_FID").expect("GH_FID");
    let single = match std::env::var("GH_SINGLE").as_deref() {
        Ok("kick") => Some(ClaimMode::Kick),
        Ok("refuse") => Some(ClaimMode::Refuse),
        _ => None,
    };
    let link = FrontendLink::with_listener(Arc::new(EventsOut));
    let server = Server::builder()
        .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .heartbeat(Some(Duration::from_secs(1)))
        .session_config(
            SessionConfig::default()
                .frontend_id(fid.as_str())
                .single_session(single.is_some()),
        )
        .listener(link.clone())
        .start(Arc::new(FrontHandler))
        .expect("server starts");
    let mut cfg = config(&url, &fid).single_session(single);
    cfg.subscriber_url = std::env::var("GH_SUB_URL").ok();
    let cluster = match Cluster::start_frontend(cfg, link, server.service().clone()) {
        Ok(c) => c,
        Err(e) => {
            emit(json!({"ev": "error", "error": e.to_string()}));
            return ExitCode::FAILURE;
        }
    };
    emit(json!({
        "ev": "listening",
        "addr": server.local_addr().to_string(),
        "epoch": cluster.epoch().to_string(),
    }));
    for cmd in commands.iter() {
        if cmd["cmd"] == "stats" {
            emit(
                json!({"ev": "stats", "stats": format!("{:?}", cluster.stats()),
                "bad_frames": cluster.stats().bad_frames, "foreign": cluster.stats().foreign_frames}),
            );
        }
    }
    cluster.shutdown();
    server.shutdown(None);
    ExitCode::SUCCESS
}

/// A frontend child, with its address and epoch.
struct Front {
    child: Child,
    fid: String,
    addr: SocketAddr,
    epoch: u64,
}

impl Front {
    fn start(redis_url: &str, fid: &str, extra: &[(&str, String)]) -> Front {
        let mut env = vec![
            ("GH_REDIS_URL", redis_url.to_string()),
            ("GH_FID", fid.to_string()),
        ];
        env.extend(extra.iter().cloned());
        let mut child = Child::spawn("frontend", &env);
        let ev = child.wait_event(|e| e["ev"] == "listening" || e["ev"] == "error", WAIT);
        assert_eq!(ev["ev"], "listening", "frontend {fid} did not start: {ev}");
        Front {
            child,
            fid: fid.to_string(),
            addr: ev["addr"].as_str().unwrap().parse().unwrap(),
            epoch: ev["epoch"].as_str().unwrap().parse().unwrap(),
        }
    }

    /// A client logged in as `uid` (bound by the frontend's own handler); returns its sid.
    fn login(&self, uid: &str) -> (PomeloClient, Sid) {
        let mut client = PomeloClient::connect(self.addr);
        let answer = client.request("gate.login", &json!({"uid": uid}));
        assert_eq!(answer["code"], 200, "login {uid} on {}: {answer}", self.fid);
        (client, Sid::from_raw(answer["sid"].as_u64().unwrap()))
    }

    fn at(&self, sid: Sid) -> SessionRef {
        SessionRef {
            frontend: self.fid.clone(),
            epoch: self.epoch,
            sid,
        }
    }
}

fn package(route: &str, body: &Value) -> bytes::Bytes {
    encode_push(route, body.to_string().as_bytes()).unwrap()
}

fn expect_push(client: &mut PomeloClient, route: &str) -> Value {
    match client.next_event(WAIT) {
        Some(Event::Push { route: r, body }) if r == route => body,
        other => panic!("expected a push on {route}, got {other:?}"),
    }
}

// === scenarios ==================================================================================

/// §4.9-1: a push from a backend reaches a client on another frontend (bound locally, then
/// remotely), with per-uid outcomes; import/get round trip; pomelo's error text.
pub fn push_across_frontends() {
    let redis = RedisServer::start();
    let url = redis.url();
    let _a = Front::start(&url, "fe-a", &[]);
    let b = Front::start(&url, "fe-b", &[]);
    let backend = Cluster::connect(config(&url, "backend-1")).unwrap();

    let (mut c1, sid1) = b.login("u1");
    wait_until("u1 listed on fe-b", || {
        backend.frontends_of("u1").unwrap() == vec!["fe-b".to_string()]
    });
    let sent = Instant::now();
    let report = backend
        .push_by_uids(&["u1", "nobody"], package("onChat", &json!({"m": "hi"})))
        .unwrap()
        .wait();
    assert_eq!(report.outcome("u1"), Some(Outcome::Delivered), "{report:?}");
    assert_eq!(
        report.targets(Outcome::Offline),
        vec!["nobody"],
        "{report:?}"
    );
    assert_eq!(expect_push(&mut c1, "onChat"), json!({"m": "hi"}));
    println!("  push reached the client on fe-b in {:?}", sent.elapsed());
    assert_eq!(
        c1.next_event(Duration::from_millis(100)),
        None,
        "pushed once"
    );

    // A session bound by the backend (pinus BackendSessionService.bind).
    let mut c2 = PomeloClient::connect(b.addr);
    let sid2 = Sid::from_raw(
        c2.request("gate.whoami", &json!({}))["sid"]
            .as_u64()
            .unwrap(),
    );
    backend.bind(&b.at(sid2), "u1b").unwrap();
    backend
        .import(&b.at(sid2), "room", &json!("lobby"))
        .unwrap();
    let got = backend.get_by_sid(&b.at(sid2)).unwrap().unwrap();
    assert_eq!(got.uid.as_deref(), Some("u1b"));
    assert_eq!(got.settings.get("room"), Some(&json!("lobby")));
    wait_until("u1b listed", || {
        backend.is_online(&["u1b"]).unwrap() == vec![true]
    });
    let report = backend
        .push_by_uids(&["u1b"], package("onChat", &json!({"m": 2})))
        .unwrap()
        .wait();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(expect_push(&mut c2, "onChat"), json!({"m": 2}));

    // pomelo's error texts come back as they are.
    match backend.bind(&b.at(sid1), "other") {
        Err(RemoteError::Pomelo(text)) => assert!(text.contains("u1"), "{text}"),
        other => panic!("expected pomelo's error, got {other:?}"),
    }
    let sessions = backend.get_by_uid("u1").unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].session, b.at(sid1));
    backend.shutdown();
}

/// §4.9-2: kick by uid across two frontends: KICK then EOF on both, count 2, directory empty;
/// a kick without a reason closes without a KICK package.
pub fn kick_across_frontends() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = Front::start(&url, "fe-a", &[]);
    let b = Front::start(&url, "fe-b", &[]);
    let backend = Cluster::connect(config(&url, "backend-2")).unwrap();
    let (mut ca, _) = a.login("u2");
    let (mut cb, _) = b.login("u2");
    wait_until("u2 on both frontends", || {
        backend.frontends_of("u2").unwrap().len() == 2
    });
    let report = backend.kick_by_uid("u2", Some("bye")).unwrap();
    assert_eq!(report.sessions, 2, "{report:?}");
    assert_eq!(ca.expect_closed(WAIT), vec![json!({"reason": "bye"})]);
    assert_eq!(cb.expect_closed(WAIT), vec![json!({"reason": "bye"})]);
    let took = wait_until("u2 gone from the directory", || {
        backend.frontends_of("u2").unwrap().is_empty()
    });
    println!("  directory empty {took:?} after the kick returned");

    let (mut cs, _) = b.login("u2s");
    wait_until("u2s listed", || {
        backend.is_online(&["u2s"]).unwrap() == vec![true]
    });
    assert_eq!(backend.kick_by_uid("u2s", None).unwrap().sessions, 1);
    assert_eq!(
        cs.expect_closed(WAIT),
        Vec::<Value>::new(),
        "no KICK package without a reason"
    );
    backend.shutdown();
}

/// §4.9-3: a crashed frontend: pushes report `FrontendDown` at once, its entries disappear
/// within the lease (+ sweep).
pub fn crash_cleanup() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut b = Front::start(&url, "fe-b", &[]);
    let backend = Cluster::connect(config(&url, "backend-3")).unwrap();
    let (_c, _) = b.login("u3");
    wait_until("u3 listed", || {
        backend.is_online(&["u3"]).unwrap() == vec![true]
    });
    b.child.kill9();
    let killed = Instant::now();
    let report = backend
        .push_by_uids(&["u3"], package("onChat", &json!(1)))
        .unwrap()
        .wait();
    assert_eq!(
        report.outcome("u3"),
        Some(Outcome::FrontendDown),
        "{report:?}"
    );
    println!(
        "  push after kill -9 reported {:?} in {:?}",
        report.entries,
        killed.elapsed()
    );
    let gone = wait_until("u3 not routed", || {
        backend.frontends_of("u3").unwrap().is_empty()
    });
    assert!(
        gone <= LEASE + BEAT * 2 + Duration::from_millis(500),
        "route dropped it after {gone:?}"
    );
    let mut raw = redis.client();
    let cleaned = wait_until("entries reaped", || {
        let field: bool = redis::cmd("HEXISTS")
            .arg("gh:uid:u3")
            .arg("fe-b")
            .query(&mut raw)
            .unwrap();
        let set: bool = redis::cmd("EXISTS")
            .arg("gh:fe:fe-b:uids")
            .query(&mut raw)
            .unwrap();
        !field && !set
    });
    println!(
        "  route empty after {gone:?}, keys reaped {:?} after kill -9",
        killed.elapsed()
    );
    let _ = cleaned;
    backend.shutdown();
}

/// §4.9-3 (second half): a frontend restarted under the same id inside its old lease gets a
/// new epoch; the old incarnation's entries go at once; a stale address names nothing.
pub fn restart_new_epoch() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut old = Front::start(&url, "fe-b", &[]);
    let backend = Cluster::connect(config(&url, "backend-4")).unwrap();
    let (_c, old_sid) = old.login("u5");
    wait_until("u5 listed", || {
        backend.is_online(&["u5"]).unwrap() == vec![true]
    });
    old.child.kill9();
    let new = Front::start(&url, "fe-b", &[]);
    assert_ne!(new.epoch, old.epoch, "a restart gets a new epoch");
    // Registration removed the old incarnation's entries before the new one said "listening".
    let mut raw = redis.client();
    let field: bool = redis::cmd("HEXISTS")
        .arg("gh:uid:u5")
        .arg("fe-b")
        .query(&mut raw)
        .unwrap();
    assert!(
        !field,
        "the old incarnation's entry survived the new registration"
    );
    assert!(!backend.is_online(&["u5"]).unwrap()[0]);
    // The old address names no session on the new process, even if the sid exists there.
    let (_c2, new_sid) = new.login("u6");
    assert_eq!(backend.get_by_sid(&old.at(old_sid)).unwrap(), None);
    assert!(backend.get_by_sid(&new.at(new_sid)).unwrap().is_some());
    backend.shutdown();
}

/// Reads pushes `{"seq": n}` until `n` of them arrived (or 3 s of silence: the streams send
/// 2,000/s, and every fault in them lasts under a second).
fn collect_seqs(client: &mut PomeloClient, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    while seqs.len() < n {
        match client.next_event(Duration::from_secs(3)) {
            Some(Event::Push { body, .. }) => seqs.push(body["seq"].as_u64().unwrap()),
            other => {
                println!(
                    "  stream reader stopped at {} of {n}: {other:?}",
                    seqs.len()
                );
                break;
            }
        }
    }
    seqs
}

/// Each of 0..n exactly once and in order; a short summary otherwise.
fn check_stream(seqs: &[u64], n: u64) -> Result<(), String> {
    if seqs.iter().copied().eq(0..n) {
        return Ok(());
    }
    let mut seen = HashSet::new();
    let dups = seqs.iter().filter(|s| !seen.insert(**s)).count();
    let missing = (0..n).filter(|s| !seen.contains(s)).count();
    let disorder = seqs.windows(2).position(|w| w[1] <= w[0]);
    Err(format!(
        "{} received of {n}: {dups} duplicated, {missing} missing, first disorder at {disorder:?}",
        seqs.len()
    ))
}

/// Pushes `n` numbered packages to `uid` at `rate`/s, calling `fault(elapsed)` between sends;
/// returns the outcome counts.
fn stream(
    backend: &Cluster,
    uid: &str,
    n: u64,
    rate: u64,
    mut fault: impl FnMut(Duration),
) -> std::collections::HashMap<Outcome, usize> {
    let start = Instant::now();
    let mut tickets = Vec::with_capacity(n as usize);
    for seq in 0..n {
        let due = start + Duration::from_micros(1_000_000 / rate) * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        fault(start.elapsed());
        tickets.push(
            backend
                .push_by_uids(&[uid], package("onSeq", &json!({"seq": seq})))
                .unwrap(),
        );
    }
    let mut outcomes = std::collections::HashMap::new();
    for t in tickets {
        for (_, _, o) in t.wait().entries {
            *outcomes.entry(o).or_insert(0) += 1;
        }
    }
    outcomes
}

/// §4.9-4a: Redis `kill -9` at 2 s and back on the same socket 0.5 s later, under 2,000
/// pushes/s to one user: every push delivered, each seq exactly once and in order, and
/// retransmissions happened.
pub fn redis_restart_stream() {
    const N: u64 = 8_000;
    let mut redis = RedisServer::start();
    let url = redis.url();
    let b = Front::start(&url, "fe-b", &[]);
    let backend =
        Cluster::connect(config(&url, "backend-5").deadline(Duration::from_secs(5))).unwrap();
    let (client, _) = b.login("u4");
    wait_until("u4 listed", || {
        backend.is_online(&["u4"]).unwrap() == vec![true]
    });
    let reader = std::thread::spawn(move || {
        let mut client = client;
        collect_seqs(&mut client, N as usize)
    });
    let (mut killed, mut restarted) = (false, false);
    let outcomes = stream(&backend, "u4", N, 2_000, |t| {
        if !killed && t >= Duration::from_secs(2) {
            redis.kill9();
            killed = true;
        }
        if killed && !restarted && t >= Duration::from_millis(2_500) {
            redis.restart();
            restarted = true;
        }
    });
    let seqs = reader.join().unwrap();
    let stats = backend.stats();
    println!(
        "  outcomes {outcomes:?}; backend retransmits {}, reconnects {}",
        stats.retransmits, stats.reconnects
    );
    assert!(killed && restarted);
    assert_eq!(
        outcomes.get(&Outcome::Delivered),
        Some(&(N as usize)),
        "{outcomes:?}"
    );
    check_stream(&seqs, N).unwrap();
    assert!(
        stats.retransmits > 0,
        "retransmission was not exercised: {stats:?}"
    );
    backend.shutdown();
}

/// Runs the byte-swallowing proxy scenario; `no_ack` turns acknowledgements off (the mutant).
fn swallow_run(no_ack: bool) -> Result<(), String> {
    const N: u64 = 5_000;
    let redis = RedisServer::start();
    let url = redis.url();
    let proxy = FaultProxy::start(redis.addr());
    let b = Front::start(&url, "fe-b", &[("GH_SUB_URL", proxy.url())]);
    let mut cfg = config(&url, "backend-6").deadline(Duration::from_secs(5));
    cfg.test_no_ack = no_ack;
    let backend = Cluster::connect(cfg).unwrap();
    let (client, _) = b.login("u7");
    wait_until("u7 listed", || {
        backend.is_online(&["u7"]).unwrap() == vec![true]
    });
    let reader = std::thread::spawn(move || {
        let mut client = client;
        collect_seqs(&mut client, N as usize)
    });
    let mut swallowed = false;
    let outcomes = stream(&backend, "u7", N, 2_000, |t| {
        if !swallowed && t >= Duration::from_secs(1) {
            // Redis counts the subscriber; its bytes vanish for 300 ms; then the reset.
            proxy.swallow_then_reset(Duration::from_millis(300));
            swallowed = true;
        }
    });
    proxy.wait_swallow_done();
    let seqs = reader.join().unwrap();
    println!(
        "  no_ack={no_ack}: outcomes {outcomes:?}; swallowed {} bytes; backend retransmits {}",
        proxy.swallowed_bytes(),
        backend.stats().retransmits
    );
    assert!(
        proxy.swallowed_bytes() > 0,
        "the proxy swallowed nothing: the test did not bite"
    );
    backend.shutdown();
    check_stream(&seqs, N)?;
    if outcomes.get(&Outcome::Delivered) != Some(&(N as usize)) {
        return Err(format!("outcomes {outcomes:?}"));
    }
    Ok(())
}

/// §4.9-4b: a subscriber whose bytes are swallowed (Redis counted it as a receiver) loses no
/// push: acknowledgements and go-back-N retransmission recover every one.
pub fn swallowing_proxy() {
    swallow_run(false).unwrap();
}

/// The mutation check of §4.9-4b: with acknowledgements and retransmission off, the same run
/// must lose pushes — proof that the scenario above can catch the loss.
pub fn swallowing_proxy_mutant() {
    match swallow_run(true) {
        Err(loss) => println!("  without acks, as expected: {loss}"),
        Ok(()) => panic!(
            "with acks off the swallowing proxy lost nothing: the scenario cannot catch a loss"
        ),
    }
}

/// §4.9-4c: pushes still unacknowledged when their deadline passes resolve `Unconfirmed` and
/// are never delivered (let alone twice); the stream carries on afterwards.
pub fn deadline_unconfirmed() {
    let redis = RedisServer::start();
    let url = redis.url();
    let proxy = FaultProxy::start(redis.addr());
    let b = Front::start(&url, "fe-b", &[("GH_SUB_URL", proxy.url())]);
    let backend =
        Cluster::connect(config(&url, "backend-7").deadline(Duration::from_secs(1))).unwrap();
    let (mut client, _) = b.login("u8");
    wait_until("u8 listed", || {
        backend.is_online(&["u8"]).unwrap() == vec![true]
    });
    // The subscriber goes silent for 2.5 s, longer than the 1 s deadline.
    proxy.swallow_then_reset(Duration::from_millis(2_500));
    let tickets: Vec<_> = (0..20)
        .map(|seq| {
            backend
                .push_by_uids(&["u8"], package("onSeq", &json!({"seq": seq})))
                .unwrap()
        })
        .collect();
    for t in tickets {
        let report = t.wait();
        assert_eq!(
            report.outcome("u8"),
            Some(Outcome::Unconfirmed),
            "{report:?}"
        );
    }
    proxy.wait_swallow_done();
    wait_until("fe-b subscribed again", || {
        let mut raw = redis.client();
        let n: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("gh:to:fe-b")
            .query(&mut raw)
            .unwrap();
        n.first().is_some_and(|x| x.1 > 0)
    });
    let report = backend
        .push_by_uids(&["u8"], package("onSeq", &json!({"seq": 100})))
        .unwrap()
        .wait();
    assert!(report.all_delivered(), "after the outage: {report:?}");
    // The expired pushes never arrive; the next one does, once.
    assert_eq!(expect_push(&mut client, "onSeq"), json!({"seq": 100}));
    assert_eq!(client.next_event(Duration::from_millis(300)), None);
    backend.shutdown();
}

/// Cluster-wide single session: two clients log in as the same uid on two frontends at the
/// same moment, 15 rounds per mode; each round ends with exactly one of them connected, the
/// other kicked with the reason, and the directory naming the survivor's frontend.
pub fn single_session() {
    let redis = RedisServer::start();
    let url = redis.url();
    for mode in ["kick", "refuse"] {
        let a = Front::start(
            &url,
            &format!("fe-a-{mode}"),
            &[("GH_SINGLE", mode.to_string())],
        );
        let b = Front::start(
            &url,
            &format!("fe-b-{mode}"),
            &[("GH_SINGLE", mode.to_string())],
        );
        let backend = Cluster::connect(config(&url, &format!("backend-8-{mode}"))).unwrap();
        for round in 0..15 {
            let uid = format!("{mode}-{round}");
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let logins: Vec<_> = [a.addr, b.addr]
                .into_iter()
                .map(|addr| {
                    let (barrier, uid) = (barrier.clone(), uid.clone());
                    std::thread::spawn(move || {
                        let mut client = PomeloClient::connect(addr);
                        barrier.wait();
                        // The loser may be kicked before its login is even answered.
                        client.send_request("gate.login", &json!({"uid": uid}));
                        client
                    })
                })
                .collect();
            let mut clients: Vec<PomeloClient> =
                logins.into_iter().map(|t| t.join().unwrap()).collect();
            // One of them is kicked (KICK with the reason, then EOF); the other stays.
            let mut kicked = None;
            let start = Instant::now();
            while kicked.is_none() {
                assert!(start.elapsed() < WAIT, "{uid}: nobody was kicked");
                for (i, client) in clients.iter_mut().enumerate() {
                    match client.next_event(Duration::from_millis(20)) {
                        None => {}
                        Some(Event::Response { body, .. }) => {
                            assert_eq!(body["code"], 200, "{uid}")
                        }
                        Some(ev) => {
                            let kick = Event::Kick(json!({"reason": "logged in elsewhere"}));
                            assert_eq!(ev, kick, "{uid}");
                            kicked = Some(i);
                            break;
                        }
                    }
                }
            }
            let loser = kicked.unwrap();
            let winner = 1 - loser;
            // After the KICK only the close (and maybe the login's answer) may come.
            loop {
                match clients[loser].next_event(WAIT) {
                    Some(Event::Closed) => break,
                    Some(Event::Response { .. }) => {}
                    other => panic!("{uid}: after the KICK, expected the close, got {other:?}"),
                }
            }
            let fid = if winner == 0 { &a.fid } else { &b.fid };
            wait_until(&format!("{uid} listed on {fid} only"), || {
                backend.frontends_of(&uid).unwrap() == vec![fid.clone()]
            });
            // The winner is still there and reachable.
            let report = backend
                .push_by_uids(&[uid.as_str()], package("onWin", &json!(round)))
                .unwrap()
                .wait();
            assert_eq!(report.sessions, 1, "{uid}: {report:?}");
            let got = loop {
                match clients[winner].next_event(WAIT) {
                    Some(Event::Response { body, .. }) => assert_eq!(body["code"], 200, "{uid}"),
                    Some(Event::Push { route, body }) if route == "onWin" => break body,
                    other => panic!("{uid}: the winner expected its push, got {other:?}"),
                }
            };
            assert_eq!(got, json!(round));
        }
        backend.shutdown();
    }
}

/// Garbage on a node's channel (truncated, wrong version, huge lengths, unknown kinds, another
/// cluster's tag) is counted and dropped; the node keeps serving.
pub fn bad_frames() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut b = Front::start(&url, "fe-b", &[]);
    let backend = Cluster::connect(config(&url, "backend-9")).unwrap();
    let mut raw = redis.client();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![1],
        vec![9, 1, 0, 0],
        vec![1, 7, 0, 0, 0, 0, 0, 0],
        [vec![1u8, 1, 0, 0], vec![0xFF; 60]].concat(),
        vec![0xAB; 5000],
    ];
    for g in &garbage {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("gh:to:fe-b")
            .arg(g.as_slice())
            .query(&mut raw)
            .unwrap();
    }
    let (mut client, _) = b.login("u9");
    wait_until("u9 listed", || {
        backend.is_online(&["u9"]).unwrap() == vec![true]
    });
    let report = backend
        .push_by_uids(&["u9"], package("onChat", &json!("still here")))
        .unwrap()
        .wait();
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(expect_push(&mut client, "onChat"), json!("still here"));
    b.child.send_line(r#"{"cmd":"stats"}"#);
    let stats = b.child.wait_ev("stats", WAIT);
    assert!(
        stats["bad_frames"].as_u64().unwrap() + stats["foreign"].as_u64().unwrap()
            >= garbage.len() as u64,
        "{stats}"
    );
    backend.shutdown();
}
