//! Central's persistence behind one [`Store`] trait: alerts (idempotent by id, filtered
//! queries, acknowledge/resolve/comment), the inventory (nodes, containers including
//! those that are gone, with their lifecycle, images), audit records, and retention.
//!
//! Two implementations pass one [`conformance`] suite: [`SqliteStore`] here (rusqlite,
//! bundled, WAL; the default for `rampart up`) and `rampart-store-pg` (PostgreSQL, for
//! `rampart central`). Both apply versioned migrations at open ([`Migration`]).
//!
//! The trait is synchronous. SQLite, the default, is a blocking library whose calls
//! take microseconds, so a sync trait keeps `rampart up` and the suite free of async
//! machinery; async callers (the API, the bus consumer) make one `spawn_blocking` hop.
//! The PostgreSQL store drives tokio-postgres on a runtime of its own behind the same
//! facade.
//!
//! Writes from the bus are at-least-once: [`Store::ingest`] is idempotent (alerts and
//! audit records by id, lifecycle changes by container, time and action), so a
//! redelivered batch changes nothing.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub use rampart_event::AuditRecord;
use rampart_event::{Alert, ContainerLifecycle, Priority, Severity};
use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod flows;
mod migrate;
pub mod reports;
mod sqlite;

pub use migrate::Migration;
pub use reports::{ScanQuery, ScanSummary, StoredReport, VulnPage, VulnQuery, VulnRecord};
pub use sqlite::{
    SqliteStore, FINDINGS_BACKFILL_AT, PUT_REPORT_SQL, REPORTS_SQL, SQLITE_MIGRATIONS,
};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL store's errors, as text (this crate does not link tokio-postgres).
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("stored record does not decode: {0}")]
    Decode(String),
    #[error("the database schema is version {found}, newer than this build knows ({known})")]
    SchemaTooNew { found: u32, known: u32 },
    #[error("migration {version} ({name}) failed: {reason}")]
    Migration {
        version: u32,
        name: &'static str,
        reason: String,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where an alert is in its triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    #[default]
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    /// The SQL condition selecting this status, with the value as a literal: the
    /// status index holds handled alerts only (`WHERE status <> 'open'`, so an
    /// ingested alert skips it), and a planner can prove a query fits that partial
    /// index only from a literal, not from a bound parameter.
    pub fn sql_condition(self) -> &'static str {
        match self {
            Self::Open => " AND status = 'open'",
            Self::Acknowledged => " AND status = 'acknowledged'",
            Self::Resolved => " AND status = 'resolved'",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A comment an analyst left on an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub ts_ns: u64,
    pub author: String,
    pub text: String,
}

/// An alert as central keeps it: the node's alert plus its triage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub alert: Alert,
    /// The node that raised it (the bus batch's node).
    pub node: String,
    pub status: AlertStatus,
    /// Last triage change (or the insert), ns since the epoch.
    pub updated_ns: u64,
    /// Oldest first.
    pub comments: Vec<Comment>,
}

impl StoredAlert {
    pub fn container_id(&self) -> Option<&str> {
        self.alert
            .event
            .container
            .container()
            .map(|c| c.id.as_str())
    }
}

/// Where the next page of a query starts (exclusive): the last alert of this page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub ts_ns: u64,
    pub id: String,
}

/// Alerts newest first, filtered. Every filter set must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertQuery {
    /// `ts_ns >= since_ns`.
    pub since_ns: Option<u64>,
    /// `ts_ns < until_ns`.
    pub until_ns: Option<u64>,
    /// This priority or a more severe one.
    pub min_priority: Option<Priority>,
    /// This severity ([`Priority::severity`]) or higher.
    pub min_severity: Option<Severity>,
    pub rule: Option<String>,
    pub container_id: Option<String>,
    pub node: Option<String>,
    pub status: Option<AlertStatus>,
    /// Continue after this alert (the previous page's [`AlertPage::next`]).
    pub after: Option<Cursor>,
    /// Page size; 0 means [`DEFAULT_PAGE`], capped at [`MAX_PAGE`].
    pub limit: u32,
}

