//! The cluster layer end to end in one process, without sockets: a frontend node serving an
//! in-memory `SessionService` (its inbox shows what the I/O thread would write), a backend node,
//! and a real `redis-server`.

mod support;

use gatehouse::{Command, SessionConfig, SessionService, Sessions, Sid};
use gatehouse_cluster::{Cluster, ClusterConfig, FrontendLink, Outcome, RemoteError};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis_server::RedisServer;
use support::wait_until;

fn fast(url: &str, node: &str) -> ClusterConfig {
    ClusterConfig::new(url, node)
        .lease_ttl(Duration::from_millis(1000))
        .heartbeat(Duration::from_millis(200))
        .sweep(Duration::from_millis(200))
        .deadline(Duration::from_secs(2))
}

struct Front {
    service: Arc<SessionService>,
    cluster: Cluster,
}

fn frontend(url: &str, fid: &str) -> Front {
    let link = FrontendLink::new();
    let config = SessionConfig::default().frontend_id(fid).shards(1);
    let service = Arc::new(SessionService::with_listener(config, link.clone()).unwrap());
    let sessions = Sessions::new(service.clone(), None);
    let cluster = Cluster::start_frontend(fast(url, fid), link, sessions).unwrap();
    Front { service, cluster }
}

impl Front {
    /// Everything queued for the I/O thread so far.
    fn drain(&self) -> Vec<Command> {
        let mut out = Vec::new();
        self.service.inbox(0).unwrap().drain(|c| out.push(c));
        out
    }
}

