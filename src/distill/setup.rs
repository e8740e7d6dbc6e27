//! Setting up a run: its output folder (claimed, resumed or started over), its data, the
//! target cache, the models (teacher with heads, student; or the teacher whose heads are
//! fitted), the loss plan and a learned projection, all before the first step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::{nn, Device, Kind, Tensor};

use super::checkpoint as ckpt;
use super::recipe::{Combine, Decoder, Init, Job, ProjectionInit, Recipe, Reduce, PROJECTION_FILE};
use super::step::{self, Plan};
use super::student;
use super::targets::{self, Cache};
use super::teacher::{self, FitRun};
use super::text_teacher::TextTeacher;
use crate::bert::{self, Heads, LoadOptions, Model};
use crate::data;
use crate::dist::{self, Group};
use crate::error::{Error, Result};
use crate::output;
use crate::tokenize::BertTokenizer;

/// What a run writes into its output folder (listed in its marker; `--force` removes these
/// and nothing else).
pub const RUN_ENTRIES: &[&str] = &[
    "metrics.csv",
    "loss.svg",
    "loss.png",
    "checkpoints",
    "init",
    "final",
    "teacher-heads",
    "teacher-heads-run",
    "teacher-adapted",
    "teacher-adapted-run",
];

/// Everything the trainer runs with.
pub(crate) struct Prepared {
    pub(crate) device: Device,
    pub(crate) kind: Kind,
    pub(crate) model: Model,
    pub(crate) teacher: Option<Model>,
    /// The teachers run beside `teacher` whose soft MLM/NSP targets are averaged with its,
    /// with their weights (`teacher.also` with kd_mlm/kd_nsp: `Recipe::token_ensemble`).
    pub(crate) also: Vec<(Model, f64)>,
    /// Teachers that read text (an MPNet, or several: `teacher.also`), in place of
    /// `teacher`.
    pub(crate) text: Vec<TextTeacher>,
    pub(crate) extra: nn::VarStore,
    pub(crate) projection: Option<nn::Linear>,
    pub(crate) plan: Plan,
    pub(crate) sets: data::Datasets,
    pub(crate) tokenizer: BertTokenizer,
    pub(crate) tok_dir: PathBuf,
    pub(crate) ckpt_root: PathBuf,
    pub(crate) existing: Vec<PathBuf>,
    /// The teacher-target cache, when the recipe trains from one.
    pub(crate) cache: Option<Arc<Cache>>,
}

/// How a run meets its folder and the processes it shares it with.
pub(crate) struct Setup<'a> {
    pub(crate) recipe: &'a Recipe,
    pub(crate) group: &'a Option<Arc<Group>>,
    pub(crate) resume: bool,
    pub(crate) force: bool,
    /// Runs the fit-heads recipe when the teacher needs heads (the trainer's `run`).
    pub(crate) fit: FitRun<'a>,
}

pub(crate) fn precision(recipe: &Recipe, device: Device) -> Result<Kind> {
    Ok(match (recipe.precision.as_str(), device) {
        ("auto", Device::Cpu) | ("fp32", _) => Kind::Float,
        ("auto", _) | ("bf16", _) => Kind::BFloat16,
        ("fp16", _) => Kind::Half,
        (p, _) => return Err(Error::config(&recipe.path, "precision", format!("{p:?}"))),
    })
}

