//! Vocabulary pruning (the method of TextPruner): keep the word pieces a corpus uses (at
//! least `min_count` times), the special tokens and every single-character piece, and
//! remap the word-embedding rows, the MLM decoder bias (and an untied decoder), `vocab.txt`
//! and `tokenizer.json` to the kept ids, in their original order. A text whose pieces
//! were all kept is tokenized and embedded exactly as before; any other word becomes
//! `[UNK]`, and the summary says how often that happens on held-out text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};

use crate::bert::{self, BertConfig, Model};
use crate::data::config::TextOptions;
use crate::data::corpus;
use crate::error::{Error, Result};
use crate::output::Folder;
use crate::tokenize::BertTokenizer;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The text whose pieces are kept (files, folders, globs).
    pub corpus: Vec<String>,
    /// A piece is kept when the corpus uses it at least this often.
    pub min_count: u64,
    /// Held-out text on which the share of `[UNK]` pieces is measured.
    pub held_out: Vec<String>,
    /// Replace destila's own earlier output in the folder.
    pub force: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PruneSummary {
    pub out: PathBuf,
    pub vocab_before: usize,
    pub vocab_after: usize,
    pub corpus_pieces: u64,
    /// Kept because the corpus uses them (the rest: special and single-character pieces,
    /// always kept, so that any word still splits into known pieces).
    pub kept_from_corpus: usize,
    pub parameters_before: i64,
    pub parameters_after: i64,
    /// Share of the held-out text's pieces that are `[UNK]`, before and after.
    pub held_out_unk_before: Option<f64>,
    pub held_out_unk_after: Option<f64>,
    /// The held-out text's word pieces, before and after (words whose pieces were pruned
    /// split into smaller ones, down to single characters).
    pub held_out_pieces_before: Option<u64>,
    pub held_out_pieces_after: Option<u64>,
}

impl std::fmt::Display for PruneSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "vocabulary {} -> {} ({:.1}% kept), from {} corpus pieces",
            self.vocab_before,
            self.vocab_after,
            100.0 * self.vocab_after as f64 / self.vocab_before as f64,
            self.corpus_pieces
        )?;
        writeln!(
            f,
            "parameters {} -> {} ({:.2}x fewer)",
            self.parameters_before,
            self.parameters_after,
            self.parameters_before as f64 / self.parameters_after as f64
        )?;
        writeln!(
            f,
            "{} pieces kept because the corpus uses them, the rest special or single characters",
            self.kept_from_corpus
        )?;
        if let (Some(a), Some(b)) = (self.held_out_unk_before, self.held_out_unk_after) {
            writeln!(
                f,
                "held-out [UNK] share {:.3}% -> {:.3}%",
                100.0 * a,
                100.0 * b
            )?;
        }
        if let (Some(a), Some(b)) = (self.held_out_pieces_before, self.held_out_pieces_after) {
            writeln!(
                f,
                "held-out word pieces {a} -> {b} ({:.2}x)",
                b as f64 / a as f64
            )?;
        }
        Ok(())
    }
}

/// How often the text of `paths` uses each piece; and how many pieces it has.
fn count_pieces(tok: &BertTokenizer, paths: &[String], flag: &str) -> Result<(Vec<u64>, u64)> {
    let files = corpus::expand(paths).map_err(|e| Error::Invalid(format!("{flag}: {e}")))?;
    let mut counts = vec![0u64; tok.vocab_size()];
    let mut total = 0u64;
    for f in &files {
        corpus::read_documents(f, &TextOptions::default(), |doc| {
            let refs: Vec<&str> = doc.iter().map(String::as_str).collect();
            for ids in tok.word_pieces_batch(&refs)? {
                for id in ids {
                    counts[id as usize] += 1;
                    total += 1;
                }
            }
            Ok(())
        })?;
    }
    if total == 0 {
        return Err(Error::Invalid(format!(
            "{flag} {}: no text (nothing to keep a vocabulary for)",
            paths.join(" ")
        )));
    }
    Ok((counts, total))
}

