//! Structured pruning from a model's own weights: attention heads and feed-forward neurons
//! per layer and, optionally, hidden dimensions (the same in the embeddings and every
//! layer), chosen by importance measured on text (Michel et al. 2019 for heads, TextPruner
//! for heads and FFN, CoFi's hidden-dimension masks).
//!
//! **The importance of a unit** is the increase of a distillation loss when the unit is
//! removed, to second order. The loss is the in-batch similarity loss, L = ½ mean_ij
//! (S_ij − T_ij)², S the cosine similarities between the model's mean-pooled sentence
//! embeddings and T the reference's (the teacher's, each sentence through its own
//! tokenizer, or the model's own before pruning): what a sentence embedder is judged on,
//! and independent of the width, so that hidden dimensions can go and the teacher may be
//! of another width or vocabulary. A unit is a mask m = 1 that scales its output (a head's
//! values, a neuron's activation, a hidden dimension after every LayerNorm); its gradient
//! is gradient × weight summed over the weights it scales, so no mask is built into the
//! forward pass. Removing the unit (m: 1 → 0) changes L by −∂L/∂m + ½ ∂²L/∂m² (Taylor),
//! the second derivative taken as the Gauss–Newton one, mean_ij (∂S_ij/∂m)², estimated with
//! random ±1 probes V (E[(Σ V⊙∂S/∂m)²] = Σ (∂S/∂m)²), one backward pass each. When the
//! reference is the model itself the first term is zero and the second exact: gradient ×
//! activation alone, the first-order form, would then call every unit worthless.
//!
//! **Rounds**: with `rounds > 1` the units are cut in steps whose sizes shrink
//! geometrically, the importance measured again on the model each step leaves (the
//! iterative pruning of Michel et al.).

use std::path::{Path, PathBuf};

use rand::Rng;
use tch::{Device, Kind, Tensor};

use super::shape::{self, Keep};
use crate::bert::{self, ForwardOptions, Inputs, Model};
use crate::data::config::TextOptions;
use crate::data::corpus;
use crate::embed::mean_pool;
use crate::error::{Error, Result};
use crate::output::Folder;
use crate::tokenize::{BertTokenizer, Text};

#[derive(Debug, Clone)]
pub struct StructureOptions {
    /// The text importance is measured on (files, folders, globs).
    pub corpus: Vec<String>,
    /// The reference the loss compares with; the model itself when absent.
    pub teacher: Option<PathBuf>,
    /// Heads kept per layer (on average, when allocated across layers).
    pub heads: Option<i64>,
    /// Feed-forward neurons kept per layer (on average, when allocated across layers).
    pub ffn: Option<i64>,
    /// Hidden dimensions kept (a multiple of the head size).
    pub hidden: Option<i64>,
    /// The same number of heads and neurons in every layer, rather than the most important
    /// across all layers.
    pub even: bool,
    pub rounds: usize,
    /// Sentences the importance is measured on, and their batch size.
    pub sentences: usize,
    pub batch_size: usize,
    /// Random ±1 probes per batch for the second-order term.
    pub probes: usize,
    pub max_len: usize,
    pub seed: u64,
    pub force: bool,
}

impl Default for StructureOptions {
    fn default() -> Self {
        StructureOptions {
            corpus: Vec::new(),
            teacher: None,
            heads: None,
            ffn: None,
            hidden: None,
            even: false,
            rounds: 1,
            sentences: 256,
            batch_size: 32,
            probes: 4,
            max_len: 128,
            seed: 0,
            force: false,
        }
    }
}

