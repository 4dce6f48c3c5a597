//! Behaviour baselines: learning and scoring cost, replayed.
//!
//! A synthetic hour (by default) of 50 compose workloads of 3 replicas each, 200
//! process starts per second in total, each start with a file write and a connect;
//! every workload has its own set of commands whose arguments vary the way real ones
//! do (numbers, temp names), and now and then something new runs. Events are made in
//! chunks outside the timed loop; only the engine's `observe` is timed, in the thread's
//! CPU time (what other work on a shared host does not inflate). Memory growth is the
//! process's RSS after learning against before it (the event chunks are freed and
//! reused), and the baselines' stored (JSON) size. Then every baseline is locked and a
//! further replayed stretch is scored (the monitor path) in pieces, each piece's events
//! scored by the engine and, replayed identically, by the scoring path as first written
//! (`rampart_baseline::engine::reference`, with its own copy of the locked baselines),
//! in alternating order: the comparison in the same run. The bare replay loop over the
//! same events is the floor. Before that, one replayed minute is scored one kind of
//! event at a time (process starts, file writes, connects), so the figure per kind shows
//! what repeats cost (counted in each container's memo) against what does not.

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_baseline::engine::reference::Scorer;
use rampart_baseline::{BaselineConfig, Engine, Mode};
use rampart_event::{
    Ancestor, Container, Event, L4Proto, OpenAccess, Payload, Process, SockAddr, Workload,
};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct BaselineBenchOptions {
    pub workloads: usize,
    pub replicas: usize,
    /// Process starts per simulated second, over all workloads.
    pub execs_per_sec: u64,
    /// Simulated seconds of learning.
    pub seconds: u64,
    /// Simulated seconds scored after the lock.
    pub score_seconds: u64,
}

