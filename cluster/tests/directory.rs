//! The uid directory (`gatehouse_cluster::directory`) against a real redis-server.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use gatehouse_cluster::directory::{
    connect, redact_url, Claim, ClaimMode, Directory, Heartbeat, Holder,
};
use redis::{Connection, ErrorKind, ServerErrorKind};
use support::redis_server::{RedisAddr, RedisServer};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);

/// Polls `cond` every 5 ms until it holds; panics naming `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn h(fid: &str, epoch: u64) -> Holder {
    Holder {
        fid: fid.to_string(),
        epoch,
    }
}

fn sorted(mut v: Vec<Holder>) -> Vec<Holder> {
    v.sort_by(|a, b| a.fid.cmp(&b.fid));
    v
}

fn bind(con: &mut Connection, dir: &Directory, uids: &[&str], fid: &str, epoch: u64) {
    let mut pipe = redis::pipe();
    for uid in uids {
        dir.pipe_bind(&mut pipe, uid, fid, epoch);
    }
    let r: Vec<i64> = pipe.query(con).expect("bind pipeline");
    assert!(r.iter().all(|&x| x == 1));
}

fn unbind(con: &mut Connection, dir: &Directory, uid: &str, fid: &str, epoch: u64) -> i64 {
    let mut pipe = redis::pipe();
    dir.pipe_unbind(&mut pipe, uid, fid, epoch);
    let r: Vec<i64> = pipe.query(con).expect("unbind pipeline");
    r[0]
}

fn exists(con: &mut Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query::<i64>(con).unwrap() == 1
}

fn hexists(con: &mut Connection, key: &str, field: &str) -> bool {
    redis::cmd("HEXISTS")
        .arg(key)
        .arg(field)
        .query::<i64>(con)
        .unwrap()
        == 1
}

fn setup() -> (RedisServer, Connection, Directory) {
    let server = RedisServer::start();
    let mut con = server.client();
    let dir = Directory::new("gh");
    dir.load(&mut con).unwrap();
    (server, con, dir)
}

fn server_now_ms(con: &mut Connection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query(con).unwrap();
    s * 1000 + us / 1000
}

#[test]
fn guard_starts_pings_restarts() {
    let mut s = RedisServer::start();
    assert!(matches!(s.addr(), RedisAddr::Unix(_)));
    let mut c = s.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let pid = s.pid();
    s.kill9();
    assert!(
        redis::cmd("PING").query::<String>(&mut c).is_err(),
        "server still answers after kill9"
    );
    s.restart();
    assert_ne!(pid, s.pid());
    let mut c = s.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let t = RedisServer::start_tcp();
    assert!(t.url().starts_with("redis://127.0.0.1:"));
    assert!(matches!(t.addr(), RedisAddr::Tcp(_)));
    let mut c = t.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let dir = t.dir().to_path_buf();
    drop(t);
    assert!(!dir.exists(), "temp dir left behind");
}

#[test]
fn names() {
    let dir = Directory::new("gh");
    assert_eq!(dir.prefix(), "gh");
    assert_eq!(dir.channel("connector-1"), "gh:to:connector-1");
}

