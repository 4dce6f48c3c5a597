//! Whether a running container loaded a package's files: the files each package owns
//! (read from the container's own root: Python `RECORD`, dpkg `.list`), and the verdict
//! from the files its processes were seen executing or opening.
//!
//! The runtime side (which files a container touched, first seen when) is the node
//! pipeline's; this module only knows package formats and how to decide.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{Package, PackageKind, Vulnerability};

/// Whether a package's code was loaded by a running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InUse {
    /// One of its files was executed or opened.
    True,
    /// None of its files was, and every one of them would have been seen.
    False,
    /// Cannot tell: its files are unknown, or some are of a kind the sensor does not
    /// report (shared libraries when read-only library opens are filtered), or the
    /// container's file set hit its bound.
    Unknown,
}

impl InUse {
    /// Ranking order: in use first, unknown next, unused last.
    pub fn rank(self) -> u8 {
        match self {
            InUse::True => 0,
            InUse::Unknown => 1,
            InUse::False => 2,
        }
    }
}

/// The verdict and what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InUseEvidence {
    pub state: InUse,
    /// The first of the package's files seen loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// When that file was first seen, ns since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_ns: Option<u64>,
    /// Why the verdict is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Files (absolute paths inside the container) a package owns, read under `root` (the
/// container's root, e.g. `/proc/PID/root`). None when the format keeps no file list
/// Rampart reads.
pub fn package_files(root: &Path, package: &Package) -> Option<Vec<String>> {
    match package.kind {
        PackageKind::Python => python_record(root, &package.location),
        PackageKind::Deb => dpkg_list(root, package),
        _ => None,
    }
}

/// `site-packages/NAME.dist-info/RECORD`: one `path,hash,size` line per file, paths
/// relative to the site directory (the dist-info's parent).
fn python_record(root: &Path, location: &str) -> Option<Vec<String>> {
    let dist_info = Path::new(location).parent()?;
    if !dist_info.to_string_lossy().ends_with(".dist-info") {
        return None;
    }
    let site = dist_info.parent()?;
    let text = read_inside(root, &dist_info.join("RECORD"))?;
    let mut files = Vec::new();
    for line in text.lines() {
        // Paths with commas are quoted (csv); the hash and size never hold quotes.
        let path = match line.strip_prefix('"') {
            Some(rest) => rest.split_once('"').map(|(p, _)| p).unwrap_or(rest),
            None => line.split(',').next().unwrap_or(line),
        };
        if path.is_empty() {
            continue;
        }
        if let Some(normal) = lexical_join(site, path) {
            files.push(normal);
        }
    }
    Some(files)
}

/// `/var/lib/dpkg/info/NAME.list` (or `NAME:ARCH.list`): every path the package
/// installed, directories included; directories are left out (opening `/usr/lib` does
/// not load any package).
fn dpkg_list(root: &Path, package: &Package) -> Option<Vec<String>> {
    let mut names = vec![format!("{}.list", package.name)];
    if let Some(arch) = &package.arch {
        names.insert(0, format!("{}:{arch}.list", package.name));
    }
    let text = names
        .iter()
        .find_map(|n| read_inside(root, &Path::new("var/lib/dpkg/info").join(n)))?;
    Some(
        text.lines()
            .filter(|p| p.starts_with('/') && *p != "/.")
            .filter(|p| {
                std::fs::symlink_metadata(root.join(p.trim_start_matches('/')))
                    .map(|m| !m.is_dir())
                    .unwrap_or(true)
            })
            .map(str::to_string)
            .collect(),
    )
}

