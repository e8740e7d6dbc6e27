//! Statistics for comparing two embedding spaces: Pearson and Spearman correlation, linear
//! CKA (Kornblith et al., 2019), nearest-neighbour overlap.

use tch::{Kind, Tensor};

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len()) as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Ranks from 1, ties given their average rank.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Linear CKA between two representations of the same n items: X [n, d1], Y [n, d2].
pub fn linear_cka(x: &Tensor, y: &Tensor) -> f64 {
    let center = |t: &Tensor| {
        let t = t.to_kind(Kind::Double);
        &t - t.mean_dim(0, true, Kind::Double)
    };
    let (x, y) = (center(x), center(y));
    let cross = y.transpose(0, 1).matmul(&x).square().sum(Kind::Double);
    let xx = x
        .transpose(0, 1)
        .matmul(&x)
        .square()
        .sum(Kind::Double)
        .sqrt();
    let yy = y
        .transpose(0, 1)
        .matmul(&y)
        .square()
        .sum(Kind::Double)
        .sqrt();
    (cross / (xx * yy)).double_value(&[])
}

/// The upper triangle (i < j) of a square matrix, row by row.
pub fn upper_triangle(m: &Tensor) -> Vec<f64> {
    let n = m.size()[0];
    let m = m.to_kind(Kind::Double);
    let flat: Vec<f64> = Vec::try_from(m.flatten(0, -1)).expect("double matrix");
    let mut out = Vec::with_capacity((n * (n - 1) / 2) as usize);
    for i in 0..n as usize {
        for j in i + 1..n as usize {
            out.push(flat[i * n as usize + j]);
        }
    }
    out
}

/// Mean over items of |kNN_a(i) ∩ kNN_b(i)| / k, neighbours by similarity (self excluded).
pub fn knn_overlap(sim_a: &Tensor, sim_b: &Tensor, k: i64) -> f64 {
    let n = sim_a.size()[0];
    let k = k.min(n - 1);
    if k <= 0 {
        return f64::NAN;
    }
    let eye = Tensor::eye(n, (Kind::Double, sim_a.device())) * 1e9;
    let top = |s: &Tensor| -> Vec<Vec<i64>> {
        let (_, idx) = (s.to_kind(Kind::Double) - &eye).topk(k, 1, true, true);
        (0..n)
            .map(|i| Vec::try_from(idx.get(i)).expect("indices"))
            .collect()
    };
    let (a, b) = (top(sim_a), top(sim_b));
    let total: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().filter(|i| y.contains(i)).count() as f64 / k as f64)
        .sum();
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // Perfect and perfectly reversed monotone relations.
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 25.0, 100.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Ties share the average rank: [1, 2.5, 2.5, 4].
        assert_eq!(ranks(&[1.0, 5.0, 5.0, 9.0]), [1.0, 2.5, 2.5, 4.0]);
        // x = [1,2,3], y = [1,3,2]: covariance 0.5·2/…: r = 0.5.
        assert!((pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
        // CKA is 1 for a rotated and scaled copy, and invariant to it.
        let x = Tensor::from_slice(&[1.0f64, 0.0, 0.0, 2.0, 3.0, 1.0, -1.0, 4.0]).view([4, 2]);
        let rot = Tensor::from_slice(&[0.0f64, -3.0, 3.0, 0.0]).view([2, 2]);
        assert!((linear_cka(&x, &x.matmul(&rot)) - 1.0).abs() < 1e-9);
        // kNN overlap of a matrix with itself is 1.
        let s = x.matmul(&x.transpose(0, 1));
        assert_eq!(knn_overlap(&s, &s, 2), 1.0);
    }
}
