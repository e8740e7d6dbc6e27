//! Mirrors `BertSelfAttention` + `BertSelfOutput` (transformers/models/bert/modeling_bert.py).
//!
//! Two paths with the same numbers: when the caller asks for the attention internals
//! (distillation losses need the pre-softmax scores, the probabilities and the values) the
//! product is spelt out; otherwise libtorch's fused `scaled_dot_product_attention` runs.

use tch::{nn, Kind, Tensor};

use super::config::BertConfig;
use super::init;
use super::linear::Linear;

/// One layer's attention internals, every tensor [batch, heads, len, ...].
#[derive(Debug)]
pub struct AttentionDetail {
    /// q·kᵀ/√d before the padding mask is added: [b, h, len, len].
    pub scores: Tensor,
    /// softmax(scores + mask), before dropout: [b, h, len, len].
    pub probs: Tensor,
    /// Per-head queries, keys and values: [b, h, len, head_dim].
    pub queries: Tensor,
    pub keys: Tensor,
    pub values: Tensor,
}

#[derive(Debug)]
pub struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    dense: Linear,
    layer_norm: nn::LayerNorm,
    heads: i64,
    head_dim: i64,
    attention_dropout: f64,
    hidden_dropout: f64,
}

impl Attention {
    /// The four dense layers (query, key, value, output).
    pub fn linears(&self) -> [&Linear; 4] {
        [&self.query, &self.key, &self.value, &self.dense]
    }

    /// `p` is `…layer.{layer}.attention`; the layer's heads are `cfg.heads_of(layer)` (fewer
    /// than `num_attention_heads` in a structurally pruned model), each `head_dim()` wide.
    pub fn new(p: &nn::Path, cfg: &BertConfig, layer: usize) -> Self {
        let h = cfg.hidden_size;
        let heads = cfg.heads_of(layer);
        let inner = heads * cfg.head_dim();
        let s = p / "self";
        let o = p / "output";
        Attention {
            query: init::linear(&s / "query", h, inner, cfg),
            key: init::linear(&s / "key", h, inner, cfg),
            value: init::linear(&s / "value", h, inner, cfg),
            dense: init::linear(&o / "dense", inner, h, cfg),
            layer_norm: init::layer_norm(&(&o / "LayerNorm"), cfg),
            heads,
            head_dim: cfg.head_dim(),
            attention_dropout: cfg.attention_probs_dropout_prob,
            hidden_dropout: cfg.hidden_dropout_prob,
        }
    }

    fn split_heads(&self, xs: Tensor, b: i64, len: i64) -> Tensor {
        xs.view([b, len, self.heads, self.head_dim]).transpose(1, 2)
    }

    /// `xs`: [b, len, hidden]; `mask`: additive [b, 1, 1, len] (0 keep, very negative drop).
    pub fn forward(
        &self,
        xs: &Tensor,
        mask: &Tensor,
        detail: bool,
        train: bool,
    ) -> (Tensor, Option<AttentionDetail>) {
        let (b, len, _) = xs.size3().expect("hidden states are [batch, len, hidden]");
        let q = self.split_heads(xs.apply(&self.query), b, len);
        let k = self.split_heads(xs.apply(&self.key), b, len);
        let v = self.split_heads(xs.apply(&self.value), b, len);
        let p_drop = if train { self.attention_dropout } else { 0.0 };
        let (context, detail) = if detail {
            let scores = q.matmul(&k.transpose(-1, -2)) / (self.head_dim as f64).sqrt();
            let probs = (&scores + mask).softmax(-1, scores.kind());
            let context = probs.dropout(p_drop, train).matmul(&v);
            let d = AttentionDetail {
                scores,
                probs,
                queries: q,
                keys: k,
                values: v,
            };
            (context, Some(d))
        } else {
            let context = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                Some(mask.to_kind(q.kind())),
                p_drop,
                false,
                None,
                false,
            );
            (context, None)
        };
        let context =
            context
                .transpose(1, 2)
                .contiguous()
                .view([b, len, self.heads * self.head_dim]);
        let out = context
            .apply(&self.dense)
            .dropout(self.hidden_dropout, train);
        ((out + xs).apply(&self.layer_norm), detail)
    }
}

/// The additive mask HF builds from a 0/1 attention mask: 0 where kept, the dtype's lowest
/// value where padded; shape [b, 1, 1, len].
pub fn additive_mask(attention_mask: &Tensor, kind: Kind) -> Tensor {
    let lowest = match kind {
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        Kind::Double => f64::MIN,
        _ => f32::MIN as f64,
    };
    let keep = attention_mask.to_kind(kind).unsqueeze(1).unsqueeze(1);
    (keep.ones_like() - keep) * lowest
}
