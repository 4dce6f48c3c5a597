//! The response object (`bpf/response.bpf.c`): network quarantine, blocked
//! destinations and exec denial, in the kernel, per container.
//!
//! Everything is keyed by the container's cgroup v2 id. The network programs are
//! attached to the container's cgroup v2 directory (so other traffic never runs them);
//! the exec programs are attached once, host-wide, and act only on cgroups in their
//! map. Maps and links are pinned under [`PIN_ROOT`], so what is in place survives a
//! restart of rampart: a new [`ResponseGuard`] reopens the same maps, and the pinned
//! links keep the programs attached until [`ResponseGuard::release_network`],
//! [`ResponseGuard::release_exec`] or [`ResponseGuard::release_all`] unpins them.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::links::{CgroupAttachMode, FdLink, PinnedLink};
use aya::programs::{
    BtfTracePoint, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Lsm, TracePoint,
};
use aya::{Btf, Ebpf, EbpfLoader};

use crate::BpfError;

/// The compiled response programs (see `bpf/response.bpf.c`).
pub static RESPONSE_OBJECT: &[u8] = aya::include_bytes_aligned!("../obj/response.bpf.o");

/// Where maps (`maps/`) and links (`links/`) are pinned.
pub const PIN_ROOT: &str = "/sys/fs/bpf/rampart/response";

/// Every map of the object but per-CPU scratch, all pinned.
const MAPS: [&str; 11] = [
    "net_cfg",
    "net_allow",
    "net_deny",
    "net_deny_port",
    "exec_cfg",
    "exec_paths",
    "guard_stats",
    "kill_exec",
    "kill_connect",
    "kill_stats",
    "kill_open",
];

/// The network programs attached to a guarded cgroup.
const NET_PROGRAMS: [&str; 4] = [
    "guard_egress",
    "guard_ingress",
    "guard_connect4",
    "guard_connect6",
];

/// Most ports one prefix rule carries (`GUARD_PORTS` in `bpf/response/maps.h`).
pub const MAX_RULE_PORTS: usize = 8;

const NET_QUARANTINE: u32 = 1;
const NET_DENY: u32 = 2;
const NET_ALLOW_LOOPBACK: u32 = 4;
const EXEC_DENY_UPPER: u32 = 1;
const EXEC_DENY_PATHS: u32 = 2;

// Mirrors of the C structs in bpf/response/maps.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    flags: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NetPorts {
    ports: [u16; MAX_RULE_PORTS],
    nports: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PortKey {
    cgid: u64,
    port: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct ExecPathKey {
    cgid: u64,
    hash: u64,
}

/// What the response programs did to one guarded container.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GuardStats {
    pub egress_dropped: u64,
    pub ingress_dropped: u64,
    pub connect_refused: u64,
    /// Execs killed by SIGKILL at `sched_process_exec`.
    pub exec_killed: u64,
    /// Execs refused with EPERM by BPF LSM.
    pub exec_denied: u64,
}

// SAFETY: plain #[repr(C)] structs of integers with no padding the kernel could
// misread (every gap is an explicit field), valid for any bit pattern.
unsafe impl aya::Pod for Flags {}
// SAFETY: as above.
unsafe impl aya::Pod for NetPorts {}
// SAFETY: as above.
unsafe impl aya::Pod for PortKey {}
// SAFETY: as above.
unsafe impl aya::Pod for ExecPathKey {}
// SAFETY: as above.
unsafe impl aya::Pod for GuardStats {}
// SAFETY: as above.
unsafe impl aya::Pod for KillNetKey {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KillNetKey {
    addr: [u8; 16],
    port: u16,
    pad: u16,
    pad2: u32,
}

impl KillNetKey {
    fn new(addr: Option<IpAddr>, port: u16) -> Self {
        let addr = match addr {
            None => [0; 16],
            Some(IpAddr::V4(a)) => a.to_ipv6_mapped().octets(),
            Some(IpAddr::V6(a)) => a.octets(),
        };
        Self {
            addr,
            port,
            pad: 0,
            pad2: 0,
        }
    }
}

/// A connect that kills the caller in the kernel: to this address (any when `None`)
/// on this port (any when 0), at least one of them given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KillConnect {
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub rule: u32,
}

/// How a [`KillOpen`]'s path is compared with the opened file's path (as the
/// container sees it, resolved by the kernel: symlinks followed, no `..`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenMatch {
    /// The path starts with it (`fd.name startswith`), byte for byte.
    Prefix,
    /// The file is directly in this directory (`fd.directory =`).
    Directory,
    /// The path is it (`fd.name =`).
    Exact,
}

/// The open syscalls a [`KillOpen`] watches (their exit tracepoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenSyscall {
    Open,
    Openat,
    Openat2,
    Creat,
}

impl OpenSyscall {
    pub const ALL: [OpenSyscall; 4] = [Self::Open, Self::Openat, Self::Openat2, Self::Creat];

    /// `enum kill_open_syscall` in `bpf/response/open.h`.
    fn bit(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Openat => 2,
            Self::Openat2 => 4,
            Self::Creat => 8,
        }
    }

    fn tracepoint(self) -> (&'static str, &'static str) {
        match self {
            Self::Open => ("kill_open_open", "sys_exit_open"),
            Self::Openat => ("kill_open_openat", "sys_exit_openat"),
            Self::Openat2 => ("kill_open_openat2", "sys_exit_openat2"),
            Self::Creat => ("kill_open_creat", "sys_exit_creat"),
        }
    }
}

