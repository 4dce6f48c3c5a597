//! Baselines persist across restarts behind [`BaselineStore`]; [`SqliteBaselines`] keeps
//! them in one SQLite file (WAL, so `rampart baseline …` reads and edits while the node
//! runs). Each baseline is one JSON document with a revision: the node saves only over
//! the revision it loaded ([`BaselineStore::save`]), so an operator's change made in
//! between is never overwritten: the node reloads it instead. The alerts seen per
//! workload and the containers of each workload are kept for the risk ranking.

use std::path::Path;
use std::sync::Mutex;

use rampart_event::{Alert, Priority};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::model::Baseline;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("baseline database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("baseline database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored baseline of {workload} does not decode: {reason}")]
    Decode { workload: String, reason: String },
    #[error("baseline database: {0}")]
    Poisoned(&'static str),
    #[error("no baseline for workload {0:?}")]
    NotFound(String),
}

/// Alerts of one rule in one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    pub workload: String,
    pub rule: String,
    pub priority: Priority,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// A container of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerRow {
    pub container_id: String,
    pub name: String,
    pub workload: String,
    pub last_ns: u64,
}

/// Where baselines live.
pub trait BaselineStore: Send + Sync {
    /// Every baseline with its revision.
    fn load_all(&self) -> Result<Vec<(Baseline, u64)>, StoreError>;
    fn get(&self, workload: &str) -> Result<Option<(Baseline, u64)>, StoreError>;
    /// Every workload's revision (cheap: what changed since the last look).
    fn revisions(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Writes `b` if its stored revision is still `expected` (`0`: not stored yet);
    /// returns the new revision, or `None` when someone else changed it meanwhile.
    fn save(&self, b: &Baseline, expected: u64) -> Result<Option<u64>, StoreError>;
    /// Changes a stored baseline in one transaction (operators' edits); returns it.
    fn update(
        &self,
        workload: &str,
        f: &mut dyn FnMut(&mut Baseline),
    ) -> Result<(Baseline, u64), StoreError>;
    /// Writes `b` whatever is stored (import).
    fn put(&self, b: &Baseline) -> Result<u64, StoreError>;
    fn delete(&self, workload: &str) -> Result<bool, StoreError>;
    fn record_alert(&self, workload: &str, alert: &Alert) -> Result<(), StoreError>;
    fn alerts(&self) -> Result<Vec<AlertRow>, StoreError>;
    fn note_container(
        &self,
        container_id: &str,
        name: &str,
        workload: &str,
        ts_ns: u64,
    ) -> Result<(), StoreError>;
    fn containers(&self) -> Result<Vec<ContainerRow>, StoreError>;
}

/// Baselines in a SQLite file.
pub struct SqliteBaselines {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS baselines (
    workload TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    rev INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS workload_alerts (
    workload TEXT NOT NULL,
    rule TEXT NOT NULL,
    priority TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    PRIMARY KEY (workload, rule)
);
CREATE TABLE IF NOT EXISTS workload_containers (
    container_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    workload TEXT NOT NULL,
    last_ns INTEGER NOT NULL
);
";

impl SqliteBaselines {
    /// Opens (creating) the database file; its directory is created too.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                        Some(format!("cannot create {}: {e}", dir.display())),
                    ))
                })?;
            }
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Poisoned("a thread panicked holding the connection"))
    }
}

fn decode(workload: &str, doc: &str) -> Result<Baseline, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError::Decode {
        workload: workload.to_string(),
        reason: e.to_string(),
    })
}

fn encode(b: &Baseline) -> Result<String, StoreError> {
    serde_json::to_string(b).map_err(|e| StoreError::Decode {
        workload: b.workload.clone(),
        reason: e.to_string(),
    })
}

