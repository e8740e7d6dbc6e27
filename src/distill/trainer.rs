//! One trainer for three jobs: distillation (teacher → student), pretraining (no teacher),
//! and fitting MLM/NSP heads onto a frozen headless teacher. The recipe says which.
//!
//! `run` sets the run up (`setup`), builds a [`Trainer`] and trains. A step is: forward of
//! the student (train mode) and of the teacher (eval, no grad, MLM logits only where a loss
//! reads them), the weighted losses (`step`), backward (accumulated over micro-batches),
//! clipping, AdamW. Dropout is seeded by (seed, step, rank), the data by its cursor, so a
//! run resumed from a checkpoint continues exactly.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{self as ckpt, TrainerState};
use super::metrics::{self, Metrics, Row};
use super::optim::{AdamW, LossScaler};
use super::recipe::{Recipe, PROJECTION_FILE};
use super::schedule::lr_factor;
use super::setup::{self, Prepared, Setup};
use super::step::{compute, evaluate, weights_at, Plan, Teacher};
use super::targets::CacheLoader;
use super::text_teacher::TextTeacher;
use crate::bert::Model;
use crate::data::{self, Batch, Cursor, Loader};
use crate::dist::{self, Group};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The data-parallel run this process belongs to (see `dist::join`); None: alone.
    pub group: Option<Arc<Group>>,
    /// Continue from the newest checkpoint in the output folder.
    pub resume: bool,
    /// Start over even if the output folder has checkpoints (they are removed).
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub output: PathBuf,
    pub steps: u64,
    pub first_validation: Option<f64>,
    pub last_validation: Option<f64>,
    pub final_model: PathBuf,
    pub metrics: PathBuf,
    pub plot: PathBuf,
    pub seconds: f64,
}

/// Runs a recipe to its last step (or from its newest checkpoint with `resume`).
pub fn run(recipe: &Recipe, opts: &RunOptions) -> Result<RunSummary> {
    let started = Instant::now();
    let prepared = setup::prepare(&Setup {
        recipe,
        group: &opts.group,
        resume: opts.resume,
        force: opts.force,
        fit: &|sub| fit_heads(sub, opts),
    })?;
    Trainer::new(recipe, opts, started, prepared)?.train()
}

/// The fit-heads run a teacher without heads gets (see `teacher::with_heads`).
pub fn fit_heads(sub: &Recipe, opts: &RunOptions) -> Result<PathBuf> {
    let summary = run(
        sub,
        &RunOptions {
            resume: false,
            force: true,
            quiet: opts.quiet,
            group: opts.group.clone(),
        },
    )?;
    Ok(summary.final_model)
}

/// Where training batches come from: the live pipeline, or a target cache.
enum Source {
    Live(Box<Loader>),
    Cache(CacheLoader),
}

impl Source {
    fn next_batch(&mut self) -> Result<Batch> {
        match self {
            Source::Live(l) => l
                .next_batch()
                .ok_or_else(|| Error::Invalid("the training data cannot fill one batch".into())),
            Source::Cache(c) => c.next_batch(),
        }
    }

    fn cursor(&self) -> Cursor {
        match self {
            Source::Live(l) => l.cursor(),
            Source::Cache(c) => c.cursor(),
        }
    }
}

/// Throughput and collective time since the last logged row.
struct Window {
    since: Instant,
    samples: u64,
    tokens: u64,
    /// Seconds in destila's own collectives outside the backward pass (loss counts and
    /// the logged sums; the gradient all-reduce overlaps the backward).
    comm: f64,
    steps: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            since: Instant::now(),
            samples: 0,
            tokens: 0,
            comm: 0.0,
            steps: 0,
        }
    }
}

/// What one optimiser step gave, for the log.
struct StepStats {
    lr: f64,
    temperature: f64,
    weights: Vec<f64>,
    /// The loss components, averaged over the global batch.
    sums: Vec<f64>,
    grad_norm: f64,
}

