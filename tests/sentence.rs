//! sentence-transformers folders: a teacher's modules (pooling, normalisation) go with its
//! students and their exports, so that `SentenceTransformer(DIR).encode(texts)` equals
//! `destila embed DIR` (1e-5) and has the teacher's form; a plain checkpoint's export says
//! it writes no modules.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const TEXTS: &[&str] = &[
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "Ele ocupa um alto posto na empresa",
    "Anne Elliot had been forced into prudence in her youth.",
];

fn texts(dir: &Path) -> PathBuf {
    let p = dir.join("texts.txt");
    std::fs::write(&p, TEXTS.join("\n")).unwrap();
    p
}

/// (module classes, embeddings) from sentence-transformers.
fn st(dir: &Path, texts: &Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let o = Command::new(common::root().join(".venv/bin/python"))
        .arg(common::root().join("scripts/check_st.py"))
        .args([dir, texts])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let modules = v["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let e = common::rows(&v["embeddings"]);
    (modules, e)
}

fn export(from: &Path, to: &Path) -> String {
    let o = common::destila()
        .args([
            "export",
            from.to_str().unwrap(),
            "--out",
            to.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_distilled_students_export_is_a_sentence_transformers_folder_like_its_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let texts = texts(dir.path());
    let (teacher_modules, _) = st(&t, &texts);
    // A short distillation from the sentence-transformers teacher.
    let final_model = common::short_student(dir.path());
    assert!(final_model.join("modules.json").is_file());
    assert!(final_model.join("1_Pooling/config.json").is_file());
    let out = dir.path().join("export");
    let note = export(&final_model, &out);
    assert!(!note.contains("no modules.json"), "{note}");
    let (modules, e) = st(&out, &texts);
    assert_eq!(modules, teacher_modules, "the teacher's pipeline, in form");
    assert_eq!(modules, ["Transformer", "Pooling", "Normalize"]);
    let d = common::max_abs_rows(&e, &common::embed_jsonl(&out, &texts));
    assert!(d <= 1e-5, "SentenceTransformer vs destila embed: {d}");
    // The teacher exported as is encodes as the teacher.
    let te = dir.path().join("teacher-export");
    export(&t, &te);
    let (_, a) = st(&t, &texts);
    let (_, b) = st(&te, &texts);
    assert!(common::max_abs_rows(&a, &b) <= 1e-6);
    assert!(common::max_abs_rows(&b, &common::embed_jsonl(&te, &texts)) <= 1e-5);
}

#[test]
fn a_plain_checkpoint_exports_without_modules_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = destila::bert::BertConfig {
        num_hidden_layers: 1,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..Default::default()
    };
    let ck = common::random_checkpoint(
        &dir.path().join("ck"),
        &cfg,
        destila::bert::Heads::ALL,
        1,
        false,
        true,
    );
    let out = dir.path().join("export");
    let note = export(&ck, &out);
    assert!(
        note.contains("no modules.json") && note.contains("no pooling modules"),
        "{note}"
    );
    assert!(!out.join("modules.json").exists());
}
