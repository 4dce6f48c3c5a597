//! Node enrollment with one-time tokens, in the manner of kubeadm's bootstrap tokens
//! and discovery hash.
//!
//! - `rampart central enroll-token --node NAME` adds a token to central's token file:
//!   only the SHA-256 of its secret is kept (file mode 0600), with the node name it is
//!   for and an expiry. The token handed to the operator is
//!   `rampart1.<id>.<secret>.<sha256 of the CA certificate>`.
//! - `rampart node enroll CENTRAL TOKEN` makes a key and a certificate request on the
//!   node and sends the request with the token over TLS to central's enrollment
//!   listener. The node has no CA yet, so it trusts the server only if its chain holds
//!   a CA certificate whose SHA-256 is the one in the token and the server certificate
//!   verifies against that CA for the name dialled: a man in the middle without the
//!   CA's key cannot answer.
//! - Central checks the token (known, secret matches, not expired, never used), signs
//!   the request with the CA under the token's node name, marks the token used, and
//!   returns the certificate and the CA. All of it under an exclusive lock on the token
//!   file, so a token is good for exactly one certificate, even when raced.

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::pki::{self, Ca, PkiError, PkiFiles};

/// Why enrollment failed (either side).
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a token file: {reason}", path.display())]
    TokenFile { path: PathBuf, reason: String },
    #[error("malformed token: expected rampart1.<id>.<secret>.<ca-sha256>, {0}")]
    TokenFormat(String),
    #[error("token refused: {0}")]
    Refused(String),
    #[error("central refused the enrollment: {0}")]
    Central(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("talking to central at {addr}: {reason}")]
    Transport { addr: String, reason: String },
    #[error("node name {0:?}: use letters, digits, '-', '_' and '.' (1 to 63 characters)")]
    NodeName(String),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EnrollError + '_ {
    move |source| EnrollError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A node name is a NATS subject token and a certificate CN: kept to a safe alphabet.
pub fn check_node_name(name: &str) -> Result<(), EnrollError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EnrollError::NodeName(name.into()))
    }
}

/// A token as handed to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollToken {
    pub id: String,
    pub secret: String,
    /// SHA-256 of the CA certificate (hex).
    pub ca_fingerprint: String,
}

impl std::fmt::Display for EnrollToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rampart1.{}.{}.{}",
            self.id, self.secret, self.ca_fingerprint
        )
    }
}

impl std::str::FromStr for EnrollToken {
    type Err = EnrollError;
    fn from_str(s: &str) -> Result<Self, EnrollError> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        let hex_of = |p: &str, len: usize, what: &str| {
            if p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(p.to_ascii_lowercase())
            } else {
                Err(EnrollError::TokenFormat(format!(
                    "the {what} must be {len} hex digits"
                )))
            }
        };
        match parts.as_slice() {
            ["rampart1", id, secret, ca] => Ok(Self {
                id: hex_of(id, 16, "id")?,
                secret: hex_of(secret, 32, "secret")?,
                ca_fingerprint: hex_of(ca, 64, "CA fingerprint")?,
            }),
            _ => Err(EnrollError::TokenFormat(format!(
                "got {} dot-separated parts",
                parts.len()
            ))),
        }
    }
}

/// One token as central keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredToken {
    pub id: String,
    /// SHA-256 of the secret (hex); the secret itself is never stored.
    pub secret_sha256: String,
    pub node: String,
    pub expires_ns: u64,
    /// When it was used; a used token is refused.
    pub used_ns: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<StoredToken>,
}

fn random_hex(bytes: usize) -> Result<String, EnrollError> {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| EnrollError::Tls("the system random generator failed".into()))?;
    Ok(pki::hex(&b))
}

