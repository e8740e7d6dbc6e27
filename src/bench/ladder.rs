//! The compression ladder (`destila bench ladder`): the teacher, the student, and the
//! student made smaller step by step (f16, int8, pruned vocabulary, ONNX fp32 and int8),
//! then each structurally pruned student given (f32, int8, ONNX fp32 and int8), each with
//! its file size, parameters, latency at batch 1/8/32 x 32/128 (median, p95; every rung
//! timed in turn, in interleaved rounds, so that drift in the machine hits all alike), similarity
//! structure (Spearman of pair cosines, linear CKA) against the teacher and against the
//! uncompressed student on the given sentences, and agreement with human judgements when a
//! pairs file is given; the frontier chart plots speed-up against structure.

use std::path::{Path, PathBuf};

use super::forward::{forward_throughput, ForwardBench, MlmMode};
use crate::embed::{Embedder, Pooling};
use crate::error::{Error, Result};
use crate::export::{export, ExportOptions, HeadsMode};

/// The files `destila bench ladder` writes into its output folder.
pub const LADDER_FILES: &[&str] = &[
    "ladder.md",
    "ladder.csv",
    "variants",
    "frontier.svg",
    "frontier.png",
];

#[derive(Debug, Clone)]
pub struct LadderOptions {
    /// One sentence a line: the structure is measured on their pair cosines.
    pub sentences: PathBuf,
    /// Text to prune the vocabulary to (no pruned rung without it).
    pub prune_corpus: Vec<String>,
    pub iters: usize,
    /// Latency rounds: each round times every rung once, in turn (the order reversed every
    /// other round); a cell's median is the median of its rounds' medians.
    pub rounds: usize,
    pub device: tch::Device,
    /// A narrower student (e.g. from recipes/narrow.yaml), measured as its own rung.
    pub narrow: Option<PathBuf>,
    /// The Python with onnxruntime and transformers that times and runs the ONNX rungs.
    pub python: PathBuf,
    /// Structurally pruned students (`destila prune --heads/--ffn/--hidden`, or a run with
    /// `student.prune`), each measured in f32, int8 and ONNX.
    pub pruned: Vec<PathBuf>,
    /// Human similarity judgements (`text_a,text_b,score`): each rung's Spearman with them.
    pub pairs: Option<PathBuf>,
}

/// The texts every rung embeds: the structure sentences, then the distinct texts of the
/// judgement pairs, with each pair's two indices and score.
struct Texts {
    all: Vec<String>,
    sentences: usize,
    pairs: Vec<(i64, i64, f64)>,
}

impl Texts {
    fn new(sentences: Vec<String>, pairs: &[(String, String, f64)]) -> Texts {
        let n = sentences.len();
        let mut all = sentences;
        let mut index = std::collections::BTreeMap::new();
        // One text a line for onnxruntime's side: a pair text's line breaks become spaces
        // (as a tokenizer sees them anyway).
        let mut id = |t: &str, all: &mut Vec<String>| -> i64 {
            let t = t.replace(['\n', '\r'], " ");
            *index.entry(t.clone()).or_insert_with(|| {
                all.push(t);
                all.len() as i64 - 1
            })
        };
        let pairs = pairs
            .iter()
            .map(|(a, b, s)| (id(a, &mut all), id(b, &mut all), *s))
            .collect();
        Texts {
            all,
            sentences: n,
            pairs,
        }
    }

    /// The structure sentences' rows of `emb` (every text's embeddings).
    fn structure_rows(&self, emb: &tch::Tensor) -> tch::Tensor {
        emb.narrow(0, 0, self.sentences as i64)
    }

    /// Spearman of the pairs' cosines with the human scores, when there are pairs.
    fn judgement(&self, emb: &tch::Tensor) -> Option<f64> {
        if self.pairs.is_empty() {
            return None;
        }
        let idx = |f: fn(&(i64, i64, f64)) -> i64| {
            tch::Tensor::from_slice(&self.pairs.iter().map(f).collect::<Vec<_>>())
        };
        let (a, b) = (
            emb.index_select(0, &idx(|p| p.0)),
            emb.index_select(0, &idx(|p| p.1)),
        );
        let c = tch::Tensor::cosine_similarity(&a, &b, -1, 1e-8).to_kind(tch::Kind::Double);
        let cos: Vec<f64> = Vec::try_from(c).ok()?;
        let scores: Vec<f64> = self.pairs.iter().map(|p| p.2).collect();
        Some(crate::eval::stats::spearman(&cos, &scores))
    }
}

