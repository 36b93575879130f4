//! The uid directory on Redis: which frontend (and which incarnation of it) holds which uid.
//!
//! # Keys (prefix `P`, `"gh"` by default)
//!
//! | key | type | content |
//! |---|---|---|
//! | `P:fe:<fid>` | STRING | the frontend's live epoch (decimal u64), with a `PX` lease |
//! | `P:fes` | ZSET | `fid` → lease expiry in ms, **Redis server time** (`TIME`), for the reaper |
//! | `P:uid:<uid>` | HASH | `fid` → epoch (decimal) |
//! | `P:claims` | STRING | the cluster's claim counter ([`Directory::claim`]): one key, never reset, so a claim's generation is greater than every earlier claim's, of any uid, even after the uid's hash was deleted |
//! | `P:fe:<fid>:uids` | SET | the uids bound by that frontend (the reverse set) |
//! | `P:fe:<fid>:purge` | SET | transient: an older incarnation's reverse set, being purged |
//!
//! Channels are named `P:to:<node>` ([`Directory::channel`]).
//!
//! A directory entry is **live** only while `GET P:fe:<fid>` equals the entry's epoch: an entry
//! written by a dead frontend, or by an earlier incarnation of a restarted one, is ignored by
//! [`Directory::route`] and deleted as soon as something meets it.
//!
//! Epochs are compared as decimal strings inside the scripts, never as Lua numbers (doubles).
//! Frontend ids must be non-empty and must not start with `@` (fields starting with `@` are
//! reserved in the uid hashes); [`Directory::register`] refuses such ids.
//!
//! # Dead epochs and the reaper
//!
//! The reaper does not need to remember a dead frontend's epoch: each of its script calls first
//! checks, atomically, that `P:fe:<fid>` does not exist. While no lease exists, *no* entry of that
//! fid is live, whatever epoch it carries, so the reaper deletes the fid's field in every uid hash
//! its reverse sets list. This also collects entries a zombie incarnation wrote after being fenced.
//!
//! When a frontend registers with an epoch different from the stored lease (a restart within the
//! TTL, or after it), the register script moves the reverse set aside to `P:fe:<fid>:purge`, and
//! [`Directory::register`] then drains it in chunks of [`CHUNK`] (each chunk one short script),
//! deleting the fields whose epoch is not the new one. If the process dies half way, the next
//! register or the reaper finishes the job.
//!
//! # Scripts and NOSCRIPT
//!
//! The direct methods ([`Directory::register`], [`Directory::heartbeat`], [`Directory::route`], …)
//! run `EVALSHA` and, on a `NOSCRIPT` error, load the script and retry once (the redis crate's
//! `Script::invoke`), so they work after a Redis restart or `SCRIPT FLUSH` even without
//! [`Directory::load`]. The pipelined [`Directory::pipe_bind`] / [`Directory::pipe_unbind`]
//! cannot retry on their own: after a reconnect call [`Directory::load`] first, and on a
//! `NOSCRIPT` error (`ErrorKind::Server(ServerErrorKind::NoScript)`) call it again and re-run the
//! pipeline (bind and unbind are idempotent).
//!
//! The scripts build key names from the prefix at run time, so this works on a standalone Redis
//! (or a primary with replicas), not on a Redis Cluster.

use std::time::Duration;

use redis::{ErrorKind, RedisError, RedisResult, Script};

/// How many reverse-set members one reaper / purge script call handles, so Redis is never blocked
/// for long by a single call.
pub const CHUNK: usize = 200;

/// The outcome of [`Directory::heartbeat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease held our epoch and was extended.
    Renewed,
    /// The lease is gone or holds another epoch: it was not touched. The frontend must
    /// re-register and resync its bindings.
    Fenced,
}

/// A frontend incarnation holding a uid (or a live frontend, for [`Directory::live_frontends`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The frontend id.
    pub fid: String,
    /// The epoch of its incarnation.
    pub epoch: u64,
}

/// What [`Directory::claim`] does when another live frontend holds the uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimMode {
    /// Take the uid and remove the other holders (they are returned, to be kicked).
    Kick,
    /// Do not bind; report the holders.
    Refuse,
}

