//! Scaling: delivered pushes/s (y) against connections (x, log scale), one line per server,
//! each point labelled with its value.

use super::axis::TickedAxis;
use super::{color, err, legend, line_key, mesh, plot, small_font, svg, Series};
use crate::numfmt::{grouped, short};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Renders one line per `(series, points)`; points are `(clients, pushes/s)`, sorted by
/// clients.
pub fn render(
    title: &str,
    lines: &[(Series, Vec<(f64, f64)>)],
    footer: &str,
) -> Result<String, String> {
    let xs = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (lo, hi) = xs.fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let y_max = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.1))
        .fold(0.0, f64::max);
    if !lo.is_finite() || lo <= 0.0 || y_max <= 0.0 {
        return Err("no positive point to draw".into());
    }
    // x is plotted as log10(clients), with a tick at each client count of the sweep.
    let mut ticks: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0.log10()))
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    let x_axis = TickedAxis {
        range: (lo / 1.5).log10()..(hi * 1.5).log10(),
        ticks,
    };
    svg(footer, |area| {
        let mut chart = plot(area, title, x_axis, 0.0..y_max * 1.2)?;
        mesh(&mut chart, "delivered pushes/s")
            .x_desc("connections (bound sessions, log scale)")
            .x_label_formatter(&|v| grouped(10f64.powf(*v).round() as u64))
            .y_label_formatter(&|v| short(*v))
            .draw()
            .map_err(err)?;
        for (s, points) in lines {
            let c = color(s.color);
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(x, y)| (x.log10(), y)),
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(s.label.clone())
                .legend(line_key(c));
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, y)| Circle::new((x.log10(), y), 4, c.filled())),
                )
                .map_err(err)?;
            // The value over each point: a slow server's line sits near zero on this scale.
            let above = small_font()
                .color(&c)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(points.iter().map(|&(x, y)| {
                    Text::new(short(y), (x.log10(), y + y_max * 0.015), above.clone())
                }))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}
