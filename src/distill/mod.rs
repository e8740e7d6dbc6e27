//! Distillation: recipes (and, to come, losses, the trainer, checkpoints).

pub mod losses;
pub mod optim;
pub mod recipe;
pub mod schedule;
