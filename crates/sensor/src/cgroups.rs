//! Cgroup leaf names by cgroup id, for events that came without them.
//!
//! The kernel sends a cgroup pair's leaf names once, in the first event of the pair
//! that reaches the ring, and empty names after that (`cgroup_named` in
//! `bpf/rampart.bpf.c`). [`CgroupNames`] keeps what each pair's names said: the
//! container, or none. A pair it does not know (the table was cleared, or the record
//! that carried the names did not decode) is named by opening the cgroup from its id: on
//! 64-bit kernels a cgroup's id is its kernfs node id, which a kernfs file handle
//! carries (as systemd does it). That works while the cgroup exists.
//!
//! Most runtimes name a container's cgroup so its leaf says so (`docker-<id>.scope`,
//! `cri-containerd-<id>.scope`, `crio-<id>.scope`, a bare 64-hex id under
//! `/kubepods/<qos>/pod<uid>/` or `/docker/`). containerd placing a container itself
//! (`ctr run`, nerdctl, k3s without the systemd driver) uses `/<namespace>/<id>`
//! with any id: such a leaf says nothing alone, so a pair whose leaf names no
//! container is looked up once by handle and its whole path read, and
//! `/<containerd namespace>/<leaf>` is a container. If the cgroup is already gone, a
//! leaf equal to the id of a container containerd reported still names it.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::containers::{container_id_from_leaf, ContainerCache};

