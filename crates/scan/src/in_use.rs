//! Whether a running container loaded a package's files: the files each package owns
//! (read from the container's own root: Python `RECORD`, dpkg `.list`, apk's and rpm's
//! databases, npm package and gem directories, the jar a Java package was found in; see
//! [`FileLists`]), and the verdict from the files its processes were seen executing or
//! opening (the loader's opens of shared libraries, `require`d files, opened jars).
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
    /// Cannot tell: its files are unknown, or some are where the sensor does not
    /// report read-only opens (`/lib`, `/usr/lib` when library opens are filtered), or the
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
/// Rampart reads. Several packages: [`FileLists`] reads shared databases once.
pub fn package_files(root: &Path, package: &Package) -> Option<Vec<String>> {
    FileLists::new(root).files(package)
}

/// Most files listed for one package from a directory walk (an npm package, a gem);
/// past it the list is not known, so the verdict is `unknown` rather than resting on
/// part of the package.
const MAX_WALKED_FILES: usize = 20_000;

/// An rpm database's file lists: (name, VERSION-RELEASE) → files.
type RpmFiles = HashMap<(String, String), Vec<String>>;

/// Reads the file lists of a container's packages under its root (the host's view of
/// it, `/proc/PID/root`), reading each shared database (apk's, rpm's) once:
///
/// - Python: the dist-info's `RECORD` (the dist-info itself left out: metadata);
/// - dpkg: `var/lib/dpkg/info/NAME[:ARCH].list`;
/// - apk: the `F:`/`R:` lines of the package's stanza in `lib/apk/db/installed`;
/// - rpm: the header's `DIRNAMES`/`BASENAMES`/`DIRINDEXES` in the rpm database;
/// - npm: every file under `node_modules/NAME/` (or `@scope/NAME/`) but its
///   `package.json` (metadata), nested
///   `node_modules` left to their own packages;
/// - gems: every file under `gems/NAME-VERSION/` and `extensions/*/*/NAME-VERSION/`
///   next to the `specifications/` directory the gemspec was found in;
/// - Java: the archive the package was found in (the outer jar for a nested or shaded
///   one): a JVM opens the jar, not its entries.
///
/// Where `/lib`, `/bin`, `/sbin` or `/lib64` is a symlink into `/usr` (merged /usr), a
/// file listed under one spelling is also listed under the other: the loader opens
/// `/lib/x86_64-linux-gnu/libssl.so.3` from ld.so.cache whichever way dpkg lists it.
pub struct FileLists<'a> {
    root: &'a Path,
    tree: Option<crate::walk::TreeRoot>,
    /// Top-level directories that are symlinks to their `/usr` twin.
    merged_usr: Vec<&'static str>,
    apk: Option<Option<HashMap<String, Vec<String>>>>,
    rpm: HashMap<String, Option<RpmFiles>>,
}

