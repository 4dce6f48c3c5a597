//! The fleet's network flows (migration 5, both backends): the edges each node's flow
//! table folded into ([`rampart_bus::flows::FlowSummary`]), one row per node and edge,
//! the newest report's counters kept; and the addresses each node's workloads used, so
//! central can name an edge's far end that lives on another node. Kept in the store,
//! the graph survives the nodes that drew it going offline.

pub use rampart_bus::flows::{FlowReport, FlowSummary, WorkloadAddress};
use serde::{Deserialize, Serialize};

use crate::{ns_from_db, ns_to_db};

/// Migration 5 (the same text for both backends).
pub const FLOWS_SQL: &str = "
CREATE TABLE flow_edges (
    node TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    protocol TEXT NOT NULL,
    port BIGINT NOT NULL,
    peer_ip TEXT NOT NULL,
    source_label TEXT NOT NULL,
    target_label TEXT NOT NULL,
    outbound BIGINT NOT NULL,
    bytes_sent BIGINT NOT NULL,
    bytes_received BIGINT NOT NULL,
    connections BIGINT NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL,
    state TEXT NOT NULL,
    reported_ns BIGINT NOT NULL,
    PRIMARY KEY (node, source, target, protocol, port, peer_ip)
);
CREATE INDEX flow_edges_last_seen ON flow_edges (last_seen_ns);
CREATE TABLE flow_addresses (
    node TEXT NOT NULL,
    ip TEXT NOT NULL,
    workload TEXT NOT NULL,
    label TEXT NOT NULL,
    seen_ns BIGINT NOT NULL,
    PRIMARY KEY (node, ip)
);
";

/// What storing an edge does when the edge is stored already: the newer report's
/// counters, the earliest first and latest last sighting; the same report again (a
/// redelivery) or an older one changes nothing.
macro_rules! on_flow_conflict {
    () => {
        "
ON CONFLICT (node, source, target, protocol, port, peer_ip) DO UPDATE SET
    source_label = excluded.source_label, target_label = excluded.target_label,
    outbound = excluded.outbound, bytes_sent = excluded.bytes_sent,
    bytes_received = excluded.bytes_received, connections = excluded.connections,
    first_seen_ns = CASE WHEN excluded.first_seen_ns < flow_edges.first_seen_ns
        THEN excluded.first_seen_ns ELSE flow_edges.first_seen_ns END,
    last_seen_ns = CASE WHEN excluded.last_seen_ns > flow_edges.last_seen_ns
        THEN excluded.last_seen_ns ELSE flow_edges.last_seen_ns END,
    state = excluded.state, reported_ns = excluded.reported_ns
WHERE excluded.reported_ns > flow_edges.reported_ns"
    };
}

/// Keeps an edge's newest report (see `on_flow_conflict`), one edge per statement.
pub const PUT_FLOW_SQL: &str = concat!(
    "
INSERT INTO flow_edges (node, source, target, protocol, port, peer_ip, source_label,
    target_label, outbound, bytes_sent, bytes_received, connections, first_seen_ns,
    last_seen_ns, state, reported_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    on_flow_conflict!()
);

/// [`PUT_FLOW_SQL`] for a whole report in one PostgreSQL statement: `$1` the node,
/// `$2`..`$15` one array per column (each edge once: a statement may not update a
/// row twice), `$16` the report's time.
pub const PUT_FLOWS_PG: &str = concat!(
    "
INSERT INTO flow_edges (node, source, target, protocol, port, peer_ip, source_label,
    target_label, outbound, bytes_sent, bytes_received, connections, first_seen_ns,
    last_seen_ns, state, reported_ns)
SELECT $1, e.*, $16 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::int8[],
    $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[],
    $12::int8[], $13::int8[], $14::int8[], $15::text[]) AS e",
    on_flow_conflict!()
);

/// An address's newest owner on a node.
pub const PUT_ADDRESS_SQL: &str = "
INSERT INTO flow_addresses (node, ip, workload, label, seen_ns) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (node, ip) DO UPDATE SET
    workload = excluded.workload, label = excluded.label, seen_ns = excluded.seen_ns
