//! The SQLite store: advisories, their affected packages, import runs, stored SBOMs and
//! the findings already reported for them.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::matching::{name_key, PreparedAffected, Query};
use crate::osv::{read_source, OsvRange, OsvRecord};
use crate::severity::{assess, Severity};
use crate::version::{ecosystem_base, VersionScheme};

/// Errors of the vulnerability database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Source {
        path: PathBuf,
        source: crate::osv::RecordError,
    },
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Re-matching the stored SBOMs after an import failed (the import itself stands).
    #[error("re-matching stored SBOMs")]
    Rematch(#[source] Box<Error>),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A package to match, as the scan crate catalogues it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackageRef {
    /// OSV ecosystem: `"Debian:12"`, `"Alpine:v3.19"`, `"PyPI"`, `"Go"`, `"crates.io"`,
    /// `"npm"`, `"Maven"` (name `group:artifact`), `"RubyGems"`, `"Packagist"`,
    /// `"Red Hat"`, …
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    /// Distribution source package (dpkg `Source:`, apk origin, rpm SRPM name).
    pub source_name: Option<String>,
    pub purl: String,
}

/// One advisory that affects one package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnMatch {
    pub package: PackageRef,
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub severity: Severity,
    pub cvss_score: Option<f32>,
    pub fixed_version: Option<String>,
}

/// A match that was not reported for this SBOM before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFinding {
    pub sbom_id: String,
    pub finding: VulnMatch,
}

/// What one import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// Identifies the run; [`VulnDb::rematch_after_import`] reads the package keys it
    /// touched by this id.
    pub import_id: i64,
    pub source: PathBuf,
    pub added: usize,
    pub changed: usize,
    /// Records that stopped applying: a `withdrawn` field appeared, or the record
    /// disappeared from a source re-imported whole.
    pub withdrawn: usize,
    pub unchanged: usize,
    /// GIT ranges are not stored: they name commits, and installed packages carry
    /// versions, so they cannot match without the upstream repository.
    pub git_ranges_ignored: usize,
    /// Distinct (ecosystem, package) keys whose advisories changed.
    pub touched_packages: usize,
    /// Files that could not be read or parsed, with the reason; the import went on.
    pub errors: Vec<(PathBuf, String)>,
}

/// What a re-match did; counts make the selectivity observable.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RematchReport {
    pub sboms_total: usize,
    pub sboms_rematched: usize,
    pub packages_rematched: usize,
    /// Findings that no longer apply (fixed range, withdrawn advisory) and were dropped.
    pub resolved: usize,
    pub new_findings: Vec<NewFinding>,
}

