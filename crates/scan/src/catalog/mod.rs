//! Catalogers: which files are evidence of installed packages, and how each is read.

use crate::model::{FileEvidence, Finding, Limits, OsInfo, Package};

pub mod apk;
pub mod binary;
pub mod dpkg;
pub mod java;
pub mod lang;
pub mod lockfile;
pub mod os_release;
pub mod rpm;

/// How much of a file content scanners see before deciding whether they need the rest.
pub const CONTENT_HEAD_BYTES: usize = 8 << 10;

/// A scanner of file contents (secrets, malware) plugged into the walk.
pub trait FileContentScanner: Send + Sync {
    /// Changes whenever the rules change: part of the per-layer cache key.
    fn fingerprint(&self) -> String;
    /// Findings in one file; `excerpt`s must already be redacted.
    fn scan(&self, path: &str, bytes: &[u8]) -> Vec<Finding>;
    /// Whether [`scan`](Self::scan) needs the whole file, judged from its path and first
    /// bytes (up to [`CONTENT_HEAD_BYTES`]). When false, `scan` gets only those bytes and
    /// the rest is not held in memory (for files no cataloger wants). Default: yes.
    fn needs_whole_file(&self, _path: &str, _head: &[u8]) -> bool {
        true
    }
}

/// Which evidence a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cataloger {
    OsRelease,
    DpkgStatus,
    ApkInstalled,
    RpmSqlite,
    RpmBerkeley,
    RpmNdb,
    PythonMetadata,
    NpmPackageJson,
    JavaArchive,
    Gemspec,
    ComposerInstalled,
    Lockfile(lockfile::LockfileKind),
}

/// How interested the collector is in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    None,
    Catalog(Cataloger),
    /// An executable regular file: read if it is ELF (Go build info, cargo-auditable).
    Executable,
    /// Only content scanners want it.
    ContentOnly,
}

impl Interest {
    pub fn is_catalog(self) -> bool {
        matches!(self, Interest::Catalog(_))
    }
}

/// Decides per path what to read, and turns file bytes into evidence.
pub struct Collector<'a> {
    /// Directory (project) scans also read lockfiles; images and root filesystems use
    /// installed evidence only.
    pub read_lockfiles: bool,
    pub content_scanner: Option<&'a dyn FileContentScanner>,
    pub limits: Limits,
}

impl<'a> Collector<'a> {
    pub fn new(read_lockfiles: bool, limits: Limits) -> Self {
        Collector {
            read_lockfiles,
            content_scanner: None,
            limits,
        }
    }

    /// Classify by path only (mode decides executables).
    pub fn interest(&self, path: &str, mode: u32, size: u64) -> Interest {
        if let Some(cataloger) = classify(path, self.read_lockfiles) {
            return Interest::Catalog(cataloger);
        }
        if mode & 0o111 != 0 && size >= 4 {
            return Interest::Executable;
        }
        if self.content_scanner.is_some() && size > 0 {
            return Interest::ContentOnly;
        }
        Interest::None
    }

    /// Evidence from one file's bytes.
    pub fn examine(&self, path: &str, data: &[u8], interest: Interest) -> FileEvidence {
        let mut evidence = FileEvidence::default();
        let outcome: Result<Vec<Package>, String> = match interest {
            Interest::Catalog(cataloger) => self.catalog(
                cataloger,
                path,
                data,
                &mut evidence.os,
                &mut evidence.warnings,
            ),
            Interest::Executable => binary::parse(path, data, &self.limits),
            Interest::ContentOnly | Interest::None => Ok(Vec::new()),
        };
        match outcome {
            Ok(packages) => evidence.packages = packages,
            Err(message) => evidence.warnings.push(message),
        }
        if let Some(scanner) = self.content_scanner {
            evidence.findings = scanner.scan(path, data);
        }
        evidence
    }