/// Each unit's importance (the loss increase its removal makes), in the model's numbering.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Importance {
    pub heads: Vec<Vec<f64>>,
    pub ffn: Vec<Vec<f64>>,
    pub hidden: Vec<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StructureSummary {
    pub out: PathBuf,
    pub layers: i64,
    pub hidden_before: i64,
    pub hidden_after: i64,
    pub heads_before: Vec<i64>,
    pub heads_after: Vec<i64>,
    pub ffn_before: Vec<i64>,
    pub ffn_after: Vec<i64>,
    pub parameters_before: i64,
    pub parameters_after: i64,
    /// Forward FLOPs per token at sequence length 128, before and after.
    pub flops_before: f64,
    pub flops_after: f64,
    /// The measured loss (½ mean squared difference of in-batch cosine similarities against
    /// the reference) before and after, on the measurement sentences.
    pub loss_before: f64,
    pub loss_after: f64,
    pub sentences: usize,
    pub rounds: usize,
}

impl std::fmt::Display for StructureSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[i64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(f, "hidden {} -> {}", self.hidden_before, self.hidden_after)?;
        writeln!(
            f,
            "heads per layer [{}] -> [{}]",
            list(&self.heads_before),
            list(&self.heads_after)
        )?;
        writeln!(
            f,
            "feed-forward per layer [{}] -> [{}]",
            list(&self.ffn_before),
            list(&self.ffn_after)
        )?;
        writeln!(
            f,
            "parameters {} -> {} ({:.2}x fewer); forward FLOPs per token at length 128 {:.2}x fewer",
            self.parameters_before,
            self.parameters_after,
            self.parameters_before as f64 / self.parameters_after as f64,
            self.flops_before / self.flops_after
        )?;
        writeln!(
            f,
            "similarity loss against the reference (half the mean squared cosine difference) on {} sentences: {:.6} -> {:.6} ({} round{})",
            self.sentences,
            self.loss_before,
            self.loss_after,
            self.rounds,
            if self.rounds == 1 { "" } else { "s" }
        )
    }
}

/// The checks that need only the options and the model's shape: `Err((option, message))`,
/// the option named as the recipe's `student.prune` field and, with `--`, as the flag (""
/// when no one option is at fault).
pub fn check_options(
    o: &StructureOptions,
    cfg: &bert::BertConfig,
) -> std::result::Result<(), (&'static str, String)> {
    let d = cfg.head_dim();
    let layers = cfg.num_hidden_layers as usize;
    let max_heads = (0..layers).map(|l| cfg.heads_of(l)).max().unwrap_or(0);
    let max_ffn = (0..layers)
        .map(|l| cfg.intermediate_of(l))
        .max()
        .unwrap_or(0);
    if let Some(h) = o.hidden {
        if h < d || h > cfg.hidden_size || h % d != 0 {
            return Err(("hidden", format!(
                "{h}: must be a multiple of the head size {d} between {d} and the model's hidden_size {} (transformers sizes heads as hidden_size / num_attention_heads)",
                cfg.hidden_size
            )));
        }
    }
    let heads_cap = o.hidden.map_or(max_heads, |h| (h / d).min(max_heads));
    if let Some(n) = o.heads {
        if n < 1 || n > heads_cap {
            return Err(("heads", format!(
                "{n}: must be between 1 and {heads_cap} (the model has at most {max_heads} heads per layer{})",
                if heads_cap < max_heads { format!(", and hidden {} holds {heads_cap} heads of {d}", o.hidden.unwrap_or(0)) } else { String::new() }
            )));
        }
    }
    if let Some(n) = o.ffn {
        if n < 1 || n > max_ffn {
            return Err((
                "ffn",
                format!("{n}: must be between 1 and the model's {max_ffn} neurons per layer"),
            ));
        }
    }
    for (key, v, max) in [
        ("rounds", o.rounds, 64),
        ("sentences", o.sentences, 1 << 20),
        ("batch_size", o.batch_size, 4096),
        ("probes", o.probes, 1024),
    ] {
        if v == 0 || v > max {
            return Err((key, format!("{v}: must be between 1 and {max}")));
        }
    }
    if o.heads.is_none() && o.ffn.is_none() && o.hidden.is_none() {
        // The section (or the command) as a whole: "" names no one option.
        return Err(("", "nothing to prune: give heads, ffn or hidden".into()));
    }
    Ok(())
}

