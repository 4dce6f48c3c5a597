//! A `rampart scan` run as a library job (`rampart_scan::run_job`): formats, output,
//! the fail-on threshold, the ignore file with expiry, and secrets redaction. The
//! binary's argument parsing is tested in the `rampart` crate's `scan_cli.rs`.

mod common;

use common::{args, run};

// Built at run time so the source holds no literal token.
fn token() -> String {
    format!("ghp_{}", "Zx8Kq2Lm9Rt4Vw7Yb3Nc6Hd1Jf5Gs0Pa8Ue2")
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "requests==2.19.0\n").unwrap();
    let script = dir.path().join("deploy.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexport GITHUB_TOKEN={}\n", token()),
    )
    .unwrap();
    // Executable: scripts are content-scanned even though they are not ELF.
    let mut permissions = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).unwrap();
    dir
}

#[test]
fn json_output_secrets_and_fail_on() {
    let dir = project();
    let out = dir.path().join("report.json");
    let target = dir.path().to_str().unwrap();
    let code = run(args(&[
        target,
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
        "--fail-on",
        "high",
        "--no-cache",
    ]))
    .unwrap();
    assert_eq!(code, 1, "a high-severity secret trips --fail-on high");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains(&token()), "secrets are redacted in output");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["packages"][0]["purl"], "pkg:pypi/requests@2.19.0");
    let findings = report["content_findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["rule_id"] == "github-pat" && f["path"] == "deploy.sh" && f["line"] == 2),
        "{findings:?}"
    );

    // Without secrets there is nothing at or above high.
    let code = run(args(&[
        target,
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
        "--fail-on",
        "high",
        "--no-secrets",
        "--no-cache",
        "--allow-empty-db",
    ]))
    .unwrap();
    assert_eq!(code, 0);
}

/// Past the first 8 KiB: a token in a long text file is found (read whole); one in a
/// binary file is not (binary files get path rules only, and are not held in memory).
#[test]
fn secrets_beyond_the_head_of_text_files_are_found_not_in_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    let filler = "# nothing to see here, just configuration comments\n".repeat(400);
    let line = format!("export GITHUB_TOKEN={}\n", token());
    std::fs::write(dir.path().join("settings.conf"), format!("{filler}{line}")).unwrap();
    let binary = [b"\0\0\0\0".as_slice(), filler.as_bytes(), line.as_bytes()].concat();
    std::fs::write(dir.path().join("cache.idx"), binary).unwrap();
    let out = dir.path().join("report.json");
    run(args(&[
        dir.path().to_str().unwrap(),
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
    ]))
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let paths: Vec<&str> = report["content_findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "github-pat")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["settings.conf"]);
}

#[test]
fn ignore_file_suppresses_until_it_expires() {
    let dir = project();
    let target = dir.path().to_str().unwrap();
    let out = dir.path().join("out.sarif");
    let ignore = dir.path().join("ignore.yaml");
    std::fs::write(&ignore, "ignore:\n  - id: github-pat\n    package: deploy.sh\n    reason: test token, revoked\n    expires: 2999-01-01\n").unwrap();
    let code = run(args(&[
        target,
        "--format",
        "sarif",
        "-o",
        out.to_str().unwrap(),
        "--fail-on",
        "low",
        "--ignore-file",
        ignore.to_str().unwrap(),
        "--no-cache",
        "--allow-empty-db",
    ]))
    .unwrap();
    assert_eq!(code, 0, "the accepted risk is suppressed");
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 0);

    std::fs::write(
        &ignore,
        "ignore:\n  - id: github-pat\n    reason: test token\n    expires: 2001-01-01\n",
    )
    .unwrap();
    let code = run(args(&[
        target,
        "--format",
        "sarif",
        "-o",
        out.to_str().unwrap(),
        "--fail-on",
        "low",
        "--ignore-file",
        ignore.to_str().unwrap(),
        "--no-cache",
        "--allow-empty-db",
    ]))
    .unwrap();
    assert_eq!(code, 1, "an expired entry no longer suppresses");

    std::fs::write(
        &ignore,
        "ignore:\n  - id: github-pat\n    expires: 2999-01-01\n",
    )
    .unwrap();
    let error = run(args(&[
        target,
        "--ignore-file",
        ignore.to_str().unwrap(),
        "--no-cache",
        "--allow-empty-db",
    ]))
    .unwrap_err();
    assert!(
        format!("{error:#}").contains("entry 1: missing `reason`"),
        "{error:#}"
    );
}

#[test]
fn every_format_renders_and_bad_targets_fail_clearly() {
    let dir = project();
    let target = dir.path().to_str().unwrap();
    for format in ["table", "json", "sarif", "cyclonedx", "spdx"] {
        let out = dir.path().join(format!("out.{format}"));
        assert_eq!(
            run(args(&[
                target,
                "--format",
                format,
                "-o",
                out.to_str().unwrap(),
                "--no-cache"
            ]))
            .unwrap(),
            0
        );
        let text = std::fs::read_to_string(&out).unwrap();
        // SARIF carries findings only; the other formats list the package.
        let expected = if format == "sarif" {
            "\"2.1.0\""
        } else {
            "requests"
        };
        assert!(text.contains(expected), "{format}: {text}");
    }
    let missing = dir.path().join("no-such-image.tar");
    std::fs::write(&missing, b"not a tar at all").unwrap();
    let error = run(args(&[missing.to_str().unwrap(), "--no-cache"])).unwrap_err();
    assert!(
        format!("{error:#}").contains("no-such-image.tar"),
        "{error:#}"
    );
}

