//! What an action acts on: a container, and optionally one of its processes. Built from
//! an alert's event or, for manual responses, from the Docker API. The safety checks
//! every action relies on live here: never the host, never rampart itself, never a
//! pid that was reused since the event.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rampart_event::{exec_id_start_boot_ns, Event};
use serde::Serialize;

use crate::RespondError;

/// A process of the target container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessRef {
    pub pid: u32,
    /// `<boot>:<pid>:<start ns since boot>` as the sensor reports it: checked against
    /// the live process so a reused pid is never hit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub exe: String,
}

/// A container, and the process the response is about (if any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Target {
    /// Full container id.
    pub container_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRef>,
}

impl Target {
    /// The container and process of an event; `None` for the host's own processes.
    pub fn from_event(ev: &Event) -> Option<Self> {
        let c = ev.container.container()?;
        if c.id.is_empty() {
            return None;
        }
        Some(Self {
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            image: c.image.clone(),
            labels: c.labels.clone(),
            process: ev.process.as_ref().map(|p| ProcessRef {
                pid: p.pid,
                exec_id: Some(p.exec_id.clone()).filter(|e| !e.is_empty()),
                exe: p.exe.clone(),
            }),
        })
    }

    /// A short human name: `name (id12)`.
    pub fn display(&self) -> String {
        let short: String = self.container_id.chars().take(12).collect();
        if self.container_name.is_empty() {
            short
        } else {
            format!("{} ({short})", self.container_name)
        }
    }

    /// Refuses targets that are not a container: an id of hex digits, at least 12.
    pub fn check_container(&self) -> Result<(), RespondError> {
        let id = &self.container_id;
        if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RespondError::Refused(format!(
                "{id:?} is not a container id (the host is never acted on)"
            )));
        }
        if let Some(own) = own_container_id() {
            if own.starts_with(id.as_str()) || id.starts_with(&own) {
                return Err(RespondError::Refused(
                    "the target is rampart's own container".into(),
                ));
            }
        }
        Ok(())
    }
}

/// The container rampart itself runs in, if any (a 64-hex component of its cgroup).
fn own_container_id() -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .flat_map(|l| l.split(['/', '-', '.', ':']))
        .find(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

/// True when `pid` runs in the container `id` (its cgroup paths name the container).
pub fn pid_in_container(pid: u32, id: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| t.contains(id))
}

/// Start time of a live process in ns since boot, at clock-tick resolution.
fn start_boot_ns(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(ticks * (1_000_000_000 / hz))
}

/// True when the process the event named is no longer running: gone, a zombie, or
/// its pid reused (the start time differs).
pub fn process_gone(p: &ProcessRef) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", p.pid)) else {
        return true;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat.get(i + 2..))
        .and_then(|rest| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return true;
    }
    match (
        p.exec_id.as_deref().and_then(exec_id_start_boot_ns),
        start_boot_ns(p.pid),
    ) {
        (Some(want), Some(have)) => have.abs_diff(want) > rampart_event::EXEC_ID_NS_PER_TICK,
        (_, None) => true,
        (None, Some(_)) => false,
    }
}

/// Parent pid of a live process.
pub(crate) fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Refuses a process that is rampart itself, not in the container, or not the one
/// the event named (its start time differs: the pid was reused).
pub fn check_process(p: &ProcessRef, container_id: &str) -> Result<(), RespondError> {
    if p.pid <= 1 || p.pid == std::process::id() {
        return Err(RespondError::Refused(format!(
            "pid {} is the host's init or rampart itself",
            p.pid
        )));
    }
    if !pid_in_container(p.pid, container_id) {
        return Err(RespondError::Refused(format!(
            "pid {} is not (or no longer) in container {container_id}",
            p.pid
        )));
    }
    if let Some(want) = p.exec_id.as_deref().and_then(exec_id_start_boot_ns) {
        let tick = rampart_event::EXEC_ID_NS_PER_TICK;
        match start_boot_ns(p.pid) {
            // Both sides are whole ticks; allow one for rounding between them.
            Some(have) if have.abs_diff(want) <= tick => {}
            Some(_) => {
                return Err(RespondError::Refused(format!(
                    "pid {} was reused since the event (start time differs)",
                    p.pid
                )))
            }
            None => {
                return Err(RespondError::Refused(format!("pid {} is gone", p.pid)));
            }
        }
    }
    Ok(())
}

