//! Recipes: YAML files that say what to run. Deserialised with unknown keys refused, then
//! validated; every error names the file and the field path and says what is allowed.
//! `--set a.b.c=value` overrides are applied to the YAML tree before deserialising, so they
//! are checked exactly like the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::losses::Relation;
use crate::bert::BertConfig;
use crate::data::{DataConfig, ExampleFormat};
use crate::error::{Error, Result};
use crate::tokenize::BertTokenizer;

/// A number, or a linear schedule from `start` to `end` over the run's steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Scheduled {
    Constant(f64),
    Linear { start: f64, end: f64 },
}

impl Scheduled {
    /// The value at `step` of `total` (linear from start at step 0 to end at the last step).
    pub fn at(&self, step: u64, total: u64) -> f64 {
        match *self {
            Scheduled::Constant(v) => v,
            Scheduled::Linear { start, end } => {
                let t = if total <= 1 {
                    1.0
                } else {
                    step as f64 / (total - 1) as f64
                };
                start + (end - start) * t.clamp(0.0, 1.0)
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        match *self {
            Scheduled::Constant(v) => v == 0.0,
            Scheduled::Linear { start, end } => start == 0.0 && end == 0.0,
        }
    }
}

fn d_seed() -> u64 {
    42
}
fn d_batch() -> usize {
    32
}
fn d_output() -> PathBuf {
    PathBuf::from("runs/out")
}
fn d_auto() -> String {
    "auto".into()
}
fn d_fit_steps() -> u64 {
    200
}
fn d_fit_lr() -> f64 {
    1e-3
}
fn d_zero() -> Scheduled {
    Scheduled::Constant(0.0)
}
fn d_temperature() -> Scheduled {
    Scheduled::Constant(1.0)
}
fn d_lr() -> f64 {
    5e-4
}
fn d_wd() -> f64 {
    0.01
}
fn d_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn d_eps() -> f64 {
    1e-6
}
fn d_clip() -> f64 {
    1.0
}
fn d_steps() -> u64 {
    1000
}
fn d_accum() -> usize {
    1
}
fn d_eval_batches() -> usize {
    20
}
fn d_keep() -> usize {
    2
}
fn d_log_every() -> u64 {
    10
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Job {
    /// Train a student on a teacher's targets (and, with weights, the true labels).
    Distill,
    /// Pretrain a model from the data alone (no teacher).
    Pretrain,
    /// Fit MLM and NSP heads onto the teacher, its encoder frozen.
    FitHeads,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HeadPolicy {
    /// A teacher without MLM/NSP heads gets them fitted first (cached beside the run).
    Fit,
    /// The teacher is adapted first: MLM and NSP pretraining continued with its encoder
    /// unfrozen (all layers or the top `teacher.adapt.train_layers`), the MLM decoder tied
    /// to the word embeddings, while an embedding-preservation loss against the frozen
    /// original keeps its sentence embeddings. The adapted teacher is its own model (cached
    /// by content digest in `teacher.adapt.cache`, copied to `OUTPUT/teacher-adapted`), and
    /// it is the teacher of the run.
    Adapt,
    /// A teacher without the heads the losses need is an error.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadFit {
    #[serde(default = "d_fit_steps")]
    pub steps: u64,
    #[serde(default = "d_fit_lr")]
    pub learning_rate: f64,
    /// Sequences per fitting step (whatever the distillation's batch size).
    #[serde(default = "d_fit_batch")]
    pub batch_size: usize,
    /// The share of tokens masked while fitting (BERT's 15%, whatever the distillation's).
    #[serde(default = "d_mlm_probability")]
    pub mlm_probability: f64,
    /// The fitted MLM decoder: `tied` to the frozen word embeddings (BERT's form; only the
    /// transform and the bias train) or `untied`, its own matrix initialised from them.
    #[serde(default = "d_decoder")]
    pub decoder: Decoder,
    /// Where fitted heads are kept for reuse by any run (keyed by the teacher's weights and
    /// tokenizer, these settings, the seed and the data).
    #[serde(default = "d_heads_cache")]
    pub cache: PathBuf,
}

fn d_mlm_probability() -> f64 {
    0.15
}

/// Teacher adaptation (`teacher.heads: adapt`): continued MLM + NSP pretraining of the
/// teacher itself, with its sentence embeddings held to the frozen original's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptSection {
    #[serde(default = "d_adapt_steps")]
    pub steps: u64,
    #[serde(default = "d_adapt_lr")]
    pub learning_rate: f64,
    #[serde(default = "d_fit_batch")]
    pub batch_size: usize,
    #[serde(default = "d_mlm_probability")]
    pub mlm_probability: f64,
    /// How many of the top encoder layers train (with the pooler and the heads); absent:
    /// every layer and the embeddings (and so the tied decoder).
    #[serde(default)]
    pub train_layers: Option<usize>,
    /// The weight of each preservation loss against the frozen original teacher, on the
    /// clean view: `pooled_cos` (each sentence embedding) and `similarity` (the in-batch
    /// cosine structure).
    #[serde(default = "d_preserve")]
    pub preserve: f64,
    /// The text to adapt on (BERT's sentence pairs are made from it, whatever the run's
    /// example format); absent: the recipe's own `data` section.
    #[serde(default)]
    pub data: Option<DataConfig>,
    /// Where adapted teachers are kept for reuse by any run, each in a folder named by the
    /// digest of what it depends on (the teacher's weights and tokenizer, these settings,
    /// the seed).
    #[serde(default = "d_adapt_cache")]
    pub cache: PathBuf,
}

fn d_adapt_steps() -> u64 {
    1000
}

fn d_adapt_lr() -> f64 {
    1e-4
}

fn d_preserve() -> f64 {
    1.0
}

fn d_adapt_cache() -> PathBuf {
    PathBuf::from(".cache/adapted")
}

impl Default for AdaptSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

fn d_fit_batch() -> usize {
    32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decoder {
    Tied,
    Untied,
}

fn d_decoder() -> Decoder {
    Decoder::Tied
}

fn d_heads_cache() -> PathBuf {
    PathBuf::from(".cache/heads")
}

impl Default for HeadFit {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    /// An HF checkpoint folder.
    pub checkpoint: PathBuf,
    #[serde(default = "d_heads_policy")]
    pub heads: HeadPolicy,
    #[serde(default)]
    pub fit: HeadFit,
    /// With `heads: adapt`: how the teacher is adapted.
    #[serde(default)]
    pub adapt: AdaptSection,
    /// A teacher-target cache (`destila targets`): with it, `distill` reads the teacher's
    /// top-k MLM logits and NSP logits from `dir` instead of running the teacher.
    #[serde(default)]
    pub targets: Option<TargetsSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSection {
    pub dir: PathBuf,
    /// MLM logits kept per masked position (the teacher's k largest).
    #[serde(default = "d_top_k")]
    pub top_k: usize,
    /// Also store the teacher's mean-pooled last hidden state per sequence.
    #[serde(default)]
    pub pooled: bool,
}

fn d_top_k() -> usize {
    32
}

fn d_heads_policy() -> HeadPolicy {
    HeadPolicy::Fail
}

/// Which teacher layers a student built from the teacher copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerChoice {
    /// `uniform`: evenly spaced, ending at the last layer.
    Named(String),
    /// Teacher layer indices (0-based), one per student layer.
    List(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// BERT's initialisation, N(0, initializer_range).
    Random,
    /// Embeddings, chosen layers, pooler and heads copied from the teacher.
    FromTeacher,
    /// `{checkpoint: DIR, projection: keep | drop}`: every weight from an HF folder of the
    /// student's shape (a stage-one `final/`), to chain stages (TinyBERT).
    #[serde(untagged)]
    Checkpoint(CheckpointInit),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointInit {
    pub checkpoint: PathBuf,
    /// What becomes of the learned hidden-state projection a stage-one run saved beside its
    /// model (`projection.safetensors`): `keep` it for this run's `hidden_mse`, or `drop`
    /// it (a fresh one, if any loss needs one). Required when the checkpoint holds one.
    #[serde(default)]
    pub projection: Option<ProjectionInit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectionInit {
    Keep,
    Drop,
}

/// The file beside a run's `final/` model that holds its learned hidden-state projection.
pub const PROJECTION_FILE: &str = "projection.safetensors";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentSection {
    pub layers: i64,
    /// Defaults: the teacher's (or BERT-base's without a teacher).
    #[serde(default)]
    pub hidden_size: Option<i64>,
    #[serde(default)]
    pub attention_heads: Option<i64>,
    #[serde(default)]
    pub intermediate_size: Option<i64>,
    #[serde(default)]
    pub activation: Option<String>,
    #[serde(default = "d_init")]
    pub init: Init,
    /// With `init: from-teacher`: `uniform` or a list of teacher layers.
    #[serde(default)]
    pub teacher_layers: Option<LayerChoice>,
    /// How many of the top encoder layers train (with the pooler and the heads); absent:
    /// every weight trains. The embeddings (and so a tied MLM decoder) and the layers
    /// below stay as they start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_layers: Option<usize>,
}

fn d_init() -> Init {
    Init::Random
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KdPositions {
    Masked,
    All,
}

fn d_masked() -> KdPositions {
    KdPositions::Masked
}

/// A loss's weight (0 switches it off) and, for layer losses, the (student, teacher) layer
/// pairs it compares; hidden-state layer 0 is the embedding output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeight {
    #[serde(default = "d_zero")]
    pub weight: Scheduled,
    #[serde(default)]
    pub layers: Option<Vec<(usize, usize)>>,
    /// kd_mlm only: `masked` positions or `all` non-padding positions.
    #[serde(default = "d_masked")]
    pub positions: KdPositions,
    /// Which input the loss reads: the `masked` sequence (what MLM needs) or the `clean`
    /// one, the same sequence with every masked token restored. A loss on the clean view
    /// costs one more forward of each model when another loss reads the masked view.
    #[serde(default = "d_view")]
    pub view: View,
    /// similarity only: `mse` over the cosine matrices' entries, or `kl` over their rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Relation>,
    /// similarity with `form: kl` only: the softmax temperature over cosines (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    Masked,
    Clean,
    /// The clean first segment alone (`[CLS] A [SEP]`, the rest masked out of attention):
    /// the input a sentence embedder sees, made from BERT's sentence pairs, so that one
    /// batch of pairs serves MLM/NSP (masked view) and sentence embeddings. With single
    /// sentences it is the clean view.
    First,
}

fn view_name(v: View) -> &'static str {
    match v {
        View::Masked => "masked",
        View::Clean => "clean",
        View::First => "first",
    }
}

fn d_view() -> View {
    View::Masked
}

impl Default for LossWeight {
    fn default() -> Self {
        LossWeight {
            weight: d_zero(),
            layers: None,
            positions: KdPositions::Masked,
            view: View::Masked,
            form: None,
            temperature: None,
        }
    }
}

impl LossWeight {
    /// The similarity loss's comparison and temperature, with their defaults.
    pub fn relation(&self) -> (Relation, f64) {
        (
            self.form.unwrap_or(Relation::Mse),
            self.temperature.unwrap_or(0.1),
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossSection {
    #[serde(default = "d_temperature")]
    pub temperature: Scheduled,
    #[serde(default)]
    pub kd_mlm: LossWeight,
    #[serde(default)]
    pub kd_nsp: LossWeight,
    #[serde(default)]
    pub mlm: LossWeight,
    #[serde(default)]
    pub nsp: LossWeight,
    #[serde(default)]
    pub hidden_cos: LossWeight,
    #[serde(default)]
    pub hidden_mse: LossWeight,
    #[serde(default)]
    pub attention_mse: LossWeight,
    #[serde(default)]
    pub attention_kl: LossWeight,
    #[serde(default)]
    pub value_relation: LossWeight,
    /// 1 − cos between the student's and the teacher's sentence embeddings (mean-pooled
    /// last hidden states), per sequence.
    #[serde(default)]
    pub pooled_cos: LossWeight,
    /// Mean squared error between the student's and the teacher's sentence embeddings.
    #[serde(default)]
    pub pooled_mse: LossWeight,
    /// The relational loss: the student's in-batch matrix of sentence-embedding cosines
    /// against the teacher's (`form: mse | kl`, `temperature` for kl).
    #[serde(default)]
    pub similarity: LossWeight,
}

impl Default for LossSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

impl LossSection {
    /// (name, settings) of every loss, in a fixed order.
    pub fn all(&self) -> [(&'static str, &LossWeight); 12] {
        [
            ("kd_mlm", &self.kd_mlm),
            ("kd_nsp", &self.kd_nsp),
            ("mlm", &self.mlm),
            ("nsp", &self.nsp),
            ("hidden_cos", &self.hidden_cos),
            ("hidden_mse", &self.hidden_mse),
            ("attention_mse", &self.attention_mse),
            ("attention_kl", &self.attention_kl),
            ("value_relation", &self.value_relation),
            ("pooled_cos", &self.pooled_cos),
            ("pooled_mse", &self.pooled_mse),
            ("similarity", &self.similarity),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    Constant,
    Linear,
    Cosine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSection {
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
    #[serde(default = "d_betas")]
    pub betas: (f64, f64),
    #[serde(default = "d_eps")]
    pub eps: f64,
    #[serde(default)]
    pub warmup_steps: u64,
    #[serde(default = "d_schedule")]
    pub schedule: LrSchedule,
    /// Gradient clipping by global norm (0: off).
    #[serde(default = "d_clip")]
    pub max_grad_norm: f64,
}

fn d_schedule() -> LrSchedule {
    LrSchedule::Linear
}

impl Default for OptimizerSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    #[serde(default = "d_steps")]
    pub steps: u64,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default = "d_accum")]
    pub gradient_accumulation: usize,
    /// Validation every N steps (0: only at the end).
    #[serde(default)]
    pub eval_every: u64,
    #[serde(default = "d_eval_batches")]
    pub eval_batches: usize,
    /// A checkpoint every N steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
    #[serde(default = "d_keep")]
    pub keep_checkpoints: usize,
    #[serde(default = "d_log_every")]
    pub log_every: u64,
}

impl Default for TrainingSection {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("defaults")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default = "d_job")]
    pub job: Job,
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// The run's folder: checkpoints, metrics, plots.
    #[serde(default = "d_output")]
    pub output: PathBuf,
    /// auto | cpu | cuda | cuda:N
    #[serde(default = "d_auto")]
    pub device: String,
    /// auto (fp32 on CPU, bf16 on CUDA) | fp32 | bf16 | fp16
    #[serde(default = "d_auto")]
    pub precision: String,
    #[serde(default)]
    pub teacher: Option<TeacherSection>,
    #[serde(default)]
    pub student: Option<StudentSection>,
    pub data: DataConfig,
    #[serde(default)]
    pub losses: LossSection,
    #[serde(default)]
    pub optimizer: OptimizerSection,
    #[serde(default)]
    pub training: TrainingSection,
    /// The file it came from (not part of the YAML).
    #[serde(skip)]
    pub path: PathBuf,
}

fn d_job() -> Job {
    Job::Distill
}

/// Sets `a.b.c` to a YAML scalar in `doc`, creating maps on the way.
fn set_path(
    doc: &mut serde_yaml::Value,
    key: &str,
    value: &str,
) -> std::result::Result<(), String> {
    let parsed: serde_yaml::Value =
        serde_yaml::from_str(value).map_err(|e| format!("value {value:?}: {e}"))?;
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(format!("{key:?} has an empty part"));
        }
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| format!("{} is not a section", parts[..i].join(".")))?;
        let k = serde_yaml::Value::String(part.to_string());
        if i == parts.len() - 1 {
            map.insert(k, parsed);
            return Ok(());
        }
        node = map.entry(k).or_insert(serde_yaml::Value::Null);
    }
    Ok(())
}

impl Recipe {
    /// The files and folders the run reads (teacher, tokenizer, data, target cache, the
    /// student's starting checkpoint): an output folder may never be, or hold, one of them.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.path.clone()];
        if let Some(t) = &self.teacher {
            v.push(t.checkpoint.clone());
            if let Some(tg) = &t.targets {
                v.push(tg.dir.clone());
            }
        }
        if let Some(t) = &self.data.tokenizer {
            v.push(t.clone());
        }
        for d in self.data.train.iter().chain(&self.data.validation) {
            v.push(crate::output::glob_root(d));
        }
        if let Some(Init::Checkpoint(c)) = self.student.as_ref().map(|s| &s.init) {
            v.push(c.checkpoint.clone());
        }
        v
    }

    /// The fields (dotted paths) whose values differ between two recipes, `training.steps`
    /// and the file path aside: what a resumed run may not change.
    pub fn changes_from(&self, earlier: &Recipe) -> Vec<String> {
        let strip = |r: &Recipe| {
            let mut r = r.clone();
            r.training.steps = 0;
            serde_json::to_value(&r).expect("serialisable")
        };
        crate::digest::json_changes(&strip(earlier), &strip(self))
    }

    /// Checks a `student.init: {checkpoint}` against the recipe: the folder, its shape, its
    /// projection; returns its config (the student's shape).
    fn check_init_checkpoint(
        &self,
        c: &CheckpointInit,
        teacher: &crate::bert::BertConfig,
    ) -> Result<crate::bert::BertConfig> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let dir = &c.checkpoint;
        if !dir.join("config.json").is_file() {
            return err(
                "student.init.checkpoint",
                format!(
                    "{}: {}",
                    dir.display(),
                    if dir.is_dir() {
                        "no config.json there (an HF model folder, such as a run's final/)"
                    } else {
                        "no such folder"
                    }
                ),
            );
        }
        let cfg = crate::bert::BertConfig::from_file(dir.join("config.json"))?;
        let s = self.student.as_ref().expect("checked");
        for (field, want, have) in [
            ("layers", Some(s.layers), cfg.num_hidden_layers),
            ("hidden_size", s.hidden_size, cfg.hidden_size),
            (
                "attention_heads",
                s.attention_heads,
                cfg.num_attention_heads,
            ),
            (
                "intermediate_size",
                s.intermediate_size,
                cfg.intermediate_size,
            ),
        ] {
            if let Some(w) = want.filter(|w| *w != have) {
                return err(
                    &format!("student.{field}"),
                    format!(
                        "{w}, but the checkpoint {} the student starts from has {have}",
                        dir.display()
                    ),
                );
            }
        }
        if self.teacher.is_some() && cfg.vocab_size != teacher.vocab_size {
            return err(
                "student.init.checkpoint",
                format!(
                    "{}: vocabulary {} differs from the teacher's {}",
                    dir.display(),
                    cfg.vocab_size,
                    teacher.vocab_size
                ),
            );
        }
        let saved = dir.join(PROJECTION_FILE).is_file();
        let uses = !self.losses.hidden_mse.weight.is_zero()
            && self.teacher.is_some()
            && cfg.hidden_size != teacher.hidden_size;
        match (saved, c.projection) {
            (true, None) => err(
                "student.init.projection",
                format!(
                    "{} holds a learned projection ({PROJECTION_FILE}): say projection: keep (this run's hidden_mse continues with it) or projection: drop",
                    dir.display()
                ),
            ),
            (false, Some(ProjectionInit::Keep)) => err(
                "student.init.projection",
                format!("keep: {} holds no {PROJECTION_FILE}", dir.display()),
            ),
            (true, Some(ProjectionInit::Keep)) if !uses => err(
                "student.init.projection",
                "keep: no loss of this recipe uses a projection (hidden_mse between different widths); say drop".into(),
            ),
            _ => Ok(cfg),
        }
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Recipe> {
        Self::from_file_with(path, &[])
    }

    /// Reads a recipe and applies `KEY=VALUE` overrides (`losses.kd_mlm.weight=2.0`).
    pub fn from_file_with(path: impl AsRef<Path>, overrides: &[String]) -> Result<Recipe> {
        let path = path.as_ref();
        let text = crate::error::read_to_string_max(path, crate::error::MAX_CONFIG_BYTES)?;
        let r = Self::parse(&text, path, overrides)?;
        r.check_models()?;
        Ok(r)
    }

    /// Checks the recipe against the teacher it names (its config.json), before any work:
    /// the folder exists, the student's layers can be copied from it, and the sequence
    /// length fits its position embeddings.
    pub fn check_models(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let base = match &self.teacher {
            Some(t) => {
                let dir = &t.checkpoint;
                if !dir.exists() {
                    return err(
                        "teacher.checkpoint",
                        format!("{}: no such folder", dir.display()),
                    );
                }
                let cfg = dir.join("config.json");
                if !cfg.is_file() {
                    return err(
                        "teacher.checkpoint",
                        format!(
                            "{}: no config.json there (an HF checkpoint folder)",
                            dir.display()
                        ),
                    );
                }
                crate::bert::BertConfig::from_file(&cfg)?
            }
            None => crate::bert::BertConfig::default(),
        };
        if self.data.max_seq_len as i64 > base.max_position_embeddings {
            return err(
                "data.max_seq_len",
                format!(
                    "{} is longer than the model's max_position_embeddings ({})",
                    self.data.max_seq_len, base.max_position_embeddings
                ),
            );
        }
        // The adapt settings are checked even when this run does not adapt (a wrong value
        // is wrong either way, and `heads: adapt` may be set later with --set).
        if let Some(t) = &self.teacher {
            if let Some(n) = t
                .adapt
                .train_layers
                .filter(|n| *n as i64 > base.num_hidden_layers)
            {
                return err(
                    "teacher.adapt.train_layers",
                    format!("{n}, but the teacher has {} layers", base.num_hidden_layers),
                );
            }
            if let Some(d) = &t.adapt.data {
                if d.max_seq_len as i64 > base.max_position_embeddings {
                    return err(
                        "teacher.adapt.data.max_seq_len",
                        format!(
                            "{} is longer than the teacher's max_position_embeddings ({})",
                            d.max_seq_len, base.max_position_embeddings
                        ),
                    );
                }
            }
        }
        let mut base = base;
        if let Some(Init::Checkpoint(c)) = self.student.as_ref().map(|s| &s.init) {
            base = self.check_init_checkpoint(c, &base)?;
        }
        if let Some(s) = &self.student {
            let sc = student_config(s, Some(&base));
            if let Err((f, m)) = sc.validate() {
                let field = match f.as_str() {
                    "num_hidden_layers" => "student.layers",
                    "hidden_size" => "student.hidden_size",
                    "num_attention_heads" => "student.attention_heads",
                    "intermediate_size" => "student.intermediate_size",
                    "hidden_act" => "student.activation",
                    _ => "student",
                };
                return err(field, m);
            }
        }
        if let (Some(s), Some(_)) = (&self.student, &self.teacher) {
            if s.init == Init::FromTeacher {
                if let Err(e) = layer_map(
                    s.teacher_layers.as_ref(),
                    s.layers as usize,
                    base.num_hidden_layers as usize,
                ) {
                    let msg = e.to_string();
                    let (field, msg) = msg.split_once(": ").unwrap_or(("student.layers", &msg));
                    return err(field, msg.to_string());
                }
            }
        }
        if let Some(tok) = &self.data.tokenizer {
            if !tok.exists() {
                return err(
                    "data.tokenizer",
                    format!("{}: no such folder", tok.display()),
                );
            }
        }
        Ok(())
    }

    /// What `distill` checks before any work beyond the recipe itself, so that `recipe
    /// check` refuses everything `distill` would: the output folder (not a root, home,
    /// working directory or input), the caches of teacher products (folders, and not an
    /// input), and a tokenizer that loads.
    pub fn check_runnable(&self) -> Result<()> {
        let inputs = self.inputs();
        crate::output::guard(&self.output, "output", &inputs)?;
        if let Some(t) = &self.teacher {
            // Checked whether or not this run uses them: a cache naming an input (the
            // teacher's own folder) or the working directory is wrong either way.
            let caches: &[(&str, &Path)] = &[
                ("teacher.fit.cache", &t.fit.cache),
                ("teacher.adapt.cache", &t.adapt.cache),
            ];
            for (field, dir) in caches {
                crate::output::guard(dir, field, &inputs)
                    .map_err(|e| Error::config(&self.path, *field, e.to_string()))?;
                if dir.exists() && !dir.is_dir() {
                    return Err(Error::config(
                        &self.path,
                        *field,
                        format!("{} exists and is not a folder", dir.display()),
                    ));
                }
            }
        }
        let field = if self.data.tokenizer.is_some() {
            "data.tokenizer"
        } else {
            "teacher.checkpoint"
        };
        self.tokenizer()
            .map_err(|e| Error::config(&self.path, field, e.to_string()))?;
        Ok(())
    }

    pub fn from_str(text: &str, path: &Path) -> Result<Recipe> {
        Self::parse(text, path, &[])
    }

    fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Recipe> {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| Error::config(path, "(YAML)", e.to_string()))?;
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| Error::config(path, "--set", format!("{o:?} is not KEY=VALUE")))?;
            set_path(&mut doc, k.trim(), v.trim())
                .map_err(|m| Error::config(path, format!("--set {k}"), m))?;
        }
        let mut r: Recipe = serde_path_to_error::deserialize(doc).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." {
                "(top level)".to_string()
            } else {
                field
            };
            Error::config(path, field, e.into_inner().to_string())
        })?;
        r.path = path.to_path_buf();
        r.validate()?;
        Ok(r)
    }

    fn validate(&self) -> Result<()> {
        self.validate_run()?;
        self.validate_optimizer()?;
        self.validate_losses()?;
        self.validate_fit()?;
        self.validate_job()?;
        self.validate_targets()?;
        self.validate_student()
    }

    /// The names of the losses with a weight.
    fn active_losses(&self) -> Vec<&'static str> {
        self.losses
            .all()
            .iter()
            .filter(|(_, w)| !w.weight.is_zero())
            .map(|(n, _)| *n)
            .collect()
    }

    /// The data, training, precision, device and output fields.
    fn validate_run(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        if let Err((f, m)) = self.data.validate() {
            return err(&format!("data.{f}"), m);
        }
        let t = &self.training;
        if t.batch_size == 0 {
            return err("training.batch_size", "must be at least 1".into());
        }
        // Sequences a step holds at once (a batch, and a bucketing window of them).
        const MAX_BATCH: usize = 1 << 16;
        if t.batch_size > MAX_BATCH {
            return err(
                "training.batch_size",
                format!("{} is beyond what fits in memory (at most {MAX_BATCH}; use gradient_accumulation for larger batches)", t.batch_size),
            );
        }
        let window = t
            .batch_size
            .saturating_mul(self.data.length_bucketing.max(1));
        if window > 1 << 20 {
            return err(
                "data.length_bucketing",
                format!(
                    "{} batches of {} sequences are sorted at once ({window} sequences): at most {} batches of this size",
                    self.data.length_bucketing,
                    t.batch_size,
                    (1usize << 20) / t.batch_size
                ),
            );
        }
        if t.eval_batches == 0 {
            return err(
                "training.eval_batches",
                "must be at least 1 (validation runs every eval_every steps and at the end)".into(),
            );
        }
        if t.gradient_accumulation > 1 << 16 {
            return err(
                "training.gradient_accumulation",
                format!(
                    "{} is beyond reason (at most {})",
                    t.gradient_accumulation,
                    1 << 16
                ),
            );
        }
        if t.gradient_accumulation == 0 {
            return err(
                "training.gradient_accumulation",
                "must be at least 1".into(),
            );
        }
        if t.steps == 0 {
            return err("training.steps", "must be at least 1".into());
        }
        if t.keep_checkpoints == 0 {
            return err("training.keep_checkpoints", "must be at least 1".into());
        }
        if !["auto", "fp32", "bf16", "fp16"].contains(&self.precision.as_str()) {
            return err(
                "precision",
                format!("{:?}: allowed auto, fp32, bf16, fp16", self.precision),
            );
        }
        if let Err(e) = crate::device::check_syntax(&self.device) {
            return err("device", e);
        }
        if self.output.as_os_str().is_empty() {
            return err("output", "empty: name the run's folder".into());
        }
        Ok(())
    }

    /// The optimizer section: finite, in range, warmup within the run.
    fn validate_optimizer(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let t = &self.training;
        let o = &self.optimizer;
        if !(o.learning_rate.is_finite() && o.learning_rate > 0.0 && o.learning_rate <= 1.0) {
            return err(
                "optimizer.learning_rate",
                format!(
                    "{} must be positive, finite and at most 1 (AdamW uses about 1e-4)",
                    o.learning_rate
                ),
            );
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return err(
                "optimizer.weight_decay",
                format!("{} must be finite, 0 or more", o.weight_decay),
            );
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            return err(
                "optimizer.eps",
                format!("{} must be positive and finite", o.eps),
            );
        }
        if o.weight_decay >= 1.0 {
            eprintln!(
                "warning: {}: optimizer.weight_decay {} is unusually large (AdamW uses about 0.01)",
                self.path.display(),
                o.weight_decay
            );
        }
        if !(0.0..1.0).contains(&o.betas.0) || !(0.0..1.0).contains(&o.betas.1) {
            return err(
                "optimizer.betas",
                format!("{:?}: each must be in [0, 1)", o.betas),
            );
        }
        if o.warmup_steps > t.steps {
            return err(
                "optimizer.warmup_steps",
                format!("{} exceeds training.steps {}", o.warmup_steps, t.steps),
            );
        }
        if !(o.max_grad_norm.is_finite() && o.max_grad_norm >= 0.0) {
            return err(
                "optimizer.max_grad_norm",
                format!(
                    "{} must be finite, 0 or more (0: no clipping)",
                    o.max_grad_norm
                ),
            );
        }
        Ok(())
    }

    /// The loss weights, temperatures, views and forms.
    fn validate_losses(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let temp_ok = match self.losses.temperature {
            Scheduled::Constant(v) => v > 0.0 && v.is_finite(),
            Scheduled::Linear { start, end } => {
                start > 0.0 && end > 0.0 && start.is_finite() && end.is_finite()
            }
        };
        if !temp_ok {
            return err("losses.temperature", "must be positive and finite".into());
        }
        for (name, w) in self.losses.all() {
            let bad = match w.weight {
                Scheduled::Constant(v) => !(v >= 0.0 && v.is_finite()),
                Scheduled::Linear { start, end } => {
                    !(start >= 0.0 && end >= 0.0 && start.is_finite() && end.is_finite())
                }
            };
            if bad {
                return err(
                    &format!("losses.{name}.weight"),
                    "must be finite, 0 or more".into(),
                );
            }
        }
        for (name, w) in self.losses.all() {
            let f = |k: &str| format!("losses.{name}.{k}");
            if w.layers.as_ref().is_some_and(|l| l.is_empty()) && !w.weight.is_zero() {
                return err(
                    &f("layers"),
                    "empty: list at least one (student, teacher) layer pair, or leave layers out for the default".into(),
                );
            }
            if w.view != View::Masked && ["mlm", "kd_mlm"].contains(&name) {
                return err(
                    &f("view"),
                    format!("{}: this view has no masked tokens to predict (it would show the answers); MLM losses read the masked view", view_name(w.view)),
                );
            }
            if w.view == View::First && ["nsp", "kd_nsp"].contains(&name) {
                return err(
                    &f("view"),
                    "first: the first segment alone has no next sentence to predict; NSP losses read the masked or the clean view".into(),
                );
            }
            if name != "similarity" && (w.form.is_some() || w.temperature.is_some()) {
                let k = if w.form.is_some() {
                    "form"
                } else {
                    "temperature"
                };
                return err(
                    &f(k),
                    format!("only losses.similarity takes {k} (losses.temperature is the KD temperature)"),
                );
            }
            if let Some(t) = w.temperature {
                if !(t.is_finite() && t > 0.0) {
                    return err(
                        &f("temperature"),
                        format!("{t} must be positive and finite"),
                    );
                }
                if w.relation().0 != Relation::Kl {
                    return err(&f("temperature"), "only with form: kl".into());
                }
            }
            if self.data.examples == ExampleFormat::Sentences
                && ["nsp", "kd_nsp"].contains(&name)
                && !w.weight.is_zero()
            {
                return err(
                    &f("weight"),
                    "data.examples is sentences: single sentences have no next-sentence pair to predict".into(),
                );
            }
        }
        Ok(())
    }

    /// The settings of fitting heads onto the teacher.
    fn validate_fit(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        if let Some(t) = &self.teacher {
            let f = &t.fit;
            if f.steps == 0 {
                return err("teacher.fit.steps", "must be at least 1".into());
            }
            if f.batch_size == 0 {
                return err("teacher.fit.batch_size", "must be at least 1".into());
            }
            if !(f.learning_rate.is_finite() && f.learning_rate > 0.0) {
                return err(
                    "teacher.fit.learning_rate",
                    format!("{} must be positive and finite", f.learning_rate),
                );
            }
            if !(f.mlm_probability > 0.0 && f.mlm_probability < 1.0) {
                return err(
                    "teacher.fit.mlm_probability",
                    format!("{} must be in (0, 1)", f.mlm_probability),
                );
            }
            if f.cache.as_os_str().is_empty() {
                return err(
                    "teacher.fit.cache",
                    "empty: name the folder fitted heads are kept in".into(),
                );
            }
            if f.learning_rate > 1.0 {
                return err(
                    "teacher.fit.learning_rate",
                    format!("{} must be at most 1", f.learning_rate),
                );
            }
            self.validate_adapt(t)?;
        }
        Ok(())
    }

    /// The settings of teacher adaptation (`teacher.heads: adapt`).
    fn validate_adapt(&self, t: &TeacherSection) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let a = &t.adapt;
        if a.steps == 0 {
            return err("teacher.adapt.steps", "must be at least 1".into());
        }
        if a.batch_size == 0 {
            return err("teacher.adapt.batch_size", "must be at least 1".into());
        }
        if !(a.learning_rate.is_finite() && a.learning_rate > 0.0 && a.learning_rate <= 1.0) {
            return err(
                "teacher.adapt.learning_rate",
                format!("{} must be positive, finite and at most 1", a.learning_rate),
            );
        }
        if !(a.mlm_probability > 0.0 && a.mlm_probability < 1.0) {
            return err(
                "teacher.adapt.mlm_probability",
                format!("{} must be in (0, 1)", a.mlm_probability),
            );
        }
        if !(a.preserve.is_finite() && a.preserve >= 0.0) {
            return err(
                "teacher.adapt.preserve",
                format!("{} must be finite, 0 or more", a.preserve),
            );
        }
        if a.train_layers == Some(0) {
            return err(
                "teacher.adapt.train_layers",
                "must be at least 1 (leave it out to train every layer)".into(),
            );
        }
        if let Some(d) = &a.data {
            if let Err((f, m)) = d.validate() {
                return err(&format!("teacher.adapt.data.{f}"), m);
            }
        }
        if a.cache.as_os_str().is_empty() {
            return err(
                "teacher.adapt.cache",
                "empty: name the folder adapted teachers are kept in".into(),
            );
        }
        if t.heads == HeadPolicy::Adapt && self.job != Job::Distill {
            return err(
                "teacher.heads",
                format!(
                    "adapt: only a distill job adapts its teacher (this is a {} job)",
                    serde_yaml::to_string(&self.job).unwrap_or_default().trim()
                ),
            );
        }
        Ok(())
    }

    /// What each job needs: a teacher, a student, active losses.
    fn validate_job(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let active = self.active_losses();
        let needs_teacher = active.iter().any(|n| !["mlm", "nsp"].contains(n));
        match self.job {
            Job::Distill => {
                if self.teacher.is_none() {
                    return err("teacher", "a distill job needs a teacher".into());
                }
                if self.student.is_none() {
                    return err("student", "a distill job needs a student".into());
                }
                if active.is_empty() {
                    return err("losses", "every loss weight is 0: nothing to train".into());
                }
            }
            Job::Pretrain => {
                if needs_teacher {
                    return err(
                        "losses",
                        format!(
                            "a pretrain job has no teacher; only mlm and nsp apply (active: {})",
                            active.join(", ")
                        ),
                    );
                }
                if self.student.is_none() {
                    return err("student", "a pretrain job needs a student".into());
                }
                if active.is_empty() {
                    return err(
                        "losses",
                        "set losses.mlm.weight and/or losses.nsp.weight".into(),
                    );
                }
            }
            Job::FitHeads => {
                if self.teacher.is_none() {
                    return err("teacher", "a fit-heads job needs a teacher".into());
                }
            }
        }
        Ok(())
    }

    /// A teacher-target cache: what it can feed.
    fn validate_targets(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let active = self.active_losses();
        if let Some(tg) = self.teacher.as_ref().and_then(|t| t.targets.as_ref()) {
            if tg.top_k == 0 {
                return err("teacher.targets.top_k", "must be at least 1".into());
            }
            if self.job == Job::Distill {
                let live: Vec<&&str> = active
                    .iter()
                    .filter(|n| {
                        ![
                            "kd_mlm",
                            "kd_nsp",
                            "mlm",
                            "nsp",
                            "pooled_cos",
                            "pooled_mse",
                            "similarity",
                        ]
                        .contains(n)
                    })
                    .collect();
                if !live.is_empty() {
                    return err(
                        "teacher.targets",
                        format!(
                            "a target cache holds MLM and NSP logits and pooled embeddings only; {} need(s) the live teacher (remove teacher.targets or set their weights to 0)",
                            live.iter().map(|n| format!("losses.{n}")).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                if let Some((name, w)) = self
                    .losses
                    .all()
                    .into_iter()
                    .find(|(_, w)| !w.weight.is_zero() && w.view != View::Masked)
                {
                    return err(
                        &format!("losses.{name}.view"),
                        format!("{}: a target cache holds the teacher's outputs on the masked sequences only (remove teacher.targets, or use view: masked)", view_name(w.view)),
                    );
                }
                if self.losses.kd_mlm.positions == KdPositions::All && active.contains(&"kd_mlm") {
                    return err(
                        "losses.kd_mlm.positions",
                        "a target cache holds masked positions only: use positions: masked".into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The student section, and the tokenizer a recipe without teacher names.
    fn validate_student(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        if let Some(s) = &self.student {
            if s.layers <= 0 {
                return err("student.layers", format!("{} must be positive", s.layers));
            }
            if let Some(n) = s.train_layers {
                if n == 0 || n as i64 > s.layers {
                    return err(
                        "student.train_layers",
                        format!(
                            "{n}: must be 1 to student.layers ({}); leave it out to train every weight",
                            s.layers
                        ),
                    );
                }
            }
            if let (Some(h), Some(a)) = (s.hidden_size, s.attention_heads) {
                if a <= 0 || h <= 0 || h % a != 0 {
                    return err(
                        "student.hidden_size",
                        format!("{h} is not divisible by attention_heads {a}"),
                    );
                }
            }
            if let Some(act) = &s.activation {
                if crate::bert::Activation::parse(act).is_none() {
                    return err(
                        "student.activation",
                        format!("{act:?}: allowed {}", crate::bert::config::ACTIVATIONS),
                    );
                }
            }
            match (&s.init, &s.teacher_layers) {
                (Init::Random | Init::Checkpoint(_), Some(_)) => {
                    return err(
                        "student.teacher_layers",
                        "only with init: from-teacher".into(),
                    );
                }
                (Init::FromTeacher, _) if self.teacher.is_none() => {
                    return err(
                        "student.init",
                        "from-teacher needs a teacher section".into(),
                    );
                }
                (_, Some(LayerChoice::Named(n))) if n != "uniform" => {
                    return err(
                        "student.teacher_layers",
                        format!("{n:?}: allowed uniform or a list of layer indices"),
                    );
                }
                (_, Some(LayerChoice::List(l))) if l.len() as i64 != s.layers => {
                    return err(
                        "student.teacher_layers",
                        format!("{} layers listed for a {}-layer student", l.len(), s.layers),
                    );
                }
                _ => {}
            }
        }
        if self.data.tokenizer.is_none() && self.teacher.is_none() {
            return err(
                "data.tokenizer",
                "needed when the recipe has no teacher".into(),
            );
        }
        Ok(())
    }

    /// The folder whose tokenizer the data uses: `data.tokenizer`, else the teacher's.
    pub fn tokenizer_dir(&self) -> &Path {
        match (&self.data.tokenizer, &self.teacher) {
            (Some(t), _) => t,
            (None, Some(t)) => &t.checkpoint,
            (None, None) => Path::new("."),
        }
    }

    pub fn tokenizer(&self) -> Result<BertTokenizer> {
        BertTokenizer::from_dir(self.tokenizer_dir())
    }
}

/// The student's config: the teacher's (or BERT's defaults), with the recipe's overrides.
pub fn student_config(s: &StudentSection, teacher: Option<&BertConfig>) -> BertConfig {
    let mut c = teacher.cloned().unwrap_or_default();
    c.num_hidden_layers = s.layers;
    if let Some(h) = s.hidden_size {
        c.hidden_size = h;
    }
    if let Some(a) = s.attention_heads {
        c.num_attention_heads = a;
    }
    if let Some(i) = s.intermediate_size {
        c.intermediate_size = i;
    }
    if let Some(a) = &s.activation {
        c.hidden_act = a.clone();
    }
    c.extra.remove("_name_or_path");
    // The student's decoder is its word-embedding matrix, as in BERT, even when the
    // teacher's was untied for head fitting: a second vocabulary matrix would double the
    // student's largest part.
    c.tie_word_embeddings = true;
    c
}

/// Teacher layer (0-based) for each student layer. `uniform` spaces them evenly, ending at
/// the teacher's last layer (6 → 3: 1, 3, 5; 12 → 4: 2, 5, 8, 11).
pub fn layer_map(
    choice: Option<&LayerChoice>,
    student: usize,
    teacher: usize,
) -> Result<Vec<usize>> {
    if student == 0 || (student > teacher && !matches!(choice, Some(LayerChoice::List(_)))) {
        return Err(Error::Invalid(format!(
            "student.layers: {student} for a {teacher}-layer teacher: init: from-teacher copies one teacher layer per student layer, so a student has 1 to {teacher} layers (or list student.teacher_layers)"
        )));
    }
    let map = match choice {
        Some(LayerChoice::List(l)) => l.clone(),
        _ => (1..=student)
            .map(|i| ((i * teacher) as f64 / student as f64).round() as usize - 1)
            .collect(),
    };
    if let Some(bad) = map.iter().find(|&&l| l >= teacher) {
        return Err(Error::Invalid(format!(
            "student.teacher_layers: layer {bad} does not exist (the teacher has {teacher}, numbered from 0)"
        )));
    }
    Ok(map)
}
