//! The self-signed certificate `rampart up` serves https://127.0.0.1:8443 with: made
//! once by rcgen (ring), kept next to the node's state, the key written 0600.

use std::path::{Path, PathBuf};

use crate::secret::write_secret;

/// A certificate and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// False when both were already there.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The names the local certificate is valid for.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// `dir/api-cert.pem` and `dir/api-key.pem`, generated when either is missing.
pub fn ensure_self_signed(dir: &Path) -> Result<TlsFiles, TlsError> {
    let cert = dir.join("api-cert.pem");
    let key = dir.join("api-key.pem");
    if cert.is_file() && key.is_file() {
        return Ok(TlsFiles {
            cert,
            key,
            created: false,
        });
    }
    let names: Vec<String> = LOCAL_NAMES.iter().map(|s| s.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    write_secret(&key, ck.signing_key.serialize_pem().as_bytes()).map_err(io(&key))?;
    // The certificate is public; 0644 so clients on the host can pin it.
    std::fs::write(&cert, ck.cert.pem()).map_err(io(&cert))?;
    Ok(TlsFiles {
        cert,
        key,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_key_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = ensure_self_signed(dir.path()).unwrap();
        assert!(f.created);
        let pem = std::fs::read_to_string(&f.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(std::fs::read_to_string(&f.key)
            .unwrap()
            .contains("PRIVATE KEY"));
        assert_eq!(crate::secret::mode(&f.key).unwrap(), 0o600);
        let again = ensure_self_signed(dir.path()).unwrap();
        assert!(!again.created);
        assert_eq!(std::fs::read_to_string(&again.cert).unwrap(), pem);
    }
}
