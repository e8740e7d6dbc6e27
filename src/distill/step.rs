//! One step's losses: the plan of active losses (their layer pairs, views, what they reach)
//! and the computation of a batch's loss components, used alike by training, validation
//! and the step benchmark.

use std::collections::BTreeMap;

use tch::{nn, Kind, Tensor};

use super::losses;
use super::recipe::{KdPositions, LossWeight, Recipe, Scheduled, View};
use super::text_teacher::TextTeacher;
use crate::bert::{self, BertOutput, ForwardOptions, MlmPositions, Model};
use crate::data::Batch;
use crate::error::{Error, Result};

/// An active loss: its name, weight and (student, teacher) layer pairs.
pub(crate) type Active = (&'static str, Scheduled, Vec<(usize, usize)>);

/// The active losses with their layer pairs resolved.
pub(crate) struct Plan {
    pub(crate) active: Vec<Active>,
    /// Each active loss's settings (its view, the similarity loss's form), as `active`.
    pub(crate) settings: Vec<LossWeight>,
    pub(crate) kd_all_positions: bool,
    /// Whether batches carry NSP labels (sentence pairs); single sentences do not.
    pub(crate) nsp_labels: bool,
    pub(crate) student_layers: usize,
}

impl Plan {
    pub(crate) fn has(&self, name: &str) -> bool {
        self.active.iter().any(|(n, _, _)| *n == name)
    }

    /// Whether the active losses reach parameter `name` (so that it gets a gradient; the
    /// data-parallel reducer must be given exactly those): the pooler and NSP head only
    /// through an NSP loss, the MLM head's own parameters only through an MLM loss; an
    /// encoder layer in full when a loss reads a hidden state at or after its output (the
    /// heads and pooled losses read the last), and only its query and key (attention
    /// scores or probabilities) or its value (value relations) when a loss reads those of
    /// that layer and nothing later. Embeddings and learned projections always.
    pub(crate) fn reaches(&self, name: &str) -> bool {
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

pub(crate) fn default_pairs(name: &str, ls: usize, lt: usize) -> Vec<(usize, usize)> {
    let scaled = |i: usize| ((i * lt) as f64 / ls as f64).round() as usize;
    match name {
        "hidden_mse" => (0..=ls).map(|i| (i, scaled(i))).collect(),
        "attention_mse" => (1..=ls).map(|i| (i, scaled(i))).collect(),
        "hidden_cos" | "attention_kl" | "value_relation" => vec![(ls, lt)],
        _ => Vec::new(),
    }
}

/// The losses that compare the student's hidden states with the teacher's directly (no
/// projection) refuse a student of another width: `field` names where the width comes from
/// (student.hidden_size, or student.prune.hidden before the pruning that makes it).
pub(crate) fn check_widths(recipe: &Recipe, field: &str, student: i64, teacher: i64) -> Result<()> {
    for (name, w) in recipe.losses.all() {
        let w: &LossWeight = w;
        if !w.weight.is_zero()
            && matches!(name, "pooled_cos" | "pooled_mse" | "hidden_cos")
            && student != teacher
        {
            return Err(Error::config(
                &recipe.path,
                field,
                format!(
                    "{student} differs from the teacher's {teacher}, and losses.{name} compares hidden states directly"
                ),
            ));
        }
    }
    Ok(())
}

pub(crate) fn plan(
    recipe: &Recipe,
    s: &bert::BertConfig,
    t: Option<&bert::BertConfig>,
) -> Result<Plan> {
    let ls = s.num_hidden_layers as usize;
    let lt = t.map(|t| t.num_hidden_layers as usize).unwrap_or(ls);
    let mut active = Vec::new();
    let mut settings = Vec::new();
    let err = |f: String, m: String| Error::config(&recipe.path, f, m);
    if let Some(t) = t {
        check_widths(recipe, "student.hidden_size", s.hidden_size, t.hidden_size)?;
    }
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
        if name.starts_with("attention") || name == "value_relation" {
            if let Some(t) = t {
                // Layer by layer: a structurally pruned model's layers have their own heads.
                for &(a, b) in &pairs {
                    let (hs, ht) = (s.heads_of(a - 1), t.heads_of(b - 1));
                    // (Their sizes may differ: the losses compare [len, len] maps.)
                    if hs != ht {
                        return Err(err(
                            "student.attention_heads".into(),
                            format!(
                                "the student's layer {a} has {hs} heads, the teacher's layer {b} {ht}, and losses.{name} compares heads one to one"
                            ),
                        ));
                    }
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
    pub(crate) fn reads(&self, view: View) -> bool {
        self.settings.iter().any(|w| w.view == view)
    }

    /// Whether an active loss on `view` needs the attention internals.
    pub(crate) fn attentions(&self, view: View) -> bool {
        self.active
            .iter()
            .zip(&self.settings)
            .any(|((n, _, _), w)| {
                w.view == view && (n.starts_with("attention") || *n == "value_relation")
            })
    }

    /// Whether an active loss named in `names` reads `view`.
    pub(crate) fn reads_any(&self, view: View, names: &[&str]) -> bool {
        self.active
            .iter()
            .zip(&self.settings)
            .any(|((n, _, _), w)| w.view == view && names.contains(n))
    }
}

/// What one batch gives: raw loss components, and what accuracy needs.
pub(crate) struct Computed {
    pub(crate) components: Vec<(&'static str, Tensor)>,
    /// What each component is a mean over (masked positions, sequences, tokens, ...), so
    /// that data-parallel ranks can weigh their means into the global batch's.
    pub(crate) counts: Vec<f64>,
    pub(crate) student: BertOutput,
    /// Labels of the rows of `student.mlm_logits` (-100 where not masked).
    pub(crate) mlm_labels: Tensor,
}

/// The batch with every masked token restored: what a loss on the clean view reads.
pub fn clean_inputs(batch: &Batch) -> bert::Inputs {
    let ids = &batch.inputs.input_ids;
    bert::Inputs {
        input_ids: ids.where_self(&batch.labels.eq(-100), &batch.labels),
        attention_mask: batch.inputs.attention_mask.shallow_clone(),
        token_type_ids: batch.inputs.token_type_ids.shallow_clone(),
    }
}

/// The clean first segment alone (`View::First`): the clean batch with everything after
/// the first segment out of attention, as if the example were `[CLS] A [SEP]`.
pub fn first_inputs(batch: &Batch) -> bert::Inputs {
    let clean = clean_inputs(batch);
    let first = clean
        .token_type_ids
        .eq(0)
        .to_kind(clean.attention_mask.kind());
    bert::Inputs {
        attention_mask: &clean.attention_mask * first,
        token_type_ids: clean.token_type_ids.zeros_like(),
        input_ids: clean.input_ids,
    }
}

/// One view's forward outputs: the student's, and the teacher's when there is one.
pub(crate) struct Forward {
    pub(crate) student: BertOutput,
    pub(crate) teacher: Option<BertOutput>,
}

/// The forwards of one view: `mlm` the positions where MLM logits are asked for;
/// `temperature` the one averaged soft targets are mixed at.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_view(
    plan: &Plan,
    view: View,
    model: &Model,
    teacher: Teacher,
    inputs: &bert::Inputs,
    mlm: &MlmPositions,
    train: bool,
    temperature: f64,
) -> Result<Forward> {
    let attentions = plan.attentions(view);
    let s_opts = ForwardOptions {
        attentions,
        mlm: mlm.clone(),
        nsp: plan.reads_any(view, &["nsp", "kd_nsp"]) || view == View::Masked,
        train,
    };
    let student = model.forward(inputs, &s_opts)?;
    let teacher = match teacher.model {
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
            let out = tch::no_grad(|| t.forward(inputs, &t_opts))?;
            Some(average_heads(out, teacher, inputs, &t_opts, temperature)?)
        }
        None => None,
    };
    Ok(Forward { student, teacher })
}

/// The first teacher's output with its MLM and NSP logits replaced by the weighted mean of
/// every teacher's soft targets at `temperature` (as logits: `losses::mixture`), when
/// teachers are averaged; as it is otherwise.
fn average_heads(
    mut out: BertOutput,
    teachers: Teacher,
    inputs: &bert::Inputs,
    opts: &ForwardOptions,
    temperature: f64,
) -> Result<BertOutput> {
    if teachers.also.is_empty() {
        return Ok(out);
    }
    let opts = ForwardOptions {
        attentions: false,
        mlm: opts.mlm.clone(),
        nsp: opts.nsp,
        train: false,
    };
    let others = teachers
        .also
        .iter()
        .map(|(m, w)| Ok((tch::no_grad(|| m.forward(inputs, &opts))?, *w)))
        .collect::<Result<Vec<_>>>()?;
    let mix = |first: &Option<Tensor>, pick: fn(&BertOutput) -> &Option<Tensor>| {
        first.as_ref().map(|f| {
            let mut parts = vec![(f.shallow_clone(), teachers.weight)];
            parts.extend(
                others
                    .iter()
                    .map(|(o, w)| (pick(o).as_ref().expect("asked for").shallow_clone(), *w)),
            );
            losses::mixture(&parts, temperature)
        })
    };
    out.mlm_logits = mix(&out.mlm_logits, |o| &o.mlm_logits);
    out.nsp_logits = mix(&out.nsp_logits, |o| &o.nsp_logits);
    Ok(out)
}

/// What every loss of one batch reads besides the models' outputs.
struct Ctx<'a> {
    batch: &'a Batch,
    mask: &'a Tensor,
    /// The flattened positions where MLM logits were computed.
    positions: &'a Tensor,
    mlm_labels: &'a Tensor,
    temperature: f64,
    projection: Option<&'a nn::Linear>,
    /// The teachers that read text, and each one's sentence embeddings of this view's
    /// sentences (empty without).
    texts: &'a [TextTeacher],
    text_pooled: &'a [Tensor],
    combined: bool,
}

/// The loss components of one batch: one forward of each model per view that an active
/// loss reads (the masked one first, so that a run with no clean-view loss computes
/// exactly what it did before views), then each active loss and what it averages over.
/// A step's teacher: a BERT run alongside the student, or teachers that read text.
#[derive(Clone, Copy, Default)]
pub(crate) struct Teacher<'a> {
    pub(crate) model: Option<&'a Model>,
    /// `model`'s weight beside `also`'s.
    pub(crate) weight: f64,
    /// BERTs run beside `model` on the same ids, with their weights: the soft MLM and NSP
    /// targets are the weighted mean of each teacher's (`Recipe::token_ensemble`).
    pub(crate) also: &'a [(Model, f64)],
    pub(crate) text: &'a [TextTeacher],
    /// `teacher.combine: targets`: the sentence losses against one target made of every
    /// text teacher, rather than the weighted mean of the loss against each.
    pub(crate) combined: bool,
}

pub(crate) fn compute(
    plan: &Plan,
    model: &Model,
    teachers: Teacher,
    projection: Option<&nn::Linear>,
    batch: &Batch,
    temperature: f64,
    train: bool,
) -> Result<Computed> {
    let text = teachers.text;
    let mask = &batch.inputs.attention_mask;
    let positions = if plan.kd_all_positions && plan.has("kd_mlm") {
        mask.view([-1]).nonzero().squeeze_dim(-1)
    } else {
        batch.masked_positions.shallow_clone()
    };
    let mlm_labels = batch.labels.view([-1]).index_select(0, &positions);
    let masked = if plan.reads(View::Masked) {
        let mlm = MlmPositions::Flat(positions.shallow_clone());
        let inputs = &batch.inputs;
        Some(forward_view(
            plan,
            View::Masked,
            model,
            teachers,
            inputs,
            &mlm,
            train,
            temperature,
        )?)
    } else {
        None
    };
    let clean_in = plan.reads(View::Clean).then(|| clean_inputs(batch));
    let clean = match &clean_in {
        Some(inputs) => Some(forward_view(
            plan,
            View::Clean,
            model,
            teachers,
            inputs,
            &MlmPositions::None,
            train,
            temperature,
        )?),
        None => None,
    };
    let first = if plan.reads(View::First) {
        let inputs = first_inputs(batch);
        let f = forward_view(
            plan,
            View::First,
            model,
            teachers,
            &inputs,
            &MlmPositions::None,
            train,
            temperature,
        )?;
        Some((f, inputs))
    } else {
        None
    };
    // Teachers that read text: each one's sentence embeddings of each view's sentences.
    let text_of = |inputs: Option<&bert::Inputs>| -> Result<Vec<Tensor>> {
        match inputs {
            Some(i) => text
                .iter()
                .map(|t| t.pooled(&i.input_ids, &i.attention_mask))
                .collect(),
            None => Ok(Vec::new()),
        }
    };
    let text_clean = text_of(clean_in.as_ref())?;
    let text_first = text_of(first.as_ref().map(|(_, i)| i))?;
    let mut components = Vec::new();
    let mut counts = Vec::new();
    for ((name, _, pairs), w) in plan.active.iter().zip(&plan.settings) {
        let (f, mask, text_pooled) = match w.view {
            View::Masked => (masked.as_ref(), mask, &[][..]),
            View::Clean => (clean.as_ref(), mask, &text_clean[..]),
            View::First => (
                first.as_ref().map(|(f, _)| f),
                &first.as_ref().expect("ran").1.attention_mask,
                &text_first[..],
            ),
        };
        let f = f.expect("the view's forward ran");
        let ctx = Ctx {
            batch,
            mask,
            positions: &positions,
            mlm_labels: &mlm_labels,
            temperature,
            projection,
            texts: if text_pooled.is_empty() { &[] } else { text },
            text_pooled,
            combined: teachers.combined,
        };
        counts.push(count(name, &ctx));
        components.push((*name, loss(name, w, pairs, f, &ctx)?));
    }
    let student = match (masked, clean, first) {
        (Some(m), _, _) => m.student,
        (None, Some(c), _) => c.student,
        (None, None, Some((f, _))) => f.student,
        (None, None, None) => return Err(Error::Invalid("no active loss".into())),
    };
    Ok(Computed {
        components,
        counts,
        student,
        mlm_labels,
    })
}

/// What loss `name` is a mean over: masked positions, sequences, attention cells, tokens.
fn count(name: &str, c: &Ctx) -> f64 {
    let (b, len) = (c.mask.size()[0] as f64, c.mask.size()[1] as f64);
    match name {
        "kd_mlm" => c.positions.size()[0] as f64,
        "mlm" => c.batch.masked_positions.size()[0] as f64,
        "kd_nsp" | "nsp" | "pooled_cos" | "pooled_mse" | "similarity" => b,
        "attention_mse" => b * len * len,
        _ => c.mask.sum(Kind::Float).double_value(&[]),
    }
}

fn need_teacher(f: &Forward) -> Result<&BertOutput> {
    f.teacher
        .as_ref()
        .ok_or_else(|| Error::Invalid("this loss needs a teacher".into()))
}

/// One loss component of one batch.
fn loss(
    name: &str,
    w: &LossWeight,
    pairs: &[(usize, usize)],
    f: &Forward,
    c: &Ctx,
) -> Result<Tensor> {
    match name {
        "kd_mlm" | "kd_nsp" | "mlm" | "nsp" => head_loss(name, f, c),
        "pooled_cos" | "pooled_mse" | "similarity" => sentence_loss(name, w, f, c),
        "hidden_cos" | "hidden_mse" | "attention_mse" | "attention_kl" | "value_relation" => {
            layer_loss(name, pairs, f, c)
        }
        other => Err(Error::Invalid(format!("unknown loss {other}"))),
    }
}

/// The MLM and NSP losses: against the labels, or the teacher's (or the cache's) logits.
fn head_loss(name: &str, f: &Forward, c: &Ctx) -> Result<Tensor> {
    let s = &f.student;
    let targets = c.batch.targets.as_ref();
    let mlm = || s.mlm_logits.as_ref().expect("asked for");
    let nsp = || s.nsp_logits.as_ref().expect("asked for");
    Ok(match name {
        "kd_mlm" => match targets {
            Some(tg) => losses::kd_topk_tail(
                &tg.topk_ids,
                &tg.topk_logits,
                &tg.tail,
                mlm(),
                c.temperature,
            ),
            None => {
                let t = need_teacher(f)?.mlm_logits.as_ref().expect("asked for");
                losses::kd(t, mlm(), c.temperature)
            }
        },
        "kd_nsp" => {
            let t = match targets {
                Some(tg) => &tg.nsp_logits,
                None => need_teacher(f)?.nsp_logits.as_ref().expect("asked for"),
            };
            losses::kd(t, nsp(), c.temperature)
        }
        "mlm" => losses::cross_entropy(mlm(), c.mlm_labels),
        _ => losses::cross_entropy(nsp(), &c.batch.nsp_labels),
    })
}

/// The sentence-embedding losses, on mean-pooled last hidden states; the teacher's
/// embedding from the cache, or pooled live.
/// Teachers that read text: the weighted mean of the loss against each one, or
/// (`teacher.combine: targets`) the loss against their combination.
fn sentence_loss(name: &str, w: &LossWeight, f: &Forward, c: &Ctx) -> Result<Tensor> {
    let last = f.student.hidden_states.last().expect("has layers");
    let pooled = losses::mean_pool(last, c.mask);
    if !c.text_pooled.is_empty() && c.combined {
        let parts: Vec<(Tensor, f64)> = c
            .texts
            .iter()
            .zip(c.text_pooled)
            .map(|(t, p)| (p.shallow_clone(), t.weight))
            .collect();
        return Ok(match name {
            "similarity" => {
                let (form, tau) = w.relation();
                let target = losses::weighted_cosine_matrix(&parts);
                losses::relation(&losses::cosine_matrix(&pooled), &target, form, tau)
            }
            _ => {
                let target = losses::weighted_concat(&parts);
                one_sentence_loss(name, w, &pooled, &target, c.texts[0].map.as_ref())
            }
        });
    }
    if !c.text_pooled.is_empty() {
        let total: f64 = c.texts.iter().map(|t| t.weight).sum();
        let terms: Vec<Tensor> = c
            .texts
            .iter()
            .zip(c.text_pooled)
            .map(|(t, p)| {
                one_sentence_loss(name, w, &pooled, p, t.map.as_ref()) * (t.weight / total)
            })
            .collect();
        return Ok(Tensor::stack(&terms, 0).sum(Kind::Float));
    }
    let cached = c.batch.targets.as_ref().and_then(|tg| tg.pooled.as_ref());
    let teacher = match cached {
        Some(p) => p.shallow_clone(),
        None => losses::mean_pool(
            need_teacher(f)?.hidden_states.last().expect("has layers"),
            c.mask,
        ),
    };
    Ok(one_sentence_loss(name, w, &pooled, &teacher, None))
}

/// One sentence loss between the student's and a teacher's embeddings; the pointwise ones
/// through `map` to the teacher's width when given (teacher.reduce: learned), the
/// similarity loss (in-batch cosine matrices) needs none.
fn one_sentence_loss(
    name: &str,
    w: &LossWeight,
    pooled: &Tensor,
    teacher: &Tensor,
    map: Option<&nn::Linear>,
) -> Tensor {
    let mapped = || match map {
        Some(p) => pooled.apply(p),
        None => pooled.shallow_clone(),
    };
    match name {
        "pooled_cos" => losses::embedding_cos(&mapped(), teacher),
        "pooled_mse" => losses::pooled_mse(&mapped(), teacher),
        _ => {
            let (form, tau) = w.relation();
            losses::similarity(pooled, teacher, form, tau)
        }
    }
}

/// The layer-to-layer losses (hidden states, attention, value relations), averaged over
/// their (student, teacher) layer pairs.
fn layer_loss(name: &str, pairs: &[(usize, usize)], f: &Forward, c: &Ctx) -> Result<Tensor> {
    let (s, t) = (&f.student, need_teacher(f)?);
    let mask = c.mask;
    let mean = |f: &dyn Fn(usize, usize) -> Tensor| {
        let terms: Vec<Tensor> = pairs.iter().map(|&(a, b)| f(a, b)).collect();
        Tensor::stack(&terms, 0).mean(Kind::Float)
    };
    Ok(match name {
        "hidden_cos" => {
            mean(&|a, b| losses::hidden_cos(&s.hidden_states[a], &t.hidden_states[b], mask))
        }
        "hidden_mse" => mean(&|a, b| {
            let h = &s.hidden_states[a];
            let h = match c.projection {
                Some(p) => h.to_kind(Kind::Float).apply(p),
                None => h.shallow_clone(),
            };
            losses::hidden_mse(&h, &t.hidden_states[b], mask)
        }),
        _ => {
            let (sa, ta) = (
                s.attentions.as_ref().expect("asked for"),
                t.attentions.as_ref().expect("asked for"),
            );
            mean(&|a, b| {
                let (x, y) = (&sa[a - 1], &ta[b - 1]);
                match name {
                    "attention_mse" => losses::attention_mse(&x.scores, &y.scores, mask),
                    "attention_kl" => losses::attention_kl(&x.scores, &y.scores, mask),
                    _ => losses::value_relation(&x.values, &y.values, mask),
                }
            })
        }
    })
}

pub(crate) fn weights_at(plan: &Plan, step: u64, total: u64) -> Vec<f64> {
    plan.active
        .iter()
        .map(|(_, w, _)| w.at(step, total))
        .collect()
}

pub(crate) struct Eval {
    pub(crate) components: BTreeMap<&'static str, f64>,
    pub(crate) loss: f64,
    /// None when no loss reads the masked view (the student predicted nothing).
    pub(crate) mlm_accuracy: Option<f64>,
    pub(crate) nsp_accuracy: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn evaluate(
    plan: &Plan,
    model: &Model,
    teacher: Teacher,
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
