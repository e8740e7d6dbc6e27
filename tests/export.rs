//! Exported folders against `transformers` (scripts/check_export.py): loading with no missing
//! or unexpected weights and the same outputs; dtypes, heads, int8, bad input.

mod common;

use std::path::{Path, PathBuf};

use common::transformers;

use destila::bert::{self, BertConfig, ForwardOptions, Heads, MlmPositions};
use destila::export::{export, ExportOptions, HeadsMode};
use tch::{Kind, Tensor};

/// A small random BertForPreTraining with the real vocabulary and tokenizer (tokenizer.json
/// only, so the export must write vocab.txt itself).
fn checkpoint(dir: &Path) -> PathBuf {
    let cfg = BertConfig {
        num_hidden_layers: 2,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..Default::default()
    };
    let d = common::random_checkpoint(&dir.join("ckpt"), &cfg, Heads::ALL, 5, true, false);
    std::fs::copy(
        common::teacher().join("tokenizer.json"),
        d.join("tokenizer.json"),
    )
    .unwrap();
    d
}

fn opts() -> ExportOptions {
    ExportOptions {
        dtype: Kind::Float,
        heads: HeadsMode::Keep,
        int8: false,
        force: false,
        eval: None,
    }
}

fn inputs(dir: &Path) -> (destila::bert::Inputs, PathBuf) {
    let tok = destila::tokenize::BertTokenizer::from_dir(common::teacher()).unwrap();
    let texts = [
        destila::tokenize::Text::Single("The quick brown fox."),
        destila::tokenize::Text::Pair("Ele ocupa um alto posto", "na empresa e no morro"),
    ];
    let (x, _) = tok.batch(&texts).unwrap();
    let path = dir.join("inputs.safetensors");
    Tensor::write_safetensors(
        &[
            ("input_ids", &x.input_ids),
            ("attention_mask", &x.attention_mask),
            ("token_type_ids", &x.token_type_ids),
        ],
        &path,
    )
    .unwrap();
    (x, path)
}

#[test]
fn full_export_loads_in_bert_for_pretraining_with_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let out = dir.path().join("export");
    let s = export(&ck, &out, &opts()).unwrap();
    assert_eq!(s.architecture, "BertForPreTraining");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The generated vocab.txt is the teacher's.
    assert_eq!(
        std::fs::read_to_string(out.join("vocab.txt")).unwrap(),
        std::fs::read_to_string(common::teacher().join("vocab.txt")).unwrap()
    );
    let (x, inputs_path) = inputs(dir.path());
    let (info, hf) = transformers(&out, "BertForPreTraining", &inputs_path);
    assert_eq!(info["class"], "BertForPreTraining");
    assert_eq!(info["missing"], serde_json::json!([]), "{info}");
    assert_eq!(info["unexpected"], serde_json::json!([]), "{info}");
    assert_eq!(
        info["tokenizer_ids"],
        serde_json::json!([101, 7592, 2088, 1010, 2695, 2080, 1012, 102])
    );
    let m = bert::load(&out, &Default::default()).unwrap();
    let o = ForwardOptions {
        mlm: MlmPositions::All,
        nsp: true,
        ..Default::default()
    };
    let ours = tch::no_grad(|| m.forward(&x, &o)).unwrap();
    assert!(common::max_abs(ours.mlm_logits.as_ref().unwrap(), &hf["prediction_logits"]) < 1e-4);
    assert!(
        common::max_abs(
            ours.nsp_logits.as_ref().unwrap(),
            &hf["seq_relationship_logits"]
        ) < 1e-4
    );
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("BertForPreTraining") && card.contains("AutoModel"));
}

