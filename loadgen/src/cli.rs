//! The command line: every flag, its default, and the checks that refuse a run before it starts.
//!
//! clap (derive) parses; a refusal is a `clap::Error`, which prints its message and exits with
//! status 2 (`--help` prints the help and exits 0). Ranges are checked by the value parsers
//! where a flag alone decides; the few rules that look at several flags, or that clamp a value
//! rather than refuse it, live in [`Opts::parse_from_args`] after the parse.

use crate::client::Pacer;
use clap::builder::{RangedU64ValueParser, TypedValueParser};
use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// What runs by default (setup always runs first).
pub const DEFAULT_SCENARIOS: [&str; 5] = ["memory", "blast", "fanout", "echo", "saturation"];
/// Every scenario `--scenarios` accepts: the default ones, plus `hold` (long: it waits out
/// several heartbeat intervals).
pub const KNOWN_SCENARIOS: [&str; 6] = ["memory", "hold", "blast", "fanout", "echo", "saturation"];

/// `--scenarios`: the scenarios to run after setup, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenarios(pub Vec<String>);

impl Default for Scenarios {
    fn default() -> Self {
        Scenarios(DEFAULT_SCENARIOS.iter().map(|s| s.to_string()).collect())
    }
}

fn parse_scenarios(v: &str) -> Result<Scenarios, String> {
    let list: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "setup")
        .map(str::to_string)
        .collect();
    if let Some(bad) = list.iter().find(|s| !KNOWN_SCENARIOS.contains(&s.as_str())) {
        return Err(format!(
            "unknown scenario {bad:?} (known: setup,{})",
            KNOWN_SCENARIOS.join(",")
        ));
    }
    Ok(Scenarios(list))
}

fn parse_loopback(v: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = v
        .parse()
        .map_err(|_| format!("expected IP:PORT, got {v:?}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr}: the load generator only drives loopback addresses (127.0.0.1)"
        ));
    }
    Ok(addr)
}

/// Seconds in `(0, max]`, finite.
fn secs_up_to(v: &str, max: f64) -> Result<f64, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {v:?}"))?;
    if !(s.is_finite() && s > 0.0 && s <= max) {
        return Err(format!("must be in (0, {max}] seconds, got {v}"));
    }
    Ok(s)
}

fn parse_seconds(v: &str) -> Result<f64, String> {
    secs_up_to(v, 3600.0)
}

fn parse_hold(v: &str) -> Result<f64, String> {
    secs_up_to(v, 86_400.0)
}

/// A count of at least 1.
fn positive(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number, got {v:?}")),
    }
}

/// A `usize` in `lo..=hi` (clap's ranged parser works on `u64`).
fn range(lo: u64, hi: u64) -> impl TypedValueParser<Value = usize> {
    RangedU64ValueParser::<u64>::new()
        .range(lo..=hi)
        .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
}

