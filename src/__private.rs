//! Internals for gatehouse's own test crates (`loom-tests/`, `fuzz/`, `tests/`).
//!
//! **Not part of the public API and outside semver**: anything here may change or vanish in
//! any release.

/// Hooks for the loom models in `loom-tests/` (built only with `--cfg gatehouse_loom`, see
/// `bin/loom.sh`): they reach the inbox below the [`SessionService`](crate::SessionService)
/// façade, so the wake-up protocol can be checked on its own.
#[cfg(gatehouse_loom)]
pub mod loom {
    use crate::events::CloseReason;
    use crate::frame::Frame;
    use crate::id::Sid;
    use crate::inbox::Inbox;

    /// A standalone inbox of `capacity` commands, as one shard has.
    pub fn inbox(capacity: usize) -> Inbox {
        Inbox::new(capacity)
    }

    /// What `SessionService::send_message` does after its registry check.
    pub fn push_send(inbox: &Inbox, sid: Sid, frame: Frame) -> Result<(), Frame> {
        inbox.push_send(sid, frame)
    }

    /// What `SessionService::close` does after the `closed` event.
    pub fn push_close(inbox: &Inbox, sid: Sid, reason: CloseReason) {
        inbox.push_close(sid, reason)
    }

    /// A sid with the given fields (the models need distinct sids without a service).
    pub fn sid(seq: u64, shard: usize, slot: usize) -> Sid {
        Sid::new(seq, shard, slot)
    }

    /// Which `gatehouse_loom_mutant` this build carries, if any (so a model run can say what
    /// it ran against).
    pub const MUTANT: Option<&str> = mutant();

    const fn mutant() -> Option<&'static str> {
        macro_rules! pick {
            ($($name:literal),*) => {
                $(if cfg!(gatehouse_loom_mutant = $name) { return Some($name); })*
            };
        }
        pick!(
            "rearm_after_drain",
            "send_by_uid_push_unlocked",
            "kick_ignores_rebind",
            "events_fired_unlocked",
            "drain_overflow_last",
            "skip_generation_check",
            "conn_table_skip_generation_check",
            "split_single_session_check",
            "split_index_remove",
            "unindex_whole_uid",
            "unindex_before_detach",
            "broadcast_push_unlocked",
            "broadcast_skip_notify",
            "handoff_check_outside_lock"
        );
        None
    }
}

/// The connector's accept hand-off queue (`src/handoff.rs`), for its loom model.
pub use crate::handoff::Handoff;

// ws
/// The WebSocket codec (sniffing, upgrade, frames) and its fuzz entry points.
#[doc(hidden)]
pub use crate::ws::fuzzing as ws;

// fuzz
/// The fuzz entry points, one per target in `fuzz/fuzz_targets/` and of the same name. Each
/// takes arbitrary bytes and panics on a violated property; `tests/fuzz_corpus.rs` replays the
/// committed corpus through the same functions on stable.
#[cfg(not(gatehouse_loom))]
pub mod fuzz {
    pub use crate::fuzzing::fuzz_service_ops as service_ops;
    pub use crate::protocol::fuzzing::{
        fuzz_handshake as handshake, fuzz_message as message, fuzz_package_stream as package_stream,
    };
    pub use crate::server::fuzzing::fuzz_connection as connection;
    pub use crate::ws::fuzzing::{
        fuzz_frames as ws_frames, fuzz_frames_roundtrip as ws_roundtrip,
        fuzz_sniff_and_handshake as ws_upgrade,
    };

    /// A fuzz entry point.
    pub type Target = fn(&[u8]);

    /// Every target by name, as `fuzz/Cargo.toml` lists them.
    pub const TARGETS: &[(&str, Target)] = &[
        ("package_stream", package_stream),
        ("message", message),
        ("handshake", handshake),
        ("ws_frames", ws_frames),
        ("ws_roundtrip", ws_roundtrip),
        ("ws_upgrade", ws_upgrade),
        ("connection", connection),
        ("service_ops", service_ops),
    ];
}
