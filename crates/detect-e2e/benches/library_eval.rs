//! Cost of the rule library per event: evaluates the events of every in-file test of
//! `rules/` against (a) Falco's stable rules alone — the baseline measured in the same
//! run —, (b) our library alone and (c) both together, and prints events per second.
//!
//! Run: `cargo bench -p rampart-detect-e2e --bench library_eval`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use rampart_detect::tests_format::build_event;
use rampart_detect::{load_files, EvalCtx, RuleSet};
use rampart_event::Event;

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
}

fn falco_rules() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/falco/falco_rules.yaml"
    ))
}

fn measure(label: &str, set: &RuleSet, events: &[Event], rounds: usize) -> f64 {
    let start = Instant::now();
    let mut matched = 0usize;
    for _ in 0..rounds {
        for ev in events {
            matched += set.count_matches(black_box(ev));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (events.len() * rounds) as f64;
    let per_sec = n / secs;
    println!(
        "{label:<28} {:>4} rules  {:>12.0} events/s  {:>8.1} ns/event  ({matched} matches)",
        set.rules().len(),
        per_sec,
        secs * 1e9 / n
    );
    per_sec
}

fn main() {
    let (ours, e1) = load_files(&[rules_dir()]);
    let (falco, _) = load_files(&[falco_rules()]);
    let (both, _) = load_files(&[falco_rules(), rules_dir()]);
    assert!(e1.is_empty(), "{e1:?}");
    let events: Vec<Event> = ours
        .rules()
        .iter()
        .flat_map(|r| r.tests.should_fire.iter().chain(&r.tests.should_not_fire))
        .filter_map(|s| build_event(s).ok())
        .collect();
    println!("{} events from the in-file tests of rules/", events.len());
    let rounds = 2_000;
    let base = measure("falco stable (baseline)", &falco, &events, rounds);
    let lib = measure("rules/ library", &ours, &events, rounds);
    let all = measure("falco + rules/", &both, &events, rounds);
    // Which rules cost most: each rule's condition alone over all events (the kind
    // index is bypassed, so this is an upper bound for rules of one event kind).
    let mut per_rule: Vec<(f64, &str)> = ours
        .rules()
        .iter()
        .map(|r| {
            let start = Instant::now();
            for _ in 0..200 {
                for ev in &events {
                    let ctx = EvalCtx::new(ev);
                    black_box(r.matches(&ctx));
                }
            }
            let ns = start.elapsed().as_secs_f64() * 1e9 / (200 * events.len()) as f64;
            (ns, r.name.as_str())
        })
        .collect();
    per_rule.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("costliest rule conditions (ns/event, all kinds):");
    for (ns, name) in per_rule.iter().take(8) {
        println!("  {ns:>8.1}  {name}");
    }
    println!(
        "library alone runs at {:.2}x the baseline's rate; both together at {:.2}x",
        lib / base,
        all / base
    );
}
