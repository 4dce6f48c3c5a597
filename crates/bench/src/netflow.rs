//! The network flow table's benchmarks, each against a baseline in the same run:
//!
//! - graph query: [`rampart_netflow::graph::build`] over the flows of a synthetic
//!   graph (5,000 workloads, 50,000 edges by default), against one pass over the same
//!   flows that only sums their bytes (the floor any query pays);
//! - flow aggregation in user space: the kernel's per-flow counters taken into the
//!   flow table (new flows named, then updated), against inserting the same records
//!   into a plain hash map;
//! - overhead (optional, needs root, Docker and the Python test image): a bulk TCP
//!   transfer and a connect storm between two containers on a Docker network, without
//!   and with the netflow programs attached, in alternating rounds.

use std::process::Command;
use std::time::Duration;

use rampart_bpf::netflow::{Accounting, NetflowOptions, NetflowProbe};
use rampart_netflow::bench::{median, AggregationBench, GraphBench, SizeConfig};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct NetBenchConfig {
    pub nodes: usize,
    pub edges: usize,
    pub flows_per_edge: usize,
    /// Records taken into the flow table per aggregation round.
    pub aggregate_flows: usize,
    pub rounds: usize,
    pub overhead: bool,
    pub bulk_mib: u64,
    pub connects: u64,
    /// How the overhead runs count TCP flows.
    pub accounting: Accounting,
    /// The image with python3 the overhead containers run.
    pub image: String,
}

impl Default for NetBenchConfig {
    fn default() -> Self {
        Self {
            nodes: 5_000,
            edges: 50_000,
            flows_per_edge: 2,
            aggregate_flows: 200_000,
            rounds: 5,
            overhead: false,
            bulk_mib: 1024,
            connects: 3000,
            accounting: Accounting::Packets,
            image: "rampart-test/pyapp:1".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OverheadBench {
    pub accounting: Accounting,
    pub rounds: usize,
    pub bulk_mib: u64,
    pub bulk_without_mib_s: f64,
    pub bulk_with_mib_s: f64,
    /// Throughput lost with flow accounting, in percent (median of the rounds' pairs).
    pub bulk_overhead_pct: f64,
    pub connects: u64,
    pub connects_without_per_s: f64,
    pub connects_with_per_s: f64,
    pub connects_overhead_pct: f64,
    pub flows_counted: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetBenchReport {
    pub graph: GraphBench,
    pub aggregation: AggregationBench,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<OverheadBench>,
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

const SERVER: &str = r#"
import socket, threading
def sink(c):
    while c.recv(1 << 20):
        pass
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1024)
while True:
    c, _ = s.accept()
    threading.Thread(target=sink, args=(c,), daemon=True).start()
"#;

const CLIENT: &str = r#"
import socket, sys, time
host, mib, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
buf = b"\0" * (1 << 20)
s = socket.create_connection((host, 5001))
t = time.perf_counter()
for _ in range(mib):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); s.close()
bulk = mib / (time.perf_counter() - t)
t = time.perf_counter()
for _ in range(n):
    c = socket.create_connection((host, 5001)); c.close()
conn = n / (time.perf_counter() - t)
print(bulk, conn)
"#;

/// Removes the bench's containers and network on drop.
struct Bed;

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "net-bench-srv", "net-bench-cli"]);
        let _ = docker(&["network", "rm", "net-bench"]);
    }
}

