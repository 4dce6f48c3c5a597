//! Container metadata from containerd's own API socket, without Docker: a listing of
//! every namespace's containers at start, then the events stream (`/containers/*`,
//! `/tasks/*`), cached by container id in the same [`ContainerCache`] the Docker
//! watcher fills. Kubernetes identity comes from the CRI labels (`io.kubernetes.*`)
//! of the container and of its pod sandbox, or from the OCI annotations CRI writes;
//! the pod's service account from the token mounted into the container (see
//! [`crate::cri`]).
//!
//! The gRPC client is small and our own: the handful of messages read here are
//! declared with prost (field numbers from containerd's `api/services/containers/v1`,
//! `namespaces/v1`, `events/v1`, `api/events` and `api/types/event.proto`) and sent
//! through tonic's client over an HTTP/2 connection on the Unix socket, so no
//! `protoc` and no second transport stack are needed.
//!
//! Each container is named once: when Docker is followed too, containerd's `moby`
//! namespace (Docker's own containers) is left to the Docker watcher, which knows
//! their names.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use prost::Message;
use rampart_event::{Container, ContainerLifecycle, KubernetesIdentity, LifecycleAction};
use tonic::codegen::http;

use crate::containers::{split_image, ContainerCache};

/// Where containerd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";

/// The messages of containerd's API this module reads (a subset of each; unknown
/// fields are skipped by prost).
pub mod wire {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Runtime {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    /// `containerd.services.containers.v1.Container`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Container {
        #[prost(string, tag = "1")]
        pub id: String,
        #[prost(map = "string, string", tag = "2")]
        pub labels: HashMap<String, String>,
        #[prost(string, tag = "3")]
        pub image: String,
        #[prost(message, optional, tag = "4")]
        pub runtime: Option<Runtime>,
        /// The OCI runtime spec, JSON in an `Any`.
        #[prost(message, optional, tag = "5")]
        pub spec: Option<prost_types::Any>,
        #[prost(string, tag = "11")]
        pub sandbox: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetContainerRequest {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetContainerResponse {
        #[prost(message, optional, tag = "1")]
        pub container: Option<Container>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListContainersResponse {
        #[prost(message, repeated, tag = "1")]
        pub containers: Vec<Container>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Namespace {
        #[prost(string, tag = "1")]
        pub name: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesRequest {
        #[prost(string, tag = "1")]
        pub filter: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListNamespacesResponse {
        #[prost(message, repeated, tag = "1")]
        pub namespaces: Vec<Namespace>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SubscribeRequest {
        #[prost(string, repeated, tag = "1")]
        pub filters: Vec<String>,
    }

    /// `containerd.types.Envelope`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Envelope {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<prost_types::Timestamp>,
        #[prost(string, tag = "2")]
        pub namespace: String,
        #[prost(string, tag = "3")]
        pub topic: String,
        #[prost(message, optional, tag = "4")]
        pub event: Option<prost_types::Any>,
    }

    /// `containerd.events.ContainerCreate` / `ContainerUpdate` / `ContainerDelete`
    /// (all carry the id first).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerEvent {
        #[prost(string, tag = "1")]
        pub id: String,
    }

    /// `containerd.events.TaskStart`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TaskStart {
        #[prost(string, tag = "1")]
        pub container_id: String,
        #[prost(uint32, tag = "2")]
        pub pid: u32,
    }

    /// `containerd.events.TaskExit`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TaskExit {
        #[prost(string, tag = "1")]
        pub container_id: String,
        /// The exec's id; equal to the container id (or empty) for the main process.
        #[prost(string, tag = "2")]
        pub id: String,
        #[prost(uint32, tag = "3")]
        pub pid: u32,
        #[prost(uint32, tag = "4")]
        pub exit_status: u32,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("connecting to containerd at {path}: {error}")]
    Connect { path: PathBuf, error: String },
    #[error("containerd {call}: {status}")]
    Call {
        call: &'static str,
        status: Box<tonic::Status>,
    },
}

/// One HTTP/2 connection to the socket, as the service tonic's client sends through.
#[derive(Clone)]
struct UdsChannel {
    send: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for UdsChannel {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.send.send_request(req))
    }
}

/// A client of containerd's gRPC API on its Unix socket.
#[derive(Clone)]
pub struct ContainerdClient {
    grpc: tonic::client::Grpc<UdsChannel>,
}

impl ContainerdClient {
    pub async fn connect(path: &Path) -> Result<Self, ContainerdError> {
        let err = |e: &dyn std::fmt::Display| ContainerdError::Connect {
            path: path.to_path_buf(),
            error: e.to_string(),
        };
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| err(&e))?;
        let (send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| err(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "containerd connection closed");
            }
        });
        let origin = http::Uri::from_static("http://containerd");
        Ok(Self {
            grpc: tonic::client::Grpc::with_origin(UdsChannel { send }, origin),
        })
    }

    fn request<T>(namespace: Option<&str>, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(ns) = namespace.and_then(|ns| ns.parse().ok()) {
            req.metadata_mut().insert("containerd-namespace", ns);
        }
        req
    }

    async fn unary<Req, Resp>(
        &mut self,
        call: &'static str,
        namespace: Option<&str>,
        msg: Req,
    ) -> Result<Resp, ContainerdError>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        let fail = |status: tonic::Status| ContainerdError::Call {
            call,
            status: Box::new(status),
        };
        self.grpc
            .ready()
            .await
            .map_err(|e| fail(tonic::Status::unavailable(e.to_string())))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(call);
        self.grpc
            .unary(Self::request(namespace, msg), path, codec)
            .await
            .map(|r| r.into_inner())
            .map_err(fail)
    }

    pub async fn namespaces(&mut self) -> Result<Vec<String>, ContainerdError> {
        let r: wire::ListNamespacesResponse = self
            .unary(
                "/containerd.services.namespaces.v1.Namespaces/List",
                None,
                wire::ListNamespacesRequest::default(),
            )
            .await?;
        Ok(r.namespaces.into_iter().map(|n| n.name).collect())
    }

    pub async fn containers(
        &mut self,
        namespace: &str,
    ) -> Result<Vec<wire::Container>, ContainerdError> {
        let r: wire::ListContainersResponse = self
            .unary(
                "/containerd.services.containers.v1.Containers/List",
                Some(namespace),
                wire::ListContainersRequest::default(),
            )
            .await?;
        Ok(r.containers)
    }

    pub async fn container(
        &mut self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<wire::Container>, ContainerdError> {
        let r: wire::GetContainerResponse = self
            .unary(
                "/containerd.services.containers.v1.Containers/Get",
                Some(namespace),
                wire::GetContainerRequest { id: id.into() },
            )
            .await?;
        Ok(r.container)
    }

    /// Every namespace's events, as they happen.
    pub async fn subscribe(&mut self) -> Result<tonic::Streaming<wire::Envelope>, ContainerdError> {
        let call = "/containerd.services.events.v1.Events/Subscribe";
        let fail = |status: tonic::Status| ContainerdError::Call {
            call,
            status: Box::new(status),
        };
        self.grpc
            .ready()
            .await
            .map_err(|e| fail(tonic::Status::unavailable(e.to_string())))?;
        let codec = tonic_prost::ProstCodec::<wire::SubscribeRequest, wire::Envelope>::default();
        let filters = vec![
            r#"topic~="^/containers/""#.to_string(),
            r#"topic~="^/tasks/""#.to_string(),
        ];
        self.grpc
            .server_streaming(
                Self::request(None, wire::SubscribeRequest { filters }),
                http::uri::PathAndQuery::from_static(call),
                codec,
            )
            .await
            .map(|r| r.into_inner())
            .map_err(fail)
    }
}

