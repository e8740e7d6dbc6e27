//! Recipes: YAML files that say what to run. Deserialised with unknown keys refused, then
//! validated; every error names the file and the field path and says what is allowed.
//! `--set a.b.c=value` overrides are applied to the YAML tree before deserialising, so they
//! are checked exactly like the file.

mod defaults;
mod ensemble;
mod overrides;
mod validate;

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
    #[serde(default = "defaults::d_fit_steps")]
    pub steps: u64,
    #[serde(default = "defaults::d_fit_lr")]
    pub learning_rate: f64,
    /// Sequences per fitting step (whatever the distillation's batch size).
    #[serde(default = "defaults::d_fit_batch")]
    pub batch_size: usize,
    /// The share of tokens masked while fitting (BERT's 15%, whatever the distillation's).
    #[serde(default = "defaults::d_mlm_probability")]
    pub mlm_probability: f64,
    /// The fitted MLM decoder: `tied` to the frozen word embeddings (BERT's form; only the
    /// transform and the bias train) or `untied`, its own matrix initialised from them.
    #[serde(default = "defaults::d_decoder")]
    pub decoder: Decoder,
    /// Where fitted heads are kept for reuse by any run (keyed by the teacher's weights and
    /// tokenizer, these settings, the seed and the data).
    #[serde(default = "defaults::d_heads_cache")]
    pub cache: PathBuf,
}

/// Teacher adaptation (`teacher.heads: adapt`): continued MLM + NSP pretraining of the
/// teacher itself, with its sentence embeddings held to the frozen original's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptSection {
    #[serde(default = "defaults::d_adapt_steps")]
    pub steps: u64,
    #[serde(default = "defaults::d_adapt_lr")]
    pub learning_rate: f64,
    #[serde(default = "defaults::d_fit_batch")]
    pub batch_size: usize,
    #[serde(default = "defaults::d_mlm_probability")]
    pub mlm_probability: f64,
    /// How many of the top encoder layers train (with the pooler and the heads); absent:
    /// every layer and the embeddings (and so the tied decoder).
    #[serde(default)]
    pub train_layers: Option<usize>,
    /// The weight of each preservation loss against the frozen original teacher, on the
    /// clean view: `pooled_cos` (each sentence embedding) and `similarity` (the in-batch
    /// cosine structure).
    #[serde(default = "defaults::d_preserve")]
    pub preserve: f64,
    /// The text to adapt on (BERT's sentence pairs are made from it, whatever the run's
    /// example format); absent: the recipe's own `data` section.
    #[serde(default)]
    pub data: Option<DataConfig>,
    /// Where adapted teachers are kept for reuse by any run, each in a folder named by the
    /// digest of what it depends on (the teacher's weights and tokenizer, these settings,
    /// the seed).
    #[serde(default = "defaults::d_adapt_cache")]
    pub cache: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decoder {
    Tied,
    Untied,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    /// An HF checkpoint folder.
    pub checkpoint: PathBuf,
    #[serde(default = "defaults::d_heads_policy")]
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
    /// A teacher that reads text (another family, e.g. MPNet): how its sentence embeddings
    /// meet the student's width in `pooled_cos`/`pooled_mse` (`similarity` needs no map).
    #[serde(default, skip_serializing_if = "Reduce::is_default")]
    pub reduce: Reduce,
    /// A teacher that reads text: where its sentence embeddings are kept, by content
    /// (`DIR/KEY/pooled.safetensors`), so it runs once per sentence across epochs and runs.
    #[serde(
        default = "defaults::d_pooled_cache",
        skip_serializing_if = "defaults::is_d_pooled_cache"
    )]
    pub pooled_cache: PathBuf,
    /// Several teachers at once (TextBrewer's multi-teacher distillation): this teacher's
    /// weight beside `also`'s. Only with `also`.
    #[serde(
        default = "defaults::d_weight",
        skip_serializing_if = "defaults::is_d_weight"
    )]
    pub weight: f64,
    /// More teachers, each with its weight. With any, every teacher (this one too) reads
    /// text and gives sentence embeddings: each sentence loss is the weighted mean of the
    /// loss against each teacher (each through its own map to its width).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<AlsoTeacher>,
    /// With `also`: how the teachers' sentence embeddings meet the student (`losses`, the
    /// weighted mean of the loss against each, when unset), or how BERT teachers' soft
    /// MLM/NSP targets do (`targets`, their weighted mixture, when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<Combine>,
}

/// How several teachers (`teacher.also`) are learned from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    /// Each sentence loss against each teacher (each through its own map to its width),
    /// then their weighted mean.
    Losses,
    /// One target made of all the teachers, and one loss against it: for `similarity`
    /// the weighted mean of their in-batch cosine matrices; for `pooled_cos`/`pooled_mse`
    /// their unit embeddings side by side, each scaled by the square root of its share
    /// of the weights (so its cosines are the same weighted mean), reached through one
    /// learned map; for kd_mlm/kd_nsp the weighted mixture of their soft targets.
    Targets,
}

