//! Mirrors `MPNetModel` (transformers/models/mpnet/modeling_mpnet.py) for inference: word
//! and RoBERTa-style position embeddings (positions count from the padding id + 1, padding
//! keeps the padding id's row), no token types; post-LayerNorm layers like BERT's, whose
//! attention scores get a learned bias per head and relative-position bucket, shared by every
//! layer. Parameter names are HF's, with or without the `mpnet.` prefix.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use super::config::{MpnetConfig, BUCKETS, MAX_DISTANCE};
use crate::bert::attention::additive_mask;
use crate::bert::weights::read_safetensors;
use crate::bert::Activation;
use crate::error::{Error, Result};

#[derive(Debug)]
struct Dense {
    w: Tensor,
    b: Tensor,
}

impl Dense {
    fn apply(&self, xs: &Tensor) -> Tensor {
        xs.linear(&self.w, Some(&self.b))
    }
}

#[derive(Debug)]
struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl Norm {
    fn apply(&self, xs: &Tensor) -> Tensor {
        let h = self.w.size()[0];
        xs.layer_norm([h], Some(&self.w), Some(&self.b), self.eps, false)
    }
}

#[derive(Debug)]
struct Layer {
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

/// What one forward pass returns, every tensor f32.
#[derive(Debug)]
pub struct MpnetOutput {
    /// The embeddings' output, then each layer's: [b, len, hidden] each.
    pub hidden_states: Vec<Tensor>,
    /// Each layer's attention probabilities [b, heads, len, len], when asked for.
    pub attentions: Option<Vec<Tensor>>,
    /// tanh(dense(first token)), when the checkpoint has a pooler.
    pub pooled: Option<Tensor>,
}

impl MpnetOutput {
    pub fn last_hidden_state(&self) -> &Tensor {
        self.hidden_states.last().expect("the embeddings at least")
    }
}

#[derive(Debug)]
pub struct Mpnet {
    config: MpnetConfig,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    embedding_norm: Norm,
    /// [buckets, heads].
    relative_attention_bias: Tensor,
    layers: Vec<Layer>,
    pooler: Option<Dense>,
    activation: Activation,
    device: Device,
}

/// The checkpoint's tensors by name, taken one at a time with their shapes checked; the
/// ones nobody takes are reported.
struct Weights {
    path: PathBuf,
    map: HashMap<String, Tensor>,
    device: Device,
}

impl Weights {
    fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self
            .map
            .remove(name)
            .ok_or_else(|| Error::checkpoint(&self.path, format!("tensor {name}: missing")))?;
        if t.size() != shape {
            return Err(Error::checkpoint(
                &self.path,
                format!(
                    "tensor {name}: shape {:?}, the config says {shape:?}",
                    t.size()
                ),
            ));
        }
        Ok(t.to_kind(Kind::Float).to_device(self.device))
    }

    fn dense(&mut self, name: &str, out: i64, inp: i64) -> Result<Dense> {
        Ok(Dense {
            w: self.take(&format!("{name}.weight"), &[out, inp])?,
            b: self.take(&format!("{name}.bias"), &[out])?,
        })
    }

    fn norm(&mut self, name: &str, h: i64, eps: f64) -> Result<Norm> {
        Ok(Norm {
            w: self.take(&format!("{name}.weight"), &[h])?,
            b: self.take(&format!("{name}.bias"), &[h])?,
            eps,
        })
    }
}

/// Loads an MPNet checkpoint folder: `config.json` and `model.safetensors`
/// (`MPNetModel`'s names, or `MPNetForMaskedLM`'s under `mpnet.`; an `lm_head` is left
/// unread). Any other tensor is an error, as is a missing one.
pub fn load(dir: impl AsRef<Path>, device: Device) -> Result<Mpnet> {
    let dir = dir.as_ref();
    let config = MpnetConfig::from_file(dir.join("config.json"))?;
    let path = dir.join("model.safetensors");
    if !path.is_file() {
        return Err(Error::checkpoint(
            dir,
            "no model.safetensors in this folder (MPNet checkpoints are read from safetensors)",
        ));
    }
    let mut map = HashMap::new();
    for (name, t) in read_safetensors(&path)? {
        let name = name.strip_prefix("mpnet.").unwrap_or(&name).to_string();
        if name.starts_with("lm_head.") || name == "embeddings.position_ids" {
            continue;
        }
        map.insert(name, t);
    }
    let mut w = Weights { path, map, device };
    let c = &config;
    let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
    let word_embeddings = w.take("embeddings.word_embeddings.weight", &[c.vocab_size, h])?;
    let position_embeddings = w.take(
        "embeddings.position_embeddings.weight",
        &[c.max_position_embeddings, h],
    )?;
    let embedding_norm = w.norm("embeddings.LayerNorm", h, eps)?;
    let relative_attention_bias = w.take(
        "encoder.relative_attention_bias.weight",
        &[c.relative_attention_num_buckets, c.num_attention_heads],
    )?;
    let mut layers = Vec::new();
    for l in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        layers.push(Layer {
            q: w.dense(&format!("{p}.attention.attn.q"), h, h)?,
            k: w.dense(&format!("{p}.attention.attn.k"), h, h)?,
            v: w.dense(&format!("{p}.attention.attn.v"), h, h)?,
            o: w.dense(&format!("{p}.attention.attn.o"), h, h)?,
            attention_norm: w.norm(&format!("{p}.attention.LayerNorm"), h, eps)?,
            intermediate: w.dense(&format!("{p}.intermediate.dense"), i, h)?,
            output: w.dense(&format!("{p}.output.dense"), h, i)?,
            output_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
        });
    }
    let pooler = if w.map.contains_key("pooler.dense.weight") {
        Some(w.dense("pooler.dense", h, h)?)
    } else {
        None
    };
    if let Some(extra) = w.map.keys().min() {
        return Err(Error::checkpoint(
            &w.path,
            format!(
                "tensor {extra}: not part of an MPNet encoder ({} unexpected tensors; a checkpoint of another architecture?)",
                w.map.len()
            ),
        ));
    }
    Ok(Mpnet {
        activation: config.activation()?,
        config,
        word_embeddings,
        position_embeddings,
        embedding_norm,
        relative_attention_bias,
        layers,
        pooler,
        device,
    })
}

