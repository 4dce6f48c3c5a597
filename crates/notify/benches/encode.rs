//! Encoder and dispatcher throughput. Run: `cargo bench -p rampart-notify --bench encode`.
//!
//! Baseline measured in the same run: plain `serde_json::to_string(&alert)` (Rampart
//! JSON), which every other encoder is compared against; and for the dispatcher, writing
//! the same lines straight to the rotating file without the queue.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_notify::config::{Encoding, Facility, FileConfig, SinkKind};
use rampart_notify::encode::{self, slack, splunk, syslog, EncodeContext};
use rampart_notify::sink::lines::RotatingFile;
use rampart_notify::{Dispatcher, OutputsConfig, SinkConfig};

/// One encoder under measurement; returns the encoded length.
type EncodeFn<'a> = Box<dyn Fn() -> usize + 'a>;

fn per_second(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

/// Runs `f` repeatedly for about `budget` and returns (iterations, elapsed).
fn measure(budget: Duration, mut f: impl FnMut() -> usize) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    while start.elapsed() < budget {
        for _ in 0..256 {
            bytes += f();
        }
        n += 256;
    }
    black_box(bytes);
    (n, start.elapsed())
}

fn main() {
    let alert = rampart_notify::sample_alert();
    let ctx = EncodeContext::default();
    let budget = Duration::from_millis(400);
    let header = syslog::SyslogHeader {
        facility: Facility::Local0,
        app_name: "rampart".into(),
        proc_id: 1,
        message: Encoding::Text,
    };
    let hec = splunk::HecMetadata {
        source: "rampart".into(),
        sourcetype: "rampart:alert".into(),
        index: None,
        format: Encoding::Json,
    };

    let (base_n, base_t) = measure(budget, || {
        serde_json::to_string(black_box(&alert)).unwrap().len()
    });
    let baseline = per_second(base_n, base_t);
    println!("encoder            alerts/s    ns/alert   vs serde_json baseline");
    println!(
        "baseline(serde)  {:>10.0}  {:>10.0}   1.00x",
        baseline,
        1e9 / baseline
    );
    let cases: Vec<(&str, EncodeFn)> = vec![
        (
            "json",
            Box::new(|| encode::encode(Encoding::Json, &alert, &ctx).len()),
        ),
        (
            "falco",
            Box::new(|| encode::encode(Encoding::Falco, &alert, &ctx).len()),
        ),
        (
            "ocsf",
            Box::new(|| encode::encode(Encoding::Ocsf, &alert, &ctx).len()),
        ),
        (
            "text",
            Box::new(|| encode::encode(Encoding::Text, &alert, &ctx).len()),
        ),
        (
            "cef",
            Box::new(|| encode::encode(Encoding::Cef, &alert, &ctx).len()),
        ),
        (
            "syslog5424",
            Box::new(|| syslog::format_rfc5424(&alert, &header, &ctx).len()),
        ),
        (
            "slack",
            Box::new(|| {
                slack::to_value(&alert, &ctx, &slack::SlackOverrides::default())
                    .to_string()
                    .len()
            }),
        ),
        (
            "splunk_hec",
            Box::new(|| splunk::encode(&alert, &ctx, &hec).len()),
        ),
    ];
    for (name, f) in &cases {
        let (n, t) = measure(budget, f);
        let rate = per_second(n, t);
        println!(
            "{name:<16} {rate:>10.0}  {:>10.0}   {:.2}x",
            1e9 / rate,
            rate / baseline
        );
    }

    // Dispatcher: alerts through the queue into a rotating file, against direct writes.
    let dir = std::env::temp_dir().join(format!("rampart-notify-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let total = 100_000u64;
    let line = encode::encode(Encoding::Json, &alert, &ctx) + "\n";
    let direct_path = dir.join("direct.jsonl");
    let mut direct = RotatingFile::open(&direct_path, 64 * 1024 * 1024, 1).unwrap();
    let start = Instant::now();
    for _ in 0..total {
        direct.write_line(line.as_bytes()).unwrap();
    }
    let direct_rate = per_second(total, start.elapsed());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = OutputsConfig {
        queue_capacity: 8192,
        hostname: None,
        falco_uuid: false,
        sinks: vec![SinkConfig {
            name: Some("bench-file".into()),
            min_priority: None,
            kind: SinkKind::File(FileConfig {
                path: dir.join("dispatched.jsonl"),
                format: Encoding::Json,
                max_size_mb: 64,
                keep_files: 1,
            }),
        }],
    };
    let alert = Arc::new(alert.clone());
    let (stats, elapsed) = runtime.block_on(async {
        let dispatcher = Dispatcher::from_config(&config).unwrap();
        let start = Instant::now();
        // Batches smaller than the queue, each followed by a flush: measures the cost of
        // the queue + task hop + file write per alert with nothing dropped.
        let batch = 4096;
        let mut queued = 0;
        while queued < total {
            let n = batch.min(total - queued);
            for _ in 0..n {
                dispatcher.dispatch(alert.clone());
            }
            dispatcher.flush().await;
            queued += n;
        }
        let stats = dispatcher.shutdown().await;
        (stats, start.elapsed())
    });
    let dispatched_rate = per_second(stats[0].sent, elapsed);
    println!();
    println!("file output          alerts/s   (sent/dropped)");
    println!("direct write      {direct_rate:>10.0}   ({total}/0)");
    println!(
        "dispatcher+file   {dispatched_rate:>10.0}   ({}/{})  {:.2}x of direct",
        stats[0].sent,
        stats[0].dropped(),
        dispatched_rate / direct_rate
    );
    let _ = std::fs::remove_dir_all(&dir);
}
