//! Output folders: what a command may write, replace, and never touch.
//!
//! Every folder a command writes carries a marker file, [`MARKER`], that lists the entries
//! destila wrote there and which command wrote each. The rules, for every command:
//! - a folder that is, or holds, an input of the run, the working directory, a home or a
//!   root is refused, whatever the flags;
//! - a non-empty folder whose entries the marker does not list (somebody else's files) is
//!   refused, with or without `--force`: destila never removes or overwrites a file it did
//!   not write;
//! - the command's own earlier output is replaced only with `--force` (commands that write
//!   a whole folder) and only the entries the marker lists are removed;
//! - whole folders are written under a temporary sibling and renamed into place.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::temp::{clean_stale, parent_and_name, OWNER, TMP_PREFIX};
use crate::{Error, Result};

/// The marker file in every folder destila writes.
pub const MARKER: &str = ".destila-output.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    /// Entry name → the command that wrote it.
    entries: BTreeMap<String, String>,
}

fn read_marker(dir: &Path) -> Result<Marker> {
    let path = dir.join(MARKER);
    let m: Marker = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: unreadable marker ({e})", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Marker::default()),
        Err(e) => return Err(Error::io(&path, e)),
    };
    // destila writes plain names of entries inside the folder; anything else (a path, `..`,
    // an absolute path) was not written by destila, and nothing it names may be removed.
    if let Some(bad) = m.entries.keys().find(|n| !plain_name(n)) {
        return Err(Error::Invalid(format!(
            "{}: lists {bad:?}, which is not a plain name inside the folder; destila did not write this marker, so it will not use the folder (remove the marker or choose another folder)",
            path.display()
        )));
    }
    Ok(m)
}

/// A single path component naming an entry inside a folder (not `.`, `..`, empty, or with
/// a separator).
fn plain_name(n: &str) -> bool {
    !n.is_empty()
        && n != "."
        && n != ".."
        && !n.contains('/')
        && !n.contains('\\')
        && !n.contains('\0')
}

fn write_marker(dir: &Path, m: &Marker) -> Result<()> {
    let text = serde_json::to_string_pretty(m).expect("json");
    crate::error::write_atomic(dir.join(MARKER), |p| {
        std::fs::write(p, &text).map_err(|e| Error::io(p, e))
    })
}

/// `p` made absolute, `.` and `..` resolved, and symbolic links resolved as far as the
/// path exists.
pub fn resolve(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut clean = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            c => clean.push(c),
        }
    }
    // Canonicalise the longest existing prefix.
    let mut rest = Vec::new();
    let mut head = clean.clone();
    loop {
        if let Ok(c) = head.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (head.file_name().map(|n| n.to_os_string()), head.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                head = parent.to_path_buf();
            }
            _ => return clean,
        }
    }
}

/// The part of a data path before its first glob character (`data/*.txt` → `data`).
pub fn glob_root(s: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for part in Path::new(s).components() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            break;
        }
        out.push(part);
    }
    out
}

/// Refuses `dir` as an output folder when it is empty text, a root, a home, the working
/// directory or one of its parents, or an input of the run (or a folder that holds one).
pub fn guard(dir: &Path, what: &str, inputs: &[PathBuf]) -> Result<()> {
    if dir.as_os_str().is_empty() {
        return Err(Error::Invalid(format!(
            "{what}: empty: name an output folder"
        )));
    }
    let out = resolve(dir);
    let refuse = |why: String| {
        Err(Error::Invalid(format!(
            "{what} {}: {why}; choose another output folder",
            dir.display()
        )))
    };
    if out.parent().is_none() {
        return refuse("a root folder".into());
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        if out == resolve(Path::new(&home)) {
            return refuse("the home folder".into());
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        let cwd = resolve(&cwd);
        if cwd.starts_with(&out) {
            return refuse(if cwd == out {
                "the working directory".into()
            } else {
                "it holds the working directory".into()
            });
        }
    }
    for input in inputs {
        if input.as_os_str().is_empty() {
            continue;
        }
        let i = resolve(input);
        let holds_cwd = std::env::current_dir().is_ok_and(|c| resolve(&c).starts_with(&i));
        if out.starts_with(&i) && out != i && i.is_dir() && !holds_cwd {
            // Written into an input folder, the output would become input of the next run
            // over it (a corpus, a checkpoint).
            return refuse(format!(
                "it is inside an input of this run ({})",
                input.display()
            ));
        }
        if i.starts_with(&out) {
            return refuse(if i == out {
                format!("it is an input of this run ({})", input.display())
            } else {
                format!("it holds an input of this run ({})", input.display())
            });
        }
    }
    Ok(())
}

fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        // Our own temporary siblings and the marker are not the user's.
        if name != MARKER && !name.starts_with(".destila-tmp") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn list(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s += &format!(" and {} more", names.len() - 3);
    }
    s
}

