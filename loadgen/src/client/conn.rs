//! One client connection: its socket, buffers, phase and outstanding requests.

use super::sent::SendTimes;
use super::{would_block, Phase, Role};
use crate::wire::{ECHO, MAX_ID};
use gatehouse::protocol::{encode_data, Message, Route};
use mio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The answer to a control request.
pub struct CtlReply {
    /// When the request was written (ns since the run's epoch).
    pub(super) sent_ns: u64,
    pub(super) result: Result<Vec<u8>, String>,
}

/// One client connection.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) role: Role,
    pub(super) phase: Phase,
    /// When the connect began (setup latency).
    pub(super) started: Instant,
    pub(super) rbuf: Vec<u8>,
    pub(super) wbuf: Vec<u8>,
    pub(super) wpos: usize,
    pub(super) next_id: u32,
    pub(super) bind_id: u32,
    pub(super) heartbeat: Option<Duration>,
    pub(super) next_hb: Option<Instant>,
    /// Echo requests not yet answered.
    pub(super) outstanding: usize,
    /// When those requests actually left, by request id (bounded; see [`SendTimes`]).
    pub(super) sent: SendTimes,
    /// Control requests not yet answered: id, sent at, where the answer goes.
    pub(super) ctl: VecDeque<(u32, u64, mpsc::Sender<CtlReply>)>,
}

impl Conn {
    /// Queues a request; its message id.
    pub(super) fn request(&mut self, route: &str, body: &[u8]) -> Result<u32, String> {
        let id = self.next_id;
        self.next_id = if id >= MAX_ID { 1 } else { id + 1 };
        encode_data(
            &Message::request(id, Route::Name(route), body),
            &mut self.wbuf,
        )
        .map_err(|e| format!("encoding {route}: {e}"))?;
        Ok(id)
    }

    /// Queues an echo request carrying `t_ns`, the time its round trip is measured from (ns
    /// since the run's epoch). In the open loop `t_ns` is the intended send time and `sent_ns`
    /// the actual one, noted under the request's id; the closed loop passes `None`, since
    /// there the two are the same time and a second record would only cost.
    pub(super) fn echo(&mut self, t_ns: u64, sent_ns: Option<u64>) -> Result<(), String> {
        let mut body = [0u8; 32];
        let mut cur = io::Cursor::new(&mut body[..]);
        write!(cur, "{{\"t\":{t_ns}}}").map_err(|e| e.to_string())?;
        let n = cur.position() as usize;
        let id = self.request(ECHO, &body[..n])?;
        if let Some(sent_ns) = sent_ns {
            self.sent.insert(id, sent_ns);
        }
        self.outstanding += 1;
        Ok(())
    }
}

/// A non-blocking connect to `addr` from `source` (port chosen by the kernel from that address's
/// ephemeral range).
pub(super) fn connect_from(source: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || would_block(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

/// Linux's "operation now in progress", a non-blocking connect's usual answer.
const EINPROGRESS: i32 = 115;