impl<'a> FileLists<'a> {
    pub fn new(root: &'a Path) -> Self {
        let merged_usr = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]
            .into_iter()
            .filter(|top| {
                std::fs::read_link(root.join(top)).is_ok_and(|target| {
                    let target = target.to_string_lossy();
                    target.trim_start_matches('/') == format!("usr/{top}")
                })
            })
            .collect();
        FileLists {
            root,
            tree: crate::walk::TreeRoot::open(root).ok(),
            merged_usr,
            apk: None,
            rpm: HashMap::new(),
        }
    }

    /// The files `package` owns; None when its format keeps no list Rampart reads or
    /// the list cannot be read.
    pub fn files(&mut self, package: &Package) -> Option<Vec<String>> {
        let files = match package.kind {
            PackageKind::Python => python_record(self.tree.as_ref()?, &package.location),
            PackageKind::Deb => dpkg_list(self.root, self.tree.as_ref()?, package),
            PackageKind::Apk => self.apk_files(package),
            PackageKind::Rpm => self.rpm_files(package),
            PackageKind::Npm => {
                let dir = package.location.strip_suffix("/package.json")?;
                let mut files =
                    walk_package_dir(self.root, self.tree.as_ref()?, &[dir.to_string()])?;
                // Metadata, not code: `npm ls` reads every package.json.
                let manifest = format!("/{}", package.location.trim_start_matches('/'));
                files.retain(|f| *f != manifest);
                Some(files)
            }
            PackageKind::Gem => gem_files(self.root, self.tree.as_ref()?, &package.location),
            PackageKind::Maven => {
                let archive = package
                    .location
                    .split_once("!/")
                    .map_or(package.location.as_str(), |(outer, _)| outer);
                Some(vec![format!("/{}", archive.trim_start_matches('/'))])
            }
            _ => None,
        }?;
        Some(self.with_usr_aliases(files))
    }

    fn with_usr_aliases(&self, files: Vec<String>) -> Vec<String> {
        if self.merged_usr.is_empty() {
            return files;
        }
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let alias = self.merged_usr.iter().find_map(|top| {
                let bare = format!("/{top}/");
                let usr = format!("/usr/{top}/");
                if let Some(rest) = file.strip_prefix(&bare) {
                    Some(format!("{usr}{rest}"))
                } else {
                    file.strip_prefix(&usr).map(|rest| format!("{bare}{rest}"))
                }
            });
            out.push(file);
            out.extend(alias);
        }
        out
    }

    fn apk_files(&mut self, package: &Package) -> Option<Vec<String>> {
        if self.apk.is_none() {
            let text = self
                .tree
                .as_ref()
                .and_then(|tree| read_inside(tree, Path::new("lib/apk/db/installed")));
            self.apk = Some(text.map(|t| apk_file_lists(&t)));
        }
        let lists = self.apk.as_ref()?.as_ref()?;
        lists
            .get(&format!("{}={}", package.name, package.version))
            .cloned()
    }

    fn rpm_files(&mut self, package: &Package) -> Option<Vec<String>> {
        let location = package.location.clone();
        if !self.rpm.contains_key(&location) {
            let lists = self.read_rpm(&location);
            self.rpm.insert(location.clone(), lists);
        }
        self.rpm
            .get(&location)?
            .as_ref()?
            .get(&(package.name.clone(), package.version.clone()))
            .cloned()
    }

    fn read_rpm(&self, location: &str) -> Option<RpmFiles> {
        let tree = self.tree.as_ref()?;
        let mut file = tree
            .open_file(Path::new(location.trim_start_matches('/')))
            .ok()?;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).ok()?;
        // SQLite reads files: a private copy, so nothing follows a link in the container.
        let copy = tempfile::NamedTempFile::new().ok()?;
        if data.starts_with(b"SQLite format 3\0") {
            std::fs::write(copy.path(), &data).ok()?;
        }
        let blobs = crate::catalog::rpm::database_blobs(copy.path(), &data).ok()?;
        let mut lists = RpmFiles::new();
        for blob in &blobs {
            let (Ok(header), Some(files)) = (
                crate::catalog::rpm::parse_header(blob),
                crate::catalog::rpm::header_files(blob),
            ) else {
                continue;
            };
            lists.insert(
                (
                    header.name,
                    format!("{}-{}", header.version, header.release),
                ),
                files,
            );
        }
        Some(lists)
    }
}

/// apk's installed database: `NAME=VERSION` → the files of its stanza (`F:` names a
/// directory, each `R:` after it a file in it).
fn apk_file_lists(text: &str) -> HashMap<String, Vec<String>> {
    let mut lists = HashMap::new();
    let (mut name, mut version, mut dir) = (String::new(), String::new(), String::new());
    let mut files = Vec::new();
    let mut finish = |name: &mut String, version: &mut String, files: &mut Vec<String>| {
        if !name.is_empty() {
            lists.insert(format!("{name}={version}"), std::mem::take(files));
        }
        name.clear();
        version.clear();
        files.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            finish(&mut name, &mut version, &mut files);
            dir.clear();
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "P" => name = value.to_string(),
            "V" => version = value.to_string(),
            "F" => dir = value.trim_matches('/').to_string(),
            "R" if dir.is_empty() => files.push(format!("/{value}")),
            "R" => files.push(format!("/{dir}/{value}")),
            _ => {}
        }
    }
    finish(&mut name, &mut version, &mut files);
    lists
}