/// A `check_options` refusal as the command line names it.
fn flag_message(key: &str, msg: &str) -> String {
    if key.is_empty() {
        msg.to_string()
    } else {
        format!("--{} {msg}", key.replace('_', "-"))
    }
}

/// Up to `n` sentences of the corpus, evenly spaced through it.
pub fn sentences(paths: &[String], n: usize, what: &str) -> Result<Vec<String>> {
    let files = corpus::expand(paths).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    let mut all = Vec::new();
    for f in &files {
        corpus::read_documents(f, &TextOptions::default(), |doc| {
            all.extend(doc.into_iter().filter(|s| !s.trim().is_empty()));
            Ok(())
        })?;
    }
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "{what} {}: no sentences to measure importance on",
            paths.join(" ")
        )));
    }
    let step = (all.len() as f64 / n as f64).max(1.0);
    Ok((0..n.min(all.len()))
        .map(|i| std::mem::take(&mut all[(i as f64 * step) as usize]))
        .collect())
}

/// The cosine similarities [b, b] between the mean-pooled embeddings of `model` on `batch`
/// (eval mode).
fn similarities(model: &Model, batch: &Inputs) -> Result<Tensor> {
    let batch = batch.to_device(model.device());
    let out = model.forward(&batch, &ForwardOptions::default())?;
    let pooled = mean_pool(out.last_hidden_state(), &batch.attention_mask);
    let norm = pooled.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12);
    let f = pooled / norm;
    Ok(f.matmul(&f.transpose(0, 1)))
}

/// The weights each unit's mask scales, in order: per layer the values (weight, bias) and
/// the FFN output weight; then every LayerNorm (weight, bias).
struct Scaled {
    names: Vec<String>,
    layers: usize,
}

impl Scaled {
    fn new(layers: usize) -> Scaled {
        let mut names = Vec::new();
        for l in 0..layers {
            let p = format!("bert.encoder.layer.{l}.");
            names.push(format!("{p}attention.self.value.weight"));
            names.push(format!("{p}attention.self.value.bias"));
            names.push(format!("{p}output.dense.weight"));
        }
        names.push("bert.embeddings.LayerNorm.weight".into());
        names.push("bert.embeddings.LayerNorm.bias".into());
        for l in 0..layers {
            for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
                names.push(format!("bert.encoder.layer.{l}.{ln}.weight"));
                names.push(format!("bert.encoder.layer.{l}.{ln}.bias"));
            }
        }
        Scaled { names, layers }
    }

    /// ∂/∂m of every unit from the gradients `g` of the tensors `w` (gradient × weight):
    /// heads [L][H_l], neurons [L][I_l], hidden [H].
    fn mask_grads(&self, w: &[Tensor], g: &[Tensor], d: i64) -> (Vec<Tensor>, Vec<Tensor>, Tensor) {
        let prod = |i: usize| &w[i] * &g[i];
        let mut heads = Vec::new();
        let mut ffn = Vec::new();
        for l in 0..self.layers {
            let rows = prod(3 * l).sum_dim_intlist(1, false, Kind::Double)
                + prod(3 * l + 1).to_kind(Kind::Double);
            heads.push(rows.view([-1, d]).sum_dim_intlist(1, false, Kind::Double));
            ffn.push(prod(3 * l + 2).sum_dim_intlist(0, false, Kind::Double));
        }
        let mut hidden = Tensor::zeros_like(&w[3 * self.layers]).to_kind(Kind::Double);
        for i in 3 * self.layers..w.len() {
            hidden += prod(i).to_kind(Kind::Double);
        }
        (heads, ffn, hidden)
    }
}