/// Everything before the first step, in an order that keeps the random draws of a run
/// reproducible (the seed is set before the first fresh weight).
pub(crate) fn prepare(s: &Setup) -> Result<Prepared> {
    let recipe = s.recipe;
    let main = dist::is_main(s.group);
    let device = dist::group_device(crate::device::parse(&recipe.device)?, s.group);
    let kind = precision(recipe, device)?;
    writable_caches(recipe)?;
    let existing = claim_output(s)?;
    let tokenizer = recipe.tokenizer()?;
    let tok_dir = recipe.tokenizer_dir().to_path_buf();
    // Rank 0 builds the shard cache; the others then read it.
    if !main {
        dist::barrier(s.group)?;
    }
    let sets = data::prepare(&recipe.data, &tokenizer)?;
    if main {
        dist::barrier(s.group)?;
    }
    // Fresh weights (a random student, new heads) follow the recipe's seed.
    tch::manual_seed(recipe.seed as i64);
    let cache = open_cache(recipe, &sets)?;
    let mut pruned = None;
    let mut text = Vec::new();
    let mut also = Vec::new();
    let (model, teacher) = match recipe.job {
        Job::Distill if recipe.text_teacher() => {
            let (m, t) = build_text_distill(recipe, device, &tokenizer)?;
            text = t;
            (m, None)
        }
        Job::Distill => {
            let (m, t) = build_distill(s, device, &cache, &mut pruned)?;
            if let (true, Some(first)) = (recipe.token_ensemble(), t.as_ref()) {
                also = teacher::ensemble(recipe, heads_needed(recipe), first, device)?;
                if main {
                    let t = recipe.teacher.as_ref().expect("validated");
                    let list: Vec<String> = t
                        .all()
                        .iter()
                        .map(|(d, w)| format!("{} (weight {w})", d.display()))
                        .collect();
                    eprintln!(
                        "teachers: soft MLM/NSP targets averaged over {}",
                        list.join(", ")
                    );
                }
            }
            (m, t)
        }
        Job::Pretrain => build_pretrain(recipe, device, &tokenizer)?,
        Job::FitHeads => (build_fit_heads(recipe, device)?, None),
    };
    if let Some(n) = recipe.student.as_ref().and_then(|s| s.train_layers) {
        student::train_top_layers(&model, n);
    }
    check_vocabularies(&tokenizer, &model, teacher.as_ref())?;
    let plan = step::plan(recipe, model.config(), teacher.as_ref().map(|t| t.config()))?;
    let (extra, projection) =
        projection(recipe, &plan, &model, teacher.as_ref(), &mut text, device)?;
    // The student as it starts (step 0): the baseline `destila eval --init` measures the
    // trained student against. Written on a fresh start only; a resumed run keeps it.
    if main && recipe.job != Job::FitHeads && (existing.is_empty() || !s.resume) {
        // A pruned student's record of what it kept goes with its starting point.
        save_model(&model, recipe, &recipe.output.join("init"), |dir| {
            if let Some(r) = &pruned {
                let path = dir.join("prune.json");
                let text = serde_json::to_string_pretty(r).expect("json") + "\n";
                std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
            }
            Ok(())
        })?;
    }
    let (mut model, mut teacher) = (model, teacher);
    if kind != Kind::Float {
        model.vs.set_kind(kind);
        if let Some(t) = teacher.as_mut() {
            t.vs.set_kind(kind);
        }
        for (t, _) in also.iter_mut() {
            t.vs.set_kind(kind);
        }
    }
    if let Some(g) = s.group {
        broadcast(g, &model, &extra)?;
    }
    Ok(Prepared {
        device,
        kind,
        model,
        teacher,
        also,
        text,
        extra,
        projection,
        plan,
        sets,
        tokenizer,
        tok_dir,
        ckpt_root: recipe.output.join("checkpoints"),
        existing,
        cache,
    })
}

/// The caches of teacher products this run will write (pooled embeddings of a teacher that
/// reads text, fitted heads, an adapted teacher): made and proved writable before any work.
fn writable_caches(recipe: &Recipe) -> Result<()> {
    for (field, dir) in recipe.teacher_caches() {
        output::writable_dir(dir).map_err(|e| {
            Error::config(
                &recipe.path,
                field,
                format!("{}: cannot write there: {e}", dir.display()),
            )
        })?;
    }
    Ok(())
}

/// Claims the run's folder (see `crate::output`), refuses a resume whose recipe changed
/// and clears an earlier run's own entries with `--force`; returns the checkpoints there.
fn claim_output(s: &Setup) -> Result<Vec<PathBuf>> {
    let recipe = s.recipe;
    let out = &recipe.output;
    let main = dist::is_main(s.group);
    let inputs = recipe.inputs();
    let claim = || output::claim_entries(out, "output", "distill", RUN_ENTRIES, true, &inputs);
    if main {
        claim()?;
    } else {
        output::guard(out, "output", &inputs)?;
    }
    let existing = ckpt::list(&out.join("checkpoints"))?;
    if !existing.is_empty() && !s.resume && !s.force {
        return Err(Error::Invalid(format!(
            "{} already has checkpoints: use --resume to continue the run, or --force to start it over",
            out.display()
        )));
    }
    if let (true, Some(last)) = (s.resume, existing.last()) {
        let state = ckpt::read_state(last)?;
        let changed = recipe.changes_from(&state.recipe);
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
        if state.step >= recipe.training.steps {
            return Err(Error::config(
                &recipe.path,
                "training.steps",
                format!(
                    "{}, but {} is already at step {}: nothing to resume (raise training.steps to continue, or use --force to start over)",
                    recipe.training.steps,
                    last.display(),
                    state.step
                ),
            ));
        }
    }
    if s.force {
        // Start over: only what earlier runs wrote there goes.
        dist::barrier(s.group)?;
        if main {
            // The fitted heads and the adapted teacher stay: caches checked against their
            // keys before any reuse.
            output::clear_own(out, "distill", &["teacher-heads", "teacher-adapted"])?;
            claim()?;
        }
        dist::barrier(s.group)?;
    }
    Ok(existing)
}

