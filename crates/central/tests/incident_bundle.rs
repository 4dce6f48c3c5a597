//! An incident bundle under central, over a real nats-server: central's API asks the
//! node that raised the alert, the node builds the bundle from its own recorder (with
//! its packet capture) and sends it in checked pieces, and the tar.gz that comes out
//! of `GET /v1/alerts/{id}/incident` holds the alert, its events and the capture. A
//! bundle larger than one NATS message (1 MiB) crosses in several; one over the bound
//! is refused by the node; an alert of a node that is not connected answers 503 naming
//! the node, at once, not after a hang.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::fleet::{serve_requests, NodeService};
use rampart_bus_nats::{NatsBackplane, NatsConfig};
use rampart_central::nodes::{NodeClient, NodeRequestError};
use rampart_event::Priority;
use rampart_store::{Ingest, SqliteStore, Store};

const NODE: &str = "inc-node";
const RULE: &str = "Shadow file read in container or by untrusted program";

/// The files of a tar.gz, by name.
fn untar(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

fn file<'a>(files: &'a std::collections::BTreeMap<String, Vec<u8>>, suffix: &str) -> &'a [u8] {
    files
        .iter()
        .find(|(n, _)| n.ends_with(suffix))
        .map(|(_, d)| d.as_slice())
        .unwrap_or_else(|| panic!("no {suffix} in {:?}", files.keys()))
}