impl Default for BaselineBenchOptions {
    fn default() -> Self {
        Self {
            workloads: 50,
            replicas: 3,
            execs_per_sec: 200,
            seconds: 3600,
            score_seconds: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineBenchReport {
    pub workloads: usize,
    pub containers: usize,
    pub simulated_seconds: u64,
    pub learn_events: u64,
    pub learn_ns_per_event: f64,
    pub learn_ns_per_exec: f64,
    pub rss_before_kb: u64,
    pub rss_after_kb: u64,
    pub rss_growth_kb: i64,
    pub stored_bytes: usize,
    pub items: usize,
    pub score_events: u64,
    pub score_ns_per_event: f64,
    /// The scoring path as first written, over the same events in the same run.
    pub score_reference_ns_per_event: f64,
    /// Reference over engine.
    pub score_speedup: f64,
    /// The best piece of each (least disturbed by other work on the host).
    pub score_best_piece_ns_per_event: f64,
    pub score_reference_best_piece_ns_per_event: f64,
    /// The replay loop without the engine, over the same events.
    pub replay_only_ns_per_event: f64,
    /// Scoring by kind of event (each kind fed alone over the same replayed minute):
    /// process starts, whose command lines rarely repeat, pay for building and looking
    /// up their keys; the file writes and connects of a workload repeat and are mostly
    /// counted in the container's memo.
    pub score_exec_ns_per_event: f64,
    pub score_write_ns_per_event: f64,
    pub score_connect_ns_per_event: f64,
    pub deviations_while_scoring: u64,
    /// Items outside the baselines, as the engine (raised or suppressed as repeats) and
    /// the reference (counted) saw them: they must agree.
    pub outside_items_engine: u64,
    pub outside_items_reference: u64,
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// This thread's CPU time in ns: what the timed loops count, so time the host gives to
/// other work (two cores shared by several builds) is not charged to the engine.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A small deterministic generator (xorshift), so runs repeat.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const COMMANDS: [&[&str]; 10] = [
    &["/usr/bin/python3.11", "python3", "-m", "worker", "--id"],
    &[
        "/usr/bin/curl",
        "curl",
        "-fsS",
        "http://127.0.0.1:8080/health",
    ],
    &["/usr/bin/sh", "sh", "-c", "gzip /var/log/app/rotated"],
    &["/usr/bin/gzip", "gzip", "/var/log/app/rotated"],
    &["/usr/local/bin/app", "app", "serve", "--port"],
    &["/usr/bin/date", "date", "+%s"],
    &["/usr/bin/cat", "cat", "/proc/self/status"],
    &["/usr/bin/sleep", "sleep"],
    &["/usr/bin/find", "find", "/tmp", "-mmin", "+60", "-delete"],
    &["/usr/bin/ls", "ls", "-la", "/data"],
];

#[derive(Clone, Copy)]
struct Mark {
    rng: u64,
    seq: u64,
}

struct World {
    containers: Vec<Arc<Workload>>,
    /// Per workload, its commands (a subset of COMMANDS).
    commands: Vec<Vec<usize>>,
    rng: Rng,
    seq: u64,
}

impl World {
    fn new(o: &BaselineBenchOptions) -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut containers = Vec::new();
        let mut commands = Vec::new();
        for w in 0..o.workloads {
            let mut labels = BTreeMap::new();
            labels.insert("com.docker.compose.project".into(), "bench".into());
            labels.insert("com.docker.compose.service".into(), format!("svc{w}"));
            for r in 0..o.replicas {
                let n = w * o.replicas + r;
                containers.push(Arc::new(Workload::Container(Container {
                    id: format!("{n:064x}"),
                    cgroup_id: 10_000 + n as u64,
                    name: format!("svc{w}-{r}"),
                    image: format!("bench/svc{w}:1"),
                    labels: labels.clone(),
                    metadata_complete: true,
                    ..Container::default()
                })));
            }
            let k = 3 + rng.below(5) as usize;
            commands.push(
                (0..k)
                    .map(|_| rng.below(COMMANDS.len() as u64) as usize)
                    .collect(),
            );
        }
        Self {
            containers,
            commands,
            rng,
            seq: 0,
        }
    }

    /// Where the replay is, to make the same events again from there.
    fn mark(&self) -> Mark {
        Mark {
            rng: self.rng.0,
            seq: self.seq,
        }
    }

    fn rewind(&mut self, m: Mark) {
        self.rng.0 = m.rng;
        self.seq = m.seq;
    }

    fn event(
        &mut self,
        ts: u64,
        c: &Arc<Workload>,
        process: &Arc<Process>,
        payload: Payload,
    ) -> Arc<Event> {
        self.seq += 1;
        Arc::new(Event {
            schema: 1,
            ts_ns: ts,
            host: "bench".into(),
            seq: self.seq,
            process: Some(process.clone()),
            container: c.clone(),
            compat_syscall: false,
            payload,
        })
    }

    /// One process start and its file write and connect.
    fn start(&mut self, ts: u64, replicas: usize, out: &mut Vec<Arc<Event>>) {
        let ci = self.rng.below(self.containers.len() as u64) as usize;
        let w = ci / replicas;
        let c = self.containers[ci].clone();
        let cmds = &self.commands[w];
        let cmd = COMMANDS[cmds[self.rng.below(cmds.len() as u64) as usize]];
        let mut argv: Vec<String> = cmd[1..].iter().map(|s| s.to_string()).collect();
        // Volatile arguments: numbers and temp names.
        argv.push(self.rng.below(100_000).to_string());
        if self.rng.below(4) == 0 {
            argv.push(format!("/tmp/tmp.{:08x}", self.rng.next() as u32));
        }
        let mut exe = cmd[0].to_string();
        // Now and then something new (an operator's tool, an update).
        if self.rng.below(20_000) == 0 {
            exe = format!("/usr/bin/tool{}", self.rng.below(1_000_000));
        }
        let p = Arc::new(Process {
            pid: 1000 + self.rng.below(30_000) as u32,
            exe: exe.clone(),
            argv,
            ancestry: vec![Arc::new(Ancestor {
                exe: "/usr/bin/sh".into(),
                ..Ancestor::default()
            })],
            ..Process::default()
        });
        let exec = self.event(
            ts,
            &c,
            &p,
            Payload::Exec {
                filename: exe,
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
        );
        out.push(exec);
        let file = format!("/var/lib/app/{}/part-{}.dat", w % 7, self.rng.below(1000));
        let open = self.event(
            ts + 1000,
            &c,
            &p,
            Payload::FileOpen {
                path: file,
                path_raw: None,
                flags: 0o101,
                mode: 0o644,
                access: OpenAccess::from_flags(0o101),
                ret: 3,
                repeats: 0,
            },
        );
        out.push(open);
        let port = [5432, 6379, 8080][w % 3];
        let connect = self.event(
            ts + 2000,
            &c,
            &p,
            Payload::NetConnect {
                proto: L4Proto::Tcp,
                local: None,
                remote: SockAddr::Inet {
                    ip: std::net::IpAddr::from([10, 0, (w / 250) as u8, (w % 250) as u8]),
                    port,
                },
                ret: 0,
            },
        );
        out.push(connect);
    }
}

fn replay(
    world: &mut World,
    o: &BaselineBenchOptions,
    from_s: u64,
    seconds: u64,
    mut f: impl FnMut(&Arc<Event>, u64),
) -> (u64, u64) {
    let t0 = 1_800_000_000 * 1_000_000_000u64;
    let mut chunk = Vec::with_capacity(3 * o.execs_per_sec as usize);
    let (mut n, mut ns) = (0u64, 0u64);
    for s in from_s..from_s + seconds {
        chunk.clear();
        for i in 0..o.execs_per_sec {
            let ts = t0 + s * 1_000_000_000 + i * (1_000_000_000 / o.execs_per_sec.max(1));
            world.start(ts, o.replicas, &mut chunk);
        }
        let start = thread_cpu_ns();
        for ev in &chunk {
            f(ev, t0 + s * 1_000_000_000);
        }
        ns += thread_cpu_ns().saturating_sub(start);
        n += chunk.len() as u64;
    }
    (n, ns)
}

pub fn baseline(o: &BaselineBenchOptions) -> BaselineBenchReport {
    let cfg = BaselineConfig {
        enabled: true,
        auto_lock: false,
        ..BaselineConfig::default()
    };
    let mut engine = Engine::new(cfg);
    let mut world = World::new(o);
    let mut alerts = Vec::new();
    // Warm the allocator and the chunk buffer before the starting level is read.
    replay(&mut world, o, 0, 2, |_, _| {});
    let rss_before = rss_kb();
    let mut last_tick = 0;
    let (learn_n, learn_ns) = replay(&mut world, o, 0, o.seconds, |ev, now| {
        engine.observe(ev, &mut alerts);
        if now != last_tick {
            last_tick = now;
            engine.tick(now, &mut alerts);
        }
    });
    let _ = engine.take_dirty();
    let _ = engine.take_containers_seen();
    let rss_after = rss_kb();
    let stored: usize = engine
        .baselines()
        .iter()
        .map(|b| serde_json::to_vec(b).map_or(0, |v| v.len()))
        .sum();
    let items: usize = engine.baselines().iter().map(|b| b.len()).sum();
    let names: Vec<String> = engine
        .baselines()
        .iter()
        .map(|b| b.workload.clone())
        .collect();
    let t_lock = 1_800_000_000 * 1_000_000_000u64 + o.seconds * 1_000_000_000;
    for w in &names {
        engine.lock_now(w, t_lock, Mode::Monitor);
    }
    // By kind: one replayed minute, each kind of event alone (exec, write, connect in
    // the order `World::start` makes them), three times over.
    let mut by_kind = [0f64; 3];
    for (kind, figure) in by_kind.iter_mut().enumerate() {
        let start = world.mark();
        let (mut n, mut ns) = (0u64, 0u64);
        let mut chunk = Vec::with_capacity(3 * o.execs_per_sec as usize);
        for _ in 0..3 {
            world.rewind(start);
            for s in o.seconds..o.seconds + 60 {
                chunk.clear();
                for i in 0..o.execs_per_sec {
                    let ts = t_lock
                        + (s - o.seconds) * 1_000_000_000
                        + i * (1_000_000_000 / o.execs_per_sec.max(1));
                    world.start(ts, o.replicas, &mut chunk);
                }
                let t = thread_cpu_ns();
                for ev in chunk.iter().skip(kind).step_by(3) {
                    engine.observe(ev, &mut alerts);
                }
                ns += thread_cpu_ns().saturating_sub(t);
                n += (chunk.len() / 3) as u64;
            }
        }
        world.rewind(start);
        *figure = ns as f64 / n.max(1) as f64;
    }
    let before = engine.stats.clone();
    let mut reference = Scorer::new(
        engine.baselines().to_vec(),
        engine.config().min_observations,
    );
    alerts.clear();
    const PIECES: u64 = 6;
    let piece_secs = (o.score_seconds / PIECES).max(1);
    let (mut score_n, mut score_ns, mut reference_ns, mut replay_ns) = (0u64, 0u64, 0u64, 0u64);
    let (mut best, mut best_reference) = (f64::MAX, f64::MAX);
    let mut sink = 0u64;
    for piece in 0..PIECES {
        let from = o.seconds + piece * piece_secs;
        let start = world.mark();
        let mut run_engine = |world: &mut World| {
            world.rewind(start);
            replay(world, o, from, piece_secs, |ev, _| {
                engine.observe(ev, &mut alerts);
            })
        };
        let mut run_reference = |world: &mut World| {
            world.rewind(start);
            replay(world, o, from, piece_secs, |ev, _| reference.observe(ev))
        };
        // Alternate which goes first, so neither always meets a cold cache.
        let ((n, ns), (_, rns)) = if piece % 2 == 0 {
            let e = run_engine(&mut world);
            (e, run_reference(&mut world))
        } else {
            let r = run_reference(&mut world);
            (run_engine(&mut world), r)
        };
        world.rewind(start);
        let (_, bare) = replay(&mut world, o, from, piece_secs, |ev, _| {
            sink = sink.wrapping_add(std::hint::black_box(ev.ts_ns));
        });
        score_n += n;
        score_ns += ns;
        reference_ns += rns;
        replay_ns += bare;
        best = best.min(ns as f64 / n.max(1) as f64);
        best_reference = best_reference.min(rns as f64 / n.max(1) as f64);
    }
    std::hint::black_box(sink);
    let deviations = engine.stats.deviations - before.deviations;
    let outside_engine = deviations + (engine.stats.suppressed - before.suppressed);
    BaselineBenchReport {
        workloads: o.workloads,
        containers: o.workloads * o.replicas,
        simulated_seconds: o.seconds,
        learn_events: learn_n,
        learn_ns_per_event: learn_ns as f64 / learn_n.max(1) as f64,
        learn_ns_per_exec: learn_ns as f64 / (learn_n / 3).max(1) as f64,
        rss_before_kb: rss_before,
        rss_after_kb: rss_after,
        rss_growth_kb: rss_after as i64 - rss_before as i64,
        stored_bytes: stored,
        items,
        score_events: score_n,
        score_ns_per_event: score_ns as f64 / score_n.max(1) as f64,
        score_reference_ns_per_event: reference_ns as f64 / score_n.max(1) as f64,
        score_speedup: reference_ns as f64 / score_ns.max(1) as f64,
        score_best_piece_ns_per_event: best,
        score_reference_best_piece_ns_per_event: best_reference,
        replay_only_ns_per_event: replay_ns as f64 / score_n.max(1) as f64,
        score_exec_ns_per_event: by_kind[0],
        score_write_ns_per_event: by_kind[1],
        score_connect_ns_per_event: by_kind[2],
        deviations_while_scoring: deviations,
        outside_items_engine: outside_engine,
        outside_items_reference: reference.outside,
    }
}
