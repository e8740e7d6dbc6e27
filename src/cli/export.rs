//! `destila export CHECKPOINT --out DIR`: a folder transformers loads as is.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum ExportDtype {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Copy, ValueEnum)]
enum Quantize {
    Int8,
}

#[derive(Args)]
pub struct Export {
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = ExportDtype::F32)]
    dtype: ExportDtype,
    #[arg(long, value_enum, default_value_t = destila::export::HeadsMode::Keep)]
    heads: destila::export::HeadsMode,
    /// int8 per-channel linear weights (loadable by destila, not by transformers).
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
    /// An eval.json whose figures go into the model card.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Replace destila's own earlier export there.
    #[arg(long)]
    force: bool,
}

pub fn export(a: Export) -> Result<()> {
    let opts = destila::export::ExportOptions {
        dtype: match a.dtype {
            ExportDtype::F32 => tch::Kind::Float,
            ExportDtype::F16 => tch::Kind::Half,
            ExportDtype::Bf16 => tch::Kind::BFloat16,
        },
        heads: a.heads,
        int8: a.quantize.is_some(),
        force: a.force,
        eval: a.eval,
    };
    let s = destila::export::export(&a.checkpoint, &a.out, &opts)?;
    println!(
        "exported {} ({}, {} parameters, {:.1} MB, {})",
        s.out.display(),
        s.architecture,
        s.parameters,
        s.file_bytes as f64 / 1e6,
        s.dtype
    );
    Ok(())
}
