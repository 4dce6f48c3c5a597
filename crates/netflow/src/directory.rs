//! Who is who on this node: containers by cgroup id and by address, the node's own
//! addresses, and per container the DNS names it resolved (IP → name, from the answers
//! the kernel read), so a peer is named as the container knew it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::flow::Peer;
use crate::NetflowError;

/// Most names remembered per container (oldest dropped first).
const DNS_CACHE_PER_CONTAINER: usize = 4096;

/// A container and what names it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub cgroup_id: u64,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

impl ContainerInfo {
    /// The workload the container belongs to, the unit of the graph and of
    /// baselines: `k8s:<namespace>/<workload>` (the pod name less its generated
    /// suffixes), `compose:<project>/<service>`, else `image:<repository>`, else
    /// `container:<name>`.
    pub fn workload(&self) -> String {
        let l = &self.labels;
        if let (Some(ns), Some(pod)) = (
            l.get("io.kubernetes.pod.namespace"),
            l.get("io.kubernetes.pod.name"),
        ) {
            return format!("k8s:{ns}/{}", k8s_workload_name(pod));
        }
        if let Some(service) = l.get("com.docker.compose.service") {
            let project = l
                .get("com.docker.compose.project")
                .map(String::as_str)
                .unwrap_or("default");
            return format!("compose:{project}/{service}");
        }
        if let Some(w) = l.get("rampart.workload") {
            return format!("label:{w}");
        }
        if !self.image.is_empty() && !self.image.starts_with("sha256:") {
            let repo = image_repository(&self.image);
            return format!("image:{repo}");
        }
        format!("container:{}", self.name)
    }

    /// Kubernetes labels for a NetworkPolicy selector: the pod's `app` label when the
    /// runtime passed it on, else `rampart.io/workload`.
    pub fn k8s_namespace(&self) -> Option<&str> {
        self.labels
            .get("io.kubernetes.pod.namespace")
            .map(String::as_str)
    }
}

/// `web-7d9f8c6b5-x2x7q` → `web` (Deployment), `db-0` → `db` (StatefulSet).
fn k8s_workload_name(pod: &str) -> &str {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [suffix, hash, base] if suffix.len() == 5 && (9..=10).contains(&hash.len()) => base,
        [ord, rest @ ..] if ord.chars().all(|c| c.is_ascii_digit()) => {
            let n = pod.len() - ord.len() - 1;
            let _ = rest;
            &pod[..n]
        }
        _ => pod,
    }
}

