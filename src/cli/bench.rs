//! `destila bench`: teacher against student, or one of the subcommands' benchmarks.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::parse;
use super::{out, outln};
use destila::bench::{self, ForwardBench, MlmMode};
use destila::bert::{self, Heads, LoadOptions};
use destila::distill::recipe::Recipe;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Bench {
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
    #[arg(long, value_parser = parse::count, default_value_t = 10)]
    iters: usize,
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One distillation step of the trainer (teacher forward, student forward and backward,
    /// kd_mlm + kd_nsp + mlm + nsp + hidden_cos, AdamW); prints JSON.
    Step(StepArgs),
    /// Stored teacher targets (top k, or N draws) against the full vocabulary on held-out
    /// text: storage per token, the KD loss of a student with each and the cosine of its
    /// weight gradient to the full KD's; prints JSON lines.
    Topk {
        /// Teacher checkpoint with an MLM head.
        teacher: PathBuf,
        /// Student checkpoint with an MLM head.
        student: PathBuf,
        /// Held-out text (file, folder or glob).
        #[arg(long)]
        data: String,
        /// The top-k forms compared: k largest teacher logits per masked token.
        #[arg(long, value_delimiter = ',', default_value = "8,32,128", value_parser = parse::count)]
        k: Vec<usize>,
        /// The sampled forms compared: N draws per masked token (teacher.targets.sample).
        #[arg(long, value_delimiter = ',', value_parser = parse::count)]
        sample: Vec<usize>,
        #[arg(long, value_parser = parse::count, default_value_t = 16)]
        batches: usize,
        #[arg(long, value_parser = parse::count, default_value_t = 32)]
        batch: usize,
        #[arg(long, value_parser = parse::count, default_value_t = 128)]
        seq_len: usize,
        #[arg(long, value_parser = parse::positive, default_value_t = 2.0)]
        temperature: f64,
    },
    /// Tokenisation MB/s into a fresh shard cache, then batches/s from it; prints JSON.
    Data {
        recipe: PathBuf,
        #[arg(long, value_parser = parse::count, default_value_t = 200)]
        batches: usize,
    },
    /// Forward throughput (tokens/s) of one model on random full-length batches; prints JSON.
    Forward(ForwardArgs),
    /// The compression ladder: the teacher, the student, and the student in f16, int8,
    /// pruned and ONNX form, each with size, latency and similarity structure against the
    /// teacher and the uncompressed student; writes ladder.md, ladder.csv, variants/.
    Ladder(LadderArgs),
}

pub fn bench(a: Bench) -> Result<()> {
    match a.what {
        None => compare(a),
        Some(BenchCommand::Step(s)) => step(s),
        Some(BenchCommand::Topk {
            teacher,
            student,
            data,
            k,
            sample,
            batches,
            batch,
            seq_len,
            temperature,
        }) => {
            let o = bench::topk::TopkOptions {
                data,
                k,
                sample,
                batches,
                batch,
                seq_len,
                temperature,
            };
            for row in bench::topk::run(&teacher, &student, &o)? {
                outln!("{}", serde_json::to_string(&row)?)?;
            }
            Ok(())
        }
        Some(BenchCommand::Data { recipe, batches }) => {
            let recipe = Recipe::from_file(&recipe)?;
            // A fresh temporary folder of its own, removed on drop (and nothing else).
            let scratch = tempfile::Builder::new()
                .prefix("destila-bench-")
                .tempdir()?;
            let r = bench::data_throughput(&recipe, scratch.path(), batches);
            outln!("{}", serde_json::to_string(&r?)?)?;
            Ok(())
        }
        Some(BenchCommand::Forward(f)) => forward(f),
        Some(BenchCommand::Ladder(l)) => ladder(l),
    }
}

fn step(a: StepArgs) -> Result<()> {
    let StepArgs {
        teacher,
        student_layers,
        batch,
        seq_len,
        warmup,
        iters,
        device,
        dtype,
    } = a;
    if seq_len < 3 {
        bail!("--seq-len {seq_len}: [CLS] and [SEP] leave no token to mask; give at least 3");
    }
    let device = destila::device::parse(&device)?;
    let cfg = bert::BertConfig::from_file(teacher.join("config.json"))?;
    let kept = cfg.num_hidden_layers + student_layers;
    bench::check_shape(&cfg, batch, seq_len, kept, device)?;
    let setup = bench::StepBench {
        student_layers,
        batch,
        seq_len,
        iters,
        warmup,
        device,
        kind: dtype,
    };
    let r = bench::bench_step(&teacher, &setup)?;
    outln!("{}", serde_json::to_string(&r)?)?;
    Ok(())
}

fn forward(a: ForwardArgs) -> Result<()> {
    let ForwardArgs {
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
    } = a;
    let device = destila::device::parse(&device)?;
    let heads = Heads {
        mlm: mlm.is_some_and(|m| m != MlmMode::None),
        nsp,
        pooler: nsp,
    };
    let cfg = bert::BertConfig::from_file(dir.join("config.json"))?;
    bench::check_shape(&cfg, batch, seq_len, 1, device)?;
    let opts = LoadOptions {
        device,
        heads,
        kind: dtype,
        int8_kernels: bert::qlinear::wanted()?,
        ..Default::default()
    };
    let model = bert::load(&dir, &opts)?;
    // Heads the checkpoint lacks would be random ones, timed as if they were its own.
    if let Some(r) = &model.report {
        for (asked, has, flag, head) in [
            (heads.mlm, r.checkpoint_heads.mlm, "--mlm", "MLM head"),
            (heads.nsp, r.checkpoint_heads.nsp, "--nsp", "NSP head"),
        ] {
            if asked && !has {
                bail!(
                    "{flag}: {} has no {head} (a sentence-embedding model, or exported with --heads drop); leave {flag} out to time the encoder",
                    dir.display()
                );
            }
        }
    }
    // Unasked, the MLM head is timed when the checkpoint has one.
    let has_mlm = model
        .report
        .as_ref()
        .is_some_and(|r| r.checkpoint_heads.mlm);
    let mlm = mlm.unwrap_or(if has_mlm {
        MlmMode::Masked
    } else {
        MlmMode::None
    });
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
    let r = bench::forward_throughput(&model, &setup)?;
    outln!("{}", serde_json::to_string(&r)?)?;
    Ok(())
}

/// Teacher against student: size, latency, throughput, memory, and an eval.json's quality.
fn compare(a: Bench) -> Result<()> {
    let (Some(teacher), Some(student)) = (a.teacher, a.student) else {
        bail!("destila bench needs --teacher DIR and --student DIR (or a subcommand: forward, step, data, topk)");
    };
    let inputs = [teacher.clone(), student.clone()];
    destila::output::claim_entries(&a.out, "--out", "bench", bench::REPORT_FILES, true, &inputs)?;
    let eval = a
        .eval
        .or_else(|| Some(a.out.join("eval.json")).filter(|p| p.is_file()));
    let quality = match eval {
        Some(p) => Some(bench::compare::read_quality(&p)?),
        None => None,
    };
    let dev = destila::device::parse(&a.device)?;
    let r = bench::compare(&teacher, &student, dev, &a.device, a.iters, quality)?;
    out!("{}", r.markdown())?;
    for p in r.write(&a.out)? {
        outln!("wrote {}", p.display())?;
    }
    Ok(())
}

#[derive(Args)]
struct StepArgs {
    /// Teacher checkpoint with MLM and NSP heads.
    teacher: PathBuf,
    #[arg(long, value_parser = parse::size, default_value_t = 3)]
    student_layers: i64,
    #[arg(long, value_parser = parse::size, default_value_t = 32)]
    batch: i64,
    #[arg(long, value_parser = parse::size, default_value_t = 128)]
    seq_len: i64,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, value_parser = parse::count, default_value_t = 5)]
    iters: usize,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, value_parser = parse::kind, default_value = "f32")]
    dtype: tch::Kind,
}

