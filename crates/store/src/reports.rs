//! Nodes' reports about themselves ([`NodeReport`]: rules and response policy, sensor
//! health, scan results), kept newest per node and key in one table
//! (`node_reports`, migration 3) by both backends. A report's SBOM documents live in a
//! column of their own, so listing scan results never reads them.
//!
//! The backends only store and fetch rows; what the API asks of them (scan summaries)
//! is computed here once for both. Vulnerabilities are the exception: a scan report's
//! findings are also kept one per row (`scan_findings`, migration 4), replaced with
//! their report, so the fleet's vulnerability list is filtered, grouped, ordered and
//! bounded in SQL ([`VULNS_SQLITE`], [`VULNS_PG`]) without reading every report.
//! Migration 6 adds what the API shows beside each finding: the image layer that
//! introduced it, when a node first found it, and per scan the node's vulnerability
//! database update time, so "new since the last update" is counted in SQL too.

use std::collections::{BTreeMap, BTreeSet};

use rampart_event::fleet::{NodeReport, ScanReport};
use rampart_event::Severity;
use serde::{Deserialize, Serialize};

use crate::{Result, StoreError, DEFAULT_PAGE, MAX_PAGE};

/// A report as stored: the node it came from and the report (SBOM documents left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub node: String,
    pub report: NodeReport,
}

/// One row as the backends write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub key: String,
    pub kind: &'static str,
    pub ts_ns: u64,
    /// The report as JSON, SBOM documents left out.
    pub body: String,
    /// `{"cyclonedx": …, "spdx": …}` JSON text, scan reports only.
    pub sbom: Option<String>,
    /// A scan's vulnerability database update time (0: not a scan, or unknown).
    pub db_updated_ns: u64,
}

/// A report's row: the SBOM documents move to their own column.
pub fn report_row(report: &NodeReport) -> Result<ReportRow> {
    let mut r = report.clone();
    let db_updated_ns = match report {
        NodeReport::Scan(s) => s.db_updated_ns,
        _ => 0,
    };
    let sbom = match &mut r {
        NodeReport::Scan(s) => {
            let docs = Sboms {
                cyclonedx: s.sbom_cyclonedx.take(),
                spdx: s.sbom_spdx.take(),
            };
            Some(serde_json::to_string(&docs).map_err(|e| StoreError::Invalid(e.to_string()))?)
        }
        _ => None,
    };
    Ok(ReportRow {
        key: report.key(),
        kind: report.kind(),
        ts_ns: report.ts_ns(),
        body: serde_json::to_string(&r).map_err(|e| StoreError::Invalid(e.to_string()))?,
        sbom,
        db_updated_ns,
    })
}

/// A stored body back.
pub fn report_from_row(node: String, body: &str) -> Result<StoredReport> {
    let report = serde_json::from_str(body)
        .map_err(|e| StoreError::Decode(format!("node report of {node}: {e}")))?;
    Ok(StoredReport { node, report })
}

/// A scan's SBOM documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sboms {
    pub cyclonedx: Option<String>,
    pub spdx: Option<String>,
}

impl Sboms {
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| StoreError::Decode(format!("stored SBOM: {e}")))
    }
}

/// A scan result's id in the API: `<node>/<target>` (node names hold no `/`).
pub fn scan_id(node: &str, target: &str) -> String {
    format!("{node}/{target}")
}

/// The node and report key of a scan result id.
pub fn scan_key(id: &str) -> Option<(&str, String)> {
    let (node, target) = id.split_once('/')?;
    (!node.is_empty() && !target.is_empty()).then(|| (node, format!("scan:{target}")))
}

/// Which scan results to list (newest first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanQuery {
    /// A target (`container:<id>`), a container id, or an image.
    pub target: Option<String>,
    pub node: Option<String>,
    /// 0 means [`DEFAULT_PAGE`], capped at [`MAX_PAGE`].
    pub limit: u32,
}

/// One scan result's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSummary {
    pub id: String,
    pub node: String,
    pub target: String,
    pub image: String,
    pub ts_ns: u64,
    pub packages: u64,
    pub vulnerabilities: u64,
    pub secrets: u64,
    pub malware: u64,
}

