//! Central's store on PostgreSQL: [`PgStore`] implements `rampart_store::Store` with
//! tokio-postgres and passes the same conformance suite as the SQLite store.
//!
//! The trait is synchronous (see `rampart-store`), so the store owns a one-worker tokio
//! runtime that drives its connection, and each call blocks on it. Call it from plain
//! threads or `spawn_blocking`, never from inside an async task (tokio forbids blocking
//! there). A lost connection (PostgreSQL restarted) fails the call in flight; the next
//! call reconnects, so the bus consumer, which acks only after a commit, redelivers
//! the batch and nothing is lost.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod ingest;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use rampart_event::{Alert, ContainerLifecycle};
use rampart_store::*;
use tokio::runtime::Runtime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Transaction};

/// PostgreSQL's schema steps: the same versions and tables as SQLite's.
pub const PG_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "alerts, inventory, audit",
        sql: r#"
CREATE TABLE alerts (
    id TEXT COLLATE "C" PRIMARY KEY,
    ts_ns BIGINT NOT NULL,
    first_ts_ns BIGINT NOT NULL,
    count BIGINT NOT NULL,
    rule TEXT NOT NULL,
    priority BIGINT NOT NULL,
    severity BIGINT NOT NULL,
    node TEXT NOT NULL,
    container_id TEXT,
    status TEXT NOT NULL,
    updated_ns BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX alerts_ts ON alerts (ts_ns, id);
CREATE INDEX alerts_rule_ts ON alerts (rule, ts_ns);
CREATE INDEX alerts_container_ts ON alerts (container_id, ts_ns);
CREATE INDEX alerts_node_ts ON alerts (node, ts_ns);
CREATE INDEX alerts_status_ts ON alerts (status, ts_ns);
CREATE TABLE alert_comments (
    id BIGSERIAL PRIMARY KEY,
    alert_id TEXT COLLATE "C" NOT NULL,
    ts_ns BIGINT NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, ts_ns);
CREATE TABLE nodes (
    name TEXT COLLATE "C" PRIMARY KEY,
    version TEXT NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL
);
CREATE TABLE containers (
    id TEXT COLLATE "C" PRIMARY KEY,
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    state TEXT NOT NULL,
    state_ts_ns BIGINT NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL,
    started_ns BIGINT,
    finished_ns BIGINT,
    exit_code BIGINT
);
CREATE INDEX containers_seen ON containers (last_seen_ns);
CREATE TABLE container_events (
    container_id TEXT COLLATE "C" NOT NULL,
    ts_ns BIGINT NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    exit_code BIGINT,
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    PRIMARY KEY (container_id, ts_ns, action)
);
CREATE TABLE images (
    image TEXT COLLATE "C" PRIMARY KEY,
    digest TEXT NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL
);
CREATE TABLE audit (
    id TEXT COLLATE "C" PRIMARY KEY,
    ts_ns BIGINT NOT NULL,
    origin TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_ts ON audit (ts_ns, id);
"#,
    },
    Migration {
        version: 2,
        name: "container labels (workloads)",
        sql: "ALTER TABLE containers ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';",
    },
    Migration {
        version: 3,
        name: "node reports (rules, health, scan results)",
        sql: REPORTS_SQL,
    },
    Migration {
        version: 4,
        name: "scan findings, one per row",
        sql: rampart_store::reports::FINDINGS_SQL,
    },
    Migration {
        version: 5,
        name: "network flows of the fleet",
        sql: rampart_store::flows::FLOWS_SQL,
    },
    Migration {
        version: 6,
        name: "scan findings' layers, first-seen times and database update times",
        sql: rampart_store::reports::FINDING_EXTRAS_PG,
    },
    Migration {
        version: 7,
        name: "status index of handled alerts only",
        sql: rampart_store::HANDLED_ALERTS_INDEX_SQL,
    },
];

/// Serialises migrations between centrals starting at once (an advisory lock key).
const MIGRATION_LOCK: i64 = 0x0072_616d_7061_7274; // "rampart"

/// Runs `$body` (a future using `$c: &mut Client`) on the store's connection, and
/// forgets the connection when it was lost meanwhile, so the next call reconnects.
macro_rules! call {
    ($store:expr, |$c:ident| $body:expr) => {
        call!($store, &$store.client, |$c| $body)
    };
    ($store:expr, $slot:expr, |$c:ident| $body:expr) => {{
        let mut guard = $store.connected($slot)?;
        let result = match guard.as_mut() {
            Some($c) => $store.block_on($body)?,
            None => Err(StoreError::Connect("no connection".into())),
        };
        if guard.as_ref().is_some_and(|c| c.is_closed()) {
            *guard = None;
        }
        result
    }};
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// A libpq-style connection string (`host=127.0.0.1 user=rampart dbname=rampart`)
    /// or a `postgresql://` URL.
    pub url: String,
    /// A schema of its own (created if missing) instead of `public`: several stores in
    /// one database (tests, or two centrals).
    pub schema: Option<String>,
}

