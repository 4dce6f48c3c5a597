//! Turns kernel records into typed events: resolves paths, decodes socket addresses
//! and DNS queries, attaches the process (with ancestry) and the container.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rampart_bpf::wire::{self, kind, Record, WireError};
use rampart_event::{
    Event, L4Proto, OpenAccess, Payload, Process, SockAddr, Workload, SCHEMA_VERSION,
};

use crate::cgroups::CgroupNames;
use crate::containers::ContainerCache;
use crate::proctree::{exec_id, split_argv, ProcessTree};

/// Asks for metadata of a container id the cache does not know; returns true when
/// the cache now has it. Blocking, bounded by the implementation's own timeout.
pub type MetadataFetch = Box<dyn FnMut(&str) -> bool + Send>;

/// Decoding state: the process tree and the container cache.
pub struct Decoder {
    pub tree: ProcessTree,
    pub containers: ContainerCache,
    host: Arc<str>,
    boot: String,
    boot_wall_ns: u64,
    seq: u64,
    fetch: Option<MetadataFetch>,
    /// Container ids whose fetch failed recently, with the boot-time ns of the try.
    failed_fetch: std::collections::HashMap<String, u64>,
    host_workload: Arc<Workload>,
    /// Per thread id: the process entry it was derived from, and the thread's copy.
    threads: std::collections::HashMap<u32, (Arc<Process>, Arc<Process>)>,
    host_cgroups: std::collections::HashMap<u64, Arc<Workload>>,
    /// What each cgroup pair's leaf names said (the kernel sends them once per pair).
    cgroup_names: CgroupNames,
    /// Containers seen in the kernel whose metadata has not arrived.
    placeholders: std::collections::HashMap<String, Arc<Workload>>,
    /// Read each exec'd process's hook variables from /proc (see [`crate::environ`]).
    hook_env: bool,
}

/// A process known only from one record's header (it started before the sensor and
/// was missed by the /proc seed, or its exec was lost).
fn fallback_process(boot: &str, boot_wall_ns: u64, rec: &Record<'_>) -> Process {
    let comm = lossy(rec.comm());
    Process {
        pid: rec.hdr.tgid,
        tid: rec.hdr.tid,
        ppid: rec.hdr.ppid,
        exec_id: exec_id(boot, rec.hdr.tgid, rec.hdr.start),
        uid: rec.hdr.uid,
        gid: rec.hdr.gid,
        euid: rec.hdr.euid,
        egid: rec.hdr.egid,
        auid: (rec.hdr.auid != u32::MAX).then_some(rec.hdr.auid),
        argv: vec![comm.clone()],
        comm,
        start_ns: boot_wall_ns + rec.hdr.start,
        tty: rec.hdr.tty,
        ..Default::default()
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Joins a relative path to its base and removes `.` and `..` lexically.
pub fn resolve_path(path: &[u8], base: &[u8]) -> String {
    let path = lossy(path);
    if path.starts_with('/') || base.is_empty() {
        return normalize(&path);
    }
    let base = lossy(base);
    normalize(&format!("{base}/{path}"))
}

fn normalize(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_string();
    }
    if !p.contains("/.") && !p.contains("//") && (p.len() == 1 || !p.ends_with('/')) {
        return p.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(p.len());
    for c in &parts {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Decodes a user-space `struct sockaddr`.
pub fn parse_sockaddr(b: &[u8]) -> Option<SockAddr> {
    if b.len() < 2 {
        return None;
    }
    let family = u16::from_ne_bytes([b[0], b[1]]);
    match family {
        2 if b.len() >= 8 => Some(SockAddr::Inet {
            port: u16::from_be_bytes([b[2], b[3]]),
            ip: IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
        }),
        10 if b.len() >= 24 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[8..24]);
            Some(SockAddr::Inet6 {
                port: u16::from_be_bytes([b[2], b[3]]),
                ip: IpAddr::V6(Ipv6Addr::from(a)),
            })
        }
        1 => {
            let raw = &b[2..];
            // Abstract sockets start with a NUL; shown as '@name' like ss(8).
            let path = if raw.first() == Some(&0) {
                let end = raw[1..]
                    .iter()
                    .position(|c| *c == 0)
                    .map_or(raw.len(), |e| e + 1);
                format!("@{}", lossy(&raw[1..end]))
            } else {
                let end = raw.iter().position(|c| *c == 0).unwrap_or(raw.len());
                lossy(&raw[..end])
            };
            Some(SockAddr::Unix { path })
        }
        f => Some(SockAddr::Other { number: f }),
    }
}

/// Decodes the kernel's synthesized address (family, host-order port, 16 bytes).
pub fn parse_wire_addr(b: &[u8]) -> Option<SockAddr> {
    if b.len() < 20 {
        return None;
    }
    let family = u16::from_ne_bytes([b[0], b[1]]);
    let port = u16::from_ne_bytes([b[2], b[3]]);
    match family {
        2 => Some(SockAddr::Inet {
            ip: IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
            port,
        }),
        10 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&b[4..20]);
            let ip = Ipv6Addr::from(a);
            Some(SockAddr::Inet6 {
                ip: IpAddr::V6(ip),
                port,
            })
        }
        1 => Some(SockAddr::Unix {
            path: String::new(),
        }),
        0 => None,
        f => Some(SockAddr::Other { number: f }),
    }
}

