//! `rampart query` and `rampart incident`: the flight recorder's history, read from
//! the directory `rampart up` records into (read-only, beside a running writer).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use rampart_event::{Event, Payload};
use rampart_recorder::{query::fmt_ts, ProcessTree, Query, Record, RecordTypes, Recorder};

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The recording directory (`recorder.dir` of `rampart up`).
    #[arg(long, default_value = rampart_recorder::DEFAULT_DIR)]
    pub dir: PathBuf,
    /// From this long ago (`90s`, `5m`, `1h`, `2d`) or this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to this long ago or this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// A container: id prefix or name (removed containers too), or `host`.
    #[arg(long)]
    pub container: Option<String>,
    /// An image (`debian:12`) or its repository (`debian`).
    #[arg(long)]
    pub image: Option<String>,
    /// Event kinds or families (repeatable, comma-separated): exec, file, net, …
    #[arg(long = "kind", value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Only this process (exec id) and its descendants.
    #[arg(long)]
    pub exec_id: Option<String>,
    /// Only events this rule-language condition holds for, e.g.
    /// `proc.name = curl and fd.sip != "10.0.0.1"` (lists and macros of the shipped rules).
    #[arg(long = "where")]
    pub condition: Option<String>,
    /// Retro-hunt: run these rules files over the history and print the past hits as
    /// alerts marked `retro`.
    #[arg(long)]
    pub rules: Vec<PathBuf>,
    /// Only alerts (the recorded ones, or with --rules the retro-hunt's).
    #[arg(long)]
    pub alerts: bool,
    /// Output: JSON lines, a readable table, or the process trees of what matched.
    #[arg(long, value_parser = ["json", "table", "tree"], default_value = "table")]
    pub format: String,
    /// Same as `--format tree`.
    #[arg(long)]
    pub tree: bool,
    /// Keep printing what is recorded from now on.
    #[arg(long)]
    pub follow: bool,
    /// Print what the recording holds (segments, blocks, events, bytes, oldest and
    /// newest record) and the writer's counters as it last published them (appended,
    /// shed, dropped for space…), instead of records.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Args, Debug)]
pub struct IncidentArgs {
    /// The alert's id (from the alert output or `rampart query --alerts`).
    pub alert_id: String,
    /// The recording directory.
    #[arg(long, default_value = rampart_recorder::DEFAULT_DIR)]
    pub dir: PathBuf,
    /// History kept before the alert's first event (`60s`, `5m`).
    #[arg(long, default_value = "60s")]
    pub before: String,
    /// History kept after its last event.
    #[arg(long, default_value = "60s")]
    pub after: String,
    /// Where the bundle goes (default: incident-<alert id>.tar.gz here).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The network stage's packet captures (`network.capture.dir`): those of the
    /// window's alerts go into the bundle under `packets/`.
    #[arg(long, default_value = "/var/lib/rampart/captures")]
    pub captures: PathBuf,
}

/// `90s`, `1h` ago, or an RFC 3339 time, in ns since the epoch.
fn time_arg(s: &str) -> anyhow::Result<u64> {
    let at = match humantime::parse_duration(s) {
        Ok(ago) => std::time::SystemTime::now()
            .checked_sub(ago)
            .context("too far back")?,
        Err(_) => humantime::parse_rfc3339_weak(s).with_context(|| {
            format!("{s:?} is neither a duration (5m, 1h) nor an RFC 3339 time")
        })?,
    };
    Ok(at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64))
}

fn duration_arg(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s).with_context(|| format!("{s:?} is not a duration (60s, 5m)"))
}

