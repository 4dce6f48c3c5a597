//! `rampart central` with `admission.listen` set: the webhook answers over TLS with
//! central's server certificate (its CA is the caBundle), and each decision is in the
//! store as an audit record, a denial also as an alert. Needs nats-server (central
//! runs on NATS): skips with the reason elsewhere, fails in CI.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_central::config::CentralFile;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// POSTs `body` over TLS (HTTP/1.1), trusting `ca`; returns the response's body.
async fn post(addr: std::net::SocketAddr, ca: &std::path::Path, path: &str, body: &str) -> String {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS with central's certificate");
    let req = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_serves_the_webhook_and_audits_every_decision() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = rampart_testbed::NatsServer::start(&dir.path().join("nats"));
    let pki = rampart_central::pki::init(&dir.path().join("pki"), &["localhost".into()]).unwrap();
    let yaml = format!(
        "nats: {{url: \"{}\", stream_max_mb: 64}}\nstore: {{sqlite: {}}}\npki_dir: {}\nenroll: {{listen: null}}\nmetrics: {{listen: null}}\napi: {{listen: null}}\n\
         admission:\n  listen: 127.0.0.1:0\n  policy:\n    allowed_registries: [registry.example.com]\n",
        nats.url(),
        dir.path().join("central.sqlite").display(),
        dir.path().join("pki").display(),
    );
    let file = CentralFile::parse(&yaml, std::path::Path::new("central.yaml")).unwrap();
    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rampart_central::service::run_service(
        file,
        move |h| {
            let _ = handle_tx.send(h);
        },
        async {
            let _ = stopped.await;
        },
    ));
    let handle = handle_rx.await.expect("central starts");
    let addr = handle.admission_addr.expect("the webhook listens");
    let review = |uid: &str, image: &str| {
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:shop:deployer"},
                "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": uid},
                    "spec": {"containers": [{"name": "app", "image": image}]}}
            }
        })
        .to_string()
    };
    let denied: serde_json::Value = serde_json::from_str(
        &post(
            addr,
            &pki.files.ca_cert,
            "/validate",
            &review("web-1", "docker.io/library/nginx:1.25"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(denied["response"]["allowed"], false, "{denied}");
    let allowed: serde_json::Value = serde_json::from_str(
        &post(
            addr,
            &pki.files.ca_cert,
            "/validate",
            &review("web-2", "registry.example.com/web:1"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(allowed["response"]["allowed"], true, "{allowed}");
    // Unscanned, no limits, maybe root: warnings by default.
    assert!(
        allowed["response"]["warnings"]
            .as_array()
            .is_some_and(|w| w.len() >= 3),
        "{allowed}"
    );

    let store = handle.store.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (audit, alerts) = loop {
        let s = store.clone();
        let (audit, alerts) = tokio::task::spawn_blocking(move || {
            (
                s.query_audit(&rampart_store::AuditQuery {
                    limit: 100,
                    ..Default::default()
                })
                .unwrap(),
                s.query_alerts(&rampart_store::AlertQuery::default())
                    .unwrap()
                    .alerts,
            )
        })
        .await
        .unwrap();
        if (audit.len() >= 2 && alerts.len() >= 2) || Instant::now() > deadline {
            break (audit, alerts);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|a| (a.action.as_str(), a.target.as_str(), a.actor.as_str()))
        .collect();
    assert!(
        actions.contains(&(
            "admission.deny",
            "Pod/shop/web-1",
            "system:serviceaccount:shop:deployer"
        )),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(
            "admission.warn",
            "Pod/shop/web-2",
            "system:serviceaccount:shop:deployer"
        )),
        "{actions:?}"
    );
    let rules: Vec<&str> = alerts.iter().map(|a| a.alert.rule.as_str()).collect();
    assert!(
        rules.contains(&"Admission denied") && rules.contains(&"Admission policy warning"),
        "{rules:?}"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
