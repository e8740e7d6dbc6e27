//! `destila eval`: what the student kept of the teacher. Above all the similarity structure
//! (how alike the two models judge sentences to be), then token-level agreement, the
//! pretraining heads, human judgements when given, and the walkthrough's "posto" contrast.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{Kind, Tensor};

use super::contrast::{contrast, Contrast, POSTO_A, POSTO_B, POSTO_WORD};
use super::stats::{knn_overlap, linear_cka, pearson, spearman, upper_triangle};
use crate::bert::{ForwardOptions, MlmPositions, Model};
use crate::data::config::{DataConfig, TextOptions};
use crate::data::{self, corpus};
use crate::embed::{cosine_matrix, Embedder, Pooling};
use crate::error::{Error, Result};
use crate::tokenize::Text;

/// The files `destila eval` writes into its output folder.
pub const REPORT_FILES: &[&str] = &["eval.json", "eval.csv", "similarity.svg", "similarity.png"];

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// One sentence a line; default: sentences of `corpus`.
    pub sentences: Option<PathBuf>,
    /// Text for the default sentences and for the heads' masked NSP examples.
    pub corpus: Vec<String>,
    /// Text for the heads' masked NSP examples instead of `corpus` (empty: `corpus`).
    pub heads_corpus: Vec<String>,
    /// CSV `text_a,text_b,score` of human similarity judgements.
    pub pairs: Option<PathBuf>,
    pub max_sentences: usize,
    /// Batches of masked NSP examples for the heads' metrics.
    pub head_batches: usize,
    pub batch_size: usize,
    pub max_len: usize,
    pub cache_dir: PathBuf,
    pub device: tch::Device,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            sentences: None,
            corpus: vec!["data/austen/validation".into()],
            heads_corpus: Vec::new(),
            pairs: None,
            max_sentences: 300,
            head_batches: 8,
            batch_size: 16,
            max_len: 128,
            cache_dir: ".cache/shards".into(),
            device: tch::Device::Cpu,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Structure {
    pub spearman: f64,
    pub pearson: f64,
    pub cka: f64,
    pub knn1: f64,
    pub knn10: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LayerCosine {
    pub student_layer: usize,
    pub teacher_layer: usize,
    pub cosine: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Heads {
    pub masked_positions: usize,
    pub sequences: usize,
    pub mlm_top1_agreement: f64,
    pub teacher_mlm_accuracy: f64,
    pub student_mlm_accuracy: f64,
    /// exp of the mean cross-entropy of the true token at the masked positions.
    pub teacher_mlm_perplexity: f64,
    pub student_mlm_perplexity: f64,
    /// KL(teacher ‖ student) of the MLM distributions at masked positions (T = 1).
    pub mlm_kl: f64,
    pub nsp_agreement: f64,
    pub teacher_nsp_accuracy: f64,
    pub student_nsp_accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Judgements {
    pub file: String,
    pub pairs: usize,
    pub teacher_spearman: f64,
    pub student_spearman: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub teacher: String,
    pub student: String,
    pub sentences: usize,
    pub sentence_pairs: usize,
    /// Similarity structure by pooling: "mean" and "cls".
    pub similarity: BTreeMap<String, Structure>,
    pub token_cosine: Vec<LayerCosine>,
    pub heads: Option<Heads>,
    pub heads_note: Option<String>,
    pub judgements: Option<Judgements>,
    pub posto: BTreeMap<String, Contrast>,
    /// The same evaluation of the student's initialisation, and the gains over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<super::baseline::Baseline>,
    /// (teacher, student) cosine of a sample of sentence pairs, mean pooling, for the plot.
    #[serde(skip)]
    pub scatter: Vec<(f64, f64)>,
}

impl EvalReport {
    /// The report of `n` sentences, before any measure is in it.
    fn of(teacher: &Path, student: &Path, n: usize) -> EvalReport {
        EvalReport {
            teacher: teacher.display().to_string(),
            student: student.display().to_string(),
            sentences: n,
            sentence_pairs: n * (n - 1) / 2,
            similarity: BTreeMap::new(),
            token_cosine: Vec::new(),
            heads: None,
            heads_note: None,
            judgements: None,
            posto: BTreeMap::new(),
            baseline: None,
            scatter: Vec::new(),
        }
    }
}

/// The sentences given, or those of `--corpus`; at least two.
fn sentences_to_compare(given: Option<Vec<String>>, opts: &EvalOptions) -> Result<Vec<String>> {
    let sentences = match given {
        Some(v) => v,
        None => default_sentences(&opts.corpus, opts.max_sentences)?,
    };
    if sentences.len() < 2 {
        return Err(Error::Invalid("fewer than 2 sentences to compare".into()));
    }
    Ok(sentences)
}

fn default_sentences(corpus_paths: &[String], max: usize) -> Result<Vec<String>> {
    let text = TextOptions::default();
    let mut all = Vec::new();
    for file in corpus::expand(corpus_paths)? {
        corpus::read_documents(&file, &text, |doc| {
            all.extend(
                doc.into_iter()
                    .filter(|s| (5..=60).contains(&s.split_whitespace().count())),
            );
            Ok(())
        })?;
    }
    if all.len() <= max {
        return Ok(all);
    }
    let step = all.len() as f64 / max as f64;
    Ok((0..max)
        .map(|i| all[(i as f64 * step) as usize].clone())
        .collect())
}

fn read_sentences(path: &Path) -> Result<Vec<String>> {
    let text = crate::error::read_to_string(path)?;
    let v: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let distinct = v.iter().collect::<std::collections::BTreeSet<_>>().len();
    if distinct < 3 {
        return Err(Error::Invalid(format!(
            "{}: {} distinct sentence(s) (of {}); the similarity structure needs at least 3 different ones, one a line",
            path.display(),
            distinct,
            v.len()
        )));
    }
    Ok(v)
}

/// Reads `text_a,text_b,score` (with that header).
pub fn read_pairs(path: &Path) -> Result<Vec<(String, String, f64)>> {
    // Read through the checked opener (a device such as /dev/zero is refused, not read
    // forever), and no more than a pairs file can hold.
    let f = crate::error::open_input(path)?;
    let mut r = csv::Reader::from_reader(std::io::Read::take(f, 1 << 30));
    let headers = r
        .headers()
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?
        .clone();
    let col = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: no column {name:?} (the header must name text_a, text_b and score; found {:?})",
                path.display(),
                headers.iter().collect::<Vec<_>>()
            ))
        })
    };
    let (a, b, s) = (col("text_a")?, col("text_b")?, col("score")?);
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec =
            rec.map_err(|e| Error::Invalid(format!("{}: line {line}: {e}", path.display())))?;
        let get = |k: usize, name: &str| {
            rec.get(k).ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: line {line}: column {name} is missing",
                    path.display()
                ))
            })
        };
        let score_text = get(s, "score")?;
        let score: f64 = score_text.trim().parse().map_err(|_| {
            Error::Invalid(format!(
                "{}: line {line}: score {score_text:?} is not a number",
                path.display()
            ))
        })?;
        out.push((
            get(a, "text_a")?.to_string(),
            get(b, "text_b")?.to_string(),
            score,
        ));
    }
    if out.len() < 3 {
        return Err(Error::Invalid(format!(
            "{}: {} pairs; a rank correlation needs at least 3",
            path.display(),
            out.len()
        )));
    }
    if let Some(i) = out.iter().position(|p| !p.2.is_finite()) {
        return Err(Error::Invalid(format!(
            "{}: line {}: score {} is not a finite number",
            path.display(),
            i + 2,
            out[i].2
        )));
    }
    if out.iter().all(|p| p.2 == out[0].2) {
        return Err(Error::Invalid(format!(
            "{}: every score is {}: with no variance a rank correlation is undefined",
            path.display(),
            out[0].2
        )));
    }
    Ok(out)
}

