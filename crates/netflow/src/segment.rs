//! Learned segmentation, per workload. A workload starts in **discover** and learns
//! every edge it takes part in for a window (1 h by default); in **monitor** an edge
//! outside its baseline raises an alert naming both ends, the port and the process; in
//! **protect** the kernel also refuses new edges outside it (connects fail with EPERM,
//! inbound SYNs are dropped), which [`Segmentation::kernel_rules`] turns into map
//! entries. Modes move forward by themselves after a stable period when configured.
//! Baselines are edited (allow or forbid an edge) and exported/imported as YAML.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use rampart_bpf::netflow::{SegDirection, SegRule};
use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::flow::{Direction, Flow, Proto};
use crate::graph::{peer_node, EdgeState, GraphEdge};
use crate::NetflowError;

const NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Discover,
    Monitor,
    Protect,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "discover" => Some(Mode::Discover),
            "monitor" => Some(Mode::Monitor),
            "protect" => Some(Mode::Protect),
            _ => None,
        }
    }
}

/// One edge of a workload's baseline, from the workload's side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BaselineEdge {
    pub direction: EdgeDirection,
    /// The graph node of the other end (`compose:shop/db`, `dns:api.example.com`,
    /// `cidr:10.0.0.0/24`, `host`).
    pub peer: String,
    pub protocol: Proto,
    /// The service port: the peer's for outbound edges, the workload's for inbound.
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeDirection {
    Outbound,
    Inbound,
}

impl BaselineEdge {
    /// The edge a flow makes for its workload; `None` for loopback and for flows
    /// first seen mid-stream (their direction is a guess).
    pub fn of(flow: &Flow) -> Option<Self> {
        let (peer, _, _) = peer_node(flow)?;
        let (direction, port) = match flow.direction {
            Direction::Outbound => (EdgeDirection::Outbound, flow.remote_port),
            Direction::Inbound => (EdgeDirection::Inbound, flow.local_port),
            Direction::Unknown => return None,
        };
        Some(Self {
            direction,
            peer,
            protocol: flow.proto,
            port,
        })
    }

    pub fn describe(&self, workload: &str) -> String {
        match self.direction {
            EdgeDirection::Outbound => format!(
                "{workload} → {} {}/{}",
                self.peer,
                self.protocol.name(),
                self.port
            ),
            EdgeDirection::Inbound => format!(
                "{} → {workload} {}/{}",
                self.peer,
                self.protocol.name(),
                self.port
            ),
        }
    }
}

/// A workload's learned segmentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadBaseline {
    pub mode: Mode,
    /// When the current mode began (ns since the epoch).
    #[serde(default)]
    pub mode_since_ns: u64,
    /// When the baseline last learned a new edge.
    #[serde(default)]
    pub last_learned_ns: u64,
    /// Edges that are normal.
    #[serde(default)]
    pub allow: BTreeSet<BaselineEdge>,
    /// Edges that alert (and are blocked in protect mode) even while discovering.
    #[serde(default)]
    pub forbid: BTreeSet<BaselineEdge>,
}

impl WorkloadBaseline {
    fn new(now_ns: u64, mode: Mode) -> Self {
        Self {
            mode,
            mode_since_ns: now_ns,
            last_learned_ns: now_ns,
            allow: BTreeSet::new(),
            forbid: BTreeSet::new(),
        }
    }
}

/// When modes move forward by themselves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentationConfig {
    /// How long a new workload learns (seconds).
    pub discover_secs: u64,
    /// Discover → monitor once the window is over and nothing new was learned for
    /// `stable_secs`.
    pub auto_monitor: bool,
    /// Monitor → protect after `protect_after_secs` without an anomaly; 0: never.
    pub protect_after_secs: u64,
    pub stable_secs: u64,
    /// The mode new workloads start in.
    pub initial_mode: Mode,
}

impl Default for SegmentationConfig {
    fn default() -> Self {
        Self {
            discover_secs: 3600,
            auto_monitor: true,
            protect_after_secs: 0,
            stable_secs: 600,
            initial_mode: Mode::Discover,
        }
    }
}

/// An edge outside a workload's baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub workload: String,
    pub edge: BaselineEdge,
    pub mode: Mode,
    /// The edge is on the forbid list (not merely unknown).
    pub forbidden: bool,
}

/// Every workload's baseline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baselines {
    #[serde(default)]
    pub workloads: BTreeMap<String, WorkloadBaseline>,
}

