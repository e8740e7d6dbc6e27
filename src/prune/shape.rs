//! The shapes structured pruning makes: `shrink` copies the kept units of a model (heads,
//! feed-forward neurons, hidden dimensions) into a smaller one, `pad` widens a pruned model
//! back to its nominal shape with zero units, which compute exactly nothing (a zero head's
//! values are zero, so is its context; a zero neuron's activation is 0 for every BERT
//! activation, and its output column is zero), so that transformers, which has no
//! per-layer widths, loads it and computes the same numbers.

use tch::{Device, Tensor};

use crate::bert::{BertConfig, Model};
use crate::error::{Error, Result};

/// The units a pruned model keeps, in the numbering of the model they are taken from,
/// ascending. `None`: all of them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Keep {
    /// Per layer, the heads kept.
    pub heads: Vec<Vec<i64>>,
    /// Per layer, the feed-forward neurons kept.
    pub ffn: Vec<Vec<i64>>,
    /// The hidden dimensions kept (the same in the embeddings and every layer).
    pub hidden: Vec<i64>,
}

impl Keep {
    /// Everything `cfg` has.
    pub fn all(cfg: &BertConfig) -> Keep {
        let layers = cfg.num_hidden_layers as usize;
        Keep {
            heads: (0..layers)
                .map(|l| (0..cfg.heads_of(l)).collect())
                .collect(),
            ffn: (0..layers)
                .map(|l| (0..cfg.intermediate_of(l)).collect())
                .collect(),
            hidden: (0..cfg.hidden_size).collect(),
        }
    }

    /// These units, in the numbering of `base`'s model, where `self` is numbered in a model
    /// that kept `base` of an earlier one (one round of pruning after another).
    pub fn through(&self, base: &Keep) -> Keep {
        let map = |inner: &[i64], outer: &[i64]| -> Vec<i64> {
            inner.iter().map(|&i| outer[i as usize]).collect()
        };
        let layers = |a: &[Vec<i64>], b: &[Vec<i64>]| -> Vec<Vec<i64>> {
            a.iter().zip(b).map(|(a, b)| map(a, b)).collect()
        };
        Keep {
            heads: layers(&self.heads, &base.heads),
            ffn: layers(&self.ffn, &base.ffn),
            hidden: map(&self.hidden, &base.hidden),
        }
    }

    /// Refuses units `cfg`'s model does not have (a hand-edited prune.json), or none of a
    /// kind in a layer.
    pub fn check(&self, cfg: &BertConfig) -> Result<()> {
        let layers = cfg.num_hidden_layers as usize;
        if self.heads.len() != layers || self.ffn.len() != layers {
            return Err(Error::Invalid(format!(
                "kept units for {} / {} layers, the model has {layers}",
                self.heads.len(),
                self.ffn.len()
            )));
        }
        let ok = |v: &[i64], n: i64| {
            !v.is_empty()
                && v.iter().all(|&i| (0..n).contains(&i))
                && v.windows(2).all(|w| w[0] < w[1])
        };
        for l in 0..layers {
            if !ok(&self.heads[l], cfg.heads_of(l)) || !ok(&self.ffn[l], cfg.intermediate_of(l)) {
                return Err(Error::Invalid(format!(
                    "kept heads or neurons of layer {l} are not ascending indices within its {} heads and {} neurons",
                    cfg.heads_of(l),
                    cfg.intermediate_of(l)
                )));
            }
        }
        let d = cfg.head_dim();
        if !ok(&self.hidden, cfg.hidden_size) || self.hidden.len() as i64 % d != 0 {
            return Err(Error::Invalid(format!(
                "kept hidden dimensions are not ascending indices within {}, a multiple of the head size {d}",
                cfg.hidden_size
            )));
        }
        Ok(())
    }

    /// The config of the model these units make from one of shape `cfg`.
    pub fn config(&self, cfg: &BertConfig) -> BertConfig {
        let d = cfg.head_dim();
        let hidden = self.hidden.len() as i64;
        // transformers derives the head size from hidden_size / num_attention_heads, so the
        // nominal head count follows the hidden size; each layer's own count is listed.
        let nominal_heads = hidden / d;
        let heads: Vec<i64> = self.heads.iter().map(|h| h.len() as i64).collect();
        let ffn: Vec<i64> = self.ffn.iter().map(|f| f.len() as i64).collect();
        let ffn_max = ffn.iter().copied().max().unwrap_or(cfg.intermediate_size);
        BertConfig {
            hidden_size: hidden,
            num_attention_heads: nominal_heads,
            intermediate_size: ffn_max,
            layer_heads: (heads.iter().any(|&h| h != nominal_heads)).then_some(heads),
            layer_intermediate_sizes: (ffn.iter().any(|&f| f != ffn_max)).then_some(ffn),
            ..cfg.clone()
        }
    }
}

