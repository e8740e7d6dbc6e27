//! `destila doctor`: CUDA visibility and CPU-versus-device parity of a model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::outln;
use super::parse;

#[derive(Args)]
pub struct Doctor {
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Largest tolerated absolute difference between CPU and device outputs.
    #[arg(long, value_parser = parse::non_negative, default_value_t = 1e-3)]
    tolerance: f64,
}

pub fn doctor(a: Doctor) -> Result<()> {
    let env = destila::doctor::environment();
    outln!("{}", serde_json::to_string(&env)?)?;
    let device = destila::device::parse(&a.device)?;
    if let Some(dir) = a.model {
        let p = destila::doctor::parity(&dir, device)?;
        outln!("{}", serde_json::to_string(&p)?)?;
        destila::doctor::check(&p, a.tolerance)?;
    }
    Ok(())
}
