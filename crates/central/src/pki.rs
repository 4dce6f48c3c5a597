//! The fleet's certificate authority: `rampart central init` makes a CA (rcgen, ring)
//! and the server certificate nats-server and central's enrollment listener present,
//! plus central's own client certificate for NATS; enrollment signs each node's
//! certificate request with the CA. Every private key is written 0600
//! (`rampart_api::write_secret`) and never leaves the host that made it: a node sends a
//! certificate request, not a key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already holds a CA; refusing to replace it (remove the directory to start a new fleet)", dir.display())]
    Exists { dir: PathBuf },
    #[error("server name {name:?}: {reason}")]
    Name { name: String, reason: String },
    #[error("{}: no PEM certificate in it", path.display())]
    NoCert { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The files of central's PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiFiles {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Presented by nats-server and by central's enrollment listener.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Central's client certificate for NATS.
    pub central_cert: PathBuf,
    pub central_key: PathBuf,
    /// A `tls { … }` block to include in nats-server's configuration.
    pub nats_tls_conf: PathBuf,
    /// One-time enrollment tokens (digests only).
    pub tokens: PathBuf,
}

impl PkiFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            central_cert: dir.join("central.pem"),
            central_key: dir.join("central-key.pem"),
            nats_tls_conf: dir.join("nats-tls.conf"),
            tokens: dir.join("enroll-tokens.json"),
        }
    }
}

/// Certificates are valid this long; `rampart central init` is re-run (new fleet) or a
/// node re-enrolls before then.
const VALIDITY_DAYS: i64 = 825;

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A little slack for clocks that run behind.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(VALIDITY_DAYS);
}

/// The SHA-256 of a DER certificate, lowercase hex: what an enrollment token pins.
pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The DER of the first certificate in a PEM file.
pub fn first_cert_der(path: &Path) -> Result<Vec<u8>, PkiError> {
    let pem = std::fs::read_to_string(path).map_err(io(path))?;
    first_cert_der_of(&pem).ok_or_else(|| PkiError::NoCert {
        path: path.to_path_buf(),
    })
}

pub(crate) fn first_cert_der_of(pem: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
        .map(|c| c.to_vec())
}

fn san(name: &str) -> Result<SanType, PkiError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|e: rcgen::Error| PkiError::Name {
            name: name.into(),
            reason: e.to_string(),
        })
}

fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key: &KeyPair,
) -> Result<(), PkiError> {
    rampart_api::write_secret(key_path, key.serialize_pem().as_bytes()).map_err(io(key_path))?;
    // Certificates are public.
    std::fs::write(cert_path, cert_pem).map_err(io(cert_path))
}

/// The CA, loaded to sign.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    fingerprint: String,
    /// How long node certificates are valid (default [`VALIDITY_DAYS`]).
    node_validity: Option<std::time::Duration>,
}

impl Ca {
    pub fn load(files: &PkiFiles) -> Result<Self, PkiError> {
        let cert_pem = std::fs::read_to_string(&files.ca_cert).map_err(io(&files.ca_cert))?;
        let key_pem = std::fs::read_to_string(&files.ca_key).map_err(io(&files.ca_key))?;
        let key = KeyPair::from_pem(&key_pem)?;
        let der = first_cert_der_of(&cert_pem).ok_or_else(|| PkiError::NoCert {
            path: files.ca_cert.clone(),
        })?;
        Ok(Self {
            issuer: Issuer::from_ca_cert_pem(&cert_pem, key)?,
            fingerprint: fingerprint(&der),
            cert_pem,
            node_validity: None,
        })
    }

    /// Node certificates this CA signs are valid for `d` (short-lived certificates, each
    /// renewed by its node before it ends) instead of [`VALIDITY_DAYS`].
    pub fn set_node_validity(&mut self, d: std::time::Duration) {
        self.node_validity = Some(d);
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate (hex).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// A leaf certificate for `key`, named `common_name`, valid for `names` (DNS
    /// names or IPs) and the usages given.
    fn leaf(
        &self,
        common_name: &str,
        names: &[String],
        usages: Vec<ExtendedKeyUsagePurpose>,
        key: &KeyPair,
    ) -> Result<String, PkiError> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = usages;
        p.use_authority_key_identifier_extension = true;
        validity(&mut p);
        Ok(p.signed_by(key, &self.issuer)?.pem())
    }

    /// Signs a node's certificate request. The node's name comes from its enrollment
    /// token, not from the request, so a node cannot choose another's identity; only
    /// the request's public key (whose signature rcgen checks) is used.
    pub fn sign_node_csr(&self, node: &str, csr_pem: &str) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, node);
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "rampart-node");
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        validity(&mut p);
        if let Some(d) = self.node_validity {
            let now = time::OffsetDateTime::now_utc();
            let d: time::Duration =
                time::Duration::try_from(d).unwrap_or(time::Duration::days(VALIDITY_DAYS));
            // Slack for clocks behind, small beside a short lifetime.
            let slack: time::Duration = d / 10;
            p.not_before = now - slack.min(time::Duration::hours(1));
            p.not_after = now + d;
        }
        Ok(p.signed_by(&csr.public_key, &self.issuer)?.pem())
    }
}

