//! Shared helpers of the recorder's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_event::Event;
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
