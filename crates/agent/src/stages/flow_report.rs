//! The node's flow summaries to central (issue #20, fleet side): every
//! [`FlowReportConfig::every`] it reads the flow table the netflow stage writes
//! (`<state_dir>/flows.json`), folds it into edges ([`summarize`]) and publishes those
//! that changed since its last report through the bus spool, in batches of their own
//! (a central that does not know them refuses only those). Central stores them, so the
//! fleet's graph outlives a node going offline.
//!
//! An edge to an address the node cannot name (not one of its containers, not itself)
//! keeps that address (`peer_ip`), and the node lists its workloads' addresses: central
//! names such an edge's far end from the node that owns the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bus::flows::{FlowReport, FlowSummary, WorkloadAddress, EDGES_PER_MESSAGE};
use rampart_bus::{BusRecord, NodeBatch, Spool};
use rampart_netflow::graph::{self, GraphEdge};
use rampart_netflow::segment::Segmentation;
use rampart_netflow::{Direction, EdgeState, Flow, Peer, Proto};

use crate::stage::{Batch, Stage, StageContext, StageError, Subscription};

/// What the stage reads and how often it reports.
#[derive(Debug, Clone)]
pub struct FlowReportConfig {
    pub node: String,
    pub node_version: String,
    /// The netflow stage's state directory (`network.state_dir`).
    pub state_dir: PathBuf,
    pub every: Duration,
}

/// Edges changed since the last report are sent again with the table's counters; the
/// window reaches this far behind the last report, as the table on disk lags it.
const OVERLAP: Duration = Duration::from_secs(10);

pub struct FlowReportStage {
    config: FlowReportConfig,
    spool: Arc<Spool>,
    /// The first report goes out soon after start, the next ones every `every`.
    next: Instant,
    /// Flows last seen before this were in an earlier report.
    since_ns: u64,
}

impl FlowReportStage {
    pub fn new(config: FlowReportConfig, spool: Arc<Spool>) -> Self {
        Self {
            next: Instant::now() + Duration::from_secs(10).min(config.every),
            config,
            spool,
            since_ns: 0,
        }
    }

    fn report(&mut self, now_ns: u64) -> Result<(), StageError> {
        let path = self.config.state_dir.join("flows.json");
        let flows: Vec<Flow> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StageError::new(format!("{}: {e}", path.display())))?,
            // The netflow stage has not written its first table yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StageError::new(format!("{}: {e}", path.display()))),
        };
        let mut seg = Segmentation::default();
        let baselines = self.config.state_dir.join("baselines.yaml");
        if let Ok(text) = std::fs::read_to_string(&baselines) {
            // A baseline that does not parse leaves the edges unlearned, not unsent.
            if let Err(e) = seg.import_yaml(&text, &baselines.display().to_string()) {
                tracing::warn!(error = %e, "network baselines unreadable; edges reported as unlearned");
            }
        }
        let report = summarize(&flows, self.since_ns, now_ns, |e| seg.edge_state(e));
        let sent = publish(&self.spool, &self.config, report)?;
        if sent > 0 {
            tracing::debug!(edges = sent, "flow summaries queued for central");
        }
        self.since_ns = now_ns.saturating_sub(OVERLAP.as_nanos() as u64);
        Ok(())
    }
}

/// Queues a report on the spool, split into messages of at most
/// [`EDGES_PER_MESSAGE`] edges (the addresses go with the first); returns the edges
/// queued.
pub fn publish(
    spool: &Spool,
    config: &FlowReportConfig,
    report: FlowReport,
) -> Result<usize, StageError> {
    if report.edges.is_empty() && report.addresses.is_empty() {
        return Ok(0);
    }
    let n = report.edges.len();
    let mut addresses = Some(report.addresses);
    let mut chunks: Vec<Vec<FlowSummary>> = report
        .edges
        .chunks(EDGES_PER_MESSAGE)
        .map(<[FlowSummary]>::to_vec)
        .collect();
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    for edges in chunks {
        let part = FlowReport {
            ts_ns: report.ts_ns,
            edges,
            addresses: addresses.take().unwrap_or_default(),
        };
        let batch = NodeBatch::new(
            &config.node,
            &config.node_version,
            vec![BusRecord::Flows(part)],
        );
        spool.push(1, &batch.encode()).map_err(StageError::new)?;
    }
    Ok(n)
}

fn label_of(id: &str) -> String {
    id.split_once(':').map_or(id, |(_, r)| r).to_string()
}

fn state_name(s: EdgeState) -> &'static str {
    match s {
        EdgeState::Unlearned => "unlearned",
        EdgeState::Baseline => "baseline",
        EdgeState::Anomalous => "anomalous",
        EdgeState::Blocked => "blocked",
    }
}

