//! Manual response (`rampart respond …`): the command an operator gives, how it is
//! carried out (the same actions and audit as the policy's, with the operator as the
//! actor and their reason), and the local control socket through which a running
//! `rampart up` takes it.
//!
//! The socket is root only twice over: created mode 0600, and each connection's peer
//! credentials (SO_PEERCRED) must say uid 0. One JSON request line, one JSON reply
//! line. The uid in the audit record is the kernel's, not the client's word; the
//! operator's name is the client's (its login name).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_event::{Container, Event, Payload, Workload};
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, AuditRecord, AuditResult};
use crate::policy::ActionSpec;
use crate::responder::ManualRequest;
use crate::target::ProcessRef;
use crate::{ActionKind, Mode, RespondError, Responder, Target};

/// Where `rampart up` listens by default.
pub const DEFAULT_SOCKET: &str = "/run/rampart/control.sock";

/// The verbs of `rampart respond`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verb {
    Kill,
    Freeze,
    Unfreeze,
    Stop,
    Restart,
    Quarantine,
    Release,
    DenyExec,
}

/// An operator's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub verb: Verb,
    /// Container name or id; `None` only for `release --all`.
    #[serde(default)]
    pub target: Option<String>,
    /// `release --all`: everything rampart put in place, on every container.
    #[serde(default)]
    pub all: bool,
    /// kill: this process of the container (default: its main process), with its tree.
    #[serde(default)]
    pub pid: Option<u32>,
    pub reason: String,
    /// Login name as the client knows it.
    pub operator: String,
    /// deny-exec: paths as the container sees them.
    #[serde(default)]
    pub deny_paths: Vec<String>,
    /// deny-exec: anything not in the image.
    #[serde(default)]
    pub not_in_image: bool,
    /// quarantine: let DNS to the host's resolvers through.
    #[serde(default)]
    pub allow_dns: bool,
    /// stop, restart: seconds between SIGTERM and SIGKILL.
    #[serde(default)]
    pub grace_s: Option<i32>,
    #[serde(default)]
    pub dry_run: bool,
}

impl Command {
    /// Checks what can be checked before anything is touched.
    pub fn validate(&self) -> Result<(), RespondError> {
        let refuse = |m: &str| Err(RespondError::Refused(m.to_string()));
        if self.reason.trim().is_empty() {
            return refuse("a reason is required (--reason): it goes into the audit trail");
        }
        match (&self.target, self.all) {
            (Some(_), true) => return refuse("give a target or --all, not both"),
            (None, false) => return refuse("a target container (name or id) is required"),
            (None, true) if self.verb != Verb::Release => {
                return refuse("--all is for release only")
            }
            _ => {}
        }
        if self.verb == Verb::DenyExec && self.deny_paths.is_empty() && !self.not_in_image {
            return refuse("deny-exec needs --path PATH or --not-in-image");
        }
        if let Some(p) = self.deny_paths.iter().find(|p| !p.starts_with('/')) {
            return Err(RespondError::Refused(format!(
                "deny-exec paths are absolute, as the container sees them: {p:?}"
            )));
        }
        Ok(())
    }

    fn spec(&self) -> (ActionSpec, bool) {
        let grace_s = self.grace_s.unwrap_or(10);
        match self.verb {
            Verb::Kill => (ActionSpec::Kill { tree: true }, false),
            Verb::Freeze => (
                ActionSpec::Freeze {
                    method: crate::freeze::FreezeMethod::Auto,
                },
                false,
            ),
            Verb::Unfreeze => (ActionSpec::Unfreeze, false),
            Verb::Stop => (ActionSpec::Stop { grace_s }, false),
            Verb::Restart => (ActionSpec::Restart { grace_s }, false),
            Verb::Quarantine => (
                ActionSpec::Quarantine {
                    allow: Vec::new(),
                    allow_dns: self.allow_dns,
                    allow_loopback: true,
                },
                false,
            ),
            Verb::Release => (ActionSpec::Release, false),
            Verb::DenyExec => (
                ActionSpec::DenyExec {
                    deny_paths: self.deny_paths.clone(),
                    not_in_image: self.not_in_image,
                },
                false,
            ),
        }
    }
}