/// The ids to keep, ascending: used at least `min_count` times, special, or one character
/// (with or without the `##` prefix).
fn kept_ids(tok: &BertTokenizer, counts: &[u64], min_count: u64) -> Vec<i64> {
    let special = tok.special_ids();
    let vocab = tok.vocab_in_order();
    (0..counts.len())
        .filter(|&i| {
            let t = &vocab[i];
            let body = t.strip_prefix("##").unwrap_or(t);
            counts[i] >= min_count || special.contains(&(i as u32)) || body.chars().count() == 1
        })
        .map(|i| i as i64)
        .collect()
}

/// Prunes the checkpoint at `checkpoint` into `out` (see the module's comment).
pub fn prune(checkpoint: &Path, out: &Path, o: &PruneOptions) -> Result<PruneSummary> {
    if o.min_count == 0 {
        return Err(Error::Invalid("--min-count must be at least 1".into()));
    }
    let mut inputs = vec![checkpoint.to_path_buf()];
    inputs.extend(o.corpus.iter().map(|c| crate::output::glob_root(c)));
    let folder = Folder::check(out, "--out", "prune", o.force, &inputs)?;
    let tok = BertTokenizer::from_dir(checkpoint)?;
    let model = bert::load(checkpoint, &Default::default())?;
    if tok.vocab_size() as i64 != model.config().vocab_size {
        return Err(Error::tokenizer(
            tok.source(),
            format!(
                "{} tokens but the model's vocab_size is {}: prune a checkpoint whose tokenizer matches its embeddings",
                tok.vocab_size(),
                model.config().vocab_size
            ),
        ));
    }
    let (counts, total) = count_pieces(&tok, &o.corpus, "--corpus")?;
    let keep = kept_ids(&tok, &counts, o.min_count);
    folder.create()?;
    let result = write_pruned(checkpoint, &folder.tmp, &tok, &model, &keep);
    let pruned = match result {
        Ok(m) => m,
        Err(e) => {
            folder.abandon();
            return Err(e);
        }
    };
    let unk = |dir: &Path| -> Result<Option<(f64, u64)>> {
        if o.held_out.is_empty() {
            return Ok(None);
        }
        let t = BertTokenizer::from_dir(dir)?;
        let (c, n) = count_pieces(&t, &o.held_out, "--held-out")?;
        Ok(Some((c[t.unk_id as usize] as f64 / n as f64, n)))
    };
    let (before, after) = (unk(checkpoint)?, unk(&folder.tmp)?);
    let special = tok.special_ids();
    let vocab = tok.vocab_in_order();
    let kept_from_corpus = keep
        .iter()
        .filter(|&&i| {
            let t = &vocab[i as usize];
            counts[i as usize] >= o.min_count
                && !special.contains(&(i as u32))
                && t.strip_prefix("##").unwrap_or(t).chars().count() > 1
        })
        .count();
    let summary = PruneSummary {
        out: out.to_path_buf(),
        vocab_before: tok.vocab_size(),
        vocab_after: keep.len(),
        corpus_pieces: total,
        kept_from_corpus,
        parameters_before: parameters(&model),
        parameters_after: parameters(&pruned),
        held_out_unk_before: before.map(|b| b.0),
        held_out_unk_after: after.map(|a| a.0),
        held_out_pieces_before: before.map(|b| b.1),
        held_out_pieces_after: after.map(|a| a.1),
    };
    folder.commit()?;
    Ok(summary)
}

fn parameters(m: &Model) -> i64 {
    m.vs.variables().values().map(|t| t.numel() as i64).sum()
}