WHERE excluded.seen_ns >= flow_addresses.seen_ns";

/// Edges last seen at or after `$1`, at most `$2`, newest first.
pub const FLOWS_SINCE_SQL: &str = "
SELECT node, source, target, protocol, peer_ip, source_label, target_label, state,
    port, outbound, bytes_sent, bytes_received, connections, first_seen_ns, last_seen_ns
FROM flow_edges WHERE last_seen_ns >= $1 ORDER BY last_seen_ns DESC, node, source, target
LIMIT $2";

/// Every node's workload addresses, newest first.
pub const ADDRESSES_SQL: &str = "
SELECT node, ip, workload, label, seen_ns FROM flow_addresses ORDER BY seen_ns DESC LIMIT $1";

/// Retention: edges and addresses not seen since `$1` go with the alerts of that age.
pub const PURGE_FLOWS_SQL: [&str; 2] = [
    "DELETE FROM flow_edges WHERE last_seen_ns < $1",
    "DELETE FROM flow_addresses WHERE seen_ns < $1",
];

/// Edges a graph reads at most (the fleet graph is aggregated by workload: this bounds
/// a pathological fleet, not a normal one).
pub const MAX_FLOW_EDGES: i64 = 200_000;

/// One node's edge as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFlow {
    pub node: String,
    pub edge: FlowSummary,
}

/// One node's workload address as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAddress {
    pub node: String,
    pub address: WorkloadAddress,
}

/// What the fleet graph is drawn from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetFlows {
    pub edges: Vec<StoredFlow>,
    pub addresses: Vec<StoredAddress>,
}

/// The values [`PUT_FLOW_SQL`] binds, in order.
pub type FlowRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    [i64; 5],
    String,
    i64,
);

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The rows of a report's edges, each edge once: the first row of a key, as
/// [`PUT_FLOW_SQL`] row after row keeps it (the later ones are no newer).
pub fn distinct_flow_rows(node: &str, report: &FlowReport) -> Vec<FlowRow> {
    let mut seen = std::collections::HashSet::new();
    flow_rows(node, report)
        .into_iter()
        .filter(|r| seen.insert((r.1.clone(), r.2.clone(), r.3.clone(), r.4, r.5.clone())))
        .collect()
}

/// The rows of a report's edges.
pub fn flow_rows(node: &str, report: &FlowReport) -> Vec<FlowRow> {
    report
        .edges
        .iter()
        .map(|e| {
            (
                node.to_string(),
                e.source.clone(),
                e.target.clone(),
                e.protocol.clone(),
                i64::from(e.port),
                e.peer_ip.clone(),
                e.source_label.clone(),
                e.target_label.clone(),
                i64::from(e.outbound),
                [
                    count(e.bytes_sent),
                    count(e.bytes_received),
                    count(e.connections),
                    ns_to_db(e.first_seen_ns),
                    ns_to_db(e.last_seen_ns),
                ],
                e.state.clone(),
                ns_to_db(report.ts_ns),
            )
        })
        .collect()
}

/// An edge from the columns of [`FLOWS_SINCE_SQL`]: its eight text columns, then its
/// seven integer ones.
pub fn flow_from_row(text: [String; 8], ints: [i64; 7]) -> StoredFlow {
    let [node, source, target, protocol, peer_ip, source_label, target_label, state] = text;
    let [port, outbound, sent, received, connections, first, last] = ints;
    StoredFlow {
        node,
        edge: FlowSummary {
            source,
            source_label,
            target,
            target_label,
            protocol,
            port: u16::try_from(port).unwrap_or(0),
            peer_ip,
            outbound: outbound != 0,
            bytes_sent: ns_from_db(sent),
            bytes_received: ns_from_db(received),
            connections: ns_from_db(connections),
            first_seen_ns: ns_from_db(first),
            last_seen_ns: ns_from_db(last),
            state,
        },
    }
}