/// The similarity structure of `s` against `t` (embeddings of the same sentences): Spearman
/// and Pearson of their pair cosines, linear CKA, kNN overlap; and the two cosine lists.
pub fn structure(t: &Tensor, s: &Tensor) -> (Structure, Vec<f64>, Vec<f64>) {
    let (st, ss) = (cosine_matrix(t, t), cosine_matrix(s, s));
    let (ut, us) = (upper_triangle(&st), upper_triangle(&ss));
    let r = Structure {
        spearman: spearman(&ut, &us),
        pearson: pearson(&ut, &us),
        cka: linear_cka(t, s),
        knn1: knn_overlap(&st, &ss, 1),
        knn10: knn_overlap(&st, &ss, 10),
    };
    (r, ut, us)
}

/// Mean cosine between student and teacher hidden states on layer pairs of equal width.
fn token_cosine(
    t: &Embedder,
    s: &Embedder,
    sentences: &[String],
    batch: usize,
) -> Result<Vec<LayerCosine>> {
    let (tc, sc) = (t.model.config(), s.model.config());
    if tc.hidden_size != sc.hidden_size {
        return Ok(Vec::new());
    }
    let (lt, ls) = (tc.num_hidden_layers as usize, sc.num_hidden_layers as usize);
    let pairs: Vec<(usize, usize)> = (1..=ls)
        .map(|i| (i, ((i * lt) as f64 / ls as f64).round() as usize))
        .collect();
    let mut sums = vec![0.0; pairs.len()];
    let mut tokens = 0.0;
    for chunk in sentences.chunks(batch.max(1)) {
        let texts: Vec<Text> = chunk.iter().map(|x| Text::Single(x)).collect();
        let (inputs, _) = t.tokenizer.batch(&texts)?;
        let run = |m: &Model| {
            tch::no_grad(|| m.forward(&inputs.to_device(m.device()), &ForwardOptions::default()))
        };
        let (ot, os) = (run(&t.model)?, run(&s.model)?);
        let mask = inputs.attention_mask.to_kind(Kind::Float);
        let n = mask.sum(Kind::Float).double_value(&[]);
        for (k, &(a, b)) in pairs.iter().enumerate() {
            let cos = Tensor::cosine_similarity(
                &os.hidden_states[a]
                    .to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu),
                &ot.hidden_states[b]
                    .to_kind(Kind::Float)
                    .to_device(tch::Device::Cpu),
                -1,
                1e-8,
            );
            sums[k] += (cos * &mask).sum(Kind::Float).double_value(&[]);
        }
        tokens += n;
    }
    Ok(pairs
        .iter()
        .zip(sums)
        .map(|(&(a, b), s)| LayerCosine {
            student_layer: a,
            teacher_layer: b,
            cosine: s / tokens.max(1.0),
        })
        .collect())
}

