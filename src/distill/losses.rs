//! Distillation and pretraining losses, each a small function over teacher outputs, student
//! outputs and the batch's masks. The recipe weighs them; a loss with weight 0 is never
//! computed (see `trainer`).
//!
//! Conventions: `mask` is the [b, len] 0/1 attention mask; hidden states are [b, len, h];
//! attention tensors are [b, heads, len, ...]. Every loss is a mean, so weights are
//! comparable across batch shapes.

use tch::{Kind, Tensor};

/// Several teachers' soft targets averaged: logits whose softmax at `temperature` is the
/// weighted mean of each teacher's softmax at that temperature,
/// T · log Σᵢ (wᵢ / Σw) softmax(zᵢ / T), so that `kd` against them is the KL from the
/// averaged targets (its gradient the weighted mean of the gradients against each).
pub fn mixture(parts: &[(Tensor, f64)], temperature: f64) -> Tensor {
    let total: f64 = parts.iter().map(|(_, w)| w).sum();
    let terms: Vec<Tensor> = parts
        .iter()
        .map(|(z, w)| {
            (z.to_kind(Kind::Float) / temperature).log_softmax(-1, Kind::Float) + (w / total).ln()
        })
        .collect();
    Tensor::stack(&terms, 0).logsumexp([0], false) * temperature
}

/// T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over rows (positions or
/// sequences). Rows are the last-but-one dimension: logits [n, classes].
pub fn kd(teacher: &Tensor, student: &Tensor, temperature: f64) -> Tensor {
    let lt = (teacher.to_kind(Kind::Float) / temperature).log_softmax(-1, Kind::Float);
    let ls = (student.to_kind(Kind::Float) / temperature).log_softmax(-1, Kind::Float);
    let kl = (lt.exp() * (&lt - ls)).sum_dim_intlist(-1, false, Kind::Float);
    kl.mean(Kind::Float) * (temperature * temperature)
}

/// `kd` with the teacher known by its top k classes and the log of the probability it puts
/// on all the others (`teacher_tail`, at this temperature): KL over k + 1 outcomes, the k
/// classes and "any other class", for teacher and student alike. It is the full KD when k
/// covers every class (the tail is empty), and never more than the full KD otherwise.
/// `teacher_ids` [n, k] (int64), `teacher_logits` [n, k], `teacher_tail` [n], `student`
/// [n, classes].
pub fn kd_topk_tail(
    teacher_ids: &Tensor,
    teacher_logits: &Tensor,
    teacher_tail: &Tensor,
    student: &Tensor,
    temperature: f64,
) -> Tensor {
    let t = temperature;
    let tail = teacher_tail.to_kind(Kind::Float).unsqueeze(-1); // log p_tail
                                                                // log p_i = l_i / T − lse_T, with lse_T fixed by Σ p_i + p_tail = 1.
    let head = teacher_logits.to_kind(Kind::Float) / t;
    let head_lse = head.logsumexp(&[-1i64][..], true);
    let log_head_mass = (tail.exp().neg() + 1.0).clamp_min(1e-30).log();
    let lp = head - head_lse + &log_head_mass;
    let ls_all = (student.to_kind(Kind::Float) / t).log_softmax(-1, Kind::Float);
    let lq = ls_all.gather(-1, teacher_ids, false);
    let head_kl = (lp.exp() * (&lp - lq)).sum_dim_intlist(-1, true, Kind::Float);
    if teacher_ids.size().last() == student.size().last() {
        // Every class is in the head: no tail (and the student's would be log 0).
        return head_kl.mean(Kind::Float) * (t * t);
    }
    // The student's tail: logsumexp of its log-probabilities off the k ids.
    let lq_tail = ls_all
        .scatter_value(-1, teacher_ids, f64::NEG_INFINITY)
        .logsumexp(&[-1i64][..], true);
    let p_tail = tail.exp();
    let tail_kl = &p_tail * (&tail - lq_tail);
    (head_kl + tail_kl).mean(Kind::Float) * (t * t)
}

/// Log of the probability the softmax of `logits / temperature` [n, classes] puts outside
/// the classes `ids` [n, k]: what `kd_topk_tail` needs beside the top-k logits. Floored at
/// -10⁴ (a mass of exactly 0 in fp32), so that an empty tail stays finite.
pub fn tail_log_mass(logits: &Tensor, ids: &Tensor, temperature: f64) -> Tensor {
    let lp = (logits.to_kind(Kind::Float) / temperature).log_softmax(-1, Kind::Float);
    lp.scatter_value(-1, ids, f64::NEG_INFINITY)
        .logsumexp(&[-1i64][..], false)
        .clamp_min(-1e4)
}

/// The stored logit of an unused slot of a sampled target: its probability is exactly 0 at
/// any temperature, and it fits in fp16.
pub const UNUSED_SLOT: f64 = -60000.0;