/// The outcome of [`Directory::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The uid is now bound to the claimant. `gen` is the uid's claim counter after this claim
    /// (strictly greater than any earlier claim's while the uid stays bound somewhere); `others`
    /// are the live holders removed by a [`ClaimMode::Kick`] claim (always empty for Refuse).
    Granted {
        /// The uid's claim counter after this claim.
        gen: u64,
        /// The live holders that were removed from the directory.
        others: Vec<Holder>,
    },
    /// [`ClaimMode::Refuse`] and other live holders exist; nothing was changed (except the
    /// deletion of stale entries).
    Refused {
        /// The live holders.
        holders: Vec<Holder>,
    },
}

// Shared Lua helpers, prepended to the scripts that need them.
const LUA_NOW: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

const LUA_DROP: &str = r#"
local function drop_if_empty(key)
  local n = redis.call('HLEN', key)
  if n == 0 or (n == 1 and redis.call('HEXISTS', key, '@gen') == 1) then
    redis.call('DEL', key)
  end
end
"#;

// ARGV: prefix, fid, epoch, ttl_ms. Returns 1 if a purge set is waiting to be drained.
const REGISTER: &str = r#"
local P, fid, epoch, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local fe = P .. ':fe:' .. fid
local rev = fe .. ':uids'
local purge = fe .. ':purge'
local old = redis.call('GET', fe)
redis.call('SET', fe, epoch, 'PX', ttl)
redis.call('ZADD', P .. ':fes', now_ms() + tonumber(ttl), fid)
if old ~= epoch and redis.call('EXISTS', rev) == 1 then
  redis.call('SUNIONSTORE', purge, purge, rev)
  redis.call('DEL', rev)
end
return redis.call('EXISTS', purge)
"#;

// ARGV: prefix, fid, chunk. Removes up to `chunk` members of the purge set: fields whose epoch is
// not the live lease's are deleted, live ones go back to the reverse set. Returns {removed, more}.
const PURGE: &str = r#"
local P, fid, chunk = ARGV[1], ARGV[2], tonumber(ARGV[3])
local fe = P .. ':fe:' .. fid
local cur = redis.call('GET', fe)
local purge = fe .. ':purge'
local rev = fe .. ':uids'
local removed = 0
for _, uid in ipairs(redis.call('SPOP', purge, chunk)) do
  local key = P .. ':uid:' .. uid
  local v = redis.call('HGET', key, fid)
  if v then
    if v == cur then
      redis.call('SADD', rev, uid)
    else
      redis.call('HDEL', key, fid)
      removed = removed + 1
      drop_if_empty(key)
    end
  end
end
return {removed, redis.call('EXISTS', purge)}
"#;

// ARGV: prefix, fid, epoch, ttl_ms. Returns 1 renewed, 0 fenced.
const HEARTBEAT: &str = r#"
local P, fid, epoch, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local fe = P .. ':fe:' .. fid
if redis.call('GET', fe) == epoch then
  redis.call('PEXPIRE', fe, ttl)
  redis.call('ZADD', P .. ':fes', now_ms() + tonumber(ttl), fid)
  return 1
end
return 0
"#;

// ARGV: prefix, uid, fid, epoch. Returns 1.
const BIND: &str = r#"
local P, uid, fid, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', P .. ':uid:' .. uid, fid, epoch)
redis.call('SADD', P .. ':fe:' .. fid .. ':uids', uid)
return 1
"#;

// ARGV: prefix, uid, fid, epoch. Returns 1 if our entry was removed, 0 otherwise (another epoch's
// entry is left alone).
const UNBIND: &str = r#"
local P, uid, fid, epoch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = P .. ':uid:' .. uid
local v = redis.call('HGET', key, fid)
if v == epoch then
  redis.call('HDEL', key, fid)
  redis.call('SREM', P .. ':fe:' .. fid .. ':uids', uid)
  drop_if_empty(key)
  return 1
end
return 0
"#;