fn sha256_hex(s: &str) -> String {
    pki::hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

/// Runs `f` on the token file under an exclusive lock and writes back what it leaves
/// (mode 0600).
fn with_tokens<T>(
    path: &Path,
    f: impl FnOnce(&mut TokenFile) -> Result<T, EnrollError>,
) -> Result<T, EnrollError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;
    let mut text = String::new();
    match std::fs::File::open(path) {
        Ok(mut f) => {
            f.read_to_string(&mut text).map_err(io(path))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(path)(e)),
    }
    let mut file: TokenFile = if text.trim().is_empty() {
        TokenFile::default()
    } else {
        serde_json::from_str(&text).map_err(|e| EnrollError::TokenFile {
            path: path.to_path_buf(),
            reason: format!("line {} column {}: {e}", e.line(), e.column()),
        })?
    };
    let out = f(&mut file)?;
    let json = serde_json::to_vec_pretty(&file).map_err(|e| EnrollError::TokenFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    rampart_api::write_secret(path, &json).map_err(io(path))?;
    drop(lock);
    Ok(out)
}

/// Issues a one-time token for `node`, valid for `ttl`. Expired tokens are forgotten.
pub fn issue_token(
    files: &PkiFiles,
    node: &str,
    ttl: Duration,
) -> Result<EnrollToken, EnrollError> {
    check_node_name(node)?;
    if node == crate::registry::CENTRAL_CN {
        return Err(EnrollError::Refused(format!(
            "{node:?} is central's own name; choose another for the node"
        )));
    }
    if crate::registry::load(files)?.is_revoked(node) {
        return Err(EnrollError::Refused(format!(
            "node {node:?} was revoked; enroll the host under a new name"
        )));
    }
    let ca_fingerprint = pki::fingerprint(&pki::first_cert_der(&files.ca_cert)?);
    let token = EnrollToken {
        id: random_hex(8)?,
        secret: random_hex(16)?,
        ca_fingerprint,
    };
    let now = rampart_event::wall_ns();
    with_tokens(&files.tokens, |f| {
        f.tokens.retain(|t| t.expires_ns > now);
        f.tokens.push(StoredToken {
            id: token.id.clone(),
            secret_sha256: sha256_hex(&token.secret),
            node: node.into(),
            expires_ns: now.saturating_add(ttl.as_nanos() as u64),
            used_ns: None,
        });
        Ok(())
    })?;
    Ok(token)
}

/// What a node sends.
#[derive(Debug, Serialize, Deserialize)]
struct EnrollRequest {
    #[serde(default)]
    token_id: String,
    #[serde(default)]
    secret: String,
    csr_pem: String,
    /// A renewal: the node authenticates with its current certificate (mutual TLS)
    /// instead of a token.
    #[serde(default)]
    renew: bool,
}

/// What central answers.
#[derive(Debug, Serialize, Deserialize)]
struct EnrollResponse {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    node: String,
    #[serde(default)]
    cert_pem: String,
    #[serde(default)]
    ca_pem: String,
}

/// Central's side: checks the token, signs the request, uses the token up.
fn redeem(files: &PkiFiles, ca: &Ca, req: &EnrollRequest) -> Result<(String, String), EnrollError> {
    let now = rampart_event::wall_ns();
    with_tokens(&files.tokens, |f| {
        // One answer for unknown id and wrong secret: no oracle for valid ids.
        let t = f
            .tokens
            .iter_mut()
            .find(|t| t.id == req.token_id && t.secret_sha256 == sha256_hex(&req.secret))
            .ok_or_else(|| EnrollError::Refused("unknown token".into()))?;
        if t.used_ns.is_some() {
            return Err(EnrollError::Refused("this token was already used".into()));
        }
        if t.expires_ns <= now {
            return Err(EnrollError::Refused("this token has expired".into()));
        }
        if crate::registry::load(files)?.is_revoked(&t.node) {
            return Err(EnrollError::Refused(format!(
                "node {:?} is revoked",
                t.node
            )));
        }
        let cert = ca.sign_node_csr(&t.node, &req.csr_pem)?;
        crate::registry::record_issued(files, &t.node, &cert)?;
        t.used_ns = Some(now);
        Ok((t.node.clone(), cert))
    })
    .inspect(|_| reload_nats_users(files))
}

/// A new node is a new NATS user: nats-server on this host reads the users again.
fn reload_nats_users(files: &PkiFiles) {
    match crate::registry::reload_nats(files) {
        Ok(true) => tracing::info!("nats-server reloads the fleet's users"),
        Ok(false) => tracing::info!(
            "no nats-server pid file here: reload nats-server (nats-server --signal reload) so it knows the node"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot make nats-server reload the fleet's users"),
    }
}

/// The node name a client certificate of the fleet names: its CN, when the
/// certificate is a node's (OU rampart-node; central's and the server's are not).
fn node_of_cert(der: &[u8]) -> Result<String, EnrollError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| EnrollError::Refused(format!("client certificate: {e}")))?;
    let subject = cert.subject();
    let is_node = subject
        .iter_organizational_unit()
        .any(|ou| ou.as_str().is_ok_and(|v| v == crate::registry::NODE_OU));
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_string);
    match (is_node, cn) {
        (true, Some(cn)) => {
            check_node_name(&cn)?;
            Ok(cn)
        }
        _ => Err(EnrollError::Refused(
            "the client certificate is not a node's".into(),
        )),
    }
}

