//! Comparing embeddings: the static-versus-contextual contrast of the seed's walkthrough.

pub mod compare;
pub mod contrast;
pub mod stats;
