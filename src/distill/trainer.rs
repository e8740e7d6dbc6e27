//! One trainer for three jobs: distillation (teacher → student), pretraining (no teacher),
//! and fitting MLM/NSP heads onto a frozen headless teacher. The recipe says which.
//!
//! A step is: forward of the student (train mode) and of the teacher (eval, no grad, MLM
//! logits only where a loss reads them), the weighted losses, backward (accumulated over
//! micro-batches), clipping, AdamW. Dropout is seeded by (seed, step), the data by its
//! cursor, so a run resumed from a checkpoint continues exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{self as ckpt, TrainerState};
use super::losses;
use super::metrics::{self, Metrics, Row};
use super::optim::{AdamW, LossScaler};
use super::recipe::{HeadPolicy, Job, KdPositions, LossWeight, Recipe, Scheduled, View};
use super::schedule::lr_factor;
use super::student;
use super::targets::{self, Cache, CacheLoader};
use crate::bert::{self, BertOutput, ForwardOptions, Heads, LoadOptions, MlmPositions, Model};
use crate::data::{self, Batch, Cursor, Loader};
use crate::dist::{self, Group, Launch};
use crate::error::{Error, Result};
use crate::output;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The data-parallel run this process belongs to (see `join`); None: alone.
    pub group: Option<Arc<Group>>,
    /// Continue from the newest checkpoint in the output folder.
    pub resume: bool,
    /// Start over even if the output folder has checkpoints (they are removed).
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub output: PathBuf,
    pub steps: u64,
    pub first_validation: Option<f64>,
    pub last_validation: Option<f64>,
    pub final_model: PathBuf,
    pub metrics: PathBuf,
    pub plot: PathBuf,
    pub seconds: f64,
}

