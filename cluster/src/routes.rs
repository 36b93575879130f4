//! [`RouteCache`]: the sender's short-lived memory of which frontends hold a uid, so a steady
//! stream of pushes to the same users does not ask Redis for every one.
//!
//! Safe by construction: a frontend delivers a push only to the sessions it has bound to the
//! uid *now*, so a stale route can never reach the wrong user — it only finds nobody. Such
//! "not found here" (or "frontend down") answers for a cached route are routed again with
//! Redis, once, under the same deadline (`Tx::settle`). Only positive answers are cached: a
//! uid that was offline is asked again next time, so a user who just logged in is never
//! reported offline from memory.

use crate::directory::Holder;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many uids are remembered; past it the cache starts over.
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct RouteCache {
    ttl: Duration,
    map: HashMap<String, (Arc<[Holder]>, Instant)>,
}

impl RouteCache {
    /// `ttl` zero disables the cache.
    pub(crate) fn new(ttl: Duration) -> RouteCache {
        RouteCache {
            ttl,
            map: HashMap::new(),
        }
    }

    /// The holders of `uid` if remembered and younger than the TTL.
    pub(crate) fn get(&self, uid: &str, now: Instant) -> Option<&Arc<[Holder]>> {
        let (holders, at) = self.map.get(uid)?;
        (now.duration_since(*at) < self.ttl).then_some(holders)
    }

    /// Remembers a fresh answer from Redis (only if someone holds the uid).
    pub(crate) fn put(&mut self, uid: &str, holders: &Arc<[Holder]>, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        if holders.is_empty() {
            self.map.remove(uid);
            return;
        }
        if self.map.len() >= MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(uid.to_string(), (holders.clone(), now));
    }

    pub(crate) fn forget(&mut self, uid: &str) {
        self.map.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(fid: &str) -> Holder {
        Holder {
            fid: fid.into(),
            epoch: 1,
        }
    }

    #[test]
    fn remembers_positive_answers_for_the_ttl_only() {
        let t0 = Instant::now();
        let mut cache = RouteCache::new(Duration::from_secs(1));
        cache.put("u", &Arc::from([h("fe-a")]), t0);
        assert_eq!(cache.get("u", t0).map(|h| &h[..]), Some(&[h("fe-a")][..]));
        assert_eq!(cache.get("u", t0 + Duration::from_secs(1)), None);
        cache.put("u", &Arc::from([]), t0);
        assert_eq!(
            cache.get("u", t0),
            None,
            "an offline answer clears the entry"
        );
        cache.put("v", &Arc::from([h("fe-b")]), t0);
        cache.forget("v");
        assert_eq!(cache.get("v", t0), None);
    }

    #[test]
    fn zero_ttl_disables() {
        let t0 = Instant::now();
        let mut cache = RouteCache::new(Duration::ZERO);
        cache.put("u", &Arc::from([h("fe-a")]), t0);
        assert_eq!(cache.get("u", t0), None);
    }
}
