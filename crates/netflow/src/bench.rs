//! Synthetic graphs and the user-space benchmarks of the flow table (graph query,
//! flow aggregation), each against a baseline in the same run. `rampart net bench`
//! (rampart-bench) runs them with the kernel overhead bench; `cargo bench -p
//! rampart-netflow` runs them alone, optimized.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use rampart_bpf::netflow::{Initiator, KernelFlow};
use serde::Serialize;

use crate::graph::{self, GraphQuery};
use crate::{ContainerInfo, Direction, Directory, EdgeState, Flow, FlowTable, Peer, Proto};

/// What the user-space benches size.
#[derive(Debug, Clone)]
pub struct SizeConfig {
    pub nodes: usize,
    pub edges: usize,
    pub flows_per_edge: usize,
    /// Records taken into the flow table per aggregation round.
    pub aggregate_flows: usize,
    pub rounds: usize,
}

impl Default for SizeConfig {
    fn default() -> Self {
        Self {
            nodes: 5_000,
            edges: 50_000,
            flows_per_edge: 2,
            aggregate_flows: 200_000,
            rounds: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphBench {
    pub nodes: usize,
    pub edges: usize,
    pub flows: usize,
    /// Medians of the rounds: one pass summing the flows' bytes (the floor), the full
    /// graph, and the graph of the last half hour.
    pub baseline_scan_ms: f64,
    pub query_ms: f64,
    pub query_since_half_ms: f64,
    /// The same on this thread's CPU clock (what the query costs without the waits
    /// for a core on a busy machine).
    pub baseline_scan_cpu_ms: f64,
    pub query_cpu_ms: f64,
    pub query_since_half_cpu_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AggregationBench {
    pub flows: usize,
    pub baseline_hashmap_per_s: f64,
    /// New flows: named (peer, workload) and inserted.
    pub new_flows_per_s: f64,
    /// Known flows: counters updated.
    pub updates_per_s: f64,
}

/// This thread's CPU time: on a shared machine wall time counts the waits for a core.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A reproducible generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n))
}

/// Flows of a graph of `nodes` workloads and `edges` distinct (source, target, port)
/// edges, a tenth of them to external networks.
pub fn synthetic_flows(nodes: usize, edges: usize, per_edge: usize) -> Vec<Flow> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen = std::collections::HashSet::new();
    let mut flows = Vec::with_capacity(edges * per_edge);
    let base = 1_700_000_000_000_000_000u64;
    while seen.len() < edges {
        let s = (rng.next() % nodes as u64) as u32;
        let external = rng.next().is_multiple_of(10);
        let t = (rng.next() % nodes as u64) as u32;
        let port = [80u16, 443, 5432, 6379, 8080, 9090, 53, 3306][(rng.next() % 8) as usize];
        if s == t || !seen.insert((s, t, port, external)) {
            continue;
        }
        for k in 0..per_edge {
            let (peer, remote) = if external {
                (
                    Peer::External {
                        dns_name: t.is_multiple_of(2).then(|| format!("svc{t}.example.com")),
                    },
                    IpAddr::V4(Ipv4Addr::from(0xc000_0000 | t)),
                )
            } else {
                (
                    Peer::Container {
                        id: format!("c{t}"),
                        name: format!("w{t}-1"),
                        image: format!("img{t}"),
                        workload: format!("compose:bench/w{t}"),
                    },
                    ip(t),
                )
            };
            let when = base + rng.next() % 3_600_000_000_000;
            flows.push(Flow {
                cgroup_id: u64::from(s) + 1,
                container_id: format!("c{s}"),
                workload: format!("compose:bench/w{s}"),
                proto: Proto::Tcp,
                local_ip: ip(s),
                local_port: 30000 + k as u16,
                remote_ip: remote,
                remote_port: port,
                direction: Direction::Outbound,
                bytes_out: 1000 + rng.next() % 100_000,
                packets_out: 10,
                bytes_in: 1000 + rng.next() % 1_000_000,
                packets_in: 12,
                first_ns: when,
                last_ns: when + 1_000_000,
                tcp_flags_out: 0x13,
                tcp_flags_in: 0x13,
                peer,
                process: None,
                tls: None,
            });
        }
    }
    flows
}

pub fn graph_bench(c: &SizeConfig) -> GraphBench {
    let flows = synthetic_flows(c.nodes, c.edges, c.flows_per_edge);
    let (mut base, mut query, mut since) = (Vec::new(), Vec::new(), Vec::new());
    let (mut base_cpu, mut query_cpu, mut since_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut edges = 0;
    let mut nodes = 0;
    let half = flows.iter().map(|f| f.last_ns).min().unwrap_or(0) + 1_800_000_000_000;
    for _ in 0..c.rounds.max(1) {
        let (t, c) = (Instant::now(), thread_cpu());
        let total: u64 = flows.iter().map(|f| f.bytes_out + f.bytes_in).sum();
        std::hint::black_box(total);
        base.push(ms(t.elapsed()));
        base_cpu.push(ms(thread_cpu() - c));
        let (t, c) = (Instant::now(), thread_cpu());
        let g = graph::build(&flows, &GraphQuery::default(), |_| EdgeState::Unlearned);
        query.push(ms(t.elapsed()));
        query_cpu.push(ms(thread_cpu() - c));
        edges = g.edges.len();
        nodes = g.nodes.len();
        let (t, c) = (Instant::now(), thread_cpu());
        let q = GraphQuery {
            since_ns: half,
            workload: None,
        };
        let h = graph::build(&flows, &q, |_| EdgeState::Unlearned);
        since.push(ms(t.elapsed()));
        since_cpu.push(ms(thread_cpu() - c));
        drop(h);
    }
    GraphBench {
        nodes,
        edges,
        flows: flows.len(),
        baseline_scan_ms: median(base),
        query_ms: median(query),
        query_since_half_ms: median(since),
        baseline_scan_cpu_ms: median(base_cpu),
        query_cpu_ms: median(query_cpu),
        query_since_half_cpu_ms: median(since_cpu),
    }
}

pub fn aggregation_bench(c: &SizeConfig) -> AggregationBench {
    let n = c.aggregate_flows;
    let mut dir = Directory::new();
    for i in 0..1000u32 {
        dir.insert(ContainerInfo {
            id: format!("c{i}"),
            name: format!("w{i}"),
            image: format!("img{i}:1"),
            cgroup_id: u64::from(i) + 1,
            ips: vec![ip(i)],
            ..Default::default()
        });
    }
    let mut rng = Rng(42);
    let kflows: Vec<KernelFlow> = (0..n)
        .map(|i| {
            let s = (rng.next() % 1000) as u32;
            KernelFlow {
                cgroup_id: u64::from(s) + 1,
                proto: 6,
                local: ip(s),
                local_port: (i % 60000) as u16,
                remote: ip((rng.next() % 2000) as u32),
                remote_port: (i / 60000) as u16 + 80,
                bytes_out: 1,
                packets_out: 1,
                bytes_in: 1,
                packets_in: 1,
                first_ns: 1,
                last_ns: 2,
                initiator: Initiator::Local,
                tcp_flags_out: 0x12,
                tcp_flags_in: 0x12,
            }
        })
        .collect();
    let (mut base, mut new, mut upd) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..c.rounds.max(1) {
        let t = Instant::now();
        let mut m = HashMap::with_capacity(0);
        for k in &kflows {
            m.insert(
                (
                    k.cgroup_id,
                    k.proto,
                    k.local,
                    k.local_port,
                    k.remote,
                    k.remote_port,
                ),
                k.clone(),
            );
        }
        std::hint::black_box(&m);
        base.push(n as f64 / t.elapsed().as_secs_f64());
        let mut table = FlowTable::new();
        let t = Instant::now();
        table.ingest(&kflows, &dir);
        new.push(n as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        table.ingest(&kflows, &dir);
        upd.push(n as f64 / t.elapsed().as_secs_f64());
    }
    AggregationBench {
        flows: n,
        baseline_hashmap_per_s: median(base),
        new_flows_per_s: median(new),
        updates_per_s: median(upd),
    }
}
