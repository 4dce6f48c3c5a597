//! Central as a library: it consumes the nodes' batches from the backplane into the
//! store and applies retention. `rampart central` (NATS + PostgreSQL) and `rampart up`
//! (the in-process bus + SQLite) call [`run_central`]; the CLI only parses arguments.
//!
//! Delivery is at-least-once end to end: a batch is acknowledged to the backplane only
//! after the store committed it, a store failure (PostgreSQL restarting) keeps the batch
//! in hand and retries it until the store is back, and the store's idempotent ingest
//! makes a redelivered batch change nothing.
//!
//! Around it, the fleet: [`pki`] (the CA, `rampart central init`), [`enroll`] (one-time
//! tokens, node certificates), [`nodes`] (request/reply to the node holding the data:
//! recorder queries, retro-hunts, response commands), [`config`] and [`service`]
//! (`rampart central` as one call).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admission_scans;
pub mod bench;
pub mod config;
pub mod enroll;
pub mod flow_bench;
pub mod nodes;
pub mod pki;
pub mod registry;
pub mod service;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_bus::{Backplane, Consumer, Delivery, NodeBatch};
use rampart_store::{Ingest, Retention, SqliteStore, Store};
use serde::Serialize;

/// Which store central keeps.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    Sqlite { path: PathBuf },
    Postgres { url: String, schema: Option<String> },
}

/// Where central reads the nodes' batches.
#[derive(Clone)]
pub enum BusConfig {
    /// `rampart up`: the bus the node's publisher stage writes to, in this process.
    InProcess(Arc<dyn Backplane>),
    Nats(Box<rampart_bus_nats::NatsConfig>),
}

/// What to keep, by age.
#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    pub alerts: Duration,
    pub audit: Duration,
    /// How often retention runs.
    pub every: Duration,
}