/// Migration 7, the same on both stores: the status index holds handled
/// (acknowledged or resolved) alerts only. Nearly every alert is stored open, so
/// ingest no longer writes that index for each one; `status = 'open'` is served by the
/// time index (most recent alerts are open), the other statuses by this one.
pub const HANDLED_ALERTS_INDEX_SQL: &str = "DROP INDEX alerts_status_ts;
CREATE INDEX alerts_handled_ts ON alerts (status, ts_ns) WHERE status <> 'open';";

pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

impl AlertQuery {
    pub fn page_size(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        }
    }
}

/// One page of alerts; `next` is set when more may follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPage {
    pub alerts: Vec<StoredAlert>,
    pub next: Option<Cursor>,
}

/// A triage change an analyst makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AlertChange {
    Acknowledge,
    Resolve,
    Reopen,
    Comment { text: String },
}

impl AlertChange {
    /// The audit action name.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Acknowledge => "alert.acknowledge",
            Self::Resolve => "alert.resolve",
            Self::Reopen => "alert.reopen",
            Self::Comment { .. } => "alert.comment",
        }
    }

    fn status(&self) -> Option<AlertStatus> {
        match self {
            Self::Acknowledge => Some(AlertStatus::Acknowledged),
            Self::Resolve => Some(AlertStatus::Resolved),
            Self::Reopen => Some(AlertStatus::Open),
            Self::Comment { .. } => None,
        }
    }
}

/// A node central has heard from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub version: String,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

/// What central last knew of a container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerState {
    /// Started, or seen in an event and not reported gone since.
    Running,
    /// Its runtime stopped it.
    Stopped,
    /// Its main process ended (`exit_code`).
    Exited,
}

impl ContainerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Exited => "exited",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Stopped, Self::Exited]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A container in the inventory, kept after it is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub node: String,
    pub name: String,
    pub image: String,
    pub image_digest: String,
    pub state: ContainerState,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub started_ns: Option<u64>,
    pub finished_ns: Option<u64>,
    pub exit_code: Option<i64>,
}

/// Which containers to list (newest seen first).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerQuery {
    pub node: Option<String>,
    pub image: Option<String>,
    /// Also those stopped or exited.
    pub include_gone: bool,
    /// 0 means [`DEFAULT_PAGE`], capped at [`MAX_PAGE`].
    pub limit: u32,
}

/// An image some container ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub image: String,
    pub digest: String,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// Containers of this image in the inventory (gone ones included).
    pub containers: u64,
}

/// What a container belongs to, from its labels: the Kubernetes workload that owns its
/// pod, else its compose project and service, else its image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadKey {
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, `CronJob`, `Pod` (no owner
    /// found), `ComposeService` or `Image`.
    pub kind: String,
    /// The Kubernetes namespace, or the compose project; empty for images.
    pub namespace: String,
    pub name: String,
}