/// Extracts the first question (name, type) from a DNS message.
pub fn parse_dns_query(msg: &[u8]) -> Option<(String, u16)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) == 0 {
        return None;
    }
    let mut pos = 12;
    let mut name = String::new();
    loop {
        let len = *msg.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 || name.len() + len > 253 {
            return None; // queries carry no compression; anything else is not a query
        }
        let label = msg.get(pos..pos + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label));
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    Some((name, qtype))
}

fn l4(proto: u64, family: Option<&SockAddr>) -> L4Proto {
    match (proto, family) {
        (_, Some(SockAddr::Unix { .. })) => L4Proto::Unix,
        (6, _) => L4Proto::Tcp,
        (17, _) => L4Proto::Udp,
        _ => L4Proto::Other,
    }
}

/// `AF_*` name of an address family number (Linux numbering).
fn socket_family_name(family: u64) -> String {
    let name = match family {
        0 => "AF_UNSPEC",
        1 => "AF_UNIX",
        2 => "AF_INET",
        3 => "AF_AX25",
        4 => "AF_IPX",
        5 => "AF_APPLETALK",
        9 => "AF_X25",
        10 => "AF_INET6",
        16 => "AF_NETLINK",
        17 => "AF_PACKET",
        29 => "AF_CAN",
        31 => "AF_BLUETOOTH",
        38 => "AF_ALG",
        40 => "AF_VSOCK",
        44 => "AF_XDP",
        n => return format!("AF_{n}"),
    };
    name.to_string()
}

/// The new mount API's x86_64 numbers (`args[1]` of a mount record).
const NR_OPEN_TREE: u64 = 428;
const NR_FSPICK: u64 = 433;
const NR_EXECVEAT: u64 = 322;
const NR_MOVE_MOUNT: u64 = 429;
const NR_FSMOUNT: u64 = 432;
const NR_MOUNT_SETATTR: u64 = 442;
/// process_vm_writev(2)'s x86_64 number (`args[1]` of a process_vm record).
const NR_PROCESS_VM_WRITEV: u64 = 311;

fn setid_name(nr: u64) -> (&'static str, usize) {
    match nr {
        105 => ("setuid", 1),
        106 => ("setgid", 1),
        113 => ("setreuid", 2),
        114 => ("setregid", 2),
        117 => ("setresuid", 3),
        119 => ("setresgid", 3),
        122 => ("setfsuid", 1),
        123 => ("setfsgid", 1),
        _ => ("unknown", 0),
    }
}

/// The io_uring operations the kernel side reports (`IORING_OP_*`).
const IORING_OP_SOCKET: u64 = 45;
const IORING_OP_LISTEN: u64 = 57;

fn io_uring_op_name(op: u64) -> String {
    match op {
        13 => "accept",
        16 => "connect",
        18 => "openat",
        28 => "openat2",
        35 => "renameat",
        36 => "unlinkat",
        37 => "mkdirat",
        38 => "symlinkat",
        39 => "linkat",
        45 => "socket",
        56 => "bind",
        57 => "listen",
        other => return format!("op{other}"),
    }
    .into()
}

/// `/proc/<pid>/mem` → pid.
fn proc_mem_target(path: &str) -> Option<u32> {
    let rest = path.strip_prefix("/proc/")?;
    let (pid, tail) = rest.split_once('/')?;
    if tail != "mem" {
        return None;
    }
    if pid == "self" {
        return Some(0);
    }
    pid.parse().ok()
}

/// Sign-extends a 32-bit id argument (-1 means "unchanged").
fn id_arg(v: u64) -> i64 {
    v as u32 as i32 as i64
}

impl Decoder {
    pub fn new(
        host: Arc<str>,
        boot: String,
        boot_wall_ns: u64,
        containers: ContainerCache,
    ) -> Self {
        Self {
            tree: ProcessTree::new(boot.clone(), boot_wall_ns, 10_000_000_000),
            containers,
            host,
            boot,
            boot_wall_ns,
            seq: 0,
            fetch: None,
            failed_fetch: Default::default(),
            host_workload: Arc::new(Workload::Host { cgroup_id: 0 }),
            threads: std::collections::HashMap::new(),
            host_cgroups: std::collections::HashMap::new(),
            cgroup_names: CgroupNames::default(),
            placeholders: std::collections::HashMap::new(),
            hook_env: false,
        }
    }

    /// Reads the startup-hook variables of every exec'd process from /proc as its exec
    /// is decoded (see [`crate::environ`]); the live sensor does, decoding tests of
    /// made-up records do not.
    pub fn read_hook_environment(&mut self) {
        self.hook_env = true;
    }

