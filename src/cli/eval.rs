//! `destila eval`: a student against its teacher (and its initialisation).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::parse;
use super::{out, outln};
use destila::eval::compare::{evaluate_with_init, EvalOptions, REPORT_FILES};

#[derive(Args)]
pub struct Eval {
    #[arg(long)]
    teacher: PathBuf,
    #[arg(long)]
    student: PathBuf,
    /// The student's initialisation, evaluated too, with the gains over it (default:
    /// the `init` folder beside the student, which `distill` writes, if there is one).
    #[arg(long, conflicts_with = "no_init")]
    init: Option<PathBuf>,
    /// No baseline, even when an `init` folder is beside the student.
    #[arg(long)]
    no_init: bool,
    /// One sentence a line (default: sentences of --corpus).
    #[arg(long)]
    sentences: Option<PathBuf>,
    /// CSV text_a,text_b,score of human similarity judgements.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// Text for the default sentences and the heads' masked NSP examples.
    #[arg(long, default_value = "data/austen/validation")]
    corpus: Vec<String>,
    /// Text for the heads' masked sentence pairs (MLM/NSP accuracy and perplexity) when it
    /// should differ from --corpus (default: --corpus).
    #[arg(long)]
    heads_corpus: Vec<String>,
    #[arg(long, value_parser = parse::count, default_value_t = 300)]
    max_sentences: usize,
    #[arg(long, value_parser = parse::count, default_value_t = 8)]
    head_batches: usize,
    #[arg(long, default_value = "eval")]
    out: PathBuf,
    #[arg(long, default_value = ".cache/shards")]
    cache_dir: PathBuf,
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn eval(a: Eval) -> Result<()> {
    let opts = EvalOptions {
        sentences: a.sentences,
        pairs: a.pairs,
        heads_corpus: a.heads_corpus,
        corpus: a.corpus,
        max_sentences: a.max_sentences,
        head_batches: a.head_batches,
        cache_dir: a.cache_dir,
        device: destila::device::parse(&a.device)?,
        ..Default::default()
    };
    // Every text file given is checked before any work, whether or not the models have
    // the heads that read it (a wrong path is never ignored in silence).
    for f in destila::data::corpus::expand(&opts.heads_corpus)? {
        destila::error::open_input(&f)?;
    }
    destila::output::cache_flag(&opts.cache_dir, "--cache-dir")?;
    let init = destila::eval::baseline::resolve_init(&a.student, a.init, a.no_init)?;
    let mut inputs = vec![a.teacher.clone(), a.student.clone()];
    inputs.extend(init.clone());
    inputs.extend(opts.sentences.clone());
    inputs.extend(opts.pairs.clone());
    destila::output::claim_entries(&a.out, "--out", "eval", REPORT_FILES, true, &inputs)?;
    if let Some(i) = &init {
        outln!("baseline: the student's initialisation {}", i.display())?;
    }
    let report = evaluate_with_init(&a.teacher, &a.student, init.as_deref(), &opts)?;
    out!("{report}")?;
    for p in report.write(&a.out)? {
        outln!("wrote {}", p.display())?;
    }
    Ok(())
}
