//! Per-node NATS permissions, revocation and renewal, against a real nats-server of the
//! test's own running `rampart central init`'s fleet configuration (mutual TLS with
//! `verify_and_map`, the users generated from the node registry):
//!
//! - node A publishes on its own subject; publishing as node B is refused by the
//!   server, and central's consumer sees only A's message;
//! - A answers central's requests to A, and cannot take B's requests;
//! - central revokes B: after the reload central sends, B's certificate is refused
//!   while A's is not, B cannot renew, and no new token is issued for B;
//! - A renews its certificate over mutual TLS and connects with the new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bus::rpc::RequestPlane;
use rampart_bus::{Backplane, OutMessage};
use rampart_bus_nats::{NatsBackplane, NatsConfig, NatsTls};
use rampart_central::enroll::{self, EnrollError, EnrollServer, NodeCredentials};
use rampart_central::pki::{self, PkiFiles};
use rampart_central::registry;

fn node_config(url: &str, c: &NodeCredentials) -> NatsConfig {
    let mut n = NatsConfig::for_node(url, &c.node);
    n.tls = Some(NatsTls {
        ca: c.ca.clone(),
        cert: c.cert.clone(),
        key: c.key.clone(),
    });
    n.request_timeout = Duration::from_secs(2);
    // JetStream reserves the stream's bound on disk: a test needs little.
    n.max_bytes = 64 << 20;
    n
}

fn msg(id: &str, node: &str) -> OutMessage {
    OutMessage {
        id: id.into(),
        node: node.into(),
        payload: bytes::Bytes::from(format!("from {node}")),
    }
}