/// One more teacher of `teacher.also`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsoTeacher {
    /// An HF checkpoint folder (BERT or MPNet) with its tokenizer.json.
    pub checkpoint: PathBuf,
    #[serde(default = "defaults::d_weight")]
    pub weight: f64,
}

impl TeacherSection {
    /// Every teacher with its weight: this one first, then `also`'s.
    pub fn all(&self) -> Vec<(&Path, f64)> {
        std::iter::once((self.checkpoint.as_path(), self.weight))
            .chain(self.also.iter().map(|a| (a.checkpoint.as_path(), a.weight)))
            .collect()
    }
}

/// How a text teacher's embeddings meet a student of another width.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduce {
    /// A linear map from the student's width to the teacher's, trained with the student
    /// (saved in checkpoints beside it, not in the student).
    #[default]
    Learned,
    /// The teacher's embeddings projected on their top principal directions (as many as
    /// the student is wide), fitted on training sentences before step 0.
    Pca,
}

impl Reduce {
    fn is_default(&self) -> bool {
        *self == Reduce::Learned
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSection {
    pub dir: PathBuf,
    /// MLM logits kept per masked position: the teacher's k largest (32 unless `sample`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Instead of the top k: N draws from the teacher's MLM distribution at the KD
    /// temperature, kept as distinct tokens with their counts. Its KL's gradient is an
    /// unbiased estimate of the full soft target's (the top k drop the tail's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<usize>,
    /// Also store the teacher's mean-pooled last hidden state per sequence.
    #[serde(default)]
    pub pooled: bool,
}

/// How a target cache keeps the teacher's MLM distribution at each masked position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlmTargets {
    /// Its k largest logits and the log mass of the rest.
    TopK(usize),
    /// N draws from it (at the KD temperature), as distinct tokens and counts.
    Sample(usize),
}

impl TargetsSection {
    pub fn mlm(&self) -> MlmTargets {
        match (self.top_k, self.sample) {
            (_, Some(n)) => MlmTargets::Sample(n),
            (k, None) => MlmTargets::TopK(k.unwrap_or_else(defaults::d_top_k)),
        }
    }
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
    #[serde(untagged, deserialize_with = "checkpoint_map")]
    Checkpoint(CheckpointInit),
}

/// `{checkpoint: DIR, ...}` and nothing else: through an untagged variant serde would also
/// take a list as the struct's fields in order, so `init: [x]` read as the checkpoint `x`.
fn checkpoint_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<CheckpointInit, D::Error> {
    use serde::de::Error as _;
    let v = serde_yaml::Value::deserialize(d)?;
    if !v.is_mapping() {
        return Err(D::Error::custom("expected {checkpoint: DIR}"));
    }
    CheckpointInit::deserialize(v).map_err(D::Error::custom)
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
    #[serde(default = "defaults::d_init")]
    pub init: Init,
    /// With `init: from-teacher`: `uniform` or a list of teacher layers.
    #[serde(default)]
    pub teacher_layers: Option<LayerChoice>,
    /// How many of the top encoder layers train (with the pooler and the heads); absent:
    /// every weight trains. The embeddings (and so a tied MLM decoder) and the layers
    /// below stay as they start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_layers: Option<usize>,
    /// Structured pruning of the student as it starts (after its init), measured against
    /// the teacher on the training text: `destila prune --heads/--ffn/--hidden` in the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneSection>,
}

/// `student.prune`: what `destila prune`'s structured flags say, for a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSection {
    /// Attention heads kept per layer (on average across layers unless `even`).
    #[serde(default)]
    pub heads: Option<i64>,
    /// Feed-forward neurons kept per layer (on average across layers unless `even`).
    #[serde(default)]
    pub ffn: Option<i64>,
    /// Hidden dimensions kept (a multiple of the head size).
    #[serde(default)]
    pub hidden: Option<i64>,
    #[serde(default)]
    pub even: bool,
    /// Cut in this many steps, importance measured again after each.
    #[serde(default = "defaults::d_one")]
    pub rounds: usize,
    /// Training sentences the importance is measured on.
    #[serde(default = "defaults::d_prune_sentences")]
    pub sentences: usize,
    /// random ±1 probes per batch for the second-order term.
    #[serde(default = "defaults::d_prune_probes")]
    pub probes: usize,
}

