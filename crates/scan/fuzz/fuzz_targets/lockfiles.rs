#![no_main]
use libfuzzer_sys::fuzz_target;
use rampart_scan::catalog::lockfile::{kind_for, parse};

const NAMES: [&str; 11] = [
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock",
    "requirements.txt", "go.mod", "Cargo.lock", "Gemfile.lock", "composer.lock", "pom.xml",
];

fuzz_target!(|data: &[u8]| {
    if let Some((&selector, rest)) = data.split_first() {
        let name = NAMES[selector as usize % NAMES.len()];
        if let Some(kind) = kind_for(name) {
            let _ = parse(kind, name, rest);
        }
    }
});
