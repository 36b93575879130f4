//! The results of a run and how they are printed: rows of `scenario | figure | value | unit`
//! (each with a stable `key` that scripts read), latency distributions, warnings, failures.
//!
//! [`table`] prints them for people (stdout), [`json`] as one object for scripts (`--json`).

pub mod json;
pub mod table;

use crate::latency::Latency;
use serde_json::Value;
use std::time::Duration;

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

    /// One row `<scenario>.<name>_p<q>` (`rtt_p50`, `latency_p999`, ...): quantile `q` of `lat`
    /// in `unit`, labelled `figure`.
    pub fn quantile(
        &mut self,
        scenario: &'static str,
        name: &str,
        q: Quantile,
        figure: String,
        lat: &Latency,
        unit: Unit,
    ) {
        let key = format!("{name}_{}", q.key());
        self.row(scenario, &key, figure, unit.of_ns(q.of(lat)), unit.as_str());
    }

    /// A latency distribution as it stands in every scenario: the rows `<name>_p50`, `_p99`,
    /// `_p999`, `_p9999` and `_max` (labelled `<label> p50` ... `<label> max`, but for the
    /// figures `p.p50` and `p.p99` replace), and its JSON `latencies` entry `<scenario>.<name>`.
    pub fn percentiles(&mut self, scenario: &'static str, p: Percentiles<'_>, lat: &Latency) {
        let Percentiles {
            name,
            label,
            unit,
            what,
            p50,
            p99,
        } = p;
        let figure = |given: Option<String>, q: Quantile| {
            given.unwrap_or_else(|| format!("{label} {}", q.label()))
        };
        self.quantile(
            scenario,
            name,
            Quantile::P50,
            figure(p50, Quantile::P50),
            lat,
            unit,
        );
        self.quantile(
            scenario,
            name,
            Quantile::P99,
            figure(p99, Quantile::P99),
            lat,
            unit,
        );
        for q in [Quantile::P999, Quantile::P9999] {
            self.quantile(scenario, name, q, figure(None, q), lat, unit);
        }
        self.row(
            scenario,
            &format!("{name}_max"),
            format!("{label} max"),
            unit.of_ns(lat.max_ns()),
            unit.as_str(),
        );
        self.latency(scenario, name, &what, lat);
    }

    /// The row `<scenario>.<key>`: the server's CPU time `ns` (when known) per one of `count`
    /// things done, in µs.
    pub fn cpu_per(
        &mut self,
        scenario: &'static str,
        key: &str,
        figure: &str,
        ns: Option<u64>,
        count: u64,
    ) {
        if let Some(ns) = ns {
            self.row(
                scenario,
                key,
                figure.into(),
                ns as f64 / 1e3 / count as f64,
                "µs",
            );
        }
    }

    /// The row `<scenario>.loadgen_cpu`: this process's CPU time over the wall time (when
    /// known), in % of one core.
    pub fn loadgen_cpu(&mut self, scenario: &'static str, cpu: Option<(u64, Duration)>) {
        if let Some((ns, wall)) = cpu {
            let pct = 100.0 * ns as f64 / wall.as_nanos() as f64;
            self.row(
                scenario,
                "loadgen_cpu",
                "loadgen CPU (of one core)".into(),
                pct,
                "%",
            );
        }
    }

    /// Adds the JSON `latencies` entry `<scenario>.<name>` (nothing when it is empty).
    pub fn latency(&mut self, scenario: &'static str, name: &str, what: &str, lat: &Latency) {
        if let Some(v) = lat.summary(&format!("{scenario}.{name}"), scenario, what) {
            self.latencies.push(v);
        }
    }
}

/// The unit a latency's rows are in (the JSON `latencies` entries are always in µs).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    /// Microseconds, `µs`.
    Micros,
    /// Milliseconds, `ms`.
    Millis,
}

impl Unit {
    /// Nanoseconds in this unit.
    pub fn of_ns(self, ns: f64) -> f64 {
        match self {
            Unit::Micros => ns / 1e3,
            Unit::Millis => ns / 1e6,
        }
    }

    /// As the rows show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
        }
    }
}

/// The quantiles the rows report.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Quantile {
    /// The median.
    P50,
    /// 99 %.
    P99,
    /// 99.9 %.
    P999,
    /// 99.99 %.
    P9999,
}

impl Quantile {
    /// The fraction below it.
    pub fn fraction(self) -> f64 {
        match self {
            Quantile::P50 => 0.5,
            Quantile::P99 => 0.99,
            Quantile::P999 => 0.999,
            Quantile::P9999 => 0.9999,
        }
    }