#[test]
fn register_heartbeat_and_fencing() {
    let (_s, mut con, dir) = setup();
    assert_eq!(dir.lease(&mut con, "fe-a").unwrap(), None);
    assert_eq!(dir.register(&mut con, "fe-a", 1, LONG).unwrap(), 0);
    assert_eq!(dir.lease(&mut con, "fe-a").unwrap(), Some(1));
    // The ZSET score is server time + ttl.
    let score: f64 = redis::cmd("ZSCORE")
        .arg("gh:fes")
        .arg("fe-a")
        .query(&mut con)
        .unwrap();
    let now = server_now_ms(&mut con) as f64;
    assert!(
        (score - (now + 60_000.0)).abs() < 2_000.0,
        "score {score} now {now}"
    );
    assert_eq!(
        dir.heartbeat(&mut con, "fe-a", 1, LONG).unwrap(),
        Heartbeat::Renewed
    );

    // A new incarnation (epoch 2, 1 s lease) fences the old one.
    dir.register(&mut con, "fe-a", 2, Duration::from_secs(1))
        .unwrap();
    assert_eq!(dir.lease(&mut con, "fe-a").unwrap(), Some(2));
    let before: f64 = redis::cmd("ZSCORE")
        .arg("gh:fes")
        .arg("fe-a")
        .query(&mut con)
        .unwrap();
    // The zombie's heartbeat with a 100 s ttl is refused and extends nothing.
    assert_eq!(
        dir.heartbeat(&mut con, "fe-a", 1, Duration::from_secs(100))
            .unwrap(),
        Heartbeat::Fenced
    );
    assert_eq!(dir.lease(&mut con, "fe-a").unwrap(), Some(2));
    let pttl: i64 = redis::cmd("PTTL")
        .arg("gh:fe:fe-a")
        .query(&mut con)
        .unwrap();
    assert!(pttl > 0 && pttl <= 1000, "pttl {pttl}");
    let after: f64 = redis::cmd("ZSCORE")
        .arg("gh:fes")
        .arg("fe-a")
        .query(&mut con)
        .unwrap();
    assert_eq!(before, after);

    // The live incarnation renews; once its lease lapses it is fenced too.
    assert_eq!(
        dir.heartbeat(&mut con, "fe-a", 2, SHORT).unwrap(),
        Heartbeat::Renewed
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg("gh:fe:fe-a")
        .query(&mut con)
        .unwrap();
    assert!(pttl <= 200 && pttl != -1, "pttl {pttl}");
    wait_until(Duration::from_secs(5), "lease expiry", || {
        dir.lease(&mut con, "fe-a").unwrap().is_none()
    });
    assert_eq!(
        dir.heartbeat(&mut con, "fe-a", 2, LONG).unwrap(),
        Heartbeat::Fenced
    );
    assert!(
        !exists(&mut con, "gh:fe:fe-a"),
        "a fenced heartbeat must not recreate the lease"
    );

    // live_frontends lists only live leases.
    dir.register(&mut con, "fe-b", 7, LONG).unwrap();
    dir.register(&mut con, "fe-c", u64::MAX, LONG).unwrap();
    assert_eq!(
        sorted(dir.live_frontends(&mut con).unwrap()),
        vec![h("fe-b", 7), h("fe-c", u64::MAX)]
    );
    // Invalid fids are refused.
    for bad in ["", "@gen"] {
        let e = dir.register(&mut con, bad, 1, LONG).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidClientConfig);
    }
}

#[test]
fn bind_unbind_route() {
    let (_s, mut con, dir) = setup();
    dir.register(&mut con, "fe-a", 1, LONG).unwrap();
    dir.register(&mut con, "fe-b", u64::MAX - 1, LONG).unwrap();
    bind(&mut con, &dir, &["u1", "u2"], "fe-a", 1);
    bind(&mut con, &dir, &["u1"], "fe-b", u64::MAX - 1);
    // Bind is idempotent.
    bind(&mut con, &dir, &["u1"], "fe-b", u64::MAX - 1);

    let r = dir.route(&mut con, &["u1", "u2", "nobody"]).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(
        sorted(r[0].clone()),
        vec![h("fe-a", 1), h("fe-b", u64::MAX - 1)]
    );
    assert_eq!(r[1], vec![h("fe-a", 1)]);
    assert!(r[2].is_empty());
    assert!(dir.route(&mut con, &[]).unwrap().is_empty());
    let listed: BTreeSet<String> = dir
        .listed_uids(&mut con, "fe-a")
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(listed, ["u1", "u2"].iter().map(|s| s.to_string()).collect());

    // Unbind with a wrong epoch (or the wrong fid) does nothing.
    assert_eq!(unbind(&mut con, &dir, "u2", "fe-a", 99), 0);
    assert_eq!(unbind(&mut con, &dir, "u2", "fe-b", u64::MAX - 1), 0);
    assert_eq!(dir.route(&mut con, &["u2"]).unwrap()[0], vec![h("fe-a", 1)]);
    assert_eq!(dir.listed_uids(&mut con, "fe-a").unwrap().len(), 2);

    // The right epoch removes the field, the reverse-set member and the emptied hash.
    assert_eq!(unbind(&mut con, &dir, "u2", "fe-a", 1), 1);
    assert!(dir.route(&mut con, &["u2"]).unwrap()[0].is_empty());
    assert!(!exists(&mut con, "gh:uid:u2"));
    assert_eq!(
        dir.listed_uids(&mut con, "fe-a").unwrap(),
        vec!["u1".to_string()]
    );
    // Unbinding one of two holders keeps the other.
    assert_eq!(unbind(&mut con, &dir, "u1", "fe-a", 1), 1);
    assert_eq!(
        dir.route(&mut con, &["u1"]).unwrap()[0],
        vec![h("fe-b", u64::MAX - 1)]
    );
    assert!(!exists(&mut con, "gh:fe:fe-a:uids"));
}