async fn probe_until(cfg: &NatsConfig, want_ok: bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = NatsBackplane::probe(cfg).await;
        if r.is_ok() == want_ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("probe still {r:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_only_its_own_subjects_and_revoked_nodes_are_refused() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files: PkiFiles = pki::init(&dir.path().join("pki"), &[]).unwrap().files;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let enroll_addr = listener.local_addr().unwrap().to_string();
    let (stop_enroll, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        EnrollServer::new(files.clone())
            .unwrap()
            .serve(listener, async move {
                let _ = stopped.await;
            }),
    );
    let mut creds = Vec::new();
    for node in ["node-a", "node-b"] {
        let token = enroll::issue_token(&files, node, Duration::from_secs(600)).unwrap();
        creds.push(
            enroll::enroll(&enroll_addr, &token.to_string(), &dir.path().join(node))
                .await
                .unwrap(),
        );
    }
    let (a, b) = (creds[0].clone(), creds[1].clone());

    // The test server's configuration (in its store directory) includes the fleet's.
    // JetStream is in the file as well as on the command line: a reload takes the
    // file's settings, and JetStream's store may not change on a reload.
    registry::write_nats_conf(&files).unwrap();
    let nats_dir = dir.path().join("nats");
    let nats = rampart_testbed::NatsServer::start_with_config(
        &nats_dir,
        &format!(
            "jetstream {{ store_dir: \"{}\" }}\ninclude \"../pki/{}\"\n",
            nats_dir.display(),
            registry::NATS_FLEET_FILE
        ),
    );
    let url = nats.url();

    // Central (its own certificate: every subject) declares the stream.
    let mut central_cfg = NatsConfig::new(&url);
    central_cfg.tls = Some(NatsTls {
        ca: files.ca_cert.clone(),
        cert: files.central_cert.clone(),
        key: files.central_key.clone(),
    });
    central_cfg.request_timeout = Duration::from_secs(2);
    central_cfg.max_bytes = 64 << 20;
    let central = Arc::new(NatsBackplane::connect(central_cfg).await.unwrap());
    let mut consumer = central.consumer("central").await.unwrap();

    let node_a = Arc::new(NatsBackplane::connect(node_config(&url, &a)).await.unwrap());
    node_a.publish(msg("a-1", "node-a")).await.unwrap();
    let forged = node_a.publish(msg("a-as-b", "node-b")).await;
    assert!(forged.is_err(), "node A publishing as node B: {forged:?}");
    let d = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((d.id.as_str(), d.node.as_str()), ("a-1", "node-a"));
    d.ack().await.unwrap();
    let more = tokio::time::timeout(Duration::from_secs(2), consumer.next()).await;
    assert!(more.is_err(), "nothing else is in the stream: {more:?}");

    // Requests: A answers its own; a subscription to B's is refused by the server.
    let mut own = node_a.serve("node-a").await.unwrap();
    let mut stolen = node_a.serve("node-b").await.unwrap();
    // The subscriptions reach the server before central asks.
    node_a.client().flush().await.unwrap();
    let answer = tokio::spawn(async move {
        let r = own.next().await.unwrap();
        let mut replier = r.replier;
        replier
            .send(bytes::Bytes::from_static(b"chunk-0"))
            .await
            .unwrap();
        replier
            .send(bytes::Bytes::from_static(b"chunk-1"))
            .await
            .unwrap();
        r.payload
    });
    // The flush above puts A's subscription on the server, yet under load the server
    // has once answered central's first request with "no responders" (the suite's
    // run at load 13): central then says the node is not connected, which is right
    // at that instant. Ask again for a few seconds; the ACL is what is tested here.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut replies, first) = loop {
        let mut replies = central
            .request(
                "node-a",
                bytes::Bytes::from_static(b"ping"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        match replies.next().await {
            Err(rampart_bus::BusError::Unavailable(e))
                if e.contains("is connected") && Instant::now() < deadline =>
            {
                eprintln!("asking node-a again: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            first => break (replies, first),
        }
    };
    assert_eq!(&first.unwrap().unwrap()[..], b"chunk-0");
    assert_eq!(
        &replies.next().await.unwrap().unwrap()[..],
        b"chunk-1",
        "a chunked answer goes through (allow_responses)"
    );
    assert_eq!(&answer.await.unwrap()[..], b"ping");
    let to_b = central
        .request(
            "node-b",
            bytes::Bytes::from_static(b"for b"),
            Duration::from_secs(2),
        )
        .await
        .unwrap()
        .next()
        .await;
    assert!(to_b.is_err(), "nobody may answer for node B: {to_b:?}");
    let got = tokio::time::timeout(Duration::from_secs(1), stolen.next()).await;
    assert!(got.is_err(), "node A must not receive B's requests");

    // B is let in, until it is revoked.
    let b_cfg = node_config(&url, &b);
    NatsBackplane::probe(&b_cfg).await.unwrap();
    let revoked = registry::revoke(&files, "node-b").unwrap();
    assert!(revoked.revoked_ns.is_some());
    assert!(
        registry::reload_nats(&files).unwrap(),
        "nats-server wrote its pid file"
    );
    if let Err(e) = probe_until(&b_cfg, false).await {
        let log =
            std::fs::read_to_string(dir.path().join("nats/nats-server.log")).unwrap_or_default();
        panic!("the revoked node is refused: {e}\nnats-server log:\n{log}");
    }
    NatsBackplane::probe(&node_config(&url, &a))
        .await
        .expect("the other node is still let in");
    match enroll::renew(&enroll_addr, &dir.path().join("node-b")).await {
        Err(EnrollError::Central(m)) => assert!(m.contains("revoked"), "{m}"),
        other => panic!("a revoked node cannot renew: {other:?}"),
    }
    match enroll::issue_token(&files, "node-b", Duration::from_secs(60)) {
        Err(EnrollError::Refused(m)) => assert!(m.contains("revoked"), "{m}"),
        other => panic!("no token for a revoked name: {other:?}"),
    }

    // A renews: a new certificate (new key), still let in.
    let before = std::fs::read_to_string(&a.cert).unwrap();
    let key_before = std::fs::read_to_string(&a.key).unwrap();
    let renewed = enroll::renew(&enroll_addr, &dir.path().join("node-a"))
        .await
        .unwrap();
    assert_eq!(renewed.node, "node-a");
    assert_ne!(std::fs::read_to_string(&a.cert).unwrap(), before);
    assert_ne!(std::fs::read_to_string(&a.key).unwrap(), key_before);
    assert_eq!(rampart_api::secret::mode(&a.key).unwrap(), 0o600);
    assert!(
        enroll::cert_remaining(&dir.path().join("node-a")).unwrap() > Duration::from_secs(86_400)
    );
    let reg = registry::load(&files).unwrap();
    assert_eq!(reg.node("node-a").unwrap().certs.len(), 2);
    NatsBackplane::probe(&node_config(&url, &a))
        .await
        .expect("the renewed certificate is let in");
    node_a.publish(msg("a-2", "node-a")).await.unwrap();
    let _ = stop_enroll.send(());
}
