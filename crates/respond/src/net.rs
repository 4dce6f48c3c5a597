//! Network quarantine and blocked destinations, in the kernel: the response BPF
//! object's programs on the container's cgroup v2 directory (see
//! `rampart_bpf::response`). Quarantine keeps an allow list (by default the
//! container's DNS resolvers on port 53, and loopback); block adds destinations to the
//! deny list. Both read the policy in force back from the pinned maps first, so one
//! does not erase the other, even across a restart of rampart.

use std::net::IpAddr;
use std::sync::Arc;

use rampart_bpf::response::{NetPolicy, NetRule};
use serde::{Deserialize, Serialize};

use crate::action::{Action, ActionKind, Mode, Outcome};
use crate::target::ContainerCgroups;
use crate::toolbox::Toolbox;
use crate::{RespondError, Target};

/// An address prefix and ports, as policies write them: `cidr: 10.0.0.0/8`,
/// `ports: [443]` (none: every port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub cidr: Cidr,
    #[serde(default)]
    pub ports: Vec<u16>,
}

/// `ADDR` or `ADDR/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}/{}", self.addr, self.prefix))
    }
}

impl Destination {
    fn rule(&self) -> NetRule {
        NetRule {
            addr: self.cidr.addr,
            prefix: self.cidr.prefix,
            ports: self.ports.clone(),
        }
    }
}

/// Network actions.
#[derive(Debug, Clone)]
pub enum NetAction {
    /// Drop everything but `allow` (plus the resolvers and loopback when asked).
    Quarantine {
        allow: Vec<Destination>,
        allow_dns: bool,
        allow_loopback: bool,
    },
    /// Refuse these destinations.
    Block { deny: Vec<Destination> },
}

#[derive(Debug, Clone)]
pub struct Network {
    pub action: NetAction,
    pub toolbox: Arc<Toolbox>,
}

/// Nameservers from the container's resolv.conf, read through a process of it.
fn resolvers(pid: Option<u32>) -> Vec<IpAddr> {
    let Some(pid) = pid else { return Vec::new() };
    std::fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))
        .map(|t| {
            t.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|a| a.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn merge(current: &mut Vec<NetRule>, add: impl IntoIterator<Item = NetRule>) {
    for r in add {
        if !current.contains(&r) {
            current.push(r);
        }
    }
}

impl Network {
    fn cgroup(target: &Target) -> Result<(ContainerCgroups, Option<u32>), RespondError> {
        let pid = target
            .process
            .as_ref()
            .map(|p| p.pid)
            .filter(|p| crate::target::pid_in_container(*p, &target.container_id));
        let cg = ContainerCgroups::find(&target.container_id, pid);
        if cg.v2.is_none() {
            return Err(RespondError::NoCgroup(target.container_id.clone()));
        }
        let pid = pid.or_else(|| cg.pids().first().copied());
        Ok((cg, pid))
    }

    fn policy(&self, current: NetPolicy, pid: Option<u32>) -> NetPolicy {
        let mut p = current;
        match &self.action {
            NetAction::Quarantine {
                allow,
                allow_dns,
                allow_loopback,
            } => {
                p.quarantine = true;
                p.allow_loopback = *allow_loopback;
                p.allow.clear();
                merge(&mut p.allow, allow.iter().map(Destination::rule));
                if *allow_dns {
                    merge(
                        &mut p.allow,
                        resolvers(pid).into_iter().map(|a| NetRule {
                            ports: vec![53],
                            ..NetRule::host(a)
                        }),
                    );
                }
            }
            NetAction::Block { deny } => merge(&mut p.deny, deny.iter().map(Destination::rule)),
        }
        p
    }

    fn describe(p: &NetPolicy) -> String {
        let list = |rules: &[NetRule]| {
            rules
                .iter()
                .map(|r| {
                    if r.ports.is_empty() {
                        format!("{}/{}", r.addr, r.prefix)
                    } else {
                        format!("{}/{} ports {:?}", r.addr, r.prefix, r.ports)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if p.quarantine {
            parts.push(format!(
                "quarantine (allow: [{}]{})",
                list(&p.allow),
                if p.allow_loopback { ", loopback" } else { "" }
            ));
        }
        if !p.deny.is_empty() {
            parts.push(format!("deny [{}]", list(&p.deny)));
        }
        parts.join("; ")
    }
}

impl Action for Network {
    fn kind(&self) -> ActionKind {
        match self.action {
            NetAction::Quarantine { .. } => ActionKind::Quarantine,
            NetAction::Block { .. } => ActionKind::Block,
        }
    }

    fn apply(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        let kind = self.kind();
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(kind));
        }
        target.check_container()?;
        let (cg, pid) = Self::cgroup(target)?;
        let dir = cg
            .v2
            .as_deref()
            .ok_or_else(|| RespondError::NoCgroup(target.container_id.clone()))?;
        let cgid = rampart_bpf::response::cgroup_id(dir)?;
        if mode == Mode::DryRun {
            let p = self.policy(NetPolicy::default(), pid);
            return Ok(Outcome::new(
                kind,
                mode,
                "bpf-cgroup",
                format!("would put {} on {}", Self::describe(&p), target.display()),
            ));
        }
        let mut guard = self.toolbox.guard()?;
        let current = guard.network_policy(cgid)?.unwrap_or_default();
        let p = self.policy(current, pid);
        guard.guard_network(dir, &p)?;
        Ok(Outcome::new(
            kind,
            mode,
            "bpf-cgroup",
            format!(
                "{} on {} (cgroup {cgid})",
                Self::describe(&p),
                target.display()
            ),
        ))
    }

    /// Lifts this action's part (quarantine, or the whole deny list); the programs
    /// are detached once nothing is left.
    fn undo(&self, target: &Target, mode: Mode) -> Result<Outcome, RespondError> {
        let kind = self.kind();
        if mode == Mode::Alert {
            return Ok(Outcome::alert_only(ActionKind::Release));
        }
        target.check_container()?;
        let (cg, _) = Self::cgroup(target)?;
        let dir = cg
            .v2
            .as_deref()
            .ok_or_else(|| RespondError::NoCgroup(target.container_id.clone()))?;
        let cgid = rampart_bpf::response::cgroup_id(dir)?;
        if mode == Mode::DryRun {
            return Ok(Outcome::new(
                ActionKind::Release,
                mode,
                "bpf-cgroup",
                format!("would lift {} from {}", kind.as_str(), target.display()),
            ));
        }
        let mut guard = self.toolbox.guard()?;
        let Some(mut p) = guard.network_policy(cgid)? else {
            return Ok(Outcome::new(
                ActionKind::Release,
                mode,
                "bpf-cgroup",
                format!("nothing in place on {}", target.display()),
            ));
        };
        match self.action {
            NetAction::Quarantine { .. } => {
                p.quarantine = false;
                p.allow.clear();
            }
            NetAction::Block { .. } => {
                p.deny.clear();
                p.deny_ports.clear();
            }
        }
        if !p.quarantine && p.deny.is_empty() && p.deny_ports.is_empty() {
            guard.release_network(cgid)?;
        } else {
            guard.guard_network(dir, &p)?;
        }
        Ok(Outcome::new(
            ActionKind::Release,
            mode,
            "bpf-cgroup",
            format!("lifted {} from {}", kind.as_str(), target.display()),
        ))
    }
}
