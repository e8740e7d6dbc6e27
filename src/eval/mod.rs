//! Comparing embeddings: teacher against student (and against the student's own start),
//! and the static-versus-contextual contrast of the seed's walkthrough.

pub mod baseline;
pub mod compare;
pub mod contrast;
pub mod stats;
