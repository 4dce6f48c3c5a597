//! The SQLite store: one connection behind a mutex (SQLite serialises writers anyway),
//! WAL so readers of other connections never wait on a writer, and `synchronous =
//! NORMAL`, which in WAL mode loses no committed transaction on a process crash, only
//! possibly the last ones on a power loss.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rampart_event::{Alert, Container, ContainerLifecycle, Workload};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Transaction};

use crate::migrate::Migration;
use crate::*;

/// SQLite's schema steps.
pub const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "alerts, inventory, audit",
        sql: r#"
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    first_ts_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    rule TEXT NOT NULL,
    priority INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    node TEXT NOT NULL,
    container_id TEXT,
    status TEXT NOT NULL,
    updated_ns INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX alerts_ts ON alerts (ts_ns, id);
CREATE INDEX alerts_rule_ts ON alerts (rule, ts_ns);
CREATE INDEX alerts_container_ts ON alerts (container_id, ts_ns);
CREATE INDEX alerts_node_ts ON alerts (node, ts_ns);
CREATE INDEX alerts_status_ts ON alerts (status, ts_ns);
CREATE TABLE alert_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    author TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, ts_ns);
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    image_digest TEXT NOT NULL,
    state TEXT NOT NULL,
    state_ts_ns INTEGER NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    started_ns INTEGER,
    finished_ns INTEGER,
    exit_code INTEGER
);
CREATE INDEX containers_seen ON containers (last_seen_ns);
CREATE TABLE container_events (
    container_id TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    action TEXT NOT NULL,
    exit_code INTEGER,
    node TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    PRIMARY KEY (container_id, ts_ns, action)
);
CREATE TABLE images (
    image TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
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
        sql: reports::FINDINGS_SQL,
    },
    Migration {
        version: 5,
        name: "network flows of the fleet",
        sql: flows::FLOWS_SQL,
    },
    Migration {
        version: 6,
        name: "scan findings' layers, first-seen times and database update times",
        sql: reports::FINDING_EXTRAS_SQLITE,
    },
    Migration {
        version: 7,
        name: "status index of handled alerts only",
        sql: crate::HANDLED_ALERTS_INDEX_SQL,
    },
];

/// The migration after which the findings' rows are rebuilt from the stored scan
/// reports: the last one that changed what a row holds. Migration 4 created the rows;
/// 6 added columns, so its backfill (which writes every column) covers 4's as well,
/// and any open that applies 4 applies 6 after it.
pub const FINDINGS_BACKFILL_AT: u32 = 6;

/// Migration 3 (the same text for PostgreSQL): each node's newest report per key.
pub const REPORTS_SQL: &str = "
CREATE TABLE node_reports (
    node TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts_ns BIGINT NOT NULL,
    body TEXT NOT NULL,
    sbom TEXT,
    PRIMARY KEY (node, key)
);
CREATE INDEX node_reports_kind ON node_reports (kind, node);
";

/// Keeps a report unless a newer one of the same key is stored (both backends).
pub const PUT_REPORT_SQL: &str = "
INSERT INTO node_reports (node, key, kind, ts_ns, body, sbom, db_updated_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (node, key) DO UPDATE SET
    kind = excluded.kind, ts_ns = excluded.ts_ns, body = excluded.body, sbom = excluded.sbom,
    db_updated_ns = excluded.db_updated_ns
WHERE excluded.ts_ns >= node_reports.ts_ns";

/// Central's store in one SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating) the database at `path` and applies missing migrations.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let conn = Connection::open(path)?;
        // journal_mode answers with a row, so it is a query, not an execute.
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        Self::setup(conn)
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (the transaction
        // rolls back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ns INTEGER NOT NULL)",
    )?;
    let current = current_version(conn)?;
    let known = Migration::latest(SQLITE_MIGRATIONS);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for m in SQLITE_MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql).map_err(|e| StoreError::Migration {
            version: m.version,
            name: m.name,
            reason: e.to_string(),
        })?;
        if m.version == FINDINGS_BACKFILL_AT {
            backfill_findings(&tx)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, ns_to_db(rampart_event::wall_ns())],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// The findings' rows (and each scan's database update time) of the scan reports
