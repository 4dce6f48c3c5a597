//! What can go wrong serving the plugin or reading its policy.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// A policy that cannot be used: where and why.
    #[error("{file}:{line}:{column}: {message}")]
    Policy {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("docker: {0}")]
    Docker(String),
    #[error("{0}")]
    Other(String),
}

impl AuthzError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
