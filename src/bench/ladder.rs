//! The compression ladder (`destila bench ladder`): the teacher, the student, and the
//! student made smaller step by step (f16, int8, pruned vocabulary, ONNX fp32 and int8),
//! each with its file size, parameters, latency at batch 1/8/32 x 32/128 (median, p95) and
//! similarity structure (Spearman of pair cosines, linear CKA) against the teacher and
//! against the uncompressed student on the given sentences.

use std::path::{Path, PathBuf};

use super::forward::{forward_throughput, ForwardBench, MlmMode};
use crate::embed::{Embedder, Pooling};
use crate::error::{Error, Result};
use crate::export::{export, ExportOptions, HeadsMode};

/// The files `destila bench ladder` writes into its output folder.
pub const LADDER_FILES: &[&str] = &["ladder.md", "ladder.csv", "variants"];

#[derive(Debug, Clone)]
pub struct LadderOptions {
    /// One sentence a line: the structure is measured on their pair cosines.
    pub sentences: PathBuf,
    /// Text to prune the vocabulary to (no pruned rung without it).
    pub prune_corpus: Vec<String>,
    pub iters: usize,
    pub device: tch::Device,
    /// A narrower student (e.g. from recipes/narrow.yaml), measured as its own rung.
    pub narrow: Option<PathBuf>,
    /// The Python with onnxruntime and transformers that times and runs the ONNX rungs.
    pub python: PathBuf,
}

/// The runtime of the rungs whose int8 dense layers run through libtorch's int8 kernels.
const INT8_KERNELS: &str = "destila (libtorch int8 kernels)";

/// `scripts/ladder_onnx.py`, carried by the binary.
const ONNX_SCRIPT: &str = include_str!("../../scripts/ladder_onnx.py");

/// An ONNX rung's latency grid (as `Rung::latency`), sentence embeddings and onnxruntime's
/// version.
type OnnxMeasure = (Vec<(i64, i64, f64, f64)>, tch::Tensor, String);