    /// Recognises containerd's `/<namespace>/<id>` cgroups as containers (see
    /// [`CgroupNames::with_containers`]); for when containerd is followed.
    pub fn recognise_containerd_cgroups(&mut self) {
        self.cgroup_names = CgroupNames::with_containers(self.containers.clone());
    }

    pub fn set_metadata_fetch(&mut self, f: MetadataFetch) {
        self.fetch = Some(f);
    }

    /// Cgroup pairs named by kernfs handle (see [`CgroupNames`]).
    pub fn cgroup_lookups(&self) -> u64 {
        self.cgroup_names.looked_up
    }

    pub fn boot_wall_ns(&self) -> u64 {
        self.boot_wall_ns
    }

    /// A sensor-internal event (e.g. `lost`) with the next sequence number.
    pub fn internal_event(&mut self, ts_boot_ns: u64, payload: Payload) -> Event {
        self.seq += 1;
        Event {
            schema: SCHEMA_VERSION,
            ts_ns: self.boot_wall_ns + ts_boot_ns,
            host: self.host.clone(),
            seq: self.seq,
            process: None,
            container: self.host_workload.clone(),
            compat_syscall: false,
            payload,
        }
    }

    fn workload(&mut self, rec: &Record<'_>) -> Arc<Workload> {
        let found = self.cgroup_names.container(
            (rec.hdr.cgroup_id, rec.hdr.cpuset_cgroup_id),
            rec.cgroup_leaf,
            rec.cpuset_leaf,
        );
        let Some((id, runtime)) = found.as_ref().map(|(id, runtime)| (&**id, *runtime)) else {
            let cgroup_id = rec.hdr.cgroup_id;
            if cgroup_id == 0 {
                return self.host_workload.clone();
            }
            // One shared value per host cgroup (systemd services), not one per event.
            if self.host_cgroups.len() >= 4096 {
                self.host_cgroups.clear();
            }
            return self
                .host_cgroups
                .entry(cgroup_id)
                .or_insert_with(|| Arc::new(Workload::Host { cgroup_id }))
                .clone();
        };
        if let Some(w) = self.containers.get(id) {
            return self.with_cgroup_id(w, rec.hdr.cgroup_id);
        }
        if let Some(fetch) = self.fetch.as_mut() {
            // Ask once per container per 5 s, so a gone container cannot stall us.
            let now = rec.hdr.ts;
            let retry = self
                .failed_fetch
                .get(id)
                .is_none_or(|t| now.saturating_sub(*t) > 5_000_000_000);
            if retry && !fetch(id) {
                if self.failed_fetch.len() > 4096 {
                    self.failed_fetch.clear();
                }
                self.failed_fetch.insert(id.to_string(), now);
            }
        }
        if let Some(w) = self.containers.get(id) {
            if !self.placeholders.is_empty() {
                self.placeholders.remove(id);
            }
            return self.with_cgroup_id(w, rec.hdr.cgroup_id);
        }
        // No metadata (yet): one shared placeholder per container, not one per event.
        if let Some(w) = self.placeholders.get(id) {
            return w.clone();
        }
        if self.placeholders.len() >= 4096 {
            self.placeholders.clear();
        }
        let w = ContainerCache::placeholder(id, runtime, rec.hdr.cgroup_id);
        self.placeholders.insert(id.to_string(), w.clone());
        w
    }

    fn with_cgroup_id(&self, w: Arc<Workload>, cgroup_id: u64) -> Arc<Workload> {
        match &*w {
            Workload::Container(c) if c.cgroup_id != cgroup_id => {
                // Docker's metadata does not carry the cgroup id: fill it in once in the
                // cache rather than copying it for every event.
                let mut c = c.clone();
                c.cgroup_id = cgroup_id;
                self.containers.set_cgroup_id(&c.id, c.cgroup_id);
                Arc::new(Workload::Container(c))
            }
            _ => w,
        }
    }

    /// The process for a record, with credentials as the kernel saw them.
    fn process(&mut self, rec: &Record<'_>) -> Arc<Process> {
        let (boot, boot_wall_ns) = (&self.boot, self.boot_wall_ns);
        let p = self
            .tree
            .lookup_or_insert(rec.hdr.tgid, || fallback_process(boot, boot_wall_ns, rec));
        let h = &rec.hdr;
        let same_creds = p.uid == h.uid && p.euid == h.euid && p.gid == h.gid && p.egid == h.egid;
        if same_creds && p.tid == h.tid {
            return p;
        }
        // Events of other threads share one copy per thread while the process is
        // unchanged, so they share its encoded JSON downstream too.
        if same_creds {
            if let Some((base, thread)) = self.threads.get(&h.tid) {
                if Arc::ptr_eq(base, &p) {
                    return thread.clone();
                }
            }
        }
        let mut q = Process::clone(&p);
        q.uid = h.uid;
        q.euid = h.euid;
        q.gid = h.gid;
        q.egid = h.egid;
        let creds_changed =
            p.uid != h.uid || p.euid != h.euid || p.gid != h.gid || p.egid != h.egid;
        if creds_changed {
            // The process itself changed identity: later events see the new one.
            q.tid = q.pid;
            self.tree.on_exec(q.clone());
        }
        q.tid = h.tid;
        let q = Arc::new(q);
        if !creds_changed {
            if self.threads.len() >= 1024 {
                // Keep threads of processes the tree still holds.
                self.threads
                    .retain(|_, (base, _)| Arc::strong_count(base) > 1);
                if self.threads.len() >= 1024 {
                    self.threads.clear();
                }
            }
            self.threads.insert(h.tid, (p, q.clone()));
        }
        q
    }

