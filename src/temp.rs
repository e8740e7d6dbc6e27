//! destila's temporary names: `.destila-tmp-{name}-{token}` beside what is being written,
//! with the writing process's id recorded (inside a folder, or at the end of a file's name),
//! so that a later run can tell its own abandoned temporaries (their process gone) from
//! anything else, and remove only those. Depends on nothing but std, so that the lowest
//! modules (`error::write_atomic`) can use it.

use std::path::{Path, PathBuf};

/// The prefix of every temporary name destila makes: `.destila-tmp-{name}-{token}`.
pub const TMP_PREFIX: &str = ".destila-tmp-";
/// Inside a temporary folder: the process id that is writing it.
pub const OWNER: &str = ".destila-tmp-owner";
/// The suffix of a temporary file's name (`.destila-tmp-{name}-{pid}.part`).
const PART: &str = ".part";

fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() || !Path::new("/proc/self").exists() {
        // Where processes cannot be looked up, nothing counts as abandoned.
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The process that made temporary entry `p`, as recorded by destila: a folder's owner
/// file, or a file name's `-{pid}.part` ending. None: not one of destila's temporaries.
fn tmp_owner(p: &Path, name: &str) -> Option<u32> {
    if !name.starts_with(TMP_PREFIX) {
        return None;
    }
    if p.is_dir() && !p.is_symlink() {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(std::fs::File::open(p.join(OWNER)).ok()?, 64),
            &mut text,
        )
        .ok()?;
        text.trim().parse().ok()
    } else {
        name.strip_suffix(PART)?.rsplit('-').next()?.parse().ok()
    }
}

/// Removes, from `parent`, destila's temporary entries whose process has gone (a run
/// killed while it wrote): only names with destila's prefix and an owner it recorded.
pub fn clean_stale(parent: &Path) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        if tmp_owner(&p, &name).is_some_and(|pid| !pid_alive(pid)) {
            let _ = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

pub fn parent_and_name(target: &Path) -> (PathBuf, String) {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    (parent, name)
}

/// A fresh temporary file name beside `target` for this process
/// (`.destila-tmp-{name}-{pid}.part`), after removing the ones killed runs left there.
pub fn temp_file(target: &Path) -> PathBuf {
    let (parent, name) = parent_and_name(target);
    clean_stale(&parent);
    parent.join(format!("{TMP_PREFIX}{name}-{}{PART}", std::process::id()))
}
