//! Several BERT teachers that share the student's vocabulary, run on the student's own
//! ids (`teacher.also` with `kd_mlm` or `kd_nsp`): their soft MLM and NSP targets are
//! averaged, each weighted (TextBrewer's multi-teacher distillation). What such a recipe
//! may ask is checked here, each refusal by field.

use super::*;

impl Recipe {
    /// Whether the teachers run on the student's ids and their soft MLM/NSP targets are
    /// averaged: `teacher.also` lists teachers and `kd_mlm` or `kd_nsp` has a weight
    /// (otherwise `teacher.also`'s teachers read text and give sentence embeddings).
    pub fn token_ensemble(&self) -> bool {
        self.teacher.as_ref().is_some_and(|t| !t.also.is_empty())
            && (!self.losses.kd_mlm.weight.is_zero() || !self.losses.kd_nsp.weight.is_zero())
    }

    /// The checks of `token_ensemble`: every teacher a BERT with the student's vocabulary
    /// (its tokenizer's word pieces, in order), weights positive, no teacher twice; only the
    /// losses a mixture of soft targets serves (kd_mlm, kd_nsp, and the label losses); heads
    /// brought by each teacher (none fitted or adapted here), no target cache.
    pub(super) fn check_ensemble(&self) -> Result<()> {
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        let t = self.teacher.as_ref().expect("a teacher");
        let what = "with teacher.also and kd_mlm or kd_nsp, every teacher runs on the student's ids and their soft MLM/NSP targets are averaged";
        if self.job != Job::Distill {
            return err(
                "job",
                format!("{what}: only job: distill runs several teachers"),
            );
        }
        let folders = self.teacher_folders(false)?;
        let student = self.tokenizer()?;
        let vocab = student.vocab_in_order();
        for (i, (dir, family, _)) in folders.iter().enumerate() {
            let field = match i {
                0 => "teacher.checkpoint".to_string(),
                _ => format!("teacher.also[{}].checkpoint", i - 1),
            };
            if *family != crate::encoder::Family::Bert {
                return err(
                    &field,
                    format!("{}: not a BERT; {what}, which needs BERT teachers that share the student's vocabulary", dir.display()),
                );
            }
            if i == 0 {
                continue;
            }
            let theirs = BertTokenizer::from_dir(dir)
                .map_err(|e| Error::config(&self.path, &field, e.to_string()))?;
            if theirs.vocab_in_order() != vocab {
                return err(
                    &field,
                    format!(
                        "{}: its vocabulary ({} pieces) is not the student's ({}, {} pieces); {what}, which needs one vocabulary",
                        dir.display(),
                        theirs.vocab_size(),
                        student.source().display(),
                        student.vocab_size()
                    ),
                );
            }
        }
        if t.combine == Some(Combine::Losses) {
            return err(
                "teacher.combine",
                format!("losses: {what} (targets; the loss against the mixture has the gradient of the weighted mean of the losses, so there is no other form)"),
            );
        }
        if t.heads != HeadPolicy::Fail {
            return err(
                "teacher.heads",
                format!("{what}; each teacher brings its own MLM/NSP heads (fit or adapt a teacher first with a recipe of its own, then list its folder)"),
            );
        }
        if t.targets.is_some() {
            return err(
                "teacher.targets",
                format!("{what}; a target cache holds one teacher's targets"),
            );
        }
        for name in self.active_losses() {
            if !matches!(name, "kd_mlm" | "kd_nsp" | "mlm" | "nsp") {
                return err(
                    &format!("losses.{name}"),
                    format!("{what}; losses.{name} reads one teacher's hidden states, attentions or embeddings (use teacher.also without kd_mlm/kd_nsp for sentence losses against several teachers)"),
                );
            }
        }
        Ok(())
    }
}