#[test]
fn encoder_export_loads_in_automodel_with_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let out = dir.path().join("encoder");
    let s = export(
        &ck,
        &out,
        &ExportOptions {
            heads: HeadsMode::Drop,
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(s.architecture, "BertModel");
    let (x, inputs_path) = inputs(dir.path());
    let (info, hf) = transformers(&out, "AutoModel", &inputs_path);
    assert_eq!(info["class"], "BertModel");
    assert_eq!(info["missing"], serde_json::json!([]), "{info}");
    assert_eq!(info["unexpected"], serde_json::json!([]), "{info}");
    let m = bert::load(&out, &Default::default()).unwrap();
    assert_eq!(
        m.report.as_ref().unwrap().checkpoint_heads,
        Heads {
            pooler: true,
            ..Default::default()
        }
    );
    let ours = tch::no_grad(|| m.forward(&x, &ForwardOptions::default())).unwrap();
    assert!(common::max_abs(ours.last_hidden_state(), &hf["last_hidden_state"]) < 1e-4);
    assert!(common::max_abs(ours.pooled.as_ref().unwrap(), &hf["pooler_output"]) < 1e-4);
}

#[test]
fn half_precision_halves_the_file_and_int8_quarters_the_linear_weights() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let size = |p: &Path| {
        std::fs::metadata(bert::weights::weights_file(p))
            .unwrap()
            .len() as f64
    };
    let f32_dir = dir.path().join("f32");
    export(&ck, &f32_dir, &opts()).unwrap();
    for (name, kind) in [("f16", Kind::Half), ("bf16", Kind::BFloat16)] {
        let d = dir.path().join(name);
        export(
            &ck,
            &d,
            &ExportOptions {
                dtype: kind,
                ..opts()
            },
        )
        .unwrap();
        let ratio = size(&d) / size(&f32_dir);
        assert!((ratio - 0.5).abs() < 0.01, "{name}: {ratio}");
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            cfg["dtype"],
            if name == "f16" { "float16" } else { "bfloat16" }
        );
    }
    // int8: every linear weight of the encoder and heads and the word-embedding table at one
    // byte, loadable by destila.
    let q = dir.path().join("int8");
    export(
        &ck,
        &q,
        &ExportOptions {
            int8: true,
            heads: HeadsMode::Drop,
            ..opts()
        },
    )
    .unwrap();
    let enc = dir.path().join("enc32");
    export(
        &ck,
        &enc,
        &ExportOptions {
            heads: HeadsMode::Drop,
            ..opts()
        },
    )
    .unwrap();
    let a = bert::load(&enc, &Default::default()).unwrap();
    let b = bert::load(&q, &Default::default()).unwrap();
    let vars = a.vs.variables();
    let linear: Vec<&Tensor> = vars
        .iter()
        .filter(|(n, t)| {
            t.dim() == 2 && (!n.contains("embeddings") || n.ends_with("word_embeddings.weight"))
        })
        .map(|(_, t)| t)
        .collect();
    let weights: f64 = linear.iter().map(|t| t.numel() as f64).sum();
    let rows: f64 = linear.iter().map(|t| t.size()[0] as f64).sum();
    // Each of these weights shrinks from 4 bytes to 1, plus a 4-byte scale per output row and
    // a longer safetensors header (two names per weight).
    let saved = size(&enc) - size(&q);
    let expected = 3.0 * weights - 4.0 * rows;
    assert!(
        saved <= expected && saved > expected - 4096.0,
        "saved {saved} bytes, expected about {expected}"
    );
    let (x, _) = inputs(dir.path());
    let ha = tch::no_grad(|| a.forward(&x, &ForwardOptions::default())).unwrap();
    let hb = tch::no_grad(|| b.forward(&x, &ForwardOptions::default())).unwrap();
    let d = common::max_abs(ha.last_hidden_state(), hb.last_hidden_state());
    assert!(d > 0.0 && d < 0.05, "int8 changed the outputs by {d}");
    int8_is_refused_by_transformers(&q);
}

/// An int8 export is destila's alone: transformers (Auto and BERT classes) and
/// sentence-transformers refuse it with an error, rather than load it with random weights.
fn int8_is_refused_by_transformers(q: &Path) {
    assert!(q.join(bert::weights::INT8_WEIGHTS).is_file());
    assert!(!q.join("model.safetensors").exists());
    std::fs::write(
        q.join("modules.json"),
        r#"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]"#,
    )
    .unwrap();
    let script = r#"
import sys, json
from transformers import AutoModel, BertModel, BertForPreTraining
results = {}
def attempt(name, f):
    try:
        f()
        results[name] = "loaded"
    except Exception as e:
        results[name] = "refused: " + type(e).__name__ + ": " + str(e)[:200]
d = sys.argv[1]
attempt("AutoModel", lambda: AutoModel.from_pretrained(d))
attempt("BertModel", lambda: BertModel.from_pretrained(d))
attempt("BertForPreTraining", lambda: BertForPreTraining.from_pretrained(d))
try:
    from sentence_transformers import SentenceTransformer
    attempt("SentenceTransformer", lambda: SentenceTransformer(d, device="cpu"))
except ImportError:
    pass
print(json.dumps(results))
"#;
    let r = std::process::Command::new(common::python())
        .args(["-c", script])
        .arg(q)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let v = v.as_object().unwrap();
    assert!(v.len() >= 3, "{v:?}");
    for (class, outcome) in v {
        assert!(
            outcome.as_str().unwrap().starts_with("refused"),
            "{class} loaded the int8 folder: {outcome}"
        );
    }
    eprintln!("int8 folder: {v:?}");
}

