//! The built `loadgen` binary's command line, end to end: `--help` exits 0 with the usage and
//! a sample of the flags (that every flag is in the help is the parser's unit test, in
//! `src/cli.rs`, which walks the parser's own flag list), an unknown flag and a malformed or out-of-range value exit 2 with a message naming
//! the culprit. None of these starts a client or a gate.

use std::process::{Command, Output};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the loadgen binary: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_exits_0_and_shows_the_flags() {
    for flag in ["--help", "-h"] {
        let out = loadgen(&[flag]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", text(&out.stderr));
        assert!(stdout.contains("Usage: loadgen"), "{flag}: {stdout}");
        // A sample, one flag per part of a run (server, clients, scenarios, output).
        for listed in ["--spawn-gate", "--clients", "--scenarios", "--json"] {
            assert!(stdout.contains(listed), "{flag}: {listed} not in\n{stdout}");
        }
    }
}

/// Exit status 2, nothing on stdout, and `says` in the message on stderr.
fn refused(args: &[&str], says: &str) {
    let out = loadgen(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: stdout {}",
        text(&out.stdout)
    );
    assert!(
        stderr.starts_with("error: ") && stderr.contains(says),
        "{args:?}: expected {says:?} in {stderr:?}"
    );
}

#[test]
fn an_unknown_flag_exits_2_with_a_message() {
    refused(&["--bogus"], "unexpected argument '--bogus'");
    refused(&["--clients", "5", "stray"], "unexpected argument 'stray'");
}

#[test]
fn a_malformed_value_exits_2_with_a_message() {
    refused(&["--clients", "many"], "'many'");
    refused(&["--clients", "0"], "--clients");
    refused(&["--scenarios", "memory,nap"], "unknown scenario \"nap\"");
    refused(&["--seconds", "-1"], "--seconds");
    refused(&["--addr", "10.0.0.1:3010"], "loopback");
    // Only the two pacers; the message names them.
    refused(&["--pacer", "busy"], "'busy'");
    refused(&["--pacer", "busy"], "[possible values: spin, sleep]");
}
