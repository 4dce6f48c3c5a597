//! Walking layer tarballs and directories into per-layer evidence.
//!
//! Nothing is ever extracted: tar entries are read as streams, paths are normalised
//! to clean relative paths (entries with `..` are refused), and symlinks are never
//! followed, so a hostile archive cannot make the scanner read or write outside it.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::catalog::{Collector, Interest, CONTENT_HEAD_BYTES};
use crate::error::{Result, ScanError};
use crate::model::ScanWarning;
pub use crate::model::{FileEvidence, LayerEvidence, Limits};

/// Normalise a tar entry path to a clean relative path.
/// Leading `/` and `.` components are dropped (layers are rooted at the image root, as
/// Docker does); a `..` component is refused.
pub fn normalize_entry_path(raw: &str) -> std::result::Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("entry {raw:?} has a '..' component; skipped")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// A reader that fails once more than `limit` bytes came through it.
pub(crate) struct BoundedReader<R> {
    inner: R,
    pub(crate) count: u64,
    limit: u64,
}

impl<R: Read> BoundedReader<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        BoundedReader {
            inner,
            count: 0,
            limit,
        }
    }
}

/// Marker error message, recognised to turn an io error into [`ScanError::LimitExceeded`].
const LIMIT_MARKER: &str = "rampart-scan: decompressed size limit exceeded";

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(std::io::Error::other(LIMIT_MARKER));
        }
        Ok(n)
    }
}

/// Size of the decompressed chunks handed from the decompressing thread to the walker.
const CHUNK_BYTES: usize = 128 << 10;
/// Chunks in flight per layer: bounds memory (1 MiB) while letting both threads run.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Decompress `blob` on a second thread and hand the tar stream to `consume` as a reader
/// that also computes its sha256 (a cold scan is bound by inflate plus sha256; this runs
/// them on two cores instead of one). `consume` gets the digest from [`HashedStream::finish`].
pub(crate) fn decompress_and_hash<T>(
    blob: Box<dyn Read + Send + '_>,
    consume: impl FnOnce(&mut HashedStream) -> T,
) -> T {
    let (chunks_tx, chunks_rx) = std::sync::mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (spare_tx, spare_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT + 2);
    std::thread::scope(|scope| {
        scope.spawn(move || produce_chunks(blob, chunks_tx, spare_rx));
        let mut stream = HashedStream {
            chunks: chunks_rx,
            spare: spare_tx,
            current: Vec::new(),
            position: 0,
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            finished: false,
        };
        let value = consume(&mut stream);
        // Dropping the stream closes the channel, so the producer stops if it is still running.
        drop(stream);
        value
    })
}

fn produce_chunks(
    blob: Box<dyn Read + Send + '_>,
    chunks: std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut decoder = match decompress(blob) {
        Ok(decoder) => decoder,
        Err(err) => {
            let _ = chunks.send(Err(err));
            return;
        }
    };
    loop {
        let mut buffer = spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES));
        buffer.clear();
        match (&mut decoder)
            .take(CHUNK_BYTES as u64)
            .read_to_end(&mut buffer)
        {
            Ok(0) => return,
            Ok(_) => {
                if chunks.send(Ok(buffer)).is_err() {
                    return;
                }
            }
            Err(err) => {
                let _ = chunks.send(Err(err));
                return;
            }
        }
    }
}

/// The decompressed layer as a reader, hashing each chunk as it arrives.
pub(crate) struct HashedStream {
    chunks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    spare: std::sync::mpsc::SyncSender<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
    hasher: ring::digest::Context,
    finished: bool,
}

impl HashedStream {
    /// Move to the next chunk; false at the end of the stream.
    fn next_chunk(&mut self) -> std::io::Result<bool> {
        if self.finished {
            return Ok(false);
        }
        match self.chunks.recv() {
            Ok(Ok(chunk)) => {
                self.hasher.update(&chunk);
                let used = std::mem::replace(&mut self.current, chunk);
                let _ = self.spare.try_send(used);
                self.position = 0;
                Ok(true)
            }
            Ok(Err(err)) => {
                self.finished = true;
                Err(err)
            }
            // The producer hung up: end of stream. (Had it died early, the digest would not match.)
            Err(_) => {
                self.finished = true;
                Ok(false)
            }
        }
    }

