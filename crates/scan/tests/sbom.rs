//! CycloneDX 1.6, SPDX 2.3 and SARIF 2.1.0 output validated against the official JSON schemas
//! (tests/schemas/), on a scan of a root filesystem built from this machine's files.

mod common;

#[path = "common/osv.rs"]
mod osv;

use common::*;
use rampart_scan::output::{render, Format};
use rampart_scan::scanner::{scan, ScanOptions, Target};
use serde_json::Value;

fn schema(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemas/").to_string() + name;
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, document: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .take(10)
        .collect();
    assert!(
        errors.is_empty(),
        "{what} fails its schema:\n{}",
        errors.join("\n")
    );
}

fn report() -> rampart_scan::ScanReport {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut files = vec![
        (
            "etc/os-release".to_string(),
            std::fs::read("/etc/os-release").unwrap(),
        ),
        (
            "var/lib/dpkg/status".to_string(),
            std::fs::read("/var/lib/dpkg/status").unwrap(),
        ),
        (
            "var/lib/rpm/Packages".to_string(),
            std::fs::read(fixtures().join("pkgdb/rpm/libuuid-bdb/Packages")).unwrap(),
        ),
        (
            "app/node_modules/@scope/pkg/package.json".to_string(),
            br#"{"name":"@scope/pkg","version":"2.0.0","license":"MIT"}"#.to_vec(),
        ),
    ];
    for entry in std::fs::read_dir("/usr/lib/python3/dist-packages")
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".dist-info") {
            if let Ok(data) = std::fs::read(entry.path().join("METADATA")) {
                files.push((
                    format!("usr/lib/python3/dist-packages/{name}/METADATA"),
                    data,
                ));
            }
        }
    }
    write_tree(root, &files);
    let mut report = scan(
        &Target::Directory(root.to_path_buf()),
        "rootfs-test",
        &ScanOptions::default(),
    )
    .unwrap();
    let names: Vec<String> = report
        .packages
        .iter()
        .filter(|p| p.ecosystem.as_deref() == Some("PyPI"))
        .map(|p| p.name.clone())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut matcher = osv::ListedVersionsMatcher::pypi(&names);
    rampart_scan::vuln::match_report(&mut report, &mut matcher).unwrap();
    // A stale database: its state and warning go into every format and must keep
    // each schema-valid.
    report.database = Some(rampart_scan::vuln::database_status(
        Some(std::path::Path::new("/var/lib/rampart/vuln.db")),
        Some(&rampart_vulndb::Freshness {
            advisories: 10,
            updated_at: Some(1_700_000_000),
        }),
        std::time::Duration::from_secs(7 * 86_400),
        1_800_000_000,
    ));
    report
}

#[test]
fn cyclonedx_1_6_is_schema_valid() {
    let report = report();
    assert!(report.packages.len() > 50);
    let validator = jsonschema::options()
        .with_resource(
            "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
            jsonschema::Resource::from_contents(schema("spdx.SNAPSHOT.schema.json")).unwrap(),
        )
        .with_resource(
            "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
            jsonschema::Resource::from_contents(schema("jsf-0.82.SNAPSHOT.schema.json")).unwrap(),
        )
        .build(&schema("bom-1.6.SNAPSHOT.schema.json"))
        .unwrap();
    let document: Value =
        serde_json::from_str(&render(&report, Format::Cyclonedx).unwrap()).unwrap();
    assert_valid(&validator, &document, "CycloneDX");
    let components = document["components"].as_array().unwrap();
    // One component per package plus the operating system.
    assert_eq!(components.len(), report.packages.len() + 1);
    assert!(components
        .iter()
        .any(|c| c["purl"] == "pkg:npm/%40scope/pkg@2.0.0"));
    assert!(components.iter().any(|c| c["purl"]
        .as_str()
        .is_some_and(|p| p.starts_with("pkg:rpm/"))));
    // The validator is not vacuous: a broken document fails.
    let mut broken = document.clone();
    broken["components"][0]["type"] = "not-a-type".into();
    assert!(!validator.is_valid(&broken));
    if !report.vulnerabilities.is_empty() {
        let vulnerabilities = document["vulnerabilities"].as_array().unwrap();
        assert_eq!(vulnerabilities.len(), report.vulnerabilities.len());
        assert!(vulnerabilities
            .iter()
            .all(|v| !v["affects"].as_array().unwrap().is_empty()));
    }
}

#[test]
fn spdx_2_3_is_schema_valid() {
    let report = report();
    let validator = jsonschema::validator_for(&schema("spdx-2.3.schema.json")).unwrap();
    let document: Value = serde_json::from_str(&render(&report, Format::Spdx).unwrap()).unwrap();
    assert_valid(&validator, &document, "SPDX");
    let packages = document["packages"].as_array().unwrap();
    assert_eq!(packages.len(), report.packages.len() + 2); // + root + OS
    let ids: std::collections::HashSet<&str> = packages
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), packages.len(), "SPDX ids are unique");
    assert!(ids.iter().all(|id| id.starts_with("SPDXRef-")
        && id[8..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')));
    let mut broken = document.clone();
    broken.as_object_mut().unwrap().remove("creationInfo");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn sarif_has_what_code_scanning_needs() {
    let report = report();
    assert!(
        !report.vulnerabilities.is_empty(),
        "this machine's Python packages have listed advisories"
    );
    let document: Value = serde_json::from_str(&render(&report, Format::Sarif).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema("sarif-2.1.0.schema.json")).unwrap();
    assert_valid(&validator, &document, "SARIF");
    let mut broken = document.clone();
    broken["runs"][0]["results"] = serde_json::json!([{"level": "fatal"}]);
    assert!(!validator.is_valid(&broken));
    assert_eq!(document["version"], "2.1.0");
    let run = &document["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        report.vulnerabilities.len() + report.content_findings.len()
    );
    for result in results {
        let id = result["ruleId"].as_str().unwrap();
        assert!(rules.iter().any(|r| r["id"] == id));
        assert!(result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
    }
    for rule in rules {
        let severity: f32 = rule["properties"]["security-severity"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((0.0..=10.0).contains(&severity));
    }
}
