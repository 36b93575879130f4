//! Grouped bars: one panel per figure (e.g. CPU per push, CPU per setup), one group per client
//! count, one bar per series, the value over each bar and a note (the ratio) over each group.

use super::axis::TickedAxis;
use super::{color, err, label_font, legend, mesh, small_font, svg, title_font, Series};
use crate::numfmt::short;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar group: a client count and its bars.
#[derive(Clone, Debug)]
pub struct Group {
    /// Text under the group, e.g. `1,000 clients`.
    pub name: String,
    /// `(index into the series list, value)`.
    pub bars: Vec<(usize, f64)>,
    /// Text over the group, e.g. the pinus/gatehouse ratio.
    pub note: Option<String>,
}

/// One panel: a figure and its groups.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Panel title.
    pub title: String,
    /// Y axis title with the unit.
    pub y_desc: String,
    /// The groups, left to right (none empty).
    pub groups: Vec<Group>,
}

/// Renders `panels` side by side under `title`; `series` gives each bar's label and colour.
pub fn render(
    title: &str,
    series: &[Series],
    panels: &[Panel],
    footer: &str,
) -> Result<String, String> {
    svg(footer, |area| {
        let titled = area.titled(title, title_font()).map_err(err)?;
        let cells = titled.split_evenly((1, panels.len().max(1)));
        for (panel, cell) in panels.iter().zip(cells.iter()) {
            draw_panel(cell, series, panel)?;
        }
        Ok(())
    })
}

fn draw_panel<DB: DrawingBackend>(
    cell: &DrawingArea<DB, plotters::coord::Shift>,
    series: &[Series],
    panel: &Panel,
) -> Result<(), String> {
    // Slots: each bar one unit wide, one empty unit between groups.
    let mut centers = Vec::new();
    let mut placed = Vec::new(); // (series, value, x0)
    let mut x = 0.5;
    for g in &panel.groups {
        centers.push(x + g.bars.len() as f64 / 2.0);
        for &(s, v) in &g.bars {
            placed.push((s, v, x));
            x += 1.0;
        }
        x += 1.0;
    }
    // Half a bar more on each side than the bars need: a group's note is wider than its bars
    // and must not run off the panel's edge.
    let x_axis = TickedAxis {
        range: -1.0..x.max(1.0) + 0.5,
        ticks: centers.clone(),
    };
    let max = placed.iter().map(|p| p.1).fold(0.0, f64::max);
    // Headroom over the bars for the value labels, the ratio and the legend.
    let y_top = if max > 0.0 { max * 1.8 } else { 1.0 };
    let mut chart = ChartBuilder::on(cell)
        .caption(&panel.title, label_font())
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x_axis, 0.0..y_top)
        .map_err(err)?;
    let names: Vec<(f64, String)> = centers
        .iter()
        .zip(&panel.groups)
        .map(|(c, g)| (*c, g.name.clone()))
        .collect();
    let group_name = move |v: &f64| {
        names
            .iter()
            .find(|(c, _)| (c - v).abs() < 1e-9)
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    };
    mesh(&mut chart, &panel.y_desc)
        .disable_x_mesh()
        .max_light_lines(2)
        .x_label_formatter(&group_name)
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(err)?;
    let above = || {
        small_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom))
    };
    for (i, s) in series.iter().enumerate() {
        let mine: Vec<_> = placed.iter().filter(|p| p.0 == i).collect();
        if mine.is_empty() {
            continue;
        }
        let c = color(s.color);
        chart
            .draw_series(
                mine.iter().map(|&&(_, v, x0)| {
                    Rectangle::new([(x0 + 0.08, 0.0), (x0 + 0.92, v)], c.filled())
                }),
            )
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        chart
            .draw_series(
                mine.iter()
                    .map(|&&(_, v, x0)| Text::new(short(v), (x0 + 0.5, v + y_top * 0.01), above())),
            )
            .map_err(err)?;
    }
    for (g, c) in panel.groups.iter().zip(&centers) {
        if let Some(note) = &g.note {
            let top = g.bars.iter().map(|b| b.1).fold(0.0, f64::max);
            let style = label_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(std::iter::once(Text::new(
                    note.clone(),
                    (*c, top + y_top * 0.07),
                    style,
                )))
                .map_err(err)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}
