//! Latency distributions: HDR histograms of nanoseconds, 3 significant figures.
//!
//! Every latency figure (setup, push delivery, fan-out, echo and saturation round trips, the
//! blast's per-round spread) is recorded into a [`Latency`]: an `hdrhistogram::Histogram`
//! tracking 1 ns to one hour at 3 significant figures, so any percentile is within 0.1 % of the
//! recorded value whatever the count, in a fixed ~270 KiB per histogram (no sample vector that
//! grows with the run). A value above an hour is clamped to an hour. Client threads keep their
//! own histograms; the main thread adds them up.
//!
//! [`Latency::summary`] turns one into the JSON `latencies` entry (microseconds, floats): the
//! count, min, max, mean, p50 … p99.99, and a CDF from hdrhistogram's log-spaced quantile
//! iteration (0, 0.5, 0.75, 0.875, … with 4 steps per halving), at most [`CDF_POINTS`] points,
//! ending at the max.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The largest value kept: one hour in nanoseconds.
const HIGHEST_NS: u64 = 3_600 * 1_000_000_000;
/// Significant figures of every recorded value.
const SIGFIG: u8 = 3;
/// At most this many points in a CDF.
pub const CDF_POINTS: usize = 200;
/// The percentiles every summary reports, by name.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// A distribution of durations in nanoseconds.
#[derive(Clone, Debug)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::new()
    }
}

