//! Stored teacher targets (the top k, or N draws) against the full vocabulary on held-out
//! text (`destila bench topk`): storage per token, the KD loss of a student with each, and
//! how well the gradient it gives the student's weights points where the full KD's does.

use std::path::Path;

use serde::Serialize;
use tch::{Kind, Tensor};

use crate::bert::{ForwardOptions, MlmPositions, Model};
use crate::data::Batch;
use crate::error::Result;

/// One row of `topk_gap`: what top-k storage costs and how far its KD loss is from the
/// full-vocabulary one.
#[derive(Debug, Clone, Serialize)]
pub struct TopkRow {
    /// "top-k" (k = the top k logits) or "sample" (k = N draws per masked token).
    pub form: &'static str,
    pub k: usize,
    /// Bytes of top-k ids, fp16 logits and the fp32 tail per masked token, and per input
    /// token.
    pub bytes_per_masked: f64,
    pub bytes_per_token: f64,
    pub kd_full: f64,
    /// `kd_topk_tail`: the top k and the teacher's tail mass as one more outcome; for a
    /// sampled form, KL(draws' empirical distribution ‖ student), whose gradient (not its
    /// value, which is larger by about the entropy the draws miss) estimates the full KD's.
    pub kd_topk: f64,
    /// kd_topk − kd_full, and that over kd_full.
    pub difference: f64,
    pub relative: f64,
    /// Teacher probability mass (at T) inside the stored ids, averaged over positions.
    pub mass: f64,
    /// Cosine between the gradient of this loss and of the full KD with respect to the
    /// student's weights, one batch at a time (a training step's gradient), averaged over
    /// batches: 1 for the full KD; what the stored form loses of the soft targets' pull.
    pub grad_cos: f64,
    /// The norm of that gradient over the full KD's, averaged over batches: how much of the
    /// soft targets' pull it keeps.
    pub grad_norm_ratio: f64,
}

