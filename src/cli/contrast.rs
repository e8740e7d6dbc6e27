//! `destila contrast DIR...`: static versus contextual similarity of a word in two
//! sentences, for one model or, with several folders, a table with a row per model (the
//! original teacher, an adapted teacher, a student's init and the student, say), so that a
//! reader sees which of them keeps the word's two senses apart.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use destila::embed::Embedder;
use destila::eval::contrast;

#[derive(Args)]
pub struct Contrast {
    /// One or more model folders.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    #[arg(long, default_value = contrast::POSTO_A)]
    a: String,
    #[arg(long, default_value = contrast::POSTO_B)]
    b: String,
    #[arg(long, default_value = contrast::POSTO_WORD)]
    word: String,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    json: bool,
}

pub fn contrast(a: Contrast) -> Result<()> {
    let device = destila::device::parse(&a.device)?;
    // Every folder is opened (and so checked) before anything is printed.
    let models = a
        .dirs
        .iter()
        .map(|d| Embedder::open(d, device))
        .collect::<destila::error::Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    for (dir, e) in a.dirs.iter().zip(&models) {
        rows.push((
            dir.display().to_string(),
            contrast::contrast(e, &a.a, &a.b, &a.word)?,
        ));
    }
    let text = match (a.json, rows.len()) {
        (true, 1) => serde_json::to_string_pretty(&rows[0].1)? + "\n",
        (true, _) => {
            let m: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .map(|(d, c)| (d.clone(), serde_json::to_value(c).expect("serialisable")))
                .collect();
            serde_json::to_string_pretty(&m)? + "\n"
        }
        (false, 1) => rows[0].1.to_string(),
        (false, _) => contrast::table(&rows),
    };
    crate::cli::print_out(&text)
}
