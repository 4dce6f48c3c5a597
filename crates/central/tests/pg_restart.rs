//! PostgreSQL restarting under central: a server of the test's own (never the shared
//! one) is stopped while nodes keep publishing over a real nats-server; central keeps
//! the batch in hand, retries, reconnects when the server is back, and every alert is
//! stored once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bus::{BusRecord, Forwarder, NodeBatch, Spool, SpoolConfig};
use rampart_bus_nats::{NatsBackplane, NatsConfig};
use rampart_central::{
    run_central_with, BusConfig, CentralConfig, IngestStats, RetentionConfig, StoreConfig,
};
use rampart_event::Priority;
use rampart_store::{conformance::alert, AlertQuery, Store};

const NOW: u64 = 1_700_000_000_000_000_000;

fn batch(b: u64) -> NodeBatch {
    let records = (0..10)
        .map(|i| {
            BusRecord::Alert(Box::new(alert(
                &format!("pg-{b}-{i}"),
                NOW + b * 1_000_000 + i,
                "Shell",
                Priority::Warning,
                Some(&format!("c{b}")),
            )))
        })
        .collect();
    NodeBatch::new("node-a", "0.1.0", records)
}

fn count(store: &dyn Store) -> usize {
    store
        .query_alerts(&AlertQuery {
            limit: 1000,
            ..AlertQuery::default()
        })
        .map(|p| p.alerts.len())
        .unwrap_or(0)
}

async fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_reconnects_after_postgres_restarts() {
    if !rampart_testbed::nats_server_ready() || !rampart_testbed::pg_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut pg = rampart_testbed::PgServer::start(&dir.path().join("pg"));
    let nats = rampart_testbed::NatsServer::start(&dir.path().join("nats"));
    let mut nats_config = NatsConfig::new(&nats.url());
    nats_config.request_timeout = Duration::from_secs(2);
    // JetStream reserves the stream's bound on disk: a test needs little.
    nats_config.max_bytes = 64 << 20;
    let store_config = StoreConfig::Postgres {
        url: pg.url(),
        schema: None,
    };
    let sc = store_config.clone();
    let store = tokio::task::spawn_blocking(move || rampart_central::open_store(&sc))
        .await
        .unwrap()
        .unwrap();
    let stats = Arc::new(IngestStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let central = tokio::spawn(run_central_with(
        CentralConfig {
            store: store_config,
            bus: BusConfig::Nats(Box::new(nats_config.clone())),
            consumer: "central".into(),
            retention: RetentionConfig {
                alerts: Duration::from_secs(100 * 365 * 86_400),
                ..RetentionConfig::default()
            },
            outputs: None,
            ingest: Default::default(),
        },
        store.clone(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let bus = Arc::new(NatsBackplane::connect(nats_config).await.unwrap());
    let spool = Spool::open(SpoolConfig::new(dir.path().join("spool"), "node-a")).unwrap();
    let fwd = Forwarder::spawn(spool.clone(), bus, &tokio::runtime::Handle::current());
    for b in 0..10 {
        spool.push(10, &batch(b).encode()).unwrap().unwrap();
    }
    wait_until("the first 100 alerts", 30, || stats.report().alerts == 100).await;

    // PostgreSQL goes away while the node keeps sending.
    pg.stop();
    for b in 10..30 {
        spool.push(10, &batch(b).encode()).unwrap().unwrap();
    }
    wait_until("central to notice the store is down", 30, || {
        stats.report().store_errors > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stats.report().alerts <= 110,
        "nothing is stored while it is down"
    );
    pg.restart();
    wait_until("all 300 alerts after the restart", 60, || {
        stats.report().alerts == 300
    })
    .await;
    // The store's own count (its calls block: off the runtime's threads).
    let s = store.clone();
    let stored = tokio::task::spawn_blocking(move || count(s.as_ref()))
        .await
        .unwrap();
    assert_eq!(stored, 300, "every alert stored once");
    let r = stats.report();
    assert_eq!(r.alerts, 300, "each once");
    assert!(r.store_errors > 0);
    fwd.shutdown(Duration::from_secs(1)).await;
    let _ = stop.send(());
    central.await.unwrap().unwrap();
}
