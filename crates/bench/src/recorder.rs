//! The flight recorder: append rate, size on disk and query times, with SQLite in
//! the same run (`rampart bench recorder`).
//!
//! Events: the recorded sensor workload (`crates/detect-e2e/benches/data`, 20,867 real
//! events from 14 containers over 38 s) replayed back to back until `events` events,
//! each replica shifted in time and sequence, and every eighth of the run with a new
//! generation of container ids (containers are replaced over time, as on a real
//! node; at most 14 run at once). At 100M events the history spans about 50 hours at
//! the workload's own rate (555 events/s). Processes and containers are shared by
//! `Arc` as the sensor hands them over.
//!
//! Measured:
//! - append: events through `Writer::try_append_event` until the final flush is
//!   catalogued; the CPU time of the encoding thread and of the sealing thread per
//!   event (the recorder's cost on one core), and the wall time;
//! - bytes per event on disk (segments) and the ratio to the events' JSON lines;
//! - one container's last hour, for every container of the last generation (the
//!   busiest included): each query run `query_runs` times, its median wall time, CPU
//!   time (all the query's threads) and events/s; p50 and max over the containers;
//! - a 10-minute window across all containers, streamed in time order;
//! - a retro-hunt of the shipped library (`rules/`) over the last hour, and the same
//!   hunt on the sequential path it replaced (the same alerts are required);
//! - SQLite (WAL, batched inserts of 10,000 per transaction, one row per event with
//!   the payload as JSON and the process and container as columns, an index on
//!   container and time) with the first `sqlite_events` events, and the same
//!   one-container query on both.
//!
//! The machine may be shared: wall times are reported with the CPU times and the
//! load average while the queries ran.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_recorder::sample::{self, Replay};
use rampart_recorder::{Query, Record, RecordTypes, Recorder, RecorderConfig, Writer};
use serde::Serialize;

use crate::BenchError;

#[derive(Clone, Debug)]
pub struct RecorderOptions {
    /// Events appended (the query figure is over >= 100M).
    pub events: u64,
    /// Events written to SQLite (it is slower; its figures are per event).
    pub sqlite_events: u64,
    /// Directory for the recording and the SQLite file (a temporary one, removed
    /// afterwards, when `None`).
    pub dir: Option<PathBuf>,
    /// Longest record-time span of a block. The replay runs far faster than the
    /// workload's own rate, so blocks are sealed by size and span, not by the
    /// wall-clock age a live node seals them by.
    pub block_span: Duration,
    /// Runs of each one-container query (the median is reported).
    pub query_runs: usize,
}

impl Default for RecorderOptions {
    fn default() -> Self {
        Self {
            events: 100_000_000,
            sqlite_events: 2_000_000,
            dir: None,
            block_span: Duration::from_secs(60),
            query_runs: 5,
        }
    }
}

