//! `destila prune CHECKPOINT --corpus TEXT --out DIR`: vocabulary pruning.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::parse;
use super::{out, outln};
use destila::prune::{prune, PruneOptions};

#[derive(Args)]
pub struct Prune {
    checkpoint: PathBuf,
    /// Text whose word pieces are kept (files, folders, globs; repeatable).
    #[arg(long, required = true)]
    corpus: Vec<String>,
    #[arg(long)]
    out: PathBuf,
    /// Keep a piece the corpus uses at least this often.
    #[arg(long, value_parser = parse::count, default_value_t = 1)]
    min_count: usize,
    /// Held-out text on which the share of [UNK] pieces is reported.
    #[arg(long)]
    held_out: Vec<String>,
    /// Replace destila's own earlier output there.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Prune) -> Result<()> {
    let o = PruneOptions {
        corpus: a.corpus,
        min_count: a.min_count as u64,
        held_out: a.held_out,
        force: a.force,
    };
    let s = prune(&a.checkpoint, &a.out, &o)?;
    out!("{s}")?;
    if (s.kept_from_corpus as f64) < 0.01 * s.vocab_before as f64 {
        eprintln!(
            "warning: the corpus keeps almost nothing: {} pieces beyond the special and single-character ones ({:.1}% of the vocabulary survives); words outside it will split into single characters",
            s.kept_from_corpus,
            100.0 * s.vocab_after as f64 / s.vocab_before as f64
        );
    }
    outln!("wrote {}", s.out.display())?;
    Ok(())
}
