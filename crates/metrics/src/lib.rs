//! Prometheus metrics for every Rampart process. The parts record with the `metrics`
//! macros (a no-op until a recorder is installed); a process that exports calls
//! [`install`] once and [`serve`]s `GET /metrics` in the Prometheus text format.
//!
//! The listener is loopback-only by design (it has neither TLS nor auth): an address
//! beyond loopback is refused, and a scraper on another host goes through a local
//! agent or proxy. It answers one small request per connection and nothing else.
//!
//! Names in use (`rampart_` prefix): `events_total`, `alerts_total`,
//! `dropped_total{source}`, `bus_batches_total`, `bus_lag_seconds`,
//! `spool_queued_messages`, `store_commit_seconds`, `store_errors_total`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics listen address {addr:?}: {reason}")]
    Address { addr: String, reason: String },
    #[error("metrics listen address {0}: only loopback addresses are allowed (the endpoint has no TLS or auth)")]
    NotLoopback(SocketAddr),
    #[error("installing the metrics recorder: {0}")]
    Install(String),
    #[error("metrics listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[
            0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            5.0,
        ])
        .map_err(|e| MetricsError::Install(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        return HANDLE
            .get()
            .cloned()
            .ok_or_else(|| MetricsError::Install("another recorder is installed".into()));
    }
    let _ = HANDLE.set(handle.clone());
    // Histograms are summarised on render; upkeep keeps their memory bounded.
    Ok(handle)
}

/// Parses `addr` and refuses anything but loopback.
pub fn loopback_addr(addr: &str) -> Result<SocketAddr, MetricsError> {
    let a: SocketAddr =
        addr.parse()
            .map_err(|e: std::net::AddrParseError| MetricsError::Address {
                addr: addr.into(),
                reason: format!("{e} (expected e.g. 127.0.0.1:9464)"),
            })?;
    if !a.ip().is_loopback() {
        return Err(MetricsError::NotLoopback(a));
    }
    Ok(a)
}

/// Binds the loopback listener (so a port in use is an error at start, not later).
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, MetricsError> {
    let a = loopback_addr(addr)?;
    tokio::net::TcpListener::bind(a)
        .await
        .map_err(|source| MetricsError::Bind { addr: a, source })
}

/// Serves `GET /metrics` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let (mut s, _) = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                let mut head = Vec::with_capacity(512);
                let mut buf = [0u8; 512];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
                let ok = first.starts_with(b"GET /metrics ") || first.starts_with(b"GET /metrics?");
                let (status, ctype, body) = if ok {
                    handle.run_upkeep();
                    ("200 OK", "text/plain; version=0.0.4", handle.render())
                } else {
                    ("404 Not Found", "text/plain", "only GET /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
                let _ = s.shutdown().await;
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback() {
        loopback_addr("127.0.0.1:9464").unwrap();
        loopback_addr("[::1]:9464").unwrap();
        assert!(matches!(
            loopback_addr("0.0.0.0:9464"),
            Err(MetricsError::NotLoopback(_))
        ));
        assert!(matches!(
            loopback_addr("10.0.0.1:9464"),
            Err(MetricsError::NotLoopback(_))
        ));
        let e = loopback_addr("localhost").unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:9464"), "{e}");
    }

    #[tokio::test]
    async fn serves_what_was_recorded() {
        let handle = install().unwrap();
        metrics::counter!("rampart_test_total").increment(3);
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, handle, async {
            let _ = rx.await;
        }));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let body = get("/metrics").await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("rampart_test_total 3"), "{body}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        let _ = tx.send(());
        server.await.unwrap();
    }
}
