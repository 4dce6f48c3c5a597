//! The typed event model every Rampart part speaks: [`Event`] (what the sensor saw, with
//! its process and container), and the identities inside it; [`Alert`] with its
//! Falco-compatible [`Priority`]; and the one [`Severity`] scale and [`Finding`] the
//! scanners report.
//!
//! The JSON form is the serde form of these types; it is described by
//! `schema/event.schema.json` at the repository root and versioned by
//! [`SCHEMA_VERSION`]. A field is only ever added (optional) within one version; renaming
//! or removing one bumps the version.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod audit;
mod finding;
pub mod fleet;
pub mod json;

pub use audit::{audit_id, AuditRecord};
pub use finding::{Finding, ParseSeverityError, Severity};

/// Version of the JSON event schema. Emitted on every event as `schema`.
pub const SCHEMA_VERSION: u32 = 1;

/// Most argv entries kept per process; longer command lines set `argv_truncated`.
pub const MAX_ARGS: usize = 64;
/// Most ancestors carried on an event (parent first).
pub const MAX_ANCESTRY: usize = 8;

/// One thing the sensor saw happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// Schema version of this record, always [`SCHEMA_VERSION`] when produced.
    pub schema: u32,
    /// Wall-clock time of the event in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Host name of the node that saw the event.
    pub host: Arc<str>,
    /// Per-sensor sequence number; a jump shows lost events (also reported as `lost`).
    pub seq: u64,
    /// The process that did it. Absent only for sensor-internal events (`lost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Arc<Process>>,
    /// Where the process ran: a container or the host.
    pub container: Arc<Workload>,
    /// The syscall came through the 32-bit (ia32) entry: a 32-bit program, or
    /// `int 0x80` from 64-bit code, a way past tools that watch only the 64-bit table.
    /// Syscall events only; absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub compat_syscall: bool,
    /// What happened, tagged by `kind`.
    #[serde(flatten)]
    pub payload: Payload,
}

impl Event {
    /// The short, stable name of this event's kind (the JSON `kind` tag).
    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }
}

/// A process, as it is when the event happens, with its ancestry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    /// Unique across pid reuse on this host: `"<boot id prefix>:<pid>:<start ns>"`.
    pub exec_id: String,
    /// Exec id of the parent process, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_exec_id: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// Login (audit) uid; absent when the kernel reports it unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auid: Option<u32>,
    /// Executable path.
    pub exe: String,
    /// Command line, at most [`MAX_ARGS`] entries.
    pub argv: Vec<String>,
    /// True when argv (count or total length) was cut.
    #[serde(default, skip_serializing_if = "is_false")]
    pub argv_truncated: bool,
    pub cwd: String,
    /// Kernel task name (at most 15 bytes).
    pub comm: String,
    /// Process start, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// Controlling terminal device number (`tty_nr` as in /proc), 0 when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tty: u32,
    /// Parent first, at most [`MAX_ANCESTRY`] entries.
    // Shared with the process tree and the rest of the lineage: a new process costs
    // one small vector, not a copy of every ancestor's command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<Arc<Ancestor>>,
    /// The executable sits in a container's writable overlayfs layer: written after
    /// the container started, not shipped in its image. Read in the kernel at exec; for
    /// processes already running when the sensor started, from their mount table.
    /// False when unknown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub exe_upper_layer: bool,
    /// The variables of [`HOOK_ENVIRONMENT`] that the process's environment held at
    /// exec, as `NAME=value`, read by the sensor when it saw the exec (or the process
    /// at start). `None` when they were not read: the process was gone first, or the
    /// event did not come from a sensor. A child inherits its parent's until it execs.
    /// Left out of the JSON form when it holds none (most processes).
    #[serde(default, skip_serializing_if = "no_env")]
    pub env: Option<Vec<String>>,
}

/// Environment variables the sensor reads at exec (the rest of the environment is
/// left alone: reading only these keeps an exec's cost and an event's size small).
/// They make a program load code of the caller's choosing before its own: the dynamic
/// linker's, language runtimes' startup hooks and module paths, and shells' startup
/// files. A rule's `proc.env[NAME]` of another name reads /proc when the event is
/// evaluated instead.
pub const HOOK_ENVIRONMENT: &[&str] = &[
    "LD_PRELOAD",
    "LD_AUDIT",
    "LD_LIBRARY_PATH",
    "NODE_OPTIONS",
    "NODE_PATH",
    "RUBYOPT",
    "RUBYLIB",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONWARNINGS",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "BASH_ENV",
    "ENV",
    "PROMPT_COMMAND",
    "GCONV_PATH",
    "DOTNET_STARTUP_HOOKS",
    "CORECLR_PROFILER_PATH",
];