/// A run in progress: the models, the optimiser, the data, the log.
pub struct Trainer<'a> {
    recipe: &'a Recipe,
    opts: &'a RunOptions,
    started: Instant,
    device: Device,
    kind: Kind,
    model: Model,
    teacher: Option<Model>,
    /// Teachers whose soft MLM/NSP targets are averaged with `teacher`'s, with weights.
    also: Vec<(Model, f64)>,
    /// Teachers that read text (MPNet, or several): sentence embeddings for the sentence
    /// losses.
    text: Vec<TextTeacher>,
    extra: nn::VarStore,
    projection: Option<nn::Linear>,
    plan: Plan,
    tok_dir: PathBuf,
    ckpt_root: PathBuf,
    optimizer: AdamW,
    reducer: Option<dist::Reducer>,
    scaler: Option<LossScaler>,
    loader: Source,
    val_batches: Vec<Batch>,
    start: u64,
    rank: usize,
    world: usize,
    metrics: Option<Metrics>,
    metrics_path: PathBuf,
    bar: indicatif::ProgressBar,
    job: String,
    window: Window,
    first_val: Option<f64>,
    last_val: Option<f64>,
}

impl<'a> Trainer<'a> {
    fn new(
        recipe: &'a Recipe,
        opts: &'a RunOptions,
        started: Instant,
        p: Prepared,
    ) -> Result<Trainer<'a>> {
        let group = &opts.group;
        let main = dist::is_main(group);
        let (rank, world) = group.as_ref().map_or((0, 1), |g| (g.rank(), g.world()));
        let mut optimizer = optimizer(recipe, &p.model, &p.extra);
        // Data parallel: DDP's reducer averages the gradients during the last
        // micro-batch's backward pass, over exactly the parameters the losses reach.
        let reducer = match group {
            Some(g) => {
                let reached: Vec<Tensor> = optimizer
                    .variables()
                    .into_iter()
                    .filter(|(name, _)| p.plan.reaches(name))
                    .map(|(_, v)| v)
                    .collect();
                Some(dist::Reducer::new(g.clone(), &reached)?)
            }
            None => None,
        };
        let mut scaler = (p.kind == Kind::Half).then(LossScaler::new);
        let (start, cursor) = resume(opts, &p, &mut optimizer, &mut scaler, world)?;
        let loader = train_source(recipe, &p, rank, world, cursor)?;
        let val_batches = if main {
            validation_batches(recipe, &p)?
        } else {
            Vec::new()
        };
        // Rank 0 alone writes metrics, checkpoints and the progress bar.
        let metrics_path = recipe.output.join("metrics.csv");
        let metrics = match main {
            true => Some(Metrics::open(&metrics_path, start)?),
            false => None,
        };
        let job = format!("{:?}", recipe.job).to_lowercase();
        let bar = progress_bar(recipe.training.steps, opts.quiet || !main, &job, start);
        Ok(Trainer {
            recipe,
            opts,
            started,
            device: p.device,
            kind: p.kind,
            model: p.model,
            teacher: p.teacher,
            also: p.also,
            text: p.text,
            extra: p.extra,
            projection: p.projection,
            plan: p.plan,
            tok_dir: p.tok_dir,
            ckpt_root: p.ckpt_root,
            optimizer,
            reducer,
            scaler,
            loader,
            val_batches,
            start,
            rank,
            world,
            metrics,
            metrics_path,
            bar,
            job,
            window: Window::new(),
            first_val: None,
            last_val: None,
        })
    }

    /// Every step from the start (0, or the resumed checkpoint's) to the last, then the
    /// final model.
    pub fn train(mut self) -> Result<RunSummary> {
        let total = self.recipe.training.steps;
        if self.start == 0 {
            self.first_val = self.validate(0, 0)?;
        }
        for step in self.start..total {
            let stats = self.step(step)?;
            let done = step + 1;
            self.log(done, &stats)?;
            let every = self.recipe.training.eval_every;
            if every > 0 && done.is_multiple_of(every) && done != total {
                let epoch = self.loader.cursor().epoch;
                self.last_val = self.validate(done, epoch)?.or(self.last_val);
            }
            self.checkpoint(done)?;
        }
        self.finish()
    }

    /// One optimiser step: its micro-batches' forwards and backwards, the global loss
    /// components, clipping (and loss scaling), AdamW.
    fn step(&mut self, step: u64) -> Result<StepStats> {
        let recipe = self.recipe;
        let (o, total) = (&recipe.optimizer, recipe.training.steps);
        let lr = o.learning_rate * lr_factor(o.schedule, step, o.warmup_steps, total);
        let temperature = recipe.losses.temperature.at(step, total);
        let weights = weights_at(&self.plan, step, total);
        tch::manual_seed(
            (recipe.seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(step as i64)
                .wrapping_add((self.rank as i64).wrapping_mul(7_919_000_017)),
        );
        let mut sums = vec![0.0; self.plan.active.len()];
        let mut seen = (0.0, 0.0);
        let scale = self.scaler.as_ref().map(|s| s.scale).unwrap_or(1.0);
        let accum = recipe.training.gradient_accumulation;
        for micro in 0..accum {
            let last = micro + 1 == accum;
            self.micro_batch(last, &weights, temperature, scale, &mut sums, &mut seen)?;
        }
        self.aggregate(&mut sums, seen)?;
        for ((name, _, _), x) in self.plan.active.iter().zip(&sums) {
            if !x.is_finite() {
                return Err(self.stop(format!("step {}: loss component {name} is {x}", step + 1)));
            }
        }
        let grad_norm = self.update(step, lr, scale)?;
        Ok(StepStats {
            lr,
            temperature,
            weights,
            sums,
            grad_norm,
        })
    }

    /// Forward and backward of one micro-batch; its loss components (weighed into the
    /// global batch's means) are added to `sums`, its sequences and tokens to `seen`.
    fn micro_batch(
        &mut self,
        last: bool,
        weights: &[f64],
        temperature: f64,
        scale: f64,
        sums: &mut [f64],
        seen: &mut (f64, f64),
    ) -> Result<()> {
        let batch = self.loader.next_batch()?.to_device(self.device);
        let sync = self.reducer.as_ref().filter(|_| last);
        if let Some(r) = sync {
            r.begin()?;
        }
        seen.0 += batch.size() as f64;
        seen.1 += batch
            .inputs
            .attention_mask
            .sum(Kind::Int64)
            .int64_value(&[]) as f64;
        let c = compute(
            &self.plan,
            &self.model,
            self.teachers(),
            self.projection.as_ref(),
            &batch,
            temperature,
            true,
        )?;
        // Each component is a mean over its own count; weighing by count / global count
        // makes the sum over ranks the global batch's mean (alone: weight 1); the reducer
        // averages over the ranks, hence the factor `world`.
        let mut global = c.counts.clone();
        if let Some(g) = &self.opts.group {
            let t0 = Instant::now();
            g.sum_f64(&mut global)?;
            self.window.comm += t0.elapsed().as_secs_f64();
        }
        let accum = self.recipe.training.gradient_accumulation;
        let mut loss = Tensor::zeros([], (Kind::Float, self.device));
        for (i, ((_, v), w)) in c.components.iter().zip(weights).enumerate() {
            if c.counts[i] == 0.0 {
                // Nothing to average here (a mean over nothing is NaN): contribute zero,
                // yet keep the graph so the same gradients exist on every rank.
                loss += v.nan_to_num(0.0, None::<f64>, None::<f64>) * 0.0;
                continue;
            }
            let f = c.counts[i] / global[i];
            sums[i] += v.double_value(&[]) * f / accum as f64;
            loss += v * (*w * f * self.world as f64);
        }
        let loss = loss * (scale / accum as f64);
        match sync {
            Some(r) => {
                r.expect(&loss)?;
                r.backward(&loss)
            }
            None => {
                loss.backward();
                Ok(())
            }
        }
    }

    /// The step's loss components, sequences and tokens summed over the ranks.
    fn aggregate(&mut self, sums: &mut [f64], seen: (f64, f64)) -> Result<()> {
        let mut agg = sums.to_vec();
        agg.extend([seen.0, seen.1]);
        if let Some(g) = &self.opts.group {
            let t0 = Instant::now();
            g.sum_f64(&mut agg)?;
            self.window.comm += t0.elapsed().as_secs_f64();
        }
        let n = sums.len();
        self.window.samples += agg[n] as u64;
        self.window.tokens += agg[n + 1] as u64;
        sums.copy_from_slice(&agg[..n]);
        Ok(())
    }

    /// Unscales and clips the gradients, and takes the AdamW step (unless fp16 loss
    /// scaling skips it); returns the gradient norm before clipping.
    fn update(&mut self, step: u64, lr: f64, scale: f64) -> Result<f64> {
        let o = &self.recipe.optimizer;
        if scale != 1.0 {
            self.optimizer.scale_grads(1.0 / scale);
        }
        let grad_norm = self.optimizer.clip_grad_norm(o.max_grad_norm);
        let take = match self.scaler.as_mut() {
            Some(s) => s.update(grad_norm),
            None => true,
        };
        if !grad_norm.is_finite() && self.scaler.is_none() {
            return Err(self.stop(format!(
                "step {}: the gradient norm is {grad_norm}",
                step + 1
            )));
        }
        if take {
            self.optimizer.step(lr, o.weight_decay);
        }
        self.optimizer.zero_grad();
        Ok(grad_norm)
    }

    /// The error that stops a run, the progress bar left where it was.
    fn stop(&self, what: String) -> Error {
        self.bar.abandon();
        Error::Invalid(format!(
            "{what}; stopped (the last good checkpoint is kept in {})",
            self.ckpt_root.display()
        ))
    }

    /// A train row every `log_every` steps (and the first and last), and the progress bar.
    fn log(&mut self, done: u64, s: &StepStats) -> Result<()> {
        let tr = &self.recipe.training;
        let loss: f64 = s.sums.iter().zip(&s.weights).map(|(v, w)| v * w).sum();
        let w = &mut self.window;
        w.steps += 1;
        let secs = w.since.elapsed().as_secs_f64();
        let (sps, tps) = (w.samples as f64 / secs, w.tokens as f64 / secs);
        if done.is_multiple_of(tr.log_every.max(1)) || done == tr.steps || done == 1 {
            let mut row = Row::new("train", done);
            row.set("epoch", self.loader.cursor().epoch as f64)
                .set("lr", s.lr)
                .set("temperature", s.temperature)
                .set("loss", loss)
                .set("grad_norm", s.grad_norm)
                .set("samples_per_s", sps)
                .set("tokens_per_s", tps)
                .set("elapsed_s", self.started.elapsed().as_secs_f64());
            row.set("step_s", secs / w.steps as f64);
            if self.opts.group.is_some() {
                row.set("sync_s", w.comm / w.steps as f64);
            }
            for ((name, _, _), v) in self.plan.active.iter().zip(&s.sums) {
                row.set(name, *v);
            }
            if let Some(m) = self.metrics.as_mut() {
                m.write(&row)?;
            }
            self.window = Window::new();
        }
        let parts: Vec<String> = self
            .plan
            .active
            .iter()
            .zip(&s.sums)
            .map(|((n, _, _), v)| format!("{n} {v:.3}"))
            .collect();
        self.bar.set_message(format!(
            "loss {loss:.4} ({}) {sps:.1} samples/s",
            parts.join(" ")
        ));
        self.bar.inc(1);
        Ok(())
    }

    /// The validation row after `step` steps (rank 0, when there are validation batches);
    /// returns the validation loss.
    /// The step's teachers: the BERT run beside the student (and those averaged with it),
    /// or the teachers that read text.
    fn teachers(&self) -> Teacher<'_> {
        Teacher {
            model: self.teacher.as_ref(),
            weight: self.recipe.teacher.as_ref().map_or(1.0, |t| t.weight),
            also: &self.also,
            text: &self.text,
            combined: self.recipe.teacher.as_ref().and_then(|t| t.combine)
                == Some(crate::distill::recipe::Combine::Targets),
        }
    }

    fn validate(&mut self, step: u64, epoch: u64) -> Result<Option<f64>> {
        if self.metrics.is_none() || self.val_batches.is_empty() {
            return Ok(None);
        }
        let total = self.recipe.training.steps;
        let w = weights_at(&self.plan, step.saturating_sub(1), total);
        let temp = self
            .recipe
            .losses
            .temperature
            .at(step.saturating_sub(1), total);
        let e = evaluate(
            &self.plan,
            &self.model,
            self.teachers(),
            self.projection.as_ref(),
            &self.val_batches,
            &w,
            temp,
        )?;
        let mut row = Row::new("validation", step);
        row.set("epoch", epoch as f64)
            .set("temperature", temp)
            .set("loss", e.loss);
        for (n, v) in &e.components {
            row.set(n, *v);
        }
        if let Some(a) = e.mlm_accuracy {
            row.set("mlm_accuracy", a);
        }
        if let Some(a) = e.nsp_accuracy {
            row.set("nsp_accuracy", a);
        }
        self.metrics.as_mut().expect("rank 0").write(&row)?;
        let parts: Vec<String> = e
            .components
            .iter()
            .map(|(n, v)| format!("{n} {v:.4}"))
            .collect();
        let accuracies: String = [("MLM", e.mlm_accuracy), ("NSP", e.nsp_accuracy)]
            .iter()
            .filter_map(|(n, a)| a.map(|a| format!(", {n} accuracy {a:.3}")))
            .collect();
        let job = &self.job;
        self.bar.suspend(|| {
            eprintln!(
                "{job} step {step}: validation loss {:.4} ({}){accuracies}",
                e.loss,
                parts.join(", "),
            )
        });
        Ok(Some(e.loss))
    }

    /// A checkpoint every `checkpoint_every` steps and at the last (rank 0).
    fn checkpoint(&self, done: u64) -> Result<()> {
        let tr = &self.recipe.training;
        let due = (tr.checkpoint_every > 0 && done.is_multiple_of(tr.checkpoint_every))
            || done == tr.steps;
        if !due || !dist::is_main(&self.opts.group) {
            return Ok(());
        }
        let state = TrainerState {
            step: done,
            cursor: self.loader.cursor(),
            scaler: self.scaler.clone(),
            recipe: self.recipe.clone(),
            world: self.world,
        };
        ckpt::save(
            &self.ckpt_root,
            &self.model,
            &self.optimizer,
            &self.extra,
            &state,
            &self.tok_dir,
            tr.keep_checkpoints,
        )?;
        for t in &self.text {
            t.save_cache()?;
        }
        Ok(())
    }

    /// The last validation, the final model (fp32, with the tokenizer and any learned
    /// projection beside it) and the loss plot.
    fn finish(mut self) -> Result<RunSummary> {
        self.bar.finish_and_clear();
        let total = self.recipe.training.steps;
        let epoch = self.loader.cursor().epoch;
        if let Some(v) = self.validate(total, epoch)? {
            self.last_val = Some(v);
        }
        drop(self.metrics.take());
        let out = &self.recipe.output;
        let summary = RunSummary {
            output: out.clone(),
            steps: total,
            first_validation: self.first_val,
            last_validation: self.last_val,
            final_model: out.join("final"),
            metrics: self.metrics_path.clone(),
            plot: out.join("loss.svg"),
            seconds: 0.0,
        };
        if !dist::is_main(&self.opts.group) {
            return Ok(RunSummary {
                first_validation: None,
                last_validation: None,
                seconds: self.started.elapsed().as_secs_f64(),
                ..summary
            });
        }
        for t in &self.text {
            t.save_cache()?;
            let st = t.stats();
            let (rows, loaded) = t.memo_sizes();
            eprintln!(
                "teacher {} (reads text): {} sentence embeddings computed ({} tokens, {:.0} tokens/s), {} served from memory; {} kept in {} ({} were there before)",
                t.encoder.dir().display(),
                st.misses,
                st.tokens,
                st.tokens as f64 / st.seconds.max(1e-9),
                st.hits,
                rows,
                t.cache_file().map_or("(no cache)".into(), |p| p.display().to_string()),
                loaded,
            );
        }
        if self.kind != Kind::Float {
            self.model.vs.set_kind(Kind::Float);
        }
        setup::save_model(
            &self.model,
            self.recipe,
            &summary.final_model,
            |tmp| match &self.projection {
                Some(p) => save_projection(p, &tmp.join(PROJECTION_FILE)),
                None => Ok(()),
            },
        )?;
        metrics::plot(
            &summary.metrics,
            &summary.plot,
            &format!("destila {}: {}", self.job, self.recipe.path.display()),
        )?;
        Ok(RunSummary {
            seconds: self.started.elapsed().as_secs_f64(),
            ..summary
        })
    }
}