#[test]
fn stale_entries_are_deleted_lazily_by_route() {
    let (_s, mut con, dir) = setup();
    dir.register(&mut con, "fe-live", 1, LONG).unwrap();
    dir.register(&mut con, "fe-dying", 2, LONG).unwrap();
    bind(&mut con, &dir, &["u"], "fe-live", 1);
    bind(&mut con, &dir, &["u", "v"], "fe-dying", 2);
    let r = dir.route(&mut con, &["u", "v"]).unwrap();
    assert_eq!(
        sorted(r[0].clone()),
        vec![h("fe-dying", 2), h("fe-live", 1)]
    );
    assert_eq!(r[1], vec![h("fe-dying", 2)]);

    dir.register(&mut con, "fe-dying", 2, SHORT).unwrap();
    wait_until(Duration::from_secs(5), "fe-dying's lease expiry", || {
        dir.lease(&mut con, "fe-dying").unwrap().is_none()
    });
    // Entries still exist until something meets them.
    assert!(hexists(&mut con, "gh:uid:v", "fe-dying"));
    let r = dir.route(&mut con, &["u", "v"]).unwrap();
    assert_eq!(r[0], vec![h("fe-live", 1)]);
    assert!(r[1].is_empty());
    assert!(!hexists(&mut con, "gh:uid:u", "fe-dying"));
    assert!(!exists(&mut con, "gh:uid:v"));
    assert!(dir.listed_uids(&mut con, "fe-dying").unwrap().is_empty());
    assert_eq!(
        dir.listed_uids(&mut con, "fe-live").unwrap(),
        vec!["u".to_string()]
    );
    assert_eq!(dir.live_frontends(&mut con).unwrap(), vec![h("fe-live", 1)]);

    // An entry of an older epoch under a live lease of a newer one is stale too.
    bind(&mut con, &dir, &["w"], "fe-live", 0);
    assert!(dir.route(&mut con, &["w"]).unwrap()[0].is_empty());
    assert!(!exists(&mut con, "gh:uid:w"));
}

/// Binds `n` uids `<tag>-<i>` to `fid` in pipelines of 1000.
fn bind_many(con: &mut Connection, dir: &Directory, tag: &str, n: usize, fid: &str, epoch: u64) {
    let uids: Vec<String> = (0..n).map(|i| format!("{tag}-{i}")).collect();
    for chunk in uids.chunks(1000) {
        let refs: Vec<&str> = chunk.iter().map(|s| s.as_str()).collect();
        bind(con, dir, &refs, fid, epoch);
    }
}

/// Waits until `fid`'s lease is gone and the server clock is past its `P:fes` score.
fn wait_dead(con: &mut Connection, dir: &Directory, fid: &str) {
    wait_until(Duration::from_secs(5), "lease expiry", || {
        dir.lease(con, fid).unwrap().is_none()
    });
    let score: f64 = redis::cmd("ZSCORE")
        .arg(format!("{}:fes", dir.prefix()))
        .arg(fid)
        .query(con)
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "server clock past the score",
        || server_now_ms(con) as f64 > score,
    );
}

