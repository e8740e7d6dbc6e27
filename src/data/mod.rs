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
    held_out_hash(doc) < fraction
}

/// A fixed hash of a document index, uniform in [0, 1].
fn held_out_hash(doc: u32) -> f64 {
    let mut z = (doc as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z as f64 / u64::MAX as f64
}

/// The training documents with `cfg.weights` applied: each `train` entry's documents
/// repeated (or thinned) so that its share of the tokens is its weight's share. A fraction
/// of a repetition is decided per document by a fixed hash, so the list does not move with
/// the seed. Sorted, so a document repeated k times is drawn k times as often.
fn weighted(corpus: &Corpus, docs: Vec<u32>, cfg: &DataConfig) -> Result<Vec<u32>> {
    if cfg.weights.is_empty() {
        return Ok(docs);
    }
    // Which entry each file came from, then each document (files' documents are contiguous).
    let mut owner: std::collections::HashMap<String, usize> = Default::default();
    for (i, pattern) in cfg.train.iter().enumerate() {
        for f in corpus::expand(std::slice::from_ref(pattern))? {
            let abs = std::fs::canonicalize(&f).map_err(|e| crate::Error::io(&f, e))?;
            owner.entry(abs.display().to_string()).or_insert(i);
        }
    }
    let m = &corpus.manifest;
    let counted: u64 = m.file_documents.iter().sum();
    if m.file_documents.len() != m.files.len() || counted != corpus.num_documents() as u64 {
        return Err(crate::Error::Invalid(format!(
            "{}: the shard cache's per-file document counts are missing or do not add up (delete it to rebuild)",
            corpus.dir.display()
        )));
    }
    let mut source_of_doc = Vec::with_capacity(corpus.num_documents());
    for (f, &n) in m.files.iter().zip(&m.file_documents) {
        let s = owner.get(&f.path).copied().unwrap_or(0);
        source_of_doc.extend(std::iter::repeat_n(s, n as usize));
    }
    let tokens_of = |d: u32| -> f64 {
        (0..corpus.num_sentences(d as usize))
            .map(|i| corpus.sentence_len(d as usize, i) as f64)
            .sum()
    };
    let k = cfg.train.len();
    let mut tokens = vec![0.0; k];
    for &d in &docs {
        tokens[source_of_doc[d as usize]] += tokens_of(d);
    }
    let total: f64 = tokens.iter().sum();
    let wsum: f64 = cfg.weights.iter().sum();
    for (i, t) in tokens.iter().enumerate() {
        if *t == 0.0 && cfg.weights[i] > 0.0 {
            return Err(crate::Error::Invalid(format!(
                "data.train[{i}] ({}) has no training document, but data.weights[{i}] is {}",
                cfg.train[i], cfg.weights[i]
            )));
        }
    }
    // Repetitions per document of each entry: its target tokens over its tokens.
    let reps: Vec<f64> = (0..k)
        .map(|i| {
            if tokens[i] == 0.0 {
                0.0
            } else {
                total * cfg.weights[i] / wsum / tokens[i]
            }
        })
        .collect();
    let mut out = Vec::new();
    for d in docs {
        let r = reps[source_of_doc[d as usize]];
        let whole = r.floor();
        // Salted, so that the choice is independent of the validation split's hash.
        let extra = (held_out_hash(d ^ 0x5BD1_E995) < r - whole) as usize;
        out.extend(std::iter::repeat_n(d, whole as usize + extra));
    }
    if out.is_empty() {
        return Err(crate::Error::Invalid(
            "data.weights leave no training document".into(),
        ));
    }
    Ok(out)
}

/// Opens (building when needed) the shard caches of the training and validation text.
pub fn prepare(cfg: &DataConfig, tokenizer: &BertTokenizer) -> Result<Datasets> {
    let mut sets = prepare_unweighted(cfg, tokenizer)?;
    let docs = std::mem::take(&mut sets.train.docs);
    sets.train.docs = weighted(&sets.train.corpus, docs, cfg)?;
    Ok(sets)
}

fn prepare_unweighted(cfg: &DataConfig, tokenizer: &BertTokenizer) -> Result<Datasets> {
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

/// The seed of every held-out loader (validation batches, evaluation, benchmarks), so that
/// they draw the same examples whatever the run's seed.
pub const HELD_OUT_SEED: u64 = 1234;

/// A loader over held-out text: in order (no shuffle), its pairs and masks drawn with
/// [`HELD_OUT_SEED`], from the start.
pub fn held_out_loader(
    corpus: std::sync::Arc<Corpus>,
    docs: Vec<u32>,
    mut opts: LoaderOptions,
) -> Loader {
    opts.shuffle = false;
    opts.seed = HELD_OUT_SEED;
    Loader::new(corpus, docs, opts, Cursor::default())
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
