//! `destila prune CHECKPOINT --corpus TEXT --out DIR`: vocabulary pruning, or, with
//! `--heads`, `--ffn` or `--hidden`, structured pruning.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::parse;
use super::{out, outln};
use destila::prune::structure::{prune_structure, StructureOptions};
use destila::prune::{prune, PruneOptions};

#[derive(Args)]
pub struct Prune {
    checkpoint: PathBuf,
    /// Text whose word pieces are kept; with --heads/--ffn/--hidden, the text importance
    /// is measured on (files, folders, globs; repeatable).
    #[arg(long, required = true)]
    corpus: Vec<String>,
    #[arg(long)]
    out: PathBuf,
    /// Keep a piece the corpus uses at least this often (vocabulary pruning; default 1).
    #[arg(long, value_parser = parse::count)]
    min_count: Option<usize>,
    /// Held-out text on which the share of [UNK] pieces is reported (vocabulary pruning).
    #[arg(long)]
    held_out: Vec<String>,
    /// Structured pruning: attention heads kept per layer (on average across layers,
    /// unless --even).
    #[arg(long, value_parser = parse::size)]
    heads: Option<i64>,
    /// Structured pruning: feed-forward neurons kept per layer (on average, unless --even).
    #[arg(long, value_parser = parse::size)]
    ffn: Option<i64>,
    /// Structured pruning: hidden dimensions kept (a multiple of the head size), the same
    /// in the embeddings and every layer.
    #[arg(long, value_parser = parse::size)]
    hidden: Option<i64>,
    /// Structured pruning: the model whose sentence similarities the pruned model should
    /// keep (default: the checkpoint itself).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Structured pruning: the same number of heads and neurons in every layer, rather than
    /// the most important across layers.
    #[arg(long)]
    even: bool,
    /// Structured pruning: cut in this many steps, measuring importance again after each.
    #[arg(long, value_parser = parse::count, default_value_t = 1)]
    rounds: usize,
    /// Structured pruning: sentences of the corpus importance is measured on.
    #[arg(long, value_parser = parse::count, default_value_t = 256)]
    sentences: usize,
    /// Structured pruning: random ±1 probes per batch for the second-order term.
    #[arg(long, value_parser = parse::count, default_value_t = 4)]
    probes: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace destila's own earlier output there.
    #[arg(long)]
    force: bool,
}

pub fn run(a: Prune) -> Result<()> {
    if a.heads.is_some() || a.ffn.is_some() || a.hidden.is_some() {
        if a.min_count.is_some() || !a.held_out.is_empty() {
            anyhow::bail!("--min-count and --held-out are for vocabulary pruning: prune the structure (--heads, --ffn, --hidden) and the vocabulary in two runs");
        }
        let o = StructureOptions {
            corpus: a.corpus,
            teacher: a.teacher,
            heads: a.heads,
            ffn: a.ffn,
            hidden: a.hidden,
            even: a.even,
            rounds: a.rounds,
            sentences: a.sentences,
            probes: a.probes,
            seed: a.seed,
            force: a.force,
            ..Default::default()
        };
        let s = prune_structure(&a.checkpoint, &a.out, &o)?;
        out!("{s}")?;
        outln!("wrote {}", s.out.display())?;
        return Ok(());
    }
    if a.teacher.is_some() || a.even || a.rounds != 1 || a.sentences != 256 || a.probes != 4 {
        anyhow::bail!("--teacher, --even, --rounds, --sentences and --probes are for structured pruning: give --heads, --ffn or --hidden");
    }
    let o = PruneOptions {
        corpus: a.corpus,
        min_count: a.min_count.unwrap_or(1) as u64,
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