/// The runtime of the rungs whose int8 dense layers run through libtorch's int8 kernels.
const INT8_KERNELS: &str = "destila (libtorch int8 kernels)";

/// `scripts/ladder_onnx.py`, carried by the binary.
const ONNX_SCRIPT: &str = include_str!("../../scripts/ladder_onnx.py");

/// A latency grid: (batch, length, median ms, p95 ms).
type Grid = Vec<(i64, i64, f64, f64)>;

/// Runs `scripts/ladder_onnx.py` on `dir/model.onnx` with `args`; its one-line JSON reply.
fn onnx_call<T: serde::de::DeserializeOwned>(
    dir: &Path,
    args: &[&str],
    o: &LadderOptions,
) -> std::result::Result<T, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = tmp.path().join("ladder_onnx.py");
    std::fs::write(&script, ONNX_SCRIPT).map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(&o.python);
    cmd.arg(&script)
        .arg(dir)
        .args(["--threads", &tch::get_num_threads().to_string()])
        .args(args);
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", o.python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no message");
        return Err(format!("{}: {last}", o.python.display()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .map_err(|e| format!("{}: unreadable reply: {e}", o.python.display()))
}

/// The sentence embeddings of `dir/model.onnx` in onnxruntime and its version, or why not.
fn onnx_embed(
    dir: &Path,
    refs: &[&str],
    max_len: usize,
    o: &LadderOptions,
) -> std::result::Result<(tch::Tensor, String), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sentences = tmp.path().join("sentences.txt");
    std::fs::write(&sentences, refs.join("\n")).map_err(|e| e.to_string())?;
    #[derive(serde::Deserialize)]
    struct Reply {
        embeddings: Vec<Vec<f32>>,
        onnxruntime: String,
    }
    let s = sentences.to_string_lossy();
    let r: Reply = onnx_call(dir, &["--embed", &s, "--max-len", &max_len.to_string()], o)?;
    if r.embeddings.len() != refs.len() {
        return Err(format!(
            "{} embeddings for {} sentences",
            r.embeddings.len(),
            refs.len()
        ));
    }
    let flat: Vec<f32> = r.embeddings.iter().flatten().copied().collect();
    let emb = tch::Tensor::from_slice(&flat).view([refs.len() as i64, -1]);
    Ok((emb, r.onnxruntime))
}

/// How a rung is timed: through destila (libtorch, int8 kernels or not) or onnxruntime.
#[derive(Debug, Clone)]
enum Timer {
    Destila { dir: PathBuf, int8: bool },
    Onnx { dir: PathBuf },
}

impl Timer {
    fn grid(&self, o: &LadderOptions) -> Result<Grid> {
        match self {
            Timer::Destila { dir, int8 } => latency(&Embedder::open_with(dir, o.device, *int8)?, o),
            Timer::Onnx { dir } => {
                #[derive(serde::Deserialize)]
                struct Reply {
                    latency: Grid,
                }
                let r: Reply = onnx_call(dir, &["--iters", &o.iters.to_string()], o)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
                Ok(r.latency)
            }
        }
    }
}

/// Times every rung that has a timer, `o.rounds` times in turn (the order reversed every
/// other round), and sets each cell to the median of its rounds' medians and the largest of
/// their p95s; `Rung::rounds` keeps each round's median.
fn time_rungs(rungs: &mut [Rung], o: &LadderOptions) -> Result<()> {
    let timed: Vec<usize> = (0..rungs.len())
        .filter(|&i| rungs[i].timer.is_some())
        .collect();
    let mut grids: Vec<Vec<Grid>> = vec![Vec::new(); rungs.len()];
    for round in 0..o.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            timed.clone()
        } else {
            timed.iter().rev().copied().collect()
        };
        for i in order {
            eprintln!(
                "latency round {}/{}: {}",
                round + 1,
                o.rounds,
                rungs[i].name
            );
            let timer = rungs[i].timer.clone().expect("timed rungs have timers");
            grids[i].push(timer.grid(o)?);
        }
    }
    for (r, g) in rungs.iter_mut().zip(grids) {
        let Some(first) = g.first() else { continue };
        r.latency = first
            .iter()
            .enumerate()
            .map(|(c, &(b, l, _, _))| {
                let mut m: Vec<f64> = g.iter().map(|x| x[c].2).collect();
                let p95 = g.iter().map(|x| x[c].3).fold(0.0, f64::max);
                r.rounds.push(m.clone());
                m.sort_by(f64::total_cmp);
                // The middle one, or the mean of the middle two.
                let median = (m[(m.len() - 1) / 2] + m[m.len() / 2]) / 2.0;
                (b, l, median, p95)
            })
            .collect();
    }
    Ok(())
}

