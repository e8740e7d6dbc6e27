//! The evaluator and the teacher-versus-student benchmark on small random models with the
//! real vocabulary: a model against itself scores perfectly, a different one does not; bad
//! input is refused clearly.

mod common;

use std::path::{Path, PathBuf};

use destila::bert::{BertConfig, Heads};
use destila::eval::compare::{evaluate, EvalOptions};

fn model(dir: &Path, name: &str, layers: i64, seed: i64, vocab: i64) -> PathBuf {
    let cfg = BertConfig {
        vocab_size: vocab,
        num_hidden_layers: layers,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 128,
        ..Default::default()
    };
    let d = common::random_checkpoint(&dir.join(name), &cfg, Heads::ALL, seed, true, false);
    if vocab == 30522 {
        destila::distill::checkpoint::copy_tokenizer(&common::teacher(), &d).unwrap();
    } else {
        // A tokenizer as large as the model's vocabulary: the teacher's, cut.
        let v: Vec<String> = std::fs::read_to_string(common::teacher().join("vocab.txt"))
            .unwrap()
            .lines()
            .take(vocab as usize)
            .map(String::from)
            .collect();
        std::fs::write(d.join("vocab.txt"), v.join("\n") + "\n").unwrap();
    }
    d
}

fn opts(dir: &Path) -> EvalOptions {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    EvalOptions {
        corpus: vec![root.join("data/austen/validation").display().to_string()],
        max_sentences: 60,
        head_batches: 2,
        batch_size: 8,
        max_len: 64,
        cache_dir: dir.join("cache"),
        ..Default::default()
    }
}

#[test]
fn a_model_against_itself_is_perfect_and_another_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), "a", 2, 1, 30522);
    let b = model(dir.path(), "b", 1, 2, 30522);
    let same = evaluate(&a, &a, &opts(dir.path())).unwrap();
    for (pooling, s) in &same.similarity {
        for (name, v) in [
            ("spearman", s.spearman),
            ("pearson", s.pearson),
            ("cka", s.cka),
            ("knn1", s.knn1),
            ("knn10", s.knn10),
        ] {
            assert!((v - 1.0).abs() < 1e-6, "{pooling} {name} = {v}");
        }
    }
    assert!(same
        .token_cosine
        .iter()
        .all(|c| (c.cosine - 1.0).abs() < 1e-5));
    let h = same.heads.as_ref().unwrap();
    assert_eq!((h.mlm_top1_agreement, h.nsp_agreement), (1.0, 1.0));
    assert!(h.mlm_kl.abs() < 1e-6 && h.masked_positions > 50);
    assert_eq!(same.sentences, 60);

    let diff = evaluate(&a, &b, &opts(dir.path())).unwrap();
    let m = &diff.similarity["mean"];
    assert!(m.spearman < 0.99 && m.cka < 0.99, "{m:?}");
    assert_eq!(diff.token_cosine.len(), 1);
    assert!(diff.heads.as_ref().unwrap().mlm_kl > 0.0);
    // Outputs: JSON with stable keys, a flat CSV, the scatter plot.
    let out = dir.path().join("report");
    diff.write(&out).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    for k in ["similarity", "token_cosine", "heads", "posto", "sentences"] {
        assert!(v.get(k).is_some(), "eval.json lacks {k}");
    }
    let csv = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    assert!(csv.starts_with("metric,value\n") && csv.contains("similarity.mean.spearman,"));
    assert!(std::fs::read_to_string(out.join("similarity.svg"))
        .unwrap()
        .contains("<circle"));
}

