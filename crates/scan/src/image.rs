//! Image archives: `docker save` tarballs and OCI image layouts (directory or tar).
//! Blobs are read in place (seeking inside the outer tar), never extracted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, ScanError};
use crate::walk::{normalize_entry_path, BoundedReader, Limits};

const MAX_JSON_BYTES: u64 = 16 << 20;

/// One layer as the image describes it.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// Path of the blob inside the archive or layout.
    pub blob_path: String,
    /// sha256 of the uncompressed layer tar, from the image config.
    pub diff_id: String,
    /// The Dockerfile instruction that made it, from the config's history (None when
    /// the history does not line up with the layers).
    pub command: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ImageManifest {
    pub image_id: String,
    pub repo_tags: Vec<String>,
    pub layers: Vec<LayerRef>,
}

/// Where the image's files live.
pub enum BlobStore {
    /// An uncompressed outer tar: entry path → (data offset, size). Members are read
    /// with positional reads on the one open file, so layers can be read on several
    /// threads at once and the file may be an unlinked temporary one.
    Tar {
        file: Arc<File>,
        entries: HashMap<String, (u64, u64)>,
    },
    Dir(PathBuf),
}

/// One member of an outer tar, read with `pread` so readers share the file.
struct MemberReader {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "archive member ends early (truncated archive)",
            ));
        }
        self.offset += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Resolve `target` relative to `base_dir` inside an archive, refusing to climb above the root.
