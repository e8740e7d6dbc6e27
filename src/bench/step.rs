//! One distillation step of the trainer, timed (`destila bench step`): teacher forward,
//! student forward and backward over the demo's five losses, clipping and AdamW.

use std::path::Path;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use crate::bert::{self, forward_flops, Inputs, LoadOptions, Model};
use crate::data::Batch;
use crate::distill::optim::AdamW;
use crate::distill::recipe::Recipe;
use crate::distill::step::{compute, plan, Plan, Teacher};
use crate::distill::student;
use crate::error::Result;
use crate::timing::{median, peak_rss_bytes};

#[derive(Debug, Clone, serde::Serialize)]
pub struct StepResult {
    pub batch: i64,
    pub seq_len: i64,
    pub student_layers: i64,
    pub device: String,
    pub dtype: String,
    pub threads: i32,
    pub seconds: Vec<f64>,
    pub median_s: f64,
    pub samples_per_s: f64,
    /// Model FLOPs of one step: teacher forward + 3 × student forward.
    pub step_flops: f64,
    pub tflops_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// What `bench_step` runs.
#[derive(Debug, Clone)]
pub struct StepBench {
    pub student_layers: i64,
    pub batch: i64,
    pub seq_len: i64,
    pub iters: usize,
    pub warmup: usize,
    pub device: Device,
    pub kind: Kind,
}

/// Times the trainer's own step (forwards, the five demo losses, backward, clipping,
/// AdamW) on a random full-length batch, 15% of positions masked.
pub fn bench_step(teacher_dir: &Path, setup: &StepBench) -> Result<StepResult> {
    let StepBench {
        student_layers,
        batch,
        seq_len,
        iters,
        warmup,
        device,
        kind,
    } = setup.clone();
    let (teacher, model, plan) = models(teacher_dir, setup)?;
    let named: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    let mut opt = AdamW::new(named, 0.9, 0.999, 1e-6);
    let (b, masked) = random_batch(teacher.config().vocab_size, batch, seq_len);
    let b = b.to_device(device);
    let mut seconds = Vec::new();
    for i in 0..warmup + iters {
        let start = Instant::now();
        let c = compute(
            &plan,
            &model,
            Teacher {
                model: Some(&teacher),
                ..Default::default()
            },
            None,
            &b,
            2.0,
            true,
        )?;
        let mut loss = Tensor::zeros([], (Kind::Float, device));
        for (_, v) in &c.components {
            loss += v;
        }
        loss.backward();
        opt.clip_grad_norm(1.0);
        opt.step(1e-4, 0.01);
        opt.zero_grad();
        let _ = loss.double_value(&[]);
        if i >= warmup {
            seconds.push(start.elapsed().as_secs_f64());
        }
    }
    let median_s = median(&seconds);
    let (tokens, len) = ((batch * seq_len) as f64, seq_len as f64);
    let step_flops = forward_flops(teacher.config(), tokens, len, masked as f64)
        + 3.0 * forward_flops(model.config(), tokens, len, masked as f64);
    Ok(StepResult {
        batch,
        seq_len,
        student_layers,
        device: crate::device::describe(device),
        dtype: crate::bert::weights::kind_name(kind),
        threads: tch::get_num_threads(),
        seconds,
        median_s,
        samples_per_s: batch as f64 / median_s,
        step_flops,
        tflops_per_s: step_flops / median_s / 1e12,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// The teacher, the student from its layers (uniform), and the plan of the five losses.
fn models(teacher_dir: &Path, setup: &StepBench) -> Result<(Model, Model, Plan)> {
    let yaml = format!(
        "teacher: {{checkpoint: {}}}\nstudent: {{layers: {}, init: from-teacher}}\ndata: {{train: [unused]}}\n\
         losses: {{temperature: 2.0, kd_mlm: {{weight: 1}}, kd_nsp: {{weight: 1}}, mlm: {{weight: 1}}, nsp: {{weight: 1}}, hidden_cos: {{weight: 1}}}}\n",
        teacher_dir.display(),
        setup.student_layers
    );
    let recipe = Recipe::from_str(&yaml, Path::new("(bench step)"))?;
    let lo = LoadOptions {
        device: setup.device,
        ..Default::default()
    };
    let mut teacher = bert::load(teacher_dir, &lo)?;
    let mut model = student::build(
        recipe.student.as_ref().expect("set"),
        &teacher.config().clone(),
        Some(&teacher),
        setup.device,
        &recipe.path,
    )?;
    let plan = plan(&recipe, model.config(), Some(teacher.config()))?;
    if setup.kind != Kind::Float {
        teacher.vs.set_kind(setup.kind);
        model.vs.set_kind(setup.kind);
    }
    Ok((teacher, model, plan))
}

/// A random full-length batch with 15% of its positions masked (labels there), random NSP
/// labels; and the number of masked positions.
fn random_batch(vocab: i64, batch: i64, seq_len: i64) -> (Batch, i64) {
    let inputs = Inputs::random(vocab, batch, seq_len, 0);
    let n = batch * seq_len;
    let masked = ((n as f64) * 0.15).round() as i64;
    let positions = Tensor::randperm(n, (Kind::Int64, Device::Cpu))
        .narrow(0, 0, masked)
        .sort(0, false)
        .0;
    let masked_labels = inputs.input_ids.view([-1]).index_select(0, &positions);
    let labels = Tensor::full([n], -100, (Kind::Int64, Device::Cpu)).index_put(
        &[Some(positions.shallow_clone())],
        &masked_labels,
        false,
    );
    let b = Batch {
        labels: labels.view([batch, seq_len]),
        masked_positions: positions,
        masked_labels,
        nsp_labels: Tensor::randint(2, [batch], (Kind::Int64, Device::Cpu)),
        inputs,
        targets: None,
    };
    (b, masked)
}
