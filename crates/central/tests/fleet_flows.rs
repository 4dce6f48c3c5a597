//! The fleet's network graph under central (#20): two nodes fold their flow tables into
//! edges and publish them through their spools over a real nats-server; central stores
//! them in PostgreSQL; with both nodes gone, `GET /v1/network/graph` still draws the
//! graph, and the connection from node one's web container to node two's api container
//! (an address node one cannot name) is one edge between the two workloads, each
//! vertex naming its node, counted once though both ends reported it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::stages::flow_report::{publish, summarize};
use rampart_agent::stages::FlowReportConfig;
use rampart_bus::{Backplane, Forwarder, Spool, SpoolConfig};
use rampart_central::{run_central_with, BusConfig, CentralConfig, IngestStats, StoreConfig};
use rampart_netflow::{Direction, EdgeState, Flow, Peer, Proto};

#[allow(clippy::too_many_arguments)]
fn flow(
    workload: &str,
    container: &str,
    local: (&str, u16),
    remote: (&str, u16),
    direction: Direction,
    peer: Peer,
    bytes: (u64, u64),
    now: u64,
) -> Flow {
    Flow {
        cgroup_id: 7,
        container_id: container.into(),
        workload: workload.into(),
        proto: Proto::Tcp,
        local_ip: local.0.parse().unwrap(),
        local_port: local.1,
        remote_ip: remote.0.parse().unwrap(),
        remote_port: remote.1,
        direction,
        bytes_out: bytes.0,
        packets_out: 10,
        bytes_in: bytes.1,
        packets_in: 12,
        first_ns: now - 5_000_000_000,
        last_ns: now - 1_000_000_000,
        tcp_flags_out: 2 | 16,
        tcp_flags_in: 2 | 16,
        peer,
        process: None,
        tls: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_flows_make_one_fleet_graph_that_outlives_them() {
    let dir = tempfile::tempdir().unwrap();
    let Some((nats, url)) = rampart_testbed::nats_and_postgres(&dir.path().join("nats")) else {
        return;
    };
    let nats_config = rampart_bus_nats::NatsConfig {
        // JetStream reserves the stream's bound on disk: a test needs little.
        max_bytes: 64 << 20,
        ..rampart_bus_nats::NatsConfig::new(&nats.url())
    };
    let schema = format!("flows_{}", std::process::id());
    let pg = StoreConfig::Postgres {
        url: url.clone(),
        schema: Some(schema.clone()),
    };
    let store = tokio::task::spawn_blocking({
        let pg = pg.clone();
        move || rampart_central::open_store(&pg).unwrap()
    })
    .await
    .unwrap();
    let store: Arc<dyn rampart_store::Store> = Arc::new(rampart_api::LiveStore::new(
        store,
        rampart_api::AlertFeed::new(),
    ));
    let stats = Arc::new(IngestStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let central = tokio::spawn(run_central_with(
        CentralConfig {
            store: pg.clone(),
            bus: BusConfig::Nats(Box::new(nats_config.clone())),
            consumer: "central".into(),
            retention: Default::default(),
            outputs: None,
            ingest: Default::default(),
        },
        store.clone(),
        stats.clone(),
        async {
            let _ = stopped.await;
        },
    ));

    // What each node's flow table holds.
    let now = rampart_event::wall_ns();
    let web = "compose:shop/web";
    let api = "compose:shop/api";
    let n1 = vec![
        // web calls 172.30.0.3:8080: not a container of n1, so unnamed there.
        flow(
            web,
            "c-web",
            ("172.30.0.2", 41000),
            ("172.30.0.3", 8080),
            Direction::Outbound,
            Peer::External { dns_name: None },
            (1_200, 64_000),
            now,
        ),
        flow(
            web,
            "c-web",
            ("172.30.0.2", 41002),
            ("93.184.216.34", 443),
            Direction::Outbound,
            Peer::External {
                dns_name: Some("api.stripe.com".into()),
            },
            (3_000, 9_000),
            now,
        ),
    ];
    let n2 = vec![
        // api accepts it from 172.30.0.2: not a container of n2 either.
        flow(
            api,
            "c-api",
            ("172.30.0.3", 8080),
            ("172.30.0.2", 41000),
            Direction::Inbound,
            Peer::External { dns_name: None },
            (64_000, 1_200),
            now,
        ),
    ];
    // Each node summarises its table and publishes through its spool, as the node's
    // flow-report stage does.
    let node_bus: Arc<dyn Backplane> = Arc::new(
        rampart_bus_nats::NatsBackplane::connect(nats_config.clone())
            .await
            .unwrap(),
    );
    let mut forwarders = Vec::new();
    for (node, flows) in [("n1", n1), ("n2", n2)] {
        let spool = Spool::open(SpoolConfig::new(dir.path().join(node), node)).unwrap();
        forwarders.push(Forwarder::spawn(
            spool.clone(),
            node_bus.clone(),
            &tokio::runtime::Handle::current(),
        ));
        let report = summarize(&flows, 0, now, |_| EdgeState::Unlearned);
        let config = FlowReportConfig {
            node: node.into(),
            node_version: "0.1.0".into(),
            state_dir: dir.path().join(node).join("network"),
            every: Duration::from_secs(30),
        };
        let queued = publish(&spool, &config, report).unwrap();
        assert!(queued > 0, "{node} queued its edges");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = store.clone();
        let stored = tokio::task::spawn_blocking(move || s.flows(0).unwrap())
            .await
            .unwrap();
        if stored.edges.len() == 3 && stored.addresses.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "central stored {stored:?} (ingest {:?})",
            stats.report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The nodes go away; the graph stays.
    for f in forwarders {
        f.shutdown(Duration::from_secs(1)).await;
    }
    drop(node_bus);

    let api_config = rampart_api::LocalApiConfig {
        state_dir: dir.path().join("api"),
        listen: "127.0.0.1:0".parse().unwrap(),
        recorder_dir: None,
        rules: Vec::new(),
        node: String::new(),
        health: None,
        baselines: None,
    };
    let plane = Arc::new(
        rampart_bus_nats::NatsBackplane::connect(nats_config.clone())
            .await
            .unwrap(),
    );
    let server = rampart_api::start_local_with(
        &api_config,
        store.clone(),
        rampart_api::AlertFeed::new(),
        Some(Arc::new(rampart_central::nodes::NodeClient::new(
            plane,
            Some(store.clone()),
        ))),
    )
    .await
    .unwrap();
    let token = std::fs::read_to_string(&server.admin_token_file).unwrap();
    let client = rampart_api::client::ApiClient::new(
        &server.server.local_addr.to_string(),
        &server.cert,
        Some(token.trim().to_string()),
    )
    .unwrap();
    let got = client
        .request("GET", "/v1/network/graph", None)
        .await
        .unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    let g = got.json();
    let edges = g["edges"].as_array().unwrap();
    let between: Vec<&serde_json::Value> = edges
        .iter()
        .filter(|e| e["source"] == web && e["target"] == api)
        .collect();
    assert_eq!(between.len(), 1, "one edge between the nodes: {g:#}");
    let e = between[0];
    assert_eq!(
        (e["protocol"].as_str(), e["port"].as_u64()),
        (Some("tcp"), Some(8080))
    );
    // pbjson writes 64-bit integers as strings.
    assert_eq!(
        e["bytes"], "65200",
        "both ends' count of one connection, once: {e}"
    );
    assert_eq!(e["connections"], "1", "{e}");
    assert!(
        edges
            .iter()
            .any(|e| e["source"] == web && e["target"] == "dns:api.stripe.com"),
        "{g:#}"
    );
    assert_eq!(edges.len(), 2, "no edge left to an unnamed address: {g:#}");
    let vertex = |id: &str| {
        g["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no vertex {id} in {g:#}"))
            .clone()
    };
    assert_eq!(vertex(web)["node"], "n1");
    assert_eq!(vertex(api)["node"], "n2");
    assert_eq!(vertex(api)["label"], "shop/api");
    assert_eq!(vertex(web)["namespace"], serde_json::Value::Null);
    // One node's part of it.
    let only_n2 = client
        .request("GET", "/v1/network/graph?node=n2", None)
        .await
        .unwrap()
        .json();
    assert_eq!(only_n2["edges"].as_array().unwrap().len(), 1, "{only_n2:#}");

    server.server.stop().await;
    let _ = stop.send(());
    central.await.unwrap().unwrap();
    drop(nats);
    // The PostgreSQL store blocks: never on a runtime thread.
    tokio::task::block_in_place(|| {
        let admin = rampart_store_pg::PgStore::open(rampart_store_pg::PgConfig {
            url,
            schema: Some(schema.clone()),
        });
        if let Ok(admin) = admin {
            let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
        }
    });
}
