//! [`SessionConfig`]: shard counts, capacities and limits of a [`SessionService`](crate::SessionService).

use crate::id::{MAX_SESSIONS_PER_SHARD, MAX_SHARDS};
use std::fmt;
use std::sync::Arc;

/// Settings of a [`SessionService`](crate::SessionService), built with chained setters.
///
/// Every limit has a default meant for a production frontend; [`SessionService::new`]
/// validates the whole set and reports the first problem as a [`ConfigError`].
///
/// | setting | default | meaning |
/// | --- | --- | --- |
/// | `frontend_id` | `"connector-server-1"` | this frontend's server id (pomelo `frontendId`) |
/// | `single_session` | `false` | refuse a second session for a uid (pomelo `singleSession`) |
/// | `shards` | available cores | session shards; one per I/O thread |
/// | `index_shards` | 64 | uid index shards (power of two) |
/// | `max_sessions_per_shard` | 1 048 576 | sessions one shard holds before `create` fails |
/// | `initial_sessions_per_shard` | 1 024 | registry slots reserved up front, per shard (and kept when it shrinks after a peak) |
/// | `inbox_capacity` | 65 536 | outbound commands queued per shard before sends are refused |
/// | `max_uid_len` | 256 | longest uid (bytes) `bind` accepts |
///
/// [`SessionService::new`]: crate::SessionService::new
///
/// # Examples
///
/// ```
/// use gatehouse::{SessionConfig, SessionService};
///
/// let config = SessionConfig::default().single_session(true).shards(2);
/// let service = SessionService::new(config).unwrap();
/// assert_eq!(service.config().shard_count(), 2);
/// ```
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) frontend_id: Arc<str>,
    pub(crate) single_session: bool,
    pub(crate) shards: usize,
    pub(crate) index_shards: usize,
    pub(crate) max_sessions_per_shard: usize,
    pub(crate) initial_sessions_per_shard: usize,
    pub(crate) inbox_capacity: usize,
    pub(crate) max_uid_len: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            frontend_id: Arc::from("connector-server-1"),
            single_session: false,
            shards: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_SHARDS),
            index_shards: 64,
            max_sessions_per_shard: 1 << 20,
            initial_sessions_per_shard: 1024,
            inbox_capacity: 1 << 16,
            max_uid_len: 256,
        }
    }
}

impl SessionConfig {
    /// This frontend's server id, copied into every session and snapshot.
    pub fn frontend_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.frontend_id = id.into();
        self
    }

    /// With `true`, a uid can be bound to one session at a time: a second `bind` fails with
    /// [`BindError::SingleSession`](crate::BindError::SingleSession) and the first session is
    /// kept (pomelo's behaviour; kick the old session first to replace it).
    pub fn single_session(mut self, on: bool) -> Self {
        self.single_session = on;
        self
    }

    /// Number of session shards (1..=256). Each shard has its own registry lock and outbound
    /// inbox, and is drained by one I/O thread.
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// Number of uid index shards; a power of two.
    pub fn index_shards(mut self, n: usize) -> Self {
        self.index_shards = n;
        self
    }

    /// Sessions one shard may hold; `create` fails with
    /// [`CreateError::ShardFull`](crate::CreateError::ShardFull) beyond it.
    pub fn max_sessions_per_shard(mut self, n: usize) -> Self {
        self.max_sessions_per_shard = n;
        self
    }

    /// Registry slots reserved per shard at start, so early sessions do not reallocate; the
    /// storage never shrinks below this after a peak.
    pub fn initial_sessions_per_shard(mut self, n: usize) -> Self {
        self.initial_sessions_per_shard = n;
        self
    }

    /// Outbound commands one shard's inbox holds; a send that finds it full gets its frame
    /// back as an error.
    pub fn inbox_capacity(mut self, n: usize) -> Self {
        self.inbox_capacity = n;
        self
    }

    /// Longest uid, in bytes, that `bind` accepts.
    pub fn max_uid_len(mut self, n: usize) -> Self {
        self.max_uid_len = n;
        self
    }

    /// The configured frontend id.
    pub fn frontend(&self) -> &str {
        &self.frontend_id
    }

    /// Whether single-session mode is on.
    pub fn is_single_session(&self) -> bool {
        self.single_session
    }

    /// The number of session shards.
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let fail = |what: &'static str| {
            Err(ConfigError {
                what,
                config: format!("{self:?}"),
            })
        };
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return fail("shards must be in 1..=256");
        }
        if !self.index_shards.is_power_of_two() || self.index_shards > 1 << 16 {
            return fail("index_shards must be a power of two, at most 65536");
        }
        if self.max_sessions_per_shard == 0 || self.max_sessions_per_shard > MAX_SESSIONS_PER_SHARD
        {
            return fail("max_sessions_per_shard must be in 1..=16777216");
        }
        if self.initial_sessions_per_shard > self.max_sessions_per_shard {
            return fail("initial_sessions_per_shard must not exceed max_sessions_per_shard");
        }
        if self.inbox_capacity == 0 {
            return fail("inbox_capacity must be at least 1");
        }
        if self.max_uid_len == 0 {
            return fail("max_uid_len must be at least 1");
        }
        Ok(())
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("frontend_id", &self.frontend_id)
            .field("single_session", &self.single_session)
            .field("shards", &self.shards)
            .field("index_shards", &self.index_shards)
            .field("max_sessions_per_shard", &self.max_sessions_per_shard)
            .field(
                "initial_sessions_per_shard",
                &self.initial_sessions_per_shard,
            )
            .field("inbox_capacity", &self.inbox_capacity)
            .field("max_uid_len", &self.max_uid_len)
            .finish()
    }
}

/// A [`SessionConfig`] that [`SessionService::new`](crate::SessionService::new) refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    what: &'static str,
    config: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid session config: {} (got {})",
            self.what, self.config
        )
    }
}

impl std::error::Error for ConfigError {}
