//! SHA-256 digests (hex) of files and texts: what caches are keyed by.

use std::path::Path;

use crate::error::{Error, Result};

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

/// SHA-256 of a text, hex.
pub fn text_sha256(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}
