//! Latency: kernel event to alert written, with a rule library plus one marker rule
//! that fires on every open of the bench file, from a child opening it once a
//! millisecond. The baseline is kernel event to event received, same run. Then
//! events after quiet spells, each of which must wake the sleeping reader.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rampart_bpf::SyscallHook;
use rampart_event::Payload;
use serde::Serialize;

use crate::stats::Percentiles;
use crate::storms::{in_child, Child, StormKind, QUIET_OPEN_INTERVAL};
use crate::{wall_ns, BenchError};

/// What to measure.
#[derive(Clone, Debug)]
pub struct LatencyOptions {
    /// Marker events (one per millisecond).
    pub alerts: u64,
    /// Rule files or directories loaded beside the marker rule (the shipped library).
    pub rules: Vec<PathBuf>,
    /// The storm child (`rampart bench-storm`).
    pub storm: Child,
}

#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    pub rules_loaded: usize,
    pub rules_failed: usize,
    /// Kernel event to event received (None: no samples).
    pub received: Option<Percentiles>,
    /// Kernel event to alert written.
    pub alert_written: Option<Percentiles>,
    /// Kernel event to event received, for events after quiet spells.
    pub after_quiet: Option<Percentiles>,
    pub quiet_interval_ms: u64,
}

/// Name of the marker rule (its alerts are the ones timed).
const MARKER_RULE: &str = "bench latency marker";

pub fn latency(opts: &LatencyOptions) -> Result<LatencyReport, BenchError> {
    let file = crate::bench_file()?;
    let dir = std::env::temp_dir().join(format!("rampart-bench-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let report = run(opts, &file, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn run(
    opts: &LatencyOptions,
    file: &std::path::Path,
    dir: &std::path::Path,
) -> Result<LatencyReport, BenchError> {
    let marker = dir.join("marker.yaml");
    std::fs::write(
        &marker,
        format!(
            "- rule: {MARKER_RULE}\n  desc: fires on every open of the bench file\n  condition: evt.type in (open, openat) and fd.name = {}\n  output: bench open %fd.name by %proc.name\n  priority: NOTICE\n",
            file.display()
        ),
    )
    .map_err(BenchError::io(format!("writing {}", marker.display())))?;
    let mut rules = vec![marker];
    rules.extend(opts.rules.iter().cloned());
    // Every alert written, none held back: the figure is the pipeline's latency.
    let noise = rampart_detect::NoiseConfig {
        window_ns: 0,
        rate_per_sec: 0.0,
        burst: 1.0,
    };
    let (engine, errors) = rampart_detect::RuleEngine::load_with(&rules, noise)?;
    let rules_loaded = engine.ruleset().rules().len();
    tracing::info!(rules_loaded, failed = errors.len(), "rules loaded");
    let alerts_path = dir.join("alerts.jsonl");
    let mut out = BufWriter::new(std::fs::File::create(&alerts_path).map_err(BenchError::io(
        format!("creating {}", alerts_path.display()),
    ))?);
    let write_err = BenchError::io;
    let mut s = crate::sensor(None, None, Duration::ZERO, SyscallHook::Auto, true)?;
    let n = opts.alerts.max(1);
    let target = file.to_string_lossy().into_owned();
    let is_marker = |p: &Payload| matches!(p, Payload::FileOpen { path, .. } if *path == target);
    let storm = opts.storm.clone();
    let child = std::thread::spawn(move || in_child(&storm, StormKind::PacedOpen, n));
    let (mut received_us, mut written_us) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(n / 1000 * 4 + 30);
    while written_us.len() < n as usize && Instant::now() < deadline {
        let Ok(ev) = s.events.recv_timeout(Duration::from_millis(100)) else {
            if child.is_finished() && written_us.len() as u64 >= n {
                break;
            }
            continue;
        };
        if is_marker(&ev.payload) {
            received_us.push(wall_ns().saturating_sub(ev.ts_ns) / 1000);
        }
        for alert in engine.evaluate(&ev) {
            serde_json::to_writer(&mut out, &alert)?;
            out.write_all(b"\n").map_err(write_err("writing alerts"))?;
            out.flush().map_err(write_err("writing alerts"))?;
            if alert.rule == MARKER_RULE {
                written_us.push(wall_ns().saturating_sub(alert.ts_ns) / 1000);
            }
        }
    }
    let _ = child.join();
    // Events after quiet spells: the reader sleeps on a long timer then, and each of
    // these must wake it.
    let quiet_n = 40;
    let storm = opts.storm.clone();
    let quiet = std::thread::spawn(move || in_child(&storm, StormKind::QuietOpen, quiet_n));
    let mut quiet_us = Vec::new();
    let deadline = Instant::now() + QUIET_OPEN_INTERVAL * quiet_n as u32 + Duration::from_secs(10);
    while quiet_us.len() < quiet_n as usize && Instant::now() < deadline {
        let Ok(ev) = s.events.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        if is_marker(&ev.payload) {
            quiet_us.push(wall_ns().saturating_sub(ev.ts_ns) / 1000);
        }
    }
    let _ = quiet.join();
    drop(s);
    Ok(LatencyReport {
        rules_loaded,
        rules_failed: errors.len(),
        received: Percentiles::of(received_us),
        alert_written: Percentiles::of(written_us),
        after_quiet: Percentiles::of(quiet_us),
        quiet_interval_ms: QUIET_OPEN_INTERVAL.as_millis() as u64,
    })
}
