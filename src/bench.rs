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