/// A successful open that kills the caller in the kernel, at the syscall's exit:
/// the process never sees the descriptor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KillOpen {
    /// Absolute; at most [`KILL_OPEN_PATH_BYTES`] bytes (a directory with its `/`).
    pub path: String,
    pub matches: OpenMatch,
    /// The syscalls it applies to; empty: every open syscall.
    pub syscalls: Vec<OpenSyscall>,
    /// Opened for reading (`evt.is_open_read`) and/or writing; both false: any mode,
    /// both true: either.
    pub read: bool,
    pub write: bool,
    /// Regular files only (`fd.typechar = f`).
    pub regular_only: bool,
    pub rule: u32,
}

/// Longest path a [`KillOpen`] can name (the trie's key).
pub const KILL_OPEN_PATH_BYTES: usize = 256;

impl KillOpen {
    /// The path as the kernel compares it (a directory ends in `/`), or why it
    /// cannot be compared there.
    pub fn entry_path(&self) -> Result<String, String> {
        if !self.path.starts_with('/') {
            return Err(format!("{:?} is not an absolute path", self.path));
        }
        let path = match self.matches {
            OpenMatch::Prefix => self.path.clone(),
            OpenMatch::Directory => format!("{}/", self.path.trim_end_matches('/')),
            OpenMatch::Exact if self.path.len() > 1 && self.path.ends_with('/') => {
                return Err(format!("{:?}: a file's path has no trailing /", self.path))
            }
            OpenMatch::Exact => self.path.clone(),
        };
        if path.len() > KILL_OPEN_PATH_BYTES {
            return Err(format!(
                "{path:?} is longer than {KILL_OPEN_PATH_BYTES} bytes"
            ));
        }
        Ok(path)
    }

    /// The trie entry: the path bytes as compared and the value. Errors say which
    /// rule and why.
    fn entry(&self) -> Result<(LpmKey<[u8; KILL_OPEN_PATH_BYTES]>, KillOpenRule), BpfError> {
        let bad = |reason: String| BpfError::Map {
            name: "kill_open".into(),
            reason: format!("rule {}: {reason}", self.rule),
        };
        let path = self.entry_path().map_err(bad)?;
        let mut data = [0u8; KILL_OPEN_PATH_BYTES];
        data[..path.len()].copy_from_slice(path.as_bytes());
        let value = KillOpenRule {
            rule: self.rule,
            kind: match self.matches {
                OpenMatch::Prefix => 0,
                OpenMatch::Directory => 1,
                OpenMatch::Exact => 2,
            },
            len: path.len() as u16,
            syscalls: self.syscalls.iter().fold(0, |m, s| m | s.bit()),
            modes: u8::from(self.read) | (u8::from(self.write) << 1),
            regular: u8::from(self.regular_only),
            pad: 0,
        };
        Ok((LpmKey::new(path.len() as u32 * 8, data), value))
    }
}

/// `struct kill_open_rule` in `bpf/response/open.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct KillOpenRule {
    rule: u32,
    kind: u16,
    len: u16,
    syscalls: u8,
    modes: u8,
    regular: u8,
    pad: u8,
}

// SAFETY: plain #[repr(C)] struct of integers, every gap an explicit field.
unsafe impl aya::Pod for KillOpenRule {}

/// What kills synchronously in the kernel: rules compiled to map entries (see
/// `bpf/response/kill.h` and `open.h`). Applies to processes in containers (a pid
/// namespace below the host's) only.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelKills {
    /// Executable paths as the container sees them, with the rule id of each.
    pub exec_paths: Vec<(String, u32)>,
    pub connects: Vec<KillConnect>,
    pub opens: Vec<KillOpen>,
}

/// An address prefix and the ports it applies to (none: every port).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetRule {
    pub addr: IpAddr,
    /// Prefix length: at most 32 for IPv4, 128 for IPv6.
    pub prefix: u8,
    #[serde(default)]
    pub ports: Vec<u16>,
}

impl NetRule {
    /// One address, every port.
    pub fn host(addr: IpAddr) -> Self {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            addr,
            prefix,
            ports: Vec::new(),
        }
    }

    /// The LPM key: cgroup id, then the address as IPv6; prefix counts both.
    fn key(&self, cgid: u64) -> Result<LpmKey<[u8; 24]>, BpfError> {
        let (bytes, prefix) = match self.addr {
            IpAddr::V4(a) if self.prefix <= 32 => (a.to_ipv6_mapped().octets(), 96 + self.prefix),
            IpAddr::V6(a) if self.prefix <= 128 => (a.octets(), self.prefix),
            _ => {
                return Err(BpfError::Map {
                    name: "net rules".into(),
                    reason: format!("prefix /{} too long for {}", self.prefix, self.addr),
                })
            }
        };
        let mut data = [0u8; 24];
        data[..8].copy_from_slice(&cgid.to_ne_bytes());
        data[8..].copy_from_slice(&bytes);
        Ok(LpmKey::new(64 + u32::from(prefix), data))
    }

    fn ports(&self) -> Result<NetPorts, BpfError> {
        if self.ports.len() > MAX_RULE_PORTS {
            return Err(BpfError::Map {
                name: "net rules".into(),
                reason: format!(
                    "{}/{}: at most {MAX_RULE_PORTS} ports per prefix",
                    self.addr, self.prefix
                ),
            });
        }
        let mut p = NetPorts::default();
        for (slot, port) in p.ports.iter_mut().zip(&self.ports) {
            *slot = *port;
        }
        p.nports = self.ports.len() as u32;
        Ok(p)
    }
}

