//! The load generator's command line (`examples/loadgen.rs`): `--help` prints the help and
//! exits 0, an unknown or malformed argument is refused with a message and status 2, and every
//! flag the help lists is one the parser takes.
//!
//! An integration test cannot name an example's binary (`CARGO_BIN_EXE_*` is for bins only),
//! and building or running it through cargo from a test is slow and may pick up a stale
//! binary. So the example's source is compiled into this test as a module, and the test calls
//! the very function its `main` uses to turn the arguments into "run" or "exit with this
//! status and this text" (`loadgen::cli`); `main` only prints that text and returns the status.

#[allow(dead_code)] // the whole example comes along; only its command line is used here
#[path = "../examples/loadgen.rs"]
mod loadgen;

use loadgen::{cli, Cli, USAGE};

fn run(args: &[&str]) -> Cli {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    cli(&args)
}

/// The status, stdout and stderr of an immediate exit; panics if the arguments mean a run.
fn exit(args: &[&str]) -> (u8, String, String) {
    match run(args) {
        Cli::Exit {
            code,
            stdout,
            stderr,
        } => (code, stdout, stderr),
        Cli::Run(opts) => panic!("{args:?} would run: {opts:?}"),
    }
}

/// Every `--flag` the help lists, and whether it takes a value (a placeholder follows it).
fn listed_flags() -> Vec<(String, bool)> {
    let mut flags = Vec::new();
    for line in USAGE.lines().skip(1) {
        // An option line starts at column 2; deeper indented lines continue a description.
        let Some(rest) = line.strip_prefix("  --") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let flag = format!("--{}", words.next().unwrap());
        let takes_value = words
            .next()
            .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == ':'));
        flags.push((flag, takes_value));
    }
    flags
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    for flag in ["--help", "-h"] {
        let (code, stdout, stderr) = exit(&[flag]);
        assert_eq!(code, 0, "{flag}");
        assert_eq!(stdout, USAGE, "{flag}");
        assert_eq!(stderr, "", "{flag}");
        assert!(stdout.starts_with("usage: loadgen "), "{stdout}");
    }
    // Wherever it comes on the line: nothing runs.
    assert_eq!(exit(&["--clients", "10", "--help"]).0, 0);
}

#[test]
fn unknown_and_malformed_arguments_are_refused_with_status_2() {
    for (args, says) in [
        (&["--bogus"][..], "unknown argument \"--bogus\""),
        (
            &["--clients", "5", "--bogus=1"][..],
            "unknown argument \"--bogus\"",
        ),
        (&["stray"][..], "unknown argument \"stray\""),
        (&["-x"][..], "unknown argument \"-x\""),
        (&["--clients"][..], "--clients: missing value"),
        (
            &["--clients", "many"][..],
            "--clients: expected a number, got \"many\"",
        ),
        (&["--clients", "0"][..], "--clients must be at least 1"),
        (&["--json=no"][..], "--json takes no value"),
        (&["--spawn-gate=false"][..], "--spawn-gate takes no value"),
        (&["--help=1"][..], "--help takes no value"),
        (
            &["--scenarios", "memory,nap"][..],
            "unknown scenario \"nap\"",
        ),
        (
            &["--addr", "10.1.2.3:3010"][..],
            "only drives loopback addresses",
        ),
    ] {
        let (code, stdout, stderr) = exit(args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(
            stderr.starts_with("loadgen: ") && stderr.contains(says),
            "{args:?}: expected {says:?} in {stderr:?}"
        );
        assert!(
            stderr.ends_with(USAGE),
            "{args:?}: the usage follows the message"
        );
    }
}

#[test]
fn every_listed_flag_is_accepted() {
    let flags = listed_flags();
    assert!(
        flags.len() >= 20,
        "parsed too few flags from the usage: {flags:?}"
    );
    for (flag, takes_value) in flags {
        if flag == "--help" {
            continue; // an exit, checked above
        }
        // A valid value for each flag that takes one.
        let value = match flag.as_str() {
            "--addr" => "127.0.0.1:3010",
            "--gate-bin" => "target/release/examples/gate",
            "--scenarios" => "memory,echo",
            "--seconds" | "--hold" => "1.5",
            _ => "4",
        };
        let args: Vec<&str> = if takes_value {
            vec![flag.as_str(), value]
        } else {
            vec![flag.as_str()]
        };
        match run(&args) {
            Cli::Run(_) => {}
            Cli::Exit { stderr, .. } => panic!("{args:?} refused: {stderr}"),
        }
        // And the `--flag=value` spelling.
        if takes_value {
            let joined = format!("{flag}={value}");
            assert!(
                matches!(run(&[joined.as_str()]), Cli::Run(_)),
                "{joined} refused"
            );
        }
    }
}

#[test]
fn no_arguments_means_a_run_with_the_defaults() {
    match run(&[]) {
        Cli::Run(opts) => {
            let shown = format!("{opts:?}");
            assert!(shown.contains("clients: 1000"), "{shown}");
        }
        Cli::Exit { stderr, .. } => panic!("refused: {stderr}"),
    }
}
