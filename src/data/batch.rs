//! Masked NSP batches from a shard cache: per epoch the documents are reshuffled (seeded by
//! seed and epoch), examples are drawn through a shuffle buffer, masked, optionally sorted by
//! length within windows, and padded to the longest sequence of their batch.
//!
//! The cursor (epoch, batches taken in that epoch) is all a resume needs: an epoch's batches
//! are a pure function of the seed, the epoch and the documents, so a loader built at a
//! cursor replays the epoch's examples up to it without building tensors.

use std::collections::VecDeque;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::examples::{from_document, Example, ExampleParams};
use super::masking::{mask, MaskParams};
use super::shards::Corpus;
use crate::bert::Inputs;

/// A sequence ready to batch: ids with specials, token types, what was masked.
#[derive(Debug, Clone)]
pub struct Masked {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u8>,
    /// (position, original id), ascending positions.
    pub masked: Vec<(usize, u32)>,
    pub is_random_next: bool,
}

#[derive(Debug)]
pub struct Batch {
    pub inputs: Inputs,
    /// [b, len]: the original id at masked positions, -100 elsewhere.
    pub labels: Tensor,
    /// [n]: masked positions as indices into the flattened [b * len] sequence.
    pub masked_positions: Tensor,
    /// [n]: the original ids at those positions.
    pub masked_labels: Tensor,
    /// [b]: 0 IsNext, 1 NotNext (HF's `next_sentence_label`).
    pub nsp_labels: Tensor,
    /// The teacher's targets, when the batch comes from a target cache.
    pub targets: Option<Targets>,
}

/// Teacher targets read from a cache (`destila targets`), aligned with the batch's rows.
#[derive(Debug)]
pub struct Targets {
    /// [n, k]: the teacher's k most likely ids at each masked position, in the order of
    /// `masked_positions`.
    pub topk_ids: Tensor,
    /// [n, k]: their logits (fp32 here, stored as fp16).
    pub topk_logits: Tensor,
    /// [n]: log of the probability the teacher gives every other token, at the cache's
    /// temperature.
    pub tail: Tensor,
    /// [b, 2]: the teacher's NSP logits.
    pub nsp_logits: Tensor,
    /// [b, h]: the teacher's mean-pooled last hidden state, when the cache holds it.
    pub pooled: Option<Tensor>,
}

impl Targets {
    pub fn to_device(&self, device: tch::Device) -> Targets {
        Targets {
            topk_ids: self.topk_ids.to_device(device),
            topk_logits: self.topk_logits.to_device(device),
            tail: self.tail.to_device(device),
            nsp_logits: self.nsp_logits.to_device(device),
            pooled: self.pooled.as_ref().map(|p| p.to_device(device)),
        }
    }
}

impl Batch {
    pub fn size(&self) -> i64 {
        self.inputs.batch_size()
    }

    pub fn to_device(&self, device: tch::Device) -> Batch {
        Batch {
            inputs: self.inputs.to_device(device),
            labels: self.labels.to_device(device),
            masked_positions: self.masked_positions.to_device(device),
            masked_labels: self.masked_labels.to_device(device),
            nsp_labels: self.nsp_labels.to_device(device),
            targets: self.targets.as_ref().map(|t| t.to_device(device)),
        }
    }
}

