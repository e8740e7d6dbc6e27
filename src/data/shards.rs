//! The pre-tokenised shard cache: a corpus is tokenised once into compact binary shards,
//! memory-mapped by later runs and rebuilt when the corpus files, the tokenizer or the text
//! options change (they make the cache's fingerprint and folder name).
//!
//! A cache folder holds `manifest.json` and, per shard NNNNN:
//! * `tokens-NNNNN.bin`: word-piece ids, little-endian u16 when the vocabulary fits, else u32;
//! * `sentences-NNNNN.bin`: u64 end offset (in tokens) of each sentence;
//! * `documents-NNNNN.bin`: u64 end index (in sentences) of each document.
//!
//! A document never spans two shards. The folder is built under a temporary name and renamed.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::config::TextOptions;
use super::corpus;
use crate::error::{Error, Result};
use crate::tokenize::BertTokenizer;

/// Bumped whenever the bytes a corpus becomes change (format, reading, sentence splitting).
pub const FORMAT_VERSION: u32 = 3;
/// Tokens per shard before a new one is started.
pub const SHARD_TOKENS: u64 = 1 << 27;
/// Text gathered before a tokenisation batch.
const BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub modified_ns: u128,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardEntry {
    pub documents: u64,
    pub sentences: u64,
    pub tokens: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub fingerprint: String,
    pub files: Vec<FileEntry>,
    pub tokenizer: String,
    pub tokenizer_fingerprint: String,
    pub text: TextOptions,
    pub id_bytes: u8,
    pub vocab_size: usize,
    pub shards: Vec<ShardEntry>,
    pub documents: u64,
    pub sentences: u64,
    pub tokens: u64,
    pub text_bytes: u64,
    /// Files that gave no document, and the like.
    pub warnings: Vec<String>,
    /// Documents each file of `files` gave, in order (documents of a file are contiguous).
    #[serde(default)]
    pub file_documents: Vec<u64>,
}

struct Shard {
    tokens: Mmap,
    sentence_ends: Mmap,
    document_ends: Mmap,
}

fn u64_at(m: &Mmap, i: usize) -> u64 {
    let b: [u8; 8] = m[i * 8..i * 8 + 8].try_into().expect("8 bytes");
    u64::from_le_bytes(b)
}

/// An opened shard cache: documents of sentences of token ids.
pub struct Corpus {
    pub dir: PathBuf,
    pub manifest: Manifest,
    shards: Vec<Shard>,
    /// First global document index of each shard, plus the total at the end.
    doc_start: Vec<usize>,
}

fn map(path: &Path) -> Result<Mmap> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: cache files are written once under a temporary folder name, renamed into
    // place, and never modified afterwards.
    unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))
}

fn shard_file(dir: &Path, kind: &str, i: usize) -> PathBuf {
    dir.join(format!("{kind}-{i:05}.bin"))
}

impl Corpus {
    fn open_dir(dir: &Path, manifest: Manifest) -> Result<Corpus> {
        let mut shards = Vec::new();
        let mut doc_start = vec![0usize];
        for (i, entry) in manifest.shards.iter().enumerate() {
            let s = Shard {
                tokens: map(&shard_file(dir, "tokens", i))?,
                sentence_ends: map(&shard_file(dir, "sentences", i))?,
                document_ends: map(&shard_file(dir, "documents", i))?,
            };
            let ok = s.tokens.len() as u64 == entry.tokens * manifest.id_bytes as u64
                && s.sentence_ends.len() as u64 == entry.sentences * 8
                && s.document_ends.len() as u64 == entry.documents * 8;
            if !ok {
                return Err(Error::Invalid(format!(
                    "{}: shard {i} does not match its manifest (delete the folder to rebuild it)",
                    dir.display()
                )));
            }
            doc_start.push(doc_start.last().expect("non-empty") + entry.documents as usize);
            shards.push(s);
        }
        Ok(Corpus {
            dir: dir.to_path_buf(),
            manifest,
            shards,
            doc_start,
        })
    }

