//! `rampart scan TARGET`: the command-line front end used by the `rampart` binary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::catalog::FileContentScanner;
use crate::model::{ContentFinding, ScanReport, Severity};
use crate::output::{render, Format};
use crate::scanner::{scan, Progress, ScanOptions, Target};

/// Scan an image, a directory or a running container: SBOM, vulnerabilities, secrets,
/// malware (YARA rules, with `--malware-rules`).
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// What to scan: an image tarball (`docker save`, OCI tar), an OCI layout directory,
    /// `docker:NAME` or a bare local image name, `container:ID`, or a directory.
    pub target: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with code 1 when a finding at or above this severity remains
    /// (unknown, low, medium, high, critical).
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<Severity>,
    /// YAML file of accepted risks (id, optional package, reason, expires).
    #[arg(long, value_name = "FILE")]
    pub ignore_file: Option<PathBuf>,
    /// Vulnerability database made by `rampart db import`.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Store the SBOM in the database (`--db`) so `rampart db import` re-matches it
    /// and reports new findings when advisories change.
    #[arg(long, requires = "db")]
    pub store_sbom: bool,
    /// Do not look for secrets.
    #[arg(long)]
    pub no_secrets: bool,
    /// Secret rules in gitleaks TOML format instead of the built-in set.
    #[arg(long, value_name = "FILE")]
    pub secrets_config: Option<PathBuf>,
    /// Also scan every file with these YARA rules: a rules file or a directory of
    /// `.yar`/`.yara` files. Rules that fail to compile are reported and skipped.
    /// Needs a build with the cargo feature `yara`.
    #[arg(long, value_name = "PATH")]
    pub malware_rules: Option<PathBuf>,
    /// Never use the network. Scanning is always local; this is accepted so pipelines
    /// can state it explicitly.
    #[arg(long)]
    pub offline: bool,
    /// Do not read or write the per-layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Per-layer cache directory (default `$RAMPART_DATA_DIR/scan-cache`).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Largest file read into memory, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub max_file_bytes: u64,
}

/// Secrets from `rampart-secrets`, as a file-content scanner for the walk.
pub struct SecretContentScanner {
    scanner: rampart_secrets::SecretScanner,
    fingerprint: String,
}

impl SecretContentScanner {
    pub fn builtin() -> Self {
        let scanner = rampart_secrets::SecretScanner::builtin();
        let ids: Vec<&str> = scanner.rule_ids().collect();
        let fingerprint = format!(
            "secrets-builtin-{:x}",
            Sha256::digest(ids.join("\n").as_bytes())
        );
        SecretContentScanner {
            scanner,
            fingerprint,
        }
    }

    pub fn from_gitleaks_toml(text: &str) -> anyhow::Result<Self> {
        let scanner = rampart_secrets::SecretScanner::from_gitleaks_toml(text)?;
        let fingerprint = format!("secrets-{:x}", Sha256::digest(text.as_bytes()));
        Ok(SecretContentScanner {
            scanner,
            fingerprint,
        })
    }
}

impl FileContentScanner for SecretContentScanner {
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Binary files (judged from the first 8 KiB, as gitleaks does) get path rules only.
    fn needs_whole_file(&self, path: &str, head: &[u8]) -> bool {
        !rampart_secrets::is_binary(path, head)
    }

    fn scan(&self, path: &str, bytes: &[u8]) -> Vec<ContentFinding> {
        self.scanner
            .scan(path, bytes)
            .into_iter()
            .map(|f| ContentFinding {
                rule_id: f.rule_id,
                kind: "secret".into(),
                description: f.description,
                severity: Severity::High,
                path: f.path,
                line: u32::try_from(f.line).unwrap_or(u32::MAX),
                excerpt: f.redacted,
                layer: None,
            })
            .collect()
    }
}

fn progress_callback() -> Option<crate::scanner::ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} layers {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(Arc::new(move |progress: Progress| match progress {
        Progress::Layers(count) => bar.set_length(count as u64),
        Progress::LayerDone { diff_id, cached } => {
            bar.set_message(format!(
                "{}{}",
                diff_id.chars().take(19).collect::<String>(),
                if cached { " (cached)" } else { "" }
            ));
            bar.inc(1);
            if bar.length() == Some(bar.position()) {
                bar.finish_and_clear();
            }
        }
    }))
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

/// Run `rampart scan`; returns the process exit code (0 clean, 1 `--fail-on` tripped).
/// Errors (unreadable target, bad ignore file) are returned for the caller to print
/// and exit with 2. Call it outside an async context or from `spawn_blocking`.
pub fn run(args: ScanArgs) -> anyhow::Result<i32> {
    if cfg!(not(feature = "yara")) && args.malware_rules.is_some() {
        anyhow::bail!(
            "--malware-rules: this rampart was built without YARA support; \
             rebuild it with `cargo build --features yara`"
        );
    }
    let rules = match &args.ignore_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            crate::ignore::parse(&path.display().to_string(), &text)?
        }
        None => Vec::new(),
    };
    // Opened before scanning, so a wrong path fails fast.
    let mut database = match &args.db {
        Some(path) => Some(crate::vuln::OsvDatabase::open(path, None)?),
        None => None,
    };
    let content_scanner: Option<Arc<dyn FileContentScanner>> = if args.no_secrets {
        None
    } else {
        match &args.secrets_config {
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
            max_file_bytes: args.max_file_bytes,
            ..crate::Limits::default()
        },
        cache_root: if args.no_cache {
            None
        } else {
            args.cache_dir
                .clone()
                .or_else(crate::cache::default_cache_root)
        },
        content_scanner,
        malware_rules: args.malware_rules.clone(),
        progress: progress_callback(),
    };
    let target = Target::parse(&args.target);
    let mut report = scan(&target, &args.target, &options)
        .with_context(|| format!("scanning {}", args.target))?;
    match database.as_mut() {
        Some(database) => {
            if args.store_sbom {
                database.store_as(sbom_id(&report, &args.target));
            }
            crate::vuln::match_report(&mut report, database)?
        }
        None => eprintln!(
            "note: no vulnerability database given (--db); reporting packages and secrets only"
        ),
    }
    let applied = crate::ignore::apply(&mut report, &rules, crate::ignore::today());
    for warning in &applied.expired {
        eprintln!("warning: {warning}");
    }
    if applied.suppressed > 0 {
        eprintln!(
            "{} finding(s) suppressed by {}",
            applied.suppressed,
            args.ignore_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    if args.format != Format::Table {
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
    }
    let mut text = render(&report, args.format)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(match args.fail_on {
        Some(threshold) if fails(&report, threshold) => 1,
        _ => 0,
    })
}
