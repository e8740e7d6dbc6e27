//! Reading a recipe: the YAML file, `--set a.b.c=value` overrides applied to its tree, then
//! deserialising (unknown keys refused, serde's enum messages made plain) and validating.

use std::path::Path;

use super::Recipe;
use crate::error::{Error, Result};

/// serde's messages for the enums that take more than one form name its internals
/// ("untagged enum Init"); a user needs the forms the field allows.
fn plain_enum_message(msg: String) -> String {
    let forms = [
        (
            "enum Init",
            "expected random, from-teacher, or {checkpoint: DIR, projection: keep | drop}",
        ),
        (
            "enum Scheduled",
            "expected a number, or {start: NUMBER, end: NUMBER} (a linear schedule over the run)",
        ),
        (
            "enum LayerChoice",
            "expected uniform, or a list of teacher layer indices",
        ),
    ];
    for (name, text) in forms {
        if msg.contains(name) {
            return text.to_string();
        }
    }
    if msg.contains("do not support enum input") || msg.contains("Value::Tagged") {
        return "a YAML tag (!name) is not a value here: write the value plainly".to_string();
    }
    msg
}

/// The names a field of named forms allows ("expected `losses` or `targets`"), found by
/// deserialising `doc` again with a name no field has at `at`: serde lists the forms only
/// for a name it does not know, not for a list or a section given in its place.
fn names_allowed(doc: &serde_yaml::Value, at: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut doc = doc.clone();
    let mut node = &mut doc;
    for seg in at.iter() {
        node = match seg {
            Segment::Map { key } => node.get_mut(key.as_str())?,
            Segment::Seq { index } => node.get_mut(*index)?,
            _ => return None,
        };
    }
    *node = serde_yaml::Value::String("\u{1}".into());
    let e = serde_path_to_error::deserialize::<_, Recipe>(doc).err()?;
    let msg = e.into_inner().to_string();
    msg.find("expected ")
        .filter(|_| msg.starts_with("unknown variant"))
        .map(|i| msg[i..].to_string())
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

    pub fn from_str(text: &str, path: &Path) -> Result<Recipe> {
        Self::parse(text, path, &[])
    }

    pub(crate) fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Recipe> {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|e| Error::config(path, "(YAML)", e.to_string()))?;
        for o in overrides {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| Error::config(path, "--set", format!("{o:?} is not KEY=VALUE")))?;
            set_path(&mut doc, k.trim(), v.trim())
                .map_err(|m| Error::config(path, format!("--set {k}"), m))?;
        }
        let mut r: Recipe = serde_path_to_error::deserialize(doc.clone()).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." {
                "(top level)".to_string()
            } else {
                field
            };
            let names = names_allowed(&doc, e.path());
            let msg = plain_enum_message(e.into_inner().to_string());
            let msg = match names {
                Some(names) if msg.starts_with("a YAML tag") => {
                    format!("a list or a section is not a value here: {names}")
                }
                _ => msg,
            };
            Error::config(path, field, msg)
        })?;
        r.path = path.to_path_buf();
        r.validate()?;
        Ok(r)
    }
}
