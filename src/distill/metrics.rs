//! `metrics.csv` (one row per logged training step and per evaluation) and the loss-curve
//! plot (SVG, drawn here: a line chart needs no plotting crate with system fonts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{write_atomic, Error, Result};

/// Every column, in order. Loss components are raw (unweighted) values.
pub const COLUMNS: &[&str] = &[
    "split",
    "step",
    "epoch",
    "lr",
    "temperature",
    "loss",
    "kd_mlm",
    "kd_nsp",
    "mlm",
    "nsp",
    "hidden_cos",
    "hidden_mse",
    "attention_mse",
    "attention_kl",
    "value_relation",
    "mlm_accuracy",
    "nsp_accuracy",
    "grad_norm",
    "samples_per_s",
    "tokens_per_s",
    "elapsed_s",
];

#[derive(Debug, Clone, Default)]
pub struct Row {
    pub split: String,
    pub step: u64,
    pub values: BTreeMap<&'static str, f64>,
}

impl Row {
    pub fn new(split: &str, step: u64) -> Row {
        Row {
            split: split.into(),
            step,
            values: BTreeMap::new(),
        }
    }

    pub fn set(&mut self, key: &'static str, v: f64) -> &mut Self {
        self.values.insert(key, v);
        self
    }

    fn record(&self) -> Vec<String> {
        COLUMNS
            .iter()
            .map(|&c| match c {
                "split" => self.split.clone(),
                "step" => self.step.to_string(),
                _ => self
                    .values
                    .get(c)
                    .map(|v| format!("{v:.8e}"))
                    .unwrap_or_default(),
            })
            .collect()
    }
}

pub struct Metrics {
    path: PathBuf,
    writer: csv::Writer<std::fs::File>,
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Invalid(format!("{}: {e}", path.display()))
}

impl Metrics {
    /// Opens `path` for a run starting after `from_step` (0: a new file). Rows of later
    /// steps, left by a run that died after its last checkpoint, are dropped.
    pub fn open(path: &Path, from_step: u64) -> Result<Metrics> {
        let keep: Vec<Vec<String>> = if from_step > 0 && path.is_file() {
            read_rows(path)?
                .into_iter()
                .filter(|r| {
                    r.get(1)
                        .and_then(|s| s.parse::<u64>().ok())
                        .is_some_and(|s| s <= from_step)
                })
                .collect()
        } else {
            Vec::new()
        };
        write_atomic(path, |tmp| {
            let mut w = csv::Writer::from_path(tmp).map_err(|e| csv_err(tmp, e))?;
            w.write_record(COLUMNS).map_err(|e| csv_err(tmp, e))?;
            for r in &keep {
                w.write_record(r).map_err(|e| csv_err(tmp, e))?;
            }
            w.flush().map_err(|e| Error::io(tmp, e))
        })?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        Ok(Metrics {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub fn write(&mut self, row: &Row) -> Result<()> {
        self.writer
            .write_record(row.record())
            .map_err(|e| csv_err(&self.path, e))?;
        self.writer.flush().map_err(|e| Error::io(&self.path, e))
    }
}

fn read_rows(path: &Path) -> Result<Vec<Vec<String>>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| csv_err(path, e))?;
    r.records()
        .map(|rec| {
            rec.map(|x| x.iter().map(String::from).collect())
                .map_err(|e| csv_err(path, e))
        })
        .collect()
}

/// Rows of a metrics file as column → value maps.
pub fn read(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    Ok(read_rows(path)?
        .into_iter()
        .map(|r| COLUMNS.iter().map(|c| c.to_string()).zip(r).collect())
        .collect())
}

fn series(rows: &[BTreeMap<String, String>], split: &str, col: &str) -> Vec<(f64, f64)> {
    rows.iter()
        .filter(|r| r.get("split").map(String::as_str) == Some(split))
        .filter_map(|r| Some((r.get("step")?.parse().ok()?, r.get(col)?.parse().ok()?)))
        .filter(|(_, v): &(f64, f64)| v.is_finite())
        .collect()
}

/// Draws training and validation loss against steps into an SVG file.
pub fn plot(metrics: &Path, out: &Path, title: &str) -> Result<()> {
    let rows = read(metrics)?;
    let train = series(&rows, "train", "loss");
    let val = series(&rows, "validation", "loss");
    let all: Vec<&(f64, f64)> = train.iter().chain(&val).collect();
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no loss values to plot",
            metrics.display()
        )));
    }
    let (w, h, ml, mr, mt, mb) = (800.0, 450.0, 70.0, 20.0, 40.0, 50.0);
    let x0 = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x1 = all
        .iter()
        .map(|p| p.0)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(x0 + 1.0);
    let y0 = all
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let y1 = all
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(y0 + 1e-9)
        * 1.05;
    let sx = |x: f64| ml + (x - x0) / (x1 - x0) * (w - ml - mr);
    let sy = |y: f64| h - mb - (y - y0) / (y1 - y0) * (h - mt - mb);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        w / 2.0,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    for i in 0..=5 {
        let (xv, yv) = (
            x0 + (x1 - x0) * i as f64 / 5.0,
            y0 + (y1 - y0) * i as f64 / 5.0,
        );
        s += &format!(
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\">{4:.0}</text>\n",
            sx(xv), mt, h - mb, h - mb + 18.0, xv
        );
        s += &format!(
            "<line x1=\"{0}\" y1=\"{1:.1}\" x2=\"{2}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{3}\" y=\"{4:.1}\" text-anchor=\"end\">{5:.3}</text>\n",
            ml, sy(yv), w - mr, ml - 6.0, sy(yv) + 4.0, yv
        );
    }
    s += &format!(
        "<rect x=\"{ml}\" y=\"{mt}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">loss (weighted sum)</text>\n",
        w - ml - mr, h - mt - mb, (ml + w - mr) / 2.0, h - 12.0, (mt + h - mb) / 2.0, (mt + h - mb) / 2.0
    );
    let line = |pts: &[(f64, f64)], color: &str| {
        let p: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            p.join(" ")
        )
    };
    s += &line(&train, "#1f77b4");
    s += &line(&val, "#d62728");
    for &(x, y) in &val {
        s += &format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#d62728\"/>\n",
            sx(x),
            sy(y)
        );
    }
    s += &format!(
        "<line x1=\"{0}\" y1=\"52\" x2=\"{1}\" y2=\"52\" stroke=\"#1f77b4\" stroke-width=\"2\"/><text x=\"{2}\" y=\"56\">train</text>\n<line x1=\"{0}\" y1=\"70\" x2=\"{1}\" y2=\"70\" stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"{2}\" y=\"74\">validation</text>\n</svg>\n",
        w - mr - 120.0, w - mr - 95.0, w - mr - 88.0
    );
    write_atomic(out, |tmp| {
        std::fs::write(tmp, &s).map_err(|e| Error::io(tmp, e))
    })
}