fn hash_like(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The workload a container belongs to. Kubernetes owners come from the pod's labels
/// as the CRI copies them (`pod-template-hash` for a Deployment's ReplicaSet,
/// `statefulset.kubernetes.io/pod-name`, `controller-revision-hash` for a DaemonSet,
/// `job-name`, a CronJob's job named `<cronjob>-<minutes>`), else from the pod name's
/// shape; a pod with neither is its own workload. `None` without labels or an image.
pub fn workload_of(
    labels: &std::collections::BTreeMap<String, String>,
    image: &str,
) -> Option<WorkloadKey> {
    let key = |kind: &str, namespace: &str, name: &str| {
        Some(WorkloadKey {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        })
    };
    if let Some(pod) = labels.get("io.kubernetes.pod.name") {
        let ns = labels
            .get("io.kubernetes.pod.namespace")
            .map(String::as_str)
            .unwrap_or("default");
        // `<name>-<suffix>`: the owner's name is what precedes the suffix.
        let strip = |suffixes: usize| {
            let mut name = pod.as_str();
            for _ in 0..suffixes {
                name = name.rsplit_once('-').map(|(a, _)| a).unwrap_or(name);
            }
            name.to_string()
        };
        if let Some(job) = labels
            .get("batch.kubernetes.io/job-name")
            .or_else(|| labels.get("job-name"))
        {
            // A CronJob names its jobs `<cronjob>-<scheduled minutes since the epoch>`.
            if let Some((cron, stamp)) = job.rsplit_once('-') {
                if stamp.len() >= 8 && stamp.bytes().all(|b| b.is_ascii_digit()) {
                    return key("CronJob", ns, cron);
                }
            }
            return key("Job", ns, job);
        }
        if labels.contains_key("pod-template-hash") {
            return key("Deployment", ns, &strip(2));
        }
        if labels.contains_key("statefulset.kubernetes.io/pod-name") {
            return key("StatefulSet", ns, &strip(1));
        }
        if labels.contains_key("controller-revision-hash") {
            return key("DaemonSet", ns, &strip(1));
        }
        // No owner labels: the name's shape (`web-7d4b9c8f5d-x2x7q`: Deployment,
        // `web-0`: StatefulSet, `agent-x2x7q`: DaemonSet).
        let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
        return match parts.as_slice() {
            [last, rs, _] if hash_like(last, 5..=5) && hash_like(rs, 8..=10) => {
                key("Deployment", ns, &strip(2))
            }
            [last, _, ..] if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) => {
                key("StatefulSet", ns, &strip(1))
            }
            [last, _, ..] if hash_like(last, 5..=5) => key("DaemonSet", ns, &strip(1)),
            _ => key("Pod", ns, pod),
        };
    }
    if let (Some(project), Some(service)) = (
        labels.get("com.docker.compose.project"),
        labels.get("com.docker.compose.service"),
    ) {
        return key("ComposeService", project, service);
    }
    if image.is_empty() {
        return None;
    }
    // A digest-pinned reference keeps its digest off the name; no tag means latest.
    let image = image.split('@').next().unwrap_or(image);
    let tagged = match image.rfind(':') {
        Some(i) if !image[i + 1..].contains('/') => image.to_string(),
        _ => format!("{image}:latest"),
    };
    key("Image", "", &tagged)
}

/// The labels a batch reports per container (first non-empty set per container), as
/// the JSON both backends keep; a container's labels never change, so a stored set is
/// kept.
pub fn batch_labels(b: &Ingest<'_>) -> Result<Vec<(String, String)>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut add = |id: &str, labels: &std::collections::BTreeMap<String, String>| -> Result<()> {
        if !labels.is_empty() && seen.insert(id.to_string()) {
            let j =
                serde_json::to_string(labels).map_err(|e| StoreError::Invalid(e.to_string()))?;
            out.push((id.to_string(), j));
        }
        Ok(())
    };
    for a in b.alerts {
        if let rampart_event::Workload::Container(c) = &*a.event.container {
            add(&c.id, &c.labels)?;
        }
    }
    for l in b.lifecycle {
        add(&l.container_id, &l.labels)?;
    }
    Ok(out)
}

/// A container row's workload: its stored labels (JSON) and image.
pub fn workload_of_row(labels_json: &str, image: &str) -> Result<Option<WorkloadKey>> {
    let labels: std::collections::BTreeMap<String, String> = serde_json::from_str(labels_json)
        .map_err(|e| StoreError::Decode(format!("container labels: {e}")))?;
    Ok(workload_of(&labels, image))
}

/// Which workloads to list. Every filter set must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkloadQuery {
    pub namespace: Option<String>,
    pub kind: Option<String>,
    /// Also workloads whose containers are all gone.
    pub include_gone: bool,
    /// 0 means [`DEFAULT_PAGE`], capped at [`MAX_PAGE`].
    pub limit: u32,
}

/// A workload and its containers across the fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRecord {
    pub key: WorkloadKey,
    /// Container ids, running ones first, then by id.
    pub container_ids: Vec<String>,
    pub running: u64,
    pub nodes: Vec<String>,
    pub images: Vec<String>,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

