//! Import and matching figures on the fixture advisories.
//!
//! `cargo bench -p rampart-vulndb` prints: import time and records/s for all Go,
//! crates.io and PyPI fixture advisories; matching throughput (packages/s) with the
//! indexed store, cold and warm; and, as the baseline measured in the same run, a naive
//! linear scan over every affected entry held in memory.

use std::path::PathBuf;
use std::time::Instant;

use rampart_vulndb::matching::{name_key, PreparedAffected};
use rampart_vulndb::osv::{read_source, OsvRecord};
use rampart_vulndb::{PackageRef, VulnDb};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/advisories"
    ))
}

/// Deterministic package list: for every affected entry, its first introduced and
/// fixed versions, plus names that no advisory mentions.
fn packages(records: &[OsvRecord]) -> Vec<PackageRef> {
    let mut out = Vec::new();
    for record in records {
        for affected in &record.affected {
            let Some(p) = &affected.package else { continue };
            let mut push = |version: &str| {
                out.push(PackageRef {
                    ecosystem: p.ecosystem.clone(),
                    name: p.name.clone(),
                    version: version.to_string(),
                    source_name: None,
                    purl: String::new(),
                })
            };
            for range in &affected.ranges {
                for e in &range.events {
                    if let Some(v) = e.introduced.as_deref().filter(|v| *v != "0") {
                        push(v);
                    }
                    if let Some(v) = e.fixed.as_deref() {
                        push(v);
                    }
                }
            }
            if let Some(v) = affected.versions.first() {
                push(v);
            }
        }
    }
    for i in 0..out.len() / 4 {
        out.push(PackageRef {
            ecosystem: ["Go", "PyPI", "crates.io"][i % 3].to_string(),
            name: format!("not-vulnerable-{i}"),
            version: "1.0.0".into(),
            source_name: None,
            purl: String::new(),
        });
    }
    out
}

type Entry = (String, String, String, PreparedAffected);

/// Times the indexed store (warm) and the naive scan on the same packages and checks
/// that both find the same number of matches.
fn compare_with_naive(db: &VulnDb, entries: &[Entry], label: &str, packages: &[PackageRef]) {
    let t = Instant::now();
    let mut naive_matches = 0usize;
    for package in packages {
        let key = name_key(&package.ecosystem, &package.name);
        let mut ids: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (id, ecosystem, name, prepared) in entries {
            if *ecosystem == package.ecosystem
                && *name == key
                && !ids.contains(id.as_str())
                && prepared.verdict(&package.version).affected
            {
                ids.insert(id);
            }
        }
        naive_matches += ids.len();
    }
    let naive_rate = packages.len() as f64 / t.elapsed().as_secs_f64();
    let _ = db.match_packages(packages).expect("match");
    let t = Instant::now();
    let indexed_matches = db.match_packages(packages).expect("match").len();
    let indexed_rate = packages.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(
        naive_matches, indexed_matches,
        "{label}: naive and indexed disagree"
    );
    println!(
        "{label:17} {:6} packages, {:7} matches: indexed {:9.0} packages/s, naive scan {:9.0} packages/s ({:.1}x)",
        packages.len(),
        indexed_matches,
        indexed_rate,
        naive_rate,
        indexed_rate / naive_rate
    );
}

