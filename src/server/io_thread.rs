//! One I/O thread: a `mio::Poll`, the connections of one session shard, and its inbox.

use crate::conn_table::ConnTable;
use crate::events::CloseReason;
use crate::frame::Frame;
use crate::id::Sid;
use crate::server::conn::{more, ConnCore, ConnEnv, ConnLogs, LogKind, Pushed};
use crate::server::log_limit::LogLimit;
#[cfg(feature = "tls")]
use crate::server::tls::{front, ConnTls, Front, TlsSession, TlsSettings, PLAINTEXT_CHUNK};
use crate::server::{Shared, TICK};
use crate::sync::Ordering;
use crate::transport::{apply_commands, CommandTarget};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

pub(crate) const LISTENER: Token = Token(0);
pub(crate) const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;
const READ_BUF: usize = 64 * 1024;
/// Reads per connection per loop turn (4 × 64 KiB): a client that sends as fast as the thread
/// reads must not keep it from its other connections, its inbox and its timers.
const READS_PER_TURN: usize = 4;
/// Inbox commands applied per loop turn: a producer that keeps the inbox full (a broadcast
/// loop) must not keep the thread from reading, writing and checking timers. One default
/// inbox's worth (65,536 frames, a few milliseconds to apply): a turn's frames for one
/// connection go out in one write, so a small bound costs a write syscall per few frames (4,096
/// measured 2.5× fewer delivered pushes/s in the loadgen blast than an unbounded drain).
const COMMANDS_PER_TURN: usize = 1 << 16;

struct Conn {
    core: ConnCore,
    stream: TcpStream,
    remote: SocketAddr,
    /// WRITABLE interest is registered (only while output is pending).
    writable: bool,
    /// Queued in `IoThread::dirty` for this turn's flush.
    dirty: bool,
    /// Write side shut down after the last bytes went out; reading until EOF or the linger.
    draining: bool,
    /// The TLS layer beneath `core` (feature `tls`).
    #[cfg(feature = "tls")]
    tls: ConnTls,
}

impl Conn {
    /// Bytes wait to be written: plaintext in `core` or, with TLS, ciphertext in the session.
    fn has_output(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.wants_write() {
            return true;
        }
        self.core.has_output()
    }
}

/// What feeding a connection the bytes it read ended in, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fed {
    Open,
    /// The client ended its side cleanly inside TLS (`close_notify`): as end of stream.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    PeerClosed,
}

/// Hands the bytes read from the socket to the connection: to its protocol state machine, or
/// through its TLS layer first (see `src/server/tls/`).
fn feed(
    conn: &mut Conn,
    data: &[u8],
    now: Instant,
    env: &ConnEnv<'_>,
    #[cfg(feature = "tls")] tls: Option<&TlsSettings>,
    #[cfg(feature = "tls")] scratch: &mut Vec<u8>,
) -> Result<Fed, CloseReason> {
    #[cfg(feature = "tls")]
    {
        if let ConnTls::Front { .. } = conn.tls {
            let Some(settings) = tls else {
                conn.tls = ConnTls::Off;
                return conn.core.on_input(data, now, env).map(|()| Fed::Open);
            };
            match front(data) {
                Front::NeedMore => return Ok(Fed::Open),
                Front::Plain if settings.only => {
                    return Err(CloseReason::Tls(Arc::from(
                        "plaintext client on a TLS-only port",
                    )))
                }
                Front::Plain => conn.tls = ConnTls::Off,
                Front::Tls => {
                    let deadline = match conn.tls {
                        ConnTls::Front {
                            deadline: Some(deadline),
                        } => deadline,
                        _ => now + settings.handshake_timeout,
                    };
                    conn.tls = ConnTls::On {
                        session: Box::new(TlsSession::new(settings.config.current())?),
                        deadline: Some(deadline),
                    };
                }
            }
        }
        if let ConnTls::On { session, deadline } = &mut conn.tls {
            if scratch.is_empty() {
                scratch.resize(PLAINTEXT_CHUNK, 0);
            }
            let core = &mut conn.core;
            let read = session.read(data, scratch, |plain| core.on_input(plain, now, env))?;
            if read.handshake_completed {
                *deadline = None;
                env.metrics.tls_handshakes(1);
                log::debug!(
                    "gatehouse: session {} ({}): TLS {:?} established (SNI: {:?})",
                    core.sid(),
                    conn.remote,
                    session.protocol_version(),
                    session.server_name()
                );
            }
            return Ok(if read.peer_closed {
                Fed::PeerClosed
            } else {
                Fed::Open
            });
        }
    }
    conn.core.on_input(data, now, env).map(|()| Fed::Open)
}