#[derive(Debug, Clone, Default)]
pub struct Segmentation {
    pub config: SegmentationConfig,
    pub baselines: Baselines,
    /// Last anomaly per workload, for protect_after.
    last_anomaly_ns: BTreeMap<String, u64>,
}

impl Segmentation {
    pub fn new(config: SegmentationConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }

    /// Judges a flow (call it once per new flow): learns its edge in discover mode,
    /// else returns the anomaly when the edge is outside the baseline.
    pub fn observe(&mut self, flow: &Flow, now_ns: u64) -> Option<Anomaly> {
        if flow.workload.is_empty() {
            return None;
        }
        let edge = BaselineEdge::of(flow)?;
        let initial = self.config.initial_mode;
        let b = self
            .baselines
            .workloads
            .entry(flow.workload.clone())
            .or_insert_with(|| WorkloadBaseline::new(now_ns, initial));
        let forbidden = b.forbid.contains(&edge);
        if !forbidden && b.mode == Mode::Discover {
            if b.allow.insert(edge) {
                b.last_learned_ns = now_ns;
            }
            return None;
        }
        if !forbidden && b.allow.contains(&edge) {
            return None;
        }
        self.last_anomaly_ns.insert(flow.workload.clone(), now_ns);
        Some(Anomaly {
            workload: flow.workload.clone(),
            edge,
            mode: b.mode,
            forbidden,
        })
    }

    /// Moves modes forward as configured; returns the workloads that changed.
    pub fn tick(&mut self, now_ns: u64) -> Vec<(String, Mode)> {
        let c = &self.config;
        let mut changed = Vec::new();
        for (w, b) in &mut self.baselines.workloads {
            let next = match b.mode {
                Mode::Discover
                    if c.auto_monitor
                        && now_ns >= b.mode_since_ns + c.discover_secs * NS
                        && now_ns >= b.last_learned_ns + c.stable_secs * NS =>
                {
                    Some(Mode::Monitor)
                }
                Mode::Monitor
                    if c.protect_after_secs > 0
                        && now_ns >= b.mode_since_ns + c.protect_after_secs * NS
                        && self
                            .last_anomaly_ns
                            .get(w)
                            .is_none_or(|t| now_ns >= t + c.protect_after_secs * NS) =>
                {
                    Some(Mode::Protect)
                }
                _ => None,
            };
            if let Some(m) = next {
                b.mode = m;
                b.mode_since_ns = now_ns;
                changed.push((w.clone(), m));
            }
        }
        changed
    }

    /// Sets a workload's mode (creating its baseline, empty, when new).
    pub fn set_mode(&mut self, workload: &str, mode: Mode, now_ns: u64) {
        let b = self
            .baselines
            .workloads
            .entry(workload.to_string())
            .or_insert_with(|| WorkloadBaseline::new(now_ns, mode));
        b.mode = mode;
        b.mode_since_ns = now_ns;
    }

    pub fn mode(&self, workload: &str) -> Option<Mode> {
        self.baselines.workloads.get(workload).map(|b| b.mode)
    }

    /// Allows an edge (and lifts a forbid of it).
    pub fn allow(&mut self, workload: &str, edge: BaselineEdge, now_ns: u64) {
        let initial = self.config.initial_mode;
        let b = self
            .baselines
            .workloads
            .entry(workload.to_string())
            .or_insert_with(|| WorkloadBaseline::new(now_ns, initial));
        b.forbid.remove(&edge);
        b.allow.insert(edge);
    }

    /// Forbids an edge (and takes it out of the baseline).
    pub fn forbid(&mut self, workload: &str, edge: BaselineEdge, now_ns: u64) {
        let initial = self.config.initial_mode;
        let b = self
            .baselines
            .workloads
            .entry(workload.to_string())
            .or_insert_with(|| WorkloadBaseline::new(now_ns, initial));
        b.allow.remove(&edge);
        b.forbid.insert(edge);
    }

