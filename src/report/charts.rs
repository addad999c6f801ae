//! Charts for the report, drawn with plotters as SVG.
//!
//! Text is set in Libertinus Serif, the report's own font from typst-assets, so the SVG's text
//! metrics match what typst renders. Each series has a legend entry, so no meaning rests on colour
//! alone.

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

/// The font family the charts name; typst resolves it from its embedded fonts.
const FAMILY: &str = "Libertinus Serif";

/// Registers the chart font once per process.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let regular = typst_assets::fonts().next().expect("typst-assets ships fonts");
        // typst-assets lists Libertinus Serif Regular first; a failure only affects text width estimates.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, regular);
    });
}

fn chart_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("drawing a chart failed ({e})"))
}

/// The tallest chart, in pixels at a width of 760: it still fits one A4 page at full text width.
const MAX_HEIGHT: usize = 980;

/// Grey for the raw corpus, blue for the curated stream, orange for the random baseline.
pub const SERIES_COLORS: [RGBColor; 3] = [RGBColor(150, 150, 150), RGBColor(31, 119, 180), RGBColor(230, 126, 34)];

/// One series of a bar chart.
pub struct Series<'a> {
    pub label: &'a str,
    pub values: &'a [f64],
    pub color: RGBColor,
}

/// Horizontal grouped bars, one group of bars per category, with an optional reference mark.
pub fn grouped_bars(title: &str, x_label: &str, category_label: &str, categories: &[String], series: &[Series], reference: Option<&[f64]>) -> Result<String> {
    register_font();
    let rows = categories.len().max(1);
    let height = (90 + rows * (10 * series.len() + 8)).clamp(220, MAX_HEIGHT) as u32;
    let label_size = if (height as usize - 90) / rows < 16 { 10 } else { 13 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let label_width = categories.iter().map(|c| c.chars().count()).chain([category_label.chars().count() + 2]).max().unwrap_or(4).min(34) as u32 * 7 + 10;
        let max = series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .chain(reference.into_iter().flatten().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-9)
            // Headroom on the right keeps the legend clear of the longest bar.
            * 1.4;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 18))
            .margin(10)
            .margin_left(label_width)
            .x_label_area_size(36)
            .y_label_area_size(0)
            .build_cartesian_2d(0.0..max, 0.0..rows as f64)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc(x_label)
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .draw()
            .map_err(chart_error)?;

        let band = 0.8 / series.len() as f64;
        for (s, one) in series.iter().enumerate() {
            let color = one.color;
            chart
                .draw_series(one.values.iter().enumerate().filter(|(_, v)| v.is_finite() && **v > 0.0).map(|(i, &v)| {
                    // Row 0 at the top: invert the row index.
                    let top = (rows - 1 - i) as f64 + 0.9 - s as f64 * band;
                    Rectangle::new([(0.0, top - band), (v, top)], color.filled())
                }))
                .map_err(chart_error)?
                .label(one.label)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        if let Some(reference) = reference {
            chart
                .draw_series(reference.iter().enumerate().map(|(i, &r)| {
                    let y = (rows - 1 - i) as f64;
                    PathElement::new(vec![(r, y + 0.05), (r, y + 0.95)], BLACK.stroke_width(2))
                }))
                .map_err(chart_error)?
                .label("reference share")
                .legend(|(x, y)| PathElement::new(vec![(x + 6, y - 6), (x + 6, y + 6)], BLACK.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 13))
            .draw()
            .map_err(chart_error)?;

        // Category names in the left margin, level with their bars.
        let style = TextStyle::from((FAMILY, label_size).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Center,
        ));
        let (left, top) = chart.backend_coord(&(0.0, rows as f64));
        let heading = TextStyle::from((FAMILY, 13).into_font().style(FontStyle::Bold)).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Bottom,
        ));
        root.draw(&Text::new(category_label.to_string(), (left - 6, top - 4), heading)).map_err(chart_error)?;
        for (i, name) in categories.iter().enumerate() {
            let (_, y) = chart.backend_coord(&(0.0, (rows - 1 - i) as f64 + 0.5));
            let (x, _) = chart.backend_coord(&(0.0, 0.0));
            let short: String = if name.chars().count() > 34 { name.chars().take(33).chain(['…']).collect() } else { name.clone() };
            root.draw(&Text::new(short, (x - 6, y), style.clone())).map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Vertical bars of documents per draw count (0, 1, 2, ...).
pub fn repetition_histogram(title: &str, histogram: &[(u32, u64)], clip: u32) -> Result<String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let max_count = histogram.iter().map(|&(c, _)| c).max().unwrap_or(0);
        let max_docs = histogram.iter().map(|&(_, d)| d).max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.5..(max_count as f64 + 0.5), 0.0..max_docs)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels((max_count + 1) as usize)
            .x_label_formatter(&|v| format!("{}", v.round() as i64))
            .y_label_formatter(&|v| format!("{}", v.round() as i64))
            .x_desc(format!("times drawn (clip threshold C = {clip})"))
            .y_desc("documents")
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .draw()
            .map_err(chart_error)?;
        chart
            .draw_series(histogram.iter().filter(|&&(_, docs)| docs > 0).map(|&(count, docs)| {
                let x = count as f64;
                let color = if count >= clip { SERIES_COLORS[2] } else { SERIES_COLORS[1] };
                Rectangle::new([(x - 0.35, 0.0), (x + 0.35, docs as f64)], color.filled())
            }))
            .map_err(chart_error)?;
        let above = TextStyle::from((FAMILY, 14).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Bottom,
        ));
        chart
            .draw_series(histogram.iter().map(|&(count, docs)| Text::new(docs.to_string(), (count as f64, docs as f64 + max_docs * 0.01), above.clone())))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Draws a heat map of shares, `shares[row][column]` in [0, 1]. The colour scale runs from white
