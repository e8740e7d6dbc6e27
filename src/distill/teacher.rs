//! The teacher: loading it, and making what a recipe asks of it first: MLM/NSP heads
//! fitted onto a headless one (encoder frozen), or an adapted teacher (its MLM and NSP
//! pretraining continued, encoder unfrozen, its sentence embeddings preserved). Either is
//! reused when made before, from the run's folder or the shared cache, keyed by the
//! teacher's weights and tokenizer, the settings, seed and data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tch::Device;

use super::recipe::{HeadPolicy, Job, Recipe, Scheduled};
use crate::bert::{self, Heads, LoadOptions, Model};
use crate::dist::{self, Group};
use crate::error::{Error, Result};

/// Runs the fit-heads recipe it is given and returns the folder of the fitted model: the
/// trainer's `run`, passed in by the caller, so that the teacher does not depend on the
/// trainer that depends on it.
pub type FitRun<'a> = &'a dyn Fn(&Recipe) -> Result<PathBuf>;

fn load(dir: &Path, device: Device) -> Result<Model> {
    bert::load(
        dir,
        &LoadOptions {
            device,
            ..Default::default()
        },
    )
}

/// The teacher with the heads the losses need: its own, fitted (and cached beside the
/// run, in `OUTPUT/teacher-heads`, and in `teacher.fit.cache`) when `teacher.heads: fit`,
/// or the adapted teacher (`OUTPUT/teacher-adapted`, cached in `teacher.adapt.cache`)
/// when `teacher.heads: adapt`.
pub fn with_heads(
    recipe: &Recipe,
    need: Heads,
    device: Device,
    group: &Option<Arc<Group>>,
    fit: FitRun,
) -> Result<Model> {
    let t = recipe.teacher.as_ref().expect("validated");
    if t.heads == HeadPolicy::Adapt {
        let dir = prepare(recipe, &adapted(recipe)?, group, fit)?;
        return load(&dir, device);
    }
    let teacher = load(&t.checkpoint, device)?;
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
                "the teacher ({}) has no {missing} head, which the distillation losses need; set teacher.heads: fit (heads fitted on the frozen teacher) or adapt (the teacher's pretraining continued)",
                t.checkpoint.display()
            ),
        ));
    }
    drop(teacher);
    let dir = prepare(recipe, &fitted(recipe, missing)?, group, fit)?;
    load(&dir, device)
}

/// What a recipe makes of its teacher before its own run (fitted heads or an adapted
/// teacher): the sub-run that makes it, the key it is cached under, and where it goes.
struct Product {
    /// The folder in the run's output (`teacher-heads`, `teacher-adapted`).
    name: &'static str,
    /// The recipe field of the shared cache, and the cache folder.
    cache_field: &'static str,
    cache: PathBuf,
    sub: Recipe,
    key: serde_json::Value,
    /// What the log says before the sub-run starts.
    announce: String,
}

/// The folder name an adapted teacher has in a run's output.
pub const ADAPTED: &str = "teacher-adapted";
/// The folder name fitted heads have in a run's output.
pub const FITTED: &str = "teacher-heads";

fn fitted(recipe: &Recipe, missing: &str) -> Result<Product> {
    let t = recipe.teacher.as_ref().expect("validated");
    let sub = fit_recipe(recipe);
    let key = serde_json::json!({
        "weights_sha256": crate::bert::weights::digest(&t.checkpoint)?,
        "tokenizer": recipe.tokenizer()?.fingerprint(),
        "fit": t.fit,
        "seed": recipe.seed,
        "data": sub.data,
        "batch_size": sub.training.batch_size,
    });
    Ok(Product {
        name: FITTED,
        cache_field: "teacher.fit.cache",
        cache: t.fit.cache.clone(),
        announce: format!(
            "teacher heads: the teacher has no {missing} head; fitting MLM and NSP heads ({} steps)",
            t.fit.steps
        ),
        sub,
        key,
    })
}

fn adapted(recipe: &Recipe) -> Result<Product> {
    let t = recipe.teacher.as_ref().expect("validated");
    let sub = adapt_recipe(recipe)?;
    let key = serde_json::json!({
        "job": "adapt",
        "weights_sha256": crate::bert::weights::digest(&t.checkpoint)?,
        "tokenizer": recipe.tokenizer()?.fingerprint(),
        "adapt": t.adapt,
        "seed": recipe.seed,
        "data": sub.data,
    });
    let layers = match t.adapt.train_layers {
        Some(n) => format!("its top {n} layers"),
        None => "every layer".into(),
    };
    Ok(Product {
        name: ADAPTED,
        cache_field: "teacher.adapt.cache",
        cache: t.adapt.cache.clone(),
        announce: format!(
            "teacher adaptation: continuing MLM + NSP pretraining of {} ({layers}, {} steps) with its sentence embeddings held to the original's",
            t.checkpoint.display(),
            t.adapt.steps
        ),
        sub,
        key,
    })
}

