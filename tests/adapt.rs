//! Teacher adaptation (`teacher.heads: adapt`) on tiny models with the real vocabulary: the
//! adapted teacher is its own folder with MLM/NSP heads, its encoder moved (only the layers
//! asked for), cached by digest and reused, named when it differs, and transformers loads
//! it as BertForPreTraining with the same outputs. And the mechanism the adaptation exists
//! for: a teacher's soft targets teach a student more than the labels alone.

mod common;

use std::path::{Path, PathBuf};

use destila::bert::{self, ForwardOptions, Heads, MlmPositions};
use destila::distill::recipe::Recipe;
use destila::distill::trainer::{run, RunOptions};

use common::{corpus, tiny_teacher};

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..Default::default()
    }
}

/// A distillation recipe whose teacher is adapted first (`adapt` is the YAML of
/// `teacher.adapt`, without the cache, which goes under `dir`).
fn adapt_recipe(dir: &Path, teacher: &Path, adapt: &str, seed: u64) -> PathBuf {
    let (train, val) = corpus(dir);
    let yaml = format!(
        "seed: {seed}\noutput: {out}\ndevice: cpu\n\
         teacher: {{checkpoint: {t}, heads: adapt, adapt: {{{adapt}, cache: {cache}}}}}\n\
         student: {{layers: 1, init: from-teacher, teacher_layers: [1]}}\n\
         data: {{train: [{train}], validation: [{val}], max_seq_len: 32, cache_dir: {shards}}}\n\
         losses: {{temperature: 2.0, kd_mlm: {{weight: 1.0}}, kd_nsp: {{weight: 1.0}}, mlm: {{weight: 0.5}}}}\n\
         optimizer: {{learning_rate: 0.002, warmup_steps: 1}}\n\
         training: {{steps: 3, batch_size: 8, eval_batches: 2}}\n",
        out = dir.join("run").display(),
        t = teacher.display(),
        cache = dir.join("adapted").display(),
        train = train.display(),
        val = val.display(),
        shards = dir.join("shards").display(),
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, &yaml).unwrap();
    path
}

