//! Charts (line, scatter, grouped bars) drawn with `plotters`: each is written as SVG and,
//! beside it, as PNG (the same name, `.png`). Axis ticks fall on round values (plotters'
//! key points); text is laid out with DejaVu Sans, which the binary carries, so nothing
//! depends on the fonts a machine has.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{write_atomic, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Line,
    Points,
    LineAndPoints,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

/// Matplotlib's ten-colour cycle (tab10), in an order that keeps the first pairs apart.
pub const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

const W: u32 = 900;
const H: u32 = 500;
const FONT: &str = "sans-serif";

/// A chart to draw: what [`xy`] and [`bars`] return and [`write`] renders.
#[derive(Debug, Clone)]
pub enum Chart {
    Xy {
        title: String,
        x_label: String,
        y_label: String,
        series: Vec<Series>,
        x: (f64, f64),
        y: (f64, f64),
    },
    Bars {
        title: String,
        y_label: String,
        groups: Vec<String>,
        series: Vec<(String, Vec<f64>)>,
        top: f64,
    },
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TTF (the dejavu crate's), so this cannot fail.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn rgb(hex: &str) -> RGBColor {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap_or(0);
    RGBColor((v >> 16) as u8, (v >> 8) as u8, v as u8)
}

/// A tick label: whole numbers without decimals, others without trailing zeros.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 && v.abs() < 1e15 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn finite(points: &[(f64, f64)]) -> impl Iterator<Item = (f64, f64)> + '_ {
    points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// A line or scatter chart. `y_from_zero` starts the y axis at 0 when all values are positive.
pub fn xy(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_from_zero: bool,
) -> Result<Chart> {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| finite(&s.points)).collect();
    if all.is_empty() {
        return Err(Error::Invalid(format!("chart {title:?}: nothing to draw")));
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        all.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            })
    };
    let (mut x0, mut x1) = fold(|p| p.0);
    let (mut y0, mut y1) = fold(|p| p.1);
    if y_from_zero {
        y0 = y0.min(0.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-12 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    y1 += pad;
    if !y_from_zero {
        y0 -= pad;
        let xpad = (x1 - x0) * 0.03;
        x0 -= xpad;
        x1 += xpad;
    }
    Ok(Chart::Xy {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        series: series.to_vec(),
        x: (x0, x1),
        y: (y0, y1),
    })
}

/// Grouped bars: one group per label, one bar per series value.
pub fn bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<Chart> {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    if groups.is_empty() || max <= 0.0 {
        return Err(Error::Invalid(format!("chart {title:?}: nothing to draw")));
    }
    Ok(Chart::Bars {
        title: title.into(),
        y_label: y_label.into(),
        groups: groups.to_vec(),
        series: series.to_vec(),
        top: max * 1.1,
    })
}

type Drawn<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> Drawn<DB::ErrorType> {
    root.fill(&WHITE)?;
    match chart {
        Chart::Xy {
            title,
            x_label,
            y_label,
            series,
            x,
            y,
        } => {
            let mut c = ChartBuilder::on(root)
                .caption(title, (FONT, 20))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(70)
                .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
            c.configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 15))
                .light_line_style(RGBColor(238, 238, 238))
                .bold_line_style(RGBColor(215, 215, 215))
                .draw()?;
            for s in series {
                let color = rgb(s.color);
                let pts: Vec<(f64, f64)> = finite(&s.points).collect();
                let line = matches!(s.mark, Mark::Line | Mark::LineAndPoints);
                if line {
                    c.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                }
                if matches!(s.mark, Mark::Points | Mark::LineAndPoints) {
                    let r = if s.mark == Mark::Points { 2 } else { 4 };
                    c.draw_series(
                        pts.iter()
                            .map(|&p| Circle::new(p, r, color.mix(0.6).filled())),
                    )?;
                }
                // One legend entry per series, drawn once.
                c.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
                    .label(s.name.as_str())
                    .legend(move |(px, py)| {
                        if line {
                            EmptyElement::at((px, py))
                                + PathElement::new(vec![(0, 0), (22, 0)], color.stroke_width(3))
                        } else {
                            EmptyElement::at((px, py))
                                + PathElement::new(vec![(8, 0), (14, 0)], color.stroke_width(6))
                        }
                    });
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(150, 150, 150))
                .draw()?;
        }
        Chart::Bars {
            title,
            y_label,
            groups,
            series,
            top,
        } => {
            let n = groups.len();
            let mut c = ChartBuilder::on(root)
                .caption(title, (FONT, 20))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(70)
                .build_cartesian_2d((0..n - 1).into_segmented(), 0.0..*top)?;
            let names = groups.clone();
            c.configure_mesh()
                .disable_x_mesh()
                .y_desc(y_label)
                .y_label_formatter(&tick)
                .label_style((FONT, 12))
                .axis_desc_style((FONT, 15))
                .light_line_style(RGBColor(238, 238, 238))
                .bold_line_style(RGBColor(215, 215, 215))
                .x_labels(n)
                .x_label_formatter(&move |v| match v {
                    SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .draw()?;
            let k = series.len().max(1) as f64;
            let seg = c.plotting_area().dim_in_pixel().0 as f64 / n as f64;
            for (j, (name, vals)) in series.iter().enumerate() {
                let color = rgb(COLORS[j % COLORS.len()]);
                // Each bar a slice of its group's segment, in pixels.
                let bars: Vec<_> = vals
                    .iter()
                    .enumerate()
                    .filter(|(g, v)| *g < n && v.is_finite())
                    .map(|(g, &v)| {
                        let mut r = Rectangle::new(
                            [
                                (SegmentValue::Exact(g), v),
                                (SegmentValue::Exact(g + 1), 0.0),
                            ],
                            color.filled(),
                        );
                        let (l, rr) = (
                            (seg * (0.1 + 0.8 * j as f64 / k)) as u32,
                            (seg * (0.1 + 0.8 * (k - 1.0 - j as f64) / k)) as u32,
                        );
                        r.set_margin(0, 0, l, rr);
                        r
                    })
                    .collect();
                c.draw_series(bars)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled())
                    });
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FONT, 14))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(150, 150, 150))
                .draw()?;
        }
    }
    root.present()
}

