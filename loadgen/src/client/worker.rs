//! A client thread's event loop: connections in a slab, commands in, reports out.

use super::conn::{connect_from, Conn, CtlReply};
use super::package::on_package;
use super::sent::SendTimes;
use super::task::{EchoTask, PushTask, SetupTask, Shared, Task};
use super::EchoCounts;
use super::{
    ns_since, would_block, Cmd, Envelope, Phase, Report, Role, Status, MAX_READS, MAX_SAMPLES,
    READ_CHUNK, SWEEP, WAKER,
};
use crate::latency::Latency;
use crate::wire::HANDSHAKE_BODY;
use gatehouse::protocol::{
    decode_package, encode_package, PackageType, HEARTBEAT_PACKAGE, MAX_BODY_LEN,
};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One client thread: its poll, its connections, the task of the current phase.
pub(super) struct Worker {
    index: usize,
    epoch: Instant,
    poll: Poll,
    conns: Slab<Conn>,
    control: Option<usize>,
    cmds: mpsc::Receiver<(u64, Cmd)>,
    reports: mpsc::Sender<Envelope>,
    /// The phase of the command being handled, and of the running task.
    seq: u64,
    task_seq: u64,
    task: Task,
    again: Vec<usize>,
    scratch: Vec<u8>,
    unexpected_closes: u64,
    stray_pushes: u64,
    heartbeats_in: u64,
    heartbeat_seen: Option<u64>,
    notes: BTreeMap<String, u64>,
    next_sweep: Instant,
}

impl Worker {
    /// A thread's state before it runs: no connections, no task.
    pub(super) fn new(
        index: usize,
        epoch: Instant,
        poll: Poll,
        cmds: mpsc::Receiver<(u64, Cmd)>,
        reports: mpsc::Sender<Envelope>,
    ) -> Worker {
        Worker {
            index,
            epoch,
            poll,
            conns: Slab::new(),
            control: None,
            cmds,
            reports,
            seq: 0,
            task_seq: 0,
            task: Task::Idle,
            again: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            unexpected_closes: 0,
            stray_pushes: 0,
            heartbeats_in: 0,
            heartbeat_seen: None,
            notes: BTreeMap::new(),
            next_sweep: Instant::now() + SWEEP,
        }
    }

