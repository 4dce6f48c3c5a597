//! A small client for Rampart's API over https, trusting one certificate (the
//! server's self-signed one): JSON requests over HTTP/1.1 and a gRPC channel over
//! HTTP/2 for the generated tonic clients. Tests, `rampart bench api` and scripts use
//! it; it is no part of the server.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("bad address {0:?}")]
    Address(String),
    #[error("request: {0}")]
    Request(String),
    #[error("the connection was closed: {0}")]
    Closed(String),
}

/// A client of one server.
#[derive(Clone)]
pub struct ApiClient {
    json: Client<Https, Full<Bytes>>,
    grpc: Client<Https, tonic::body::Body>,
    base: String,
    token: Option<String>,
}

fn connector(ca: &Path, alpn_h2_only: bool) -> Result<Https, ClientError> {
    let cert_err = |reason: String| ClientError::Certificate {
        path: ca.display().to_string(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(|e| cert_err(e.to_string()))? {
        roots
            .add(c.map_err(|e| cert_err(e.to_string()))?)
            .map_err(|e| cert_err(e.to_string()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| cert_err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    Ok(if alpn_h2_only {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    })
}

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl ApiClient {
    /// `addr` is `host:port`; `ca` the PEM certificate the server presents.
    pub fn new(addr: &str, ca: &Path, token: Option<String>) -> Result<Self, ClientError> {
        if addr.contains('/') || addr.is_empty() {
            return Err(ClientError::Address(addr.into()));
        }
        let json = Client::builder(TokioExecutor::new()).build(connector(ca, false)?);
        let grpc = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector(ca, true)?);
        Ok(Self {
            json,
            grpc,
            base: format!("https://{addr}"),
            token,
        })
    }

    pub fn with_token(&self, token: Option<String>) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// One HTTP request; `path` includes the query string. A GET that met a pooled
    /// connection the server had just closed (a server closes after refusing a body it
    /// did not read; this one reads bodies up to 8 MiB first) is sent once more.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ClientError> {
        match self.request_once(method, path, body.clone()).await {
            Err(ClientError::Closed(_)) if method == "GET" => {
                self.request_once(method, path, body).await
            }
            Err(ClientError::Closed(e)) => Err(ClientError::Request(e)),
            r => r,
        }
    }

    async fn request_once(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ClientError> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let resp = self.json.request(req).await.map_err(|e| {
            let closed = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<hyper::Error>())
                .is_some_and(|h| h.is_incomplete_message() || h.is_canceled());
            if closed {
                ClientError::Closed(format!("{e:?}"))
            } else {
                ClientError::Request(format!("{e:?}"))
            }
        })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Request(e.to_string()))?
            .to_bytes();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    /// A server-sent event stream's `data:` payloads, as they come.
    pub async fn sse(
        &self,
        path: &str,
    ) -> Result<impl futures_util::Stream<Item = String> + Send + 'static, ClientError> {
        let mut b = hyper::Request::builder()
            .uri(format!("{}{path}", self.base))
            .header("accept", "text/event-stream");
        if let Some(t) = &self.token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = b
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let resp = self
            .json
            .request(req)
            .await
            .map_err(|e| ClientError::Request(format!("{e:?}")))?;
        if resp.status() != 200 {
            return Err(ClientError::Request(format!("status {}", resp.status())));
        }
        let body = resp.into_body().into_data_stream();
        let mut buf = String::new();
        Ok(futures_util::StreamExt::flat_map(body, move |chunk| {
            let mut out = Vec::new();
            if let Ok(c) = chunk {
                buf.push_str(&String::from_utf8_lossy(&c));
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    for line in event.lines() {
                        if let Some(d) = line.strip_prefix("data:") {
                            out.push(d.trim_start().to_string());
                        }
                    }
                }
            }
            futures_util::stream::iter(out)
        }))
    }

    /// The gRPC transport for generated clients:
    /// `AlertServiceClient::with_origin(c.grpc_channel(), c.origin())`.
    pub fn grpc_channel(&self) -> Client<Https, tonic::body::Body> {
        self.grpc.clone()
    }

    pub fn origin(&self) -> hyper::Uri {
        self.base.parse().unwrap_or_default()
    }

    /// A gRPC request carrying the bearer token.
    pub fn grpc_request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        if let Some(t) = &self.token {
            if let Ok(v) = format!("Bearer {t}").parse() {
                r.metadata_mut().insert("authorization", v);
            }
        }
        r
    }
}
