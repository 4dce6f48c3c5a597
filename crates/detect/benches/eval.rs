//! Rule evaluation throughput on one core.
//!
//! Loads Falco's stable + incubating rules (and Rampart's library under `rules/` when
//! present), generates a realistic mix of events (exec, opens, connects, …) and
//! measures events/s for the compiled engine, then for a naive tree-walking
//! interpreter of the same ASTs (same kind index) as the baseline.
//!
//! `cargo bench -p rampart-detect --bench eval`

use std::collections::HashMap;
use std::sync::Arc;
/// Thread CPU time: the machine is shared (builds run beside the benchmark), so wall
/// time would measure the scheduler; CPU time measures one core's work.
#[derive(Clone, Copy)]
struct Instant(f64);
impl Instant {
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Instant(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    }
    fn elapsed(&self) -> Elapsed {
        Elapsed(Instant::now().0 - self.0)
    }
}
struct Elapsed(f64);
impl Elapsed {
    fn as_secs_f64(&self) -> f64 {
        self.0
    }
    fn as_nanos(&self) -> u128 {
        (self.0 * 1e9) as u128
    }
}

use rampart_detect::baseline::Interp;
use rampart_detect::loader::rule_asts;
use rampart_detect::{load_texts, EvalCtx};
use rampart_event::{
    Ancestor, Container, Event, L4Proto, OpenAccess, Payload, Process, SockAddr, Workload,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[(self.next() % v.len() as u64) as usize]
    }
}

const PROCS: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "nginx",
        "/usr/sbin/nginx",
        &["nginx", "-g", "daemon off;"],
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
    ),
    ("bash", "/bin/bash", &["bash"], "sshd", "/usr/sbin/sshd"),
    (
        "python3",
        "/usr/bin/python3",
        &["python3", "/app/server.py"],
        "bash",
        "/bin/bash",
    ),
    (
        "node",
        "/usr/local/bin/node",
        &["node", "index.js"],
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
    ),
    (
        "java",
        "/usr/bin/java",
        &["java", "-jar", "app.jar"],
        "sh",
        "/bin/sh",
    ),
    (
        "sh",
        "/bin/sh",
        &["sh", "-c", "run-parts /etc/cron.daily"],
        "cron",
        "/usr/sbin/cron",
    ),
    (
        "curl",
        "/usr/bin/curl",
        &["curl", "-s", "http://localhost:8080/health"],
        "sh",
        "/bin/sh",
    ),
    (
        "cat",
        "/bin/cat",
        &["cat", "/etc/os-release"],
        "bash",
        "/bin/bash",
    ),
    ("ls", "/bin/ls", &["ls", "-la"], "bash", "/bin/bash"),
    (
        "grep",
        "/bin/grep",
        &["grep", "-r", "TODO", "src"],
        "bash",
        "/bin/bash",
    ),
    (
        "apt-get",
        "/usr/bin/apt-get",
        &["apt-get", "install", "-y", "vim"],
        "bash",
        "/bin/bash",
    ),
    (
        "postgres",
        "/usr/lib/postgresql/15/bin/postgres",
        &["postgres", "-D", "/var/lib/postgresql/data"],
        "containerd-shim",
        "/usr/bin/containerd-shim-runc-v2",
    ),
];

const PATHS: &[(&str, u32)] = &[
    ("/etc/ld.so.cache", 0o2000000),
    ("/usr/lib/x86_64-linux-gnu/libc.so.6", 0o2000000),
    ("/var/log/nginx/access.log", 0o2101),
    ("/tmp/upload-1234", 0o101),
    ("/etc/passwd", 0),
    ("/proc/self/status", 0),
    ("/app/config.yaml", 0),
    ("/etc/nginx/nginx.conf", 0),
    ("/usr/share/zoneinfo/UTC", 0),
    ("/var/lib/postgresql/data/base/1/1259", 2),
    ("/etc/shadow", 0),
    ("/root/.bash_history", 0o2001),
];