/// A container id and its runtime, as parsed from a cgroup leaf name.
pub type ContainerRef = Option<(Arc<str>, &'static str)>;

/// Pairs kept before the table is cleared and refilled (each entry is a few dozen
/// bytes; a cleared pair costs one lookup by handle).
const MAX_PAIRS: usize = 16384;

/// What the leaf names of each (cgroup id, cpuset cgroup id) pair said.
#[derive(Default)]
pub struct CgroupNames {
    pairs: HashMap<(u64, u64), ContainerRef>,
    resolver: Option<Resolver>,
    /// Pairs named by handle because their names were not known.
    pub looked_up: u64,
    /// Pairs whose leaf named no container, resolved by their whole path.
    pub paths_read: u64,
    /// Where containerd namespaces and containers are known, when it is followed.
    containers: Option<ContainerCache>,
}

impl CgroupNames {
    /// Also recognises containerd's `/<namespace>/<id>` cgroups (see the module doc).
    pub fn with_containers(containers: ContainerCache) -> Self {
        Self {
            containers: Some(containers),
            ..Default::default()
        }
    }

    /// The container of an event with its leaf names (or with both empty: the kernel
    /// sent them before, or the cgroups are roots, whose names are empty).
    pub fn container(
        &mut self,
        ids: (u64, u64),
        v2_leaf: &[u8],
        cpuset_leaf: &[u8],
    ) -> ContainerRef {
        if v2_leaf.is_empty() && cpuset_leaf.is_empty() {
            if let Some(known) = self.pairs.get(&ids) {
                return known.clone();
            }
            self.looked_up += 1;
            let resolver = self.resolver.get_or_insert_with(Resolver::from_mounts);
            let v2 = resolver.v2.as_ref().and_then(|m| m.path(ids.0));
            let cpuset = resolver.cpuset.as_ref().and_then(|m| m.path(ids.1));
            let leaf = |p: &Option<String>| {
                p.as_deref()
                    .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
                    .unwrap_or_default()
            };
            let found = parse(leaf(&v2).as_bytes())
                .or_else(|| parse(leaf(&cpuset).as_bytes()))
                .or_else(|| self.containerd_path(v2.as_deref()))
                .or_else(|| self.containerd_path(cpuset.as_deref()));
            return self.remember(ids, found);
        }
        let found = parse(v2_leaf)
            .or_else(|| parse(cpuset_leaf))
            .or_else(|| self.by_whole_path(ids, v2_leaf, cpuset_leaf));
        self.remember(ids, found)
    }

    /// A leaf that names no container, when containerd is followed: its whole path,
    /// else the ids containerd reported.
    fn by_whole_path(
        &mut self,
        ids: (u64, u64),
        v2_leaf: &[u8],
        cpuset_leaf: &[u8],
    ) -> ContainerRef {
        self.containers.as_ref()?;
        self.paths_read += 1;
        let resolver = self.resolver.get_or_insert_with(Resolver::from_mounts);
        let v2 = (!v2_leaf.is_empty())
            .then(|| resolver.v2.as_ref().and_then(|m| m.path(ids.0)))
            .flatten();
        let cpuset = (!cpuset_leaf.is_empty())
            .then(|| resolver.cpuset.as_ref().and_then(|m| m.path(ids.1)))
            .flatten();
        self.containerd_path(v2.as_deref())
            .or_else(|| self.containerd_path(cpuset.as_deref()))
            .or_else(|| self.known_containerd_id(v2_leaf))
            .or_else(|| self.known_containerd_id(cpuset_leaf))
    }

    fn containerd_path(&self, path: Option<&str>) -> ContainerRef {
        let containers = self.containers.as_ref()?;
        let (ns, id) = containerd_cgroup(path?)?;
        containers
            .is_containerd_namespace(ns)
            .then(|| (Arc::from(id), "containerd"))
    }

    /// A leaf that is the id of a container containerd reported (its cgroup may be
    /// gone before its first event was decoded).
    fn known_containerd_id(&self, leaf: &[u8]) -> ContainerRef {
        let id = std::str::from_utf8(leaf).ok().filter(|l| !l.is_empty())?;
        let w = self.containers.as_ref()?.get(id)?;
        (w.container()?.runtime == "containerd").then(|| (Arc::from(id), "containerd"))
    }

    fn remember(&mut self, ids: (u64, u64), found: ContainerRef) -> ContainerRef {
        if self.pairs.len() >= MAX_PAIRS && !self.pairs.contains_key(&ids) {
            self.pairs.clear();
        }
        self.pairs.insert(ids, found.clone());
        found
    }
}

/// `<namespace>/<id>` (a cgroup path below the hierarchy's root, no leading slash):
/// where containerd puts a container when no cgroup parent is given.
pub fn containerd_cgroup(path: &str) -> Option<(&str, &str)> {
    let (ns, id) = path.trim_start_matches('/').split_once('/')?;
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 76
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    (valid(ns) && valid(id) && !ns.ends_with(".slice")).then_some((ns, id))
}

fn parse(leaf: &[u8]) -> ContainerRef {
    container_id_from_leaf(leaf).map(|(id, runtime)| (Arc::from(id), runtime))
}

/// The cgroup2 mount and the v1 hierarchy holding the cpuset controller.
struct Resolver {
    v2: Option<Hierarchy>,
    cpuset: Option<Hierarchy>,
}

impl Resolver {
    fn from_mounts() -> Self {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let (v2, cpuset) = hierarchy_mounts(&mounts);
        Self {
            v2: v2.and_then(|p| Hierarchy::open(&p)),
            cpuset: cpuset.and_then(|p| Hierarchy::open(&p)),
        }
    }
}

/// From /proc/self/mounts: where cgroup2 is mounted, and the v1 hierarchy with the
/// cpuset controller (absent on v2-only hosts).
fn hierarchy_mounts(mounts: &str) -> (Option<PathBuf>, Option<PathBuf>) {
    let (mut v2, mut cpuset) = (None, None);
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, dir, fstype, options, ..] = fields[..] else {
            continue;
        };
        // Mount points with spaces are octal-escaped; cgroup mounts have none.
        match fstype {
            "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(dir)),
            "cgroup" if cpuset.is_none() && options.split(',').any(|o| o == "cpuset") => {
                cpuset = Some(PathBuf::from(dir))
            }
            _ => {}
        }
    }
    (v2, cpuset)
}

/// A mounted cgroup hierarchy, opened to look cgroups up by id.
struct Hierarchy {
    dir: OwnedFd,
    mount: PathBuf,
}

/// `struct file_handle` with the 8-byte kernfs id (FILEID_KERNFS).
#[repr(C)]
struct KernfsHandle {
    handle_bytes: u32,
    handle_type: i32,
    id: u64,
}

const FILEID_KERNFS: i32 = 0xfe;

impl Hierarchy {
    fn open(mount: &Path) -> Option<Self> {
        // std opens with O_CLOEXEC; a directory opens read-only like a file.
        let dir = std::fs::File::open(mount).ok()?;
        Some(Self {
            dir: OwnedFd::from(dir),
            mount: mount.to_path_buf(),
        })
    }