/// What a guarded container's network may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetPolicy {
    /// Drop everything but `allow` (and loopback, with `allow_loopback`).
    #[serde(default)]
    pub quarantine: bool,
    #[serde(default)]
    pub allow_loopback: bool,
    #[serde(default)]
    pub allow: Vec<NetRule>,
    /// Destinations refused (outside quarantine): connects fail with EPERM, packets drop.
    #[serde(default)]
    pub deny: Vec<NetRule>,
    /// Ports refused to every address.
    #[serde(default)]
    pub deny_ports: Vec<u16>,
}

/// What a guarded container may not execute.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecPolicy {
    /// Executables in the overlay upper layer: written after the container started.
    #[serde(default)]
    pub deny_upper_layer: bool,
    /// Absolute paths as the container sees them.
    #[serde(default)]
    pub deny_paths: Vec<String>,
}

/// How exec denial is enforced on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecEnforcement {
    /// BPF LSM `bprm_check_security`: the exec fails with EPERM.
    Lsm,
    /// SIGKILL from `sched_process_exec`: the exec happens but the new image never
    /// runs an instruction.
    Signal,
}

/// One guarded container as the pinned maps describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Guarded {
    pub cgroup_id: u64,
    pub network: bool,
    pub exec: bool,
    pub stats: GuardStats,
}

/// What [`ResponseGuard::release_all`] undid.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Released {
    pub cgroups: Vec<u64>,
    pub links: usize,
}

fn map_err(name: &str) -> impl Fn(aya::maps::MapError) -> BpfError + '_ {
    move |e| BpfError::Map {
        name: name.into(),
        reason: e.to_string(),
    }
}

fn prog_err(name: &str) -> impl Fn(aya::programs::ProgramError) -> BpfError + '_ {
    move |e| BpfError::Program {
        name: name.into(),
        source: e,
    }
}

fn io_err(what: String) -> impl Fn(io::Error) -> BpfError {
    move |e| BpfError::Map {
        name: what.clone(),
        reason: e.to_string(),
    }
}

/// The cgroup id of a cgroup v2 directory (its inode number on cgroup2).
pub fn cgroup_id(dir: &Path) -> Result<u64, BpfError> {
    fs::metadata(dir)
        .map(|m| m.ino())
        .map_err(io_err(format!("cgroup {}", dir.display())))
}

/// The hash the exec programs compute from a path as the container sees it: FNV-1a
/// 64 over each component (its first 63 bytes) followed by `/`, leaf first.
pub fn exec_path_hash(path: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".").rev() {
        for b in comp.as_bytes().iter().take(63) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        h ^= u64::from(b'/');
        h = h.wrapping_mul(PRIME);
    }
    h
}

/// The loaded response object with its pinned maps.
pub struct ResponseGuard {
    ebpf: Ebpf,
    btf: Btf,
    root: PathBuf,
    net_loaded: bool,
}

impl ResponseGuard {
    /// Loads the object, reusing the maps pinned under [`PIN_ROOT`] (creating them
    /// the first time). Mounts bpffs when absent.
    pub fn open() -> Result<Self, BpfError> {
        crate::mount_kernel_filesystems()?;
        Self::open_at(Path::new(PIN_ROOT))
    }