/// A gem's files: `BASE/gems/NAME-VERSION/**` and `BASE/extensions/*/*/NAME-VERSION/**`
/// for a gemspec at `BASE/specifications/NAME-VERSION.gemspec`.
fn gem_files(root: &Path, tree: &crate::walk::TreeRoot, location: &str) -> Option<Vec<String>> {
    let (specifications, spec) = location.rsplit_once('/')?;
    let full_name = spec.strip_suffix(".gemspec")?;
    let base = specifications.strip_suffix("specifications")?;
    let base = base.trim_end_matches('/');
    let join = |rest: &str| {
        if base.is_empty() {
            rest.to_string()
        } else {
            format!("{base}/{rest}")
        }
    };
    let mut dirs = vec![join(&format!("gems/{full_name}"))];
    // extensions/PLATFORM/ABI/NAME-VERSION: compiled extensions live apart from the gem.
    let extensions = root.join(join("extensions").trim_start_matches('/'));
    if let Ok(platforms) = std::fs::read_dir(&extensions) {
        for platform in platforms.flatten().take(16) {
            if let Ok(abis) = std::fs::read_dir(platform.path()) {
                for abi in abis.flatten().take(16) {
                    dirs.push(join(&format!(
                        "extensions/{}/{}/{full_name}",
                        platform.file_name().to_string_lossy(),
                        abi.file_name().to_string_lossy()
                    )));
                }
            }
        }
    }
    walk_package_dir(root, tree, &dirs)
}

/// Every file under the given directories (relative to the container root), nested
/// `node_modules` left out (those are packages of their own). Directories that do not
/// exist add nothing; None when none exists, one is reached through a symlink, or the
/// walk passes [`MAX_WALKED_FILES`].
fn walk_package_dir(
    root: &Path,
    tree: &crate::walk::TreeRoot,
    dirs: &[String],
) -> Option<Vec<String>> {
    let mut files = Vec::new();
    let mut found = false;
    for dir in dirs {
        let relative = dir.trim_start_matches('/');
        // Opened beneath the root without following a link: a directory swapped for a
        // link to the host's files is not listed. (The walk below does not follow links.)
        let Ok(opened) = tree.open_file(Path::new(relative)) else {
            continue;
        };
        if !opened.metadata().is_ok_and(|m| m.is_dir()) {
            continue;
        }
        found = true;
        let walker = walkdir::WalkDir::new(root.join(relative))
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || e.file_name() != "node_modules");
        for entry in walker {
            let Ok(entry) = entry else { continue };
            if entry.file_type().is_dir() {
                continue;
            }
            let Ok(inner) = entry.path().strip_prefix(root) else {
                continue;
            };
            if files.len() >= MAX_WALKED_FILES {
                return None;
            }
            files.push(format!("/{}", inner.to_string_lossy()));
        }
    }
    found.then_some(files)
}