    /// The event loop, until [`Cmd::Stop`] or the pool is gone.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.note(format!("poll failed: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            for event in events.iter() {
                if event.token() == WAKER {
                    continue;
                }
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_error();
                self.on_event(event.token().0, readable, writable);
            }
            for key in std::mem::take(&mut self.again) {
                self.on_event(key, true, false);
            }
            loop {
                match self.cmds.try_recv() {
                    Ok((_, Cmd::Stop)) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Ok((seq, cmd)) => {
                        self.seq = seq;
                        self.command(cmd);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            self.tick(now);
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + SWEEP;
            }
        }
    }

    fn timeout(&self, now: Instant) -> Duration {
        if !self.again.is_empty() {
            return Duration::ZERO;
        }
        let mut until = self.next_sweep.min(now + Duration::from_millis(100));
        match &self.task {
            Task::Idle => {}
            Task::Setup(s) => until = until.min(s.deadline),
            Task::Pushes(p) => until = until.min(p.deadline),
            Task::Echo(e) => {
                until = until.min(if now < e.end { e.end } else { e.drain_until });
                if let Some((_, next)) = e.open {
                    until = until.min(next);
                }
            }
        }
        until.saturating_duration_since(now)
    }

    fn note(&mut self, what: String) {
        *self.notes.entry(what).or_insert(0) += 1;
    }

    fn status(&self) -> Status {
        Status {
            unexpected_closes: self.unexpected_closes,
            heartbeats_in: self.heartbeats_in,
            stray_pushes: self.stray_pushes,
            heartbeat: self.heartbeat_seen,
            notes: self.notes.clone(),
        }
    }

    fn report(&self, seq: u64, report: Report) {
        let _ = self.reports.send(Envelope {
            worker: self.index,
            seq,
            report,
            status: self.status(),
        });
    }

    fn ready_clients(&self) -> impl Iterator<Item = usize> + '_ {
        self.conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Ready && matches!(c.role, Role::Client(_)))
            .map(|(k, _)| k)
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Setup {
                addr,
                roles,
                sources,
                max_inflight,
                deadline,
            } => {
                self.task_seq = self.seq;
                self.task = Task::Setup(SetupTask {
                    addr,
                    queue: roles.into(),
                    sources,
                    inflight: 0,
                    max_inflight: max_inflight.max(1),
                    deadline,
                    ok: 0,
                    failed: 0,
                    first_ns: None,
                    last_ns: 0,
                    latencies: Latency::new(),
                });
            }
            Cmd::ArmPushes {
                per_conn,
                rounds,
                deadline,
            } => {
                let ready = self.ready_clients().count() as u64;
                let tracked = rounds.min(1 << 20) as usize;
                self.task = Task::Pushes(PushTask {
                    target: per_conn * ready,
                    got: 0,
                    bad: 0,
                    deadline,
                    arrivals: Vec::with_capacity(((per_conn * ready) as usize).min(MAX_SAMPLES)),
                    round_first: vec![u64::MAX; tracked],
                    round_last: vec![0; tracked],
                });
                self.task_seq = self.seq;
                self.report(self.seq, Report::Armed);
            }
            Cmd::Request { route, body, reply } => {
                let result = match self.control.and_then(|k| self.conns.get_mut(k)) {
                    Some(conn) if conn.phase == Phase::Ready => {
                        conn.request(route, &body).map(|id| (id, conn))
                    }
                    _ => Err("no control connection".into()),
                };
                match result {
                    Ok((id, conn)) => {
                        let sent_ns = ns_since(self.epoch, Instant::now());
                        conn.ctl.push_back((id, sent_ns, reply));
                        if let Some(key) = self.control {
                            self.flush_or_close(key);
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(CtlReply {
                            sent_ns: 0,
                            result: Err(e),
                        });
                    }
                }
            }
            Cmd::Echo {
                conns,
                open,
                window,
                end,
                drain,
            } => {
                let keys: Vec<usize> = self.ready_clients().take(conns).collect();
                let mut task = EchoTask {
                    conns: keys.clone(),
                    open,
                    rr: 0,
                    end,
                    drain_until: end + drain,
                    inflight: 0,
                    counts: EchoCounts::default(),
                };
                if open.is_none() {
                    for key in keys {
                        let now_ns = ns_since(self.epoch, Instant::now());
                        let Some(conn) = self.conns.get_mut(key) else {
                            continue;
                        };
                        let mut sent = 0;
                        for _ in 0..window {
                            if conn.echo(now_ns, None).is_ok() {
                                sent += 1;
                            }
                        }
                        task.counts.sent += sent;
                        task.inflight += sent as usize;
                        self.flush_or_close(key);
                    }
                }
                self.task_seq = self.seq;
                self.task = Task::Echo(task);
            }
            Cmd::Status => self.report(self.seq, Report::Status),
            Cmd::Stop => {}
        }
    }

    fn connect(
        &mut self,
        addr: SocketAddr,
        role: Role,
        source: Option<IpAddr>,
    ) -> Result<(), String> {
        let mut stream = match source {
            None => TcpStream::connect(addr),
            Some(ip) => connect_from(ip, addr),
        }
        .map_err(|e| {
            if e.raw_os_error() == Some(24) {
                format!("connect: {e} (raise the limit: ulimit -n)")
            } else {
                format!("connect: {e}")
            }
        })?;
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("register: {e}"))?;
        let mut wbuf = Vec::with_capacity(128);
        encode_package(PackageType::Handshake, HANDSHAKE_BODY, &mut wbuf)
            .map_err(|e| e.to_string())?;
        entry.insert(Conn {
            stream,
            role,
            phase: Phase::Connecting,
            started: Instant::now(),
            rbuf: Vec::new(),
            wbuf,
            wpos: 0,
            next_id: 1,
            bind_id: 0,
            heartbeat: None,
            next_hb: None,
            outstanding: 0,
            sent: SendTimes::default(),
            ctl: VecDeque::new(),
        });
        Ok(())
    }

    fn on_event(&mut self, key: usize, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Connecting {
            let state = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                },
            };
            match state {
                Ok(true) => conn.phase = Phase::Handshaking,
                Ok(false) => return,
                Err(e) => {
                    self.close(key, format!("connect: {e}"));
                    return;
                }
            }
            self.flush_or_close(key);
        } else if writable {
            self.flush_or_close(key);
        }
        if readable {
            self.read(key);
        }
    }

    /// Writes what is queued; on error, closes the connection. Returns whether it is still open.
    fn flush_or_close(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        if conn.phase == Phase::Connecting {
            return true;
        }
        while conn.wpos < conn.wbuf.len() {
            match conn.stream.write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => {
                    self.close(key, "write: connection closed".into());
                    return false;
                }
                Ok(n) => conn.wpos += n,
                Err(e) if would_block(&e) => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, format!("write: {e}"));
                    return false;
                }
            }
        }
        conn.wbuf.clear();
        conn.wpos = 0;
        true
    }

    fn read(&mut self, key: usize) {
        for _ in 0..MAX_READS {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    self.close(key, "closed by the server".into());
                    return;
                }
                Ok(n) => {
                    conn.rbuf.extend_from_slice(&self.scratch[..n]);
                    if let Err(e) = self.process(key, Instant::now()) {
                        self.close(key, e);
                        return;
                    }
                }
                Err(e) if would_block(&e) => {
                    self.flush_or_close(key);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(key, format!("read: {e}"));
                    return;
                }
            }
        }
        // More may be waiting: come back next turn (edge-triggered, so no new event).
        if self.flush_or_close(key) {
            self.again.push(key);
        }
    }

    fn process(&mut self, key: usize, now: Instant) -> Result<(), String> {
        let now_ns = ns_since(self.epoch, now);
        let Worker {
            conns,
            task,
            control,
            stray_pushes,
            heartbeats_in,
            heartbeat_seen,
            ..
        } = self;
        let conn = &mut conns[key];
        let rbuf = std::mem::take(&mut conn.rbuf);
        let mut shared = Shared {
            task,
            control,
            stray_pushes,
            heartbeats_in,
            heartbeat_seen,
        };
        let mut pos = 0;
        let mut result = Ok(());
        while pos < rbuf.len() {
            match decode_package(&rbuf[pos..], MAX_BODY_LEN) {
                Ok(Some((pkg, used))) => {
                    pos += used;
                    if let Err(e) =
                        on_package(conn, key, &mut shared, pkg.kind, pkg.body, now, now_ns)
                    {
                        result = Err(e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    result = Err(format!("undecodable package from the server: {e}"));
                    break;
                }
            }
        }
        let mut rbuf = rbuf;
        rbuf.drain(..pos);
        conn.rbuf = rbuf;
        result
    }

    fn close(&mut self, key: usize, why: String) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        for (_, sent_ns, reply) in conn.ctl.drain(..) {
            let _ = reply.send(CtlReply {
                sent_ns,
                result: Err(why.clone()),
            });
        }
        if self.control == Some(key) {
            self.control = None;
        }
        if let Task::Echo(e) = &mut self.task {
            e.inflight = e.inflight.saturating_sub(conn.outstanding);
        }
        if conn.phase == Phase::Ready {
            self.unexpected_closes += 1;
            self.note(format!("connection lost: {why}"));
        } else {
            if let Task::Setup(s) = &mut self.task {
                s.failed += 1;
                s.inflight = s.inflight.saturating_sub(1);
            }
            self.note(format!("setup ({:?}): {why}", conn.phase));
        }
    }

    fn tick(&mut self, now: Instant) {
        let mut task = std::mem::replace(&mut self.task, Task::Idle);
        let done = match &mut task {
            Task::Idle => false,
            Task::Setup(s) => self.tick_setup(s, now),
            Task::Pushes(p) => p.got >= p.target || now >= p.deadline,
            Task::Echo(e) => self.tick_echo(e, now),
        };
        if !done {
            self.task = task;
            return;
        }
        self.task = Task::Idle;
        let report = match task {
            Task::Idle => return,
            Task::Setup(s) => Report::Setup {
                ok: s.ok,
                failed: s.failed,
                first_ns: s.first_ns,
                last_ns: s.last_ns,
                latencies: s.latencies,
            },
            Task::Pushes(p) => Report::Pushes {
                target: p.target,
                got: p.got,
                bad: p.bad,
                arrivals: p.arrivals,
                round_first: p.round_first,
                round_last: p.round_last,
            },
            Task::Echo(e) => Report::Echo(e.counts),
        };
        self.report(self.task_seq, report);
    }

    fn tick_setup(&mut self, s: &mut SetupTask, now: Instant) -> bool {
        while s.inflight < s.max_inflight && now < s.deadline {
            let Some(role) = s.queue.pop_front() else {
                break;
            };
            if s.first_ns.is_none() {
                s.first_ns = Some(ns_since(self.epoch, now));
            }
            let source = match role {
                Role::Client(i) if !s.sources.is_empty() => Some(s.sources[i % s.sources.len()]),
                _ => None,
            };
            match self.connect(s.addr, role, source) {
                Ok(()) => s.inflight += 1,
                Err(e) => {
                    s.failed += 1;
                    self.note(format!("setup: {e}"));
                }
            }
        }
        if now >= s.deadline {
            let stuck: Vec<(usize, Phase)> = self
                .conns
                .iter()
                .filter(|(_, c)| c.phase != Phase::Ready)
                .map(|(k, c)| (k, c.phase))
                .collect();
            for (key, phase) in stuck {
                if let Some(mut conn) = self.conns.try_remove(key) {
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
                self.note(format!("setup: timed out in phase {phase:?}"));
                s.failed += 1;
            }
            let left = s.queue.len();
            if left > 0 {
                s.failed += left;
                *self
                    .notes
                    .entry("setup: not started before the deadline".into())
                    .or_insert(0) += left as u64;
                s.queue.clear();
            }
            s.inflight = 0;
            return true;
        }
        s.queue.is_empty() && s.inflight == 0
    }

    /// The open loop's sending: every request whose intended time has come goes out now,
    /// stamped with that intended time (not the actual one), so a late send, a full socket or
    /// a stalled thread counts against the round trip instead of hiding it (no coordinated
    /// omission). Requests intended before the end are all sent, late ones too.
    fn tick_echo(&mut self, e: &mut EchoTask, now: Instant) -> bool {
        if let Some((interval, mut next)) = e.open {
            let mut burst = 0;
            while next <= now && next < e.end && burst < 1000 && !e.conns.is_empty() {
                let key = e.conns[e.rr % e.conns.len()];
                e.rr += 1;
                burst += 1;
                let intended = next;
                let intended_ns = ns_since(self.epoch, intended);
                next += interval;
                // A lost connection is reported by the scenario; its turns are skipped.
                let Some(conn) = self.conns.get_mut(key) else {
                    continue;
                };
                let actual = Instant::now();
                let late = actual.saturating_duration_since(intended);
                if conn
                    .echo(intended_ns, Some(ns_since(self.epoch, actual)))
                    .is_ok()
                {
                    e.counts.lag.record_ns(late.as_nanos() as u64);
                    e.counts.sent += 1;
                    e.inflight += 1;
                }
                if !self.flush_or_close(key) {
                    e.inflight = e.inflight.saturating_sub(1);
                }
            }
            e.open = Some((interval, next));
        }
        now >= e.end && (e.inflight == 0 || now >= e.drain_until)
    }

    /// Sends due heartbeats.
    fn sweep(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.next_hb.is_some_and(|t| t <= now))
            .map(|(k, _)| k)
            .collect();
        for key in due {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.wbuf.extend_from_slice(&HEARTBEAT_PACKAGE);
                conn.next_hb = conn.heartbeat.map(|h| now + h);
                self.flush_or_close(key);
            }
        }
    }
}
