//! Distillation: recipes (and, to come, losses, the trainer, checkpoints).

pub mod checkpoint;
pub mod losses;
pub mod metrics;
pub mod optim;
pub mod recipe;
pub mod schedule;
pub mod student;
pub mod trainer;
