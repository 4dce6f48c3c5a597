//! `rampart db …`: import OSV records and show what the database holds.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{ImportReport, RematchReport, VulnDb};

/// Arguments of `rampart db`.
#[derive(Debug, clap::Args)]
pub struct DbArgs {
    /// Database file. Default: $RAMPART_DATA_DIR/vuln.db, else /var/lib/rampart/vuln.db
    /// when writable, else ~/.local/share/rampart/vuln.db.
    #[arg(long, global = true, value_name = "FILE")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Import OSV records (JSON or YAML) from a file, a directory or a .zip, offline,
    /// then re-match the stored SBOMs (`rampart scan --store-sbom`) whose packages the
    /// import touched and list the findings that are new.
    Import {
        /// File, directory (read recursively) or .zip of OSV records.
        path: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Exit with status 1 when any file could not be read.
        #[arg(long)]
        strict: bool,
        /// Exit with status 3 when the re-match found new findings (for alerting jobs).
        #[arg(long)]
        fail_on_new: bool,
    },
    /// Show counts of advisories, packages, SBOMs and findings.
    Stats {
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The database file used when `--db` is not given.
pub fn default_db_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAMPART_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("vuln.db");
    }
    let system = Path::new("/var/lib/rampart");
    if dir_is_writable(system) {
        return system.join("vuln.db");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/rampart/vuln.db")
}

/// Whether files can be created in `dir` (creating it if its parent allows).
fn dir_is_writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".rampart-write-probe-{}", std::process::id()));
    let writable = std::fs::File::create(&probe).is_ok();
    let _ = std::fs::remove_file(&probe);
    writable
}

/// What `rampart db import` did: the import, then the re-match of stored SBOMs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportOutcome {
    #[serde(flatten)]
    pub import: ImportReport,
    pub rematch: RematchReport,
}

/// Import `path`, then re-match the stored SBOMs holding packages the import touched.
pub fn import_and_rematch(db: &mut VulnDb, path: &Path) -> anyhow::Result<ImportOutcome> {
    let import = db.import(path)?;
    let rematch = db
        .rematch_after_import_detailed(&import)
        .context("re-matching stored SBOMs")?;
    Ok(ImportOutcome { import, rematch })
}

/// Human-readable re-match report: one line per new finding, naming the SBOM,
/// most severe first.
pub fn format_rematch_report(report: &RematchReport) -> String {
    let mut out = format!(
        "re-matched {} of {} stored SBOMs ({} packages): {} new findings, {} resolved",
        report.sboms_rematched,
        report.sboms_total,
        report.packages_rematched,
        report.new_findings.len(),
        report.resolved
    );
    let mut new: Vec<&crate::NewFinding> = report.new_findings.iter().collect();
    new.sort_by(|a, b| {
        b.finding
            .severity
            .cmp(&a.finding.severity)
            .then_with(|| a.sbom_id.cmp(&b.sbom_id))
            .then_with(|| a.finding.id.cmp(&b.finding.id))
    });
    for item in new {
        let f = &item.finding;
        out.push_str(&format!(
            "\nNEW {:<8} {} in {}: {}@{}{}",
            f.severity.as_str(),
            f.id,
            item.sbom_id,
            f.package.name,
            f.package.version,
            f.fixed_version
                .as_deref()
                .map(|v| format!(" (fixed in {v})"))
                .unwrap_or_default()
        ));
    }
    out
}

/// Human-readable import report.
pub fn format_import_report(report: &ImportReport) -> String {
    let mut out = format!(
        "imported {}: {} added, {} changed, {} withdrawn, {} unchanged; {} package keys touched",
        report.source.display(),
        report.added,
        report.changed,
        report.withdrawn,
        report.unchanged,
        report.touched_packages
    );
    if report.git_ranges_ignored > 0 {
        out.push_str(&format!(
            "\n{} GIT ranges ignored (commit ranges cannot match installed versions)",
            report.git_ranges_ignored
        ));
    }
    if !report.errors.is_empty() {
        out.push_str(&format!(
            "\n{} files could not be read:",
            report.errors.len()
        ));
        for (path, error) in &report.errors {
            out.push_str(&format!("\n  {}: {error}", path.display()));
        }
    }
    out
}

/// Runs `rampart db`; returns the process exit code.
pub fn run(args: DbArgs) -> anyhow::Result<i32> {
    let db_path = args.db.clone().unwrap_or_else(default_db_path);
    let mut db =
        VulnDb::open(&db_path).with_context(|| format!("opening {}", db_path.display()))?;
    match args.command {
        DbCommand::Import {
            path,
            json,
            strict,
            fail_on_new,
        } => {
            let started = std::time::Instant::now();
            let outcome = import_and_rematch(&mut db, &path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&outcome)?);
            } else {
                println!("{}", format_import_report(&outcome.import));
                println!("{}", format_rematch_report(&outcome.rematch));
                println!("database {} ({:.2?})", db_path.display(), started.elapsed());
            }
            Ok(if strict && !outcome.import.errors.is_empty() {
                1
            } else if fail_on_new && !outcome.rematch.new_findings.is_empty() {
                3
            } else {
                0
            })
        }
        DbCommand::Stats { json } => {
            let stats = db.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("database {}", db_path.display());
                println!(
                    "{} advisories ({} withdrawn), {} affected packages, {} imports",
                    stats.advisories, stats.withdrawn, stats.affected_packages, stats.imports
                );
                for (ecosystem, n) in &stats.ecosystems {
                    println!("  {ecosystem}: {n}");
                }
                println!("{} stored SBOMs, {} findings", stats.sboms, stats.findings);
            }
            Ok(0)
        }
    }
}
