//! `rampart db …`: import OSV records and show what the database holds. The database,
//! the import and the reports are `rampart-vulndb`'s; this module parses the arguments
//! and prints.

use std::path::PathBuf;

use anyhow::Context;
use rampart_vulndb::{
    default_db_path, format_import_report, format_rematch_report, import_and_rematch, VulnDb,
};

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
    /// Download OSV's per-ecosystem exports (`<base-url>/<Ecosystem>/all.zip`) with
    /// conditional requests, check them whole, and apply them atomically (a failed update
    /// leaves the database as it was); then re-match the stored SBOMs.
    Update {
        /// Where the exports are.
        #[arg(long, value_name = "URL", default_value = rampart_vulndb::update::DEFAULT_BASE_URL)]
        base_url: String,
        /// Ecosystem to fetch (repeatable). Default: every ecosystem the scanner catalogues.
        #[arg(long = "ecosystem", value_name = "NAME")]
        ecosystems: Vec<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
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

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A download bar on a terminal, nothing otherwise.
fn update_progress() -> Box<dyn FnMut(rampart_vulndb::update::UpdateProgress<'_>)> {
    use rampart_vulndb::update::UpdateProgress;
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return Box::new(|_| {});
    }
    let style = indicatif::ProgressStyle::with_template(
        "{msg:12} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let mut bar: Option<indicatif::ProgressBar> = None;
    Box::new(move |event| match event {
        UpdateProgress::Downloading { ecosystem, total } => {
            let next = match total {
                Some(total) => indicatif::ProgressBar::new(total).with_style(style.clone()),
                None => indicatif::ProgressBar::new_spinner(),
            };
            next.set_message(ecosystem.to_string());
            bar = Some(next);
        }
        UpdateProgress::Received { bytes, .. } => {
            if let Some(bar) = &bar {
                bar.set_position(bytes);
            }
        }
        UpdateProgress::Verified { ecosystem, records } => {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
            eprintln!("{ecosystem}: {records} records verified");
        }
        UpdateProgress::NotModified { ecosystem } => eprintln!("{ecosystem}: not modified"),
        UpdateProgress::Importing { ecosystem } => eprintln!("{ecosystem}: importing"),
    })
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
        DbCommand::Update {
            base_url,
            ecosystems,
            json,
            fail_on_new,
        } => {
            drop(db);
            let mut options = rampart_vulndb::update::UpdateOptions {
                base_url,
                ..Default::default()
            };
            if !ecosystems.is_empty() {
                options.ecosystems = ecosystems;
            }
            let started = std::time::Instant::now();
            let mut progress = update_progress();
            let report = rampart_vulndb::update::update(&db_path, &options, &mut progress)
                .with_context(|| format!("updating {}", db_path.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", rampart_vulndb::update::format_update_report(&report));
                println!("database {} ({:.2?})", db_path.display(), started.elapsed());
            }
            Ok(i32::from(fail_on_new && !report.rematch.new_findings.is_empty()) * 3)
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
                for source in db.update_sources()? {
                    println!(
                        "  update {}: checked {}s ago, changed {}s ago",
                        source.ecosystem,
                        now_unix() - source.checked_at,
                        now_unix() - source.changed_at
                    );
                }
            }
            Ok(0)
        }
    }
}
