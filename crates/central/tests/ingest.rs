//! Nodes' batches through the backplane into the store: in one process (in-process bus,
//! SQLite), and across a real nats-server into PostgreSQL with central restarted midway
//! (it resumes from its durable consumer) and every alert stored exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bus::{Backplane, BusRecord, Forwarder, InProcessBus, NodeBatch, Spool, SpoolConfig};
use rampart_central::{
    run_central_with, BusConfig, CentralConfig, IngestStats, RetentionConfig, StoreConfig,
};
use rampart_event::{ContainerLifecycle, LifecycleAction, Priority};
use rampart_store::{conformance::alert, AlertQuery, ContainerQuery, Store};

const NOW: u64 = 1_700_000_000_000_000_000;

/// Batch `b` of node `node`: ten alerts and one container start.
fn batch(node: &str, b: u64) -> NodeBatch {
    let mut records: Vec<BusRecord> = (0..10)
        .map(|i| {
            BusRecord::Alert(Box::new(alert(
                &format!("{node}-{b}-{i}"),
                NOW + b * 1_000_000 + i,
                "Shell",
                Priority::Warning,
                Some(&format!("c{b}")),
            )))
        })
        .collect();
    records.push(BusRecord::Lifecycle(ContainerLifecycle {
        ts_ns: NOW + b,
        action: LifecycleAction::Start,
        container_id: format!("c{b}"),
        name: String::new(),
        image: "img:1".into(),
        labels: Default::default(),
    }));
    NodeBatch::new(node, "0.1.0", records)
}

fn count_alerts(store: &dyn Store) -> usize {
    let mut q = AlertQuery {
        limit: 1000,
        ..AlertQuery::default()
    };
    let mut n = 0;
    loop {
        let page = store.query_alerts(&q).unwrap();
        n += page.alerts.len();
        match page.next {
            Some(c) => q.after = Some(c),
            None => return n,
        }
    }
}

fn config(store: StoreConfig, bus: BusConfig) -> CentralConfig {
    CentralConfig {
        store,
        bus,
        consumer: "central".into(),
        retention: RetentionConfig {
            // Fixture alerts are from 2023: keep them.
            alerts: Duration::from_secs(100 * 365 * 86_400),
            ..RetentionConfig::default()
        },
        outputs: None,
        ingest: Default::default(),
    }
}

/// Central on an in-process bus and SQLite in `dir`, as `rampart up` runs it: the bus,
/// the store, the counters, the stop signal and the running task.
type LocalCentral = (
    Arc<InProcessBus>,
    Arc<dyn Store>,
    Arc<IngestStats>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<rampart_central::CentralReport, rampart_central::CentralError>>,
);

