//! `destila init OUT --config FILE`: a freshly initialised BERT of a given shape.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::outln;
use destila::bert::Heads;

#[derive(Clone, Copy, ValueEnum)]
enum InitHeads {
    All,
    Encoder,
}

#[derive(Args)]
pub struct Init {
    /// Output checkpoint folder.
    out: PathBuf,
    /// HF config.json giving the shape.
    #[arg(long)]
    config: PathBuf,
    /// Heads to include: pooler + MLM + NSP (`all`), or none (`encoder`).
    #[arg(long, value_enum, default_value_t = InitHeads::All)]
    heads: InitHeads,
    #[arg(long, default_value_t = 0)]
    seed: i64,
    /// Replace destila's own earlier output there.
    #[arg(long)]
    force: bool,
}

pub fn init(a: Init) -> Result<()> {
    let heads = match a.heads {
        InitHeads::All => Heads::ALL,
        InitHeads::Encoder => Heads {
            pooler: true,
            ..Default::default()
        },
    };
    let out = destila::bert::weights::init(&a.out, &a.config, heads, a.seed, a.force)?;
    outln!("wrote {} ({})", out.display(), heads.architecture())?;
    Ok(())
}
