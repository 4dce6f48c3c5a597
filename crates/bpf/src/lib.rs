//! Rampart's kernel side: the compiled CO-RE object (built from `bpf/` by clang and
//! committed), probing what the running kernel offers, and loading/attaching the
//! programs with aya. Knows nothing of rules or storage; the sensor decodes records.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::fs;
use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::{BtfTracePoint, FExit, Program};
use aya::{Btf, Ebpf, EbpfLoader};

mod hooks;
pub mod netflow;
pub mod response;
pub mod run_stats;
pub mod wire;

pub use hooks::HookSwitch;
use hooks::{AttachPoint, Attached, Attachments};

/// The compiled kernel programs (see `bpf/rampart.bpf.c`).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!("../obj/rampart.bpf.o");

/// Syscall families, each one handler in the kernel: the tail-call target of the
/// sys_exit dispatcher (program, slot) and the body of the fexit stubs and syscall
/// tracepoint programs listed in [`SYSCALLS`]. Columns: program, tail-call slot, what it collects, the wire kinds it
/// emits. A family whose kinds are all masked off is not loaded at all.
const HANDLERS: [(&str, u32, &str, &[u16]); 7] = {
    use wire::kind as k;
    [
        ("h_open", 0, "file opens", &[k::OPEN]),
        (
            "h_path1",
            1,
            "unlink/chmod/chown/truncate",
            &[k::UNLINK, k::CHMOD, k::CHOWN, k::TRUNCATE],
        ),
        (
            "h_fdop",
            2,
            "fchmod/fchown/ftruncate/open_by_handle_at",
            &[k::CHMOD, k::CHOWN, k::TRUNCATE, k::OPEN_BY_HANDLE],
        ),
        ("h_path2", 3, "rename/link/symlink", &[k::RENAME, k::LINK]),
        (
            "h_sock",
            4,
            "connect/accept/bind/listen/socket/dup",
            // DNS: connect() marks the processes whose write()s may be DNS queries.
            &[
                k::CONNECT,
                k::ACCEPT,
                k::BIND,
                k::LISTEN,
                k::SOCKET,
                k::DUP,
                k::DNS,
            ],
        ),
        ("h_dns", 5, "DNS queries", &[k::DNS]),
        (
            "h_misc",
            6,
            "privilege and kernel events",
            &[
                k::SETID,
                k::CAPSET,
                k::PTRACE,
                k::MOUNT,
                k::UMOUNT,
                k::UNSHARE,
                k::SETNS,
                k::INIT_MODULE,
                k::FINIT_MODULE,
                k::BPF,
                k::MEMFD,
                k::CHDIR,
                k::PROCESS_VM,
                k::EXEC_FAILED,
                k::RENAME_PROC,
                k::CHROOT,
            ],
        ),
    ]
};

/// The watched syscalls: name, family (the handler `h_<family>` on sys_exit, and
/// `tp_<family>`, attached to the tracepoint `syscalls:sys_exit_<name>` of each of its
/// syscalls), and the wire kinds it can emit. Each also has an fexit stub `fx_<name>`
/// on the kernel's `__x64_sys_<name>`. A syscall whose kinds are all masked off is not
/// hooked, so it costs nothing.
pub const SYSCALLS: [(&str, &str, &[u16]); 69] = {
    use wire::kind as k;
    const OPEN: &[u16] = &[k::OPEN];
    const UNLINK: &[u16] = &[k::UNLINK];
    const CHMOD: &[u16] = &[k::CHMOD];
    const CHOWN: &[u16] = &[k::CHOWN];
    const TRUNCATE: &[u16] = &[k::TRUNCATE];
    const RENAME: &[u16] = &[k::RENAME];
    const LINK: &[u16] = &[k::LINK];
    const SETID: &[u16] = &[k::SETID];
    [
        ("open", "open", OPEN),
        ("openat", "open", OPEN),
        ("openat2", "open", OPEN),
        ("creat", "open", OPEN),
        ("unlink", "path1", UNLINK),
        ("unlinkat", "path1", UNLINK),
        ("rmdir", "path1", UNLINK),
        ("chmod", "path1", CHMOD),
        ("fchmodat", "path1", CHMOD),
        ("fchmodat2", "path1", CHMOD),
        ("chown", "path1", CHOWN),
        ("lchown", "path1", CHOWN),
        ("fchownat", "path1", CHOWN),
        ("truncate", "path1", TRUNCATE),
        ("fchmod", "fdop", CHMOD),
        ("fchown", "fdop", CHOWN),
        ("ftruncate", "fdop", TRUNCATE),
        ("open_by_handle_at", "fdop", &[k::OPEN_BY_HANDLE]),
        ("rename", "path2", RENAME),
        ("renameat", "path2", RENAME),
        ("renameat2", "path2", RENAME),
        ("link", "path2", LINK),
        ("linkat", "path2", LINK),
        ("symlink", "path2", LINK),
        ("symlinkat", "path2", LINK),
        ("connect", "sock", &[k::CONNECT, k::DNS]),
        ("accept", "sock", &[k::ACCEPT]),
        ("accept4", "sock", &[k::ACCEPT]),
        ("bind", "sock", &[k::BIND]),
        ("listen", "sock", &[k::LISTEN]),
        ("socket", "sock", &[k::SOCKET]),
        ("dup", "sock", &[k::DUP]),
        ("dup2", "sock", &[k::DUP]),
        ("dup3", "sock", &[k::DUP]),
        ("sendto", "dns", &[k::DNS]),
        ("sendmsg", "dns", &[k::DNS]),
        ("sendmmsg", "dns", &[k::DNS]),
        ("write", "dns", &[k::DNS]),
        ("setuid", "misc", SETID),
        ("setgid", "misc", SETID),
        ("setreuid", "misc", SETID),
        ("setregid", "misc", SETID),
        ("setresuid", "misc", SETID),
        ("setresgid", "misc", SETID),
        ("setfsuid", "misc", SETID),
        ("setfsgid", "misc", SETID),
        ("capset", "misc", &[k::CAPSET]),
        ("ptrace", "misc", &[k::PTRACE]),
        ("unshare", "misc", &[k::UNSHARE]),
        ("setns", "misc", &[k::SETNS]),
        ("bpf", "misc", &[k::BPF]),
        ("init_module", "misc", &[k::INIT_MODULE]),
        ("finit_module", "misc", &[k::FINIT_MODULE]),
        ("memfd_create", "misc", &[k::MEMFD]),
        ("mount", "misc", &[k::MOUNT]),
        ("move_mount", "misc", &[k::MOUNT]),
        ("fsmount", "misc", &[k::MOUNT]),
        ("open_tree", "misc", &[k::MOUNT]),
        ("fspick", "misc", &[k::MOUNT]),
        ("mount_setattr", "misc", &[k::MOUNT]),
        ("process_vm_readv", "misc", &[k::PROCESS_VM]),
        ("process_vm_writev", "misc", &[k::PROCESS_VM]),
        ("umount", "misc", &[k::UMOUNT]),
        ("chdir", "misc", &[k::CHDIR]),
        ("fchdir", "misc", &[k::CHDIR]),
        ("execve", "misc", &[k::EXEC_FAILED]),
        ("execveat", "misc", &[k::EXEC_FAILED]),
        ("prctl", "misc", &[k::RENAME_PROC]),
        ("chroot", "misc", &[k::CHROOT]),
    ]
};

