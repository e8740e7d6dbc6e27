//! `destila export CHECKPOINT --out DIR`: a folder transformers loads as is.

use std::path::PathBuf;

use super::{out, outln};
use anyhow::Result;
use clap::{Args, ValueEnum};

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum ExportDtype {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Copy, ValueEnum)]
enum Quantize {
    Int8,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Format {
    /// An HF folder (config.json, model.safetensors, tokenizer files).
    Hf,
    /// model.onnx (opset 17; last_hidden_state and sentence_embedding) with the tokenizer.
    Onnx,
}

#[derive(Args)]
pub struct Export {
    checkpoint: PathBuf,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t = ExportDtype::F32)]
    dtype: ExportDtype,
    #[arg(long, value_enum, default_value_t = destila::export::HeadsMode::Keep)]
    heads: destila::export::HeadsMode,
    /// int8 per-channel linear weights (HF format: loadable by destila, not by
    /// transformers; ONNX: dynamically quantised, as onnxruntime's quantize_dynamic).
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
    #[arg(long, value_enum, default_value_t = Format::Hf)]
    format: Format,
    /// An eval.json whose figures go into the model card.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Replace destila's own earlier export there.
    #[arg(long)]
    force: bool,
    /// Prune the vocabulary to the word pieces this text uses before exporting (see
    /// `destila prune`; repeatable).
    #[arg(long)]
    prune_corpus: Vec<String>,
    /// With --prune-corpus: keep a piece used at least this often.
    #[arg(long, value_parser = super::parse::count, default_value_t = 1)]
    min_count: usize,
}

pub fn export(a: Export) -> Result<()> {
    if a.format == Format::Onnx {
        if !a.prune_corpus.is_empty() {
            anyhow::bail!("--prune-corpus with --format onnx: prune first (destila prune), then export the pruned folder");
        }
        // What the ONNX export does not do is refused, not ignored.
        if a.dtype != ExportDtype::F32 {
            anyhow::bail!("--dtype with --format onnx: the ONNX export is float32 (or int8 with --quantize int8)");
        }
        if a.heads != destila::export::HeadsMode::Keep {
            anyhow::bail!("--heads with --format onnx: the ONNX graph is the encoder and its sentence embedding, never the heads");
        }
        if a.eval.is_some() {
            anyhow::bail!("--eval with --format onnx: the ONNX export writes no model card");
        }
        let s = destila::onnx::export_onnx(&a.checkpoint, &a.out, a.quantize.is_some(), a.force)?;
        outln!(
            "exported {} (ONNX{}, {} nodes, {:.1} MB, sentence_embedding: {} pooling{})",
            s.out.display(),
            if s.int8 { ", int8 dynamic" } else { ", fp32" },
            s.nodes,
            s.file_bytes as f64 / 1e6,
            s.pooling,
            if s.normalize { ", normalised" } else { "" }
        )?;
        return Ok(());
    }
    let opts = destila::export::ExportOptions {
        dtype: match a.dtype {
            ExportDtype::F32 => tch::Kind::Float,
            ExportDtype::F16 => tch::Kind::Half,
            ExportDtype::Bf16 => tch::Kind::BFloat16,
        },
        heads: a.heads,
        int8: a.quantize.is_some(),
        force: a.force,
        eval: a.eval,
    };
    let s = if a.prune_corpus.is_empty() {
        destila::export::export(&a.checkpoint, &a.out, &opts)?
    } else {
        destila::output::guard(&a.out, "--out", std::slice::from_ref(&a.checkpoint))?;
        // Pruned first (f32), into a fresh temporary folder of its own (removed when it
        // goes out of scope, and nothing else), then exported from it.
        let work = tempfile::Builder::new()
            .prefix("destila-prune-")
            .tempdir()?;
        let scratch = work.path().join("pruned");
        let o = destila::prune::PruneOptions {
            corpus: a.prune_corpus,
            min_count: a.min_count as u64,
            held_out: Vec::new(),
            force: false,
        };
        let p = destila::prune::prune(&a.checkpoint, &scratch, &o)?;
        out!("{p}")?;
        destila::export::export(&scratch, &a.out, &opts)?
    };
    outln!(
        "exported {} ({}, {} parameters, {:.1} MB, {})",
        s.out.display(),
        s.architecture,
        s.parameters,
        s.file_bytes as f64 / 1e6,
        s.dtype
    )?;
    if s.padded {
        outln!("the source is structurally pruned: its pruned heads and neurons are written as zeros, which transformers has no other way to load (same outputs, the unpruned shape's speed; --format onnx runs the compact model)")?;
    }
    Ok(())
}