/// The teacher-target cache a distillation reads instead of running its teacher.
fn open_cache(recipe: &Recipe, sets: &data::Datasets) -> Result<Option<Arc<Cache>>> {
    let dir = match (recipe.job, recipe.teacher.as_ref()) {
        (Job::Distill, Some(t)) => t.targets.as_ref().map(|c| c.dir.clone()),
        _ => None,
    };
    let Some(dir) = dir else {
        return Ok(None);
    };
    let c = Cache::open(&dir, &targets::key(recipe, sets)?)?;
    c.check_settings(recipe)?;
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
    let draws = recipe.training.steps * recipe.training.gradient_accumulation as u64;
    if (c.batches("train") as u64) < draws && std::env::var("RANK").map_or(true, |r| r == "0") {
        eprintln!(
            "note: {}: {} training batches stored, fewer than the {draws} one rank draws in training.steps; later epochs repeat them reshuffled, with the stored masks",
            dir.display(),
            c.batches("train")
        );
    }
    Ok(Some(Arc::new(c)))
}

/// The teacher heads a distillation's losses read.
fn heads_needed(recipe: &Recipe) -> Heads {
    Heads {
        pooler: false,
        mlm: !recipe.losses.kd_mlm.weight.is_zero(),
        nsp: !recipe.losses.kd_nsp.weight.is_zero(),
    }
}

/// Distillation: the teacher (with the heads its losses need; only its shape and initial
/// weights when a target cache replaces it) and the student.
fn build_distill(
    s: &Setup,
    device: Device,
    cache: &Option<Arc<Cache>>,
    pruned: &mut Option<serde_json::Value>,
) -> Result<(Model, Option<Model>)> {
    let recipe = s.recipe;
    let need = heads_needed(recipe);
    // With a target cache too: the student starts from the teacher the cache was made
    // with (fitted heads or the adapted teacher, reused from their caches), as it would
    // from the live teacher.
    let teacher = teacher::with_heads(recipe, need, device, s.group, s.fit)?;
    let st = recipe.student.as_ref().expect("validated");
    let base = teacher.config().clone();
    let mut model = student::build(st, &base, Some(&teacher), device, &recipe.path)?;
    if let Some(p) = &st.prune {
        let (m, report) = prune_student(s, p, model, &teacher)?;
        model = m;
        *pruned = Some(report);
    }
    Ok((model, cache.is_none().then_some(teacher)))
}

