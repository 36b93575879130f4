//! Hooks for the loom models in `loom-tests/` (compiled only with `--cfg gatehouse_loom`, see
//! `bin/loom.sh`): thin handles on the two structures this crate shares between threads besides
//! channels, so the models drive the real code. **Not public API**: outside semver, may vanish.

use crate::report::{Outcome, PushReport};
use crate::sync::Arc;
use gatehouse::Sid;

/// A handle on a call's completion slot (the crate's `Ticket`, in loom's `Arc`). Cloning shares
/// the slot, as the caller and the bridge threads do.
#[derive(Clone)]
pub struct Ticket(Arc<crate::ticket::Ticket>);

impl Ticket {
    /// An empty ticket: no part expected, not sealed.
    pub fn new() -> Ticket {
        Ticket(crate::ticket::Ticket::new())
    }

    /// `Ticket::expect`: `parts` more parts will be resolved.
    pub fn expect(&self, parts: usize) {
        self.0.expect(parts)
    }

    /// `Ticket::record`: entries that need no frontend.
    pub fn record(&self, entries: Vec<(String, String, Outcome)>) {
        self.0.record(entries)
    }

    /// `Ticket::resolve`: one expected part, with a reply from frontend `reply_from` if given.
    pub fn resolve(
        &self,
        entries: Vec<(String, String, Outcome)>,
        sessions: usize,
        reply_from: Option<&str>,
    ) {
        let reply = reply_from.map(|frontend| crate::ticket::RawReply {
            frontend: frontend.to_string(),
            ..Default::default()
        });
        self.0.resolve(entries, sessions, reply)
    }

    /// `Ticket::seal`: routing is over.
    pub fn seal(&self) {
        self.0.seal()
    }

    /// `Ticket::is_done`.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// `Ticket::wait_for`: the report and the frontends that replied, once complete (`None` if
    /// `timeout` passed first; loom's condition variable never times out).
    pub fn wait_for(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> Option<(PushReport, Vec<String>)> {
        self.0
            .wait_for(timeout)
            .map(|(report, replies)| (report, replies.into_iter().map(|r| r.frontend).collect()))
    }
}

impl Default for Ticket {
    fn default() -> Ticket {
        Ticket::new()
    }
}

/// The crate's single-session `Claims` (unlocked: the model puts it under a loom mutex, as the
/// frontend puts it under its own).
#[derive(Default)]
pub struct Claims(crate::frontend::Claims);

impl Claims {
    /// `Claims::granted`: our claim for `sid` returned `gen`; true if the session keeps `uid`.
    pub fn granted(&mut self, sid: Sid, uid: &str, gen: u64) -> bool {
        self.0.granted(sid, uid, gen)
    }

    /// `Claims::fence`: another frontend's claim `below` took `uid`; the sessions of `bound`
    /// to kick.
    pub fn fence(&mut self, uid: &str, below: u64, bound: &[Sid]) -> Vec<Sid> {
        self.0.fence(uid, below, bound)
    }
}

/// Which of this crate's `gatehouse_loom_mutant`s this build carries, if any (so a model run
/// can say what it ran against).
pub const MUTANT: Option<&str> = mutant();

/// The mutant bin/loom.sh asked for: read so that cargo rebuilds this crate when it changes
/// (see `gatehouse::__private::loom::MUTANT_REQUESTED`).
pub const MUTANT_REQUESTED: Option<&str> = option_env!("GATEHOUSE_LOOM_MUTANT");

const fn mutant() -> Option<&'static str> {
    macro_rules! pick {
        ($($name:literal),*) => {
            $(if cfg!(gatehouse_loom_mutant = $name) { return Some($name); })*
        };
    }
    pick!(
        "ticket_notify_before_done",
        "ticket_done_ignores_seal",
        "claims_fence_ignores_gen",
        "claims_granted_ignores_fence"
    );
    None
}
