//! A node renews its certificate on its own before it expires: central's enrollment
//! listener (real TLS) issues short-lived node certificates, and the node's renewal
//! loop replaces its certificate once less than half its lifetime is left, in place,
//! long before it ends, again and again.

use std::time::{Duration, Instant};

use rampart_central::enroll::{self, EnrollServer};
use rampart_central::pki;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_before_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let files = pki::init(&dir.path().join("pki"), &[]).unwrap().files;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop_enroll, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        EnrollServer::new(files.clone())
            .unwrap()
            .with_node_validity(Duration::from_secs(8))
            .serve(listener, async move {
                let _ = stopped.await;
            }),
    );
    let token = enroll::issue_token(&files, "node-a", Duration::from_secs(600)).unwrap();
    let node_dir = dir.path().join("node-a");
    enroll::enroll(&addr, &token.to_string(), &node_dir)
        .await
        .unwrap();
    let (total, left) = enroll::cert_lifetime(&node_dir).unwrap();
    assert!(
        total < Duration::from_secs(10) && left <= Duration::from_secs(8),
        "a short-lived certificate: {total:?}, {left:?} left"
    );
    assert!(!enroll::renewal_due(total, left, 0.5));
    let first = std::fs::read_to_string(node_dir.join("node.pem")).unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let renewer = tokio::spawn(enroll::renew_when_due(
        addr.clone(),
        node_dir.clone(),
        0.5,
        Duration::from_millis(200),
        async move {
            let _ = stopped.await;
        },
    ));
    // Watched for 20 s, over two lifetimes: it is renewed each time half is left, so
    // it never comes within 2 s of its end.
    let started = Instant::now();
    let mut seen = vec![first];
    while started.elapsed() < Duration::from_secs(20) {
        let left = enroll::cert_remaining(&node_dir).unwrap();
        assert!(
            left > Duration::from_secs(2),
            "the certificate came within {left:?} of its end"
        );
        let now = std::fs::read_to_string(node_dir.join("node.pem")).unwrap();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.len() >= 3,
        "renewed at least twice in 20 s of 8 s certificates: {} versions",
        seen.len()
    );
    let _ = stop.send(());
    renewer.await.unwrap();
    let _ = stop_enroll.send(());
}
