//! Mirrors `BertLayer` = attention, `BertIntermediate` (dense + activation) and `BertOutput`
//! (dense, dropout, residual, LayerNorm) in transformers/models/bert/modeling_bert.py.

use tch::{nn, Tensor};

use super::attention::{Attention, AttentionDetail};
use super::config::{Activation, BertConfig};
use super::init;
use super::linear::Linear;

#[derive(Debug)]
pub struct Layer {
    attention: Attention,
    intermediate: Linear,
    output: Linear,
    layer_norm: nn::LayerNorm,
    activation: Activation,
    dropout: f64,
}

impl Layer {
    /// The layer's six dense layers.
    pub fn linears(&self) -> Vec<&Linear> {
        let mut v = self.attention.linears().to_vec();
        v.extend([&self.intermediate, &self.output]);
        v
    }

    /// `p` is `bert.encoder.layer.{layer}`.
    pub fn new(p: &nn::Path, cfg: &BertConfig, layer: usize) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_of(layer));
        Layer {
            attention: Attention::new(&(p / "attention"), cfg, layer),
            intermediate: init::linear(p / "intermediate" / "dense", h, i, cfg),
            output: init::linear(p / "output" / "dense", i, h, cfg),
            layer_norm: init::layer_norm(&(p / "output" / "LayerNorm"), cfg),
            activation: cfg.activation(),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    pub fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        detail: bool,
        train: bool,
    ) -> (Tensor, Option<AttentionDetail>) {
        let (attended, detail) = self.attention.forward(xs, mask, detail, train);
        let inner = self.activation.apply(&attended.apply(&self.intermediate));
        let out = inner.apply(&self.output).dropout(self.dropout, train);
        ((out + attended).apply(&self.layer_norm), detail)
    }
}
