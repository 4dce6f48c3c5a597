//! Rampart's vulnerability database.
//!
//! This crate owns: version ordering per ecosystem ([`version`]), the import of OSV
//! records into a local SQLite database ([`VulnDb::import`]), matching packages against
//! it ([`VulnDb::match_packages`]), stored SBOMs that are re-matched when an import
//! touches their packages ([`VulnDb::rematch_after_import`]), and the `rampart db`
//! command ([`cli`]). It reads only local files: no network.

pub mod cli;
pub mod matching;
pub mod osv;
pub mod severity;
pub mod version;

mod db;

pub use db::{
    lookup_keys, DbStats, Error, ImportReport, NewFinding, PackageRef, RematchReport, Result,
    VulnDb, VulnMatch,
};
pub use severity::Severity;
