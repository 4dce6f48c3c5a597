//! Freeze and thaw a container: the cgroup v2 freezer (`cgroup.freeze`), the v1
//! freezer (`freezer.state`), or Docker pause, in that order by default. The action
//! returns once the kernel reports the cgroup frozen, not when the request is written.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionKind, Mode, Outcome};
use crate::target::ContainerCgroups;
use crate::toolbox::Toolbox;
use crate::{RespondError, Target};

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which freezer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeMethod {
    /// cgroup v2, else v1, else Docker pause.
    #[default]
    Auto,
    CgroupV2,
    CgroupV1,
    DockerPause,
}

/// Freeze (apply) and thaw (undo) a container.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub method: FreezeMethod,
    pub toolbox: Arc<Toolbox>,
}

fn write(path: &Path, value: &str) -> Result<(), RespondError> {
    fs::write(path, value).map_err(RespondError::io(format!("writing {}", path.display())))
}

/// Polls `done` every 100 µs until true or the timeout.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Result<(), RespondError> {
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    while !done() {
        if Instant::now() >= deadline {
            return Err(RespondError::Timeout {
                what: what.into(),
                ms: FREEZE_TIMEOUT.as_millis() as u64,
            });
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}

fn v2_frozen(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events")).is_ok_and(|t| events_say_frozen(&t))
}

fn events_say_frozen(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "frozen 1")
}

/// Waits until `cgroup.events` says frozen (`want`) or thawed, woken by the kernel's
/// notification on that file (POLLPRI) rather than polling it: a waiter that polls
/// takes CPU from the very tasks that must run to reach the freezer. Falls back to
/// polling when the file cannot be opened.
fn wait_v2(dir: &Path, want: bool) -> Result<(), RespondError> {
    use std::io::{Read, Seek};
    use std::os::fd::AsRawFd;
    let what = if want {
        "cgroup v2 frozen"
    } else {
        "cgroup v2 thawed"
    };
    let Ok(mut file) = fs::File::open(dir.join("cgroup.events")) else {
        return wait_for(what, || v2_frozen(dir) == want);
    };
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut text = String::new();
    loop {
        text.clear();
        // Reading from the start arms the next notification.
        if file.rewind().is_err() || file.read_to_string(&mut text).is_err() {
            return wait_for(what, || v2_frozen(dir) == want);
        }
        if events_say_frozen(&text) == want {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RespondError::Timeout {
                what: what.into(),
                ms: FREEZE_TIMEOUT.as_millis() as u64,
            });
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // Capped, so a missed notification costs 10 ms at most, not the timeout.
        let ms = left.as_millis().min(10) as i32;
        // SAFETY: one valid pollfd for the call.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }
}

fn v1_state(dir: &Path) -> String {
    fs::read_to_string(dir.join("freezer.state"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether a container is frozen now, by any of the three means.
pub fn is_frozen(cg: &ContainerCgroups) -> bool {
    cg.v2.as_deref().is_some_and(v2_frozen)
        || cg
            .freezer_v1
            .as_deref()
            .is_some_and(|d| v1_state(d) == "FROZEN")
}

impl Freeze {
    fn plan(&self, cg: &ContainerCgroups) -> FreezeMethod {
        match self.method {
            FreezeMethod::Auto
                if cg
                    .v2
                    .as_ref()
                    .is_some_and(|d| d.join("cgroup.freeze").exists()) =>
            {
                FreezeMethod::CgroupV2
            }
            FreezeMethod::Auto if cg.freezer_v1.is_some() => FreezeMethod::CgroupV1,
            FreezeMethod::Auto => FreezeMethod::DockerPause,
            m => m,
        }
    }

    fn cgroups(target: &Target) -> ContainerCgroups {
        ContainerCgroups::find(&target.container_id, target.process.as_ref().map(|p| p.pid))
    }
}

fn method_name(m: FreezeMethod) -> &'static str {
    match m {
        FreezeMethod::CgroupV2 => "cgroup-v2",
        FreezeMethod::CgroupV1 => "cgroup-v1",
        FreezeMethod::DockerPause | FreezeMethod::Auto => "docker-pause",
    }
}

impl Action for Freeze {
    fn kind(&self) -> ActionKind {
        ActionKind::Freeze
    }

    fn apply(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(ActionKind::Freeze));
        }
        target.check_container()?;
        let cg = Self::cgroups(target);
        let method = self.plan(&cg);
        let name = method_name(method);
        if mode == Mode::DryRun {
            return Ok(Outcome::new(
                ActionKind::Freeze,
                mode,
                name,
                format!("would freeze {} ({name})", target.display()),
            ));
        }
        let missing = || RespondError::NoCgroup(target.container_id.clone());
        match method {
            FreezeMethod::CgroupV2 => {
                let dir = cg.v2.as_ref().ok_or_else(missing)?;
                write(&dir.join("cgroup.freeze"), "1")?;
                wait_v2(dir, true)?;
            }
            FreezeMethod::CgroupV1 => {
                let dir = cg.freezer_v1.as_ref().ok_or_else(missing)?;
                write(&dir.join("freezer.state"), "FROZEN")?;
                wait_for("cgroup v1 FROZEN", || v1_state(dir) == "FROZEN")?;
            }
            FreezeMethod::DockerPause | FreezeMethod::Auto => {
                self.toolbox.docker()?.pause(&target.container_id)?;
            }
        }
        // Remembered, so `rampart respond release --all` thaws what rampart froze.
        self.toolbox.note_frozen(&target.container_id, true);
        let mut o = Outcome::new(
            ActionKind::Freeze,
            mode,
            name,
            format!("froze {} ({name})", target.display()),
        );
        o.pids = cg.pids();
        Ok(o)
    }

    /// Thaws by whichever means froze it (all of them are checked).
    fn undo(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(ActionKind::Unfreeze));
        }
        target.check_container()?;
        let cg = Self::cgroups(target);
        let mut how = Vec::new();
        if let Some(dir) = cg.v2.as_ref() {
            if fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1") {
                how.push("cgroup-v2");
                if mode == Mode::Enforce {
                    write(&dir.join("cgroup.freeze"), "0")?;
                    wait_v2(dir, false)?;
                }
            }
        }
        if let Some(dir) = cg.freezer_v1.as_ref() {
            if v1_state(dir) != "THAWED" && !v1_state(dir).is_empty() {
                // Docker's own pause is a v1 freeze too: unpause through Docker then,
                // so its view stays right.
                let paused = self
                    .toolbox
                    .docker()
                    .and_then(|d| d.inspect(&target.container_id))
                    .is_ok_and(|s| s.paused);
                if paused {
                    how.push("docker-unpause");
                    if mode == Mode::Enforce {
                        self.toolbox.docker()?.unpause(&target.container_id)?;
                    }
                } else {
                    how.push("cgroup-v1");
                    if mode == Mode::Enforce {
                        write(&dir.join("freezer.state"), "THAWED")?;
                        wait_for("cgroup v1 THAWED", || v1_state(dir) == "THAWED")?;
                    }
                }
            }
        }
        if mode == Mode::Enforce {
            self.toolbox.note_frozen(&target.container_id, false);
        }
        let verb = if mode == Mode::Enforce {
            "thawed"
        } else {
            "would thaw"
        };
        let detail = if how.is_empty() {
            format!("{} was not frozen", target.display())
        } else {
            format!("{verb} {} ({})", target.display(), how.join(", "))
        };
        Ok(Outcome::new(
            ActionKind::Unfreeze,
            mode,
            &how.join(","),
            detail,
        ))
    }
}
