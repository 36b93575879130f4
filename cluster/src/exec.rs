//! A frontend executing one request from the bus against its local [`Sessions`].
//!
//! Every operation goes through the same thread-safe calls a handler uses: a push lands in the
//! owning I/O thread's inbox (the socket work happens there), a kick queues the KICK package and
//! then the close, exactly like a local kick. Nothing here blocks.
//!
//! Reply bodies (what the backend decodes in `node::resolve_reply`):
//! - push by uids / sids: `u32 sessions`, then one byte per target: [`DELIVERED`],
//!   [`NOT_FOUND`] or [`REFUSED`] (the session's inbox was full);
//! - broadcast: `u32 enqueued, u32 refused`;
//! - kick by uid: `u32 kicked`; kick by sid: `u8 kicked`;
//! - bind, unbind, import, import_all: empty on success, pomelo's error text otherwise;
//! - get by sid: the session's export (JSON object); get by uid: a JSON array of exports.

use crate::frame::{Op, Status};
use crate::node::FrontendPart;
use gatehouse::{Frame, Settings, Sid, UidSendError};
use serde_json::Value;

pub(crate) const DELIVERED: u8 = 0;
pub(crate) const NOT_FOUND: u8 = 1;
pub(crate) const REFUSED: u8 = 2;

/// Runs one request; returns the reply status and body.
pub(crate) fn execute(front: &FrontendPart, op: &Op<'_>) -> (Status, Vec<u8>) {
    let sessions = &front.sessions;
    match op {
        Op::PushUids { uids, package } => {
            let frame = Frame::new(package.to_vec());
            let mut body = vec![0; 4];
            let mut reached = 0u32;
            for uid in uids {
                body.push(match sessions.send_message_by_uid(uid, &frame) {
                    Ok(0) | Err(UidSendError::UnknownUid) => NOT_FOUND,
                    Ok(n) => {
                        reached += n as u32;
                        DELIVERED
                    }
                    Err(UidSendError::InboxFull { enqueued, .. }) => {
                        reached += enqueued as u32;
                        REFUSED
                    }
                    Err(_) => REFUSED,
                });
            }
            body[..4].copy_from_slice(&reached.to_le_bytes());
            (Status::Ok, body)
        }
        Op::PushSids { sids, package } => {
            let frame = Frame::new(package.to_vec());
            let mut body = vec![0; 4];
            let mut reached = 0u32;
            for &sid in sids {
                body.push(
                    match sessions.send_message(Sid::from_raw(sid), frame.clone()) {
                        Ok(()) => {
                            reached += 1;
                            DELIVERED
                        }
                        Err(e) if e.kind == gatehouse::SendErrorKind::UnknownSession => NOT_FOUND,
                        Err(_) => REFUSED,
                    },
                );
            }
            body[..4].copy_from_slice(&reached.to_le_bytes());
            (Status::Ok, body)
        }
        Op::Broadcast {
            bound_only,
            package,
        } => {
            let frame = Frame::new(package.to_vec());
            let (mut enqueued, mut refused) = (0u32, 0u32);
            if *bound_only {
                let mut sids = Vec::new();
                sessions.for_each_bound_session(|sid, _| sids.push(sid));
                for sid in sids {
                    match sessions.send_message(sid, frame.clone()) {
                        Ok(()) => enqueued += 1,
                        Err(e) if e.kind == gatehouse::SendErrorKind::UnknownSession => {}
                        Err(_) => refused += 1,
                    }
                }
            } else {
                match sessions.broadcast(&frame) {
                    Ok(n) => enqueued = n as u32,
                    Err(gatehouse::BroadcastError::InboxFull {
                        enqueued: e,
                        refused: r,
                    }) => {
                        enqueued = e as u32;
                        refused = r as u32;
                    }
                    Err(_) => {}
                }
            }
            let mut body = enqueued.to_le_bytes().to_vec();
            body.extend_from_slice(&refused.to_le_bytes());
            (Status::Ok, body)
        }
        Op::KickUid {
            uid,
            reason,
            below_gen: 0,
        } => {
            let kicked = sessions.kick(uid, *reason) as u32;
            (Status::Ok, kicked.to_le_bytes().to_vec())
        }
        Op::KickUid {
            uid,
            reason,
            below_gen,
        } => {
            // A single-session claim elsewhere: only sessions with an older claim go.
            let bound: Vec<Sid> = sessions.get_by_uid(uid).into_iter().flatten().collect();
            let victims = front.claims.lock().fence(uid, *below_gen, &bound);
            let kicked = victims
                .into_iter()
                .filter(|sid| sessions.kick_by_session_id(*sid, *reason))
                .count() as u32;
            (Status::Ok, kicked.to_le_bytes().to_vec())
        }
        Op::KickSid { sid, reason } => {
            let kicked = sessions.kick_by_session_id(Sid::from_raw(*sid), *reason);
            (Status::Ok, vec![u8::from(kicked)])
        }
        Op::Bind { sid, uid } => text_result(sessions.bind(Sid::from_raw(*sid), uid)),
        Op::Unbind { sid, uid } => text_result(sessions.unbind(Sid::from_raw(*sid), uid)),
        Op::Import { sid, key, value } => match serde_json::from_slice::<Value>(value) {
            Ok(value) => text_result(sessions.import(Sid::from_raw(*sid), *key, value)),
            Err(e) => (Status::Malformed, format!("import value: {e}").into_bytes()),
        },
        Op::ImportAll { sid, settings } => match serde_json::from_slice::<Settings>(settings) {
            Ok(settings) => text_result(sessions.import_all(Sid::from_raw(*sid), settings)),
            Err(e) => (
                Status::Malformed,
                format!("import_all settings: {e}").into_bytes(),
            ),
        },
        Op::GetSid { sid } => match sessions.snapshot(Sid::from_raw(*sid)) {
            Some(snapshot) => (Status::Ok, snapshot.export().to_string().into_bytes()),
            None => (Status::NoSession, Vec::new()),
        },
        Op::GetUid { uid } => {
            let exports: Vec<Value> = sessions
                .get_by_uid(uid)
                .into_iter()
                .flatten()
                .filter_map(|sid| sessions.snapshot(sid))
                .map(|s| s.export())
                .collect();
            (Status::Ok, Value::Array(exports).to_string().into_bytes())
        }
    }
}

/// `Ok` with an empty body, or pomelo's error text (the errors' `Display` is pomelo's wording).
fn text_result<E: std::fmt::Display>(result: Result<(), E>) -> (Status, Vec<u8>) {
    match result {
        Ok(()) => (Status::Ok, Vec::new()),
        Err(e) => (Status::PomeloError, e.to_string().into_bytes()),
    }
}