/// With `--resume`: the newest checkpoint's weights, optimiser state, loss scale, step and
/// data cursor; else step 0.
fn resume(
    opts: &RunOptions,
    p: &Prepared,
    optimizer: &mut AdamW,
    scaler: &mut Option<LossScaler>,
    world: usize,
) -> Result<(u64, Cursor)> {
    Ok(match (opts.resume, p.existing.last()) {
        (true, Some(last)) => {
            let state = ckpt::restore(last, &p.model, optimizer, &p.extra)?;
            if state.world != world {
                return Err(Error::Invalid(format!(
                    "{}: the checkpoint was written by a run of {} process(es); resume it with the same number (this run has {world})",
                    last.display(),
                    state.world
                )));
            }
            *scaler = state.scaler;
            eprintln!("resuming from {} (step {})", last.display(), state.step);
            (state.step, state.cursor)
        }
        (true, None) => {
            eprintln!(
                "nothing to resume in {}: starting at step 0",
                p.ckpt_root.display()
            );
            (0, Cursor::default())
        }
        (false, _) => (0, Cursor::default()),
    })
}

/// AdamW over the trainable parameters and any learned projection (`extra.*`).
fn optimizer(recipe: &Recipe, model: &Model, extra: &nn::VarStore) -> AdamW {
    let mut named: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .collect();
    named.extend(
        extra
            .variables()
            .into_iter()
            .map(|(n, v)| (format!("extra.{n}"), v)),
    );
    let o = &recipe.optimizer;
    AdamW::new(named, o.betas.0, o.betas.1, o.eps)
}

