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

fn computed(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("teacher (reads text):"))
        .unwrap_or_else(|| panic!("no teacher line in:\n{stderr}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
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
