//! Per-layer result cache: one JSON file of [`LayerEvidence`] per layer diff id, under
//! a directory keyed by everything that changes what a layer yields (cache format,
//! cataloger version, content-scanner rules).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, ScanError};
use crate::model::LayerEvidence;

/// Bump when catalogers or the evidence format change, so stale results are not reused.
const CACHE_FORMAT: &str = "rampart-scan-layer-cache-v1";

pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// `root` is e.g. `$RAMPART_DATA_DIR/scan-cache`; `fingerprint` names the scan configuration.
    pub fn open(root: &Path, fingerprint: &str) -> Result<LayerCache> {
        let key = Sha256::digest(format!("{CACHE_FORMAT}\n{fingerprint}").as_bytes());
        let dir = root.join(format!("{:x}", key).get(..16).unwrap_or("default"));
        std::fs::create_dir_all(&dir).map_err(|e| ScanError::io(&dir, e))?;
        Ok(LayerCache { dir })
    }

    fn path_for(&self, diff_id: &str) -> Option<PathBuf> {
        let (algorithm, hex) = diff_id.split_once(':')?;
        if !algorithm.bytes().all(|b| b.is_ascii_alphanumeric())
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        Some(self.dir.join(format!("{algorithm}-{hex}.json")))
    }

    /// A cached layer, or None (missing or unreadable entries are simply recomputed).
    pub fn get(&self, diff_id: &str) -> Option<LayerEvidence> {
        let path = self.path_for(diff_id)?;
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(evidence) => Some(evidence),
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "ignoring corrupt scan cache entry");
                None
            }
        }
    }

    /// Store a layer atomically (write to a temporary file, then rename).
    pub fn put(&self, diff_id: &str, evidence: &LayerEvidence) -> Result<()> {
        let Some(path) = self.path_for(diff_id) else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(evidence).map_err(|e| ScanError::Cache(e.to_string()))?;
        let mut temp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| ScanError::io(&self.dir, e))?;
        std::io::Write::write_all(&mut temp, &bytes).map_err(|e| ScanError::io(temp.path(), e))?;
        temp.persist(&path)
            .map_err(|e| ScanError::io(&path, e.error))?;
        Ok(())
    }
}

/// The default cache root: `$RAMPART_DATA_DIR/scan-cache`, else `$XDG_CACHE_HOME/rampart/scan-cache`,
/// else `~/.cache/rampart/scan-cache`.
pub fn default_cache_root() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RAMPART_DATA_DIR") {
        return Some(PathBuf::from(dir).join("scan-cache"));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("rampart/scan-cache"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/rampart/scan-cache"))
}
