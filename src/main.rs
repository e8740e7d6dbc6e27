//! The destila command line: parses arguments and dispatches to the library.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use destila::bench::{forward_throughput, ForwardBench, MlmMode};
use destila::bert::{self, Heads, LoadOptions};
use destila::data::config::{Documents, InvalidUtf8, Sentences, TextOptions};
use destila::distill::recipe::Recipe;
use destila::embed::{cosine_matrix, Embedder, Pooling};
use destila::eval::contrast;

#[derive(Parser)]
#[command(
    name = "destila",
    version,
    about = "Knowledge distillation for BERT encoders"
)]
struct Cli {
    /// CPU threads for libtorch (default: libtorch's choice).
    #[arg(long, global = true, value_parser = parse::threads)]
    threads: Option<i32>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Architecture, parameter counts, heads and dtype of an HF checkpoint folder.
    Inspect {
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sentence embeddings; `table` prints the cosine-similarity matrix of the inputs.
    Embed {
        dir: PathBuf,
        texts: Vec<String>,
        /// A file with one text a line.
        #[arg(long)]
        input: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Pooling::Mean)]
        pooling: Pooling,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(value_parser = parse::count, long, default_value_t = 32)]
        batch_size: usize,
        /// Longest sequence in tokens (default: the tokenizer's and model's limit).
        #[arg(long, value_parser = parse::count)]
        max_len: Option<usize>,
    },
    /// Static versus contextual similarity of two sentences sharing a word (by default the
    /// two "posto" sentences of the walkthrough).
    Contrast {
        dir: PathBuf,
        #[arg(long, default_value = contrast::POSTO_A)]
        a: String,
        #[arg(long, default_value = contrast::POSTO_B)]
        b: String,
        #[arg(long, default_value = contrast::POSTO_WORD)]
        word: String,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Runs a recipe: distillation, pretraining or fitting heads onto a teacher.
    Distill {
        recipe: PathBuf,
        /// Override a recipe field: --set losses.kd_mlm.weight=2.0 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Continue from the newest checkpoint in the recipe's output folder.
        #[arg(long)]
        resume: bool,
        /// Start over, removing the output folder's checkpoints.
        #[arg(long, conflicts_with = "resume")]
        force: bool,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Runs the teacher once over a recipe's data and stores its targets (top-k MLM logits,
    /// NSP logits, optionally pooled embeddings) for `distill` to read via teacher.targets.
    Targets {
        recipe: PathBuf,
        /// The cache folder (default: the recipe's teacher.targets.dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override a recipe field (repeatable), e.g. --set teacher.targets.top_k=8.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Replace an earlier `destila targets` output in the folder.
        #[arg(long)]
        force: bool,
    },
    /// Recipes.
    Recipe {
        #[command(subcommand)]
        what: RecipeCommand,
    },
    /// The pretraining data pipeline: statistics, previews, the shard cache.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Writes a freshly initialised BERT (N(0, initializer_range)) from a config.json.
    Init {
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
        /// Replace an existing folder.
        #[arg(long)]
        force: bool,
    },
    /// Teacher versus student: size, latency (median, p95), throughput, memory, speed-up, and
    /// the quality summary of an eval.json; or one of the subcommands' benchmarks.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchCommand>,
        #[arg(long)]
        teacher: Option<PathBuf>,
        #[arg(long)]
        student: Option<PathBuf>,
        /// Folder for bench.csv, bench.md, bench.svg (an eval.json there is summarised).
        #[arg(long, default_value = "bench")]
        out: PathBuf,
        /// An eval.json to summarise (default: OUT/eval.json when present).
        #[arg(long)]
        eval: Option<PathBuf>,
        #[arg(value_parser = parse::count, long, default_value_t = 10)]
        iters: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Compares a student with its teacher: similarity structure, token cosine, heads,
    /// human judgements, the "posto" contrast. Writes eval.json, eval.csv, similarity.svg.
    Eval {
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
        #[arg(value_parser = parse::count, long, default_value_t = 300)]
        max_sentences: usize,
        #[arg(value_parser = parse::count, long, default_value_t = 8)]
        head_batches: usize,
        #[arg(long, default_value = "eval")]
        out: PathBuf,
        #[arg(long, default_value = ".cache/shards")]
        cache_dir: PathBuf,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Exports a checkpoint as a folder transformers loads as is.
    Export {
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
        /// Replace an existing folder.
        #[arg(long)]
        force: bool,
    },
    /// Checks CUDA and, given a model, CPU-versus-device parity of its outputs.
    Doctor {
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Largest tolerated absolute difference between CPU and device outputs.
        #[arg(value_parser = parse::non_negative, long, default_value_t = 1e-3)]
        tolerance: f64,
    },
}

#[derive(Subcommand)]
enum RecipeCommand {
    /// Validates a recipe without running it, and prints it with every default filled in.
    Check {
        recipe: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Documents, sentences, tokens and length histograms of text files, folders or globs.
    Stats {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Checkpoint folder whose tokenizer counts the tokens.
        #[arg(long, default_value = ".cache/teachers/all-MiniLM-L6-v2")]
        tokenizer: PathBuf,
        #[arg(long, value_enum, default_value_t = Documents::BlankLine)]
        documents: Documents,
        #[arg(long, value_enum, default_value_t = Sentences::Split)]
        sentences: Sentences,
        #[arg(long, value_enum, default_value_t = InvalidUtf8::Error)]
        invalid_utf8: InvalidUtf8,
        #[arg(long, default_value = ".cache/shards")]
        cache_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Decoded examples of a recipe's data: segments, NSP label, masked tokens.
    Preview {
        recipe: PathBuf,
        #[arg(value_parser = parse::count, short = 'n', long, default_value_t = 5)]
        n: usize,
        /// Show validation examples instead of training ones.
        #[arg(long)]
        validation: bool,
        /// Recipe overrides, KEY=VALUE (e.g. data.examples=sentences).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Builds (or checks) a recipe's shard caches and prints their statistics.
    Build { recipe: PathBuf },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One distillation step of the trainer (teacher forward, student forward and backward,
    /// kd_mlm + kd_nsp + mlm + nsp + hidden_cos, AdamW); prints JSON.
    Step {
        /// Teacher checkpoint with MLM and NSP heads.
        teacher: PathBuf,
        #[arg(value_parser = parse::size, long, default_value_t = 3)]
        student_layers: i64,
        #[arg(value_parser = parse::size, long, default_value_t = 32)]
        batch: i64,
        #[arg(value_parser = parse::size, long, default_value_t = 128)]
        seq_len: i64,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(value_parser = parse::count, long, default_value_t = 5)]
        iters: usize,
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// Top-k teacher targets against the full vocabulary on held-out text: storage per
    /// token and the KD loss of a student with each; prints JSON lines.
    Topk {
        /// Teacher checkpoint with an MLM head.
        teacher: PathBuf,
        /// Student checkpoint with an MLM head.
        student: PathBuf,
        /// Held-out text (file, folder or glob).
        #[arg(long)]
        data: String,
        #[arg(long, value_delimiter = ',', default_value = "8,32,128", value_parser = parse::count)]
        k: Vec<usize>,
        #[arg(value_parser = parse::count, long, default_value_t = 16)]
        batches: usize,
        #[arg(value_parser = parse::count, long, default_value_t = 32)]
        batch: usize,
        #[arg(value_parser = parse::count, long, default_value_t = 128)]
        seq_len: usize,
        #[arg(value_parser = parse::positive, long, default_value_t = 2.0)]
        temperature: f64,
    },
    /// Tokenisation MB/s into a fresh shard cache, then batches/s from it; prints JSON.
    Data {
        recipe: PathBuf,
        #[arg(value_parser = parse::count, long, default_value_t = 200)]
        batches: usize,
    },
    /// Forward throughput (tokens/s) of one model on random full-length batches; prints JSON.
    Forward {
        dir: PathBuf,
        #[arg(value_parser = parse::size, long, default_value_t = 32)]
        batch: i64,
        #[arg(value_parser = parse::size, long, default_value_t = 128)]
        seq_len: i64,
        #[arg(long, value_enum, default_value_t = MlmMode::Masked)]
        mlm: MlmMode,
        #[arg(value_parser = parse::fraction, long, default_value_t = 0.15)]
        mask_fraction: f64,
        /// Also compute NSP logits.
        #[arg(long)]
        nsp: bool,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(value_parser = parse::count, long, default_value_t = 10)]
        iters: usize,
        #[arg(long, default_value = "auto")]
        device: String,
        /// Variable kind: f32, or bf16/f16 (CUDA).
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
}

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

#[derive(Clone, Copy, ValueEnum)]
enum InitHeads {
    All,
    Encoder,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Jsonl,
}

/// Value parsers: a wrong number is refused by clap with the flag's name, before any work.
mod parse {
    fn number<T: std::str::FromStr>(s: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        s.trim().parse::<T>().map_err(|e| format!("{s:?}: {e}"))
    }

    /// A count of at least 1.
    pub fn count(s: &str) -> Result<usize, String> {
        match number::<usize>(s)? {
            0 => Err("must be at least 1".into()),
            n if n > 1 << 40 => Err(format!("{n} is absurdly large")),
            n => Ok(n),
        }
    }

    /// A tensor size of at least 1 (i64, as libtorch takes it).
    pub fn size(s: &str) -> Result<i64, String> {
        match number::<i64>(s)? {
            n if n < 1 => Err(format!("{n}: must be at least 1")),
            n if n > 1 << 31 => Err(format!("{n} is absurdly large")),
            n => Ok(n),
        }
    }

    /// CPU threads: 1 to 4x the machine's logical CPUs.
    pub fn threads(s: &str) -> Result<i32, String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let most = (4 * cpus).max(4);
        match number::<i64>(s)? {
            n if n < 1 => Err(format!("{n}: must be at least 1")),
            n if n as usize > most => Err(format!(
                "{n}: more than 4x this machine's {cpus} CPUs (at most {most})"
            )),
            n => Ok(n as i32),
        }
    }

    fn finite(s: &str) -> Result<f64, String> {
        let x = number::<f64>(s)?;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(format!("{s:?} is not a finite number"))
        }
    }

    /// A share between 0 and 1.
    pub fn fraction(s: &str) -> Result<f64, String> {
        match finite(s)? {
            x if (0.0..=1.0).contains(&x) => Ok(x),
            x => Err(format!("{x}: must be between 0 and 1")),
        }
    }

    /// A finite number above 0.
    pub fn positive(s: &str) -> Result<f64, String> {
        match finite(s)? {
            x if x > 0.0 => Ok(x),
            x => Err(format!("{x}: must be above 0")),
        }
    }

    /// A finite number, 0 or more.
    pub fn non_negative(s: &str) -> Result<f64, String> {
        match finite(s)? {
            x if x >= 0.0 => Ok(x),
            x => Err(format!("{x}: must be 0 or more")),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The texts of an `--input` file. Beyond 256 KiB a line is cut: the model reads at most
/// its max_len tokens (512 word pieces of at most 100 characters each), so nothing it
/// could see is lost and memory stays flat whatever the line length.
fn read_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let (texts, cut) = destila::data::corpus::read_texts(path, 256 << 10)?;
    if cut > 0 {
        eprintln!(
            "note: {}: {cut} line(s) longer than 256 KiB cut there (beyond what the model reads)",
            path.display()
        );
    }
    Ok(texts)
}

fn parse_kind(s: &str) -> Result<tch::Kind> {
    Ok(match s {
        "f32" => tch::Kind::Float,
        "bf16" => tch::Kind::BFloat16,
        "f16" => tch::Kind::Half,
        _ => bail!("--dtype {s:?}: expected f32, bf16 or f16"),
    })
}

fn print_rss() {
    if let Some(b) = destila::bench::peak_rss_bytes() {
        eprintln!("peak RSS {:.1} MiB", b as f64 / (1 << 20) as f64);
    }
}

fn data_command(what: DataCommand) -> Result<()> {
    match what {
        DataCommand::Stats {
            paths,
            tokenizer,
            documents,
            sentences,
            invalid_utf8,
            cache_dir,
            json,
        } => {
            let tok = destila::tokenize::BertTokenizer::from_dir(&tokenizer)?;
            let text = TextOptions {
                documents,
                sentences,
                invalid_utf8,
            };
            let corpus =
                destila::data::shards::open_or_build(&paths, &tok, &text, &cache_dir, "stats")?;
            let s = destila::data::stats::stats(&corpus);
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{s}");
            }
            print_rss();
        }
        DataCommand::Preview {
            recipe,
            n,
            validation,
            set,
        } => {
            let recipe = Recipe::from_file_with(&recipe, &set)?;
            let tok = recipe.tokenizer()?;
            let sets = destila::data::prepare(&recipe.data, &tok)?;
            let split = if validation {
                sets.validation
                    .context("the recipe has no validation data")?
            } else {
                sets.train
            };
            let opts = destila::data::loader_options(&recipe.data, &tok, 1, recipe.seed);
            let mut loader =
                destila::data::Loader::new(split.corpus, split.docs, opts, Default::default());
            println!("masked tokens are shown as {{shown/original}}");
            for i in 0..n {
                let Some(items) = loader.next_items() else {
                    break;
                };
                print!("{}", destila::data::preview::render(i + 1, &items[0], &tok));
            }
        }
        DataCommand::Build { recipe } => {
            let recipe = Recipe::from_file(&recipe)?;
            let tok = recipe.tokenizer()?;
            let sets = destila::data::prepare(&recipe.data, &tok)?;
            println!("train ({} documents)", sets.train.docs.len());
            print!("{}", destila::data::stats::stats(&sets.train.corpus));
            if let Some(v) = sets.validation {
                println!("validation ({} documents)", v.docs.len());
                print!("{}", destila::data::stats::stats(&v.corpus));
            }
            print_rss();
        }
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        tch::set_num_threads(n);
    }
    match cli.command {
        Command::Inspect { dir, json } => {
            let i = destila::inspect::inspect(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                print!("{i}");
            }
        }
        Command::Embed {
            dir,
            mut texts,
            input,
            pooling,
            format,
            device,
            batch_size,
            max_len,
        } => {
            if let Some(path) = &input {
                texts.extend(read_lines(path)?);
            }
            if texts.is_empty() {
                bail!("no texts: give them as arguments or with --input FILE");
            }
            let device = destila::device::parse(&device)?;
            let mut e = Embedder::open(&dir, device)?;
            if let Some(n) = max_len {
                e.tokenizer = e.tokenizer.with_max_len(n)?;
            }
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let emb = e.embed(&refs, pooling, batch_size)?;
            let mut out = std::io::stdout().lock();
            match format {
                Format::Jsonl => {
                    for (i, text) in texts.iter().enumerate() {
                        let v: Vec<f32> = Vec::try_from(emb.get(i as i64))?;
                        let line = serde_json::json!({"text": text, "embedding": v});
                        writeln!(out, "{line}")?;
                    }
                }
                Format::Table => {
                    let sim = cosine_matrix(&emb, &emb);
                    for (i, t) in texts.iter().enumerate() {
                        writeln!(out, "[{i}] {t}")?;
                    }
                    write!(out, "{:>6}", "")?;
                    for j in 0..texts.len() {
                        write!(out, "{:>8}", format!("[{j}]"))?;
                    }
                    writeln!(out)?;
                    for i in 0..texts.len() {
                        write!(out, "{:>6}", format!("[{i}]"))?;
                        for j in 0..texts.len() {
                            write!(out, "{:>8.4}", sim.double_value(&[i as i64, j as i64]))?;
                        }
                        writeln!(out)?;
                    }
                }
            }
        }
        Command::Contrast {
            dir,
            a,
            b,
            word,
            device,
            json,
        } => {
            let device = destila::device::parse(&device)?;
            let e = Embedder::open(&dir, device)?;
            let c = contrast::contrast(&e, &a, &b, &word)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print!("{c}");
            }
        }
        Command::Init {
            out,
            config,
            heads,
            seed,
            force,
        } => {
            let folder = destila::output::Folder::claim(
                &out,
                "init OUT",
                "init",
                force,
                std::slice::from_ref(&config),
            )?;
            let cfg = destila::bert::BertConfig::from_file(&config)?;
            tch::manual_seed(seed);
            let heads = match heads {
                InitHeads::All => Heads::ALL,
                InitHeads::Encoder => Heads {
                    pooler: true,
                    ..Default::default()
                },
            };
            let model = destila::bert::Model::random(&cfg, heads, tch::Device::Cpu);
            match bert::save(&model, &folder.tmp) {
                Ok(()) => folder.commit()?,
                Err(e) => {
                    folder.abandon();
                    return Err(e.into());
                }
            };
            println!("wrote {} ({})", out.display(), heads.architecture());
        }
        Command::Data { what } => data_command(what)?,
        Command::Distill {
            recipe,
            set,
            resume,
            force,
            quiet,
        } => {
            let recipe = Recipe::from_file_with(&recipe, &set)?;
            let group = destila::distill::trainer::join(&recipe)?;
            let main = group.as_ref().is_none_or(|g| g.is_main());
            let opts = destila::distill::trainer::RunOptions {
                resume,
                force,
                quiet,
                group,
            };
            let s = destila::distill::trainer::run(&recipe, &opts)?;
            if !main {
                return Ok(());
            }
            match (s.first_validation, s.last_validation) {
                (Some(a), Some(b)) => println!("validation loss {a:.4} -> {b:.4}"),
                (None, Some(b)) => println!("validation loss {b:.4}"),
                _ => {}
            }
            println!("model    {}", s.final_model.display());
            println!("metrics  {}", s.metrics.display());
            println!("plot     {}", s.plot.display());
            println!("time     {:.0} s", s.seconds);
        }
        Command::Targets {
            recipe,
            out,
            set,
            quiet,
            force,
        } => {
            let recipe = Recipe::from_file_with(&recipe, &set)?;
            let out = match out.or_else(|| {
                recipe
                    .teacher
                    .as_ref()
                    .and_then(|t| t.targets.as_ref())
                    .map(|t| t.dir.clone())
            }) {
                Some(o) => o,
                None => {
                    return Err(destila::Error::config(
                        &recipe.path,
                        "teacher.targets.dir",
                        "not set: give --out DIR or set teacher.targets.dir",
                    )
                    .into())
                }
            };
            let group = destila::distill::trainer::join(&recipe)?;
            let main = group.as_ref().is_none_or(|g| g.is_main());
            let opts = destila::distill::trainer::RunOptions {
                quiet,
                force,
                group,
                ..Default::default()
            };
            let s = destila::distill::targets::write(&recipe, &out, &opts)?;
            if !main {
                return Ok(());
            }
            println!("targets  {} (top {} MLM logits)", s.dir.display(), s.top_k);
            for (name, x) in &s.splits {
                println!(
                    "{name:<10} {} batches, {} examples, {} tokens, {} masked; {:.1} MB, {:.2} bytes/token ({:.2} of them top-k)",
                    x.batches,
                    x.examples,
                    x.tokens,
                    x.masked,
                    x.bytes as f64 / 1e6,
                    x.bytes_per_token(),
                    x.topk_bytes_per_token()
                );
            }
            println!("time     {:.0} s", s.seconds);
        }
        Command::Recipe {
            what: RecipeCommand::Check { recipe, set },
        } => {
            let r = Recipe::from_file_with(&recipe, &set)?;
            print!("{}", serde_yaml::to_string(&r)?);
            eprintln!("{}: ok", recipe.display());
        }
        Command::Eval {
            teacher,
            student,
            init,
            no_init,
            sentences,
            pairs,
            corpus,
            max_sentences,
            head_batches,
            out,
            cache_dir,
            device,
        } => {
            let opts = destila::eval::compare::EvalOptions {
                sentences,
                pairs,
                corpus,
                max_sentences,
                head_batches,
                cache_dir,
                device: destila::device::parse(&device)?,
                ..Default::default()
            };
            let init = match (init, no_init) {
                (_, true) => None,
                (Some(i), _) => Some(i),
                (None, false) => destila::eval::baseline::saved_init(&student),
            };
            let mut inputs = vec![teacher.clone(), student.clone()];
            inputs.extend(init.clone());
            inputs.extend(opts.sentences.clone());
            inputs.extend(opts.pairs.clone());
            destila::output::claim_entries(
                &out,
                "--out",
                "eval",
                destila::eval::compare::REPORT_FILES,
                false,
                &inputs,
            )?;
            if let Some(i) = &init {
                if !i.join("config.json").is_file() {
                    anyhow::bail!(
                        "--init {}: no config.json there (a model folder, such as a run's init/)",
                        i.display()
                    );
                }
                println!("baseline: the student's initialisation {}", i.display());
            }
            let report = destila::eval::compare::evaluate_with_init(
                &teacher,
                &student,
                init.as_deref(),
                &opts,
            )?;
            print!("{report}");
            for p in report.write(&out)? {
                println!("wrote {}", p.display());
            }
        }
        Command::Export {
            checkpoint,
            out,
            dtype,
            heads,
            quantize,
            eval,
            force,
        } => {
            let opts = destila::export::ExportOptions {
                dtype: match dtype {
                    ExportDtype::F32 => tch::Kind::Float,
                    ExportDtype::F16 => tch::Kind::Half,
                    ExportDtype::Bf16 => tch::Kind::BFloat16,
                },
                heads,
                int8: quantize.is_some(),
                force,
                eval,
            };
            let s = destila::export::export(&checkpoint, &out, &opts)?;
            println!(
                "exported {} ({}, {} parameters, {:.1} MB, {})",
                s.out.display(),
                s.architecture,
                s.parameters,
                s.file_bytes as f64 / 1e6,
                s.dtype
            );
        }
        Command::Bench {
            what: None,
            teacher,
            student,
            out,
            eval,
            iters,
            device,
        } => {
            let (Some(teacher), Some(student)) = (teacher, student) else {
                bail!("destila bench needs --teacher DIR and --student DIR (or a subcommand: forward, step, data)");
            };
            destila::output::claim_entries(
                &out,
                "--out",
                "bench",
                destila::bench::REPORT_FILES,
                false,
                &[teacher.clone(), student.clone()],
            )?;
            let eval = eval.or_else(|| Some(out.join("eval.json")).filter(|p| p.is_file()));
            let quality = match eval {
                Some(p) => {
                    let v: serde_json::Value = serde_json::from_str(
                        &std::fs::read_to_string(&p).with_context(|| p.display().to_string())?,
                    )
                    .with_context(|| p.display().to_string())?;
                    let mut q = serde_json::Map::new();
                    for (k, ptr) in [
                        (
                            "similarity spearman (mean pooling)",
                            "/similarity/mean/spearman",
                        ),
                        ("similarity spearman ([CLS])", "/similarity/cls/spearman"),
                        ("linear CKA (mean pooling)", "/similarity/mean/cka"),
                        ("kNN@10 overlap (mean pooling)", "/similarity/mean/knn10"),
                        ("MLM top-1 agreement", "/heads/mlm_top1_agreement"),
                        ("student MLM accuracy", "/heads/student_mlm_accuracy"),
                        ("teacher MLM accuracy", "/heads/teacher_mlm_accuracy"),
                    ] {
                        if let Some(x) = v.pointer(ptr) {
                            q.insert(k.into(), x.clone());
                        }
                    }
                    Some(serde_json::Value::Object(q))
                }
                None => None,
            };
            let dev = destila::device::parse(&device)?;
            let r = destila::bench::compare(&teacher, &student, dev, &device, iters, quality)?;
            print!("{}", r.markdown());
            for p in r.write(&out)? {
                println!("wrote {}", p.display());
            }
        }
        Command::Bench {
            what: Some(what), ..
        } => match what {
            BenchCommand::Step {
                teacher,
                student_layers,
                batch,
                seq_len,
                warmup,
                iters,
                device,
                dtype,
            } => {
                let device = destila::device::parse(&device)?;
                let kind = parse_kind(&dtype)?;
                let cfg = bert::BertConfig::from_file(teacher.join("config.json"))?;
                destila::bench::check_shape(
                    &cfg,
                    batch,
                    seq_len,
                    cfg.num_hidden_layers + student_layers,
                    device,
                )?;
                let setup = destila::distill::trainer::StepBench {
                    student_layers,
                    batch,
                    seq_len,
                    iters,
                    warmup,
                    device,
                    kind,
                };
                let r = destila::distill::trainer::bench_step(&teacher, &setup)?;
                println!("{}", serde_json::to_string(&r)?);
            }
            BenchCommand::Topk {
                teacher,
                student,
                data,
                k,
                batches,
                batch,
                seq_len,
                temperature,
            } => {
                let tokenizer = destila::tokenize::BertTokenizer::from_dir(&teacher)?;
                let yaml = serde_json::json!({"train": [data], "max_seq_len": seq_len});
                let cfg: destila::data::DataConfig = serde_json::from_value(yaml)
                    .map_err(|e| destila::Error::Invalid(format!("--data: {e}")))?;
                if let Err((field, msg)) = cfg.validate() {
                    let flag = if field == "max_seq_len" {
                        "--seq-len"
                    } else {
                        "--data"
                    };
                    bail!("{flag}: {msg}");
                }
                let tc = destila::bert::BertConfig::from_file(teacher.join("config.json"))?;
                let sc = destila::bert::BertConfig::from_file(student.join("config.json"))?;
                if tc.vocab_size != sc.vocab_size {
                    bail!(
                        "the teacher's vocabulary ({}, {}) and the student's ({}, {}) differ: top-k targets compare the same tokens",
                        tc.vocab_size,
                        teacher.display(),
                        sc.vocab_size,
                        student.display()
                    );
                }
                if let Some(big) = k.iter().find(|&&k| k as i64 > tc.vocab_size) {
                    bail!(
                        "--k {big} is more than the vocabulary ({} tokens)",
                        tc.vocab_size
                    );
                }
                if seq_len as i64 > tc.max_position_embeddings.min(sc.max_position_embeddings) {
                    bail!(
                        "--seq-len {seq_len} is longer than the models' max_position_embeddings ({})",
                        tc.max_position_embeddings.min(sc.max_position_embeddings)
                    );
                }
                let sets = destila::data::prepare(&cfg, &tokenizer)?;
                let mut lo = destila::data::loader_options(&cfg, &tokenizer, batch, 1234);
                lo.shuffle = false;
                let mut l = destila::data::Loader::new(
                    sets.train.corpus.clone(),
                    sets.train.docs.clone(),
                    lo,
                    Default::default(),
                );
                let held: Vec<_> = (0..batches).map_while(|_| l.next_batch()).collect();
                let t = destila::bert::load(&teacher, &Default::default())?;
                let s = destila::bert::load(&student, &Default::default())?;
                for row in destila::distill::targets::topk_gap(&t, &s, &held, &k, temperature)? {
                    println!("{}", serde_json::to_string(&row)?);
                }
            }
            BenchCommand::Data { recipe, batches } => {
                let recipe = Recipe::from_file(&recipe)?;
                let scratch =
                    std::env::temp_dir().join(format!("destila-bench-{}", std::process::id()));
                let r = destila::bench::data_throughput(&recipe, &scratch, batches);
                let _ = std::fs::remove_dir_all(&scratch);
                println!("{}", serde_json::to_string(&r?)?);
            }
            BenchCommand::Forward {
                dir,
                batch,
                seq_len,
                mlm,
                mask_fraction,
                nsp,
                warmup,
                iters,
                device,
                dtype,
            } => {
                let device = destila::device::parse(&device)?;
                let kind = parse_kind(&dtype)?;
                let heads = Heads {
                    mlm: mlm != MlmMode::None,
                    nsp,
                    pooler: nsp,
                };
                let opts = LoadOptions {
                    device,
                    heads,
                    kind,
                    ..Default::default()
                };
                let cfg = bert::BertConfig::from_file(dir.join("config.json"))?;
                destila::bench::check_shape(&cfg, batch, seq_len, 1, device)?;
                let model = bert::load(&dir, &opts)?;
                let setup = ForwardBench {
                    batch,
                    seq_len,
                    mlm,
                    mask_fraction,
                    nsp,
                    warmup,
                    iters,
                    threads: tch::get_num_threads(),
                    device: destila::device::describe(device),
                };
                let r = forward_throughput(&model, &setup)?;
                println!("{}", serde_json::to_string(&r)?);
            }
        },
        Command::Doctor {
            model,
            device,
            tolerance,
        } => {
            let env = destila::doctor::environment();
            println!("{}", serde_json::to_string(&env)?);
            let device = destila::device::parse(&device)?;
            if let Some(dir) = model {
                let p = destila::doctor::parity(&dir, device)?;
                println!("{}", serde_json::to_string(&p)?);
                let worst = p.max_abs_last_hidden.max(p.max_abs_pooled.unwrap_or(0.0));
                if worst.is_nan() || worst > tolerance {
                    bail!("{device:?} differs from the CPU by {worst:e} (tolerance {tolerance:e})");
                }
            }
        }
    }
    Ok(())
}
