//! `destila export`: a checkpoint as a folder Hugging Face `transformers` loads as is
//! (config.json with the right `architectures`, model.safetensors, tokenizer files, a model
//! card), optionally in f16/bf16, without the pretraining heads, or with int8 per-channel
//! linear weights (loadable by destila). Written under a temporary name and renamed.

use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use crate::bert::{self, Heads, LoadOptions, Model};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HeadsMode {
    /// Keep the MLM/NSP heads the checkpoint has.
    Keep,
    /// Encoder and pooler only (`BertModel`).
    Drop,
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub dtype: Kind,
    pub heads: HeadsMode,
    pub int8: bool,
    pub force: bool,
    /// An eval.json whose figures go into the model card.
    pub eval: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportSummary {
    pub out: PathBuf,
    pub architecture: String,
    pub parameters: i64,
    pub file_bytes: u64,
    pub dtype: String,
    pub int8: bool,
    /// A structurally pruned model widened back with zero units for transformers.
    pub padded: bool,
}

fn dtype_name(k: Kind) -> &'static str {
    match k {
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        _ => "float32",
    }
}

/// Weights quantised by `--quantize int8`: every linear weight and the word-embedding table
/// (per row; the position and token-type tables are small and stay as they are).
fn quantisable(name: &str, t: &Tensor) -> bool {
    t.dim() == 2
        && name.ends_with(".weight")
        && (!name.contains("embeddings") || name.ends_with("word_embeddings.weight"))
}

/// Symmetric per-output-channel int8: q = round(w / s), s = max|w_row| / 127.
pub fn quantise(w: &Tensor) -> (Tensor, Tensor) {
    let w = w.to_kind(Kind::Float);
    let scale = (w.abs().amax([1i64].as_slice(), false) / 127.0).clamp_min(1e-12);
    let q = (&w / scale.unsqueeze(1))
        .round()
        .clamp(-127.0, 127.0)
        .to_kind(Kind::Int8);
    (q, scale)
}

/// The run's recipe and step, when `checkpoint` is a run's `final/` or a `step-N/` folder.
fn provenance(checkpoint: &Path) -> Option<(serde_json::Value, u64)> {
    let state = if checkpoint.join("state.json").is_file() {
        checkpoint.join("state.json")
    } else {
        let run = checkpoint.parent()?;
        let last = crate::distill::checkpoint::list(&run.join("checkpoints"))
            .ok()?
            .pop()?;
        last.join("state.json")
    };
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state).ok()?).ok()?;
    Some((v.get("recipe")?.clone(), v.get("step")?.as_u64()?))
}