/// stored before [`FINDINGS_BACKFILL_AT`].
fn backfill_findings(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let rows = tx
        .prepare("SELECT node, key, body FROM node_reports WHERE kind = 'scan'")?
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (node, key, body) in rows {
        let report = reports::report_from_row(node, &body)?;
        put_findings(tx, &report.node, &key, &report.report)?;
        let row = reports::report_row(&report.report)?;
        tx.execute(
            "UPDATE node_reports SET db_updated_ns = ?1 WHERE node = ?2 AND key = ?3",
            params![ns_to_db(row.db_updated_ns), report.node, key],
        )?;
    }
    Ok(())
}

/// Replaces the findings of `node`'s report `key` with `report`'s.
fn put_findings(
    tx: &rusqlite::Transaction<'_>,
    node: &str,
    key: &str,
    report: &rampart_event::fleet::NodeReport,
) -> Result<()> {
    tx.prepare_cached(reports::DELETE_FINDINGS_SQL)?
        .execute(params![node, key])?;
    let mut st = tx.prepare_cached(reports::INSERT_FINDING_SQL)?;
    for f in reports::finding_rows(report) {
        st.execute(params![
            node,
            key,
            f.vuln_id,
            f.package,
            f.version,
            f.ecosystem,
            f.fixed_version,
            f.severity,
            f.summary,
            f.aliases,
            f.image,
            f.image_id,
            f.in_use,
            f.layer,
            f.layer_index,
            f.layer_command,
            f.first_seen_ns
        ])?;
    }
    Ok(())
}

fn current_version(conn: &Connection) -> Result<u32> {
    let v: Option<i64> = conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(v.unwrap_or(0) as u32)
}

fn opt_ns(v: Option<u64>) -> Option<i64> {
    v.map(ns_to_db)
}

fn upsert_image(tx: &Transaction<'_>, image: &str, digest: &str, ts: i64) -> Result<()> {
    if image.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO images (image, digest, first_seen_ns, last_seen_ns) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (image) DO UPDATE SET
           digest = CASE WHEN images.digest = '' THEN excluded.digest ELSE images.digest END,
           first_seen_ns = MIN(images.first_seen_ns, excluded.first_seen_ns),
           last_seen_ns = MAX(images.last_seen_ns, excluded.last_seen_ns)",
    )?
    .execute(params![image, digest, ts])?;
    Ok(())
}

/// A container named by an event: known from then on; its state is left to lifecycle
/// changes when it is already known (an event says nothing about stops).
fn upsert_seen(tx: &Transaction<'_>, node: &str, c: &Container, ts_ns: u64) -> Result<()> {
    let ts = ns_to_db(ts_ns);
    tx.prepare_cached(
        "INSERT INTO containers (id, node, name, image, image_digest, state, state_ts_ns,
                                 first_seen_ns, last_seen_ns)
         VALUES (?1, ?2, ?3, ?4, ?5, 'running', 0, ?6, ?6)
         ON CONFLICT (id) DO UPDATE SET
           name = CASE WHEN containers.name = '' THEN excluded.name ELSE containers.name END,
           image = CASE WHEN containers.image = '' THEN excluded.image ELSE containers.image END,
           image_digest = CASE WHEN containers.image_digest = '' THEN excluded.image_digest
                               ELSE containers.image_digest END,
           first_seen_ns = MIN(containers.first_seen_ns, excluded.first_seen_ns),
           last_seen_ns = MAX(containers.last_seen_ns, excluded.last_seen_ns)",
    )?
    .execute(params![c.id, node, c.name, c.image, c.image_digest, ts])?;
    upsert_image(tx, &c.image, &c.image_digest, ts)
}

