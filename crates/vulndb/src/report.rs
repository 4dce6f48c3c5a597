//! What an import and the re-match after it did, as data and as the text `rampart db
//! import` prints, and where the database lives by default.

use std::path::{Path, PathBuf};

use crate::{Error, ImportReport, RematchReport, Result, VulnDb};

/// The database file used when none is given: `$RAMPART_DATA_DIR/vuln.db`, else
/// `/var/lib/rampart/vuln.db` when writable, else `~/.local/share/rampart/vuln.db`.
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
pub fn import_and_rematch(db: &mut VulnDb, path: &Path) -> Result<ImportOutcome> {
    let import = db.import(path)?;
    let rematch = db
        .rematch_after_import_detailed(&import)
        .map_err(|e| Error::Rematch(Box::new(e)))?;
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
