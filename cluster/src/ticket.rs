//! [`PushTicket`]: the completion slot a call's caller waits on while the bridge thread resolves
//! its parts.
//!
//! A call fans out into *parts* (one per destination frontend, plus the targets resolved
//! locally such as offline uids). The bridge thread [`expect`](Ticket::expect)s parts as it routes,
//! [`seal`](Ticket::seal)s the ticket when routing is done, and [`resolve`](Ticket::resolve)s
//! each part once — from an acknowledgement, a deadline, or a failure. The ticket is complete when
//! it is sealed and no part is outstanding; the caller is woken exactly then. The model in
//! `loom-tests/tests/cluster_ticket.rs` checks that a waiter never misses the wake-up and never
//! sees a half-resolved report, whatever the interleaving of parts and seal.

use crate::report::{Outcome, PushReport};
use crate::sync::{lock, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A reply a frontend sent for one part.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawReply {
    pub(crate) frontend: String,
    pub(crate) epoch: u64,
    pub(crate) status: u8,
    pub(crate) body: Vec<u8>,
}

#[derive(Default)]
struct State {
    report: PushReport,
    replies: Vec<RawReply>,
    outstanding: usize,
    sealed: bool,
}

impl State {
    fn done(&self) -> bool {
        // Seeded bug for the loom model: complete as soon as no part is outstanding, even if
        // routing may still expect more.
        let sealed = self.sealed || cfg!(gatehouse_loom_mutant = "ticket_done_ignores_seal");
        sealed && self.outstanding == 0
    }
}

/// Shared between the caller and the bridge thread.
#[derive(Default)]
pub(crate) struct Ticket {
    state: Mutex<State>,
    ready: Condvar,
}

impl Ticket {
    pub(crate) fn new() -> Arc<Ticket> {
        Arc::new(Ticket::default())
    }

    /// One more part will be resolved later.
    pub(crate) fn expect(&self, parts: usize) {
        lock(&self.state).outstanding += parts;
    }

    /// Records entries that need no frontend (offline uids, refusals) at once.
    pub(crate) fn record(&self, entries: impl IntoIterator<Item = (String, String, Outcome)>) {
        lock(&self.state).report.entries.extend(entries);
    }

    /// Resolves one expected part with its entries and, for remote calls, the frontend's reply.
    pub(crate) fn resolve(
        &self,
        entries: impl IntoIterator<Item = (String, String, Outcome)>,
        sessions: usize,
        reply: Option<RawReply>,
    ) {
        let mut state = lock(&self.state);
        state.report.entries.extend(entries);
        state.report.sessions += sessions;
        state.replies.extend(reply);
        debug_assert!(state.outstanding > 0, "a part resolved twice");
        // Seeded bug for the loom model: the done check before this part counts as resolved,
        // so the last part resolving after the seal wakes no one.
        #[cfg(gatehouse_loom_mutant = "ticket_notify_before_done")]
        let done = state.done();
        state.outstanding = state.outstanding.saturating_sub(1);
        #[cfg(not(gatehouse_loom_mutant = "ticket_notify_before_done"))]
        let done = state.done();
        if done {
            drop(state);
            self.ready.notify_all();
        }
    }

    /// Routing is over: no more parts will be expected.
    pub(crate) fn seal(&self) {
        let mut state = lock(&self.state);
        state.sealed = true;
        if state.done() {
            drop(state);
            self.ready.notify_all();
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        lock(&self.state).done()
    }

    /// Blocks until complete or `timeout` passed; returns the report and replies if complete.
    pub(crate) fn wait_for(
        &self,
        timeout: Option<Duration>,
    ) -> Option<(PushReport, Vec<RawReply>)> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.state);
        while !state.done() {
            state = match deadline {
                None => self.ready.wait(state),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    self.ready.wait_timeout(state, deadline - now).0
                }
            };
        }
        Some((state.report.clone(), state.replies.clone()))
    }
}

/// The pending result of a push or broadcast. Every ticket resolves: at the latest when the
/// call's deadline passes ([`ClusterConfig::deadline`](crate::ClusterConfig::deadline)), with
/// `Unconfirmed` for whatever was not acknowledged.
///
/// Thread-safe; waiting blocks only the caller.
pub struct PushTicket(pub(crate) Arc<Ticket>);

impl PushTicket {
    /// Blocks until every target has an outcome.
    pub fn wait(self) -> PushReport {
        self.0
            .wait_for(None)
            .map(|(report, _)| report)
            .unwrap_or_default()
    }

    /// Blocks at most `timeout`; `None` if the call is still in flight.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<PushReport> {
        self.0.wait_for(Some(timeout)).map(|(report, _)| report)
    }

    /// The report if the call is complete, without blocking.
    pub fn try_get(&self) -> Option<PushReport> {
        if self.0.is_done() {
            self.wait_timeout(Duration::ZERO)
        } else {
            None
        }
    }

    /// True once every target has an outcome.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }
}
