//! Facts about files a rule may need beyond the event, read from the filesystem the
//! process sees (its root through `/proc/<pid>/root`, or that of a live ancestor in
//! the same container when the process already exited) at evaluation time:
//! `fd.has_fresh_copy` (copytruncate: a log truncated right after a copy of it was
//! written beside it) and `proc.is_exe_in_venv` (an interpreter of a Python virtual
//! environment). Both are approximate by nature: the files may change in between.
//! When the process and its near ancestors have all exited (a fast tool run by
//! `docker exec`, whose shell's parent is the runtime's shim outside the container),
//! any live process of the container's cgroup serves: it shares the container's root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

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
    let container = ev.container.container().map(|c| c.id.as_str());
    for pid in pids {
        let dir = proc_root.join(pid.to_string());
        // Only while that process is alive (its root link resolves), and, for a
        // container's event, only a process of that container: the grandparent of a
        // `docker exec`'d tool is the runtime's shim, alive on the host, whose root is
        // the host's (a pid reused since is no better).
        if std::fs::read_link(dir.join("root")).is_err() {
            continue;
        }
        if container.is_some_and(|id| !in_cgroup_of(&dir, id)) {
            continue;
        }
        return Some(dir.join("root").join(rel));
    }
    match &*ev.container {
        Workload::Host { .. } => Some(PathBuf::from(path)),
        Workload::Container(c) => {
            let root = live_container_root(proc_root, Path::new(CGROUP_ROOT), &c.id)?;
            Some(root.join(rel))
        }
    }
}

/// Whether the process at `proc_dir` (`/proc/<pid>`) is in container `id`'s cgroup
/// (its cgroup path names the id: `docker-<id>.scope`, `cri-containerd-<id>.scope`,
/// `/kubepods/…/<id>`, `/<namespace>/<id>`). A short id (containerd lets `ctr run`
/// name a container anything) must be the path's whole last component.
fn in_cgroup_of(proc_dir: &Path, id: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(proc_dir.join("cgroup")) else {
        return false;
    };
    if id.len() >= 12 {
        return text.contains(id);
    }
    !id.is_empty()
        && text
            .lines()
            .any(|l| l.rsplit('/').next().is_some_and(|last| last == id))
}

/// Where cgroup hierarchies are mounted (v2, or v1's controllers under it).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Depth of a container's cgroup below [`CGROUP_ROOT`]: two for Docker
/// (`system.slice/docker-<id>.scope`), four for a Kubernetes pod's container under
/// the systemd driver, one more on cgroup v1 (the controller's directory).
const CGROUP_DEPTH: usize = 5;
/// How long a container whose cgroup was not found is not searched for again.
const NOT_FOUND_FOR: Duration = Duration::from_secs(5);
/// Containers whose cgroup directory is remembered (cleared beyond).
const MAX_CGROUP_DIRS: usize = 1024;

/// A container's cgroup directory as last searched for (None: not found), and when.
type CgroupDirLookup = (Option<PathBuf>, Instant);

/// Each container's cgroup directory, found once by walking the hierarchy.
static CGROUP_DIRS: Mutex<Option<HashMap<String, CgroupDirLookup>>> = Mutex::new(None);

/// The root of a live process in the cgroup of container `id`
/// (`<proc_root>/<pid>/root`).
pub fn live_container_root(proc_root: &Path, cgroup_root: &Path, id: &str) -> Option<PathBuf> {
    if id.len() < 12 {
        // Too short to find its cgroup by name without mistaking another's.
        return None;
    }
    let dir = {
        let mut dirs = CGROUP_DIRS.lock().ok()?;
        let dirs = dirs.get_or_insert_with(HashMap::new);
        let key = format!("{}\0{id}", cgroup_root.display());
        match dirs.get(&key) {
            Some((Some(dir), _)) if dir.is_dir() => dir.clone(),
            Some((None, when)) if when.elapsed() < NOT_FOUND_FOR => return None,
            _ => {
                if dirs.len() >= MAX_CGROUP_DIRS {
                    dirs.clear();
                }
                let found = find_cgroup_dir(cgroup_root, id);
                dirs.insert(key, (found.clone(), Instant::now()));
                found?
            }
        }
    };
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .map(|pid| proc_root.join(pid.to_string()).join("root"))
        .find(|root| std::fs::read_link(root).is_ok())
}

