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
    "pooled_cos",
    "pooled_mse",
    "similarity",
    "mlm_accuracy",
    "nsp_accuracy",
    "grad_norm",
    "samples_per_s",
    "tokens_per_s",
    "elapsed_s",
    // Seconds per optimiser step; data-parallel runs: of them in collectives outside the
    // backward pass (the gradient all-reduce overlaps the backward).
    "step_s",
    "sync_s",
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
    let mut r = csv::Reader::from_reader(crate::error::open_input(path)?);
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
    use crate::plot::{Mark, Series};
    let rows = read(metrics)?;
    let series = [
        Series {
            name: "train".into(),
            color: "#1f77b4",
            mark: Mark::Line,
            points: series(&rows, "train", "loss"),
        },
        Series {
            name: "validation".into(),
            color: "#d62728",
            mark: Mark::LineAndPoints,
            points: series(&rows, "validation", "loss"),
        },
    ];
    let svg = crate::plot::xy(title, "step", "loss (weighted sum)", &series, true)?;
    crate::plot::write(out, &svg)
}

/// A run's name and its (step, value) points.
pub type Curve = (String, Vec<(f64, f64)>);

/// One column of several runs' metrics (`split` rows) against steps, a line per run, into
/// an SVG file: the runs of an A/B compared on one chart. `runs` are (name, metrics.csv).
/// A column a run has no value of is an error naming the run.
pub fn compare_plot(
    runs: &[(String, PathBuf)],
    split: &str,
    column: &str,
    out: &Path,
) -> Result<Vec<Curve>> {
    use crate::plot::{Mark, Series, COLORS};
    if !COLUMNS.contains(&column) {
        return Err(Error::Invalid(format!(
            "--column {column:?}: not a metrics column (allowed: {})",
            COLUMNS.join(", ")
        )));
    }
    let mut all = Vec::new();
    for (name, path) in runs {
        let points = series(&read(path)?, split, column);
        if points.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no {split} row has a value of {column}",
                path.display()
            )));
        }
        all.push((name.clone(), points));
    }
    let lines: Vec<Series> = all
        .iter()
        .enumerate()
        .map(|(i, (name, points))| Series {
            name: name.clone(),
            color: COLORS[i % COLORS.len()],
            mark: Mark::LineAndPoints,
            points: points.clone(),
        })
        .collect();
    let svg = crate::plot::xy(
        &format!("{split} {column} against step"),
        "step",
        &format!("{split} {column}"),
        &lines,
        false,
    )?;
    crate::plot::write(out, &svg)?;
    Ok(all)
}
