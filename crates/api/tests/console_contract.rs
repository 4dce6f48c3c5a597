//! What the web console needs beyond the first contract, on a real server: an alert's
//! incident bundle built by the node's recorder (HTTP as application/gzip and gRPC;
//! 401 without a token, 403 for a viewer, 404 before the recorder has it, 501 for
//! another node's alert), blocked network edges from the netflow stage's "Network edge
//! blocked" alerts merged into the flow table's graph, and each vulnerability's layer,
//! first-seen time and novelty against the last database update.

mod support;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use rampart_event::fleet::{NodeReport, ScanReport, VulnFinding};
use rampart_event::{Priority, Severity};
use rampart_proto::v1 as pb;
use rampart_proto::v1::incident_service_client::IncidentServiceClient;
use rampart_proto::v1::network_service_client::NetworkServiceClient;
use support::{alert, Server, SEC};

/// The files of a tar.gz, by name.
fn untar(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        out.insert(name, text);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_bundle_comes_from_the_nodes_recorder() {
    let s = Server::start().await;
    let now = rampart_event::wall_ns();
    let rule = "Shadow file read in container or by untrusted program";
    // The alert as the node raised it (its own id), and as central stores it (the id
    // scoped by the node, as central's ingest does).
    let raised = alert("a1", now, rule, Priority::Warning, Some("c9"));
    let mut stored = raised.clone();
    stored.id = "node-a/a1".into();
    s.ingest("node-a", &[stored]);
    s.ingest(
        "node-b",
        &[alert("node-b/b1", now, rule, Priority::Warning, Some("c7"))],
    );
    let url = "/v1/alerts/node-a%2Fa1/incident?before=30s&after=2m";
    let analyst = s.client(Some(&s.analyst));

    // Refused before anything is read: no token, a viewer.
    let none = s.client(None).request("GET", url, None).await.unwrap();
    assert_eq!(none.status, 401, "{}", none.text());
    let viewer = s
        .client(Some(&s.viewer))
        .request("GET", url, None)
        .await
        .unwrap();
    assert_eq!(viewer.status, 403, "{}", viewer.text());
    // Not recorded yet; a bad window; another node's alert; an unknown alert.
    let early = analyst.request("GET", url, None).await.unwrap();
    assert_eq!(early.status, 404, "{}", early.text());
    assert!(
        early.text().contains("not in the node's recorder"),
        "{}",
        early.text()
    );
    let bad = analyst
        .request("GET", "/v1/alerts/node-a%2Fa1/incident?before=3x", None)
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("before: "), "{}", bad.text());
    let remote = analyst
        .request("GET", "/v1/alerts/node-b%2Fb1/incident", None)
        .await
        .unwrap();
    assert_eq!(remote.status, 501, "{}", remote.text());
    let unknown = analyst
        .request("GET", "/v1/alerts/node-a%2Fnope/incident", None)
        .await
        .unwrap();
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    // The node records the alert and its event; blocks sealed after 100 ms.
    let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig {
        max_block_age: Duration::from_millis(100),
        ..rampart_recorder::RecorderConfig::with_dir(s.dir.path().join("recording"))
    })
    .unwrap();
    let writer = rampart_recorder::Writer::start(rec).unwrap();
    assert!(writer.try_append_event(Arc::new(raised.event.clone())));
    assert!(writer.try_append_alert(raised.clone()));
    writer.flush().unwrap();
    writer.close().unwrap();

    let got = analyst.request("GET", url, None).await.unwrap();
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.content_type, "application/gzip");
    let files = untar(&got.body);
    let summary = files
        .iter()
        .find(|(n, _)| n.ends_with("/summary.md"))
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no summary.md in {:?}", files.keys()));
    assert!(summary.contains(rule), "{summary}");
    assert!(
        files.keys().any(|n| n.ends_with("/events.jsonl")),
        "{files:?}"
    );
    let alert_json = files
        .iter()
        .find(|(n, _)| n.ends_with("/alert.json"))
        .map(|(_, t)| t.clone())
        .unwrap();
    assert!(alert_json.contains("\"a1\""), "{alert_json}");

    // The same over gRPC, and each download is audited.
    let mut g = IncidentServiceClient::with_origin(analyst.grpc_channel(), analyst.origin());
    let b = g
        .get_incident_bundle(analyst.grpc_request(pb::GetIncidentBundleRequest {
            id: "node-a/a1".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b.filename, "incident-node-aa1.tar.gz");
    assert!(b.events >= 1, "{b:?}");
    assert!(untar(&b.data).keys().any(|n| n.ends_with("/summary.md")));
    let viewer_grpc = s.client(Some(&s.viewer));
    let mut gv =
        IncidentServiceClient::with_origin(viewer_grpc.grpc_channel(), viewer_grpc.origin());
    let refused = gv
        .get_incident_bundle(viewer_grpc.grpc_request(pb::GetIncidentBundleRequest {
            id: "node-a/a1".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let audit = s
        .client(Some(&s.admin))
        .request("GET", "/v1/audit?limit=50", None)
        .await
        .unwrap()
        .json();
    let downloads = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "incident.download" && r["actor"] == "ana")
        .count();
    assert_eq!(downloads, 2, "{audit}");
    s.server.stop().await;
}

/// A "Network edge blocked" alert as the netflow stage raises it.
fn blocked(id: &str, ts_ns: u64, from: &str, to: &str, count: u64) -> rampart_event::Alert {
    let mut a = alert(
        id,
        ts_ns,
        "Network edge blocked",
        Priority::Warning,
        Some("c3"),
    );
    a.count = count;
    a.message = format!(
        "network edge blocked in the kernel (outside the baseline, protect mode): {from} → {to} tcp/8080 (172.17.0.3:8080) by process wget[42]"
    );
    for (k, v) in [
        ("net.workload", serde_json::json!(from)),
        ("net.peer", serde_json::json!(to)),
        ("net.proto", serde_json::json!("tcp")),
        ("net.port", serde_json::json!(8080)),
        ("net.remote", serde_json::json!("172.17.0.3:8080")),
    ] {
        a.output_fields.insert(k.into(), v);
    }
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_edges_join_the_graph() {
    let s = Server::start().await;
    let now = rampart_event::wall_ns();
    // The node's flow table: b → a (learned), c → a (one connection before protect).
    let net = s.dir.path().join("network");
    std::fs::create_dir_all(&net).unwrap();
    let flow = |workload: &str, local: &str, port: u16| rampart_netflow::Flow {
        cgroup_id: 1,
        container_id: format!("id-{workload}"),
        workload: workload.into(),
        proto: rampart_netflow::Proto::Tcp,
        local_ip: local.parse().unwrap(),
        local_port: port,
        remote_ip: "172.17.0.3".parse().unwrap(),
        remote_port: 8080,
        direction: rampart_netflow::Direction::Outbound,
        bytes_out: 100,
        packets_out: 1,
        bytes_in: 200,
        packets_in: 1,
        first_ns: now - 5 * SEC,
        last_ns: now - SEC,
        tcp_flags_out: 2 | 16,
        tcp_flags_in: 2 | 16,
        peer: rampart_netflow::Peer::Container {
            id: "id-a".into(),
            name: "a".into(),
            image: "busybox".into(),
            workload: "label:a".into(),
        },
        process: None,
        tls: None,
    };
    let flows = serde_json::to_string(&vec![
        flow("label:b", "172.17.0.4", 40000),
        flow("label:c", "172.17.0.5", 40001),
    ])
    .unwrap();
    std::fs::write(net.join("flows.json"), flows).unwrap();
    rampart_api::network::register_state_dir(net.clone());
    let before = s
        .client(Some(&s.viewer))
        .request("GET", "/v1/network/graph", None)
        .await
        .unwrap();
    assert_eq!(before.status, 200, "{}", before.text());
    eprintln!("graph from the flow table: {}", before.text());

    // Refusals: c → a twice (3 + 2 connects), d → a (never got through), and an
    // inbound refusal seen from a's side (e → a).
    s.ingest(
        "node-a",
        &[
            blocked("n1", now - 3 * SEC, "label:c", "label:a", 3),
            blocked("n2", now - 2 * SEC, "label:c", "label:a", 2),
            blocked("n3", now - SEC, "label:d", "label:a", 1),
        ],
    );
    let mut inbound = blocked("n4", now, "label:e", "label:a", 4);
    inbound
        .output_fields
        .insert("net.workload".into(), serde_json::json!("label:a"));
    inbound
        .output_fields
        .insert("net.peer".into(), serde_json::json!("label:e"));
    s.ingest("node-a", &[inbound]);

    let c = s.client(Some(&s.viewer));
    let mut g = NetworkServiceClient::with_origin(c.grpc_channel(), c.origin());
    let graph = g
        .get_network_graph(c.grpc_request(pb::GetNetworkGraphRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let edge = |from: &str| {
        graph
            .edges
            .iter()
            .find(|e| e.source == from && e.target == "label:a")
            .unwrap_or_else(|| panic!("no edge {from} -> label:a in {graph:?}"))
    };
    let (b, cc, d, e) = (
        edge("label:b"),
        edge("label:c"),
        edge("label:d"),
        edge("label:e"),
    );
    assert!(!b.blocked && b.blocked_connections == 0, "{b:?}");
    assert!(b.connections >= 1, "{b:?}");
    assert!(
        cc.blocked && cc.anomalous && cc.blocked_connections == 5,
        "{cc:?}"
    );
    assert!(cc.connections >= 1, "the edge keeps its traffic: {cc:?}");
    assert!(
        d.blocked && d.blocked_connections == 1 && d.connections == 0,
        "{d:?}"
    );
    assert!(e.blocked && e.blocked_connections == 4, "{e:?}");
    for id in ["label:d", "label:e"] {
        assert!(graph.nodes.iter().any(|n| n.id == id), "{id} in {graph:?}");
    }
    // The same over HTTP/JSON, in the canonical mapping the console reads.
    let j = c
        .request("GET", "/v1/network/graph", None)
        .await
        .unwrap()
        .json();
    let d_json = j["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["source"] == "label:d")
        .cloned()
        .unwrap();
    assert_eq!(d_json["blocked"], true, "{d_json}");
    assert_eq!(d_json["blockedConnections"], "1", "{d_json}");
    // A window after the refusals holds none of them.
    let later = g
        .get_network_graph(c.grpc_request(pb::GetNetworkGraphRequest {
            since_ns: now + SEC,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(later.edges.iter().all(|e| !e.blocked), "{later:?}");
    s.server.stop().await;
}

fn scan(ts_ns: u64, container: &str, db_updated_ns: u64, found: &[(&str, u64)]) -> NodeReport {
    NodeReport::Scan(ScanReport {
        ts_ns,
        target: format!("container:{container}"),
        image: "web:1".into(),
        image_id: "sha256:web1".into(),
        container_name: container.into(),
        packages: 10,
        db_updated_ns,
        vulnerabilities: found
            .iter()
            .map(|(id, first_seen_ns)| VulnFinding {
                id: id.to_string(),
                package: "openssl".into(),
                version: "3.0.11-1".into(),
                ecosystem: "Debian:12".into(),
                severity: Severity::High,
                in_use: Some(true),
                layer: Some("sha256:bbbb".into()),
                layer_index: Some(1),
                layer_command: Some("RUN apt-get install -y openssl".into()),
                first_seen_ns: *first_seen_ns,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vulnerabilities_carry_their_layer_and_what_the_last_update_brought() {
    let s = Server::start().await;
    let t0 = 1_800_000_000 * SEC;
    // CVE-OLD was found before the database update at t0; CVE-NEW after it (by one
    // node, while another found it later still: the earliest counts).
    s.store
        .put_reports(
            "node-a",
            &[scan(
                t0 + 10 * SEC,
                "c1",
                t0,
                &[("CVE-OLD", t0 - 100 * SEC), ("CVE-NEW", t0 + 5 * SEC)],
            )],
        )
        .unwrap();
    s.store
        .put_reports(
            "node-b",
            &[scan(
                t0 + 20 * SEC,
                "c2",
                t0 - 50 * SEC,
                &[("CVE-NEW", t0 + 9 * SEC)],
            )],
        )
        .unwrap();
    let c = s.client(Some(&s.viewer));
    let j = c
        .request("GET", "/v1/vulnerabilities", None)
        .await
        .unwrap()
        .json();
    assert_eq!(j["dbUpdatedNs"], t0.to_string(), "{j}");
    assert_eq!(j["newSinceDbUpdate"], "1", "{j}");
    let v = |id: &str| {
        j["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {j}"))
    };
    let (old, new) = (v("CVE-OLD"), v("CVE-NEW"));
    assert_eq!(new["newSinceDbUpdate"], true, "{new}");
    assert_eq!(new["firstSeenNs"], (t0 + 5 * SEC).to_string(), "{new}");
    assert_eq!(new["layerDigest"], "sha256:bbbb", "{new}");
    assert_eq!(new["layerIndex"], 1, "{new}");
    assert_eq!(
        new["layerCommand"], "RUN apt-get install -y openssl",
        "{new}"
    );
    assert!(
        old.get("newSinceDbUpdate").is_none_or(|x| x == false),
        "{old}"
    );
    // Over gRPC: a finding without layer evidence says -1.
    s.store
        .put_reports(
            "node-c",
            &[NodeReport::Scan(ScanReport {
                ts_ns: t0,
                target: "container:c3".into(),
                image: "dir:1".into(),
                vulnerabilities: vec![VulnFinding {
                    id: "CVE-DIR".into(),
                    package: "zlib".into(),
                    version: "1".into(),
                    severity: Severity::Low,
                    ..Default::default()
                }],
                ..Default::default()
            })],
        )
        .unwrap();
    let mut g =
        rampart_proto::v1::vulnerability_service_client::VulnerabilityServiceClient::with_origin(
            c.grpc_channel(),
            c.origin(),
        );
    let r = g
        .list_vulnerabilities(c.grpc_request(pb::ListVulnerabilitiesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let dir = r
        .vulnerabilities
        .iter()
        .find(|v| v.id == "CVE-DIR")
        .unwrap();
    assert_eq!((dir.layer_index, dir.layer_digest.as_str()), (-1, ""));
    assert!(!dir.new_since_db_update);
    s.server.stop().await;
}
