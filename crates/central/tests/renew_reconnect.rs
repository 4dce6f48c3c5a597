//! A node whose certificate was renewed keeps publishing after the NATS server
//! restarts: the client reads its certificate files again on every reconnect, so it
//! presents the renewed certificate, and the old one may have expired meanwhile. A
//! nats-server of the test's own (mutual TLS, `rampart central init`'s block) is
//! killed and started again on the same port; the shared one is never touched.

use std::time::{Duration, Instant};

use rampart_bus::{Backplane, OutMessage};
use rampart_bus_nats::{NatsBackplane, NatsConfig, NatsTls};
use rampart_central::enroll::{self, EnrollServer};
use rampart_central::pki;

async fn publish_within(node: &NatsBackplane, id: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let m = OutMessage {
            id: id.into(),
            node: "node-r".into(),
            payload: bytes::Bytes::copy_from_slice(id.as_bytes()),
        };
        match node.publish(m).await {
            Ok(()) => return,
            Err(e) => {
                assert!(
                    started.elapsed() < within,
                    "{id} not published within {within:?}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_node_publishes_after_nats_restarts() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = pki::init(&dir.path().join("pki"), &[]).unwrap().files;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop_enroll, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        EnrollServer::new(files.clone())
            .unwrap()
            .with_node_validity(Duration::from_secs(10))
            .serve(listener, async move {
                let _ = stopped.await;
            }),
    );
    let token = enroll::issue_token(&files, "node-r", Duration::from_secs(600)).unwrap();
    let node_dir = dir.path().join("node-r");
    let creds = enroll::enroll(&addr, &token.to_string(), &node_dir)
        .await
        .unwrap();
    let first_cert = std::fs::read(&creds.cert).unwrap();

    let mut nats = rampart_testbed::NatsServer::start_with_config(
        &dir.path().join("nats"),
        &pki::nats_tls_block(&files),
    );
    let config = |ca: &std::path::Path, cert: &std::path::Path, key: &std::path::Path| {
        let mut c = NatsConfig::new(&nats.url());
        c.tls = Some(NatsTls {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        });
        c.request_timeout = Duration::from_secs(2);
        // JetStream reserves the stream's bound on disk: a test needs little.
        c.max_bytes = 64 << 20;
        c
    };
    let node = NatsBackplane::connect(config(&creds.ca, &creds.cert, &creds.key))
        .await
        .unwrap();
    let central = NatsBackplane::connect(config(
        &files.ca_cert,
        &files.central_cert,
        &files.central_key,
    ))
    .await
    .unwrap();
    publish_within(&node, "before", Duration::from_secs(10)).await;

    // Renewed while the first certificate is still valid, late in its life, so the
    // new one outlives it by most of a lifetime.
    let left = enroll::cert_remaining(&node_dir).unwrap();
    tokio::time::sleep(left.saturating_sub(Duration::from_secs(3))).await;
    enroll::renew(&addr, &node_dir).await.unwrap();
    assert_ne!(
        std::fs::read(&creds.cert).unwrap(),
        first_cert,
        "a new certificate in place"
    );
    // The first certificate runs out; then the server restarts, and every client has
    // to connect again.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    nats.kill();
    nats.restart();
    let renewed_left = enroll::cert_remaining(&node_dir).unwrap();
    assert!(
        renewed_left > Duration::from_secs(4),
        "the renewed certificate has {renewed_left:?} left"
    );
    publish_within(&node, "after", renewed_left - Duration::from_secs(1)).await;

    // Central reads both, in order.
    let mut consumer = central.consumer("central").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("central receives the node's messages")
            .unwrap()
            .unwrap();
        got.push(String::from_utf8_lossy(&d.payload).into_owned());
        d.ack().await.unwrap();
    }
    assert_eq!(got, ["before", "after"]);
    let _ = stop_enroll.send(());
}