/// An active loss: its name, weight and (student, teacher) layer pairs.
type Active = (&'static str, Scheduled, Vec<(usize, usize)>);

/// The active losses with their layer pairs resolved.
struct Plan {
    active: Vec<Active>,
    /// Each active loss's settings (its view, the similarity loss's form), as `active`.
    settings: Vec<LossWeight>,
    kd_all_positions: bool,
    /// Whether batches carry NSP labels (sentence pairs); single sentences do not.
    nsp_labels: bool,
    student_layers: usize,
}

impl Plan {
    fn has(&self, name: &str) -> bool {
        self.active.iter().any(|(n, _, _)| *n == name)
    }

    /// Whether the active losses reach parameter `name` (so that it gets a gradient; the
    /// data-parallel reducer must be given exactly those): the pooler and NSP head only
    /// through an NSP loss, the MLM head's own parameters only through an MLM loss; an
    /// encoder layer in full when a loss reads a hidden state at or after its output (the
    /// heads and pooled losses read the last), and only its query and key (attention
    /// scores or probabilities) or its value (value relations) when a loss reads those of
    /// that layer and nothing later. Embeddings and learned projections always.
    fn reaches(&self, name: &str) -> bool {
        let nsp = self.has("nsp") || self.has("kd_nsp");
        let mlm = self.has("mlm") || self.has("kd_mlm");
        if name.starts_with("bert.pooler.") || name.starts_with("cls.seq_relationship.") {
            return nsp;
        }
        if name.starts_with("cls.predictions.") {
            return mlm;
        }
        let Some((layer, part)) = name
            .strip_prefix("bert.encoder.layer.")
            .and_then(|r| r.split_once('.'))
            .and_then(|(i, p)| Some((i.parse::<usize>().ok()?, p)))
        else {
            return true;
        };
        // Layers below `full` are reached whole; (layer, parts) pairs in part.
        let mut full = 0usize;
        let mut partial: Vec<(usize, [&str; 2])> = Vec::new();
        for (n, _, pairs) in &self.active {
            for &(a, _) in pairs {
                match *n {
                    "hidden_mse" | "hidden_cos" => full = full.max(a),
                    "attention_mse" | "attention_kl" => {
                        full = full.max(a - 1);
                        partial.push((a - 1, ["attention.self.query.", "attention.self.key."]));
                    }
                    "value_relation" => {
                        full = full.max(a - 1);
                        partial.push((a - 1, ["attention.self.value.", "attention.self.value."]));
                    }
                    _ => full = full.max(self.student_layers),
                }
            }
            if pairs.is_empty() {
                full = full.max(self.student_layers);
            }
        }
        layer < full
            || partial
                .iter()
                .any(|(l, parts)| *l == layer && parts.iter().any(|p| part.starts_with(p)))
    }
}

fn default_pairs(name: &str, ls: usize, lt: usize) -> Vec<(usize, usize)> {
    let scaled = |i: usize| ((i * lt) as f64 / ls as f64).round() as usize;
    match name {
        "hidden_mse" => (0..=ls).map(|i| (i, scaled(i))).collect(),
        "attention_mse" => (1..=ls).map(|i| (i, scaled(i))).collect(),
        "hidden_cos" | "attention_kl" | "value_relation" => vec![(ls, lt)],
        _ => Vec::new(),
    }
}

fn plan(recipe: &Recipe, s: &bert::BertConfig, t: Option<&bert::BertConfig>) -> Result<Plan> {
    let ls = s.num_hidden_layers as usize;
    let lt = t.map(|t| t.num_hidden_layers as usize).unwrap_or(ls);
    let mut active = Vec::new();
    let mut settings = Vec::new();
    let err = |f: String, m: String| Error::config(&recipe.path, f, m);
    for (name, w) in recipe.losses.all() {
        let w: &LossWeight = w;
        if w.weight.is_zero() {
            continue;
        }
        let pairs = w
            .layers
            .clone()
            .unwrap_or_else(|| default_pairs(name, ls, lt));
        let first = if name.starts_with("attention") || name == "value_relation" {
            1
        } else {
            0
        };
        for &(a, b) in &pairs {
            if a < first || a > ls || b < first || b > lt {
                return Err(err(
                    format!("losses.{name}.layers"),
                    format!("pair ({a}, {b}) is outside student layers {first}..={ls} / teacher layers {first}..={lt}"),
                ));
            }
        }
        if matches!(name, "pooled_cos" | "pooled_mse" | "hidden_cos") {
            if let Some(t) = t {
                if t.hidden_size != s.hidden_size {
                    return Err(err(
                        "student.hidden_size".into(),
                        format!(
                            "{} differs from the teacher's {}, and losses.{name} compares hidden states directly",
                            s.hidden_size, t.hidden_size
                        ),
                    ));
                }
            }
        }
        if name.starts_with("attention") || name == "value_relation" {
            if let Some(t) = t {
                if t.num_attention_heads != s.num_attention_heads {
                    return Err(err(
                        "student.attention_heads".into(),
                        format!(
                            "{} differs from the teacher's {}, and losses.{name} compares heads one to one",
                            s.num_attention_heads, t.num_attention_heads
                        ),
                    ));
                }
            }
        }
        active.push((name, w.weight, pairs));
        settings.push(w.clone());
    }
    Ok(Plan {
        kd_all_positions: recipe.losses.kd_mlm.positions == KdPositions::All,
        nsp_labels: recipe.data.examples == crate::data::ExampleFormat::Pairs,
        active,
        settings,
        student_layers: ls,
    })
}

impl Plan {
    /// Whether an active loss reads `view`.
    fn reads(&self, view: View) -> bool {
        self.settings.iter().any(|w| w.view == view)
    }

    /// Whether an active loss on `view` needs the attention internals.
    fn attentions(&self, view: View) -> bool {
        self.active
            .iter()
            .zip(&self.settings)
            .any(|((n, _, _), w)| {
                w.view == view && (n.starts_with("attention") || *n == "value_relation")
            })
    }

    /// Whether an active loss named in `names` reads `view`.
    fn reads_any(&self, view: View, names: &[&str]) -> bool {
        self.active
            .iter()
            .zip(&self.settings)
            .any(|((n, _, _), w)| w.view == view && names.contains(n))
    }
}

/// What one batch gives: raw loss components, and what accuracy needs.
struct Computed {
    components: Vec<(&'static str, Tensor)>,
    /// What each component is a mean over (masked positions, sequences, tokens, ...), so
    /// that data-parallel ranks can weigh their means into the global batch's.
    counts: Vec<f64>,
    student: BertOutput,
    /// Labels of the rows of `student.mlm_logits` (-100 where not masked).
    mlm_labels: Tensor,
}

/// The batch with every masked token restored: what a loss on the clean view reads.
fn clean_inputs(batch: &Batch) -> bert::Inputs {
    let ids = &batch.inputs.input_ids;
    bert::Inputs {
        input_ids: ids.where_self(&batch.labels.eq(-100), &batch.labels),
        attention_mask: batch.inputs.attention_mask.shallow_clone(),
        token_type_ids: batch.inputs.token_type_ids.shallow_clone(),
    }
}

/// One view's forward outputs: the student's, and the teacher's when there is one.
struct Forward {
    student: BertOutput,
    teacher: Option<BertOutput>,
}

/// The forwards of one view: `mlm` the positions where MLM logits are asked for.
fn forward_view(
    plan: &Plan,
    view: View,
    model: &Model,
    teacher: Option<&Model>,
    inputs: &bert::Inputs,
    mlm: &MlmPositions,
    train: bool,
) -> Result<Forward> {
    let attentions = plan.attentions(view);
    let s_opts = ForwardOptions {
        attentions,
        mlm: mlm.clone(),
        nsp: plan.reads_any(view, &["nsp", "kd_nsp"]) || view == View::Masked,
        train,
    };
    let student = model.forward(inputs, &s_opts)?;
    let teacher = match teacher {
        Some(t) => {
            let t_opts = ForwardOptions {
                attentions,
                mlm: if plan.reads_any(view, &["kd_mlm"]) {
                    mlm.clone()
                } else {
                    MlmPositions::None
                },
                nsp: plan.reads_any(view, &["kd_nsp"]),
                train: false,
            };
            Some(tch::no_grad(|| t.forward(inputs, &t_opts))?)
        }
        None => None,
    };
    Ok(Forward { student, teacher })
}

fn compute(
    plan: &Plan,
    model: &Model,
    teacher: Option<&Model>,
    projection: Option<&nn::Linear>,
    batch: &Batch,
    temperature: f64,
    train: bool,
) -> Result<Computed> {
    let mask = &batch.inputs.attention_mask;
    let positions = if plan.kd_all_positions && plan.has("kd_mlm") {
        mask.view([-1]).nonzero().squeeze_dim(-1)
    } else {
        batch.masked_positions.shallow_clone()
    };
    let mlm_labels = batch.labels.view([-1]).index_select(0, &positions);
    // One forward of each model per view that an active loss reads; the masked one first,
    // so that a run with no clean-view loss computes exactly what it did before views.
    let masked = if plan.reads(View::Masked) {
        let mlm = MlmPositions::Flat(positions.shallow_clone());
        Some(forward_view(
            plan,
            View::Masked,
            model,
            teacher,
            &batch.inputs,
            &mlm,
            train,
        )?)
    } else {
        None
    };
    let clean = if plan.reads(View::Clean) {
        let inputs = clean_inputs(batch);
        Some(forward_view(
            plan,
            View::Clean,
            model,
            teacher,
            &inputs,
            &MlmPositions::None,
            train,
        )?)
    } else {
        None
    };
    let mean = |pairs: &[(usize, usize)], f: &dyn Fn(usize, usize) -> Tensor| {
        let terms: Vec<Tensor> = pairs.iter().map(|&(a, b)| f(a, b)).collect();
        Tensor::stack(&terms, 0).mean(Kind::Float)
    };
    let mut components = Vec::new();
    let mut counts = Vec::new();
    let tokens = || mask.sum(Kind::Float).double_value(&[]);
    let (b, len) = (mask.size()[0] as f64, mask.size()[1] as f64);
    for ((name, _, pairs), w) in plan.active.iter().zip(&plan.settings) {
        let f = match w.view {
            View::Masked => masked.as_ref(),
            View::Clean => clean.as_ref(),
        }
        .expect("the view's forward ran");
        let s = &f.student;
        let need_t = || {
            f.teacher
                .as_ref()
                .ok_or_else(|| Error::Invalid("this loss needs a teacher".into()))
        };
        counts.push(match *name {
            "kd_mlm" => positions.size()[0] as f64,
            "mlm" => batch.masked_positions.size()[0] as f64,
            "kd_nsp" | "nsp" | "pooled_cos" | "pooled_mse" | "similarity" => b,
            "attention_mse" => b * len * len,
            _ => tokens(),
        });
        // The teacher's sentence embedding: from the cache, or mean-pooled live.
        let teacher_pooled = || -> Result<Tensor> {
            match batch.targets.as_ref().and_then(|tg| tg.pooled.as_ref()) {
                Some(p) => Ok(p.shallow_clone()),
                None => Ok(losses::mean_pool(
                    need_t()?.hidden_states.last().expect("has layers"),
                    mask,
                )),
            }
        };
        let last = s.hidden_states.last().expect("has layers");
        let v = match *name {
            "kd_mlm" => match &batch.targets {
                Some(tg) => losses::kd_topk_tail(
                    &tg.topk_ids,
                    &tg.topk_logits,
                    &tg.tail,
                    s.mlm_logits.as_ref().expect("asked for"),
                    temperature,
                ),
                None => losses::kd(
                    need_t()?.mlm_logits.as_ref().expect("asked for"),
                    s.mlm_logits.as_ref().expect("asked for"),
                    temperature,
                ),
            },
            "kd_nsp" => losses::kd(
                match &batch.targets {
                    Some(tg) => &tg.nsp_logits,
                    None => need_t()?.nsp_logits.as_ref().expect("asked for"),
                },
                s.nsp_logits.as_ref().expect("asked for"),
                temperature,
            ),
            "mlm" => losses::cross_entropy(s.mlm_logits.as_ref().expect("asked for"), &mlm_labels),
            "nsp" => {
                losses::cross_entropy(s.nsp_logits.as_ref().expect("asked for"), &batch.nsp_labels)
            }
            "pooled_cos" => losses::pooled_cos(last, &teacher_pooled()?, mask),
            "pooled_mse" => losses::pooled_mse(&losses::mean_pool(last, mask), &teacher_pooled()?),
            "similarity" => {
                let (form, tau) = w.relation();
                losses::similarity(
                    &losses::mean_pool(last, mask),
                    &teacher_pooled()?,
                    form,
                    tau,
                )
            }
            "hidden_cos" => {
                let t = need_t()?;
                mean(pairs, &|a, b| {
                    losses::hidden_cos(&s.hidden_states[a], &t.hidden_states[b], mask)
                })
            }
            "hidden_mse" => {
                let t = need_t()?;
                mean(pairs, &|a, b| {
                    let h = &s.hidden_states[a];
                    let h = match projection {
                        Some(p) => h.to_kind(Kind::Float).apply(p),
                        None => h.shallow_clone(),
                    };
                    losses::hidden_mse(&h, &t.hidden_states[b], mask)
                })
            }
            "attention_mse" | "attention_kl" | "value_relation" => {
                let t = need_t()?;
                let (sa, ta) = (
                    s.attentions.as_ref().expect("asked for"),
                    t.attentions.as_ref().expect("asked for"),
                );
                mean(pairs, &|a, b| {
                    let (x, y) = (&sa[a - 1], &ta[b - 1]);
                    match *name {
                        "attention_mse" => losses::attention_mse(&x.scores, &y.scores, mask),
                        "attention_kl" => losses::attention_kl(&x.scores, &y.scores, mask),
                        _ => losses::value_relation(&x.values, &y.values, mask),
                    }
                })
            }
            other => return Err(Error::Invalid(format!("unknown loss {other}"))),
        };
        components.push((*name, v));
    }
    let student = match (masked, clean) {
        (Some(m), _) => m.student,
        (None, Some(c)) => c.student,
        (None, None) => return Err(Error::Invalid("no active loss".into())),
    };
    Ok(Computed {
        components,
        counts,
        student,
        mlm_labels,
    })
}

fn weights_at(plan: &Plan, step: u64, total: u64) -> Vec<f64> {
    plan.active
        .iter()
        .map(|(_, w, _)| w.at(step, total))
        .collect()
}

struct Eval {
    components: BTreeMap<&'static str, f64>,
    loss: f64,
    /// None when no loss reads the masked view (the student predicted nothing).
    mlm_accuracy: Option<f64>,
    nsp_accuracy: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
fn evaluate(
    plan: &Plan,
    model: &Model,
    teacher: Option<&Model>,
    projection: Option<&nn::Linear>,
    batches: &[Batch],
    weights: &[f64],
    temperature: f64,
) -> Result<Eval> {
    let mut sums: BTreeMap<&'static str, f64> = BTreeMap::new();
    let (mut mlm_ok, mut mlm_n, mut nsp_ok, mut nsp_n) = (0.0, 0.0, 0.0, 0.0);
    tch::no_grad(|| -> Result<()> {
        for b in batches {
            let c = compute(plan, model, teacher, projection, b, temperature, false)?;
            for (n, v) in &c.components {
                *sums.entry(n).or_default() += v.double_value(&[]);
            }
            if let Some(l) = &c.student.mlm_logits {
                let masked = c.mlm_labels.ne(-100);
                let hit = l
                    .argmax(-1, false)
                    .eq_tensor(&c.mlm_labels)
                    .logical_and(&masked);
                mlm_ok += hit.sum(Kind::Float).double_value(&[]);
                mlm_n += masked.sum(Kind::Float).double_value(&[]);
            }
            if let Some(l) = c.student.nsp_logits.as_ref().filter(|_| plan.nsp_labels) {
                nsp_ok += l
                    .argmax(-1, false)
                    .eq_tensor(&b.nsp_labels)
                    .sum(Kind::Float)
                    .double_value(&[]);
                nsp_n += b.nsp_labels.size()[0] as f64;
            }
        }
        Ok(())
    })?;
    let n = batches.len().max(1) as f64;
    let components: BTreeMap<&'static str, f64> =
        sums.into_iter().map(|(k, v)| (k, v / n)).collect();
    let loss = plan
        .active
        .iter()
        .zip(weights)
        .map(|((name, _, _), w)| w * components[name])
        .sum();
    Ok(Eval {
        components,
        loss,
        mlm_accuracy: (mlm_n > 0.0).then(|| mlm_ok / mlm_n),
        nsp_accuracy: (nsp_n > 0.0).then(|| nsp_ok / nsp_n),
    })
}

fn precision(recipe: &Recipe, device: Device) -> Result<Kind> {
    Ok(match (recipe.precision.as_str(), device) {
        ("auto", Device::Cpu) | ("fp32", _) => Kind::Float,
        ("auto", _) | ("bf16", _) => Kind::BFloat16,
        ("fp16", _) => Kind::Half,
        (p, _) => return Err(Error::config(&recipe.path, "precision", format!("{p:?}"))),
    })
}

/// SHA-256 of a checkpoint's weights, for the fitted-heads cache key.
fn weights_digest(dir: &Path) -> Result<String> {
    let f = dir.join("model.safetensors");
    let f = if f.is_file() {
        f
    } else {
        dir.join("pytorch_model.bin")
    };
    crate::tokenize::file_sha256(&f)
}

/// The teacher with the heads the losses need: its own, or fitted (and cached beside the
/// run, in `OUTPUT/teacher-heads`) when `teacher.heads: fit`.
pub(crate) fn teacher_with_heads(
    recipe: &Recipe,
    need: Heads,
    device: Device,
    opts: &RunOptions,
) -> Result<Model> {
    let t = recipe.teacher.as_ref().expect("validated");
    let load = |dir: &Path| {
        bert::load(
            dir,
            &LoadOptions {
                device,
                ..Default::default()
            },
        )
    };
    let teacher = load(&t.checkpoint)?;
    let has = teacher.report.as_ref().expect("loaded").checkpoint_heads;
    if (!need.mlm || has.mlm) && (!need.nsp || has.nsp) {
        return Ok(teacher);
    }
    let missing = if need.mlm && !has.mlm { "MLM" } else { "NSP" };
    if t.heads == HeadPolicy::Fail {
        return Err(Error::config(
            &recipe.path,
            "teacher.heads",
            format!(
                "the teacher ({}) has no {missing} head, which the distillation losses need; set teacher.heads: fit",
                t.checkpoint.display()
            ),
        ));
    }
    drop(teacher);
    if t.fit.cache.exists() && !t.fit.cache.is_dir() {
        return Err(Error::config(
            &recipe.path,
            "teacher.fit.cache",
            format!("{} exists and is not a folder", t.fit.cache.display()),
        ));
    }
    let dir = recipe.output.join("teacher-heads");
    let sub = fit_recipe(recipe);
    // What the fitted heads depend on: the teacher's weights and tokenizer (by content, so a
    // moved teacher still matches), the fit's settings, seed and data.
    let key = serde_json::json!({
        "weights_sha256": weights_digest(&t.checkpoint)?,
        "tokenizer": recipe.tokenizer()?.fingerprint(),
        "fit": t.fit,
        "seed": recipe.seed,
        "data": sub.data,
        "batch_size": sub.training.batch_size,
    });
    let shared = t
        .fit
        .cache
        .join(&crate::tokenize::text_sha256(&key.to_string())[..16]);
    for candidate in [&dir, &shared] {
        match cached_heads(candidate, &key) {
            Ok(()) => {
                eprintln!("teacher heads: reusing {}", candidate.display());
                if candidate == &shared && is_main(&opts.group) {
                    copy_dir(&shared, &dir)?;
                }
                barrier(&opts.group)?;
                return load(&dir);
            }
            Err(Some(why)) => {
                eprintln!("teacher heads: not reusing {}: {why}", candidate.display())
            }
            Err(None) => {}
        }
    }
    eprintln!(
        "teacher heads: the teacher has no {missing} head; fitting MLM and NSP heads ({} steps)",
        t.fit.steps
    );
    let summary = run(
        &sub,
        &RunOptions {
            resume: false,
            force: true,
            quiet: opts.quiet,
            group: opts.group.clone(),
        },
    )?;
    if is_main(&opts.group) {
        let _ = std::fs::remove_dir_all(sub.output.join("checkpoints"));
        let _ = std::fs::remove_dir_all(sub.output.join("init"));
        let key_path = summary.final_model.join("fit.json");
        std::fs::write(&key_path, serde_json::to_string_pretty(&key).expect("json"))
            .map_err(|e| Error::io(&key_path, e))?;
        // Into the shared cache (other runs and recipes reuse it), then beside the run.
        copy_dir(&summary.final_model, &shared)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&summary.final_model, &dir).map_err(|e| Error::io(&dir, e))?;
    }
    barrier(&opts.group)?;
    load(&dir)
}

/// The fit-heads job a distillation recipe runs on its teacher: MLM and NSP on BERT's own
/// examples (sentence pairs, `teacher.fit.mlm_probability` of the tokens masked), whatever
/// views and example format the distillation itself uses.
fn fit_recipe(recipe: &Recipe) -> Recipe {
    let t = recipe.teacher.as_ref().expect("validated");
    let mut sub = recipe.clone();
    sub.job = Job::FitHeads;
    sub.student = None;
    sub.output = recipe.output.join("teacher-heads-run");
    sub.data.examples = crate::data::ExampleFormat::Pairs;
    sub.data.mlm_probability = t.fit.mlm_probability;
    sub.losses = Default::default();
    sub.losses.mlm.weight = Scheduled::Constant(1.0);
    sub.losses.nsp.weight = Scheduled::Constant(1.0);
    sub.optimizer.learning_rate = t.fit.learning_rate;
    sub.optimizer.warmup_steps = t.fit.steps / 10;
    sub.training.steps = t.fit.steps;
    sub.training.batch_size = t.fit.batch_size;
    sub.training.gradient_accumulation = 1;
    sub.training.eval_every = 0;
    sub.training.checkpoint_every = 0;
    sub.training.keep_checkpoints = 1;
    sub
}

/// Whether `dir` holds heads fitted under `key`: Ok, or Err(Some(why not)) when it holds
/// heads fitted otherwise (another teacher, tokenizer, fit or data: named), Err(None) when
/// it holds none.
fn cached_heads(dir: &Path, key: &serde_json::Value) -> std::result::Result<(), Option<String>> {
    let text = std::fs::read_to_string(dir.join("fit.json")).map_err(|_| None)?;
    if !dir.join("model.safetensors").is_file() {
        return Err(None);
    }
    let found: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Some(format!("its fit.json is unreadable ({e})")))?;
    let what = |k: &str| match k {
        "weights_sha256" => "another teacher (its weights differ)",
        "tokenizer" => "another tokenizer",
        "fit" => "other teacher.fit settings",
        "seed" => "another seed",
        "data" => "other data settings",
        _ => "another batch size",
    };
    let differs: Vec<&str> = key
        .as_object()
        .expect("an object")
        .iter()
        .filter(|(k, v)| found.get(k.as_str()) != Some(*v))
        .map(|(k, _)| what(k))
        .collect();
    if differs.is_empty() {
        Ok(())
    } else {
        Err(Some(format!("fitted for {}", differs.join(", "))))
    }
}

/// Copies the files of folder `from` to `to` (under a temporary name, then renamed).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let parent = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = to.file_name().and_then(|n| n.to_str()).unwrap_or("dir");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        if entry.path().is_file() {
            let dst = tmp.join(entry.file_name());
            std::fs::copy(entry.path(), &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&tmp, to).map_err(|e| Error::io(to, e))
}

