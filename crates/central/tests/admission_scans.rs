//! The admission policy reads scan facts from central's store (the nodes' scan
//! results), in real PostgreSQL: an image is scanned when a node reported a scan of
//! it, its critical vulnerabilities date from the oldest report that has them, a
//! package any container loaded counts as in use, and the policy's grace periods
//! decide on that. Needs PostgreSQL (scripts/setup): skips with the reason elsewhere,
//! fails in CI.

use std::sync::Arc;

use rampart_admission::scans::ScanFacts;
use rampart_admission::{Action, AdmissionPolicy};
use rampart_central::admission_scans::StoreScans;
use rampart_event::fleet::{NodeReport, ScanReport, VulnFinding};
use rampart_event::Severity;

const HOUR: u64 = 3_600_000_000_000;

fn vuln(id: &str, severity: Severity, in_use: Option<bool>) -> VulnFinding {
    VulnFinding {
        id: id.into(),
        package: "openssl".into(),
        version: "3.0.1".into(),
        ecosystem: "Debian".into(),
        severity,
        in_use,
        ..Default::default()
    }
}

fn scan(ts_ns: u64, container: &str, image: &str, vulns: Vec<VulnFinding>) -> NodeReport {
    NodeReport::Scan(ScanReport {
        ts_ns,
        target: format!("container:{container}"),
        image: image.into(),
        image_id: format!("sha256:{}", image.len()),
        packages: 120,
        vulnerabilities: vulns,
        ..Default::default()
    })
}

fn pod(image: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "securityContext": {"runAsNonRoot": true},
            "containers": [{"name": "app", "image": image,
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]
        }
    })
}

#[test]
fn admission_reads_scan_facts_from_the_postgres_store() {
    let Some(url) = rampart_testbed::postgres_ready() else {
        return;
    };
    let schema = format!("admission_scans_{}", std::process::id());
    let pg = rampart_store_pg::PgStore::open(rampart_store_pg::PgConfig {
        url,
        schema: Some(schema.clone()),
    })
    .expect("PostgreSQL store opens");
    let store: Arc<dyn rampart_store::Store> = Arc::new(pg);
    let now = 1_800_000_000_000_000_000u64;

    // node-a scanned a container of web:1.4 three days ago (one critical, loaded),
    // node-b scanned another one an hour ago (that one and a fresh critical).
    store
        .put_reports(
            "node-a",
            &[scan(
                now - 72 * HOUR,
                "c1",
                "registry.example.com/shop/web:1.4",
                vec![
                    vuln("CVE-2026-0001", Severity::Critical, Some(true)),
                    vuln("CVE-2026-0100", Severity::High, Some(true)),
                ],
            )],
        )
        .unwrap();
    store
        .put_reports(
            "node-b",
            &[scan(
                now - HOUR,
                "c2",
                "registry.example.com/shop/web:1.4",
                vec![
                    vuln("CVE-2026-0001", Severity::Critical, Some(false)),
                    vuln("CVE-2026-0002", Severity::Critical, Some(false)),
                ],
            )],
        )
        .unwrap();
    // A clean image, scanned (Docker Hub's short name in the report).
    store
        .put_reports("node-a", &[scan(now - HOUR, "c3", "busybox:1.36", vec![])])
        .unwrap();

    // Read at every review here, so the rescan below is seen at once.
    let facts = StoreScans::new(store.clone()).with_ttl(std::time::Duration::ZERO);
    let web = facts
        .scan("registry.example.com/shop/web:1.4")
        .expect("the web image is scanned");
    assert_eq!(web.scanned_at_ns, now - HOUR, "the newest scan");
    let ids: Vec<(&str, Option<bool>, u64)> = web
        .critical
        .iter()
        .map(|v| (v.id.as_str(), v.in_use, v.first_seen_ns))
        .collect();
    assert_eq!(
        ids,
        vec![
            // Known since node-a's report; loaded by node-a's container.
            ("CVE-2026-0001", Some(true), now - 72 * HOUR),
            ("CVE-2026-0002", Some(false), now - HOUR),
        ]
    );
    // Docker Hub's names are one image however written.
    let bb = facts
        .scan("docker.io/library/busybox:1.36")
        .expect("busybox is scanned");
    assert!(bb.critical.is_empty());
    assert!(facts.scan("registry.example.com/shop/other:1").is_none());

    // The policy decides on those facts: the in-use critical is past its (zero)
    // grace period, so web:1.4 is denied; a rescan by node-a today does not restart
    // the clock while central runs.
    let mut policy = AdmissionPolicy {
        allowed_registries: vec!["registry.example.com".into(), "docker.io".into()],
        ..Default::default()
    };
    policy.clauses.critical_vulnerabilities = Action::Deny;
    policy.clauses.unscanned_images = Action::Deny;
    let d = policy.evaluate(
        "Pod",
        "shop",
        &pod("registry.example.com/shop/web:1.4"),
        &facts,
        now,
    );
    assert!(!d.allowed, "{d:?}");
    assert!(
        d.denials
            .iter()
            .any(|v| v.clause == "critical_vulnerabilities" && v.message.contains("CVE-2026-0001")),
        "{d:?}"
    );
    store
        .put_reports(
            "node-a",
            &[scan(
                now,
                "c1",
                "registry.example.com/shop/web:1.4",
                vec![vuln("CVE-2026-0001", Severity::Critical, Some(true))],
            )],
        )
        .unwrap();
    let again = facts.scan("registry.example.com/shop/web:1.4").unwrap();
    assert_eq!(again.critical[0].first_seen_ns, now - 72 * HOUR);
    // Scanned and clean: allowed; never scanned: denied as unscanned.
    let ok = policy.evaluate("Pod", "shop", &pod("busybox:1.36"), &facts, now);
    assert!(ok.allowed, "{ok:?}");
    let unscanned = policy.evaluate(
        "Pod",
        "shop",
        &pod("registry.example.com/shop/other:1"),
        &facts,
        now,
    );
    assert!(
        unscanned
            .denials
            .iter()
            .any(|v| v.clause == "unscanned_images"),
        "{unscanned:?}"
    );

    drop(facts);
    drop(store);
    let admin = rampart_store_pg::PgStore::open(rampart_store_pg::PgConfig {
        url: rampart_testbed::postgres_url(),
        schema: Some(schema.clone()),
    });
    if let Ok(admin) = admin {
        let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
}
