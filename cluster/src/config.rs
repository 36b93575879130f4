//! [`ClusterConfig`]: how a node reaches Redis and the cluster's timing and size limits.

use crate::directory::ClaimMode;
use std::time::Duration;

/// Settings of one cluster node (a frontend or a backend). Every node of a cluster must use the
/// same [`prefix`](ClusterConfig::prefix); timings may differ per node.
///
/// ```
/// use gatehouse_cluster::ClusterConfig;
/// use std::time::Duration;
///
/// let config = ClusterConfig::new("redis://127.0.0.1:6379/0", "connector-1")
///     .lease_ttl(Duration::from_secs(10))
///     .deadline(Duration::from_secs(5));
/// assert_eq!(config.node_id, "connector-1");
/// ```
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The Redis URL, as the `redis` crate reads it: `redis://[user:password@]host:port/db`,
    /// `redis+unix:///path/to.sock`, `valkey://…`, and `rediss://…` with the crate's `tls`
    /// feature. The password is never logged.
    pub url: String,
    /// This node's id (pomelo's server id, e.g. `connector-1`): unique among live nodes,
    /// 1..=255 bytes, no `:`. Frontends are addressed by it.
    pub node_id: String,
    /// Key and channel prefix (default `gh`). Clusters sharing one Redis stay apart by prefix:
    /// keys, channels and a tag in every frame differ.
    pub prefix: String,
    /// A frontend's lease (default 10 s): its directory entries disappear within
    /// `lease_ttl + sweep` after it dies.
    pub lease_ttl: Duration,
    /// How often a frontend renews its lease (default 2 s).
    pub heartbeat: Duration,
    /// How often this node runs the reaper over expired frontends (default 2 s).
    pub sweep: Duration,
    /// How long a call waits for its acknowledgement before reporting `Unconfirmed` (default 5 s).
    pub deadline: Duration,
    /// First retransmission delay (default 50 ms), doubling up to `retransmit_max` (1 s).
    pub retransmit_min: Duration,
    /// Longest retransmission delay (default 1 s).
    pub retransmit_max: Duration,
    /// After this node reconnects to Redis, "offline" and "no listener" are retried for this long
    /// (default 2 s): the other nodes are re-registering and resyncing too.
    pub recovery_grace: Duration,
    /// A destination whose channel has had no subscriber for this long is reported
    /// `FrontendDown` (default 250 ms; a subscriber that lost its connection is back in ~10 ms).
    pub listener_grace: Duration,
    /// Calls queued to the bridge thread (default 65 536). A full queue refuses a call at once
    /// with [`ClusterError::Backpressure`](crate::ClusterError::Backpressure).
    pub queue: usize,
    /// Unacknowledged frames kept per destination (default 4 096); more is backpressure.
    pub max_unacked_frames: usize,
    /// Unacknowledged bytes kept per destination (default 64 MiB); more is backpressure.
    pub max_unacked_bytes: usize,
    /// Largest frame on the bus (default 1 MiB); a package that cannot fit is refused.
    pub max_frame: usize,
    /// Frames are filled up to this size when many calls go to one destination (default 64 KiB).
    pub batch_bytes: usize,
    /// How long to wait for Redis when connecting (default 2 s).
    pub connect_timeout: Duration,
    /// Cluster-wide single session (default off). `Kick`: a bind on this frontend kicks the
    /// uid's sessions on every other frontend (the latest login wins); `Refuse`: the new
    /// session is kicked if another frontend already holds the uid (the first login wins, as
    /// pinus's local `singleSession`). Decided by one atomic script on Redis, so two frontends
    /// binding the same uid at the same moment end with exactly one session. Set it on every
    /// frontend, together with the local [`SessionConfig::single_session`](gatehouse::SessionConfig).
    pub single_session: Option<ClaimMode>,
    /// The KICK reason sent to a session that lost a single-session claim (default
    /// `"logged in elsewhere"`).
    pub single_session_reason: String,
}

impl ClusterConfig {
    /// The defaults, with the two settings that have none.
    pub fn new(url: impl Into<String>, node_id: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node_id: node_id.into(),
            prefix: "gh".into(),
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_secs(2),
            sweep: Duration::from_secs(2),
            deadline: Duration::from_secs(5),
            retransmit_min: Duration::from_millis(50),
            retransmit_max: Duration::from_secs(1),
            recovery_grace: Duration::from_secs(2),
            listener_grace: Duration::from_millis(250),
            queue: 65_536,
            max_unacked_frames: 4_096,
            max_unacked_bytes: 64 << 20,
            max_frame: 1 << 20,
            batch_bytes: 64 << 10,
            connect_timeout: Duration::from_secs(2),
            single_session: None,
            single_session_reason: "logged in elsewhere".into(),
        }
    }

    /// Sets [`single_session`](ClusterConfig::single_session).
    pub fn single_session(mut self, mode: Option<ClaimMode>) -> Self {
        self.single_session = mode;
        self
    }

    /// Sets [`prefix`](ClusterConfig::prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`lease_ttl`](ClusterConfig::lease_ttl).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Sets [`heartbeat`](ClusterConfig::heartbeat).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Sets [`sweep`](ClusterConfig::sweep).
    pub fn sweep(mut self, every: Duration) -> Self {
        self.sweep = every;
        self
    }

    /// Sets [`deadline`](ClusterConfig::deadline).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets [`recovery_grace`](ClusterConfig::recovery_grace).
    pub fn recovery_grace(mut self, grace: Duration) -> Self {
        self.recovery_grace = grace;
        self
    }

    /// Sets [`queue`](ClusterConfig::queue).
    pub fn queue(mut self, calls: usize) -> Self {
        self.queue = calls;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let id = self.node_id.as_bytes();
        if id.is_empty() || id.len() > 255 || id.contains(&b':') {
            return Err(format!(
                "node_id must be 1..=255 bytes without ':' (got {:?})",
                self.node_id
            ));
        }
        if self.prefix.is_empty() || self.prefix.len() > 64 {
            return Err("prefix must be 1..=64 bytes".into());
        }
        if self.heartbeat.is_zero() || self.lease_ttl < self.heartbeat * 2 {
            return Err(
                "lease_ttl must be at least twice the heartbeat (and heartbeat > 0)".into(),
            );
        }
        if self.sweep.is_zero() || self.deadline.is_zero() || self.retransmit_min.is_zero() {
            return Err("sweep, deadline and retransmit_min must be positive".into());
        }
        if self.retransmit_max < self.retransmit_min {
            return Err("retransmit_max must be >= retransmit_min".into());
        }
        if self.queue == 0 || self.max_unacked_frames == 0 || self.max_unacked_bytes == 0 {
            return Err("queue and the unacked limits must be positive".into());
        }
        if self.max_frame < 1024 || self.batch_bytes == 0 {
            return Err("max_frame must be at least 1024 and batch_bytes positive".into());
        }
        Ok(())
    }
}