impl Default for RetentionConfig {
    /// Alerts 30 days, audit a year, checked hourly.
    fn default() -> Self {
        Self {
            alerts: Duration::from_secs(30 * 86_400),
            audit: Duration::from_secs(365 * 86_400),
            every: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone)]
pub struct CentralConfig {
    pub store: StoreConfig,
    pub bus: BusConfig,
    /// The durable consumer's name (one per central deployment).
    pub consumer: String,
    pub retention: RetentionConfig,
    /// Alert outputs for the whole fleet: every alert central stores (once, not again
    /// on a redelivery) goes to them.
    pub outputs: Option<rampart_notify::OutputsConfig>,
    pub ingest: IngestOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("store: {0}")]
    Store(#[from] rampart_store::StoreError),
    #[error("bus: {0}")]
    Bus(#[from] rampart_bus::BusError),
    #[error("NATS: {0}")]
    Nats(#[from] rampart_bus_nats::NatsError),
    #[error("a blocking store task failed: {0}")]
    Join(String),
    #[error("outputs: {0}")]
    Outputs(#[from] rampart_notify::NotifyError),
}

/// Central's ingest counters.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub batches: AtomicU64,
    pub alerts: AtomicU64,
    pub lifecycle: AtomicU64,
    pub audit: AtomicU64,
    /// Flow edges written (new, or newer than the stored report of the edge).
    pub flow_edges: AtomicU64,
    /// Flow edges of a stored report that were not written because a newer report of
    /// the edge was there first (commits run side by side, so a node's reports can
    /// land out of order; a redelivered report counts here too).
    pub flow_edges_superseded: AtomicU64,
    /// Records nodes reported they dropped before sending (spool full, shed).
    pub node_dropped: AtomicU64,
    /// Bus messages (node batches) the bus discarded by its bounds before central
    /// read them (JetStream's stream past its max_bytes or max_age).
    pub bus_lost: AtomicU64,
    /// Batches that did not decode (acked and counted, never stored).
    pub rejected: AtomicU64,
    /// Store commits that failed and were retried.
    pub store_errors: AtomicU64,
    /// Age of the last batch stored, from the node sealing it to the commit.
    pub last_lag_ns: AtomicU64,
    pub max_lag_ns: AtomicU64,
}

/// A snapshot of [`IngestStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub batches: u64,
    pub alerts: u64,
    pub lifecycle: u64,
    pub audit: u64,
    pub flow_edges: u64,
    pub flow_edges_superseded: u64,
    pub node_dropped: u64,
    pub bus_lost: u64,
    pub rejected: u64,
    pub store_errors: u64,
    pub last_lag_ns: u64,
    pub max_lag_ns: u64,
}

impl IngestStats {
    pub fn report(&self) -> IngestReport {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IngestReport {
            batches: l(&self.batches),
            alerts: l(&self.alerts),
            lifecycle: l(&self.lifecycle),
            audit: l(&self.audit),
            flow_edges: l(&self.flow_edges),
            flow_edges_superseded: l(&self.flow_edges_superseded),
            node_dropped: l(&self.node_dropped),
            bus_lost: l(&self.bus_lost),
            rejected: l(&self.rejected),
            store_errors: l(&self.store_errors),
            last_lag_ns: l(&self.last_lag_ns),
            max_lag_ns: l(&self.max_lag_ns),
        }
    }
}

/// Opens the configured store (applying migrations). Blocking: call it outside async
/// code or through `spawn_blocking`.
pub fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, CentralError> {
    Ok(match config {
        StoreConfig::Sqlite { path } => {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            Arc::new(SqliteStore::open(path)?)
        }
        StoreConfig::Postgres { url, schema } => Arc::new(rampart_store_pg::PgStore::open(
            rampart_store_pg::PgConfig {
                url: url.clone(),
                schema: schema.clone(),
            },
        )?),
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, rampart_store::StoreError> + Send + 'static,
) -> Result<T, CentralError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CentralError::Join(e.to_string()))?
        .map_err(CentralError::Store)
}

/// How central's ingest groups the backplane's messages into store commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// Messages committed in one store transaction at most. A group takes only what
    /// the consumer already holds (it never waits to fill up), so a quiet fleet's
    /// batch is stored at once and a busy one's in few, large transactions.
    pub messages_per_commit: usize,
    /// Groups being committed at once, each in its own transaction (PostgreSQL runs
    /// their alert inserts in parallel; SQLite takes them one after the other). Each
    /// group is acked once its own commit is done. 1: one commit after the other.
    pub commits_in_flight: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            messages_per_commit: 64,
            commits_in_flight: 2,
        }
    }
}

/// The id central stores a node's alert under: scoped by the node, so two nodes'
/// alerts never merge (a node's ids are unique only on that node: two nodes replaying
/// the same recording raise the same ids). Node names hold no `/`, so the scope is
/// unambiguous, and an id already scoped is kept.
pub fn node_scoped_alert_id(node: &str, id: &str) -> String {
    match id.strip_prefix(node).and_then(|r| r.strip_prefix('/')) {
        Some(_) => id.to_string(),
        None => format!("{node}/{id}"),
    }
}

/// A message decoded for the store.
struct Decoded {
    node: String,
    version: String,
    sealed_ns: u64,
    dropped_before: u64,
    alerts: Vec<rampart_event::Alert>,
    lifecycle: Vec<rampart_event::ContainerLifecycle>,
    audit: Vec<rampart_store::AuditRecord>,
    /// The node's reports about itself (rules, health, scan results).
    reports: Vec<rampart_event::fleet::NodeReport>,
    /// The node's flow summaries (the fleet's network graph).
    flows: Vec<rampart_bus::flows::FlowReport>,
}

