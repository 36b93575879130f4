//! The harness support itself. The fault proxy (tests/support/proxy.rs), against a real
//! redis-server: it proxies,
//! it swallows deterministically (Redis counts the receiver, the client gets nothing), and its
//! reset ends the proxied connection while new connections work again.

#[path = "support/harness.rs"]
mod harness;
mod support;

use std::time::{Duration, Instant};

use harness::proxy::FaultProxy;
use support::redis_server::RedisServer;

fn ping(con: &mut redis::Connection) -> String {
    redis::cmd("PING").query(con).expect("PING")
}

fn publish(con: &mut redis::Connection, channel: &str, msg: &str) -> i64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(msg)
        .query(con)
        .expect("PUBLISH")
}

#[test]
fn ping_through_the_proxy() {
    for server in [RedisServer::start(), RedisServer::start_tcp()] {
        let proxy = FaultProxy::start(server.addr());
        let client = redis::Client::open(proxy.url()).expect("client");
        let mut con = client.get_connection().expect("connect through the proxy");
        assert_eq!(ping(&mut con), "PONG");
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.swallowed_bytes(), 0);
    }
}

#[test]
fn swallow_is_silent_then_reset_errors_and_reconnect_works() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.addr());
    let mut direct = server.client();

    let client = redis::Client::open(proxy.url()).expect("client");
    let mut sub_con = client
        .get_connection()
        .expect("subscriber through the proxy");
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("ch").expect("SUBSCRIBE");
    sub.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");

    // Baseline: delivered through the proxy.
    assert_eq!(publish(&mut direct, "ch", "before"), 1);
    let msg = sub.get_message().expect("message before the swallow");
    assert_eq!(msg.get_payload::<String>().expect("payload"), "before");

    let swallow = Duration::from_millis(300);
    let t0 = Instant::now();
    proxy.swallow_then_reset(swallow);
    // Redis still counts the proxied subscriber as a receiver...
    assert_eq!(publish(&mut direct, "ch", "lost"), 1);
    // ...yet it receives nothing: the next thing it sees is the reset, not the message.
    let res = sub.get_message();
    let waited = t0.elapsed();
    match res {
        Ok(m) => panic!(
            "subscriber received {:?} during the swallow",
            m.get_payload::<String>()
        ),
        Err(e) => assert!(
            !e.is_timeout(),
            "expected the reset, got a read timeout: {e}"
        ),
    }
    assert!(
        waited >= swallow,
        "the connection ended after {waited:?}, before the swallow's {swallow:?}"
    );
    proxy.wait_swallow_done();
    // At least the message frame itself ("*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\nlost\r\n").
    assert!(
        proxy.swallowed_bytes() >= 35,
        "swallowed {} bytes",
        proxy.swallowed_bytes()
    );
    drop(sub);
    drop(sub_con);

    // After the reset the proxy forwards again: a new subscriber gets messages.
    let mut con2 = client
        .get_connection()
        .expect("reconnect through the proxy");
    assert_eq!(ping(&mut con2), "PONG");
    let mut sub2 = con2.as_pubsub();
    sub2.subscribe("ch").expect("SUBSCRIBE again");
    sub2.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    assert_eq!(publish(&mut direct, "ch", "after"), 1);
    let msg = sub2.get_message().expect("message after the reset");
    assert_eq!(msg.get_payload::<String>().expect("payload"), "after");
    assert_eq!(proxy.connections(), 2);
    // wait_swallow_done returns at once when nothing is pending.
    proxy.wait_swallow_done();
}

#[test]
fn pomelo_client_decodes_what_the_core_encodes() {
    use harness::pomelo::{decode_message, push_package, Event, DATA, MSG_RESPONSE};
    use serde_json::json;

    let pkg = push_package("onChat", &json!({"n": 1}));
    assert_eq!(pkg[0], DATA);
    assert_eq!(usize::from(pkg[3]), pkg.len() - 4);
    assert_eq!(
        decode_message(&pkg[4..]),
        Some(Event::Push {
            route: "onChat".into(),
            body: json!({"n": 1})
        })
    );
    let mut out = Vec::new();
    gatehouse::protocol::encode_response(300, br#"{"code":200}"#, &mut out).unwrap();
    assert_eq!(
        decode_message(&out[4..]),
        Some(Event::Response {
            id: 300,
            body: json!({"code": 200})
        })
    );
    // Truncated id, empty body, a compressed push route.
    assert_eq!(decode_message(&[MSG_RESPONSE << 1, 0x80]), None);
    assert_eq!(decode_message(&[]), None);
    assert_eq!(
        decode_message(&[(3 << 1) | 1, 0x01, 0x02, b'{', b'}']),
        Some(Event::Push {
            route: "#258".into(),
            body: json!({})
        })
    );
}
