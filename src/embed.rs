//! Sentence and word embeddings from a checkpoint folder: static (rows of the input
//! word-embedding matrix) and contextual (the last layer, mean-pooled or [CLS]).

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::bert::{self, ForwardOptions, LoadOptions, Model};
use crate::error::{Error, Result};
pub use crate::sentence::Pooling;
use crate::tokenize::{BertTokenizer, Text};

/// A model and its tokenizer, opened for inference (eval mode, no gradients).
pub struct Embedder {
    pub model: Model,
    pub tokenizer: BertTokenizer,
    /// The folder's sentence-transformers modules, when it has them.
    pub modules: Option<crate::sentence::Modules>,
    /// The folder it was opened from.
    pub dir: std::path::PathBuf,
}

impl Embedder {
    /// Opens `dir`; an int8 checkpoint runs through libtorch's int8 kernels on the CPU
    /// unless `DESTILA_INT8_KERNELS=0`.
    pub fn open(dir: impl AsRef<Path>, device: Device) -> Result<Self> {
        Self::open_with(dir, device, bert::qlinear::wanted()?)
    }

    /// Opens `dir`, running an int8 checkpoint's dense layers through libtorch's int8
    /// kernels (`int8_kernels`) or through their dequantised f32 copies.
    pub fn open_with(dir: impl AsRef<Path>, device: Device, int8_kernels: bool) -> Result<Self> {
        let dir = dir.as_ref();
        let opts = LoadOptions {
            device,
            int8_kernels,
            ..Default::default()
        };
        let model = bert::load(dir, &opts)?;
        let tokenizer = BertTokenizer::from_dir(dir)?;
        check_vocab(&tokenizer, &model, dir)?;
        let modules = crate::sentence::read(dir)?;
        let max = tokenizer
            .max_len()
            .min(model.config().max_position_embeddings as usize)
            .min(
                modules
                    .as_ref()
                    .and_then(|m| m.max_seq_length)
                    .unwrap_or(usize::MAX),
            );
        let tokenizer = tokenizer.with_max_len(max)?;
        Ok(Embedder {
            model,
            tokenizer,
            modules,
            dir: dir.to_path_buf(),
        })
    }

    /// Sentence embeddings as the folder's sentence-transformers modules make them (their
    /// pooling unless `pooling` overrides it, then their normalisation), or mean-pooled
    /// when it has none: what `SentenceTransformer(DIR).encode` returns.
    pub fn encode(
        &self,
        texts: &[&str],
        pooling: Option<Pooling>,
        batch_size: usize,
    ) -> Result<Tensor> {
        let m = self.modules.as_ref();
        let pooling = pooling.or(m.map(|m| m.pooling)).unwrap_or(Pooling::Mean);
        let e = self.embed(texts, pooling, batch_size)?;
        Ok(if m.is_some_and(|m| m.normalize) {
            let norm = e.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-12);
            e / norm
        } else {
            e
        })
    }

    /// Sentence embeddings [n, hidden] (float, CPU), in batches of `batch_size`.
    pub fn embed(&self, texts: &[&str], pooling: Pooling, batch_size: usize) -> Result<Tensor> {
        let mut out = Vec::new();
        for chunk in texts.chunks(batch_size.max(1)) {
            let inputs: Vec<Text> = chunk.iter().map(|t| Text::Single(t)).collect();
            let (batch, _) = self.tokenizer.batch(&inputs)?;
            let batch = batch.to_device(self.model.device());
            let output = tch::no_grad(|| self.model.forward(&batch, &ForwardOptions::default()))?;
            let last = output.last_hidden_state().to_kind(Kind::Float);
            let pooled = match pooling {
                Pooling::Cls => last.select(1, 0),
                Pooling::Mean => mean_pool(&last, &batch.attention_mask),
            };
            if !bool::try_from(pooled.isfinite().all())? {
                return Err(Error::Invalid(format!(
                    "{}: the sentence embeddings of {:?} are not finite (NaN or infinity): the model's weights overflow float32 arithmetic",
                    self.dir.display(),
                    chunk[0].chars().take(60).collect::<String>()
                )));
            }
            out.push(pooled.to_device(Device::Cpu));
        }
        if out.is_empty() {
            return Ok(Tensor::zeros(
                [0, self.model.config().hidden_size],
                (Kind::Float, Device::Cpu),
            ));
        }
        Ok(Tensor::cat(&out, 0))
    }

    /// Static sentence vectors: the mean of the word-embedding rows of the text's word pieces
    /// (special tokens left out), as a bag of static word vectors would give.
    pub fn embed_static(&self, texts: &[&str]) -> Result<Tensor> {
        let table = self
            .model
            .bert
            .embeddings
            .word_embeddings
            .ws
            .to_kind(Kind::Float);
        let rows = texts
            .iter()
            .map(|t| {
                let ids: Vec<i64> = self
                    .tokenizer
                    .word_pieces(t)?
                    .into_iter()
                    .map(i64::from)
                    .collect();
                if ids.is_empty() {
                    return Err(Error::Invalid(format!("{t:?} has no word pieces")));
                }
                let idx = Tensor::from_slice(&ids).to_device(table.device());
                Ok(table
                    .index_select(0, &idx)
                    .mean_dim(0, false, Kind::Float)
                    .to_device(Device::Cpu))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&rows, 0))
    }

    /// The vectors of `word` inside `text` (mean over its word pieces): (static, contextual).
    /// The word is matched case-insensitively as a whole token of the text.
    pub fn word_vectors(&self, text: &str, word: &str) -> Result<(Tensor, Tensor)> {
        let (batch, encodings) = self.tokenizer.batch(&[Text::Single(text)])?;
        let enc = &encodings[0];
        let want = word.to_lowercase();
        let positions: Vec<i64> = enc
            .get_offsets()
            .iter()
            .zip(enc.get_word_ids())
            .enumerate()
            .filter_map(|(i, (_, w))| w.map(|w| (i, w)))
            .filter(|(_, w)| {
                enc.word_to_chars(*w, 0)
                    .and_then(|(s, e)| text.get(s..e))
                    .is_some_and(|s| s.to_lowercase() == want)
            })
            .map(|(i, _)| i as i64)
            .collect();
        if positions.is_empty() {
            let occurs = text
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w.to_lowercase() == want);
            return Err(Error::Invalid(if occurs {
                format!(
                    "--word {word:?} occurs in {text:?} only beyond the first {} tokens (the model's and tokenizer's limit); shorten the text",
                    self.tokenizer.max_len()
                )
            } else {
                format!("--word {word:?} does not occur in {text:?}")
            }));
        }
        let ids = batch.input_ids.get(0);
        let idx = Tensor::from_slice(&positions);
        let table = self
            .model
            .bert
            .embeddings
            .word_embeddings
            .ws
            .to_kind(Kind::Float)
            .to_device(Device::Cpu);
        let stat =
            table
                .index_select(0, &ids.index_select(0, &idx))
                .mean_dim(0, false, Kind::Float);
        let batch = batch.to_device(self.model.device());
        let output = tch::no_grad(|| self.model.forward(&batch, &ForwardOptions::default()))?;
        let last = output
            .last_hidden_state()
            .to_kind(Kind::Float)
            .to_device(Device::Cpu)
            .get(0);
        let ctx = last.index_select(0, &idx).mean_dim(0, false, Kind::Float);
        Ok((stat, ctx))
    }
}

