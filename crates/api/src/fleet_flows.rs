//! The network graph of a fleet (`GetNetworkGraph` under `rampart central`), drawn from
//! the flow summaries the nodes publish and central stores
//! ([`rampart_store::flows`]), so it outlives nodes going offline.
//!
//! A node names its own containers and itself; an address it cannot name stays on the
//! edge (`peer_ip`). Central names it when exactly one other node reported a workload
//! at that address: the edge then joins the two nodes' workloads. Both nodes see such
//! a connection (one outbound, one inbound), so their counts of it are not added: the
//! larger is kept. Edges of one node to the same grouped peer (a CIDR, a DNS name) add
//! up. Vertices carry the nodes their workload runs on (`node`, comma-separated).

use std::collections::{BTreeSet, HashMap};

use rampart_proto::v1 as pb;
use rampart_store::flows::{FleetFlows, FlowSummary};

/// The graph's keys are short strings of our own: FNV, not SipHash.
type Fast = std::hash::BuildHasherDefault<rampart_netflow::graph::Fnv>;

/// One end of an edge: its id and the node it is on ("" outside the fleet), borrowed
/// from the stored flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct End<'a> {
    id: &'a str,
    node: &'a str,
}

#[derive(Debug, Clone, Default)]
struct Counters {
    bytes: u64,
    connections: u64,
    last_seen_ns: u64,
    anomalous: bool,
    blocked: bool,
}

impl Counters {
    fn of(e: &FlowSummary) -> Self {
        Self {
            bytes: e.bytes_sent.saturating_add(e.bytes_received),
            connections: e.connections,
            last_seen_ns: e.last_seen_ns,
            anomalous: matches!(e.state.as_str(), "anomalous" | "blocked"),
            blocked: e.state == "blocked",
        }
    }

    fn add(&mut self, o: &Counters) {
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.connections = self.connections.saturating_add(o.connections);
        self.merge_flags(o);
    }

    /// The same connections seen from the other end: the larger count.
    fn max(&mut self, o: &Counters) {
        self.bytes = self.bytes.max(o.bytes);
        self.connections = self.connections.max(o.connections);
        self.merge_flags(o);
    }

    fn merge_flags(&mut self, o: &Counters) {
        self.last_seen_ns = self.last_seen_ns.max(o.last_seen_ns);
        self.anomalous |= o.anomalous;
        self.blocked |= o.blocked;
    }
}

fn namespace_of(id: &str) -> &str {
    id.strip_prefix("k8s:")
        .and_then(|r| r.split_once('/'))
        .map_or("", |(ns, _)| ns)
}

/// Whether a graph id is one of a node's own (a workload or the host), not the world.
fn on_node(id: &str) -> bool {
    !(id.starts_with("dns:") || id.starts_with("cidr:"))
}

