//! The workload graph: nodes are workloads (compose service, Kubernetes workload or
//! image), the host, and external endpoints grouped by the DNS name they were reached
//! by or else by network (/24, /64); edges are (source, target, protocol, port) with
//! bytes each way, connection counts, first/last seen and state. Aggregating this way
//! keeps a node with thousands of containers and connections one node and one edge
//! per service port.

use std::collections::{BTreeSet, HashMap};
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

/// Builds the graph of the flows the query selects; `state` gives each edge's
/// standing (the segmentation's verdict).
pub fn build<'a>(
    flows: impl IntoIterator<Item = &'a Flow>,
    query: &GraphQuery,
    state: impl Fn(&GraphEdge) -> EdgeState,
) -> Graph {
    let mut nodes: HashMap<String, GraphNode> = HashMap::new();
    let mut edges: HashMap<(String, String, Proto, u16), (GraphEdge, BTreeSet<String>)> =
        HashMap::new();
    for f in flows {
        if f.last_ns < query.since_ns {
            continue;
        }
        let Some((source, target, port)) = edge_ends(f) else {
            continue;
        };
        if let Some(w) = &query.workload {
            if !source.contains(w.as_str()) && !target.contains(w.as_str()) {
                continue;
            }
        }
        let outbound = {
            let (local, _) = local_node(f);
            source == local
        };
        let (local_id, local_kind) = local_node(f);
        let local = nodes.entry(local_id.clone()).or_insert_with(|| GraphNode {
            label: label_of(&local_id),
            id: local_id,
            kind: local_kind,
            containers: Vec::new(),
        });
        if !f.container_id.is_empty()
            && local.containers.len() < 64
            && !local.containers.contains(&f.container_id)
        {
            local.containers.push(f.container_id.clone());
        }
        if let Some((pid, kind, label)) = peer_node(f) {
            nodes.entry(pid.clone()).or_insert_with(|| GraphNode {
                id: pid,
                kind,
                label,
                containers: Vec::new(),
            });
        }
        let (sent, received) = if outbound {
            (f.bytes_out, f.bytes_in)
        } else {
            (f.bytes_in, f.bytes_out)
        };
        let key = (source, target, f.proto, port);
        let (e, procs) = edges.entry(key.clone()).or_insert_with(|| {
            (
                GraphEdge {
                    source: key.0.clone(),
                    target: key.1.clone(),
                    protocol: f.proto,
                    port,
                    bytes_sent: 0,
                    bytes_received: 0,
                    connections: 0,
                    first_seen_ns: f.first_ns,
                    last_seen_ns: f.last_ns,
                    state: EdgeState::Unlearned,
                    processes: Vec::new(),
                },
                BTreeSet::new(),
            )
        });
        e.bytes_sent += sent;
        e.bytes_received += received;
        e.connections += 1;
        e.first_seen_ns = e.first_seen_ns.min(f.first_ns);
        e.last_seen_ns = e.last_seen_ns.max(f.last_ns);
        if outbound && procs.len() < 8 {
            if let Some(p) = &f.process {
                procs.insert(p.comm.clone());
            }
        }
    }
    let mut edges: Vec<GraphEdge> = edges
        .into_values()
        .map(|(mut e, procs)| {
            e.processes = procs.into_iter().collect();
            e.state = state(&e);
            e
        })
        .collect();
    edges.sort_by(|a, b| a.key().cmp(&b.key()));
    let mut nodes: Vec<GraphNode> = nodes.into_values().collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Graph { nodes, edges }
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
