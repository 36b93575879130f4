//! [`TlsSession`]: one connection's TLS state, sans I/O, between the socket and [`ConnCore`].
//!
//! The I/O thread hands it the ciphertext it read ([`TlsSession::read`]), which passes the
//! plaintext on to the connection's protocol state machine; the plaintext the state machine
//! wants to send goes in through [`TlsSession::encrypt`] and the ciphertext comes out through
//! [`TlsSession::write_to`]. Nothing here touches a socket or a clock, so the fuzz target and
//! benchmarks drive it with byte slices.
//!
//! # Bounds
//!
//! * Input: rustls buffers at most one TLS record of ciphertext (64 KiB while a handshake
//!   message is being joined) and 16 KiB of decrypted plaintext; [`TlsSession::read`] hands
//!   the plaintext on in chunks of the caller's scratch buffer and never buffers it itself.
//! * Output: rustls holds at most [`TLS_BUFFER_LIMIT`] bytes (plaintext waiting for the
//!   handshake, plus ciphertext not yet written). [`TlsSession::encrypt`] takes what fits and
//!   leaves the rest in the connection's own output, where `max_outbound_bytes` applies as on
//!   a plain connection: a client that does not read is closed as a slow consumer, with at
//!   most this much more held for it.
//!
//! [`ConnCore`]: crate::server::ConnCore

use crate::events::CloseReason;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// The most bytes rustls holds for one connection's output (plaintext before the handshake
/// completes, and ciphertext not yet written): rustls' own default, made explicit.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// Scratch space [`TlsSession::read`] needs to hand plaintext on: one TLS record's payload.
pub const PLAINTEXT_CHUNK: usize = 16 * 1024;

/// What one [`TlsSession::read`] did besides handing plaintext on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsRead {
    /// The handshake completed during this call.
    pub handshake_completed: bool,
    /// The client sent `close_notify`: it will send nothing more (treat as end of stream).
    pub peer_closed: bool,
}

/// One connection's TLS state (see the module docs).
pub struct TlsSession {
    conn: ServerConnection,
    /// A fatal error happened: the alert (if any) is queued, nothing more is encrypted.
    failed: bool,
    close_notify_sent: bool,
}

/// The close reason for a TLS failure.
pub(crate) fn tls_reason(text: impl Into<Arc<str>>) -> CloseReason {
    CloseReason::Tls(text.into())
}

impl TlsSession {
    /// A server session with `config` (one read of the [`TlsConfig`](super::TlsConfig) slot
    /// per accepted connection).
    ///
    /// # Errors
    ///
    /// The [`CloseReason::Tls`] to close with if rustls refuses the configuration.
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsSession, CloseReason> {
        let mut conn = ServerConnection::new(config)
            .map_err(|err| tls_reason(format!("cannot start a session: {err}")))?;
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(TlsSession {
            conn,
            failed: false,
            close_notify_sent: false,
        })
    }

    /// Whether the handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether a fatal TLS error ended the session (only its alert is left to send).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The negotiated protocol version, once known.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The SNI name the client sent, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.conn.server_name()
    }

    /// Ciphertext from the client: decrypts it and calls `on_plain` with each piece of
    /// plaintext, in order, using `scratch` (at least [`PLAINTEXT_CHUNK`] bytes is best; any
    /// non-empty size works).
    ///
    /// # Errors
    ///
    /// A TLS error: [`CloseReason::Tls`] saying what went wrong, with rustls' alert queued for
    /// [`write_to`](Self::write_to) (send it, then close). Or the first error `on_plain`
    /// returned, as is (the session stays usable for the reply that goes with it).
    pub fn read(
        &mut self,
        mut ciphertext: &[u8],
        scratch: &mut [u8],
        mut on_plain: impl FnMut(&[u8]) -> Result<(), CloseReason>,
    ) -> Result<TlsRead, CloseReason> {
        let mut outcome = TlsRead::default();
        if self.failed || scratch.is_empty() {
            return Ok(outcome);
        }
        let was_handshaking = self.conn.is_handshaking();
        // An empty slice would read as end of stream: only non-empty input goes to rustls.
        while !ciphertext.is_empty() {
            match self.conn.read_tls(&mut ciphertext) {
                Ok(0) => {
                    // Only after the client's close_notify: what follows it is ignored.
                    outcome.peer_closed = true;
                    break;
                }
                Ok(_) => {}
                Err(err) => return Err(self.fail(format!("unreadable record: {err}"))),
            }
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(err) => return Err(self.fail(err.to_string())),
            };
            let mut pending = state.plaintext_bytes_to_read();
            while pending > 0 {
                match self.conn.reader().read(scratch) {
                    Ok(0) => break,
                    Ok(n) => {
                        pending = pending.saturating_sub(n);
                        on_plain(&scratch[..n])?;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => return Err(self.fail(format!("unreadable plaintext: {err}"))),
                }
            }
            if state.peer_has_closed() {
                outcome.peer_closed = true;
                break;
            }
        }
        outcome.handshake_completed = was_handshaking && !self.conn.is_handshaking();
        Ok(outcome)
    }

    fn fail(&mut self, text: String) -> CloseReason {
        self.failed = true;
        tls_reason(text)
    }

    /// Plaintext to send: returns how many bytes of `plain` were taken (fewer than all, maybe
    /// none, while rustls holds [`TLS_BUFFER_LIMIT`] bytes; the rest must wait for
    /// [`write_to`](Self::write_to) to make room). After a fatal error everything is taken and
    /// dropped: nothing but the alert may follow it.
    pub fn encrypt(&mut self, plain: &[u8]) -> usize {
        if self.failed || self.close_notify_sent {
            return plain.len();
        }
        self.conn.writer().write(plain).unwrap_or(0)
    }

    /// Queues the `close_notify` alert (once): the last thing this session sends.
    pub fn close_notify(&mut self) {
        if !self.failed && !self.close_notify_sent {
            self.conn.send_close_notify();
            self.close_notify_sent = true;
        }
    }

    /// Whether ciphertext is waiting for [`write_to`](Self::write_to).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes waiting ciphertext to `out` (one `write` call on it, or a few for a few
    /// records): the bytes written, as `Write::write` returns them.
    ///
    /// # Errors
    ///
    /// `out`'s error (`WouldBlock` included).
    pub fn write_to(&mut self, out: &mut dyn Write) -> io::Result<usize> {
        self.conn.write_tls(out)
    }
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("version", &self.conn.protocol_version())
            .field("failed", &self.failed)
            .field("close_notify_sent", &self.close_notify_sent)
            .finish()
    }
}
