//! Recipe validation: every check a recipe passes before anything runs (the fields one by
//! one, how they combine, the models and folders they name), used alike by `recipe check`,
//! `distill` and `targets`.

use super::*;

impl Recipe {
    /// Checks a `student.init: {checkpoint}` against the recipe: the folder, its shape, its
    /// projection; returns its config (the student's shape).
    pub(crate) fn check_init_checkpoint(
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
                if t.also.is_empty() && t.combine.is_some() {
                    return err(
                        "teacher.combine",
                        "combines several teachers; there is one (teacher.also is empty)".into(),
                    );
                }
                if self.text_teacher() {
                    return self.check_text_teacher();
                }
                if self.token_ensemble() {
                    self.check_ensemble()?;
                }
                crate::bert::BertConfig::from_file(&cfg)?
            }
            None => crate::bert::BertConfig::default(),
        };
        self.check_max_seq_len(&base, "model")?;
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
        let teacher_hidden = self.teacher.as_ref().map(|_| base.hidden_size);
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
            if let Some(p) = &s.prune {
                if self.teacher.is_none() || self.job != Job::Distill {
                    return err(
                        "student.prune",
                        "the importance of the student's units is measured against a teacher: job: distill with a teacher".into(),
                    );
                }
                let o = p.options(self.seed, self.data.max_seq_len);
                crate::prune::structure::check_options(&o, &sc).or_else(|(k, m)| {
                    let field = if k.is_empty() {
                        "student.prune".to_string()
                    } else {
                        format!("student.prune.{k}")
                    };
                    err(&field, m)
                })?;
            }
            if let (Some(th), Job::Distill) = (teacher_hidden, &self.job) {
                // The width the student trains at: after pruning, when the hidden size is.
                let (field, h) = match s.prune.as_ref().and_then(|p| p.hidden) {
                    Some(h) => ("student.prune.hidden", h),
                    None => ("student.hidden_size", sc.hidden_size),
                };
                crate::distill::step::check_widths(self, field, h, th)?;
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
        self.check_tokenizer_folder()
    }

    /// A teacher that reads text (an MPNet, `distill::text_teacher`): its config, and what
    /// such a teacher cannot do, each refused by field: it gives sentence embeddings only
    /// (no heads, hidden states or attentions the student could be matched with, no layers
    /// to copy, no target cache, no pruning measure), of clean text.
    fn check_text_teacher(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let t = self.teacher.as_ref().expect("a teacher");
        let widths = self.teacher_folders(true)?;
        let what = if t.also.is_empty() {
            format!(
                "the teacher ({}) is an MPNet, which reads the student's sentences as text and gives sentence embeddings",
                t.checkpoint.display()
            )
        } else {
            "with teacher.also, every teacher reads the student's sentences as text and gives sentence embeddings".to_string()
        };
        if self.job != Job::Distill {
            return err("job", format!("{what}: only job: distill can use it"));
        }
        if t.heads != HeadPolicy::Fail {
            return err(
                "teacher.heads",
                format!("{what}; MLM/NSP heads are fitted to or adapted from BERT teachers only"),
            );
        }
        if t.targets.is_some() {
            return err(
                "teacher.targets",
                format!(
                    "{what}; its embeddings are kept in teacher.pooled_cache, not a target cache"
                ),
            );
        }
        for (name, w) in self.losses.all() {
            if w.weight.is_zero() {
                continue;
            }
            if !matches!(name, "pooled_cos" | "pooled_mse" | "similarity") {
                return err(
                    &format!("losses.{name}"),
                    format!("{what}: only pooled_cos, pooled_mse and similarity can learn from it"),
                );
            }
            if w.view == View::Masked {
                return err(
                    &format!("losses.{name}.view"),
                    format!("masked: {what} of clean text: use view: clean or first"),
                );
            }
        }
        let s = self.student.as_ref().expect("distill has a student");
        if s.prune.is_some() {
            return err(
                "student.prune",
                format!("{what}; pruning measures importance against a BERT teacher's outputs"),
            );
        }
        let base = match &s.init {
            Init::FromTeacher => {
                return err(
                    "student.init",
                    format!("from-teacher: {what}; it has no BERT layers to copy (use {{checkpoint: DIR}} or random)"),
                )
            }
            Init::Checkpoint(c) => {
                let own = crate::bert::BertConfig::from_file(c.checkpoint.join("config.json"));
                match own {
                    Ok(own) => self.check_init_checkpoint(c, &own)?,
                    Err(_) => self.check_init_checkpoint(c, &crate::bert::BertConfig::default())?,
                }
            }
            Init::Random => {
                if self.data.tokenizer.is_none() {
                    return err(
                        "data.tokenizer",
                        format!("{what}; a random student needs its own tokenizer: set data.tokenizer"),
                    );
                }
                crate::bert::BertConfig::default()
            }
        };
        self.check_max_seq_len(&base, "student")?;
        let sc = student_config(s, Some(&base));
        if let Err((f, m)) = sc.validate() {
            return err(&format!("student ({f})"), m);
        }
        self.check_tokenizer_folder()?;
        if self.losses.pooled_cos.weight.is_zero() && self.losses.pooled_mse.weight.is_zero() {
            return Ok(());
        }
        if t.combine == Some(Combine::Targets) && t.reduce == Reduce::Pca {
            return err(
                "teacher.reduce",
                "pca with teacher.combine: targets: the teachers' embeddings side by side are \
                 reached through one learned map (reduce: learned), not each teacher's own \
                 principal directions"
                    .into(),
            );
        }
        for (dir, _, width) in widths {
            if t.reduce == Reduce::Pca && sc.hidden_size > width {
                return err(
                    "teacher.reduce",
                    format!(
                        "pca: the student ({}) is wider than the teacher {} ({width}); use learned",
                        sc.hidden_size,
                        dir.display()
                    ),
                );
            }
        }
        Ok(())
    }

    /// Each teacher's folder, family and width, checked by field: `teacher.also` folders
    /// with a config.json (and a tokenizer.json when the teachers read text), of a family
    /// destila reads, weights finite and positive, no folder twice.
    pub(super) fn teacher_folders(
        &self,
        reads_text: bool,
    ) -> Result<Vec<(PathBuf, crate::encoder::Family, i64)>> {
        let t = self.teacher.as_ref().expect("a teacher");
        let mut out = Vec::new();
        for (i, (dir, weight)) in t.all().into_iter().enumerate() {
            let field = |f: &str| match i {
                0 => format!("teacher.{f}"),
                _ => format!("teacher.also[{}].{f}", i - 1),
            };
            if !(weight.is_finite() && weight > 0.0) {
                return Err(Error::config(
                    &self.path,
                    field("weight"),
                    format!("{weight}: a teacher's weight is a positive number"),
                ));
            }
            let cfg = dir.join("config.json");
            if !cfg.is_file() {
                let why = match dir.exists() {
                    true => "no config.json there (an HF checkpoint folder)",
                    false => "no such folder",
                };
                return Err(Error::config(
                    &self.path,
                    field("checkpoint"),
                    format!("{}: {why}", dir.display()),
                ));
            }
            let family = crate::encoder::family(dir)?;
            let width = match family {
                crate::encoder::Family::Mpnet => {
                    crate::mpnet::MpnetConfig::from_file(&cfg)?.hidden_size
                }
                crate::encoder::Family::Bert => {
                    crate::bert::BertConfig::from_file(&cfg)?.hidden_size
                }
            };
            if reads_text && !dir.join("tokenizer.json").is_file() {
                return Err(Error::config(
                    &self.path,
                    field("checkpoint"),
                    format!(
                        "{}: no tokenizer.json there (a teacher that reads text tokenizes it itself)",
                        dir.display()
                    ),
                ));
            }
            let same = out.iter().position(|(d, _, _): &(PathBuf, _, i64)| {
                d == dir
                    || matches!((d.canonicalize(), dir.canonicalize()), (Ok(a), Ok(b)) if a == b)
            });
            if let Some(j) = same {
                let first = match j {
                    0 => "teacher.checkpoint".to_string(),
                    _ => format!("teacher.also[{}].checkpoint", j - 1),
                };
                return Err(Error::config(
                    &self.path,
                    field("checkpoint"),
                    format!(
                        "{}: the same teacher as {first}; give it one entry and a larger weight",
                        dir.display()
                    ),
                ));
            }
            out.push((dir.to_path_buf(), family, width));
        }
        if t.also.is_empty() && t.weight != 1.0 {
            return Err(Error::config(
                &self.path,
                "teacher.weight",
                "weighs this teacher beside teacher.also's; there are none".to_string(),
            ));
        }
        Ok(out)
    }

    /// `data.max_seq_len` fits `whose` position embeddings (`base`).
    fn check_max_seq_len(&self, base: &crate::bert::BertConfig, whose: &str) -> Result<()> {
        if self.data.max_seq_len as i64 > base.max_position_embeddings {
            return Err(Error::config(
                &self.path,
                "data.max_seq_len",
                format!(
                    "{} is longer than the {whose}'s max_position_embeddings ({})",
                    self.data.max_seq_len, base.max_position_embeddings
                ),
            ));
        }
        Ok(())
    }

    /// `data.tokenizer`, when given, is a folder that exists.
    fn check_tokenizer_folder(&self) -> Result<()> {
        match &self.data.tokenizer {
            Some(tok) if !tok.exists() => Err(Error::config(
                &self.path,
                "data.tokenizer",
                format!("{}: no such folder", tok.display()),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the teacher reads text (its config.json says MPNet, or there are several,
    /// `teacher.also`, without kd_mlm/kd_nsp: see `token_ensemble`): see
    /// `check_text_teacher`.
    pub fn text_teacher(&self) -> bool {
        self.teacher.as_ref().is_some_and(|t| {
            (!t.also.is_empty() && !self.token_ensemble())
                || crate::encoder::family(&t.checkpoint).ok() == Some(crate::encoder::Family::Mpnet)
        })
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
                ("teacher.pooled_cache", &t.pooled_cache),
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
        self.check_writable(|_| true)?;
        let field = if self.data.tokenizer.is_some() {
            "data.tokenizer"
        } else {
            "teacher.checkpoint"
        };
        self.tokenizer()
            .map_err(|e| Error::config(&self.path, field, e.to_string()))?;
        Ok(())
    }

    /// Refuses, by field, a folder of `written_folders` (those `which` picks) that the run
    /// could not make or write; makes nothing.
    pub fn check_writable(&self, which: impl Fn(&str) -> bool) -> Result<()> {
        for (field, dir) in self.written_folders() {
            if !which(field) {
                continue;
            }
            crate::output::creatable(dir).map_err(|e| {
                Error::config(
                    &self.path,
                    field,
                    format!("{}: cannot write there: {e}", dir.display()),
                )
            })?;
        }
        Ok(())
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.validate_run()?;
        self.validate_optimizer()?;
        self.validate_losses()?;
        self.validate_fit()?;
        self.validate_job()?;
        self.validate_targets()?;
        self.validate_student()
    }

    /// The names of the losses with a weight.
    pub(crate) fn active_losses(&self) -> Vec<&'static str> {
        self.losses
            .all()
            .iter()
            .filter(|(_, w)| !w.weight.is_zero())
            .map(|(n, _)| *n)
            .collect()
    }

    /// The data, training, precision, device and output fields.
    pub(crate) fn validate_run(&self) -> Result<()> {
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
    pub(crate) fn validate_optimizer(&self) -> Result<()> {
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
    pub(crate) fn validate_losses(&self) -> Result<()> {
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
    pub(crate) fn validate_fit(&self) -> Result<()> {
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
    pub(crate) fn validate_adapt(&self, t: &TeacherSection) -> Result<()> {
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
    pub(crate) fn validate_job(&self) -> Result<()> {
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
    pub(crate) fn validate_targets(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let active = self.active_losses();
        if let Some(tg) = self.teacher.as_ref().and_then(|t| t.targets.as_ref()) {
            if tg.top_k.is_some() && tg.sample.is_some() {
                return err(
                    "teacher.targets.sample",
                    "set either top_k (the teacher's k largest MLM logits) or sample (draws from its MLM distribution), not both".into(),
                );
            }
            if tg.top_k == Some(0) {
                return err("teacher.targets.top_k", "must be at least 1".into());
            }
            if tg.sample == Some(0) {
                return err("teacher.targets.sample", "must be at least 1".into());
            }
            if let Some(n) = tg
                .sample
                .filter(|&n| n > crate::distill::losses::MAX_SAMPLE)
            {
                return err(
                    "teacher.targets.sample",
                    format!(
                        "{n} draws per masked token; at most {} (draws beyond the vocabulary's size add little)",
                        crate::distill::losses::MAX_SAMPLE
                    ),
                );
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
    pub(crate) fn validate_student(&self) -> Result<()> {
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
}
