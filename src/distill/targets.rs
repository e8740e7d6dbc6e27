//! The teacher-target cache: `destila targets` runs the teacher once over an epoch of the
//! training data (and the validation batches) and stores, per example, the masked sequence
//! itself (masking becomes static, as in BERT's original data), the teacher's top-k MLM
//! logits at the masked positions (values fp16, ids int16 or int32) with the log of the
//! probability it gives all other tokens at the recipe's temperature (fp32), its NSP
//! logits and,
//! optionally, its mean-pooled last hidden state. `distill` with `teacher.targets` then
//! trains from the cache without the teacher.
//!
//! A cache folder holds `manifest.json` (what made it: teacher, tokenizer and data hashes,
//! k, sizes), `index.json` (for each split, which shard file holds which batch) and the
//! shards `SPLIT-rRANK-NNNN.safetensors`, one stream per rank when torchrun runs it. The
//! folder is built under a temporary name and renamed when complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tch::{Device, Kind, Tensor};

use super::recipe::{HeadPolicy, Recipe, Scheduled, TargetsSection};
use super::trainer::RunOptions;
use crate::bert::{ForwardOptions, Heads, MlmPositions, Model};
use crate::data::{self, Batch, Cursor, Datasets, Masked, Targets};
use crate::error::{Error, Result};

pub const VERSION: u32 = 1;
/// Bytes of shard data before a new shard file is started.
const SHARD_BYTES: usize = 256 << 20;

/// What a cache must agree on with the recipe that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    /// SHA-256 of the teacher's weights file.
    pub teacher_sha256: String,
    /// How the teacher got its heads (its own, or fitted with these settings).
    pub teacher_heads: String,
    /// The tokenizer's fingerprint (as in the shard cache).
    pub tokenizer: String,
    /// SHA-256 over the data: shard-cache fingerprints, data options, seed, batch size.
    pub data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub key: Key,
    pub teacher: String,
    pub top_k: usize,
    pub pooled: bool,
    /// The KD temperature the tail masses were computed at (the recipe's, constant).
    pub temperature: f64,
    /// "int16" or "int32": the dtype of token ids and top-k ids.
    pub id_dtype: String,
    pub vocab_size: i64,
    pub hidden_size: i64,
    /// Examples per stored batch (the recipe's training.batch_size).
    pub batch_size: usize,
    pub splits: BTreeMap<String, SplitSummary>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SplitSummary {
    pub batches: u64,
    pub examples: u64,
    pub tokens: u64,
    pub masked: u64,
    /// Bytes of all its shard files.
    pub bytes: u64,
    /// Of which the top-k ids and logits.
    pub topk_bytes: u64,
}

impl SplitSummary {
    pub fn bytes_per_token(&self) -> f64 {
        self.bytes as f64 / self.tokens.max(1) as f64
    }
    pub fn topk_bytes_per_token(&self) -> f64 {
        self.topk_bytes as f64 / self.tokens.max(1) as f64
    }
}

/// Per split: for each shard file, the global batch numbers it holds, in file order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub splits: BTreeMap<String, Vec<ShardIndex>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardIndex {
    pub file: String,
    pub batches: Vec<u64>,
}

/// SHA-256 of a checkpoint's weights.
fn weights_digest(dir: &Path) -> Result<String> {
    let f = dir.join("model.safetensors");
    let f = if f.is_file() {
        f
    } else {
        dir.join("pytorch_model.bin")
    };
    crate::tokenize::file_sha256(&f)
}