/// One rung of the ladder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rung {
    pub name: String,
    /// The model it is a form of (the teacher, the student, a pruned student): the
    /// frontier chart's series.
    pub family: String,
    /// What runs it, and how.
    pub runtime: String,
    pub file_bytes: u64,
    pub parameters: Option<i64>,
    /// (batch, length, median ms, p95 ms); empty where destila cannot run it.
    pub latency: Vec<(i64, i64, f64, f64)>,
    pub structure_vs_teacher: Option<(f64, f64)>,
    pub structure_vs_student: Option<(f64, f64)>,
    /// Spearman of its pair cosines with the human judgements (`--pairs`).
    pub judgement: Option<f64>,
    /// Each latency cell's median in every round, in `latency`'s order.
    pub rounds: Vec<Vec<f64>>,
    #[serde(skip)]
    timer: Option<Timer>,
}

fn size(dir: &Path, file: &str) -> u64 {
    std::fs::metadata(dir.join(file))
        .map(|m| m.len())
        .unwrap_or(0)
}

fn latency(e: &Embedder, o: &LadderOptions) -> Result<Vec<(i64, i64, f64, f64)>> {
    let mut out = Vec::new();
    for &seq_len in &[32i64, 128] {
        for &batch in &[1i64, 8, 32] {
            let setup = ForwardBench {
                batch,
                seq_len: seq_len.min(e.model.config().max_position_embeddings),
                mlm: MlmMode::None,
                mask_fraction: 0.15,
                nsp: false,
                warmup: 1,
                iters: o.iters,
                threads: tch::get_num_threads(),
                device: crate::device::describe(o.device),
            };
            let r = forward_throughput(&e.model, &setup)?;
            out.push((batch, seq_len, r.median_s * 1e3, r.p95_s * 1e3));
        }
    }
    Ok(out)
}

/// Measures `dir` (an HF folder destila runs) against the teacher's and the student's
/// embeddings of the sentences; returns every text's embeddings.
fn rung(
    (name, family): (&str, &str),
    runtime: &str,
    dir: &Path,
    texts: &Texts,
    reference: Option<(&tch::Tensor, &tch::Tensor)>,
    o: &LadderOptions,
) -> Result<(Rung, tch::Tensor)> {
    let e = Embedder::open_with(dir, o.device, runtime == INT8_KERNELS)?;
    let refs: Vec<&str> = texts.all.iter().map(String::as_str).collect();
    let all = e.embed(&refs, Pooling::Mean, 32)?;
    let emb = texts.structure_rows(&all);
    let vs = |r: &tch::Tensor| {
        let (s, _, _) = crate::eval::compare::structure(r, &emb);
        (s.spearman, s.cka)
    };
    let rung = Rung {
        name: name.into(),
        family: family.into(),
        runtime: runtime.into(),
        file_bytes: size(
            dir,
            &crate::bert::weights::weights_file(dir)
                .file_name()
                .unwrap()
                .to_string_lossy(),
        ),
        parameters: Some(crate::bert::model::count_params(&e.model.vs, "")),
        latency: Vec::new(),
        structure_vs_teacher: reference.map(|(t, _)| vs(t)),
        structure_vs_student: reference.map(|(_, s)| vs(s)),
        judgement: texts.judgement(&all),
        rounds: Vec::new(),
        timer: Some(Timer::Destila {
            dir: dir.to_path_buf(),
            int8: runtime == INT8_KERNELS,
        }),
    };
    Ok((rung, emb))
}

