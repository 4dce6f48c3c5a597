#![no_main]
use libfuzzer_sys::fuzz_target;
use rampart_scan::walk::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_member_bytes: 4 << 20, ..Limits::default() };
    let _ = rampart_scan::catalog::java::parse_archive("app.jar", data, &limits);
});