fn distill(recipe: &Path, extra: &[&str]) -> String {
    let out = common::destila()
        .args(["distill", recipe.to_str().unwrap(), "--quiet"])
        .args(extra)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn headless(dir: &Path) -> PathBuf {
    tiny_teacher(
        dir,
        2,
        32,
        4,
        Heads {
            pooler: true,
            ..Default::default()
        },
    )
}

#[test]
fn a_headless_teacher_is_adapted_into_its_own_folder_cached_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let t = headless(&dir.path().join("teacher"));
    let recipe = adapt_recipe(
        dir.path(),
        &t,
        "steps: 12, learning_rate: 0.003, batch_size: 8",
        1,
    );
    let err = distill(&recipe, &[]);
    assert!(err.contains("teacher adaptation"), "{err}");
    let adapted = dir.path().join("run/teacher-adapted");
    // Its own model with both heads; the user's teacher is untouched.
    let m = bert::load(&adapted, &Default::default()).unwrap();
    assert_eq!(m.report.as_ref().unwrap().checkpoint_heads, Heads::ALL);
    let original = bert::load(&t, &Default::default()).unwrap();
    assert!(!original.report.as_ref().unwrap().checkpoint_heads.mlm);
    // Every layer trained (train_layers absent): embeddings and both layers moved.
    let (a, b) = (original.vs.variables(), m.vs.variables());
    for name in [
        "bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.1.output.dense.weight",
    ] {
        assert!(!a[name].equal(&b[name]), "{name} did not train");
    }
    // Provenance: the key (job, digest of the teacher's weights, settings) and the curve.
    let key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapted.join("fit.json")).unwrap()).unwrap();
    assert_eq!(key["job"], "adapt");
    assert_eq!(key["adapt"]["steps"], 12);
    let rows = destila::distill::metrics::read(&adapted.join("metrics.csv")).unwrap();
    assert!(rows
        .iter()
        .any(|r| r["split"] == "validation" && !r["mlm_accuracy"].is_empty()));
    for loss in ["mlm", "nsp", "pooled_cos", "similarity"] {
        assert!(
            rows.iter()
                .any(|r| r["split"] == "train" && !r[loss].is_empty()),
            "{loss} not trained"
        );
    }
    // Cached by digest in the shared cache, reused by a later run (--force keeps it).
    // (Beside it, destila's marker listing what it wrote there.)
    let cached: Vec<_> = std::fs::read_dir(dir.path().join("adapted"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    let err = distill(&recipe, &["--force"]);
    assert!(
        err.contains("reusing") && !err.contains("teacher adaptation"),
        "{err}"
    );
    // From the shared cache alone, into another run's folder.
    let other = dir.path().join("other.yaml");
    let text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace("/run\n", "/run2\n");
    std::fs::write(&other, text).unwrap();
    let err = distill(&other, &[]);
    assert!(err.contains("reusing"), "{err}");
    let copy = bert::load(dir.path().join("run2/teacher-adapted"), &Default::default()).unwrap();
    let c = copy.vs.variables();
    for (name, v) in &b {
        assert!(v.equal(&c[name]), "{name} differs in the reused copy");
    }
    // Other settings: not reused, and the message names what differs.
    let err = distill(
        &recipe,
        &["--force", "--set", "teacher.adapt.learning_rate=0.001"],
    );
    assert!(
        err.contains("not reusing") && err.contains("other teacher.adapt settings"),
        "{err}"
    );
}

#[test]
fn adapting_only_the_top_layer_leaves_the_rest_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let t = headless(&dir.path().join("teacher"));
    let recipe = adapt_recipe(
        dir.path(),
        &t,
        "steps: 6, learning_rate: 0.003, batch_size: 8, train_layers: 1",
        1,
    );
    distill(&recipe, &[]);
    let original = bert::load(&t, &Default::default()).unwrap();
    let m = bert::load(dir.path().join("run/teacher-adapted"), &Default::default()).unwrap();
    let (a, b) = (original.vs.variables(), m.vs.variables());
    for (name, v) in &a {
        let moved = !v.equal(&b[name]);
        let trains = name.starts_with("bert.encoder.layer.1.") || name.starts_with("bert.pooler.");
        assert_eq!(
            moved, trains,
            "{name}: moved {moved}, should train {trains}"
        );
    }
}

