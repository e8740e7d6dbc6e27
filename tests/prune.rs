//! Vocabulary pruning against `transformers` (scripts/check_prune.py): a text whose word
//! pieces were all kept is tokenized and embedded exactly as by the unpruned model
//! (1e-5); the folder loads in transformers and tokenizers as is; bad input is named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use destila::prune::{prune, PruneOptions};

fn python() -> PathBuf {
    common::root().join(".venv/bin/python")
}

/// Some Persuasion paragraphs to prune with; the lines of the same text to check with.
fn texts(dir: &Path) -> (PathBuf, PathBuf) {
    let (train, _) = common::corpus(dir);
    let text = std::fs::read_to_string(&train).unwrap();
    let lines: Vec<&str> = text
        .split("\n\n")
        .take(40)
        .map(|p| p.split_whitespace().take(60).collect::<Vec<_>>().join(" "))
        .map(|p| Box::leak(p.into_boxed_str()) as &str)
        .collect();
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, lines.join("\n\n")).unwrap();
    let check = dir.join("check.txt");
    std::fs::write(&check, lines.join("\n")).unwrap();
    (corpus, check)
}

fn opts(corpus: &Path) -> PruneOptions {
    PruneOptions {
        corpus: vec![corpus.display().to_string()],
        min_count: 1,
        held_out: vec![common::root()
            .join("data/austen/validation")
            .display()
            .to_string()],
        force: false,
    }
}

#[test]
fn pruned_embeddings_equal_the_originals_in_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let (corpus, check) = texts(dir.path());
    let out = dir.path().join("pruned");
    let s = prune(&t, &out, &opts(&corpus)).unwrap();
    assert_eq!(s.vocab_before, 30522);
    assert!(s.vocab_after < 10_000 && s.vocab_after > 1_000, "{s}");
    assert!(s.parameters_after < s.parameters_before);
    // Every single character is kept: a pruned word splits into smaller pieces rather
    // than [UNK]; held-out text takes more pieces.
    let (before, after) = (
        s.held_out_unk_before.unwrap(),
        s.held_out_unk_after.unwrap(),
    );
    assert!(after >= before && after < 0.01, "{s}");
    let (pb, pa) = (
        s.held_out_pieces_before.unwrap(),
        s.held_out_pieces_after.unwrap(),
    );
    assert!(pa > pb, "{s}");
    assert!(s.kept_from_corpus > 500, "{s}");
    let o = Command::new(python())
        .arg(common::root().join("scripts/check_prune.py"))
        .args([&t, &out, &check])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["same_tokens"], true, "{v}");
    assert_eq!(v["slow_tokenizer_agrees"], true, "{v}");
    assert_eq!(
        v["vocab_pruned"].as_u64().unwrap() as usize,
        s.vocab_after,
        "{v}"
    );
    assert_eq!(
        v["config_vocab_size"].as_u64().unwrap() as usize,
        s.vocab_after
    );
    let d = v["max_abs"].as_f64().unwrap();
    assert!(d <= 1e-5, "pruned embeddings differ by {d}");
    // destila embeds the pruned folder as it embedded the original.
    let (a, b) = (
        common::embed_jsonl(&t, &check),
        common::embed_jsonl(&out, &check),
    );
    assert!(common::max_abs_rows(&a, &b) <= 1e-5);
    // As an export option: pruned, then exported (here in f16); transformers loads it.
    let exported = dir.path().join("exported");
    let o = common::destila()
        .args([
            "export",
            t.to_str().unwrap(),
            "--out",
            exported.to_str().unwrap(),
        ])
        .args(["--prune-corpus", corpus.to_str().unwrap(), "--dtype", "f16"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::metadata(exported.join("model.safetensors"))
        .unwrap()
        .len();
    let full = std::fs::metadata(t.join("model.safetensors"))
        .unwrap()
        .len();
    assert!((bytes as f64) < 0.3 * full as f64, "{bytes} of {full}");
    let o = Command::new(python())
        .arg(common::root().join("scripts/check_prune.py"))
        .args([&t, &exported, &check])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["same_tokens"], true, "{v}");
    // f16 weights: the embeddings agree to f16's precision.
    assert!(v["max_abs"].as_f64().unwrap() < 5e-3, "{v}");
}

#[test]
fn bad_pruning_input_is_named_and_inputs_survive() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let (corpus, _) = texts(dir.path());
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let out = dir.path().join("p");
    let e = prune(&t, &out, &opts(&empty)).unwrap_err().to_string();
    assert!(e.contains("--corpus") && e.contains("no text"), "{e}");
    let e = prune(
        &t,
        &out,
        &PruneOptions {
            min_count: 0,
            ..opts(&corpus)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--min-count"), "{e}");
    // A checkpoint without a tokenizer.
    let bare = dir.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(t.join(f), bare.join(f)).unwrap();
    }
    let e = prune(&bare, &out, &opts(&corpus)).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json or vocab.txt"), "{e}");
    // An output folder that holds the input: refused, the input intact.
    let e = prune(&bare, dir.path(), &opts(&corpus))
        .unwrap_err()
        .to_string();
    assert!(e.contains("input"), "{e}");
    assert!(bare.join("model.safetensors").is_file());
    // The CLI refuses --min-count 0 by flag; a corpus keeping almost nothing is reported.
    let o = common::destila()
        .args([
            "prune",
            t.to_str().unwrap(),
            "--corpus",
            corpus.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap(), "--min-count", "0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--min-count"));
    let tiny = dir.path().join("tiny.txt");
    std::fs::write(&tiny, "the").unwrap();
    let o = common::destila()
        .args([
            "prune",
            t.to_str().unwrap(),
            "--corpus",
            tiny.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{se}");
    assert!(
        so.contains("% kept") && se.contains("keeps almost nothing"),
        "{so}{se}"
    );
}
