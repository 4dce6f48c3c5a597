//! Runs the recorder benchmark's queries on an existing recording, for profiling
//! (`perf record -g`) without the append phase: one container's last hour, a
//! 10-minute window and a retro-hunt of the shipped rules over the last hour.
//!
//! `cargo run --release -p rampart-recorder --example query_profile -- DIR [CONTAINER] [RUNS] [WHAT]`
//! with DIR a recording (`rampart bench recorder --recorder-dir D` leaves one in
//! `D/recorder`); WHAT is `all` (default), `container`, `window`, `hunt` (the shipped
//! hunt, then the sequential one it replaced, as the same-run baseline) or
//! `hunt-only` (the shipped hunt alone, for a profile of it).

use std::time::Instant;

use rampart_recorder::{Query, Recorder};

/// The allocator the `rampart` binary ships with, so these figures are its figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu_time() -> f64 {
    // SAFETY: getrusage fills the struct we own; all-zero bytes are a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .ok_or("usage: query_profile DIR [CONTAINER] [RUNS] [WHAT]")?;
    let container = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "rec-client-7".into());
    let runs: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let what = args.get(4).cloned().unwrap_or_else(|| "all".into());
    let rec = Recorder::open_read_only(dir)?;
    let end = rec.summary()?.newest_ns.ok_or("empty recording")?;
    let since = end.saturating_sub(3_600_000_000_000);
    let report = |name: &str, n: u64, wall: f64, cpu: f64| {
        println!(
            "{name}: {n} events, {:.1} ms wall, {:.1} ms CPU, {:.0} k/s wall, {:.0} k/CPU-s",
            wall * 1e3,
            cpu * 1e3,
            n as f64 / wall / 1e3,
            n as f64 / cpu / 1e3
        );
    };
    for _ in 0..runs {
        if what == "all" || what == "container" {
            let (c0, t) = (cpu_time(), Instant::now());
            let mut it = rec.query(&Query::new().container(&container).since(since).until(end))?;
            let n = it.by_ref().count() as u64;
            let blocks = it.blocks_read();
            report(
                &format!("{container} last hour ({blocks} blocks)"),
                n,
                t.elapsed().as_secs_f64(),
                cpu_time() - c0,
            );
        }
        if what == "all" || what == "window" {
            let (c0, t) = (cpu_time(), Instant::now());
            let n = rec
                .query(
                    &Query::new()
                        .since(end.saturating_sub(600_000_000_000))
                        .until(end),
                )?
                .count() as u64;
            report(
                "10-minute window",
                n,
                t.elapsed().as_secs_f64(),
                cpu_time() - c0,
            );
        }
        if what == "all" || what == "hunt" || what == "hunt-only" {
            let rules =
                std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
            let (c0, t) = (cpu_time(), Instant::now());
            let h = rec.retro_hunt(&[&rules], &Query::new().since(since).until(end))?;
            report(
                &format!("retro-hunt ({} alerts)", h.alerts.len()),
                h.events,
                t.elapsed().as_secs_f64(),
                cpu_time() - c0,
            );
            if what == "hunt-only" {
                continue;
            }
            // The sequential path it replaced, in the same run.
            let (c0, t) = (cpu_time(), Instant::now());
            let (engine, _) = rampart_detect::RuleEngine::load(&[&rules])?;
            let s = rec.retro_hunt_sequential(&engine, &Query::new().since(since).until(end))?;
            report(
                &format!("retro-hunt, sequential ({} alerts)", s.alerts.len()),
                s.events,
                t.elapsed().as_secs_f64(),
                cpu_time() - c0,
            );
        }
    }
    Ok(())
}
