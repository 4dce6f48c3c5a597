//! The workload graph: nodes are workloads (compose service, Kubernetes workload or
//! image), the host, and external endpoints grouped by the DNS name they were reached
//! by or else by network (/24, /64); edges are (source, target, protocol, port) with
//! bytes each way, connection counts, first/last seen and state. Aggregating this way
//! keeps a node with thousands of containers and connections one node and one edge
//! per service port.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::flow::{Direction, Flow, Peer, Proto};

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Workload,
    Host,
    External,
}

/// An edge's standing against the learned segmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeState {
    /// No baseline covers its source.
    #[default]
    Unlearned,
    /// In the source's baseline.
    Baseline,
    /// Outside the baseline (monitor mode alerts on it).
    Anomalous,
    /// Outside the baseline and refused in the kernel (protect mode).
    Blocked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    /// `image:…`, `compose:…`, `k8s:…`, `host`, `dns:<name>` or `cidr:<net>`.
    pub id: String,
    pub kind: NodeKind,
    pub label: String,
    /// Containers of a workload node seen in the window (at most 64 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub source: String,
    pub target: String,
    pub protocol: Proto,
    pub port: u16,
    /// Bytes from source to target, and back.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connections: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub state: EdgeState,
    /// Processes that opened it (at most 8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
}

impl GraphEdge {
    pub fn key(&self) -> (&str, &str, Proto, u16) {
        (&self.source, &self.target, self.protocol, self.port)
    }
}

/// Which flows make the graph.
#[derive(Debug, Clone, Default)]
pub struct GraphQuery {
    /// Flows last seen at or after this (ns since the epoch); 0: all.
    pub since_ns: u64,
    /// Only edges with an end whose id contains this.
    pub workload: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// The graph node of a flow's peer.
pub fn peer_node(flow: &Flow) -> Option<(String, NodeKind, String)> {
    match &flow.peer {
        Peer::Loopback => None,
        Peer::Container { workload, name, .. } => {
            Some((workload.clone(), NodeKind::Workload, name.clone()))
        }
        Peer::Host => Some(("host".into(), NodeKind::Host, "host".into())),
        Peer::External {
            dns_name: Some(name),
        } => Some((format!("dns:{name}"), NodeKind::External, name.clone())),
        Peer::External { dns_name: None } => {
            let net = network_of(&flow.remote_ip);
            Some((format!("cidr:{net}"), NodeKind::External, net))
        }
    }
}

/// The /24 (IPv4) or /64 (IPv6) an address is in.
pub fn network_of(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The local workload's node id of a flow.
fn local_node(flow: &Flow) -> (String, NodeKind) {
    if flow.workload.is_empty() {
        ("host".into(), NodeKind::Host)
    } else {
        (flow.workload.clone(), NodeKind::Workload)
    }
}

/// Source, target and service port of a flow's edge; `None` for flows counted from
/// the other end (an inbound flow from another container on this node: that
/// container's outbound flow is the same connection).
pub fn edge_ends(flow: &Flow) -> Option<(String, String, u16)> {
    let (peer, _, _) = peer_node(flow)?;
    let (local, _) = local_node(flow);
    let outbound = match flow.direction {
        Direction::Outbound => true,
        Direction::Inbound => false,
        Direction::Unknown => flow.remote_port <= flow.local_port,
    };
    if outbound {
        Some((local, peer, flow.remote_port))
    } else if matches!(flow.peer, Peer::Container { .. }) {
        None
    } else {
        Some((peer, local, flow.local_port))
    }
}

/// A flow's peer as a key borrowed from the flow (no allocation per flow).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey<'a> {
    Workload(&'a str, &'a str),
    Host,
    Dns(&'a str),
    Net4([u8; 3]),
    Net6([u16; 4]),
}

impl PeerKey<'_> {
    fn of(f: &Flow) -> Option<PeerKey<'_>> {
        Some(match &f.peer {
            Peer::Loopback => return None,
            Peer::Container { workload, name, .. } => PeerKey::Workload(workload, name),
            Peer::Host => PeerKey::Host,
            Peer::External { dns_name: Some(n) } => PeerKey::Dns(n),
            Peer::External { dns_name: None } => match f.remote_ip {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    PeerKey::Net4([o[0], o[1], o[2]])
                }
                IpAddr::V6(a) => {
                    let s = a.segments();
                    PeerKey::Net6([s[0], s[1], s[2], s[3]])
                }
            },
        })
    }

    fn node(self) -> GraphNode {
        let (id, kind, label) = match self {
            PeerKey::Workload(w, name) => (w.to_string(), NodeKind::Workload, name.to_string()),
            PeerKey::Host => ("host".into(), NodeKind::Host, "host".into()),
            PeerKey::Dns(n) => (format!("dns:{n}"), NodeKind::External, n.to_string()),
            PeerKey::Net4(o) => {
                let net = format!("{}.{}.{}.0/24", o[0], o[1], o[2]);
                (format!("cidr:{net}"), NodeKind::External, net)
            }
            PeerKey::Net6(s) => {
                let net = format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]);
                (format!("cidr:{net}"), NodeKind::External, net)
            }
        };
        GraphNode {
            id,
            kind,
            label,
            containers: Vec::new(),
        }
    }
}

