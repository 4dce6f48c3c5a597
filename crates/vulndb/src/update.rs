//! `rampart db update`: fetch OSV's per-ecosystem exports (`<base>/<Ecosystem>/all.zip`)
//! and apply them to the database atomically.
//!
//! Invariants:
//! - Requests are conditional: the ETag and Last-Modified of each ecosystem's last
//!   download are kept in the database (`update_source`) and sent back as
//!   If-None-Match / If-Modified-Since; a 304 downloads nothing and only records that the
//!   data was confirmed current.
//! - A download is checked whole before anything is imported: bounded size, bounded
//!   member count and member size (hostile zips), every member's CRC, and every record
//!   member parsing as OSV. One failed ecosystem fails the whole update.
//! - The new database is built beside the live one (`<db>.new`, a copy of it plus the
//!   imports and the re-match of stored SBOMs) and renamed over it only when complete, so
//!   a failed or interrupted update leaves the old database answering.
//! - One update at a time per database (`<db>.update.lock`, an advisory file lock).
//!
//! Readers that keep the old file open (a long-running `rampart up`) see the old data
//! until they reopen the path; writes they make to the old file during an update are
//! not carried over.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::db::{Error as DbError, ImportReport, RematchReport, SourceState, VulnDb};
use crate::osv::{parse_records, RecordFormat};

/// osv.dev's public export bucket.
pub const DEFAULT_BASE_URL: &str = "https://osv-vulnerabilities.storage.googleapis.com";

/// The ecosystems the scanner catalogues and the matcher orders: distributions (by
/// source package) and language registries.
pub const DEFAULT_ECOSYSTEMS: &[&str] = &[
    "Debian",
    "Ubuntu",
    "Alpine",
    "Red Hat",
    "AlmaLinux",
    "Rocky Linux",
    "PyPI",
    "npm",
    "Go",
    "Maven",
    "crates.io",
    "RubyGems",
    "Packagist",
];

/// Bounds on what one export may be; anything beyond is rejected as hostile or broken.
#[derive(Debug, Clone)]
pub struct ExportLimits {
    /// Largest download (the compressed zip).
    pub max_download_bytes: u64,
    /// Most members in one zip.
    pub max_entries: usize,
    /// Largest uncompressed member; OSV records are a few KiB.
    pub max_entry_bytes: u64,
    /// Most uncompressed bytes in one zip.
    pub max_total_bytes: u64,
}

impl Default for ExportLimits {
    fn default() -> Self {
        ExportLimits {
            max_download_bytes: 2 << 30,
            max_entries: 2_000_000,
            max_entry_bytes: 16 << 20,
            max_total_bytes: 16 << 30,
        }
    }
}

/// What to fetch and from where.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// `<base_url>/<Ecosystem>/all.zip` is fetched for each ecosystem.
    pub base_url: String,
    pub ecosystems: Vec<String>,
    pub limits: ExportLimits,
    /// Connect and per-read timeout.
    pub timeout: Duration,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            base_url: DEFAULT_BASE_URL.to_string(),
            ecosystems: DEFAULT_ECOSYSTEMS.iter().map(|e| e.to_string()).collect(),
            limits: ExportLimits::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Progress of an update, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum UpdateProgress<'a> {
    /// A download starts; `total` is the Content-Length when the server sent one.
    Downloading {
        ecosystem: &'a str,
        total: Option<u64>,
    },
    /// `bytes` received so far for this ecosystem.
    Received {
        ecosystem: &'a str,
        bytes: u64,
    },
    NotModified {
        ecosystem: &'a str,
    },
    Verified {
        ecosystem: &'a str,
        records: usize,
    },
    Importing {
        ecosystem: &'a str,
    },
}

/// What happened to one ecosystem.
#[derive(Debug, Clone, Serialize)]
pub struct EcosystemOutcome {
    pub ecosystem: String,
    pub url: String,
    /// False when the server answered 304 Not Modified.
    pub downloaded: bool,
    pub bytes: u64,
    pub records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportReport>,
}

/// What one update did.
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    pub db: PathBuf,
    pub ecosystems: Vec<EcosystemOutcome>,
    /// True when a new database replaced the old one (something was downloaded).
    pub replaced: bool,
    /// Re-match of the stored SBOMs after all imports.
    pub rematch: RematchReport,
}