impl Latency {
    /// An empty distribution (1 ns … 1 h, 3 significant figures).
    pub fn new() -> Latency {
        Latency {
            // Constant, valid bounds (low >= 1, high >= 2 × low, sigfig <= 5): cannot fail.
            hist: Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG)
                .expect("constant histogram bounds are valid"),
        }
    }

    /// Records one duration; above an hour counts as an hour.
    pub fn record_ns(&mut self, ns: u64) {
        self.hist.saturating_record(ns);
    }

    /// Adds every value of `other` (same bounds, so nothing is lost).
    pub fn add(&mut self, other: &Latency) {
        // Equal bounds: the only error (a value out of range) cannot happen.
        let _ = self.hist.add(&other.hist);
    }

    /// How many values were recorded.
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The value at quantile `q` (0..=1) in nanoseconds; NaN when empty (the row shows n/a).
    pub fn quantile_ns(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return f64::NAN;
        }
        self.hist.value_at_quantile(q) as f64
    }

    /// The largest value (to the histogram's precision) in nanoseconds; NaN when empty.
    pub fn max_ns(&self) -> f64 {
        if self.hist.is_empty() {
            return f64::NAN;
        }
        self.hist.max() as f64
    }

    /// The JSON `latencies` entry: microseconds, percentiles and CDF; `None` when empty.
    pub fn summary(&self, key: &str, scenario: &str, figure: &str) -> Option<Value> {
        if self.hist.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        let mut percentiles = serde_json::Map::new();
        for (name, q) in PERCENTILES {
            percentiles.insert(name.into(), json!(us(self.hist.value_at_quantile(q))));
        }
        let cdf: Vec<Value> = self
            .cdf_ns()
            .into_iter()
            .map(|(q, ns)| json!([q, us(ns)]))
            .collect();
        Some(json!({
            "key": key,
            "scenario": scenario,
            "figure": figure,
            "unit": "us",
            "count": self.hist.len(),
            "min": us(self.hist.min()),
            "max": us(self.hist.max()),
            "mean": self.hist.mean() / 1e3,
            "percentiles": percentiles,
            "cdf": cdf,
        }))
    }

    /// (quantile, ns) pairs from 0 (the min) to 1 (the max), both non-decreasing, at most
    /// [`CDF_POINTS`].
    pub fn cdf_ns(&self) -> Vec<(f64, u64)> {
        if self.hist.is_empty() {
            return Vec::new();
        }
        let (min, max) = (self.hist.min(), self.hist.max());
        let mut points = vec![(0.0, min)];
        for v in self.hist.iter_quantiles(4) {
            let q = v.quantile_iterated_to().clamp(0.0, 1.0);
            let ns = v.value_iterated_to().clamp(min, max);
            let (lq, lns) = points[points.len() - 1];
            // Keep both sequences non-decreasing; drop repeats.
            let (q, ns) = (q.max(lq), ns.max(lns));
            if (q, ns) != (lq, lns) {
                points.push((q, ns));
            }
        }
        if points[points.len() - 1] != (1.0, max) {
            points.push((1.0, max));
        }
        if points.len() > CDF_POINTS {
            // Thin evenly, keeping the first and the last point.
            let n = points.len();
            let keep = CDF_POINTS - 1;
            let thinned: Vec<(f64, u64)> = (0..keep)
                .map(|i| points[i * (n - 1) / keep])
                .chain(std::iter::once(points[n - 1]))
                .collect();
            points = thinned;
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_three_significant_figures() {
        let mut l = Latency::new();
        for us in 1..=10_000u64 {
            l.record_ns(us * 1_000);
        }
        assert_eq!(l.count(), 10_000);
        for (q, want) in [
            (0.5, 5_000_000.0),
            (0.99, 9_900_000.0),
            (0.9999, 9_999_000.0),
        ] {
            let got = l.quantile_ns(q);
            assert!((got - want).abs() <= want * 1e-3, "q {q}: {got} vs {want}");
        }
        assert!((l.max_ns() - 10_000_000.0).abs() <= 10_000.0);
    }

    #[test]
    fn empty_means_nan_and_no_summary() {
        let l = Latency::new();
        assert!(l.quantile_ns(0.5).is_nan() && l.max_ns().is_nan());
        assert!(l.summary("echo.rtt", "echo", "x").is_none());
        assert!(l.cdf_ns().is_empty());
    }

    #[test]
    fn add_merges_and_huge_values_saturate() {
        let (mut a, mut b) = (Latency::new(), Latency::new());
        a.record_ns(1_000);
        b.record_ns(2_000);
        b.record_ns(u64::MAX);
        a.add(&b);
        assert_eq!(a.count(), 3);
        assert!(a.max_ns() >= HIGHEST_NS as f64 * 0.999);
    }

    #[test]
    fn the_cdf_runs_from_min_to_max_non_decreasing_and_bounded() {
        let mut l = Latency::new();
        // A long tail over many magnitudes: many quantile steps.
        for i in 0..2_000_000u64 {
            l.record_ns(1_000 + (i * i) % 50_000_000);
        }
        let cdf = l.cdf_ns();
        assert!(
            cdf.len() <= CDF_POINTS && cdf.len() > 10,
            "{} points",
            cdf.len()
        );
        assert_eq!(cdf[0].0, 0.0);
        assert_eq!(*cdf.last().unwrap(), (1.0, l.hist.max()));
        for w in cdf.windows(2) {
            assert!(w[0].0 <= w[1].0 && w[0].1 <= w[1].1, "{w:?}");
        }
    }

    #[test]
    fn the_summary_has_the_charts_schema() {
        let mut l = Latency::new();
        for us in [41u64, 80, 80, 95, 120, 300, 912] {
            l.record_ns(us * 1_000);
        }
        let s = l
            .summary("echo.rtt", "echo", "request round trip")
            .expect("not empty");
        assert_eq!(s["key"], "echo.rtt");
        assert_eq!(s["scenario"], "echo");
        assert_eq!(s["unit"], "us");
        assert_eq!(s["count"], 7);
        let min = s["min"].as_f64().unwrap();
        let max = s["max"].as_f64().unwrap();
        assert!(
            (40.9..=41.1).contains(&min) && (911.0..=913.0).contains(&max),
            "{s}"
        );
        for name in ["p50", "p90", "p99", "p99.9", "p99.99"] {
            assert!(s["percentiles"][name].as_f64().is_some(), "{name} in {s}");
        }
        let cdf = s["cdf"].as_array().unwrap();
        assert_eq!(cdf[0][0], 0.0);
        assert_eq!(cdf[cdf.len() - 1][0], 1.0);
        assert_eq!(cdf[cdf.len() - 1][1].as_f64(), Some(max));
    }
}