/// The key a recipe expects of its cache.
pub fn key(recipe: &Recipe, sets: &Datasets) -> Result<Key> {
    let t = recipe
        .teacher
        .as_ref()
        .ok_or_else(|| Error::config(&recipe.path, "teacher", "a target cache needs a teacher"))?;
    let mut data = serde_json::to_value(&recipe.data).expect("serialisable");
    if let Some(m) = data.as_object_mut() {
        m.remove("cache_dir");
    }
    let spec = serde_json::json!({
        "train": sets.train.corpus.manifest.fingerprint,
        "validation": sets.validation.as_ref().map(|v| v.corpus.manifest.fingerprint.clone()),
        "data": &data,
        "seed": recipe.seed,
        "batch_size": recipe.training.batch_size,
        "eval_batches": recipe.training.eval_batches,
    });
    let digest = sha2::Sha256::digest(spec.to_string().as_bytes());
    Ok(Key {
        teacher_sha256: weights_digest(&t.checkpoint)?,
        teacher_heads: match t.heads {
            HeadPolicy::Fit => {
                serde_json::json!({"fit": t.fit, "seed": recipe.seed, "data": data}).to_string()
            }
            HeadPolicy::Fail => "the checkpoint's own".into(),
        },
        tokenizer: sets.train.corpus.manifest.tokenizer_fingerprint.clone(),
        data: digest.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// One shard being filled.
#[derive(Default)]
struct ShardBuf {
    batches: Vec<u64>,
    batch_offsets: Vec<i64>,
    seq_offsets: Vec<i64>,
    masked_offsets: Vec<i64>,
    ids: Vec<i32>,
    type_ids: Vec<u8>,
    nsp_labels: Vec<u8>,
    masked_positions: Vec<i32>,
    masked_labels: Vec<i32>,
    topk_ids: Vec<i32>,
    topk_logits: Vec<u8>,
    tail: Vec<f32>,
    nsp_logits: Vec<u8>,
    pooled: Vec<u8>,
}

fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

fn half_bytes(t: &Tensor) -> Vec<u8> {
    let t = t.to_kind(Kind::Half).contiguous().to_device(Device::Cpu);
    let n = t.numel();
    let mut out = vec![0u8; n * 2];
    t.copy_data_u8(&mut out, n);
    out
}

impl ShardBuf {
    fn new() -> Self {
        ShardBuf {
            batch_offsets: vec![0],
            seq_offsets: vec![0],
            masked_offsets: vec![0],
            ..Default::default()
        }
    }

    fn bytes(&self) -> usize {
        self.ids.len() * 4 + self.topk_ids.len() * 4 + self.topk_logits.len() + self.pooled.len()
    }

    fn push(&mut self, batch: u64, items: &[Masked], t: &Targets) -> Result<()> {
        self.batches.push(batch);
        for m in items {
            self.ids.extend(m.ids.iter().map(|&x| x as i32));
            self.type_ids.extend_from_slice(&m.type_ids);
            self.seq_offsets.push(self.ids.len() as i64);
            for &(p, l) in &m.masked {
                self.masked_positions.push(p as i32);
                self.masked_labels.push(l as i32);
            }
            self.masked_offsets.push(self.masked_positions.len() as i64);
            self.nsp_labels.push(m.is_random_next as u8);
        }
        let n = self.batch_offsets.last().expect("non-empty") + items.len() as i64;
        self.batch_offsets.push(n);
        let ids = Vec::<i64>::try_from(t.topk_ids.to_device(Device::Cpu).view([-1]))?;
        self.topk_ids.extend(ids.into_iter().map(|x| x as i32));
        self.topk_logits.extend(half_bytes(&t.topk_logits));
        self.tail.extend(Vec::<f32>::try_from(
            t.tail.to_device(Device::Cpu).view([-1]),
        )?);
        self.nsp_logits.extend(half_bytes(&t.nsp_logits));
        if let Some(p) = &t.pooled {
            self.pooled.extend(half_bytes(p));
        }
        Ok(())
    }

    /// Writes the shard (atomically); returns (bytes, top-k bytes).
    fn write(&self, path: &Path, ids16: bool, k: usize, hidden: usize) -> Result<(u64, u64)> {
        let ids = |v: &[i32]| -> (Dtype, Vec<u8>) {
            if ids16 {
                (Dtype::I16, le(v, |x| (x as i16).to_le_bytes()))
            } else {
                (Dtype::I32, le(v, i32::to_le_bytes))
            }
        };
        let (n, m) = (self.nsp_labels.len(), self.masked_positions.len());
        let mut arrays: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
            (
                "batch_offsets",
                Dtype::I64,
                vec![self.batch_offsets.len()],
                le(&self.batch_offsets, i64::to_le_bytes),
            ),
            (
                "seq_offsets",
                Dtype::I64,
                vec![n + 1],
                le(&self.seq_offsets, i64::to_le_bytes),
            ),
            (
                "masked_offsets",
                Dtype::I64,
                vec![n + 1],
                le(&self.masked_offsets, i64::to_le_bytes),
            ),
            (
                "type_ids",
                Dtype::U8,
                vec![self.type_ids.len()],
                self.type_ids.clone(),
            ),
            ("nsp_labels", Dtype::U8, vec![n], self.nsp_labels.clone()),
            (
                "masked_positions",
                Dtype::I32,
                vec![m],
                le(&self.masked_positions, i32::to_le_bytes),
            ),
            (
                "topk_logits",
                Dtype::F16,
                vec![m, k],
                self.topk_logits.clone(),
            ),
            (
                "topk_tail",
                Dtype::F32,
                vec![m],
                le(&self.tail, f32::to_le_bytes),
            ),
            (
                "nsp_logits",
                Dtype::F16,
                vec![n, 2],
                self.nsp_logits.clone(),
            ),
        ];
        let (d, b) = ids(&self.ids);
        arrays.push(("ids", d, vec![self.ids.len()], b));
        let (d, b) = ids(&self.masked_labels);
        arrays.push(("masked_labels", d, vec![m], b));
        let (d, b) = ids(&self.topk_ids);
        arrays.push(("topk_ids", d, vec![m, k], b));
        if !self.pooled.is_empty() {
            arrays.push(("pooled", Dtype::F16, vec![n, hidden], self.pooled.clone()));
        }
        let topk = (self.topk_logits.len() + m * 4 + m * k * if ids16 { 2 } else { 4 }) as u64;
        let views: Vec<(String, TensorView)> = arrays
            .iter()
            .map(|(name, d, shape, bytes)| {
                TensorView::new(*d, shape.clone(), bytes)
                    .map(|v| (name.to_string(), v))
                    .map_err(|e| Error::Invalid(format!("{}: {name}: {e}", path.display())))
            })
            .collect::<Result<_>>()?;
        let bytes = safetensors::serialize(views, None)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        crate::error::write_atomic(path, |tmp| {
            std::fs::write(tmp, &bytes).map_err(|e| Error::io(tmp, e))
        })?;
        Ok((bytes.len() as u64, topk))
    }
}

/// The teacher's targets for one batch: top-k MLM logits at the masked positions with the
/// log tail mass at `temperature`, NSP logits, and (with `pooled`) the mean-pooled last
/// hidden state.
pub fn teacher_targets(
    teacher: &Model,
    batch: &Batch,
    k: usize,
    pooled: bool,
    temperature: f64,
) -> Result<Targets> {
    let opts = ForwardOptions {
        attentions: false,
        mlm: MlmPositions::Flat(batch.masked_positions.shallow_clone()),
        nsp: true,
        train: false,
    };
    let out = tch::no_grad(|| teacher.forward(&batch.inputs, &opts))?;
    let mlm = out.mlm_logits.as_ref().expect("asked for");
    let k = (k as i64).min(mlm.size()[1]);
    let (values, ids) = mlm.to_kind(Kind::Float).topk(k, -1, true, true);
    let tail = super::losses::tail_log_mass(mlm, &ids, temperature);
    let pooled = pooled.then(|| {
        super::losses::mean_pool(
            out.hidden_states.last().expect("has layers"),
            &batch.inputs.attention_mask,
        )
    });
    Ok(Targets {
        topk_ids: ids,
        topk_logits: values,
        tail,
        nsp_logits: out
            .nsp_logits
            .as_ref()
            .expect("asked for")
            .to_kind(Kind::Float),
        pooled,
    })
}

/// What `write` made.
#[derive(Debug, Clone, Serialize)]
pub struct WriteSummary {
    pub dir: PathBuf,
    pub top_k: usize,
    pub splits: BTreeMap<String, SplitSummary>,
    pub seconds: f64,
}

/// The stored batches of each split, in order: an epoch of the training loader, and the
/// validation batches `distill` evaluates on.
fn split_batches(
    recipe: &Recipe,
    sets: &Datasets,
    tokenizer: &crate::tokenize::BertTokenizer,
) -> Vec<(&'static str, Vec<Vec<Masked>>)> {
    let tr = &recipe.training;
    let lo = data::loader_options(&recipe.data, tokenizer, tr.batch_size, recipe.seed);
    let mut train = data::Loader::new(
        sets.train.corpus.clone(),
        sets.train.docs.clone(),
        lo.clone(),
        Cursor::default(),
    );
    let mut out = vec![("train", std::iter::from_fn(|| train.next_items()).collect())];
    if let Some(v) = &sets.validation {
        let mut vo = lo;
        vo.shuffle = false;
        vo.seed = 1234;
        let mut l = data::Loader::new(v.corpus.clone(), v.docs.clone(), vo, Cursor::default());
        out.push((
            "validation",
            (0..tr.eval_batches).map_while(|_| l.next_items()).collect(),
        ));
    }
    out
}

/// `destila targets`: runs the teacher over the recipe's data and writes the cache to `out`.
/// Under torchrun each rank takes every world-th batch; rank 0 writes the index.
pub fn write(recipe: &Recipe, out: &Path, opts: &RunOptions) -> Result<WriteSummary> {
    let started = std::time::Instant::now();
    let group = &opts.group;
    let (rank, world) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.world()));
    let main = rank == 0;
    let barrier = || match group {
        Some(g) => g.barrier(),
        None => Ok(()),
    };
    let settings = recipe
        .teacher
        .as_ref()
        .and_then(|t| t.targets.clone())
        .unwrap_or(TargetsSection {
            dir: out.to_path_buf(),
            top_k: 32,
            pooled: false,
        });
    let folder = crate::output::Folder::check(
        out,
        "targets --out",
        "targets",
        opts.force,
        &recipe
            .inputs()
            .into_iter()
            .filter(|p| p != out)
            .collect::<Vec<_>>(),
    )?;
    let device = match (crate::device::parse(&recipe.device)?, group) {
        (Device::Cuda(_), Some(g)) => Device::Cuda(g.local_rank()),
        (d, _) => d,
    };
    let tokenizer = recipe.tokenizer()?;
    if !main {
        barrier()?;
    }
    let sets = data::prepare(&recipe.data, &tokenizer)?;
    if main {
        barrier()?;
    }
    let key = key(recipe, &sets)?;
    let need = Heads {
        pooler: false,
        mlm: true,
        nsp: true,
    };
    let teacher = super::trainer::teacher_with_heads(recipe, need, device, opts)?;
    let cfg = teacher.config().clone();
    let ids16 = cfg.vocab_size <= 1 << 16;
    let k = settings.top_k.min(cfg.vocab_size as usize);
    // The tail masses depend on the temperature: a cache with k below the vocabulary is made
    // for one constant temperature.
    let temperature = match recipe.losses.temperature {
        Scheduled::Constant(t) => t,
        Scheduled::Linear { .. } if k < cfg.vocab_size as usize => {
            return Err(Error::config(
                &recipe.path,
                "losses.temperature",
                format!(
                    "a target cache with top_k {k} below the vocabulary ({}) needs a constant temperature",
                    cfg.vocab_size
                ),
            ))
        }
        Scheduled::Linear { start, .. } => start,
    };

    let tmp = folder.tmp.clone();
    if main {
        folder.create()?;
    }
    barrier()?;

    let mut splits = BTreeMap::new();
    let mut index = Index::default();
    let bar = if opts.quiet || !main {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    for (split, batches) in split_batches(recipe, &sets, &tokenizer) {
        bar.set_length(batches.len() as u64);
        bar.set_position(0);
        bar.set_message(split);
        let mut summary = SplitSummary {
            batches: batches.len() as u64,
            ..Default::default()
        };
        let mut shards: Vec<ShardIndex> = Vec::new();
        let mut buf = ShardBuf::new();
        let mut flush = |buf: &mut ShardBuf, summary: &mut SplitSummary| -> Result<()> {
            if buf.batches.is_empty() {
                return Ok(());
            }
            let file = format!("{split}-r{rank}-{:04}.safetensors", shards.len());
            let (bytes, topk) = buf.write(&tmp.join(&file), ids16, k, cfg.hidden_size as usize)?;
            summary.bytes += bytes;
            summary.topk_bytes += topk;
            shards.push(ShardIndex {
                file,
                batches: std::mem::take(&mut buf.batches),
            });
            *buf = ShardBuf::new();
            Ok(())
        };
        for (i, items) in batches.iter().enumerate() {
            if i % world != rank {
                continue;
            }
            let b = data::batch::collate(items, tokenizer.pad_id).to_device(device);
            let t = teacher_targets(&teacher, &b, k, settings.pooled, temperature)?;
            summary.examples += items.len() as u64;
            summary.tokens += items.iter().map(|m| m.ids.len() as u64).sum::<u64>();
            summary.masked += items.iter().map(|m| m.masked.len() as u64).sum::<u64>();
            buf.push(i as u64, items, &t)?;
            if buf.bytes() > SHARD_BYTES {
                flush(&mut buf, &mut summary)?;
            }
            bar.inc(world as u64);
        }
        flush(&mut buf, &mut summary)?;
        // Every rank reports its shards and counts; rank 0 merges them.
        if let Some(g) = group {
            let mine = serde_json::to_vec(&(&shards, &summary)).expect("json");
            std::fs::write(tmp.join(format!("{split}-r{rank}.json")), mine)
                .map_err(|e| Error::io(&tmp, e))?;
            g.barrier()?;
            if main {
                for r in 1..world {
                    let p = tmp.join(format!("{split}-r{r}.json"));
                    let s = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
                    let (sh, su): (Vec<ShardIndex>, SplitSummary) = serde_json::from_slice(&s)
                        .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
                    shards.extend(sh);
                    summary.examples += su.examples;
                    summary.tokens += su.tokens;
                    summary.masked += su.masked;
                    summary.bytes += su.bytes;
                    summary.topk_bytes += su.topk_bytes;
                }
                for r in 0..world {
                    let _ = std::fs::remove_file(tmp.join(format!("{split}-r{r}.json")));
                }
            }
        }
        index.splits.insert(split.to_string(), shards);
        splits.insert(split.to_string(), summary);
    }
    bar.finish_and_clear();
    if main {
        let manifest = Manifest {
            version: VERSION,
            key,
            teacher: recipe
                .teacher
                .as_ref()
                .map(|t| t.checkpoint.display().to_string())
                .unwrap_or_default(),
            top_k: k,
            pooled: settings.pooled,
            temperature,
            id_dtype: if ids16 { "int16" } else { "int32" }.into(),
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            batch_size: recipe.training.batch_size,
            splits: splits.clone(),
        };
        let json = |v: &dyn erased::Json, name: &str| -> Result<()> {
            let p = tmp.join(name);
            std::fs::write(&p, v.to_json()).map_err(|e| Error::io(&p, e))
        };
        json(&index, "index.json")?;
        json(&manifest, "manifest.json")?;
        folder.commit()?;
    }
    barrier()?;
    Ok(WriteSummary {
        dir: out.to_path_buf(),
        top_k: k,
        splits,
        seconds: started.elapsed().as_secs_f64(),
    })
}

mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string_pretty(self).expect("serialisable")
        }
    }
}

