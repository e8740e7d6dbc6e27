//! Encoder families behind one interface: a model folder's sentence embeddings from text,
//! through the folder's own tokenizer. BERT (`bert/`) and MPNet (`mpnet/`) today; the
//! family is read from config.json's `model_type`. This is what a teacher of another
//! architecture or vocabulary is to a distillation (`distill::text_teacher`): it reads the
//! student's sentences as text, never the student's ids.

use std::path::{Path, PathBuf};

use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{self, ForwardOptions, LoadOptions, Model};
use crate::error::{Error, Result};
use crate::mpnet::{self, Mpnet};

/// The architecture a folder holds, by config.json's `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    Mpnet,
}

/// `dir`'s family: `mpnet` is MPNet; `bert`, destila's own BERT types and a config without
/// `model_type` are BERT; anything else is refused by name.
pub fn family(dir: &Path) -> Result<Family> {
    let path = dir.join("config.json");
    let text = crate::error::read_to_string(&path)?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.clone(),
        field: "(file)".into(),
        msg: format!("not JSON: {e}"),
    })?;
    match v.get("model_type").and_then(|t| t.as_str()) {
        Some("mpnet") => Ok(Family::Mpnet),
        None => Ok(Family::Bert),
        Some(t) if crate::bert::BERT_MODEL_TYPES.contains(&t) => Ok(Family::Bert),
        Some(other) => Err(Error::Config {
            path,
            field: "model_type".into(),
            msg: format!("{other:?}: destila reads BERT and MPNet encoders"),
        }),
    }
}

enum Inner {
    Bert(Box<Model>),
    Mpnet(Box<Mpnet>),
}

/// A model folder opened for sentence embeddings from text (eval mode, no gradients).
pub struct TextEncoder {
    inner: Inner,
    /// The folder's tokenizer.json, truncating at `max_len`, padding off (ours).
    tokenizer: Tokenizer,
    pad_id: i64,
    max_len: usize,
    dir: PathBuf,
}

