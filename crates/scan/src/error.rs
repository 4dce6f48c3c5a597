//! Error types of the scanner library.

use std::path::PathBuf;

/// Everything that can stop a scan (or one input of it). Problems confined to one
/// file (a malformed package database, an oversized entry) are not errors: they
/// become [`crate::model::ScanWarning`]s and the scan continues.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Read {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} limit of {limit} bytes exceeded at entry {entry:?} of {context}")]
    LimitExceeded {
        what: &'static str,
        limit: u64,
        context: String,
        entry: String,
    },
    #[error("{path}: malformed image: {reason}")]
    BadImage { path: String, reason: String },
    #[error(
        "layer {expected}: content hashes to {actual}; the image is corrupt or was tampered with"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error("{path}: {reason}")]
    BadJson { path: String, reason: String },
    #[error("target {target:?} not found or not recognised: {reason}")]
    UnknownTarget { target: String, reason: String },
    #[error("docker: {0}")]
    Docker(String),
    #[error("cache: {0}")]
    Cache(String),
    #[error("malware rules: {0}")]
    MalwareRules(String),
    #[error(
        "malware rules were given, but this build has no YARA support \
         (rebuild with the cargo feature `yara`)"
    )]
    NoYaraSupport,
}

pub type Result<T, E = ScanError> = std::result::Result<T, E>;

impl ScanError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ScanError::Io {
            path: path.into(),
            source,
        }
    }
}
