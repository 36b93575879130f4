//! [`RedisBackplane`]: the [`Backplane`] on Redis (or Valkey) through the `redis` crate's sync
//! API — the directory as Lua scripts ([`Directory`]), the bus as `PUBLISH` / `SUBSCRIBE` on
//! one channel per node.

use crate::backplane::{Backplane, BusError, Link, Subscription};
use crate::directory::{redact_url, Claim, ClaimMode, Directory, Heartbeat, Holder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a blocking read on the subscription waits before looking at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Bound on any single command's reply: a Redis that stops answering is a failed link.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Redis, reached through one URL for commands and optionally another for the subscription.
pub struct RedisBackplane {
    client: redis::Client,
    sub_client: redis::Client,
    url: String,
    directory: Directory,
    connect_timeout: Duration,
}

impl RedisBackplane {
    /// A backplane on `url` (`redis://`, `redis+unix://`, `valkey://`, `rediss://` with the
    /// `tls` feature), its subscription on `subscriber_url` if given, keys under `prefix`.
    ///
    /// # Errors
    ///
    /// The URL does not parse (the message hides any password).
    pub fn new(
        url: &str,
        subscriber_url: Option<&str>,
        prefix: &str,
        connect_timeout: Duration,
    ) -> Result<RedisBackplane, BusError> {
        let open = |u: &str| {
            redis::Client::open(u).map_err(|e| BusError {
                message: format!("{}: {e}", redact_url(u)),
                auth: false,
            })
        };
        let client = open(url)?;
        let sub_client = match subscriber_url {
            Some(u) => open(u)?,
            None => client.clone(),
        };
        Ok(RedisBackplane {
            client,
            sub_client,
            url: url.to_string(),
            directory: Directory::new(prefix),
            connect_timeout,
        })
    }

    fn open(&self, client: &redis::Client) -> Result<redis::Connection, BusError> {
        let con = client
            .get_connection_with_timeout(self.connect_timeout)
            .map_err(|e| self.error(e))?;
        con.set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| con.set_write_timeout(Some(COMMAND_TIMEOUT)))
            .map_err(|e| self.error(e))?;
        Ok(con)
    }

    fn error(&self, e: redis::RedisError) -> BusError {
        bus_error(&self.url, e)
    }
}

/// A redis error as a [`BusError`], telling authentication failures apart.
fn bus_error(url: &str, e: redis::RedisError) -> BusError {
    let text = e.to_string();
    let lower = text.to_lowercase();
    let auth = matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm)
    ) || lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("authentication");
    BusError {
        message: format!("{}: {text}", redact_url(url)),
        auth,
    }
}

impl Backplane for RedisBackplane {
    fn connect(&self) -> Result<Box<dyn Link>, BusError> {
        let mut con = self.open(&self.client)?;
        // A missing or wrong password shows here, not on the first real command.
        redis::cmd("PING")
            .query::<String>(&mut con)
            .map_err(|e| self.error(e))?;
        Ok(Box::new(RedisLink {
            con,
            url: self.url.clone(),
            directory: self.directory.clone(),
        }))
    }

    fn subscribe(&self, channel: &str) -> Result<Box<dyn Subscription>, BusError> {
        let con = self.open(&self.sub_client)?;
        Ok(Box::new(RedisSubscription {
            con,
            channel: channel.to_string(),
            url: self.url.clone(),
        }))
    }

    fn channel(&self, node: &str) -> String {
        self.directory.channel(node)
    }
}

struct RedisLink {
    con: redis::Connection,
    url: String,
    directory: Directory,
}

impl RedisLink {
    fn err(&self, e: redis::RedisError) -> BusError {
        bus_error(&self.url, e)
    }
}

impl Link for RedisLink {
    fn prepare(&mut self) -> Result<(), BusError> {
        self.directory.load(&mut self.con).map_err(|e| self.err(e))
    }

