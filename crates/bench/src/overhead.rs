//! The overhead comparison: each storm without the sensor and under each sensor arm
//! (as shipped, reporting every open, without its 32-bit hook, on the syscall
//! tracepoints, on the sys_exit hook, and with any other BPF object given), in
//! alternating rounds of [`PIECES`] child runs; the time in the sensor's kernel
//! programs per operation from an extra piece with BPF run-time statistics on; then
//! each sensor arm against itself detached, in alternating pairs ("ABBA") of pieces,
//! the steadiest figure on a shared machine.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rampart_bpf::SyscallHook;
use rampart_sensor::RunningSensor;
use serde::Serialize;

use crate::consumer::Consumer;
use crate::stats::{cpu_time, median, quartiles};
use crate::storms::{in_child, Child, Sample, StormKind};
use crate::BenchError;

/// Child runs a storm is split into within one arm's run.
pub const PIECES: u64 = 5;

/// The built-in arms, in order, by the names [`OverheadOptions::arms`] takes.
pub const ARM_KEYS: [&str; 8] = [
    "without",
    "with",
    "every-open",
    "no-compat",
    "tracepoints",
    "sys-exit",
    "in-use",
    "every-open-in-use",
];

/// The suffix of an arm whose consumer also keeps the image scanner's in-use map; the
/// same name without it is the arm to compare it with.
pub const IN_USE_SUFFIX: &str = ", in-use map";

/// What to measure.
#[derive(Clone, Debug)]
pub struct OverheadOptions {
    /// Iterations of the exec storm.
    pub execs: u64,
    /// Iterations of the open storm (a tenth for connect, five times for syscall).
    pub ops: u64,
    /// Storms to run: exec, open, connect, syscall.
    pub storms: Vec<String>,
    /// Alternating rounds per storm.
    pub rounds: u32,
    /// Sensor arms to run besides the baseline (keys of [`ARM_KEYS`]).
    pub arms: Vec<String>,
    /// Pairs of pieces per storm and sensor arm in the paired comparison; 0 skips it.
    pub pairs: u32,
    /// Further BPF objects, each an arm of its own.
    pub bpf_objects: Vec<PathBuf>,
    /// The storm child (`rampart bench-storm`).
    pub storm: Child,
}

/// Everything one `overhead` run measured.
#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    pub rounds: u32,
    pub pieces: u64,
    pub storms: Vec<StormReport>,
}

/// One storm under every arm; the first arm is the baseline without the sensor.
#[derive(Clone, Debug, Serialize)]
pub struct StormReport {
    pub storm: StormKind,
    /// Operations per arm run (split into [`PIECES`] pieces).
    pub n: u64,
    pub arms: Vec<ArmResult>,
    /// What the in-use bookkeeping added, for each in-use arm run beside its partner.
    pub in_use: Vec<InUseCost>,
}

/// An in-use arm against the same arm without the bookkeeping, in the same rounds.
#[derive(Clone, Debug, Serialize)]
pub struct InUseCost {
    pub arm: String,
    pub partner: String,
    /// The sensor process's extra CPU per storm operation, µs (median of each): noisy
    /// where few events reach user space.
    pub user_us_per_op: f64,
    /// That as a share of the bare operation's CPU (the arm without a sensor), percent.
    pub pct_of_bare: f64,
    /// The bookkeeping's own time per storm operation, every call timed (an upper
    /// bound: a clock read per event), ns, and as a share of the bare operation's CPU.
    pub timed_ns_per_op: f64,
    pub timed_pct_of_bare: f64,
    /// Events per storm operation that reached it.
    pub events_per_op: f64,
    /// The storm child's own CPU per operation, in-use arm against partner, percent
    /// (the two compete for the same cores).
    pub storm_cpu_pct: f64,
}

/// One arm's figures for one storm. Percentages are against the baseline arm.
#[derive(Clone, Debug, Serialize)]
pub struct ArmResult {
    pub name: String,
    /// Median CPU time (user + sys of the storm child) per operation.
    pub cpu_us_per_op: f64,
    pub cpu_pct: f64,
    /// Every piece's CPU per operation.
    pub cpu_us_per_op_pieces: Vec<f64>,
    /// The best piece against the baseline's best: interference on a shared machine
    /// only ever adds time, so this is the steadier comparison of two arms.
    pub best_pct: f64,
    pub wall_us_per_op: f64,
    pub wall_pct: f64,
    /// Present for the arms that run a sensor.
    pub sensor: Option<SensorFigures>,
}

