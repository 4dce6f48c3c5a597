//! The fleet end to end, every part real: `rampart central init` makes the CA; a
//! nats-server of the test's own runs with its TLS block (`verify: true`); `rampart
//! central` consumes into PostgreSQL (a schema of the test's own); three nodes enroll
//! with one-time tokens (`rampart node enroll`): one real node on this kernel, and two
//! that replay a recorded workload under their own names (`rampart node --replay`).
//!
//! Checked: central's store holds each node's alerts and inventory; central asks the
//! real node (by name, over NATS request/reply) for its recorder's events of the
//! attacked container with a `where` condition, runs a retro-hunt there with a rules
//! file, and has it stop the container (a response command, audited in central's
//! store); asking a node that is not there is an error, not a silent empty answer.
//!
//! Needs root, the kernel, Docker and its test image, nats-server and PostgreSQL
//! (scripts/setup): skips with the reason elsewhere, fails in CI.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bus::rpc::{EventQuery, RespondCommand, RulesText};
use rampart_bus_nats::{NatsBackplane, NatsConfig, NatsTls};
use rampart_central::nodes::NodeClient;
use rampart_central::pki::PkiFiles;
use rampart_store::{AlertQuery, AuditQuery, ContainerQuery, Store};
use support::Up;

fn rampart(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .expect("rampart runs");
    assert!(
        out.status.success(),
        "rampart {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The recorded workload (real sensor events from containers), with each container's
/// start in front so the replaying node reports inventory too. Each node's copy is its
/// own: container ids (unique across hosts) start with `tag`, and times move by
/// `shift_ns` (alert ids are made from the event's time and the engine's counter).
fn replay_file(dir: &Path, node: &str, tag: &str, shift_ns: u64) -> PathBuf {
    let gz =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../detect-e2e/benches/data/workload.jsonl.gz");
    let out = Command::new("gzip").arg("-dc").arg(&gz).output().unwrap();
    assert!(out.status.success());
    let mut events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut starts = std::collections::BTreeMap::new();
    for v in &mut events {
        let ts = v["ts_ns"].as_u64().unwrap() + shift_ns;
        v["ts_ns"] = ts.into();
        let c = &mut v["container"];
        let Some(id) = c["id"].as_str().filter(|id| id.len() == 64) else {
            continue;
        };
        let id = format!("{tag}{}", &id[tag.len()..]);
        c["id"] = id.clone().into();
        starts
            .entry(id.clone())
            .or_insert_with(|| rampart_event::ContainerLifecycle {
                ts_ns: ts.saturating_sub(1),
                action: rampart_event::LifecycleAction::Start,
                container_id: id,
                name: c["name"].as_str().unwrap_or_default().to_string(),
                image: c["image"].as_str().unwrap_or_default().to_string(),
                labels: Default::default(),
            });
    }
    assert!(!starts.is_empty(), "the workload names its containers");
    let mut body: String = starts
        .values()
        .map(|s| serde_json::to_string(s).unwrap() + "\n")
        .collect();
    for v in &events {
        body.push_str(&serde_json::to_string(v).unwrap());
        body.push('\n');
    }
    let p = dir.join(format!("{node}-workload.jsonl"));
    std::fs::write(&p, body).unwrap();
    p
}

/// `GET /metrics` on `addr`, the body.
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of an unlabelled metric (0 when absent).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn count_alerts(store: &dyn Store, node: &str) -> usize {
    store
        .query_alerts(&AlertQuery {
            node: Some(node.into()),
            limit: 1000,
            ..AlertQuery::default()
        })
        .unwrap()
        .alerts
        .len()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_fleet_of_three_nodes_into_one_central_on_postgres() {
    if !rampart_testbed::ready(rampart_testbed::TEST_IMAGE) || !rampart_testbed::nats_server_ready()
    {
        return;
    }
    let Some(pg_url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("rampart-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = |p: &str| dir.join(p).to_string_lossy().into_owned();

    // The CA, and nats-server requiring certificates from it.
    rampart(&["central", "init", "--dir", &d("pki")]);
    let pki = PkiFiles::in_dir(&dir.join("pki"));
    let nats = rampart_testbed::NatsServer::start_with_config(
        &dir.join("nats"),
        &rampart_central::pki::nats_tls_block(&pki),
    );

    // Central on PostgreSQL, in a schema of this test's own.
    let schema = format!("fleet_e2e_{}", std::process::id());
    let enroll_addr = format!("127.0.0.1:{}", free_port());
    let central_metrics = format!("127.0.0.1:{}", free_port());
    let central_api = format!("127.0.0.1:{}", free_port());
    let node_metrics = format!("127.0.0.1:{}", free_port());
    std::fs::write(
        dir.join("central.yaml"),
        format!(
            "nats: {{url: \"{}\", stream_max_mb: 64}}\nstore: {{postgres: \"{pg_url}\", schema: {schema}}}\npki_dir: {}\nenroll: {{listen: \"{enroll_addr}\"}}\nmetrics: {{listen: \"{central_metrics}\"}}\napi: {{listen: \"{central_api}\", state_dir: {}}}\n",
            nats.url(),
            d("pki"),
            d("central-api"),
        ),
    )
    .unwrap();
    let central = Up::spawn(&["central", "--config", &d("central.yaml")]);
    central.wait_stderr("consuming the fleet's batches");

    // Three nodes enroll.
    for node in ["kernel-node", "replay-a", "replay-b"] {
        let token = rampart(&[
            "central",
            "enroll-token",
            "--node",
            node,
            "--ttl",
            "5m",
            "--dir",
            &d("pki"),
        ]);
        rampart(&[
            "node",
            "enroll",
            &enroll_addr,
            token.trim(),
            "--dir",
            &d(&format!("{node}-tls")),
        ]);
        std::fs::write(
            dir.join(format!("{node}.yaml")),
            format!(
                "recorder: {{dir: {rec}}}\ncentral:\n  nats_url: \"{url}\"\n  stream_max_mb: 64\n  tls_dir: {tls}\n  spool_dir: {spool}\n  metrics_listen: {metrics}\n  health_secs: 1\n  deployed_rules_dir: {deployed}\n",
                deployed = d(&format!("{node}-deployed")),
                metrics = if node == "kernel-node" { format!("\"{node_metrics}\"") } else { "null".into() },
                rec = d(&format!("{node}-rec")),
                url = nats.url(),
                tls = d(&format!("{node}-tls")),
                spool = d("spool"),
            ),
        )
        .unwrap();
    }

    // The real node, and an attack in a real container.
    let node = Up::spawn(&["node", "--config", &d("kernel-node.yaml")]);
    node.wait_stderr("sensor, detection and outputs running");
    let name = "fleet-e2e-victim";
    let container = rampart_testbed::TestContainer::start(name, &[], &[]);
    container.exec("cat /etc/shadow > /dev/null");
    node.alerts_until("Shadow file read in container or by untrusted program");

    // Two more nodes from the recorded workload, under their own names.
    for (n, tag, shift) in [("replay-a", "aaaa", 1_000), ("replay-b", "bbbb", 2_000)] {
        let replay = replay_file(&dir, n, tag, shift);
        rampart(&[
            "node",
            "--config",
            &d(&format!("{n}.yaml")),
            "--replay",
            replay.to_str().unwrap(),
        ]);
    }

    let store: Arc<dyn Store> = Arc::new(
        rampart_store_pg::PgStore::open(rampart_store_pg::PgConfig {
            url: pg_url.clone(),
            schema: Some(schema.clone()),
        })
        .unwrap(),
    );
    for n in ["kernel-node", "replay-a", "replay-b"] {
        // The real node's few, each replay's whole recording.
        let want = if n == "kernel-node" { 1 } else { 40 };
        wait_for(&format!("{n}'s alerts in central"), || {
            count_alerts(store.as_ref(), n) >= want
        });
        wait_for(&format!("{n}'s containers in central"), || {
            !store
                .containers(&ContainerQuery {
                    node: Some(n.into()),
                    include_gone: true,
                    ..Default::default()
                })
                .unwrap()
                .is_empty()
        });
    }
    // Both replays sent the same recorded alerts, each under its own name.
    assert_eq!(
        count_alerts(store.as_ref(), "replay-a"),
        count_alerts(store.as_ref(), "replay-b")
    );
    let nodes: Vec<String> = store.nodes().unwrap().into_iter().map(|n| n.name).collect();
    for n in ["kernel-node", "replay-a", "replay-b"] {
        assert!(nodes.contains(&n.to_string()), "{nodes:?}");
    }
    let kernel_containers = store
        .containers(&ContainerQuery {
            node: Some("kernel-node".into()),
            include_gone: true,
            ..Default::default()
        })
        .unwrap();
    assert!(
        kernel_containers.iter().any(|c| c.name == name),
        "the victim is in the kernel node's inventory: {kernel_containers:?}"
    );

    // Central asks the real node, with its own certificate.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut nats_cfg = NatsConfig::new(&nats.url());
    nats_cfg.tls = Some(NatsTls {
        ca: pki.ca_cert.clone(),
        cert: pki.central_cert.clone(),
        key: pki.central_key.clone(),
    });
    nats_cfg.max_bytes = 64 << 20;
    let plane = Arc::new(rt.block_on(NatsBackplane::connect(nats_cfg)).unwrap());
    let client = NodeClient::new(plane, Some(store.clone()));

    let (lines, summary) = rt
        .block_on(async {
            client
                .query_events(
                    "kernel-node",
                    EventQuery {
                        container: Some(name.into()),
                        kinds: vec!["file".into()],
                        condition: Some("fd.name = /etc/shadow".into()),
                        ..Default::default()
                    },
                )
                .await?
                .collect()
                .await
        })
        .unwrap();
    assert!(
        !lines.is_empty(),
        "the shadow read from the node's recorder"
    );
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["data"]["path"], "/etc/shadow", "{l}");
        assert_eq!(v["container"]["name"], name, "{l}");
    }
    assert_eq!(summary["records"].as_u64(), Some(lines.len() as u64));

    let rules_dir = rampart_agent::config::default_rules_dir().unwrap();
    let rules = vec![
        RulesText {
            name: "macros.yaml".into(),
            text: std::fs::read_to_string(rules_dir.join("macros.yaml")).unwrap(),
        },
        RulesText {
            name: "credential_access.yaml".into(),
            text: std::fs::read_to_string(rules_dir.join("credential_access.yaml")).unwrap(),
        },
    ];
    let (hits, _) = rt
        .block_on(async {
            client
                .retro_hunt(
                    "kernel-node",
                    EventQuery {
                        container: Some(name.into()),
                        ..Default::default()
                    },
                    rules,
                )
                .await?
                .collect()
                .await
        })
        .unwrap();
    let hits: Vec<serde_json::Value> = hits
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        hits.iter().any(
            |a| a["rule"] == "Shadow file read in container or by untrusted program"
                && a["retro"] == true
        ),
        "retro-hunt hits: {hits:?}"
    );

    // The same through central's API: the node's recorder over HTTP/JSON and gRPC,
    // workloads from central's store.
    rt.block_on(central_api_asks_the_node(
        &central_api,
        &dir.join("central-api"),
        name,
    ));
    // What the nodes report about themselves, and a deploy to the real node.
    rt.block_on(central_api_fleet_reports(
        &central_api,
        &dir.join("central-api"),
    ));
    // A live stream of the real node's events through central (SSE): an exec in the
    // victim after the stream opened arrives; closing the stream cancels it on the node.
    rt.block_on(async {
        let state = dir.join("central-api");
        let admin = std::fs::read_to_string(state.join("admin-token")).unwrap();
        let c = rampart_api::client::ApiClient::new(
            &central_api,
            &state.join("api-cert.pem"),
            Some(admin.trim().to_string()),
        )
        .unwrap();
        let sse = c
            .sse(&format!(
                "/v1/events:stream?filter.node=kernel-node&filter.container={name}&filter.kinds=exec"
            ))
            .await
            .unwrap();
        tokio::pin!(sse);
        container.exec("ls / > /dev/null");
        let line = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            futures_util::StreamExt::next(&mut sse),
        )
        .await
        .expect("the node's live exec event through central")
        .unwrap();
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["event"]["container"]["name"], name, "{e}");
        assert!(e["kind"].as_str().is_some_and(|k| k.contains("exec")), "{e}");
    });

    let missing = rt.block_on(client.ping("no-such-node"));
    assert!(
        missing
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no-such-node")),
        "{missing:?}"
    );

    // A response command: stop the victim, audited in central's store.
    let answer = rt
        .block_on(client.respond(
            "kernel-node",
            RespondCommand {
                action: "stop".into(),
                params: serde_json::json!({"grace_s": 1}),
                container: name.into(),
                pid: None,
                undo: false,
                dry_run: false,
                operator: "test-operator".into(),
                reason: "fleet e2e".into(),
            },
        ))
        .unwrap();
    assert_eq!(answer["response"]["result"], "done", "{answer}");
    let running = rampart_testbed::docker(&["inspect", "-f", "{{.State.Running}}", name]);
    assert_eq!(running.trim(), "false", "the container was stopped");
    let audit = store
        .query_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.origin == "central" && a.actor == "test-operator"),
        "central's record of the request: {audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.origin == "kernel-node" && a.action.contains("stop")),
        "the node's record of the action: {audit:?}"
    );

    // Prometheus metrics on both processes, loopback only.
    let node_m = scrape(&node_metrics);
    assert!(metric(&node_m, "rampart_events_total") > 0.0, "{node_m}");
    assert!(metric(&node_m, "rampart_alerts_total") >= 1.0, "{node_m}");
    assert!(node_m.contains("rampart_spool_queued_messages"), "{node_m}");
    let central_m = scrape(&central_metrics);
    assert!(
        metric(&central_m, "rampart_alerts_total") >= 81.0,
        "{central_m}"
    );
    assert!(
        metric(&central_m, "rampart_bus_batches_total") >= 3.0,
        "{central_m}"
    );
    assert!(central_m.contains("rampart_bus_lag_seconds"), "{central_m}");
    assert!(
        central_m.contains("rampart_store_commit_seconds"),
        "{central_m}"
    );

    drop(container);
    node.stop();
    central.stop();
    drop(rt);
    if let Ok(admin) = rampart_store_pg::PgStore::open(rampart_store_pg::PgConfig {
        url: pg_url,
        schema: None,
    }) {
        let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Central's API forwards an event query for the real node to its recorder (HTTP/JSON
/// and gRPC give the same events), refuses an unknown node (404) and an anonymous
/// caller (401), and lists the victim's workload from the store.
async fn central_api_asks_the_node(addr: &str, state_dir: &Path, victim: &str) {
    use rampart_proto::v1 as pb;
    let admin = std::fs::read_to_string(state_dir.join("admin-token")).unwrap();
    let c = rampart_api::client::ApiClient::new(
        addr,
        &state_dir.join("api-cert.pem"),
        Some(admin.trim().to_string()),
    )
    .unwrap();
    let filter = pb::EventFilter {
        node: "kernel-node".into(),
        container: victim.into(),
        kinds: vec!["file".into()],
        r#where: "fd.name = /etc/shadow".into(),
        ..Default::default()
    };
    let body = serde_json::json!({
        "filter": {"node": "kernel-node", "container": victim, "kinds": ["file"], "where": "fd.name = /etc/shadow"},
        "limit": 50,
    });
    let r = c
        .request(
            "POST",
            "/v1/events:query",
            Some(body.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let events = j["events"].as_array().cloned().unwrap_or_default();
    assert!(!events.is_empty(), "the shadow read through the API: {j}");
    for e in &events {
        assert_eq!(e["event"]["data"]["path"], "/etc/shadow", "{e}");
        assert_eq!(e["event"]["container"]["name"], victim, "{e}");
    }
    let mut g = rampart_proto::v1::event_service_client::EventServiceClient::with_origin(
        c.grpc_channel(),
        c.origin(),
    );
    let grpc = g
        .query_events(c.grpc_request(pb::QueryEventsRequest {
            filter: Some(filter.clone()),
            limit: 50,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.events.len(), events.len());
    // A bad condition is the caller's error, with the node's reason.
    let bad = serde_json::json!({"filter": {"node": "kernel-node", "where": "fd.name = ("}});
    let r = c
        .request(
            "POST",
            "/v1/events:query",
            Some(bad.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let unknown = serde_json::json!({"filter": {"node": "no-such-node"}});
    let r = c
        .request(
            "POST",
            "/v1/events:query",
            Some(unknown.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let anon = c.with_token(None);
    assert_eq!(
        anon.request(
            "POST",
            "/v1/events:query",
            Some(body.to_string().into_bytes())
        )
        .await
        .unwrap()
        .status,
        401
    );
    let w = c
        .request("GET", "/v1/workloads?kind=Image&includeRemoved=true", None)
        .await
        .unwrap();
    assert_eq!(w.status, 200, "{}", w.text());
    let w = w.json();
    assert!(
        w["workloads"].as_array().is_some_and(|ws| ws
            .iter()
            .any(|x| x["name"] == rampart_testbed::TEST_IMAGE && x["nodes"][0] == "kernel-node")),
        "{w}"
    );
}

/// The nodes' own reports through central's API: every node's rules (with MITRE ids,
/// tags and source file), the real node's sensor health detail; a rules deploy to the
/// real node: refused with the line and column when it does not load (its rules stay),
/// taken and reloaded when it does (the new rule is listed after the reload), audited.
async fn central_api_fleet_reports(addr: &str, state_dir: &Path) {
    let admin = std::fs::read_to_string(state_dir.join("admin-token")).unwrap();
    let c = rampart_api::client::ApiClient::new(
        addr,
        &state_dir.join("api-cert.pem"),
        Some(admin.trim().to_string()),
    )
    .unwrap();
    let get = |path: String| {
        let c = c.clone();
        async move {
            let r = c.request("GET", &path, None).await.unwrap();
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            r.json()
        }
    };
    for node in ["kernel-node", "replay-a", "replay-b"] {
        let rules = get(format!("/v1/rules?node={node}")).await;
        let list = rules["rules"].as_array().cloned().unwrap_or_default();
        let shadow = list
            .iter()
            .find(|r| r["name"] == "Shadow file read in container or by untrusted program");
        let shadow = shadow.unwrap_or_else(|| panic!("{node}'s rules: {rules}"));
        assert_eq!(shadow["node"], node, "{shadow}");
        assert!(
            shadow["sourceFile"]
                .as_str()
                .is_some_and(|f| f.ends_with("credential_access.yaml")),
            "{shadow}"
        );
        assert!(
            shadow["mitre"].as_array().is_some_and(|m| !m.is_empty()),
            "{shadow}"
        );
        assert!(
            shadow["tags"].as_array().is_some_and(|m| !m.is_empty()),
            "{shadow}"
        );
    }
    // The real node reports its sensor every second.
    let mut health = serde_json::Value::Null;
    for _ in 0..100 {
        health = get("/v1/health/sensors?node=kernel-node".into()).await;
        if health["nodes"][0]["detailReported"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let h = &health["nodes"][0];
    assert_eq!(h["detailReported"], true, "{health}");
    assert_eq!(h["alive"], true, "{health}");
    assert!(h["kernel"].as_str().is_some_and(|k| !k.is_empty()), "{h}");
    assert!(
        h["hooks"].as_array().is_some_and(|hs| hs
            .iter()
            .any(|x| x["name"] == "syscalls" && x["attached"] == true)),
        "{h}"
    );
    assert!(
        h["drops"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x["source"] == "kernel_ring_full")
                && d.iter().any(|x| x["source"] == "spool")),
        "{h}"
    );
    assert_ne!(h["reportedNs"], "0", "{h}");

    // A rules file that does not load: the node says where, and keeps its rules.
    let bad = serde_json::json!({
        "fileName": "deployed.yaml",
        "yaml": "- rule: Deployed by central\n  desc: d\n  condition: rampart_spawned_process and (\n  output: o\n  priority: ERROR\n",
        "nodes": ["kernel-node"],
    });
    let r = c
        .request(
            "POST",
            "/v1/rules:deploy",
            Some(bad.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("deployed.yaml:3:"), "{}", r.text());
    // One that uses the node's own macro: taken, reloaded, listed.
    let good = serde_json::json!({
        "fileName": "deployed.yaml",
        "yaml": "- rule: Deployed by central\n  desc: d\n  condition: rampart_spawned_process and proc.name = deployed-probe\n  output: probe %proc.name\n  priority: ERROR\n  tags: [mitre_execution, T1059]\n",
        "nodes": ["kernel-node"],
    });
    let r = c
        .request(
            "POST",
            "/v1/rules:deploy",
            Some(good.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["nodes"][0], "kernel-node", "{}", r.text());
    let mut listed = false;
    for _ in 0..100 {
        let rules = get("/v1/rules?node=kernel-node".into()).await;
        listed = rules["rules"].as_array().is_some_and(|l| {
            l.iter().any(|r| {
                r["name"] == "Deployed by central"
                    && r["sourceFile"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("deployed.yaml"))
            })
        });
        if listed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        listed,
        "the deployed rule is listed after the node's reload"
    );
    let audit = get("/v1/audit?action=rules.deploy".into()).await;
    assert!(
        audit["records"].as_array().is_some_and(|a| a.len() >= 2),
        "both deploys audited: {audit}"
    );
}
