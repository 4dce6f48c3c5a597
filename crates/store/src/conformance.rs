//! The conformance suite: every [`Store`] implementation gives these answers. Each check
//! takes an empty store; [`run_all`] runs them all, each on a fresh store from `make`.
//! It panics on the first difference (it is test code, used by the implementations'
//! tests: SQLite here, PostgreSQL in `rampart-store-pg`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_event::{
    Alert, Container, ContainerLifecycle, Event, LifecycleAction, OpenAccess, Payload, Priority,
    Process, Severity, Workload, SCHEMA_VERSION,
};

use crate::*;

/// A check: panics where the store answers differently.
pub type Check = fn(&dyn Store);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("schema_is_migrated", schema_is_migrated),
    ("alerts_insert_is_idempotent", alerts_insert_is_idempotent),
    ("alert_filters", alert_filters),
    ("alert_pages", alert_pages),
    ("alert_triage_is_audited", alert_triage_is_audited),
    (
        "inventory_from_lifecycle_and_alerts",
        inventory_from_lifecycle_and_alerts,
    ),
    ("workloads_from_labels", workloads_from_labels),
    (
        "inventory_from_batches_in_one_commit",
        inventory_from_batches_in_one_commit,
    ),
    ("audit_records", audit_records),
    ("retention", retention),
    ("node_reports_newest_wins", node_reports_newest_wins),
    (
        "scan_results_and_vulnerabilities",
        scan_results_and_vulnerabilities,
    ),
    ("flows_newest_report_wins", flows_newest_report_wins),
    (
        "flows_an_edge_twice_in_one_report",
        flows_an_edge_twice_in_one_report,
    ),
    (
        "vulnerability_layers_and_novelty",
        vulnerability_layers_and_novelty,
    ),
];

/// Runs every check, each on a fresh, empty store.
pub fn run_all(make: &mut dyn FnMut() -> Box<dyn Store>) {
    for (name, check) in CHECKS {
        let store = make();
        eprintln!("conformance ({}): {name}", store.backend());
        check(store.as_ref());
    }
}

const T0: u64 = 1_700_000_000_000_000_000;
const SEC: u64 = 1_000_000_000;

/// A test alert: rule, priority and where it happened.
pub fn alert(
    id: &str,
    ts_ns: u64,
    rule: &str,
    priority: Priority,
    container: Option<&str>,
) -> Alert {
    let workload = match container {
        Some(id) => Workload::Container(Container {
            id: id.into(),
            name: format!("name-{id}"),
            image: format!("image-{id}:1"),
            image_digest: format!("sha256:{id}"),
            metadata_complete: true,
            ..Default::default()
        }),
        None => Workload::Host { cgroup_id: 0 },
    };
    let mut output_fields = BTreeMap::new();
    output_fields.insert("proc.name".into(), serde_json::json!("cat"));
    Alert {
        id: id.into(),
        ts_ns,
        first_ts_ns: ts_ns - SEC,
        count: 2,
        rule: rule.into(),
        priority,
        mitre: vec!["T1003.008".into()],
        tags: vec!["filesystem".into()],
        message: format!("{rule} fired"),
        output_fields,
        source: "syscall".into(),
        retro: false,
        event: Event {
            schema: SCHEMA_VERSION,
            ts_ns,
            host: "node-a".into(),
            seq: 1,
            process: Some(Arc::new(Process {
                pid: 42,
                tid: 42,
                exe: "/bin/cat".into(),
                argv: vec!["cat".into(), "/etc/shadow".into()],
                comm: "cat".into(),
                ..Default::default()
            })),
            container: Arc::new(workload),
            compat_syscall: false,
            payload: Payload::FileOpen {
                path: "/etc/shadow".into(),
                path_raw: None,
                flags: 0,
                mode: 0,
                access: OpenAccess::from_flags(0),
                ret: 3,
                repeats: 0,
            },
        },
    }
}

fn ingest_alerts(s: &dyn Store, node: &str, alerts: &[Alert]) -> IngestReport {
    s.ingest(&Ingest {
        node,
        node_version: "0.1.0",
        seen_ns: T0,
        alerts,
        ..Ingest::default()
    })
    .unwrap()
}

fn ids(page: &AlertPage) -> Vec<&str> {
    page.alerts.iter().map(|a| a.alert.id.as_str()).collect()
}

fn query(s: &dyn Store, q: AlertQuery) -> Vec<String> {
    ids(&s.query_alerts(&q).unwrap())
        .into_iter()
        .map(String::from)
        .collect()
}

pub fn schema_is_migrated(s: &dyn Store) {
    assert!(s.schema_version().unwrap() >= 1);
    assert!(s
        .query_alerts(&AlertQuery::default())
        .unwrap()
        .alerts
        .is_empty());
    assert!(s.nodes().unwrap().is_empty());
}

pub fn alerts_insert_is_idempotent(s: &dyn Store) {
    let a = alert("a1", T0, "Read shadow", Priority::Warning, Some("c1"));
    let b = alert("a2", T0 + SEC, "Read shadow", Priority::Critical, None);
    let first = ingest_alerts(s, "node-a", &[a.clone(), b.clone()]);
    assert_eq!(first.alerts, 2);
    // The bus redelivers: nothing changes, nothing is counted.
    let again = ingest_alerts(s, "node-a", &[a.clone(), b.clone()]);
    assert_eq!(again.alerts, 0);
    let page = s.query_alerts(&AlertQuery::default()).unwrap();
    assert_eq!(ids(&page), ["a2", "a1"]);
    assert_eq!(page.next, None);
    let got = s.get_alert("a1").unwrap().unwrap();
    assert_eq!(got.alert, a, "the alert comes back as it went in");
    assert_eq!(got.node, "node-a");
    assert_eq!(got.status, AlertStatus::Open);
    assert!(got.comments.is_empty());
    assert_eq!(got.container_id(), Some("c1"));
    assert_eq!(s.get_alert("nope").unwrap(), None);
    let nodes = s.nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].name.as_str(), nodes[0].version.as_str()),
        ("node-a", "0.1.0")
    );
}

