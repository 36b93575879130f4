//! The status line on stderr while a phase runs.
//!
//! A phase that lasts more than a second says what it is doing and for how long: on a
//! terminal as one line rewritten in place (`\r`, a few times a second); otherwise (a CI log,
//! a file) as plain lines at most once a second, so logs stay short. When a phase that showed
//! a line ends, one last line says how long it took. Shorter phases print nothing. The table
//! (or the JSON) goes to stdout, untouched.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How long a phase runs before it gets a line.
const QUIET_FOR: Duration = Duration::from_secs(1);
/// Between rewrites of the line on a terminal.
const TTY_EVERY: Duration = Duration::from_millis(200);
/// Between plain lines otherwise.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// The progress line of the current phase.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    phase: Option<Running>,
}

#[derive(Debug)]
struct Running {
    label: String,
    expected: Option<Duration>,
    start: Instant,
    last: Option<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// Rewrites one line when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            phase: None,
        }
    }

    /// A new phase (ending the previous one): `label` says what runs, `expected` its planned
    /// length when it has one.
    pub fn begin(&mut self, label: impl Into<String>, expected: Option<Duration>) {
        self.end();
        self.phase = Some(Running {
            label: label.into(),
            expected,
            start: Instant::now(),
            last: None,
        });
    }

    /// Shows the elapsed time if it is due; cheap to call often.
    pub fn tick(&mut self) {
        let tty = self.tty;
        let Some(p) = self.phase.as_mut() else {
            return;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(p.start);
        let every = if tty { TTY_EVERY } else { LOG_EVERY };
        if elapsed < QUIET_FOR || p.last.is_some_and(|t| now.duration_since(t) < every) {
            return;
        }
        p.last = Some(now);
        let line = status_line(&p.label, elapsed, p.expected);
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            // Back to column 0, the line, then clear what a longer earlier line left.
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    /// Prints a line of its own (on a terminal, over the status line, which the next tick
    /// redraws).
    pub fn say(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            writeln!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
    }

    /// Ends the phase: if it showed a line, says how long it took.
    pub fn end(&mut self) {
        let Some(p) = self.phase.take() else {
            return;
        };
        if p.last.is_none() {
            return;
        }
        let took = p.start.elapsed().as_secs_f64();
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            writeln!(err, "\rloadgen: {}: done in {took:.1} s\x1b[K", p.label)
        } else {
            writeln!(err, "loadgen: {}: done in {took:.1} s", p.label)
        };
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.end();
    }
}

/// `loadgen: LABEL: 2.0 s of 5.0 s` (or without the planned length).
fn status_line(label: &str, elapsed: Duration, expected: Option<Duration>) -> String {
    match expected {
        Some(e) => format!(
            "loadgen: {label}: {:.1} s of {:.1} s",
            elapsed.as_secs_f64(),
            e.as_secs_f64()
        ),
        None => format!("loadgen: {label}: {:.1} s", elapsed.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_what_and_how_long() {
        assert_eq!(
            status_line(
                "echo",
                Duration::from_millis(2040),
                Some(Duration::from_secs(5))
            ),
            "loadgen: echo: 2.0 s of 5.0 s"
        );
        assert_eq!(
            status_line("setup", Duration::from_millis(1500), None),
            "loadgen: setup: 1.5 s"
        );
    }

    #[test]
    fn a_short_phase_prints_nothing_and_leaves_no_state() {
        let mut p = Progress {
            tty: false,
            phase: None,
        };
        p.begin("quick", None);
        p.tick(); // under a second: nothing due
        assert!(p.phase.as_ref().is_some_and(|r| r.last.is_none()));
        p.end();
        assert!(p.phase.is_none());
    }
}