/// Connections for ingest beside the main one: central may commit several groups of
/// bus messages at once, each in a transaction of its own on its own connection (the
/// alerts' inserts, most of the work, run in parallel in PostgreSQL).
const INGEST_CONNECTIONS: usize = 4;

/// Central's store in PostgreSQL.
pub struct PgStore {
    rt: Option<Runtime>,
    config: PgConfig,
    client: Mutex<Option<Client>>,
    /// Opened on first use.
    ingest_clients: [Mutex<Option<Client>>; INGEST_CONNECTIONS],
    /// How ingest writes new rows ([`IngestPath`] as its index): benchmarks compare
    /// the paths in one run.
    ingest_path: AtomicU8,
}

/// How ingest writes alerts and container history. All three store the same rows and
/// report the same counts; they differ in PostgreSQL's work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestPath {
    /// Binary `COPY` under a savepoint (no SQL projection of column arrays, and
    /// PostgreSQL inserts the heap rows in multi-row batches); a duplicate id (a
    /// redelivery) rolls back to the savepoint and takes the careful statement.
    #[default]
    Copy,
    /// A plain `INSERT … SELECT FROM UNNEST` under a savepoint, the careful statement
    /// after a duplicate (the path before COPY).
    Insert,
    /// Every statement with `ON CONFLICT … RETURNING` (the path before that).
    Careful,
}

impl IngestPath {
    const ALL: [IngestPath; 3] = [IngestPath::Copy, IngestPath::Insert, IngestPath::Careful];

    pub fn as_str(self) -> &'static str {
        match self {
            IngestPath::Copy => "copy",
            IngestPath::Insert => "insert",
            IngestPath::Careful => "careful",
        }
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(e.to_string())
}

fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

impl PgStore {
    /// Connects, creates the schema if asked, and applies missing migrations.
    pub fn open(config: PgConfig) -> Result<Self> {
        if let Some(s) = &config.schema {
            if !valid_schema(s) {
                return Err(StoreError::Invalid(format!(
                    "schema name {s:?}: lowercase letters, digits and _ only"
                )));
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rampart-store-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let store = Self {
            rt: Some(rt),
            config,
            client: Mutex::new(None),
            ingest_clients: Default::default(),
            ingest_path: AtomicU8::new(IngestPath::default() as u8),
        };
        call!(store, |c| migrate(c))?;
        Ok(store)
    }

    /// Which way ingest writes new rows (the same results; benchmarks compare the
    /// paths in one run).
    pub fn set_ingest_path(&self, path: IngestPath) {
        self.ingest_path.store(path as u8, Ordering::Relaxed);
    }

    pub fn ingest_path(&self) -> IngestPath {
        let i = self.ingest_path.load(Ordering::Relaxed) as usize;
        IngestPath::ALL.get(i).copied().unwrap_or_default()
    }

    /// Runs SQL statements as they are (administration, tests).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        call!(
            self,
            |c| async move { c.batch_execute(sql).await.map_err(pg) }
        )
    }

    /// Bytes the store's tables take on disk, with their indexes and TOAST (in its
    /// schema; benchmarks report it).
    pub fn size_bytes(&self) -> Result<u64> {
        call!(self, |c| async move {
            let row = c
                .query_one(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    fn block_on<F: Future>(&self, f: F) -> Result<F::Output> {
        // The runtime is taken only by Drop.
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| StoreError::Connect("the store is closed".into()))?;
        Ok(rt.block_on(f))
    }

    /// An ingest connection no other ingest holds (else the first, waiting for it).
    fn ingest_slot(&self) -> &Mutex<Option<Client>> {
        self.ingest_clients
            .iter()
            .find(|m| {
                matches!(
                    m.try_lock(),
                    Ok(_) | Err(std::sync::TryLockError::Poisoned(_))
                )
            })
            .unwrap_or(&self.ingest_clients[0])
    }

    /// The connection in `slot`, reconnecting if it was lost.
    fn connected<'a>(
        &self,
        slot: &'a Mutex<Option<Client>>,
    ) -> Result<MutexGuard<'a, Option<Client>>> {
        // A panic mid-call leaves at worst an open transaction, rolled back when the
        // Transaction is dropped, so a poisoned lock is still usable.
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(guard);
        }
        *guard = None;
        let (client, conn) = self
            .block_on(tokio_postgres::connect(&self.config.url, NoTls))?
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        if let Some(rt) = &self.rt {
            rt.spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!(error = %e, "postgres connection lost; the next call reconnects");
                }
            });
        }
        if let Some(schema) = &self.config.schema {
            // Checked by valid_schema: safe to splice.
            let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}");
            self.block_on(client.batch_execute(&sql))?
                .map_err(|e| StoreError::Connect(e.to_string()))?;
        }
        *guard = Some(client);
        Ok(guard)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside async code; the owner
        // may well be dropped there (an Arc<dyn Store> in a server task).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn migrate(c: &mut Client) -> Result<()> {
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ns BIGINT NOT NULL)",
    )
    .await
    .map_err(pg)?;
    let tx = c.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    let current = current_version(&tx).await?;
    let known = Migration::latest(PG_MIGRATIONS);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for m in PG_MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| StoreError::Migration {
                version: m.version,
                name: m.name,
                reason: e.to_string(),
            })?;
        if m.version == rampart_store::FINDINGS_BACKFILL_AT {
            backfill_findings(&tx).await?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ns) VALUES ($1, $2, $3)",
            &[
                &i64::from(m.version),
                &m.name,
                &ns_to_db(rampart_event::wall_ns()),
            ],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

