//! SARIF 2.1.0 for GitHub code scanning: one rule per vulnerability or secret rule,
//! one result per affected package or finding, with `security-severity` set.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{TOOL_NAME, TOOL_VERSION};
use crate::model::{ScanReport, Severity};

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Unknown => "note",
    }
}

/// GitHub maps `security-severity` to critical (≥9), high (≥7), medium (≥4), low.
fn security_severity(severity: Severity, score: Option<f32>) -> String {
    let value = score.unwrap_or(match severity {
        Severity::Critical => 9.5,
        Severity::High => 8.0,
        Severity::Medium => 5.5,
        Severity::Low => 2.0,
        Severity::Unknown => 0.0,
    });
    format!("{value:.1}")
}

fn location(path: &str, line: u32) -> Value {
    // Nested archive members (a.jar!/b.jar) are reported at the outer file.
    let uri = path.split("!/").next().unwrap_or(path);
    json!({"physicalLocation": {
        "artifactLocation": {"uri": uri},
        "region": {"startLine": line.max(1)},
    }})
}

pub fn document(report: &ScanReport) -> Value {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    let mut results = Vec::new();
    for v in &report.vulnerabilities {
        rules.entry(v.id.clone()).or_insert_with(|| {
            json!({
                "id": v.id,
                "name": "VulnerablePackage",
                "shortDescription": {"text": if v.summary.is_empty() { v.id.clone() } else { v.summary.clone() }},
                "fullDescription": {"text": format!("{} {}", v.id, v.aliases.join(" "))},
                "helpUri": format!("https://osv.dev/vulnerability/{}", v.id),
                "help": {"text": match &v.fixed_version {
                    Some(fixed) => format!("Upgrade to a fixed version ({fixed})."),
                    None => "No fixed version is known.".to_string(),
                }},
                "properties": {
                    "security-severity": security_severity(v.severity, v.cvss_score),
                    "tags": ["security", "vulnerability"],
                },
            })
        });
        let mut text = format!(
            "{} {} is affected by {}",
            v.package_name, v.package_version, v.id
        );
        if let Some(fixed) = &v.fixed_version {
            text.push_str(&format!("; fixed in {fixed}"));
        }
        if let Some(layer) = &v.layer {
            text.push_str(&format!(" (introduced in layer {layer})"));
        }
        results.push(json!({
            "ruleId": v.id,
            "level": level(v.severity),
            "message": {"text": text},
            "locations": [location(&v.location, 1)],
            "partialFingerprints": {"packageVulnerability": format!("{}|{}|{}", v.id, v.purl, v.location)},
        }));
    }
    for f in &report.content_findings {
        rules.entry(f.rule_id.clone()).or_insert_with(|| {
            json!({
                "id": f.rule_id,
                "name": f.kind,
                "shortDescription": {"text": f.description},
                "properties": {
                    "security-severity": security_severity(f.severity, None),
                    "tags": ["security", f.kind],
                },
            })
        });
        results.push(json!({
            "ruleId": f.rule_id,
            "level": level(f.severity),
            "message": {"text": format!("{}: {}", f.description, f.excerpt)},
            "locations": [location(&f.path, f.line)],
        }));
    }
    let mut run = json!({
        "tool": {"driver": {
            "name": TOOL_NAME,
            "version": TOOL_VERSION,
            "informationUri": "https://github.com/rampart-security/rampart",
            "rules": rules.into_values().collect::<Vec<_>>(),
        }},
        "results": results,
    });
    if let Some(database) = &report.database {
        // The database's state rides on the run; a warning notification says when
        // nothing (or old data) was checked, so viewers show it next to the results.
        run["properties"] = json!({"rampart:database": database});
        let notifications: Vec<Value> = database
            .warning()
            .map(|text| json!({"level": "warning", "message": {"text": text}}))
            .into_iter()
            .collect();
        run["invocations"] = json!([{
            "executionSuccessful": true,
            "toolExecutionNotifications": notifications,
        }]);
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    })
}