#[test]
fn push_kick_and_remote_session_calls_across_nodes() {
    let redis = RedisServer::start();
    let url = redis.url();
    let fe = frontend(&url, "fe-a");
    let backend = Cluster::connect(fast(&url, "be-1")).unwrap();

    let sid = fe.service.create(None).unwrap();
    fe.service.bind(sid, "u1").unwrap();
    wait_until("u1 in the directory", || {
        backend.frontends_of("u1").unwrap() == vec!["fe-a".to_string()]
    });
    assert_eq!(
        backend.is_online(&["u1", "nobody"]).unwrap(),
        vec![true, false]
    );

    let package = gatehouse_cluster::encode_push("onChat", br#"{"m":1}"#).unwrap();
    let report = backend
        .push_by_uids(&["u1", "nobody"], package.clone())
        .unwrap()
        .wait();
    assert_eq!(report.outcome("u1"), Some(Outcome::Delivered), "{report:?}");
    assert_eq!(
        report.outcome("nobody"),
        Some(Outcome::Offline),
        "{report:?}"
    );
    assert_eq!(report.sessions, 1);
    let sent = fe.drain();
    assert!(
        matches!(&sent[..], [Command::Send { sid: s, frame }] if *s == sid && frame.as_bytes() == &package[..]),
        "the frontend queued exactly the package: {sent:?}"
    );

    // Remote session calls, addressed with the frontend's epoch.
    let at = fe.cluster.session_ref(sid);
    backend.import(&at, "room", &json!(7)).unwrap();
    let got = backend.get_by_sid(&at).unwrap().expect("session exists");
    assert_eq!(got.uid.as_deref(), Some("u1"));
    assert_eq!(got.settings.get("room"), Some(&json!(7)));
    // pomelo's error text for a conflicting bind.
    match backend.bind(&at, "u2") {
        Err(RemoteError::Pomelo(text)) => assert!(text.contains("u1"), "{text}"),
        other => panic!("expected pomelo's error, got {other:?}"),
    }
    // A stale address (another epoch) names no session.
    let stale = gatehouse_cluster::SessionRef {
        epoch: at.epoch ^ 1,
        ..at.clone()
    };
    assert_eq!(backend.get_by_sid(&stale).unwrap(), None);

    let kicked = backend.kick_by_uid("u1", Some("bye")).unwrap();
    assert_eq!(kicked.sessions, 1, "{kicked:?}");
    assert!(fe.service.get(sid).is_none());
    assert!(fe
        .drain()
        .iter()
        .any(|c| matches!(c, Command::Close { sid: s, .. } if *s == sid)));
    wait_until("u1 gone from the directory", || {
        backend.frontends_of("u1").unwrap().is_empty()
    });
    let _ = Sid::from_raw(0);
    backend.shutdown();
    fe.cluster.shutdown();
}

fn single_session_front(url: &str, fid: &str, mode: gatehouse_cluster::ClaimMode) -> Front {
    let link = FrontendLink::new();
    let config = SessionConfig::default()
        .frontend_id(fid)
        .shards(1)
        .single_session(true);
    let service = Arc::new(SessionService::with_listener(config, link.clone()).unwrap());
    let sessions = Sessions::new(service.clone(), None);
    let cluster =
        Cluster::start_frontend(fast(url, fid).single_session(Some(mode)), link, sessions).unwrap();
    Front { service, cluster }
}

/// Two frontends bind the same uid at the same moment, 40 times per mode: each time exactly one
/// session is left cluster-wide, and the directory lists exactly its frontend.
#[test]
fn cluster_wide_single_session_with_concurrent_binds() {
    use gatehouse_cluster::ClaimMode;
    let redis = RedisServer::start();
    let url = redis.url();
    for mode in [ClaimMode::Kick, ClaimMode::Refuse] {
        let tag = format!("{mode:?}").to_lowercase();
        let a = single_session_front(&url, &format!("fe-a-{tag}"), mode);
        let b = single_session_front(&url, &format!("fe-b-{tag}"), mode);
        let backend = Cluster::connect(fast(&url, &format!("be-{tag}"))).unwrap();
        let mut rounds = Vec::new();
        for round in 0..40 {
            let uid = format!("{tag}-{round}");
            let sa = a.service.create(None).unwrap();
            let sb = b.service.create(None).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = [(a.service.clone(), sa), (b.service.clone(), sb)]
                .into_iter()
                .map(|(service, sid)| {
                    let (barrier, uid) = (barrier.clone(), uid.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        service.bind(sid, &uid).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            rounds.push((uid, sa, sb));
        }
        let settled = |uid: &str, sa: Sid, sb: Sid| {
            let alive_a = a.service.get(sa).is_some();
            let alive_b = b.service.get(sb).is_some();
            let holders = backend.frontends_of(uid).unwrap();
            let expect = if alive_a {
                a.cluster.node_id()
            } else {
                b.cluster.node_id()
            };
            (alive_a ^ alive_b) && holders == vec![expect.to_string()]
        };
        for (uid, sa, sb) in &rounds {
            let state = || {
                format!(
                    "{uid}: alive on a {}, on b {}, directory {:?}",
                    a.service.get(*sa).is_some(),
                    b.service.get(*sb).is_some(),
                    backend.frontends_of(uid).unwrap()
                )
            };
            let start = Instant::now();
            while !settled(uid, *sa, *sb) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "not settled: {}",
                    state()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Still exactly one after every kick of every round has been answered.
        let report = backend
            .push_by_uids(
                &rounds.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
                &b"x"[..],
            )
            .unwrap()
            .wait();
        assert_eq!(report.count(Outcome::Delivered), rounds.len(), "{report:?}");
        for (uid, sa, sb) in &rounds {
            assert!(settled(uid, *sa, *sb), "{uid} unsettled after the fact");
        }
        for c in [&a.cluster, &b.cluster, &backend] {
            c.shutdown();
        }
    }
}

/// Research §4.9 scenario 4a in one process: a steady 2,000 pushes/s to one user while
/// redis-server is killed (-9) and restarted on the same socket 0.5 s later. Every push is
/// reported delivered, the session receives each sequence number exactly once and in order, and
/// the path that makes it so (retransmission after the reconnect) was really taken.
#[test]
fn redis_restart_under_a_steady_stream_loses_and_duplicates_nothing() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let fe = frontend(&url, "fe-s");
    let backend = Cluster::connect(fast(&url, "be-s").deadline(Duration::from_secs(5))).unwrap();
    let sid = fe.service.create(None).unwrap();
    fe.service.bind(sid, "u4").unwrap();
    wait_until("u4 listed", || {
        backend.is_online(&["u4"]).unwrap() == vec![true]
    });

    // The session's inbox, read as the I/O thread would.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (service, stop) = (fe.service.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seqs = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                service.inbox(0).unwrap().drain(|c| {
                    if let Command::Send { frame, .. } = c {
                        let b = frame.as_bytes();
                        seqs.push(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    }
                });
                std::thread::sleep(Duration::from_millis(1));
            }
            seqs
        })
    };

    const N: u32 = 5_000;
    let start = Instant::now();
    let mut tickets = Vec::with_capacity(N as usize);
    let mut killed = false;
    let mut restarted = false;
    for seq in 0..N {
        let due = start + Duration::from_micros(500) * seq;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if !killed && start.elapsed() >= Duration::from_millis(800) {
            redis.kill9();
            killed = true;
        }
        if killed && !restarted && start.elapsed() >= Duration::from_millis(1300) {
            redis.restart();
            restarted = true;
        }
        tickets.push(
            backend
                .push_by_uids(&["u4"], seq.to_le_bytes().to_vec())
                .unwrap(),
        );
    }
    assert!(killed && restarted);
    let mut outcomes = std::collections::HashMap::new();
    for t in tickets {
        let report = t.wait();
        *outcomes.entry(report.outcome("u4")).or_insert(0) += 1;
    }
    wait_until("every push queued", || {
        fe.service.inbox(0).unwrap().is_empty()
    });
    stop.store(true, std::sync::atomic::Ordering::Release);
    let seqs = consumer.join().unwrap();
    let stats = backend.stats();
    assert_eq!(
        outcomes.get(&Some(Outcome::Delivered)),
        Some(&(N as usize)),
        "outcomes {outcomes:?}, backend {stats:?}, frontend {:?}",
        fe.cluster.stats()
    );
    assert_stream(&seqs, N);
    assert!(
        stats.retransmits > 0,
        "the retransmission path was not exercised: {stats:?}"
    );
    backend.shutdown();
    fe.cluster.shutdown();
}