fn is_main(group: &Option<Arc<Group>>) -> bool {
    group.as_ref().is_none_or(|g| g.is_main())
}

fn barrier(group: &Option<Arc<Group>>) -> Result<()> {
    match group {
        Some(g) => g.barrier(),
        None => Ok(()),
    }
}

/// Joins the data-parallel run the launcher's variables describe (torchrun's `RANK`,
/// `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`); None when there is none.
pub fn join(recipe: &Recipe) -> Result<Option<Arc<Group>>> {
    let Some(launch) = Launch::from_env()? else {
        return Ok(None);
    };
    let device = rank_device(crate::device::parse(&recipe.device)?, &launch);
    Ok(Some(Arc::new(Group::init(&launch, device)?)))
}

/// A rank's device: `cuda:LOCAL_RANK` when the recipe runs on CUDA.
fn rank_device(device: Device, launch: &Launch) -> Device {
    match device {
        Device::Cuda(_) => Device::Cuda(launch.local_rank),
        d => d,
    }
}

/// What a run writes into its output folder (listed in its marker; `--force` removes these
/// and nothing else).
const RUN_ENTRIES: &[&str] = &[
    "metrics.csv",
    "loss.svg",
    "checkpoints",
    "init",
    "final",
    "teacher-heads",
    "teacher-heads-run",
];

