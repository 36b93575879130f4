//! TLS-TCP and WSS on the connector's port (feature `tls`), over real loopback sockets.
//!
//! A test CA and leaf certificates (SAN `127.0.0.1` and `localhost`) are generated at test
//! time with rcgen; the client is rustls, trusting only that CA and connecting by IP address
//! (so it sends no SNI, as libpomelo2 does not). Every wait is bounded (tests/util/mod.rs).

#[path = "util/test_pki.rs"]
mod test_pki;
mod util;

use gatehouse::__private::tls::{TlsSession, PLAINTEXT_CHUNK};
use gatehouse::protocol::{encode_package, PackageType, MAX_BODY_LEN};
use gatehouse::server::{Server, TlsConfig};
use gatehouse::CloseReason;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::json;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_pki::TestPki;
use util::{
    builder, decode_msg, parse_server_frame, push_frame, recorder, wait, wait_until, Client, Event,
    Transport, HELLO,
};

// === certificates ============================================================================

/// A CA and a leaf for 127.0.0.1 and localhost, named after the test.
fn pki(name: &str) -> TestPki {
    TestPki::new(name, &["127.0.0.1", "localhost"])
}

/// Clients of a [`TestPki`].
trait ClientOf {
    /// A client trusting only this CA, limited to `versions`.
    fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig>;
}

impl ClientOf for TestPki {
    fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let roots = self.roots();
        #[allow(deprecated)] // ring on purpose, as the server (src/server/tls/config.rs)
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(versions)
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

// === a TLS pomelo client ======================================================================

/// A blocking pomelo client inside TLS: raw packages (TLS-TCP) or masked WebSocket frames
/// (WSS).
struct TlsClient {
    tls: StreamOwned<ClientConnection, TcpStream>,
    ws: bool,
    buf: Vec<u8>,
    sid: Option<u64>,
    /// The stream ended with the server's close_notify (not a bare FIN or a reset).
    clean_end: bool,
}

impl TlsClient {
    /// Connects by IP (no SNI) and completes the TLS handshake; `Err` with rustls' error if
    /// it fails (an untrusted certificate).
    fn connect(addr: SocketAddr, config: Arc<ClientConfig>, ws: bool) -> Result<TlsClient, String> {
        let name = ServerName::IpAddress(addr.ip().into());
        let conn = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(wait())).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        let mut client = TlsClient {
            tls,
            ws,
            buf: Vec::new(),
            sid: None,
            clean_end: false,
        };
        if ws {
            client.upgrade();
        }
        Ok(client)
    }

    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.conn.protocol_version()
    }

    fn upgrade(&mut self) {
        let request = "GET /pomelo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\n\r\n";
        self.tls.write_all(request.as_bytes()).unwrap();
        let deadline = Instant::now() + wait();
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                assert!(head.starts_with("http/1.1 101"), "upgrade refused: {head}");
                assert!(head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="));
                return;
            }
            assert!(self.fill(deadline), "ended before the upgrade response");
        }
    }

    fn send_package(&mut self, kind: PackageType, body: &[u8]) {
        let mut out = Vec::new();
        encode_package(kind, body, &mut out).unwrap();
        self.send_packages(&out);
    }

    fn send_packages(&mut self, bytes: &[u8]) {
        if self.ws {
            let mut frame = Vec::new();
            gatehouse::__private::ws::encode_client_frame(true, 2, [1, 2, 3, 4], bytes, &mut frame);
            self.tls.write_all(&frame).unwrap();
        } else {
            self.tls.write_all(bytes).unwrap();
        }
        self.tls.flush().unwrap();
    }

    /// Reads more plaintext; false at the end of the stream (close_notify, EOF or reset).
    fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the server"
            );
            match self.tls.read(&mut chunk) {
                Ok(0) => {
                    self.clean_end = true;
                    return false;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// The next package (type, body), or `None` at the end of the stream.
    fn next_package(&mut self) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + wait();
        loop {
            if self.ws {
                if let Some((fin, opcode, payload, used)) = parse_server_frame(&self.buf) {
                    assert!(fin);
                    self.buf.drain(..used);
                    if opcode == 8 {
                        return None; // close frame
                    }
                    assert_eq!(opcode, 2, "a binary frame");
                    let (p, n) = gatehouse::protocol::decode_package(&payload, MAX_BODY_LEN)
                        .expect("valid package")
                        .expect("whole package");
                    assert_eq!(n, payload.len(), "one package per frame");
                    return Some((p.kind as u8, p.body.to_vec()));
                }
            } else if let Some((p, used)) =
                gatehouse::protocol::decode_package(&self.buf, MAX_BODY_LEN).expect("valid")
            {
                let out = (p.kind as u8, p.body.to_vec());
                self.buf.drain(..used);
                return Some(out);
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    fn expect(&mut self, kind: PackageType) -> Vec<u8> {
        match self.next_package() {
            Some((k, body)) if k == kind as u8 => body,
            other => panic!("expected {kind:?}, got {other:?}"),
        }
    }

    /// pomelo handshake, ACK, first heartbeat.
    fn start(&mut self) -> &mut TlsClient {
        self.send_package(PackageType::Handshake, HELLO.as_bytes());
        let reply: serde_json::Value =
            serde_json::from_slice(&self.expect(PackageType::Handshake)).unwrap();
        assert_eq!(reply["code"], 200, "{reply}");
        self.sid = reply["user"]["sid"].as_u64();
        self.send_package(PackageType::HandshakeAck, b"");
        self.expect(PackageType::Heartbeat);
        self
    }

    fn echo(&mut self, id: u32) {
        self.send_packages(&Client::request_bytes(id, "test.echo", &json!({"i": id})));
        let msg = decode_msg(&self.expect(PackageType::Data));
        assert_eq!((msg.id, msg.route), (id, None));
        assert_eq!(msg.body, json!({"code": 200, "body": {"i": id}}));
    }
}

/// Reads raw bytes until the server ends the stream (EOF or reset): all of them.
fn read_to_end(mut sock: TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(wait())).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match sock.read(&mut chunk) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection")
            }
            Err(_) => return got, // reset: ended too
        }
    }
}

