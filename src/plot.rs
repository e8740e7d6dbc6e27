//! Small SVG charts (line, scatter, grouped bars), drawn by hand: the plotting crates need
//! system fonts to lay out text, and these charts need nothing but numbers and labels.

use std::path::Path;

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

pub const COLORS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const W: f64 = 800.0;
const H: f64 = 450.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 40.0;
const MB: f64 = 50.0;

fn frame(title: &str, x_label: &str, y_label: &str) -> String {
    let (cx, cy) = ((ML + W - MR) / 2.0, (MT + H - MB) / 2.0);
    let (title, x_label, y_label) = (esc(title), esc(x_label), esc(y_label));
    let (tx, xy) = (W / 2.0, H - 12.0);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{tx}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n\
         <text x=\"{cx}\" y=\"{xy}\" text-anchor=\"middle\">{x_label}</text>\n\
         <text x=\"16\" y=\"{cy}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {cy})\">{y_label}</text>\n"
    )
}

/// Legend in the top right corner, or the top left (`left`), inside the plot area.
fn legend(names: &[(&str, &str)], left: bool) -> String {
    let x0 = if left { ML + 10.0 } else { W - MR - 150.0 };
    let mut s = String::new();
    for (i, (name, color)) in names.iter().enumerate() {
        let y = 52.0 + 18.0 * i as f64;
        s += &format!(
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            x0,
            y - 2.0,
            x0 + 20.0,
            y + 4.0,
            esc(name)
        );
    }
    s
}

fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    (0..=5).map(|i| lo + (hi - lo) * i as f64 / 5.0).collect()
}

fn label(v: f64, span: f64) -> String {
    if span >= 50.0 {
        format!("{v:.0}")
    } else if span >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A line or scatter chart. `y_from_zero` starts the y axis at 0 when all values are positive.
pub fn xy(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_from_zero: bool,
) -> Result<String> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if all.is_empty() {
        return Err(Error::Invalid(format!("chart {title:?}: nothing to draw")));
    }
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (mut y0, mut y1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
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
    let sx = |x: f64| ML + (x - x0) / (x1 - x0) * (W - ML - MR);
    let sy = |y: f64| H - MB - (y - y0) / (y1 - y0) * (H - MT - MB);
    let mut s = frame(title, x_label, y_label);
    for (xv, yv) in ticks(x0, x1).into_iter().zip(ticks(y0, y1)) {
        s += &format!(
            "<line x1=\"{0:.1}\" y1=\"{MT}\" x2=\"{0:.1}\" y2=\"{1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>\n",
            sx(xv), H - MB, H - MB + 18.0, label(xv, x1 - x0)
        );
        s += &format!(
            "<line x1=\"{ML}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#eee\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>\n",
            sy(yv), W - MR, ML - 6.0, sy(yv) + 4.0, label(yv, y1 - y0)
        );
    }
    s += &format!(
        "<rect x=\"{ML}\" y=\"{MT}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
        W - ML - MR,
        H - MT - MB
    );
    for ser in series {
        let pts: Vec<&(f64, f64)> = ser
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if matches!(ser.mark, Mark::Line | Mark::LineAndPoints) && pts.len() > 1 {
            let p: Vec<String> = pts
                .iter()
                .map(|&&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            s += &format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                ser.color,
                p.join(" ")
            );
        }
        if matches!(ser.mark, Mark::Points | Mark::LineAndPoints) {
            let r = if ser.mark == Mark::Points { 2.0 } else { 3.0 };
            for &&(x, y) in &pts {
                s += &format!("<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" fill=\"{}\" fill-opacity=\"0.6\"/>\n", sx(x), sy(y), ser.color);
            }
        }
    }
    let names: Vec<(&str, &str)> = series.iter().map(|s| (s.name.as_str(), s.color)).collect();
    s += &legend(&names, false);
    s += "</svg>\n";
    Ok(s)
}

/// Grouped bars: one group per label, one bar per series value.
pub fn bars(
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<String> {
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    if groups.is_empty() || max <= 0.0 {
        return Err(Error::Invalid(format!("chart {title:?}: nothing to draw")));
    }
    let y1 = max * 1.1;
    let sy = |y: f64| H - MB - y / y1 * (H - MT - MB);
    let mut s = frame(title, "", y_label);
    for yv in ticks(0.0, y1) {
        s += &format!(
            "<line x1=\"{ML}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#eee\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>\n",
            sy(yv), W - MR, ML - 6.0, sy(yv) + 4.0, label(yv, y1)
        );
    }
    let gw = (W - ML - MR) / groups.len() as f64;
    let bw = gw * 0.8 / series.len().max(1) as f64;
    for (g, name) in groups.iter().enumerate() {
        let gx = ML + gw * g as f64 + gw * 0.1;
        for (k, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(g).copied().unwrap_or(0.0);
            if !v.is_finite() {
                continue;
            }
            s += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"/>\n",
                gx + bw * k as f64,
                sy(v),
                bw * 0.95,
                H - MB - sy(v),
                COLORS[k % COLORS.len()]
            );
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\">{}</text>\n",
            gx + gw * 0.4,
            H - MB + 16.0,
            esc(name)
        );
    }
    s += &format!(
        "<rect x=\"{ML}\" y=\"{MT}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
        W - ML - MR,
        H - MT - MB
    );
    let names: Vec<(&str, &str)> = series
        .iter()
        .enumerate()
        .map(|(k, (n, _))| (n.as_str(), COLORS[k % COLORS.len()]))
        .collect();
    s += &legend(&names, true);
    s += "</svg>\n";
    Ok(s)
}

/// Writes an SVG document atomically.
pub fn write(path: &Path, svg: &str) -> Result<()> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, svg).map_err(|e| Error::io(tmp, e))
    })
}