/// The cgroup directories of a container, found from a process of it or by the
/// runtime's conventional paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerCgroups {
    /// cgroup v2 (unified) directory.
    pub v2: Option<PathBuf>,
    /// cgroup v1 freezer directory.
    pub freezer_v1: Option<PathBuf>,
}

fn mount_point(fstype: &str, option: Option<&str>) -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let ok = f.get(2) == Some(&fstype)
            && option.is_none_or(|o| f.get(3).is_some_and(|opts| opts.split(',').any(|x| x == o)));
        ok.then(|| PathBuf::from(f[1]))
    })
}

/// The cgroup ids (directory inodes) of every cgroup v2 directory on this host, or
/// `None` without a cgroup2 mount.
pub fn live_cgroup_ids() -> Option<std::collections::HashSet<u64>> {
    use std::os::unix::fs::MetadataExt;
    let root = mount_point("cgroup2", None)?;
    let mut ids = std::collections::HashSet::new();
    let mut stack = vec![(root, 0u32)];
    while let Some((dir, depth)) = stack.pop() {
        if let Ok(m) = fs::metadata(&dir) {
            ids.insert(m.ino());
        }
        // Container cgroups sit a few levels down (docker/<id>, system.slice/…,
        // kubepods.slice/…/<pod>/<id>).
        if depth >= 8 {
            continue;
        }
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    Some(ids)
}

impl ContainerCgroups {
    /// Finds the directories of container `id`: from `/proc/<pid>/cgroup` when a pid of
    /// it is known, else Docker's cgroupfs and systemd paths. Only directories whose
    /// path names the container are returned.
    pub fn find(id: &str, pid: Option<u32>) -> Self {
        let v2_root = mount_point("cgroup2", None);
        let freezer_root = mount_point("cgroup", Some("freezer"));
        let mut out = Self::default();
        if let Some(text) = pid.and_then(|p| fs::read_to_string(format!("/proc/{p}/cgroup")).ok()) {
            for line in text.lines() {
                let mut it = line.splitn(3, ':');
                let (_, controllers, path) = match (it.next(), it.next(), it.next()) {
                    (Some(a), Some(b), Some(c)) => (a, b, c),
                    _ => continue,
                };
                let rel = path.trim_start_matches('/');
                if controllers.is_empty() {
                    out.v2 = v2_root.as_ref().map(|r| r.join(rel));
                } else if controllers.split(',').any(|c| c == "freezer") {
                    out.freezer_v1 = freezer_root.as_ref().map(|r| r.join(rel));
                }
            }
        }
        let named = |p: &Option<PathBuf>| {
            p.as_ref()
                .filter(|p| p.to_string_lossy().contains(id) && p.is_dir())
                .cloned()
        };
        out.v2 = named(&out.v2).or_else(|| {
            let r = v2_root.as_ref()?;
            [
                r.join("docker").join(id),
                r.join("system.slice").join(format!("docker-{id}.scope")),
            ]
            .into_iter()
            .find(|p| p.is_dir())
        });
        out.freezer_v1 = named(&out.freezer_v1).or_else(|| {
            let r = freezer_root.as_ref()?;
            Some(r.join("docker").join(id)).filter(|p| p.is_dir())
        });
        out
    }

    /// Pids in the container's cgroup (v2, else the v1 freezer's).
    pub fn pids(&self) -> Vec<u32> {
        let file = match (&self.v2, &self.freezer_v1) {
            (Some(d), _) => d.join("cgroup.procs"),
            (None, Some(d)) => d.join("cgroup.procs"),
            _ => return Vec::new(),
        };
        read_pids(&file)
    }
}

pub(crate) fn read_pids(file: &Path) -> Vec<u32> {
    fs::read_to_string(file)
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}