fn start(b: gatehouse::server::ServerBuilder) -> (Server, util::ClosedEvents) {
    let (handler, _seen) = util::TestHandler::new();
    let (listener, closed) = recorder();
    let server = b.listener(listener).start(handler).expect("server starts");
    (server, closed)
}

// === tests =====================================================================================

#[test]
fn tls13_and_tls12_clients_handshake_request_and_get_pushes_without_sni() {
    let pki = pki("one");
    let (server, _closed) = start(builder().tls(pki.server_config()));
    let addr = server.local_addr();
    for (versions, expected) in [
        (TLS13, rustls::ProtocolVersion::TLSv1_3),
        (TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        for ws in [false, true] {
            let mut c = TlsClient::connect(addr, pki.client(versions), ws).expect("TLS handshake");
            assert_eq!(c.version(), Some(expected));
            c.start();
            c.echo(1);
            c.echo(2);
            // A push from the application, and one from a handler.
            let sid = gatehouse::Sid::from_raw(c.sid.expect("sid"));
            server
                .service()
                .send_message(sid, push_frame("onTick", &json!({"k": 7})))
                .expect("push");
            let msg = decode_msg(&c.expect(PackageType::Data));
            assert_eq!(msg.route.as_deref(), Some("onTick"), "{ws}");
            assert_eq!(msg.body, json!({"k": 7}));
            c.send_packages(&Client::request_bytes(3, "test.push", &json!({})));
            let push = decode_msg(&c.expect(PackageType::Data));
            assert_eq!(
                (push.route.as_deref(), push.body),
                (Some("onPush"), json!({"n": 1}))
            );
            let resp = decode_msg(&c.expect(PackageType::Data));
            assert_eq!((resp.id, resp.body), (3, json!({"code": 200})));
        }
    }
    let m = server.metrics();
    assert_eq!(m.tls_handshakes, 4, "{m:?}");
    assert_eq!(m.tls_handshake_failures, 0, "{m:?}");
}

#[test]
fn a_kick_over_tls_sends_the_kick_package_then_close_notify() {
    let pki = pki("kick");
    let (server, mut closed) = start(builder().tls(pki.server_config()));
    for ws in [false, true] {
        let mut c = TlsClient::connect(server.local_addr(), pki.client(TLS12), ws).unwrap();
        c.start();
        c.send_packages(&Client::request_bytes(
            1,
            "test.kick",
            &json!({"reason": "bye"}),
        ));
        let resp = decode_msg(&c.expect(PackageType::Data));
        assert_eq!((resp.id, resp.body), (1, json!({"code": 200})));
        let kick: serde_json::Value = serde_json::from_slice(&c.expect(PackageType::Kick)).unwrap();
        assert_eq!(kick, json!({"reason": "bye"}));
        assert_eq!(
            c.next_package(),
            None,
            "the end (or a close frame) after the KICK"
        );
        let deadline = Instant::now() + wait();
        while c.fill(deadline) {}
        assert!(
            c.buf.is_empty(),
            "nothing after the close frame: {:?}",
            c.buf
        );
        assert!(c.clean_end, "TLS closed with close_notify (ws: {ws})");
    }
    let events = closed.wait_count(2);
    assert!(events
        .iter()
        .all(|c| c.reason == CloseReason::kick(Some("bye"))));
}

#[test]
fn the_client_sends_no_sni_and_the_session_serves_it() {
    // In memory, through the sans-IO session the I/O thread uses: the ClientHello of a client
    // that connects by IP carries no server name, and the handshake completes without one.
    let pki = pki("mem");
    for versions in [TLS13, TLS12] {
        let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
        let mut client = ClientConnection::new(pki.client(versions), name).unwrap();
        let mut server = TlsSession::new(pki.server_config().current()).unwrap();
        let mut scratch = vec![0u8; PLAINTEXT_CHUNK];
        let mut plain = Vec::new();
        let mut completed = false;
        for _ in 0..10 {
            let mut to_server = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut to_server).unwrap();
            }
            if !to_server.is_empty() {
                let read = server
                    .read(&to_server, &mut scratch, |p| {
                        plain.extend_from_slice(p);
                        Ok(())
                    })
                    .expect("no TLS error");
                completed |= read.handshake_completed;
            }
            let mut to_client = Vec::new();
            while server.wants_write() {
                server.write_to(&mut to_client).unwrap();
            }
            if !to_client.is_empty() {
                client.read_tls(&mut &to_client[..]).unwrap();
                client
                    .process_new_packets()
                    .expect("client accepts the server");
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                break;
            }
        }
        assert!(completed && !server.is_handshaking(), "handshake completed");
        assert_eq!(
            server.server_name(),
            None,
            "no SNI from an IP-address client"
        );
        // Plaintext both ways.
        client.writer().write_all(b"\x01\x00\x00\x02{}").unwrap();
        let mut to_server = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut to_server).unwrap();
        }
        server
            .read(&to_server, &mut scratch, |p| {
                plain.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        assert_eq!(plain, b"\x01\x00\x00\x02{}");
        assert_eq!(server.encrypt(b"pong"), 4);
        let mut to_client = Vec::new();
        while server.wants_write() {
            server.write_to(&mut to_client).unwrap();
        }
        client.read_tls(&mut &to_client[..]).unwrap();
        client.process_new_packets().unwrap();
        let mut got = [0u8; 4];
        client.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
    }
}

