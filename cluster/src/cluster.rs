//! [`Cluster`]: the handle game code calls, from any thread, on a frontend or a backend.

use crate::backplane::Backplane;
use crate::call::{Call, CallKind, Op, SessionOp};
use crate::config::ClusterConfig;
use crate::frame;
use crate::frontend::FrontendLink;
use crate::node::{self, FrontendPart, Shared};
use crate::redis_backplane::RedisBackplane;
use crate::report::{ClusterError, Outcome, PushReport, RemoteError, RemoteSession, SessionRef};
use crate::rx::Rx;
use crate::stats::ClusterStats;
use crate::sync::{lock, Arc, Mutex};
use crate::ticket::{PushTicket, Ticket};
use crate::tx::{connect_and_prepare, Tx};
use bytes::Bytes;
use gatehouse::{Sessions, Settings, Sid};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A node of the cluster. Cheap to clone (`Arc`), `Send + Sync`: hand clones to handlers and
/// worker threads.
///
/// # Contract of every call
///
/// - **Never blocks on Redis.** A call is queued to the bridge thread with a non-blocking
///   `try_send`; a full queue is [`ClusterError::Backpressure`] at once. Push calls return a
///   [`PushTicket`]; the session calls (`bind`, `kick_by_uid`, `get_by_sid`, …) wait for their
///   answer, at most the configured [`deadline`](ClusterConfig::deadline) — do not call those
///   from an I/O thread's handler if you cannot afford the round trip (~0.1–0.3 ms on loopback);
///   use the push calls or a worker thread.
/// - **Copies the package once.** The pre-encoded pomelo package is shared; each destination
///   frontend gets it once and hands the same bytes to every session.
/// - **Reports every target.** Each target gets exactly one [`Outcome`]; nothing accepted is
///   dropped without one. A frame is executed at most once per frontend (sequence numbers,
///   receiver dedup), in order per (sender, frontend); lost frames are sent again until the
///   deadline, after which the outcome is `Unconfirmed` (maybe executed, never twice).
///
/// # Security
///
/// Whoever can write to the Redis database (publish on `<prefix>:to:*`) can push to any user
/// and kick any session, exactly as with pinus's status and global-channel plugins: protect
/// Redis with an ACL user and a password, and keep it off public networks.
#[derive(Clone)]
pub struct Cluster {
    shared: Arc<Shared>,
}

impl Cluster {
    /// Starts a backend node: no sessions of its own; it pushes, kicks and calls frontends.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Connect`] if Redis cannot be reached or refuses the credentials (the
    /// message says which, without the password); [`ClusterError::Invalid`] for a bad config.
    pub fn connect(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        Cluster::start(config, None, None)
    }

    /// As [`connect`](Self::connect), on another engine than the built-in Redis one (the
    /// [`Backplane`] seam; `config.url` and `subscriber_url` are then unused).
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_on(
        config: ClusterConfig,
        bus: Box<dyn Backplane>,
    ) -> Result<Cluster, ClusterError> {
        Cluster::start(config, Some(bus), None)
    }

    /// Starts a frontend node serving `sessions` (from [`Server::service`](gatehouse::server::Server::service)),
    /// whose server was built with `link` as its listener. Registers the lease, writes the
    /// directory entries of the sessions already bound, and serves requests from the bus.
    ///
    /// # Errors
    ///
    /// As [`Cluster::connect`]; also `Invalid` if `link` is already attached to another node.
    pub fn start_frontend(
        config: ClusterConfig,
        link: std::sync::Arc<FrontendLink>,
        sessions: Sessions,
    ) -> Result<Cluster, ClusterError> {
        Cluster::start_frontend_on(config, None, link, sessions)
    }

    /// As [`start_frontend`](Self::start_frontend), on another engine than the built-in Redis
    /// one (`None`: Redis from `config`).
    ///
    /// # Errors
    ///
    /// As [`start_frontend`](Self::start_frontend).
    pub fn start_frontend_on(
        config: ClusterConfig,
        bus: Option<Box<dyn Backplane>>,
        link: std::sync::Arc<FrontendLink>,
        sessions: Sessions,
    ) -> Result<Cluster, ClusterError> {
        let front = FrontendPart {
            sessions,
            link,
            claims: Default::default(),
        };
        Cluster::start(config, bus, Some(front))
    }

