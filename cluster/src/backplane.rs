//! [`Backplane`]: the seam between the cluster's logic and the engine that carries it.
//!
//! Everything above this seam — frames, sequence numbers, acknowledgements, retransmission,
//! dedup, tickets, single-session fences, the route cache — is engine-independent. Below it, an
//! engine provides three things: a command link (publish frames to a node's channel and learn
//! how many subscribers took them; the directory operations, each atomic), a subscription to
//! one channel, and channel names. [`RedisBackplane`](crate::redis_backplane::RedisBackplane)
//! is the implementation shipped; a NATS one (JetStream KV for the directory, core subjects for
//! the bus) would implement the same traits, and the [`Cluster`](crate::Cluster) API would not
//! change.
//!
//! Contract for implementations: calls block (they run on the bridge threads, never on a
//! server's I/O thread); every error means "this link is no longer usable" — the node drops it,
//! reconnects with [`Backplane::connect`], calls [`Link::prepare`], re-registers and resyncs.
//! Nothing here needs to be reliable: the layer above repairs lost frames.

use crate::directory::{Claim, ClaimMode, Heartbeat, Holder};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// A failed engine call. The link that returned it is dropped and re-made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusError {
    /// What failed, for logs (never carries a password).
    pub message: String,
    /// Authentication or permission refused: a configuration error, not an outage.
    pub auth: bool,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.auth {
            write!(f, "authentication failed ({})", self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for BusError {}

/// An engine the cluster runs on. Shared by the node's threads; each makes its own links.
pub trait Backplane: Send + Sync + 'static {
    /// A new command link (the bridge thread's, or the acknowledgement publisher's).
    ///
    /// # Errors
    ///
    /// The engine cannot be reached or refused the credentials.
    fn connect(&self) -> Result<Box<dyn Link>, BusError>;

    /// A new subscription to `channel` (connected; it subscribes when it runs).
    ///
    /// # Errors
    ///
    /// As [`connect`](Backplane::connect).
    fn subscribe(&self, channel: &str) -> Result<Box<dyn Subscription>, BusError>;

    /// The channel of node `node`.
    fn channel(&self, node: &str) -> String;
}

/// A command link: publishing and the directory. Every directory call is atomic on the engine.
pub trait Link: Send {
    /// Readies a fresh link (e.g. loads scripts; an engine restart forgets them).
    ///
    /// # Errors
    ///
    /// The link failed.
    fn prepare(&mut self) -> Result<(), BusError>;

    /// Checks the link is alive.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn ping(&mut self) -> Result<(), BusError>;

    /// Publishes each `(channel, frame)` in order; returns how many subscribers took each.
    ///
    /// # Errors
    ///
    /// The link failed: any of them may or may not have been published.
    fn publish(&mut self, frames: &[(&str, &[u8])]) -> Result<Vec<u64>, BusError>;

    /// Takes or renews the lease of frontend `fid` for incarnation `epoch`; entries of another
    /// incarnation are removed (returns how many).
    ///
    /// # Errors
    ///
    /// The link failed.
    fn register(&mut self, fid: &str, epoch: u64, ttl: Duration) -> Result<usize, BusError>;

    /// Extends the lease only if it is still `epoch`'s.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn heartbeat(&mut self, fid: &str, epoch: u64, ttl: Duration) -> Result<Heartbeat, BusError>;

    /// The epoch holding `fid`'s lease, if any.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn lease(&mut self, fid: &str) -> Result<Option<u64>, BusError>;

    /// Drops `fid`'s lease if `epoch` holds it, and its entries at once; returns how many.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn deregister(&mut self, fid: &str, epoch: u64) -> Result<usize, BusError>;

    /// Writes directory entries of `fid`/`epoch`: `bind` uids are held by it, `unbind` uids no
    /// longer are (removed only if the entry is this epoch's). Idempotent.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn write_entries(
        &mut self,
        fid: &str,
        epoch: u64,
        bind: &[&str],
        unbind: &[&str],
    ) -> Result<(), BusError>;

    /// The uids the directory lists for `fid`.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn listed_uids(&mut self, fid: &str) -> Result<Vec<String>, BusError>;

    /// For each uid, its live holders (entries of dead leases are ignored, and may be deleted).
    ///
    /// # Errors
    ///
    /// The link failed.
    fn route(&mut self, uids: &[&str]) -> Result<Vec<Vec<Holder>>, BusError>;

    /// Every frontend with a live lease.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn live_frontends(&mut self) -> Result<Vec<Holder>, BusError>;

    /// Removes the entries of frontends whose lease expired; returns how many.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn reap(&mut self) -> Result<usize, BusError>;

    /// Cluster-wide single session: claims `uid` for `fid`/`epoch` atomically.
    ///
    /// # Errors
    ///
    /// The link failed.
    fn claim(
        &mut self,
        uid: &str,
        fid: &str,
        epoch: u64,
        mode: ClaimMode,
    ) -> Result<Claim, BusError>;
}

/// One subscription.
pub trait Subscription: Send {
    /// Subscribes, calls `subscribed` once the subscription is in place (nothing published to
    /// the channel afterwards is missed while it lives), then hands every payload to `deliver`
    /// until `stop` is set (checked at least every 100 ms) or the subscription fails.
    ///
    /// # Errors
    ///
    /// The subscription failed; the node subscribes again.
    fn run(
        &mut self,
        stop: &AtomicBool,
        subscribed: &mut dyn FnMut(),
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BusError>;
}
