//! `rampart central bench`: the fleet's ingest path measured end to end on real
//! servers. Virtual nodes publish encoded batches of alerts, flow reports and inventory
//! updates (container lifecycle) to NATS JetStream (a stream of the benchmark's own), and
//! central's ingest ([`run_central_with`]) consumes them into PostgreSQL (a schema of
//! its own): the sustained rate is records stored per second from the first publish
//! to the last commit, with the bus lag (node seal to central commit) central saw.
//! Stream and schema are removed afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rampart_bus::{Backplane, BusRecord, NodeBatch, OutMessage};
use rampart_bus_nats::{NatsBackplane, NatsConfig};
use rampart_event::{ContainerLifecycle, LifecycleAction};
use serde::Serialize;

use crate::{
    run_central_with, BusConfig, CentralConfig, IngestStats, RetentionConfig, StoreConfig,
};

#[derive(Debug, Clone)]
pub struct IngestBenchConfig {
    /// NATS client configuration (URL, TLS); the stream is the benchmark's own.
    pub nats: NatsConfig,
    /// libpq connection string.
    pub postgres: String,
    pub nodes: usize,
    pub records: u64,
    pub batch_records: usize,
    /// Publishes in flight per node.
    pub in_flight: usize,
    /// Of every ten records, how many are alerts and how many flow edges (the rest
    /// inventory updates). Flow edges travel in flow reports, batches of their own as
    /// nodes send them, each edge of a node's graph of [`FLOW_EDGES_PER_NODE`] reported
    /// again with newer counters.
    pub alerts_per_ten: u64,
    pub flows_per_ten: u64,
    /// Bus messages central commits in one store transaction at most (1: the
    /// one-message-per-commit baseline).
    pub messages_per_commit: usize,
    /// Store transactions central runs at once (1: the one-after-the-other baseline).
    pub commits_in_flight: usize,
    /// The previous store path, the baseline: new rows by a plain `INSERT … UNNEST`
    /// instead of binary `COPY` (both under a savepoint, `ON CONFLICT` only after a
    /// duplicate).
    pub careful_ingest: bool,
    /// Records per second the fleet publishes, spread evenly over the nodes and over
    /// time (0: as fast as JetStream takes them, a backlog central drains). Paced, the
    /// lag says whether central keeps up with that rate: it stays flat if it does and
    /// grows for as long as the run lasts if it does not.
    pub rate_per_s: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestBenchReport {
    pub messages_per_commit: usize,
    pub commits_in_flight: usize,
    pub careful_ingest: bool,
    /// How the store wrote new rows (`copy`, or `insert` for the baseline).
    pub store_path: &'static str,
    pub records: u64,
    pub alerts: u64,
    pub inventory: u64,
    pub flow_edges: u64,
    /// Flow edges handled but not written: a newer report of the edge was stored first
    /// (a node's reports can commit out of order when commits run side by side).
    pub flow_edges_superseded: u64,
    pub batches: u64,
    pub seconds: f64,
    /// Records stored per second, first publish to last commit.
    pub records_per_s: f64,
    /// Records acknowledged by JetStream per second (the publishing side alone).
    pub published_per_s: f64,
    pub max_lag_ms: f64,
    pub last_lag_ms: f64,
    /// The paced rate asked for (0: unpaced).
    pub rate_per_s: u64,
    /// Bus lag (node seal to central commit) sampled every 5 ms while records were
    /// published: its median and 99th percentile.
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    /// From the last publish to the last record stored.
    pub drain_ms: f64,
    pub store_errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Central(#[from] crate::CentralError),
    #[error("NATS: {0}")]
    Nats(#[from] rampart_bus_nats::NatsError),
    #[error("bus: {0}")]
    Bus(#[from] rampart_bus::BusError),
    #[error("central stored {stored} of {want} records within {secs} s ({bus_lost} batches left the stream unread)")]
    Timeout {
        stored: u64,
        want: u64,
        secs: u64,
        bus_lost: u64,
    },
    #[error("API bench: {0}")]
    Api(#[from] rampart_api::bench::BenchError),
}

/// A PostgreSQL store in a schema of a benchmark's own, dropped by [`BenchSchema::remove`]
/// (through the store's own connection: opening another on `public` would migrate it,
/// and `public` may be at a newer schema than this build).
pub(crate) struct BenchSchema {
    pub store: Arc<rampart_store_pg::PgStore>,
    name: String,
}

impl BenchSchema {
    /// `name`: lowercase letters, digits and `_` (a schema name).
    pub async fn open(url: &str, name: String) -> Result<Self, crate::CentralError> {
        let pg = rampart_store_pg::PgConfig {
            url: url.to_string(),
            schema: Some(name.clone()),
        };
        let store = tokio::task::spawn_blocking(move || rampart_store_pg::PgStore::open(pg))
            .await
            .map_err(|e| crate::CentralError::Join(e.to_string()))?
            .map_err(crate::CentralError::Store)?;
        Ok(Self {
            store: Arc::new(store),
            name,
        })
    }

    /// A name unique to this process and moment: `<prefix>_<pid>_<ns>`.
    pub fn unique_name(prefix: &str) -> String {
        format!(
            "{prefix}_{}_{}",
            std::process::id(),
            rampart_event::wall_ns() % 1_000_000
        )
    }

    pub async fn remove(self) {
        let (store, name) = (self.store, self.name);
        let drop_schema =
            move || store.execute_batch(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        let _ = tokio::task::spawn_blocking(drop_schema).await;
    }
}

/// `rampart bench api` on central's store: the same filtered alert list over https,
/// with the alerts in PostgreSQL (a schema of the benchmark's own, dropped afterwards)
/// instead of SQLite.
pub async fn api_bench_postgres(
    postgres: &str,
    mut opts: rampart_api::bench::ApiBenchOptions,
) -> Result<rampart_api::bench::ApiBenchReport, BenchError> {
    let schema = BenchSchema::open(postgres, BenchSchema::unique_name("rampart_apibench")).await?;
    let store = schema.store.clone();
    let (sized, analysed) = (store.clone(), store.clone());
    opts.store = Some(rampart_api::bench::BenchStore {
        store: store.clone(),
        kind: "postgresql".into(),
        size_bytes: Arc::new(move || sized.size_bytes().ok()),
        settle: Some(Arc::new(move || {
            analysed.execute_batch("ANALYZE").map_err(|e| e.to_string())
        })),
    });
    let report = rampart_api::bench::run(opts).await;
    schema.remove().await;
    Ok(report?)
}

/// The edges of each bench node's network graph, reported again and again.
pub const FLOW_EDGES_PER_NODE: u64 = 2000;

/// Flow reports first in every ten batches, the rest alerts and inventory updates.
fn batches_for(node: &str, n_batches: u64, cfg: &IngestBenchConfig) -> Vec<OutMessage> {
    let template = rampart_notify::sample_alert();
    let base = rampart_event::wall_ns();
    let flows_per_ten = cfg.flows_per_ten.min(10);
    let record_share = (10 - flows_per_ten).max(1);
    (0..n_batches)
        .map(|b| {
            if b % 10 < flows_per_ten {
                let edges = (0..cfg.batch_records as u64)
                    .map(|i| {
                        let k = (b * cfg.batch_records as u64 + i) % FLOW_EDGES_PER_NODE;
                        rampart_bus::flows::FlowSummary {
                            source: format!("image:registry.local/app:{}", k % 50),
                            source_label: format!("app:{}", k % 50),
                            target: format!("image:registry.local/svc:{k}"),
                            target_label: format!("svc:{k}"),
                            protocol: "tcp".into(),
                            port: 8080,
                            peer_ip: String::new(),
                            outbound: true,
                            bytes_sent: 1000 * (b + 1),
                            bytes_received: 5000 * (b + 1),
                            connections: b + 1,
                            first_seen_ns: base,
                            last_seen_ns: base + b,
                            state: "baseline".into(),
                        }
                    })
                    .collect();
                let report = rampart_bus::flows::FlowReport {
                    ts_ns: base + b,
                    edges,
                    addresses: Vec::new(),
                };
                let batch = NodeBatch::new(node, "bench", vec![BusRecord::Flows(report)]);
                return OutMessage {
                    id: format!("bench-{node}-{b}"),
                    node: node.into(),
                    payload: batch.encode().into(),
                };
            }
            let records = (0..cfg.batch_records as u64)
                .map(|i| {
                    let k = b * cfg.batch_records as u64 + i;
                    if i % record_share < cfg.alerts_per_ten {
                        let mut a = template.clone();
                        a.id = format!("bench-{node}-{k}");
                        a.ts_ns = base + k;
                        a.first_ts_ns = a.ts_ns;
                        BusRecord::Alert(Box::new(a))
                    } else {
                        BusRecord::Lifecycle(ContainerLifecycle {
                            ts_ns: base + k,
                            action: if k.is_multiple_of(2) {
                                LifecycleAction::Start
                            } else {
                                LifecycleAction::Stop
                            },
                            container_id: format!("{node}-c{}", k % 5000),
                            name: format!("app-{}", k % 5000),
                            image: format!("registry.local/app:{}", k % 50),
                            labels: Default::default(),
                        })
                    }
                })
                .collect();
            let batch = NodeBatch::new(node, "bench", records);
            OutMessage {
                id: format!("bench-{node}-{b}"),
                node: node.into(),
                payload: batch.encode().into(),
            }
        })
        .collect()
}

/// The encoded batch with its `sealed_ns` replaced (the batches are encoded before
/// the clock starts, so that encoding is not timed; the seal time is set at publish).
fn stamp_sealed_ns(payload: &[u8], ns: u64) -> Vec<u8> {
    const KEY: &[u8] = b"\"sealed_ns\":";
    let Some(at) = payload.windows(KEY.len()).position(|w| w == KEY) else {
        return payload.to_vec();
    };
    let digits = at + KEY.len();
    let end = digits
        + payload[digits..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.extend_from_slice(&payload[..digits]);
    out.extend_from_slice(ns.to_string().as_bytes());
    out.extend_from_slice(&payload[end..]);
    out
}

/// Runs the ingest benchmark.
pub async fn ingest_bench(cfg: IngestBenchConfig) -> Result<IngestBenchReport, BenchError> {
    let tag = format!(
        "{}_{}",
        std::process::id(),
        rampart_event::wall_ns() % 1_000_000
    );
    let mut nats = cfg.nats.clone();
    nats.stream = format!("RAMPART_BENCH_{tag}");
    nats.subject_prefix = format!("rampart.bench{tag}");
    // JetStream reserves the bound on disk; the benchmark's stream holds a few
    // hundred MiB at most and is deleted afterwards.
    nats.max_bytes = nats.max_bytes.min(2 << 30);
    let schema = format!("rampart_bench_{tag}");
    let store_config = StoreConfig::Postgres {
        url: cfg.postgres.clone(),
        schema: Some(schema.clone()),
    };
    let bench_schema = BenchSchema::open(&cfg.postgres, schema).await?;
    let pg_store = bench_schema.store.clone();
    let store_path = if cfg.careful_ingest {
        rampart_store_pg::IngestPath::Insert
    } else {
        rampart_store_pg::IngestPath::Copy
    };
    pg_store.set_ingest_path(store_path);
    let store: Arc<dyn rampart_store::Store> = pg_store.clone();

    let per_node = cfg.records / cfg.nodes.max(1) as u64;
    let n_batches = per_node.div_ceil(cfg.batch_records.max(1) as u64);
    let plans: Vec<Vec<OutMessage>> = (0..cfg.nodes)
        .map(|n| batches_for(&format!("bench-node-{n}"), n_batches, &cfg))
        .collect();
    let total: u64 = n_batches * cfg.batch_records as u64 * cfg.nodes as u64;

    let publisher = Arc::new(NatsBackplane::connect(nats.clone()).await?);
    // Declares the stream before the clock starts.
    publisher
        .publish(OutMessage {
            id: "bench-warmup".into(),
            node: "bench-warmup".into(),
            payload: NodeBatch::new("bench-warmup", "bench", Vec::new())
                .encode()
                .into(),
        })
        .await?;

    let stats = Arc::new(IngestStats::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let central = tokio::spawn(run_central_with(
        CentralConfig {
            store: store_config,
            bus: BusConfig::Nats(Box::new(nats.clone())),
            consumer: "bench".into(),
            retention: RetentionConfig {
                alerts: Duration::from_secs(365 * 86_400),
                audit: Duration::from_secs(365 * 86_400),
                every: Duration::from_secs(3600),
            },
            outputs: None,
            ingest: crate::IngestOptions {
                messages_per_commit: cfg.messages_per_commit,
                commits_in_flight: cfg.commits_in_flight,
            },
        },
        store.clone(),
        stats.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));

    // Paced: node n publishes its batch b at b batch-intervals after the start, the
    // nodes offset from each other, so the fleet's records arrive at the asked rate.
    let batch_interval = (cfg.rate_per_s > 0).then(|| {
        Duration::from_secs_f64(
            (cfg.batch_records * cfg.nodes.max(1)) as f64 / cfg.rate_per_s as f64,
        )
    });
    let started = Instant::now();
    let mut pubs = Vec::new();
    for (n, plan) in plans.into_iter().enumerate() {
        let p = publisher.clone();
        let in_flight = cfg.in_flight.max(1);
        let nodes = cfg.nodes.max(1) as u32;
        pubs.push(tokio::spawn(async move {
            futures_util::stream::iter(plan.into_iter().enumerate())
                .map(|(b, mut m)| {
                    let p = p.clone();
                    async move {
                        if let Some(every) = batch_interval {
                            let at = every * b as u32 + every * n as u32 / nodes;
                            tokio::time::sleep_until((started + at).into()).await;
                        }
                        // Sealed now, as a node seals a batch when it sends it: the
                        // lag central reports starts here, not when the plan was made.
                        m.payload = stamp_sealed_ns(&m.payload, rampart_event::wall_ns()).into();
                        loop {
                            if p.publish(m.clone()).await.is_ok() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                })
                .buffer_unordered(in_flight)
                .collect::<Vec<()>>()
                .await;
        }));
    }
    // The lag while the records arrive, sampled (central keeps only the last and the
    // largest).
    let sampling = {
        let stats = stats.clone();
        let pubs_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = pubs_done.clone();
        let task = tokio::spawn(async move {
            let mut lags = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let r = stats.report();
                if r.batches > 0 {
                    lags.push(r.last_lag_ns);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            lags
        });
        (pubs_done, task)
    };
    for p in pubs {
        let _ = p.await;
    }
    let published = started.elapsed();
    sampling.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lags = sampling.1.await.unwrap_or_default();
    lags.sort_unstable();
    let lag_at = |q: f64| -> f64 {
        lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |&ns| ns as f64 / 1e6)
    };
    let limit = Duration::from_secs(600);
    // Every record handled: alerts and inventory stored, flow edges written or
    // superseded by a newer report of the same edge.
    let handled =
        |r: &crate::IngestReport| r.alerts + r.lifecycle + r.flow_edges + r.flow_edges_superseded;
    let finished = loop {
        let r = stats.report();
        if handled(&r) >= total {
            break Ok(());
        }
        if started.elapsed() > limit {
            break Err(BenchError::Timeout {
                stored: handled(&r),
                want: total,
                secs: limit.as_secs(),
                bus_lost: r.bus_lost,
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let elapsed = started.elapsed();
    let r = stats.report();
    // Finished or not, the bench's stream and schema go.
    let _ = stop_tx.send(());
    let _ = central.await;
    let _ = publisher.delete_stream().await;
    bench_schema.remove().await;
    finished?;
    let secs = elapsed.as_secs_f64();
    Ok(IngestBenchReport {
        messages_per_commit: cfg.messages_per_commit,
        commits_in_flight: cfg.commits_in_flight,
        careful_ingest: cfg.careful_ingest,
        store_path: store_path.as_str(),
        records: handled(&r),
        alerts: r.alerts,
        inventory: r.lifecycle,
        flow_edges: r.flow_edges,
        flow_edges_superseded: r.flow_edges_superseded,
        batches: r.batches,
        seconds: secs,
        records_per_s: handled(&r) as f64 / secs,
        published_per_s: total as f64 / published.as_secs_f64(),
        max_lag_ms: r.max_lag_ns as f64 / 1e6,
        last_lag_ms: r.last_lag_ns as f64 / 1e6,
        rate_per_s: cfg.rate_per_s,
        lag_p50_ms: lag_at(0.5),
        lag_p99_ms: lag_at(0.99),
        drain_ms: elapsed.saturating_sub(published).as_secs_f64() * 1e3,
        store_errors: r.store_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seal_time_is_stamped_into_an_encoded_batch() {
        let mut batch = NodeBatch::new("n1", "bench", Vec::new());
        batch.sealed_ns = 7;
        let stamped = stamp_sealed_ns(&batch.encode(), 1_765_000_000_123_456_789);
        let back = NodeBatch::decode(&stamped).expect("still a batch");
        assert_eq!(back.sealed_ns, 1_765_000_000_123_456_789);
        assert_eq!(
            (back.node.as_str(), back.node_version.as_str()),
            ("n1", "bench")
        );
    }
}
