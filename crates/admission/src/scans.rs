//! What Rampart knows of an image's scans, as the policy asks it: whether the image
//! was scanned, and its critical vulnerabilities with when each was first known and
//! whether a running container loaded the package.
//!
//! [`ScanReportDir`] reads the JSON reports `rampart scan IMAGE --format json -o
//! DIR/NAME.json` writes (the CI step that scans images before they ship, or a node's
//! scans copied there); a vulnerability counts as known from the modification time of
//! the oldest report that has it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One critical vulnerability of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalVuln {
    pub id: String,
    pub package: String,
    /// A running container loaded the package (`None`: not known).
    pub in_use: Option<bool>,
    /// When Rampart first knew the image had it, ns since the Unix epoch.
    pub first_seen_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageScan {
    pub scanned_at_ns: u64,
    pub critical: Vec<CriticalVuln>,
}

/// The scans the policy consults.
pub trait ScanFacts: Send + Sync {
    /// The image's scan, or `None` when it was never scanned.
    fn scan(&self, image: &str) -> Option<ImageScan>;
}

/// No scans at all (every image is unscanned).
pub struct NoScans;

impl ScanFacts for NoScans {
    fn scan(&self, _image: &str) -> Option<ImageScan> {
        None
    }
}

impl ScanFacts for HashMap<String, ImageScan> {
    fn scan(&self, image: &str) -> Option<ImageScan> {
        names_of(image).iter().find_map(|n| self.get(n).cloned())
    }
}

/// The names an image reference goes by: as written, and with Docker Hub's implied
/// `docker.io/` and `library/` added or taken away, and `:latest` for a bare name.
pub fn names_of(image: &str) -> Vec<String> {
    let mut base = image.to_string();
    let last = base.rsplit('/').next().unwrap_or(&base).to_string();
    if !last.contains(':') && !last.contains('@') {
        base.push_str(":latest");
    }
    let short = base
        .strip_prefix("docker.io/")
        .map(|s| s.strip_prefix("library/").unwrap_or(s).to_string())
        .unwrap_or_else(|| base.clone());
    let mut names = vec![image.to_string(), base.clone(), short.clone()];
    if crate::policy::registry_of(&short) == "docker.io" && !short.starts_with("docker.io/") {
        names.push(format!("docker.io/{short}"));
        if !short.contains('/') {
            names.push(format!("docker.io/library/{short}"));
        }
    }
    names.dedup();
    names
}

/// Reports in a directory, read at each question (a new report counts at once).
pub struct ScanReportDir {
    pub dir: PathBuf,
}

impl ScanReportDir {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn reports(&self) -> Vec<(u64, serde_json::Value)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let mtime = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            match std::fs::read(&path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(v)) => out.push((mtime, v)),
                _ => tracing::warn!(path = %path.display(), "not a scan report; skipped"),
            }
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }
}

impl ScanFacts for ScanReportDir {
    fn scan(&self, image: &str) -> Option<ImageScan> {
        let names = names_of(image);
        let mut found: Option<ImageScan> = None;
        let mut first_seen: HashMap<(String, String), u64> = HashMap::new();
        // Oldest first: the first report with a vulnerability dates it; the newest
        // report says what the image has now.
        for (mtime, report) in self.reports() {
            let target = &report["target"];
            let tags = target["repo_tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str());
            let matches = std::iter::once(target["name"].as_str().unwrap_or(""))
                .chain(tags)
                .any(|n| names.iter().any(|x| names_of(n).contains(x)));
            if !matches {
                continue;
            }
            let critical: Vec<CriticalVuln> = report["vulnerabilities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| {
                    v["severity"]
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case("critical"))
                })
                .map(|v| {
                    let id = v["id"].as_str().unwrap_or("").to_string();
                    let package = v["package_name"].as_str().unwrap_or("").to_string();
                    let seen = *first_seen
                        .entry((id.clone(), package.clone()))
                        .or_insert(mtime);
                    CriticalVuln {
                        in_use: match v["in_use"]["state"].as_str() {
                            Some("true") => Some(true),
                            Some("false") => Some(false),
                            _ => None,
                        },
                        id,
                        package,
                        first_seen_ns: seen,
                    }
                })
                .collect();
            found = Some(ImageScan {
                scanned_at_ns: mtime,
                critical,
            });
        }
        found
    }
}