/// The product's folder in the run's output: reused from there or from the shared cache
/// when made under the same key, else made by the sub-run and stored in both.
fn prepare(
    recipe: &Recipe,
    p: &Product,
    group: &Option<Arc<Group>>,
    fit: FitRun,
) -> Result<PathBuf> {
    if p.cache.exists() && !p.cache.is_dir() {
        return Err(Error::config(
            &recipe.path,
            p.cache_field,
            format!("{} exists and is not a folder", p.cache.display()),
        ));
    }
    let dir = recipe.output.join(p.name);
    let shared = p
        .cache
        .join(&crate::digest::text_sha256(&p.key.to_string())[..16]);
    if reuse(&dir, &shared, &p.key, group)? {
        return Ok(dir);
    }
    eprintln!("{}", p.announce);
    let made = fit(&p.sub)?;
    if dist::is_main(group) {
        store(&p.sub, &made, &p.key, &shared, &dir)?;
        eprintln!(
            "{}: {} (cached in {})",
            p.name,
            dir.display(),
            shared.display()
        );
    }
    dist::barrier(group)?;
    Ok(dir)
}

/// Products made under `key` in the run's folder `dir` or the shared cache (copied into
/// `dir`): whether there were any. Products made otherwise are named and not used.
fn reuse(
    dir: &Path,
    shared: &Path,
    key: &serde_json::Value,
    group: &Option<Arc<Group>>,
) -> Result<bool> {
    for candidate in [dir, shared] {
        match cached_heads(candidate, key) {
            Ok(()) => {
                eprintln!("teacher: reusing {}", candidate.display());
                if candidate == shared && dist::is_main(group) {
                    copy_dir(shared, dir)?;
                }
                dist::barrier(group)?;
                return Ok(true);
            }
            Err(Some(why)) => eprintln!("teacher: not reusing {}: {why}", candidate.display()),
            Err(None) => {}
        }
    }
    Ok(false)
}

/// Keeps a freshly made product: its key beside it (with the sub-run's metrics, the
/// provenance of an adaptation's curve), a copy in the shared cache, the model itself in
/// the run's folder; the sub-run's checkpoints and starting point go.
fn store(
    sub: &Recipe,
    made: &Path,
    key: &serde_json::Value,
    shared: &Path,
    dir: &Path,
) -> Result<()> {
    crate::output::remove_dir_own(&sub.output.join("checkpoints"))?;
    crate::output::remove_dir_own(&sub.output.join("init"))?;
    let metrics = sub.output.join("metrics.csv");
    if metrics.is_file() {
        let to = made.join("metrics.csv");
        std::fs::copy(&metrics, &to).map_err(|e| Error::io(&to, e))?;
    }
    let key_path = made.join("fit.json");
    std::fs::write(&key_path, serde_json::to_string_pretty(key).expect("json"))
        .map_err(|e| Error::io(&key_path, e))?;
    copy_dir(made, shared)?;
    // Moved, not copied again, into the run's folder.
    crate::output::commit_dir(made, dir, "distill")
}

