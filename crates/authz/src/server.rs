//! The plugin's server: HTTP/1.1 on a unix socket (mode 0600, root only: dockerd
//! runs as root), one thread with its own small runtime, so `rampart up` and
//! `rampart authz` host it the same way. Each denial is logged with its rule.

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::decide::{decide, decide_exec, Need, Verdict};
use crate::policy::Policy;
use crate::protocol::{Manifest, Request, Response, ACTIVATE, AUTHZ_REQ, AUTHZ_RES, CONTENT_TYPE};
use crate::AuthzError;

/// The directory dockerd looks for plugin sockets in (`NAME.sock`); spec files that
/// point elsewhere go in /etc/docker/plugins or /usr/lib/docker/plugins.
pub const PLUGIN_SOCKET_DIR: &str = "/run/docker/plugins";

/// Counts of what the plugin answered.
#[derive(Debug, Default)]
pub struct Counters {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub errors: AtomicU64,
}

/// What the server's tasks share: the policy in force and the engine to ask.
struct State {
    policy: RwLock<Arc<(Policy, bollard::Docker)>>,
    counters: Counters,
}

fn docker_for(policy: &Policy) -> Result<bollard::Docker, AuthzError> {
    let path = policy.docker_socket.to_string_lossy();
    bollard::Docker::connect_with_unix(&path, 10, bollard::API_DEFAULT_VERSION)
        .map_err(|e| AuthzError::Docker(e.to_string()))
}

/// A running plugin; stops (and removes its socket) when dropped.
pub struct PluginHandle {
    socket: PathBuf,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PluginHandle {
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Replaces the policy in force (a refused file never gets here).
    pub fn reload(&self, policy: Policy) -> Result<(), AuthzError> {
        let docker = docker_for(&policy)?;
        let mut g = self
            .state
            .policy
            .write()
            .map_err(|_| AuthzError::Other("authz policy lock poisoned".into()))?;
        *g = Arc::new((policy, docker));
        Ok(())
    }

    pub fn counters(&self) -> &Counters {
        &self.state.counters
    }

    /// Stops serving and removes the socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for PluginHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The socket path for a plugin name in a directory dockerd searches.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// Binds `socket` (refusing to take it over from a live server; a stale one is
/// replaced) and serves the plugin protocol on a thread of its own.
pub fn start(socket: &Path, policy: Policy) -> Result<PluginHandle, AuthzError> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)
            .map_err(AuthzError::io(format!("creating {}", dir.display())))?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(AuthzError::Other(format!(
                "{} is served by another process already",
                socket.display()
            )));
        }
        std::fs::remove_file(socket).map_err(AuthzError::io(format!(
            "removing stale {}",
            socket.display()
        )))?;
    }
    let std_listener = std::os::unix::net::UnixListener::bind(socket)
        .map_err(AuthzError::io(format!("binding {}", socket.display())))?;
    // Root only: whoever can talk to this socket can make dockerd's decisions.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(AuthzError::io(format!("chmod 0600 {}", socket.display())))?;
    std_listener
        .set_nonblocking(true)
        .map_err(AuthzError::io("non-blocking listener"))?;
    let docker = docker_for(&policy)?;
    let state = Arc::new(State {
        policy: RwLock::new(Arc::new((policy, docker))),
        counters: Counters::default(),
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AuthzError::io("tokio runtime"))?;
    let st = state.clone();
    let thread = std::thread::Builder::new()
        .name("authz-plugin".into())
        .spawn(move || rt.block_on(serve(std_listener, st, rx)))
        .map_err(AuthzError::io("spawning the authz thread"))?;
    Ok(PluginHandle {
        socket: socket.to_path_buf(),
        state,
        stop: Some(tx),
        thread: Some(thread),
    })
}

async fn serve(
    listener: std::os::unix::net::UnixListener,
    state: Arc<State>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("authz plugin: cannot serve: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let st = state.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                        if let Err(e) = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await
                        {
                            tracing::debug!("authz plugin connection: {e}");
                        }
                    });
                }
                Err(e) => tracing::warn!("authz plugin accept: {e}"),
            },
            _ = &mut stop => break,
        }
    }
}

fn reply(status: u16, body: Vec<u8>) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(CONTENT_TYPE) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply<T: serde::Serialize>(v: &T) -> hyper::Response<Full<Bytes>> {
    match serde_json::to_vec(v) {
        Ok(b) => reply(200, b),
        Err(e) => reply(500, format!("{{\"Err\":\"{e}\"}}").into_bytes()),
    }
}

