//! Facts about files a rule may need beyond the event, read from the filesystem the
//! process sees (its root through `/proc/<pid>/root`, or that of a live ancestor in
//! the same container when the process already exited) at evaluation time:
//! `fd.has_fresh_copy` (copytruncate: a log truncated right after a copy of it was
//! written beside it) and `proc.is_exe_in_venv` (an interpreter of a Python virtual
//! environment). Both are approximate by nature: the files may change in between.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rampart_event::{Event, Workload};

/// How recent a copy must be for a truncation to count as copytruncate.
pub const FRESH_COPY: Duration = Duration::from_secs(300);

/// `path` as the event's process sees it, from this host: under the root of the
/// process or of its parent or grandparent while alive (for a container process; the host's own
/// processes share the host's root, so `path` itself serves when they are gone).
pub fn seen_path(proc_root: &Path, ev: &Event, path: &str) -> Option<PathBuf> {
    let p = ev.process.as_deref()?;
    let rel = path.trim_start_matches('/');
    // The process, else its parent or grandparent (a short-lived tool under a shell):
    // each try costs a syscall, and most evaluations find the process itself alive.
    let pids = std::iter::once(p.pid).chain(p.ancestry.iter().take(2).map(|a| a.pid));
    for pid in pids {
        let root = proc_root.join(pid.to_string()).join("root");
        // Only while that process is alive (its root link resolves).
        if std::fs::read_link(&root).is_ok() {
            return Some(root.join(rel));
        }
    }
    match *ev.container {
        Workload::Host { .. } => Some(PathBuf::from(path)),
        _ => None,
    }
}

/// Whether a non-empty file named `<name>.<suffix>`, `<name>-<suffix>` or
/// `<name>_<suffix>` beside `file` was modified within `fresh` of `now`.
pub fn has_fresh_copy(file: &Path, now: SystemTime, fresh: Duration) -> bool {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let n = e.file_name();
        let Some(n) = n.to_str() else { return false };
        let Some(rest) = n.strip_prefix(name) else {
            return false;
        };
        if !(rest.starts_with('.') || rest.starts_with('-') || rest.starts_with('_'))
            || rest.len() < 2
        {
            return false;
        }
        let Ok(meta) = e.metadata() else { return false };
        let recent = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok().or(Some(Duration::ZERO)))
            .is_some_and(|age| age <= fresh);
        meta.is_file() && meta.len() > 0 && recent
    })
}

/// Whether `exe` (`…/bin/python3.11`) sits in a Python virtual environment: a
/// `pyvenv.cfg` in the directory above its `bin/`.
pub fn is_in_venv(exe: &Path) -> bool {
    exe.parent()
        .filter(|bin| bin.file_name().is_some_and(|n| n == "bin"))
        .and_then(Path::parent)
        .is_some_and(|env| env.join("pyvenv.cfg").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_copy_beside_the_log_is_found_and_an_old_or_empty_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, b"").unwrap();
        let now = SystemTime::now();
        assert!(!has_fresh_copy(&log, now, FRESH_COPY));
        std::fs::write(dir.path().join("app.log.1"), b"").unwrap();
        assert!(
            !has_fresh_copy(&log, now, FRESH_COPY),
            "an empty copy is no copy"
        );
        std::fs::write(dir.path().join("other.log.1"), b"x").unwrap();
        assert!(
            !has_fresh_copy(&log, now, FRESH_COPY),
            "another file's copy"
        );
        std::fs::write(dir.path().join("app.log-20261206"), b"lines").unwrap();
        assert!(has_fresh_copy(&log, now, FRESH_COPY));
        let later = now + Duration::from_secs(3600);
        assert!(!has_fresh_copy(&log, later, FRESH_COPY), "an hour-old copy");
    }

    #[test]
    fn venv_interpreters_are_recognised_by_their_pyvenv_cfg() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("env/bin");
        std::fs::create_dir_all(&bin).unwrap();
        assert!(!is_in_venv(&bin.join("python3")));
        std::fs::write(dir.path().join("env/pyvenv.cfg"), b"home = /usr/bin\n").unwrap();
        assert!(is_in_venv(&bin.join("python3")));
        assert!(!is_in_venv(Path::new("/usr/bin/python3")));
    }
}
