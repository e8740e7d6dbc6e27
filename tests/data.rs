//! The data pipeline on the shipped Austen corpus and on files made here: masking and NSP
//! statistics, limits, determinism, the shard cache, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use destila::data::config::{Documents, InvalidUtf8, Sentences, TextOptions};
use destila::data::examples::{from_document, truncate_pair, ExampleParams};
use destila::data::{
    self, shards, Batch, Cursor, DataConfig, ExampleFormat, Loader, LoaderOptions,
};
use destila::tokenize::BertTokenizer;
use rand::SeedableRng;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tokenizer() -> BertTokenizer {
    BertTokenizer::from_dir(common::teacher()).unwrap()
}

fn austen_config(cache: &Path) -> DataConfig {
    let yaml = format!(
        "train: [{}]\ncache_dir: {}\n",
        root().join("data/austen/train").display(),
        cache.display()
    );
    serde_yaml::from_str(&yaml).unwrap()
}

fn options(cfg: &DataConfig, tok: &BertTokenizer, batch: usize, seed: u64) -> LoaderOptions {
    data::loader_options(cfg, tok, batch, seed)
}

fn loader(
    cfg: &DataConfig,
    tok: &BertTokenizer,
    batch: usize,
    seed: u64,
    cursor: Cursor,
) -> Loader {
    let sets = data::prepare(cfg, tok).unwrap();
    Loader::new(
        sets.train.corpus,
        sets.train.docs,
        options(cfg, tok, batch, seed),
        cursor,
    )
}

fn ids(t: &tch::Tensor) -> Vec<i64> {
    Vec::try_from(t.flatten(0, -1)).unwrap()
}

#[test]
fn masking_proportions_and_nsp_ratio_within_statistical_bounds() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let cfg = austen_config(cache.path());
    let mut l = loader(&cfg, &tok, 64, 7, Cursor::default());
    let specials: Vec<i64> = tok.special_ids().iter().map(|&i| i as i64).collect();
    let (mut candidates, mut masked, mut as_mask, mut kept, mut random) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut examples, mut not_next) = (0u64, 0u64);
    while candidates < 200_000 {
        let b: Batch = l.next_batch().unwrap();
        let input = ids(&b.inputs.input_ids);
        let labels = ids(&b.labels);
        let attn = ids(&b.inputs.attention_mask);
        for i in 0..input.len() {
            let original = if labels[i] >= 0 { labels[i] } else { input[i] };
            if attn[i] == 1 && !specials.contains(&original) {
                candidates += 1;
            }
            if labels[i] >= 0 {
                assert!(!specials.contains(&labels[i]), "a special token was masked");
                assert_eq!(attn[i], 1, "padding was masked");
                masked += 1;
                if input[i] == tok.mask_id as i64 {
                    as_mask += 1;
                } else if input[i] == labels[i] {
                    kept += 1;
                } else {
                    random += 1;
                    assert!(
                        !specials.contains(&input[i]),
                        "a special token was inserted"
                    );
                }
            }
        }
        // The flat index and labels agree with the [b, len] labels.
        let pos = ids(&b.masked_positions);
        let ml = ids(&b.masked_labels);
        assert_eq!(
            pos.len() as u64,
            labels.iter().filter(|&&x| x >= 0).count() as u64
        );
        for (p, l) in pos.iter().zip(&ml) {
            assert_eq!(labels[*p as usize], *l);
        }
        let nsp = ids(&b.nsp_labels);
        examples += nsp.len() as u64;
        not_next += nsp.iter().sum::<i64>() as u64;
    }
    let frac = masked as f64 / candidates as f64;
    // Rounding per sequence (round(n * 0.15), at least one) keeps this very close to 0.15.
    assert!((frac - 0.15).abs() < 0.005, "masked fraction {frac}");
    let m = masked as f64;
    // Binomial bounds, more than 5 standard deviations at these counts.
    let sd = |p: f64| 5.0 * (p * (1.0 - p) / m).sqrt();
    assert!(
        (as_mask as f64 / m - 0.8).abs() < sd(0.8),
        "[MASK] share {}",
        as_mask as f64 / m
    );
    assert!(
        (kept as f64 / m - 0.1).abs() < sd(0.1),
        "kept share {}",
        kept as f64 / m
    );
    // A random draw can hit the original id (1 in ~30k): negligible.
    assert!(
        (random as f64 / m - 0.1).abs() < sd(0.1),
        "random share {}",
        random as f64 / m
    );
    let ratio = not_next as f64 / examples as f64;
    let sd_nsp = 5.0 * (0.25 / examples as f64).sqrt();
    assert!(
        (ratio - 0.5).abs() < sd_nsp,
        "NotNext ratio {ratio} over {examples}"
    );
}

