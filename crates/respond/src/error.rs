//! Why a response could not be carried out.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    /// The safety rules forbid it (host process, rampart itself, pid reused, outside
    /// the policy's scope).
    #[error("refused: {0}")]
    Refused(String),
    #[error("the target has no process to act on")]
    NoProcess,
    #[error("container {0}: no cgroup found for it")]
    NoCgroup(String),
    #[error("{action} cannot be undone")]
    NotUndoable { action: &'static str },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {ms} ms waiting for {what}")]
    Timeout { what: String, ms: u64 },
    #[error("docker: {0}")]
    Docker(String),
    #[error("kernel: {0}")]
    Bpf(#[from] rampart_bpf::BpfError),
    #[error("{file}:{line}:{column}: {message}")]
    Policy {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

impl RespondError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
