//! Checkpoint layouts destila must load, save/load round trips, and bad input.

mod common;

use std::path::{Path, PathBuf};

use common::{inputs, max_abs, read};
use destila::bert::{self, ForwardOptions, Heads, LoadOptions, MlmPositions, Model};
use destila::Error;

const TOL: f64 = 1e-4;

fn load(dir: &Path) -> Model {
    bert::load(dir, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn load_err(dir: &Path) -> String {
    match bert::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// MLM + NSP logits of a full pretraining model against the tiny-gelu reference.
fn assert_pretraining_outputs(model: &Model) {
    let r = read("tiny-gelu.safetensors");
    let opts = ForwardOptions {
        mlm: MlmPositions::All,
        nsp: true,
        ..Default::default()
    };
    let out = tch::no_grad(|| model.forward(&inputs(&r), &opts)).unwrap();
    assert!(max_abs(out.mlm_logits.as_ref().unwrap(), &r["prediction_logits"]) < TOL);
    assert!(
        max_abs(
            out.nsp_logits.as_ref().unwrap(),
            &r["seq_relationship_logits"]
        ) < TOL
    );
}

#[test]
fn bert_model_layout_without_prefix_loads_encoder_and_pooler() {
    let model = load(&common::fixtures().join("layout-bertmodel"));
    let report = model.report.as_ref().unwrap();
    assert_eq!(
        report.checkpoint_heads,
        Heads {
            pooler: true,
            mlm: false,
            nsp: false
        }
    );
    let r = read("tiny-gelu.safetensors");
    let out = tch::no_grad(|| model.forward(&inputs(&r), &ForwardOptions::default())).unwrap();
    assert!(max_abs(out.last_hidden_state(), &r["hidden_states"].get(3)) < TOL);
}

#[test]
fn masked_lm_layout_has_mlm_head_only() {
    let model = load(&common::fixtures().join("layout-maskedlm"));
    let report = model.report.as_ref().unwrap();
    assert_eq!(
        report.checkpoint_heads,
        Heads {
            pooler: false,
            mlm: true,
            nsp: false
        }
    );
    let r = read("layout-maskedlm.safetensors");
    let opts = ForwardOptions {
        mlm: MlmPositions::All,
        ..Default::default()
    };
    let out = tch::no_grad(|| model.forward(&inputs(&r), &opts)).unwrap();
    assert!(max_abs(out.mlm_logits.as_ref().unwrap(), &r["logits"]) < TOL);
    // Asking for NSP from a model without that head is an error, not a panic.
    let opts = ForwardOptions {
        nsp: true,
        ..Default::default()
    };
    let err = model.forward(&inputs(&r), &opts).unwrap_err().to_string();
    assert!(err.contains("no NSP head"), "{err}");
}

#[test]
fn legacy_gamma_beta_position_ids_and_explicit_decoder_load() {
    let model = load(&common::fixtures().join("layout-legacy"));
    let notes = &model.report.as_ref().unwrap().notes;
    assert!(
        notes.iter().any(|n| n.contains("position_ids")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("decoder.weight") && n.contains("equal")),
        "{notes:?}"
    );
    assert_pretraining_outputs(&model);
}

#[test]
fn pytorch_model_bin_loads() {
    let model = load(&common::fixtures().join("layout-torchbin"));
    assert!(model.report.as_ref().unwrap().weights[0].ends_with("pytorch_model.bin"));
    assert_pretraining_outputs(&model);
}

#[test]
fn sharded_safetensors_load() {
    let model = load(&common::fixtures().join("layout-sharded"));
    assert_eq!(model.report.as_ref().unwrap().weights.len(), 2);
    assert_pretraining_outputs(&model);
}

#[test]
fn missing_heads_can_be_added_fresh_and_are_reported() {
    let opts = LoadOptions {
        heads: Heads::ALL,
        ..Default::default()
    };
    let model = bert::load(common::fixtures().join("layout-maskedlm"), &opts).unwrap();
    let report = model.report.as_ref().unwrap();
    assert!(report.initialised.nsp && report.initialised.pooler && !report.initialised.mlm);
    assert_eq!(model.bert.heads, Heads::ALL);
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn save_then_load_is_bit_identical() {
    for name in ["tiny-gelu", "layout-bertmodel", "layout-maskedlm"] {
        let model = load(&common::fixtures().join(name));
        let dir = temp();
        bert::save(&model, dir.path()).unwrap();
        let again = load(dir.path());
        let (a, b) = (model.vs.variables(), again.vs.variables());
        assert_eq!(a.len(), b.len(), "{name}");
        for (n, t) in &a {
            assert!(t.equal(&b[n]), "{name}: {n} changed in the round trip");
        }
        assert_eq!(model.bert.heads, again.bert.heads);
        assert_eq!(model.config(), again.config());
        // No temporary files are left behind.
        let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn saved_config_names_the_architecture() {
    let dir = temp();
    bert::save(&load(&common::fixtures().join("tiny-gelu")), dir.path()).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["architectures"][0], "BertForPreTraining");
    assert_eq!(cfg["model_type"], "bert");
}

/// A copy of tiny-gelu's folder, to break.
fn broken_copy() -> tempfile::TempDir {
    let dir = temp();
    let src = common::fixtures().join("tiny-gelu");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

#[test]
fn missing_folder_is_a_clear_error() {
    let e = load_err(Path::new("/nonexistent/checkpoint"));
    assert!(
        e.contains("/nonexistent/checkpoint") && e.contains("not found"),
        "{e}"
    );
}

#[test]
fn missing_config_and_missing_weights_are_clear_errors() {
    let dir = broken_copy();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("config.json"), "{e}");

    let dir = broken_copy();
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("no model.safetensors"), "{e}");
}

#[test]
fn config_with_a_wrong_type_names_the_field() {
    let dir = broken_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"hidden_size\": 32", "\"hidden_size\": \"thirty-two\""),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("config.json") && e.contains("hidden_size"),
        "{e}"
    );
}

#[test]
fn config_with_bad_values_names_the_field() {
    let dir = broken_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 5"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("hidden_size") && e.contains("not divisible"),
        "{e}"
    );

    std::fs::write(
        &path,
        text.replace("\"hidden_act\": \"gelu\"", "\"hidden_act\": \"mish\""),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("hidden_act") && e.contains("mish"), "{e}");
}

#[test]
fn truncated_and_corrupt_safetensors_are_clear_errors() {
    let dir = broken_copy();
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("model.safetensors") && e.contains("safetensors"),
        "{e}"
    );

    let mut garbage = bytes.clone();
    garbage[8..40].copy_from_slice(&[0xff; 32]);
    std::fs::write(&path, &garbage).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors"), "{e}");

    std::fs::write(&path, b"not a checkpoint").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn tensor_of_the_wrong_shape_is_named_with_both_shapes() {
    let dir = broken_copy();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"intermediate_size\": 48", "\"intermediate_size\": 40"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("layer.0.intermediate.dense.bias") && e.contains("[48]") && e.contains("[40]"),
        "{e}"
    );
}

