//! `destila recipe check RECIPE`: validates a recipe and prints it with every default.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::out;
use destila::distill::recipe::Recipe;

#[derive(Subcommand)]
pub enum RecipeCommand {
    /// Validates a recipe without running it, and prints it with every default filled in.
    Check {
        recipe: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

pub fn recipe(what: RecipeCommand) -> Result<()> {
    let RecipeCommand::Check { recipe, set } = what;
    let r = Recipe::from_file_with(&recipe, &set)?;
    r.check_runnable()?;
    out!("{}", serde_yaml::to_string(&r)?)?;
    eprintln!("{}: ok", recipe.display());
    Ok(())
}
