//! One latency distribution of a run: an entry of the loadgen JSON's `latencies` array.
//!
//! ```json
//! { "key": "echo.rtt", "scenario": "echo", "figure": "request round trip …", "unit": "us",
//!   "count": 5000, "min": 41.0, "max": 912.0, "mean": 88.1,
//!   "percentiles": { "p50": 80.0, "p99": 300.0 },
//!   "cdf": [[0.0, 41.0], [0.5, 80.0], [1.0, 912.0]] }
//! ```
//! `cdf` holds `[quantile, latency]` points with non-decreasing quantiles in `[0, 1]`.
//! Latencies are kept in µs; a unit of `ms` or `ns` is converted, any other unit is refused.

use serde_json::Value;

/// At most this many CDF points are accepted per distribution (the loadgen writes ≤ ~200).
pub const MAX_CDF_POINTS: usize = 10_000;

/// A validated latency distribution, in µs.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// `scenario.name`, e.g. `echo.rtt`.
    pub key: String,
    /// The scenario, e.g. `echo`.
    pub scenario: String,
    /// The loadgen's description of the figure.
    pub figure: String,
    /// Number of samples behind the distribution.
    pub count: u64,
    /// The median, if given (µs).
    pub p50: Option<f64>,
    /// The 99th percentile, if given (µs).
    pub p99: Option<f64>,
    /// `(quantile, µs)` points, quantiles non-decreasing in `[0, 1]`, latencies ≥ 0.
    pub cdf: Vec<(f64, f64)>,
}

/// Bounded text from a JSON string field (labels never grow without bound).
pub(crate) fn text(v: &Value, field: &str) -> Option<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(|s| s.chars().take(200).collect())
}

impl Latency {
    /// Validates one `latencies` entry; the error says what is wrong with it.
    pub fn from_json(v: &Value) -> Result<Latency, String> {
        let key = text(v, "key").ok_or("no string `key`")?;
        let scenario = text(v, "scenario")
            .or_else(|| key.split('.').next().map(str::to_string))
            .unwrap_or_default();
        let figure = text(v, "figure").unwrap_or_default();
        let scale = match v.get("unit").and_then(Value::as_str) {
            Some("us" | "µs") | None => 1.0,
            Some("ms") => 1e3,
            Some("ns") => 1e-3,
            Some(u) => return Err(format!("{key}: unit {u:?} is not a time unit")),
        };
        let points = v
            .get("cdf")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{key}: no `cdf` array"))?;
        if points.len() > MAX_CDF_POINTS {
            return Err(format!(
                "{key}: {} cdf points (at most {MAX_CDF_POINTS})",
                points.len()
            ));
        }
        let mut cdf = Vec::with_capacity(points.len());
        for p in points {
            let pair = p.as_array().filter(|a| a.len() == 2);
            let (q, us) = match pair.map(|a| (a[0].as_f64(), a[1].as_f64())) {
                Some((Some(q), Some(us))) => (q, us * scale),
                _ => return Err(format!("{key}: a cdf point is not [quantile, latency]")),
            };
            if !(0.0..=1.0).contains(&q) || !us.is_finite() || us < 0.0 {
                return Err(format!("{key}: cdf point [{q}, {us}] out of range"));
            }
            if cdf.last().is_some_and(|&(prev, _)| q < prev) {
                return Err(format!("{key}: cdf quantiles decrease at {q}"));
            }
            cdf.push((q, us));
        }
        if cdf.len() < 2 {
            return Err(format!("{key}: fewer than 2 cdf points"));
        }
        let pct = |name: &str| {
            v.get("percentiles")
                .and_then(|p| p.get(name))
                .and_then(Value::as_f64)
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(|x| x * scale)
        };
        let count = v
            .get("count")
            .and_then(Value::as_u64)
            .unwrap_or(cdf.len() as u64);
        Ok(Latency {
            key,
            scenario,
            figure,
            count,
            p50: pct("p50"),
            p99: pct("p99"),
            cdf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_the_loadgen_schema_and_converts_units() {
        let l = Latency::from_json(&json!({"key": "echo.rtt", "scenario": "echo", "unit": "ms",
            "count": 10, "percentiles": {"p50": 0.08, "p99": 0.3},
            "cdf": [[0.0, 0.041], [0.5, 0.08], [1.0, 0.912]]}))
        .unwrap();
        assert_eq!(l.count, 10);
        assert_eq!(l.cdf.len(), 3);
        assert!((l.cdf[2].1 - 912.0).abs() < 1e-9);
        assert!((l.p99.unwrap() - 300.0).abs() < 1e-9);
    }

    #[test]
    fn refuses_bad_points() {
        let bad = [
            json!({"key": "a.b", "cdf": [[0.5, 1.0], [0.4, 2.0]]}),
            json!({"key": "a.b", "cdf": [[0.5, 1.0], [1.5, 2.0]]}),
            json!({"key": "a.b", "cdf": [[0.5, -1.0], [1.0, 2.0]]}),
            json!({"key": "a.b", "cdf": [[0.5, 1.0]]}),
            json!({"key": "a.b", "cdf": [[0.5], [1.0, 2.0]]}),
            json!({"key": "a.b", "unit": "B", "cdf": [[0.0, 1.0], [1.0, 2.0]]}),
            json!({"cdf": [[0.0, 1.0], [1.0, 2.0]]}),
        ];
        for b in bad {
            assert!(Latency::from_json(&b).is_err(), "accepted {b}");
        }
    }
}
