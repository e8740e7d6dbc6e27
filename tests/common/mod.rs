//! Shared helpers for the integration tests: where the reference fixtures (written by
//! scripts/fixtures.py from HF `transformers`) and the real teacher live.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use destila::bert::{BertConfig, Heads};
use destila::distill::recipe::Recipe;

use destila::bert::Inputs;
use tch::{Kind, Tensor};

pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("DESTILA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/fixtures"));
    assert!(
        dir.join("DONE").is_file(),
        "reference fixtures missing in {}: run `make fixtures` (or `make test`)",
        dir.display()
    );
    dir
}

pub fn teacher() -> PathBuf {
    let dir = std::env::var_os("DESTILA_TEACHER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache/teachers/all-MiniLM-L6-v2"));
    assert!(
        dir.join("model.safetensors").is_file(),
        "teacher missing in {}: run `make setup`",
        dir.display()
    );
    dir
}

pub fn read(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(name);
    Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

pub fn inputs(t: &HashMap<String, Tensor>) -> Inputs {
    Inputs {
        input_ids: t["input_ids"].shallow_clone(),
        attention_mask: t["attention_mask"].shallow_clone(),
        token_type_ids: t["token_type_ids"].shallow_clone(),
    }
}

pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes differ");
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

pub fn destila() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_destila"))
}

/// A random BERT saved in `dir`, with BERT's initialisation; `noise` then moves every
/// parameter (LayerNorms and biases too) off its initial value, so that a wrong mapping
/// cannot hide behind a constant; `tokenizer` copies the teacher's tokenizer files.
pub fn random_checkpoint(
    dir: &std::path::Path,
    cfg: &destila::bert::BertConfig,
    heads: destila::bert::Heads,
    seed: i64,
    noise: bool,
    tokenizer: bool,
) -> PathBuf {
    // libtorch's generator is global and the tests of one binary run in parallel: without
    // the lock, two helpers seeding it at once draw each other's numbers and a fixture
    // differs from run to run.
    static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let m = {
        let _held = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed);
        let m = destila::bert::Model::random(cfg, heads, tch::Device::Cpu);
        if noise {
            // In name order: `variables()` is a HashMap, whose order changes from run to run.
            let mut vars: Vec<_> = m.vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            tch::no_grad(|| {
                for (_, mut v) in vars {
                    let n = v.randn_like() * 0.05;
                    let _ = v.g_add_(&n);
                }
            });
        }
        m
    };
    destila::bert::save(&m, dir).unwrap();
    if tokenizer {
        destila::distill::checkpoint::copy_tokenizer(&teacher(), dir).unwrap();
    }
    dir.to_path_buf()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A random BERT with the teacher's vocabulary and tokenizer, saved under `dir`.
pub fn tiny_teacher(dir: &Path, layers: i64, hidden: i64, heads_n: i64, heads: Heads) -> PathBuf {
    let cfg = BertConfig {
        num_hidden_layers: layers,
        hidden_size: hidden,
        num_attention_heads: heads_n,
        intermediate_size: hidden * 2,
        max_position_embeddings: 64,
        ..Default::default()
    };
    random_checkpoint(dir, &cfg, heads, 3, false, true)
}

/// A random BERT 32 wide (4 heads, FFN 64) of `layers` layers with the teacher's
/// vocabulary and tokenizer, every parameter moved off its initial value, drawn from `seed`.
pub fn tiny_bert(dir: &Path, layers: i64, seed: i64, heads: Heads) -> PathBuf {
    let cfg = BertConfig {
        num_hidden_layers: layers,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..Default::default()
    };
    random_checkpoint(dir, &cfg, heads, seed, true, true)
}

/// A small corpus: the first paragraphs of Persuasion for training, later ones held out.
pub fn corpus(dir: &Path) -> (PathBuf, PathBuf) {
    let text =
        std::fs::read_to_string(root().join("data/austen/validation/persuasion.txt")).unwrap();
    let paras: Vec<&str> = text.split("\n\n").filter(|p| p.trim().len() > 40).collect();
    let (train, val) = (dir.join("train.txt"), dir.join("val.txt"));
    std::fs::write(&train, paras[..300].join("\n\n")).unwrap();
    std::fs::write(&val, paras[300..360].join("\n\n")).unwrap();
    (train, val)
}

pub fn recipe(dir: &Path, teacher: &Path, body: &str) -> Recipe {
    let (train, val) = corpus(dir);
    let yaml = format!(
        "seed: 1\noutput: {out}\ndevice: cpu\nteacher: {{checkpoint: {t}, heads: fit, fit: {{steps: 4, cache: {heads}}}}}\n\
         data: {{train: [{train}], validation: [{val}], max_seq_len: 32, cache_dir: {cache}}}\n{body}",
        out = dir.join("run").display(),
        t = teacher.display(),
        train = train.display(),
        val = val.display(),
        cache = dir.join("cache").display(),
        heads = dir.join("heads-cache").display(),
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, &yaml).unwrap();
    Recipe::from_file(&path).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// (step, loss) of the train rows of a run's metrics.csv.
pub fn train_losses(metrics: &Path) -> Vec<(u64, f64)> {
    destila::distill::metrics::read(metrics)
        .unwrap()
        .into_iter()
        .filter(|r| r["split"] == "train")
        .map(|r| (r["step"].parse().unwrap(), r["loss"].parse().unwrap()))
        .collect()
}

/// A JSON list of number lists as vectors.
pub fn rows(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// `destila embed DIR --input TEXTS --format jsonl` on the CPU: one embedding per line.
pub fn embed_jsonl(dir: &Path, texts: &Path) -> Vec<Vec<f64>> {
    let o = destila()
        .args([
            "embed",
            dir.to_str().unwrap(),
            "--input",
            texts.to_str().unwrap(),
        ])
        .args(["--format", "jsonl", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let embeddings: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["embedding"].clone())
        .collect();
    rows(&serde_json::Value::Array(embeddings))
}

/// A 2-layer student distilled for 2 steps from the real teacher (its layers 2 and 5,
/// sentence-embedding loss): the final model's folder, under `dir`.
pub fn short_student(dir: &Path) -> PathBuf {
    let body = "student: {layers: 2, init: from-teacher, teacher_layers: [2, 5]}\n\
        losses: {pooled_cos: {weight: 1.0}}\n\
        optimizer: {learning_rate: 0.0001, warmup_steps: 1}\n\
        training: {steps: 2, batch_size: 4, eval_every: 0, eval_batches: 1}\n";
    run_quiet(&recipe(dir, &teacher(), body)).final_model
}

/// The largest absolute difference between two lists of vectors.
pub fn max_abs_rows(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

/// The Python with the reference libraries (`DESTILA_PYTHON`, default the project's venv).
pub fn python() -> PathBuf {
    std::env::var_os("DESTILA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"))
}

/// Runs transformers on a model folder (scripts/check_export.py, `class` AutoModel or
/// BertForPreTraining) over the inputs saved at `inputs`; returns its loading report and
/// outputs.
pub fn transformers(
    d: &Path,
    class: &str,
    inputs: &Path,
) -> (serde_json::Value, HashMap<String, Tensor>) {
    let out = d.parent().unwrap().join(format!("{class}-out.safetensors"));
    let r = std::process::Command::new(python())
        .arg(root().join("scripts/check_export.py"))
        .args([d, Path::new(class), inputs, &out])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    let info: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let t = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    (info, t)
}

/// Runs a recipe to the end without progress output.
pub fn run_quiet(r: &Recipe) -> destila::distill::trainer::RunSummary {
    destila::distill::trainer::run(
        r,
        &destila::distill::trainer::RunOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap()
}
