//! A pod's identity survives the recorder: events of a Kubernetes container keep
//! namespace, pod, container, workload, node, service account and pod labels through
//! segments on disk, `where k8s.… = …` selects them, and an incident bundle shows them.
//! (crates/sensor/tests/containerd.rs records a real `ctr run` k8s.io container's
//! events the same way.)

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use rampart_event::{KubernetesIdentity, Workload};
use rampart_recorder::{sample, Query, Record, Recorder, Writer};

fn pod(namespace: &str, pod: &str, sa: &str) -> KubernetesIdentity {
    KubernetesIdentity {
        namespace: namespace.into(),
        pod: pod.into(),
        container: "app".into(),
        pod_uid: format!("uid-{pod}"),
        workload_kind: "Deployment".into(),
        workload_name: pod.rsplitn(3, '-').last().unwrap_or(pod).into(),
        node: "node-a".into(),
        service_account: sa.into(),
        labels: [("app".to_string(), pod.to_string())].into(),
    }
}

fn event_in(ts: u64, id: &str, k: &KubernetesIdentity, path: &str) -> rampart_event::Event {
    let mut e = sample::event(ts, ts, Some(id), 40 + ts as u32 % 7, path);
    let mut c = e.container.container().unwrap().clone();
    c.k8s = Some(k.clone());
    e.container = Arc::new(Workload::Container(c));
    e
}

#[test]
fn kubernetes_identity_is_recorded_queried_and_bundled() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    let shop = pod("shop", "web-7d4b9c8f5-x2x9k", "web-sa");
    let batch = pod("batch", "report-5c9f7b6d4-q8k2m", "reporter");
    let (web_id, report_id) = ("a".repeat(64), "b".repeat(64));
    let t0 = 1_700_000_000_000_000_000u64;
    let mut events = Vec::new();
    for i in 0..200u64 {
        let (id, k) = if i % 2 == 0 {
            (&web_id, &shop)
        } else {
            (&report_id, &batch)
        };
        let path = if i == 120 {
            "/etc/shadow"
        } else {
            "/etc/hosts"
        };
        events.push(event_in(t0 + i * 1_000_000, id, k, path));
    }
    let w = Writer::start(rec.clone()).unwrap();
    for e in &events {
        assert!(w.try_append_event(Arc::new(e.clone())));
    }
    // An alert on the shadow read, as the rules stage would record it.
    let shadow = events[120].clone();
    let alert = rampart_event::Alert {
        id: "k8s-alert-1".into(),
        ts_ns: shadow.ts_ns,
        first_ts_ns: shadow.ts_ns,
        count: 1,
        rule: "Read sensitive file untrusted".into(),
        priority: rampart_event::Priority::Warning,
        mitre: vec!["T1555".into()],
        tags: vec![],
        message: "cat read /etc/shadow".into(),
        output_fields: Default::default(),
        source: "syscall".into(),
        event: shadow.clone(),
        retro: false,
    };
    assert!(w.try_append_alert(alert));
    w.close().unwrap();

    // Reopened from disk: the identity comes back whole.
    drop(rec);
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    let all: Vec<Record> = rec.query(&Query::new()).unwrap().collect();
    let back = all
        .iter()
        .find_map(|r| match r {
            Record::Event(e) if e.ts_ns == shadow.ts_ns => Some(e.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        back.container.container().unwrap().k8s.as_ref(),
        Some(&shop)
    );

    let select = |cond: &str| -> Vec<u64> {
        rec.query(
            &Query::new()
                .with_where(cond, &[common::rules_dir()])
                .unwrap(),
        )
        .unwrap()
        .filter_map(|r| match r {
            Record::Event(e) => Some(e.ts_ns),
            _ => None,
        })
        .collect()
    };
    assert_eq!(select("k8s.ns.name = shop").len(), 100);
    assert_eq!(select("k8s.ns.name = batch").len(), 100);
    assert_eq!(select("k8s.sa.name = reporter").len(), 100);
    assert_eq!(select("k8s.deployment.name = web").len(), 100);
    assert_eq!(select("k8s.node.name = node-a").len(), 200);
    assert_eq!(
        select("k8s.pod.label[app] = web-7d4b9c8f5-x2x9k and fd.name = /etc/shadow"),
        vec![shadow.ts_ns]
    );
    assert!(select("k8s.ns.name = nowhere").is_empty());

    let out = dir.path().join("bundle.tar.gz");
    let s = rec
        .incident_bundle(
            "k8s-alert-1",
            Duration::from_secs(60),
            Duration::from_secs(60),
            &out,
        )
        .unwrap();
    assert_eq!(s.container, web_id);
    assert_eq!(s.events, 100, "only the pod's own container: {s:?}");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&out).unwrap(),
    ));
    let mut summary = String::new();
    let mut events_jsonl = String::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("summary.md") {
            e.read_to_string(&mut summary).unwrap();
        } else if name.ends_with("events.jsonl") {
            e.read_to_string(&mut events_jsonl).unwrap();
        }
    }
    assert!(
        summary.contains(
            "- Kubernetes: pod shop/web-7d4b9c8f5-x2x9k, container app, Deployment web, \
             node node-a, service account web-sa, labels app=web-7d4b9c8f5-x2x9k"
        ),
        "{summary}"
    );
    let first: serde_json::Value =
        serde_json::from_str(events_jsonl.lines().next().unwrap()).unwrap();
    let k = &first["container"]["k8s"];
    assert_eq!(k["service_account"], "web-sa", "{first}");
    assert_eq!(k["workload_kind"], "Deployment");
    assert_eq!(k["labels"]["app"], "web-7d4b9c8f5-x2x9k");
}
