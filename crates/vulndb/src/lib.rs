//! Rampart's vulnerability database.
//!
//! This crate owns: version ordering per ecosystem ([`version`]), the import of OSV
//! records into a local SQLite database ([`VulnDb::import`]), matching packages against
//! it ([`VulnDb::match_packages`]), stored SBOMs that are re-matched when an import
//! touches their packages ([`VulnDb::rematch_after_import`]), the reports the
//! `rampart db` command prints ([`report`]), and `rampart db update` ([`update`]): the
//! only network access, fetching OSV's per-ecosystem exports over HTTPS (rustls, ring).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod matching;
pub mod osv;
pub mod report;
pub mod severity;
pub mod update;
pub mod version;

mod db;

pub use db::{
    lookup_keys, DbStats, Error, Freshness, ImportReport, NewFinding, PackageRef, RematchReport,
    Result, SourceState, VulnDb, VulnMatch,
};
pub use report::{
    default_db_path, format_import_report, format_rematch_report, import_and_rematch, ImportOutcome,
};
pub use severity::Severity;