#[test]
fn human_judgements_and_sentence_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), "a", 2, 1, 30522);
    let pairs = dir.path().join("pairs.csv");
    std::fs::write(
        &pairs,
        "text_a,text_b,score\nA man eats food.,A man eats bread.,4.5\nA man eats food.,The sky is blue.,0.5\n\
         The cat sleeps.,A cat is sleeping.,4.8\nIt rains.,The stock market fell.,0.2\n",
    )
    .unwrap();
    let sentences = dir.path().join("s.txt");
    std::fs::write(
        &sentences,
        "one sentence\n\nanother sentence\na third one\n",
    )
    .unwrap();
    let o = EvalOptions {
        pairs: Some(pairs),
        sentences: Some(sentences),
        ..opts(dir.path())
    };
    let r = evaluate(&a, &a, &o).unwrap();
    let j = r.judgements.unwrap();
    assert_eq!(j.pairs, 4);
    assert_eq!(j.teacher_spearman, j.student_spearman);
    assert_eq!(r.sentences, 3);
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), "a", 2, 1, 30522);
    let small = model(dir.path(), "small", 1, 2, 1000);
    let e = evaluate(&a, &small, &opts(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("vocabulary") && e.contains("1000") && e.contains("30522"),
        "{e}"
    );
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let e = evaluate(
        &a,
        &a,
        &EvalOptions {
            sentences: Some(empty),
            ..opts(dir.path())
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("empty.txt") && e.contains("0 distinct sentence"),
        "{e}"
    );
    let p = dir.path().join("p.csv");
    std::fs::write(&p, "text_a,score\nx,1\ny,2\nz,3\n").unwrap();
    let e = evaluate(
        &a,
        &a,
        &EvalOptions {
            pairs: Some(p.clone()),
            ..opts(dir.path())
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("p.csv") && e.contains("text_b"), "{e}");
    std::fs::write(&p, "text_a,text_b,score\nx,y,1\nx,z,high\nz,y,3\n").unwrap();
    let e = evaluate(
        &a,
        &a,
        &EvalOptions {
            pairs: Some(p),
            ..opts(dir.path())
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("line 3") && e.contains("\"high\""), "{e}");
}

#[test]
fn bench_compares_teacher_and_student() {
    let dir = tempfile::tempdir().unwrap();
    let t = model(dir.path(), "t", 4, 1, 30522);
    let s = model(dir.path(), "s", 2, 2, 30522);
    let out = dir.path().join("bench");
    let r = common::destila()
        .args([
            "bench",
            "--teacher",
            t.to_str().unwrap(),
            "--student",
            s.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--iters",
            "3",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bench.json")).unwrap()).unwrap();
    assert_eq!(v["cells"].as_array().unwrap().len(), 6);
    // FLOP ratio by hand: the encoders differ only in depth, 4 layers against 2.
    assert!((v["flop_ratio"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    assert!(v["teacher"]["peak_rss_bytes"].as_u64().unwrap() > 0);
    for f in ["bench.csv", "bench.md", "bench.svg"] {
        assert!(out.join(f).is_file());
    }
    let r = common::destila()
        .args(["bench", "--teacher", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!r.status.success() && String::from_utf8_lossy(&r.stderr).contains("--student"));
}

/// Held-out MLM perplexity against hand-computed values: a model whose MLM logits are all
/// equal (its prediction transform's LayerNorm zeroed, so every logit is the zero bias)
/// predicts the uniform distribution, perplexity exactly the vocabulary size; a model
/// against itself has equal perplexities; the baseline says who beats whom in one line each.
#[test]
fn mlm_perplexity_of_a_uniform_predictor_is_the_vocabulary_size() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), "a", 2, 1, 30522);
    let uniform = dir.path().join("uniform");
    let m = destila::bert::load(&a, &Default::default()).unwrap();
    tch::no_grad(|| {
        let vars = m.vs.variables();
        for name in [
            "cls.predictions.transform.LayerNorm.weight",
            "cls.predictions.transform.LayerNorm.bias",
            "cls.predictions.bias",
        ] {
            let _ = vars[name].shallow_clone().zero_();
        }
    });
    destila::bert::save(&m, &uniform).unwrap();
    destila::distill::checkpoint::copy_tokenizer(&common::teacher(), &uniform).unwrap();
    let r = evaluate(&a, &uniform, &opts(dir.path())).unwrap();
    let h = r.heads.as_ref().unwrap();
    assert!(
        (h.student_mlm_perplexity - 30522.0).abs() < 0.5,
        "{}",
        h.student_mlm_perplexity
    );
    let same = evaluate(&a, &a, &opts(dir.path())).unwrap();
    let h = same.heads.as_ref().unwrap();
    assert!((h.teacher_mlm_perplexity - h.student_mlm_perplexity).abs() < 1e-6);
    assert!(h.teacher_mlm_perplexity > 1.0 && h.teacher_mlm_perplexity.is_finite());
    // The one-line verdicts of a baseline comparison.
    let init = evaluate(&a, &uniform, &opts(dir.path())).unwrap();
    let flat = |r: &destila::eval::compare::EvalReport| r.flat();
    let b = destila::eval::baseline::compare(&flat(&same), &flat(&init), "uniform");
    let v = b.verdicts();
    assert!(
        v.iter()
            .any(|l| l.starts_with("embedding measures: the student")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|l| l.starts_with("MLM/NSP: the teacher does NOT beat the student")),
        "{v:?}"
    );
}
