//! Errors of the recorder's public API.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("recorder directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recorder catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("another process holds the recorder directory {0} for writing")]
    Locked(PathBuf),
    #[error("this recorder was opened read-only")]
    ReadOnly,
    #[error("a writer is already running on this recorder")]
    WriterRunning,
    #[error("the writer thread is gone")]
    WriterGone,
    #[error("condition: {0}")]
    Condition(String),
    #[error("rules: {0}")]
    Rules(String),
    #[error("no alert with id {0} is recorded")]
    AlertNotFound(String),
    #[error("incident bundle: {0}")]
    Bundle(String),
}
