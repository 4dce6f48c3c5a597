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
        None => rampart_testbed::skip_or_fail("`rpm` is not installed (apt-get install -y rpm)"),
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

/// What `rpm -qa` printed, in its order, inside the SUSE BCI 15 SP3 image this NDB
/// database was copied from: go-rpmdb's `SLE15WithNDB` expectation in
/// `pkg/rpmdb_testcase_test.go` as of the fixture's revision (later revisions regenerated
/// both files from a newer image). Debian's rpm is built without NDB support, so that
/// listing is the oracle here; hand-checked name by name against the fixture: 35
/// packages, none with an epoch.
const SLE15_BCI_RPM_QA: &[&str] = &[
    "system-user-root-20190513-3.3.1.noarch",
    "filesystem-15.0-11.3.2.x86_64",
    "glibc-2.31-9.3.2.x86_64",
    "libpcre1-8.45-20.10.1.x86_64",
    "libgmp10-6.1.2-4.6.1.x86_64",
    "libgcc_s1-11.2.1+git610-1.3.9.x86_64",
    "libcap2-2.26-4.6.1.x86_64",
    "libstdc++6-11.2.1+git610-1.3.9.x86_64",
    "libncurses6-6.1-5.9.1.x86_64",
    "terminfo-base-6.1-5.9.1.x86_64",
    "libattr1-2.4.47-2.19.x86_64",
    "libselinux1-3.0-1.31.x86_64",
    "libreadline7-7.0-19.6.1.x86_64",
    "bash-4.4-19.6.1.x86_64",
    "libacl1-2.2.52-4.3.1.x86_64",
    "coreutils-8.32-3.2.1.x86_64",
    "sles-release-15.3-55.4.1.x86_64",
    "ca-certificates-mozilla-prebuilt-2.44-21.1.noarch",
    "libgpg-error0-1.29-1.8.x86_64",
    "libpopt0-1.16-3.22.x86_64",
    "file-magic-5.32-7.14.1.noarch",
    "libbz2-1-1.0.6-5.11.1.x86_64",
    "liblua5_3-5-5.3.6-3.6.1.x86_64",
    "liblzma5-5.2.3-4.3.1.x86_64",
    "libz1-1.2.11-3.21.1.x86_64",
    "libzstd1-1.4.4-1.6.1.x86_64",
    "libmagic1-5.32-7.14.1.x86_64",
    "libdw1-0.168-4.5.3.x86_64",
    "libebl-plugins-0.168-4.5.3.x86_64",
    "libelf1-0.168-4.5.3.x86_64",
    "libcrypt1-4.4.15-2.51.x86_64",
    "perl-base-5.26.1-15.87.x86_64",
    "libgcrypt20-1.8.2-8.39.1.x86_64",
    "rpm-config-SUSE-1-5.6.1.noarch",
    "rpm-ndb-4.14.3-40.1.x86_64",
];

#[test]
fn ndb_database_matches_rpm_qa_from_its_image() {
    let path = fixtures().join("pkgdb/rpm/sle15-bci-ndb/Packages.db");
    let data = std::fs::read(&path).unwrap();
    let headers = rpm::read_headers(&data).unwrap();
    // Same packages in the same (package index) order as rpm's own listing.
    let listed: Vec<String> = headers.iter().map(|h| h.nvra()).collect();
    assert_eq!(listed, SLE15_BCI_RPM_QA);
    assert!(headers.iter().all(|h| h.epoch.is_none()));
    let readline = headers
        .iter()
        .find(|h| h.name == "libreadline7")
        .expect("libreadline7 is in the fixture");
    assert_eq!(
        readline.source_rpm.as_deref(),
        Some("bash-4.4-19.6.1.src.rpm")
    );
    // Through the cataloger: binary packages keyed to their source package.
    let packages = rpm::parse_ndb("var/lib/rpm/Packages.db", &data).unwrap();
    assert_eq!(packages.len(), SLE15_BCI_RPM_QA.len());
    let libgcc = packages.iter().find(|p| p.name == "libgcc_s1").unwrap();
    assert_eq!(libgcc.source_name.as_deref(), Some("gcc11"));
    assert_eq!(libgcc.version, "11.2.1+git610-1.3.9");
}

