//! Shared helpers of the recorder's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_detect::tests_format::build_event;
use rampart_detect::RuleEngine;
use rampart_event::{Alert, Event};
use rampart_recorder::{sample, Recorder, RecorderConfig, Writer};

pub fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
}

pub fn workload() -> Vec<Event> {
    sample::load_events(&sample::workload_file()).expect("recorded workload")
}

pub fn config(dir: &Path) -> RecorderConfig {
    RecorderConfig {
        // The workload was recorded long enough ago that an age bound could drop it.
        max_age: None,
        ..RecorderConfig::with_dir(dir)
    }
}

/// Records events through a writer and flushes.
pub fn record(rec: &Arc<Recorder>, events: &[Event]) {
    let w = Writer::start(rec.clone()).unwrap();
    for e in events {
        while !w.try_append_event(Arc::new(e.clone())) {
            std::thread::yield_now();
        }
    }
    w.close().unwrap();
}

/// The workload with the shipped rules' should-fire test events woven in (unique
/// times, inside the workload's time range).
pub fn attack_mix() -> Vec<Event> {
    let mut events = workload();
    let (set, _) = rampart_detect::load_files(&[rules_dir()]);
    let t0 = events[events.len() / 3].ts_ns;
    let container = events[0].container.clone();
    let mut n = 0u64;
    for r in set.rules() {
        for s in &r.tests.should_fire {
            if let Ok(mut e) = build_event(s) {
                n += 1;
                e.ts_ns = t0 + n * 1_000_003;
                if e.container.container().is_some() && n.is_multiple_of(2) {
                    // Half of them in a recorded container, as an attack would be.
                    e.container = container.clone();
                }
                events.push(e);
            }
        }
    }
    assert!(n > 50, "{n} rule test events");
    events.sort_by_key(|e| e.ts_ns);
    // Unique times: the live order and the recorded order must be the same order.
    for i in 1..events.len() {
        if events[i].ts_ns <= events[i - 1].ts_ns {
            events[i].ts_ns = events[i - 1].ts_ns + 1;
        }
    }
    events
}

pub fn key(a: &Alert) -> (String, u64, u64, u64) {
    (a.rule.clone(), a.ts_ns, a.first_ts_ns, a.count)
}

pub fn live_alerts(events: &[Event]) -> Vec<Alert> {
    let (engine, _) = RuleEngine::load(&[rules_dir()]).unwrap();
    let mut out: Vec<Alert> = events.iter().flat_map(|e| engine.evaluate(e)).collect();
    out.extend(engine.flush_all());
    out
}
