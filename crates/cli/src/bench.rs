//! `rampart bench`: measures the sensor against a baseline taken in the same run.
//!
//! - overhead: exec, open, loopback-connect and unwatched-syscall storms without the
//!   sensor, with it as shipped, with it reporting every open, without its 32-bit
//!   hook, on the syscall tracepoints, on the sys_exit hook, and with any other BPF
//!   object given (events decoded and serialized to
//!   JSON), in alternating rounds;
//!   prints ratios and the time in the sensor's kernel programs per operation; then
//!   each sensor arm against itself detached, in alternating pairs of pieces (the
//!   steadiest figure on a shared machine).
//! - throughput: events/s from the kernel to JSON on one consumer thread, with drops;
//!   plus the user-space ceiling (decode + enrich + JSON of replayed records).
//! - memory: sensor RSS before and after starting and stopping N containers.
//! - latency: kernel event to alert written, with the shipped rule library plus one
//!   marker rule loaded; the baseline is kernel event to event received, same run;
//!   then events after quiet spells, which must wake the sleeping reader.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rampart_bpf::SyscallHook;
use rampart_sensor::{RunningSensor, SensorConfig};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Which {
    Overhead,
    Throughput,
    Memory,
    Latency,
    All,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Iterations of the exec storm.
    #[arg(long, default_value_t = 2000)]
    execs: u64,
    /// Iterations of the open and connect storms.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Containers to start and stop in the memory run.
    #[arg(long, default_value_t = 1000)]
    containers: u64,
    /// Marker events (one per millisecond) of the latency run.
    #[arg(long, default_value_t = 2000)]
    alerts: u64,
    /// Overhead storms to run, comma-separated: exec, open, connect, syscall.
    #[arg(long, default_value = "exec,open,connect,syscall")]
    storms: String,
    /// Alternating rounds per overhead storm (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Overhead arms to run besides the baseline without the sensor, comma-separated:
    /// with, every-open, no-compat, tracepoints, sys-exit (objects given with
    /// --bpf-object always run).
    #[arg(long, default_value = "with,every-open,no-compat,tracepoints,sys-exit")]
    arms: String,
    /// Pairs of pieces per storm and sensor arm in the paired comparison: the arm's
    /// sensor loaded once, detached for one piece of each pair and attached for the
    /// other. 0 skips it.
    #[arg(long, default_value_t = 16)]
    pairs: u32,
    /// Also measure the overhead with this BPF object (e.g. a local `make -C bpf`
    /// build), in the same rounds as the embedded one. Repeatable. Its records must
    /// have this build's header (objects from before the cpuset cgroup id was added
    /// still measure, but their events do not decode).
    #[arg(long)]
    bpf_object: Vec<std::path::PathBuf>,
    /// Containers started and stopped before the memory run's starting level is read.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Image for the memory run (must exist locally).
    #[arg(long, default_value = "rampart-test/busybox:latest")]
    image: String,
}

/// A consumer that serializes every event to JSON (and discards it), as the real
/// output path does, counting events.
struct Consumer {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    fn start(sensor: &mut RunningSensor) -> Self {
        let (dummy_tx, dummy_rx) = std::sync::mpsc::sync_channel(1);
        drop(dummy_tx);
        let rx = std::mem::replace(&mut sensor.events, dummy_rx);
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), count.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(4096);
            let mut json = rampart_event::json::EventJsonWriter::new();
            while !s.load(Ordering::Relaxed) {
                if let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) {
                    buf.clear();
                    let _ = json.write(&ev, &mut buf);
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            stop,
            count,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.count.load(Ordering::Relaxed)
    }
}

/// Wall time a storm child measured, and the CPU time (user + system) it used.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// User + system CPU time of this process (`RUSAGE_SELF`) or its waited-for
/// children (`RUSAGE_CHILDREN`).
fn cpu_time(who: i32) -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass; no other effects.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs a storm in a child process (`rampart bench-storm KIND N`). CPU time is the
/// robust figure on a shared machine: wall time also counts waiting for a core.
fn in_child(kind: &str, n: u64) -> Sample {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(_) => return Sample::default(),
    };
    let cpu_before = cpu_time(libc::RUSAGE_CHILDREN);
    let out = Command::new(exe)
        .args(["bench-storm", kind, &n.to_string()])
        .output();
    let cpu = cpu_time(libc::RUSAGE_CHILDREN).saturating_sub(cpu_before);
    let ns = out
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Sample {
        wall: Duration::from_nanos(ns),
        cpu,
    }
}

