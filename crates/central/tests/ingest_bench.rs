//! `rampart central bench`'s ingest measurement on real servers (a nats-server of the
//! test's own and PostgreSQL): every record published is stored, paced publishing
//! takes as long as its rate says, and the lag it reports comes from central.

use rampart_central::bench::{ingest_bench, IngestBenchConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_ingest_stores_every_record_at_the_asked_rate_and_reports_the_lag() {
    let dir = tempfile::tempdir().unwrap();
    let Some((nats, url)) = rampart_testbed::nats_and_postgres(&dir.path().join("nats")) else {
        return;
    };
    let config = |rate_per_s| IngestBenchConfig {
        nats: rampart_bus_nats::NatsConfig {
            max_bytes: 256 << 20,
            ..rampart_bus_nats::NatsConfig::new(&nats.url())
        },
        postgres: url.clone(),
        nodes: 2,
        records: 6_000,
        batch_records: 100,
        in_flight: 4,
        alerts_per_ten: 6,
        flows_per_ten: 2,
        messages_per_commit: 16,
        commits_in_flight: 2,
        careful_ingest: false,
        rate_per_s,
    };

    // 6,000 records at 3,000/s: two seconds of publishing, whatever the machine.
    let paced = ingest_bench(config(3_000)).await.expect("the paced run");
    // Per node, 30 batches of 100: 6 flow reports, 24 of alerts and inventory updates
    // (six to two).
    assert_eq!((paced.records, paced.flow_edges), (6_000, 1_200));
    assert_eq!(paced.alerts + paced.inventory, 4_800);
    assert!(paced.alerts > paced.inventory * 5 / 2, "{paced:?}");
    assert_eq!(paced.store_errors, 0);
    assert_eq!(paced.rate_per_s, 3_000);
    assert!(
        paced.seconds >= 1.9,
        "paced publishing spreads the records over two seconds: {paced:?}"
    );
    assert!(
        paced.published_per_s <= 3_300.0,
        "publishing is held to the rate: {paced:?}"
    );
    assert!(
        paced.lag_p50_ms > 0.0 && paced.lag_p50_ms <= paced.lag_p99_ms,
        "the lag is sampled while publishing: {paced:?}"
    );
    assert!(paced.lag_p99_ms <= paced.max_lag_ms + 1.0, "{paced:?}");

    // Unpaced, the same records are published as fast as JetStream takes them.
    let burst = ingest_bench(config(0)).await.expect("the unpaced run");
    assert_eq!(burst.records, 6_000);
    assert_eq!(burst.rate_per_s, 0);
    assert!(
        burst.published_per_s > paced.published_per_s,
        "burst {burst:?} against paced {paced:?}"
    );
}