    /// Decodes one record. `Ok(None)` for records that only update state (chdir).
    /// Drops what only churn left behind: placeholders no event in flight still
    /// holds (a live container gets a fresh one on its next event) and failed-fetch
    /// marks older than a minute. Called from the sensor's periodic tick.
    pub fn housekeep(&mut self, now_boot_ns: u64) {
        self.placeholders.retain(|_, w| Arc::strong_count(w) > 1);
        self.failed_fetch
            .retain(|_, t| now_boot_ns.saturating_sub(*t) < 60_000_000_000);
        self.placeholders.shrink_to_fit();
        self.failed_fetch.shrink_to_fit();
    }

    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<Event>, WireError> {
        let rec = Record::parse(buf)?;
        let h = rec.hdr.clone();
        let a = h.args;
        let ret = a[0] as i64;
        let container = self.workload(&rec);
        let (process, payload) = match h.kind {
            kind::EXEC => {
                let [filename, interp, exe, argv, cwd, env_block] = rec.take::<6>()?;
                let (argv, cut) = split_argv(argv);
                let filename = lossy(filename);
                let mut exe = lossy(exe);
                if exe.is_empty() {
                    exe = filename.clone();
                }
                let p = Process {
                    pid: h.tgid,
                    tid: h.tid,
                    ppid: h.ppid,
                    exec_id: exec_id(&self.boot, h.tgid, h.start),
                    parent_exec_id: None,
                    uid: h.uid,
                    gid: h.gid,
                    euid: h.euid,
                    egid: h.egid,
                    auid: (h.auid != u32::MAX).then_some(h.auid),
                    exe,
                    argv,
                    argv_truncated: cut || a[0] & wire::EXEC_F_ARGS_TRUNC != 0,
                    cwd: lossy(cwd),
                    comm: lossy(rec.comm()),
                    start_ns: self.boot_wall_ns + h.start,
                    tty: h.tty,
                    ancestry: Vec::new(),
                    exe_upper_layer: a[0] & wire::EXEC_F_UPPER_LAYER != 0,
                    env: None,
                };
                // The kernel's copy of the environment, or /proc where it is cut or
                // missing (an object built before the record carried it).
                let from_proc = || {
                    self.hook_env
                        .then(|| {
                            crate::environ::read_hook_env(
                                std::path::Path::new("/proc"),
                                p.pid,
                                &p.comm,
                            )
                        })
                        .flatten()
                };
                let env = if a[0] & wire::EXEC_F_ENV == 0 {
                    from_proc()
                } else if a[0] & wire::EXEC_F_ENV_TRUNC != 0 {
                    from_proc().or_else(|| Some(crate::environ::hook_env_of_block(env_block)))
                } else {
                    Some(crate::environ::hook_env_of_block(env_block))
                };
                let p = self.tree.on_exec(Process { env, ..p });
                let interpreter = (!interp.is_empty()).then(|| lossy(interp));
                (
                    Some(p),
                    Payload::Exec {
                        filename,
                        interpreter,
                        from_memfd: a[0] & wire::EXEC_F_MEMFD != 0,
                        from_deleted: a[0] & wire::EXEC_F_DELETED != 0,
                    },
                )
            }
            kind::FORK => {
                let parent = self.process(&rec);
                let child = self.tree.on_fork(&parent, a[0] as u32, a[1]);
                (
                    Some(parent),
                    Payload::Fork {
                        child_pid: child.pid,
                        child_exec_id: child.exec_id.clone(),
                    },
                )
            }
            kind::EXIT => {
                let p = self.process(&rec);
                self.tree.on_exit(h.tgid, h.ts);
                let status = a[0] as u32;
                let sig = status & 0x7f;
                (
                    Some(p),
                    Payload::Exit {
                        code: ((status >> 8) & 0xff) as i32,
                        signal: (sig != 0).then_some(sig as i32),
                        core_dumped: status & 0x80 != 0,
                    },
                )
            }
            kind::RENAME_PROC => {
                let [name] = rec.take::<1>()?;
                let before = self.process(&rec);
                let name = lossy(name);
                if ret == 0 {
                    self.tree.on_rename(h.tgid, name.clone());
                }
                let previous = before.comm.clone();
                (
                    Some(before),
                    Payload::ProcessRename {
                        name,
                        previous,
                        ret,
                    },
                )
            }
            kind::CHROOT => {
                let [path, base] = rec.take::<2>()?;
                let p = self.process(&rec);
                // The kernel walks the cwd after the call, up to the task's new root:
                // a cwd inside it (`cd /host && chroot .`) comes out as "/". The cwd
                // the tree holds (from exec and chdir) is the caller's view before.
                let base = if p.cwd.starts_with('/') {
                    p.cwd.as_bytes()
                } else {
                    base
                };
                let path = resolve_path(path, base);
                (Some(p), Payload::Chroot { path, ret })
            }
            kind::CHDIR => {
                let [cwd] = rec.take::<1>()?;
                self.tree.on_chdir(h.tgid, lossy(cwd));
                return Ok(None);
            }
            kind::SETID | kind::CAPSET => {
                // The kernel reports credentials after the call. The event names the
                // identity that made the call (as Falco's enter event does), so a
                // nobody -> root change shows uid 65534 asking for 0; later events
                // see the new identity.
                let before = self.tree.get(h.tgid).cloned();
                let after = self.process(&rec);
                let p = match before {
                    Some(b) if b.tid == h.tid => b,
                    Some(b) => {
                        let mut q = Process::clone(&b);
                        q.tid = h.tid;
                        Arc::new(q)
                    }
                    None => after,
                };
                (Some(p), self.payload(&rec, ret)?)
            }
            _ => {
                let p = self.process(&rec);
                (Some(p), self.payload(&rec, ret)?)
            }
        };
        self.seq += 1;
        Ok(Some(Event {
            schema: SCHEMA_VERSION,
            ts_ns: self.boot_wall_ns + h.ts,
            host: self.host.clone(),
            seq: self.seq,
            process,
            container,
            compat_syscall: !matches!(h.kind, kind::EXEC | kind::FORK | kind::EXIT)
                && a[5] & wire::EVF_COMPAT != 0,
            payload,
        }))
    }