/// Latency grid and sentence embeddings of `dir/model.onnx` in onnxruntime, or why not.
fn onnx_measure(
    dir: &Path,
    refs: &[&str],
    max_len: usize,
    o: &LadderOptions,
) -> std::result::Result<OnnxMeasure, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let script = tmp.path().join("ladder_onnx.py");
    let sentences = tmp.path().join("sentences.txt");
    std::fs::write(&script, ONNX_SCRIPT).map_err(|e| e.to_string())?;
    std::fs::write(&sentences, refs.join("\n")).map_err(|e| e.to_string())?;
    let out = std::process::Command::new(&o.python)
        .arg(&script)
        .arg(dir)
        .arg(&sentences)
        .args(["--threads", &tch::get_num_threads().to_string()])
        .args(["--iters", &o.iters.to_string()])
        .args(["--max-len", &max_len.to_string()])
        .output()
        .map_err(|e| format!("{}: {e}", o.python.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no message");
        return Err(format!("{}: {last}", o.python.display()));
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        latency: Vec<(i64, i64, f64, f64)>,
        embeddings: Vec<Vec<f32>>,
        onnxruntime: String,
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Reply = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .map_err(|e| format!("{}: unreadable reply: {e}", o.python.display()))?;
    if r.embeddings.len() != refs.len() {
        return Err(format!(
            "{} embeddings for {} sentences",
            r.embeddings.len(),
            refs.len()
        ));
    }
    let flat: Vec<f32> = r.embeddings.iter().flatten().copied().collect();
    let emb = tch::Tensor::from_slice(&flat).view([refs.len() as i64, -1]);
    Ok((r.latency, emb, r.onnxruntime))
}

/// One rung of the ladder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rung {
    pub name: String,
    /// What runs it, and how.
    pub runtime: String,
    pub file_bytes: u64,
    pub parameters: Option<i64>,
    /// (batch, length, median ms, p95 ms); empty where destila cannot run it.
    pub latency: Vec<(i64, i64, f64, f64)>,
    pub structure_vs_teacher: Option<(f64, f64)>,
    pub structure_vs_student: Option<(f64, f64)>,
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
/// embeddings of the sentences.
fn rung(
    name: &str,
    runtime: &str,
    dir: &Path,
    refs: &[&str],
    reference: Option<(&tch::Tensor, &tch::Tensor)>,
    o: &LadderOptions,
) -> Result<(Rung, tch::Tensor)> {
    let e = Embedder::open_with(dir, o.device, runtime == INT8_KERNELS)?;
    let emb = e.embed(refs, Pooling::Mean, 32)?;
    let vs = |r: &tch::Tensor| {
        let (s, _, _) = crate::eval::compare::structure(r, &emb);
        (s.spearman, s.cka)
    };
    let rung = Rung {
        name: name.into(),
        runtime: runtime.into(),
        file_bytes: size(
            dir,
            &crate::bert::weights::weights_file(dir)
                .file_name()
                .unwrap()
                .to_string_lossy(),
        ),
        parameters: Some(crate::bert::model::count_params(&e.model.vs, "")),
        latency: latency(&e, o)?,
        structure_vs_teacher: reference.map(|(t, _)| vs(t)),
        structure_vs_student: reference.map(|(_, s)| vs(s)),
    };
    Ok((rung, emb))
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

/// The ladder from `teacher` down to `student`'s compressed forms, written under `work`.
pub fn ladder(teacher: &Path, student: &Path, work: &Path, o: &LadderOptions) -> Result<Vec<Rung>> {
    let sentences = check_sentences(&o.sentences)?;
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let (mut t, te) = rung("teacher f32", "destila", teacher, &refs, None, o)?;
    let (mut s, se) = rung("student f32", "destila", student, &refs, None, o)?;
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
    rungs.push(
        rung(
            "student f16",
            "destila (computes in f32)",
            &f16,
            &refs,
            refs_pair,
            o,
        )?
        .0,
    );
    let int8 = variant("student-int8");
    export(student, &int8, &hf(tch::Kind::Float, true))?;
    for runtime in ["destila (dequantised to f32 on load)", INT8_KERNELS] {
        rungs.push(rung("student int8", runtime, &int8, &refs, refs_pair, o)?.0);
    }
    let mut onnx_from = student.to_path_buf();
    if !o.prune_corpus.is_empty() {
        let pruned = variant("student-pruned");
        let po = crate::prune::PruneOptions {
            corpus: o.prune_corpus.clone(),
            min_count: 1,
            held_out: Vec::new(),
            force: true,
        };
        crate::prune::prune(student, &pruned, &po)?;
        rungs.push(rung("student pruned", "destila", &pruned, &refs, refs_pair, o)?.0);
        let pruned_int8 = variant("student-pruned-int8");
        export(&pruned, &pruned_int8, &hf(tch::Kind::Float, true))?;
        rungs.push(
            rung(
                "student pruned int8",
                INT8_KERNELS,
                &pruned_int8,
                &refs,
                refs_pair,
                o,
            )?
            .0,
        );
        onnx_from = pruned;
    }
    if let Some(narrow) = &o.narrow {
        rungs.push(rung("narrower student", "destila", narrow, &refs, refs_pair, o)?.0);
    }
    let max_len = Embedder::open(student, o.device)?.tokenizer.max_len();
    for (name, int8) in [("onnx-fp32", false), ("onnx-int8", true)] {
        let dir = variant(&format!("student-{name}"));
        crate::onnx::export_onnx(&onnx_from, &dir, int8, true)?;
        let pruned = if o.prune_corpus.is_empty() {
            ""
        } else {
            " pruned"
        };
        let mut r = Rung {
            name: format!("student{pruned} {name}"),
            runtime: String::new(),
            file_bytes: size(&dir, "model.onnx"),
            parameters: None,
            latency: Vec::new(),
            structure_vs_teacher: None,
            structure_vs_student: None,
        };
        match onnx_measure(&dir, &refs, max_len, o) {
            Ok((latency, emb, version)) => {
                r.runtime = format!("onnxruntime {version}");
                r.latency = latency;
                r.structure_vs_teacher = Some(vs(&te, &emb));
                r.structure_vs_student = Some(vs(&se, &emb));
            }
            Err(e) => {
                eprintln!("warning: {}: not run in onnxruntime ({e})", r.name);
                r.runtime = "onnxruntime: not available (--python)".into();
            }
        }
        rungs.push(r);
    }
    Ok(rungs)
}

/// The ladder as a markdown table (latency at batch 1 x 128 and 32 x 128 shown; the CSV
/// has every cell).
pub fn markdown(rungs: &[Rung]) -> String {
    let teacher_bytes = rungs.first().map_or(1, |r| r.file_bytes.max(1)) as f64;
    let ms = |r: &Rung, b: i64, l: i64| {
        r.latency
            .iter()
            .find(|c| c.0 == b && c.1 == l)
            .map_or("".to_string(), |c| format!("{:.1} ({:.1})", c.2, c.3))
    };
    let base = rungs
        .first()
        .and_then(|r| r.latency.iter().find(|c| c.0 == 1 && c.1 == 128))
        .map(|c| c.2);
    let pair =
        |p: Option<(f64, f64)>| p.map_or("".to_string(), |(a, b)| format!("{a:.3} / {b:.3}"));
    let mut s = String::from("| rung | runtime | file MB | smaller | parameters | 1 x 128 ms (p95) | 32 x 128 ms (p95) | faster at 1 x 128 | vs teacher (Spearman / CKA) | vs student (Spearman / CKA) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rungs {
        let faster = match (base, r.latency.iter().find(|c| c.0 == 1 && c.1 == 128)) {
            (Some(b), Some(c)) => format!("{:.2}x", b / c.2),
            _ => String::new(),
        };
        s += &format!(
            "| {} | {} | {:.1} | {:.2}x | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            r.runtime,
            r.file_bytes as f64 / 1e6,
            teacher_bytes / r.file_bytes.max(1) as f64,
            r.parameters.map_or(String::new(), |p| p.to_string()),
            ms(r, 1, 128),
            ms(r, 32, 128),
            faster,
            pair(r.structure_vs_teacher),
            pair(r.structure_vs_student),
        );
    }
    s
}

/// Every measured cell as CSV.
pub fn csv(rungs: &[Rung]) -> String {
    let mut s = String::from("rung,file_bytes,batch,seq_len,median_ms,p95_ms\n");
    for r in rungs {
        if r.latency.is_empty() {
            s += &format!("{},{},,,,\n", r.name, r.file_bytes);
        }
        for (b, l, m, p) in &r.latency {
            s += &format!("{},{},{b},{l},{m:.3},{p:.3}\n", r.name, r.file_bytes);
        }
    }
    s
}
