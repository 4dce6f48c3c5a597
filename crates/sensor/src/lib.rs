//! The node sensor: loads the kernel programs, decodes their records into typed
//! [`rampart_event::Event`]s with the process (and its ancestry) and the container
//! attached, and hands them to a consumer through a bounded queue. Every loss point is
//! counted ([`Stats`]) and shows up in the stream as a `lost` event.
//!
//! It does not know what happens to events afterwards (detection, output).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cgroups;
pub mod containerd;
pub mod containers;
pub mod cri;
pub mod decode;
pub mod environ;
pub mod proctree;
mod receiver;

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_event::{Event, EventKind, LossSource, Payload};

pub use containerd::ContainerdWatcher;
pub use containers::{ContainerCache, DockerWatcher};
pub use decode::Decoder;
pub use receiver::EventReceiver;

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error(transparent)]
    Bpf(#[from] rampart_bpf::BpfError),
    #[error("starting the sensor: {0}")]
    Start(String),
}

/// Counters for every place events can be lost, plus throughput.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: AtomicU64,
    pub events: AtomicU64,
    pub decode_errors: AtomicU64,
    /// Kernel ring buffer was full.
    pub kernel_ring_full: AtomicU64,
    /// Shed in the kernel to keep room for process lifecycle events.
    pub kernel_shed: AtomicU64,
    /// Repeated read-only opens counted into a later event (`repeats`), not lost.
    pub opens_folded: AtomicU64,
    /// Cgroup pairs named by kernfs handle because their names were not known (see
    /// [`cgroups::CgroupNames`]): the hierarchies' roots once, and otherwise none.
    pub cgroup_lookups: AtomicU64,
    /// The queue to the consumer was full.
    pub queue_drops: AtomicU64,
    /// The consumer could not write (e.g. disk full).
    pub output_drops: AtomicU64,
    pub output_errors: AtomicU64,
    pub processes: AtomicU64,
    pub containers: AtomicU64,
    /// Per-CPU kernel drops: (cpu, ring full, shed).
    pub kernel_per_cpu: std::sync::Mutex<Vec<(u32, u64, u64)>>,
    /// Where syscall events come from (set once at start).
    pub syscall_hook: std::sync::OnceLock<rampart_bpf::ActiveSyscallHook>,
    /// Watched syscalls that hook cannot see here (set once at start).
    pub unhooked_syscalls: std::sync::OnceLock<Vec<&'static str>>,
    /// Syscalls made through the 32-bit entry make events (set once at start).
    pub compat_syscalls: std::sync::OnceLock<bool>,
}

/// A point-in-time copy of [`Stats`], serializable for `--stats`.
#[derive(Debug, Clone, serde::Serialize, Default)]
pub struct StatsSnapshot {
    pub records: u64,
    pub events: u64,
    pub decode_errors: u64,
    pub kernel_ring_full: u64,
    pub kernel_shed: u64,
    /// Repeated read-only opens counted into a later event's `repeats` (not a loss).
    pub opens_folded: u64,
    /// Cgroup pairs named by kernfs handle (see [`Stats::cgroup_lookups`]).
    pub cgroup_lookups: u64,
    pub queue_drops: u64,
    pub output_drops: u64,
    pub output_errors: u64,
    pub processes: u64,
    pub containers: u64,
    /// Per-CPU kernel drops: (cpu, ring full, shed).
    pub kernel_drops_per_cpu: Vec<(u32, u64, u64)>,
    /// `fexit`; where the kernel refuses BPF trampolines `sys_exit` when 32-bit
    /// syscalls are watched, else `syscall_tracepoints` (`sys_exit` without those).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall_hook: Option<rampart_bpf::ActiveSyscallHook>,
    /// Watched syscalls this kernel does not implement, so the hook cannot see them
    /// (their calls fail with ENOSYS; see [`rampart_bpf::Sensor::unhooked`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unhooked_syscalls: Vec<&'static str>,
    /// Syscalls made through the 32-bit entry (32-bit programs, int 0x80) make events
    /// (see [`rampart_bpf::Sensor::compat_syscalls`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compat_syscalls: Option<bool>,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            records: g(&self.records),
            events: g(&self.events),
            decode_errors: g(&self.decode_errors),
            kernel_ring_full: g(&self.kernel_ring_full),
            kernel_shed: g(&self.kernel_shed),
            opens_folded: g(&self.opens_folded),
            cgroup_lookups: g(&self.cgroup_lookups),
            queue_drops: g(&self.queue_drops),
            output_drops: g(&self.output_drops),
            output_errors: g(&self.output_errors),
            processes: g(&self.processes),
            containers: g(&self.containers),
            kernel_drops_per_cpu: self
                .kernel_per_cpu
                .lock()
                .map(|v| v.clone())
                .unwrap_or_default(),
            syscall_hook: self.syscall_hook.get().copied(),
            unhooked_syscalls: self.unhooked_syscalls.get().cloned().unwrap_or_default(),
            compat_syscalls: self.compat_syscalls.get().copied(),
        }
    }
}