/// Longest value kept of one [`HOOK_ENVIRONMENT`] variable (a longer one is cut).
pub const MAX_HOOK_VALUE: usize = 4096;

/// One process above another in the process tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Ancestor {
    pub pid: u32,
    pub exec_id: String,
    pub exe: String,
    pub argv: Vec<String>,
    pub comm: String,
    /// As [`Process::exe_upper_layer`] for this ancestor: its executable was written
    /// in its container's writable layer (a dropped binary whose children are the
    /// system's own programs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exe_upper_layer: bool,
}

/// Where a process runs.
// Always shared behind an Arc, so the variants' size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Workload {
    /// A process of the host itself (not in any known container cgroup).
    Host {
        /// cgroup v2 id the kernel reported, for correlation.
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        cgroup_id: u64,
    },
    /// A process in a container.
    Container(Container),
}

impl Workload {
    pub fn container(&self) -> Option<&Container> {
        match self {
            Workload::Container(c) => Some(c),
            Workload::Host { .. } => None,
        }
    }
}

/// A container's identity and the metadata that matters for security.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct Container {
    /// Full container id (64 hex for Docker).
    pub id: String,
    /// cgroup v2 id of the container's cgroup, as read in the kernel.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub cgroup_id: u64,
    /// Runtime that owns it (`docker`, `containerd`, `cri-o`), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Image as the user named it, e.g. `debian:12`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Repository part of the image (`debian`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_repository: String,
    /// Tag part of the image (`12`), empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_tag: String,
    /// Image id or content digest (`sha256:…`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<KubernetesIdentity>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    /// False when the kernel named the container but the runtime had no metadata
    /// (e.g. it was already gone).
    #[serde(default)]
    pub metadata_complete: bool,
}

/// What happened to a container, from its runtime's event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LifecycleAction {
    Start,
    Stop,
    /// The container's main process ended.
    Die {
        exit_code: i64,
    },
}

/// A container started, stopped or died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContainerLifecycle {
    /// When the runtime reported it, ns since the Unix epoch.
    pub ts_ns: u64,
    #[serde(flatten)]
    pub action: LifecycleAction,
    pub container_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    /// The container's labels (compose project/service, `io.kubernetes.*`), as its
    /// runtime reported them when it started; central groups containers into
    /// workloads by them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Kubernetes identity taken from CRI labels (`io.kubernetes.*`) and, where the
/// runtime has it, the pod sandbox's labels (the pod's own labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct KubernetesIdentity {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod_uid: String,
    /// The pod's owner: `Deployment`, `StatefulSet`, `DaemonSet`, `Job`, or `Pod`
    /// for a pod nothing owns (as far as its labels tell).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload_name: String,
    /// The node the pod runs on (the sensor's node name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// The pod's service account, from the claims of the token the kubelet mounts
    /// at /var/run/secrets/kubernetes.io/serviceaccount (empty: none mounted, or
    /// not readable).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    /// The pod's own labels (`app`, `pod-template-hash`, …), without the runtime's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl KubernetesIdentity {
    /// Reads the CRI labels the kubelet sets; `None` when the pod name is missing.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Self> {
        let pod = labels.get("io.kubernetes.pod.name")?.clone();
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let mut k = Self {
            namespace: get("io.kubernetes.pod.namespace"),
            pod,
            container: get("io.kubernetes.container.name"),
            pod_uid: get("io.kubernetes.pod.uid"),
            ..Default::default()
        };
        k.fill_workload(labels);
        Some(k)
    }

    /// Sets the owning workload from the pod's labels, which the controllers set:
    /// `pod-template-hash` (a Deployment's ReplicaSet), `controller-revision-hash` with
    /// `statefulset.kubernetes.io/pod-name` (StatefulSet) or `pod-template-generation`
    /// (DaemonSet), `batch.kubernetes.io/job-name` or `job-name` (Job). A pod with none
    /// is its own workload (`Pod`).
    pub fn fill_workload(&mut self, pod_labels: &BTreeMap<String, String>) {
        let label = |k: &str| pod_labels.get(k).map(String::as_str);
        // A pod name with its generated suffix taken off: `web-7d4b9c8f5-x2x9k` less
        // `-x2x9k`, then less `-7d4b9c8f5` for a Deployment.
        let strip = |name: &str, suffix: &str| -> Option<String> {
            name.strip_suffix(suffix)?
                .strip_suffix('-')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let drop_last = |name: &str| name.rsplit_once('-').map(|(head, _)| head.to_string());
        let pod = self.pod.as_str();
        let (kind, name) = if let Some(job) =
            label("batch.kubernetes.io/job-name").or_else(|| label("job-name"))
        {
            ("Job", Some(job.to_string()))
        } else if let Some(hash) = label("pod-template-hash") {
            let rs = drop_last(pod).unwrap_or_default();
            ("Deployment", strip(&rs, hash).or(Some(rs)))
        } else if label("statefulset.kubernetes.io/pod-name").is_some() {
            ("StatefulSet", drop_last(pod))
        } else if label("controller-revision-hash").is_some()
            && label("pod-template-generation").is_some()
        {
            ("DaemonSet", drop_last(pod))
        } else {
            ("Pod", Some(pod.to_string()))
        };
        self.workload_kind = kind.to_string();
        self.workload_name = name.unwrap_or_else(|| pod.to_string());
    }
}