/// `n` draws (with replacement, from the current generator) from softmax(`logits` /
/// `temperature`) [rows, classes], in the form `kd_topk_tail` reads: per row, the distinct
/// drawn ids [rows, min(n, classes)], logits T·ln(count) so that softmax(logits / T) is the
/// empirical distribution of the draws (`UNUSED_SLOT` where fewer distinct ids were
/// drawn), and an empty tail. KL(empirical ‖ student) then has the gradient of the full
/// KD in expectation (sparse logit sampling), where a top k drops the tail's shape.
pub fn sampled_targets(logits: &Tensor, n: i64, temperature: f64) -> (Tensor, Tensor, Tensor) {
    let logits = logits.to_kind(Kind::Float);
    let (rows, classes) = (logits.size()[0], logits.size()[1]);
    let dev = logits.device();
    let slots = n.min(classes);
    // Rows a few at a time, so that the draws and each [rows, classes] table (double) stay
    // within about 128 MB.
    let chunk = (MAX_DRAWS_AT_ONCE / n.max(1))
        .min(MAX_DRAWS_AT_ONCE / classes.max(1))
        .clamp(1, 1024);
    // Ties among the counts are broken by the lowest id, so that the slots are a function of
    // the draws alone (not of how a top-k kernel orders equal values).
    let tie = (Tensor::arange(classes, (Kind::Double, dev)).neg() + (classes - 1) as f64)
        / classes as f64;
    let (mut ids, mut stored) = (Vec::new(), Vec::new());
    for start in (0..rows).step_by(chunk as usize) {
        let part = logits.narrow(0, start, chunk.min(rows - start));
        let r = part.size()[0];
        // Inverse-CDF draws in double precision from the generator's uniforms: the same
        // draws for the same generator state, whatever the kernel or thread count.
        let cdf = (&part / temperature)
            .softmax(-1, Kind::Double)
            .cumsum(-1, Kind::Double);
        let cdf = &cdf / cdf.narrow(1, classes - 1, 1);
        let u = Tensor::rand([r, n], (Kind::Double, dev));
        let draws = u
            .searchsorted(&cdf, false, true, "right", None::<Tensor>)
            .clamp_max(classes - 1);
        let counts = Tensor::zeros([r, classes], (Kind::Double, dev)).scatter_add(
            -1,
            &draws,
            &Tensor::ones([r, n], (Kind::Double, dev)),
        );
        let (_, i) = (&counts + &tie).topk(slots, -1, true, true);
        let values = counts.gather(-1, &i, false).to_kind(Kind::Float);
        stored.push(
            values
                .clamp_min(1e-30)
                .log()
                .g_mul_scalar(temperature)
                .where_self(&values.gt(0.0), &Tensor::from(UNUSED_SLOT as f32)),
        );
        ids.push(i);
    }
    let (ids, stored) = if rows == 0 {
        (
            Tensor::zeros([0, slots], (Kind::Int64, dev)),
            Tensor::zeros([0, slots], (Kind::Float, dev)),
        )
    } else {
        (Tensor::cat(&ids, 0), Tensor::cat(&stored, 0))
    };
    let tail = Tensor::full([rows], -1e4, (Kind::Float, dev));
    (ids, stored, tail)
}

/// Draws `sampled_targets` makes at once (int64: 128 MB).
const MAX_DRAWS_AT_ONCE: i64 = 1 << 24;

/// The most draws per masked token a sampled target may ask for (one row's draws: 8 MB).
pub const MAX_SAMPLE: usize = 1 << 20;

/// Mean cross-entropy of `logits` [n, classes] against `labels` [n].
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.to_kind(Kind::Float).cross_entropy_loss::<Tensor>(
        labels,
        None,
        tch::Reduction::Mean,
        -100,
        0.0,
    )
}

fn token_mask(mask: &Tensor) -> (Tensor, Tensor) {
    let m = mask.to_kind(Kind::Float);
    let n = m.sum(Kind::Float).clamp_min(1.0);
    (m, n)
}

/// Mean over non-padding tokens of 1 − cos(student, teacher).
pub fn hidden_cos(student: &Tensor, teacher: &Tensor, mask: &Tensor) -> Tensor {
    let cos = Tensor::cosine_similarity(
        &student.to_kind(Kind::Float),
        &teacher.to_kind(Kind::Float),
        -1,
        1e-8,
    );
    let (m, n) = token_mask(mask);
    ((cos.ones_like() - cos) * m).sum(Kind::Float) / n
}

