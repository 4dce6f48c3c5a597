//! The bus publisher as a stage: alerts and container lifecycle changes go to central
//! in batches of up to `max_records`, through the node's disk spool (which holds them
//! while the backplane is away and counts what it had to drop) and its forwarder.
//!
//! The stage never waits on the network: `handle` only appends, and sealing a batch is
//! one file write, so it may block the pipeline (every alert should reach central) at
//! the cost of a disk write per batch. Records the pipeline or the spool dropped are
//! reported to central with the next batch (`dropped_before`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use rampart_bus::{Backplane, BusRecord, Forwarder, NodeBatch, Spool, SpoolConfig, SpoolStats};
use rampart_event::fleet::NodeReport;

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// How the node publishes.
#[derive(Debug, Clone)]
pub struct BusPublisherConfig {
    /// The node's name (subjects, message ids, central's inventory).
    pub node: String,
    /// This build's version, shown in central's inventory.
    pub node_version: String,
    pub spool: SpoolConfig,
    /// Records per message at most.
    pub max_records: usize,
    /// An empty batch after this long without one, so central sees the node alive.
    pub heartbeat: Duration,
    /// At stop, how long the forwarder may keep sending what is spooled (the rest
    /// stays on disk for the next start).
    pub drain_at_stop: Duration,
}

impl BusPublisherConfig {
    pub fn new(node: &str, spool_dir: impl Into<std::path::PathBuf>) -> Self {
        Self {
            node: node.into(),
            node_version: env!("CARGO_PKG_VERSION").into(),
            spool: SpoolConfig::new(spool_dir, node),
            max_records: 500,
            heartbeat: Duration::from_secs(10),
            drain_at_stop: Duration::from_secs(5),
        }
    }
}

/// Reports waiting for the publisher at most; more are dropped and counted.
pub const REPORT_QUEUE: usize = 256;

/// A message above this is not published (NATS refuses payloads above 1 MiB by
/// default): a scan report loses its SBOM documents first, then is dropped.
pub const MAX_REPORT_BYTES: usize = 900 << 10;

/// Hands the node's reports about itself (rules, health, scan results) to the bus
/// publisher, from any thread. Never blocks: a full queue drops and counts.
#[derive(Clone)]
pub struct ReportSender {
    tx: SyncSender<NodeReport>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for ReportSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSender")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

impl ReportSender {
    /// False when the report was dropped (queue full or publisher gone).
    pub fn send(&self, report: NodeReport) -> bool {
        match self.tx.try_send(report) {
            Ok(()) => true,
            Err(TrySendError::Full(r) | TrySendError::Disconnected(r)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = r.kind(),
                    "a node report was dropped (the publisher's queue is full or gone)"
                );
                false
            }
        }
    }