/// The ia32 entry points of the watched syscalls (`bpf/attach/ia32.h`), each with the
/// watched syscall whose kinds decide whether it is hooked: program `i32_<entry>` on
/// the kernel's `__ia32_<entry>`, tail-calling its family's `i32h_<family>`. Used where
/// fexit is the hook, instead of a program on sys_exit. (socketcall multiplexes the
/// socket calls: it is hooked when any socket or DNS kind is wanted.)
pub const IA32_ENTRIES: [(&str, &str); 87] = [
    ("sys_write", "write"),
    ("compat_sys_open", "open"),
    ("sys_open", "open"),
    ("compat_sys_openat", "openat"),
    ("sys_openat", "openat"),
    ("sys_openat2", "openat2"),
    ("sys_creat", "creat"),
    ("sys_unlink", "unlink"),
    ("sys_unlinkat", "unlinkat"),
    ("sys_rmdir", "rmdir"),
    ("sys_chmod", "chmod"),
    ("sys_fchmodat", "fchmodat"),
    ("sys_fchmodat2", "fchmodat2"),
    ("sys_chown16", "chown"),
    ("sys_chown", "chown"),
    ("sys_lchown16", "lchown"),
    ("sys_lchown", "lchown"),
    ("sys_fchownat", "fchownat"),
    ("compat_sys_truncate", "truncate"),
    ("sys_ia32_truncate64", "truncate"),
    ("sys_fchmod", "fchmod"),
    ("sys_fchown16", "fchown"),
    ("sys_fchown", "fchown"),
    ("compat_sys_ftruncate", "ftruncate"),
    ("sys_ia32_ftruncate64", "ftruncate"),
    ("compat_sys_open_by_handle_at", "open_by_handle_at"),
    ("sys_rename", "rename"),
    ("sys_renameat", "renameat"),
    ("sys_renameat2", "renameat2"),
    ("sys_link", "link"),
    ("sys_linkat", "linkat"),
    ("sys_symlink", "symlink"),
    ("sys_symlinkat", "symlinkat"),
    ("compat_sys_socketcall", "socketcall"),
    ("sys_socket", "socket"),
    ("sys_bind", "bind"),
    ("sys_connect", "connect"),
    ("sys_listen", "listen"),
    ("sys_accept4", "accept4"),
    ("sys_dup", "dup"),
    ("sys_dup2", "dup2"),
    ("sys_dup3", "dup3"),
    ("sys_sendto", "sendto"),
    ("compat_sys_sendmsg", "sendmsg"),
    ("compat_sys_sendmmsg", "sendmmsg"),
    ("sys_setuid16", "setuid"),
    ("sys_setuid", "setuid"),
    ("sys_setgid16", "setgid"),
    ("sys_setgid", "setgid"),
    ("sys_setreuid16", "setreuid"),
    ("sys_setreuid", "setreuid"),
    ("sys_setregid16", "setregid"),
    ("sys_setregid", "setregid"),
    ("sys_setresuid16", "setresuid"),
    ("sys_setresuid", "setresuid"),
    ("sys_setresgid16", "setresgid"),
    ("sys_setresgid", "setresgid"),
    ("sys_setfsuid16", "setfsuid"),
    ("sys_setfsuid", "setfsuid"),
    ("sys_setfsgid16", "setfsgid"),
    ("sys_setfsgid", "setfsgid"),
    ("sys_capset", "capset"),
    ("compat_sys_ptrace", "ptrace"),
    ("sys_unshare", "unshare"),
    ("sys_setns", "setns"),
    ("sys_bpf", "bpf"),
    ("sys_init_module", "init_module"),
    ("sys_finit_module", "finit_module"),
    ("sys_memfd_create", "memfd_create"),
    ("sys_mount", "mount"),
    ("sys_move_mount", "move_mount"),
    ("sys_fsmount", "fsmount"),
    ("sys_open_tree", "open_tree"),
    ("sys_fspick", "fspick"),
    ("sys_mount_setattr", "mount_setattr"),
    ("sys_process_vm_readv", "process_vm_readv"),
    ("compat_sys_process_vm_readv", "process_vm_readv"),
    ("sys_process_vm_writev", "process_vm_writev"),
    ("compat_sys_process_vm_writev", "process_vm_writev"),
    ("sys_oldumount", "umount"),
    ("sys_umount", "umount"),
    ("sys_chdir", "chdir"),
    ("sys_fchdir", "fchdir"),
    ("compat_sys_execve", "execve"),
    ("compat_sys_execveat", "execveat"),
    ("sys_prctl", "prctl"),
    ("sys_chroot", "chroot"),
];

/// The kernel's entry point for a syscall (x86-64 naming).
fn syscall_function(name: &str) -> String {
    format!("__x64_sys_{name}")
}

/// How syscall events are hooked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyscallHook {
    /// The cheapest hook the kernel and the object allow: fexit per watched syscall;
    /// else (no BPF trampolines) each watched syscall's exit tracepoint; else the
    /// sys_exit tracepoint. Where 32-bit syscalls are watched, sys_exit comes before
    /// the tracepoints (see [`hook_order`]).
    #[default]
    Auto,
    /// fexit only.
    Fexit,
    /// The per-syscall exit tracepoints only.
    SyscallTracepoints,
    /// The sys_exit tracepoint: every syscall on the host pays for it (for
    /// comparison in `rampart bench overhead`, and kernels without syscall
    /// tracepoints).
    SysExit,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown syscall hook {0:?}; expected one of: auto, fexit, syscall_tracepoints, sys_exit")]
pub struct UnknownSyscallHook(String);

impl std::str::FromStr for SyscallHook {
    type Err = UnknownSyscallHook;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().replace('-', "_").as_str() {
            "auto" => Ok(Self::Auto),
            "fexit" => Ok(Self::Fexit),
            "syscall_tracepoints" => Ok(Self::SyscallTracepoints),
            "sys_exit" => Ok(Self::SysExit),
            _ => Err(UnknownSyscallHook(s.to_string())),
        }
    }
}

/// The hook syscall events came from after loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveSyscallHook {
    Fexit,
    SyscallTracepoints,
    SysExit,
    /// Nothing attached: only the process lifecycle is collected.
    None,
}

/// Process lifecycle programs: required, the process tree depends on them.
const LIFECYCLE: [(&str, &str); 3] = [
    ("on_exec", "sched_process_exec"),
    ("on_fork", "sched_process_fork"),
    ("on_exit", "sched_process_exit"),
];

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("the sensor must run as root (or with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN); running as uid {0}")]
    NotRoot(u32),
    #[error(
        "kernel BTF is missing ({0}); Rampart needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf(String),
    #[error("the kernel has no BPF ring buffer (needs Linux 5.8 or later)")]
    NoRingBuffer,
    #[error("loading the BPF object failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("BPF program {name}: {source}")]
    Program {
        name: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("BPF map {name}: {reason}")]
    Map { name: String, reason: String },
    #[error("mounting {what}: {reason}")]
    Mount { what: String, reason: String },
}

/// What the running kernel offers, for the start-up report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelFeatures {
    pub kernel: String,
    pub root: bool,
    pub btf: bool,
    pub ring_buffer: bool,
    pub tp_btf: bool,
    pub raw_tracepoint: bool,
    pub bpf_lsm: bool,
    /// fexit programs on kernel functions load (BPF trampolines work).
    pub fentry: bool,
    /// Why the kernel refused the trampoline probe, when it did.
    pub trampoline_refusal: Option<String>,
    pub cgroup_sock_addr: bool,
    pub cgroup_skb: bool,
    pub cgroup_v2_mount: Option<String>,
    pub tracefs: bool,
    /// The kernel has per-syscall tracepoints (`CONFIG_FTRACE_SYSCALLS`).
    pub syscall_tracepoints: bool,
    /// The kernel runs 32-bit (ia32) syscalls, which the sensor watches with a
    /// program on sys_exit beside fexit or the syscall tracepoints.
    pub ia32_emulation: bool,
    pub bpffs: bool,
}

impl KernelFeatures {
    /// Human-readable lines, one per capability.
    pub fn report(&self) -> Vec<String> {
        let yn = |b: bool| if b { "yes" } else { "no" };
        vec![
            format!("kernel            {}", self.kernel),
            format!("running as root   {}", yn(self.root)),
            format!("BTF               {} (required)", yn(self.btf)),
            format!("ring buffer       {} (required)", yn(self.ring_buffer)),
            format!("tp_btf            {} (required)", yn(self.tp_btf)),
            format!("raw tracepoints   {} (required)", yn(self.raw_tracepoint)),
            format!(
                "BPF LSM           {} (optional: in-kernel exec denial)",
                yn(self.bpf_lsm)
            ),
            format!(
                "fentry/fexit      {} (optional: without it syscall events come from syscall tracepoints){}",
                yn(self.fentry),
                self.trampoline_refusal
                    .as_deref()
                    .map(|r| format!("; refused: {r}"))
                    .unwrap_or_default()
            ),
            format!(
                "cgroup sock_addr  {} (optional: connect blocking)",
                yn(self.cgroup_sock_addr)
            ),
            format!("cgroup skb        {} (optional)", yn(self.cgroup_skb)),
            format!(
                "cgroup v2         {}",
                self.cgroup_v2_mount.as_deref().unwrap_or("not mounted")
            ),
            format!(
                "syscall tracepts  {} (optional: without them and fexit every syscall pays for the sys_exit tracepoint)",
                yn(self.syscall_tracepoints)
            ),
            format!(
                "ia32 syscalls     {} (32-bit programs and int 0x80; watched at a cost to every syscall)",
                yn(self.ia32_emulation)
            ),
            format!("tracefs mounted   {}", yn(self.tracefs)),
            format!("bpffs mounted     {}", yn(self.bpffs)),
        ]
    }

