#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rampart_scan::catalog::dpkg::parse_status("var/lib/dpkg/status", data);
});
