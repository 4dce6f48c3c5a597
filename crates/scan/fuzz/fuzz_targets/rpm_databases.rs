#![no_main]
//! Berkeley DB, NDB and header-blob parsing (SQLite itself is SQLite's to fuzz).
use libfuzzer_sys::fuzz_target;
use rampart_scan::catalog::rpm;

fuzz_target!(|data: &[u8]| {
    let _ = rpm::berkeley_blobs(data);
    let _ = rpm::ndb_blobs(data);
    let _ = rpm::parse_header(data);
});
