//! Building the student: its config from the recipe (defaults from the teacher), and its
//! initialisation, random (BERT's) or copied from the teacher (embeddings, chosen layers,
//! pooler and MLM/NSP heads), as DistilBERT initialised from bert-base.

use std::path::Path;

use tch::Device;

use super::recipe::{Init, LayerChoice, StudentSection};
use crate::bert::{BertConfig, Heads, Model};
use crate::error::{Error, Result};

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
    let cfg = student_config(s, Some(base));
    cfg.validate()
        .map_err(|(f, m)| Error::config(recipe_path, format!("student ({f})"), m))?;
    let student = Model::random(&cfg, Heads::ALL, device);
    if s.init == Init::Random {
        return Ok(student);
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
