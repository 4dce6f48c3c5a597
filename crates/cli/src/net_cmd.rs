//! `rampart net`: the network graph, baselines, NetworkPolicy generation and
//! simulation, and the network benchmark. Arguments only; the work is in
//! rampart-netflow (and rampart-bench for `net bench`).
//!
//! The running node writes its flow table and baselines under its network state
//! directory (`network.state_dir`, /var/lib/rampart/network by default); these
//! commands read and edit them there. `--live SECONDS` instead watches this host's
//! containers itself for that long (needs root and the kernel).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use rampart_netflow::graph::GraphQuery;
use rampart_netflow::policy;
use rampart_netflow::segment::{BaselineEdge, EdgeDirection, Mode, Segmentation};
use rampart_netflow::{EngineConfig, Flow, Graph, NetworkEngine, Proto};

#[derive(Args, Debug)]
pub struct NetArgs {
    #[command(subcommand)]
    command: NetCommand,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Json,
    Dot,
}

#[derive(Args, Debug, Clone)]
struct Source {
    /// The node's network state directory (flows.json, baselines.yaml).
    #[arg(long, default_value = "/var/lib/rampart/network")]
    state_dir: PathBuf,
    /// Watch this host's containers for this many seconds instead of reading the
    /// node's flow table.
    #[arg(long)]
    live: Option<u64>,
    /// Only flows seen within this long (e.g. 1h, 15m).
    #[arg(long)]
    since: Option<String>,
    /// Only edges with an end whose id contains this.
    #[arg(long)]
    workload: Option<String>,
}

#[derive(Subcommand, Debug)]
enum NetCommand {
    /// The workload graph: who talks to whom, on which ports, how much.
    Graph {
        #[command(flatten)]
        source: Source,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Learned segmentation baselines: show, export, import, edit.
    Baseline {
        #[arg(long, default_value = "/var/lib/rampart/network")]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Kubernetes NetworkPolicy YAML per workload, from the observed graph.
    Policy {
        #[command(flatten)]
        source: Source,
    },
    /// Which observed flows a NetworkPolicy file would block.
    Simulate {
        #[command(flatten)]
        source: Source,
        /// NetworkPolicy YAML (several documents allowed).
        #[arg(long)]
        policy: PathBuf,
    },
    /// Graph query and flow aggregation rates against baselines in the same run;
    /// with --overhead, flow accounting's cost on container traffic.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    #[arg(long, default_value_t = 50000)]
    edges: usize,
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Also measure flow accounting's cost on container traffic (root, Docker).
    #[arg(long)]
    overhead: bool,
    /// MiB sent per bulk transfer.
    #[arg(long, default_value_t = 1024)]
    bulk_mib: u64,
    /// Connections per connect storm.
    #[arg(long, default_value_t = 3000)]
    connects: u64,
    /// Count TCP from the sockets (`network.accounting: sockets`) in the overhead
    /// runs, instead of per packet.
    #[arg(long)]
    sockets: bool,
}

#[derive(Subcommand, Debug)]
enum BaselineCommand {
    /// Print every baseline (YAML).
    Show,
    /// Write every baseline to FILE (YAML).
    Export { file: PathBuf },
    /// Replace the baselines of the workloads in FILE.
    Import { file: PathBuf },
    /// Set a workload's mode: discover, monitor or protect.
    Mode { workload: String, mode: String },
    /// Allow an edge: `outbound|inbound PEER PROTO/PORT`.
    Allow {
        workload: String,
        direction: String,
        peer: String,
        port: String,
    },
    /// Forbid an edge (alerts; blocked in protect mode).
    Forbid {
        workload: String,
        direction: String,
        peer: String,
        port: String,
    },
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The flows to graph: the node's, or watched live here.
fn load_flows(source: &Source) -> anyhow::Result<(Vec<Flow>, Segmentation)> {
    let baselines_path = source.state_dir.join("baselines.yaml");
    let mut seg = Segmentation::default();
    if baselines_path.exists() {
        let text = std::fs::read_to_string(&baselines_path)
            .with_context(|| format!("reading {}", baselines_path.display()))?;
        seg.import_yaml(&text, &baselines_path.display().to_string())?;
    }
    let flows = match source.live {
        Some(secs) => {
            let config = EngineConfig {
                state_dir: None,
                ..Default::default()
            };
            let mut engine = NetworkEngine::start(config, None, &rampart_sensor::hostname())
                .context("starting the network engine (root and the kernel are needed)")?;
            engine.segmentation = seg.clone();
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                for a in engine.poll(now_ns())? {
                    eprintln!("alert: {}: {}", a.rule, a.message);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            engine.poll(now_ns())?;
            engine.table.flows().cloned().collect()
        }
        None => {
            let path = source.state_dir.join("flows.json");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "reading {} (is a node running with a network: section? or use --live SECONDS)",
                    path.display()
                )
            })?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
    };
    Ok((flows, seg))
}

fn query(source: &Source) -> anyhow::Result<GraphQuery> {
    let since_ns = match &source.since {
        Some(s) => {
            let d: Duration = humantime::parse_duration(s)
                .with_context(|| format!("--since {s:?}: expected a duration such as 1h or 15m"))?;
            now_ns().saturating_sub(d.as_nanos() as u64)
        }
        None => 0,
    };
    Ok(GraphQuery {
        since_ns,
        workload: source.workload.clone(),
    })
}

fn graph_of(source: &Source) -> anyhow::Result<(Graph, Vec<Flow>)> {
    let (flows, seg) = load_flows(source)?;
    let q = query(source)?;
    let g = rampart_netflow::graph::build(&flows, &q, |e| seg.edge_state(e));
    Ok((g, flows))
}

fn parse_edge(direction: &str, peer: &str, port: &str) -> anyhow::Result<BaselineEdge> {
    let direction = match direction {
        "outbound" => EdgeDirection::Outbound,
        "inbound" => EdgeDirection::Inbound,
        other => bail!("{other:?}: expected outbound or inbound"),
    };
    let (proto, number) = port.split_once('/').unwrap_or(("tcp", port));
    let protocol =
        Proto::parse(proto).with_context(|| format!("{proto:?}: expected tcp, udp or ipN"))?;
    let port: u16 = number
        .parse()
        .with_context(|| format!("{number:?}: expected a port number (e.g. tcp/8080)"))?;
    Ok(BaselineEdge {
        direction,
        peer: peer.to_string(),
        protocol,
        port,
    })
}

fn baseline(state_dir: &Path, command: BaselineCommand) -> anyhow::Result<i32> {
    let path = state_dir.join("baselines.yaml");
    let mut seg = Segmentation::default();
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        seg.import_yaml(&text, &path.display().to_string())?;
    }
    let now = now_ns();
    match command {
        BaselineCommand::Show => {
            print!("{}", seg.to_yaml()?);
            return Ok(0);
        }
        BaselineCommand::Export { file } => {
            std::fs::write(&file, seg.to_yaml()?)
                .with_context(|| format!("writing {}", file.display()))?;
            return Ok(0);
        }
        BaselineCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let n = seg.import_yaml(&text, &file.display().to_string())?;
            eprintln!("imported {n} workload baselines");
        }
        BaselineCommand::Mode { workload, mode } => {
            let m = Mode::parse(&mode)
                .with_context(|| format!("{mode:?}: expected discover, monitor or protect"))?;
            seg.set_mode(&workload, m, now);
        }
        BaselineCommand::Allow {
            workload,
            direction,
            peer,
            port,
        } => seg.allow(&workload, parse_edge(&direction, &peer, &port)?, now),
        BaselineCommand::Forbid {
            workload,
            direction,
            peer,
            port,
        } => seg.forbid(&workload, parse_edge(&direction, &peer, &port)?, now),
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    std::fs::write(&path, seg.to_yaml()?).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "{} updated; a running node takes it on SIGHUP",
        path.display()
    );
    Ok(0)
}