fn page(limit: u32) -> usize {
    let n = match limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    };
    n as usize
}

fn scans(reports: &[StoredReport]) -> impl Iterator<Item = (&str, &ScanReport)> {
    reports.iter().filter_map(|r| match &r.report {
        NodeReport::Scan(s) => Some((r.node.as_str(), s)),
        _ => None,
    })
}

/// Scan summaries of `reports` (scan reports), filtered, newest first.
pub fn scan_summaries(reports: &[StoredReport], q: &ScanQuery) -> Vec<ScanSummary> {
    let mut out: Vec<ScanSummary> = scans(reports)
        .filter(|(node, _)| q.node.as_deref().is_none_or(|n| n == *node))
        .filter(|(_, s)| {
            q.target.as_deref().is_none_or(|t| {
                s.target == t
                    || s.target.strip_prefix("container:") == Some(t)
                    || s.image == t
                    || s.image_id == t
            })
        })
        .map(|(node, s)| ScanSummary {
            id: scan_id(node, &s.target),
            node: node.to_string(),
            target: s.target.clone(),
            image: s.image.clone(),
            ts_ns: s.ts_ns,
            packages: s.packages,
            vulnerabilities: s.vulnerabilities.len() as u64,
            secrets: s.secrets,
            malware: s.malware,
        })
        .collect();
    out.sort_by(|a, b| b.ts_ns.cmp(&a.ts_ns).then_with(|| a.id.cmp(&b.id)));
    out.truncate(page(q.limit));
    out
}

/// Which vulnerabilities to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnQuery {
    /// Only those in this image (name or id).
    pub image: Option<String>,
    /// This severity or higher.
    pub min_severity: Option<Severity>,
    /// Only those with a fixed version.
    pub fixable_only: bool,
    /// 0 means [`DEFAULT_PAGE`], capped at [`MAX_PAGE`].
    pub limit: u32,
}

impl VulnQuery {
    /// Whether a scan of `s` is in the query's image (by name or id), when it names one.
    pub fn takes_scan(&self, s: &ScanReport) -> bool {
        self.image
            .as_deref()
            .is_none_or(|i| s.image == i || s.image_id == i)
    }

    /// Whether a finding passes the query's severity and fix filters.
    pub fn takes_finding(&self, v: &rampart_event::fleet::VulnFinding) -> bool {
        !(self.min_severity.is_some_and(|m| v.severity < m)
            || (self.fixable_only && v.fixed_version.as_deref().unwrap_or("").is_empty()))
    }
}

/// A vulnerability of one package version across the fleet's scans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnRecord {
    pub id: String,
    pub aliases: Vec<String>,
    pub package: String,
    pub version: String,
    pub ecosystem: String,
    pub fixed_version: Option<String>,
    pub severity: Severity,
    pub summary: String,
    pub images: Vec<String>,
    /// Some container loaded the package's files.
    pub in_use: bool,
    /// The image layer that introduced the package (diff id), its position (0 is the
    /// base) and its Dockerfile command, from the first scan (by node, then target)
    /// that knew the layer.
    pub layer: Option<String>,
    pub layer_index: Option<u32>,
    pub layer_command: Option<String>,
    /// The earliest a node found it (0: unknown).
    pub first_seen_ns: u64,
    /// First found at or after the newest database update ([`VulnPage::db_updated_ns`]).
    pub new_since_db_update: bool,
}

/// A page of the fleet's vulnerabilities and what is counted over all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VulnPage {
    pub vulnerabilities: Vec<VulnRecord>,
    /// The newest vulnerability database update any node's scan reported (0: unknown).
    pub db_updated_ns: u64,
    /// How many findings (every one the query takes, not only this page) were first
    /// found at or after that update.
    pub new_since_db_update: u64,
}

/// Whether a finding first found at `first_seen_ns` is new since the update at
/// `db_updated_ns` (both unknown: no).
pub fn is_new(first_seen_ns: u64, db_updated_ns: u64) -> bool {
    db_updated_ns > 0 && first_seen_ns >= db_updated_ns
}

