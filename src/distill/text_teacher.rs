//! A teacher that reads text (issue 21): a model of another family or vocabulary (MPNet's
//! all-mpnet-base-v2 for a BERT student) gives sentence embeddings for the sentence-level
//! losses (`pooled_cos`, `pooled_mse`, `similarity`), which need no token alignment.
//!
//! Each sentence goes through each tokenizer: the student's ids of the loss's view are
//! decoded back to text (the student's tokenizer.json decoder, special tokens left out) and
//! the teacher tokenizes that text itself. Both tokenizers of the intended pairs normalise
//! (lower case, accents stripped, punctuation split) before their word pieces, so the text
//! a decoded sentence gives the teacher is the text it would have read; a student whose
//! tokenizer loses what the teacher's keeps (case, for a cased teacher) shows the teacher
//! what the student saw.
//!
//! The teacher runs once per sentence: its embeddings are memoised by the student's ids of
//! the sentence and kept in a content-addressed cache file
//! (`teacher.pooled_cache/KEY/pooled.safetensors`, KEY over the teacher's files and the
//! student's tokenizer), written at checkpoints and at the end, read by every later run
//! and epoch with the same teacher and student tokenizer.
//!
//! Widths: the similarity loss compares in-batch cosine matrices and needs none; the
//! pointwise losses compare through `teacher.reduce`: `learned`, a linear map from the
//! student's width to the teacher's trained with the student (the run's `projection`), or
//! `pca`, the teacher's embeddings projected on their top principal components (fitted on
//! training sentences before step 0), as sentence-transformers reduces dimensions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::Digest;
use tch::{Device, Kind, Tensor};

use crate::encoder::TextEncoder;
use crate::error::{Error, Result};
use crate::tokenize::BertTokenizer;

/// Sentences a batch of the teacher embeds at once.
const BATCH: usize = 32;

#[derive(Default)]
struct Memo {
    index: HashMap<u64, usize>,
    rows: Vec<Tensor>,
    /// Rows in the cache file as last read or written (the rest are new).
    loaded: usize,
    /// Rows read from the cache file at the start.
    from_file: usize,
}

/// What the teacher did: embeddings served from the memo and computed, tokens it read,
/// seconds it ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub tokens: u64,
    pub seconds: f64,
}

pub struct TextTeacher {
    pub encoder: TextEncoder,
    /// Its weight among several teachers (`teacher.also`; 1 alone).
    pub weight: f64,
    /// `teacher.reduce: learned` with another width: the student's embedding mapped to
    /// this teacher's width for the pointwise losses (trained with the student).
    pub map: Option<tch::nn::Linear>,
    student_tok: BertTokenizer,
    /// The ids the student's decoded text leaves out ([CLS], [SEP], [PAD]).
    skip: [i64; 3],
    /// `teacher.reduce: pca`: [teacher width, student width], the top principal directions.
    pca: Option<Tensor>,
    memo: RefCell<Memo>,
    stats: RefCell<Stats>,
    cache_file: Option<PathBuf>,
}

/// The key of a pooled cache: the teacher's files and the student's tokenizer (the memo is
/// keyed by the student's ids).
pub fn cache_key(encoder: &TextEncoder, student_tok: &BertTokenizer) -> Result<String> {
    let text = format!(
        "destila pooled v1\nteacher {}\nstudent tokenizer {}\n",
        encoder.digest()?,
        student_tok.fingerprint()
    );
    Ok(crate::digest::text_sha256(&text)[..16].to_string())
}