    /// The sha256 of the whole stream, hashing whatever is still unread (tar padding) but
    /// reading at most `limit` more bytes.
    pub(crate) fn finish(&mut self, limit: u64) -> std::io::Result<String> {
        let mut drained = (self.current.len() - self.position) as u64;
        self.position = self.current.len();
        while self.next_chunk()? {
            drained += self.current.len() as u64;
            self.position = self.current.len();
            if drained > limit {
                return Err(std::io::Error::other(LIMIT_MARKER));
            }
        }
        let digest = self.hasher.clone().finish();
        let mut hex = String::with_capacity(7 + 64);
        hex.push_str("sha256:");
        for byte in digest.as_ref() {
            use std::fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        Ok(hex)
    }
}

impl Read for HashedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.current.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// Wrap a possibly compressed stream (gzip, zstd or plain, told apart by magic bytes)
/// in a decompressor.
pub fn decompress<'a, R: Read + Send + 'a>(
    reader: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    let mut buffered = BufReader::with_capacity(256 << 10, reader);
    let head = buffered.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let decoder = ruzstd::decoding::StreamingDecoder::new(buffered)
            .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(buffered))
    }
}

fn whiteout_target(path: &str) -> Option<Whiteout> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    };
    let rest = name.strip_prefix(".wh.")?;
    if rest == ".wh..opq" {
        return Some(Whiteout::Opaque(dir.to_string()));
    }
    if rest.starts_with(".wh.") {
        // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not a deletion
        return Some(Whiteout::Meta);
    }
    Some(Whiteout::Remove(if dir.is_empty() {
        rest.to_string()
    } else {
        format!("{dir}/{rest}")
    }))
}

enum Whiteout {
    Opaque(String),
    Remove(String),
    Meta,
}

pub(crate) fn map_limit_error(
    err: std::io::Error,
    what: &'static str,
    limit: u64,
    context: &str,
    entry: &str,
) -> ScanError {
    if err.to_string().contains(LIMIT_MARKER) {
        ScanError::LimitExceeded {
            what,
            limit,
            context: context.to_string(),
            entry: entry.to_string(),
        }
    } else {
        ScanError::Read {
            context: format!("{context}: entry {entry:?}"),
            source: err,
        }
    }
}

/// Read one layer's (already decompressed) tar stream into evidence.
/// `context` names the layer in errors.
pub fn walk_tar<R: Read>(
    reader: R,
    context: &str,
    collector: &Collector<'_>,
    limits: &Limits,
) -> Result<LayerEvidence> {
    let bounded = BoundedReader::new(reader, limits.max_layer_bytes);
    let mut archive = tar::Archive::new(bounded);
    let mut evidence = LayerEvidence::default();
    let mut last_entry = String::from("<start of archive>");
    let entries = archive.entries().map_err(|e| {
        map_limit_error(
            e,
            "layer size",
            limits.max_layer_bytes,
            context,
            &last_entry,
        )
    })?;
    let mut count = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            map_limit_error(
                e,
                "layer size",
                limits.max_layer_bytes,
                context,
                &last_entry,
            )
        })?;
        count += 1;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if count > limits.max_entries {
            return Err(ScanError::LimitExceeded {
                what: "entry count",
                limit: limits.max_entries,
                context: context.to_string(),
                entry: raw_path,
            });
        }
        last_entry = raw_path.clone();
        let path = match normalize_entry_path(&raw_path) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => continue,
            Err(message) => {
                evidence.warnings.push(ScanWarning {
                    path: raw_path,
                    message,
                    layer: None,
                });
                continue;
            }
        };
        match whiteout_target(&path) {
            Some(Whiteout::Opaque(dir)) => {
                evidence.opaque_dirs.push(dir);
                continue;
            }
            Some(Whiteout::Remove(target)) => {
                evidence.whiteouts.push(target);
                continue;
            }
            Some(Whiteout::Meta) => continue,
            None => {}
        }
        let header = entry.header();
        let entry_type = header.entry_type();
        let mode = header.mode().unwrap_or(0);
        let size = entry.size();
        match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                // Never followed. A link over a cataloged path still replaces what lower
                // layers had there, so record it as empty evidence.
                let interest = collector.interest(&path, mode, 0);
                if interest != Interest::None {
                    let link = entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .unwrap_or_default();
                    let mut file = FileEvidence::default();
                    if entry_type == tar::EntryType::Link {
                        // A hard link shares content with an earlier entry of this layer.
                        if let Ok(target) = normalize_entry_path(&link) {
                            if let Some(existing) = evidence.files.get(&target) {
                                file = relocate(existing, &path);
                            }
                        }
                    } else if interest.is_catalog() {
                        file.warnings
                            .push(format!("symbolic link to {link:?} is not followed"));
                    }
                    evidence.files.insert(path, file);
                }
                continue;
            }
            _ => continue,
        }
        let interest = collector.interest(&path, mode, size);
        if interest == Interest::None {
            continue;
        }
        if size > limits.max_file_bytes {
            let mut file = FileEvidence::default();
            if interest.is_catalog() {
                file.warnings.push(format!(
                    "{size} bytes is over the file size limit of {} bytes; not read",
                    limits.max_file_bytes
                ));
            }
            evidence.files.insert(path, file);
            continue;
        }
        let data = read_wanted(
            &mut entry,
            &path,
            size,
            interest,
            collector,
            limits.max_file_bytes,
        )
        .map_err(|e| map_limit_error(e, "layer size", limits.max_layer_bytes, context, &path))?;
        let file = match data {
            // Still recorded: it replaces whatever lower layers had at this path.
            Wanted::Nothing => FileEvidence::default(),
            Wanted::Bytes(data) => collector.examine(&path, &data, interest),
        };
        evidence.files.insert(path, file);
    }
    Ok(evidence)
}