/// The load generator's options; see `loadgen --help`.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Drives the gate (or a pinus connector) with pomelo clients and prints one table",
    override_usage = "loadgen [--spawn-gate | --addr IP:PORT [--server-pid PID]] [OPTIONS]",
    after_help = "Exit status: 0 when every scenario ran, 1 when one failed outright, 2 for bad arguments."
)]
pub struct Opts {
    /// Build (cargo build --release -p gatehouse --example gate) and start the gate on a free
    /// loopback port, run everything, stop it
    #[arg(long)]
    pub spawn_gate: bool,
    /// The server to drive (loopback only; default 127.0.0.1:3010); with --spawn-gate, the
    /// gate's listen address (default 127.0.0.1:0)
    #[arg(long, value_name = "IP:PORT", value_parser = parse_loopback)]
    pub addr: Option<SocketAddr>,
    /// The server's pid, for CPU and RSS figures (automatic with --spawn-gate)
    #[arg(long, value_name = "PID", conflicts_with = "spawn_gate")]
    pub server_pid: Option<u32>,
    /// With --spawn-gate: use this gate binary, do not build
    #[arg(long, value_name = "PATH")]
    pub gate_bin: Option<PathBuf>,
    /// The spawned gate's I/O threads
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = range(1, 256))]
    pub threads: usize,
    /// The spawned gate's heartbeat interval (default: the gate's, 30)
    #[arg(long, value_name = "SECS")]
    pub heartbeat: Option<u64>,
    /// The spawned gate's connection limit (default: the gate's, 100000, raised to clients +
    /// 100 when --clients needs more)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub max_connections: Option<usize>,
    /// Loadgen threads holding the connections (default 1 on <= 2 cores, else 2)
    #[arg(long = "client-threads", value_name = "N", value_parser = range(1, 64))]
    pub client_threads_flag: Option<usize>,
    /// Derived from `--client-threads` and the core count by [`Opts::parse_from_args`].
    #[arg(skip)]
    pub client_threads: usize,
    /// Bound client connections
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = positive)]
    pub clients: usize,
    /// Spread the clients over K source addresses 127.0.0.1..127.0.0.K (each has its own
    /// ephemeral port range; default: as many as --clients needs, 1 = let the kernel pick)
    #[arg(long, value_name = "K", value_parser = range(1, 254))]
    pub source_addrs: Option<usize>,
    /// Derived, not a flag: the source addresses clients bind to (empty: the kernel picks).
    #[arg(skip)]
    pub sources: Vec<IpAddr>,
    /// The hold scenario's length (default 2.5 heartbeat intervals, or 10 s without heartbeats)
    #[arg(long, value_name = "SECS", value_parser = parse_hold, allow_negative_numbers = true)]
    pub hold: Option<f64>,
    /// Handshakes in flight at once during setup (well below a listen backlog of 128, the
    /// smallest common one, so no SYN is dropped; the gate's is 1,024)
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Blast rounds: clients x M pushes (the gate caps it at 1000000)
    #[arg(long, value_name = "M", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rounds: u64,
    /// Blast payload bytes (the gate caps it at 1048576)
    #[arg(long, value_name = "S", default_value_t = 16, value_parser = range(0, 1 << 20))]
    pub size: usize,
    /// Blasts in a row; the median one is reported (1..=100)
    #[arg(long, value_name = "B", default_value_t = 3)]
    pub blast_runs: usize,
    /// Single-round blasts for the fan-out latency
    #[arg(long, value_name = "K", default_value_t = 20)]
    pub fanouts: usize,
    /// Echo requests/s in the latency scenario
    #[arg(long, value_name = "R", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,
    /// Connections sharing that rate
    #[arg(long, value_name = "C", default_value_t = 100)]
    pub echo_conns: usize,
    /// How the echo scenario's pacer waits for each send time: spin (low send lag, a few % of
    /// a core spinning right before each send, taken from the server on a small box) or
    /// sleep (no spinning, the timer slack as send lag)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Pacer::Spin)]
    pub pacer: Pacer,
    /// Duration of the echo and saturation scenarios, in (0, 3600]
    #[arg(long, value_name = "T", default_value_t = 5.0, value_parser = parse_seconds, allow_negative_numbers = true)]
    pub seconds: f64,
    /// Connections in the saturation scenario
    #[arg(long, value_name = "C", default_value_t = 200)]
    pub sat_conns: usize,
    /// Requests outstanding per connection when saturating
    #[arg(long, value_name = "W", default_value_t = 8, value_parser = range(1, 4096))]
    pub window: usize,
    /// Comma-separated subset of memory,hold,blast,fanout,echo,saturation (setup always runs;
    /// default: all but hold)
    #[arg(long, value_name = "LIST", default_value = "memory,blast,fanout,echo,saturation", value_parser = parse_scenarios)]
    pub scenarios: Scenarios,
    /// Print one JSON object instead of the table (progress goes to stderr)
    #[arg(long)]
    pub json: bool,
}

