//! The ignore file: accepted risks, each with a reason and an expiry date.
//!
//! ```yaml
//! ignore:
//!   - id: CVE-2023-4863          # vulnerability id or alias, or a secret rule id
//!     package: libwebp7          # optional: package name, purl prefix, or file path
//!     reason: not reachable, image renders no WebP
//!     expires: 2025-06-30
//! ```
//! An expired entry no longer suppresses anything and is reported as a warning.

use serde::Deserialize;
use time::Date;

use crate::model::ScanReport;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreRule {
    pub id: String,
    pub package: Option<String>,
    pub reason: String,
    pub expires: Date,
}

#[derive(Debug, thiserror::Error)]
pub enum IgnoreFileError {
    #[error("{path}: invalid YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{path}: entry {index}: {message}")]
    Entry {
        path: String,
        index: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileShape {
    Wrapped { ignore: Vec<RawRule> },
    List(Vec<RawRule>),
}

#[derive(Deserialize)]
struct RawRule {
    id: Option<String>,
    package: Option<String>,
    reason: Option<String>,
    expires: Option<String>,
}

/// Parse an ignore file's text; `path` is used in error messages.
pub fn parse(path: &str, text: &str) -> Result<Vec<IgnoreRule>, IgnoreFileError> {
    let shape: FileShape = yaml_serde::from_str(text).map_err(|e| IgnoreFileError::Yaml {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    let raw = match shape {
        FileShape::Wrapped { ignore } => ignore,
        FileShape::List(list) => list,
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    raw.into_iter()
        .enumerate()
        .map(|(index, rule)| {
            let entry_error = |message: &str| IgnoreFileError::Entry {
                path: path.to_string(),
                index: index + 1,
                message: message.to_string(),
            };
            let id = rule
                .id
                .filter(|s| !s.is_empty())
                .ok_or_else(|| entry_error("missing `id`"))?;
            let reason = rule
                .reason
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| entry_error("missing `reason`: say why the risk is accepted"))?;
            let expires_text = rule.expires.ok_or_else(|| {
                entry_error("missing `expires` (YYYY-MM-DD): accepted risks must expire")
            })?;
            let expires = Date::parse(expires_text.trim(), &format).map_err(|_| {
                entry_error(&format!(
                    "`expires: {expires_text}` is not a date of the form YYYY-MM-DD"
                ))
            })?;
            Ok(IgnoreRule {
                id,
                package: rule.package,
                reason,
                expires,
            })
        })
        .collect()
}

fn package_matches(selector: &Option<String>, name: &str, purl: &str, location: &str) -> bool {
    match selector {
        None => true,
        Some(s) => s == name || purl.starts_with(s.as_str()) || s == location,
    }
}

/// Outcome of applying ignore rules.
#[derive(Debug, Default)]
pub struct Applied {
    pub suppressed: usize,
    /// Human-readable warnings about expired entries.
    pub expired: Vec<String>,
}

/// Remove findings matched by unexpired rules, as of `today`.
pub fn apply(report: &mut ScanReport, rules: &[IgnoreRule], today: Date) -> Applied {
    let mut applied = Applied::default();
    let (active, expired): (Vec<&IgnoreRule>, Vec<&IgnoreRule>) =
        rules.iter().partition(|r| r.expires >= today);
    for rule in expired {
        applied.expired.push(format!(
            "ignore entry for {} expired on {} and no longer suppresses it (reason was: {})",
            rule.id, rule.expires, rule.reason
        ));
    }
    let before = report.vulnerabilities.len() + report.content_findings.len();
    report.vulnerabilities.retain(|v| {
        !active.iter().any(|r| {
            (r.id == v.id || v.aliases.iter().any(|a| a == &r.id))
                && package_matches(&r.package, &v.package_name, &v.purl, &v.location)
        })
    });
    report.content_findings.retain(|f| {
        !active
            .iter()
            .any(|r| r.id == f.rule_id && package_matches(&r.package, &f.path, "", &f.path))
    });
    applied.suppressed = before - report.vulnerabilities.len() - report.content_findings.len();
    applied
}

/// Today's date in UTC.
pub fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}