pub(crate) struct IoThread {
    index: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    /// Sid → key in `conns`, with the generation check every transport needs (a closing
    /// connection whose slot a new session already reuses stays reachable under its own sid).
    by_sid: ConnTable<usize>,
    dirty: Vec<usize>,
    /// Connections that hit `READS_PER_TURN` with input left: read again next turn (the
    /// socket is edge-triggered, so no new event would come for what is already there).
    reread: Vec<usize>,
    /// The last inbox drain stopped at `COMMANDS_PER_TURN` with commands left.
    inbox_more: bool,
    to_close: Vec<(usize, CloseReason)>,
    next_handoff: usize,
    /// The batch of hand-offs being registered (swapped with the shared queue, so it is reused).
    handed: Vec<(TcpStream, SocketAddr)>,
    accept_retry: bool,
    /// One log line per interval for `accept` failures and `max_connections` refusals.
    accept_failed_log: LogLimit,
    refused_log: LogLimit,
    /// Lines clients can trigger at will (junk routes, handler panics), rate-limited.
    conn_logs: ConnLogs,
    /// Where TLS connections' plaintext is decrypted to (one record's worth; allocated at the
    /// first TLS connection).
    #[cfg(feature = "tls")]
    tls_plain: Vec<u8>,
    /// A descriptor held in reserve (on `/dev/null`) by the accepting thread: when `accept`
    /// fails for want of descriptors, closing it lets the backlog be accepted and closed at
    /// once (see [`IoThread::shed_backlog`]).
    spare_fd: Option<File>,
    stopping: bool,
}

/// The most waiting connections one [`IoThread::shed_backlog`] closes (a flood cannot keep it
/// looping; the retry comes back for the rest).
const SHED_PER_TURN: u64 = 4096;

/// EMFILE (this process) or ENFILE (the whole system) on Linux and the BSDs.
fn out_of_fds(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(23) | Some(24))
}

fn reserve_fd() -> Option<File> {
    File::open("/dev/null").ok()
}

fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