/// Mean of `hidden` [b, len, h] over positions where `mask` [b, len] is 1.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(hidden.kind()).unsqueeze(-1);
    let sum = (hidden * &m).sum_dim_intlist(1, false, hidden.kind());
    sum / m.sum_dim_intlist(1, false, hidden.kind()).clamp_min(1e-9)
}

/// Cosine similarity between every row of `a` [n, h] and every row of `b` [m, h]: [n, m].
pub fn cosine_matrix(a: &Tensor, b: &Tensor) -> Tensor {
    let norm = |x: &Tensor| {
        let n = x.norm_scalaropt_dim(2.0, [-1], true).clamp_min(1e-12);
        x / n
    };
    norm(a).matmul(&norm(b).transpose(0, 1))
}

/// Cosine similarity of two vectors.
pub fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    cosine_matrix(&a.view([1, -1]), &b.view([1, -1])).double_value(&[0, 0])
}

/// A tokenizer whose ids can exceed the model's vocabulary is refused.
pub fn check_vocab(tokenizer: &BertTokenizer, model: &Model, dir: &Path) -> Result<()> {
    let (tv, mv) = (tokenizer.vocab_size(), model.config().vocab_size as usize);
    if tv > mv {
        return Err(Error::tokenizer(
            tokenizer.source(),
            format!(
                "vocabulary has {tv} tokens but the model ({}) has vocab_size {mv}",
                dir.join("config.json").display()
            ),
        ));
    }
    Ok(())
}

/// The `embed --format table` text: the numbered inputs, then their cosine-similarity
/// matrix (4 decimals).
pub fn render_table(texts: &[String], emb: &Tensor) -> String {
    use std::fmt::Write;
    let sim = cosine_matrix(emb, emb);
    let mut out = String::new();
    for (i, t) in texts.iter().enumerate() {
        let _ = writeln!(out, "[{i}] {t}");
    }
    let _ = write!(out, "{:>6}", "");
    for j in 0..texts.len() {
        let _ = write!(out, "{:>8}", format!("[{j}]"));
    }
    out.push('\n');
    for i in 0..texts.len() {
        let _ = write!(out, "{:>6}", format!("[{i}]"));
        for j in 0..texts.len() {
            let _ = write!(out, "{:>8.4}", sim.double_value(&[i as i64, j as i64]));
        }
        out.push('\n');
    }
    out
}

/// The `embed --format jsonl` lines: `{"text": ..., "embedding": [...]}` per input.
pub fn render_jsonl(texts: &[String], emb: &Tensor) -> Result<String> {
    let mut out = String::new();
    for (i, text) in texts.iter().enumerate() {
        let v: Vec<f32> = Vec::try_from(emb.get(i as i64))?;
        out += &serde_json::json!({"text": text, "embedding": v}).to_string();
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn the_table_shows_cosines_computed_by_hand() {
        // (1, 0), (1, 1), (0, 2): cos(a, b) = 1/sqrt(2) = 0.7071, cos(a, c) = 0,
        // cos(b, c) = 2/(sqrt(2)*2) = 0.7071.
        let emb = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0, 0.0, 2.0]).view([3, 2]);
        let texts: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let t = render_table(&texts, &emb);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "[0] a");
        assert_eq!(
            lines[4].split_whitespace().collect::<Vec<_>>(),
            ["[0]", "1.0000", "0.7071", "0.0000"]
        );
        assert_eq!(
            lines[6].split_whitespace().collect::<Vec<_>>(),
            ["[2]", "0.0000", "0.7071", "1.0000"]
        );
        let j = render_jsonl(&texts[..1], &emb).unwrap();
        assert_eq!(j, "{\"embedding\":[1.0,0.0],\"text\":\"a\"}\n");
    }
}