/// Log4Shell-style figure: 500 stored SBOM-like package lists of 100 packages each, 50
/// of them holding
/// a package that a new advisory then names; time to import it and re-match.
fn rematch_figure(mut db: VulnDb, packages: &[PackageRef], dir: &std::path::Path) {
    let started = Instant::now();
    for s in 0..500 {
        let mut sbom: Vec<PackageRef> = packages
            .iter()
            .skip(s * 37 % packages.len().saturating_sub(100).max(1))
            .take(99)
            .cloned()
            .collect();
        if s % 10 == 0 {
            sbom.push(PackageRef {
                ecosystem: "Maven".into(),
                name: "org.example:log-core".into(),
                version: "2.14.1".into(),
                source_name: None,
                purl: "pkg:maven/org.example/log-core@2.14.1".into(),
            });
        }
        db.store_sbom(&format!("image-{s}"), &sbom)
            .expect("store sbom");
    }
    let store_secs = started.elapsed().as_secs_f64();
    let advisory_dir = dir.join("new-advisory");
    std::fs::create_dir_all(&advisory_dir).expect("dir");
    std::fs::write(
        advisory_dir.join("GHSA-new.json"),
        r#"{"id": "GHSA-new", "modified": "2021-12-10T00:00:00Z", "summary": "remote code execution",
            "affected": [{"package": {"ecosystem": "Maven", "name": "org.example:log-core"},
              "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]}]}]}"#,
    )
    .expect("write advisory");
    let t = Instant::now();
    let report = db.import(&advisory_dir).expect("import");
    let import_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rematch = db.rematch_after_import_detailed(&report).expect("rematch");
    let rematch_secs = t.elapsed().as_secs_f64();
    assert_eq!(rematch.new_findings.len(), 50);
    println!(
        "rematch          500 SBOMs x 100 packages stored in {store_secs:.2} s; new advisory: import {:.1} ms, re-match {:.1} ms ({} of {} SBOMs re-matched, {} new findings)",
        import_secs * 1e3,
        rematch_secs * 1e3,
        rematch.sboms_rematched,
        rematch.sboms_total,
        rematch.new_findings.len()
    );
}

fn main() {
    let root = fixtures();
    let dir = std::env::temp_dir().join(format!("rampart-vulndb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db_path = dir.join("vuln.db");
    let mut db = VulnDb::open(&db_path).expect("open db");

    let mut records = Vec::new();
    let mut total_imported = 0;
    let mut import_secs = 0.0;
    for sub in ["go", "crates", "pypi"] {
        let t = Instant::now();
        let report = db.import(root.join(sub)).expect("import");
        let n = report.added + report.withdrawn;
        total_imported += n;
        import_secs += t.elapsed().as_secs_f64();
        println!(
            "import {sub:7} {n:5} records in {:7.3} s = {:8.0} records/s ({} errors)",
            t.elapsed().as_secs_f64(),
            n as f64 / t.elapsed().as_secs_f64(),
            report.errors.len()
        );
        read_source(&root.join(sub), &mut |f| {
            if let Ok(r) = f.records {
                records.extend(r.records)
            }
        })
        .expect("read fixtures");
    }
    println!(
        "import all     {total_imported:5} records in {import_secs:7.3} s = {:8.0} records/s",
        total_imported as f64 / import_secs
    );
    let t = Instant::now();
    let report = db.import(root.join("go")).expect("re-import");
    println!(
        "re-import go   {} unchanged in {:.3} s",
        report.unchanged,
        t.elapsed().as_secs_f64()
    );

    let packages = packages(&records);
    drop(db);
    let db = VulnDb::open(&db_path).expect("reopen");
    let _ = &db_path;
    let t = Instant::now();
    let cold = db.match_packages(&packages).expect("match");
    let cold_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let warm = db.match_packages(&packages).expect("match");
    let warm_secs = t.elapsed().as_secs_f64();
    assert_eq!(cold.len(), warm.len());
    println!(
        "match indexed  {} packages, {} matches: cold {:.3} s = {:.0} packages/s, warm {:.3} s = {:.0} packages/s",
        packages.len(),
        cold.len(),
        cold_secs,
        packages.len() as f64 / cold_secs,
        warm_secs,
        packages.len() as f64 / warm_secs
    );

    // Baseline: every affected entry prepared in memory, scanned linearly per package.
    let entries: Vec<Entry> = records
        .iter()
        .filter(|r| r.withdrawn.is_none())
        .flat_map(|r| {
            r.affected.iter().filter_map(move |a| {
                let p = a.package.as_ref()?;
                Some((
                    r.id.clone(),
                    p.ecosystem.clone(),
                    name_key(&p.ecosystem, &p.name),
                    PreparedAffected::new(&p.ecosystem, &a.ranges, &a.versions),
                ))
            })
        })
        .collect();
    // Workload 1: versions taken from the advisories (every package is a name with
    // advisories, many of them vulnerable): matching cost dominates.
    let sample: Vec<PackageRef> = packages.iter().step_by(20).cloned().collect();
    compare_with_naive(&db, &entries, "advisory-derived", &sample);
    // Workload 2: SBOM-like: one in ten packages has advisories (at its newest fixed
    // version), the rest are names no advisory mentions: lookup cost dominates.
    let mut sbom_like = Vec::new();
    for (i, p) in packages
        .iter()
        .filter(|p| !p.name.starts_with("not-vulnerable"))
        .step_by(7)
        .enumerate()
    {
        sbom_like.push(p.clone());
        for j in 0..9 {
            sbom_like.push(PackageRef {
                ecosystem: p.ecosystem.clone(),
                name: format!("unlisted-{i}-{j}"),
                version: "1.2.3".into(),
                source_name: None,
                purl: String::new(),
            });
        }
    }
    compare_with_naive(&db, &entries, "SBOM-like", &sbom_like);
    rematch_figure(db, &sbom_like, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}
