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

/// The leaves that differ between two JSON values, as `path (a -> b)` with dotted paths
/// (`fit.steps (4 -> 5)`): how a cache or a resumed run says which setting changed.
pub fn json_changes(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    fn walk(p: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let q = if p.is_empty() {
                        k.clone()
                    } else {
                        format!("{p}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &q,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            _ if a != b => out.push(format!("{p} ({a} -> {b})")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", a, b, &mut out);
    out
}