    /// As [`ResponseGuard::open`], pinned under `root` (on a bpffs) instead.
    pub fn open_at(root: &Path) -> Result<Self, BpfError> {
        let btf = Btf::from_sys_fs().map_err(|e| BpfError::NoBtf(e.to_string()))?;
        for sub in ["maps", "links"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io_err(format!("pin directory {}", dir.display())))?;
        }
        let paths: Vec<(&str, PathBuf)> = MAPS
            .iter()
            .map(|m| (*m, root.join("maps").join(m)))
            .collect();
        let mut loader = EbpfLoader::new();
        loader.btf(Some(&btf));
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader.load(RESPONSE_OBJECT)?;
        Ok(Self {
            ebpf,
            btf,
            root: root.to_path_buf(),
            net_loaded: false,
        })
    }

    fn link_path(&self, name: &str) -> PathBuf {
        self.root.join("links").join(name)
    }

    fn net_link_name(cgid: u64, program: &str) -> String {
        format!("net-{cgid}-{program}")
    }

    fn load_net(&mut self) -> Result<(), BpfError> {
        if self.net_loaded {
            return Ok(());
        }
        for name in NET_PROGRAMS {
            let prog = self
                .ebpf
                .program_mut(name)
                .ok_or(aya::programs::ProgramError::NotLoaded)
                .map_err(prog_err(name))?;
            match prog {
                aya::programs::Program::CgroupSkb(p) => p.load(),
                aya::programs::Program::CgroupSockAddr(p) => p.load(),
                _ => Err(aya::programs::ProgramError::NotLoaded),
            }
            .map_err(prog_err(name))?;
        }
        self.net_loaded = true;
        Ok(())
    }

    /// Puts `policy` in force for the container whose cgroup v2 directory is
    /// `cgroup_dir`, replacing what was there, and attaches the network programs to
    /// it (once; pinned). Returns the cgroup id.
    pub fn guard_network(
        &mut self,
        cgroup_dir: &Path,
        policy: &NetPolicy,
    ) -> Result<u64, BpfError> {
        let cgid = cgroup_id(cgroup_dir)?;
        self.write_net_policy(cgid, policy)?;
        self.ensure_stats(cgid)?;
        if let Err(e) = self.attach_net(cgroup_dir, cgid) {
            // Leave nothing half in place.
            let _ = self.release_network(cgid);
            return Err(e);
        }
        Ok(cgid)
    }

    fn attach_net(&mut self, cgroup_dir: &Path, cgid: u64) -> Result<(), BpfError> {
        self.load_net()?;
        let cgroup = fs::File::open(cgroup_dir)
            .map_err(io_err(format!("cgroup {}", cgroup_dir.display())))?;
        for name in NET_PROGRAMS {
            let pin = self.link_path(&Self::net_link_name(cgid, name));
            if pin.exists() {
                continue;
            }
            let prog = self
                .ebpf
                .program_mut(name)
                .ok_or(aya::programs::ProgramError::NotLoaded)
                .map_err(prog_err(name))?;
            let link: FdLink = match prog {
                aya::programs::Program::CgroupSkb(p) => {
                    let kind = if name == "guard_egress" {
                        CgroupSkbAttachType::Egress
                    } else {
                        CgroupSkbAttachType::Ingress
                    };
                    let id = p
                        .attach(&cgroup, kind, CgroupAttachMode::Single)
                        .map_err(prog_err(name))?;
                    let link: &mut CgroupSkb = p;
                    link.take_link(id)
                        .map_err(prog_err(name))?
                        .try_into()
                        .map_err(|e: aya::programs::links::LinkError| BpfError::Map {
                            name: name.into(),
                            reason: e.to_string(),
                        })?
                }
                aya::programs::Program::CgroupSockAddr(p) => {
                    let id = p
                        .attach(&cgroup, CgroupAttachMode::Single)
                        .map_err(prog_err(name))?;
                    let link: &mut CgroupSockAddr = p;
                    link.take_link(id)
                        .map_err(prog_err(name))?
                        .try_into()
                        .map_err(|e: aya::programs::links::LinkError| BpfError::Map {
                            name: name.into(),
                            reason: e.to_string(),
                        })?
                }
                _ => return Err(prog_err(name)(aya::programs::ProgramError::NotLoaded)),
            };
            pin_link(link, &pin)?;
        }
        Ok(())
    }

    fn ensure_stats(&mut self, cgid: u64) -> Result<(), BpfError> {
        let mut stats: BpfHashMap<&mut MapData, u64, GuardStats> = self.map_mut("guard_stats")?;
        if stats.get(&cgid, 0).is_err() {
            stats
                .insert(cgid, GuardStats::default(), 0)
                .map_err(map_err("guard_stats"))?;
        }
        Ok(())
    }

    fn map_mut<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &str,
    ) -> Result<BpfHashMap<&mut MapData, K, V>, BpfError> {
        let map = self.ebpf.map_mut(name).ok_or_else(|| BpfError::Map {
            name: name.into(),
            reason: "missing from object".into(),
        })?;
        BpfHashMap::try_from(map).map_err(map_err(name))
    }

    fn map<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &str,
    ) -> Result<BpfHashMap<&MapData, K, V>, BpfError> {
        let map = self.ebpf.map(name).ok_or_else(|| BpfError::Map {
            name: name.into(),
            reason: "missing from object".into(),
        })?;
        BpfHashMap::try_from(map).map_err(map_err(name))
    }

    fn trie_mut(
        &mut self,
        name: &str,
    ) -> Result<LpmTrie<&mut MapData, [u8; 24], NetPorts>, BpfError> {
        let map = self.ebpf.map_mut(name).ok_or_else(|| BpfError::Map {
            name: name.into(),
            reason: "missing from object".into(),
        })?;
        LpmTrie::try_from(map).map_err(map_err(name))
    }

    fn write_net_policy(&mut self, cgid: u64, policy: &NetPolicy) -> Result<(), BpfError> {
        // Check every rule before changing anything.
        let mut allow = Vec::new();
        for r in &policy.allow {
            allow.push((r.key(cgid)?, r.ports()?));
        }
        let mut deny = Vec::new();
        for r in &policy.deny {
            deny.push((r.key(cgid)?, r.ports()?));
        }
        self.clear_net_rules(cgid)?;
        for (map, rules) in [("net_allow", &allow), ("net_deny", &deny)] {
            let mut trie = self.trie_mut(map)?;
            for (key, ports) in rules {
                trie.insert(key, ports, 0).map_err(map_err(map))?;
            }
        }
        let mut ports: BpfHashMap<&mut MapData, PortKey, u8> = self.map_mut("net_deny_port")?;
        for port in &policy.deny_ports {
            let key = PortKey {
                cgid,
                port: u32::from(*port),
                pad: 0,
            };
            ports.insert(key, 1, 0).map_err(map_err("net_deny_port"))?;
        }
        let mut flags = 0;
        if policy.quarantine {
            flags |= NET_QUARANTINE;
        }
        if !policy.deny.is_empty() || !policy.deny_ports.is_empty() {
            flags |= NET_DENY;
        }
        if policy.allow_loopback {
            flags |= NET_ALLOW_LOOPBACK;
        }
        // Written last: the programs act on a cgroup only once its rules are complete.
        let mut cfg: BpfHashMap<&mut MapData, u64, Flags> = self.map_mut("net_cfg")?;
        cfg.insert(cgid, Flags { flags, pad: 0 }, 0)
            .map_err(map_err("net_cfg"))
    }

    fn clear_net_rules(&mut self, cgid: u64) -> Result<(), BpfError> {
        let prefix = cgid.to_ne_bytes();
        for map in ["net_allow", "net_deny"] {
            let mut trie = self.trie_mut(map)?;
            let keys: Vec<LpmKey<[u8; 24]>> = trie
                .keys()
                .filter_map(Result::ok)
                .filter(|k| k.data()[..8] == prefix)
                .collect();
            for k in keys {
                let _ = trie.remove(&k);
            }
        }
        let mut ports: BpfHashMap<&mut MapData, PortKey, u8> = self.map_mut("net_deny_port")?;
        let keys: Vec<PortKey> = ports
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cgid == cgid)
            .collect();
        for k in keys {
            let _ = ports.remove(&k);
        }
        Ok(())
    }

    /// The network policy in force for a cgroup, read back from the pinned maps
    /// (`None` when it is not guarded).
    pub fn network_policy(&self, cgid: u64) -> Result<Option<NetPolicy>, BpfError> {
        let Ok(flags) = self.map::<u64, Flags>("net_cfg")?.get(&cgid, 0) else {
            return Ok(None);
        };
        let prefix = cgid.to_ne_bytes();
        let mut lists = Vec::new();
        for name in ["net_allow", "net_deny"] {
            let map = self.ebpf.map(name).ok_or_else(|| BpfError::Map {
                name: name.into(),
                reason: "missing from object".into(),
            })?;
            let trie: LpmTrie<&MapData, [u8; 24], NetPorts> =
                LpmTrie::try_from(map).map_err(map_err(name))?;
            let mut rules = Vec::new();
            for (key, ports) in trie.iter().filter_map(Result::ok) {
                if key.data()[..8] != prefix {
                    continue;
                }
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&key.data()[8..]);
                let v6 = std::net::Ipv6Addr::from(octets);
                let bits = key.prefix_len().saturating_sub(64) as u8;
                let (addr, prefix) = match v6.to_ipv4_mapped() {
                    Some(v4) if bits >= 96 => (IpAddr::V4(v4), bits - 96),
                    _ => (IpAddr::V6(v6), bits),
                };
                let n = (ports.nports as usize).min(MAX_RULE_PORTS);
                rules.push(NetRule {
                    addr,
                    prefix,
                    ports: ports.ports[..n].to_vec(),
                });
            }
            lists.push(rules);
        }
        let deny = lists.pop().unwrap_or_default();
        let allow = lists.pop().unwrap_or_default();
        let deny_ports = self
            .map::<PortKey, u8>("net_deny_port")?
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cgid == cgid)
            .filter_map(|k| u16::try_from(k.port).ok())
            .collect();
        Ok(Some(NetPolicy {
            quarantine: flags.flags & NET_QUARANTINE != 0,
            allow_loopback: flags.flags & NET_ALLOW_LOOPBACK != 0,
            allow,
            deny,
            deny_ports,
        }))
    }

    /// Detaches the network programs from a cgroup and forgets its rules. False when
    /// nothing was in place.
    pub fn release_network(&mut self, cgid: u64) -> Result<bool, BpfError> {
        let mut any = false;
        {
            let mut cfg: BpfHashMap<&mut MapData, u64, Flags> = self.map_mut("net_cfg")?;
            any |= cfg.remove(&cgid).is_ok();
        }
        self.clear_net_rules(cgid)?;
        for name in NET_PROGRAMS {
            any |= self.unpin(&Self::net_link_name(cgid, name))?;
        }
        self.forget_stats_if_unused(cgid)?;
        Ok(any)
    }

    /// Unpins a link: with no other holder, the kernel detaches it.
    fn unpin(&self, name: &str) -> Result<bool, BpfError> {
        let path = self.link_path(name);
        if !path.exists() {
            return Ok(false);
        }
        match PinnedLink::from_pin(&path) {
            Ok(link) => {
                let fd = link.unpin().map_err(io_err(path.display().to_string()))?;
                drop(fd);
            }
            // Not a link (a stray file): remove it all the same.
            Err(_) => fs::remove_file(&path).map_err(io_err(path.display().to_string()))?,
        }
        Ok(true)
    }

    fn forget_stats_if_unused(&mut self, cgid: u64) -> Result<(), BpfError> {
        let net = self.map::<u64, Flags>("net_cfg")?.get(&cgid, 0).is_ok();
        let exec = self.map::<u64, Flags>("exec_cfg")?.get(&cgid, 0).is_ok();
        if !net && !exec {
            let mut stats: BpfHashMap<&mut MapData, u64, GuardStats> =
                self.map_mut("guard_stats")?;
            let _ = stats.remove(&cgid);
        }
        Ok(())
    }

    /// Puts these kernel kills in force, replacing the ones there were, and attaches
    /// (pinned) the hooks that have entries; a hook left without entries is detached.
    pub fn set_kernel_kills(&mut self, kills: &KernelKills) -> Result<(), BpfError> {
        for (p, _) in &kills.exec_paths {
            if !p.starts_with('/') {
                return Err(BpfError::Map {
                    name: "kill_exec".into(),
                    reason: format!("{p:?} is not an absolute path"),
                });
            }
        }
        if let Some(c) = kills
            .connects
            .iter()
            .find(|c| c.addr.is_none() && c.port == 0)
        {
            return Err(BpfError::Map {
                name: "kill_connect".into(),
                reason: format!("rule {}: a connect kill needs an address or a port", c.rule),
            });
        }
        let mut open_entries: Vec<(LpmKey<[u8; KILL_OPEN_PATH_BYTES]>, KillOpenRule)> = Vec::new();
        for o in &kills.opens {
            let (key, value) = o.entry()?;
            // One entry per path and kind: two rules on the same one must agree on
            // the rest, or one of them would be lost.
            if let Some((_, other)) = open_entries.iter().find(|(k, v)| {
                k.prefix_len() == key.prefix_len() && k.data() == key.data() && v.kind == value.kind
            }) {
                if (KillOpenRule {
                    rule: other.rule,
                    ..value
                }) != *other
                {
                    return Err(BpfError::Map {
                        name: "kill_open".into(),
                        reason: format!(
                            "rule {}: {:?} is also rule {}'s with other conditions",
                            o.rule, o.path, other.rule
                        ),
                    });
                }
                continue;
            }
            open_entries.push((key, value));
        }
        self.clear_kernel_kills()?;
        {
            let mut trie = self.open_trie_mut()?;
            for (key, value) in &open_entries {
                trie.insert(key, *value, 0).map_err(map_err("kill_open"))?;
            }
        }
        {
            let mut m: BpfHashMap<&mut MapData, u64, u32> = self.map_mut("kill_exec")?;
            for (p, rule) in &kills.exec_paths {
                m.insert(exec_path_hash(p), *rule, 0)
                    .map_err(map_err("kill_exec"))?;
            }
        }
        {
            let mut m: BpfHashMap<&mut MapData, KillNetKey, u32> = self.map_mut("kill_connect")?;
            for c in &kills.connects {
                m.insert(KillNetKey::new(c.addr, c.port), c.rule, 0)
                    .map_err(map_err("kill_connect"))?;
            }
        }
        if kills.exec_paths.is_empty() {
            self.unpin("kill-exec")?;
        } else if !self.link_path("kill-exec").exists() {
            let prog: &mut BtfTracePoint = self
                .ebpf
                .program_mut("kill_exec_path")
                .ok_or(aya::programs::ProgramError::NotLoaded)
                .map_err(prog_err("kill_exec_path"))?
                .try_into()
                .map_err(prog_err("kill_exec_path"))?;
            prog.load("sched_process_exec", &self.btf)
                .map_err(prog_err("kill_exec_path"))?;
            let id = prog.attach().map_err(prog_err("kill_exec_path"))?;
            let link: FdLink = prog
                .take_link(id)
                .map_err(prog_err("kill_exec_path"))?
                .into();
            pin_link(link, &self.link_path("kill-exec"))?;
        }
        if kills.connects.is_empty() {
            self.unpin("kill-connect")?;
        } else if !self.link_path("kill-connect").exists() {
            crate::mount_kernel_filesystems()?;
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut("kill_connect_addr")
                .ok_or(aya::programs::ProgramError::NotLoaded)
                .map_err(prog_err("kill_connect_addr"))?
                .try_into()
                .map_err(prog_err("kill_connect_addr"))?;
            prog.load().map_err(prog_err("kill_connect_addr"))?;
            let id = prog
                .attach("syscalls", "sys_enter_connect")
                .map_err(prog_err("kill_connect_addr"))?;
            let link: FdLink = prog
                .take_link(id)
                .map_err(prog_err("kill_connect_addr"))?
                .try_into()
                .map_err(|e: aya::programs::links::LinkError| BpfError::Map {
                    name: "kill-connect".into(),
                    reason: format!("the connect hook cannot be pinned here: {e}"),
                })?;
            pin_link(link, &self.link_path("kill-connect"))?;
        }
        // The exit tracepoints of the open syscalls some entry watches.
        let watched = open_entries.iter().fold(0u8, |m, (_, v)| {
            m | if v.syscalls == 0 { 0xf } else { v.syscalls }
        });
        for sys in OpenSyscall::ALL {
            let (prog_name, tracepoint) = sys.tracepoint();
            let pin_name = format!("kill-open-{tracepoint}");
            if watched & sys.bit() == 0 {
                self.unpin(&pin_name)?;
                continue;
            }
            if self.link_path(&pin_name).exists() {
                continue;
            }
            crate::mount_kernel_filesystems()?;
            // open and creat are x86's legacy syscalls: other architectures lack them.
            if !Path::new("/sys/kernel/tracing/events/syscalls")
                .join(tracepoint)
                .exists()
            {
                tracing::debug!(tracepoint, "no such syscall tracepoint here");
                continue;
            }
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut(prog_name)
                .ok_or(aya::programs::ProgramError::NotLoaded)
                .map_err(prog_err(prog_name))?
                .try_into()
                .map_err(prog_err(prog_name))?;
            if prog.fd().is_err() {
                prog.load().map_err(prog_err(prog_name))?;
            }
            let id = prog
                .attach("syscalls", tracepoint)
                .map_err(prog_err(prog_name))?;
            let link: FdLink = prog
                .take_link(id)
                .map_err(prog_err(prog_name))?
                .try_into()
                .map_err(|e: aya::programs::links::LinkError| BpfError::Map {
                    name: pin_name.clone(),
                    reason: format!("the open hook cannot be pinned here: {e}"),
                })?;
            pin_link(link, &self.link_path(&pin_name))?;
        }
        Ok(())
    }

    fn open_trie_mut(
        &mut self,
    ) -> Result<LpmTrie<&mut MapData, [u8; KILL_OPEN_PATH_BYTES], KillOpenRule>, BpfError> {
        let map = self
            .ebpf
            .map_mut("kill_open")
            .ok_or_else(|| BpfError::Map {
                name: "kill_open".into(),
                reason: "missing from object".into(),
            })?;
        LpmTrie::try_from(map).map_err(map_err("kill_open"))
    }

    fn clear_kernel_kills(&mut self) -> Result<(), BpfError> {
        {
            let mut trie = self.open_trie_mut()?;
            let keys: Vec<LpmKey<[u8; KILL_OPEN_PATH_BYTES]>> =
                trie.keys().filter_map(Result::ok).collect();
            for k in keys {
                let _ = trie.remove(&k);
            }
        }
        {
            let mut m: BpfHashMap<&mut MapData, u64, u32> = self.map_mut("kill_exec")?;
            let keys: Vec<u64> = m.keys().filter_map(Result::ok).collect();
            for k in keys {
                let _ = m.remove(&k);
            }
        }
        let mut m: BpfHashMap<&mut MapData, KillNetKey, u32> = self.map_mut("kill_connect")?;
        let keys: Vec<KillNetKey> = m.keys().filter_map(Result::ok).collect();
        for k in keys {
            let _ = m.remove(&k);
        }
        Ok(())
    }

    /// Lifts every kernel kill and detaches its hooks.
    pub fn release_kernel_kills(&mut self) -> Result<(), BpfError> {
        self.set_kernel_kills(&KernelKills::default())
    }

    /// Processes the kernel killed for a rule id.
    pub fn kernel_kill_count(&self, rule: u32) -> u64 {
        self.map::<u32, u64>("kill_stats")
            .ok()
            .and_then(|m| m.get(&rule, 0).ok())
            .unwrap_or(0)
    }

    /// The exec enforcement attached now, if any.
    pub fn exec_enforcement(&self) -> Option<ExecEnforcement> {
        if self.link_path("exec-lsm").exists() {
            Some(ExecEnforcement::Lsm)
        } else if self.link_path("exec-signal").exists() {
            Some(ExecEnforcement::Signal)
        } else {
            None
        }
    }

    /// The enforcement this kernel allows: BPF LSM where [`crate::probe`] says it
    /// loads, else the signal. With the reason LSM was passed over.
    pub fn available_exec_enforcement() -> (ExecEnforcement, Option<String>) {
        let features = crate::probe();
        if features.bpf_lsm {
            (ExecEnforcement::Lsm, None)
        } else {
            let why = features
                .trampoline_refusal
                .map(|r| format!("BPF LSM unavailable: {r}"))
                .unwrap_or_else(|| "BPF LSM unavailable (not in the kernel's lsm= list)".into());
            (ExecEnforcement::Signal, Some(why))
        }
    }

    /// Adds the exec policy to what is in force for a cgroup (denied paths and the
    /// upper-layer flag merge with earlier denials, so two responses on one container
    /// both hold) and attaches the exec hook when none is (pinned). Returns the
    /// enforcement in force. [`ResponseGuard::release_exec`] lifts all of it.
    pub fn deny_exec(
        &mut self,
        cgid: u64,
        policy: &ExecPolicy,
    ) -> Result<ExecEnforcement, BpfError> {
        for p in &policy.deny_paths {
            if !p.starts_with('/') {
                return Err(BpfError::Map {
                    name: "exec_paths".into(),
                    reason: format!("{p:?} is not an absolute path"),
                });
            }
        }
        {
            let mut paths: BpfHashMap<&mut MapData, ExecPathKey, u8> =
                self.map_mut("exec_paths")?;
            for p in &policy.deny_paths {
                let key = ExecPathKey {
                    cgid,
                    hash: exec_path_hash(p),
                };
                paths.insert(key, 1, 0).map_err(map_err("exec_paths"))?;
            }
        }
        self.ensure_stats(cgid)?;
        // Earlier denials on this cgroup stay.
        let mut flags = self
            .map::<u64, Flags>("exec_cfg")?
            .get(&cgid, 0)
            .map_or(0, |f| f.flags);
        if policy.deny_upper_layer {
            flags |= EXEC_DENY_UPPER;
        }
        if !policy.deny_paths.is_empty() {
            flags |= EXEC_DENY_PATHS;
        }
        let enforcement = match self.exec_enforcement() {
            Some(e) => e,
            None => self.attach_exec()?,
        };
        let mut cfg: BpfHashMap<&mut MapData, u64, Flags> = self.map_mut("exec_cfg")?;
        cfg.insert(cgid, Flags { flags, pad: 0 }, 0)
            .map_err(map_err("exec_cfg"))?;
        Ok(enforcement)
    }

    fn attach_exec(&mut self) -> Result<ExecEnforcement, BpfError> {
        let (preferred, _) = Self::available_exec_enforcement();
        if preferred == ExecEnforcement::Lsm {
            match self.attach_exec_lsm() {
                Ok(()) => return Ok(ExecEnforcement::Lsm),
                Err(e) => {
                    tracing::warn!(error = %e, "BPF LSM exec denial refused; using SIGKILL at sched_process_exec")
                }
            }
        }
        let pin = self.link_path("exec-signal");
        let prog: &mut BtfTracePoint = self
            .ebpf
            .program_mut("guard_exec")
            .ok_or(aya::programs::ProgramError::NotLoaded)
            .map_err(prog_err("guard_exec"))?
            .try_into()
            .map_err(prog_err("guard_exec"))?;
        prog.load("sched_process_exec", &self.btf)
            .map_err(prog_err("guard_exec"))?;
        let id = prog.attach().map_err(prog_err("guard_exec"))?;
        let link: FdLink = prog.take_link(id).map_err(prog_err("guard_exec"))?.into();
        pin_link(link, &pin)?;
        Ok(ExecEnforcement::Signal)
    }

    fn attach_exec_lsm(&mut self) -> Result<(), BpfError> {
        let pin = self.link_path("exec-lsm");
        let prog: &mut Lsm = self
            .ebpf
            .program_mut("guard_bprm")
            .ok_or(aya::programs::ProgramError::NotLoaded)
            .map_err(prog_err("guard_bprm"))?
            .try_into()
            .map_err(prog_err("guard_bprm"))?;
        prog.load("bprm_check_security", &self.btf)
            .map_err(prog_err("guard_bprm"))?;
        let id = prog.attach().map_err(prog_err("guard_bprm"))?;
        let link: FdLink = prog.take_link(id).map_err(prog_err("guard_bprm"))?.into();
        pin_link(link, &pin)?;
        Ok(())
    }

    fn clear_exec_paths(&mut self, cgid: u64) -> Result<(), BpfError> {
        let mut paths: BpfHashMap<&mut MapData, ExecPathKey, u8> = self.map_mut("exec_paths")?;
        let keys: Vec<ExecPathKey> = paths
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.cgid == cgid)
            .collect();
        for k in keys {
            let _ = paths.remove(&k);
        }
        Ok(())
    }

    /// Lifts exec denial from a cgroup; the exec hook is detached when no cgroup is
    /// left. False when nothing was in place.
    pub fn release_exec(&mut self, cgid: u64) -> Result<bool, BpfError> {
        let removed = {
            let mut cfg: BpfHashMap<&mut MapData, u64, Flags> = self.map_mut("exec_cfg")?;
            cfg.remove(&cgid).is_ok()
        };
        self.clear_exec_paths(cgid)?;
        let left = self.map::<u64, Flags>("exec_cfg")?.keys().count();
        if left == 0 {
            self.unpin("exec-lsm")?;
            self.unpin("exec-signal")?;
        }
        self.forget_stats_if_unused(cgid)?;
        Ok(removed)
    }

    /// Counters of one guarded cgroup.
    pub fn stats(&self, cgid: u64) -> Option<GuardStats> {
        self.map::<u64, GuardStats>("guard_stats")
            .ok()?
            .get(&cgid, 0)
            .ok()
    }

    /// Every guarded cgroup, from the pinned maps.
    pub fn guarded(&self) -> Result<Vec<Guarded>, BpfError> {
        let net: Vec<u64> = self
            .map::<u64, Flags>("net_cfg")?
            .keys()
            .filter_map(Result::ok)
            .collect();
        let exec: Vec<u64> = self
            .map::<u64, Flags>("exec_cfg")?
            .keys()
            .filter_map(Result::ok)
            .collect();
        let mut ids: Vec<u64> = net.iter().chain(&exec).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids
            .into_iter()
            .map(|cgroup_id| Guarded {
                cgroup_id,
                network: net.contains(&cgroup_id),
                exec: exec.contains(&cgroup_id),
                stats: self.stats(cgroup_id).unwrap_or_default(),
            })
            .collect())
    }

    /// Undoes everything: every guarded cgroup's rules, and every pinned link
    /// (including links of cgroups whose entries were lost).
    pub fn release_all(&mut self) -> Result<Released, BpfError> {
        let mut out = Released::default();
        for g in self.guarded()? {
            if g.network {
                self.release_network(g.cgroup_id)?;
            }
            if g.exec {
                self.release_exec(g.cgroup_id)?;
            }
            out.cgroups.push(g.cgroup_id);
        }
        self.clear_kernel_kills()?;
        let dir = self.root.join("links");
        let names: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err(dir.display().to_string()))?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        for name in names {
            if self.unpin(&name)? {
                out.links += 1;
            }
        }
        Ok(out)
    }
}