/// Central's side of a renewal: the node proved its identity with its current
/// certificate (verified against the CA by the TLS handshake); a revoked node is
/// refused.
fn renew_for(
    files: &PkiFiles,
    ca: &Ca,
    peer: Option<&[u8]>,
    req: &EnrollRequest,
) -> Result<(String, String), EnrollError> {
    let der = peer.ok_or_else(|| {
        EnrollError::Refused("a renewal needs the node's current certificate".into())
    })?;
    let node = node_of_cert(der)?;
    if crate::registry::load(files)?.is_revoked(&node) {
        return Err(EnrollError::Refused(format!("node {node:?} is revoked")));
    }
    let cert = ca.sign_node_csr(&node, &req.csr_pem)?;
    crate::registry::record_issued(files, &node, &cert)?;
    Ok((node, cert))
}

/// Largest request line accepted (a CSR is ~500 bytes).
const MAX_REQUEST: u64 = 16 << 10;

/// Central's enrollment listener: TLS with the server certificate (its chain carries
/// the CA, which the node checks against the token's fingerprint).
pub struct EnrollServer {
    files: PkiFiles,
    ca: Arc<Ca>,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, EnrollError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| EnrollError::Tls(format!("{}: {e}", path.display())))
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, EnrollError> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| EnrollError::Tls(format!("{}: {e}", path.display())))
}