    /// The first missing requirement, as an error a user can act on.
    pub fn check_required(&self) -> Result<(), BpfError> {
        if !self.root {
            // SAFETY: geteuid has no preconditions.
            return Err(BpfError::NotRoot(unsafe { libc::geteuid() }));
        }
        if !self.btf {
            return Err(BpfError::NoBtf("/sys/kernel/btf/vmlinux not found".into()));
        }
        if !self.ring_buffer {
            return Err(BpfError::NoRingBuffer);
        }
        Ok(())
    }
}

/// tracefs's directory of syscall tracepoints, where it is mounted.
fn syscall_tracepoint_dir() -> Option<std::path::PathBuf> {
    let mounted = mount_point_of("tracefs", &mounts());
    let found = mounted
        .iter()
        .map(String::as_str)
        .chain(["/sys/kernel/tracing", "/sys/kernel/debug/tracing"])
        .map(|root| Path::new(root).join("events/syscalls"))
        .find(|dir| dir.is_dir());
    found
}

fn mounts() -> String {
    fs::read_to_string("/proc/self/mounts").unwrap_or_default()
}

fn mount_point_of(fstype: &str, mounts: &str) -> Option<String> {
    mounts.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (_, point, ty) = (it.next()?, it.next()?, it.next()?);
        (ty == fstype).then(|| point.to_string())
    })
}

/// Probes the kernel, optional features included (about 0.1 s: the trampoline probe
/// parses the kernel's BTF). Safe to call without root (then most answers are "no").
pub fn probe() -> KernelFeatures {
    probe_features(true)
}

/// Checks only what the sensor cannot run without, skipping the trampoline probe
/// (loading decides the syscall hook by itself, so start-up need not pay for it twice).
pub fn check_requirements() -> Result<(), BpfError> {
    probe_features(false).check_required()
}

fn probe_features(with_trampolines: bool) -> KernelFeatures {
    use aya::programs::ProgramType;
    use aya::sys::{is_map_supported, is_program_supported};
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let prog = |t: ProgramType| root && is_program_supported(t).unwrap_or(false);
    let m = mounts();
    let lsm_list = fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    let trampolines = if root && with_trampolines {
        probe_trampolines()
    } else {
        TrampolineProbe::default()
    };
    KernelFeatures {
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        root,
        btf: Path::new("/sys/kernel/btf/vmlinux").exists(),
        ring_buffer: root && is_map_supported(aya::maps::MapType::RingBuf).unwrap_or(false),
        // aya's Tracing probe needs an attach target and reports "no" on kernels where
        // tp_btf loads fine; BTF plus raw tracepoints is what tp_btf needs.
        tp_btf: root
            && Path::new("/sys/kernel/btf/vmlinux").exists()
            && prog(ProgramType::RawTracePoint),
        raw_tracepoint: prog(ProgramType::RawTracePoint),
        bpf_lsm: lsm_list.split(',').any(|l| l.trim() == "bpf")
            && prog(ProgramType::Lsm(aya::programs::LsmAttachType::Mac))
            && trampolines.lsm,
        fentry: trampolines.fexit,
        trampoline_refusal: trampolines.refusal,
        cgroup_sock_addr: prog(ProgramType::CgroupSockAddr),
        cgroup_skb: prog(ProgramType::CgroupSkb),
        cgroup_v2_mount: mount_point_of("cgroup2", &m),
        tracefs: mount_point_of("tracefs", &m).is_some(),
        syscall_tracepoints: syscall_tracepoint_dir().is_some(),
        ia32_emulation: with_trampolines
            && Btf::from_sys_fs().is_ok_and(|btf| ia32_emulation(&btf)),
        bpffs: mount_point_of("bpf", &m).is_some(),
    }
}

/// Kernel-side run-time accounting of BPF programs (`BPF_ENABLE_STATS`): on while
/// this is alive, off when it drops, so a benchmark cannot leave it on.
pub struct RunTimeStats(#[allow(dead_code)] std::os::fd::OwnedFd);

/// Turns on per-program run-time accounting (costs a few ns per program run).
pub fn enable_run_time_stats() -> Result<RunTimeStats, BpfError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map(RunTimeStats)
        .map_err(|e| BpfError::Map {
            name: "run-time statistics".into(),
            reason: e.to_string(),
        })
}

/// Time spent in the entry programs of this object loaded in the kernel (by name:
/// lifecycle, the sys_exit dispatcher, the fexit stubs and the syscall tracepoint
/// programs; tail-called handlers count within the dispatcher). Only moves while [`RunTimeStats`] is alive.
pub fn programs_run_time() -> std::time::Duration {
    programs_run_stats().iter().map(|p| p.run_time).sum()
}

/// One entry program's accounting: what [`programs_run_time`] sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramRunStats {
    /// The kernel's id for it (names can repeat).
    pub id: u32,
    /// The kernel's name for it (at most 15 characters).
    pub name: String,
    pub run_time: std::time::Duration,
    pub run_count: u64,
}

/// Run time and count of each entry program of this object loaded in the kernel (see
/// [`programs_run_time`]). Only moves while [`RunTimeStats`] is alive.
pub fn programs_run_stats() -> Vec<ProgramRunStats> {
    let ours = |name: &str| {
        LIFECYCLE.iter().any(|(n, _)| *n == name)
            || name == "on_sys_exit"
            // Kernel program names keep 15 characters.
            || name.starts_with("on_compat_sys")
            || name.starts_with("on_io_uring")
            || name.starts_with("fx_")
            || name.starts_with("tp_")
    };
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter_map(|info| {
            let name = info.name_as_str().filter(|n| ours(n))?.to_string();
            Some(ProgramRunStats {
                id: info.id(),
                name,
                run_time: info.run_time(),
                run_count: info.run_count(),
            })
        })
        .collect()
}

/// The trivial trampoline programs of `bpf/probe.bpf.c`.
static PROBE_OBJECT: &[u8] = aya::include_bytes_aligned!("../obj/probe.bpf.o");

#[derive(Default)]
struct TrampolineProbe {
    fexit: bool,
    lsm: bool,
    refusal: Option<String>,
}

/// Loads (without attaching) an fexit and an LSM program. A kernel can know the
/// program types and still refuse every trampoline (EPERM with an empty verifier log,
/// seen on a 6.18 kernel whose ftrace has no function records), so only a load says.
fn probe_trampolines() -> TrampolineProbe {
    let mut out = TrampolineProbe::default();
    let btf = match Btf::from_sys_fs() {
        Ok(b) => b,
        Err(e) => {
            out.refusal = Some(format!("no kernel BTF: {e}"));
            return out;
        }
    };
    let mut ebpf = match EbpfLoader::new().btf(Some(&btf)).load(PROBE_OBJECT) {
        Ok(e) => e,
        Err(e) => {
            out.refusal = Some(e.to_string());
            return out;
        }
    };
    let fexit = (|| -> Result<(), aya::programs::ProgramError> {
        let p: &mut FExit = ebpf
            .program_mut("probe_fexit")
            .ok_or(aya::programs::ProgramError::NotLoaded)?
            .try_into()?;
        p.load(&syscall_function("openat"), &btf)
    })();
    let lsm = (|| -> Result<(), aya::programs::ProgramError> {
        let p: &mut aya::programs::Lsm = ebpf
            .program_mut("probe_lsm")
            .ok_or(aya::programs::ProgramError::NotLoaded)?
            .try_into()?;
        p.load("file_open", &btf)
    })();
    out.fexit = fexit.is_ok();
    out.lsm = lsm.is_ok();
    // aya appends the verifier log, empty for these refusals.
    out.refusal = fexit.err().map(|e| {
        let text = e.to_string();
        text.trim_end()
            .trim_end_matches("Verifier output:")
            .trim_end()
            .trim_end_matches('.')
            .to_string()
    });
    out
}

