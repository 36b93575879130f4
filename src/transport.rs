//! [`apply_commands`]: the one path by which a transport applies its shard's [`Command`]s —
//! shared by the mio connector ([`server`](crate::server)) and the reference
//! [`MemoryDriver`](crate::MemoryDriver), so the loom models and the differential fuzzer, which
//! drive the latter, check the code that runs in production.
//!
//! The contract it enforces:
//!
//! * commands are applied **in inbox order**, a `Close` included: a close ends its connection
//!   before any later command is looked at (a transport that collected closes and applied them
//!   after the whole drain let later sends to a closing connection be written);
//! * a `Send` reaches only the connection of **exactly** its sid (the transport's lookup is a
//!   [`ConnTable`](crate::ConnTable), which compares the whole sid); otherwise it is dropped
//!   and counted with [`Inbox::record_stale`];
//! * at most `max` commands per call ([`Inbox::drain_bounded`]), so a flooding producer cannot
//!   keep a reactor from its sockets and timers.

use crate::events::CloseReason;
use crate::frame::Frame;
use crate::id::Sid;
use crate::inbox::{Command, Inbox};

/// The transport's side of [`apply_commands`]: its connections, looked up by exact sid.
pub trait CommandTarget {
    /// Writes `frame` to the connection of exactly `sid` (or queues it there). Returns `false`
    /// if there is no such connection: the frame is stale and is counted as such.
    fn deliver(&mut self, sid: Sid, frame: Frame) -> bool;

    /// The session `sid` has closed: end its connection (KICK package if the reason has a text,
    /// flush, close). Does nothing if there is no such connection or it is already closing.
    fn close(&mut self, sid: Sid, reason: CloseReason);
}

/// What one [`apply_commands`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Commands taken from the inbox.
    pub handed: usize,
    /// Sends dropped because their connection was gone (already counted on the inbox).
    pub stale: u64,
    /// The bound was reached with commands left: call again without waiting for a wake-up.
    pub more: bool,
}

/// Drains up to `max` commands of `inbox` and applies them, in order, to `target`. Call it
/// from the shard's single consumer only.
pub fn apply_commands(inbox: &Inbox, max: usize, target: &mut impl CommandTarget) -> Applied {
    let mut stale = 0;
    let drained = inbox.drain_bounded(max, |cmd| match cmd {
        Command::Send { sid, frame } => {
            if !target.deliver(sid, frame) {
                stale += 1;
            }
        }
        Command::Close { sid, reason } => target.close(sid, reason),
    });
    if stale > 0 {
        inbox.record_stale(stale);
    }
    Applied {
        handed: drained.handed,
        stale,
        more: drained.more,
    }
}