fn build_query(a: &QueryArgs) -> anyhow::Result<Query> {
    let mut q = Query::new();
    if let Some(s) = &a.since {
        q = q.since(time_arg(s)?);
    }
    if let Some(u) = &a.until {
        q = q.until(time_arg(u)?);
    }
    if let Some(c) = &a.container {
        q = q.container(c.clone());
    }
    if let Some(i) = &a.image {
        q = q.image(i.clone());
    }
    if let Some(kinds) = rampart_sensor::parse_kinds(&a.kinds)? {
        q = q.kinds(kinds.into_iter().collect());
    }
    if let Some(e) = &a.exec_id {
        q = q.tree(e.clone());
    }
    if let Some(c) = &a.condition {
        let rules: Vec<PathBuf> = rampart_agent::config::default_rules_dir()
            .into_iter()
            .collect();
        q = q.with_where(c, &rules)?;
    }
    if a.alerts {
        q = q.records(RecordTypes {
            events: false,
            alerts: true,
            lifecycle: false,
        });
    }
    Ok(q)
}

pub fn run_query(a: QueryArgs) -> anyhow::Result<i32> {
    let recorder = Recorder::open_read_only(&a.dir)
        .with_context(|| format!("opening the recording in {}", a.dir.display()))?;
    if a.stats {
        return print_stats(&recorder, a.format == "json");
    }
    let q = build_query(&a)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if !a.rules.is_empty() {
        let report = recorder.retro_hunt(&a.rules, &q)?;
        for e in &report.load_errors {
            eprintln!("rampart: rule not loaded: {e}");
        }
        for alert in &report.alerts {
            writeln!(out, "{}", serde_json::to_string(alert)?)?;
        }
        eprintln!(
            "rampart: retro-hunt over {} recorded events: {} alerts",
            report.events,
            report.alerts.len()
        );
        return Ok(0);
    }
    let format = if a.tree { "tree" } else { a.format.as_str() };
    if a.follow {
        let follow = recorder.follow(&q)?;
        for record in follow {
            print_record(&mut out, &record, format)?;
            out.flush()?;
        }
        return Ok(0);
    }
    let mut it = recorder.query(&q)?;
    if format == "tree" {
        let events: Vec<Event> = it
            .by_ref()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        write!(out, "{}", render_forest(&events))?;
    } else {
        for record in it.by_ref() {
            print_record(&mut out, &record, format)?;
        }
    }
    for (segment, offset, why) in it.skipped() {
        eprintln!("rampart: skipped a damaged block (segment {segment}, offset {offset}): {why}");
    }
    Ok(0)
}

/// `rampart query --stats`: the catalog's summary and the writer's published counters.
fn print_stats(recorder: &Recorder, json: bool) -> anyhow::Result<i32> {
    let summary = recorder.summary()?;
    let published = recorder.published_stats();
    if json {
        println!(
            "{}",
            serde_json::json!({ "recording": summary, "writer": published })
        );
        return Ok(0);
    }
    let ts = |t: Option<u64>| t.map_or_else(|| "-".to_string(), fmt_ts);
    println!("recording       {}", recorder.config().dir.display());
    println!("segments        {}", summary.segments);
    println!("blocks          {}", summary.blocks);
    println!(
        "records         {} ({} events)",
        summary.records, summary.events
    );
    println!(
        "bytes           {} ({:.1} per record)",
        summary.bytes,
        summary.bytes as f64 / summary.records.max(1) as f64
    );
    println!("containers      {}", summary.containers);
    println!("oldest          {}", ts(summary.oldest_ns));
    println!("newest          {}", ts(summary.newest_ns));
    match published {
        None => println!("writer          no counters published"),
        Some(p) => {
            let s = p.stats;
            let age = rampart_event::wall_ns().saturating_sub(p.updated_ns) as f64 / 1e9;
            println!(
                "writer          pid {}, counters from {} ({age:.0} s ago)",
                p.pid,
                fmt_ts(p.updated_ns)
            );
            println!("  appended      {}", s.appended);
            println!("  shed          {} (queue full)", s.shed);
            println!("  shed          {} (disk full)", s.shed_disk_full);
            println!("  segments      {} deleted", s.segments_deleted);
            println!("  blocks        {} written, {} bytes", s.blocks, s.bytes);
            println!(
                "  errors        {} write, {} catalog, {} corrupt blocks read",
                s.write_errors, s.catalog_errors, s.corrupt_blocks
            );
        }
    }
    Ok(0)
}