/// A socket address as seen in a network event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum SockAddr {
    Inet { ip: IpAddr, port: u16 },
    Inet6 { ip: IpAddr, port: u16 },
    Unix { path: String },
    Other { number: u16 },
}

impl SockAddr {
    pub fn port(&self) -> Option<u16> {
        match self {
            SockAddr::Inet { port, .. } | SockAddr::Inet6 { port, .. } => Some(*port),
            _ => None,
        }
    }
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            SockAddr::Inet { ip, .. } | SockAddr::Inet6 { ip, .. } => Some(*ip),
            _ => None,
        }
    }
}

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum L4Proto {
    Tcp,
    Udp,
    Unix,
    Other,
}

/// The ways a file was opened that matter for security.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
pub struct OpenAccess {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub truncate: bool,
}

impl OpenAccess {
    /// Decodes `open(2)` flags.
    pub fn from_flags(flags: u32) -> Self {
        let acc = flags & 0o3;
        Self {
            read: acc == 0 || acc == 2,
            write: acc == 1 || acc == 2,
            create: flags & 0o100 != 0,
            truncate: flags & 0o1000 != 0,
        }
    }
}

/// Where a loss was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LossSource {
    /// The kernel ring buffer was full.
    Kernel,
    /// The user-space queue between decode and output was full.
    Queue,
    /// The output (file, pipe) refused writes.
    Output,
    /// The flight recorder could not keep up (its queue was full) or its disk was.
    Recorder,
}