/// Child-process entry of the overhead storms: prints the elapsed nanoseconds.
pub fn storm(kind: &str, n: u64) -> anyhow::Result<()> {
    let file = std::env::temp_dir().join("rampart-bench-open");
    std::fs::write(&file, b"x")?;
    let d = match kind {
        "exec" => exec_storm(n),
        "open" => open_storm(n, &file),
        "connect" => connect_storm(n),
        "syscall" => syscall_storm(n),
        "paced-open" => paced_open_storm(n, &file, Duration::from_millis(1)),
        "quiet-open" => paced_open_storm(n, &file, QUIET_OPEN_INTERVAL),
        other => anyhow::bail!("unknown storm {other}"),
    };
    println!("{}", d.as_nanos());
    Ok(())
}

fn exec_storm(n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let _ = Command::new("/bin/true").status();
    }
    t.elapsed()
}

fn open_storm(n: u64, path: &std::path::Path) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        if let Ok(mut f) = std::fs::File::open(path) {
            let mut b = [0u8; 1];
            let _ = f.read(&mut b);
        }
    }
    t.elapsed()
}

/// Syscalls the sensor does not watch: measures the cost of the hook itself.
fn syscall_storm(n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: getppid has no arguments and no side effects.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    t.elapsed()
}

/// One open per `interval`: latency is measured on a steady stream, not a queue.
fn paced_open_storm(n: u64, path: &std::path::Path, interval: Duration) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let _ = std::fs::File::open(path);
        std::thread::sleep(interval);
    }
    t.elapsed()
}

/// Longer than the sensor's quiet threshold: each open of the `quiet-open` storm is
/// the first event after a quiet spell, which the kernel must wake the reader for.
const QUIET_OPEN_INTERVAL: Duration = Duration::from_millis(60);

fn connect_storm(n: u64) -> Duration {
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        return Duration::ZERO;
    };
    let Ok(addr) = listener.local_addr() else {
        return Duration::ZERO;
    };
    let acceptor = std::thread::spawn(move || {
        for _ in 0..n {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(b"x");
                }
                Err(_) => break,
            }
        }
    });
    let t = Instant::now();
    for _ in 0..n {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let mut b = [0u8; 1];
            let _ = s.read(&mut b);
        }
    }
    let d = t.elapsed();
    let _ = acceptor.join();
    d
}

