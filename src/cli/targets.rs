//! `destila targets RECIPE`: the teacher's targets over the recipe's data, into a cache.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::outln;
use destila::distill::recipe::Recipe;
use destila::distill::targets::{write, WriteOptions};
use destila::distill::trainer::{fit_heads, RunOptions};

#[derive(Args)]
pub struct Targets {
    recipe: PathBuf,
    /// The cache folder (default: the recipe's teacher.targets.dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a recipe field (repeatable), e.g. --set teacher.targets.top_k=8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Only the first N training batches of the epoch, in the order training draws them
    /// (training.steps x gradient_accumulation x ranks covers a run); default the whole epoch.
    #[arg(long, value_name = "N")]
    train_batches: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Replace an earlier `destila targets` output in the folder.
    #[arg(long)]
    force: bool,
}

pub fn targets(a: Targets) -> Result<()> {
    let recipe = Recipe::from_file_with(&a.recipe, &a.set)?;
    recipe.check_runnable()?;
    if recipe.teacher.as_ref().is_some_and(|t| !t.also.is_empty()) {
        return Err(destila::Error::config(
            &recipe.path,
            "teacher.also",
            "a target cache holds one teacher's targets; several teachers run live beside the student (drop teacher.also here)",
        )
        .into());
    }
    let dir = recipe
        .teacher
        .as_ref()
        .and_then(|t| t.targets.as_ref())
        .map(|t| t.dir.clone());
    let Some(out) = a.out.or(dir) else {
        return Err(destila::Error::config(
            &recipe.path,
            "teacher.targets.dir",
            "not set: give --out DIR or set teacher.targets.dir",
        )
        .into());
    };
    let group = destila::dist::join(&recipe.device)?;
    let main = destila::dist::is_main(&group);
    let fit_opts = RunOptions {
        quiet: a.quiet,
        group: group.clone(),
        ..Default::default()
    };
    if a.train_batches == Some(0) {
        return Err(
            destila::Error::Invalid("--train-batches: 0 batches (give at least 1)".into()).into(),
        );
    }
    let opts = WriteOptions {
        train_batches: a.train_batches,
        group,
        quiet: a.quiet,
        force: a.force,
        fit: &|sub| fit_heads(sub, &fit_opts),
    };
    let s = write(&recipe, &out, &opts)?;
    if !main {
        return Ok(());
    }
    match s.sample {
        Some(n) => outln!(
            "targets  {} ({n} draws per masked token from the teacher's MLM distribution, at most {} distinct)",
            s.dir.display(),
            s.top_k
        )?,
        None => outln!("targets  {} (top {} MLM logits)", s.dir.display(), s.top_k)?,
    }
    for (name, x) in &s.splits {
        outln!(
            "{name:<10} {} batches, {} examples, {} tokens, {} masked; {:.1} MB, {:.2} bytes/token ({:.2} of them top-k)",
            x.batches,
            x.examples,
            x.tokens,
            x.masked,
            x.bytes as f64 / 1e6,
            x.bytes_per_token(),
            x.topk_bytes_per_token()
        )?;
    }
    outln!("time     {:.0} s", s.seconds)?;
    Ok(())
}
