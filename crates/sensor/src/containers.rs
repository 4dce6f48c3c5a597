//! Container attribution: container ids parsed from the cgroup leaf names the kernel
//! reports with each event, and metadata from the Docker API (listing at start, then
//! the events stream), cached by container id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bollard::query_parameters::{EventsOptions, InspectContainerOptions, ListContainersOptions};
use bollard::Docker;
use futures_util::StreamExt;
use rampart_event::{Container, ContainerLifecycle, KubernetesIdentity, LifecycleAction, Workload};

/// Finds a container id in a cgroup leaf name: `<64 hex>` (cgroupfs driver),
/// `docker-<id>.scope` (systemd), `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `libpod-<id>.scope`. Returns the id and the runtime it implies.
pub fn container_id_from_leaf(leaf: &[u8]) -> Option<(&str, &'static str)> {
    let s = std::str::from_utf8(leaf).ok()?;
    let (body, runtime) = if let Some(r) = s.strip_prefix("docker-") {
        (r, "docker")
    } else if let Some(r) = s.strip_prefix("cri-containerd-") {
        (r, "containerd")
    } else if let Some(r) = s.strip_prefix("crio-") {
        (r, "cri-o")
    } else if let Some(r) = s.strip_prefix("libpod-") {
        (r, "podman")
    } else {
        (s, "docker")
    };
    let id = body.strip_suffix(".scope").unwrap_or(body);
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some((id, runtime))
}

/// Splits `repo:tag` (a registry port's colon is not a tag separator).
pub fn split_image(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        Some(i) if !image[i + 1..].contains('/') => {
            (image[..i].to_string(), image[i + 1..].to_string())
        }
        _ => (image.to_string(), String::new()),
    }
}

/// Metadata cache shared between the enrichment path and the runtime watchers
/// (Docker, containerd).
#[derive(Clone, Default)]
pub struct ContainerCache {
    inner: Arc<RwLock<HashMap<String, Arc<Workload>>>>,
    /// containerd namespaces seen (their names are the top cgroup of containers that
    /// containerd places itself: `/<namespace>/<id>`).
    containerd_namespaces: Arc<RwLock<BTreeSet<String>>>,
    /// The Kubernetes node name put on every pod's identity.
    node: Arc<RwLock<String>>,
}

impl ContainerCache {
    /// The workload for a container id: known metadata, or an id-only record.
    /// The cached container, when its metadata has arrived.
    pub fn get(&self, id: &str) -> Option<Arc<Workload>> {
        self.inner.read().ok()?.get(id).cloned()
    }

    /// A container known only by what the kernel said (id, runtime, cgroup).
    pub fn placeholder(id: &str, runtime: &str, cgroup_id: u64) -> Arc<Workload> {
        Arc::new(Workload::Container(Container {
            id: id.to_string(),
            cgroup_id,
            runtime: runtime.to_string(),
            metadata_complete: false,
            ..Default::default()
        }))
    }

    pub fn workload(&self, id: &str, runtime: &str, cgroup_id: u64) -> Arc<Workload> {
        self.get(id)
            .unwrap_or_else(|| Self::placeholder(id, runtime, cgroup_id))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.inner
            .read()
            .map(|m| m.contains_key(id))
            .unwrap_or(false)
    }

    /// Records the cgroup id of a cached container (Docker does not report it). Does
    /// nothing if the container has left the cache meanwhile.
    pub fn set_cgroup_id(&self, id: &str, cgroup_id: u64) {
        if let Ok(mut map) = self.inner.write() {
            if let Some(w) = map.get_mut(id) {
                if let Workload::Container(c) = &**w {
                    if c.cgroup_id != cgroup_id {
                        let mut c = c.clone();
                        c.cgroup_id = cgroup_id;
                        *w = Arc::new(Workload::Container(c));
                    }
                }
            }
        }
    }

    pub fn insert(&self, mut c: Container) {
        if let Some(k) = c.k8s.as_mut() {
            if k.node.is_empty() {
                k.node = self.node.read().map(|n| n.clone()).unwrap_or_default();
            }
        }
        if let Ok(mut map) = self.inner.write() {
            map.insert(c.id.clone(), Arc::new(Workload::Container(c)));
        }
    }

    /// Names the Kubernetes node pods found from now on run on.
    pub fn set_node(&self, node: &str) {
        if let Ok(mut n) = self.node.write() {
            *n = node.to_string();
        }
    }

    pub fn add_containerd_namespace(&self, ns: &str) {
        let known = self
            .containerd_namespaces
            .read()
            .map(|s| s.contains(ns))
            .unwrap_or(true);
        if !known {
            if let Ok(mut set) = self.containerd_namespaces.write() {
                set.insert(ns.to_string());
            }
        }
    }

