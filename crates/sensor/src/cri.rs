//! What CRI runtimes leave on the node besides their API: the service account of a
//! pod, read from the claims of the token the kubelet mounts into its containers,
//! and CRI-O's container state files.
//!
//! **Service account.** Neither CRI labels nor containerd's annotations name it. The
//! kubelet mounts a projected volume at /var/run/secrets/kubernetes.io/serviceaccount
//! whose `token` is a JWT with `sub: system:serviceaccount:<namespace>:<name>`; the
//! container's OCI spec names the host directory behind that mount. Only the claims
//! are decoded (the signature is not checked: the kubelet wrote the file, and the name
//! is used for display and rules, not for authentication); the token is never kept.
//! Inside a pod with `hostPID` the host's paths are reached through /proc/1/root.
//!
//! **CRI-O.** Its containers' cgroup leaves are `crio-<id>.scope`; their metadata is in
//! `<storage root>/overlay-containers/<id>/userdata/config.json`, the OCI spec CRI-O
//! wrote with its own annotations (`io.kubernetes.cri-o.Labels`, `ImageName`,
//! `SandboxID`, …); the pod's labels are in its sandbox's file. Read from fixtures in
//! the tests: Debian does not package CRI-O, so this was never run against one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use rampart_event::{Container, KubernetesIdentity};

use crate::containers::split_image;

/// Where the kubelet mounts a pod's service account token, as the container sees it.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where CRI-O keeps its containers (`containers-storage`'s default root).
pub const CRIO_STORAGE_ROOT: &str = "/var/lib/containers/storage";

/// A mount of an OCI spec (the fields read here).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct OciMount {
    #[serde(default)]
    pub destination: String,
    #[serde(default)]
    pub source: String,
}

/// Tokens are a few KiB; anything larger at that path is not one.
const TOKEN_MAX: u64 = 64 * 1024;

/// The service account named by a JWT's claims: `sub` of the form
/// `system:serviceaccount:<ns>:<name>`, else the bound token's
/// `kubernetes.io.serviceaccount.name`, else the legacy secret token's
/// `kubernetes.io/serviceaccount/service-account.name`.
pub fn service_account_from_token(token: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(token).ok()?.trim();
    let mut parts = text.split('.');
    let (_header, claims) = (parts.next()?, parts.next()?);
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&claims).ok()?;
    let from_sub = claims["sub"]
        .as_str()
        .and_then(|s| s.strip_prefix("system:serviceaccount:"))
        .and_then(|s| s.split_once(':'))
        .map(|(_, name)| name.to_string());
    from_sub
        .or_else(|| {
            claims["kubernetes.io"]["serviceaccount"]["name"]
                .as_str()
                .map(str::to_string)
        })
        .or_else(|| {
            claims["kubernetes.io/serviceaccount/service-account.name"]
                .as_str()
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
}

/// The service account of a container from its spec's mounts: the token under the
/// host directory mounted at [`SERVICE_ACCOUNT_MOUNT`] (or at `/run/secrets/…`),
/// looked for at each of `roots` in turn (`/` then `/proc/1/root` in a pod).
pub fn service_account_from_mounts(mounts: &[OciMount], roots: &[&Path]) -> Option<String> {
    let m = mounts.iter().find(|m| {
        let d = m.destination.trim_end_matches('/');
        d == SERVICE_ACCOUNT_MOUNT || d == "/run/secrets/kubernetes.io/serviceaccount"
    })?;
    let source = Path::new(&m.source);
    let relative = source.strip_prefix("/").unwrap_or(source);
    roots.iter().find_map(|root| {
        let path = root.join(relative).join("token");
        let f = std::fs::File::open(&path).ok()?;
        let mut buf = Vec::new();
        f.take(TOKEN_MAX).read_to_end(&mut buf).ok()?;
        service_account_from_token(&buf)
    })
}

/// The roots under which the node's paths are looked for: the sensor's own `/`, then
/// the host's through pid 1 when the sensor runs in a pod (`hostPID`).
pub fn host_roots() -> [&'static Path; 2] {
    [Path::new("/"), Path::new("/proc/1/root")]
}

/// Why a CRI-O state file was not read.
#[derive(Debug, thiserror::Error)]
pub enum CrioError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}, column {column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

#[derive(Default, serde::Deserialize)]
struct CrioSpec {
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    mounts: Vec<OciMount>,
}

/// CRI-O's containers as its storage root holds them.
#[derive(Debug, Clone)]
pub struct CrioStateDir {
    pub storage_root: PathBuf,
    /// Where a container's service account token is looked for (see [`host_roots`]).
    pub roots: Vec<PathBuf>,
}

impl CrioStateDir {
    pub fn new(storage_root: &Path) -> Self {
        Self {
            storage_root: storage_root.to_path_buf(),
            roots: host_roots().iter().map(|p| p.to_path_buf()).collect(),
        }
    }

