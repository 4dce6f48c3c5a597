//! Severity and findings: the one severity scale every part rates findings on (scanner
//! findings, vulnerability advisories), and a finding from a file-content scanner.
//!
//! Alerts keep Falco's eight-level [`Priority`](crate::Priority) on the wire (Falco
//! tooling reads it); [`Priority::severity`](crate::Priority::severity) maps it onto
//! this scale.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Qualitative severity, ordered from `Unknown` (lowest: not rated) to `Critical`.
/// Serialized in lowercase (`"high"`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The CVSS v3/v4 qualitative rating of a base score. A score of 0.0 ("None")
    /// carries no rating, so it is `Unknown`.
    pub fn from_score(score: f32) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// Maps the labels advisory databases use (GitHub's `MODERATE`, Red Hat's
    /// `Important`, Debian's `unimportant`, Ubuntu's `negligible`, …).
    pub fn from_label(label: &str) -> Option<Severity> {
        let severity = match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" | "negligible" | "unimportant" | "minor" => Severity::Low,
            _ => return None,
        };
        Some(severity)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not one of `unknown` (or `none`), `low`, `medium` (or
/// `moderate`), `high`, `critical`; holds the name as given, lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSeverityError(pub String);

impl fmt::Display for ParseSeverityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown severity {:?}: expected unknown, low, medium, high or critical",
            self.0
        )
    }
}

impl std::error::Error for ParseSeverityError {}

/// The names users type (`--fail-on high`, a YARA rule's `severity` meta), case-
/// insensitive. Advisory labels such as `important` go through
/// [`Severity::from_label`] instead.
impl FromStr for Severity {
    type Err = ParseSeverityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "unknown" | "none" => Ok(Severity::Unknown),
            "low" => Ok(Severity::Low),
            "medium" | "moderate" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(ParseSeverityError(other.to_string())),
        }
    }
}

/// A finding from a file-content scanner (secrets, malware) in an image, a directory
/// or a container. `excerpt` is already redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    pub rule_id: String,
    /// `secret` or `malware`.
    pub kind: String,
    pub description: String,
    pub severity: Severity,
    pub path: String,
    #[serde(default)]
    pub line: u32,
    #[serde(default)]
    pub excerpt: String,
    /// Image layer (diff id) holding the file, for image scans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Priority;

    #[test]
    fn names_round_trip_and_order_runs_low_to_high() {
        for s in [
            Severity::Unknown,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(Severity::Unknown < Severity::Low && Severity::High < Severity::Critical);
        assert_eq!("None".parse::<Severity>(), Ok(Severity::Unknown));
        assert_eq!(
            "Severe".parse::<Severity>().unwrap_err().to_string(),
            "unknown severity \"severe\": expected unknown, low, medium, high or critical"
        );
        assert_eq!(Severity::from_label(" Important "), Some(Severity::High));
        assert_eq!(Severity::from_label("unknown"), None);
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_score(0.0), Severity::Unknown);
    }

    #[test]
    fn every_priority_has_a_severity_and_the_order_is_kept() {
        let severities: Vec<Severity> = Priority::ALL.iter().map(|p| p.severity()).collect();
        assert_eq!(
            severities,
            [
                Severity::Critical,
                Severity::Critical,
                Severity::Critical,
                Severity::High,
                Severity::Medium,
                Severity::Low,
                Severity::Unknown,
                Severity::Unknown,
            ]
        );
        // Priorities run most severe first; their severities never rise along them.
        assert!(severities.windows(2).all(|w| w[0] >= w[1]));
    }
}
