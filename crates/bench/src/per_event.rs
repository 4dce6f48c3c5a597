//! The sensor's user-space cost per event, stage by stage: records captured from the
//! real kernel programs during exec, open and connect storms, then replayed in this
//! process through each stage on its own, so each figure is that stage's alone:
//!
//! - parse: the wire record's header and fields ([`rampart_bpf::wire::Record::parse`]);
//! - decode + enrich: [`rampart_sensor::Decoder::decode`] (the typed event, its process
//!   and ancestry from the process tree, its container), less the parse;
//! - rules: the rule engine with the given rules files over the decoded events;
//! - output: the event as JSON (what `rampart sensor` and the JSON outputs write);
//! - in-use map: the image scanner's per-container fold of loaded files (the path an
//!   exec or open shows, kept first-seen in a bounded set), before the image's package
//!   files are known (every new path kept) and after (only owned files kept), and that
//!   cost as a share of one open + read + close of the open storm, timed in this run.
//!
//! The baseline in the same run is a pass over the same records that only touches
//! them (the loop and memory traffic every stage pays). Run it in the `-icount` qemu
//! guest (scripts/vm-overhead's kernels) to read the figures as instructions.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_scan::in_use::{loaded_path, LoadedFiles, PathMap};

use serde::Serialize;

use crate::storms::{in_child, Child, StormKind};
use crate::BenchError;

#[derive(Clone, Debug)]
pub struct PerEventOptions {
    /// Rules files or directories evaluated in the rules stage.
    pub rules: Vec<PathBuf>,
    /// Passes over the captured records per stage (the median is reported).
    pub passes: u32,
    /// Exec storm iterations while capturing (the open and connect storms are sized
    /// from it).
    pub execs: u64,
    pub storm: Child,
}

#[derive(Clone, Debug, Serialize)]
pub struct PerEventReport {
    /// Records captured, and the events they decoded into.
    pub records: usize,
    pub events: usize,
    /// Captured records by wire kind name.
    pub kinds: Vec<(String, usize)>,
    pub rules_loaded: usize,
    /// Median ns per record (per event for rules and output) of each stage.
    pub touch_ns: f64,
    pub parse_ns: f64,
    pub decode_enrich_ns: f64,
    pub rules_ns: f64,
    pub output_ns: f64,
    /// The in-use map's fold per event, before the image's files are known.
    pub in_use_ns: f64,
    /// The same once only package files are kept.
    pub in_use_owned_ns: f64,
    /// One open + read + close of the open storm (no sensor), ns.
    pub open_iteration_ns: f64,
    /// `in_use_ns` over `open_iteration_ns`, percent.
    pub in_use_share_of_open_pct: f64,
    pub alerts_per_pass: usize,
    /// The kernel programs' side of each storm, from the kernel's own run counters
    /// (absent where the kernel refuses `BPF_ENABLE_STATS`).
    pub kernel: Vec<KernelCost>,
}

/// What the kernel programs ran per operation of one storm.
#[derive(Clone, Debug, Serialize)]
pub struct KernelCost {
    pub storm: String,
    pub ops: u64,
    /// Records the storm put on the ring, per operation.
    pub records_per_op: f64,
    /// ns in BPF programs per operation, all programs together (in the `-icount`
    /// guest: instructions).
    pub ns_per_op: f64,
    /// The programs that ran: name, runs per operation, ns per operation.
    pub programs: Vec<(String, f64, f64)>,
}