/// The entries of `dir` that destila did not write (empty when `dir` does not exist).
fn foreign(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: is a file, not a folder",
            dir.display()
        )));
    }
    let m = read_marker(dir)?;
    // A sub-folder with its own marker is destila's output too (an export or a report
    // written inside a run's folder).
    Ok(entries(dir)?
        .into_iter()
        .filter(|n| !m.entries.contains_key(n) && !dir.join(n).join(MARKER).is_file())
        .collect())
}

fn refuse_foreign(dir: &Path, command: &str, foreign: &[String]) -> Result<()> {
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{}: not empty, and not an earlier destila {command} output (it holds {}, which destila did not write); choose another folder: destila never removes or overwrites files it did not write",
        dir.display(),
        list(foreign)
    )))
}

/// Removes the entries of `dir` that `command` wrote there (by the marker), and the folder
/// itself when nothing else is left.
fn remove_own(dir: &Path, command: &str, keep: &[&str]) -> Result<()> {
    let mut m = read_marker(dir)?;
    let own: Vec<String> = m
        .entries
        .iter()
        .filter(|(n, c)| c.as_str() == command && !keep.contains(&n.as_str()))
        .map(|(n, _)| n.clone())
        .collect();
    // Nothing goes unless nothing under it is somebody else's.
    for name in &own {
        let p = dir.join(name);
        if p.is_dir() && !p.is_symlink() {
            refuse_deep(&p)?;
        }
    }
    for name in &own {
        let p = dir.join(name);
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
        m.entries.remove(name);
    }
    clean_stale(dir);
    if m.entries.is_empty() && entries(dir)?.is_empty() {
        let _ = std::fs::remove_file(dir.join(MARKER));
        std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))?;
    } else {
        write_marker(dir, &m)?;
    }
    Ok(())
}

