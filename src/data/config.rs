//! The `data:` section of a recipe: where the text is, how documents and sentences are
//! found, and how examples are made (BERT's create_pretraining_data defaults).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Documents {
    /// A whole file is one document.
    File,
    /// Blocks separated by blank lines are documents.
    BlankLine,
    /// Each line is a document.
    Line,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Sentences {
    /// UAX #29 sentence boundaries with abbreviation fixes; hard-wrapped lines are joined.
    Split,
    /// Each line is a sentence (BERT's own input format).
    Line,
}

/// What one training example holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ExampleFormat {
    /// BERT's: [CLS] A [SEP] B [SEP], B the true continuation or from another document.
    Pairs,
    /// One sentence: [CLS] S [SEP] (no NSP label), the input a sentence embedder sees.
    Sentences,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InvalidUtf8 {
    /// Stop with the file and byte offset.
    Error,
    /// Replace invalid bytes with U+FFFD.
    Replace,
}

/// How text becomes documents and sentences (part of the shard cache's fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextOptions {
    pub documents: Documents,
    pub sentences: Sentences,
    pub invalid_utf8: InvalidUtf8,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            documents: Documents::BlankLine,
            sentences: Sentences::Split,
            invalid_utf8: InvalidUtf8::Error,
        }
    }
}

fn d_documents() -> Documents {
    Documents::BlankLine
}
fn d_sentences() -> Sentences {
    Sentences::Split
}
fn d_invalid() -> InvalidUtf8 {
    InvalidUtf8::Error
}
fn d_examples() -> ExampleFormat {
    ExampleFormat::Pairs
}
fn d_max_seq_len() -> usize {
    128
}
fn d_short_seq_prob() -> f64 {
    0.1
}
fn d_half() -> f64 {
    0.5
}
fn d_mlm_probability() -> f64 {
    0.15
}
fn d_shuffle_buffer() -> usize {
    10_000
}
fn d_cache_dir() -> PathBuf {
    PathBuf::from(".cache/shards")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Files, folders and glob patterns of UTF-8 text.
    pub train: Vec<String>,
    /// Mixing weights, one per `train` entry: each entry's share of the training tokens
    /// (its documents repeated or thinned to match; 0 leaves an entry out). Empty: every
    /// entry in its natural proportion.
    #[serde(default)]
    pub weights: Vec<f64>,
    /// Held-out text; when absent, `validation_fraction` of the training documents.
    #[serde(default)]
    pub validation: Vec<String>,
    #[serde(default)]
    pub validation_fraction: f64,
    #[serde(default = "d_documents")]
    pub documents: Documents,
    #[serde(default = "d_sentences")]
    pub sentences: Sentences,
    #[serde(default = "d_invalid")]
    pub invalid_utf8: InvalidUtf8,
    /// A checkpoint folder whose tokenizer to use (default: the teacher's).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// `pairs` (NSP examples, BERT's) or `sentences` (one sentence per example).
    #[serde(default = "d_examples")]
    pub examples: ExampleFormat,
    #[serde(default = "d_max_seq_len")]
    pub max_seq_len: usize,
    #[serde(default = "d_short_seq_prob")]
    pub short_seq_prob: f64,
    /// Probability that segment B comes from another document (NotNext).
    #[serde(default = "d_half")]
    pub nsp_probability: f64,
    #[serde(default = "d_mlm_probability")]
    pub mlm_probability: f64,
    /// Cap on masked positions per sequence (BERT used 20 at length 128); none by default.
    #[serde(default)]
    pub max_predictions: Option<usize>,
    #[serde(default)]
    pub whole_word_masking: bool,
    /// Examples held and drawn from at random, mixing neighbouring documents.
    #[serde(default = "d_shuffle_buffer")]
    pub shuffle_buffer: usize,
    /// Sort examples by length within windows of this many batches (0: off).
    #[serde(default)]
    pub length_bucketing: usize,
    #[serde(default = "d_cache_dir")]
    pub cache_dir: PathBuf,
}

/// Upper bounds of the data sizes a recipe may ask for (sequences, batches in a
/// bucketing window, examples in the shuffle buffer).
pub const MAX_SEQ_LEN: usize = 1 << 16;
pub const MAX_WINDOW_BATCHES: usize = 1 << 12;
pub const MAX_SHUFFLE_BUFFER: usize = 1 << 22;

impl DataConfig {
    pub fn text_options(&self) -> TextOptions {
        TextOptions {
            documents: self.documents,
            sentences: self.sentences,
            invalid_utf8: self.invalid_utf8,
        }
    }

    /// Checks values; `Err((field, message))` with the field relative to `data`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        if self.train.is_empty() {
            return err(
                "train",
                "at least one file, folder or glob is needed".into(),
            );
        }
        if !self.weights.is_empty() {
            if self.weights.len() != self.train.len() {
                return err(
                    "weights",
                    format!(
                        "{} weights for {} train entries: give one per entry",
                        self.weights.len(),
                        self.train.len()
                    ),
                );
            }
            if let Some((i, w)) = self
                .weights
                .iter()
                .enumerate()
                .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
            {
                return err(
                    &format!("weights[{i}]"),
                    format!("{w} must be a finite number, 0 or more"),
                );
            }
            if self.weights.iter().all(|w| *w == 0.0) {
                return err("weights", "every weight is 0: nothing to train on".into());
            }
        }
        if self.max_seq_len < 8 {
            return err(
                "max_seq_len",
                format!("{} is too short (at least 8)", self.max_seq_len),
            );
        }
        for (f, p) in [
            ("short_seq_prob", self.short_seq_prob),
            ("nsp_probability", self.nsp_probability),
            ("validation_fraction", self.validation_fraction),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return err(f, format!("{p} must be in [0, 1]"));
            }
        }
        if !(self.mlm_probability > 0.0 && self.mlm_probability < 1.0) {
            return err(
                "mlm_probability",
                format!("{} must be in (0, 1)", self.mlm_probability),
            );
        }
        if self.validation_fraction >= 1.0 {
            return err(
                "validation_fraction",
                "1.0 leaves no training documents".into(),
            );
        }
        if !self.validation.is_empty() && self.validation_fraction > 0.0 {
            return err(
                "validation_fraction",
                "give either validation files or a validation_fraction, not both".into(),
            );
        }
        if self.max_predictions == Some(0) {
            return err("max_predictions", "0 would mask nothing".into());
        }
        // Sizes that would allocate without bound before the first batch.
        for (f, v, max) in [
            ("max_seq_len", self.max_seq_len, MAX_SEQ_LEN),
            (
                "length_bucketing",
                self.length_bucketing,
                MAX_WINDOW_BATCHES,
            ),
            ("shuffle_buffer", self.shuffle_buffer, MAX_SHUFFLE_BUFFER),
        ] {
            if v > max {
                return err(
                    f,
                    format!("{v} is beyond what fits in memory (at most {max})"),
                );
            }
        }
        Ok(())
    }
}