/// `site-packages/NAME.dist-info/RECORD`: one `path,hash,size` line per file, paths
/// relative to the site directory (the dist-info's parent).
fn python_record(tree: &crate::walk::TreeRoot, location: &str) -> Option<Vec<String>> {
    let dist_info = Path::new(location).parent()?;
    if !dist_info.to_string_lossy().ends_with(".dist-info") {
        return None;
    }
    let site = dist_info.parent()?;
    let text = read_inside(tree, &dist_info.join("RECORD"))?;
    let mut files = Vec::new();
    for line in text.lines() {
        // Paths with commas are quoted (csv); the hash and size never hold quotes.
        let path = match line.strip_prefix('"') {
            Some(rest) => rest.split_once('"').map(|(p, _)| p).unwrap_or(rest),
            None => line.split(',').next().unwrap_or(line),
        };
        // The dist-info is metadata, not code: importlib.metadata (entry points, pip)
        // reads every package's.
        if path.is_empty()
            || path
                .split('/')
                .next()
                .is_some_and(|c| c.ends_with(".dist-info"))
        {
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
fn dpkg_list(root: &Path, tree: &crate::walk::TreeRoot, package: &Package) -> Option<Vec<String>> {
    let mut names = vec![format!("{}.list", package.name)];
    if let Some(arch) = &package.arch {
        names.insert(0, format!("{}:{arch}.list", package.name));
    }
    let text = names
        .iter()
        .find_map(|n| read_inside(tree, &Path::new("var/lib/dpkg/info").join(n)))?;
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

/// Reads a file below the root without following a symlink in any component (a
/// container's `/etc/x -> /host-file` would otherwise resolve against the host's root).
fn read_inside(tree: &crate::walk::TreeRoot, relative: &Path) -> Option<String> {
    let relative = relative.strip_prefix("/").unwrap_or(relative);
    let mut file = tree.open_file(relative).ok()?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).ok()?;
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

/// True for paths whose read-only opens the sensor drops when it filters library
/// opens (`filter_ro_libs`): the same prefixes as `is_lib_path` in bpf/file/open.h
/// (`/lib*`, `/usr/lib*`, `/etc/ld.*`). Not only shared libraries: Debian's Python,
/// Ruby and Node packages live under `/usr/lib` too, and their loads are unseen then.
fn hidden_when_libraries_filtered(path: &str) -> bool {
    path.starts_with("/lib") || path.starts_with("/usr/lib") || path.starts_with("/etc/ld.")
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
    if !libraries_visible && files.iter().any(|f| hidden_when_libraries_filtered(f)) {
        return unknown(
            "it has files under /lib or /usr/lib, whose read-only opens the sensor filters",
        );
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
/// known ([`LoadedFiles::restrict_to`]), only those are kept, and the files of packages
/// installed after the start once a drift rescan lists them ([`LoadedFiles::adopt_drift`]).
///
/// Drift: between a package manager's writes and the rescan that names what it
/// installed, no package owns the new files yet, so while a rescan is pending
/// ([`LoadedFiles::expect_drift`]) files nobody owns are kept aside (bounded too). Reads
/// before the installer's last write are the installer's (pip byte-compiles every module
/// it installs; ldconfig reads every library) and do not count as loading.
#[derive(Debug, Default)]
pub struct LoadedFiles {
    pub loaded: PathMap<u64>,
    pub bounded_out: bool,
    owned: Option<Arc<PathMap<usize>>>,
    /// Files of the packages installed after the start (drift), once rescanned.
    drift_owned: Option<Arc<PathMap<usize>>>,
    /// While a drift rescan is pending: files no package owns yet.
    pending: Option<PendingDrift>,
    /// The pending set reached its bound: a drift package's file may have been loaded
    /// unseen (its verdict is `unknown`).
    pub drift_bounded_out: bool,
    /// The path of the previous call: a process reading the same file again and again
    /// (or one event per open of a storm) costs a comparison, not a hash.
    last: String,
}

/// Files nobody owned, seen while a drift rescan was pending.
#[derive(Debug, Default)]
struct PendingDrift {
    /// path → first seen after the latest package-database write.
    files: PathMap<u64>,
    /// The latest package-database write (ns).
    written_ns: u64,
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
            let drift = self
                .drift_owned
                .as_ref()
                .is_some_and(|d| d.contains_key(path.as_ref()));
            if !drift && !owned.contains_key(path.as_ref()) {
                if let Some(pending) = &mut self.pending {
                    pending.note(path.as_ref(), ts_ns, bound, &mut self.drift_bounded_out);
                }
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
        let drift = self.drift_owned.as_deref();
        self.loaded.retain(|path, _| {
            owned.contains_key(path) || drift.is_some_and(|d| d.contains_key(path))
        });
        self.owned = Some(owned);
    }

    /// A package manager wrote into a package database at `written_ns`: until the
    /// rescan's packages are adopted, keep files nobody owns aside, and count only
    /// what is read after this write.
    pub fn expect_drift(&mut self, written_ns: u64) {
        let pending = self.pending.get_or_insert_with(PendingDrift::default);
        pending.written_ns = pending.written_ns.max(written_ns);
        // A read of the previous path after this write must not pass as a repeat.
        self.last.clear();
    }

    /// A drift rescan listed the files of the packages installed after the start
    /// (file → drift package index): keep them from now on, count those read after the
    /// installer's last write as loaded, and forget the installer's own reads.
    /// `still_pending`: another write came after the rescan was asked for, so files
    /// nobody owns are still kept aside for the next one.
    pub fn adopt_drift(
        &mut self,
        drift_owned: Arc<PathMap<usize>>,
        still_pending: bool,
        bound: usize,
    ) {
        let (aside, written_ns) = match self.pending.take() {
            Some(p) => (p.files, p.written_ns),
            None => (PathMap::default(), 0),
        };
        // Reads before the last write were the installer's (or an older version's).
        self.loaded
            .retain(|path, seen| !drift_owned.contains_key(path) || *seen > written_ns);
        let mut kept_aside = PathMap::default();
        for (path, seen) in aside {
            if drift_owned.contains_key(&path) {
                if seen > written_ns && !self.loaded.contains_key(&path) {
                    if self.loaded.len() >= bound {
                        self.bounded_out = true;
                        continue;
                    }
                    self.loaded.insert(path, seen);
                }
            } else if still_pending {
                kept_aside.insert(path, seen);
            }
        }
        if still_pending {
            self.pending = Some(PendingDrift {
                files: kept_aside,
                written_ns,
            });
        }
        self.drift_owned = Some(drift_owned);
        // The next fold of the previous path must look again: it may be owned now.
        self.last.clear();
    }
}

impl PendingDrift {
    fn note(&mut self, path: &str, ts_ns: u64, bound: usize, bounded_out: &mut bool) {
        let full = self.files.len() >= bound;
        match self.files.get_mut(path) {
            // Seen only before the latest write: this is its first read after it.
            Some(seen) if *seen <= self.written_ns => *seen = ts_ns,
            Some(_) => {}
            None if full => *bounded_out = true,
            None => {
                self.files.insert(path.to_string(), ts_ns);
            }
        }
    }
}

/// The file an event shows loaded: an executed file, or one opened successfully for
/// reading only (an open for writing or creating is an installer or the app's data,
/// not code being loaded).
pub fn loaded_path(event: &rampart_event::Event) -> Option<&str> {
    match &event.payload {
        rampart_event::Payload::Exec { filename, .. } => Some(filename),
        rampart_event::Payload::FileOpen {
            path, ret, access, ..
        } if *ret >= 0 && !access.write && !access.create => Some(path),
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
            ]
        );
    }

    fn write(root: &Path, path: &str, data: &[u8]) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    fn sorted(mut files: Vec<String>) -> Vec<String> {
        files.sort();
        files
    }

    #[test]
    fn npm_packages_own_their_directory_but_not_nested_packages() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "app/node_modules/used/package.json", b"{}");
        write(r, "app/node_modules/used/lib/index.js", b"");
        write(r, "app/node_modules/used/node_modules/inner/index.js", b"");
        write(r, "app/node_modules/@scope/pkg/index.js", b"");
        let mut lists = FileLists::new(r);
        let used = Package::new(
            PackageKind::Npm,
            "used",
            "1.0.0",
            "app/node_modules/used/package.json",
        );
        assert_eq!(
            lists.files(&used).unwrap(),
            ["/app/node_modules/used/lib/index.js"]
        );
        let scoped = Package::new(
            PackageKind::Npm,
            "@scope/pkg",
            "2.0.0",
            "app/node_modules/@scope/pkg/package.json",
        );
        assert_eq!(
            lists.files(&scoped).unwrap(),
            ["/app/node_modules/@scope/pkg/index.js"]
        );
        let gone = Package::new(
            PackageKind::Npm,
            "gone",
            "1.0.0",
            "app/node_modules/gone/package.json",
        );
        assert_eq!(lists.files(&gone), None);
    }

    #[test]
    fn a_package_directory_reached_through_a_symlink_is_not_listed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "pkg/index.js", b"");
        std::fs::create_dir_all(root.path().join("app/node_modules")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("pkg"),
            root.path().join("app/node_modules/evil"),
        )
        .unwrap();
        let evil = Package::new(
            PackageKind::Npm,
            "evil",
            "1.0.0",
            "app/node_modules/evil/package.json",
        );
        assert_eq!(FileLists::new(root.path()).files(&evil), None);
    }

    #[test]
    fn gems_own_their_gem_and_extension_directories() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let base = "usr/local/lib/ruby/gems/3.1.0";
        write(r, &format!("{base}/specifications/tiny-1.2.0.gemspec"), b"");
        write(r, &format!("{base}/gems/tiny-1.2.0/lib/tiny.rb"), b"");
        write(
            r,
            &format!("{base}/extensions/x86_64-linux/3.1.0/tiny-1.2.0/tiny/ext.so"),
            b"",
        );
        write(r, &format!("{base}/gems/tiny-1.20.0/lib/tiny.rb"), b"");
        let gem = Package::new(
            PackageKind::Gem,
            "tiny",
            "1.2.0",
            &format!("{base}/specifications/tiny-1.2.0.gemspec"),
        );
        assert_eq!(
            sorted(FileLists::new(r).files(&gem).unwrap()),
            [
                format!("/{base}/extensions/x86_64-linux/3.1.0/tiny-1.2.0/tiny/ext.so"),
                format!("/{base}/gems/tiny-1.2.0/lib/tiny.rb"),
            ]
        );
    }

    #[test]
    fn java_packages_are_loaded_with_their_outer_archive() {
        let root = tempfile::tempdir().unwrap();
        let mut lists = FileLists::new(root.path());
        let nested = Package::new(
            PackageKind::Maven,
            "org.apache.logging.log4j:log4j-core",
            "2.14.1",
            "app/app.jar!/BOOT-INF/lib/log4j-core-2.14.1.jar",
        );
        assert_eq!(lists.files(&nested).unwrap(), ["/app/app.jar"]);
        let plain = Package::new(PackageKind::Maven, "a:b", "1", "opt/lib/b-1.jar");
        assert_eq!(lists.files(&plain).unwrap(), ["/opt/lib/b-1.jar"]);
    }

    #[test]
    fn apk_stanzas_list_files_and_merged_usr_adds_the_other_spelling() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "lib/apk/db/installed",
            b"P:musl\nV:1.2.4-r2\nF:lib\nR:ld-musl-x86_64.so.1\nR:libc.musl-x86_64.so.1\n\nP:zlib\nV:1.3-r0\nF:usr/lib\nR:libz.so.1.3\n",
        );
        let musl = Package::new(PackageKind::Apk, "musl", "1.2.4-r2", "lib/apk/db/installed");
        let zlib = Package::new(PackageKind::Apk, "zlib", "1.3-r0", "lib/apk/db/installed");
        let mut lists = FileLists::new(r);
        assert_eq!(
            lists.files(&musl).unwrap(),
            ["/lib/ld-musl-x86_64.so.1", "/lib/libc.musl-x86_64.so.1"]
        );
        assert_eq!(lists.files(&zlib).unwrap(), ["/usr/lib/libz.so.1.3"]);
        // A merged-/usr root: /lib -> usr/lib.
        let merged = tempfile::tempdir().unwrap();
        let m = merged.path();
        write(
            m,
            "var/lib/dpkg/info/libssl3:amd64.list",
            b"/.\n/usr\n/usr/lib/x86_64-linux-gnu/libssl.so.3\n",
        );
        std::fs::create_dir_all(m.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", m.join("lib")).unwrap();
        let mut libssl = Package::new(
            PackageKind::Deb,
            "libssl3",
            "3.0.15-1~deb12u1",
            "var/lib/dpkg/status",
        );
        libssl.arch = Some("amd64".into());
        assert_eq!(
            FileLists::new(m).files(&libssl).unwrap(),
            [
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/lib/x86_64-linux-gnu/libssl.so.3"
            ]
        );
    }

    #[test]
    fn drift_files_count_when_read_after_the_installer_last_wrote() {
        let owned: PathMap<usize> = [("/img/a.py".to_string(), 0)].into_iter().collect();
        let mut files = LoadedFiles::default();
        files.restrict_to(Arc::new(owned));
        assert!(files.fold("/img/a.py", 1, 100));
        // Not owned and nothing pending: dropped.
        assert!(!files.fold("/site/x.py", 2, 100));
        // pip writes from 3 to 10, byte-compiling x.py and y.py on the way; the app
        // imports x.py at 12.
        files.expect_drift(3);
        assert!(!files.fold("/site/x.py", 5, 100));
        assert!(!files.fold("/site/y.py", 6, 100));
        files.expect_drift(10);
        assert!(!files.fold("/site/x.py", 12, 100));
        assert!(!files.fold("/etc/app.conf", 13, 100));
        let drift: PathMap<usize> = [("/site/x.py".to_string(), 0), ("/site/y.py".to_string(), 0)]
            .into_iter()
            .collect();
        files.adopt_drift(Arc::new(drift), false, 100);
        assert_eq!(files.loaded.get("/site/x.py"), Some(&12));
        assert!(!files.loaded.contains_key("/site/y.py"));
        assert!(!files.loaded.contains_key("/etc/app.conf"));
        // Owned from now on, image files as before; others still dropped.
        assert!(files.fold("/site/y.py", 20, 100));
        assert!(!files.fold("/site/x.py", 21, 100));
        assert!(!files.fold("/etc/app.conf", 22, 100));
        assert_eq!(files.loaded.len(), 3);
        assert!(!files.drift_bounded_out);
        // The set aside is bounded too.
        let mut small = LoadedFiles::default();
        small.restrict_to(Arc::new(PathMap::default()));
        small.expect_drift(1);
        assert!(!small.fold("/a", 2, 1));
        assert!(!small.fold("/b", 3, 1));
        assert!(small.drift_bounded_out && !small.bounded_out);
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
        // Debian's own Python packages sit under /usr/lib: unseen when filtered.
        let debian_python = vec!["/usr/lib/python3/dist-packages/six.py".to_string()];
        assert_eq!(
            decide(Some(&debian_python), &PathMap::default(), false, false).state,
            InUse::Unknown
        );
        let local = vec!["/usr/local/lib/python3.11/dist-packages/x.py".to_string()];
        assert_eq!(
            decide(Some(&local), &PathMap::default(), false, false).state,
            InUse::False
        );
    }
}
