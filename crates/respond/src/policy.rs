//! The response policy: which alerts get which action, in which mode, on which
//! containers, how often.
//!
//! ```yaml
//! scope:                       # the containers this policy may ever act on
//!   labels: {env: prod}        # every label given must match
//!   images: ["shop/*"]         # any image glob
//!   names: ["web-*"]           # any container name glob; `all: true` for every container
//! stateful_label: rampart.io/stateful   # "true" there: freeze instead of stop/restart
//! rate_limit:
//!   per_container: {count: 5, seconds: 60}
//!   global: {count: 50, seconds: 60}
//! responses:
//!   - name: kill-reverse-shells
//!     when: {rules: ["Reverse shell*"], min_priority: critical}
//!     action: kill_tree        # kill kill_tree freeze stop restart quarantine block deny_exec
//!     mode: enforce            # alert (default), dry-run, enforce
//!   - name: cut-off-miners
//!     when: {tags: [cryptomining]}
//!     action: block
//!     with: {deny: [{cidr: 203.0.113.0/24, ports: [3333]}]}
//! ```
//!
//! A file with any error is refused whole (file, line, column and reason), and a
//! [`PolicyStore`] keeps the policy it had: readers swap to a new policy atomically.

use std::collections::{BTreeMap, HashSet};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rampart_bpf::response::ExecPolicy;
use rampart_event::{Alert, Priority};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionKind, Mode};
use crate::exec::DenyExec;
use crate::freeze::{Freeze, FreezeMethod};
use crate::kill::Kill;
use crate::lifecycle::Lifecycle;
use crate::net::{Destination, NetAction, Network};
use crate::toolbox::Toolbox;
use crate::{RespondError, Target};

/// A name pattern: `*` matches any run of characters, everything else itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Glob(pub String);

impl Glob {
    pub fn matches(&self, s: &str) -> bool {
        glob_match(self.0.as_bytes(), s.as_bytes())
    }
}

fn glob_match(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with one backtrack point (the last `*`).
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

fn any(globs: &[Glob], s: &str) -> bool {
    globs.iter().any(|g| g.matches(s))
}

fn labels_match(want: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> bool {
    want.iter()
        .all(|(k, v)| have.get(k).is_some_and(|h| h == v))
}

/// The containers a policy may act on. Empty means none: acting on every container
/// has to be said (`all: true`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub images: Vec<Glob>,
    #[serde(default)]
    pub names: Vec<Glob>,
}

impl Scope {
    pub fn contains(&self, t: &Target) -> bool {
        if self.all {
            return true;
        }
        if self.labels.is_empty() && self.images.is_empty() && self.names.is_empty() {
            return false;
        }
        labels_match(&self.labels, &t.labels)
            && (self.images.is_empty() || any(&self.images, &t.image))
            && (self.names.is_empty() || any(&self.names, &t.container_name))
    }
}

/// A rate: at most `count` actions per `seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub count: NonZeroU32,
    pub seconds: NonZeroU32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default = "default_per_container")]
    pub per_container: Limit,
    #[serde(default = "default_global")]
    pub global: Limit,
}

fn limit(count: u32, seconds: u32) -> Limit {
    let nz = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
    Limit {
        count: nz(count),
        seconds: nz(seconds),
    }
}
fn default_per_container() -> Limit {
    limit(10, 60)
}
fn default_global() -> Limit {
    limit(100, 60)
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_container: default_per_container(),
            global: default_global(),
        }
    }
}

/// Which alerts a response is for. Every field given must match; within a list, any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Rule names (globs).
    #[serde(default)]
    pub rules: Vec<Glob>,
    /// Any of these tags (MITRE ids count as tags too).
    #[serde(default)]
    pub tags: Vec<String>,
    /// This priority or a more severe one.
    #[serde(default)]
    pub min_priority: Option<Priority>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub images: Vec<Glob>,
    /// Container names (globs).
    #[serde(default)]
    pub containers: Vec<Glob>,
}

impl Selector {
    pub fn matches(&self, alert: &Alert, t: &Target) -> bool {
        (self.rules.is_empty() || any(&self.rules, &alert.rule))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|tag| alert.tags.contains(tag) || alert.mitre.contains(tag)))
            // Priority's order puts the most severe first.
            && self.min_priority.is_none_or(|min| alert.priority <= min)
            && labels_match(&self.labels, &t.labels)
            && (self.images.is_empty() || any(&self.images, &t.image))
            && (self.containers.is_empty() || any(&self.containers, &t.container_name))
    }
}

