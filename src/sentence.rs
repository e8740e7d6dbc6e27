//! sentence-transformers folders: what a model's `modules.json` says about turning its
//! token embeddings into a sentence embedding (pooling, normalisation, length), and
//! carrying those modules from a teacher to its students and their exports, so that
//! `SentenceTransformer(DIR)` loads a student as it loaded the teacher.

use std::path::Path;

use crate::error::{Error, Result};

/// The files at the top of a sentence-transformers folder besides the transformer's own.
pub const TOP_FILES: &[&str] = &[
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// How the token vectors of the last layer become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// Mean of the last layer over the attention mask (sentence-transformers' pooling).
    Mean,
    /// The last layer at [CLS].
    Cls,
}

/// How a sentence-transformers folder embeds a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Modules {
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: Option<usize>,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    serde_json::from_str(&crate::error::read_to_string(path)?)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// The module entries of `dir/modules.json`: (type, path); None without one.
fn entries(dir: &Path) -> Result<Option<Vec<(String, String)>>> {
    let path = dir.join("modules.json");
    if !path.is_file() {
        return Ok(None);
    }
    let v = read_json(&path)?;
    let list = v
        .as_array()
        .ok_or_else(|| Error::Invalid(format!("{}: not a list of modules", path.display())))?;
    Ok(Some(
        list.iter()
            .map(|m| {
                (
                    m["type"].as_str().unwrap_or_default().to_string(),
                    m["path"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    ))
}

/// What `dir`'s sentence-transformers modules do; None when it is no such folder.
pub fn read(dir: &Path) -> Result<Option<Modules>> {
    let Some(list) = entries(dir)? else {
        return Ok(None);
    };
    let mut m = Modules {
        pooling: Pooling::Mean,
        normalize: false,
        max_seq_length: None,
    };
    for (kind, path) in &list {
        let name = kind.rsplit('.').next().unwrap_or_default();
        match name {
            "Transformer" => {}
            "Normalize" => m.normalize = true,
            "Pooling" => {
                let cfg_path = dir.join(path).join("config.json");
                let c = read_json(&cfg_path)?;
                let on = |k: &str| c[k].as_bool().unwrap_or(false);
                m.pooling = match (on("pooling_mode_mean_tokens"), on("pooling_mode_cls_token")) {
                    (true, false) => Pooling::Mean,
                    (false, true) => Pooling::Cls,
                    _ => {
                        return Err(Error::Invalid(format!(
                            "{}: only mean or [CLS] pooling (one of them) is supported",
                            cfg_path.display()
                        )))
                    }
                };
            }
            other => {
                return Err(Error::Invalid(format!(
                    "{}: module {other:?} is not supported (Transformer, Pooling, Normalize are)",
                    dir.join("modules.json").display()
                )))
            }
        }
    }
    let sb = dir.join("sentence_bert_config.json");
    if sb.is_file() {
        m.max_seq_length = read_json(&sb)?["max_seq_length"]
            .as_u64()
            .map(|n| n as usize);
    }
    Ok(Some(m))
}

/// Copies `from`'s sentence-transformers modules (the top files and each module's folder)
/// into `to`, the pooling's dimension set to `hidden_size` (a narrower student's);
/// whether there were any.
pub fn copy(from: &Path, to: &Path, hidden_size: i64) -> Result<bool> {
    let Some(list) = entries(from)? else {
        return Ok(false);
    };
    for f in TOP_FILES {
        let src = from.join(f);
        if src.is_file() {
            std::fs::copy(&src, to.join(f)).map_err(|e| Error::io(&src, e))?;
        }
    }
    for (kind, path) in list.iter().filter(|(_, p)| !p.is_empty()) {
        let (src, dst) = (from.join(path), to.join(path));
        std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
        if !src.is_dir() {
            continue; // Normalize has no files
        }
        for e in std::fs::read_dir(&src).map_err(|e| Error::io(&src, e))? {
            let e = e.map_err(|e| Error::io(&src, e))?;
            if !e.path().is_file() {
                continue;
            }
            let target = dst.join(e.file_name());
            if kind.ends_with("Pooling") && e.file_name() == "config.json" {
                let mut c = read_json(&e.path())?;
                c["word_embedding_dimension"] = hidden_size.into();
                let text = serde_json::to_string_pretty(&c).expect("json");
                std::fs::write(&target, text).map_err(|err| Error::io(&target, err))?;
            } else {
                std::fs::copy(e.path(), &target).map_err(|err| Error::io(&target, err))?;
            }
        }
    }
    Ok(true)
}