    /// A graph edge's standing: baseline, anomalous, or blocked (the source protects
    /// and the edge is outside its baseline).
    pub fn edge_state(&self, e: &GraphEdge) -> EdgeState {
        let out = BaselineEdge {
            direction: EdgeDirection::Outbound,
            peer: e.target.clone(),
            protocol: e.protocol,
            port: e.port,
        };
        let inb = BaselineEdge {
            direction: EdgeDirection::Inbound,
            peer: e.source.clone(),
            protocol: e.protocol,
            port: e.port,
        };
        let judge = |w: &str, edge: &BaselineEdge| {
            let b = self.baselines.workloads.get(w)?;
            Some(if b.allow.contains(edge) && !b.forbid.contains(edge) {
                EdgeState::Baseline
            } else if b.mode == Mode::Protect {
                EdgeState::Blocked
            } else if b.mode == Mode::Discover && !b.forbid.contains(edge) {
                EdgeState::Baseline
            } else {
                EdgeState::Anomalous
            })
        };
        let a = judge(&e.source, &out);
        let b = judge(&e.target, &inb);
        match (a, b) {
            (None, None) => EdgeState::Unlearned,
            (Some(x), None) | (None, Some(x)) => x,
            (Some(x), Some(y)) => x.max_by_severity(y),
        }
    }

    /// YAML of every baseline.
    pub fn to_yaml(&self) -> Result<String, NetflowError> {
        yaml_serde::to_string(&self.baselines).map_err(|e| NetflowError::Parse {
            what: "baselines".into(),
            reason: e.to_string(),
        })
    }

    /// Replaces the baselines of the workloads in `yaml` (others stay).
    pub fn import_yaml(&mut self, yaml: &str, origin: &str) -> Result<usize, NetflowError> {
        let b = parse_baselines(yaml, origin)?;
        let n = b.workloads.len();
        self.baselines.workloads.extend(b.workloads);
        Ok(n)
    }

    /// The kernel rules of a protected workload's container `cgroup_id`: every
    /// allowed edge resolved to addresses (containers of a peer workload from the
    /// directory, names from the container's DNS cache, and the addresses its flows
    /// on allowed edges reached). A peer it cannot resolve gets no rule.
    pub fn kernel_rules<'a>(
        &self,
        workload: &str,
        cgroup_id: u64,
        dir: &Directory,
        flows: impl IntoIterator<Item = &'a Flow>,
    ) -> Vec<SegRule> {
        let Some(b) = self.baselines.workloads.get(workload) else {
            return Vec::new();
        };
        let mut rules: HashSet<SegRule> = HashSet::new();
        let allowed = |e: &BaselineEdge| b.allow.contains(e) && !b.forbid.contains(e);
        let direction = |e: &BaselineEdge| match e.direction {
            EdgeDirection::Outbound => SegDirection::Outbound,
            EdgeDirection::Inbound => SegDirection::Inbound,
        };
        let rule = |e: &BaselineEdge, addr: Option<IpAddr>| {
            SegRule::exact(direction(e), e.protocol.number(), addr, e.port)
        };
        for e in b.allow.iter().filter(|e| allowed(e)) {
            if e.peer == "any" {
                rules.insert(rule(e, None));
            } else if let Some((net, prefix_len)) =
                e.peer.strip_prefix("cidr:").and_then(parse_network)
            {
                rules.insert(SegRule {
                    prefix_len,
                    ..rule(e, Some(net))
                });
            } else if let Some(name) = e.peer.strip_prefix("dns:") {
                for ip in dir.resolved_ips(cgroup_id, name) {
                    rules.insert(rule(e, Some(ip)));
                }
            } else if let Some(ip) = e.peer.strip_prefix("ip:").and_then(|s| s.parse().ok()) {
                rules.insert(rule(e, Some(ip)));
            } else {
                for c in dir.containers().filter(|c| c.workload() == e.peer) {
                    for ip in &c.ips {
                        rules.insert(rule(e, Some(*ip)));
                    }
                }
            }
        }
        for f in flows {
            if f.workload != workload {
                continue;
            }
            if let Some(e) = BaselineEdge::of(f) {
                if allowed(&e) {
                    rules.insert(rule(&e, Some(f.remote_ip)));
                }
            }
        }
        let mut v: Vec<SegRule> = rules.into_iter().collect();
        v.sort_by_key(|r| format!("{r:?}"));
        v
    }
}

/// `10.0.0.0/24` or `fd00::/64` (a bare address is its own network).
fn parse_network(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(full);
    (len <= full).then_some((addr, len))
}

impl EdgeState {
    fn rank(self) -> u8 {
        match self {
            EdgeState::Unlearned => 0,
            EdgeState::Baseline => 1,
            EdgeState::Anomalous => 2,
            EdgeState::Blocked => 3,
        }
    }