fn resolve_link(base_dir: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        base_dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

impl BlobStore {
    /// Index an image tar (decompressing it to a temporary file first if it is gzip/zstd).
    pub fn open_tar(path: &Path, limits: &Limits) -> Result<BlobStore> {
        let mut file = File::open(path).map_err(|e| ScanError::io(path, e))?;
        let mut magic = [0u8; 4];
        let got = file.read(&mut magic).map_err(|e| ScanError::io(path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ScanError::io(path, e))?;
        if got >= 2 && (magic[..2] == [0x1f, 0x8b] || magic == [0x28, 0xb5, 0x2f, 0xfd]) {
            let decoder = crate::walk::decompress(file).map_err(|e| ScanError::io(path, e))?;
            let copy = spool(
                decoder,
                limits.max_layer_bytes,
                path,
                "decompressed archive size",
            )?;
            return BlobStore::from_tar_file(copy, path);
        }
        BlobStore::from_tar_file(file, path)
    }

    /// Index an uncompressed image tar held in `file`; `label` names it in errors.
    pub fn from_tar_file(file: File, label: &Path) -> Result<BlobStore> {
        let file = Arc::new(file);
        let mut archive = tar::Archive::new(&*file);
        let mut entries = HashMap::new();
        let mut links: Vec<(String, String)> = Vec::new();
        let iter = archive
            .entries_with_seek()
            .map_err(|e| ScanError::io(label, e))?;
        for entry in iter {
            let entry = entry.map_err(|e| ScanError::BadImage {
                path: label.display().to_string(),
                reason: format!("unreadable tar: {e}"),
            })?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Ok(name) = normalize_entry_path(&raw) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    entries.insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Ok(Some(target)) = entry.link_name() {
                        let target = target.to_string_lossy().into_owned();
                        let base = if entry.header().entry_type() == tar::EntryType::Link {
                            String::new()
                        } else {
                            name.rsplit_once('/')
                                .map(|(d, _)| d.to_string())
                                .unwrap_or_default()
                        };
                        if let Some(resolved) = resolve_link(&base, &target) {
                            links.push((name, resolved));
                        }
                    }
                }
                _ => {}
            }
        }
        // docker save (25+) links <id>/layer.tar to blobs/sha256/<digest>.
        for (name, target) in links {
            if let Some(location) = entries.get(&target).copied() {
                entries.insert(name, location);
            }
        }
        Ok(BlobStore::Tar { file, entries })
    }

    pub fn exists(&self, path: &str) -> bool {
        match self {
            BlobStore::Tar { entries, .. } => entries.contains_key(path),
            BlobStore::Dir(root) => normalize_entry_path(path)
                .map(|p| root.join(p).is_file())
                .unwrap_or(false),
        }
    }

    /// Open a member; `path` must be a clean relative path.
    pub fn open(&self, path: &str) -> Result<Box<dyn Read + Send>> {
        let clean = normalize_entry_path(path).map_err(|reason| ScanError::BadImage {
            path: path.to_string(),
            reason,
        })?;
        match self {
            BlobStore::Tar { file, entries, .. } => {
                let &(offset, size) = entries.get(&clean).ok_or_else(|| ScanError::BadImage {
                    path: clean.clone(),
                    reason: "referenced by the image but missing from the archive".into(),
                })?;
                Ok(Box::new(MemberReader {
                    file: file.clone(),
                    offset,
                    remaining: size,
                }))
            }
            BlobStore::Dir(root) => {
                // No symlink in any component: a layout's blobs stay inside it.
                let full = root.join(&clean);
                let file = crate::walk::TreeRoot::open(root)
                    .and_then(|tree| tree.open_file(Path::new(&clean)))
                    .map_err(|e| ScanError::io(&full, e))?;
                Ok(Box::new(file))
            }
        }
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<(T, Vec<u8>)> {
        let mut bytes = Vec::new();
        self.open(path)?
            .take(MAX_JSON_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| ScanError::io(path, e))?;
        let value = serde_json::from_slice(&bytes).map_err(|e| ScanError::BadJson {
            path: path.to_string(),
            reason: format!("line {} column {}: {e}", e.line(), e.column()),
        })?;
        Ok((value, bytes))
    }

    /// Read the image's manifest and config: `manifest.json` (docker save) or
    /// `index.json` (OCI layout).
    pub fn manifest(&self) -> Result<ImageManifest> {
        if self.exists("manifest.json") {
            self.docker_manifest()
        } else if self.exists("index.json") {
            self.oci_manifest()
        } else {
            Err(ScanError::BadImage {
                path: "<archive>".into(),
                reason: "neither manifest.json (docker save) nor index.json (OCI layout) found"
                    .into(),
            })
        }
    }

    fn docker_manifest(&self) -> Result<ImageManifest> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let (entries, _) = self.read_json::<Vec<Entry>>("manifest.json")?;
        let entry = entries
            .into_iter()
            .next()
            .ok_or_else(|| ScanError::BadImage {
                path: "manifest.json".into(),
                reason: "no image in manifest".into(),
            })?;
        let (config, config_bytes) = self.read_json::<ImageConfig>(&entry.config)?;
        let commands = layer_commands(&config.history, config.rootfs.diff_ids.len());
        let layers = pair_layers(
            entry.layers,
            config.rootfs.diff_ids,
            commands,
            &entry.config,
        )?;
        Ok(ImageManifest {
            image_id: format!("sha256:{:x}", Sha256::digest(&config_bytes)),
            repo_tags: entry.repo_tags.unwrap_or_default(),
            layers,
        })
    }

    fn oci_manifest(&self) -> Result<ImageManifest> {
        let (mut index, _) = self.read_json::<OciIndex>("index.json")?;
        let mut repo_tags = Vec::new();
        // Descend through nested indexes, preferring linux/amd64.
        for _ in 0..4 {
            let chosen = index
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
                })
                .or_else(|| index.manifests.first())
                .cloned()
                .ok_or_else(|| ScanError::BadImage {
                    path: "index.json".into(),
                    reason: "no manifests".into(),
                })?;
            if let Some(name) = chosen.annotations.get("org.opencontainers.image.ref.name") {
                repo_tags.push(name.clone());
            }
            let blob = blob_path(&chosen.digest)?;
            if chosen.media_type.contains("index") || chosen.media_type.contains("manifest.list") {
                index = self.read_json::<OciIndex>(&blob)?.0;
                continue;
            }
            let (manifest, _) = self.read_json::<OciManifest>(&blob)?;
            let config_path = blob_path(&manifest.config.digest)?;
            let (config, _) = self.read_json::<ImageConfig>(&config_path)?;
            let blobs = manifest
                .layers
                .iter()
                .map(|l| blob_path(&l.digest))
                .collect::<Result<Vec<_>>>()?;
            let commands = layer_commands(&config.history, config.rootfs.diff_ids.len());
            let layers = pair_layers(blobs, config.rootfs.diff_ids, commands, &config_path)?;
            return Ok(ImageManifest {
                image_id: manifest.config.digest,
                repo_tags,
                layers,
            });
        }
        Err(ScanError::BadImage {
            path: "index.json".into(),
            reason: "image indexes nested too deep".into(),
        })
    }
}

