//! The webhook over real TLS, answering AdmissionReview documents shaped like the
//! API server's (the request example of the Kubernetes documentation, "Dynamic
//! Admission Control", with a Pod as the object): each policy clause has a pod it
//! allows and one it denies; warnings, the mutating patch, the audit record and the
//! alert of each decision are checked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use rampart_admission::policy::{Action, Mode};
use rampart_admission::review::AdmissionRequest;
use rampart_admission::scans::{CriticalVuln, ImageScan};
use rampart_admission::server::{self, Webhook};
use rampart_admission::{AdmissionPolicy, Decision};
use serde_json::{json, Value};

const HOUR: u64 = 3_600_000_000_000;

/// The documentation's AdmissionReview request, for a Pod.
fn review(uid: &str, pod: Value) -> Value {
    json!({
      "apiVersion": "admission.k8s.io/v1",
      "kind": "AdmissionReview",
      "request": {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": pod["metadata"]["name"],
        "namespace": "my-namespace",
        "operation": "CREATE",
        "userInfo": {
          "username": "admin",
          "uid": "014fbff9a07c",
          "groups": ["system:authenticated", "my-admin-group"],
          "extra": {"some-key": ["some-value1", "some-value2"]}
        },
        "object": pod,
        "oldObject": null,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        "dryRun": false
      }
    })
}

/// A pod that passes every clause; `change` makes it fail one.
fn pod(name: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut p = json!({
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {"name": name, "namespace": "my-namespace"},
      "spec": {
        "securityContext": {"runAsNonRoot": true},
        "containers": [{
          "name": "app",
          "image": "registry.example.com/shop/web:1.4",
          "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}
        }]
      }
    });
    change(&mut p);
    p
}

struct Bed {
    url: String,
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<bytes::Bytes>,
    >,
    decisions: Arc<Mutex<Vec<(Decision, String)>>>,
    running: Option<server::RunningWebhook>,
    _dir: tempfile::TempDir,
}

fn policy() -> AdmissionPolicy {
    let mut p = AdmissionPolicy {
        allowed_registries: vec!["registry.example.com".into()],
        allowed_host_paths: vec!["/var/log".into()],
        default_limits: [("cpu", "250m"), ("memory", "64Mi")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    // Every clause denies here, so each has a denied case.
    p.clauses.run_as_root = Action::Deny;
    p.clauses.unscanned_images = Action::Deny;
    p.clauses.missing_limits = Action::Deny;
    p
}

fn scans(now: u64) -> HashMap<String, ImageScan> {
    let vuln = |id: &str, in_use, age_hours: u64| CriticalVuln {
        id: id.into(),
        package: "openssl".into(),
        in_use,
        first_seen_ns: now - age_hours * HOUR,
    };
    HashMap::from([
        (
            "registry.example.com/shop/web:1.4".to_string(),
            ImageScan {
                scanned_at_ns: now,
                critical: vec![],
            },
        ),
        // Critical, not in use, known for a day: within the 7-day grace period.
        (
            "registry.example.com/shop/fresh:1".to_string(),
            ImageScan {
                scanned_at_ns: now,
                critical: vec![vuln("CVE-2026-0001", Some(false), 24)],
            },
        ),
        // Critical, known for ten days.
        (
            "registry.example.com/shop/old:1".to_string(),
            ImageScan {
                scanned_at_ns: now,
                critical: vec![vuln("CVE-2026-0002", Some(false), 240)],
            },
        ),
        // Critical and in use, known for an hour: in-use ones get no grace.
        (
            "registry.example.com/shop/loaded:1".to_string(),
            ImageScan {
                scanned_at_ns: now,
                critical: vec![vuln("CVE-2026-0003", Some(true), 1)],
            },
        ),
    ])
}

async fn start(policy: AdmissionPolicy) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["rampart-admission.rampart.svc".into()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let tls = server::tls_config(&cert_path, &key_path, None).unwrap();
    let decisions: Arc<Mutex<Vec<(Decision, String)>>> = Default::default();
    let seen = decisions.clone();
    let webhook = Arc::new(Webhook {
        policy,
        scans: Arc::new(scans(rampart_event::wall_ns())),
        on_decision: Arc::new(move |d: &Decision, r: &AdmissionRequest| {
            seen.lock()
                .unwrap()
                .push((d.clone(), r.user_info.username.clone()));
        }),
    });
    let running = server::serve("127.0.0.1:0", tls, false, false, webhook)
        .await
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
            "rampart-admission.rampart.svc".try_into().unwrap(),
        ))
        .enable_http1()
        .enable_http2()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    Bed {
        url: format!("https://{}", running.local_addr),
        client,
        decisions,
        running: Some(running),
        _dir: dir,
    }
}

