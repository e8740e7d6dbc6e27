//! Each loss against values worked out by hand (the arithmetic is in the comments).

use destila::distill::losses::*;
use tch::Tensor;

const LN3: f64 = 1.098_612_288_668_109_8;

fn t(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

fn close(x: &Tensor, want: f64) {
    let got = x.double_value(&[]);
    assert!((got - want).abs() < 1e-6, "got {got}, want {want}");
}

#[test]
fn kd_at_temperature_one_and_two() {
    // Teacher [0, ln 3] → p = [1/4, 3/4]; student [0, 0] → q = [1/2, 1/2].
    // KL(p‖q) = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.1308120359.
    let teacher = t(&[0.0, LN3 as f32, 1.0, 2.0], &[2, 2]);
    let student = t(&[0.0, 0.0, 1.0, 2.0], &[2, 2]);
    // The second row is identical (KL 0): the mean over rows halves the first.
    close(&kd(&teacher, &student, 1.0), 0.130_812_035_941_137 / 2.0);
    // T = 2: p = [1, √3]/(1+√3), q = [1/2, 1/2]; T²·KL = 4·Σ p ln(2p) = 0.1453631315.
    close(&kd(&teacher, &student, 2.0), 0.145_363_131_481_894 / 2.0);
    close(&kd(&teacher, &teacher, 3.0), 0.0);
}

#[test]
fn cross_entropy_ignores_minus_100() {
    // Rows [0, ln 3] and [ln 3, 0] with label 1: −ln(3/4) and −ln(1/4); mean 0.8369882168.
    let logits = t(&[0.0, LN3 as f32, LN3 as f32, 0.0, 5.0, -5.0], &[3, 2]);
    let labels = Tensor::from_slice(&[1i64, 1, -100]);
    close(&cross_entropy(&logits, &labels), 0.836_988_216_785_835_8);
}

#[test]
fn hidden_cos_skips_padding() {
    // Token 1: [1,0] vs [0,1], cos 0 → 1. Token 2: [1,1] vs [2,2], cos 1 → 0. Token 3 is padding.
    let s = t(&[1.0, 0.0, 1.0, 1.0, 5.0, -3.0], &[1, 3, 2]);
    let te = t(&[0.0, 1.0, 2.0, 2.0, 1.0, 1.0], &[1, 3, 2]);
    let mask = Tensor::from_slice(&[1i64, 1, 0]).view([1, 3]);
    close(&hidden_cos(&s, &te, &mask), 0.5);
}

#[test]
fn pooled_cos_compares_mean_pooled_sentences() {
    // Sequence 1: tokens [1,0], [0,1], padding [9,9] → mean [0.5, 0.5]; teacher [1, 1]: cos 1
    // → 0. Sequence 2: one token [2, 0] (then padding) → [2, 0]; teacher [0, 3]: cos 0 → 1.
    // Mean over sequences: 0.5.
    let s = t(
        &[1.0, 0.0, 0.0, 1.0, 9.0, 9.0, 2.0, 0.0, 7.0, 7.0, 7.0, 7.0],
        &[2, 3, 2],
    );
    let mask = Tensor::from_slice(&[1i64, 1, 0, 1, 0, 0]).view([2, 3]);
    let pooled = mean_pool(&s, &mask);
    assert_eq!(
        Vec::<f32>::try_from(pooled.view([-1])).unwrap(),
        [0.5, 0.5, 2.0, 0.0]
    );
    close(
        &pooled_cos(&s, &t(&[1.0, 1.0, 0.0, 3.0], &[2, 2]), &mask),
        0.5,
    );
}

#[test]
fn hidden_mse_skips_padding() {
    // Squared errors: token 1 (0, 4), token 2 (9, 0); padding ignored: 13 / (2 tokens · 2 units).
    let s = t(&[1.0, 2.0, 3.0, 4.0, 9.0, 9.0], &[1, 3, 2]);
    let te = t(&[1.0, 0.0, 0.0, 4.0, 0.0, 0.0], &[1, 3, 2]);
    let mask = Tensor::from_slice(&[1i64, 1, 0]).view([1, 3]);
    close(&hidden_mse(&s, &te, &mask), 3.25);
}

#[test]
fn attention_mse_zeroes_padded_keys() {
    // Scores [[1,2],[3,4]] vs zeros, key 2 padded: entries 1, 0, 3, 0 → (1 + 9) / 4.
    let s = t(&[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    let te = Tensor::zeros([1, 1, 2, 2], tch::kind::FLOAT_CPU);
    let mask = Tensor::from_slice(&[1i64, 0]).view([1, 2]);
    close(&attention_mse(&s, &te, &mask), 2.5);
}

#[test]
fn attention_kl_over_keys_and_queries() {
    // Teacher rows: [0, ln 3] → [1/4, 3/4] and [0, 0] → [1/2, 1/2]; student uniform.
    // KL per query: 0.1308120359 and 0; mean over the two queries.
    let te = t(&[0.0, LN3 as f32, 0.0, 0.0], &[1, 1, 2, 2]);
    let s = Tensor::zeros([1, 1, 2, 2], tch::kind::FLOAT_CPU);
    let mask = Tensor::from_slice(&[1i64, 1]).view([1, 2]);
    close(&attention_kl(&s, &te, &mask), 0.130_812_035_941_137 / 2.0);
    // A third, padded key with wild scores changes nothing.
    let te3 = t(
        &[0.0, LN3 as f32, 50.0, 0.0, 0.0, -50.0, 9.0, 9.0, 9.0],
        &[1, 1, 3, 3],
    );
    let s3 = t(
        &[0.0, 0.0, -20.0, 0.0, 0.0, 30.0, 1.0, 2.0, 3.0],
        &[1, 1, 3, 3],
    );
    let mask3 = Tensor::from_slice(&[1i64, 1, 0]).view([1, 3]);
    close(
        &attention_kl(&s3, &te3, &mask3),
        0.130_812_035_941_137 / 2.0,
    );
}

#[test]
fn value_relation_by_hand() {
    // Teacher values [[0],[1]] (d = 1): V Vᵀ = [[0,0],[0,1]] → rows [1/2, 1/2] and
    // [1, e]/(1+e). Student values zero → both rows uniform. KL: 0 and Σ p ln(2p) with
    // p = (1, e)/(1+e) = 0.1109440717; mean over two queries 0.0554720358.
    let te = t(&[0.0, 1.0], &[1, 1, 2, 1]);
    let s = Tensor::zeros([1, 1, 2, 1], tch::kind::FLOAT_CPU);
    let mask = Tensor::from_slice(&[1i64, 1]).view([1, 2]);
    close(&value_relation(&s, &te, &mask), 0.055_472_035_835_863_67);
}

#[test]
fn losses_have_gradients_for_the_student() {
    let s = t(&[0.3, -0.2, 0.1, 0.4], &[2, 2]).set_requires_grad(true);
    let te = t(&[0.0, LN3 as f32, 1.0, 2.0], &[2, 2]);
    let loss = kd(&te, &s, 2.0);
    loss.backward();
    assert!(s.grad().abs().sum(tch::Kind::Float).double_value(&[]) > 0.0);
}

#[test]
fn kd_topk_tail_keeps_the_rest_of_the_vocabulary_as_one_outcome() {
    // T = 1. Teacher logits [ln 4, ln 2, ln 1, ln 1] → p = [1/2, 1/4, 1/8, 1/8]; top 2: ids
    // [0, 1], tail mass 1/4. Student logits all 0 → q = 1/4 each; q's tail = 1/2.
    // KL over {0, 1, tail} = 1/2 ln 2 + 1/4 ln 1 + 1/4 ln(1/2) = 1/4 ln 2 = 0.1732868.
    let teacher = t(&[4f32.ln(), 2f32.ln(), 0.0, 0.0], &[1, 4]);
    let student = t(&[0.0; 4], &[1, 4]);
    let ids = Tensor::from_slice(&[0i64, 1]).view([1, 2]);
    let logits = teacher.gather(-1, &ids, false);
    let tail = tail_log_mass(&teacher, &ids, 1.0);
    close(&tail, 0.25f64.ln());
    close(
        &kd_topk_tail(&ids, &logits, &tail, &student, 1.0),
        0.25 * std::f64::consts::LN_2,
    );
    // Its gradient in the student's logits: q_i − p_i on the kept classes (−1/4, 0), and
    // q_j − p_tail q_j / q_tail on the others (1/4 − 1/4 · 1/4 / (1/2) = 1/8 each).
    let s = student.copy().set_requires_grad(true);
    kd_topk_tail(&ids, &logits, &tail, &s, 1.0).backward();
    let g = Vec::<f32>::try_from(s.grad().view([-1])).unwrap();
    for (got, want) in g.iter().zip([-0.25f32, 0.0, 0.125, 0.125]) {
        assert!((got - want).abs() < 1e-6, "{g:?}");
    }
    // Every class kept: the tail is empty and this is plain KD, at any temperature.
    let all = Tensor::from_slice(&[2i64, 0, 3, 1]).view([1, 4]);
    let tail = tail_log_mass(&teacher, &all, 2.0);
    close(
        &kd_topk_tail(&all, &teacher.gather(-1, &all, false), &tail, &student, 2.0),
        kd(&teacher, &student, 2.0).double_value(&[]),
    );
}

#[test]
fn sampled_targets_store_the_draws_counts_and_follow_the_full_kd_in_expectation() {
    // Two rows over 6 classes at T = 2: p = softmax(teacher / 2), worked out below from the
    // logits, not from the code under test.
    let tl = [
        2.0f32, 1.0, 0.0, -1.0, 0.5, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0,
    ];
    let teacher = t(&tl, &[2, 6]);
    let p: Vec<Vec<f64>> = tl
        .chunks(6)
        .map(|r| {
            let e: Vec<f64> = r.iter().map(|&x| (x as f64 / 2.0).exp()).collect();
            let z: f64 = e.iter().sum();
            e.iter().map(|x| x / z).collect()
        })
        .collect();
    tch::manual_seed(7);
    let n = 400_000;
    let (ids, logits, tail) = sampled_targets(&teacher, n, 2.0);
    // Every class is drawn at these sizes: 6 slots of distinct ids, an empty tail.
    assert_eq!(ids.size(), [2, 6]);
    assert!(tail.max().double_value(&[]) <= -1e4);
    for r in 0..2 {
        let mut seen = [false; 6];
        let mut total = 0.0;
        for j in 0..6 {
            let id = ids.int64_value(&[r, j]) as usize;
            assert!(!seen[id]);
            seen[id] = true;
            // Stored T·ln(count): the count comes back, and is n·p within 5 standard deviations.
            let count = (logits.double_value(&[r, j]) / 2.0).exp();
            total += count;
            let (e, sd) = (
                n as f64 * p[r as usize][id],
                (n as f64 * p[r as usize][id]).sqrt(),
            );
            assert!(
                (count - e).abs() < 5.0 * sd + 1.0,
                "row {r} id {id}: {count} vs {e}"
            );
        }
        assert!((total - n as f64).abs() < 1e-3 * n as f64, "{total}");
    }
    // The loss on them is KL(empirical ‖ q), and its gradient that of the full KD, T (q − p)
    // per row over 2 rows, within the draws' noise.
    let student = t(
        &[0.0, 1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        &[2, 6],
    )
    .set_requires_grad(true);
    let loss = kd_topk_tail(&ids, &logits, &tail, &student, 2.0);
    let full = kd(&teacher, &student, 2.0).double_value(&[]);
    // (p̂ − p is about 1e-3 per class at this n; T² = 4 and ln q near −2 make the KLs differ by
    // about 0.01.)
    assert!(
        (loss.double_value(&[]) - full).abs() < 0.03,
        "{loss} vs {full}"
    );
    loss.backward();
    let g = student.grad();
    let sv = [
        0.0f64, 1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0,
    ];
    for r in 0..2 {
        let e: Vec<f64> = sv[r * 6..r * 6 + 6]
            .iter()
            .map(|x| (x / 2.0).exp())
            .collect();
        let z: f64 = e.iter().sum();
        for c in 0..6 {
            let want = 2.0 * (e[c] / z - p[r][c]) / 2.0;
            let got = g.double_value(&[r as i64, c as i64]);
            assert!(
                (got - want).abs() < 5e-3,
                "row {r} class {c}: {got} vs {want}"
            );
        }
    }
    // A few draws: fewer distinct ids than slots, the rest unused (probability 0).
    tch::manual_seed(1);
    let (ids, logits, _) = sampled_targets(&t(&[9.0, 0.0, 0.0, 0.0], &[1, 4]), 3, 1.0);
    assert_eq!(ids.int64_value(&[0, 0]), 0);
    assert!(
        (logits.double_value(&[0, 0]) - 3f64.ln()).abs() < 1e-6,
        "{logits}"
    );
    assert_eq!(logits.double_value(&[0, 1]), UNUSED_SLOT);
}

#[test]
fn pooled_mse_averages_over_sequences_and_units() {
    // Squared differences 0, 4 (row 1) and 9, 16 (row 2): 29 / 4.
    let s = t(&[1.0, 2.0, 0.0, 0.0], &[2, 2]);
    let te = t(&[1.0, 0.0, 3.0, 4.0], &[2, 2]);
    close(&pooled_mse(&s, &te), 7.25);
}

/// Student sentences [1,0], [0,1], [1,1]: cosines (1,2) 0, (1,3) and (2,3) 1/√2.
/// Teacher sentences [1,0], [2,0], [0,3]: cosines (1,2) 1, (1,3) 0, (2,3) 0.
fn relational_pair() -> (Tensor, Tensor) {
    (
        t(&[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], &[3, 2]),
        t(&[1.0, 0.0, 2.0, 0.0, 0.0, 3.0], &[3, 2]),
    )
}

#[test]
fn cosine_matrix_is_the_pairwise_cosines() {
    let (s, _) = relational_pair();
    let m = Vec::<f32>::try_from(cosine_matrix(&s).view([-1])).unwrap();
    let r = std::f32::consts::FRAC_1_SQRT_2;
    let want = [1.0, 0.0, r, 0.0, 1.0, r, r, r, 1.0];
    for (g, w) in m.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{m:?}");
    }
}

#[test]
fn similarity_mse_compares_off_diagonal_cosines() {
    // Off-diagonal differences: (1,2) 0 − 1, (1,3) and (2,3) 1/√2 − 0; squared 1, ½, ½, each
    // twice (the matrix is symmetric): 4 over the 3·2 off-diagonal entries.
    let (s, te) = relational_pair();
    close(&similarity(&s, &te, Relation::Mse, 1.0), 4.0 / 6.0);
    // Widths may differ: the teacher's sentences padded with a zero unit change nothing.
    let wide = Tensor::cat(&[te.shallow_clone(), te.zeros_like().narrow(1, 0, 1)], 1);
    close(&similarity(&s, &wide, Relation::Mse, 1.0), 4.0 / 6.0);
    close(&similarity(&te, &te, Relation::Mse, 1.0), 0.0);
    // One sentence has no pair.
    close(
        &similarity(&s.narrow(0, 0, 1), &te.narrow(0, 0, 1), Relation::Mse, 1.0),
        0.0,
    );
}

/// `teacher.combine: targets`, by hand. Teacher A: e1, e2, (e1 + e2)/√2 (pair cosines
/// (1,2) 0, (1,3) r, (2,3) r with r = 1/√2); teacher B: e1, 2·e1, e2 (1, 0, 0); weights
/// 3 and 1. The combined pair cosines are 3/4·A + 1/4·B: 1/4, 3r/4, 3r/4.
#[test]
fn several_teachers_combine_into_one_target() {
    let r = std::f64::consts::FRAC_1_SQRT_2;
    let a = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, r as f32, r as f32]).view([3, 2]);
    let b = Tensor::from_slice(&[1.0f32, 0.0, 2.0, 0.0, 0.0, 1.0]).view([3, 2]);
    let parts = [(a.shallow_clone(), 3.0), (b.shallow_clone(), 1.0)];
    let m = weighted_cosine_matrix(&parts);
    let want = [
        1.0,
        0.25,
        0.75 * r,
        0.25,
        1.0,
        0.75 * r,
        0.75 * r,
        0.75 * r,
        1.0,
    ];
    let got = Vec::<f32>::try_from(m.view([-1])).unwrap();
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() < 1e-6, "{got:?}");
    }
    // The same weights 6 and 2: shares, not amounts.
    let six = weighted_cosine_matrix(&[(a.shallow_clone(), 6.0), (b.shallow_clone(), 2.0)]);
    assert!(f64::try_from((&six - &m).abs().max()).unwrap() < 1e-7);

    // A student e1, e2, e1 (pair cosines 0, 1, 0) against the combined matrix, mse form:
    // each pair twice over the 6 off-diagonal entries: (0 − 1/4)² + (1 − 3r/4)² + (3r/4)²,
    // over 3.
    let s = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0]).view([3, 2]);
    let q = 0.75 * r;
    let want = (0.0625 + (1.0 - q) * (1.0 - q) + q * q) / 3.0;
    close(&relation(&cosine_matrix(&s), &m, Relation::Mse, 1.0), want);
    // ... which is not the weighted mean of the losses against each (3/4 of (1 − r)² + r²
    // over 3, plus 1/4 of 2 over 3), and is below it (Jensen).
    let each = 0.75 * ((1.0 - r) * (1.0 - r) + 0.5) / 3.0 + 0.25 * 2.0 / 3.0;
    let mean_of_losses = 0.75 * similarity(&s, &a, Relation::Mse, 1.0).double_value(&[])
        + 0.25 * similarity(&s, &b, Relation::Mse, 1.0).double_value(&[]);
    assert!((mean_of_losses - each).abs() < 1e-6);
    assert!(want < each - 0.1);

    // Side by side: unit rows scaled by √(3/4) and √(1/4), 2 + 2 wide, whose cosines are
    // the combined matrix; the first sentence is (√3/2, 0, 1/2, 0).
    let cat = weighted_concat(&parts);
    assert_eq!(cat.size(), [3, 4]);
    let row = Vec::<f32>::try_from(cat.get(0)).unwrap();
    let want_row = [0.75f64.sqrt(), 0.0, 0.5, 0.0];
    for (g, w) in row.iter().zip(want_row) {
        assert!((*g as f64 - w).abs() < 1e-6, "{row:?}");
    }
    let back = Vec::<f32>::try_from(cosine_matrix(&cat).view([-1])).unwrap();
    for (g, w) in back.iter().zip(got.iter()) {
        assert!((g - w).abs() < 1e-6, "{back:?}");
    }
    // pooled_cos of a student (1, 0, 0, 0) for every sentence: the rows are (√3/2, 0, 1/2, 0),
    // (0, √3/2, 1/2, 0) and (√3/2·r, √3/2·r, 0, 1/2), unit length, so the cosines are their
    // first coordinates; the loss is 1 − their mean.
    let st = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 0.0])
        .view([1, 4])
        .repeat([3, 1]);
    let c = [0.75f64.sqrt(), 0.0, 0.75f64.sqrt() * r];
    close(&embedding_cos(&st, &cat), 1.0 - (c[0] + c[1] + c[2]) / 3.0);
}