#[derive(Args)]
struct ForwardArgs {
    dir: PathBuf,
    #[arg(long, value_parser = parse::size, default_value_t = 32)]
    batch: i64,
    #[arg(long, value_parser = parse::size, default_value_t = 128)]
    seq_len: i64,
    /// Default: masked when the checkpoint has an MLM head, else none.
    #[arg(long, value_enum)]
    mlm: Option<MlmMode>,
    #[arg(long, value_parser = parse::fraction, default_value_t = 0.15)]
    mask_fraction: f64,
    /// Also compute NSP logits.
    #[arg(long)]
    nsp: bool,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, value_parser = parse::count, default_value_t = 10)]
    iters: usize,
    #[arg(long, default_value = "auto")]
    device: String,
    /// Variable kind: f32, or bf16/f16 (CUDA).
    #[arg(long, value_parser = parse::kind, default_value = "f32")]
    dtype: tch::Kind,
}

#[derive(Args)]
struct LadderArgs {
    #[arg(long)]
    teacher: PathBuf,
    #[arg(long)]
    student: PathBuf,
    /// One sentence a line, for the similarity structure (held-out text).
    #[arg(long)]
    sentences: PathBuf,
    /// Text to prune the student's vocabulary to (no pruned rung without it).
    #[arg(long)]
    prune_corpus: Vec<String>,
    #[arg(long, default_value = "ladder")]
    out: PathBuf,
    /// Timed runs of each latency cell in a round.
    #[arg(long, value_parser = parse::count, default_value_t = 5)]
    iters: usize,
    /// Latency rounds: each times every rung in turn (order reversed every other round);
    /// a cell is the median of its rounds' medians.
    #[arg(long, value_parser = parse::count, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value = "auto")]
    device: String,
    /// A narrower student (e.g. distilled with recipes/narrow.yaml), measured as a rung.
    #[arg(long)]
    narrow: Option<PathBuf>,
    /// A structurally pruned student (`destila prune --heads/--ffn/--hidden`, or a run with
    /// student.prune), measured in f32, int8 and ONNX (repeatable).
    #[arg(long)]
    pruned: Vec<PathBuf>,
    /// Human similarity judgements (CSV text_a,text_b,score): each rung's agreement.
    #[arg(long)]
    pairs: Option<PathBuf>,
    /// The Python with onnxruntime and transformers that runs the ONNX rungs (default: the
    /// project's .venv/bin/python when there is one, else python3); without them those
    /// rungs report their size only.
    #[arg(long)]
    python: Option<PathBuf>,
}

