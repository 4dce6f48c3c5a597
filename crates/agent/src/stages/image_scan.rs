//! The image-scanning stage: every image a container runs from is scanned once (the
//! scanner's per-layer cache makes a shared base layer cost nothing the second time),
//! its SBOM is kept in the vulnerability database, and every kept SBOM is re-matched
//! when the database changes (`rampart db update`, `rampart db import`, or this stage's
//! own scheduled update). A running workload that gains a finding at or above the alert
//! severity raises an alert naming the container.
//!
//! It also keeps, per container, which of its packages' files were executed or opened
//! (first seen), so each finding carries `in_use: true | false | unknown` with evidence
//! and reports rank in-use findings first. Packages installed after the start (drift)
//! get the same verdicts once a rescan lists their files; what the installer itself read
//! while installing does not count (see `rampart_scan::in_use::LoadedFiles`).
//!
//! Off the hot path: the stage only looks at events on its own thread (its queue drops,
//! never blocks); scanning, matching and updating run on a worker thread of its own.
//! Bounds: at most [`ImageScanConfig::max_files_per_container`] loaded files are kept
//! per container, and only files some package owns once the image is scanned.
//!
//! Output: alerts (`source: scanner`), and per container a JSON report
//! (`<state_dir>/containers/<id>.json`): the image, its findings ranked, each with its
//! in-use evidence.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_event::{Alert, Event, LifecycleAction, Priority, Severity, Workload};
use rampart_scan::in_use::{decide, loaded_path, InUseEvidence, LoadedFiles, PathMap};
use rampart_scan::model::{Package, Vulnerability};
use rampart_vulndb::{PackageRef, VulnDb, VulnMatch};
use serde::Serialize;

use rampart_event::fleet::{NodeReport, ScanReport, VulnFinding};

use super::ReportSender;
use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription};

/// How long a failed scan (no database yet, Docker away) waits before it is retried.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How the stage scans and where it keeps what it learns.
#[derive(Debug, Clone)]
pub struct ImageScanConfig {
    /// The vulnerability database (`rampart db`'s).
    pub db_path: PathBuf,
    /// Per-container reports go to `<state_dir>/containers/`.
    pub state_dir: PathBuf,
    /// The scanner's per-layer cache; None: no cache.
    pub cache_dir: Option<PathBuf>,
    /// Findings at or above this raise an alert when a running workload gains them.
    pub alert_severity: Severity,
    /// How often the worker looks for a changed database.
    pub db_poll: Duration,
    /// `rampart db update` on a schedule (None: never; the database changes only from
    /// outside).
    pub update: Option<(rampart_vulndb::update::UpdateOptions, Duration)>,
    /// The sensor reports read-only opens of shared libraries (its `filter_ro_libs` is
    /// off); when it does not, a package with libraries and nothing seen is `unknown`.
    pub libraries_visible: bool,
    /// Bound on the loaded files kept per container.
    pub max_files_per_container: usize,
    /// How often changed container reports are written.
    pub report_every: Duration,
}

impl ImageScanConfig {
    pub fn new(db_path: PathBuf, state_dir: PathBuf) -> Self {
        ImageScanConfig {
            db_path,
            state_dir,
            cache_dir: None,
            alert_severity: Severity::High,
            db_poll: Duration::from_secs(1),
            update: None,
            libraries_visible: false,
            max_files_per_container: 16_384,
            report_every: Duration::from_secs(2),
        }
    }
}

/// A scan the worker is asked for: the image a container runs and the latest process
/// seen in it (its `/proc/PID/root` is where package file lists are read; the first
/// process may be long gone by the time the worker gets there).
struct ScanRequest {
    image_key: String,
    image_ref: String,
    latest_pid: Arc<AtomicU32>,
}

/// A container whose package databases were written: rescan its filesystem for what
/// was installed after it started. Or one that is gone: its drift is no longer
/// re-matched.
enum DriftRequest {
    Rescan {
        container_id: String,
        image_key: String,
    },
    Forget {
        container_id: String,
    },
}

/// Most containers whose drift packages the worker keeps for re-matching.
const MAX_DRIFTED_CONTAINERS: usize = 4096;

/// What a container has that its image had not: packages installed at run time (with
/// their findings) and binaries dropped in and executed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Drift {
    pub packages: Vec<Package>,
    pub vulnerabilities: Vec<Vulnerability>,
    pub binaries: Vec<DroppedBinary>,
}

/// An executable that was not in the image (the sensor saw it run from the container's
/// writable layer).
#[derive(Debug, Clone, Serialize)]
pub struct DroppedBinary {
    pub path: String,
    pub first_seen_ns: u64,
}

/// Most dropped binaries kept per container.
const MAX_DROPPED_BINARIES: usize = 256;

/// Quiet time after the last write to a package database before the drift rescan, so
/// one `pip install` or `apt-get install` makes one rescan.
const DRIFT_QUIET: Duration = Duration::from_secs(2);

/// True for files package managers write when they install: Python site directories,
/// dpkg's and apk's databases, rpm's, node modules, RubyGems' gemspecs.
fn is_package_database(path: &str) -> bool {
    path.contains("/dist-packages/")
        || path.contains("/site-packages/")
        || path.starts_with("/var/lib/dpkg/")
        || path.starts_with("/lib/apk/db/")
        || path.starts_with("/var/lib/rpm/")
        || path.contains("/node_modules/")
        || path.contains("/specifications/")
}

