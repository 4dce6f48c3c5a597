//! Mutual TLS between the fleet and NATS, and enrollment with one-time tokens, against
//! a real nats-server of the test's own configured with `tls { verify: true }` from
//! `rampart central init`'s block.
//!
//! - a node enrolls with a token and then talks to NATS with its certificate, and
//!   central (with its own certificate) consumes what the node published;
//! - a token used twice, an expired token, and a token naming another CA are refused;
//! - a client with no certificate, with a certificate from another CA, or without TLS
//!   is refused by the server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rampart_bus::{Backplane, OutMessage};
use rampart_bus_nats::{NatsBackplane, NatsConfig, NatsTls};
use rampart_central::enroll::{self, EnrollError, EnrollServer, NodeCredentials};
use rampart_central::pki::{self, PkiFiles};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

async fn start_enroll_server(files: &PkiFiles) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = EnrollServer::new(files.clone()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

fn tls(ca: &Path, cert: &Path, key: &Path) -> NatsTls {
    NatsTls {
        ca: ca.into(),
        cert: cert.into(),
        key: key.into(),
    }
}

/// Speaks the NATS protocol by hand over TLS (INFO, then the TLS upgrade, CONNECT,
/// PING) and returns the server's first answer, or the error that ended the
/// connection: a client without a certificate gets no PONG.
async fn raw_ping(port: u16, ca: &Path, client: Option<(&Path, &Path)>) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // INFO comes in clear first; the client upgrades after it.
    let mut info = Vec::new();
    let mut b = [0u8; 1];
    while !info.ends_with(b"\r\n") {
        tcp.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        info.push(b[0]);
    }
    assert!(
        String::from_utf8_lossy(&info).contains("\"tls_required\":true"),
        "{}",
        String::from_utf8_lossy(&info)
    );
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(s).read_line(&mut line),
    )
    .await
    .map_err(|_| "no answer".to_string())?;
    match r {
        Ok(0) => Err("closed".into()),
        Ok(_) => Ok(line.trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolled_nodes_reach_nats_over_mtls_and_strangers_do_not() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let report = pki::init(&dir.path().join("central"), &[]).unwrap();
    let files = report.files.clone();
    // Another fleet's CA, and a node certificate from it.
    let other = pki::init(&dir.path().join("other"), &[]).unwrap();

    let (addr, stop) = start_enroll_server(&files).await;
    let token = enroll::issue_token(&files, "node-a", Duration::from_secs(600)).unwrap();
    let creds = enroll::enroll(&addr, &token.to_string(), &dir.path().join("node-a"))
        .await
        .unwrap();
    assert_eq!(creds.node, "node-a");
    assert_eq!(rampart_api::secret::mode(&creds.key).unwrap(), 0o600);
    assert_eq!(
        std::fs::read(&creds.ca).unwrap(),
        std::fs::read(&files.ca_cert).unwrap()
    );

    // Used twice: refused, and nothing is written.
    let again = enroll::enroll(&addr, &token.to_string(), &dir.path().join("again")).await;
    match again {
        Err(EnrollError::Central(m)) => assert!(m.contains("already used"), "{m}"),
        other => panic!("a second use must be refused: {other:?}"),
    }
    assert!(!dir.path().join("again/node.pem").exists());
    // Expired.
    let expired = enroll::issue_token(&files, "node-x", Duration::ZERO).unwrap();
    match enroll::enroll(&addr, &expired.to_string(), &dir.path().join("x")).await {
        Err(EnrollError::Central(m)) => assert!(m.contains("expired"), "{m}"),
        other => panic!("an expired token must be refused: {other:?}"),
    }
    // A wrong secret for a known id.
    let mut forged = enroll::issue_token(&files, "node-y", Duration::from_secs(600)).unwrap();
    forged.secret = "0".repeat(32);
    match enroll::enroll(&addr, &forged.to_string(), &dir.path().join("y")).await {
        Err(EnrollError::Central(m)) => assert!(m.contains("unknown token"), "{m}"),
        other => panic!("a forged token must be refused: {other:?}"),
    }
    // A token pinning another CA: the node refuses this central (it could be anyone).
    let mut pinned_elsewhere =
        enroll::issue_token(&files, "node-z", Duration::from_secs(600)).unwrap();
    pinned_elsewhere.ca_fingerprint = other.ca_fingerprint.clone();
    match enroll::enroll(&addr, &pinned_elsewhere.to_string(), &dir.path().join("z")).await {
        Err(EnrollError::Tls(m)) => assert!(m.contains("did not present the CA"), "{m}"),
        other => panic!("a central without the pinned CA must be refused: {other:?}"),
    }
    // The stored token file holds digests only, and is private.
    let stored = std::fs::read_to_string(&files.tokens).unwrap();
    assert!(!stored.contains(&token.secret));
    assert_eq!(rampart_api::secret::mode(&files.tokens).unwrap(), 0o600);
    let _ = stop.send(());

    // nats-server with init's TLS block: every client needs a certificate of this CA.
    let conf = pki::nats_tls_block(&files);
    let nats = rampart_testbed::NatsServer::start_with_config(&dir.path().join("nats"), &conf);

    let stranger_dir = dir.path().join("stranger");
    let other_ca = pki::Ca::load(&other.files).unwrap();
    let (key, csr) = pki::node_key_and_csr("stranger").unwrap();
    std::fs::create_dir_all(&stranger_dir).unwrap();
    let stranger = NodeCredentials::in_dir(&stranger_dir, "stranger");
    std::fs::write(
        &stranger.cert,
        other_ca.sign_node_csr("stranger", &csr).unwrap(),
    )
    .unwrap();
    std::fs::write(&stranger.key, key.serialize_pem()).unwrap();

    // By hand: the enrolled node gets a PONG, the others do not.
    let ok = raw_ping(nats.port, &files.ca_cert, Some((&creds.cert, &creds.key))).await;
    assert_eq!(ok.as_deref(), Ok("PONG"), "the enrolled node is let in");
    let no_cert = raw_ping(nats.port, &files.ca_cert, None).await;
    assert!(no_cert.is_err(), "no client certificate: {no_cert:?}");
    let foreign = raw_ping(
        nats.port,
        &files.ca_cert,
        Some((&stranger.cert, &stranger.key)),
    )
    .await;
    assert!(foreign.is_err(), "another CA's certificate: {foreign:?}");

    // Through the backplane's own client.
    let cfg = |t: Option<NatsTls>| {
        let mut c = NatsConfig::new(&nats.url());
        c.tls = t;
        c.request_timeout = Duration::from_secs(2);
        // JetStream reserves the stream's bound on disk: a test needs little.
        c.max_bytes = 64 << 20;
        c
    };
    let node_cfg = cfg(Some(tls(&creds.ca, &creds.cert, &creds.key)));
    NatsBackplane::probe(&node_cfg).await.unwrap();
    let e = NatsBackplane::probe(&cfg(Some(tls(
        &files.ca_cert,
        &stranger.cert,
        &stranger.key,
    ))))
    .await;
    assert!(e.is_err(), "another CA's node certificate: {e:?}");
    let e = NatsBackplane::probe(&cfg(None)).await;
    assert!(e.is_err(), "no TLS at all: {e:?}");

    // The node publishes, central (its own certificate) consumes.
    let node = NatsBackplane::connect(node_cfg).await.unwrap();
    node.publish(OutMessage {
        id: "m-1".into(),
        node: "node-a".into(),
        payload: bytes::Bytes::from_static(b"hello"),
    })
    .await
    .unwrap();
    let central = NatsBackplane::connect(cfg(Some(tls(
        &files.ca_cert,
        &files.central_cert,
        &files.central_key,
    ))))
    .await
    .unwrap();
    let mut c = central.consumer("central").await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((d.node.as_str(), &d.payload[..]), ("node-a", &b"hello"[..]));
    d.ack().await.unwrap();
}
