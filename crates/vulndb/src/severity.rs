//! Severity of an advisory: a CVSS base score computed from the vectors the record
//! carries (v2, v3.0, v3.1, v4.0), else the database's own label, on the one
//! [`Severity`] scale of `rampart-event`.

use std::str::FromStr;

pub use rampart_event::{ParseSeverityError, Severity};

use crate::osv::{OsvRecord, OsvSeverity};

/// Base score of a CVSS vector string (`CVSS:3.1/AV:N/…`, `CVSS:4.0/…`, or a bare v2
/// vector). `None` when the vector does not parse.
pub fn cvss_base_score(vector: &str) -> Option<f32> {
    let vector = vector.trim();
    let parsed = cvss::Cvss::from_str(vector).ok().or_else(|| {
        cvss::v2::Vector::from_str(vector)
            .ok()
            .map(cvss::Cvss::CvssV20)
    })?;
    Some(parsed.score() as f32)
}

fn scores_of(entries: &[OsvSeverity]) -> impl Iterator<Item = f32> + '_ {
    entries
        .iter()
        .filter(|s| s.kind.starts_with("CVSS"))
        .filter_map(|s| cvss_base_score(&s.score))
}

fn label_in(value: Option<&serde_json::Value>) -> Option<Severity> {
    let object = value?.as_object()?;
    ["severity", "urgency", "ubuntu_priority"]
        .iter()
        .filter_map(|key| object.get(*key)?.as_str())
        .find_map(Severity::from_label)
}

/// The severity of a record and the highest CVSS base score it carries.
pub fn assess(record: &OsvRecord) -> (Severity, Option<f32>) {
    let mut best: Option<f32> = None;
    let mut consider = |score: f32| {
        if best.is_none_or(|b| score > b) {
            best = Some(score);
        }
    };
    scores_of(&record.severity).for_each(&mut consider);
    for affected in &record.affected {
        scores_of(&affected.severity).for_each(&mut consider);
    }
    // RustSec puts its vector in database_specific.cvss.
    if let Some(score) = record
        .database_specific
        .as_ref()
        .and_then(|d| d.get("cvss"))
        .and_then(|v| v.as_str())
        .and_then(cvss_base_score)
    {
        consider(score);
    }
    if let Some(score) = best {
        return (Severity::from_score(score), Some(score));
    }
    let label = label_in(record.database_specific.as_ref())
        .into_iter()
        .chain(record.affected.iter().flat_map(|a| {
            label_in(a.ecosystem_specific.as_ref())
                .into_iter()
                .chain(label_in(a.database_specific.as_ref()))
        }));
    (label.max().unwrap_or(Severity::Unknown), None)
}