/// Over `batches`, the KD loss (temperature `t`) with the full teacher distribution and
/// with each stored form: its top k classes (`ks`), and N draws from it (`samples`, the
/// generator seeded by `seed` and the batch number); ids stored as int16 when the
/// vocabulary allows. Batches are read one at a time and only sums are kept, so memory
/// stays flat however many there are.
pub fn topk_gap<B: std::borrow::Borrow<Batch>>(
    teacher: &Model,
    student: &Model,
    batches: impl IntoIterator<Item = B>,
    ks: &[usize],
    samples: &[usize],
    t: f64,
    seed: i64,
) -> Result<Vec<TopkRow>> {
    use crate::distill::losses;
    let vocab = teacher.config().vocab_size;
    let id_bytes = if vocab <= 1 << 16 { 2.0 } else { 4.0 };
    let forms: Vec<(&'static str, usize)> = ks
        .iter()
        .map(|&k| ("top-k", k))
        .chain(samples.iter().map(|&n| ("sample", n)))
        .collect();
    let (mut masked, mut tokens, mut n_batches) = (0f64, 0f64, 0f64);
    let mut full = 0f64;
    // Per form: loss sum, mass sum, gradient-cosine sum, gradient-norm-ratio sum.
    let mut sums = vec![(0f64, 0f64, 0f64, 0f64); forms.len()];
    let vars = student.vs.trainable_variables();
    let grad = |loss: &Tensor| -> Tensor {
        let g = Tensor::run_backward(&[loss], &vars, true, false);
        Tensor::cat(&g.iter().map(|x| x.flatten(0, -1)).collect::<Vec<_>>(), 0)
            .to_kind(Kind::Double)
    };
    for (bi, b) in batches.into_iter().enumerate() {
        let b: &Batch = b.borrow();
        let opts = ForwardOptions {
            mlm: MlmPositions::Flat(b.masked_positions.shallow_clone()),
            ..Default::default()
        };
        let lt = tch::no_grad(|| teacher.forward(&b.inputs, &opts))?
            .mlm_logits
            .expect("asked for");
        let ls = student
            .forward(&b.inputs, &opts)?
            .mlm_logits
            .expect("asked for");
        let n = lt.size()[0] as f64;
        masked += n;
        n_batches += 1.0;
        tokens += b.inputs.attention_mask.sum(Kind::Float).double_value(&[]);
        let full_loss = losses::kd(&lt, &ls, t);
        full += full_loss.double_value(&[]) * n;
        let g_full = grad(&full_loss);
        let p = (&lt / t).softmax(-1, Kind::Float);
        for (i, &(form, k)) in forms.iter().enumerate() {
            let (ids, v, tail) = if form == "top-k" {
                let (v, ids) = lt.topk(k as i64, -1, true, true);
                let tail = losses::tail_log_mass(&lt, &ids, t);
                (ids, v, tail)
            } else {
                tch::manual_seed(seed.wrapping_add(bi as i64));
                losses::sampled_targets(&lt, k as i64, t)
            };
            let used = v.gt(losses::UNUSED_SLOT / 2.0).to_kind(Kind::Float);
            let mass = (p.gather(-1, &ids, false) * used).sum_dim_intlist(-1, false, Kind::Float);
            let loss = losses::kd_topk_tail(&ids, &v, &tail, &ls, t);
            let g = grad(&loss);
            let (norm, norm_full) = (g.norm().double_value(&[]), g_full.norm().double_value(&[]));
            let cos = g.dot(&g_full).double_value(&[]) / (norm * norm_full).max(1e-30);
            sums[i].0 += loss.double_value(&[]) * n;
            sums[i].1 += mass.sum(Kind::Float).double_value(&[]);
            sums[i].2 += cos;
            sums[i].3 += norm / norm_full.max(1e-30);
        }
    }
    let kd_full = full / masked.max(1.0);
    Ok(forms
        .iter()
        .zip(sums)
        .map(|(&(form, k), (kd, mass, cos, ratio))| {
            let kd_topk = kd / masked.max(1.0);
            let slots = k.min(vocab as usize) as f64;
            let per_masked = slots * (id_bytes + 2.0) + 4.0;
            TopkRow {
                form,
                k,
                bytes_per_masked: per_masked,
                bytes_per_token: per_masked * masked / tokens.max(1.0),
                kd_full,
                kd_topk,
                difference: kd_topk - kd_full,
                relative: (kd_topk - kd_full) / kd_full,
                mass: mass / masked.max(1.0),
                grad_cos: cos / n_batches.max(1.0),
                grad_norm_ratio: ratio / n_batches.max(1.0),
            }
        })
        .collect())
}

/// `destila bench topk`'s settings.
#[derive(Debug, Clone)]
pub struct TopkOptions {
    /// Held-out text (file, folder or glob).
    pub data: String,
    pub k: Vec<usize>,
    /// Draws per masked token of the sampled forms compared (none: top k only).
    pub sample: Vec<usize>,
    pub batches: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub temperature: f64,
}

/// Checks the two models and the settings against each other, draws `batches` held-out
/// batches of `data` (teacher's tokenizer) and measures [`topk_gap`] for each k.
pub fn run(teacher: &Path, student: &Path, o: &TopkOptions) -> Result<Vec<TopkRow>> {
    use crate::error::Error;
    let tokenizer = crate::tokenize::BertTokenizer::from_dir(teacher)?;
    let yaml = serde_json::json!({"train": [o.data], "max_seq_len": o.seq_len});
    let cfg: crate::data::DataConfig =
        serde_json::from_value(yaml).map_err(|e| Error::Invalid(format!("--data: {e}")))?;
    if let Err((field, msg)) = cfg.validate() {
        let flag = if field == "max_seq_len" {
            "--seq-len"
        } else {
            "--data"
        };
        return Err(Error::Invalid(format!("{flag}: {msg}")));
    }
    let tc = crate::bert::BertConfig::from_file(teacher.join("config.json"))?;
    let sc = crate::bert::BertConfig::from_file(student.join("config.json"))?;
    if tc.vocab_size != sc.vocab_size {
        return Err(Error::Invalid(format!(
            "the teacher's vocabulary ({}, {}) and the student's ({}, {}) differ: top-k targets compare the same tokens",
            tc.vocab_size,
            teacher.display(),
            sc.vocab_size,
            student.display()
        )));
    }
    if let Some(big) = o.k.iter().find(|&&k| k as i64 > tc.vocab_size) {
        return Err(Error::Invalid(format!(
            "--k {big} is more than the vocabulary ({} tokens)",
            tc.vocab_size
        )));
    }
    if let Some(big) = o
        .sample
        .iter()
        .find(|&&n| n > crate::distill::losses::MAX_SAMPLE)
    {
        return Err(Error::Invalid(format!(
            "--sample {big}: at most {} draws per masked token",
            crate::distill::losses::MAX_SAMPLE
        )));
    }
    let positions = tc.max_position_embeddings.min(sc.max_position_embeddings);
    if o.seq_len as i64 > positions {
        return Err(Error::Invalid(format!(
            "--seq-len {} is longer than the models' max_position_embeddings ({positions})",
            o.seq_len
        )));
    }
    let sets = crate::data::prepare(&cfg, &tokenizer)?;
    let lo = crate::data::loader_options(&cfg, &tokenizer, o.batch, crate::data::HELD_OUT_SEED);
    let mut l =
        crate::data::held_out_loader(sets.train.corpus.clone(), sets.train.docs.clone(), lo);
    let t = crate::bert::load(teacher, &Default::default())?;
    let s = crate::bert::load(student, &Default::default())?;
    let held = (0..o.batches).map_while(|_| l.next_batch());
    topk_gap(
        &t,
        &s,
        held,
        &o.k,
        &o.sample,
        o.temperature,
        crate::data::HELD_OUT_SEED as i64,
    )
}