#[test]
fn lengths_never_exceed_the_limit() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    for max in [16usize, 64, 128] {
        let mut cfg = austen_config(cache.path());
        cfg.max_seq_len = max;
        let mut l = loader(&cfg, &tok, 32, 1, Cursor::default());
        let mut longest = 0;
        for _ in 0..50 {
            let b = l.next_batch().unwrap();
            let lens = b
                .inputs
                .attention_mask
                .sum_dim_intlist(1, false, tch::Kind::Int64);
            longest = longest.max(lens.max().int64_value(&[]) as usize);
            assert!(b.inputs.seq_len() as usize <= max);
        }
        assert!(
            longest <= max && longest > max / 2,
            "max {max}: longest {longest}"
        );
    }
}

#[test]
fn same_seed_same_batches_and_each_epoch_reshuffles() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let cfg = austen_config(cache.path());
    let mut a = loader(&cfg, &tok, 16, 3, Cursor::default());
    let mut b = loader(&cfg, &tok, 16, 3, Cursor::default());
    let mut c = loader(&cfg, &tok, 16, 4, Cursor::default());
    let mut differs = false;
    for _ in 0..10 {
        let (x, y, z) = (
            a.next_batch().unwrap(),
            b.next_batch().unwrap(),
            c.next_batch().unwrap(),
        );
        assert!(x.inputs.input_ids.equal(&y.inputs.input_ids));
        assert!(x.labels.equal(&y.labels));
        assert!(x.nsp_labels.equal(&y.nsp_labels));
        differs |= x.inputs.input_ids.size() != z.inputs.input_ids.size()
            || !x.inputs.input_ids.equal(&z.inputs.input_ids);
    }
    assert!(differs, "another seed must give other batches");
    let e0 = loader(
        &cfg,
        &tok,
        16,
        3,
        Cursor {
            epoch: 0,
            batches: 0,
        },
    )
    .next_batch()
    .unwrap();
    let e1 = loader(
        &cfg,
        &tok,
        16,
        3,
        Cursor {
            epoch: 1,
            batches: 0,
        },
    )
    .next_batch()
    .unwrap();
    assert!(
        e0.inputs.input_ids.size() != e1.inputs.input_ids.size()
            || !e0.inputs.input_ids.equal(&e1.inputs.input_ids)
    );
}

#[test]
fn a_loader_built_at_a_cursor_continues_exactly() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let mut cfg = austen_config(cache.path());
    cfg.length_bucketing = 4;
    let mut a = loader(&cfg, &tok, 8, 5, Cursor::default());
    for _ in 0..13 {
        a.next_batch().unwrap();
    }
    let cursor = a.cursor();
    assert_eq!(
        cursor,
        Cursor {
            epoch: 0,
            batches: 13
        }
    );
    let mut b = loader(&cfg, &tok, 8, 5, cursor);
    for _ in 0..5 {
        let (x, y) = (a.next_batch().unwrap(), b.next_batch().unwrap());
        assert!(x.inputs.input_ids.equal(&y.inputs.input_ids));
        assert!(x.labels.equal(&y.labels));
    }
}

