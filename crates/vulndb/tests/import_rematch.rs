//! Import (additions, changes, withdrawals, malformed files, zip), distro and Go
//! stdlib matching, severity, and re-matching of stored SBOMs after an import.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rampart_vulndb::{PackageRef, Severity, VulnDb};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "rampart-vulndb-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn write(&self, rel: &str, text: &str) {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pkg(ecosystem: &str, name: &str, version: &str) -> PackageRef {
    PackageRef {
        ecosystem: ecosystem.into(),
        name: name.into(),
        version: version.into(),
        source_name: None,
        purl: format!("pkg:generic/{name}@{version}"),
    }
}

fn go_record(id: &str, module: &str, modified: &str, fixed: &str, extra: &str) -> String {
    format!(
        r#"{{"id": "{id}", "modified": "{modified}", "summary": "{id} in {module}"{extra},
  "affected": [{{"package": {{"ecosystem": "Go", "name": "{module}"}},
    "ranges": [{{"type": "SEMVER", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}},
               {{"type": "GIT", "repo": "https://example.invalid/r", "events": [{{"introduced": "0"}}]}}]}}]}}"#
    )
}

fn ids(db: &VulnDb, package: PackageRef) -> Vec<String> {
    let mut ids: Vec<String> = db
        .match_packages(&[package])
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn reimport_applies_additions_changes_and_withdrawals() {
    let src = TempDir::new("src");
    let dbdir = TempDir::new("db");
    src.write(
        "a/GO-1.json",
        &go_record("GO-1", "example.com/a", "2024-01-01T00:00:00Z", "1.2.0", ""),
    );
    src.write(
        "b/GO-2.json",
        &go_record("GO-2", "example.com/b", "2024-01-01T00:00:00Z", "2.0.0", ""),
    );
    src.write(
        "c/PYSEC-1.yaml",
        "id: PYSEC-1\nmodified: 2024-01-01T00:00:00Z\nsummary: yaml record\naffected:\n- package:\n    ecosystem: PyPI\n    name: Some_Package\n  versions:\n  - 1.0\n  - 1.10\n",
    );
    let mut db = VulnDb::open(dbdir.path().join("vuln.db")).unwrap();

    let first = db.import(src.path()).unwrap();
    assert_eq!(
        (first.added, first.changed, first.withdrawn, first.unchanged),
        (3, 0, 0, 0)
    );
    assert_eq!(first.git_ranges_ignored, 2);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(ids(&db, pkg("Go", "example.com/a", "v1.1.0")), ["GO-1"]);
    // YAML scalars that look like numbers stay version strings; PyPI names normalise.
    assert_eq!(ids(&db, pkg("PyPI", "some-package", "1.10")), ["PYSEC-1"]);
    assert_eq!(
        ids(&db, pkg("PyPI", "some.package", "1.1")),
        Vec::<String>::new()
    );

    let again = db.import(src.path()).unwrap();
    assert_eq!(
        (again.added, again.changed, again.withdrawn, again.unchanged),
        (0, 0, 0, 3)
    );
    assert_eq!(again.touched_packages, 0);

    // GO-1 changes (fix moves), GO-2 is withdrawn, PYSEC-1 disappears, GO-3 is new,
    // and a malformed file is reported without stopping the import.
    src.write(
        "a/GO-1.json",
        &go_record("GO-1", "example.com/a", "2024-02-01T00:00:00Z", "1.1.0", ""),
    );
    src.write(
        "b/GO-2.json",
        &go_record(
            "GO-2",
            "example.com/b",
            "2024-02-01T00:00:00Z",
            "2.0.0",
            r#", "withdrawn": "2024-02-01T00:00:00Z""#,
        ),
    );
    std::fs::remove_file(src.path().join("c/PYSEC-1.yaml")).unwrap();
    src.write(
        "d/GO-3.json",
        &go_record("GO-3", "example.com/d", "2024-02-01T00:00:00Z", "0.5.0", ""),
    );
    src.write("e/broken.json", "{\"id\": \"GO-4\", \"affected\": [");
    let third = db.import(src.path()).unwrap();
    assert_eq!(
        (third.added, third.changed, third.withdrawn, third.unchanged),
        (1, 1, 2, 0)
    );
    assert_eq!(third.errors.len(), 1);
    assert!(
        third.errors[0].0.ends_with("e/broken.json"),
        "{:?}",
        third.errors
    );
    assert!(third.errors[0].1.contains("JSON"), "{:?}", third.errors);
    assert_eq!(
        ids(&db, pkg("Go", "example.com/a", "v1.1.0")),
        Vec::<String>::new()
    );
    assert_eq!(ids(&db, pkg("Go", "example.com/a", "v1.0.9")), ["GO-1"]);
    assert_eq!(
        ids(&db, pkg("Go", "example.com/b", "v1.0.0")),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&db, pkg("PyPI", "some-package", "1.10")),
        Vec::<String>::new()
    );
    assert_eq!(ids(&db, pkg("Go", "example.com/d", "v0.4.0")), ["GO-3"]);
    let stats = db.stats().unwrap();
    assert_eq!((stats.advisories, stats.withdrawn), (2, 2));

    // The store persists across open.
    drop(db);
    let db = VulnDb::open(dbdir.path().join("vuln.db")).unwrap();
    assert_eq!(ids(&db, pkg("Go", "example.com/d", "v0.4.0")), ["GO-3"]);
}