/// Why a message is refused (acked and counted, never stored).
fn decode(d_node: &str, payload: &[u8]) -> Result<Decoded, String> {
    let mut batch = NodeBatch::decode(payload).map_err(|e| e.to_string())?;
    // The subject a message came on is the node's authenticated identity (each node
    // may publish on its own subject only); a batch claiming another name is refused.
    if rampart_bus_nats::subject_token(&batch.node) != rampart_bus_nats::subject_token(d_node) {
        return Err(format!(
            "batch names node {:?} but came from {d_node:?}",
            batch.node
        ));
    }
    let node = batch.node.clone();
    let version = batch.node_version.clone();
    let (sealed_ns, dropped_before) = (batch.sealed_ns, batch.dropped_before);
    let reports = batch.take_reports();
    let flows = batch.take_flows();
    let (mut alerts, lifecycle, audit) = batch.split();
    for a in &mut alerts {
        a.id = node_scoped_alert_id(&node, &a.id);
    }
    Ok(Decoded {
        node,
        version,
        sealed_ns,
        dropped_before,
        alerts,
        lifecycle,
        audit,
        reports,
        flows,
    })
}

/// Stores a group of deliveries (decoded by `decoding`) in one transaction, retrying
/// the store until it commits, then acks them all (pipelined).
async fn store_group(
    group: Vec<Delivery>,
    decoding: tokio::task::JoinHandle<Vec<Result<Decoded, String>>>,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    notify: Option<Arc<rampart_notify::Dispatcher>>,
) {
    let decoded = match decoding.await {
        Ok(d) => Arc::new(d),
        Err(e) => {
            // Not acked: the messages come again after the ack wait.
            tracing::error!(error = %e, "decoding a group of bus messages failed");
            return;
        }
    };
    for (d, r) in group.iter().zip(decoded.iter()) {
        if let Err(e) = r {
            // It will never decode: acking keeps it from coming back forever.
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id = %d.id, node = %d.node, error = %e, "bus message rejected");
        }
    }
    let mut backoff = Duration::from_millis(100);
    let (reports, flow_edges, flow_edges_superseded) = loop {
        let s = store.clone();
        let batches = decoded.clone();
        let started = std::time::Instant::now();
        let r = blocking(move || {
            let now = rampart_event::wall_ns();
            let ingests: Vec<Ingest<'_>> = batches
                .iter()
                .flatten()
                .map(|b| Ingest {
                    node: &b.node,
                    node_version: &b.version,
                    seen_ns: now,
                    alerts: &b.alerts,
                    lifecycle: &b.lifecycle,
                    audit: &b.audit,
                })
                .collect();
            let reports = if ingests.is_empty() {
                Vec::new()
            } else {
                s.ingest_many(&ingests)?
            };
            // Newest per key wins, so storing them again on a retry changes nothing.
            let (mut flow_edges, mut superseded) = (0, 0);
            for b in batches.iter().flatten() {
                if !b.reports.is_empty() {
                    s.put_reports(&b.node, &b.reports)?;
                }
                // The newest report of an edge wins: a retry changes nothing either.
                for f in &b.flows {
                    let written = s.put_flows(&b.node, f)?;
                    flow_edges += written;
                    superseded += (f.edges.len() as u64).saturating_sub(written);
                }
            }
            Ok((reports, flow_edges, superseded))
        })
        .await;
        metrics::histogram!("rampart_store_commit_seconds").record(started.elapsed());
        match r {
            Ok(r) => break r,
            Err(e) => {
                metrics::counter!("rampart_store_errors_total").increment(1);
                let n = stats.store_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, failures = n, "store commit failed; retrying the batches");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    // The commit is done: a lost ack only means a harmless redelivery.
    let acks = futures_util::future::join_all(group.into_iter().map(Delivery::ack)).await;
    if let Some(Err(e)) = acks.into_iter().find(Result::is_err) {
        tracing::debug!(error = %e, "ack failed; the batch will come again and change nothing");
    }
    stats.flow_edges.fetch_add(flow_edges, Ordering::Relaxed);
    stats
        .flow_edges_superseded
        .fetch_add(flow_edges_superseded, Ordering::Relaxed);
    metrics::counter!("rampart_flow_edges_total").increment(flow_edges);
    metrics::counter!("rampart_flow_edges_superseded_total").increment(flow_edges_superseded);
    let now = rampart_event::wall_ns();
    for (b, report) in decoded.iter().flatten().zip(reports) {
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.alerts.fetch_add(report.alerts, Ordering::Relaxed);
        stats
            .lifecycle
            .fetch_add(report.lifecycle, Ordering::Relaxed);
        stats.audit.fetch_add(report.audit, Ordering::Relaxed);
        stats
            .node_dropped
            .fetch_add(b.dropped_before, Ordering::Relaxed);
        // A batch is counted by the store: new alerts mean a first delivery, none a
        // redelivery whose alerts were already sent to the outputs.
        if let Some(n) = &notify {
            if report.alerts > 0 {
                for a in &b.alerts {
                    n.dispatch(Arc::new(a.clone()));
                }
            }
        }
        let lag = now.saturating_sub(b.sealed_ns);
        metrics::counter!("rampart_bus_batches_total").increment(1);
        metrics::counter!("rampart_alerts_total").increment(report.alerts);
        metrics::counter!("rampart_dropped_total", "source" => "node").increment(b.dropped_before);
        metrics::gauge!("rampart_bus_lag_seconds").set(lag as f64 / 1e9);
        stats.last_lag_ns.store(lag, Ordering::Relaxed);
        stats.max_lag_ns.fetch_max(lag, Ordering::Relaxed);
    }
}

/// Consumes deliveries into the store until the consumer ends or `stop` resolves.
pub async fn ingest(
    consumer: Box<dyn Consumer>,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    stop: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    ingest_with(consumer, store, stats, None, IngestOptions::default(), stop).await
}

/// As [`ingest`], sending every newly stored alert to `notify`'s outputs.
pub async fn ingest_notifying(
    consumer: Box<dyn Consumer>,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    notify: Option<Arc<rampart_notify::Dispatcher>>,
    stop: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    ingest_with(
        consumer,
        store,
        stats,
        notify,
        IngestOptions::default(),
        stop,
    )
    .await
}

/// The ingest loop: takes what the consumer holds (up to a group), and stores each
/// group while the next is fetched, up to `commits_in_flight` groups at once.
pub async fn ingest_with(
    mut consumer: Box<dyn Consumer>,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    notify: Option<Arc<rampart_notify::Dispatcher>>,
    options: IngestOptions,
    stop: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    use futures_util::FutureExt;
    tokio::pin!(stop);
    let max = options.messages_per_commit.max(1);
    let max_in_flight = options.commits_in_flight.max(1);
    let mut in_flight: std::collections::VecDeque<tokio::task::JoinHandle<()>> = Default::default();
    let mut result = Ok(());
    let mut bus_lost = 0;
    loop {
        let first = tokio::select! {
            _ = &mut stop => break,
            d = consumer.next() => d,
        };
        let first = match first {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        let mut group = vec![first];
        let mut end = false;
        // What is already fetched joins the group; a pending next() is dropped
        // (the consumers' next is cancel-safe: nothing is taken until it is ready).
        while group.len() < max {
            match consumer.next().now_or_never() {
                Some(Ok(Some(d))) => group.push(d),
                Some(Ok(None)) => {
                    end = true;
                    break;
                }
                Some(Err(e)) => {
                    result = Err(e.into());
                    end = true;
                    break;
                }
                None => break,
            }
        }
        // Found when a later message arrives (after a check of the stream).
        let lost = consumer.lost_messages();
        if lost > bus_lost {
            stats.bus_lost.fetch_add(lost - bus_lost, Ordering::Relaxed);
            metrics::counter!("rampart_bus_messages_lost_total").increment(lost - bus_lost);
            bus_lost = lost;
        }
        // Decoding is CPU work: off the async threads, and while the previous group
        // is still being stored.
        let payloads: Vec<(String, bytes::Bytes)> = group
            .iter()
            .map(|d| (d.node.clone(), d.payload.clone()))
            .collect();
        let decoding = tokio::task::spawn_blocking(move || {
            payloads.iter().map(|(node, p)| decode(node, p)).collect()
        });
        while in_flight.len() >= max_in_flight {
            if let Some(t) = in_flight.pop_front() {
                t.await.map_err(|e| CentralError::Join(e.to_string()))?;
            }
        }
        in_flight.push_back(tokio::spawn(store_group(
            group,
            decoding,
            store.clone(),
            stats.clone(),
            notify.clone(),
        )));
        if end {
            break;
        }
    }
    for t in in_flight {
        t.await.map_err(|e| CentralError::Join(e.to_string()))?;
    }
    result
}

/// What central did, when it stops.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CentralReport {
    pub ingest: IngestReport,
    pub purged_alerts: u64,
    pub purged_audit: u64,
}

/// Runs central until `shutdown` resolves: store, bus consumer, retention. (The API
/// server joins here once it exists.)
pub async fn run_central(
    config: CentralConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<CentralReport, CentralError> {
    let store_config = config.store.clone();
    let store = tokio::task::spawn_blocking(move || open_store(&store_config))
        .await
        .map_err(|e| CentralError::Join(e.to_string()))??;
    run_central_with(config, store, Arc::new(IngestStats::default()), shutdown).await
}

/// As [`run_central`] with a store already open and counters the caller reads.
pub async fn run_central_with(
    config: CentralConfig,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<CentralReport, CentralError> {
    let bus: Arc<dyn Backplane> = match &config.bus {
        BusConfig::InProcess(b) => b.clone(),
        BusConfig::Nats(c) => {
            Arc::new(rampart_bus_nats::NatsBackplane::connect((**c).clone()).await?)
        }
    };
    tokio::pin!(shutdown);
    // NATS may not be up yet (or restarting): wait for it rather than exit.
    let mut failures = 0u64;
    let consumer = loop {
        match bus.consumer(&config.consumer).await {
            Ok(c) => break c,
            Err(e) => {
                failures += 1;
                if failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, "the backplane is not reachable yet; retrying");
                }
                tokio::select! {
                    _ = &mut shutdown => return Ok(CentralReport { ingest: stats.report(), ..Default::default() }),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let notify = match &config.outputs {
        Some(o) => {
            rampart_notify::install_ring_crypto_provider();
            Some(Arc::new(rampart_notify::Dispatcher::from_config(o)?))
        }
        None => None,
    };
    let ingest_task = tokio::spawn(ingest_with(
        consumer,
        store.clone(),
        stats.clone(),
        notify.clone(),
        config.ingest,
        wait_stop(stop_rx.clone()),
    ));
    let retention = config.retention;
    let retention_store = store.clone();
    let retention_task = tokio::spawn({
        let stop = wait_stop(stop_rx);
        async move {
            let (mut alerts, mut audit) = (0, 0);
            tokio::pin!(stop);
            loop {
                let now = rampart_event::wall_ns();
                let r = Retention {
                    alerts_before_ns: Some(now.saturating_sub(retention.alerts.as_nanos() as u64)),
                    audit_before_ns: Some(now.saturating_sub(retention.audit.as_nanos() as u64)),
                };
                let s = retention_store.clone();
                match blocking(move || s.apply_retention(&r)).await {
                    Ok(p) => {
                        alerts += p.alerts;
                        audit += p.audit;
                    }
                    Err(e) => tracing::warn!(error = %e, "retention failed; next round retries"),
                }
                tokio::select! {
                    _ = &mut stop => return (alerts, audit),
                    _ = tokio::time::sleep(retention.every) => {}
                }
            }
        }
    });
    shutdown.await;
    let _ = stop_tx.send(true);
    let ingested = ingest_task
        .await
        .map_err(|e| CentralError::Join(e.to_string()))?;
    let (purged_alerts, purged_audit) = retention_task
        .await
        .map_err(|e| CentralError::Join(e.to_string()))?;
    ingested?;
    if let Some(n) = notify.and_then(Arc::into_inner) {
        for s in n.shutdown().await {
            tracing::info!(sink = ?s, "central output");
        }
    }
    Ok(CentralReport {
        ingest: stats.report(),
        purged_alerts,
        purged_audit,
    })
}