/// A split's shard maps and, per global batch number, (shard, batch within it).
type SplitMaps = (Vec<Mmap>, Vec<(usize, usize)>);

/// An opened cache.
pub struct Cache {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Per split: the shard maps and, per global batch number, (shard, batch within it).
    splits: BTreeMap<String, SplitMaps>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&s).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

fn i64s(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn ints(v: &TensorView) -> Vec<u32> {
    match v.dtype() {
        Dtype::I16 => v
            .data()
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]) as u16 as u32)
            .collect(),
        _ => v
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u32)
            .collect(),
    }
}

impl Cache {
    /// Opens the cache in `dir`, refusing one made for another teacher, tokenizer or data.
    pub fn open(dir: &Path, expected: &Key) -> Result<Cache> {
        let mpath = dir.join("manifest.json");
        if !mpath.is_file() {
            return Err(Error::Invalid(format!(
                "{}: no target cache here (make one with `destila targets RECIPE`)",
                dir.display()
            )));
        }
        let manifest: Manifest = read_json(&mpath)?;
        if manifest.version != VERSION {
            return Err(Error::Invalid(format!(
                "{}: cache version {} (this destila reads {VERSION}); rebuild it with `destila targets`",
                mpath.display(),
                manifest.version
            )));
        }
        let k = &manifest.key;
        let differs = [
            (
                k.teacher_sha256 != expected.teacher_sha256,
                "teacher weights",
                &k.teacher_sha256,
                &expected.teacher_sha256,
            ),
            (
                k.teacher_heads != expected.teacher_heads,
                "teacher heads",
                &k.teacher_heads,
                &expected.teacher_heads,
            ),
            (
                k.tokenizer != expected.tokenizer,
                "tokenizer",
                &k.tokenizer,
                &expected.tokenizer,
            ),
            (
                k.data != expected.data,
                "data (files, options, seed or batch size)",
                &k.data,
                &expected.data,
            ),
        ];
        for (bad, what, got, want) in differs {
            if bad {
                return Err(Error::Invalid(format!(
                    "{}: the cache was made with another {what} ({got}) than this recipe's ({want}); rebuild it with `destila targets`",
                    mpath.display()
                )));
            }
        }
        let index: Index = read_json(&dir.join("index.json"))?;
        let mut splits = BTreeMap::new();
        for (split, shards) in &index.splits {
            let n = manifest.splits.get(split).map_or(0, |s| s.batches as usize);
            let mut locate = vec![(usize::MAX, 0usize); n];
            let mut maps = Vec::new();
            for (si, sh) in shards.iter().enumerate() {
                let p = dir.join(&sh.file);
                let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
                // SAFETY: shards are written once, atomically, and never modified.
                let m = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(&p, e))?;
                SafeTensors::deserialize(&m)
                    .map_err(|e| Error::checkpoint(&p, format!("not a readable shard: {e}")))?;
                maps.push(m);
                for (j, &b) in sh.batches.iter().enumerate() {
                    let slot = locate.get_mut(b as usize).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{}: batch {b} is beyond the split's {n}",
                            p.display()
                        ))
                    })?;
                    *slot = (si, j);
                }
            }
            if let Some(b) = locate.iter().position(|s| s.0 == usize::MAX) {
                return Err(Error::Invalid(format!(
                    "{}: {split} batch {b} is in no shard (an incomplete cache)",
                    dir.display()
                )));
            }
            splits.insert(split.clone(), (maps, locate));
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            manifest,
            splits,
        })
    }

    /// Refuses a recipe whose KD temperature is not the one the tail masses were made at
    /// (unless the cache keeps the whole vocabulary, which has no tail).
    pub fn check_temperature(&self, recipe: &Recipe) -> Result<()> {
        let m = &self.manifest;
        if m.top_k as i64 >= m.vocab_size {
            return Ok(());
        }
        match recipe.losses.temperature {
            Scheduled::Constant(t) if (t - m.temperature).abs() < 1e-12 => Ok(()),
            other => Err(Error::config(
                &recipe.path,
                "losses.temperature",
                format!(
                    "{other:?}, but the target cache in {} was made at temperature {} (its tail masses depend on it); use that or rebuild the cache",
                    self.dir.display(),
                    m.temperature
                ),
            )),
        }
    }

    pub fn batches(&self, split: &str) -> usize {
        self.splits.get(split).map_or(0, |s| s.1.len())
    }

    /// Stored batch `i` of `split`, with its targets.
    pub fn batch(&self, split: &str, i: usize, pad_id: u32) -> Result<Batch> {
        let (maps, locate) = self
            .splits
            .get(split)
            .ok_or_else(|| Error::Invalid(format!("{}: no {split} split", self.dir.display())))?;
        let (si, j) = locate[i];
        let st = SafeTensors::deserialize(&maps[si]).expect("checked when opened");
        let name = || format!("{}: {split} shard {si}", self.dir.display());
        let get = |n: &str| {
            st.tensor(n)
                .map_err(|e| Error::Invalid(format!("{}: {n}: {e}", name())))
        };
        let batch_offsets = i64s(get("batch_offsets")?.data());
        let seq_offsets = i64s(get("seq_offsets")?.data());
        let masked_offsets = i64s(get("masked_offsets")?.data());
        let ids = ints(&get("ids")?);
        let type_ids = get("type_ids")?;
        let nsp = get("nsp_labels")?;
        let mpos = get("masked_positions")?;
        let mpos: Vec<i32> = mpos
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mlab = ints(&get("masked_labels")?);
        let (e0, e1) = (batch_offsets[j] as usize, batch_offsets[j + 1] as usize);
        let items: Vec<Masked> = (e0..e1)
            .map(|e| {
                let (t0, t1) = (seq_offsets[e] as usize, seq_offsets[e + 1] as usize);
                let (m0, m1) = (masked_offsets[e] as usize, masked_offsets[e + 1] as usize);
                Masked {
                    ids: ids[t0..t1].to_vec(),
                    type_ids: type_ids.data()[t0..t1].to_vec(),
                    masked: (m0..m1).map(|r| (mpos[r] as usize, mlab[r])).collect(),
                    is_random_next: nsp.data()[e] != 0,
                }
            })
            .collect();
        let (r0, r1) = (masked_offsets[e0] as usize, masked_offsets[e1] as usize);
        let k = self.manifest.top_k;
        let rows = |v: &TensorView, width: usize, r0: usize, r1: usize, kind: Kind| {
            let es = v.data().len() / v.shape().iter().product::<usize>().max(1);
            let bytes = &v.data()[r0 * width * es..r1 * width * es];
            Tensor::from_data_size(bytes, &[(r1 - r0) as i64, width as i64], kind)
        };
        let idk = if get("topk_ids")?.dtype() == Dtype::I16 {
            Kind::Int16
        } else {
            Kind::Int
        };
        let mut topk_ids = rows(&get("topk_ids")?, k, r0, r1, idk).to_kind(Kind::Int64);
        if idk == Kind::Int16 {
            // Ids above 32767 were stored as their 16-bit pattern.
            topk_ids = topk_ids.remainder(65536);
        }
        let targets = Targets {
            tail: rows(&get("topk_tail")?, 1, r0, r1, Kind::Float).view([-1]),
            topk_ids,
            topk_logits: rows(&get("topk_logits")?, k, r0, r1, Kind::Half).to_kind(Kind::Float),
            nsp_logits: rows(&get("nsp_logits")?, 2, e0, e1, Kind::Half).to_kind(Kind::Float),
            pooled: match st.tensor("pooled") {
                Ok(p) => Some(
                    rows(&p, self.manifest.hidden_size as usize, e0, e1, Kind::Half)
                        .to_kind(Kind::Float),
                ),
                Err(_) => None,
            },
        };
        let mut b = data::batch::collate(&items, pad_id);
        b.targets = Some(targets);
        Ok(b)
    }
}

