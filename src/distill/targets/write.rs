//! Writing a cache (`destila targets`): the teacher over an epoch of the training data and
//! the validation batches, into shards of at most `SHARD_BYTES`, under a temporary name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::format::{key, Index, Key, Manifest, ShardIndex, SplitSummary, VERSION};
use crate::bert::{ForwardOptions, Heads, MlmPositions, Model};
use crate::data::{self, Batch, Datasets, Masked, Targets};
use crate::dist::{self, Group};
use crate::distill::recipe::{MlmTargets, Recipe, Scheduled, TargetsSection};
use crate::distill::teacher::FitRun;
use crate::error::{Error, Result};
use crate::output::Folder;

const SHARD_BYTES: usize = 256 << 20;

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

/// The teacher's targets for one batch: at the masked positions, top-k MLM logits with the
/// log tail mass at `temperature` (or, sampled, draws from its distribution at `temperature`
/// with the generator seeded by `seed`); NSP logits; and (with `pooled`) the mean-pooled
/// last hidden state.
pub fn teacher_targets(
    teacher: &Model,
    batch: &Batch,
    form: MlmTargets,
    pooled: bool,
    temperature: f64,
    seed: i64,
) -> Result<Targets> {
    let opts = ForwardOptions {
        attentions: false,
        mlm: MlmPositions::Flat(batch.masked_positions.shallow_clone()),
        nsp: true,
        train: false,
    };
    let out = tch::no_grad(|| teacher.forward(&batch.inputs, &opts))?;
    let mlm = out.mlm_logits.as_ref().expect("asked for");
    let (ids, values, tail) = match form {
        MlmTargets::TopK(k) => {
            let k = (k as i64).min(mlm.size()[1]);
            let (values, ids) = mlm.to_kind(Kind::Float).topk(k, -1, true, true);
            let tail = crate::distill::losses::tail_log_mass(mlm, &ids, temperature);
            (ids, values, tail)
        }
        MlmTargets::Sample(n) => {
            tch::manual_seed(seed);
            crate::distill::losses::sampled_targets(mlm, n as i64, temperature)
        }
    };
    let pooled = pooled.then(|| {
        crate::distill::losses::mean_pool(
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

/// The generator seed of one batch's draws: the recipe's seed, the split and the batch
/// number (FNV-1a), so that any rank draws the same for the same batch.
fn batch_seed(seed: u64, split: &str, batch: u64) -> i64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{seed}/{split}/{batch}").bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (h >> 1) as i64
}

/// What `write` made.
#[derive(Debug, Clone, Serialize)]
pub struct WriteSummary {
    pub dir: PathBuf,
    /// Slots per masked position: the top k, or at most `sample` distinct drawn tokens.
    pub top_k: usize,
    pub sample: Option<usize>,
    pub splits: BTreeMap<String, SplitSummary>,
    pub seconds: f64,
}

/// The stored batches of each split, in order: an epoch of the training loader, and the
/// validation batches `distill` evaluates on.
fn split_batches(
    recipe: &Recipe,
    sets: &Datasets,
    tokenizer: &crate::tokenize::BertTokenizer,
    train_batches: Option<usize>,
) -> Vec<(&'static str, Vec<Vec<Masked>>)> {
    let tr = &recipe.training;
    let lo = data::loader_options(&recipe.data, tokenizer, tr.batch_size, recipe.seed);
    let mut train = data::Loader::new(
        sets.train.corpus.clone(),
        sets.train.docs.clone(),
        lo.clone(),
        data::Cursor::default(),
    );
    let all = std::iter::from_fn(|| train.next_items());
    let mut out = vec![(
        "train",
        all.take(train_batches.unwrap_or(usize::MAX)).collect(),
    )];
    if let Some(v) = &sets.validation {
        let mut l = data::held_out_loader(v.corpus.clone(), v.docs.clone(), lo);
        out.push((
            "validation",
            (0..tr.eval_batches).map_while(|_| l.next_items()).collect(),
        ));
    }
    out
}

/// How `destila targets` runs: the data-parallel group, the progress bar, replacing an
/// earlier cache, and the fit-heads run a teacher without heads gets.
pub struct WriteOptions<'a> {
    pub group: Option<Arc<Group>>,
    /// The first N training batches of the epoch (the ones N optimiser steps of one rank
    /// draw), not the whole epoch.
    pub train_batches: Option<usize>,
    pub quiet: bool,
    pub force: bool,
    pub fit: FitRun<'a>,
}

/// What every rank's writing shares: the teacher and the cache's settings.
struct Writer<'a> {
    teacher: Model,
    tmp: PathBuf,
    group: &'a Option<Arc<Group>>,
    rank: usize,
    world: usize,
    device: Device,
    pad: u32,
    ids16: bool,
    /// Slots per masked position (k, or the sample size, at most the vocabulary).
    k: usize,
    form: MlmTargets,
    seed: u64,
    hidden: usize,
    pooled: bool,
    temperature: f64,
    bar: indicatif::ProgressBar,
}

/// `destila targets`: runs the teacher over the recipe's data and writes the cache to `out`.
/// Under torchrun each rank takes every world-th batch; rank 0 writes the index.
pub fn write(recipe: &Recipe, out: &Path, opts: &WriteOptions) -> Result<WriteSummary> {
    let started = std::time::Instant::now();
    let group = &opts.group;
    let (rank, world) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.world()));
    let main = rank == 0;
    let settings = recipe
        .teacher
        .as_ref()
        .and_then(|t| t.targets.clone())
        .unwrap_or(TargetsSection {
            dir: out.to_path_buf(),
            top_k: None,
            sample: None,
            pooled: false,
        });
    let inputs: Vec<PathBuf> = recipe.inputs().into_iter().filter(|p| p != out).collect();
    let folder = Folder::check(out, "targets --out", "targets", opts.force, &inputs)?;
    let device = dist::group_device(crate::device::parse(&recipe.device)?, group);
    let tokenizer = recipe.tokenizer()?;
    if !main {
        dist::barrier(group)?;
    }
    let sets = data::prepare(&recipe.data, &tokenizer)?;
    if main {
        dist::barrier(group)?;
    }
    let key = key(recipe, &sets)?;
    let need = Heads {
        pooler: false,
        mlm: true,
        nsp: true,
    };
    let teacher = super::super::teacher::with_heads(recipe, need, device, group, opts.fit)?;
    let cfg = teacher.config().clone();
    let form = settings.mlm();
    let (MlmTargets::TopK(n) | MlmTargets::Sample(n)) = form;
    let k = n.min(cfg.vocab_size as usize);
    let temperature = cache_temperature(recipe, form, k, cfg.vocab_size)?;
    if main {
        folder.create()?;
    }
    dist::barrier(group)?;
    let w = Writer {
        teacher,
        tmp: folder.tmp.clone(),
        group,
        rank,
        world,
        device,
        pad: tokenizer.pad_id,
        ids16: cfg.vocab_size <= 1 << 16,
        k,
        form,
        seed: recipe.seed,
        hidden: cfg.hidden_size as usize,
        pooled: settings.pooled,
        temperature,
        bar: if opts.quiet || !main {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(0)
        },
    };
    let mut splits = BTreeMap::new();
    let mut index = Index::default();
    for (split, batches) in split_batches(recipe, &sets, &tokenizer, opts.train_batches) {
        let (shards, summary) = w.split(split, &batches)?;
        index.splits.insert(split.to_string(), shards);
        splits.insert(split.to_string(), summary);
    }
    w.bar.finish_and_clear();
    if main {
        let manifest = w.manifest(recipe, key, &splits);
        finish(&w.tmp, &index, &manifest)?;
        folder.commit()?;
    }
    dist::barrier(group)?;
    Ok(WriteSummary {
        dir: out.to_path_buf(),
        top_k: k,
        sample: settings.sample,
        splits,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The index and the manifest, the last files of a complete cache.
fn finish(tmp: &Path, index: &Index, manifest: &Manifest) -> Result<()> {
    let json = |v: &dyn erased::Json, name: &str| -> Result<()> {
        let p = tmp.join(name);
        std::fs::write(&p, v.to_json()).map_err(|e| Error::io(&p, e))
    };
    json(index, "index.json")?;
    json(manifest, "manifest.json")
}

/// The tail masses and the draws depend on the temperature: a cache with k below the
/// vocabulary, or a sampled one, is made for one constant temperature.
fn cache_temperature(recipe: &Recipe, form: MlmTargets, k: usize, vocab: i64) -> Result<f64> {
    Ok(match recipe.losses.temperature {
        Scheduled::Constant(t) => t,
        Scheduled::Linear { .. } if k < vocab as usize || matches!(form, MlmTargets::Sample(_)) => {
            let what = match form {
                MlmTargets::Sample(n) => format!("sampled ({n} draws per masked token)"),
                MlmTargets::TopK(_) => {
                    format!("with top_k {k} below the vocabulary ({vocab})")
                }
            };
            return Err(Error::config(
                &recipe.path,
                "losses.temperature",
                format!("a target cache {what} needs a constant temperature"),
            ));
        }
        Scheduled::Linear { start, .. } => start,
    })
}

impl Writer<'_> {
    /// What made the cache and what it holds (`manifest.json`).
    fn manifest(
        &self,
        recipe: &Recipe,
        key: Key,
        splits: &BTreeMap<String, SplitSummary>,
    ) -> Manifest {
        Manifest {
            version: VERSION,
            key,
            teacher: recipe
                .teacher
                .as_ref()
                .map(|t| t.checkpoint.display().to_string())
                .unwrap_or_default(),
            top_k: self.k,
            sample: match self.form {
                MlmTargets::Sample(n) => Some(n),
                MlmTargets::TopK(_) => None,
            },
            pooled: self.pooled,
            temperature: self.temperature,
            id_dtype: if self.ids16 { "int16" } else { "int32" }.into(),
            vocab_size: self.teacher.config().vocab_size,
            hidden_size: self.hidden as i64,
            batch_size: recipe.training.batch_size,
            splits: splits.clone(),
        }
    }

    /// This rank's batches of one split into shards; with several ranks, rank 0 gathers
    /// every rank's shard list and counts.
    fn split(
        &self,
        split: &str,
        batches: &[Vec<Masked>],
    ) -> Result<(Vec<ShardIndex>, SplitSummary)> {
        self.bar.set_length(batches.len() as u64);
        self.bar.set_position(0);
        self.bar.set_message(split.to_string());
        let mut summary = SplitSummary {
            batches: batches.len() as u64,
            ..Default::default()
        };
        let mut shards: Vec<ShardIndex> = Vec::new();
        let mut buf = ShardBuf::new();
        for (i, items) in batches.iter().enumerate() {
            if i % self.world != self.rank {
                continue;
            }
            let b = data::batch::collate(items, self.pad).to_device(self.device);
            let seed = batch_seed(self.seed, split, i as u64);
            let t = teacher_targets(
                &self.teacher,
                &b,
                self.form,
                self.pooled,
                self.temperature,
                seed,
            )?;
            summary.examples += items.len() as u64;
            summary.tokens += items.iter().map(|m| m.ids.len() as u64).sum::<u64>();
            summary.masked += items.iter().map(|m| m.masked.len() as u64).sum::<u64>();
            buf.push(i as u64, items, &t)?;
            if buf.bytes() > SHARD_BYTES {
                self.flush(split, &mut buf, &mut shards, &mut summary)?;
            }
            self.bar.inc(self.world as u64);
        }
        self.flush(split, &mut buf, &mut shards, &mut summary)?;
        if let Some(g) = self.group {
            self.gather(g, split, &mut shards, &mut summary)?;
        }
        Ok((shards, summary))
    }

    /// Writes the filled shard (if any) and starts a new one.
    fn flush(
        &self,
        split: &str,
        buf: &mut ShardBuf,
        shards: &mut Vec<ShardIndex>,
        summary: &mut SplitSummary,
    ) -> Result<()> {
        if buf.batches.is_empty() {
            return Ok(());
        }
        let file = format!("{split}-r{}-{:04}.safetensors", self.rank, shards.len());
        let (bytes, topk) = buf.write(&self.tmp.join(&file), self.ids16, self.k, self.hidden)?;
        summary.bytes += bytes;
        summary.topk_bytes += topk;
        shards.push(ShardIndex {
            file,
            batches: std::mem::take(&mut buf.batches),
        });
        *buf = ShardBuf::new();
        Ok(())
    }

    /// Every rank reports its shards and counts; rank 0 merges them.
    fn gather(
        &self,
        g: &Group,
        split: &str,
        shards: &mut Vec<ShardIndex>,
        summary: &mut SplitSummary,
    ) -> Result<()> {
        let tmp = &self.tmp;
        let mine = serde_json::to_vec(&(&*shards, &*summary)).expect("json");
        std::fs::write(tmp.join(format!("{split}-r{}.json", self.rank)), mine)
            .map_err(|e| Error::io(tmp, e))?;
        g.barrier()?;
        if self.rank != 0 {
            return Ok(());
        }
        for r in 1..self.world {
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
        for r in 0..self.world {
            let _ = std::fs::remove_file(tmp.join(format!("{split}-r{r}.json")));
        }
        Ok(())
    }
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