fn title(chart: &Chart) -> &str {
    match chart {
        Chart::Xy { title, .. } | Chart::Bars { title, .. } => title,
    }
}

/// Writes `chart` as SVG at `path` and as PNG beside it (`path` with `.png`), each
/// atomically.
pub fn write(path: &Path, chart: &Chart) -> Result<()> {
    register_font();
    let fail =
        |e: String| Error::Invalid(format!("{}: chart {:?}: {e}", path.display(), title(chart)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        draw(&root, chart).map_err(|e| fail(e.to_string()))?;
    }
    write_atomic(path, |tmp| {
        std::fs::write(tmp, &svg).map_err(|e| Error::io(tmp, e))
    })?;
    let mut rgb_buf = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb_buf, (W, H)).into_drawing_area();
        draw(&root, chart).map_err(|e| fail(e.to_string()))?;
    }
    let png = path.with_extension("png");
    write_atomic(&png, |tmp| {
        let f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), W, H);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| fail(e.to_string()))?;
        w.write_image_data(&rgb_buf)
            .map_err(|e| fail(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_as_svg_and_png_with_round_ticks() {
        let dir = tempfile::tempdir().unwrap();
        let s = Series {
            name: "loss".into(),
            color: COLORS[0],
            mark: Mark::LineAndPoints,
            points: (0..=130)
                .map(|i| (i as f64, 1.0 / (1.0 + i as f64)))
                .collect(),
        };
        let c = xy("t", "step", "loss", &[s], true).unwrap();
        let p = dir.path().join("c.svg");
        write(&p, &c).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        // Round ticks (plotters' key points), not fifths of the range such as 26 or 52.
        assert!(
            svg.contains("\n100\n") && svg.contains("\n0.5\n") && !svg.contains("\n26\n"),
            "{svg}"
        );
        let png = std::fs::read(dir.path().join("c.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let b = bars(
            "b",
            "ms",
            &["a".into(), "b".into()],
            &[("x".into(), vec![1.0, 2.0])],
        )
        .unwrap();
        write(&dir.path().join("b.svg"), &b).unwrap();
        assert!(std::fs::read_to_string(dir.path().join("b.svg"))
            .unwrap()
            .contains("\na\n"));
    }
}