/// The vulnerabilities of `reports` (scan reports), one per id, package and version,
/// most severe first, in-use before not: the reference the stores' SQL answers
/// ([`VULNS_SQLITE`], [`VULNS_PG`]) are checked against.
pub fn vulnerabilities(reports: &[StoredReport], q: &VulnQuery) -> VulnPage {
    // The order the SQL takes the first layer in: node, key, index, digest.
    type LayerKey = (String, String, i64, String, String);
    struct Group {
        record: VulnRecord,
        images: BTreeSet<String>,
        // (node, key, layer index, layer, command) of the first finding with a layer.
        layer: Option<LayerKey>,
    }
    let mut by_key: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    let mut db_updated_ns = 0;
    for r in reports {
        let NodeReport::Scan(s) = &r.report else {
            continue;
        };
        db_updated_ns = db_updated_ns.max(s.db_updated_ns);
        if !q.takes_scan(s) {
            continue;
        }
        let key = r.report.key();
        for v in s.vulnerabilities.iter().filter(|v| q.takes_finding(v)) {
            let g = by_key
                .entry((v.id.clone(), v.package.clone(), v.version.clone()))
                .or_insert_with(|| Group {
                    record: VulnRecord {
                        id: v.id.clone(),
                        aliases: v.aliases.clone(),
                        package: v.package.clone(),
                        version: v.version.clone(),
                        ecosystem: v.ecosystem.clone(),
                        fixed_version: v.fixed_version.clone(),
                        severity: v.severity,
                        summary: v.summary.clone(),
                        images: Vec::new(),
                        in_use: false,
                        layer: None,
                        layer_index: None,
                        layer_command: None,
                        first_seen_ns: 0,
                        new_since_db_update: false,
                    },
                    images: BTreeSet::new(),
                    layer: None,
                });
            g.record.in_use |= v.in_use == Some(true);
            if !s.image.is_empty() {
                g.images.insert(s.image.clone());
            }
            if v.first_seen_ns > 0
                && (g.record.first_seen_ns == 0 || v.first_seen_ns < g.record.first_seen_ns)
            {
                g.record.first_seen_ns = v.first_seen_ns;
            }
            if let Some(layer) = v.layer.as_deref().filter(|l| !l.is_empty()) {
                let candidate = (
                    r.node.clone(),
                    key.clone(),
                    v.layer_index.map_or(-1, i64::from),
                    layer.to_string(),
                    v.layer_command.clone().unwrap_or_default(),
                );
                let order = |k: &LayerKey| (k.0.clone(), k.1.clone(), k.2, k.3.clone());
                if g.layer
                    .as_ref()
                    .is_none_or(|l| order(&candidate) < order(l))
                {
                    g.layer = Some(candidate);
                }
            }
        }
    }
    let mut out: Vec<VulnRecord> = by_key
        .into_values()
        .map(|g| {
            let mut v = g.record;
            v.images = g.images.into_iter().collect();
            if let Some((_, _, index, layer, command)) = g.layer {
                v.layer = Some(layer);
                v.layer_index = u32::try_from(index).ok();
                v.layer_command = (!command.is_empty()).then_some(command);
            }
            v.new_since_db_update = is_new(v.first_seen_ns, db_updated_ns);
            v
        })
        .collect();
    let new_since_db_update = out.iter().filter(|v| v.new_since_db_update).count() as u64;
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| b.in_use.cmp(&a.in_use))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.package.cmp(&b.package))
    });
    out.truncate(page(q.limit));
    VulnPage {
        vulnerabilities: out,
        db_updated_ns,
        new_since_db_update,
    }
}

/// Migration 4 (the same text for PostgreSQL): scan findings, one per row.
pub const FINDINGS_SQL: &str = "
CREATE TABLE scan_findings (
    node TEXT NOT NULL,
    key TEXT NOT NULL,
    vuln_id TEXT NOT NULL,
    package TEXT NOT NULL,
    version TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    fixed_version TEXT NOT NULL,
    severity BIGINT NOT NULL,
    summary TEXT NOT NULL,
    aliases TEXT NOT NULL,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL,
    in_use BIGINT NOT NULL
);
CREATE INDEX scan_findings_report ON scan_findings (node, key);
CREATE INDEX scan_findings_vuln ON scan_findings (vuln_id, package, version);
CREATE INDEX scan_findings_image ON scan_findings (image);
CREATE INDEX scan_findings_image_id ON scan_findings (image_id);
";