/// Copy `reader` into an anonymous temporary file (unlinked from the start, so the
/// kernel frees it on every exit path, even SIGKILL), failing once more than `limit`
/// bytes came. `label` and `what` name the source and the limit in errors.
pub fn spool(reader: impl Read, limit: u64, label: &Path, what: &'static str) -> Result<File> {
    let mut copy = tempfile::tempfile().map_err(|e| ScanError::io("temporary file", e))?;
    let mut bounded = BoundedReader::new(reader, limit);
    std::io::copy(&mut bounded, &mut copy).map_err(|e| {
        if bounded.count > limit {
            ScanError::LimitExceeded {
                what,
                limit,
                context: label.display().to_string(),
                entry: "<whole archive>".into(),
            }
        } else {
            ScanError::io(label, e)
        }
    })?;
    copy.seek(SeekFrom::Start(0))
        .map_err(|e| ScanError::io("temporary file", e))?;
    Ok(copy)
}

/// The instruction behind each layer: the history entries that made a layer (not
/// `empty_layer`), in order. When they do not line up with the layers (a hand-made or
/// squashed image) no layer gets one.
fn layer_commands(history: &[HistoryEntry], layers: usize) -> Vec<Option<String>> {
    let made: Vec<&HistoryEntry> = history.iter().filter(|h| !h.empty_layer).collect();
    if made.len() != layers {
        return vec![None; layers];
    }
    made.iter()
        .map(|h| {
            h.created_by
                .as_deref()
                .map(instruction)
                .filter(|c| !c.is_empty())
        })
        .collect()
}

/// `/bin/sh -c #(nop) COPY file:… in /`, `/bin/sh -c apt-get …` (the legacy
/// builder) or `RUN /bin/sh -c … # buildkit` as the Dockerfile line a person wrote.
fn instruction(created_by: &str) -> String {
    let c = created_by.trim();
    let c = c.strip_suffix("# buildkit").unwrap_or(c).trim();
    if let Some(rest) = c.strip_prefix("/bin/sh -c #(nop)") {
        return rest.trim().to_string();
    }
    if let Some(rest) = c.strip_prefix("/bin/sh -c ") {
        return format!("RUN {}", rest.trim());
    }
    if let Some(rest) = c.strip_prefix("RUN /bin/sh -c ") {
        return format!("RUN {}", rest.trim());
    }
    c.to_string()
}

fn pair_layers(
    blobs: Vec<String>,
    diff_ids: Vec<String>,
    commands: Vec<Option<String>>,
    config: &str,
) -> Result<Vec<LayerRef>> {
    if blobs.len() != diff_ids.len() {
        return Err(ScanError::BadImage {
            path: config.to_string(),
            reason: format!("{} layers but {} diff ids", blobs.len(), diff_ids.len()),
        });
    }
    diff_ids
        .iter()
        .try_for_each(|d| valid_digest(d).map(|_| ()))?;
    Ok(blobs
        .into_iter()
        .zip(diff_ids)
        .zip(commands.into_iter().chain(std::iter::repeat(None)))
        .map(|((blob_path, diff_id), command)| LayerRef {
            blob_path,
            diff_id,
            command,
        })
        .collect())
}

