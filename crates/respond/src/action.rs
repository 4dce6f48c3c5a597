//! The one trait every action implements, and what an action reports.

use serde::{Deserialize, Serialize};

use crate::{RespondError, Target};

/// What an action does when applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing: the alert stands on its own (the default).
    #[default]
    Alert,
    /// Everything but the act: the target is resolved and checked, and the record says
    /// what would have been done.
    #[serde(alias = "dry_run")]
    DryRun,
    /// The act.
    Enforce,
}

/// The kinds of action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// SIGKILL the process (or its whole tree).
    Kill,
    Freeze,
    Unfreeze,
    Stop,
    Restart,
    Quarantine,
    Block,
    DenyExec,
    Release,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kill => "kill",
            Self::Freeze => "freeze",
            Self::Unfreeze => "unfreeze",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Quarantine => "quarantine",
            Self::Block => "block",
            Self::DenyExec => "deny_exec",
            Self::Release => "release",
        }
    }
}

/// What an action did, or would have done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub kind: ActionKind,
    pub mode: Mode,
    /// The act happened (false in alert and dry-run modes).
    pub performed: bool,
    /// How: `pidfd`, `cgroup-v2`, `cgroup-v1`, `docker-pause`, `docker`, `bpf-cgroup`,
    /// `bpf-lsm`, `bpf-signal`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// What was (or would be) done, for people.
    pub detail: String,
    /// Processes acted on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    /// Wall clock (ns since the epoch) when the effect was confirmed: process dead,
    /// container frozen, rules in the kernel.
    pub completed_ns: u64,
}

impl Outcome {
    pub(crate) fn new(kind: ActionKind, mode: Mode, method: &str, detail: String) -> Self {
        Self {
            kind,
            mode,
            performed: mode == Mode::Enforce,
            method: method.to_string(),
            detail,
            pids: Vec::new(),
            completed_ns: crate::wall_ns(),
        }
    }

    /// Alert mode: nothing is done, nothing is checked.
    pub(crate) fn alert_only(kind: ActionKind) -> Self {
        Self::new(kind, Mode::Alert, "", "alert only: nothing done".into())
    }
}

/// An action on a target, in a mode. Implementations are cheap to hold and shared
/// (`Send + Sync`); each call re-checks the target, since it may have changed since
/// the event.
pub trait Action: Send + Sync {
    fn kind(&self) -> ActionKind;

    /// Applies the action. In [`Mode::Alert`] nothing is done; in [`Mode::DryRun`]
    /// the target is resolved and checked and the outcome says what would be done.
    fn apply(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError>;

    /// Undoes it (thaw, release); actions that cannot be undone (kill, stop) say so.
    fn undo(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        let _ = (target, mode);
        Err(RespondError::NotUndoable {
            action: self.kind().as_str(),
        })
    }
}