#[test]
fn damaged_ndb_database_is_an_error_not_a_partial_list() {
    let mut data = std::fs::read(fixtures().join("pkgdb/rpm/sle15-bci-ndb/Packages.db")).unwrap();
    // Break the first slot's magic: the slot table can no longer be trusted.
    data[32] ^= 0xff;
    assert!(rpm::read_headers(&data).is_err());
    let error = rpm::parse_ndb("var/lib/rpm/Packages.db", &data).unwrap_err();
    assert!(error.contains("malformed rpm database"), "{error}");
    data.truncate(4096);
    assert!(rpm::read_headers(&data).is_err());
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

/// The in-use map's file lists for rpm packages come from the same database's headers
/// (DIRNAMES/BASENAMES/DIRINDEXES), read under the container root once per database.
#[test]
fn rpm_package_file_lists_for_the_in_use_map() {
    for (fixture, db) in [
        ("cbl-mariner-2.0-sqlite", "var/lib/rpm/rpmdb.sqlite"),
        ("sle15-bci-ndb", "usr/lib/sysimage/rpm/Packages.db"),
        ("libuuid-bdb", "var/lib/rpm/Packages"),
    ] {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join(db);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let name = db.rsplit('/').next().unwrap();
        let data = std::fs::read(fixtures().join("pkgdb/rpm").join(fixture).join(name)).unwrap();
        std::fs::write(&target, &data).unwrap();
        let packages = match name {
            "rpmdb.sqlite" => rampart_scan::catalog::rpm::parse_sqlite_bytes(db, &data),
            "Packages.db" => rampart_scan::catalog::rpm::parse_ndb(db, &data),
            _ => rampart_scan::catalog::rpm::parse_berkeley(db, &data),
        }
        .unwrap();
        let mut lists = rampart_scan::in_use::FileLists::new(root.path());
        let mut listed = 0;
        for package in &packages {
            let files = lists
                .files(package)
                .unwrap_or_else(|| panic!("{fixture}: no file list for {}", package.name));
            assert!(
                files.iter().all(|f| f.starts_with('/')),
                "{fixture} {}: {files:?}",
                package.name
            );
            listed += files.len();
        }
        // rpm itself as the oracle (its -ql lists directories too, which ours leave out).
        let copy = tempfile::tempdir().unwrap();
        std::fs::copy(&target, copy.path().join(name)).unwrap();
        for package in packages.iter().take(5) {
            let Ok(output) = std::process::Command::new("rpm")
                .arg("--dbpath")
                .arg(copy.path())
                .args(["-ql", &package.name])
                .output()
            else {
                break;
            };
            if !output.status.success() {
                continue;
            }
            let theirs: std::collections::HashSet<String> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_string)
                .collect();
            let files = lists.files(package).unwrap();
            for file in &files {
                assert!(
                    theirs.contains(file),
                    "{fixture} {}: {file} not in rpm -ql",
                    package.name
                );
            }
        }
        assert!(
            listed > packages.len(),
            "{fixture}: {listed} files for {} packages",
            packages.len()
        );
        // A package's own binary is among its files (no directories are).
        if let Some(bash) = packages.iter().find(|p| p.name == "bash") {
            let files = lists.files(bash).unwrap();
            assert!(
                files
                    .iter()
                    .any(|f| f == "/usr/bin/bash" || f == "/bin/bash"),
                "{files:?}"
            );
            assert!(!files.iter().any(|f| f == "/usr/bin"), "{files:?}");
        }
        eprintln!("{fixture}: {} packages, {listed} files", packages.len());
    }
}
