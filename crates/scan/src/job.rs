//! One `rampart scan` run as a library call: a [`ScanJob`] (the target and what to do
//! with it: database, ignore file, secret rules, format, threshold) in, a [`JobOutcome`]
//! (the rendered report, the notes for the user, whether the threshold tripped) out.
//! Parsing the command line and writing the output are the `rampart` binary's.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::catalog::FileContentScanner;
use crate::model::{ScanReport, Severity};
use crate::output::{render, Format};
use crate::scanner::{scan, ProgressFn, ScanOptions, Target};
use crate::secrets::SecretContentScanner;

/// Largest file read into memory by default, in bytes.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;

/// Age past which the vulnerability database is reported stale: seven days.
pub const DEFAULT_MAX_DB_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// What to scan and how.
#[derive(Clone)]
pub struct ScanJob {
    /// An image tarball (`docker save`, OCI tar), an OCI layout directory, `docker:NAME`
    /// or a bare local image name, `container:ID`, or a directory (see [`Target::parse`]).
    pub target: String,
    pub format: Format,
    /// A finding at or above this severity sets [`JobOutcome::failed`].
    pub fail_on: Option<Severity>,
    /// YAML file of accepted risks (id, optional package, reason, expires).
    pub ignore_file: Option<PathBuf>,
    /// Vulnerability database made by `rampart db import`.
    pub db: Option<PathBuf>,
    /// Store the SBOM in `db` so later imports re-match it.
    pub store_sbom: bool,
    /// A database last updated longer ago than this is reported stale.
    pub max_db_age: std::time::Duration,
    /// With `fail_on`, an empty or missing database is not a failure.
    pub allow_empty_db: bool,
    pub no_secrets: bool,
    /// Secret rules in gitleaks TOML format instead of the built-in set.
    pub secrets_config: Option<PathBuf>,
    /// YARA rules file or directory (cargo feature `yara`).
    pub malware_rules: Option<PathBuf>,
    pub no_cache: bool,
    /// Per-layer cache directory; default `$RAMPART_DATA_DIR/scan-cache`.
    pub cache_dir: Option<PathBuf>,
    pub max_file_bytes: u64,
    pub progress: Option<ProgressFn>,
}

impl ScanJob {
    /// A job with the defaults of `rampart scan TARGET`: table format, built-in secret
    /// rules, the default cache, no database.
    pub fn new(target: impl Into<String>) -> Self {
        ScanJob {
            target: target.into(),
            format: Format::Table,
            fail_on: None,
            ignore_file: None,
            db: None,
            store_sbom: false,
            max_db_age: DEFAULT_MAX_DB_AGE,
            allow_empty_db: false,
            no_secrets: false,
            secrets_config: None,
            malware_rules: None,
            no_cache: false,
            cache_dir: None,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            progress: None,
        }
    }
}

/// What a job produced.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    /// Findings after the ignore file was applied.
    pub report: ScanReport,
    /// The report rendered in the job's format, ending with a newline.
    pub text: String,
    /// Notes and warnings for the user (standard error), in order.
    pub diagnostics: Vec<String>,
    /// True when a remaining finding is at or above the job's `fail_on`.
    pub failed: bool,
}

/// The id a stored SBOM goes by, which `rampart db import` prints next to new findings:
/// images as `NAME@IMAGE-ID` (first tag, else the target as given; re-scanning the same
/// image under the same name replaces its SBOM), anything else by the target as given.
pub fn sbom_id(report: &ScanReport, target: &str) -> String {
    match &report.target.image_id {
        Some(image_id) => {
            let name = report
                .target
                .repo_tags
                .first()
                .map(String::as_str)
                .unwrap_or(target);
            format!("{name}@{image_id}")
        }
        None => target.to_string(),
    }
}

/// True when a remaining finding is at or above `threshold`.
pub fn fails(report: &ScanReport, threshold: Severity) -> bool {
    report
        .vulnerabilities
        .iter()
        .any(|v| v.severity >= threshold)
        || report
            .content_findings
            .iter()
            .any(|f| f.severity >= threshold)
}

/// Runs a scan job: scan, match, apply the ignore file, render. Errors (unreadable
/// target, bad ignore file, missing database) are returned, with what was being done
/// as context. Call it outside an async context or from `spawn_blocking`.
pub fn run_job(job: &ScanJob) -> anyhow::Result<JobOutcome> {
    let mut diagnostics = Vec::new();
    if cfg!(not(feature = "yara")) && job.malware_rules.is_some() {
        anyhow::bail!(
            "--malware-rules: this rampart was built without YARA support; \
             rebuild it with `cargo build --features yara`"
        );
    }
    let rules = match &job.ignore_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            crate::ignore::parse(&path.display().to_string(), &text)?
        }
        None => Vec::new(),
    };
    // Opened before scanning, so a wrong path fails fast.
    let mut database = match &job.db {
        Some(path) => Some(crate::vuln::OsvDatabase::open(path, None)?),
        None => None,
    };
    let content_scanner: Option<Arc<dyn FileContentScanner>> = if job.no_secrets {
        None
    } else {
        match &job.secrets_config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(Arc::new(SecretContentScanner::from_gitleaks_toml(&text)?))
            }
            None => Some(Arc::new(SecretContentScanner::builtin())),
        }
    };
    let options = ScanOptions {
        limits: crate::Limits {
            max_file_bytes: job.max_file_bytes,
            ..crate::Limits::default()
        },
        cache_root: if job.no_cache {
            None
        } else {
            job.cache_dir
                .clone()
                .or_else(crate::cache::default_cache_root)
        },
        content_scanner,
        malware_rules: job.malware_rules.clone(),
        progress: job.progress.clone(),
    };
    let target = Target::parse(&job.target);
    let mut report =
        scan(&target, &job.target, &options).with_context(|| format!("scanning {}", job.target))?;
    let freshness = match database.as_mut() {
        Some(database) => {
            if job.store_sbom {
                database.store_as(sbom_id(&report, &job.target));
            }
            crate::vuln::match_report(&mut report, database)?;
            Some(database.freshness()?)
        }
        None => None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let status =
        crate::vuln::database_status(job.db.as_deref(), freshness.as_ref(), job.max_db_age, now);
    if let Some(warning) = status.warning() {
        diagnostics.push(format!("warning: {warning}"));
    }
    let empty_db_fails =
        job.fail_on.is_some() && status.state.checked_nothing() && !job.allow_empty_db;
    if empty_db_fails {
        diagnostics.push(
            "error: --fail-on: the vulnerability database is empty or missing, so the scan \
             cannot pass; pass --allow-empty-db to accept that"
                .to_string(),
        );
    }
    report.database = Some(status);
    let applied = crate::ignore::apply(&mut report, &rules, crate::ignore::today());
    for warning in &applied.expired {
        diagnostics.push(format!("warning: {warning}"));
    }
    if applied.suppressed > 0 {
        diagnostics.push(format!(
            "{} finding(s) suppressed by {}",
            applied.suppressed,
            job.ignore_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
    if job.format != Format::Table {
        for warning in &report.warnings {
            diagnostics.push(format!("warning: {warning}"));
        }
    }
    let mut text = render(&report, job.format)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let failed = empty_db_fails
        || job
            .fail_on
            .is_some_and(|threshold| fails(&report, threshold));
    Ok(JobOutcome {
        report,
        text,
        diagnostics,
        failed,
    })
}
