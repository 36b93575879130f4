//! `--json`: one object on stdout for scripts (bench/*.sh read rows by `key`; the charts crate
//! reads `latencies`).
//!
//! ```text
//! { "tool": "gatehouse-loadgen", "ok": true,
//!   "machine": {...}, "server": {...}, "settings": {...},
//!   "rows": [ { "key": "echo.rtt_p99", "scenario": "echo", "figure": "...", "value": 123.0,
//!               "unit": "µs" }, ... ],
//!   "latencies": [ { "key": "echo.rtt", "scenario": "echo", "figure": "...", "unit": "us",
//!                    "count": 5000, "min": 41.0, "max": 912.0, "mean": 88.1,
//!                    "percentiles": { "p50": 80.0, "p90": ..., "p99": ..., "p99.9": ...,
//!                                     "p99.99": ... },
//!                    "cdf": [[0.0, 41.0], [0.5, 80.0], ..., [1.0, 912.0]] }, ... ],
//!   "warnings": [...], "failures": [...] }
//! ```
//!
//! `latencies` keys: `setup.latency`, `blast.latency`, `fanout.latency`, `echo.rtt`,
//! `saturation.rtt`; always microseconds. A scenario that did not run has no entry.

use super::Report;
use serde_json::{json, Value};

/// The whole run as one JSON value.
pub fn to_value(r: &Report<'_>, ok: bool) -> Value {
    let Report {
        opts,
        header: h,
        server,
        heartbeat,
        res,
        shares,
        load_end,
    } = *r;
    let rows: Vec<Value> = res
        .rows
        .iter()
        .map(|r| {
            json!({"key": r.key, "scenario": r.scenario, "figure": r.figure, "value": r.value, "unit": r.unit})
        })
        .collect();
    json!({
        "tool": "gatehouse-loadgen",
        "ok": ok,
        "machine": {
            "nproc": h.nproc, "cpu": h.cpu, "kernel": h.kernel,
            "loadavg_start": h.load_start, "loadavg_end": load_end,
            "clk_tck": h.tck, "clk_tck_assumed": !h.tck_measured,
            "cpu_busy_pct": shares.as_ref().map(|s| s.machine),
            "server_cpu_pct": shares.as_ref().and_then(|s| s.server),
            "loadgen_cpu_pct": shares.as_ref().map(|s| s.loadgen),
        },
        "server": {
            "addr": server.addr.to_string(), "pid": server.pid, "spawned": opts.spawn_gate,
            "io_threads": opts.spawn_gate.then_some(opts.threads), "heartbeat_s": heartbeat,
        },
        "settings": {
            "clients": opts.clients, "client_threads": opts.client_threads,
            "connect_concurrency": opts.connect_concurrency, "rounds": opts.rounds,
            "size": opts.size, "blast_runs": opts.blast_runs, "fanouts": opts.fanouts, "rate": opts.rate,
            "echo_conns": opts.echo_conns, "seconds": opts.seconds, "sat_conns": opts.sat_conns,
            "window": opts.window,
        },
        "rows": rows,
        "latencies": res.latencies,
        "warnings": res.warnings,
        "failures": res.failures,
    })
}

/// Prints the run as one pretty JSON object on stdout.
pub fn print(r: &Report<'_>, ok: bool) {
    let out = to_value(r, ok);
    println!(
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    );
}
