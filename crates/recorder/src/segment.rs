//! The segment file format: a header, then block frames back to back.
//!
//! ```text
//! segment header (32 bytes)
//!   0  b"RMPSEG01"
//!   8  u64 segment id
//!  16  u64 created, ns since the Unix epoch
//!  24  u32 reserved (0)
//!  28  u32 CRC32C of bytes 0..28
//! block frame (40-byte header, then summary, then body)
//!   0  b"RBLK"
//!   4  u32 summary length
//!   8  u32 body length (zstd-compressed)
//!  12  u32 raw body length (uncompressed)
//!  16  u64 oldest record time
//!  24  u64 newest record time
//!  32  u32 CRC32C of bytes 0..32 (the header alone: lengths can be trusted before
//!      anything else is read, and a resync can tell a real header from data)
//!  36  u32 CRC32C of summary + body
//! ```
//!
//! All integers are little-endian. A frame is written with one `write` call; a frame
//! whose declared length runs past the end of the file is a torn tail.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

use crate::codec::{self, BlockSummary, CodecError};
use crate::record::Record;

pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"RMPSEG01";
pub(crate) const SEGMENT_HEADER_LEN: u64 = 32;
pub(crate) const FRAME_MAGIC: &[u8; 4] = b"RBLK";
pub(crate) const FRAME_HEADER_LEN: usize = 40;
/// Largest raw block accepted when reading (a bound against garbage lengths; the
/// writer seals blocks at a fraction of it).
pub(crate) const MAX_RAW_BLOCK: usize = 64 << 20;
const MAX_SUMMARY: usize = 16 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame header is not valid")]
    BadHeader,
    #[error("frame runs past the end of the segment")]
    Torn,
    #[error("frame checksum mismatch")]
    Checksum,
    #[error("block does not decompress: {0}")]
    Decompress(String),
    #[error("block does not decode: {0}")]
    Decode(#[from] CodecError),
}

pub(crate) fn segment_file_name(id: u64) -> String {
    format!("seg-{id:016x}.rseg")
}

pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".rseg")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub(crate) fn segment_header(id: u64, created_ns: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..16].copy_from_slice(&id.to_le_bytes());
    h[16..24].copy_from_slice(&created_ns.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a segment header: `(id, created_ns)`.
pub(crate) fn read_segment_header(f: &File) -> Result<(u64, u64), FrameError> {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    f.read_exact_at(&mut h, 0).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Torn
        } else {
            FrameError::Io(e)
        }
    })?;
    if &h[0..8] != SEGMENT_MAGIC || crc32c::crc32c(&h[0..28]) != le32(&h[28..32]) {
        return Err(FrameError::BadHeader);
    }
    Ok((le64(&h[8..16]), le64(&h[16..24])))
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// A sealed block, ready to write.
pub(crate) struct Frame {
    pub bytes: Vec<u8>,
    pub summary: BlockSummary,
    pub raw_len: usize,
}

/// Compresses a block body and frames it with its summary.
pub(crate) fn build_frame(
    body: &[u8],
    summary: BlockSummary,
    compressor: &mut zstd::bulk::Compressor<'_>,
) -> std::io::Result<Frame> {
    let compressed = compressor.compress(body)?;
    let mut sum = Vec::with_capacity(64 + summary.containers.len() * 100);
    summary.encode(&mut sum);
    let mut bytes = Vec::with_capacity(FRAME_HEADER_LEN + sum.len() + compressed.len());
    bytes.extend_from_slice(FRAME_MAGIC);
    bytes.extend_from_slice(&(sum.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&summary.min_ts.to_le_bytes());
    bytes.extend_from_slice(&summary.max_ts.to_le_bytes());
    let hcrc = crc32c::crc32c(&bytes[0..32]);
    bytes.extend_from_slice(&hcrc.to_le_bytes());
    let dcrc = crc32c::crc32c_append(crc32c::crc32c(&sum), &compressed);
    bytes.extend_from_slice(&dcrc.to_le_bytes());
    bytes.extend_from_slice(&sum);
    bytes.extend_from_slice(&compressed);
    Ok(Frame {
        bytes,
        summary,
        raw_len: body.len(),
    })
}

/// A frame header that passed its own checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHeader {
    pub summary_len: usize,
    pub body_len: usize,
    pub raw_len: usize,
    pub data_crc: u32,
}

impl FrameHeader {
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.summary_len + self.body_len
    }
}