    /// Reports dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

pub struct BusPublisherStage {
    config: BusPublisherConfig,
    spool: Arc<Spool>,
    backplane: Arc<dyn Backplane>,
    runtime: tokio::runtime::Handle,
    forwarder: Option<Forwarder>,
    pending: Vec<BusRecord>,
    /// Records lost before reaching the spool (pipeline shed, spool write errors).
    dropped: u64,
    last_sealed_ns: u64,
    reports_tx: ReportSender,
    reports_rx: Receiver<NodeReport>,
}

impl BusPublisherStage {
    /// Opens the spool (keeping what an earlier run left); the forwarder starts with
    /// the stage, on `runtime` (where the backplane's client runs).
    pub fn new(
        config: BusPublisherConfig,
        backplane: Arc<dyn Backplane>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, StageError> {
        let spool = Spool::open(config.spool.clone()).map_err(StageError::new)?;
        let (tx, reports_rx) = std::sync::mpsc::sync_channel(REPORT_QUEUE);
        Ok(Self {
            reports_tx: ReportSender {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            reports_rx,
            config,
            spool,
            backplane,
            runtime,
            forwarder: None,
            pending: Vec::new(),
            dropped: 0,
            last_sealed_ns: 0,
        })
    }

    /// The spool, for its counters (queued, sent, dropped) in the node's report.
    pub fn spool(&self) -> Arc<Spool> {
        self.spool.clone()
    }

    pub fn stats(&self) -> SpoolStats {
        self.spool.stats()
    }

    /// Where other parts of the node send their reports to central.
    pub fn reports(&self) -> ReportSender {
        self.reports_tx.clone()
    }

    /// Each waiting report goes in a batch of its own (a central that does not know
    /// reports refuses only those; a scan report with its SBOMs is large).
    fn publish_reports(&mut self) -> Result<(), StageError> {
        while let Ok(report) = self.reports_rx.try_recv() {
            let Some(bytes) = report_batch(&self.config, report) else {
                self.reports_tx.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            self.spool.push(1, &bytes).map_err(StageError::new)?;
        }
        Ok(())
    }

    fn seal(&mut self, now_ns: u64) -> Result<(), StageError> {
        let records = std::mem::take(&mut self.pending);
        let n = records.len() as u64;
        let mut batch = NodeBatch::new(&self.config.node, &self.config.node_version, records);
        batch.dropped_before =
            std::mem::take(&mut self.dropped) + self.spool.take_dropped_records();
        self.last_sealed_ns = now_ns;
        if let Err(e) = self.spool.push(n, &batch.encode()) {
            self.dropped += n + batch.dropped_before;
            return Err(StageError::new(e));
        }
        Ok(())
    }
}

impl Stage for BusPublisherStage {
    fn name(&self) -> &str {
        "bus"
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            events: false,
            alerts: true,
            lifecycle: true,
        }
    }

    fn when_full(&self) -> WhenFull {
        WhenFull::Block
    }

    fn start(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        self.forwarder = Some(Forwarder::spawn(
            self.spool.clone(),
            self.backplane.clone(),
            &self.runtime,
        ));
        Ok(())
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        self.dropped += batch.shed_before;
        for r in &batch.records {
            let rec = match r {
                Record::Alert(a) => BusRecord::Alert(Box::new((**a).clone())),
                Record::Lifecycle(l) => BusRecord::Lifecycle((**l).clone()),
                Record::Event(_) => continue,
            };
            self.pending.push(rec);
            if self.pending.len() >= self.config.max_records {
                self.seal(rampart_event::wall_ns())?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, _ctx: &StageContext) -> Result<(), StageError> {
        self.publish_reports()?;
        let st = self.spool.stats();
        metrics::gauge!("rampart_spool_queued_messages").set(st.queued_messages as f64);
        metrics::gauge!("rampart_spool_dropped_records").set(st.dropped_records as f64);
        metrics::gauge!("rampart_spool_publish_errors").set(st.publish_errors as f64);
        let quiet =
            now_ns.saturating_sub(self.last_sealed_ns) >= self.config.heartbeat.as_nanos() as u64;
        if !self.pending.is_empty() || quiet {
            self.seal(now_ns)?;
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let sealed = if self.pending.is_empty() {
            Ok(())
        } else {
            self.seal(rampart_event::wall_ns())
        };
        let sealed = sealed.and(self.publish_reports());
        if let Some(f) = self.forwarder.take() {
            // The stage runs on its own thread, outside the runtime: blocking is fine.
            self.runtime.block_on(f.shutdown(self.config.drain_at_stop));
        }
        sealed
    }
}

/// One report as a batch of its own, within [`MAX_REPORT_BYTES`]: a scan report too
/// large with its SBOM documents goes without them; `None` if still too large.
fn report_batch(config: &BusPublisherConfig, report: NodeReport) -> Option<Vec<u8>> {
    let encode = |r: NodeReport| {
        NodeBatch::new(
            &config.node,
            &config.node_version,
            vec![BusRecord::Report(r)],
        )
        .encode()
    };
    let bytes = encode(report.clone());
    if bytes.len() <= MAX_REPORT_BYTES {
        return Some(bytes);
    }
    if let NodeReport::Scan(mut s) = report {
        tracing::warn!(target = %s.target, bytes = bytes.len(), "scan report too large: sent without its SBOM documents");
        s.sbom_cyclonedx = None;
        s.sbom_spdx = None;
        let bytes = encode(NodeReport::Scan(s));
        if bytes.len() <= MAX_REPORT_BYTES {
            return Some(bytes);
        }
    }
    tracing::warn!(
        bytes = bytes.len(),
        "a node report is too large to publish: dropped"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_bus::InProcessBus;
    use rampart_event::{ContainerLifecycle, LifecycleAction};
    use std::sync::mpsc;

    #[test]
    fn batches_alerts_and_lifecycle_onto_the_backplane() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bus = Arc::new(InProcessBus::new(64));
        let mut config = BusPublisherConfig::new("node-a", dir.path());
        config.max_records = 3;
        let mut stage = BusPublisherStage::new(config, bus.clone(), rt.handle().clone()).unwrap();
        let (tx, _rx) = mpsc::channel();
        let ctx = StageContext::new(tx);
        stage.start(&ctx).unwrap();
        let lc = |i: u64| {
            Record::Lifecycle(Arc::new(ContainerLifecycle {
                ts_ns: i,
                action: LifecycleAction::Start,
                container_id: format!("c{i}"),
                name: String::new(),
                image: String::new(),
                labels: Default::default(),
            }))
        };
        stage
            .handle(
                &Batch {
                    records: (0..4).map(lc).collect(),
                    shed_before: 2,
                },
                &ctx,
            )
            .unwrap();
        stage.stop(&ctx).unwrap();
        let mut consumer = rt.block_on(bus.consumer("central")).unwrap();
        let mut batches = Vec::new();
        for _ in 0..2 {
            let d = rt.block_on(consumer.next()).unwrap().unwrap();
            assert_eq!(d.node, "node-a");
            batches.push(NodeBatch::decode(&d.payload).unwrap());
        }
        let sizes: Vec<usize> = batches.iter().map(|b| b.records.len()).collect();
        assert_eq!(sizes, [3, 1]);
        assert_eq!(
            batches[0].dropped_before, 2,
            "the pipeline's shed count goes along"
        );
        assert_eq!(stage.stats().sent, 2);
    }

    #[test]
    fn reports_go_in_batches_of_their_own_and_a_huge_sbom_is_left_behind() {
        use rampart_event::fleet::{RulesReport, ScanReport};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bus = Arc::new(InProcessBus::new(64));
        let config = BusPublisherConfig::new("node-a", dir.path());
        let mut stage = BusPublisherStage::new(config, bus.clone(), rt.handle().clone()).unwrap();
        let (tx, _rx) = mpsc::channel();
        let ctx = StageContext::new(tx);
        stage.start(&ctx).unwrap();
        let reports = stage.reports();
        // From another thread, as the scanner and the fleet-report stage send.
        std::thread::spawn(move || {
            assert!(reports.send(NodeReport::Rules(RulesReport {
                ts_ns: 1,
                ..Default::default()
            })));
            assert!(reports.send(NodeReport::Scan(ScanReport {
                ts_ns: 2,
                target: "container:c1".into(),
                sbom_cyclonedx: Some("x".repeat(MAX_REPORT_BYTES + 1)),
                sbom_spdx: Some("{}".into()),
                ..Default::default()
            })));
        })
        .join()
        .unwrap();
        stage.flush(rampart_event::wall_ns(), &ctx).unwrap();
        stage.stop(&ctx).unwrap();
        let mut consumer = rt.block_on(bus.consumer("central")).unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            let d = rt.block_on(consumer.next()).unwrap().unwrap();
            let mut b = NodeBatch::decode(&d.payload).unwrap();
            let r = b.take_reports();
            assert!(b.records.is_empty(), "reports travel alone");
            got.extend(r);
        }
        assert_eq!(got[0].kind(), "rules");
        match &got[1] {
            NodeReport::Scan(s) => {
                assert_eq!(s.target, "container:c1");
                assert!(s.sbom_cyclonedx.is_none() && s.sbom_spdx.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stage.reports().dropped(), 0);
    }
}
