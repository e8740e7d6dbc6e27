//! `destila doctor`: is CUDA visible, and does a model give the same numbers on the chosen
//! device as on the CPU?

use std::path::Path;

use tch::{Device, Kind};

use crate::bert::{self, ForwardOptions, LoadOptions};
use crate::error::Result;
use crate::tokenize::{BertTokenizer, Text};

#[derive(Debug, serde::Serialize)]
pub struct Environment {
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn_available: bool,
    pub threads: i32,
}

pub fn environment() -> Environment {
    Environment {
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        threads: tch::get_num_threads(),
    }
}

#[derive(Debug, serde::Serialize)]
pub struct Parity {
    pub device: String,
    pub max_abs_last_hidden: f64,
    pub max_abs_pooled: Option<f64>,
}

pub const PARITY_TEXTS: [Text<'static>; 4] = [
    Text::Single("Ele ocupa um alto posto na empresa"),
    Text::Single("Abasteci meu carro no posto do alto do morro"),
    Text::Pair("It is a truth universally acknowledged.", "A single man must be in want of a wife."),
    Text::Single("Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition."),
];

/// Runs `dir`'s model in fp32 on the CPU and on `device` over a padded batch and returns
/// the largest absolute differences.
pub fn parity(dir: &Path, device: Device) -> Result<Parity> {
    let tok = BertTokenizer::from_dir(dir)?.with_max_len(128)?;
    let (batch, _) = tok.batch(&PARITY_TEXTS)?;
    let run = |d: Device| -> Result<(tch::Tensor, Option<tch::Tensor>)> {
        let opts = LoadOptions {
            device: d,
            ..Default::default()
        };
        let model = bert::load(dir, &opts)?;
        let out = tch::no_grad(|| model.forward(&batch.to_device(d), &ForwardOptions::default()))?;
        let cpu = |t: &tch::Tensor| t.to_kind(Kind::Float).to_device(Device::Cpu);
        Ok((cpu(out.last_hidden_state()), out.pooled.as_ref().map(cpu)))
    };
    let (h_cpu, p_cpu) = run(Device::Cpu)?;
    let (h_dev, p_dev) = run(device)?;
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