/// Reads a file below `root` without following a symlink out of it: the path is taken
/// as the container sees it only through `root` (a `/proc/PID/root` is that already).
fn read_inside(root: &Path, relative: &Path) -> Option<String> {
    let path = root.join(relative.strip_prefix("/").unwrap_or(relative));
    let bytes = std::fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// `/` + `base` joined with `path`, `..` and `.` resolved lexically; None when it
/// climbs above the root.
fn lexical_join(base: &Path, path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in base.join(path).components() {
        match component {
            Component::Normal(c) => parts.push(c.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// The path a loaded file counts as: Python's byte-code cache
/// (`dir/__pycache__/mod.cpython-311.pyc`) stands for its source (`dir/mod.py`).
pub fn canonical_loaded_path(path: &str) -> std::borrow::Cow<'_, str> {
    if let Some((dir, file)) = path.rsplit_once("/__pycache__/") {
        if let Some(stem) = file.strip_suffix(".pyc") {
            let module = stem.split('.').next().unwrap_or(stem);
            return std::borrow::Cow::Owned(format!("{dir}/{module}.py"));
        }
    }
    std::borrow::Cow::Borrowed(path)
}

/// True for a shared library's file name (`libssl.so.3`, `_speedups.cpython-311-x86_64-linux-gnu.so`).
fn is_shared_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".so") || name.contains(".so.")
}

/// Decides one package from its files and the container's loaded files (path → first
/// seen, ns). `libraries_visible`: the sensor reports read-only opens of shared
/// libraries. `bounded_out`: the container's file set reached its bound, so a file not
/// in it may still have been loaded.
pub fn decide(
    files: Option<&[String]>,
    loaded: &PathMap<u64>,
    libraries_visible: bool,
    bounded_out: bool,
) -> InUseEvidence {
    let unknown = |reason: &str| InUseEvidence {
        state: InUse::Unknown,
        file: None,
        first_seen_ns: None,
        reason: Some(reason.to_string()),
    };
    let Some(files) = files else {
        return unknown("the package's file list is not known");
    };
    let first = files
        .iter()
        .filter_map(|f| loaded.get(f).map(|ns| (*ns, f)))
        .min();
    if let Some((ns, file)) = first {
        return InUseEvidence {
            state: InUse::True,
            file: Some(file.clone()),
            first_seen_ns: Some(ns),
            reason: None,
        };
    }
    if bounded_out {
        return unknown("the container's set of loaded files reached its bound");
    }
    if !libraries_visible && files.iter().any(|f| is_shared_library(f)) {
        return unknown("it has shared libraries, whose read-only opens the sensor filters");
    }
    InUseEvidence {
        state: InUse::False,
        file: None,
        first_seen_ns: None,
        reason: None,
    }
}

/// Orders findings for triage: in use first, then unknown, then unused; within each,
/// most severe first.
pub fn rank(vulnerabilities: &mut [Vulnerability]) {
    vulnerabilities.sort_by(|a, b| {
        let use_rank = |v: &Vulnerability| v.in_use.as_ref().map_or(1, |e| e.state.rank());
        use_rank(a)
            .cmp(&use_rank(b))
            .then_with(|| b.severity.cmp(&a.severity))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.purl.cmp(&b.purl))
    });
}

/// A map keyed by path with a fast, per-process seeded hasher (foldhash): the fold runs
/// for every event a container makes, and paths are chosen by the container.
pub type PathMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// The files one container was seen loading, folded in user space: path → first seen
/// (ns). Bounded: past `bound` entries nothing more is kept and `bounded_out` says so
/// (verdicts of unseen files become `unknown`). Once the image's package files are
/// known ([`LoadedFiles::restrict_to`]), only those are kept.
#[derive(Debug, Default)]
pub struct LoadedFiles {
    pub loaded: PathMap<u64>,
    pub bounded_out: bool,
    owned: Option<Arc<PathMap<usize>>>,
    /// The path of the previous call: a process reading the same file again and again
    /// (or one event per open of a storm) costs a comparison, not a hash.
    last: String,
}

impl LoadedFiles {
    /// Records that `path` was executed or opened at `ts_ns`; true when it was new.
    pub fn fold(&mut self, path: &str, ts_ns: u64, bound: usize) -> bool {
        if path == self.last {
            return false;
        }
        self.last.clear();
        self.last.push_str(path);
        let path = canonical_loaded_path(path);
        if self.loaded.contains_key(path.as_ref()) {
            return false;
        }
        if let Some(owned) = &self.owned {
            if !owned.contains_key(path.as_ref()) {
                return false;
            }
        }
        if self.loaded.len() >= bound {
            self.bounded_out = true;
            return false;
        }
        self.loaded.insert(path.into_owned(), ts_ns);
        true
    }

    /// From now on keep only files in `owned` (package file → package index), and drop
    /// the others kept so far.
    pub fn restrict_to(&mut self, owned: Arc<PathMap<usize>>) {
        self.loaded.retain(|path, _| owned.contains_key(path));
        self.owned = Some(owned);
    }
}

/// The file an event shows loaded: an executed file, or one opened successfully.
pub fn loaded_path(event: &rampart_event::Event) -> Option<&str> {
    match &event.payload {
        rampart_event::Payload::Exec { filename, .. } => Some(filename),
        rampart_event::Payload::FileOpen { path, ret, .. } if *ret >= 0 => Some(path),
        _ => None,
    }
}

/// The container's root as the host sees it through one of its processes.
pub fn proc_root(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyc_stands_for_its_source() {
        assert_eq!(
            canonical_loaded_path("/s/urllib3/__pycache__/poolmanager.cpython-311.pyc"),
            "/s/urllib3/poolmanager.py"
        );
        assert_eq!(canonical_loaded_path("/s/bottle.py"), "/s/bottle.py");
    }

    #[test]
    fn record_paths_resolve_against_the_site_directory() {
        let root = tempfile::tempdir().unwrap();
        let dist = root.path().join("usr/lib/py/site/demo-1.0.dist-info");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(
            dist.join("RECORD"),
            "demo/__init__.py,sha256=x,10\n\"demo/a,b.py\",sha256=y,1\n../../../bin/demo,,\ndemo-1.0.dist-info/RECORD,,\n",
        )
        .unwrap();
        let mut package = Package::new(
            PackageKind::Python,
            "demo",
            "1.0",
            "usr/lib/py/site/demo-1.0.dist-info/METADATA",
        );
        package.ecosystem = Some("PyPI".into());
        let files = package_files(root.path(), &package).unwrap();
        assert_eq!(
            files,
            [
                "/usr/lib/py/site/demo/__init__.py",
                "/usr/lib/py/site/demo/a,b.py",
                "/usr/bin/demo",
                "/usr/lib/py/site/demo-1.0.dist-info/RECORD"
            ]
        );
    }

    #[test]
    fn verdicts() {
        let files = vec!["/a/x.py".to_string(), "/a/y.py".to_string()];
        let mut loaded = PathMap::default();
        assert_eq!(
            decide(Some(&files), &loaded, true, false).state,
            InUse::False
        );
        assert_eq!(
            decide(Some(&files), &loaded, true, true).state,
            InUse::Unknown
        );
        assert_eq!(decide(None, &loaded, true, false).state, InUse::Unknown);
        loaded.insert("/a/y.py".to_string(), 7);
        loaded.insert("/a/x.py".to_string(), 5);
        let verdict = decide(Some(&files), &loaded, true, false);
        assert_eq!(verdict.state, InUse::True);
        assert_eq!(verdict.file.as_deref(), Some("/a/x.py"));
        assert_eq!(verdict.first_seen_ns, Some(5));
        let libs = vec!["/usr/lib/libz.so.1".to_string()];
        assert_eq!(
            decide(Some(&libs), &PathMap::default(), false, false).state,
            InUse::Unknown
        );
        assert_eq!(
            decide(Some(&libs), &PathMap::default(), true, false).state,
            InUse::False
        );
    }
}