/// Action names as policies write them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    Kill,
    KillTree,
    Freeze,
    Stop,
    Restart,
    Quarantine,
    Block,
    DenyExec,
}

/// Parameters of an action (each action reads its own; others must be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionParams {
    /// stop, restart: seconds between SIGTERM and SIGKILL (default 5).
    #[serde(default)]
    pub grace_s: Option<i32>,
    /// freeze: cgroup-v2, cgroup-v1, docker-pause or auto (default).
    #[serde(default)]
    pub freeze_method: Option<FreezeMethod>,
    /// quarantine: destinations still allowed.
    #[serde(default)]
    pub allow: Vec<Destination>,
    /// quarantine: allow the container's resolvers on port 53 (default true).
    #[serde(default)]
    pub allow_dns: Option<bool>,
    /// quarantine: allow loopback (default true).
    #[serde(default)]
    pub allow_loopback: Option<bool>,
    /// block: destinations refused.
    #[serde(default)]
    pub deny: Vec<Destination>,
    /// deny_exec: absolute paths as the container sees them.
    #[serde(default)]
    pub deny_paths: Vec<String>,
    /// deny_exec: executables not shipped in the image (overlay upper layer).
    #[serde(default)]
    pub not_in_image: bool,
}

/// A fully specified action, from a policy or an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ActionSpec {
    Kill {
        tree: bool,
    },
    Freeze {
        method: FreezeMethod,
    },
    Unfreeze,
    Stop {
        grace_s: i32,
    },
    Restart {
        grace_s: i32,
    },
    Quarantine {
        allow: Vec<Destination>,
        allow_dns: bool,
        allow_loopback: bool,
    },
    Block {
        deny: Vec<Destination>,
    },
    DenyExec {
        deny_paths: Vec<String>,
        not_in_image: bool,
    },
    /// Lifts quarantine, blocks and exec denial from a container.
    Release,
}

impl ActionSpec {
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Kill { .. } => ActionKind::Kill,
            Self::Freeze { .. } => ActionKind::Freeze,
            Self::Unfreeze => ActionKind::Unfreeze,
            Self::Stop { .. } => ActionKind::Stop,
            Self::Restart { .. } => ActionKind::Restart,
            Self::Quarantine { .. } => ActionKind::Quarantine,
            Self::Block { .. } => ActionKind::Block,
            Self::DenyExec { .. } => ActionKind::DenyExec,
            Self::Release => ActionKind::Release,
        }
    }

    /// The action, with its parameters checked (`Err` with the reason otherwise).
    pub fn from_params(name: ActionName, p: &ActionParams) -> Result<Self, String> {
        let extra = |allowed: &[&str]| -> Result<(), String> {
            let given = [
                ("grace_s", p.grace_s.is_some()),
                ("freeze_method", p.freeze_method.is_some()),
                ("allow", !p.allow.is_empty()),
                ("allow_dns", p.allow_dns.is_some()),
                ("allow_loopback", p.allow_loopback.is_some()),
                ("deny", !p.deny.is_empty()),
                ("deny_paths", !p.deny_paths.is_empty()),
                ("not_in_image", p.not_in_image),
            ];
            match given.iter().find(|(k, set)| *set && !allowed.contains(k)) {
                Some((k, _)) => Err(format!("`{k}` does not apply to this action")),
                None => Ok(()),
            }
        };
        let grace = p.grace_s.unwrap_or(5);
        if !(0..=300).contains(&grace) {
            return Err("grace_s must be 0..=300".into());
        }
        Ok(match name {
            ActionName::Kill | ActionName::KillTree => {
                extra(&[])?;
                Self::Kill {
                    tree: name == ActionName::KillTree,
                }
            }
            ActionName::Freeze => {
                extra(&["freeze_method"])?;
                Self::Freeze {
                    method: p.freeze_method.unwrap_or_default(),
                }
            }
            ActionName::Stop => {
                extra(&["grace_s"])?;
                Self::Stop { grace_s: grace }
            }
            ActionName::Restart => {
                extra(&["grace_s"])?;
                Self::Restart { grace_s: grace }
            }
            ActionName::Quarantine => {
                extra(&["allow", "allow_dns", "allow_loopback"])?;
                Self::Quarantine {
                    allow: p.allow.clone(),
                    allow_dns: p.allow_dns.unwrap_or(true),
                    allow_loopback: p.allow_loopback.unwrap_or(true),
                }
            }
            ActionName::Block => {
                extra(&["deny"])?;
                if p.deny.is_empty() {
                    return Err("block needs `deny` destinations".into());
                }
                Self::Block {
                    deny: p.deny.clone(),
                }
            }
            ActionName::DenyExec => {
                extra(&["deny_paths", "not_in_image"])?;
                if p.deny_paths.is_empty() && !p.not_in_image {
                    return Err("deny_exec needs `deny_paths` or `not_in_image: true`".into());
                }
                if let Some(bad) = p.deny_paths.iter().find(|d| !d.starts_with('/')) {
                    return Err(format!("deny_paths: {bad:?} is not an absolute path"));
                }
                Self::DenyExec {
                    deny_paths: p.deny_paths.clone(),
                    not_in_image: p.not_in_image,
                }
            }
        })
    }

    /// The action object that carries it out.
    pub fn build(&self, toolbox: &Arc<Toolbox>) -> Box<dyn Action> {
        let tb = toolbox.clone();
        match self {
            Self::Kill { tree } => Box::new(Kill { tree: *tree }),
            Self::Freeze { method } => Box::new(Freeze {
                method: *method,
                toolbox: tb,
            }),
            Self::Unfreeze => Box::new(Unfreeze(Freeze {
                method: FreezeMethod::Auto,
                toolbox: tb,
            })),
            Self::Stop { grace_s } | Self::Restart { grace_s } => Box::new(Lifecycle {
                restart: matches!(self, Self::Restart { .. }),
                grace_s: *grace_s,
                toolbox: tb,
            }),
            Self::Quarantine {
                allow,
                allow_dns,
                allow_loopback,
            } => Box::new(Network {
                action: NetAction::Quarantine {
                    allow: allow.clone(),
                    allow_dns: *allow_dns,
                    allow_loopback: *allow_loopback,
                },
                toolbox: tb,
            }),
            Self::Block { deny } => Box::new(Network {
                action: NetAction::Block { deny: deny.clone() },
                toolbox: tb,
            }),
            Self::DenyExec {
                deny_paths,
                not_in_image,
            } => Box::new(DenyExec {
                policy: ExecPolicy {
                    deny_upper_layer: *not_in_image,
                    deny_paths: deny_paths.clone(),
                },
                toolbox: tb,
            }),
            Self::Release => Box::new(Release(tb)),
        }
    }
}