/// `registry:5000/team/app:1.2@sha256:…` → `registry:5000/team/app`.
pub fn image_repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// The node's view of names.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    by_cgroup: HashMap<u64, Arc<ContainerInfo>>,
    by_ip: HashMap<IpAddr, Arc<ContainerInfo>>,
    host_ips: HashSet<IpAddr>,
    /// Per cgroup: address → (name, when learned).
    dns: HashMap<u64, HashMap<IpAddr, (Arc<str>, u64)>>,
    /// Bumped whenever a name changes (a container, a host address, a DNS answer),
    /// so the flow table names its peers again only then.
    version: u64,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// What [`Self::version`] says: bumped on every change of a name.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Adds or replaces a container.
    pub fn insert(&mut self, info: ContainerInfo) {
        if self
            .by_cgroup
            .get(&info.cgroup_id)
            .is_some_and(|c| **c == info)
        {
            return;
        }
        self.version += 1;
        let info = Arc::new(info);
        if let Some(old) = self.by_cgroup.insert(info.cgroup_id, info.clone()) {
            for ip in &old.ips {
                self.by_ip.remove(ip);
            }
        }
        for ip in &info.ips {
            self.by_ip.insert(*ip, info.clone());
        }
    }

    /// Forgets a container (its flows keep the names they got).
    pub fn remove(&mut self, cgroup_id: u64) {
        self.version += 1;
        if let Some(old) = self.by_cgroup.remove(&cgroup_id) {
            for ip in &old.ips {
                if self.by_ip.get(ip).is_some_and(|c| c.cgroup_id == cgroup_id) {
                    self.by_ip.remove(ip);
                }
            }
        }
        self.dns.remove(&cgroup_id);
    }

    pub fn add_host_ip(&mut self, ip: IpAddr) {
        if self.host_ips.insert(ip) {
            self.version += 1;
        }
    }

    /// Reads the node's own addresses (every interface's).
    pub fn load_host_ips(&mut self) {
        for ip in host_addresses() {
            self.add_host_ip(ip);
        }
    }

    pub fn container(&self, cgroup_id: u64) -> Option<&Arc<ContainerInfo>> {
        self.by_cgroup.get(&cgroup_id)
    }

    pub fn container_by_ip(&self, ip: &IpAddr) -> Option<&Arc<ContainerInfo>> {
        self.by_ip.get(ip)
    }

    pub fn containers(&self) -> impl Iterator<Item = &Arc<ContainerInfo>> {
        self.by_cgroup.values()
    }

    /// Remembers that the container `cgroup_id` resolved `name` to `ip`.
    pub fn learn_dns(&mut self, cgroup_id: u64, name: &str, ip: IpAddr, now_ns: u64) {
        let cache = self.dns.entry(cgroup_id).or_default();
        if cache.len() >= DNS_CACHE_PER_CONTAINER && !cache.contains_key(&ip) {
            if let Some(oldest) = cache.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                cache.remove(&oldest);
            }
        }
        let name = name.trim_end_matches('.');
        if cache.get(&ip).is_none_or(|(known, _)| &**known != name) {
            self.version += 1;
        }
        cache.insert(ip, (Arc::from(name), now_ns));
    }

    /// The name the container resolved `ip` from, if any.
    pub fn dns_name(&self, cgroup_id: u64, ip: &IpAddr) -> Option<&str> {
        self.dns
            .get(&cgroup_id)
            .and_then(|c| c.get(ip))
            .map(|(n, _)| &**n)
    }

    /// Every address a container resolved `name` to.
    pub fn resolved_ips(&self, cgroup_id: u64, name: &str) -> Vec<IpAddr> {
        self.dns
            .get(&cgroup_id)
            .map(|c| {
                c.iter()
                    .filter(|(_, (n, _))| &**n == name)
                    .map(|(ip, _)| *ip)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names the far end of a flow of container `cgroup_id`.
    pub fn peer(&self, cgroup_id: u64, ip: &IpAddr) -> Peer {
        if ip.is_loopback() {
            return Peer::Loopback;
        }
        if let Some(c) = self.by_ip.get(ip) {
            return Peer::Container {
                id: c.id.clone(),
                name: c.name.clone(),
                image: c.image.clone(),
                workload: c.workload(),
            };
        }
        if self.host_ips.contains(ip) {
            return Peer::Host;
        }
        Peer::External {
            dns_name: self.dns_name(cgroup_id, ip).map(str::to_string),
        }
    }

    /// Lists the running Docker containers with their addresses and cgroup ids.
    pub async fn load_docker(&mut self) -> Result<usize, NetflowError> {
        use bollard::query_parameters::ListContainersOptions;
        let docker = bollard::Docker::connect_with_local_defaults()
            .map_err(|e| NetflowError::Docker(e.to_string()))?;
        let list = docker
            .list_containers(Some(ListContainersOptions {
                all: false,
                ..Default::default()
            }))
            .await
            .map_err(|e| NetflowError::Docker(e.to_string()))?;
        let mut n = 0;
        for c in list {
            let Some(id) = c.id else { continue };
            let Some(cgroup_id) = docker_cgroup_dir(&id).and_then(|d| cgroup_id(&d)) else {
                continue;
            };
            let ips = c
                .network_settings
                .and_then(|s| s.networks)
                .map(|nets| {
                    let mut ips = Vec::new();
                    for ep in nets.values() {
                        for a in [&ep.ip_address, &ep.global_ipv6_address] {
                            if let Some(ip) = a.as_deref().and_then(|s| s.parse().ok()) {
                                ips.push(ip);
                            }
                        }
                    }
                    ips
                })
                .unwrap_or_default();
            self.insert(ContainerInfo {
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                labels: c.labels.unwrap_or_default().into_iter().collect(),
                id,
                cgroup_id,
                ips,
            });
            n += 1;
        }
        Ok(n)
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup` or, on hybrid hosts,
/// `/sys/fs/cgroup/unified`).
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// The cgroup v2 directories container runtimes put containers under, those that
/// exist: Docker's `docker/` (cgroupfs driver) and `system.slice/` (systemd driver),
/// and the kubelet's `kubepods.slice/` (systemd driver) and `kubepods/` (cgroupfs), so
/// a Kubernetes node's pods are seen without configuring `network.cgroup_dirs`.
pub fn docker_parent_dirs() -> Vec<PathBuf> {
    cgroup2_root().map_or_else(Vec::new, |root| container_parent_dirs(&root))
}

fn container_parent_dirs(root: &Path) -> Vec<PathBuf> {
    ["docker", "system.slice", "kubepods.slice", "kubepods"]
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
        .collect()
}

/// A Docker container's cgroup v2 directory.
pub fn docker_cgroup_dir(id: &str) -> Option<PathBuf> {
    let root = cgroup2_root()?;
    [
        root.join("docker").join(id),
        root.join("system.slice").join(format!("docker-{id}.scope")),
    ]
    .into_iter()
    .find(|d| d.is_dir())
}

/// A cgroup v2 directory's id (its inode number).
pub fn cgroup_id(dir: &Path) -> Option<u64> {
    std::fs::metadata(dir).ok().map(|m| m.ino())
}

/// Every address of every interface of this host.
pub fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we walk read-only and free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_and_kubelet_parents_are_found_where_they_exist() {
        let root = tempfile::tempdir().unwrap();
        for d in ["system.slice", "kubepods.slice", "user.slice"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let found = container_parent_dirs(root.path());
        assert_eq!(
            found,
            vec![
                root.path().join("system.slice"),
                root.path().join("kubepods.slice")
            ]
        );
    }

    use super::*;

    #[test]
    fn workloads_group_by_orchestrator_then_image() {
        let mut c = ContainerInfo {
            name: "web-1".into(),
            image: "nginx:1.27".into(),
            ..Default::default()
        };
        assert_eq!(c.workload(), "image:nginx");
        c.labels
            .insert("com.docker.compose.service".into(), "web".into());
        c.labels
            .insert("com.docker.compose.project".into(), "shop".into());
        assert_eq!(c.workload(), "compose:shop/web");
        c.labels
            .insert("io.kubernetes.pod.namespace".into(), "prod".into());
        c.labels.insert(
            "io.kubernetes.pod.name".into(),
            "web-7d9f8c6b5d-x2x7q".into(),
        );
        assert_eq!(c.workload(), "k8s:prod/web");
        c.labels
            .insert("io.kubernetes.pod.name".into(), "db-0".into());
        assert_eq!(c.workload(), "k8s:prod/db");
    }

    #[test]
    fn image_repository_drops_tag_and_digest_not_port() {
        assert_eq!(image_repository("reg:5000/a/b:1@sha256:ab"), "reg:5000/a/b");
        assert_eq!(image_repository("reg:5000/a/b"), "reg:5000/a/b");
        assert_eq!(image_repository("busybox:latest"), "busybox");
    }
}