/// The importance of every unit of `model` (see the module's comment), and the loss.
pub fn importance(
    model: &Model,
    batches: &[Inputs],
    targets: &[Tensor],
    probes: usize,
    seed: u64,
) -> Result<(Importance, f64)> {
    let cfg = model.config();
    let layers = cfg.num_hidden_layers as usize;
    let scaled = Scaled::new(layers);
    let vars = model.vs.variables();
    let w: Vec<Tensor> = scaled
        .names
        .iter()
        .map(|n| {
            vars.get(n)
                .map(Tensor::shallow_clone)
                .ok_or_else(|| Error::Invalid(format!("the model has no tensor {n}")))
        })
        .collect::<Result<_>>()?;
    let d = cfg.head_dim();
    let device = model.device();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let zeros = |n: i64| Tensor::zeros([n], (Kind::Double, device));
    let mut heads: Vec<Tensor> = (0..layers).map(|l| zeros(cfg.heads_of(l))).collect();
    let mut ffn: Vec<Tensor> = (0..layers).map(|l| zeros(cfg.intermediate_of(l))).collect();
    let mut hidden = zeros(cfg.hidden_size);
    let (mut loss_sum, mut n) = (0.0, 0i64);
    for (batch, t) in batches.iter().zip(targets) {
        let f = similarities(model, batch)?;
        let b = f.size()[0];
        let loss = (&f - t).square().mean(Kind::Float) * 0.5;
        loss_sum += loss.double_value(&[]) * b as f64;
        n += b;
        let grads = Tensor::run_backward(&[&loss], &w, true, false);
        let (gh, gf, gd) = scaled.mask_grads(&w, &grads, d);
        // First order: removing the unit moves m by −1.
        for l in 0..layers {
            heads[l] -= &gh[l] * b as f64;
            ffn[l] -= &gf[l] * b as f64;
        }
        hidden -= gd * b as f64;
        // Second order, Gauss–Newton: ½ mean_ij (∂S_ij/∂m)², by random probes.
        for k in 0..probes {
            // Rademacher probes (±1: a lower variance than Gaussian ones), drawn from the
            // seed alone, whatever else draws from libtorch's generator.
            let v: Vec<f32> = (0..b * b)
                .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
                .collect();
            let v = Tensor::from_slice(&v).view([b, b]).to_device(device);
            let proj = (&f * v).sum(Kind::Float);
            let g = Tensor::run_backward(&[&proj], &w, k + 1 < probes, false);
            let (ph, pf, pd) = scaled.mask_grads(&w, &g, d);
            // Weighted by the batch's size, as the first-order term (the mean is taken
            // over sentences at the end).
            let s = 0.5 * b as f64 / (probes as f64 * (b * b) as f64);
            for l in 0..layers {
                heads[l] += ph[l].square() * s;
                ffn[l] += pf[l].square() * s;
            }
            hidden += pd.square() * s;
        }
    }
    let n = n.max(1) as f64;
    let list = |t: &Tensor| -> Vec<f64> {
        Vec::<f64>::try_from(&(t / n).to_device(Device::Cpu)).expect("a double vector")
    };
    Ok((
        Importance {
            heads: heads.iter().map(list).collect(),
            ffn: ffn.iter().map(list).collect(),
            hidden: list(&hidden),
        },
        loss_sum / n,
    ))
}

/// The `n` most important of `scores` (ties to the lower index), ascending.
fn top(scores: &[f64], n: usize) -> Vec<i64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut kept: Vec<i64> = idx.into_iter().take(n).map(|i| i as i64).collect();
    kept.sort_unstable();
    kept
}

/// Per layer, the units to keep: `total` in all, the most important across layers (at
/// least one and at most `cap` in each), or `total / layers` in each when `even`.
fn allocate(scores: &[Vec<f64>], total: usize, cap: usize, even: bool) -> Vec<Vec<i64>> {
    let layers = scores.len();
    if even {
        return scores.iter().map(|s| top(s, total / layers)).collect();
    }
    let mut counts = vec![1usize; layers];
    // Beyond each layer's most important unit, the best of the rest across layers.
    let mut rest: Vec<(f64, usize, usize)> = Vec::new();
    for (l, s) in scores.iter().enumerate() {
        let best = top(s, 1)[0] as usize;
        rest.extend(
            s.iter()
                .enumerate()
                .filter(|&(i, _)| i != best)
                .map(|(i, &v)| (v, l, i)),
        );
    }
    rest.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.1, a.2).cmp(&(b.1, b.2))));
    let mut left = total.saturating_sub(layers);
    for (_, l, _) in rest {
        if left == 0 {
            break;
        }
        if counts[l] < cap.min(scores[l].len()) {
            counts[l] += 1;
            left -= 1;
        }
    }
    scores.iter().zip(counts).map(|(s, c)| top(s, c)).collect()
}

