//! Targets and the scan driver: read the input, catalog it layer by layer (through the
//! cache), merge, and finalise package URLs and ecosystems.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::LayerCache;
use crate::catalog::{Collector, FileContentScanner};
use crate::error::{Result, ScanError};
use crate::image::BlobStore;
use crate::merge::{merge, Merged};
use crate::model::{LayerInfo, ScanReport, ScanWarning, TargetInfo};
use crate::walk::{
    decompress_and_hash, map_limit_error, walk_dir, walk_tar, LayerEvidence, Limits,
};

/// What to scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `docker save` tarball or an OCI layout packed as tar (optionally gzip/zstd).
    ImageArchive(PathBuf),
    /// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
    OciLayout(PathBuf),
    /// A directory: a root filesystem if it has one's markers, else a project tree.
    Directory(PathBuf),
    /// A local Docker image, exported through the Docker API.
    DockerImage(String),
    /// A running container's root filesystem.
    Container(String),
}

impl Target {
    /// Interpret a command-line target: `container:ID`, `docker:NAME`, an existing path,
    /// or else a bare Docker image name.
    pub fn parse(text: &str) -> Target {
        if let Some(id) = text.strip_prefix("container:") {
            return Target::Container(id.to_string());
        }
        if let Some(name) = text.strip_prefix("docker:") {
            return Target::DockerImage(name.to_string());
        }
        let path = Path::new(text);
        if path.is_dir() {
            if path.join("index.json").is_file() && path.join("oci-layout").is_file() {
                return Target::OciLayout(path.to_path_buf());
            }
            return Target::Directory(path.to_path_buf());
        }
        if path.is_file() {
            return Target::ImageArchive(path.to_path_buf());
        }
        Target::DockerImage(text.to_string())
    }
}

/// Progress notifications, for a progress bar.
#[derive(Debug, Clone)]
pub enum Progress {
    Layers(usize),
    LayerDone { diff_id: String, cached: bool },
}

pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to scan.
#[derive(Clone, Default)]
pub struct ScanOptions {
    pub limits: Limits,
    /// Root of the per-layer cache; None disables caching.
    pub cache_root: Option<PathBuf>,
    pub content_scanner: Option<Arc<dyn FileContentScanner>>,
    /// YARA rules file, or directory of `.yar`/`.yara` files, to scan every file with
    /// (beside `content_scanner`). Needs the cargo feature `yara`; without it a scan
    /// given rules fails with [`ScanError::NoYaraSupport`]. Rules that do not compile
    /// are skipped and reported in the report's warnings.
    pub malware_rules: Option<PathBuf>,
    pub progress: Option<ProgressFn>,
}

impl ScanOptions {
    fn fingerprint(&self) -> String {
        let limits = &self.limits;
        format!(
            "content={} file={} member={} depth={}",
            self.content_scanner
                .as_ref()
                .map(|s| s.fingerprint())
                .unwrap_or_default(),
            limits.max_file_bytes,
            limits.max_member_bytes,
            limits.max_archive_depth
        )
    }

    fn collector(&self, read_lockfiles: bool) -> Collector<'_> {
        let mut collector = Collector::new(read_lockfiles, self.limits.clone());
        collector.content_scanner = self.content_scanner.as_deref();
        collector
    }

    fn notify(&self, progress: Progress) {
        if let Some(callback) = &self.progress {
            callback(progress);
        }
    }
}

/// True when a directory looks like a root filesystem (its packages are installed evidence).
pub fn is_root_filesystem(dir: &Path) -> bool {
    [
        "etc/os-release",
        "usr/lib/os-release",
        "var/lib/dpkg/status",
        "lib/apk/db/installed",
        "var/lib/rpm",
        "usr/lib/sysimage/rpm",
    ]
    .iter()
    .any(|marker| dir.join(marker).symlink_metadata().is_ok())
}

