//! destila: knowledge distillation for BERT encoders on libtorch.
//! See ARCHITECTURE.md for the path of the data and the module map.

pub mod bench;
pub mod bert;
pub mod data;
pub mod device;
pub mod digest;
pub mod dist;
pub mod distill;
pub mod doctor;
pub mod embed;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod export;
pub mod inspect;
pub mod mpnet;
pub mod onnx;
pub mod output;
pub mod plot;
pub mod prune;
pub mod sentence;
pub mod temp;
pub mod timing;
pub mod tokenize;

pub use error::{Error, Result};
