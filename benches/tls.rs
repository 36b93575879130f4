//! What TLS costs the server (feature `tls`): CPU per session setup and per push, measured on
//! gatehouse's sans-IO TLS session (`TlsSession`, the one the I/O thread drives) with the
//! server configuration `TlsConfig` builds (ring, TLS 1.3 and 1.2, rustls' in-memory session
//! cache for resumption), a certificate made once with rcgen (ECDSA P-256).
//!
//! **Only the server's calls are timed.** A rustls client runs in the same loop, on the same
//! thread, with buffers instead of sockets, but its work is outside the timed sections
//! (`iter_custom` adds up only the server's `TlsSession::new`, `read` and `write_to` calls), so
//! a handshake figure is the server's share alone: for a full handshake, its ECDHE key share,
//! its ECDSA signature and the key schedule; no sockets, no kernel.
//!
//! * `setup/*`: one whole handshake per iteration, from `TlsSession::new` to the last byte the
//!   server sends (TLS 1.3 session tickets included). `full_tls13` and `full_tls12` use a
//!   client with resumption off that offers X25519 first, as OpenSSL (Node, libpomelo2) and
//!   browsers do; `full_tls13_p384` a client in rustls 0.23.48's *ring* default order, which
//!   puts secp384r1 first (the server follows the client's order, and *ring*'s P-384 is generic
//!   big-number code: the costly case); `resumed_tls13` an X25519 client that kept the tickets
//!   of an earlier handshake (PSK with ECDHE, rustls' default), so the server skips the
//!   certificate and signature. Each handshake is checked (outside the timing) to be the kind
//!   and group its name says.
//! * `push/*`: an established TLS 1.3 session; per iteration one PUSH package (64 B or 1 KiB,
//!   header included) goes through `encrypt` and `write_to` into an output buffer that is
//!   reused, as the I/O thread does with each write. `plain_*` is what a plain connection does
//!   instead: copy the package into its output buffer. `tls_16x64B_coalesced` is 16 small
//!   pushes that the I/O thread writes at once (one record). Every call here is the server's,
//!   so these use plain `iter`.
//!
//! The plain per-setup cost has no sans-IO equivalent here (a plain setup is `ConnCore`'s
//! pomelo handshake plus the kernel's work); BENCHMARKS.md gives it from the loadgen runs.
//!
//! Run: `cargo bench --features tls --bench tls` (`-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gatehouse::__private::tls::{TlsSession, PLAINTEXT_CHUNK};
use gatehouse::protocol::encode_push;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, HandshakeKind, NamedGroup, RootCertStore, ServerConfig,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/util/test_pki.rs"]
mod test_pki;
use test_pki::TestPki;

/// The server configuration and the root store a client needs to trust it.
fn server_and_roots() -> (Arc<ServerConfig>, RootCertStore) {
    let pki = TestPki::new("bench", &["127.0.0.1"]);
    (pki.server_config().current(), pki.roots())
}

/// Which key exchange group the client offers first (its key share in TLS 1.3; the server
/// follows the client's order in both versions).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kx {
    /// X25519 first: what OpenSSL (Node, libpomelo2) and browsers offer.
    X25519,
    /// rustls 0.23.48's *ring* default order, secp384r1 first: what a rustls client with that
    /// provider offers.
    RingDefault,
}

/// *ring*'s default key exchange groups, in its order (secp384r1 first in rustls 0.23.48).
#[allow(deprecated)] // rustls 0.23.48 deprecates naming the ring provider; see config.rs
fn ring_default_kx_groups() -> Vec<&'static dyn rustls::crypto::SupportedKxGroup> {
    rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec()
}