#[test]
fn reap_removes_a_dead_frontends_entries() {
    const N: usize = 25_000;
    let (_s, mut con, dir) = setup();
    dir.register(&mut con, "fe-live", 1, LONG).unwrap();
    dir.register(&mut con, "fe-dead", 2, LONG).unwrap();
    bind_many(&mut con, &dir, "u", N, "fe-dead", 2);
    bind(&mut con, &dir, &["u-0", "only-live"], "fe-live", 1);
    // Nothing is reaped while the lease lives.
    assert_eq!(dir.reap(&mut con).unwrap(), 0);
    assert_eq!(dir.listed_uids(&mut con, "fe-dead").unwrap().len(), N);

    // Shorten the lease (same epoch: the entries stay) and let it lapse.
    assert_eq!(dir.register(&mut con, "fe-dead", 2, SHORT).unwrap(), 0);
    wait_dead(&mut con, &dir, "fe-dead");
    let t = Instant::now();
    let removed = dir.reap(&mut con).unwrap();
    let took = t.elapsed();
    println!(
        "reap: {removed} entries in {took:?} (chunks of {})",
        gatehouse_cluster::directory::CHUNK
    );
    assert_eq!(removed, N);
    assert!(!exists(&mut con, "gh:fe:fe-dead:uids"));
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("gh:fes")
        .arg("fe-dead")
        .query(&mut con)
        .unwrap();
    assert_eq!(score, None);
    for i in [1, N / 2, N - 1] {
        assert!(!exists(&mut con, &format!("gh:uid:u-{i}")));
    }
    assert_eq!(
        dir.route(&mut con, &["u-0", "only-live"]).unwrap(),
        vec![vec![h("fe-live", 1)], vec![h("fe-live", 1)]]
    );
    // Idempotent.
    assert_eq!(dir.reap(&mut con).unwrap(), 0);
    assert_eq!(dir.live_frontends(&mut con).unwrap(), vec![h("fe-live", 1)]);
}

#[test]
fn concurrent_reapers_remove_each_entry_once() {
    const N: usize = 5_000;
    let (s, mut con, dir) = setup();
    dir.register(&mut con, "fe-x", 3, SHORT).unwrap();
    dir.register(&mut con, "fe-y", 4, SHORT).unwrap();
    bind_many(&mut con, &dir, "x", N, "fe-x", 3);
    bind_many(&mut con, &dir, "y", N, "fe-y", 4);
    wait_dead(&mut con, &dir, "fe-x");
    wait_dead(&mut con, &dir, "fe-y");
    let barrier = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let mut c = s.client();
            let d = dir.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                d.reap(&mut c).unwrap()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 2 * N);
    let keys: Vec<String> = redis::cmd("KEYS").arg("gh:*").query(&mut con).unwrap();
    assert!(keys.is_empty(), "left: {:?}", &keys[..keys.len().min(5)]);
}

#[test]
fn a_new_epoch_removes_the_old_incarnations_entries_at_once() {
    const N: usize = 1_000;
    let (_s, mut con, dir) = setup();
    dir.register(&mut con, "fe-other", 9, LONG).unwrap();
    dir.register(&mut con, "fe-r", 1, LONG).unwrap();
    bind_many(&mut con, &dir, "r", N, "fe-r", 1);
    bind(&mut con, &dir, &["r-0"], "fe-other", 9);

    // Restart within the TTL: every old entry goes now, not at the next reap.
    assert_eq!(dir.register(&mut con, "fe-r", 2, LONG).unwrap(), N);
    assert!(dir.listed_uids(&mut con, "fe-r").unwrap().is_empty());
    assert!(!exists(&mut con, "gh:fe:fe-r:purge"));
    assert!(!exists(&mut con, "gh:uid:r-1"));
    assert_eq!(
        dir.route(&mut con, &["r-0"]).unwrap()[0],
        vec![h("fe-other", 9)]
    );

    // Re-registering the same epoch keeps its entries.
    bind(&mut con, &dir, &["mine"], "fe-r", 2);
    assert_eq!(dir.register(&mut con, "fe-r", 2, LONG).unwrap(), 0);
    assert_eq!(
        dir.route(&mut con, &["mine"]).unwrap()[0],
        vec![h("fe-r", 2)]
    );
    // ... also after the lease lapsed (fenced, then re-registered with the same epoch), and an
    // older incarnation's leftover in the same reverse set is removed.
    bind(&mut con, &dir, &["zombie"], "fe-r", 1);
    dir.register(&mut con, "fe-r", 2, SHORT).unwrap();
    wait_until(Duration::from_secs(5), "lease expiry", || {
        dir.lease(&mut con, "fe-r").unwrap().is_none()
    });
    assert_eq!(dir.register(&mut con, "fe-r", 2, LONG).unwrap(), 1);
    assert_eq!(
        dir.route(&mut con, &["mine", "zombie"]).unwrap(),
        vec![vec![h("fe-r", 2)], vec![]]
    );
    assert_eq!(
        dir.listed_uids(&mut con, "fe-r").unwrap(),
        vec!["mine".to_string()]
    );
}

