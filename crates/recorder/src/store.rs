//! The recorder directory: opening (with repair), reading blocks, and the append side
//! the writer thread drives (segments, frames, catalog rows, retention).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::catalog::{BlockRef, Catalog, ContainerInfo};
use crate::codec::BlockSummary;
use crate::error::RecorderError;
use crate::record::Record;
use crate::segment::{self, FrameError};

/// Where the recorder keeps its data unless configured otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/rampart/recorder";
/// Uncompressed size at which a block is sealed.
pub const DEFAULT_BLOCK_BYTES: usize = 256 * 1024;

const CATALOG_FILE: &str = "catalog.sqlite";
/// The writer's counters, published for other processes (`rampart query --stats`).
pub const STATS_FILE: &str = "stats.json";
const LOCK_FILE: &str = "lock";

/// How the recorder stores and bounds its history.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub dir: PathBuf,
    /// Total size of all segments; the oldest segments are deleted past it.
    pub max_total_bytes: u64,
    /// Segments whose newest record is older than this are deleted.
    pub max_age: Option<Duration>,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Uncompressed size at which a block is sealed.
    pub block_bytes: usize,
    /// A block open longer than this is sealed (bounds what a crash loses and how
    /// late `follow` sees records).
    pub max_block_age: Duration,
    /// A block is sealed before a record that is this much newer than its oldest
    /// (in record time): a block's time range stays short whatever the rate, so a
    /// time-range query decodes little outside its range (live, `max_block_age`
    /// bounds it the same way; a replay or backfill needs this).
    pub max_block_span: Duration,
    /// Blocks open at once, one per container; a container beyond it seals the block
    /// that least recently took a record.
    pub max_open_blocks: usize,
    /// Records the writer's queue holds before producers' records are shed.
    pub queue_capacity: usize,
    /// zstd level of block bodies.
    pub zstd_level: i32,
    /// fdatasync a segment when a flush is asked for and when it is closed.
    pub sync_on_flush: bool,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(DEFAULT_DIR),
            max_total_bytes: 10 << 30,
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            segment_bytes: 64 << 20,
            block_bytes: DEFAULT_BLOCK_BYTES,
            max_block_age: Duration::from_secs(5),
            max_block_span: Duration::from_secs(60),
            max_open_blocks: 16,
            queue_capacity: 65_536,
            zstd_level: 1,
            sync_on_flush: true,
        }
    }
}

impl RecorderConfig {
    pub fn with_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }
}

/// Counters of the recorder (monotonic since open).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appended: AtomicU64,
    pub shed: AtomicU64,
    pub shed_disk_full: AtomicU64,
    pub blocks: AtomicU64,
    pub bytes: AtomicU64,
    pub raw_bytes: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub write_errors: AtomicU64,
    pub catalog_errors: AtomicU64,
    pub corrupt_blocks: AtomicU64,
}

/// A snapshot of the recorder's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Records taken by the writer (events, alerts, lifecycle records).
    pub appended: u64,
    /// Records shed because the writer's queue was full.
    pub shed: u64,
    /// Records shed because the disk was full (after deleting old segments failed),
    /// plus the losses the shed blocks' `lost` marks reported (passed on, not lost).
    pub shed_disk_full: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Bytes written to segments (frames).
    pub bytes: u64,
    /// Uncompressed bytes of the blocks written.
    pub raw_bytes: u64,
    /// Segments deleted by retention or to make room.
    pub segments_deleted: u64,
    pub write_errors: u64,
    /// Catalog updates that failed (retried; the blocks are on disk).
    pub catalog_errors: u64,
    /// Blocks skipped while reading because they failed their checksum or decoding.
    pub corrupt_blocks: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            appended: g(&self.appended),
            shed: g(&self.shed),
            shed_disk_full: g(&self.shed_disk_full),
            blocks: g(&self.blocks),
            bytes: g(&self.bytes),
            raw_bytes: g(&self.raw_bytes),
            segments_deleted: g(&self.segments_deleted),
            write_errors: g(&self.write_errors),
            catalog_errors: g(&self.catalog_errors),
            corrupt_blocks: g(&self.corrupt_blocks),
        }
    }
}

