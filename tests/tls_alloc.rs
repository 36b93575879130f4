//! Heap allocations per push on an established TLS connection, counted exactly by a global
//! allocator in the style of `tests/push_alloc.rs` (feature `tls`).
//!
//! The server's TLS layer is driven sans I/O, as the I/O thread drives it: a push's PUSH
//! package goes into [`TlsSession::encrypt`], the ciphertext comes out of
//! [`TlsSession::write_to`] into an output buffer that is reused (its capacity reserved once),
//! as the socket would take it. A rustls client on the same thread does the handshake and,
//! where a test says so, decrypts what the server sent, outside the measured calls.
//!
//! # The figure, and why
//!
//! **One allocation per TLS record** the server encrypts, hence one per push when each push
//! is written on its own, and one per write when the I/O thread coalesces several pushes into
//! one `encrypt` call (up to 16 KiB of plaintext make one record; more make one record per
//! 16 KiB). None depend on the session's history: the counts are the same on the first push
//! after warm-up and the hundredth.
//!
//! The allocation is rustls' (0.23), not gatehouse's: its buffered API (`ServerConnection`'s
//! `writer()` / `write_tls`, which `TlsSession` uses) encrypts each record into a freshly
//! allocated `Vec` (the record header, payload, content type and AEAD tag, sized exactly) and
//! queues that `Vec` in its outgoing chunk list until `write_tls` has written it out and drops
//! it. Everything around it reuses memory: the chunk list's `VecDeque` keeps its capacity, the
//! AEAD seals in place, and `write_tls` hands the queued chunks to the output with one vectored
//! write built on the stack. The deallocation that matches is in `write_to`.
//!
//! rustls' unbuffered API (`rustls::unbuffered::UnbufferedServerConnection`, whose
//! `WriteTraffic::encrypt` seals into a caller-provided `&mut [u8]`) would avoid that one
//! allocation per record: the ciphertext could go straight into the connection's own output
//! buffer. The cost is driving the handshake through its state enum instead of
//! `read_tls`/`process_new_packets`; at one `malloc`/`free` pair per record (against the
//! record's AEAD work, see BENCHMARKS.md "TLS") the buffered API was kept.
//!
//! The counter is per thread (const-initialised thread-locals, no destructor), so tests running
//! in parallel cannot disturb each other. `detector_sees_allocations` proves it is live.

use gatehouse::__private::tls::{TlsSession, PLAINTEXT_CHUNK};
use gatehouse::protocol::encode_push;
use gatehouse::server::TlsConfig;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};
use std::hint::black_box;
use std::io::Read;
use std::sync::Arc;

// === the counting allocator ======================================================================

#[path = "util/counting_alloc.rs"]
mod counting_alloc;
#[path = "util/test_pki.rs"]
mod test_pki;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

use counting_alloc::allocs_in;
use test_pki::TestPki;

// === an established TLS connection, in memory ====================================================

/// A server `TlsSession` past its handshake with a rustls client, and the buffers the
/// measured loop reuses.
struct Established {
    server: TlsSession,
    client: ClientConnection,
    /// Where the server's ciphertext goes, as the socket would take it; reserved once.
    out: Vec<u8>,
}

/// A CA and a leaf for 127.0.0.1 made with rcgen: (server config, client trusting the CA).
fn configs(versions: &[&'static rustls::SupportedProtocolVersion]) -> (TlsConfig, ClientConfig) {
    let pki = TestPki::new("tls_alloc", &["127.0.0.1"]);
    let server = pki.server_config();
    let roots = pki.roots();
    // The server's own crypto provider (ring): rustls 0.23.48 deprecates naming it directly.
    let provider = server.current().crypto_provider().clone();
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

/// Moves every byte the client wants to send to the server and back until neither has
/// anything left: the handshake, the TLS 1.3 session tickets, then whatever is pending.
fn pump(server: &mut TlsSession, client: &mut ClientConnection) {
    let mut scratch = vec![0; PLAINTEXT_CHUNK];
    let mut wire = Vec::new();
    loop {
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire).expect("client write_tls");
        }
        let to_server = wire.len();
        if to_server > 0 {
            server
                .read(&wire, &mut scratch, |_| Ok(()))
                .expect("server read");
        }
        wire.clear();
        while server.wants_write() {
            server.write_to(&mut wire).expect("server write_to");
        }
        let to_client = wire.len();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).expect("client read_tls");
            client.process_new_packets().expect("client process");
        }
        if to_server == 0 && to_client == 0 {
            return;
        }
    }
}