/// `open_repeat_window` is zero where every open must make an event: the throughput
/// and latency runs open one file over and over.
fn sensor(
    kinds: Option<&str>,
    object: Option<&[u8]>,
    open_repeat_window: Duration,
    syscall_hook: SyscallHook,
    compat_syscalls: bool,
) -> anyhow::Result<RunningSensor> {
    let kinds = match kinds {
        Some(k) => rampart_sensor::parse_kinds(&[k.to_string()])?,
        None => None,
    };
    Ok(rampart_sensor::start(SensorConfig {
        kinds,
        docker: false,
        queue_capacity: 1 << 20,
        bpf_object: object.map(<[u8]>::to_vec),
        open_repeat_window,
        syscall_hook,
        compat_syscalls,
        ..Default::default()
    })?)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Child runs a storm is split into within one arm's run.
const PIECES: u64 = 5;

/// Operations in one piece of a storm of `n`.
fn piece_len(n: u64) -> u64 {
    (n / PIECES).max(1)
}

/// What runs beside the storm in one arm of the overhead comparison.
enum Setup {
    NoSensor,
    /// The sensor with the embedded BPF object, or with the given one, folding
    /// repeated read-only opens over `window` (zero: every open is an event), on the
    /// given syscall hook, watching 32-bit syscalls or not.
    Sensor {
        object: Option<Vec<u8>>,
        window: Duration,
        hook: SyscallHook,
        compat: bool,
    },
}

impl Setup {
    /// The arm's sensor, started; None for the arm without one.
    fn start(&self) -> anyhow::Result<Option<RunningSensor>> {
        let Setup::Sensor {
            object,
            window,
            hook,
            compat,
        } = self
        else {
            return Ok(None);
        };
        sensor(None, object.as_deref(), *window, *hook, *compat).map(Some)
    }
}

/// One arm of the overhead comparison and the figures it gathered for one storm.
struct Arm {
    name: String,
    setup: Setup,
    cpu_per_op: Vec<f64>,
    wall_per_op: Vec<f64>,
    sensor_us_per_event: Vec<f64>,
    /// Time in the sensor's kernel programs per storm operation: the hook cost by
    /// itself, steadier than CPU/op on a shared machine.
    kernel_ns_per_op: Vec<f64>,
    /// Per program, over the statistics pieces of every round: (runs, ns), per op.
    kernel_by_program: std::collections::BTreeMap<String, (f64, f64)>,
    kernel_pieces: u32,
    drops: u64,
}

impl Arm {
    fn new(name: &str, setup: Setup) -> Self {
        Self {
            name: name.to_string(),
            setup,
            cpu_per_op: Vec::new(),
            wall_per_op: Vec::new(),
            sensor_us_per_event: Vec::new(),
            kernel_ns_per_op: Vec::new(),
            kernel_by_program: Default::default(),
            kernel_pieces: 0,
            drops: 0,
        }
    }

    /// Forgets the figures of the previous storm.
    fn reset(&mut self) {
        self.cpu_per_op.clear();
        self.wall_per_op.clear();
        self.sensor_us_per_event.clear();
        self.kernel_ns_per_op.clear();
        self.kernel_by_program.clear();
        self.kernel_pieces = 0;
        self.drops = 0;
    }

    /// Runs the storm once under this arm, in [`PIECES`] child runs, and records
    /// each piece's figures.
    fn run(&mut self, storm: &dyn Fn(u64) -> Sample, n: u64) -> anyhow::Result<()> {
        let Some(mut sensor) = self.setup.start()? else {
            self.run_pieces(storm, n);
            return Ok(());
        };
        let consumer = Consumer::start(&mut sensor);
        let cpu_before = cpu_time(libc::RUSAGE_SELF);
        self.run_pieces(storm, n);
        // One more piece with BPF run-time statistics on, for the time spent in the
        // sensor's programs. Not part of CPU/op: the statistics read the clock twice
        // per program run, which inflates it.
        let piece = piece_len(n);
        let run_time_stats = rampart_bpf::enable_run_time_stats()?;
        let kernel_before = rampart_bpf::programs_run_stats();
        storm(piece);
        let kernel_after = rampart_bpf::programs_run_stats();
        drop(run_time_stats);
        let mut total_ns = 0.0;
        for p in &kernel_after {
            let before = kernel_before.iter().find(|b| b.id == p.id);
            let ns = p
                .run_time
                .saturating_sub(before.map_or(Duration::ZERO, |b| b.run_time))
                .as_nanos() as f64;
            let runs = p
                .run_count
                .saturating_sub(before.map_or(0, |b| b.run_count)) as f64;
            total_ns += ns;
            if runs > 0.0 {
                let e = self.kernel_by_program.entry(p.name.clone()).or_default();
                e.0 += runs / piece as f64;
                e.1 += ns / piece as f64;
            }
        }
        self.kernel_pieces += 1;
        self.kernel_ns_per_op.push(total_ns / piece as f64);
        std::thread::sleep(Duration::from_millis(300));
        let events = consumer.finish();
        let sensor_cpu = cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_before);
        let snap = sensor.stats.snapshot();
        drop(sensor);
        // The figure is this process's CPU over the events: with only a handful of
        // events (an arm whose object reports nothing for this storm) it would show
        // the bench's own work, not a cost per event.
        if events >= 1000 {
            self.sensor_us_per_event
                .push(sensor_cpu.as_secs_f64() * 1e6 / events as f64);
        }
        self.drops += snap.kernel_ring_full + snap.kernel_shed + snap.queue_drops;
        Ok(())
    }

    /// Interference on a shared machine comes in bursts of tens of milliseconds;
    /// several short pieces per arm let the best and median see past them without
    /// loading the sensor again (which takes seconds).
    fn run_pieces(&mut self, storm: &dyn Fn(u64) -> Sample, n: u64) {
        let piece = piece_len(n);
        let per_op = |d: Duration| d.as_secs_f64() * 1e6 / piece as f64;
        for _ in 0..PIECES {
            let s = storm(piece);
            self.cpu_per_op.push(per_op(s.cpu));
            self.wall_per_op.push(per_op(s.wall));
        }
    }
}