/// Masked sentence pairs of the eval corpus for the heads' metrics (held-out loader), no
/// longer than either model's positions reach.
fn head_loader(t: &Embedder, s: &Embedder, opts: &EvalOptions) -> Result<data::Loader> {
    // No longer than either model's positions reach.
    let positions = |m: &Model| m.config().max_position_embeddings.max(8) as usize;
    let max_len = opts
        .max_len
        .min(positions(&t.model))
        .min(positions(&s.model));
    let corpus = if opts.heads_corpus.is_empty() {
        &opts.corpus
    } else {
        &opts.heads_corpus
    };
    let cfg: DataConfig = serde_yaml::from_str(&format!(
        "train: {}\nmax_seq_len: {}\ncache_dir: {}\n",
        serde_json::to_string(corpus).expect("json"),
        max_len,
        serde_json::to_string(&opts.cache_dir).expect("json"),
    ))
    .map_err(|e| Error::Invalid(format!("eval corpus options: {e}")))?;
    let sets = data::prepare(&cfg, &t.tokenizer)?;
    let lo = data::loader_options(&cfg, &t.tokenizer, opts.batch_size, data::HELD_OUT_SEED);
    Ok(data::held_out_loader(
        sets.train.corpus,
        sets.train.docs,
        lo,
    ))
}

