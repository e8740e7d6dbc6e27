//! Numbers against HF `transformers` (fixtures from scripts/fixtures.py): the real teacher,
//! and small random BertForPreTraining models with each activation.

mod common;

use common::{inputs, max_abs, read};
use destila::bert::{self, ForwardOptions, LoadOptions, MlmPositions};
use tch::{Kind, Tensor};

const TOL: f64 = 1e-4;

fn teacher_case(fixture: &str) {
    let r = read(fixture);
    let model = bert::load(common::teacher(), &LoadOptions::default()).unwrap();
    let opts = ForwardOptions {
        attentions: true,
        ..Default::default()
    };
    let out = tch::no_grad(|| model.forward(&inputs(&r), &opts)).unwrap();
    let d = max_abs(out.last_hidden_state(), &r["last_hidden_state"]);
    eprintln!("{fixture}: last hidden state max abs difference {d:.2e}");
    assert!(d < TOL, "{fixture}: last hidden state differs by {d}");
    let d = max_abs(out.pooled.as_ref().unwrap(), &r["pooler_output"]);
    assert!(d < TOL, "{fixture}: pooled output differs by {d}");
    let hs = Tensor::stack(&out.hidden_states, 0);
    let d = max_abs(&hs, &r["hidden_states"]);
    assert!(d < TOL, "{fixture}: hidden states differ by {d}");
    let probs: Vec<Tensor> = out
        .attentions
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.probs.shallow_clone())
        .collect();
    let d = max_abs(&Tensor::stack(&probs, 0), &r["attentions"]);
    assert!(d < TOL, "{fixture}: attention probabilities differ by {d}");

    // The fused path (no attention internals asked for) gives the same numbers.
    let fast = tch::no_grad(|| model.forward(&inputs(&r), &ForwardOptions::default())).unwrap();
    let d = max_abs(fast.last_hidden_state(), &r["last_hidden_state"]);
    assert!(d < TOL, "{fixture}: fused attention path differs by {d}");
}

#[test]
fn teacher_matches_transformers_on_padded_singles() {
    teacher_case("teacher_single.safetensors");
}

#[test]
fn teacher_matches_transformers_on_padded_pairs() {
    teacher_case("teacher_pair.safetensors");
}

fn tiny_case(name: &str) {
    let r = read(&format!("{name}.safetensors"));
    let model = bert::load(common::fixtures().join(name), &LoadOptions::default()).unwrap();
    let report = model.report.as_ref().unwrap();
    assert!(report.checkpoint_heads.mlm && report.checkpoint_heads.nsp);
    let opts = ForwardOptions {
        mlm: MlmPositions::All,
        nsp: true,
        attentions: true,
        ..Default::default()
    };
    let out = tch::no_grad(|| model.forward(&inputs(&r), &opts)).unwrap();
    let mlm = out.mlm_logits.as_ref().unwrap();
    let d = max_abs(mlm, &r["prediction_logits"]);
    eprintln!("{name}: MLM logits max abs difference {d:.2e}");
    assert!(d < TOL, "{name}: MLM logits differ by {d}");
    let d = max_abs(
        out.nsp_logits.as_ref().unwrap(),
        &r["seq_relationship_logits"],
    );
    assert!(d < TOL, "{name}: NSP logits differ by {d}");
    let d = max_abs(&Tensor::stack(&out.hidden_states, 0), &r["hidden_states"]);
    assert!(d < TOL, "{name}: hidden states differ by {d}");

    // MLM logits at chosen positions only: the same rows as the full computation.
    let idx = Tensor::from_slice(&[0i64, 5, 13, 30, 35]);
    let opts = ForwardOptions {
        mlm: MlmPositions::Flat(idx.shallow_clone()),
        ..Default::default()
    };
    let sub = tch::no_grad(|| model.forward(&inputs(&r), &opts)).unwrap();
    let vocab = model.config().vocab_size;
    let want = r["prediction_logits"]
        .view([-1, vocab])
        .index_select(0, &idx);
    let d = max_abs(sub.mlm_logits.as_ref().unwrap(), &want);
    assert!(d < TOL, "{name}: MLM logits at positions differ by {d}");
}

#[test]
fn tiny_pretraining_model_gelu_matches_transformers() {
    tiny_case("tiny-gelu");
}

#[test]
fn tiny_pretraining_model_gelu_new_matches_transformers() {
    tiny_case("tiny-gelu-new");
}

#[test]
fn tiny_pretraining_model_relu_matches_transformers() {
    tiny_case("tiny-relu");
}

#[test]
fn activations_really_differ() {
    // Guards the three cases above: they would pass trivially if the fixtures were alike.
    let a = read("tiny-gelu.safetensors");
    let b = read("tiny-gelu-new.safetensors");
    let c = read("tiny-relu.safetensors");
    assert!(max_abs(&a["prediction_logits"], &b["prediction_logits"]) > 1e-5);
    assert!(max_abs(&a["prediction_logits"], &c["prediction_logits"]) > 1e-3);
}

#[test]
fn train_mode_applies_dropout_and_eval_mode_does_not() {
    let r = read("tiny-gelu.safetensors");
    let model = bert::load(
        common::fixtures().join("tiny-gelu"),
        &LoadOptions::default(),
    )
    .unwrap();
    let eval = |train| {
        let opts = ForwardOptions {
            train,
            ..Default::default()
        };
        tch::no_grad(|| model.forward(&inputs(&r), &opts))
            .unwrap()
            .last_hidden_state()
            .to_kind(Kind::Float)
    };
    assert_eq!(max_abs(&eval(false), &eval(false)), 0.0);
    tch::manual_seed(1);
    let t1 = eval(true);
    tch::manual_seed(2);
    let t2 = eval(true);
    assert!(
        max_abs(&t1, &t2) > 1e-3,
        "dropout must change train-mode outputs"
    );
    assert!(max_abs(&t1, &eval(false)) > 1e-3);
}
