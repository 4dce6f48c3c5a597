//! `rampart bench`: the arguments, mapped to `rampart_bench`'s options, and the
//! results printed as tables (or as JSON with `--json`). The measuring is in the
//! `rampart-bench` crate.

use clap::{Args, ValueEnum};
use rampart_bench::{
    Child, LatencyOptions, LatencyReport, MemoryOptions, MemoryReport, OverheadOptions,
    OverheadReport, PerEventOptions, PerEventReport, Percentiles, StormReport, ThroughputOptions,
    ThroughputReport,
};
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Which {
    Overhead,
    Throughput,
    Memory,
    Latency,
    /// The sensor's user-space cost per event, stage by stage.
    PerEvent,
    /// The API's filtered alert list with `--api-alerts` stored (not part of `all`).
    Api,
    All,
    /// Response latency, kernel event -> action completed (kill, freeze); not in `all`.
    Response,
    /// The flight recorder: append, bytes per event, queries, against SQLite; not in `all`.
    Recorder,
    /// Behaviour baselines: learning a replayed hour (ns/event, memory growth) and
    /// scoring (ns/event); not in `all`.
    Baseline,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Iterations of the exec storm.
    #[arg(long, default_value_t = 2000)]
    execs: u64,
    /// Iterations of the open and connect storms.
    #[arg(long, default_value_t = 200_000)]
    ops: u64,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Containers to start and stop in the memory run.
    #[arg(long, default_value_t = 1000)]
    containers: u64,
    /// Marker events (one per millisecond) of the latency run.
    #[arg(long, default_value_t = 2000)]
    alerts: u64,
    /// Overhead storms to run, comma-separated: exec, open, connect, syscall.
    #[arg(long, default_value = "exec,open,connect,syscall")]
    storms: String,
    /// Alternating rounds per overhead storm (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Overhead arms to run besides the baseline without the sensor, comma-separated:
    /// with, every-open, no-compat, tracepoints, sys-exit, in-use and
    /// every-open-in-use ("with" and "every-open" with the image scanner's in-use map
    /// kept for every event, each compared with its partner when both run; objects
    /// given with --bpf-object always run).
    #[arg(long, default_value = "with,every-open,no-compat,tracepoints,sys-exit")]
    arms: String,
    /// Pairs of pieces per storm and sensor arm in the paired comparison: the arm's
    /// sensor loaded once, detached for one piece of each pair and attached for the
    /// other. 0 skips it.
    #[arg(long, default_value_t = 16)]
    pairs: u32,
    /// Also measure the overhead with this BPF object (e.g. a local `make -C bpf`
    /// build), in the same rounds as the embedded one. Repeatable. Its records must
    /// have this build's header (objects from before the cpuset cgroup id was added
    /// still measure, but their events do not decode).
    #[arg(long)]
    bpf_object: Vec<std::path::PathBuf>,
    /// Containers started and stopped before the memory run's starting level is read.
    #[arg(long, default_value_t = 100)]
    warmup: u64,
    /// Image for the memory run (must exist locally).
    #[arg(long, default_value = "rampart-test/busybox:latest")]
    image: String,
    /// Simulated seconds of learning in the baseline run.
    #[arg(long, default_value_t = 3600)]
    baseline_seconds: u64,
    /// Trials per action of the response run.
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// Alerts stored before the API run measures the alert list.
    #[arg(long, default_value_t = 1_000_000)]
    api_alerts: u64,
    /// Measured requests per query shape in the API run.
    #[arg(long, default_value_t = 200)]
    api_requests: u32,
    /// The API run on central's store: PostgreSQL at this libpq connection string (a
    /// schema of the run's own, dropped afterwards) instead of a SQLite file.
    #[arg(long, value_name = "URL")]
    api_postgres: Option<String>,
    /// Events appended in the recorder run.
    #[arg(long, default_value_t = 100_000_000)]
    events: u64,
    /// Events written to SQLite in the recorder run.
    #[arg(long, default_value_t = 2_000_000)]
    sqlite_events: u64,
    /// Directory of the recorder run's recording (a temporary one, removed afterwards,
    /// when not given).
    #[arg(long)]
    recorder_dir: Option<std::path::PathBuf>,
    /// Print the results as one JSON document instead of tables.
    #[arg(long)]
    json: bool,
}