/// FNV-1a: the graph's keys are short strings and small integers hashed once per
/// flow, where SipHash's DoS resistance buys nothing (the keys are our own).
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

struct EdgeAcc<'a> {
    sent: u64,
    received: u64,
    connections: u64,
    first: u64,
    last: u64,
    processes: Vec<&'a str>,
}

/// Builds the graph of the flows the query selects; `state` gives each edge's
/// standing (the segmentation's verdict). Flows are grouped on keys borrowed from
/// them, so strings are made once per node and edge, not per flow.
pub fn build<'a>(
    flows: impl IntoIterator<Item = &'a Flow>,
    query: &GraphQuery,
    state: impl Fn(&GraphEdge) -> EdgeState,
) -> Graph {
    // (local workload or "" for the host, peer, outbound, protocol, port)
    type Key<'a> = (&'a str, PeerKey<'a>, bool, Proto, u16);
    let mut edges: HashMap<Key<'a>, EdgeAcc<'a>, FnvBuild> = HashMap::default();
    let mut containers: HashMap<&'a str, Vec<&'a str>, FnvBuild> = HashMap::default();
    for f in flows {
        if f.last_ns < query.since_ns {
            continue;
        }
        let Some(peer) = PeerKey::of(f) else { continue };
        let outbound = match f.direction {
            Direction::Outbound => true,
            Direction::Inbound => false,
            Direction::Unknown => f.remote_port <= f.local_port,
        };
        // The other container counted the same connection as outbound.
        if !outbound && matches!(peer, PeerKey::Workload(..)) {
            continue;
        }
        let port = if outbound {
            f.remote_port
        } else {
            f.local_port
        };
        let local: &str = &f.workload;
        let key = (local, peer, outbound, f.proto, port);
        let e = edges.entry(key).or_insert(EdgeAcc {
            sent: 0,
            received: 0,
            connections: 0,
            first: f.first_ns,
            last: f.last_ns,
            processes: Vec::new(),
        });
        if outbound {
            e.sent += f.bytes_out;
            e.received += f.bytes_in;
            if let Some(p) = &f.process {
                if e.processes.len() < 8 && !e.processes.contains(&p.comm.as_str()) {
                    e.processes.push(&p.comm);
                }
            }
        } else {
            e.sent += f.bytes_in;
            e.received += f.bytes_out;
        }
        e.connections += 1;
        e.first = e.first.min(f.first_ns);
        e.last = e.last.max(f.last_ns);
        if !f.container_id.is_empty() {
            let c = containers.entry(local).or_default();
            if c.len() < 64 && !c.contains(&f.container_id.as_str()) {
                c.push(&f.container_id);
            }
        }
    }
    let mut nodes: HashMap<String, GraphNode, FnvBuild> = HashMap::default();
    let mut out = Vec::with_capacity(edges.len());
    for ((local, peer, outbound, proto, port), acc) in edges {
        let local_id = if local.is_empty() { "host" } else { local };
        if !nodes.contains_key(local_id) {
            let kind = if local.is_empty() {
                NodeKind::Host
            } else {
                NodeKind::Workload
            };
            nodes.insert(
                local_id.to_string(),
                GraphNode {
                    id: local_id.to_string(),
                    kind,
                    label: label_of(local_id),
                    containers: containers
                        .get(local)
                        .map(|c| c.iter().map(|s| s.to_string()).collect())
                        .unwrap_or_default(),
                },
            );
        }
        let peer_node = peer.node();
        let peer_id = peer_node.id.clone();
        nodes.entry(peer_id.clone()).or_insert(peer_node);
        if let Some(w) = &query.workload {
            if !local_id.contains(w.as_str()) && !peer_id.contains(w.as_str()) {
                continue;
            }
        }
        let (source, target) = if outbound {
            (local_id.to_string(), peer_id)
        } else {
            (peer_id, local_id.to_string())
        };
        let mut processes: Vec<String> = acc.processes.iter().map(|s| s.to_string()).collect();
        processes.sort();
        let mut e = GraphEdge {
            source,
            target,
            protocol: proto,
            port,
            bytes_sent: acc.sent,
            bytes_received: acc.received,
            connections: acc.connections,
            first_seen_ns: acc.first,
            last_seen_ns: acc.last,
            state: EdgeState::Unlearned,
            processes,
        };
        e.state = state(&e);
        out.push(e);
    }
    // Nodes with no edge left after the workload filter go.
    if query.workload.is_some() {
        let used: std::collections::HashSet<&str> = out
            .iter()
            .flat_map(|e| [e.source.as_str(), e.target.as_str()])
            .collect();
        nodes.retain(|id, _| used.contains(id.as_str()));
    }
    // One edge per (source, target, protocol, port): an inbound edge from a peer and
    // the same peer's own outbound edge merge.
    out.sort_by(|a, b| a.key().cmp(&b.key()));
    out.dedup_by(|b, a| {
        if a.key() == b.key() {
            a.bytes_sent += b.bytes_sent;
            a.bytes_received += b.bytes_received;
            a.connections += b.connections;
            a.first_seen_ns = a.first_seen_ns.min(b.first_seen_ns);
            a.last_seen_ns = a.last_seen_ns.max(b.last_seen_ns);
            true
        } else {
            false
        }
    });
    let mut nodes: Vec<GraphNode> = nodes.into_values().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Graph { nodes, edges: out }
}

