//! The connector when the process runs out of file descriptors: `accept` fails with EMFILE, so
//! without care the new clients would sit in the listen backlog until their own timeout. The
//! accepting I/O thread keeps one descriptor in reserve; on EMFILE it gives it up, accepts and
//! closes what waits, and takes it back. Sessions already open must not notice.
//!
//! In a test binary of its own: it fills this process's descriptor table, which would make any
//! test running beside it in the same process fail. And it fills a small table: the test re-runs
//! itself under `ulimit -n 256` (lowering a limit needs no privilege), so a machine whose limit
//! is a million does not make it open a million files.

mod util;

use gatehouse::server::Server;
use std::fs::File;
use std::process::Command;
use std::time::Duration;
use util::{builder, wait_until, Client, Event, TestHandler, Transport};

const CHILD_ENV: &str = "GATEHOUSE_FD_EXHAUSTION_CHILD";
const FD_LIMIT: u32 = 256;

#[test]
fn out_of_descriptors_closes_new_clients_at_once_and_keeps_the_sessions() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return exhaust_and_check();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([
            "--exact",
            "out_of_descriptors_closes_new_clients_at_once_and_keeps_the_sessions",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-running the test under sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child run failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child did not run the test:\n{text}"
    );
}

/// The test proper, in the child with a small descriptor table.
fn exhaust_and_check() {
    let (handler, _seen) = TestHandler::new();
    let server: Server = builder().start(handler).expect("server starts");
    let addr = server.local_addr();
    let mut working: Vec<Client> = (0..3)
        .map(|_| Client::working(addr, Transport::Tcp))
        .collect();

    // Fill the descriptor table, then free exactly one: the next client's socket takes it,
    // and the server's accept finds none.
    let mut ballast = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => ballast.push(f),
            Err(e) if e.raw_os_error() == Some(24) => break,
            Err(e) => panic!("opening /dev/null: {e}"),
        }
        assert!(
            ballast.len() <= FD_LIMIT as usize,
            "no descriptor limit reached (ulimit -n {FD_LIMIT} not in force?)"
        );
    }
    drop(ballast.pop());
    let refused_before = server.metrics().refused;
    let mut late = Client::connect(addr, Transport::Tcp);
    // Without the reserve descriptor this waits in the backlog until the timeout (a failure).
    match late.recv_within(util::scaled(Duration::from_secs(3))) {
        Event::Eof | Event::Reset => {}
        other => panic!("expected the connection to be closed at accept, got {other:?}"),
    }
    wait_until("the close counted as refused", || {
        server.metrics().refused > refused_before
    });

    // The sessions that were open still work, still out of descriptors.
    for (i, c) in working.iter_mut().enumerate() {
        c.echo(100 + i as u32);
    }

    // With descriptors again, new clients get in.
    drop(late);
    drop(ballast);
    let mut again = Client::working(addr, Transport::Tcp);
    again.echo(7);
    assert_eq!(server.metrics().sessions, 4);
    // The clients leave first, so shutdown has no connection to linger on.
    drop(working);
    drop(again);
    wait_until("every session closed", || server.metrics().sessions == 0);
    server.shutdown(None);
}
