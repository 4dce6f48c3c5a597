//! ListVulnerabilities' cost with 2,000 stored scans on SQLite, the reports walk it
//! replaced against its SQL, in one run (a measurement, so ignored by default):
//! `cargo test --release -p rampart-store --features conformance --test vuln_list_figures -- --ignored --nocapture`

#[test]
#[ignore = "a measurement: run it by name with --ignored --nocapture"]
fn vulnerability_list_with_2000_scans_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = rampart_store::SqliteStore::open(dir.path().join("central.db")).unwrap();
    // It checks that both paths give the same answer before timing them.
    rampart_store::conformance::vulnerability_list_figures(&s, 2000, &|| ());
}
