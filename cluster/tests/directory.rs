//! The uid directory against a real redis-server.

mod support;

use support::redis_server::{RedisAddr, RedisServer};

#[test]
fn guard_starts_pings_restarts() {
    let mut s = RedisServer::start();
    assert!(matches!(s.addr(), RedisAddr::Unix(_)));
    let mut c = s.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let pid = s.pid();
    s.restart();
    assert_ne!(pid, s.pid());
    let mut c = s.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
    let t = RedisServer::start_tcp();
    assert!(t.url().starts_with("redis://127.0.0.1:"));
    let mut c = t.client();
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}
