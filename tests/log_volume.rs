//! Log volume under junk: one client sending a thousand messages the server cannot route must
//! not write a thousand warning lines (before the fix it wrote one per message). In a test
//! binary of its own: it installs the process's global logger.

mod util;

use gatehouse::protocol::{encode_data, Message, Route};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use util::{builder, Client, TestHandler, Transport};

/// Counts the lines gatehouse logs at warn level or above.
struct Counting(AtomicUsize);

impl log::Log for Counting {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) && record.target().starts_with("gatehouse") {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn flush(&self) {}
}

static LINES: Counting = Counting(AtomicUsize::new(0));

#[test]
fn junk_messages_are_logged_once_per_interval_not_once_each() {
    log::set_logger(&LINES).expect("the only logger of this binary");
    log::set_max_level(log::LevelFilter::Warn);
    let (handler, _seen) = TestHandler::new();
    let server = builder().start(handler).expect("server starts");
    let mut c = Client::working(server.local_addr(), Transport::Tcp);
    let before = LINES.0.load(Ordering::SeqCst);
    for _ in 0..500 {
        let mut bytes = Vec::new();
        encode_data(&Message::notify(Route::Code(4242), b"{}"), &mut bytes).unwrap();
        c.send_packages(&bytes);
        c.send_notify("nodot", &json!({}));
    }
    // Handled in order: once the echo is answered, every junk notify before it was processed.
    c.echo(1);
    let lines = LINES.0.load(Ordering::SeqCst) - before;
    // One line per kind (unknown route code, no server type) per 5 s; a slow machine may cross
    // one interval boundary.
    assert!(
        (1..=4).contains(&lines),
        "{lines} warning lines for 1,000 junk notifies"
    );
    drop(c);
    server.shutdown(None);
}
