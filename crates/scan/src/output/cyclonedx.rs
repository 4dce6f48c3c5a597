//! CycloneDX 1.6 JSON.

use serde_json::{json, Value};

use super::{timestamp_now, TOOL_NAME, TOOL_VERSION};
use crate::model::{Package, ScanReport, Severity};

fn bom_ref(index: usize, package: &Package) -> String {
    format!("pkg-{index}-{}", package.purl)
}

fn component(index: usize, package: &Package) -> Value {
    let (group, name) = match package.name.split_once(':') {
        Some((group, artifact)) if package.kind == crate::model::PackageKind::Maven => {
            (Some(group), artifact)
        }
        _ => (None, package.name.as_str()),
    };
    let mut properties = vec![
        json!({"name": "rampart:package:type", "value": package.kind.as_str()}),
        json!({"name": "rampart:location", "value": package.location}),
    ];
    if let Some(layer) = &package.layer {
        properties.push(json!({"name": "rampart:layer:diff_id", "value": layer}));
    }
    if let Some(source) = &package.source_name {
        properties.push(json!({"name": "rampart:package:source_name", "value": source}));
    }
    let mut component = json!({
        "type": "library",
        "bom-ref": bom_ref(index, package),
        "name": name,
        "version": package.full_version(),
        "purl": package.purl,
        "properties": properties,
    });
    if let Some(group) = group {
        component["group"] = json!(group);
    }
    if !package.licenses.is_empty() {
        component["licenses"] = Value::Array(
            package
                .licenses
                .iter()
                .map(|l| json!({"license": {"name": l}}))
                .collect(),
        );
    }
    component
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Unknown => "unknown",
        other => other.as_str(),
    }
}

/// The CycloneDX document for a report (vulnerabilities included when matched).
pub fn document(report: &ScanReport) -> Value {
    let mut components: Vec<Value> = Vec::new();
    if let Some(os) = &report.os {
        components.push(json!({
            "type": "operating-system",
            "bom-ref": "os",
            "name": os.id,
            "version": os.version_id,
            "description": os.pretty_name,
        }));
    }
    components.extend(
        report
            .packages
            .iter()
            .enumerate()
            .map(|(i, p)| component(i, p)),
    );
    let metadata_component = json!({
        "type": if report.target.kind == "image" { "container" } else { "file" },
        "bom-ref": "target",
        "name": report.target.name,
        "version": report.target.image_id.clone().unwrap_or_default(),
    });
    let mut document = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": timestamp_now(),
            "tools": {"components": [{"type": "application", "name": TOOL_NAME, "version": TOOL_VERSION}]},
            "component": metadata_component,
        },
        "components": components,
    });
    if let Some(database) = &report.database {
        let mut properties = vec![
            json!({"name": "rampart:database:state", "value": database.state.as_str()}),
            json!({"name": "rampart:database:advisories", "value": database.advisories.to_string()}),
        ];
        if let Some(updated_at) = &database.updated_at {
            properties.push(json!({"name": "rampart:database:updated_at", "value": updated_at}));
        }
        if let Some(warning) = database.warning() {
            properties.push(json!({"name": "rampart:database:warning", "value": warning}));
        }
        document["metadata"]["properties"] = Value::Array(properties);
    }
    if !report.vulnerabilities.is_empty() {
        let vulnerabilities: Vec<Value> = report
            .vulnerabilities
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let affected: Vec<Value> = report
                    .packages
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.purl == v.purl && p.location == v.location)
                    .map(|(index, p)| json!({"ref": bom_ref(index, p)}))
                    .collect();
                let mut rating = json!({"severity": severity_name(v.severity)});
                if let Some(score) = v.cvss_score {
                    rating["score"] = json!(score);
                }
                let mut entry = json!({
                    "bom-ref": format!("vuln-{i}"),
                    "id": v.id,
                    "source": {"name": "OSV"},
                    "ratings": [rating],
                    "description": v.summary,
                    "affects": affected,
                });
                if let Some(fixed) = &v.fixed_version {
                    entry["recommendation"] =
                        json!(format!("Upgrade {} to {fixed}", v.package_name));
                }
                if !v.aliases.is_empty() {
                    entry["references"] = Value::Array(
                        v.aliases
                            .iter()
                            .map(|a| json!({"id": a, "source": {"name": "alias"}}))
                            .collect(),
                    );
                }
                entry
            })
            .collect();
        document["vulnerabilities"] = Value::Array(vulnerabilities);
    }
    document
}