#[test]
fn a_malformed_file_keeps_its_previously_imported_records() {
    let src = TempDir::new("keep");
    src.write(
        "GO-1.json",
        &go_record("GO-1", "example.com/a", "2024-01-01T00:00:00Z", "1.2.0", ""),
    );
    let mut db = VulnDb::open_in_memory().unwrap();
    db.import(src.path()).unwrap();
    src.write("GO-1.json", "{ not json");
    let report = db.import(src.path()).unwrap();
    assert_eq!(report.withdrawn, 0);
    assert_eq!(report.errors.len(), 1);
    assert_eq!(ids(&db, pkg("Go", "example.com/a", "v1.0.0")), ["GO-1"]);
}

#[test]
fn imports_a_zip_and_a_single_file() {
    let dir = TempDir::new("zip");
    let zip_path = dir.path().join("osv.zip");
    {
        let file = std::fs::File::create(&zip_path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, text) in [
            (
                "GO-1.json",
                go_record("GO-1", "example.com/a", "2024-01-01T00:00:00Z", "1.2.0", ""),
            ),
            (
                "nested/GO-2.json",
                go_record("GO-2", "example.com/b", "2024-01-01T00:00:00Z", "2.0.0", ""),
            ),
            ("README.txt", "not a record".to_string()),
            ("bad.yaml", "id: [unterminated".to_string()),
        ] {
            zip.start_file(name, options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    let mut db = VulnDb::open_in_memory().unwrap();
    let report = db.import(&zip_path).unwrap();
    assert_eq!(report.added, 2);
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].0.ends_with("osv.zip/bad.yaml"),
        "{:?}",
        report.errors
    );
    assert_eq!(ids(&db, pkg("Go", "example.com/b", "v1.9.9")), ["GO-2"]);

    dir.write(
        "single.json",
        &go_record("GO-9", "example.com/z", "2024-01-01T00:00:00Z", "3.0.0", ""),
    );
    let single = db.import(dir.path().join("single.json")).unwrap();
    assert_eq!(single.added, 1);
    assert_eq!(ids(&db, pkg("Go", "example.com/z", "v2.0.0")), ["GO-9"]);
}

#[test]
fn distro_packages_match_by_source_package() {
    let src = TempDir::new("deb");
    src.write(
        "DSA-1.json",
        r#"{"id": "DSA-1", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-2023-0001"],
            "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u1"}]}],
              "ecosystem_specific": {"urgency": "high"}}]}"#,
    );
    let mut db = VulnDb::open_in_memory().unwrap();
    db.import(src.path()).unwrap();
    let mut libssl = pkg("Debian:12", "libssl3", "3.0.9-1");
    libssl.source_name = Some("openssl".into());
    let found = db.match_packages(std::slice::from_ref(&libssl)).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "DSA-1");
    assert_eq!(found[0].aliases, ["CVE-2023-0001"]);
    assert_eq!(found[0].fixed_version.as_deref(), Some("3.0.11-1~deb12u1"));
    assert_eq!(found[0].severity, Severity::High);
    // dpkg order: the ~deb12u1 fix itself and later are not affected.
    libssl.version = "3.0.11-1~deb12u1".into();
    assert!(db
        .match_packages(std::slice::from_ref(&libssl))
        .unwrap()
        .is_empty());
    libssl.version = "3.0.11-1~deb12u0".into();
    assert_eq!(
        db.match_packages(std::slice::from_ref(&libssl))
            .unwrap()
            .len(),
        1
    );
    // Another Debian release does not match; the binary name alone does not either.
    let mut other_release = libssl.clone();
    other_release.ecosystem = "Debian:11".into();
    assert!(db.match_packages(&[other_release]).unwrap().is_empty());
    assert!(db
        .match_packages(&[pkg("Debian:12", "libssl3", "3.0.9-1")])
        .unwrap()
        .is_empty());
}

