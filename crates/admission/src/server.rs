//! The webhook over TLS: `POST /validate` and `POST /mutate` take an AdmissionReview
//! and answer one; `GET /healthz` answers `ok`. Every decision goes to the caller's
//! `on_decision` (central audits it and raises the alert).
//!
//! Secure by default: always TLS; beyond loopback a client certificate from
//! `client_ca` is required (the API server presents one through its admission
//! kubeconfig) unless `unauthenticated_reviews` says otherwise: a review carries
//! nothing secret back, so a caller without one learns only the policy's answer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::review::AdmissionRequest;
use crate::{answer_review, AdmissionPolicy, AdmissionReview, Decision, ScanFacts};

/// The largest review accepted (the API server's own request limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// `admission:` in central's file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// `0.0.0.0:8446`; null: no webhook.
    pub listen: Option<String>,
    /// Certificate (chain) and key in PEM; default: central's server certificate in
    /// its PKI directory (its CA is the webhook configuration's `caBundle`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA of the client certificates accepted (the API server's); required beyond
    /// loopback unless `unauthenticated_reviews`.
    pub client_ca: Option<PathBuf>,
    pub unauthenticated_reviews: bool,
    /// Directory of JSON scan reports (`rampart scan --format json`); `None`: central
    /// reads the nodes' scan results from its store.
    pub scan_reports: Option<PathBuf>,
    pub policy: AdmissionPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("admission TLS: {0}")]
    Tls(String),
    #[error(
        "admission webhook on {0}: beyond loopback it needs client_ca (the API server's client certificate CA), or unauthenticated_reviews: true"
    )]
    NoClientAuth(String),
    #[error("admission webhook on {addr}: {error}")]
    Bind { addr: String, error: String },
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServerError::Tls(format!("{}: {e}", path.display())))
}

/// The TLS configuration: the certificate chain and key, and client certificates
/// from `client_ca` required when it is given.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use rustls::pki_types::pem::PemObject;
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
    let builder = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| ServerError::Tls(format!("{}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                ring(),
            )
            .build()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| ServerError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Called with every decision and the request it answered.
pub type OnDecision = Arc<dyn Fn(&Decision, &AdmissionRequest) + Send + Sync>;

/// What the webhook answers with.
pub struct Webhook {
    pub policy: AdmissionPolicy,
    pub scans: Arc<dyn ScanFacts>,
    pub on_decision: OnDecision,
}

pub struct RunningWebhook {
    pub local_addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWebhook {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds `addr` and serves until stopped. Refuses a non-loopback address without
/// client authentication unless `unauthenticated` (see the module doc).
pub async fn serve(
    addr: &str,
    tls: Arc<rustls::ServerConfig>,
    client_auth: bool,
    unauthenticated: bool,
    webhook: Arc<Webhook>,
) -> Result<RunningWebhook, ServerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Bind {
            addr: addr.into(),
            error: e.to_string(),
        })?;
    let local_addr = listener.local_addr().map_err(|e| ServerError::Bind {
        addr: addr.into(),
        error: e.to_string(),
    })?;
    if !local_addr.ip().is_loopback() && !client_auth && !unauthenticated {
        return Err(ServerError::NoClientAuth(addr.into()));
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                changed = stopped.changed() => {
                    if changed.is_err() || *stopped.borrow() {
                        return;
                    }
                    continue;
                }
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admission accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (acceptor, webhook) = (acceptor.clone(), webhook.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "admission TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let service = hyper::service::service_fn(move |req| {
                    let webhook = webhook.clone();
                    async move { Ok::<_, Infallible>(handle(webhook, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                if let Err(e) = builder
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "admission connection ended");
                }
            });
        }
    });
    Ok(RunningWebhook {
        local_addr,
        stop,
        task,
    })
}

fn reply(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

async fn handle(
    webhook: Arc<Webhook>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let mutate = match (req.method().as_str(), path.as_str()) {
        ("GET", "/healthz") => return reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        ("POST", "/validate") => false,
        ("POST", "/mutate") => true,
        _ => return reply(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    };
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                format!("reading the review: {e}\n").into_bytes(),
            )
        }
    };
    let review: AdmissionReview = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("not an AdmissionReview: {e}\n").into_bytes(),
            )
        }
    };
    let now = rampart_event::wall_ns();
    // Scan facts may come from a store or files: blocking reads, off the async workers.
    let answered = {
        let webhook = webhook.clone();
        tokio::task::spawn_blocking(move || {
            let answer = answer_review(
                &webhook.policy,
                webhook.scans.as_ref(),
                &review,
                mutate,
                now,
            );
            (answer, review)
        })
        .await
    };
    let (answer, review) = match answered {
        Ok(a) => a,
        Err(e) => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                format!("the review was not answered: {e}\n").into_bytes(),
            )
        }
    };
    match answer {
        Ok((answer, decision)) => {
            if let (Some(d), Some(r)) = (decision, review.request.as_ref()) {
                (webhook.on_decision)(&d, r);
            }
            reply(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec(&answer).unwrap_or_default(),
            )
        }
        Err(e) => reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            format!("{e}\n").into_bytes(),
        ),
    }
}