    fn start(
        config: ClusterConfig,
        bus: Option<Box<dyn Backplane>>,
        frontend: Option<FrontendPart>,
    ) -> Result<Cluster, ClusterError> {
        config.validate().map_err(ClusterError::Invalid)?;
        let bus = match bus {
            Some(bus) => bus,
            None => Box::new(
                RedisBackplane::new(
                    &config.url,
                    config.subscriber_url.as_deref(),
                    &config.prefix,
                    config.connect_timeout,
                )
                .map_err(|e| ClusterError::Connect(e.to_string()))?,
            ),
        };
        let (ops_tx, ops_rx) = crossbeam_channel::bounded(config.queue);
        let (acks_tx, acks_rx) = crossbeam_channel::bounded(config.queue);
        if let Some(front) = &frontend {
            if !front
                .link
                .attach(ops_tx.clone(), config.single_session.is_some())
            {
                return Err(ClusterError::Invalid(
                    "this FrontendLink is already attached to a cluster node".into(),
                ));
            }
        }
        let shared = Arc::new(Shared {
            tag: frame::cluster_tag(&config.prefix),
            channel: bus.channel(&config.node_id),
            epoch: node::new_epoch(),
            bus,
            ops: ops_tx,
            stats: Default::default(),
            stop: AtomicBool::new(false),
            check_link: AtomicBool::new(false),
            frontend,
            no_ack: node::no_ack_knob(&config),
            threads: Mutex::new(Vec::new()),
            config,
        });
        if shared.no_ack {
            log::warn!("cluster: GH_TEST_NO_ACK=1: acknowledgements and retransmission are OFF");
        }
        let con = connect_and_prepare(&shared).map_err(|e| ClusterError::Connect(e.to_string()))?;
        // The subscriber first: once start returns, nothing sent to this node is missed.
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let (out_tx, out_rx) = crossbeam_channel::bounded(shared.config.queue);
        let acker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("gh-bus-ack".into())
                .spawn(move || crate::acks::run(shared, out_rx))
                .map_err(|e| ClusterError::Connect(format!("cannot start gh-bus-ack: {e}")))?
        };
        lock(&shared.threads).push(acker);
        let rx = Rx::new(shared.clone(), acks_tx, out_tx);
        let rx_thread = std::thread::Builder::new()
            .name("gh-bus-rx".into())
            .spawn(move || rx.run(ready_tx))
            .map_err(|e| ClusterError::Connect(format!("cannot start gh-bus-rx: {e}")))?;
        let wait = shared.config.connect_timeout * 2;
        match ready_rx.recv_timeout(wait) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.stop.store(true, Ordering::Release);
                let _ = rx_thread.join();
                return Err(ClusterError::Connect(format!("subscribe: {e}")));
            }
            Err(_) => {
                shared.stop.store(true, Ordering::Release);
                return Err(ClusterError::Connect("subscribe: timed out".into()));
            }
        }
        let mut tx = Tx::new(shared.clone(), con, ops_rx, acks_rx);
        tx.request_resync();
        let tx_thread = std::thread::Builder::new()
            .name("gh-bus-tx".into())
            .spawn(move || tx.run())
            .map_err(|e| ClusterError::Connect(format!("cannot start gh-bus-tx: {e}")))?;
        lock(&shared.threads).extend([rx_thread, tx_thread]);
        Ok(Cluster { shared })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.config.node_id
    }

    /// This process's epoch (new on every start).
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// The cluster-wide address of a session of this frontend.
    pub fn session_ref(&self, sid: Sid) -> SessionRef {
        SessionRef {
            frontend: self.shared.config.node_id.clone(),
            epoch: self.shared.epoch,
            sid,
        }
    }

    /// The node's counters.
    pub fn stats(&self) -> ClusterStats {
        self.shared.stats.snapshot()
    }

    fn submit(&self, kind: CallKind) -> Result<Arc<Ticket>, ClusterError> {
        if self.shared.stop.load(Ordering::Acquire) {
            return Err(ClusterError::Closed);
        }
        let ticket = Ticket::new();
        let call = Call::new(
            kind,
            ticket.clone(),
            Instant::now() + self.shared.config.deadline,
        );
        match self.shared.ops.try_send(Op::Call(call)) {
            Ok(()) => Ok(ticket),
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(ClusterError::Backpressure),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(ClusterError::Closed),
        }
    }

    fn check_package(&self, package: &Bytes) -> Result<(), ClusterError> {
        // Header, origin and counts take well under 1 KiB.
        let max = self.shared.config.max_frame.saturating_sub(1024);
        if package.len() > max {
            return Err(ClusterError::TooLarge {
                len: package.len(),
                max,
            });
        }
        Ok(())
    }

    /// Pushes a pre-encoded pomelo package to every session of each uid, on whichever
    /// frontends hold them (pinus `statusService.pushByUids`, without naming frontends).
    ///
    /// Per uid and frontend: `Delivered`, `NotFound` (the frontend no longer has it), `Offline`
    /// (no live frontend listed), `FrontendDown`, `Unconfirmed`, `Backpressure`, `RedisDown`.
    ///
    /// # Errors
    ///
    /// `Backpressure` (queue full), `TooLarge`, `Invalid` (an empty uid), `Closed`.
    pub fn push_by_uids<S: AsRef<str>>(
        &self,
        uids: &[S],
        package: impl Into<Bytes>,
    ) -> Result<PushTicket, ClusterError> {
        let package = package.into();
        self.check_package(&package)?;
        let uids = check_uids(uids)?;
        self.submit(CallKind::PushUids { uids, package })
            .map(PushTicket)
    }

    /// Pushes a package to these sessions (pinus `channelService.pushMessageByUids` with
    /// explicit frontends). Outcome per sid (as text).
    ///
    /// # Errors
    ///
    /// As [`push_by_uids`](Self::push_by_uids).
    pub fn push_by_sessions(
        &self,
        sessions: &[SessionRef],
        package: impl Into<Bytes>,
    ) -> Result<PushTicket, ClusterError> {
        let package = package.into();
        self.check_package(&package)?;
        let mut groups: Vec<(String, u64, Vec<u64>)> = Vec::new();
        for s in sessions {
            match groups
                .iter_mut()
                .find(|g| g.0 == s.frontend && g.1 == s.epoch)
            {
                Some(g) => g.2.push(s.sid.into_raw()),
                None => groups.push((s.frontend.clone(), s.epoch, vec![s.sid.into_raw()])),
            }
        }
        self.submit(CallKind::PushSids { groups, package })
            .map(PushTicket)
    }

    /// Pushes a package to every session (or every bound session) of every live frontend
    /// (pomelo `channelService.broadcast`). One entry per frontend; `sessions` counts them.
    ///
    /// # Errors
    ///
    /// As [`push_by_uids`](Self::push_by_uids).
    pub fn broadcast(
        &self,
        package: impl Into<Bytes>,
        bound_only: bool,
    ) -> Result<PushTicket, ClusterError> {
        let package = package.into();
        self.check_package(&package)?;
        self.submit(CallKind::Broadcast {
            bound_only,
            package,
        })
        .map(PushTicket)
    }

    /// Kicks every session of `uid` on every frontend holding it: each client gets a KICK
    /// package `{"reason": …}` before its connection closes, or — with `None` — just the close,
    /// exactly as a local kick. Blocks until every frontend answered (or the deadline).
    /// `report.sessions` is the number of sessions kicked.
    ///
    /// # Errors
    ///
    /// `Backpressure`, `Invalid`, `Closed`.
    pub fn kick_by_uid(&self, uid: &str, reason: Option<&str>) -> Result<PushReport, ClusterError> {
        check_uid(uid)?;
        let ticket = self.submit(CallKind::KickUid {
            uid: uid.to_string(),
            reason: reason.map(str::to_string),
        })?;
        Ok(PushTicket(ticket).wait())
    }

    /// Kicks one session (pomelo `kickBySid`). `Ok(false)` if the frontend has no such session.
    ///
    /// # Errors
    ///
    /// [`RemoteError`]: not accepted, or the frontend was not reached.
    pub fn kick_by_sid(&self, at: &SessionRef, reason: Option<&str>) -> Result<bool, RemoteError> {
        let (status, body) = self.session_call(at, SessionOp::Kick(reason.map(str::to_string)))?;
        match status {
            s if s == frame::Status::Ok as u8 => Ok(body.first() == Some(&1)),
            _ => Err(status_error(status, &body)),
        }
    }

    /// Binds a remote session to `uid` (pomelo `BackendSessionService.bind` / `sessionRemote.bind`).
    ///
    /// # Errors
    ///
    /// [`RemoteError::Pomelo`] with pomelo's text when the frontend refuses (unknown session,
    /// already bound…); [`RemoteError::NoSession`] for a session of a previous incarnation.
    pub fn bind(&self, at: &SessionRef, uid: &str) -> Result<(), RemoteError> {
        check_uid(uid)?;
        self.unit_call(at, SessionOp::Bind(uid.to_string()))
    }

    /// Unbinds a remote session from `uid` (pomelo `unbind`).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn unbind(&self, at: &SessionRef, uid: &str) -> Result<(), RemoteError> {
        self.unit_call(at, SessionOp::Unbind(uid.to_string()))
    }

    /// Sets one setting of a remote session (pomelo `BackendSession.push(key)` → `import`).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn import(&self, at: &SessionRef, key: &str, value: &Value) -> Result<(), RemoteError> {
        self.unit_call(
            at,
            SessionOp::Import(key.to_string(), value.to_string().into_bytes()),
        )
    }

    /// Replaces a remote session's settings (pomelo `pushAll` → `importAll`).
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn import_all(&self, at: &SessionRef, settings: &Settings) -> Result<(), RemoteError> {
        let json = Value::Object(settings.clone()).to_string().into_bytes();
        self.unit_call(at, SessionOp::ImportAll(json))
    }

    /// A remote session's export (pomelo `getBackendSessionBySid`); `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// [`RemoteError`] if the frontend was not reached or answered garbage.
    pub fn get_by_sid(&self, at: &SessionRef) -> Result<Option<RemoteSession>, RemoteError> {
        let (status, body) = self.session_call(at, SessionOp::Get)?;
        if status == frame::Status::NoSession as u8 {
            return Ok(None);
        }
        if status != frame::Status::Ok as u8 {
            return Err(status_error(status, &body));
        }
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| RemoteError::BadReply(e.to_string()))?;
        parse_export(&value, &at.frontend, at.epoch).map(Some)
    }

    /// Every session of `uid` on every frontend (pomelo `getBackendSessionsByUid`, across the
    /// cluster). Frontends that did not answer in time are left out and logged.
    ///
    /// # Errors
    ///
    /// `Backpressure`, `Invalid`, `Closed`.
    pub fn get_by_uid(&self, uid: &str) -> Result<Vec<RemoteSession>, ClusterError> {
        check_uid(uid)?;
        let ticket = self.submit(CallKind::GetUid {
            uid: uid.to_string(),
        })?;
        let (report, replies) = ticket.wait_for(None).unwrap_or_default();
        let mut out = Vec::new();
        for reply in replies {
            if reply.status != frame::Status::Ok as u8 {
                continue;
            }
            if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&reply.body) {
                for item in items {
                    if let Ok(s) = parse_export(&item, &reply.frontend, reply.epoch) {
                        out.push(s);
                    }
                }
            }
        }
        for (uid, fe, outcome) in &report.entries {
            if *outcome != Outcome::Delivered && !fe.is_empty() {
                log::warn!("cluster: get_by_uid({uid}): frontend {fe}: {outcome}");
            }
        }
        Ok(out)
    }

    /// The live frontends holding `uid` (pinus `statusService.getSidsByUid`, by frontend).
    ///
    /// # Errors
    ///
    /// `Backpressure`, `Invalid`, `Closed`, or `Connect` if Redis stayed down until the deadline.
    pub fn frontends_of(&self, uid: &str) -> Result<Vec<String>, ClusterError> {
        check_uid(uid)?;
        let report = self.locate(vec![uid.to_string()])?;
        Ok(report
            .entries
            .into_iter()
            .filter(|e| e.2 == Outcome::Delivered)
            .map(|e| e.1)
            .collect())
    }

    /// For each uid, whether any live frontend holds it (pinus `statusService.getStatusByUids`).
    ///
    /// # Errors
    ///
    /// As [`frontends_of`](Self::frontends_of).
    pub fn is_online<S: AsRef<str>>(&self, uids: &[S]) -> Result<Vec<bool>, ClusterError> {
        let list = check_uids(uids)?;
        let report = self.locate(list.clone())?;
        let online: std::collections::HashSet<&str> = report
            .entries
            .iter()
            .filter(|e| e.2 == Outcome::Delivered)
            .map(|e| e.0.as_str())
            .collect();
        Ok(list.iter().map(|u| online.contains(u.as_str())).collect())
    }

    fn locate(&self, uids: Vec<String>) -> Result<PushReport, ClusterError> {
        let ticket = self.submit(CallKind::Locate { uids })?;
        let report = PushTicket(ticket).wait();
        if report.count(Outcome::RedisDown) > 0 {
            return Err(ClusterError::Connect(
                "redis unreachable until the deadline".into(),
            ));
        }
        Ok(report)
    }

    fn session_call(&self, at: &SessionRef, op: SessionOp) -> Result<(u8, Vec<u8>), RemoteError> {
        let ticket = self.submit(CallKind::Session { at: at.clone(), op })?;
        let (report, mut replies) = ticket.wait_for(None).unwrap_or_default();
        match replies.pop() {
            Some(reply) => Ok((reply.status, reply.body)),
            None => {
                let outcome = report.entries.first().map_or(Outcome::Unconfirmed, |e| e.2);
                if outcome == Outcome::NotFound {
                    Err(RemoteError::NoSession)
                } else {
                    Err(RemoteError::Unreached(outcome))
                }
            }
        }
    }

    fn unit_call(&self, at: &SessionRef, op: SessionOp) -> Result<(), RemoteError> {
        let (status, body) = self.session_call(at, op)?;
        if status == frame::Status::Ok as u8 {
            Ok(())
        } else {
            Err(status_error(status, &body))
        }
    }

    /// Stops the bridge threads (pending calls resolve `Unconfirmed`, unsent ones `Cancelled`)
    /// and, on a frontend, removes its directory entries at once. Idempotent; other clones
    /// see [`ClusterError::Closed`] afterwards.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let threads: Vec<_> = std::mem::take(&mut *lock(&self.shared.threads));
        let me = std::thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// Encodes a push the way a frontend writes it (a pomelo DATA package carrying a PUSH message