/// What the worker tells the stage.
enum WorkerNews {
    /// A drift rescan of a container: packages not in its image, and their findings;
    /// with the packages' file lists after a rescan (None after a re-match: unchanged).
    Drifted {
        container_id: String,
        packages: Vec<Package>,
        findings: Vec<(usize, VulnMatch)>,
        files: Option<Vec<Option<Vec<String>>>>,
    },
    /// An image was scanned: its packages, who owns which file, and the findings.
    Scanned {
        image_key: String,
        image: Arc<ImageFacts>,
    },
    /// The database changed and these findings are new for the image.
    Gained {
        image_key: String,
        image: Arc<ImageFacts>,
        gained: Vec<usize>,
    },
    Failed {
        image_key: String,
        error: String,
    },
}

/// What is known about one scanned image.
#[derive(Debug)]
struct ImageFacts {
    image_ref: String,
    image_id: String,
    packages: Vec<Package>,
    /// Package files (container paths) → package index.
    owners: Arc<PathMap<usize>>,
    /// Packages whose file list could be read.
    files_known: Vec<Option<Vec<String>>>,
    /// Current findings (package index, match).
    findings: Vec<(usize, VulnMatch)>,
    /// The image's SBOM as CycloneDX 1.6 and SPDX 2.3 JSON (for central), each when
    /// within [`MAX_SBOM_BYTES`].
    sbom_cyclonedx: Option<Arc<str>>,
    sbom_spdx: Option<Arc<str>>,
    /// The image's layers (diff id, the instruction that made it), base first: where
    /// a package's layer sits.
    layers: Vec<(String, Option<String>)>,
    /// When each finding (package index, id) was first found, kept across re-matches.
    first_seen: HashMap<(usize, String), u64>,
    /// The database's last update when matched (ns; 0: unknown).
    db_updated_ns: u64,
}

/// The database's last import or update check, in ns (0: unknown).
fn db_updated_ns(db: &VulnDb) -> u64 {
    db.freshness()
        .ok()
        .and_then(|f| f.updated_at)
        .and_then(|s| u64::try_from(s).ok())
        .map_or(0, |s| s.saturating_mul(1_000_000_000))
}

/// Most package files kept per image (the owners map every container of the image
/// shares); a package whose list would pass it gets `unknown`.
const MAX_OWNED_FILES_PER_IMAGE: usize = 1_000_000;

/// An SBOM document larger than this is not sent to central (a bus message is
/// bounded); the scan result still is.
const MAX_SBOM_BYTES: usize = 256 << 10;

/// Per running container.
struct ContainerState {
    /// The first event seen from it: the alert's context (process, container).
    first_event: Arc<Event>,
    image_key: String,
    image: Option<Arc<ImageFacts>>,
    /// Loaded file → first seen (ns); before the image is scanned every file is kept
    /// (up to the bound), after only files some package owns.
    files: LoadedFiles,
    dirty: bool,
    latest_pid: Arc<AtomicU32>,
    /// When a package database was last written (a drift rescan is due after a quiet).
    drift_written: Option<Instant>,
    drift_packages: Vec<Package>,
    drift_findings: Vec<(usize, VulnMatch)>,
    /// The drift packages' file lists (as `ImageFacts::files_known`).
    drift_files: Vec<Option<Vec<String>>>,
    dropped: Vec<DroppedBinary>,
}

/// The scanning stage (see the module doc).
pub struct ImageScanStage {
    config: ImageScanConfig,
    requests: Option<SyncSender<ScanRequest>>,
    drift_requests: Option<SyncSender<DriftRequest>>,
    news: Option<Receiver<WorkerNews>>,
    worker: Option<std::thread::JoinHandle<()>>,
    containers: PathMap<ContainerState>,
    /// Images scanned so far: a container started later from one of them gets its
    /// facts at once.
    images: HashMap<String, Arc<ImageFacts>>,
    requested: HashSet<String>,
    /// Images whose scan failed, and when: asked again only after [`RETRY_AFTER`].
    failed: HashMap<String, Instant>,
    last_report: Instant,
    /// Scan requests dropped because the worker's queue was full (counted, retried on
    /// the container's next event).
    pub dropped_requests: u64,
    /// Scan results go to central through the bus publisher.
    reports: Option<ReportSender>,
    /// What was last sent per container (a digest of its findings and their in-use
    /// verdicts): a result goes again only when that changes.
    sent: HashMap<String, u64>,
}

impl ImageScanStage {
    pub fn new(config: ImageScanConfig) -> Self {
        ImageScanStage {
            config,
            requests: None,
            drift_requests: None,
            news: None,
            worker: None,
            containers: PathMap::default(),
            images: HashMap::new(),
            requested: HashSet::new(),
            failed: HashMap::new(),
            last_report: Instant::now(),
            dropped_requests: 0,
            reports: None,
            sent: HashMap::new(),
        }
    }

    /// Sends each container's scan result (findings with in-use verdicts, the image's
    /// SBOM) to central when it changes.
    pub fn with_reports(mut self, reports: ReportSender) -> Self {
        self.reports = Some(reports);
        self
    }