async fn current_version(c: &impl GenericClient) -> Result<u32> {
    let row = c
        .query_one("SELECT MAX(version) FROM schema_migrations", &[])
        .await
        .map_err(pg)?;
    let v: Option<i64> = row.try_get(0).map_err(pg)?;
    Ok(v.unwrap_or(0) as u32)
}

async fn insert_audit(tx: &Transaction<'_>, r: &AuditRecord) -> Result<bool> {
    let n = tx
        .execute(
            "INSERT INTO audit (id, ts_ns, origin, actor, action, target, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
            &[
                &r.id,
                &ns_to_db(r.ts_ns),
                &r.origin,
                &r.actor,
                &r.action,
                &r.target,
                &r.detail,
            ],
        )
        .await
        .map_err(pg)?;
    Ok(n == 1)
}

const ALERT_COLUMNS: &str = "body, node, status, updated_ns, ts_ns, id";

/// Alerts from their rows, with their comments fetched in one query.
async fn load_alerts(c: &impl GenericClient, rows: &[Row]) -> Result<Vec<StoredAlert>> {
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<_, String>(5))
        .collect::<Result<_, _>>()
        .map_err(pg)?;
    let mut comments: HashMap<String, Vec<Comment>> = HashMap::new();
    if !ids.is_empty() {
        for r in c
            .query(
                "SELECT alert_id, ts_ns, author, text FROM alert_comments
                 WHERE alert_id = ANY($1) ORDER BY alert_id, ts_ns, id",
                &[&ids],
            )
            .await
            .map_err(pg)?
        {
            comments
                .entry(r.try_get(0).map_err(pg)?)
                .or_default()
                .push(Comment {
                    ts_ns: ns_from_db(r.try_get(1).map_err(pg)?),
                    author: r.try_get(2).map_err(pg)?,
                    text: r.try_get(3).map_err(pg)?,
                });
        }
    }
    rows.iter()
        .map(|r| {
            let body: &str = r.try_get(0).map_err(pg)?;
            let alert: Alert = serde_json::from_str(body)
                .map_err(|e| StoreError::Decode(format!("alert: {e}")))?;
            let status: &str = r.try_get(2).map_err(pg)?;
            let status = AlertStatus::parse(status)
                .ok_or_else(|| StoreError::Decode(format!("alert status {status:?}")))?;
            let comments = comments.remove(&alert.id).unwrap_or_default();
            Ok(StoredAlert {
                node: r.try_get(1).map_err(pg)?,
                status,
                updated_ns: ns_from_db(r.try_get(3).map_err(pg)?),
                comments,
                alert,
            })
        })
        .collect()
}

async fn get_alert(c: &impl GenericClient, id: &str) -> Result<Option<StoredAlert>> {
    let rows = c
        .query(
            &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(pg)?;
    Ok(load_alerts(c, &rows).await?.pop())
}

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Appends `cond` with its `?` replaced by the next placeholder.
fn push(sql: &mut String, args: &mut Args, cond: &str, v: Box<dyn ToSql + Sync + Send>) {
    args.push(v);
    sql.push_str(&cond.replace('?', &format!("${}", args.len())));
}

fn page_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    }
}

async fn query_alerts(c: &mut Client, q: &AlertQuery) -> Result<AlertPage> {
    let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE TRUE");
    let mut args: Args = Vec::new();
    let a = &mut args;
    if let Some(v) = q.since_ns {
        push(&mut sql, a, " AND ts_ns >= ?", Box::new(ns_to_db(v)));
    }
    if let Some(v) = q.until_ns {
        push(&mut sql, a, " AND ts_ns < ?", Box::new(ns_to_db(v)));
    }
    if let Some(p) = q.min_priority {
        push(
            &mut sql,
            a,
            " AND priority <= ?",
            Box::new(priority_rank(p)),
        );
    }
    if let Some(s) = q.min_severity {
        push(
            &mut sql,
            a,
            " AND severity >= ?",
            Box::new(severity_rank(s)),
        );
    }
    if let Some(v) = &q.rule {
        push(&mut sql, a, " AND rule = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.container_id {
        push(&mut sql, a, " AND container_id = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.node {
        push(&mut sql, a, " AND node = ?", Box::new(v.clone()));
    }
    if let Some(v) = q.status {
        sql.push_str(v.sql_condition());
    }
    if let Some(cur) = &q.after {
        push(
            &mut sql,
            a,
            " AND (ts_ns, id) < (?",
            Box::new(ns_to_db(cur.ts_ns)),
        );
        push(&mut sql, a, ", ?)", Box::new(cur.id.clone()));
    }
    let limit = q.page_size();
    sql.push_str(&format!(
        " ORDER BY ts_ns DESC, id DESC LIMIT {}",
        limit + 1
    ));
    let mut rows = c.query(&sql, &refs(&args)).await.map_err(pg)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(r)) => Some(Cursor {
            ts_ns: ns_from_db(r.try_get(4).map_err(pg)?),
            id: r.try_get(5).map_err(pg)?,
        }),
        _ => None,
    };
    Ok(AlertPage {
        alerts: load_alerts(c, &rows).await?,
        next,
    })
}

