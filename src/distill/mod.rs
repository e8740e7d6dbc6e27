//! Distillation: recipes, losses, the trainer, checkpoints, the teacher-target cache.

pub mod checkpoint;
pub mod losses;
pub mod metrics;
pub mod optim;
pub mod recipe;
pub mod schedule;
pub mod setup;
pub mod step;
pub mod student;
pub mod targets;
pub mod teacher;
pub mod text_teacher;
pub mod trainer;