impl EnrollServer {
    pub fn new(files: PkiFiles) -> Result<Self, EnrollError> {
        let ca = Arc::new(Ca::load(&files)?);
        let mut chain = load_certs(&files.server_cert)?;
        chain.extend(load_certs(&files.ca_cert)?);
        let key = load_key(&files.server_key)?;
        // A client certificate is optional (a node enrolling has none yet); when one is
        // shown it must chain to the fleet's CA, and it then names a renewing node.
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(&files.ca_cert)? {
            roots
                .add(c)
                .map_err(|e| EnrollError::Tls(format!("{}: {e}", files.ca_cert.display())))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            ring_provider(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| EnrollError::Tls(e.to_string()))?;
        let config = rustls::ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| EnrollError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| EnrollError::Tls(e.to_string()))?;
        Ok(Self {
            files,
            ca,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Node certificates are valid for `d` (see [`Ca::set_node_validity`]).
    pub fn with_node_validity(mut self, d: Duration) -> Self {
        if let Some(ca) = Arc::get_mut(&mut self.ca) {
            ca.set_node_validity(d);
        }
        self
    }

    /// Serves enrollments on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let me = Arc::new(self);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "enrollment accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let me = me.clone();
            tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(10), me.one(stream)).await;
                match r {
                    Ok(Ok(node)) => tracing::info!(%peer, %node, "node enrolled"),
                    Ok(Err(e)) => tracing::warn!(%peer, error = %e, "enrollment refused"),
                    Err(_) => tracing::warn!(%peer, "enrollment timed out"),
                }
            });
        }
    }

    async fn one(&self, stream: tokio::net::TcpStream) -> Result<String, EnrollError> {
        let tls = self
            .acceptor
            .accept(stream)
            .await
            .map_err(|e| EnrollError::Tls(e.to_string()))?;
        let peer: Option<Vec<u8>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let (r, mut w) = tokio::io::split(tls);
        let mut line = String::new();
        let transport = |e: std::io::Error| EnrollError::Transport {
            addr: "node".into(),
            reason: e.to_string(),
        };
        use tokio::io::AsyncReadExt;
        BufReader::new(r.take(MAX_REQUEST))
            .read_line(&mut line)
            .await
            .map_err(transport)?;
        let result = serde_json::from_str::<EnrollRequest>(&line)
            .map_err(|e| EnrollError::Refused(format!("bad request: {e}")))
            .and_then(|req| {
                let files = self.files.clone();
                let ca = self.ca.clone();
                // The token file lock and the signing are quick but blocking.
                tokio::task::block_in_place(|| {
                    if req.renew {
                        renew_for(&files, &ca, peer.as_deref(), &req)
                    } else {
                        redeem(&files, &ca, &req)
                    }
                })
            });
        let (resp, out) = match result {
            Ok((node, cert_pem)) => (
                EnrollResponse {
                    error: None,
                    node: node.clone(),
                    cert_pem,
                    ca_pem: self.ca.cert_pem().to_string(),
                },
                Ok(node),
            ),
            Err(e) => (
                EnrollResponse {
                    error: Some(match &e {
                        EnrollError::Refused(m) => m.clone(),
                        other => other.to_string(),
                    }),
                    node: String::new(),
                    cert_pem: String::new(),
                    ca_pem: String::new(),
                },
                Err(e),
            ),
        };
        let mut json = serde_json::to_vec(&resp).map_err(|e| EnrollError::Tls(e.to_string()))?;
        json.push(b'\n');
        w.write_all(&json).await.map_err(transport)?;
        w.shutdown().await.map_err(transport)?;
        out
    }
}

/// Trusts a server whose chain carries the CA pinned by the token, and whose
/// certificate verifies against that CA for the name dialled.
#[derive(Debug)]
struct PinnedCa {
    pin: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| pki::fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server did not present the CA the token names (wrong central, or someone in between)".into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The files a node keeps after enrolling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCredentials {
    pub node: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl NodeCredentials {
    pub fn in_dir(dir: &Path, node: &str) -> Self {
        Self {
            node: node.into(),
            ca: dir.join("ca.pem"),
            cert: dir.join("node.pem"),
            key: dir.join("node-key.pem"),
        }
    }
}

/// The node's side: enrolls with central at `addr` (`host:port`) and writes the CA,
/// the node's certificate, its key (0600) and its name (`node-name`) into `dir`.
pub async fn enroll(addr: &str, token: &str, dir: &Path) -> Result<NodeCredentials, EnrollError> {
    let token: EnrollToken = token.parse()?;
    let provider = ring_provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| EnrollError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa {
            pin: token.ca_fingerprint.clone(),
            provider,
        }))
        .with_no_client_auth();
    // The key is made here and stays here; central sees only the request.
    let (key, csr_pem) = pki::node_key_and_csr("rampart-node")?;
    let resp = exchange(
        addr,
        config,
        &EnrollRequest {
            token_id: token.id.clone(),
            secret: token.secret.clone(),
            csr_pem,
            renew: false,
        },
    )
    .await?;
    // The CA returned must be the one pinned.
    let ca_der = pki::first_cert_der_of(&resp.ca_pem).ok_or_else(|| EnrollError::Transport {
        addr: addr.into(),
        reason: "no CA certificate in the answer".into(),
    })?;
    if pki::fingerprint(&ca_der) != token.ca_fingerprint {
        return Err(EnrollError::Refused(
            "central returned a CA other than the token's".into(),
        ));
    }
    check_node_name(&resp.node)?;
    let creds = NodeCredentials::in_dir(dir, &resp.node);
    rampart_api::write_secret(&creds.key, key.serialize_pem().as_bytes())
        .map_err(io(&creds.key))?;
    write_public(&creds.cert, &resp.cert_pem)?;
    write_public(&creds.ca, &resp.ca_pem)?;
    // The enrolled name is the node's default name from now on.
    write_public(&dir.join("node-name"), &format!("{}\n", resp.node))?;
    Ok(creds)
}

