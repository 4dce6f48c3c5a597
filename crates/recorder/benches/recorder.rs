//! Flight recorder throughput, size and query latency, with SQLite in the same run.
//!
//! Events: the recorded sensor workload (`crates/detect-e2e/benches/data`, 20,867 real
//! events from 14 containers over 38 s) replicated back to back until
//! `RAMPART_BENCH_EVENTS` events (default 10,000,000), each replica shifted in time
//! and sequence, and every eighth of the run with a new generation of container ids
//! (containers are replaced over time, as on a real node; at most 14 run at once).
//! Processes and containers are shared by `Arc` as the sensor hands them over.
//!
//! Measured:
//! - append: events through `Writer::try_append_event` until the final flush is
//!   catalogued (wall time; the producer and the writer thread each have a core), and
//!   the CPU time of the whole process per event;
//! - bytes per event on disk (segments) and the ratio to the events' JSON lines;
//! - one container's last hour (a median-sized container and the busiest one);
//! - a 10-minute window across all containers, streamed in time order;
//! - a retro-hunt of the shipped library (`rules/`) over the last hour;
//! - SQLite (WAL, batched inserts of 10,000 per transaction, one row per event with
//!   the payload as JSON and the process and container as columns, an index on
//!   container and time) with the first `RAMPART_BENCH_SQLITE_EVENTS` events (default
//!   2,000,000: SQLite is slower, and the figures are per event), and the same
//!   one-container query on it.
//!
//! Run: `cargo bench -p rampart-recorder --bench recorder`
//! (`RAMPART_BENCH_DIR` picks the directory, default a temporary one;
//! `RAMPART_BENCH_SPAN_S` the longest record-time span of a block, default 60 s.
//! The replay runs far faster than the workload's own 555 events/s, so blocks are
//! sealed by size and span, not by wall-clock age as they would be live: run with
//! `RAMPART_BENCH_SPAN_S=5` for the blocks a live node at the workload's own rate
//! seals every 5 s.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_event::{Event, Workload};
use rampart_recorder::{sample, Query, Record, RecordTypes, Recorder, RecorderConfig, Writer};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// CPU time of the whole process (user + system), seconds.
fn cpu_time() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// CPU time of the calling thread, seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
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

/// Replays the workload as `n` events: replica `r` is shifted by `r` spans, and uses
/// container generation `r * 8 / replicas`.
struct Replay {
    base: Vec<Event>,
    span: u64,
    t0: u64,
    generations: Vec<HashMap<usize, Arc<Workload>>>,
    replicas: u64,
    n: u64,
}

impl Replay {
    fn new(base: Vec<Event>, n: u64) -> Self {
        let t_min = base.iter().map(|e| e.ts_ns).min().unwrap_or(0);
        let t_max = base.iter().map(|e| e.ts_ns).max().unwrap_or(0);
        let span = t_max - t_min + 1_000_000;
        let replicas = n.div_ceil(base.len() as u64);
        // The run ends about now, so the catalog's times look like a live node's.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let t0 = now - replicas * span;
        let mut generations = Vec::new();
        for g in 0..8u64 {
            let mut m = HashMap::new();
            for e in &base {
                let ptr = Arc::as_ptr(&e.container) as usize;
                m.entry(ptr).or_insert_with(|| {
                    let mut w = (*e.container).clone();
                    if let Workload::Container(c) = &mut w {
                        c.id = format!("{g:x}{}", &c.id[1..]);
                        c.name = format!("{}-{g}", c.name);
                    }
                    Arc::new(w)
                });
            }
            generations.push(m);
        }
        Self {
            span,
            t0: t0 - t_min,
            base,
            generations,
            replicas,
            n,
        }
    }

    fn event(&self, i: u64) -> Event {
        let r = i / self.base.len() as u64;
        let e = &self.base[(i % self.base.len() as u64) as usize];
        let g = (r * 8 / self.replicas.max(1)) as usize;
        let mut ev = e.clone();
        ev.ts_ns = self.t0 + e.ts_ns + r * self.span;
        ev.seq = i;
        ev.container = self.generations[g][&(Arc::as_ptr(&e.container) as usize)].clone();
        ev
    }

