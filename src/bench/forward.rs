//! Forward-pass throughput of one model, for the side-by-side benchmark against
//! `transformers` (scripts/bench_forward.py runs the same batch in Python).

use std::time::Instant;

use tch::{Kind, Tensor};

use crate::bert::{ForwardOptions, Inputs, MlmPositions, Model};
use crate::error::Result;
use crate::timing::{available_memory_bytes, median, peak_rss_bytes, percentile};

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

pub fn forward_throughput(model: &Model, setup: &ForwardBench) -> Result<ForwardResult> {
    let device = model.device();
    let inputs =
        Inputs::random(model.config().vocab_size, setup.batch, setup.seq_len, 0).to_device(device);
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