    fn observe(&mut self, event: &Arc<Event>) {
        let Workload::Container(container) = event.container.as_ref() else {
            return;
        };
        if container.id.is_empty() {
            return;
        }
        let image_ref: &str = if !container.image_digest.is_empty() {
            &container.image_digest
        } else {
            &container.image
        };
        if image_ref.is_empty() {
            return;
        }
        let bound = self.config.max_files_per_container;
        // Looked up without allocating: this runs for every event of every container.
        if !self.containers.contains_key(container.id.as_str()) {
            let image = self.images.get(image_ref).cloned();
            let mut files = LoadedFiles::default();
            if let Some(image) = &image {
                files.restrict_to(Arc::clone(&image.owners));
            }
            self.containers.insert(
                container.id.clone(),
                ContainerState {
                    first_event: Arc::clone(event),
                    image_key: image_ref.to_string(),
                    image,
                    files,
                    dirty: true,
                    latest_pid: Arc::new(AtomicU32::new(0)),
                    drift_written: None,
                    drift_packages: Vec::new(),
                    drift_findings: Vec::new(),
                    drift_files: Vec::new(),
                    dropped: Vec::new(),
                },
            );
        }
        let Some(state) = self.containers.get_mut(container.id.as_str()) else {
            return;
        };
        if let Some(process) = &event.process {
            state.latest_pid.store(process.pid, Ordering::Relaxed);
        }
        if state.image.is_none() {
            let retry_later = self
                .failed
                .get(&state.image_key)
                .is_some_and(|at| at.elapsed() < RETRY_AFTER);
            if !retry_later && !self.requested.contains(&state.image_key) {
                if let Some(requests) = &self.requests {
                    let request = ScanRequest {
                        image_key: state.image_key.clone(),
                        image_ref: image_ref.to_string(),
                        latest_pid: Arc::clone(&state.latest_pid),
                    };
                    match requests.try_send(request) {
                        Ok(()) => {
                            self.requested.insert(state.image_key.clone());
                        }
                        Err(_) => self.dropped_requests += 1,
                    }
                }
            }
        }
        if let Some(path) = loaded_path(event) {
            if state.files.fold(path, event.ts_ns, bound) {
                state.dirty = true;
            }
        }
        match &event.payload {
            rampart_event::Payload::FileOpen {
                path, access, ret, ..
            } if *ret >= 0 && (access.write || access.create) && is_package_database(path) => {
                state.drift_written = Some(Instant::now());
                state.files.expect_drift(event.ts_ns);
            }
            rampart_event::Payload::Exec { filename, .. } => {
                let upper = event.process.as_ref().is_some_and(|p| p.exe_upper_layer);
                if upper
                    && state.dropped.len() < MAX_DROPPED_BINARIES
                    && !state.dropped.iter().any(|d| &d.path == filename)
                {
                    state.dropped.push(DroppedBinary {
                        path: filename.clone(),
                        first_seen_ns: event.ts_ns,
                    });
                    state.dirty = true;
                }
            }
            _ => {}
        }
    }

    fn forget(&mut self, container_id: &str) {
        if let Some(state) = self.containers.remove(container_id) {
            let _ = std::fs::remove_file(self.report_path(container_id));
            if !state.drift_packages.is_empty() {
                if let Some(drift_requests) = &self.drift_requests {
                    // A full queue leaves the entry until the worker's bound evicts it.
                    let _ = drift_requests.try_send(DriftRequest::Forget {
                        container_id: container_id.to_string(),
                    });
                }
            }
        }
    }

    fn report_path(&self, container_id: &str) -> PathBuf {
        self.config
            .state_dir
            .join("containers")
            .join(format!("{container_id}.json"))
    }

    fn apply_news(&mut self, news: WorkerNews, ctx: &StageContext) {
        match news {
            WorkerNews::Drifted {
                container_id,
                packages,
                findings,
                files,
            } => {
                let threshold = self.config.alert_severity;
                let libraries_visible = self.config.libraries_visible;
                let bound = self.config.max_files_per_container;
                let Some(state) = self.containers.get_mut(&container_id) else {
                    return;
                };
                let Some(image) = state.image.clone() else {
                    return;
                };
                if let Some(files) = files {
                    // The new packages' files are kept from now on, and those read since
                    // the installer finished count as loaded.
                    let mut owners = PathMap::default();
                    for (index, list) in files.iter().enumerate() {
                        for file in list.iter().flatten() {
                            owners.entry(file.clone()).or_insert(index);
                        }
                    }
                    state
                        .files
                        .adopt_drift(Arc::new(owners), state.drift_written.is_some(), bound);
                    state.drift_files = files;
                }
                let known: HashSet<(String, String, String)> = state
                    .drift_findings
                    .iter()
                    .filter_map(|(i, m)| {
                        let p = state.drift_packages.get(*i)?;
                        Some((p.name.clone(), p.full_version(), m.id.clone()))
                    })
                    .collect();
                for (index, finding) in &findings {
                    let Some(package) = packages.get(*index) else {
                        continue;
                    };
                    let seen = (
                        package.name.clone(),
                        package.full_version(),
                        finding.id.clone(),
                    );
                    if finding.severity >= threshold && !known.contains(&seen) {
                        let evidence = drift_in_use(state, *index, libraries_visible);
                        ctx.emit_alert(vulnerability_alert(
                            &container_id,
                            state,
                            &image,
                            finding,
                            &evidence,
                        ));
                    }
                }
                state.drift_packages = packages;
                state.drift_findings = findings;
                state.dirty = true;
            }
            WorkerNews::Scanned { image_key, image } => {
                self.images.insert(image_key.clone(), Arc::clone(&image));
                for state in self.containers.values_mut() {
                    if state.image_key == image_key {
                        // Keep only files some package owns: the bound then holds
                        // package files, not every config file the app reads.
                        state.files.restrict_to(Arc::clone(&image.owners));
                        state.image = Some(Arc::clone(&image));
                        state.dirty = true;
                    }
                }
            }
            WorkerNews::Gained {
                image_key,
                image,
                gained,
            } => {
                self.images.insert(image_key.clone(), Arc::clone(&image));
                let threshold = self.config.alert_severity;
                let libraries_visible = self.config.libraries_visible;
                for (id, state) in self.containers.iter_mut() {
                    if state.image_key != image_key {
                        continue;
                    }
                    state.image = Some(Arc::clone(&image));
                    state.dirty = true;
                    for &at in &gained {
                        let Some((package_index, finding)) = image.findings.get(at) else {
                            continue;
                        };
                        if finding.severity < threshold {
                            continue;
                        }
                        let evidence = decide(
                            image.files_known[*package_index].as_deref(),
                            &state.files.loaded,
                            libraries_visible,
                            state.files.bounded_out,
                        );
                        ctx.emit_alert(vulnerability_alert(id, state, &image, finding, &evidence));
                    }
                }
            }
            WorkerNews::Failed { image_key, error } => {
                if !self.failed.contains_key(&image_key) {
                    tracing::warn!(image = %image_key, %error, "image scan failed; retried later");
                }
                // Asked again on a later event of the container, after a while.
                self.requested.remove(&image_key);
                self.failed.insert(image_key, Instant::now());
            }
        }
    }