#[test]
fn claim_refuse_and_kick() {
    let (_s, mut con, dir) = setup();
    dir.register(&mut con, "fe-a", 1, LONG).unwrap();
    dir.register(&mut con, "fe-b", 2, LONG).unwrap();
    dir.register(&mut con, "fe-c", 3, LONG).unwrap();

    let g1 = match dir
        .claim(&mut con, "u", "fe-a", 1, ClaimMode::Refuse)
        .unwrap()
    {
        Claim::Granted { gen, others } => {
            assert!(others.is_empty());
            gen
        }
        other => panic!("expected Granted, got {other:?}"),
    };
    assert_eq!(
        dir.claim(&mut con, "u", "fe-b", 2, ClaimMode::Refuse)
            .unwrap(),
        Claim::Refused {
            holders: vec![h("fe-a", 1)]
        }
    );
    assert_eq!(dir.route(&mut con, &["u"]).unwrap()[0], vec![h("fe-a", 1)]);
    // The holder itself may claim again (its own entry never refuses).
    let g2 = match dir
        .claim(&mut con, "u", "fe-a", 1, ClaimMode::Refuse)
        .unwrap()
    {
        Claim::Granted { gen, others } if others.is_empty() => gen,
        other => panic!("expected Granted, got {other:?}"),
    };
    assert!(g2 > g1);

    // Kick: fe-b takes over, fe-a is reported and removed (field and reverse set).
    bind(&mut con, &dir, &["u"], "fe-c", 3);
    match dir
        .claim(&mut con, "u", "fe-b", 2, ClaimMode::Kick)
        .unwrap()
    {
        Claim::Granted { gen, others } => {
            assert!(gen > g2);
            assert_eq!(sorted(others), vec![h("fe-a", 1), h("fe-c", 3)]);
        }
        other => panic!("expected Granted, got {other:?}"),
    }
    assert_eq!(dir.route(&mut con, &["u"]).unwrap()[0], vec![h("fe-b", 2)]);
    assert!(dir.listed_uids(&mut con, "fe-a").unwrap().is_empty());
    assert!(dir.listed_uids(&mut con, "fe-c").unwrap().is_empty());
    assert_eq!(
        dir.listed_uids(&mut con, "fe-b").unwrap(),
        vec!["u".to_string()]
    );

    // A stale holder (dead lease) never refuses; it is deleted and not reported.
    dir.register(&mut con, "fe-d", 4, SHORT).unwrap();
    bind(&mut con, &dir, &["s"], "fe-d", 4);
    wait_until(Duration::from_secs(5), "fe-d's lease expiry", || {
        dir.lease(&mut con, "fe-d").unwrap().is_none()
    });
    match dir
        .claim(&mut con, "s", "fe-a", 1, ClaimMode::Refuse)
        .unwrap()
    {
        Claim::Granted { others, .. } => assert!(others.is_empty()),
        other => panic!("expected Granted, got {other:?}"),
    }
    assert!(!hexists(&mut con, "gh:uid:s", "fe-d"));
    assert!(dir.listed_uids(&mut con, "fe-d").unwrap().is_empty());
    // A final unbind deletes the hash.
    assert_eq!(unbind(&mut con, &dir, "s", "fe-a", 1), 1);
    assert!(!exists(&mut con, "gh:uid:s"));
}

