//! BERT on libtorch, numerically identical to Hugging Face `transformers`.

pub mod attention;
pub mod config;
pub mod embeddings;
pub mod flops;
pub mod heads;
mod init;
pub mod layer;
pub mod linear;
pub mod model;
pub mod qlinear;
pub mod weights;

pub use attention::AttentionDetail;
pub use config::{Activation, BertConfig, BERT_MODEL_TYPES};
pub use flops::forward_flops;
pub use model::{Bert, BertOutput, ForwardOptions, Heads, Inputs, MlmPositions};
pub use weights::{load, save, LoadOptions, LoadReport, Model};