#[test]
fn epochs_roll_over_and_length_bucketing_groups_similar_lengths() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let f = dir.path().join("small.txt");
    let text: String = (0..40)
        .map(|i| {
            format!("Paragraph {i} has a first sentence. And then a second one follows it.\n\n")
        })
        .collect();
    std::fs::write(&f, text).unwrap();
    let yaml = format!(
        "train: [{}]\ncache_dir: {}\nlength_bucketing: 8\n",
        f.display(),
        dir.path().join("cache").display()
    );
    let cfg: DataConfig = serde_yaml::from_str(&yaml).unwrap();
    let mut l = loader(&cfg, &tok, 4, 1, Cursor::default());
    let mut epochs = std::collections::BTreeSet::new();
    for _ in 0..30 {
        assert!(l.next_batch().is_some());
        epochs.insert(l.cursor().epoch);
    }
    assert!(epochs.len() >= 2, "{epochs:?}");
}

#[test]
fn whole_word_masking_masks_every_piece_of_a_word() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let mut cfg = austen_config(cache.path());
    cfg.whole_word_masking = true;
    let cont = tok.continuation_table();
    let mut l = loader(&cfg, &tok, 32, 2, Cursor::default());
    let mut pieces_seen = 0;
    for _ in 0..30 {
        let b = l.next_batch().unwrap();
        let labels = ids(&b.labels);
        let input = ids(&b.inputs.input_ids);
        let original: Vec<i64> = input
            .iter()
            .zip(&labels)
            .map(|(&i, &l)| if l >= 0 { l } else { i })
            .collect();
        let len = b.inputs.seq_len() as usize;
        for i in 0..original.len() {
            if i % len == 0 || tok.special_ids().contains(&(original[i - 1] as u32)) {
                continue;
            }
            if cont[original[i] as usize] {
                // A continuation piece is masked exactly when the piece before it is.
                assert_eq!(labels[i] >= 0, labels[i - 1] >= 0, "word split by masking");
                pieces_seen += (labels[i] >= 0) as usize;
            }
        }
    }
    assert!(pieces_seen > 20);
}

#[test]
fn examples_are_contiguous_spans_of_their_document() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let cfg = austen_config(cache.path());
    let sets = data::prepare(&cfg, &tok).unwrap();
    let corpus = &sets.train.corpus;
    let docs = &sets.train.docs;
    let p = ExampleParams {
        max_seq_len: 64,
        short_seq_prob: 0.1,
        nsp_probability: 0.5,
        format: ExampleFormat::Pairs,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let contains = |hay: &[u32], needle: &[u32]| hay.windows(needle.len()).any(|w| w == needle);
    let (mut is_next, mut not_next) = (0, 0);
    for pos in (0..docs.len()).step_by(7) {
        let doc = docs[pos] as usize;
        let mut all = Vec::new();
        for i in 0..corpus.num_sentences(doc) {
            corpus.sentence(doc, i, &mut all);
        }
        let mut out = Vec::new();
        from_document(corpus, docs, pos, &p, &mut rng, &mut out);
        for x in out {
            assert!(x.a.len() + x.b.len() <= 61);
            assert!(!x.a.is_empty() && !x.b.is_empty());
            assert!(contains(&all, &x.a), "A is not from its document");
            if !x.is_random_next {
                is_next += 1;
                assert!(
                    contains(&all, &x.b),
                    "IsNext B is not from the same document"
                );
                if x.a.len() + x.b.len() < 61 {
                    // Not truncated: B is exactly what follows A.
                    let mut ab = x.a.clone();
                    ab.extend_from_slice(&x.b);
                    assert!(contains(&all, &ab), "IsNext B does not continue A");
                }
            } else {
                not_next += 1;
            }
        }
    }
    assert!(is_next > 100 && not_next > 100, "{is_next} {not_next}");
}