/// The fleet graph for a request (its window already applied by the store's query).
pub fn graph(flows: &FleetFlows, r: &pb::GetNetworkGraphRequest) -> pb::GetNetworkGraphResponse {
    // Who owns an address, per node (the store keeps each node's newest owner).
    let mut owners: HashMap<&str, Vec<(&str, &str, &str)>, Fast> = HashMap::default();
    for a in &flows.addresses {
        owners.entry(a.address.ip.as_str()).or_default().push((
            a.node.as_str(),
            a.address.workload.as_str(),
            a.address.label.as_str(),
        ));
    }
    let mut labels: HashMap<&str, &str, Fast> = HashMap::default();
    // (source, target, protocol, port) → (reporting node, counters summed within it),
    // the nodes' counts merged by the larger when both ends are in the fleet.
    type Key<'a> = (End<'a>, End<'a>, &'a str, u16);
    let mut per_node: HashMap<Key<'_>, Vec<(&str, Counters)>, Fast> = HashMap::default();
    for f in &flows.edges {
        let e = &f.edge;
        let end = |id: &'_ str| if on_node(id) { f.node.as_str() } else { "" };
        let mut source = End {
            id: &e.source,
            node: end(&e.source),
        };
        let mut target = End {
            id: &e.target,
            node: end(&e.target),
        };
        labels.entry(&e.source).or_insert(&e.source_label);
        labels.entry(&e.target).or_insert(&e.target_label);
        if !e.peer_ip.is_empty() {
            let mut elsewhere = owners
                .get(e.peer_ip.as_str())
                .into_iter()
                .flatten()
                .filter(|(n, _, _)| *n != f.node);
            // Only an unambiguous owner: bridge addresses repeat from host to host.
            if let (Some(&(node, workload, label)), None) = (elsewhere.next(), elsewhere.next()) {
                labels.entry(workload).or_insert(label);
                let named = End { id: workload, node };
                if e.outbound {
                    target = named;
                } else {
                    source = named;
                }
            }
        }
        let c = Counters::of(e);
        let by_node = per_node
            .entry((source, target, &e.protocol, e.port))
            .or_default();
        match by_node.iter_mut().find(|(n, _)| *n == f.node) {
            Some((_, sum)) => sum.add(&c),
            None => by_node.push((&f.node, c)),
        }
    }
    // Edges by (source id, target id, protocol, port), and the nodes of each vertex.
    let mut edges: HashMap<(&str, &str, &str, u16), Counters, Fast> = HashMap::default();
    let mut vertices: HashMap<&str, BTreeSet<&str>, Fast> = HashMap::default();
    for ((source, target, protocol, port), by_node) in per_node {
        if !r.namespace.is_empty()
            && namespace_of(source.id) != r.namespace
            && namespace_of(target.id) != r.namespace
        {
            continue;
        }
        if !r.node.is_empty() && source.node != r.node && target.node != r.node {
            continue;
        }
        let mut c = Counters::default();
        for (_, n) in &by_node {
            c.max(n);
        }
        for end in [source, target] {
            let nodes = vertices.entry(end.id).or_default();
            if !end.node.is_empty() {
                nodes.insert(end.node);
            }
        }
        edges
            .entry((source.id, target.id, protocol, port))
            .or_default()
            .add(&c);
    }
    let mut nodes: Vec<pb::GraphNode> = vertices
        .into_iter()
        .map(|(id, nodes)| pb::GraphNode {
            label: labels.get(id).copied().unwrap_or(id).to_string(),
            node: nodes.into_iter().collect::<Vec<_>>().join(","),
            namespace: namespace_of(id).to_string(),
            id: id.to_string(),
        })
        .collect();
    nodes.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let mut edges: Vec<pb::GraphEdge> = edges
        .into_iter()
        .map(|((source, target, protocol, port), c)| pb::GraphEdge {
            source: source.to_string(),
            target: target.to_string(),
            protocol: protocol.to_string(),
            port: u32::from(port),
            connections: c.connections,
            bytes: c.bytes,
            last_seen_ns: c.last_seen_ns,
            anomalous: c.anomalous,
            blocked: c.blocked,
            blocked_connections: 0,
        })
        .collect();
    edges.sort_unstable_by(|a, b| {
        (&a.source, &a.target, &a.protocol, a.port).cmp(&(
            &b.source,
            &b.target,
            &b.protocol,
            b.port,
        ))
    });
    pb::GetNetworkGraphResponse { nodes, edges }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_store::flows::{StoredAddress, StoredFlow, WorkloadAddress};

    fn edge(source: &str, target: &str, peer_ip: &str, outbound: bool, bytes: u64) -> FlowSummary {
        FlowSummary {
            source: source.into(),
            source_label: source.rsplit(':').next().unwrap().into(),
            target: target.into(),
            target_label: target.rsplit(':').next().unwrap().into(),
            protocol: "tcp".into(),
            port: 8080,
            peer_ip: peer_ip.into(),
            outbound,
            bytes_sent: bytes,
            bytes_received: 0,
            connections: 1,
            first_seen_ns: 1,
            last_seen_ns: 2,
            state: "unlearned".into(),
        }
    }

    fn stored(node: &str, edge: FlowSummary) -> StoredFlow {
        StoredFlow {
            node: node.into(),
            edge,
        }
    }

    fn address(node: &str, ip: &str, workload: &str) -> StoredAddress {
        StoredAddress {
            node: node.into(),
            address: WorkloadAddress {
                ip: ip.into(),
                workload: workload.into(),
                label: workload.rsplit(':').next().unwrap().into(),
                seen_ns: 1,
            },
        }
    }

    #[test]
    fn both_ends_of_a_cross_node_edge_are_one_edge() {
        let flows = FleetFlows {
            edges: vec![
                // n1's web calls n2's api (an address n1 cannot name), n2 sees it come in.
                stored(
                    "n1",
                    edge("image:web", "cidr:10.0.2.0/24", "10.0.2.5", true, 500),
                ),
                stored(
                    "n2",
                    edge("cidr:10.0.1.0/24", "image:api", "10.0.1.4", false, 450),
                ),
                // Two addresses of one outside network add up.
                stored(
                    "n1",
                    edge("image:web", "cidr:8.8.8.0/24", "8.8.8.8", true, 10),
                ),
                stored(
                    "n1",
                    edge("image:web", "cidr:8.8.8.0/24", "8.8.8.4", true, 20),
                ),
                // The same workload on both nodes to one name: both count.
                stored("n1", edge("image:web", "dns:example.com", "", true, 1)),
                stored("n2", edge("image:web", "dns:example.com", "", true, 2)),
                // An address two other nodes claim (a bridge address) stays unnamed.
                stored(
                    "n3",
                    edge("image:cli", "cidr:172.17.0.0/24", "172.17.0.2", true, 7),
                ),
            ],
            addresses: vec![
                address("n1", "10.0.1.4", "image:web"),
                address("n2", "10.0.2.5", "image:api"),
                address("n1", "172.17.0.2", "image:web"),
                address("n2", "172.17.0.2", "image:api"),
            ],
        };
        let g = graph(&flows, &pb::GetNetworkGraphRequest::default());
        let find = |s: &str, t: &str| {
            g.edges
                .iter()
                .find(|e| e.source == s && e.target == t)
                .unwrap_or_else(|| panic!("no edge {s} → {t} in {:#?}", g.edges))
        };
        let cross = find("image:web", "image:api");
        assert_eq!((cross.bytes, cross.connections), (500, 1), "counted once");
        assert_eq!(find("image:web", "cidr:8.8.8.0/24").bytes, 30);
        assert_eq!(find("image:web", "dns:example.com").bytes, 3);
        find("image:cli", "cidr:172.17.0.0/24");
        assert_eq!(g.edges.len(), 4, "{:#?}", g.edges);
        let node_of = |id: &str| g.nodes.iter().find(|n| n.id == id).unwrap().node.clone();
        assert_eq!(node_of("image:web"), "n1,n2");
        assert_eq!(node_of("image:api"), "n2");
        assert_eq!(node_of("dns:example.com"), "");
        // One node's part: edges with an end on it.
        let n2 = graph(
            &flows,
            &pb::GetNetworkGraphRequest {
                node: "n2".into(),
                ..Default::default()
            },
        );
        assert_eq!(n2.edges.len(), 2, "{:#?}", n2.edges);
    }
}
