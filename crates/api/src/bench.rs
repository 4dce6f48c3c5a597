//! `rampart bench api`: the filtered alert list with many alerts stored. A SQLite
//! store (or the store the caller passes: central's PostgreSQL) is filled with
//! `alerts` alerts (20 rules, 8 priorities, 500 containers on 5 nodes, a day of
//! timestamps), the real server is started on loopback with TLS, and
//! one client sends the list requests a console sends (by severity, rule, container,
//! node and status, time windows, pages), one at a time over a kept-alive https
//! connection. The baseline, in the same run, is the same queries made on the store
//! directly: the difference is what TLS, HTTP and JSON cost. The process's RSS (the
//! store's cache, the server) is read from /proc after the fill and after the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_event::{Alert, Container, Event, OpenAccess, Payload, Priority, Process, Workload};
use rampart_store::{AlertQuery, AlertStatus, Ingest, SqliteStore, Store};
use serde::Serialize;

use crate::auth::{Role, TokenStore};
use crate::client::ApiClient;
use crate::core::ApiCore;
use crate::live::AlertFeed;
use crate::server::{serve, ServerConfig};

#[derive(Clone)]
pub struct ApiBenchOptions {
    pub alerts: u64,
    /// Measured requests per query shape.
    pub requests: u32,
    /// Where the store and certificate go (a temporary directory when `None`).
    pub dir: Option<std::path::PathBuf>,
    /// The store to fill and serve: an empty one the caller opened (central's
    /// PostgreSQL); a new SQLite file in `dir` when `None`.
    pub store: Option<BenchStore>,
}

/// A store the caller opened for the bench, empty.
#[derive(Clone)]
pub struct BenchStore {
    pub store: Arc<dyn Store>,
    /// What it is, for the report ("postgresql").
    pub kind: String,
    /// Its size on disk, read after the fill.
    pub size_bytes: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
    /// Run once after the fill, before any query: what a long-running store has done by
    /// then (PostgreSQL's `ANALYZE`; without it the first queries are planned on empty
    /// statistics and autovacuum's own analyze lands in the middle of the measurement).
    pub settle: Option<Arc<dyn Fn() -> Result<(), String> + Send + Sync>>,
}

impl Default for ApiBenchOptions {
    fn default() -> Self {
        Self {
            alerts: 1_000_000,
            requests: 200,
            dir: None,
            store: None,
        }
    }
}

/// Latency percentiles of one query shape, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct QueryLatency {
    pub query: String,
    /// Alerts in the first page.
    pub returned: usize,
    pub http_p50_us: u64,
    pub http_p99_us: u64,
    pub http_max_us: u64,
    pub store_p50_us: u64,
    pub store_p99_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchReport {
    /// The store behind the API: "sqlite" or the caller's.
    pub store: String,
    pub alerts: u64,
    pub fill_secs: f64,
    pub fill_alerts_per_sec: f64,
    pub db_bytes: u64,
    pub queries: Vec<QueryLatency>,
    /// Over every measured HTTP request.
    pub http_p50_us: u64,
    pub http_p99_us: u64,
    pub store_p50_us: u64,
    pub store_p99_us: u64,
    pub rss_after_fill_kib: u64,
    pub rss_after_run_kib: u64,
    pub rss_peak_kib: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
}

const T0: u64 = 1_790_000_000_000_000_000;
const DAY_NS: u64 = 86_400_000_000_000;
const RULES: u64 = 20;
const CONTAINERS: u64 = 500;
const NODES: u64 = 5;

fn bench_alert(i: u64, alerts: u64) -> (String, Alert) {
    // A spread over a day, newest last; priorities skewed to the quiet end as in life.
    let ts = T0 + i * (DAY_NS / alerts.max(1));
    let pri = Priority::ALL[[7, 6, 5, 5, 4, 4, 4, 3, 2, 1, 0, 4, 5, 6, 3, 4][(i % 16) as usize]];
    let c = (i * 7919) % CONTAINERS;
    let node = format!("node-{}", c % NODES);
    let alert = Alert {
        id: format!("{i:016x}-bench"),
        ts_ns: ts,
        first_ts_ns: ts,
        count: 1,
        rule: format!("bench rule {}", (i * 31) % RULES),
        priority: pri,
        mitre: vec!["T1003.008".into()],
        tags: vec!["bench".into()],
        message: format!("bench alert {i} in container c{c:04}"),
        output_fields: Default::default(),
        source: "syscall".into(),
        retro: false,
        event: Event {
            schema: rampart_event::SCHEMA_VERSION,
            ts_ns: ts,
            host: node.as_str().into(),
            seq: i,
            process: Some(Arc::new(Process {
                pid: (i % 30000) as u32 + 2,
                tid: (i % 30000) as u32 + 2,
                exe: "/bin/cat".into(),
                argv: vec!["cat".into(), "/etc/shadow".into()],
                comm: "cat".into(),
                ..Default::default()
            })),
            container: Arc::new(Workload::Container(Container {
                id: format!("c{c:04}{}", "0".repeat(59)),
                name: format!("app-{c}"),
                image: format!("registry.local/app-{}:1", c % 40),
                image_digest: format!("sha256:{:064x}", c % 40),
                metadata_complete: true,
                ..Default::default()
            })),
            compat_syscall: false,
            payload: Payload::FileOpen {
                path: "/etc/shadow".into(),
                path_raw: None,
                flags: 0,
                mode: 0,
                access: OpenAccess::from_flags(0),
                ret: 3,
                repeats: 0,
            },
        },
    };
    (node, alert)
}