/// Mounts tracefs and bpffs when absent, as Falco and Tetragon do. Returns what it
/// mounted, so the caller can say so.
pub fn mount_kernel_filesystems() -> Result<Vec<String>, BpfError> {
    let m = mounts();
    let mut done = Vec::new();
    for (fstype, target) in [("tracefs", "/sys/kernel/tracing"), ("bpf", "/sys/fs/bpf")] {
        if mount_point_of(fstype, &m).is_some() {
            continue;
        }
        let c = |s: &str| std::ffi::CString::new(s).unwrap_or_default();
        let (src, tgt, ty) = (c(fstype), c(target), c(fstype));
        // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
        let rc =
            unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
        if rc != 0 {
            return Err(BpfError::Mount {
                what: format!("{fstype} on {target}"),
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        done.push(format!("{fstype} on {target}"));
    }
    Ok(done)
}

/// What to collect; becomes read-only globals and map contents in the kernel.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Bit `1 << wire kind` enables that kind.
    pub kind_mask: u64,
    /// Drop read-only opens below /lib, /usr/lib and of ld.so.cache in the kernel.
    pub filter_ro_libs: bool,
    /// Percentage of the ring kept free for exec/fork/exit.
    pub lifecycle_reserve_pct: u32,
    /// A successful read-only open that repeats one of the same process, file, flags
    /// and effective uid reported less than this long ago makes no event; it is
    /// counted into the next reported one. Zero reports every open.
    pub open_repeat_window: std::time::Duration,
    /// Processes whose events are dropped in the kernel (the sensor itself).
    pub ignored_tgids: Vec<u32>,
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Load this object instead of the embedded one (`rampart bench --bpf-object`:
    /// compare a locally built object against the shipped one without relinking).
    pub object: Option<Vec<u8>>,
    /// How syscalls are hooked.
    pub syscall_hook: SyscallHook,
    /// Also watch syscalls made through the 32-bit entry (32-bit programs, int 0x80)
    /// where the hook misses them (fexit, syscall tracepoints). Beside fexit: fexit on
    /// their ia32 entry points (`__ia32_sys_*`), so only 32-bit syscalls pay; beside
    /// the syscall tracepoints (or if those are refused): a program on sys_exit, which
    /// runs for every syscall on the host but returns at once for 64-bit ones.
    pub compat_syscalls: bool,
    /// Send a task's cgroup leaf names only in the first event of its (cgroup id,
    /// cpuset cgroup id) pair that reaches the ring; later events carry them empty,
    /// and the reader keeps them by those ids (rampart-sensor's `CgroupNames`). Saves
    /// two byte-by-byte string reads per event.
    pub cgroup_names_once: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            kind_mask: !0,
            filter_ro_libs: true,
            lifecycle_reserve_pct: 25,
            open_repeat_window: std::time::Duration::ZERO,
            ignored_tgids: vec![std::process::id()],
            ring_bytes: 16 * 1024 * 1024,
            object: None,
            syscall_hook: SyscallHook::Auto,
            compat_syscalls: true,
            cgroup_names_once: true,
        }
    }
}

/// The attached programs and the maps user space reads.
pub struct Sensor {
    // Keeps programs and links alive; shared with the hook switch.
    attachments: std::sync::Arc<std::sync::Mutex<Attachments>>,
    pub ring: RingBuf<MapData>,
    pub drops: PerCpuArray<MapData, u64>,
    /// Where syscall events come from.
    pub syscall_hook: ActiveSyscallHook,
    /// Why the cheaper hooks were not used, one line per hook refused (the same
    /// events then come from the next hook in [`SyscallHook::Auto`]'s order).
    pub hook_refusals: Vec<String>,
    /// Watched syscalls the active hook cannot see on this kernel, because the kernel
    /// does not implement them (no function for fexit, no tracepoint: fchmodat2 before
    /// Linux 6.6, init_module without module support). Calling them fails with ENOSYS,
    /// and those attempts make no event; only the sys_exit hook sees them.
    pub unhooked: Vec<&'static str>,
    /// Syscalls made through the 32-bit entry (ia32: 32-bit programs, int 0x80 from
    /// 64-bit code) make events. False when the kernel has no ia32 emulation (there
    /// are none), when [`LoadOptions::compat_syscalls`] is off, or when their hook
    /// failed (then with a warning).
    pub compat_syscalls: bool,
    /// Where 32-bit syscalls are hooked: fexit on their ia32 entry points, the sys_exit
    /// tracepoint, or nowhere.
    pub compat_hook: ActiveSyscallHook,
    /// What was not loaded because every kind it emits is filtered out: syscalls
    /// (`openat`) on fexit and syscall tracepoints, family handlers (`h_open`) on
    /// sys_exit.
    pub skipped: Vec<&'static str>,
    /// Event families not available on this kernel, with the reason.
    /// (Coverage lost; a fallback to another hook with the same coverage is not one.)
    pub warnings: Vec<String>,
    /// The first event after a quiet spell wakes the reader (objects without the
    /// `last_wakeup` map, loaded for bench comparisons, wake it only for batches).
    pub wakes_after_quiet: bool,
}

impl Sensor {
    /// A switch that detaches and re-attaches every program of this sensor (for
    /// measuring it against itself detached; it sees nothing while detached).
    pub fn hook_switch(&self) -> HookSwitch {
        HookSwitch(std::sync::Arc::downgrade(&self.attachments))
    }

    /// Kernel-side drop totals: (ring full, shed to keep room for lifecycle events).
    pub fn kernel_drops(&self) -> (u64, u64) {
        (self.counter_total(0), self.counter_total(1))
    }

    /// Read-only opens folded into a later event's repeat count (not lost: see
    /// [`LoadOptions::open_repeat_window`]).
    pub fn opens_folded(&self) -> u64 {
        self.counter_total(2)
    }

    /// Slot `index` of the per-CPU counters (the `drops` map), summed over CPUs.
    fn counter_total(&self, index: u32) -> u64 {
        self.drops
            .get(&index, 0)
            .map(|v| v.iter().sum::<u64>())
            .unwrap_or(0)
    }

    /// Kernel drop counters per CPU: (cpu, ring full, shed).
    #[allow(clippy::type_complexity)]
    pub fn kernel_drops_per_cpu(&self) -> Vec<(u32, u64, u64)> {
        let full = self
            .drops
            .get(&0, 0)
            .map(|v| v.to_vec())
            .unwrap_or_default();
        let shed = self
            .drops
            .get(&1, 0)
            .map(|v| v.to_vec())
            .unwrap_or_default();
        full.iter()
            .zip(shed.iter().chain(std::iter::repeat(&0)))
            .enumerate()
            .map(|(cpu, (f, s))| (cpu as u32, *f, *s))
            .collect()
    }
}

/// The kernel's tick rate (CONFIG_HZ) from its build configuration:
/// `/boot/config-<release>`, else `/proc/config.gz`. None where neither is readable.
pub fn kernel_hz() -> Option<u64> {
    use std::io::Read;
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let config = fs::read_to_string(format!("/boot/config-{}", release.trim()))
        .ok()
        .or_else(|| {
            let gz = fs::File::open("/proc/config.gz").ok()?;
            let mut text = String::new();
            // A kernel configuration is a few hundred KiB; the bound keeps a strange
            // file from filling memory.
            flate2::read::GzDecoder::new(gz)
                .take(16 << 20)
                .read_to_string(&mut text)
                .ok()?;
            Some(text)
        })?;
    config_hz(&config)
}

/// `CONFIG_HZ` from a kernel configuration's text.
fn config_hz(config: &str) -> Option<u64> {
    config
        .lines()
        .find_map(|line| line.strip_prefix("CONFIG_HZ=")?.trim().parse::<u64>().ok())
        .filter(|hz| *hz > 0)
}

/// A fold window in jiffies, rounded up to whole ticks and at least one. Ticks are
/// counted, not measured, so a window lasts its length give or take one tick (4 ms
/// at HZ=250); closing early only reports an open more.
fn window_in_jiffies(window: std::time::Duration, hz: u64) -> u64 {
    let jiffies = (window.as_nanos() * u128::from(hz)).div_ceil(1_000_000_000);
    u64::try_from(jiffies).unwrap_or(u64::MAX).max(1)
}

/// Loads a sys_exit program (the dispatcher or a handler). The shipped object types
/// them against the tracepoint (tp_btf: the kernel only lets a tracing program
/// tail-call programs of the same hook); objects built before that used raw_tp, which
/// `rampart bench --bpf-object` still loads for comparison.
fn load_sys_exit(prog: &mut Program, btf: &Btf) -> Result<(), aya::programs::ProgramError> {
    match prog {
        Program::BtfTracePoint(p) => p.load("sys_exit", btf),
        Program::RawTracePoint(p) => p.load(),
        _ => Err(aya::programs::ProgramError::NotLoaded),
    }
}

/// Loads, verifies and attaches everything. Lifecycle programs are required; syscall
/// families the kernel rejects are skipped with a warning.
pub fn load(opts: &LoadOptions) -> Result<Sensor, BpfError> {
    let btf = Btf::from_sys_fs().map_err(|e| BpfError::NoBtf(e.to_string()))?;
    let filter = u8::from(opts.filter_ro_libs);
    let window_ns = u64::try_from(opts.open_repeat_window.as_nanos()).unwrap_or(u64::MAX);
    let window_jiffies = if window_ns == 0 {
        0
    } else {
        kernel_hz().map_or(0, |hz| window_in_jiffies(opts.open_repeat_window, hz))
    };
    // This process, when its events are ignored: its opens then skip the fold check.
    let own = std::process::id();
    let sensor_tgid = if opts.ignored_tgids.contains(&own) {
        own
    } else {
        0
    };
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .override_global("kind_mask", &opts.kind_mask, true)
        .override_global("filter_ro_libs", &filter, true)
        .override_global("lifecycle_reserve_pct", &opts.lifecycle_reserve_pct, true)
        // Not required: objects from before it (bench comparisons) report every open.
        .override_global("open_repeat_window_ns", &window_ns, false)
        // Zero (HZ unknown) keeps the fold check on the nanosecond clock.
        .override_global("open_repeat_window_jiffies", &window_jiffies, false)
        .override_global("sensor_tgid", &sensor_tgid, false)
        .override_global(
            "cgroup_names_once",
            &u8::from(opts.cgroup_names_once),
            false,
        )
        // Only this process ignored: the kernel compares with sensor_tgid instead of
        // looking the map up for every event.
        .override_global(
            "ignored_lookup",
            &u8::from(opts.ignored_tgids.iter().any(|t| *t != sensor_tgid)),
            false,
        )
        .override_global("ring_bytes", &u64::from(opts.ring_bytes), false)
        .map_max_entries("events", opts.ring_bytes)
        .load(opts.object.as_deref().unwrap_or(OBJECT))?;

    {
        let map = ebpf.map_mut("ignored_tgids").ok_or_else(|| BpfError::Map {
            name: "ignored_tgids".into(),
            reason: "missing from object".into(),
        })?;
        let mut ignored: BpfHashMap<&mut MapData, u32, u8> =
            BpfHashMap::try_from(map).map_err(|e| BpfError::Map {
                name: "ignored_tgids".into(),
                reason: e.to_string(),
            })?;
        for tgid in &opts.ignored_tgids {
            ignored.insert(tgid, 1, 0).map_err(|e| BpfError::Map {
                name: "ignored_tgids".into(),
                reason: e.to_string(),
            })?;
        }
    }

    let mut attached = Attached::default();
    for (name, tp) in LIFECYCLE {
        let prog: &mut BtfTracePoint = ebpf
            .program_mut(name)
            .ok_or_else(|| BpfError::Program {
                name: name.into(),
                source: aya::programs::ProgramError::NotLoaded,
            })?
            .try_into()
            .map_err(|e| BpfError::Program {
                name: name.into(),
                source: e,
            })?;
        prog.load(tp, &btf)
            .and_then(|_| attached.attach(&mut ebpf, name, AttachPoint::BtfTracePoint))
            .map_err(|e| BpfError::Program {
                name: name.into(),
                source: e,
            })?;
    }

    let mut warnings = Vec::new();
    let mut skipped = Vec::new();
    let mut syscall_hook = ActiveSyscallHook::None;
    if wanted(&[wire::kind::IO_URING], opts.kind_mask) {
        if let Err(e) = attach_io_uring(&mut ebpf, &btf, &mut attached) {
            warnings.push(format!(
                "io_uring operations make no events (on_io_uring_submit on the io_uring \
                 submission tracepoint): {e}"
            ));
        }
    } else {
        skipped.push("on_io_uring_submit");
    }
    let mut hook_refusals = Vec::new();
    let mut unhooked = Vec::new();
    let compat_wanted = opts.compat_syscalls && ia32_emulation(&btf);
    let auto = opts.syscall_hook == SyscallHook::Auto;
    for &active in hook_order(opts.syscall_hook, compat_wanted) {
        let (outcome, what) = match active {
            ActiveSyscallHook::Fexit => (
                attach_fexit(&mut ebpf, &btf, opts.kind_mask, &mut skipped, &mut attached),
                "fexit",
            ),
            ActiveSyscallHook::SyscallTracepoints => (
                attach_syscall_tracepoints(&mut ebpf, opts.kind_mask, &mut skipped, &mut attached),
                "syscall tracepoints",
            ),
            _ => (
                attach_sys_exit(
                    &mut ebpf,
                    &btf,
                    opts.kind_mask,
                    "on_sys_exit",
                    &mut skipped,
                    &mut warnings,
                    &mut attached,
                )
                .map(|()| Vec::new()),
                "sys_exit",
            ),
        };
        match outcome {
            Ok(absent) => {
                syscall_hook = active;
                unhooked = absent;
                break;
            }
            Err(reason) if auto => hook_refusals.push(format!("{what}: {reason}")),
            Err(reason) => warnings.push(format!(
                "syscall events unavailable: {what}: {reason}; only the process \
                 lifecycle is collected"
            )),
        }
    }
    if auto && syscall_hook == ActiveSyscallHook::None {
        warnings.push(format!(
            "syscall events unavailable ({}); only the process lifecycle is collected",
            hook_refusals.join("; ")
        ));
    }

    // sys_exit sees 32-bit syscalls itself; the per-syscall hooks need a complement:
    // fexit on the ia32 entry points where fexit is the hook (only 32-bit syscalls
    // pay), else a program on sys_exit (every syscall pays a flag test).
    let mut compat_hook = if syscall_hook == ActiveSyscallHook::SysExit {
        ActiveSyscallHook::SysExit
    } else {
        ActiveSyscallHook::None
    };
    if syscall_hook == ActiveSyscallHook::Fexit && compat_wanted {
        match attach_ia32_fexit(&mut ebpf, &btf, opts.kind_mask, &mut attached) {
            Ok(()) => compat_hook = ActiveSyscallHook::Fexit,
            Err(e) => hook_refusals.push(format!("32-bit syscalls on fexit: {e}")),
        }
    }
    if matches!(
        syscall_hook,
        ActiveSyscallHook::Fexit | ActiveSyscallHook::SyscallTracepoints
    ) && compat_wanted
        && compat_hook == ActiveSyscallHook::None
    {
        // Families masked off are already listed in `skipped` by the per-syscall hook.
        let mut skipped_again = Vec::new();
        match attach_sys_exit(
            &mut ebpf,
            &btf,
            opts.kind_mask,
            "on_compat_sys_exit",
            &mut skipped_again,
            &mut warnings,
            &mut attached,
        ) {
            Ok(()) => compat_hook = ActiveSyscallHook::SysExit,
            Err(e) => warnings.push(format!(
                "32-bit syscalls (ia32: 32-bit programs, int 0x80) make no events: \
                 on_compat_sys_exit: {e}"
            )),
        }
    }

    let ring = RingBuf::try_from(ebpf.take_map("events").ok_or_else(|| BpfError::Map {
        name: "events".into(),
        reason: "missing from object".into(),
    })?)
    .map_err(|e| BpfError::Map {
        name: "events".into(),
        reason: e.to_string(),
    })?;
    let drops = PerCpuArray::try_from(ebpf.take_map("drops").ok_or_else(|| BpfError::Map {
        name: "drops".into(),
        reason: "missing from object".into(),
    })?)
    .map_err(|e| BpfError::Map {
        name: "drops".into(),
        reason: e.to_string(),
    })?;
    let wakes_after_quiet = ebpf.map("last_wakeup").is_some();
    Ok(Sensor {
        wakes_after_quiet,
        attachments: std::sync::Arc::new(std::sync::Mutex::new(Attachments::new(ebpf, attached))),
        ring,
        drops,
        warnings,
        syscall_hook,
        hook_refusals,
        unhooked,
        compat_syscalls: compat_hook != ActiveSyscallHook::None,
        compat_hook,
        skipped,
    })
}

/// The hooks to try, in order. Auto takes fexit where the kernel accepts trampolines
/// (watched syscalls cost one program, the others nothing). Without them, where
/// 32-bit syscalls are watched, sys_exit comes before the syscall tracepoints: seeing
/// those calls puts a program on every syscall's sys_exit anyway, and that program can
/// as well dispatch the 64-bit ones, sparing the tracepoints' per-syscall work (the
/// bitmap test on every syscall, a perf record per watched one) and half the programs
/// to verify at start.
fn hook_order(wanted: SyscallHook, compat_wanted: bool) -> &'static [ActiveSyscallHook] {
    use ActiveSyscallHook::{Fexit, SysExit, SyscallTracepoints};
    match wanted {
        SyscallHook::Auto if compat_wanted => &[Fexit, SysExit, SyscallTracepoints],
        SyscallHook::Auto => &[Fexit, SyscallTracepoints, SysExit],
        SyscallHook::Fexit => &[Fexit],
        SyscallHook::SyscallTracepoints => &[SyscallTracepoints],
        SyscallHook::SysExit => &[SysExit],
    }
}

