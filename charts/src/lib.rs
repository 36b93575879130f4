//! SVG charts from gatehouse load generator results.
//!
//! `charts [--out DIR] INPUT...` reads the `--json` output of the gatehouse loadgen (one file
//! per run, as `bench/compare.sh` writes them into `bench/results/<UTC stamp>/`) and draws:
//!
//! | file | what | axes |
//! | --- | --- | --- |
//! | `latency-<scenario>.svg` | the latency CDF of each run at the main client count, one curve per run (`echo`, `blast`, `fanout`, `setup`, `saturation`) | x: latency in µs, log scale; y: percentile on a tail-expanding scale |
//! | `latency-<scenario>-<N>.svg` | the same for runs at another client count N (`-10k`) | same |
//! | `cpu.svg` | server CPU per push and per session setup, one panel each, one bar group per client count, the pinus ÷ gatehouse ratio over each group | y: µs |
//! | `memory.svg` | RSS per idle bound session per server and client count, with the ratio | y: bytes |
//! | `scaling.svg` | delivered pushes/s against connections, one line per server, from the `<server>-scale-<N>` runs | x: connections, log scale; y: pushes/s |
//!
//! `bench/compare.sh` draws them after its runs; `bench/charts.sh [DIR]` redraws them from a
//! results directory (the newest under `bench/results/` by default), and
//! `cargo run --release -p gatehouse-charts -- --out OUT FILE_OR_DIR...` draws any set of runs.
//! Which charts were not drawn, and why, goes to stderr; the paths written go to stdout. Exit
//! status: 0 when at least one chart was written, 1 on an unreadable or invalid input (the
//! message names the file) or when nothing could be drawn, 2 on a usage error.
//!
//! # The tail-expanding y axis
//!
//! A CDF on a linear percentile axis squeezes p99 and beyond into a few pixels. The latency
//! charts plot `y = -log10(1 - q)` instead, as HdrHistogram's plots do: each "nine" (90 %,
//! 99 %, 99.9 %, …) is one unit high, so the tail is as readable as the median. The axis shows
//! as many nines as the sample count supports (`ceil(log10(count))`, 2 to 6); the maximum
//! sample (q = 1) is drawn at the top. Dots mark p50 and p99 on each curve, and the legend
//! gives p99 and the sample count. See [`tail`].
//!
//! # Data convention
//!
//! - A run's name is its file stem. The server is the prefix before the first `-`: `gate` is
//!   shown as "gatehouse", `pinus` as "pinus 1.7.4", anything else as written. When the loadgen
//!   spawned the gate, the label adds its I/O thread count ("gatehouse, 2 I/O threads").
//! - `<server>-scale-<N>.json` is one point of the scaling sweep (blast scenario, N clients);
//!   such runs appear only in `scaling.svg`.
//! - Latency curves come from the JSON's `latencies` array (`[quantile, µs]` CDF points, see
//!   [`latency`]); bar values from `rows` (`blast.server_cpu_per_push`,
//!   `setup.server_cpu_per_setup`, `memory.rss_per_session`, `blast.pushes_per_s`).
//! - A chart with no data is not written; the tool says which and why. A run missing from a
//!   chart it could be in (e.g. a result file from before `latencies` existed) is named in a
//!   warning. Nothing is drawn from made-up or default values.
//! - The footer names the machine (`machine.cpu`, `nproc`) and, when the input directory is a
//!   compare.sh stamp (`20261205T213858Z`), the date.
//!
//! ```
//! use gatehouse_charts::{plan::plan, run::Run};
//! let json = r#"{"tool": "gatehouse-loadgen", "settings": {"clients": 1000},
//!   "rows": [{"key": "echo.rtt_p99", "scenario": "echo", "value": 300.0, "unit": "µs"}],
//!   "latencies": [{"key": "echo.rtt", "scenario": "echo", "unit": "us", "count": 5000,
//!                  "cdf": [[0.0, 41.0], [0.5, 80.0], [0.99, 300.0], [1.0, 912.0]]}]}"#;
//! let run = Run::from_json("gate-1k", json).unwrap();
//! let p = plan(&[run], None).unwrap();
//! assert_eq!(p.charts[0].0, "latency-echo.svg");
//! assert!(p.charts[0].1.starts_with("<svg"));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod chart;
pub mod input;
pub mod latency;
pub mod name;
pub mod numfmt;
pub mod plan;
pub mod run;
pub mod tail;

/// The date of a compare.sh results directory named `YYYYMMDDTHHMMSSZ`, as
/// `YYYY-MM-DD HH:MM UTC`.
///
/// ```
/// assert_eq!(gatehouse_charts::stamp_date("20261205T213858Z").as_deref(), Some("2026-12-05 21:38 UTC"));
/// assert_eq!(gatehouse_charts::stamp_date("results"), None);
/// ```
pub fn stamp_date(dir_name: &str) -> Option<String> {
    let b = dir_name.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() != 16 || !digits(0..8) || b[8] != b'T' || !digits(9..15) || b[15] != b'Z' {
        return None;
    }
    let d = dir_name;
    Some(format!(
        "{}-{}-{} {}:{} UTC",
        &d[0..4],
        &d[4..6],
        &d[6..8],
        &d[9..11],
        &d[11..13]
    ))
}