pub fn alert_filters(s: &dyn Store) {
    let all = [
        alert("f1", T0, "Shell", Priority::Notice, Some("c1")),
        alert("f2", T0 + SEC, "Shell", Priority::Warning, Some("c2")),
        alert("f3", T0 + 2 * SEC, "Shadow", Priority::Error, Some("c1")),
        alert("f4", T0 + 3 * SEC, "Shadow", Priority::Critical, None),
        alert(
            "f5",
            T0 + 4 * SEC,
            "Miner",
            Priority::Informational,
            Some("c2"),
        ),
    ];
    ingest_alerts(s, "node-a", &all[..3]);
    ingest_alerts(s, "node-b", &all[3..]);
    s.update_alert("f2", &AlertChange::Acknowledge, "ana", T0 + 10 * SEC)
        .unwrap()
        .unwrap();
    s.update_alert("f3", &AlertChange::Resolve, "ana", T0 + 11 * SEC)
        .unwrap()
        .unwrap();

    let q = |f: fn(&mut AlertQuery)| {
        let mut q = AlertQuery::default();
        f(&mut q);
        query(s, q)
    };
    assert_eq!(q(|_| {}), ["f5", "f4", "f3", "f2", "f1"]);
    assert_eq!(q(|q| q.since_ns = Some(T0 + SEC)), ["f5", "f4", "f3", "f2"]);
    assert_eq!(q(|q| q.until_ns = Some(T0 + SEC)), ["f1"]);
    assert_eq!(
        q(|q| {
            q.since_ns = Some(T0 + SEC);
            q.until_ns = Some(T0 + 3 * SEC)
        }),
        ["f3", "f2"]
    );
    assert_eq!(q(|q| q.min_priority = Some(Priority::Error)), ["f4", "f3"]);
    assert_eq!(
        q(|q| q.min_priority = Some(Priority::Warning)),
        ["f4", "f3", "f2"]
    );
    assert_eq!(q(|q| q.min_severity = Some(Severity::High)), ["f4", "f3"]);
    assert_eq!(
        q(|q| q.min_severity = Some(Severity::Low)),
        ["f4", "f3", "f2", "f1"]
    );
    assert_eq!(q(|q| q.rule = Some("Shell".into())), ["f2", "f1"]);
    assert_eq!(q(|q| q.container_id = Some("c2".into())), ["f5", "f2"]);
    assert_eq!(q(|q| q.node = Some("node-b".into())), ["f5", "f4"]);
    assert_eq!(
        q(|q| q.status = Some(AlertStatus::Open)),
        ["f5", "f4", "f1"]
    );
    assert_eq!(q(|q| q.status = Some(AlertStatus::Acknowledged)), ["f2"]);
    assert_eq!(q(|q| q.status = Some(AlertStatus::Resolved)), ["f3"]);
    assert_eq!(
        q(|q| {
            q.rule = Some("Shadow".into());
            q.node = Some("node-a".into())
        }),
        ["f3"]
    );
    assert!(q(|q| q.rule = Some("none".into())).is_empty());
}

pub fn alert_pages(s: &dyn Store) {
    // 25 alerts, in pairs sharing a timestamp, so the cursor must break ties by id.
    let all: Vec<Alert> = (0..25u64)
        .map(|i| {
            alert(
                &format!("p{i:02}"),
                T0 + (i / 2) * SEC,
                "Shell",
                Priority::Warning,
                None,
            )
        })
        .collect();
    ingest_alerts(s, "node-a", &all);
    let mut seen = Vec::new();
    let mut q = AlertQuery {
        limit: 10,
        ..AlertQuery::default()
    };
    let mut pages = 0;
    loop {
        let page = s.query_alerts(&q).unwrap();
        pages += 1;
        assert!(page.alerts.len() <= 10);
        seen.extend(ids(&page).into_iter().map(String::from));
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..25).map(|i| format!("p{i:02}")).collect();
    expected.reverse();
    assert_eq!(seen, expected);
    // An exact page leaves no cursor behind.
    let exact = s
        .query_alerts(&AlertQuery {
            limit: 25,
            ..AlertQuery::default()
        })
        .unwrap();
    assert_eq!((exact.alerts.len(), exact.next), (25, None));
}

pub fn alert_triage_is_audited(s: &dyn Store) {
    ingest_alerts(
        s,
        "node-a",
        &[alert("t1", T0, "Shell", Priority::Warning, None)],
    );
    let a = s
        .update_alert("t1", &AlertChange::Acknowledge, "ana", T0 + SEC)
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.status, a.updated_ns),
        (AlertStatus::Acknowledged, T0 + SEC)
    );
    let a = s
        .update_alert(
            "t1",
            &AlertChange::Comment {
                text: "looking".into(),
            },
            "ana",
            T0 + 2 * SEC,
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        a.status,
        AlertStatus::Acknowledged,
        "a comment keeps the status"
    );
    let a = s
        .update_alert(
            "t1",
            &AlertChange::Comment {
                text: "benign: backup job".into(),
            },
            "bob",
            T0 + 3 * SEC,
        )
        .unwrap()
        .unwrap();
    let a2 = s
        .update_alert("t1", &AlertChange::Resolve, "bob", T0 + 4 * SEC)
        .unwrap()
        .unwrap();
    assert_eq!(a2.status, AlertStatus::Resolved);
    assert_eq!(a2.comments, a.comments);
    assert_eq!(
        a2.comments,
        [
            Comment {
                ts_ns: T0 + 2 * SEC,
                author: "ana".into(),
                text: "looking".into()
            },
            Comment {
                ts_ns: T0 + 3 * SEC,
                author: "bob".into(),
                text: "benign: backup job".into()
            },
        ]
    );
    assert_eq!(
        s.update_alert("missing", &AlertChange::Resolve, "bob", T0)
            .unwrap(),
        None
    );
    let audit = s.query_audit(&AuditQuery::default()).unwrap();
    let got: Vec<(&str, &str, &str, &str)> = audit
        .iter()
        .map(|r| {
            (
                r.actor.as_str(),
                r.action.as_str(),
                r.target.as_str(),
                r.origin.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ana", "alert.acknowledge", "t1", "central"),
            ("ana", "alert.comment", "t1", "central"),
            ("bob", "alert.comment", "t1", "central"),
            ("bob", "alert.resolve", "t1", "central"),
        ]
    );
    assert!(audit[1].detail.contains("looking"));
    let reopened = s
        .update_alert("t1", &AlertChange::Reopen, "ana", T0 + 5 * SEC)
        .unwrap()
        .unwrap();
    assert_eq!(reopened.status, AlertStatus::Open);
}