fn overhead(a: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "== overhead: {} alternating rounds per storm, medians; cpu = the storm's own user+sys time; kernel = time in the sensor's BPF programs, from an extra piece per round with run-time statistics on ==",
        a.rounds
    );
    let file = std::env::temp_dir().join("rampart-bench-open");
    std::fs::write(&file, b"x")?;
    let mut arms = vec![
        Arm::new("without", Setup::NoSensor),
        Arm::new(
            "with",
            Setup::Sensor {
                object: None,
                window: rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                hook: SyscallHook::Auto,
                compat: true,
            },
        ),
        Arm::new(
            "with, every open",
            Setup::Sensor {
                object: None,
                window: Duration::ZERO,
                hook: SyscallHook::Auto,
                compat: true,
            },
        ),
        // What watching 32-bit syscalls costs: fexit alone against fexit beside a
        // program on every syscall; without trampolines, the syscall tracepoints
        // against the sys_exit hook "with" takes then.
        Arm::new(
            "with, no 32-bit hook",
            Setup::Sensor {
                object: None,
                window: rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                hook: SyscallHook::Auto,
                compat: false,
            },
        ),
        // The per-syscall tracepoints with the 32-bit program beside them: what "with"
        // would cost on a kernel without trampolines if it did not take sys_exit.
        Arm::new(
            "with, syscall tracepoints",
            Setup::Sensor {
                object: None,
                window: rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                hook: SyscallHook::SyscallTracepoints,
                compat: true,
            },
        ),
        // The hook every kernel has (the same as "with" without trampolines).
        Arm::new(
            "with, sys_exit hook",
            Setup::Sensor {
                object: None,
                window: rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                hook: SyscallHook::SysExit,
                compat: true,
            },
        ),
    ];
    // The built-in arms above, in order, by the names --arms takes.
    const ARM_KEYS: [&str; 6] = [
        "without",
        "with",
        "every-open",
        "no-compat",
        "tracepoints",
        "sys-exit",
    ];
    let wanted: Vec<&str> = a.arms.split(',').map(str::trim).collect();
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !w.is_empty() && !ARM_KEYS.contains(w))
    {
        anyhow::bail!(
            "unknown arm {unknown} (choose from {})",
            ARM_KEYS[1..].join(", ")
        );
    }
    let mut key = ARM_KEYS.iter();
    arms.retain(|_| {
        key.next()
            .is_some_and(|k| *k == "without" || wanted.contains(k))
    });
    for p in &a.bpf_object {
        let bytes = std::fs::read(p)
            .map_err(|e| anyhow::anyhow!("reading BPF object {}: {e}", p.display()))?;
        arms.push(Arm::new(
            &format!("with {}", p.display()),
            Setup::Sensor {
                object: Some(bytes),
                window: rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                hook: SyscallHook::Auto,
                compat: true,
            },
        ));
    }
    // Storms run in child processes: the sensor ignores its own process (and so this
    // one), so an in-process storm would measure only the early-exit path.
    for name in a.storms.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let n = match name {
            "exec" => a.execs,
            "open" => a.ops,
            "connect" => a.ops / 10,
            // Unwatched syscalls: what a hook costs the syscalls it does not watch.
            "syscall" => a.ops * 5,
            other => anyhow::bail!("unknown storm {other} (exec, open, connect, syscall)"),
        };
        let storm = |n| in_child(name, n);
        storm(n / 10); // warm caches
        arms.iter_mut().for_each(Arm::reset);
        // Rotate the order each round so drift on a shared machine hits every arm.
        for round in 0..a.rounds {
            for i in 0..arms.len() {
                let idx = (i + round as usize) % arms.len();
                arms[idx].run(&storm, n)?;
            }
        }
        let base_cpu = median(arms[0].cpu_per_op.clone());
        let base_wall = median(arms[0].wall_per_op.clone());
        // Interference on a shared machine only ever adds time, so the best round of
        // each arm is the steadier comparison; the median says what is typical.
        let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let base_best = best(&arms[0].cpu_per_op);
        println!("{name:<8} n={n}");
        for arm in &arms {
            let cpu = median(arm.cpu_per_op.clone());
            let wall = median(arm.wall_per_op.clone());
            let pct = |x: f64, b: f64| (x / b.max(1e-12) - 1.0) * 100.0;
            let spread = |v: &[f64]| {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(0.0, f64::max);
                format!("{lo:.2}..{hi:.2}")
            };
            print!(
                "  {:<24} cpu/op {cpu:>8.3}us ({:>+6.1}%) [{}]  best {:>+6.1}%  wall/op {wall:>8.3}us ({:>+6.1}%)",
                arm.name,
                pct(cpu, base_cpu),
                spread(&arm.cpu_per_op),
                pct(best(&arm.cpu_per_op), base_best),
                pct(wall, base_wall),
            );
            if matches!(arm.setup, Setup::Sensor { .. }) {
                let user = if arm.sensor_us_per_event.is_empty() {
                    "n/a (under 1000 events)".to_string()
                } else {
                    format!("{:.2}us/event", median(arm.sensor_us_per_event.clone()))
                };
                // The kernel programs' time against the bare operation's CPU time:
                // the overhead the sensor's kernel side adds, steadier than the
                // difference of two noisy CPU medians (but not counting the hook's
                // own dispatch, and inflated a little by the statistics).
                let kernel_ns = median(arm.kernel_ns_per_op.clone());
                print!(
                    "  kernel {kernel_ns:.0}ns/op ({:.1}% of the bare op)  sensor user space {user}, drops={}",
                    kernel_ns / (base_cpu * 1000.0).max(1e-9) * 100.0,
                    arm.drops
                );
                println!();
                // Where the kernel time goes: the programs that took the most (1% of
                // it or more), each with its runs per op and its time per run (tail
                // calls included; inflated a little by the statistics' two clock
                // reads per run).
                let mut by_program: Vec<_> = arm.kernel_by_program.iter().collect();
                by_program.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
                let pieces = f64::from(arm.kernel_pieces.max(1));
                let total: f64 = by_program.iter().map(|(_, (_, ns))| ns).sum();
                let top: Vec<String> = by_program
                    .iter()
                    .take(5)
                    .filter(|(_, (_, ns))| *ns >= total / 100.0)
                    .map(|(name, (runs, ns))| {
                        format!(
                            "{name} {:.0}ns ({:.1} runs x {:.0}ns)",
                            ns / pieces,
                            runs / pieces,
                            ns / runs.max(f64::MIN_POSITIVE)
                        )
                    })
                    .collect();
                if !top.is_empty() {
                    println!("      kernel by program: {}", top.join(", "));
                }
                if a.pairs > 0 {
                    paired(&storm, n, a.pairs, &arm.setup)?;
                }
            } else {
                println!();
            }
        }
    }
    Ok(())
}