#[test]
fn one_port_serves_plain_tcp_plain_ws_tls_and_wss_together() {
    let pki = pki("mixed");
    let (server, _closed) = start(builder().tls(pki.server_config()));
    let addr = server.local_addr();
    let mut tcp = Client::working(addr, Transport::Tcp);
    let mut ws = Client::working(addr, Transport::Ws);
    let mut tls = TlsClient::connect(addr, pki.client(TLS13), false).unwrap();
    let mut wss = TlsClient::connect(addr, pki.client(TLS12), true).unwrap();
    tls.start();
    wss.start();
    for id in 1..=3 {
        tcp.echo(id);
        ws.echo(id);
        tls.echo(id);
        wss.echo(id);
    }
    assert_eq!(server.metrics().tls_handshakes, 2);
}

#[test]
fn a_tls_only_port_closes_plain_clients_and_garbage_with_a_reason() {
    let pki = pki("only");
    let (server, mut closed) = start(builder().tls(pki.server_config()).tls_only(true));
    let addr = server.local_addr();

    // A plain pomelo client: closed without a byte of reply.
    let mut plain = Client::connect(addr, Transport::Tcp);
    plain.send_package(PackageType::Handshake, HELLO.as_bytes());
    assert_eq!(plain.recv(), Event::Eof);
    let reason = closed.wait_count(1)[0].reason.clone();
    assert_eq!(
        reason,
        CloseReason::Tls("plaintext client on a TLS-only port".into())
    );
    assert_eq!(
        reason.to_string(),
        "tls: plaintext client on a TLS-only port"
    );

    // A plain WebSocket upgrade: the same.
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        read_to_end(sock).is_empty(),
        "no HTTP answer on a TLS-only port"
    );

    // Garbage that starts like a TLS record: rustls refuses it, its alert (if any) is sent,
    // then the connection is closed.
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .unwrap();
    let got = read_to_end(sock);
    if !got.is_empty() {
        assert_eq!(
            got[0], 0x15,
            "only an alert record may come back: {got:02x?}"
        );
    }

    // TLS itself still works there.
    let mut tls = TlsClient::connect(addr, pki.client(TLS13), false).unwrap();
    tls.start().echo(1);

    let events = closed.wait_count(3).to_vec();
    assert!(
        events
            .iter()
            .all(|c| matches!(&c.reason, CloseReason::Tls(_))),
        "{events:?}"
    );
    assert!(
        matches!(&events[2].reason, CloseReason::Tls(t) if !t.contains("plaintext")),
        "the garbage's reason is rustls' error: {events:?}"
    );
    wait_until("three TLS closes counted", || {
        let m = server.metrics();
        m.closes.tls == 3 && m.tls_handshake_failures == 3
    });
    assert_eq!(server.metrics().tls_handshakes, 1);
}

