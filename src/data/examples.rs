//! NSP examples made as BERT's `create_pretraining_data.py` (google-research/bert,
//! `create_instances_from_document`) made them: consecutive sentences packed up to
//! `max_seq_len - 3` tokens (a shorter target with `short_seq_prob`), split at a random
//! sentence boundary into A and B; B replaced by text from another document (NotNext) with
//! `nsp_probability`; longest-first truncation from a random end.
//!
//! Sentences longer than `max_seq_len - 3` tokens are taken as several consecutive
//! segments of at most that length (BERT would truncate them), so a text without sentence
//! punctuation, even one enormous line, still yields examples throughout.
//!
//! One change: BERT forces NotNext when a chunk holds a single sentence, which tilts the
//! labels towards NotNext on corpora of short documents. Here such a chunk, when the coin
//! says IsNext, is split inside the sentence, so B is still the true continuation and the
//! label ratio stays at `nsp_probability`.

use rand::rngs::StdRng;
use rand::Rng;

use super::config::ExampleFormat;
use super::shards::Corpus;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub a: Vec<u32>,
    pub b: Vec<u32>,
    /// NotNext: B comes from another document.
    pub is_random_next: bool,
}

impl Example {
    /// Tokens with [CLS] A [SEP] B [SEP], or [CLS] A [SEP] for a single sentence (B empty).
    pub fn len(&self) -> usize {
        if self.b.is_empty() {
            self.a.len() + 2
        } else {
            self.a.len() + self.b.len() + 3
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ExampleParams {
    pub max_seq_len: usize,
    pub short_seq_prob: f64,
    pub nsp_probability: f64,
    pub format: ExampleFormat,
}

/// Removes tokens from the longer segment, from its front or back at random, until the
/// pair fits (BERT's `truncate_seq_pair`; the removals are counted first and applied once).
pub fn truncate_pair(a: &mut Vec<u32>, b: &mut Vec<u32>, max_tokens: usize, rng: &mut StdRng) {
    let (mut la, mut lb) = (a.len(), b.len());
    let (mut a_front, mut b_front) = (0usize, 0usize);
    while la + lb > max_tokens {
        let front = rng.random::<f64>() < 0.5;
        if la > lb {
            la -= 1;
            a_front += front as usize;
        } else {
            lb -= 1;
            b_front += front as usize;
        }
    }
    for (v, keep, front) in [(a, la, a_front), (b, lb, b_front)] {
        v.drain(..front);
        v.truncate(keep);
    }
}

/// A document's segments: (sentence, first token, end token), sentences longer than
/// `max_tokens` cut into consecutive pieces.
fn segments(corpus: &Corpus, doc: usize, max_tokens: usize) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::with_capacity(corpus.num_sentences(doc));
    for i in 0..corpus.num_sentences(doc) {
        let len = corpus.sentence_len(doc, i);
        let mut start = 0;
        while start < len {
            let end = (start + max_tokens).min(len);
            out.push((i as u32, start as u32, end as u32));
            start = end;
        }
    }
    out
}

fn fetch(corpus: &Corpus, doc: usize, seg: (u32, u32, u32), out: &mut Vec<u32>) {
    corpus.sentence_part(doc, seg.0 as usize, seg.1 as usize, seg.2 as usize, out);
}

/// Appends the examples of document `docs[pos]` to `out`. `docs` are the documents NotNext
/// segments may be drawn from.
pub fn from_document(
    corpus: &Corpus,
    docs: &[u32],
    pos: usize,
    p: &ExampleParams,
    rng: &mut StdRng,
    out: &mut Vec<Example>,
) {
    let doc = docs[pos] as usize;
    if p.format == ExampleFormat::Sentences {
        // One example per sentence (a longer one as consecutive pieces), B empty.
        for seg in segments(corpus, doc, p.max_seq_len - 2) {
            let mut a = Vec::new();
            fetch(corpus, doc, seg, &mut a);
            if !a.is_empty() {
                out.push(Example {
                    a,
                    b: Vec::new(),
                    is_random_next: false,
                });
            }
        }
        return;
    }
    let max_tokens = p.max_seq_len - 3;
    let segs = segments(corpus, doc, max_tokens);
    let n = segs.len();
    let mut target = max_tokens;
    if rng.random::<f64>() < p.short_seq_prob {
        target = rng.random_range(2..=max_tokens);
    }
    let mut chunk: Vec<Vec<u32>> = Vec::new();
    let mut chunk_len = 0usize;
    let mut i = 0usize;
    while i < n {
        let mut s = Vec::new();
        fetch(corpus, doc, segs[i], &mut s);
        chunk_len += s.len();
        chunk.push(s);
        if i == n - 1 || chunk_len >= target {
            let a_end = if chunk.len() >= 2 {
                rng.random_range(1..chunk.len())
            } else {
                1
            };
            let mut a: Vec<u32> = chunk[..a_end].concat();
            let mut b: Vec<u32> = Vec::new();
            let coin = rng.random::<f64>() < p.nsp_probability;
            let can_draw = docs.len() > 1;
            let is_random_next;
            if (coin || (chunk.len() == 1 && a.len() < 2)) && can_draw {
                is_random_next = true;
                let target_b = target.saturating_sub(a.len()).max(1);
                let mut other = doc;
                for _ in 0..10 {
                    other = docs[rng.random_range(0..docs.len())] as usize;
                    if other != doc {
                        break;
                    }
                }
                let other_segs = segments(corpus, other, max_tokens);
                let start = rng.random_range(0..other_segs.len());
                for &seg in &other_segs[start..] {
                    fetch(corpus, other, seg, &mut b);
                    if b.len() >= target_b {
                        break;
                    }
                }
                // The unused sentences of this chunk are revisited.
                i -= chunk.len() - a_end;
            } else {
                is_random_next = false;
                if chunk.len() >= 2 {
                    b = chunk[a_end..].concat();
                } else if a.len() >= 2 {
                    let k = rng.random_range(1..a.len());
                    b = a.split_off(k);
                }
            }
            truncate_pair(&mut a, &mut b, max_tokens, rng);
            if !a.is_empty() && !b.is_empty() {
                out.push(Example {
                    a,
                    b,
                    is_random_next,
                });
            }
            chunk.clear();
            chunk_len = 0;
        }
        i += 1;
    }
}
