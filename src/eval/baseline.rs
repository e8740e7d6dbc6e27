//! The student against its own starting point: the same evaluation run on the student's
//! initialisation (the layer copy or random init the recipe started from, which `distill`
//! saves as `OUTPUT/init`), side by side with the trained student, with the gain on every
//! metric and a plain statement of each metric on which training made the student worse.
//! A distillation earns its keep only where the gain is positive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One metric of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Gain {
    /// The key in eval.json (`similarity.mean.spearman`, `judgements.student_spearman`, ...).
    pub metric: String,
    pub label: String,
    /// The teacher's own value where the metric has one (its accuracy, its agreement with
    /// human judgements); 1 for agreement with itself.
    pub teacher: Option<f64>,
    pub init: f64,
    pub student: f64,
    /// student − init, signed so that positive is better.
    pub gain: f64,
    pub higher_is_better: bool,
}

impl Gain {
    pub fn worse(&self) -> bool {
        self.gain < 0.0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub init: String,
    pub metrics: Vec<Gain>,
}

/// (key in the student's report, label, higher is better, the teacher's value: a key or 1).
const METRICS: &[(&str, &str, bool, Teacher)] = &[
    (
        "similarity.mean.spearman",
        "structure Spearman (mean)",
        true,
        Teacher::One,
    ),
    (
        "similarity.mean.pearson",
        "structure Pearson (mean)",
        true,
        Teacher::One,
    ),
    ("similarity.mean.cka", "CKA (mean)", true, Teacher::One),
    (
        "similarity.mean.knn10",
        "kNN@10 overlap (mean)",
        true,
        Teacher::One,
    ),
    (
        "similarity.cls.spearman",
        "structure Spearman ([CLS])",
        true,
        Teacher::One,
    ),
    (
        "judgements.student_spearman",
        "human judgements Spearman",
        true,
        Teacher::Key("judgements.teacher_spearman"),
    ),
    (
        "heads.student_mlm_accuracy",
        "MLM accuracy",
        true,
        Teacher::Key("heads.teacher_mlm_accuracy"),
    ),
    (
        "heads.student_mlm_perplexity",
        "MLM perplexity",
        false,
        Teacher::Key("heads.teacher_mlm_perplexity"),
    ),
    (
        "heads.mlm_top1_agreement",
        "MLM top-1 agreement",
        true,
        Teacher::One,
    ),
    (
        "heads.mlm_kl",
        "MLM KL(teacher||student)",
        false,
        Teacher::Zero,
    ),
    (
        "heads.student_nsp_accuracy",
        "NSP accuracy",
        true,
        Teacher::Key("heads.teacher_nsp_accuracy"),
    ),
    (
        "posto.student.word_contextual",
        "\"posto\" senses, contextual cos",
        false,
        Teacher::Key("posto.teacher.word_contextual"),
    ),
];

#[derive(Debug, Clone, Copy)]
enum Teacher {
    One,
    Zero,
    Key(&'static str),
}

/// Compares `student`'s metrics (its evaluation against the teacher, flattened) with
/// `init`'s (the same evaluation of the student's starting point, the model `init_name`).
/// Metrics missing from either are left out.
pub fn compare(student: &[(String, f64)], init: &[(String, f64)], init_name: &str) -> Baseline {
    let (s, i): (BTreeMap<_, _>, BTreeMap<_, _>) = (
        student.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        init.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
    );
    let metrics = METRICS
        .iter()
        .filter_map(|&(key, label, higher, teacher)| {
            let (sv, iv) = (*s.get(key)?, *i.get(key)?);
            if !(sv.is_finite() && iv.is_finite()) {
                return None;
            }
            let teacher = match teacher {
                Teacher::One => Some(1.0),
                Teacher::Zero => Some(0.0),
                Teacher::Key(k) => s.get(k).copied(),
            };
            let d = sv - iv;
            Some(Gain {
                metric: key.to_string(),
                label: label.to_string(),
                teacher,
                init: iv,
                student: sv,
                gain: if higher { d } else { -d },
                higher_is_better: higher,
            })
        })
        .collect();
    Baseline {
        init: init_name.to_string(),
        metrics,
    }
}

/// The embedding measures (sentence embeddings and their structure, human judgements).
const EMBEDDING: &[&str] = &[
    "similarity.mean.spearman",
    "similarity.mean.pearson",
    "similarity.mean.cka",
    "similarity.mean.knn10",
    "similarity.cls.spearman",
    "judgements.student_spearman",
];

impl Baseline {
    /// One line each: whether the student beat its init on the embedding measures, and
    /// whether the teacher beat the student at MLM and NSP (when both have the heads).
    pub fn verdicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        let emb: Vec<&Gain> = self
            .metrics
            .iter()
            .filter(|g| EMBEDDING.contains(&g.metric.as_str()))
            .collect();
        if !emb.is_empty() {
            let better = emb.iter().filter(|g| g.gain > 0.0).count();
            out.push(format!(
                "embedding measures: the student {} its init ({better} of {} better)",
                if better == emb.len() {
                    "BEATS"
                } else if better * 2 > emb.len() {
                    "mostly beats"
                } else {
                    "does NOT beat"
                },
                emb.len()
            ));
        }
        let heads: Vec<(&str, f64, f64)> = self
            .metrics
            .iter()
            .filter(|g| {
                ["heads.student_mlm_accuracy", "heads.student_nsp_accuracy"]
                    .contains(&g.metric.as_str())
            })
            .filter_map(|g| Some((g.label.as_str(), g.teacher?, g.student)))
            .collect();
        if !heads.is_empty() {
            let beats = heads.iter().all(|(_, t, s)| t > s);
            let detail: Vec<String> = heads
                .iter()
                .map(|(l, t, s)| format!("{l} {t:.4} vs {s:.4}"))
                .collect();
            out.push(format!(
                "MLM/NSP: the teacher {} the student ({})",
                if beats { "BEATS" } else { "does NOT beat" },
                detail.join(", ")
            ));
        }
        out
    }
}

/// The baseline `destila eval` compares with: `--init DIR` (which must be a model folder),
/// none with `--no-init`, else the `init/` folder `distill` saved beside the student.
pub fn resolve_init(
    student: &Path,
    init: Option<PathBuf>,
    no_init: bool,
) -> crate::Result<Option<PathBuf>> {
    let init = match (init, no_init) {
        (_, true) => None,
        (Some(i), _) => Some(i),
        (None, false) => saved_init(student),
    };
    if let Some(i) = &init {
        if !i.join("config.json").is_file() {
            return Err(crate::Error::Invalid(format!(
                "--init {}: no config.json there (a model folder, such as a run's init/)",
                i.display()
            )));
        }
    }
    Ok(init)
}

/// The student's initialisation saved beside a trained student by `distill`
/// (`RUN/final` → `RUN/init`), if there is one.
pub fn saved_init(student: &Path) -> Option<PathBuf> {
    let parent = student.parent()?;
    let init = parent.join("init");
    (init.join("config.json").is_file() && init != student).then_some(init)
}

impl std::fmt::Display for Baseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "against the student's initialisation ({})", self.init)?;
        writeln!(
            f,
            "  {:<32} {:>9} {:>9} {:>9} {:>9}",
            "metric", "teacher", "init", "student", "gain"
        )?;
        for g in &self.metrics {
            let t = g.teacher.map(|v| format!("{v:.4}")).unwrap_or_default();
            writeln!(
                f,
                "  {:<32} {:>9} {:>9.4} {:>9.4} {:>+9.4}{}",
                g.label,
                t,
                g.init,
                g.student,
                g.gain,
                if g.higher_is_better {
                    ""
                } else {
                    "  (lower is better)"
                }
            )?;
        }
        for line in self.verdicts() {
            writeln!(f, "  {line}")?;
        }
        let worse: Vec<&str> = self
            .metrics
            .iter()
            .filter(|g| g.worse())
            .map(|g| g.label.as_str())
            .collect();
        if worse.is_empty() {
            writeln!(
                f,
                "  the student is at least as good as its init on every metric"
            )?;
        } else {
            writeln!(
                f,
                "  WORSE THAN ITS INIT on {} of {} metrics: {}",
                worse.len(),
                self.metrics.len(),
                worse.join("; ")
            )?;
        }
        Ok(())
    }
}
