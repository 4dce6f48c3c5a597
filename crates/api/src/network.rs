//! The network graph behind `GetNetworkGraph`: the local node's flow table (what its
//! netflow stage writes under `network.state_dir`), grouped by rampart-netflow. The
//! server that has one registers it once with [`register_state_dir`]. Central draws
//! the fleet's graph from the flow summaries its nodes publish instead
//! ([`crate::fleet_flows`]).

use std::path::PathBuf;
use std::sync::OnceLock;

use rampart_netflow::graph::{self, GraphQuery};
use rampart_netflow::segment::Segmentation;
use rampart_netflow::{EdgeState, Flow};
use rampart_proto::v1 as pb;

static STATE_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Serves the graph from this node's network state directory (`rampart up`).
pub fn register_state_dir(dir: PathBuf) {
    let _ = STATE_DIR.set(dir);
}

/// The graph for a request; `Ok(None)` when no flow table is registered here.
pub fn graph(
    r: &pb::GetNetworkGraphRequest,
) -> Result<Option<pb::GetNetworkGraphResponse>, String> {
    let Some(dir) = STATE_DIR.get() else {
        return Ok(None);
    };
    let path = dir.join("flows.json");
    let flows: Vec<Flow> = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?
        }
        // The stage has not written its first snapshot yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut seg = Segmentation::default();
    let baselines = dir.join("baselines.yaml");
    if let Ok(text) = std::fs::read_to_string(&baselines) {
        seg.import_yaml(&text, &baselines.display().to_string())
            .map_err(|e| e.to_string())?;
    }
    let query = GraphQuery {
        since_ns: r.since_ns,
        // Namespaces are the `k8s:<namespace>/` prefix of workload ids.
        workload: (!r.namespace.is_empty()).then(|| format!("k8s:{}/", r.namespace)),
    };
    let g = graph::build(&flows, &query, |e| seg.edge_state(e));
    let node = if r.node.is_empty() {
        String::new()
    } else {
        r.node.clone()
    };
    Ok(Some(pb::GetNetworkGraphResponse {
        nodes: g
            .nodes
            .iter()
            .map(|n| pb::GraphNode {
                id: n.id.clone(),
                label: n.label.clone(),
                node: node.clone(),
                namespace: n
                    .id
                    .strip_prefix("k8s:")
                    .and_then(|r| r.split_once('/'))
                    .map(|(ns, _)| ns.to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        edges: g
            .edges
            .iter()
            .map(|e| pb::GraphEdge {
                source: e.source.clone(),
                target: e.target.clone(),
                protocol: e.protocol.name(),
                port: u32::from(e.port),
                connections: e.connections,
                bytes: e.bytes_sent + e.bytes_received,
                last_seen_ns: e.last_seen_ns,
                anomalous: matches!(e.state, EdgeState::Anomalous | EdgeState::Blocked),
                blocked: e.state == EdgeState::Blocked,
                blocked_connections: 0,
            })
            .collect(),
    }))
}
