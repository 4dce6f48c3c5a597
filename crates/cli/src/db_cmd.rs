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
    /// Show counts of advisories, packages, SBOMs and findings.
    Stats {
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
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