/// What a sensor arm adds: its kernel programs' time and its user space.
#[derive(Clone, Debug, Serialize)]
pub struct SensorFigures {
    /// Median time in the sensor's kernel programs per operation.
    pub kernel_ns_per_op: f64,
    /// That time as a share of the bare operation's CPU time: steadier than the
    /// difference of two noisy CPU medians (but not counting the hook's own dispatch,
    /// and inflated a little by the statistics).
    pub kernel_pct_of_bare: f64,
    /// This process's CPU per event; None under 1000 events (it would then show the
    /// bench's own work, not a cost per event).
    pub user_us_per_event: Option<f64>,
    /// This process's CPU (the sensor's user space and the consumer) per storm
    /// operation, median over the rounds.
    pub user_us_per_op: f64,
    /// Events per storm operation (median over the rounds).
    pub events_per_op: f64,
    /// In-use arms: ns per storm operation spent in the in-use bookkeeping, each call
    /// timed (median over the rounds).
    pub in_use_ns_per_op: Option<f64>,
    pub drops: u64,
    /// The programs that took the most kernel time (at most 5, each 1% or more).
    pub top_programs: Vec<ProgramCost>,
    /// The arm against itself detached; None when pairs is 0.
    pub paired: Option<Paired>,
}

/// One kernel program's share of a sensor arm's kernel time, per storm operation
/// (tail calls included; inflated a little by the statistics' two clock reads).
#[derive(Clone, Debug, Serialize)]
pub struct ProgramCost {
    pub name: String,
    pub ns_per_op: f64,
    pub runs_per_op: f64,
    pub ns_per_run: f64,
}

/// A sensor arm attached against the same sensor detached, in alternating pairs.
#[derive(Clone, Debug, Serialize)]
pub struct Paired {
    pub pairs: u32,
    /// Operations per piece.
    pub piece: u64,
    /// Median CPU ratio of the pairs, as a percentage change.
    pub cpu_pct: f64,
    /// The middle half of the pairs' CPU ratios.
    pub cpu_pct_q1: f64,
    pub cpu_pct_q3: f64,
    pub wall_pct: f64,
    /// Events the attached pieces produced.
    pub events: u64,
    pub drops: u64,
    /// Median time to detach or attach.
    pub switch_ms: f64,
}

/// Runs the comparison. `on_storm` is called with each storm's report as it
/// completes (a run takes minutes); the whole report is returned at the end.
pub fn overhead(
    opts: &OverheadOptions,
    on_storm: &mut dyn FnMut(&StormReport),
) -> Result<OverheadReport, BenchError> {
    crate::bench_file()?;
    let mut arms = builtin_arms(&opts.arms)?;
    for p in &opts.bpf_objects {
        let bytes = std::fs::read(p).map_err(BenchError::io(format!(
            "reading BPF object {}",
            p.display()
        )))?;
        arms.push(Arm::new(
            &format!("with {}", p.display()),
            Setup::Sensor {
                object: Some(bytes),
                window: rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                hook: SyscallHook::Auto,
                compat: true,
                in_use: false,
            },
        ));
    }
    let storms = opts
        .storms
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse()? {
            k @ (StormKind::Exec
            | StormKind::Open
            | StormKind::Connect
            | StormKind::ConnectFin
            | StormKind::Syscall
            | StormKind::Udp
            | StormKind::Mixed) => Ok(k),
            _ => Err(BenchError::UnknownStorm(s.to_string())),
        })
        .collect::<Result<Vec<StormKind>, _>>()?;
    let mut report = OverheadReport {
        rounds: opts.rounds,
        pieces: PIECES,
        storms: Vec::new(),
    };
    for kind in storms {
        let n = match kind {
            StormKind::Exec | StormKind::Mixed => opts.execs,
            StormKind::Connect | StormKind::ConnectFin => opts.ops / 10,
            // Unwatched syscalls: what a hook costs the syscalls it does not watch.
            StormKind::Syscall => opts.ops * 5,
            _ => opts.ops,
        };
        let storm = |n| in_child(&opts.storm, kind, n);
        storm(n / 10); // warm caches
        arms.iter_mut().for_each(Arm::reset);
        tracing::info!(storm = kind.as_str(), n, "overhead storm");
        // Rotate the order each round so drift on a shared machine hits every arm.
        for round in 0..opts.rounds {
            for i in 0..arms.len() {
                let idx = (i + round as usize) % arms.len();
                arms[idx].run(&storm, n)?;
            }
        }
        let mut results = Vec::with_capacity(arms.len());
        let base = &arms[0];
        let base_cpu = median(base.cpu_per_op.clone());
        let base_wall = median(base.wall_per_op.clone());
        let base_best = crate::stats::min(&base.cpu_per_op);
        for arm in &arms {
            results.push(arm.result(base_cpu, base_wall, base_best, &storm, n, opts.pairs)?);
        }
        let in_use = in_use_costs(&results, base_cpu);
        let storm_report = StormReport {
            storm: kind,
            n,
            arms: results,
            in_use,
        };
        on_storm(&storm_report);
        report.storms.push(storm_report);
    }
    Ok(report)
}