/// The ONNX rungs (fp32 and int8) of the model in `from`, exported under `work`.
#[allow(clippy::too_many_arguments)]
fn onnx_rungs(
    from: &Path,
    label: &str,
    family: &str,
    work: &Path,
    texts: &Texts,
    (te, se): (&tch::Tensor, &tch::Tensor),
    max_len: usize,
    o: &LadderOptions,
) -> Result<Vec<Rung>> {
    let vs = |r: &tch::Tensor, e: &tch::Tensor| {
        let (x, _, _) = crate::eval::compare::structure(r, e);
        (x.spearman, x.cka)
    };
    let refs: Vec<&str> = texts.all.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for (name, int8) in [("onnx-fp32", false), ("onnx-int8", true)] {
        let dir = work.join(format!("{}-{name}", label.replace(' ', "-")));
        crate::onnx::export_onnx(from, &dir, int8, true)?;
        let mut r = Rung {
            name: format!("{label} {name}"),
            family: family.into(),
            runtime: String::new(),
            file_bytes: size(&dir, "model.onnx"),
            parameters: None,
            latency: Vec::new(),
            structure_vs_teacher: None,
            structure_vs_student: None,
            judgement: None,
            rounds: Vec::new(),
            timer: None,
        };
        match onnx_embed(&dir, &refs, max_len, o) {
            Ok((all, version)) => {
                let emb = texts.structure_rows(&all);
                r.runtime = format!("onnxruntime {version}");
                r.timer = Some(Timer::Onnx { dir: dir.clone() });
                r.structure_vs_teacher = Some(vs(te, &emb));
                r.structure_vs_student = Some(vs(se, &emb));
                r.judgement = texts.judgement(&all);
            }
            Err(e) => {
                eprintln!("warning: {}: not run in onnxruntime ({e})", r.name);
                r.runtime = "onnxruntime: not available (--python)".into();
            }
        }
        out.push(r);
    }
    Ok(out)
}

/// The sentences of `path` (one a line), at least 3 of them.
pub fn check_sentences(path: &Path) -> Result<Vec<String>> {
    let sentences = crate::data::corpus::read_texts(path, 1 << 16)?.0;
    if sentences.len() < 3 {
        return Err(Error::Invalid(format!(
            "--sentences {}: at least 3 sentences are needed",
            path.display()
        )));
    }
    Ok(sentences)
}