/// The OCI spec fields read here.
#[derive(Default, serde::Deserialize)]
struct OciSpec {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    process: Option<OciProcess>,
    #[serde(default)]
    linux: Option<OciLinux>,
    #[serde(default)]
    mounts: Vec<crate::cri::OciMount>,
}

#[derive(Default, serde::Deserialize)]
struct OciProcess {
    #[serde(default)]
    capabilities: Option<OciCapabilities>,
}

#[derive(Default, serde::Deserialize)]
struct OciCapabilities {
    #[serde(default)]
    effective: Vec<String>,
}

#[derive(Default, serde::Deserialize)]
struct OciLinux {
    #[serde(default)]
    namespaces: Vec<OciNamespace>,
}

#[derive(serde::Deserialize)]
struct OciNamespace {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    path: Option<String>,
}

/// The capabilities runc gives a container by default (containerd's `oci` package,
/// as Docker's): what a container holds beyond these was added.
const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// OCI annotations CRI runtimes write, mapped to the CRI label each stands for
/// (containerd's CRI plugin, then CRI-O's).
const ANNOTATION_LABELS: &[(&str, &str)] = &[
    ("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"),
    (
        "io.kubernetes.cri.sandbox-namespace",
        "io.kubernetes.pod.namespace",
    ),
    ("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid"),
    (
        "io.kubernetes.cri.container-name",
        "io.kubernetes.container.name",
    ),
    ("io.kubernetes.pod.name", "io.kubernetes.pod.name"),
    ("io.kubernetes.pod.namespace", "io.kubernetes.pod.namespace"),
    ("io.kubernetes.pod.uid", "io.kubernetes.pod.uid"),
    (
        "io.kubernetes.container.name",
        "io.kubernetes.container.name",
    ),
];

