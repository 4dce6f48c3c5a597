//! `rampart central bench`: arguments and the wiring of the two fleet benchmarks. The
//! ingest benchmark is `rampart_central::bench`; the event stream puts a node's side
//! (`rampart_agent::fleet`) and central's client (`rampart_central::nodes`) on one
//! real NATS server and times a recorder query answered across it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rampart_agent::fleet::{serve_requests, NodeService};
use rampart_bus::rpc::EventQuery;
use rampart_bus_nats::{NatsBackplane, NatsConfig};
use rampart_central::bench::{ingest_bench, IngestBenchConfig};
use rampart_central::nodes::{NodeClient, RecordBatch};

#[derive(Args, Debug)]
pub struct FleetBenchArgs {
    /// PostgreSQL (libpq string); the benchmark works in a schema of its own and drops
    /// it. Default: $RAMPART_BENCH_PG.
    #[arg(long)]
    pub postgres: Option<String>,
    /// NATS server (a stream of the benchmark's own is created and deleted).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Records (alerts, flow edges and inventory updates) through the ingest path.
    #[arg(long, default_value_t = 500_000)]
    pub records: u64,
    /// Of every ten records, how many are alerts.
    #[arg(long, default_value_t = 6)]
    pub alerts_per_ten: u64,
    /// Of every ten records, how many are flow edges (in flow reports, batches of
    /// their own); the rest are inventory updates.
    #[arg(long, default_value_t = 2)]
    pub flows_per_ten: u64,
    /// Publishing nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Records per bus message.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Publishes in flight per node.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Records per second the nodes publish together, paced (0: as fast as JetStream
    /// takes them, a backlog for central to drain). Paced at a rate central sustains,
    /// the bus lag stays flat; above it, the lag grows for the whole run.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Bus messages central commits in one store transaction at most.
    #[arg(long, default_value_t = 64)]
    pub messages_per_commit: usize,
    /// Store transactions central runs at once (each group of messages its own).
    #[arg(long, default_value_t = 2)]
    pub commits_in_flight: usize,
    /// Records for the baseline, the previous ingest path, in the same process (0:
    /// skip it): every insert with ON CONFLICT, --baseline-commits-in-flight commits at a
    /// time of up to --baseline-messages-per-commit messages.
    #[arg(long, default_value_t = 200_000)]
    pub baseline_records: u64,
    /// Messages per commit in the baseline (1: one message per commit).
    #[arg(long, default_value_t = 64)]
    pub baseline_messages_per_commit: usize,
    /// Store transactions the baseline runs at once.
    #[arg(long, default_value_t = 1)]
    pub baseline_commits_in_flight: usize,
    /// Baseline and new path alternate this many times (a shared machine's load
    /// drifts; each round's figures are printed).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Raw events in the node's recorder for the streaming measurement (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Edges between workloads for the fleet network graph's measurement (0: skip):
    /// stored as the nodes' flow summaries, then read and drawn once per round.
    #[arg(long, default_value_t = 0)]
    pub flow_edges: usize,
    /// Workloads the graph's edges join, spread over --nodes.
    #[arg(long, default_value_t = 5000)]
    pub flow_workloads: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How the streamed records travel and what central makes of them.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum StreamMode {
    /// JSON lines from the node, counted at central (the previous path).
    Json,
    /// The recorder's block encoding, decoded to typed records at central.
    Binary,
    /// Binary on the wire, turned into JSON lines at central (what the API serves).
    BinaryToJson,
    /// Binary in chunks of 256 KiB of encoding (the previous bound; a node of its own).
    Binary256k,
}

#[derive(Debug, serde::Serialize)]
struct StreamReport {
    mode: StreamMode,
    events: u64,
    bytes: u64,
    chunks: u64,
    seconds: f64,
    events_per_s: f64,
    mib_per_s: f64,
    /// CPU time of this whole process (node side, NATS client and central side) while
    /// the answer streamed, and events per CPU second: the rate one free core would
    /// carry, whatever the shared machine's load.
    cpu_seconds: f64,
    events_per_cpu_s: f64,
    /// The reply chunk's codec alone (encode on the node, decode at central) over the
    /// first chunks of this answer: the JSON chunk older nodes send and the frame.
    chunk_codec_json_events_per_s: f64,
    chunk_codec_frame_events_per_s: f64,
}

/// Events per second through encode and decode of `chunks` in one chunk format.
fn codec_rate<B: AsRef<[u8]>>(
    chunks: &[String],
    encode: impl Fn(&rampart_bus::rpc::ReplyChunk) -> B,
) -> anyhow::Result<f64> {
    let events: u64 = chunks
        .iter()
        .map(|c| c.bytes().filter(|&b| b == b'\n').count() as u64)
        .sum();
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, lines) in chunks.iter().enumerate() {
            let c = rampart_bus::rpc::ReplyChunk {
                seq: i as u64,
                lines: lines.clone(),
                end: false,
                error: None,
                summary: None,
                records: None,
            };
            let back = rampart_bus::rpc::ReplyChunk::decode(encode(&c).as_ref())?;
            anyhow::ensure!(
                back.lines.len() == lines.len(),
                "the chunk came back changed"
            );
        }
    }
    Ok((events * rounds) as f64 / started.elapsed().as_secs_f64())
}