/// What happened. Serialized as `"kind": "<name>"` plus a `"data"` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Payload {
    /// A successful execve/execveat; `process` is the new image.
    Exec {
        filename: String,
        /// Interpreter named by a `#!` line, when the file is a script.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interpreter: Option<String>,
        /// Executed from a memfd (fileless).
        #[serde(default, skip_serializing_if = "is_false")]
        from_memfd: bool,
        /// Executed file has no link left (deleted after open).
        #[serde(default, skip_serializing_if = "is_false")]
        from_deleted: bool,
    },
    /// A new process (fork/clone without CLONE_THREAD).
    Fork {
        child_pid: u32,
        child_exec_id: String,
    },
    /// An execve or execveat that failed for a reason other than a missing file: a
    /// noexec mount or a missing execute bit (EACCES), a security module's refusal
    /// (EPERM), a file the kernel cannot run (ENOEXEC), one open for writing
    /// (ETXTBSY). The process is the caller, unchanged. (Successful execs are `exec`
    /// events; ENOENT and ENOTDIR, a PATH search's misses, are not reported.)
    ExecFailed {
        /// `execve` or `execveat`.
        call: String,
        /// The file, resolved against the cwd or the directory descriptor.
        filename: String,
        /// Its first arguments, at most four.
        argv: Vec<String>,
        /// There were more than four.
        #[serde(default, skip_serializing_if = "is_false")]
        argv_truncated: bool,
        /// A negative errno.
        ret: i64,
    },
    /// open_by_handle_at(2): a file opened by a handle instead of a path, anywhere on
    /// the filesystem of `mount_path`, past any chroot or mount namespace: the
    /// "shocker" container escape (it needs CAP_DAC_READ_SEARCH).
    FileOpenByHandle {
        /// The file opened, from the new descriptor (empty when the call failed).
        path: String,
        /// The mount descriptor's path: which filesystem the handle was resolved on.
        mount_path: String,
        flags: u64,
        /// The new descriptor, or a negative errno.
        ret: i64,
    },
    /// A process renamed itself: prctl(PR_SET_NAME) by its main thread, the name `ps`
    /// and `top` show (malware takes a kernel thread's or a daemon's). The process is
    /// as it was before; later events carry the new name.
    ProcessRename {
        /// The new name (at most 15 bytes).
        name: String,
        /// The name before.
        previous: String,
        ret: i64,
    },
    /// chroot(2): the process's root becomes `path`. In a container, after the host's
    /// filesystem was mounted or bind-mounted in (`chroot /host`), it is a way out.
    Chroot {
        /// The new root, resolved against the cwd (as the caller saw it before).
        path: String,
        ret: i64,
    },
    /// A process ended.
    Exit {
        code: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        #[serde(default, skip_serializing_if = "is_false")]
        core_dumped: bool,
    },
    FileOpen {
        path: String,
        /// The path as the process passed it, when that differs from `path` (relative,
        /// or with `..`, `.` or `//` in it): what Falco's `fd.nameraw` shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path_raw: Option<String>,
        flags: u32,
        mode: u32,
        access: OpenAccess,
        ret: i64,
        /// Opens of the same file by this process, read-only with the same flags and
        /// effective uid, folded into this event since the previous one reported
        /// (the sensor's `open_repeat_window`). Absent when zero.
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        repeats: u64,
    },
    FileUnlink {
        path: String,
        ret: i64,
    },
    FileRename {
        old_path: String,
        new_path: String,
        ret: i64,
    },
    FileLink {
        old_path: String,
        new_path: String,
        symbolic: bool,
        ret: i64,
    },
    FileChmod {
        path: String,
        mode: u32,
        ret: i64,
    },
    FileChown {
        path: String,
        uid: i64,
        gid: i64,
        ret: i64,
    },
    FileTruncate {
        path: String,
        length: i64,
        ret: i64,
    },
    NetConnect {
        proto: L4Proto,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<SockAddr>,
        remote: SockAddr,
        /// 0, or a negative errno (`-115` EINPROGRESS for non-blocking sockets).
        ret: i64,
    },
    NetAccept {
        proto: L4Proto,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<SockAddr>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<SockAddr>,
        ret: i64,
    },
    NetBind {
        proto: L4Proto,
        local: SockAddr,
        ret: i64,
    },
    NetListen {
        proto: L4Proto,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<SockAddr>,
        backlog: i32,
        ret: i64,
    },
    /// A DNS query sent over UDP port 53.
    DnsQuery {
        query: String,
        qtype: u16,
        server: SockAddr,
    },
    /// setuid/setgid/setreuid/setregid/setresuid/setresgid/setfsuid/setfsgid.
    SetId {
        call: String,
        /// Arguments as passed (-1 is "unchanged").
        args: Vec<i64>,
        ret: i64,
    },
    Capset {
        effective: u64,
        permitted: u64,
        inheritable: u64,
        ret: i64,
    },
    Ptrace {
        request: i64,
        target_pid: i64,
        ret: i64,
    },
    /// A file or socket operation submitted to io_uring, which runs it without its
    /// syscall: open, create, rename, link or remove a file; open, bind, listen on,
    /// connect or accept a socket (reads and writes are not reported). Reported at
    /// submission, so without a result.
    IoUring {
        /// The operation: `openat`, `openat2`, `connect`, `accept`, `socket`, `bind`,
        /// `listen`, `renameat`, `unlinkat`, `mkdirat`, `symlinkat`, `linkat`.
        op: String,
        /// For `openat`/`openat2`: the path, resolved against its directory.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
        /// For `openat`/`openat2`: the open flags.
        #[serde(default, skip_serializing_if = "is_zero_u64")]
        flags: u64,
        /// For `connect`: the destination; for `bind`: the local address. The kernel's
        /// copy, the one the operation uses.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<SockAddr>,
        /// For `socket`: the address family name (`AF_PACKET`), or `AF_<n>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        domain: Option<String>,
        /// For `socket`: the type including flags (SOCK_RAW is 3).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sock_type: Option<u32>,
        /// For `socket`: the protocol.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<u32>,
        /// For `listen`: the backlog.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backlog: Option<i32>,
    },
    /// process_vm_readv or process_vm_writev: one process reading or writing another's
    /// memory directly, without ptrace or /proc/<pid>/mem (credential theft, code
    /// injection). Failed attempts are reported too.
    ProcessVm {
        call: String,
        target_pid: i64,
        /// Bytes moved, or a negative errno.
        ret: i64,
    },
    Mount {
        /// `mount`, or a call of the new mount API: `fsmount` (a new detached
        /// filesystem instance: no `target`, `source` its device name such as `tmpfs`
        /// or `vda1`), `open_tree` (with OPEN_TREE_CLONE in `flags`, a detached copy of
        /// the tree at `source`), `fspick` (picks the filesystem mounted at `target`
        /// for reconfiguration, a remount through fsconfig: `fstype` its type),
        /// `move_mount` (attaches either at `target`; `source`
        /// is the device name when moved from a descriptor), `mount_setattr`
        /// (changes the attributes of the tree at `target`: `flags` holds the
        /// MOUNT_ATTR_* bits set in its low 32 bits and those cleared in its high 32).
        /// Absent: `mount`.
        #[serde(default = "mount_call")]
        call: String,
        source: String,
        target: String,
        fstype: String,
        flags: u64,
        ret: i64,
    },
    Umount {
        target: String,
        flags: u64,
        ret: i64,
    },
    /// unshare(2) or setns(2).
    Namespace {
        call: String,
        flags: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fd: Option<i64>,
        ret: i64,
    },
    /// init_module or finit_module.
    ModuleLoad {
        call: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
        ret: i64,
    },
    /// bpf(2).
    Bpf {
        cmd: i64,
        ret: i64,
    },
    MemfdCreate {
        name: String,
        flags: u32,
        ret: i64,
    },
    /// A write-mode open of /proc/<pid>/mem (process injection).
    ProcMemWrite {
        path: String,
        target_pid: u32,
        ret: i64,
    },
    /// socket(2) of an unusual domain (AF_PACKET and other non unix/inet/netlink
    /// families) or of type SOCK_RAW. Failed attempts are reported too.
    Socket {
        /// Address family name as in `<sys/socket.h>` (`AF_PACKET`), or `AF_<n>`.
        domain: String,
        /// The type argument including flags (SOCK_RAW is 3).
        sock_type: u32,
        protocol: u32,
        /// The new descriptor, or a negative errno.
        ret: i64,
    },
    /// dup/dup2/dup3 that put an IPv4/IPv6 socket on standard input, output or error:
    /// how reverse shells wire themselves to the network. Other dups are not reported.
    FdDup {
        call: String,
        old_fd: i64,
        /// The descriptor now pointing at the socket (0, 1 or 2).
        new_fd: i64,
        proto: L4Proto,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        local: Option<SockAddr>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote: Option<SockAddr>,
    },
    /// Events were lost; `count` since the previous `lost` event from this source.
    Lost {
        source: LossSource,
        count: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu: Option<u32>,
    },
    /// A Kubernetes admission request the admission policy decided on (the webhook in
    /// `rampart central`, or `rampart admission check` on a manifest). No process and
    /// no container: the workload is the pod to be, named here.
    Admission(AdmissionRequest),
}