/// Each in-use arm against its partner (the same name without [`IN_USE_SUFFIX`]) when
/// both ran.
fn in_use_costs(results: &[ArmResult], base_cpu: f64) -> Vec<InUseCost> {
    results
        .iter()
        .filter_map(|arm| {
            let partner_name = arm.name.strip_suffix(IN_USE_SUFFIX)?;
            let partner = results.iter().find(|r| r.name == partner_name)?;
            let sensor = arm.sensor.as_ref()?;
            let user = sensor.user_us_per_op - partner.sensor.as_ref()?.user_us_per_op;
            let timed = sensor.in_use_ns_per_op.unwrap_or(0.0);
            Some(InUseCost {
                arm: arm.name.clone(),
                partner: partner.name.clone(),
                user_us_per_op: user,
                pct_of_bare: user / base_cpu.max(1e-12) * 100.0,
                timed_ns_per_op: timed,
                timed_pct_of_bare: timed / (base_cpu * 1000.0).max(1e-9) * 100.0,
                events_per_op: sensor.events_per_op,
                storm_cpu_pct: pct(arm.cpu_us_per_op, partner.cpu_us_per_op),
            })
        })
        .collect()
}

/// The built-in arms `wanted` names (the baseline always), in [`ARM_KEYS`] order.
fn builtin_arms(wanted: &[String]) -> Result<Vec<Arm>, BenchError> {
    let sensor = |window, hook, compat| Setup::Sensor {
        object: None,
        window,
        hook,
        compat,
        in_use: false,
    };
    let in_use = |window| Setup::Sensor {
        object: None,
        window,
        hook: SyscallHook::Auto,
        compat: true,
        in_use: true,
    };
    let shipped = rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW;
    let all = [
        Arm::new("without", Setup::NoSensor),
        Arm::new("with", sensor(shipped, SyscallHook::Auto, true)),
        Arm::new(
            "with, every open",
            sensor(Duration::ZERO, SyscallHook::Auto, true),
        ),
        // What watching 32-bit syscalls costs: fexit alone against fexit beside a
        // program on every syscall; without trampolines, the syscall tracepoints
        // against the sys_exit hook "with" takes then.
        Arm::new(
            "with, no 32-bit hook",
            sensor(shipped, SyscallHook::Auto, false),
        ),
        // The per-syscall tracepoints with the 32-bit program beside them: what "with"
        // would cost on a kernel without trampolines if it did not take sys_exit.
        Arm::new(
            "with, syscall tracepoints",
            sensor(shipped, SyscallHook::SyscallTracepoints, true),
        ),
        // The hook every kernel has (the same as "with" without trampolines).
        Arm::new(
            "with, sys_exit hook",
            sensor(shipped, SyscallHook::SysExit, true),
        ),
        // "with" and "with, every open" again, the consumer also keeping the image
        // scanner's in-use map: what that bookkeeping costs a storm.
        Arm::new(&format!("with{IN_USE_SUFFIX}"), in_use(shipped)),
        Arm::new(
            &format!("with, every open{IN_USE_SUFFIX}"),
            in_use(Duration::ZERO),
        ),
    ];
    let wanted: Vec<&str> = wanted.iter().map(|w| w.trim()).collect();
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !w.is_empty() && !ARM_KEYS.contains(w))
    {
        return Err(BenchError::UnknownArm {
            arm: unknown.to_string(),
            choices: ARM_KEYS[1..].join(", "),
        });
    }
    Ok(all
        .into_iter()
        .zip(ARM_KEYS)
        .filter(|(_, k)| *k == "without" || wanted.contains(k))
        .map(|(arm, _)| arm)
        .collect())
}

/// What runs beside the storm in one arm of the overhead comparison.
enum Setup {
    NoSensor,
    /// The sensor with the embedded BPF object, or with the given one, folding
    /// repeated read-only opens over `window` (zero: every open is an event), on the
    /// given syscall hook, watching 32-bit syscalls or not; its consumer keeping the
    /// in-use map or not.
    Sensor {
        object: Option<Vec<u8>>,
        window: Duration,
        hook: SyscallHook,
        compat: bool,
        in_use: bool,
    },
}