/// Counts for `rampart db stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DbStats {
    pub advisories: usize,
    pub withdrawn: usize,
    pub affected_packages: usize,
    /// Active advisories per ecosystem (base name).
    pub ecosystems: Vec<(String, usize)>,
    pub sboms: usize,
    pub findings: usize,
    pub imports: usize,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS advisory (
    id TEXT PRIMARY KEY,
    modified TEXT NOT NULL,
    content_hash INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,       -- import root this record last came from
    origin TEXT NOT NULL,       -- file inside it
    summary TEXT NOT NULL,
    aliases TEXT NOT NULL,      -- JSON array
    severity TEXT NOT NULL,
    cvss_score REAL
);
CREATE INDEX IF NOT EXISTS advisory_source ON advisory(source);
CREATE TABLE IF NOT EXISTS affected (
    advisory_id TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    name_key TEXT NOT NULL,
    ranges TEXT NOT NULL,       -- JSON [OsvRange], ECOSYSTEM and SEMVER only
    versions TEXT NOT NULL      -- JSON [String]
);
CREATE INDEX IF NOT EXISTS affected_key ON affected(name_key, ecosystem);
CREATE INDEX IF NOT EXISTS affected_advisory ON affected(advisory_id);
CREATE TABLE IF NOT EXISTS import_run (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    report TEXT
);
CREATE TABLE IF NOT EXISTS import_touched (
    import_id INTEGER NOT NULL,
    ecosystem TEXT NOT NULL,
    name_key TEXT NOT NULL,
    PRIMARY KEY (import_id, ecosystem, name_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sbom (
    id TEXT PRIMARY KEY,
    stored_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sbom_package (
    sbom_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    package TEXT NOT NULL,      -- JSON PackageRef
    PRIMARY KEY (sbom_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sbom_key (
    ecosystem TEXT NOT NULL,
    name_key TEXT NOT NULL,
    sbom_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (ecosystem, name_key, sbom_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sbom_key_sbom ON sbom_key(sbom_id);
CREATE TABLE IF NOT EXISTS finding (
    sbom_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    vuln_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    PRIMARY KEY (sbom_id, idx, vuln_id)
) WITHOUT ROWID;
-- `rampart db update`: what each ecosystem's export was when last fetched, for
-- conditional requests, and when it was last checked (a 304 counts: the data is current).
CREATE TABLE IF NOT EXISTS update_source (
    ecosystem TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    checked_at INTEGER NOT NULL,
    changed_at INTEGER NOT NULL
) WITHOUT ROWID;
"#;

/// What the last `rampart db update` learnt about one ecosystem's export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub ecosystem: String,
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Unix seconds of the last successful request (200 or 304).
    pub checked_at: i64,
    /// Unix seconds of the last download that changed the data.
    pub changed_at: i64,
}

/// How current the database is: what a scan reports next to its findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// Active (not withdrawn) advisories.
    pub advisories: usize,
    /// Unix seconds of the last import or successful update check; None when never.
    pub updated_at: Option<i64>,
}

/// (ecosystem, name key) under which advisories for a package are stored.
type PackageKey = (String, String);

/// The keys to look a package up under: its exact ecosystem and the release-less base
/// (`Debian:12` also matches advisories for `Debian`); distro packages by source
/// package when one is given (rpm advisories name binary packages, so rpm tries both).
pub fn lookup_keys(package: &PackageRef) -> Vec<PackageKey> {
    let mut ecosystems = vec![package.ecosystem.clone()];
    let base = ecosystem_base(&package.ecosystem);
    if base != package.ecosystem {
        ecosystems.push(base.to_string());
    }
    let scheme = VersionScheme::for_ecosystem(&package.ecosystem);
    let mut names = Vec::new();
    match (&package.source_name, scheme) {
        (Some(source), Some(VersionScheme::Rpm)) if !source.is_empty() => {
            names.push(package.name.as_str());
            names.push(source.as_str());
        }
        (Some(source), Some(s)) if s.is_distro() && !source.is_empty() => {
            names.push(source.as_str())
        }
        _ => names.push(package.name.as_str()),
    }
    let mut keys = Vec::new();
    for ecosystem in &ecosystems {
        for name in &names {
            let key = (ecosystem.clone(), name_key(ecosystem, name));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// FNV-1a: a stable content hash (std's hasher may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The vulnerability database on one SQLite file. `Send` (it can move to a worker
/// thread) but not `Sync`: give each thread its own `VulnDb` on the same file.
pub struct VulnDb {
    conn: Connection,
    cache: AffectedCache,
}

impl VulnDb {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<VulnDb> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(VulnDb {
            conn,
            cache: RefCell::default(),
        })
    }

    /// Opens a database that lives only in memory (tests, benchmarks).
    pub fn open_in_memory() -> Result<VulnDb> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(VulnDb {
            conn,
            cache: RefCell::default(),
        })
    }

    /// Imports OSV records from a file, a directory (recursively) or a `.zip`.
    ///
    /// Records are keyed by id. An unchanged record is left alone; a changed one
    /// (different `modified` or content) replaces the stored one; a record with
    /// `withdrawn` stops matching; and a record this source delivered before but no
    /// longer does is withdrawn, unless its file failed to parse this time. Malformed
    /// files are listed in [`ImportReport::errors`] and the import continues.
    pub fn import(&mut self, path: impl AsRef<Path>) -> Result<ImportReport> {
        let path = path.as_ref();
        let source_path = std::fs::canonicalize(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let source = source_path.to_string_lossy().into_owned();
        self.cache.borrow_mut().clear();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO import_run (source, started_at) VALUES (?1, ?2)",
            params![source, now_unix()],
        )?;
        let import_id = tx.last_insert_rowid();
        let mut report = ImportReport {
            import_id,
            source: source_path.clone(),
            ..ImportReport::default()
        };
        let mut touched: BTreeSet<PackageKey> = BTreeSet::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut failed_files: HashSet<String> = HashSet::new();
        let mut fatal: Option<Error> = None;
        {
            let mut importer = RecordImporter::new(&tx, &source)?;
            let read = read_source(&source_path, &mut |file| {
                if fatal.is_some() {
                    return;
                }
                let origin = file.path.to_string_lossy().into_owned();
                match file.records {
                    Err(e) => {
                        failed_files.insert(origin);
                        report.errors.push((file.path, e.to_string()));
                    }
                    Ok(parsed) => {
                        if !parsed.rejected.is_empty() {
                            failed_files.insert(origin.clone());
                        }
                        for (index, e) in parsed.rejected {
                            report
                                .errors
                                .push((file.path.clone(), format!("record [{index}]: {e}")));
                        }
                        for record in parsed.records {
                            seen.insert(record.id.clone());
                            if let Err(e) =
                                importer.apply(&record, &origin, &mut report, &mut touched)
                            {
                                fatal = Some(e);
                                return;
                            }
                        }
                    }
                }
            });
            if let Some(e) = fatal {
                return Err(e);
            }
            read.map_err(|source| Error::Source {
                path: path.to_path_buf(),
                source,
            })?;
            // Records that disappeared from this source.
            let gone: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT id, origin FROM advisory WHERE source = ?1 AND withdrawn = 0",
                )?;
                let rows = stmt.query_map([&source], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                let mut gone = Vec::new();
                for row in rows {
                    let (id, origin) = row?;
                    if !seen.contains(&id) && !failed_files.contains(&origin) {
                        gone.push(id);
                    }
                }
                gone
            };
            for id in gone {
                importer.keys_of(&id, &mut touched)?;
                tx.execute("UPDATE advisory SET withdrawn = 1 WHERE id = ?1", [&id])?;
                report.withdrawn += 1;
            }
        }
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO import_touched (import_id, ecosystem, name_key) VALUES (?1, ?2, ?3)",
            )?;
            for (ecosystem, key) in &touched {
                insert.execute(params![import_id, ecosystem, key])?;
            }
        }
        report.touched_packages = touched.len();
        tx.execute(
            "UPDATE import_run SET report = ?1 WHERE id = ?2",
            params![serde_json::to_string(&report)?, import_id],
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// Matches packages against the active advisories, each in its ecosystem's order.
    pub fn match_packages(&self, packages: &[PackageRef]) -> Result<Vec<VulnMatch>> {
        let mut out = Vec::new();
        for package in packages {
            out.extend(match_one(&self.conn, &self.cache, package)?);
        }
        Ok(out)
    }

    /// Stores (or replaces) an SBOM's packages and records its current matches as
    /// already reported; returns those matches.
    pub fn store_sbom(&mut self, sbom_id: &str, packages: &[PackageRef]) -> Result<Vec<VulnMatch>> {
        let tx = self.conn.transaction()?;
        for table in ["sbom_package", "finding"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE sbom_id = ?1"),
                [sbom_id],
            )?;
        }
        tx.execute("DELETE FROM sbom_key WHERE sbom_id = ?1", [sbom_id])?;
        tx.execute(
            "INSERT OR REPLACE INTO sbom (id, stored_at) VALUES (?1, ?2)",
            params![sbom_id, now_unix()],
        )?;
        let mut matches = Vec::new();
        {
            let mut insert_package =
                tx.prepare("INSERT INTO sbom_package (sbom_id, idx, package) VALUES (?1, ?2, ?3)")?;
            let mut insert_key = tx.prepare(
                "INSERT OR IGNORE INTO sbom_key (ecosystem, name_key, sbom_id, idx) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut insert_finding = tx.prepare(
                "INSERT OR IGNORE INTO finding (sbom_id, idx, vuln_id, first_seen) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let now = now_unix();
            for (idx, package) in packages.iter().enumerate() {
                insert_package.execute(params![
                    sbom_id,
                    idx as i64,
                    serde_json::to_string(package)?
                ])?;
                for (ecosystem, key) in lookup_keys(package) {
                    insert_key.execute(params![ecosystem, key, sbom_id, idx as i64])?;
                }
                for found in match_one(&tx, &self.cache, package)? {
                    insert_finding.execute(params![sbom_id, idx as i64, found.id, now])?;
                    matches.push(found);
                }
            }
        }
        tx.commit()?;
        Ok(matches)
    }

    /// Re-matches the stored SBOMs that contain packages the import touched and returns
    /// the findings not reported before (they are recorded, so a second call returns
    /// nothing new).
    pub fn rematch_after_import(&mut self, report: &ImportReport) -> Result<Vec<NewFinding>> {
        Ok(self.rematch_after_import_detailed(report)?.new_findings)
    }

    /// [`VulnDb::rematch_after_import`] with counts of what was re-matched.
    pub fn rematch_after_import_detailed(
        &mut self,
        report: &ImportReport,
    ) -> Result<RematchReport> {
        let tx = self.conn.transaction()?;
        let mut out = RematchReport {
            sboms_total: tx.query_row("SELECT count(*) FROM sbom", [], |r| r.get::<_, i64>(0))?
                as usize,
            ..RematchReport::default()
        };
        // (sbom, package index) pairs whose package has a touched key.
        let mut targets: Vec<(String, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT DISTINCT k.sbom_id, k.idx FROM import_touched t
                 JOIN sbom_key k ON k.ecosystem = t.ecosystem AND k.name_key = t.name_key
                 WHERE t.import_id = ?1",
            )?;
            let rows = stmt.query_map([report.import_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        targets.sort();
        out.sboms_rematched = targets
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<HashSet<_>>()
            .len();
        out.packages_rematched = targets.len();
        {
            let mut load =
                tx.prepare("SELECT package FROM sbom_package WHERE sbom_id = ?1 AND idx = ?2")?;
            let mut known =
                tx.prepare("SELECT vuln_id FROM finding WHERE sbom_id = ?1 AND idx = ?2")?;
            let mut insert = tx.prepare(
                "INSERT INTO finding (sbom_id, idx, vuln_id, first_seen) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut delete =
                tx.prepare("DELETE FROM finding WHERE sbom_id = ?1 AND idx = ?2 AND vuln_id = ?3")?;
            let now = now_unix();
            for (sbom_id, idx) in targets {
                let json: String = load.query_row(params![sbom_id, idx], |r| r.get(0))?;
                let package: PackageRef = serde_json::from_str(&json)?;
                let before: HashSet<String> = known
                    .query_map(params![sbom_id, idx], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let current = match_one(&tx, &self.cache, &package)?;
                let current_ids: HashSet<&str> = current.iter().map(|m| m.id.as_str()).collect();
                for gone in before
                    .iter()
                    .filter(|id| !current_ids.contains(id.as_str()))
                {
                    delete.execute(params![sbom_id, idx, gone])?;
                    out.resolved += 1;
                }
                for found in current {
                    if !before.contains(&found.id) {
                        insert.execute(params![sbom_id, idx, found.id, now])?;
                        out.new_findings.push(NewFinding {
                            sbom_id: sbom_id.clone(),
                            finding: found,
                        });
                    }
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// The stored state of every ecosystem `rampart db update` fetched.
    pub fn update_sources(&self) -> Result<Vec<SourceState>> {
        let mut stmt = self.conn.prepare(
            "SELECT ecosystem, url, etag, last_modified, checked_at, changed_at
             FROM update_source ORDER BY ecosystem",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SourceState {
                ecosystem: r.get(0)?,
                url: r.get(1)?,
                etag: r.get(2)?,
                last_modified: r.get(3)?,
                checked_at: r.get(4)?,
                changed_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records what an update learnt about one ecosystem's export.
    pub fn set_update_source(&self, state: &SourceState) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO update_source
             (ecosystem, url, etag, last_modified, checked_at, changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                state.ecosystem,
                state.url,
                state.etag,
                state.last_modified,
                state.checked_at,
                state.changed_at
            ],
        )?;
        Ok(())
    }

    /// How many advisories are active and when the data was last imported or confirmed
    /// current by an update.
    pub fn freshness(&self) -> Result<Freshness> {
        let advisories = self.conn.query_row(
            "SELECT count(*) FROM advisory WHERE withdrawn = 0",
            [],
            |r| r.get::<_, i64>(0),
        )? as usize;
        let imported: Option<i64> = self.conn.query_row(
            "SELECT max(started_at) FROM import_run WHERE report IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        let checked: Option<i64> =
            self.conn
                .query_row("SELECT max(checked_at) FROM update_source", [], |r| {
                    r.get(0)
                })?;
        Ok(Freshness {
            advisories,
            updated_at: imported.max(checked),
        })
    }

    /// SQLite's `data_version`: changes when another connection commits to the file, so
    /// a long-lived reader can tell that an import or update happened elsewhere.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Writes a compacted copy of the database to `path` (which must not exist): the
    /// starting point of an update built beside the live file.
    pub fn copy_to(&self, path: &Path) -> Result<()> {
        self.conn
            .execute("VACUUM INTO ?1", [path.to_string_lossy().as_ref()])?;
        Ok(())
    }

    /// Moves everything in the write-ahead log into the main file and empties the log,
    /// so the file can be renamed or replaced.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Counts for `rampart db stats`.
    pub fn stats(&self) -> Result<DbStats> {
        let count = |sql: &str| -> Result<usize> {
            Ok(self.conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as usize)
        };
        let mut per_ecosystem: HashMap<String, usize> = HashMap::new();
        {
            let mut stmt = self.conn.prepare(
                "SELECT f.ecosystem, count(DISTINCT f.advisory_id) FROM affected f
                 JOIN advisory a ON a.id = f.advisory_id WHERE a.withdrawn = 0 GROUP BY f.ecosystem",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (ecosystem, n) = row?;
                *per_ecosystem
                    .entry(ecosystem_base(&ecosystem).to_string())
                    .or_default() += n as usize;
            }
        }
        let mut ecosystems: Vec<(String, usize)> = per_ecosystem.into_iter().collect();
        ecosystems.sort();
        Ok(DbStats {
            advisories: count("SELECT count(*) FROM advisory WHERE withdrawn = 0")?,
            withdrawn: count("SELECT count(*) FROM advisory WHERE withdrawn = 1")?,
            affected_packages: count(
                "SELECT count(*) FROM (SELECT DISTINCT ecosystem, name_key FROM affected)",
            )?,
            ecosystems,
            sboms: count("SELECT count(*) FROM sbom")?,
            findings: count("SELECT count(*) FROM finding")?,
            imports: count("SELECT count(*) FROM import_run")?,
        })
    }
}

/// Applies records to the advisory tables inside an import transaction.
struct RecordImporter<'c> {
    conn: &'c Connection,
    source: &'c str,
}

impl<'c> RecordImporter<'c> {
    fn new(conn: &'c Connection, source: &'c str) -> Result<Self> {
        Ok(RecordImporter { conn, source })
    }

    fn keys_of(&self, id: &str, into: &mut BTreeSet<PackageKey>) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ecosystem, name_key FROM affected WHERE advisory_id = ?1")?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            into.insert(row?);
        }
        Ok(())
    }

    fn apply(
        &mut self,
        record: &OsvRecord,
        origin: &str,
        report: &mut ImportReport,
        touched: &mut BTreeSet<PackageKey>,
    ) -> Result<()> {
        let hash = fnv1a(&serde_json::to_vec(record)?);
        let withdrawn = record.withdrawn.is_some();
        let existing: Option<(i64, bool)> = self
            .conn
            .prepare_cached("SELECT content_hash, withdrawn FROM advisory WHERE id = ?1")?
            .query_row([&record.id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .optional()?;
        match existing {
            Some((stored_hash, stored_withdrawn)) if stored_hash == hash => {
                // Same content; only note where it came from this time.
                self.conn
                    .prepare_cached("UPDATE advisory SET source = ?1, origin = ?2 WHERE id = ?3")?
                    .execute(params![self.source, origin, record.id])?;
                if stored_withdrawn && !withdrawn {
                    // It had disappeared from its source and is back.
                    self.conn
                        .prepare_cached("UPDATE advisory SET withdrawn = 0 WHERE id = ?1")?
                        .execute([&record.id])?;
                    self.keys_of(&record.id, touched)?;
                    report.changed += 1;
                } else {
                    report.unchanged += 1;
                }
                return Ok(());
            }
            Some((_, stored_withdrawn)) => {
                self.keys_of(&record.id, touched)?;
                self.conn
                    .prepare_cached("DELETE FROM affected WHERE advisory_id = ?1")?
                    .execute([&record.id])?;
                if withdrawn && !stored_withdrawn {
                    report.withdrawn += 1;
                } else if withdrawn {
                    report.unchanged += 1;
                } else {
                    report.changed += 1;
                }
            }
            None if withdrawn => report.withdrawn += 1,
            None => report.added += 1,
        }
        let (severity, cvss_score) = assess(record);
        let summary = record
            .summary
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| {
                record.details.as_ref().map(|d| {
                    d.lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect()
                })
            })
            .unwrap_or_default();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO advisory
                 (id, modified, content_hash, withdrawn, source, origin, summary, aliases, severity, cvss_score)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                record.id,
                record.modified,
                hash,
                withdrawn as i64,
                self.source,
                origin,
                summary,
                serde_json::to_string(&record.aliases)?,
                severity.as_str(),
                cvss_score.map(f64::from),
            ])?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO affected (advisory_id, ecosystem, name_key, ranges, versions) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for affected in &record.affected {
            let Some(package) = &affected.package else {
                report.git_ranges_ignored +=
                    affected.ranges.iter().filter(|r| r.kind == "GIT").count();
                continue;
            };
            let ranges: Vec<&OsvRange> = affected
                .ranges
                .iter()
                .filter(|r| {
                    let keep = r.kind == "ECOSYSTEM" || r.kind == "SEMVER";
                    if r.kind == "GIT" {
                        report.git_ranges_ignored += 1;
                    }
                    keep
                })
                .collect();
            let key = name_key(&package.ecosystem, &package.name);
            insert.execute(params![
                record.id,
                package.ecosystem,
                key,
                serde_json::to_string(&ranges)?,
                serde_json::to_string(&affected.versions)?,
            ])?;
            touched.insert((package.ecosystem.clone(), key));
        }
        Ok(())
    }
}

/// One stored affected entry, parsed once and kept in [`VulnDb`]'s cache.
struct StoredAffected {
    advisory: Arc<AdvisoryInfo>,
    prepared: PreparedAffected,
}

struct AdvisoryInfo {
    id: String,
    aliases: Vec<String>,
    summary: String,
    severity: Severity,
    cvss_score: Option<f32>,
}

/// Parsed affected entries per package key. Matching the same names again (every SBOM
/// has a libc, every Go binary a stdlib) then costs no SQL and no JSON; an import
/// clears it.
type AffectedCache = RefCell<HashMap<PackageKey, Arc<Vec<StoredAffected>>>>;

fn affected_for(
    conn: &Connection,
    cache: &AffectedCache,
    key: &PackageKey,
) -> Result<Arc<Vec<StoredAffected>>> {
    if let Some(hit) = cache.borrow().get(key) {
        return Ok(Arc::clone(hit));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT f.advisory_id, f.ecosystem, f.ranges, f.versions, a.aliases, a.summary, a.severity, a.cvss_score
         FROM affected f JOIN advisory a ON a.id = f.advisory_id
         WHERE f.name_key = ?1 AND f.ecosystem = ?2 AND a.withdrawn = 0",
    )?;
    let rows = stmt.query_map(params![key.1, key.0], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<f64>>(7)?,
        ))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, ecosystem, ranges, versions, aliases, summary, severity, cvss_score) = row?;
        entries.push(StoredAffected {
            advisory: Arc::new(AdvisoryInfo {
                id,
                aliases: serde_json::from_str(&aliases)?,
                summary,
                severity: severity.parse().unwrap_or_default(),
                cvss_score: cvss_score.map(|s| s as f32),
            }),
            prepared: PreparedAffected::new(
                &ecosystem,
                &serde_json::from_str::<Vec<OsvRange>>(&ranges)?,
                &serde_json::from_str::<Vec<String>>(&versions)?,
            ),
        });
    }
    let entries = Arc::new(entries);
    cache.borrow_mut().insert(key.clone(), Arc::clone(&entries));
    Ok(entries)
}

/// Matches one package against the active advisories.
fn match_one(
    conn: &Connection,
    cache: &AffectedCache,
    package: &PackageRef,
) -> Result<Vec<VulnMatch>> {
    let mut found: Vec<VulnMatch> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut queries: Vec<(Option<VersionScheme>, Query<'_>)> = Vec::new();
    for key in lookup_keys(package) {
        for entry in affected_for(conn, cache, &key)?.iter() {
            let scheme = entry.prepared.scheme();
            let at = match queries.iter().position(|(s, _)| *s == scheme) {
                Some(at) => at,
                None => {
                    queries.push((scheme, Query::new(scheme, &package.version)));
                    queries.len() - 1
                }
            };
            let verdict = entry.prepared.verdict_for(&queries[at].1);
            if !verdict.affected {
                continue;
            }
            let info = &entry.advisory;
            // One match per advisory even when several of its entries apply.
            if let Some(&at) = seen.get(info.id.as_str()) {
                let existing: &mut VulnMatch = &mut found[at];
                if existing.fixed_version.is_none() {
                    existing.fixed_version = verdict.fixed_version;
                }
                continue;
            }
            seen.insert(info.id.clone(), found.len());
            found.push(VulnMatch {
                package: package.clone(),
                id: info.id.clone(),
                aliases: info.aliases.clone(),
                summary: info.summary.clone(),
                severity: info.severity,
                cvss_score: info.cvss_score,
                fixed_version: verdict.fixed_version,
            });
        }
    }
    Ok(found)
}