/// Mean squared error over the non-padding tokens' hidden units.
pub fn hidden_mse(student: &Tensor, teacher: &Tensor, mask: &Tensor) -> Tensor {
    let d = (student.to_kind(Kind::Float) - teacher.to_kind(Kind::Float)).square();
    let (m, n) = token_mask(mask);
    let h = student.size()[2] as f64;
    (d * m.unsqueeze(-1)).sum(Kind::Float) / (n * h)
}

/// Mean over non-padding tokens of `hidden` [b, len, h]: a sentence embedding [b, h], as
/// sentence-transformers pools.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    (hidden.to_kind(Kind::Float) * &m).sum_dim_intlist(1, false, Kind::Float)
        / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0)
}

/// Mean over sequences of 1 − cos(student's mean-pooled hidden states, teacher's sentence
/// embedding [b, h]).
pub fn pooled_cos(student: &Tensor, teacher_pooled: &Tensor, mask: &Tensor) -> Tensor {
    embedding_cos(&mean_pool(student, mask), teacher_pooled)
}

/// Mean over sequences of 1 − cos(student's sentence embedding, teacher's) [b, h] each.
pub fn embedding_cos(student_pooled: &Tensor, teacher_pooled: &Tensor) -> Tensor {
    let cos = Tensor::cosine_similarity(
        &student_pooled.to_kind(Kind::Float),
        &teacher_pooled.to_kind(Kind::Float),
        -1,
        1e-8,
    );
    (cos.ones_like() - cos).mean(Kind::Float)
}

/// Mean squared error between sentence embeddings [b, h] (the student's and the teacher's
/// mean-pooled last hidden states), averaged over sequences and units.
pub fn pooled_mse(student_pooled: &Tensor, teacher_pooled: &Tensor) -> Tensor {
    (student_pooled.to_kind(Kind::Float) - teacher_pooled.to_kind(Kind::Float))
        .square()
        .mean(Kind::Float)
}

/// Several teachers' embeddings of one batch combined into one target (`teacher.combine:
/// targets`): each teacher's unit embeddings [b, h_i] scaled by the square root of its
/// share of the weights, side by side [b, sum h_i]. The cosine of two sentences under the
/// combination is then the weighted mean of their cosines under each teacher
/// (`weighted_cosine_matrix`), so the pointwise and the relational losses learn the same
/// combined geometry.
pub fn weighted_concat(parts: &[(Tensor, f64)]) -> Tensor {
    let total: f64 = parts.iter().map(|(_, w)| w).sum();
    let cols: Vec<Tensor> = parts
        .iter()
        .map(|(p, w)| {
            let x = p.to_kind(Kind::Float);
            let n = x
                .norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)
                .clamp_min(1e-8);
            x / n * (w / total).sqrt()
        })
        .collect();
    Tensor::cat(&cols, 1)
}

/// The weighted mean of several teachers' in-batch cosine matrices [b, b].
pub fn weighted_cosine_matrix(parts: &[(Tensor, f64)]) -> Tensor {
    let total: f64 = parts.iter().map(|(_, w)| w).sum();
    let terms: Vec<Tensor> = parts
        .iter()
        .map(|(p, w)| cosine_matrix(p) * (w / total))
        .collect();
    Tensor::stack(&terms, 0).sum_dim_intlist(0, false, Kind::Float)
}

/// The in-batch matrix of cosine similarities between sentence embeddings [b, h]: [b, b].
pub fn cosine_matrix(pooled: &Tensor) -> Tensor {
    let x = pooled.to_kind(Kind::Float);
    let n = x
        .norm_scalaropt_dim(2.0, [-1i64].as_slice(), true)
        .clamp_min(1e-8);
    let x = x / n;
    x.matmul(&x.transpose(0, 1))
}

/// How `similarity` compares the two cosine matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relation {
    /// Mean squared difference of the off-diagonal entries.
    Mse,
    /// Per row, KL(softmax(teacher / τ) ‖ softmax(student / τ)) over the other sentences
    /// of the batch, averaged over rows.
    Kl,
    /// 1 − Pearson correlation of the pairs' cosines (the upper triangle): blind to an
    /// offset or a scale of all the student's cosines, so that only their ordering and
    /// relative spacing is learned (what the evaluator's structure Spearman reads). Needs
    /// three sentences (three pairs); fewer give 0.
    Pearson,
}

/// The relational (similarity-structure) loss: the student's in-batch cosine matrix of
/// sentence embeddings against the teacher's, so that the student ranks the batch's pairs
/// as the teacher does, which is what the evaluator's structure Spearman measures. The
/// diagonal (always 1) is left out. `student_pooled`, `teacher_pooled`: [b, h]; the widths
/// may differ. A batch of one sentence has no pair and gives 0.
pub fn similarity(
    student_pooled: &Tensor,
    teacher_pooled: &Tensor,
    form: Relation,
    temperature: f64,
) -> Tensor {
    relation(
        &cosine_matrix(student_pooled),
        &cosine_matrix(teacher_pooled),
        form,
        temperature,
    )
}

