//! The live alert feed: a [`Store`] wrapper that, after each ingest commits, hands the
//! batch's new alerts to every subscriber (gRPC streams, server-sent events). Central
//! ingests through it, so a stream sees an alert once it is stored, not before.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use rampart_store::{
    AlertChange, AlertPage, AlertQuery, AlertStatus, AuditQuery, AuditRecord, ContainerQuery,
    ContainerRecord, ImageRecord, Ingest, IngestReport, NodeRecord, Purged, Result, Retention,
    Store, StoredAlert, WorkloadQuery, WorkloadRecord,
};
use tokio::sync::broadcast;

/// Alerts a slow subscriber may fall behind by before it is told it lost some.
pub const FEED_CAPACITY: usize = 4096;
/// Ids remembered to keep a redelivered batch from being announced twice.
const RECENT_IDS: usize = 16_384;

/// The sending side of the feed, shared by the store wrapper and the API core.
#[derive(Clone)]
pub struct AlertFeed {
    tx: broadcast::Sender<Arc<StoredAlert>>,
    recent: Arc<Mutex<(HashSet<String>, VecDeque<String>)>>,
}

impl Default for AlertFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertFeed {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(FEED_CAPACITY).0,
            recent: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoredAlert>> {
        self.tx.subscribe()
    }

    /// Announces an alert unless it was announced recently.
    pub fn announce(&self, alert: StoredAlert) {
        {
            let mut g = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let (set, order) = &mut *g;
            if !set.insert(alert.alert.id.clone()) {
                return;
            }
            order.push_back(alert.alert.id.clone());
            if order.len() > RECENT_IDS {
                if let Some(old) = order.pop_front() {
                    set.remove(&old);
                }
            }
        }
        // No subscriber is not an error: nobody is watching.
        let _ = self.tx.send(Arc::new(alert));
    }
}

/// A store that announces what ingest stored on an [`AlertFeed`].
pub struct LiveStore {
    inner: Arc<dyn Store>,
    feed: AlertFeed,
}

impl LiveStore {
    pub fn new(inner: Arc<dyn Store>, feed: AlertFeed) -> Self {
        Self { inner, feed }
    }
}

impl Store for LiveStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn schema_version(&self) -> Result<u32> {
        self.inner.schema_version()
    }

    fn ingest(&self, batch: &Ingest<'_>) -> Result<IngestReport> {
        let report = self.inner.ingest(batch)?;
        // A batch with nothing new is a redelivery: nothing to announce.
        if report.alerts > 0 {
            for a in batch.alerts {
                self.feed.announce(StoredAlert {
                    alert: a.clone(),
                    node: batch.node.to_string(),
                    status: AlertStatus::Open,
                    updated_ns: batch.seen_ns,
                    comments: Vec::new(),
                });
            }
        }
        Ok(report)
    }

    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>> {
        self.inner.get_alert(id)
    }

    fn query_alerts(&self, query: &AlertQuery) -> Result<AlertPage> {
        self.inner.query_alerts(query)
    }

    fn update_alert(
        &self,
        id: &str,
        change: &AlertChange,
        actor: &str,
        now_ns: u64,
    ) -> Result<Option<StoredAlert>> {
        self.inner.update_alert(id, change, actor, now_ns)
    }

    fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.inner.nodes()
    }

    fn containers(&self, query: &ContainerQuery) -> Result<Vec<ContainerRecord>> {
        self.inner.containers(query)
    }

    fn container_history(&self, id: &str) -> Result<Vec<rampart_event::ContainerLifecycle>> {
        self.inner.container_history(id)
    }

    fn images(&self) -> Result<Vec<ImageRecord>> {
        self.inner.images()
    }

    fn workloads(&self, query: &WorkloadQuery) -> Result<Vec<WorkloadRecord>> {
        self.inner.workloads(query)
    }

    fn put_reports(&self, node: &str, reports: &[rampart_event::fleet::NodeReport]) -> Result<u64> {
        self.inner.put_reports(node, reports)
    }

    fn reports(&self, kind: &str, node: Option<&str>) -> Result<Vec<rampart_store::StoredReport>> {
        self.inner.reports(kind, node)
    }

    fn sboms(&self, node: &str, key: &str) -> Result<Option<rampart_store::reports::Sboms>> {
        self.inner.sboms(node, key)
    }

    fn vulnerabilities(
        &self,
        query: &rampart_store::reports::VulnQuery,
    ) -> Result<rampart_store::reports::VulnPage> {
        self.inner.vulnerabilities(query)
    }

    fn append_audit(&self, records: &[AuditRecord]) -> Result<u64> {
        self.inner.append_audit(records)
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        self.inner.query_audit(query)
    }

    fn put_flows(&self, node: &str, report: &rampart_store::flows::FlowReport) -> Result<u64> {
        self.inner.put_flows(node, report)
    }

    fn flows(&self, since_ns: u64) -> Result<rampart_store::flows::FleetFlows> {
        self.inner.flows(since_ns)
    }

    fn apply_retention(&self, retention: &Retention) -> Result<Purged> {
        self.inner.apply_retention(retention)
    }
}
