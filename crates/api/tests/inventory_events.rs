//! Workloads and live events through the real server: containers grouped by their
//! labels answer the same over HTTP/JSON and gRPC; events the local recorder seals
//! reach a gRPC stream and server-sent events, filtered; streams are refused without a
//! token and for nodes this server does not record.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rampart_event::{ContainerLifecycle, LifecycleAction, Priority};
use rampart_proto::v1 as pb;
use rampart_proto::v1::event_service_client::EventServiceClient;
use rampart_proto::v1::inventory_service_client::InventoryServiceClient;
use rampart_store::Ingest;
use support::{alert, Server, SEC, T0};

fn start(ts_ns: u64, id: &str, image: &str, labels: &[(&str, &str)]) -> ContainerLifecycle {
    ContainerLifecycle {
        ts_ns,
        action: LifecycleAction::Start,
        container_id: id.into(),
        name: format!("name-{id}"),
        image: image.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_group_containers_by_labels_over_http_and_grpc() {
    let s = Server::start().await;
    let compose = [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "web"),
    ];
    let k8s = [
        ("io.kubernetes.pod.name", "db-0"),
        ("io.kubernetes.pod.namespace", "prod"),
        ("statefulset.kubernetes.io/pod-name", "db-0"),
    ];
    let changes = [
        start(T0, "w1", "nginx:1.27", &compose),
        start(T0 + SEC, "w2", "nginx:1.27", &compose),
        start(T0 + 2 * SEC, "d0", "postgres:15", &k8s),
        start(T0 + 3 * SEC, "x1", "busybox", &[]),
    ];
    s.store
        .ingest(&Ingest {
            node: "node-a",
            seen_ns: T0,
            lifecycle: &changes,
            ..Ingest::default()
        })
        .unwrap();

    let c = s.client(Some(&s.viewer));
    let all = c.request("GET", "/v1/workloads", None).await.unwrap();
    assert_eq!(all.status, 200, "{}", all.text());
    let j = all.json();
    let keys: Vec<String> = j["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{}/{}/{}",
                w["kind"],
                w["namespace"].as_str().unwrap_or(""),
                w["name"]
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            r#""Image"//"busybox:latest""#,
            r#""StatefulSet"/prod/"db""#,
            r#""ComposeService"/shop/"web""#
        ],
        "{j}"
    );
    let web = &j["workloads"][2];
    assert_eq!(
        web["containerIds"],
        serde_json::json!(["w1", "w2"]),
        "{web}"
    );
    // uint64 is a string in the canonical JSON mapping.
    assert_eq!(web["running"], "2", "{web}");
    assert_eq!(web["nodes"], serde_json::json!(["node-a"]), "{web}");

    let shop = c
        .request(
            "GET",
            "/v1/workloads?namespace=shop&kind=ComposeService",
            None,
        )
        .await
        .unwrap()
        .json();
    let mut g = InventoryServiceClient::with_origin(c.grpc_channel(), c.origin());
    let grpc = g
        .list_workloads(c.grpc_request(pb::ListWorkloadsRequest {
            namespace: "shop".into(),
            kind: "ComposeService".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.workloads.len(), 1);
    assert_eq!(grpc.workloads[0].container_ids, ["w1", "w2"]);
    assert_eq!(shop["workloads"][0]["name"], grpc.workloads[0].name);
    assert_eq!(
        shop["workloads"].as_array().map(Vec::len),
        Some(1),
        "{shop}"
    );

    let bad = c
        .request("GET", "/v1/workloads?limit=many", None)
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    let anon = s.client(None);
    assert_eq!(
        anon.request("GET", "/v1/workloads", None)
            .await
            .unwrap()
            .status,
        401
    );
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_recorder_seals_reach_grpc_streams_and_server_sent_events() {
    let s = Server::start().await;
    let c = s.client(Some(&s.viewer));
    let mut g = EventServiceClient::with_origin(c.grpc_channel(), c.origin());

    // Refused: no token; a node this server does not record.
    let anon = s.client(None);
    assert_eq!(
        anon.request("GET", "/v1/events:stream", None)
            .await
            .unwrap()
            .status,
        401
    );
    let other = c
        .request("GET", "/v1/events:stream?filter.node=node-z", None)
        .await
        .unwrap();
    assert_eq!(other.status, 404, "{}", other.text());
    s.store
        .ingest(&Ingest {
            node: "node-b",
            seen_ns: T0,
            ..Ingest::default()
        })
        .unwrap();
    let remote = c
        .request("GET", "/v1/events:stream?filter.node=node-b", None)
        .await
        .unwrap();
    assert_eq!(remote.status, 501, "{}", remote.text());
    let bad = c
        .request("GET", "/v1/events:stream?filter.kinds=nonsense", None)
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());

    let mut grpc = g
        .stream_events(c.grpc_request(pb::StreamEventsRequest {
            filter: Some(pb::EventFilter {
                container: "c9".into(),
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    let sse = c
        .sse("/v1/events:stream?filter.container=c9")
        .await
        .unwrap();
    tokio::pin!(sse);

    // The node's writer: blocks sealed after 100 ms.
    let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig {
        max_block_age: Duration::from_millis(100),
        ..rampart_recorder::RecorderConfig::with_dir(s.dir.path().join("recording"))
    })
    .unwrap();
    let writer = rampart_recorder::Writer::start(rec).unwrap();
    let now = rampart_event::wall_ns();
    let mut wanted = alert("e1", now, "r", Priority::Notice, Some("c9")).event;
    wanted.ts_ns = now;
    let mut other_container = alert("e2", now, "r", Priority::Notice, Some("c8")).event;
    other_container.ts_ns = now + 1;
    assert!(writer.try_append_event(Arc::new(other_container)));
    assert!(writer.try_append_event(Arc::new(wanted)));
    writer.flush().unwrap();
    let t = std::time::Instant::now();

    let e = tokio::time::timeout(Duration::from_secs(5), grpc.next())
        .await
        .expect("an event on the gRPC stream")
        .unwrap()
        .unwrap();
    assert_eq!(e.ts_ns, now);
    let body = e.event.unwrap();
    let container = &body.fields["container"];
    assert!(format!("{container:?}").contains("c9"), "{container:?}");
    let line = tokio::time::timeout(Duration::from_secs(5), sse.next())
        .await
        .expect("a server-sent event")
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(j["tsNs"], now.to_string(), "{j}");
    assert_eq!(j["event"]["container"]["id"], "c9", "{j}");
    eprintln!("sealed -> gRPC and SSE: {:?}", t.elapsed());
    // The other container's event is filtered out on both.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), grpc.next())
            .await
            .is_err()
    );
    drop(grpc);
    writer.close().unwrap();
    s.server.stop().await;
}