/// Training batches from a cache: each optimiser step takes `world` consecutive stored
/// batches of an epoch's order (rank r the r-th); epoch 0 in the order they were made, later
/// epochs reshuffled (the masks stay as stored).
pub struct CacheLoader {
    cache: Arc<Cache>,
    rank: usize,
    world: usize,
    seed: u64,
    pad_id: u32,
    cursor: Cursor,
    order: Vec<usize>,
}

impl CacheLoader {
    pub fn new(
        cache: Arc<Cache>,
        rank: usize,
        world: usize,
        seed: u64,
        pad_id: u32,
        cursor: Cursor,
    ) -> Result<CacheLoader> {
        if cache.batches("train") < world {
            return Err(Error::Invalid(format!(
                "{}: {} stored batches cannot feed {world} ranks",
                cache.dir.display(),
                cache.batches("train")
            )));
        }
        let mut l = CacheLoader {
            order: Vec::new(),
            cache,
            rank,
            world,
            seed,
            pad_id,
            cursor,
        };
        l.order = l.epoch_order(cursor.epoch);
        Ok(l)
    }

    fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut o: Vec<usize> = (0..self.cache.batches("train")).collect();
        if epoch > 0 {
            o.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
                self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
        }
        o
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    pub fn next_batch(&mut self) -> Result<Batch> {
        let per_epoch = self.order.len() / self.world;
        if self.cursor.batches as usize >= per_epoch {
            self.cursor = Cursor {
                epoch: self.cursor.epoch + 1,
                batches: 0,
            };
            self.order = self.epoch_order(self.cursor.epoch);
        }
        let i = self.order[self.cursor.batches as usize * self.world + self.rank];
        self.cursor.batches += 1;
        self.cache.batch("train", i, self.pad_id)
    }
}

