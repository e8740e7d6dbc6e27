//! Structured pruning (heads, feed-forward neurons, hidden dimensions) against
//! `transformers` (scripts/check_structure.py) and against measured ablations:
//! - without training, the pruned model equals the original with the same units masked to
//!   zero, in transformers (1e-5); its export loads in transformers and sentence-
//!   transformers and gives destila's embeddings (1e-5); the compact folder is refused;
//! - hidden pruning: the export loads, at the pruned width, and matches destila;
//! - the importance of a head predicts the loss its removal really causes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use destila::embed::{Embedder, Pooling};
use destila::export::{export, ExportOptions, HeadsMode};
use destila::prune::shape::{shrink, Keep};
use destila::prune::structure::{prune_structure, StructureOptions};
use tch::{Device, Kind, Tensor};

/// `n` Persuasion sentences, one per paragraph (so the corpus reader keeps them whole).
fn sentences(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let text =
        std::fs::read_to_string(common::root().join("data/austen/validation/persuasion.txt"))
            .unwrap();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let s: Vec<String> = flat
        .split_inclusive(['.', '?', '!'])
        .map(|s| s.trim().to_string())
        .filter(|s| s.split_whitespace().count() >= 6 && !s.contains("Mr.") && !s.contains("Mrs."))
        .take(n)
        .collect();
    assert_eq!(s.len(), n);
    let path = dir.join("sentences.txt");
    std::fs::write(&path, s.join("\n\n")).unwrap();
    (path, s)
}

fn options(corpus: &Path) -> StructureOptions {
    StructureOptions {
        corpus: vec![corpus.display().to_string()],
        sentences: 32,
        ..Default::default()
    }
}

fn export_plain(from: &Path, to: &Path) {
    let o = ExportOptions {
        dtype: Kind::Float,
        heads: HeadsMode::Keep,
        int8: false,
        force: false,
        eval: None,
    };
    let s = export(from, to, &o).unwrap();
    assert!(s.padded);
}

fn check(original: &Path, compact: &Path, exported: &Path, texts: &Path) -> serde_json::Value {
    let o = Command::new(common::python())
        .arg(common::root().join("scripts/check_structure.py"))
        .args([original, compact, exported, texts])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// destila's sentence embeddings of `dir` (its sentence-transformers modules: mean pooling,
/// normalised) against sentence-transformers' of the export.
fn destila_matches(dir: &Path, texts: &[String], st: &serde_json::Value) -> f64 {
    let e = Embedder::open(dir, Device::Cpu).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ours = e.encode(&refs, Some(Pooling::Mean), 8).unwrap();
    let ours: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(ours.to_kind(Kind::Double)).unwrap();
    let theirs = common::rows(st);
    common::max_abs_rows(&ours, &theirs)
}

#[test]
fn pruned_heads_and_neurons_equal_the_masked_original_in_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let (corpus, texts) = sentences(dir.path(), 32);
    let compact = dir.path().join("compact");
    let o = StructureOptions {
        heads: Some(6),
        ffn: Some(768),
        ..options(&corpus)
    };
    let s = prune_structure(&t, &compact, &o).unwrap();
    // Half the heads and neurons, across layers: every layer keeps at least one of each.
    assert_eq!(s.heads_after.iter().sum::<i64>(), 36, "{s}");
    assert_eq!(s.ffn_after.iter().sum::<i64>(), 6 * 768, "{s}");
    assert!(s.heads_after.iter().all(|&h| (1..=12).contains(&h)), "{s}");
    assert_eq!(s.hidden_after, 384);
    assert!(s.loss_after > 0.0 && s.loss_before == 0.0, "{s}");
    let ratio = s.flops_before / s.flops_after;
    assert!((1.8..2.2).contains(&ratio), "{s}");
    let exported = dir.path().join("export");
    export_plain(&compact, &exported);
    let v = check(&t, &compact, &exported, &corpus);
    assert_eq!(v["masked_heads"], 36, "{v}");
    assert_eq!(v["masked_ffn"], 6 * (1536 - 768), "{v}");
    let d = v["masked_vs_export_max_abs"].as_f64().unwrap();
    assert!(d < 1e-5, "masked original vs pruned export: {d}");
    for k in [
        "compact_automodel_refused",
        "compact_sentence_transformers_refused",
    ] {
        let why = v[k].as_str().unwrap_or_else(|| panic!("{k}: loaded: {v}"));
        assert!(why.contains("destila-pruned-bert"), "{k}: {why}");
    }
    let st = &v["st_embeddings"];
    for folder in [&compact, &exported] {
        let d = destila_matches(folder, &texts, st);
        assert!(
            d < 1e-5,
            "{}: destila vs sentence-transformers {d}",
            folder.display()
        );
    }
    // The mask is what makes them equal: the unmasked original is far from the export.
    let orig = destila_matches(&t, &texts, st);
    assert!(
        orig > 1e-2,
        "the unpruned teacher is as close as the pruned one: {orig}"
    );
}