impl PruneSection {
    /// The same as `destila prune`'s options (the recipe's seed, the data's max length).
    pub fn options(&self, seed: u64, max_len: usize) -> crate::prune::structure::StructureOptions {
        crate::prune::structure::StructureOptions {
            heads: self.heads,
            ffn: self.ffn,
            hidden: self.hidden,
            even: self.even,
            rounds: self.rounds,
            sentences: self.sentences,
            probes: self.probes,
            max_len,
            seed,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KdPositions {
    Masked,
    All,
}

/// A loss's weight (0 switches it off) and, for layer losses, the (student, teacher) layer
/// pairs it compares; hidden-state layer 0 is the embedding output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeight {
    #[serde(default = "defaults::d_zero")]
    pub weight: Scheduled,
    #[serde(default)]
    pub layers: Option<Vec<(usize, usize)>>,
    /// kd_mlm only: `masked` positions or `all` non-padding positions.
    #[serde(default = "defaults::d_masked")]
    pub positions: KdPositions,
    /// Which input the loss reads: the `masked` sequence (what MLM needs) or the `clean`
    /// one, the same sequence with every masked token restored. A loss on the clean view
    /// costs one more forward of each model when another loss reads the masked view.
    #[serde(default = "defaults::d_view")]
    pub view: View,
    /// similarity only: `mse` over the cosine matrices' entries, `kl` over their rows, or
    /// `pearson` over their pairs (blind to an offset or scale of the cosines).
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
    #[serde(default = "defaults::d_temperature")]
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
    /// against the teacher's (`form: mse | kl | pearson`, `temperature` for kl).
    #[serde(default)]
    pub similarity: LossWeight,
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
    #[serde(default = "defaults::d_lr")]
    pub learning_rate: f64,
    #[serde(default = "defaults::d_wd")]
    pub weight_decay: f64,
    #[serde(default = "defaults::d_betas")]
    pub betas: (f64, f64),
    #[serde(default = "defaults::d_eps")]
    pub eps: f64,
    #[serde(default)]
    pub warmup_steps: u64,
    #[serde(default = "defaults::d_schedule")]
    pub schedule: LrSchedule,
    /// Gradient clipping by global norm (0: off).
    #[serde(default = "defaults::d_clip")]
    pub max_grad_norm: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    #[serde(default = "defaults::d_steps")]
    pub steps: u64,
    #[serde(default = "defaults::d_batch")]
    pub batch_size: usize,
    #[serde(default = "defaults::d_accum")]
    pub gradient_accumulation: usize,
    /// Validation every N steps (0: only at the end).
    #[serde(default)]
    pub eval_every: u64,
    #[serde(default = "defaults::d_eval_batches")]
    pub eval_batches: usize,
    /// A checkpoint every N steps (0: only at the end).
    #[serde(default)]
    pub checkpoint_every: u64,
    #[serde(default = "defaults::d_keep")]
    pub keep_checkpoints: usize,
    #[serde(default = "defaults::d_log_every")]
    pub log_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default = "defaults::d_job")]
    pub job: Job,
    #[serde(default = "defaults::d_seed")]
    pub seed: u64,
    /// The run's folder: checkpoints, metrics, plots.
    #[serde(default = "defaults::d_output")]
    pub output: PathBuf,
    /// auto | cpu | cuda | cuda:N
    #[serde(default = "defaults::d_auto")]
    pub device: String,
    /// auto (fp32 on CPU, bf16 on CUDA) | fp32 | bf16 | fp16
    #[serde(default = "defaults::d_auto")]
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

impl Recipe {
    /// The folders a run writes, by field: its output, the caches of its teacher that it
    /// uses, and the shard cache when that is not yet a folder (a made one may be read-only).
    pub fn written_folders(&self) -> Vec<(&'static str, &Path)> {
        let mut v: Vec<(&'static str, &Path)> = vec![("output", &self.output)];
        if !self.data.cache_dir.is_dir() {
            v.push(("data.cache_dir", &self.data.cache_dir));
        }
        v.extend(self.teacher_caches());
        v
    }

    /// The teacher's caches a run writes: the pooled embeddings of a teacher that reads
    /// text, the fitted or adapted heads.
    pub fn teacher_caches(&self) -> Vec<(&'static str, &Path)> {
        let mut v: Vec<(&'static str, &Path)> = Vec::new();
        let Some(t) = &self.teacher else {
            return v;
        };
        if self.job == Job::Distill && self.text_teacher() {
            v.push(("teacher.pooled_cache", &t.pooled_cache));
        }
        match t.heads {
            HeadPolicy::Fit => v.push(("teacher.fit.cache", &t.fit.cache)),
            HeadPolicy::Adapt => v.push(("teacher.adapt.cache", &t.adapt.cache)),
            _ => {}
        }
        v
    }

    /// The files and folders the run reads (teacher, tokenizer, data, target cache, the
    /// student's starting checkpoint): an output folder may never be, or hold, one of them.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.path.clone()];
        if let Some(t) = &self.teacher {
            v.push(t.checkpoint.clone());
            v.extend(t.also.iter().map(|a| a.checkpoint.clone()));
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

    /// The folder whose tokenizer the data uses: `data.tokenizer`, else the teacher's.
    pub fn tokenizer_dir(&self) -> &Path {
        match (&self.data.tokenizer, &self.teacher) {
            (Some(t), _) => t,
            // A teacher that reads text has its own tokenizer; the student keeps the one of
            // the checkpoint it starts from.
            (None, Some(t)) => match self.student.as_ref().map(|s| &s.init) {
                Some(Init::Checkpoint(c)) if self.text_teacher() => &c.checkpoint,
                _ => &t.checkpoint,
            },
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
    if c.num_hidden_layers != s.layers {
        // A structurally pruned base's per-layer widths follow its layers: a student of
        // another depth is built at the nominal widths (`init: from-teacher` maps them).
        c.layer_heads = None;
        c.layer_intermediate_sizes = None;
    }
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
