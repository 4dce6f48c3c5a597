//! `rampart bench api --api-postgres`: the alert-list benchmark runs against central's
//! PostgreSQL store (a real server), answers every query shape with the rows the fill
//! put there, measures the store's size, and leaves no schema behind.

use rampart_api::bench::ApiBenchOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_bench_runs_on_postgres_and_cleans_up() {
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let opts = ApiBenchOptions {
        alerts: 2_000,
        requests: 3,
        ..Default::default()
    };
    let r = rampart_central::bench::api_bench_postgres(&url, opts)
        .await
        .expect("the bench runs");
    assert_eq!(r.store, "postgresql");
    assert_eq!(r.alerts, 2_000);
    assert!(
        r.db_bytes > 0,
        "the store's size is measured: {}",
        r.db_bytes
    );
    let rows = |name: &str| {
        r.queries
            .iter()
            .find(|q| q.query == name)
            .map(|q| q.returned)
            .unwrap_or_else(|| panic!("no query {name:?}"))
    };
    assert_eq!(rows("newest 100"), 100);
    assert_eq!(rows("one rule, 50"), 50);
    assert!(rows("one container, 50") > 0);
    assert!(r.http_p99_us > 0 && r.store_p99_us > 0);

    // The run's schema is gone: only schemas of other runs still going may remain.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let mine = format!("rampart_apibench_{}_%", std::process::id());
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1",
            &[&mine],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(left, 0, "the bench's schema was dropped");
}
