//! Flow summaries a node publishes (issue #20, fleet side): its flow table folded into
//! edges, so central keeps the fleet's network graph in its store and serves it while
//! nodes are offline. A node sends the edges that changed since its last report, each
//! with its counters as the node's table holds them (the newest report of an edge
//! wins), plus the addresses of its workloads: an edge to an address the node could
//! not name (another node's container) is named by central from the node that owns
//! the address.

use serde::{Deserialize, Serialize};

/// One report: a batch of its own on the bus.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowReport {
    /// When the node made it (the newest report of an edge wins).
    pub ts_ns: u64,
    pub edges: Vec<FlowSummary>,
    #[serde(default)]
    pub addresses: Vec<WorkloadAddress>,
}

/// One edge of the node's graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowSummary {
    /// Graph node ids (`image:…`, `compose:…`, `k8s:<ns>/…`, `host`, `dns:<name>`,
    /// `cidr:<net>`), source the side that opened the connections.
    pub source: String,
    pub source_label: String,
    pub target: String,
    pub target_label: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub port: u16,
    /// The peer's address when the node could not name it as one of its own
    /// containers or itself (empty otherwise); one edge per such address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    /// The source is this node's workload (the peer is the target).
    pub outbound: bool,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub connections: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// Against the node's learned segmentation: `unlearned`, `baseline`, `anomalous`
    /// or `blocked`.
    pub state: String,
}

/// An address one of the node's workloads used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadAddress {
    pub ip: String,
    pub workload: String,
    pub label: String,
    pub seen_ns: u64,
}

/// Edges per bus message at most (a summary is ~300 bytes of JSON; NATS takes 1 MiB).
pub const EDGES_PER_MESSAGE: usize = 1000;