/// Default for [`SensorConfig::open_repeat_window`]: a file a process keeps
/// re-reading (a config file, /proc/self/status) makes one event a second.
pub const DEFAULT_OPEN_REPEAT_WINDOW: Duration = Duration::from_secs(1);

/// What the sensor collects and how.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Only these kinds are emitted (and collected in the kernel); `None` = all.
    pub kinds: Option<HashSet<EventKind>>,
    /// Only events from containers whose id (prefix) or name matches.
    pub container: Option<String>,
    /// Drop read-only opens of shared libraries in the kernel.
    pub filter_ro_libs: bool,
    /// Fold a process's repeated read-only opens of a file into one event per window
    /// (see [`rampart_bpf::LoadOptions::open_repeat_window`]); zero reports each.
    pub open_repeat_window: Duration,
    /// Queue length between the reader and the consumer.
    pub queue_capacity: usize,
    /// Follow Docker for container metadata.
    pub docker: bool,
    /// Follow containerd (its API socket) for container metadata, beside Docker or
    /// without it; `None` leaves it alone.
    pub containerd_socket: Option<std::path::PathBuf>,
    /// The Kubernetes node name put on pods' identity (the DaemonSet passes
    /// `spec.nodeName`); the host name when empty.
    pub k8s_node: String,
    /// Kernel ring buffer size in bytes.
    pub ring_bytes: u32,
    /// Docker's state directory (`DockerRootDir`), read for metadata of new containers.
    pub docker_root: std::path::PathBuf,
    /// A BPF object to load instead of the embedded one (benchmarks of local builds).
    pub bpf_object: Option<Vec<u8>>,
    /// How syscalls are hooked (the default takes the cheapest the kernel allows).
    pub syscall_hook: rampart_bpf::SyscallHook,
    /// Watch syscalls made through the 32-bit entry where the hook misses them (see
    /// [`rampart_bpf::LoadOptions::compat_syscalls`]).
    pub compat_syscalls: bool,
    /// Longest a record waits in the ring while events flow: the reader's timer. Each
    /// drain is one batch through every thread of the pipeline, so a longer one costs
    /// fewer wake-ups per event and adds that much latency to alerts.
    pub drain_interval: Duration,
}

/// The reader's timer when nothing needs alerts within a few milliseconds.
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_millis(10);
/// The reader's timer where an action waits for the alert (a response policy, kill
/// rules decided in user space): the drain is most of its latency.
pub const LOW_LATENCY_DRAIN_INTERVAL: Duration = Duration::from_millis(3);

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            kinds: None,
            container: None,
            filter_ro_libs: true,
            open_repeat_window: DEFAULT_OPEN_REPEAT_WINDOW,
            queue_capacity: 65_536,
            docker: true,
            containerd_socket: Some(containerd::DEFAULT_SOCKET.into()),
            k8s_node: String::new(),
            ring_bytes: 16 * 1024 * 1024,
            docker_root: "/var/lib/docker".into(),
            bpf_object: None,
            syscall_hook: rampart_bpf::SyscallHook::Auto,
            compat_syscalls: true,
            drain_interval: DEFAULT_DRAIN_INTERVAL,
        }
    }
}

/// Which wire kinds feed an event kind (for the kernel-side mask).
fn wire_kinds(k: EventKind) -> &'static [u16] {
    use rampart_bpf::wire::kind as w;
    match k {
        EventKind::Exec => &[w::EXEC],
        EventKind::Fork => &[w::FORK],
        EventKind::Exit => &[w::EXIT],
        EventKind::FileOpen | EventKind::ProcMemWrite => &[w::OPEN],
        EventKind::FileUnlink => &[w::UNLINK],
        EventKind::FileRename => &[w::RENAME],
        EventKind::FileLink => &[w::LINK],
        EventKind::FileChmod => &[w::CHMOD],
        EventKind::FileChown => &[w::CHOWN],
        EventKind::FileTruncate => &[w::TRUNCATE],
        EventKind::NetConnect => &[w::CONNECT],
        EventKind::NetAccept => &[w::ACCEPT],
        EventKind::NetBind => &[w::BIND],
        EventKind::NetListen => &[w::LISTEN],
        EventKind::DnsQuery => &[w::DNS],
        EventKind::SetId => &[w::SETID],
        EventKind::Capset => &[w::CAPSET],
        EventKind::Ptrace => &[w::PTRACE],
        EventKind::ProcessVm => &[w::PROCESS_VM],
        EventKind::IoUring => &[w::IO_URING],
        EventKind::ExecFailed => &[w::EXEC_FAILED],
        EventKind::FileOpenByHandle => &[w::OPEN_BY_HANDLE],
        EventKind::ProcessRename => &[w::RENAME_PROC],
        EventKind::Chroot => &[w::CHROOT],
        EventKind::Mount => &[w::MOUNT],
        EventKind::Umount => &[w::UMOUNT],
        EventKind::Namespace => &[w::UNSHARE, w::SETNS],
        EventKind::ModuleLoad => &[w::INIT_MODULE, w::FINIT_MODULE],
        EventKind::Bpf => &[w::BPF],
        EventKind::MemfdCreate => &[w::MEMFD],
        EventKind::Socket => &[w::SOCKET],
        EventKind::FdDup => &[w::DUP],
        EventKind::Lost | EventKind::Admission => &[],
    }
}

