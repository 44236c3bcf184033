//! Bar charts as SVG, drawn on the server with `plotters`' SVG backend.
//!
//! Every bar carries its value as text, a target or threshold is a labelled
//! line (so nothing is told by colour alone), and the SVG gets `role="img"`
//! with a `<title>` and `<desc>`; the page puts a table with the same numbers
//! right after each chart.

use plotters::{
    coord::ranged1d::SegmentValue,
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

/// Bars: 8.6:1 against white.
const BAR: RGBColor = RGBColor(0x1f, 0x4e, 0x79);
/// Text: 17:1 against white.
const TEXT: RGBColor = RGBColor(0x1a, 0x1a, 0x1a);
/// Target or threshold line and its label: 7.5:1 against white.
const LINE: RGBColor = RGBColor(0xa5, 0x1d, 0x2d);
/// Grid lines (decoration only).
const GRID: RGBColor = RGBColor(0xd0, 0xd0, 0xd0);
const FONT: &str = "sans-serif";

/// A bar chart.
#[derive(Debug, Clone)]
pub(crate) struct Bars {
    /// Unique on the page (ids of the title and description).
    pub(crate) id: String,
    pub(crate) title: String,
    /// A sentence summarising what the chart shows.
    pub(crate) desc: String,
    pub(crate) labels: Vec<String>,
    /// Bar lengths (a suppressed cell is 0 and says so in its value label).
    pub(crate) values: Vec<f64>,
    /// Text at the end of each bar.
    pub(crate) value_labels: Vec<String>,
    /// A target or threshold: value and label.
    pub(crate) line: Option<(f64, String)>,
    /// Name of the value axis.
    pub(crate) axis: String,
    /// Bars grow to the right (one row per label) instead of upwards.
    pub(crate) horizontal: bool,
    /// Tick labels of the value axis.
    pub(crate) tick: fn(f64) -> String,
}

/// The chart as an accessible SVG element.
pub(crate) fn render(b: &Bars) -> String {
    let n = u32::try_from(b.labels.len().max(1)).unwrap_or(u32::MAX);
    let max = b
        .values
        .iter()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(b.line.as_ref().map_or(0.0, |l| l.0));
    let top = if max <= 0.0 { 1.0 } else { max * 1.18 };
    let size = if b.horizontal {
        (760, 70 + 30 * n)
    } else {
        (640, 360)
    };
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let drawn = if b.horizontal {
            horizontal(&root, b, n, top)
        } else {
            vertical(&root, b, n, top)
        };
        drawn.and_then(|()| root.present().map_err(err))
    };
    if let Err(e) = drawn {
        tracing::warn!(chart = %b.id, error = %e, "chart not drawn");
        svg.clear();
        svg.push_str(r#"<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>"#);
    }
    accessible(&svg, &b.id, &b.title, &b.desc)
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT)
}

