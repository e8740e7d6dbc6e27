//! Recipes: YAML files that say what to run. Deserialised with unknown keys refused, then
//! validated; every error names the file and the field path.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DataConfig;
use crate::error::{Error, Result};
use crate::tokenize::BertTokenizer;

fn d_seed() -> u64 {
    42
}
fn d_batch() -> usize {
    32
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSection {
    /// An HF checkpoint folder.
    pub checkpoint: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    #[serde(default = "d_batch")]
    pub batch_size: usize,
}

impl Default for TrainingSection {
    fn default() -> Self {
        TrainingSection {
            batch_size: d_batch(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default = "d_seed")]
    pub seed: u64,
    #[serde(default)]
    pub teacher: Option<TeacherSection>,
    pub data: DataConfig,
    #[serde(default)]
    pub training: TrainingSection,
    /// The file it came from (not part of the YAML).
    #[serde(skip)]
    pub path: PathBuf,
}

impl Recipe {
    pub fn from_file(path: impl AsRef<Path>) -> Result<Recipe> {
        let path = path.as_ref();
        let text = crate::error::read_to_string(path)?;
        Self::from_str(&text, path)
    }

    pub fn from_str(text: &str, path: &Path) -> Result<Recipe> {
        let de = serde_yaml::Deserializer::from_str(text);
        let mut r: Recipe = serde_path_to_error::deserialize(de).map_err(|e| {
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
        let err = |field: &str, msg: String| Err(Error::config(&self.path, field, msg));
        if let Err((f, m)) = self.data.validate() {
            return err(&format!("data.{f}"), m);
        }
        if self.training.batch_size == 0 {
            return err("training.batch_size", "must be at least 1".into());
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
            (None, None) => unreachable!("validate() requires one"),
        }
    }

    pub fn tokenizer(&self) -> Result<BertTokenizer> {
        BertTokenizer::from_dir(self.tokenizer_dir())
    }
}