fn fill(store: &dyn Store, alerts: u64) -> Result<(), BenchError> {
    const BATCH: u64 = 5000;
    let mut i = 0;
    while i < alerts {
        let n = BATCH.min(alerts - i);
        // One batch per node, as nodes send them.
        let mut by_node: Vec<Vec<Alert>> = vec![Vec::new(); NODES as usize];
        for k in i..i + n {
            let (node, a) = bench_alert(k, alerts);
            let idx = node
                .strip_prefix("node-")
                .and_then(|x| x.parse::<usize>().ok())
                .unwrap_or(0);
            by_node[idx].push(a);
        }
        for (idx, batch) in by_node.iter().enumerate() {
            store
                .ingest(&Ingest {
                    node: &format!("node-{idx}"),
                    node_version: "bench",
                    seen_ns: T0,
                    alerts: batch,
                    ..Ingest::default()
                })
                .map_err(|e| BenchError::Setup(format!("filling the store: {e}")))?;
        }
        i += n;
    }
    Ok(())
}

/// The process's resident set and its peak, KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The query shapes: (label, HTTP query string, the same query for the store).
fn shapes(alerts: u64) -> Vec<(String, String, AlertQuery)> {
    let recent = T0 + DAY_NS - DAY_NS / 24;
    let window = (T0 + DAY_NS / 2, T0 + DAY_NS / 2 + DAY_NS / 96);
    let c = format!("c0042{}", "0".repeat(59));
    let _ = alerts;
    vec![
        (
            "newest 100".into(),
            "limit=100".into(),
            AlertQuery {
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "severity>=high, 100".into(),
            "severity=SEVERITY_HIGH&limit=100".into(),
            AlertQuery {
                min_severity: Some(rampart_event::Severity::High),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "critical in the last hour".into(),
            format!("severity=SEVERITY_CRITICAL&sinceNs={recent}&limit=100"),
            AlertQuery {
                min_severity: Some(rampart_event::Severity::Critical),
                since_ns: Some(recent),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "one rule, 50".into(),
            "rule=bench%20rule%207&limit=50".into(),
            AlertQuery {
                rule: Some("bench rule 7".into()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "one container, 50".into(),
            format!("containerId={c}&limit=50"),
            AlertQuery {
                container_id: Some(c.clone()),
                limit: 50,
                ..Default::default()
            },
        ),
        (
            "node + open + warning, 100".into(),
            "node=node-3&status=ALERT_STATUS_OPEN&priority=PRIORITY_WARNING&limit=100".into(),
            AlertQuery {
                node: Some("node-3".into()),
                status: Some(AlertStatus::Open),
                min_priority: Some(Priority::Warning),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "15-minute window, 100".into(),
            format!("sinceNs={}&untilNs={}&limit=100", window.0, window.1),
            AlertQuery {
                since_ns: Some(window.0),
                until_ns: Some(window.1),
                limit: 100,
                ..Default::default()
            },
        ),
        (
            "rule + container (rare), 100".into(),
            format!("rule=bench%20rule%203&containerId={c}&limit=100"),
            AlertQuery {
                rule: Some("bench rule 3".into()),
                container_id: Some(c),
                limit: 100,
                ..Default::default()
            },
        ),
    ]
}

pub async fn run(opts: ApiBenchOptions) -> Result<ApiBenchReport, BenchError> {
    let tmp;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| BenchError::Setup(e.to_string()))?;
            tmp.path().to_path_buf()
        }
    };
    let db = dir.join("bench-central.sqlite");
    let bench_store = match opts.store.clone() {
        Some(s) => s,
        None => {
            let _ = std::fs::remove_file(&db);
            let sqlite: Arc<dyn Store> = Arc::new(
                SqliteStore::open(&db)
                    .map_err(|e| BenchError::Setup(format!("{}: {e}", db.display())))?,
            );
            let db = db.clone();
            BenchStore {
                store: sqlite,
                kind: "sqlite".into(),
                settle: None,
                size_bytes: Arc::new(move || {
                    Some(
                        ["", "-wal"]
                            .iter()
                            .filter_map(|sfx| {
                                std::fs::metadata(format!("{}{sfx}", db.display())).ok()
                            })
                            .map(|m| m.len())
                            .sum(),
                    )
                }),
            }
        }
    };
    let store = bench_store.store.clone();
    let t = Instant::now();
    let (s, n) = (store.clone(), opts.alerts);
    tokio::task::spawn_blocking(move || fill(s.as_ref(), n))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))??;
    let fill_secs = t.elapsed().as_secs_f64();
    if let Some(settle) = bench_store.settle.clone() {
        tokio::task::spawn_blocking(move || settle())
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?
            .map_err(|e| BenchError::Setup(format!("after the fill: {e}")))?;
    }
    let size = bench_store.size_bytes.clone();
    let db_bytes = tokio::task::spawn_blocking(move || size())
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .unwrap_or(0);
    let (rss_after_fill_kib, _) = rss_kib();

    let mut tokens = TokenStore::in_memory();
    let token = tokens
        .issue("bench", Role::Viewer)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let tls = crate::tls::ensure_self_signed(&dir).map_err(|e| BenchError::Setup(e.to_string()))?;
    let core = ApiCore::new(store.clone(), Arc::new(tokens), AlertFeed::new());
    let server = serve(
        ServerConfig {
            listen: "127.0.0.1:0"
                .parse()
                .map_err(|e: std::net::AddrParseError| BenchError::Setup(e.to_string()))?,
            tls: Some((tls.cert.clone(), tls.key.clone())),
        },
        Arc::new(core),
    )
    .await
    .map_err(|e| BenchError::Setup(e.to_string()))?;
    let client = ApiClient::new(&server.local_addr.to_string(), &tls.cert, Some(token))
        .map_err(|e| BenchError::Setup(e.to_string()))?;

    let mut queries = Vec::new();
    let (mut all_http, mut all_store) = (Vec::new(), Vec::new());
    for (label, qs, q) in shapes(opts.alerts) {
        let path = format!("/v1/alerts?{qs}");
        // Warm-up: the page cache and the statement cache.
        let mut returned = 0;
        for _ in 0..5 {
            let r = client
                .request("GET", &path, None)
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            if r.status != 200 {
                return Err(BenchError::Setup(format!(
                    "{path}: {} {}",
                    r.status,
                    r.text()
                )));
            }
            returned = r.json()["alerts"].as_array().map_or(0, Vec::len);
        }
        let mut http = Vec::with_capacity(opts.requests as usize);
        let mut direct = Vec::with_capacity(opts.requests as usize);
        // Interleaved, so both see the same machine.
        for _ in 0..opts.requests {
            let t = Instant::now();
            let r = client
                .request("GET", &path, None)
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            http.push(t.elapsed().as_micros() as u64);
            if r.status != 200 {
                return Err(BenchError::Setup(format!("{path}: {}", r.status)));
            }
            let (s, q2) = (store.clone(), q.clone());
            let t = Instant::now();
            tokio::task::spawn_blocking(move || s.query_alerts(&q2))
                .await
                .map_err(|e| BenchError::Setup(e.to_string()))?
                .map_err(|e| BenchError::Setup(e.to_string()))?;
            direct.push(t.elapsed().as_micros() as u64);
        }
        all_http.extend_from_slice(&http);
        all_store.extend_from_slice(&direct);
        http.sort_unstable();
        direct.sort_unstable();
        queries.push(QueryLatency {
            query: label,
            returned,
            http_p50_us: percentile(&http, 0.5),
            http_p99_us: percentile(&http, 0.99),
            http_max_us: http.last().copied().unwrap_or(0),
            store_p50_us: percentile(&direct, 0.5),
            store_p99_us: percentile(&direct, 0.99),
        });
    }
    server.stop().await;
    all_http.sort_unstable();
    all_store.sort_unstable();
    let (rss_after_run_kib, rss_peak_kib) = rss_kib();
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(ApiBenchReport {
        store: bench_store.kind,
        alerts: opts.alerts,
        fill_secs,
        fill_alerts_per_sec: opts.alerts as f64 / fill_secs.max(1e-9),
        db_bytes,
        queries,
        http_p50_us: percentile(&all_http, 0.5),
        http_p99_us: percentile(&all_http, 0.99),
        store_p50_us: percentile(&all_store, 0.5),
        store_p99_us: percentile(&all_store, 0.99),
        rss_after_fill_kib,
        rss_after_run_kib,
        rss_peak_kib,
    })
}