/// What an admission request asked and what the policy answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct AdmissionRequest {
    /// The object's kind (`Pod`, `Deployment`, `CronJob`, …).
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Who asked (the API server's `userInfo.username`; empty for a manifest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// `CREATE` or `UPDATE` (empty for a manifest).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
    /// `allow`, `warn` or `deny`.
    pub decision: String,
    /// The policy clauses that denied the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_by: Vec<String>,
    /// The policy clauses that warned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warned_by: Vec<String>,
    /// The images of the pod's containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

/// Nanoseconds per USER_HZ tick: /proc reports start times in ticks, so exec ids are
/// built at that resolution to agree between /proc-seeded and kernel-seen processes.
pub const EXEC_ID_NS_PER_TICK: u64 = 10_000_000;

/// An exec id, unique across pid reuse (and across hosts by the boot id prefix):
/// `BOOT:PID:START`, the process's start in ticks since boot.
pub fn exec_id(boot: &str, pid: u32, start_boot_ns: u64) -> String {
    format!("{boot}:{pid}:{}", start_boot_ns / EXEC_ID_NS_PER_TICK)
}

/// The start time an exec id carries, in ns since boot (at tick resolution).
pub fn exec_id_start_boot_ns(exec_id: &str) -> Option<u64> {
    let ticks: u64 = exec_id.rsplit(':').next()?.parse().ok()?;
    ticks.checked_mul(EXEC_ID_NS_PER_TICK)
}

/// The file name a packet capture named `name` (an alert's id, for a capture taken
/// around that alert) is written under: the network stage writes it, the recorder's
/// incident bundles look for it. Characters outside `[A-Za-z0-9_-]` become `_`.
pub fn capture_file_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.push_str(".pcapng");
    out
}

/// Now, in nanoseconds since the Unix epoch: the clock events and alerts carry.
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Short names of event kinds, one per [`Payload`] variant.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Exec,
    Fork,
    Exit,
    FileOpen,
    FileUnlink,
    FileRename,
    FileLink,
    FileChmod,
    FileChown,
    FileTruncate,
    NetConnect,
    NetAccept,
    NetBind,
    NetListen,
    DnsQuery,
    SetId,
    Capset,
    Ptrace,
    Mount,
    Umount,
    Namespace,
    ModuleLoad,
    Bpf,
    MemfdCreate,
    ProcMemWrite,
    Socket,
    FdDup,
    ProcessVm,
    IoUring,
    ExecFailed,
    FileOpenByHandle,
    ProcessRename,
    Chroot,
    Lost,
    /// Last: the recorder stores kinds by number.
    Admission,
}