fn lc(ts_ns: u64, action: LifecycleAction, id: &str) -> ContainerLifecycle {
    ContainerLifecycle {
        ts_ns,
        action,
        container_id: id.into(),
        name: format!("name-{id}"),
        image: format!("image-{id}:1"),
        labels: Default::default(),
    }
}

pub fn inventory_from_lifecycle_and_alerts(s: &dyn Store) {
    inventory_scenario(s, false);
}

/// The same batches through [`Store::ingest_many`] in one transaction: the same
/// reports per batch and the same inventory (a record two batches carry counts once).
pub fn inventory_from_batches_in_one_commit(s: &dyn Store) {
    inventory_scenario(s, true);
}

fn inventory_scenario(s: &dyn Store, one_commit: bool) {
    let changes = [
        lc(T0, LifecycleAction::Start, "ca"),
        lc(T0 + SEC, LifecycleAction::Start, "cb"),
        lc(T0 + 5 * SEC, LifecycleAction::Die { exit_code: 137 }, "ca"),
        lc(T0 + 6 * SEC, LifecycleAction::Stop, "ca"),
    ];
    // Redelivered, and an old start arriving late: history only, no state change.
    let late = [
        changes[0].clone(),
        lc(T0 - SEC, LifecycleAction::Start, "ca"),
    ];
    // An alert names a third container (its metadata comes from the event).
    let alerts = [alert(
        "i1",
        T0 + 8 * SEC,
        "Shell",
        Priority::Warning,
        Some("cc"),
    )];
    let batches = [
        Ingest {
            node: "node-a",
            node_version: "0.1.0",
            seen_ns: T0 + 6 * SEC,
            lifecycle: &changes,
            ..Ingest::default()
        },
        Ingest {
            node: "node-a",
            seen_ns: T0 + 7 * SEC,
            lifecycle: &late,
            ..Ingest::default()
        },
        Ingest {
            node: "node-b",
            node_version: "0.1.0",
            seen_ns: T0,
            alerts: &alerts,
            ..Ingest::default()
        },
        // The alert's batch again.
        Ingest {
            node: "node-b",
            node_version: "0.1.0",
            seen_ns: T0,
            alerts: &alerts,
            ..Ingest::default()
        },
    ];
    let reports: Vec<IngestReport> = if one_commit {
        s.ingest_many(&batches).unwrap()
    } else {
        batches.iter().map(|b| s.ingest(b).unwrap()).collect()
    };
    let counts: Vec<(u64, u64)> = reports.iter().map(|r| (r.lifecycle, r.alerts)).collect();
    assert_eq!(counts, [(4, 0), (1, 0), (0, 1), (0, 0)]);

    let running = s.containers(&ContainerQuery::default()).unwrap();
    let names: Vec<&str> = running.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(names, ["cc", "cb"], "running ones, newest seen first");
    let cc = &running[0];
    assert_eq!(
        (
            cc.node.as_str(),
            cc.image.as_str(),
            cc.image_digest.as_str()
        ),
        ("node-b", "image-cc:1", "sha256:cc")
    );
    assert_eq!(
        (cc.first_seen_ns, cc.last_seen_ns),
        (T0 + 8 * SEC, T0 + 8 * SEC)
    );
    let all = s
        .containers(&ContainerQuery {
            include_gone: true,
            ..ContainerQuery::default()
        })
        .unwrap();
    let ca = all.iter().find(|c| c.id == "ca").unwrap();
    assert_eq!(
        ca,
        &ContainerRecord {
            id: "ca".into(),
            node: "node-a".into(),
            name: "name-ca".into(),
            image: "image-ca:1".into(),
            image_digest: String::new(),
            state: ContainerState::Stopped,
            first_seen_ns: T0 - SEC,
            last_seen_ns: T0 + 6 * SEC,
            started_ns: Some(T0),
            finished_ns: Some(T0 + 5 * SEC),
            exit_code: Some(137),
        }
    );
    assert_eq!(all.len(), 3);
    let by_node = s
        .containers(&ContainerQuery {
            node: Some("node-a".into()),
            include_gone: true,
            ..ContainerQuery::default()
        })
        .unwrap();
    assert_eq!(by_node.len(), 2);
    let by_image = s
        .containers(&ContainerQuery {
            image: Some("image-cb:1".into()),
            ..ContainerQuery::default()
        })
        .unwrap();
    assert_eq!(by_image.len(), 1);

    let history = s.container_history("ca").unwrap();
    let actions: Vec<(u64, LifecycleAction)> =
        history.iter().map(|h| (h.ts_ns, h.action)).collect();
    assert_eq!(
        actions,
        [
            (T0 - SEC, LifecycleAction::Start),
            (T0, LifecycleAction::Start),
            (T0 + 5 * SEC, LifecycleAction::Die { exit_code: 137 }),
            (T0 + 6 * SEC, LifecycleAction::Stop),
        ]
    );
    assert_eq!(history[0].image, "image-ca:1");

    let images = s.images().unwrap();
    let got: Vec<(&str, &str, u64)> = images
        .iter()
        .map(|i| (i.image.as_str(), i.digest.as_str(), i.containers))
        .collect();
    assert_eq!(
        got,
        [
            ("image-ca:1", "", 1),
            ("image-cb:1", "", 1),
            ("image-cc:1", "sha256:cc", 1)
        ]
    );
    let nodes = s.nodes().unwrap();
    let got: Vec<(&str, u64, u64)> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.first_seen_ns, n.last_seen_ns))
        .collect();
    assert_eq!(
        got,
        [("node-a", T0 + 6 * SEC, T0 + 7 * SEC), ("node-b", T0, T0)]
    );
    assert_eq!(
        nodes[0].version, "0.1.0",
        "an empty version keeps the known one"
    );
}

fn labelled(
    ts_ns: u64,
    action: LifecycleAction,
    id: &str,
    labels: &[(&str, &str)],
) -> ContainerLifecycle {
    ContainerLifecycle {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..lc(ts_ns, action, id)
    }
}

