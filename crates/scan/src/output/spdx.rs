//! SPDX 2.3 JSON.

use serde_json::{json, Value};

use super::{timestamp_now, TOOL_NAME, TOOL_VERSION};
use crate::model::ScanReport;

/// SPDX identifiers allow letters, digits, `.` and `-` only.
fn spdx_id_part(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub fn document(report: &ScanReport) -> Value {
    let root_id = "SPDXRef-Root";
    let mut packages = vec![json!({
        "name": report.target.name,
        "SPDXID": root_id,
        "versionInfo": report.target.image_id.clone().unwrap_or_default(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": if report.target.kind == "image" { "CONTAINER" } else { "SOURCE" },
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root_id,
    })];
    if let Some(os) = &report.os {
        packages.push(json!({
            "name": os.id,
            "SPDXID": "SPDXRef-OperatingSystem",
            "versionInfo": os.version_id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "OPERATING_SYSTEM",
            "description": os.pretty_name,
        }));
        relationships.push(json!({
            "spdxElementId": root_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-OperatingSystem",
        }));
    }
    for (index, package) in report.packages.iter().enumerate() {
        let id = format!(
            "SPDXRef-Package-{}-{index}",
            spdx_id_part(package.kind.as_str())
        );
        let mut source_info = format!("acquired package info from {}", package.location);
        if let Some(layer) = &package.layer {
            source_info.push_str(&format!(" in layer {layer}"));
        }
        let mut entry = json!({
            "name": package.name,
            "SPDXID": id,
            "versionInfo": package.full_version(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": source_info,
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": package.purl,
            }],
        });
        if !package.licenses.is_empty() {
            // Declared licence text is not guaranteed to be a valid SPDX expression.
            entry["licenseComments"] = json!(format!("declared: {}", package.licenses.join(", ")));
        }
        packages.push(entry);
        relationships.push(json!({
            "spdxElementId": root_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    let name = if report.target.name.is_empty() {
        "scan"
    } else {
        report.target.name.as_str()
    };
    let mut creation_info = json!({
        "created": timestamp_now(),
        "creators": [format!("Tool: {TOOL_NAME}-{TOOL_VERSION}")],
    });
    if let Some(database) = &report.database {
        // SPDX has no vulnerability section: the database's state goes in the creation
        // comment, where a reader of the SBOM looks for how it was made.
        creation_info["comment"] = Value::String(match database.warning() {
            Some(warning) => format!(
                "vulnerability database {}: {warning}",
                database.state.as_str()
            ),
            None => format!(
                "vulnerability database current: {} advisories, updated {}",
                database.advisories,
                database.updated_at.as_deref().unwrap_or("never")
            ),
        });
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://rampart.invalid/spdx/{}-{}", spdx_id_part(name), uuid::Uuid::new_v4()),
        "creationInfo": creation_info,
        "packages": packages,
        "relationships": relationships,
    })
}