#[test]
fn a_silent_or_stalled_tls_handshake_is_closed_at_its_deadline() {
    let pki = pki("slow");
    let timeout = util::scaled(Duration::from_millis(200));
    let (server, mut closed) = start(
        builder()
            .tls(pki.server_config())
            .tls_only(true)
            .tls_handshake_timeout(timeout),
    );
    let addr = server.local_addr();

    // Sends nothing at all.
    let silent = TcpStream::connect(addr).unwrap();
    // Sends half a ClientHello.
    let name = ServerName::IpAddress(addr.ip().into());
    let mut client = ClientConnection::new(pki.client(TLS13), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&hello[..hello.len() / 2]).unwrap();

    let t0 = Instant::now();
    assert!(
        read_to_end(silent).is_empty(),
        "nothing for a peer that sent nothing"
    );
    // A peer in the middle of its hello gets at most an alert (close_notify) before the end.
    let got = read_to_end(half);
    assert!(got.is_empty() || got[0] == 0x15, "{got:02x?}");
    assert!(t0.elapsed() >= timeout / 2, "closed before its deadline");
    for c in closed.wait_count(2) {
        assert!(
            matches!(&c.reason, CloseReason::Tls(t) if t.starts_with("handshake not completed within")),
            "{c:?}"
        );
    }
    wait_until("counted", || server.metrics().tls_handshake_failures == 2);
}

