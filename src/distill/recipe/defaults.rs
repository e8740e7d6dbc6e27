//! Recipe defaults: the value of every field a recipe leaves out.

use std::path::PathBuf;

use super::*;

pub(super) fn d_seed() -> u64 {
    42
}
pub(super) fn d_batch() -> usize {
    32
}
pub(super) fn d_output() -> PathBuf {
    PathBuf::from("runs/out")
}
pub(super) fn d_auto() -> String {
    "auto".into()
}
pub(super) fn d_fit_steps() -> u64 {
    200
}
pub(super) fn d_fit_lr() -> f64 {
    1e-3
}
pub(super) fn d_zero() -> Scheduled {
    Scheduled::Constant(0.0)
}
pub(super) fn d_temperature() -> Scheduled {
    Scheduled::Constant(1.0)
}
pub(super) fn d_lr() -> f64 {
    5e-4
}
pub(super) fn d_wd() -> f64 {
    0.01
}
pub(super) fn d_betas() -> (f64, f64) {
    (0.9, 0.999)
}
pub(super) fn d_eps() -> f64 {
    1e-6
}
pub(super) fn d_clip() -> f64 {
    1.0
}
pub(super) fn d_steps() -> u64 {
    1000
}
pub(super) fn d_accum() -> usize {
    1
}
pub(super) fn d_eval_batches() -> usize {
    20
}
pub(super) fn d_keep() -> usize {
    2
}
pub(super) fn d_log_every() -> u64 {
    10
}
pub(super) fn d_mlm_probability() -> f64 {
    0.15
}
pub(super) fn d_adapt_steps() -> u64 {
    1000
}
pub(super) fn d_adapt_lr() -> f64 {
    1e-4
}
pub(super) fn d_preserve() -> f64 {
    1.0
}
pub(super) fn d_adapt_cache() -> PathBuf {
    PathBuf::from(".cache/adapted")
}

impl Default for AdaptSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}
pub(super) fn d_fit_batch() -> usize {
    32
}
pub(super) fn d_decoder() -> Decoder {
    Decoder::Tied
}
pub(super) fn d_heads_cache() -> PathBuf {
    PathBuf::from(".cache/heads")
}

impl Default for HeadFit {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}
pub(super) fn d_top_k() -> usize {
    32
}
pub(super) fn d_pooled_cache() -> PathBuf {
    PathBuf::from(".cache/pooled")
}
pub(super) fn is_d_pooled_cache(p: &PathBuf) -> bool {
    *p == d_pooled_cache()
}
pub(super) fn d_heads_policy() -> HeadPolicy {
    HeadPolicy::Fail
}
pub(super) fn d_init() -> Init {
    Init::Random
}
pub(super) fn d_masked() -> KdPositions {
    KdPositions::Masked
}
pub(super) fn d_view() -> View {
    View::Masked
}

impl Default for LossWeight {
    fn default() -> Self {
        LossWeight {
            weight: d_zero(),
            layers: None,
            positions: KdPositions::Masked,
            view: View::Masked,
            form: None,
            temperature: None,
        }
    }
}

impl Default for LossSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}
pub(super) fn d_schedule() -> LrSchedule {
    LrSchedule::Linear
}

impl Default for OptimizerSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

impl Default for TrainingSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}
pub(super) fn d_job() -> Job {
    Job::Distill
}

pub(super) fn d_one() -> usize {
    1
}
pub(super) fn d_prune_sentences() -> usize {
    256
}
pub(super) fn d_prune_probes() -> usize {
    4
}

pub(super) fn d_weight() -> f64 {
    1.0
}
pub(super) fn is_d_weight(x: &f64) -> bool {
    *x == 1.0
}
