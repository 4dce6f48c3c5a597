//! Every line of the osv-scalibr version fixtures, for every ecosystem Rampart orders.
//! Each line `a OP b` is checked both ways (`a OP b` and `b OP' a`).

use std::cmp::Ordering;
use std::path::PathBuf;

use rampart_vulndb::version::{compare, VersionScheme};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/versions/"
    ))
    .join(name)
}

/// Lines that fail on purpose, as (file, line text, reason). Keep it tiny.
const ALLOWED_FAILURES: &[(&str, &str, &str)] = &[];

fn run(file: &str, scheme: VersionScheme) {
    let path = fixture(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut checked = 0usize;
    let mut failures = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
            continue;
        }
        let pieces: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            pieces.len(),
            3,
            "{file}:{}: malformed line {line:?}",
            number + 1
        );
        let expected = match pieces[1] {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            other => panic!("{file}:{}: unknown operator {other}", number + 1),
        };
        checked += 1;
        let forward = compare(scheme, pieces[0], pieces[2]);
        let backward = compare(scheme, pieces[2], pieces[0]);
        if forward != expected || backward != expected.reverse() {
            let allowed = ALLOWED_FAILURES
                .iter()
                .any(|(f, l, _)| *f == file && *l == line);
            if !allowed {
                failures.push(format!(
                    "{file}:{}: {line}  (got {forward:?} / reversed {backward:?})",
                    number + 1
                ));
            }
        }
    }
    assert!(checked > 0, "{file}: no lines checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} lines failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{file}: {checked} lines pass");
}

macro_rules! fixture_test {
    ($name:ident, $file:literal, $scheme:expr) => {
        #[test]
        fn $name() {
            run($file, $scheme);
        }
    };
}

fixture_test!(debian, "debian-versions.txt", VersionScheme::Dpkg);
fixture_test!(
    debian_generated,
    "debian-versions-generated.txt",
    VersionScheme::Dpkg
);
fixture_test!(redhat, "redhat-versions.txt", VersionScheme::Rpm);
fixture_test!(alpine, "alpine-versions.txt", VersionScheme::Apk);
fixture_test!(
    alpine_generated,
    "alpine-versions-generated.txt",
    VersionScheme::Apk
);
fixture_test!(pypi, "pypi-versions.txt", VersionScheme::Pep440);
fixture_test!(
    pypi_generated,
    "pypi-versions-generated.txt",
    VersionScheme::Pep440
);
fixture_test!(semver_npm, "semver-versions.txt", VersionScheme::Semver);
fixture_test!(semver_go, "semver-versions.txt", VersionScheme::Go);
fixture_test!(maven, "maven-versions.txt", VersionScheme::Maven);
fixture_test!(
    maven_generated,
    "maven-versions-generated.txt",
    VersionScheme::Maven
);
fixture_test!(rubygems, "rubygems-versions.txt", VersionScheme::RubyGems);
fixture_test!(
    rubygems_generated,
    "rubygems-versions-generated.txt",
    VersionScheme::RubyGems
);
fixture_test!(
    packagist,
    "packagist-versions.txt",
    VersionScheme::Packagist
);
fixture_test!(
    packagist_generated,
    "packagist-versions-generated.txt",
    VersionScheme::Packagist
);
fixture_test!(nuget, "nuget-versions.txt", VersionScheme::NuGet);
fixture_test!(cran, "cran-versions.txt", VersionScheme::Cran);
fixture_test!(
    cran_generated,
    "cran-versions-generated.txt",
    VersionScheme::Cran
);
fixture_test!(hackage, "hackage-versions.txt", VersionScheme::Hackage);
fixture_test!(pub_dart, "pub-versions.txt", VersionScheme::Pub);

/// The ecosystem names the scan crate passes map onto the right scheme.
#[test]
fn ecosystem_names_map_to_schemes() {
    let cases = [
        ("Debian:12", VersionScheme::Dpkg),
        ("Ubuntu:22.04:LTS", VersionScheme::Dpkg),
        ("Alpine:v3.19", VersionScheme::Apk),
        ("Red Hat", VersionScheme::Rpm),
        ("Rocky Linux:9", VersionScheme::Rpm),
        ("PyPI", VersionScheme::Pep440),
        ("Go", VersionScheme::Go),
        ("crates.io", VersionScheme::Semver),
        ("npm", VersionScheme::Semver),
        ("Maven", VersionScheme::Maven),
        ("RubyGems", VersionScheme::RubyGems),
        ("Packagist", VersionScheme::Packagist),
    ];
    for (name, scheme) in cases {
        assert_eq!(VersionScheme::for_ecosystem(name), Some(scheme), "{name}");
    }
    assert_eq!(VersionScheme::for_ecosystem("NoSuchEcosystem"), None);
}
