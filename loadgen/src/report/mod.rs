//! The results of a run and how they are printed: rows of `scenario | figure | value | unit`
//! (each with a stable `key` that scripts read), latency distributions, warnings, failures.
//!
//! [`table`] prints them for people (stdout), [`json`] as one object for scripts (`--json`).

pub mod json;
pub mod table;

use crate::latency::Latency;
use serde_json::Value;

/// One figure of the table.
pub struct Row {
    /// The scenario it belongs to.
    pub scenario: &'static str,
    /// `<scenario>.<name>`: what scripts look up (e.g. `blast.pushes_per_s`).
    pub key: String,
    /// What it is, for people.
    pub figure: String,
    /// `None`: not a number (n/a), or a failure line.
    pub value: Option<f64>,
    /// Its unit.
    pub unit: String,
}

/// Everything a run found.
#[derive(Default)]
pub struct Results {
    /// The table, in order.
    pub rows: Vec<Row>,
    /// The JSON `latencies` entries (see [`Latency::summary`]), in order.
    pub latencies: Vec<Value>,
    /// Something looks off, but the figures stand.
    pub warnings: Vec<String>,
    /// A scenario failed outright (exit status 1).
    pub failures: Vec<String>,
}

impl Results {
    /// Adds the row `<scenario>.<key>`; a non-finite value shows as n/a.
    pub fn row(
        &mut self,
        scenario: &'static str,
        key: &str,
        figure: String,
        value: f64,
        unit: &str,
    ) {
        self.rows.push(Row {
            scenario,
            key: format!("{scenario}.{key}"),
            figure,
            value: value.is_finite().then_some(value),
            unit: unit.into(),
        });
    }

    /// Records that `scenario` failed (a row and a failure).
    pub fn fail(&mut self, scenario: &'static str, why: String) {
        self.rows.push(Row {
            scenario,
            key: format!("{scenario}.failed"),
            figure: format!("FAILED: {why}"),
            value: None,
            unit: String::new(),
        });
        self.failures.push(format!("{scenario}: {why}"));
    }

    /// The tail of a latency distribution as rows `<name>_p999` (unless the scenario already
    /// has that row), `<name>_p9999` and `<name>_max`, labelled `label p99.9` and so on, in
    /// `unit` (`"ms"` or `"µs"`); and its JSON `latencies` entry `<scenario>.<name>`, described
    /// by `figure`.
    pub fn tail(
        &mut self,
        scenario: &'static str,
        name: &str,
        label: &str,
        figure: &str,
        lat: &Latency,
        unit: &str,
    ) {
        let per = if unit == "ms" { 1e6 } else { 1e3 };
        let p999 = format!("{scenario}.{name}_p999");
        if !self.rows.iter().any(|r| r.key == p999) {
            self.row(
                scenario,
                &format!("{name}_p999"),
                format!("{label} p99.9"),
                lat.quantile_ns(0.999) / per,
                unit,
            );
        }
        self.row(
            scenario,
            &format!("{name}_p9999"),
            format!("{label} p99.99"),
            lat.quantile_ns(0.9999) / per,
            unit,
        );
        self.row(
            scenario,
            &format!("{name}_max"),
            format!("{label} max"),
            lat.max_ns() / per,
            unit,
        );
        self.latency(scenario, name, figure, lat);
    }

    /// Adds the JSON `latencies` entry `<scenario>.<name>` (nothing when it is empty).
    pub fn latency(&mut self, scenario: &'static str, name: &str, what: &str, lat: &Latency) {
        if let Some(v) = lat.summary(&format!("{scenario}.{name}"), scenario, what) {
            self.latencies.push(v);
        }
    }
}

/// The machine, for the header of both outputs.
pub struct Header {
    /// Cores.
    pub nproc: usize,
    /// CPU model.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// Load average at the start.
    pub load_start: String,
    /// Clock ticks per second, and whether `getconf` said so (else 100 is assumed).
    pub tck: u64,
    /// See `tck`.
    pub tck_measured: bool,
}

/// CPU shares over the whole measured run, in % of the machine.
pub struct LoadShares {
    /// The whole machine (/proc/stat).
    pub machine: f64,
    /// The server, when its pid is known.
    pub server: Option<f64>,
    /// This process.
    pub loadgen: f64,
}

/// What both printers need.
pub struct Report<'a> {
    /// The options of the run.
    pub opts: &'a crate::cli::Opts,
    /// The machine.
    pub header: &'a Header,
    /// The server.
    pub server: &'a crate::server::Server,
    /// The heartbeat the server announced.
    pub heartbeat: Option<u64>,
    /// The figures.
    pub res: &'a Results,
    /// CPU shares over the run.
    pub shares: &'a Option<LoadShares>,
    /// Load average at the end.
    pub load_end: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_adds_p9999_and_max_rows_and_one_latency_entry() {
        let mut lat = Latency::new();
        for us in 1..=1000u64 {
            lat.record_ns(us * 1_000);
        }
        let mut res = Results::default();
        res.row("echo", "rtt_p999", "round trip p99.9".into(), 999.0, "µs");
        res.tail("echo", "rtt", "round trip", "echo RTT", &lat, "µs");
        let keys: Vec<&str> = res.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["echo.rtt_p999", "echo.rtt_p9999", "echo.rtt_max"]);
        let max = res.rows[2].value.expect("a number");
        assert!((999.0..=1001.0).contains(&max), "{max}");
        assert_eq!(res.latencies.len(), 1);
        assert_eq!(res.latencies[0]["key"], "echo.rtt");

        // Without the scenario's own p99.9 row, the tail adds it (here in ms).
        let mut res = Results::default();
        res.tail("setup", "latency", "setup latency", "setup", &lat, "ms");
        assert_eq!(res.rows[0].key, "setup.latency_p999");
        let p999 = res.rows[0].value.expect("a number");
        assert!((0.998..=1.0).contains(&p999), "{p999}");
    }

    #[test]
    fn an_empty_distribution_gives_na_rows_and_no_entry() {
        let mut res = Results::default();
        res.tail(
            "echo",
            "rtt",
            "round trip",
            "echo RTT",
            &Latency::new(),
            "µs",
        );
        assert!(res.rows.iter().all(|r| r.value.is_none()));
        assert!(res.latencies.is_empty());
    }
}
