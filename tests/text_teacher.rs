//! A teacher that reads text (issue 21): an MPNet with its own vocabulary teaching a BERT
//! student through the sentence-level losses. References: transformers' MPNetModel and
//! numpy's SVD (scripts/check_text_teacher.py) on the original texts.

mod common;

use std::path::{Path, PathBuf};

use destila::distill::text_teacher::TextTeacher;
use destila::tokenize::{BertTokenizer, Text};
use tch::{Device, Kind, Tensor};

fn tiny_mpnet() -> PathBuf {
    common::fixtures().join("tiny-mpnet")
}

/// Sentences of Persuasion (held-out Austen), with accents and punctuation mixed in.
fn texts(n: usize) -> Vec<String> {
    let text =
        std::fs::read_to_string(common::root().join("data/austen/validation/persuasion.txt"))
            .unwrap();
    let mut out: Vec<String> = destila::data::sentences::split(&text.replace('\n', " "))
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| {
            let w = s.split_whitespace().count();
            (4..=25).contains(&w)
        })
        .take(n - 2)
        .collect();
    out.push("Café au lait, naïve Zoë — \"quite\" (so) well; isn't it?".into());
    out.push("ANNE ELLIOT of Kellynch-hall, Somersetshire.".into());
    out
}

fn reference(texts: &[String], k: usize, dir: &Path) -> (Tensor, Tensor) {
    let file = dir.join("texts.txt");
    std::fs::write(&file, texts.join("\n")).unwrap();
    let out = dir.join("ref.safetensors");
    let r = std::process::Command::new(common::python())
        .arg(common::root().join("scripts/check_text_teacher.py"))
        .args([
            tiny_mpnet().as_path(),
            &file,
            Path::new(&k.to_string()),
            &out,
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let t: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    (t["pooled"].shallow_clone(), t["pca"].shallow_clone())
}

/// Each sentence through each tokenizer: the student's ids, decoded and tokenized by the
/// teacher's own tokenizer, give the embeddings transformers gives the original text; the
/// PCA's directions are numpy's (up to sign).
#[test]
fn a_teacher_of_another_vocabulary_embeds_the_students_sentences_as_transformers_does() {
    let dir = tempfile::tempdir().unwrap();
    let texts = texts(48);
    let (want, want_pca) = reference(&texts, 4, dir.path());
    let student_tok = BertTokenizer::from_dir(common::teacher()).unwrap();
    let refs: Vec<Text> = texts.iter().map(|t| Text::Single(t)).collect();
    let (inputs, _) = student_tok.batch(&refs).unwrap();
    let mut teacher = TextTeacher::open(
        &tiny_mpnet(),
        BertTokenizer::from_dir(common::teacher()).unwrap(),
        Device::Cpu,
        None,
    )
    .unwrap();
    // The vocabularies differ (30,522 pieces against 500): ids cannot be shared.
    assert_eq!(student_tok.vocab_size(), 30522);
    let got = teacher
        .pooled(&inputs.input_ids, &inputs.attention_mask)
        .unwrap();
    let diff = common::max_abs(&got, &want);
    assert!(diff < 1e-5, "max abs difference {diff}");
    // A second call is served from memory and gives the same numbers.
    let again = teacher
        .pooled(&inputs.input_ids, &inputs.attention_mask)
        .unwrap();
    assert_eq!(common::max_abs(&again, &got), 0.0);
    let st = teacher.stats();
    assert_eq!((st.misses, st.hits), (48, 48));

    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    teacher.fit_pca(&refs, 4).unwrap();
    let ours = teacher.pca().unwrap();
    let m = ours.transpose(0, 1).matmul(&want_pca).abs();
    let diag: Vec<f64> = Vec::try_from(m.diagonal(0, 0, 1).to_kind(Kind::Double)).unwrap();
    assert!(
        diag.iter().all(|d| *d > 0.999),
        "|ours' x numpy's| {diag:?}"
    );
    // The targets are then the embeddings on those directions.
    let reduced = teacher
        .pooled(&inputs.input_ids, &inputs.attention_mask)
        .unwrap();
    assert_eq!(reduced.size(), [48, 4]);
    let diff = common::max_abs(&reduced, &got.matmul(ours));
    assert!(diff < 1e-5, "{diff}");
}

/// Two runs that share a pooled cache (the same teacher and student tokenizer), both
/// opened before either writes, each writing at its checkpoints: whichever writes last
/// keeps the other's embeddings, so a third run finds every sentence of both in the file
/// and computes none.
#[test]
fn runs_that_share_a_pooled_cache_keep_each_others_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("pooled");
    let texts = texts(26);
    let tok = || BertTokenizer::from_dir(common::teacher()).unwrap();
    let open = || TextTeacher::open(&tiny_mpnet(), tok(), Device::Cpu, Some(&cache)).unwrap();
    let refs: Vec<Text> = texts.iter().map(|t| Text::Single(t)).collect();
    let batch = |r: &[Text]| tok().batch(r).unwrap().0;
    let (first, second, later, all) = (
        batch(&refs[..12]),
        batch(&refs[8..24]),
        batch(&refs[24..]),
        batch(&refs),
    );

    let a = open();
    let b = open();
    let ea = a.pooled(&first.input_ids, &first.attention_mask).unwrap();
    let eb = b.pooled(&second.input_ids, &second.attention_mask).unwrap();
    a.save_cache().unwrap();
    b.save_cache().unwrap();
    // The first run goes on and writes again, last: the second run's rows stay.
    let _ = a.pooled(&later.input_ids, &later.attention_mask).unwrap();
    a.save_cache().unwrap();

    let c = open();
    let ec = c.pooled(&all.input_ids, &all.attention_mask).unwrap();
    let st = c.stats();
    assert_eq!(
        (st.misses, st.hits),
        (0, 26),
        "a third run computed embeddings"
    );
    assert!(common::max_abs(&ec.narrow(0, 0, 12), &ea) < 1e-5);
    assert!(common::max_abs(&ec.narrow(0, 8, 16), &eb) < 1e-5);
}

fn write_recipe(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let (train, val) = common::corpus(dir);
    let yaml = format!(
        "seed: 1\noutput: {out}\ndevice: cpu\n\
         teacher: {{checkpoint: {t}, pooled_cache: {pc}}}\n\
         student: {{layers: 2, hidden_size: 16, attention_heads: 2, intermediate_size: 32, init: random}}\n\
         data: {{train: [{train}], validation: [{val}], max_seq_len: 32, cache_dir: {cache}, tokenizer: {tok}, examples: sentences}}\n\
         losses: {{pooled_cos: {{weight: 1.0, view: clean}}, similarity: {{weight: 1.0, view: clean}}}}\n\
         optimizer: {{learning_rate: 0.002, warmup_steps: 2}}\n\
         training: {{steps: 24, batch_size: 16, eval_every: 12, eval_batches: 2, log_every: 1, checkpoint_every: 12}}\n{extra}",
        out = dir.join(name).display(),
        t = tiny_mpnet().display(),
        pc = dir.join("pooled").display(),
        train = train.display(),
        val = val.display(),
        cache = dir.join("cache").display(),
        tok = common::teacher().display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

fn distill(recipe: &Path, sets: &[&str]) -> (bool, String) {
    let mut c = common::destila();
    c.args(["--threads", "2", "distill", "--quiet"]).arg(recipe);
    for s in sets {
        c.args(["--set", s]);
    }
    let r = c.output().unwrap();
    (
        r.status.success(),
        String::from_utf8_lossy(&r.stderr).into(),
    )
}

fn column(metrics: &Path, split: &str, name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(metrics).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = header.iter().position(|h| *h == name).unwrap();
    lines
        .filter(|l| l.starts_with(split))
        .map(|l| l.split(',').nth(i).unwrap().to_string())
        .collect()
}

/// Sentence embeddings the teachers computed (not read from their caches), all together.
fn computed(stderr: &str) -> u64 {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("teacher ") && l.contains(" (reads text): "))
        .collect();
    assert!(!lines.is_empty(), "no teacher line in:\n{stderr}");
    lines
        .iter()
        .map(|l| {
            let rest = l.split(" (reads text): ").nth(1).unwrap();
            rest.split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

/// End to end on tiny models: a BERT student (MiniLM's 30,522-piece vocabulary, 16 wide)
/// learns from an MPNet (its own 500 pieces, 32 wide) through a learned 16 -> 32 map; the
/// teacher's embeddings are kept by content, and a second run reads them all back (the
/// teacher runs for no sentence) and trains to the same numbers; `reduce: pca` runs too.
#[test]
fn distillation_across_families_vocabularies_and_widths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let recipe = write_recipe(d, "run1", "");
    let (ok, err) = distill(&recipe, &[]);
    assert!(ok, "{err}");
    let n = computed(&err);
    assert!(n > 100, "{err}");
    let val: Vec<f64> = column(&d.join("run1/metrics.csv"), "validation", "loss")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        val.last().unwrap() < &(0.8 * val[0]),
        "validation loss {val:?}"
    );
    assert!(d.join("run1/final/projection.safetensors").is_file());
    let caches: Vec<_> = std::fs::read_dir(d.join("pooled")).unwrap().collect();
    assert_eq!(caches.len(), 1);
    let file = caches[0]
        .as_ref()
        .unwrap()
        .path()
        .join("pooled.safetensors");
    let stored: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&file)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored["pooled"].size(), [n as i64, 32]);

    // `destila eval` against the MPNet: the structure of the student's embeddings against
    // transformers' embeddings of the teacher, each model through its own tokenizer.
    let sents = texts(40);
    let file = d.join("sentences.txt");
    std::fs::write(&file, sents.join("\n")).unwrap();
    let (want_t, _) = reference(&sents, 2, d);
    let student = common::embed_jsonl(&d.join("run1/final"), &file);
    let student = Tensor::from_slice2(&student).to_kind(Kind::Float);
    let upper =
        |e: &Tensor| destila::eval::stats::upper_triangle(&destila::embed::cosine_matrix(e, e));
    let want = destila::eval::stats::spearman(&upper(&want_t), &upper(&student));
    let r = common::destila()
        .args(["eval", "--device", "cpu", "--no-init", "--teacher"])
        .arg(tiny_mpnet())
        .arg("--student")
        .arg(d.join("run1/final"))
        .arg("--sentences")
        .arg(&file)
        .arg("--out")
        .arg(d.join("eval"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("eval/eval.json")).unwrap()).unwrap();
    let got = report["similarity"]["mean"]["spearman"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 1e-6,
        "structure {got}, reference {want}"
    );
    assert!(report["heads_note"].as_str().unwrap().contains("MPNet"));

    // The same recipe elsewhere: every embedding comes from the cache, and training
    // follows the first run exactly.
    let recipe2 = write_recipe(d, "run2", "");
    let (ok, err2) = distill(&recipe2, &[]);
    assert!(ok, "{err2}");
    assert_eq!(computed(&err2), 0, "{err2}");
    for split in ["train", "validation"] {
        assert_eq!(
            column(&d.join("run1/metrics.csv"), split, "loss"),
            column(&d.join("run2/metrics.csv"), split, "loss"),
            "{split} losses differ between the live and the cached teacher"
        );
    }

    // PCA instead of the learned map: no projection, targets 16 wide.
    let recipe3 = write_recipe(d, "run3", "");
    let (ok, err3) = distill(&recipe3, &["teacher.reduce=pca"]);
    assert!(ok, "{err3}");
    assert!(err3.contains("teacher.reduce: pca"), "{err3}");
    assert!(!d.join("run3/final/projection.safetensors").exists());
}

fn tiny_mpnet_b() -> PathBuf {
    common::fixtures().join("tiny-mpnet-b")
}

fn first_validation(metrics: &Path, name: &str) -> f64 {
    column(metrics, "validation", name)[0].parse().unwrap()
}

/// Several teachers at once (teacher.also): each sentence loss is the weighted mean of the
/// loss against each teacher. Before any step (the validation at step 0: the same student
/// on the same batches), a run with tiny-mpnet at weight 3 and tiny-mpnet-b (24 wide) at
/// weight 1 reports 3/4 of the loss against the first alone plus 1/4 of the loss against
/// the second alone, loss by loss (hand weights; PCA maps, fitted on the same sentences in
/// every run). With `reduce: learned` each teacher gets its own map to its own width.
#[test]
fn several_teachers_weigh_each_ones_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = tiny_mpnet_b();
    let also = format!("teacher.also=[{{checkpoint: {}, weight: 1}}]", b.display());
    let set_b = format!("teacher.checkpoint={}", b.display());
    let runs: [(&str, Vec<&str>); 3] = [
        ("a", vec![]),
        ("b", vec![set_b.as_str()]),
        ("ab", vec!["teacher.weight=3", also.as_str()]),
    ];
    for (name, sets) in &runs {
        let recipe = write_recipe(d, name, "");
        let mut sets = sets.clone();
        sets.extend([
            "teacher.reduce=pca",
            "training.steps=1",
            "optimizer.warmup_steps=0",
        ]);
        let (ok, err) = distill(&recipe, &sets);
        assert!(ok, "{name}: {err}");
    }
    let m = |name: &str| d.join(name).join("metrics.csv");
    for loss in ["pooled_cos", "similarity", "loss"] {
        let (a, b, ab) = (
            first_validation(&m("a"), loss),
            first_validation(&m("b"), loss),
            first_validation(&m("ab"), loss),
        );
        let want = 0.75 * a + 0.25 * b;
        assert!(
            (ab - want).abs() < 1e-5 * want.abs().max(1e-3),
            "{loss}: two teachers {ab}, 3/4 x {a} + 1/4 x {b} = {want}"
        );
        assert!(
            (a - b).abs() > 1e-3,
            "{loss}: the teachers agree ({a}, {b})"
        );
    }

    // Learned maps: one per teacher, each to its teacher's width, trained with the student.
    let recipe = write_recipe(d, "learned", "");
    let (ok, err) = distill(
        &recipe,
        &["teacher.weight=3", also.as_str(), "training.steps=12"],
    );
    assert!(ok, "{err}");
    let ckpt = d.join("learned/checkpoints/step-000012/trainer.safetensors");
    let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&ckpt)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(saved["extra.projection.weight"].size(), [32, 16]);
    assert_eq!(saved["extra.projection_1.weight"].size(), [24, 16]);
    let val: Vec<f64> = column(&m("learned"), "validation", "loss")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(val.last().unwrap() < &val[0], "validation loss {val:?}");
}