fn apply_lifecycle(tx: &Transaction<'_>, node: &str, ch: &ContainerLifecycle) -> Result<bool> {
    let ts = ns_to_db(ch.ts_ns);
    let (action, code) = action_parts(&ch.action);
    let new = tx
        .prepare_cached(
            "INSERT INTO container_events (container_id, ts_ns, action, exit_code, node, name, image)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![ch.container_id, ts, action, code, node, ch.name, ch.image])?;
    if new == 0 {
        return Ok(false);
    }
    type Row = (i64, Option<i64>, Option<i64>, Option<i64>);
    let row: Option<Row> = tx
        .prepare_cached(
            "SELECT state_ts_ns, started_ns, finished_ns, exit_code FROM containers WHERE id = ?1",
        )?
        .query_row(params![ch.container_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    match row {
        None => {
            let e = lifecycle_effect(ch, None, None, None);
            tx.prepare_cached(
                "INSERT INTO containers (id, node, name, image, image_digest, state, state_ts_ns,
                    first_seen_ns, last_seen_ns, started_ns, finished_ns, exit_code)
                 VALUES (?1, ?2, ?3, ?4, '', ?5, ?6, ?6, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                ch.container_id,
                node,
                ch.name,
                ch.image,
                e.state.as_str(),
                ts,
                opt_ns(e.started_ns),
                opt_ns(e.finished_ns),
                e.exit_code
            ])?;
        }
        Some((state_ts, started, finished, exit)) => {
            tx.prepare_cached(
                "UPDATE containers SET
                   name = CASE WHEN name = '' THEN ?2 ELSE name END,
                   image = CASE WHEN image = '' THEN ?3 ELSE image END,
                   first_seen_ns = MIN(first_seen_ns, ?4),
                   last_seen_ns = MAX(last_seen_ns, ?4)
                 WHERE id = ?1",
            )?
            .execute(params![ch.container_id, ch.name, ch.image, ts])?;
            // A change older than the one the state shows arrived late: history only.
            if ts >= state_ts {
                let e =
                    lifecycle_effect(ch, started.map(ns_from_db), finished.map(ns_from_db), exit);
                tx.prepare_cached(
                    "UPDATE containers SET state = ?2, state_ts_ns = ?3, started_ns = ?4,
                       finished_ns = ?5, exit_code = ?6 WHERE id = ?1",
                )?
                .execute(params![
                    ch.container_id,
                    e.state.as_str(),
                    ts,
                    opt_ns(e.started_ns),
                    opt_ns(e.finished_ns),
                    e.exit_code
                ])?;
            }
        }
    }
    upsert_image(tx, &ch.image, "", ts)?;
    Ok(true)
}

fn insert_alert(tx: &Transaction<'_>, node: &str, a: &Alert, now: i64) -> Result<bool> {
    let body = serde_json::to_string(a).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let container = a.event.container.container().map(|c| c.id.as_str());
    let n = tx
        .prepare_cached(
            "INSERT INTO alerts (id, ts_ns, first_ts_ns, count, rule, priority, severity, node,
                                 container_id, status, updated_ns, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10, ?11)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            a.id,
            ns_to_db(a.ts_ns),
            ns_to_db(a.first_ts_ns),
            ns_to_db(a.count),
            a.rule,
            priority_rank(a.priority),
            severity_rank(a.priority.severity()),
            node,
            container,
            now,
            body
        ])?;
    Ok(n == 1)
}

fn insert_audit(tx: &Transaction<'_>, r: &AuditRecord) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT INTO audit (id, ts_ns, origin, actor, action, target, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            r.id,
            ns_to_db(r.ts_ns),
            r.origin,
            r.actor,
            r.action,
            r.target,
            r.detail
        ])?;
    Ok(n == 1)
}

const ALERT_COLUMNS: &str = "body, node, status, updated_ns";

