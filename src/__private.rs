//! Internals for gatehouse's own test crates (`loom-tests/`, `fuzz/`, `tests/`).
//!
//! **Not part of the public API and outside semver**: anything here may change or vanish in
//! any release. Compiled only with the `internals` feature, which `fuzz/` and `loom-tests/`
//! enable in their manifests and this package's own tests, benches and examples get through
//! a dev-dependency on the crate itself; a user's build never contains it.

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

    /// A sid with the given fields (the models need distinct sids without a service);
    /// `generation` is 1 or more.
    pub fn sid(generation: u32, shard: usize, slot: usize) -> Sid {
        Sid::new(generation, shard, slot)
    }

    /// Which `gatehouse_loom_mutant` this build carries, if any (so a model run can say what
    /// it ran against).
    pub const MUTANT: Option<&str> = mutant();

    /// The mutant bin/loom.sh asked for. Reading it makes rustc list the variable in this
    /// crate's dep-info, so cargo rebuilds this crate (and only it and its dependents) when
    /// the script switches mutants: the cfg itself comes from bin/loom-rustc.sh, which is
    /// invisible to cargo's fingerprint. [`MUTANT`] is what the build really carries.
    pub const MUTANT_REQUESTED: Option<&str> = option_env!("GATEHOUSE_LOOM_MUTANT");

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

/// Probes into a service's session registry and uid index, for `tests/` (the registry's
/// generations and trimming, the uid index's shrinking, the lock discipline of `Wake`).
#[cfg(not(gatehouse_loom))]
pub mod registry {
    use crate::SessionService;

    /// The largest generation a slot hands out; a slot retires when that session closes.
    pub const MAX_GENERATION: u32 = crate::id::MAX_GENERATION;

    /// Makes shard `shard`'s vacant `slot` look as if its last session had had `generation`,
    /// so the next session created in it gets `generation + 1` (a test reaches the end of a
    /// slot's generations in microseconds instead of two million sessions). Panics if the
    /// shard does not exist, the slot is live or retired, or `generation` is
    /// [`MAX_GENERATION`] or more.
    pub fn set_slot_generation(
        service: &SessionService,
        shard: usize,
        slot: usize,
        generation: u32,
    ) {
        let shard = service.shard_at(shard).expect("no such shard");
        shard.registry.write().set_generation(slot, generation);
    }

    /// Whether shard `shard`'s registry lock is held right now, shared or exclusive, by any
    /// thread (for asserting that a callback runs with no lock held).
    pub fn registry_lock_held(service: &SessionService, shard: usize) -> bool {
        service
            .shard_at(shard)
            .expect("no such shard")
            .registry
            .is_locked()
    }

    /// The bookkeeping of one shard's registry.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct RegistryStats {
        /// Live sessions.
        pub len: usize,
        /// One past the highest live slot: where walks stop.
        pub high_water: usize,
        /// Slots the entry storage has room for.
        pub capacity: usize,
        /// Slots with a kept generation (every slot ever used, rounded up to 64).
        pub generations: usize,
        /// Retired slots.
        pub retired: usize,
    }

    /// Shard `shard`'s [`RegistryStats`].
    pub fn registry_stats(service: &SessionService, shard: usize) -> RegistryStats {
        let (len, high_water, capacity, generations, retired) = service
            .shard_at(shard)
            .expect("no such shard")
            .registry
            .read()
            .stats();
        RegistryStats {
            len,
            high_water,
            capacity,
            generations,
            retired,
        }
    }

    /// The summed capacity of the uid index's hash tables (entries they hold without growing).
    pub fn uid_index_capacity(service: &SessionService) -> usize {
        service.uid_index().capacity()
    }
}

/// The deterministic xorshift64 generator of the tests, fuzz harnesses and benches
/// (`src/xorshift.rs`): seeded streams for sweeps, chunking and shuffles; not cryptographic.
pub use crate::xorshift::XorShift;

/// The connector's accept hand-off queue (`src/handoff.rs`), for its loom model.
pub use crate::handoff::Handoff;

// ws
/// The WebSocket codec (sniffing, upgrade, frames) and its fuzz entry points.
#[doc(hidden)]
pub use crate::ws::fuzzing as ws;

// tls
/// The TLS layer, sans-IO (feature `tls`): the first-byte front and one connection's rustls
/// session, for the fuzz target, benchmarks and allocation tests.
#[cfg(feature = "tls")]
#[doc(hidden)]
pub mod tls {
    pub use crate::server::tls::fuzzing::{test_only_server_config, TEST_ONLY_CERT_PEM};
    pub use crate::server::tls::{
        front, Front, TlsRead, TlsSession, PLAINTEXT_CHUNK, TLS_BUFFER_LIMIT, TLS_HANDSHAKE_RECORD,
    };
}

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
    pub use crate::protocol::protobuf::fuzzing::fuzz_protobuf_decode as protobuf_decode;
    pub use crate::server::fuzzing::fuzz_connection as connection;
    #[cfg(feature = "tls")]
    pub use crate::server::tls::fuzzing::fuzz_tls_front as tls_front;
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
        ("protobuf_decode", protobuf_decode),
        #[cfg(feature = "tls")]
        ("tls_front", tls_front),
    ];
}