    fn payload(&self, rec: &Record<'_>, ret: i64) -> Result<Payload, WireError> {
        let a = rec.hdr.args;
        Ok(match rec.hdr.kind {
            kind::OPEN => {
                let [raw, base] = rec.take::<2>()?;
                let path = resolve_path(raw, base);
                // Compared as bytes: most paths are already absolute and clean, and
                // then no second string is built.
                let path_raw = (raw != path.as_bytes()).then(|| lossy(raw));
                let flags = a[1] as u32;
                let access = OpenAccess::from_flags(flags);
                match proc_mem_target(&path) {
                    Some(target) if access.write => Payload::ProcMemWrite {
                        target_pid: if target == 0 { rec.hdr.tgid } else { target },
                        path,
                        ret,
                    },
                    _ => Payload::FileOpen {
                        path,
                        path_raw,
                        flags,
                        mode: a[2] as u32,
                        access,
                        ret,
                        repeats: a[4],
                    },
                }
            }
            kind::UNLINK => {
                let [path, base] = rec.take::<2>()?;
                Payload::FileUnlink {
                    path: resolve_path(path, base),
                    ret,
                }
            }
            kind::CHMOD => {
                let [path, base] = rec.take::<2>()?;
                Payload::FileChmod {
                    path: resolve_path(path, base),
                    // What the kernel applies (S_IALLUGO): some chmod tools pass
                    // st_mode with the file-type bits still set.
                    mode: a[1] as u32 & 0o7777,
                    ret,
                }
            }
            kind::CHOWN => {
                let [path, base] = rec.take::<2>()?;
                Payload::FileChown {
                    path: resolve_path(path, base),
                    uid: id_arg(a[1]),
                    gid: id_arg(a[2]),
                    ret,
                }
            }
            kind::TRUNCATE => {
                let [path, base] = rec.take::<2>()?;
                Payload::FileTruncate {
                    path: resolve_path(path, base),
                    length: a[1] as i64,
                    ret,
                }
            }
            kind::RENAME | kind::LINK => {
                let [old, old_base, new, new_base] = rec.take::<4>()?;
                let symbolic = a[2] != 0;
                let old_path = if symbolic {
                    lossy(old)
                } else {
                    resolve_path(old, old_base)
                };
                let new_path = resolve_path(new, new_base);
                if rec.hdr.kind == kind::RENAME {
                    Payload::FileRename {
                        old_path,
                        new_path,
                        ret,
                    }
                } else {
                    Payload::FileLink {
                        old_path,
                        new_path,
                        symbolic,
                        ret,
                    }
                }
            }
            kind::CONNECT | kind::BIND | kind::ACCEPT | kind::LISTEN => {
                let [local, other] = rec.take::<2>()?;
                let local = parse_wire_addr(local);
                let other_addr = if rec.hdr.kind == kind::ACCEPT {
                    parse_wire_addr(other)
                } else {
                    parse_sockaddr(other)
                };
                let proto = l4(a[1], other_addr.as_ref().or(local.as_ref()));
                match rec.hdr.kind {
                    kind::CONNECT => Payload::NetConnect {
                        proto,
                        local,
                        remote: other_addr.unwrap_or(SockAddr::Other { number: 0 }),
                        ret,
                    },
                    kind::BIND => Payload::NetBind {
                        proto,
                        local: other_addr
                            .or(local)
                            .unwrap_or(SockAddr::Other { number: 0 }),
                        ret,
                    },
                    kind::ACCEPT => Payload::NetAccept {
                        proto,
                        local,
                        remote: other_addr,
                        ret,
                    },
                    _ => Payload::NetListen {
                        proto,
                        local,
                        backlog: a[3] as i32,
                        ret,
                    },
                }
            }
            kind::DNS => {
                let [server, msg] = rec.take::<2>()?;
                let server = if server.len() == 20 {
                    parse_wire_addr(server)
                } else {
                    parse_sockaddr(server)
                };
                let (query, qtype) = parse_dns_query(msg).unwrap_or_default();
                Payload::DnsQuery {
                    query,
                    qtype,
                    server: server.unwrap_or(SockAddr::Other { number: 0 }),
                }
            }
            kind::SOCKET => Payload::Socket {
                domain: socket_family_name(a[1]),
                sock_type: a[2] as u32,
                protocol: a[3] as u32,
                ret,
            },
            kind::DUP => {
                let [local, remote] = rec.take::<2>()?;
                let local = parse_wire_addr(local);
                let remote = parse_wire_addr(remote);
                Payload::FdDup {
                    call: match a[1] {
                        32 => "dup",
                        33 => "dup2",
                        _ => "dup3",
                    }
                    .to_string(),
                    old_fd: a[2] as i64,
                    new_fd: ret,
                    proto: l4(a[3], remote.as_ref().or(local.as_ref())),
                    local,
                    remote,
                }
            }
            kind::SETID => {
                let (call, n) = setid_name(a[1]);
                Payload::SetId {
                    call: call.to_string(),
                    args: a[2..2 + n].iter().map(|v| id_arg(*v)).collect(),
                    ret,
                }
            }
            kind::CAPSET => Payload::Capset {
                effective: a[2],
                permitted: a[3],
                inheritable: a[4],
                ret,
            },
            kind::IO_URING => {
                let [path, base, addr] = rec.take::<3>()?;
                let (is_socket, is_listen) = (a[0] == IORING_OP_SOCKET, a[0] == IORING_OP_LISTEN);
                Payload::IoUring {
                    op: io_uring_op_name(a[0]),
                    path: if path.is_empty() {
                        String::new()
                    } else {
                        resolve_path(path, base)
                    },
                    flags: if is_socket || is_listen { 0 } else { a[1] },
                    addr: parse_sockaddr(addr),
                    domain: is_socket.then(|| socket_family_name(a[1])),
                    sock_type: is_socket.then_some(a[2] as u32),
                    protocol: is_socket.then_some(a[3] as u32),
                    backlog: is_listen.then_some(a[1] as i32),
                }
            }
            kind::OPEN_BY_HANDLE => {
                let [path, mount_path] = rec.take::<2>()?;
                Payload::FileOpenByHandle {
                    path: lossy(path),
                    mount_path: lossy(mount_path),
                    flags: a[3],
                    ret,
                }
            }
            kind::EXEC_FAILED => {
                let [path, base, a0, a1, a2, a3] = rec.take::<6>()?;
                let n = (a[3] as usize).min(4);
                Payload::ExecFailed {
                    call: if a[1] == NR_EXECVEAT {
                        "execveat"
                    } else {
                        "execve"
                    }
                    .into(),
                    filename: resolve_path(path, base),
                    argv: [a0, a1, a2, a3][..n].iter().map(|s| lossy(s)).collect(),
                    argv_truncated: a[4] != 0,
                    ret,
                }
            }
            kind::PROCESS_VM => Payload::ProcessVm {
                call: if a[1] == NR_PROCESS_VM_WRITEV {
                    "process_vm_writev"
                } else {
                    "process_vm_readv"
                }
                .into(),
                target_pid: a[2] as i32 as i64,
                ret,
            },
            kind::PTRACE => Payload::Ptrace {
                request: a[2] as i64,
                target_pid: a[3] as i64,
                ret,
            },
            kind::MOUNT => {
                let [source, target, fstype, base] = rec.take::<4>()?;
                // The new mount API's one path may be relative to a descriptor.
                let (call, source, target) = match a[1] {
                    NR_MOVE_MOUNT => ("move_mount", lossy(source), resolve_path(target, base)),
                    NR_OPEN_TREE => ("open_tree", resolve_path(source, base), lossy(target)),
                    NR_FSPICK => ("fspick", lossy(source), resolve_path(target, base)),
                    NR_FSMOUNT => ("fsmount", lossy(source), lossy(target)),
                    NR_MOUNT_SETATTR => {
                        ("mount_setattr", lossy(source), resolve_path(target, base))
                    }
                    _ => ("mount", lossy(source), lossy(target)),
                };
                Payload::Mount {
                    call: call.into(),
                    source,
                    target,
                    fstype: lossy(fstype),
                    flags: a[2],
                    ret,
                }
            }
            kind::UMOUNT => {
                let [target] = rec.take::<1>()?;
                Payload::Umount {
                    target: lossy(target),
                    flags: a[3],
                    ret,
                }
            }
            kind::UNSHARE => Payload::Namespace {
                call: "unshare".into(),
                flags: a[2],
                fd: None,
                ret,
            },
            kind::SETNS => Payload::Namespace {
                call: "setns".into(),
                flags: a[3],
                fd: Some(a[2] as i32 as i64),
                ret,
            },
            kind::INIT_MODULE => Payload::ModuleLoad {
                call: "init_module".into(),
                path: String::new(),
                ret,
            },
            kind::FINIT_MODULE => {
                let [path] = rec.take::<1>()?;
                Payload::ModuleLoad {
                    call: "finit_module".into(),
                    path: lossy(path),
                    ret,
                }
            }
            kind::BPF => Payload::Bpf {
                cmd: a[2] as i64,
                ret,
            },
            kind::MEMFD => {
                let [name] = rec.take::<1>()?;
                Payload::MemfdCreate {
                    name: lossy(name),
                    flags: a[3] as u32,
                    ret,
                }
            }
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_bpf::wire::{encode, Header};

    fn decoder() -> Decoder {
        Decoder::new("h".into(), "b".into(), 1_000_000, ContainerCache::default())
    }

    #[test]
    fn paths_resolve_against_base() {
        assert_eq!(resolve_path(b"x/../y", b"/srv/app"), "/srv/app/y");
        assert_eq!(resolve_path(b"/etc/./shadow", b""), "/etc/shadow");
        assert_eq!(resolve_path(b"../../..", b"/a"), "/");
        assert_eq!(resolve_path(b"rel", b""), "rel");
    }

    #[test]
    fn dns_query_names() {
        let mut m = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["example", "com"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_dns_query(&m), Some(("example.com".into(), 1)));
        assert_eq!(parse_dns_query(&m[..15]), None);
        assert_eq!(parse_dns_query(&[0u8; 3]), None);
    }

    #[test]
    fn sockaddrs() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse_sockaddr(&v4),
            Some(SockAddr::Inet {
                ip: "127.0.0.1".parse().unwrap(),
                port: 8080
            })
        );
        let mut un = vec![1, 0];
        un.extend_from_slice(b"/run/docker.sock\0");
        assert_eq!(
            parse_sockaddr(&un),
            Some(SockAddr::Unix {
                path: "/run/docker.sock".into()
            })
        );
        assert_eq!(parse_sockaddr(&[1]), None);
    }

    #[test]
    fn open_record_becomes_event_in_container() {
        let mut d = decoder();
        let id = "c".repeat(64);
        let hdr = Header {
            kind: kind::OPEN,
            tgid: 4_100_000,
            tid: 4_100_000,
            ppid: 1,
            ts: 5,
            cgroup_id: 9,
            comm: *b"cat\0\0\0\0\0\0\0\0\0\0\0\0\0",
            args: [3, 0o1101, 0o644, 257, 0, 0],
            auid: u32::MAX,
            ..Default::default()
        };
        let buf = encode(&hdr, &[id.as_bytes(), b"", b"out.txt", b"/work"]);
        let ev = d.decode(&buf).unwrap().unwrap();
        assert_eq!(ev.ts_ns, 1_000_005);
        let c = ev.container.container().expect("container attributed");
        assert_eq!(c.id, id);
        assert!(!c.metadata_complete);
        match ev.payload {
            Payload::FileOpen {
                path,
                path_raw,
                access,
                ..
            } => {
                assert_eq!(path, "/work/out.txt");
                assert_eq!(path_raw.as_deref(), Some("out.txt"));
                assert!(access.write && access.create && access.truncate);
            }
            p => panic!("unexpected {p:?}"),
        }
        assert_eq!(ev.process.unwrap().comm, "cat");
    }

    #[test]
    fn folded_repeats_of_a_read_only_open_are_carried_by_the_next_event() {
        let mut d = decoder();
        let hdr = |repeats: u64| Header {
            kind: kind::OPEN,
            tgid: 4_150_000,
            tid: 4_150_000,
            ppid: 1,
            ts: 5,
            cgroup_id: 1,
            args: [3, 0, 0, 257, repeats, 0],
            ..Default::default()
        };
        let repeats_of = |d: &mut Decoder, repeats: u64| {
            let buf = encode(&hdr(repeats), &[b"", b"", b"/etc/hosts", b""]);
            match d.decode(&buf).unwrap().unwrap().payload {
                Payload::FileOpen { repeats, path, .. } => {
                    assert_eq!(path, "/etc/hosts");
                    repeats
                }
                p => panic!("unexpected {p:?}"),
            }
        };
        assert_eq!(repeats_of(&mut d, 0), 0);
        assert_eq!(repeats_of(&mut d, 41), 41);
    }

    #[test]
    fn set_id_names_the_caller_and_chmod_mode_is_what_the_kernel_applies() {
        let mut d = decoder();
        let hdr = |kind: u16, uid: u32, euid: u32, args: [u64; 6]| Header {
            kind,
            tgid: 4_200_000,
            tid: 4_200_000,
            ppid: 1,
            ts: 5,
            uid,
            euid,
            comm: *b"exploit\0\0\0\0\0\0\0\0\0",
            args,
            auid: u32::MAX,
            ..Default::default()
        };
        // A setuid-root program run by nobody: real 65534, effective 0.
        let open = encode(
            &hdr(kind::OPEN, 65534, 0, [3, 0, 0, 257, 0, 0]),
            &[b"", b"", b"/etc/hostname", b""],
        );
        let ev = d.decode(&open).unwrap().unwrap();
        assert_eq!(ev.process.unwrap().uid, 65534);
        // setuid(0) succeeds: the kernel reports the new credentials, the event the
        // identity that made the call; the next event the new one.
        let setuid = encode(&hdr(kind::SETID, 0, 0, [0, 105, 0, 0, 0, 0]), &[b"", b""]);
        let ev = d.decode(&setuid).unwrap().unwrap();
        assert!(matches!(ev.payload, Payload::SetId { ref call, .. } if call == "setuid"));
        let p = ev.process.unwrap();
        assert_eq!((p.uid, p.euid), (65534, 0));
        assert_eq!(d.tree.get(4_200_000).map(|p| p.uid), Some(0));
        let after = encode(
            &hdr(kind::OPEN, 0, 0, [3, 0, 0, 257, 0, 0]),
            &[b"", b"", b"/etc/hostname", b""],
        );
        let ev = d.decode(&after).unwrap().unwrap();
        assert_eq!(ev.process.unwrap().uid, 0);

        let chmod = encode(
            &hdr(kind::CHMOD, 0, 0, [0, 0o104644, 0, 90, 0, 0]),
            &[b"", b"", b"/tmp/x", b""],
        );
        match d.decode(&chmod).unwrap().unwrap().payload {
            Payload::FileChmod { mode, .. } => assert_eq!(mode, 0o4644),
            p => panic!("unexpected {p:?}"),
        }
    }

    /// A refused exec: the file resolved against the cwd, at most the arguments the
    /// kernel says it read, and the caller's process left as it was.
    #[test]
    fn refused_exec_decodes_against_the_cwd() {
        let mut d = decoder();
        let me = std::process::id();
        let hdr = Header {
            kind: kind::EXEC_FAILED,
            tgid: me,
            tid: me,
            ppid: 1,
            comm: *b"sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
            // -EACCES, execveat, AT_EMPTY_PATH, 4 arguments read, more after them.
            args: [(-13i64) as u64, 322, 0x1000, 4, 1, 0],
            ..Default::default()
        };
        let rec = encode(
            &hdr,
            &[b"", b"", b"./x", b"/dev/shm", b"./x", b"-c", b"id", b"--"],
        );
        let ev = d.decode(&rec).unwrap().unwrap();
        match ev.payload {
            Payload::ExecFailed {
                call,
                filename,
                argv,
                argv_truncated,
                ret,
            } => {
                assert_eq!(
                    (call.as_str(), filename.as_str()),
                    ("execveat", "/dev/shm/x")
                );
                assert_eq!(argv, ["./x", "-c", "id", "--"]);
                assert!(argv_truncated);
                assert_eq!(ret, -13);
            }
            p => panic!("unexpected {p:?}"),
        }
        // An argument count past four (a garbled record) is clamped, not trusted.
        let mut hdr2 = hdr;
        hdr2.args = [(-1i64) as u64, 59, 0, 9, 0, 0];
        let rec = encode(&hdr2, &[b"", b"", b"/x", b"", b"a", b"", b"", b""]);
        match d.decode(&rec).unwrap().unwrap().payload {
            Payload::ExecFailed { call, argv, .. } => {
                assert_eq!(call, "execve");
                assert_eq!(argv.len(), 4);
            }
            p => panic!("unexpected {p:?}"),
        }
    }

    #[test]
    fn garbage_records_fail_cleanly() {
        let mut d = decoder();
        let mut x: u32 = 7;
        for len in (0..400).cycle().take(4000) {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (x >> 16) as u8
                })
                .collect();
            if b.len() >= 4 {
                let l = (b.len() as u16).to_ne_bytes();
                b[2] = l[0];
                b[3] = l[1];
                // Every kind there is, and some that are not.
                b[0] = (x % 40) as u8;
                b[1] = 0;
            }
            let _ = d.decode(&b);
        }
    }
}