fn start_local_central(
    dir: &std::path::Path,
    outputs: Option<rampart_notify::OutputsConfig>,
) -> LocalCentral {
    let bus = Arc::new(InProcessBus::new(64));
    let store: Arc<dyn Store> =
        Arc::new(rampart_store::SqliteStore::open(dir.join("central.db")).unwrap());
    let stats = Arc::new(IngestStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut cfg = config(
        StoreConfig::Sqlite {
            path: dir.join("unused.db"),
        },
        BusConfig::InProcess(bus.clone()),
    );
    cfg.outputs = outputs;
    let central = tokio::spawn(run_central_with(cfg, store.clone(), stats.clone(), async {
        let _ = stopped.await;
    }));
    (bus, store, stats, stop, central)
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_bus_into_sqlite_once_each() {
    let dir = tempfile::tempdir().unwrap();
    // The fleet's outputs: every alert once, the resent batches' too.
    let alerts_file = dir.path().join("fleet-alerts.jsonl");
    let outputs = rampart_notify::OutputsConfig::from_yaml_str(&format!(
        "sinks:\n  - type: file\n    path: {}\n",
        alerts_file.display()
    ))
    .unwrap();
    let (bus, store, stats, stop, central) = start_local_central(dir.path(), Some(outputs));
    let spool = Spool::open(SpoolConfig::new(dir.path().join("spool"), "node-a")).unwrap();
    let fwd = Forwarder::spawn(
        spool.clone(),
        bus.clone(),
        &tokio::runtime::Handle::current(),
    );
    for b in 0..20 {
        let batch = batch("node-a", b);
        let payload = batch.encode();
        spool.push(11, &payload).unwrap().unwrap();
        if b % 5 == 0 {
            // A resend under a new message id: the store still keeps one copy.
            spool.push(11, &payload).unwrap().unwrap();
        }
    }
    let s = store.clone();
    wait_until("200 alerts", 30, || stats.report().batches == 24).await;
    assert_eq!(count_alerts(s.as_ref()), 200);
    let r = stats.report();
    assert_eq!((r.alerts, r.lifecycle, r.rejected), (200, 20, 0));
    assert_eq!(
        s.containers(&ContainerQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap()
        .len(),
        20
    );
    assert_eq!(s.nodes().unwrap()[0].name, "node-a");
    fwd.shutdown(Duration::from_secs(1)).await;
    let _ = stop.send(());
    let report = central.await.unwrap().unwrap();
    assert_eq!(report.ingest.batches, 24);
    let sent = std::fs::read_to_string(&alerts_file).unwrap();
    let ids: std::collections::BTreeSet<String> = sent
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        (sent.lines().count(), ids.len()),
        (200, 200),
        "each alert reached the fleet's outputs once"
    );
}

/// Two nodes whose alerts carry the same ids (two nodes replaying one recording do):
/// both are stored, each under its node's scope; a batch whose node is not the one it
/// came from is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_same_alert_ids_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (bus, store, stats, stop, central) = start_local_central(dir.path(), None);
    // The same alert ids from both nodes: batch() names them by node, so make them equal.
    let same_ids = |node: &str| {
        let mut b = batch(node, 0);
        for r in &mut b.records {
            if let BusRecord::Alert(a) = r {
                a.id = a.id.replace(node, "shared");
            }
        }
        b
    };
    for node in ["node-a", "node-b"] {
        bus.publish(rampart_bus::OutMessage {
            id: format!("{node}-0"),
            node: node.into(),
            payload: same_ids(node).encode().into(),
        })
        .await
        .unwrap();
    }
    // Published by node-a's connection, claiming to be node-b.
    bus.publish(rampart_bus::OutMessage {
        id: "forged".into(),
        node: "node-a".into(),
        payload: batch("node-b", 7).encode().into(),
    })
    .await
    .unwrap();
    wait_until("both batches and the refusal", 30, || {
        let r = stats.report();
        r.batches == 2 && r.rejected == 1
    })
    .await;
    assert_eq!(count_alerts(store.as_ref()), 20, "ten alerts of each node");
    for node in ["node-a", "node-b"] {
        let a = store
            .get_alert(&format!("{node}/shared-0-3"))
            .unwrap()
            .unwrap_or_else(|| panic!("{node}'s alert under its scope"));
        assert_eq!(a.node, node);
    }
    assert!(store.get_alert("node-b/node-b-7-0").unwrap().is_none());
    let _ = stop.send(());
    central.await.unwrap().unwrap();
    assert_eq!(
        rampart_central::node_scoped_alert_id("node-a", "node-a/x"),
        "node-a/x",
        "an id already scoped is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_into_postgres_across_a_central_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some((nats, url)) = rampart_testbed::nats_and_postgres(&dir.path().join("nats")) else {
        return;
    };
    let schema = format!("central_{}", std::process::id());
    let pg = StoreConfig::Postgres {
        url: url.clone(),
        schema: Some(schema.clone()),
    };
    let nats_config = rampart_bus_nats::NatsConfig {
        ack_wait: Duration::from_secs(3),
        // JetStream reserves the stream's bound on disk: a test needs little.
        max_bytes: 64 << 20,
        ..rampart_bus_nats::NatsConfig::new(&nats.url())
    };
    let store = tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || rampart_central::open_store(&pg).unwrap()
    })
    .await
    .unwrap();
    let start_central = |stats: Arc<IngestStats>| {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_central_with(
            config(pg.clone(), BusConfig::Nats(Box::new(nats_config.clone()))),
            store.clone(),
            stats,
            async {
                let _ = stopped.await;
            },
        ));
        (stop, task)
    };

    // Two nodes publish through their spools.
    let node_bus: Arc<dyn Backplane> = Arc::new(
        rampart_bus_nats::NatsBackplane::connect(nats_config.clone())
            .await
            .unwrap(),
    );
    let mut spools = Vec::new();
    let mut forwarders = Vec::new();
    for node in ["node-a", "node-b"] {
        let spool = Spool::open(SpoolConfig::new(dir.path().join(node), node)).unwrap();
        forwarders.push(Forwarder::spawn(
            spool.clone(),
            node_bus.clone(),
            &tokio::runtime::Handle::current(),
        ));
        spools.push((node, spool));
    }
    let push = |from: u64, to: u64| {
        for b in from..to {
            for (node, spool) in &spools {
                spool.push(11, &batch(node, b).encode()).unwrap().unwrap();
            }
        }
    };

    let first = Arc::new(IngestStats::default());
    let (stop, task) = start_central(first.clone());
    push(0, 30);
    wait_until("central A stores some", 30, || first.report().batches >= 10).await;
    // Central stops mid-stream; the nodes go on publishing meanwhile.
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    push(30, 60);
    let second = Arc::new(IngestStats::default());
    let (stop, task) = start_central(second.clone());
    let s = store.clone();
    wait_until("all 1200 alerts", 60, || {
        let s = s.clone();
        tokio::task::block_in_place(|| count_alerts(s.as_ref())) == 1200
    })
    .await;
    let _ = stop.send(());
    let report = task.await.unwrap().unwrap();
    let a = first.report();
    eprintln!(
        "central A stored {} batches, central B {} (redelivered after the restart: {}), max lag {} ms",
        a.batches,
        report.ingest.batches,
        (a.batches + report.ingest.batches).saturating_sub(120),
        report.ingest.max_lag_ns / 1_000_000
    );
    assert!(report.ingest.batches > 0 && report.ingest.batches <= 120);
    assert_eq!(
        a.alerts + report.ingest.alerts,
        1200,
        "each alert stored once"
    );
    let nodes: Vec<String> = tokio::task::block_in_place(|| s.nodes().unwrap())
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
    for f in forwarders {
        f.shutdown(Duration::from_secs(1)).await;
    }
    drop(nats);
    // The PostgreSQL store blocks: never on a runtime thread.
    tokio::task::block_in_place(|| {
        // Connected in the test's own schema: opening `public` would migrate it, and it
        // may hold a newer schema than this build knows.
        let admin = rampart_store_pg::PgStore::open(rampart_store_pg::PgConfig {
            url,
            schema: Some(schema.clone()),
        });
        if let Ok(admin) = admin {
            let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    });
}