#[test]
fn sentence_examples_are_the_documents_sentences_one_by_one() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let mut cfg = austen_config(cache.path());
    cfg.examples = ExampleFormat::Sentences;
    cfg.max_seq_len = 32;
    let sets = data::prepare(&cfg, &tok).unwrap();
    let (corpus, docs) = (&sets.train.corpus, &sets.train.docs);
    let p = data::loader_options(&cfg, &tok, 8, 0).examples;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut long = 0;
    for pos in (0..docs.len()).step_by(11) {
        let doc = docs[pos] as usize;
        let mut out = Vec::new();
        from_document(corpus, docs, pos, &p, &mut rng, &mut out);
        // Concatenated, the examples are the document's tokens, in order, nothing lost.
        let mut all = Vec::new();
        for i in 0..corpus.num_sentences(doc) {
            corpus.sentence(doc, i, &mut all);
            long += (corpus.sentence_len(doc, i) > 30) as usize;
        }
        let joined: Vec<u32> = out.iter().flat_map(|x| x.a.clone()).collect();
        assert_eq!(joined, all);
        for x in &out {
            assert!(x.b.is_empty() && !x.is_random_next);
            assert!(!x.a.is_empty() && x.len() <= 32 && x.len() == x.a.len() + 2);
        }
    }
    assert!(
        long > 0,
        "no sentence needed splitting: the test would not see pieces"
    );
    // In a batch: [CLS] S [SEP] and padding, one segment (type ids 0), NSP labels 0.
    let mut l = Loader::new(
        sets.train.corpus.clone(),
        sets.train.docs.clone(),
        options(&cfg, &tok, 8, 3),
        Cursor::default(),
    );
    let b = l.next_batch().unwrap();
    let (ids_, mask) = (ids(&b.inputs.input_ids), ids(&b.inputs.attention_mask));
    let len = b.inputs.input_ids.size()[1] as usize;
    for row in 0..8 {
        let n: i64 = mask[row * len..(row + 1) * len].iter().sum();
        let r = &ids_[row * len..(row + 1) * len];
        assert_eq!(r[0], tok.cls_id as i64);
        assert_eq!(r[n as usize - 1], tok.sep_id as i64);
        assert_eq!(r.iter().filter(|&&t| t == tok.sep_id as i64).count(), 1);
    }
    assert_eq!(ids(&b.inputs.token_type_ids).iter().sum::<i64>(), 0);
    assert_eq!(ids(&b.nsp_labels).iter().sum::<i64>(), 0);
}

/// Tokens of the training stream that come from the first `first_files` files (the first
/// train entry) and from the rest, and the number of documents drawn.
fn token_shares(cfg: &DataConfig, first_files: usize) -> (f64, f64, usize) {
    let sets = data::prepare(cfg, &tokenizer()).unwrap();
    let c = &sets.train.corpus;
    let n_first: u64 = c.manifest.file_documents[..first_files].iter().sum();
    let (mut a, mut b) = (0.0, 0.0);
    for &d in &sets.train.docs {
        let t: usize = (0..c.num_sentences(d as usize))
            .map(|i| c.sentence_len(d as usize, i))
            .sum();
        if (d as u64) < n_first {
            a += t as f64
        } else {
            b += t as f64
        }
    }
    (a, b, sets.train.docs.len())
}