pub(crate) fn parse_frame_header(h: &[u8]) -> Option<FrameHeader> {
    if h.len() < FRAME_HEADER_LEN || &h[0..4] != FRAME_MAGIC {
        return None;
    }
    if crc32c::crc32c(&h[0..32]) != le32(&h[32..36]) {
        return None;
    }
    let fh = FrameHeader {
        summary_len: le32(&h[4..8]) as usize,
        body_len: le32(&h[8..12]) as usize,
        raw_len: le32(&h[12..16]) as usize,
        data_crc: le32(&h[36..40]),
    };
    if fh.raw_len > MAX_RAW_BLOCK || fh.summary_len > MAX_SUMMARY || fh.body_len > MAX_RAW_BLOCK {
        return None;
    }
    Some(fh)
}

/// Reads and checks the frame at `offset` of `len` bytes (as the catalog has it),
/// into a buffer the caller reuses from block to block.
pub(crate) fn read_frame_into(
    f: &File,
    offset: u64,
    len: usize,
    buf: &mut Vec<u8>,
) -> Result<(), FrameError> {
    if !(FRAME_HEADER_LEN..=MAX_RAW_BLOCK + MAX_SUMMARY + FRAME_HEADER_LEN).contains(&len) {
        return Err(FrameError::BadHeader);
    }
    buf.resize(len, 0);
    f.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Torn
        } else {
            FrameError::Io(e)
        }
    })?;
    let h = parse_frame_header(buf).ok_or(FrameError::BadHeader)?;
    if h.frame_len() != len {
        return Err(FrameError::BadHeader);
    }
    if crc32c::crc32c(&buf[FRAME_HEADER_LEN..]) != h.data_crc {
        return Err(FrameError::Checksum);
    }
    Ok(())
}

/// Decompresses and decodes a checked frame's records.
pub(crate) fn decode_frame(frame: &[u8]) -> Result<Vec<Record>, FrameError> {
    let mut out = Vec::new();
    decode_frame_into(frame, &mut out, |_| true)?;
    Ok(out)
}

/// Decompresses a checked frame and appends the records `keep` accepts to `out`,
/// filtering as they decode (a record is moved once, into `out`). On an error `out`
/// is left as it was.
pub(crate) fn decode_frame_into(
    frame: &[u8],
    out: &mut Vec<Record>,
    keep: impl FnMut(&Record) -> bool,
) -> Result<(), FrameError> {
    let records = frame_records(frame);
    with_frame_body(frame, |raw| {
        // The summary's count is only a hint: bounded by what the body could hold and
        // by a few blocks' worth, so a lying summary cannot reserve gigabytes.
        out.reserve((records as usize).min(raw.len() / 8).min(1 << 16));
        codec::decode_into(raw, out, keep)
    })
}

/// The record count a checked frame's summary gives (0 when it does not say).
fn frame_records(frame: &[u8]) -> u32 {
    parse_frame_header(frame)
        .and_then(|h| frame.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.summary_len))
        .and_then(codec::summary_records)
        .unwrap_or(0)
}

/// Decompresses a checked frame's body and hands the raw body to `read` (a decoder).
pub(crate) fn with_frame_body(
    frame: &[u8],
    read: impl FnOnce(&[u8]) -> Result<(), CodecError>,
) -> Result<(), FrameError> {
    let h = parse_frame_header(frame).ok_or(FrameError::BadHeader)?;
    let start = FRAME_HEADER_LEN + h.summary_len;
    let body = frame
        .get(start..start + h.body_len)
        .ok_or(FrameError::Torn)?;
    thread_local! {
        // A decompression context and a body buffer per reading thread, not one per
        // block.
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            std::cell::RefCell::new(zstd::bulk::Decompressor::new().ok());
        static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    RAW.with_borrow_mut(|raw| {
        raw.clear();
        raw.reserve(h.raw_len);
        DECOMPRESSOR
            .with_borrow_mut(|d| match d {
                Some(d) => d.decompress_to_buffer(body, raw),
                None => zstd::bulk::decompress_to_buffer(body, raw),
            })
            .map_err(|e| FrameError::Decompress(e.to_string()))?;
        if raw.len() != h.raw_len {
            return Err(FrameError::Decompress(
                "length differs from the header".into(),
            ));
        }
        Ok(read(raw)?)
    })
}

/// What a scan of a segment found.
#[derive(Debug, Default)]
pub(crate) struct SegmentScan {
    /// Valid frames: offset, length, summary.
    pub frames: Vec<(u64, usize, BlockSummary)>,
    /// Frames skipped in the middle: offset and why.
    pub skipped: Vec<(u64, String)>,
    /// End of the last valid frame (where a torn tail starts).
    pub valid_end: u64,
    /// The file holds bytes past `valid_end` that are no frame.
    pub torn_tail: bool,
}

/// Scans frames from `from` (the segment header's end, or where the catalog stops),
/// checking each frame's checksums without decompressing. A frame that fails its data
/// checksum is skipped; a header that does not parse makes the scan look for the next
/// frame header that does. Bytes after the last valid frame that hold no valid frame
/// are a torn tail.
pub(crate) fn scan_segment(f: &File, from: u64) -> Result<SegmentScan, FrameError> {
    let len = f.metadata()?.len();
    let mut scan = SegmentScan {
        valid_end: from,
        ..Default::default()
    };
    if from >= len {
        return Ok(scan);
    }
    // Segments are bounded (tens of MiB); reading the rest at once keeps the resync
    // logic simple.
    let mut data = Vec::with_capacity((len - from) as usize);
    let mut file = f;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from))?;
    file.read_to_end(&mut data)?;
    scan.valid_end = from;
    scan_bytes(&data, from, &mut scan);
    scan.torn_tail = scan.valid_end < from + data.len() as u64;
    Ok(scan)
}