/// One container's row as both backends read it for [`group_workloads`].
#[derive(Debug, Clone)]
pub struct WorkloadRow {
    pub key: WorkloadKey,
    pub id: String,
    pub node: String,
    pub image: String,
    pub running: bool,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

/// Groups container rows into workloads (by key), applies the query, newest seen
/// first.
pub fn group_workloads(rows: Vec<WorkloadRow>, q: &WorkloadQuery) -> Vec<WorkloadRecord> {
    let mut by_key: std::collections::BTreeMap<WorkloadKey, Vec<WorkloadRow>> =
        std::collections::BTreeMap::new();
    for r in rows {
        by_key.entry(r.key.clone()).or_default().push(r);
    }
    let mut out: Vec<WorkloadRecord> = by_key
        .into_iter()
        .filter(|(k, _)| q.namespace.as_ref().is_none_or(|n| *n == k.namespace))
        .filter(|(k, _)| q.kind.as_ref().is_none_or(|n| *n == k.kind))
        .map(|(key, mut rows)| {
            rows.sort_by(|a, b| b.running.cmp(&a.running).then_with(|| a.id.cmp(&b.id)));
            let set = |f: fn(&WorkloadRow) -> &str| {
                rows.iter()
                    .map(f)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
            };
            WorkloadRecord {
                nodes: set(|r| &r.node),
                images: set(|r| &r.image),
                running: rows.iter().filter(|r| r.running).count() as u64,
                first_seen_ns: rows.iter().map(|r| r.first_seen_ns).min().unwrap_or(0),
                last_seen_ns: rows.iter().map(|r| r.last_seen_ns).max().unwrap_or(0),
                container_ids: rows.into_iter().map(|r| r.id).collect(),
                key,
            }
        })
        .filter(|w| q.include_gone || w.running > 0)
        .collect();
    out.sort_by(|a, b| {
        b.last_seen_ns
            .cmp(&a.last_seen_ns)
            .then_with(|| a.key.cmp(&b.key))
    });
    let limit = match q.limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    } as usize;
    out.truncate(limit);
    out
}

/// Audit records oldest first, filtered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuditQuery {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub limit: u32,
}

/// One bus batch's worth of writes, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Ingest<'a> {
    /// The node that sent it (also recorded as seen at `seen_ns`).
    pub node: &'a str,
    pub node_version: &'a str,
    pub seen_ns: u64,
    pub alerts: &'a [Alert],
    pub lifecycle: &'a [ContainerLifecycle],
    pub audit: &'a [AuditRecord],
}

/// What an ingest changed (records already stored are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IngestReport {
    pub alerts: u64,
    pub lifecycle: u64,
    pub audit: u64,
}

/// Records older than the bounds are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Retention {
    /// Alerts (and their comments) with `ts_ns` before this; network flow edges and
    /// addresses last seen before it go too.
    pub alerts_before_ns: Option<u64>,
    pub audit_before_ns: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Purged {
    pub alerts: u64,
    pub audit: u64,
}

