//! Learning-rate schedules as in `transformers.get_*_schedule_with_warmup`: linear warmup
//! from 0, then constant, linear decay to 0, or cosine decay to 0 at the last step.

use super::recipe::LrSchedule;

/// Multiplier of the base learning rate for optimizer step `step` (0-based) of `total`.
pub fn lr_factor(schedule: LrSchedule, step: u64, warmup: u64, total: u64) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    match schedule {
        LrSchedule::Constant => 1.0,
        LrSchedule::Linear => (1.0 - progress).max(0.0),
        LrSchedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}