/// The ladder from `teacher` down to `student`'s compressed forms and the pruned students,
/// written under `work`.
pub fn ladder(teacher: &Path, student: &Path, work: &Path, o: &LadderOptions) -> Result<Vec<Rung>> {
    let sentences = check_sentences(&o.sentences)?;
    let pairs = match &o.pairs {
        Some(p) => crate::eval::compare::read_pairs(p)?,
        None => Vec::new(),
    };
    let texts = Texts::new(sentences, &pairs);
    let (mut t, te) = rung(
        ("teacher f32", "teacher"),
        "destila",
        teacher,
        &texts,
        None,
        o,
    )?;
    let (mut s, se) = rung(
        ("student f32", "student"),
        "destila",
        student,
        &texts,
        None,
        o,
    )?;
    let vs = |r: &tch::Tensor, e: &tch::Tensor| {
        let (x, _, _) = crate::eval::compare::structure(r, e);
        (x.spearman, x.cka)
    };
    t.structure_vs_teacher = Some((1.0, 1.0));
    s.structure_vs_teacher = Some(vs(&te, &se));
    s.structure_vs_student = Some((1.0, 1.0));
    let mut rungs = vec![t, s];
    let refs_pair = Some((&te, &se));
    let variant = |name: &str| work.join(name);
    let hf = |dtype: tch::Kind, int8: bool| ExportOptions {
        dtype,
        heads: HeadsMode::Drop,
        int8,
        force: true,
        eval: None,
    };
    let f16 = variant("student-f16");
    export(student, &f16, &hf(tch::Kind::Half, false))?;
    let st = ("student f16", "student");
    rungs.push(rung(st, "destila (computes in f32)", &f16, &texts, refs_pair, o)?.0);
    let int8 = variant("student-int8");
    export(student, &int8, &hf(tch::Kind::Float, true))?;
    for runtime in ["destila (dequantised to f32 on load)", INT8_KERNELS] {
        let st = ("student int8", "student");
        rungs.push(rung(st, runtime, &int8, &texts, refs_pair, o)?.0);
    }
    let mut onnx_from = student.to_path_buf();
    let mut onnx_label = "student";
    if !o.prune_corpus.is_empty() {
        let pruned = variant("student-pruned");
        let po = crate::prune::PruneOptions {
            corpus: o.prune_corpus.clone(),
            min_count: 1,
            held_out: Vec::new(),
            force: true,
        };
        crate::prune::prune(student, &pruned, &po)?;
        let st = ("student pruned", "student, vocabulary pruned");
        rungs.push(rung(st, "destila", &pruned, &texts, refs_pair, o)?.0);
        let pruned_int8 = variant("student-pruned-int8");
        export(&pruned, &pruned_int8, &hf(tch::Kind::Float, true))?;
        let st = ("student pruned int8", "student, vocabulary pruned");
        rungs.push(rung(st, INT8_KERNELS, &pruned_int8, &texts, refs_pair, o)?.0);
        onnx_from = pruned;
        onnx_label = "student pruned";
    }
    if let Some(narrow) = &o.narrow {
        let st = ("narrower student", "narrower student");
        rungs.push(rung(st, "destila", narrow, &texts, refs_pair, o)?.0);
    }
    let max_len = Embedder::open(student, o.device)?.tokenizer.max_len();
    let family = if o.prune_corpus.is_empty() {
        "student"
    } else {
        "student, vocabulary pruned"
    };
    let pair = (&te, &se);
    rungs.extend(onnx_rungs(
        &onnx_from, onnx_label, family, work, &texts, pair, max_len, o,
    )?);
    for (i, dir) in o.pruned.iter().enumerate() {
        let c = crate::bert::BertConfig::from_file(dir.join("config.json"))?;
        let label = format!("pruned {} ({})", i + 1, shape(&c));
        let st = (format!("{label} f32"), label.clone());
        rungs.push(rung((&st.0, &st.1), "destila", dir, &texts, refs_pair, o)?.0);
        let q = variant(&format!("pruned-{}-int8", i + 1));
        export(dir, &q, &hf(tch::Kind::Float, true))?;
        let st = (format!("{label} int8"), label.clone());
        rungs.push(rung((&st.0, &st.1), INT8_KERNELS, &q, &texts, refs_pair, o)?.0);
        let short = format!("pruned {}", i + 1);
        rungs.extend(onnx_rungs(
            dir, &short, &label, work, &texts, pair, max_len, o,
        )?);
    }
    time_rungs(&mut rungs, o)?;
    Ok(rungs)
}