#[test]
fn reloading_the_certificate_serves_new_connections_and_keeps_old_ones() {
    let first = pki("first");
    let second = pki("second");
    let tls = first.server_config();
    let (server, _closed) = start(builder().tls(tls.clone()));
    let addr = server.local_addr();

    let mut old = TlsClient::connect(addr, first.client(TLS13), false).unwrap();
    old.start().echo(1);

    // A bad reload changes nothing.
    let err = tls
        .reload_pem(first.leaf_pem.as_bytes(), second.key_pem.as_bytes())
        .unwrap_err();
    assert!(
        matches!(err, gatehouse::server::TlsConfigError::KeyMismatch),
        "{err}"
    );
    TlsClient::connect(addr, first.client(TLS12), false)
        .expect("still the first certificate")
        .start();

    // Through files, as an operator renews a certificate.
    let dir = std::env::temp_dir().join(format!("gatehouse-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &second.leaf_pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    tls.reload_pem_files(&cert, &key).expect("reload");
    std::fs::remove_dir_all(&dir).unwrap();

    // New connections get the second certificate: a client trusting only the first CA
    // refuses it, one trusting the second accepts it.
    let refused = TlsClient::connect(addr, first.client(TLS13), false).err();
    assert!(
        refused
            .as_deref()
            .is_some_and(|e| e.contains("certificate")),
        "{refused:?}"
    );
    let mut new = TlsClient::connect(addr, second.client(TLS13), true).unwrap();
    new.start().echo(1);
    // The old connection is unaffected.
    old.echo(2);
    old.echo(3);
}

#[test]
fn a_tls_client_that_does_not_read_is_closed_as_a_slow_consumer() {
    let pki = pki("slowreader");
    let (server, mut closed) = start(
        builder()
            .tls(pki.server_config())
            .max_outbound_bytes(256 * 1024),
    );
    let addr = server.local_addr();
    let mut c = TlsClient::connect(addr, pki.client(TLS13), false).unwrap();
    c.start();
    let sid = gatehouse::Sid::from_raw(c.sid.unwrap());
    // Never reads again: pushes pile up in the kernel, then rustls (64 KiB), then the
    // connection's own output until the limit.
    let frame = push_frame("onBig", &json!({"p": "x".repeat(16 * 1024)}));
    let deadline = Instant::now() + wait();
    loop {
        let _ = server.service().send_message(sid, frame.clone());
        if server.metrics().closes.slow_consumer > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never closed as a slow consumer");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(closed.wait_count(1)[0].reason, CloseReason::SlowConsumer);
    drop(c);
}

#[test]
fn config_errors_name_their_cause() {
    use gatehouse::server::TlsConfigError;
    let a = pki("a");
    let b = pki("b");
    let missing = std::path::Path::new("/nonexistent/gatehouse/cert.pem");
    match TlsConfig::from_pem_files(missing, missing) {
        Err(err @ TlsConfigError::Read { .. }) => {
            assert!(
                err.to_string().contains("/nonexistent/gatehouse/cert.pem"),
                "{err}"
            )
        }
        other => panic!("{other:?}"),
    }
    let err = TlsConfig::from_pem(b"", a.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::NoCertificate), "{err}");
    let err = TlsConfig::from_pem(a.key_pem.as_bytes(), a.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::NoCertificate), "{err}");
    let err = TlsConfig::from_pem(a.leaf_pem.as_bytes(), a.leaf_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::NoKey), "{err}");
    let err = TlsConfig::from_pem(a.leaf_pem.as_bytes(), b.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::KeyMismatch), "{err}");
    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    let err = TlsConfig::from_pem(broken.as_bytes(), a.key_pem.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::BadPem(_)), "{err}");
    let bad_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let err = TlsConfig::from_pem(a.leaf_pem.as_bytes(), bad_key.as_bytes()).unwrap_err();
    assert!(matches!(err, TlsConfigError::UnsupportedKey(_)), "{err}");
    // tls_only without a certificate is a configuration error.
    let (handler, _) = util::TestHandler::new();
    let err = builder().tls_only(true).start(handler).unwrap_err();
    assert!(err.to_string().contains("tls_only"), "{err}");
}

#[test]
fn where_plain_clients_are_welcome_the_tls_deadline_starts_with_a_client_hello() {
    let pki = pki("optional");
    let timeout = util::scaled(Duration::from_millis(200));
    let (server, mut closed) = start(
        builder()
            .tls(pki.server_config())
            .tls_handshake_timeout(timeout),
    );
    let addr = server.local_addr();
    // A plain client that has not sent its first byte yet: the pomelo handshake timeout (10 s)
    // covers it, not the TLS one.
    let mut plain = Client::connect(addr, Transport::Tcp);
    // A TLS client stalled in its hello: closed at the TLS deadline.
    let name = ServerName::IpAddress(addr.ip().into());
    let mut hello = Vec::new();
    ClientConnection::new(pki.client(TLS12), name)
        .unwrap()
        .write_tls(&mut hello)
        .unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    let got = read_to_end(half);
    assert!(got.is_empty() || got[0] == 0x15, "{got:02x?}");
    assert!(matches!(
        &closed.wait_count(1)[0].reason,
        CloseReason::Tls(t) if t.starts_with("handshake not completed")
    ));
    // The plain client, older than the closed one, is still served.
    plain.start();
    plain.echo(1);
    assert_eq!(server.metrics().tls_handshake_failures, 1);
}