impl Bed {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let req = hyper::Request::post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(
                serde_json::to_vec(body).unwrap(),
            )))
            .unwrap();
        let resp = self.client.request(req).await.expect("request over TLS");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Sends the pod for validation; returns the response object.
    async fn validate(&self, uid: &str, pod: Value) -> Value {
        let (status, answer) = self.post("/validate", &review(uid, pod)).await;
        assert_eq!(status, 200);
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(answer["kind"], "AdmissionReview");
        let r = answer["response"].clone();
        assert_eq!(r["uid"], uid, "the answer carries the request's uid");
        r
    }
}

#[tokio::test]
async fn each_clause_allows_one_pod_and_denies_another_over_tls() {
    let bed = start(policy()).await;
    type Change = Box<dyn FnOnce(&mut Value)>;
    let image = |img: &'static str| -> Change {
        Box::new(move |p: &mut Value| p["spec"]["containers"][0]["image"] = json!(img))
    };
    // (clause, a change it allows, a change it denies)
    let cases: Vec<(&str, Change, Change)> = vec![
        (
            "privileged",
            Box::new(|p| {
                p["spec"]["containers"][0]["securityContext"] = json!({"privileged": false})
            }),
            Box::new(|p| {
                p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true})
            }),
        ),
        (
            "host_namespaces",
            Box::new(|p| p["spec"]["hostNetwork"] = json!(false)),
            Box::new(|p| p["spec"]["hostPID"] = json!(true)),
        ),
        (
            "host_paths",
            Box::new(|p| {
                p["spec"]["volumes"] =
                    json!([{"name": "logs", "hostPath": {"path": "/var/log/app"}}])
            }),
            Box::new(|p| {
                p["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}])
            }),
        ),
        (
            "added_capabilities",
            Box::new(|p| {
                p["spec"]["containers"][0]["securityContext"] =
                    json!({"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}})
            }),
            Box::new(|p| {
                p["spec"]["containers"][0]["securityContext"] =
                    json!({"capabilities": {"add": ["SYS_ADMIN"]}})
            }),
        ),
        (
            "run_as_root",
            Box::new(|p| {
                p["spec"]["securityContext"] = json!({});
                p["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 1000});
            }),
            Box::new(|p| p["spec"]["containers"][0]["securityContext"] = json!({"runAsUser": 0})),
        ),
        (
            "unscanned_images",
            image("registry.example.com/shop/web:1.4"),
            image("registry.example.com/shop/never-scanned:2"),
        ),
        (
            "critical_vulnerabilities",
            image("registry.example.com/shop/fresh:1"),
            image("registry.example.com/shop/old:1"),
        ),
        (
            "critical_vulnerabilities",
            image("registry.example.com/shop/web:1.4"),
            image("registry.example.com/shop/loaded:1"),
        ),
        (
            "registries",
            image("registry.example.com/shop/web:1.4"),
            image("docker.io/library/nginx:1.25"),
        ),
        (
            "missing_limits",
            Box::new(|p| {
                p["spec"]["containers"][0]["resources"] =
                    json!({"limits": {"cpu": "1", "memory": "1Gi"}})
            }),
            Box::new(|p| {
                p["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "1"}})
            }),
        ),
    ];
    for (i, (clause, allow, deny)) in cases.into_iter().enumerate() {
        let ok = bed
            .validate(&format!("allow-{i}"), pod(&format!("ok-{i}"), allow))
            .await;
        assert_eq!(ok["allowed"], true, "{clause}: {ok}");
        let no = bed
            .validate(&format!("deny-{i}"), pod(&format!("bad-{i}"), deny))
            .await;
        assert_eq!(no["allowed"], false, "{clause}: {no}");
        assert_eq!(no["status"]["code"], 403);
        let message = no["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("({clause})")),
            "{clause}: {message}"
        );
        assert!(
            message.contains(&format!("my-namespace/bad-{i}")),
            "{message}"
        );
    }
    // Within its grace period a critical vulnerability is a warning, with time left.
    let fresh = bed
        .validate(
            "fresh",
            pod("fresh", image("registry.example.com/shop/fresh:1")),
        )
        .await;
    let warning = fresh["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("CVE-2026-0001") && warning.contains("h of its grace period left"),
        "{warning}"
    );
    // Every decision reached the audit hook, by the requesting user.
    let seen = bed.decisions.lock().unwrap().clone();
    assert_eq!(seen.len(), 21);
    assert!(seen.iter().all(|(_, user)| user == "admin"));
    let denied: Vec<_> = seen.iter().filter(|(d, _)| !d.allowed).collect();
    assert_eq!(denied.len(), 10);
    let (d, user) = denied[0];
    let audit = rampart_admission::audit_record(d, user, "central", 1);
    assert_eq!(audit.action, "admission.deny");
    assert_eq!(audit.target, "Pod/my-namespace/bad-0");
    let by = rampart_admission::Requester {
        user,
        operation: "CREATE",
    };
    let alert = rampart_admission::alert(d, by, "central", 1).expect("a denial is an alert");
    assert_eq!(alert.rule, "Admission denied");
    assert_eq!(alert.output_fields["k8s.ns.name"], "my-namespace");
    assert_eq!(alert.output_fields["ka.user.name"], "admin");
    // The alert's event is the admission itself: what was asked, by whom, and the
    // clauses that denied it.
    let rampart_event::Payload::Admission(a) = &alert.event.payload else {
        panic!("admission event: {:?}", alert.event.payload)
    };
    assert_eq!(
        (a.kind.as_str(), a.namespace.as_str(), a.name.as_str()),
        ("Pod", "my-namespace", "bad-0")
    );
    assert_eq!((a.user.as_str(), a.operation.as_str()), ("admin", "CREATE"));
    assert_eq!(a.decision, "deny");
    assert_eq!(
        a.denied_by,
        d.denials
            .iter()
            .map(|v| v.clause.clone())
            .collect::<Vec<_>>()
    );
    assert!(!a.denied_by.is_empty());
    assert!(
        rampart_admission::alert(&seen[0].0, by, "central", 1).is_none(),
        "a clean admission is only audited"
    );
    drop(seen);
    let mut bed = bed;
    bed.running.take().unwrap().stop().await;
}

#[tokio::test]
async fn warn_clauses_and_warn_mode_admit_with_warnings() {
    let mut p = policy();
    p.clauses.run_as_root = Action::Warn;
    let bed = start(p.clone()).await;
    let r = bed
        .validate(
            "w1",
            pod("rooty", |p| p["spec"]["securityContext"] = json!({})),
        )
        .await;
    assert_eq!(r["allowed"], true);
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("may run as root"),
        "{r}"
    );
    p.mode = Mode::Warn;
    let bed = start(p).await;
    let r = bed
        .validate(
            "w2",
            pod("priv", |p| {
                p["spec"]["containers"][0]["securityContext"] = json!({"privileged": true})
            }),
        )
        .await;
    assert_eq!(r["allowed"], true, "warn mode admits: {r}");
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("runs privileged"),
        "{r}"
    );
}

#[tokio::test]
async fn the_mutating_endpoint_patches_missing_limits() {
    let mut p = policy();
    p.clauses.missing_limits = Action::Warn;
    let bed = start(p).await;
    let body = review(
        "m1",
        pod("nolimits", |p| {
            p["spec"]["containers"][0]["resources"] = json!({})
        }),
    );
    let (status, answer) = bed.post("/mutate", &body).await;
    assert_eq!(status, 200);
    let r = &answer["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        json!([{"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"cpu": "250m", "memory": "64Mi"}}])
    );
    // The validating endpoint never patches.
    let (_, answer) = bed.post("/validate", &body).await;
    assert!(answer["response"].get("patch").is_none());
}