/// The cgroup directory whose name holds container `id` (`docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `<id>`), breadth first within [`CGROUP_DEPTH`].
fn find_cgroup_dir(cgroup_root: &Path, id: &str) -> Option<PathBuf> {
    let mut level = vec![cgroup_root.to_path_buf()];
    for _ in 0..CGROUP_DEPTH {
        let mut next = Vec::new();
        for dir in &level {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let path = e.path();
                if e.file_name().to_str().is_some_and(|n| n.contains(id)) {
                    return Some(path);
                }
                next.push(path);
            }
        }
        level = next;
    }
    None
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
    fn a_gone_process_is_seen_through_a_live_process_of_its_containers_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cgroups = dir.path().join("cgroup");
        let scope = cgroups.join(format!("system.slice/docker-{id}.scope"));
        std::fs::create_dir_all(&scope).unwrap();
        std::fs::create_dir_all(cgroups.join("system.slice/other.service")).unwrap();
        // 4242 is gone; 4343 is alive, its root a directory of the container's files.
        std::fs::write(scope.join("cgroup.procs"), "4242\n4343\n").unwrap();
        let proc_root = dir.path().join("proc");
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("srv")).unwrap();
        std::fs::create_dir_all(proc_root.join("4343")).unwrap();
        std::os::unix::fs::symlink(&rootfs, proc_root.join("4343/root")).unwrap();
        assert_eq!(
            live_container_root(&proc_root, &cgroups, id),
            Some(proc_root.join("4343/root"))
        );
        assert!(proc_root.join("4343/root/srv").is_dir());
        let other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
        assert_eq!(live_container_root(&proc_root, &cgroups, other), None);
        assert_eq!(
            live_container_root(&proc_root, &cgroups, "0123"),
            None,
            "an id too short to name one cgroup"
        );
    }

    #[test]
    fn a_container_event_is_not_read_through_an_ancestor_outside_the_container() {
        use rampart_event::{Ancestor, Container, Process};
        let dir = tempfile::tempdir().unwrap();
        let id = "89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567";
        let proc_root = dir.path().join("proc");
        // 10 (the tool) is gone; 11 (its shell) is alive in the container; 12 (the
        // shim) is alive on the host.
        for (pid, cgroup) in [
            (11, format!("0::/system.slice/docker-{id}.scope\n")),
            (12, "0::/system.slice/containerd.service\n".to_string()),
        ] {
            let d = proc_root.join(pid.to_string());
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup"), cgroup).unwrap();
            std::os::unix::fs::symlink(dir.path(), d.join("root")).unwrap();
        }
        let ancestor = |pid: u32| {
            std::sync::Arc::new(Ancestor {
                pid,
                ..Default::default()
            })
        };
        let event = |ancestry: Vec<std::sync::Arc<Ancestor>>| {
            let mut ev = crate::probe::probe_event(rampart_event::EventKind::FileOpen).unwrap();
            ev.process = Some(std::sync::Arc::new(Process {
                pid: 10,
                ancestry,
                ..Default::default()
            }));
            ev.container = std::sync::Arc::new(Workload::Container(Container {
                id: id.into(),
                ..Default::default()
            }));
            ev
        };
        assert_eq!(
            seen_path(
                &proc_root,
                &event(vec![ancestor(11), ancestor(12)]),
                "/srv/x"
            ),
            Some(proc_root.join("11/root/srv/x"))
        );
        // With the shell gone too, the shim is passed over (the container's cgroup is
        // then searched for; there is none here).
        assert_eq!(
            seen_path(
                &proc_root,
                &event(vec![ancestor(13), ancestor(12)]),
                "/srv/x"
            ),
            None
        );
    }

    #[test]
    fn a_short_container_id_must_be_the_cgroups_last_component() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = (dir.path().join("1"), dir.path().join("2"));
        std::fs::create_dir_all(&good).unwrap();
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(good.join("cgroup"), "0::/k8s.io/web\n").unwrap();
        std::fs::write(bad.join("cgroup"), "0::/k8s.io/webapp\n").unwrap();
        assert!(in_cgroup_of(&good, "web"));
        assert!(!in_cgroup_of(&bad, "web"));
        assert!(!in_cgroup_of(&good, ""));
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
