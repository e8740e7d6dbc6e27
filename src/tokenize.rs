//! BERT tokenisation on the `tokenizers` crate: from `tokenizer.json`, or from `vocab.txt`
//! built the way `transformers`' `BertTokenizerFast` converts a slow tokenizer
//! (BertNormalizer, BertPreTokenizer, WordPiece, [CLS] A [SEP] B [SEP]).
//! Truncation is longest-first at the length the caller sets; padding is ours (dynamic).

use std::path::{Path, PathBuf};

use tch::Tensor;
use tokenizers::{
    decoders::wordpiece::WordPiece as WordPieceDecoder, models::wordpiece::WordPiece,
    normalizers::bert::BertNormalizer, pre_tokenizers::bert::BertPreTokenizer,
    processors::bert::BertProcessing, AddedToken, Encoding, Model as _, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::bert::Inputs;
use crate::error::{Error, Result};

/// One input: a single text or a pair (segment A, segment B).
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    Single(&'a str),
    Pair(&'a str, &'a str),
}

pub struct BertTokenizer {
    /// Truncates longest-first at `max_len`.
    inner: Tokenizer,
    /// The same without truncation, for word pieces of corpus text.
    plain: Tokenizer,
    /// SHA-256 of the files that define the tokenizer (for caches built with it).
    fingerprint: String,
    source: PathBuf,
    pub pad_id: u32,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
    pub unk_id: u32,
    max_len: usize,
}

const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// The part of `tokenizer_config.json` that shapes a BERT tokenizer built from `vocab.txt`.
#[derive(Debug, serde::Deserialize)]
struct TokenizerConfig {
    #[serde(default = "yes")]
    do_lower_case: bool,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    tokenize_chinese_chars: bool,
    #[serde(default)]
    model_max_length: Option<f64>,
}

fn yes() -> bool {
    true
}

impl BertTokenizer {
    /// From a checkpoint folder: `tokenizer.json` if present, else `vocab.txt` (shaped by
    /// `tokenizer_config.json` when there is one).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::tokenizer(
                dir,
                if dir.exists() {
                    "not a folder (a tokenizer is read from a model folder)"
                } else {
                    "no such folder"
                },
            ));
        }
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let mut tok = if json.is_file() {
            Self::from_tokenizer_json(&json)?
        } else if vocab.is_file() {
            let cfg_path = dir.join("tokenizer_config.json");
            let cfg: TokenizerConfig = if cfg_path.is_file() {
                let text = crate::error::read_to_string(&cfg_path)?;
                serde_json::from_str(&text)
                    .map_err(|e| Error::tokenizer(&cfg_path, e.to_string()))?
            } else {
                serde_json::from_str("{}").expect("defaults")
            };
            let mut t = Self::from_vocab(
                &vocab,
                cfg.do_lower_case,
                cfg.strip_accents,
                cfg.tokenize_chinese_chars,
            )?;
            if let Some(m) = cfg.model_max_length.filter(|m| *m >= 2.0 && *m < 1e9) {
                t.max_len = m as usize;
            }
            t
        } else {
            return Err(Error::tokenizer(
                dir,
                "no tokenizer.json or vocab.txt in this folder",
            ));
        };
        // tokenizer_config.json's model_max_length also bounds a tokenizer.json.
        let cfg_path = dir.join("tokenizer_config.json");
        if json.is_file() && cfg_path.is_file() {
            if let Ok(cfg) =
                serde_json::from_str::<TokenizerConfig>(&crate::error::read_to_string(&cfg_path)?)
            {
                if let Some(m) = cfg.model_max_length.filter(|m| *m >= 2.0 && *m < 1e9) {
                    tok.max_len = m as usize;
                }
            }
        }
        tok.apply_truncation()?;
        Ok(tok)
    }

    /// From an HF `tokenizer.json`. Its own truncation and padding are switched off
    /// (all-MiniLM-L6-v2 ships with both on at 128).
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let inner =
            Tokenizer::from_file(path).map_err(|e| Error::tokenizer(path, e.to_string()))?;
        Self::wrap(inner, path)
    }

    /// A BERT WordPiece tokenizer from `vocab.txt`.
    pub fn from_vocab(
        path: &Path,
        lowercase: bool,
        strip_accents: Option<bool>,
        chinese_chars: bool,
    ) -> Result<Self> {
        let file = path
            .to_str()
            .ok_or_else(|| Error::tokenizer(path, "path is not UTF-8"))?;
        let model = WordPiece::from_file(file)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| Error::tokenizer(path, e.to_string()))?;
        let id = |t: &str| {
            model.get_vocab().get(t).copied().ok_or_else(|| {
                Error::tokenizer(path, format!("special token {t} is not in the vocabulary"))
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(
                true,
                chinese_chars,
                strip_accents,
                lowercase,
            )))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )))
            .with_decoder(Some(WordPieceDecoder::default()));
        let specials: Vec<AddedToken> = SPECIALS
            .iter()
            .map(|t| AddedToken::from(*t, true))
            .collect();
        inner.add_special_tokens(&specials);
        Self::wrap(inner, path)
    }

    fn wrap(mut inner: Tokenizer, path: &Path) -> Result<Self> {
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::tokenizer(path, e.to_string()))?;
        let id = |t: &str| {
            inner.token_to_id(t).ok_or_else(|| {
                Error::tokenizer(path, format!("special token {t} is not in the vocabulary"))
            })
        };
        let fingerprint = crate::digest::file_sha256(path)?;
        Ok(BertTokenizer {
            plain: inner.clone(),
            fingerprint,
            pad_id: id("[PAD]")?,
            unk_id: id("[UNK]")?,
            cls_id: id("[CLS]")?,
            sep_id: id("[SEP]")?,
            mask_id: id("[MASK]")?,
            inner,
            source: path.to_path_buf(),
            max_len: 512,
        })
    }

    fn apply_truncation(&mut self) -> Result<()> {
        let params = TruncationParams {
            direction: TruncationDirection::Right,
            max_length: self.max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        self.inner
            .with_truncation(Some(params))
            .map_err(|e| Error::tokenizer(&self.source, e.to_string()))?;
        Ok(())
    }

    /// Sets the longest sequence (special tokens included); pairs are truncated longest-first.
    pub fn with_max_len(mut self, max_len: usize) -> Result<Self> {
        if max_len < 3 {
            return Err(Error::Invalid(format!(
                "max length {max_len} is too short (at least 3)"
            )));
        }
        self.max_len = max_len;
        self.apply_truncation()?;
        Ok(self)
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Encodes with [CLS]/[SEP] and token types.
    pub fn encode(&self, text: Text) -> Result<Encoding> {
        let r = match text {
            // As `transformers` does, an empty second segment makes a single-text encoding.
            Text::Single(a) | Text::Pair(a, "") => self.inner.encode(a, true),
            Text::Pair(a, b) => self.inner.encode((a, b), true),
        };
        r.map_err(|e| Error::tokenizer(&self.source, e.to_string()))
    }

    /// The text of `ids`, special tokens left out (the tokenizer's decoder: word pieces
    /// joined, spaces before punctuation cleaned up).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::tokenizer(&self.source, e.to_string()))
    }

    /// Word pieces without special tokens and without truncation.
    pub fn word_pieces(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .plain
            .encode(text, false)
            .map_err(|e| Error::tokenizer(&self.source, e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Word pieces of many texts at once (in parallel where the `tokenizers` crate can).
    pub fn word_pieces_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>> {
        let encs = self
            .plain
            .encode_batch_fast(texts.to_vec(), false)
            .map_err(|e| Error::tokenizer(&self.source, e.to_string()))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Identifies the tokenizer's defining files, for caches of its output.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether each id is a word-piece continuation ("##…"), for whole-word masking.
    pub fn continuation_table(&self) -> Vec<bool> {
        let n = self.vocab_size();
        (0..n as u32)
            .map(|id| {
                self.inner
                    .id_to_token(id)
                    .is_some_and(|t| t.starts_with("##"))
            })
            .collect()
    }

    /// Ids of the special tokens ([PAD], [UNK], [CLS], [SEP], [MASK]).
    pub fn special_ids(&self) -> [u32; 5] {
        [
            self.pad_id,
            self.unk_id,
            self.cls_id,
            self.sep_id,
            self.mask_id,
        ]
    }

    /// Every token in id order (for writing a vocab.txt).
    pub fn vocab_in_order(&self) -> Vec<String> {
        (0..self.vocab_size() as u32)
            .map(|id| {
                self.inner
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("[unused{id}]"))
            })
            .collect()
    }

    /// Decodes ids to tokens, one string a token.
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.inner
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("<{id}>"))
            })
            .collect()
    }

    /// Encodes a batch, padded to its longest sequence.
    pub fn batch(&self, texts: &[Text]) -> Result<(Inputs, Vec<Encoding>)> {
        let encodings = texts
            .iter()
            .map(|t| self.encode(*t))
            .collect::<Result<Vec<_>>>()?;
        Ok((self.pad(&encodings), encodings))
    }

    /// Pads encodings to the longest one: ids with [PAD], mask 0, token type 0.
    pub fn pad(&self, encodings: &[Encoding]) -> Inputs {
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let n = encodings.len();
        let mut ids = vec![self.pad_id as i64; n * len];
        let mut mask = vec![0i64; n * len];
        let mut types = vec![0i64; n * len];
        for (row, e) in encodings.iter().enumerate() {
            for (j, (&id, &ty)) in e.get_ids().iter().zip(e.get_type_ids()).enumerate() {
                ids[row * len + j] = id as i64;
                mask[row * len + j] = 1;
                types[row * len + j] = ty as i64;
            }
        }
        let shape = [n as i64, len as i64];
        Inputs {
            input_ids: Tensor::from_slice(&ids).view(shape),
            attention_mask: Tensor::from_slice(&mask).view(shape),
            token_type_ids: Tensor::from_slice(&types).view(shape),
        }
    }
}

/// The files of a tokenizer in an HF folder.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Copies the tokenizer files found in `from` into `to`.
pub fn copy_tokenizer(from: &Path, to: &Path) -> Result<()> {
    for f in TOKENIZER_FILES {
        let src = from.join(f);
        if src.is_file() {
            std::fs::copy(&src, to.join(f)).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}
