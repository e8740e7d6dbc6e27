//! The library's error type. Every variant names what was wrong (file, field or tensor),
//! so the CLI can print it as is.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The I/O error is part of the message (not a separate source, which `{:#}` would
    /// print a second time).
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A config or recipe file: `field` is the path of the offending field.
    #[error("{}: {field}: {msg}", path.display())]
    Config {
        path: PathBuf,
        field: String,
        msg: String,
    },
    /// A checkpoint file, or one tensor in it.
    #[error("{}: {msg}", path.display())]
    Checkpoint { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Tokenizer { path: PathBuf, msg: String },
    #[error("{0}")]
    Device(String),
    #[error("{0}")]
    Invalid(String),
    /// Data-parallel runs: launch variables, rendezvous, collectives, lost ranks.
    #[error("distributed: {0}")]
    Distributed(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }

    pub fn checkpoint(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Checkpoint {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    pub fn tokenizer(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Tokenizer {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    pub fn config(
        path: impl AsRef<Path>,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.as_ref().to_path_buf(),
            field: field.into(),
            msg: msg.into(),
        }
    }
}

/// Reads a whole file, naming it in the error.
pub fn read_to_string(path: impl AsRef<Path>) -> Result<String> {
    std::fs::read_to_string(path.as_ref()).map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path` atomically: a temporary sibling is written, synced and renamed,
/// so a reader (or a crash) never sees a half-written file.
pub fn write_atomic(path: impl AsRef<Path>, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let path = path.as_ref();
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write(&tmp).and_then(|()| {
        let f = std::fs::File::open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