fn ladder(a: LadderArgs) -> Result<()> {
    use destila::bench::ladder;
    let narrow = a.narrow.iter().map(|d| ("--narrow", d));
    let pruned = a.pruned.iter().map(|d| ("--pruned", d));
    for (flag, dir) in [("--teacher", &a.teacher), ("--student", &a.student)]
        .into_iter()
        .chain(narrow)
        .chain(pruned)
    {
        if !dir.join("config.json").is_file() {
            anyhow::bail!(
                "{flag} {}: no model folder there (no config.json)",
                dir.display()
            );
        }
    }
    ladder::check_sentences(&a.sentences)?;
    if let Some(p) = &a.pairs {
        destila::eval::compare::read_pairs(p)?;
    }
    let mut inputs = vec![a.teacher.clone(), a.student.clone(), a.sentences.clone()];
    inputs.extend(a.narrow.clone());
    inputs.extend(a.pruned.clone());
    inputs.extend(a.pairs.clone());
    inputs.extend(a.prune_corpus.iter().map(|c| destila::output::glob_root(c)));
    destila::output::claim_entries(
        &a.out,
        "--out",
        "bench",
        ladder::LADDER_FILES,
        true,
        &inputs,
    )?;
    let o = ladder::LadderOptions {
        sentences: a.sentences,
        prune_corpus: a.prune_corpus,
        iters: a.iters,
        rounds: a.rounds,
        device: destila::device::parse(&a.device)?,
        narrow: a.narrow,
        pruned: a.pruned,
        pairs: a.pairs,
        python: a.python.unwrap_or_else(|| {
            let venv = PathBuf::from(".venv/bin/python");
            if venv.is_file() {
                venv
            } else {
                PathBuf::from("python3")
            }
        }),
    };
    let rungs = ladder::ladder(&a.teacher, &a.student, &a.out.join("variants"), &o)?;
    let md = format!(
        "{}\n\n{}",
        ladder::method(&o, &a.device),
        ladder::markdown(&rungs)
    );
    out!("{md}")?;
    for (name, text) in [("ladder.md", md), ("ladder.csv", ladder::csv(&rungs))] {
        let p = a.out.join(name);
        destila::error::write_atomic(&p, |tmp| {
            std::fs::write(tmp, &text).map_err(|e| destila::Error::io(tmp, e))
        })?;
        outln!("wrote {}", p.display())?;
    }
    let chart = a.out.join("frontier.svg");
    destila::plot::write(&chart, &ladder::frontier(&rungs)?)?;
    outln!("wrote {} (and .png)", chart.display())?;
    Ok(())
}