    fn write_reports(&mut self) {
        let dir = self.config.state_dir.join("containers");
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let libraries_visible = self.config.libraries_visible;
        for (id, state) in self.containers.iter_mut() {
            if !state.dirty {
                continue;
            }
            let Some(image) = &state.image else {
                continue;
            };
            let report = container_report(id, state, image, libraries_visible);
            if let Some(reports) = &self.reports {
                let digest = report_digest(&report);
                if self.sent.get(id.as_str()) != Some(&digest)
                    && reports.send(NodeReport::Scan(scan_result(&report, image)))
                {
                    self.sent.insert(id.clone(), digest);
                }
            }
            let path = dir.join(format!("{id}.json"));
            let tmp = dir.join(format!(".{id}.json.tmp"));
            let written = serde_json::to_vec_pretty(&report)
                .map_err(std::io::Error::other)
                .and_then(|bytes| std::fs::write(&tmp, bytes))
                .and_then(|()| std::fs::rename(&tmp, &path));
            match written {
                Ok(()) => state.dirty = false,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "writing container report")
                }
            }
        }
    }
}

/// One container's report: its image and findings, ranked in-use first.
#[derive(Debug, Serialize)]
pub struct ContainerReport {
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    pub image_id: String,
    pub packages: usize,
    /// Loaded package files seen so far.
    pub loaded_files: usize,
    pub vulnerabilities: Vec<Vulnerability>,
    /// What was added after the container started.
    pub drift: Drift,
}

fn container_report(
    id: &str,
    state: &ContainerState,
    image: &ImageFacts,
    libraries_visible: bool,
) -> ContainerReport {
    let name = match state.first_event.container.as_ref() {
        Workload::Container(c) => c.name.clone(),
        Workload::Host { .. } => String::new(),
    };
    let mut vulnerabilities: Vec<Vulnerability> = image
        .findings
        .iter()
        .filter_map(|(index, m)| {
            let package = image.packages.get(*index)?;
            let in_use = decide(
                image.files_known[*index].as_deref(),
                &state.files.loaded,
                libraries_visible,
                state.files.bounded_out,
            );
            Some(to_vulnerability(package, m, Some(in_use)))
        })
        .collect();
    rampart_scan::in_use::rank(&mut vulnerabilities);
    let mut drift_vulnerabilities: Vec<Vulnerability> = state
        .drift_findings
        .iter()
        .filter_map(|(index, m)| {
            let package = state.drift_packages.get(*index)?;
            let in_use = drift_in_use(state, *index, libraries_visible);
            Some(to_vulnerability(package, m, Some(in_use)))
        })
        .collect();
    rampart_scan::in_use::rank(&mut drift_vulnerabilities);
    ContainerReport {
        container_id: id.to_string(),
        container_name: name,
        image: image.image_ref.clone(),
        image_id: image.image_id.clone(),
        packages: image.packages.len(),
        loaded_files: state.files.loaded.len(),
        vulnerabilities,
        drift: Drift {
            packages: state.drift_packages.clone(),
            vulnerabilities: drift_vulnerabilities,
            binaries: state.dropped.clone(),
        },
    }
}

/// A drift package's verdict, decided as an image package's is.
fn drift_in_use(state: &ContainerState, index: usize, libraries_visible: bool) -> InUseEvidence {
    decide(
        state.drift_files.get(index).and_then(|f| f.as_deref()),
        &state.files.loaded,
        libraries_visible,
        state.files.bounded_out || state.files.drift_bounded_out,
    )
}

/// A digest of what central shows of a container's result.
fn report_digest(report: &ContainerReport) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&report.image_id, report.packages).hash(&mut h);
    for v in report
        .vulnerabilities
        .iter()
        .chain(&report.drift.vulnerabilities)
    {
        (&v.id, &v.package_name, &v.package_version).hash(&mut h);
        in_use_flag(v).hash(&mut h);
    }
    h.finish()
}

fn in_use_flag(v: &Vulnerability) -> Option<bool> {
    v.in_use.as_ref().and_then(|e| match e.state {
        rampart_scan::in_use::InUse::True => Some(true),
        rampart_scan::in_use::InUse::False => Some(false),
        rampart_scan::in_use::InUse::Unknown => None,
    })
}