/// Whether the kernel runs 32-bit syscalls: built with ia32 emulation (its 32-bit entry
/// points are in the BTF, under names that changed across versions) and not switched
/// off with `ia32_emulation=` on its command line.
/// (A kernel built with it off by default and not switched on is taken as on: the
/// price is an idle program, not a blind spot.)
fn ia32_emulation(btf: &Btf) -> bool {
    let built = [
        "do_fast_syscall_32",
        "do_int80_syscall_32",
        "ia32_sys_call",
        "__ia32_sys_openat",
    ]
    .iter()
    .any(|name| {
        btf.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func)
            .is_ok()
    });
    built && !ia32_emulation_switched_off(&fs::read_to_string("/proc/cmdline").unwrap_or_default())
}

/// `ia32_emulation=` set false on a kernel command line (the kernel's kstrtobool
/// spellings; the last setting wins).
fn ia32_emulation_switched_off(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .rev()
        .find_map(|arg| arg.strip_prefix("ia32_emulation="))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with('n') || v.starts_with('0') || v.starts_with("of") || v.starts_with('f')
        })
}

/// The io_uring submission program, on the tracepoint that passes the prepared request
/// first: `io_uring_submit_req` since Linux 6.4, `io_uring_submit_sqe` (its old name)
/// on 6.0 to 6.3, such as Debian's 6.1. Before 6.0 `io_uring_submit_sqe` passes the
/// ring first, and the verifier refuses the program's read of it as a request.
/// Optional: kernels without io_uring, or with it configured out, lose only that.
fn attach_io_uring(ebpf: &mut Ebpf, btf: &Btf, attached: &mut Attached) -> Result<(), String> {
    let prog: &mut BtfTracePoint = ebpf
        .program_mut("on_io_uring_submit")
        .ok_or("the BPF object has no on_io_uring_submit program")?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| e.to_string())?;
    let mut loaded = false;
    for tracepoint in IO_URING_SUBMIT_TRACEPOINTS {
        match prog.load(tracepoint, btf) {
            Ok(()) => {
                loaded = true;
                break;
            }
            Err(aya::programs::ProgramError::Btf(aya::BtfError::UnknownBtfTypeName { .. })) => {}
            Err(e) => return Err(format!("{tracepoint}: {e}")),
        }
    }
    if !loaded {
        return Err(format!(
            "this kernel has none of the tracepoints {}",
            IO_URING_SUBMIT_TRACEPOINTS.join(", ")
        ));
    }
    attached
        .attach(ebpf, "on_io_uring_submit", AttachPoint::BtfTracePoint)
        .map_err(|e| e.to_string())
}