#[test]
fn concurrent_claims_race() {
    const ROUNDS: usize = 200;
    let (s, mut con, dir) = setup();
    dir.register(&mut con, "fe-1", 11, LONG).unwrap();
    dir.register(&mut con, "fe-2", 22, LONG).unwrap();
    for mode in [ClaimMode::Refuse, ClaimMode::Kick] {
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = [("fe-1", 11u64), ("fe-2", 22u64)]
            .into_iter()
            .map(|(fid, epoch)| {
                let mut c = s.client();
                let d = dir.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    (0..ROUNDS)
                        .map(|round| {
                            b.wait();
                            d.claim(&mut c, &format!("race-{mode:?}-{round}"), fid, epoch, mode)
                                .unwrap()
                        })
                        .collect::<Vec<Claim>>()
                })
            })
            .collect();
        let results: Vec<Vec<Claim>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results[0].len(), ROUNDS);
        for (round, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
            let uid = format!("race-{mode:?}-{round}");
            let holders = dir.route(&mut con, &[uid.as_str()]).unwrap().remove(0);
            assert_eq!(holders.len(), 1, "round {round}: {holders:?}");
            match mode {
                ClaimMode::Refuse => {
                    let granted: Vec<&str> = [(a, "fe-1"), (b, "fe-2")]
                        .iter()
                        .filter(|(c, _)| matches!(c, Claim::Granted { .. }))
                        .map(|(_, f)| *f)
                        .collect();
                    assert_eq!(granted.len(), 1, "round {round}: {a:?} {b:?}");
                    assert_eq!(holders[0].fid, granted[0]);
                }
                ClaimMode::Kick => {
                    let (ga, gb) = match (a, b) {
                        (Claim::Granted { gen: ga, .. }, Claim::Granted { gen: gb, .. }) => {
                            (*ga, *gb)
                        }
                        _ => panic!("round {round}: kick must always grant: {a:?} {b:?}"),
                    };
                    assert_ne!(ga, gb);
                    let winner = if ga > gb { "fe-1" } else { "fe-2" };
                    assert_eq!(holders[0].fid, winner, "round {round}: gens {ga} {gb}");
                    // The later claim removed the earlier one and reported it.
                    let (later, earlier) = if ga > gb { (a, "fe-2") } else { (b, "fe-1") };
                    match later {
                        Claim::Granted { others, .. } => {
                            assert_eq!(
                                others.iter().map(|o| o.fid.as_str()).collect::<Vec<_>>(),
                                vec![earlier]
                            )
                        }
                        _ => unreachable!(),
                    }
                }
            }
        }
    }
}

#[test]
fn prefixes_are_isolated() {
    let (_s, mut con, _) = setup();
    let a = Directory::new("ga");
    let b = Directory::new("gb");
    a.register(&mut con, "fe", 1, LONG).unwrap();
    b.register(&mut con, "fe", 2, LONG).unwrap();
    bind(&mut con, &a, &["u"], "fe", 1);
    bind(&mut con, &b, &["u", "v"], "fe", 2);
    assert_eq!(
        a.route(&mut con, &["u", "v"]).unwrap(),
        vec![vec![h("fe", 1)], vec![]]
    );
    assert_eq!(
        b.route(&mut con, &["u", "v"]).unwrap(),
        vec![vec![h("fe", 2)], vec![h("fe", 2)]]
    );
    assert_eq!(a.live_frontends(&mut con).unwrap(), vec![h("fe", 1)]);
    assert_eq!(
        a.listed_uids(&mut con, "fe").unwrap(),
        vec!["u".to_string()]
    );
    // b's frontend dies and is reaped; a is untouched.
    b.register(&mut con, "fe", 2, SHORT).unwrap();
    wait_dead(&mut con, &b, "fe");
    assert_eq!(a.reap(&mut con).unwrap(), 0);
    assert_eq!(b.reap(&mut con).unwrap(), 2);
    assert_eq!(a.route(&mut con, &["u"]).unwrap(), vec![vec![h("fe", 1)]]);
    assert_eq!(a.lease(&mut con, "fe").unwrap(), Some(1));
    let b_keys: Vec<String> = redis::cmd("KEYS").arg("gb:*").query(&mut con).unwrap();
    assert!(b_keys.is_empty(), "{b_keys:?}");
    let other: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(other.iter().all(|k| k.starts_with("ga:")), "{other:?}");
}

#[test]
fn noscript_after_flush_then_load_again() {
    let (_s, mut con, dir) = setup();
    dir.register(&mut con, "fe", 1, LONG).unwrap();
    bind(&mut con, &dir, &["u"], "fe", 1);
    let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();

    // A pipelined bind reports NOSCRIPT (it cannot reload on its own) ...
    let mut pipe = redis::pipe();
    dir.pipe_bind(&mut pipe, "v", "fe", 1);
    let err = pipe.query::<Vec<i64>>(&mut con).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Server(ServerErrorKind::NoScript),
        "{err}"
    );
    assert!(!exists(&mut con, "gh:uid:v"));
    // ... and works again after load.
    dir.load(&mut con).unwrap();
    let r: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(r, vec![1]);

    // The direct methods reload by themselves.
    let () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut con).unwrap();
    assert_eq!(
        dir.route(&mut con, &["u", "v"]).unwrap(),
        vec![vec![h("fe", 1)], vec![h("fe", 1)]]
    );
    assert_eq!(
        dir.heartbeat(&mut con, "fe", 1, LONG).unwrap(),
        Heartbeat::Renewed
    );
}

