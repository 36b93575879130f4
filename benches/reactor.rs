//! The connector's outbound path per message, end to end over loopback TCP: a push queued with
//! `send_message` → the shard inbox → the I/O thread's drain → appended to the connection's
//! buffer → `write` → read by a client. Two shapes:
//!
//! * `coalesced_1000`: 1 000 pushes queued back to back, then read — the I/O thread drains them
//!   in a few turns and writes them with a few syscalls (what a busy game server sees);
//! * `one_at_a_time`: queue one push, read it, repeat — a wake-up, a drain and a `write` per
//!   message (the unloaded case).
//!
//! Both include the client's reads, which a real deployment pays in another process. Run:
//! `cargo bench --bench reactor`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gatehouse::protocol::{decode_package, encode_package, encode_push, PackageType, Route};
use gatehouse::server::{Handler, Request, Response, Server};
use gatehouse::{Frame, Sid};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Nothing;

impl Handler for Nothing {
    fn request(&self, _: Request<'_>) -> Response {
        Response::Json(serde_json::json!({"code": 200}))
    }
}

/// Reads one whole package (blocking).
fn read_package(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).expect("package header");
    let len = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).expect("package body");
    (header[0], body)
}

/// A client that has completed the handshake, and its session id.
fn working_client(server: &Server) -> (TcpStream, Sid) {
    let mut stream = TcpStream::connect(server.local_addr()).expect("connect");
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut out = Vec::new();
    encode_package(
        PackageType::Handshake,
        br#"{"sys":{"type":"bench","version":"1"}}"#,
        &mut out,
    )
    .unwrap();
    stream.write_all(&out).unwrap();
    let (kind, _) = read_package(&mut stream);
    assert_eq!(kind, PackageType::Handshake as u8);
    out.clear();
    encode_package(PackageType::HandshakeAck, b"", &mut out).unwrap();
    stream.write_all(&out).unwrap();
    // No heartbeats configured, so nothing follows the ack. Wait for the session to be working:
    // a push only goes out once the ack was processed, so poll with one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sid = loop {
        let mut found = None;
        server
            .service()
            .for_each_session(|sid, _| found = Some(sid));
        if let Some(sid) = found {
            break sid;
        }
        assert!(Instant::now() < deadline, "session never appeared");
        std::thread::sleep(Duration::from_millis(1));
    };
    let probe = push_frame();
    loop {
        server.service().send_message(sid, probe.clone()).unwrap();
        let mut buf = [0u8; 64];
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .ok();
        if let Ok(n) = stream.read(&mut buf) {
            if n > 0 && decode_package(&buf[..n], 1 << 16).is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "session never became working");
    }
    // Swallow any probe still in flight, so the timed reads count only the benchmark's pushes.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let mut rest = [0u8; 4096];
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    (stream, sid)
}

fn push_frame() -> Frame {
    let mut out = Vec::new();
    encode_push(
        Route::Name("onPush"),
        br#"{"i":1,"p":"xxxxxxxxxxxxxxxx"}"#,
        &mut out,
    )
    .unwrap();
    Frame::new(out)
}

fn push_path(c: &mut Criterion) {
    let server = Server::builder()
        .addr("127.0.0.1:0".parse().unwrap())
        .io_threads(1)
        .heartbeat(None)
        .start(Arc::new(Nothing))
        .expect("server");
    let (mut client, sid) = working_client(&server);
    let frame = push_frame();
    let mut sink = vec![0u8; 256 * 1024];
    let mut group = c.benchmark_group("reactor_push");

    for (name, batch) in [("coalesced_1000", 1000u64), ("one_at_a_time", 1)] {
        group.throughput(Throughput::Elements(batch));
        group.bench_function(BenchmarkId::new(name, frame.len()), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..batch {
                        server
                            .service()
                            .send_message(sid, frame.clone())
                            .expect("queued");
                    }
                    let mut want = batch as usize * frame.len();
                    while want > 0 {
                        let n = client
                            .read(&mut sink[..want.min(256 * 1024)])
                            .expect("read");
                        assert!(n > 0, "server closed the connection");
                        want -= n;
                    }
                }
                start.elapsed()
            })
        });
    }
    group.finish();
    server.shutdown(None);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = push_path }
criterion_main!(benches);