/// A client trusting `roots`, speaking only `version`, with the server's crypto provider
/// (ring; rustls 0.23.48 deprecates naming it directly), its groups in `kx` order.
fn client_config(
    server: &ServerConfig,
    roots: &RootCertStore,
    version: &'static rustls::SupportedProtocolVersion,
    kx: Kx,
    resume: bool,
) -> Arc<ClientConfig> {
    let mut provider = (**server.crypto_provider()).clone();
    match kx {
        Kx::X25519 => provider
            .kx_groups
            .sort_by_key(|group| group.name() != NamedGroup::X25519),
        // Not the server's order (X25519 first since src/server/tls/config.rs reorders it):
        // *ring*'s own, as a rustls client using that provider unchanged has it.
        Kx::RingDefault => provider.kx_groups = ring_default_kx_groups(),
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Arc::new(config)
}

/// Buffers one handshake loop reuses.
struct Wire {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    scratch: Vec<u8>,
}

impl Wire {
    fn new() -> Wire {
        Wire {
            to_server: Vec::with_capacity(64 * 1024),
            to_client: Vec::with_capacity(64 * 1024),
            scratch: vec![0; PLAINTEXT_CHUNK],
        }
    }
}

/// One handshake between a new server session and a new client, bytes moved in memory until
/// neither side has anything to send; returns the established server session, the time spent
/// in the server's calls only, and what the client saw (full or resumed, the group).
fn handshake(
    server_config: &Arc<ServerConfig>,
    client_config: &Arc<ClientConfig>,
    wire: &mut Wire,
) -> (TlsSession, Duration, Seen) {
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut client = ClientConnection::new(client_config.clone(), name).expect("client");
    let t0 = Instant::now();
    let mut server = TlsSession::new(server_config.clone()).expect("server session");
    let mut server_time = t0.elapsed();
    loop {
        wire.to_server.clear();
        while client.wants_write() {
            client
                .write_tls(&mut wire.to_server)
                .expect("client write_tls");
        }
        wire.to_client.clear();
        let t0 = Instant::now();
        if !wire.to_server.is_empty() {
            server
                .read(&wire.to_server, &mut wire.scratch, |_| Ok(()))
                .expect("server read");
        }
        while server.wants_write() {
            server
                .write_to(&mut wire.to_client)
                .expect("server write_to");
        }
        server_time += t0.elapsed();
        let mut rest = &wire.to_client[..];
        while !rest.is_empty() {
            client.read_tls(&mut rest).expect("client read_tls");
            client.process_new_packets().expect("client process");
        }
        if wire.to_server.is_empty() && wire.to_client.is_empty() {
            break;
        }
    }
    assert!(!server.is_handshaking() && !client.is_handshaking());
    let seen = Seen {
        kind: client.handshake_kind(),
        group: client.negotiated_key_exchange_group().map(|g| g.name()),
    };
    (server, server_time, seen)
}

/// What the client negotiated, to check that each bench measures what its name says.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: Option<HandshakeKind>,
    group: Option<NamedGroup>,
}

fn setup(c: &mut Criterion) {
    let (server, roots) = server_and_roots();
    let mut wire = Wire::new();
    let mut group = c.benchmark_group("setup");
    group.throughput(Throughput::Elements(1));
    let (tls13, tls12) = (&rustls::version::TLS13, &rustls::version::TLS12);
    let (full, resumed) = (HandshakeKind::Full, HandshakeKind::Resumed);
    let (x25519, p384) = (NamedGroup::X25519, NamedGroup::secp384r1);
    for (name, version, kx, resume, expect) in [
        ("full_tls13", tls13, Kx::X25519, false, (full, x25519)),
        (
            "full_tls13_p384",
            tls13,
            Kx::RingDefault,
            false,
            (full, p384),
        ),
        ("resumed_tls13", tls13, Kx::X25519, true, (resumed, x25519)),
        ("full_tls12", tls12, Kx::X25519, false, (full, x25519)),
    ] {
        let client = client_config(&server, &roots, version, kx, resume);
        let expected = Seen {
            kind: Some(expect.0),
            group: Some(expect.1),
        };
        // Once before measuring: primes a resuming client's ticket store, and checks that the
        // handshakes are the kind this bench is named for.
        let (_, _, first) = handshake(&server, &client, &mut wire);
        if !resume {
            assert_eq!(first, expected, "{name}");
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (session, server_time, seen) = handshake(&server, &client, &mut wire);
                    total += server_time;
                    assert_eq!(seen, expected, "{name}");
                    black_box(session);
                }
                total
            })
        });
    }
    group.finish();
}

/// A PUSH package on route `onPush` of exactly `len` bytes (header included).
fn push_package(len: usize) -> Vec<u8> {
    // 4-byte package head + flag + route length + "onPush" + `{"p":"` … `"}`.
    let body = format!(r#"{{"p":"{}"}}"#, "x".repeat(len - 12 - 8));
    let mut out = Vec::new();
    encode_push("onPush".into(), body.as_bytes(), &mut out).expect("encodable push");
    assert_eq!(out.len(), len);
    out
}

fn push(c: &mut Criterion) {
    let (server, roots) = server_and_roots();
    let client = client_config(&server, &roots, &rustls::version::TLS13, Kx::X25519, false);
    let (mut session, _, _) = handshake(&server, &client, &mut Wire::new());
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("push");
    group.throughput(Throughput::Elements(1));
    for len in [64, 1024] {
        let frame = push_package(len);
        group.bench_function(format!("plain_{len}B"), |b| {
            b.iter(|| {
                out.clear();
                out.extend_from_slice(black_box(&frame));
                black_box(out.len())
            })
        });
        group.bench_function(format!("tls13_{len}B"), |b| {
            b.iter(|| {
                out.clear();
                let taken = session.encrypt(black_box(&frame));
                while session.wants_write() {
                    session.write_to(&mut out).expect("write_to a Vec");
                }
                black_box((taken, out.len()))
            })
        });
    }
    let sixteen = push_package(64).repeat(16);
    group.throughput(Throughput::Elements(16));
    group.bench_function("tls13_16x64B_coalesced", |b| {
        b.iter(|| {
            out.clear();
            let taken = session.encrypt(black_box(&sixteen));
            while session.wants_write() {
                session.write_to(&mut out).expect("write_to a Vec");
            }
            black_box((taken, out.len()))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500));
    targets = setup, push
}
criterion_main!(benches);
