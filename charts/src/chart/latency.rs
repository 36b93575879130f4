//! Latency CDF: x = latency in µs on a log scale (plotted as log10), y = percentile on the tail-expanding scale
//! of [`crate::tail`]; one curve per run, p50 and p99 marked with dots.

use super::axis::{decade_ticks, TickedAxis};
use super::{color, err, legend, line_key, mesh, plot, svg, Series};
use crate::latency::Latency;
use crate::numfmt::{duration_us, grouped, short};
use crate::tail::{nines_for, tail_label, tail_ticks, tail_y};
use plotters::prelude::*;

/// Renders the CDFs of `curves` (at least one) under `title`.
pub fn render(title: &str, curves: &[(Series, &Latency)], footer: &str) -> Result<String, String> {
    let positive = |l: &&Latency| {
        l.cdf
            .iter()
            .map(|&(_, us)| us)
            .filter(|&us| us > 0.0)
            .collect::<Vec<_>>()
    };
    let all: Vec<f64> = curves.iter().flat_map(|(_, l)| positive(l)).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return Err("no positive latency to draw".into());
    }
    // Whole decades, so the log axis starts and ends on a labelled power of ten.
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    let top = curves
        .iter()
        .map(|(_, l)| nines_for(l.count))
        .max()
        .unwrap_or(2);
    let x_axis = TickedAxis {
        range: lo.log10()..hi.log10(),
        ticks: decade_ticks(lo, hi),
    };
    let y_axis = TickedAxis {
        range: 0.0..f64::from(top),
        ticks: tail_ticks(top),
    };
    svg(footer, |area| {
        let mut chart = plot(area, title, x_axis, y_axis)?;
        mesh(&mut chart, "percentile (tail-expanded)")
            .x_desc("latency (µs, log scale)")
            .max_light_lines(4)
            .x_label_formatter(&|v| short(10f64.powf(*v)))
            .y_label_formatter(&|v| tail_label(*v))
            .draw()
            .map_err(err)?;
        for (series, l) in curves {
            let c = color(series.color);
            let points = l
                .cdf
                .iter()
                .map(|&(q, us)| (us.max(lo).log10(), tail_y(q, top)));
            let mut legend = series.label.clone();
            if let Some(p99) = l.p99 {
                legend.push_str(&format!(
                    " (p99 {}, n={})",
                    duration_us(p99),
                    grouped(l.count)
                ));
            }
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(err)?
                .label(legend)
                .legend(line_key(c));
            let marks = [(0.5, l.p50), (0.99, l.p99)];
            chart
                .draw_series(marks.into_iter().filter_map(|(q, v)| {
                    v.map(|us| Circle::new((us.max(lo).log10(), tail_y(q, top)), 4, c.filled()))
                }))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}
