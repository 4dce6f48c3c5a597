//! Rampart's flight recorder: the history of every event, alert and container
//! lifecycle change on a node, kept on local disk for queries, retro-hunts and
//! incident bundles.
//!
//! This crate owns the on-disk format (append-only segment files of zstd-compressed,
//! CRC32C-checked blocks), the SQLite block catalog, retention, the writer thread, and
//! reading: filtered time-ordered queries, follow mode, process trees, retro-hunts
//! (through `rampart-detect`'s public engine) and incident bundles. It parses no
//! command line: the CLI and the node pipeline call this API.
//!
//! # Layout
//!
//! A directory (default [`DEFAULT_DIR`]) holds `seg-<id>.rseg` segment files, the
//! catalog `catalog.sqlite`, a `lock` file and `stats.json` (the writer's counters,
//! published every few seconds for other processes). A segment is a 32-byte header followed
//! by block frames ([`segment`] documents the bytes). A block holds up to ~256 KiB of
//! records (uncompressed) in the [`codec`] encoding, compressed with zstd, with a
//! summary beside it (time range, containers, kinds, exec ids, alert ids).
//!
//! # Invariants
//!
//! 1. **Segments are append-only and written by one writer.** The writer holds the
//!    directory's `flock` for its life; a segment is only ever appended to by the
//!    process that created it, and a new writer always starts a new segment. Readers
//!    in other processes never modify segments.
//! 2. **A frame is whole or absent.** A frame is written with one positioned write;
//!    if the write fails the segment is cut back to where the frame started. After a
//!    crash, bytes past the last frame that checks out are a torn tail, cut on the
//!    next open. So `kill -9` loses at most the blocks still open in memory (one per
//!    container being recorded, each bounded by the block size and
//!    [`RecorderConfig::max_block_age`]); everything sealed before reads back.
//! 3. **Every frame checks itself.** The header has its own CRC32C (lengths are
//!    trusted only after it passes) and the summary and body have another. A frame
//!    that fails is skipped with a warning naming its segment and offset; the frames
//!    around it stay readable, and reading never panics on any bytes.
//! 4. **The catalog is an index, never the truth.** A block is written to its segment
//!    before it is catalogued. On open, segments the catalog does not know, or knows
//!    less of, are scanned (frame headers and summaries only, no decompression) and
//!    catalogued; catalogued segments whose file is gone are forgotten; a lost or
//!    unreadable catalog is rebuilt from the segments.
//! 5. **Retention deletes whole segments, oldest first,** when the total size passes
//!    [`RecorderConfig::max_total_bytes`] or a segment's newest record is older than
//!    [`RecorderConfig::max_age`]; the segment being written is never deleted. The
//!    file goes before its catalog rows, so a crash in between cannot resurrect it.
//! 6. **Producers never block.** Appends go through a bounded queue with `try_send`;
//!    a full queue sheds the record and counts it. A full disk first deletes the
//!    oldest segment, then sheds the block and counts it; neither panics. A catalog
//!    that cannot be written (its disk full) leaves the block on disk and listed for
//!    cataloguing with the next one. Segment ids never repeat within a process.
//! 7. **Blocks decode on their own.** Interning tables start empty in every block, so
//!    a lost block loses only its own records.
//!
//! # Entry points
//!
//! [`Recorder::open`] / [`Recorder::open_read_only`], [`Writer::start`] for appends,
//! [`Recorder::query`] / [`Recorder::follow`] / [`Recorder::process_tree`] for reads,
//! [`Recorder::retro_hunt`] and [`Recorder::incident_bundle`].

pub mod catalog;
pub mod codec;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod hunt;
pub mod incident;
pub mod query;
pub mod record;
#[doc(hidden)]
pub mod sample;
pub mod segment;
pub mod store;
pub mod writer;

pub use catalog::{BlockRef, ContainerInfo};
pub use error::RecorderError;
pub use hunt::HuntReport;
pub use incident::BundleSummary;
pub use query::{compile_where, Follow, ProcessNode, ProcessTree, Query, QueryIter, RecordTypes};
pub use record::{LifecycleAction, LifecycleRecord, Record};
pub use store::{
    PublishedStats, Recorder, RecorderConfig, RepairReport, Stats, Summary, DEFAULT_BLOCK_BYTES,
    DEFAULT_DIR, STATS_FILE,
};
pub use writer::{LagProbe, Writer, WriterLag};