/// Runs a recipe to its last step (or from its newest checkpoint with `resume`).
pub fn run(recipe: &Recipe, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let group = &opts.group;
    let main = is_main(group);
    let device = match (crate::device::parse(&recipe.device)?, group) {
        (Device::Cuda(_), Some(g)) => Device::Cuda(g.local_rank()),
        (d, _) => d,
    };
    let kind = precision(recipe, device)?;
    let out = &recipe.output;
    let inputs = recipe.inputs();
    let claim = || output::claim_entries(out, "output", "distill", RUN_ENTRIES, true, &inputs);
    if main {
        claim()?;
    } else {
        output::guard(out, "output", &inputs)?;
    }
    let ckpt_root = out.join("checkpoints");
    let existing = ckpt::list(&ckpt_root)?;
    if !existing.is_empty() && !opts.resume && !opts.force {
        return Err(Error::Invalid(format!(
            "{} already has checkpoints: use --resume to continue the run, or --force to start it over",
            out.display()
        )));
    }
    if opts.resume {
        if let Some(last) = existing.last() {
            let changed = recipe.changes_from(&ckpt::read_state(last)?.recipe);
            if !changed.is_empty() {
                return Err(Error::config(
                    &recipe.path,
                    changed[0].split(' ').next().unwrap_or("(recipe)"),
                    format!(
                        "differs from the recipe {} was made with: {}; only training.steps may change on --resume (use --force to start over)",
                        last.display(),
                        changed.join(", ")
                    ),
                ));
            }
        }
    }
    if opts.force {
        // Start over: only what earlier runs wrote there goes.
        barrier(group)?;
        if main {
            // The fitted heads stay: a cache checked against its key before any reuse.
            output::clear_own(out, "distill", &["teacher-heads"])?;
            claim()?;
        }
        barrier(group)?;
    }

    let tokenizer = recipe.tokenizer()?;
    let tok_dir = recipe.tokenizer_dir().to_path_buf();
    // Rank 0 builds the shard cache; the others then read it.
    if !main {
        barrier(group)?;
    }
    let sets = data::prepare(&recipe.data, &tokenizer)?;
    if main {
        barrier(group)?;
    }

    // The model that trains, and the teacher whose targets it learns.
    let need = Heads {
        pooler: false,
        mlm: !recipe.losses.kd_mlm.weight.is_zero(),
        nsp: !recipe.losses.kd_nsp.weight.is_zero(),
    };
    // Fresh weights (a random student, new heads) follow the recipe's seed.
    tch::manual_seed(recipe.seed as i64);
    // A target cache replaces the teacher in distillation; the teacher's weights still give
    // the student its shape and (from-teacher) initial weights, and are then dropped.
    let cache_dir = match (recipe.job, recipe.teacher.as_ref()) {
        (Job::Distill, Some(t)) => t.targets.as_ref().map(|c| c.dir.clone()),
        _ => None,
    };
    let cache = match &cache_dir {
        Some(dir) => {
            let c = Cache::open(dir, &targets::key(recipe, &sets)?)?;
            c.check_temperature(recipe)?;
            let sentence_loss = [
                ("pooled_cos", &recipe.losses.pooled_cos),
                ("pooled_mse", &recipe.losses.pooled_mse),
                ("similarity", &recipe.losses.similarity),
            ]
            .into_iter()
            .find(|(_, w)| !w.weight.is_zero());
            if let (Some((name, _)), false) = (sentence_loss, c.manifest.pooled) {
                return Err(Error::config(
                    &recipe.path,
                    format!("losses.{name}"),
                    format!(
                        "the target cache in {} holds no pooled embeddings (make it with teacher.targets.pooled: true)",
                        dir.display()
                    ),
                ));
            }
            Some(Arc::new(c))
        }
        None => None,
    };
    let (model, teacher) = match recipe.job {
        Job::Distill => {
            let teacher = match &cache {
                Some(_) => bert::load(
                    &recipe.teacher.as_ref().expect("validated").checkpoint,
                    &LoadOptions {
                        device,
                        ..Default::default()
                    },
                )?,
                None => teacher_with_heads(recipe, need, device, opts)?,
            };
            let s = recipe.student.as_ref().expect("validated");
            let base = teacher.config().clone();
            let model = student::build(s, &base, Some(&teacher), device, &recipe.path)?;
            (model, cache.is_none().then_some(teacher))
        }
        Job::Pretrain => {
            // The shape defaults come from the teacher's config when the recipe names one,
            // else from BERT's, with the tokenizer's vocabulary.
            let base = match &recipe.teacher {
                Some(t) => bert::BertConfig::from_file(t.checkpoint.join("config.json"))?,
                None => bert::BertConfig {
                    vocab_size: tokenizer.vocab_size() as i64,
                    ..Default::default()
                },
            };
            let s = recipe.student.as_ref().expect("validated");
            (student::build(s, &base, None, device, &recipe.path)?, None)
        }
        Job::FitHeads => {
            let t = recipe.teacher.as_ref().expect("validated");
            let m = bert::load(
                &t.checkpoint,
                &LoadOptions {
                    device,
                    heads: Heads::ALL,
                    untie_decoder: t.fit.decoder == super::recipe::Decoder::Untied,
                    ..Default::default()
                },
            )?;
            // Only the heads the checkpoint lacks train; the encoder and any head it has stay
            // frozen. The pooler trains with a new NSP head: in BERT's pretraining only NSP
            // shapes it, and a checkpoint without that head never trained it for NSP.
            let fresh = m.report.as_ref().expect("loaded").initialised;
            if !fresh.mlm && !fresh.nsp {
                return Err(Error::config(
                    &recipe.path,
                    "job",
                    format!(
                        "the teacher ({}) already has MLM and NSP heads: nothing to fit",
                        t.checkpoint.display()
                    ),
                ));
            }
            for (name, v) in m.vs.variables() {
                let trains = (fresh.mlm && name.starts_with("cls.predictions."))
                    || (fresh.nsp
                        && (name.starts_with("cls.seq_relationship.")
                            || name.starts_with("bert.pooler.")));
                if !trains {
                    let _ = v.set_requires_grad(false);
                }
            }
            (m, None)
        }
    };
    if tokenizer.vocab_size() as i64 > model.config().vocab_size {
        return Err(Error::tokenizer(
            tokenizer.source(),
            format!(
                "{} tokens, more than the model's vocab_size {}",
                tokenizer.vocab_size(),
                model.config().vocab_size
            ),
        ));
    }
    if let Some(t) = &teacher {
        if t.config().vocab_size != model.config().vocab_size {
            return Err(Error::Invalid(format!(
                "the student's vocabulary ({}) differs from the teacher's ({})",
                model.config().vocab_size,
                t.config().vocab_size
            )));
        }
    }
    let plan = plan(recipe, model.config(), teacher.as_ref().map(|t| t.config()))?;

    // A learned projection when hidden_mse compares different widths (TinyBERT).
    let extra = nn::VarStore::new(device);
    let projection = match &teacher {
        Some(t)
            if plan.has("hidden_mse") && t.config().hidden_size != model.config().hidden_size =>
        {
            Some(nn::linear(
                extra.root() / "projection",
                model.config().hidden_size,
                t.config().hidden_size,
                Default::default(),
            ))
        }
        _ => None,
    };
    if let (Some(p), Some(super::recipe::Init::Checkpoint(c))) =
        (&projection, recipe.student.as_ref().map(|s| &s.init))
    {
        if c.projection == Some(super::recipe::ProjectionInit::Keep) {
            load_projection(p, &c.checkpoint.join(super::recipe::PROJECTION_FILE))?;
        }
    }

    // The student as it starts (step 0): the baseline `destila eval --init` measures the
    // trained student against. Written on a fresh start only; a resumed run keeps it.
    if main && recipe.job != Job::FitHeads && (existing.is_empty() || !opts.resume) {
        save_model(&model, &tok_dir, &out.join("init"))?;
    }
    let (mut model, mut teacher) = (model, teacher);
    if kind != Kind::Float {
        model.vs.set_kind(kind);
        if let Some(t) = teacher.as_mut() {
            t.vs.set_kind(kind);
        }
    }
    if let Some(g) = group {
        // Every rank starts from rank 0's weights.
        let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
        vars.extend(
            extra
                .variables()
                .into_iter()
                .map(|(n, v)| (format!("extra.{n}"), v)),
        );
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let vars: Vec<Tensor> = vars.into_iter().map(|(_, v)| v).collect();
        g.broadcast_(&vars, 0)?;
    }
    let prepared = Prepared {
        device,
        kind,
        model,
        teacher,
        extra,
        projection,
        plan,
        sets,
        tokenizer,
        tok_dir,
        ckpt_root,
        existing,
        cache,
    };
    train(recipe, opts, started, prepared)
}