/// The io_uring submission tracepoints, newest name first (see [`attach_io_uring`]).
const IO_URING_SUBMIT_TRACEPOINTS: [&str; 2] = ["io_uring_submit_req", "io_uring_submit_sqe"];

/// Loads and attaches the fexit stubs of the syscalls whose kinds are wanted, and
/// returns the watched syscalls this kernel does not implement (e.g. fchmodat2 before
/// Linux 6.6; see [`Sensor::unhooked`]). Err (with the reason) when the
/// object has no stubs or the kernel refuses any: the caller then moves on to the next
/// hook rather than lose the refused syscall. What was attached before the refusal is
/// detached again.
fn attach_fexit(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kind_mask: u64,
    skipped: &mut Vec<&'static str>,
    attached: &mut Attached,
) -> Result<Vec<&'static str>, String> {
    if ebpf.program("fx_openat").is_none() {
        return Err("the BPF object has no fexit programs".into());
    }
    let mut absent = Vec::new();
    let mut loaded = Vec::new();
    let mut skipped_here = Vec::new();
    let mut refusal = None;
    let attached_before = attached.len();
    for (name, _, kinds) in SYSCALLS {
        if !wanted(kinds, kind_mask) {
            skipped_here.push(name);
            continue;
        }
        let program = format!("fx_{name}");
        let function = syscall_function(name);
        let Some(Program::FExit(prog)) = ebpf.program_mut(&program) else {
            refusal = Some(format!("the BPF object has no fexit program {program}"));
            break;
        };
        match prog.load(&function, btf) {
            Ok(()) => loaded.push(program.clone()),
            Err(aya::programs::ProgramError::Btf(aya::BtfError::UnknownBtfTypeName { .. })) => {
                absent.push(name);
                continue;
            }
            Err(e) => {
                refusal = Some(format!("{function}: {e}"));
                break;
            }
        }
        if let Err(e) = attached.attach(ebpf, &program, AttachPoint::FExit) {
            refusal = Some(format!("{function}: {e}"));
            break;
        }
    }
    if refusal.is_some() {
        attached.truncate(attached_before);
    }
    settle(ebpf, refusal, &loaded, skipped_here, skipped, absent)
}

/// Loads each family's `tp_<family>` program whose syscalls are wanted and attaches it
/// to those syscalls' exit tracepoints. Returns and errs as [`attach_fexit`] does;
/// watched syscalls without a tracepoint (init_module on a kernel without module
/// support) are absent.
fn attach_syscall_tracepoints(
    ebpf: &mut Ebpf,
    kind_mask: u64,
    skipped: &mut Vec<&'static str>,
    attached: &mut Attached,
) -> Result<Vec<&'static str>, String> {
    if ebpf.program("tp_open").is_none() {
        return Err("the BPF object has no syscall tracepoint programs".into());
    }
    let dir = syscall_tracepoint_dir()
        .ok_or("the kernel has no syscall tracepoints (CONFIG_FTRACE_SYSCALLS)")?;
    let mut absent = Vec::new();
    let mut loaded = Vec::new();
    let mut skipped_here = Vec::new();
    let mut refusal = None;
    let attached_before = attached.len();
    'families: for (handler, ..) in HANDLERS {
        let family = handler.trim_start_matches("h_");
        let mut events = Vec::new();
        for (name, f, kinds) in SYSCALLS {
            if f != family {
                continue;
            }
            let event = format!("sys_exit_{name}");
            if !wanted(kinds, kind_mask) {
                skipped_here.push(name);
            } else if dir.join(&event).is_dir() {
                events.push(event);
            } else {
                absent.push(name);
            }
        }
        if events.is_empty() {
            continue;
        }
        let program = format!("tp_{family}");
        let Some(Program::TracePoint(prog)) = ebpf.program_mut(&program) else {
            refusal = Some(format!(
                "the BPF object has no tracepoint program {program}"
            ));
            break;
        };
        if let Err(e) = prog.load() {
            refusal = Some(format!("{program}: {e}"));
            break;
        }
        loaded.push(program.clone());
        for event in events {
            let at = AttachPoint::SyscallTracePoint(event.clone());
            if let Err(e) = attached.attach(ebpf, &program, at) {
                refusal = Some(format!("{event}: {e}"));
                break 'families;
            }
        }
    }
    if refusal.is_some() {
        attached.truncate(attached_before);
    }
    settle(ebpf, refusal, &loaded, skipped_here, skipped, absent)
}

