//! The scan result model: packages, operating system, findings, report; the evidence
//! one file or layer contributes (what the per-layer cache stores); and the limits that
//! bound reading. Every other module of the crate builds on these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Severity and content findings are the event model's, shared with alerts and the
/// vulnerability database.
pub use rampart_event::{Finding, Severity};

/// Which packaging system a package belongs to (decides the purl type and the
/// OSV ecosystem used for matching).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageKind {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    Cargo,
    Maven,
    Gem,
    Composer,
}

impl PackageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Deb => "deb",
            PackageKind::Apk => "apk",
            PackageKind::Rpm => "rpm",
            PackageKind::Python => "python",
            PackageKind::Npm => "npm",
            PackageKind::Go => "go",
            PackageKind::Cargo => "cargo",
            PackageKind::Maven => "maven",
            PackageKind::Gem => "gem",
            PackageKind::Composer => "composer",
        }
    }

    /// True for packages of the operating system's own package manager.
    pub fn is_os(self) -> bool {
        matches!(self, PackageKind::Deb | PackageKind::Apk | PackageKind::Rpm)
    }
}

/// One package found in the scanned filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub kind: PackageKind,
    /// Name as the ecosystem spells it (`group:artifact` for Maven, `@scope/name` for npm).
    pub name: String,
    /// Version as the ecosystem spells it; for rpm `VERSION-RELEASE` (epoch separate).
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    /// Source package (dpkg `Source`, apk origin, rpm source rpm name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
    /// Path (inside the scanned root, no leading `/`) of the evidence the package was read from.
    pub location: String,
    /// Diff id of the image layer that introduced the package (None for directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Package URL (purl spec), filled when the scan is finalised.
    #[serde(default)]
    pub purl: String,
    /// OSV ecosystem name used for matching (e.g. `Debian:12`, `PyPI`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecosystem: Option<String>,
}

impl Package {
    pub(crate) fn new(
        kind: PackageKind,
        name: impl Into<String>,
        version: impl Into<String>,
        location: &str,
    ) -> Self {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            epoch: None,
            source_name: None,
            source_version: None,
            arch: None,
            licenses: Vec::new(),
            location: location.to_string(),
            layer: None,
            purl: String::new(),
            ecosystem: None,
        }
    }

    /// Version with the epoch prefix where the ecosystem writes one (`1:2.3-4` for rpm).
    pub fn full_version(&self) -> String {
        match self.epoch {
            Some(epoch) if epoch > 0 => format!("{epoch}:{}", self.version),
            _ => self.version.clone(),
        }
    }
}

/// The operating system named by `etc/os-release` (or `usr/lib/os-release`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    pub id: String,
    #[serde(default)]
    pub version_id: String,
    #[serde(default)]
    pub pretty_name: String,
    #[serde(default)]
    pub id_like: Vec<String>,
    #[serde(default)]
    pub version_codename: String,
}

/// A known vulnerability affecting one package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub summary: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_score: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_version: Option<String>,
    /// purl of the affected package.
    pub purl: String,
    pub package_name: String,
    pub package_version: String,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Whether a running container loaded the package (runtime scans only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_use: Option<crate::in_use::InUseEvidence>,
}

/// A problem confined to one file or entry: reported, and the scan goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanWarning {
    /// Path of the entry or file concerned (inside the scanned root or image).
    pub path: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

impl std::fmt::Display for ScanWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.layer {
            Some(layer) => write!(f, "{} (layer {}): {}", self.path, layer, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// One layer of a scanned image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: String,
    /// True when the layer's results came from the per-layer cache.
    pub cached: bool,
    /// The Dockerfile instruction that made it, from the image's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// What was scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// As given by the user.
    pub name: String,
    /// `image`, `directory`, `rootfs` or `container`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repo_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerInfo>,
}

/// Whether the vulnerability database could answer: a scan against an empty or old
/// database says so, so "no vulnerabilities" is never read as "checked and clean".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseState {
    /// Advisories present and updated within the allowed age.
    Current,
    /// Advisories present but last updated longer ago than the allowed age.
    Stale,
    /// The database holds no advisories: nothing was checked.
    Empty,
    /// No database was given or found: nothing was checked.
    Missing,
}

impl DatabaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseState::Current => "current",
            DatabaseState::Stale => "stale",
            DatabaseState::Empty => "empty",
            DatabaseState::Missing => "missing",
        }
    }

    /// True when no vulnerability could have been found.
    pub fn checked_nothing(self) -> bool {
        matches!(self, DatabaseState::Empty | DatabaseState::Missing)
    }
}

/// The vulnerability database a scan was matched against, and how current it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStatus {
    pub state: DatabaseState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default)]
    pub advisories: usize,
    /// RFC 3339 time of the last import or update check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Seconds since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    /// The allowed age, in seconds, past which the database is stale.
    pub max_age_seconds: u64,
}

impl DatabaseStatus {
    /// The sentence every output format carries when the state is not current.
    pub fn warning(&self) -> Option<String> {
        let path = self.path.as_deref().unwrap_or("(none)");
        match self.state {
            DatabaseState::Current => None,
            DatabaseState::Missing => Some(
                "no vulnerability database: no package was checked for vulnerabilities \
                 (run `rampart db update`, or `rampart db import` offline)"
                    .to_string(),
            ),
            DatabaseState::Empty => Some(format!(
                "the vulnerability database {path} is empty: no package was checked for \
                 vulnerabilities (run `rampart db update`, or `rampart db import` offline)"
            )),
            DatabaseState::Stale => Some(format!(
                "the vulnerability database {path} is stale: last updated {} ({} days ago, \
                 more than {} days); findings may be missing (run `rampart db update`)",
                self.updated_at.as_deref().unwrap_or("never"),
                self.age_seconds.unwrap_or(0) / 86_400,
                self.max_age_seconds / 86_400
            )),
        }
    }
}

/// The full result of one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub target: TargetInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    #[serde(default)]
    pub vulnerabilities: Vec<Vulnerability>,
    #[serde(default)]
    pub content_findings: Vec<Finding>,
    #[serde(default)]
    pub warnings: Vec<ScanWarning>,
    /// The vulnerability database matched against (None: matching was not part of this
    /// scan, e.g. an SBOM written by a library caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseStatus>,
}

/// What one file contributed to the scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileEvidence {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// Problems with this file (malformed database, over the size limit...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Everything one layer (or one directory) contributed; this is what the per-layer cache stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerEvidence {
    /// Paths removed from lower layers by `.wh.NAME` entries.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer content is hidden (`.wh..wh..opq`); "" is the root.
    pub opaque_dirs: Vec<String>,
    /// Evidence by normalised path.
    pub files: BTreeMap<String, FileEvidence>,
    /// Problems with entries of this layer that are not tied to a cataloged file.
    pub warnings: Vec<ScanWarning>,
}

/// Bounds that protect the scanner against hostile or absurd input.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest single file read into memory; larger candidate files are skipped with a warning.
    pub max_file_bytes: u64,
    /// Most uncompressed bytes one layer (or an image's outer archive) may expand to.
    pub max_layer_bytes: u64,
    /// Most entries one layer may hold.
    pub max_entries: u64,
    /// Deepest nesting of archives inside archives (jars in jars).
    pub max_archive_depth: u32,
    /// Most uncompressed bytes read out of one archive member (nested jar, zlib section).
    pub max_member_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 256 << 20,
            max_layer_bytes: 16 << 30,
            max_entries: 2_000_000,
            max_archive_depth: 4,
            max_member_bytes: 64 << 20,
        }
    }
}