/// The pruned model and tokenizer files, in `dir`.
fn write_pruned(
    src: &Path,
    dir: &Path,
    tok: &BertTokenizer,
    model: &Model,
    keep: &[i64],
) -> Result<Model> {
    let index = Tensor::from_slice(keep);
    let new_id: BTreeMap<i64, i64> = keep
        .iter()
        .enumerate()
        .map(|(new, &old)| (old, new as i64))
        .collect();
    let c = model.config();
    let cfg = BertConfig {
        vocab_size: keep.len() as i64,
        pad_token_id: *new_id.get(&c.pad_token_id).unwrap_or(&0),
        ..c.clone()
    };
    let heads = model.report.as_ref().expect("loaded").checkpoint_heads;
    let pruned = Model::random(&cfg, heads, Device::Cpu);
    let old = model.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in pruned.vs.variables() {
            let t = old
                .get(&name)
                .ok_or_else(|| Error::checkpoint(src, format!("no tensor {name}")))?;
            let rows = name == "bert.embeddings.word_embeddings.weight"
                || name == "cls.predictions.bias"
                || name == "cls.predictions.decoder.weight";
            let t = if rows {
                t.index_select(0, &index)
            } else {
                t.shallow_clone()
            };
            var.shallow_clone().f_copy_(&t.to_kind(Kind::Float))?;
        }
        Ok(())
    })?;
    bert::save(&pruned, dir)?;
    let vocab = tok.vocab_in_order();
    let kept: Vec<&str> = keep.iter().map(|&i| vocab[i as usize].as_str()).collect();
    let text = kept.join("\n") + "\n";
    std::fs::write(dir.join("vocab.txt"), text).map_err(|e| Error::io(dir, e))?;
    crate::sentence::copy(src, dir, cfg.hidden_size)?;
    for f in ["tokenizer_config.json", "special_tokens_map.json"] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), dir.join(f)).map_err(|e| Error::io(src.join(f), e))?;
        }
    }
    if src.join("tokenizer.json").is_file() {
        let path = src.join("tokenizer.json");
        let json: serde_json::Value = serde_json::from_str(&crate::error::read_to_string(&path)?)
            .map_err(|e| Error::tokenizer(&path, e.to_string()))?;
        let json = remap_tokenizer_json(json, &kept).map_err(|m| Error::tokenizer(&path, m))?;
        let text = serde_json::to_string_pretty(&json).expect("json");
        std::fs::write(dir.join("tokenizer.json"), text).map_err(|e| Error::io(dir, e))?;
    }
    Ok(pruned)
}

/// `tokenizer.json` with the WordPiece vocabulary `kept` (new id = position) and every id
/// it names (special tokens of the post-processor, padding, added tokens) remapped.
fn remap_tokenizer_json(
    mut j: serde_json::Value,
    kept: &[&str],
) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let id: BTreeMap<&str, usize> = kept.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let find = |t: &str| {
        id.get(t)
            .copied()
            .ok_or(format!("special token {t:?} was not kept"))
    };
    let model = j.get_mut("model").ok_or("no \"model\"")?;
    if model.get("type").and_then(Value::as_str) != Some("WordPiece") {
        return Err("only WordPiece (BERT) tokenizers can be pruned".into());
    }
    let vocab: serde_json::Map<String, Value> = kept
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), json!(i)))
        .collect();
    model["vocab"] = Value::Object(vocab);
    if let Some(Value::Object(sp)) = j.pointer_mut("/post_processor/special_tokens") {
        for v in sp.values_mut() {
            let tokens: Vec<String> = v["tokens"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let ids = tokens
                .iter()
                .map(|t| find(t))
                .collect::<std::result::Result<Vec<usize>, String>>()?;
            v["ids"] = json!(ids);
        }
    }
    for key in ["sep", "cls"] {
        if let Some(Value::Array(pair)) = j.pointer_mut(&format!("/post_processor/{key}")) {
            let t = pair[0].as_str().unwrap_or_default().to_string();
            pair[1] = json!(find(&t)?);
        }
    }
    if let Some(p) = j.get_mut("padding").filter(|p| p.is_object()) {
        let t = p["pad_token"].as_str().unwrap_or("[PAD]").to_string();
        p["pad_id"] = json!(find(&t)?);
    }
    if let Some(Value::Array(added)) = j.get_mut("added_tokens") {
        added.retain(|a| a["content"].as_str().is_some_and(|t| id.contains_key(t)));
        for a in added.iter_mut() {
            let t = a["content"].as_str().unwrap_or_default().to_string();
            a["id"] = json!(find(&t)?);
        }
    }
    Ok(j)
}
