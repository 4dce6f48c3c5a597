//! Shared test helpers: a real HTTP server on 127.0.0.1 that records every request and
//! can answer the first K with an error or stall, and a sample alert.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the server behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// The first `fail_first` requests get `fail_status`.
    pub fail_first: usize,
    pub fail_status: u16,
    /// Every request waits this long before being answered.
    pub delay: Duration,
    /// Only the first request waits `first_delay` (to provoke a client timeout).
    pub first_delay: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            fail_first: 0,
            fail_status: 503,
            delay: Duration::ZERO,
            first_delay: Duration::ZERO,
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_string();
                            let headers = req.headers().clone();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let index = {
                                let mut all = seen.lock().unwrap();
                                all.push(Recorded {
                                    method,
                                    path,
                                    headers,
                                    body,
                                });
                                all.len() - 1
                            };
                            if index == 0 && !behaviour.first_delay.is_zero() {
                                tokio::time::sleep(behaviour.first_delay).await;
                            }
                            if !behaviour.delay.is_zero() {
                                tokio::time::sleep(behaviour.delay).await;
                            }
                            let status = if index < behaviour.fail_first {
                                behaviour.fail_status
                            } else {
                                200
                            };
                            let response = Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"{\"text\":\"ok\"}")))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fixed, realistic alert (shell reading /etc/shadow in a container).
pub fn alert() -> rampart_event::Alert {
    let mut a = rampart_notify::sample_alert();
    a.id = "0123456789abcdef0123456789abcdef".into();
    a.ts_ns = 1_700_000_000_123_456_789;
    a.first_ts_ns = a.ts_ns;
    a.event.ts_ns = a.ts_ns;
    a.event.host = "node-1".into();
    a.priority = rampart_event::Priority::Critical;
    a
}