/// A container's scan result as central keeps it.
fn scan_result(report: &ContainerReport, image: &ImageFacts) -> ScanReport {
    let ecosystems: HashMap<&str, &str> = image
        .packages
        .iter()
        .map(|p| (p.purl.as_str(), p.ecosystem.as_deref().unwrap_or_default()))
        .collect();
    // First-seen times by (purl, id): the report's findings no longer carry the
    // package index.
    let first_seen: HashMap<(&str, &str), u64> = image
        .first_seen
        .iter()
        .filter_map(|((i, id), ts)| {
            Some(((image.packages.get(*i)?.purl.as_str(), id.as_str()), *ts))
        })
        .collect();
    let layer_of = |v: &Vulnerability| {
        let layer = v.layer.as_ref()?;
        let at = image.layers.iter().position(|(d, _)| d == layer)?;
        Some((u32::try_from(at).ok()?, image.layers[at].1.clone()))
    };
    ScanReport {
        ts_ns: rampart_event::wall_ns(),
        target: format!("container:{}", report.container_id),
        image: report.image.clone(),
        image_id: report.image_id.clone(),
        container_name: report.container_name.clone(),
        packages: report.packages as u64,
        secrets: 0,
        malware: 0,
        vulnerabilities: report
            .vulnerabilities
            .iter()
            .chain(&report.drift.vulnerabilities)
            .map(|v| VulnFinding {
                id: v.id.clone(),
                aliases: v.aliases.clone(),
                package: v.package_name.clone(),
                version: v.package_version.clone(),
                ecosystem: ecosystems
                    .get(v.purl.as_str())
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
                fixed_version: v.fixed_version.clone(),
                severity: v.severity,
                summary: v.summary.clone(),
                in_use: in_use_flag(v),
                layer: v.layer.clone(),
                layer_index: layer_of(v).map(|(at, _)| at),
                layer_command: layer_of(v).and_then(|(_, command)| command),
                first_seen_ns: first_seen
                    .get(&(v.purl.as_str(), v.id.as_str()))
                    .copied()
                    .unwrap_or(0),
            })
            .collect(),
        sbom_cyclonedx: image.sbom_cyclonedx.as_deref().map(str::to_string),
        sbom_spdx: image.sbom_spdx.as_deref().map(str::to_string),
        db_updated_ns: image.db_updated_ns,
    }
}

fn to_vulnerability(
    package: &Package,
    m: &VulnMatch,
    in_use: Option<InUseEvidence>,
) -> Vulnerability {
    Vulnerability {
        id: m.id.clone(),
        aliases: m.aliases.clone(),
        summary: m.summary.clone(),
        severity: m.severity,
        cvss_score: m.cvss_score,
        fixed_version: m.fixed_version.clone(),
        purl: package.purl.clone(),
        package_name: package.name.clone(),
        package_version: package.full_version(),
        location: package.location.clone(),
        layer: package.layer.clone(),
        in_use,
    }
}

fn priority_for(severity: Severity) -> Priority {
    match severity {
        Severity::Critical => Priority::Critical,
        Severity::High => Priority::Error,
        Severity::Medium => Priority::Warning,
        Severity::Low => Priority::Notice,
        Severity::Unknown => Priority::Informational,
    }
}

fn vulnerability_alert(
    container_id: &str,
    state: &ContainerState,
    image: &ImageFacts,
    finding: &VulnMatch,
    evidence: &InUseEvidence,
) -> Alert {
    let now = crate::wall_ns();
    let (name, image_name) = match state.first_event.container.as_ref() {
        Workload::Container(c) => (c.name.clone(), c.image.clone()),
        Workload::Host { .. } => (String::new(), String::new()),
    };
    let image_name = if image_name.is_empty() {
        image.image_ref.clone()
    } else {
        image_name
    };
    let in_use = match evidence.state {
        rampart_scan::in_use::InUse::True => "true",
        rampart_scan::in_use::InUse::False => "false",
        rampart_scan::in_use::InUse::Unknown => "unknown",
    };
    let mut output_fields = std::collections::BTreeMap::new();
    let mut field = |k: &str, v: serde_json::Value| {
        output_fields.insert(k.to_string(), v);
    };
    field("vuln.id", finding.id.clone().into());
    field("vuln.aliases", finding.aliases.clone().into());
    field("vuln.severity", finding.severity.as_str().into());
    field("vuln.package", finding.package.name.clone().into());
    field("vuln.version", finding.package.version.clone().into());
    field("vuln.purl", finding.package.purl.clone().into());
    field(
        "vuln.fixed_version",
        finding
            .fixed_version
            .clone()
            .map_or(serde_json::Value::Null, Into::into),
    );
    field("vuln.in_use", in_use.into());
    if let Some(file) = &evidence.file {
        field("vuln.in_use.file", file.clone().into());
    }
    field("container.id", container_id.into());
    field("container.name", name.clone().into());
    field("container.image", image_name.clone().into());
    field("container.image.id", image.image_id.clone().into());
    Alert {
        id: format!("scan-{:016x}-{}", now, finding.id),
        ts_ns: now,
        first_ts_ns: now,
        count: 1,
        rule: "Running workload gained a vulnerability".into(),
        priority: priority_for(finding.severity),
        mitre: Vec::new(),
        tags: vec!["vulnerability".into(), "image_scan".into()],
        message: format!(
            "{} ({}) affects {} {} in container {} ({}) of image {}; in use: {in_use}{}",
            finding.id,
            finding.severity.as_str(),
            finding.package.name,
            finding.package.version,
            if name.is_empty() { container_id } else { &name },
            &container_id[..container_id.len().min(12)],
            image_name,
            finding
                .fixed_version
                .as_deref()
                .map(|v| format!("; fixed in {v}"))
                .unwrap_or_default(),
        ),
        output_fields,
        source: "scanner".into(),
        event: (*state.first_event).clone(),
        retro: false,
    }
}

