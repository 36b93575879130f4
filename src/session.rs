//! Per-session data: the stored entry, and the views handed out ([`SessionInfo`],
//! [`SessionSnapshot`]).

use crate::id::Sid;
use crate::uid::Uid;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;

/// Session settings: string keys to JSON values (pomelo `session.settings`).
pub type Settings = serde_json::Map<String, Value>;

/// One registry slot's session (an `Option<SessionEntry>` is 40 bytes too: the box is the
/// niche). Kept to 40 bytes so that iterating a shard streams few cache lines: the
/// fields read on hot paths (sid for the generation check, uid for `for_each_bound_session`)
/// sit inline, everything else behind one box.
pub(crate) struct SessionEntry {
    pub(crate) sid: Sid,
    pub(crate) uid: Option<Uid>,
    pub(crate) cold: Box<ColdData>,
}

/// Session data no hot path reads.
pub(crate) struct ColdData {
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) settings: Settings,
}

impl SessionEntry {
    pub(crate) fn snapshot(&self, frontend_id: &Arc<str>, state: SessionState) -> SessionSnapshot {
        SessionSnapshot {
            sid: self.sid,
            frontend_id: frontend_id.clone(),
            uid: self.uid.clone(),
            settings: self.cold.settings.clone(),
            remote: self.cold.remote,
            state,
        }
    }

    pub(crate) fn into_snapshot(self, frontend_id: &Arc<str>) -> SessionSnapshot {
        SessionSnapshot {
            sid: self.sid,
            frontend_id: frontend_id.clone(),
            uid: self.uid,
            settings: self.cold.settings,
            remote: self.cold.remote,
            state: SessionState::Closed,
        }
    }
}

/// Life-cycle state of a session (pomelo `ST_INITED` / `ST_CLOSED`). A session is `Active`
/// from `create` until it closes; closed sessions are no longer in the registry, so only
/// snapshots taken at close carry `Closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// In the registry.
    Active,
    /// Closed; the sid is dead.
    Closed,
}

/// What [`SessionService::get`](crate::SessionService::get) returns: the hot fields of a live
/// session, copied without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id.
    pub sid: Sid,
    /// The bound uid, if any.
    pub uid: Option<Uid>,
    /// The client's address, if the transport gave one.
    pub remote: Option<SocketAddr>,
}

/// A copy of a session at one moment: pomelo's `FrontendSession`, and what its `export()`
/// sends to backends.
///
/// Changes to a snapshot stay local (as in pomelo); write settings back with
/// [`SessionService::import`](crate::SessionService::import) or
/// [`import_all`](crate::SessionService::import_all). Unlike pomelo's one-level copy, the
/// settings are a deep copy, so a handler can never change the live session by accident.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSnapshot {
    /// The session id.
    pub sid: Sid,
    /// The frontend (server id) holding the connection.
    pub frontend_id: Arc<str>,
    /// The bound uid, if any (at close: the uid it had).
    pub uid: Option<Uid>,
    /// The settings.
    pub settings: Settings,
    /// The client's address, if known.
    pub remote: Option<SocketAddr>,
    /// `Active`, or `Closed` in a `closed` event.
    pub state: SessionState,
}

impl SessionSnapshot {
    /// A settings value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.settings.get(key)
    }

    /// pomelo's `export()`: `{"id", "frontendId", "uid", "settings"}` for backends. `id` is the
    /// raw sid integer; `uid` is `null` when unbound.
    ///
    /// ```
    /// use gatehouse::{SessionConfig, SessionService};
    ///
    /// let service = SessionService::new(SessionConfig::default()).unwrap();
    /// let sid = service.create(None).unwrap();
    /// service.bind(sid, "u1").unwrap();
    /// let export = service.snapshot(sid).unwrap().export();
    /// assert_eq!(export["uid"], "u1");
    /// assert_eq!(export["frontendId"], "connector-server-1");
    /// ```
    pub fn export(&self) -> Value {
        serde_json::json!({
            "id": self.sid.into_raw(),
            "frontendId": &*self.frontend_id,
            "uid": self.uid.as_ref().map(Uid::as_str),
            "settings": Value::Object(self.settings.clone()),
        })
    }
}
