//! The authorization policy: which Docker API calls are refused. Everything not
//! denied here is allowed.
//!
//! ```yaml
//! docker_host: unix:///var/run/docker.sock  # the engine asked for an exec target's labels
//! on_error: deny          # the plugin cannot decide (container gone, body unreadable)
//! fail_mode: closed       # see crate docs: what happens to Docker while rampart is down
//! deny:
//!   exec_labels: {rampart.io/production: "true"}   # docker exec into these containers
//!   privileged: true                               # --privileged (run and exec)
//!   host_namespaces: [pid, network, ipc]           # --pid=host, --network=host, --ipc=host
//!   bind_mounts: [/, /var/run/docker.sock, /etc]   # -v SRC:… / --mount type=bind,src=SRC
//! ```
//!
//! A bind mount is refused when its source is a listed path, lies under one (`/` only
//! matches itself), or contains one (mounting `/var` exposes `/var/run/docker.sock`);
//! paths are compared lexically and after resolving symlinks on this host, so
//! `/run/docker.sock` is caught by `/var/run/docker.sock`. A file with any error is
//! refused whole, with file, line, column and what was expected.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::AuthzError;

/// The policy `rampart authz --print-default-policy` prints and uses without a file.
pub const DEFAULT_POLICY: &str = r#"# Rampart's Docker authorization policy (rampart authz). Anything not denied is allowed.
docker_host: unix:///var/run/docker.sock  # the engine asked for an exec target's labels
on_error: deny       # the plugin cannot decide (container not found, body unreadable): deny or allow
fail_mode: closed    # closed: dockerd refuses every call while the plugin is down;
                     # open: rampart deregisters itself from daemon_config when it stops
daemon_config: null  # dockerd's daemon.json, for fail_mode: open (e.g. /etc/docker/daemon.json)
dockerd_pidfile: /var/run/docker.pid  # dockerd is sent SIGHUP after daemon_config changes
deny:
  exec_labels:
    rampart.io/production: "true"
  privileged: true
  host_namespaces: [pid, network, ipc]
  bind_mounts: [/, /var/run/docker.sock, /etc]
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Deny,
    Allow,
}

/// What becomes of Docker while the plugin is down. dockerd itself always fails
/// closed (it refuses every API call it cannot ask about); `open` makes rampart take
/// itself out of dockerd's configuration when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    #[default]
    Closed,
    Open,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    Pid,
    Network,
    Ipc,
    Uts,
    Userns,
    Cgroup,
}

impl Namespace {
    /// The HostConfig field that names it.
    pub fn field(self) -> &'static str {
        match self {
            Self::Pid => "PidMode",
            Self::Network => "NetworkMode",
            Self::Ipc => "IpcMode",
            Self::Uts => "UTSMode",
            Self::Userns => "UsernsMode",
            Self::Cgroup => "CgroupnsMode",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pid => "pid",
            Self::Network => "network",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::Userns => "userns",
            Self::Cgroup => "cgroup",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deny {
    /// `docker exec` into a container carrying any of these labels (exact values).
    #[serde(default)]
    pub exec_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub host_namespaces: Vec<Namespace>,
    #[serde(default)]
    pub bind_mounts: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default = "default_docker_host")]
    docker_host: String,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    fail_mode: FailMode,
    #[serde(default)]
    daemon_config: Option<PathBuf>,
    #[serde(default = "default_pidfile")]
    dockerd_pidfile: PathBuf,
    #[serde(default)]
    deny: Deny,
}

fn default_pidfile() -> PathBuf {
    PathBuf::from("/var/run/docker.pid")
}

fn default_docker_host() -> String {
    "unix:///var/run/docker.sock".into()
}

/// A checked policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The engine's socket path.
    pub docker_socket: PathBuf,
    pub on_error: OnError,
    pub fail_mode: FailMode,
    pub daemon_config: Option<PathBuf>,
    /// dockerd's pid file, to signal it (SIGHUP) after daemon_config changes.
    pub dockerd_pidfile: PathBuf,
    pub deny: Deny,
    /// Each denied mount path, lexically cleaned and (when it exists) resolved.
    denied_paths: Vec<(PathBuf, Vec<PathBuf>)>,
    pub origin: PathBuf,
}

/// The 1-based line of the first `key:` in the text, for errors serde cannot place.
fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            l.trim_start()
                .trim_start_matches('-')
                .trim_start()
                .starts_with(&format!("{key}:"))
        })
        .map_or(0, |i| i + 1)
}

/// `a//b/./c/../d` → `/a/b/d`: no symlinks followed.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The forms a host path is compared in: cleaned, and resolved when it exists.
fn forms(p: &Path) -> Vec<PathBuf> {
    let c = clean(p);
    let mut v = vec![c.clone()];
    if let Ok(r) = std::fs::canonicalize(&c) {
        if r != c {
            v.push(r);
        }
    }
    v
}

