//! `gatehouse-probe`: the hot paths, each in one `#[inline(never)]` function, for callgrind
//! instruction counting (`bin/callgrind.sh`). Built only with `--features probe`, so it links
//! no dev-dependency (criterion) and a plain `cargo build` never compiles it.
//!
//! ```sh
//! cargo build --release --locked --features probe --bin gatehouse-probe
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     --toggle-collect='*probe_send_uid_1' target/release/gatehouse-probe send_uid_1 100
//! ```
//!
//! `gatehouse-probe <case> <calls>` sets the case up (not counted), then calls the case's
//! measured function `calls` times; between calls it does the untimed housekeeping (draining
//! the inbox, refilling it). Each measured call performs `OPS_PER_CALL` operations of the case,
//! so Ir/op = (Ir(calls₂) − Ir(calls₁)) / ((calls₂ − calls₁) × ops-per-call); the fixed part
//! (toggle-in/out, the first call's cold misses) cancels. `gatehouse-probe list` prints every
//! case with its ops-per-call and unit.
//!
//! Cases (all with the public API, single thread, no sockets):
//! * `send_uid_1` — `send_message_by_uid`, 1,000 users bound, one session each; op = one call.
//! * `send_uid_3` — the same with three sessions per uid (3 pushes per call); op = one call.
//! * `send_sid` — `send_message` to one of 1,000 sessions; op = one call.
//! * `for_each_bound_10k` — one `for_each_bound_session` pass over 10,000 bound sessions;
//!   op = one session visited.
//! * `drain_write_32` — the reactor's outbound cycle: `Inbox::drain` of 32 queued `Send`s to
//!   32 connections, each frame appended to its connection's reused output buffer (looked up
//!   by sid in a hash map, as a transport outside the crate must), then every buffer "written"
//!   (handed to `black_box`) and cleared; op = one frame.
//! * `decode_request` — `decode_package` + `decode_message` of one REQUEST
//!   `connector.entryHandler.echo {"t":1234567}` package; op = one package.
//! * `bind_unbind` — `bind` then `unbind` of one session of 1,000 (fresh uid strings
//!   pre-built); op = one pair.
//! * `broadcast_10k` — `SessionService::broadcast` to 10,000 bound sessions (+100 unbound,
//!   skipped) on two shards; op = one session reached. The inboxes are drained between calls.
//! * `broadcast_each_send_10k` — the same broadcast the pre-`broadcast` way:
//!   `for_each_bound_session` + `send_message(sid, frame.clone())`; op = one session reached.

use gatehouse::protocol::{decode_message, decode_package, encode_data, Message, Route};
use gatehouse::{Command, Frame, SessionConfig, SessionService, Sid};
use std::collections::HashMap;
use std::hint::black_box;
use std::process::ExitCode;

const USERS: usize = 1_000;
/// Sends per measured call for the send cases (the inbox is drained between calls, uncounted).
const SEND_BATCH: usize = 256;
const VISIT_SESSIONS: usize = 10_000;
const DRAIN_FRAMES: usize = 32;
const DECODE_BATCH: usize = 64;
const BIND_BATCH: usize = 64;

/// (case, ops per measured call, what one op is)
const CASES: [(&str, usize, &str); 9] = [
    (
        "send_uid_1",
        SEND_BATCH,
        "send_message_by_uid, 1k users, 1 session/uid",
    ),
    (
        "send_uid_3",
        SEND_BATCH,
        "send_message_by_uid, 1k users, 3 sessions/uid",
    ),
    ("send_sid", SEND_BATCH, "send_message by sid, 1k sessions"),
    (
        "for_each_bound_10k",
        VISIT_SESSIONS,
        "for_each_bound_session, per session of 10k",
    ),
    (
        "drain_write_32",
        DRAIN_FRAMES,
        "inbox drain + copy to conn buffer + write, per frame (32/cycle)",
    ),
    (
        "decode_request",
        DECODE_BATCH,
        "decode_package + decode_message, per request package",
    ),
    ("bind_unbind", BIND_BATCH, "bind + unbind pair, 1k sessions"),
    (
        "broadcast_10k",
        VISIT_SESSIONS,
        "broadcast, per bound session of 10k (+100 unbound)",
    ),
    (
        "broadcast_each_send_10k",
        VISIT_SESSIONS,
        "for_each_bound_session + send_message, per session of 10k",
    ),
];