impl Stage for ImageScanStage {
    fn name(&self) -> &str {
        "image_scan"
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            events: true,
            alerts: false,
            lifecycle: true,
        }
    }

    fn start(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        // Reports are a by-product: a state directory that cannot be made costs them,
        // not the node (alerts still flow).
        let reports = self.config.state_dir.join("containers");
        if let Err(e) = std::fs::create_dir_all(&reports) {
            tracing::warn!(dir = %reports.display(), error = %e, "image scan reports will not be written");
        }
        let (requests, inbox) = mpsc::sync_channel(256);
        let (drift_requests, drift_inbox) = mpsc::sync_channel(64);
        let (outbox, news) = mpsc::channel();
        let worker = Worker::new(self.config.clone(), outbox);
        let handle = std::thread::Builder::new()
            .name("image-scan".into())
            .spawn(move || worker.run(inbox, drift_inbox))
            .map_err(|e| StageError(format!("image-scan worker: {e}")))?;
        self.requests = Some(requests);
        self.drift_requests = Some(drift_requests);
        self.news = Some(news);
        self.worker = Some(handle);
        Ok(())
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        for record in &batch.records {
            match record {
                Record::Event(event) => self.observe(event),
                Record::Lifecycle(change) => {
                    if matches!(
                        change.action,
                        LifecycleAction::Die { .. } | LifecycleAction::Stop
                    ) {
                        self.forget(&change.container_id);
                    }
                }
                Record::Alert(_) => {}
            }
        }
        Ok(())
    }

    fn flush(&mut self, _now_ns: u64, ctx: &StageContext) -> Result<(), StageError> {
        let mut received = Vec::new();
        if let Some(news) = &self.news {
            while let Ok(item) = news.try_recv() {
                received.push(item);
            }
        }
        for item in received {
            self.apply_news(item, ctx);
        }
        if let Some(drift_requests) = &self.drift_requests {
            for (id, state) in self.containers.iter_mut() {
                let due = state
                    .drift_written
                    .is_some_and(|at| at.elapsed() >= DRIFT_QUIET);
                if state.image.is_none() || !due {
                    continue;
                }
                let request = DriftRequest::Rescan {
                    container_id: id.clone(),
                    image_key: state.image_key.clone(),
                };
                if drift_requests.try_send(request).is_ok() {
                    state.drift_written = None;
                }
            }
        }
        if self.last_report.elapsed() >= self.config.report_every {
            self.last_report = Instant::now();
            self.write_reports();
        }
        Ok(())
    }

    fn stop(&mut self, ctx: &StageContext) -> Result<(), StageError> {
        // Closing the queue ends the worker.
        self.requests = None;
        self.drift_requests = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        self.flush(0, ctx)?;
        self.write_reports();
        Ok(())
    }
}

/// The worker thread: scans, keeps SBOMs in the database, re-matches on change.
struct Worker {
    config: ImageScanConfig,
    outbox: mpsc::Sender<WorkerNews>,
    images: HashMap<String, Arc<ImageFacts>>,
    /// (device, inode) of the database file, and SQLite's data version: a rename by
    /// `rampart db update` changes the first, a commit by another process the second.
    db_identity: Option<(u64, u64)>,
    data_version: Option<i64>,
    last_update: Option<Instant>,
    /// Per container: its drift packages and the ids of their findings (package index,
    /// advisory), re-matched when the database changes.
    drifted: HashMap<String, (Vec<Package>, FindingIds)>,
}

impl Worker {
    fn new(config: ImageScanConfig, outbox: mpsc::Sender<WorkerNews>) -> Self {
        Worker {
            config,
            outbox,
            images: HashMap::new(),
            db_identity: None,
            data_version: None,
            last_update: None,
            drifted: HashMap::new(),
        }
    }

