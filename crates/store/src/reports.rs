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
}

/// A report's row: the SBOM documents move to their own column.
pub fn report_row(report: &NodeReport) -> Result<ReportRow> {
    let mut r = report.clone();
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
}

/// The vulnerabilities of `reports` (scan reports), one per id, package and version,
/// most severe first, in-use before not.
pub fn vulnerabilities(reports: &[StoredReport], q: &VulnQuery) -> Vec<VulnRecord> {
    let mut by_key: BTreeMap<(String, String, String), (VulnRecord, BTreeSet<String>)> =
        BTreeMap::new();
    for (_, s) in scans(reports) {
        if !q.takes_scan(s) {
            continue;
        }
        for v in s.vulnerabilities.iter().filter(|v| q.takes_finding(v)) {
            let key = (v.id.clone(), v.package.clone(), v.version.clone());
            let entry = by_key.entry(key).or_insert_with(|| {
                (
                    VulnRecord {
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
                    },
                    BTreeSet::new(),
                )
            });
            entry.0.in_use |= v.in_use == Some(true);
            if !s.image.is_empty() {
                entry.1.insert(s.image.clone());
            }
        }
    }
    let mut out: Vec<VulnRecord> = by_key
        .into_values()
        .map(|(mut v, images)| {
            v.images = images.into_iter().collect();
            v
        })
        .collect();
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| b.in_use.cmp(&a.in_use))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.package.cmp(&b.package))
    });
    out.truncate(page(q.limit));
    out
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

/// Adds one finding.
pub const INSERT_FINDING_SQL: &str = "
INSERT INTO scan_findings (node, key, vuln_id, package, version, ecosystem, fixed_version,
                           severity, summary, aliases, image, image_id, in_use)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// The fleet's vulnerabilities in SQLite: parameters image (or NULL), minimum severity
/// rank, fixable only (0/1), limit. Columns as [`VulnRow`] reads them; images as a
/// JSON array.
pub const VULNS_SQLITE: &str = "
SELECT vuln_id, package, version, MIN(aliases), MIN(ecosystem), MAX(fixed_version),
       MAX(severity), MIN(summary), MAX(in_use),
       json_group_array(DISTINCT image) FILTER (WHERE image <> '')
FROM scan_findings
WHERE ($1 IS NULL OR image = $1 OR image_id = $1) AND severity >= $2
  AND ($3 = 0 OR fixed_version <> '')
GROUP BY vuln_id, package, version
ORDER BY MAX(severity) DESC, MAX(in_use) DESC, vuln_id, package, version
LIMIT $4";

/// The same in PostgreSQL; images as a text array.
pub const VULNS_PG: &str = "
SELECT vuln_id, package, version, MIN(aliases), MIN(ecosystem), MAX(fixed_version),
       MAX(severity), MIN(summary), MAX(in_use),
       COALESCE(array_agg(DISTINCT image ORDER BY image) FILTER (WHERE image <> ''), '{}')
FROM scan_findings
WHERE ($1::TEXT IS NULL OR image = $1 OR image_id = $1) AND severity >= $2::BIGINT
  AND ($3::BIGINT = 0 OR fixed_version <> '')
GROUP BY vuln_id, package, version
ORDER BY MAX(severity) DESC, MAX(in_use) DESC, vuln_id, package, version
LIMIT $4::BIGINT";

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
        })
        .collect()
}

/// The bound parameters of a vulnerability query: image, minimum severity rank,
/// fixable only, limit.
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
}

impl VulnRow {
    pub fn into_record(self) -> Result<VulnRecord> {
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
        })
    }
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