pub fn run(a: FleetBenchArgs) -> anyhow::Result<i32> {
    let postgres = a
        .postgres
        .clone()
        .or_else(|| std::env::var("RAMPART_BENCH_PG").ok())
        .ok_or_else(|| {
            anyhow::anyhow!("--postgres CONNSTR (or RAMPART_BENCH_PG) is required: there is no default password")
        })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let nats = NatsConfig::new(&a.nats);
    let config = |records: u64, messages_per_commit: usize, commits_in_flight, careful_ingest| {
        IngestBenchConfig {
            nats: nats.clone(),
            postgres: postgres.clone(),
            nodes: a.nodes,
            records,
            batch_records: a.batch,
            in_flight: a.in_flight,
            alerts_per_ten: a.alerts_per_ten,
            flows_per_ten: a.flows_per_ten,
            messages_per_commit,
            commits_in_flight,
            careful_ingest,
            rate_per_s: a.rate,
        }
    };
    let (mut baseline, mut ingest) = (Vec::new(), Vec::new());
    for _ in 0..a.rounds.max(1) {
        if a.baseline_records > 0 {
            baseline.push(rt.block_on(ingest_bench(config(
                a.baseline_records,
                a.baseline_messages_per_commit,
                a.baseline_commits_in_flight,
                true,
            )))?);
        }
        if a.records > 0 {
            ingest.push(rt.block_on(ingest_bench(config(
                a.records,
                a.messages_per_commit,
                a.commits_in_flight,
                false,
            )))?);
        }
    }
    let stream = if a.events > 0 {
        stream_bench(&rt, &nats, a.events, a.rounds.max(1))?
    } else {
        Vec::new()
    };
    let flows = if a.flow_edges > 0 {
        Some(rt.block_on(rampart_central::flow_bench::flow_graph_bench(
            &postgres,
            a.nodes,
            a.flow_workloads,
            a.flow_edges,
            a.rounds.max(3),
        ))?)
    } else {
        None
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({"ingest": ingest, "ingest_baseline": baseline, "event_stream": stream, "flow_graph": flows})
        );
    } else {
        if let Some(f) = &flows {
            let median = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "fleet network graph (PostgreSQL -> GetNetworkGraph): {} nodes, {} workloads, {} edges ({} rows): {} vertices, {} edges drawn; read median {:.0} ms {:?}, draw median {:.0} ms {:?}",
                f.nodes,
                f.workloads,
                f.edges,
                f.rows_stored,
                f.graph_nodes,
                f.graph_edges,
                median(&f.read_ms),
                f.read_ms.iter().map(|x| x.round()).collect::<Vec<_>>(),
                median(&f.draw_ms),
                f.draw_ms.iter().map(|x| x.round()).collect::<Vec<_>>()
            );
        }
        let arms = baseline
            .iter()
            .map(|r| ("baseline", r))
            .chain(ingest.iter().map(|r| ("new", r)));
        for (arm, r) in arms {
            println!(
            "ingest {arm} (JetStream -> PostgreSQL, up to {} messages per commit, {} commits at once, {}): {} records ({} alerts, {} flow edges of which {} superseded by a newer report first, {} inventory updates) in {:.2} s: {:.0} records/s stored, {:.0}/s published{}; bus lag max {:.0} ms, last {:.0} ms, sampled while publishing p50 {:.0} ms p99 {:.0} ms; stored {:.0} ms after the last publish; store errors {}",
            r.messages_per_commit,
            r.commits_in_flight,
            if r.store_path == "copy" { "new rows by binary COPY" } else { "new rows by INSERT ... UNNEST" },
            r.records,
            r.alerts,
            r.flow_edges + r.flow_edges_superseded,
            r.flow_edges_superseded,
            r.inventory,
            r.seconds,
            r.records_per_s,
            r.published_per_s,
            if r.rate_per_s > 0 { format!(" (paced at {}/s)", r.rate_per_s) } else { String::new() },
            r.max_lag_ms,
            r.last_lag_ms,
            r.lag_p50_ms,
            r.lag_p99_ms,
            r.drain_ms,
            r.store_errors
        );
        }
        for s in &stream {
            println!(
                "event stream {:?} (node recorder -> NATS -> central): {} events, {:.1} MiB in {} chunks in {:.2} s: {:.0} events/s, {:.1} MiB/s; {:.2} CPU s in this process, {:.0} events per CPU second; chunk codec alone: JSON chunks {:.0} events/s, frames {:.0} events/s",
                s.mode,
                s.events,
                s.bytes as f64 / (1 << 20) as f64,
                s.chunks,
                s.seconds,
                s.events_per_s,
                s.mib_per_s,
                s.cpu_seconds,
                s.events_per_cpu_s,
                s.chunk_codec_json_events_per_s,
                s.chunk_codec_frame_events_per_s
            );
        }
    }
    Ok(0)
}