/// The adaptation job a `teacher.heads: adapt` recipe runs first: a distillation whose
/// student is the whole teacher (every layer, its weights, fresh MLM/NSP heads with the
/// decoder tied to the word embeddings) and whose teacher is the frozen original; losses
/// MLM + NSP on BERT's sentence pairs (the masked view) and, on the first segment alone
/// (`[CLS] A [SEP]`, a sentence embedder's input; the clean `first` view), the
/// original's sentence embeddings (`pooled_cos`) and their in-batch similarity structure
/// (`similarity`), each weighted `teacher.adapt.preserve`.
fn adapt_recipe(recipe: &Recipe) -> Result<Recipe> {
    use super::recipe::{HeadPolicy as H, Init, LayerChoice, LossWeight, StudentSection, View};
    let t = recipe.teacher.as_ref().expect("validated");
    let a = &t.adapt;
    let cfg = bert::BertConfig::from_file(t.checkpoint.join("config.json"))?;
    let layers = cfg.num_hidden_layers;
    let mut sub = recipe.clone();
    sub.job = Job::Distill;
    let mut teacher = t.clone();
    teacher.heads = H::Fail;
    teacher.targets = None;
    sub.teacher = Some(teacher);
    sub.student = Some(StudentSection {
        layers,
        hidden_size: None,
        attention_heads: None,
        intermediate_size: None,
        activation: None,
        init: Init::FromTeacher,
        teacher_layers: Some(LayerChoice::List((0..layers as usize).collect())),
        train_layers: a.train_layers,
        prune: None,
    });
    sub.output = recipe.output.join("teacher-adapted-run");
    if let Some(d) = &a.data {
        sub.data = d.clone();
    }
    sub.data.examples = crate::data::ExampleFormat::Pairs;
    sub.data.mlm_probability = a.mlm_probability;
    sub.losses = Default::default();
    sub.losses.mlm.weight = Scheduled::Constant(1.0);
    sub.losses.nsp.weight = Scheduled::Constant(1.0);
    let preserve = LossWeight {
        weight: Scheduled::Constant(a.preserve),
        view: View::First,
        ..Default::default()
    };
    sub.losses.pooled_cos = preserve.clone();
    sub.losses.similarity = preserve;
    sub.optimizer = Default::default();
    sub.optimizer.learning_rate = a.learning_rate;
    sub.optimizer.warmup_steps = a.steps / 10;
    sub.training = Default::default();
    sub.training.steps = a.steps;
    sub.training.batch_size = a.batch_size;
    sub.training.eval_every = (a.steps / 10).max(1);
    sub.training.eval_batches = recipe.training.eval_batches;
    sub.training.checkpoint_every = 0;
    sub.training.keep_checkpoints = 1;
    sub.training.log_every = recipe.training.log_every;
    Ok(sub)
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
    // A copy is whole only with the modules its modules.json lists (a copy made before
    // sub-folders were copied lacks 1_Pooling/): otherwise the shared cache is used.
    if let Err(e) = crate::sentence::read(dir) {
        return Err(Some(format!("it is incomplete ({e})")));
    }
    let found: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Some(format!("its fit.json is unreadable ({e})")))?;
    let what = |k: &str| match k {
        "weights_sha256" => "another teacher (its weights differ)",
        "tokenizer" => "another tokenizer",
        "fit" => "other teacher.fit settings",
        "adapt" => "other teacher.adapt settings",
        "job" => "another job (fitted heads, not an adaptation)",
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

/// Copies the files and sub-folders of `from` into the existing folder `to` (a
/// sentence-transformers model keeps its modules in sub-folders such as `1_Pooling/`).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
            copy_tree(&src, &dst)?;
        } else if src.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}

/// Copies folder `from` to `to` (under a temporary name, then renamed).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    crate::output::write_dir(to, "distill", |tmp| copy_tree(from, tmp))
}

/// The teachers of `teacher.also` run beside the first on the student's ids
/// (`Recipe::token_ensemble`), each with its weight: loaded as they are, each with the
/// heads the losses need (refused by field when its checkpoint lacks one) and the first
/// teacher's vocabulary size.
pub fn ensemble(
    recipe: &Recipe,
    need: Heads,
    first: &Model,
    device: Device,
) -> Result<Vec<(Model, f64)>> {
    let t = recipe.teacher.as_ref().expect("validated");
    let mut out = Vec::new();
    for (i, a) in t.also.iter().enumerate() {
        let field = format!("teacher.also[{i}].checkpoint");
        let m = load(&a.checkpoint, device)
            .map_err(|e| Error::config(&recipe.path, &field, e.to_string()))?;
        let has = m.report.as_ref().expect("loaded").checkpoint_heads;
        for (needed, present, name) in [(need.mlm, has.mlm, "MLM"), (need.nsp, has.nsp, "NSP")] {
            if needed && !present {
                return Err(Error::config(
                    &recipe.path,
                    &field,
                    format!(
                        "{}: no {name} head in the checkpoint, and its soft {name} targets are averaged with the other teachers' (each teacher brings its own heads)",
                        a.checkpoint.display()
                    ),
                ));
            }
        }
        if m.config().vocab_size != first.config().vocab_size {
            return Err(Error::config(
                &recipe.path,
                &field,
                format!(
                    "{}: vocab_size {}, the first teacher's {}; averaged soft targets need one vocabulary",
                    a.checkpoint.display(),
                    m.config().vocab_size,
                    first.config().vocab_size
                ),
            ));
        }
        out.push((m, a.weight));
    }
    Ok(out)
}
