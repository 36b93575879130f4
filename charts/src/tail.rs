//! The tail-expanding percentile scale of the latency charts.
//!
//! A latency CDF drawn on a linear 0–100 % axis hides everything that matters: p99 and p99.9
//! sit in the top pixel. Like HdrHistogram's percentile plots, the y axis here is
//! `y = -log10(1 - q)`, so every "nine" gets the same height: q = 0 → 0, 90 % → 1, 99 % → 2,
//! 99.9 % → 3, 99.99 % → 4. The axis stops at `top` nines; quantiles above `1 - 10^-top`
//! (including the maximum, q = 1) are drawn at the top, so nothing is infinite.
//!
//! `top` comes from the sample count ([`nines_for`]): with n samples the largest one is about
//! the `1 - 1/n` quantile, so showing more nines than `log10(n)` would draw a resolution the
//! data does not have.

/// The fewest and most nines an axis shows.
const NINES: (u32, u32) = (2, 6);

/// How many nines the axis for `count` samples shows: `ceil(log10(count))`, kept in 2..=6.
///
/// ```
/// use gatehouse_charts::tail::nines_for;
/// assert_eq!(nines_for(5000), 4);
/// assert_eq!(nines_for(10), 2);
/// assert_eq!(nines_for(u64::MAX), 6);
/// ```
pub fn nines_for(count: u64) -> u32 {
    let decades = (count.max(1) as f64).log10().ceil() as u32;
    decades.clamp(NINES.0, NINES.1)
}

/// The plotted height of quantile `q` on an axis of `top` nines: `-log10(1 - q)`, with q
/// clamped to `[0, 1 - 10^-top]` (a NaN counts as 0).
///
/// ```
/// use gatehouse_charts::tail::tail_y;
/// assert!((tail_y(0.99, 4) - 2.0).abs() < 1e-9);
/// assert_eq!(tail_y(1.0, 4), 4.0);
/// ```
pub fn tail_y(q: f64, top: u32) -> f64 {
    let top = f64::from(top);
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let y = -(1.0 - q).log10();
    if y.is_finite() {
        y.clamp(0.0, top)
    } else {
        top
    }
}

/// The label of height `y`: the quantile `1 - 10^-y` as a percentage with as many decimals as
/// it has nines past 99 (`0%`, `50%`, `90%`, `99%`, `99.9%`, `99.99%`).
pub fn tail_label(y: f64) -> String {
    let q = 1.0 - 10f64.powf(-y);
    let decimals = (y.ceil() as i64 - 2).clamp(0, 8) as usize;
    let s = format!("{:.decimals$}", 100.0 * q);
    // 99.90 would read as a different tick; keep the shortest exact form.
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}%")
}

/// The tick heights of an axis of `top` nines: 0 %, 50 %, then one per nine up to `top`.
pub fn tail_ticks(top: u32) -> Vec<f64> {
    let mut t = vec![0.0, 2f64.log10()];
    t.extend((1..=top).map(f64::from));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_labelled_as_nines() {
        let labels: Vec<String> = tail_ticks(4).into_iter().map(tail_label).collect();
        assert_eq!(labels, ["0%", "50%", "90%", "99%", "99.9%", "99.99%"]);
        let six: Vec<String> = tail_ticks(6).into_iter().map(tail_label).collect();
        assert_eq!(six.last().map(String::as_str), Some("99.9999%"));
        assert_eq!(tail_ticks(2).len(), 4);
    }

    #[test]
    fn heights_are_clamped_and_monotonic() {
        assert_eq!(tail_y(0.0, 3), 0.0);
        assert_eq!(tail_y(-1.0, 3), 0.0);
        assert_eq!(tail_y(f64::NAN, 3), 0.0);
        assert!((tail_y(0.9, 3) - 1.0).abs() < 1e-12);
        assert!((tail_y(0.999, 3) - 3.0).abs() < 1e-9);
        assert_eq!(tail_y(0.99999, 3), 3.0);
        assert_eq!(tail_y(1.0, 3), 3.0);
        assert_eq!(tail_y(2.0, 3), 3.0);
        let qs = [0.0, 0.1, 0.5, 0.75, 0.9, 0.99, 0.995, 0.999, 1.0];
        let ys: Vec<f64> = qs.iter().map(|&q| tail_y(q, 4)).collect();
        assert!(ys.windows(2).all(|w| w[0] <= w[1]), "{ys:?}");
    }

    #[test]
    fn nines_follow_the_sample_count() {
        assert_eq!(nines_for(0), 2);
        assert_eq!(nines_for(100), 2);
        assert_eq!(nines_for(101), 3);
        assert_eq!(nines_for(1000), 3);
        assert_eq!(nines_for(10_000_000), 6);
    }
}