pub fn workloads_from_labels(s: &dyn Store) {
    let web = [
        ("com.docker.compose.project", "shop"),
        ("com.docker.compose.service", "web"),
    ];
    let deploy = [
        ("io.kubernetes.pod.name", "api-7d4b9c8f5d-x2x7q"),
        ("io.kubernetes.pod.namespace", "prod"),
        ("pod-template-hash", "7d4b9c8f5d"),
    ];
    let deploy2 = [
        ("io.kubernetes.pod.name", "api-7d4b9c8f5d-k9z2m"),
        ("io.kubernetes.pod.namespace", "prod"),
        ("pod-template-hash", "7d4b9c8f5d"),
    ];
    let changes = [
        labelled(T0, LifecycleAction::Start, "w1", &web),
        labelled(T0 + SEC, LifecycleAction::Start, "w2", &web),
        labelled(T0 + 2 * SEC, LifecycleAction::Start, "k1", &deploy),
        // Reported once without labels (a late stop), once with: the labels stay.
        lc(T0 + 3 * SEC, LifecycleAction::Start, "k2"),
        labelled(
            T0 + 4 * SEC,
            LifecycleAction::Die { exit_code: 0 },
            "w2",
            &[],
        ),
    ];
    s.ingest(&Ingest {
        node: "node-a",
        lifecycle: &changes,
        ..Ingest::default()
    })
    .unwrap();
    // k2's labels come on a second node's later batch; redelivering changes nothing.
    let late = [labelled(
        T0 + 3 * SEC,
        LifecycleAction::Start,
        "k2",
        &deploy2,
    )];
    for node in ["node-b", "node-b"] {
        s.ingest(&Ingest {
            node,
            lifecycle: &late,
            ..Ingest::default()
        })
        .unwrap();
    }
    // An alert's container (no lifecycle, no labels): its image is its workload.
    let a = alert("a-img", T0 + 5 * SEC, "r", Priority::Warning, Some("c9"));
    ingest_alerts(s, "node-c", &[a]);

    let all = s
        .workloads(&WorkloadQuery {
            include_gone: true,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<(&str, &str, &str)> = all
        .iter()
        .map(|w| {
            (
                w.key.kind.as_str(),
                w.key.namespace.as_str(),
                w.key.name.as_str(),
            )
        })
        .collect();
    // Newest seen first.
    assert_eq!(
        keys,
        vec![
            ("Image", "", "image-c9:1"),
            ("ComposeService", "shop", "web"),
            ("Deployment", "prod", "api"),
        ],
        "{all:#?}"
    );
    let web_w = &all[1];
    assert_eq!(
        web_w.container_ids,
        vec!["w1", "w2"],
        "running first: {web_w:?}"
    );
    assert_eq!(web_w.running, 1);
    assert_eq!(web_w.nodes, vec!["node-a"]);
    assert_eq!(web_w.images, vec!["image-w1:1", "image-w2:1"]);
    assert_eq!(
        (web_w.first_seen_ns, web_w.last_seen_ns),
        (T0, T0 + 4 * SEC)
    );
    let api = &all[2];
    assert_eq!(api.container_ids, vec!["k1", "k2"]);
    assert_eq!(api.running, 2);
    assert_eq!(
        api.nodes,
        vec!["node-a"],
        "a container keeps its first node"
    );

    // Filters: namespace, kind; gone containers only on request.
    let prod = s
        .workloads(&WorkloadQuery {
            namespace: Some("prod".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(prod.len(), 1);
    assert_eq!(prod[0].key.name, "api");
    let compose = s
        .workloads(&WorkloadQuery {
            kind: Some("ComposeService".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(compose.len(), 1);
    assert_eq!(
        compose[0].container_ids,
        vec!["w1"],
        "w2 exited: {compose:?}"
    );
    let one = s
        .workloads(&WorkloadQuery {
            include_gone: true,
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(one.len(), 1);
}

fn audit(id: &str, ts_ns: u64, actor: &str, action: &str) -> AuditRecord {
    AuditRecord {
        id: id.into(),
        ts_ns,
        origin: "node-a".into(),
        actor: actor.into(),
        action: action.into(),
        target: "c1".into(),
        detail: r#"{"signal":9}"#.into(),
    }
}

pub fn audit_records(s: &dyn Store) {
    let records = [
        audit("r2", T0 + SEC, "rule:Miner", "response.kill"),
        audit("r1", T0, "rule:Shell", "response.freeze"),
        audit("r3", T0 + 2 * SEC, "rule:Miner", "response.kill"),
    ];
    assert_eq!(s.append_audit(&records).unwrap(), 3);
    assert_eq!(
        s.append_audit(&records[..1]).unwrap(),
        0,
        "stored once by id"
    );
    let all = s.query_audit(&AuditQuery::default()).unwrap();
    let got: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, ["r1", "r2", "r3"], "oldest first");
    assert_eq!(all[0], records[1]);
    let kills = s
        .query_audit(&AuditQuery {
            action: Some("response.kill".into()),
            since_ns: Some(T0 + 2 * SEC),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(kills.len(), 1);
    let by_actor = s
        .query_audit(&AuditQuery {
            actor: Some("rule:Miner".into()),
            until_ns: Some(T0 + 2 * SEC),
            target: Some("c1".into()),
            limit: 5,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(by_actor.len(), 1);
    assert_eq!(by_actor[0].id, "r2");
}

pub fn retention(s: &dyn Store) {
    let alerts: Vec<Alert> = (0..6u64)
        .map(|i| {
            alert(
                &format!("r{i}"),
                T0 + i * SEC,
                "Shell",
                Priority::Warning,
                None,
            )
        })
        .collect();
    ingest_alerts(s, "node-a", &alerts);
    s.update_alert(
        "r1",
        &AlertChange::Comment { text: "old".into() },
        "ana",
        T0 + 100 * SEC,
    )
    .unwrap()
    .unwrap();
    s.append_audit(&[
        audit("x1", T0, "a", "response.kill"),
        audit("x2", T0 + 200 * SEC, "a", "response.kill"),
    ])
    .unwrap();
    let purged = s
        .apply_retention(&Retention {
            alerts_before_ns: Some(T0 + 3 * SEC),
            audit_before_ns: Some(T0 + 150 * SEC),
        })
        .unwrap();
    // r0..r2 go; x1 and the comment's audit record (at +100 s) go.
    assert_eq!(
        purged,
        Purged {
            alerts: 3,
            audit: 2
        }
    );
    assert_eq!(query(s, AlertQuery::default()), ["r5", "r4", "r3"]);
    assert_eq!(s.get_alert("r1").unwrap(), None);
    let left: Vec<String> = s
        .query_audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["x2"]);
    // The same alert arriving again after retention is stored again: retention is
    // about age, and the bus's dedup window is far shorter.
    assert_eq!(
        s.apply_retention(&Retention::default()).unwrap(),
        Purged::default()
    );
}

fn rules_report(ts_ns: u64, names: &[&str]) -> rampart_event::fleet::NodeReport {
    use rampart_event::fleet::*;
    NodeReport::Rules(RulesReport {
        ts_ns,
        rules: names
            .iter()
            .map(|n| RuleInfo {
                name: n.to_string(),
                priority: "WARNING".into(),
                mitre: vec!["T1059".into()],
                tags: vec!["mitre_execution".into()],
                enabled: true,
                source_file: "rules/a.yaml".into(),
            })
            .collect(),
        load_errors: Vec::new(),
        policy: Some(PolicyInfo {
            name: "policy.yaml".into(),
            yaml: format!("# at {ts_ns}\n"),
        }),
    })
}

/// Rules and health reports: the newest per node and key is kept, a late older one
/// (a redelivery) changes nothing, nodes are kept apart.
pub fn node_reports_newest_wins(s: &dyn Store) {
    use rampart_event::fleet::*;
    assert!(s.reports("rules", None).unwrap().is_empty());
    assert_eq!(s.put_reports("n1", &[rules_report(T0, &["a"])]).unwrap(), 1);
    assert_eq!(
        s.put_reports("n1", &[rules_report(T0 + SEC, &["a", "b"])])
            .unwrap(),
        1
    );
    // Older: not written.
    assert_eq!(
        s.put_reports("n1", &[rules_report(T0, &["old"])]).unwrap(),
        0
    );
    let health = NodeReport::Health(HealthReport {
        ts_ns: T0,
        version: "0.1.0".into(),
        kernel: "6.1.0".into(),
        hooks: vec![HookInfo {
            name: "process".into(),
            kind: "tracepoint".into(),
            attached: true,
        }],
        drops: vec![DropInfo {
            source: "queue".into(),
            count: 3,
        }],
        bus_queued: 2,
        bus_lag_ns: 5,
        recorder_lag_ns: 7,
    });
    s.put_reports("n2", &[rules_report(T0, &["z"]), health.clone()])
        .unwrap();
    let all = s.reports("rules", None).unwrap();
    let names: Vec<(String, Vec<String>)> = all
        .iter()
        .map(|r| match &r.report {
            NodeReport::Rules(x) => (
                r.node.clone(),
                x.rules.iter().map(|r| r.name.clone()).collect(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            ("n1".to_string(), vec!["a".to_string(), "b".to_string()]),
            ("n2".to_string(), vec!["z".to_string()])
        ]
    );
    assert_eq!(s.reports("rules", Some("n2")).unwrap().len(), 1);
    let h = s.reports("health", None).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].node.as_str(), &h[0].report), ("n2", &health));
    assert!(s.reports("health", Some("n1")).unwrap().is_empty());
}

fn scan(
    ts_ns: u64,
    container: &str,
    image: &str,
    vulns: &[(&str, Severity, bool, bool)],
) -> rampart_event::fleet::NodeReport {
    use rampart_event::fleet::*;
    NodeReport::Scan(ScanReport {
        ts_ns,
        target: format!("container:{container}"),
        image: image.into(),
        image_id: format!("sha256:{image}"),
        container_name: container.into(),
        packages: 10,
        secrets: 0,
        malware: 0,
        vulnerabilities: vulns
            .iter()
            .map(|(id, sev, fixable, in_use)| VulnFinding {
                id: id.to_string(),
                aliases: vec![],
                package: "openssl".into(),
                version: "3.0.1".into(),
                ecosystem: "Debian:12".into(),
                fixed_version: fixable.then(|| "3.0.2".to_string()),
                severity: *sev,
                summary: String::new(),
                in_use: Some(*in_use),
                ..Default::default()
            })
            .collect(),
        sbom_cyclonedx: Some(format!(
            "{{\"bomFormat\":\"CycloneDX\",\"c\":\"{container}\"}}"
        )),
        sbom_spdx: Some("{\"spdxVersion\":\"SPDX-2.3\"}".into()),
        ..Default::default()
    })
}

/// Scan reports: summaries without their SBOMs, SBOMs by id, vulnerabilities
/// across containers and nodes, one per id and package version.
pub fn scan_results_and_vulnerabilities(s: &dyn Store) {
    use crate::reports::*;
    s.put_reports(
        "n1",
        &[
            scan(T0, "c1", "web:1", &[("CVE-1", Severity::High, true, false)]),
            scan(
                T0 + SEC,
                "c2",
                "web:1",
                &[
                    ("CVE-1", Severity::High, true, true),
                    ("CVE-2", Severity::Low, false, false),
                ],
            ),
        ],
    )
    .unwrap();
    s.put_reports(
        "n2",
        &[scan(
            T0 + 2 * SEC,
            "c3",
            "db:2",
            &[("CVE-3", Severity::Critical, false, false)],
        )],
    )
    .unwrap();
    let reports = s.reports("scan", None).unwrap();
    assert_eq!(reports.len(), 3);
    for r in &reports {
        match &r.report {
            rampart_event::fleet::NodeReport::Scan(x) => {
                assert!(
                    x.sbom_cyclonedx.is_none() && x.sbom_spdx.is_none(),
                    "listing carries no SBOM"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    let list = scan_summaries(&reports, &ScanQuery::default());
    let ids: Vec<&str> = list.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(
        ids,
        ["n2/container:c3", "n1/container:c2", "n1/container:c1"]
    );
    assert_eq!(list[1].vulnerabilities, 2);
    let by_image = scan_summaries(
        &reports,
        &ScanQuery {
            target: Some("web:1".into()),
            ..Default::default()
        },
    );
    assert_eq!(by_image.len(), 2);
    let (node, key) = scan_key("n1/container:c2").unwrap();
    let sboms = s.sboms(node, &key).unwrap().expect("stored SBOM");
    assert!(sboms.cyclonedx.unwrap().contains("\"c2\""));
    assert!(sboms.spdx.unwrap().contains("SPDX-2.3"));
    assert!(s.sboms("n1", "scan:container:nope").unwrap().is_none());
    // The store's answer (SQL over the findings' rows) is the reports' own.
    let from_store = |q: &VulnQuery| {
        let v = s.vulnerabilities(q).unwrap();
        assert_eq!(v, vulnerabilities(&reports, q), "{q:?}");
        v.vulnerabilities
    };
    let v = from_store(&VulnQuery::default());
    let got: Vec<(&str, bool, Vec<String>)> = v
        .iter()
        .map(|x| (x.id.as_str(), x.in_use, x.images.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-3", false, vec!["db:2".to_string()]),
            ("CVE-1", true, vec!["web:1".to_string()]),
            ("CVE-2", false, vec!["web:1".to_string()]),
        ]
    );
    let fixable = from_store(&VulnQuery {
        fixable_only: true,
        ..Default::default()
    });
    assert_eq!(
        fixable.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["CVE-1"]
    );
    let high = from_store(&VulnQuery {
        min_severity: Some(Severity::High),
        image: Some("web:1".into()),
        ..Default::default()
    });
    // By image id too, and bounded: the most severe first.
    let by_id = from_store(&VulnQuery {
        image: Some("sha256:db:2".into()),
        ..Default::default()
    });
    assert_eq!(
        by_id.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["CVE-3"]
    );
    let first = from_store(&VulnQuery {
        limit: 1,
        ..Default::default()
    });
    assert_eq!(
        first.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["CVE-3"]
    );
    assert_eq!(
        high.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        ["CVE-1"]
    );
    // A newer scan of c1 replaces its findings; an older one of c2 changes nothing.
    s.put_reports("n1", &[scan(T0 + 5 * SEC, "c1", "web:1", &[])])
        .unwrap();
    s.put_reports(
        "n1",
        &[scan(
            T0,
            "c2",
            "web:1",
            &[("CVE-9", Severity::Critical, false, false)],
        )],
    )
    .unwrap();
    let after = s.vulnerabilities(&VulnQuery::default()).unwrap();
    let got: Vec<(&str, bool)> = after
        .vulnerabilities
        .iter()
        .map(|x| (x.id.as_str(), x.in_use))
        .collect();
    // CVE-1 is now only c2's (in use there).
    assert_eq!(got, [("CVE-3", false), ("CVE-1", true), ("CVE-2", false)]);
    let all = s.reports("scan", None).unwrap();
    assert_eq!(after, vulnerabilities(&all, &VulnQuery::default()));
    let reports = s.reports("scan", Some("n1")).unwrap();
    let c1 = scan_summaries(
        &reports,
        &ScanQuery {
            target: Some("c1".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        (c1.len(), c1[0].vulnerabilities, c1[0].ts_ns),
        (1, 0, T0 + 5 * SEC)
    );
}

fn flow_edge(
    source: &str,
    target: &str,
    peer_ip: &str,
    bytes: u64,
    last: u64,
) -> rampart_bus::flows::FlowSummary {
    rampart_bus::flows::FlowSummary {
        source: source.into(),
        source_label: format!("{source} label"),
        target: target.into(),
        target_label: format!("{target} label"),
        protocol: "tcp".into(),
        port: 8080,
        peer_ip: peer_ip.into(),
        outbound: true,
        bytes_sent: bytes,
        bytes_received: bytes * 2,
        connections: 3,
        first_seen_ns: last - 10 * SEC,
        last_seen_ns: last,
        state: "anomalous".into(),
    }
}

/// A report naming one edge twice (a node's bug, or a hostile one) stores it once,
/// with the first of the two, on both stores, and still stores the report's others.
pub fn flows_an_edge_twice_in_one_report(s: &dyn Store) {
    use rampart_bus::flows::FlowReport;
    let report = FlowReport {
        ts_ns: T0 + 100 * SEC,
        edges: vec![
            flow_edge("image:web", "image:db", "", 100, T0 + 90 * SEC),
            flow_edge("image:web", "image:cache", "", 1, T0 + 80 * SEC),
            flow_edge("image:web", "image:db", "", 999, T0 + 95 * SEC),
        ],
        addresses: Vec::new(),
    };
    assert_eq!(s.put_flows("n1", &report).unwrap(), 2);
    let all = s.flows(0).unwrap();
    assert_eq!(all.edges.len(), 2, "{all:?}");
    let db = all
        .edges
        .iter()
        .find(|e| e.edge.target == "image:db")
        .expect("the repeated edge");
    assert_eq!(
        (db.edge.bytes_sent, db.edge.last_seen_ns),
        (100, T0 + 90 * SEC)
    );
}

/// Flow reports: an edge keeps the newest report's counters (an older one arriving
/// late changes nothing, a redelivery changes nothing), first seen is the earliest,
/// nodes' edges stay apart, the window selects by last seen, addresses keep their
/// newest owner.
pub fn flows_newest_report_wins(s: &dyn Store) {
    use rampart_bus::flows::{FlowReport, WorkloadAddress};
    let first = FlowReport {
        ts_ns: T0 + 100 * SEC,
        edges: vec![
            flow_edge(
                "image:web",
                "cidr:10.0.0.0/24",
                "10.0.0.7",
                100,
                T0 + 90 * SEC,
            ),
            flow_edge("image:web", "dns:db.internal", "", 5, T0 + 20 * SEC),
        ],
        addresses: vec![WorkloadAddress {
            ip: "10.0.0.5".into(),
            workload: "image:web".into(),
            label: "web".into(),
            seen_ns: T0 + 90 * SEC,
        }],
    };
    assert_eq!(s.put_flows("n1", &first).unwrap(), 2);
    let mut newer = first.clone();
    newer.ts_ns = T0 + 200 * SEC;
    newer.edges.truncate(1);
    newer.edges[0].bytes_sent = 400;
    newer.edges[0].first_seen_ns = T0 + 150 * SEC;
    newer.edges[0].last_seen_ns = T0 + 190 * SEC;
    newer.edges[0].state = "blocked".into();
    newer.addresses[0].workload = "image:api".into();
    newer.addresses[0].seen_ns = T0 + 190 * SEC;
    assert_eq!(s.put_flows("n1", &newer).unwrap(), 1);
    // The first report again (a redelivery, late): nothing changes.
    assert_eq!(s.put_flows("n1", &first).unwrap(), 0);
    // Another node's edge of the same shape is its own.
    let other = FlowReport {
        ts_ns: T0 + 50 * SEC,
        edges: vec![flow_edge(
            "image:web",
            "cidr:10.0.0.0/24",
            "10.0.0.7",
            7,
            T0 + 40 * SEC,
        )],
        addresses: Vec::new(),
    };
    assert_eq!(s.put_flows("n2", &other).unwrap(), 1);

    let all = s.flows(0).unwrap();
    assert_eq!(all.edges.len(), 3, "{all:?}");
    // Newest first.
    let e = &all.edges[0];
    assert_eq!(
        (e.node.as_str(), e.edge.target.as_str()),
        ("n1", "cidr:10.0.0.0/24")
    );
    assert_eq!(e.edge.bytes_sent, 400);
    assert_eq!(e.edge.bytes_received, 200, "the newest report's counters");
    assert_eq!(
        e.edge.first_seen_ns,
        T0 + 80 * SEC,
        "the earliest first seen"
    );
    assert_eq!(e.edge.last_seen_ns, T0 + 190 * SEC);
    assert_eq!(e.edge.state, "blocked");
    assert!(e.edge.outbound);
    assert_eq!(e.edge.peer_ip, "10.0.0.7");
    assert_eq!(e.edge.source_label, "image:web label");
    assert_eq!(all.edges[1].node, "n2");
    assert_eq!(all.edges[1].edge.bytes_sent, 7);
    assert_eq!(all.edges[2].edge.target, "dns:db.internal");
    assert_eq!(all.edges[2].edge.peer_ip, "");
    // The window: last seen at or after.
    let recent = s.flows(T0 + 41 * SEC).unwrap();
    assert_eq!(recent.edges.len(), 1);
    assert_eq!(recent.edges[0].edge.last_seen_ns, T0 + 190 * SEC);
    assert_eq!(all.addresses.len(), 1);
    assert_eq!(all.addresses[0].node, "n1");
    assert_eq!(all.addresses[0].address.workload, "image:api");
    // Flows go with the alerts of their age.
    s.apply_retention(&Retention {
        alerts_before_ns: Some(T0 + 41 * SEC),
        audit_before_ns: None,
    })
    .unwrap();
    let kept = s.flows(0).unwrap();
    assert_eq!(kept.edges.len(), 1, "{kept:?}");
    assert_eq!(kept.edges[0].edge.last_seen_ns, T0 + 190 * SEC);
    assert_eq!(kept.addresses.len(), 1);
}

/// A finding of [`layered_scan`]: id, severity, layer (digest, index, command), first
/// seen.
type LayeredFinding<'a> = (&'a str, Severity, Option<(&'a str, u32, &'a str)>, u64);

/// A scan whose findings carry layers and first-seen times.
fn layered_scan(
    ts_ns: u64,
    container: &str,
    image: &str,
    db_updated_ns: u64,
    vulns: &[LayeredFinding<'_>],
) -> rampart_event::fleet::NodeReport {
    use rampart_event::fleet::*;
    NodeReport::Scan(ScanReport {
        ts_ns,
        target: format!("container:{container}"),
        image: image.into(),
        image_id: format!("sha256:{image}"),
        db_updated_ns,
        vulnerabilities: vulns
            .iter()
            .map(|(id, severity, layer, first_seen_ns)| VulnFinding {
                id: id.to_string(),
                package: "openssl".into(),
                version: "3.0.1".into(),
                ecosystem: "Debian:12".into(),
                fixed_version: (*severity >= Severity::High).then(|| "3.0.2".to_string()),
                severity: *severity,
                layer: layer.map(|l| l.0.to_string()),
                layer_index: layer.map(|l| l.1),
                layer_command: layer.map(|l| l.2.to_string()).filter(|c| !c.is_empty()),
                first_seen_ns: *first_seen_ns,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// Each finding's layer (from the first scan, by node then target, that knows it),
/// its earliest first-seen time, the newest database update of any scan and the count
/// of findings new since it: over every finding the filters take, not only the page.
pub fn vulnerability_layers_and_novelty(s: &dyn Store) {
    use crate::reports::*;
    let db = T0 + 100 * SEC;
    let empty = s.vulnerabilities(&VulnQuery::default()).unwrap();
    assert_eq!(empty, VulnPage::default());
    s.put_reports(
        "n2",
        &[layered_scan(
            T0 + 200 * SEC,
            "c2",
            "web:1",
            db,
            &[
                (
                    "CVE-A",
                    Severity::High,
                    Some(("sha256:l2", 2, "RUN b")),
                    db + SEC,
                ),
                ("CVE-B", Severity::Low, None, T0),
                ("CVE-C", Severity::Critical, Some(("sha256:l0", 0, "")), db),
            ],
        )],
    )
    .unwrap();
    s.put_reports(
        "n1",
        &[
            // An older database, on another node: the newest update counts.
            layered_scan(
                T0 + 300 * SEC,
                "c1",
                "web:1",
                T0,
                &[
                    (
                        "CVE-A",
                        Severity::High,
                        Some(("sha256:l1", 1, "RUN a")),
                        db + 9 * SEC,
                    ),
                    ("CVE-B", Severity::Low, Some(("sha256:l1", 1, "RUN a")), 0),
                ],
            ),
            layered_scan(
                T0 + 300 * SEC,
                "c3",
                "db:2",
                0,
                &[("CVE-D", Severity::Medium, None, 0)],
            ),
        ],
    )
    .unwrap();
    let reports = s.reports("scan", None).unwrap();
    let check = |q: VulnQuery| {
        let page = s.vulnerabilities(&q).unwrap();
        assert_eq!(page, vulnerabilities(&reports, &q), "{q:?}");
        page
    };
    let all = check(VulnQuery::default());
    assert_eq!((all.db_updated_ns, all.new_since_db_update), (db, 2));
    let by_id: BTreeMap<&str, &VulnRecord> = all
        .vulnerabilities
        .iter()
        .map(|v| (v.id.as_str(), v))
        .collect();
    let a = by_id["CVE-A"];
    // n1 sorts before n2: its layer; the earliest first-seen time is n2's.
    assert_eq!(
        (
            a.layer.as_deref(),
            a.layer_index,
            a.layer_command.as_deref()
        ),
        (Some("sha256:l1"), Some(1), Some("RUN a"))
    );
    assert_eq!((a.first_seen_ns, a.new_since_db_update), (db + SEC, true));
    let c = by_id["CVE-C"];
    assert_eq!(
        (
            c.layer.as_deref(),
            c.layer_index,
            c.layer_command.as_deref()
        ),
        (Some("sha256:l0"), Some(0), None)
    );
    assert!(c.new_since_db_update, "found at the update itself");
    let b = by_id["CVE-B"];
    assert_eq!((b.first_seen_ns, b.new_since_db_update), (T0, false));
    let d = by_id["CVE-D"];
    assert_eq!(
        (d.layer.as_deref(), d.layer_index, d.first_seen_ns),
        (None, None, 0)
    );
    assert!(!d.new_since_db_update, "unknown first-seen time is not new");
    // The count is over every finding the filters take, not the page.
    let first = check(VulnQuery {
        limit: 1,
        ..Default::default()
    });
    assert_eq!(first.vulnerabilities.len(), 1);
    assert_eq!(first.new_since_db_update, 2);
    // Filters apply to the layer too: in db:2 alone, no layer is known.
    let db2 = check(VulnQuery {
        image: Some("db:2".into()),
        ..Default::default()
    });
    assert_eq!(
        (
            db2.vulnerabilities.len(),
            db2.new_since_db_update,
            db2.db_updated_ns
        ),
        (1, 0, db)
    );
    let fixable = check(VulnQuery {
        fixable_only: true,
        ..Default::default()
    });
    assert_eq!(fixable.new_since_db_update, 2);
    check(VulnQuery {
        min_severity: Some(Severity::Critical),
        ..Default::default()
    });
    // A newer scan of n1's c1 without layers: CVE-A's layer is now n2's.
    s.put_reports(
        "n1",
        &[layered_scan(
            T0 + 400 * SEC,
            "c1",
            "web:1",
            T0,
            &[("CVE-A", Severity::High, None, db + 9 * SEC)],
        )],
    )
    .unwrap();
    let reports = s.reports("scan", None).unwrap();
    let page = s.vulnerabilities(&VulnQuery::default()).unwrap();
    assert_eq!(page, vulnerabilities(&reports, &VulnQuery::default()));
    let a = page
        .vulnerabilities
        .iter()
        .find(|v| v.id == "CVE-A")
        .unwrap();
    assert_eq!(
        (a.layer.as_deref(), a.layer_index),
        (Some("sha256:l2"), Some(2))
    );
}

/// ListVulnerabilities' cost on `s` with `scans` stored scan reports (not a check: a
/// measurement, printed). Before migration 6 the API read and decoded every scan
/// report and grouped their findings in memory on each call ("reports" below: the
/// read, then [`crate::reports::vulnerabilities`], the same walk); now the store
/// answers in SQL ("sql"). Both answers are compared first, so the figures are of the
/// same result. `settle` runs after the scans are stored (PostgreSQL: `ANALYZE`, what
/// autovacuum does after a bulk load, so the figures are of a settled database).
/// Returns the median milliseconds (reports path, SQL path) of the default query.
pub fn vulnerability_list_figures(s: &dyn Store, scans: usize, settle: &dyn Fn()) -> (f64, f64) {
    use crate::reports::*;
    use rampart_event::fleet::*;
    use std::time::Instant;
    const NODES: usize = 20;
    const IMAGES: usize = 40;
    const PER_SCAN: usize = 150;
    const POOL: usize = 1200;
    let sev = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
    let started = Instant::now();
    for node in 0..NODES {
        let reports: Vec<NodeReport> = (0..scans / NODES)
            .map(|c| {
                let image = (node * 7 + c) % IMAGES;
                NodeReport::Scan(ScanReport {
                    ts_ns: T0 + (c as u64) * SEC,
                    target: format!("container:{node:02}{c:06}"),
                    image: format!("registry.local/app-{image}:1.{image}"),
                    image_id: format!("sha256:{image:064x}"),
                    packages: 400,
                    db_updated_ns: T0 + (node as u64 % 5) * 3600 * SEC,
                    vulnerabilities: (0..PER_SCAN)
                        .map(|i| {
                            let k = (image * 29 + i) % POOL;
                            VulnFinding {
                                id: format!("CVE-2024-{k:05}"),
                                aliases: vec![format!("DSA-{k}-1")],
                                package: format!("lib{}", k % 300),
                                version: format!("1.{}.{}", k % 7, k % 3),
                                ecosystem: "Debian:12".into(),
                                fixed_version: k
                                    .is_multiple_of(3)
                                    .then(|| format!("1.{}.9", k % 7)),
                                severity: sev[k % 4],
                                summary: format!(
                                    "a flaw in lib{} lets a remote attacker corrupt memory ({k})",
                                    k % 300
                                ),
                                in_use: Some(k.is_multiple_of(5)),
                                layer: Some(format!("sha256:{:064x}", image * 10 + k % 4)),
                                layer_index: Some((k % 4) as u32),
                                layer_command: Some(format!(
                                    "RUN apt-get install -y lib{}",
                                    k % 300
                                )),
                                first_seen_ns: T0 + ((node * 13 + c + k) as u64 % 20) * 1800 * SEC,
                            }
                        })
                        .collect(),
                    ..Default::default()
                })
            })
            .collect();
        s.put_reports(&format!("node-{node:02}"), &reports).unwrap();
    }
    eprintln!(
        "{}: stored {scans} scans x {PER_SCAN} findings in {:.1} s",
        s.backend(),
        started.elapsed().as_secs_f64()
    );
    settle();
    let median = |f: &mut dyn FnMut()| {
        let mut ms: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        ms[2]
    };
    let queries = [
        ("default (100)", VulnQuery::default()),
        (
            "one image",
            VulnQuery {
                image: Some("registry.local/app-3:1.3".into()),
                ..Default::default()
            },
        ),
        (
            "high+, fixable, 1000",
            VulnQuery {
                min_severity: Some(Severity::High),
                fixable_only: true,
                limit: 1000,
                ..Default::default()
            },
        ),
    ];
    let mut default = (0.0, 0.0);
    for (name, q) in &queries {
        let expected = vulnerabilities(&s.reports("scan", None).unwrap(), q);
        assert_eq!(s.vulnerabilities(q).unwrap(), expected, "{name}");
        let mut read_ms = 0.0;
        let reports_ms = median(&mut || {
            let t = Instant::now();
            let all = s.reports("scan", None).unwrap();
            read_ms = t.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(vulnerabilities(&all, q));
        });
        let sql_ms = median(&mut || {
            std::hint::black_box(s.vulnerabilities(q).unwrap());
        });
        eprintln!(
            "{}: ListVulnerabilities {name:<22} reports path {reports_ms:8.1} ms (read {read_ms:.1}) | sql {sql_ms:7.1} ms | x{:.1}",
            s.backend(),
            reports_ms / sql_ms
        );
        if default == (0.0, 0.0) {
            default = (reports_ms, sql_ms);
        }
    }
    default
}