/// Captures records from the kernel during the storms, then times each stage.
pub fn per_event(opts: &PerEventOptions) -> Result<PerEventReport, BenchError> {
    let (records, kernel) = capture(opts)?;
    let (engine, _errors) = rampart_detect::RuleEngine::load(&opts.rules)?;
    let rules_loaded = engine.ruleset().rules().len();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for r in &records {
        if let Ok(rec) = rampart_bpf::wire::Record::parse(r) {
            let name = rampart_bpf::wire::kind::ALL
                .iter()
                .find(|(_, k)| *k == rec.hdr.kind)
                .map_or("?", |(name, _)| name);
            *kinds.entry(name.to_ascii_lowercase()).or_default() += 1;
        }
    }
    let passes = opts.passes.max(1);
    let n = records.len().max(1) as f64;
    let median = |mut v: Vec<Duration>| -> Duration {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let per = |d: Duration, count: f64| d.as_nanos() as f64 / count.max(1.0);

    let touch = median(
        (0..passes)
            .map(|_| {
                let t = Instant::now();
                let mut sum = 0u64;
                for r in &records {
                    sum = sum.wrapping_add(r.first().copied().unwrap_or(0) as u64 + r.len() as u64);
                }
                std::hint::black_box(sum);
                t.elapsed()
            })
            .collect(),
    );
    let parse = median(
        (0..passes)
            .map(|_| {
                let t = Instant::now();
                for r in &records {
                    let _ = std::hint::black_box(rampart_bpf::wire::Record::parse(r));
                }
                t.elapsed()
            })
            .collect(),
    );
    // A fresh decoder each pass: the process tree is rebuilt from the captured exec
    // and fork records, as the live sensor builds it.
    let mut events = Vec::new();
    let decode = median(
        (0..passes)
            .map(|_| {
                let mut decoder = rampart_sensor::Decoder::new(
                    "bench".into(),
                    "bench-boot".into(),
                    0,
                    rampart_sensor::ContainerCache::default(),
                );
                let mut out = Vec::with_capacity(records.len());
                let t = Instant::now();
                for r in &records {
                    if let Ok(Some(ev)) = decoder.decode(r) {
                        out.push(ev);
                    }
                }
                let d = t.elapsed();
                events = out;
                d
            })
            .collect(),
    );
    let n_events = events.len() as f64;
    let mut alerts_per_pass = 0;
    let rules = median(
        (0..passes)
            .map(|_| {
                let t = Instant::now();
                let mut alerts = 0;
                for ev in &events {
                    alerts += engine.evaluate(ev).len();
                }
                let d = t.elapsed();
                alerts_per_pass = alerts;
                d
            })
            .collect(),
    );
    let mut json = rampart_event::json::EventJsonWriter::new();
    let mut buf = Vec::with_capacity(4096);
    let output = median(
        (0..passes)
            .map(|_| {
                let t = Instant::now();
                for ev in &events {
                    buf.clear();
                    let _ = json.write(ev, &mut buf);
                }
                t.elapsed()
            })
            .collect(),
    );
    // The in-use map: one container's bounded set, looked up by container id as the
    // stage does; every event is offered, as the stage sees them all.
    let fold_pass = |owned: Option<Arc<PathMap<usize>>>| -> Duration {
        let mut containers: PathMap<LoadedFiles> = PathMap::default();
        let mut files = LoadedFiles::default();
        if let Some(owned) = owned {
            files.restrict_to(owned);
        }
        containers.insert("bench".to_string(), files);
        let t = Instant::now();
        for ev in &events {
            if let Some(state) = containers.get_mut("bench") {
                if let Some(path) = loaded_path(ev) {
                    std::hint::black_box(state.fold(path, ev.ts_ns, 16_384));
                }
            }
        }
        t.elapsed()
    };
    let in_use = median((0..passes).map(|_| fold_pass(None)).collect());
    // A package set of a typical image's size, none of it the storm's files.
    let owned: Arc<PathMap<usize>> = Arc::new(
        (0..5_000)
            .map(|i| {
                (
                    format!("/usr/lib/python3/dist-packages/pkg{}/mod{i}.py", i % 50),
                    i % 50,
                )
            })
            .collect(),
    );
    let in_use_owned = median(
        (0..passes)
            .map(|_| fold_pass(Some(Arc::clone(&owned))))
            .collect(),
    );
    let opens = (opts.execs * 20).max(1000);
    let open_storm = median(
        (0..passes.min(5))
            .map(|_| crate::storms::run_storm(StormKind::Open, opens))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let open_iteration_ns = per(open_storm, opens as f64);
    let in_use_ns = per(in_use, n_events);
    Ok(PerEventReport {
        in_use_ns,
        in_use_owned_ns: per(in_use_owned, n_events),
        open_iteration_ns,
        in_use_share_of_open_pct: 100.0 * in_use_ns / open_iteration_ns.max(1.0),
        records: records.len(),
        events: events.len(),
        kinds: kinds.into_iter().collect(),
        rules_loaded,
        touch_ns: per(touch, n),
        parse_ns: per(parse, n),
        decode_enrich_ns: per(decode.saturating_sub(parse), n),
        rules_ns: per(rules, n_events),
        output_ns: per(output, n_events),
        alerts_per_pass,
        kernel,
    })
}

/// Loads the kernel programs and keeps every record the storms make (this process's
/// own are ignored in the kernel), with what the kernel programs ran for each storm.
fn capture(opts: &PerEventOptions) -> Result<(Vec<Vec<u8>>, Vec<KernelCost>), BenchError> {
    use rampart_bpf::run_stats;
    let mut sensor = rampart_bpf::load(&rampart_bpf::LoadOptions::default())?;
    // Accounting on only while capturing; without it the kernel figures are left out.
    let stats = run_stats::enable_run_stats().ok();
    let mut records = Vec::new();
    let mut kernel = Vec::new();
    let drain = |sensor: &mut rampart_bpf::Sensor, records: &mut Vec<Vec<u8>>| {
        while let Some(item) = sensor.ring.next() {
            records.push(item.to_vec());
        }
    };
    for (kind, n) in [
        (StormKind::Exec, opts.execs),
        (StormKind::Open, opts.execs * 10),
        (StormKind::Connect, opts.execs),
    ] {
        // Reading the counters is itself bpf() calls, which the sensor's fexit on bpf
        // sees: two reads back to back measure that, and it is taken off below.
        // Without accounting the counters stay zero: no point reading them.
        let (before, reading) = if stats.is_some() {
            let first = run_stats::program_runs();
            let before = run_stats::program_runs();
            let reading = run_stats::runs_between(&first, &before);
            (before, reading)
        } else {
            Default::default()
        };
        let records_before = records.len();
        // In pieces, so the ring never fills while the storm runs.
        let piece = (n / 10).max(1);
        let mut done = 0;
        while done < n {
            in_child(&opts.storm, kind, piece);
            drain(&mut sensor, &mut records);
            done += piece;
        }
        if stats.is_some() {
            let mut ran = run_stats::runs_between(&before, &run_stats::program_runs());
            for (name, r) in ran.iter_mut() {
                if let Some((_, own)) = reading.iter().find(|(n, _)| n == name) {
                    r.runs = r.runs.saturating_sub(own.runs);
                    r.run_ns = r.run_ns.saturating_sub(own.run_ns);
                }
            }
            ran.retain(|(_, r)| r.runs > 0);
            ran.sort_by_key(|p| std::cmp::Reverse(p.1.run_ns));
            let ops = done.max(1) as f64;
            kernel.push(KernelCost {
                storm: kind.as_str().to_string(),
                ops: done,
                records_per_op: (records.len() - records_before) as f64 / ops,
                ns_per_op: ran.iter().map(|(_, r)| r.run_ns as f64).sum::<f64>() / ops,
                programs: ran
                    .into_iter()
                    .map(|(name, r)| (name, r.runs as f64 / ops, r.run_ns as f64 / ops))
                    .collect(),
            });
        }
    }
    drop(stats);
    std::thread::sleep(Duration::from_millis(100));
    drain(&mut sensor, &mut records);
    Ok((records, kernel))
}