/// Kernel kind mask for a kind filter. Lifecycle and chdir records are always
/// collected: the process tree (and so ancestry) depends on them.
pub fn kind_mask(kinds: Option<&HashSet<EventKind>>) -> u64 {
    use rampart_bpf::wire::kind as w;
    let Some(kinds) = kinds else {
        return !0;
    };
    let mut m = (1u64 << w::EXEC) | (1 << w::FORK) | (1 << w::EXIT) | (1 << w::CHDIR);
    for k in kinds {
        for wk in wire_kinds(*k) {
            m |= 1 << wk;
        }
    }
    m
}

/// Boot-time clock offset: wall-clock ns at boot.
pub fn boot_wall_ns() -> u64 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec for the call.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    now(libc::CLOCK_REALTIME).saturating_sub(now(libc::CLOCK_BOOTTIME))
}

fn boot_time_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// First 8 hex digits of the boot id: makes exec ids unique across reboots and hosts.
pub fn boot_id_prefix() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().replace('-', "").chars().take(8).collect())
        .unwrap_or_else(|_| "00000000".into())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// A running sensor. Events arrive on [`RunningSensor::events`].
pub struct RunningSensor {
    pub events: EventReceiver,
    /// Containers starting, stopping and dying (Docker's events stream; nothing
    /// without Docker).
    pub lifecycle: Receiver<rampart_event::ContainerLifecycle>,
    pub stats: Arc<Stats>,
    pub containers: ContainerCache,
    /// Optional event families this kernel lacks.
    pub warnings: Vec<String>,
    /// Detaches and re-attaches the kernel programs (for measuring the sensor against
    /// itself detached, as `rampart bench overhead` does).
    pub hook_switch: rampart_bpf::HookSwitch,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl RunningSensor {
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RunningSensor {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Clone)]
struct Filter {
    kinds: Option<HashSet<EventKind>>,
    container: Option<String>,
}

impl Filter {
    /// The final decision, on an event whose container metadata is as complete as it
    /// will get.
    fn keep(&self, ev: &Event) -> bool {
        self.decide(ev, false)
    }

    /// At decode time, in the reader: drops what cannot match. An event of a
    /// container whose metadata is still on its way may yet match by name, so it
    /// goes on to the attribution thread, which decides with [`Filter::keep`].
    fn keep_early(&self, ev: &Event) -> bool {
        self.decide(ev, true)
    }

    fn decide(&self, ev: &Event, undecided_passes: bool) -> bool {
        if ev.kind() == EventKind::Lost {
            return true; // losses are never filtered away
        }
        if !self.kinds.as_ref().is_none_or(|k| k.contains(&ev.kind())) {
            return false;
        }
        let Some(want) = &self.container else {
            return true;
        };
        let Some(c) = ev.container.container() else {
            return want == "host";
        };
        c.id.starts_with(want.as_str())
            || c.name == *want
            || (undecided_passes && !c.metadata_complete)
    }
}

/// An event kind or family name the sensor does not know.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown event kind {given:?}; expected one of: process, file, net, privilege, kernel, {}",
    known_kinds()
)]
pub struct KindsError {
    pub given: String,
}

fn known_kinds() -> String {
    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    names.join(", ")
}

/// Parses kind and family names (`exec`, `file`, …) into the set [`SensorConfig::kinds`]
/// takes; empty means every kind (`None`).
pub fn parse_kinds(kinds: &[String]) -> Result<Option<HashSet<EventKind>>, KindsError> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let mut set = HashSet::new();
    for k in kinds {
        let k = k.trim();
        let parsed = EventKind::parse_filter(k).ok_or_else(|| KindsError {
            given: k.to_string(),
        })?;
        set.extend(parsed);
    }
    Ok(Some(set))
}