    /// A containerd namespace seen, or one of the usual ones (`k8s.io`, `default`),
    /// which are known before containerd answers.
    pub fn is_containerd_namespace(&self, ns: &str) -> bool {
        matches!(ns, "k8s.io" | "default")
            || self
                .containerd_namespaces
                .read()
                .map(|s| s.contains(ns))
                .unwrap_or(false)
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.inner.write() {
            map.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every known container.
    pub fn list(&self) -> Vec<Container> {
        let Ok(map) = self.inner.read() else {
            return Vec::new();
        };
        let mut v: Vec<Container> = map
            .values()
            .filter_map(|w| w.container().cloned())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// Turns a Docker inspect answer into our container identity.
pub fn container_from_inspect(r: &bollard::models::ContainerInspectResponse) -> Option<Container> {
    let id = r.id.clone()?;
    let cfg = r.config.as_ref();
    let image = cfg.and_then(|c| c.image.clone()).unwrap_or_default();
    let (image_repository, image_tag) = split_image(&image);
    let labels: BTreeMap<String, String> = cfg
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let host = r.host_config.as_ref();
    Some(Container {
        k8s: KubernetesIdentity::from_labels(&labels),
        id,
        cgroup_id: 0,
        runtime: "docker".into(),
        name: r
            .name
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        image,
        image_repository,
        image_tag,
        image_digest: r.image.clone().unwrap_or_default(),
        labels,
        privileged: host.and_then(|h| h.privileged).unwrap_or(false),
        cap_add: host.and_then(|h| h.cap_add.clone()).unwrap_or_default(),
        network_mode: host
            .and_then(|h| h.network_mode.clone())
            .unwrap_or_default(),
        metadata_complete: true,
    })
}

/// Reads a Docker container's identity from the engine's state directory
/// (`<root>/containers/<id>/config.v2.json` and `hostconfig.json`). Written before the
/// container starts, so it answers at once even when the API is slow or restarting.
pub fn read_docker_state(root: &std::path::Path, id: &str) -> Option<Container> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None; // never build paths from anything but a container id
    }
    let dir = root.join("containers").join(id);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.v2.json")).ok()?).ok()?;
    let host: serde_json::Value = std::fs::read(dir.join("hostconfig.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let image = s(&cfg["Config"]["Image"]);
    let (image_repository, image_tag) = split_image(&image);
    let labels: BTreeMap<String, String> = cfg["Config"]["Labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
        .unwrap_or_default();
    Some(Container {
        k8s: KubernetesIdentity::from_labels(&labels),
        id: id.to_string(),
        cgroup_id: 0,
        runtime: "docker".into(),
        name: s(&cfg["Name"]).trim_start_matches('/').to_string(),
        image,
        image_repository,
        image_tag,
        image_digest: s(&cfg["Image"]),
        labels,
        privileged: host["Privileged"].as_bool().unwrap_or(false),
        cap_add: host["CapAdd"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default(),
        network_mode: s(&host["NetworkMode"]),
        metadata_complete: true,
    })
}

/// Keeps the cache in step with Docker: lists what exists, then follows the events
/// stream; reconnects (and re-lists) when dockerd goes away and comes back.
pub struct DockerWatcher {
    cache: ContainerCache,
    /// How long a destroyed container's metadata is kept for late events.
    forget_after: Duration,
    /// Where starts, stops and deaths go, if anyone listens.
    lifecycle: Option<std::sync::mpsc::Sender<ContainerLifecycle>>,
}

impl DockerWatcher {
    pub fn new(cache: ContainerCache, forget_after: Duration) -> Self {
        Self {
            cache,
            forget_after,
            lifecycle: None,
        }
    }

    /// Also reports containers starting, stopping and dying on `tx`.
    pub fn with_lifecycle(mut self, tx: std::sync::mpsc::Sender<ContainerLifecycle>) -> Self {
        self.lifecycle = Some(tx);
        self
    }

    /// Inspects one container and caches it. Used on `create`/`start` events and when an
    /// event names a container the cache does not know yet.
    pub async fn refresh(docker: &Docker, cache: &ContainerCache, id: &str) -> bool {
        match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => match container_from_inspect(&r) {
                Some(c) => {
                    cache.insert(c);
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    async fn list_all(
        docker: &Docker,
        cache: &ContainerCache,
    ) -> Result<usize, bollard::errors::Error> {
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                ..Default::default()
            }))
            .await?;
        let mut n = 0;
        for c in list {
            if let Some(id) = c.id {
                if Self::refresh(docker, cache, &id).await {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Runs until the task is dropped. `ready` fires after the first listing.
    pub async fn run(self, ready: Option<tokio::sync::oneshot::Sender<Result<usize, String>>>) {
        let mut ready = ready;
        let mut backoff = Duration::from_millis(200);
        loop {
            let docker = match Docker::connect_with_local_defaults() {
                Ok(d) => d,
                Err(e) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(e.to_string()));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            // Subscribe before listing so nothing created in between is missed.
            let mut filters = HashMap::new();
            filters.insert("type".to_string(), vec!["container".to_string()]);
            let mut events = docker.events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }));
            match Self::list_all(&docker, &self.cache).await {
                Ok(n) => {
                    tracing::info!(containers = n, "docker: listed existing containers");
                    backoff = Duration::from_millis(200);
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Ok(n));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "docker: cannot list containers; retrying");
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(Err(e.to_string()));
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            while let Some(ev) = events.next().await {
                let Ok(ev) = ev else {
                    break;
                };
                let action = ev.action.as_deref().unwrap_or("");
                let Some(id) = ev.actor.as_ref().and_then(|a| a.id.clone()) else {
                    continue;
                };
                // A start is inspected first, so its lifecycle record carries the
                // labels central groups workloads by.
                let refreshed = matches!(action, "create" | "start" | "rename" | "update");
                if refreshed {
                    Self::refresh(&docker, &self.cache, &id).await;
                }
                if let Some(tx) = &self.lifecycle {
                    if let Some(mut change) = lifecycle_of(&ev, action, &id) {
                        if let Some(Workload::Container(c)) = self.cache.get(&id).as_deref() {
                            change.labels = c.labels.clone();
                        }
                        let _ = tx.send(change);
                    }
                }
                match action {
                    _ if refreshed => {}
                    // Late events from a destroyed container must still name it, so
                    // its metadata goes only after a grace period.
                    "destroy" => {
                        let cache = self.cache.clone();
                        let after = self.forget_after;
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            cache.remove(&id);
                        });
                    }
                    _ => {}
                }
            }
            tracing::warn!("docker: events stream ended (dockerd restart?); reconnecting");
            tokio::time::sleep(backoff).await;
        }
    }
}

/// A start, stop or death from a Docker event (`die` carries `exitCode`).
fn lifecycle_of(
    ev: &bollard::models::EventMessage,
    action: &str,
    id: &str,
) -> Option<ContainerLifecycle> {
    let attributes = ev.actor.as_ref().and_then(|a| a.attributes.as_ref());
    let attribute = |k: &str| {
        attributes
            .and_then(|a| a.get(k))
            .cloned()
            .unwrap_or_default()
    };
    let action = match action {
        "start" => LifecycleAction::Start,
        "stop" => LifecycleAction::Stop,
        "die" => LifecycleAction::Die {
            exit_code: attribute("exitCode").parse().unwrap_or(-1),
        },
        _ => return None,
    };
    let ts_ns = ev
        .time_nano
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or_else(rampart_event::wall_ns);
    Some(ContainerLifecycle {
        ts_ns,
        action,
        container_id: id.to_string(),
        name: attribute("name"),
        image: attribute("image"),
        // Filled from the inspected container by the caller.
        labels: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_names() {
        let id = "a".repeat(64);
        assert_eq!(
            container_id_from_leaf(id.as_bytes()),
            Some((id.as_str(), "docker"))
        );
        let scope = format!("docker-{id}.scope");
        assert_eq!(
            container_id_from_leaf(scope.as_bytes()).map(|x| x.0),
            Some(id.as_str())
        );
        let cri = format!("cri-containerd-{id}.scope");
        assert_eq!(
            container_id_from_leaf(cri.as_bytes()).map(|x| x.1),
            Some("containerd")
        );
        assert_eq!(container_id_from_leaf(b"user.slice"), None);
        assert_eq!(container_id_from_leaf(b"/"), None);
        assert_eq!(container_id_from_leaf(&[0xff; 64]), None);
    }

    #[test]
    fn docker_state_files() {
        let root = std::env::temp_dir().join(format!("rampart-state-{}", std::process::id()));
        let id = "e".repeat(64);
        let dir = root.join("containers").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.v2.json"),
            r#"{"Name":"/web","Image":"sha256:abc","Config":{"Image":"nginx:1.25","Labels":{"io.kubernetes.pod.name":"p","io.kubernetes.pod.namespace":"ns"}}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("hostconfig.json"),
            r#"{"Privileged":true,"CapAdd":["NET_ADMIN"],"NetworkMode":"host"}"#,
        )
        .unwrap();
        let c = read_docker_state(&root, &id).unwrap();
        assert_eq!((c.name.as_str(), c.image_tag.as_str()), ("web", "1.25"));
        assert!(c.privileged && c.metadata_complete);
        assert_eq!(c.cap_add, vec!["NET_ADMIN"]);
        assert_eq!(c.k8s.unwrap().namespace, "ns");
        assert!(read_docker_state(&root, "../../etc").is_none());
        assert!(read_docker_state(&root, &"f".repeat(64)).is_none());
        std::fs::write(dir.join("config.v2.json"), b"{garbage").unwrap();
        assert!(read_docker_state(&root, &id).is_none());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn image_split() {
        assert_eq!(split_image("debian:12"), ("debian".into(), "12".into()));
        assert_eq!(
            split_image("localhost:5000/app"),
            ("localhost:5000/app".into(), "".into())
        );
        assert_eq!(
            split_image("r:5000/app:v1@sha256:ab"),
            ("r:5000/app".into(), "v1".into())
        );
    }
}