/// Makes a new, empty temporary folder beside `target` with a name no entry has
/// (`.destila-tmp-{name}-{token}-{n}`; the token is this process's id, or under torchrun
/// one every rank shares) and this process's id inside, so that a later run may remove it
/// if this one is killed. An existing entry is never reused or removed.
pub fn temp_dir(target: &Path) -> Result<PathBuf> {
    let (parent, name) = parent_and_name(target);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    clean_stale(&parent);
    let token = run_token();
    for n in 0..1000 {
        let tmp = parent.join(format!("{TMP_PREFIX}{name}-{token}-{n}"));
        match std::fs::create_dir(&tmp) {
            Ok(()) => {
                let owner = tmp.join(OWNER);
                std::fs::write(&owner, std::process::id().to_string())
                    .map_err(|e| Error::io(&owner, e))?;
                return Ok(tmp);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    }
    Err(Error::Invalid(format!(
        "{}: no free temporary name beside it",
        target.display()
    )))
}

/// This process's id, or, in a data-parallel run, a token every rank derives alike from
/// the launch variables (rank 0 makes the folder, every rank writes into it).
fn run_token() -> String {
    let world: usize = std::env::var("WORLD_SIZE")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    if world <= 1 {
        return std::process::id().to_string();
    }
    let launch: Vec<String> = [
        "MASTER_ADDR",
        "MASTER_PORT",
        "TORCHELASTIC_RUN_ID",
        "WORLD_SIZE",
    ]
    .iter()
    .map(|v| std::env::var(v).unwrap_or_default())
    .collect();
    format!(
        "run{}",
        &crate::digest::text_sha256(&launch.join("\n"))[..12]
    )
}

/// Records every entry of `dir`, and of each folder under it, as written by `command`.
pub fn mark_tree(dir: &Path, command: &str) -> Result<()> {
    let mut m = Marker::default();
    for name in entries(dir)? {
        let p = dir.join(&name);
        if p.is_dir() && !p.is_symlink() {
            mark_tree(&p, command)?;
        }
        m.entries.insert(name, command.to_string());
    }
    write_marker(dir, &m)
}

/// The files under `dir` that destila did not write: entries its markers do not list,
/// at every depth (a folder without a marker, from an older destila, counts as its own).
fn foreign_deep(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.join(MARKER).is_file() {
        return Ok(Vec::new());
    }
    let mut out: Vec<PathBuf> = foreign(dir)?.into_iter().map(|n| dir.join(n)).collect();
    for name in entries(dir)? {
        let p = dir.join(&name);
        if p.is_dir() && !p.is_symlink() && !out.contains(&p) {
            out.extend(foreign_deep(&p)?);
        }
    }
    Ok(out)
}

fn refuse_deep(dir: &Path) -> Result<()> {
    let found = foreign_deep(dir)?;
    if found.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    Err(Error::Invalid(format!(
        "{}: destila wrote this folder, but not {}; move that away first: destila never removes files it did not write",
        dir.display(),
        list(&names)
    )))
}

/// Removes a folder destila wrote (a checkpoint, an old `final/`) after checking that
/// nothing under it is somebody else's, and drops it from its parent's marker.
pub fn remove_dir_own(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    refuse_deep(dir)?;
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (parent, name) = parent_and_name(dir);
    let mut m = read_marker(&parent)?;
    if m.entries.remove(&name).is_some() {
        write_marker(&parent, &m)?;
    }
    Ok(())
}

/// Moves the finished temporary folder `tmp` (from [`temp_dir`]) into place as `target`,
/// every entry marked as `command`'s; an earlier `target` is replaced only when nothing
/// under it is somebody else's. The parent's marker lists `target` too.
pub fn commit_dir(tmp: &Path, target: &Path, command: &str) -> Result<()> {
    let _ = std::fs::remove_file(tmp.join(OWNER));
    mark_tree(tmp, command)?;
    remove_dir_own(target)?;
    std::fs::rename(tmp, target).map_err(|e| Error::io(target, e))?;
    let (parent, name) = parent_and_name(target);
    let mut m = read_marker(&parent)?;
    if m.entries.get(&name).map(String::as_str) != Some(command) {
        m.entries.insert(name, command.to_string());
        write_marker(&parent, &m)?;
    }
    Ok(())
}

/// Writes a folder through [`temp_dir`] and [`commit_dir`]; the temporary folder goes if
/// `write` fails.
pub fn write_dir(
    target: &Path,
    command: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let tmp = temp_dir(target)?;
    let r = write(&tmp).and_then(|()| commit_dir(&tmp, target, command));
    if r.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    r
}

/// A whole-folder output (`export`, `targets`, `init`): checked before any work, written
/// under a temporary sibling, renamed into place by [`Folder::commit`].
#[derive(Debug)]
pub struct Folder {
    pub dir: PathBuf,
    pub tmp: PathBuf,
    command: String,
    force: bool,
}

impl Folder {
    /// Checks that `dir` may receive the output of `command` and creates the temporary
    /// sibling to write into. `what` names the flag or field (`--out`, `output`).
    pub fn claim(
        dir: &Path,
        what: &str,
        command: &str,
        force: bool,
        inputs: &[PathBuf],
    ) -> Result<Folder> {
        let f = Self::check(dir, what, command, force, inputs)?;
        f.create()?;
        Ok(f)
    }

    /// (Re)creates the empty temporary folder (one process of a data-parallel run does it).
    /// An entry of that name is never removed (only one a killed destila run left).
    pub fn create(&self) -> Result<()> {
        let (parent, _) = parent_and_name(&self.tmp);
        clean_stale(&parent);
        match std::fs::create_dir(&self.tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Invalid(format!(
                    "{}: exists (another destila process writing {} now?)",
                    self.tmp.display(),
                    self.dir.display()
                )))
            }
            Err(e) => return Err(Error::io(&self.tmp, e)),
        }
        let owner = self.tmp.join(OWNER);
        std::fs::write(&owner, std::process::id().to_string()).map_err(|e| Error::io(&owner, e))
    }

    /// The checks of [`Folder::claim`], creating nothing.
    pub fn check(
        dir: &Path,
        what: &str,
        command: &str,
        force: bool,
        inputs: &[PathBuf],
    ) -> Result<Folder> {
        guard(dir, what, inputs)?;
        refuse_foreign(dir, command, &foreign(dir)?)?;
        if dir.is_dir() {
            // A whole-folder output replaces only its own kind: another command's output
            // (an `init` folder given to `export`) is not this command's to remove.
            let m = read_marker(dir)?;
            if let Some((name, other)) = m.entries.iter().find(|(_, c)| c.as_str() != command) {
                return Err(Error::Invalid(format!(
                    "{what} {}: holds the output of destila {other} ({name}), not of {command}; choose another folder",
                    dir.display()
                )));
            }
        }
        if dir.exists() && !entries(dir)?.is_empty() && !force {
            return Err(Error::Invalid(format!(
                "{}: already holds an earlier destila {command} output (use --force to replace it)",
                dir.display()
            )));
        }
        // The temporary sibling is made in the parent, the folder itself at the end: both
        // must be possible before any work.
        check_creatable(dir, what)?;
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!("{TMP_PREFIX}{name}-{}", run_token()));
        Ok(Folder {
            dir: dir.to_path_buf(),
            tmp,
            command: command.to_string(),
            force,
        })
    }

    /// Moves what was written under the temporary name into place, replacing only this
    /// command's own earlier output.
    pub fn commit(self) -> Result<PathBuf> {
        let _ = std::fs::remove_file(self.tmp.join(OWNER));
        mark_tree(&self.tmp, &self.command)?;
        if self.dir.exists() {
            // Checked again: somebody may have written there since the claim.
            refuse_foreign(&self.dir, &self.command, &foreign(&self.dir)?)?;
            if !self.force && !entries(&self.dir)?.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: written to meanwhile; the new output stays in {}",
                    self.dir.display(),
                    self.tmp.display()
                )));
            }
            remove_own(&self.dir, &self.command, &[])?;
            if self.dir.exists() && entries(&self.dir)?.is_empty() {
                let _ = std::fs::remove_file(self.dir.join(MARKER));
                let _ = std::fs::remove_dir(&self.dir);
            }
        }
        std::fs::rename(&self.tmp, &self.dir).map_err(|e| Error::io(&self.dir, e))?;
        Ok(self.dir.clone())
    }

    /// Removes the temporary folder (the work failed).
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// Checks that `command` may write the entries `names` into `dir`, which may also hold
/// other destila output (an `eval` and a `bench` report share a folder) but must hold no
/// file of the same name that destila did not write; records them in the marker and
/// creates the folder. Refuses a folder with files destila did not write when `exclusive`
/// (a run folder).
pub fn claim_entries(
    dir: &Path,
    what: &str,
    command: &str,
    names: &[&str],
    exclusive: bool,
    inputs: &[PathBuf],
) -> Result<()> {
    guard(dir, what, inputs)?;
    check_creatable(dir, what)?;
    let foreign = foreign(dir)?;
    if exclusive {
        refuse_foreign(dir, command, &foreign)?;
    } else {
        let clash: Vec<String> = foreign
            .into_iter()
            .filter(|f| names.contains(&f.as_str()))
            .collect();
        if !clash.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: already holds {}, which destila did not write; choose another {what}: destila never overwrites files it did not write",
                dir.display(),
                list(&clash)
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut m = read_marker(dir)?;
    for n in names {
        m.entries.insert(n.to_string(), command.to_string());
    }
    write_marker(dir, &m)
}

/// Removes the entries `command` wrote into `dir` (a run started over with `--force`),
/// except those named in `keep` (validated caches).
pub fn clear_own(dir: &Path, command: &str, keep: &[&str]) -> Result<()> {
    if dir.is_dir() {
        remove_own(dir, command, keep)?;
    }
    Ok(())
}

/// A cache folder a run will write into: made when absent, and proved writable with a
/// probe file (removed at once) before any work, so that a folder the run cannot write
/// fails now and not at its first checkpoint.
pub fn writable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    creatable(dir)
}

