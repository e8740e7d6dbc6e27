//! Reading a cache: `Cache` (memory-mapped shards, checked against the recipe's key) and
//! `CacheLoader`, the trainer's batch source when it trains from a cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use tch::{Kind, Tensor};

use super::format::{Index, Key, Manifest, VERSION};
use crate::data::{self, Batch, Cursor, Masked, Targets};
use crate::distill::recipe::{MlmTargets, Recipe, Scheduled};
use crate::error::{Error, Result};

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

/// Refuses a cache whose key (teacher, heads, tokenizer, data) is not the recipe's, naming
/// the settings that differ.
fn check_key(mpath: &Path, k: &Key, expected: &Key) -> Result<()> {
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    let short = |s: &str| {
        let s: String = s.chars().take(64).collect();
        s
    };
    let mut why = Vec::new();
    if k.teacher_sha256 != expected.teacher_sha256 {
        why.push(format!(
            "another teacher (weights {} -> {})",
            short(&k.teacher_sha256),
            short(&expected.teacher_sha256)
        ));
    }
    if k.teacher_heads != expected.teacher_heads {
        match (json(&k.teacher_heads), json(&expected.teacher_heads)) {
            (Some(a), Some(b)) => why.push(format!(
                "other teacher settings: {}",
                crate::digest::json_changes(&a, &b).join(", ")
            )),
            _ => why.push(format!(
                "another teacher.heads ({} -> {})",
                short(&k.teacher_heads),
                short(&expected.teacher_heads)
            )),
        }
    }
    if k.tokenizer != expected.tokenizer {
        why.push("another tokenizer".into());
    }
    if k.data != expected.data {
        let changes = crate::digest::json_changes(&k.data_spec, &expected.data_spec);
        why.push(if k.data_spec.is_null() || changes.is_empty() {
            "other data (files, options, seed or batch size)".into()
        } else {
            format!("other data settings: {}", changes.join(", "))
        });
    }
    if why.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{}: the cache was not made for this recipe: {} (cache -> recipe); rebuild it with `destila targets`",
        mpath.display(),
        why.join("; ")
    )))
}

/// Memory-maps one split's shards and locates each of its `n` batches in them.
fn map_split(
    dir: &Path,
    split: &str,
    shards: &[super::format::ShardIndex],
    n: usize,
) -> Result<SplitMaps> {
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
    Ok((maps, locate))
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
        check_key(&mpath, &manifest.key, expected)?;
        let index: Index = read_json(&dir.join("index.json"))?;
        let mut splits = BTreeMap::new();
        for (split, shards) in &index.splits {
            let n = manifest.splits.get(split).map_or(0, |s| s.batches as usize);
            splits.insert(split.clone(), map_split(dir, split, shards, n)?);
        }
        Ok(Cache {
            dir: dir.to_path_buf(),
            manifest,
            splits,
        })
    }

    /// Refuses a recipe that asks for another form of MLM targets than the cache holds
    /// (another top k, draws instead of a top k), or whose KD temperature is not the one the
    /// tail masses or the draws were made at (a top k covering the whole vocabulary has no
    /// tail, and fits any).
    pub fn check_settings(&self, recipe: &Recipe) -> Result<()> {
        let m = &self.manifest;
        if let Some(tg) = recipe.teacher.as_ref().and_then(|t| t.targets.as_ref()) {
            let held = match m.sample {
                Some(n) => MlmTargets::Sample(n),
                None => MlmTargets::TopK(m.top_k),
            };
            let wanted = match tg.mlm() {
                MlmTargets::TopK(k) => MlmTargets::TopK(k.min(m.vocab_size as usize)),
                other => other,
            };
            if held != wanted {
                let say = |f: MlmTargets| match f {
                    MlmTargets::TopK(k) => format!("the top {k} MLM logits"),
                    MlmTargets::Sample(n) => format!("{n} draws per masked token"),
                };
                let field = match tg.mlm() {
                    MlmTargets::TopK(_) => "teacher.targets.top_k",
                    MlmTargets::Sample(_) => "teacher.targets.sample",
                };
                return Err(Error::config(
                    &recipe.path,
                    field,
                    format!(
                        "asks for {}, but the target cache in {} holds {}; set the cache's value or rebuild it with `destila targets`",
                        say(wanted),
                        self.dir.display(),
                        say(held)
                    ),
                ));
            }
        }
        if m.top_k as i64 >= m.vocab_size && m.sample.is_none() {
            return Ok(());
        }
        match recipe.losses.temperature {
            Scheduled::Constant(t) if (t - m.temperature).abs() < 1e-12 => Ok(()),
            other => Err(Error::config(
                &recipe.path,
                "losses.temperature",
                format!(
                    "{other:?}, but the target cache in {} was made at temperature {} (its {} depend on it); use that or rebuild the cache",
                    self.dir.display(),
                    m.temperature,
                    if m.sample.is_some() { "draws" } else { "tail masses" }
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