/// Central's persistence. Implementations are shared between threads; every method is
/// one transaction.
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The highest migration applied.
    fn schema_version(&self) -> Result<u32>;

    /// Applies a bus batch: alerts (new ids only), containers named by the alerts'
    /// events, lifecycle changes, audit records, and the node's last-seen time.
    fn ingest(&self, batch: &Ingest<'_>) -> Result<IngestReport>;

    /// Applies several bus batches in one transaction, all or none: central commits a
    /// fetch's worth of messages at once. The reports are per batch, in order, and
    /// equal what [`Store::ingest`] one after the other would report (a record that
    /// two batches carry counts for the first).
    fn ingest_many(&self, batches: &[Ingest<'_>]) -> Result<Vec<IngestReport>> {
        batches.iter().map(|b| self.ingest(b)).collect()
    }

    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>>;

    fn query_alerts(&self, query: &AlertQuery) -> Result<AlertPage>;

    /// Applies a triage change and audits it (`actor`, at `now_ns`) in the same
    /// transaction. `None` when there is no such alert.
    fn update_alert(
        &self,
        id: &str,
        change: &AlertChange,
        actor: &str,
        now_ns: u64,
    ) -> Result<Option<StoredAlert>>;

    /// Nodes by name.
    fn nodes(&self) -> Result<Vec<NodeRecord>>;

    fn containers(&self, query: &ContainerQuery) -> Result<Vec<ContainerRecord>>;

    /// A container's lifecycle changes, oldest first.
    fn container_history(&self, id: &str) -> Result<Vec<ContainerLifecycle>>;

    /// Images by name.
    fn images(&self) -> Result<Vec<ImageRecord>>;

    /// Containers grouped into workloads ([`workload_of`]), newest seen first.
    fn workloads(&self, query: &WorkloadQuery) -> Result<Vec<WorkloadRecord>>;

    /// Keeps each of `node`'s reports unless a newer one of the same key is stored
    /// (a redelivery changes nothing). Returns how many were written.
    fn put_reports(&self, node: &str, reports: &[rampart_event::fleet::NodeReport]) -> Result<u64>;

    /// The newest reports of `kind` (`rules`, `health`, `scan`), of one node or all, by
    /// node then key; scan reports without their SBOM documents.
    fn reports(&self, kind: &str, node: Option<&str>) -> Result<Vec<StoredReport>>;

    /// The SBOM documents of a scan report (`key` is the report's key).
    fn sboms(&self, node: &str, key: &str) -> Result<Option<reports::Sboms>>;

    /// The vulnerabilities of the newest scan reports, one per id, package and
    /// version, most severe first, in-use before not, with their layers and first-seen
    /// times, the newest database update and how many are new since it (filtered,
    /// bounded and counted by the store, from the findings kept one per row).
    fn vulnerabilities(&self, query: &reports::VulnQuery) -> Result<reports::VulnPage>;

    fn append_audit(&self, records: &[AuditRecord]) -> Result<u64> {
        self.ingest(&Ingest {
            audit: records,
            ..Ingest::default()
        })
        .map(|r| r.audit)
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;

    /// Keeps a node's flow report ([`flows`]): per edge the newest report's counters,
    /// per address its newest owner. Returns the edges written (a redelivery of an
    /// older report writes none).
    fn put_flows(&self, node: &str, report: &rampart_bus::flows::FlowReport) -> Result<u64>;

    /// The fleet's edges last seen at or after `since_ns` (newest first, at most
    /// [`flows::MAX_FLOW_EDGES`]) and every node's workload addresses.
    fn flows(&self, since_ns: u64) -> Result<flows::FleetFlows>;

    fn apply_retention(&self, retention: &Retention) -> Result<Purged>;
}

/// The rank stored for a priority: its place in [`Priority::ALL`] (0 most severe).
pub fn priority_rank(p: Priority) -> i64 {
    Priority::ALL.iter().position(|x| *x == p).unwrap_or(0) as i64
}

/// The rank stored for a severity: 0 unknown … 4 critical.
pub fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Unknown => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::High => 3,
        Severity::Critical => 4,
    }
}

/// The audit record of an API triage change.
pub fn triage_audit(id: &str, change: &AlertChange, actor: &str, now_ns: u64) -> AuditRecord {
    let detail = match change {
        AlertChange::Comment { text } => serde_json::json!({ "comment": text }).to_string(),
        _ => String::new(),
    };
    AuditRecord {
        id: rampart_event::audit_id(now_ns),
        ts_ns: now_ns,
        origin: "central".into(),
        actor: actor.into(),
        action: change.action().into(),
        target: id.into(),
        detail,
    }
}

/// The status a change leaves, given the current one.
pub fn status_after(current: AlertStatus, change: &AlertChange) -> AlertStatus {
    change.status().unwrap_or(current)
}

/// How a lifecycle change moves a container's row, computed once for both backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEffect {
    pub state: ContainerState,
    pub started_ns: Option<u64>,
    pub finished_ns: Option<u64>,
    pub exit_code: Option<i64>,
}

/// The state after `change`, from the row's current started/finished/exit values.
pub fn lifecycle_effect(
    change: &ContainerLifecycle,
    started_ns: Option<u64>,
    finished_ns: Option<u64>,
    exit_code: Option<i64>,
) -> LifecycleEffect {
    use rampart_event::LifecycleAction as A;
    match change.action {
        A::Start => LifecycleEffect {
            state: ContainerState::Running,
            started_ns: Some(change.ts_ns),
            finished_ns: None,
            exit_code: None,
        },
        A::Stop => LifecycleEffect {
            state: ContainerState::Stopped,
            started_ns,
            finished_ns: Some(finished_ns.unwrap_or(change.ts_ns)),
            exit_code,
        },
        A::Die { exit_code: code } => LifecycleEffect {
            state: ContainerState::Exited,
            started_ns,
            finished_ns: Some(change.ts_ns),
            exit_code: Some(code),
        },
    }
}