impl EventKind {
    pub const ALL: [EventKind; 35] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::FileOpen,
        EventKind::FileUnlink,
        EventKind::FileRename,
        EventKind::FileLink,
        EventKind::FileChmod,
        EventKind::FileChown,
        EventKind::FileTruncate,
        EventKind::NetConnect,
        EventKind::NetAccept,
        EventKind::NetBind,
        EventKind::NetListen,
        EventKind::DnsQuery,
        EventKind::SetId,
        EventKind::Capset,
        EventKind::Ptrace,
        EventKind::Mount,
        EventKind::Umount,
        EventKind::Namespace,
        EventKind::ModuleLoad,
        EventKind::Bpf,
        EventKind::MemfdCreate,
        EventKind::ProcMemWrite,
        EventKind::Socket,
        EventKind::FdDup,
        EventKind::ProcessVm,
        EventKind::IoUring,
        EventKind::ExecFailed,
        EventKind::FileOpenByHandle,
        EventKind::ProcessRename,
        EventKind::Chroot,
        EventKind::Lost,
        EventKind::Admission,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::FileOpen => "file_open",
            EventKind::FileUnlink => "file_unlink",
            EventKind::FileRename => "file_rename",
            EventKind::FileLink => "file_link",
            EventKind::FileChmod => "file_chmod",
            EventKind::FileChown => "file_chown",
            EventKind::FileTruncate => "file_truncate",
            EventKind::NetConnect => "net_connect",
            EventKind::NetAccept => "net_accept",
            EventKind::NetBind => "net_bind",
            EventKind::NetListen => "net_listen",
            EventKind::DnsQuery => "dns_query",
            EventKind::SetId => "set_id",
            EventKind::Capset => "capset",
            EventKind::Ptrace => "ptrace",
            EventKind::Mount => "mount",
            EventKind::Umount => "umount",
            EventKind::Namespace => "namespace",
            EventKind::ModuleLoad => "module_load",
            EventKind::Bpf => "bpf",
            EventKind::MemfdCreate => "memfd_create",
            EventKind::ProcMemWrite => "proc_mem_write",
            EventKind::Socket => "socket",
            EventKind::FdDup => "fd_dup",
            EventKind::ProcessVm => "process_vm",
            EventKind::IoUring => "io_uring",
            EventKind::ExecFailed => "exec_failed",
            EventKind::FileOpenByHandle => "file_open_by_handle",
            EventKind::ProcessRename => "process_rename",
            EventKind::Chroot => "chroot",
            EventKind::Lost => "lost",
            EventKind::Admission => "admission",
        }
    }

    /// Parses a kind name, also accepting family names (`file`, `net`, `process`,
    /// `privilege`) which expand to several kinds.
    pub fn parse_filter(s: &str) -> Option<Vec<EventKind>> {
        use EventKind::*;
        let family: &[EventKind] = match s {
            "process" => &[Exec, Fork, Exit, ExecFailed, ProcessRename],
            "file" => &[
                FileOpen,
                FileUnlink,
                FileRename,
                FileLink,
                FileChmod,
                FileChown,
                FileTruncate,
                FileOpenByHandle,
            ],
            "net" | "network" => &[
                NetConnect, NetAccept, NetBind, NetListen, DnsQuery, Socket, FdDup,
            ],
            "privilege" => &[SetId, Capset],
            "kernel" => &[
                Ptrace,
                Mount,
                Umount,
                Namespace,
                ModuleLoad,
                Bpf,
                MemfdCreate,
                ProcMemWrite,
                ProcessVm,
                IoUring,
                Chroot,
            ],
            _ => {
                return EventKind::ALL
                    .iter()
                    .find(|k| k.as_str() == s)
                    .map(|k| vec![*k])
            }
        };
        Some(family.to_vec())
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Payload {
    pub fn kind(&self) -> EventKind {
        match self {
            Payload::Exec { .. } => EventKind::Exec,
            Payload::Fork { .. } => EventKind::Fork,
            Payload::Exit { .. } => EventKind::Exit,
            Payload::FileOpen { .. } => EventKind::FileOpen,
            Payload::FileUnlink { .. } => EventKind::FileUnlink,
            Payload::FileRename { .. } => EventKind::FileRename,
            Payload::FileLink { .. } => EventKind::FileLink,
            Payload::FileChmod { .. } => EventKind::FileChmod,
            Payload::FileChown { .. } => EventKind::FileChown,
            Payload::FileTruncate { .. } => EventKind::FileTruncate,
            Payload::NetConnect { .. } => EventKind::NetConnect,
            Payload::NetAccept { .. } => EventKind::NetAccept,
            Payload::NetBind { .. } => EventKind::NetBind,
            Payload::NetListen { .. } => EventKind::NetListen,
            Payload::DnsQuery { .. } => EventKind::DnsQuery,
            Payload::SetId { .. } => EventKind::SetId,
            Payload::Capset { .. } => EventKind::Capset,
            Payload::Ptrace { .. } => EventKind::Ptrace,
            Payload::ProcessVm { .. } => EventKind::ProcessVm,
            Payload::IoUring { .. } => EventKind::IoUring,
            Payload::ExecFailed { .. } => EventKind::ExecFailed,
            Payload::FileOpenByHandle { .. } => EventKind::FileOpenByHandle,
            Payload::ProcessRename { .. } => EventKind::ProcessRename,
            Payload::Chroot { .. } => EventKind::Chroot,
            Payload::Mount { .. } => EventKind::Mount,
            Payload::Umount { .. } => EventKind::Umount,
            Payload::Namespace { .. } => EventKind::Namespace,
            Payload::ModuleLoad { .. } => EventKind::ModuleLoad,
            Payload::Bpf { .. } => EventKind::Bpf,
            Payload::MemfdCreate { .. } => EventKind::MemfdCreate,
            Payload::ProcMemWrite { .. } => EventKind::ProcMemWrite,
            Payload::Socket { .. } => EventKind::Socket,
            Payload::FdDup { .. } => EventKind::FdDup,
            Payload::Lost { .. } => EventKind::Lost,
            Payload::Admission(_) => EventKind::Admission,
        }
    }
}

/// Falco-compatible rule priority, most severe first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Emergency,
    Alert,
    Critical,
    Error,
    Warning,
    Notice,
    #[serde(alias = "info")]
    Informational,
    Debug,
}

