//! `destila curves RUN... --column C --out DIR`: one column of several runs' metrics
//! against steps, a line per run (the arms of an A/B on one chart): curves.svg, and the
//! points as curves.csv (run, step, value).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use super::outln;

/// What `destila curves` writes into its output folder.
const FILES: &[&str] = &["curves.svg", "curves.png", "curves.csv"];

#[derive(Args)]
pub struct Curves {
    /// Run folders (each with metrics.csv) or metrics.csv files.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The metrics column to draw (mlm, loss, kd_mlm, mlm_accuracy, ...).
    #[arg(long, default_value = "loss")]
    column: String,
    /// The rows to read: validation or train.
    #[arg(long, default_value = "validation", value_parser = ["validation", "train"])]
    split: String,
    /// A name per run, in order (default: each run folder's name).
    #[arg(long = "name")]
    names: Vec<String>,
    #[arg(long)]
    out: PathBuf,
}

pub fn curves(a: Curves) -> Result<()> {
    if !a.names.is_empty() && a.names.len() != a.runs.len() {
        bail!(
            "--name given {} times for {} runs: give one per run, or none",
            a.names.len(),
            a.runs.len()
        );
    }
    let mut runs = Vec::new();
    for (i, r) in a.runs.iter().enumerate() {
        let csv = if r.is_dir() {
            r.join("metrics.csv")
        } else {
            r.clone()
        };
        if !csv.is_file() {
            bail!("{}: no metrics.csv there (a run folder)", r.display());
        }
        let folder = if r.is_dir() {
            r.as_path()
        } else {
            r.parent().unwrap_or(r)
        };
        let name = a.names.get(i).cloned().unwrap_or_else(|| {
            folder
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| folder.display().to_string())
        });
        runs.push((name, csv));
    }
    let inputs: Vec<PathBuf> = runs.iter().map(|(_, p)| p.clone()).collect();
    destila::output::claim_entries(&a.out, "--out", "curves", FILES, true, &inputs)?;
    let svg = a.out.join("curves.svg");
    let all = destila::distill::metrics::compare_plot(&runs, &a.split, &a.column, &svg)?;
    let mut text = String::from("run,step,value\n");
    for (name, points) in &all {
        for (x, y) in points {
            text += &format!("{},{x},{y}\n", name.replace(',', " "));
        }
    }
    let csv = a.out.join("curves.csv");
    destila::error::write_atomic(&csv, |tmp| {
        std::fs::write(tmp, &text).map_err(|e| destila::error::Error::io(tmp, e))
    })?;
    for (name, points) in &all {
        let (step, last) = points.last().copied().unwrap_or_default();
        outln!("{name}: {} at step {step} ({} points)", last, points.len())?;
    }
    outln!("wrote {} and {}", svg.display(), csv.display())
}
