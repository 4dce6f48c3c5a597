//! One listener for everything: TLS (rustls with ring; ALPN offers h2 and
//! http/1.1), then HTTP/1.1 or HTTP/2 per connection (hyper-util's auto builder).
//! gRPC requests (`/rampart.v1.*Service/*`) go to the tonic services, `/openapi.json`
//! to the document, `/v1/…` to the HTTP/JSON routes, the rest to the web console
//! (`rampart-console`: embedded static files, no token needed). The listen policy is checked
//! before binding: beyond loopback the server needs TLS and tokens.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::core::ApiCore;
use crate::grpc::Grpc;
use crate::http::HttpApi;
use crate::listen::{check_listen, ListenError, ListenSecurity};

/// The largest request accepted: an HTTP body, or one gRPC message.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Where and how the API listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The certificate chain and key (PEM). `None` serves plain HTTP, which
    /// [`check_listen`] allows on loopback only.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: {path}: {reason}")]
    Tls { path: PathBuf, reason: String },
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> Result<rustls::ServerConfig, ServerError> {
    let tls_err = |path: &PathBuf, reason: String| ServerError::Tls {
        path: path.clone(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| tls_err(cert, e.to_string()))?;
    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(c)
}

/// The whole service: gRPC, `/openapi.json`, HTTP/JSON.
pub fn router(core: Arc<ApiCore>) -> axum::Router {
    let http = Arc::new(HttpApi::new(core.clone()));
    let openapi = Arc::new(http.openapi.clone());
    Grpc::new(core)
        .routes(MAX_BODY_BYTES)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = openapi.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        // Replaces tonic's fallback (gRPC UNIMPLEMENTED for unknown methods): gRPC
        // requests still get that answer, the rest go to the HTTP/JSON routes.
        .fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Body| {
                let http = http.clone();
                async move {
                    let grpc = headers
                        .get(axum::http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|ct| ct.starts_with("application/grpc"));
                    if grpc {
                        return grpc_unimplemented(uri.path());
                    }
                    // The web console: static files and its single-page fallback, no
                    // token needed (each API call the console makes carries one).
                    if rampart_console::owns_path(uri.path()) {
                        return rampart_console::respond(&method, uri.path(), &headers);
                    }
                    http.handle(method, uri, headers, body).await
                }
            },
        )
}

fn grpc_unimplemented(path: &str) -> Response {
    let status = tonic::Status::unimplemented(format!("no gRPC method {path}"));
    status.into_http::<Body>().into_response()
}

/// A running server: its address, and the task serving it.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub tls: bool,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Checks the listen policy, binds, and serves on the current tokio runtime.
pub async fn serve(config: ServerConfig, core: Arc<ApiCore>) -> Result<RunningServer, ServerError> {
    check_listen(
        config.listen,
        ListenSecurity {
            tls: config.tls.is_some(),
            // Every route authenticates; there is no anonymous access to turn off.
            auth: true,
        },
    )?;
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(
            cert, key,
        )?))),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let app = router(core);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let tls = acceptor.is_some();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = async { let _ = stopped.wait_for(|s| *s).await; } => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and the like pass; do not spin on them.
                        tracing::warn!(error = %e, "accepting an API connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let app = app.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let r = match acceptor {
                    Some(a) => {
                        let tls = match tokio::time::timeout(Duration::from_secs(10), a.accept(tcp))
                            .await
                        {
                            Ok(Ok(t)) => t,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                            .await
                    }
                    None => {
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                            .await
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "API connection ended with an error");
                }
            });
        }
    });
    Ok(RunningServer {
        local_addr,
        tls,
        stop,
        task,
    })
}
