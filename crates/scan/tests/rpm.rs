//! rpm databases against `rpm --dbpath DIR -qa` (Debian's rpm package) as the oracle.

mod common;

use common::*;
use rampart_scan::catalog::rpm;

fn oracle(dir: &std::path::Path) -> Option<Vec<String>> {
    let output = std::process::Command::new("rpm")
        .arg("--dbpath")
        .arg(dir)
        .arg("-qa")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let mut list: Vec<String> = String::from_utf8(output.stdout)
        .ok()?
        .lines()
        .map(str::to_string)
        .collect();
    list.sort();
    Some(list)
}

fn ours(file: &std::path::Path) -> Vec<String> {
    let data = std::fs::read(file).unwrap();
    let mut list: Vec<String> = rpm::read_headers(&data)
        .unwrap()
        .iter()
        .map(|h| h.nvra())
        .collect();
    list.sort();
    list
}

fn check_against_rpm(fixture: &str, file: &str, expected_count: usize) {
    let dir = fixtures().join("pkgdb/rpm").join(fixture);
    let list = ours(&dir.join(file));
    assert_eq!(list.len(), expected_count, "{fixture}");
    // rpm may want to create lock files: give it a private copy.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join(file), copy.path().join(file)).unwrap();
    match oracle(copy.path()) {
        Some(expected) => assert_eq!(
            list, expected,
            "{fixture}: package list differs from rpm -qa"
        ),
        None => skip_or_fail("`rpm` is not installed (apt-get install -y rpm)"),
    }
}

#[test]
fn sqlite_database_matches_rpm() {
    check_against_rpm("cbl-mariner-2.0-sqlite", "rpmdb.sqlite", 129);
}

#[test]
fn berkeley_database_matches_rpm() {
    check_against_rpm("libuuid-bdb", "Packages", 1);
}

#[test]
fn ndb_database_is_read() {
    // Debian's rpm cannot read NDB; check plausibility and a known package instead.
    let list = ours(&fixtures().join("pkgdb/rpm/sle15-bci-ndb/Packages.db"));
    assert!(list.len() > 10, "{list:?}");
    assert!(list.iter().any(|p| p.starts_with("glibc-")), "{list:?}");
    assert!(list.iter().all(|p| p.matches('-').count() >= 2));
}

#[test]
fn rpm_packages_get_purls_with_epoch_and_distro() {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path();
    write_tree(
        rootfs,
        &[
            (
                "etc/os-release".into(),
                b"ID=mariner\nVERSION_ID=\"2.0\"\n".to_vec(),
            ),
            (
                "var/lib/rpm/rpmdb.sqlite".into(),
                std::fs::read(fixtures().join("pkgdb/rpm/cbl-mariner-2.0-sqlite/rpmdb.sqlite"))
                    .unwrap(),
            ),
        ],
    );
    let report = rampart_scan::scan(
        &rampart_scan::Target::Directory(rootfs.to_path_buf()),
        "r",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(report.packages.len(), 129);
    let curl = report
        .packages
        .iter()
        .find(|p| p.name == "curl")
        .expect("curl is in the fixture");
    assert!(
        curl.purl.starts_with("pkg:rpm/mariner/curl@"),
        "{}",
        curl.purl
    );
    assert!(curl.purl.contains("distro=mariner-2.0"), "{}", curl.purl);
    assert_eq!(curl.ecosystem.as_deref(), Some("Mariner:2.0"));
    assert_eq!(curl.source_name.as_deref(), Some("curl"));
}