impl Mpnet {
    pub fn config(&self) -> &MpnetConfig {
        &self.config
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// `compute_position_bias`: the bias [1, heads, len, len] added to every layer's scores,
    /// with transformers' bucketing (in f32, as transformers computes it, so that bucket
    /// edges fall the same way).
    fn position_bias(&self, len: i64) -> Tensor {
        let pos = Tensor::arange(len, (Kind::Int64, self.device));
        // n = -(memory - context) = context - memory.
        let n = pos.unsqueeze(1) - pos.unsqueeze(0);
        let half = BUCKETS / 2;
        let mut bucket = n.lt(0).to_kind(Kind::Int64) * half;
        let n = n.abs();
        let max_exact = half / 2;
        let large = (n.to_kind(Kind::Float) / max_exact as f64).log()
            / ((MAX_DISTANCE as f64) / (max_exact as f64)).ln()
            * (half - max_exact) as f64;
        let large = (large.to_kind(Kind::Int64) + max_exact).clamp_max(half - 1);
        bucket += n.where_self(&n.lt(max_exact), &large);
        let values = self
            .relative_attention_bias
            .index_select(0, &bucket.view([-1]));
        values.view([len, len, -1]).permute([2, 0, 1]).unsqueeze(0)
    }

    /// `input_ids`, `attention_mask`: [b, len] int64 (padding carries pad_token_id, as
    /// MPNet's tokenizer pads). `attentions`: also return each layer's probabilities.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        attentions: bool,
    ) -> Result<MpnetOutput> {
        let c = &self.config;
        let (b, len) = input_ids.size2().map_err(|_| {
            Error::Invalid(format!(
                "input_ids: shape {:?}, not [batch, len]",
                input_ids.size()
            ))
        })?;
        if attention_mask.size() != [b, len] {
            return Err(Error::Invalid(format!(
                "attention_mask: shape {:?}, input_ids are [{b}, {len}]",
                attention_mask.size()
            )));
        }
        if len > c.max_len() {
            return Err(Error::Invalid(format!(
                "input_ids: {len} tokens, the model takes at most {}",
                c.max_len()
            )));
        }
        let ids = input_ids.to_device(self.device);
        if b * len > 0 {
            let (lo, hi) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
            if lo < 0 || hi >= c.vocab_size {
                return Err(Error::Invalid(format!(
                    "input_ids: token id {} outside the vocabulary of {}",
                    if lo < 0 { lo } else { hi },
                    c.vocab_size
                )));
            }
        }
        // create_position_ids_from_input_ids: cumsum over non-padding tokens.
        let keep = ids.ne(c.pad_token_id).to_kind(Kind::Int64);
        let positions = keep.cumsum(1, Kind::Int64) * &keep + c.pad_token_id;
        let xs = self
            .word_embeddings
            .index_select(0, &ids.view([-1]))
            .view([b, len, -1])
            + self
                .position_embeddings
                .index_select(0, &positions.view([-1]))
                .view([b, len, -1]);
        let mut xs = self.embedding_norm.apply(&xs);
        let mask = additive_mask(&attention_mask.to_device(self.device), Kind::Float);
        let bias = self.position_bias(len);
        let (heads, d) = (c.num_attention_heads, c.head_dim());
        let split = |t: Tensor| t.view([b, len, heads, d]).transpose(1, 2);
        let mut hidden_states = vec![xs.shallow_clone()];
        let mut probs_all = attentions.then(Vec::new);
        for l in &self.layers {
            let q = split(l.q.apply(&xs));
            let k = split(l.k.apply(&xs));
            let v = split(l.v.apply(&xs));
            let scores = q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt() + &bias + &mask;
            let probs = scores.softmax(-1, Kind::Float);
            let context = probs
                .matmul(&v)
                .transpose(1, 2)
                .contiguous()
                .view([b, len, heads * d]);
            let attended = l.attention_norm.apply(&(l.o.apply(&context) + &xs));
            let inner = self.activation.apply(&l.intermediate.apply(&attended));
            xs = l.output_norm.apply(&(l.output.apply(&inner) + &attended));
            hidden_states.push(xs.shallow_clone());
            if let Some(p) = probs_all.as_mut() {
                p.push(probs);
            }
        }
        let pooled = self
            .pooler
            .as_ref()
            .map(|p| p.apply(&xs.select(1, 0)).tanh());
        Ok(MpnetOutput {
            hidden_states,
            attentions: probs_all,
            pooled,
        })
    }
}