/// Removes a report's findings (before its newer version's go in).
pub const DELETE_FINDINGS_SQL: &str = "DELETE FROM scan_findings WHERE node = $1 AND key = $2";

/// Migration 6's columns (both backends): each finding's layer (empty digest and
/// index -1: unknown) and first-seen time, each scan's database update time. The rows
/// already stored are filled in from their reports by the backend's migration.
macro_rules! finding_extras_columns {
    () => {
        "
ALTER TABLE scan_findings ADD COLUMN layer TEXT NOT NULL DEFAULT '';
ALTER TABLE scan_findings ADD COLUMN layer_index BIGINT NOT NULL DEFAULT -1;
ALTER TABLE scan_findings ADD COLUMN layer_command TEXT NOT NULL DEFAULT '';
ALTER TABLE scan_findings ADD COLUMN first_seen_ns BIGINT NOT NULL DEFAULT 0;
ALTER TABLE node_reports ADD COLUMN db_updated_ns BIGINT NOT NULL DEFAULT 0;
CREATE INDEX node_reports_db_updated ON node_reports (kind, db_updated_ns);
"
    };
}

/// Migration 6 in SQLite, with an index that finds a finding's first layer (in the
/// order [`VULNS_SQLITE`] takes) without visiting its other rows.
pub const FINDING_EXTRAS_SQLITE: &str = concat!(
    finding_extras_columns!(),
    "CREATE INDEX scan_findings_layer ON scan_findings
    (vuln_id, package, version, node, key, layer_index, layer) WHERE layer <> '';"
);

/// Migration 6 in PostgreSQL: the same index in bytewise order, as [`VULNS_PG`] sorts.
pub const FINDING_EXTRAS_PG: &str = concat!(
    finding_extras_columns!(),
    r#"CREATE INDEX scan_findings_layer ON scan_findings
    (vuln_id, package, version, node COLLATE "C", key COLLATE "C", layer_index,
     layer COLLATE "C") WHERE layer <> '';"#
);

