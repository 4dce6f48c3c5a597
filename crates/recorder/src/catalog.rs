//! The block catalog: a small SQLite database saying which blocks exist, where they
//! are, and what they hold (time range, containers, event kinds, exec ids, alert ids),
//! so a query reads only the blocks it needs. Everything in it can be rebuilt from the
//! segments' frame summaries.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::codec::BlockSummary;

/// One block as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    pub id: i64,
    pub segment: u64,
    pub offset: u64,
    pub length: usize,
    pub min_ts: u64,
    pub max_ts: u64,
}

/// A segment as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub id: u64,
    /// End of its last catalogued frame.
    pub bytes: u64,
    pub max_ts: Option<u64>,
}

/// A container the recorder has seen (running or long gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub first_ts: u64,
    pub last_ts: u64,
}

fn exec_blob(hashes: &[u64]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.to_le_bytes()).collect()
}

/// Binary search in a sorted array of little-endian u64s.
fn exec_blob_contains(blob: &[u8], hash: u64) -> bool {
    let n = blob.len() / 8;
    let at = |k: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&blob[k * 8..k * 8 + 8]);
        u64::from_le_bytes(a)
    };
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match at(mid).cmp(&hash) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    false
}

/// Layout of the catalog's tables; a catalog of another layout is rebuilt.
const CATALOG_VERSION: i64 = 1;

pub(crate) struct Catalog {
    db: Connection,
}

// Timestamps and hashes are u64; SQLite integers are i64. The bits are stored as
// is, which keeps order for timestamps below 2^63 ns (year 2262).
fn i(v: u64) -> i64 {
    v as i64
}

