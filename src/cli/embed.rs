//! `destila embed DIR TEXT...`: sentence embeddings, as a similarity table or JSON lines.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

use super::parse;
use destila::embed::{Embedder, Pooling};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Jsonl,
}

#[derive(Args)]
pub struct Embed {
    dir: PathBuf,
    texts: Vec<String>,
    /// A file with one text a line.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Default: the folder's sentence-transformers pooling (modules.json), else mean.
    #[arg(long, value_enum)]
    pooling: Option<Pooling>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, value_parser = parse::count, default_value_t = 32)]
    batch_size: usize,
    /// Longest sequence in tokens (default: the tokenizer's and model's limit).
    #[arg(long, value_parser = parse::count)]
    max_len: Option<usize>,
}

/// The texts of an `--input` file. Beyond 256 KiB a line is cut: the model reads at most
/// its max_len tokens (512 word pieces of at most 100 characters each), so nothing it
/// could see is lost and memory stays flat whatever the line length.
fn read_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let (texts, cut) = destila::data::corpus::read_texts(path, 256 << 10)?;
    if cut > 0 {
        eprintln!(
            "note: {}: {cut} line(s) longer than 256 KiB cut there (beyond what the model reads)",
            path.display()
        );
    }
    Ok(texts)
}

pub fn embed(a: Embed) -> Result<()> {
    let mut texts = a.texts;
    if let Some(path) = &a.input {
        texts.extend(read_lines(path)?);
    }
    if texts.is_empty() {
        bail!("no texts: give them as arguments or with --input FILE");
    }
    let device = destila::device::parse(&a.device)?;
    let mut e = Embedder::open(&a.dir, device)?;
    if let Some(n) = a.max_len {
        e.tokenizer = e.tokenizer.with_max_len(n)?;
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let emb = e.encode(&refs, a.pooling, a.batch_size)?;
    let text = match a.format {
        Format::Jsonl => destila::embed::render_jsonl(&texts, &emb)?,
        Format::Table => destila::embed::render_table(&texts, &emb),
    };
    super::print_out(&text)
}
