//! Teacher versus student: size, latency (median, p95) at batch x length cells, throughput,
//! peak memory, the speed-up against the FLOP ratio, and the quality summary of an eval.json.

use std::path::Path;

use super::forward::{forward_throughput, ForwardBench, MlmMode};
use crate::bert::Model;
use crate::error::Result;

/// One model's figures in the teacher-versus-student benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelFigures {
    pub dir: String,
    pub parameters: i64,
    pub file_bytes: u64,
    pub layers: i64,
    pub hidden_size: i64,
    /// Peak RSS of a process that loads the model and runs batch 32 x 128.
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Cell {
    pub batch: i64,
    pub seq_len: i64,
    pub teacher_median_ms: f64,
    pub teacher_p95_ms: f64,
    pub student_median_ms: f64,
    pub student_p95_ms: f64,
    pub teacher_tokens_per_s: f64,
    pub student_tokens_per_s: f64,
    pub speedup: f64,
}

/// The files `destila bench` writes into its output folder.
pub const REPORT_FILES: &[&str] = &[
    "bench.csv",
    "bench.md",
    "bench.svg",
    "bench.png",
    "bench.json",
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareReport {
    pub teacher: ModelFigures,
    pub student: ModelFigures,
    pub threads: i32,
    pub device: String,
    pub cells: Vec<Cell>,
    /// Teacher / student forward FLOPs at batch 32 x 128 (encoder and pooler).
    pub flop_ratio: f64,
    /// Measured speed-up at 32 x 128 divided by the FLOP ratio.
    pub speedup_over_flop_ratio: f64,
    /// Key figures of an eval.json found beside the report.
    pub quality: Option<serde_json::Value>,
}

fn figures(dir: &std::path::Path, model: &Model) -> Result<ModelFigures> {
    let f = crate::bert::weights::weights_file(dir);
    Ok(ModelFigures {
        dir: dir.display().to_string(),
        parameters: crate::bert::model::count_params(&model.vs, ""),
        file_bytes: std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0),
        layers: model.config().num_hidden_layers,
        hidden_size: model.config().hidden_size,
        peak_rss_bytes: None,
    })
}

/// Peak RSS of a child `destila bench forward` on `dir` at batch 32 x 128.
fn child_peak_rss(dir: &std::path::Path, device: &str) -> Option<u64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args([
            "--threads",
            &tch::get_num_threads().to_string(),
            "bench",
            "forward",
        ])
        .arg(dir)
        .args([
            "--mlm", "none", "--iters", "2", "--warmup", "0", "--device", device,
        ])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("peak_rss_bytes")?.as_u64()
}

/// Latency and throughput of teacher and student, interleaved cell by cell.
pub fn compare(
    teacher_dir: &std::path::Path,
    student_dir: &std::path::Path,
    device: tch::Device,
    device_spec: &str,
    iters: usize,
    quality: Option<serde_json::Value>,
) -> Result<CompareReport> {
    let lo = crate::bert::LoadOptions {
        device,
        int8_kernels: crate::bert::qlinear::wanted()?,
        ..Default::default()
    };
    let t = crate::bert::load(teacher_dir, &lo)?;
    let s = crate::bert::load(student_dir, &lo)?;
    let mut cells = Vec::new();
    for &seq_len in &[32i64, 128] {
        for &batch in &[1i64, 8, 32] {
            let setup = ForwardBench {
                batch,
                seq_len,
                mlm: MlmMode::None,
                mask_fraction: 0.15,
                nsp: false,
                warmup: 1,
                iters,
                threads: tch::get_num_threads(),
                device: crate::device::describe(device),
            };
            let rt = forward_throughput(&t, &setup)?;
            let rs = forward_throughput(&s, &setup)?;
            cells.push(Cell {
                batch,
                seq_len,
                teacher_median_ms: rt.median_s * 1e3,
                teacher_p95_ms: rt.p95_s * 1e3,
                student_median_ms: rs.median_s * 1e3,
                student_p95_ms: rs.p95_s * 1e3,
                teacher_tokens_per_s: rt.tokens_per_s,
                student_tokens_per_s: rs.tokens_per_s,
                speedup: rt.median_s / rs.median_s,
            });
        }
    }
    let flops = |m: &Model| crate::bert::forward_flops(m.config(), 32.0 * 128.0, 128.0, 0.0);
    let flop_ratio = flops(&t) / flops(&s);
    let big = cells
        .iter()
        .find(|c| c.batch == 32 && c.seq_len == 128)
        .expect("measured");
    let speedup_over_flop_ratio = big.speedup / flop_ratio;
    let mut tf = figures(teacher_dir, &t)?;
    let mut sf = figures(student_dir, &s)?;
    drop((t, s));
    tf.peak_rss_bytes = child_peak_rss(teacher_dir, device_spec);
    sf.peak_rss_bytes = child_peak_rss(student_dir, device_spec);
    Ok(CompareReport {
        teacher: tf,
        student: sf,
        threads: tch::get_num_threads(),
        device: crate::device::describe(device),
        cells,
        flop_ratio,
        speedup_over_flop_ratio,
        quality,
    })
}