    pub fn num_documents(&self) -> usize {
        *self.doc_start.last().expect("non-empty")
    }

    fn locate(&self, doc: usize) -> (&Shard, usize) {
        let s = self.doc_start.partition_point(|&start| start <= doc) - 1;
        (&self.shards[s], doc - self.doc_start[s])
    }

    /// The half-open span [first, end) of entry `i` in an array of end offsets (documents
    /// in sentences, sentences in tokens).
    fn span(ends: &Mmap, i: usize) -> (usize, usize) {
        let first = if i == 0 {
            0
        } else {
            u64_at(ends, i - 1) as usize
        };
        (first, u64_at(ends, i) as usize)
    }

    /// Global sentence range [first, end) of a document inside its shard.
    fn sentence_range(shard: &Shard, local: usize) -> (usize, usize) {
        Self::span(&shard.document_ends, local)
    }

    pub fn num_sentences(&self, doc: usize) -> usize {
        let (shard, local) = self.locate(doc);
        let (a, b) = Self::sentence_range(shard, local);
        b - a
    }

    fn token_range(shard: &Shard, sentence: usize) -> (usize, usize) {
        Self::span(&shard.sentence_ends, sentence)
    }

    /// Length in tokens of sentence `i` of document `doc`.
    pub fn sentence_len(&self, doc: usize, i: usize) -> usize {
        let (shard, local) = self.locate(doc);
        let (a, _) = Self::sentence_range(shard, local);
        let (t0, t1) = Self::token_range(shard, a + i);
        t1 - t0
    }

    /// Appends the ids of sentence `i` of document `doc` to `out`.
    pub fn sentence(&self, doc: usize, i: usize, out: &mut Vec<u32>) {
        self.sentence_part(doc, i, 0, usize::MAX, out)
    }

    /// Appends tokens [start, end) (clamped) of sentence `i` of document `doc` to `out`.
    pub fn sentence_part(
        &self,
        doc: usize,
        i: usize,
        start: usize,
        end: usize,
        out: &mut Vec<u32>,
    ) {
        let (shard, local) = self.locate(doc);
        let (a, _) = Self::sentence_range(shard, local);
        let (s0, s1) = Self::token_range(shard, a + i);
        let t0 = (s0 + start).min(s1);
        let t1 = s0.saturating_add(end).min(s1).max(t0);
        match self.manifest.id_bytes {
            2 => out.extend(
                shard.tokens[t0 * 2..t1 * 2]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32),
            ),
            _ => out.extend(
                shard.tokens[t0 * 4..t1 * 4]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
        }
    }
}

fn file_entries(files: &[PathBuf]) -> Result<Vec<FileEntry>> {
    files
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            let modified_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let abs = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
            Ok(FileEntry {
                path: abs.display().to_string(),
                bytes: meta.len(),
                modified_ns,
            })
        })
        .collect()
}

fn fingerprint(files: &[FileEntry], tokenizer: &BertTokenizer, text: &TextOptions) -> String {
    let mut h = sha2::Sha256::new();
    h.update(FORMAT_VERSION.to_le_bytes());
    h.update(serde_json::to_vec(files).expect("serialises"));
    h.update(tokenizer.fingerprint().as_bytes());
    h.update(serde_json::to_vec(text).expect("serialises"));
    format!("{:x}", h.finalize())
}

