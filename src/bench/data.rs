//! The data pipeline's throughput: tokenisation into a fresh shard cache, then batches.

use std::time::Instant;

use crate::error::Result;
use crate::timing::peak_rss_bytes;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DataResult {
    pub text_bytes: u64,
    pub tokens: u64,
    pub tokenise_seconds: f64,
    pub tokenise_mb_per_s: f64,
    pub batch_size: usize,
    pub max_seq_len: usize,
    pub batches: usize,
    pub batch_seconds: f64,
    pub batches_per_s: f64,
    pub sequences_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// Tokenisation throughput (a fresh shard cache under `scratch`) and batches per second
/// from that cache, for a recipe's training text.
pub fn data_throughput(
    recipe: &crate::distill::recipe::Recipe,
    scratch: &std::path::Path,
    batches: usize,
) -> Result<DataResult> {
    let tok = recipe.tokenizer()?;
    let mut cfg = recipe.data.clone();
    cfg.cache_dir = scratch.to_path_buf();
    cfg.validation.clear();
    cfg.validation_fraction = 0.0;
    let start = Instant::now();
    let sets = crate::data::prepare(&cfg, &tok)?;
    let tokenise_seconds = start.elapsed().as_secs_f64();
    let m = &sets.train.corpus.manifest;
    let (text_bytes, tokens) = (m.text_bytes, m.tokens);
    let bs = recipe.training.batch_size;
    let opts = crate::data::loader_options(&cfg, &tok, bs, recipe.seed);
    let mut loader = crate::data::Loader::new(
        sets.train.corpus.clone(),
        sets.train.docs.clone(),
        opts,
        Default::default(),
    );
    let start = Instant::now();
    for _ in 0..batches {
        if loader.next_batch().is_none() {
            return Err(crate::Error::Invalid(
                "the corpus cannot fill one batch".into(),
            ));
        }
    }
    let batch_seconds = start.elapsed().as_secs_f64();
    Ok(DataResult {
        text_bytes,
        tokens,
        tokenise_seconds,
        tokenise_mb_per_s: text_bytes as f64 / 1e6 / tokenise_seconds,
        batch_size: bs,
        max_seq_len: cfg.max_seq_len,
        batches,
        batch_seconds,
        batches_per_s: batches as f64 / batch_seconds,
        sequences_per_s: (batches * bs) as f64 / batch_seconds,
        peak_rss_bytes: peak_rss_bytes(),
    })
}