async fn update_alert(
    c: &mut Client,
    id: &str,
    change: &AlertChange,
    actor: &str,
    now_ns: u64,
) -> Result<Option<StoredAlert>> {
    let tx = c.transaction().await.map_err(pg)?;
    let Some(row) = tx
        .query_opt("SELECT status FROM alerts WHERE id = $1 FOR UPDATE", &[&id])
        .await
        .map_err(pg)?
    else {
        return Ok(None);
    };
    let status: &str = row.try_get(0).map_err(pg)?;
    let current = AlertStatus::parse(status)
        .ok_or_else(|| StoreError::Decode(format!("alert status {status:?}")))?;
    let now = ns_to_db(now_ns);
    tx.execute(
        "UPDATE alerts SET status = $2, updated_ns = $3 WHERE id = $1",
        &[&id, &status_after(current, change).as_str(), &now],
    )
    .await
    .map_err(pg)?;
    if let AlertChange::Comment { text } = change {
        tx.execute(
            "INSERT INTO alert_comments (alert_id, ts_ns, author, text) VALUES ($1, $2, $3, $4)",
            &[&id, &now, &actor, text],
        )
        .await
        .map_err(pg)?;
    }
    insert_audit(&tx, &triage_audit(id, change, actor, now_ns)).await?;
    let updated = get_alert(&tx, id).await?;
    tx.commit().await.map_err(pg)?;
    Ok(updated)
}

async fn nodes(c: &mut Client) -> Result<Vec<NodeRecord>> {
    c.query(
        "SELECT name, version, first_seen_ns, last_seen_ns FROM nodes ORDER BY name",
        &[],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| {
        Ok(NodeRecord {
            name: r.try_get(0).map_err(pg)?,
            version: r.try_get(1).map_err(pg)?,
            first_seen_ns: ns_from_db(r.try_get(2).map_err(pg)?),
            last_seen_ns: ns_from_db(r.try_get(3).map_err(pg)?),
        })
    })
    .collect()
}

async fn containers(c: &mut Client, q: &ContainerQuery) -> Result<Vec<ContainerRecord>> {
    let mut sql = String::from(
        "SELECT id, node, name, image, image_digest, state, first_seen_ns, last_seen_ns,
                started_ns, finished_ns, exit_code FROM containers WHERE TRUE",
    );
    let mut args: Args = Vec::new();
    if let Some(n) = &q.node {
        push(&mut sql, &mut args, " AND node = ?", Box::new(n.clone()));
    }
    if let Some(i) = &q.image {
        push(&mut sql, &mut args, " AND image = ?", Box::new(i.clone()));
    }
    if !q.include_gone {
        sql.push_str(" AND state = 'running'");
    }
    sql.push_str(&format!(
        " ORDER BY last_seen_ns DESC, id LIMIT {}",
        page_limit(q.limit)
    ));
    c.query(&sql, &refs(&args))
        .await
        .map_err(pg)?
        .iter()
        .map(|r| {
            let state: &str = r.try_get(5).map_err(pg)?;
            Ok(ContainerRecord {
                id: r.try_get(0).map_err(pg)?,
                node: r.try_get(1).map_err(pg)?,
                name: r.try_get(2).map_err(pg)?,
                image: r.try_get(3).map_err(pg)?,
                image_digest: r.try_get(4).map_err(pg)?,
                state: ContainerState::parse(state)
                    .ok_or_else(|| StoreError::Decode(format!("container state {state:?}")))?,
                first_seen_ns: ns_from_db(r.try_get(6).map_err(pg)?),
                last_seen_ns: ns_from_db(r.try_get(7).map_err(pg)?),
                started_ns: r.try_get::<_, Option<i64>>(8).map_err(pg)?.map(ns_from_db),
                finished_ns: r.try_get::<_, Option<i64>>(9).map_err(pg)?.map(ns_from_db),
                exit_code: r.try_get(10).map_err(pg)?,
            })
        })
        .collect()
}

