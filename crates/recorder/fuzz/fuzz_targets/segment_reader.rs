//! Reads arbitrary bytes as a segment file: header check, frame scan with resync,
//! decompression and decoding of every frame that checks out. No input may panic,
//! and no frame may decode into more records than its bytes could hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Half the inputs get a valid segment header, so the fuzzer reaches the frames.
    let mut buf;
    let bytes = if data.first().is_some_and(|b| b & 1 == 1) {
        buf = rampart_recorder::segment::segment_header_bytes(1, 0).to_vec();
        buf.extend_from_slice(&data[1..]);
        &buf[..]
    } else {
        data
    };
    let records = rampart_recorder::segment::read_segment_image(bytes);
    assert!(records.len() <= bytes.len());
});