/// at 0 to dark blue at a round value at or above the largest share.
pub fn heatmap(title: &str, rows: &[String], column_names: &[String], x_label: &str, shares: &[Vec<f64>]) -> Result<String> {
    register_font();
    let columns = column_names.len();
    let top_share = shares.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let scale = [0.05, 0.1, 0.2, 0.25, 0.5, 1.0].into_iter().find(|&s| s >= top_share).unwrap_or(1.0);
    let height = (110 + rows.len() * 22).clamp(200, MAX_HEIGHT) as u32;
    let label_size = if (height as usize - 110) / rows.len().max(1) < 16 { 10 } else { 12 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let label_width = rows.iter().map(|c| c.chars().count()).max().unwrap_or(4).min(30) as u32 * 7 + 10;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 18))
            .margin(10)
            .margin_left(label_width)
            .x_label_area_size(58)
            .y_label_area_size(0)
            .build_cartesian_2d(0.0..columns as f64, 0.0..rows.len() as f64)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .y_labels(0)
            .x_labels(0)
            .x_desc(x_label)
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .draw()
            .map_err(chart_error)?;
        for (r, row) in shares.iter().enumerate() {
            let y = (rows.len() - 1 - r) as f64;
            chart
                .draw_series(row.iter().enumerate().map(|(c, &share)| {
                    Rectangle::new([(c as f64, y), (c as f64 + 1.0, y + 1.0)], shade(share / scale).filled())
                }))
                .map_err(chart_error)?;
        }

        // Column names at the centre of each column.
        let below = TextStyle::from((FAMILY, 11).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Top,
        ));
        for (c, name) in column_names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(c as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (x, y + 4), below.clone())).map_err(chart_error)?;
        }

        // Colour scale in the bottom right corner, level with the axis description.
        let (right, bottom) = chart.backend_coord(&(columns as f64, 0.0));
        let steps = [0.0, 0.25, 0.5, 0.75, 1.0];
        for (i, &fraction) in steps.iter().enumerate() {
            let x = right - (steps.len() - i) as i32 * 54;
            let y = bottom + 40;
            root.draw(&Rectangle::new([(x, y), (x + 16, y + 12)], shade(fraction).filled())).map_err(chart_error)?;
            root.draw(&Rectangle::new([(x, y), (x + 16, y + 12)], BLACK.stroke_width(1))).map_err(chart_error)?;
            let value = (fraction * scale * 1000.0).round() / 1000.0;
            root.draw(&Text::new(format!("{value}"), (x + 19, y), (FAMILY, 11))).map_err(chart_error)?;
        }

        let style = TextStyle::from((FAMILY, label_size).into_font()).pos(plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Right,
            plotters::style::text_anchor::VPos::Center,
        ));
        for (r, name) in rows.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, (rows.len() - 1 - r) as f64 + 0.5));
            let short: String = if name.chars().count() > 30 { name.chars().take(29).chain(['…']).collect() } else { name.clone() };
            root.draw(&Text::new(short, (x - 6, y), style.clone())).map_err(chart_error)?;
        }
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// White for 0 to dark blue for 1 and above.
fn shade(fraction: f64) -> RGBColor {
    let t = fraction.clamp(0.0, 1.0);
    RGBColor((255.0 - t * 224.0) as u8, (255.0 - t * 175.0) as u8, (255.0 - t * 100.0) as u8)
}

