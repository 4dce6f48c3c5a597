//! Memory: the sensor's resident set before and after starting and stopping many
//! containers (Docker), after a warm-up that fills its caches to working size.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_sensor::SensorConfig;
use serde::Serialize;

use crate::consumer::Consumer;
use crate::stats::rss_kib;
use crate::BenchError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct MemoryOptions {
    /// Containers started and stopped in the measured churn.
    pub containers: u64,
    /// Containers started and stopped before the starting level is read.
    pub warmup: u64,
    /// Image of the containers (must exist locally).
    pub image: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct MemoryReport {
    pub containers: u64,
    pub warmup: u64,
    pub churn_seconds: f64,
    /// VmRSS in KiB.
    pub rss_kib: Levels,
    /// RssAnon (the heap) in KiB; the rest of RSS is mostly the ring buffer's pages.
    pub heap_kib: Levels,
    pub events: u64,
    pub cached_containers: usize,
}

/// One memory figure at each point of the run, in KiB.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Levels {
    /// Two seconds after the sensor started.
    pub cold: u64,
    /// After the warm-up and a grace period: the level a running sensor sits at.
    pub start: u64,
    pub after_churn: u64,
    /// After eviction grace periods and a heap trim.
    pub after_grace: u64,
}

impl Levels {
    pub fn delta(&self) -> i64 {
        self.after_grace as i64 - self.start as i64
    }
}

/// Grace for evictions and a heap trim before a level is read.
const GRACE: Duration = Duration::from_secs(75);

pub fn memory(opts: &MemoryOptions) -> Result<MemoryReport, BenchError> {
    let mut s = rampart_sensor::start(SensorConfig::default())?;
    let consumer = Consumer::start(&mut s);
    std::thread::sleep(Duration::from_secs(2));
    let (cold, cold_anon) = rss_kib();
    // The warm-up fills caches to their working size and lets the producer touch the
    // ring buffer's pages, so "start" is the level a running sensor sits at.
    churn_containers(&opts.image, opts.warmup, false)?;
    tracing::info!("warm-up done; waiting {} s", GRACE.as_secs());
    std::thread::sleep(GRACE);
    let (start, start_anon) = rss_kib();
    let t = Instant::now();
    churn_containers(&opts.image, opts.containers, true)?;
    let churn = t.elapsed();
    let (peak, peak_anon) = rss_kib();
    tracing::info!(
        "started and stopped {} in {:.1}s; waiting {} s for eviction grace periods and a heap trim",
        opts.containers,
        churn.as_secs_f64(),
        GRACE.as_secs()
    );
    std::thread::sleep(GRACE);
    let (end, end_anon) = rss_kib();
    let events = consumer.finish();
    Ok(MemoryReport {
        containers: opts.containers,
        warmup: opts.warmup,
        churn_seconds: churn.as_secs_f64(),
        rss_kib: Levels {
            cold,
            start,
            after_churn: peak,
            after_grace: end,
        },
        heap_kib: Levels {
            cold: cold_anon,
            start: start_anon,
            after_churn: peak_anon,
            after_grace: end_anon,
        },
        events,
        cached_containers: s.containers.len(),
    })
}

/// Starts and stops `n` containers, at most 16 at a time.
fn churn_containers(image: &str, n: u64, progress: bool) -> Result<(), BenchError> {
    let mut running = Vec::new();
    for i in 0..n {
        running.push(
            Command::new("docker")
                .args(["run", "--rm", "--network", "none", image, "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(BenchError::io("running docker"))?,
        );
        if running.len() >= 16 {
            for mut c in running.drain(..) {
                let _ = c.wait();
            }
        }
        if progress && i % 100 == 99 {
            let (rss, anon) = rss_kib();
            tracing::info!("{} containers, RSS {rss} KiB (heap {anon} KiB)", i + 1);
        }
    }
    for mut c in running {
        let _ = c.wait();
    }
    Ok(())
}