fn heads(
    t: &Embedder,
    s: &Embedder,
    opts: &EvalOptions,
) -> Result<std::result::Result<Heads, String>> {
    let has = |m: &Model| m.bert.heads.mlm && m.bert.heads.nsp;
    if !has(&t.model) || !has(&s.model) {
        return Ok(Err(format!(
            "MLM/NSP head metrics need both heads on both models (teacher: {}; student: {})",
            t.model.bert.heads.describe(),
            s.model.bert.heads.describe()
        )));
    }
    let mut loader = head_loader(t, s, opts)?;
    let (mut agree, mut t_ok, mut s_ok, mut kl, mut n) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut t_ce, mut s_ce) = (0.0, 0.0);
    let (mut nsp_agree, mut t_nsp, mut s_nsp, mut seqs) = (0.0, 0.0, 0.0, 0.0);
    for _ in 0..opts.head_batches {
        let Some(items) = loader.next_items() else {
            break;
        };
        let b = data::batch::collate(&items, t.tokenizer.pad_id);
        let run = |m: &Model| {
            let d = m.device();
            let o = ForwardOptions {
                mlm: MlmPositions::Flat(b.masked_positions.to_device(d)),
                nsp: true,
                ..Default::default()
            };
            tch::no_grad(|| m.forward(&b.inputs.to_device(d), &o))
        };
        let (ot, os) = (run(&t.model)?, run(&s.model)?);
        let cpu = |x: &Option<Tensor>| {
            x.as_ref()
                .expect("asked for")
                .to_kind(Kind::Float)
                .to_device(tch::Device::Cpu)
        };
        let (lt, ls) = (cpu(&ot.mlm_logits), cpu(&os.mlm_logits));
        let (pt, ps) = (lt.argmax(-1, false), ls.argmax(-1, false));
        agree += pt.eq_tensor(&ps).sum(Kind::Float).double_value(&[]);
        t_ok += pt
            .eq_tensor(&b.masked_labels)
            .sum(Kind::Float)
            .double_value(&[]);
        s_ok += ps
            .eq_tensor(&b.masked_labels)
            .sum(Kind::Float)
            .double_value(&[]);
        kl += crate::distill::losses::kd(&lt, &ls, 1.0).double_value(&[]) * lt.size()[0] as f64;
        let ce = |l: &Tensor| {
            l.log_softmax(-1, Kind::Float)
                .gather(1, &b.masked_labels.unsqueeze(1), false)
                .sum(Kind::Float)
                .double_value(&[])
        };
        t_ce -= ce(&lt);
        s_ce -= ce(&ls);
        n += lt.size()[0] as f64;
        let (nt, ns) = (
            cpu(&ot.nsp_logits).argmax(-1, false),
            cpu(&os.nsp_logits).argmax(-1, false),
        );
        nsp_agree += nt.eq_tensor(&ns).sum(Kind::Float).double_value(&[]);
        t_nsp += nt
            .eq_tensor(&b.nsp_labels)
            .sum(Kind::Float)
            .double_value(&[]);
        s_nsp += ns
            .eq_tensor(&b.nsp_labels)
            .sum(Kind::Float)
            .double_value(&[]);
        seqs += b.size() as f64;
    }
    let (n, seqs) = (n.max(1.0), seqs.max(1.0));
    Ok(Ok(Heads {
        masked_positions: n as usize,
        sequences: seqs as usize,
        mlm_top1_agreement: agree / n,
        teacher_mlm_accuracy: t_ok / n,
        student_mlm_accuracy: s_ok / n,
        teacher_mlm_perplexity: (t_ce / n).exp(),
        student_mlm_perplexity: (s_ce / n).exp(),
        mlm_kl: kl / n,
        nsp_agreement: nsp_agree / seqs,
        teacher_nsp_accuracy: t_nsp / seqs,
        student_nsp_accuracy: s_nsp / seqs,
    }))
}

/// The similarity structure by pooling ("mean", "cls").
type Structures = BTreeMap<String, Structure>;

/// The similarity structure under mean and [CLS] pooling, and (mean pooling) the scatter
/// of pair cosines, at most about 2000 points.
fn similarities(
    t: &Embedder,
    s: &Embedder,
    refs: &[&str],
    batch_size: usize,
) -> Result<(Structures, Vec<(f64, f64)>)> {
    let mut similarity = BTreeMap::new();
    let mut scatter = Vec::new();
    for (name, pooling) in [("mean", Pooling::Mean), ("cls", Pooling::Cls)] {
        let (et, es) = (
            t.embed(refs, pooling, batch_size)?,
            s.embed(refs, pooling, batch_size)?,
        );
        let (st, ut, us) = structure(&et, &es);
        for (who, m, cos) in [("teacher", t, &ut), ("student", s, &us)] {
            if cos.iter().all(|c| (c - cos[0]).abs() < 1e-12) {
                return Err(Error::Invalid(format!(
                    "{}: its {name}-pooled embeddings give every pair of the {} sentences the same cosine ({:.4}): with no variance the similarity structure has no correlation (the {who} maps them all alike; give varied sentences)",
                    m.dir.display(),
                    refs.len(),
                    cos[0]
                )));
            }
        }
        if pooling == Pooling::Mean {
            let step = (ut.len() / 2000).max(1);
            scatter = ut
                .iter()
                .zip(&us)
                .step_by(step)
                .map(|(&a, &b)| (a, b))
                .collect();
        }
        similarity.insert(name.to_string(), st);
    }
    Ok((similarity, scatter))
}

