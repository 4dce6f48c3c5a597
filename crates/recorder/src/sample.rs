//! Sample records for tests, benchmarks and fuzzing: the recorded sensor workload that
//! the detection benchmarks use, and small synthetic events.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_event::{Container, Event, OpenAccess, Payload, Process, Workload, SCHEMA_VERSION};

/// The recorded workload of real sensor events (`crates/detect-e2e/benches/data`).
pub fn workload_file() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../detect-e2e/benches/data/workload.jsonl.gz"
    ))
}

/// Events of a gzip'd JSON-lines file (lines that do not parse are skipped), with
/// processes and containers shared by `Arc` as the sensor hands them over.
pub fn load_events(path: &Path) -> std::io::Result<Vec<Event>> {
    let f = std::fs::File::open(path)?;
    let mut out = Vec::new();
    let mut procs: std::collections::HashMap<String, Vec<Arc<Process>>> = Default::default();
    let mut works: Vec<Arc<Workload>> = Vec::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(f)).lines() {
        let line = line?;
        let Ok(mut ev) = serde_json::from_str::<Event>(&line) else {
            continue;
        };
        if let Some(p) = &ev.process {
            let v = procs.entry(p.exec_id.clone()).or_default();
            match v.iter().find(|q| ***q == **p) {
                Some(q) => ev.process = Some(q.clone()),
                None => v.push(p.clone()),
            }
        }
        match works.iter().find(|w| ***w == *ev.container) {
            Some(w) => ev.container = w.clone(),
            None => works.push(ev.container.clone()),
        }
        out.push(ev);
    }
    Ok(out)
}

/// A small synthetic file-open event in container `c` (`None`: the host).
pub fn event(ts_ns: u64, seq: u64, c: Option<&str>, pid: u32, path: &str) -> Event {
    let container = match c {
        Some(id) => Workload::Container(Container {
            id: id.to_owned(),
            name: format!("name-{}", &id[..id.len().min(4)]),
            image: "debian:12".into(),
            metadata_complete: true,
            ..Default::default()
        }),
        None => Workload::Host { cgroup_id: 1 },
    };
    Event {
        schema: SCHEMA_VERSION,
        ts_ns,
        host: "node".into(),
        seq,
        process: Some(Arc::new(Process {
            pid,
            tid: pid,
            ppid: 1,
            exec_id: format!("b:{pid}:1"),
            exe: "/bin/cat".into(),
            argv: vec!["cat".into(), path.into()],
            comm: "cat".into(),
            cwd: "/".into(),
            ..Default::default()
        })),
        container: Arc::new(container),
        compat_syscall: false,
        payload: Payload::FileOpen {
            path: path.into(),
            path_raw: None,
            flags: 0,
            mode: 0,
            access: OpenAccess::from_flags(0),
            ret: 3,
            repeats: 0,
        },
    }
}

/// Replays the workload as `n` events (the recorder benchmark's history): replica `r`
/// is shifted by `r` spans, and uses container generation `r * 8 / replicas`, so
/// containers are replaced over time as on a real node.
pub struct Replay {
    /// The workload's events.
    pub base: Vec<Event>,
    span: u64,
    t0: u64,
    /// Per generation, the workload's containers by the address of the original.
    pub generations: Vec<HashMap<usize, Arc<Workload>>>,
    /// Times the workload is replayed.
    pub replicas: u64,
    n: u64,
}

impl Replay {
    /// `None` when `base` is empty (there is nothing to replay).
    pub fn new(base: Vec<Event>, n: u64) -> Option<Self> {
        if base.is_empty() {
            return None;
        }
        let n = n.max(1);
        let t_min = base.iter().map(|e| e.ts_ns).min().unwrap_or(0);
        let t_max = base.iter().map(|e| e.ts_ns).max().unwrap_or(0);
        let span = t_max - t_min + 1_000_000;
        let replicas = n.div_ceil(base.len() as u64);
        // The run ends about now, so the catalog's times look like a live node's.
        let t0 = rampart_event::wall_ns().saturating_sub(replicas * span);
        let mut generations = Vec::new();
        for g in 0..8u64 {
            let mut m = HashMap::new();
            for e in &base {
                let ptr = Arc::as_ptr(&e.container) as usize;
                m.entry(ptr).or_insert_with(|| {
                    let mut w = (*e.container).clone();
                    if let Workload::Container(c) = &mut w {
                        c.id = format!("{g:x}{}", c.id.get(1..).unwrap_or(""));
                        c.name = format!("{}-{g}", c.name);
                    }
                    Arc::new(w)
                });
            }
            generations.push(m);
        }
        Some(Self {
            span,
            t0: t0.saturating_sub(t_min),
            base,
            generations,
            replicas,
            n,
        })
    }

    /// The container generation event `i` belongs to.
    pub fn generation_of(&self, i: u64) -> usize {
        let r = i / self.base.len() as u64;
        (r * 8 / self.replicas.max(1)).min(7) as usize
    }

    /// Event `i` of the replay.
    pub fn event(&self, i: u64) -> Event {
        let r = i / self.base.len() as u64;
        let e = &self.base[(i % self.base.len() as u64) as usize];
        let mut ev = e.clone();
        ev.ts_ns = self.t0.wrapping_add(e.ts_ns) + r * self.span;
        ev.seq = i;
        if let Some(w) =
            self.generations[self.generation_of(i)].get(&(Arc::as_ptr(&e.container) as usize))
        {
            ev.container = w.clone();
        }
        ev
    }

    /// The last event's time.
    pub fn end_ts(&self) -> u64 {
        self.event(self.n - 1).ts_ns
    }
}