/// A pcapng file (section header, one raw-IP interface, `packets` enhanced packet
/// blocks of `len` pseudo-random bytes each: they do not compress, so the bundle is
/// as large as the capture).
fn pcapng(packets: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let total = (12 + body.len()) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&total.to_le_bytes());
    };
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0A0D_0D0A, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&101u16.to_le_bytes()); // LINKTYPE_RAW
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&0u32.to_le_bytes());
    block(&mut out, 1, &idb);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..packets {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&(i as u32).to_le_bytes());
        epb.extend_from_slice(&(len as u32).to_le_bytes());
        epb.extend_from_slice(&(len as u32).to_le_bytes());
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            epb.push(x as u8);
        }
        while epb.len() % 4 != 0 {
            epb.push(0);
        }
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn central_fetches_a_nodes_incident_bundle_through_the_gateway() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = rampart_testbed::NatsServer::start(&dir.path().join("nats"));

    // The node's recorder: the alert and 500 events of its container around it.
    let now = rampart_event::wall_ns();
    let raised = rampart_store::conformance::alert("a1", now, RULE, Priority::Warning, Some("c9"));
    let recorder_dir = dir.path().join("recorder");
    {
        let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig::with_dir(
            &recorder_dir,
        ))
        .unwrap();
        let w = rampart_recorder::Writer::start(rec).unwrap();
        for i in 0..500u64 {
            let mut ev = raised.event.clone();
            ev.ts_ns = now - 5_000_000_000 + i * 10_000_000;
            ev.seq = i + 10;
            assert!(w.try_append_event(Arc::new(ev)));
        }
        assert!(w.try_append_event(Arc::new(raised.event.clone())));
        assert!(w.try_append_alert(raised.clone()));
        w.close().unwrap();
    }
    // The network stage's capture of the alert: 3 MiB, three NATS messages' worth.
    let captures = dir.path().join("captures");
    std::fs::create_dir_all(&captures).unwrap();
    let capture = pcapng(3 * 1024, 1024);
    let capture_name = rampart_event::capture_file_name("a1");
    std::fs::write(captures.join(&capture_name), &capture).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nats_config = NatsConfig {
        max_bytes: 64 << 20,
        ..NatsConfig::new(&nats.url())
    };
    let plane = Arc::new(rt.block_on(NatsBackplane::connect(nats_config)).unwrap());
    let mut service = NodeService::new(NODE, &recorder_dir, Vec::new());
    service.captures = Some(captures.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve_requests(plane.clone(), Arc::new(service), async {
        let _ = stop_rx.await;
    }));

    // Central: its store holds the alert as ingest scopes it, and one of a node that
    // never connected; its API reaches the nodes through the NodeClient.
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(dir.path().join("central.sqlite")).unwrap());
    let mut stored = raised.clone();
    stored.id = format!("{NODE}/a1");
    let mut unrecorded = raised.clone();
    unrecorded.id = format!("{NODE}/never-recorded");
    for (node, alerts) in [
        (NODE, vec![stored, unrecorded]),
        (
            "gone-node",
            vec![rampart_store::conformance::alert(
                "gone-node/g1",
                now,
                RULE,
                Priority::Warning,
                Some("c1"),
            )],
        ),
    ] {
        store
            .ingest(&Ingest {
                node,
                node_version: "0.1.0",
                seen_ns: now,
                alerts: &alerts,
                ..Ingest::default()
            })
            .unwrap();
    }
    let nodes = NodeClient::new(plane.clone(), Some(store.clone()));
    let api_config = rampart_api::LocalApiConfig {
        state_dir: dir.path().join("api"),
        listen: "127.0.0.1:0".parse().unwrap(),
        recorder_dir: None,
        rules: Vec::new(),
        node: String::new(),
        health: None,
        baselines: None,
    };
    rt.block_on(async {
        let api = rampart_api::start_local_with(
            &api_config,
            store.clone(),
            rampart_api::AlertFeed::new(),
            Some(Arc::new(nodes.clone())),
        )
        .await
        .unwrap();
        let token = std::fs::read_to_string(&api.admin_token_file).unwrap();
        let client = rampart_api::client::ApiClient::new(
            &api.server.local_addr.to_string(),
            &api.cert,
            Some(token.trim().to_string()),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while nodes.ping(NODE).await.is_err() {
            assert!(Instant::now() < deadline, "the node answers");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let got = client
            .request("GET", &format!("/v1/alerts/{NODE}%2Fa1/incident"), None)
            .await
            .unwrap();
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.content_type, "application/gzip");
        assert!(
            got.body.len() > 2 << 20,
            "the bundle spans several NATS messages ({} bytes)",
            got.body.len()
        );
        let files = untar(&got.body);
        let alert: rampart_event::Alert =
            serde_json::from_slice(file(&files, "/alert.json")).unwrap();
        assert_eq!((alert.id.as_str(), alert.rule.as_str()), ("a1", RULE));
        let events = String::from_utf8(file(&files, "/events.jsonl").to_vec()).unwrap();
        assert_eq!(
            events.lines().count(),
            501,
            "the container's events in the window"
        );
        let first: rampart_event::Event =
            serde_json::from_str(events.lines().next().unwrap()).unwrap();
        assert_eq!(
            first.container.container().map(|c| c.id.as_str()),
            Some("c9")
        );
        assert_eq!(
            file(&files, &format!("packets/{capture_name}")),
            &capture[..],
            "the node's capture, byte for byte"
        );
        let summary = String::from_utf8(file(&files, "/summary.md").to_vec()).unwrap();
        assert!(summary.contains(RULE), "{summary}");

        // The same over gRPC, with what the node counted.
        let mut grpc =
            rampart_proto::v1::incident_service_client::IncidentServiceClient::with_origin(
                client.grpc_channel(),
                client.origin(),
            );
        let b = grpc
            .get_incident_bundle(
                client.grpc_request(rampart_proto::v1::GetIncidentBundleRequest {
                    id: format!("{NODE}/a1"),
                    ..Default::default()
                }),
            )
            .await
            .unwrap()
            .into_inner();
        assert_eq!(b.filename, "incident-inc-nodea1.tar.gz");
        assert_eq!(b.events, 501, "{} events", b.events);
        assert!(untar(&b.data).keys().any(|n| n.ends_with("/alert.json")));

        // An alert the node has not recorded: 404, saying so.
        let missing = client
            .request(
                "GET",
                &format!("/v1/alerts/{NODE}%2Fnever-recorded/incident"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(missing.status, 404, "{}", missing.text());
        assert!(
            missing.text().contains("not in node inc-node's recorder"),
            "{}",
            missing.text()
        );

        // A node that is not connected: 503 naming it, at once.
        let asked = Instant::now();
        let gone = client
            .request("GET", "/v1/alerts/gone-node%2Fg1/incident", None)
            .await
            .unwrap();
        assert_eq!(gone.status, 503, "{}", gone.text());
        assert!(gone.text().contains("gone-node"), "{}", gone.text());
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "answered in {:?}",
            asked.elapsed()
        );

        // Over the bound: the node refuses before it sends anything.
        let mut small = nodes.clone();
        small.max_bundle_bytes = 1 << 20;
        let e = small
            .incident_bundle(NODE, "a1", Duration::from_secs(60), Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(matches!(e, NodeRequestError::Node { .. }), "{e}");
        assert!(e.to_string().contains("bundle too large"), "{e}");
        assert!(e.to_string().contains("narrower window"), "{e}");

        // Downloads are audited.
        let audit = client
            .request("GET", "/v1/audit?limit=50", None)
            .await
            .unwrap()
            .json();
        let downloads: Vec<&serde_json::Value> = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "incident.download")
            .collect();
        assert_eq!(downloads.len(), 2, "HTTP and gRPC: {audit}");
        assert!(downloads
            .iter()
            .all(|d| d["target"] == format!("{NODE}/a1")));
        api.server.stop().await;
    });
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
}
