//! Cost of rule evaluation per event on one core, for two replayed corpora:
//!
//! - `workload`: a recorded stream of real sensor events from containers doing
//!   ordinary work (shells, apt/dpkg queries, file reads, HTTP fetches, a web server
//!   under load); see `benches/data/README.md` for how it was recorded;
//! - `rule tests`: the events of every in-file test of `rules/` (all attack-like:
//!   nearly every event reaches the conditions of some rule, the worst case).
//!
//! The workload is replayed twice: as deserialised (every event with its own copy
//! of its process, so each event's strings are cache misses) and with processes and
//! containers shared by `Arc` as the sensor's decoder hands them over.
//!
//! Each corpus is evaluated against (a) Falco's stable rules alone — the baseline, in
//! the same run —, (b) Rampart's library alone and (c) both together (the shipped
//! configuration, issue #3's ≥1M events/s target). Two figures each: replaying the
//! corpus in order (a recorded corpus is tens of MB, so every event starts as a cache
//! miss) and with the event hot in cache, as the sensor hands it over right after
//! decoding it. Times are this thread's CPU time, best of several passes, since the
//! machine is shared.
//!
//! Run: `cargo bench -p rampart-detect-e2e --bench library_eval`
//! (`RAMPART_BENCH_RULES=1` adds the costliest library rules per corpus.)

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use rampart_detect::tests_format::build_event;
use rampart_detect::{load_files, EvalCtx, RuleSet};
use std::collections::HashMap;
use std::sync::Arc;

use rampart_event::{Event, Process, Workload};

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
}

fn falco_rules() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/falco/falco_rules.yaml"
    ))
}

fn workload_file() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/data/workload.jsonl.gz"
    ))
}

/// This thread's CPU time in seconds.
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Events of the recorded workload (lines that do not parse are counted and skipped:
/// the event model may gain fields, never lose the ones recorded).
fn load_workload() -> (Vec<Event>, usize) {
    let Ok(f) = std::fs::File::open(workload_file()) else {
        return (Vec::new(), 0);
    };
    let mut events = Vec::new();
    let mut bad = 0;
    for line in BufReader::new(flate2::read::GzDecoder::new(f)).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Event>(&line) {
            Ok(ev) => events.push(ev),
            Err(_) => bad += 1,
        }
    }
    (events, bad)
}

/// The corpus as the sensor hands it over: one shared `Arc` per distinct process
/// snapshot and per workload (the decoder shares them across events; deserialising
/// the recording gives every event its own copies, scattered in memory).
fn share_processes(events: &[Event]) -> Vec<Event> {
    let mut procs: HashMap<(String, u32), Vec<Arc<Process>>> = HashMap::new();
    let mut workloads: Vec<Arc<Workload>> = Vec::new();
    events
        .iter()
        .map(|ev| {
            let mut ev = ev.clone();
            if let Some(p) = ev.process.take() {
                let same = procs.entry((p.exec_id.clone(), p.tid)).or_default();
                ev.process = Some(match same.iter().find(|q| ***q == *p) {
                    Some(q) => q.clone(),
                    None => {
                        let q = Arc::new((*p).clone());
                        same.push(q.clone());
                        q
                    }
                });
            }
            ev.container = match workloads.iter().find(|w| ***w == *ev.container) {
                Some(w) => w.clone(),
                None => {
                    let w = Arc::new((*ev.container).clone());
                    workloads.push(w.clone());
                    w
                }
            };
            ev
        })
        .collect()
}

/// Events per second replaying the corpus in order (best of `passes`), and matches
/// per pass.
fn measure(set: &RuleSet, events: &[Event], min_events: usize, passes: usize) -> (f64, usize) {
    let rounds = min_events.div_ceil(events.len().max(1)).max(1);
    let mut best = f64::MAX;
    let mut matched = 0;
    for _ in 0..passes {
        matched = 0;
        let t = cpu_now();
        for _ in 0..rounds {
            for ev in events {
                matched += set.count_matches(black_box(ev));
            }
        }
        best = best.min(cpu_now() - t);
    }
    ((events.len() * rounds) as f64 / best, matched / rounds)
}

/// Events per second with each event already in the CPU cache, as the sensor hands it
/// over right after decoding it: blocks of 32 events are evaluated once (cold) or
/// five times in a row; the difference is four hot passes. (A corpus of thousands of
/// recorded events is tens of MB, so an in-order replay mostly measures DRAM.)
fn measure_hot(set: &RuleSet, events: &[Event], passes: usize) -> f64 {
    let run = |reps: usize| {
        let t = cpu_now();
        for block in events.chunks(32) {
            for _ in 0..reps {
                for ev in block {
                    black_box(set.count_matches(black_box(ev)));
                }
            }
        }
        cpu_now() - t
    };
    let mut best = f64::MAX;
    for _ in 0..passes {
        let (once, five) = (run(1), run(5));
        best = best.min((five - once).max(1e-9));
    }
    (events.len() * 4) as f64 / best
}

