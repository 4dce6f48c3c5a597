//! Kill: SIGKILL a process of a container, or its whole process tree.
//!
//! Signals go through pidfds (`pidfd_open` + `pidfd_send_signal`), so a pid reused
//! between the check and the signal is never hit: the pidfd is opened first and the
//! process re-checked through it. A tree is stopped top-down first (SIGSTOP, repeated
//! until no new child appears), so nothing forks away while it is being killed, then
//! killed as a whole; the action returns once every process is dead.

use std::collections::BTreeSet;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::action::{Action, ActionKind, Mode, Outcome};
use crate::target::{check_process, pid_in_container, ppid};
use crate::{RespondError, Target};

/// How long to wait for the killed processes to be gone.
const DEATH_TIMEOUT: Duration = Duration::from_secs(2);

/// SIGKILL the target process, or its tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kill {
    /// The process and every descendant.
    pub tree: bool,
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_signal(fd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until the process behind the pidfd has exited (the pidfd becomes readable).
fn wait_dead(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || Instant::now() >= deadline {
            return false;
        }
    }
}

/// Children of `pid`, from `/proc/<pid>/task/*/children` where the kernel has it,
/// else by scanning every process's parent.
fn children(pid: u32) -> Vec<u32> {
    let tasks = format!("/proc/{pid}/task");
    if let Ok(dir) = fs::read_dir(&tasks) {
        let mut out = Vec::new();
        let mut any = false;
        for t in dir.filter_map(Result::ok) {
            if let Ok(text) = fs::read_to_string(t.path().join("children")) {
                any = true;
                out.extend(
                    text.split_whitespace()
                        .filter_map(|s| s.parse::<u32>().ok()),
                );
            }
        }
        if any {
            return out;
        }
    }
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| ppid(*p) == Some(pid))
                .collect()
        })
        .unwrap_or_default()
}

impl Kill {
    /// The processes a tree kill would reach now (the target first).
    fn tree_of(root: u32) -> Vec<u32> {
        let mut out = vec![root];
        let mut i = 0;
        while i < out.len() && out.len() < 65_536 {
            let kids = children(out[i]);
            for k in kids {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            i += 1;
        }
        out
    }
}

impl Action for Kill {
    fn kind(&self) -> ActionKind {
        ActionKind::Kill
    }

    fn apply(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(ActionKind::Kill));
        }
        target.check_container()?;
        let p = target.process.as_ref().ok_or(RespondError::NoProcess)?;
        check_process(p, &target.container_id)?;
        let what = if self.tree { "process tree" } else { "process" };
        if mode == Mode::DryRun {
            let pids = if self.tree {
                Self::tree_of(p.pid)
            } else {
                vec![p.pid]
            };
            let mut o = Outcome::new(
                ActionKind::Kill,
                mode,
                "pidfd",
                format!(
                    "would SIGKILL {what} of pid {} ({} processes)",
                    p.pid,
                    pids.len()
                ),
            );
            o.pids = pids;
            return Ok(o);
        }
        let root = pidfd_open(p.pid).map_err(RespondError::io(format!("pidfd_open {}", p.pid)))?;
        // Re-checked through the pidfd: the pid cannot be reused while it is open.
        check_process(p, &target.container_id)?;
        let mut held: Vec<(u32, OwnedFd)> = vec![(p.pid, root)];
        if self.tree {
            // Stop first, so nothing forks away while the tree is being collected.
            let mut seen: BTreeSet<u32> = BTreeSet::from([p.pid]);
            let _ = pidfd_signal(&held[0].1, libc::SIGSTOP);
            for _round in 0..16 {
                let mut new = false;
                for pid in Self::tree_of(p.pid) {
                    if !seen.insert(pid) || !pid_in_container(pid, &target.container_id) {
                        continue;
                    }
                    if let Ok(fd) = pidfd_open(pid) {
                        let _ = pidfd_signal(&fd, libc::SIGSTOP);
                        held.push((pid, fd));
                        new = true;
                    }
                }
                if !new {
                    break;
                }
            }
        }
        for (pid, fd) in &held {
            if let Err(e) = pidfd_signal(fd, libc::SIGKILL) {
                // ESRCH: it died on its own meanwhile.
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(RespondError::io(format!("SIGKILL {pid}"))(e));
                }
            }
        }
        let deadline = Instant::now() + DEATH_TIMEOUT;
        for (pid, fd) in &held {
            if !wait_dead(fd, deadline) {
                return Err(RespondError::Timeout {
                    what: format!("pid {pid} to die"),
                    ms: DEATH_TIMEOUT.as_millis() as u64,
                });
            }
        }
        let pids: Vec<u32> = held.iter().map(|(p, _)| *p).collect();
        let mut o = Outcome::new(
            ActionKind::Kill,
            mode,
            "pidfd",
            format!(
                "SIGKILL {what} of pid {}: {} processes dead",
                p.pid,
                pids.len()
            ),
        );
        o.pids = pids;
        Ok(o)
    }
}