    fn ping(&mut self) -> Result<(), BusError> {
        redis::cmd("PING")
            .query::<String>(&mut self.con)
            .map(drop)
            .map_err(|e| self.err(e))
    }

    fn publish(&mut self, frames: &[(&str, &[u8])]) -> Result<Vec<u64>, BusError> {
        let mut pipe = redis::pipe();
        for (channel, bytes) in frames {
            pipe.cmd("PUBLISH").arg(*channel).arg(*bytes);
        }
        pipe.query(&mut self.con).map_err(|e| self.err(e))
    }

    fn register(&mut self, fid: &str, epoch: u64, ttl: Duration) -> Result<usize, BusError> {
        self.directory
            .register(&mut self.con, fid, epoch, ttl)
            .map_err(|e| self.err(e))
    }

    fn heartbeat(&mut self, fid: &str, epoch: u64, ttl: Duration) -> Result<Heartbeat, BusError> {
        self.directory
            .heartbeat(&mut self.con, fid, epoch, ttl)
            .map_err(|e| self.err(e))
    }

    fn lease(&mut self, fid: &str) -> Result<Option<u64>, BusError> {
        self.directory
            .lease(&mut self.con, fid)
            .map_err(|e| self.err(e))
    }

    fn deregister(&mut self, fid: &str, epoch: u64) -> Result<usize, BusError> {
        self.directory
            .deregister(&mut self.con, fid, epoch)
            .map_err(|e| self.err(e))
    }

    fn write_entries(
        &mut self,
        fid: &str,
        epoch: u64,
        bind: &[&str],
        unbind: &[&str],
    ) -> Result<(), BusError> {
        let mut pipe = redis::pipe();
        for uid in bind {
            self.directory.pipe_bind(&mut pipe, uid, fid, epoch);
        }
        for uid in unbind {
            self.directory.pipe_unbind(&mut pipe, uid, fid, epoch);
        }
        pipe.query::<()>(&mut self.con).map_err(|e| self.err(e))
    }

    fn listed_uids(&mut self, fid: &str) -> Result<Vec<String>, BusError> {
        self.directory
            .listed_uids(&mut self.con, fid)
            .map_err(|e| self.err(e))
    }

    fn route(&mut self, uids: &[&str]) -> Result<Vec<Vec<Holder>>, BusError> {
        self.directory
            .route(&mut self.con, uids)
            .map_err(|e| self.err(e))
    }

    fn live_frontends(&mut self) -> Result<Vec<Holder>, BusError> {
        self.directory
            .live_frontends(&mut self.con)
            .map_err(|e| self.err(e))
    }

    fn reap(&mut self) -> Result<usize, BusError> {
        self.directory.reap(&mut self.con).map_err(|e| self.err(e))
    }

    fn claim(
        &mut self,
        uid: &str,
        fid: &str,
        epoch: u64,
        mode: ClaimMode,
    ) -> Result<Claim, BusError> {
        self.directory
            .claim(&mut self.con, uid, fid, epoch, mode)
            .map_err(|e| self.err(e))
    }
}

struct RedisSubscription {
    con: redis::Connection,
    channel: String,
    url: String,
}

impl Subscription for RedisSubscription {
    fn run(
        &mut self,
        stop: &AtomicBool,
        subscribed: &mut dyn FnMut(),
        deliver: &mut dyn FnMut(&[u8]),
    ) -> Result<(), BusError> {
        let mut pubsub = self.con.as_pubsub();
        pubsub
            .subscribe(&self.channel)
            .and_then(|()| pubsub.set_read_timeout(Some(POLL)))
            .map_err(|e| bus_error(&self.url, e))?;
        subscribed();
        while !stop.load(Ordering::Acquire) {
            match pubsub.get_message() {
                Ok(msg) => deliver(msg.get_payload_bytes()),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(bus_error(&self.url, e)),
            }
        }
        Ok(())
    }
}
