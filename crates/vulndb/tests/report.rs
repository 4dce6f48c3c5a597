//! The import-and-rematch step and the reports `rampart db` prints, through the library
//! (the command itself is tested in the `rampart` crate's `db_cli.rs`).

use std::path::{Path, PathBuf};

use rampart_vulndb::{default_db_path, format_rematch_report, import_and_rematch, VulnDb};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-vulndb-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn import_then_stats_on_the_crates_fixture() {
    let dir = temp_dir("import");
    let db_file = dir.join("sub/vuln.db");
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/advisories/crates"
    );
    std::fs::create_dir_all(db_file.parent().unwrap()).unwrap();
    let outcome =
        import_and_rematch(&mut VulnDb::open(&db_file).unwrap(), Path::new(fixtures)).unwrap();
    assert!(
        outcome.import.errors.is_empty(),
        "{:?}",
        outcome.import.errors
    );
    let stats = VulnDb::open(&db_file).unwrap().stats().unwrap();
    assert!(stats.advisories > 1000, "{stats:?}");
    assert_eq!(stats.ecosystems.len(), 1);
    assert_eq!(stats.ecosystems[0].0, "crates.io");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_import_fails_on_a_malformed_file_but_keeps_the_rest() {
    let dir = temp_dir("strict");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("bad.json"), "[{\"id\": ").unwrap();
    std::fs::write(
        src.join("good.json"),
        r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1.0.0"]}]}"#,
    )
    .unwrap();
    let db_file = dir.join("vuln.db");
    let mut db = VulnDb::open(&db_file).unwrap();
    let outcome = import_and_rematch(&mut db, &src).unwrap();
    assert_eq!(
        outcome.import.errors.len(),
        1,
        "{:?}",
        outcome.import.errors
    );
    assert_eq!(db.stats().unwrap().advisories, 1);
    // A missing path is an error, not a silent success.
    assert!(import_and_rematch(&mut db, &dir.join("missing")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_path_honours_rampart_data_dir() {
    // The only test in this binary that touches the environment.
    std::env::set_var("RAMPART_DATA_DIR", "/tmp/rampart-data-dir-test");
    assert_eq!(
        default_db_path(),
        PathBuf::from("/tmp/rampart-data-dir-test/vuln.db")
    );
    std::env::remove_var("RAMPART_DATA_DIR");
    let fallback = default_db_path();
    assert!(
        fallback == std::path::Path::new("/var/lib/rampart/vuln.db")
            || fallback.ends_with(".local/share/rampart/vuln.db"),
        "{fallback:?}"
    );
}

/// An import re-matches stored SBOMs: a new advisory for a stored package is listed as
/// new under the SBOM's name, and importing
/// the same records again reports nothing new.
#[test]
fn import_rematches_stored_sboms_and_reports_new_findings() {
    use rampart_vulndb::PackageRef;
    let dir = temp_dir("rematch");
    let db_file = dir.join("vuln.db");
    let requests = |version: &str| PackageRef {
        ecosystem: "PyPI".into(),
        name: "requests".into(),
        version: version.into(),
        source_name: None,
        purl: format!("pkg:pypi/requests@{version}"),
    };
    {
        let mut vulndb = VulnDb::open(&db_file).unwrap();
        // Stored before any advisory exists: nothing matches yet.
        assert!(vulndb
            .store_sbom("shop:1@sha256:aaaa", &[requests("2.19.0")])
            .unwrap()
            .is_empty());
        assert!(vulndb
            .store_sbom("shop:2@sha256:bbbb", &[requests("2.32.3")])
            .unwrap()
            .is_empty());
    }
    let advisories = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/advisories/pypi/vulns/requests/PYSEC-2018-28.yaml"
    );
    let outcome =
        import_and_rematch(&mut VulnDb::open(&db_file).unwrap(), Path::new(advisories)).unwrap();
    assert_eq!(outcome.rematch.new_findings.len(), 1, "one new finding");
    assert_eq!(VulnDb::open(&db_file).unwrap().stats().unwrap().findings, 1);

    // Again: the records are unchanged, so nothing is re-matched and nothing is new.
    let outcome =
        import_and_rematch(&mut VulnDb::open(&db_file).unwrap(), Path::new(advisories)).unwrap();
    assert!(outcome.rematch.new_findings.is_empty());

    // The report names the SBOM, the advisory and the package, and only the affected one.
    let mut vulndb = VulnDb::open(&db_file).unwrap();
    vulndb.store_sbom("shop:3@sha256:cccc", &[]).unwrap();
    vulndb
        .store_sbom("shop:1@sha256:aaaa", &[requests("2.18.0")])
        .unwrap();
    let outcome = import_and_rematch(&mut vulndb, Path::new(advisories)).unwrap();
    assert!(
        outcome.rematch.new_findings.is_empty(),
        "stored with its matches"
    );
    let text = format_rematch_report(&outcome.rematch);
    assert!(text.starts_with("re-matched "), "{text}");
    let second = dir.join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(
        second.join("PYSEC-2099-1.json"),
        r#"{"id": "PYSEC-2099-1", "modified": "2099-01-01T00:00:00Z", "summary": "test",
            "affected": [{"package": {"ecosystem": "PyPI", "name": "requests"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}]}]}"#,
    )
    .unwrap();
    let outcome = import_and_rematch(&mut vulndb, &second).unwrap();
    assert_eq!(outcome.rematch.sboms_total, 3);
    assert_eq!(
        outcome.rematch.sboms_rematched, 2,
        "shop:3 holds no requests"
    );
    let text = format_rematch_report(&outcome.rematch);
    assert_eq!(text.matches("\nNEW ").count(), 1, "{text}");
    assert!(
        text.contains("PYSEC-2099-1 in shop:1@sha256:aaaa: requests@2.18.0 (fixed in 2.20.0)"),
        "{text}"
    );
    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(
        json["added"], 1,
        "import fields stay at the top level: {json}"
    );
    assert_eq!(
        json["rematch"]["new_findings"][0]["sbom_id"],
        "shop:1@sha256:aaaa"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