    /// The path of cgroup `id` below the mount, without a leading slash ("" for the
    /// root), or None when it is gone.
    fn path(&self, id: u64) -> Option<String> {
        let mut handle = KernfsHandle {
            handle_bytes: 8,
            handle_type: FILEID_KERNFS,
            id,
        };
        // SAFETY: `handle` is a file_handle header followed by its 8 bytes, valid for
        // the call; the result is checked.
        let fd = unsafe {
            libc::open_by_handle_at(
                self.dir.as_raw_fd(),
                (&mut handle as *mut KernfsHandle).cast(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a descriptor just opened and owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let below = path.strip_prefix(&self.mount).ok()?;
        Some(below.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_and_the_cpuset_hierarchy() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
                      cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
                      garbage\n";
        let (v2, cpuset) = hierarchy_mounts(mounts);
        assert_eq!(v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(cpuset.as_deref(), Some(Path::new("/sys/fs/cgroup/cpuset")));
        let (v2, cpuset) = hierarchy_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n");
        assert_eq!(v2.as_deref(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(cpuset, None, "a v2-only host has no cpuset hierarchy");
    }

    #[test]
    fn containerd_cgroup_paths() {
        assert_eq!(containerd_cgroup("k8s.io/web-1"), Some(("k8s.io", "web-1")));
        assert_eq!(containerd_cgroup("/default/job"), Some(("default", "job")));
        assert_eq!(containerd_cgroup("system.slice/cron.service"), None);
        assert_eq!(containerd_cgroup("k8s.io"), None);
        assert_eq!(
            containerd_cgroup("k8s.io/a/b"),
            None,
            "deeper is not containerd's own layout"
        );
        let cache = ContainerCache::default();
        let names = CgroupNames::with_containers(cache.clone());
        assert_eq!(
            names
                .containerd_path(Some("k8s.io/web-1"))
                .map(|(i, r)| (i.to_string(), r)),
            Some(("web-1".into(), "containerd"))
        );
        assert_eq!(
            names.containerd_path(Some("tenant/x")),
            None,
            "not a namespace containerd reported"
        );
        cache.add_containerd_namespace("tenant");
        assert!(names.containerd_path(Some("tenant/x")).is_some());
    }

    #[test]
    fn names_sent_once_serve_the_pair_afterwards() {
        let id = "a".repeat(64);
        let mut names = CgroupNames::default();
        let leaf = format!("docker-{id}.scope");
        let first = names.container((5, 6), leaf.as_bytes(), b"");
        assert_eq!(
            first.as_ref().map(|(i, r)| (&**i, *r)),
            Some((&*id, "docker"))
        );
        let later = names.container((5, 6), b"", b"");
        assert_eq!(later, first);
        assert_eq!(names.looked_up, 0);
        // The cpuset leaf names the container on v1 hosts (v2 id of the root).
        let other = "b".repeat(64);
        let v1 = names.container((1, 9), b"", other.as_bytes());
        assert_eq!(v1.map(|(i, _)| i.to_string()), Some(other));
        assert_eq!(
            names
                .container((1, 9), b"", b"")
                .map(|(i, _)| i.to_string()),
            Some("b".repeat(64))
        );
        // A host cgroup's pair is remembered as no container.
        assert_eq!(names.container((7, 1), b"session-1.scope", b""), None);
        assert_eq!(names.container((7, 1), b"", b""), None);
        assert_eq!(names.looked_up, 0);
    }

    /// A pair the table does not know is looked up by handle: a real cgroup made in
    /// the cpuset hierarchy (and in cgroup2) with a container-like name.
    #[test]
    fn an_unknown_pair_is_named_from_the_cgroup_ids() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !rampart_testbed::require((!root).then(|| "making cgroups needs root".to_string())) {
            return;
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let (v2, cpuset) = hierarchy_mounts(&mounts);
        // Ids are per hierarchy: the test's cgroup's id goes in its hierarchy's slot.
        let (base, in_cpuset) = match (cpuset, v2) {
            (Some(c), _) => (c, true),
            (None, Some(v)) => (v, false),
            (None, None) => {
                rampart_testbed::skip_or_fail("no cgroup hierarchy is mounted");
                return;
            }
        };
        let id = format!("{:064x}", u64::from(std::process::id()));
        let dir = base.join(&id);
        std::fs::create_dir(&dir).expect("make a cgroup");
        let cgid = std::fs::metadata(&dir).expect("stat the cgroup").ino();
        let mut names = CgroupNames::default();
        let pair = if in_cpuset { (0, cgid) } else { (cgid, 0) };
        let found = names.container(pair, b"", b"");
        let _ = std::fs::remove_dir(&dir);
        assert_eq!(found.map(|(i, r)| (i.to_string(), r)), Some((id, "docker")));
        assert_eq!(names.looked_up, 1);
        // A cgroup that is gone is no container (and no panic).
        assert_eq!(
            CgroupNames::default().container(pair, b"", b""),
            None,
            "the cgroup was removed"
        );
    }
}
