//! `destila doctor`: is CUDA visible, and does a model give the same numbers on the chosen
//! device as on the CPU?

use std::path::Path;

use tch::{Device, Kind};

use crate::bert::{self, ForwardOptions, LoadOptions};
use crate::error::Result;

#[derive(Debug, serde::Serialize)]
pub struct Environment {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub threads: i32,
    /// Data-parallel backends this build carries (Gloo always; NCCL when it was compiled
    /// with the CUDA headers).
    pub c10d_backends: Vec<&'static str>,
}

pub fn environment() -> Environment {
    Environment {
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        threads: tch::get_num_threads(),
        c10d_backends: if crate::dist::has_nccl() {
            vec!["gloo", "nccl"]
        } else {
            vec!["gloo"]
        },
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Parity {
    pub device: String,
    pub max_abs_last_hidden: f64,
    pub max_abs_pooled: Option<f64>,
}

/// Runs `dir`'s model in fp32 on the CPU and on `device` over a padded batch of random
/// ids (the same on both) and returns the largest absolute differences.
pub fn parity(dir: &Path, device: Device) -> Result<Parity> {
    let load = |d: Device| {
        let opts = LoadOptions {
            device: d,
            ..Default::default()
        };
        bert::load(dir, &opts)
    };
    let cpu_model = load(Device::Cpu)?;
    let batch = crate::bert::Inputs::random(cpu_model.config().vocab_size, 4, 64, 1);
    // Pad the tail of two rows, so that the attention mask is exercised.
    let _ = batch.attention_mask.get(1).narrow(0, 40, 24).fill_(0);
    let _ = batch.attention_mask.get(3).narrow(0, 10, 54).fill_(0);
    let run = |model: &bert::Model| -> Result<(tch::Tensor, Option<tch::Tensor>)> {
        let d = model.device();
        let out = tch::no_grad(|| model.forward(&batch.to_device(d), &ForwardOptions::default()))?;
        let cpu = |t: &tch::Tensor| t.to_kind(Kind::Float).to_device(Device::Cpu);
        Ok((cpu(out.last_hidden_state()), out.pooled.as_ref().map(cpu)))
    };
    let (h_cpu, p_cpu) = run(&cpu_model)?;
    let (h_dev, p_dev) = run(&load(device)?)?;
    let max_abs = |a: &tch::Tensor, b: &tch::Tensor| (a - b).abs().max().double_value(&[]);
    Ok(Parity {
        device: format!("{device:?}"),
        max_abs_last_hidden: max_abs(&h_cpu, &h_dev),
        max_abs_pooled: match (p_cpu, p_dev) {
            (Some(a), Some(b)) => Some(max_abs(&a, &b)),
            _ => None,
        },
    })
}

/// Refuses a device whose outputs differ from the CPU's by more than `tolerance` (or are
/// NaN).
pub fn check(p: &Parity, tolerance: f64) -> Result<()> {
    let worst = p.max_abs_last_hidden.max(p.max_abs_pooled.unwrap_or(0.0));
    if worst.is_nan() || worst > tolerance {
        return Err(crate::Error::Device(format!(
            "{} differs from the CPU by {worst:e} (tolerance {tolerance:e})",
            p.device
        )));
    }
    Ok(())
}