/// One container's last hour.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerQuery {
    pub container: String,
    pub events: u64,
    pub blocks_read: usize,
    /// Median over the runs.
    pub wall_ms: f64,
    pub cpu_ms: f64,
    /// Events per second of wall time (median run).
    pub events_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamFigures {
    pub events: u64,
    pub wall_ms: f64,
    pub events_per_s: f64,
    /// Events per CPU-second of the whole process (every thread of the query).
    pub events_per_cpu_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SqliteFigures {
    pub events: u64,
    pub append_per_s: f64,
    pub cpu_us_per_event: f64,
    pub bytes_per_event: f64,
    /// The same container's hour on both: ms and rows.
    pub query_ms: f64,
    pub query_rows: usize,
    pub recorder_query_ms: f64,
    pub recorder_query_rows: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct RecorderReport {
    pub events: u64,
    pub workload_events: usize,
    pub replicas: u64,
    pub blocks: u64,
    /// Times the producer found the queue full and retried (nothing was lost).
    pub producer_retries: u64,
    /// CPU of the encoding thread, of the sealing thread, per event.
    pub writer_cpu_us_per_event: f64,
    pub sealer_cpu_us_per_event: f64,
    /// Events per CPU-second of the writer and sealer together: the rate on one core.
    pub append_per_core_s: f64,
    pub append_wall_s: f64,
    pub append_per_s: f64,
    pub bytes_per_event: f64,
    pub json_bytes_per_event: f64,
    pub ratio_to_json: f64,
    pub catalog_bytes_per_event: f64,
    /// Every container of the last generation, fewest events first.
    pub containers: Vec<ContainerQuery>,
    pub busiest: Option<ContainerQuery>,
    /// Over the containers' median wall times.
    pub container_p50_ms: f64,
    pub container_max_ms: f64,
    /// The 1-minute load average when the queries ended (the machine may be shared).
    pub load_average: f64,
    pub window_10min: StreamFigures,
    pub retro_hunt: StreamFigures,
    /// The same hunt on one thread, every event merged and evaluated in time order
    /// (the path before the hunt went parallel), in the same run; same alerts.
    pub retro_hunt_sequential: StreamFigures,
    pub retro_hunt_alerts: usize,
    pub sqlite: SqliteFigures,
}

/// Runs the recorder benchmark.
pub fn recorder(opts: &RecorderOptions) -> Result<RecorderReport, BenchError> {
    let n = opts.events.max(1);
    let n_sql = opts.sqlite_events.min(n).max(1);
    let wl = sample::workload_file();
    let base =
        sample::load_events(&wl).map_err(BenchError::io(format!("reading {}", wl.display())))?;
    let mut json_bytes = 0usize;
    for e in &base {
        json_bytes += serde_json::to_vec(e)?.len() + 1;
    }
    let json_per_event = json_bytes as f64 / base.len() as f64;
    let replay = Replay::new(base, n).ok_or_else(|| BenchError::Io {
        what: format!("reading {}", wl.display()),
        source: std::io::Error::other("no events"),
    })?;
    let tmp;
    let dir: PathBuf = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = TempDir::new()?;
            tmp.0.clone()
        }
    };
    let rec_dir = dir.join("recorder");
    let _ = std::fs::remove_dir_all(&rec_dir);
    let rec_err = |e: rampart_recorder::RecorderError| BenchError::Io {
        what: format!("recorder in {}", rec_dir.display()),
        source: std::io::Error::other(e.to_string()),
    };

    // Append.
    tracing::info!(events = n, dir = %rec_dir.display(), "recorder bench: appending");
    let rec = Recorder::open(RecorderConfig {
        max_age: None,
        max_total_bytes: u64::MAX,
        sync_on_flush: false,
        max_block_span: opts.block_span,
        ..RecorderConfig::with_dir(&rec_dir)
    })
    .map_err(rec_err)?;
    let w = Writer::start(rec.clone()).map_err(rec_err)?;
    let t = Instant::now();
    let mut retries = 0u64;
    for i in 0..n {
        let ev = Arc::new(replay.event(i));
        while !w.try_append_event(ev.clone()) {
            retries += 1;
            std::thread::yield_now();
        }
    }
    w.flush().map_err(rec_err)?;
    let append = t.elapsed();
    // The encoding thread and the sealing thread (names cut to 15 bytes by the kernel).
    let writer_cpu = thread_cpu_time(&rampart_recorder::writer::WRITER_THREAD[..15]);
    let sealer_cpu = thread_cpu_time(rampart_recorder::writer::SEALER_THREAD);
    w.close().map_err(rec_err)?;
    let disk = rec.disk_bytes().map_err(rec_err)?;
    let (blocks, _) = rec.totals().map_err(rec_err)?;
    let catalog = std::fs::metadata(rec_dir.join("catalog.sqlite")).map_or(0, |m| m.len());
    drop(rec);
    let (writer_cpu, sealer_cpu) = match (writer_cpu, sealer_cpu) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            return Err(BenchError::Io {
                what: "reading the recorder threads' CPU time from /proc/self/task".into(),
                source: std::io::Error::other("thread not found"),
            })
        }
    };

    // One container's last hour, every container of the last generation.
    let rec = Recorder::open_read_only(&rec_dir).map_err(rec_err)?;
    let end = replay.end_ts();
    let hour = 3_600_000_000_000u64;
    let since = end.saturating_sub(hour);
    let mut names: Vec<String> = replay.generations[7]
        .values()
        .filter_map(|w| w.container().map(|c| c.name.clone()))
        .collect();
    names.sort();
    tracing::info!(
        containers = names.len(),
        "recorder bench: one container's last hour"
    );
    let runs = opts.query_runs.max(1);
    let mut containers = Vec::new();
    for name in names {
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        let (mut events, mut blocks_read) = (0u64, 0usize);
        for _ in 0..runs {
            let c0 = cpu_time();
            let t = Instant::now();
            let mut it = rec
                .query(&Query::new().container(&name).since(since).until(end))
                .map_err(rec_err)?;
            events = it.by_ref().count() as u64;
            blocks_read = it.blocks_read();
            walls.push(t.elapsed().as_secs_f64() * 1e3);
            cpus.push((cpu_time() - c0) * 1e3);
        }
        let wall_ms = median(&mut walls);
        containers.push(ContainerQuery {
            container: name,
            events,
            blocks_read,
            wall_ms,
            cpu_ms: median(&mut cpus),
            events_per_s: events as f64 / (wall_ms / 1e3),
        });
    }
    let load_average = load_average();
    containers.sort_by_key(|c| c.events);
    let busiest = containers.last().cloned();
    let mut walls: Vec<f64> = containers.iter().map(|c| c.wall_ms).collect();
    let container_p50_ms = median(&mut walls);
    let container_max_ms = walls.iter().copied().fold(0.0, f64::max);

    // A 10-minute window across all containers.
    tracing::info!("recorder bench: a 10-minute window");
    let c0 = cpu_time();
    let t = Instant::now();
    let mut got = 0u64;
    let mut last = 0;
    let mut ordered = true;
    for r in rec
        .query(
            &Query::new()
                .since(end.saturating_sub(600_000_000_000))
                .until(end),
        )
        .map_err(rec_err)?
    {
        ordered &= r.ts_ns() >= last;
        last = r.ts_ns();
        got += 1;
    }
    let window_10min = stream_figures(got, t.elapsed(), cpu_time() - c0);
    if !ordered {
        return Err(BenchError::Io {
            what: "the 10-minute window".into(),
            source: std::io::Error::other("records out of time order"),
        });
    }

    // Retro-hunt with the shipped library over the last hour.
    tracing::info!("recorder bench: retro-hunt");
    let rules = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    let c0 = cpu_time();
    let t = Instant::now();
    let hunt = rec
        .retro_hunt(&[&rules], &Query::new().since(since).until(end))
        .map_err(rec_err)?;
    let retro_hunt = stream_figures(hunt.events, t.elapsed(), cpu_time() - c0);
    // The same hunt the way it ran before it went parallel (one thread merging every
    // event in time order through the engine), with the same alerts asked of it.
    let c0 = cpu_time();
    let t = Instant::now();
    let (engine, _) = rampart_detect::RuleEngine::load(&[&rules]).map_err(|e| BenchError::Io {
        what: format!("loading {}", rules.display()),
        source: std::io::Error::other(e.to_string()),
    })?;
    let seq = rec
        .retro_hunt_sequential(&engine, &Query::new().since(since).until(end))
        .map_err(rec_err)?;
    let retro_hunt_sequential = stream_figures(seq.events, t.elapsed(), cpu_time() - c0);
    let key = |a: &rampart_event::Alert| (a.rule.clone(), a.ts_ns, a.first_ts_ns, a.count);
    let mut a: Vec<_> = hunt.alerts.iter().map(key).collect();
    let mut b: Vec<_> = seq.alerts.iter().map(key).collect();
    a.sort();
    b.sort();
    if a != b || hunt.events != seq.events {
        return Err(BenchError::Io {
            what: "the retro-hunt".into(),
            source: std::io::Error::other(format!(
                "the parallel hunt ({} events, {} alerts) differs from the sequential one ({} events, {} alerts)",
                hunt.events,
                a.len(),
                seq.events,
                b.len()
            )),
        });
    }

    // The same events into SQLite.
    tracing::info!(events = n_sql, "recorder bench: SQLite");
    let sqlite = sqlite(&dir, &replay, n_sql, &rec)?;

    Ok(RecorderReport {
        events: n,
        workload_events: replay.base.len(),
        replicas: replay.replicas,
        blocks,
        producer_retries: retries,
        writer_cpu_us_per_event: writer_cpu * 1e6 / n as f64,
        sealer_cpu_us_per_event: sealer_cpu * 1e6 / n as f64,
        append_per_core_s: n as f64 / (writer_cpu + sealer_cpu),
        append_wall_s: append.as_secs_f64(),
        append_per_s: n as f64 / append.as_secs_f64(),
        bytes_per_event: disk as f64 / n as f64,
        json_bytes_per_event: json_per_event,
        ratio_to_json: json_per_event * n as f64 / disk.max(1) as f64,
        catalog_bytes_per_event: catalog as f64 / n as f64,
        containers,
        busiest,
        container_p50_ms,
        container_max_ms,
        load_average,
        window_10min,
        retro_hunt,
        retro_hunt_sequential,
        retro_hunt_alerts: hunt.alerts.len(),
        sqlite,
    })
}