#[test]
fn the_adapted_teacher_loads_in_transformers_with_its_heads() {
    let dir = tempfile::tempdir().unwrap();
    let t = headless(&dir.path().join("teacher"));
    let recipe = adapt_recipe(
        dir.path(),
        &t,
        "steps: 4, learning_rate: 0.003, batch_size: 8",
        1,
    );
    distill(&recipe, &[]);
    let adapted = dir.path().join("run/teacher-adapted");
    let out = dir.path().join("export");
    let o = common::destila()
        .args(["export", adapted.to_str().unwrap(), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = destila::tokenize::BertTokenizer::from_dir(&out).unwrap();
    let (x, _) = tok
        .batch(&[destila::tokenize::Text::Pair(
            "The teacher knows the word.",
            "It was a fine day.",
        )])
        .unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    tch::Tensor::write_safetensors(
        &[
            ("input_ids", &x.input_ids),
            ("attention_mask", &x.attention_mask),
            ("token_type_ids", &x.token_type_ids),
        ],
        &inputs,
    )
    .unwrap();
    let (info, hf) = common::transformers(&out, "BertForPreTraining", &inputs);
    assert_eq!(info["missing"], serde_json::json!([]), "{info}");
    assert_eq!(info["unexpected"], serde_json::json!([]), "{info}");
    let m = bert::load(&adapted, &Default::default()).unwrap();
    let ours = tch::no_grad(|| {
        m.forward(
            &x,
            &ForwardOptions {
                mlm: MlmPositions::All,
                nsp: true,
                ..Default::default()
            },
        )
    })
    .unwrap();
    assert!(common::max_abs(ours.mlm_logits.as_ref().unwrap(), &hf["prediction_logits"]) < 1e-4);
    assert!(
        common::max_abs(
            ours.nsp_logits.as_ref().unwrap(),
            &hf["seq_relationship_logits"]
        ) < 1e-4
    );
}

#[test]
fn bad_adaptation_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let t = headless(&dir.path().join("teacher"));
    let recipe = adapt_recipe(dir.path(), &t, "steps: 4", 1);
    for (set, field) in [
        ("teacher.adapt.steps=0", "teacher.adapt.steps"),
        (
            "teacher.adapt.learning_rate=1e10",
            "teacher.adapt.learning_rate",
        ),
        ("teacher.adapt.train_layers=0", "teacher.adapt.train_layers"),
        ("teacher.adapt.train_layers=3", "teacher.adapt.train_layers"),
        ("teacher.adapt.preserve=-1", "teacher.adapt.preserve"),
        (
            "teacher.adapt.mlm_probability=1.5",
            "teacher.adapt.mlm_probability",
        ),
        ("teacher.adapt.cache=''", "teacher.adapt.cache"),
        ("teacher.adapt.batch_size=0", "teacher.adapt.batch_size"),
        ("teacher.adapt.colour=1", "teacher.adapt"),
        ("student.train_layers=2", "student.train_layers"),
    ] {
        let e = Recipe::from_file_with(&recipe, &[set.to_string()])
            .expect_err(set)
            .to_string();
        assert!(e.contains(field), "{set}: {e}");
    }
    // A file where the cache folder should be: refused before any work, file untouched.
    let file = dir.path().join("adapted-file");
    std::fs::write(&file, "mine").unwrap();
    let o = common::destila()
        .args(["distill", recipe.to_str().unwrap(), "--quiet", "--set"])
        .arg(format!("teacher.adapt.cache={}", file.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("teacher.adapt.cache"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

/// Item 4 of the issue: a tiny teacher pretrained on a small corpus, then two students at
/// equal steps from the same random init and data, with and without its soft targets; the
/// one with soft targets ends with the lower held-out MLM loss, for two seeds.
#[test]
fn soft_targets_of_a_pretrained_teacher_lower_the_students_held_out_mlm_loss() {
    let dir = tempfile::tempdir().unwrap();
    let t = headless(&dir.path().join("init"));
    let (train, val) = corpus(dir.path());
    let data = format!(
        "data: {{train: [{}], validation: [{}], max_seq_len: 32, cache_dir: {}}}\n",
        train.display(),
        val.display(),
        dir.path().join("shards").display()
    );
    // The teacher: pretrained with MLM + NSP (2 layers, 32 wide) from a random init.
    let teacher_yaml = format!(
        "job: pretrain\nseed: 7\noutput: {}\ndevice: cpu\n\
         student: {{layers: 2, hidden_size: 32, attention_heads: 4, intermediate_size: 64}}\n\
         {}\n\
         losses: {{mlm: {{weight: 1.0}}, nsp: {{weight: 1.0}}}}\n\
         optimizer: {{learning_rate: 0.003, warmup_steps: 20}}\n\
         training: {{steps: 300, batch_size: 16, eval_batches: 4}}\n",
        dir.path().join("teacher-run").display(),
        data.trim_end().replace(
            "max_seq_len: 32,",
            &format!("max_seq_len: 32, tokenizer: {},", t.display())
        ),
    );
    let tp = dir.path().join("teacher.yaml");
    std::fs::write(&tp, teacher_yaml).unwrap();
    let teacher = run(&Recipe::from_file(&tp).unwrap(), &quiet()).unwrap();
    let mut gaps = Vec::new();
    for seed in [1, 2] {
        let mut held_out = Vec::new();
        for kd in [false, true] {
            let losses = if kd {
                "losses: {temperature: 2.0, mlm: {weight: 1.0}, kd_mlm: {weight: 1.0}}"
            } else {
                "losses: {mlm: {weight: 1.0}}"
            };
            let yaml = format!(
                "seed: {seed}\noutput: {}\ndevice: cpu\n\
                 teacher: {{checkpoint: {}}}\n\
                 student: {{layers: 1, hidden_size: 32, attention_heads: 4, intermediate_size: 64}}\n\
                 {data}{losses}\n\
                 optimizer: {{learning_rate: 0.003, warmup_steps: 10}}\n\
                 training: {{steps: 120, batch_size: 16, eval_every: 120, eval_batches: 4}}\n",
                dir.path().join(format!("s{seed}-{kd}")).display(),
                teacher.final_model.display(),
            );
            let p = dir.path().join(format!("s{seed}-{kd}.yaml"));
            std::fs::write(&p, yaml).unwrap();
            let s = run(&Recipe::from_file(&p).unwrap(), &quiet()).unwrap();
            let rows = destila::distill::metrics::read(&s.metrics).unwrap();
            let last = rows.iter().rfind(|r| r["split"] == "validation").unwrap();
            held_out.push(last["mlm"].parse::<f64>().unwrap());
        }
        // Labels only, then labels + soft targets: the soft targets' run is lower.
        gaps.push((seed, held_out[0], held_out[1]));
    }
    eprintln!("held-out MLM loss (seed, labels only, with soft targets): {gaps:?}");
    for &(seed, labels, soft) in &gaps {
        assert!(
            soft < labels - 0.1,
            "seed {seed}: held-out MLM loss {labels:.3} (labels) vs {soft:.3} (with soft targets); all {gaps:?}"
        );
    }
}

/// The `first` view of a sentence pair is the first segment alone: a model's mean-pooled
/// embedding of it equals its embedding of `[CLS] A [SEP]` tokenized on its own.
#[test]
fn the_first_view_of_a_pair_embeds_like_its_first_sentence_alone() {
    use destila::data::Batch;
    use destila::tokenize::{BertTokenizer, Text};
    use tch::{Kind, Tensor};
    let dir = tempfile::tempdir().unwrap();
    let t = headless(&dir.path().join("teacher"));
    let m = bert::load(&t, &Default::default()).unwrap();
    let tok = BertTokenizer::from_dir(&t).unwrap();
    let (a, b) = (
        "She holds a senior position.",
        "The station on the hill sells petrol.",
    );
    let (pair, _) = tok.batch(&[Text::Pair(a, b), Text::Single(b)]).unwrap();
    let (single, _) = tok.batch(&[Text::Single(a)]).unwrap();
    let batch = Batch {
        labels: pair.input_ids.full_like(-100),
        masked_positions: Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu)),
        masked_labels: Tensor::zeros([0], (Kind::Int64, tch::Device::Cpu)),
        nsp_labels: Tensor::zeros([2], (Kind::Int64, tch::Device::Cpu)),
        targets: None,
        inputs: pair,
    };
    let first = destila::distill::step::first_inputs(&batch);
    let embed = |x: &destila::bert::Inputs| {
        let o = tch::no_grad(|| m.forward(x, &Default::default())).unwrap();
        destila::distill::losses::mean_pool(o.hidden_states.last().unwrap(), &x.attention_mask)
    };
    let (e_first, e_single) = (embed(&first), embed(&single));
    assert!(common::max_abs(&e_first.get(0), &e_single.get(0)) < 1e-5);
    // A single sentence in the batch is its own first segment.
    let (alone, _) = tok.batch(&[Text::Single(b)]).unwrap();
    assert!(common::max_abs(&e_first.get(1), &embed(&alone).get(0)) < 1e-5);
}