/// A sensor arm against itself detached, in pieces that alternate
/// without-with, with-without, ...: drift on a shared machine moves both pieces of a
/// pair alike, so the pairs' ratios are steadier than two arms' medians taken seconds
/// apart. Detached, the programs are not run at all (the hook switch drops their
/// links); the loaded sensor's user space keeps running in both pieces.
fn paired(storm: &dyn Fn(u64) -> Sample, n: u64, pairs: u32, setup: &Setup) -> anyhow::Result<()> {
    let Some(mut s) = setup.start()? else {
        return Ok(());
    };
    let consumer = Consumer::start(&mut s);
    let piece = piece_len(n);
    let mut cpu_ratios = Vec::new();
    let mut wall_ratios = Vec::new();
    let mut switch_times = Vec::new();
    let mut run = |attached: bool| -> anyhow::Result<Sample> {
        let t = Instant::now();
        if attached {
            s.hook_switch.attach()?;
        } else {
            s.hook_switch.detach();
        }
        switch_times.push(t.elapsed().as_secs_f64() * 1e3);
        Ok(storm(piece))
    };
    for i in 0..pairs {
        let (with, without) = if i % 2 == 0 {
            let without = run(false)?;
            (run(true)?, without)
        } else {
            let with = run(true)?;
            (with, run(false)?)
        };
        let ratio = |w: Duration, wo: Duration| w.as_secs_f64() / wo.as_secs_f64().max(1e-12);
        cpu_ratios.push(ratio(with.cpu, without.cpu));
        wall_ratios.push(ratio(with.wall, without.wall));
    }
    s.hook_switch.attach()?;
    std::thread::sleep(Duration::from_millis(300));
    let events = consumer.finish();
    let drops = {
        let snap = s.stats.snapshot();
        snap.kernel_ring_full + snap.kernel_shed + snap.queue_drops
    };
    let pct = |r: f64| (r - 1.0) * 100.0;
    let quartiles = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (at(0.25), at(0.75))
    };
    let (q1, q3) = quartiles(cpu_ratios.clone());
    println!(
        "      paired, attached vs detached: {pairs} pairs of {piece} ops: cpu {:+.1}% (middle half of the pairs {:+.1}%..{:+.1}%), wall {:+.1}%; {events} events, drops={drops}, switch {:.1} ms median",
        pct(median(cpu_ratios)),
        pct(q1),
        pct(q3),
        pct(median(wall_ratios)),
        median(switch_times),
    );
    Ok(())
}