#[test]
fn go_stdlib_matches_toolchain_spellings_and_severity_comes_from_cvss() {
    let src = TempDir::new("go");
    src.write(
        "GO-STD.json",
        r#"{"id": "GO-STD", "modified": "2024-01-01T00:00:00Z",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected": [{"package": {"ecosystem": "Go", "name": "stdlib"},
              "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.20.10"},
                                                      {"introduced": "1.21.0-0"}, {"fixed": "1.21.3"}]}]}]}"#,
    );
    let mut db = VulnDb::open_in_memory().unwrap();
    db.import(src.path()).unwrap();
    for (version, affected) in [
        ("go1.21.2", true),
        ("1.21.2", true),
        ("v1.21.2", true),
        ("go1.21rc2", true),
        ("go1.21", true),
        ("go1.21.3", false),
        ("1.21.3", false),
        ("go1.20.10", false),
        ("go1.20.9", true),
        ("go1.22.0", false),
    ] {
        let found = db.match_packages(&[pkg("Go", "stdlib", version)]).unwrap();
        assert_eq!(!found.is_empty(), affected, "stdlib {version}");
        if let Some(m) = found.first() {
            assert_eq!(m.severity, Severity::Critical);
            assert!((m.cvss_score.unwrap() - 9.8).abs() < 0.01);
        }
    }
    let found = db
        .match_packages(&[pkg("Go", "stdlib", "go1.21.1")])
        .unwrap();
    assert_eq!(found[0].fixed_version.as_deref(), Some("1.21.3"));
}

#[test]
fn rematch_reports_only_new_findings_for_sboms_with_touched_packages() {
    let without = TempDir::new("without");
    let with = TempDir::new("with");
    let unrelated = go_record(
        "GO-OTHER",
        "example.com/other",
        "2024-01-01T00:00:00Z",
        "1.0.0",
        "",
    );
    without.write("GO-OTHER.json", &unrelated);
    with.write("GO-OTHER.json", &unrelated);
    with.write(
        "GO-LOG.json",
        &go_record(
            "GO-LOG",
            "example.com/log",
            "2024-01-02T00:00:00Z",
            "2.17.0",
            "",
        ),
    );
    let mut db = VulnDb::open_in_memory().unwrap();
    let vulnerable = pkg("Go", "example.com/log", "v2.14.1");
    let baseline = db
        .store_sbom(
            "image-a",
            &[vulnerable.clone(), pkg("Go", "example.com/fine", "v1.0.0")],
        )
        .unwrap();
    assert!(baseline.is_empty());
    db.store_sbom("image-b", &[pkg("Go", "example.com/unrelated", "v0.1.0")])
        .unwrap();
    db.store_sbom("image-c", &[pkg("npm", "left-pad", "1.0.0")])
        .unwrap();

    let report = db.import(without.path()).unwrap();
    let rematch = db.rematch_after_import_detailed(&report).unwrap();
    assert!(rematch.new_findings.is_empty());
    assert_eq!(rematch.sboms_rematched, 0);

    let report = db.import(with.path()).unwrap();
    let started = Instant::now();
    let rematch = db.rematch_after_import_detailed(&report).unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "rematch: {} of {} SBOMs, {} packages, {:?}",
        rematch.sboms_rematched, rematch.sboms_total, rematch.packages_rematched, elapsed
    );
    assert_eq!(rematch.sboms_total, 3);
    assert_eq!(
        rematch.sboms_rematched, 1,
        "only image-a holds a touched package"
    );
    assert_eq!(rematch.packages_rematched, 1);
    assert_eq!(rematch.new_findings.len(), 1);
    let new = &rematch.new_findings[0];
    assert_eq!(
        (new.sbom_id.as_str(), new.finding.id.as_str()),
        ("image-a", "GO-LOG")
    );
    assert_eq!(new.finding.package, vulnerable);
    assert_eq!(new.finding.fixed_version.as_deref(), Some("2.17.0"));
    assert!(elapsed.as_secs_f64() < 1.0, "rematch took {elapsed:?}");

    // Persisted: asking again reports nothing new.
    assert!(db.rematch_after_import(&report).unwrap().is_empty());
    // Re-importing the same data touches nothing.
    let report = db.import(with.path()).unwrap();
    assert_eq!(report.touched_packages, 0);
    assert!(db.rematch_after_import(&report).unwrap().is_empty());
    assert_eq!(db.stats().unwrap().findings, 1);
}

#[test]
fn a_malformed_element_of_a_json_array_is_reported_and_the_rest_imported() {
    let src = TempDir::new("array");
    src.write(
        "all.json",
        &format!(
            "[{}, {{\"id\": 42}}, {}]",
            go_record("GO-A", "example.com/a", "2024-01-01T00:00:00Z", "1.0.0", ""),
            go_record("GO-B", "example.com/b", "2024-01-01T00:00:00Z", "1.0.0", "")
        ),
    );
    let mut db = VulnDb::open_in_memory().unwrap();
    let report = db.import(src.path()).unwrap();
    assert_eq!(report.added, 2);
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].0.ends_with("all.json"));
    assert!(
        report.errors[0].1.starts_with("record [1]:"),
        "{:?}",
        report.errors
    );
    assert_eq!(ids(&db, pkg("Go", "example.com/b", "v0.9.0")), ["GO-B"]);
}
