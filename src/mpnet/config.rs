//! MPNet's `config.json` (transformers/models/mpnet/configuration_mpnet.py): the fields the
//! encoder needs, checked before any weight is read.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bert::config::first_non_positive;
use crate::bert::Activation;
use crate::error::{Error, Result};

/// transformers' MPNet always buckets relative positions into 32 buckets up to a distance of
/// 128 (`compute_position_bias`'s defaults), whatever the config says.
pub const BUCKETS: i64 = 32;
pub const MAX_DISTANCE: i64 = 128;

#[derive(Debug, Clone, Deserialize)]
pub struct MpnetConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
    pub max_position_embeddings: i64,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "buckets")]
    pub relative_attention_num_buckets: i64,
    #[serde(default = "pad")]
    pub pad_token_id: i64,
    /// Where it was read from (errors name it).
    #[serde(skip)]
    pub path: PathBuf,
}

fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-5
}
fn buckets() -> i64 {
    BUCKETS
}
fn pad() -> i64 {
    1
}

impl MpnetConfig {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::error::read_to_string(path)?;
        let mut cfg: MpnetConfig = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            field: "(file)".into(),
            msg: format!("not an MPNet config: {e}"),
        })?;
        cfg.path = path.to_path_buf();
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Error::Config {
            path: self.path.clone(),
            field: field.into(),
            msg,
        };
        if let Some(t) = &self.model_type {
            if t != "mpnet" {
                return Err(bad("model_type", format!("\"{t}\" is not \"mpnet\"")));
            }
        }
        if let Some((field, msg)) = first_non_positive(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ]) {
            return Err(bad(&field, msg));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if self.relative_attention_num_buckets < BUCKETS {
            return Err(bad(
                "relative_attention_num_buckets",
                format!(
                    "{} is fewer than the {BUCKETS} buckets transformers' MPNet looks up",
                    self.relative_attention_num_buckets
                ),
            ));
        }
        if !(0..self.vocab_size).contains(&self.pad_token_id) {
            return Err(bad(
                "pad_token_id",
                format!("{} is outside the vocabulary", self.pad_token_id),
            ));
        }
        // Positions start after the padding id (RoBERTa-style).
        if self.max_position_embeddings <= self.pad_token_id + 1 {
            return Err(bad(
                "max_position_embeddings",
                format!(
                    "{} leaves no position after the padding id {}",
                    self.max_position_embeddings, self.pad_token_id
                ),
            ));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(bad("layer_norm_eps", "must be positive".into()));
        }
        self.activation()?;
        Ok(())
    }

    pub fn activation(&self) -> Result<Activation> {
        Activation::parse(&self.hidden_act).ok_or_else(|| Error::Config {
            path: self.path.clone(),
            field: "hidden_act".into(),
            msg: format!(
                "\"{}\" is not supported (gelu, gelu_new, relu, silu)",
                self.hidden_act
            ),
        })
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// The longest input: positions run from pad_token_id + 1.
    pub fn max_len(&self) -> i64 {
        self.max_position_embeddings - self.pad_token_id - 1
    }
}
