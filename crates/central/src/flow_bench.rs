//! `rampart central bench --flow-edges N`: the fleet's network graph as central serves
//! it, from flow summaries stored in PostgreSQL (a schema of its own, dropped
//! afterwards). Virtual nodes report edges between `workloads` workloads spread over
//! them round-robin, between random pairs: most cross nodes (3 in 4 with 4 nodes), so
//! both ends report them and central names the far end by its address. Timed per round: reading the window's edges and addresses
//! from the store, and drawing the graph ([`rampart_api::fleet_flows::graph`]).

use std::sync::Arc;
use std::time::Instant;

use rampart_store::flows::{FlowReport, FlowSummary, WorkloadAddress};
use serde::Serialize;

use crate::bench::BenchError;

#[derive(Debug, Clone, Serialize)]
pub struct FlowBenchReport {
    pub nodes: usize,
    pub workloads: usize,
    /// Edges between workloads (a crossing one is stored twice, once per end).
    pub edges: usize,
    pub rows_stored: u64,
    pub graph_nodes: usize,
    pub graph_edges: usize,
    /// Per round: the store's read, the graph's drawing (ms).
    pub read_ms: Vec<f64>,
    pub draw_ms: Vec<f64>,
}

fn address(w: usize) -> String {
    format!("10.{}.{}.{}", (w >> 16) & 255, (w >> 8) & 255, w & 255)
}

fn workload(w: usize) -> String {
    format!("k8s:ns{}/app{w}", w % 50)
}

/// Each node's report: its edges and its workloads' addresses.
fn reports(nodes: usize, workloads: usize, edges: usize, now: u64) -> Vec<(String, FlowReport)> {
    let mut out: Vec<FlowReport> = (0..nodes)
        .map(|_| FlowReport {
            ts_ns: now,
            ..Default::default()
        })
        .collect();
    for w in 0..workloads {
        out[w % nodes].addresses.push(WorkloadAddress {
            ip: address(w),
            workload: workload(w),
            label: format!("ns{}/app{w}", w % 50),
            seen_ns: now,
        });
    }
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let summary =
        |source: String, target: String, peer_ip: String, outbound: bool, port: u16| FlowSummary {
            source_label: source.clone(),
            target_label: target.clone(),
            source,
            target,
            protocol: "tcp".into(),
            port,
            peer_ip,
            outbound,
            bytes_sent: 4096,
            bytes_received: 65536,
            connections: 3,
            first_seen_ns: now.saturating_sub(3_600_000_000_000),
            last_seen_ns: now,
            state: "baseline".into(),
        };
    for e in 0..edges {
        let src = next(workloads);
        let dst = (src + 1 + next(workloads - 1)) % workloads;
        let port = 8000 + (e % 20) as u16;
        let (sn, dn) = (src % nodes, dst % nodes);
        if sn == dn {
            out[sn].edges.push(summary(
                workload(src),
                workload(dst),
                String::new(),
                true,
                port,
            ));
        } else {
            let net = |w: usize| {
                format!(
                    "cidr:{}.0/24",
                    address(w).rsplit_once('.').map_or("", |(n, _)| n)
                )
            };
            out[sn]
                .edges
                .push(summary(workload(src), net(dst), address(dst), true, port));
            out[dn]
                .edges
                .push(summary(net(src), workload(dst), address(src), false, port));
        }
    }
    out.into_iter()
        .enumerate()
        .map(|(i, r)| (format!("bench-node-{i}"), r))
        .collect()
}

/// Stores the nodes' reports (in messages of at most 1000 edges, as nodes send them),
/// then reads and draws the graph `rounds` times.
pub async fn flow_graph_bench(
    postgres: &str,
    nodes: usize,
    workloads: usize,
    edges: usize,
    rounds: usize,
) -> Result<FlowBenchReport, BenchError> {
    let join = |e: tokio::task::JoinError| crate::CentralError::Join(e.to_string());
    let schema = crate::bench::BenchSchema::open(
        postgres,
        crate::bench::BenchSchema::unique_name("rampart_flowbench"),
    )
    .await?;
    let pg_store = schema.store.clone();
    let store: Arc<dyn rampart_store::Store> = pg_store.clone();
    let nodes = nodes.max(2);
    let workloads = workloads.max(2);
    let run = {
        let store = store.clone();
        tokio::task::spawn_blocking(
            move || -> Result<FlowBenchReport, rampart_store::StoreError> {
                let now = rampart_event::wall_ns();
                let mut rows = 0;
                for (node, report) in reports(nodes, workloads, edges, now) {
                    let mut addresses = Some(report.addresses);
                    for part in report.edges.chunks(rampart_bus::flows::EDGES_PER_MESSAGE) {
                        rows += store.put_flows(
                            &node,
                            &FlowReport {
                                ts_ns: now,
                                edges: part.to_vec(),
                                addresses: addresses.take().unwrap_or_default(),
                            },
                        )?;
                    }
                }
                let request = rampart_proto::v1::GetNetworkGraphRequest::default();
                let (mut read_ms, mut draw_ms) = (Vec::new(), Vec::new());
                let mut drawn = Default::default();
                for _ in 0..rounds.max(1) {
                    let t = Instant::now();
                    let flows = store.flows(0)?;
                    read_ms.push(t.elapsed().as_secs_f64() * 1e3);
                    let t = Instant::now();
                    drawn = rampart_api::fleet_flows::graph(&flows, &request);
                    draw_ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
                let drawn: rampart_proto::v1::GetNetworkGraphResponse = drawn;
                Ok(FlowBenchReport {
                    nodes,
                    workloads,
                    edges,
                    rows_stored: rows,
                    graph_nodes: drawn.nodes.len(),
                    graph_edges: drawn.edges.len(),
                    read_ms,
                    draw_ms,
                })
            },
        )
    };
    let result = run.await.map_err(join)?;
    schema.remove().await;
    Ok(result.map_err(crate::CentralError::Store)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_edges_are_reported_by_both_ends() {
        let r = reports(4, 100, 1000, rampart_event::wall_ns());
        let rows: usize = r.iter().map(|(_, x)| x.edges.len()).sum();
        assert!(rows > 1500 && rows < 2000, "{rows} rows for 1000 edges");
        assert_eq!(r.iter().map(|(_, x)| x.addresses.len()).sum::<usize>(), 100);
    }
}