/// How long the node certificate in `dir` stays valid (zero when it has expired).
pub fn cert_remaining(dir: &Path) -> Result<Duration, EnrollError> {
    let path = dir.join("node.pem");
    let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
    let (_, not_after_ns) = crate::registry::cert_serial_and_expiry(&pem)
        .ok_or_else(|| EnrollError::Pki(PkiError::NoCert { path: path.clone() }))?;
    Ok(Duration::from_nanos(
        not_after_ns.saturating_sub(rampart_event::wall_ns()),
    ))
}

/// The node certificate's whole lifetime (not before to not after) and what is left.
pub fn cert_lifetime(dir: &Path) -> Result<(Duration, Duration), EnrollError> {
    let path = dir.join("node.pem");
    let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
    let no_cert = || EnrollError::Pki(PkiError::NoCert { path: path.clone() });
    let der = crate::pki::first_cert_der_of(&pem).ok_or_else(no_cert)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|_| no_cert())?;
    let from = cert.validity().not_before.timestamp();
    let to = cert.validity().not_after.timestamp();
    let total = Duration::from_secs(u64::try_from(to - from).unwrap_or(0));
    Ok((total, cert_remaining(dir)?))
}

/// Whether a certificate with `left` of `total` should be renewed: less than `fraction`
/// of its lifetime is left.
pub fn renewal_due(total: Duration, left: Duration, fraction: f64) -> bool {
    left.as_secs_f64() < total.as_secs_f64() * fraction.clamp(0.0, 1.0)
}

