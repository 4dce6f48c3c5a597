#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rampart_scan::catalog::apk::parse_installed("lib/apk/db/installed", data);
});