#[test]
fn austen_and_the_state_of_the_union_mix_one_to_one() {
    // The general-domain corpus make setup fetches, mixed with Austen as
    // recipes/embedding.yaml does.
    let sotu = root().join(".cache/corpora/sotu/train");
    assert!(
        std::fs::read_dir(&sotu).unwrap().count() > 100,
        "run make setup"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg: DataConfig = serde_yaml::from_str(&format!(
        "train: [{}, {}]\nweights: [1, 1]\ndocuments: blank-line\ncache_dir: {}\n",
        root().join("data/austen/train").display(),
        sotu.display(),
        dir.path().join("cache").display()
    ))
    .unwrap();
    let (a, b, _) = token_shares(&cfg, 5);
    let share = b / (a + b);
    assert!(
        (share - 0.5).abs() < 0.05,
        "State of the Union share {share}"
    );
}

#[test]
fn weights_set_each_train_entrys_share_of_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // Two entries of very different sizes: Persuasion and one chapter of it.
    let text =
        std::fs::read_to_string(root().join("data/austen/validation/persuasion.txt")).unwrap();
    let paras: Vec<&str> = text.split("\n\n").filter(|p| p.trim().len() > 40).collect();
    let (big, small) = (dir.path().join("big.txt"), dir.path().join("small"));
    std::fs::write(&big, paras[..600].join("\n\n")).unwrap();
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join("a.txt"), paras[600..660].join("\n\n")).unwrap();
    let cfg_for = |weights: &str| -> DataConfig {
        serde_yaml::from_str(&format!(
            "train: [{}, {}]\nweights: {weights}\ncache_dir: {}\n",
            big.display(),
            small.display(),
            dir.path().join("cache").display()
        ))
        .unwrap()
    };
    let shares = |cfg: &DataConfig| token_shares(cfg, 1);
    let (a0, b0, n0) = shares(&cfg_for("[]"));
    assert!(b0 / (a0 + b0) < 0.15, "natural shares {a0} {b0}");
    let (a, b, n) = shares(&cfg_for("[1, 3]"));
    let share = b / (a + b);
    assert!(
        (share - 0.75).abs() < 0.05,
        "share of the second entry {share}"
    );
    // The token total stays about the natural one (repetition, not growth).
    assert!(
        ((a + b) / (a0 + b0) - 1.0).abs() < 0.1,
        "{} vs {}",
        a + b,
        a0 + b0
    );
    assert!(n != n0);
    let (a, b, _) = shares(&cfg_for("[0, 1]"));
    assert!(a == 0.0 && b > 0.0);
    // Bad weights are named.
    for (w, field) in [
        ("[1]", "weights"),
        ("[1, -1]", "weights[1]"),
        ("[0, 0]", "weights"),
        ("[1, .nan]", "weights[1]"),
    ] {
        let (f, m) = cfg_for(w).validate().unwrap_err();
        assert!(f == field, "{w}: {f}: {m}");
    }
}

#[test]
fn truncate_pair_trims_the_longer_segment() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut a: Vec<u32> = (0..10).collect();
    let mut b: Vec<u32> = (100..103).collect();
    truncate_pair(&mut a, &mut b, 8, &mut rng);
    assert_eq!((a.len(), b.len()), (5, 3));
    let mut a: Vec<u32> = (0..6).collect();
    let mut b: Vec<u32> = (100..106).collect();
    truncate_pair(&mut a, &mut b, 8, &mut rng);
    assert_eq!((a.len(), b.len()), (4, 4));
}

fn text_opts(documents: Documents, sentences: Sentences) -> TextOptions {
    TextOptions {
        documents,
        sentences,
        invalid_utf8: InvalidUtf8::Error,
    }
}

fn build(files: &[&Path], opts: &TextOptions, cache: &Path) -> destila::Result<shards::Corpus> {
    let pats: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    shards::open_or_build(&pats, &tokenizer(), opts, cache, "t")
}

#[test]
fn document_and_sentence_modes_and_wrapped_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.txt");
    std::fs::write(&f, "First sentence of one\nwrapped paragraph. Second sentence.\n\nAnother paragraph here.\nStill it.\n").unwrap();
    let cache = dir.path().join("cache");
    let c = build(
        &[&f],
        &text_opts(Documents::BlankLine, Sentences::Split),
        &cache,
    )
    .unwrap();
    assert_eq!((c.manifest.documents, c.manifest.sentences), (2, 4));
    let mut s = Vec::new();
    c.sentence(0, 0, &mut s);
    assert_eq!(
        s,
        tokenizer()
            .word_pieces("First sentence of one wrapped paragraph.")
            .unwrap()
    );
    let c = build(&[&f], &text_opts(Documents::File, Sentences::Split), &cache).unwrap();
    assert_eq!((c.manifest.documents, c.manifest.sentences), (1, 4));
    let c = build(&[&f], &text_opts(Documents::Line, Sentences::Split), &cache).unwrap();
    assert_eq!((c.manifest.documents, c.manifest.sentences), (4, 5));
    let c = build(
        &[&f],
        &text_opts(Documents::BlankLine, Sentences::Line),
        &cache,
    )
    .unwrap();
    assert_eq!((c.manifest.documents, c.manifest.sentences), (2, 4));
}