/// The node's flow table as edges: one per local workload, peer (and the peer's
/// address when the node could not name it), direction, protocol and service port,
/// with the counters of all the table's flows of that edge; only edges with a flow
/// last seen at or after `since_ns`. `state` places an edge against the node's
/// segmentation. The workloads' own addresses come along.
pub fn summarize(
    flows: &[Flow],
    since_ns: u64,
    now_ns: u64,
    state: impl Fn(&GraphEdge) -> EdgeState,
) -> FlowReport {
    type Key = (String, String, String, bool, Proto, u16);
    struct Acc {
        peer_label: String,
        sent: u64,
        received: u64,
        connections: u64,
        first: u64,
        last: u64,
    }
    let mut edges: HashMap<Key, Acc> = HashMap::new();
    let mut addresses: HashMap<IpAddr, (String, u64)> = HashMap::new();
    for f in flows {
        if !f.workload.is_empty() && !f.local_ip.is_loopback() && !f.local_ip.is_unspecified() {
            let a = addresses
                .entry(f.local_ip)
                .or_insert_with(|| (f.workload.clone(), f.last_ns));
            if f.last_ns >= a.1 {
                *a = (f.workload.clone(), f.last_ns);
            }
        }
        let Some((peer_id, _, peer_label)) = graph::peer_node(f) else {
            continue;
        };
        let outbound = match f.direction {
            Direction::Outbound => true,
            Direction::Inbound => false,
            Direction::Unknown => f.remote_port <= f.local_port,
        };
        // Another container of this node counted the same connection as outbound.
        if !outbound && matches!(f.peer, Peer::Container { .. }) {
            continue;
        }
        let port = if outbound {
            f.remote_port
        } else {
            f.local_port
        };
        let peer_ip = match f.peer {
            Peer::External { .. } => f.remote_ip.to_string(),
            _ => String::new(),
        };
        let local = if f.workload.is_empty() {
            "host".to_string()
        } else {
            f.workload.clone()
        };
        let e = edges
            .entry((local, peer_id, peer_ip, outbound, f.proto, port))
            .or_insert(Acc {
                peer_label,
                sent: 0,
                received: 0,
                connections: 0,
                first: f.first_ns,
                last: f.last_ns,
            });
        let (sent, received) = if outbound {
            (f.bytes_out, f.bytes_in)
        } else {
            (f.bytes_in, f.bytes_out)
        };
        e.sent += sent;
        e.received += received;
        e.connections += 1;
        e.first = e.first.min(f.first_ns);
        e.last = e.last.max(f.last_ns);
    }
    let mut out: Vec<FlowSummary> = edges
        .into_iter()
        .filter(|(_, a)| a.last >= since_ns)
        .map(|((local, peer, peer_ip, outbound, proto, port), a)| {
            let local_label = label_of(&local);
            let ((source, source_label), (target, target_label)) = if outbound {
                ((local, local_label), (peer, a.peer_label))
            } else {
                ((peer, a.peer_label), (local, local_label))
            };
            let mut g = GraphEdge {
                source,
                target,
                protocol: proto,
                port,
                bytes_sent: a.sent,
                bytes_received: a.received,
                connections: a.connections,
                first_seen_ns: a.first,
                last_seen_ns: a.last,
                state: EdgeState::Unlearned,
                processes: Vec::new(),
            };
            g.state = state(&g);
            FlowSummary {
                source_label,
                target_label,
                protocol: proto.name(),
                port,
                peer_ip,
                outbound,
                bytes_sent: g.bytes_sent,
                bytes_received: g.bytes_received,
                connections: g.connections,
                first_seen_ns: g.first_seen_ns,
                last_seen_ns: g.last_seen_ns,
                state: state_name(g.state).into(),
                source: g.source,
                target: g.target,
            }
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.last_seen_ns));
    let mut addresses: Vec<WorkloadAddress> = addresses
        .into_iter()
        .filter(|(_, (_, seen))| *seen >= since_ns)
        .map(|(ip, (workload, seen_ns))| WorkloadAddress {
            ip: ip.to_string(),
            label: label_of(&workload),
            workload,
            seen_ns,
        })
        .collect();
    addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
    FlowReport {
        ts_ns: now_ns,
        edges: out,
        addresses,
    }
}