/// `options` with its malware rules compiled into the content scanner (and
/// `malware_rules` cleared), plus the rules that did not compile as warnings.
fn with_malware(options: &ScanOptions) -> Result<(Cow<'_, ScanOptions>, Vec<ScanWarning>)> {
    let Some(path) = &options.malware_rules else {
        return Ok((Cow::Borrowed(options), Vec::new()));
    };
    #[cfg(feature = "yara")]
    {
        let malware = crate::malware::MalwareContentScanner::from_path(path)?;
        let skipped = malware.skipped();
        tracing::debug!(rules = malware.rule_count(), skipped = skipped.len(), path = %path.display(), "YARA rules compiled");
        let malware: Arc<dyn FileContentScanner> = Arc::new(malware);
        let mut effective = options.clone();
        effective.malware_rules = None;
        let combined: Arc<dyn FileContentScanner> = match &options.content_scanner {
            Some(other) => Arc::new(crate::content::ContentScanners::new(vec![
                other.clone(),
                malware,
            ])),
            None => malware,
        };
        effective.content_scanner = Some(combined);
        Ok((Cow::Owned(effective), skipped))
    }
    #[cfg(not(feature = "yara"))]
    {
        let _ = path;
        Err(ScanError::NoYaraSupport)
    }
}

/// Scan one target.
pub fn scan(target: &Target, name: &str, options: &ScanOptions) -> Result<ScanReport> {
    // Rules first: a bad rules path fails before an image is exported or read.
    let (options, skipped) = with_malware(options)?;
    let mut report = scan_target(target, name, &options)?;
    report.warnings.extend(skipped);
    Ok(report)
}

fn scan_target(target: &Target, name: &str, options: &ScanOptions) -> Result<ScanReport> {
    match target {
        Target::ImageArchive(path) => {
            let store = BlobStore::open_tar(path, &options.limits)?;
            scan_image(&store, name, options)
        }
        Target::OciLayout(path) => scan_image(&BlobStore::Dir(path.clone()), name, options),
        Target::Directory(path) => {
            let rootfs = is_root_filesystem(path);
            scan_directory(
                path,
                name,
                if rootfs { "rootfs" } else { "directory" },
                !rootfs,
                false,
                options,
            )
        }
        #[cfg(feature = "docker")]
        Target::DockerImage(image) => {
            let exported = crate::docker::export_image(image, options.limits.max_layer_bytes)?;
            let label = PathBuf::from(format!("docker:{image}"));
            let store = BlobStore::from_tar_file(exported, &label)?;
            scan_image(&store, name, options)
        }
        #[cfg(feature = "docker")]
        Target::Container(id) => {
            let root = crate::docker::container_root(id)?;
            scan_directory(&root, name, "container", false, true, options)
        }
        #[cfg(not(feature = "docker"))]
        Target::DockerImage(_) | Target::Container(_) => Err(ScanError::Docker(
            "this build has no Docker support (feature `docker`)".into(),
        )),
    }
}

/// Scan a directory tree (a project, a root filesystem, or a container's root).
pub fn scan_directory(
    root: &Path,
    name: &str,
    kind: &str,
    read_lockfiles: bool,
    one_file_system: bool,
    options: &ScanOptions,
) -> Result<ScanReport> {
    if !root.is_dir() {
        return Err(ScanError::UnknownTarget {
            target: root.display().to_string(),
            reason: "not a directory".into(),
        });
    }
    let (options, skipped) = with_malware(options)?;
    let collector = options.collector(read_lockfiles);
    let evidence = walk_dir(root, &collector, &options.limits, one_file_system)?;
    let merged = merge(&[(None, &evidence)]);
    let mut report = finish(
        TargetInfo {
            name: name.to_string(),
            kind: kind.to_string(),
            image_id: None,
            repo_tags: Vec::new(),
            layers: Vec::new(),
        },
        merged,
    );
    report.warnings.extend(skipped);
    Ok(report)
}

/// Read one layer blob into evidence, checking that its content matches the diff id.
pub fn read_layer(
    blob: Box<dyn Read + Send + '_>,
    diff_id: &str,
    collector: &Collector<'_>,
    limits: &Limits,
) -> Result<LayerEvidence> {
    let context = format!("layer {diff_id}");
    let (evidence, actual) = decompress_and_hash(blob, |stream| {
        let evidence = walk_tar(&mut *stream, &context, collector, limits)?;
        let digest = stream.finish(limits.max_layer_bytes).map_err(|e| {
            let end = "<end of layer>";
            map_limit_error(e, "layer size", limits.max_layer_bytes, &context, end)
        })?;
        Ok::<_, ScanError>((evidence, digest))
    })?;
    if actual != diff_id {
        return Err(ScanError::DigestMismatch {
            expected: diff_id.to_string(),
            actual,
        });
    }
    Ok(evidence)
}