/// Fills a recorder with `n` real events (the recorded workload, repeated), serves it
/// as a node over NATS, and times central reading all of it, in each [`StreamMode`]
/// (alternating, `rounds` times).
fn stream_bench(
    rt: &tokio::runtime::Runtime,
    nats: &NatsConfig,
    n: u64,
    rounds: usize,
) -> anyhow::Result<Vec<StreamReport>> {
    let dir = tempfile_dir()?;
    let workload =
        rampart_recorder::sample::load_events(&rampart_recorder::sample::workload_file())?;
    anyhow::ensure!(!workload.is_empty(), "the recorded workload is empty");
    {
        let rec =
            rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig::with_dir(&dir))?;
        let w = rampart_recorder::Writer::start(rec)?;
        let span = workload.last().map_or(0, |e| e.ts_ns) - workload[0].ts_ns + 1;
        for i in 0..n {
            let round = i / workload.len() as u64;
            let mut ev = workload[(i % workload.len() as u64) as usize].clone();
            ev.ts_ns += round * span;
            let ev = Arc::new(ev);
            // The writer sheds rather than wait: wait here instead.
            while !w.try_append_event(ev.clone()) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        w.close()?;
    }
    let node = format!("bench-stream-{}", std::process::id());
    let plane = Arc::new(rt.block_on(NatsBackplane::connect(nats.clone()))?);
    let service = Arc::new(NodeService::new(&node, &dir, Vec::new()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve_requests(plane.clone(), service, async {
        let _ = stop_rx.await;
    }));
    // The same recorder behind a node that cuts binary chunks at the previous bound.
    let node_256k = format!("{node}-256k");
    let mut small = NodeService::new(&node_256k, &dir, Vec::new());
    small.binary_chunk_bytes = 256 << 10;
    let (stop_small_tx, stop_small_rx) = tokio::sync::oneshot::channel::<()>();
    let server_small = rt.spawn(serve_requests(plane.clone(), Arc::new(small), async {
        let _ = stop_small_rx.await;
    }));
    let client = NodeClient::new(plane, None);
    let (client, node, node_256k) = (&client, node.as_str(), node_256k.as_str());
    let one = |mode: StreamMode| async move {
        let started = Instant::now();
        let cpu_before = process_cpu_seconds();
        let query = EventQuery {
            binary: !matches!(mode, StreamMode::Json),
            ..Default::default()
        };
        let target = match mode {
            StreamMode::Binary256k => node_256k,
            _ => node,
        };
        let mut s = client.query_events(target, query).await?;
        let (mut events, mut bytes, mut chunks) = (0u64, 0u64, 0u64);
        let mut sample = Vec::new();
        loop {
            let batch = match mode {
                StreamMode::BinaryToJson => s.next_batch().await?.map(RecordBatch::Lines),
                StreamMode::Json | StreamMode::Binary | StreamMode::Binary256k => {
                    s.next_records().await?
                }
            };
            let Some(batch) = batch else { break };
            chunks += 1;
            match batch {
                RecordBatch::Lines(b) => {
                    events += b.as_bytes().iter().filter(|&&c| c == b'\n').count() as u64;
                    if sample.len() < 32 {
                        sample.push(b);
                    }
                }
                RecordBatch::Records(r) => {
                    anyhow::ensure!(
                        matches!(mode, StreamMode::Binary | StreamMode::Binary256k),
                        "binary records where lines were asked for"
                    );
                    events += r.len() as u64;
                }
            }
        }
        bytes += s.received_bytes();
        let secs = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds() - cpu_before;
        let (json, frame) = if sample.is_empty() {
            (0.0, 0.0)
        } else {
            (
                codec_rate(&sample, |c| c.encode_json())?,
                codec_rate(&sample, |c| c.encode())?,
            )
        };
        anyhow::ensure!(events == n, "{mode:?}: {events} of {n} events came back");
        anyhow::Ok(StreamReport {
            mode,
            events,
            bytes,
            chunks,
            seconds: secs,
            events_per_s: events as f64 / secs,
            mib_per_s: bytes as f64 / (1 << 20) as f64 / secs,
            cpu_seconds: cpu,
            events_per_cpu_s: if cpu > 0.0 { events as f64 / cpu } else { 0.0 },
            chunk_codec_json_events_per_s: json,
            chunk_codec_frame_events_per_s: frame,
        })
    };
    let report = rt.block_on(async {
        // The subscription is in place once a ping is answered.
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.ping(node).await.is_err() || client.ping(node_256k).await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the bench node did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut reports = Vec::new();
        for _ in 0..rounds {
            for mode in [
                StreamMode::Json,
                StreamMode::Binary256k,
                StreamMode::Binary,
                StreamMode::BinaryToJson,
            ] {
                reports.push(one(mode).await?);
            }
        }
        anyhow::Ok(reports)
    });
    let _ = stop_tx.send(());
    let _ = stop_small_tx.send(());
    let _ = rt.block_on(server);
    let _ = rt.block_on(server_small);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

/// User and system CPU time of this process so far, in seconds (0 where /proc is
/// missing: the CPU figures then read 0, the wall-clock ones stand).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces, so split after its ')').
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime, fields 14 and 15 of proc_pid_stat(5): 11 and 12 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // Linux reports these in USER_HZ, 100 on every architecture Rampart runs on.
    ticks as f64 / 100.0
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!(
        "rampart-stream-bench-{}-{}",
        std::process::id(),
        rampart_event::wall_ns()
    ));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