/// The writer's counters as it last published them (every few seconds and at close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedStats {
    /// The writing process.
    pub pid: u32,
    /// When they were published, ns since the Unix epoch.
    pub updated_ns: u64,
    pub stats: Stats,
}

/// What the recording holds, from the catalog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub segments: u64,
    /// Bytes of the segments' catalogued frames.
    pub bytes: u64,
    pub blocks: u64,
    pub records: u64,
    pub events: u64,
    pub containers: u64,
    /// Oldest and newest record times, ns since the Unix epoch.
    pub oldest_ns: Option<u64>,
    pub newest_ns: Option<u64>,
}

/// What opening found and repaired.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// Blocks added to the catalog from segment scans (catalog lost or behind).
    pub blocks_recovered: usize,
    /// Torn tails cut: segment id, bytes removed.
    pub torn_tails: Vec<(u64, u64)>,
    /// Frames that failed their checks: segment id, offset, why.
    pub corrupt: Vec<(u64, u64, String)>,
    /// Catalogued segments whose file was gone.
    pub segments_missing: Vec<u64>,
}

/// An open recorder directory. Shared (`Arc`) by the writer thread and any number of
/// readers; reads never wait for the writer beyond a short catalog lookup.
pub struct Recorder {
    pub(crate) cfg: RecorderConfig,
    catalog: Mutex<Catalog>,
    files: Mutex<FxHashMap<u64, Arc<File>>>,
    pub(crate) counters: Counters,
    /// Id of the newest block written by this process, with a condvar for `follow`.
    pub(crate) sealed: (Mutex<i64>, Condvar),
    pub(crate) writer_running: AtomicBool,
    writable: bool,
    // Held for the recorder's life when writable (released by the kernel on kill -9).
    _lock: Option<File>,
    repair: RepairReport,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.cfg.dir)
            .field("writable", &self.writable)
            .finish()
    }
}

fn try_lock(dir: &Path) -> Result<Option<File>, RecorderError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(Some(f))
    } else {
        Ok(None)
    }
}