/// What a node reports about itself (rules, health, a scan result with its SBOM)
/// travels in batches of its own and is stored newest per key: a late older rules
/// report changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_reports_through_the_bus_newest_wins() {
    use rampart_event::fleet::*;
    let dir = tempfile::tempdir().unwrap();
    let (bus, store, stats, stop, central) = start_local_central(dir.path(), None);
    let rules = |ts_ns: u64, name: &str| {
        NodeReport::Rules(RulesReport {
            ts_ns,
            rules: vec![RuleInfo {
                name: name.into(),
                priority: "WARNING".into(),
                enabled: true,
                ..Default::default()
            }],
            ..Default::default()
        })
    };
    let scan = NodeReport::Scan(ScanReport {
        ts_ns: NOW,
        target: "container:c1".into(),
        image: "img:1".into(),
        vulnerabilities: vec![VulnFinding {
            id: "CVE-1".into(),
            package: "p".into(),
            version: "1".into(),
            severity: rampart_event::Severity::High,
            in_use: Some(true),
            ..Default::default()
        }],
        sbom_cyclonedx: Some("{\"bomFormat\":\"CycloneDX\"}".into()),
        ..Default::default()
    });
    let health = NodeReport::Health(HealthReport {
        ts_ns: NOW,
        kernel: "6.1.0".into(),
        ..Default::default()
    });
    for (i, r) in [rules(NOW + 2, "new"), rules(NOW + 1, "old"), scan, health]
        .into_iter()
        .enumerate()
    {
        let b = NodeBatch::new("node-a", "0.1.0", vec![BusRecord::Report(r)]);
        bus.publish(rampart_bus::OutMessage {
            id: format!("r{i}"),
            node: "node-a".into(),
            payload: b.encode().into(),
        })
        .await
        .unwrap();
    }
    wait_until("4 report batches", 30, || stats.report().batches == 4).await;
    let r = store.reports("rules", Some("node-a")).unwrap();
    match &r[0].report {
        NodeReport::Rules(x) => assert_eq!(x.rules[0].name, "new", "the newest stays"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.reports("scan", None).unwrap().len(), 1);
    assert_eq!(store.reports("health", None).unwrap().len(), 1);
    let sboms = store.sboms("node-a", "scan:container:c1").unwrap().unwrap();
    assert!(sboms.cyclonedx.unwrap().contains("CycloneDX"));
    assert_eq!(store.nodes().unwrap()[0].name, "node-a");
    let _ = stop.send(());
    central.await.unwrap().unwrap();
}