fn sql_err(e: rusqlite::Error) -> BenchError {
    BenchError::Io {
        what: "SQLite".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Writes the first `n_sql` events to SQLite and runs the median-sized container's
/// last hour (of those events) on it and on the recorder.
fn sqlite(
    dir: &Path,
    replay: &Replay,
    n_sql: u64,
    rec: &Arc<Recorder>,
) -> Result<SqliteFigures, BenchError> {
    let db_path = dir.join("events.sqlite");
    let _ = std::fs::remove_file(&db_path);
    let db = rusqlite::Connection::open(&db_path).map_err(sql_err)?;
    db.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err)?;
    db.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err)?;
    db.execute_batch(
        "CREATE TABLE events(ts INTEGER NOT NULL, container TEXT NOT NULL, kind INTEGER NOT NULL,
            host TEXT NOT NULL, seq INTEGER NOT NULL, pid INTEGER, exec_id TEXT, parent_exec_id TEXT,
            exe TEXT, cmdline TEXT, payload TEXT NOT NULL);
         CREATE INDEX events_container_ts ON events(container, ts);",
    )
    .map_err(sql_err)?;
    let cpu0 = cpu_time();
    let t = Instant::now();
    let mut i = 0;
    while i < n_sql {
        let tx = db.unchecked_transaction().map_err(sql_err)?;
        {
            let mut st = tx
                .prepare_cached("INSERT INTO events VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)")
                .map_err(sql_err)?;
            for _ in 0..10_000 {
                if i >= n_sql {
                    break;
                }
                let e = replay.event(i);
                let p = e.process.as_deref();
                st.execute(rusqlite::params![
                    e.ts_ns as i64,
                    e.container.container().map(|c| c.id.as_str()).unwrap_or(""),
                    e.kind() as i64,
                    &*e.host,
                    e.seq as i64,
                    p.map(|p| p.pid),
                    p.map(|p| p.exec_id.as_str()),
                    p.and_then(|p| p.parent_exec_id.as_deref()),
                    p.map(|p| p.exe.as_str()),
                    p.map(|p| p.argv.join(" ")),
                    serde_json::to_string(&e.payload)?,
                ])
                .map_err(sql_err)?;
                i += 1;
            }
        }
        tx.commit().map_err(sql_err)?;
    }
    let sql_el = t.elapsed();
    let sql_cpu = cpu_time() - cpu0;
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(sql_err)?;
    let sql_bytes = std::fs::metadata(&db_path).map_or(0, |m| m.len());

    // The median-sized container (by the workload) in the generation of the last
    // SQLite event, its last hour there.
    let sql_end = replay.event(n_sql - 1).ts_ns;
    let sql_since = sql_end.saturating_sub(3_600_000_000_000);
    let g = replay.generation_of(n_sql - 1);
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    for e in &replay.base {
        *sizes.entry(Arc::as_ptr(&e.container) as usize).or_default() += 1;
    }
    let mut by_size: Vec<(u64, String)> = sizes
        .into_iter()
        .filter_map(|(ptr, k)| {
            let c = replay.generations[g].get(&ptr)?.container()?;
            Some((k, c.id.clone()))
        })
        .collect();
    by_size.sort();
    let cid = by_size
        .get(by_size.len() / 2)
        .map(|c| c.1.clone())
        .unwrap_or_default();
    let t = Instant::now();
    let mut st = db
        .prepare("SELECT ts, payload, exec_id, cmdline FROM events WHERE container = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts")
        .map_err(sql_err)?;
    let rows = st
        .query_map(
            rusqlite::params![cid, sql_since as i64, sql_end as i64],
            |r| r.get::<_, String>(1).map(|p| p.len()),
        )
        .map_err(sql_err)?
        .count();
    let query_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let rec_rows = rec
        .query(
            &Query::new()
                .container(&cid)
                .since(sql_since)
                .until(sql_end)
                .records(RecordTypes::EVENTS),
        )
        .map_err(|e| BenchError::Io {
            what: "recorder query".into(),
            source: std::io::Error::other(e.to_string()),
        })?
        .filter(|r| matches!(r, Record::Event(_)))
        .count();
    let recorder_query_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(SqliteFigures {
        events: n_sql,
        append_per_s: n_sql as f64 / sql_el.as_secs_f64(),
        cpu_us_per_event: sql_cpu * 1e6 / n_sql as f64,
        bytes_per_event: sql_bytes as f64 / n_sql as f64,
        query_ms,
        query_rows: rows,
        recorder_query_ms,
        recorder_query_rows: rec_rows,
    })
}

fn stream_figures(events: u64, wall: Duration, cpu_s: f64) -> StreamFigures {
    StreamFigures {
        events,
        wall_ms: wall.as_secs_f64() * 1e3,
        events_per_s: events as f64 / wall.as_secs_f64(),
        events_per_cpu_s: events as f64 / cpu_s,
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// CPU time of the whole process (user + system), seconds.
fn cpu_time() -> f64 {
    // SAFETY: getrusage fills the struct we own; all-zero bytes are a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// CPU time of this process's thread named `name` (seconds), from /proc.
fn thread_cpu_time(name: &str) -> Option<f64> {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let p = t.ok()?.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(p.join("stat")).ok()?;
            // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let s: f64 = f.get(12)?.parse().ok()?;
            return Some((u + s) / hz);
        }
    }
    None
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, BenchError> {
        let p = std::env::temp_dir().join(format!("rampart-bench-recorder-{}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(BenchError::io(format!("creating {}", p.display())))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