fn valid_digest(digest: &str) -> Result<(&str, &str)> {
    let bad = || ScanError::BadImage {
        path: digest.to_string(),
        reason: "not a digest of the form algorithm:hex".into(),
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(bad)?;
    if algorithm.is_empty()
        || !algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        || hex.is_empty()
        || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad());
    }
    Ok((algorithm, hex))
}

/// `sha256:abc` → `blobs/sha256/abc`, refusing anything but a plain digest.
fn blob_path(digest: &str) -> Result<String> {
    let (algorithm, hex) = valid_digest(digest)?;
    Ok(format!("blobs/{algorithm}/{hex}"))
}

#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
    #[serde(default)]
    history: Vec<HistoryEntry>,
}

#[derive(Deserialize)]
struct HistoryEntry {
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: bool,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    #[test]
    fn each_layer_gets_the_instruction_that_made_it() {
        // A legacy-builder history and a BuildKit one; ENV and CMD make no layer.
        let history: Vec<super::HistoryEntry> = serde_json::from_str(
            r##"[
              {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
              {"created_by": "/bin/sh -c #(nop)  ENV A=1", "empty_layer": true},
              {"created_by": "/bin/sh -c apt-get update && apt-get install -y openssl"},
              {"created_by": "RUN /bin/sh -c pip install flask # buildkit"},
              {"created_by": "COPY app /app # buildkit"},
              {"created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true}
            ]"##,
        )
        .unwrap();
        assert_eq!(
            super::layer_commands(&history, 4),
            [
                Some("ADD file:abc in /".to_string()),
                Some("RUN apt-get update && apt-get install -y openssl".to_string()),
                Some("RUN pip install flask".to_string()),
                Some("COPY app /app".to_string()),
            ]
        );
        // A history that does not line up names no layer.
        assert_eq!(super::layer_commands(&history, 3), [None, None, None]);
        assert_eq!(super::layer_commands(&[], 2), [None, None]);
    }

    #[test]
    fn spooling_is_bounded_and_members_are_read_in_place() {
        let path = std::path::Path::new("x.tar");
        let error = super::spool(&[7u8; 5000][..], 4096, path, "test size").unwrap_err();
        assert!(
            matches!(
                error,
                crate::ScanError::LimitExceeded {
                    what: "test size",
                    limit: 4096,
                    ..
                }
            ),
            "{error}"
        );
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in [("a.txt", &b"first"[..]), ("b.txt", &b"second member"[..])] {
            let mut header = tar::Header::new_gnu();
            header.set_path(name).unwrap();
            header.set_size(data.len() as u64);
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        let archive = builder.into_inner().unwrap();
        let file = super::spool(archive.as_slice(), 1 << 20, path, "test size").unwrap();
        let store = super::BlobStore::from_tar_file(file, path).unwrap();
        // Two readers of the same file at once, interleaved.
        let mut a = store.open("a.txt").unwrap();
        let mut b = store.open("b.txt").unwrap();
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        let mut byte = [0u8; 1];
        while a.read(&mut byte).unwrap() == 1 {
            got_a.push(byte[0]);
            if b.read(&mut byte).unwrap() == 1 {
                got_b.push(byte[0]);
            }
        }
        b.read_to_end(&mut got_b).unwrap();
        assert_eq!(
            (got_a.as_slice(), got_b.as_slice()),
            (&b"first"[..], &b"second member"[..])
        );
    }

    #[test]
    fn links_and_digests() {
        assert_eq!(
            super::resolve_link("abc", "../blobs/sha256/x").as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(super::resolve_link("", "../../etc/passwd"), None);
        assert!(super::blob_path("sha256:../../etc").is_err());
        assert_eq!(
            super::blob_path("sha256:ab12").unwrap(),
            "blobs/sha256/ab12"
        );
    }
}
