//! BERT on libtorch, numerically identical to Hugging Face `transformers`.

pub mod attention;
pub mod checkpoint;
pub mod config;
pub mod embeddings;
pub mod heads;
mod init;
pub mod layer;
pub mod model;

pub use attention::AttentionDetail;
pub use checkpoint::{load, save, LoadOptions, LoadReport, Model};
pub use config::{Activation, BertConfig};
pub use model::{Bert, BertOutput, ForwardOptions, Heads, Inputs, MlmPositions};
