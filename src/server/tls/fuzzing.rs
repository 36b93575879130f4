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

/// The committed test-only certificate (self-signed, SAN `localhost`), PEM: what a test or
/// benchmark client trusts to talk to [`test_only_server_config`]. Never serve it: its key is
/// public.
pub const TEST_ONLY_CERT_PEM: &[u8] = include_bytes!("fuzz_test_only_cert.pem");

/// A server configuration with the committed test-only certificate (for the fuzz target,
/// benchmarks and allocation tests; built once per process).
pub fn test_only_server_config() -> Arc<ServerConfig> {
    config()
}

fn config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            super::config::server_config(
                TEST_ONLY_CERT_PEM,
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::io::{Read, Write};

    /// A client trusting the test-only certificate, for `localhost`.
    fn client(versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConnection {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(TEST_ONLY_CERT_PEM) {
            roots.add(cert.unwrap()).unwrap();
        }
        #[allow(deprecated)] // ring on purpose (see config.rs)
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        ClientConnection::new(Arc::new(config), name).unwrap()
    }

    /// Client flights into the session, session flights back, until both are done.
    fn handshake(client: &mut ClientConnection, server: &mut TlsSession) {
        let mut scratch = [0u8; 1024];
        for _ in 0..8 {
            let mut up = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut up).unwrap();
            }
            if !up.is_empty() {
                server.read(&up, &mut scratch, |_| Ok(())).unwrap();
            }
            let mut down = Vec::new();
            while server.wants_write() {
                server.write_to(&mut down).unwrap();
            }
            if !down.is_empty() {
                client.read_tls(&mut &down[..]).unwrap();
                client.process_new_packets().unwrap();
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return;
            }
        }
        panic!("no handshake");
    }

    #[test]
    fn the_test_only_certificate_serves_tls12_and_tls13_with_sni() {
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12]] {
            let mut client = client(versions);
            let mut server = TlsSession::new(test_only_server_config()).unwrap();
            handshake(&mut client, &mut server);
            assert_eq!(server.server_name(), Some("localhost"));
            client.writer().write_all(b"ping").unwrap();
            let mut up = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut up).unwrap();
            }
            let mut got = Vec::new();
            let mut scratch = [0u8; 3]; // smaller than the record: handed on in pieces
            server
                .read(&up, &mut scratch, |p| {
                    got.extend_from_slice(p);
                    Ok(())
                })
                .unwrap();
            assert_eq!(got, b"ping");
            assert_eq!(server.encrypt(b"pong"), 4);
            let mut down = Vec::new();
            while server.wants_write() {
                server.write_to(&mut down).unwrap();
            }
            client.read_tls(&mut &down[..]).unwrap();
            client.process_new_packets().unwrap();
            let mut pong = [0u8; 4];
            client.reader().read_exact(&mut pong).unwrap();
            assert_eq!(&pong, b"pong");
        }
    }

    #[test]
    fn encrypt_takes_at_most_the_buffer_limit_until_written() {
        let mut client = client(&[&rustls::version::TLS13]);
        let mut server = TlsSession::new(test_only_server_config()).unwrap();
        handshake(&mut client, &mut server);
        let big = vec![7u8; 4 * TLS_BUFFER_LIMIT];
        let taken = server.encrypt(&big);
        assert!(taken > 0 && taken <= TLS_BUFFER_LIMIT, "{taken}");
        assert_eq!(server.encrypt(&big[taken..]), 0, "full until written");
        let mut out = Vec::new();
        while server.wants_write() {
            server.write_to(&mut out).unwrap();
        }
        assert!(server.encrypt(&big[taken..]) > 0, "room again once written");
    }

    #[test]
    fn a_client_close_notify_ends_the_stream_and_errors_fail_the_session() {
        let mut client = client(&[&rustls::version::TLS12]);
        let mut server = TlsSession::new(test_only_server_config()).unwrap();
        handshake(&mut client, &mut server);
        client.send_close_notify();
        let mut up = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut up).unwrap();
        }
        let mut scratch = [0u8; 64];
        let read = server.read(&up, &mut scratch, |_| Ok(())).unwrap();
        assert!(read.peer_closed);

        let mut server = TlsSession::new(test_only_server_config()).unwrap();
        let err = server
            .read(
                &[0x16, 3, 1, 0, 8, 1, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef],
                &mut scratch,
                |_| Ok(()),
            )
            .unwrap_err();
        assert!(matches!(err, crate::CloseReason::Tls(_)), "{err:?}");
        assert!(server.is_failed());
        assert!(server.wants_write(), "the alert is queued: {err:?}");
        assert_eq!(server.encrypt(b"dropped"), 7);
    }

    #[test]
    fn committed_seeds_and_garbage_never_break_the_target() {
        fuzz_tls_front(&[]);
        fuzz_tls_front(&[0xff]);
        fuzz_tls_front(&[0xc0, 0x16, 0x16, 0x16, 0x16, 0x16, 0x16]);
        fuzz_tls_front(&[0x00, 0x01, 0x00, 0x00, 0x00]);
    }
}