    fn catalog(
        &self,
        cataloger: Cataloger,
        path: &str,
        data: &[u8],
        os: &mut Option<OsInfo>,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<Package>, String> {
        match cataloger {
            Cataloger::OsRelease => {
                *os = Some(os_release::parse(&String::from_utf8_lossy(data)));
                Ok(Vec::new())
            }
            Cataloger::DpkgStatus => dpkg::parse_status(path, data),
            Cataloger::ApkInstalled => apk::parse_installed(path, data),
            Cataloger::RpmSqlite => rpm::parse_sqlite_bytes(path, data),
            Cataloger::RpmBerkeley => rpm::parse_berkeley(path, data),
            Cataloger::RpmNdb => rpm::parse_ndb(path, data),
            Cataloger::PythonMetadata => lang::parse_python_metadata(path, data),
            Cataloger::NpmPackageJson => lang::parse_package_json(path, data),
            Cataloger::JavaArchive => java::parse_archive(path, data, &self.limits),
            Cataloger::Gemspec => lang::parse_gemspec(path, data),
            Cataloger::ComposerInstalled => lang::parse_composer_installed(path, data),
            Cataloger::Lockfile(kind) => {
                lockfile::parse_with_warnings(kind, path, data).map(|(packages, skipped)| {
                    warnings.extend(skipped);
                    packages
                })
            }
        }
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The cataloger for a path, if any.
pub fn classify(path: &str, read_lockfiles: bool) -> Option<Cataloger> {
    let name = file_name(path);
    let dir = parent(path);
    match path {
        "etc/os-release" | "usr/lib/os-release" => return Some(Cataloger::OsRelease),
        "var/lib/dpkg/status" => return Some(Cataloger::DpkgStatus),
        "lib/apk/db/installed" => return Some(Cataloger::ApkInstalled),
        _ => {}
    }
    if dir == "var/lib/dpkg/status.d" && !name.ends_with(".md5sums") && !name.starts_with('.') {
        return Some(Cataloger::DpkgStatus);
    }
    if dir == "var/lib/rpm" || dir == "usr/lib/sysimage/rpm" || dir.ends_with("/var/lib/rpm") {
        match name {
            "rpmdb.sqlite" => return Some(Cataloger::RpmSqlite),
            "Packages" => return Some(Cataloger::RpmBerkeley),
            "Packages.db" => return Some(Cataloger::RpmNdb),
            _ => {}
        }
    }
    if (name == "METADATA" && dir.ends_with(".dist-info"))
        || (name == "PKG-INFO" && dir.ends_with(".egg-info"))
        || (name.ends_with(".egg-info") && !dir.ends_with(".egg-info"))
    {
        return Some(Cataloger::PythonMetadata);
    }
    if name == "package.json" && is_node_module_root(dir) {
        return Some(Cataloger::NpmPackageJson);
    }
    if matches!(
        name.rsplit_once('.').map(|(_, ext)| ext),
        Some("jar" | "war" | "ear" | "jpi" | "hpi" | "par" | "sar")
    ) {
        return Some(Cataloger::JavaArchive);
    }
    if name.ends_with(".gemspec") && dir.ends_with("specifications") {
        return Some(Cataloger::Gemspec);
    }
    if name == "installed.json" && dir.ends_with("vendor/composer") {
        return Some(Cataloger::ComposerInstalled);
    }
    if read_lockfiles && !path.contains("node_modules/") {
        if let Some(kind) = lockfile::kind_for(name) {
            return Some(Cataloger::Lockfile(kind));
        }
    }
    None
}

/// `.../node_modules/NAME` or `.../node_modules/@scope/NAME`.
fn is_node_module_root(dir: &str) -> bool {
    let mut parts = dir.rsplit('/');
    let Some(last) = parts.next() else {
        return false;
    };
    match parts.next() {
        Some("node_modules") => !last.starts_with('@') && !last.starts_with('.'),
        Some(scope) if scope.starts_with('@') => parts.next() == Some("node_modules"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified() {
        assert_eq!(
            classify("var/lib/dpkg/status", false),
            Some(Cataloger::DpkgStatus)
        );
        assert_eq!(
            classify("var/lib/dpkg/status.d/base", false),
            Some(Cataloger::DpkgStatus)
        );
        assert_eq!(classify("var/lib/dpkg/status.d/base.md5sums", false), None);
        assert_eq!(
            classify(
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                false
            ),
            Some(Cataloger::PythonMetadata)
        );
        assert_eq!(
            classify("app/node_modules/@babel/core/package.json", false),
            Some(Cataloger::NpmPackageJson)
        );
        assert_eq!(
            classify("app/node_modules/lodash/package.json", false),
            Some(Cataloger::NpmPackageJson)
        );
        assert_eq!(
            classify("app/node_modules/lodash/lib/package.json", false),
            None
        );
        assert_eq!(classify("app/package-lock.json", false), None);
        assert!(matches!(
            classify("app/package-lock.json", true),
            Some(Cataloger::Lockfile(_))
        ));
        assert_eq!(
            classify("usr/lib/sysimage/rpm/rpmdb.sqlite", false),
            Some(Cataloger::RpmSqlite)
        );
    }
}