fn model_card(
    checkpoint: &Path,
    s: &ExportSummary,
    config: &bert::BertConfig,
    eval: Option<&serde_json::Value>,
) -> String {
    let mut card = format!(
        "---\nlibrary_name: {}\ntags: [bert, distillation, destila]\n---\n\n# {}\n\nA BERT encoder exported by destila from `{}`.\n\n\
         | | |\n|---|---|\n| architecture | {} |\n| layers x hidden | {} x {} ({} heads, intermediate {}, {}) |\n| parameters | {} |\n| weights | {}{} |\n",
        if s.int8 { "destila" } else { "transformers" },
        s.out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        checkpoint.display(),
        s.architecture,
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
        config.hidden_act,
        s.parameters,
        s.dtype,
        if s.int8 { ", linear weights and word embeddings int8 per output row (destila only)" } else { "" },
    );
    if s.padded {
        card += "\nThe source was structurally pruned (fewer heads or feed-forward neurons in some layers). transformers has no per-layer widths, so the pruned units are present here as zeros, which compute nothing: the outputs are the pruned model's, its speed is the unpruned shape's. destila and the ONNX export (`destila export --format onnx`) run the compact model.\n";
    }
    if let Some((recipe, step)) = provenance(checkpoint) {
        let teacher = recipe
            .pointer("/teacher/checkpoint")
            .and_then(|v| v.as_str())
            .unwrap_or("none");
        card += &format!(
            "| teacher | `{teacher}` |\n| job | {} |\n| training steps | {step} |\n\n## Recipe\n\n```json\n{}\n```\n",
            recipe.get("job").and_then(|v| v.as_str()).unwrap_or("?"),
            serde_json::to_string_pretty(&recipe).unwrap_or_default()
        );
    }
    if let Some(e) = eval {
        card += "\n## Evaluation against the teacher\n\n| metric | value |\n|---|---:|\n";
        let mut rows = Vec::new();
        for pooling in ["mean", "cls"] {
            for k in ["spearman", "pearson", "cka", "knn1", "knn10"] {
                if let Some(v) = e
                    .pointer(&format!("/similarity/{pooling}/{k}"))
                    .and_then(|v| v.as_f64())
                {
                    rows.push((format!("similarity structure, {pooling} pooling: {k}"), v));
                }
            }
        }
        for k in [
            "mlm_top1_agreement",
            "student_mlm_accuracy",
            "teacher_mlm_accuracy",
            "nsp_agreement",
        ] {
            if let Some(v) = e.pointer(&format!("/heads/{k}")).and_then(|v| v.as_f64()) {
                rows.push((k.replace('_', " "), v));
            }
        }
        for (k, v) in rows {
            card += &format!("| {k} | {v:.4} |\n");
        }
    }
    card += if s.int8 {
        "\n## Use\n\nThis folder is read by destila only (`destila embed PATH`, `destila eval`, `destila bench`): its weights are int8 per output row in `model.int8.safetensors` and its `model_type` is `destila-int8-bert`, so transformers and sentence-transformers refuse it rather than load an encoder with random weights. For them, export without `--quantize` (or `--format onnx --quantize int8` for onnxruntime).\n"
    } else {
        "\n## Use\n\n```python\nfrom transformers import AutoModel, AutoTokenizer\nmodel = AutoModel.from_pretrained(PATH)\ntokenizer = AutoTokenizer.from_pretrained(PATH)\n```\n"
    };
    card
}

pub fn export(checkpoint: &Path, out: &Path, opts: &ExportOptions) -> Result<ExportSummary> {
    let claim = crate::output::Folder::claim(
        out,
        "--out",
        "export",
        opts.force,
        &[checkpoint.to_path_buf()],
    )?;
    let tmp = claim.tmp.clone();
    let result = write_export(checkpoint, &tmp, opts);
    match result {
        Ok(mut summary) => {
            summary.out = claim.commit()?;
            Ok(summary)
        }
        Err(e) => {
            claim.abandon();
            Err(e)
        }
    }
}