/// What of a file is worth holding in memory.
enum Wanted {
    Nothing,
    Bytes(Vec<u8>),
}

/// Read what the collector needs of one file of `size` bytes (at most `limit`): the first
/// bytes decide whether the rest is held in memory. A non-ELF executable gives nothing to
/// the binary catalogers (scripts still matter to content scanners); a file only content
/// scanners want is read whole only if they ask for it (binary files get path rules only).
fn read_wanted<R: Read>(
    reader: &mut R,
    path: &str,
    size: u64,
    interest: Interest,
    collector: &Collector<'_>,
    limit: u64,
) -> std::io::Result<Wanted> {
    let sniff = match (interest, collector.content_scanner) {
        (Interest::Executable, None) => 4,
        (Interest::ContentOnly, Some(_)) => CONTENT_HEAD_BYTES,
        _ => 0,
    };
    let mut data = Vec::new();
    if sniff > 0 {
        data.resize(sniff.min(size as usize), 0);
        let got = read_up_to(reader, &mut data)?;
        data.truncate(got);
        let whole = match collector.content_scanner {
            None => data.starts_with(b"\x7fELF"),
            Some(scanner) => scanner.needs_whole_file(path, &data),
        };
        if !whole {
            return Ok(match interest {
                Interest::ContentOnly => Wanted::Bytes(data),
                _ => Wanted::Nothing,
            });
        }
    }
    data.reserve(size.min(limit) as usize - data.len().min(size as usize));
    reader.take(limit).read_to_end(&mut data)?;
    Ok(Wanted::Bytes(data))
}

fn relocate(existing: &FileEvidence, new_path: &str) -> FileEvidence {
    let mut copy = existing.clone();
    for package in &mut copy.packages {
        package.location = new_path.to_string();
    }
    for finding in &mut copy.findings {
        finding.path = new_path.to_string();
    }
    copy
}

fn read_up_to<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Walk a directory tree into evidence. Symlinks are never followed; `one_file_system`
/// keeps a container root walk out of its /proc, /sys and volume mounts.
pub fn walk_dir(
    root: &Path,
    collector: &Collector<'_>,
    limits: &Limits,
    one_file_system: bool,
) -> Result<LayerEvidence> {
    let mut evidence = LayerEvidence::default();
    let tree = TreeRoot::open(root).map_err(|e| ScanError::io(root, e))?;
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(one_file_system)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let path = err
                    .path()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                evidence.warnings.push(ScanWarning {
                    path,
                    message: format!("cannot read: {err}"),
                    layer: None,
                });
                continue;
            }
        };
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        let path = relative.to_string_lossy().into_owned();
        if path.is_empty() {
            continue;
        }
        let file_type = entry.file_type();
        if file_type.is_dir() {
            continue;
        }
        if file_type.is_symlink() {
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        let size = metadata.len();
        let interest = collector.interest(&path, mode, size);
        if interest == Interest::None {
            continue;
        }
        if size > limits.max_file_bytes {
            let mut file = FileEvidence::default();
            file.warnings.push(format!(
                "{size} bytes is over the file size limit of {} bytes; not read",
                limits.max_file_bytes
            ));
            evidence.files.insert(path, file);
            continue;
        }
        let data =
            match read_file_beneath(&tree, relative, &path, size, interest, collector, limits) {
                Ok(Some(data)) => data,
                Ok(None) => continue,
                Err(err) => {
                    evidence.warnings.push(ScanWarning {
                        path,
                        message: format!("cannot read: {err}"),
                        layer: None,
                    });
                    continue;
                }
            };
        let file = collector.examine(&path, &data, interest);
        evidence.files.insert(path, file);
    }
    Ok(evidence)
}