    fn end_ts(&self) -> u64 {
        self.event(self.n - 1).ts_ns
    }
}

struct Row {
    what: String,
    value: String,
    note: String,
}

fn main() {
    let n = env_u64("RAMPART_BENCH_EVENTS", 10_000_000);
    let n_sql = env_u64("RAMPART_BENCH_SQLITE_EVENTS", 2_000_000).min(n);
    let base = sample::load_events(&sample::workload_file()).expect("recorded workload");
    let json_per_event = base
        .iter()
        .map(|e| serde_json::to_vec(e).unwrap().len() + 1)
        .sum::<usize>() as f64
        / base.len() as f64;
    let replay = Replay::new(base, n);
    let tmp;
    let dir: PathBuf = match std::env::var("RAMPART_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    let rec_dir = dir.join("recorder");
    let _ = std::fs::remove_dir_all(&rec_dir);
    let mut rows = Vec::new();
    let row = |rows: &mut Vec<Row>, what: &str, value: String, note: String| {
        println!("{what:<48} {value:>16}  {note}");
        rows.push(Row {
            what: what.into(),
            value,
            note,
        })
    };

    // Append.
    let rec = Recorder::open(RecorderConfig {
        max_age: None,
        max_total_bytes: u64::MAX,
        sync_on_flush: false,
        max_block_span: Duration::from_secs(env_u64("RAMPART_BENCH_SPAN_S", 60)),
        ..RecorderConfig::with_dir(&rec_dir)
    })
    .unwrap();
    let w = Writer::start(rec.clone()).unwrap();
    let cpu0 = cpu_time();
    let t = Instant::now();
    let mut retries = 0u64;
    for i in 0..n {
        let ev = Arc::new(replay.event(i));
        while !w.try_append_event(ev.clone()) {
            retries += 1;
            std::thread::yield_now();
        }
    }
    w.flush().unwrap();
    let append = t.elapsed();
    let append_cpu = cpu_time() - cpu0;
    // The encoding thread and the sealing thread (names cut to 15 bytes by the kernel).
    let writer_cpu =
        thread_cpu_time(&rampart_recorder::writer::WRITER_THREAD[..15]).unwrap_or(f64::NAN);
    let sealer_cpu = thread_cpu_time(rampart_recorder::writer::SEALER_THREAD).unwrap_or(f64::NAN);
    let stats = w.close().unwrap();
    let disk = rec.disk_bytes().unwrap();
    let (blocks, stored) = rec.totals().unwrap();
    assert_eq!(stored, n, "every event stored");
    println!(
        "\n{n} events ({} replicas of {} workload events), {blocks} blocks; the queue was full {retries} times (the producer retried, so nothing was lost; each refusal counts as shed: {})\n",
        replay.replicas,
        replay.base.len(),
        stats.shed
    );
    row(
        &mut rows,
        "append, writer thread (events/s per CPU-second)",
        format!("{:.0}", n as f64 / writer_cpu),
        format!(
            "the record path (dequeue + encode) on one core: {:.2} us per event; target >= 1M/s",
            writer_cpu * 1e6 / n as f64
        ),
    );
    row(
        &mut rows,
        "append, sealer thread (events/s per CPU-second)",
        format!("{:.0}", n as f64 / sealer_cpu),
        format!(
            "per block: zstd + write + catalog + retention, {:.2} us per event",
            sealer_cpu * 1e6 / n as f64
        ),
    );
    row(
        &mut rows,
        "append, recorder on one core (events/s per CPU-second)",
        format!("{:.0}", n as f64 / (writer_cpu + sealer_cpu)),
        format!(
            "writer + sealer CPU together: {:.2} us per event",
            (writer_cpu + sealer_cpu) * 1e6 / n as f64
        ),
    );
    row(
        &mut rows,
        "append, recorder (events/s, wall)",
        format!("{:.0}", n as f64 / append.as_secs_f64()),
        format!("{:.1} s; target >= 1M/s", append.as_secs_f64()),
    );
    row(
        &mut rows,
        "append, whole process (events/s per CPU-second)",
        format!("{:.0}", n as f64 / append_cpu),
        format!(
            "producer (event clones) + writer: {:.2} us CPU per event",
            append_cpu * 1e6 / n as f64
        ),
    );
    row(
        &mut rows,
        "recorder bytes/event on disk",
        format!("{:.2}", disk as f64 / n as f64),
        format!("{:.1} MB segments; target <= 20 B/event", disk as f64 / 1e6),
    );
    row(
        &mut rows,
        "recorder ratio vs JSON lines",
        format!("{:.0}:1", json_per_event * n as f64 / disk as f64),
        format!("JSON {json_per_event:.0} B/event; target >= 8:1"),
    );
    let cat = std::fs::metadata(rec_dir.join("catalog.sqlite"))
        .map(|m| m.len())
        .unwrap_or(0);
    row(
        &mut rows,
        "catalog size (bytes/event)",
        format!("{:.2}", cat as f64 / n as f64),
        format!("{:.1} MB", cat as f64 / 1e6),
    );

    // One container's last hour.
    let end = replay.end_ts();
    let hour = 3_600_000_000_000u64;
    let mut counts: HashMap<String, (String, u64)> = HashMap::new();
    for e in &replay.base {
        if let Workload::Container(c) =
            &*replay.generations[7][&(Arc::as_ptr(&e.container) as usize)]
        {
            counts.entry(c.id.clone()).or_insert((c.name.clone(), 0)).1 += 1;
        }
    }
    let mut by_size: Vec<(u64, String, String)> = counts
        .into_iter()
        .map(|(id, (name, k))| (k, id, name))
        .collect();
    by_size.sort();
    let median = by_size[by_size.len() / 2].clone();
    let busiest = by_size.last().unwrap().clone();
    drop(rec);
    let rec = Recorder::open_read_only(&rec_dir).unwrap();
    for (label, (_, _id, name)) in [("median", median), ("busiest", busiest)] {
        let mut best = Duration::MAX;
        let mut best_cpu = f64::MAX;
        let mut got = 0;
        let mut read = 0;
        for _ in 0..3 {
            let c0 = cpu_time();
            let t = Instant::now();
            let mut it = rec
                .query(
                    &Query::new()
                        .container(&name)
                        .since(end.saturating_sub(hour))
                        .until(end),
                )
                .unwrap();
            got = it.by_ref().count();
            read = it.blocks_read();
            best = best.min(t.elapsed());
            best_cpu = best_cpu.min(cpu_time() - c0);
        }
        row(
            &mut rows,
            &format!("query: one container's last hour ({label})"),
            format!("{:.1} ms", best.as_secs_f64() * 1e3),
            format!(
                "{got} events of {name}, {read} blocks read, {:.0} ms CPU (all threads); target < 200 ms",
                best_cpu * 1e3
            ),
        );
    }

    // A 10-minute window across all containers.
    let since = end.saturating_sub(600_000_000_000);
    let c0 = thread_cpu();
    let t = Instant::now();
    let mut got = 0u64;
    let mut last = 0;
    for r in rec.query(&Query::new().since(since).until(end)).unwrap() {
        debug_assert!(r.ts_ns() >= last);
        last = r.ts_ns();
        got += 1;
    }
    let el = t.elapsed();
    let cpu = thread_cpu() - c0;
    row(
        &mut rows,
        "stream: 10-minute window, all containers",
        format!("{:.0}/s", got as f64 / el.as_secs_f64()),
        format!(
            "{got} events in time order in {:.0} ms wall; {:.0}/s per CPU-second; target >= 1M/s",
            el.as_secs_f64() * 1e3,
            got as f64 / cpu
        ),
    );

    // Retro-hunt with the shipped library over the last hour.
    let rules = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    let hunt_since = end.saturating_sub(hour.min(end));
    let c0 = thread_cpu();
    let t = Instant::now();
    let report = rec
        .retro_hunt(&[&rules], &Query::new().since(hunt_since).until(end))
        .unwrap();
    let el = t.elapsed();
    let cpu = thread_cpu() - c0;
    row(
        &mut rows,
        "retro-hunt: shipped library, last hour",
        format!("{:.0}/s", report.events as f64 / el.as_secs_f64()),
        format!(
            "{} events, {} alerts, {:.1} s wall (rules load included); {:.0}/s per CPU-second; target >= 1M/s",
            report.events,
            report.alerts.len(),
            el.as_secs_f64(),
            report.events as f64 / cpu
        ),
    );

    // The same events into SQLite.
    let db_path = dir.join("events.sqlite");
    let _ = std::fs::remove_file(&db_path);
    let db = rusqlite::Connection::open(&db_path).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "NORMAL").unwrap();
    db.execute_batch(
        "CREATE TABLE events(ts INTEGER NOT NULL, container TEXT NOT NULL, kind INTEGER NOT NULL,
            host TEXT NOT NULL, seq INTEGER NOT NULL, pid INTEGER, exec_id TEXT, parent_exec_id TEXT,
            exe TEXT, cmdline TEXT, payload TEXT NOT NULL);
         CREATE INDEX events_container_ts ON events(container, ts);",
    )
    .unwrap();
    let cpu0 = cpu_time();
    let t = Instant::now();
    let mut i = 0;
    while i < n_sql {
        let tx = db.unchecked_transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached("INSERT INTO events VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)")
                .unwrap();
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
                    serde_json::to_string(&e.payload).unwrap(),
                ])
                .unwrap();
                i += 1;
            }
        }
        tx.commit().unwrap();
    }
    let sql_el = t.elapsed();
    let sql_cpu = cpu_time() - cpu0;
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let sql_bytes = std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0);
    let sql_rate = n_sql as f64 / sql_el.as_secs_f64();
    let rec_rate = n as f64 / append.as_secs_f64();
    row(
        &mut rows,
        "append, SQLite (events/s, wall)",
        format!("{sql_rate:.0}"),
        format!(
            "{n_sql} events, {:.2} us CPU per event; recorder is {:.1}x faster",
            sql_cpu * 1e6 / n_sql as f64,
            rec_rate / sql_rate
        ),
    );
    row(
        &mut rows,
        "SQLite bytes/event",
        format!("{:.1}", sql_bytes as f64 / n_sql as f64),
        format!(
            "recorder is {:.1}x smaller",
            (sql_bytes as f64 / n_sql as f64) / (disk as f64 / n as f64)
        ),
    );
    // The same shape of query on SQLite: the median container's busiest hour there.
    let sql_end = replay.event(n_sql - 1).ts_ns;
    let sql_since = sql_end.saturating_sub(hour);
    let name_g = (((n_sql - 1) / replay.base.len() as u64) * 8 / replay.replicas.max(1)) as usize;
    let cid = replay.generations[name_g]
        .values()
        .filter_map(|w| w.container().map(|c| c.id.clone()))
        .find(|id| id[1..] == by_size[by_size.len() / 2].1[1..])
        .unwrap_or_default();
    let t = Instant::now();
    let mut st = db
        .prepare("SELECT ts, payload, exec_id, cmdline FROM events WHERE container = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts")
        .unwrap();
    let cnt = st
        .query_map(
            rusqlite::params![cid, sql_since as i64, sql_end as i64],
            |r| {
                let payload: String = r.get(1)?;
                Ok(payload.len())
            },
        )
        .unwrap()
        .count();
    let sql_q = t.elapsed();
    let t = Instant::now();
    let rec_cnt = rec
        .query(
            &Query::new()
                .container(&cid)
                .since(sql_since)
                .until(sql_end)
                .records(RecordTypes::EVENTS),
        )
        .unwrap()
        .filter(|r| matches!(r, Record::Event(_)))
        .count();
    let rec_q = t.elapsed();
    row(
        &mut rows,
        "query same container+hour: SQLite vs recorder",
        format!(
            "{:.1} / {:.1} ms",
            sql_q.as_secs_f64() * 1e3,
            rec_q.as_secs_f64() * 1e3
        ),
        format!("{cnt} / {rec_cnt} rows (SQLite returns columns, the recorder whole events)"),
    );

    println!("\n| measure | value | notes |\n|---|---|---|");
    for r in rows {
        println!("| {} | {} | {} |", r.what, r.value, r.note);
    }
}
