//! The chart renderers: each takes prepared series and returns an SVG document as a string.
//!
//! Every chart is [`WIDTH`]×[`HEIGHT`] px with a title (what is measured, at how many clients),
//! axis titles with units, a legend, and a footer line naming the machine and the date. Text is
//! written as SVG `<text>` with a generic `sans-serif` family: no font is read at render time.

mod axis;
pub mod bars;
pub mod latency;
pub mod scaling;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Chart width in px.
pub const WIDTH: u32 = 800;
/// Chart height in px.
pub const HEIGHT: u32 = 500;
/// Height of the footer strip.
const FOOTER: u32 = 22;
/// Font family of every label.
const FAMILY: &str = "sans-serif";

/// One curve or bar set: its legend label and colour index.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Index into the palette (series keep their colour across panels).
    pub color: usize,
}

/// A colour-blind-friendly palette (Okabe–Ito), cycled.
pub fn color(i: usize) -> RGBColor {
    const P: [RGBColor; 7] = [
        RGBColor(0, 114, 178),
        RGBColor(230, 159, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(86, 180, 233),
        RGBColor(213, 94, 0),
        RGBColor(100, 100, 100),
    ];
    P[i % P.len()]
}

/// Turns a plotters error into the message the tool prints.
pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing failed: {e}")
}

/// Renders into an SVG string: `draw` gets the area above the footer; the footer text is
/// drawn under it.
pub(crate) fn svg<F>(footer: &str, draw: F) -> Result<String, String>
where
    F: FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
{
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (main, foot) = root.split_vertically(HEIGHT - FOOTER);
        draw(&main)?;
        let style = (FAMILY, 15).into_font().color(&RGBColor(90, 90, 90));
        foot.draw(&Text::new(footer.to_string(), (10, 4), style))
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Title font.
pub(crate) fn title_font() -> FontDesc<'static> {
    (FAMILY, 22).into_font()
}

/// Axis title and legend font.
pub(crate) fn label_font() -> FontDesc<'static> {
    (FAMILY, 17).into_font()
}

/// Tick label and annotation font.
pub(crate) fn small_font() -> FontDesc<'static> {
    (FAMILY, 15).into_font()
}

/// The chart [`plot`] builds over the axes `X` and `Y`.
pub(crate) type Plot<'a, DB, X, Y> = ChartContext<
    'a,
    DB,
    Cartesian2d<<X as AsRangedCoord>::CoordDescType, <Y as AsRangedCoord>::CoordDescType>,
>;

/// The plot area of a one-panel chart (the latency CDF, the scaling lines): `title` over it,
/// room for the tick labels and axis titles left and under it.
pub(crate) fn plot<'a, DB, X, Y>(
    area: &'a DrawingArea<DB, Shift>,
    title: &str,
    x: X,
    y: Y,
) -> Result<Plot<'a, DB, X, Y>, String>
where
    DB: DrawingBackend,
    X: AsRangedCoord,
    Y: AsRangedCoord,
{
    ChartBuilder::on(area)
        .caption(title, title_font())
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

/// The grid and axes of `chart` with the y axis titled `y_desc`, in the charts' fonts; the
/// caller adds what is its own (x title, formatters, light lines) and draws it.
pub(crate) fn mesh<'a, 'b, DB, X, Y>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    y_desc: &str,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    DB: DrawingBackend,
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut style = chart.configure_mesh();
    style
        .y_desc(y_desc)
        .axis_desc_style(label_font())
        .label_style(small_font());
    style
}

/// Draws the legend of `chart`'s labelled series at `position`, boxed on a light background.
pub(crate) fn legend<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    X: Ranged,
    Y: Ranged,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font(small_font())
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

/// A line series' legend key: a short stroke in its colour.
pub(crate) fn line_key(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
}