impl IoThread {
    pub(crate) fn new(
        index: usize,
        poll: Poll,
        mut listener: Option<TcpListener>,
        shared: Arc<Shared>,
    ) -> io::Result<IoThread> {
        if let Some(listener) = listener.as_mut() {
            poll.registry()
                .register(listener, LISTENER, Interest::READABLE)?;
        }
        let spare_fd = listener.as_ref().and_then(|_| reserve_fd());
        Ok(IoThread {
            index,
            poll,
            listener,
            shared,
            conns: Slab::with_capacity(1024),
            by_sid: ConnTable::with_capacity(1024),
            dirty: Vec::with_capacity(1024),
            reread: Vec::with_capacity(64),
            inbox_more: false,
            to_close: Vec::new(),
            next_handoff: 0,
            handed: Vec::new(),
            accept_retry: false,
            accept_failed_log: LogLimit::default(),
            refused_log: LogLimit::default(),
            conn_logs: ConnLogs::default(),
            #[cfg(feature = "tls")]
            tls_plain: Vec::new(),
            spare_fd,
            stopping: false,
        })
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_BUF];
        let mut next_tick = Instant::now() + TICK;
        let mut linger_until = None;
        let mut rereading: Vec<usize> = Vec::with_capacity(64);
        loop {
            let timeout = if !self.reread.is_empty() || self.inbox_more {
                std::time::Duration::ZERO
            } else if self.accept_retry {
                TICK / 10
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            if let Err(err) = self.poll.poll(&mut events, Some(timeout)) {
                if !interrupted(&err) {
                    log::error!("gatehouse: I/O thread {} poll failed: {err}", self.index);
                    break;
                }
            }
            let now = Instant::now();
            // This turn drains the inbox below: responses and pushes queued meanwhile (by this
            // thread's handlers or by others) need no wake-up.
            if let Some(inbox) = self.shared.service.inbox(self.index) {
                inbox.hold_wake();
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(now),
                    WAKER => {}
                    Token(t) => {
                        let key = t - FIRST_CONN;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            let until_eagain = event.is_read_closed() || event.is_error();
                            self.read_ready(key, now, &mut buf, until_eagain);
                        }
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                    }
                }
            }
            std::mem::swap(&mut self.reread, &mut rereading);
            for key in rereading.drain(..) {
                self.read_ready(key, now, &mut buf, true);
            }
            if self.accept_retry {
                self.accept_all(now);
            }
            self.take_handoff(now);
            self.drain_inbox(now);
            self.flush_all(now);
            if now >= next_tick {
                self.check_deadlines(now, &mut buf);
                next_tick = now + TICK;
            }
            if !self.stopping && self.shared.stopping.load(Ordering::Acquire) {
                self.begin_shutdown();
                linger_until = Some(now + self.shared.conn.close_linger);
            }
            if self.stopping && (self.conns.is_empty() || linger_until.is_some_and(|t| now >= t)) {
                break;
            }
        }
        // Whatever is left (linger expired) is dropped.
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.drop_conn(key);
        }
    }

    fn metrics(&self) -> &crate::server::metrics::ThreadMetrics {
        &self.shared.metrics[self.index]
    }

    // === accept ==============================================================================

    fn accept_all(&mut self, now: Instant) {
        self.accept_retry = false;
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, addr)) => {
                    let shared = &self.shared;
                    if shared.connections.fetch_add(1, Ordering::AcqRel) >= shared.max_connections {
                        shared.connections.fetch_sub(1, Ordering::AcqRel);
                        shared.metrics[self.index].refused(1);
                        if let Some(more) = self.refused_log.hit(now) {
                            log::warn!(
                                "gatehouse: refused {addr}: max_connections ({}) reached \
                                 ({more} more refused since the last such line)",
                                shared.max_connections
                            );
                        }
                        drop(stream);
                        continue;
                    }
                    let target = self.next_handoff % shared.wakers.len();
                    self.next_handoff = self.next_handoff.wrapping_add(1);
                    if target == self.index {
                        self.register(stream, addr, now);
                    } else {
                        // One wake-up per burst, not per connection (src/handoff.rs).
                        if shared.handoff[target].push((stream, addr)) {
                            let _ = shared.wakers[target].wake();
                        }
                    }
                }
                Err(err) if would_block(&err) => break,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    // Out of descriptors: close what waits (with the reserve descriptor).
                    // Other errors, or no reserve: the connections stay in the backlog; retry
                    // shortly instead of waiting for the next (edge-triggered) event.
                    let (shed, drained) = if out_of_fds(&err) {
                        self.shed_backlog()
                    } else {
                        (0, false)
                    };
                    if shed > 0 {
                        self.metrics().refused(shed);
                    }
                    if let Some(more) = self.accept_failed_log.hit(now) {
                        if shed > 0 {
                            log::warn!(
                                "gatehouse: accept failed: {err}; closed {shed} waiting \
                                 connection(s) at once ({more} more failures since the last \
                                 such line; raise `ulimit -n`)"
                            );
                        } else {
                            log::warn!(
                                "gatehouse: accept failed: {err}; clients wait in the listen \
                                 backlog, retrying every {:?} ({more} more failures since the \
                                 last such line)",
                                TICK / 10
                            );
                        }
                    }
                    self.accept_retry = !drained;
                    break;
                }
            }
        }
    }

    /// The process is out of file descriptors, so `accept` fails and clients would wait in the
    /// backlog until they give up. Instead: close the reserve descriptor, accept and close at
    /// once up to [`SHED_PER_TURN`] waiting connections (each client sees its connection end
    /// now), then take the reserve back (libuv's answer to EMFILE, too). Returns how many were
    /// closed and whether the backlog was emptied.
    fn shed_backlog(&mut self) -> (u64, bool) {
        let Some(listener) = self.listener.as_ref() else {
            return (0, true);
        };
        if self.spare_fd.take().is_none() {
            // Lost the reserve earlier (another thread took the descriptor): try to get it
            // back for next time.
            self.spare_fd = reserve_fd();
            return (0, false);
        }
        let (mut shed, mut drained) = (0, false);
        while shed < SHED_PER_TURN {
            match listener.accept() {
                Ok((stream, _)) => {
                    drop(stream);
                    shed += 1;
                }
                Err(err) if would_block(&err) => {
                    drained = true;
                    break;
                }
                Err(err) if interrupted(&err) => {}
                Err(_) => break,
            }
        }
        self.spare_fd = reserve_fd();
        (shed, drained)
    }

    fn take_handoff(&mut self, now: Instant) {
        let mut handed = std::mem::take(&mut self.handed);
        self.shared.handoff[self.index].take_into(&mut handed);
        for (stream, addr) in handed.drain(..) {
            self.register(stream, addr, now);
        }
        self.handed = handed;
    }

    fn register(&mut self, mut stream: TcpStream, addr: SocketAddr, now: Instant) {
        if self.stopping {
            self.shared.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let sid = match self.shared.service.create_in(self.index, Some(addr)) {
            Ok(sid) => sid,
            Err(err) => {
                self.shared.connections.fetch_sub(1, Ordering::AcqRel);
                self.metrics().refused(1);
                log::warn!("gatehouse: refused {addr}: {err}");
                return;
            }
        };
        let key = self.conns.vacant_key();
        if let Err(err) =
            self.poll
                .registry()
                .register(&mut stream, Token(key + FIRST_CONN), Interest::READABLE)
        {
            log::warn!("gatehouse: cannot register {addr}: {err}");
            self.shared.service.close(sid, CloseReason::Io(err.kind()));
            self.shared.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        if !self.shared.nodelay_inherited {
            let _ = stream.set_nodelay(true);
        }
        self.conns.insert(Conn {
            core: ConnCore::new(sid, now, &self.shared.conn),
            stream,
            remote: addr,
            writable: false,
            dirty: false,
            draining: false,
            #[cfg(feature = "tls")]
            tls: ConnTls::new(self.shared.tls.as_ref(), now),
        });
        self.by_sid.insert(sid, key);
        self.metrics().accepted(1);
        log::debug!("gatehouse: session {sid} connected from {addr}");
    }

    // === read ================================================================================

    /// Reads what the socket has, up to `READS_PER_TURN` buffers. A read that returns less than
    /// the buffer drained the socket: more input (or the peer's FIN) arriving after it is a new
    /// readiness edge, so the read that would only say EAGAIN is skipped — one syscall per
    /// request saved (tokio clears readiness on a short read too). Unless `until_eagain`: the
    /// event already said the peer closed or the socket failed, and no new edge will come for
    /// that, so reading goes on until EOF or an error (also on a re-read, which has no event).
    fn read_ready(&mut self, key: usize, now: Instant, buf: &mut [u8], until_eagain: bool) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.stream.read(buf) {
                Ok(0) => {
                    if conn.draining || conn.core.is_closing() {
                        self.drop_conn(key);
                    } else {
                        self.close_conn(key, CloseReason::PeerClosed, now);
                    }
                    return;
                }
                Ok(n) => {
                    self.shared.metrics[self.index].bytes_in(n as u64);
                    if conn.draining || conn.core.is_closing() {
                        continue; // closing: discard what the client still sends
                    }
                    let env = ConnEnv {
                        handler: &*self.shared.handler,
                        sessions: &self.shared.sessions,
                        config: &self.shared.conn,
                        metrics: &self.shared.metrics[self.index],
                        logs: &self.conn_logs,
                    };
                    let result = feed(
                        conn,
                        &buf[..n],
                        now,
                        &env,
                        #[cfg(feature = "tls")]
                        self.shared.tls.as_ref(),
                        #[cfg(feature = "tls")]
                        &mut self.tls_plain,
                    );
                    let has_output = conn.has_output();
                    if has_output {
                        self.mark_dirty(key);
                    }
                    match result {
                        Ok(Fed::Open) => {}
                        Ok(Fed::PeerClosed) => {
                            self.close_conn(key, CloseReason::PeerClosed, now);
                            return;
                        }
                        Err(reason) => {
                            self.close_conn(key, reason, now);
                            return;
                        }
                    }
                    if n < buf.len() && !until_eagain {
                        return;
                    }
                }
                Err(err) if would_block(&err) => return,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    self.close_conn(key, CloseReason::Io(err.kind()), now);
                    return;
                }
            }
        }
        // Fair share used up with input possibly left: the next turn reads again.
        self.reread.push(key);
    }

    // === inbox ===============================================================================

    /// Applies up to `COMMANDS_PER_TURN` inbox commands, in order, through the transport path
    /// shared with `MemoryDriver` ([`apply_commands`]): a close ends its connection before the
    /// next command is looked at.
    fn drain_inbox(&mut self, now: Instant) {
        let shared = self.shared.clone();
        let Some(inbox) = shared.service.inbox(self.index) else {
            return;
        };
        let mut target = IoTarget {
            io: self,
            now,
            queued: 0,
            dropped: 0,
        };
        // The backlog this drain starts from, for the inbox high-water mark: read here, by the
        // one consumer, so the threads that push pay nothing for it.
        let depth = inbox.len();
        let applied = apply_commands(inbox, COMMANDS_PER_TURN, &mut target);
        // Counted here and added to the metrics once per drain: a locked add per frame was
        // a fifth of the drain loop's samples (it also drains the store buffer).
        let (queued, dropped) = (target.queued, target.dropped);
        self.inbox_more = applied.more;
        let metrics = &self.shared.metrics[self.index];
        metrics.inbox_depth_seen(depth);
        if queued > 0 {
            metrics.frames_out(queued);
        }
        if applied.stale + dropped > 0 {
            metrics.frames_dropped(applied.stale + dropped);
        }
    }

    // === close ===============================================================================

    /// The one close path. Ends the session (if it still exists: `closed` fires there), then
    /// either drops the socket at once (peer gone, I/O error) or starts a graceful close:
    /// KICK package if the reason has a text, flush, shut down the write side, read until EOF
    /// or the linger runs out.
    fn close_conn(&mut self, key: usize, reason: CloseReason, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.core.is_closing() {
            return;
        }
        let sid = conn.core.sid();
        let remote = conn.remote;
        self.shared.service.close(sid, reason.clone());
        self.shared.metrics[self.index].close(&reason);
        #[cfg(feature = "tls")]
        if conn.tls.handshaking() {
            self.shared.metrics[self.index].tls_handshake_failures(1);
        }
        match &reason {
            CloseReason::PeerClosed
            | CloseReason::Kicked(_)
            | CloseReason::KickedSilently
            | CloseReason::Removed => {
                log::debug!("gatehouse: session {sid} ({remote}) closed: {reason}")
            }
            // A client can cause these as fast as it can connect: one line per interval.
            CloseReason::ProtocolViolation(_)
            | CloseReason::HandshakeRejected(_)
            | CloseReason::Tls(_)
            | CloseReason::HandlerPanic => {
                if let Some(n) = self.conn_logs.hit(LogKind::CloseForCause, now) {
                    log::info!(
                        "gatehouse: session {sid} ({remote}) closed: {reason}{}",
                        more(n)
                    );
                }
            }
            _ => log::info!("gatehouse: session {sid} ({remote}) closed: {reason}"),
        }
        // Peer gone or socket broken: drop at once, unless the peer only closed its side and
        // bytes are still due to it (the echo of a WebSocket close): flush those first.
        let peer_gone = match &reason {
            CloseReason::Io(_) => true,
            CloseReason::PeerClosed => !conn.has_output(),
            _ => false,
        };
        if peer_gone {
            self.drop_conn(key);
            return;
        }
        conn.core
            .begin_close(&reason, now, self.shared.conn.close_linger);
        self.mark_dirty(key);
    }

    fn drop_conn(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.by_sid.remove(conn.core.sid());
        // A session still registered here (drop without close: shutdown linger) is closed now.
        self.shared
            .service
            .close(conn.core.sid(), CloseReason::Shutdown);
        self.shared.connections.fetch_sub(1, Ordering::AcqRel);
    }

    fn begin_shutdown(&mut self) {
        self.stopping = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let reason = match self.shared.shutdown_reason.lock().clone() {
            Some(text) => CloseReason::Kicked(text),
            None => CloseReason::Shutdown,
        };
        let sids: Vec<Sid> = self.conns.iter().map(|(_, c)| c.core.sid()).collect();
        for sid in sids {
            // Goes through the service (event, then the Close command drained below).
            self.shared.service.close(sid, reason.clone());
        }
    }

    // === write ===============================================================================

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn flush_all(&mut self, now: Instant) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for key in dirty.drain(..) {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.dirty = false;
                self.flush(key, now);
            }
        }
        self.dirty = dirty;
    }

    fn flush(&mut self, key: usize, now: Instant) {
        let metrics = &self.shared.metrics[self.index];
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        loop {
            #[cfg(feature = "tls")]
            if let Some(session) = conn.tls.session() {
                // Plaintext into rustls as far as its buffer limit allows (the rest stays in
                // `core`, under `max_outbound_bytes`); once a closing connection's last bytes
                // are in, its close_notify follows them.
                while conn.core.has_output() {
                    let n = session.encrypt(conn.core.output());
                    if n == 0 {
                        break;
                    }
                    conn.core.consumed(n);
                }
                if conn.core.is_closing() && !conn.core.has_output() {
                    session.close_notify();
                }
            }
            let written = match write_some(conn) {
                None => break,
                Some(written) => written,
            };
            match written {
                Ok(0) => break,
                Ok(n) => {
                    metrics.bytes_out(n as u64);
                    metrics.write_calls(1);
                }
                Err(err) if would_block(&err) => break,
                Err(err) if interrupted(&err) => continue,
                Err(err) => {
                    let reason = CloseReason::Io(err.kind());
                    if conn.core.is_closing() {
                        self.drop_conn(key);
                    } else {
                        self.close_conn(key, reason, now);
                    }
                    return;
                }
            }
        }
        let pending = conn.has_output();
        if pending != conn.writable {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self.poll.registry().reregister(
                &mut conn.stream,
                Token(key + FIRST_CONN),
                interest,
            );
            conn.writable = pending;
        }
        if !pending && conn.core.is_closing() && !conn.draining {
            // Everything (the KICK included) is out: half-close and wait for the client's EOF,
            // so unread input does not turn our close into a reset that could discard the KICK.
            conn.draining = true;
            if conn.stream.shutdown(Shutdown::Write).is_err() {
                self.drop_conn(key);
            }
        }
    }

    // === timers ==============================================================================

    fn check_deadlines(&mut self, now: Instant, _buf: &mut [u8]) {
        for (key, conn) in self.conns.iter_mut() {
            #[cfg(feature = "tls")]
            if !conn.core.is_closing() && conn.tls.deadline().is_some_and(|d| now >= d) {
                let limit = self.shared.tls.as_ref().map(|t| t.handshake_timeout);
                self.to_close.push((
                    key,
                    CloseReason::Tls(Arc::from(format!(
                        "handshake not completed within {:?}",
                        limit.unwrap_or_default()
                    ))),
                ));
                continue;
            }
            if let Some(reason) = conn.core.on_tick(now) {
                self.to_close.push((key, reason));
            }
        }
        let mut expired = std::mem::take(&mut self.to_close);
        for (key, reason) in expired.drain(..) {
            match self.conns.get(key) {
                Some(conn) if conn.core.is_closing() => self.drop_conn(key), // linger over
                Some(_) => self.close_conn(key, reason, now),
                None => {}
            }
        }
        self.to_close = expired;
        self.compact_after_peak();
    }

    /// After a peak (a login storm that left), gives memory back: once fewer than a quarter of
    /// the connection table's slots are used, moves the connections down to the lowest keys
    /// (re-registering each socket under its new token and updating the sid map) and frees the
    /// rest; the sid map and the per-turn lists shrink too. Between loop turns, so no key is
    /// held anywhere else (`dirty` is empty after the flush; a pending re-read postpones it).
    fn compact_after_peak(&mut self) {
        let (len, capacity) = (self.conns.len(), self.conns.capacity());
        if capacity <= COMPACT_MIN_CAPACITY
            || len * 4 > capacity
            || !self.reread.is_empty()
            || !self.dirty.is_empty()
        {
            return;
        }
        let (registry, by_sid) = (self.poll.registry(), &mut self.by_sid);
        self.conns.compact(|conn, _from, to| {
            let interest = if conn.writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(to + FIRST_CONN);
            if registry
                .reregister(&mut conn.stream, token, interest)
                .is_err()
            {
                return false; // stays where it is
            }
            if let Some(key) = by_sid.get_mut(conn.core.sid()) {
                *key = to;
            }
            true
        });
        self.by_sid.shrink_to_fit();
        self.dirty.shrink_to(1024);
        self.reread.shrink_to(64);
        self.metrics().compacted(1);
        log::debug!(
            "gatehouse: I/O thread {}: {len} connections, table compacted from {capacity} to {} \
             slots",
            self.index,
            self.conns.capacity()
        );
    }
}

