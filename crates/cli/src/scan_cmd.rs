//! `rampart scan TARGET`: the command line of a scan job. Scanning, matching, the ignore
//! file and the report formats are `rampart-scan`'s ([`rampart_scan::run_job`]); this
//! module parses the arguments, shows progress on a terminal, prints the notes and
//! writes the report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use rampart_scan::job::DEFAULT_MAX_FILE_BYTES;
use rampart_scan::output::Format;
use rampart_scan::scanner::{Progress, ProgressFn};
use rampart_scan::{run_job, ScanJob, Severity};

/// Scan an image, a directory or a running container: SBOM, vulnerabilities, secrets,
/// malware (YARA rules, with `--malware-rules`).
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// What to scan: an image tarball (`docker save`, OCI tar), an OCI layout directory,
    /// `docker:NAME` or a bare local image name, `container:ID`, or a directory.
    pub target: String,
    /// Output format.
    #[arg(long, value_parser = crate::choice::choice(Format::NAMES), default_value = "table")]
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
    /// Vulnerability database made by `rampart db update` or `rampart db import`.
    /// Default: the one `rampart db` uses ($RAMPART_DATA_DIR/vuln.db, ...) when it exists.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// With `--fail-on`, do not fail when the vulnerability database is empty or missing
    /// (the report still says that nothing was checked).
    #[arg(long)]
    pub allow_empty_db: bool,
    /// Report the database as stale when it was last updated longer ago than this.
    #[arg(long, value_name = "DURATION", default_value = "7days", value_parser = humantime::parse_duration)]
    pub max_db_age: std::time::Duration,
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
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
}

fn progress_callback() -> Option<ProgressFn> {
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

/// Runs `rampart scan`; returns the process exit code (0 clean, 1 `--fail-on` tripped).
/// Errors (unreadable target, bad ignore file) are returned for `main` to print and
/// exit with 2.
pub fn run(args: ScanArgs) -> anyhow::Result<i32> {
    let job = ScanJob {
        target: args.target,
        format: args.format,
        fail_on: args.fail_on,
        ignore_file: args.ignore_file,
        db: args.db.or_else(|| {
            let default = rampart_vulndb::default_db_path();
            default.is_file().then_some(default)
        }),
        store_sbom: args.store_sbom,
        max_db_age: args.max_db_age,
        allow_empty_db: args.allow_empty_db,
        no_secrets: args.no_secrets,
        secrets_config: args.secrets_config,
        malware_rules: args.malware_rules,
        no_cache: args.no_cache,
        cache_dir: args.cache_dir,
        max_file_bytes: args.max_file_bytes,
        progress: progress_callback(),
    };
    let outcome = run_job(&job)?;
    for line in &outcome.diagnostics {
        eprintln!("{line}");
    }
    match &args.output {
        Some(path) => std::fs::write(path, &outcome.text)
            .with_context(|| format!("writing {}", path.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(outcome.text.as_bytes())?;
        }
    }
    Ok(i32::from(outcome.failed))
}