impl Policy {
    pub fn parse(text: &str, origin: &Path) -> Result<Self, AuthzError> {
        let err = |line, column, message: String| AuthzError::Policy {
            file: origin.to_path_buf(),
            line,
            column,
            message,
        };
        let file: PolicyFile =
            yaml_serde::from_str(if text.trim().is_empty() { "{}" } else { text }).map_err(
                |e| {
                    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                    let mut message = e.to_string();
                    let suffix = format!(" at line {line} column {column}");
                    if message.ends_with(&suffix) {
                        message.truncate(message.len() - suffix.len());
                    }
                    err(line, column, message)
                },
            )?;
        let docker_socket = match file.docker_host.strip_prefix("unix://") {
            Some(p) if p.starts_with('/') => PathBuf::from(p),
            _ if file.docker_host.starts_with('/') => PathBuf::from(&file.docker_host),
            _ => {
                return Err(err(
                    line_of_key(text, "docker_host"),
                    1,
                    format!(
                        "docker_host: expected unix:///path/to/docker.sock, found {:?}",
                        file.docker_host
                    ),
                ))
            }
        };
        let mut denied_paths = Vec::new();
        for p in &file.deny.bind_mounts {
            if !p.is_absolute() {
                return Err(err(
                    line_of_key(text, "bind_mounts"),
                    1,
                    format!("bind_mounts: expected absolute host paths, found {p:?}"),
                ));
            }
            denied_paths.push((p.clone(), forms(p)));
        }
        if file.fail_mode == FailMode::Open && file.daemon_config.is_none() {
            return Err(err(
                line_of_key(text, "fail_mode"),
                1,
                "fail_mode: open needs daemon_config (dockerd's daemon.json), where rampart \
                 takes itself out of authorization-plugins when it stops"
                    .into(),
            ));
        }
        Ok(Self {
            docker_socket,
            on_error: file.on_error,
            fail_mode: file.fail_mode,
            daemon_config: file.daemon_config,
            dockerd_pidfile: file.dockerd_pidfile,
            deny: file.deny,
            denied_paths,
            origin: origin.to_path_buf(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, AuthzError> {
        let text = std::fs::read_to_string(path)
            .map_err(AuthzError::io(format!("reading {}", path.display())))?;
        Self::parse(&text, path)
    }

    /// The shipped default.
    pub fn default_policy() -> Result<Self, AuthzError> {
        Self::parse(DEFAULT_POLICY, Path::new("<default authz policy>"))
    }

    /// The listed path a bind mount of `source` would expose, if any.
    pub fn denied_mount(&self, source: &Path) -> Option<&Path> {
        let src = forms(source);
        for (listed, denied) in &self.denied_paths {
            for s in &src {
                for d in denied {
                    let hit = if d == Path::new("/") {
                        s == d
                    } else {
                        s == d || s.starts_with(d) || d.starts_with(s)
                    };
                    if hit {
                        return Some(listed);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, AuthzError> {
        Policy::parse(text, Path::new("authz.yaml"))
    }

    #[test]
    fn the_default_policy_parses() {
        let p = Policy::default_policy().unwrap();
        assert!(p.deny.privileged);
        assert_eq!(p.docker_socket, Path::new("/var/run/docker.sock"));
        assert_eq!(p.fail_mode, FailMode::Closed);
    }

    #[test]
    fn errors_name_file_line_column_and_what_was_expected() {
        let e = parse("deny:\n  privileged: true\n  host_namespaces: [pid, nettwork]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("authz.yaml:3:"), "{e}");
        assert!(e.contains("nettwork") && e.contains("network"), "{e}");
        let e = parse("deny:\n  privileged: true\n  prvileged: true\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("authz.yaml:3:"), "{e}");
        assert!(e.contains("prvileged"), "{e}");
        let e = parse("docker_host: tcp://1.2.3.4:2375\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("authz.yaml:1:1:"), "{e}");
        let e = parse("deny:\n  bind_mounts: [etc]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("authz.yaml:2:1:") && e.contains("absolute"),
            "{e}"
        );
        let e = parse("on_error: deny\nfail_mode: open\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("authz.yaml:2:1:") && e.contains("daemon_config"),
            "{e}"
        );
    }

    #[test]
    fn mounts_that_expose_a_listed_path_are_denied() {
        let p = parse("deny:\n  bind_mounts: [/, /var/run/docker.sock, /etc]\n").unwrap();
        for src in [
            "/",
            "/etc",
            "/etc/",
            "/etc/shadow",
            "//etc/./ssl/..",
            "/var",
            "/var/run",
        ] {
            assert!(p.denied_mount(Path::new(src)).is_some(), "{src}");
        }
        for src in ["/tmp", "/home/x", "/etcetera", "/var/lib/app"] {
            assert_eq!(p.denied_mount(Path::new(src)), None, "{src}");
        }
        // /var/run is a symlink to /run on this host: the socket under either name.
        if std::fs::canonicalize("/var/run/docker.sock")
            .is_ok_and(|r| r == Path::new("/run/docker.sock"))
        {
            assert!(p.denied_mount(Path::new("/run/docker.sock")).is_some());
        }
    }
}