/// One layer's evidence and whether it came from the cache.
type LayerOutcome = (Result<LayerEvidence>, bool);

/// Scan an image held in a blob store.
pub fn scan_image(store: &BlobStore, name: &str, options: &ScanOptions) -> Result<ScanReport> {
    let (options, skipped) = with_malware(options)?;
    let options = options.as_ref();
    let manifest = store.manifest()?;
    let cache = match &options.cache_root {
        Some(root) => match LayerCache::open(root, &options.fingerprint()) {
            Ok(cache) => Some(cache),
            Err(err) => {
                tracing::warn!(%err, "scan cache unavailable; scanning without it");
                None
            }
        },
        None => None,
    };
    let collector = options.collector(false);
    options.notify(Progress::Layers(manifest.layers.len()));
    // Layers are independent until the merge: read the uncached ones on all cores
    // (bounded, since each worker holds at most one file of its layer in memory).
    let count = manifest.layers.len();
    let slots: Vec<std::sync::Mutex<Option<LayerOutcome>>> =
        (0..count).map(|_| std::sync::Mutex::new(None)).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
        .min(count.max(1));
    let work = || loop {
        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(layer) = manifest.layers.get(index) else {
            break;
        };
        let cached = cache.as_ref().and_then(|c| c.get(&layer.diff_id));
        let outcome = match cached {
            Some(evidence) => (Ok(evidence), true),
            None => {
                let evidence = store
                    .open(&layer.blob_path)
                    .and_then(|blob| read_layer(blob, &layer.diff_id, &collector, &options.limits));
                if let (Ok(evidence), Some(cache)) = (&evidence, &cache) {
                    if let Err(err) = cache.put(&layer.diff_id, evidence) {
                        tracing::warn!(%err, "could not write scan cache entry");
                    }
                }
                (evidence, false)
            }
        };
        options.notify(Progress::LayerDone {
            diff_id: layer.diff_id.clone(),
            cached: outcome.1,
        });
        if let Ok(mut slot) = slots[index].lock() {
            *slot = Some(outcome);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers {
            scope.spawn(work);
        }
        work();
    });
    let mut layers = Vec::with_capacity(count);
    let mut infos = Vec::with_capacity(count);
    for (layer, slot) in manifest.layers.iter().zip(slots) {
        let (evidence, cached) = slot
            .into_inner()
            .ok()
            .flatten()
            .ok_or_else(|| ScanError::Cache(format!("layer {} was not read", layer.diff_id)))?;
        infos.push(LayerInfo {
            diff_id: layer.diff_id.clone(),
            cached,
            command: layer.command.clone(),
        });
        layers.push((Some(layer.diff_id.clone()), evidence?));
    }
    let refs: Vec<(Option<String>, &LayerEvidence)> =
        layers.iter().map(|(id, e)| (id.clone(), e)).collect();
    let merged = merge(&refs);
    let mut report = finish(
        TargetInfo {
            name: name.to_string(),
            kind: "image".into(),
            image_id: Some(manifest.image_id),
            repo_tags: manifest.repo_tags,
            layers: infos,
        },
        merged,
    );
    report.warnings.extend(skipped);
    Ok(report)
}

fn finish(target: TargetInfo, merged: Merged) -> ScanReport {
    let Merged {
        os,
        mut packages,
        findings,
        warnings,
    } = merged;
    for package in &mut packages {
        package.purl = crate::purl::purl(package, os.as_ref());
        package.ecosystem = crate::purl::ecosystem(package, os.as_ref());
    }
    packages.sort_by(|a, b| {
        (a.kind, &a.name, &a.version, &a.location).cmp(&(b.kind, &b.name, &b.version, &b.location))
    });
    packages.dedup_by(|a, b| a.purl == b.purl && a.location == b.location);
    ScanReport {
        target,
        os,
        packages,
        vulnerabilities: Vec::new(),
        content_findings: findings,
        warnings,
        database: None,
    }
}
