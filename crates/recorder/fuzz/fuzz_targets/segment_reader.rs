//! Reads arbitrary bytes as a segment file: header check, frame scan with resync,
//! decompression and decoding of every frame that checks out. No input may panic,
//! and no frame may decode into more records than its bytes could hold. The body is
//! `rampart_recorder::fuzzing::segment_reader`, which `tests/fuzz.rs` also runs on
//! stable over a corpus and its mutations.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rampart_recorder::fuzzing::segment_reader(data));
