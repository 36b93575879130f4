//! The `Backplane` seam is real: the whole cluster — routing, frames, acknowledgements,
//! retransmission, single-session claims — runs unchanged on an engine that is not Redis. The
//! engine here is an in-memory one written in this file (leases by `Instant`, channels as
//! crossbeam queues), and it can lose publishes on purpose: the reliability layer above the
//! seam must repair that on any engine, not only on Redis.
#![allow(clippy::disallowed_types)] // test-only engine; the loom shim is for the library

mod support;

use gatehouse::{Command, SessionConfig, SessionService, Sessions};
use gatehouse_cluster::backplane::{Backplane, BusError, Link, Subscription};
use gatehouse_cluster::directory::{Claim, ClaimMode, Heartbeat, Holder};
use gatehouse_cluster::{Cluster, ClusterConfig, FrontendLink, Outcome};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::wait_until;

#[derive(Default)]
struct State {
    subscribers: HashMap<String, Vec<crossbeam_channel::Sender<Vec<u8>>>>,
    leases: HashMap<String, (u64, Instant)>,
    entries: HashMap<String, HashMap<String, u64>>,
    claims: u64,
}

impl State {
    fn live(&self, fid: &str, epoch: u64) -> bool {
        self.leases
            .get(fid)
            .is_some_and(|(e, until)| *e == epoch && Instant::now() < *until)
    }
}

/// An engine in memory. `lose` publishes are counted as received and then dropped — the
/// silent loss pub/sub engines show across restarts.
#[derive(Clone, Default)]
struct Memory {
    state: Arc<Mutex<State>>,
    lose: Arc<AtomicUsize>,
}

impl Backplane for Memory {
    fn connect(&self) -> Result<Box<dyn Link>, BusError> {
        Ok(Box::new(self.clone()))
    }

    fn subscribe(&self, channel: &str) -> Result<Box<dyn Subscription>, BusError> {
        Ok(Box::new(MemorySub {
            engine: self.clone(),
            channel: channel.to_string(),
        }))
    }

    fn channel(&self, node: &str) -> String {
        format!("mem:{node}")
    }
}

impl Link for Memory {
    fn prepare(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn ping(&mut self) -> Result<(), BusError> {
        Ok(())
    }

    fn publish(&mut self, frames: &[(&str, &[u8])]) -> Result<Vec<u64>, BusError> {
        let mut state = self.state.lock().unwrap();
        Ok(frames
            .iter()
            .map(|(channel, bytes)| {
                let subs = state.subscribers.entry(channel.to_string()).or_default();
                let n = subs.len() as u64;
                let lost = self
                    .lose
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                    .is_ok();
                if !lost {
                    subs.retain(|s| s.send(bytes.to_vec()).is_ok());
                }
                n
            })
            .collect())
    }

    fn register(&mut self, fid: &str, epoch: u64, ttl: Duration) -> Result<usize, BusError> {
        let mut state = self.state.lock().unwrap();
        state
            .leases
            .insert(fid.to_string(), (epoch, Instant::now() + ttl));
        let mut removed = 0;
        for holders in state.entries.values_mut() {
            if holders.get(fid).is_some_and(|e| *e != epoch) {
                holders.remove(fid);
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn heartbeat(&mut self, fid: &str, epoch: u64, ttl: Duration) -> Result<Heartbeat, BusError> {
        let mut state = self.state.lock().unwrap();
        if !state.live(fid, epoch) {
            return Ok(Heartbeat::Fenced);
        }
        state
            .leases
            .insert(fid.to_string(), (epoch, Instant::now() + ttl));
        Ok(Heartbeat::Renewed)
    }

    fn lease(&mut self, fid: &str) -> Result<Option<u64>, BusError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .leases
            .get(fid)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(e, _)| *e))
    }

    fn deregister(&mut self, fid: &str, epoch: u64) -> Result<usize, BusError> {
        let mut state = self.state.lock().unwrap();
        if !state.live(fid, epoch) {
            return Ok(0);
        }
        state.leases.remove(fid);
        let mut removed = 0;
        for holders in state.entries.values_mut() {
            removed += usize::from(holders.remove(fid).is_some());
        }
        Ok(removed)
    }

    fn write_entries(
        &mut self,
        fid: &str,
        epoch: u64,
        bind: &[&str],
        unbind: &[&str],
    ) -> Result<(), BusError> {
        let mut state = self.state.lock().unwrap();
        for uid in bind {
            state
                .entries
                .entry(uid.to_string())
                .or_default()
                .insert(fid.to_string(), epoch);
        }
        for uid in unbind {
            if let Some(holders) = state.entries.get_mut(*uid) {
                if holders.get(fid) == Some(&epoch) {
                    holders.remove(fid);
                }
            }
        }
        Ok(())
    }

    fn listed_uids(&mut self, fid: &str) -> Result<Vec<String>, BusError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .entries
            .iter()
            .filter(|(_, h)| h.contains_key(fid))
            .map(|(u, _)| u.clone())
            .collect())
    }

    fn route(&mut self, uids: &[&str]) -> Result<Vec<Vec<Holder>>, BusError> {
        let state = self.state.lock().unwrap();
        Ok(uids
            .iter()
            .map(|uid| {
                state.entries.get(*uid).map_or(Vec::new(), |holders| {
                    holders
                        .iter()
                        .filter(|(fid, epoch)| state.live(fid, **epoch))
                        .map(|(fid, epoch)| Holder {
                            fid: fid.clone(),
                            epoch: *epoch,
                        })
                        .collect()
                })
            })
            .collect())
    }

    fn live_frontends(&mut self) -> Result<Vec<Holder>, BusError> {
        let state = self.state.lock().unwrap();
        Ok(state
            .leases
            .iter()
            .filter(|(fid, (epoch, _))| state.live(fid, *epoch))
            .map(|(fid, (epoch, _))| Holder {
                fid: fid.clone(),
                epoch: *epoch,
            })
            .collect())
    }

    fn reap(&mut self) -> Result<usize, BusError> {
        let mut state = self.state.lock().unwrap();
        let leases = state.leases.clone();
        let live = |fid: &str, epoch: u64| {
            leases
                .get(fid)
                .is_some_and(|(e, until)| *e == epoch && Instant::now() < *until)
        };
        let mut removed = 0;
        for holders in state.entries.values_mut() {
            let before = holders.len();
            holders.retain(|fid, epoch| live(fid, *epoch));
            removed += before - holders.len();
        }
        Ok(removed)
    }

    fn claim(
        &mut self,
        uid: &str,
        fid: &str,
        epoch: u64,
        mode: ClaimMode,
    ) -> Result<Claim, BusError> {
        let mut state = self.state.lock().unwrap();
        let others: Vec<Holder> = state.entries.get(uid).map_or(Vec::new(), |h| {
            h.iter()
                .filter(|(f, e)| f.as_str() != fid && state.live(f, **e))
                .map(|(f, e)| Holder {
                    fid: f.clone(),
                    epoch: *e,
                })
                .collect()
        });
        if mode == ClaimMode::Refuse && !others.is_empty() {
            return Ok(Claim::Refused { holders: others });
        }
        state.claims += 1;
        let gen = state.claims;
        let holders = state.entries.entry(uid.to_string()).or_default();
        holders.retain(|f, _| f == fid);
        holders.insert(fid.to_string(), epoch);
        Ok(Claim::Granted { gen, others })
    }
}

