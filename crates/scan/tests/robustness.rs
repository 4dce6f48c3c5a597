//! Bounded random-input tests (the cheap in-CI sibling of the fuzz targets): every
//! parser and the tar walker get mutated real inputs and pure noise, and must return
//! (a result or an error) without panicking.

mod common;

use common::*;
use rampart_scan::catalog::Collector;
use rampart_scan::catalog::{apk, binary, dpkg, java, lang, lockfile, rpm};
use rampart_scan::walk::{walk_tar, Limits};

/// xorshift64*: deterministic, so a failure is reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    let edits = 1 + rng.below(8);
    for _ in 0..edits {
        match rng.below(4) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            1 if !data.is_empty() => {
                let at = rng.below(data.len());
                data.truncate(at);
            }
            2 => {
                let at = rng.below(data.len() + 1);
                let len = rng.below(16);
                let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                data.splice(at..at, noise);
            }
            _ if data.len() > 8 => {
                // Overwrite four bytes with a large little/big-endian number (length fields).
                let i = rng.below(data.len() - 4);
                data[i..i + 4].copy_from_slice(&(rng.next() as u32 | 0x8000_0000).to_le_bytes());
            }
            _ => {}
        }
    }
    data
}

fn run_all(data: &[u8]) {
    let limits = Limits {
        max_member_bytes: 1 << 20,
        ..Limits::default()
    };
    let _ = dpkg::parse_status("s", data);
    let _ = apk::parse_installed("s", data);
    let _ = rpm::berkeley_blobs(data);
    let _ = rpm::ndb_blobs(data);
    let _ = rpm::parse_header(data);
    let _ = lang::parse_python_metadata("m", data);
    let _ = lang::parse_package_json("p", data);
    let _ = lang::parse_gemspec("g", data);
    let _ = lang::parse_composer_installed("c", data);
    let _ = java::parse_archive("a.jar", data, &limits);
    let _ = binary::parse("b", data, &limits);
    for name in [
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "Pipfile.lock",
        "requirements.txt",
        "go.mod",
        "Cargo.lock",
        "Gemfile.lock",
        "composer.lock",
        "pom.xml",
    ] {
        let _ = lockfile::parse(lockfile::kind_for(name).unwrap(), name, data);
    }
    let collector = Collector::new(true, limits.clone());
    let _ = walk_tar(data, "fuzz", &collector, &limits);
}

#[test]
fn parsers_survive_mutated_real_inputs() {
    let status = std::fs::read("/var/lib/dpkg/status").unwrap();
    let seeds: Vec<Vec<u8>> = vec![
        status[..status.len().min(20_000)].to_vec(),
        std::fs::read(fixtures().join("pkgdb/rpm/libuuid-bdb/Packages")).unwrap(),
        std::fs::read(fixtures().join("pkgdb/rpm/sle15-bci-ndb/Packages.db")).unwrap()[..200_000
            .min(
                std::fs::metadata(fixtures().join("pkgdb/rpm/sle15-bci-ndb/Packages.db"))
                    .unwrap()
                    .len() as usize,
            )]
            .to_vec(),
        b"P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\n".to_vec(),
        br#"{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1"}}}"#.to_vec(),
        layer(&[
            ("var/lib/dpkg/status", file(&status[..4000])),
            ("a/.wh.b", file("")),
            ("lib/apk/db/installed", file("P:a\nV:1\n")),
        ]),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        run_all(seed);
        for _ in 0..60 {
            run_all(&mutate(&mut rng, seed));
        }
    }
    for _ in 0..200 {
        let len = rng.below(2048);
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        run_all(&noise);
    }
    // The real BDB database still parses after all that (the parsers are pure).
    assert_eq!(rpm::read_headers(&seeds[1]).unwrap().len(), 1);
}
