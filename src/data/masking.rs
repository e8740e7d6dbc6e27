//! Masked-LM masking as BERT's `create_masked_lm_predictions`: `mlm_probability` of the
//! non-special tokens (rounded, at least one, at most `max_predictions`) are chosen, whole
//! words at a time with whole-word masking; each chosen token becomes [MASK] (80%), a random
//! token (10%) or stays (10%).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

#[derive(Debug, Clone)]
pub struct MaskParams {
    pub mlm_probability: f64,
    pub max_predictions: Option<usize>,
    pub whole_word: bool,
    pub mask_id: u32,
    pub vocab_size: u32,
    pub special_ids: Vec<u32>,
    /// Per vocabulary id: is it a "##" continuation piece (used by whole-word masking).
    pub continuation: Vec<bool>,
}

impl MaskParams {
    fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    fn random_token(&self, rng: &mut StdRng) -> u32 {
        loop {
            let id = rng.random_range(0..self.vocab_size);
            if !self.is_special(id) {
                return id;
            }
        }
    }
}

/// Masks `ids` in place; returns the masked positions (ascending) and their original ids.
pub fn mask(ids: &mut [u32], p: &MaskParams, rng: &mut StdRng) -> Vec<(usize, u32)> {
    // Candidate words: runs of positions, a word piece joined to the word before it.
    let mut words: Vec<Vec<usize>> = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if p.is_special(id) {
            continue;
        }
        let cont = p.whole_word && p.continuation.get(id as usize).copied().unwrap_or(false);
        match words.last_mut() {
            Some(w) if cont && w.last() == Some(&(i - 1)) => w.push(i),
            _ => words.push(vec![i]),
        }
    }
    let candidates: usize = words.iter().map(Vec::len).sum();
    if candidates == 0 {
        return Vec::new();
    }
    let mut want = ((candidates as f64) * p.mlm_probability).round().max(1.0) as usize;
    if let Some(cap) = p.max_predictions {
        want = want.min(cap);
    }
    words.shuffle(rng);
    let mut chosen: Vec<usize> = Vec::with_capacity(want);
    for w in &words {
        if chosen.len() >= want {
            break;
        }
        if chosen.len() + w.len() > want {
            continue;
        }
        chosen.extend_from_slice(w);
    }
    chosen.sort_unstable();
    let mut out = Vec::with_capacity(chosen.len());
    for &i in &chosen {
        let original = ids[i];
        if rng.random::<f64>() < 0.8 {
            ids[i] = p.mask_id;
        } else if rng.random::<f64>() < 0.5 {
            // Kept as it is.
        } else {
            ids[i] = p.random_token(rng);
        }
        out.push((i, original));
    }
    out
}
