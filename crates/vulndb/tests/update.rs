//! `rampart db update` against a local HTTP server serving fixture exports: conditional
//! requests, integrity checks, and the old database answering after a failed update.
//! No request leaves the machine.

use std::path::{Path, PathBuf};

use rampart_testbed::http::{serve, zip_of};

use rampart_vulndb::update::{update, UpdateError, UpdateOptions};
use rampart_vulndb::{PackageRef, VulnDb};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/advisories")
        .join(path)
}

/// The PyPI advisories for flask and pyyaml from the fixtures, as an export would hold them.
fn pypi_members() -> Vec<(String, Vec<u8>)> {
    let mut members = Vec::new();
    for package in ["flask", "pyyaml"] {
        let dir = fixture("pypi/vulns").join(package);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            members.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert!(members.len() >= 5, "{members:?}");
    members
}

fn flask(version: &str) -> PackageRef {
    PackageRef {
        ecosystem: "PyPI".into(),
        name: "flask".into(),
        version: version.into(),
        source_name: None,
        purl: format!("pkg:pypi/flask@{version}"),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rampart-vulndb-update-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(base: &str) -> UpdateOptions {
    UpdateOptions {
        base_url: base.to_string(),
        ecosystems: vec!["PyPI".to_string()],
        ..UpdateOptions::default()
    }
}

fn flask_ids(db_file: &Path) -> Vec<String> {
    let mut ids: Vec<String> = VulnDb::open(db_file)
        .unwrap()
        .match_packages(&[flask("0.12.2")])
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn etag_round_trip_then_a_changed_export_is_applied() {
    let (base, served, seen) = serve();
    let members = pypi_members();
    served
        .lock()
        .unwrap()
        .insert("/PyPI/all.zip".into(), ("\"v1\"".into(), zip_of(&members)));
    let dir = temp_dir("etag");
    let db_file = dir.join("vuln.db");

    let first = update(&db_file, &options(&base), &mut |_| {}).unwrap();
    assert!(first.replaced);
    assert!(first.ecosystems[0].downloaded);
    assert_eq!(first.ecosystems[0].records, members.len());
    let ids = flask_ids(&db_file);
    assert!(ids.contains(&"PYSEC-2019-179".to_string()), "{ids:?}");
    let freshness = VulnDb::open(&db_file).unwrap().freshness().unwrap();
    assert_eq!(freshness.advisories, members.len());
    assert!(freshness.updated_at.is_some());

    // Second run: the stored ETag goes back, the server answers 304, nothing is replaced.
    let second = update(&db_file, &options(&base), &mut |_| {}).unwrap();
    assert!(!second.replaced);
    assert!(!second.ecosystems[0].downloaded);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], ("/PyPI/all.zip".to_string(), None));
        assert_eq!(
            seen[1],
            ("/PyPI/all.zip".to_string(), Some("\"v1\"".to_string()))
        );
    }
    assert_eq!(flask_ids(&db_file), ids);

    // Upstream drops a flask advisory: the next download withdraws it.
    let dropped = "PYSEC-2019-179.yaml";
    let fewer: Vec<_> = members
        .iter()
        .filter(|(name, _)| name != dropped)
        .cloned()
        .collect();
    served
        .lock()
        .unwrap()
        .insert("/PyPI/all.zip".into(), ("\"v2\"".into(), zip_of(&fewer)));
    let third = update(&db_file, &options(&base), &mut |_| {}).unwrap();
    assert!(third.replaced);
    assert_eq!(third.ecosystems[0].import.as_ref().unwrap().withdrawn, 1);
    assert!(!flask_ids(&db_file).contains(&"PYSEC-2019-179".to_string()));
    assert!(!dir.join("vuln.db.new").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_export_is_rejected_and_the_old_database_keeps_answering() {
    let (base, served, _) = serve();
    let members = pypi_members();
    served.lock().unwrap().insert(
        "/PyPI/all.zip".into(),
        ("\"good\"".into(), zip_of(&members)),
    );
    let dir = temp_dir("corrupt");
    let db_file = dir.join("vuln.db");
    update(&db_file, &options(&base), &mut |_| {}).unwrap();
    let before = flask_ids(&db_file);
    assert!(!before.is_empty());

    // One byte of a stored member flipped: the record still parses, the CRC does not match.
    let mut flipped = zip_of(&members);
    let needle = b"Flask";
    let at = flipped
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("a member mentions Flask");
    flipped[at] = b'G';
    // A truncated archive (no central directory), and a member that is not OSV.
    let truncated = zip_of(&members)[..2000].to_vec();
    let mut not_osv = members.clone();
    not_osv.push(("broken.json".into(), b"{\"id\": ".to_vec()));
    for (tag, body) in [
        ("crc", flipped),
        ("truncated", truncated),
        ("unparsable", zip_of(&not_osv)),
    ] {
        served
            .lock()
            .unwrap()
            .insert("/PyPI/all.zip".into(), (format!("\"{tag}\""), body));
        let error = update(&db_file, &options(&base), &mut |_| {}).unwrap_err();
        assert!(
            matches!(error, UpdateError::Corrupt { .. }),
            "{tag}: {error}"
        );
        assert_eq!(flask_ids(&db_file), before, "{tag}");
        assert!(!dir.join("vuln.db.new").exists(), "{tag}");
    }

    // A server error and a missing export leave it alone too.
    served.lock().unwrap().clear();
    let error = update(&db_file, &options(&base), &mut |_| {}).unwrap_err();
    assert!(
        matches!(error, UpdateError::Status { status: 404, .. }),
        "{error}"
    );
    assert_eq!(flask_ids(&db_file), before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_exports_are_bounded() {
    let (base, served, _) = serve();
    let dir = temp_dir("hostile");
    let db_file = dir.join("vuln.db");
    // A member that inflates beyond the per-member bound (a zip bomb in miniature).
    let big = vec![(
        "bomb.json".to_string(),
        format!(
            "{{\"id\": \"X\", \"details\": \"{}\"}}",
            "a".repeat(100_000)
        )
        .into_bytes(),
    )];
    served
        .lock()
        .unwrap()
        .insert("/PyPI/all.zip".into(), ("\"b\"".into(), zip_of(&big)));
    let mut opts = options(&base);
    opts.limits.max_entry_bytes = 10_000;
    let error = update(&db_file, &opts, &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("limit"), "{error}");
    // A download over the size bound is refused before it is read whole.
    let mut opts = options(&base);
    opts.limits.max_download_bytes = 1_000;
    let error = update(&db_file, &opts, &mut |_| {}).unwrap_err();
    assert!(matches!(error, UpdateError::TooLarge { .. }), "{error}");
    // An export without records would withdraw the ecosystem: refused.
    served.lock().unwrap().insert(
        "/PyPI/all.zip".into(),
        ("\"e\"".into(), zip_of(&[("README".into(), b"x".to_vec())])),
    );
    let error = update(&db_file, &options(&base), &mut |_| {}).unwrap_err();
    assert!(error.to_string().contains("no OSV records"), "{error}");
    assert!(
        !db_file.exists()
            || VulnDb::open(&db_file)
                .unwrap()
                .freshness()
                .unwrap()
                .advisories
                == 0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_urls_encode_ecosystem_names() {
    assert_eq!(
        rampart_vulndb::update::export_url("https://h/b/", "Red Hat"),
        "https://h/b/Red%20Hat/all.zip"
    );
    assert_eq!(
        rampart_vulndb::update::export_url("https://h", "crates.io"),
        "https://h/crates.io/all.zip"
    );
}