/// The sandbox (pod) a CRI container belongs to, from its spec's annotations.
pub fn sandbox_id(c: &wire::Container) -> Option<String> {
    if !c.sandbox.is_empty() {
        return Some(c.sandbox.clone());
    }
    let spec = parse_spec(c);
    spec.annotations
        .get("io.kubernetes.cri.sandbox-id")
        .or_else(|| spec.annotations.get("io.kubernetes.cri-o.SandboxID"))
        .filter(|s| **s != c.id)
        .cloned()
}

fn parse_spec(c: &wire::Container) -> OciSpec {
    c.spec
        .as_ref()
        .and_then(|any| serde_json::from_slice(&any.value).ok())
        .unwrap_or_default()
}

/// Our container identity for a containerd container in `namespace`. `pod_labels`
/// are its pod sandbox's labels when it has one (the pod's own labels, which carry
/// the owner's marks: `pod-template-hash`, `controller-revision-hash`, `job-name`).
pub fn container_from_containerd(
    namespace: &str,
    c: &wire::Container,
    pod_labels: Option<&BTreeMap<String, String>>,
) -> Container {
    let spec = parse_spec(c);
    let mut labels: BTreeMap<String, String> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Labels win; annotations fill what a runtime put only there.
    for (annotation, label) in ANNOTATION_LABELS {
        if let Some(v) = spec.annotations.get(*annotation) {
            labels
                .entry((*label).to_string())
                .or_insert_with(|| v.clone());
        }
    }
    let mut k8s = KubernetesIdentity::from_labels(&labels);
    if let Some(k) = k8s.as_mut() {
        let pod_labels = pod_labels.cloned().unwrap_or_default();
        k.fill_workload(&pod_labels);
        k.labels = pod_labels
            .into_iter()
            .filter(|(key, _)| !is_runtime_label(key))
            .collect();
        k.service_account =
            crate::cri::service_account_from_mounts(&spec.mounts, &crate::cri::host_roots())
                .unwrap_or_default();
    }
    let image = c.image.clone();
    let (image_repository, image_tag) = split_image(&image);
    let effective = spec
        .process
        .as_ref()
        .and_then(|p| p.capabilities.as_ref())
        .map(|c| c.effective.clone())
        .unwrap_or_default();
    let cap_add: Vec<String> = effective
        .iter()
        .filter(|c| !DEFAULT_CAPS.contains(&c.as_str()))
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    let namespaces = spec.linux.map(|l| l.namespaces).unwrap_or_default();
    // No network namespace of its own, or one joined by path: the host's or another's.
    let network_mode = match namespaces.iter().find(|n| n.kind == "network") {
        None => "host".to_string(),
        Some(n) if n.path.is_some() => "container".to_string(),
        Some(_) => String::new(),
    };
    let name = k8s
        .as_ref()
        .map(|k| k.container.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| c.id.clone());
    Container {
        k8s,
        id: c.id.clone(),
        cgroup_id: 0,
        runtime: "containerd".into(),
        name,
        image,
        image_repository,
        image_tag,
        image_digest: String::new(),
        labels: labels
            .into_iter()
            .chain([("io.containerd.namespace".to_string(), namespace.to_string())])
            .collect(),
        // runc's full set: what CRI and `ctr run --privileged` give.
        privileged: cap_add.len() >= 30 && effective.iter().any(|c| c == "CAP_SYS_ADMIN"),
        cap_add,
        network_mode,
        metadata_complete: true,
    }
}