impl Setup {
    /// The arm's sensor, started; None for the arm without one.
    fn start(&self) -> Result<Option<RunningSensor>, BenchError> {
        let Setup::Sensor {
            object,
            window,
            hook,
            compat,
            ..
        } = self
        else {
            return Ok(None);
        };
        crate::sensor(None, object.as_deref(), *window, *hook, *compat).map(Some)
    }
}

/// One arm of the overhead comparison and the figures it gathered for one storm.
struct Arm {
    name: String,
    setup: Setup,
    cpu_per_op: Vec<f64>,
    wall_per_op: Vec<f64>,
    sensor_us_per_event: Vec<f64>,
    /// This process's CPU per storm operation, one figure per run.
    sensor_us_per_op: Vec<f64>,
    /// Events per storm operation, and the in-use bookkeeping's ns per operation (in-use
    /// arms), one figure per run.
    events_per_op: Vec<f64>,
    in_use_ns_per_op: Vec<f64>,
    /// Time in the sensor's kernel programs per storm operation: the hook cost by
    /// itself, steadier than CPU/op on a shared machine.
    kernel_ns_per_op: Vec<f64>,
    /// Per program, over the statistics pieces of every round: (runs, ns), per op.
    kernel_by_program: BTreeMap<String, (f64, f64)>,
    kernel_pieces: u32,
    drops: u64,
}

/// Operations in one piece of a storm of `n`.
fn piece_len(n: u64) -> u64 {
    (n / PIECES).max(1)
}

fn pct(x: f64, base: f64) -> f64 {
    (x / base.max(1e-12) - 1.0) * 100.0
}

