//! Decodes arbitrary bytes as a block body (what the decoder sees once a frame's
//! checksums pass), through the frame reader with valid checksums, and as a frame
//! summary. No input may panic; a body that decodes must re-encode to the same
//! records. The body is `rampart_recorder::fuzzing::block_decoder`, which
//! `tests/fuzz.rs` also runs on stable over a corpus and its mutations.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| rampart_recorder::fuzzing::block_decoder(data));