/// Labels runtimes and the kubelet set for themselves, not the pod's own.
fn is_runtime_label(key: &str) -> bool {
    key.starts_with("io.kubernetes.") || key.starts_with("io.cri-containerd.")
}

/// Keeps the cache in step with containerd: lists every namespace's containers, then
/// follows the events stream; reconnects (and re-lists) when containerd restarts.
pub struct ContainerdWatcher {
    socket: PathBuf,
    cache: ContainerCache,
    forget_after: Duration,
    /// Namespaces another watcher names (`moby` when Docker is followed).
    skip_namespaces: BTreeSet<String>,
    lifecycle: Option<std::sync::mpsc::Sender<ContainerLifecycle>>,
}

impl ContainerdWatcher {
    pub fn new(socket: PathBuf, cache: ContainerCache, forget_after: Duration) -> Self {
        Self {
            socket,
            cache,
            forget_after,
            skip_namespaces: BTreeSet::new(),
            lifecycle: None,
        }
    }

    /// Leaves these namespaces' containers to another watcher.
    pub fn skip_namespaces<I: IntoIterator<Item = String>>(mut self, namespaces: I) -> Self {
        self.skip_namespaces.extend(namespaces);
        self
    }

    pub fn with_lifecycle(mut self, tx: std::sync::mpsc::Sender<ContainerLifecycle>) -> Self {
        self.lifecycle = Some(tx);
        self
    }

    /// Fetches one container (and its pod sandbox's labels) and caches it. False when
    /// containerd does not know it (any more).
    pub async fn refresh(
        client: &mut ContainerdClient,
        cache: &ContainerCache,
        namespace: &str,
        id: &str,
    ) -> bool {
        let Ok(Some(c)) = client.container(namespace, id).await else {
            return false;
        };
        let pod_labels = match sandbox_id(&c) {
            Some(sandbox) => client
                .container(namespace, &sandbox)
                .await
                .ok()
                .flatten()
                .map(|s| s.labels.into_iter().collect::<BTreeMap<_, _>>()),
            None => None,
        };
        cache.insert(container_from_containerd(
            namespace,
            &c,
            pod_labels.as_ref(),
        ));
        true
    }

