#![no_main]
//! Go build info and cargo-auditable sections.
use libfuzzer_sys::fuzz_target;
use rampart_scan::walk::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_member_bytes: 4 << 20, ..Limits::default() };
    let _ = rampart_scan::catalog::binary::parse("usr/bin/x", data, &limits);
    let _ = rampart_scan::catalog::binary::parse_auditable("usr/bin/x", data, 4 << 20);
});