fn service(inbox: usize) -> SessionService {
    SessionService::new(SessionConfig::default().shards(2).inbox_capacity(inbox)).expect("config")
}

fn push_frame() -> Frame {
    let mut out = Vec::new();
    let msg = Message::push(Route::Name("onPush"), br#"{"i":1,"p":"xxxxxxxxxxxxxxxx"}"#);
    encode_data(&msg, &mut out).expect("encode");
    Frame::new(out)
}

fn drain_all(svc: &SessionService) -> usize {
    let mut n = 0;
    for shard in 0..svc.config().shard_count() {
        if let Some(inbox) = svc.inbox(shard) {
            n += inbox.drain(|cmd| drop(black_box(cmd)));
        }
    }
    n
}

// === measured functions (the only code callgrind counts) =====================================

#[inline(never)]
fn probe_send_uid_1(svc: &SessionService, uids: &[String], cursor: usize, frame: &Frame) -> usize {
    let mut sent = 0;
    for i in 0..SEND_BATCH {
        let uid = &uids[(cursor + i) % uids.len()];
        sent += svc.send_message_by_uid(black_box(uid), frame).unwrap_or(0);
    }
    sent
}

#[inline(never)]
fn probe_send_uid_3(svc: &SessionService, uids: &[String], cursor: usize, frame: &Frame) -> usize {
    let mut sent = 0;
    for i in 0..SEND_BATCH {
        let uid = &uids[(cursor + i) % uids.len()];
        sent += svc.send_message_by_uid(black_box(uid), frame).unwrap_or(0);
    }
    sent
}

#[inline(never)]
fn probe_send_sid(svc: &SessionService, sids: &[Sid], cursor: usize, frame: &Frame) -> usize {
    let mut sent = 0;
    for i in 0..SEND_BATCH {
        let sid = sids[(cursor + i) % sids.len()];
        sent += usize::from(svc.send_message(black_box(sid), frame.clone()).is_ok());
    }
    sent
}

#[inline(never)]
fn probe_for_each_bound(svc: &SessionService) -> u64 {
    let mut acc = 0u64;
    svc.for_each_bound_session(|sid, uid| {
        acc = acc.wrapping_add(black_box(sid).as_u64_for_probe()) ^ uid.len() as u64;
    });
    acc
}

#[inline(never)]
fn probe_broadcast(svc: &SessionService, frame: &Frame) -> usize {
    svc.broadcast(black_box(frame)).unwrap_or(0)
}

#[inline(never)]
fn probe_broadcast_each_send(svc: &SessionService, frame: &Frame) -> usize {
    let mut sent = 0;
    svc.for_each_bound_session(|sid, _| {
        sent += usize::from(svc.send_message(sid, frame.clone()).is_ok());
    });
    sent
}

/// 10,000 sessions bound to distinct uids and 100 unbound ones, on two shards.
fn bound_10k(inbox: usize) -> Result<SessionService, String> {
    let svc = service(inbox);
    for i in 0..VISIT_SESSIONS {
        let sid = svc.create(None).map_err(|e| e.to_string())?;
        svc.bind(sid, &format!("u{i}")).map_err(|e| e.to_string())?;
    }
    // a few unbound ones, as a real frontend has (skipped by the visit)
    for _ in 0..100 {
        svc.create(None).map_err(|e| e.to_string())?;
    }
    Ok(svc)
}

struct Conn {
    out: Vec<u8>,
}

#[inline(never)]
fn probe_drain_write(
    svc: &SessionService,
    shard: usize,
    conns: &mut [Conn],
    by_sid: &HashMap<Sid, usize>,
) -> usize {
    let inbox = svc.inbox(shard).expect("shard");
    let drained = inbox.drain(|cmd| {
        if let Command::Send { sid, frame } = cmd {
            match by_sid.get(&sid) {
                Some(&i) => conns[i].out.extend_from_slice(frame.as_bytes()),
                None => inbox.record_stale(1),
            }
        }
    });
    // "write": one write per connection with output, everything accepted.
    for conn in conns.iter_mut() {
        if !conn.out.is_empty() {
            black_box(conn.out.as_slice());
            conn.out.clear();
        }
    }
    drained
}

#[inline(never)]
fn probe_decode(packages: &[u8], one: usize) -> usize {
    let mut acc = 0;
    let mut at = 0;
    for _ in 0..DECODE_BATCH {
        let (pkg, n) = decode_package(black_box(&packages[at..at + one]), 1 << 16)
            .expect("package")
            .expect("whole");
        let msg = decode_message(pkg.body).expect("message");
        acc += msg.id as usize + msg.body.len();
        if let Route::Name(r) = msg.route {
            acc += r.len();
        }
        at += n;
    }
    acc
}

#[inline(never)]
fn probe_bind_unbind(svc: &SessionService, sids: &[Sid], uids: &[String], cursor: usize) -> usize {
    let mut ok = 0;
    for i in 0..BIND_BATCH {
        let k = (cursor + i) % sids.len();
        ok += usize::from(svc.bind(black_box(sids[k]), &uids[k]).is_ok());
        ok += usize::from(svc.unbind(sids[k], &uids[k]).is_ok());
    }
    ok
}

// Sid has no public integer accessor on every revision; its Debug/Display are not for hot
// loops, so fold it through its Hash instead.
trait SidBits {
    fn as_u64_for_probe(self) -> u64;
}
impl SidBits for Sid {
    fn as_u64_for_probe(self) -> u64 {
        use std::hash::{Hash, Hasher};
        struct Fold(u64);
        impl Hasher for Fold {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for &b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(b);
                }
            }
            fn write_u64(&mut self, n: u64) {
                self.0 ^= n;
            }
        }
        let mut h = Fold(0);
        self.hash(&mut h);
        h.finish()
    }
}