/// Fills the cache from CRI-O's state file of container `id`; true when found.
fn crio_fetch(crio: Option<&cri::CrioStateDir>, cache: &ContainerCache, id: &str) -> bool {
    let Some(dir) = crio else { return false };
    match dir.container(id) {
        Ok(Some(c)) => {
            cache.insert(c);
            true
        }
        Ok(None) => false,
        Err(err) => {
            tracing::warn!(%err, "CRI-O container state not read");
            false
        }
    }
}

/// Starts the sensor: probes, mounts what is missing, loads the programs, seeds the
/// process tree, follows Docker, and starts the reader thread.
pub fn start(cfg: SensorConfig) -> Result<RunningSensor, SensorError> {
    rampart_bpf::check_requirements()?;
    for m in rampart_bpf::mount_kernel_filesystems()? {
        tracing::info!(mounted = %m, "mounted a kernel filesystem the sensor needs");
    }
    let containers = ContainerCache::default();
    containers.set_node(&if cfg.k8s_node.is_empty() {
        hostname()
    } else {
        cfg.k8s_node.clone()
    });
    let stats = Arc::new(Stats::default());
    let mut decoder = Decoder::new(
        hostname().into(),
        boot_id_prefix(),
        boot_wall_ns(),
        containers.clone(),
    );
    decoder.read_hook_environment();

    // CRI-O has no watcher here: its containers are read from its state files, all
    // of them at start, then each one the kernel names that the cache lacks.
    let crio = std::path::Path::new(cri::CRIO_STORAGE_ROOT)
        .join("overlay-containers")
        .is_dir()
        .then(|| cri::CrioStateDir::new(std::path::Path::new(cri::CRIO_STORAGE_ROOT)));
    if let Some(dir) = &crio {
        let listed = dir.list();
        tracing::info!(containers = listed.len(), "CRI-O state files read");
        for c in listed {
            containers.insert(c);
        }
    }

    let (lifecycle_tx, lifecycle_rx) = std::sync::mpsc::channel();
    let runtime = if cfg.docker || cfg.containerd_socket.is_some() {
        Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .thread_name("rampart-runtimes")
                .build()
                .map_err(|e| SensorError::Start(e.to_string()))?,
        )
    } else {
        None
    };
    if let (Some(rt), Some(socket)) = (&runtime, &cfg.containerd_socket) {
        follow_containerd(rt, socket, &cfg, &containers, &lifecycle_tx);
        decoder.recognise_containerd_cgroups();
    }
    if let Some(rt) = runtime.as_ref().filter(|_| cfg.docker) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.spawn(
            DockerWatcher::new(containers.clone(), Duration::from_secs(30))
                .with_lifecycle(lifecycle_tx.clone())
                .run(Some(tx)),
        );
        match rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), rx).await }) {
            Ok(Ok(Ok(n))) => tracing::info!(containers = n, "docker metadata ready"),
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "docker API unavailable: containers are named by id only until it answers")
            }
            _ => tracing::warn!("docker API did not answer in 10 s; continuing"),
        }
        // Metadata for containers the cache lacks is fetched off the reader thread;
        // the attributor stage waits (bounded) for it.
        let (fetch_tx, mut fetch_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let cache = containers.clone();
        rt.spawn(async move {
            let mut docker = None;
            while let Some(id) = fetch_rx.recv().await {
                if cache.contains(&id) {
                    continue;
                }
                if docker.is_none() {
                    docker = bollard::Docker::connect_with_local_defaults().ok();
                }
                if let Some(d) = &docker {
                    let (d, cache) = (d.clone(), cache.clone());
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(2),
                            DockerWatcher::refresh(&d, &cache, &id),
                        )
                        .await;
                    });
                }
            }
        });
        let (crio, cache) = (crio.clone(), containers.clone());
        decoder.set_metadata_fetch(Box::new(move |id: &str| {
            if crio_fetch(crio.as_ref(), &cache, id) {
                return true;
            }
            let _ = fetch_tx.send(id.to_string());
            false
        }));
    } else if crio.is_some() {
        let cache = containers.clone();
        decoder.set_metadata_fetch(Box::new(move |id: &str| {
            crio_fetch(crio.as_ref(), &cache, id)
        }));
    }

    let opts = rampart_bpf::LoadOptions {
        kind_mask: kind_mask(cfg.kinds.as_ref()),
        filter_ro_libs: cfg.filter_ro_libs,
        open_repeat_window: cfg.open_repeat_window,
        ring_bytes: cfg.ring_bytes,
        object: cfg.bpf_object.clone(),
        syscall_hook: cfg.syscall_hook,
        compat_syscalls: cfg.compat_syscalls,
        ..Default::default()
    };
    let bpf = rampart_bpf::load(&opts)?;
    let warnings = bpf.warnings.clone();
    let hook_switch = bpf.hook_switch();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let _ = stats.syscall_hook.set(bpf.syscall_hook);
    let refused = bpf.hook_refusals.join("; ");
    match bpf.syscall_hook {
        // Beside 32-bit syscalls sys_exit is the cheapest hook without trampolines.
        rampart_bpf::ActiveSyscallHook::SysExit if !refused.is_empty() && bpf.compat_syscalls => {
            tracing::info!(
                "syscall events, 32-bit ones included, come from the sys_exit tracepoint \
                 (cheaper here than syscall tracepoints beside a 32-bit hook on every \
                 syscall); refused: {refused}"
            )
        }
        rampart_bpf::ActiveSyscallHook::SysExit if !refused.is_empty() => tracing::warn!(
            "cheaper syscall hooks refused ({refused}): syscall events come from the \
             sys_exit tracepoint, which every syscall on the host pays for"
        ),
        hook if !refused.is_empty() => {
            tracing::info!(
                ?hook,
                "syscall events hooked; cheaper hooks refused: {refused}"
            )
        }
        hook => tracing::info!(?hook, "syscall events hooked"),
    }
    if !bpf.unhooked.is_empty() {
        tracing::warn!(
            unhooked = ?bpf.unhooked,
            "this kernel does not implement these watched syscalls, so the {:?} hook \
             cannot see them: calls to them fail with ENOSYS and make no event (the \
             sys_exit hook would see those attempts, at a cost to every syscall)",
            bpf.syscall_hook
        );
    }
    let _ = stats.unhooked_syscalls.set(bpf.unhooked.clone());
    let _ = stats.compat_syscalls.set(bpf.compat_syscalls);
    if bpf.compat_syscalls {
        tracing::info!(
            compat_hook = ?bpf.compat_hook,
            "32-bit syscalls (32-bit programs, int 0x80) are watched"
        );
    } else if cfg.compat_syscalls
        && bpf.warnings.is_empty()
        && bpf.syscall_hook != rampart_bpf::ActiveSyscallHook::None
    {
        tracing::info!("this kernel runs no 32-bit syscalls (no ia32 emulation)");
    } else if !cfg.compat_syscalls && bpf.syscall_hook != rampart_bpf::ActiveSyscallHook::None {
        tracing::warn!(
            "32-bit syscalls (32-bit programs, int 0x80) are not watched \
             (--no-compat-syscalls): a process can open, connect or ptrace through them unseen"
        );
    }
    if !bpf.skipped.is_empty() {
        tracing::info!(skipped = ?bpf.skipped, "syscall hooks not loaded: their kinds are filtered out");
    }
    // Seed after attaching so nothing started in between is missed.
    let seeded = decoder.tree.seed_from_proc();
    tracing::info!(processes = seeded, "process tree seeded from /proc");

    let (raw_tx, raw_rx) = sync_channel(RAW_QUEUE_BATCHES);
    let queued = Arc::new(AtomicUsize::new(0));
    let queue = RawQueue {
        tx: raw_tx,
        queued: queued.clone(),
        capacity: cfg.queue_capacity.max(16),
    };
    // Batches, one per ring drain: the bound in batches keeps roughly the configured
    // number of events in flight at the batch size a busy sensor drains.
    let (out_tx, rx) = sync_channel((cfg.queue_capacity / OUT_BATCH_EVENTS).max(16));
    let stop = Arc::new(AtomicBool::new(false));
    let filter = Filter {
        kinds: cfg.kinds.clone(),
        container: cfg.container.clone(),
    };
    {
        let cache = containers.clone();
        let docker_root = cfg.docker.then(|| cfg.docker_root.clone());
        let wait = if cfg.docker || cfg.containerd_socket.is_some() {
            Duration::from_millis(3000)
        } else {
            Duration::ZERO
        };
        std::thread::Builder::new()
            .name("rampart-attrib".into())
            .spawn({
                let filter = filter.clone();
                move || attribute_loop(raw_rx, queued, out_tx, filter, cache, wait, docker_root)
            })
            .map_err(|e| SensorError::Start(e.to_string()))?;
    }
    let drain_ms = i32::try_from(cfg.drain_interval.as_millis())
        .unwrap_or(i32::MAX)
        .clamp(1, QUIET_POLL_MS);
    let reader = {
        let stats = stats.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("rampart-reader".into())
            .spawn(move || read_loop(bpf, decoder, queue, filter, stats, stop, drain_ms))
            .map_err(|e| SensorError::Start(e.to_string()))?
    };
    // Only the watcher holds a sender: without Docker the channel is closed and empty.
    drop(lifecycle_tx);
    Ok(RunningSensor {
        events: EventReceiver::new(rx),
        lifecycle: lifecycle_rx,
        stats,
        containers,
        warnings,
        hook_switch,
        stop,
        reader: Some(reader),
        _runtime: runtime,
    })
}