/// A directory tree's root, held open so that files are opened relative to it.
pub(crate) struct TreeRoot {
    dir: std::fs::File,
    path: std::path::PathBuf,
}

impl TreeRoot {
    /// `path` itself may be a symlink or magic link (`/proc/PID/root`): it is the scan's root.
    pub(crate) fn open(path: &Path) -> std::io::Result<TreeRoot> {
        Ok(TreeRoot {
            dir: std::fs::File::open(path)?,
            path: path.to_path_buf(),
        })
    }

    /// Open `relative` for reading without following a symlink in any of its components,
    /// and never outside the root: a running container can swap a directory for a
    /// symlink to the host's files between the walk seeing it and the open. Uses
    /// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS); where the kernel or a seccomp
    /// profile lacks openat2, falls back to O_NOFOLLOW on the last component only.
    pub(crate) fn open_file(&self, relative: &Path) -> std::io::Result<std::fs::File> {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match openat2(&self.dir, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => Ok(std::fs::File::from(fd)),
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(self.path.join(relative))
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Read what the collector wants of a regular file under `tree` (see
/// [`TreeRoot::open_file`] and [`read_wanted`]); `None` when that is nothing or the file
/// is no longer a regular file.
fn read_file_beneath(
    tree: &TreeRoot,
    relative: &Path,
    path: &str,
    size: u64,
    interest: Interest,
    collector: &Collector<'_>,
    limits: &Limits,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = tree.open_file(relative)?;
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    Ok(
        match read_wanted(
            &mut file,
            path,
            size,
            interest,
            collector,
            limits.max_file_bytes,
        )? {
            Wanted::Nothing => None,
            Wanted::Bytes(data) => Some(data),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Finding;
    use sha2::Digest;
    use std::collections::BTreeMap;

    #[test]
    fn normalisation_refuses_parent_components_and_roots_absolute_paths() {
        assert_eq!(normalize_entry_path("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(normalize_entry_path("./a//b/./c").unwrap(), "a/b/c");
        assert!(normalize_entry_path("../etc/passwd").is_err());
        assert!(normalize_entry_path("a/../../b").is_err());
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// Several chunks' worth of data that does not repeat at chunk boundaries.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 7) as u8 + b'a'
            })
            .collect()
    }

    #[test]
    fn pipelined_stream_yields_the_data_and_its_sha256() {
        let data = sample(5 * CHUNK_BYTES + 12_345);
        let expected = format!("sha256:{:x}", sha2::Sha256::digest(&data));
        let compressed = gzip(&data);
        // Read part of it with odd-sized reads; finish() must hash the rest.
        let (prefix, digest) = decompress_and_hash(Box::new(compressed.as_slice()), |stream| {
            let mut prefix = Vec::new();
            let mut buf = [0u8; 1000];
            while prefix.len() < 2 * CHUNK_BYTES + 7 {
                let n = stream.read(&mut buf).unwrap();
                assert!(n > 0);
                prefix.extend_from_slice(&buf[..n]);
            }
            (prefix, stream.finish(u64::MAX).unwrap())
        });
        assert_eq!(digest, expected);
        assert_eq!(prefix, data[..prefix.len()]);
        // All of it, through read_to_end.
        let (all, digest) = decompress_and_hash(Box::new(compressed.as_slice()), |stream| {
            let mut all = Vec::new();
            stream.read_to_end(&mut all).unwrap();
            (all, stream.finish(0).unwrap())
        });
        assert_eq!(digest, expected);
        assert!(all == data, "decompressed data differs");
    }

    #[test]
    fn pipelined_stream_reports_corrupt_input_and_bounds_the_drain() {
        let data = sample(3 * CHUNK_BYTES);
        let mut compressed = gzip(&data);
        compressed.truncate(compressed.len() / 2);
        let result = decompress_and_hash(Box::new(compressed.as_slice()), |stream| {
            std::io::copy(stream, &mut std::io::sink())
        });
        assert!(result.is_err(), "a truncated gzip stream is an error");
        let compressed = gzip(&data);
        let error = decompress_and_hash(Box::new(compressed.as_slice()), |stream| {
            stream.finish(CHUNK_BYTES as u64)
        })
        .unwrap_err();
        assert!(error.to_string().contains(LIMIT_MARKER), "{error}");
    }

    #[test]
    fn tree_root_refuses_symlinks_in_any_component() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        let root = dir.path().join("root");
        std::fs::create_dir_all(outside.join("etc")).unwrap();
        std::fs::write(outside.join("etc/shadow"), "host secret").unwrap();
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/file"), "inside").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("real", root.join("inner")).unwrap();
        std::os::unix::fs::symlink("file", root.join("real/alias")).unwrap();
        let tree = TreeRoot::open(&root).unwrap();
        let read = |p: &str| -> std::io::Result<String> {
            let mut text = String::new();
            tree.open_file(Path::new(p))?.read_to_string(&mut text)?;
            Ok(text)
        };
        assert_eq!(read("real/file").unwrap(), "inside");
        for path in [
            "abs/etc/shadow",
            "rel/etc/shadow",
            "inner/file",
            "real/alias",
        ] {
            assert!(read(path).is_err(), "{path} was opened through a symlink");
        }
        assert!(read("../outside/etc/shadow").is_err());
    }

    /// Records how many bytes of each file it was given; binary means a NUL up front.
    struct Recorder(std::sync::Mutex<BTreeMap<String, usize>>);

    impl crate::catalog::FileContentScanner for Recorder {
        fn fingerprint(&self) -> String {
            "recorder".into()
        }
        fn scan(&self, path: &str, bytes: &[u8]) -> Vec<Finding> {
            if let Ok(mut seen) = self.0.lock() {
                seen.insert(path.to_string(), bytes.len());
            }
            Vec::new()
        }
        fn needs_whole_file(&self, _path: &str, head: &[u8]) -> bool {
            !head.contains(&0)
        }
    }

    #[test]
    fn content_scanners_get_whole_text_files_but_only_the_head_of_binary_ones() {
        let mut binary = vec![0u8; 100_000];
        binary[10_000..10_006].copy_from_slice(b"secret");
        let text = vec![b'a'; 100_000];
        let script = [b"#!/bin/sh\n".as_slice(), &[b'x'; 20_000]].concat();
        let files: [(&str, &[u8], u32); 3] = [
            ("srv/blob.dat", &binary, 0o644),
            ("srv/notes.txt", &text, 0o644),
            ("usr/bin/tool", &script, 0o755),
        ];
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, mode) in files {
            let mut header = tar::Header::new_gnu();
            header.set_path(path).unwrap();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        let layer = builder.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (path, data, mode) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, data).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let limits = Limits::default();
        let expected = BTreeMap::from([
            ("srv/blob.dat".to_string(), CONTENT_HEAD_BYTES),
            ("srv/notes.txt".to_string(), text.len()),
            ("usr/bin/tool".to_string(), script.len()),
        ]);
        for from_dir in [false, true] {
            let recorder = Recorder(Default::default());
            let mut collector = Collector::new(false, limits.clone());
            collector.content_scanner = Some(&recorder);
            let evidence = if from_dir {
                walk_dir(dir.path(), &collector, &limits, false).unwrap()
            } else {
                walk_tar(layer.as_slice(), "layer", &collector, &limits).unwrap()
            };
            assert_eq!(evidence.files.len(), 3, "from_dir={from_dir}");
            assert_eq!(*recorder.0.lock().unwrap(), expected, "from_dir={from_dir}");
        }
        // Without content scanners a non-ELF executable is not read, but still recorded
        // in a layer (it replaces what lower layers had at that path).
        let collector = Collector::new(false, limits.clone());
        let evidence = walk_tar(layer.as_slice(), "layer", &collector, &limits).unwrap();
        let tool = evidence.files.get("usr/bin/tool");
        assert_eq!(tool, Some(&FileEvidence::default()));
        assert!(!evidence.files.contains_key("srv/notes.txt"));
    }

    #[test]
    fn whiteouts_are_recognised() {
        assert!(
            matches!(whiteout_target("a/b/.wh..wh..opq"), Some(Whiteout::Opaque(d)) if d == "a/b")
        );
        assert!(
            matches!(whiteout_target(".wh..wh..opq"), Some(Whiteout::Opaque(d)) if d.is_empty())
        );
        assert!(matches!(whiteout_target("a/.wh.x"), Some(Whiteout::Remove(d)) if d == "a/x"));
        assert!(matches!(
            whiteout_target(".wh..wh.plnk"),
            Some(Whiteout::Meta)
        ));
        assert!(whiteout_target("a/b").is_none());
    }
}
