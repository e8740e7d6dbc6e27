//! `destila distill RECIPE`: runs a recipe (distillation, pretraining, fitting heads).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::outln;
use destila::distill::recipe::Recipe;
use destila::distill::trainer::{run, RunOptions};

#[derive(Args)]
pub struct Distill {
    recipe: PathBuf,
    /// Override a recipe field: --set losses.kd_mlm.weight=2.0 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Continue from the newest checkpoint in the recipe's output folder.
    #[arg(long)]
    resume: bool,
    /// Start over, removing what earlier runs wrote in the output folder.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn distill(a: Distill) -> Result<()> {
    let recipe = Recipe::from_file_with(&a.recipe, &a.set)?;
    recipe.check_runnable()?;
    let group = destila::dist::join(&recipe.device)?;
    let main = destila::dist::is_main(&group);
    let opts = RunOptions {
        resume: a.resume,
        force: a.force,
        quiet: a.quiet,
        group,
    };
    let s = run(&recipe, &opts)?;
    if !main {
        return Ok(());
    }
    match (s.first_validation, s.last_validation) {
        (Some(a), Some(b)) => outln!("validation loss {a:.4} -> {b:.4}")?,
        (None, Some(b)) => outln!("validation loss {b:.4}")?,
        _ => {}
    }
    outln!("model    {}", s.final_model.display())?;
    outln!("metrics  {}", s.metrics.display())?;
    outln!("plot     {}", s.plot.display())?;
    outln!("time     {:.0} s", s.seconds)?;
    Ok(())
}