/// The training batches: every rank draws the global batch (batch_size per rank) and
/// keeps its slice, from the live pipeline or the target cache.
fn train_source(
    recipe: &Recipe,
    p: &Prepared,
    rank: usize,
    world: usize,
    cursor: Cursor,
) -> Result<Source> {
    Ok(match &p.cache {
        Some(c) => Source::Cache(CacheLoader::new(
            c.clone(),
            rank,
            world,
            recipe.seed,
            p.tokenizer.pad_id,
            cursor,
        )?),
        None => {
            let bs = recipe.training.batch_size;
            let mut o = data::loader_options(&recipe.data, &p.tokenizer, bs, recipe.seed);
            o.batch_size = bs * world;
            o.rank = rank;
            o.world = world;
            Source::Live(Box::new(Loader::new(
                p.sets.train.corpus.clone(),
                p.sets.train.docs.clone(),
                o,
                cursor,
            )))
        }
    })
}

/// The validation batches (rank 0): the cache's, or `eval_batches` held-out batches.
fn validation_batches(recipe: &Recipe, p: &Prepared) -> Result<Vec<Batch>> {
    let pad = p.tokenizer.pad_id;
    Ok(match (&p.sets.validation, &p.cache) {
        (_, Some(c)) => (0..c.batches("validation"))
            .map(|i| Ok(c.batch("validation", i, pad)?.to_device(p.device)))
            .collect::<Result<_>>()?,
        (Some(v), None) => {
            let bs = recipe.training.batch_size;
            let o = data::loader_options(&recipe.data, &p.tokenizer, bs, recipe.seed);
            let mut l = data::held_out_loader(v.corpus.clone(), v.docs.clone(), o);
            (0..recipe.training.eval_batches)
                .map_while(|_| l.next_items())
                .map(|g| data::batch::collate(&g, pad).to_device(p.device))
                .collect()
        }
        (None, None) => Vec::new(),
    })
}

fn progress_bar(total: u64, hidden: bool, job: &str, start: u64) -> indicatif::ProgressBar {
    let bar = if hidden {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} {msg} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_prefix(job.to_string());
    bar.set_position(start);
    bar
}

/// A learned projection beside the model, for a next stage to keep or drop.
fn save_projection(p: &nn::Linear, path: &std::path::Path) -> Result<()> {
    let named = [
        ("projection.weight", p.ws.to_kind(Kind::Float)),
        (
            "projection.bias",
            p.bs.as_ref().expect("bias").to_kind(Kind::Float),
        ),
    ];
    crate::error::write_atomic(path, |tmp| {
        Tensor::write_safetensors(&named, tmp).map_err(|e| Error::checkpoint(tmp, e.to_string()))
    })
}