/// What one round keeps of a model of shape `cfg`, towards the final counts, at fraction
/// `frac` (1 = the final counts) of the way in geometric steps.
fn choose(
    imp: &Importance,
    cfg: &bert::BertConfig,
    o: &StructureOptions,
    frac: f64,
    original: &bert::BertConfig,
) -> Keep {
    let layers = cfg.num_hidden_layers as usize;
    let step = |now: usize, goal: usize| -> usize {
        if goal >= now {
            return now;
        }
        ((now as f64) * (goal as f64 / now as f64).powf(frac)).round() as usize
    };
    let orig_heads: usize = (0..layers).map(|l| original.heads_of(l) as usize).sum();
    let orig_ffn: usize = (0..layers)
        .map(|l| original.intermediate_of(l) as usize)
        .sum();
    let now_heads: usize = imp.heads.iter().map(Vec::len).sum();
    let now_ffn: usize = imp.ffn.iter().map(Vec::len).sum();
    let d = cfg.head_dim() as usize;
    let hidden_goal = o.hidden.map_or(cfg.hidden_size as usize, |h| h as usize);
    // Hidden dimensions shrink geometrically from the original towards the goal; the
    // current count never grows.
    let hidden_n = {
        let h0 = original.hidden_size as usize;
        let n = if hidden_goal >= h0 {
            h0
        } else {
            ((h0 as f64) * (hidden_goal as f64 / h0 as f64).powf(frac)).round() as usize
        };
        // Whole heads: a multiple of the head size.
        ((n / d) * d).clamp(d, imp.hidden.len())
    };
    let cap = hidden_n / d;
    let heads_goal = o.heads.map_or(orig_heads, |h| h as usize * layers);
    let ffn_goal = o.ffn.map_or(orig_ffn, |f| f as usize * layers);
    let heads_n = if o.heads.is_some() {
        step(orig_heads, heads_goal).min(now_heads)
    } else {
        now_heads
    };
    let ffn_n = if o.ffn.is_some() {
        step(orig_ffn, ffn_goal).min(now_ffn)
    } else {
        now_ffn
    };
    // Heads over the cap that a narrower hidden size leaves are cut too; even counts are
    // whole multiples of the layers.
    // (Only counts being cut: a model pruned unevenly before keeps what is not asked for.)
    let heads_n = heads_n.min(cap * layers);
    let whole = |n: usize, now: usize| {
        if o.even && n < now {
            (n / layers).max(1) * layers
        } else {
            n
        }
    };
    let (heads_n, ffn_n) = (whole(heads_n, now_heads), whole(ffn_n, now_ffn));
    let even_heads = o.even && heads_n % layers == 0;
    let heads = if heads_n == now_heads && imp.heads.iter().all(|h| h.len() <= cap) {
        imp.heads
            .iter()
            .map(|h| (0..h.len() as i64).collect())
            .collect()
    } else {
        allocate(&imp.heads, heads_n, cap, even_heads)
    };
    let ffn = if ffn_n == now_ffn {
        imp.ffn
            .iter()
            .map(|f| (0..f.len() as i64).collect())
            .collect()
    } else {
        allocate(&imp.ffn, ffn_n, usize::MAX, o.even && ffn_n % layers == 0)
    };
    Keep {
        heads,
        ffn,
        hidden: top(&imp.hidden, hidden_n),
    }
}

fn parameters(m: &Model) -> i64 {
    m.vs.variables().values().map(|t| t.numel() as i64).sum()
}

/// The measurement text as batches for the model, and the reference's similarities.
pub struct Measure {
    pub batches: Vec<Inputs>,
    pub targets: Vec<Tensor>,
}