async fn container_history(c: &mut Client, id: &str) -> Result<Vec<ContainerLifecycle>> {
    c.query(
        "SELECT ts_ns, action, exit_code, name, image FROM container_events
         WHERE container_id = $1 ORDER BY ts_ns, action",
        &[&id],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| {
        let action: &str = r.try_get(1).map_err(pg)?;
        Ok(ContainerLifecycle {
            ts_ns: ns_from_db(r.try_get(0).map_err(pg)?),
            action: action_from_parts(action, r.try_get(2).map_err(pg)?)?,
            container_id: id.to_string(),
            name: r.try_get(3).map_err(pg)?,
            image: r.try_get(4).map_err(pg)?,
            labels: Default::default(),
        })
    })
    .collect()
}

async fn images(c: &mut Client) -> Result<Vec<ImageRecord>> {
    c.query(
        "SELECT i.image, i.digest, i.first_seen_ns, i.last_seen_ns,
                (SELECT COUNT(*) FROM containers c WHERE c.image = i.image)
         FROM images i ORDER BY i.image",
        &[],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| {
        Ok(ImageRecord {
            image: r.try_get(0).map_err(pg)?,
            digest: r.try_get(1).map_err(pg)?,
            first_seen_ns: ns_from_db(r.try_get(2).map_err(pg)?),
            last_seen_ns: ns_from_db(r.try_get(3).map_err(pg)?),
            containers: r.try_get::<_, i64>(4).map_err(pg)? as u64,
        })
    })
    .collect()
}

async fn workloads(c: &mut Client, q: &WorkloadQuery) -> Result<Vec<WorkloadRecord>> {
    let sql = if q.include_gone {
        "SELECT id, node, image, state, first_seen_ns, last_seen_ns, labels FROM containers"
    } else {
        "SELECT id, node, image, state, first_seen_ns, last_seen_ns, labels FROM containers
         WHERE state = 'running'"
    };
    let mut out = Vec::new();
    for r in c.query(sql, &[]).await.map_err(pg)? {
        let image: String = r.try_get(2).map_err(pg)?;
        let labels: &str = r.try_get(6).map_err(pg)?;
        if let Some(key) = workload_of_row(labels, &image)? {
            let state: &str = r.try_get(3).map_err(pg)?;
            out.push(WorkloadRow {
                key,
                id: r.try_get(0).map_err(pg)?,
                node: r.try_get(1).map_err(pg)?,
                image,
                running: state == ContainerState::Running.as_str(),
                first_seen_ns: ns_from_db(r.try_get(4).map_err(pg)?),
                last_seen_ns: ns_from_db(r.try_get(5).map_err(pg)?),
            });
        }
    }
    Ok(group_workloads(out, q))
}

