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

pub mod bench;
pub mod config;
pub mod enroll;
pub mod nodes;
pub mod pki;
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
    /// Records nodes reported they dropped before sending (spool full, shed).
    pub node_dropped: AtomicU64,
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
    pub node_dropped: u64,
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
            node_dropped: l(&self.node_dropped),
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

/// Stores one delivery, retrying the store until it commits, then acks it.
async fn store_delivery(
    d: Delivery,
    store: &Arc<dyn Store>,
    stats: &IngestStats,
    notify: Option<&rampart_notify::Dispatcher>,
) {
    let batch = match NodeBatch::decode(&d.payload) {
        Ok(b) => b,
        Err(e) => {
            // It will never decode: acking keeps it from coming back forever.
            stats.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id = %d.id, node = %d.node, error = %e, "bus message rejected");
            let _ = d.ack().await;
            return;
        }
    };
    let sealed_ns = batch.sealed_ns;
    let dropped_before = batch.dropped_before;
    stats
        .node_dropped
        .fetch_add(batch.dropped_before, Ordering::Relaxed);
    let node = batch.node.clone();
    let version = batch.node_version.clone();
    let (alerts, lifecycle, audit) = batch.split();
    let parts = Arc::new((node, version, alerts, lifecycle, audit));
    let mut backoff = Duration::from_millis(100);
    let report = loop {
        let s = store.clone();
        let p = parts.clone();
        let started = std::time::Instant::now();
        let r = blocking(move || {
            s.ingest(&Ingest {
                node: &p.0,
                node_version: &p.1,
                seen_ns: rampart_event::wall_ns(),
                alerts: &p.2,
                lifecycle: &p.3,
                audit: &p.4,
            })
        })
        .await;
        metrics::histogram!("rampart_store_commit_seconds").record(started.elapsed());
        match r {
            Ok(r) => break r,
            Err(e) => {
                metrics::counter!("rampart_store_errors_total").increment(1);
                let n = stats.store_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, failures = n, "store commit failed; retrying the batch");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    };
    // The commit is done: a lost ack only means a harmless redelivery.
    if let Err(e) = d.ack().await {
        tracing::debug!(error = %e, "ack failed; the batch will come again and change nothing");
    }
    stats.batches.fetch_add(1, Ordering::Relaxed);
    stats.alerts.fetch_add(report.alerts, Ordering::Relaxed);
    stats
        .lifecycle
        .fetch_add(report.lifecycle, Ordering::Relaxed);
    stats.audit.fetch_add(report.audit, Ordering::Relaxed);
    // A batch is stored in one transaction: new alerts mean a first delivery, none a
    // redelivery whose alerts were already sent to the outputs.
    if let Some(n) = notify {
        if report.alerts > 0 {
            for a in &parts.2 {
                n.dispatch(Arc::new(a.clone()));
            }
        }
    }
    let lag = rampart_event::wall_ns().saturating_sub(sealed_ns);
    metrics::counter!("rampart_bus_batches_total").increment(1);
    metrics::counter!("rampart_alerts_total").increment(report.alerts);
    metrics::counter!("rampart_dropped_total", "source" => "node").increment(dropped_before);
    metrics::gauge!("rampart_bus_lag_seconds").set(lag as f64 / 1e9);
    stats.last_lag_ns.store(lag, Ordering::Relaxed);
    stats.max_lag_ns.fetch_max(lag, Ordering::Relaxed);
}

/// Consumes deliveries into the store until the consumer ends or `stop` resolves.
pub async fn ingest(
    consumer: Box<dyn Consumer>,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    stop: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    ingest_notifying(consumer, store, stats, None, stop).await
}

/// As [`ingest`], sending every newly stored alert to `notify`'s outputs.
pub async fn ingest_notifying(
    mut consumer: Box<dyn Consumer>,
    store: Arc<dyn Store>,
    stats: Arc<IngestStats>,
    notify: Option<Arc<rampart_notify::Dispatcher>>,
    stop: impl Future<Output = ()>,
) -> Result<(), CentralError> {
    tokio::pin!(stop);
    loop {
        let d = tokio::select! {
            _ = &mut stop => return Ok(()),
            d = consumer.next() => d?,
        };
        match d {
            Some(d) => store_delivery(d, &store, &stats, notify.as_deref()).await,
            None => return Ok(()),
        }
    }
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
    let ingest_task = tokio::spawn(ingest_notifying(
        consumer,
        store.clone(),
        stats.clone(),
        notify.clone(),
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