impl Priority {
    /// Every priority, most severe first.
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// Falco's spelling (`Critical`, `Warning`, …) as used in its JSON output.
    pub fn falco_name(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }

    /// Parses Falco's names case-insensitively (`INFO` and `informational` both work).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "emergency" => Priority::Emergency,
            "alert" => Priority::Alert,
            "critical" => Priority::Critical,
            "error" => Priority::Error,
            "warning" => Priority::Warning,
            "notice" => Priority::Notice,
            "info" | "informational" => Priority::Informational,
            "debug" => Priority::Debug,
            _ => return None,
        })
    }

    /// This priority on the one finding [`Severity`] scale: Emergency, Alert and
    /// Critical are critical; Error high; Warning medium; Notice low; Informational and
    /// Debug are not rated (unknown, the bottom of the scale). The same cut points as
    /// the OCSF severity of an alert, with OCSF's Fatal folded into critical and its
    /// Informational into unknown.
    pub fn severity(self) -> Severity {
        match self {
            Priority::Emergency | Priority::Alert | Priority::Critical => Severity::Critical,
            Priority::Error => Severity::High,
            Priority::Warning => Severity::Medium,
            Priority::Notice => Severity::Low,
            Priority::Informational | Priority::Debug => Severity::Unknown,
        }
    }
}

/// A rule matched an event. Identical alerts within a window are aggregated: `count`
/// says how many events it stands for, between `first_ts_ns` and `ts_ns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alert {
    /// Unique id (UUID-like hex).
    pub id: String,
    /// Time of the (latest) triggering event, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Time of the first event aggregated into this alert.
    pub first_ts_ns: u64,
    pub count: u64,
    /// Rule name.
    pub rule: String,
    pub priority: Priority,
    /// MITRE ATT&CK technique or tactic ids (`T1059.004`, `TA0002`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mitre: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The rule's output template rendered against the event.
    pub message: String,
    /// The fields the output template named, with their values (Falco's `output_fields`).
    #[serde(default)]
    pub output_fields: BTreeMap<String, serde_json::Value>,
    /// Where the rule came from (`syscall` for sensor events).
    pub source: String,
    /// The triggering event, with its process ancestry and container.
    pub event: Event,
    /// Raised by a retro-hunt over recorded history, not by the live engine.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retro: bool,
}

fn mount_call() -> String {
    "mount".into()
}

