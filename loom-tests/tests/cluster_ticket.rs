//! Cluster model 1: a call's completion slot (`cluster/src/ticket.rs`). The bridge thread routes
//! a call into parts (`expect`), records the targets it resolves itself (`record`), resolves its
//! local parts and seals the ticket; another bridge thread resolves the remote parts as their
//! acknowledgements arrive; the caller blocks until the ticket is complete.

use gatehouse_cluster::__loom::Ticket;
use gatehouse_cluster::Outcome;
use gatehouse_loom_tests::{run_model, run_model_exhaustive};
use loom::thread;
use std::time::Duration;

fn entry(target: &str, frontend: &str, outcome: Outcome) -> Vec<(String, String, Outcome)> {
    vec![(target.to_string(), frontend.to_string(), outcome)]
}

/// A call whose part for target `a`, on a remote frontend, is already dispatched (expected
/// before the threads start).
fn start_call() -> Ticket {
    let ticket = Ticket::new();
    ticket.expect(1); // part `a`, already on its way
    ticket
}

/// The remote frontend's acknowledgement of part `a`, resolved by the bridge that receives it.
fn ack_a(ticket: &Ticket) {
    ticket.resolve(entry("a", "fe-1", Outcome::Delivered), 1, Some("fe-1"));
}

/// The rest of the routing: the offline target, part `b` expected and resolved locally, seal.
fn route_rest(ticket: &Ticket) {
    ticket.record(entry("off", "", Outcome::Offline));
    ticket.expect(1);
    ticket.resolve(entry("b", "fe-0", Outcome::Delivered), 1, None);
    ticket.seal();
}

/// Waits like a caller, then asserts the report is the whole call's: `targets` (sorted), one
/// session per delivered target, one reply (from `a`'s frontend).
fn check(ticket: &Ticket, timeout: Option<Duration>, targets: &[&str]) {
    let (report, replies) = ticket
        .wait_for(timeout)
        .expect("loom never times out a wait: a complete ticket must return its report");
    let mut seen: Vec<&str> = report.entries.iter().map(|e| e.0.as_str()).collect();
    seen.sort_unstable();
    let sessions = report.count(Outcome::Delivered);
    assert_eq!(
        (seen.as_slice(), report.sessions, replies.len()),
        (targets, sessions, 1),
        "a waiter saw a half-resolved report: {report:?}, replies from {replies:?}"
    );
    assert!(
        ticket.is_done(),
        "wait_for returned but the ticket is not done"
    );
}

/// **Property (no lost wake-up, complete report).** The caller blocked in `wait_for(None)` is
/// woken once the ticket is sealed and every part resolved, whichever comes last, and sees the
/// whole report: three entries, two sessions, one reply. The remote part may resolve before `b`
/// is even expected, in between, or after the seal.
///
/// Threads: acknowledgements + routing + the caller (main). Exhaustive.
/// Catches `gatehouse_loom_mutant="ticket_notify_before_done"` (the last part resolving after
/// the seal wakes no one: deadlock) and `"ticket_done_ignores_seal"` (the caller wakes when the
/// remote part resolves before routing is over: half-resolved report).
#[test]
fn ticket_waiter_sees_complete_report() {
    run_model_exhaustive("ticket_waiter_sees_complete_report", || {
        let ticket = start_call();
        let acks = {
            let ticket = ticket.clone();
            thread::spawn(move || ack_a(&ticket))
        };
        let router = {
            let ticket = ticket.clone();
            thread::spawn(move || route_rest(&ticket))
        };
        check(&ticket, None, &["a", "b", "off"]);
        acks.join().unwrap();
        router.join().unwrap();
    });
}

/// **Property (every waiter is woken).** Two callers wait at once, one without and one with a
/// timeout (`PushTicket::wait` and `wait_timeout`; loom's condition variable never times out,
/// so this checks the timed path's loop, not its clock): both are woken and see the whole
/// report. (A one-part call, resolved by the bridge, so the model stays small.)
///
/// Threads: the bridge + two callers (one is main). Preemption bound `LOOM_MAX_PREEMPTIONS`
/// (exhaustive takes ~9000 interleavings, ~3 s; bound 3 ~1100, well under a second).
#[test]
fn ticket_wakes_every_waiter() {
    run_model("ticket_wakes_every_waiter", || {
        let ticket = start_call();
        let bridge = {
            let ticket = ticket.clone();
            thread::spawn(move || {
                ack_a(&ticket);
                ticket.seal();
            })
        };
        let timed = {
            let ticket = ticket.clone();
            thread::spawn(move || check(&ticket, Some(Duration::from_secs(3600)), &["a"]))
        };
        check(&ticket, None, &["a"]);
        timed.join().unwrap();
        bridge.join().unwrap();
    });
}
