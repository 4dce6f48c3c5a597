//! Sample records for tests, benchmarks and fuzzing: the recorded sensor workload that
//! the detection benchmarks use, and small synthetic events.

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