/// Whether any of a hook's kinds is enabled in the mask.
fn wanted(kinds: &[u16], kind_mask: u64) -> bool {
    kinds.iter().any(|k| kind_mask & (1u64 << k) != 0)
}

/// Ends an attempt at a per-syscall hook. Taken: the syscalls skipped for their kinds
/// are reported and the absent ones returned. Refused: what was loaded is unloaded
/// (and so detached); a failure there leaves a duplicate hook, not a gap.
fn settle(
    ebpf: &mut Ebpf,
    refusal: Option<String>,
    loaded: &[String],
    skipped_here: Vec<&'static str>,
    skipped: &mut Vec<&'static str>,
    absent: Vec<&'static str>,
) -> Result<Vec<&'static str>, String> {
    let Some(reason) = refusal else {
        skipped.extend(skipped_here);
        return Ok(absent);
    };
    for program in loaded {
        let _ = match ebpf.program_mut(program) {
            Some(Program::FExit(p)) => p.unload(),
            Some(Program::TracePoint(p)) => p.unload(),
            _ => Ok(()),
        };
    }
    Err(reason)
}

/// The wire kinds a 32-bit entry point of [`IA32_ENTRIES`] can emit: its syscall's, or
/// for socketcall those of every socket call it multiplexes.
fn ia32_entry_kinds(native: &str) -> Vec<u16> {
    SYSCALLS
        .iter()
        .filter(|(name, family, _)| {
            if native == "socketcall" {
                matches!(*family, "sock" | "dns") && *name != "write"
            } else {
                *name == native
            }
        })
        .flat_map(|(_, _, kinds)| kinds.iter().copied())
        .collect()
}

/// The family slot of a 32-bit entry point's syscall (socketcall dispatches itself).
fn ia32_entry_family(native: &str) -> Option<&'static str> {
    SYSCALLS
        .iter()
        .find(|(name, ..)| *name == native)
        .map(|(_, family, _)| *family)
}

/// The ia32 entry points the running kernel implements, from /proc/kallsyms: text
/// symbols (`T`/`t`). A syscall configured out or gone from the compat table leaves a
/// weak alias of `sys_ni_syscall` (`W`), which has BTF but refuses fexit. None when
/// kallsyms cannot be read (then every entry point with BTF is tried).
fn ia32_entry_points_implemented() -> Option<std::collections::HashSet<String>> {
    let text = fs::read_to_string("/proc/kallsyms").ok()?;
    let names: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, kind, name) = (fields.next()?, fields.next()?, fields.next()?);
            (matches!(kind, "T" | "t") && name.starts_with("__ia32_")).then(|| name.to_string())
        })
        .collect();
    (!names.is_empty()).then_some(names)
}

/// 32-bit syscalls on fexit: the family handlers `i32h_<family>` (loaded against one
/// ia32 entry point, all of which share a prototype, and put in `ia32_handlers`) and
/// one `i32_<entry>` per ia32 entry point of a wanted syscall, tail-calling them. Entry
/// points this kernel lacks are skipped. Err (with the reason) if the kernel refuses
/// any: what this attached is detached again, and the caller falls back to sys_exit.
fn attach_ia32_fexit(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kind_mask: u64,
    attached: &mut Attached,
) -> Result<(), String> {
    if ebpf.program("i32h_open").is_none() {
        return Err("the BPF object has no ia32 fexit programs".into());
    }
    // The first set of handlers is loaded against the first entry point the kernel
    // implements (those of argument-less syscalls are aliases without BTF of their own,
    // e.g. __ia32_sys_getppid on 6.1); entry points with another BTF prototype get the
    // second set below.
    let implemented = ia32_entry_points_implemented();
    let target = IA32_ENTRIES
        .iter()
        .map(|(entry, _)| format!("__ia32_{entry}"))
        .find(|f| {
            implemented.as_ref().is_none_or(|names| names.contains(f))
                && btf
                    .id_by_type_name_kind(f, aya_obj::btf::BtfKind::Func)
                    .is_ok()
        })
        .ok_or("the kernel's BTF has none of the ia32 entry points")?;
    let target = target.as_str();
    let attached_before = attached.len();
    let mut loaded: Vec<String> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let outcome = (|| -> Result<(), String> {
        load_ia32_handlers(
            ebpf,
            btf,
            kind_mask,
            "i32h_",
            "ia32_handlers",
            target,
            &mut loaded,
        )?;
        // Entry points whose BTF has another prototype than `target`'s go through the
        // second set, loaded against the first of them (see ia32_handlers_b).
        let mut second_set = false;
        for (entry, native) in IA32_ENTRIES {
            if !wanted(&ia32_entry_kinds(native), kind_mask) {
                continue;
            }
            let function = format!("__ia32_{entry}");
            if implemented
                .as_ref()
                .is_some_and(|names| !names.contains(&function))
            {
                continue;
            }
            if native != "socketcall" && ia32_entry_family(native).is_none() {
                return Err(format!("{entry}: {native} is not a watched syscall"));
            }
            let mut outcome = load_fexit(ebpf, btf, &format!("i32_{entry}"), &function)?;
            if matches!(outcome, StubLoad::Refused(_)) {
                if !second_set {
                    load_ia32_handlers(
                        ebpf,
                        btf,
                        kind_mask,
                        "i32hb_",
                        "ia32_handlers_b",
                        &function,
                        &mut loaded,
                    )?;
                    second_set = true;
                }
                outcome = load_fexit(ebpf, btf, &format!("i32b_{entry}"), &function)?;
            }
            // Every entry point the kernel implements is one the 32-bit table may call:
            // one refused would be a blind spot, so then all of them fall back to
            // sys_exit, naming the refused ones.
            match outcome {
                StubLoad::Absent => {}
                StubLoad::Refused(e) => refused.push(format!("{function} ({e})")),
                StubLoad::Loaded(program) => {
                    loaded.push(program.clone());
                    if let Err(e) = attached.attach(ebpf, &program, AttachPoint::FExit) {
                        refused.push(format!("{function} ({})", first_line(&e.to_string())));
                    }
                }
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!("the kernel refused {}", refused.join(", ")))
        }
    })();
    if let Err(reason) = outcome {
        attached.truncate(attached_before);
        settle(
            ebpf,
            Some(reason.clone()),
            &loaded,
            Vec::new(),
            &mut Vec::new(),
            Vec::new(),
        )?;
        return Err(reason);
    }
    Ok(())
}

/// What loading one ia32 stub came to.
enum StubLoad {
    Loaded(String),
    /// The kernel has no such function.
    Absent,
    Refused(String),
}

fn load_fexit(
    ebpf: &mut Ebpf,
    btf: &Btf,
    program: &str,
    function: &str,
) -> Result<StubLoad, String> {
    let Some(Program::FExit(prog)) = ebpf.program_mut(program) else {
        return Err(format!("the BPF object has no fexit program {program}"));
    };
    Ok(match prog.load(function, btf) {
        Ok(()) => StubLoad::Loaded(program.to_string()),
        Err(aya::programs::ProgramError::Btf(aya::BtfError::UnknownBtfTypeName { .. })) => {
            StubLoad::Absent
        }
        Err(e) => StubLoad::Refused(first_line(&e.to_string()).to_string()),
    })
}

/// Loads the wanted families' ia32 handlers (`PREFIX<family>`) against `target` and puts
/// them in the program array `map`.
fn load_ia32_handlers(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kind_mask: u64,
    prefix: &str,
    map: &str,
    target: &str,
    loaded: &mut Vec<String>,
) -> Result<(), String> {
    let mut handler_fds = Vec::new();
    for (name, slot, _, kinds) in HANDLERS {
        if !wanted(kinds, kind_mask) {
            continue;
        }
        let program = format!("{prefix}{}", name.trim_start_matches("h_"));
        let Some(Program::FExit(prog)) = ebpf.program_mut(&program) else {
            return Err(format!("the BPF object has no fexit program {program}"));
        };
        prog.load(target, btf)
            .map_err(|e| format!("{program} on {target}: {}", first_line(&e.to_string())))?;
        loaded.push(program.clone());
        let fd = prog
            .fd()
            .and_then(|fd| fd.try_clone().map_err(Into::into))
            .map_err(|e| format!("{program}: {e}"))?;
        handler_fds.push((slot, fd));
    }
    fill_program_array(ebpf, map, &handler_fds)
}