/// What `rampart central init` made.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub files: PkiFiles,
    pub ca_fingerprint: String,
    /// The names the server certificate is valid for.
    pub server_names: Vec<String>,
}

/// Creates the CA, the server certificate (valid for `server_names` plus localhost and
/// 127.0.0.1) and central's client certificate in `dir`, and writes the nats-server
/// TLS block. Refuses to overwrite an existing CA.
pub fn init(dir: &Path, server_names: &[String]) -> Result<InitReport, PkiError> {
    // Absolute, so the nats-server block works from wherever it is included.
    let dir = &std::path::absolute(dir).map_err(io(dir))?;
    let files = PkiFiles::in_dir(dir);
    if files.ca_cert.exists() || files.ca_key.exists() {
        return Err(PkiError::Exists {
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ca_key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::CommonName, "Rampart fleet CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p);
    let ca_cert = p.self_signed(&ca_key)?;
    write_pair(&files.ca_cert, &ca_cert.pem(), &files.ca_key, &ca_key)?;
    let ca = Ca::load(&files)?;

    let mut names: Vec<String> = server_names.to_vec();
    for local in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == local) {
            names.push(local.into());
        }
    }
    let server_key = KeyPair::generate()?;
    let server_pem = ca.leaf(
        names.first().map_or("rampart-central", String::as_str),
        &names,
        vec![ExtendedKeyUsagePurpose::ServerAuth],
        &server_key,
    )?;
    write_pair(
        &files.server_cert,
        &server_pem,
        &files.server_key,
        &server_key,
    )?;
    let central_key = KeyPair::generate()?;
    let central_pem = ca.leaf(
        "rampart-central",
        &[],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
        &central_key,
    )?;
    write_pair(
        &files.central_cert,
        &central_pem,
        &files.central_key,
        &central_key,
    )?;
    std::fs::write(&files.nats_tls_conf, nats_tls_block(&files))
        .map_err(io(&files.nats_tls_conf))?;
    Ok(InitReport {
        ca_fingerprint: ca.fingerprint().to_string(),
        files,
        server_names: names,
    })
}

/// The nats-server `tls` block: its certificate, and every client must present one
/// signed by the fleet's CA (`verify: true`).
pub fn nats_tls_block(files: &PkiFiles) -> String {
    format!(
        "# nats-server: include this (e.g. `include {conf}`) so every client needs a\n\
         # certificate from the Rampart fleet CA.\n\
         tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  ca_file: \"{ca}\"\n  verify: true\n  timeout: 2\n}}\n",
        conf = files.nats_tls_conf.display(),
        cert = files.server_cert.display(),
        key = files.server_key.display(),
        ca = files.ca_cert.display(),
    )
}

/// A node's key and certificate request, made on the node (the key stays there).
pub fn node_key_and_csr(node: &str) -> Result<(KeyPair, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, node);
    let csr = p.serialize_request(&key)?;
    Ok((key, csr.pem()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_makes_a_ca_keys_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("pki");
        let r = init(&d, &["central.example".into(), "10.1.2.3".into()]).unwrap();
        for k in [&r.files.ca_key, &r.files.server_key, &r.files.central_key] {
            assert_eq!(rampart_api::secret::mode(k).unwrap(), 0o600, "{k:?}");
        }
        assert_eq!(r.ca_fingerprint.len(), 64);
        assert_eq!(
            r.ca_fingerprint,
            fingerprint(&first_cert_der(&r.files.ca_cert).unwrap())
        );
        assert!(r.server_names.contains(&"127.0.0.1".to_string()));
        let conf = std::fs::read_to_string(&r.files.nats_tls_conf).unwrap();
        assert!(
            conf.contains("verify: true") && conf.contains("ca.pem"),
            "{conf}"
        );
        let e = init(&d, &[]).unwrap_err();
        assert!(matches!(e, PkiError::Exists { .. }), "{e}");
    }

    #[test]
    fn a_node_certificate_takes_its_name_from_central_not_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let r = init(dir.path(), &[]).unwrap();
        let ca = Ca::load(&r.files).unwrap();
        let (_key, csr) = node_key_and_csr("someone-else").unwrap();
        let pem = ca.sign_node_csr("web-1", &csr).unwrap();
        let der = first_cert_der_of(&pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, ["web-1"]);
        assert_eq!(
            cert.issuer().to_string(),
            "CN=Rampart fleet CA",
            "signed by the fleet's CA"
        );
        assert!(ca.sign_node_csr("web-1", "not a csr").is_err());
    }
}