#[test]
fn shard_cache_is_reused_and_rebuilt_when_inputs_change() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.txt");
    std::fs::write(&f, "One sentence. Two sentences.\n").unwrap();
    let cache = dir.path().join("cache");
    let opts = text_opts(Documents::BlankLine, Sentences::Split);
    let c1 = build(&[&f], &opts, &cache).unwrap();
    let stamp = std::fs::metadata(c1.dir.join("manifest.json"))
        .unwrap()
        .modified()
        .unwrap();
    let c2 = build(&[&f], &opts, &cache).unwrap();
    assert_eq!(c1.dir, c2.dir);
    assert_eq!(
        stamp,
        std::fs::metadata(c2.dir.join("manifest.json"))
            .unwrap()
            .modified()
            .unwrap()
    );
    assert_eq!(c1.manifest.id_bytes, 2, "BERT's vocabulary fits u16");
    // Another tokenizer: another cache.
    let cased = BertTokenizer::from_dir(common::fixtures().join("vocab-cased")).unwrap();
    let c3 = shards::open_or_build(&[f.display().to_string()], &cased, &opts, &cache, "t").unwrap();
    assert_ne!(c1.dir, c3.dir);
    // Changed text: rebuilt.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&f, "One sentence. Two sentences. Three now.\n").unwrap();
    let c4 = build(&[&f], &opts, &cache).unwrap();
    assert_ne!(c1.dir, c4.dir);
    assert_eq!(c4.manifest.sentences, 3);
}

#[test]
fn large_vocabularies_are_stored_as_u32() {
    let dir = tempfile::tempdir().unwrap();
    let mut vocab = std::fs::read_to_string(common::teacher().join("vocab.txt")).unwrap();
    for i in 0..40_000 {
        vocab.push_str(&format!("zzextra{i}\n"));
    }
    let tokdir = dir.path().join("tok");
    std::fs::create_dir_all(&tokdir).unwrap();
    std::fs::write(tokdir.join("vocab.txt"), vocab).unwrap();
    let tok = BertTokenizer::from_dir(&tokdir).unwrap();
    assert!(tok.vocab_size() > 65_536);
    let f = dir.path().join("a.txt");
    std::fs::write(&f, "zzextra39999 is a word. Emma was handsome.\n").unwrap();
    let opts = text_opts(Documents::BlankLine, Sentences::Split);
    let c = shards::open_or_build(
        &[f.display().to_string()],
        &tok,
        &opts,
        &dir.path().join("cache"),
        "t",
    )
    .unwrap();
    assert_eq!(c.manifest.id_bytes, 4);
    let mut s = Vec::new();
    c.sentence(0, 0, &mut s);
    assert_eq!(s, tok.word_pieces("zzextra39999 is a word.").unwrap());
    assert!(s[0] > 65_535);
}

#[test]
fn invalid_utf8_names_file_and_offset_or_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.txt");
    let mut bytes = b"Good line.\nSecond \xff\xfe line.\n".to_vec();
    bytes.extend_from_slice(b"More.\n");
    std::fs::write(&f, &bytes).unwrap();
    let cache = dir.path().join("cache");
    let e = build(
        &[&f],
        &text_opts(Documents::BlankLine, Sentences::Split),
        &cache,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("bad.txt") && e.contains("byte offset 18") && e.contains("invalid UTF-8"),
        "{e}"
    );
    let opts = TextOptions {
        invalid_utf8: InvalidUtf8::Replace,
        ..text_opts(Documents::BlankLine, Sentences::Split)
    };
    let c = build(&[&f], &opts, &cache).unwrap();
    assert_eq!(c.manifest.documents, 1);
}