impl Catalog {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        // The catalog can be rebuilt from the segments: a lost commit costs a rescan,
        // never data, so it need not be synced on every commit.
        db.pragma_update(None, "synchronous", "NORMAL")?;
        // The write-ahead log is checkpointed and cut back often: left to SQLite's
        // defaults it grows to 4 MiB and stays, space the segments need on a full disk.
        db.pragma_update(None, "wal_autocheckpoint", 64)?;
        db.pragma_update(None, "journal_size_limit", 256 * 1024)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version != 0 && version != CATALOG_VERSION {
            // Another layout: the caller moves it aside and rebuilds from the segments.
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "catalog layout {version}, expected {CATALOG_VERSION}"
            )));
        }
        db.pragma_update(None, "user_version", CATALOG_VERSION)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS segments(
                id INTEGER PRIMARY KEY, bytes INTEGER NOT NULL, min_ts INTEGER, max_ts INTEGER);
             CREATE TABLE IF NOT EXISTS blocks(
                id INTEGER PRIMARY KEY, segment INTEGER NOT NULL, offset INTEGER NOT NULL,
                length INTEGER NOT NULL, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL,
                records INTEGER NOT NULL, events INTEGER NOT NULL, kinds INTEGER NOT NULL,
                alerts INTEGER NOT NULL, lifecycles INTEGER NOT NULL,
                execs BLOB NOT NULL,
                UNIQUE(segment, offset));
             CREATE INDEX IF NOT EXISTS blocks_max_ts ON blocks(max_ts);
             CREATE TABLE IF NOT EXISTS block_containers(
                container TEXT NOT NULL, block INTEGER NOT NULL,
                PRIMARY KEY(container, block)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS block_containers_block ON block_containers(block);
             CREATE TABLE IF NOT EXISTS alerts(
                id TEXT PRIMARY KEY, block INTEGER NOT NULL, ts INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS alerts_block ON alerts(block);
             CREATE TABLE IF NOT EXISTS containers(
                id TEXT PRIMARY KEY, name TEXT NOT NULL, image TEXT NOT NULL,
                first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS containers_name ON containers(name);",
        )?;
        Ok(Self { db })
    }

    pub fn segments(&self) -> rusqlite::Result<Vec<SegmentRow>> {
        let mut st = self
            .db
            .prepare_cached("SELECT id, bytes, max_ts FROM segments ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(SegmentRow {
                id: r.get::<_, i64>(0)? as u64,
                bytes: r.get::<_, i64>(1)? as u64,
                max_ts: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
            })
        })?;
        rows.collect()
    }

    pub fn add_segment(&self, id: u64, bytes: u64) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO segments(id, bytes) VALUES (?1, ?2)",
            params![i(id), i(bytes)],
        )?;
        Ok(())
    }

    /// Records a block written at `offset` of `segment`, and the segment's new end.
    pub fn add_block(
        &mut self,
        segment: u64,
        offset: u64,
        length: usize,
        s: &BlockSummary,
    ) -> rusqlite::Result<i64> {
        let tx = self.db.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO blocks(segment, offset, length, min_ts, max_ts, records, events,
                kinds, alerts, lifecycles, execs) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
            params![
                i(segment),
                i(offset),
                length as i64,
                i(s.min_ts),
                i(s.max_ts),
                s.records,
                s.events,
                i(s.kinds),
                s.alert_ids.len() as i64,
                s.lifecycles,
                // Exec ids are looked up rarely (process trees) and a block has hundreds:
                // a sorted array per block costs far less to write than index rows.
                exec_blob(&s.exec_hashes)
            ],
        )?;
        let block = if tx.changes() == 0 {
            // Already catalogued (a repair scan met it again): keep its id.
            tx.query_row(
                "SELECT id FROM blocks WHERE segment = ?1 AND offset = ?2",
                params![i(segment), i(offset)],
                |r| r.get(0),
            )?
        } else {
            tx.last_insert_rowid()
        };
        {
            let mut c = tx.prepare_cached(
                "INSERT OR IGNORE INTO block_containers(container, block) VALUES (?1, ?2)",
            )?;
            let mut info = tx.prepare_cached(
                "INSERT INTO containers(id, name, image, first_ts, last_ts) VALUES (?1,?2,?3,?4,?5)
                 ON CONFLICT(id) DO UPDATE SET
                   name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END,
                   image = CASE WHEN excluded.image != '' THEN excluded.image ELSE image END,
                   first_ts = min(first_ts, excluded.first_ts),
                   last_ts = max(last_ts, excluded.last_ts)",
            )?;
            for (id, name, image) in &s.containers {
                c.execute(params![id, block])?;
                info.execute(params![id, name, image, i(s.min_ts), i(s.max_ts)])?;
            }
            let mut a = tx
                .prepare_cached("INSERT OR REPLACE INTO alerts(id, block, ts) VALUES (?1,?2,?3)")?;
            for id in &s.alert_ids {
                a.execute(params![id, block, i(s.max_ts)])?;
            }
            tx.execute(
                "INSERT INTO segments(id, bytes, min_ts, max_ts) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET bytes = max(bytes, excluded.bytes),
                   min_ts = min(coalesce(min_ts, excluded.min_ts), excluded.min_ts),
                   max_ts = max(coalesce(max_ts, excluded.max_ts), excluded.max_ts)",
                params![
                    i(segment),
                    i(offset + length as u64),
                    i(s.min_ts),
                    i(s.max_ts)
                ],
            )?;
        }
        tx.commit()?;
        Ok(block)
    }

    /// Forgets a segment and its blocks (the file is deleted by the caller).
    pub fn remove_segment(&mut self, segment: u64) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        for table in ["block_containers", "alerts"] {
            tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE block IN (SELECT id FROM blocks WHERE segment = ?1)"
                ),
                params![i(segment)],
            )?;
        }
        tx.execute("DELETE FROM blocks WHERE segment = ?1", params![i(segment)])?;
        tx.execute("DELETE FROM segments WHERE id = ?1", params![i(segment)])?;
        tx.commit()
    }

    /// Forgets blocks of `segment` that end past `end` (the file is shorter than the
    /// catalog thought).
    pub fn truncate_segment(&mut self, segment: u64, end: u64) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        let cond = "SELECT id FROM blocks WHERE segment = ?1 AND offset + length > ?2";
        for table in ["block_containers", "alerts"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE block IN ({cond})"),
                params![i(segment), i(end)],
            )?;
        }
        tx.execute(
            "DELETE FROM blocks WHERE segment = ?1 AND offset + length > ?2",
            params![i(segment), i(end)],
        )?;
        tx.execute(
            "UPDATE segments SET bytes = ?2 WHERE id = ?1",
            params![i(segment), i(end)],
        )?;
        tx.commit()
    }

    /// Blocks that may hold records in `[since, until]`, optionally only those listing
    /// one of `containers` or holding one of `kinds` (bit mask; alerts and lifecycle
    /// records are kept when `keep_other`), ordered by oldest record.
    pub fn blocks(
        &self,
        since: u64,
        until: u64,
        containers: Option<&[String]>,
        kinds_mask: Option<u64>,
        keep_other: bool,
        after_block: Option<i64>,
    ) -> rusqlite::Result<Vec<BlockRef>> {
        let mut sql = String::from(
            "SELECT b.id, b.segment, b.offset, b.length, b.min_ts, b.max_ts FROM blocks b
             WHERE b.max_ts >= ?1 AND b.min_ts <= ?2 AND b.id > ?3",
        );
        if let Some(mask) = kinds_mask {
            if keep_other {
                sql.push_str(&format!(
                    " AND ((b.kinds & {}) != 0 OR b.alerts > 0 OR b.lifecycles > 0)",
                    mask as i64
                ));
            } else {
                sql.push_str(&format!(" AND (b.kinds & {}) != 0", mask as i64));
            }
        }
        let mut args: Vec<rusqlite::types::Value> = vec![
            i(since).into(),
            i(until.min(i64::MAX as u64)).into(),
            after_block.unwrap_or(0).into(),
        ];
        if let Some(cs) = containers {
            sql.push_str(" AND b.id IN (SELECT block FROM block_containers WHERE container IN (");
            for (n, c) in cs.iter().enumerate() {
                if n > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("?{}", args.len() + 1));
                args.push(c.clone().into());
            }
            if cs.is_empty() {
                sql.push_str("NULL");
            }
            sql.push_str("))");
        }
        sql.push_str(" ORDER BY b.min_ts, b.id");
        let mut st = self.db.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
            Ok(BlockRef {
                id: r.get(0)?,
                segment: r.get::<_, i64>(1)? as u64,
                offset: r.get::<_, i64>(2)? as u64,
                length: r.get::<_, i64>(3)? as usize,
                min_ts: r.get::<_, i64>(4)? as u64,
                max_ts: r.get::<_, i64>(5)? as u64,
            })
        })?;
        rows.collect()
    }

    /// Blocks listing an exec id hash.
    pub fn blocks_with_exec(&self, hash: u64) -> rusqlite::Result<Vec<i64>> {
        let mut st = self
            .db
            .prepare_cached("SELECT id, execs FROM blocks ORDER BY id")?;
        let mut out = Vec::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let blob = r.get_ref(1)?.as_blob()?;
            if exec_blob_contains(blob, hash) {
                out.push(r.get(0)?);
            }
        }
        Ok(out)
    }

    /// Containers listed by the given blocks.
    pub fn containers_of_blocks(&self, blocks: &[i64]) -> rusqlite::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut st = self
            .db
            .prepare_cached("SELECT container FROM block_containers WHERE block = ?1")?;
        for b in blocks {
            for c in st.query_map(params![b], |r| r.get::<_, String>(0))? {
                let c = c?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    pub fn block(&self, id: i64) -> rusqlite::Result<Option<BlockRef>> {
        self.db
            .query_row(
                "SELECT id, segment, offset, length, min_ts, max_ts FROM blocks WHERE id = ?1",
                params![id],
                |r| {
                    Ok(BlockRef {
                        id: r.get(0)?,
                        segment: r.get::<_, i64>(1)? as u64,
                        offset: r.get::<_, i64>(2)? as u64,
                        length: r.get::<_, i64>(3)? as usize,
                        min_ts: r.get::<_, i64>(4)? as u64,
                        max_ts: r.get::<_, i64>(5)? as u64,
                    })
                },
            )
            .optional()
    }

    pub fn alert_block(&self, alert_id: &str) -> rusqlite::Result<Option<i64>> {
        self.db
            .query_row(
                "SELECT block FROM alerts WHERE id = ?1",
                params![alert_id],
                |r| r.get(0),
            )
            .optional()
    }

    /// Containers whose id starts with `key` or whose name (or image, when `image`)
    /// is `key`.
    pub fn resolve_containers(&self, key: &str, image: bool) -> rusqlite::Result<Vec<String>> {
        let sql = if image {
            "SELECT id FROM containers WHERE image = ?1 OR substr(image, 1, length(?1) + 1) = ?1 || ':'
               OR substr(image, 1, length(?1) + 1) = ?1 || '@'"
        } else {
            "SELECT id FROM containers WHERE substr(id, 1, length(?1)) = ?1 OR name = ?1"
        };
        let mut st = self.db.prepare_cached(sql)?;
        let rows = st.query_map(params![key], |r| r.get(0))?;
        rows.collect()
    }

    pub fn containers(&self) -> rusqlite::Result<Vec<ContainerInfo>> {
        let mut st = self.db.prepare_cached(
            "SELECT id, name, image, first_ts, last_ts FROM containers ORDER BY first_ts",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ContainerInfo {
                id: r.get(0)?,
                name: r.get(1)?,
                image: r.get(2)?,
                first_ts: r.get::<_, i64>(3)? as u64,
                last_ts: r.get::<_, i64>(4)? as u64,
            })
        })?;
        rows.collect()
    }

    pub fn max_block_id(&self) -> rusqlite::Result<i64> {
        self.db
            .query_row("SELECT coalesce(max(id), 0) FROM blocks", [], |r| r.get(0))
    }

    pub fn summary(&self) -> rusqlite::Result<crate::store::Summary> {
        let (segments, bytes) = self.db.query_row(
            "SELECT count(*), coalesce(sum(bytes), 0) FROM segments",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )?;
        let (blocks, records, events, oldest, newest) = self.db.query_row(
            "SELECT count(*), coalesce(sum(records), 0), coalesce(sum(events), 0), min(min_ts),
                max(max_ts) FROM blocks",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
                    r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
                ))
            },
        )?;
        let containers = self
            .db
            .query_row("SELECT count(*) FROM containers", [], |r| {
                r.get::<_, i64>(0)
            })? as u64;
        Ok(crate::store::Summary {
            segments,
            bytes,
            blocks,
            records,
            events,
            containers,
            oldest_ns: oldest,
            newest_ns: newest,
        })
    }

    /// Blocks and events catalogued.
    pub fn totals(&self) -> rusqlite::Result<(u64, u64)> {
        self.db.query_row(
            "SELECT count(*), coalesce(sum(events), 0) FROM blocks",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
    }
}
