//! Raw text to documents of sentences, streaming: a file is read in lines of bounded length,
//! and documents of bounded size (a longer one is split), so memory stays flat whatever the
//! corpus and its line lengths.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::config::{Documents, InvalidUtf8, Sentences, TextOptions};
use super::sentences;
use crate::error::{Error, Result};

/// Longest piece of a line handled at once; longer lines are cut at a space (or a character
/// boundary) and the pieces treated as one wrapped line.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Longest document kept whole: a longer one (a file with no blank lines, one huge line) is
/// split into documents of about this size, so memory stays flat.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// Reads the non-blank lines of a text file (one text a line), each cut to `max_bytes` (at a
/// character boundary) without ever holding more of a line in memory: returns the texts
/// and how many were cut.
pub fn read_texts(path: &Path, max_bytes: usize) -> Result<(Vec<String>, usize)> {
    let file = crate::error::open_input(path)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut out = Vec::new();
    let mut cut = 0;
    let mut line: Vec<u8> = Vec::new();
    let mut over = false;
    let mut number = 1usize;
    let mut finish = |line: &mut Vec<u8>, over: &mut bool, number: usize| -> Result<()> {
        if *over {
            cut += 1;
        }
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            // Cut inside a character: keep the whole characters before it.
            Err(e) if *over && e.error_len().is_none() => {
                std::str::from_utf8(&line[..e.valid_up_to()]).expect("valid prefix")
            }
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "{}: line {number}: not UTF-8 ({e})",
                    path.display()
                )))
            }
        };
        let text = text.trim_end_matches('\r');
        if !text.trim().is_empty() {
            out.push(text.to_string());
        }
        line.clear();
        *over = false;
        Ok(())
    };
    loop {
        let available = reader.fill_buf().map_err(|e| Error::io(path, e))?;
        if available.is_empty() {
            if !line.is_empty() || over {
                finish(&mut line, &mut over, number)?;
            }
            break;
        }
        let (chunk, newline) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], true),
            None => (available, false),
        };
        // Text has no NUL bytes: a binary stream (even an endless one) stops here.
        if let Some(i) = chunk.iter().position(|&b| b == 0) {
            return Err(Error::Invalid(format!(
                "{}: line {number}, byte {}: NUL byte, this is not text",
                path.display(),
                line.len() + i
            )));
        }
        let room = max_bytes.saturating_sub(line.len());
        if chunk.len() > room {
            line.extend_from_slice(&chunk[..room]);
            over = true;
        } else {
            line.extend_from_slice(chunk);
        }
        let n = chunk.len() + usize::from(newline);
        reader.consume(n);
        if newline {
            finish(&mut line, &mut over, number)?;
            number += 1;
        }
    }
    Ok((out, cut))
}

