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

mod format;
mod read;
mod write;

pub use format::{key, Index, Key, Manifest, ShardIndex, SplitSummary, VERSION};
pub use read::{Cache, CacheLoader};
pub use write::{teacher_targets, write, WriteOptions, WriteSummary};