pub fn run(args: NetArgs) -> anyhow::Result<i32> {
    match args.command {
        NetCommand::Graph { source, format } => {
            let (g, _) = graph_of(&source)?;
            match format {
                Format::Table => print!("{}", g.to_table()),
                Format::Json => println!("{}", serde_json::to_string_pretty(&g)?),
                Format::Dot => print!("{}", g.to_dot()),
            }
            Ok(0)
        }
        NetCommand::Baseline { state_dir, command } => baseline(&state_dir, command),
        NetCommand::Policy { source } => {
            let (g, flows) = graph_of(&source)?;
            let policies = policy::generate(&g, &flows);
            print!("{}", policy::to_yaml(&policies)?);
            Ok(0)
        }
        NetCommand::Simulate { source, policy } => {
            let text = std::fs::read_to_string(&policy)
                .with_context(|| format!("reading {}", policy.display()))?;
            let policies = policy::parse_policies(&text, &policy.display().to_string())?;
            let (flows, _) = load_flows(&source)?;
            let q = query(&source)?;
            let flows: Vec<Flow> = flows
                .into_iter()
                .filter(|f| f.last_ns >= q.since_ns)
                .collect();
            let blocked = policy::simulate(&policies, &flows);
            if blocked.is_empty() {
                println!(
                    "{} policies block none of {} observed flows",
                    policies.len(),
                    flows.len()
                );
                return Ok(0);
            }
            for b in &blocked {
                println!(
                    "BLOCKED {} → {} {}/{} ({}) by {} of {}",
                    b.source,
                    b.target,
                    b.protocol.name(),
                    b.port,
                    b.remote,
                    b.side,
                    b.policies.join(", ")
                );
            }
            Ok(1)
        }
        NetCommand::Bench(a) => {
            let config = rampart_bench::netflow::NetBenchConfig {
                nodes: a.nodes,
                edges: a.edges,
                rounds: a.rounds,
                overhead: a.overhead,
                bulk_mib: a.bulk_mib,
                connects: a.connects,
                accounting: if a.sockets {
                    rampart_bpf::netflow::Accounting::Sockets
                } else {
                    rampart_bpf::netflow::Accounting::Packets
                },
                ..Default::default()
            };
            let report = rampart_bench::netflow::run(&config).map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(0)
        }
    }
}