/// Expands files, folders (recursively, sorted, hidden entries skipped) and glob patterns.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for pat in patterns {
        let p = Path::new(pat);
        if p.is_file() {
            out.push(p.to_path_buf());
        } else if p.is_dir() {
            walk(p, &mut out)?;
        } else if pat.contains(['*', '?', '[']) {
            let matches =
                glob::glob(pat).map_err(|e| Error::Invalid(format!("pattern {pat:?}: {e}")))?;
            let mut found: Vec<PathBuf> = Vec::new();
            for m in matches {
                let m = m.map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?;
                if m.is_file() {
                    found.push(m);
                } else if m.is_dir() {
                    walk(&m, &mut found)?;
                }
            }
            if found.is_empty() {
                return Err(Error::Invalid(format!("pattern {pat:?} matches no file")));
            }
            found.sort();
            out.extend(found);
        } else if p.exists() {
            // A device, pipe or socket: a corpus is read more than once (shards, then
            // checked against its fingerprint), so only regular files and folders of them.
            return Err(Error::Invalid(format!(
                "{}: not a regular file or folder (a device, pipe or socket); give text files",
                p.display()
            )));
        } else {
            return Err(Error::io(
                p,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
    }
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Reads lines of at most MAX_LINE_BYTES, tracking the byte offset for error messages.
struct Lines<R> {
    reader: R,
    path: PathBuf,
    offset: u64,
    invalid: InvalidUtf8,
    buf: Vec<u8>,
    /// The tail of a line cut at the length limit, handed to the next call.
    carry: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// The next line (without its end-of-line), or None at the end of the file.
    fn next_line(&mut self) -> Result<Option<String>> {
        self.buf.clear();
        self.buf.append(&mut self.carry);
        let start = self.offset - self.buf.len() as u64;
        let mut cut = false;
        loop {
            let available = self
                .reader
                .fill_buf()
                .map_err(|e| Error::io(&self.path, e))?;
            if available.is_empty() {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                break;
            }
            let room = MAX_LINE_BYTES.saturating_sub(self.buf.len());
            let window = &available[..available.len().min(room)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                self.buf.extend_from_slice(&window[..i]);
                self.reader.consume(i + 1);
                self.offset += (i + 1) as u64;
                break;
            }
            let n = window.len();
            self.buf.extend_from_slice(window);
            self.reader.consume(n);
            self.offset += n as u64;
            if self.buf.len() >= MAX_LINE_BYTES {
                cut = true;
                break;
            }
        }
        if cut {
            // Cut at the last space, else at the last character boundary.
            let at = match self.buf.iter().rposition(|&b| b == b' ') {
                Some(i) if i > 0 => i,
                _ => self
                    .buf
                    .iter()
                    .rposition(|&b| b & 0xC0 != 0x80)
                    .filter(|&i| i > 0)
                    .unwrap_or(self.buf.len()),
            };
            self.carry = self.buf.split_off(at);
        }
        if let Some(i) = self.buf.iter().position(|&b| b == 0) {
            return Err(Error::Invalid(format!(
                "{}: byte offset {}: NUL byte, this looks like a binary file, not text",
                self.path.display(),
                start + i as u64
            )));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let bytes = std::mem::take(&mut self.buf);
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => match self.invalid {
                InvalidUtf8::Error => {
                    let valid = e.utf8_error().valid_up_to();
                    Err(Error::Invalid(format!(
                        "{}: byte offset {}: invalid UTF-8 (set data.invalid_utf8: replace to replace such bytes)",
                        self.path.display(),
                        start + valid as u64
                    )))
                }
                InvalidUtf8::Replace => {
                    Ok(Some(String::from_utf8_lossy(e.as_bytes()).into_owned()))
                }
            },
        }
    }
}

/// Counts of what was read from one file.
#[derive(Debug, Default, Clone)]
pub struct FileSummary {
    pub bytes: u64,
    pub documents: u64,
}

/// Reads one file and calls `emit` with each document (its sentences, non-empty).
pub fn read_documents(
    path: &Path,
    opts: &TextOptions,
    mut emit: impl FnMut(Vec<String>) -> Result<()>,
) -> Result<FileSummary> {
    let file = crate::error::open_input(path)?;
    let mut lines = Lines {
        reader: BufReader::with_capacity(1 << 16, file),
        path: path.to_path_buf(),
        offset: 0,
        invalid: opts.invalid_utf8,
        buf: Vec::new(),
        carry: Vec::new(),
    };
    let mut summary = FileSummary::default();
    let mut paragraph: Vec<String> = Vec::new();
    let mut paragraph_bytes = 0usize;
    let mut document: Vec<String> = Vec::new();
    let mut document_bytes = 0usize;

    let sentences_of = |lines: &[String]| -> Vec<String> {
        match opts.sentences {
            Sentences::Line => lines
                .iter()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            Sentences::Split => {
                let joined = lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                sentences::split(&joined)
            }
        }
    };
    let mut flush = |doc: &mut Vec<String>, summary: &mut FileSummary| -> Result<()> {
        if !doc.is_empty() {
            summary.documents += 1;
            emit(std::mem::take(doc))?;
        }
        Ok(())
    };

    while let Some(line) = lines.next_line()? {
        let blank = line.trim().is_empty();
        match opts.documents {
            Documents::Line => {
                if !blank {
                    let mut doc = sentences_of(std::slice::from_ref(&line));
                    flush(&mut doc, &mut summary)?;
                }
            }
            Documents::BlankLine | Documents::File => {
                if !blank {
                    paragraph_bytes += line.len();
                    paragraph.push(line);
                }
                // A paragraph ends at a blank line, or (bounded memory) at about a line's
                // limit; a document at its end or at MAX_DOCUMENT_BYTES.
                if blank || paragraph_bytes >= MAX_LINE_BYTES {
                    let s = sentences_of(&paragraph);
                    document_bytes += s.iter().map(String::len).sum::<usize>();
                    document.extend(s);
                    paragraph.clear();
                    paragraph_bytes = 0;
                    if (blank && opts.documents == Documents::BlankLine)
                        || document_bytes >= MAX_DOCUMENT_BYTES
                    {
                        flush(&mut document, &mut summary)?;
                        document_bytes = 0;
                    }
                }
            }
        }
    }
    document.extend(sentences_of(&paragraph));
    flush(&mut document, &mut summary)?;
    summary.bytes = lines.offset;
    Ok(summary)
}

/// Reads the first bytes of `path` to refuse binary files early and clearly.
pub fn check_text_file(path: &Path) -> Result<()> {
    let mut head = [0u8; 8192];
    let mut f = crate::error::open_input(path)?;
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    if let Some(i) = head[..n].iter().position(|&b| b == 0) {
        return Err(Error::Invalid(format!(
            "{}: byte offset {i}: NUL byte, this looks like a binary file, not text",
            path.display()
        )));
    }
    Ok(())
}