/// A model's shape in a few words: layers x hidden, then heads and FFN neurons layer by
/// layer ("3x384, heads 4 4 4, FFN 512 512 512").
pub fn shape(c: &crate::bert::BertConfig) -> String {
    let l = c.num_hidden_layers as usize;
    let list = |f: &dyn Fn(usize) -> i64| {
        (0..l)
            .map(|i| f(i).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{l}x{}, heads {}, FFN {}",
        c.hidden_size,
        list(&|i| c.heads_of(i)),
        list(&|i| c.intermediate_of(i))
    )
}

/// Speed-up at batch 1 x 128 against the first rung's (the f32 teacher's) latency.
fn speedup(rungs: &[Rung], r: &Rung) -> Option<f64> {
    let at = |r: &Rung| {
        r.latency
            .iter()
            .find(|c| c.0 == 1 && c.1 == 128)
            .map(|c| c.2)
    };
    Some(at(rungs.first()?)? / at(r)?)
}

/// The frontier chart: each rung's speed-up at 1 x 128 against its structure vs the
/// teacher, one series per model, and the frontier (the rungs no other beats on both).
pub fn frontier(rungs: &[Rung]) -> Result<crate::plot::Chart> {
    use crate::plot::{Mark, Series, COLORS};
    let point = |r: &Rung| Some((speedup(rungs, r)?, r.structure_vs_teacher?.0));
    let mut families: Vec<&str> = Vec::new();
    for r in rungs {
        if !families.contains(&r.family.as_str()) {
            families.push(&r.family);
        }
    }
    let mut series: Vec<Series> = families
        .iter()
        .enumerate()
        .map(|(i, f)| Series {
            name: f.to_string(),
            color: COLORS[i % COLORS.len()],
            mark: Mark::Points,
            points: rungs
                .iter()
                .filter(|r| r.family == *f)
                .filter_map(point)
                .collect(),
        })
        .collect();
    let all: Vec<(f64, f64)> = rungs.iter().filter_map(point).collect();
    let mut best: Vec<(f64, f64)> = all
        .iter()
        .copied()
        .filter(|p| !all.iter().any(|q| q.0 >= p.0 && q.1 >= p.1 && q != p))
        .collect();
    best.sort_by(|a, b| a.0.total_cmp(&b.0));
    series.push(Series {
        name: "frontier".into(),
        color: "#000000",
        mark: Mark::Line,
        points: best,
    });
    crate::plot::xy(
        "Speed against quality: each rung of the ladder",
        "faster than the f32 teacher at batch 1 x 128 (x)",
        "similarity structure vs the teacher (Spearman)",
        &series,
        false,
    )
}

/// The ladder as a markdown table (latency at 1 x 32, 1 x 128, 8 x 128 and 32 x 128; the
/// CSV has every cell).
pub fn markdown(rungs: &[Rung]) -> String {
    let teacher_bytes = rungs.first().map_or(1, |r| r.file_bytes.max(1)) as f64;
    let ms = |r: &Rung, b: i64, l: i64| {
        r.latency
            .iter()
            .find(|c| c.0 == b && c.1 == l)
            .map_or("".to_string(), |c| format!("{:.1}", c.2))
    };
    let teacher_j = rungs.first().and_then(|r| r.judgement);
    let pair =
        |p: Option<(f64, f64)>| p.map_or("".to_string(), |(a, b)| format!("{a:.3} / {b:.3}"));
    let mut s = String::from("| rung | runtime | file MB | smaller | parameters | 1 x 32 ms | 1 x 128 ms | 8 x 128 ms | 32 x 128 ms | faster at 1 x 128 | vs teacher (Spearman / CKA) | vs student (Spearman / CKA) | humans (Spearman, of teacher's) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rungs {
        let faster = speedup(rungs, r).map_or(String::new(), |x| format!("{x:.2}x"));
        let humans = match (r.judgement, teacher_j) {
            (Some(j), Some(t)) => format!("{j:.3} ({:.1}%)", 100.0 * j / t),
            (Some(j), None) => format!("{j:.3}"),
            _ => String::new(),
        };
        s += &format!(
            "| {} | {} | {:.1} | {:.2}x | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.runtime,
            r.file_bytes as f64 / 1e6,
            teacher_bytes / r.file_bytes.max(1) as f64,
            r.parameters.map_or(String::new(), |p| p.to_string()),
            ms(r, 1, 32),
            ms(r, 1, 128),
            ms(r, 8, 128),
            ms(r, 32, 128),
            faster,
            pair(r.structure_vs_teacher),
            pair(r.structure_vs_student),
            humans,
        );
    }
    s
}

/// How the latency was measured, in a sentence: the rounds, runs, threads and device.
pub fn method(o: &LadderOptions, device: &str) -> String {
    format!(
        "Latency: random ids, no padding; each cell the median over {} interleaved rounds \
         (every rung timed in turn, the order reversed every other round) of the median of {} \
         runs after a warm-up; p95 the largest round's. Threads: {} (libtorch intra-op, and \
         onnxruntime's intra-op for the ONNX rungs). Device: {} ({device}).",
        o.rounds,
        o.iters,
        tch::get_num_threads(),
        crate::device::describe(o.device),
    )
}

/// Every measured cell as CSV, with each round's median (`;`-separated); the csv crate
/// quotes rung names (they hold commas).
pub fn csv(rungs: &[Rung]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut row = |fields: [&str; 7]| w.write_record(fields).expect("writing to memory");
    row([
        "rung",
        "file_bytes",
        "batch",
        "seq_len",
        "median_ms",
        "p95_ms",
        "round_medians_ms",
    ]);
    for r in rungs {
        let bytes = r.file_bytes.to_string();
        if r.latency.is_empty() {
            row([&r.name, &bytes, "", "", "", "", ""]);
        }
        for (i, (b, l, m, p)) in r.latency.iter().enumerate() {
            let rounds: Vec<String> = r.rounds[i].iter().map(|x| format!("{x:.3}")).collect();
            row([
                &r.name,
                &bytes,
                &b.to_string(),
                &l.to_string(),
                &format!("{m:.3}"),
                &format!("{p:.3}"),
                &rounds.join(";"),
            ]);
        }
    }
    String::from_utf8(w.into_inner().expect("writing to memory")).expect("UTF-8 fields")
}
