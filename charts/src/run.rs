//! One loadgen run: the parts of its `--json` output the charts use.
//!
//! The loadgen writes `{tool, ok, machine{nproc, cpu, …}, server{io_threads, …},
//! settings{clients, …}, rows:[{key, scenario, figure, value, unit}], latencies:[…], warnings,
//! failures}`. Only `rows` is required; everything else is optional, so results written before
//! a field existed still load (a run without `latencies` simply has no latency curves).

use crate::latency::{text, Latency};
use crate::name::RunName;
use serde_json::Value;

/// At most this many rows and latency entries are read from one run.
pub const MAX_ENTRIES: usize = 10_000;

/// The machine a run was measured on.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    /// CPU model (`machine.cpu`).
    pub cpu: Option<String>,
    /// Cores available (`machine.nproc`).
    pub nproc: Option<u64>,
}

/// A loaded run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Name parsed from the file stem.
    pub name: RunName,
    /// `settings.clients` (for a scaling run without it: the N of its name).
    pub clients: Option<u64>,
    /// `server.io_threads` (set when the loadgen spawned the gate).
    pub io_threads: Option<u64>,
    /// `machine`.
    pub machine: Machine,
    /// `(key, value)` of every row with a number.
    pub rows: Vec<(String, f64)>,
    /// Scenarios that produced at least one row.
    pub scenarios: Vec<String>,
    /// `latencies`, or `None` when the file has no such array.
    pub latencies: Option<Vec<Latency>>,
    /// Problems found while reading (bad latency entries); the run is still usable.
    pub warnings: Vec<String>,
}

impl Run {
    /// Parses the JSON text of a run named `stem`.
    pub fn from_json(stem: &str, json: &str) -> Result<Run, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        if let Some(tool) = obj.get("tool").and_then(Value::as_str) {
            if tool != "gatehouse-loadgen" {
                return Err(format!("tool is {tool:?}, not gatehouse-loadgen"));
            }
        }
        let name = RunName::parse(stem);
        let rows_json = obj
            .get("rows")
            .and_then(Value::as_array)
            .ok_or("no `rows` array (not gatehouse loadgen --json output?)")?;
        let mut rows = Vec::new();
        let mut scenarios: Vec<String> = Vec::new();
        for r in rows_json.iter().take(MAX_ENTRIES) {
            if let Some(s) = text(r, "scenario") {
                if !scenarios.contains(&s) {
                    scenarios.push(s);
                }
            }
            let value = r.get("value").and_then(Value::as_f64);
            if let (Some(key), Some(value)) = (text(r, "key"), value) {
                if value.is_finite() {
                    rows.push((key, value));
                }
            }
        }
        let mut warnings = Vec::new();
        let latencies = match obj.get("latencies") {
            None | Some(Value::Null) => None,
            Some(Value::Array(entries)) => {
                let mut out = Vec::new();
                for e in entries.iter().take(MAX_ENTRIES) {
                    match Latency::from_json(e) {
                        Ok(l) => out.push(l),
                        Err(why) => warnings.push(format!("{stem}: latency entry skipped: {why}")),
                    }
                }
                Some(out)
            }
            Some(_) => return Err("`latencies` is not an array".into()),
        };
        let u64_at = |a: &str, b: &str| obj.get(a).and_then(|o| o.get(b)).and_then(Value::as_u64);
        let machine = Machine {
            cpu: obj.get("machine").and_then(|m| text(m, "cpu")),
            nproc: u64_at("machine", "nproc"),
        };
        Ok(Run {
            clients: u64_at("settings", "clients").or(name.scale),
            io_threads: u64_at("server", "io_threads"),
            name,
            machine,
            rows,
            scenarios,
            latencies,
            warnings,
        })
    }

    /// The first numeric row with this key.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.rows.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }

    /// The latency distribution with this key, if the run has one.
    pub fn latency(&self, key: &str) -> Option<&Latency> {
        self.latencies.as_ref()?.iter().find(|l| l.key == key)
    }

    /// Whether the scenario ran (it produced rows).
    pub fn ran(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }

    /// The series label: the server's display name, and the I/O thread count when known
    /// (`gatehouse, 2 I/O threads`, `pinus 1.7.4`).
    pub fn label(&self) -> String {
        let server = self.name.server.display();
        match self.io_threads {
            Some(1) => format!("{server}, 1 I/O thread"),
            Some(n) => format!("{server}, {n} I/O threads"),
            None => server.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_runs() {
        let r = Run::from_json("pinus-1k", r#"{"rows": []}"#).unwrap();
        assert!(r.latencies.is_none());
        assert_eq!(r.label(), "pinus 1.7.4");
        let r = Run::from_json(
            "gate-1k-t1",
            r#"{"tool": "gatehouse-loadgen", "server": {"io_threads": 1},
                "settings": {"clients": 1000}, "machine": {"cpu": "X", "nproc": 2},
                "rows": [{"key": "blast.pushes_per_s", "scenario": "blast", "value": 5.0},
                         {"key": "blast.failed", "scenario": "blast", "value": null}],
                "latencies": [{"key": "blast.latency", "cdf": [[0, 1], [1, 2]]},
                              {"key": "bad.one", "cdf": 3}]}"#,
        )
        .unwrap();
        assert_eq!(r.label(), "gatehouse, 1 I/O thread");
        assert_eq!(r.clients, Some(1000));
        assert_eq!(r.value("blast.pushes_per_s"), Some(5.0));
        assert_eq!(r.value("blast.failed"), None);
        assert!(r.ran("blast") && !r.ran("echo"));
        assert!(r.latency("blast.latency").is_some());
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    }

    #[test]
    fn refuses_what_is_not_a_run() {
        assert!(Run::from_json("x", "{").is_err());
        assert!(Run::from_json("x", "[]").is_err());
        assert!(Run::from_json("x", r#"{"tool": "other", "rows": []}"#).is_err());
        assert!(Run::from_json("x", r#"{"rows": [], "latencies": 1}"#).is_err());
        let s = Run::from_json("gate-scale-300", r#"{"rows": []}"#).unwrap();
        assert_eq!(s.clients, Some(300));
    }
}