/// Distillation from teachers that read text (`text_teacher`): the student from its
/// checkpoint (or random, with the recipe's tokenizer), each teacher with its weight and
/// the student's tokenizer to decode with, and with `teacher.reduce: pca` each one's
/// principal directions fitted on training sentences.
fn build_text_distill(
    recipe: &Recipe,
    device: Device,
    tokenizer: &BertTokenizer,
) -> Result<(Model, Vec<TextTeacher>)> {
    let t = recipe.teacher.as_ref().expect("validated");
    let st = recipe.student.as_ref().expect("validated");
    let base = bert::BertConfig {
        vocab_size: tokenizer.vocab_size() as i64,
        ..Default::default()
    };
    let model = student::build(st, &base, None, device, &recipe.path)?;
    let pointwise =
        !recipe.losses.pooled_cos.weight.is_zero() || !recipe.losses.pooled_mse.weight.is_zero();
    let width = model.config().hidden_size;
    let mut fit_on: Option<Vec<String>> = None;
    let mut teachers = Vec::new();
    for (dir, weight) in t.all() {
        let mut text = TextTeacher::open(dir, recipe.tokenizer()?, device, Some(&t.pooled_cache))?;
        text.weight = weight;
        if t.reduce == Reduce::Pca && pointwise && width != text.hidden_size() {
            if fit_on.is_none() {
                let n = PCA_SENTENCES.max(2 * width as usize);
                fit_on = Some(crate::prune::structure::sentences(
                    &recipe.data.train,
                    n,
                    "data.train",
                )?);
            }
            let refs: Vec<&str> = fit_on.iter().flatten().map(String::as_str).collect();
            let t0 = std::time::Instant::now();
            text.fit_pca(&refs, width)
                .map_err(|e| Error::config(&recipe.path, "teacher.reduce", e.to_string()))?;
            eprintln!(
                "teacher.reduce: pca: {}'s {} dimensions to the student's {width}, fitted on {} training sentences ({:.0} s)",
                dir.display(),
                text.hidden_size(),
                refs.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        teachers.push(text);
    }
    Ok((model, teachers))
}

/// Training sentences `teacher.reduce: pca` is fitted on (at least twice the student's
/// width).
const PCA_SENTENCES: usize = 2048;

/// `student.prune`: the student as built, pruned against the teacher on sentences of the
/// training text (the same measurement as `destila prune --teacher`).
fn prune_student(
    s: &Setup,
    p: &crate::distill::recipe::PruneSection,
    model: Model,
    teacher: &Model,
) -> Result<(Model, serde_json::Value)> {
    use crate::prune::structure;
    let recipe = s.recipe;
    // A resumed run takes the units its start kept (init/prune.json) rather than measure
    // again: its checkpoints have that shape.
    let record = recipe.output.join("init").join("prune.json");
    if s.resume && record.is_file() {
        let text = crate::error::read_to_string(&record)?;
        let report: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", record.display())))?;
        let kept: crate::prune::shape::Keep = serde_json::from_value(report["kept"].clone())
            .map_err(|e| Error::Invalid(format!("{}: kept: {e}", record.display())))?;
        return Ok((crate::prune::shape::shrink(&model, &kept)?, report));
    }
    let mut o = p.options(recipe.seed, recipe.data.max_seq_len);
    // For the record (prune.json): the reference and the text.
    o.teacher = recipe.teacher.as_ref().map(|t| t.checkpoint.clone());
    o.corpus = recipe.data.train.clone();
    let texts = structure::sentences(&recipe.data.train, o.sentences, "data.train")?;
    let tok = recipe.tokenizer()?.with_max_len(recipe.data.max_seq_len)?;
    let measure =
        structure::Measure::new(&texts, o.batch_size, &model, &tok, Some((teacher, &tok)))?;
    let cfg = model.config().clone();
    let before: i64 = model
        .vs
        .variables()
        .values()
        .map(|t| t.numel() as i64)
        .sum();
    let pruned = structure::prune_model(model, &measure, &o)?;
    let summary = structure::summarise(
        &recipe.output.join("init"),
        &cfg,
        before,
        &pruned,
        texts.len(),
        o.rounds,
    );
    if dist::is_main(s.group) {
        eprint!("student.prune:\n{summary}");
    }
    let report = structure::report(&recipe.path, &o, &pruned, &summary);
    Ok((pruned.model, report))
}

/// Pretraining: the shape defaults come from the teacher's config when the recipe names
/// one, else from BERT's, with the tokenizer's vocabulary.
fn build_pretrain(
    recipe: &Recipe,
    device: Device,
    tokenizer: &BertTokenizer,
) -> Result<(Model, Option<Model>)> {
    let base = match &recipe.teacher {
        Some(t) => bert::BertConfig::from_file(t.checkpoint.join("config.json"))?,
        None => bert::BertConfig {
            vocab_size: tokenizer.vocab_size() as i64,
            ..Default::default()
        },
    };
    let st = recipe.student.as_ref().expect("validated");
    Ok((student::build(st, &base, None, device, &recipe.path)?, None))
}

/// Fitting heads: the teacher with every head, where only the heads the checkpoint lacks
/// train; the encoder and any head it has stay frozen. The pooler trains with a new NSP
/// head: in BERT's pretraining only NSP shapes it, and a checkpoint without that head
/// never trained it for NSP.
fn build_fit_heads(recipe: &Recipe, device: Device) -> Result<Model> {
    let t = recipe.teacher.as_ref().expect("validated");
    let m = bert::load(
        &t.checkpoint,
        &LoadOptions {
            device,
            heads: Heads::ALL,
            untie_decoder: t.fit.decoder == Decoder::Untied,
            ..Default::default()
        },
    )?;
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
                && (name.starts_with("cls.seq_relationship.") || name.starts_with("bert.pooler.")));
        if !trains {
            let _ = v.set_requires_grad(false);
        }
    }
    Ok(m)
}