impl Arm {
    fn new(name: &str, setup: Setup) -> Self {
        Self {
            name: name.to_string(),
            setup,
            cpu_per_op: Vec::new(),
            wall_per_op: Vec::new(),
            sensor_us_per_event: Vec::new(),
            sensor_us_per_op: Vec::new(),
            events_per_op: Vec::new(),
            in_use_ns_per_op: Vec::new(),
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
        self.sensor_us_per_op.clear();
        self.events_per_op.clear();
        self.in_use_ns_per_op.clear();
        self.kernel_ns_per_op.clear();
        self.kernel_by_program.clear();
        self.kernel_pieces = 0;
        self.drops = 0;
    }

    /// Runs the storm once under this arm, in [`PIECES`] child runs, and records
    /// each piece's figures.
    fn run(&mut self, storm: &dyn Fn(u64) -> Sample, n: u64) -> Result<(), BenchError> {
        let Some(mut sensor) = self.setup.start()? else {
            self.run_pieces(storm, n);
            return Ok(());
        };
        let in_use = matches!(self.setup, Setup::Sensor { in_use: true, .. });
        let consumer = Consumer::start_with(&mut sensor, in_use);
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
        let (events, in_use_ns) = consumer.finish_with_in_use();
        let sensor_cpu = cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_before);
        let ops = (n + piece) as f64;
        self.events_per_op.push(events as f64 / ops);
        if in_use {
            self.in_use_ns_per_op.push(in_use_ns as f64 / ops);
        }
        let snap = sensor.stats.snapshot();
        drop(sensor);
        // This process's CPU over the events: with only a handful of events (an arm
        // whose object reports nothing for this storm) it would show the bench's own
        // work, not a cost per event.
        self.sensor_us_per_op
            .push(sensor_cpu.as_secs_f64() * 1e6 / ops);
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

    /// The arm's figures against the baseline's; a sensor arm's paired run happens
    /// here.
    fn result(
        &self,
        base_cpu: f64,
        base_wall: f64,
        base_best: f64,
        storm: &dyn Fn(u64) -> Sample,
        n: u64,
        pairs: u32,
    ) -> Result<ArmResult, BenchError> {
        let cpu = median(self.cpu_per_op.clone());
        let wall = median(self.wall_per_op.clone());
        let sensor = match self.setup {
            Setup::NoSensor => None,
            Setup::Sensor { .. } => {
                let kernel_ns = median(self.kernel_ns_per_op.clone());
                let mut by_program: Vec<_> = self.kernel_by_program.iter().collect();
                by_program.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
                let pieces = f64::from(self.kernel_pieces.max(1));
                let total: f64 = by_program.iter().map(|(_, (_, ns))| ns).sum();
                let top_programs = by_program
                    .iter()
                    .take(5)
                    .filter(|(_, (_, ns))| *ns >= total / 100.0)
                    .map(|(name, (runs, ns))| ProgramCost {
                        name: (*name).clone(),
                        ns_per_op: ns / pieces,
                        runs_per_op: runs / pieces,
                        ns_per_run: ns / runs.max(f64::MIN_POSITIVE),
                    })
                    .collect();
                let paired = if pairs > 0 {
                    paired(storm, n, pairs, &self.setup)?
                } else {
                    None
                };
                Some(SensorFigures {
                    kernel_ns_per_op: kernel_ns,
                    kernel_pct_of_bare: kernel_ns / (base_cpu * 1000.0).max(1e-9) * 100.0,
                    user_us_per_event: (!self.sensor_us_per_event.is_empty())
                        .then(|| median(self.sensor_us_per_event.clone())),
                    user_us_per_op: median(self.sensor_us_per_op.clone()),
                    events_per_op: median(self.events_per_op.clone()),
                    in_use_ns_per_op: (!self.in_use_ns_per_op.is_empty())
                        .then(|| median(self.in_use_ns_per_op.clone())),
                    drops: self.drops,
                    top_programs,
                    paired,
                })
            }
        };
        Ok(ArmResult {
            name: self.name.clone(),
            cpu_us_per_op: cpu,
            cpu_pct: pct(cpu, base_cpu),
            cpu_us_per_op_pieces: self.cpu_per_op.clone(),
            best_pct: pct(crate::stats::min(&self.cpu_per_op), base_best),
            wall_us_per_op: wall,
            wall_pct: pct(wall, base_wall),
            sensor,
        })
    }
}

/// A sensor arm against itself detached, in pieces that alternate
/// without-with, with-without, ...: drift on a shared machine moves both pieces of a
/// pair alike, so the pairs' ratios are steadier than two arms' medians taken seconds
/// apart. Detached, the programs are not run at all (the hook switch drops their
/// links); the loaded sensor's user space keeps running in both pieces.
fn paired(
    storm: &dyn Fn(u64) -> Sample,
    n: u64,
    pairs: u32,
    setup: &Setup,
) -> Result<Option<Paired>, BenchError> {
    let Some(mut s) = setup.start()? else {
        return Ok(None);
    };
    let in_use = matches!(setup, Setup::Sensor { in_use: true, .. });
    let consumer = Consumer::start_with(&mut s, in_use);
    let piece = piece_len(n);
    let mut cpu_ratios = Vec::new();
    let mut wall_ratios = Vec::new();
    let mut switch_times = Vec::new();
    let attach = |s: &RunningSensor| {
        s.hook_switch
            .attach()
            .map_err(|e| BenchError::Attach(e.to_string()))
    };
    let mut run = |attached: bool| -> Result<Sample, BenchError> {
        let t = Instant::now();
        if attached {
            attach(&s)?;
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
    attach(&s)?;
    std::thread::sleep(Duration::from_millis(300));
    let events = consumer.finish();
    let drops = {
        let snap = s.stats.snapshot();
        snap.kernel_ring_full + snap.kernel_shed + snap.queue_drops
    };
    let ratio_pct = |r: f64| (r - 1.0) * 100.0;
    let (q1, q3) = quartiles(cpu_ratios.clone());
    Ok(Some(Paired {
        pairs,
        piece,
        cpu_pct: ratio_pct(median(cpu_ratios)),
        cpu_pct_q1: ratio_pct(q1),
        cpu_pct_q3: ratio_pct(q3),
        wall_pct: ratio_pct(median(wall_ratios)),
        events,
        drops,
        switch_ms: median(switch_times),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_are_picked_by_key_and_unknown_ones_refused() {
        let names = |w: &[&str]| -> Vec<String> {
            let w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            builtin_arms(&w)
                .map(|a| a.into_iter().map(|a| a.name).collect())
                .unwrap_or_default()
        };
        assert_eq!(names(&["with"]), ["without", "with"]);
        assert_eq!(names(&["sys-exit", "no-compat"]).len(), 3);
        // An in-use arm and its partner: the same name without the suffix.
        let in_use = names(&["in-use", "with"]);
        assert_eq!(in_use, ["without", "with", "with, in-use map"]);
        assert_eq!(
            in_use[2].strip_suffix(IN_USE_SUFFIX),
            Some(in_use[1].as_str())
        );
        assert_eq!(
            names(&["every-open-in-use"]),
            ["without", "with, every open, in-use map"]
        );
        let err = builtin_arms(&["with".into(), "nonsense".into()]).err();
        assert!(err.is_some_and(|e| e.to_string().starts_with("unknown arm nonsense")));
    }
}