#[tokio::test]
async fn garbage_deletes_and_exempt_namespaces() {
    let bed = start(policy()).await;
    let (status, _) = bed.post("/validate", &json!({"hello": 1})).await;
    assert_eq!(status, 400, "not an AdmissionReview");
    let mut del = review("d1", pod("x", |p| p["spec"]["hostPID"] = json!(true)));
    del["request"]["operation"] = json!("DELETE");
    let (_, answer) = bed.post("/validate", &del).await;
    assert_eq!(answer["response"]["allowed"], true);
    let mut sys = review("k1", pod("x", |p| p["spec"]["hostPID"] = json!(true)));
    sys["request"]["namespace"] = json!("kube-system");
    let (_, answer) = bed.post("/validate", &sys).await;
    assert_eq!(answer["response"]["allowed"], true, "kube-system is exempt");
}

#[tokio::test]
async fn beyond_loopback_without_client_auth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
    let tls =
        server::tls_config(&dir.path().join("c.pem"), &dir.path().join("k.pem"), None).unwrap();
    let webhook = Arc::new(Webhook {
        policy: AdmissionPolicy::default(),
        scans: Arc::new(rampart_admission::NoScans),
        on_decision: Arc::new(|_: &Decision, _: &AdmissionRequest| {}),
    });
    let err = server::serve("0.0.0.0:0", tls, false, false, webhook)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("client_ca"), "{err}");
}