// === driver ===================================================================================

fn run(case: &str, calls: usize) -> Result<u64, String> {
    let frame = push_frame();
    let mut check = 0u64;
    match case {
        "send_uid_1" | "send_uid_3" => {
            let per = if case == "send_uid_1" { 1 } else { 3 };
            let svc = service(SEND_BATCH * per * 2);
            let uids: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
            for uid in &uids {
                for _ in 0..per {
                    let sid = svc.create(None).map_err(|e| e.to_string())?;
                    svc.bind(sid, uid).map_err(|e| e.to_string())?;
                }
            }
            for c in 0..calls {
                let cursor = (c * SEND_BATCH) % USERS;
                let sent = if per == 1 {
                    probe_send_uid_1(&svc, &uids, cursor, &frame)
                } else {
                    probe_send_uid_3(&svc, &uids, cursor, &frame)
                };
                if sent != SEND_BATCH * per {
                    return Err(format!(
                        "{case}: sent {sent}, expected {}",
                        SEND_BATCH * per
                    ));
                }
                check += drain_all(&svc) as u64;
            }
        }
        "send_sid" => {
            let svc = service(SEND_BATCH * 2);
            let sids: Vec<Sid> = (0..USERS)
                .map(|_| svc.create(None).expect("create"))
                .collect();
            for c in 0..calls {
                let sent = probe_send_sid(&svc, &sids, (c * SEND_BATCH) % USERS, &frame);
                if sent != SEND_BATCH {
                    return Err(format!("{case}: sent {sent}"));
                }
                check += drain_all(&svc) as u64;
            }
        }
        "for_each_bound_10k" => {
            let svc = bound_10k(1024)?;
            let mut n = 0;
            svc.for_each_bound_session(|_, _| n += 1);
            if n != VISIT_SESSIONS {
                return Err(format!("{case}: visited {n}"));
            }
            for _ in 0..calls {
                check = check.wrapping_add(probe_for_each_bound(&svc));
            }
        }
        "broadcast_10k" | "broadcast_each_send_10k" => {
            // 5,000 sessions per shard per call, drained (uncounted) between calls.
            let svc = bound_10k(8192)?;
            for _ in 0..calls {
                let sent = if case == "broadcast_10k" {
                    probe_broadcast(&svc, &frame)
                } else {
                    probe_broadcast_each_send(&svc, &frame)
                };
                if sent != VISIT_SESSIONS {
                    return Err(format!("{case}: sent {sent}, expected {VISIT_SESSIONS}"));
                }
                check += drain_all(&svc) as u64;
            }
        }
        "drain_write_32" => {
            let svc = service(4096);
            let shard = 0;
            let mut sids = Vec::new();
            while sids.len() < DRAIN_FRAMES {
                let sid = svc.create_in(shard, None).map_err(|e| e.to_string())?;
                sids.push(sid);
            }
            let mut conns: Vec<Conn> = (0..DRAIN_FRAMES)
                .map(|_| Conn {
                    out: Vec::with_capacity(4096),
                })
                .collect();
            let by_sid: HashMap<Sid, usize> =
                sids.iter().enumerate().map(|(i, &s)| (s, i)).collect();
            for _ in 0..calls {
                for &sid in &sids {
                    svc.send_message(sid, frame.clone())
                        .map_err(|e| e.to_string())?;
                }
                let n = probe_drain_write(&svc, shard, &mut conns, &by_sid);
                if n != DRAIN_FRAMES {
                    return Err(format!("{case}: drained {n}"));
                }
                check += n as u64;
            }
            if svc.inbox(shard).map_or(0, |i| i.stale()) != 0 {
                return Err(format!("{case}: stale frames"));
            }
        }
        "decode_request" => {
            let msg = Message::request(
                1234,
                Route::Name("connector.entryHandler.echo"),
                br#"{"t":1234567}"#,
            );
            let mut one = Vec::new();
            encode_data(&msg, &mut one).map_err(|e| e.to_string())?;
            let packages = one.repeat(DECODE_BATCH);
            for _ in 0..calls {
                check += probe_decode(&packages, one.len()) as u64;
            }
        }
        "bind_unbind" => {
            let svc = service(1024);
            let sids: Vec<Sid> = (0..USERS)
                .map(|_| svc.create(None).expect("create"))
                .collect();
            let uids: Vec<String> = (0..USERS).map(|i| format!("user-{i}")).collect();
            for c in 0..calls {
                let ok = probe_bind_unbind(&svc, &sids, &uids, (c * BIND_BATCH) % USERS);
                if ok != 2 * BIND_BATCH {
                    return Err(format!(
                        "{case}: {ok} of {} bind/unbind succeeded",
                        2 * BIND_BATCH
                    ));
                }
                check += ok as u64;
            }
        }
        _ => return Err(format!("unknown case {case:?} (try `list`)")),
    }
    Ok(check)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd] if cmd == "list" => {
            for (name, ops, what) in CASES {
                println!("{name}\t{ops}\t{what}");
            }
            ExitCode::SUCCESS
        }
        [case, calls] => {
            let Ok(calls) = calls.parse::<usize>() else {
                eprintln!("calls must be a number");
                return ExitCode::from(2);
            };
            match run(case, calls) {
                Ok(check) => {
                    println!("{case} calls={calls} check={check}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("gatehouse-probe: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: gatehouse-probe list | gatehouse-probe <case> <calls>");
            ExitCode::from(2)
        }
    }
}
