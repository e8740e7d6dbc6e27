//! `destila inspect DIR`: architecture, parameter counts, heads and dtype of a checkpoint.

use std::path::PathBuf;

use super::{out, outln};
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct Inspect {
    dir: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn inspect(a: Inspect) -> Result<()> {
    let i = destila::inspect::inspect(&a.dir)?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&i)?)?;
    } else {
        out!("{i}")?;
    }
    Ok(())
}