/// Which of a tensor's axes a unit choice indexes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Axis {
    All,
    Hidden,
    /// The rows of the layer's kept heads (head_dim each).
    HeadRows,
    Ffn,
}

/// The axes of the variable `name` (HF names): what each of its dimensions is.
fn axes(name: &str) -> (Option<usize>, [Axis; 2]) {
    use Axis::*;
    if let Some(rest) = name.strip_prefix("bert.encoder.layer.") {
        let (l, part) = rest.split_once('.').expect("layer.N.part");
        let l: usize = l.parse().expect("layer index");
        let a = match part {
            "attention.self.query.weight"
            | "attention.self.key.weight"
            | "attention.self.value.weight" => [HeadRows, Hidden],
            "attention.self.query.bias"
            | "attention.self.key.bias"
            | "attention.self.value.bias" => [HeadRows, All],
            "attention.output.dense.weight" => [Hidden, HeadRows],
            "intermediate.dense.weight" => [Ffn, Hidden],
            "intermediate.dense.bias" => [Ffn, All],
            "output.dense.weight" => [Hidden, Ffn],
            // The output biases and the LayerNorms.
            _ => [Hidden, All],
        };
        return (Some(l), a);
    }
    let a = if name.ends_with("embeddings.weight")
        || name == "cls.predictions.decoder.weight"
        || name == "cls.seq_relationship.weight"
    {
        [All, Hidden]
    } else if name == "cls.predictions.bias"
        || name == "cls.predictions.decoder.bias"
        || name == "cls.seq_relationship.bias"
    {
        [All, All]
    } else {
        // The pooler's and the MLM transform's dense layers, their biases, the LayerNorms.
        [Hidden, Hidden]
    };
    (None, a)
}

/// The model that keeps `keep` of `model`'s units (its heads, pooler and MLM/NSP heads
/// included), on the model's device.
pub fn shrink(model: &Model, keep: &Keep) -> Result<Model> {
    let device = model.device();
    let cfg = model.config();
    keep.check(cfg)?;
    let d = cfg.head_dim();
    let new = keep.config(cfg);
    new.validate()
        .map_err(|(f, m)| Error::Invalid(format!("the pruned shape: {f}: {m}")))?;
    let out = Model::random(&new, model.bert.heads, device);
    let index = |l: Option<usize>, a: Axis| -> Option<Tensor> {
        let v: Vec<i64> = match a {
            Axis::All => return None,
            Axis::Hidden => keep.hidden.clone(),
            Axis::HeadRows => keep.heads[l.expect("a layer's")]
                .iter()
                .flat_map(|&h| h * d..(h + 1) * d)
                .collect(),
            Axis::Ffn => keep.ffn[l.expect("a layer's")].clone(),
        };
        Some(Tensor::from_slice(&v).to_device(device))
    };
    let old = model.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in out.vs.variables() {
            let src = old
                .get(&name)
                .ok_or_else(|| Error::Invalid(format!("the model has no tensor {name}")))?
                .shallow_clone();
            let (l, ax) = axes(&name);
            let mut t = src;
            for (dim, a) in ax.iter().enumerate().take(var.dim()) {
                if let Some(i) = index(l, *a) {
                    t = t.index_select(dim as i64, &i);
                }
            }
            if t.size() != var.size() {
                return Err(Error::Invalid(format!(
                    "tensor {name}: the kept units give {:?}, the pruned shape needs {:?}",
                    t.size(),
                    var.size()
                )));
            }
            var.shallow_clone().f_copy_(&t)?;
        }
        Ok(())
    })?;
    Ok(out)
}

/// `model` at its nominal widths (`BertConfig::unpruned`), the units it lacks zero.
pub fn pad(model: &Model) -> Result<Model> {
    let out = Model::random(&model.config().unpruned(), model.bert.heads, Device::Cpu);
    let old = model.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in out.vs.variables() {
            let src = old
                .get(&name)
                .ok_or_else(|| Error::Invalid(format!("the model has no tensor {name}")))?
                .to_device(Device::Cpu);
            let _ = var.shallow_clone().zero_();
            let mut slot = var.shallow_clone();
            for (dim, &n) in src.size().iter().enumerate() {
                slot = slot.narrow(dim as i64, 0, n);
            }
            slot.f_copy_(&src.to_kind(var.kind()))?;
        }
        Ok(())
    })?;
    Ok(out)
}
