//! A deliberately simple matcher for tests: an OSV record affects a package when the
//! record's `affected[].versions` list names the package's exact version. It reads the
//! real PyPI advisories in shared/fixtures; the real matcher is rampart-vulndb's.

use rampart_scan::model::Severity;
use rampart_scan::vuln::{Match, PackageQuery, VulnMatcher};

pub struct ListedVersionsMatcher {
    records: Vec<serde_json::Value>,
}

impl ListedVersionsMatcher {
    /// Load the PyPI advisories that mention any of `names`.
    pub fn pypi(names: &[&str]) -> Self {
        let dir = super::fixtures().join("advisories/pypi");
        let mut records = Vec::new();
        let mut stack = vec![dir];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                if !names.iter().any(|n| text.contains(&format!("name: {n}\n"))) {
                    continue;
                }
                let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
                records.push(value);
            }
        }
        ListedVersionsMatcher { records }
    }
}

impl VulnMatcher for ListedVersionsMatcher {
    fn match_packages(&mut self, queries: &[PackageQuery]) -> anyhow::Result<Vec<Match>> {
        let mut out = Vec::new();
        for (index, query) in queries.iter().enumerate() {
            for record in &self.records {
                let hit = record["affected"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| {
                        a["package"]["ecosystem"] == query.ecosystem.as_str()
                            && a["package"]["name"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(&query.name))
                            && a["versions"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|v| v == query.version.as_str())
                    });
                if hit {
                    out.push(Match {
                        query: index,
                        id: record["id"].as_str().unwrap_or_default().to_string(),
                        aliases: record["aliases"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a.as_str().map(str::to_string))
                            .collect(),
                        summary: record["details"]
                            .as_str()
                            .unwrap_or_default()
                            .chars()
                            .take(120)
                            .collect(),
                        severity: Severity::High,
                        cvss_score: None,
                        fixed_version: None,
                    });
                }
            }
        }
        Ok(out)
    }
}
