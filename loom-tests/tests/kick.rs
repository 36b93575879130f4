//! Model 5: kicking a uid while a new session of that uid binds.

use gatehouse::{BindError, Command};
use gatehouse_loom_tests::{
    assert_consistent, run_model_exhaustive, small_config, Event, Recorder,
};
use loom::thread;
use std::collections::HashMap;

/// **Property (kick racing a new bind: nothing half-registered, each close once).** Session
/// `s1` is bound to `u`; one thread kicks `u` (pomelo's "log the old session out") while
/// another binds a new session `s2` to `u` and then kicks `s1` by sid. Afterwards no session
/// is half-registered (index and sessions agree: a live `s2` bound to `u` is listed, a dead one
/// is not), `s1` is gone, every closed session got exactly one `closed` event and exactly one
/// `Close` command, live sessions none, and the closes reported by `kick` and
/// `kick_by_session_id` add up to the sessions closed.
///
/// Threads: kicker + binder + main (checks). Ops: kick(uid) | bind, kick(sid).
/// Catches `gatehouse_loom_mutant="unindex_whole_uid"` (closing `s1` unindexes every session
/// of `u`: if `s2`'s bind lands between the kick's lookup and its close, `s2` stays bound but
/// unlisted).
#[test]
fn kick_racing_bind() {
    run_model_exhaustive("kick_racing_bind", || {
        let (service, recorder) = Recorder::service(small_config(), true);
        let s1 = service.create_in(0, None).unwrap();
        let s2 = service.create_in(0, None).unwrap();
        service.bind(s1, "u").unwrap();

        let kicker = {
            let service = service.clone();
            thread::spawn(move || service.kick("u", Some("relogin")))
        };
        let binder = {
            let service = service.clone();
            thread::spawn(move || {
                let bound = service.bind(s2, "u");
                let kicked = service.kick_by_session_id(s1, None);
                (bound, kicked)
            })
        };
        let kicked_by_uid = kicker.join().unwrap();
        let (bound, kicked_by_sid) = binder.join().unwrap();

        assert!(
            matches!(bound, Ok(()) | Err(BindError::UnknownSession(_))),
            "{bound:?}"
        );
        assert!(service.get(s1).is_none(), "{s1:?} survived the kicks");
        assert_consistent(&service);

        let mut closed_events: HashMap<_, usize> = HashMap::new();
        for e in recorder.events() {
            if let Event::Closed(sid, ..) = e {
                *closed_events.entry(sid).or_default() += 1;
            }
        }
        let mut close_cmds: HashMap<_, usize> = HashMap::new();
        service.inbox(0).unwrap().drain(|cmd| {
            if let Command::Close { sid, .. } = cmd {
                *close_cmds.entry(sid).or_default() += 1;
            }
        });
        for sid in [s1, s2] {
            let expected = usize::from(service.get(sid).is_none());
            assert_eq!(
                closed_events.get(&sid).copied().unwrap_or(0),
                expected,
                "closed events of {sid:?}"
            );
            assert_eq!(
                close_cmds.get(&sid).copied().unwrap_or(0),
                expected,
                "Close commands of {sid:?}"
            );
        }
        if service.get(s2).is_some() {
            assert_eq!(bound, Ok(()));
        }
        assert_eq!(
            kicked_by_uid + usize::from(kicked_by_sid),
            closed_events.values().sum::<usize>()
        );
    });
}