#[test]
fn missing_and_unexpected_tensors_are_named() {
    let dir = broken_copy();
    let path = dir.path().join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&path).unwrap();
    tensors.retain(|(n, _)| n != "bert.encoder.layer.1.attention.self.key.bias");
    tensors.push((
        "bert.encoder.layer.9.output.dense.weight".into(),
        tch::Tensor::zeros([2], tch::kind::FLOAT_CPU),
    ));
    tch::Tensor::write_safetensors(&tensors, &path).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("missing") && e.contains("layer.1.attention.self.key.bias"),
        "{e}"
    );

    tensors.push((
        "bert.encoder.layer.1.attention.self.key.bias".into(),
        tch::Tensor::zeros([32], tch::kind::FLOAT_CPU),
    ));
    tch::Tensor::write_safetensors(&tensors, &path).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("unexpected") && e.contains("layer.9.output.dense.weight"),
        "{e}"
    );
}

#[test]
fn tokenizer_larger_than_the_model_vocabulary_is_refused() {
    // tiny-gelu has vocab_size 1000; give it the teacher's 30522-token tokenizer.
    let dir = broken_copy();
    std::fs::copy(
        common::teacher().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let err = match destila::embed::Embedder::open(dir.path(), tch::Device::Cpu) {
        Ok(_) => panic!("must refuse"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Tokenizer { .. }));
    let e = err.to_string();
    assert!(e.contains("30522") && e.contains("1000"), "{e}");
}

#[test]
fn sequence_longer_than_positions_is_an_error() {
    let model = load(&common::fixtures().join("tiny-gelu"));
    let batch = destila::bert::Inputs::random(1000, 1, 65, 0);
    let e = model
        .forward(&batch, &ForwardOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_position_embeddings 64"), "{e}");
}