/// Starts the containerd watcher; waits (bounded) for its first listing when the
/// socket is there, so containers that existed before the sensor are named at once.
fn follow_containerd(
    rt: &tokio::runtime::Runtime,
    socket: &std::path::Path,
    cfg: &SensorConfig,
    containers: &ContainerCache,
    lifecycle_tx: &std::sync::mpsc::Sender<rampart_event::ContainerLifecycle>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Docker's own containers (containerd namespace `moby`) are named by the Docker
    // watcher, so each container is named once.
    let skip = cfg.docker.then(|| "moby".to_string());
    rt.spawn(
        ContainerdWatcher::new(
            socket.to_path_buf(),
            containers.clone(),
            Duration::from_secs(30),
        )
        .skip_namespaces(skip)
        .with_lifecycle(lifecycle_tx.clone())
        .run(Some(tx)),
    );
    if !socket.exists() {
        tracing::debug!(socket = %socket.display(), "no containerd socket; watching for one");
        return;
    }
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), rx).await }) {
        Ok(Ok(Ok(n))) => {
            tracing::info!(containers = n, socket = %socket.display(), "containerd metadata ready")
        }
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "containerd API unavailable: its containers are named by id only until it answers")
        }
        _ => tracing::warn!("containerd API did not answer in 10 s; continuing"),
    }
}