/// Opens the cache of `patterns` under `cache_dir`, building it first when it is missing or
/// stale. `label` names the corpus in messages ("train", "validation").
pub fn open_or_build(
    patterns: &[String],
    tokenizer: &BertTokenizer,
    text: &TextOptions,
    cache_dir: &Path,
    label: &str,
) -> Result<Corpus> {
    let files = corpus::expand(patterns)?;
    for f in &files {
        corpus::check_text_file(f)?;
    }
    let entries = file_entries(&files)?;
    let fp = fingerprint(&entries, tokenizer, text);
    let dir = cache_dir.join(format!("{label}-{}", &fp[..16]));
    let manifest_path = dir.join("manifest.json");
    if manifest_path.is_file() {
        let text = crate::error::read_to_string(&manifest_path)?;
        if let Ok(m) = serde_json::from_str::<Manifest>(&text) {
            if m.fingerprint == fp && m.version == FORMAT_VERSION {
                return Corpus::open_dir(&dir, m);
            }
        }
    }
    build(&files, entries, fp, tokenizer, text, &dir, patterns)?;
    let text = crate::error::read_to_string(&manifest_path)?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("{}: {e}", manifest_path.display())))?;
    Corpus::open_dir(&dir, m)
}

struct ShardWriter {
    dir: PathBuf,
    id_bytes: u8,
    index: usize,
    tokens: BufWriter<std::fs::File>,
    sentences: BufWriter<std::fs::File>,
    documents: BufWriter<std::fs::File>,
    current: ShardEntry,
    done: Vec<ShardEntry>,
}

impl ShardWriter {
    fn create(dir: &Path, kind: &str, i: usize) -> Result<BufWriter<std::fs::File>> {
        let p = shard_file(dir, kind, i);
        let f = std::fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    }

    fn new(dir: &Path, id_bytes: u8) -> Result<Self> {
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            id_bytes,
            index: 0,
            tokens: Self::create(dir, "tokens", 0)?,
            sentences: Self::create(dir, "sentences", 0)?,
            documents: Self::create(dir, "documents", 0)?,
            current: ShardEntry {
                documents: 0,
                sentences: 0,
                tokens: 0,
            },
            done: Vec::new(),
        })
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(&self.dir, e)
    }

    /// Writes a document; false when it has no token (and so is not written).
    fn document(&mut self, sentences: &[Vec<u32>]) -> Result<bool> {
        let mut wrote = false;
        for s in sentences.iter().filter(|s| !s.is_empty()) {
            for &id in s {
                let r = if self.id_bytes == 2 {
                    self.tokens.write_all(&(id as u16).to_le_bytes())
                } else {
                    self.tokens.write_all(&id.to_le_bytes())
                };
                r.map_err(|e| self.io(e))?;
            }
            self.current.tokens += s.len() as u64;
            self.current.sentences += 1;
            let end = self.current.tokens.to_le_bytes();
            self.sentences.write_all(&end).map_err(|e| self.io(e))?;
            wrote = true;
        }
        if wrote {
            self.current.documents += 1;
            let end = self.current.sentences.to_le_bytes();
            self.documents.write_all(&end).map_err(|e| self.io(e))?;
            if self.current.tokens >= SHARD_TOKENS {
                self.rotate()?;
            }
        }
        Ok(wrote)
    }

    fn finish_current(&mut self) -> Result<()> {
        for w in [&mut self.tokens, &mut self.sentences, &mut self.documents] {
            w.flush().map_err(|e| Error::io(&self.dir, e))?;
            w.get_ref()
                .sync_all()
                .map_err(|e| Error::io(&self.dir, e))?;
        }
        let entry = std::mem::replace(
            &mut self.current,
            ShardEntry {
                documents: 0,
                sentences: 0,
                tokens: 0,
            },
        );
        self.done.push(entry);
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        self.finish_current()?;
        self.index += 1;
        self.tokens = Self::create(&self.dir, "tokens", self.index)?;
        self.sentences = Self::create(&self.dir, "sentences", self.index)?;
        self.documents = Self::create(&self.dir, "documents", self.index)?;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<ShardEntry>> {
        self.finish_current()?;
        // A trailing empty shard (after a rotation at the very end) is dropped.
        if self.done.len() > 1 && self.done.last().is_some_and(|s| s.documents == 0) {
            self.done.pop();
            for kind in ["tokens", "sentences", "documents"] {
                let _ = std::fs::remove_file(shard_file(&self.dir, kind, self.index));
            }
        }
        Ok(self.done)
    }
}