/// One write of what `conn` has pending: ciphertext if it speaks TLS, else its plaintext (marked
/// consumed as far as written). `None`: nothing to write.
fn write_some(conn: &mut Conn) -> Option<io::Result<usize>> {
    #[cfg(feature = "tls")]
    if let ConnTls::On { session, .. } = &mut conn.tls {
        if !session.wants_write() {
            return None;
        }
        return Some(session.write_to(&mut conn.stream));
    }
    if !conn.core.has_output() {
        return None;
    }
    let written = conn.stream.write(conn.core.output());
    if let Ok(n) = written {
        conn.core.consumed(n);
    }
    Some(written)
}

/// The connection table is compacted only above this many slots (below, the memory is small and
/// a burst would only grow it again).
const COMPACT_MIN_CAPACITY: usize = 1024;

/// The I/O thread as [`apply_commands`] sees it.
struct IoTarget<'a> {
    io: &'a mut IoThread,
    now: Instant,
    queued: u64,
    dropped: u64,
}

impl CommandTarget for IoTarget<'_> {
    fn deliver(&mut self, sid: Sid, frame: Frame) -> bool {
        let Some(&key) = self.io.by_sid.get(sid) else {
            return false;
        };
        let max_outbound = self.io.shared.conn.max_outbound_bytes;
        let conn = &mut self.io.conns[key];
        match conn.core.push_frame(frame.as_bytes(), max_outbound) {
            Pushed::Queued => {
                self.queued += 1;
                if !conn.dirty {
                    conn.dirty = true;
                    self.io.dirty.push(key);
                }
            }
            Pushed::Dropped => self.dropped += 1,
            Pushed::OverLimit => self.io.close_conn(key, CloseReason::SlowConsumer, self.now),
        }
        true
    }

    fn close(&mut self, sid: Sid, reason: CloseReason) {
        if let Some(&key) = self.io.by_sid.get(sid) {
            self.io.close_conn(key, reason, self.now);
        }
    }
}
