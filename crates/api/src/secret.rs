//! Secrets on disk (tokens, private keys): created with mode 0600 from the first byte,
//! never world-readable even for an instant, and an existing file's mode is tightened.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` (replacing it) readable and writable by the owner only;
/// creates the parent directory (mode 0700) if missing.
pub fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    // The temporary file is 0600 from creation; the rename replaces atomically.
    let tmp = path.with_extension("tmp-secret");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}

/// The file's permission bits (tests, `rampart doctor`).
pub fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_0600_even_over_a_looser_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/admin-token");
        write_secret(&p, b"one").unwrap();
        assert_eq!(mode(&p).unwrap(), 0o600);
        assert_eq!(mode(p.parent().unwrap()).unwrap(), 0o700);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&p, b"two").unwrap();
        assert_eq!(mode(&p).unwrap(), 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
    }
}