/// The learned projection saved by a stage-one run, into `p` (shapes checked).
fn load_projection(p: &nn::Linear, path: &Path) -> Result<()> {
    let saved: std::collections::HashMap<String, Tensor> =
        bert::checkpoint::read_safetensors(path)?
            .into_iter()
            .collect();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in [
            ("projection.weight", &p.ws),
            ("projection.bias", p.bs.as_ref().expect("bias")),
        ] {
            let t = saved
                .get(name)
                .ok_or_else(|| Error::checkpoint(path, format!("missing tensor {name}")))?;
            if t.size() != var.size() {
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "tensor {name}: shape {:?}, this run's projection is {:?} (student and teacher widths)",
                        t.size(),
                        var.size()
                    ),
                ));
            }
            var.shallow_clone().f_copy_(t)?;
        }
        Ok(())
    })
}

/// `model` as an HF folder with the tokenizer files at `dir`, written under a temporary
/// name and renamed (replacing what the run wrote there before).
fn save_model(model: &Model, tok_dir: &Path, dir: &Path) -> Result<()> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let parent = dir.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    bert::save(model, &tmp)?;
    ckpt::copy_tokenizer(tok_dir, &tmp)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
}

/// Everything `train` runs with, built by `run`.
struct Prepared {
    device: Device,
    kind: Kind,
    model: Model,
    teacher: Option<Model>,
    extra: nn::VarStore,
    projection: Option<nn::Linear>,
    plan: Plan,
    sets: data::Datasets,
    tokenizer: crate::tokenize::BertTokenizer,
    tok_dir: PathBuf,
    ckpt_root: PathBuf,
    existing: Vec<PathBuf>,
    /// The teacher-target cache, when the recipe trains from one.
    cache: Option<Arc<Cache>>,
}