    async fn list_all(&self, client: &mut ContainerdClient) -> Result<usize, ContainerdError> {
        let mut n = 0;
        for ns in client.namespaces().await? {
            if self.skip_namespaces.contains(&ns) {
                continue;
            }
            self.cache.add_containerd_namespace(&ns);
            let listed = client.containers(&ns).await?;
            // Sandboxes first, so each container finds its pod's labels.
            let by_id: std::collections::HashMap<&str, &wire::Container> =
                listed.iter().map(|c| (c.id.as_str(), c)).collect();
            for c in &listed {
                let pod_labels = sandbox_id(c).and_then(|s| {
                    by_id
                        .get(s.as_str())
                        .map(|s| s.labels.clone().into_iter().collect::<BTreeMap<_, _>>())
                });
                self.cache
                    .insert(container_from_containerd(&ns, c, pod_labels.as_ref()));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Runs until the task is dropped. `ready` fires after the first listing.
    pub async fn run(self, ready: Option<tokio::sync::oneshot::Sender<Result<usize, String>>>) {
        let mut ready = ready;
        let mut backoff = Duration::from_millis(200);
        loop {
            let attempt = async {
                let mut client = ContainerdClient::connect(&self.socket).await?;
                // Subscribe before listing so nothing created in between is missed.
                // containerd sends the stream's headers only with its first event, so
                // the subscription is awaited apart: its request goes out first.
                let mut subscriber = client.clone();
                let subscription = tokio::spawn(async move { subscriber.subscribe().await });
                tokio::time::sleep(Duration::from_millis(50)).await;
                let n = self.list_all(&mut client).await?;
                Ok::<_, ContainerdError>((client, subscription, n))
            };
            let (mut client, subscription) = match attempt.await {
                Ok((client, subscription, n)) => {
                    tracing::info!(containers = n, socket = %self.socket.display(), "containerd: listed existing containers");
                    backoff = Duration::from_millis(200);
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(n));
                    }
                    (client, subscription)
                }
                Err(e) => {
                    tracing::debug!(error = %e, "containerd unavailable; retrying");
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(e.to_string()));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            let mut events = match subscription.await {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "containerd: cannot follow events; reconnecting");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "containerd: subscription task failed; reconnecting");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            while let Ok(Some(env)) = events.message().await {
                self.on_event(&mut client, env).await;
            }
            tracing::warn!("containerd: events stream ended (restart?); reconnecting");
            tokio::time::sleep(backoff).await;
        }
    }

    async fn on_event(&self, client: &mut ContainerdClient, env: wire::Envelope) {
        if self.skip_namespaces.contains(&env.namespace) {
            return;
        }
        let Some(any) = env.event.as_ref() else {
            return;
        };
        let ns = env.namespace.as_str();
        let ts_ns = env
            .timestamp
            .as_ref()
            .and_then(|t| u64::try_from(t.seconds).ok().map(|s| (s, t.nanos)))
            .map(|(s, n)| s * 1_000_000_000 + u64::try_from(n).unwrap_or(0))
            .unwrap_or_else(rampart_event::wall_ns);
        match env.topic.as_str() {
            "/containers/create" | "/containers/update" => {
                if let Ok(e) = wire::ContainerEvent::decode(any.value.as_slice()) {
                    self.cache.add_containerd_namespace(ns);
                    Self::refresh(client, &self.cache, ns, &e.id).await;
                }
            }
            // Late events from a deleted container must still name it.
            "/containers/delete" => {
                if let Ok(e) = wire::ContainerEvent::decode(any.value.as_slice()) {
                    let cache = self.cache.clone();
                    let after = self.forget_after;
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        cache.remove(&e.id);
                    });
                }
            }
            "/tasks/start" => {
                if let Ok(e) = wire::TaskStart::decode(any.value.as_slice()) {
                    if !self.cache.contains(&e.container_id) {
                        Self::refresh(client, &self.cache, ns, &e.container_id).await;
                    }
                    self.report(ts_ns, LifecycleAction::Start, &e.container_id);
                }
            }
            "/tasks/exit" => {
                if let Ok(e) = wire::TaskExit::decode(any.value.as_slice()) {
                    // An exec's exit is not the container's.
                    if e.id.is_empty() || e.id == e.container_id {
                        let exit_code = i64::from(e.exit_status);
                        self.report(ts_ns, LifecycleAction::Die { exit_code }, &e.container_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn report(&self, ts_ns: u64, action: LifecycleAction, id: &str) {
        let Some(tx) = &self.lifecycle else {
            return;
        };
        let known = self.cache.get(id);
        let c = known.as_deref().and_then(|w| w.container());
        let _ = tx.send(ContainerLifecycle {
            ts_ns,
            action,
            container_id: id.to_string(),
            name: c.map(|c| c.name.clone()).unwrap_or_default(),
            image: c.map(|c| c.image.clone()).unwrap_or_default(),
            labels: c.map(|c| c.labels.clone()).unwrap_or_default(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Option<prost_types::Any> {
        Some(prost_types::Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
            value: json.as_bytes().to_vec(),
        })
    }

    #[test]
    fn cri_container_from_labels_and_pod_sandbox() {
        let c = wire::Container {
            id: "c".repeat(64),
            labels: [
                ("io.kubernetes.pod.name", "web-7d4b9c8f5-x2x9k"),
                ("io.kubernetes.pod.namespace", "shop"),
                ("io.kubernetes.container.name", "nginx"),
                ("io.cri-containerd.kind", "container"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            image: "registry.local:5000/nginx:1.25".into(),
            spec: spec(
                r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sbx"},
                    "process":{"capabilities":{"effective":["CAP_CHOWN","CAP_NET_ADMIN"]}},
                    "linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/proc/1/ns/net"}]}}"#,
            ),
            ..Default::default()
        };
        assert_eq!(sandbox_id(&c).as_deref(), Some("sbx"));
        let pod: BTreeMap<String, String> = [
            ("app", "web"),
            ("pod-template-hash", "7d4b9c8f5"),
            ("io.kubernetes.pod.name", "web-7d4b9c8f5-x2x9k"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = container_from_containerd("k8s.io", &c, Some(&pod));
        let k = got.k8s.as_ref().expect("k8s identity");
        assert_eq!(
            (k.namespace.as_str(), k.pod.as_str(), k.container.as_str()),
            ("shop", "web-7d4b9c8f5-x2x9k", "nginx")
        );
        assert_eq!(
            (k.workload_kind.as_str(), k.workload_name.as_str()),
            ("Deployment", "web")
        );
        assert_eq!(k.labels.get("app").map(String::as_str), Some("web"));
        assert!(!k.labels.contains_key("io.kubernetes.pod.name"));
        assert_eq!(got.name, "nginx");
        assert_eq!(got.runtime, "containerd");
        assert_eq!(got.image_tag, "1.25");
        assert_eq!(got.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(got.network_mode, "container");
        assert!(!got.privileged);
        assert_eq!(got.labels["io.containerd.namespace"], "k8s.io");
    }

    #[test]
    fn annotations_fill_what_labels_lack_and_plain_containers_keep_their_id() {
        let c = wire::Container {
            id: "plain".into(),
            spec: spec(
                r#"{"annotations":{"io.kubernetes.cri.sandbox-name":"db-0",
                    "io.kubernetes.cri.sandbox-namespace":"data",
                    "io.kubernetes.cri.container-name":"pg"}}"#,
            ),
            ..Default::default()
        };
        let got = container_from_containerd("k8s.io", &c, None);
        let k = got.k8s.expect("identity from annotations");
        assert_eq!((k.pod.as_str(), k.namespace.as_str()), ("db-0", "data"));
        assert_eq!(got.network_mode, "host", "no network namespace of its own");
        let bare = wire::Container {
            id: "job1".into(),
            spec: spec("{garbage"),
            ..Default::default()
        };
        let got = container_from_containerd("default", &bare, None);
        assert_eq!(got.name, "job1");
        assert!(got.k8s.is_none());
    }
}