#[test]
fn hidden_pruning_exports_at_the_pruned_width_and_matches_destila() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let (corpus, texts) = sentences(dir.path(), 32);
    let compact = dir.path().join("compact");
    let o = StructureOptions {
        hidden: Some(256),
        heads: Some(6),
        ffn: Some(1024),
        even: true,
        rounds: 2,
        ..options(&corpus)
    };
    let s = prune_structure(&t, &compact, &o).unwrap();
    assert_eq!(s.hidden_after, 256, "{s}");
    assert_eq!(s.heads_after, vec![6; 6], "{s}");
    assert_eq!(s.ffn_after, vec![1024; 6], "{s}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(compact.join("prune.json")).unwrap())
            .unwrap();
    assert_eq!(report["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(report["kept"]["hidden"].as_array().unwrap().len(), 256);
    let exported = dir.path().join("export");
    export_plain(&compact, &exported);
    let v = check(&t, &compact, &exported, &corpus);
    // transformers sizes heads as hidden / heads: 256 wide, 8 heads of 32.
    assert_eq!(v["export_hidden"], 256, "{v}");
    assert_eq!(v["export_heads"], 8, "{v}");
    assert!(v["compact_automodel_refused"].is_string(), "{v}");
    let d = destila_matches(&compact, &texts, &v["st_embeddings"]);
    assert!(d < 1e-5, "destila vs sentence-transformers {d}");
    // The pooling module follows the width.
    let pooling: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(compact.join("1_Pooling/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pooling["word_embedding_dimension"], 256);
}

/// The similarity loss of the module's comment, written out again: ½ mean (S − T)².
fn loss(e: &Embedder, texts: &[&str], target: &Tensor) -> f64 {
    let f = e.embed(texts, Pooling::Mean, texts.len()).unwrap();
    let f = &f / f.norm_scalaropt_dim(2.0, [1], true);
    let s = f.matmul(&f.transpose(0, 1));
    0.5 * f64::try_from((s - target).square().mean(Kind::Double)).unwrap()
}

#[test]
fn head_importance_predicts_the_loss_of_removing_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::teacher();
    let (corpus, texts) = sentences(dir.path(), 32);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let compact = dir.path().join("compact");
    // One batch of all 32 sentences, the model as its own reference.
    let o = StructureOptions {
        heads: Some(11),
        probes: 16,
        ..options(&corpus)
    };
    prune_structure(&t, &compact, &o).unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(compact.join("prune.json")).unwrap())
            .unwrap();
    let imp = &report["rounds"][0]["importance"]["heads"];
    let full = Embedder::open(&t, Device::Cpu).unwrap();
    let f = full.embed(&refs, Pooling::Mean, refs.len()).unwrap();
    let f = &f / f.norm_scalaropt_dim(2.0, [1], true);
    let target = f.matmul(&f.transpose(0, 1));
    assert!(loss(&full, &refs, &target) < 1e-12);
    let cfg = full.model.config().clone();
    let (mut predicted, mut actual) = (Vec::new(), Vec::new());
    for l in [0usize, 3, 5] {
        for h in 0..12i64 {
            let mut keep = Keep::all(&cfg);
            keep.heads[l].retain(|&x| x != h);
            let model = shrink(&full.model, &keep).unwrap();
            let e = Embedder {
                model,
                tokenizer: destila::tokenize::BertTokenizer::from_dir(&t).unwrap(),
                modules: None,
                dir: t.clone(),
            };
            actual.push(loss(&e, &refs, &target));
            predicted.push(imp[l][h as usize].as_f64().unwrap());
        }
    }
    let rho = destila::eval::stats::spearman(&predicted, &actual);
    assert!(
        rho > 0.8,
        "Spearman {rho}: predicted {predicted:?}, actual {actual:?}"
    );
    // The scale too: over the heads, the median of predicted / actual is within a factor of
    // 4 (the quadratic model overshoots where the loss bends, never by orders of magnitude).
    let mut ratios: Vec<f64> = predicted.iter().zip(&actual).map(|(p, a)| p / a).collect();
    ratios.sort_by(f64::total_cmp);
    let r = ratios[ratios.len() / 2];
    eprintln!(
        "head importance: Spearman {rho:.3} against the ablations, median predicted/actual {r:.2}"
    );
    assert!(
        (0.25..4.0).contains(&r),
        "median predicted/actual {r}: {ratios:?}"
    );
}

/// `student.prune` in a recipe: the student from the teacher's layers is pruned against the
/// teacher before step 0 (its `init/` is the pruned model, with `prune.json`), then
/// distilled at the pruned shape, and the embedding losses recover.
#[test]
fn a_recipe_prunes_its_student_and_distillation_recovers_it() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        "student: {layers: 3, init: from-teacher, prune: {heads: 4, ffn: 512, sentences: 32}}\n\
        losses: {pooled_cos: {weight: 1.0, view: clean}, similarity: {weight: 1.0, view: clean}}\n\
        optimizer: {learning_rate: 0.0003, warmup_steps: 2}\n\
        training: {steps: 40, batch_size: 16, eval_every: 40, eval_batches: 4, checkpoint_every: 20}\n";
    let r = common::recipe(dir.path(), &common::teacher(), body);
    let s = common::run_quiet(&r);
    let run = dir.path().join("run");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("init/prune.json")).unwrap())
            .unwrap();
    let heads: i64 = report["summary"]["heads_after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_i64().unwrap())
        .sum();
    assert_eq!(heads, 12, "{report}");
    for folder in [run.join("init"), s.final_model.clone()] {
        let c = destila::bert::BertConfig::from_file(folder.join("config.json")).unwrap();
        assert_eq!(c.num_hidden_layers, 3);
        assert_eq!(
            (0..3).map(|l| c.heads_of(l)).sum::<i64>(),
            12,
            "{}",
            folder.display()
        );
        assert_eq!((0..3).map(|l| c.intermediate_of(l)).sum::<i64>(), 3 * 512);
    }
    let rows = destila::distill::metrics::read(&run.join("metrics.csv")).unwrap();
    let val: Vec<f64> = rows
        .iter()
        .filter(|r| r["split"] == "validation")
        .map(|r| r["loss"].parse().unwrap())
        .collect();
    assert!(val.len() >= 2, "{val:?}");
    let (first, last) = (val[0], *val.last().unwrap());
    assert!(
        last < 0.8 * first,
        "validation loss {first} -> {last}: no recovery"
    );
    // Resumed further, the run takes the units init/prune.json kept (its checkpoints have
    // that shape) and goes on.
    let mut longer = r.clone();
    longer.training.steps = 50;
    let resumed = destila::distill::trainer::run(
        &longer,
        &destila::distill::trainer::RunOptions {
            resume: true,
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    let c = destila::bert::BertConfig::from_file(resumed.final_model.join("config.json")).unwrap();
    assert_eq!((0..3).map(|l| c.heads_of(l)).sum::<i64>(), 12);
}