/// Thaw as an action of its own (the operator's `unfreeze`).
struct Unfreeze(Freeze);

impl Action for Unfreeze {
    fn kind(&self) -> ActionKind {
        ActionKind::Unfreeze
    }
    fn apply(&self, target: &Target, mode: Mode) -> Result<crate::Outcome, RespondError> {
        self.0.undo(target, mode)
    }
}

/// Lifts everything in the kernel for one container (network and exec).
struct Release(Arc<Toolbox>);

impl Action for Release {
    fn kind(&self) -> ActionKind {
        ActionKind::Release
    }
    fn apply(&self, target: &Target, mode: Mode) -> Result<crate::Outcome, RespondError> {
        if mode == Mode::Alert {
            return Ok(crate::Outcome::alert_only(ActionKind::Release));
        }
        target.check_container()?;
        let pid = target.process.as_ref().map(|p| p.pid);
        let cg = crate::target::ContainerCgroups::find(&target.container_id, pid);
        let dir = cg
            .v2
            .ok_or_else(|| RespondError::NoCgroup(target.container_id.clone()))?;
        let cgid = rampart_bpf::response::cgroup_id(&dir)?;
        if mode == Mode::DryRun {
            return Ok(crate::Outcome::new(
                ActionKind::Release,
                mode,
                "bpf-cgroup",
                format!("would release everything on {}", target.display()),
            ));
        }
        let mut guard = self.0.guard()?;
        let net = guard.release_network(cgid)?;
        let exec = guard.release_exec(cgid)?;
        Ok(crate::Outcome::new(
            ActionKind::Release,
            mode,
            "bpf-cgroup",
            format!(
                "released {} (network: {net}, exec: {exec})",
                target.display()
            ),
        ))
    }
}

/// One response of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRule {
    pub name: String,
    #[serde(default)]
    pub when: Selector,
    pub action: ActionName,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub with: ActionParams,
}

/// A whole policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub scope: Scope,
    #[serde(default = "default_stateful_label")]
    pub stateful_label: String,
    #[serde(default)]
    pub rate_limit: RateLimits,
    #[serde(default)]
    pub responses: Vec<ResponseRule>,
}

