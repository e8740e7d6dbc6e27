//! The teacher: loading it, and fitting MLM/NSP heads onto a headless one (or reusing
//! heads fitted before, from the run's folder or the shared cache, keyed by the teacher's
//! weights and tokenizer, the fit's settings, seed and data).

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

/// The teacher with the heads the losses need: its own, or fitted (and cached beside the
/// run, in `OUTPUT/teacher-heads`, and in `teacher.fit.cache`) when `teacher.heads: fit`.
pub fn with_heads(
    recipe: &Recipe,
    need: Heads,
    device: Device,
    group: &Option<Arc<Group>>,
    fit: FitRun,
) -> Result<Model> {
    let t = recipe.teacher.as_ref().expect("validated");
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
    let key = fit_key(recipe, &sub)?;
    let shared = t
        .fit
        .cache
        .join(&crate::digest::text_sha256(&key.to_string())[..16]);
    if reuse(&dir, &shared, &key, group)? {
        return load(&dir, device);
    }
    eprintln!(
        "teacher heads: the teacher has no {missing} head; fitting MLM and NSP heads ({} steps)",
        t.fit.steps
    );
    let fitted = fit(&sub)?;
    if dist::is_main(group) {
        store(&sub, &fitted, &key, &shared, &dir)?;
    }
    dist::barrier(group)?;
    load(&dir, device)
}

/// What fitted heads depend on: the teacher's weights and tokenizer (by content, so a moved
/// teacher still matches), the fit's settings, seed, data and batch size.
fn fit_key(recipe: &Recipe, sub: &Recipe) -> Result<serde_json::Value> {
    let t = recipe.teacher.as_ref().expect("validated");
    Ok(serde_json::json!({
        "weights_sha256": crate::bert::weights::digest(&t.checkpoint)?,
        "tokenizer": recipe.tokenizer()?.fingerprint(),
        "fit": t.fit,
        "seed": recipe.seed,
        "data": sub.data,
        "batch_size": sub.training.batch_size,
    }))
}

/// Heads fitted under `key` in the run's folder `dir` or the shared cache (copied into
/// `dir`): whether there were any. Heads fitted otherwise are named and not used.
fn reuse(
    dir: &Path,
    shared: &Path,
    key: &serde_json::Value,
    group: &Option<Arc<Group>>,
) -> Result<bool> {
    for candidate in [dir, shared] {
        match cached_heads(candidate, key) {
            Ok(()) => {
                eprintln!("teacher heads: reusing {}", candidate.display());
                if candidate == shared && dist::is_main(group) {
                    copy_dir(shared, dir)?;
                }
                dist::barrier(group)?;
                return Ok(true);
            }
            Err(Some(why)) => {
                eprintln!("teacher heads: not reusing {}: {why}", candidate.display())
            }
            Err(None) => {}
        }
    }
    Ok(false)
}

/// Keeps freshly fitted heads: their key beside them, a copy in the shared cache, the
/// model itself in the run's `teacher-heads`; the fit run's scratch goes.
fn store(
    sub: &Recipe,
    fitted: &Path,
    key: &serde_json::Value,
    shared: &Path,
    dir: &Path,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(sub.output.join("checkpoints"));
    let _ = std::fs::remove_dir_all(sub.output.join("init"));
    let key_path = fitted.join("fit.json");
    std::fs::write(&key_path, serde_json::to_string_pretty(key).expect("json"))
        .map_err(|e| Error::io(&key_path, e))?;
    copy_dir(fitted, shared)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(fitted, dir).map_err(|e| Error::io(dir, e))
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
