//! `rampart up` serves the API: a real attack in a real container (`cat /etc/shadow`
//! in the busybox test image) seen by the real sensor, detected, published on the
//! in-process bus, stored by central in SQLite, and delivered through the API over
//! https: on a gRPC stream and through the HTTP/JSON alert list, each within 1 s of
//! the event. Also: the admin token file is 0600, a request without a token is 401,
//! a viewer asking for a response is 403; a compose container started later is on the
//! live event stream (SSE) and listed as a workload. Needs root, the kernel and Docker: skips
//! with the reason elsewhere, fails in CI.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rampart_api::client::ApiClient;
use rampart_proto::v1 as pb;
use rampart_proto::v1::alert_service_client::AlertServiceClient;
use support::Up;

const RULE: &str = "Shadow file read in container or by untrusted program";

#[test]
fn an_attack_in_a_container_reaches_the_grpc_stream_and_the_http_api_within_a_second() {
    if !rampart_testbed::ready("rampart-test/busybox:latest") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("up.yaml");
    std::fs::write(
        &config,
        format!(
            // A control socket of its own: the API's response actions go through it,
            // and another test's node may hold the default one.
            "recorder:\n  dir: {}\nalerts:\n  aggregate_window_secs: 0\nresponse:\n  control_socket: {}\n",
            dir.path().join("recording").display(),
            dir.path().join("control.sock").display()
        ),
    )
    .unwrap();
    // A viewer token in the token file before the start (the file keeps digests;
    // rampart up adds its admin token beside it).
    let state_dir = dir.path().join(format!("up-state-{}", std::process::id()));
    let viewer = rampart_api::TokenStore::load(&state_dir.join("api-tokens"))
        .unwrap()
        .issue("vic", rampart_api::Role::Viewer)
        .unwrap();
    let up = Up::start(&config);
    assert_eq!(up.state_dir, state_dir);
    let addr = up
        .api_addr
        .clone()
        .expect("rampart up names its API address");
    let admin_file = up.state_dir.join("admin-token");
    let mode = std::fs::metadata(&admin_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", admin_file.display());
    let admin = std::fs::read_to_string(&admin_file)
        .unwrap()
        .trim()
        .to_string();
    let cert = up.state_dir.join("api-cert.pem");

    let name = format!("api-shadow-{}", std::process::id());
    let container = rampart_testbed::TestContainer::start(&name, &[], &[]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = ApiClient::new(&addr, &cert, Some(admin.clone())).unwrap();
        let anon = c.with_token(None);
        assert_eq!(anon.request("GET", "/v1/alerts", None).await.unwrap().status, 401);

        let mut g = AlertServiceClient::with_origin(c.grpc_channel(), c.origin());
        let mut stream = g
            .stream_alerts(c.grpc_request(pb::StreamAlertsRequest {
                rule: RULE.into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();

        let attack = tokio::task::spawn_blocking({
            let name = name.clone();
            move || {
                std::process::Command::new("docker")
                    .args(["exec", &name, "cat", "/etc/shadow"])
                    .output()
                    .unwrap()
            }
        });
        let a = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let a = stream.next().await.unwrap().unwrap();
                if a.container.as_ref().is_some_and(|k| k.name == name) {
                    return a;
                }
            }
        })
        .await
        .expect("the alert on the gRPC stream");
        let grpc_at = rampart_event::wall_ns();
        attack.await.unwrap();
        let grpc_delay = Duration::from_nanos(grpc_at.saturating_sub(a.ts_ns));
        eprintln!("event -> gRPC stream: {grpc_delay:?}");
        assert!(grpc_delay < Duration::from_secs(1), "{grpc_delay:?}");
        assert_eq!(a.severity, pb::Severity::High as i32, "{}", a.rule);

        // The HTTP list has it as soon as it was stored (before the stream saw it).
        let t = Instant::now();
        let path = format!("/v1/alerts?rule={}&containerId={}", RULE.replace(' ', "%20"), a.container.as_ref().unwrap().id);
        let found = loop {
            let r = c.request("GET", &path, None).await.unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let j = r.json();
            if let Some(x) = j["alerts"].as_array().and_then(|v| v.iter().find(|x| x["id"] == a.id.as_str())) {
                break x.clone();
            }
            assert!(t.elapsed() < Duration::from_secs(5), "not listed: {j}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let http_at = rampart_event::wall_ns();
        let http_delay = Duration::from_nanos(http_at.saturating_sub(a.ts_ns));
        eprintln!("event -> HTTP list: {http_delay:?}");
        assert!(http_delay < Duration::from_secs(1), "{http_delay:?}");
        assert_eq!(found["event"]["data"]["path"], "/etc/shadow", "{found}");
        assert_eq!(found["container"]["name"], name.as_str());

        // A viewer may read but not respond.
        let v = c.with_token(Some(viewer));
        assert_eq!(v.request("GET", &path, None).await.unwrap().status, 200);
        let ask = serde_json::json!({"action": "RESPONSE_ACTION_KILL_PROCESS", "alertId": a.id, "pid": 1});
        let r = v
            .request("POST", "/v1/responses", Some(ask.to_string().into_bytes()))
            .await
            .unwrap();
        assert_eq!(r.status, 403, "{}", r.text());

        // An admin's freeze goes to the node in this process (its control socket) and
        // freezes the container's cgroup; both the API's and the node's audit say so.
        let id = a.container.as_ref().unwrap().id.clone();
        let ask = serde_json::json!({"action": "RESPONSE_ACTION_FREEZE_CONTAINER", "containerId": id, "alertId": a.id, "reason": "api test"});
        let r = c.request("POST", "/v1/responses", Some(ask.to_string().into_bytes())).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        assert_eq!(answer["done"], true, "{answer}");
        assert!(answer["auditId"].as_str().is_some_and(|s| !s.is_empty()), "{answer}");
        let freezer = [
            format!("/sys/fs/cgroup/freezer/docker/{id}/freezer.state"),
            format!("/sys/fs/cgroup/unified/docker/{id}/cgroup.freeze"),
            format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cgroup.freeze"),
        ];
        let frozen = freezer.iter().any(|f| {
            std::fs::read_to_string(f).is_ok_and(|s| s.trim() == "FROZEN" || s.trim() == "1")
        });
        assert!(frozen, "the container's cgroup is not frozen ({freezer:?})");
        let audit = c.request("GET", "/v1/audit?action=response.response_action_freeze_container", None).await.unwrap().json();
        assert!(audit["records"].as_array().is_some_and(|l| !l.is_empty()), "{audit}");
        // Thawed again (a frozen container cannot be removed).
        for f in &freezer {
            let thaw = if f.ends_with("freezer.state") { "THAWED" } else { "0" };
            let _ = std::fs::write(f, thaw);
        }
        // A process must be named to be killed.
        let ask = serde_json::json!({"action": "RESPONSE_ACTION_KILL_PROCESS", "containerId": id});
        let r = c.request("POST", "/v1/responses", Some(ask.to_string().into_bytes())).await.unwrap();
        assert_eq!(r.status, 400, "{}", r.text());

        let nodes = c.request("GET", "/v1/nodes", None).await.unwrap().json();
        assert!(nodes["nodes"].as_array().is_some_and(|n| !n.is_empty()), "{nodes}");
        let doc = c.request("GET", "/openapi.json", None).await.unwrap().json();
        assert_eq!(doc["openapi"], "3.0.3");

        // The local sensor's health: this kernel, its hooks, its drop counters.
        let h = c.request("GET", "/v1/health/sensors", None).await.unwrap();
        assert_eq!(h.status, 200, "{}", h.text());
        let h = h.json();
        let me = &h["nodes"][0];
        assert_eq!(me["detailReported"], true, "{h}");
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(me["kernel"], kernel.trim(), "{h}");
        let hooks = me["hooks"].as_array().cloned().unwrap_or_default();
        assert!(
            hooks.iter().any(|x| x["name"] == "process" && x["attached"] == true)
                && hooks.iter().any(|x| x["name"] == "syscalls" && x["attached"] == true),
            "{h}"
        );
        let drops = me["drops"].as_array().cloned().unwrap_or_default();
        assert!(drops.iter().any(|d| d["source"] == "kernel_ring_full"), "{h}");

        // A rules deploy reaches the node in this process: a bad file is refused at its
        // line, a good one (using the shipped macros) is loaded and listed.
        let node = me["node"].as_str().unwrap().to_string();
        let bad = serde_json::json!({"fileName": "mine.yaml", "yaml": "- rule: Up deployed\n  desc: d\n  condition: rampart_spawned_process and (\n  output: o\n  priority: ERROR\n"});
        let r = c.request("POST", "/v1/rules:deploy", Some(bad.to_string().into_bytes())).await.unwrap();
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("mine.yaml:3:"), "{}", r.text());
        let good = serde_json::json!({"fileName": "mine.yaml", "yaml": "- rule: Up deployed\n  desc: d\n  condition: rampart_spawned_process and proc.name = up-deployed-probe\n  output: o %proc.name\n  priority: ERROR\n"});
        let r = c.request("POST", "/v1/rules:deploy", Some(good.to_string().into_bytes())).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["nodes"][0], node.as_str(), "{}", r.text());
        let t = Instant::now();
        loop {
            let rules = c.request("GET", &format!("/v1/rules?node={node}"), None).await.unwrap().json();
            if rules["rules"].as_array().is_some_and(|l| l.iter().any(|r| r["name"] == "Up deployed")) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "the deployed rule is not listed: {rules}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Live events of a container started after the stream opened, from the real
        // recorder (blocks seal within its 5 s block age).
        let web_name = format!("api-web-{}", std::process::id());
        let sse = c
            .sse(&format!("/v1/events:stream?filter.container={web_name}&filter.kinds=exec"))
            .await
            .unwrap();
        tokio::pin!(sse);
        // A compose service's container: its labels make it a workload.
        let web = rampart_testbed::TestContainer::start(
            &web_name,
            &[
                "--label",
                "com.docker.compose.project=api-e2e",
                "--label",
                "com.docker.compose.service=web",
            ],
            &[],
        );
        web.exec("ls / > /dev/null");
        let line = tokio::time::timeout(Duration::from_secs(15), sse.next())
            .await
            .expect("a live exec event of the new container")
            .unwrap();
        let e: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(e["event"]["container"]["name"], web_name.as_str(), "{e}");
        let t = Instant::now();
        let w = loop {
            let r = c
                .request("GET", "/v1/workloads?namespace=api-e2e", None)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
            let j = r.json();
            if j["workloads"].as_array().is_some_and(|w| !w.is_empty()) {
                break j;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "no workload: {j}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(w["workloads"][0]["kind"], "ComposeService", "{w}");
        assert_eq!(w["workloads"][0]["name"], "web", "{w}");
        assert_eq!(w["workloads"][0]["containerIds"].as_array().map(Vec::len), Some(1), "{w}");
        drop(web);
    });
    drop(container);
    up.stop();
}
