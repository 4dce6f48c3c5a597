//! Acceptance: every Go, crates.io and PyPI advisory in the fixtures matches the
//! packages it names at versions the record itself calls affected (`introduced`,
//! `last_affected`, listed `versions`), and does not match at its `fixed` versions.
//! Runs over the whole fixture set and reports counts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rampart_vulndb::osv::{read_source, OsvRecord};
use rampart_vulndb::{PackageRef, VulnDb};

fn fixture(sub: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/advisories/"
    ))
    .join(sub)
}

fn load_records(dir: &Path) -> Vec<OsvRecord> {
    let mut records = Vec::new();
    read_source(dir, &mut |file| match file.records {
        Ok(r) => records.extend(r.records),
        Err(e) => panic!("{}: {e}", file.path.display()),
    })
    .unwrap();
    records
}

fn package(ecosystem: &str, name: &str, version: &str) -> PackageRef {
    PackageRef {
        ecosystem: ecosystem.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        source_name: None,
        purl: String::new(),
    }
}

struct Tally {
    fixed_also_affected: usize,
    fixed_skipped_multi_entry: usize,
    empty_intervals: usize,
    affected_checked: usize,
    affected_missed: Vec<String>,
    fixed_checked: usize,
    fixed_matched: Vec<String>,
}

fn check_ecosystem(sub: &str, ecosystem: &str) -> Tally {
    let dir = fixture(sub);
    let mut db = VulnDb::open_in_memory().unwrap();
    let started = Instant::now();
    let report = db.import(&dir).unwrap();
    eprintln!(
        "{sub}: imported {} records in {:?} ({} errors)",
        report.added,
        started.elapsed(),
        report.errors.len()
    );
    assert!(
        report.errors.is_empty(),
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    let records = load_records(&dir);
    assert_eq!(report.added + report.withdrawn, records.len());
    let mut tally = Tally {
        fixed_also_affected: 0,
        fixed_skipped_multi_entry: 0,
        empty_intervals: 0,
        affected_checked: 0,
        affected_missed: Vec::new(),
        fixed_checked: 0,
        fixed_matched: Vec::new(),
    };
    for record in records.iter().filter(|r| r.withdrawn.is_none()) {
        for affected in &record.affected {
            let Some(pkg) = &affected.package else {
                continue;
            };
            if pkg.ecosystem != ecosystem {
                continue;
            }
            // Go records split one package over several entries (per imported symbol
            // set); one entry's fix can then be another entry's affected version, and
            // the record as a whole still applies. Fixed versions are only checked
            // where the package has a single entry.
            let entries_for_package = record
                .affected
                .iter()
                .filter(|a| {
                    a.package
                        .as_ref()
                        .is_some_and(|p| p.ecosystem == pkg.ecosystem && p.name == pkg.name)
                })
                .count();
            // Listed versions: first, middle and last of each list (PyPI lists run to
            // hundreds per record; every range event is checked in full below).
            let listed = &affected.versions;
            let mut affected_versions: Vec<&str> =
                [0, listed.len() / 2, listed.len().saturating_sub(1)]
                    .iter()
                    .filter_map(|&i| listed.get(i).map(String::as_str))
                    .collect();
            affected_versions.dedup();
            let mut fixed_versions: Vec<&str> = Vec::new();
            for range in affected.ranges.iter().filter(|r| r.kind != "GIT") {
                let fixed_here: Vec<&str> = range
                    .events
                    .iter()
                    .filter_map(|e| e.fixed.as_deref())
                    .collect();
                for event in &range.events {
                    if let Some(v) = event.introduced.as_deref().filter(|v| *v != "0") {
                        // `introduced: X, fixed: X` is an empty interval: the record
                        // itself says X is not affected.
                        if fixed_here.contains(&v) {
                            tally.empty_intervals += 1;
                            continue;
                        }
                        affected_versions.push(v);
                    }
                    if let Some(v) = event.last_affected.as_deref() {
                        affected_versions.push(v);
                    }
                    if let Some(v) = event.fixed.as_deref() {
                        fixed_versions.push(v);
                    }
                }
            }
            let matched = |version: &str| {
                db.match_packages(&[package(ecosystem, &pkg.name, version)])
                    .unwrap()
                    .iter()
                    .any(|m| m.id == record.id)
            };
            for v in affected_versions {
                tally.affected_checked += 1;
                if !matched(v) {
                    tally
                        .affected_missed
                        .push(format!("{} {} {v}", record.id, pkg.name));
                }
                // The Go toolchain spells the same version `go1.21.3`.
                if pkg.name == "stdlib" && !v.contains('-') {
                    tally.affected_checked += 1;
                    if !matched(&format!("go{v}")) {
                        tally
                            .affected_missed
                            .push(format!("{} {} go{v}", record.id, pkg.name));
                    }
                }
            }
            if entries_for_package > 1 {
                tally.fixed_skipped_multi_entry += fixed_versions.len();
                continue;
            }
            // A fixed version the same entry also lists, or also introduces, is
            // affected by the record's own account (OSV takes the union).
            let introduced: Vec<&str> = affected
                .ranges
                .iter()
                .flat_map(|r| r.events.iter().filter_map(|e| e.introduced.as_deref()))
                .collect();
            for v in fixed_versions {
                if affected.versions.iter().any(|l| l == v) || introduced.contains(&v) {
                    tally.fixed_also_affected += 1;
                    continue;
                }
                tally.fixed_checked += 1;
                if matched(v) {
                    tally
                        .fixed_matched
                        .push(format!("{} {} {v}", record.id, pkg.name));
                }
            }
        }
    }
    eprintln!(
        "{sub}: {} affected versions checked, {} missed; {} fixed versions checked, {} wrongly matched; {} empty intervals (introduced = fixed) skipped; {} fixed versions in multi-entry packages and {} also listed/introduced skipped",
        tally.affected_checked,
        tally.affected_missed.len(),
        tally.fixed_checked,
        tally.fixed_matched.len(),
        tally.empty_intervals,
        tally.fixed_skipped_multi_entry,
        tally.fixed_also_affected
    );
    tally
}

fn assert_clean(tally: Tally) {
    assert!(tally.affected_checked > 100 && tally.fixed_checked > 100);
    assert!(
        tally.affected_missed.is_empty(),
        "affected versions not matched:\n{}",
        tally
            .affected_missed
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        tally.fixed_matched.is_empty(),
        "fixed versions matched:\n{}",
        tally
            .fixed_matched
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn go_advisories_match_affected_and_not_fixed_versions() {
    assert_clean(check_ecosystem("go", "Go"));
}

#[test]
fn crates_advisories_match_affected_and_not_fixed_versions() {
    assert_clean(check_ecosystem("crates", "crates.io"));
}

#[test]
fn pypi_advisories_match_affected_and_not_fixed_versions() {
    assert_clean(check_ecosystem("pypi", "PyPI"));
}
