//! What each package from the server does to a connection and to the thread's task.

use super::conn::{Conn, CtlReply};
use super::task::{Shared, Task};
use super::{Phase, Role, MAX_SAMPLES};
use crate::wire::{code_200, find_u64, lossy, ENTRY};
use gatehouse::protocol::{decode_message, MessageType, PackageType, HANDSHAKE_ACK_PACKAGE};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Counts a finished (or failed) connection setup into the setup task.
fn setup_finished(task: &mut Task, conn: &Conn, now: Instant, now_ns: u64) {
    if let Task::Setup(s) = task {
        s.ok += 1;
        s.inflight = s.inflight.saturating_sub(1);
        s.last_ns = s.last_ns.max(now_ns);
        s.latencies
            .record_ns(now.saturating_duration_since(conn.started).as_nanos() as u64);
    }
}

/// After the handshake (and the server's first HEARTBEAT, when heartbeats are on): bind, or be
/// ready (control).
fn handshake_complete(
    conn: &mut Conn,
    key: usize,
    shared: &mut Shared<'_>,
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    match conn.role {
        Role::Client(i) => {
            let body = format!("{{\"uid\":\"u{i}\"}}");
            conn.bind_id = conn.request(ENTRY, body.as_bytes())?;
            conn.phase = Phase::Binding;
        }
        Role::Control => {
            conn.phase = Phase::Ready;
            *shared.control = Some(key);
            setup_finished(shared.task, conn, now, now_ns);
        }
    }
    Ok(())
}

/// Handles one package from the server on connection `key`.
pub(super) fn on_package(
    conn: &mut Conn,
    key: usize,
    shared: &mut Shared<'_>,
    kind: PackageType,
    body: &[u8],
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    match kind {
        PackageType::Handshake => {
            if conn.phase != Phase::Handshaking {
                return Err(format!(
                    "unexpected HANDSHAKE package in phase {:?}",
                    conn.phase
                ));
            }
            let reply: Value = serde_json::from_slice(body)
                .map_err(|e| format!("handshake reply is not JSON ({e}): {}", lossy(body)))?;
            if reply["code"] != 200 {
                return Err(format!("handshake refused: {}", lossy(body)));
            }
            let secs = reply["sys"]["heartbeat"].as_u64().filter(|&h| h > 0);
            *shared.heartbeat_seen = secs;
            conn.heartbeat = secs.map(Duration::from_secs);
            conn.wbuf.extend_from_slice(&HANDSHAKE_ACK_PACKAGE);
            if conn.heartbeat.is_some() {
                conn.phase = Phase::WaitHeartbeat;
            } else {
                handshake_complete(conn, key, shared, now, now_ns)?;
            }
        }
        PackageType::Heartbeat => match conn.phase {
            Phase::WaitHeartbeat => {
                conn.next_hb = conn.heartbeat.map(|h| now + h);
                handshake_complete(conn, key, shared, now, now_ns)?;
            }
            Phase::Connecting | Phase::Handshaking => {
                return Err("HEARTBEAT before the handshake".into());
            }
            // The echo of ours (or the server's own): counted; the sweep keeps time.
            Phase::Binding | Phase::Ready => *shared.heartbeats_in += 1,
        },
        PackageType::Data => {
            let msg = decode_message(body)
                .map_err(|e| format!("undecodable message from the server: {e}"))?;
            match msg.kind {
                MessageType::Response => on_response(conn, shared, msg.id, msg.body, now, now_ns)?,
                MessageType::Push => on_push(shared, msg.body, now_ns),
                other => return Err(format!("unexpected {other:?} message from the server")),
            }
        }
        PackageType::Kick => return Err(format!("kicked by the server: {}", lossy(body))),
        PackageType::HandshakeAck => return Err("unexpected HANDSHAKE_ACK from the server".into()),
    }
    Ok(())
}

/// A response: the bind, a control request's, or an echo (timed; in the closed loop, the
/// next request goes out at once).
fn on_response(
    conn: &mut Conn,
    shared: &mut Shared<'_>,
    id: u32,
    body: &[u8],
    now: Instant,
    now_ns: u64,
) -> Result<(), String> {
    if conn.phase == Phase::Binding && id == conn.bind_id {
        if !code_200(body) {
            return Err(format!("bind refused: {}", lossy(body)));
        }
        conn.phase = Phase::Ready;
        setup_finished(shared.task, conn, now, now_ns);
        return Ok(());
    }
    if let Some(i) = conn.ctl.iter().position(|(cid, _, _)| *cid == id) {
        if let Some((_, sent_ns, reply)) = conn.ctl.remove(i) {
            let _ = reply.send(CtlReply {
                sent_ns,
                result: Ok(body.to_vec()),
            });
        }
        return Ok(());
    }
    // An echo response.
    let counted = conn.outstanding > 0;
    let sent_ns = conn.sent.take(id);
    conn.outstanding = conn.outstanding.saturating_sub(1);
    let Task::Echo(e) = shared.task else {
        return Ok(()); // late, after its scenario ended
    };
    if counted {
        e.inflight = e.inflight.saturating_sub(1);
    }
    match find_u64(body, b"\"t\":").filter(|_| code_200(body)) {
        Some(t) => {
            e.counts.ok += 1;
            if now < e.end {
                e.counts.ok_in_window += 1;
            }
            // From the time the request carries: its intended send time in the open loop.
            e.counts.rtt.record_ns(now_ns.saturating_sub(t));
            // Open loop: also from when it actually left, when its id is known.
            if e.open.is_some() {
                match sent_ns {
                    Some(s) => e.counts.rtt_sent.record_ns(now_ns.saturating_sub(s)),
                    None => e.counts.unknown_ids += 1,
                }
            }
        }
        None => e.counts.bad += 1,
    }
    if e.open.is_none() && now < e.end && counted {
        conn.echo(now_ns, None)?;
        e.counts.sent += 1;
        e.inflight += 1;
    }
    Ok(())
}

/// A push: counted into the armed blast, with its arrival time and round.
fn on_push(shared: &mut Shared<'_>, body: &[u8], now_ns: u64) {
    let Task::Pushes(p) = shared.task else {
        *shared.stray_pushes += 1;
        return;
    };
    p.got += 1;
    if p.arrivals.len() < MAX_SAMPLES {
        p.arrivals.push(now_ns);
    }
    match find_u64(&body[..body.len().min(64)], b"\"i\":") {
        Some(i) => {
            if let (Some(first), Some(last)) = (
                p.round_first.get_mut(i as usize),
                p.round_last.get_mut(i as usize),
            ) {
                *first = (*first).min(now_ns);
                *last = (*last).max(now_ns);
            }
        }
        None => p.bad += 1,
    }
}

// === the pool of client threads, driven from the main thread =================================