// ARGV: prefix, uid... Returns one flat {fid, epoch, fid, epoch, ...} array per uid (live only);
// stale entries are deleted.
const ROUTE: &str = r#"
local P = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local uid = ARGV[i]
  local key = P .. ':uid:' .. uid
  local h = redis.call('HGETALL', key)
  local live = {}
  local stale = false
  for j = 1, #h, 2 do
    local fid, epoch = h[j], h[j + 1]
    if string.sub(fid, 1, 1) ~= '@' then
      if redis.call('GET', P .. ':fe:' .. fid) == epoch then
        live[#live + 1] = fid
        live[#live + 1] = epoch
      else
        redis.call('HDEL', key, fid)
        redis.call('SREM', P .. ':fe:' .. fid .. ':uids', uid)
        stale = true
      end
    end
  end
  if stale then drop_if_empty(key) end
  out[#out + 1] = live
end
return out
"#;

// ARGV: prefix. Returns {fid, epoch, ...} for every frontend with a live lease.
const LIVE: &str = r#"
local P = ARGV[1]
local out = {}
for _, fid in ipairs(redis.call('ZRANGE', P .. ':fes', 0, -1)) do
  local e = redis.call('GET', P .. ':fe:' .. fid)
  if e then
    out[#out + 1] = fid
    out[#out + 1] = e
  end
end
return out
"#;

// ARGV: prefix, chunk. Handles up to `chunk` reverse-set members of frontends whose ZSET score is
// past and whose lease key is gone; ZREMs a frontend once both its sets are empty.
// Returns {removed, more}.
const REAP: &str = r#"
local P, budget = ARGV[1], tonumber(ARGV[2])
local removed = 0
local fes = P .. ':fes'
for _, fid in ipairs(redis.call('ZRANGEBYSCORE', fes, '-inf', '(' .. now_ms())) do
  local fe = P .. ':fe:' .. fid
  if redis.call('EXISTS', fe) == 0 then
    for _, set in ipairs({fe .. ':uids', fe .. ':purge'}) do
      if budget > 0 then
        local uids = redis.call('SPOP', set, budget)
        budget = budget - #uids
        for _, uid in ipairs(uids) do
          local key = P .. ':uid:' .. uid
          removed = removed + redis.call('HDEL', key, fid)
          drop_if_empty(key)
        end
      end
    end
    if budget <= 0 then
      return {removed, 1}
    end
    redis.call('ZREM', fes, fid)
  end
end
return {removed, 0}
"#;

// ARGV: prefix, uid, fid, epoch, mode ('kick' | 'refuse').
// Returns {granted (1|0), gen, fid, epoch, ...} (the removed live holders, or the refusing ones).
const CLAIM: &str = r#"
local P, uid, fid, epoch, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = P .. ':uid:' .. uid
local h = redis.call('HGETALL', key)
local others = {}
for j = 1, #h, 2 do
  local f, e = h[j], h[j + 1]
  if string.sub(f, 1, 1) ~= '@' and f ~= fid then
    if redis.call('GET', P .. ':fe:' .. f) == e then
      others[#others + 1] = f
      others[#others + 1] = e
    else
      redis.call('HDEL', key, f)
      redis.call('SREM', P .. ':fe:' .. f .. ':uids', uid)
    end
  end
end
if mode == 'refuse' and #others > 0 then
  local out = {0, 0}
  for _, x in ipairs(others) do out[#out + 1] = x end
  return out
end
for j = 1, #others, 2 do
  redis.call('HDEL', key, others[j])
  redis.call('SREM', P .. ':fe:' .. others[j] .. ':uids', uid)
end
redis.call('HSET', key, fid, epoch)
redis.call('SADD', P .. ':fe:' .. fid .. ':uids', uid)
local gen = redis.call('INCR', P .. ':claims')
local out = {1, gen}
for _, x in ipairs(others) do out[#out + 1] = x end
return out
"#;

/// The uid directory: key prefix plus the Lua scripts. Cheap to clone; `Send + Sync`. It holds no
/// connection: every method takes the caller's (blocking) `redis::Connection`.
#[derive(Debug, Clone)]
pub struct Directory {
    prefix: String,
    register: Script,
    purge: Script,
    heartbeat: Script,
    bind: Script,
    unbind: Script,
    route: Script,
    live: Script,
    reap: Script,
    claim: Script,
}

fn ttl_ms(ttl: Duration) -> String {
    // PX needs a positive integer; clamp to Redis's signed 64-bit range.
    ttl.as_millis().clamp(1, i64::MAX as u128 / 2).to_string()
}

fn bad_reply(what: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::UnexpectedReturnType, what, detail))
}

fn parse_epoch(s: &str) -> RedisResult<u64> {
    s.parse::<u64>()
        .map_err(|_| bad_reply("directory: epoch is not a decimal u64", s.to_string()))
}

/// `[fid, epoch, fid, epoch, …]` → holders.
fn holders(flat: &[String]) -> RedisResult<Vec<Holder>> {
    if !flat.len().is_multiple_of(2) {
        return Err(bad_reply(
            "directory: odd fid/epoch list",
            format!("{} items", flat.len()),
        ));
    }
    flat.chunks_exact(2)
        .map(|p| {
            Ok(Holder {
                fid: p[0].clone(),
                epoch: parse_epoch(&p[1])?,
            })
        })
        .collect()
}

fn check_fid(fid: &str) -> RedisResult<()> {
    if fid.is_empty() || fid.starts_with('@') {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "directory: a frontend id must be non-empty and must not start with '@'",
            fid.to_string(),
        )));
    }
    Ok(())
}

impl Directory {
    /// A directory whose keys all start with `prefix:` (use `"gh"` for the default layout).
    /// Directories with different prefixes on one Redis never see each other's entries.
    pub fn new(prefix: &str) -> Directory {
        let with = |helpers: &[&str], body: &str| {
            let mut code = helpers.concat();
            code.push_str(body);
            Script::new(&code)
        };
        Directory {
            prefix: prefix.to_string(),
            register: with(&[LUA_NOW], REGISTER),
            purge: with(&[LUA_DROP], PURGE),
            heartbeat: with(&[LUA_NOW], HEARTBEAT),
            bind: with(&[], BIND),
            unbind: with(&[LUA_DROP], UNBIND),
            route: with(&[LUA_DROP], ROUTE),
            live: with(&[], LIVE),
            reap: with(&[LUA_NOW, LUA_DROP], REAP),
            claim: with(&[], CLAIM),
        }
    }

    /// The key prefix (without the trailing `:`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The pub/sub channel of a node: `P:to:<node>`.
    pub fn channel(&self, node: &str) -> String {
        format!("{}:to:{node}", self.prefix)
    }

    fn scripts(&self) -> [&Script; 9] {
        [
            &self.register,
            &self.purge,
            &self.heartbeat,
            &self.bind,
            &self.unbind,
            &self.route,
            &self.live,
            &self.reap,
            &self.claim,
        ]
    }

    /// `SCRIPT LOAD`s every script (one call each). Call it after every (re)connect before using
    /// [`Directory::pipe_bind`] / [`Directory::pipe_unbind`]: a Redis restart empties the script
    /// cache. Blocks for the round trips.
    pub fn load(&self, con: &mut redis::Connection) -> RedisResult<()> {
        for s in self.scripts() {
            s.load(con)?;
        }
        Ok(())
    }

    /// Registers an incarnation: `SET P:fe:<fid> epoch PX ttl` and its `P:fes` score (server
    /// time + ttl). This fences any other incarnation of `fid` (their heartbeats return
    /// [`Heartbeat::Fenced`]). If the stored lease held another epoch (or none) and the reverse set
    /// lists uids, the entries of other epochs are deleted now (in chunks of [`CHUNK`]), and their
    /// number is returned; entries of `epoch` itself are kept.
    ///
    /// Errors: `InvalidClientConfig` for an empty fid or one starting with `@`; Redis errors.
    pub fn register(
        &self,
        con: &mut redis::Connection,
        fid: &str,
        epoch: u64,
        ttl: Duration,
    ) -> RedisResult<usize> {
        check_fid(fid)?;
        let pending: i64 = self
            .register
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(fid)
            .arg(epoch.to_string())
            .arg(ttl_ms(ttl))
            .invoke(con)?;
        let mut removed = 0usize;
        let mut more = pending != 0;
        while more {
            let (n, m): (usize, i64) = self
                .purge
                .prepare_invoke()
                .arg(&self.prefix)
                .arg(fid)
                .arg(CHUNK)
                .invoke(con)?;
            removed += n;
            more = m != 0;
        }
        Ok(removed)
    }

    /// Extends the lease to `ttl` (and its `P:fes` score) only if `P:fe:<fid>` holds `epoch`.
    /// Otherwise nothing is changed and [`Heartbeat::Fenced`] is returned: the lease expired or
    /// another incarnation registered.
    pub fn heartbeat(
        &self,
        con: &mut redis::Connection,
        fid: &str,
        epoch: u64,
        ttl: Duration,
    ) -> RedisResult<Heartbeat> {
        let r: i64 = self
            .heartbeat
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(fid)
            .arg(epoch.to_string())
            .arg(ttl_ms(ttl))
            .invoke(con)?;
        Ok(if r == 1 {
            Heartbeat::Renewed
        } else {
            Heartbeat::Fenced
        })
    }

    fn pipe_script(
        &self,
        pipe: &mut redis::Pipeline,
        s: &Script,
        uid: &str,
        fid: &str,
        epoch: u64,
    ) {
        pipe.cmd("EVALSHA")
            .arg(s.get_hash())
            .arg(0)
            .arg(&self.prefix)
            .arg(uid)
            .arg(fid)
            .arg(epoch.to_string());
    }

    /// Appends one `EVALSHA` of the bind script to `pipe`: `HSET P:uid:<uid> fid epoch` and
    /// `SADD P:fe:<fid>:uids uid`. Its reply is the integer 1. Idempotent. Requires
    /// [`Directory::load`] on this connection (see the module docs on NOSCRIPT). Does no I/O.
    pub fn pipe_bind(&self, pipe: &mut redis::Pipeline, uid: &str, fid: &str, epoch: u64) {
        self.pipe_script(pipe, &self.bind, uid, fid, epoch);
    }

    /// Appends one `EVALSHA` of the unbind script to `pipe`: if `P:uid:<uid>` maps `fid` to
    /// `epoch`, the field and the reverse-set member are removed (and the hash too when only
    /// `@gen` or nothing is left); reply 1. An entry of another epoch is left alone; reply 0.
    /// Requires [`Directory::load`] like [`Directory::pipe_bind`]. Does no I/O.
    pub fn pipe_unbind(&self, pipe: &mut redis::Pipeline, uid: &str, fid: &str, epoch: u64) {
        self.pipe_script(pipe, &self.unbind, uid, fid, epoch);
    }

    /// For each uid (one script call for the whole slice, atomic), its live holders, in the
    /// order of `uids`. An entry is live only if `GET P:fe:<fid>` equals its epoch; stale entries
    /// met are deleted (hash field and reverse-set member). An empty slice makes no call.
    pub fn route(
        &self,
        con: &mut redis::Connection,
        uids: &[&str],
    ) -> RedisResult<Vec<Vec<Holder>>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inv = self.route.prepare_invoke();
        inv.arg(&self.prefix);
        for uid in uids {
            inv.arg(*uid);
        }
        let raw: Vec<Vec<String>> = inv.invoke(con)?;
        if raw.len() != uids.len() {
            return Err(bad_reply(
                "directory: route returned a wrong number of results",
                format!("{} for {} uids", raw.len(), uids.len()),
            ));
        }
        raw.iter().map(|flat| holders(flat)).collect()
    }

    /// Every frontend listed in `P:fes` whose lease key exists, with the lease's epoch.
    pub fn live_frontends(&self, con: &mut redis::Connection) -> RedisResult<Vec<Holder>> {
        let flat: Vec<String> = self.live.prepare_invoke().arg(&self.prefix).invoke(con)?;
        holders(&flat)
    }

    /// The epoch stored in `fid`'s live lease, or `None` if it has none.
    pub fn lease(&self, con: &mut redis::Connection, fid: &str) -> RedisResult<Option<u64>> {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("{}:fe:{fid}", self.prefix))
            .query(con)?;
        v.as_deref().map(parse_epoch).transpose()
    }

    /// The reaper: for every fid in `P:fes` whose score (lease expiry) is past and whose lease key
    /// is gone, pops its reverse set in chunks of [`CHUNK`] (one short script per chunk), deletes
    /// that fid's field in each listed uid hash (whatever epoch: without a lease none is live),
    /// and once the sets are empty removes the fid from `P:fes`. Idempotent and safe to run from
    /// several nodes at once (each member is popped by exactly one). Returns the number of uid
    /// entries deleted by this call. A frontend that registers meanwhile stops the sweep of its id
    /// at the next chunk.
    pub fn reap(&self, con: &mut redis::Connection) -> RedisResult<usize> {
        let mut removed = 0usize;
        loop {
            let (n, more): (usize, i64) = self
                .reap
                .prepare_invoke()
                .arg(&self.prefix)
                .arg(CHUNK)
                .invoke(con)?;
            removed += n;
            if more == 0 {
                return Ok(removed);
            }
        }
    }

    /// The uids the reverse set `P:fe:<fid>:uids` lists (any order), e.g. for a resync: the caller
    /// unbinds the ones it no longer holds. One `SMEMBERS`.
    pub fn listed_uids(&self, con: &mut redis::Connection, fid: &str) -> RedisResult<Vec<String>> {
        redis::cmd("SMEMBERS")
            .arg(format!("{}:fe:{fid}:uids", self.prefix))
            .query(con)
    }

    /// Cluster-wide single session, atomically in one script. Stale holders (no live lease with
    /// their epoch) never count and are deleted. With [`ClaimMode::Refuse`], if another live
    /// frontend holds `uid` nothing is bound and [`Claim::Refused`] lists the holders. Otherwise
    /// (Refuse with no other holder, or [`ClaimMode::Kick`]) the other holders' entries are
    /// removed, `uid` is bound to `fid`/`epoch` as by [`Directory::pipe_bind`], the cluster's
    /// claim counter `P:claims` is incremented, and [`Claim::Granted`] carries the new gen (greater
    /// than every earlier claim's) and the removed holders. Of two
    /// concurrent claims, the later one sees the earlier one's binding.
    pub fn claim(
        &self,
        con: &mut redis::Connection,
        uid: &str,
        fid: &str,
        epoch: u64,
        mode: ClaimMode,
    ) -> RedisResult<Claim> {
        let raw: Vec<String> = self
            .claim
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(uid)
            .arg(fid)
            .arg(epoch.to_string())
            .arg(match mode {
                ClaimMode::Kick => "kick",
                ClaimMode::Refuse => "refuse",
            })
            .invoke(con)?;
        let (head, rest) = match raw.as_slice() {
            [granted, gen, rest @ ..] => ((granted.as_str(), gen.as_str()), rest),
            _ => {
                return Err(bad_reply(
                    "directory: short claim reply",
                    format!("{} items", raw.len()),
                ))
            }
        };
        let list = holders(rest)?;
        match head {
            ("1", gen) => Ok(Claim::Granted {
                gen: gen
                    .parse()
                    .map_err(|_| bad_reply("directory: bad claim gen", gen.to_string()))?,
                others: list,
            }),
            _ => Ok(Claim::Refused { holders: list }),
        }
    }
}

/// Hides credentials in a Redis URL: the password in `user:password@`, and `pass`/`password`
/// query parameters (unix-socket URLs), become `***`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let auth_end = out[start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..auth_end].rfind('@').map(|i| start + i) {
            if let Some(colon) = out[start..at].find(':').map(|i| start + i) {
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k == "pass" || k == "password" => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

/// Opens a blocking connection to `url` (connect timeout `timeout`) and checks it with a `PING`,
/// so a missing or wrong password fails here rather than on the first command. Errors are
/// readable messages naming the URL with its password redacted, e.g.
/// `"authentication failed for redis://user:***@host:6379/: …"`; the password never appears.
/// The returned connection has no read/write timeout set.
pub fn connect(url: &str, timeout: Duration) -> Result<redis::Connection, String> {
    let shown = redact_url(url);
    let client = redis::Client::open(url)
        .map_err(|e| format!("invalid redis URL {shown} ({:?})", e.kind()))?;
    let describe = |e: &RedisError| -> String {
        if e.kind() == ErrorKind::AuthenticationFailed {
            format!("authentication failed for {shown} (wrong user or password)")
        } else if e.code() == Some("NOAUTH") {
            format!("authentication required by {shown} (no password given)")
        } else if e.code() == Some("WRONGPASS") {
            format!("authentication failed for {shown} (wrong user or password)")
        } else if e.is_timeout() {
            format!("timed out connecting to {shown} after {timeout:?}")
        } else {
            format!("cannot connect to {shown}: {e}")
        }
    };
    let mut con = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| describe(&e))?;
    redis::cmd("PING")
        .query::<String>(&mut con)
        .map_err(|e| describe(&e))?;
    Ok(con)
}
// ARGV: prefix, fid, epoch. A clean stop: drops the lease if it is ours and makes the fid
// due for the reaper at once. Returns 1 if the lease was ours.
const DEREGISTER: &str = r#"
local P, fid, epoch = ARGV[1], ARGV[2], ARGV[3]
local fe = P .. ':fe:' .. fid
if redis.call('GET', fe) == epoch then
  redis.call('DEL', fe)
  redis.call('ZADD', P .. ':fes', 0, fid)
  return 1
end
return 0
"#;

impl Directory {
    /// A clean stop of a frontend: removes its lease (only if it holds `epoch`) and reaps its
    /// entries now instead of after the TTL. Returns the entries removed.
    pub fn deregister(
        &self,
        con: &mut redis::Connection,
        fid: &str,
        epoch: u64,
    ) -> RedisResult<usize> {
        let ours: i64 = Script::new(DEREGISTER)
            .arg(&self.prefix)
            .arg(fid)
            .arg(epoch.to_string())
            .invoke(con)?;
        if ours == 1 {
            self.reap(con)
        } else {
            Ok(0)
        }
    }
}