/// Puts the handlers' programs in the object's program array `map`, by slot. The array
/// stays owned by `ebpf`: the kernel empties a program array when its last user-space
/// reference closes.
fn fill_program_array(
    ebpf: &mut Ebpf,
    map: &str,
    handler_fds: &[(u32, aya::programs::ProgramFd)],
) -> Result<(), String> {
    let map = ebpf
        .map_mut(map)
        .ok_or_else(|| format!("the BPF object has no {map} map"))?;
    let mut handlers: ProgramArray<&mut MapData> =
        ProgramArray::try_from(map).map_err(|e| e.to_string())?;
    for (slot, fd) in handler_fds {
        handlers.set(*slot, fd, 0).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// An error's first line, up to the verifier's log.
fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    line.split(". Verifier output").next().unwrap_or(line)
}

/// A sys_exit dispatcher plus its tail-called family handlers: `on_sys_exit`, the
/// fallback hook for every syscall, or `on_compat_sys_exit`, beside the per-syscall
/// hooks, for 32-bit syscalls only.
fn attach_sys_exit(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kind_mask: u64,
    dispatcher: &str,
    skipped: &mut Vec<&'static str>,
    warnings: &mut Vec<String>,
    attached: &mut Attached,
) -> Result<(), String> {
    let mut handler_fds = Vec::new();
    for (name, slot, what, kinds) in HANDLERS {
        if !wanted(kinds, kind_mask) {
            skipped.push(name);
            continue;
        }
        let res = (|| -> Result<_, aya::programs::ProgramError> {
            let prog = ebpf
                .program_mut(name)
                .ok_or(aya::programs::ProgramError::NotLoaded)?;
            load_sys_exit(prog, btf)?;
            Ok(prog.fd()?.try_clone()?)
        })();
        match res {
            Ok(fd) => handler_fds.push((slot, fd)),
            Err(e) => warnings.push(format!("{what} unavailable: {name}: {e}")),
        }
    }
    fill_program_array(ebpf, "handlers", &handler_fds)?;
    let prog = ebpf
        .program_mut(dispatcher)
        .ok_or_else(|| format!("the BPF object has no {dispatcher} program"))?;
    load_sys_exit(prog, btf).map_err(|e| e.to_string())?;
    let at = match prog {
        Program::RawTracePoint(_) => AttachPoint::RawTracePoint("sys_exit"),
        _ => AttachPoint::BtfTracePoint,
    };
    attached
        .attach(ebpf, dispatcher, at)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_hz_reads_the_tick_rate() {
        let config =
            "# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\nCONFIG_HZ_PERIODIC=y\n";
        assert_eq!(super::config_hz(config), Some(250));
        assert_eq!(super::config_hz("CONFIG_HZ_1000=y\n"), None);
        assert_eq!(super::config_hz("CONFIG_HZ=0\n"), None);
        assert_eq!(super::config_hz("CONFIG_HZ=fast\n"), None);
    }

    #[test]
    fn fold_window_rounds_up_to_whole_ticks() {
        use std::time::Duration;
        assert_eq!(super::window_in_jiffies(Duration::from_secs(1), 250), 250);
        assert_eq!(
            super::window_in_jiffies(Duration::from_millis(1001), 250),
            251
        );
        assert_eq!(super::window_in_jiffies(Duration::from_micros(1), 100), 1);
        assert_eq!(super::window_in_jiffies(Duration::MAX, 1000), u64::MAX);
    }

    use super::*;

    #[test]
    fn ia32_emulation_switched_off_by_the_last_setting_on_the_command_line() {
        for (cmdline, off) in [
            ("", false),
            ("root=/dev/vda1 ro quiet", false),
            ("ia32_emulation=0", true),
            ("quiet ia32_emulation=false", true),
            ("ia32_emulation=N", true),
            ("ia32_emulation=off", true),
            ("ia32_emulation=1", false),
            ("ia32_emulation=on", false),
            ("ia32_emulation=y", false),
            ("ia32_emulation=0 ia32_emulation=1", false),
            ("ia32_emulation=1 ia32_emulation=0", true),
            ("xia32_emulation=0", false),
        ] {
            assert_eq!(ia32_emulation_switched_off(cmdline), off, "{cmdline:?}");
        }
    }

    #[test]
    fn syscall_hook_names_parse_with_either_separator() {
        for (text, hook) in [
            ("auto", SyscallHook::Auto),
            ("fexit", SyscallHook::Fexit),
            ("syscall_tracepoints", SyscallHook::SyscallTracepoints),
            ("syscall-tracepoints", SyscallHook::SyscallTracepoints),
            ("sys-exit", SyscallHook::SysExit),
        ] {
            assert_eq!(text.parse::<SyscallHook>().ok(), Some(hook), "{text}");
        }
        let err = "kprobe".parse::<SyscallHook>().unwrap_err().to_string();
        assert!(
            err.contains("\"kprobe\"") && err.contains("sys_exit"),
            "{err}"
        );
    }

    /// The loader's syscall table and the object's fexit stubs must agree: a stub with
    /// no table entry would never be attached, an entry with no stub would make the
    /// loader fall back to sys_exit on every kernel. Checked on the committed object,
    /// without a kernel (the test machine's kernel refuses fexit programs).
    #[test]
    fn every_fexit_stub_has_a_table_entry_and_back() {
        let object = aya_obj::Object::parse(OBJECT).expect("committed object parses");
        let mut stubs: Vec<&str> = object
            .programs
            .iter()
            .filter(|(_, p)| matches!(p.section, aya_obj::ProgramSection::FExit { .. }))
            .map(|(name, _)| name.as_str())
            .filter(|name| name.starts_with("fx_"))
            .collect();
        stubs.sort_unstable();
        let mut table: Vec<String> = SYSCALLS.iter().map(|(n, ..)| format!("fx_{n}")).collect();
        table.sort_unstable();
        assert_eq!(stubs, table);
        for (name, family, kinds) in SYSCALLS {
            assert!(!kinds.is_empty(), "{name} emits no kind");
            let handler = format!("h_{family}");
            let (.., family_kinds) = HANDLERS
                .iter()
                .find(|(h, ..)| *h == handler)
                .unwrap_or_else(|| panic!("{name}: no family handler {handler}"));
            assert!(
                kinds.iter().all(|k| family_kinds.contains(k)),
                "{name} emits kinds its family {family} does not list"
            );
            assert!(
                object.programs.contains_key(&format!("tp_{family}")),
                "{name}: no tracepoint program tp_{family}"
            );
        }
    }

    /// The same for the 32-bit entry points: every `i32_<entry>` program has an
    /// [`IA32_ENTRIES`] row naming a watched syscall (or socketcall), and back; every
    /// family has its `i32h_<family>` handler.
    #[test]
    fn every_ia32_stub_has_a_table_entry_and_back() {
        let object = aya_obj::Object::parse(OBJECT).expect("committed object parses");
        let fexit = |name: &str| {
            object
                .programs
                .get(name)
                .is_some_and(|p| matches!(p.section, aya_obj::ProgramSection::FExit { .. }))
        };
        for prefix in ["i32_", "i32b_"] {
            let mut stubs: Vec<&str> = object
                .programs
                .keys()
                .map(String::as_str)
                .filter(|name| name.starts_with(prefix))
                .collect();
            stubs.sort_unstable();
            let mut table: Vec<String> = IA32_ENTRIES
                .iter()
                .map(|(entry, _)| format!("{prefix}{entry}"))
                .collect();
            table.sort_unstable();
            assert_eq!(stubs, table);
        }
        for (entry, native) in IA32_ENTRIES {
            assert!(
                fexit(&format!("i32_{entry}")),
                "{entry} is not an fexit program"
            );
            assert!(
                !ia32_entry_kinds(native).is_empty(),
                "{entry}: {native} is not a watched syscall"
            );
        }
        for (handler, ..) in HANDLERS {
            let family = handler.trim_start_matches("h_");
            assert!(fexit(&format!("i32h_{family}")), "no i32h_{family}");
            assert!(fexit(&format!("i32hb_{family}")), "no i32hb_{family}");
        }
    }
}
