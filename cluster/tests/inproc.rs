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

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
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
            wait_until(&format!("one session left for {uid}"), || {
                settled(uid, *sa, *sb)
            });
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