fn vertical(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    b: &Bars,
    n: u32,
    top: f64,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(84)
        .build_cartesian_2d((0u32..n).into_segmented(), 0f64..top)
        .map_err(err)?;
    let labels = &b.labels;
    let x_label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let tick = b.tick;
    let y_label = |y: &f64| tick(*y);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(TEXT)
        .x_labels(labels.len())
        .y_labels(6)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .y_desc(b.axis.as_str())
        .label_style(font(14))
        .axis_desc_style(font(14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(b.values.iter().enumerate().map(|(i, v)| {
            let i = i as u32;
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                BAR.filled(),
            );
            bar.set_margin(0, 0, 14, 14);
            bar
        }))
        .map_err(err)?;
    chart
        .draw_series(b.value_labels.iter().enumerate().map(|(i, text)| {
            let v = b.values.get(i).copied().unwrap_or(0.0);
            Text::new(
                text.clone(),
                (SegmentValue::CenterOf(i as u32), v + top * 0.015),
                font(14).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(err)?;
    if let Some((y, label)) = &b.line {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(SegmentValue::Exact(0), *y), (SegmentValue::Last, *y)],
                LINE.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (SegmentValue::Exact(0), *y + top * 0.015),
                (FONT, 14)
                    .into_font()
                    .color(&LINE)
                    .pos(Pos::new(HPos::Left, VPos::Bottom)),
            )))
            .map_err(err)?;
    }
    Ok(())
}

fn horizontal(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    b: &Bars,
    n: u32,
    top: f64,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(140)
        .build_cartesian_2d(0f64..top, (0u32..n).into_segmented())
        .map_err(err)?;
    // Row 0 at the top: label i is drawn at index n - 1 - i.
    let labels = &b.labels;
    let row = |i: usize| n - 1 - i as u32;
    let y_label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) => (n - 1)
            .checked_sub(*i)
            .and_then(|j| labels.get(j as usize))
            .cloned()
            .unwrap_or_default(),
        _ => String::new(),
    };
    let tick = b.tick;
    let x_label = |x: &f64| tick(*x);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(TEXT)
        .y_labels(labels.len())
        .x_labels(6)
        .y_label_formatter(&y_label)
        .x_label_formatter(&x_label)
        .x_desc(b.axis.as_str())
        .label_style(font(14))
        .axis_desc_style(font(14))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(b.values.iter().enumerate().map(|(i, v)| {
            let r = row(i);
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(r)),
                    (*v, SegmentValue::Exact(r + 1)),
                ],
                BAR.filled(),
            );
            bar.set_margin(5, 5, 0, 0);
            bar
        }))
        .map_err(err)?;
    chart
        .draw_series(b.value_labels.iter().enumerate().map(|(i, text)| {
            let v = b.values.get(i).copied().unwrap_or(0.0);
            Text::new(
                text.clone(),
                (v + top * 0.01, SegmentValue::CenterOf(row(i))),
                font(13).pos(Pos::new(HPos::Left, VPos::Center)),
            )
        }))
        .map_err(err)?;
    if let Some((x, label)) = &b.line {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(*x, SegmentValue::Exact(0)), (*x, SegmentValue::Last)],
                LINE.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (*x, SegmentValue::Last),
                (FONT, 14)
                    .into_font()
                    .color(&LINE)
                    .pos(Pos::new(HPos::Right, VPos::Top)),
            )))
            .map_err(err)?;
    }
    Ok(())
}

/// Adds `role="img"`, a title and a description to the root `<svg>`.
fn accessible(svg: &str, id: &str, title: &str, desc: &str) -> String {
    let Some(open) = svg.find("<svg") else {
        return svg.to_owned();
    };
    let Some(close) = svg[open..].find('>').map(|i| open + i) else {
        return svg.to_owned();
    };
    let attributes = format!(
        r#" role="img" aria-labelledby="{id}-title {id}-desc" focusable="false" class="chart-svg""#
    );
    let (head, rest) = svg.split_at(close);
    let mut out = String::with_capacity(svg.len() + title.len() + desc.len() + 200);
    let head = head.trim_end_matches('/');
    out.push_str(head);
    out.push_str(&attributes);
    out.push('>');
    out.push_str(&format!(
        r#"<title id="{id}-title">{}</title><desc id="{id}-desc">{}</desc>"#,
        escape(title),
        escape(desc)
    ));
    out.push_str(&rest[1..]);
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_image_with_its_values_as_text() {
        for horizontal in [false, true] {
            let svg = render(&Bars {
                id: "c".into(),
                title: "新增就业".into(),
                desc: "a & b".into(),
                labels: vec!["哈尔滨".into(), "大兴安岭地区".into()],
                values: vec![1200.0, 0.0],
                value_labels: vec!["1,200".into(), "<5".into()],
                line: Some((1000.0, "target".into())),
                axis: "persons".into(),
                horizontal,
                tick: |v| format!("{v:.0}"),
            });
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(svg.contains(r#"role="img" aria-labelledby="c-title c-desc""#));
            assert!(svg.contains("<title id=\"c-title\">新增就业</title>"));
            assert!(svg.contains("a &amp; b"));
            assert!(svg.contains("1,200") && svg.contains("&lt;5") && svg.contains("target"));
            assert!(svg.contains("哈尔滨"));
        }
    }
}