    fn run(mut self, inbox: Receiver<ScanRequest>, drift_inbox: Receiver<DriftRequest>) {
        let mut db = self.open_db();
        loop {
            match inbox.recv_timeout(self.config.db_poll) {
                Ok(request) => {
                    if let Some(db) = db.as_mut() {
                        self.scan(db, request);
                    } else {
                        let _ = self.outbox.send(WorkerNews::Failed {
                            image_key: request.image_key,
                            error: format!(
                                "{}: no vulnerability database (run `rampart db update` or `rampart db import`)",
                                self.config.db_path.display()
                            ),
                        });
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(request) = drift_inbox.try_recv() {
                if let Some(db) = db.as_mut() {
                    self.drift(db, request);
                }
            }
            self.maybe_update();
            if self.db_changed(db.as_ref()) {
                db = self.open_db();
                if let Some(db) = db.as_mut() {
                    self.rematch(db);
                    self.rematch_drift(db);
                }
            }
        }
    }

    fn open_db(&mut self) -> Option<VulnDb> {
        // Never created here: until `rampart db update` or `rampart db import` makes it,
        // there is nothing to match against, and nothing is scanned.
        if !self.config.db_path.is_file() {
            self.db_identity = None;
            return None;
        }
        match VulnDb::open(&self.config.db_path) {
            Ok(db) => {
                self.db_identity = file_identity(&self.config.db_path);
                self.data_version = db.data_version().ok();
                Some(db)
            }
            Err(e) => {
                tracing::warn!(db = %self.config.db_path.display(), error = %e, "opening the vulnerability database");
                None
            }
        }
    }

    fn db_changed(&self, db: Option<&VulnDb>) -> bool {
        if file_identity(&self.config.db_path) != self.db_identity {
            return true;
        }
        match db {
            Some(db) => db.data_version().ok() != self.data_version,
            None => false,
        }
    }

    fn maybe_update(&mut self) {
        let Some((options, every)) = &self.config.update else {
            return;
        };
        if self.last_update.is_some_and(|at| at.elapsed() < *every) {
            return;
        }
        self.last_update = Some(Instant::now());
        match rampart_vulndb::update::update(&self.config.db_path, options, &mut |_| {}) {
            Ok(report) => tracing::info!(
                replaced = report.replaced,
                new_findings = report.rematch.new_findings.len(),
                "vulnerability database updated"
            ),
            Err(e) => tracing::warn!(error = %e, "vulnerability database update failed"),
        }
    }

    fn scan(&mut self, db: &mut VulnDb, request: ScanRequest) {
        if let Some(image) = self.images.get(&request.image_key) {
            let _ = self.outbox.send(WorkerNews::Scanned {
                image_key: request.image_key,
                image: Arc::clone(image),
            });
            return;
        }
        let started = Instant::now();
        match self.scan_image(db, &request) {
            Ok(image) => {
                tracing::info!(
                    image = %request.image_ref,
                    packages = image.packages.len(),
                    findings = image.findings.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "image scanned"
                );
                let image = Arc::new(image);
                self.images
                    .insert(request.image_key.clone(), Arc::clone(&image));
                let _ = self.outbox.send(WorkerNews::Scanned {
                    image_key: request.image_key,
                    image,
                });
            }
            Err(error) => {
                let _ = self.outbox.send(WorkerNews::Failed {
                    image_key: request.image_key,
                    error,
                });
            }
        }
        // Storing the SBOM was this worker's own commit, not a database change.
        self.data_version = db.data_version().ok();
    }

    fn scan_image(&self, db: &mut VulnDb, request: &ScanRequest) -> Result<ImageFacts, String> {
        let options = rampart_scan::ScanOptions {
            limits: rampart_scan::Limits::default(),
            cache_root: self.config.cache_dir.clone(),
            content_scanner: None,
            malware_rules: None,
            progress: None,
        };
        let target = rampart_scan::Target::DockerImage(request.image_ref.clone());
        let report = rampart_scan::scan(&target, &request.image_ref, &options)
            .map_err(|e| format!("scanning {}: {e}", request.image_ref))?;
        let image_id = report
            .target
            .image_id
            .clone()
            .unwrap_or_else(|| request.image_ref.clone());
        let refs = package_refs(&report.packages);
        let sbom_id = format!("image:{image_id}");
        let matches = db
            .store_sbom(
                &sbom_id,
                &refs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            )
            .map_err(|e| format!("storing the SBOM: {e}"))?;
        let findings = attribute(&refs, matches);
        let root = match request.latest_pid.load(Ordering::Relaxed) {
            0 => None,
            pid => Some(rampart_scan::in_use::proc_root(pid)).filter(|r| r.exists()),
        };
        let files_known = package_file_lists(&report.packages, root.as_deref());
        let mut owners = PathMap::default();
        for (index, files) in files_known.iter().enumerate() {
            for file in files.iter().flatten() {
                owners.entry(file.clone()).or_insert(index);
            }
        }
        let document = |doc: serde_json::Value| {
            serde_json::to_string(&doc)
                .ok()
                .filter(|d| d.len() <= MAX_SBOM_BYTES)
                .map(Arc::<str>::from)
        };
        let sbom_cyclonedx = document(rampart_scan::output::cyclonedx::document(&report));
        let sbom_spdx = document(rampart_scan::output::spdx::document(&report));
        let now = crate::wall_ns();
        let first_seen = findings
            .iter()
            .map(|(i, m)| ((*i, m.id.clone()), now))
            .collect();
        Ok(ImageFacts {
            sbom_cyclonedx,
            sbom_spdx,
            image_ref: request.image_ref.clone(),
            image_id,
            packages: report.packages,
            owners: Arc::new(owners),
            files_known,
            findings,
            layers: report
                .target
                .layers
                .iter()
                .map(|l| (l.diff_id.clone(), l.command.clone()))
                .collect(),
            first_seen,
            db_updated_ns: db_updated_ns(db),
        })
    }

    /// Rescans a running container's filesystem; what its image did not have is drift.
    fn drift(&mut self, db: &mut VulnDb, request: DriftRequest) {
        let (container_id, image_key) = match request {
            DriftRequest::Rescan {
                container_id,
                image_key,
            } => (container_id, image_key),
            DriftRequest::Forget { container_id } => {
                self.drifted.remove(&container_id);
                return;
            }
        };
        let Some(image) = self.images.get(&image_key).cloned() else {
            return;
        };
        let options = rampart_scan::ScanOptions {
            limits: rampart_scan::Limits::default(),
            cache_root: None,
            content_scanner: None,
            malware_rules: None,
            progress: None,
        };
        let target = rampart_scan::Target::Container(container_id.clone());
        let report = match rampart_scan::scan(&target, &container_id, &options) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(container = %container_id, error = %e, "drift rescan failed");
                return;
            }
        };
        let key = |p: &Package| (p.kind, p.name.clone(), p.full_version(), p.location.clone());
        let in_image: HashSet<_> = image.packages.iter().map(key).collect();
        let packages: Vec<Package> = report
            .packages
            .into_iter()
            .filter(|p| !in_image.contains(&key(p)))
            .collect();
        let findings = match_drift(db, &packages);
        tracing::info!(container = %container_id, packages = packages.len(), findings = findings.len(), "drift rescan");
        // Kept for re-matching on a database change, as image SBOMs are.
        if self.drifted.len() >= MAX_DRIFTED_CONTAINERS && !self.drifted.contains_key(&container_id)
        {
            tracing::warn!(container = %container_id, "drift not kept for re-matching: too many drifted containers");
        } else {
            self.drifted.insert(
                container_id.clone(),
                (packages.clone(), finding_ids(&findings)),
            );
        }
        // Read under the root of the container's first process, which is running
        // (the installer, the latest process seen, may be gone).
        let root = rampart_scan::docker::container_root(&container_id).ok();
        let files = package_file_lists(&packages, root.as_deref());
        let _ = self.outbox.send(WorkerNews::Drifted {
            container_id,
            packages,
            findings,
            files: Some(files),
        });
    }

    /// Re-matches every running container's drift packages; a container whose findings
    /// changed is sent again (the stage alerts on the new ones).
    fn rematch_drift(&mut self, db: &mut VulnDb) {
        for (container_id, (packages, ids)) in self.drifted.iter_mut() {
            let findings = match_drift(db, packages);
            let now = finding_ids(&findings);
            if now == *ids {
                continue;
            }
            tracing::info!(container = %container_id, findings = findings.len(), "drift re-matched after a database change");
            *ids = now;
            let _ = self.outbox.send(WorkerNews::Drifted {
                container_id: container_id.clone(),
                packages: packages.clone(),
                findings,
                files: None,
            });
        }
    }

    /// Re-matches every kept SBOM; tells the stage what each image gained.
    fn rematch(&mut self, db: &mut VulnDb) {
        let keys: Vec<String> = self.images.keys().cloned().collect();
        for key in keys {
            let Some(old) = self.images.get(&key).cloned() else {
                continue;
            };
            let refs = package_refs(&old.packages);
            let matches =
                match db.match_packages(&refs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "re-matching a kept SBOM");
                        continue;
                    }
                };
            let findings = attribute(&refs, matches);
            let before: HashSet<(usize, &str)> = old
                .findings
                .iter()
                .map(|(i, m)| (*i, m.id.as_str()))
                .collect();
            let gained: Vec<usize> = findings
                .iter()
                .enumerate()
                .filter(|(_, (i, m))| !before.contains(&(*i, m.id.as_str())))
                .map(|(at, _)| at)
                .collect();
            let changed = !gained.is_empty() || findings.len() != old.findings.len();
            if !changed {
                continue;
            }
            let now = crate::wall_ns();
            let first_seen = findings
                .iter()
                .map(|(i, m)| {
                    let key = (*i, m.id.clone());
                    let seen = old.first_seen.get(&key).copied().unwrap_or(now);
                    (key, seen)
                })
                .collect();
            let image = Arc::new(ImageFacts {
                image_ref: old.image_ref.clone(),
                image_id: old.image_id.clone(),
                packages: old.packages.clone(),
                owners: Arc::clone(&old.owners),
                files_known: old.files_known.clone(),
                findings,
                sbom_cyclonedx: old.sbom_cyclonedx.clone(),
                sbom_spdx: old.sbom_spdx.clone(),
                layers: old.layers.clone(),
                first_seen,
                db_updated_ns: db_updated_ns(db),
            });
            tracing::info!(image = %image.image_ref, gained = gained.len(), "re-matched after a database change");
            self.images.insert(key.clone(), Arc::clone(&image));
            let _ = self.outbox.send(WorkerNews::Gained {
                image_key: key,
                image,
                gained,
            });
        }
    }
}