fn no_env(env: &Option<Vec<String>>) -> bool {
    env.as_ref().is_none_or(Vec::is_empty)
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(v: &u32) -> bool {
    *v == 0
}
fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            compat_syscall: false,
            schema: SCHEMA_VERSION,
            ts_ns: 1_700_000_000_000_000_000,
            host: "node-1".into(),
            seq: 7,
            process: Some(Arc::new(Process {
                pid: 42,
                tid: 42,
                ppid: 1,
                exec_id: "ab:42:1000".into(),
                exe: "/bin/cat".into(),
                argv: vec!["cat".into(), "/etc/shadow".into()],
                comm: "cat".into(),
                ancestry: vec![Arc::new(Ancestor {
                    pid: 1,
                    exec_id: "ab:1:5".into(),
                    exe: "/bin/sh".into(),
                    argv: vec!["sh".into()],
                    comm: "sh".into(),
                    exe_upper_layer: false,
                })],
                ..Default::default()
            })),
            container: Arc::new(Workload::Container(Container {
                id: "f".repeat(64),
                name: "web".into(),
                image: "debian:12".into(),
                metadata_complete: true,
                ..Default::default()
            })),
            payload: Payload::FileOpen {
                path: "/etc/shadow".into(),
                path_raw: None,
                flags: 0,
                mode: 0,
                access: OpenAccess::from_flags(0),
                ret: 3,
                repeats: 0,
            },
        }
    }

    #[test]
    fn json_round_trip_keeps_every_field() {
        let ev = sample();
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains(r#""kind":"file_open""#), "{json}");
        assert!(json.contains(r#""type":"container""#), "{json}");
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn open_flags_decode() {
        let a = OpenAccess::from_flags(0o1 | 0o100 | 0o1000);
        assert!(a.write && a.create && a.truncate && !a.read);
        let r = OpenAccess::from_flags(0o2);
        assert!(r.read && r.write);
    }

    #[test]
    fn kind_names_match_serde_tags() {
        for k in EventKind::ALL {
            let s = serde_json::to_string(&k).unwrap();
            assert_eq!(s, format!("\"{}\"", k.as_str()));
            assert_eq!(EventKind::parse_filter(k.as_str()), Some(vec![k]));
        }
        assert!(EventKind::parse_filter("file").unwrap().len() > 3);
        assert_eq!(EventKind::parse_filter("nope"), None);
    }

    #[test]
    fn k8s_identity_from_cri_labels() {
        let mut l = BTreeMap::new();
        assert!(KubernetesIdentity::from_labels(&l).is_none());
        l.insert("io.kubernetes.pod.name".into(), "api-0".into());
        l.insert("io.kubernetes.pod.namespace".into(), "prod".into());
        l.insert("io.kubernetes.container.name".into(), "api".into());
        let k = KubernetesIdentity::from_labels(&l).unwrap();
        assert_eq!((k.namespace.as_str(), k.pod.as_str()), ("prod", "api-0"));
        assert_eq!(
            (k.workload_kind.as_str(), k.workload_name.as_str()),
            ("Pod", "api-0")
        );
    }

    #[test]
    fn k8s_workload_from_owner_labels() {
        let workload = |pod: &str, labels: &[(&str, &str)]| {
            let mut k = KubernetesIdentity {
                pod: pod.into(),
                ..Default::default()
            };
            let l: BTreeMap<String, String> = labels
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            k.fill_workload(&l);
            (k.workload_kind, k.workload_name)
        };
        let w = |k: &str, n: &str| (k.to_string(), n.to_string());
        assert_eq!(
            workload("web-7d4b9c8f5-x2x9k", &[("pod-template-hash", "7d4b9c8f5")]),
            w("Deployment", "web")
        );
        assert_eq!(
            workload(
                "db-2",
                &[
                    ("controller-revision-hash", "db-5f"),
                    ("statefulset.kubernetes.io/pod-name", "db-2")
                ]
            ),
            w("StatefulSet", "db")
        );
        assert_eq!(
            workload(
                "rampart-node-8kq2x",
                &[
                    ("controller-revision-hash", "6c"),
                    ("pod-template-generation", "1")
                ]
            ),
            w("DaemonSet", "rampart-node")
        );
        assert_eq!(
            workload(
                "backup-28391-abcde",
                &[("batch.kubernetes.io/job-name", "backup-28391")]
            ),
            w("Job", "backup-28391")
        );
        assert_eq!(workload("lonely", &[]), w("Pod", "lonely"));
    }
}

/// The JSON Schema of [`Event`] (and [`Alert`]), as committed in `schema/`.
pub fn event_schema_json() -> String {
    let schema = schemars::schema_for!(Event);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

pub fn alert_schema_json() -> String {
    let schema = schemars::schema_for!(Alert);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod schema_tests {
    /// The committed schema files must match the types; `UPDATE_SCHEMA=1` rewrites them.
    #[test]
    fn committed_schema_is_current() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema");
        for (file, text) in [
            ("event.schema.json", super::event_schema_json()),
            ("alert.schema.json", super::alert_schema_json()),
        ] {
            let path = format!("{dir}/{file}");
            if std::env::var("UPDATE_SCHEMA").is_ok() {
                std::fs::write(&path, &text).unwrap();
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == text,
                "{path} is stale: run UPDATE_SCHEMA=1 cargo test -p rampart-event"
            );
        }
    }
}