    fn config_path(&self, id: &str) -> PathBuf {
        self.storage_root
            .join("overlay-containers")
            .join(id)
            .join("userdata/config.json")
    }

    fn spec(&self, id: &str) -> Result<Option<CrioSpec>, CrioError> {
        // Ids come from cgroup names: only hex reaches the path.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let path = self.config_path(id);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CrioError::Io { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| CrioError::Json {
                path,
                line: e.line(),
                column: e.column(),
                message: e.to_string(),
            })
    }

    /// The container `id` (`None`: CRI-O has no such container, or it is a sandbox).
    pub fn container(&self, id: &str) -> Result<Option<Container>, CrioError> {
        let Some(spec) = self.spec(id)? else {
            return Ok(None);
        };
        let a = &spec.annotations;
        if a.get("io.kubernetes.cri-o.ContainerType")
            .is_some_and(|t| t == "sandbox")
        {
            return Ok(None);
        }
        // The CRI labels the kubelet set, as one JSON object in an annotation.
        let mut labels: BTreeMap<String, String> = a
            .get("io.kubernetes.cri-o.Labels")
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        for key in [
            "io.kubernetes.pod.name",
            "io.kubernetes.pod.namespace",
            "io.kubernetes.pod.uid",
            "io.kubernetes.container.name",
        ] {
            if let Some(v) = a.get(key) {
                labels.entry(key.to_string()).or_insert_with(|| v.clone());
            }
        }
        let pod_labels = match a.get("io.kubernetes.cri-o.SandboxID") {
            Some(sandbox) if sandbox != id => self
                .spec(sandbox)?
                .and_then(|s| {
                    s.annotations
                        .get("io.kubernetes.cri-o.Labels")
                        .and_then(|l| serde_json::from_str::<BTreeMap<String, String>>(l).ok())
                })
                .unwrap_or_default(),
            _ => BTreeMap::new(),
        };
        let mut k8s = KubernetesIdentity::from_labels(&labels);
        if let Some(k) = k8s.as_mut() {
            k.fill_workload(&pod_labels);
            k.labels = pod_labels
                .into_iter()
                .filter(|(key, _)| !key.starts_with("io.kubernetes."))
                .collect();
            let roots: Vec<&Path> = self.roots.iter().map(PathBuf::as_path).collect();
            k.service_account =
                service_account_from_mounts(&spec.mounts, &roots).unwrap_or_default();
        }
        let image = a
            .get("io.kubernetes.cri-o.ImageName")
            .cloned()
            .unwrap_or_default();
        let (image_repository, image_tag) = split_image(&image);
        let name = k8s
            .as_ref()
            .map(|k| k.container.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_string());
        Ok(Some(Container {
            k8s,
            id: id.to_string(),
            cgroup_id: 0,
            runtime: "cri-o".into(),
            name,
            image,
            image_repository,
            image_tag,
            image_digest: a
                .get("io.kubernetes.cri-o.ImageRef")
                .cloned()
                .unwrap_or_default(),
            labels,
            privileged: a
                .get("io.kubernetes.cri-o.PrivilegedRuntime")
                .is_some_and(|p| p == "true"),
            cap_add: Vec::new(),
            network_mode: if a
                .get("io.kubernetes.cri-o.HostNetwork")
                .is_some_and(|h| h == "true")
            {
                "host".into()
            } else {
                String::new()
            },
            metadata_complete: true,
        }))
    }

    /// Every container CRI-O has (sandboxes left out), for the listing at start;
    /// files that do not read are skipped with a warning.
    pub fn list(&self) -> Vec<Container> {
        let Ok(entries) = std::fs::read_dir(self.storage_root.join("overlay-containers")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            match self.container(&id) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "CRI-O container state not read"),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &serde_json::Value) -> String {
        let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        format!(
            "{}.{}.{}",
            e(br#"{"alg":"RS256","kid":"k1"}"#),
            e(claims.to_string().as_bytes()),
            e(b"not-a-signature")
        )
    }

    #[test]
    fn service_account_from_the_token_claims() {
        let bound = serde_json::json!({
            "aud": ["https://kubernetes.default.svc"],
            "kubernetes.io": {"namespace": "shop", "serviceaccount": {"name": "cart-sa", "uid": "1"}},
            "sub": "system:serviceaccount:shop:cart-sa"
        });
        assert_eq!(
            service_account_from_token(jwt(&bound).as_bytes()).as_deref(),
            Some("cart-sa")
        );
        let nested_only = serde_json::json!({"kubernetes.io": {"serviceaccount": {"name": "x"}}});
        assert_eq!(
            service_account_from_token(jwt(&nested_only).as_bytes()).as_deref(),
            Some("x")
        );
        let legacy = serde_json::json!({
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/service-account.name": "old-sa"
        });
        assert_eq!(
            service_account_from_token(format!("{}\n", jwt(&legacy)).as_bytes()).as_deref(),
            Some("old-sa")
        );
        for bad in ["", "a.b.c", "onlyone", "a.!!!.c"] {
            assert_eq!(service_account_from_token(bad.as_bytes()), None, "{bad}");
        }
        let user = serde_json::json!({"sub": "alice"});
        assert_eq!(service_account_from_token(jwt(&user).as_bytes()), None);
    }

    #[test]
    fn service_account_from_the_mounted_volume() {
        let root = tempfile::tempdir().unwrap();
        let vol = "var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~projected/kube-api-access-x";
        std::fs::create_dir_all(root.path().join(vol)).unwrap();
        let claims = serde_json::json!({"sub": "system:serviceaccount:shop:cart-sa"});
        std::fs::write(root.path().join(vol).join("token"), jwt(&claims)).unwrap();
        let mounts = vec![
            OciMount {
                destination: "/etc/hosts".into(),
                source: "/var/lib/kubelet/pods/uid-1/etc-hosts".into(),
            },
            OciMount {
                destination: SERVICE_ACCOUNT_MOUNT.into(),
                source: format!("/{vol}"),
            },
        ];
        let missing = tempfile::tempdir().unwrap();
        assert_eq!(
            service_account_from_mounts(&mounts, &[missing.path(), root.path()]).as_deref(),
            Some("cart-sa")
        );
        assert_eq!(
            service_account_from_mounts(&mounts[..1], &[root.path()]),
            None
        );
    }

    /// A CRI-O storage root laid out as CRI-O writes it, with the annotations of
    /// its `pkg/annotations` (written from its documentation and source, not
    /// captured from a running CRI-O).
    fn crio_fixture(root: &Path, token_root: &Path) -> (String, String) {
        let sandbox = "a".repeat(64);
        let ctr = "b".repeat(64);
        let write = |id: &str, spec: serde_json::Value| {
            let dir = root.join("overlay-containers").join(id).join("userdata");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config.json"), spec.to_string()).unwrap();
        };
        let pod_labels = serde_json::json!({
            "app": "cart",
            "pod-template-hash": "5d8f7c9b4",
            "io.kubernetes.pod.name": "cart-5d8f7c9b4-q7x2z",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.uid": "uid-1"
        });
        write(
            &sandbox,
            serde_json::json!({
                "ociVersion": "1.0.2",
                "annotations": {
                    "io.kubernetes.cri-o.ContainerType": "sandbox",
                    "io.kubernetes.cri-o.Labels": pod_labels.to_string(),
                    "io.kubernetes.cri-o.SandboxID": sandbox,
                }
            }),
        );
        let ctr_labels = serde_json::json!({
            "io.kubernetes.container.name": "cart",
            "io.kubernetes.pod.name": "cart-5d8f7c9b4-q7x2z",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.uid": "uid-1"
        });
        let vol =
            token_root.join("kubelet/pods/uid-1/volumes/kubernetes.io~projected/kube-api-access-1");
        std::fs::create_dir_all(&vol).unwrap();
        let claims = serde_json::json!({"sub": "system:serviceaccount:shop:cart-runner"});
        std::fs::write(vol.join("token"), jwt(&claims)).unwrap();
        write(
            &ctr,
            serde_json::json!({
                "ociVersion": "1.0.2",
                "annotations": {
                    "io.kubernetes.cri-o.ContainerType": "container",
                    "io.kubernetes.cri-o.Labels": ctr_labels.to_string(),
                    "io.kubernetes.cri-o.ImageName": "registry.local/shop/cart:1.4",
                    "io.kubernetes.cri-o.ImageRef": "sha256:0123",
                    "io.kubernetes.cri-o.SandboxID": sandbox,
                    "io.kubernetes.cri-o.PrivilegedRuntime": "false",
                    "io.kubernetes.pod.name": "cart-5d8f7c9b4-q7x2z",
                    "io.kubernetes.pod.namespace": "shop"
                },
                "mounts": [
                    {"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": SERVICE_ACCOUNT_MOUNT, "type": "bind", "source": vol.to_string_lossy()}
                ]
            }),
        );
        (sandbox, ctr)
    }

    #[test]
    fn crio_state_files_name_the_pod() {
        let root = tempfile::tempdir().unwrap();
        let (sandbox, ctr) = crio_fixture(root.path(), root.path());
        let dir = CrioStateDir::new(root.path());
        let c = dir.container(&ctr).unwrap().unwrap();
        assert_eq!(c.runtime, "cri-o");
        assert_eq!(c.name, "cart");
        assert_eq!(
            (c.image_repository.as_str(), c.image_tag.as_str()),
            ("registry.local/shop/cart", "1.4")
        );
        assert_eq!(c.image_digest, "sha256:0123");
        let k = c.k8s.unwrap();
        assert_eq!(
            (k.namespace.as_str(), k.pod.as_str(), k.container.as_str()),
            ("shop", "cart-5d8f7c9b4-q7x2z", "cart")
        );
        assert_eq!(
            (k.workload_kind.as_str(), k.workload_name.as_str()),
            ("Deployment", "cart")
        );
        assert_eq!(k.service_account, "cart-runner");
        assert_eq!(k.labels.get("app").map(String::as_str), Some("cart"));
        assert!(!k.labels.contains_key("io.kubernetes.pod.name"));
        // The sandbox is not a container of its own; an unknown id is nothing.
        assert!(dir.container(&sandbox).unwrap().is_none());
        assert!(dir.container(&"c".repeat(64)).unwrap().is_none());
        assert!(dir.container("../../etc").unwrap().is_none());
        let listed = dir.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, ctr);
    }

    #[test]
    fn a_broken_crio_state_file_says_where() {
        let root = tempfile::tempdir().unwrap();
        let id = "d".repeat(64);
        let dir = root
            .path()
            .join("overlay-containers")
            .join(&id)
            .join("userdata");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{\n  \"annotations\": [1,\n").unwrap();
        let err = CrioStateDir::new(root.path())
            .container(&id)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json: line 2"), "{err}");
    }
}