/// Where training batches come from: the live pipeline, or a target cache.
enum Source {
    Live(Box<Loader>),
    Cache(CacheLoader),
}

impl Source {
    fn next_batch(&mut self) -> Result<Batch> {
        match self {
            Source::Live(l) => l
                .next_batch()
                .ok_or_else(|| Error::Invalid("the training data cannot fill one batch".into())),
            Source::Cache(c) => c.next_batch(),
        }
    }

    fn cursor(&self) -> Cursor {
        match self {
            Source::Live(l) => l.cursor(),
            Source::Cache(c) => c.cursor(),
        }
    }
}

fn train(recipe: &Recipe, opts: &RunOptions, started: Instant, p: Prepared) -> Result<RunSummary> {
    let Prepared {
        device,
        kind,
        mut model,
        teacher,
        extra,
        projection,
        plan,
        sets,
        tokenizer,
        tok_dir,
        ckpt_root,
        existing,
        cache,
    } = p;
    let out = &recipe.output;
    let tr = &recipe.training;
    let total = tr.steps;
    let group = &opts.group;
    let main = is_main(group);
    let (rank, world) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.world()));
    let mut named: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .collect();
    named.extend(
        extra
            .variables()
            .into_iter()
            .map(|(n, v)| (format!("extra.{n}"), v)),
    );
    let o = &recipe.optimizer;
    let mut optimizer = AdamW::new(named, o.betas.0, o.betas.1, o.eps);
    // Data parallel: DDP's reducer averages the gradients during the last micro-batch's
    // backward pass.
    let reducer = match group {
        Some(g) => {
            let reached: Vec<Tensor> = optimizer
                .variables()
                .into_iter()
                .filter(|(name, _)| plan.reaches(name))
                .map(|(_, v)| v)
                .collect();
            Some(dist::Reducer::new(g.clone(), &reached)?)
        }
        None => None,
    };
    let mut scaler = (kind == Kind::Half).then(LossScaler::new);

    let mut start = 0u64;
    let mut cursor = Cursor::default();
    if opts.resume {
        if let Some(last) = existing.last() {
            let state = ckpt::restore(last, &model, &mut optimizer, &extra)?;
            if state.world != world {
                return Err(Error::Invalid(format!(
                    "{}: the checkpoint was written by a run of {} process(es); resume it with the same number (this run has {world})",
                    last.display(),
                    state.world
                )));
            }
            start = state.step;
            cursor = state.cursor;
            scaler = state.scaler;
            eprintln!("resuming from {} (step {start})", last.display());
        } else {
            eprintln!(
                "nothing to resume in {}: starting at step 0",
                ckpt_root.display()
            );
        }
    }

    let bs = tr.batch_size;
    // Every rank draws the global batch (bs per rank) and keeps its slice.
    let lopts = data::loader_options(&recipe.data, &tokenizer, bs, recipe.seed);
    let mut train_opts = lopts.clone();
    train_opts.batch_size = bs * world;
    train_opts.rank = rank;
    train_opts.world = world;
    let mut loader = match &cache {
        Some(c) => Source::Cache(CacheLoader::new(
            c.clone(),
            rank,
            world,
            recipe.seed,
            tokenizer.pad_id,
            cursor,
        )?),
        None => Source::Live(Box::new(Loader::new(
            sets.train.corpus.clone(),
            sets.train.docs.clone(),
            train_opts,
            cursor,
        ))),
    };
    let val_batches: Vec<Batch> = match (&sets.validation, &cache) {
        (_, Some(c)) if main => (0..c.batches("validation"))
            .map(|i| {
                Ok(c.batch("validation", i, tokenizer.pad_id)?
                    .to_device(device))
            })
            .collect::<Result<_>>()?,
        (Some(v), None) if main => {
            let mut vo = lopts.clone();
            vo.shuffle = false;
            vo.seed = 1234;
            let mut l = Loader::new(v.corpus.clone(), v.docs.clone(), vo, Cursor::default());
            (0..tr.eval_batches)
                .map_while(|_| l.next_items())
                .map(|g| data::batch::collate(&g, tokenizer.pad_id).to_device(device))
                .collect()
        }
        _ => Vec::new(),
    };

    // Rank 0 alone writes metrics, checkpoints and the progress bar.
    let metrics_path = out.join("metrics.csv");
    let mut metrics = if main {
        Some(Metrics::open(&metrics_path, start)?)
    } else {
        None
    };
    let bar = if opts.quiet || !main {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} {msg} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    let job = format!("{:?}", recipe.job).to_lowercase();
    bar.set_prefix(job.clone());
    bar.set_position(start);

    let mut first_val: Option<f64> = None;
    let mut last_val: Option<f64> = None;
    let val_row = |step: u64,
                   model: &Model,
                   metrics: &mut Option<Metrics>,
                   epoch: u64|
     -> Result<Option<f64>> {
        let Some(metrics) = metrics.as_mut() else {
            return Ok(None);
        };
        if val_batches.is_empty() {
            return Ok(None);
        }
        let w = weights_at(&plan, step.saturating_sub(1), total);
        let temp = recipe.losses.temperature.at(step.saturating_sub(1), total);
        let e = evaluate(
            &plan,
            model,
            teacher.as_ref(),
            projection.as_ref(),
            &val_batches,
            &w,
            temp,
        )?;
        let mut row = Row::new("validation", step);
        row.set("epoch", epoch as f64)
            .set("temperature", temp)
            .set("loss", e.loss);
        for (n, v) in &e.components {
            row.set(n, *v);
        }
        if let Some(a) = e.mlm_accuracy {
            row.set("mlm_accuracy", a);
        }
        if let Some(a) = e.nsp_accuracy {
            row.set("nsp_accuracy", a);
        }
        metrics.write(&row)?;
        let parts: Vec<String> = e
            .components
            .iter()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect();
        bar.suspend(|| {
            eprintln!(
                "{job} step {step}: validation loss {:.4} ({}){}",
                e.loss,
                parts.join(", "),
                [("MLM", e.mlm_accuracy), ("NSP", e.nsp_accuracy)]
                    .iter()
                    .filter_map(|(n, a)| a.map(|a| format!(", {n} accuracy {a:.3}")))
                    .collect::<String>()
            )
        });
        Ok(Some(e.loss))
    };
    if start == 0 {
        first_val = val_row(0, &model, &mut metrics, 0)?;
    }

    let accum = tr.gradient_accumulation;
    let mut window = Instant::now();
    let (mut win_samples, mut win_tokens) = (0u64, 0u64);
    // Seconds in destila's own collectives outside the backward pass (loss counts and the
    // logged sums; the gradient all-reduce overlaps the backward), and steps, since the
    // last logged row.
    let (mut win_comm, mut win_steps) = (0.0f64, 0u64);
    for step in start..total {
        let lr = o.learning_rate * lr_factor(o.schedule, step, o.warmup_steps, total);
        let temp = recipe.losses.temperature.at(step, total);
        let weights = weights_at(&plan, step, total);
        tch::manual_seed(
            (recipe.seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(step as i64)
                .wrapping_add((rank as i64).wrapping_mul(7_919_000_017)),
        );
        let mut sums = vec![0.0; plan.active.len()];
        let (mut step_samples, mut step_tokens) = (0.0, 0.0);
        let scale = scaler.as_ref().map(|s| s.scale).unwrap_or(1.0);
        for micro in 0..accum {
            let batch = loader.next_batch()?.to_device(device);
            let sync = reducer.as_ref().filter(|_| micro + 1 == accum);
            if let Some(r) = sync {
                r.begin()?;
            }
            step_samples += batch.size() as f64;
            step_tokens += batch
                .inputs
                .attention_mask
                .sum(Kind::Int64)
                .int64_value(&[]) as f64;
            let c = compute(
                &plan,
                &model,
                teacher.as_ref(),
                projection.as_ref(),
                &batch,
                temp,
                true,
            )?;
            // Each component is a mean over its own count; weighing by count / global count
            // makes the sum over ranks the global batch's mean (alone: weight 1); the reducer
            // averages over the ranks, hence the factor `world`.
            let mut global = c.counts.clone();
            if let Some(g) = group {
                let t0 = Instant::now();
                g.sum_f64(&mut global)?;
                win_comm += t0.elapsed().as_secs_f64();
            }
            let mut loss = Tensor::zeros([], (Kind::Float, device));
            for (i, ((_, v), w)) in c.components.iter().zip(&weights).enumerate() {
                if c.counts[i] == 0.0 {
                    // Nothing to average here (a mean over nothing is NaN): contribute zero,
                    // yet keep the graph so the same gradients exist on every rank.
                    loss += v.nan_to_num(0.0, None::<f64>, None::<f64>) * 0.0;
                    continue;
                }
                let f = c.counts[i] / global[i];
                sums[i] += v.double_value(&[]) * f / accum as f64;
                loss += v * (*w * f * world as f64);
            }
            let loss = loss * (scale / accum as f64);
            match sync {
                Some(r) => {
                    r.expect(&loss)?;
                    r.backward(&loss)?;
                }
                None => loss.backward(),
            }
        }
        let mut agg = sums.clone();
        agg.extend([step_samples, step_tokens]);
        if let Some(g) = group {
            let t0 = Instant::now();
            g.sum_f64(&mut agg)?;
            win_comm += t0.elapsed().as_secs_f64();
        }
        let n = sums.len();
        win_samples += agg[n] as u64;
        win_tokens += agg[n + 1] as u64;
        sums.copy_from_slice(&agg[..n]);
        for ((name, _, _), x) in plan.active.iter().zip(&sums) {
            if !x.is_finite() {
                bar.abandon();
                return Err(Error::Invalid(format!(
                    "step {}: loss component {name} is {x}; stopped (the last good checkpoint is kept in {})",
                    step + 1,
                    ckpt_root.display()
                )));
            }
        }
        if scale != 1.0 {
            optimizer.scale_grads(1.0 / scale);
        }
        let grad_norm = optimizer.clip_grad_norm(o.max_grad_norm);
        let take = match scaler.as_mut() {
            Some(s) => s.update(grad_norm),
            None => true,
        };
        if !grad_norm.is_finite() && scaler.is_none() {
            bar.abandon();
            return Err(Error::Invalid(format!(
                "step {}: the gradient norm is {grad_norm}; stopped (the last good checkpoint is kept in {})",
                step + 1,
                ckpt_root.display()
            )));
        }
        if take {
            optimizer.step(lr, o.weight_decay);
        }
        optimizer.zero_grad();
        let done = step + 1;
        let loss: f64 = sums.iter().zip(&weights).map(|(v, w)| v * w).sum();
        win_steps += 1;
        let secs = window.elapsed().as_secs_f64();
        let (sps, tps) = (win_samples as f64 / secs, win_tokens as f64 / secs);
        if done % tr.log_every.max(1) == 0 || done == total || done == 1 {
            let mut row = Row::new("train", done);
            row.set("epoch", loader.cursor().epoch as f64)
                .set("lr", lr)
                .set("temperature", temp)
                .set("loss", loss)
                .set("grad_norm", grad_norm)
                .set("samples_per_s", sps)
                .set("tokens_per_s", tps)
                .set("elapsed_s", started.elapsed().as_secs_f64());
            row.set("step_s", secs / win_steps as f64);
            if group.is_some() {
                row.set("sync_s", win_comm / win_steps as f64);
            }
            for ((name, _, _), v) in plan.active.iter().zip(&sums) {
                row.set(name, *v);
            }
            if let Some(m) = metrics.as_mut() {
                m.write(&row)?;
            }
            window = Instant::now();
            win_samples = 0;
            win_tokens = 0;
            win_comm = 0.0;
            win_steps = 0;
        }
        let parts: Vec<String> = plan
            .active
            .iter()
            .zip(&sums)
            .map(|((n, _, _), v)| format!("{n} {v:.3}"))
            .collect();
        bar.set_message(format!(
            "loss {loss:.4} ({}) {sps:.1} samples/s",
            parts.join(" ")
        ));
        bar.inc(1);
        if tr.eval_every > 0 && done % tr.eval_every == 0 && done != total {
            last_val = val_row(done, &model, &mut metrics, loader.cursor().epoch)?.or(last_val);
        }
        if main && ((tr.checkpoint_every > 0 && done % tr.checkpoint_every == 0) || done == total) {
            let state = TrainerState {
                step: done,
                cursor: loader.cursor(),
                scaler: scaler.clone(),
                recipe: recipe.clone(),
                world,
            };
            ckpt::save(
                &ckpt_root,
                &model,
                &optimizer,
                &extra,
                &state,
                &tok_dir,
                tr.keep_checkpoints,
            )?;
        }
    }
    bar.finish_and_clear();
    if let Some(v) = val_row(total, &model, &mut metrics, loader.cursor().epoch)? {
        last_val = Some(v);
    }
    drop(metrics);
    let final_dir = out.join("final");
    let plot = out.join("loss.svg");
    if !main {
        return Ok(RunSummary {
            output: out.clone(),
            steps: total,
            first_validation: None,
            last_validation: None,
            final_model: final_dir,
            metrics: metrics_path,
            plot,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    // The final model as an HF folder (fp32), with the tokenizer.
    if kind != Kind::Float {
        model.vs.set_kind(Kind::Float);
    }
    save_model(&model, &tok_dir, &final_dir)?;
    // A learned projection goes beside the model, for a next stage to keep or drop.
    if let Some(p) = &projection {
        let path = final_dir.join(super::recipe::PROJECTION_FILE);
        let named = [
            ("projection.weight", p.ws.to_kind(Kind::Float)),
            (
                "projection.bias",
                p.bs.as_ref().expect("bias").to_kind(Kind::Float),
            ),
        ];
        crate::error::write_atomic(&path, |tmp| {
            Tensor::write_safetensors(&named, tmp)
                .map_err(|e| Error::checkpoint(tmp, e.to_string()))
        })?;
    }

    metrics::plot(
        &metrics_path,
        &plot,
        &format!("destila {job}: {}", recipe.path.display()),
    )?;
    Ok(RunSummary {
        output: out.clone(),
        steps: total,
        first_validation: first_val,
        last_validation: last_val,
        final_model: final_dir,
        metrics: metrics_path,
        plot,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Forward FLOPs of a BERT over `tokens` tokens of sequence length `len`, with the MLM
/// head at `masked` positions (multiply-adds count 2).
pub fn forward_flops(c: &bert::BertConfig, tokens: f64, len: f64, masked: f64) -> f64 {
    let (h, i, v, l) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
        c.num_hidden_layers as f64,
    );
    let per_token_layer = 2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * len * h;
    l * tokens * per_token_layer + 2.0 * masked * (h * h + v * h)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepResult {
    pub batch: i64,
    pub seq_len: i64,
    pub student_layers: i64,
    pub device: String,
    pub dtype: String,
    pub threads: i32,
    pub seconds: Vec<f64>,
    pub median_s: f64,
    pub samples_per_s: f64,
    /// Model FLOPs of one step: teacher forward + 3 × student forward.
    pub step_flops: f64,
    pub tflops_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// What `bench_step` runs.
#[derive(Debug, Clone)]
pub struct StepBench {
    pub student_layers: i64,
    pub batch: i64,
    pub seq_len: i64,
    pub iters: usize,
    pub warmup: usize,
    pub device: Device,
    pub kind: Kind,
}

/// Times the trainer's own step (forwards, the five demo losses, backward, clipping,
/// AdamW) on a random full-length batch, 15% of positions masked.
pub fn bench_step(teacher_dir: &Path, setup: &StepBench) -> Result<StepResult> {
    let StepBench {
        student_layers,
        batch,
        seq_len,
        iters,
        warmup,
        device,
        kind,
    } = setup.clone();
    let yaml = format!(
        "teacher: {{checkpoint: {}}}\nstudent: {{layers: {student_layers}, init: from-teacher}}\ndata: {{train: [unused]}}\n\
         losses: {{temperature: 2.0, kd_mlm: {{weight: 1}}, kd_nsp: {{weight: 1}}, mlm: {{weight: 1}}, nsp: {{weight: 1}}, hidden_cos: {{weight: 1}}}}\n",
        teacher_dir.display()
    );
    let recipe = Recipe::from_str(&yaml, Path::new("(bench step)"))?;
    let lo = LoadOptions {
        device,
        ..Default::default()
    };
    let mut teacher = bert::load(teacher_dir, &lo)?;
    let mut model = student::build(
        recipe.student.as_ref().expect("set"),
        &teacher.config().clone(),
        Some(&teacher),
        device,
        &recipe.path,
    )?;
    let plan = plan(&recipe, model.config(), Some(teacher.config()))?;
    if kind != Kind::Float {
        teacher.vs.set_kind(kind);
        model.vs.set_kind(kind);
    }
    let named: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    let mut opt = AdamW::new(named, 0.9, 0.999, 1e-6);
    let inputs = crate::bench::random_inputs(teacher.config().vocab_size, batch, seq_len, 0);
    let n = batch * seq_len;
    let masked = ((n as f64) * 0.15).round() as i64;
    let positions = Tensor::randperm(n, (Kind::Int64, Device::Cpu))
        .narrow(0, 0, masked)
        .sort(0, false)
        .0;
    let masked_labels = inputs.input_ids.view([-1]).index_select(0, &positions);
    let labels = Tensor::full([n], -100, (Kind::Int64, Device::Cpu)).index_put(
        &[Some(positions.shallow_clone())],
        &masked_labels,
        false,
    );
    let b = Batch {
        labels: labels.view([batch, seq_len]),
        masked_positions: positions,
        masked_labels,
        nsp_labels: Tensor::randint(2, [batch], (Kind::Int64, Device::Cpu)),
        inputs,
        targets: None,
    }
    .to_device(device);
    let mut seconds = Vec::new();
    for i in 0..warmup + iters {
        let start = Instant::now();
        let c = compute(&plan, &model, Some(&teacher), None, &b, 2.0, true)?;
        let mut loss = Tensor::zeros([], (Kind::Float, device));
        for (_, v) in &c.components {
            loss += v;
        }
        loss.backward();
        opt.clip_grad_norm(1.0);
        opt.step(1e-4, 0.01);
        opt.zero_grad();
        let _ = loss.double_value(&[]);
        if i >= warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
    }
    let median_s = crate::bench::median(&seconds);
    let (tokens, len) = ((batch * seq_len) as f64, seq_len as f64);
    let step_flops = forward_flops(teacher.config(), tokens, len, masked as f64)
        + 3.0 * forward_flops(model.config(), tokens, len, masked as f64);
    Ok(StepResult {
        batch,
        seq_len,
        student_layers,
        device: crate::device::describe(device),
        dtype: crate::bert::checkpoint::kind_name(kind),
        threads: tch::get_num_threads(),
        seconds,
        median_s,
        samples_per_s: batch as f64 / median_s,
        step_flops,
        tflops_per_s: step_flops / median_s / 1e12,
        peak_rss_bytes: crate::bench::peak_rss_bytes(),
    })
}
