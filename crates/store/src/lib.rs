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
mod migrate;
mod sqlite;

pub use migrate::Migration;
pub use sqlite::{SqliteStore, SQLITE_MIGRATIONS};

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
    /// Alerts (and their comments) with `ts_ns` before this.
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

    fn append_audit(&self, records: &[AuditRecord]) -> Result<u64> {
        self.ingest(&Ingest {
            audit: records,
            ..Ingest::default()
        })
        .map(|r| r.audit)
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>>;

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