/// Drift packages matched against the database (none when it cannot answer).
/// The file lists of `packages`, read under a container's root (None: none known).
/// Past [`MAX_OWNED_FILES_PER_IMAGE`] in all a package's list is not kept: its verdict
/// is unknown, and memory stays bounded.
fn package_file_lists(packages: &[Package], root: Option<&Path>) -> Vec<Option<Vec<String>>> {
    let Some(root) = root else {
        return vec![None; packages.len()];
    };
    let mut lists = rampart_scan::in_use::FileLists::new(root);
    let mut total = 0usize;
    packages
        .iter()
        .map(|p| {
            let files = lists.files(p)?;
            total += files.len();
            (total <= MAX_OWNED_FILES_PER_IMAGE).then_some(files)
        })
        .collect()
}

fn match_drift(db: &mut VulnDb, packages: &[Package]) -> Vec<(usize, VulnMatch)> {
    let refs = package_refs(packages);
    match db.match_packages(&refs.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>()) {
        Ok(matches) => attribute(&refs, matches),
        Err(e) => {
            tracing::warn!(error = %e, "matching drift packages");
            Vec::new()
        }
    }
}

/// A set of findings by package index and advisory id.
type FindingIds = HashSet<(usize, String)>;

fn finding_ids(findings: &[(usize, VulnMatch)]) -> FindingIds {
    findings.iter().map(|(i, m)| (*i, m.id.clone())).collect()
}

/// Queries for the packages with a known ecosystem, with their index in `packages`.
fn package_refs(packages: &[Package]) -> Vec<(usize, PackageRef)> {
    let (queries, origin) = rampart_scan::vuln::queries(packages);
    queries
        .into_iter()
        .zip(origin)
        .map(|(q, index)| {
            (
                index,
                PackageRef {
                    ecosystem: q.ecosystem,
                    name: q.name,
                    version: q.version,
                    source_name: q.source_name,
                    purl: q.purl,
                },
            )
        })
        .collect()
}

/// Matches back onto package indexes (one package may sit at several locations).
fn attribute(refs: &[(usize, PackageRef)], matches: Vec<VulnMatch>) -> Vec<(usize, VulnMatch)> {
    let mut by_ref: HashMap<&PackageRef, Vec<usize>> = HashMap::new();
    for (index, r) in refs {
        by_ref.entry(r).or_default().push(*index);
    }
    let mut out = Vec::new();
    for m in matches {
        for &index in by_ref
            .get(&m.package)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            out.push((index, m.clone()));
        }
    }
    out.sort_by(|a, b| {
        b.1.severity
            .cmp(&a.1.severity)
            .then_with(|| a.1.id.cmp(&b.1.id))
    });
    out
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
