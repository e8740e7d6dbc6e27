//! AdamW with decoupled weight decay, global-norm clipping and, for reduced precision, fp32
//! master weights and dynamic loss scaling.
//!
//! Written out (it mirrors `torch.optim.AdamW`, single-tensor path) rather than taken from
//! `tch::nn::AdamW` because a resumed run must continue exactly: the moment estimates are
//! saved in checkpoints, and tch's optimizer does not expose them.

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

struct Param {
    name: String,
    var: Tensor,
    /// fp32 copy when the variable is bf16/fp16: updates happen here, then are copied back.
    master: Option<Tensor>,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

pub struct AdamW {
    params: Vec<Param>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Optimizer steps taken.
    pub steps: u64,
}

/// Biases and LayerNorm parameters get no weight decay.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.ends_with("predictions.bias"))
}

impl AdamW {
    /// `params`: (name, variable) pairs; names key the saved state.
    pub fn new(mut params: Vec<(String, Tensor)>, beta1: f64, beta2: f64, eps: f64) -> AdamW {
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let params = params
            .into_iter()
            .map(|(name, var)| {
                let master = (var.kind() != Kind::Float).then(|| var.detach().to_kind(Kind::Float));
                let zeros = || Tensor::zeros_like(&var.detach().to_kind(Kind::Float));
                Param {
                    decay: decays(&name),
                    exp_avg: zeros(),
                    exp_avg_sq: zeros(),
                    name,
                    var,
                    master,
                }
            })
            .collect();
        AdamW {
            params,
            beta1,
            beta2,
            eps,
            steps: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.var.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    fn grads(&self) -> impl Iterator<Item = (&Param, Tensor)> {
        self.params.iter().filter_map(|p| {
            let g = p.var.grad();
            g.defined().then_some((p, g))
        })
    }

    /// The parameters with their names, in name order (the same on every rank).
    pub fn variables(&self) -> Vec<(&str, Tensor)> {
        self.params
            .iter()
            .map(|p| (p.name.as_str(), p.var.shallow_clone()))
            .collect()
    }

    /// Divides every gradient by `factor` (loss-scale removal, accumulation).
    pub fn scale_grads(&mut self, factor: f64) {
        for (_, mut g) in self.grads() {
            let _ = g.g_mul_scalar_(factor);
        }
    }

    /// The global L2 norm of the gradients.
    pub fn grad_norm(&self) -> f64 {
        let sq: f64 = self
            .grads()
            .map(|(_, g)| {
                g.to_kind(Kind::Float)
                    .square()
                    .sum(Kind::Float)
                    .double_value(&[])
            })
            .sum();
        sq.sqrt()
    }

    /// Clips to `max_norm` as `torch.nn.utils.clip_grad_norm_` does; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let norm = self.grad_norm();
        if max_norm > 0.0 && norm.is_finite() {
            let coef = max_norm / (norm + 1e-6);
            if coef < 1.0 {
                self.scale_grads(coef);
            }
        }
        norm
    }

    /// One AdamW update with learning rate `lr` and decoupled weight decay `wd`.
    pub fn step(&mut self, lr: f64, wd: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let step_size = lr / bc1;
        let bc2_sqrt = bc2.sqrt();
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.var.grad();
                if !g.defined() {
                    continue;
                }
                let g = g.to_kind(Kind::Float);
                let mut target = match &p.master {
                    Some(m) => m.shallow_clone(),
                    None => p.var.shallow_clone(),
                };
                if p.decay && wd != 0.0 {
                    let _ = target.g_mul_scalar_(1.0 - lr * wd);
                }
                let _ = p.exp_avg.g_mul_scalar_(b1);
                let _ = p.exp_avg.g_add_(&(&g * (1.0 - b1)));
                let _ = p.exp_avg_sq.g_mul_scalar_(b2);
                let _ = p.exp_avg_sq.g_add_(&(&g * &g * (1.0 - b2)));
                let denom = p.exp_avg_sq.sqrt() / bc2_sqrt + eps;
                let _ = target.g_add_(&(&p.exp_avg / denom * (-step_size)));
                if p.master.is_some() {
                    p.var.copy_(&target);
                }
            }
        });
    }

    /// The state to save: moments and master weights, by parameter name.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for p in &self.params {
            out.push((format!("exp_avg.{}", p.name), p.exp_avg.shallow_clone()));
            out.push((
                format!("exp_avg_sq.{}", p.name),
                p.exp_avg_sq.shallow_clone(),
            ));
            if let Some(m) = &p.master {
                out.push((format!("master.{}", p.name), m.shallow_clone()));
            }
        }
        out
    }

    /// Restores what `state` saved (and `steps`); every parameter must be there.
    pub fn load_state(
        &mut self,
        saved: &std::collections::HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        tch::no_grad(|| -> Result<()> {
            for p in &mut self.params {
                let get = |k: String| {
                    saved
                        .get(&k)
                        .ok_or_else(|| Error::Invalid(format!("optimizer state has no {k}")))
                };
                p.exp_avg.copy_(get(format!("exp_avg.{}", p.name))?);
                p.exp_avg_sq.copy_(get(format!("exp_avg_sq.{}", p.name))?);
                if let Some(m) = &mut p.master {
                    m.copy_(get(format!("master.{}", p.name))?);
                }
            }
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }
}

/// Dynamic loss scaling for fp16: scale up every `interval` good steps, halve and skip the
/// step on overflow (as `torch.amp.GradScaler`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub good_steps: u64,
    pub interval: u64,
}

impl LossScaler {
    pub fn new() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
            interval: 2000,
        }
    }

    /// After an unscaled gradient norm is known: whether to take the step.
    pub fn update(&mut self, grad_norm: f64) -> bool {
        if !grad_norm.is_finite() {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
            return false;
        }
        self.good_steps += 1;
        if self.good_steps >= self.interval {
            self.scale *= 2.0;
            self.good_steps = 0;
        }
        true
    }
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new()
    }
}