/// `teacher.combine: targets`: one target made of every teacher. Before any step (the same
/// student on the same batches):
/// - a teacher beside an exact copy of itself (another folder), at weights 3 and 1, is that
///   teacher alone, for the similarity loss (the weights are shares);
/// - tiny-mpnet and tiny-mpnet-b at 3 and 1: the similarity loss (mse form) against the
///   weighted mean of their cosine matrices is below the weighted mean of the losses
///   against each (`combine: losses`), by the teachers' own disagreement (Jensen: equal
///   only when they agree);
/// - `pooled_cos` against their embeddings side by side trains one map, 16 -> 32 + 24, and
///   no map per teacher, and the validation loss falls.
#[test]
fn several_teachers_combined_into_one_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let copy = d.join("tiny-mpnet-copy");
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(tiny_mpnet()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let also = |dir: &Path| {
        format!(
            "teacher.also=[{{checkpoint: {}, weight: 1}}]",
            dir.display()
        )
    };
    let (also_copy, also_b) = (also(&copy), also(&tiny_mpnet_b()));
    let sim_only = [
        "losses.pooled_cos.weight=0",
        "training.steps=1",
        "optimizer.warmup_steps=0",
    ];
    let runs: [(&str, Vec<&str>); 4] = [
        ("a", vec![]),
        (
            "aa",
            vec!["teacher.weight=3", &also_copy, "teacher.combine=targets"],
        ),
        (
            "ab-losses",
            vec!["teacher.weight=3", &also_b, "teacher.combine=losses"],
        ),
        (
            "ab-targets",
            vec!["teacher.weight=3", &also_b, "teacher.combine=targets"],
        ),
    ];
    for (name, sets) in &runs {
        let recipe = write_recipe(d, name, "");
        let mut sets = sets.clone();
        sets.extend(sim_only);
        let (ok, err) = distill(&recipe, &sets);
        assert!(ok, "{name}: {err}");
    }
    let sim = |name: &str| first_validation(&d.join(name).join("metrics.csv"), "similarity");
    let (a, aa) = (sim("a"), sim("aa"));
    assert!(
        (a - aa).abs() < 1e-6 * a,
        "a teacher and its copy {aa}, alone {a}"
    );
    let (losses, targets) = (sim("ab-losses"), sim("ab-targets"));
    // (0.0869 against 0.0920 on the fixtures: the gap is the teachers' disagreement, far
    // above float noise.)
    assert!(
        losses - targets > 1e-3,
        "against the mean matrix {targets}, the mean of the losses {losses}"
    );

    // Pointwise: one map to the teachers side by side.
    let recipe = write_recipe(d, "side", "");
    let (ok, err) = distill(
        &recipe,
        &[
            "teacher.weight=3",
            &also_b,
            "teacher.combine=targets",
            "training.steps=12",
        ],
    );
    assert!(ok, "{err}");
    let ckpt = d.join("side/checkpoints/step-000012/trainer.safetensors");
    let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&ckpt)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(saved["extra.projection.weight"].size(), [56, 16]);
    assert!(!saved.contains_key("extra.projection_1.weight"));
    let val: Vec<f64> = column(&d.join("side/metrics.csv"), "validation", "pooled_cos")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        val.last().unwrap() < &val[0],
        "validation pooled_cos {val:?}"
    );
}

