//! Vulnerability matching hook. The database and version logic belong to
//! `rampart-vulndb`; this module turns cataloged packages into queries and matches
//! back into [`Vulnerability`] findings attributed to package, location and layer.

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
    fn match_packages(&self, queries: &[PackageQuery]) -> anyhow::Result<Vec<Match>>;
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
pub fn match_report(report: &mut ScanReport, matcher: &dyn VulnMatcher) -> anyhow::Result<()> {
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