fn build(
    files: &[PathBuf],
    entries: Vec<FileEntry>,
    fp: String,
    tokenizer: &BertTokenizer,
    text: &TextOptions,
    dir: &Path,
    patterns: &[String],
) -> Result<()> {
    let parent = dir.parent().expect("cache folder has a parent");
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = crate::output::temp_dir(dir)?;
    let result = build_into(files, entries, fp, tokenizer, text, &tmp, patterns)
        .and_then(|()| crate::output::commit_dir(&tmp, dir, "data"));
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn build_into(
    files: &[PathBuf],
    entries: Vec<FileEntry>,
    fp: String,
    tokenizer: &BertTokenizer,
    text: &TextOptions,
    dir: &Path,
    patterns: &[String],
) -> Result<()> {
    let vocab = tokenizer.vocab_size();
    let id_bytes: u8 = if vocab <= 1 << 16 { 2 } else { 4 };
    let mut writer = ShardWriter::new(dir, id_bytes)?;
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    let bar = indicatif::ProgressBar::new(total).with_message("tokenising");
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    // Documents waiting for a tokenisation batch, with the index of their file.
    let mut pending: Vec<(usize, Vec<String>)> = Vec::new();
    let mut pending_bytes = 0usize;
    let mut file_documents = vec![0u64; files.len()];
    let flush = |pending: &mut Vec<(usize, Vec<String>)>,
                 writer: &mut ShardWriter,
                 counts: &mut Vec<u64>|
     -> Result<()> {
        let flat: Vec<&str> = pending
            .iter()
            .flat_map(|(_, d)| d)
            .map(String::as_str)
            .collect();
        let mut ids = tokenizer.word_pieces_batch(&flat)?.into_iter();
        for (file, doc) in pending.iter() {
            let sentences: Vec<Vec<u32>> = ids.by_ref().take(doc.len()).collect();
            if writer.document(&sentences)? {
                counts[*file] += 1;
            }
        }
        pending.clear();
        Ok(())
    };
    let mut warnings = Vec::new();
    let mut text_bytes = 0u64;
    for (index, file) in files.iter().enumerate() {
        let summary = corpus::read_documents(file, text, |doc| {
            pending_bytes += doc.iter().map(String::len).sum::<usize>();
            pending.push((index, doc));
            if pending_bytes >= BATCH_BYTES {
                flush(&mut pending, &mut writer, &mut file_documents)?;
                pending_bytes = 0;
            }
            Ok(())
        })?;
        if summary.documents == 0 {
            warnings.push(format!("{}: no text, skipped", file.display()));
        }
        text_bytes += summary.bytes;
        bar.inc(summary.bytes);
    }
    flush(&mut pending, &mut writer, &mut file_documents)?;
    bar.finish_and_clear();
    let shards = writer.finish()?;
    let (documents, sentences, tokens) = shards.iter().fold((0, 0, 0), |(d, s, t), e| {
        (d + e.documents, s + e.sentences, t + e.tokens)
    });
    if documents == 0 {
        return Err(Error::Invalid(format!(
            "no usable document in {} (files: {})",
            patterns.join(", "),
            files.len()
        )));
    }
    let manifest = Manifest {
        version: FORMAT_VERSION,
        fingerprint: fp,
        files: entries,
        tokenizer: tokenizer.source().display().to_string(),
        tokenizer_fingerprint: tokenizer.fingerprint().to_string(),
        text: *text,
        id_bytes,
        vocab_size: vocab,
        shards,
        documents,
        sentences,
        tokens,
        text_bytes,
        warnings,
        file_documents,
    };
    let path = dir.join("manifest.json");
    let json = serde_json::to_string_pretty(&manifest).expect("serialises");
    crate::error::write_atomic(&path, |tmp| {
        std::fs::write(tmp, json).map_err(|e| Error::io(tmp, e))
    })
}