impl Recorder {
    /// Opens (creating) the directory for writing and reading: takes the directory's
    /// lock, repairs the catalog from the segments and cuts torn tails.
    pub fn open(cfg: RecorderConfig) -> Result<Arc<Recorder>, RecorderError> {
        std::fs::create_dir_all(&cfg.dir).map_err(|source| RecorderError::Dir {
            path: cfg.dir.clone(),
            source,
        })?;
        // A writer that is exiting (or a child forked by this process, until it execs)
        // may hold the lock a moment longer.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let lock = loop {
            match try_lock(&cfg.dir)? {
                Some(l) => break l,
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                None => return Err(RecorderError::Locked(cfg.dir.clone())),
            }
        };
        Self::open_inner(cfg, Some(lock))
    }

    /// Opens the directory for reading only, next to a writer that may be running in
    /// another process. When no writer holds the directory, the catalog is repaired
    /// first as [`Recorder::open`] would.
    pub fn open_read_only(dir: impl Into<PathBuf>) -> Result<Arc<Recorder>, RecorderError> {
        let cfg = RecorderConfig::with_dir(dir);
        if !cfg.dir.is_dir() {
            return Err(RecorderError::Dir {
                path: cfg.dir.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let lock = try_lock(&cfg.dir)?;
        let repaired = lock.is_some();
        let r = Self::open_inner(cfg, lock)?;
        let mut r = Arc::into_inner(r).ok_or(RecorderError::ReadOnly)?;
        r.writable = false;
        // Released: a writer may start while we read.
        r._lock = None;
        let _ = repaired;
        Ok(Arc::new(r))
    }

    fn open_inner(cfg: RecorderConfig, lock: Option<File>) -> Result<Arc<Recorder>, RecorderError> {
        let cat_path = cfg.dir.join(CATALOG_FILE);
        let catalog = match Catalog::open(&cat_path) {
            Ok(c) => c,
            Err(e) if lock.is_some() => {
                // A damaged catalog is only an index: move it aside and rebuild.
                tracing::warn!(error = %e, path = %cat_path.display(), "recorder catalog unreadable, rebuilding it from the segments");
                let aside = cfg.dir.join(format!("{CATALOG_FILE}.bad"));
                let _ = std::fs::rename(&cat_path, &aside);
                for ext in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(cfg.dir.join(format!("{CATALOG_FILE}{ext}")));
                }
                Catalog::open(&cat_path)?
            }
            Err(e) => return Err(e.into()),
        };
        let writable = lock.is_some();
        let mut rec = Recorder {
            cfg,
            catalog: Mutex::new(catalog),
            files: Mutex::new(FxHashMap::default()),
            counters: Counters::default(),
            sealed: (Mutex::new(0), Condvar::new()),
            writer_running: AtomicBool::new(false),
            writable,
            _lock: lock,
            repair: RepairReport::default(),
        };
        if writable {
            rec.repair = rec.repair()?;
        }
        Ok(Arc::new(rec))
    }

    pub fn config(&self) -> &RecorderConfig {
        &self.cfg
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// What opening repaired.
    pub fn repair_report(&self) -> &RepairReport {
        &self.repair
    }

    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    pub(crate) fn catalog(&self) -> MutexGuard<'_, Catalog> {
        // A panic while holding the lock leaves the catalog usable (SQLite is
        // transactional), so a poisoned lock is taken over.
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn segment_path(&self, id: u64) -> PathBuf {
        self.cfg.dir.join(segment::segment_file_name(id))
    }

    fn segment_ids_on_disk(&self) -> Result<Vec<u64>, RecorderError> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&self.cfg.dir)? {
            let e = e?;
            if let Some(id) = e
                .file_name()
                .to_str()
                .and_then(segment::parse_segment_file_name)
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Brings the catalog in line with the segments (see the crate's invariants).
    fn repair(&self) -> Result<RepairReport, RecorderError> {
        let mut report = RepairReport::default();
        let on_disk = self.segment_ids_on_disk()?;
        let mut cat = self.catalog();
        let rows: BTreeMap<u64, u64> = cat
            .segments()?
            .into_iter()
            .map(|s| (s.id, s.bytes))
            .collect();
        for (&id, _) in rows.iter() {
            if on_disk.binary_search(&id).is_err() {
                tracing::warn!(
                    segment = id,
                    "recorder segment listed in the catalog is gone; forgetting its blocks"
                );
                cat.remove_segment(id)?;
                report.segments_missing.push(id);
            }
        }
        for id in on_disk {
            let path = self.segment_path(id);
            let f = OpenOptions::new().read(true).write(true).open(&path)?;
            let len = f.metadata()?.len();
            match segment::read_segment_header(&f) {
                Ok(_) => {}
                Err(FrameError::Torn) => {
                    // Killed while creating it: nothing was ever written to it.
                    tracing::warn!(
                        segment = id,
                        "recorder segment without a complete header removed"
                    );
                    drop(f);
                    std::fs::remove_file(&path)?;
                    cat.remove_segment(id)?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(segment = id, error = %e, "recorder segment header is not valid; segment ignored");
                    report.corrupt.push((id, 0, e.to_string()));
                    continue;
                }
            }
            let mut from = rows
                .get(&id)
                .copied()
                .unwrap_or(segment::SEGMENT_HEADER_LEN)
                .max(segment::SEGMENT_HEADER_LEN);
            if from > len {
                // The file is shorter than the catalog says (lost on power failure):
                // forget what is gone and rescan what is left.
                cat.truncate_segment(id, len)?;
                from = segment::SEGMENT_HEADER_LEN;
            }
            cat.add_segment(id, from)?;
            let scan = segment::scan_segment(&f, from).map_err(|e| match e {
                FrameError::Io(io) => RecorderError::Io(io),
                other => RecorderError::Io(std::io::Error::other(other.to_string())),
            })?;
            for (offset, length, summary) in &scan.frames {
                cat.add_block(id, *offset, *length, summary)?;
                report.blocks_recovered += 1;
            }
            for (offset, why) in scan.skipped {
                tracing::warn!(segment = id, offset, reason = %why, "recorder block skipped while scanning: {}", path.display());
                report.corrupt.push((id, offset, why));
            }
            if scan.torn_tail {
                let cut = len - scan.valid_end;
                tracing::warn!(
                    segment = id,
                    offset = scan.valid_end,
                    bytes = cut,
                    "recorder segment has a torn tail; cutting it"
                );
                f.set_len(scan.valid_end)?;
                cat.truncate_segment(id, scan.valid_end)?;
                report.torn_tails.push((id, cut));
            }
        }
        Ok(report)
    }

    fn file(&self, segment: u64) -> std::io::Result<Arc<File>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(&segment) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(self.segment_path(segment))?);
        // Bounded: descriptors of deleted segments are dropped by retention, and a
        // reader-only process keeps at most what it read.
        if files.len() > 256 {
            files.clear();
        }
        files.insert(segment, f.clone());
        Ok(f)
    }

    pub(crate) fn forget_file(&self, segment: u64) {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.remove(&segment);
    }

    /// Reads a block's records. A block that fails its checks is reported (with its
    /// segment and offset) and counted; its segment deleted by retention meanwhile
    /// reads as empty.
    pub(crate) fn read_block(&self, b: &BlockRef) -> Result<Vec<Record>, FrameError> {
        let mut out = Vec::new();
        self.read_block_into(b, &mut out, |_| true)?;
        Ok(out)
    }

    /// [`Recorder::read_block`], appending the records `keep` accepts to `out`.
    pub(crate) fn read_block_into(
        &self,
        b: &BlockRef,
        out: &mut Vec<Record>,
        keep: impl FnMut(&Record) -> bool,
    ) -> Result<(), FrameError> {
        self.read_block_with(b, |frame| segment::decode_frame_into(frame, out, keep))
    }

    /// Reads and checks block `b`'s frame and hands its raw (decompressed) body to
    /// `read`, which decodes it as it likes (a retro-hunt decodes events in place).
    /// A block that fails is counted and logged as [`Recorder::read_block_into`] does.
    pub(crate) fn read_block_body(
        &self,
        b: &BlockRef,
        read: impl FnOnce(&[u8]) -> Result<(), crate::codec::CodecError>,
    ) -> Result<(), FrameError> {
        self.read_block_with(b, |frame| segment::with_frame_body(frame, read))
    }

    fn read_block_with(
        &self,
        b: &BlockRef,
        decode: impl FnOnce(&[u8]) -> Result<(), FrameError>,
    ) -> Result<(), FrameError> {
        thread_local! {
            // The frame's bytes, reused from block to block by each reading thread.
            static FRAME: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let f = match self.file(b.segment) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let res = FRAME.with_borrow_mut(|buf| {
            segment::read_frame_into(&f, b.offset, b.length, buf).and_then(|()| decode(buf))
        });
        if let Err(e) = &res {
            self.counters.corrupt_blocks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                segment = %self.segment_path(b.segment).display(),
                offset = b.offset,
                error = %e,
                "recorder block skipped"
            );
        }
        res
    }

    /// Containers the recorder has records of, running or removed.
    pub fn containers(&self) -> Result<Vec<ContainerInfo>, RecorderError> {
        Ok(self.catalog().containers()?)
    }

    /// Blocks and events in the catalog.
    pub fn totals(&self) -> Result<(u64, u64), RecorderError> {
        Ok(self.catalog().totals()?)
    }

    /// What the recording holds, from the catalog.
    pub fn summary(&self) -> Result<Summary, RecorderError> {
        Ok(self.catalog().summary()?)
    }

    /// Writes the counters to [`STATS_FILE`] (whole or not at all; a full disk only
    /// skips this round).
    pub(crate) fn publish_stats(&self) {
        let p = PublishedStats {
            pid: std::process::id(),
            updated_ns: now_ns(),
            stats: self.stats(),
        };
        let tmp = self.cfg.dir.join(format!("{STATS_FILE}.tmp"));
        let ok = serde_json::to_vec(&p)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|_| std::fs::rename(&tmp, self.cfg.dir.join(STATS_FILE)));
        if let Err(e) = ok {
            tracing::debug!(error = %e, "recorder counters not published");
        }
    }

    /// The counters the writer (this process's or another's) last published.
    pub fn published_stats(&self) -> Option<PublishedStats> {
        let b = std::fs::read(self.cfg.dir.join(STATS_FILE)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Bytes of all segment files.
    pub fn disk_bytes(&self) -> Result<u64, RecorderError> {
        let mut total = 0;
        for id in self.segment_ids_on_disk()? {
            total += std::fs::metadata(self.segment_path(id))
                .map(|m| m.len())
                .unwrap_or(0);
        }
        Ok(total)
    }

    pub(crate) fn wait_sealed(&self, after: i64, timeout: Duration) -> i64 {
        let (m, cv) = &self.sealed;
        let g = m.lock().unwrap_or_else(|p| p.into_inner());
        if *g > after {
            return *g;
        }
        let (g, _) = cv
            .wait_timeout(g, timeout)
            .unwrap_or_else(|p| p.into_inner());
        *g
    }
}

/// The append side: the active segment, its rolling, and retention. Owned by the
/// writer thread (one per recorder).
pub(crate) struct Appender {
    rec: Arc<Recorder>,
    active: Option<(u64, File, u64)>,
    /// Every segment: size and newest record time.
    segments: BTreeMap<u64, (u64, Option<u64>)>,
    compressor: zstd::bulk::Compressor<'static>,
    /// Blocks written whose catalog rows failed (the catalog's disk full, say): tried
    /// again before the next block is catalogued, so queries in this process see them
    /// once the catalog works again (a reopen would find them in any case).
    uncatalogued: std::collections::VecDeque<(u64, u64, usize, BlockSummary)>,
    /// Segments deleted whose catalog rows could not be removed yet.
    unforgotten: Vec<u64>,
    /// The newest segment id this process has used.
    last_segment: u64,
}

/// Blocks kept for cataloguing later; past it the oldest are left to the next open's
/// repair scan.
const MAX_UNCATALOGUED: usize = 4096;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Appender {
    pub fn new(rec: Arc<Recorder>) -> Result<Self, RecorderError> {
        if !rec.writable {
            return Err(RecorderError::ReadOnly);
        }
        let segments = rec
            .catalog()
            .segments()?
            .into_iter()
            .map(|s| (s.id, (s.bytes, s.max_ts)))
            .collect();
        let compressor = zstd::bulk::Compressor::new(rec.cfg.zstd_level)?;
        Ok(Self {
            rec,
            active: None,
            segments,
            compressor,
            uncatalogued: Default::default(),
            unforgotten: Vec::new(),
            last_segment: 0,
        })
    }

    fn open_segment(&mut self) -> Result<(), RecorderError> {
        // Always a new segment: a segment written before a crash is never appended to.
        let id = self
            .rec
            .segment_ids_on_disk()?
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.segments.keys().next_back().copied().unwrap_or(0))
            .max(self.last_segment)
            + 1;
        // Never an id used before in this process, even once all its segments are
        // deleted: a catalog that could not forget one yet must not mix it up.
        self.last_segment = id;
        let path = self.rec.segment_path(id);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        if let Err(e) = f.write_all_at(&segment::segment_header(id, now_ns()), 0) {
            // A full disk: no empty segment left behind for every block that fails.
            drop(f);
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        if let Err(e) = self
            .rec
            .catalog()
            .add_segment(id, segment::SEGMENT_HEADER_LEN)
        {
            // Its first block's catalog rows add it (or the next open's repair).
            tracing::warn!(segment = id, error = %e, "recorder segment not catalogued yet");
        }
        self.segments
            .insert(id, (segment::SEGMENT_HEADER_LEN, None));
        self.active = Some((id, f, segment::SEGMENT_HEADER_LEN));
        Ok(())
    }

    /// Closes the active segment (the next block starts a new one).
    pub fn roll(&mut self) {
        if let Some((_, f, _)) = self.active.take() {
            if self.rec.cfg.sync_on_flush {
                let _ = f.sync_data();
            }
        }
    }

    pub fn publish_stats(&self) {
        self.rec.publish_stats();
    }

    pub fn sync_on_flush(&self) -> bool {
        self.rec.cfg.sync_on_flush
    }

    pub fn sync(&self) {
        if let Some((_, f, _)) = &self.active {
            let _ = f.sync_data();
        }
    }

    /// Compresses, frames and writes one block, then catalogues it. Never panics:
    /// a block that cannot be written is counted as shed.
    pub fn write_block(&mut self, body: &[u8], summary: BlockSummary) {
        let records = u64::from(summary.records) + summary.recorder_losses;
        let frame = match segment::build_frame(body, summary, &mut self.compressor) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "recorder block not compressed; shed");
                self.rec
                    .counters
                    .write_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.rec
                    .counters
                    .shed_disk_full
                    .fetch_add(records, Ordering::Relaxed);
                return;
            }
        };
        let mut retried = false;
        loop {
            match self.try_write(&frame) {
                Ok(()) => return,
                Err(e) => {
                    let full = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
                    // A file size limit: a new segment starts below it.
                    let too_big = e.raw_os_error() == Some(libc::EFBIG);
                    self.rec
                        .counters
                        .write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if !retried && full && self.delete_oldest() {
                        tracing::warn!(
                            "recorder disk full: deleted the oldest segment to make room"
                        );
                        retried = true;
                        continue;
                    }
                    if !retried && too_big {
                        self.roll();
                        retried = true;
                        continue;
                    }
                    tracing::warn!(error = %e, records, "recorder block not written; shed");
                    self.rec
                        .counters
                        .shed_disk_full
                        .fetch_add(records, Ordering::Relaxed);
                    // Start afresh next time (the failed file may be in a bad state).
                    self.roll();
                    return;
                }
            }
        }
    }

    fn try_write(&mut self, frame: &segment::Frame) -> std::io::Result<()> {
        let len = frame.bytes.len() as u64;
        let over = self.active.as_ref().is_some_and(|(_, _, end)| {
            *end > segment::SEGMENT_HEADER_LEN && end + len > self.rec.cfg.segment_bytes
        });
        if over {
            self.roll();
            self.enforce_retention();
        }
        if self.active.is_none() {
            self.open_segment().map_err(|e| match e {
                RecorderError::Io(io) => io,
                other => std::io::Error::other(other.to_string()),
            })?;
        }
        let Some((id, f, end)) = self.active.as_mut() else {
            return Err(std::io::Error::other("no active segment"));
        };
        let offset = *end;
        if let Err(e) = f.write_all_at(&frame.bytes, offset) {
            // Cut whatever part of the frame made it, so the segment ends on a frame.
            let _ = f.set_len(offset);
            return Err(e);
        }
        *end += len;
        let id = *id;
        let seg = self.segments.entry(id).or_insert((0, None));
        seg.0 = offset + len;
        seg.1 = Some(seg.1.unwrap_or(0).max(frame.summary.max_ts));
        let c = &self.rec.counters;
        c.blocks.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(len, Ordering::Relaxed);
        c.raw_bytes
            .fetch_add(frame.raw_len as u64, Ordering::Relaxed);
        self.uncatalogued
            .push_back((id, offset, frame.bytes.len(), frame.summary.clone()));
        self.catalogue_pending();
        Ok(())
    }

    /// Catalogues the blocks written but not catalogued yet, oldest first, stopping at
    /// the first failure (kept for the next block).
    fn catalogue_pending(&mut self) {
        while let Some(&id) = self.unforgotten.last() {
            if self.rec.catalog().remove_segment(id).is_err() {
                break;
            }
            self.unforgotten.pop();
        }
        let mut newest = None;
        while let Some((segment, offset, length, summary)) = self.uncatalogued.front() {
            let added = self
                .rec
                .catalog()
                .add_block(*segment, *offset, *length, summary);
            match added {
                Ok(b) => {
                    newest = Some(b);
                    self.uncatalogued.pop_front();
                }
                Err(e) => {
                    // The frame is on disk: tried again with the next block, and the
                    // next open's repair catalogues it whatever happens here.
                    tracing::warn!(error = %e, segment, offset, pending = self.uncatalogued.len(), "recorder block written but not catalogued yet");
                    self.rec
                        .counters
                        .catalog_errors
                        .fetch_add(1, Ordering::Relaxed);
                    while self.uncatalogued.len() > MAX_UNCATALOGUED {
                        self.uncatalogued.pop_front();
                    }
                    break;
                }
            }
        }
        if let Some(b) = newest {
            let (m, cv) = &self.rec.sealed;
            let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
            *g = (*g).max(b);
            cv.notify_all();
        }
    }

    /// Deletes the oldest segment that is not being written; false when none.
    fn delete_oldest(&mut self) -> bool {
        let active = self.active.as_ref().map(|a| a.0);
        let Some(&id) = self.segments.keys().find(|&&id| Some(id) != active) else {
            return false;
        };
        self.delete_segment(id);
        true
    }

    fn delete_segment(&mut self, id: u64) {
        // File first: a crash between the two leaves catalog rows for a missing file,
        // which the next open forgets; the other order could bring the segment back.
        match std::fs::remove_file(self.rec.segment_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(segment = id, error = %e, "recorder segment not deleted");
                return;
            }
        }
        self.rec.forget_file(id);
        self.uncatalogued.retain(|b| b.0 != id);
        if let Err(e) = self.rec.catalog().remove_segment(id) {
            // Tried again with the next block (reads of its blocks find no file and
            // return nothing meanwhile).
            tracing::warn!(segment = id, error = %e, "recorder segment deleted but still catalogued");
            self.rec
                .counters
                .catalog_errors
                .fetch_add(1, Ordering::Relaxed);
            self.unforgotten.push(id);
        }
        self.segments.remove(&id);
        self.rec
            .counters
            .segments_deleted
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Deletes the oldest segments while over the size bound, and those past the age
    /// bound. The active segment is never deleted.
    pub fn enforce_retention(&mut self) {
        let cfg = &self.rec.cfg;
        let max_total = cfg.max_total_bytes;
        let cutoff = cfg
            .max_age
            .map(|a| now_ns().saturating_sub(a.as_nanos() as u64));
        let active = self.active.as_ref().map(|a| a.0);
        let mut total: u64 = self.segments.values().map(|s| s.0).sum();
        let ids: Vec<(u64, u64, Option<u64>)> = self
            .segments
            .iter()
            .map(|(id, (b, m))| (*id, *b, *m))
            .collect();
        for (id, bytes, max_ts) in ids {
            if Some(id) == active {
                continue;
            }
            let too_old = matches!((cutoff, max_ts), (Some(c), Some(m)) if m < c);
            if total > max_total || too_old {
                self.delete_segment(id);
                total = total.saturating_sub(bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::BlockEncoder;
    use crate::sample;

    fn cfg(dir: &Path) -> RecorderConfig {
        RecorderConfig {
            max_age: None,
            ..RecorderConfig::with_dir(dir)
        }
    }

    /// Writes blocks of `per_block` events straight through the append side.
    fn write_blocks(rec: &Arc<Recorder>, blocks: usize, per_block: usize) {
        let mut app = Appender::new(rec.clone()).unwrap();
        let mut enc = BlockEncoder::default();
        let mut ts = 1_000;
        for b in 0..blocks {
            for i in 0..per_block {
                ts += 1;
                let c = format!("c{:02}{}", b % 3, "0".repeat(60));
                enc.push(&Record::Event(sample::event(
                    ts,
                    ts,
                    Some(&c),
                    i as u32,
                    "/etc/hosts",
                )));
            }
            let (body, summary) = enc.finish();
            app.write_block(&body, summary);
        }
        app.roll();
    }

    fn all_records(rec: &Recorder) -> Vec<Record> {
        let blocks = rec
            .catalog()
            .blocks(0, u64::MAX, None, None, true, None)
            .unwrap();
        blocks
            .iter()
            .flat_map(|b| rec.read_block(b).unwrap_or_default())
            .collect()
    }

    #[test]
    fn blocks_read_back_and_catalog_rebuilds_from_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let rec = Recorder::open(cfg(dir.path())).unwrap();
            write_blocks(&rec, 5, 100);
            assert_eq!(all_records(&rec).len(), 500);
            assert_eq!(rec.stats().blocks, 5);
        }
        std::fs::remove_file(dir.path().join(CATALOG_FILE)).unwrap();
        let _ = std::fs::remove_file(dir.path().join("catalog.sqlite-wal"));
        let rec = Recorder::open(cfg(dir.path())).unwrap();
        assert_eq!(rec.repair_report().blocks_recovered, 5);
        assert_eq!(all_records(&rec).len(), 500);
        assert_eq!(rec.containers().unwrap().len(), 3);
    }

    #[test]
    fn torn_tail_is_cut_and_the_rest_reads() {
        let dir = tempfile::tempdir().unwrap();
        {
            let rec = Recorder::open(cfg(dir.path())).unwrap();
            write_blocks(&rec, 3, 50);
        }
        let seg = dir.path().join(segment::segment_file_name(1));
        let len = std::fs::metadata(&seg).unwrap().len();
        // Half of a frame as a killed write leaves it.
        let bytes = std::fs::read(&seg).unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, &bytes[32..32 + 200]).unwrap();
        drop(f);
        let rec = Recorder::open(cfg(dir.path())).unwrap();
        assert_eq!(rec.repair_report().torn_tails, vec![(1, 200)]);
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
        assert_eq!(all_records(&rec).len(), 150);
    }

    #[test]
    fn corrupt_middle_block_is_skipped_and_named() {
        let dir = tempfile::tempdir().unwrap();
        {
            let rec = Recorder::open(cfg(dir.path())).unwrap();
            write_blocks(&rec, 3, 50);
        }
        let rec = Recorder::open(cfg(dir.path())).unwrap();
        let blocks = rec
            .catalog()
            .blocks(0, u64::MAX, None, None, true, None)
            .unwrap();
        let mid = blocks[1].clone();
        let seg = dir.path().join(segment::segment_file_name(mid.segment));
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(b"garbage!", mid.offset + 60).unwrap();
        drop(f);
        assert!(matches!(rec.read_block(&mid), Err(FrameError::Checksum)));
        assert_eq!(all_records(&rec).len(), 100);
        assert_eq!(rec.stats().corrupt_blocks, 2);
        // A query reads around it and names it.
        let mut it = rec.query(&crate::Query::new()).unwrap();
        assert_eq!(it.by_ref().count(), 100);
        let skipped = it.skipped().to_vec();
        drop(it);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!((skipped[0].0, skipped[0].1), (mid.segment, mid.offset));
        assert!(skipped[0].2.contains("checksum"), "{skipped:?}");
        drop(rec);
        // A rebuild skips it too, naming its segment and offset.
        std::fs::remove_file(dir.path().join(CATALOG_FILE)).unwrap();
        let rec = Recorder::open(cfg(dir.path())).unwrap();
        assert_eq!(rec.repair_report().blocks_recovered, 2);
        let c = &rec.repair_report().corrupt;
        assert_eq!((c[0].0, c[0].1), (mid.segment, mid.offset));
        assert!(rec.repair_report().torn_tails.is_empty());
    }

    #[test]
    fn retention_deletes_oldest_segments_by_size_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let c = RecorderConfig {
            segment_bytes: 4096,
            max_total_bytes: 12_000,
            ..cfg(dir.path())
        };
        let rec = Recorder::open(c).unwrap();
        write_blocks(&rec, 30, 40);
        let mut app = Appender::new(rec.clone()).unwrap();
        app.enforce_retention();
        assert!(rec.disk_bytes().unwrap() <= 12_000 + 4096);
        assert!(rec.stats().segments_deleted > 0);
        let segs = rec.catalog().segments().unwrap();
        assert_eq!(segs.len(), rec.segment_ids_on_disk().unwrap().len());
        // Newest records survive.
        let recs = all_records(&rec);
        assert_eq!(recs.last().unwrap().ts_ns(), 1_000 + 30 * 40);
        drop(app);
        drop(rec);
        // Everything here is from 1970: an age bound deletes it all.
        let rec = Recorder::open(RecorderConfig {
            max_age: Some(Duration::from_secs(3600)),
            ..cfg(dir.path())
        })
        .unwrap();
        Appender::new(rec.clone()).unwrap().enforce_retention();
        assert_eq!(all_records(&rec).len(), 0);
    }

    #[test]
    fn second_writer_is_refused_and_readers_open_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(cfg(dir.path())).unwrap();
        write_blocks(&rec, 1, 10);
        assert!(matches!(
            Recorder::open(cfg(dir.path())),
            Err(RecorderError::Locked(_))
        ));
        let ro = Recorder::open_read_only(dir.path()).unwrap();
        assert!(!ro.is_writable());
        assert_eq!(all_records(&ro).len(), 10);
        assert!(Appender::new(ro).is_err());
    }
}
