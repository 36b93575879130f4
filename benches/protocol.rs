//! pomelo wire codec costs per message: decoding what clients send, encoding what the server
//! pushes and answers. Pure functions over byte slices, so these numbers are stable relative to
//! each other even on a noisy machine.
//!
//! The `protobuf` group puts pinus's protobuf bodies beside the JSON path (serde_json
//! `to_vec` / `from_slice`) on the same typical game push, both ways.
//!
//! Run: `cargo bench --bench protocol` (only the protobuf group: `-- protobuf`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gatehouse::protocol::{
    decode_message, decode_package, encode_data, encode_push, encode_response, Message, Route,
};
use std::hint::black_box;
use std::time::Duration;

const MAX_BODY: usize = 64 * 1024;

fn request_package(id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let msg = Message::request(
        id,
        Route::Name("connector.entryHandler.echo"),
        br#"{"t":1234567}"#,
    );
    encode_data(&msg, &mut out).expect("encodable");
    out
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let one = request_package(7);
    group.throughput(Throughput::Elements(1));
    group.bench_function("request_package_and_message", |b| {
        b.iter(|| {
            let (package, used) = decode_package(black_box(&one), MAX_BODY).unwrap().unwrap();
            let msg = decode_message(package.body).unwrap();
            black_box((used, msg.id, msg.body.len()))
        })
    });
    // A read buffer holding 64 requests, as one 64 KiB read delivers them.
    let stream: Vec<u8> = (1..=64).flat_map(request_package).collect();
    group.throughput(Throughput::Elements(64));
    group.bench_function("stream_of_64_requests", |b| {
        b.iter(|| {
            let mut buf = black_box(&stream[..]);
            let mut ids = 0u64;
            while let Ok(Some((package, used))) = decode_package(buf, MAX_BODY) {
                ids += u64::from(decode_message(package.body).unwrap().id);
                buf = &buf[used..];
            }
            black_box(ids)
        })
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let body = br#"{"i":17,"p":"xxxxxxxxxxxxxxxx"}"#;
    let mut out = Vec::with_capacity(256);
    group.bench_function("push_onPush_32B", |b| {
        b.iter(|| {
            out.clear();
            encode_push(Route::Name("onPush"), black_box(body), &mut out).unwrap();
            black_box(out.len())
        })
    });
    let reply = br#"{"code":200,"t":1234567}"#;
    group.bench_function("response_24B", |b| {
        b.iter(|| {
            out.clear();
            encode_response(black_box(4242), black_box(reply), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

/// A move push as a game sends it many times a second.
fn move_push() -> (gatehouse::protocol::protobuf::Protos, serde_json::Value) {
    let protos = gatehouse::protocol::protobuf::Protos::from_json(
        r#"{"onMove": {"required uInt32 entityId": 1, "repeated Pos path": 2,
            "optional float speed": 3, "optional string name": 4,
            "message Pos": {"required float x": 1, "required float y": 2}}}"#,
        "{}",
    )
    .expect("bench protos");
    let value = serde_json::json!({
        "entityId": 10293,
        "path": [{"x": 101.5, "y": 88.25}, {"x": 102.5, "y": 88.75},
                 {"x": 103.75, "y": 89.5}, {"x": 104.0, "y": 90.25}],
        "speed": 3.5,
        "name": "Wanderer",
    });
    (protos, value)
}

fn protobuf(c: &mut Criterion) {
    let (protos, value) = move_push();
    let push = protos.server("onMove").expect("route");
    let mut pb = Vec::new();
    push.encode(&value, &mut pb).expect("encodes");
    let json = serde_json::to_vec(&value).expect("serializes");
    // Printed once so a run records the sizes next to the times; on stderr, because test
    // runners (nextest) parse a bench's stdout when they list it.
    eprintln!(
        "protobuf/move_push: {} bytes as protobuf, {} bytes as JSON",
        pb.len(),
        json.len()
    );
    let mut group = c.benchmark_group("protobuf");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(256);
    group.bench_function("encode_move_push/protobuf", |b| {
        b.iter(|| {
            out.clear();
            let len = push.encoded_len(black_box(&value)).unwrap();
            out.reserve(len);
            push.encode(black_box(&value), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("encode_move_push/protobuf_no_len", |b| {
        b.iter(|| {
            out.clear();
            push.encode(black_box(&value), &mut out).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("encode_move_push/json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&value)).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("decode_move_push/protobuf", |b| {
        b.iter(|| black_box(push.decode(black_box(&pb)).unwrap()))
    });
    group.bench_function("decode_move_push/json", |b| {
        b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&json)).unwrap()))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = decode, encode, protobuf }
criterion_main!(benches);