#[test]
fn an_existing_folder_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    let out = dir.path().join("export");
    // An empty folder is fine; the export's own earlier output needs --force.
    std::fs::create_dir_all(&out).unwrap();
    export(&ck, &out, &opts()).unwrap();
    let e = export(&ck, &out, &opts()).unwrap_err().to_string();
    assert!(
        e.contains("earlier destila export") && e.contains("--force"),
        "{e}"
    );
    export(
        &ck,
        &out,
        &ExportOptions {
            force: true,
            ..opts()
        },
    )
    .unwrap();
    assert!(out.join("model.safetensors").is_file());
    // Somebody else's file in it: refused even with --force, and the file survives.
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let e = export(
        &ck,
        &out,
        &ExportOptions {
            force: true,
            ..opts()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("notes.txt") && e.contains("did not write"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn a_narrower_student_distils_through_projections_and_loads_in_transformers() {
    // recipes/narrow.yaml on tiny models: teacher 32 wide with 4 heads, student 16 wide
    // with 2 heads (hidden_mse through the learned projection, kd_mlm); its export loads
    // in transformers with its own outputs.
    let dir = tempfile::tempdir().unwrap();
    let t = common::tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let (train, val) = common::corpus(dir.path());
    let sets: Vec<String> = vec![
        format!("output={}", dir.path().join("run").display()),
        "device=cpu".into(),
        format!("teacher.checkpoint={}", t.display()),
        format!("data.train=[{}]", train.display()),
        format!("data.validation=[{}]", val.display()),
        "data.max_seq_len=32".into(),
        format!("data.cache_dir={}", dir.path().join("cache").display()),
        "student.layers=2".into(),
        "student.hidden_size=16".into(),
        "student.attention_heads=2".into(),
        "student.intermediate_size=32".into(),
        "training.steps=4".into(),
        "training.batch_size=4".into(),
        "training.eval_batches=1".into(),
        "optimizer.warmup_steps=1".into(),
    ];
    let r = destila::distill::recipe::Recipe::from_file_with(
        common::root().join("recipes/narrow.yaml"),
        &sets,
    )
    .unwrap();
    let s = destila::distill::trainer::run(
        &r,
        &destila::distill::trainer::RunOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(s.last_validation.unwrap().is_finite());
    assert!(s.final_model.join("projection.safetensors").is_file());
    let out = dir.path().join("export");
    let e = export(&s.final_model, &out, &opts()).unwrap();
    assert_eq!(e.architecture, "BertForPreTraining");
    let (x, inputs_path) = inputs(dir.path());
    let (info, _) = transformers(&out, "BertForPreTraining", &inputs_path);
    assert_eq!(info["missing"], serde_json::json!([]), "{info}");
    let (_, t_out) = transformers(&out, "AutoModel", &inputs_path);
    let m = destila::bert::load(&out, &Default::default()).unwrap();
    assert_eq!(m.config().hidden_size, 16);
    let o = tch::no_grad(|| m.forward(&x, &destila::bert::ForwardOptions::default())).unwrap();
    let d = common::max_abs(o.last_hidden_state(), &t_out["last_hidden_state"]);
    assert!(d < 1e-4, "{d}");
    // pooled_cos compares widths directly: refused by name for a narrower student, when the
    // recipe is read (before any data or model is prepared).
    let mut bad = sets.clone();
    bad.push("losses.pooled_cos.weight=1".into());
    let e = destila::distill::recipe::Recipe::from_file_with(
        common::root().join("recipes/narrow.yaml"),
        &bad,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("student.hidden_size") && e.contains("pooled_cos"),
        "{e}"
    );
}