async fn handle(
    state: Arc<State>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            state.counters.errors.fetch_add(1, Ordering::Relaxed);
            return Ok(json_reply(&Response {
                allow: false,
                msg: String::new(),
                err: format!("reading the request: {e}"),
            }));
        }
    };
    Ok(match path.as_str() {
        ACTIVATE => json_reply(&Manifest::authz()),
        AUTHZ_REQ => {
            let current = match state.policy.read() {
                Ok(g) => g.clone(),
                Err(_) => {
                    return Ok(json_reply(&Response {
                        allow: false,
                        msg: String::new(),
                        err: "authz policy lock poisoned".into(),
                    }))
                }
            };
            let (policy, docker) = (&current.0, &current.1);
            let verdict = match serde_json::from_slice::<Request>(&body) {
                Ok(r) => {
                    let v = judge(policy, docker, &r).await;
                    if let Some(rule) = v.rule {
                        tracing::warn!(
                            rule,
                            method = %r.method,
                            uri = %r.uri,
                            user = %r.user,
                            "docker API call denied: {}",
                            v.response.msg
                        );
                    }
                    v
                }
                Err(e) => Verdict::on_error(policy, format!("undecodable AuthZReq: {e}")),
            };
            let c = &state.counters;
            if verdict.response.allow {
                c.allowed.fetch_add(1, Ordering::Relaxed);
            } else {
                c.denied.fetch_add(1, Ordering::Relaxed);
            }
            json_reply(&verdict.response)
        }
        // Responses are not filtered: what was allowed in may be read back.
        AUTHZ_RES => json_reply(&Response::allow()),
        _ => reply(404, b"{\"Err\":\"not implemented\"}".to_vec()),
    })
}

async fn judge(policy: &Policy, docker: &bollard::Docker, req: &Request) -> Verdict {
    match decide(policy, req) {
        Need::Verdict(v) => v,
        Need::Labels(container) => {
            let r = docker
                .inspect_container(
                    &container,
                    None::<bollard::query_parameters::InspectContainerOptions>,
                )
                .await;
            match r {
                Ok(c) => {
                    let labels = c
                        .config
                        .and_then(|c| c.labels)
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                    decide_exec(policy, &container, &labels)
                }
                Err(e) => Verdict::on_error(
                    policy,
                    format!("inspecting the exec target {container}: {e}"),
                ),
            }
        }
    }
}

/// The plugin as `rampart up` and `rampart authz` run it: with `fail_mode: open`, it
/// registers itself in dockerd's daemon.json once its socket answers, and takes
/// itself out again before it stops, so Docker keeps working without rampart; with
/// `closed`, registration is the operator's (dockerd refuses calls while it is down).
pub struct ManagedPlugin {
    handle: Option<PluginHandle>,
    name: String,
    /// daemon.json and dockerd's pid file, when rampart registered itself.
    registered: Option<(PathBuf, PathBuf)>,
}

impl ManagedPlugin {
    pub fn start(dir: &Path, name: &str, policy: Policy) -> Result<Self, AuthzError> {
        let open = policy.fail_mode == crate::FailMode::Open;
        let cfg = policy.daemon_config.clone();
        let pidfile = policy.dockerd_pidfile.clone();
        let handle = start(&socket_path(dir, name), policy)?;
        let mut registered = None;
        if let (true, Some(cfg)) = (open, cfg) {
            // Only now: dockerd validates the plugin on reload and exits if it is not there.
            if crate::daemon::set_registered(&cfg, name, true)? {
                crate::daemon::reload_dockerd(&pidfile)?;
            }
            tracing::info!(
                config = %cfg.display(),
                "authz plugin registered with dockerd (fail_mode: open; removed again when rampart stops)"
            );
            registered = Some((cfg, pidfile));
        }
        Ok(Self {
            handle: Some(handle),
            name: name.to_string(),
            registered,
        })
    }

    pub fn handle(&self) -> Option<&PluginHandle> {
        self.handle.as_ref()
    }

    /// Deregisters (fail open) and stops serving.
    pub fn stop(mut self) -> Result<(), AuthzError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), AuthzError> {
        let mut result = Ok(());
        if let Some((cfg, pidfile)) = self.registered.take() {
            result = crate::daemon::set_registered(&cfg, &self.name, false).and_then(|changed| {
                if changed {
                    crate::daemon::reload_dockerd(&pidfile).map(|_| ())
                } else {
                    Ok(())
                }
            });
            // dockerd applies the reload asynchronously; calls already on their way
            // still reach the plugin meanwhile.
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        result
    }
}

impl Drop for ManagedPlugin {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!("authz plugin: deregistering from dockerd: {e}");
        }
    }
}