/// The similarity loss between in-batch cosine matrices [b, b] (the student's `s`, the
/// target `t`): `similarity` of two sets of embeddings, or of a student against several
/// teachers' combined matrix (`weighted_cosine_matrix`).
pub fn relation(s: &Tensor, t: &Tensor, form: Relation, temperature: f64) -> Tensor {
    let (s, t) = (s.shallow_clone(), t.shallow_clone());
    let b = s.size()[0];
    if b < 2 {
        return s.sum(Kind::Float) * 0.0;
    }
    let eye = Tensor::eye(b, (Kind::Float, s.device()));
    let off = eye.ones_like() - &eye;
    match form {
        Relation::Pearson if b < 3 => s.sum(Kind::Float) * 0.0,
        Relation::Pearson => {
            let iu = Tensor::triu_indices(b, b, 1, (Kind::Int64, s.device()));
            let pairs = |m: &Tensor| {
                let v = m.index(&[Some(iu.get(0)), Some(iu.get(1))]);
                let c = &v - v.mean(Kind::Float);
                let n = c.square().sum(Kind::Float).sqrt() + 1e-8;
                c / n
            };
            let corr = (pairs(&s) * pairs(&t)).sum(Kind::Float);
            corr.ones_like() - corr
        }
        Relation::Mse => ((s - t).square() * &off).sum(Kind::Float) / (b * (b - 1)) as f64,
        Relation::Kl => {
            // The diagonal is pushed to −∞ in both, so each row is a distribution over the
            // b − 1 other sentences.
            let neg = &eye * -1e9;
            let lt = (t / temperature + &neg).log_softmax(-1, Kind::Float);
            let ls = (s / temperature + &neg).log_softmax(-1, Kind::Float);
            let kl = (lt.exp() * (&lt - ls) * &off).sum_dim_intlist(-1, false, Kind::Float);
            kl.mean(Kind::Float)
        }
    }
}

/// TinyBERT's attention loss: MSE between pre-softmax scores [b, h, len, len], entries at
/// padded keys zeroed in both (as TinyBERT zeroes the masked, very negative scores), averaged
/// over every entry.
pub fn attention_mse(student: &Tensor, teacher: &Tensor, mask: &Tensor) -> Tensor {
    let keys = mask.to_kind(Kind::Float).unsqueeze(1).unsqueeze(1);
    let d = (student.to_kind(Kind::Float) - teacher.to_kind(Kind::Float)) * keys;
    d.square().mean(Kind::Float)
}

/// Log of softmax over keys with padded keys excluded: [b, h, len, len].
fn masked_log_softmax(logits: &Tensor, mask: &Tensor) -> Tensor {
    let keys = mask.to_kind(Kind::Float).unsqueeze(1).unsqueeze(1);
    let neg = (keys.ones_like() - &keys) * -1e9;
    (logits.to_kind(Kind::Float) + neg).log_softmax(-1, Kind::Float)
}

/// KL(teacher ‖ student) between row distributions given as logits over keys, summed over
/// keys, averaged over heads and non-padding query positions.
fn relation_kl(teacher_logits: &Tensor, student_logits: &Tensor, mask: &Tensor) -> Tensor {
    let lt = masked_log_softmax(teacher_logits, mask);
    let ls = masked_log_softmax(student_logits, mask);
    let keys = mask.to_kind(Kind::Float).unsqueeze(1).unsqueeze(1);
    let kl = (lt.exp() * (&lt - ls) * keys).sum_dim_intlist(-1, false, Kind::Float); // [b, h, len]
    let queries = mask.to_kind(Kind::Float).unsqueeze(1); // [b, 1, len]
    let heads = kl.size()[1] as f64;
    (kl * &queries).sum(Kind::Float) / (queries.sum(Kind::Float).clamp_min(1.0) * heads)
}

/// MiniLM's attention transfer: KL between teacher and student attention distributions,
/// from their pre-softmax scores (the padding mask is applied here).
pub fn attention_kl(student_scores: &Tensor, teacher_scores: &Tensor, mask: &Tensor) -> Tensor {
    relation_kl(teacher_scores, student_scores, mask)
}

/// MiniLM's value relation: softmax(V Vᵀ / √d) per head, KL teacher ‖ student. The head
/// counts must match; the head widths need not.
pub fn value_relation(student_values: &Tensor, teacher_values: &Tensor, mask: &Tensor) -> Tensor {
    let rel = |v: &Tensor| {
        let v = v.to_kind(Kind::Float);
        let d = v.size()[3] as f64;
        v.matmul(&v.transpose(-1, -2)) / d.sqrt()
    };
    relation_kl(&rel(teacher_values), &rel(student_values), mask)
}