pub fn overhead_bench(c: &NetBenchConfig) -> Result<OverheadBench, String> {
    let _bed = Bed;
    let _ = docker(&["rm", "-f", "net-bench-srv", "net-bench-cli"]);
    let _ = docker(&["network", "rm", "net-bench"]);
    docker(&["network", "create", "net-bench"])?;
    docker(&[
        "run",
        "-d",
        "--name",
        "net-bench-srv",
        "--network",
        "net-bench",
        &c.image,
        "python3",
        "-c",
        SERVER,
    ])?;
    docker(&[
        "run",
        "-d",
        "--name",
        "net-bench-cli",
        "--network",
        "net-bench",
        &c.image,
        "sleep",
        "3600",
    ])?;
    let srv_ip = docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"net-bench\").IPAddress}}",
        "net-bench-srv",
    ])?;
    std::thread::sleep(Duration::from_millis(500));
    let run = || -> Result<(f64, f64), String> {
        let out = docker(&[
            "exec",
            "net-bench-cli",
            "python3",
            "-c",
            CLIENT,
            &srv_ip,
            &c.bulk_mib.to_string(),
            &c.connects.to_string(),
        ])?;
        let mut it = out
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        Ok((it.next().unwrap_or(0.0), it.next().unwrap_or(0.0)))
    };
    // Warm-up: page cache, python, conntrack.
    run()?;
    let dirs = rampart_netflow::directory::docker_parent_dirs();
    if dirs.is_empty() {
        return Err("no cgroup v2 directory of Docker's containers".into());
    }
    let (mut bw, mut bwo, mut cw, mut cwo, mut bulk_pct, mut conn_pct) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut flows_counted = 0;
    for round in 0..c.rounds.max(1) {
        // Alternate which arm goes first, so drift on the shared machine evens out.
        let mut pair = [(0.0, 0.0); 2];
        for arm in 0..2 {
            let with = (arm + round) % 2 == 0;
            let mut probe = if with {
                let options = NetflowOptions {
                    accounting: c.accounting,
                    ..NetflowOptions::default()
                };
                let mut p = NetflowProbe::load(None, options).map_err(|e| e.to_string())?;
                for d in &dirs {
                    p.attach(d).map_err(|e| e.to_string())?;
                }
                Some(p)
            } else {
                None
            };
            let r = run()?;
            if let Some(p) = probe.as_mut() {
                flows_counted = match c.accounting {
                    Accounting::Packets => p.stats().map(|s| s.flows_created).unwrap_or(0),
                    // Nothing is kept in the kernel: the sockets' reports, read once.
                    Accounting::Sockets => {
                        let mut flows = Vec::new();
                        p.read_changes(&mut flows).map_err(|e| e.to_string())?;
                        flows.len() as u64
                    }
                };
            }
            drop(probe);
            pair[usize::from(with)] = r;
        }
        let (without, with) = (pair[0], pair[1]);
        bwo.push(without.0);
        bw.push(with.0);
        cwo.push(without.1);
        cw.push(with.1);
        bulk_pct.push((without.0 - with.0) / without.0 * 100.0);
        conn_pct.push((without.1 - with.1) / without.1 * 100.0);
    }
    Ok(OverheadBench {
        accounting: c.accounting,
        rounds: c.rounds,
        bulk_mib: c.bulk_mib,
        bulk_without_mib_s: median(bwo),
        bulk_with_mib_s: median(bw),
        bulk_overhead_pct: median(bulk_pct),
        connects: c.connects,
        connects_without_per_s: median(cwo),
        connects_with_per_s: median(cw),
        connects_overhead_pct: median(conn_pct),
        flows_counted,
    })
}

pub fn run(c: &NetBenchConfig) -> Result<NetBenchReport, String> {
    let size = SizeConfig {
        nodes: c.nodes,
        edges: c.edges,
        flows_per_edge: c.flows_per_edge,
        aggregate_flows: c.aggregate_flows,
        rounds: c.rounds,
    };
    tracing::info!("net bench: graph query");
    let graph = rampart_netflow::bench::graph_bench(&size);
    tracing::info!("net bench: flow aggregation");
    let aggregation = rampart_netflow::bench::aggregation_bench(&size);
    let overhead = if c.overhead {
        tracing::info!("net bench: overhead on container traffic");
        Some(overhead_bench(c)?)
    } else {
        None
    };
    Ok(NetBenchReport {
        graph,
        aggregation,
        overhead,
    })
}