fn make_events(n: usize) -> Vec<Event> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let containers: Vec<Arc<Workload>> = (0..8)
        .map(|i| {
            Arc::new(if i == 0 {
                Workload::Host { cgroup_id: 1 }
            } else {
                Workload::Container(Container {
                    id: format!("{i:x}").repeat(64),
                    name: format!("app-{i}"),
                    image: "registry.local/app:1.2".into(),
                    image_repository: "registry.local/app".into(),
                    image_tag: "1.2".into(),
                    metadata_complete: true,
                    ..Default::default()
                })
            })
        })
        .collect();
    (0..n)
        .map(|i| {
            let (comm, exe, argv, pcomm, pexe) = *rng.pick(PROCS);
            let process = Arc::new(Process {
                pid: 1000 + (i % 5000) as u32,
                tid: 1000 + (i % 5000) as u32,
                ppid: 900,
                exec_id: format!("b:{i}:1"),
                uid: if i % 3 == 0 { 0 } else { 1000 },
                euid: if i % 3 == 0 { 0 } else { 1000 },
                exe: exe.into(),
                argv: argv.iter().map(|s| s.to_string()).collect(),
                cwd: "/app".into(),
                comm: comm.into(),
                start_ns: 1_700_000_000_000_000_000 - 60_000_000_000,
                ancestry: vec![
                    Arc::new(Ancestor {
                        pid: 900,
                        exec_id: "b:900:1".into(),
                        exe: pexe.into(),
                        argv: vec![pcomm.into()],
                        comm: pcomm.into(),
                        exe_upper_layer: false,
                    }),
                    Arc::new(Ancestor {
                        pid: 1,
                        exec_id: "b:1:1".into(),
                        exe: "/sbin/init".into(),
                        argv: vec!["init".into()],
                        comm: "init".into(),
                        exe_upper_layer: false,
                    }),
                ],
                ..Default::default()
            });
            let roll = rng.next() % 100;
            let payload = if roll < 35 {
                Payload::Exec {
                    filename: exe.into(),
                    interpreter: None,
                    from_memfd: false,
                    from_deleted: false,
                }
            } else if roll < 80 {
                let (path, flags) = *rng.pick(PATHS);
                Payload::FileOpen {
                    path: path.into(),
                    path_raw: None,
                    flags,
                    mode: 0o644,
                    access: OpenAccess::from_flags(flags),
                    ret: 3,
                    repeats: 0,
                }
            } else if roll < 95 {
                let ip = *rng.pick(&[
                    "93.184.216.34",
                    "10.0.0.12",
                    "172.17.0.3",
                    "140.82.112.3",
                    "127.0.0.1",
                ]);
                let port = *rng.pick(&[443u16, 80, 5432, 6379, 22, 4444]);
                Payload::NetConnect {
                    proto: L4Proto::Tcp,
                    local: Some(SockAddr::Inet {
                        ip: "172.17.0.2"
                            .parse()
                            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                        port: 40000,
                    }),
                    remote: SockAddr::Inet {
                        ip: ip.parse().unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
                        port,
                    },
                    ret: -115,
                }
            } else {
                Payload::FileUnlink {
                    path: "/tmp/upload-1234".into(),
                    ret: 0,
                }
            };
            Event {
                compat_syscall: false,
                schema: 1,
                ts_ns: 1_700_000_000_000_000_000 + i as u64 * 1000,
                host: "bench".into(),
                seq: i as u64,
                process: Some(process),
                container: rng.pick(&containers).clone(),
                payload,
            }
        })
        .collect()
}

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/falco"
    );
    let mut files: Vec<String> = vec![
        format!("{fixtures}/falco_rules.yaml"),
        format!("{fixtures}/falco-incubating_rules.yaml"),
    ];
    // RAMPART_BENCH_FALCO_ONLY=1 leaves Rampart's own library out.
    let library = if std::env::var_os("RAMPART_BENCH_FALCO_ONLY").is_some() {
        None
    } else {
        std::fs::read_dir(format!("{root}/rules")).ok()
    };
    if let Some(rd) = library {
        let mut lib: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path().display().to_string())
            .filter(|p| p.ends_with(".yaml") || p.ends_with(".yml"))
            .collect();
        lib.sort();
        files.extend(lib);
    }
    let texts: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok().map(|t| (f.clone(), t)))
        .collect();

    let mut load = [0.0f64; 3];
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        for (i, v) in l.split_whitespace().take(3).enumerate() {
            load[i] = v.parse().unwrap_or(0.0);
        }
    }
    println!(
        "(times are this thread's CPU time; machine load average {:.1})",
        load[0]
    );
    let t = Instant::now();
    let (set, errors) = load_texts(&texts);
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "loaded {} rules from {} file(s) in {load_ms:.1} ms ({} rule(s) failed)",
        set.rules().len(),
        texts.len(),
        errors.len()
    );

    // A pool that stays in cache, replayed: the sensor hands each event over right
    // after decoding it, so it is hot; a 200k-event pool measures DRAM misses instead
    // (kept as a second figure).
    let events = make_events(2_000);
    let rounds = 1_000;

    // Compiled engine.
    let mut matches = 0usize;
    let t = Instant::now();
    for _ in 0..rounds {
        for ev in &events {
            matches += set.count_matches(ev);
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let compiled_eps = (events.len() * rounds) as f64 / secs;
    println!(
        "compiled:  {:>12.0} events/s  ({:.0} ns/event, {} matches) [hot pool of {} events]",
        compiled_eps,
        1e9 / compiled_eps,
        matches,
        events.len()
    );
    let cold = make_events(200_000);
    let t = Instant::now();
    let mut cold_matches = 0usize;
    for _ in 0..5 {
        for ev in &cold {
            cold_matches += set.count_matches(ev);
        }
    }
    let cold_eps = (cold.len() * 5) as f64 / t.elapsed().as_secs_f64();
    println!(
        "compiled:  {:>12.0} events/s  ({:.0} ns/event, {} matches) [cold pool of {} events]",
        cold_eps,
        1e9 / cold_eps,
        cold_matches,
        cold.len()
    );

    if std::env::var_os("RAMPART_BENCH_RULES").is_some() {
        let mut per_rule: Vec<(f64, usize, &str)> = set
            .rules()
            .iter()
            .filter(|r| r.enabled)
            .map(|r| {
                let t = Instant::now();
                let mut n = 0;
                for ev in events.iter().cycle().take(events.len() * 50) {
                    let ctx = EvalCtx::new(ev);
                    if r.matches(&ctx) {
                        n += 1;
                    }
                }
                (
                    t.elapsed().as_nanos() as f64 / (events.len() * 50) as f64,
                    n,
                    r.name.as_str(),
                )
            })
            .collect();
        per_rule.sort_by(|a, b| b.0.total_cmp(&a.0));
        for k in rampart_event::EventKind::ALL {
            let evs: Vec<&Event> = events.iter().filter(|e| e.kind() == k).collect();
            if evs.is_empty() {
                continue;
            }
            let t = Instant::now();
            let mut n = 0;
            for _ in 0..200 {
                for ev in &evs {
                    n += set.count_matches(ev);
                }
            }
            let ns = t.elapsed().as_nanos() as f64 / (200 * evs.len()) as f64;
            println!(
                "  {k:<12} {:>3} rules  {ns:>8.1} ns/event  {n} matches",
                set.rules_for_kind(k)
            );
        }
        for (ns, n, name) in per_rule.iter().take(15) {
            println!("  {ns:>8.1} ns/event  {n:>7} matches  {name}");
        }
    }

    // Baseline: tree-walking interpreter over the same ASTs, same kind index.
    let bundle = rule_asts(&texts);
    let kinds: HashMap<&str, _> = set
        .rules()
        .iter()
        .map(|r| (r.name.as_str(), r.kinds))
        .collect();
    let rules: Vec<_> = bundle
        .rules
        .iter()
        .filter_map(|(n, e)| kinds.get(n.as_str()).map(|k| (*k, e)))
        .collect();
    let interp = Interp {
        macros: &bundle.macros,
        lists: &bundle.lists,
    };
    let base_rounds = 10;
    let mut base_matches = 0usize;
    let t = Instant::now();
    for ev in events.iter().cycle().take(events.len() * base_rounds) {
        let ctx = EvalCtx::new(ev);
        for (k, e) in &rules {
            if k.contains(ev.kind()) && interp.eval(e, &ctx) {
                base_matches += 1;
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let base_eps = (events.len() * base_rounds) as f64 / secs;
    println!("baseline:  {:>12.0} events/s  ({:.0} ns/event, {} matches) [hot pool, tree-walking interpreter]", base_eps, 1e9 / base_eps, base_matches);
    println!("speed-up:  {:.1}x", compiled_eps / base_eps);
}