impl Stage for FlowReportStage {
    fn name(&self) -> &str {
        "flow-report"
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            events: false,
            alerts: false,
            lifecycle: false,
        }
    }

    fn handle(&mut self, _batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, _ctx: &StageContext) -> Result<(), StageError> {
        if Instant::now() < self.next {
            return Ok(());
        }
        self.next = Instant::now() + self.config.every;
        self.report(now_ns)
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        // The netflow stage saves its table at stop too; what changed since goes now.
        self.report(rampart_event::wall_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(
        workload: &str,
        local: &str,
        remote: &str,
        port: u16,
        dir: Direction,
        peer: Peer,
    ) -> Flow {
        Flow {
            cgroup_id: 1,
            container_id: if workload.is_empty() {
                String::new()
            } else {
                "c1".into()
            },
            workload: workload.into(),
            proto: Proto::Tcp,
            local_ip: local.parse().unwrap(),
            local_port: if dir == Direction::Outbound {
                40000
            } else {
                port
            },
            remote_ip: remote.parse().unwrap(),
            remote_port: if dir == Direction::Outbound {
                port
            } else {
                40001
            },
            direction: dir,
            bytes_out: 100,
            packets_out: 1,
            bytes_in: 1000,
            packets_in: 2,
            first_ns: 10,
            last_ns: 50,
            tcp_flags_out: 0,
            tcp_flags_in: 0,
            peer,
            process: None,
            tls: None,
        }
    }

    #[test]
    fn flows_fold_into_edges_keeping_unnamed_peers_addresses() {
        let ext = || Peer::External { dns_name: None };
        let mut old = flow(
            "image:web",
            "172.18.0.2",
            "172.18.0.3",
            8080,
            Direction::Outbound,
            ext(),
        );
        old.last_ns = 5;
        let flows = vec![
            flow(
                "image:web",
                "172.18.0.2",
                "172.18.0.3",
                8080,
                Direction::Outbound,
                ext(),
            ),
            old,
            flow(
                "image:web",
                "172.18.0.2",
                "10.9.9.9",
                443,
                Direction::Outbound,
                ext(),
            ),
            // Inbound from an unnamed address: the peer is the source.
            flow(
                "image:web",
                "172.18.0.2",
                "172.18.0.9",
                80,
                Direction::Inbound,
                ext(),
            ),
            // Inbound from a container of this node: counted from its end.
            flow(
                "image:web",
                "172.18.0.2",
                "172.18.0.4",
                80,
                Direction::Inbound,
                Peer::Container {
                    id: "c2".into(),
                    name: "cli".into(),
                    image: "cli".into(),
                    workload: "image:cli".into(),
                },
            ),
        ];
        let r = summarize(&flows, 20, 99, |e| {
            if e.port == 443 {
                EdgeState::Anomalous
            } else {
                EdgeState::Baseline
            }
        });
        assert_eq!(r.ts_ns, 99);
        assert_eq!(r.edges.len(), 3, "{:#?}", r.edges);
        let to_api = r.edges.iter().find(|e| e.port == 8080).unwrap();
        assert_eq!(
            (to_api.source.as_str(), to_api.target.as_str()),
            ("image:web", "cidr:172.18.0.0/24")
        );
        assert_eq!(to_api.peer_ip, "172.18.0.3");
        assert!(to_api.outbound);
        assert_eq!(
            to_api.connections, 2,
            "both flows of the edge, the old one too"
        );
        assert_eq!((to_api.bytes_sent, to_api.bytes_received), (200, 2000));
        assert_eq!((to_api.first_seen_ns, to_api.last_seen_ns), (10, 50));
        assert_eq!(to_api.state, "baseline");
        let inbound = r.edges.iter().find(|e| e.port == 80).unwrap();
        assert_eq!(
            (inbound.source.as_str(), inbound.target.as_str()),
            ("cidr:172.18.0.0/24", "image:web")
        );
        assert!(!inbound.outbound);
        assert_eq!((inbound.bytes_sent, inbound.bytes_received), (1000, 100));
        assert_eq!(
            r.edges.iter().find(|e| e.port == 443).unwrap().state,
            "anomalous"
        );
        assert_eq!(r.addresses.len(), 1);
        assert_eq!(r.addresses[0].ip, "172.18.0.2");
        assert_eq!(r.addresses[0].label, "web");
        // Nothing changed since: nothing to send.
        assert!(summarize(&flows, 51, 100, |_| EdgeState::Unlearned)
            .edges
            .is_empty());
    }
    /// The stage reads the table the netflow stage wrote and queues one batch of its
    /// own; the next report sends only what changed (nothing here).
    #[test]
    fn the_stage_queues_the_table_on_its_spool_then_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("network");
        std::fs::create_dir_all(&state_dir).unwrap();
        let mut f = flow(
            "image:web",
            "172.18.0.2",
            "172.18.0.3",
            8080,
            Direction::Outbound,
            Peer::External { dns_name: None },
        );
        let now = rampart_event::wall_ns();
        (f.first_ns, f.last_ns) = (now - 60_000_000_000, now - 30_000_000_000);
        std::fs::write(
            state_dir.join("flows.json"),
            serde_json::to_vec(&vec![f]).unwrap(),
        )
        .unwrap();
        let spool = Spool::open(rampart_bus::SpoolConfig::new(
            dir.path().join("spool"),
            "n1",
        ))
        .unwrap();
        let mut stage = FlowReportStage::new(
            FlowReportConfig {
                node: "n1".into(),
                node_version: "0.1.0".into(),
                state_dir,
                every: Duration::from_secs(30),
            },
            spool.clone(),
        );
        stage.report(now).unwrap();
        let m = spool.head().unwrap().expect("a batch queued");
        let mut batch = NodeBatch::decode(&m.payload).unwrap();
        assert_eq!(batch.node, "n1");
        let flows = batch.take_flows();
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0].edges[0].target, "cidr:172.18.0.0/24");
        assert_eq!(flows[0].edges[0].peer_ip, "172.18.0.3");
        assert_eq!(flows[0].addresses[0].ip, "172.18.0.2");
        assert!(batch.records.is_empty(), "a batch of its own");
        spool.pop(m.seq).unwrap();
        // Ten seconds on, the flow has not moved: nothing more is queued.
        stage.report(now + 10_000_000_000).unwrap();
        assert!(spool.head().unwrap().is_none());
    }
}
