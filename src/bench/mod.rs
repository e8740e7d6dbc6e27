//! Benchmarks: forward throughput, one trainer step, the data pipeline, top-k targets, and
//! teacher against student. Timing helpers are in `crate::timing` (the trainer uses them
//! too); the benchmarks depend on the library, never the other way round.

pub mod compare;
pub mod data;
pub mod forward;
pub mod ladder;
pub mod step;
pub mod topk;

pub use compare::{compare, CompareReport, REPORT_FILES};
pub use data::{data_throughput, DataResult};
pub use forward::{check_shape, forward_throughput, ForwardBench, ForwardResult, MlmMode};
pub use step::{bench_step, StepBench, StepResult};
pub use topk::{topk_gap, TopkRow};