fn throughput(a: &BenchArgs) -> anyhow::Result<()> {
    println!("== throughput: kernel -> decode -> enrich -> JSON, one consumer thread ==");
    let file = std::env::temp_dir().join("rampart-bench-open");
    std::fs::write(&file, b"x")?;
    let mut s = sensor(
        Some("file_open"),
        None,
        Duration::ZERO,
        SyscallHook::Auto,
        true,
    )?;
    let consumer = Consumer::start(&mut s);
    // Generators run as separate processes so the sensor does not ignore them.
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let gens: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["bench-gen-opens"])
                .env("RAMPART_BENCH_GEN_SECS", a.seconds.to_string())
                .env("RAMPART_BENCH_GEN_FILE", &file)
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut g in gens {
        let _ = g.wait();
    }
    let elapsed = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let events = consumer.finish();
    let snap = s.stats.snapshot();
    let drops = snap.kernel_ring_full + snap.kernel_shed + snap.queue_drops;
    println!(
        "live: {events} events in {:.2}s = {:.0} events/s, drops={drops} (kernel ring full {}, shed {}, queue {})",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        snap.kernel_ring_full,
        snap.kernel_shed,
        snap.queue_drops
    );
    drop(s);
    replay_ceiling();
    replay_lineage_json();
    Ok(())
}

/// User-space ceiling: decode + enrich + JSON of realistic records on one core, against
/// a baseline of JSON alone for the same events.
fn replay_ceiling() {
    use rampart_bpf::wire::{encode, kind, Header};
    let mut d = rampart_sensor::Decoder::new(
        "bench".into(),
        "b".into(),
        0,
        rampart_sensor::ContainerCache::default(),
    );
    let id = "d".repeat(64);
    let me = std::process::id();
    let hdr = Header {
        kind: kind::OPEN,
        tgid: me,
        tid: me,
        ppid: 1,
        comm: *b"bench\0\0\0\0\0\0\0\0\0\0\0",
        args: [3, 0, 0, 257, 0, 0],
        ..Default::default()
    };
    let rec = encode(
        &hdr,
        &[id.as_bytes(), b"", b"/etc/nginx/conf.d/default.conf", b""],
    );
    let n = 500_000u64;
    let mut buf = Vec::with_capacity(4096);
    let mut json = rampart_event::json::EventJsonWriter::new();
    let t = Instant::now();
    let mut events = Vec::with_capacity(1000);
    for i in 0..n {
        if let Ok(Some(ev)) = d.decode(&rec) {
            buf.clear();
            let _ = json.write(&ev, &mut buf);
            if i < 1000 {
                events.push(ev);
            }
        }
    }
    let full = t.elapsed();
    // Baselines, same events: the shared-part JSON writer alone, and plain serde_json
    // (which re-encodes the process and its ancestry for every event).
    let t = Instant::now();
    for i in 0..n {
        buf.clear();
        let _ = json.write(&events[(i % 1000) as usize], &mut buf);
    }
    let json_only = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        buf.clear();
        let _ = serde_json::to_writer(&mut buf, &events[(i % 1000) as usize]);
    }
    let plain = t.elapsed();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "replay ceiling: decode+enrich+JSON {:.0} events/s ({:.2} us/event, {} bytes/event); JSON alone {:.0} events/s; plain serde_json {:.0} events/s",
        rate(full),
        full.as_secs_f64() * 1e6 / n as f64,
        buf.len(),
        rate(json_only),
        rate(plain)
    );
}

