//! `destila contrast DIR`: static versus contextual similarity of a word in two sentences.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use destila::embed::Embedder;
use destila::eval::contrast;

#[derive(Args)]
pub struct Contrast {
    dir: PathBuf,
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
    let e = Embedder::open(&a.dir, device)?;
    let c = contrast::contrast(&e, &a.a, &a.b, &a.word)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{c}");
    }
    Ok(())
}
