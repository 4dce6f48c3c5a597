//! Deny exec in a container, in the kernel: by path (as the container sees it) or by
//! "not in the image" (the executable is in the overlay upper layer). BPF LSM refuses
//! the exec where the kernel allows it; elsewhere the task is killed at
//! `sched_process_exec`, before the new image runs an instruction. The outcome's
//! method says which (`bpf-lsm` or `bpf-signal`).

use std::sync::Arc;

use rampart_bpf::response::{ExecEnforcement, ExecPolicy};

use crate::action::{Action, ActionKind, Mode, Outcome};
use crate::target::ContainerCgroups;
use crate::toolbox::Toolbox;
use crate::{RespondError, Target};

#[derive(Debug, Clone)]
pub struct DenyExec {
    pub policy: ExecPolicy,
    pub toolbox: Arc<Toolbox>,
}

fn method(e: ExecEnforcement) -> &'static str {
    match e {
        ExecEnforcement::Lsm => "bpf-lsm",
        ExecEnforcement::Signal => "bpf-signal",
    }
}

impl DenyExec {
    fn cgid(target: &Target) -> Result<u64, RespondError> {
        let pid = target.process.as_ref().map(|p| p.pid);
        let cg = ContainerCgroups::find(&target.container_id, pid);
        let dir = cg
            .v2
            .ok_or_else(|| RespondError::NoCgroup(target.container_id.clone()))?;
        Ok(rampart_bpf::response::cgroup_id(&dir)?)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.policy.deny_upper_layer {
            parts.push("executables not in the image".to_string());
        }
        if !self.policy.deny_paths.is_empty() {
            parts.push(self.policy.deny_paths.join(", "));
        }
        parts.join("; ")
    }
}

impl Action for DenyExec {
    fn kind(&self) -> ActionKind {
        ActionKind::DenyExec
    }

    fn apply(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(ActionKind::DenyExec));
        }
        target.check_container()?;
        let cgid = Self::cgid(target)?;
        if mode == Mode::DryRun {
            let (e, _) = rampart_bpf::response::ResponseGuard::available_exec_enforcement();
            return Ok(Outcome::new(
                ActionKind::DenyExec,
                mode,
                method(e),
                format!(
                    "would deny exec of {} in {}",
                    self.describe(),
                    target.display()
                ),
            ));
        }
        let e = self.toolbox.guard()?.deny_exec(cgid, &self.policy)?;
        Ok(Outcome::new(
            ActionKind::DenyExec,
            mode,
            method(e),
            format!(
                "exec of {} denied in {} (cgroup {cgid})",
                self.describe(),
                target.display()
            ),
        ))
    }

    fn undo(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(ActionKind::Release));
        }
        target.check_container()?;
        let cgid = Self::cgid(target)?;
        if mode == Mode::Enforce {
            self.toolbox.guard()?.release_exec(cgid)?;
        }
        Ok(Outcome::new(
            ActionKind::Release,
            mode,
            "",
            format!("exec denial lifted from {}", target.display()),
        ))
    }
}