/// [`scan_segment`] over bytes that start at file offset `from`.
fn scan_bytes(data: &[u8], from: u64, scan: &mut SegmentScan) {
    let mut pos = 0usize;
    let mut bad_since: Option<usize> = None;
    while pos < data.len() {
        let h = match data.get(pos..pos + FRAME_HEADER_LEN) {
            Some(hb) => parse_frame_header(hb),
            None => None,
        };
        let Some(h) = h else {
            bad_since.get_or_insert(pos);
            pos = next_magic(data, pos + 1);
            continue;
        };
        let end = pos + h.frame_len();
        if end > data.len() {
            // Runs past the end: a torn write, unless a valid frame follows (then the
            // length was garbage that happened to pass the header checksum).
            bad_since.get_or_insert(pos);
            pos = next_magic(data, pos + 1);
            continue;
        }
        if crc32c::crc32c(&data[pos + FRAME_HEADER_LEN..end]) != h.data_crc {
            scan.skipped
                .push((from + pos as u64, "checksum mismatch".to_owned()));
            pos = end;
            continue;
        }
        let sum_bytes = &data[pos + FRAME_HEADER_LEN..pos + FRAME_HEADER_LEN + h.summary_len];
        let summary = match BlockSummary::decode(sum_bytes) {
            Ok(s) => s,
            Err(e) => {
                scan.skipped
                    .push((from + pos as u64, format!("summary: {e}")));
                pos = end;
                continue;
            }
        };
        if let Some(b) = bad_since.take() {
            scan.skipped.push((
                from + b as u64,
                format!("{} bytes that are no frame", pos - b),
            ));
        }
        scan.frames
            .push((from + pos as u64, h.frame_len(), summary));
        pos = end;
        scan.valid_end = from + pos as u64;
    }
}

/// A segment header, for tools that build segment images (the fuzz target).
#[doc(hidden)]
pub fn segment_header_bytes(id: u64, created_ns: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    segment_header(id, created_ns)
}

/// Reads a whole segment image from memory the way opening and querying read one:
/// header, frame scan, then each frame decompressed and decoded. Returns the records
/// that read back; never panics, whatever the bytes (the fuzz target's entry).
#[doc(hidden)]
pub fn read_segment_image(data: &[u8]) -> Vec<Record> {
    read_segment_image_sized(data).0
}

/// [`read_segment_image`], with the total raw (uncompressed) length of the frames
/// that decoded.
pub(crate) fn read_segment_image_sized(data: &[u8]) -> (Vec<Record>, usize) {
    let hl = SEGMENT_HEADER_LEN as usize;
    if data.len() < hl
        || &data[0..8] != SEGMENT_MAGIC
        || crc32c::crc32c(&data[0..28]) != le32(&data[28..32])
    {
        return (Vec::new(), 0);
    }
    let mut scan = SegmentScan::default();
    scan_bytes(&data[hl..], SEGMENT_HEADER_LEN, &mut scan);
    let mut out = Vec::new();
    let mut raw = 0;
    for (offset, len, _) in scan.frames {
        let start = offset as usize;
        if let Some(frame) = data.get(start..start + len) {
            if let Ok(recs) = decode_frame(frame) {
                raw += parse_frame_header(frame).map_or(0, |h| h.raw_len);
                out.extend(recs);
            }
        }
    }
    (out, raw)
}

fn next_magic(data: &[u8], from: usize) -> usize {
    if from >= data.len() {
        return data.len();
    }
    data[from..]
        .windows(FRAME_MAGIC.len())
        .position(|w| w == FRAME_MAGIC)
        .map(|p| from + p)
        .unwrap_or(data.len())
}
