//! Pruning: the vocabulary (`vocab`, TextPruner's vocabulary pruning) and the structure
//! (`structure`: attention heads, feed-forward neurons and hidden dimensions chosen by their
//! measured importance; `shape`: the smaller model those choices make, and its padding back
//! to a plain BERT for transformers).

pub mod shape;
pub mod structure;
mod vocab;

pub use vocab::{prune, PruneOptions, PruneSummary};