/// The tensors to write (HF names; `bert.` dropped for a headless export), in `dtype` or
/// int8 per channel; and the parameter count.
fn tensors(model: &Model, heads: Heads, opts: &ExportOptions) -> (Vec<(String, Tensor)>, i64) {
    let headless = !heads.mlm && !heads.nsp;
    let mut named: Vec<(String, Tensor)> = Vec::new();
    let mut params = 0i64;
    for (name, t) in model.vs.variables() {
        if headless && name.starts_with("cls.") {
            continue;
        }
        params += t.numel() as i64;
        let name = match (headless, name.strip_prefix("bert.")) {
            (true, Some(s)) => s.to_string(),
            _ => name,
        };
        let t = t.detach();
        if opts.int8 && quantisable(&name, &t) {
            let (q, scale) = quantise(&t);
            named.push((format!("{name}.qweight"), q));
            named.push((format!("{name}.qscale"), scale));
        } else {
            named.push((name, t.to_kind(opts.dtype).contiguous()));
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    (named, params)
}

/// config.json: the model's, with the export's dtype and quantisation.
fn config_json(model: &Model, heads: Heads, opts: &ExportOptions) -> String {
    let mut config = model.config().to_json(heads.architecture());
    let map = config.as_object_mut().expect("object");
    map.insert("dtype".into(), dtype_name(opts.dtype).into());
    map.insert("torch_dtype".into(), dtype_name(opts.dtype).into());
    map.remove("_name_or_path");
    if opts.int8 {
        // transformers refuses a model_type it does not know (AutoConfig, and so
        // AutoModel and sentence-transformers), rather than load random weights.
        map.insert("model_type".into(), bert::config::INT8_MODEL_TYPE.into());
        map.insert(
            "destila_quantization".into(),
            serde_json::json!({"method": "int8, symmetric, per output row (linear weights and the word embeddings)", "tensors": "NAME.qweight (int8) and NAME.qscale (f32)"}),
        );
    }
    serde_json::to_string_pretty(&config).expect("json") + "\n"
}

/// The tokenizer files (copied, or written from the tokenizer where the checkpoint lacks
/// them) and a sentence-transformers folder's modules.
fn tokenizer_files(checkpoint: &Path, tmp: &Path, model: &Model) -> Result<()> {
    let write = |name: &str, text: String| -> Result<()> {
        let p = tmp.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    crate::distill::checkpoint::copy_tokenizer(checkpoint, tmp)?;
    // A sentence-transformers folder stays one; a plain checkpoint gets no modules.
    let st = crate::sentence::copy(checkpoint, tmp, model.config().hidden_size)?;
    if !st {
        eprintln!(
            "note: {} has no modules.json (not a sentence-transformers model): the export writes no pooling modules, and is a plain transformers folder",
            checkpoint.display()
        );
    }
    if !tmp.join("vocab.txt").is_file() {
        let tokenizer = crate::tokenize::BertTokenizer::from_dir(checkpoint)?;
        write("vocab.txt", tokenizer.vocab_in_order().join("\n") + "\n")?;
    }
    if !tmp.join("tokenizer_config.json").is_file() {
        let cfg = serde_json::json!({"tokenizer_class": "BertTokenizer", "do_lower_case": true,
            "model_max_length": model.config().max_position_embeddings,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"});
        write(
            "tokenizer_config.json",
            serde_json::to_string_pretty(&cfg).expect("json"),
        )?;
    }
    if !tmp.join("special_tokens_map.json").is_file() {
        let m = serde_json::json!({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"});
        write(
            "special_tokens_map.json",
            serde_json::to_string_pretty(&m).expect("json"),
        )?;
    }
    Ok(())
}

/// Writes the export into the (empty, temporary) folder `tmp`.
fn write_export(checkpoint: &Path, tmp: &Path, opts: &ExportOptions) -> Result<ExportSummary> {
    let model = bert::load(checkpoint, &LoadOptions::default())?;
    crate::tokenize::BertTokenizer::from_dir(checkpoint)?;
    // transformers has no per-layer widths: a structurally pruned model is written at its
    // nominal shape with zero heads and neurons, which compute nothing, so that it loads
    // and gives the same numbers (the int8 form is destila's own and stays compact).
    let padded = model.config().is_pruned() && !opts.int8;
    let model = if padded {
        crate::prune::shape::pad(&model)?
    } else {
        model
    };
    let mut heads = model.bert.heads;
    if opts.heads == HeadsMode::Drop {
        heads.mlm = false;
        heads.nsp = false;
    }
    let (named, params) = tensors(&model, heads, opts);
    let weights = tmp.join(if opts.int8 {
        bert::weights::INT8_WEIGHTS
    } else {
        "model.safetensors"
    });
    Tensor::write_safetensors(&named, &weights)
        .map_err(|e| Error::checkpoint(&weights, e.to_string()))?;
    let config = tmp.join("config.json");
    std::fs::write(&config, config_json(&model, heads, opts)).map_err(|e| Error::io(&config, e))?;
    tokenizer_files(checkpoint, tmp, &model)?;
    let summary = ExportSummary {
        out: tmp.to_path_buf(),
        architecture: heads.architecture().to_string(),
        parameters: params,
        file_bytes: std::fs::metadata(&weights)
            .map_err(|e| Error::io(&weights, e))?
            .len(),
        dtype: if opts.int8 {
            "int8 + ".to_string() + dtype_name(opts.dtype)
        } else {
            dtype_name(opts.dtype).to_string()
        },
        int8: opts.int8,
        padded,
    };
    let eval = match &opts.eval {
        Some(p) => Some(
            serde_json::from_str::<serde_json::Value>(&crate::error::read_to_string(p)?)
                .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?,
        ),
        None => None,
    };
    let card = tmp.join("README.md");
    let text = model_card(checkpoint, &summary, model.config(), eval.as_ref());
    std::fs::write(&card, text).map_err(|e| Error::io(&card, e))?;
    Ok(summary)
}