impl BaselineStore for SqliteBaselines {
    fn load_all(&self) -> Result<Vec<(Baseline, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT workload, doc, rev FROM baselines ORDER BY workload")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (w, doc, rev) = row?;
            out.push((decode(&w, &doc)?, rev as u64));
        }
        Ok(out)
    }

    fn get(&self, workload: &str) -> Result<Option<(Baseline, u64)>, StoreError> {
        let conn = self.conn()?;
        let row: Option<(String, i64)> = conn
            .query_row(
                "SELECT doc, rev FROM baselines WHERE workload = ?1",
                [workload],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(doc, rev)| Ok((decode(workload, &doc)?, rev as u64)))
            .transpose()
    }

    fn revisions(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT workload, rev FROM baselines")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (w, rev) = row?;
            out.push((w, rev as u64));
        }
        Ok(out)
    }

    fn save(&self, b: &Baseline, expected: u64) -> Result<Option<u64>, StoreError> {
        let doc = encode(b)?;
        let now = rampart_event::wall_ns() as i64;
        let conn = self.conn()?;
        let changed = if expected == 0 {
            conn.execute(
                "INSERT INTO baselines (workload, doc, rev, updated_ns) VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT(workload) DO NOTHING",
                params![b.workload, doc, now],
            )?
        } else {
            conn.execute(
                "UPDATE baselines SET doc = ?2, rev = rev + 1, updated_ns = ?3
                 WHERE workload = ?1 AND rev = ?4",
                params![b.workload, doc, now, expected as i64],
            )?
        };
        Ok((changed == 1).then_some(expected + 1))
    }

    fn update(
        &self,
        workload: &str,
        f: &mut dyn FnMut(&mut Baseline),
    ) -> Result<(Baseline, u64), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let row: Option<(String, i64)> = tx
            .query_row(
                "SELECT doc, rev FROM baselines WHERE workload = ?1",
                [workload],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((doc, rev)) = row else {
            return Err(StoreError::NotFound(workload.to_string()));
        };
        let mut b = decode(workload, &doc)?;
        f(&mut b);
        tx.execute(
            "UPDATE baselines SET doc = ?2, rev = rev + 1, updated_ns = ?3 WHERE workload = ?1",
            params![workload, encode(&b)?, rampart_event::wall_ns() as i64],
        )?;
        tx.commit()?;
        Ok((b, rev as u64 + 1))
    }

    fn put(&self, b: &Baseline) -> Result<u64, StoreError> {
        let conn = self.conn()?;
        let rev: i64 = conn.query_row(
            "INSERT INTO baselines (workload, doc, rev, updated_ns) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT(workload) DO UPDATE SET doc = excluded.doc, rev = rev + 1,
                 updated_ns = excluded.updated_ns
             RETURNING rev",
            params![b.workload, encode(b)?, rampart_event::wall_ns() as i64],
            |r| r.get(0),
        )?;
        Ok(rev as u64)
    }

    fn delete(&self, workload: &str) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        Ok(conn.execute("DELETE FROM baselines WHERE workload = ?1", [workload])? == 1)
    }

    fn record_alert(&self, workload: &str, alert: &Alert) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let priority = serde_json::to_value(alert.priority)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "warning".into());
        conn.execute(
            "INSERT INTO workload_alerts (workload, rule, priority, count, first_ns, last_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(workload, rule) DO UPDATE SET count = count + excluded.count,
                 priority = excluded.priority, last_ns = MAX(last_ns, excluded.last_ns)",
            params![
                workload,
                alert.rule,
                priority,
                alert.count.max(1) as i64,
                alert.first_ts_ns as i64,
                alert.ts_ns as i64
            ],
        )?;
        Ok(())
    }

    fn alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT workload, rule, priority, count, first_ns, last_ns FROM workload_alerts",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (workload, rule, p, count, first, last) = row?;
            out.push(AlertRow {
                workload,
                rule,
                priority: Priority::parse(&p).unwrap_or(Priority::Warning),
                count: count as u64,
                first_ns: first as u64,
                last_ns: last as u64,
            });
        }
        Ok(out)
    }

    fn note_container(
        &self,
        container_id: &str,
        name: &str,
        workload: &str,
        ts_ns: u64,
    ) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO workload_containers (container_id, name, workload, last_ns)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(container_id) DO UPDATE SET name = excluded.name,
                 workload = excluded.workload, last_ns = excluded.last_ns",
            params![container_id, name, workload, ts_ns as i64],
        )?;
        Ok(())
    }

    fn containers(&self) -> Result<Vec<ContainerRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT container_id, name, workload, last_ns FROM workload_containers
             ORDER BY workload, name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ContainerRow {
                container_id: r.get(0)?,
                name: r.get(1)?,
                workload: r.get(2)?,
                last_ns: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_only_over_the_revision_loaded_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/baselines.db");
        let store = SqliteBaselines::open(&path).unwrap();
        let mut b = Baseline::new("compose:shop/web", 1);
        assert_eq!(store.save(&b, 0).unwrap(), Some(1));
        assert_eq!(store.save(&b, 0).unwrap(), None, "already stored");
        // An operator locks it while the node holds revision 1.
        let (locked, rev) = store
            .update("compose:shop/web", &mut |b| b.locked = true)
            .unwrap();
        assert!(locked.locked);
        assert_eq!(rev, 2);
        b.observations = 5;
        assert_eq!(
            store.save(&b, 1).unwrap(),
            None,
            "the node must not overwrite it"
        );
        drop(store);
        let store = SqliteBaselines::open(&path).unwrap();
        let all = store.load_all().unwrap();
        assert_eq!(all.len(), 1);
        assert!(all[0].0.locked);
        assert_eq!(all[0].1, 2);
        assert!(matches!(
            store.update("nope", &mut |_| {}),
            Err(StoreError::NotFound(_))
        ));
    }
}