fn check_vocabularies(
    tokenizer: &BertTokenizer,
    model: &Model,
    teacher: Option<&Model>,
) -> Result<()> {
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
    if let Some(t) = teacher {
        if t.config().vocab_size != model.config().vocab_size {
            return Err(Error::Invalid(format!(
                "the student's vocabulary ({}) differs from the teacher's ({})",
                model.config().vocab_size,
                t.config().vocab_size
            )));
        }
    }
    Ok(())
}

/// A learned projection when hidden_mse compares different widths (TinyBERT), in its own
/// VarStore (saved in checkpoints as `extra.*`); a stage-one projection when the recipe
/// keeps it.
fn projection(
    recipe: &Recipe,
    plan: &Plan,
    model: &Model,
    teacher: Option<&Model>,
    text: &mut [TextTeacher],
    device: Device,
) -> Result<(nn::VarStore, Option<nn::Linear>)> {
    let extra = nn::VarStore::new(device);
    let width = model.config().hidden_size;
    // hidden_mse between widths (TinyBERT).
    let target = match teacher {
        Some(t) if plan.has("hidden_mse") => Some(t.config().hidden_size),
        _ => None,
    };
    let mut projection = target
        .filter(|&h| h != width)
        .map(|h| nn::linear(extra.root() / "projection", width, h, Default::default()));
    // The pointwise sentence losses against each text teacher of another width with
    // teacher.reduce: learned: one map each (the first is `projection`, saved beside the
    // final model; the others `projection_1`, ...).
    let combined = recipe.teacher.as_ref().and_then(|t| t.combine) == Some(Combine::Targets);
    if (plan.has("pooled_cos") || plan.has("pooled_mse")) && combined && !text.is_empty() {
        // teacher.combine: targets: one map to the teachers' widths side by side, kept by
        // the first teacher (the step reads it there).
        let h: i64 = text.iter().map(|t| t.hidden_size()).sum();
        if h != width {
            let map = nn::linear(extra.root() / "projection", width, h, Default::default());
            projection = Some(nn::Linear {
                ws: map.ws.shallow_clone(),
                bs: map.bs.as_ref().map(Tensor::shallow_clone),
            });
            text[0].map = Some(map);
        }
    } else if plan.has("pooled_cos") || plan.has("pooled_mse") {
        for (i, t) in text.iter_mut().enumerate() {
            let h = t.hidden_size();
            if t.pca().is_some() || h == width {
                continue;
            }
            let name = match i {
                0 => "projection".to_string(),
                _ => format!("projection_{i}"),
            };
            let map = nn::linear(extra.root() / name.as_str(), width, h, Default::default());
            if i == 0 {
                projection = Some(nn::Linear {
                    ws: map.ws.shallow_clone(),
                    bs: map.bs.as_ref().map(Tensor::shallow_clone),
                });
            }
            t.map = Some(map);
        }
    }
    if let (Some(p), Some(Init::Checkpoint(c))) =
        (&projection, recipe.student.as_ref().map(|s| &s.init))
    {
        if c.projection == Some(ProjectionInit::Keep) {
            load_projection(p, &c.checkpoint.join(PROJECTION_FILE))?;
        }
    }
    Ok((extra, projection))
}

/// Every rank starts from rank 0's weights.
fn broadcast(g: &Group, model: &Model, extra: &nn::VarStore) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.extend(
        extra
            .variables()
            .into_iter()
            .map(|(n, v)| (format!("extra.{n}"), v)),
    );
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let vars: Vec<Tensor> = vars.into_iter().map(|(_, v)| v).collect();
    g.broadcast_(&vars, 0)
}

/// The learned projection saved by a stage-one run, into `p` (shapes checked).
fn load_projection(p: &nn::Linear, path: &Path) -> Result<()> {
    let saved: std::collections::HashMap<String, Tensor> =
        bert::weights::read_safetensors(path)?.into_iter().collect();
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
pub(crate) fn save_model(
    model: &Model,
    recipe: &Recipe,
    dir: &Path,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    output::write_dir(dir, "distill", |tmp| {
        extra(tmp)?;
        bert::save(model, tmp)?;
        ckpt::copy_tokenizer(recipe.tokenizer_dir(), tmp)?;
        // A sentence-transformers teacher's modules go with its student.
        if let Some(t) = &recipe.teacher {
            crate::sentence::copy(&t.checkpoint, tmp, model.config().hidden_size)?;
        }
        Ok(())
    })
}
