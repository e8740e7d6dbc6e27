//! The cache's format: what made it (`Key`, in `manifest.json`), per-split summaries, and
//! the index of which shard file holds which batch (`index.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::data::Datasets;
use crate::distill::recipe::{HeadPolicy, Recipe};
use crate::error::{Error, Result};

pub const VERSION: u32 = 1;

/// What a cache must agree on with the recipe that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// SHA-256 of the teacher's weights file.
    pub teacher_sha256: String,
    /// How the teacher got its heads (its own, or fitted with these settings).
    pub teacher_heads: String,
    /// The tokenizer's fingerprint (as in the shard cache).
    pub tokenizer: String,
    /// SHA-256 over the data: shard-cache fingerprints, data options, seed, batch size.
    pub data: String,
    /// What `data` is the digest of, so that a mismatch can name the field that differs
    /// (absent in caches made before it was kept).
    #[serde(default)]
    pub data_spec: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub key: Key,
    pub teacher: String,
    /// Slots per masked position: the teacher's top k logits, or (with `sample`) the
    /// distinct tokens of `sample` draws, stored as T·ln(count) (an unused slot: -60000).
    pub top_k: usize,
    /// Draws per masked position of a sampled cache (none: top k).
    #[serde(default)]
    pub sample: Option<usize>,
    pub pooled: bool,
    /// The KD temperature the tail masses were computed at (the recipe's, constant).
    pub temperature: f64,
    /// "int16" or "int32": the dtype of token ids and top-k ids.
    pub id_dtype: String,
    pub vocab_size: i64,
    pub hidden_size: i64,
    /// Examples per stored batch (the recipe's training.batch_size).
    pub batch_size: usize,
    pub splits: BTreeMap<String, SplitSummary>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SplitSummary {
    pub batches: u64,
    pub examples: u64,
    pub tokens: u64,
    pub masked: u64,
    /// Bytes of all its shard files.
    pub bytes: u64,
    /// Of which the top-k ids and logits.
    pub topk_bytes: u64,
}

impl SplitSummary {
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.max(1) as f64
    }
    pub fn topk_bytes_per_token(&self) -> f64 {
        self.topk_bytes as f64 / self.tokens.max(1) as f64
    }
}

/// Per split: for each shard file, the global batch numbers it holds, in file order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub splits: BTreeMap<String, Vec<ShardIndex>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardIndex {
    pub file: String,
    pub batches: Vec<u64>,
}

/// The key a recipe expects of its cache.
pub fn key(recipe: &Recipe, sets: &Datasets) -> Result<Key> {
    let t = recipe
        .teacher
        .as_ref()
        .ok_or_else(|| Error::config(&recipe.path, "teacher", "a target cache needs a teacher"))?;
    let mut data = serde_json::to_value(&recipe.data).expect("serialisable");
    if let Some(m) = data.as_object_mut() {
        m.remove("cache_dir");
    }
    let spec = serde_json::json!({
        "train": sets.train.corpus.manifest.fingerprint,
        "validation": sets.validation.as_ref().map(|v| v.corpus.manifest.fingerprint.clone()),
        "data": &data,
        "seed": recipe.seed,
        "batch_size": recipe.training.batch_size,
        "eval_batches": recipe.training.eval_batches,
    });
    let digest = sha2::Sha256::digest(spec.to_string().as_bytes());
    let data_spec = spec.clone();
    Ok(Key {
        teacher_sha256: crate::bert::weights::digest(&t.checkpoint)?,
        teacher_heads: match t.heads {
            HeadPolicy::Fit => {
                serde_json::json!({"fit": t.fit, "seed": recipe.seed, "data": data}).to_string()
            }
            HeadPolicy::Adapt => {
                serde_json::json!({"adapt": t.adapt, "seed": recipe.seed, "data": data}).to_string()
            }
            HeadPolicy::Fail => "the checkpoint's own".into(),
        },
        tokenizer: sets.train.corpus.manifest.tokenizer_fingerprint.clone(),
        data: digest.iter().map(|b| format!("{b:02x}")).collect(),
        data_spec,
    })
}