/// One row of `topk_gap`: what top-k storage costs and how far its KD loss is from the
/// full-vocabulary one.
#[derive(Debug, Clone, Serialize)]
pub struct TopkRow {
    pub k: usize,
    /// Bytes of top-k ids, fp16 logits and the fp32 tail per masked token, and per input
    /// token.
    pub bytes_per_masked: f64,
    pub bytes_per_token: f64,
    pub kd_full: f64,
    /// `kd_topk_tail`: the top k and the teacher's tail mass as one more outcome.
    pub kd_topk: f64,
    /// kd_topk − kd_full, and that over kd_full.
    pub difference: f64,
    pub relative: f64,
    /// Teacher probability mass (at T) inside the top k, averaged over positions.
    pub mass: f64,
}

/// Over `batches`, the KD loss (temperature `t`) with the full teacher distribution and
/// with its top k classes only, for each k; ids stored as int16 when the vocabulary allows.
pub fn topk_gap(
    teacher: &Model,
    student: &Model,
    batches: &[Batch],
    ks: &[usize],
    t: f64,
) -> Result<Vec<TopkRow>> {
    let vocab = teacher.config().vocab_size;
    let id_bytes = if vocab <= 1 << 16 { 2.0 } else { 4.0 };
    let (mut masked, mut tokens) = (0f64, 0f64);
    let mut full = 0f64;
    let mut sums = vec![(0f64, 0f64); ks.len()];
    tch::no_grad(|| -> Result<()> {
        for b in batches {
            let opts = ForwardOptions {
                mlm: MlmPositions::Flat(b.masked_positions.shallow_clone()),
                ..Default::default()
            };
            let lt = teacher
                .forward(&b.inputs, &opts)?
                .mlm_logits
                .expect("asked for");
            let ls = student
                .forward(&b.inputs, &opts)?
                .mlm_logits
                .expect("asked for");
            let n = lt.size()[0] as f64;
            masked += n;
            tokens += b.inputs.attention_mask.sum(Kind::Float).double_value(&[]);
            full += super::losses::kd(&lt, &ls, t).double_value(&[]) * n;
            let p = (&lt / t).softmax(-1, Kind::Float);
            for (i, &k) in ks.iter().enumerate() {
                let (v, ids) = lt.topk(k as i64, -1, true, true);
                let mass = p
                    .gather(-1, &ids, false)
                    .sum_dim_intlist(-1, false, Kind::Float);
                let tail = super::losses::tail_log_mass(&lt, &ids, t);
                let kd = super::losses::kd_topk_tail(&ids, &v, &tail, &ls, t).double_value(&[]);
                sums[i].0 += kd * n;
                sums[i].1 += mass.sum(Kind::Float).double_value(&[]);
            }
        }
        Ok(())
    })?;
    let kd_full = full / masked.max(1.0);
    Ok(ks
        .iter()
        .zip(sums)
        .map(|(&k, (kd, mass))| {
            let kd_topk = kd / masked.max(1.0);
            let per_masked = k as f64 * (id_bytes + 2.0) + 4.0;
            TopkRow {
                k,
                bytes_per_masked: per_masked,
                bytes_per_token: per_masked * masked / tokens.max(1.0),
                kd_full,
                kd_topk,
                difference: kd_topk - kd_full,
                relative: (kd_topk - kd_full) / kd_full,
                mass: mass / masked.max(1.0),
            }
        })
        .collect())
}