/// Carries out a command as `uid` (the kernel's word for who asked) and returns its
/// audit records.
pub fn execute(
    responder: &Responder,
    cmd: &Command,
    uid: u32,
) -> Result<Vec<AuditRecord>, RespondError> {
    cmd.validate()?;
    let operator = format!("{} (uid {uid})", cmd.operator);
    let mode = if cmd.dry_run {
        Mode::DryRun
    } else {
        Mode::Enforce
    };
    let Some(name) = &cmd.target else {
        return release_all(responder, cmd, &operator, mode);
    };
    let docker = responder.toolbox().docker()?;
    let mut target = docker.target(name)?;
    if cmd.verb == Verb::Kill {
        let state = docker.inspect(&target.container_id)?;
        let pid = match cmd.pid {
            Some(p) => p,
            None => state.pid.ok_or_else(|| {
                RespondError::Refused(format!("{} has no running process", target.display()))
            })?,
        };
        if !crate::target::pid_in_container(pid, &target.container_id) {
            return Err(RespondError::Refused(format!(
                "pid {pid} is not in {}",
                target.display()
            )));
        }
        target.process = Some(ProcessRef {
            pid,
            exec_id: None,
            exe: String::new(),
        });
    }
    let (action, undo) = cmd.spec();
    Ok(vec![responder.manual(&ManualRequest {
        action,
        target,
        undo,
        mode,
        operator,
        reason: cmd.reason.clone(),
    })])
}

/// Everything rampart put in place: the kernel's pinned rules and links, and the
/// containers it froze.
fn release_all(
    responder: &Responder,
    cmd: &Command,
    operator: &str,
    mode: Mode,
) -> Result<Vec<AuditRecord>, RespondError> {
    let mut out = Vec::new();
    let ts = crate::wall_ns();
    let record = |result, detail: String, method: &str| AuditRecord {
        ts_ns: ts,
        action: ActionKind::Release,
        mode,
        actor: Actor::Operator(operator.to_string()),
        target: Target::default(),
        rule: None,
        alert_id: None,
        reason: cmd.reason.clone(),
        result,
        detail,
        method: method.into(),
        pids: Vec::new(),
        trigger_ts_ns: None,
        completed_ns: Some(crate::wall_ns()),
    };
    let kernel_pinned = Path::new(rampart_bpf::response::PIN_ROOT).is_dir();
    if mode == Mode::DryRun {
        out.push(record(
            AuditResult::Simulated,
            format!(
                "would release every kernel rule and link (pinned: {kernel_pinned}) and thaw {} container(s)",
                responder.toolbox().frozen().len()
            ),
            "bpf-cgroup",
        ));
        return Ok(out);
    }
    if kernel_pinned {
        out.push(match responder.release_all() {
            Ok(r) => record(
                AuditResult::Done,
                format!(
                    "released the kernel rules of {} cgroup(s) and {} pinned link(s)",
                    r.cgroups.len(),
                    r.links
                ),
                "bpf-cgroup",
            ),
            Err(e) => record(AuditResult::Failed, e.to_string(), "bpf-cgroup"),
        });
    } else {
        out.push(record(
            AuditResult::Done,
            "nothing pinned in the kernel".into(),
            "",
        ));
    }
    for id in responder.toolbox().frozen() {
        let target = Target {
            container_id: id.clone(),
            ..Target::default()
        };
        let mut rec = responder.manual(&ManualRequest {
            action: ActionSpec::Unfreeze,
            target,
            undo: false,
            mode,
            operator: operator.to_string(),
            reason: cmd.reason.clone(),
        });
        if rec.result != AuditResult::Done {
            // Gone since: nothing left to thaw, and nothing to remember.
            if !crate::target::ContainerCgroups::find(&id, None)
                .v2
                .is_some_and(|d| d.is_dir())
            {
                responder.toolbox().note_frozen(&id, false);
                rec.detail = format!("{id} is gone: {}", rec.detail);
            }
        }
        out.push(rec);
    }
    Ok(out)
}

/// The event a manual audit record is about: the target container (so queries by
/// container find it) and the command, as an exec of `rampart respond VERB`.
pub fn audit_event(rec: &AuditRecord, host: &str) -> Event {
    let workload = if rec.target.container_id.is_empty() {
        Workload::Host { cgroup_id: 0 }
    } else {
        Workload::Container(Container {
            id: rec.target.container_id.clone(),
            name: rec.target.container_name.clone(),
            image: rec.target.image.clone(),
            labels: rec.target.labels.clone(),
            ..Container::default()
        })
    };
    Event {
        schema: rampart_event::SCHEMA_VERSION,
        ts_ns: rec.ts_ns,
        host: Arc::from(host),
        seq: 0,
        process: None,
        container: Arc::new(workload),
        compat_syscall: false,
        payload: Payload::Exec {
            filename: format!("rampart respond {}", rec.action.as_str()),
            interpreter: None,
            from_memfd: false,
            from_deleted: false,
        },
    }
}