impl TextEncoder {
    /// Opens `dir` (BERT or MPNet, with its tokenizer.json) on `device`. Texts are cut at
    /// the shortest of the model's positions, sentence-transformers' `max_seq_length` and
    /// the tokenizer's `model_max_length`.
    pub fn open(dir: &Path, device: Device) -> Result<Self> {
        let fam = family(dir)?;
        let json = dir.join("tokenizer.json");
        if !json.is_file() {
            return Err(Error::tokenizer(
                dir,
                "no tokenizer.json in this folder (a teacher that reads text needs one)",
            ));
        }
        let mut tokenizer =
            Tokenizer::from_file(&json).map_err(|e| Error::tokenizer(&json, e.to_string()))?;
        let (inner, positions, pad_id) = match fam {
            Family::Mpnet => {
                let m = mpnet::load(dir, device)?;
                let c = m.config();
                let (max, pad) = (c.max_len(), c.pad_token_id);
                (Inner::Mpnet(Box::new(m)), max, pad)
            }
            Family::Bert => {
                let m = bert::load(
                    dir,
                    &LoadOptions {
                        device,
                        ..Default::default()
                    },
                )?;
                let max = m.config().max_position_embeddings;
                let pad = m.config().pad_token_id;
                (Inner::Bert(Box::new(m)), max, pad)
            }
        };
        let st = crate::sentence::read(dir)?.and_then(|m| m.max_seq_length);
        let mut max_len = (positions as usize).min(st.unwrap_or(usize::MAX));
        let tc = dir.join("tokenizer_config.json");
        if tc.is_file() {
            let v: serde_json::Value =
                serde_json::from_str(&crate::error::read_to_string(&tc)?).unwrap_or_default();
            if let Some(m) = v["model_max_length"].as_f64().filter(|m| *m >= 2.0) {
                max_len = max_len.min(m.min(1e9) as usize);
            }
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::tokenizer(&json, e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(TextEncoder {
            inner,
            tokenizer,
            pad_id,
            max_len,
            dir: dir.to_path_buf(),
        })
    }

    pub fn family(&self) -> Family {
        match self.inner {
            Inner::Bert(_) => Family::Bert,
            Inner::Mpnet(_) => Family::Mpnet,
        }
    }

    pub fn hidden_size(&self) -> i64 {
        match &self.inner {
            Inner::Bert(m) => m.config().hidden_size,
            Inner::Mpnet(m) => m.config().hidden_size,
        }
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The model's weights digest (BERT) or config and weights file (MPNet): for cache keys.
    pub fn digest(&self) -> Result<String> {
        let mut parts = Vec::new();
        for f in ["config.json", "model.safetensors", "pytorch_model.bin"] {
            let p = self.dir.join(f);
            if p.is_file() {
                parts.push(crate::digest::file_sha256(&p)?);
            }
        }
        parts.push(crate::digest::file_sha256(
            &self.dir.join("tokenizer.json"),
        )?);
        Ok(crate::digest::text_sha256(&parts.join(" ")))
    }

    /// The folder's own ids for `texts`, padded: (ids, attention mask), [n, len] int64,
    /// and the number of tokens.
    pub fn tokenize(&self, texts: &[&str]) -> Result<(Tensor, Tensor, usize)> {
        let encs = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::tokenizer(&self.dir, e.to_string()))?;
        let len = encs.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let n = encs.len();
        let mut ids = vec![self.pad_id; n * len];
        let mut mask = vec![0i64; n * len];
        let mut tokens = 0;
        for (i, e) in encs.iter().enumerate() {
            for (j, &id) in e.get_ids().iter().enumerate() {
                ids[i * len + j] = id as i64;
                mask[i * len + j] = 1;
            }
            tokens += e.len();
        }
        let shape = [n as i64, len as i64];
        Ok((
            Tensor::from_slice(&ids).view(shape),
            Tensor::from_slice(&mask).view(shape),
            tokens,
        ))
    }

    /// Mean-pooled last hidden states of `texts` [n, hidden] (f32, CPU), in batches of
    /// `batch_size`: what sentence-transformers' mean pooling gives, before any
    /// normalisation.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Tensor> {
        let mut out = Vec::new();
        for chunk in texts.chunks(batch_size.max(1)) {
            let (ids, mask, _) = self.tokenize(chunk)?;
            out.push(self.embed_ids(&ids, &mask)?);
        }
        if out.is_empty() {
            return Ok(Tensor::zeros(
                [0, self.hidden_size()],
                (Kind::Float, Device::Cpu),
            ));
        }
        Ok(Tensor::cat(&out, 0))
    }

    /// Mean-pooled last hidden states of the given ids [n, hidden] (f32, CPU).
    pub fn embed_ids(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (last, mask) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
            Ok(match &self.inner {
                Inner::Mpnet(m) => {
                    let o = m.forward(ids, mask, false)?;
                    (
                        o.last_hidden_state().shallow_clone(),
                        mask.to_device(m.device()),
                    )
                }
                Inner::Bert(m) => {
                    let inputs = bert::Inputs {
                        input_ids: ids.to_device(m.device()),
                        token_type_ids: ids.zeros_like().to_device(m.device()),
                        attention_mask: mask.to_device(m.device()),
                    };
                    let o = m.forward(&inputs, &ForwardOptions::default())?;
                    (
                        o.last_hidden_state().to_kind(Kind::Float),
                        inputs.attention_mask,
                    )
                }
            })
        })?;
        let pooled = crate::embed::mean_pool(&last, &mask).to_device(Device::Cpu);
        if !bool::try_from(pooled.isfinite().all())? {
            return Err(Error::Invalid(format!(
                "{}: sentence embeddings are not finite (NaN or infinity)",
                self.dir.display()
            )));
        }
        Ok(pooled)
    }
}
