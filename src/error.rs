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
    read_to_string_max(path, 1 << 28)
}

/// The largest config.json or recipe read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads a text file the user named, refusing a device or folder (see [`open_input`]) and a
/// file larger than `max` bytes, whose end is never read: memory stays bounded whatever the
/// path points at (`/dev/zero`, a huge file).
pub fn read_to_string_max(path: impl AsRef<Path>, max: u64) -> Result<String> {
    use std::io::Read;
    let path = path.as_ref();
    let f = open_input(path)?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Invalid(format!(
            "{}: larger than {} MiB, more than this file can hold",
            path.display(),
            max >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: byte offset {}: not UTF-8 text",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Opens a file the user named for reading: a regular file or a pipe. A device (such as
/// `/dev/zero`, which never ends), a folder or a socket is refused by name before anything
/// is read.
pub fn open_input(path: impl AsRef<Path>) -> Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt;
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let t = meta.file_type();
    let what = if t.is_dir() {
        Some("a folder")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(Error::Invalid(format!(
            "{}: {what}, not a file (give a regular file or a pipe)",
            path.display()
        )));
    }
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// Writes `bytes` to `path` atomically: a temporary sibling is written, synced and renamed,
/// so a reader (or a crash) never sees a half-written file.
pub fn write_atomic(path: impl AsRef<Path>, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let path = path.as_ref();
    if path.file_name().is_none() {
        return Err(Error::Invalid(format!(
            "{}: not a file path",
            path.display()
        )));
    }
    let tmp = crate::temp::temp_file(path);
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
