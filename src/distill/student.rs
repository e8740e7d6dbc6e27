//! Building the student: its config from the recipe (defaults from the teacher), and its
//! initialisation, random (BERT's) or copied from the teacher (embeddings, chosen layers,
//! pooler and MLM/NSP heads), as DistilBERT initialised from bert-base.

use std::path::Path;

use tch::Device;

pub use super::recipe::{layer_map, student_config};
use super::recipe::{Init, StudentSection};
use crate::bert::{BertConfig, Heads, Model};
use crate::error::{Error, Result};

/// Builds the student with every head (so it can learn MLM/NSP and be exported with them).
/// `base` gives what the recipe leaves out (vocabulary, positions, defaults for the shape);
/// `teacher` gives the weights for `init: from-teacher`.
pub fn build(
    s: &StudentSection,
    base: &BertConfig,
    teacher: Option<&Model>,
    device: Device,
    recipe_path: &Path,
) -> Result<Model> {
    if let Init::Checkpoint(c) = &s.init {
        return from_checkpoint(s, &c.checkpoint, device, recipe_path);
    }
    let mut cfg = student_config(s, Some(base));
    cfg.validate()
        .map_err(|(f, m)| Error::config(recipe_path, format!("student ({f})"), m))?;
    if s.init == Init::Random {
        return Ok(Model::random(&cfg, Heads::ALL, device));
    }
    let teacher = teacher.ok_or_else(|| {
        Error::config(recipe_path, "student.init", "from-teacher needs a teacher")
    })?;
    let tc = teacher.config();
    for (field, a, b) in [
        ("hidden_size", cfg.hidden_size, tc.hidden_size),
        (
            "intermediate_size",
            cfg.intermediate_size,
            tc.intermediate_size,
        ),
        (
            "attention_heads",
            cfg.num_attention_heads,
            tc.num_attention_heads,
        ),
    ] {
        if a != b {
            return Err(Error::config(
                recipe_path,
                format!("student.{field}"),
                format!("{a} differs from the teacher's {b}; init: from-teacher copies weights and needs equal shapes"),
            ));
        }
    }
    let map = layer_map(
        s.teacher_layers.as_ref(),
        cfg.num_hidden_layers as usize,
        tc.num_hidden_layers as usize,
    )?;
    if tc.is_pruned() {
        // A structurally pruned teacher: each student layer has its teacher layer's widths.
        cfg.layer_heads = Some(map.iter().map(|&j| tc.heads_of(j)).collect());
        cfg.layer_intermediate_sizes = Some(map.iter().map(|&j| tc.intermediate_of(j)).collect());
    }
    let student = Model::random(&cfg, Heads::ALL, device);
    let tvars = teacher.vs.variables();
    let svars = student.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &svars {
            let source = match name.strip_prefix("bert.encoder.layer.") {
                Some(rest) => {
                    let (idx, tail) = rest.split_once('.').expect("layer.N.rest");
                    let i: usize = idx.parse().expect("layer index");
                    format!("bert.encoder.layer.{}.{tail}", map[i])
                }
                None => name.clone(),
            };
            // Heads the teacher lacks stay freshly initialised.
            if let Some(t) = tvars.get(&source) {
                var.shallow_clone().f_copy_(t)?;
            }
        }
        Ok(())
    })?;
    Ok(student)
}

/// `init: {checkpoint: DIR}`: the student built in the checkpoint's shape (the recipe's
/// `student` fields must agree, checked with the recipe) with every weight it holds; heads
/// it lacks are freshly initialised.
fn from_checkpoint(
    s: &StudentSection,
    dir: &Path,
    device: Device,
    recipe_path: &Path,
) -> Result<Model> {
    let base = BertConfig::from_file(dir.join("config.json"))?;
    let cfg = student_config(s, Some(&base));
    cfg.validate()
        .map_err(|(f, m)| Error::config(recipe_path, format!("student ({f})"), m))?;
    let student = Model::random(&cfg, Heads::ALL, device);
    let source = crate::bert::load(
        dir,
        &crate::bert::LoadOptions {
            device,
            heads: Heads::ALL,
            ..Default::default()
        },
    )?;
    let svars = source.vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, var) in student.vs.variables() {
            if let Some(t) = svars.get(&name) {
                if t.size() != var.size() {
                    return Err(Error::checkpoint(
                        dir,
                        format!(
                            "tensor {name}: shape {:?}, the student (student section) expects {:?}",
                            t.size(),
                            var.size()
                        ),
                    ));
                }
                var.shallow_clone().f_copy_(t)?;
            }
        }
        Ok(())
    })?;
    Ok(student)
}

/// `student.train_layers: n`: only the top `n` encoder layers, the pooler and the heads
/// train; the embeddings (and so a tied MLM decoder) and the layers below stay frozen.
pub fn train_top_layers(model: &Model, n: usize) {
    let layers = model.config().num_hidden_layers as usize;
    let first = layers.saturating_sub(n);
    for (name, v) in model.vs.variables() {
        let frozen = match name.strip_prefix("bert.encoder.layer.") {
            Some(rest) => rest
                .split_once('.')
                .and_then(|(i, _)| i.parse::<usize>().ok())
                .is_some_and(|i| i < first),
            None => name.starts_with("bert.embeddings."),
        };
        if frozen {
            let _ = v.set_requires_grad(false);
        }
    }
}