#[test]
fn similarity_pearson_correlates_the_pairs_cosines() {
    // Pairs (1,2), (1,3), (2,3): student cosines [0, r, r] (r = 1/√2), teacher [1, 0, 0].
    // Centred: [−2r/3, r/3, r/3] and [2/3, −1/3, −1/3], exactly opposed: correlation −1,
    // loss 2.
    let (s, te) = relational_pair();
    close(&similarity(&s, &te, Relation::Pearson, 1.0), 2.0);
    close(&similarity(&te, &te, Relation::Pearson, 1.0), 0.0);
    // Student rows (1, 0), (1, 0.2), (0, 1): pair cosines [c, 0, s'] with c = 1/√1.04,
    // s' = 0.2/√1.04, against the teacher's [1, 0, 0], by hand.
    let st = t(&[1.0, 0.0, 1.0, 0.2, 0.0, 1.0], &[3, 2]);
    let (c, sn) = (1.0 / 1.04f64.sqrt(), 0.2 / 1.04f64.sqrt());
    let m = (c + sn) / 3.0;
    let x = [c - m, -m, sn - m];
    let y = [2.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0];
    let dot: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
    let nx = x.iter().map(|a| a * a).sum::<f64>().sqrt();
    let ny = y.iter().map(|a| a * a).sum::<f64>().sqrt();
    close(
        &similarity(&st, &te, Relation::Pearson, 1.0),
        1.0 - dot / (nx * ny),
    );
    // Two sentences are one pair: no correlation, 0.
    close(
        &similarity(
            &s.narrow(0, 0, 2),
            &te.narrow(0, 0, 2),
            Relation::Pearson,
            1.0,
        ),
        0.0,
    );
}

