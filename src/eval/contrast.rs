//! The walkthrough that started destila: a static word vector cannot tell "posto" (a job)
//! from "posto" (a filling station); a contextual BERT embedding can.

use crate::embed::{cosine, Embedder, Pooling};
use crate::error::Result;

pub const POSTO_A: &str = "Ele ocupa um alto posto na empresa";
pub const POSTO_B: &str = "Abasteci meu carro no posto do alto do morro";
pub const POSTO_WORD: &str = "posto";

/// Cosine similarities between two texts (and one word shared by them) under each kind of
/// embedding.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Contrast {
    pub text_a: String,
    pub text_b: String,
    pub word: String,
    /// The word's static vectors (rows of the input embedding table, mean over its pieces).
    pub word_static: f64,
    /// The word's last-layer vectors in each sentence.
    pub word_contextual: f64,
    /// Mean of each sentence's static word-piece vectors.
    pub sentence_static: f64,
    pub sentence_mean: f64,
    pub sentence_cls: f64,
}

pub fn contrast(e: &Embedder, a: &str, b: &str, word: &str) -> Result<Contrast> {
    let (sa, ca) = e.word_vectors(a, word)?;
    let (sb, cb) = e.word_vectors(b, word)?;
    let texts = [a, b];
    let stat = e.embed_static(&texts)?;
    let mean = e.embed(&texts, Pooling::Mean, 2)?;
    let cls = e.embed(&texts, Pooling::Cls, 2)?;
    let pair = |t: &tch::Tensor| cosine(&t.get(0), &t.get(1));
    Ok(Contrast {
        text_a: a.into(),
        text_b: b.into(),
        word: word.into(),
        word_static: cosine(&sa, &sb),
        word_contextual: cosine(&ca, &cb),
        sentence_static: pair(&stat),
        sentence_mean: pair(&mean),
        sentence_cls: pair(&cls),
    })
}

impl std::fmt::Display for Contrast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "A: {}", self.text_a)?;
        writeln!(f, "B: {}", self.text_b)?;
        writeln!(f, "{:<44} {:>10}", "cosine similarity of A and B", "cos")?;
        let rows = [
            (
                format!("word {:?}, static (embedding-table rows)", self.word),
                self.word_static,
            ),
            (
                format!("word {:?}, contextual (last layer)", self.word),
                self.word_contextual,
            ),
            (
                "sentence, static (mean of word vectors)".to_string(),
                self.sentence_static,
            ),
            (
                "sentence, contextual (mean pooling)".to_string(),
                self.sentence_mean,
            ),
            (
                "sentence, contextual ([CLS])".to_string(),
                self.sentence_cls,
            ),
        ];
        for (name, v) in rows {
            writeln!(f, "{name:<44} {v:>10.4}")?;
        }
        Ok(())
    }
}

/// Several models' contrasts of the same two texts, a row per model (named by `rows.0`):
/// the word's static and contextual cosines, and the sentences' mean-pooled cosine. A lower
/// contextual cosine keeps the word's two senses further apart.
pub fn table(rows: &[(String, Contrast)]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if let Some((_, c)) = rows.first() {
        let _ = writeln!(s, "A: {}\nB: {}", c.text_a, c.text_b);
        let _ = writeln!(
            s,
            "cosine of A and B: word {:?} static / contextual (last layer), sentence (mean pooling)",
            c.word
        );
    }
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(5).max(5);
    let _ = writeln!(
        s,
        "{:<width$}  {:>11} {:>11} {:>9}",
        "model", "word static", "contextual", "sentence"
    );
    for (name, c) in rows {
        let _ = writeln!(
            s,
            "{name:<width$}  {:>11.4} {:>11.4} {:>9.4}",
            c.word_static, c.word_contextual, c.sentence_mean
        );
    }
    s
}
