//! The pretraining data pipeline: raw text → documents → sentences → token ids (shard
//! cache) → NSP examples → masked, padded batches.

pub mod batch;
pub mod config;
pub mod corpus;
pub mod examples;
pub mod masking;
pub mod preview;
pub mod sentences;
pub mod shards;
pub mod stats;

use std::sync::Arc;

pub use batch::{Batch, Cursor, Loader, LoaderOptions, Masked, Targets};
pub use config::{DataConfig, ExampleFormat};
pub use shards::Corpus;

use crate::error::Result;
use crate::tokenize::BertTokenizer;

/// A split: its corpus (shared when the split is a fraction of the training text) and the
/// documents in it, ascending.
#[derive(Clone)]
pub struct Split {
    pub corpus: Arc<Corpus>,
    pub docs: Vec<u32>,
}

pub struct Datasets {
    pub train: Split,
    pub validation: Option<Split>,
}

/// Whether document `doc` falls in the validation fraction (a fixed hash of its index, so
/// the split does not move with the seed or between runs).
fn held_out(doc: u32, fraction: f64) -> bool {
    let mut z = (doc as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z as f64 / u64::MAX as f64) < fraction
}

/// Opens (building when needed) the shard caches of the training and validation text.
pub fn prepare(cfg: &DataConfig, tokenizer: &BertTokenizer) -> Result<Datasets> {
    let text = cfg.text_options();
    let train = Arc::new(shards::open_or_build(
        &cfg.train,
        tokenizer,
        &text,
        &cfg.cache_dir,
        "train",
    )?);
    let all: Vec<u32> = (0..train.num_documents() as u32).collect();
    if !cfg.validation.is_empty() {
        let val = Arc::new(shards::open_or_build(
            &cfg.validation,
            tokenizer,
            &text,
            &cfg.cache_dir,
            "validation",
        )?);
        let docs = (0..val.num_documents() as u32).collect();
        return Ok(Datasets {
            train: Split {
                corpus: train,
                docs: all,
            },
            validation: Some(Split { corpus: val, docs }),
        });
    }
    if cfg.validation_fraction > 0.0 {
        let (val, tr): (Vec<u32>, Vec<u32>) = all
            .into_iter()
            .partition(|&d| held_out(d, cfg.validation_fraction));
        if tr.is_empty() || val.is_empty() {
            return Err(crate::Error::Invalid(format!(
                "validation_fraction {} leaves {} training and {} validation documents",
                cfg.validation_fraction,
                tr.len(),
                val.len()
            )));
        }
        return Ok(Datasets {
            train: Split {
                corpus: train.clone(),
                docs: tr,
            },
            validation: Some(Split {
                corpus: train,
                docs: val,
            }),
        });
    }
    Ok(Datasets {
        train: Split {
            corpus: train,
            docs: all,
        },
        validation: None,
    })
}

/// Loader options from the recipe's data section and the tokenizer.
pub fn loader_options(
    cfg: &DataConfig,
    tokenizer: &BertTokenizer,
    batch_size: usize,
    seed: u64,
) -> LoaderOptions {
    LoaderOptions {
        examples: examples::ExampleParams {
            max_seq_len: cfg.max_seq_len,
            short_seq_prob: cfg.short_seq_prob,
            nsp_probability: cfg.nsp_probability,
            format: cfg.examples,
        },
        masking: masking::MaskParams {
            mlm_probability: cfg.mlm_probability,
            max_predictions: cfg.max_predictions,
            whole_word: cfg.whole_word_masking,
            mask_id: tokenizer.mask_id,
            vocab_size: tokenizer.vocab_size() as u32,
            special_ids: tokenizer.special_ids().to_vec(),
            continuation: if cfg.whole_word_masking {
                tokenizer.continuation_table()
            } else {
                Vec::new()
            },
        },
        batch_size,
        shuffle_buffer: cfg.shuffle_buffer,
        length_bucketing: cfg.length_bucketing,
        seed,
        shuffle: true,
        rank: 0,
        world: 1,
        cls_id: tokenizer.cls_id,
        sep_id: tokenizer.sep_id,
        pad_id: tokenizer.pad_id,
    }
}