/// This host's name, for audit events.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The uid of the process at the other end of a unix socket (SO_PEERCRED).
pub fn peer_uid(stream: &UnixStream) -> Result<u32, RespondError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the fd is a live socket; cred and len are valid for the kernel to write.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(RespondError::io("SO_PEERCRED")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(cred.uid)
}

/// What the server answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The control socket of a running node.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `path` (mode 0600); each command is carried out by `responder` on
    /// the server's thread and its records handed to `on_audit` (the pipeline).
    pub fn start(
        path: &Path,
        responder: Arc<Responder>,
        on_audit: Box<dyn Fn(AuditRecord) + Send>,
    ) -> Result<Self, RespondError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(RespondError::io(format!("creating {}", dir.display())))?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(RespondError::Refused(format!(
                    "{} is served by another rampart already",
                    path.display()
                )));
            }
            std::fs::remove_file(path).map_err(RespondError::io(format!(
                "removing stale {}",
                path.display()
            )))?;
        }
        let listener = UnixListener::bind(path)
            .map_err(RespondError::io(format!("binding {}", path.display())))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(RespondError::io(format!("chmod 0600 {}", path.display())))?;
        listener
            .set_nonblocking(true)
            .map_err(RespondError::io("non-blocking control socket"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::Builder::new()
            .name("response-control".into())
            .spawn(move || serve(listener, responder, on_audit, st))
            .map_err(RespondError::io("spawning the control thread"))?;
        Ok(Self {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the serving thread out of its wait at once (it waits up to a second
        // otherwise).
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(
    listener: UnixListener,
    responder: Arc<Responder>,
    on_audit: Box<dyn Fn(AuditRecord) + Send>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        // Wait for a client in the kernel rather than polling accept on a short timer:
        // an idle `rampart up` should not wake 50 times a second (on a one-CPU guest
        // every wakeup is time taken from the workload).
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: pfd is a valid pollfd array of length 1 for the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, 1000) };
        if ready <= 0 || stop.load(Ordering::Relaxed) {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, &responder, &*on_audit) {
                    tracing::warn!("control socket: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(
    stream: UnixStream,
    responder: &Responder,
    on_audit: &dyn Fn(AuditRecord),
) -> Result<(), RespondError> {
    stream
        .set_nonblocking(false)
        .map_err(RespondError::io("control connection"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let uid = peer_uid(&stream)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(RespondError::io("reading a control request"))?;
    let reply = if uid != 0 {
        tracing::warn!(uid, "control socket: refused a non-root client");
        Reply {
            records: Vec::new(),
            error: Some(format!("refused: uid {uid} is not root")),
        }
    } else {
        match serde_json::from_str::<Command>(&line) {
            Err(e) => Reply {
                records: Vec::new(),
                error: Some(format!("bad request: {e}")),
            },
            Ok(cmd) => match execute(responder, &cmd, uid) {
                Err(e) => Reply {
                    records: Vec::new(),
                    error: Some(e.to_string()),
                },
                Ok(recs) => {
                    let records = recs
                        .iter()
                        .filter_map(|r| serde_json::to_value(r).ok())
                        .collect();
                    for r in recs {
                        on_audit(r);
                    }
                    Reply {
                        records,
                        error: None,
                    }
                }
            },
        }
    };
    let mut body = serde_json::to_vec(&reply).map_err(|e| RespondError::Refused(e.to_string()))?;
    body.push(b'\n');
    (&stream)
        .write_all(&body)
        .map_err(RespondError::io("writing a control reply"))
}

/// Sends a command to the node listening on `path`. `Ok(None)` when none listens
/// there (then act directly).
pub fn send(path: &Path, cmd: &Command) -> Result<Option<Reply>, RespondError> {
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => {
            return Err(RespondError::io(format!(
                "connecting to {}",
                path.display()
            ))(e))
        }
    };
    let mut body = serde_json::to_vec(cmd).map_err(|e| RespondError::Refused(e.to_string()))?;
    body.push(b'\n');
    (&stream)
        .write_all(&body)
        .map_err(RespondError::io("sending the command"))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(RespondError::io("reading the reply"))?;
    serde_json::from_str(&line).map(Some).map_err(|e| {
        RespondError::Refused(format!("unreadable reply from {}: {e}", path.display()))
    })
}