/// The reader's hand-off to the attribution thread. Events travel in batches, one per
/// ring drain: at low rates a wake-up per event cost the sensor more than decoding the
/// event. The bound is in events, as `queue_capacity` says.
struct RawQueue {
    tx: SyncSender<Vec<Event>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// Batches in flight at most; each holds at least one event, and the event bound is
/// what normally stops the reader.
const RAW_QUEUE_BATCHES: usize = 1024;

/// The batch size the bound of the consumer's queue assumes (see `start`).
const OUT_BATCH_EVENTS: usize = 256;

impl RawQueue {
    /// Room for one more event beside the `building` already in the next batch?
    fn has_room(&self, building: usize) -> bool {
        self.queued.load(Ordering::Relaxed) + building < self.capacity
    }

    /// Hands a batch over without blocking. False when the attribution thread is gone.
    fn offer(&self, batch: Vec<Event>, stats: &Stats, pending_queue_loss: &mut u64) -> bool {
        let n = batch.len();
        self.queued.fetch_add(n, Ordering::Relaxed);
        match self.tx.try_send(batch) {
            Ok(()) => {
                stats.events.fetch_add(n as u64, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                stats.queue_drops.fetch_add(n as u64, Ordering::Relaxed);
                *pending_queue_loss += n as u64;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Hands one event over, waiting for room: a loss report must not itself be lost.
    /// False when stopping or the attribution thread is gone.
    fn send_waiting(&self, ev: Event, stop: &AtomicBool) -> bool {
        let mut batch = vec![ev];
        loop {
            self.queued.fetch_add(1, Ordering::Relaxed);
            match self.tx.try_send(batch) {
                Ok(()) => return true,
                Err(TrySendError::Full(back)) => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    batch = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
    }
}

/// After this long without a record the stream counts as quiet: the reader sleeps
/// until the kernel wakes it (longer than WAKEUP_IDLE_NS in bpf/rampart.h, so the
/// first record after the quiet spell always does).
const QUIET_AFTER: Duration = Duration::from_millis(30);
/// The reader's timer while quiet: counters and loss reports still tick.
const QUIET_POLL_MS: i32 = 100;

fn read_loop(
    mut bpf: rampart_bpf::Sensor,
    mut decoder: Decoder,
    queue: RawQueue,
    filter: Filter,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    // Longest a record waits in the ring while events flow (the kernel wakes the
    // reader only for batches, or for the first event after a quiet spell).
    drain_ms: i32,
) {
    let fd = bpf.ring.as_raw_fd();
    let (mut last_full, mut last_shed) = (0u64, 0u64);
    let mut pending_queue_loss = 0u64;
    let mut last_tick = Instant::now();
    let mut last_trim = Instant::now();
    let mut last_record = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // See submit() in the BPF C for when the kernel wakes us. A quiet sensor
        // wakes ten times a second instead of 333.
        let timeout = if bpf.wakes_after_quiet && last_record.elapsed() > QUIET_AFTER {
            QUIET_POLL_MS
        } else {
            drain_ms
        };
        // SAFETY: pfd is a valid pollfd array of length 1 for the call.
        unsafe { libc::poll(&mut pfd, 1, timeout) };
        let mut n = 0;
        let mut batch = Vec::new();
        while let Some(item) = bpf.ring.next() {
            stats.records.fetch_add(1, Ordering::Relaxed);
            match decoder.decode(&item) {
                Ok(Some(ev)) if filter.keep_early(&ev) => {
                    if queue.has_room(batch.len()) {
                        batch.push(ev);
                    } else {
                        stats.queue_drops.fetch_add(1, Ordering::Relaxed);
                        pending_queue_loss += 1;
                    }
                }
                Ok(_) => {} // filtered out, or internal (the process tree took it)
                Err(e) => {
                    stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "undecodable record");
                }
            }
            n += 1;
            if n >= 4096 {
                break; // let housekeeping below run under sustained load
            }
        }
        if n > 0 {
            last_record = Instant::now();
        }
        if !batch.is_empty() && !queue.offer(batch, &stats, &mut pending_queue_loss) {
            return;
        }
        if last_tick.elapsed() >= Duration::from_millis(250) {
            last_tick = Instant::now();
            let now = boot_time_now();
            let (full, shed) = bpf.kernel_drops();
            stats.kernel_ring_full.store(full, Ordering::Relaxed);
            stats.kernel_shed.store(shed, Ordering::Relaxed);
            stats
                .opens_folded
                .store(bpf.opens_folded(), Ordering::Relaxed);
            stats
                .cgroup_lookups
                .store(decoder.cgroup_lookups(), Ordering::Relaxed);
            if let Ok(mut v) = stats.kernel_per_cpu.lock() {
                *v = bpf.kernel_drops_per_cpu();
            }
            let kernel_loss = (full - last_full) + (shed - last_shed);
            (last_full, last_shed) = (full, shed);
            let mut losses = Vec::new();
            if kernel_loss > 0 {
                losses.push((LossSource::Kernel, kernel_loss));
            }
            if pending_queue_loss > 0 {
                losses.push((LossSource::Queue, pending_queue_loss));
            }
            for (source, count) in losses {
                let ev = decoder.internal_event(
                    now,
                    Payload::Lost {
                        source,
                        count,
                        cpu: None,
                    },
                );
                if !queue.send_waiting(ev, &stop) {
                    return;
                }
                if source == LossSource::Queue {
                    pending_queue_loss = 0;
                }
            }
            decoder.tree.evict(now);
            if last_trim.elapsed() >= TRIM_EVERY {
                last_trim = Instant::now();
                decoder.housekeep(now);
                release_free_heap();
            }
            stats
                .processes
                .store(decoder.tree.len() as u64, Ordering::Relaxed);
            stats
                .containers
                .store(decoder.containers.len() as u64, Ordering::Relaxed);
        }
    }
}

/// How often freed heap is handed back to the kernel.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Returns free heap pages to the kernel. A burst (a backlog in the queue, thousands of
/// short-lived processes) leaves glibc holding the freed memory; without this RSS
/// would stay at the burst's high-water mark instead of returning to its level.
fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Completes container metadata. Events of a container the cache did not know when
/// they were decoded are held back (at most `wait`, at most `MAX_HELD` per container)
/// until the Docker watcher has its metadata; other containers' events flow on, so one
/// slow inspect never stalls the stream. Order is kept per container (`seq` keeps the
/// global order). Runs apart from the ring reader so the kernel ring keeps draining.
#[allow(clippy::too_many_arguments)]
fn attribute_loop(
    rx: Receiver<Vec<Event>>,
    queued: Arc<AtomicUsize>,
    tx: SyncSender<Vec<Event>>,
    filter: Filter,
    cache: ContainerCache,
    wait: Duration,
    docker_root: Option<std::path::PathBuf>,
) {
    use std::collections::{HashMap, VecDeque};
    use std::sync::mpsc::RecvTimeoutError;
    const MAX_HELD: usize = 20_000;
    struct Held {
        since: Instant,
        events: VecDeque<Event>,
    }
    // Containers given up on, with when: their events pass with the id only.
    let mut gave_up: HashMap<String, Instant> = HashMap::new();
    let mut held: HashMap<String, Held> = HashMap::new();

    let complete = |mut ev: Event, cache: &ContainerCache| -> Event {
        if let Some(c) = ev.container.container() {
            if !c.metadata_complete && cache.contains(&c.id) {
                let (id, runtime, cgroup_id) = (c.id.clone(), c.runtime.clone(), c.cgroup_id);
                let w = cache.workload(&id, &runtime, cgroup_id);
                ev.container = match &*w {
                    rampart_event::Workload::Container(k) if k.cgroup_id != cgroup_id => {
                        let mut k = k.clone();
                        k.cgroup_id = cgroup_id;
                        Arc::new(rampart_event::Workload::Container(k))
                    }
                    _ => w,
                };
            }
        }
        ev
    };

    // Applies the final filter (container names are known by now, or given up on) and
    // sends what passes as one batch (see EventReceiver). False when the consumer is
    // gone.
    let forward = |events: Vec<Event>| {
        let batch: Vec<Event> = events.into_iter().filter(|ev| filter.keep(ev)).collect();
        batch.is_empty() || tx.send(batch).is_ok()
    };

    loop {
        let timeout = if held.is_empty() {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(5)
        };
        let next = rx.recv_timeout(timeout);
        let disconnected = matches!(next, Err(RecvTimeoutError::Disconnected));
        let batch = next.unwrap_or_default();
        queued.fetch_sub(batch.len(), Ordering::Relaxed);
        // Sent together after the batch: a consumer that keeps up would otherwise
        // sleep and be woken (a futex round trip, in a VM an interrupt) per event.
        let mut ready_events = Vec::with_capacity(batch.len());
        for ev in batch {
            let pending_id = ev
                .container
                .container()
                .filter(|c| !c.metadata_complete && !cache.contains(&c.id))
                .map(|c| c.id.clone())
                .filter(|id| {
                    wait > Duration::ZERO
                        && gave_up
                            .get(id)
                            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                });
            // Fast path: the engine's state directory, no API round trip.
            let pending_id = pending_id.filter(|id| match &docker_root {
                Some(root) => match containers::read_docker_state(root, id) {
                    Some(c) => {
                        cache.insert(c);
                        false
                    }
                    None => true,
                },
                None => true,
            });
            match pending_id {
                Some(id) => {
                    held.entry(id)
                        .or_insert_with(|| Held {
                            since: Instant::now(),
                            events: VecDeque::new(),
                        })
                        .events
                        .push_back(ev);
                }
                None => {
                    // A container still held keeps its order: queue behind the rest.
                    let id = ev.container.container().map(|c| c.id.clone());
                    if let Some(h) = id.as_ref().and_then(|id| held.get_mut(id)) {
                        h.events.push_back(ev);
                    } else {
                        ready_events.push(complete(ev, &cache));
                    }
                }
            }
        }
        if !forward(ready_events) {
            return;
        }
        // Release containers whose metadata arrived or whose wait is over.
        let ready: Vec<String> = held
            .iter()
            .filter(|(id, h)| {
                disconnected
                    || cache.contains(id)
                    || h.since.elapsed() >= wait
                    || h.events.len() >= MAX_HELD
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            let Some(h) = held.remove(&id) else { continue };
            if !cache.contains(&id) {
                if gave_up.len() > 4096 {
                    gave_up.clear();
                }
                gave_up.insert(id, Instant::now());
            }
            if !forward(
                h.events
                    .into_iter()
                    .map(|ev| complete(ev, &cache))
                    .collect(),
            ) {
                return;
            }
        }
        if disconnected {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_event::{Container, Workload};

    fn exit_in(container: Arc<Workload>) -> Event {
        let mut d = Decoder::new("h".into(), "b".into(), 0, ContainerCache::default());
        let mut ev = d.internal_event(
            1,
            Payload::Exit {
                code: 0,
                signal: None,
                core_dumped: false,
            },
        );
        ev.container = container;
        ev
    }

    /// A container's first events arrive before its name: filtering by name at decode
    /// time dropped them (the short-lived container lost everything).
    #[test]
    fn a_container_filtered_by_name_keeps_events_decoded_before_its_metadata() {
        let filter = Filter {
            kinds: None,
            container: Some("web".into()),
        };
        let early = exit_in(ContainerCache::placeholder(&"a".repeat(64), "docker", 7));
        assert!(filter.keep_early(&early), "undecided at decode time");
        assert!(
            !filter.keep(&early),
            "still nameless once attribution gave up"
        );

        let named = |name: &str| {
            exit_in(Arc::new(Workload::Container(Container {
                id: "b".repeat(64),
                name: name.into(),
                metadata_complete: true,
                ..Default::default()
            })))
        };
        assert!(filter.keep_early(&named("web")) && filter.keep(&named("web")));
        assert!(
            !filter.keep_early(&named("db")),
            "a known other container goes early"
        );
        assert!(!filter.keep_early(&exit_in(Arc::new(Workload::Host { cgroup_id: 1 }))));
    }
}
