//! `destila data stats`: documents, sentences, tokens and length histograms of a corpus,
//! read from its shard cache.

use serde::Serialize;

use super::shards::Corpus;

/// Upper bounds of the histogram bins (tokens per sentence, sentences per document).
pub const BINS: [usize; 9] = [4, 8, 16, 32, 64, 128, 256, 512, usize::MAX];

#[derive(Debug, Serialize)]
pub struct Stats {
    pub files: usize,
    pub text_bytes: u64,
    pub documents: u64,
    pub sentences: u64,
    pub tokens: u64,
    pub tokens_per_sentence: f64,
    pub sentences_per_document: f64,
    /// Sentences by length in tokens: (upper bound, count).
    pub sentence_lengths: Vec<(String, u64)>,
    /// Documents by length in sentences.
    pub document_lengths: Vec<(String, u64)>,
    pub warnings: Vec<String>,
    pub cache: String,
}

fn histogram(values: impl Iterator<Item = usize>) -> Vec<(String, u64)> {
    let mut counts = [0u64; BINS.len()];
    for v in values {
        let i = BINS
            .iter()
            .position(|&b| v <= b)
            .expect("last bin is unbounded");
        counts[i] += 1;
    }
    let mut lo = 1;
    BINS.iter()
        .zip(counts)
        .map(|(&hi, c)| {
            let label = if hi == usize::MAX {
                format!("{lo}+")
            } else {
                format!("{lo}-{hi}")
            };
            lo = hi.saturating_add(1);
            (label, c)
        })
        .collect()
}

pub fn stats(corpus: &Corpus) -> Stats {
    let m = &corpus.manifest;
    let docs = corpus.num_documents();
    let sentence_lengths = histogram(
        (0..docs)
            .flat_map(|d| (0..corpus.num_sentences(d)).map(move |i| (d, i)))
            .map(|(d, i)| corpus.sentence_len(d, i)),
    );
    let document_lengths = histogram((0..docs).map(|d| corpus.num_sentences(d)));
    Stats {
        files: m.files.len(),
        text_bytes: m.text_bytes,
        documents: m.documents,
        sentences: m.sentences,
        tokens: m.tokens,
        tokens_per_sentence: m.tokens as f64 / m.sentences.max(1) as f64,
        sentences_per_document: m.sentences as f64 / m.documents.max(1) as f64,
        sentence_lengths,
        document_lengths,
        warnings: m.warnings.clone(),
        cache: corpus.dir.display().to_string(),
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "files        {} ({} bytes of text)",
            self.files, self.text_bytes
        )?;
        writeln!(f, "documents    {}", self.documents)?;
        writeln!(
            f,
            "sentences    {} ({:.1} per document)",
            self.sentences, self.sentences_per_document
        )?;
        writeln!(
            f,
            "tokens       {} ({:.1} per sentence)",
            self.tokens, self.tokens_per_sentence
        )?;
        let bar =
            |c: u64, max: u64| "#".repeat(((c as f64 / max.max(1) as f64) * 40.0).round() as usize);
        for (title, h) in [
            ("sentence length (tokens)", &self.sentence_lengths),
            ("document length (sentences)", &self.document_lengths),
        ] {
            writeln!(f, "{title}")?;
            let max = h.iter().map(|x| x.1).max().unwrap_or(1);
            for (label, c) in h {
                writeln!(f, "  {label:>9} {c:>10} {}", bar(*c, max))?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning      {w}")?;
        }
        writeln!(f, "cache        {}", self.cache)
    }
}