/// The stored name of a lifecycle action, and its exit code.
pub fn action_parts(a: &rampart_event::LifecycleAction) -> (&'static str, Option<i64>) {
    use rampart_event::LifecycleAction as A;
    match a {
        A::Start => ("start", None),
        A::Stop => ("stop", None),
        A::Die { exit_code } => ("die", Some(*exit_code)),
    }
}

/// The action back from its stored parts.
pub fn action_from_parts(
    name: &str,
    exit_code: Option<i64>,
) -> Result<rampart_event::LifecycleAction> {
    use rampart_event::LifecycleAction as A;
    Ok(match name {
        "start" => A::Start,
        "stop" => A::Stop,
        "die" => A::Die {
            exit_code: exit_code.unwrap_or_default(),
        },
        other => return Err(StoreError::Decode(format!("lifecycle action {other:?}"))),
    })
}

/// u64 nanoseconds as the i64 both databases store (valid until 2262).
pub fn ns_to_db(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

pub fn ns_from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod workload_tests {
    use super::*;

    fn key(labels: &[(&str, &str)], image: &str) -> Option<(String, String, String)> {
        let l = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        workload_of(&l, image).map(|k| (k.kind, k.namespace, k.name))
    }

    fn k(kind: &str, ns: &str, name: &str) -> Option<(String, String, String)> {
        Some((kind.into(), ns.into(), name.into()))
    }

    #[test]
    fn kubernetes_owners_from_labels_then_from_the_pod_name() {
        let pod = |name| ("io.kubernetes.pod.name", name);
        let ns = ("io.kubernetes.pod.namespace", "prod");
        assert_eq!(
            key(
                &[
                    pod("api-7d4b9c8f5d-x2x7q"),
                    ns,
                    ("pod-template-hash", "7d4b9c8f5d")
                ],
                "i"
            ),
            k("Deployment", "prod", "api")
        );
        assert_eq!(
            key(
                &[
                    pod("db-0"),
                    ns,
                    ("statefulset.kubernetes.io/pod-name", "db-0")
                ],
                "i"
            ),
            k("StatefulSet", "prod", "db")
        );
        assert_eq!(
            key(
                &[
                    pod("node-agent-x2x7q"),
                    ns,
                    ("controller-revision-hash", "5c9f")
                ],
                "i"
            ),
            k("DaemonSet", "prod", "node-agent")
        );
        assert_eq!(
            key(
                &[
                    pod("backup-28371540-abcde"),
                    ns,
                    ("job-name", "backup-28371540")
                ],
                "i"
            ),
            k("CronJob", "prod", "backup")
        );
        assert_eq!(
            key(
                &[
                    pod("migrate-abcde"),
                    ns,
                    ("batch.kubernetes.io/job-name", "migrate")
                ],
                "i"
            ),
            k("Job", "prod", "migrate")
        );
        // Without owner labels, by the name's shape.
        assert_eq!(
            key(&[pod("web-5f6d8c7b9-q8w2e"), ns], "i"),
            k("Deployment", "prod", "web")
        );
        assert_eq!(
            key(&[pod("redis-2"), ns], "i"),
            k("StatefulSet", "prod", "redis")
        );
        assert_eq!(
            key(&[pod("fluentd-q8w2e"), ns], "i"),
            k("DaemonSet", "prod", "fluentd")
        );
        assert_eq!(key(&[pod("debug")], "i"), k("Pod", "default", "debug"));
    }

    #[test]
    fn compose_then_image() {
        let compose = [
            ("com.docker.compose.project", "shop"),
            ("com.docker.compose.service", "web"),
        ];
        assert_eq!(key(&compose, "nginx:1"), k("ComposeService", "shop", "web"));
        // A project without a service is not a compose service.
        assert_eq!(
            key(&compose[..1], "nginx:1.27"),
            k("Image", "", "nginx:1.27")
        );
        assert_eq!(key(&[], "nginx"), k("Image", "", "nginx:latest"));
        assert_eq!(
            key(&[], "registry:5000/team/app@sha256:abc"),
            k("Image", "", "registry:5000/team/app:latest")
        );
        assert_eq!(key(&[], ""), None);
    }
}
