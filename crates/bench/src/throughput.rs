//! Throughput: events/s from the kernel to JSON on one consumer thread, with drops
//! (two open generators in child processes); then the user-space ceiling, decode +
//! enrich + JSON of replayed records on one core, and the JSON of new processes that
//! share their lineage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bpf::SyscallHook;
use rampart_event::EventKind;
use serde::Serialize;

use crate::consumer::Consumer;
use crate::storms::{spawn_gen, Child};
use crate::BenchError;

/// What to measure.
#[derive(Clone, Debug)]
pub struct ThroughputOptions {
    /// Seconds of the live run.
    pub seconds: u64,
    /// The generator child (`rampart bench-gen-opens`).
    pub generator: Child,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThroughputReport {
    pub live: Live,
    pub replay: Replay,
    pub lineage: Lineage,
}

/// Kernel to JSON, live.
#[derive(Clone, Debug, Serialize)]
pub struct Live {
    pub events: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub drops: u64,
    pub kernel_ring_full: u64,
    pub kernel_shed: u64,
    pub queue_drops: u64,
}

/// Decode + enrich + JSON of replayed open records, against JSON alone for the same
/// events with the shared-part writer and with plain serde_json.
#[derive(Clone, Debug, Serialize)]
pub struct Replay {
    pub events_per_sec: f64,
    pub us_per_event: f64,
    pub bytes_per_event: usize,
    pub json_only_events_per_sec: f64,
    pub plain_serde_events_per_sec: f64,
}

/// JSON of new processes sharing a 5-deep lineage: the writer (each ancestor encoded
/// once) against plain serde_json (the whole ancestry per event).
#[derive(Clone, Debug, Serialize)]
pub struct Lineage {
    pub writer_events_per_sec: f64,
    pub us_per_event: f64,
    pub bytes_per_event: usize,
    pub plain_serde_events_per_sec: f64,
}

pub fn throughput(opts: &ThroughputOptions) -> Result<ThroughputReport, BenchError> {
    let file = crate::bench_file()?;
    let kinds = Some([EventKind::FileOpen].into_iter().collect());
    let mut s = crate::sensor(kinds, None, Duration::ZERO, SyscallHook::Auto, true)?;
    let consumer = Consumer::start(&mut s);
    // Generators run as separate processes so the sensor does not ignore them.
    let t = Instant::now();
    let gens: Vec<_> = (0..2)
        .map(|_| spawn_gen(&opts.generator, opts.seconds, &file))
        .collect::<Result<_, _>>()
        .map_err(BenchError::io("starting the open generators"))?;
    for mut g in gens {
        let _ = g.wait();
    }
    let elapsed = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let events = consumer.finish();
    let snap = s.stats.snapshot();
    drop(s);
    let live = Live {
        events,
        seconds: elapsed.as_secs_f64(),
        events_per_sec: events as f64 / elapsed.as_secs_f64(),
        drops: snap.kernel_ring_full + snap.kernel_shed + snap.queue_drops,
        kernel_ring_full: snap.kernel_ring_full,
        kernel_shed: snap.kernel_shed,
        queue_drops: snap.queue_drops,
    };
    Ok(ThroughputReport {
        live,
        replay: replay_ceiling(),
        lineage: replay_lineage_json(),
    })
}

/// User-space ceiling: decode + enrich + JSON of realistic records on one core,
/// against a baseline of JSON alone for the same events.
fn replay_ceiling() -> Replay {
    use rampart_bpf::wire::{encode, kind, Header};
    let mut d = rampart_sensor::Decoder::new(
        "bench".into(),
        "b".into(),
        0,
        rampart_sensor::ContainerCache::default(),
    );
    let id = "d".repeat(64);
    let me = std::process::id();
    let hdr = Header {
        kind: kind::OPEN,
        tgid: me,
        tid: me,
        ppid: 1,
        comm: *b"bench\0\0\0\0\0\0\0\0\0\0\0",
        args: [3, 0, 0, 257, 0, 0],
        ..Default::default()
    };
    let rec = encode(
        &hdr,
        &[id.as_bytes(), b"", b"/etc/nginx/conf.d/default.conf", b""],
    );
    let n = 500_000u64;
    let mut buf = Vec::with_capacity(4096);
    let mut json = rampart_event::json::EventJsonWriter::new();
    let t = Instant::now();
    let mut events = Vec::with_capacity(1000);
    for i in 0..n {
        if let Ok(Some(ev)) = d.decode(&rec) {
            buf.clear();
            let _ = json.write(&ev, &mut buf);
            if i < 1000 {
                events.push(ev);
            }
        }
    }
    let full = t.elapsed();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    if events.is_empty() {
        // Nothing decoded: the baselines would have nothing to encode.
        return Replay {
            events_per_sec: rate(full),
            us_per_event: full.as_secs_f64() * 1e6 / n as f64,
            bytes_per_event: buf.len(),
            json_only_events_per_sec: 0.0,
            plain_serde_events_per_sec: 0.0,
        };
    }
    // Baselines, same events: the shared-part JSON writer alone, and plain serde_json
    // (which re-encodes the process and its ancestry for every event).
    let at = |i: u64| &events[(i % events.len() as u64) as usize];
    let t = Instant::now();
    for i in 0..n {
        buf.clear();
        let _ = json.write(at(i), &mut buf);
    }
    let json_only = t.elapsed();
    let t = Instant::now();
    for i in 0..n {
        buf.clear();
        let _ = serde_json::to_writer(&mut buf, at(i));
    }
    let plain = t.elapsed();
    Replay {
        events_per_sec: rate(full),
        us_per_event: full.as_secs_f64() * 1e6 / n as f64,
        bytes_per_event: buf.len(),
        json_only_events_per_sec: rate(json_only),
        plain_serde_events_per_sec: rate(plain),
    }
}

/// JSON of new processes that share their lineage (every fork and exec makes one).
fn replay_lineage_json() -> Lineage {
    use rampart_event::{Ancestor, Event, Payload, Process, Workload};
    let long_argv: Vec<String> = (0..40)
        .map(|i| format!("--option-{i}=\"value {i}\""))
        .collect();
    let ancestry: Vec<Arc<Ancestor>> = (0..5u32)
        .map(|depth| {
            Arc::new(Ancestor {
                pid: 100 + depth,
                exec_id: format!("a8cea09b:{}:6579165", 100 + depth),
                exe: "/usr/lib/jvm/java-17/bin/java".into(),
                argv: long_argv.clone(),
                comm: "java".into(),
                exe_upper_layer: false,
            })
        })
        .collect();
    let host: Arc<str> = Arc::from("bench");
    let workload = Arc::new(Workload::Host { cgroup_id: 1 });
    let n = 100_000u32;
    let events: Vec<Event> = (0..n)
        .map(|i| Event {
            schema: rampart_event::SCHEMA_VERSION,
            ts_ns: u64::from(i),
            host: host.clone(),
            seq: u64::from(i),
            process: Some(Arc::new(Process {
                pid: 1000 + i,
                exec_id: format!("a8cea09b:{}:6579166", 1000 + i),
                exe: "/usr/bin/true".into(),
                argv: vec!["true".into()],
                cwd: "/srv".into(),
                comm: "true".into(),
                ancestry: ancestry.clone(),
                ..Default::default()
            })),
            container: workload.clone(),
            compat_syscall: false,
            payload: Payload::Exit {
                code: 0,
                signal: None,
                core_dumped: false,
            },
        })
        .collect();
    let mut buf = Vec::with_capacity(16 << 10);
    let mut json = rampart_event::json::EventJsonWriter::new();
    let t = Instant::now();
    for ev in &events {
        buf.clear();
        let _ = json.write(ev, &mut buf);
    }
    let writer = t.elapsed();
    let t = Instant::now();
    for ev in &events {
        buf.clear();
        let _ = serde_json::to_writer(&mut buf, ev);
    }
    let plain = t.elapsed();
    let rate = |d: Duration| f64::from(n) / d.as_secs_f64();
    Lineage {
        writer_events_per_sec: rate(writer),
        us_per_event: writer.as_secs_f64() * 1e6 / f64::from(n),
        bytes_per_event: buf.len(),
        plain_serde_events_per_sec: rate(plain),
    }
}