async fn query_audit(c: &mut Client, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let mut sql = String::from(
        "SELECT id, ts_ns, origin, actor, action, target, detail FROM audit WHERE TRUE",
    );
    let mut args: Args = Vec::new();
    let a = &mut args;
    if let Some(v) = q.since_ns {
        push(&mut sql, a, " AND ts_ns >= ?", Box::new(ns_to_db(v)));
    }
    if let Some(v) = q.until_ns {
        push(&mut sql, a, " AND ts_ns < ?", Box::new(ns_to_db(v)));
    }
    if let Some(v) = &q.actor {
        push(&mut sql, a, " AND actor = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.action {
        push(&mut sql, a, " AND action = ?", Box::new(v.clone()));
    }
    if let Some(v) = &q.target {
        push(&mut sql, a, " AND target = ?", Box::new(v.clone()));
    }
    sql.push_str(&format!(
        " ORDER BY ts_ns, id LIMIT {}",
        page_limit(q.limit)
    ));
    c.query(&sql, &refs(&args))
        .await
        .map_err(pg)?
        .iter()
        .map(|r| {
            Ok(AuditRecord {
                id: r.try_get(0).map_err(pg)?,
                ts_ns: ns_from_db(r.try_get(1).map_err(pg)?),
                origin: r.try_get(2).map_err(pg)?,
                actor: r.try_get(3).map_err(pg)?,
                action: r.try_get(4).map_err(pg)?,
                target: r.try_get(5).map_err(pg)?,
                detail: r.try_get(6).map_err(pg)?,
            })
        })
        .collect()
}

async fn apply_retention(c: &mut Client, r: &Retention) -> Result<Purged> {
    let tx = c.transaction().await.map_err(pg)?;
    let mut purged = Purged::default();
    if let Some(before) = r.alerts_before_ns {
        let b = ns_to_db(before);
        tx.execute(
            "DELETE FROM alert_comments WHERE alert_id IN (SELECT id FROM alerts WHERE ts_ns < $1)",
            &[&b],
        )
        .await
        .map_err(pg)?;
        purged.alerts = tx
            .execute("DELETE FROM alerts WHERE ts_ns < $1", &[&b])
            .await
            .map_err(pg)?;
        for sql in rampart_store::flows::PURGE_FLOWS_SQL {
            tx.execute(sql, &[&b]).await.map_err(pg)?;
        }
    }
    if let Some(before) = r.audit_before_ns {
        purged.audit = tx
            .execute("DELETE FROM audit WHERE ts_ns < $1", &[&ns_to_db(before)])
            .await
            .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(purged)
}

/// The findings' rows (and each scan's database update time) of the scan reports
/// stored before [`rampart_store::FINDINGS_BACKFILL_AT`].
async fn backfill_findings(tx: &Transaction<'_>) -> Result<()> {
    let rows = tx
        .query(
            "SELECT node, key, body FROM node_reports WHERE kind = 'scan'",
            &[],
        )
        .await
        .map_err(pg)?;
    for r in rows {
        let node: String = r.try_get(0).map_err(pg)?;
        let key: String = r.try_get(1).map_err(pg)?;
        let body: String = r.try_get(2).map_err(pg)?;
        let report = rampart_store::reports::report_from_row(node, &body)?;
        put_findings(tx, &report.node, &key, &report.report).await?;
        let row = rampart_store::reports::report_row(&report.report)?;
        tx.execute(
            "UPDATE node_reports SET db_updated_ns = $1 WHERE node = $2 AND key = $3",
            &[&ns_to_db(row.db_updated_ns), &report.node, &key],
        )
        .await
        .map_err(pg)?;
    }
    Ok(())
}

/// A report's findings in one statement: column arrays, node and key shared.
const INSERT_FINDINGS_PG: &str = "
INSERT INTO scan_findings (node, key, vuln_id, package, version, ecosystem, fixed_version,
                           severity, summary, aliases, image, image_id, in_use,
                           layer, layer_index, layer_command, first_seen_ns)
SELECT $1, $2, f.* FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                               $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[],
                               $13::int8[], $14::text[], $15::int8[], $16::text[], $17::int8[]) f";

/// Replaces the findings of `node`'s report `key` with `report`'s.
async fn put_findings(
    tx: &Transaction<'_>,
    node: &str,
    key: &str,
    report: &rampart_event::fleet::NodeReport,
) -> Result<()> {
    use rampart_store::reports::{finding_rows, FindingRow, DELETE_FINDINGS_SQL};
    tx.execute(DELETE_FINDINGS_SQL, &[&node, &key])
        .await
        .map_err(pg)?;
    let rows = finding_rows(report);
    if rows.is_empty() {
        return Ok(());
    }
    // One statement of column arrays per report (a scan has hundreds of findings),
    // not a round trip per finding.
    fn col<T: Clone>(rows: &[FindingRow], f: impl Fn(&FindingRow) -> &T) -> Vec<T> {
        rows.iter().map(|r| f(r).clone()).collect()
    }
    tx.execute(
        INSERT_FINDINGS_PG,
        &[
            &node,
            &key,
            &col(&rows, |r| &r.vuln_id),
            &col(&rows, |r| &r.package),
            &col(&rows, |r| &r.version),
            &col(&rows, |r| &r.ecosystem),
            &col(&rows, |r| &r.fixed_version),
            &col(&rows, |r| &r.severity),
            &col(&rows, |r| &r.summary),
            &col(&rows, |r| &r.aliases),
            &col(&rows, |r| &r.image),
            &col(&rows, |r| &r.image_id),
            &col(&rows, |r| &r.in_use),
            &col(&rows, |r| &r.layer),
            &col(&rows, |r| &r.layer_index),
            &col(&rows, |r| &r.layer_command),
            &col(&rows, |r| &r.first_seen_ns),
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn store_reports(
    c: &mut Client,
    node: &str,
    reports: &[rampart_event::fleet::NodeReport],
) -> Result<u64> {
    let rows = reports
        .iter()
        .map(rampart_store::reports::report_row)
        .collect::<Result<Vec<_>>>()?;
    let tx = c.transaction().await.map_err(pg)?;
    let st = tx.prepare(PUT_REPORT_SQL).await.map_err(pg)?;
    let mut n = 0;
    for (r, report) in rows.iter().zip(reports) {
        let written = tx
            .execute(
                &st,
                &[
                    &node,
                    &r.key,
                    &r.kind,
                    &ns_to_db(r.ts_ns),
                    &r.body,
                    &r.sbom,
                    &ns_to_db(r.db_updated_ns),
                ],
            )
            .await
            .map_err(pg)?;
        // An older report than the one stored changes nothing, findings included.
        if written > 0 && r.kind == "scan" {
            put_findings(&tx, node, &r.key, report).await?;
        }
        n += written;
    }
    tx.commit().await.map_err(pg)?;
    Ok(n)
}

async fn store_flows(
    c: &mut Client,
    node: &str,
    report: &rampart_store::flows::FlowReport,
) -> Result<u64> {
    use rampart_store::flows::{distinct_flow_rows, PUT_ADDRESS_SQL, PUT_FLOWS_PG};
    let rows = distinct_flow_rows(node, report);
    let tx = c.transaction().await.map_err(pg)?;
    // One statement for the report's edges: row by row, 1000 edges were 1000 round
    // trips, longer than everything else central stores for a node.
    let mut text: [Vec<&str>; 7] = Default::default();
    let mut ints: [Vec<i64>; 7] = Default::default();
    for r in &rows {
        for (col, v) in text
            .iter_mut()
            .zip([&r.1, &r.2, &r.3, &r.5, &r.6, &r.7, &r.10])
        {
            col.push(v.as_str());
        }
        let [sent, received, connections, first, last] = r.9;
        for (col, v) in ints
            .iter_mut()
            .zip([r.4, r.8, sent, received, connections, first, last])
        {
            col.push(v);
        }
    }
    let [source, target, protocol, peer_ip, source_label, target_label, state] = &text;
    let [port, outbound, sent, received, connections, first, last] = &ints;
    let reported = ns_to_db(report.ts_ns);
    let n = tx
        .execute(
            PUT_FLOWS_PG,
            &[
                &node,
                source,
                target,
                protocol,
                port,
                peer_ip,
                source_label,
                target_label,
                outbound,
                sent,
                received,
                connections,
                first,
                last,
                state,
                &reported,
            ],
        )
        .await
        .map_err(pg)?;
    let st = tx.prepare(PUT_ADDRESS_SQL).await.map_err(pg)?;
    for a in &report.addresses {
        tx.execute(
            &st,
            &[&node, &a.ip, &a.workload, &a.label, &ns_to_db(a.seen_ns)],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(n)
}

async fn load_flows(c: &mut Client, since_ns: u64) -> Result<rampart_store::flows::FleetFlows> {
    use rampart_store::flows::{
        flow_from_row, FleetFlows, StoredAddress, ADDRESSES_SQL, FLOWS_SINCE_SQL, MAX_FLOW_EDGES,
    };
    let mut edges = Vec::new();
    for r in c
        .query(FLOWS_SINCE_SQL, &[&ns_to_db(since_ns), &MAX_FLOW_EDGES])
        .await
        .map_err(pg)?
    {
        let mut text: [String; 8] = Default::default();
        for (i, t) in text.iter_mut().enumerate() {
            *t = r.try_get(i).map_err(pg)?;
        }
        let mut ints = [0i64; 7];
        for (i, v) in ints.iter_mut().enumerate() {
            *v = r.try_get(8 + i).map_err(pg)?;
        }
        edges.push(flow_from_row(text, ints));
    }
    let mut addresses = Vec::new();
    for r in c
        .query(ADDRESSES_SQL, &[&MAX_FLOW_EDGES])
        .await
        .map_err(pg)?
    {
        addresses.push(StoredAddress {
            node: r.try_get(0).map_err(pg)?,
            address: rampart_store::flows::WorkloadAddress {
                ip: r.try_get(1).map_err(pg)?,
                workload: r.try_get(2).map_err(pg)?,
                label: r.try_get(3).map_err(pg)?,
                seen_ns: ns_from_db(r.try_get(4).map_err(pg)?),
            },
        });
    }
    Ok(FleetFlows { edges, addresses })
}

async fn query_vulnerabilities(
    c: &mut Client,
    q: &rampart_store::reports::VulnQuery,
) -> Result<rampart_store::reports::VulnPage> {
    use rampart_store::reports::{vuln_params, VulnPage, VulnRow, DB_UPDATED_SQL, VULNS_PG};
    let (image, min_severity, fixable, limit) = vuln_params(q);
    // One snapshot: the update time and the findings compared with it agree.
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg)?;
    let db_updated: i64 = tx
        .query_one(DB_UPDATED_SQL, &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    let db_updated_ns = ns_from_db(db_updated);
    let rows = tx
        .query(
            VULNS_PG,
            &[&image, &min_severity, &fixable, &limit, &db_updated],
        )
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    let mut new_count = 0i64;
    let vulnerabilities = rows
        .iter()
        .map(|r| {
            new_count = r.try_get(11).map_err(pg)?;
            let layer: Option<String> = r.try_get(12).map_err(pg)?;
            let layer_index: Option<i64> = r.try_get(13).map_err(pg)?;
            let layer_command: Option<String> = r.try_get(14).map_err(pg)?;
            VulnRow {
                id: r.try_get(0).map_err(pg)?,
                package: r.try_get(1).map_err(pg)?,
                version: r.try_get(2).map_err(pg)?,
                aliases: r.try_get(3).map_err(pg)?,
                ecosystem: r.try_get(4).map_err(pg)?,
                fixed_version: r.try_get(5).map_err(pg)?,
                severity: r.try_get(6).map_err(pg)?,
                summary: r.try_get(7).map_err(pg)?,
                in_use: r.try_get(8).map_err(pg)?,
                images: r.try_get(9).map_err(pg)?,
                first_seen_ns: r.try_get(10).map_err(pg)?,
                layer: layer.map(|l| {
                    (
                        l,
                        layer_index.unwrap_or(-1),
                        layer_command.unwrap_or_default(),
                    )
                }),
            }
            .into_record(db_updated_ns)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VulnPage {
        vulnerabilities,
        db_updated_ns,
        new_since_db_update: ns_from_db(new_count),
    })
}

async fn load_reports(c: &mut Client, kind: &str, node: Option<&str>) -> Result<Vec<StoredReport>> {
    c.query(
        "SELECT node, body FROM node_reports
         WHERE kind = $1 AND ($2::TEXT IS NULL OR node = $2) ORDER BY node, key",
        &[&kind, &node],
    )
    .await
    .map_err(pg)?
    .iter()
    .map(|r| {
        let node: String = r.try_get(0).map_err(pg)?;
        let body: String = r.try_get(1).map_err(pg)?;
        rampart_store::reports::report_from_row(node, &body)
    })
    .collect()
}

async fn load_sboms(
    c: &mut Client,
    node: &str,
    key: &str,
) -> Result<Option<rampart_store::reports::Sboms>> {
    let row = c
        .query_opt(
            "SELECT sbom FROM node_reports WHERE node = $1 AND key = $2",
            &[&node, &key],
        )
        .await
        .map_err(pg)?;
    let Some(row) = row else { return Ok(None) };
    let text: Option<String> = row.try_get(0).map_err(pg)?;
    text.map(|t| rampart_store::reports::Sboms::from_json(&t))
        .transpose()
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn schema_version(&self) -> Result<u32> {
        call!(self, |c| current_version(&*c))
    }

    fn ingest(&self, batch: &Ingest<'_>) -> Result<IngestReport> {
        let mut r = self.ingest_many(std::slice::from_ref(batch))?;
        Ok(r.pop().unwrap_or_default())
    }

    fn ingest_many(&self, batches: &[Ingest<'_>]) -> Result<Vec<IngestReport>> {
        let path = self.ingest_path();
        call!(self, self.ingest_slot(), |c| ingest::ingest_many(
            c, batches, path
        ))
    }

    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>> {
        call!(self, |c| get_alert(&*c, id))
    }

    fn query_alerts(&self, query: &AlertQuery) -> Result<AlertPage> {
        call!(self, |c| query_alerts(c, query))
    }

    fn update_alert(
        &self,
        id: &str,
        change: &AlertChange,
        actor: &str,
        now_ns: u64,
    ) -> Result<Option<StoredAlert>> {
        call!(self, |c| update_alert(c, id, change, actor, now_ns))
    }

    fn nodes(&self) -> Result<Vec<NodeRecord>> {
        call!(self, |c| nodes(c))
    }

    fn containers(&self, query: &ContainerQuery) -> Result<Vec<ContainerRecord>> {
        call!(self, |c| containers(c, query))
    }

    fn container_history(&self, id: &str) -> Result<Vec<ContainerLifecycle>> {
        call!(self, |c| container_history(c, id))
    }

    fn images(&self) -> Result<Vec<ImageRecord>> {
        call!(self, |c| images(c))
    }

    fn workloads(&self, query: &WorkloadQuery) -> Result<Vec<WorkloadRecord>> {
        call!(self, |c| workloads(c, query))
    }

    fn put_reports(&self, node: &str, reports: &[rampart_event::fleet::NodeReport]) -> Result<u64> {
        call!(self, |c| store_reports(c, node, reports))
    }

    fn reports(&self, kind: &str, node: Option<&str>) -> Result<Vec<StoredReport>> {
        call!(self, |c| load_reports(c, kind, node))
    }

    fn sboms(&self, node: &str, key: &str) -> Result<Option<rampart_store::reports::Sboms>> {
        call!(self, |c| load_sboms(c, node, key))
    }

    fn vulnerabilities(
        &self,
        query: &rampart_store::reports::VulnQuery,
    ) -> Result<rampart_store::reports::VulnPage> {
        call!(self, |c| query_vulnerabilities(c, query))
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>> {
        call!(self, |c| query_audit(c, query))
    }

    fn put_flows(&self, node: &str, report: &rampart_store::flows::FlowReport) -> Result<u64> {
        call!(self, |c| store_flows(c, node, report))
    }

    fn flows(&self, since_ns: u64) -> Result<rampart_store::flows::FleetFlows> {
        call!(self, |c| load_flows(c, since_ns))
    }

    fn apply_retention(&self, retention: &Retention) -> Result<Purged> {
        call!(self, |c| apply_retention(c, retention))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(valid_schema("conf_12_3"));
        assert!(!valid_schema("x; DROP TABLE alerts"));
        assert!(!valid_schema("1abc"));
        assert!(!valid_schema(""));
    }

    #[test]
    fn migrations_match_sqlite_versions() {
        let pg: Vec<u32> = PG_MIGRATIONS.iter().map(|m| m.version).collect();
        let lite: Vec<u32> = SQLITE_MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(pg, lite);
    }
}
