//! `--device auto|cpu|cuda|cuda:N`.

use tch::Device;

use crate::error::{Error, Result};

pub fn parse(spec: &str) -> Result<Device> {
    let cuda_count = || tch::Cuda::device_count() as usize;
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => parse("cuda:0"),
        s => {
            let Some(n) = s.strip_prefix("cuda:") else {
                return Err(Error::Device(format!(
                    "device {s:?}: expected auto, cpu, cuda or cuda:N"
                )));
            };
            let n: usize = n.parse().map_err(|_| {
                Error::Device(format!("device {s:?}: {n:?} is not a device number"))
            })?;
            if !tch::Cuda::is_available() {
                return Err(Error::Device(format!(
                    "device {s:?}: CUDA is not available on this machine"
                )));
            }
            if n >= cuda_count() {
                return Err(Error::Device(format!(
                    "device {s:?}: only {} CUDA device(s) visible",
                    cuda_count()
                )));
            }
            Ok(Device::Cuda(n))
        }
    }
}

/// Checks the spelling of a device without asking whether it exists here.
pub fn check_syntax(spec: &str) -> std::result::Result<(), String> {
    match spec {
        "auto" | "cpu" | "cuda" => Ok(()),
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(_)) => Ok(()),
            _ => Err(format!("{s:?}: expected auto, cpu, cuda or cuda:N")),
        },
    }
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(n) => format!("cuda:{n}"),
        d => format!("{d:?}"),
    }
}