/// Renews the node's certificate in `dir` with central at `addr` whenever less than
/// `fraction` of its lifetime is left, checking every `check_every`, until `stop`
/// resolves. The files are replaced in place, so the next NATS connection (a
/// reconnect) presents the new certificate: no restart. A failed renewal is retried at
/// the next check.
pub async fn renew_when_due(
    addr: String,
    dir: PathBuf,
    fraction: f64,
    check_every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        match cert_lifetime(&dir) {
            Ok((total, left)) if renewal_due(total, left, fraction) => {
                match renew(&addr, &dir).await {
                    Ok(c) => {
                        let left = cert_remaining(&dir).unwrap_or_default();
                        tracing::info!(node = %c.node, valid_for_s = left.as_secs(), "node certificate renewed");
                        metrics::counter!("rampart_cert_renewals_total").increment(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, left_s = left.as_secs(), "node certificate renewal failed; retried at the next check");
                        metrics::counter!("rampart_cert_renewal_errors_total").increment(1);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "the node certificate cannot be read")
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(check_every) => {}
        }
    }
}

/// The node's side of a renewal: a new key and certificate request, sent to central
/// at `addr` over mutual TLS with the node's current certificate (the server is
/// checked against the fleet's CA in `dir`). The new key (0600) and certificate
/// replace the old ones.
pub async fn renew(addr: &str, dir: &Path) -> Result<NodeCredentials, EnrollError> {
    let name_path = dir.join("node-name");
    let name = std::fs::read_to_string(&name_path).map_err(io(&name_path))?;
    let current = NodeCredentials::in_dir(dir, name.trim());
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(&current.ca)? {
        roots
            .add(c)
            .map_err(|e| EnrollError::Tls(format!("{}: {e}", current.ca.display())))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| EnrollError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(load_certs(&current.cert)?, load_key(&current.key)?)
        .map_err(|e| EnrollError::Tls(e.to_string()))?;
    let (key, csr_pem) = pki::node_key_and_csr("rampart-node")?;
    let resp = exchange(
        addr,
        config,
        &EnrollRequest {
            token_id: String::new(),
            secret: String::new(),
            csr_pem,
            renew: true,
        },
    )
    .await?;
    if resp.node != current.node {
        return Err(EnrollError::Refused(format!(
            "central renewed {:?}, this node is {:?}",
            resp.node, current.node
        )));
    }
    // Both files first beside the old ones, then renamed: a crash leaves the old
    // pair or the new one.
    let key_tmp = current.key.with_extension("new");
    rampart_api::write_secret(&key_tmp, key.serialize_pem().as_bytes()).map_err(io(&key_tmp))?;
    let cert_tmp = current.cert.with_extension("new");
    write_public(&cert_tmp, &resp.cert_pem)?;
    std::fs::rename(&key_tmp, &current.key).map_err(io(&current.key))?;
    std::fs::rename(&cert_tmp, &current.cert).map_err(io(&current.cert))?;
    Ok(current)
}

/// One request to central's enrollment listener and its answer: TCP (10 s to
/// connect), TLS with `config`, a JSON line each way (the answer at most 1 MiB).
async fn exchange(
    addr: &str,
    config: rustls::ClientConfig,
    req: &EnrollRequest,
) -> Result<EnrollResponse, EnrollError> {
    let transport = |reason: String| EnrollError::Transport {
        addr: addr.into(),
        reason,
    };
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string())
        .map_err(|e| transport(format!("{host:?} is not a host name or address: {e}")))?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| transport("connect timed out".into()))?
    .map_err(|e| transport(e.to_string()))?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| EnrollError::Tls(format!("{addr}: {e}")))?;
    let mut line = serde_json::to_vec(req).map_err(|e| transport(e.to_string()))?;
    line.push(b'\n');
    tls.write_all(&line)
        .await
        .map_err(|e| transport(e.to_string()))?;
    tls.flush().await.map_err(|e| transport(e.to_string()))?;
    let mut answer = String::new();
    use tokio::io::AsyncReadExt;
    BufReader::new(tls.take(1 << 20))
        .read_line(&mut answer)
        .await
        .map_err(|e| transport(e.to_string()))?;
    let resp: EnrollResponse = serde_json::from_str(&answer).map_err(|e| {
        transport(format!(
            "unreadable answer (a refused token or certificate ends the connection): {e}"
        ))
    })?;
    if let Some(e) = resp.error {
        return Err(EnrollError::Central(e));
    }
    Ok(resp)
}

fn write_public(path: &Path, text: &str) -> Result<(), EnrollError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.rewind().map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_print_and_bad_ones_say_why() {
        let t = EnrollToken {
            id: "0123456789abcdef".into(),
            secret: "00112233445566778899aabbccddeeff".into(),
            ca_fingerprint: "ab".repeat(32),
        };
        let s = t.to_string();
        assert_eq!(s.parse::<EnrollToken>().unwrap(), t);
        let e = "rampart1.xyz.1.2"
            .parse::<EnrollToken>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("id must be 16 hex digits"), "{e}");
        let e = "hello".parse::<EnrollToken>().unwrap_err().to_string();
        assert!(e.contains("rampart1.<id>"), "{e}");
    }

    #[test]
    fn node_names_are_checked() {
        check_node_name("web-1.prod_a").unwrap();
        for bad in ["", "a b", "a*", "a>b", &"x".repeat(64)] {
            assert!(check_node_name(bad).is_err(), "{bad}");
        }
    }
}
