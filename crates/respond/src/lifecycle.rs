//! Stop and restart a container through the Docker API: for stateless workloads that
//! their orchestrator (or restart policy) replaces.

use std::sync::Arc;

use crate::action::{Action, ActionKind, Mode, Outcome};
use crate::toolbox::Toolbox;
use crate::{RespondError, Target};

/// Stop (SIGTERM, SIGKILL after the grace period) or restart a container.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub restart: bool,
    /// Seconds between SIGTERM and SIGKILL.
    pub grace_s: i32,
    pub toolbox: Arc<Toolbox>,
}

impl Action for Lifecycle {
    fn kind(&self) -> ActionKind {
        if self.restart {
            ActionKind::Restart
        } else {
            ActionKind::Stop
        }
    }

    fn apply(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        let kind = self.kind();
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(kind));
        }
        target.check_container()?;
        let docker = self.toolbox.docker()?;
        // Resolves and checks the container exists, in both modes.
        let state = docker.inspect(&target.container_id)?;
        let verb = kind.as_str();
        if mode == Mode::DryRun {
            return Ok(Outcome::new(
                kind,
                mode,
                "docker",
                format!(
                    "would {verb} {} (running: {}, grace {} s)",
                    target.display(),
                    state.running,
                    self.grace_s
                ),
            ));
        }
        if self.restart {
            docker.restart(&target.container_id, self.grace_s)?;
        } else {
            docker.stop(&target.container_id, self.grace_s)?;
        }
        Ok(Outcome::new(
            kind,
            mode,
            "docker",
            format!("{verb} {} done", target.display()),
        ))
    }
}
