//! The fuzz targets' bodies, shared by the cargo-fuzz targets in `fuzz/` (nightly,
//! libFuzzer) and the stable test `tests/fuzz.rs` (a corpus plus seeded mutations),
//! so both run exactly the same code. Each takes arbitrary bytes and panics only when
//! an invariant of the reader breaks; reading itself must never panic.

use crate::codec::{self, BlockEncoder, BlockSummary};
use crate::segment;

/// A segment file: header check, frame scan with resync, decompression and decoding
/// of every frame that checks out. An odd first byte puts a valid segment header in
/// front of the rest, so inputs reach the frames.
pub fn segment_reader(data: &[u8]) {
    let buf;
    let bytes = if data.first().is_some_and(|b| b & 1 == 1) {
        let mut b = segment::segment_header(1, 0).to_vec();
        b.extend_from_slice(&data[1..]);
        buf = b;
        &buf[..]
    } else {
        data
    };
    let (records, raw) = segment::read_segment_image_sized(bytes);
    // Every record takes at least two bytes of its block's body: more means a length
    // or a count was trusted that should not have been.
    assert!(
        records.len() * 2 <= raw,
        "{} records from {raw} bytes",
        records.len()
    );
}

/// A block body as the decoder meets it after decompression (the frame's checksums
/// passed, so this is the decoder's own defence), then the same bytes compressed and
/// framed with valid checksums through the frame reader, and as a frame summary.
/// A body that decodes must re-encode to records that decode the same.
pub fn block_decoder(data: &[u8]) {
    let direct = codec::decode_all(data);
    if let Ok(records) = &direct {
        // Every record begins with a tag byte and at least one more.
        assert!(
            records.len() * 2 <= data.len() + 1,
            "{} records",
            records.len()
        );
        let mut enc = BlockEncoder::default();
        for r in records {
            enc.push(r);
        }
        let (body, summary) = enc.finish();
        assert_eq!(summary.records as usize, records.len());
        let again = codec::decode_all(&body).map_err(|e| e.to_string());
        assert!(
            again.as_ref() == Ok(records),
            "re-encoded block decodes differently: {again:?}"
        );
    }
    // The in-place decoder (retro-hunts) must never panic either, and must agree.
    let in_place = codec::decode_events_in_place(data);
    if let Ok(records) = &direct {
        let events: Vec<_> = records
            .iter()
            .filter_map(|r| match r {
                crate::Record::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect();
        assert!(
            in_place.as_ref() == Ok(&events),
            "the in-place decoder reads events differently"
        );
    }
    thread_local! {
        // A compression context is large: one per thread, not one per input.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            std::cell::RefCell::new(zstd::bulk::Compressor::new(1).ok());
    }
    let frame = COMPRESSOR.with_borrow_mut(|c| {
        let summary = BlockSummary {
            records: 1,
            ..Default::default()
        };
        c.as_mut()
            .and_then(|c| segment::build_frame(data, summary, c).ok())
    });
    if let Some(frame) = frame {
        let framed = segment::decode_frame(&frame.bytes);
        assert_eq!(
            framed.as_ref().ok().map(Vec::len),
            direct.as_ref().ok().map(Vec::len),
            "the framed body reads back differently from the body"
        );
    }
    let _ = BlockSummary::decode(data);
}
