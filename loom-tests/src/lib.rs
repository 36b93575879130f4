//! Shared scaffolding for gatehouse's loom models (the models themselves are in `tests/`).
//!
//! Run them with `bin/loom.sh` (all models, then every seeded mutant against the model that
//! must catch it). Built without `--cfg gatehouse_loom` this crate refuses to compile, so a
//! misconfigured run cannot pass by running zero models.

#[cfg(not(gatehouse_loom))]
compile_error!(
    "loom-tests must be built with RUSTFLAGS=\"--cfg gatehouse_loom\": run bin/loom.sh \
     (a plain `cargo test` here would silently check nothing)"
);

// Everything else only exists in a loom build, so the guard above is the only error a plain
// build reports.
#[cfg(gatehouse_loom)]
pub use imp::*;

#[cfg(gatehouse_loom)]
mod imp {
    use gatehouse::{CloseReason, SessionConfig, SessionListener, SessionService, SessionSnapshot};
    use gatehouse::{Sid, Uid, Wake};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, OnceLock, Weak};
    use std::time::Instant;

    /// Runs `f` under every interleaving loom explores with at most `LOOM_MAX_PREEMPTIONS`
    /// preemptions (`bin/loom.sh` defaults it to 3), and prints how many it ran, how long it took,
    /// and which mutant this build carries.
    pub fn run_model(name: &str, f: impl Fn() + Sync + Send + 'static) {
        check(name, loom::model::Builder::new(), f);
    }

    /// Like [`run_model`], but with no preemption bound whatever `LOOM_MAX_PREEMPTIONS` says:
    /// loom's search is then exhaustive (every interleaving, up to equivalence). For models small
    /// enough to finish that way in about a second.
    pub fn run_model_exhaustive(name: &str, f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = None;
        check(name, builder, f);
    }

    fn check(name: &str, builder: loom::model::Builder, f: impl Fn() + Sync + Send + 'static) {
        let iterations = Arc::new(AtomicUsize::new(0));
        let counter = iterations.clone();
        let bound = builder.preemption_bound;
        #[cfg(feature = "cluster")]
        let mutant = gatehouse::__private::loom::MUTANT.or(gatehouse_cluster::__loom::MUTANT);
        #[cfg(not(feature = "cluster"))]
        let mutant = gatehouse::__private::loom::MUTANT;
        let mutant = mutant.unwrap_or("none");
        // Printed first, so a failing run's log still shows which build it ran (bin/loom.sh
        // checks that a mutant's run really carried the mutant).
        println!("loom model {name}: checking (mutant {mutant})");
        let start = Instant::now();
        builder.check(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            f();
        });
        println!(
            "loom model {name}: {} interleavings in {:.2?} ({}, mutant {mutant})",
            iterations.load(Ordering::Relaxed),
            start.elapsed(),
            bound.map_or_else(
                || "exhaustive".to_string(),
                |b| format!("preemption bound {b}")
            ),
        );
    }

    /// A service small enough to model: one session shard, one index shard (so the index's
    /// random hash seed cannot change which lock an operation takes between iterations).
    pub fn small_config() -> SessionConfig {
        SessionConfig::default()
            .shards(1)
            .index_shards(1)
            .initial_sessions_per_shard(4)
            .inbox_capacity(8)
    }

    /// A [`Wake`] that stands in for `mio::Waker`: a loom `Notify` (a coalescing permit, like an
    /// eventfd) plus a count of wakes and the thread that issued each.
    #[derive(Debug, Default)]
    pub struct NotifyWaker {
        notify: loom::sync::Notify,
        wakes: loom::sync::atomic::AtomicUsize,
        #[allow(clippy::disallowed_types)] // a record, invisible to loom (see `Recorder`)
        wakers: std::sync::Mutex<Vec<loom::thread::ThreadId>>,
    }

    impl NotifyWaker {
        /// Blocks the consumer until a wake arrives (consuming it). If none ever comes, loom
        /// reports a deadlock: that is how a lost wake-up shows.
        pub fn wait(&self) {
            self.notify.wait();
        }

        /// Wakes issued so far.
        pub fn wakes(&self) -> usize {
            self.wakes.load(loom::sync::atomic::Ordering::SeqCst)
        }

        /// Wakes issued so far by the calling thread.
        pub fn wakes_by_current_thread(&self) -> usize {
            let me = loom::thread::current().id();
            self.wakers
                .lock()
                .unwrap()
                .iter()
                .filter(|t| **t == me)
                .count()
        }
    }

    impl Wake for NotifyWaker {
        fn wake(&self) {
            self.wakers
                .lock()
                .unwrap()
                .push(loom::thread::current().id());
            self.wakes
                .fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
            self.notify.notify();
        }
    }

    /// Plugs `waker` into `inbox` (the inbox holds gatehouse's shim `Arc`, which is loom's here;
    /// `loom::sync::Arc::from_std` wants a unique `Arc`, hence the forwarding handle).
    pub fn set_waker(inbox: &gatehouse::Inbox, waker: &Arc<NotifyWaker>) {
        struct Handle(Arc<NotifyWaker>);
        impl Wake for Handle {
            fn wake(&self) {
                self.0.wake();
            }
        }
        let handle: Arc<dyn Wake> = Arc::new(Handle(waker.clone()));
        assert!(inbox.set_waker(loom::sync::Arc::from_std(handle)));
    }

    /// A session event, as a listener saw it.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Event {
        /// `bound(sid, uid)`.
        Bound(Sid, Uid),
        /// `unbound(sid, uid)`.
        Unbound(Sid, Uid),
        /// `closed(snapshot.sid, snapshot.uid, reason)`.
        Closed(Sid, Option<Uid>, CloseReason),
    }

    /// A listener that records every event and checks, inside `unbound` and `closed`, that the
    /// session already left the uid index ("unbind completes before the event fires").
    ///
    /// The record is a plain `std` mutex, invisible to loom on purpose: it adds no
    /// synchronisation the code under test does not have (loom runs all model threads on one OS
    /// thread, and the lock is never held across a loom operation).
    #[derive(Debug, Default)]
    pub struct Recorder {
        service: OnceLock<Weak<SessionService>>,
        #[allow(clippy::disallowed_types)]
        events: std::sync::Mutex<Vec<Event>>,
        /// Check in `closed` that the index no longer lists the sid (a session leaves the index
        /// before its `closed` event; `bind` changes the index under the session's shard lock, so
        /// no bind can re-list it meanwhile).
        pub check_closed_unindexed: bool,
    }

    impl Recorder {
        /// A service with this recorder as its listener.
        pub fn service(
            config: SessionConfig,
            check_closed_unindexed: bool,
        ) -> (Arc<SessionService>, Arc<Recorder>) {
            let recorder = Arc::new(Recorder {
                check_closed_unindexed,
                ..Recorder::default()
            });
            let service =
                Arc::new(SessionService::with_listener(config, recorder.clone()).unwrap());
            recorder.service.set(Arc::downgrade(&service)).unwrap();
            (service, recorder)
        }

        /// Every event so far, in the order they fired.
        pub fn events(&self) -> Vec<Event> {
            self.events.lock().unwrap().clone()
        }

        /// `closed` events per sid.
        pub fn closed_counts(&self) -> HashMap<Sid, usize> {
            let mut counts = HashMap::new();
            for e in self.events() {
                if let Event::Closed(sid, ..) = e {
                    *counts.entry(sid).or_insert(0) += 1;
                }
            }
            counts
        }

        fn push(&self, event: Event) {
            self.events.lock().unwrap().push(event);
        }

        fn assert_unindexed(&self, sid: Sid, uid: &Uid, what: &str) {
            let Some(service) = self.service.get().and_then(Weak::upgrade) else {
                return;
            };
            let listed = service
                .get_by_uid(uid.as_str())
                .is_some_and(|sids| sids.contains(&sid));
            assert!(
                !listed,
                "`{what}` fired for {sid:?} while the index still lists it under {uid}"
            );
        }
    }

    impl SessionListener for Recorder {
        fn bound(&self, sid: Sid, uid: &Uid) {
            self.push(Event::Bound(sid, uid.clone()));
        }

        fn unbound(&self, sid: Sid, uid: &Uid) {
            self.assert_unindexed(sid, uid, "unbound");
            self.push(Event::Unbound(sid, uid.clone()));
        }

        fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
            if self.check_closed_unindexed {
                if let Some(uid) = &session.uid {
                    self.assert_unindexed(session.sid, uid, "closed");
                }
            }
            self.push(Event::Closed(
                session.sid,
                session.uid.clone(),
                reason.clone(),
            ));
        }
    }

    /// Checks, at a quiescent point, that the uid index and the sessions agree: every sid the
    /// index lists under `u` is a live session bound to `u`, every bound live session is listed
    /// under its uid exactly once, and no index entry is empty.
    pub fn assert_consistent(service: &SessionService) {
        let mut listed: HashMap<Sid, Uid> = HashMap::new();
        for (uid, sids) in service.uid_index_entries() {
            assert!(!sids.is_empty(), "index entry {uid} with no sessions");
            for sid in sids {
                let info = service.get(sid).unwrap_or_else(|| {
                    panic!("index lists {sid:?} under {uid}, but it is not live (half-registered)")
                });
                assert_eq!(
                    info.uid.as_ref(),
                    Some(&uid),
                    "index lists {sid:?} under {uid}, but the session says {:?}",
                    info.uid
                );
                assert!(
                    listed.insert(sid, uid.clone()).is_none(),
                    "index lists {sid:?} twice"
                );
            }
        }
        service.for_each_session(|sid, uid| {
            if let Some(uid) = uid {
                assert_eq!(
                    listed.get(&sid),
                    Some(uid),
                    "{sid:?} says it is bound to {uid}, but the index does not list it there"
                );
            }
        });
    }
}
