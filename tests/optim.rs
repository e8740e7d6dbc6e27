//! AdamW against `torch.optim.AdamW` (fixture from scripts/fixtures.py), the schedules by
//! hand, and clipping.

mod common;

use destila::distill::optim::AdamW;
use destila::distill::recipe::LrSchedule;
use destila::distill::schedule::lr_factor;
use tch::{Kind, Tensor};

fn set_grad(var: &Tensor, g: &Tensor) {
    // d/dvar of sum(var * g) is g.
    (var * g).sum(Kind::Float).backward();
}

#[test]
fn adamw_matches_torch_over_six_steps() {
    let r = common::read("adamw.safetensors");
    let w = r["w0"].copy().set_requires_grad(true);
    let b = r["b0"].copy().set_requires_grad(true);
    let mut opt = AdamW::new(
        vec![
            ("layer.weight".into(), w.shallow_clone()),
            ("layer.bias".into(), b.shallow_clone()),
        ],
        0.9,
        0.999,
        1e-6,
    );
    let lrs: Vec<f64> = Vec::try_from(&r["lrs"]).unwrap();
    for (k, lr) in lrs.iter().enumerate() {
        opt.zero_grad();
        set_grad(&w, &r[&format!("gw{k}")]);
        set_grad(&b, &r[&format!("gb{k}")]);
        opt.step(*lr, 0.01);
        let dw = common::max_abs(&w, &r[&format!("w{}", k + 1)]);
        let db = common::max_abs(&b, &r[&format!("b{}", k + 1)]);
        assert!(dw < 1e-6 && db < 1e-6, "step {k}: {dw} {db}");
    }
    assert!(common::max_abs(&w, &r["w0"]) > 1e-3);
}

#[test]
fn weight_decay_is_decoupled_and_spares_biases() {
    // One step with decay 0.01 against one without, same gradients: AdamW (decoupled)
    // multiplies a weight by 1 - lr * decay before the Adam update, so the two results
    // differ by exactly lr * decay * w0 for the weight, and not at all for the bias.
    let r = common::read("adamw.safetensors");
    let lr = 0.05;
    let step = |decay: f64| {
        let w = r["w0"].copy().set_requires_grad(true);
        let b = r["b0"].copy().set_requires_grad(true);
        let mut opt = AdamW::new(
            vec![
                ("layer.weight".into(), w.shallow_clone()),
                ("layer.bias".into(), b.shallow_clone()),
            ],
            0.9,
            0.999,
            1e-6,
        );
        opt.zero_grad();
        set_grad(&w, &r["gw0"]);
        set_grad(&b, &r["gb0"]);
        opt.step(lr, decay);
        (w.detach(), b.detach())
    };
    let (w1, b1) = step(0.01);
    let (w0, b0) = step(0.0);
    let expected = &r["w0"] * (-lr * 0.01);
    let d = common::max_abs(&(&w1 - &w0), &expected);
    assert!(d < 1e-7, "weight: decay off by {d}");
    assert!(common::max_abs(&expected, &expected.zeros_like()) > 1e-5);
    assert_eq!(common::max_abs(&b1, &b0), 0.0, "the bias was decayed");
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let w = Tensor::zeros([2], tch::kind::FLOAT_CPU).set_requires_grad(true);
    let mut opt = AdamW::new(
        vec![("w.weight".into(), w.shallow_clone())],
        0.9,
        0.999,
        1e-6,
    );
    set_grad(&w, &Tensor::from_slice(&[3.0f32, 4.0]));
    let before = opt.clip_grad_norm(1.0);
    assert!((before - 5.0).abs() < 1e-6);
    assert!((opt.grad_norm() - 1.0).abs() < 1e-5);
}

#[test]
fn schedules_by_hand() {
    // 10 steps, 2 of warmup: 0, 0.5, then linear from 1 down to 1/8 at step 9.
    let f = |s, step| lr_factor(s, step, 2, 10);
    assert_eq!(f(LrSchedule::Linear, 0), 0.0);
    assert_eq!(f(LrSchedule::Linear, 1), 0.5);
    assert_eq!(f(LrSchedule::Linear, 2), 1.0);
    assert!((f(LrSchedule::Linear, 6) - 0.5).abs() < 1e-12);
    assert!((f(LrSchedule::Linear, 9) - 0.125).abs() < 1e-12);
    assert!((f(LrSchedule::Cosine, 6) - 0.5).abs() < 1e-12);
    assert!(
        (f(LrSchedule::Cosine, 4) - 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos())).abs() < 1e-12
    );
    assert_eq!(f(LrSchedule::Constant, 9), 1.0);
}
