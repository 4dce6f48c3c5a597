//! Bounded random-input checks that run in `cargo test` (the fuzz targets in `fuzz/`
//! go further): comparators are total, reflexive and antisymmetric on arbitrary
//! strings; the OSV reader and range evaluation never panic on mangled records.

use std::cmp::Ordering;

use rampart_vulndb::matching::PreparedAffected;
use rampart_vulndb::osv::{parse_records, RecordFormat};
use rampart_vulndb::version::{compare, VersionScheme};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SCHEMES: [VersionScheme; 13] = [
    VersionScheme::Dpkg,
    VersionScheme::Rpm,
    VersionScheme::Apk,
    VersionScheme::Pep440,
    VersionScheme::Go,
    VersionScheme::Semver,
    VersionScheme::Maven,
    VersionScheme::RubyGems,
    VersionScheme::Packagist,
    VersionScheme::NuGet,
    VersionScheme::Cran,
    VersionScheme::Hackage,
    VersionScheme::Pub,
];

fn random_version(rng: &mut Rng) -> String {
    // Version-ish characters, plus a few that no grammar allows.
    const ALPHABET: &[&str] = &[
        "0",
        "1",
        "2",
        "9",
        "00",
        "10",
        ".",
        ".",
        "-",
        "+",
        "~",
        "^",
        "_",
        ":",
        "!",
        "a",
        "b",
        "rc",
        "alpha",
        "beta",
        "dev",
        "post",
        "pre",
        "p",
        "r",
        "v",
        "go",
        "final",
        "sp",
        "SNAPSHOT",
        "é",
        " ",
        "*",
        "99999999999999999999999",
    ];
    let len = rng.below(8);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len())])
        .collect()
}

#[test]
fn comparators_are_total_reflexive_and_antisymmetric_on_random_strings() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    // RAMPART_RANDOM_ITERS raises the count for a longer local run.
    let iterations: usize = std::env::var("RAMPART_RANDOM_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let mut checked = 0;
    for _ in 0..iterations {
        let a = random_version(&mut rng);
        let b = random_version(&mut rng);
        for scheme in SCHEMES {
            let forward = compare(scheme, &a, &b);
            let backward = compare(scheme, &b, &a);
            assert_eq!(forward, backward.reverse(), "{scheme:?}: {a:?} vs {b:?}");
            assert_eq!(
                compare(scheme, &a, &a),
                Ordering::Equal,
                "{scheme:?}: {a:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, iterations * SCHEMES.len());
}

#[test]
fn the_osv_reader_survives_mangled_records() {
    let base = r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
      "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1.0"],
      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}, {"limit": "3"}, {"last_affected": "1.5"}]}]}]}"#;
    let mut rng = Rng(0xfeed_beef_1234_5678);
    let mut parsed = 0;
    let mut rejected = 0;
    for _ in 0..3000 {
        let mut bytes = base.as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = rng.next() as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, b"{}[]\":,0.-~"[rng.below(11)]),
            }
        }
        for format in [RecordFormat::Json, RecordFormat::Yaml] {
            match parse_records(&bytes, format) {
                Ok(records) => {
                    parsed += 1;
                    for record in records {
                        let _ = rampart_vulndb::severity::assess(&record);
                        for a in &record.affected {
                            if let Some(p) = &a.package {
                                let prepared =
                                    PreparedAffected::new(&p.ecosystem, &a.ranges, &a.versions);
                                let _ = prepared.verdict("1.2");
                            }
                        }
                    }
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
            }
        }
    }
    assert!(
        parsed > 0 && rejected > 0,
        "parsed {parsed}, rejected {rejected}"
    );
}
