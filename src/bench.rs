//! Forward-pass throughput of one model, for the side-by-side benchmark against
//! `transformers` (scripts/bench_forward.py runs the same batch in Python).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

use crate::bert::{ForwardOptions, Inputs, MlmPositions, Model};
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MlmMode {
    /// No MLM logits (encoder and pooler only).
    None,
    /// MLM logits at every position, as `BertForPreTraining` computes them.
    All,
    /// MLM logits only at a random `mask_fraction` of positions, as distillation needs.
    Masked,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwardBench {
    pub batch: i64,
    pub seq_len: i64,
    pub mlm: MlmMode,
    pub mask_fraction: f64,
    pub nsp: bool,
    pub warmup: usize,
    pub iters: usize,
    pub threads: i32,
    pub device: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ForwardResult {
    #[serde(flatten)]
    pub setup: ForwardBench,
    pub seconds: Vec<f64>,
    pub median_s: f64,
    pub p95_s: f64,
    pub tokens_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// Random token ids (uniform over the non-special vocabulary), no padding, seeded.
pub fn random_inputs(vocab: i64, batch: i64, len: i64, seed: u64) -> Inputs {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Real BERT vocabularies keep [PAD], [unused*] and specials below 1000.
    let low = if vocab > 2000 { 1000 } else { 5.min(vocab - 1) };
    let ids: Vec<i64> = (0..batch * len)
        .map(|_| rng.random_range(low..vocab))
        .collect();
    Inputs {
        input_ids: Tensor::from_slice(&ids).view([batch, len]),
        attention_mask: Tensor::ones([batch, len], (Kind::Int64, tch::Device::Cpu)),
        token_type_ids: Tensor::zeros([batch, len], (Kind::Int64, tch::Device::Cpu)),
    }
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The q-quantile by linear interpolation between order statistics.
pub fn percentile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

pub fn forward_throughput(model: &Model, setup: &ForwardBench) -> Result<ForwardResult> {
    let device = model.device();
    let inputs =
        random_inputs(model.config().vocab_size, setup.batch, setup.seq_len, 0).to_device(device);
    let n = setup.batch * setup.seq_len;
    let masked = ((n as f64) * setup.mask_fraction).round().max(1.0) as i64;
    let positions = Tensor::randperm(n, (Kind::Int64, device))
        .narrow(0, 0, masked)
        .sort(0, false)
        .0;
    let opts = || ForwardOptions {
        mlm: match setup.mlm {
            MlmMode::None => MlmPositions::None,
            MlmMode::All => MlmPositions::All,
            MlmMode::Masked => MlmPositions::Flat(positions.shallow_clone()),
        },
        nsp: setup.nsp,
        ..Default::default()
    };
    let run = || -> Result<f64> {
        let start = Instant::now();
        let out = tch::no_grad(|| model.forward(&inputs, &opts()))?;
        // Reading one value waits for asynchronous (CUDA) work to finish.
        if let Some(l) = out.mlm_logits.as_ref() {
            let _ = l.sum(Kind::Float).double_value(&[]);
        } else {
            let _ = out.last_hidden_state().sum(Kind::Float).double_value(&[]);
        }
        Ok(start.elapsed().as_secs_f64())
    };
    for _ in 0..setup.warmup {
        run()?;
    }
    let seconds = (0..setup.iters)
        .map(|_| run())
        .collect::<Result<Vec<_>>>()?;
    let median_s = median(&seconds);
    Ok(ForwardResult {
        setup: setup.clone(),
        tokens_per_s: n as f64 / median_s,
        p95_s: percentile(&seconds, 0.95),
        seconds,
        median_s,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Memory the machine can still give (MemAvailable), in bytes, where /proc tells it.
pub fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Refuses a benchmark shape before anything is allocated: a sequence longer than the
/// model's positions, or activations (a rough upper estimate, `layers_kept` layers' worth
/// held at once: 1 for a forward without gradients, every layer for a training step) larger
/// than the memory this machine has available (CPU runs).
pub fn check_shape(
    cfg: &crate::bert::BertConfig,
    batch: i64,
    seq_len: i64,
    layers_kept: i64,
    device: tch::Device,
) -> Result<()> {
    if seq_len > cfg.max_position_embeddings {
        return Err(crate::Error::Invalid(format!(
            "--seq-len {seq_len} is longer than the model's max_position_embeddings ({})",
            cfg.max_position_embeddings
        )));
    }
    let (b, n) = (batch as f64, seq_len as f64);
    let h = cfg.hidden_size as f64;
    let per_layer = b * n * (8.0 * h + 2.0 * cfg.intermediate_size as f64)
        + 2.0 * b * cfg.num_attention_heads as f64 * n * n;
    let bytes = 4.0 * (per_layer * layers_kept as f64 + b * n * cfg.vocab_size as f64 * 0.15);
    if device == tch::Device::Cpu {
        if let Some(avail) = available_memory_bytes() {
            if bytes > avail as f64 {
                return Err(crate::Error::Invalid(format!(
                    "--batch {batch} x --seq-len {seq_len} needs about {:.1} GiB of activations; this machine has {:.1} GiB available: use a smaller --batch",
                    bytes / (1u64 << 30) as f64,
                    avail as f64 / (1u64 << 30) as f64
                )));
            }
        }
    }
    Ok(())
}

/// Peak resident memory of this process (VmHWM), in bytes, where /proc tells it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DataResult {
    pub text_bytes: u64,
    pub tokens: u64,
    pub tokenise_seconds: f64,
    pub tokenise_mb_per_s: f64,
    pub batch_size: usize,
    pub max_seq_len: usize,
    pub batches: usize,
    pub batch_seconds: f64,
    pub batches_per_s: f64,
    pub sequences_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// Tokenisation throughput (a fresh shard cache under `scratch`) and batches per second
/// from that cache, for a recipe's training text.
pub fn data_throughput(
    recipe: &crate::distill::recipe::Recipe,
    scratch: &std::path::Path,
    batches: usize,
) -> Result<DataResult> {
    let tok = recipe.tokenizer()?;
    let mut cfg = recipe.data.clone();
    cfg.cache_dir = scratch.to_path_buf();
    cfg.validation.clear();
    cfg.validation_fraction = 0.0;
    let start = Instant::now();
    let sets = crate::data::prepare(&cfg, &tok)?;
    let tokenise_seconds = start.elapsed().as_secs_f64();
    let m = &sets.train.corpus.manifest;
    let (text_bytes, tokens) = (m.text_bytes, m.tokens);
    let bs = recipe.training.batch_size;
    let opts = crate::data::loader_options(&cfg, &tok, bs, recipe.seed);
    let mut loader = crate::data::Loader::new(
        sets.train.corpus.clone(),
        sets.train.docs.clone(),
        opts,
        Default::default(),
    );
    let start = Instant::now();
    for _ in 0..batches {
        if loader.next_batch().is_none() {
            return Err(crate::Error::Invalid(
                "the corpus cannot fill one batch".into(),
            ));
        }
    }
    let batch_seconds = start.elapsed().as_secs_f64();
    Ok(DataResult {
        text_bytes,
        tokens,
        tokenise_seconds,
        tokenise_mb_per_s: text_bytes as f64 / 1e6 / tokenise_seconds,
        batch_size: bs,
        max_seq_len: cfg.max_seq_len,
        batches,
        batch_seconds,
        batches_per_s: batches as f64 / batch_seconds,
        sequences_per_s: (batches * bs) as f64 / batch_seconds,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// One model's figures in the teacher-versus-student benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelFigures {
    pub dir: String,
    pub parameters: i64,
    pub file_bytes: u64,
    pub layers: i64,
    pub hidden_size: i64,
    /// Peak RSS of a process that loads the model and runs batch 32 x 128.
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cell {
    pub batch: i64,
    pub seq_len: i64,
    pub teacher_median_ms: f64,
    pub teacher_p95_ms: f64,
    pub student_median_ms: f64,
    pub student_p95_ms: f64,
    pub teacher_tokens_per_s: f64,
    pub student_tokens_per_s: f64,
    pub speedup: f64,
}

/// The files `destila bench` writes into its output folder.
pub const REPORT_FILES: &[&str] = &["bench.csv", "bench.md", "bench.svg"];

#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    pub teacher: ModelFigures,
    pub student: ModelFigures,
    pub threads: i32,
    pub device: String,
    pub cells: Vec<Cell>,
    /// Teacher / student forward FLOPs at batch 32 x 128 (encoder and pooler).
    pub flop_ratio: f64,
    /// Measured speed-up at 32 x 128 divided by the FLOP ratio.
    pub speedup_over_flop_ratio: f64,
    /// Key figures of an eval.json found beside the report.
    pub quality: Option<serde_json::Value>,
}

fn figures(dir: &std::path::Path, model: &Model) -> Result<ModelFigures> {
    let f = dir.join("model.safetensors");
    Ok(ModelFigures {
        dir: dir.display().to_string(),
        parameters: crate::bert::model::count_params(&model.vs, ""),
        file_bytes: std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0),
        layers: model.config().num_hidden_layers,
        hidden_size: model.config().hidden_size,
        peak_rss_bytes: None,
    })
}

/// Peak RSS of a child `destila bench forward` on `dir` at batch 32 x 128.
fn child_peak_rss(dir: &std::path::Path, device: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args([
            "--threads",
            &tch::get_num_threads().to_string(),
            "bench",
            "forward",
        ])
        .arg(dir)
        .args([
            "--mlm", "none", "--iters", "2", "--warmup", "0", "--device", device,
        ])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("peak_rss_bytes")?.as_u64()
}

/// Latency and throughput of teacher and student, interleaved cell by cell.
pub fn compare(
    teacher_dir: &std::path::Path,
    student_dir: &std::path::Path,
    device: tch::Device,
    device_spec: &str,
    iters: usize,
    quality: Option<serde_json::Value>,
) -> Result<CompareReport> {
    let lo = crate::bert::LoadOptions {
        device,
        ..Default::default()
    };
    let t = crate::bert::load(teacher_dir, &lo)?;
    let s = crate::bert::load(student_dir, &lo)?;
    let mut cells = Vec::new();
    for &seq_len in &[32i64, 128] {
        for &batch in &[1i64, 8, 32] {
            let setup = ForwardBench {
                batch,
                seq_len,
                mlm: MlmMode::None,
                mask_fraction: 0.15,
                nsp: false,
                warmup: 1,
                iters,
                threads: tch::get_num_threads(),
                device: crate::device::describe(device),
            };
            let rt = forward_throughput(&t, &setup)?;
            let rs = forward_throughput(&s, &setup)?;
            cells.push(Cell {
                batch,
                seq_len,
                teacher_median_ms: rt.median_s * 1e3,
                teacher_p95_ms: rt.p95_s * 1e3,
                student_median_ms: rs.median_s * 1e3,
                student_p95_ms: rs.p95_s * 1e3,
                teacher_tokens_per_s: rt.tokens_per_s,
                student_tokens_per_s: rs.tokens_per_s,
                speedup: rt.median_s / rs.median_s,
            });
        }
    }
    let flops =
        |m: &Model| crate::distill::trainer::forward_flops(m.config(), 32.0 * 128.0, 128.0, 0.0);
    let flop_ratio = flops(&t) / flops(&s);
    let big = cells
        .iter()
        .find(|c| c.batch == 32 && c.seq_len == 128)
        .expect("measured");
    let speedup_over_flop_ratio = big.speedup / flop_ratio;
    let mut tf = figures(teacher_dir, &t)?;
    let mut sf = figures(student_dir, &s)?;
    drop((t, s));
    tf.peak_rss_bytes = child_peak_rss(teacher_dir, device_spec);
    sf.peak_rss_bytes = child_peak_rss(student_dir, device_spec);
    Ok(CompareReport {
        teacher: tf,
        student: sf,
        threads: tch::get_num_threads(),
        device: crate::device::describe(device),
        cells,
        flop_ratio,
        speedup_over_flop_ratio,
        quality,
    })
}

impl CompareReport {
    pub fn markdown(&self) -> String {
        let mib = |b: Option<u64>| {
            b.map(|b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
                .unwrap_or_else(|| "n/a".into())
        };
        let mut s = format!(
            "# Teacher versus student\n\n{} ({} threads for libtorch). Latency of a forward pass (encoder and pooler), random ids, no padding.\n\n\
             | | teacher | student | ratio |\n|---|---:|---:|---:|\n\
             | model | `{}` | `{}` | |\n| layers x hidden | {} x {} | {} x {} | |\n\
             | parameters | {} | {} | {:.2}x |\n| file size | {:.1} MB | {:.1} MB | {:.2}x |\n| peak memory (batch 32 x 128) | {} | {} | |\n\n",
            self.device, self.threads, self.teacher.dir, self.student.dir,
            self.teacher.layers, self.teacher.hidden_size, self.student.layers, self.student.hidden_size,
            self.teacher.parameters, self.student.parameters, self.teacher.parameters as f64 / self.student.parameters as f64,
            self.teacher.file_bytes as f64 / 1e6, self.student.file_bytes as f64 / 1e6,
            self.teacher.file_bytes as f64 / self.student.file_bytes.max(1) as f64,
            mib(self.teacher.peak_rss_bytes), mib(self.student.peak_rss_bytes),
        );
        s += "| batch x length | teacher median (p95) ms | student median (p95) ms | teacher tokens/s | student tokens/s | speed-up |\n|---|---:|---:|---:|---:|---:|\n";
        for c in &self.cells {
            s += &format!(
                "| {} x {} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.0} | {:.0} | {:.2}x |\n",
                c.batch,
                c.seq_len,
                c.teacher_median_ms,
                c.teacher_p95_ms,
                c.student_median_ms,
                c.student_p95_ms,
                c.teacher_tokens_per_s,
                c.student_tokens_per_s,
                c.speedup
            );
        }
        s += &format!(
            "\nFLOP ratio at 32 x 128: {:.2}x; measured speed-up / FLOP ratio: {:.2} (target: within 10%, 0.90 to 1.10).\n",
            self.flop_ratio, self.speedup_over_flop_ratio
        );
        if let Some(q) = &self.quality {
            s += "\n## Quality (eval.json)\n\n| metric | value |\n|---|---:|\n";
            if let Some(o) = q.as_object() {
                for (k, v) in o {
                    if let Some(v) = v.as_f64() {
                        s += &format!("| {k} | {v:.4} |\n");
                    }
                }
            }
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut s = String::from("batch,seq_len,teacher_median_ms,teacher_p95_ms,student_median_ms,student_p95_ms,teacher_tokens_per_s,student_tokens_per_s,speedup\n");
        for c in &self.cells {
            s += &format!(
                "{},{},{:.4},{:.4},{:.4},{:.4},{:.2},{:.2},{:.4}\n",
                c.batch,
                c.seq_len,
                c.teacher_median_ms,
                c.teacher_p95_ms,
                c.student_median_ms,
                c.student_p95_ms,
                c.teacher_tokens_per_s,
                c.student_tokens_per_s,
                c.speedup
            );
        }
        s
    }

    /// Writes bench.csv, bench.md and bench.svg into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
        use crate::error::{write_atomic, Error};
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let put = |name: &str, text: String| -> Result<std::path::PathBuf> {
            let p = dir.join(name);
            write_atomic(&p, |tmp| {
                std::fs::write(tmp, &text).map_err(|e| Error::io(tmp, e))
            })?;
            Ok(p)
        };
        let groups: Vec<String> = self
            .cells
            .iter()
            .map(|c| format!("{} x {}", c.batch, c.seq_len))
            .collect();
        let series = vec![
            (
                "teacher".to_string(),
                self.cells.iter().map(|c| c.teacher_tokens_per_s).collect(),
            ),
            (
                "student".to_string(),
                self.cells.iter().map(|c| c.student_tokens_per_s).collect(),
            ),
        ];
        let svg = crate::plot::bars(
            "forward throughput (batch x length)",
            "tokens/s",
            &groups,
            &series,
        )?;
        Ok(vec![
            put("bench.csv", self.csv())?,
            put("bench.md", self.markdown())?,
            put("bench.svg", svg)?,
            put(
                "bench.json",
                serde_json::to_string_pretty(self).expect("json"),
            )?,
        ])
    }
}
