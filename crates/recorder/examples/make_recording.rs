//! Writes the recorder benchmark's history (the recorded workload replayed, see
//! [`rampart_recorder::sample::Replay`]) into a directory, for `query_profile`
//! without building the whole CLI for `rampart bench recorder`.
//!
//! `cargo run --release -p rampart-recorder --example make_recording -- DIR [EVENTS]`
//! (EVENTS defaults to 20,000,000; blocks span at most 60 s of record time, as in the
//! benchmark). The directory's previous recording is replaced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_recorder::sample::{self, Replay};
use rampart_recorder::{Recorder, RecorderConfig, Writer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(args.get(1).ok_or("usage: make_recording DIR [EVENTS]")?);
    let n: u64 = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000_000);
    let replay =
        Replay::new(sample::load_events(&sample::workload_file())?, n).ok_or("empty workload")?;
    let _ = std::fs::remove_dir_all(&dir);
    let rec = Recorder::open(RecorderConfig {
        max_age: None,
        max_total_bytes: u64::MAX,
        sync_on_flush: false,
        max_block_span: Duration::from_secs(60),
        ..RecorderConfig::with_dir(&dir)
    })?;
    let w = Writer::start(rec.clone())?;
    let t = Instant::now();
    for i in 0..n {
        let ev = Arc::new(replay.event(i));
        while !w.try_append_event(ev.clone()) {
            std::thread::yield_now();
        }
    }
    w.flush()?;
    w.close()?;
    let (blocks, events) = rec.totals()?;
    let mut names: Vec<String> = replay.generations[7]
        .values()
        .filter_map(|w| w.container().map(|c| c.name.clone()))
        .collect();
    names.sort();
    println!(
        "{events} events in {blocks} blocks, {} bytes, {:.1} s; last generation's containers: {}",
        rec.disk_bytes()?,
        t.elapsed().as_secs_f64(),
        names.join(" ")
    );
    Ok(())
}