impl Opts {
    /// Parses the arguments (the program name first, as `std::env::args_os` gives them),
    /// derives the fields that are not flags and clamps the counts that have a floor.
    ///
    /// # Errors
    ///
    /// A `clap::Error` for `--help` (exit status 0) and for every refusal (status 2); its
    /// `exit()` prints it.
    pub fn parse_from_args<I, T>(args: I) -> Result<Opts, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut o = Opts::try_parse_from(args)?;
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        o.client_threads = o
            .client_threads_flag
            .unwrap_or(if nproc <= 2 { 1 } else { 2 });
        o.connect_concurrency = o.connect_concurrency.max(1);
        o.blast_runs = o.blast_runs.clamp(1, 100);
        o.echo_conns = o.echo_conns.max(1);
        o.sat_conns = o.sat_conns.max(1);
        Ok(o)
    }

    /// Whether `--scenarios` asks for `scenario`.
    pub fn wants(&self, scenario: &str) -> bool {
        self.scenarios.0.iter().any(|s| s == scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Opts, clap::Error> {
        Opts::parse_from_args(std::iter::once("loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn no_arguments_means_the_defaults() {
        let o = parse(&[]).expect("defaults parse");
        assert_eq!(o.clients, 1000);
        assert_eq!(o.threads, 2);
        assert_eq!(o.rounds, 100);
        assert_eq!(o.size, 16);
        assert_eq!(o.blast_runs, 3);
        assert_eq!(o.fanouts, 20);
        assert_eq!(o.rate, 1000);
        assert_eq!(o.echo_conns, 100);
        assert_eq!(o.pacer, Pacer::Spin);
        assert_eq!(o.seconds, 5.0);
        assert_eq!(o.sat_conns, 200);
        assert_eq!(o.window, 8);
        assert_eq!(o.connect_concurrency, 64);
        assert_eq!(o.scenarios, Scenarios::default());
        assert!(!o.spawn_gate && !o.json && o.addr.is_none());
        assert!((1..=2).contains(&o.client_threads));
        assert!(o.wants("echo") && !o.wants("hold"));
    }

    #[test]
    fn every_flag_takes_its_value_both_spellings() {
        let o = parse(&[
            "--spawn-gate",
            "--addr",
            "127.0.0.1:4000",
            "--gate-bin=target/release/examples/gate",
            "--threads=3",
            "--heartbeat",
            "7",
            "--max-connections",
            "500",
            "--client-threads",
            "4",
            "--clients=200",
            "--source-addrs",
            "2",
            "--hold",
            "1.5",
            "--connect-concurrency",
            "8",
            "--rounds",
            "9",
            "--size",
            "0",
            "--blast-runs",
            "1",
            "--fanouts",
            "5",
            "--rate",
            "300",
            "--echo-conns",
            "10",
            "--pacer",
            "sleep",
            "--seconds=0.5",
            "--sat-conns",
            "20",
            "--window",
            "2",
            "--scenarios",
            "setup, echo,hold",
            "--json",
        ])
        .expect("parses");
        assert!(o.spawn_gate && o.json);
        assert_eq!(o.addr, Some("127.0.0.1:4000".parse().unwrap()));
        assert_eq!(
            o.gate_bin.as_deref(),
            Some(std::path::Path::new("target/release/examples/gate"))
        );
        assert_eq!(
            (o.threads, o.heartbeat, o.max_connections),
            (3, Some(7), Some(500))
        );
        assert_eq!(
            (o.client_threads, o.clients, o.source_addrs),
            (4, 200, Some(2))
        );
        assert_eq!((o.hold, o.connect_concurrency, o.rounds), (Some(1.5), 8, 9));
        assert_eq!((o.size, o.blast_runs, o.fanouts, o.rate), (0, 1, 5, 300));
        assert_eq!(
            (o.echo_conns, o.seconds, o.sat_conns, o.window),
            (10, 0.5, 20, 2)
        );
        assert_eq!(o.scenarios.0, ["echo", "hold"]);
        assert_eq!(o.pacer, Pacer::Sleep);
    }

    #[test]
    fn the_pacer_is_spin_or_sleep() {
        for (v, want) in [("spin", Pacer::Spin), ("sleep", Pacer::Sleep)] {
            let o = parse(&["--pacer", v]).expect("parses");
            assert_eq!(o.pacer, want, "--pacer {v}");
            let o = parse(&[&format!("--pacer={v}")]).expect("parses");
            assert_eq!(o.pacer, want, "--pacer={v}");
        }
    }

    #[test]
    fn help_is_an_exit_with_status_0() {
        for flag in ["--help", "-h"] {
            let e = parse(&["--clients", "10", flag]).expect_err("help exits");
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{flag}");
            assert_eq!(e.exit_code(), 0, "{flag}");
        }
    }

    #[test]
    fn bad_arguments_are_refused_with_status_2() {
        for (args, says) in [
            (&["--bogus"][..], "--bogus"),
            (&["--clients", "5", "--bogus=1"][..], "--bogus"),
            (&["stray"][..], "stray"),
            (&["--clients"][..], "--clients"),
            (&["--clients", "many"][..], "many"),
            (&["--clients", "0"][..], "must be at least 1"),
            (&["--json=no"][..], "--json"),
            (&["--spawn-gate=false"][..], "--spawn-gate"),
            (
                &["--scenarios", "memory,nap"][..],
                "unknown scenario \"nap\"",
            ),
            (&["--addr", "10.1.2.3:3010"][..], "only drives loopback"),
            (&["--addr", "localhost"][..], "expected IP:PORT"),
            (&["--seconds", "0"][..], "(0, 3600]"),
            (&["--seconds", "NaN"][..], "(0, 3600]"),
            (&["--hold", "-1"][..], "(0, 86400]"),
            (&["--rounds", "0"][..], "0"),
            (&["--rounds", "1000001"][..], "1000001"),
            (&["--size", "1048577"][..], "1048577"),
            (&["--rate", "0"][..], "0"),
            (&["--window", "4097"][..], "4097"),
            (&["--threads", "0"][..], "0"),
            (&["--client-threads", "65"][..], "65"),
            (&["--source-addrs", "255"][..], "255"),
            (&["--max-connections", "0"][..], "must be at least 1"),
            (&["--spawn-gate", "--server-pid", "12"][..], "--server-pid"),
            (&["--pacer", "busy"][..], "busy"),
            (&["--pacer", "Spin"][..], "Spin"),
            (&["--pacer"][..], "--pacer"),
        ] {
            let e = parse(args).expect_err(&format!("{args:?} must be refused"));
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(says), "{args:?}: expected {says:?} in {msg:?}");
        }
    }

    #[test]
    fn counts_with_a_floor_are_clamped_not_refused() {
        let o = parse(&[
            "--connect-concurrency",
            "0",
            "--blast-runs",
            "500",
            "--echo-conns",
            "0",
            "--sat-conns",
            "0",
        ])
        .expect("parses");
        assert_eq!(
            (
                o.connect_concurrency,
                o.blast_runs,
                o.echo_conns,
                o.sat_conns
            ),
            (1, 100, 1, 1)
        );
    }

    #[test]
    fn the_help_lists_every_flag() {
        // The flags come from the parser itself: a flag added later is checked too, and one
        // hidden from the help (or rendered under another name) fails here.
        let mut cmd = Opts::command();
        cmd.build(); // adds the generated `--help`
        let help = cmd.render_long_help().to_string();
        let flags: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .collect();
        assert!(
            flags.len() > 20 && flags.iter().any(|f| f == "--help"),
            "the parser lists too few flags: {flags:?}"
        );
        // Listed as an entry (`  -h, --help`, `      --clients <N>`), not only named in some
        // other flag's text.
        let entry = |flag: &str| {
            help.lines().any(|line| {
                let t = line.trim_start();
                let t = t
                    .split_once(", ")
                    .filter(|(s, _)| s.len() == 2)
                    .map_or(t, |(_, l)| l);
                t.strip_prefix(flag)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '<', '=']))
            })
        };
        for flag in &flags {
            assert!(entry(flag), "{flag} missing from the help:\n{help}");
        }
    }
}
