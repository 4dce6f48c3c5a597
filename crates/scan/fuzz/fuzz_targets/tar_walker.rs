#![no_main]
//! Layer tar streams (compressed or not) through the walker and every cataloger.
use libfuzzer_sys::fuzz_target;
use rampart_scan::catalog::Collector;
use rampart_scan::walk::{decompress, walk_tar, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_layer_bytes: 64 << 20, max_file_bytes: 8 << 20, ..Limits::default() };
    let collector = Collector::new(true, limits.clone());
    if let Ok(reader) = decompress(data) {
        let _ = walk_tar(reader, "fuzz", &collector, &limits);
    }
});