fn default_stateful_label() -> String {
    "rampart.io/stateful".into()
}

/// A checked policy: each response with its action built from its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub file: PolicyFile,
    pub actions: Vec<ActionSpec>,
    /// Where it came from (for messages).
    pub origin: PathBuf,
}

/// What a policy decides for one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub response: String,
    pub action: ActionSpec,
    pub mode: Mode,
    /// Why the action differs from the one the response names (stateful workload).
    pub substituted: Option<String>,
}

impl Default for Policy {
    /// Acts on nothing.
    fn default() -> Self {
        Self {
            file: PolicyFile {
                scope: Scope::default(),
                stateful_label: default_stateful_label(),
                rate_limit: RateLimits::default(),
                responses: Vec::new(),
            },
            actions: Vec::new(),
            origin: PathBuf::from("<none>"),
        }
    }
}

/// The line (1-based) where `- name: NAME` (or `name: NAME`) appears, for errors
/// serde cannot place.
fn line_of_name(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches('-').trim_start();
            t.strip_prefix("name:")
                .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name)
        })
        .map_or(0, |i| i + 1)
}

impl Policy {
    /// Parses and checks a policy; any error refuses the whole document.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, RespondError> {
        let err = |line, column, message: String| RespondError::Policy {
            file: origin.to_path_buf(),
            line,
            column,
            message,
        };
        let file: PolicyFile = if text.trim().is_empty() {
            yaml_serde::from_str("{}")
        } else {
            yaml_serde::from_str(text)
        }
        .map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let mut message = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            if message.ends_with(&suffix) {
                message.truncate(message.len() - suffix.len());
            }
            err(line, column, message)
        })?;
        let mut names = HashSet::new();
        let mut actions = Vec::new();
        for r in &file.responses {
            let line = line_of_name(text, &r.name);
            if r.name.trim().is_empty() {
                return Err(err(line, 1, "a response needs a name".into()));
            }
            if !names.insert(r.name.clone()) {
                return Err(err(
                    line,
                    1,
                    format!("response {:?} is defined twice", r.name),
                ));
            }
            let spec = ActionSpec::from_params(r.action, &r.with)
                .map_err(|m| err(line, 1, format!("response {:?}: {m}", r.name)))?;
            actions.push(spec);
        }
        Ok(Self {
            file,
            actions,
            origin: origin.to_path_buf(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, RespondError> {
        let text = std::fs::read_to_string(path)
            .map_err(RespondError::io(format!("reading {}", path.display())))?;
        Self::parse(&text, path)
    }

    /// True when the container carries the stateful label set to "true".
    pub fn is_stateful(&self, t: &Target) -> bool {
        t.labels
            .get(&self.file.stateful_label)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// The responses an alert gets, in policy order. Nothing outside the scope.
    pub fn decide(&self, alert: &Alert, t: &Target) -> Vec<Decision> {
        if !self.file.scope.contains(t) {
            return Vec::new();
        }
        let stateful = self.is_stateful(t);
        self.file
            .responses
            .iter()
            .zip(&self.actions)
            .filter(|(r, _)| r.when.matches(alert, t))
            .map(|(r, a)| {
                let mut d = Decision {
                    response: r.name.clone(),
                    action: a.clone(),
                    mode: r.mode,
                    substituted: None,
                };
                // A stateful workload is frozen and alerted on, never stopped or
                // restarted (its state would be lost).
                if stateful && matches!(a, ActionSpec::Stop { .. } | ActionSpec::Restart { .. }) {
                    d.substituted = Some(format!(
                        "{} replaced by freeze: the container is labelled {}=true",
                        a.kind().as_str(),
                        self.file.stateful_label
                    ));
                    d.action = ActionSpec::Freeze {
                        method: FreezeMethod::Auto,
                    };
                }
                d
            })
            .collect()
    }
}

/// The policy in force, swapped atomically on reload.
pub struct PolicyStore {
    current: ArcSwap<Policy>,
    path: Option<PathBuf>,
}

impl PolicyStore {
    /// A store that acts on nothing until a policy is loaded.
    pub fn empty() -> Self {
        Self {
            current: ArcSwap::from_pointee(Policy::default()),
            path: None,
        }
    }

    pub fn new(policy: Policy) -> Self {
        let path = Some(policy.origin.clone()).filter(|p| p.exists());
        Self {
            current: ArcSwap::from_pointee(policy),
            path,
        }
    }

    /// Loads the file; it is also what [`PolicyStore::reload`] reads again.
    pub fn open(path: &Path) -> Result<Self, RespondError> {
        let p = Policy::load(path)?;
        Ok(Self {
            current: ArcSwap::from_pointee(p),
            path: Some(path.to_path_buf()),
        })
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    /// Puts a new policy in force.
    pub fn replace(&self, p: Policy) {
        self.current.store(Arc::new(p));
    }

    /// Reads the file again. On any error the policy in force stays.
    pub fn reload(&self) -> Result<Arc<Policy>, RespondError> {
        let Some(path) = &self.path else {
            return Ok(self.current());
        };
        let p = Arc::new(Policy::load(path)?);
        self.current.store(p.clone());
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, RespondError> {
        Policy::parse(text, Path::new("p.yaml"))
    }

    fn located(e: RespondError) -> (usize, usize, String) {
        match e {
            RespondError::Policy {
                file,
                line,
                column,
                message,
            } => {
                assert_eq!(file, Path::new("p.yaml"));
                (line, column, message)
            }
            other => panic!("not a policy error: {other}"),
        }
    }

    #[test]
    fn errors_name_line_column_and_reason() {
        let (line, col, msg) = located(
            parse("scope: {all: true}\nresponses:\n  - name: a\n    action: explode\n")
                .unwrap_err(),
        );
        assert_eq!((line, col), (4, 13), "{msg}");
        assert!(msg.contains("explode"), "{msg}");
        let (line, _, msg) = located(
            parse("responses:\n  - name: a\n    action: kill\n    mdoe: enforce\n").unwrap_err(),
        );
        assert_eq!(line, 4);
        assert!(msg.contains("mdoe"), "{msg}");
        // Checks serde cannot make are placed at the response.
        let (line, _, msg) = located(
            parse("responses:\n  - name: ok\n    action: kill\n  - name: bad\n    action: block\n")
                .unwrap_err(),
        );
        assert_eq!(line, 4);
        assert!(msg.contains("deny"), "{msg}");
        let (_, _, msg) = located(
            parse("responses:\n  - name: k\n    action: kill\n    with: {deny_paths: [/x]}\n")
                .unwrap_err(),
        );
        assert!(msg.contains("does not apply"), "{msg}");
        let (_, _, msg) = located(
            parse("responses:\n  - name: d\n    action: deny_exec\n    with: {deny_paths: [x]}\n")
                .unwrap_err(),
        );
        assert!(msg.contains("absolute"), "{msg}");
        let (line, _, msg) =
            located(parse("rate_limit:\n  global: {count: 0, seconds: 1}\n").unwrap_err());
        assert_eq!(line, 2, "{msg}");
        let (line, _, msg) = located(
            parse("responses:\n  - name: b\n    action: block\n    with: {deny: [{cidr: 10.0.0.0/40}]}\n")
                .unwrap_err(),
        );
        assert_eq!(line, 4, "{msg}");
        assert!(msg.contains("prefix"), "{msg}");
    }

    #[test]
    fn a_refused_reload_keeps_the_policy_in_force() {
        let dir =
            std::env::temp_dir().join(format!("rampart-respond-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.yaml");
        std::fs::write(
            &path,
            "scope: {all: true}\nresponses:\n  - {name: a, action: kill, mode: enforce}\n",
        )
        .unwrap();
        let store = PolicyStore::open(&path).unwrap();
        assert_eq!(store.current().file.responses.len(), 1);
        std::fs::write(
            &path,
            "scope: {all: true}\nresponses:\n  - {name: a, action: nope}\n",
        )
        .unwrap();
        assert!(store.reload().is_err());
        assert_eq!(store.current().file.responses[0].action, ActionName::Kill);
        std::fs::write(&path, "scope: {all: true}\nresponses: []\n").unwrap();
        assert!(store.reload().unwrap().file.responses.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_scope_acts_on_nothing_and_globs_match() {
        let t = Target {
            container_id: "b".repeat(64),
            container_name: "web-1".into(),
            image: "shop/web:2".into(),
            ..Target::default()
        };
        assert!(!Scope::default().contains(&t));
        let s = Scope {
            names: vec![Glob("web-*".into())],
            images: vec![Glob("shop/*".into())],
            ..Scope::default()
        };
        assert!(s.contains(&t));
        assert!(Glob("*a*b".into()).matches("xxaxxb"));
        assert!(!Glob("a*b".into()).matches("ab c"));
        assert!(Glob("*".into()).matches(""));
    }
}
