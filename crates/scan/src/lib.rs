//! rampart-scan owns the scanner's front half: reading images (`docker save` tarballs,
//! OCI layouts, local Docker images, running containers) and directories without
//! extracting them, cataloging installed packages and lockfiles layer by layer with
//! whiteouts applied and a per-layer cache, and writing the results as CycloneDX 1.6,
//! SPDX 2.3, SARIF 2.1.0, JSON or a table. Vulnerability matching (`rampart-vulndb`)
//! and secret scanning (`rampart-secrets`) plug in through [`vuln`] and
//! [`catalog::FileContentScanner`]; so do YARA malware rules (cargo feature `yara`,
//! `malware` module), given as [`ScanOptions::malware_rules`]. Which packages a running container
//! actually loaded is decided in [`in_use`] from the files the node saw it open. One `rampart scan` run
//! (scan, match, ignore file, render) is [`job::run_job`]; the command line is the
//! `rampart` binary's.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cache;
pub mod catalog;
pub mod content;
#[cfg(feature = "docker")]
pub mod docker;
pub mod error;
pub mod ignore;
pub mod image;
pub mod in_use;
pub mod job;
#[cfg(feature = "yara")]
pub mod malware;
pub mod merge;
pub mod model;
pub mod output;
pub mod purl;
pub mod scanner;
pub mod secrets;
pub mod vuln;
pub mod walk;

pub use error::{Result, ScanError};
pub use job::{run_job, JobOutcome, ScanJob};
pub use model::Limits;
pub use model::{Package, PackageKind, ScanReport, Severity};
pub use scanner::{scan, ScanOptions, Target};
pub use secrets::SecretContentScanner;