/// with an uncompressed route), for [`Cluster::push_by_uids`] and friends. Encode once, push
/// to as many users as you like.
///
/// # Errors
///
/// If the route is longer than 255 bytes or the message exceeds one package.
pub fn encode_push(route: &str, body: &[u8]) -> Result<Bytes, gatehouse::protocol::EncodeError> {
    let mut out = Vec::with_capacity(route.len() + body.len() + 8);
    gatehouse::protocol::encode_push(gatehouse::protocol::Route::Name(route), body, &mut out)?;
    Ok(Bytes::from(out))
}

fn check_uid(uid: &str) -> Result<(), ClusterError> {
    if uid.is_empty() || uid.len() > u16::MAX as usize {
        return Err(ClusterError::Invalid(format!(
            "uid must be 1..=65535 bytes (got {})",
            uid.len()
        )));
    }
    Ok(())
}

fn check_uids<S: AsRef<str>>(uids: &[S]) -> Result<Vec<String>, ClusterError> {
    uids.iter()
        .map(|u| {
            check_uid(u.as_ref())?;
            Ok(u.as_ref().to_string())
        })
        .collect()
}

fn status_error(status: u8, body: &[u8]) -> RemoteError {
    let text = String::from_utf8_lossy(body).into_owned();
    match frame::Status::from_u8(status) {
        Some(frame::Status::PomeloError) => RemoteError::Pomelo(text),
        Some(frame::Status::NoSession) => RemoteError::NoSession,
        Some(frame::Status::Refused) if body == frame::RESTARTED_RETRANSMIT => {
            RemoteError::Unreached(Outcome::Unconfirmed)
        }
        Some(frame::Status::Refused) => RemoteError::Unreached(Outcome::Backpressure),
        _ => RemoteError::BadReply(format!("status {status}: {text}")),
    }
}

fn parse_export(value: &Value, frontend: &str, epoch: u64) -> Result<RemoteSession, RemoteError> {
    let bad = |what: &str| RemoteError::BadReply(format!("session export without {what}"));
    let id = value
        .get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("id"))?;
    let uid = value.get("uid").and_then(Value::as_str).map(str::to_string);
    let settings = match value.get("settings") {
        Some(Value::Object(map)) => map.clone(),
        _ => return Err(bad("settings")),
    };
    Ok(RemoteSession {
        session: SessionRef {
            frontend: frontend.to_string(),
            epoch,
            sid: Sid::from_raw(id),
        },
        uid,
        settings,
    })
}
