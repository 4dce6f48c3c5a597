//! What nodes report about themselves, served by a real API server (TLS, SQLite): scan
//! results, SBOMs and vulnerabilities over HTTP/JSON and gRPC, rules and response
//! policies per node, a remote node's sensor health detail; deploys are admin only
//! (401, 403 for viewer and analyst, audited) and name the nodes they could not reach.

mod support;

use rampart_event::fleet::*;
use rampart_event::Severity;
use rampart_proto::v1 as pb;
use rampart_proto::v1::scan_service_client::ScanServiceClient;
use support::{Server, SEC, T0};

fn scan(ts_ns: u64, container: &str, image: &str, in_use: bool) -> NodeReport {
    NodeReport::Scan(ScanReport {
        ts_ns,
        target: format!("container:{container}"),
        image: image.into(),
        image_id: format!("sha256:{container}"),
        container_name: container.into(),
        packages: 42,
        secrets: 0,
        malware: 0,
        vulnerabilities: vec![
            VulnFinding {
                id: "CVE-2024-0001".into(),
                package: "openssl".into(),
                version: "3.0.11-1".into(),
                ecosystem: "Debian:12".into(),
                fixed_version: Some("3.0.13-1".into()),
                severity: Severity::High,
                summary: "a bad one".into(),
                in_use: Some(in_use),
                ..Default::default()
            },
            VulnFinding {
                id: "CVE-2024-0002".into(),
                package: "zlib".into(),
                version: "1.2.13".into(),
                severity: Severity::Low,
                in_use: None,
                ..Default::default()
            },
        ],
        sbom_cyclonedx: Some(format!(
            r#"{{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{{"component":{{"name":"{image}"}}}}}}"#
        )),
        sbom_spdx: Some(r#"{"spdxVersion":"SPDX-2.3"}"#.into()),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_results_sboms_and_vulnerabilities_from_the_nodes_reports() {
    let s = Server::start().await;
    s.store
        .put_reports(
            "node-b",
            &[
                scan(T0, "c1", "web:1", false),
                scan(T0 + SEC, "c2", "web:1", true),
            ],
        )
        .unwrap();
    let c = s.client(Some(&s.viewer));
    let r = c.request("GET", "/v1/scans", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{j}");
    assert_eq!(results[0]["id"], "node-b/container:c2");
    assert_eq!(results[0]["node"], "node-b");
    assert_eq!(results[0]["image"], "web:1");
    assert_eq!(results[0]["packages"], "42");
    assert_eq!(results[0]["vulnerabilities"], "2");
    let r = c
        .request("GET", "/v1/scans?target=c1", None)
        .await
        .unwrap()
        .json();
    assert_eq!(r["results"].as_array().unwrap().len(), 1, "{r}");

    // The SBOM by id (the id holds a '/', escaped in the path).
    let r = c
        .request("GET", "/v1/scans/node-b%2Fcontainer:c2/sbom", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["format"], "cyclonedx");
    let doc: serde_json::Value = serde_json::from_str(j["document"].as_str().unwrap()).unwrap();
    assert_eq!(doc["bomFormat"], "CycloneDX");
    let r = c
        .request(
            "GET",
            "/v1/scans/node-b%2Fcontainer:c2/sbom?format=spdx",
            None,
        )
        .await
        .unwrap();
    assert!(r.text().contains("SPDX-2.3"), "{}", r.text());
    let r = c
        .request("GET", "/v1/scans/node-b%2Fcontainer:zz/sbom", None)
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let r = c
        .request("GET", "/v1/scans/nonsense/sbom", None)
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = c
        .request(
            "GET",
            "/v1/scans/node-b%2Fcontainer:c2/sbom?format=xml",
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    // Vulnerabilities across both containers: one per id and package version, in use
    // when any container loaded the package.
    let j = c
        .request("GET", "/v1/vulnerabilities", None)
        .await
        .unwrap()
        .json();
    let v = j["vulnerabilities"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{j}");
    assert_eq!(v[0]["id"], "CVE-2024-0001");
    assert_eq!(v[0]["inUse"], true);
    assert_eq!(v[0]["images"][0], "web:1");
    assert_eq!(v[0]["fixedVersion"], "3.0.13-1");
    assert_eq!(v[0]["severity"], "SEVERITY_HIGH");
    let j = c
        .request(
            "GET",
            "/v1/vulnerabilities?severity=SEVERITY_HIGH&fixableOnly=true",
            None,
        )
        .await
        .unwrap()
        .json();
    assert_eq!(j["vulnerabilities"].as_array().unwrap().len(), 1, "{j}");

    // gRPC: the same core.
    let mut g = ScanServiceClient::with_origin(c.grpc_channel(), c.origin());
    let list = g
        .list_scan_results(c.grpc_request(pb::ListScanResultsRequest {
            node: "node-b".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.results.len(), 2);
    let sbom = g
        .get_sbom(c.grpc_request(pb::GetSbomRequest {
            id: "node-b/container:c1".into(),
            format: String::new(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(sbom.document.contains("web:1"));
    let anon = s.client(None);
    let r = anon.request("GET", "/v1/scans", None).await.unwrap();
    assert_eq!(r.status, 401);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_policies_and_health_per_node_and_deploys_are_admin_only() {
    let s = Server::start().await;
    s.ingest("node-b", &[]);
    s.store
        .put_reports(
            "node-b",
            &[
                NodeReport::Rules(RulesReport {
                    ts_ns: T0,
                    rules: vec![RuleInfo {
                        name: "Remote rule".into(),
                        priority: "CRITICAL".into(),
                        mitre: vec!["T1059".into()],
                        tags: vec!["mitre_execution".into()],
                        enabled: true,
                        source_file: "/etc/rampart/rules/x.yaml".into(),
                    }],
                    load_errors: vec![],
                    policy: Some(PolicyInfo {
                        name: "policy.yaml".into(),
                        yaml: "responses: []\n".into(),
                    }),
                }),
                NodeReport::Health(HealthReport {
                    ts_ns: T0,
                    version: "9.9.9".into(),
                    kernel: "6.1.0-remote".into(),
                    hooks: vec![HookInfo {
                        name: "syscalls".into(),
                        kind: "fexit".into(),
                        attached: true,
                    }],
                    drops: vec![DropInfo {
                        source: "spool".into(),
                        count: 7,
                    }],
                    bus_queued: 3,
                    bus_lag_ns: 0,
                    recorder_lag_ns: 0,
                }),
            ],
        )
        .unwrap();
    let viewer = s.client(Some(&s.viewer));
    let j = viewer
        .request("GET", "/v1/rules?node=node-b", None)
        .await
        .unwrap()
        .json();
    assert_eq!(j["rules"][0]["name"], "Remote rule", "{j}");
    assert_eq!(j["rules"][0]["node"], "node-b");
    assert_eq!(j["rules"][0]["sourceFile"], "/etc/rampart/rules/x.yaml");
    assert_eq!(j["rules"][0]["tags"][0], "mitre_execution");
    // The local node has not reported yet: its rules files answer.
    let j = viewer
        .request("GET", "/v1/rules?node=node-a", None)
        .await
        .unwrap()
        .json();
    assert!(j["rules"].as_array().is_some_and(|r| r.len() > 10), "{j}");
    let j = viewer
        .request("GET", "/v1/response-policies", None)
        .await
        .unwrap()
        .json();
    assert_eq!(j["policies"][0]["node"], "node-b", "{j}");
    assert_eq!(j["policies"][0]["yaml"], "responses: []\n");
    let j = viewer
        .request("GET", "/v1/health/sensors?node=node-b", None)
        .await
        .unwrap()
        .json();
    let h = &j["nodes"][0];
    assert_eq!(h["detailReported"], true, "{j}");
    assert_eq!(h["kernel"], "6.1.0-remote");
    assert_eq!(h["hooks"][0]["kind"], "fexit");
    assert_eq!(h["drops"][0]["count"], "7");
    assert_eq!(h["busQueued"], "3");

    // Deploys: 401 without a token, 403 for a viewer and an analyst (audited), and an
    // admin's names the nodes this server cannot reach (it runs no fleet).
    let body = serde_json::json!({"fileName": "x.yaml", "yaml": "- list: l\n  items: [a]\n"})
        .to_string()
        .into_bytes();
    for (path, who, want) in [
        ("/v1/rules:deploy", None, 401),
        ("/v1/rules:deploy", Some(&s.viewer), 403),
        ("/v1/rules:deploy", Some(&s.analyst), 403),
        ("/v1/response-policies:deploy", Some(&s.viewer), 403),
        ("/v1/response-policies:deploy", Some(&s.analyst), 403),
    ] {
        let r = s
            .client(who.map(String::as_str))
            .request("POST", path, Some(body.clone()))
            .await
            .unwrap();
        assert_eq!(r.status, want, "{path} {who:?}: {}", r.text());
    }
    let admin = s.client(Some(&s.admin));
    let r = admin
        .request("POST", "/v1/rules:deploy", Some(body.clone()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["failed"][0], "node-b", "{j}");
    assert!(j["nodes"].as_array().is_none_or(|n| n.is_empty()), "{j}");
    let r = admin
        .request(
            "POST",
            "/v1/rules:deploy",
            Some(
                serde_json::json!({"yaml": "x", "nodes": ["nope"]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    let audit = viewer
        .request("GET", "/v1/audit", None)
        .await
        .unwrap()
        .json();
    let seen: Vec<(String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("vic", "rules.deploy.denied"),
        ("ana", "rules.deploy.denied"),
        ("vic", "policy.deploy.denied"),
        ("root", "rules.deploy"),
    ] {
        assert!(
            seen.iter().any(|(a, b)| a == want.0 && b == want.1),
            "{want:?} not audited: {seen:?}"
        );
    }
    s.server.stop().await;
}