#[test]
fn empty_files_are_skipped_and_an_empty_corpus_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    let blank = dir.path().join("blank.txt");
    let good = dir.path().join("good.txt");
    std::fs::write(&empty, "").unwrap();
    std::fs::write(&blank, "\n\n   \n").unwrap();
    std::fs::write(&good, "Real text here.\n").unwrap();
    let cache = dir.path().join("cache");
    let opts = text_opts(Documents::BlankLine, Sentences::Split);
    let c = build(&[&empty, &blank, &good], &opts, &cache).unwrap();
    assert_eq!(c.manifest.documents, 1);
    assert!(
        c.manifest.warnings.iter().any(|w| w.contains("empty.txt")),
        "{:?}",
        c.manifest.warnings
    );
    let e = build(&[&empty, &blank], &opts, &cache)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no usable document"), "{e}");
    // No half-built cache is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().contains("tmp")),
        "{leftovers:?}"
    );
}

#[test]
fn a_single_enormous_line_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("huge.txt");
    let sentence = "the quick brown fox jumps over the lazy dog ";
    let line = sentence.repeat(3 * (1 << 20) / sentence.len());
    std::fs::write(&f, &line).unwrap();
    let cache = dir.path().join("cache");
    let c = build(
        &[&f],
        &text_opts(Documents::BlankLine, Sentences::Split),
        &cache,
    )
    .unwrap();
    assert_eq!(c.manifest.documents, 1);
    let expected_tokens = 9 * (3 * (1 << 20) / sentence.len());
    assert_eq!(c.manifest.tokens as usize, expected_tokens);
    let yaml = format!(
        "train: [{}]\ncache_dir: {}\nmax_seq_len: 64\n",
        f.display(),
        cache.display()
    );
    let cfg: DataConfig = serde_yaml::from_str(&yaml).unwrap();
    let sets = data::prepare(&cfg, &tokenizer()).unwrap();
    let mut l = Loader::new(
        sets.train.corpus,
        sets.train.docs,
        options(&cfg, &tokenizer(), 4, 0),
        Cursor::default(),
    );
    let b = l.next_batch().unwrap();
    assert!(b.inputs.seq_len() <= 64);
}

#[test]
fn binary_and_missing_paths_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("model.bin");
    std::fs::write(&bin, [0u8, 1, 2, 3, 0, 0, 255]).unwrap();
    let cache = dir.path().join("cache");
    let opts = text_opts(Documents::BlankLine, Sentences::Split);
    let e = build(&[&bin], &opts, &cache).err().unwrap().to_string();
    assert!(e.contains("model.bin") && e.contains("binary"), "{e}");
    let e = build(&[&dir.path().join("missing.txt")], &opts, &cache)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.txt"), "{e}");
    let pats = vec![format!("{}/*.nothing", dir.path().display())];
    let e = shards::open_or_build(&pats, &tokenizer(), &opts, &cache, "t")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("matches no file"), "{e}");
}

#[test]
fn validation_fraction_splits_by_document() {
    let cache = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let mut cfg = austen_config(cache.path());
    cfg.validation_fraction = 0.1;
    let sets = data::prepare(&cfg, &tok).unwrap();
    let val = sets.validation.unwrap();
    let (t, v) = (sets.train.docs.len() as f64, val.docs.len() as f64);
    assert!(Arc::ptr_eq(&sets.train.corpus, &val.corpus));
    assert!((v / (t + v) - 0.1).abs() < 0.02, "{v} of {}", t + v);
    let train: std::collections::HashSet<u32> = sets.train.docs.iter().copied().collect();
    assert!(val.docs.iter().all(|d| !train.contains(d)));
}