/// Bad teacher lists are refused by field before any work.
#[test]
fn a_bad_teacher_list_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let recipe = write_recipe(d, "run", "");
    let b = tiny_mpnet_b();
    let also = |w: &str| {
        format!(
            "teacher.also=[{{checkpoint: {}, weight: {w}}}]",
            b.display()
        )
    };
    let missing = format!(
        "teacher.also=[{{checkpoint: {}}}]",
        d.join("nope").display()
    );
    let no_tok = d.join("no-tokenizer");
    std::fs::create_dir_all(&no_tok).unwrap();
    std::fs::copy(b.join("config.json"), no_tok.join("config.json")).unwrap();
    let no_tok = format!("teacher.also=[{{checkpoint: {}}}]", no_tok.display());
    let roberta = d.join("roberta");
    std::fs::create_dir_all(&roberta).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    cfg["model_type"] = "roberta".into();
    std::fs::write(roberta.join("config.json"), cfg.to_string()).unwrap();
    let roberta = format!("teacher.also=[{{checkpoint: {}}}]", roberta.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![also("0")], "teacher.also[0].weight"),
        (vec![also("-1")], "teacher.also[0].weight"),
        (vec![also(".nan")], "teacher.also[0].weight"),
        (vec![also("1"), "teacher.weight=0".into()], "teacher.weight"),
        (vec!["teacher.weight=2".into()], "teacher.weight"),
        (vec![missing], "teacher.also[0].checkpoint"),
        (vec![no_tok], "tokenizer.json"),
        (vec![roberta], "roberta"),
        (
            vec![format!(
                "teacher.also=[{{checkpoint: {}}}]",
                tiny_mpnet().display()
            )],
            "same teacher",
        ),
        (
            vec![also("1"), "losses.kd_mlm.weight=1".into()],
            "losses.kd_mlm",
        ),
        (
            vec![also("1"), "student.init=from-teacher".into()],
            "student.init",
        ),
        (vec!["teacher.combine=targets".into()], "teacher.combine"),
        (vec![also("1"), "teacher.combine=sum".into()], "combine"),
        (
            vec![
                also("1"),
                "teacher.combine=targets".into(),
                "teacher.reduce=pca".into(),
            ],
            "teacher.reduce",
        ),
    ];
    for (sets, field) in cases {
        for cmd in [&["recipe", "check"][..], &["distill", "--quiet"][..]] {
            let mut c = common::destila();
            c.args(cmd).arg(&recipe);
            for s in &sets {
                c.args(["--set", s]);
            }
            let r = c.output().unwrap();
            let err = String::from_utf8_lossy(&r.stderr);
            assert!(!r.status.success(), "{sets:?} was accepted");
            assert!(
                err.contains(field) && !err.contains("panicked"),
                "{sets:?}: {err}"
            );
        }
    }
    assert!(!d.join("run").exists());
}

/// What a teacher that reads text cannot do is refused by field before any work.
#[test]
fn a_text_teacher_refuses_what_it_cannot_teach() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "run", "");
    for (set, field) in [
        ("losses.kd_mlm.weight=1", "losses.kd_mlm"),
        ("losses.hidden_mse.weight=1", "losses.hidden_mse"),
        ("losses.similarity.view=masked", "losses.similarity.view"),
        ("student.init=from-teacher", "student.init"),
        ("teacher.heads=fit", "teacher.heads"),
        ("student.prune.heads=1", "student.prune"),
    ] {
        let r = common::destila()
            .args(["recipe", "check"])
            .arg(&recipe)
            .args(["--set", set])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{set} was accepted");
        assert!(
            err.contains(field) && err.contains("MPNet") && !err.contains("panicked"),
            "{set}: {err}"
        );
    }
    assert!(!dir.path().join("run").exists());
}