/// The process trees of `events`: one per process whose parent did not match.
fn render_forest(events: &[Event]) -> String {
    let execs: BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.process.as_ref().map(|p| p.exec_id.as_str()))
        .collect();
    let mut roots: Vec<(u64, &str)> = Vec::new();
    let mut seen = BTreeSet::new();
    for e in events {
        let Some(p) = &e.process else { continue };
        let parent_matched = p
            .parent_exec_id
            .as_deref()
            .is_some_and(|pe| execs.contains(pe));
        if !parent_matched && seen.insert(p.exec_id.as_str()) {
            roots.push((e.ts_ns, p.exec_id.as_str()));
        }
    }
    roots
        .into_iter()
        .map(|(_, root)| ProcessTree::build(root, events).render())
        .collect()
}

fn print_record(out: &mut impl Write, record: &Record, format: &str) -> anyhow::Result<()> {
    if format == "json" || format == "tree" {
        let line = match record {
            Record::Event(e) => serde_json::to_string(e)?,
            Record::Alert(a) => serde_json::to_string(a)?,
            Record::Lifecycle(l) => serde_json::to_string(l)?,
        };
        writeln!(out, "{line}")?;
        return Ok(());
    }
    let (ts, who, what, detail) = match record {
        Record::Event(e) => (
            e.ts_ns,
            workload(e),
            e.kind().as_str().to_string(),
            describe(e),
        ),
        Record::Alert(a) => (
            a.ts_ns,
            workload(&a.event),
            format!("ALERT {:?}", a.priority),
            format!("{} [{}] {}", a.rule, a.id, a.message),
        ),
        Record::Lifecycle(l) => (
            l.ts_ns,
            if l.name.is_empty() {
                short(&l.container_id)
            } else {
                l.name.clone()
            },
            "container".into(),
            serde_json::to_string(&l.action)?,
        ),
    };
    writeln!(out, "{}  {who:<20} {what:<14} {detail}", fmt_ts(ts))?;
    Ok(())
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

fn workload(e: &Event) -> String {
    match e.container.container() {
        Some(c) if !c.name.is_empty() => c.name.clone(),
        Some(c) => short(&c.id),
        None => "host".into(),
    }
}

/// One line on what an event did.
fn describe(e: &Event) -> String {
    let proc = e
        .process
        .as_ref()
        .map(|p| format!("{}[{}]", p.comm, p.pid))
        .unwrap_or_default();
    let what = match &e.payload {
        Payload::Exec { .. } => e
            .process
            .as_ref()
            .map(|p| p.argv.join(" "))
            .unwrap_or_default(),
        Payload::FileOpen { path, .. } => path.clone(),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.get("data").map(|d| d.to_string()))
            .unwrap_or_default(),
    };
    format!("{proc} {what}")
}

pub fn run_incident(a: IncidentArgs) -> anyhow::Result<i32> {
    let recorder: Arc<Recorder> = Recorder::open_read_only(&a.dir)
        .with_context(|| format!("opening the recording in {}", a.dir.display()))?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("incident-{}.tar.gz", a.alert_id)));
    let s = recorder.incident_bundle_with_captures(
        &a.alert_id,
        duration_arg(&a.before)?,
        duration_arg(&a.after)?,
        &out,
        Some(&a.captures),
    )?;
    println!(
        "{}: alert {}, {} events, {} processes, {} connections, {} files written, {} lifecycle changes, {} timeline steps, {} packet captures",
        s.path.display(),
        s.alert_id,
        s.events,
        s.processes,
        s.connections,
        s.files_written,
        s.lifecycle,
        s.timeline_steps,
        s.captures
    );
    Ok(0)
}
