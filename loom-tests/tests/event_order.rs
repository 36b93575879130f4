//! Model 11: session events fire in causal order, per session: bound → unbound → closed.

use gatehouse::{CloseReason, SessionListener, SessionService, SessionSnapshot, Sid, Uid};
use gatehouse_loom_tests::{run_model_exhaustive, small_config, Event};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use std::sync::Arc;

/// Records events like the shared `Recorder`, but starts every callback with a loom-visible
/// operation: a real thread can be preempted anywhere, including between the unlock that
/// committed a change and the listener call that reports it, and loom only switches threads
/// at its own operations. Without this point the model could not see the race it is about.
#[derive(Default)]
struct Ordered {
    calls: AtomicUsize,
    #[allow(clippy::disallowed_types)] // a record, invisible to loom on purpose
    events: std::sync::Mutex<Vec<Event>>,
}

impl Ordered {
    fn record(&self, event: Event) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.events.lock().unwrap().push(event);
    }
}

impl SessionListener for Ordered {
    fn bound(&self, sid: Sid, uid: &Uid) {
        self.record(Event::Bound(sid, uid.clone()));
    }

    fn unbound(&self, sid: Sid, uid: &Uid) {
        self.record(Event::Unbound(sid, uid.clone()));
    }

    fn closed(&self, session: &SessionSnapshot, reason: &CloseReason) {
        self.record(Event::Closed(
            session.sid,
            session.uid.clone(),
            reason.clone(),
        ));
    }
}

/// **Property (events in commit order).** One thread binds session `s` to `u` and unbinds it;
/// another closes `s`. Whatever the interleaving, the listener sees a prefix of
/// `bound, unbound` (one event per call that succeeded) followed by exactly one `closed`, whose
/// snapshot carries the uid `s` had when it closed. A presence map (or a cluster directory)
/// that applies the events in the order it gets them ends empty.
///
/// Threads: binder + closer + main (checks). Ops: bind, unbind | kick_by_session_id.
/// Catches `gatehouse_loom_mutant="events_fired_unlocked"` (`bound` fired after the unlock,
/// outside the shard's event queue: a close committed in between fires `closed` first, and the
/// presence map keeps `s` for ever).
#[test]
fn events_in_causal_order() {
    run_model_exhaustive("events_in_causal_order", || {
        let recorder = Arc::new(Ordered::default());
        let service =
            Arc::new(SessionService::with_listener(small_config(), recorder.clone()).unwrap());
        let s = service.create_in(0, None).unwrap();

        let binder = {
            let service = service.clone();
            thread::spawn(move || {
                let bound = service.bind(s, "u").is_ok();
                let unbound = bound && service.unbind(s, "u").is_ok();
                (bound, unbound)
            })
        };
        let closer = {
            let service = service.clone();
            thread::spawn(move || service.kick_by_session_id(s, None))
        };
        let (bound, unbound) = binder.join().unwrap();
        assert!(closer.join().unwrap());

        let events = recorder.events.lock().unwrap().clone();
        let u = Uid::new("u");
        let mut expected = Vec::new();
        if bound {
            expected.push(Event::Bound(s, u.clone()));
        }
        if unbound {
            expected.push(Event::Unbound(s, u.clone()));
        }
        let bound_at_close = (bound && !unbound).then(|| u.clone());
        expected.push(Event::Closed(
            s,
            bound_at_close,
            CloseReason::KickedSilently,
        ));
        assert_eq!(
            events, expected,
            "events out of causal order (closed fired before bound?)"
        );
        // The presence map a listener would keep: bound adds, unbound and closed remove.
        let mut present = false;
        for event in &events {
            match event {
                Event::Bound(..) => present = true,
                Event::Unbound(..) | Event::Closed(..) => present = false,
            }
        }
        assert!(!present, "a presence map kept the closed session {s:?}");
    });
}