/// Agreement with human judgements (a pairs CSV): Spearman of each model's pair cosines
/// with the scores. Each distinct text is embedded once (n documents have n² / 2 pairs).
fn judgements(
    t: &Embedder,
    s: &Embedder,
    p: &Path,
    pairs: &[(String, String, f64)],
    batch_size: usize,
) -> Result<Judgements> {
    judgements_by(
        &|texts: &[&str]| t.embed(texts, Pooling::Mean, batch_size),
        &|texts: &[&str]| s.embed(texts, Pooling::Mean, batch_size),
        p,
        pairs,
    )
}

/// A judged pair: two texts and their score.
type Pair = (String, String, f64);

/// Mean-pooled sentence embeddings of texts, by whichever model.
type EmbedFn<'a> = dyn Fn(&[&str]) -> Result<Tensor> + 'a;

/// `judgements` with each model's embeddings given as a function.
fn judgements_by(
    t: &EmbedFn,
    s: &EmbedFn,
    p: &Path,
    pairs: &[(String, String, f64)],
) -> Result<Judgements> {
    let mut texts: Vec<&str> = Vec::new();
    let mut index: BTreeMap<&str, i64> = BTreeMap::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (x, y, _) in pairs {
        for (t, out) in [(x.as_str(), &mut a), (y.as_str(), &mut b)] {
            let i = *index.entry(t).or_insert_with(|| {
                texts.push(t);
                texts.len() as i64 - 1
            });
            out.push(i);
        }
    }
    let (a, b) = (Tensor::from_slice(&a), Tensor::from_slice(&b));
    let scores: Vec<f64> = pairs.iter().map(|p| p.2).collect();
    let cos = |e: &EmbedFn| -> Result<Vec<f64>> {
        let all = e(&texts)?;
        let dev = all.device();
        let (x, y) = (
            all.index_select(0, &a.to_device(dev)),
            all.index_select(0, &b.to_device(dev)),
        );
        let c = Tensor::cosine_similarity(&x, &y, -1, 1e-8).to_kind(Kind::Double);
        Ok(Vec::try_from(c).expect("doubles"))
    };
    Ok(Judgements {
        file: p.display().to_string(),
        pairs: pairs.len(),
        teacher_spearman: spearman(&cos(t)?, &scores),
        student_spearman: spearman(&cos(s)?, &scores),
    })
}

/// Compares a student with its teacher.
pub fn evaluate(teacher: &Path, student: &Path, opts: &EvalOptions) -> Result<EvalReport> {
    // The input files first, before any model runs.
    let pairs = match &opts.pairs {
        Some(p) => Some((p, read_pairs(p)?)),
        None => None,
    };
    let sentences = match &opts.sentences {
        Some(p) => Some(read_sentences(p)?),
        None => None,
    };
    if crate::encoder::family(teacher)? != crate::encoder::Family::Bert {
        return evaluate_text_teacher(teacher, student, opts, pairs, sentences);
    }
    let t = Embedder::open(teacher, opts.device)?;
    let s = Embedder::open(student, opts.device)?;
    let (tv, sv) = (t.model.config().vocab_size, s.model.config().vocab_size);
    if tv != sv {
        return Err(Error::Invalid(format!(
            "the student ({}) has a vocabulary of {sv}, the teacher ({}) of {tv}: they cannot be compared token for token",
            student.display(),
            teacher.display()
        )));
    }
    let sentences = sentences_to_compare(sentences, opts)?;
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let (similarity, scatter) = similarities(&t, &s, &refs, opts.batch_size)?;
    let token_cosine = token_cosine(&t, &s, &sentences, opts.batch_size)?;
    let (heads, heads_note) = match heads(&t, &s, opts)? {
        Ok(h) => (Some(h), None),
        Err(note) => (None, Some(note)),
    };
    let judgements = match &pairs {
        None => None,
        Some((p, v)) => Some(judgements(&t, &s, p, v, opts.batch_size)?),
    };
    let mut posto = BTreeMap::new();
    posto.insert(
        "teacher".to_string(),
        contrast(&t, POSTO_A, POSTO_B, POSTO_WORD)?,
    );
    posto.insert(
        "student".to_string(),
        contrast(&s, POSTO_A, POSTO_B, POSTO_WORD)?,
    );
    Ok(EvalReport {
        similarity,
        token_cosine,
        heads,
        heads_note,
        judgements,
        posto,
        scatter,
        ..EvalReport::of(teacher, student, sentences.len())
    })
}