/// Ten colours that stay apart in print (the Tableau 10 palette).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The largest number of groups drawn as separate lines; more are drawn as a heat map instead.
pub const MAX_LINES: usize = 10;

/// Draws one line per group: its share of each phase's draws, with the phase's reference share as
/// a dashed line of the same colour. Each line has a legend entry and its own marker shape.
pub fn phase_lines(title: &str, groups: &[String], shares: &[Vec<f64>], reference: &[Vec<f64>], phase_labels: &[String]) -> Result<String> {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 380)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let phases = phase_labels.len();
        let max = shares.iter().flatten().chain(reference.iter().flatten()).copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-9) * 1.15;
        let labels = phase_labels.to_vec();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 18))
            .margin(12)
            .margin_right(150)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(-0.3..(phases as f64 - 0.7), 0.0..max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .x_labels(phases)
            .x_label_formatter(&move |v| {
                let i = v.round();
                if (v - i).abs() < 1e-6 && i >= 0.0 { labels.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
            })
            .x_desc("phase of the curated stream (draws)")
            .y_desc("share of the phase's draws")
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 14))
            .draw()
            .map_err(chart_error)?;
        for g in 0..groups.len() {
            let color = PALETTE[g % PALETTE.len()];
            let points: Vec<(f64, f64)> = (0..phases).map(|p| (p as f64, shares[p][g])).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(chart_error)?;
            // Alternate circles and triangles so neighbouring lines differ by shape, not only colour.
            if g % 2 == 0 {
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(chart_error)?;
            } else {
                chart.draw_series(points.iter().map(|&p| TriangleMarker::new(p, 5, color.filled()))).map_err(chart_error)?;
            }
            // The reference is a step for each phase, so a per-phase target shows as stairs.
            let steps: Vec<(f64, f64)> = (0..phases).flat_map(|p| [(p as f64 - 0.3, reference[p][g]), (p as f64 + 0.3, reference[p][g])]).collect();
            chart
                .draw_series(DashedLineSeries::new(steps, 4, 4, color.stroke_width(1)))
                .map_err(chart_error)?;
        }
        // The legend sits in the right margin, outside the plotting area.
        let (right, top) = chart.backend_coord(&(phases as f64 - 0.7, max));
        for (g, name) in groups.iter().enumerate() {
            let color = PALETTE[g % PALETTE.len()];
            let y = top + 10 + g as i32 * 20;
            let x = right + 14;
            root.draw(&PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2))).map_err(chart_error)?;
            if g % 2 == 0 {
                root.draw(&Circle::new((x + 11, y), 4, color.filled())).map_err(chart_error)?;
            } else {
                root.draw(&TriangleMarker::new((x + 11, y), 5, color.filled())).map_err(chart_error)?;
            }
            let style = TextStyle::from((FAMILY, 12).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Left,
                plotters::style::text_anchor::VPos::Center,
            ));
            root.draw(&Text::new(name.clone(), (x + 28, y), style)).map_err(chart_error)?;
        }
        let y = top + 10 + groups.len() as i32 * 20;
        for dash in 0..3 {
            let x = right + 14 + dash * 8;
            root.draw(&PathElement::new(vec![(x, y), (x + 4, y)], BLACK.stroke_width(1))).map_err(chart_error)?;
        }
        root.draw(&Text::new("reference", (right + 42, y - 6), (FAMILY, 12))).map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}