/// A node's flow reports can be committed out of order (commits run side by side): an
/// older report's edges that a newer report already stored are counted as superseded,
/// not written, so every edge a node sent is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_flow_report_arriving_late_counts_its_edges_as_superseded() {
    use rampart_bus::flows::{FlowReport, FlowSummary};
    let dir = tempfile::tempdir().unwrap();
    let (bus, store, stats, stop, central) = start_local_central(dir.path(), None);
    let edge = |target: &str, bytes: u64, last_seen_ns: u64| FlowSummary {
        source: "image:web".into(),
        target: target.into(),
        protocol: "tcp".into(),
        port: 5432,
        outbound: true,
        bytes_sent: bytes,
        connections: 1,
        first_seen_ns: NOW,
        last_seen_ns,
        state: "baseline".into(),
        ..Default::default()
    };
    let newer = FlowReport {
        ts_ns: NOW + 200,
        edges: vec![
            edge("image:db", 400, NOW + 190),
            edge("image:cache", 40, NOW + 190),
        ],
        addresses: Vec::new(),
    };
    // Made before the newer one, sent after it: two edges the newer report already
    // holds, one it does not.
    let older = FlowReport {
        ts_ns: NOW + 100,
        edges: vec![
            edge("image:db", 100, NOW + 90),
            edge("image:cache", 10, NOW + 90),
            edge("image:queue", 7, NOW + 90),
        ],
        addresses: Vec::new(),
    };
    // One at a time: the older report is sent once the newer one is stored.
    for (i, report) in [newer, older].into_iter().enumerate() {
        let b = NodeBatch::new("node-a", "0.1.0", vec![BusRecord::Flows(report)]);
        bus.publish(rampart_bus::OutMessage {
            id: format!("f{i}"),
            node: "node-a".into(),
            payload: b.encode().into(),
        })
        .await
        .unwrap();
        wait_until("the flow batch", 30, || {
            stats.report().batches == i as u64 + 1
        })
        .await;
    }
    let r = stats.report();
    assert_eq!(
        (r.flow_edges, r.flow_edges_superseded),
        (3, 2),
        "the newer report's two edges and the older one's new edge written, its other two superseded"
    );
    let graph = store.flows(0).unwrap();
    let db = graph
        .edges
        .iter()
        .find(|e| e.edge.target == "image:db")
        .expect("the db edge");
    assert_eq!(db.edge.bytes_sent, 400, "the newer report's counters stay");
    assert_eq!(graph.edges.len(), 3);
    let _ = stop.send(());
    central.await.unwrap().unwrap();
}