fn key_of(ids: &[i64]) -> u64 {
    let mut h = sha2::Sha256::new();
    for id in ids {
        h.update((*id as u32).to_le_bytes());
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

impl TextTeacher {
    /// The teacher in `dir` on `device`, decoding with `student_tok`; the memo starts from
    /// `cache_dir/KEY/pooled.safetensors` when there is one.
    pub fn open(
        dir: &Path,
        student_tok: BertTokenizer,
        device: Device,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let encoder = TextEncoder::open(dir, device)?;
        let skip = [
            student_tok.cls_id as i64,
            student_tok.sep_id as i64,
            student_tok.pad_id as i64,
        ];
        let cache_file = match cache_dir {
            Some(c) => Some(
                c.join(cache_key(&encoder, &student_tok)?)
                    .join("pooled.safetensors"),
            ),
            None => None,
        };
        let t = TextTeacher {
            encoder,
            weight: 1.0,
            map: None,
            student_tok,
            skip,
            pca: None,
            memo: RefCell::new(Memo::default()),
            stats: RefCell::new(Stats::default()),
            cache_file,
        };
        t.load_cache()?;
        Ok(t)
    }

    pub fn hidden_size(&self) -> i64 {
        self.encoder.hidden_size()
    }

    /// The width of the targets the losses see: the teacher's, or the PCA's.
    pub fn target_width(&self) -> i64 {
        self.pca
            .as_ref()
            .map_or(self.hidden_size(), |p| p.size()[1])
    }

    pub fn stats(&self) -> Stats {
        *self.stats.borrow()
    }

    /// Embeddings in the memo, and how many came from the cache file at the start.
    pub fn memo_sizes(&self) -> (usize, usize) {
        let m = self.memo.borrow();
        (m.rows.len(), m.from_file)
    }

    pub fn cache_file(&self) -> Option<&Path> {
        self.cache_file.as_deref()
    }

    /// `teacher.reduce: pca`: the top `width` principal directions of the teacher's
    /// embeddings of `texts` (centred for the fit; applied without centring, as
    /// sentence-transformers' PCA-initialised Dense layer is).
    pub fn fit_pca(&mut self, texts: &[&str], width: i64) -> Result<()> {
        let h = self.hidden_size();
        if width > h {
            return Err(Error::Invalid(format!(
                "teacher.reduce: pca maps the teacher's {h} dimensions to the student's {width}: the student is wider"
            )));
        }
        if (texts.len() as i64) < width {
            return Err(Error::Invalid(format!(
                "teacher.reduce: pca needs at least {width} training sentences to fit {width} directions, the training text gave {}",
                texts.len()
            )));
        }
        let e = self.encoder.embed(texts, BATCH)?.to_kind(Kind::Double);
        let centred = &e - e.mean_dim(0, true, Kind::Double);
        let cov = centred.transpose(0, 1).matmul(&centred) / (texts.len() as f64 - 1.0);
        // eigh: ascending eigenvalues; the last `width` columns are the top directions.
        let (_, vectors) = cov.linalg_eigh("L");
        let top = vectors.narrow(1, h - width, width).flip([1]);
        self.pca = Some(top.to_kind(Kind::Float));
        Ok(())
    }

    /// The PCA matrix, when `reduce: pca` fitted one.
    pub fn pca(&self) -> Option<&Tensor> {
        self.pca.as_ref()
    }

    /// The teacher's sentence embeddings [b, target width] (f32, on `ids`' device) of the
    /// sentences the student sees as `ids` with attention `mask` [b, len].
    pub fn pooled(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let device = ids.device();
        let (b, len) = ids.size2()?;
        let flat: Vec<i64> = Vec::try_from(ids.to_device(Device::Cpu).view([-1]))?;
        let keep: Vec<i64> =
            Vec::try_from(mask.to_device(Device::Cpu).to_kind(Kind::Int64).view([-1]))?;
        let mut keys = Vec::with_capacity(b as usize);
        let mut sentences = Vec::with_capacity(b as usize);
        for i in 0..b as usize {
            let row = &flat[i * len as usize..(i + 1) * len as usize];
            let m = &keep[i * len as usize..(i + 1) * len as usize];
            let s: Vec<i64> = row
                .iter()
                .zip(m)
                .filter(|(id, k)| **k != 0 && !self.skip.contains(id))
                .map(|(id, _)| *id)
                .collect();
            keys.push(key_of(&s));
            sentences.push(s);
        }
        let missing: Vec<usize> = {
            let memo = self.memo.borrow();
            let mut seen = std::collections::HashSet::new();
            (0..keys.len())
                .filter(|&i| !memo.index.contains_key(&keys[i]) && seen.insert(keys[i]))
                .collect()
        };
        {
            let mut st = self.stats.borrow_mut();
            st.hits += (keys.len() - missing.len()) as u64;
            st.misses += missing.len() as u64;
        }
        if !missing.is_empty() {
            let texts: Vec<String> = missing
                .iter()
                .map(|&i| self.decode(&sentences[i]))
                .collect::<Result<_>>()?;
            let t0 = Instant::now();
            let mut tokens = 0;
            let mut rows = Vec::new();
            for chunk in texts.chunks(BATCH) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let (tids, tmask, n) = self.encoder.tokenize(&refs)?;
                tokens += n;
                rows.push(self.encoder.embed_ids(&tids, &tmask)?);
            }
            let rows = Tensor::cat(&rows, 0);
            let mut st = self.stats.borrow_mut();
            st.tokens += tokens as u64;
            st.seconds += t0.elapsed().as_secs_f64();
            let mut memo = self.memo.borrow_mut();
            for (j, &i) in missing.iter().enumerate() {
                let r = memo.rows.len();
                memo.rows.push(rows.get(j as i64));
                memo.index.insert(keys[i], r);
            }
        }
        let memo = self.memo.borrow();
        let out: Vec<Tensor> = keys
            .iter()
            .map(|k| memo.rows[memo.index[k]].shallow_clone())
            .collect();
        let out = Tensor::stack(&out, 0);
        let out = match &self.pca {
            Some(p) => out.matmul(p),
            None => out,
        };
        Ok(out.to_device(device))
    }

    /// The text of the student's ids (special tokens left out), as the teacher reads it.
    pub fn decode(&self, ids: &[i64]) -> Result<String> {
        let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        self.student_tok.decode(&ids)
    }

    fn load_cache(&self) -> Result<()> {
        let Some(path) = self.cache_file.as_ref() else {
            return Ok(());
        };
        self.merge_file(path)?;
        let mut memo = self.memo.borrow_mut();
        memo.loaded = memo.rows.len();
        memo.from_file = memo.loaded;
        Ok(())
    }

    /// Adds the rows of the cache file `path` (when there is one) that the memo lacks, and
    /// says how many rows the file holds.
    fn merge_file(&self, path: &Path) -> Result<usize> {
        if !path.is_file() {
            return Ok(0);
        }
        let named: HashMap<String, Tensor> = crate::bert::weights::read_safetensors(path)?
            .into_iter()
            .collect();
        let bad = |m: &str| Error::checkpoint(path, m.to_string());
        let keys = named
            .get("keys")
            .ok_or_else(|| bad("missing tensor keys"))?;
        let pooled = named
            .get("pooled")
            .ok_or_else(|| bad("missing tensor pooled"))?;
        let h = self.hidden_size();
        let n = keys.size().first().copied().unwrap_or(-1);
        if keys.dim() != 1 || pooled.size() != [n, h] {
            return Err(bad(&format!(
                "keys {:?} and pooled {:?} do not fit {h}-wide embeddings",
                keys.size(),
                pooled.size()
            )));
        }
        let keys: Vec<i64> = Vec::try_from(keys)?;
        let mut memo = self.memo.borrow_mut();
        for (i, k) in keys.iter().enumerate() {
            if memo.index.contains_key(&(*k as u64)) {
                continue;
            }
            let r = memo.rows.len();
            memo.index.insert(*k as u64, r);
            memo.rows.push(pooled.get(i as i64).to_kind(Kind::Float));
        }
        Ok(keys.len())
    }

    /// Writes the memo to the cache file (temporary name, then renamed), when it grew.
    /// Runs that share the file (the same teacher and student tokenizer) take turns under a
    /// lock beside it (`pooled.lock`), and each writes the union of the file as it finds it
    /// and its own memo, so no run's embeddings are lost to another's write.
    pub fn save_cache(&self) -> Result<()> {
        let Some(path) = &self.cache_file else {
            return Ok(());
        };
        if self.memo.borrow().rows.len() == self.memo.borrow().loaded {
            return Ok(());
        }
        let dir = path.parent().expect("KEY/pooled.safetensors");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock_path = dir.join("pooled.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        self.merge_file(path)?;
        let memo = self.memo.borrow();
        let mut pairs: Vec<(u64, usize)> = memo.index.iter().map(|(k, r)| (*k, *r)).collect();
        pairs.sort();
        let keys: Vec<i64> = pairs.iter().map(|(k, _)| *k as i64).collect();
        let rows: Vec<Tensor> = pairs
            .iter()
            .map(|(_, r)| memo.rows[*r].shallow_clone())
            .collect();
        let pooled = Tensor::stack(&rows, 0).contiguous();
        let keys = Tensor::from_slice(&keys);
        crate::error::write_atomic(path, |tmp| {
            Tensor::write_safetensors(&[("keys", &keys), ("pooled", &pooled)], tmp)
                .map_err(|e| Error::io(tmp, std::io::Error::other(e.to_string())))
        })?;
        drop(memo);
        self.memo.borrow_mut().loaded = pairs.len();
        // Dropping the file releases the lock.
        drop(lock);
        Ok(())
    }
}
