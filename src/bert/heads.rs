//! Mirrors `BertPooler`, `BertLMPredictionHead` (with its `BertPredictionHeadTransform`) and
//! `BertOnlyNSPHead` in transformers/models/bert/modeling_bert.py.

use tch::{nn, Tensor};

use super::config::{Activation, BertConfig};
use super::init;
use super::linear::Linear;

/// `bert.pooler`: dense + tanh on the first token.
#[derive(Debug)]
pub struct Pooler {
    dense: Linear,
}

impl Pooler {
    pub fn new(p: &nn::Path, cfg: &BertConfig) -> Self {
        Pooler {
            dense: init::linear(p / "dense", cfg.hidden_size, cfg.hidden_size, cfg),
        }
    }

    pub fn forward(&self, last_hidden: &Tensor) -> Tensor {
        last_hidden.select(1, 0).apply(&self.dense).tanh()
    }
}

/// `cls.predictions`: transform (dense, activation, LayerNorm), then the decoder, whose
/// weight is the word-embedding matrix unless `tie_word_embeddings` is false, plus a bias.
#[derive(Debug)]
pub struct MlmHead {
    dense: Linear,
    layer_norm: nn::LayerNorm,
    activation: Activation,
    decoder: Tensor,
    bias: Tensor,
}

impl MlmHead {
    /// `p` is `cls.predictions`; `word_embeddings` is the tied decoder weight [vocab, hidden].
    pub fn new(p: &nn::Path, cfg: &BertConfig, word_embeddings: &Tensor) -> Self {
        let t = p / "transform";
        let decoder = if cfg.tie_word_embeddings {
            word_embeddings.shallow_clone()
        } else {
            p.sub("decoder").var(
                "weight",
                &[cfg.vocab_size, cfg.hidden_size],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: cfg.initializer_range,
                },
            )
        };
        MlmHead {
            dense: init::linear(&t / "dense", cfg.hidden_size, cfg.hidden_size, cfg),
            layer_norm: init::layer_norm(&(&t / "LayerNorm"), cfg),
            activation: cfg.activation(),
            decoder,
            bias: p.zeros("bias", &[cfg.vocab_size]),
        }
    }

    /// `hidden`: [..., hidden] → logits [..., vocab].
    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        let h = self
            .activation
            .apply(&hidden.apply(&self.dense))
            .apply(&self.layer_norm);
        h.linear(&self.decoder, Some(&self.bias))
    }
}

/// `cls.seq_relationship`: two logits (IsNext, NotNext) from the pooled output.
#[derive(Debug)]
pub struct NspHead {
    seq_relationship: Linear,
}

impl NspHead {
    pub fn new(p: &nn::Path, cfg: &BertConfig) -> Self {
        NspHead {
            seq_relationship: init::linear(p / "seq_relationship", cfg.hidden_size, 2, cfg),
        }
    }

    pub fn forward(&self, pooled: &Tensor) -> Tensor {
        pooled.apply(&self.seq_relationship)
    }
}
