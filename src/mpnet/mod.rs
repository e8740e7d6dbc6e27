//! MPNet on libtorch (`MPNetModel` in transformers), as a teacher beside BERT: the encoder of
//! sentence-transformers' all-mpnet-base-v2. Inference only; students stay BERT.

pub mod config;
pub mod model;

pub use config::MpnetConfig;
pub use model::{load, Mpnet, MpnetOutput};