impl CompareReport {
    pub fn markdown(&self) -> String {
        let mib = |b: Option<u64>| {
            b.map(|b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
                .unwrap_or_else(|| "n/a".into())
        };
        let mut s = format!(
            "# Teacher versus student\n\n{} ({} threads for libtorch). Latency of a forward pass (encoder and pooler), random ids, no padding.\n\n\
             | | teacher | student | ratio |\n|---|---:|---:|---:|\n\
             | model | `{}` | `{}` | |\n| layers x hidden | {} x {} | {} x {} | |\n\
             | parameters | {} | {} | {:.2}x |\n| file size | {:.1} MB | {:.1} MB | {:.2}x |\n| peak memory (batch 32 x 128) | {} | {} | |\n\n",
            self.device, self.threads, self.teacher.dir, self.student.dir,
            self.teacher.layers, self.teacher.hidden_size, self.student.layers, self.student.hidden_size,
            self.teacher.parameters, self.student.parameters, self.teacher.parameters as f64 / self.student.parameters as f64,
            self.teacher.file_bytes as f64 / 1e6, self.student.file_bytes as f64 / 1e6,
            self.teacher.file_bytes as f64 / self.student.file_bytes.max(1) as f64,
            mib(self.teacher.peak_rss_bytes), mib(self.student.peak_rss_bytes),
        );
        s += "| batch x length | teacher median (p95) ms | student median (p95) ms | teacher tokens/s | student tokens/s | speed-up |\n|---|---:|---:|---:|---:|---:|\n";
        for c in &self.cells {
            s += &format!(
                "| {} x {} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:.0} | {:.0} | {:.2}x |\n",
                c.batch,
                c.seq_len,
                c.teacher_median_ms,
                c.teacher_p95_ms,
                c.student_median_ms,
                c.student_p95_ms,
                c.teacher_tokens_per_s,
                c.student_tokens_per_s,
                c.speedup
            );
        }
        s += &format!(
            "\nFLOP ratio at 32 x 128: {:.2}x; measured speed-up / FLOP ratio: {:.2} (target: within 10%, 0.90 to 1.10).\n",
            self.flop_ratio, self.speedup_over_flop_ratio
        );
        if let Some(q) = &self.quality {
            s += "\n## Quality (eval.json)\n\n| metric | value |\n|---|---:|\n";
            if let Some(o) = q.as_object() {
                for (k, v) in o {
                    if let Some(v) = v.as_f64() {
                        s += &format!("| {k} | {v:.4} |\n");
                    }
                }
            }
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut s = String::from("batch,seq_len,teacher_median_ms,teacher_p95_ms,student_median_ms,student_p95_ms,teacher_tokens_per_s,student_tokens_per_s,speedup\n");
        for c in &self.cells {
            s += &format!(
                "{},{},{:.4},{:.4},{:.4},{:.4},{:.2},{:.2},{:.4}\n",
                c.batch,
                c.seq_len,
                c.teacher_median_ms,
                c.teacher_p95_ms,
                c.student_median_ms,
                c.student_p95_ms,
                c.teacher_tokens_per_s,
                c.student_tokens_per_s,
                c.speedup
            );
        }
        s
    }

    /// Writes bench.csv, bench.md, bench.json and the chart (bench.svg, bench.png) into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
        use crate::error::{write_atomic, Error};
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let put = |name: &str, text: String| -> Result<std::path::PathBuf> {
            let p = dir.join(name);
            write_atomic(&p, |tmp| {
                std::fs::write(tmp, &text).map_err(|e| Error::io(tmp, e))
            })?;
            Ok(p)
        };
        let groups: Vec<String> = self
            .cells
            .iter()
            .map(|c| format!("{} x {}", c.batch, c.seq_len))
            .collect();
        let series = vec![
            (
                "teacher".to_string(),
                self.cells.iter().map(|c| c.teacher_tokens_per_s).collect(),
            ),
            (
                "student".to_string(),
                self.cells.iter().map(|c| c.student_tokens_per_s).collect(),
            ),
        ];
        let chart = crate::plot::bars(
            "forward throughput (batch x length)",
            "tokens/s",
            &groups,
            &series,
        )?;
        crate::plot::write(&dir.join("bench.svg"), &chart)?;
        Ok(vec![
            put("bench.csv", self.csv())?,
            put("bench.md", self.markdown())?,
            dir.join("bench.svg"),
            put(
                "bench.json",
                serde_json::to_string_pretty(self).expect("json"),
            )?,
        ])
    }
}

/// The quality figures of an eval.json that `destila bench` reports beside speed and size.
pub fn quality_summary(eval: &serde_json::Value) -> serde_json::Value {
    let mut q = serde_json::Map::new();
    for (k, ptr) in [
        (
            "similarity spearman (mean pooling)",
            "/similarity/mean/spearman",
        ),
        ("similarity spearman ([CLS])", "/similarity/cls/spearman"),
        ("linear CKA (mean pooling)", "/similarity/mean/cka"),
        ("kNN@10 overlap (mean pooling)", "/similarity/mean/knn10"),
        ("MLM top-1 agreement", "/heads/mlm_top1_agreement"),
        ("student MLM accuracy", "/heads/student_mlm_accuracy"),
        ("teacher MLM accuracy", "/heads/teacher_mlm_accuracy"),
    ] {
        if let Some(x) = eval.pointer(ptr) {
            q.insert(k.into(), x.clone());
        }
    }
    serde_json::Value::Object(q)
}

/// [`quality_summary`] of the eval.json at `path`.
pub fn read_quality(path: &Path) -> Result<serde_json::Value> {
    let text = crate::error::read_to_string(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))?;
    Ok(quality_summary(&v))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_takes_the_named_figures_and_skips_missing_ones() {
        let v = serde_json::json!({"similarity": {"mean": {"spearman": 0.9, "cka": 0.8}},
            "heads": {"mlm_top1_agreement": 0.5}, "other": 1});
        let q = super::quality_summary(&v);
        assert_eq!(q["similarity spearman (mean pooling)"], 0.9);
        assert_eq!(q["linear CKA (mean pooling)"], 0.8);
        assert_eq!(q["MLM top-1 agreement"], 0.5);
        assert_eq!(q.as_object().unwrap().len(), 3);
    }
}