impl Measure {
    /// `texts` in batches through `tok`; the targets from `reference` (through its own
    /// tokenizer `ref_tok`), or from `model` itself.
    pub fn new(
        texts: &[String],
        batch_size: usize,
        model: &Model,
        tok: &BertTokenizer,
        reference: Option<(&Model, &BertTokenizer)>,
    ) -> Result<Measure> {
        let batch_of = |tok: &BertTokenizer| -> Result<Vec<Inputs>> {
            texts
                .chunks(batch_size)
                .map(|c| {
                    let t: Vec<Text> = c.iter().map(|s| Text::Single(s)).collect();
                    tok.batch(&t).map(|(b, _)| b)
                })
                .collect()
        };
        let batches = batch_of(tok)?;
        let targets = tch::no_grad(|| -> Result<Vec<Tensor>> {
            match reference {
                Some((m, rt)) => batch_of(rt)?
                    .iter()
                    .map(|b| Ok(similarities(m, b)?.to_device(model.device())))
                    .collect(),
                None => batches.iter().map(|b| similarities(model, b)).collect(),
            }
        })?;
        Ok(Measure { batches, targets })
    }

    /// The loss of `model` (½ mean squared similarity difference, sentence-weighted).
    pub fn loss(&self, model: &Model) -> Result<f64> {
        tch::no_grad(|| {
            let (mut s, mut n) = (0.0, 0i64);
            for (b, t) in self.batches.iter().zip(&self.targets) {
                let f = similarities(model, b)?;
                let k = f.size()[0];
                s += f64::try_from((&f - t).square().mean(Kind::Double))? * 0.5 * k as f64;
                n += k;
            }
            Ok(s / n.max(1) as f64)
        })
    }
}

/// What pruning did: the kept units (in the original's numbering), each round's importance
/// and loss, the loss after.
pub struct Pruned {
    pub model: Model,
    pub kept: Keep,
    pub rounds: Vec<serde_json::Value>,
    pub loss_before: f64,
    pub loss_after: f64,
}

/// Prunes `model` to the counts of `o` in `o.rounds` rounds (see the module's comment).
pub fn prune_model(model: Model, m: &Measure, o: &StructureOptions) -> Result<Pruned> {
    let cfg = model.config().clone();
    check_options(o, &cfg).map_err(|(k, msg)| Error::Invalid(flag_message(k, &msg)))?;
    let mut current = model;
    let mut kept = Keep::all(&cfg);
    let mut rounds = Vec::new();
    let mut loss_before = None;
    for r in 1..=o.rounds {
        let (imp, loss) = importance(
            &current,
            &m.batches,
            &m.targets,
            o.probes,
            o.seed + r as u64,
        )?;
        loss_before.get_or_insert(loss);
        let frac = r as f64 / o.rounds as f64;
        let keep = choose(&imp, current.config(), o, frac, &cfg);
        kept = keep.through(&kept);
        rounds.push(serde_json::json!({"round": r, "loss": loss, "importance": imp}));
        current = shape::shrink(&current, &keep)?;
    }
    let loss_after = m.loss(&current)?;
    Ok(Pruned {
        model: current,
        kept,
        rounds,
        loss_before: loss_before.unwrap_or(0.0),
        loss_after,
    })
}

/// The summary of what `p` did to a model of shape `cfg`.
pub fn summarise(
    out: &Path,
    cfg: &bert::BertConfig,
    before: i64,
    p: &Pruned,
    texts: usize,
    rounds: usize,
) -> StructureSummary {
    let pc = p.model.config();
    let layers = cfg.num_hidden_layers as usize;
    let per = |c: &bert::BertConfig, f: fn(&bert::BertConfig, usize) -> i64| -> Vec<i64> {
        (0..layers).map(|l| f(c, l)).collect()
    };
    let flops = |c: &bert::BertConfig| bert::flops::forward_flops(c, 1.0, 128.0, 0.0);
    StructureSummary {
        out: out.to_path_buf(),
        layers: cfg.num_hidden_layers,
        hidden_before: cfg.hidden_size,
        hidden_after: pc.hidden_size,
        heads_before: per(cfg, bert::BertConfig::heads_of),
        heads_after: per(pc, bert::BertConfig::heads_of),
        ffn_before: per(cfg, bert::BertConfig::intermediate_of),
        ffn_after: per(pc, bert::BertConfig::intermediate_of),
        parameters_before: before,
        parameters_after: parameters(&p.model),
        flops_before: flops(cfg),
        flops_after: flops(pc),
        loss_before: p.loss_before,
        loss_after: p.loss_after,
        sentences: texts,
        rounds,
    }
}

