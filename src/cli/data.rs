//! `destila data stats | preview | build`: the pretraining data pipeline.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::parse;
use super::{out, outln};
use destila::data::config::{Documents, InvalidUtf8, Sentences, TextOptions};
use destila::distill::recipe::Recipe;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Documents, sentences, tokens and length histograms of text files, folders or globs.
    Stats {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Checkpoint folder whose tokenizer counts the tokens.
        #[arg(long, default_value = ".cache/teachers/all-MiniLM-L6-v2")]
        tokenizer: PathBuf,
        #[arg(long, value_enum, default_value_t = Documents::BlankLine)]
        documents: Documents,
        #[arg(long, value_enum, default_value_t = Sentences::Split)]
        sentences: Sentences,
        #[arg(long, value_enum, default_value_t = InvalidUtf8::Error)]
        invalid_utf8: InvalidUtf8,
        #[arg(long, default_value = ".cache/shards")]
        cache_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Decoded examples of a recipe's data: segments, NSP label, masked tokens.
    Preview {
        recipe: PathBuf,
        #[arg(short = 'n', long, value_parser = parse::count, default_value_t = 5)]
        n: usize,
        /// Show validation examples instead of training ones.
        #[arg(long)]
        validation: bool,
        /// Recipe overrides, KEY=VALUE (e.g. data.examples=sentences).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Builds (or checks) a recipe's shard caches and prints their statistics.
    Build {
        recipe: PathBuf,
        /// Recipe overrides, KEY=VALUE (e.g. data.max_seq_len=64).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

fn print_rss() {
    if let Some(b) = destila::timing::peak_rss_bytes() {
        eprintln!("peak RSS {:.1} MiB", b as f64 / (1 << 20) as f64);
    }
}

pub fn data(what: DataCommand) -> Result<()> {
    match what {
        DataCommand::Stats {
            paths,
            tokenizer,
            documents,
            sentences,
            invalid_utf8,
            cache_dir,
            json,
        } => {
            destila::output::cache_flag(&cache_dir, "--cache-dir")?;
            let tok = destila::tokenize::BertTokenizer::from_dir(&tokenizer)?;
            let text = TextOptions {
                documents,
                sentences,
                invalid_utf8,
            };
            let corpus =
                destila::data::shards::open_or_build(&paths, &tok, &text, &cache_dir, "stats")?;
            let s = destila::data::stats::stats(&corpus);
            if json {
                outln!("{}", serde_json::to_string_pretty(&s)?)?;
            } else {
                out!("{s}")?;
            }
            print_rss();
        }
        DataCommand::Preview {
            recipe,
            n,
            validation,
            set,
        } => {
            let recipe = Recipe::from_file_with(&recipe, &set)?;
            recipe.check_writable(|f| f == "data.cache_dir")?;
            let tok = recipe.tokenizer()?;
            let preview = destila::data::preview::preview;
            out!(
                "{}",
                preview(&recipe.data, &tok, recipe.seed, n, validation)?
            )?;
        }
        DataCommand::Build { recipe, set } => {
            let recipe = Recipe::from_file_with(&recipe, &set)?;
            recipe.check_writable(|f| f == "data.cache_dir")?;
            let tok = recipe.tokenizer()?;
            let sets = destila::data::prepare(&recipe.data, &tok)?;
            outln!("train ({} documents)", sets.train.docs.len())?;
            out!("{}", destila::data::stats::stats(&sets.train.corpus))?;
            if let Some(v) = sets.validation {
                outln!("validation ({} documents)", v.docs.len())?;
                out!("{}", destila::data::stats::stats(&v.corpus))?;
            }
            print_rss();
        }
    }
    Ok(())
}