/// Everything one `rampart bench` run measured (the `--json` form).
#[derive(Serialize, Default)]
struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    overhead: Option<OverheadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throughput: Option<ThroughputReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency: Option<LatencyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<MemoryReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_event: Option<PerEventReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<rampart_bench::ResponseReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<rampart_api::bench::ApiBenchReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recorder: Option<rampart_bench::RecorderReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<rampart_bench::BaselineBenchReport>,
}

/// The hidden subcommand a storm runs in (`rampart bench-storm KIND N`).
pub const STORM_SUBCOMMAND: &str = "bench-storm";
/// The hidden subcommand of the throughput run's load generators.
pub const GEN_OPENS_SUBCOMMAND: &str = "bench-gen-opens";

fn list(s: &str) -> Vec<String> {
    s.split(',').map(|s| s.trim().to_string()).collect()
}

pub fn run(a: BenchArgs) -> anyhow::Result<i32> {
    let storm = Child::current_exe(&[STORM_SUBCOMMAND])?;
    let mut report = Report::default();
    let human = !a.json;
    if a.which == Which::Api {
        if human {
            println!(
                "== api: GET /v1/alerts with filters over https (one client, kept-alive), {} alerts in {}; baseline: the same queries on the store directly ==",
                a.api_alerts,
                if a.api_postgres.is_some() { "PostgreSQL" } else { "SQLite" }
            );
        }
        let opts = rampart_api::bench::ApiBenchOptions {
            alerts: a.api_alerts,
            requests: a.api_requests,
            dir: None,
            store: None,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let r = match &a.api_postgres {
            Some(url) => rt.block_on(rampart_central::bench::api_bench_postgres(url, opts))?,
            None => rt.block_on(rampart_api::bench::run(opts))?,
        };
        if human {
            print_api(&r);
        } else {
            report.api = Some(r);
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        return Ok(0);
    }
    if a.which == Which::Overhead || a.which == Which::All {
        if human {
            println!(
                "== overhead: {} alternating rounds per storm, medians; cpu = the storm's own user+sys time; kernel = time in the sensor's BPF programs, from an extra piece per round with run-time statistics on ==",
                a.rounds
            );
        }
        let opts = OverheadOptions {
            execs: a.execs,
            ops: a.ops,
            storms: list(&a.storms),
            rounds: a.rounds,
            arms: list(&a.arms),
            pairs: a.pairs,
            bpf_objects: a.bpf_object.clone(),
            storm: storm.clone(),
        };
        // Each storm is printed as it completes: a whole run takes minutes.
        let mut print = |s: &StormReport| {
            if human {
                print_storm(s);
                print_in_use(s);
            }
        };
        report.overhead = Some(rampart_bench::overhead(&opts, &mut print)?);
    }
    if a.which == Which::Throughput || a.which == Which::All {
        if human {
            println!("== throughput: kernel -> decode -> enrich -> JSON, one consumer thread ==");
        }
        let t = rampart_bench::throughput(&ThroughputOptions {
            seconds: a.seconds,
            generator: Child::current_exe(&[GEN_OPENS_SUBCOMMAND])?,
        })?;
        if human {
            print_throughput(&t);
        }
        report.throughput = Some(t);
    }
    if a.which == Which::Latency || a.which == Which::All {
        if human {
            println!(
                "== alert latency: kernel event -> alert written (shipped library + marker rule) =="
            );
        }
        let l = rampart_bench::latency(&LatencyOptions {
            alerts: a.alerts,
            rules: rampart_agent::config::default_rules_dir()
                .into_iter()
                .collect(),
            storm: storm.clone(),
        })?;
        if human {
            print_latency(&l);
        }
        report.latency = Some(l);
    }
    if a.which == Which::Memory || a.which == Which::All {
        if human {
            println!(
                "== memory: sensor RSS across {} containers started and stopped (after {} warm-up containers) ==",
                a.containers, a.warmup
            );
        }
        let m = rampart_bench::memory(&MemoryOptions {
            containers: a.containers,
            warmup: a.warmup,
            image: a.image.clone(),
        })?;
        if human {
            print_memory(&m);
        }
        report.memory = Some(m);
    }
    if a.which == Which::PerEvent || a.which == Which::All {
        if human {
            println!("== per event: the sensor's user-space stages, each alone, over records captured from the kernel ==");
        }
        let p = rampart_bench::per_event(&PerEventOptions {
            rules: rampart_agent::config::default_rules_dir()
                .into_iter()
                .collect(),
            passes: 5,
            execs: a.execs.min(500),
            storm: storm.clone(),
        })?;
        if human {
            print_per_event(&p);
        }
        report.per_event = Some(p);
    }
    if a.which == Which::Response {
        if human {
            println!(
                "== response: kernel event -> action completed (process dead, container frozen), rampart up against real containers, {} trials each ==",
                a.trials
            );
        }
        let r = rampart_bench::response(&rampart_bench::ResponseOptions {
            rampart: std::env::current_exe()?,
            trials: a.trials,
            image: a.image.clone(),
        })
        .map_err(anyhow::Error::msg)?;
        if human {
            for (name, p) in [
                ("kill", &r.kill),
                ("freeze", &r.freeze),
                ("kill: decided", &r.kill_decided),
                ("freeze: decided", &r.freeze_decided),
                ("kill: act", &r.kill_act),
                ("freeze: act", &r.freeze_act),
            ] {
                if let Some(p) = p {
                    println!(
                        "  {name:<16} n={} p50={}us p90={}us p99={}us max={}us",
                        p.n, p.p50_us, p.p90_us, p.p99_us, p.max_us
                    );
                }
            }
            println!("  failures={}", r.failures);
        }
        report.response = Some(r);
    }
    if a.which == Which::Recorder {
        if human {
            println!(
                "== recorder: {} replayed events appended, then queried; SQLite with {} in the same run ==",
                a.events, a.sqlite_events
            );
        }
        let r = rampart_bench::recorder(&rampart_bench::RecorderOptions {
            events: a.events,
            sqlite_events: a.sqlite_events,
            dir: a.recorder_dir.clone(),
            ..Default::default()
        })?;
        if human {
            print_recorder(&r);
        }
        report.recorder = Some(r);
    }
    if a.which == Which::Baseline {
        let o = rampart_bench::BaselineBenchOptions {
            seconds: a.baseline_seconds,
            ..Default::default()
        };
        if human {
            println!(
                "== baseline: {} workloads x {} replicas, {} process starts/s (each with a file write and a connect), {} s replayed ==",
                o.workloads, o.replicas, o.execs_per_sec, o.seconds
            );
        }
        let r = rampart_bench::baseline(&o);
        if human {
            println!(
                "  learn   {} events  {:.0} ns/event  {:.0} ns/process start  items {}  stored {} KiB",
                r.learn_events,
                r.learn_ns_per_event,
                r.learn_ns_per_exec,
                r.items,
                r.stored_bytes / 1024
            );
            println!(
                "  memory  RSS {} -> {} KiB  growth {} KiB",
                r.rss_before_kb, r.rss_after_kb, r.rss_growth_kb
            );
            println!(
                "  score   {} events  {:.0} ns/event (best piece {:.0})  first-written path {:.0} ns/event (best piece {:.0}), x{:.2}  (replay loop alone {:.0} ns/event)  deviations {}",
                r.score_events,
                r.score_ns_per_event,
                r.score_best_piece_ns_per_event,
                r.score_reference_ns_per_event,
                r.score_reference_best_piece_ns_per_event,
                r.score_speedup,
                r.replay_only_ns_per_event,
                r.deviations_while_scoring
            );
            println!(
                "  score by kind  process starts {:.0} ns  file writes {:.0} ns  connects {:.0} ns (repeats counted in each container's memo)",
                r.score_exec_ns_per_event, r.score_write_ns_per_event, r.score_connect_ns_per_event
            );
        }
        report.baseline = Some(r);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(0)
}

fn print_recorder(r: &rampart_bench::RecorderReport) {
    println!(
        "{} events ({} replicas of {} workload events), {} blocks, producer retries {}",
        r.events, r.replicas, r.workload_events, r.blocks, r.producer_retries
    );
    println!(
        "  append on one core       {:>10.0} events/s  (writer {:.2} us + sealer {:.2} us CPU per event; target >= 1M/s)",
        r.append_per_core_s, r.writer_cpu_us_per_event, r.sealer_cpu_us_per_event
    );
    println!(
        "  append wall              {:>10.0} events/s  ({:.1} s)",
        r.append_per_s, r.append_wall_s
    );
    println!(
        "  size on disk             {:>10.2} B/event   ({:.0}:1 against JSON's {:.0} B/event; catalog {:.2} B/event; target <= 20 B, >= 8:1)",
        r.bytes_per_event, r.ratio_to_json, r.json_bytes_per_event, r.catalog_bytes_per_event
    );
    println!(
        "  one container's last hour, median of each query's runs (load average {:.1}):",
        r.load_average
    );
    for c in &r.containers {
        println!(
            "    {:<24} {:>8} events {:>4} blocks {:>8.1} ms wall {:>8.1} ms CPU {:>10.0} events/s",
            c.container, c.events, c.blocks_read, c.wall_ms, c.cpu_ms, c.events_per_s
        );
    }
    if let Some(b) = &r.busiest {
        println!(
            "  containers: p50 {:.1} ms, max {:.1} ms; busiest {} {:.1} ms ({} events, {:.0} events/s, {:.1} ms CPU); target < 200 ms",
            r.container_p50_ms,
            r.container_max_ms,
            b.container,
            b.wall_ms,
            b.events,
            b.events_per_s,
            b.cpu_ms
        );
    }
    for (name, s) in [
        ("10-minute window, all containers", &r.window_10min),
        ("retro-hunt, shipped rules, last hour", &r.retro_hunt),
        ("retro-hunt, sequential (before)", &r.retro_hunt_sequential),
    ] {
        println!(
            "  {name:<38} {:>10.0} events/s  ({} events in {:.0} ms; {:.0} per CPU-second; target >= 1M/s)",
            s.events_per_s, s.events, s.wall_ms, s.events_per_cpu_s
        );
    }
    println!("  retro-hunt alerts {}", r.retro_hunt_alerts);
    let q = &r.sqlite;
    println!(
        "  SQLite: {} events, {:.0} events/s ({:.2} us CPU per event), {:.1} B/event; the recorder appends {:.1}x faster and is {:.1}x smaller",
        q.events,
        q.append_per_s,
        q.cpu_us_per_event,
        q.bytes_per_event,
        r.append_per_s / q.append_per_s,
        q.bytes_per_event / r.bytes_per_event
    );
    println!(
        "  same container's hour: SQLite {:.1} ms ({} rows of columns), recorder {:.1} ms ({} whole events)",
        q.query_ms, q.query_rows, q.recorder_query_ms, q.recorder_query_rows
    );
}

fn print_per_event(p: &PerEventReport) {
    let kinds: Vec<String> = p.kinds.iter().map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "records {} -> events {} ({}); {} rules, {} alerts per pass",
        p.records,
        p.events,
        kinds.join(" "),
        p.rules_loaded,
        p.alerts_per_pass
    );
    println!(
        "  {:<22} {:>9.1} ns/record (baseline: the loop alone)",
        "touch", p.touch_ns
    );
    println!("  {:<22} {:>9.1} ns/record", "parse", p.parse_ns);
    println!(
        "  {:<22} {:>9.1} ns/record",
        "decode + enrich", p.decode_enrich_ns
    );
    println!("  {:<22} {:>9.1} ns/event", "rules", p.rules_ns);
    println!("  {:<22} {:>9.1} ns/event", "output (JSON)", p.output_ns);
    println!(
        "  {:<22} {:>9.1} ns/event ({:.1} once only package files are kept)",
        "in-use map", p.in_use_ns, p.in_use_owned_ns
    );
    println!(
        "  in-use map per event = {:.2}% of one open+read+close of the open storm ({:.0} ns)",
        p.in_use_share_of_open_pct, p.open_iteration_ns
    );
    if p.kernel.is_empty() {
        println!("kernel programs: not measured (the kernel refused BPF_ENABLE_STATS)");
    }
    for k in &p.kernel {
        println!(
            "kernel programs, {} storm ({} ops): {:.1} ns/op in BPF, {:.2} records/op",
            k.storm, k.ops, k.ns_per_op, k.records_per_op
        );
        for (name, runs, ns) in k.programs.iter().take(8) {
            println!("  {name:<22} {runs:>7.2} runs/op {ns:>9.1} ns/op");
        }
    }
}

fn print_storm(s: &StormReport) {
    println!("{:<8} n={}", s.storm.as_str(), s.n);
    for arm in &s.arms {
        let lo = rampart_bench::stats::min(&arm.cpu_us_per_op_pieces);
        let hi = rampart_bench::stats::max(&arm.cpu_us_per_op_pieces);
        print!(
            "  {:<24} cpu/op {:>8.3}us ({:>+6.1}%) [{lo:.2}..{hi:.2}]  best {:>+6.1}%  wall/op {:>8.3}us ({:>+6.1}%)",
            arm.name, arm.cpu_us_per_op, arm.cpu_pct, arm.best_pct, arm.wall_us_per_op, arm.wall_pct,
        );
        let Some(sensor) = &arm.sensor else {
            println!();
            continue;
        };
        let user = match sensor.user_us_per_event {
            Some(us) => format!("{us:.2}us/event"),
            None => "n/a (under 1000 events)".to_string(),
        };
        println!(
            "  kernel {:.0}ns/op ({:.1}% of the bare op)  sensor user space {user}, {:.3}us/op, drops={}",
            sensor.kernel_ns_per_op, sensor.kernel_pct_of_bare, sensor.user_us_per_op, sensor.drops
        );
        let top: Vec<String> = sensor
            .top_programs
            .iter()
            .map(|p| {
                format!(
                    "{} {:.0}ns ({:.1} runs x {:.0}ns)",
                    p.name, p.ns_per_op, p.runs_per_op, p.ns_per_run
                )
            })
            .collect();
        if !top.is_empty() {
            println!("      kernel by program: {}", top.join(", "));
        }
        if let Some(p) = &sensor.paired {
            println!(
                "      paired, attached vs detached: {} pairs of {} ops: cpu {:+.1}% (middle half of the pairs {:+.1}%..{:+.1}%), wall {:+.1}%; {} events, drops={}, switch {:.1} ms median",
                p.pairs, p.piece, p.cpu_pct, p.cpu_pct_q1, p.cpu_pct_q3, p.wall_pct, p.events, p.drops, p.switch_ms,
            );
        }
    }
}

fn print_in_use(s: &StormReport) {
    for c in &s.in_use {
        println!(
            "  in-use map ({} vs {}): {:.4} events/op; timed {:.2}ns/op = {:.3}% of the bare op; sensor user space {:+.3}us/op = {:+.2}% (noisy); storm cpu/op {:+.1}%",
            c.arm, c.partner, c.events_per_op, c.timed_ns_per_op, c.timed_pct_of_bare, c.user_us_per_op, c.pct_of_bare, c.storm_cpu_pct
        );
    }
}

fn print_throughput(t: &ThroughputReport) {
    let l = &t.live;
    println!(
        "live: {} events in {:.2}s = {:.0} events/s, drops={} (kernel ring full {}, shed {}, queue {})",
        l.events, l.seconds, l.events_per_sec, l.drops, l.kernel_ring_full, l.kernel_shed, l.queue_drops
    );
    let r = &t.replay;
    println!(
        "replay ceiling: decode+enrich+JSON {:.0} events/s ({:.2} us/event, {} bytes/event); JSON alone {:.0} events/s; plain serde_json {:.0} events/s",
        r.events_per_sec, r.us_per_event, r.bytes_per_event, r.json_only_events_per_sec, r.plain_serde_events_per_sec
    );
    let g = &t.lineage;
    println!(
        "new processes with a shared 5-deep lineage: JSON writer {:.0} events/s ({:.2} us/event, {} bytes/event); plain serde_json {:.0} events/s",
        g.writer_events_per_sec, g.us_per_event, g.bytes_per_event, g.plain_serde_events_per_sec
    );
}

fn print_percentiles(name: &str, p: Option<&Percentiles>) {
    match p {
        None => println!("{name:<34} no samples"),
        Some(p) => println!(
            "{name:<34} n={:<6} p50={:>6}us p90={:>6}us p99={:>6}us max={:>6}us",
            p.n, p.p50_us, p.p90_us, p.p99_us, p.max_us
        ),
    }
}

fn print_latency(l: &LatencyReport) {
    println!(
        "rules loaded: {} ({} failed)",
        l.rules_loaded, l.rules_failed
    );
    print_percentiles("baseline: kernel -> event received", l.received.as_ref());
    print_percentiles("kernel -> alert written", l.alert_written.as_ref());
    print_percentiles(
        &format!(
            "after quiet spells ({} ms apart): kernel -> event received",
            l.quiet_interval_ms
        ),
        l.after_quiet.as_ref(),
    );
}

fn print_memory(m: &MemoryReport) {
    println!(
        "  started and stopped {} in {:.1}s",
        m.containers, m.churn_seconds
    );
    let (r, h) = (&m.rss_kib, &m.heap_kib);
    println!(
        "RSS KiB: cold={} start={} after-churn={} after-grace={} (delta {:+}); heap KiB: cold={} start={} after-churn={} after-grace={} (delta {:+}); events={}; cached containers={}",
        r.cold, r.start, r.after_churn, r.after_grace, r.delta(),
        h.cold, h.start, h.after_churn, h.after_grace, h.delta(),
        m.events, m.cached_containers
    );
}

/// `rampart bench-storm KIND N`: one storm, its elapsed nanoseconds on stdout.
pub fn storm(kind: &str, n: u64) -> anyhow::Result<()> {
    let d = rampart_bench::storms::run_storm(kind.parse()?, n)?;
    println!("{}", d.as_nanos());
    Ok(())
}

/// `rampart bench-gen-opens`: the throughput run's load generator.
pub fn gen_opens() {
    rampart_bench::storms::gen_opens();
}

fn print_api(r: &rampart_api::bench::ApiBenchReport) {
    println!(
        "filled {} alerts in {:.1}s ({:.0}/s), {} database {:.0} MiB",
        r.alerts,
        r.fill_secs,
        r.fill_alerts_per_sec,
        r.store,
        r.db_bytes as f64 / 1048576.0
    );
    println!(
        "{:<32} {:>5} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "query", "rows", "http p50", "http p99", "http max", "store p50", "store p99"
    );
    let ms = |us: u64| format!("{:.2}ms", us as f64 / 1000.0);
    for q in &r.queries {
        println!(
            "{:<32} {:>5} {:>10} {:>10} {:>10} {:>11} {:>11}",
            q.query,
            q.returned,
            ms(q.http_p50_us),
            ms(q.http_p99_us),
            ms(q.http_max_us),
            ms(q.store_p50_us),
            ms(q.store_p99_us)
        );
    }
    println!(
        "all queries: http p50 {} p99 {}; store p50 {} p99 {}",
        ms(r.http_p50_us),
        ms(r.http_p99_us),
        ms(r.store_p50_us),
        ms(r.store_p99_us)
    );
    println!(
        "RSS: {} MiB after the fill, {} MiB after the run, peak {} MiB",
        r.rss_after_fill_kib / 1024,
        r.rss_after_run_kib / 1024,
        r.rss_peak_kib / 1024
    );
}