/// Against a teacher of another family (an MPNet, which `distill` uses as a teacher that
/// reads text): the sentence-embedding measures, each model through its own tokenizer
/// (mean pooling, the teacher's as sentence-transformers pools it); no token cosine or
/// heads, and the "posto" contrast for the student alone.
fn evaluate_text_teacher(
    teacher: &Path,
    student: &Path,
    opts: &EvalOptions,
    pairs: Option<(&PathBuf, Vec<Pair>)>,
    sentences: Option<Vec<String>>,
) -> Result<EvalReport> {
    let t = crate::encoder::TextEncoder::open(teacher, opts.device)?;
    let s = Embedder::open(student, opts.device)?;
    let sentences = sentences_to_compare(sentences, opts)?;
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let bs = opts.batch_size;
    let t_embed = |x: &[&str]| t.embed(x, bs);
    let s_embed = |x: &[&str]| s.embed(x, Pooling::Mean, bs);
    let (et, es) = (t_embed(&refs)?, s_embed(&refs)?);
    let (st, ut, us) = structure(&et, &es);
    for (who, dir, cos) in [("teacher", teacher, &ut), ("student", student, &us)] {
        if cos.iter().all(|c| (c - cos[0]).abs() < 1e-12) {
            return Err(Error::Invalid(format!(
                "{}: its mean-pooled embeddings give every pair of the {} sentences the same cosine ({:.4}): with no variance the similarity structure has no correlation (the {who} maps them all alike; give varied sentences)",
                dir.display(),
                refs.len(),
                cos[0]
            )));
        }
    }
    let step = (ut.len() / 2000).max(1);
    let scatter = ut
        .iter()
        .zip(&us)
        .step_by(step)
        .map(|(&a, &b)| (a, b))
        .collect();
    let mut similarity = BTreeMap::new();
    similarity.insert("mean".to_string(), st);
    let judgements = match &pairs {
        None => None,
        Some((p, v)) => Some(judgements_by(&t_embed, &s_embed, p, v)?),
    };
    let posto = BTreeMap::from([(
        "student".to_string(),
        contrast(&s, POSTO_A, POSTO_B, POSTO_WORD)?,
    )]);
    Ok(EvalReport {
        similarity,
        heads_note: Some(format!(
            "the teacher ({}) is an MPNet: no MLM/NSP heads to compare with",
            teacher.display()
        )),
        judgements,
        posto,
        scatter,
        ..EvalReport::of(teacher, student, sentences.len())
    })
}

/// `evaluate`, and, with `init`, the same evaluation of the student's initialisation and
/// the gains over it (`EvalReport::baseline`).
pub fn evaluate_with_init(
    teacher: &Path,
    student: &Path,
    init: Option<&Path>,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    let mut report = evaluate(teacher, student, opts)?;
    if let Some(init) = init {
        let base = evaluate(teacher, init, opts)?;
        report.baseline = Some(super::baseline::compare(
            &report.flat(),
            &base.flat(),
            &base.student,
        ));
    }
    Ok(report)
}