/// Adds one finding.
pub const INSERT_FINDING_SQL: &str = "
INSERT INTO scan_findings (node, key, vuln_id, package, version, ecosystem, fixed_version,
                           severity, summary, aliases, image, image_id, in_use,
                           layer, layer_index, layer_command, first_seen_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

/// The newest database update the fleet's scans reported (a lookup in
/// `node_reports_db_updated`), bound as the last parameter of the queries below.
pub const DB_UPDATED_SQL: &str =
    "SELECT COALESCE(MAX(db_updated_ns), 0) FROM node_reports WHERE kind = 'scan'";

macro_rules! vulns_sqlite {
    ($image:literal, $layer_image:literal) => {
        concat!(
            "
WITH g AS (
    SELECT vuln_id, package, version, MIN(aliases) AS aliases, MIN(ecosystem) AS ecosystem,
           MAX(fixed_version) AS fixed_version, MAX(severity) AS severity,
           MIN(summary) AS summary, MAX(in_use) AS in_use,
           json_group_array(DISTINCT image) FILTER (WHERE image <> '') AS images,
           COALESCE(MIN(first_seen_ns) FILTER (WHERE first_seen_ns > 0), 0) AS first_seen_ns
    FROM scan_findings
    WHERE ",
            $image,
            " severity >= ?2
      AND (?3 = 0 OR fixed_version <> '')
    GROUP BY vuln_id, package, version
),
page AS (
    SELECT *, SUM(CASE WHEN ?5 > 0 AND first_seen_ns >= ?5 THEN 1 ELSE 0 END) OVER ()
                  AS new_count
    FROM g
    ORDER BY severity DESC, in_use DESC, vuln_id, package, version
    LIMIT ?4
)
SELECT vuln_id, package, version, aliases, ecosystem, fixed_version, severity, summary,
       in_use, images, first_seen_ns, new_count,
       (SELECT json_array(l.layer, l.layer_index, l.layer_command)
        FROM scan_findings l
        WHERE l.vuln_id = page.vuln_id AND l.package = page.package
          AND l.version = page.version AND l.layer <> ''
          AND ",
            $layer_image,
            " l.severity >= ?2
          AND (?3 = 0 OR l.fixed_version <> '')
        ORDER BY l.node, l.key, l.layer_index, l.layer
        LIMIT 1)
FROM page
ORDER BY severity DESC, in_use DESC, vuln_id, package, version"
        )
    };
}

/// The fleet's vulnerabilities in SQLite (`?N`: SQLite numbers `$N` by first use, not
/// by N): parameters image (NULL in [`VULNS_SQLITE`]; [`VULNS_SQLITE_IMAGE`] takes it) (or NULL), minimum severity
/// rank, fixable only (0/1), limit, database update time. Columns as [`VulnRow`] reads
/// them; images as a JSON array, the layer as a JSON array `[digest, index, command]`
/// (NULL: none known). The count of new findings is a window over every group, taken
/// before the limit; the layer is looked up for the page's groups only.
///
/// Two texts, because SQLite plans a statement once: `?1 IS NULL OR image = ?1` would
/// keep it from the image indexes (110 ms of CPU instead of 11 for one image of 40
/// in 300,000 findings).
pub const VULNS_SQLITE: &str = vulns_sqlite!("", "");

/// [`VULNS_SQLITE`] for one image (name or id, `?1`).
pub const VULNS_SQLITE_IMAGE: &str = vulns_sqlite!(
    "(image = ?1 OR image_id = ?1) AND",
    "(l.image = ?1 OR l.image_id = ?1) AND"
);

/// The same in PostgreSQL; images as a text array, the layer as three columns (NULL:
/// none known). Text is ordered bytewise (`COLLATE "C"`), as SQLite and the
/// reference order it.
pub const VULNS_PG: &str = "
WITH g AS (
    SELECT vuln_id, package, version, MIN(aliases) AS aliases, MIN(ecosystem) AS ecosystem,
           MAX(fixed_version) AS fixed_version, MAX(severity) AS severity,
           MIN(summary) AS summary, MAX(in_use) AS in_use,
           COALESCE(array_agg(DISTINCT image ORDER BY image) FILTER (WHERE image <> ''), '{}')
               AS images,
           COALESCE(MIN(first_seen_ns) FILTER (WHERE first_seen_ns > 0), 0) AS first_seen_ns
    FROM scan_findings
    WHERE ($1::TEXT IS NULL OR image = $1 OR image_id = $1) AND severity >= $2::BIGINT
      AND ($3::BIGINT = 0 OR fixed_version <> '')
    GROUP BY vuln_id, package, version
),
page AS (
    SELECT *, SUM(CASE WHEN $5::BIGINT > 0 AND first_seen_ns >= $5::BIGINT THEN 1 ELSE 0 END)
                  OVER () AS new_count
    FROM g
    ORDER BY severity DESC, in_use DESC, vuln_id COLLATE \"C\", package COLLATE \"C\",
             version COLLATE \"C\"
    LIMIT $4::BIGINT
)
SELECT p.vuln_id, p.package, p.version, p.aliases, p.ecosystem, p.fixed_version, p.severity,
       p.summary, p.in_use, p.images, p.first_seen_ns, p.new_count,
       l.layer, l.layer_index, l.layer_command
FROM page p LEFT JOIN LATERAL (
    SELECT x.layer, x.layer_index, x.layer_command
    FROM scan_findings x
    WHERE x.vuln_id = p.vuln_id AND x.package = p.package AND x.version = p.version
      AND x.layer <> ''
      AND ($1::TEXT IS NULL OR x.image = $1 OR x.image_id = $1) AND x.severity >= $2::BIGINT
      AND ($3::BIGINT = 0 OR x.fixed_version <> '')
    ORDER BY x.node COLLATE \"C\", x.key COLLATE \"C\", x.layer_index, x.layer COLLATE \"C\"
    LIMIT 1
) l ON TRUE
ORDER BY p.severity DESC, p.in_use DESC, p.vuln_id COLLATE \"C\", p.package COLLATE \"C\",
         p.version COLLATE \"C\"";

/// One finding as the backends write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRow {
    pub vuln_id: String,
    pub package: String,
    pub version: String,
    pub ecosystem: String,
    /// Empty: no fixed version.
    pub fixed_version: String,
    pub severity: i64,
    pub summary: String,
    /// JSON array.
    pub aliases: String,
    pub image: String,
    pub image_id: String,
    pub in_use: i64,
    /// Empty: unknown.
    pub layer: String,
    /// -1: unknown.
    pub layer_index: i64,
    pub layer_command: String,
    pub first_seen_ns: i64,
}