/// Import real OSV records (the PyPI advisories for `requests`) with rampart-vulndb and
/// match through `--db`: the vulnerable pin is reported, the fixed one is not.
#[test]
fn vulnerabilities_from_an_imported_osv_database() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("vuln.db");
    let mut db = rampart_vulndb::VulnDb::open(&db_path).unwrap();
    let imported = db
        .import(common::fixtures().join("advisories/pypi/vulns/requests"))
        .unwrap();
    assert!(imported.added > 3);
    drop(db);

    let vulnerable = project();
    let out = dir.path().join("vulnerable.json");
    let code = run(args(&[
        vulnerable.path().to_str().unwrap(),
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "--db",
        db_path.to_str().unwrap(),
        "--store-sbom",
        "--no-secrets",
        "--no-cache",
        "--fail-on",
        "medium",
    ]))
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ids: Vec<&str> = report["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"PYSEC-2018-28"),
        "requests 2.19.0 is affected by PYSEC-2018-28: {ids:?}"
    );
    assert!(report["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["purl"] == "pkg:pypi/requests@2.19.0"));
    let worst = report["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["severity"]
                .as_str()
                .unwrap()
                .parse::<rampart_scan::Severity>()
                .unwrap()
        })
        .max()
        .unwrap();
    assert_eq!(code, i32::from(worst >= rampart_scan::Severity::Medium));

    let fixed = tempfile::tempdir().unwrap();
    std::fs::write(fixed.path().join("requirements.txt"), "requests==2.32.3\n").unwrap();
    let out = dir.path().join("fixed.json");
    let code = run(args(&[
        fixed.path().to_str().unwrap(),
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "--db",
        db_path.to_str().unwrap(),
        "--no-secrets",
        "--no-cache",
        "--fail-on",
        "low",
    ]))
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let ids: Vec<&str> = report["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&"PYSEC-2018-28"), "{ids:?}");

    // A missing database is an error naming the path, not an empty result.
    let missing = dir.path().join("missing.db");
    let error = run(args(&[
        fixed.path().to_str().unwrap(),
        "--db",
        missing.to_str().unwrap(),
    ]))
    .unwrap_err();
    assert!(format!("{error:#}").contains("missing.db"), "{error:#}");
    assert!(code == 0 || !ids.is_empty());
}

/// Re-matching end to end: an image scanned with `--store-sbom` before any advisory
/// names its package; `rampart db import` of an advisory for that package then reports
/// the finding as new under the image's name and id.
#[test]
fn stored_image_sbom_is_named_when_a_later_import_affects_it() {
    use common::{docker_save, file, layer, Compression};
    let dir = tempfile::tempdir().unwrap();
    let metadata = "Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n";
    let layers = vec![layer(&[(
        "usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA",
        file(metadata),
    )])];
    let image = dir.path().join("shop.tar");
    std::fs::write(&image, docker_save(&layers, Compression::Gzip, "shop:1")).unwrap();
    let db_path = dir.path().join("vuln.db");
    drop(rampart_vulndb::VulnDb::open(&db_path).unwrap());
    let out = dir.path().join("report.json");
    let code = run(args(&[
        image.to_str().unwrap(),
        "--db",
        db_path.to_str().unwrap(),
        "--store-sbom",
        "--no-secrets",
        "--no-cache",
        "--format",
        "json",
        "-o",
        out.to_str().unwrap(),
        "--fail-on",
        "low",
        "--allow-empty-db",
    ]))
    .unwrap();
    assert_eq!(code, 0, "no advisories yet");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let image_id = report["target"]["image_id"].as_str().unwrap().to_string();
    assert!(image_id.starts_with("sha256:"), "{image_id}");

    let mut db = rampart_vulndb::VulnDb::open(&db_path).unwrap();
    let advisory = common::fixtures().join("advisories/pypi/vulns/requests/PYSEC-2018-28.yaml");
    let outcome = rampart_vulndb::import_and_rematch(&mut db, &advisory).unwrap();
    let new: Vec<(&str, &str, &str)> = outcome
        .rematch
        .new_findings
        .iter()
        .map(|f| {
            (
                f.sbom_id.as_str(),
                f.finding.id.as_str(),
                f.finding.package.name.as_str(),
            )
        })
        .collect();
    let expected_id = format!("shop:1@{image_id}");
    assert_eq!(
        new,
        vec![(expected_id.as_str(), "PYSEC-2018-28", "requests")]
    );
}

/// Without the `yara` feature, `--malware-rules` is refused with a message that says
/// why, rather than scanning without the rules; so is the library option.
#[cfg(not(feature = "yara"))]
#[test]
fn malware_rules_without_yara_support_fail_clearly() {
    let dir = project();
    let rules = dir.path().join("rules.yar");
    std::fs::write(&rules, "rule r { condition: true }\n").unwrap();
    let error = run(args(&[
        dir.path().to_str().unwrap(),
        "--malware-rules",
        rules.to_str().unwrap(),
        "--no-cache",
    ]))
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("--malware-rules"), "{message}");
    assert!(message.contains("without YARA support"), "{message}");
    assert!(message.contains("--features yara"), "{message}");

    let options = rampart_scan::ScanOptions {
        malware_rules: Some(rules),
        ..Default::default()
    };
    let target = rampart_scan::Target::Directory(dir.path().to_path_buf());
    let error = rampart_scan::scan(&target, "x", &options).unwrap_err();
    assert!(
        matches!(error, rampart_scan::ScanError::NoYaraSupport),
        "{error}"
    );
}