    fn max_by_severity(self, other: Self) -> Self {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

/// Parses baselines YAML; errors carry the file, line and column.
pub fn parse_baselines(yaml: &str, origin: &str) -> Result<Baselines, NetflowError> {
    yaml_serde::from_str(yaml).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        NetflowError::Parse {
            what: format!("{origin}{at}"),
            reason: format!("{e} (expected workloads: {{<workload>: {{mode, allow, forbid}}}})"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Peer;

    fn flow(workload: &str, peer_workload: &str, port: u16) -> Flow {
        Flow {
            cgroup_id: 1,
            container_id: "c1".into(),
            workload: workload.into(),
            proto: Proto::Tcp,
            local_ip: "10.0.0.1".parse().unwrap(),
            local_port: 40000,
            remote_ip: "10.0.0.2".parse().unwrap(),
            remote_port: port,
            direction: Direction::Outbound,
            bytes_out: 1,
            packets_out: 1,
            bytes_in: 1,
            packets_in: 1,
            first_ns: 0,
            last_ns: 0,
            tcp_flags_out: 0,
            tcp_flags_in: 0,
            peer: Peer::Container {
                id: "c2".into(),
                name: "db".into(),
                image: "db".into(),
                workload: peer_workload.into(),
            },
            process: None,
            tls: None,
        }
    }

    #[test]
    fn discover_learns_then_monitor_alerts_on_new_edges_only() {
        let mut s = Segmentation::new(SegmentationConfig {
            discover_secs: 10,
            stable_secs: 5,
            ..Default::default()
        });
        assert_eq!(s.observe(&flow("web", "db", 5432), 0), None);
        assert!(s.tick(9 * NS).is_empty(), "still within the window");
        assert_eq!(s.tick(10 * NS), vec![("web".to_string(), Mode::Monitor)]);
        assert_eq!(s.observe(&flow("web", "db", 5432), 11 * NS), None);
        let a = s.observe(&flow("web", "db", 22), 12 * NS).unwrap();
        assert_eq!(a.edge.port, 22);
        assert_eq!(a.edge.describe("web"), "web → db tcp/22");
    }

    #[test]
    fn forbidden_edges_alert_even_while_discovering_and_yaml_round_trips() {
        let mut s = Segmentation::default();
        let e = BaselineEdge::of(&flow("web", "db", 22)).unwrap();
        s.forbid("web", e, 0);
        assert!(s.observe(&flow("web", "db", 22), 1).unwrap().forbidden);
        let yaml = s.to_yaml().unwrap();
        let mut t = Segmentation::default();
        assert_eq!(t.import_yaml(&yaml, "b.yaml").unwrap(), 1);
        assert_eq!(t.baselines, s.baselines);
        let err = t
            .import_yaml("workloads:\n  web:\n    mode: sideways\n", "b.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("b.yaml:3:"), "{err}");
    }

    #[test]
    fn network_edges_become_prefix_rules_and_bad_networks_none() {
        let mut s = Segmentation::default();
        let edge = |peer: &str, protocol: Proto, port: u16| BaselineEdge {
            direction: EdgeDirection::Outbound,
            peer: peer.into(),
            protocol,
            port,
        };
        s.allow("web", edge("cidr:10.20.0.0/16", Proto::Tcp, 443), 0);
        s.allow("web", edge("cidr:fd00:1::/64", Proto::Udp, 0), 0);
        s.allow("web", edge("cidr:10.30.0.0/33", Proto::Tcp, 443), 0);
        s.allow("web", edge("ip:10.0.0.9", Proto::Udp, 53), 0);
        let rules = s.kernel_rules("web", 7, &Directory::new(), []);
        let prefixes: Vec<(Option<IpAddr>, u8, u8, u16)> = rules
            .iter()
            .map(|r| (r.addr, r.prefix_len, r.proto, r.port))
            .collect();
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert!(prefixes.contains(&(Some("10.20.0.0".parse().unwrap()), 16, 6, 443)));
        assert!(prefixes.contains(&(Some("fd00:1::".parse().unwrap()), 64, 17, 0)));
        assert!(
            prefixes.contains(&(Some("10.0.0.9".parse().unwrap()), 32, 17, 53)),
            "an address is its own full-length network: {prefixes:?}"
        );
        assert_eq!(
            parse_network("10.1.2.3"),
            Some(("10.1.2.3".parse().unwrap(), 32))
        );
        assert_eq!(parse_network("10.1.2.0/33"), None);
        assert_eq!(parse_network("nonsense/8"), None);
    }
}