/// Each of 0..n exactly once and in order; a short summary otherwise (never the whole list).
fn assert_stream(seqs: &[u32], n: u32) {
    if seqs.iter().copied().eq(0..n) {
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let dups = seqs.iter().filter(|s| !seen.insert(**s)).count();
    let missing = (0..n).filter(|s| !seen.contains(s)).count();
    let first_disorder = seqs.windows(2).position(|w| w[1] <= w[0]);
    panic!(
        "stream broken: {} received of {n}, {dups} duplicated, {missing} missing, first out-of-order at index {first_disorder:?}",
        seqs.len()
    );
}

/// A wrong password is a clear startup error that names the problem and never the password;
/// an ACL user with the right password connects.
#[test]
fn credentials_are_checked_at_startup() {
    let redis = RedisServer::start_tcp_with(&["--requirepass", "s3cret"]);
    let url = redis.url();
    let base = url.trim_start_matches("redis://");
    let wrong = format!("redis://default:nope-nope@{base}");
    let err = Cluster::connect(fast(&wrong, "be-auth"))
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(text.contains("authentication"), "{text}");
    assert!(!text.contains("nope-nope"), "the password leaked: {text}");
    let missing = Cluster::connect(fast(&url, "be-auth"))
        .err()
        .expect("refused");
    assert!(missing.to_string().contains("authentication"), "{missing}");

    let mut admin = redis::Client::open(format!("redis://default:s3cret@{base}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "gate", "on", ">gatepw", "~*", "&*", "+@all"][..])
        .query(&mut admin)
        .unwrap();
    let ok = Cluster::connect(fast(&format!("redis://gate:gatepw@{base}"), "be-acl")).unwrap();
    ok.shutdown();
}

/// Two clusters (prefixes) on one Redis never see each other: a backend of one finds the
/// other's users offline, and a frame published on the other's channel is dropped as foreign.
#[test]
fn prefixes_keep_clusters_apart() {
    let redis = RedisServer::start();
    let url = redis.url();
    let link = FrontendLink::new();
    let service = Arc::new(
        SessionService::with_listener(
            SessionConfig::default().frontend_id("fe-x").shards(1),
            link.clone(),
        )
        .unwrap(),
    );
    let front = Cluster::start_frontend(
        fast(&url, "fe-x").prefix("one"),
        link,
        Sessions::new(service.clone(), None),
    )
    .unwrap();
    let sid = service.create(None).unwrap();
    service.bind(sid, "shared-uid").unwrap();
    let same = Cluster::connect(fast(&url, "be-one").prefix("one")).unwrap();
    let other = Cluster::connect(fast(&url, "be-two").prefix("two")).unwrap();
    wait_until("listed in cluster one", || {
        same.is_online(&["shared-uid"]).unwrap() == vec![true]
    });
    assert_eq!(other.is_online(&["shared-uid"]).unwrap(), vec![false]);
    let report = other
        .push_by_uids(&["shared-uid"], &b"x"[..])
        .unwrap()
        .wait();
    assert_eq!(report.outcome("shared-uid"), Some(Outcome::Offline));
    // A frame of cluster "two" published on cluster one's channel by hand.
    let mut w = gatehouse_cluster::frame::DataWriter::new(
        gatehouse_cluster::frame::cluster_tag("two"),
        "be-two",
        other.epoch(),
        front.epoch(),
        1 << 20,
    )
    .unwrap();
    w.push(
        1,
        &gatehouse_cluster::frame::Op::KickUid {
            uid: "shared-uid",
            reason: None,
            below_gen: 0,
        },
    )
    .unwrap();
    let mut bytes = w.finish();
    gatehouse_cluster::frame::set_seq(&mut bytes, 1);
    gatehouse_cluster::frame::set_floor(&mut bytes, 1);
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("one:to:fe-x")
        .arg(bytes)
        .query(&mut raw)
        .unwrap();
    wait_until("the foreign frame counted", || {
        front.stats().foreign_frames == 1
    });
    assert!(service.get(sid).is_some(), "a foreign frame was executed");
    for c in [front, same, other] {
        c.shutdown();
    }
}

/// A clean shutdown removes the frontend's entries at once (no wait for the lease).
#[test]
fn clean_shutdown_deregisters_at_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let fe = frontend(&url, "fe-bye");
    let backend =
        Cluster::connect(fast(&url, "be-bye").lease_ttl(Duration::from_secs(60))).unwrap();
    let sid = fe.service.create(None).unwrap();
    fe.service.bind(sid, "leaving").unwrap();
    wait_until("listed", || {
        backend.is_online(&["leaving"]).unwrap() == vec![true]
    });
    fe.cluster.shutdown();
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let field: bool = redis::cmd("HEXISTS")
        .arg("gh:uid:leaving")
        .arg("fe-bye")
        .query(&mut raw)
        .unwrap();
    assert!(!field, "the entry outlived a clean shutdown");
    assert_eq!(backend.is_online(&["leaving"]).unwrap(), vec![false]);
    backend.shutdown();
}

/// A second process registering under a live frontend's id takes the id over: the first one
/// finds its lease fenced at its next heartbeat, stops writing the directory (a zombie never
/// renews or overwrites the new incarnation's lease or entries), and says so in its counters.
#[test]
fn a_zombie_cannot_renew_its_successors_lease() {
    let redis = RedisServer::start();
    let url = redis.url();
    let old = frontend(&url, "fe-z");
    let new = frontend(&url, "fe-z");
    assert_ne!(old.cluster.epoch(), new.cluster.epoch());
    wait_until("the old incarnation fenced", || {
        old.cluster.stats().fenced == 1
    });
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let lease: String = redis::cmd("GET").arg("gh:fe:fe-z").query(&mut raw).unwrap();
    assert_eq!(lease, new.cluster.epoch().to_string());
    // The zombie's sessions never reach the directory; the new incarnation's do.
    let zs = old.service.create(None).unwrap();
    old.service.bind(zs, "on-zombie").unwrap();
    let ns = new.service.create(None).unwrap();
    new.service.bind(ns, "on-new").unwrap();
    let backend = Cluster::connect(fast(&url, "be-z")).unwrap();
    wait_until("on-new listed", || {
        backend.is_online(&["on-new"]).unwrap() == vec![true]
    });
    assert_eq!(backend.is_online(&["on-zombie"]).unwrap(), vec![false]);
    let lease: String = redis::cmd("GET").arg("gh:fe:fe-z").query(&mut raw).unwrap();
    assert_eq!(
        lease,
        new.cluster.epoch().to_string(),
        "the zombie renewed the lease"
    );
    for c in [&old.cluster, &new.cluster, &backend] {
        c.shutdown();
    }
}