/// Pads to the longest sequence and builds the tensors.
pub fn collate(items: &[Masked], pad_id: u32) -> Batch {
    let b = items.len();
    let len = items.iter().map(|m| m.ids.len()).max().unwrap_or(1);
    let mut ids = vec![pad_id as i64; b * len];
    let mut mask = vec![0i64; b * len];
    let mut types = vec![0i64; b * len];
    let mut labels = vec![-100i64; b * len];
    let mut positions = Vec::new();
    let mut masked_labels = Vec::new();
    let mut nsp = Vec::with_capacity(b);
    for (r, m) in items.iter().enumerate() {
        let row = r * len;
        for (j, (&id, &t)) in m.ids.iter().zip(&m.type_ids).enumerate() {
            ids[row + j] = id as i64;
            mask[row + j] = 1;
            types[row + j] = t as i64;
        }
        for &(pos, orig) in &m.masked {
            labels[row + pos] = orig as i64;
            positions.push((row + pos) as i64);
            masked_labels.push(orig as i64);
        }
        nsp.push(m.is_random_next as i64);
    }
    let shape = [b as i64, len as i64];
    Batch {
        inputs: Inputs {
            input_ids: Tensor::from_slice(&ids).view(shape),
            attention_mask: Tensor::from_slice(&mask).view(shape),
            token_type_ids: Tensor::from_slice(&types).view(shape),
        },
        labels: Tensor::from_slice(&labels).view(shape),
        masked_positions: Tensor::from_slice(&positions),
        masked_labels: Tensor::from_slice(&masked_labels),
        nsp_labels: Tensor::from_slice(&nsp),
        targets: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: u64,
    /// Batches already taken in this epoch.
    pub batches: u64,
}

#[derive(Debug, Clone)]
pub struct LoaderOptions {
    pub examples: ExampleParams,
    pub masking: MaskParams,
    pub batch_size: usize,
    pub shuffle_buffer: usize,
    /// Sort by length within windows of this many batches (0: off).
    pub length_bucketing: usize,
    pub seed: u64,
    /// Reshuffle documents each epoch (off for validation, which is fixed).
    pub shuffle: bool,
    /// Data-parallel runs: every rank draws the same stream of `batch_size` examples (the
    /// global batch) and keeps the `rank`-th of `world` equal slices, so the run sees the
    /// same batches whatever the number of processes.
    pub rank: usize,
    pub world: usize,
    pub cls_id: u32,
    pub sep_id: u32,
    pub pad_id: u32,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // splitmix64 over the three words: independent streams per (seed, epoch, purpose).
    let mut z =
        seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One epoch's stream of batches (as `Masked` groups).
struct Epoch {
    order: Vec<u32>,
    next_doc: usize,
    produced: Vec<Example>,
    buffer: Vec<Example>,
    ready: VecDeque<Vec<Masked>>,
    example_rng: StdRng,
    draw_rng: StdRng,
    mask_rng: StdRng,
}

pub struct Loader {
    corpus: Arc<Corpus>,
    docs: Vec<u32>,
    opts: LoaderOptions,
    epoch: Epoch,
    cursor: Cursor,
}

impl Loader {
    /// A loader over `docs` of `corpus`, positioned at `cursor`.
    pub fn new(corpus: Arc<Corpus>, docs: Vec<u32>, opts: LoaderOptions, cursor: Cursor) -> Loader {
        let epoch = Self::start_epoch(&docs, &opts, cursor.epoch);
        let mut l = Loader {
            corpus,
            docs,
            opts,
            epoch,
            cursor: Cursor {
                epoch: cursor.epoch,
                batches: 0,
            },
        };
        for _ in 0..cursor.batches {
            if l.next_group().is_none() {
                break;
            }
        }
        l
    }

    fn start_epoch(docs: &[u32], opts: &LoaderOptions, epoch: u64) -> Epoch {
        let mut order = docs.to_vec();
        if opts.shuffle {
            order.shuffle(&mut StdRng::seed_from_u64(mix(opts.seed, epoch, 1)));
        }
        Epoch {
            order,
            next_doc: 0,
            produced: Vec::new(),
            buffer: Vec::new(),
            ready: VecDeque::new(),
            example_rng: StdRng::seed_from_u64(mix(opts.seed, epoch, 2)),
            draw_rng: StdRng::seed_from_u64(mix(opts.seed, epoch, 3)),
            mask_rng: StdRng::seed_from_u64(mix(opts.seed, epoch, 4)),
        }
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The next example of the epoch through the shuffle buffer, or None at its end.
    fn next_example(&mut self) -> Option<Example> {
        let e = &mut self.epoch;
        let cap = if self.opts.shuffle {
            self.opts.shuffle_buffer.max(1)
        } else {
            1
        };
        while e.buffer.len() < cap {
            if let Some(x) = e.produced.pop() {
                e.buffer.push(x);
                continue;
            }
            if e.next_doc >= e.order.len() {
                break;
            }
            // Documents are drawn from the whole split (all ranks), as BERT drew them.
            let pos = e.next_doc;
            e.next_doc += 1;
            let doc = e.order[pos];
            let at = self.docs.binary_search(&doc).unwrap_or(0);
            let mut made = Vec::new();
            from_document(
                &self.corpus,
                &self.docs,
                at,
                &self.opts.examples,
                &mut e.example_rng,
                &mut made,
            );
            made.reverse();
            e.produced = made;
        }
        if e.buffer.is_empty() {
            return None;
        }
        let i = if self.opts.shuffle {
            e.draw_rng.random_range(0..e.buffer.len())
        } else {
            0
        };
        Some(e.buffer.swap_remove(i))
    }

    fn masked(&mut self, x: Example) -> Masked {
        let o = &self.opts;
        let mut ids = Vec::with_capacity(x.len());
        ids.push(o.cls_id);
        ids.extend_from_slice(&x.a);
        ids.push(o.sep_id);
        let a_len = ids.len();
        if !x.b.is_empty() {
            ids.extend_from_slice(&x.b);
            ids.push(o.sep_id);
        }
        let mut type_ids = vec![0u8; ids.len()];
        type_ids[a_len..].fill(1);
        let masked = mask(&mut ids, &o.masking, &mut self.epoch.mask_rng);
        Masked {
            ids,
            type_ids,
            masked,
            is_random_next: x.is_random_next,
        }
    }

    /// The next batch's items in this epoch, or None when the epoch cannot fill one more.
    fn next_group(&mut self) -> Option<Vec<Masked>> {
        let bs = self.opts.batch_size.max(1);
        if self.epoch.ready.is_empty() {
            let window = bs * self.opts.length_bucketing.max(1);
            let mut items = Vec::with_capacity(window);
            while items.len() < window {
                match self.next_example() {
                    Some(x) => {
                        let m = self.masked(x);
                        items.push(m);
                    }
                    None => break,
                }
            }
            items.truncate(items.len() / bs * bs);
            if self.opts.length_bucketing > 0 {
                items.sort_by_key(|m| m.ids.len());
            }
            let mut groups: Vec<Vec<Masked>> = Vec::new();
            let mut it = items.into_iter();
            loop {
                let g: Vec<Masked> = it.by_ref().take(bs).collect();
                if g.is_empty() {
                    break;
                }
                groups.push(g);
            }
            if self.opts.length_bucketing > 0 && self.opts.shuffle {
                groups.shuffle(&mut self.epoch.draw_rng);
            }
            self.epoch.ready.extend(groups);
        }
        let g = self.epoch.ready.pop_front()?;
        self.cursor.batches += 1;
        Some(g)
    }

    /// This rank's slice of a global batch.
    fn slice(&self, mut g: Vec<Masked>) -> Vec<Masked> {
        let world = self.opts.world.max(1);
        if world == 1 {
            return g;
        }
        let per = g.len() / world;
        g.truncate(per * (self.opts.rank + 1));
        g.split_off(per * self.opts.rank)
    }

    /// The next batch (this rank's slice); a new epoch starts (reshuffled) when one ends.
    /// None only when the documents cannot fill a single batch.
    pub fn next_batch(&mut self) -> Option<Batch> {
        if let Some(g) = self.next_group() {
            return Some(collate(&self.slice(g), self.opts.pad_id));
        }
        if self.cursor.batches == 0 {
            return None;
        }
        self.cursor = Cursor {
            epoch: self.cursor.epoch + 1,
            batches: 0,
        };
        self.epoch = Self::start_epoch(&self.docs, &self.opts, self.cursor.epoch);
        self.next_group()
            .map(|g| collate(&self.slice(g), self.opts.pad_id))
    }

    /// The items of the next batch without tensors (for previews and statistics).
    pub fn next_items(&mut self) -> Option<Vec<Masked>> {
        self.next_group().map(|g| self.slice(g))
    }
}