impl EvalReport {
    /// Flat `metric,value` rows, the same keys as eval.json.
    pub fn flat(&self) -> Vec<(String, f64)> {
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, f64)>) {
            match v {
                serde_json::Value::Number(n) => {
                    out.push((prefix.to_string(), n.as_f64().unwrap_or(f64::NAN)))
                }
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&p, v, out);
                    }
                }
                serde_json::Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        walk(&format!("{prefix}.{i}"), v, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(
            "",
            &serde_json::to_value(self).expect("serialises"),
            &mut out,
        );
        out
    }

    /// Writes eval.json, eval.csv and similarity.svg ([`REPORT_FILES`]) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join("eval.json");
        let text = serde_json::to_string_pretty(self).expect("serialises");
        crate::error::write_atomic(&json, |tmp| {
            std::fs::write(tmp, &text).map_err(|e| Error::io(tmp, e))
        })?;
        let csv_path = dir.join("eval.csv");
        let mut body = String::from("metric,value\n");
        for (k, v) in self.flat() {
            body += &format!("{k},{v}\n");
        }
        crate::error::write_atomic(&csv_path, |tmp| {
            std::fs::write(tmp, &body).map_err(|e| Error::io(tmp, e))
        })?;
        let svg_path = dir.join("similarity.svg");
        let series = [crate::plot::Series {
            name: "sentence pairs".into(),
            color: "#1f77b4",
            mark: crate::plot::Mark::Points,
            points: self.scatter.clone(),
        }];
        let title = format!(
            "pair similarity, mean pooling: Spearman {:.3}",
            self.similarity
                .get("mean")
                .map(|s| s.spearman)
                .unwrap_or(f64::NAN)
        );
        let svg = crate::plot::xy(&title, "teacher cosine", "student cosine", &series, false)?;
        crate::plot::write(&svg_path, &svg)?;
        Ok(vec![json, csv_path, svg_path])
    }
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "teacher  {}", self.teacher)?;
        writeln!(f, "student  {}", self.student)?;
        writeln!(
            f,
            "similarity structure: {} sentences, {} pairs",
            self.sentences, self.sentence_pairs
        )?;
        writeln!(
            f,
            "  {:<8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "pooling", "Spearman", "Pearson", "CKA", "kNN@1", "kNN@10"
        )?;
        for (name, s) in &self.similarity {
            writeln!(
                f,
                "  {name:<8} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
                s.spearman, s.pearson, s.cka, s.knn1, s.knn10
            )?;
        }
        if !self.token_cosine.is_empty() {
            writeln!(f, "token cosine (student layer ~ teacher layer)")?;
            for c in &self.token_cosine {
                writeln!(
                    f,
                    "  {:>2} ~ {:>2}   {:.4}",
                    c.student_layer, c.teacher_layer, c.cosine
                )?;
            }
        }
        match (&self.heads, &self.heads_note) {
            (Some(h), _) => {
                writeln!(
                    f,
                    "pretraining heads: {} masked positions, {} sequences",
                    h.masked_positions, h.sequences
                )?;
                writeln!(f, "  {:<26} {:>9} {:>9}", "", "teacher", "student")?;
                writeln!(
                    f,
                    "  {:<26} {:>9.4} {:>9.4}",
                    "MLM accuracy", h.teacher_mlm_accuracy, h.student_mlm_accuracy
                )?;
                writeln!(
                    f,
                    "  {:<26} {:>9.2} {:>9.2}",
                    "MLM perplexity", h.teacher_mlm_perplexity, h.student_mlm_perplexity
                )?;
                writeln!(
                    f,
                    "  {:<26} {:>9.4} {:>9.4}",
                    "NSP accuracy", h.teacher_nsp_accuracy, h.student_nsp_accuracy
                )?;
                writeln!(
                    f,
                    "  {:<26} {:>19.4}",
                    "MLM top-1 agreement", h.mlm_top1_agreement
                )?;
                writeln!(f, "  {:<26} {:>19.4}", "MLM KL(teacher||student)", h.mlm_kl)?;
                writeln!(f, "  {:<26} {:>19.4}", "NSP agreement", h.nsp_agreement)?;
            }
            (None, Some(note)) => writeln!(f, "pretraining heads: skipped: {note}")?,
            _ => {}
        }
        if let Some(j) = &self.judgements {
            writeln!(
                f,
                "human judgements ({}, {} pairs): Spearman teacher {:.4}, student {:.4}",
                j.file, j.pairs, j.teacher_spearman, j.student_spearman
            )?;
        }
        writeln!(
            f,
            "\"posto\": static versus contextual, teacher then student"
        )?;
        for (who, c) in &self.posto {
            writeln!(
                f,
                "  {who:<8} word static {:.4}, word contextual {:.4}; sentence static {:.4}, mean {:.4}, [CLS] {:.4}",
                c.word_static, c.word_contextual, c.sentence_static, c.sentence_mean, c.sentence_cls
            )?;
        }
        if let Some(b) = &self.baseline {
            write!(f, "{b}")?;
        }
        Ok(())
    }
}