#[test]
fn route_after_a_redis_restart_and_reload() {
    let (mut s, mut con, dir) = setup();
    dir.register(&mut con, "fe", 1, LONG).unwrap();
    bind(&mut con, &dir, &["u"], "fe", 1);
    s.kill9();
    s.restart();
    let mut con = s.client();
    // The directory is empty (no persistence): fenced, and the caller re-registers and resyncs.
    assert_eq!(
        dir.heartbeat(&mut con, "fe", 1, LONG).unwrap(),
        Heartbeat::Fenced
    );
    dir.load(&mut con).unwrap();
    assert_eq!(dir.register(&mut con, "fe", 1, LONG).unwrap(), 0);
    bind(&mut con, &dir, &["u"], "fe", 1);
    assert_eq!(dir.route(&mut con, &["u"]).unwrap(), vec![vec![h("fe", 1)]]);
}

#[test]
fn redact_hides_passwords() {
    assert_eq!(
        redact_url("redis://alice:pw@host:1/0"),
        "redis://alice:***@host:1/0"
    );
    assert_eq!(redact_url("redis://:pw@host/"), "redis://:***@host/");
    assert_eq!(redact_url("redis://host:6379/"), "redis://host:6379/");
    assert_eq!(
        redact_url("redis+unix:///tmp/r.sock?user=bob&pass=pw&db=1"),
        "redis+unix:///tmp/r.sock?user=bob&pass=***&db=1"
    );
}

#[test]
fn connect_reports_authentication_failures_without_the_password() {
    const SECRET: &str = "s3cret";
    const WRONG: &str = "Wr0ngPassw0rd";
    let s = RedisServer::start_with(&["--requirepass", SECRET]);
    let base = s.url();
    let t = Duration::from_secs(5);

    // Plain redis::Client with a wrong password: get_connection fails.
    let bad = format!("{base}?pass={WRONG}");
    let e = redis::Client::open(bad.as_str())
        .unwrap()
        .get_connection()
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AuthenticationFailed, "{e}");

    let msg = connect(&bad, t).map(|_| ()).unwrap_err();
    assert!(
        msg.starts_with("authentication failed for redis+unix://"),
        "{msg}"
    );
    assert!(!msg.contains(WRONG), "{msg}");
    let msg = connect(&base, t).map(|_| ()).unwrap_err();
    assert!(msg.contains("authentication required"), "{msg}");
    let mut admin = connect(&format!("{base}?pass={SECRET}"), t).unwrap();

    // An ACL user.
    let () = redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">alicepw", "~*", "&*", "+@all"])
        .query(&mut admin)
        .unwrap();
    let msg = connect(&format!("{base}?user=alice&pass={WRONG}"), t)
        .map(|_| ())
        .unwrap_err();
    assert!(msg.starts_with("authentication failed for"), "{msg}");
    assert!(msg.contains("user=alice") && !msg.contains(WRONG), "{msg}");
    let mut alice = connect(&format!("{base}?user=alice&pass=alicepw"), t).unwrap();
    let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut alice).unwrap();
    assert_eq!(who, "alice");

    // TCP URL form user:password@host.
    let tcp = RedisServer::start_tcp_with(&["--requirepass", SECRET]);
    let RedisAddr::Tcp(addr) = tcp.addr() else {
        panic!("not tcp")
    };
    let msg = connect(&format!("redis://default:{WRONG}@{addr}/"), t)
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        msg,
        format!("authentication failed for redis://default:***@{addr}/ (wrong user or password)")
    );
    connect(&format!("redis://:{SECRET}@{addr}/"), t).unwrap();

    // Nothing listening: a clear error too.
    let gone = format!("{}/nothing.sock", s.dir().display());
    let msg = connect(&format!("redis+unix://{gone}"), t)
        .map(|_| ())
        .unwrap_err();
    assert!(msg.starts_with("cannot connect to redis+unix://"), "{msg}");
}