fn alert_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn load_alert(conn: &Connection, row: (String, String, String, i64)) -> Result<StoredAlert> {
    let (body, node, status, updated) = row;
    let alert: Alert =
        serde_json::from_str(&body).map_err(|e| StoreError::Decode(format!("alert: {e}")))?;
    let status = AlertStatus::parse(&status)
        .ok_or_else(|| StoreError::Decode(format!("alert status {status:?}")))?;
    let comments = conn
        .prepare_cached(
            "SELECT ts_ns, author, text FROM alert_comments WHERE alert_id = ?1 ORDER BY ts_ns, id",
        )?
        .query_map(params![alert.id], |r| {
            Ok(Comment {
                ts_ns: ns_from_db(r.get(0)?),
                author: r.get(1)?,
                text: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(StoredAlert {
        alert,
        node,
        status,
        updated_ns: ns_from_db(updated),
        comments,
    })
}

fn get_alert(conn: &Connection, id: &str) -> Result<Option<StoredAlert>> {
    let row = conn
        .prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))?
        .query_row(params![id], alert_from_row)
        .optional()?;
    row.map(|r| load_alert(conn, r)).transpose()
}

fn container_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ContainerRecord, String)> {
    let state: String = r.get(5)?;
    Ok((
        ContainerRecord {
            id: r.get(0)?,
            node: r.get(1)?,
            name: r.get(2)?,
            image: r.get(3)?,
            image_digest: r.get(4)?,
            state: ContainerState::Running,
            first_seen_ns: ns_from_db(r.get(6)?),
            last_seen_ns: ns_from_db(r.get(7)?),
            started_ns: r.get::<_, Option<i64>>(8)?.map(ns_from_db),
            finished_ns: r.get::<_, Option<i64>>(9)?.map(ns_from_db),
            exit_code: r.get(10)?,
        },
        state,
    ))
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn schema_version(&self) -> Result<u32> {
        current_version(&self.conn())
    }

    fn ingest(&self, b: &Ingest<'_>) -> Result<IngestReport> {
        let mut r = self.ingest_many(std::slice::from_ref(b))?;
        Ok(r.pop().unwrap_or_default())
    }

    fn ingest_many(&self, batches: &[Ingest<'_>]) -> Result<Vec<IngestReport>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let reports = batches
            .iter()
            .map(|b| ingest_in(&tx, b))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(reports)
    }

    fn get_alert(&self, id: &str) -> Result<Option<StoredAlert>> {
        get_alert(&self.conn(), id)
    }

    fn query_alerts(&self, q: &AlertQuery) -> Result<AlertPage> {
        let mut sql = format!("SELECT {ALERT_COLUMNS}, ts_ns, id FROM alerts WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let mut arg = |sql: &mut String, cond: &str, v: Value| {
            args.push(v);
            sql.push_str(&cond.replace('?', &format!("?{}", args.len())));
        };
        if let Some(v) = q.since_ns {
            arg(&mut sql, " AND ts_ns >= ?", Value::Integer(ns_to_db(v)));
        }
        if let Some(v) = q.until_ns {
            arg(&mut sql, " AND ts_ns < ?", Value::Integer(ns_to_db(v)));
        }
        if let Some(p) = q.min_priority {
            arg(
                &mut sql,
                " AND priority <= ?",
                Value::Integer(priority_rank(p)),
            );
        }
        if let Some(s) = q.min_severity {
            arg(
                &mut sql,
                " AND severity >= ?",
                Value::Integer(severity_rank(s)),
            );
        }
        if let Some(v) = &q.rule {
            arg(&mut sql, " AND rule = ?", Value::Text(v.clone()));
        }
        if let Some(v) = &q.container_id {
            arg(&mut sql, " AND container_id = ?", Value::Text(v.clone()));
        }
        if let Some(v) = &q.node {
            arg(&mut sql, " AND node = ?", Value::Text(v.clone()));
        }
        if let Some(v) = q.status {
            sql.push_str(v.sql_condition());
        }
        if let Some(c) = &q.after {
            let ts = ns_to_db(c.ts_ns);
            arg(&mut sql, " AND (ts_ns < ?", Value::Integer(ts));
            arg(&mut sql, " OR (ts_ns = ?", Value::Integer(ts));
            arg(&mut sql, " AND id < ?))", Value::Text(c.id.clone()));
        }
        let limit = q.page_size();
        sql.push_str(&format!(
            " ORDER BY ts_ns DESC, id DESC LIMIT {}",
            limit + 1
        ));
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args), |r| {
                Ok((
                    alert_from_row(r)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let more = rows.len() > limit as usize;
        let mut alerts = Vec::with_capacity(rows.len().min(limit as usize));
        let mut next = None;
        for (row, ts, id) in rows.into_iter().take(limit as usize) {
            alerts.push(load_alert(&conn, row)?);
            next = Some(Cursor {
                ts_ns: ns_from_db(ts),
                id,
            });
        }
        Ok(AlertPage {
            alerts,
            next: if more { next } else { None },
        })
    }

    fn update_alert(
        &self,
        id: &str,
        change: &AlertChange,
        actor: &str,
        now_ns: u64,
    ) -> Result<Option<StoredAlert>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM alerts WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(status) = status else {
            return Ok(None);
        };
        let current = AlertStatus::parse(&status)
            .ok_or_else(|| StoreError::Decode(format!("alert status {status:?}")))?;
        let now = ns_to_db(now_ns);
        tx.execute(
            "UPDATE alerts SET status = ?2, updated_ns = ?3 WHERE id = ?1",
            params![id, status_after(current, change).as_str(), now],
        )?;
        if let AlertChange::Comment { text } = change {
            tx.execute(
                "INSERT INTO alert_comments (alert_id, ts_ns, author, text) VALUES (?1, ?2, ?3, ?4)",
                params![id, now, actor, text],
            )?;
        }
        insert_audit(&tx, &triage_audit(id, change, actor, now_ns))?;
        tx.commit()?;
        get_alert(&conn, id)
    }

    fn nodes(&self) -> Result<Vec<NodeRecord>> {
        let conn = self.conn();
        let rows = conn
            .prepare_cached(
                "SELECT name, version, first_seen_ns, last_seen_ns FROM nodes ORDER BY name",
            )?
            .query_map([], |r| {
                Ok(NodeRecord {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    first_seen_ns: ns_from_db(r.get(2)?),
                    last_seen_ns: ns_from_db(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn containers(&self, q: &ContainerQuery) -> Result<Vec<ContainerRecord>> {
        let mut sql = String::from(
            "SELECT id, node, name, image, image_digest, state, first_seen_ns, last_seen_ns,
                    started_ns, finished_ns, exit_code FROM containers WHERE 1 = 1",
        );
        let mut args: Vec<Value> = Vec::new();
        if let Some(n) = &q.node {
            args.push(Value::Text(n.clone()));
            sql.push_str(&format!(" AND node = ?{}", args.len()));
        }
        if let Some(i) = &q.image {
            args.push(Value::Text(i.clone()));
            sql.push_str(&format!(" AND image = ?{}", args.len()));
        }
        if !q.include_gone {
            sql.push_str(" AND state = 'running'");
        }
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        sql.push_str(&format!(" ORDER BY last_seen_ns DESC, id LIMIT {limit}"));
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args), container_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(mut c, state)| {
                c.state = ContainerState::parse(&state)
                    .ok_or_else(|| StoreError::Decode(format!("container state {state:?}")))?;
                Ok(c)
            })
            .collect()
    }

    fn container_history(&self, id: &str) -> Result<Vec<ContainerLifecycle>> {
        let conn = self.conn();
        let rows = conn
            .prepare_cached(
                "SELECT ts_ns, action, exit_code, name, image FROM container_events
                 WHERE container_id = ?1 ORDER BY ts_ns, action",
            )?
            .query_map(params![id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(ts, action, code, name, image)| {
                Ok(ContainerLifecycle {
                    ts_ns: ns_from_db(ts),
                    action: action_from_parts(&action, code)?,
                    container_id: id.to_string(),
                    name,
                    image,
                    labels: Default::default(),
                })
            })
            .collect()
    }

    fn images(&self) -> Result<Vec<ImageRecord>> {
        let conn = self.conn();
        let rows = conn
            .prepare_cached(
                "SELECT i.image, i.digest, i.first_seen_ns, i.last_seen_ns,
                        (SELECT COUNT(*) FROM containers c WHERE c.image = i.image)
                 FROM images i ORDER BY i.image",
            )?
            .query_map([], |r| {
                Ok(ImageRecord {
                    image: r.get(0)?,
                    digest: r.get(1)?,
                    first_seen_ns: ns_from_db(r.get(2)?),
                    last_seen_ns: ns_from_db(r.get(3)?),
                    containers: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn put_reports(&self, node: &str, reports: &[rampart_event::fleet::NodeReport]) -> Result<u64> {
        let rows = reports
            .iter()
            .map(reports::report_row)
            .collect::<Result<Vec<_>>>()?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0u64;
        for (r, report) in rows.iter().zip(reports) {
            let written = tx.prepare_cached(PUT_REPORT_SQL)?.execute(params![
                node,
                r.key,
                r.kind,
                ns_to_db(r.ts_ns),
                r.body,
                r.sbom,
                ns_to_db(r.db_updated_ns)
            ])? as u64;
            // An older report than the one stored changes nothing, findings included.
            if written > 0 && r.kind == "scan" {
                put_findings(&tx, node, &r.key, report)?;
            }
            n += written;
        }
        tx.commit()?;
        Ok(n)
    }

    fn put_flows(&self, node: &str, report: &rampart_bus::flows::FlowReport) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut n = 0u64;
        for r in flows::flow_rows(node, report) {
            let [sent, received, connections, first, last] = r.9;
            n += tx.prepare_cached(flows::PUT_FLOW_SQL)?.execute(params![
                r.0,
                r.1,
                r.2,
                r.3,
                r.4,
                r.5,
                r.6,
                r.7,
                r.8,
                sent,
                received,
                connections,
                first,
                last,
                r.10,
                r.11
            ])? as u64;
        }
        for a in &report.addresses {
            tx.prepare_cached(flows::PUT_ADDRESS_SQL)?.execute(params![
                node,
                a.ip,
                a.workload,
                a.label,
                ns_to_db(a.seen_ns)
            ])?;
        }
        tx.commit()?;
        Ok(n)
    }

    fn flows(&self, since_ns: u64) -> Result<flows::FleetFlows> {
        let conn = self.conn();
        let edges = conn
            .prepare_cached(flows::FLOWS_SINCE_SQL)?
            .query_map(params![ns_to_db(since_ns), flows::MAX_FLOW_EDGES], |r| {
                let mut text: [String; 8] = Default::default();
                for (i, t) in text.iter_mut().enumerate() {
                    *t = r.get(i)?;
                }
                let mut ints = [0i64; 7];
                for (i, v) in ints.iter_mut().enumerate() {
                    *v = r.get(8 + i)?;
                }
                Ok(flows::flow_from_row(text, ints))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let addresses = conn
            .prepare_cached(flows::ADDRESSES_SQL)?
            .query_map(params![flows::MAX_FLOW_EDGES], |r| {
                Ok(flows::StoredAddress {
                    node: r.get(0)?,
                    address: rampart_bus::flows::WorkloadAddress {
                        ip: r.get(1)?,
                        workload: r.get(2)?,
                        label: r.get(3)?,
                        seen_ns: ns_from_db(r.get(4)?),
                    },
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(flows::FleetFlows { edges, addresses })
    }

    fn vulnerabilities(&self, q: &reports::VulnQuery) -> Result<reports::VulnPage> {
        let (image, min_severity, fixable, limit) = reports::vuln_params(q);
        let conn = self.conn();
        let db_updated: i64 = conn
            .prepare_cached(reports::DB_UPDATED_SQL)?
            .query_row([], |r| r.get(0))?;
        let mut new_count = 0i64;
        let rows = conn
            .prepare_cached(match image {
                Some(_) => reports::VULNS_SQLITE_IMAGE,
                None => reports::VULNS_SQLITE,
            })?
            .query_map(
                params![image, min_severity, fixable, limit, db_updated],
                |r| {
                    Ok((
                        reports::VulnRow {
                            id: r.get(0)?,
                            package: r.get(1)?,
                            version: r.get(2)?,
                            aliases: r.get(3)?,
                            ecosystem: r.get(4)?,
                            fixed_version: r.get(5)?,
                            severity: r.get(6)?,
                            summary: r.get(7)?,
                            in_use: r.get(8)?,
                            images: Vec::new(),
                            first_seen_ns: r.get(10)?,
                            layer: None,
                        },
                        r.get::<_, Option<String>>(9)?,
                        r.get::<_, i64>(11)?,
                        r.get::<_, Option<String>>(12)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let db_updated_ns = ns_from_db(db_updated);
        let vulnerabilities = rows
            .into_iter()
            .map(|(mut row, images, new, layer)| {
                new_count = new;
                if let Some(j) = images {
                    row.images = serde_json::from_str(&j)
                        .map_err(|e| StoreError::Decode(format!("finding images: {e}")))?;
                }
                row.layer = layer.as_deref().map(reports::layer_from_json).transpose()?;
                row.into_record(db_updated_ns)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(reports::VulnPage {
            vulnerabilities,
            db_updated_ns,
            new_since_db_update: ns_from_db(new_count),
        })
    }

    fn reports(&self, kind: &str, node: Option<&str>) -> Result<Vec<StoredReport>> {
        let conn = self.conn();
        let rows = conn
            .prepare_cached(
                "SELECT node, body FROM node_reports
                 WHERE kind = ?1 AND (?2 IS NULL OR node = ?2) ORDER BY node, key",
            )?
            .query_map(params![kind, node], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(node, body)| reports::report_from_row(node, &body))
            .collect()
    }

    fn sboms(&self, node: &str, key: &str) -> Result<Option<reports::Sboms>> {
        let conn = self.conn();
        let text: Option<Option<String>> = conn
            .prepare_cached("SELECT sbom FROM node_reports WHERE node = ?1 AND key = ?2")?
            .query_row(params![node, key], |r| r.get(0))
            .optional()?;
        text.flatten()
            .map(|t| reports::Sboms::from_json(&t))
            .transpose()
    }

    fn workloads(&self, q: &WorkloadQuery) -> Result<Vec<WorkloadRecord>> {
        let sql = if q.include_gone {
            "SELECT id, node, image, state, first_seen_ns, last_seen_ns, labels FROM containers"
        } else {
            "SELECT id, node, image, state, first_seen_ns, last_seen_ns, labels FROM containers
             WHERE state = 'running'"
        };
        let conn = self.conn();
        let rows = conn
            .prepare_cached(sql)?
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, node, image, state, first, last, labels) in rows {
            if let Some(key) = workload_of_row(&labels, &image)? {
                out.push(WorkloadRow {
                    key,
                    id,
                    node,
                    image,
                    running: state == ContainerState::Running.as_str(),
                    first_seen_ns: ns_from_db(first),
                    last_seen_ns: ns_from_db(last),
                });
            }
        }
        Ok(group_workloads(out, q))
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        let mut sql = String::from(
            "SELECT id, ts_ns, origin, actor, action, target, detail FROM audit WHERE 1 = 1",
        );
        let mut args: Vec<Value> = Vec::new();
        let conds: [(&str, Option<Value>); 5] = [
            (
                " AND ts_ns >= ",
                q.since_ns.map(|v| Value::Integer(ns_to_db(v))),
            ),
            (
                " AND ts_ns < ",
                q.until_ns.map(|v| Value::Integer(ns_to_db(v))),
            ),
            (" AND actor = ", q.actor.clone().map(Value::Text)),
            (" AND action = ", q.action.clone().map(Value::Text)),
            (" AND target = ", q.target.clone().map(Value::Text)),
        ];
        for (cond, v) in conds {
            if let Some(v) = v {
                args.push(v);
                sql.push_str(&format!("{cond}?{}", args.len()));
            }
        }
        let limit = match q.limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        sql.push_str(&format!(" ORDER BY ts_ns, id LIMIT {limit}"));
        let conn = self.conn();
        let rows = conn
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args), |r| {
                Ok(AuditRecord {
                    id: r.get(0)?,
                    ts_ns: ns_from_db(r.get(1)?),
                    origin: r.get(2)?,
                    actor: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    detail: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn apply_retention(&self, r: &Retention) -> Result<Purged> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut purged = Purged::default();
        if let Some(before) = r.alerts_before_ns {
            let b = ns_to_db(before);
            tx.execute(
                "DELETE FROM alert_comments WHERE alert_id IN (SELECT id FROM alerts WHERE ts_ns < ?1)",
                params![b],
            )?;
            purged.alerts = tx.execute("DELETE FROM alerts WHERE ts_ns < ?1", params![b])? as u64;
            for sql in flows::PURGE_FLOWS_SQL {
                tx.execute(sql, params![b])?;
            }
        }
        if let Some(before) = r.audit_before_ns {
            purged.audit = tx.execute(
                "DELETE FROM audit WHERE ts_ns < ?1",
                params![ns_to_db(before)],
            )? as u64;
        }
        tx.commit()?;
        Ok(purged)
    }
}

/// One batch's writes inside the caller's transaction.
fn ingest_in(tx: &rusqlite::Transaction<'_>, b: &Ingest<'_>) -> Result<IngestReport> {
    let mut report = IngestReport::default();
    let now = ns_to_db(rampart_event::wall_ns());
    if !b.node.is_empty() {
        tx.prepare_cached(
            "INSERT INTO nodes (name, version, first_seen_ns, last_seen_ns) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (name) DO UPDATE SET
               version = CASE WHEN excluded.version = '' THEN nodes.version ELSE excluded.version END,
               first_seen_ns = MIN(nodes.first_seen_ns, excluded.first_seen_ns),
               last_seen_ns = MAX(nodes.last_seen_ns, excluded.last_seen_ns)",
        )?
        .execute(params![b.node, b.node_version, ns_to_db(b.seen_ns)])?;
    }
    for a in b.alerts {
        if insert_alert(tx, b.node, a, now)? {
            report.alerts += 1;
        }
        if let Workload::Container(c) = &*a.event.container {
            upsert_seen(tx, b.node, c, a.event.ts_ns)?;
        }
    }
    for ch in b.lifecycle {
        if apply_lifecycle(tx, b.node, ch)? {
            report.lifecycle += 1;
        }
    }
    for r in b.audit {
        if insert_audit(tx, r)? {
            report.audit += 1;
        }
    }
    for (id, labels) in batch_labels(b)? {
        tx.prepare_cached("UPDATE containers SET labels = ?2 WHERE id = ?1 AND labels = '{}'")?
            .execute(params![id, labels])?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_in_memory() {
        crate::conformance::run_all(&mut || {
            Box::new(SqliteStore::open_in_memory().unwrap()) as Box<dyn Store>
        });
    }

    #[test]
    fn file_store_uses_wal_and_reopens_at_the_same_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.db");
        let s = SqliteStore::open(&path).unwrap();
        crate::conformance::alerts_insert_is_idempotent(&s);
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(s);
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.schema_version().unwrap(),
            Migration::latest(SQLITE_MIGRATIONS)
        );
        assert_eq!(
            s.query_alerts(&AlertQuery::default()).unwrap().alerts.len(),
            2
        );
    }

    /// Scan reports stored before migration 4 (no findings' rows) or 6 (rows without
    /// layers and times) get complete rows when the missing migrations run.
    #[test]
    fn migrations_4_and_6_backfill_the_findings_of_stored_scans() {
        use rampart_event::fleet::{NodeReport, ScanReport, VulnFinding};
        // What each older version lacks, undone on a current database (7 included).
        let undo_6 =
            "DROP INDEX alerts_handled_ts; CREATE INDEX alerts_status_ts ON alerts (status, ts_ns);
             DROP INDEX scan_findings_layer; DROP INDEX node_reports_db_updated;
             ALTER TABLE scan_findings DROP COLUMN layer;
             ALTER TABLE scan_findings DROP COLUMN layer_index;
             ALTER TABLE scan_findings DROP COLUMN layer_command;
             ALTER TABLE scan_findings DROP COLUMN first_seen_ns;
             ALTER TABLE node_reports DROP COLUMN db_updated_ns;";
        let as_version_5 = format!(
            "{undo_6} DELETE FROM scan_findings; DELETE FROM schema_migrations WHERE version >= 6"
        );
        let as_version_3 = format!(
            "{undo_6} DROP TABLE scan_findings; DROP TABLE flow_edges; DROP TABLE flow_addresses;
             DELETE FROM schema_migrations WHERE version >= 4"
        );
        for (from, undo) in [(5, as_version_5), (3, as_version_3)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("central.db");
            let s = SqliteStore::open(&path).unwrap();
            let scan = NodeReport::Scan(ScanReport {
                ts_ns: 5,
                target: "container:c1".into(),
                image: "web:1".into(),
                db_updated_ns: 100,
                vulnerabilities: vec![VulnFinding {
                    id: "CVE-7".into(),
                    package: "zlib".into(),
                    version: "1.2".into(),
                    severity: rampart_event::Severity::High,
                    in_use: Some(true),
                    layer: Some("sha256:aa".into()),
                    layer_index: Some(2),
                    layer_command: Some("RUN make".into()),
                    first_seen_ns: 150,
                    ..Default::default()
                }],
                ..Default::default()
            });
            s.put_reports("n1", std::slice::from_ref(&scan)).unwrap();
            drop(s);
            Connection::open(&path)
                .unwrap()
                .execute_batch(&undo)
                .unwrap();
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(
                s.schema_version().unwrap(),
                Migration::latest(SQLITE_MIGRATIONS)
            );
            let page = s.vulnerabilities(&reports::VulnQuery::default()).unwrap();
            assert_eq!((page.db_updated_ns, page.new_since_db_update), (100, 1));
            let v = &page.vulnerabilities;
            assert_eq!(v.len(), 1, "from version {from}");
            assert_eq!((v[0].id.as_str(), v[0].in_use), ("CVE-7", true));
            assert_eq!(v[0].images, ["web:1"]);
            assert_eq!(
                (
                    v[0].layer.as_deref(),
                    v[0].layer_index,
                    v[0].layer_command.as_deref(),
                    v[0].first_seen_ns,
                    v[0].new_since_db_update
                ),
                (Some("sha256:aa"), Some(2), Some("RUN make"), 150, true),
                "from version {from}"
            );
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_ns) VALUES (999, 'future', 0)",
                [],
            )
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::SchemaTooNew { found: 999, .. })
        ));
    }
}