fn label_of(id: &str) -> String {
    id.split_once(':').map(|(_, r)| r).unwrap_or(id).to_string()
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Graph {
    /// One line per edge, aligned.
    pub fn to_table(&self) -> String {
        let mut rows = vec![[
            "SOURCE".to_string(),
            "TARGET".into(),
            "PORT".into(),
            "CONNS".into(),
            "SENT".into(),
            "RECEIVED".into(),
            "STATE".into(),
            "PROCESSES".into(),
        ]];
        for e in &self.edges {
            rows.push([
                e.source.clone(),
                e.target.clone(),
                format!("{}/{}", e.protocol.name(), e.port),
                e.connections.to_string(),
                human_bytes(e.bytes_sent),
                human_bytes(e.bytes_received),
                serde_json::to_value(e.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                e.processes.join(","),
            ]);
        }
        let mut widths = [0usize; 8];
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{} nodes, {} edges",
            self.nodes.len(),
            self.edges.len()
        );
        out
    }

    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::from("digraph rampart_network {\n  rankdir=LR;\n");
        for n in &self.nodes {
            let shape = match n.kind {
                NodeKind::Workload => "box",
                NodeKind::Host => "house",
                NodeKind::External => "ellipse",
            };
            let _ = writeln!(
                out,
                "  {} [label={}, shape={shape}];",
                q(&n.id),
                q(&n.label)
            );
        }
        for e in &self.edges {
            let color = match e.state {
                EdgeState::Anomalous => "orange",
                EdgeState::Blocked => "red",
                _ => "black",
            };
            let label = format!(
                "{}/{} ×{} {}↑ {}↓",
                e.protocol.name(),
                e.port,
                e.connections,
                human_bytes(e.bytes_sent),
                human_bytes(e.bytes_received)
            );
            let _ = writeln!(
                out,
                "  {} -> {} [label={}, color={color}];",
                q(&e.source),
                q(&e.target),
                q(&label)
            );
        }
        out.push_str("}\n");
        out
    }
}
