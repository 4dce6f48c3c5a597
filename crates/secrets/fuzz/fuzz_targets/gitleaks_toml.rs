//! Fuzzes the gitleaks TOML rule loader, then runs whatever rules loaded over
//! the same input, so regex translation and matching are exercised too.
//!
//! Run: `cargo +nightly fuzz run gitleaks_toml` from `crates/secrets`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_secrets::SecretScanner;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scanner) = SecretScanner::from_gitleaks_toml(text) {
        let _ = scanner.skipped_rules();
        let _ = scanner.scan("fuzz/input.txt", data);
    }
});