struct MemorySub {
    engine: Memory,
    channel: String,
}

impl Subscription for MemorySub {
    fn run(
        &mut self,
        stop: &AtomicBool,
        subscribed: &mut dyn FnMut(),
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BusError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.engine
            .state
            .lock()
            .unwrap()
            .subscribers
            .entry(self.channel.clone())
            .or_default()
            .push(tx);
        subscribed();
        while !stop.load(Ordering::Acquire) {
            if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(50)) {
                deliver(&bytes);
            }
        }
        Ok(())
    }
}

fn config(node: &str) -> ClusterConfig {
    ClusterConfig::new("memory://unused", node)
        .lease_ttl(Duration::from_millis(1000))
        .heartbeat(Duration::from_millis(200))
        .sweep(Duration::from_millis(200))
        .deadline(Duration::from_secs(3))
}

#[test]
fn the_cluster_runs_on_another_engine_and_repairs_its_losses() {
    let engine = Memory::default();
    let link = FrontendLink::new();
    let service = Arc::new(
        SessionService::with_listener(
            SessionConfig::default().frontend_id("fe-m").shards(1),
            link.clone(),
        )
        .unwrap(),
    );
    let front = Cluster::start_frontend_on(
        config("fe-m"),
        Some(Box::new(engine.clone())),
        link,
        Sessions::new(service.clone(), None),
    )
    .unwrap();
    let backend = Cluster::connect_on(config("be-m"), Box::new(engine.clone())).unwrap();
    let sid = service.create(None).unwrap();
    service.bind(sid, "u").unwrap();
    wait_until("u listed", || {
        backend.frontends_of("u").unwrap() == vec!["fe-m".to_string()]
    });

    // The engine silently drops the next 5 publishes (it still counts a receiver).
    engine.lose.store(5, Ordering::SeqCst);
    let tickets: Vec<_> = (0u32..50)
        .map(|i| {
            backend
                .push_by_uids(&["u"], i.to_le_bytes().to_vec())
                .unwrap()
        })
        .collect();
    for t in tickets {
        assert_eq!(t.wait().outcome("u"), Some(Outcome::Delivered));
    }
    let mut got = Vec::new();
    service.inbox(0).unwrap().drain(|c| {
        if let Command::Send { frame, .. } = c {
            let b = frame.as_bytes();
            got.push(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
    });
    assert_eq!(
        got,
        (0u32..50).collect::<Vec<_>>(),
        "each push once, in order"
    );
    assert_eq!(
        engine.lose.load(Ordering::SeqCst),
        0,
        "the engine did lose publishes"
    );
    assert!(backend.stats().retransmits > 0);

    assert_eq!(backend.kick_by_uid("u", Some("bye")).unwrap().sessions, 1);
    assert!(service.get(sid).is_none());
    backend.shutdown();
    front.shutdown();
}