fn established(versions: &[&'static rustls::SupportedProtocolVersion]) -> Established {
    let (server_config, client_config) = configs(versions);
    let mut server = TlsSession::new(server_config.current()).expect("server session");
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut client = ClientConnection::new(Arc::new(client_config), name).expect("client");
    pump(&mut server, &mut client);
    assert!(
        !server.is_handshaking() && !client.is_handshaking(),
        "handshake did not complete: {server:?}"
    );
    Established {
        server,
        client,
        out: Vec::with_capacity(256 * 1024),
    }
}

/// A PUSH package on route `onPush` of exactly `len` bytes (header included).
fn push_package(len: usize) -> Vec<u8> {
    // 4-byte package head + flag + route length + "onPush" + `{"p":"` … `"}`.
    let filler = len - 12 - 8;
    let body = format!(r#"{{"p":"{}"}}"#, "x".repeat(filler));
    let mut out = Vec::new();
    encode_push("onPush".into(), body.as_bytes(), &mut out).expect("encodable push");
    assert_eq!(out.len(), len);
    out
}

impl Established {
    /// What the I/O thread does for one write of `plain`: encrypt it, write the ciphertext
    /// into the output buffer. Returns the ciphertext length.
    fn send(&mut self, plain: &[u8]) -> usize {
        let taken = self.server.encrypt(plain);
        assert_eq!(taken, plain.len(), "rustls refused plaintext");
        let before = self.out.len();
        while self.server.wants_write() {
            self.server.write_to(&mut self.out).expect("write_to a Vec");
        }
        self.out.len() - before
    }

    /// Hands the output buffer's ciphertext to the client and returns the plaintext it reads
    /// (not measured: the client is the other end of the wire).
    fn client_receives(&mut self) -> Vec<u8> {
        let mut rest = &self.out[..];
        while !rest.is_empty() {
            self.client.read_tls(&mut rest).expect("client read_tls");
            self.client.process_new_packets().expect("client decrypts");
        }
        self.out.clear();
        let mut plain = Vec::new();
        match self.client.reader().read_to_end(&mut plain) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("client reader: {err}"),
        }
        plain
    }
}

/// After warm-up, `n` pushes of `frame` (each its own write, as when pushes arrive one at a
/// time): the allocations of all of them.
fn allocs_for_pushes(conn: &mut Established, frame: &[u8], n: u64) -> u64 {
    for _ in 0..8 {
        conn.send(frame);
        conn.out.clear();
    }
    let (count, ()) = allocs_in(|| {
        for _ in 0..n {
            black_box(conn.send(black_box(frame)));
            conn.out.clear();
        }
    });
    count
}

// === tests =======================================================================================

#[test]
fn detector_sees_allocations() {
    let (n, v) = allocs_in(|| black_box(vec![1u8; 100]));
    assert_eq!(v.len(), 100);
    assert!(n >= 1, "the counting allocator saw no allocation for a Vec");
}

/// The figure: one allocation per push written on its own, TLS 1.3 and TLS 1.2, for a small
/// and a 1 KiB push (one record each).
#[test]
fn one_allocation_per_push_tls13_and_tls12() {
    const N: u64 = 100;
    for (label, version) in [
        ("TLS 1.3", &rustls::version::TLS13),
        ("TLS 1.2", &rustls::version::TLS12),
    ] {
        let mut conn = established(&[version]);
        for len in [64, 1024] {
            let frame = push_package(len);
            let count = allocs_for_pushes(&mut conn, &frame, N);
            assert_eq!(
                count, N,
                "{label}, {len}-byte push: {count} allocations for {N} pushes, expected exactly \
                 one per push (the record's Vec inside rustls)"
            );
        }
    }
}

/// Coalesced pushes (the I/O thread encrypting what `ConnCore` queued in one call): one
/// record, one allocation, for up to 16 KiB of plaintext; beyond that one per 16 KiB record.
#[test]
fn one_allocation_per_record_when_pushes_are_coalesced() {
    let mut conn = established(&[&rustls::version::TLS13]);
    let frame = push_package(64);
    let sixteen: Vec<u8> = frame.repeat(16);
    let (count, _) = allocs_in(|| conn.send(&sixteen));
    conn.out.clear();
    // Warm-up done by the first call; measure a second one.
    let (count2, _) = allocs_in(|| conn.send(&sixteen));
    conn.out.clear();
    assert_eq!(
        (count, count2),
        (1, 1),
        "16 × 64-byte pushes in one write: expected 1 allocation (one record)"
    );

    let big = push_package(1024).repeat(40); // 40 KiB: records of 16 + 16 + 8 KiB
    let (count, _) = allocs_in(|| conn.send(&big));
    conn.out.clear();
    assert_eq!(
        count, 3,
        "40 KiB of pushes in one write: expected 3 allocations (three records)"
    );
}

/// The pushes are real: what the server sent decrypts, at the client, to exactly the
/// packages pushed, in order (so the counts above are for work that was done).
#[test]
fn client_decrypts_exactly_the_pushes() {
    let mut conn = established(&[&rustls::version::TLS13]);
    let a = push_package(64);
    let b = push_package(1024);
    let ciphertext = conn.send(&a) + conn.send(&b);
    assert!(
        ciphertext > a.len() + b.len(),
        "ciphertext ({ciphertext} B) should be larger than the plaintext"
    );
    let got = conn.client_receives();
    assert_eq!(got, [a, b].concat());
}