    /// Its part of a row key (`p999`).
    pub fn key(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P99 => "p99",
            Quantile::P999 => "p999",
            Quantile::P9999 => "p9999",
        }
    }

    /// Its part of a row label (`p99.9`).
    pub fn label(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P99 => "p99",
            Quantile::P999 => "p99.9",
            Quantile::P9999 => "p99.99",
        }
    }

    /// This quantile of `lat`, in ns.
    pub fn of(self, lat: &Latency) -> f64 {
        lat.quantile_ns(self.fraction())
    }
}

/// How a scenario names one latency distribution (see [`Results::percentiles`]).
///
/// `Percentiles::new("rtt", "round trip", Unit::Micros, what)` gives the rows `rtt_p50` ...
/// `rtt_max` labelled `round trip p50` ... `round trip max`; `.p50(figure)` and `.p99(figure)`
/// relabel the rows that say what was measured.
pub struct Percentiles<'a> {
    /// The key stem: rows `<scenario>.<name>_p50` ..., JSON entry `<scenario>.<name>`.
    pub name: &'a str,
    /// The label stem: `<label> p99.9`, `<label> max`.
    pub label: &'a str,
    /// The rows' unit.
    pub unit: Unit,
    /// What the distribution is, for the JSON `latencies` entry.
    pub what: String,
    /// The p50 row's figure, when it says more than `<label> p50` (what was measured).
    pub p50: Option<String>,
    /// The p99 row's figure, when it says more than `<label> p99`.
    pub p99: Option<String>,
}

impl<'a> Percentiles<'a> {
    /// Rows `<name>_p50` ... labelled `<label> p50` ..., in `unit`; `what` for the JSON entry.
    pub fn new(name: &'a str, label: &'a str, unit: Unit, what: String) -> Self {
        Percentiles {
            name,
            label,
            unit,
            what,
            p50: None,
            p99: None,
        }
    }

    /// Labels the p50 row `figure` instead of `<label> p50`.
    pub fn p50(self, figure: String) -> Self {
        Percentiles {
            p50: Some(figure),
            ..self
        }
    }

    /// Labels the p99 row `figure` instead of `<label> p99`.
    pub fn p99(self, figure: String) -> Self {
        Percentiles {
            p99: Some(figure),
            ..self
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

    fn spec(what: &str) -> Percentiles<'static> {
        Percentiles::new("rtt", "round trip", Unit::Micros, what.into())
            .p99("round trip p99 (sent → answered)".into())
    }

    #[test]
    fn percentiles_add_five_rows_and_one_latency_entry() {
        let mut lat = Latency::new();
        for us in 1..=1000u64 {
            lat.record_ns(us * 1_000);
        }
        let mut res = Results::default();
        res.percentiles("echo", spec("echo RTT"), &lat);
        let rows: Vec<(&str, &str, &str)> = res
            .rows
            .iter()
            .map(|r| (r.key.as_str(), r.figure.as_str(), r.unit.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("echo.rtt_p50", "round trip p50", "µs"),
                ("echo.rtt_p99", "round trip p99 (sent → answered)", "µs"),
                ("echo.rtt_p999", "round trip p99.9", "µs"),
                ("echo.rtt_p9999", "round trip p99.99", "µs"),
                ("echo.rtt_max", "round trip max", "µs"),
            ]
        );
        let value = |i: usize| res.rows[i].value.expect("a number");
        assert!((490.0..=510.0).contains(&value(0)), "{}", value(0));
        assert!((999.0..=1001.0).contains(&value(4)), "{}", value(4));
        assert_eq!(res.latencies.len(), 1);
        assert_eq!(res.latencies[0]["key"], "echo.rtt");

        // In ms, the same distribution reads 1000 times smaller.
        let mut res = Results::default();
        let mut ms = spec("setup");
        ms.unit = Unit::Millis;
        res.percentiles("setup", ms, &lat);
        assert_eq!(res.rows[2].key, "setup.rtt_p999");
        assert_eq!(res.rows[2].unit, "ms");
        let p999 = res.rows[2].value.expect("a number");
        assert!((0.998..=1.0).contains(&p999), "{p999}");
    }

    #[test]
    fn an_empty_distribution_gives_na_rows_and_no_entry() {
        let mut res = Results::default();
        res.percentiles("echo", spec("echo RTT"), &Latency::new());
        assert_eq!(res.rows.len(), 5);
        assert!(res.rows.iter().all(|r| r.value.is_none()));
        assert!(res.latencies.is_empty());
    }
}
