//! Training checkpoints: `checkpoints/step-NNNNNN/` holds the model as an HF folder
//! (`model.safetensors`, `config.json`, the tokenizer files), `trainer.safetensors` (AdamW
//! moments, fp32 master weights, the hidden-state projection) and `state.json` (step, data
//! cursor, loss scale, the recipe). Each is written under a temporary name and renamed; only
//! the last `keep` are kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::optim::{AdamW, LossScaler};
use super::recipe::Recipe;
use crate::bert::{self, Model};
use crate::data::Cursor;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    pub cursor: Cursor,
    pub scaler: Option<LossScaler>,
    pub recipe: Recipe,
    /// Processes of the data-parallel run that wrote it (1 alone).
    #[serde(default = "one")]
    pub world: usize,
}

fn one() -> usize {
    1
}

pub use crate::tokenize::{copy_tokenizer, TOKENIZER_FILES};

fn step_dir(root: &Path, step: u64) -> PathBuf {
    root.join(format!("step-{step:06}"))
}

/// Saves a checkpoint and prunes old ones; returns its folder.
#[allow(clippy::too_many_arguments)]
pub fn save(
    root: &Path,
    model: &Model,
    optimizer: &AdamW,
    extra: &nn::VarStore,
    state: &TrainerState,
    tokenizer_dir: &Path,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let dir = step_dir(root, state.step);
    crate::output::write_dir(&dir, "distill", |tmp| {
        bert::save(model, tmp)?;
        copy_tokenizer(tokenizer_dir, tmp)?;
        let mut named: Vec<(String, Tensor)> = optimizer
            .state()
            .into_iter()
            .map(|(n, t)| (n, t.to_device(tch::Device::Cpu).contiguous()))
            .collect();
        for (n, t) in extra.variables() {
            named.push((
                format!("extra.{n}"),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            ));
        }
        let path = tmp.join("trainer.safetensors");
        Tensor::write_safetensors(&named, &path)
            .map_err(|e| Error::checkpoint(&path, e.to_string()))?;
        let json = serde_json::to_string_pretty(state).expect("state serialises");
        std::fs::write(tmp.join("state.json"), json).map_err(|e| Error::io(tmp, e))
    })?;
    let all = list(root)?;
    for old in all.iter().take(all.len().saturating_sub(keep)) {
        crate::output::remove_dir_own(old)?;
    }
    Ok(dir)
}

/// Complete checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
                && p.join("state.json").is_file()
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The state (step, cursor, recipe) saved in checkpoint `dir`.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let state_path = dir.join("state.json");
    let text = crate::error::read_to_string(&state_path)?;
    serde_json::from_str(&text).map_err(|e| Error::checkpoint(&state_path, e.to_string()))
}

/// Restores model weights, optimizer and extra variables from `dir`; returns its state.
pub fn restore(
    dir: &Path,
    model: &Model,
    optimizer: &mut AdamW,
    extra: &nn::VarStore,
) -> Result<TrainerState> {
    let state = read_state(dir)?;
    bert::weights::restore(model, dir)?;
    let path = dir.join("trainer.safetensors");
    let saved: HashMap<String, Tensor> = bert::weights::read_safetensors(&path)?
        .into_iter()
        .collect();
    optimizer.load_state(&saved, state.step)?;
    tch::no_grad(|| -> Result<()> {
        for (n, v) in extra.variables() {
            let t = saved
                .get(&format!("extra.{n}"))
                .ok_or_else(|| Error::checkpoint(&path, format!("missing extra.{n}")))?;
            v.shallow_clone().f_copy_(t)?;
        }
        Ok(())
    })?;
    Ok(state)
}