/// Whether a run could make `dir` and write into it, without making anything: the nearest
/// folder on its path that exists (`dir` itself, when it does) must take a probe file
/// (removed at once), and nothing on the path may be a file. What `recipe check` can prove
/// of the folders a run will write.
pub fn creatable(dir: &Path) -> std::io::Result<()> {
    use std::io::{Error as IoError, ErrorKind};
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()?.join(dir)
    };
    let mut at = abs.as_path();
    loop {
        match std::fs::metadata(at) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(IoError::new(
                    ErrorKind::NotADirectory,
                    format!("{} is not a folder", at.display()),
                ))
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                at = at.parent().ok_or(e)?;
            }
            Err(e) => return Err(e),
        }
    }
    tempfile::Builder::new()
        .prefix(".destila-probe")
        .tempfile_in(at)
        .map(drop)
}

/// [`creatable`], refused naming the flag or field `what`.
pub fn check_creatable(dir: &Path, what: &str) -> Result<()> {
    creatable(dir)
        .map_err(|e| Error::Invalid(format!("{what} {}: cannot write there: {e}", dir.display())))
}

/// A shard cache named by a flag: used as it is when it is a folder (a made cache may be
/// read-only), otherwise refused, naming the flag, unless it could be made and written.
pub fn cache_flag(dir: &Path, flag: &str) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    check_creatable(dir, flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_cleans_dots() {
        let r = resolve(Path::new("/tmp/a/../b/./c"));
        assert!(r.ends_with("b/c"), "{}", r.display());
    }

    #[test]
    fn glob_root_stops_at_globs() {
        assert_eq!(glob_root("data/*.txt"), PathBuf::from("data"));
        assert_eq!(glob_root("data/x/y.txt"), PathBuf::from("data/x/y.txt"));
    }
}