/// A scan report's findings as rows (none for other reports).
pub fn finding_rows(report: &NodeReport) -> Vec<FindingRow> {
    let NodeReport::Scan(s) = report else {
        return Vec::new();
    };
    s.vulnerabilities
        .iter()
        .map(|v| FindingRow {
            vuln_id: v.id.clone(),
            package: v.package.clone(),
            version: v.version.clone(),
            ecosystem: v.ecosystem.clone(),
            fixed_version: v.fixed_version.clone().unwrap_or_default(),
            severity: crate::severity_rank(v.severity),
            summary: v.summary.clone(),
            // A list of strings always serializes.
            aliases: serde_json::to_string(&v.aliases).unwrap_or_else(|_| "[]".into()),
            image: s.image.clone(),
            image_id: s.image_id.clone(),
            in_use: i64::from(v.in_use == Some(true)),
            layer: v.layer.clone().unwrap_or_default(),
            layer_index: v.layer_index.map_or(-1, i64::from),
            layer_command: v.layer_command.clone().unwrap_or_default(),
            first_seen_ns: crate::ns_to_db(v.first_seen_ns),
        })
        .collect()
}

/// The bound parameters of a vulnerability query: image, minimum severity rank,
/// fixable only, limit (the database update time comes from [`DB_UPDATED_SQL`]).
pub fn vuln_params(q: &VulnQuery) -> (Option<&str>, i64, i64, i64) {
    (
        q.image.as_deref(),
        q.min_severity.map_or(0, crate::severity_rank),
        i64::from(q.fixable_only),
        page(q.limit) as i64,
    )
}

/// One grouped row of [`VULNS_SQLITE`] / [`VULNS_PG`], read by the backends.
pub struct VulnRow {
    pub id: String,
    pub package: String,
    pub version: String,
    pub aliases: String,
    pub ecosystem: String,
    pub fixed_version: String,
    pub severity: i64,
    pub summary: String,
    pub in_use: i64,
    pub images: Vec<String>,
    pub first_seen_ns: i64,
    /// The first known layer: digest, index, command.
    pub layer: Option<(String, i64, String)>,
}

impl VulnRow {
    /// The record, `db_updated_ns` deciding whether it is new.
    pub fn into_record(self, db_updated_ns: u64) -> Result<VulnRecord> {
        let aliases = serde_json::from_str(&self.aliases)
            .map_err(|e| StoreError::Decode(format!("finding aliases: {e}")))?;
        let mut images = self.images;
        images.sort();
        images.dedup();
        Ok(VulnRecord {
            id: self.id,
            aliases,
            package: self.package,
            version: self.version,
            ecosystem: self.ecosystem,
            fixed_version: (!self.fixed_version.is_empty()).then_some(self.fixed_version),
            severity: severity_from_rank(self.severity),
            summary: self.summary,
            images,
            in_use: self.in_use != 0,
            layer_index: self.layer.as_ref().and_then(|l| u32::try_from(l.1).ok()),
            layer_command: self
                .layer
                .as_ref()
                .map(|l| l.2.clone())
                .filter(|c| !c.is_empty()),
            layer: self.layer.map(|l| l.0),
            first_seen_ns: crate::ns_from_db(self.first_seen_ns),
            new_since_db_update: is_new(crate::ns_from_db(self.first_seen_ns), db_updated_ns),
        })
    }
}

/// A layer as [`VULNS_SQLITE`] gives it: `[digest, index, command]` JSON text.
pub fn layer_from_json(text: &str) -> Result<(String, i64, String)> {
    serde_json::from_str(text).map_err(|e| StoreError::Decode(format!("finding layer: {e}")))
}

fn severity_from_rank(rank: i64) -> Severity {
    match rank {
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::High,
        4 => Severity::Critical,
        _ => Severity::Unknown,
    }
}
