//! TLS beneath the connection state machine (feature `tls`): TLS-TCP and WSS on the
//! connector's port, next to plain TCP and WebSocket or instead of them.
//!
//! # Layers
//!
//! ```text
//! socket ─ciphertext→ front (first byte: 0x16?) ─→ TlsSession (rustls) ─plaintext→ ConnCore
//!        ←ciphertext─────────────────────────────── TlsSession ←plaintext──────── ConnCore
//! ```
//!
//! * `front.rs`: one byte tells a TLS ClientHello (`0x16`) from a pomelo package
//!   (`0x01..=0x05`) or an HTTP request (a method letter). On a port that also serves plain
//!   clients, everything else goes to [`ConnCore`](crate::server::ConnCore) unchanged; on a
//!   TLS-only port it is closed ([`CloseReason::Tls`](crate::CloseReason::Tls)).
//! * `session.rs` ([`TlsSession`]): the rustls server connection, driven from byte slices. Its plaintext is
//!   sniffed by `ConnCore` exactly as a plain connection's bytes are, so TLS-TCP and WSS are
//!   the same code as TCP and WebSocket.
//! * `config.rs` ([`TlsConfig`]): the certificate, and the handle that reloads it.
//!
//! Both are sans-IO: the I/O thread (`src/server/io_thread.rs`) owns the socket, the
//! handshake deadline and the close path; the fuzz target `tls_front` drives the same code.

pub(crate) mod config;
pub(crate) mod front;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod session;

pub use config::{TlsConfig, TlsConfigError};
pub use front::{front, Front, TLS_HANDSHAKE_RECORD};
pub use session::{TlsRead, TlsSession, PLAINTEXT_CHUNK, TLS_BUFFER_LIMIT};

use std::time::{Duration, Instant};

/// The server's TLS settings, from the builder.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub(crate) config: TlsConfig,
    /// Plain (non-TLS) clients are refused.
    pub(crate) only: bool,
    pub(crate) handshake_timeout: Duration,
}

/// One connection's TLS layer, as the I/O thread keeps it.
#[derive(Debug)]
pub(crate) enum ConnTls {
    /// A plain connection: bytes go straight to `ConnCore`.
    Off,
    /// TLS is configured and the first byte has not arrived yet. The TLS handshake deadline
    /// runs from accept on a TLS-only port; where plain clients are welcome too, the pomelo
    /// handshake timeout covers a client that sends nothing.
    Front { deadline: Option<Instant> },
    /// A TLS connection; `deadline` while its handshake is in progress.
    On {
        session: Box<TlsSession>,
        deadline: Option<Instant>,
    },
}

impl ConnTls {
    /// The layer a new connection starts with.
    pub(crate) fn new(settings: Option<&TlsSettings>, now: Instant) -> ConnTls {
        match settings {
            Some(s) => ConnTls::Front {
                deadline: s.only.then(|| now + s.handshake_timeout),
            },
            None => ConnTls::Off,
        }
    }

    /// The TLS handshake deadline, while one runs (from accept to the handshake's end).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self {
            ConnTls::Off => None,
            ConnTls::Front { deadline } => *deadline,
            ConnTls::On { deadline, .. } => *deadline,
        }
    }

    /// Whether a TLS handshake is under way (counted as failed if the connection closes now).
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            ConnTls::Off => false,
            ConnTls::Front { deadline } => deadline.is_some(),
            ConnTls::On { session, .. } => session.is_handshaking(),
        }
    }

    /// The session, once TLS runs.
    pub(crate) fn session(&mut self) -> Option<&mut TlsSession> {
        match self {
            ConnTls::On { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Whether ciphertext waits to be written.
    pub(crate) fn wants_write(&self) -> bool {
        matches!(self, ConnTls::On { session, .. } if session.wants_write())
    }
}