#[test]
fn similarity_kl_over_rows_without_the_diagonal() {
    // τ = 1. Row 1 over sentences (2, 3): teacher logits [1, 0] → p = [e, 1]/(e + 1);
    // student [0, 1/√2] → q = [1, a]/(1 + a), a = e^{1/√2}. KL = Σ p ln(p/q) = 0.3355668960.
    // Row 2 over (1, 3): the same numbers. Row 3 over (1, 2): teacher [0, 0], student
    // [1/√2, 1/√2], both uniform: 0. Mean 2·0.3355668960/3 = 0.2237112640.
    let (s, te) = relational_pair();
    close(
        &similarity(&s, &te, Relation::Kl, 1.0),
        0.223_711_263_984_239_9,
    );
    // τ = ½ doubles every logit: KL per row 1.0979230399, mean 0.7319486932.
    close(
        &similarity(&s, &te, Relation::Kl, 0.5),
        0.731_948_693_246_300_1,
    );
}

#[test]
fn mixture_averages_the_teachers_soft_targets() {
    // Teacher A [0, ln 3] → [1/4, 3/4] at weight 3; teacher B [ln 3, 0] → [3/4, 1/4] at
    // weight 1. Their mean: 3/4·[1/4, 3/4] + 1/4·[3/4, 1/4] = [3/8, 5/8].
    let a = t(&[0.0, LN3 as f32], &[1, 2]);
    let b = t(&[LN3 as f32, 0.0], &[1, 2]);
    let mix = mixture(&[(a.shallow_clone(), 3.0), (b.shallow_clone(), 1.0)], 1.0);
    let p = Vec::<f32>::try_from(mix.softmax(-1, tch::Kind::Float).view([-1])).unwrap();
    assert!(
        (p[0] - 0.375).abs() < 1e-6 && (p[1] - 0.625).abs() < 1e-6,
        "{p:?}"
    );
    // Student [0, 0] → [1/2, 1/2]: KL = 3/8 ln(3/4) + 5/8 ln(5/4) = 0.0315839424.
    let student = t(&[0.0, 0.0], &[1, 2]);
    close(&kd(&mix, &student, 1.0), 0.031_583_942_401_963);
    // T = 2: A → [1, √3]/(1+√3), B reversed; the mean [0.4330127, 0.5669873], and
    // T²·KL = 4·Σ p ln(2p) = 0.0360065546.
    let mix2 = mixture(&[(a.shallow_clone(), 3.0), (b.shallow_clone(), 1.0)], 2.0);
    close(&kd(&mix2, &student, 2.0), 0.036_006_554_563_609);
    // Only the weights' ratio counts; one teacher alone is itself (to a constant).
    let mix6 = mixture(&[(a.shallow_clone(), 6.0), (b.shallow_clone(), 2.0)], 2.0);
    close(&kd(&mix6, &student, 2.0), 0.036_006_554_563_609);
    close(
        &kd(&mixture(&[(a.shallow_clone(), 5.0)], 2.0), &a, 2.0),
        0.0,
    );
    // The student's gradient against the mean is the weighted mean of its gradients
    // against each teacher (the KL's teacher entropy does not depend on the student).
    let grad = |target: &Tensor| {
        let s = t(&[0.3, -0.2], &[1, 2]).set_requires_grad(true);
        kd(target, &s, 2.0).backward();
        Vec::<f32>::try_from(s.grad().view([-1])).unwrap()
    };
    let (gm, ga, gb) = (grad(&mix2), grad(&a), grad(&b));
    for i in 0..2 {
        let want = 0.75 * ga[i] + 0.25 * gb[i];
        assert!((gm[i] - want).abs() < 1e-6, "{gm:?} against {want}");
    }
}
