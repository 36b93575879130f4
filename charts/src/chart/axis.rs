//! An axis with explicit ticks, for the tail-expanding percentile scale, the log scales and the
//! bar slots.
//!
//! plotters picks tick positions itself on numeric axes (and on a log axis spanning one or two
//! decades it labels every 2…9 multiple, which overlap). These axes put ticks exactly where the
//! chart says (0 %, 90 %, 99 %, …; powers of ten; the centre of each bar group), and the chart
//! labels them with its own formatter. A log axis is a [`TickedAxis`] over `log10(value)`.

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use std::ops::Range;

/// A linear `f64` axis over `range` with ticks at `ticks`.
#[derive(Clone, Debug)]
pub(crate) struct TickedAxis {
    pub(crate) range: Range<f64>,
    pub(crate) ticks: Vec<f64>,
}

impl Ranged for TickedAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let f = if span > 0.0 {
            (value - self.range.start) / span
        } else {
            0.0
        };
        limit.0 + (f64::from(limit.1 - limit.0) * f).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // Bold lines and labels at the ticks; no light lines in between.
        if hint.weight().allow_light_points() {
            return Vec::new();
        }
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for TickedAxis {
    fn format(value: &f64) -> String {
        format!("{value}")
    }
}

/// Ticks of a log axis over `lo..=hi` (powers of ten), in log10 space: every decade, and 2×
/// and 5× between them when the axis spans at most two decades.
pub(crate) fn decade_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let fine = b - a <= 2;
    let mut t = Vec::new();
    for d in a..=b {
        t.push(f64::from(d));
        if fine && d < b {
            t.push(f64::from(d) + 2f64.log10());
            t.push(f64::from(d) + 5f64.log10());
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decade_ticks_are_fine_only_on_short_axes() {
        let t: Vec<f64> = decade_ticks(10.0, 1000.0)
            .into_iter()
            .map(|v| (10f64.powf(v) * 1e6).round() / 1e6)
            .collect();
        assert_eq!(t, [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]);
        assert_eq!(decade_ticks(10.0, 1e6).len(), 6);
    }
}
