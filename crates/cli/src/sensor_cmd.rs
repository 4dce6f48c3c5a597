//! `rampart sensor` and `rampart containers`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rampart_sensor::{RunningSensor, SensorConfig};

use crate::output::JsonLines;

#[derive(Args, Debug)]
pub struct SensorArgs {
    /// Write JSON lines here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Only events from this container (id prefix or name); `host` for host processes.
    #[arg(long)]
    pub container: Option<String>,
    /// Only these kinds (repeatable, comma-separated): exec, file_open, net_connect, …
    /// or families: process, file, net, privilege, kernel.
    #[arg(long = "kind", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Print loss and throughput counters to stderr every interval and at exit.
    #[arg(long)]
    pub stats: bool,
    /// Seconds between `--stats` reports.
    #[arg(long, default_value_t = 5)]
    pub stats_interval: u64,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Also report read-only opens of shared libraries (filtered in the kernel by default).
    #[arg(long)]
    pub all_opens: bool,
    /// A process re-opening a file read-only (same flags and euid) makes one event per
    /// this many milliseconds; the rest are counted in the next event's `repeats`.
    /// 0 reports every open.
    #[arg(long, default_value_t = rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW.as_millis() as u64)]
    pub open_repeat_window_ms: u64,
    /// Do not ask Docker for container metadata (ids still come from the kernel).
    #[arg(long)]
    pub no_docker: bool,
    /// How syscalls are hooked: auto (the cheapest the kernel allows: fexit, then the
    /// syscalls' own tracepoints, then sys_exit; where 32-bit syscalls are watched,
    /// sys_exit before the tracepoints), fexit, syscall_tracepoints, or sys_exit (a
    /// program on every syscall; the only one that also sees calls to syscalls the
    /// kernel does not implement).
    #[arg(long, default_value = "auto")]
    pub syscall_hook: rampart_bpf::SyscallHook,
    /// Do not watch syscalls made through the 32-bit entry (32-bit programs, int 0x80).
    /// Watching them puts a program on every syscall (with auto on a kernel without
    /// trampolines: the sys_exit hook instead of the syscall tracepoints); without it
    /// a process can open, connect or ptrace through them unseen.
    #[arg(long)]
    pub no_compat_syscalls: bool,
    /// Load this BPF object instead of the embedded one (a local `make -C bpf` build,
    /// for comparing kernel-side changes without relinking).
    #[arg(long, hide = true)]
    pub bpf_object: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct ContainersArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

pub fn start_sensor(a: &SensorArgs) -> anyhow::Result<RunningSensor> {
    let cfg = SensorConfig {
        kinds: rampart_sensor::parse_kinds(&a.kinds)?,
        container: a.container.clone(),
        filter_ro_libs: !a.all_opens,
        open_repeat_window: Duration::from_millis(a.open_repeat_window_ms),
        docker: !a.no_docker,
        syscall_hook: a.syscall_hook,
        compat_syscalls: !a.no_compat_syscalls,
        bpf_object: a
            .bpf_object
            .as_ref()
            .map(|p| {
                std::fs::read(p).with_context(|| format!("reading BPF object {}", p.display()))
            })
            .transpose()?,
        ..Default::default()
    };
    Ok(rampart_sensor::start(cfg)?)
}

pub fn run_sensor(a: SensorArgs) -> anyhow::Result<i32> {
    let stop = stop_flag()?;
    let mut sensor = start_sensor(&a)?;
    let mut out = JsonLines::open(a.output.clone())
        .with_context(|| format!("opening output {:?}", a.output))?;
    tracing::info!("sensor running");
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut last_flush = Instant::now();
    let deadline = a.duration.map(|s| started + Duration::from_secs(s));
    let print_stats = |sensor: &RunningSensor| {
        if let Ok(s) = serde_json::to_string(&sensor.stats.snapshot()) {
            eprintln!("rampart stats: {s}");
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match sensor.events.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => {
                out.write(&ev, &sensor.stats);
                // Drain what is queued before flushing, in bounded batches so stop
                // requests, flushes and stats are still served under sustained load.
                for _ in 0..4096 {
                    let Ok(ev) = sensor.events.try_recv() else {
                        break;
                    };
                    out.write(&ev, &sensor.stats);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= Duration::from_millis(200) {
            out.flush(&sensor.stats);
            last_flush = Instant::now();
        }
        if a.stats && last_stats.elapsed() >= Duration::from_secs(a.stats_interval) {
            print_stats(&sensor);
            last_stats = Instant::now();
        }
    }
    sensor.stop();
    while let Ok(ev) = sensor.events.try_recv() {
        out.write(&ev, &sensor.stats);
    }
    out.flush(&sensor.stats);
    if a.stats {
        print_stats(&sensor);
    }
    Ok(0)
}

pub fn run_containers(a: ContainersArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cache = rampart_sensor::ContainerCache::default();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let watcher = rampart_sensor::DockerWatcher::new(cache.clone(), Duration::from_secs(30));
    let listed = rt.block_on(async move {
        let task = tokio::spawn(watcher.run(Some(tx)));
        let r = tokio::time::timeout(Duration::from_secs(10), rx).await;
        task.abort();
        r
    });
    match listed {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => anyhow::bail!("cannot reach the Docker API: {e}"),
        _ => anyhow::bail!("the Docker API did not answer within 10 s"),
    }
    let list = cache.list();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    println!(
        "{:<14} {:<24} {:<30} {:<12} K8S",
        "ID", "NAME", "IMAGE", "NETWORK"
    );
    for c in list {
        let k8s = c
            .k8s
            .as_ref()
            .map(|k| format!("{}/{}", k.namespace, k.pod))
            .unwrap_or_default();
        println!(
            "{:<14} {:<24} {:<30} {:<12} {}",
            &c.id[..c.id.len().min(12)],
            c.name,
            c.image,
            c.network_mode,
            k8s
        );
    }
    Ok(0)
}
