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
    pub tokens_per_s: f64,
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
        seconds,
        median_s,
    })
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