/// Why an update failed; the database at the given path is then unchanged.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url}: server answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: download larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: rejected {ecosystem} export: {reason}")]
    Corrupt {
        ecosystem: String,
        url: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: another update of this database is running")]
    Busy(PathBuf),
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UpdateError + '_ {
    move |source| UpdateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` with `suffix` appended to its file name (`vuln.db` → `vuln.db.new`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The export URL of one ecosystem (`Red Hat` → `Red%20Hat`).
pub fn export_url(base_url: &str, ecosystem: &str) -> String {
    let mut encoded = String::new();
    for b in ecosystem.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{}/{encoded}/all.zip", base_url.trim_end_matches('/'))
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Checks a downloaded export whole: member count and sizes within `limits`, every
/// member's CRC, every `.json`/`.yaml` member parsing as OSV. Returns the record count.
pub fn verify_export(path: &Path, limits: &ExportLimits) -> Result<usize, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    if archive.len() > limits.max_entries {
        return Err(format!(
            "{} members, more than the limit of {}",
            archive.len(),
            limits.max_entries
        ));
    }
    let mut records = 0usize;
    let mut total: u64 = 0;
    let mut bytes = Vec::new();
    for index in 0..archive.len() {
        let mut member = archive
            .by_index(index)
            .map_err(|e| format!("member #{index}: {e}"))?;
        if member.is_dir() {
            continue;
        }
        let name = member.name().to_string();
        if member.size() > limits.max_entry_bytes {
            return Err(format!(
                "{name}: {} bytes uncompressed, more than the limit of {}",
                member.size(),
                limits.max_entry_bytes
            ));
        }
        bytes.clear();
        // The declared size may lie: the read itself is bounded too. Reading a member to
        // its end checks its CRC.
        (&mut member)
            .take(limits.max_entry_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        if bytes.len() as u64 > limits.max_entry_bytes {
            return Err(format!(
                "{name}: more than the limit of {} bytes uncompressed",
                limits.max_entry_bytes
            ));
        }
        total += bytes.len() as u64;
        if total > limits.max_total_bytes {
            return Err(format!(
                "more than the limit of {} bytes uncompressed in all",
                limits.max_total_bytes
            ));
        }
        let Some(format) = RecordFormat::from_path(Path::new(&name)) else {
            continue;
        };
        records += parse_records(&bytes, format)
            .map_err(|e| format!("{name}: {e}"))?
            .len();
    }
    if records == 0 {
        // Importing an empty export would withdraw every advisory of the ecosystem.
        return Err("no OSV records in the archive".to_string());
    }
    Ok(records)
}

/// A download kept until the update ends.
struct Fetched {
    index: usize,
    zip: PathBuf,
}

/// Files the update created beside the database, removed unless the update completes.
struct Scratch {
    new_db: PathBuf,
    zips: Vec<PathBuf>,
}

/// Removes an SQLite database file and its companions.
fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sibling(path, suffix));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_db_files(&self.new_db);
        for zip in &self.zips {
            let _ = std::fs::remove_file(zip);
        }
    }
}

/// Installs rustls' ring provider as the process default (the workspace's one crypto
/// provider); https needs it, plain http does not.
fn install_ring_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: another provider is installed already, which is fine to keep.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Fetches the exports named in `options` and applies them to the database at
/// `db_path` (created when missing). See the module invariants.
pub fn update(
    db_path: &Path,
    options: &UpdateOptions,
    progress: &mut dyn FnMut(UpdateProgress<'_>),
) -> Result<UpdateReport, UpdateError> {
    if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let lock_path = sibling(db_path, ".update.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io_error(&lock_path))?;
    if lock.try_lock().is_err() {
        return Err(UpdateError::Busy(db_path.to_path_buf()));
    }
    // Downloads go to a fixed place per ecosystem: the import keys records by source
    // path, so the same path each time lets it withdraw records an export dropped.
    let work = sibling(db_path, ".update");
    std::fs::create_dir_all(&work).map_err(io_error(&work))?;

    let known: HashMap<String, SourceState> = if db_path.exists() {
        VulnDb::open(db_path)?
            .update_sources()?
            .into_iter()
            .map(|s| (s.ecosystem.clone(), s))
            .collect()
    } else {
        HashMap::new()
    };

    install_ring_crypto_provider();
    let client = reqwest::blocking::Client::builder()
        // The blocking client applies this to the connect and to each read, not to the
        // whole download.
        .timeout(options.timeout)
        .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(UpdateError::Client)?;

    let mut scratch = Scratch {
        new_db: sibling(db_path, ".new"),
        zips: Vec::new(),
    };
    let now = now_unix();
    let mut outcomes = Vec::new();
    let mut states = Vec::new();
    let mut fetched = Vec::new();
    for ecosystem in &options.ecosystems {
        let url = export_url(&options.base_url, ecosystem);
        let previous = known.get(ecosystem).filter(|s| s.url == url);
        let mut request = client.get(&url);
        if let Some(previous) = previous {
            if let Some(etag) = &previous.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &previous.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request.send().map_err(|source| UpdateError::Http {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            if let Some(previous) = previous {
                progress(UpdateProgress::NotModified { ecosystem });
                states.push(SourceState {
                    checked_at: now,
                    ..previous.clone()
                });
                outcomes.push(EcosystemOutcome {
                    ecosystem: ecosystem.clone(),
                    url,
                    downloaded: false,
                    bytes: 0,
                    records: 0,
                    import: None,
                });
                continue;
            }
        }
        if !status.is_success() {
            return Err(UpdateError::Status {
                url,
                status: status.as_u16(),
            });
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let limit = options.limits.max_download_bytes;
        let total = response.content_length();
        if total.is_some_and(|t| t > limit) {
            return Err(UpdateError::TooLarge { url, limit });
        }
        progress(UpdateProgress::Downloading { ecosystem, total });
        let dir = work.join(file_safe(ecosystem));
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let zip = dir.join("all.zip");
        scratch.zips.push(zip.clone());
        let bytes = download(&mut response, &zip, limit, ecosystem, &url, &mut |bytes| {
            progress(UpdateProgress::Received { ecosystem, bytes })
        })?;
        let records =
            verify_export(&zip, &options.limits).map_err(|reason| UpdateError::Corrupt {
                ecosystem: ecosystem.clone(),
                url: url.clone(),
                reason,
            })?;
        progress(UpdateProgress::Verified { ecosystem, records });
        states.push(SourceState {
            ecosystem: ecosystem.clone(),
            url: url.clone(),
            etag,
            last_modified,
            checked_at: now,
            changed_at: now,
        });
        fetched.push(Fetched {
            index: outcomes.len(),
            zip,
        });
        outcomes.push(EcosystemOutcome {
            ecosystem: ecosystem.clone(),
            url,
            downloaded: true,
            bytes,
            records,
            import: None,
        });
    }

    let mut rematch = RematchReport::default();
    if fetched.is_empty() {
        // Nothing changed upstream: only the check times move, in place.
        let db = VulnDb::open(db_path)?;
        for state in &states {
            db.set_update_source(state)?;
        }
        return Ok(UpdateReport {
            db: db_path.to_path_buf(),
            ecosystems: outcomes,
            replaced: false,
            rematch,
        });
    }

    // Left over by an update that was killed (the lock says none is running).
    remove_db_files(&scratch.new_db);
    if db_path.exists() {
        VulnDb::open(db_path)?.copy_to(&scratch.new_db)?;
    }
    {
        let mut db = VulnDb::open(&scratch.new_db)?;
        for item in &fetched {
            let outcome = &mut outcomes[item.index];
            progress(UpdateProgress::Importing {
                ecosystem: &outcome.ecosystem,
            });
            let report = db.import(&item.zip)?;
            if let Some((path, error)) = report.errors.first() {
                return Err(UpdateError::Corrupt {
                    ecosystem: outcome.ecosystem.clone(),
                    url: outcome.url.clone(),
                    reason: format!("{}: {error}", path.display()),
                });
            }
            let again = db.rematch_after_import_detailed(&report)?;
            rematch.sboms_total = again.sboms_total;
            rematch.sboms_rematched += again.sboms_rematched;
            rematch.packages_rematched += again.packages_rematched;
            rematch.resolved += again.resolved;
            rematch.new_findings.extend(again.new_findings);
            outcome.import = Some(report);
        }
        for state in &states {
            db.set_update_source(state)?;
        }
        db.checkpoint()?;
    }
    if db_path.exists() {
        // Empties the old file's write-ahead log, which would otherwise be replayed
        // onto the new file by the next opener.
        VulnDb::open(db_path)?.checkpoint()?;
    }
    std::fs::rename(&scratch.new_db, db_path).map_err(io_error(db_path))?;
    if let Some(parent) = db_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        // Makes the rename durable.
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    drop(scratch);
    drop(lock);
    Ok(UpdateReport {
        db: db_path.to_path_buf(),
        ecosystems: outcomes,
        replaced: true,
        rematch,
    })
}

/// An ecosystem name as a directory name.
fn file_safe(ecosystem: &str) -> String {
    ecosystem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Streams the response body into `path`, at most `limit` bytes; returns the size.
fn download(
    response: &mut reqwest::blocking::Response,
    path: &Path,
    limit: u64,
    ecosystem: &str,
    url: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, UpdateError> {
    let mut file = std::fs::File::create(path).map_err(io_error(path))?;
    let mut buffer = vec![0u8; 256 << 10];
    let mut total: u64 = 0;
    loop {
        let n = response
            .read(&mut buffer)
            .map_err(|e| UpdateError::Corrupt {
                ecosystem: ecosystem.to_string(),
                url: url.to_string(),
                reason: format!("reading the body: {e}"),
            })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(UpdateError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        file.write_all(&buffer[..n]).map_err(io_error(path))?;
        progress(total);
    }
    file.sync_all().map_err(io_error(path))?;
    Ok(total)
}

/// Human-readable update report.
pub fn format_update_report(report: &UpdateReport) -> String {
    let mut out = String::new();
    for item in &report.ecosystems {
        if !item.downloaded {
            out.push_str(&format!("{}: not modified\n", item.ecosystem));
            continue;
        }
        out.push_str(&format!(
            "{}: {} bytes, {} records",
            item.ecosystem, item.bytes, item.records
        ));
        if let Some(import) = &item.import {
            out.push_str(&format!(
                "; {} added, {} changed, {} withdrawn, {} unchanged",
                import.added, import.changed, import.withdrawn, import.unchanged
            ));
        }
        out.push('\n');
    }
    out.push_str(&crate::report::format_rematch_report(&report.rematch));
    out
}