#[test]
fn recipe_errors_name_the_file_and_field() {
    use destila::distill::recipe::Recipe;
    let p = Path::new("recipes/x.yaml");
    let e = Recipe::from_str("data:\n  train: [a]\n  max_seq_lenn: 3\n", p)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("recipes/x.yaml") && e.contains("data") && e.contains("max_seq_lenn"),
        "{e}"
    );
    let e = Recipe::from_str(
        "teacher: {checkpoint: t}\ndata:\n  train: [a]\n  max_seq_len: 3\n",
        p,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.max_seq_len") && e.contains("too short"),
        "{e}"
    );
    let e = Recipe::from_str(
        "teacher: {checkpoint: t}\ndata:\n  train: [a]\n  documents: pages\n",
        p,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data.documents") && e.contains("pages"), "{e}");
    let r = Recipe::from_file(root().join("recipes/demo.yaml")).unwrap();
    assert_eq!(r.data.max_seq_len, 128);
}

/// The two Debian corpora make setup builds (scripts/corpora_extra.py), with the document
/// counts data/README.md gives. WordNet is read through the data pipeline as the recipes
/// read it (short sentences; a synset's definition and example are two sentences); GCIDE,
/// 19 MB, is checked as text, to keep the test quick.
#[test]
fn wordnet_and_gcide_read_as_many_short_documents() {
    let docs_of = |path: PathBuf| -> Vec<String> {
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run make setup)", path.display()))
            .split("\n\n")
            .filter(|d| !d.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let corpora = root().join(".cache/corpora");
    let gcide = docs_of(corpora.join("gcide/train/gcide.txt"));
    assert_eq!(gcide.len(), 203_265);
    assert_eq!(
        docs_of(corpora.join("gcide/validation/gcide.txt")).len(),
        4_190
    );
    let words: usize = gcide.iter().map(|d| d.split_whitespace().count()).sum();
    let mean = words as f64 / gcide.len() as f64;
    assert!(
        mean > 4.0 && mean < 40.0,
        "GCIDE: {mean:.1} words a document"
    );
    // Nothing of the dictionary's own notices or markup.
    for d in &gcide {
        assert!(
            !d.contains("[1913 Webster]") && !d.contains("General Public License"),
            "{d}"
        );
    }

    let base = corpora.join("wordnet");
    let dir = tempfile::tempdir().unwrap();
    let cfg: DataConfig = serde_yaml::from_str(&format!(
        "train: [{}]\nvalidation: [{}]\ndocuments: blank-line\nsentences: split\ncache_dir: {}\n",
        base.join("train").display(),
        base.join("validation").display(),
        dir.path().join("cache").display()
    ))
    .unwrap();
    let sets = data::prepare(&cfg, &tokenizer()).unwrap();
    let c = &sets.train.corpus;
    assert_eq!(c.manifest.file_documents, vec![114_777]);
    let v = &sets.validation.as_ref().unwrap().corpus;
    assert_eq!(v.manifest.file_documents, vec![2_354]);
    let (mut sentences, mut tokens) = (0usize, 0usize);
    for d in 0..c.num_documents() {
        for i in 0..c.num_sentences(d) {
            sentences += 1;
            tokens += c.sentence_len(d, i);
        }
    }
    let mean = tokens as f64 / sentences as f64;
    assert!(
        sentences > 114_777 && mean > 4.0 && mean < 16.0,
        "WordNet: {sentences} sentences of {mean:.1} word pieces on average"
    );
    // WordNet's synset "life" (living things collectively): definition, then example.
    let doc = "Living things collectively. The oceans are teeming with life.";
    let text = std::fs::read_to_string(base.join("train/wordnet.txt")).unwrap();
    assert!(text.contains(&format!("\n\n{doc}\n\n")));
    let sents = destila::data::sentences::split(doc);
    assert_eq!(sents.len(), 2, "{sents:?}");
}
