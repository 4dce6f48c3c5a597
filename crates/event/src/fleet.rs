//! What a node reports about itself to central beside its alerts: the rules and the
//! response policy it runs (at start and on every reload), its sensor's health
//! (periodically) and its scan results (per container, as they change). Central keeps
//! the newest report of each [`NodeReport::key`] per node; an older one arriving late
//! (a redelivery) changes nothing.

use serde::{Deserialize, Serialize};

use crate::Severity;

/// One report; the bus carries it as a record of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeReport {
    Rules(RulesReport),
    Health(HealthReport),
    Scan(ScanReport),
}

impl NodeReport {
    /// When the node made it.
    pub fn ts_ns(&self) -> u64 {
        match self {
            Self::Rules(r) => r.ts_ns,
            Self::Health(r) => r.ts_ns,
            Self::Scan(r) => r.ts_ns,
        }
    }

    /// `rules`, `health` or `scan`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rules(_) => "rules",
            Self::Health(_) => "health",
            Self::Scan(_) => "scan",
        }
    }

    /// What a newer report replaces: one rules and one health report per node, one
    /// scan result per node and target.
    pub fn key(&self) -> String {
        match self {
            Self::Scan(s) => format!("scan:{}", s.target),
            other => other.kind().to_string(),
        }
    }
}

/// The rules a node runs and its response policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesReport {
    pub ts_ns: u64,
    pub rules: Vec<RuleInfo>,
    /// Rules that did not load, `file:line:col: message`.
    #[serde(default)]
    pub load_errors: Vec<String>,
    /// The response policy in force, if any.
    #[serde(default)]
    pub policy: Option<PolicyInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    pub name: String,
    /// Falco's name (`WARNING`, `CRITICAL`…).
    pub priority: String,
    #[serde(default)]
    pub mitre: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub enabled: bool,
    /// The rules file it came from, as the node names it.
    pub source_file: String,
}

/// A response policy file, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Its file name.
    pub name: String,
    pub yaml: String,
}

/// The sensor's health: where hooks attached, what was lost where, how far the
/// node's recorder and bus are behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub ts_ns: u64,
    pub version: String,
    pub kernel: String,
    #[serde(default)]
    pub hooks: Vec<HookInfo>,
    /// Per source: `kernel_ring_full`, `queue`, `recorder_shed`, `spool`…
    #[serde(default)]
    pub drops: Vec<DropInfo>,
    /// Bus messages waiting in the node's spool.
    #[serde(default)]
    pub bus_queued: u64,
    /// How long the oldest of them has waited, ns (0: none waits).
    #[serde(default)]
    pub bus_lag_ns: u64,
    /// How far the flight recorder's writer is behind: how long the oldest record
    /// waiting for it has waited, ns (0: it keeps up, or the node records nothing).
    #[serde(default)]
    pub recorder_lag_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookInfo {
    pub name: String,
    /// `tracepoint`, `fexit`, `raw_tracepoint`…
    pub kind: String,
    pub attached: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropInfo {
    pub source: String,
    pub count: u64,
}

/// A running container's scan: its image's packages and findings, each finding
/// with whether the container loaded the package's files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    pub ts_ns: u64,
    /// `container:<id>`.
    pub target: String,
    pub image: String,
    pub image_id: String,
    #[serde(default)]
    pub container_name: String,
    pub packages: u64,
    #[serde(default)]
    pub secrets: u64,
    #[serde(default)]
    pub malware: u64,
    pub vulnerabilities: Vec<VulnFinding>,
    /// The image's SBOM, CycloneDX 1.6 JSON text (absent when over the size bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_cyclonedx: Option<String>,
    /// The same as SPDX 2.3 JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom_spdx: Option<String>,
    /// When the node's vulnerability database was last updated (ns; 0: unknown).
    #[serde(default)]
    pub db_updated_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VulnFinding {
    /// OSV id.
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub package: String,
    pub version: String,
    #[serde(default)]
    pub ecosystem: String,
    #[serde(default)]
    pub fixed_version: Option<String>,
    pub severity: Severity,
    #[serde(default)]
    pub summary: String,
    /// The container loaded the package's files: true, false, or unknown (None).
    #[serde(default)]
    pub in_use: Option<bool>,
    /// The image layer that introduced the package: its diff id, its position (0 is
    /// the base) and the Dockerfile command that made it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_index: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_command: Option<String>,
    /// When the node first found it (ns; 0: unknown).
    #[serde(default)]
    pub first_seen_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_key_by_kind_and_target() {
        let scan = NodeReport::Scan(ScanReport {
            ts_ns: 7,
            target: "container:abc".into(),
            vulnerabilities: vec![VulnFinding {
                id: "CVE-1".into(),
                severity: Severity::High,
                in_use: Some(true),
                ..Default::default()
            }],
            ..Default::default()
        });
        let j = serde_json::to_string(&scan).unwrap();
        assert!(j.contains("\"kind\":\"scan\""), "{j}");
        assert_eq!(serde_json::from_str::<NodeReport>(&j).unwrap(), scan);
        assert_eq!(scan.key(), "scan:container:abc");
        assert_eq!(scan.ts_ns(), 7);
        let rules = NodeReport::Rules(RulesReport::default());
        assert_eq!((rules.key().as_str(), rules.kind()), ("rules", "rules"));
    }
}