/// Pins a link where it outlives this process (quarantine and denial survive a restart).
fn pin_link(link: FdLink, pin: &std::path::Path) -> Result<(), BpfError> {
    link.pin(pin).map(drop).map_err(|e| BpfError::Map {
        name: pin.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_hash_ignores_repeated_and_trailing_slashes() {
        assert_eq!(exec_path_hash("/bin/sh"), exec_path_hash("//bin//sh/"));
        assert_ne!(exec_path_hash("/bin/sh"), exec_path_hash("/sh/bin"));
        assert_ne!(exec_path_hash("/bin/sh"), exec_path_hash("/bin/s"));
    }

    #[test]
    fn open_kill_entries_are_absolute_bounded_and_directories_end_in_a_slash() {
        let open = |path: &str, matches| KillOpen {
            path: path.into(),
            matches,
            syscalls: vec![OpenSyscall::Openat, OpenSyscall::Creat],
            read: true,
            write: false,
            regular_only: true,
            rule: 3,
        };
        assert_eq!(
            open("/etc/cron.d//", OpenMatch::Directory).entry_path(),
            Ok("/etc/cron.d/".into())
        );
        assert_eq!(open("/", OpenMatch::Directory).entry_path(), Ok("/".into()));
        assert_eq!(
            open("/etc/ss", OpenMatch::Prefix).entry_path(),
            Ok("/etc/ss".into())
        );
        assert!(open("etc/shadow", OpenMatch::Exact).entry_path().is_err());
        assert!(open("/etc/", OpenMatch::Exact).entry_path().is_err());
        let long = format!("/{}", "a".repeat(KILL_OPEN_PATH_BYTES));
        assert!(open(&long, OpenMatch::Prefix).entry_path().is_err());
        let (key, value) = open("/etc/shadow", OpenMatch::Exact).entry().unwrap();
        assert_eq!(key.prefix_len(), 11 * 8);
        assert_eq!(&key.data()[..12], b"/etc/shadow\0");
        assert_eq!(
            value,
            KillOpenRule {
                rule: 3,
                kind: 2,
                len: 11,
                syscalls: 2 | 8,
                modes: 1,
                regular: 1,
                pad: 0
            }
        );
    }

    #[test]
    fn rule_keys_map_ipv4_into_ipv6() {
        let r = NetRule {
            addr: "10.1.2.0".parse().unwrap(),
            prefix: 24,
            ports: vec![53],
        };
        let k = r.key(7).unwrap();
        assert_eq!(k.prefix_len(), 64 + 96 + 24);
        assert_eq!(&k.data()[..8], &7u64.to_ne_bytes());
        assert_eq!(&k.data()[18..22], &[0xff, 0xff, 10, 1]);
        let bad = NetRule {
            addr: "10.0.0.0".parse().unwrap(),
            prefix: 33,
            ports: vec![],
        };
        assert!(bad.key(7).is_err());
        let many = NetRule {
            ports: (1..=9).collect(),
            ..NetRule::host("::1".parse().unwrap())
        };
        assert!(many.ports().is_err());
    }
}