/// Rules by their share of the corpus's evaluation time, as the index runs them:
/// each rule's condition is timed on the events the index selects it for.
fn costliest(set: &RuleSet, events: &[Event]) {
    let mut per_rule: Vec<Vec<&Event>> = vec![Vec::new(); set.rules().len()];
    for ev in events {
        for ri in set.candidates(ev) {
            per_rule[ri].push(ev);
        }
    }
    let mut rows: Vec<(f64, usize, &str)> = per_rule
        .iter()
        .enumerate()
        .filter(|(_, evs)| !evs.is_empty())
        .map(|(ri, evs)| {
            let t = cpu_now();
            for _ in 0..20 {
                for ev in evs {
                    black_box(set.eval_rule(ri, &EvalCtx::new(ev)));
                }
            }
            let total_ns = (cpu_now() - t) * 1e9 / 20.0;
            (total_ns, evs.len(), set.rules()[ri].name.as_str())
        })
        .collect();
    let all: f64 = rows.iter().map(|r| r.0).sum();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "  costliest rule conditions as indexed ({:.1} ns/event in conditions):",
        all / events.len() as f64
    );
    for (total, n, name) in rows.iter().take(12) {
        println!(
            "    {:>5.1}% {:>6} evals {:>7.1} ns/eval  {name}",
            100.0 * total / all,
            n,
            total / *n as f64
        );
    }
}

/// Cost per event kind, with the number of rules indexed for the kind and the
/// kind's share of the corpus's time.
fn per_kind(set: &RuleSet, events: &[Event]) {
    let mut rows = Vec::new();
    for k in rampart_event::EventKind::ALL {
        let evs: Vec<&Event> = events.iter().filter(|e| e.kind() == k).collect();
        if evs.is_empty() {
            continue;
        }
        if std::env::var_os("RAMPART_BENCH_INDEX").is_some() {
            println!("    index {:<14} {}", k.as_str(), set.index_summary(k));
        }
        let t = cpu_now();
        for _ in 0..20 {
            for ev in &evs {
                black_box(set.count_matches(ev));
            }
        }
        let ns = (cpu_now() - t) * 1e9 / (20 * evs.len()) as f64;
        rows.push((k, evs.len(), ns));
    }
    let total: f64 = rows.iter().map(|(_, n, ns)| *n as f64 * ns).sum();
    println!("  per kind (falco + rules/):");
    for (k, n, ns) in rows {
        println!(
            "    {:<14} {n:>6} events {:>4} rules {ns:>8.1} ns/event {:>5.1}% of the time",
            k.as_str(),
            set.rules_for_kind(k),
            100.0 * n as f64 * ns / total
        );
    }
}

fn main() {
    if let Some(secs) = std::env::var("RAMPART_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    {
        // Only the shipped configuration on the workload, for `perf record`.
        let (both, _) = load_files(&[falco_rules(), rules_dir()]);
        let (workload, _) = load_workload();
        let t = cpu_now();
        let mut n = 0usize;
        while cpu_now() - t < secs {
            for ev in &workload {
                n += both.count_matches(black_box(ev));
            }
        }
        println!("profiled {secs} s ({n} matches)");
        return;
    }
    let (ours, e1) = load_files(&[rules_dir()]);
    let (falco, _) = load_files(&[falco_rules()]);
    let (both, _) = load_files(&[falco_rules(), rules_dir()]);
    assert!(e1.is_empty(), "{e1:?}");
    let tests: Vec<Event> = ours
        .rules()
        .iter()
        .flat_map(|r| r.tests.should_fire.iter().chain(&r.tests.should_not_fire))
        .filter_map(|s| build_event(s).ok())
        .collect();
    let (workload, bad) = load_workload();
    let shared = share_processes(&workload);
    if bad > 0 {
        println!("(workload: {bad} line(s) did not parse as events and were skipped)");
    }
    let mut load = 0.0;
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        load = l
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
    }
    println!("(thread CPU time, best of 3 passes; machine load average {load:.1})");
    let sets = [
        ("falco stable (baseline)", &falco),
        ("rules/ library", &ours),
        ("falco + rules/", &both),
    ];
    let corpora: [(&str, &[Event]); 3] = [
        ("workload", &workload),
        (
            "workload, processes and containers shared as the sensor hands them",
            &shared,
        ),
        ("rule tests", &tests),
    ];
    for (corpus, events) in corpora {
        if events.is_empty() {
            println!("corpus {corpus}: no events (missing data file?)");
            continue;
        }
        println!("corpus {corpus}: {} events", events.len());
        let mut base = 0.0;
        let mut hot_base = 0.0;
        for (i, (label, set)) in sets.iter().enumerate() {
            let (eps, matched) = measure(set, events, 2_000_000, 3);
            let hot = measure_hot(set, events, 3);
            if i == 0 {
                base = eps;
                hot_base = hot;
            }
            println!(
                "  {label:<24} {:>4} rules  in order {:>10.0} events/s ({:>6.1} ns, {:.2}x baseline)  hot {:>10.0} events/s ({:>6.1} ns, {:.2}x)  {} matches/pass",
                set.rules().len(),
                eps,
                1e9 / eps,
                eps / base,
                hot,
                1e9 / hot,
                hot / hot_base,
                matched,
            );
        }
        if std::env::var_os("RAMPART_BENCH_RULES").is_some() {
            per_kind(&both, events);
            costliest(&both, events);
        }
    }
}