/// The record written as `prune.json` beside a pruned model.
pub fn report(
    source: &Path,
    o: &StructureOptions,
    p: &Pruned,
    summary: &StructureSummary,
) -> serde_json::Value {
    serde_json::json!({
        "source": source,
        "teacher": o.teacher,
        "kept": p.kept,
        "summary": summary,
        "options": {"heads": o.heads, "ffn": o.ffn, "hidden": o.hidden, "even": o.even,
            "rounds": o.rounds, "sentences": o.sentences, "batch_size": o.batch_size,
            "probes": o.probes, "max_len": o.max_len, "seed": o.seed, "corpus": o.corpus},
        "rounds": p.rounds,
    })
}

/// Prunes the checkpoint at `checkpoint` into `out` (see the module's comment): the smaller
/// model, its tokenizer and sentence-transformers modules, and `prune.json` (the kept units
/// in the original numbering, each round's importance, the options).
pub fn prune_structure(
    checkpoint: &Path,
    out: &Path,
    o: &StructureOptions,
) -> Result<StructureSummary> {
    let mut inputs = vec![checkpoint.to_path_buf()];
    inputs.extend(o.corpus.iter().map(|c| crate::output::glob_root(c)));
    inputs.extend(o.teacher.iter().cloned());
    let folder = Folder::check(out, "--out", "prune", o.force, &inputs)?;
    if let Some(t) = o
        .teacher
        .as_ref()
        .filter(|t| !t.join("config.json").is_file())
    {
        return Err(Error::Invalid(format!(
            "--teacher {}: no model folder there (no config.json)",
            t.display()
        )));
    }
    let model = bert::load(checkpoint, &Default::default())?;
    let cfg = model.config().clone();
    check_options(o, &cfg).map_err(|(k, msg)| Error::Invalid(flag_message(k, &msg)))?;
    let tok = BertTokenizer::from_dir(checkpoint)?.with_max_len(o.max_len)?;
    crate::embed::check_vocab(&tok, &model, checkpoint)?;
    let reference = match &o.teacher {
        Some(t) => {
            let m = bert::load(t, &Default::default())?;
            let tt = BertTokenizer::from_dir(t)?.with_max_len(o.max_len)?;
            crate::embed::check_vocab(&tt, &m, t)?;
            Some((m, tt))
        }
        None => None,
    };
    let texts = sentences(&o.corpus, o.sentences, "--corpus")?;
    let measure = Measure::new(
        &texts,
        o.batch_size,
        &model,
        &tok,
        reference.as_ref().map(|(m, t)| (m, t)),
    )?;
    drop(reference);
    let before = parameters(&model);
    folder.create()?;
    let result = (|| -> Result<StructureSummary> {
        let p = prune_model(model, &measure, o)?;
        bert::save(&p.model, &folder.tmp)?;
        crate::tokenize::copy_tokenizer(checkpoint, &folder.tmp)?;
        crate::sentence::copy(checkpoint, &folder.tmp, p.model.config().hidden_size)?;
        let summary = summarise(out, &cfg, before, &p, texts.len(), o.rounds);
        let path = folder.tmp.join("prune.json");
        let text =
            serde_json::to_string_pretty(&report(checkpoint, o, &p, &summary)).expect("json");
        std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
        Ok(summary)
    })();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            folder.abandon();
            return Err(e);
        }
    };
    folder.commit()?;
    Ok(summary)
}