/// JSON of new processes that share their lineage (every fork and exec makes one):
/// the writer encodes each ancestor once, against plain serde_json, which re-encodes
/// the whole ancestry per event.
fn replay_lineage_json() {
    use rampart_event::{Ancestor, Event, Payload, Process, Workload};
    use std::sync::Arc;
    let long_argv: Vec<String> = (0..40)
        .map(|i| format!("--option-{i}=\"value {i}\""))
        .collect();
    let ancestry: Vec<Arc<Ancestor>> = (0..5u32)
        .map(|depth| {
            Arc::new(Ancestor {
                pid: 100 + depth,
                exec_id: format!("a8cea09b:{}:6579165", 100 + depth),
                exe: "/usr/lib/jvm/java-17/bin/java".into(),
                argv: long_argv.clone(),
                comm: "java".into(),
            })
        })
        .collect();
    let host: Arc<str> = Arc::from("bench");
    let workload = Arc::new(Workload::Host { cgroup_id: 1 });
    let n = 100_000u32;
    let events: Vec<Event> = (0..n)
        .map(|i| Event {
            schema: rampart_event::SCHEMA_VERSION,
            ts_ns: u64::from(i),
            host: host.clone(),
            seq: u64::from(i),
            process: Some(Arc::new(Process {
                pid: 1000 + i,
                exec_id: format!("a8cea09b:{}:6579166", 1000 + i),
                exe: "/usr/bin/true".into(),
                argv: vec!["true".into()],
                cwd: "/srv".into(),
                comm: "true".into(),
                ancestry: ancestry.clone(),
                ..Default::default()
            })),
            container: workload.clone(),
            compat_syscall: false,
            payload: Payload::Exit {
                code: 0,
                signal: None,
                core_dumped: false,
            },
        })
        .collect();
    let mut buf = Vec::with_capacity(16 << 10);
    let mut json = rampart_event::json::EventJsonWriter::new();
    let t = Instant::now();
    for ev in &events {
        buf.clear();
        let _ = json.write(ev, &mut buf);
    }
    let writer = t.elapsed();
    let t = Instant::now();
    for ev in &events {
        buf.clear();
        let _ = serde_json::to_writer(&mut buf, ev);
    }
    let plain = t.elapsed();
    let rate = |d: Duration| f64::from(n) / d.as_secs_f64();
    println!(
        "new processes with a shared 5-deep lineage: JSON writer {:.0} events/s ({:.2} us/event, {} bytes/event); plain serde_json {:.0} events/s",
        rate(writer),
        writer.as_secs_f64() * 1e6 / f64::from(n),
        buf.len(),
        rate(plain)
    );
}

/// Child-process entry for the throughput run: opens a file in a loop.
pub fn gen_opens() {
    let secs: u64 = std::env::var("RAMPART_BENCH_GEN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let path = std::env::var("RAMPART_BENCH_GEN_FILE").unwrap_or_else(|_| "/etc/hostname".into());
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        for _ in 0..1000 {
            let _ = std::fs::File::open(&path);
        }
    }
}

/// A memory figure of this process from /proc/self/status, in KiB.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// (VmRSS, RssAnon) in KiB. RssAnon is the heap; the rest of RSS is mostly the
/// kernel ring buffer's pages, which count once the producer has written them.
fn rss_kib() -> (u64, u64) {
    (status_kib("VmRSS:"), status_kib("RssAnon:"))
}

/// Starts and stops `n` containers, at most 16 at a time.
fn churn_containers(image: &str, n: u64, progress: bool) -> anyhow::Result<()> {
    let mut running = Vec::new();
    for i in 0..n {
        running.push(
            Command::new("docker")
                .args(["run", "--rm", "--network", "none", image, "true"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()?,
        );
        if running.len() >= 16 {
            for mut c in running.drain(..) {
                let _ = c.wait();
            }
        }
        if progress && i % 100 == 99 {
            let (rss, anon) = rss_kib();
            println!("  {} containers, RSS {rss} KiB (heap {anon} KiB)", i + 1);
        }
    }
    for mut c in running {
        let _ = c.wait();
    }
    Ok(())
}

fn memory(a: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "== memory: sensor RSS across {} containers started and stopped (after {} warm-up containers) ==",
        a.containers, a.warmup
    );
    let mut s = rampart_sensor::start(SensorConfig::default())?;
    let consumer = Consumer::start(&mut s);
    std::thread::sleep(Duration::from_secs(2));
    let (cold, cold_anon) = rss_kib();
    // The warm-up fills caches to their working size and lets the producer touch the
    // ring buffer's pages, so "start" is the level a running sensor sits at.
    churn_containers(&a.image, a.warmup, false)?;
    std::thread::sleep(Duration::from_secs(75));
    let (start, start_anon) = rss_kib();
    let t = Instant::now();
    churn_containers(&a.image, a.containers, true)?;
    let (peak, peak_anon) = rss_kib();
    println!(
        "  started and stopped {} in {:.1}s; waiting 75 s for eviction grace periods and a heap trim",
        a.containers,
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(75));
    let (end, end_anon) = rss_kib();
    let events = consumer.finish();
    println!(
        "RSS KiB: cold={cold} start={start} after-churn={peak} after-grace={end} (delta {:+}); heap KiB: cold={cold_anon} start={start_anon} after-churn={peak_anon} after-grace={end_anon} (delta {:+}); events={events}; cached containers={}",
        end as i64 - start as i64,
        end_anon as i64 - start_anon as i64,
        s.containers.len()
    );
    Ok(())
}

fn percentiles(name: &str, mut us: Vec<u64>) {
    if us.is_empty() {
        println!("{name:<34} no samples");
        return;
    }
    us.sort_unstable();
    let p = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<34} n={:<6} p50={:>6}us p90={:>6}us p99={:>6}us max={:>6}us",
        us.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    );
}

