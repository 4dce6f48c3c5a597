//! Vulnerability matching hook. The database and version logic belong to
//! `rampart-vulndb`; this module turns cataloged packages into queries and matches
//! back into [`Vulnerability`] findings attributed to package, location and layer.
//! [`OsvDatabase`] adapts `rampart-vulndb`'s [`rampart_vulndb::VulnDb`].

use crate::model::{Package, ScanReport, Vulnerability};

/// What the scanner sends to a matcher: one query per package with a known ecosystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageQuery {
    pub ecosystem: String,
    pub name: String,
    pub version: String,
    pub source_name: Option<String>,
    pub purl: String,
}

/// A match as a database reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// Index into the query slice.
    pub query: usize,
    pub id: String,
    pub aliases: Vec<String>,
    pub summary: String,
    pub severity: crate::model::Severity,
    pub cvss_score: Option<f32>,
    pub fixed_version: Option<String>,
}

/// A vulnerability source.
pub trait VulnMatcher {
    fn match_packages(&mut self, queries: &[PackageQuery]) -> anyhow::Result<Vec<Match>>;
}

/// The OSV database of `rampart-vulndb` (made by `rampart db import`).
pub struct OsvDatabase {
    db: rampart_vulndb::VulnDb,
    /// When set, the SBOM is stored under this id so later imports re-match it.
    store_as: Option<String>,
}

impl OsvDatabase {
    /// Open an existing database; a missing file is an error, not an empty database.
    pub fn open(path: &std::path::Path, store_as: Option<String>) -> anyhow::Result<Self> {
        if !path.is_file() {
            anyhow::bail!(
                "{}: no vulnerability database there (create one with `rampart db import PATH`)",
                path.display()
            );
        }
        let db = rampart_vulndb::VulnDb::open(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(OsvDatabase { db, store_as })
    }

    /// Store the SBOM under `id` on the next match, so later imports re-match it.
    pub fn store_as(&mut self, id: String) {
        self.store_as = Some(id);
    }

    /// How many advisories the database holds and when it was last updated.
    pub fn freshness(&self) -> anyhow::Result<rampart_vulndb::Freshness> {
        Ok(self.db.freshness()?)
    }

    /// Wrap an already open database (tests, benchmarks).
    pub fn from_db(db: rampart_vulndb::VulnDb, store_as: Option<String>) -> Self {
        OsvDatabase { db, store_as }
    }
}

fn to_ref(query: &PackageQuery) -> rampart_vulndb::PackageRef {
    rampart_vulndb::PackageRef {
        ecosystem: query.ecosystem.clone(),
        name: query.name.clone(),
        version: query.version.clone(),
        source_name: query.source_name.clone(),
        purl: query.purl.clone(),
    }
}

impl VulnMatcher for OsvDatabase {
    fn match_packages(&mut self, queries: &[PackageQuery]) -> anyhow::Result<Vec<Match>> {
        // The same package may sit at several locations: query each distinct one once.
        let mut indexes: std::collections::HashMap<rampart_vulndb::PackageRef, Vec<usize>> =
            std::collections::HashMap::new();
        let mut distinct = Vec::new();
        for (index, query) in queries.iter().enumerate() {
            let package = to_ref(query);
            let slots = indexes.entry(package.clone()).or_default();
            if slots.is_empty() {
                distinct.push(package);
            }
            slots.push(index);
        }
        let found = match &self.store_as {
            Some(id) => self.db.store_sbom(id, &distinct)?,
            None => self.db.match_packages(&distinct)?,
        };
        let mut out = Vec::new();
        for m in found {
            for &query in indexes
                .get(&m.package)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                out.push(Match {
                    query,
                    id: m.id.clone(),
                    aliases: m.aliases.clone(),
                    summary: m.summary.clone(),
                    severity: m.severity,
                    cvss_score: m.cvss_score,
                    fixed_version: m.fixed_version.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// The state of a database as a scan reports it: empty, stale (last updated more than
/// `max_age` before `now`, Unix seconds) or current.
pub fn database_status(
    path: Option<&std::path::Path>,
    freshness: Option<&rampart_vulndb::Freshness>,
    max_age: std::time::Duration,
    now: i64,
) -> crate::model::DatabaseStatus {
    use crate::model::{DatabaseState, DatabaseStatus};
    let max_age_seconds = max_age.as_secs();
    let mut status = DatabaseStatus {
        state: DatabaseState::Missing,
        path: path.map(|p| p.display().to_string()),
        advisories: 0,
        updated_at: None,
        age_seconds: None,
        max_age_seconds,
    };
    let Some(freshness) = freshness else {
        return status;
    };
    status.advisories = freshness.advisories;
    status.updated_at = freshness.updated_at.map(rfc3339);
    status.age_seconds = freshness
        .updated_at
        .map(|at| now.saturating_sub(at).max(0) as u64);
    status.state = if freshness.advisories == 0 {
        DatabaseState::Empty
    } else if status.age_seconds.is_none_or(|age| age > max_age_seconds) {
        DatabaseState::Stale
    } else {
        DatabaseState::Current
    };
    status
}

fn rfc3339(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Queries for the packages whose ecosystem is known (others cannot be matched
/// without guessing, which Rampart does not do).
pub fn queries(packages: &[Package]) -> (Vec<PackageQuery>, Vec<usize>) {
    let mut queries = Vec::new();
    let mut origin = Vec::new();
    for (index, package) in packages.iter().enumerate() {
        let Some(ecosystem) = &package.ecosystem else {
            continue;
        };
        queries.push(PackageQuery {
            ecosystem: ecosystem.clone(),
            name: package.name.clone(),
            version: package.full_version(),
            source_name: package.source_name.clone(),
            purl: package.purl.clone(),
        });
        origin.push(index);
    }
    (queries, origin)
}

/// Match every package of the report and store the findings in it.
pub fn match_report(report: &mut ScanReport, matcher: &mut dyn VulnMatcher) -> anyhow::Result<()> {
    let (queries, origin) = queries(&report.packages);
    let matches = matcher.match_packages(&queries)?;
    let mut found = Vec::with_capacity(matches.len());
    for m in matches {
        let Some(package) = origin.get(m.query).and_then(|&i| report.packages.get(i)) else {
            continue;
        };
        found.push(Vulnerability {
            id: m.id,
            aliases: m.aliases,
            summary: m.summary,
            severity: m.severity,
            cvss_score: m.cvss_score,
            fixed_version: m.fixed_version,
            purl: package.purl.clone(),
            package_name: package.name.clone(),
            package_version: package.full_version(),
            location: package.location.clone(),
            layer: package.layer.clone(),
            in_use: None,
        });
    }
    found.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.purl.cmp(&b.purl))
    });
    report.vulnerabilities = found;
    Ok(())
}
