//! The command line: one file per command, each with its arguments (clap) and a `run`
//! that calls the library and prints; whatever a command computes is a library function.

pub mod bench;
pub mod contrast;
pub mod curves;
pub mod data;
pub mod distill;
pub mod doctor;
pub mod embed;
pub mod eval;
pub mod export;
pub mod init;
pub mod inspect;
pub mod parse;
pub mod prune;
pub mod recipe;
pub mod targets;

use clap::{Parser, Subcommand};

/// Writes `text` to stdout. A closed pipe (`destila inspect DIR | head -1`) ends the
/// process quietly, as Unix tools do; any other failure (a full disk) is an error naming
/// stdout, never a panic.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(anyhow::anyhow!("writing to stdout: {e}")),
    }
}

/// `println!` through [`print_out`]: evaluates to its `Result`.
macro_rules! outln {
    () => { $crate::cli::print_out("\n") };
    ($($t:tt)*) => { $crate::cli::print_out(&format!("{}\n", format_args!($($t)*))) };
}

/// `print!` through [`print_out`]: evaluates to its `Result`.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::print_out(&format!($($t)*)) };
}
pub(crate) use {out, outln};

#[derive(Parser)]
#[command(
    name = "destila",
    version,
    about = "Knowledge distillation for BERT encoders"
)]
pub struct Cli {
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long, global = true, value_parser = parse::threads)]
    pub threads: Option<i32>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Architecture, parameter counts, heads and dtype of an HF checkpoint folder.
    Inspect(inspect::Inspect),
    /// Sentence embeddings; `table` prints the cosine-similarity matrix of the inputs.
    Embed(embed::Embed),
    /// Static versus contextual similarity of two sentences sharing a word (by default the
    /// two "posto" sentences of the walkthrough).
    Contrast(contrast::Contrast),
    /// One metrics column of several runs against steps, a line per run (curves.svg,
    /// curves.csv): the arms of an A/B on one chart.
    Curves(curves::Curves),
    /// Runs a recipe: distillation, pretraining or fitting heads onto a teacher.
    Distill(distill::Distill),
    /// Runs the teacher once over a recipe's data and stores its targets (top-k MLM logits,
    /// NSP logits, optionally pooled embeddings) for `distill` to read via teacher.targets.
    Targets(targets::Targets),
    /// Recipes.
    Recipe {
        #[command(subcommand)]
        what: recipe::RecipeCommand,
    },
    /// The pretraining data pipeline: statistics, previews, the shard cache.
    Data {
        #[command(subcommand)]
        what: data::DataCommand,
    },
    /// Writes a freshly initialised BERT (N(0, initializer_range)) from a config.json.
    Init(init::Init),
    /// Teacher versus student: size, latency (median, p95), throughput, memory, speed-up, and
    /// the quality summary of an eval.json; or one of the subcommands' benchmarks.
    Bench(bench::Bench),
    /// Compares a student with its teacher: similarity structure, token cosine, heads,
    /// human judgements, the "posto" contrast. Writes eval.json, eval.csv, similarity.svg.
    Eval(eval::Eval),
    /// Exports a checkpoint as a folder transformers loads as is.
    Export(export::Export),
    /// Checks CUDA and, given a model, CPU-versus-device parity of its outputs.
    Doctor(doctor::Doctor),
    /// Vocabulary pruning: keeps the word pieces a corpus uses, remaps embeddings, MLM
    /// decoder and tokenizer files (transformers loads the result as is).
    Prune(prune::Prune),
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    match cli.command {
        Command::Inspect(a) => inspect::inspect(a),
        Command::Embed(a) => embed::embed(a),
        Command::Contrast(a) => contrast::contrast(a),
        Command::Curves(a) => curves::curves(a),
        Command::Distill(a) => distill::distill(a),
        Command::Targets(a) => targets::targets(a),
        Command::Recipe { what } => recipe::recipe(what),
        Command::Data { what } => data::data(what),
        Command::Init(a) => init::init(a),
        Command::Bench(a) => bench::bench(a),
        Command::Eval(a) => eval::eval(a),
        Command::Export(a) => export::export(a),
        Command::Doctor(a) => doctor::doctor(a),
        Command::Prune(a) => prune::run(a),
    }
}
