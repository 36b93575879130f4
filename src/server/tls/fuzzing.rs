//! Fuzz entry point for the TLS front and session: **not public API, outside semver**.
//!
//! [`fuzz_tls_front`] takes a control byte and the bytes a client sends, and drives them
//! through what the I/O thread runs for a new connection on a TLS port: the first-byte
//! [`front`], then (for `0x16`) a [`TlsSession`] with a fixed, committed test-only
//! certificate (`fuzz_test_only_cert.pem`, never served anywhere), fed in chunks of the size
//! the control byte picks, with output drained after every chunk. It checks:
//!
//! * **No panic**, whatever the bytes.
//! * The front's verdict is given by the first byte and never changes with more bytes.
//! * **No plaintext before the handshake completed** (a fuzzer cannot complete one: it would
//!   need the client's keys), and a failed session stays failed: it hands nothing on, and
//!   takes and drops whatever is given to encrypt.
//! * **Bounded output**: the ciphertext the session ever writes stays under
//!   [`OUTPUT_BOUND`], however long the input; plaintext offered before the handshake is taken
//!   only up to [`TLS_BUFFER_LIMIT`].

use super::front::{front, Front};
use super::session::{TlsSession, TLS_BUFFER_LIMIT};
use rustls::ServerConfig;
use std::sync::{Arc, OnceLock};

/// The most ciphertext a session may write for input that never completes a handshake: its
/// first flight (a HelloRetryRequest, or ServerHello, certificate and key exchange), an alert
/// or a close_notify, with a wide margin; it does not grow with the input.
pub const OUTPUT_BOUND: usize = 16 * 1024;

fn config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            super::config::server_config(
                include_bytes!("fuzz_test_only_cert.pem"),
                include_bytes!("fuzz_test_only_key.pem"),
            )
            .expect("the committed fuzz certificate loads")
        })
        .clone()
}

/// Byte 0: bits 0..=5 pick the chunk size (1, then steps of 97 bytes), bit 6 offers 100 bytes
/// of plaintext to encrypt after every chunk, bit 7 queues a close_notify at the end. The rest:
/// the client's bytes.
pub fn fuzz_tls_front(data: &[u8]) {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let verdict = front(input);
    for end in 0..input.len().min(8) {
        let prefix = front(&input[..=end]);
        assert_eq!(prefix, verdict, "the verdict changed with more bytes");
    }
    if verdict != Front::Tls {
        // Plain: ConnCore's own fuzz target (`connection`) covers what follows; on a TLS-only
        // port the connection is closed before any of it.
        assert!(input.first() != Some(&0x16));
        return;
    }
    let chunk = 1 + usize::from(control & 0x3f) * 97;
    let offer_plaintext = control & 0x40 != 0;
    let mut session = TlsSession::new(config()).expect("session");
    let mut scratch = [0u8; 512];
    let mut written = 0usize;
    let mut taken = 0usize;
    for piece in input.chunks(chunk) {
        let was_failed = session.is_failed();
        let handshaking = session.is_handshaking();
        let mut plain = 0usize;
        let result = session.read(piece, &mut scratch, |p| {
            plain += p.len();
            Ok(())
        });
        assert!(
            plain == 0 || !handshaking,
            "plaintext before the handshake completed"
        );
        match result {
            Ok(read) => assert!(!read.handshake_completed || !was_failed),
            Err(reason) => {
                assert!(matches!(reason, crate::CloseReason::Tls(_)), "{reason:?}");
                assert!(session.is_failed());
            }
        }
        if was_failed {
            assert!(session.is_failed(), "a failed session stays failed");
            assert_eq!(plain, 0);
        }
        if offer_plaintext {
            let n = session.encrypt(&[0x04; 100]);
            assert!(n <= 100);
            if session.is_failed() {
                assert_eq!(n, 100, "a failed session drops what it is given");
            } else {
                taken += n;
                assert!(
                    taken <= TLS_BUFFER_LIMIT,
                    "plaintext buffered past the limit"
                );
            }
        }
        written += drain(&mut session);
        assert!(written <= OUTPUT_BOUND, "{written} bytes of ciphertext out");
    }
    if control & 0x80 != 0 {
        session.close_notify();
        written += drain(&mut session);
        assert!(written <= OUTPUT_BOUND, "{written} bytes of ciphertext out");
    }
}

/// Writes out what the session has, as a socket that takes everything would: how much.
fn drain(session: &mut TlsSession) -> usize {
    let mut out = Vec::new();
    while session.wants_write() {
        match session.write_to(&mut out) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out.len()
}
