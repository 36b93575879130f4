//! [`MemoryDriver`]: an in-memory transport that drains the inboxes and records what each
//! session would have received.

use crate::conn_table::ConnTable;
use crate::error::CreateError;
use crate::events::CloseReason;
use crate::frame::Frame;
use crate::id::Sid;
use crate::service::SessionService;
use crate::transport::{apply_commands, CommandTarget};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A transport without sockets: it creates sessions as if clients connected, drains every
/// shard's [`Inbox`](crate::Inbox) like an I/O thread would, and records per connection the
/// frames delivered and how it was closed.
///
/// It applies the transport contract exactly: a `Send` reaches a connection only if a
/// connection with that very sid is open (otherwise it is dropped and counted as stale), and a
/// `Close` ends the connection after everything queued before it. Open connections live in one
/// [`ConnTable`] per shard, the lookup a real transport uses; closed ones are kept (for
/// [`received`](Self::received) and friends) until [`forget_closed`](Self::forget_closed).
/// Use it in tests, or as the reference for writing your own transport.
///
/// # Examples
///
/// ```
/// use gatehouse::{Frame, MemoryDriver, SessionConfig, SessionService};
/// use std::sync::Arc;
///
/// let service = Arc::new(SessionService::new(SessionConfig::default()).unwrap());
/// let mut driver = MemoryDriver::new(service.clone());
/// let sid = driver.connect(None).unwrap();
/// service.bind(sid, "u1").unwrap();
/// service.send_message_by_uid("u1", &Frame::from_static(b"hello")).unwrap();
/// service.kick("u1", Some("bye"));
/// driver.poll();
/// assert_eq!(driver.received(sid)[0].as_bytes(), b"hello");
/// assert_eq!(driver.kick_message(sid), Some("bye"));
/// ```
#[derive(Debug)]
pub struct MemoryDriver {
    service: Arc<SessionService>,
    /// Open connections, one table per shard: the transport-side generation check.
    open: Vec<ConnTable<MemoryConn>>,
    /// Connections the transport closed, kept for inspection.
    closed: HashMap<Sid, MemoryConn>,
    stale: u64,
}

/// What one in-memory connection saw.
#[derive(Debug, Default, Clone)]
pub struct MemoryConn {
    /// Frames delivered, in order.
    pub frames: Vec<Frame>,
    /// `Some` once the transport closed the connection, with the reason.
    pub closed: Option<CloseReason>,
}

impl MemoryDriver {
    /// A driver for `service`'s shards.
    pub fn new(service: Arc<SessionService>) -> MemoryDriver {
        let open = (0..service.config().shard_count())
            .map(|_| ConnTable::new())
            .collect();
        MemoryDriver {
            service,
            open,
            closed: HashMap::new(),
            stale: 0,
        }
    }

    /// The service this driver drains.
    pub fn service(&self) -> &Arc<SessionService> {
        &self.service
    }

    /// A client connects: creates its session and an open connection for it.
    ///
    /// # Errors
    ///
    /// Whatever [`SessionService::create`] refuses.
    pub fn connect(&mut self, remote: Option<SocketAddr>) -> Result<Sid, CreateError> {
        let sid = self.service.create(remote)?;
        self.open[sid.shard()].insert(sid, MemoryConn::default());
        Ok(sid)
    }

    /// The client goes away: the session closes with [`CloseReason::PeerClosed`].
    pub fn disconnect(&mut self, sid: Sid) -> bool {
        self.service.close(sid, CloseReason::PeerClosed)
    }

    /// Drains every shard once and applies the commands, in order, through
    /// [`apply_commands`] (the path the connector uses too). Returns how
    /// many it handled.
    pub fn poll(&mut self) -> usize {
        let mut handled = 0;
        for shard in 0..self.service.config().shard_count() {
            let Some(inbox) = self.service.inbox(shard) else {
                continue;
            };
            let mut target = Target {
                open: &mut self.open[shard],
                closed: &mut self.closed,
            };
            let applied = apply_commands(inbox, usize::MAX, &mut target);
            handled += applied.handed;
            self.stale += applied.stale;
        }
        handled
    }

    /// Frames delivered to `sid` so far (empty if unknown).
    pub fn received(&self, sid: Sid) -> &[Frame] {
        self.connection(sid).map_or(&[], |c| &c.frames)
    }

    /// Takes and clears the frames delivered to `sid`.
    pub fn take_received(&mut self, sid: Sid) -> Vec<Frame> {
        // Closed records first (a sid is in one place or the other), so inspecting a closed
        // sid never goes through the open table's generation check.
        let conn = match self.closed.get_mut(&sid) {
            Some(conn) => Some(conn),
            None => self.open.get_mut(sid.shard()).and_then(|t| t.get_mut(sid)),
        };
        conn.map(|c| std::mem::take(&mut c.frames))
            .unwrap_or_default()
    }

    /// The connection's record, if it was connected through this driver.
    pub fn connection(&self, sid: Sid) -> Option<&MemoryConn> {
        self.closed
            .get(&sid)
            .or_else(|| self.open.get(sid.shard()).and_then(|t| t.get(sid)))
    }

    /// Why the transport closed `sid`, once it did.
    pub fn close_reason(&self, sid: Sid) -> Option<&CloseReason> {
        self.connection(sid)?.closed.as_ref()
    }

    /// The KICK package text `sid`'s client received, if any.
    pub fn kick_message(&self, sid: Sid) -> Option<&str> {
        self.close_reason(sid)?.kick_message()
    }

    /// Sends dropped because their connection was closed or never existed here.
    pub fn stale(&self) -> u64 {
        self.stale
    }

    /// Forgets closed connections' records (keeps memory flat in long tests).
    pub fn forget_closed(&mut self) {
        self.closed.clear();
    }
}

/// One shard's connections, as [`apply_commands`] sees them.
struct Target<'a> {
    open: &'a mut ConnTable<MemoryConn>,
    closed: &'a mut HashMap<Sid, MemoryConn>,
}

impl CommandTarget for Target<'_> {
    fn deliver(&mut self, sid: Sid, frame: Frame) -> bool {
        match self.open.get_mut(sid) {
            Some(conn) => {
                conn.frames.push(frame);
                true
            }
            None => false,
        }
    }

    fn close(&mut self, sid: Sid, reason: CloseReason) {
        if let Some(mut conn) = self.open.remove(sid) {
            conn.closed = Some(reason);
            self.closed.insert(sid, conn);
        }
    }
}