fn latency(a: &BenchArgs) -> anyhow::Result<()> {
    use std::io::BufWriter;
    println!("== alert latency: kernel event -> alert written (shipped library + marker rule) ==");
    let file = std::env::temp_dir().join("rampart-bench-open");
    std::fs::write(&file, b"x")?;
    let dir = std::env::temp_dir().join(format!("rampart-bench-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let marker = dir.join("marker.yaml");
    std::fs::write(
        &marker,
        format!(
            "- rule: bench latency marker\n  desc: fires on every open of the bench file\n  condition: evt.type in (open, openat) and fd.name = {}\n  output: bench open %fd.name by %proc.name\n  priority: NOTICE\n",
            file.display()
        ),
    )?;
    let mut rules = vec![marker];
    rules.extend(rampart_agent::config::default_rules_dir());
    let noise = rampart_detect::NoiseConfig {
        window_ns: 0,
        rate_per_sec: 0.0,
        burst: 1.0,
    };
    let (engine, errors) = rampart_detect::RuleEngine::load_with(&rules, noise)?;
    println!(
        "rules loaded: {} ({} failed)",
        engine.ruleset().rules().len(),
        errors.len()
    );
    let mut out = BufWriter::new(std::fs::File::create(dir.join("alerts.jsonl"))?);
    let s = sensor(None, None, Duration::ZERO, SyscallHook::Auto, true)?;
    let n = a.alerts.max(1);
    let target = file.to_string_lossy().into_owned();
    let child = std::thread::spawn(move || in_child("paced-open", n));
    let (mut received_us, mut written_us) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(n / 1000 * 4 + 30);
    while written_us.len() < n as usize && Instant::now() < deadline {
        let Ok(ev) = s.events.recv_timeout(Duration::from_millis(100)) else {
            if child.is_finished() && written_us.len() as u64 >= n {
                break;
            }
            continue;
        };
        let is_marker =
            matches!(&ev.payload, rampart_event::Payload::FileOpen { path, .. } if *path == target);
        if is_marker {
            received_us.push(rampart_agent::wall_ns().saturating_sub(ev.ts_ns) / 1000);
        }
        for alert in engine.evaluate(&ev) {
            serde_json::to_writer(&mut out, &alert)?;
            out.write_all(b"\n")?;
            out.flush()?;
            if alert.rule == "bench latency marker" {
                written_us.push(rampart_agent::wall_ns().saturating_sub(alert.ts_ns) / 1000);
            }
        }
    }
    let _ = child.join();
    // Events after quiet spells: the reader sleeps on a long timer then, and each of
    // these must wake it.
    let quiet_n = 40;
    let quiet = std::thread::spawn(move || in_child("quiet-open", quiet_n));
    let mut quiet_us = Vec::new();
    let deadline = Instant::now() + QUIET_OPEN_INTERVAL * quiet_n as u32 + Duration::from_secs(10);
    while quiet_us.len() < quiet_n as usize && Instant::now() < deadline {
        let Ok(ev) = s.events.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if matches!(&ev.payload, rampart_event::Payload::FileOpen { path, .. } if *path == target) {
            quiet_us.push(rampart_agent::wall_ns().saturating_sub(ev.ts_ns) / 1000);
        }
    }
    let _ = quiet.join();
    drop(s);
    percentiles("baseline: kernel -> event received", received_us);
    percentiles("kernel -> alert written", written_us);
    percentiles(
        &format!(
            "after quiet spells ({} ms apart): kernel -> event received",
            QUIET_OPEN_INTERVAL.as_millis()
        ),
        quiet_us,
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    if a.which == Which::Overhead || a.which == Which::All {
        overhead(&a)?;
    }
    if a.which == Which::Throughput || a.which == Which::All {
        throughput(&a)?;
    }
    if a.which == Which::Latency || a.which == Which::All {
        latency(&a)?;
    }
    if a.which == Which::Memory || a.which == Which::All {
        memory(&a)?;
    }
    Ok(0)
}
