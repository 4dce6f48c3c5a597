//! An admission decision is an event of its own (`Payload::Admission`): rules match
//! it by the request's fields (`ka.user.name`, `ka.target.namespace`,
//! `admission.clauses`, …) and render it in their output, the flight recorder keeps
//! it, and its JSON (what the API and the Falco-compatible outputs carry) names the
//! request.

use std::sync::Arc;

use rampart_admission::{AdmissionPolicy, NoScans, Requester};
use rampart_event::Payload;
use serde_json::json;

fn privileged_pod() -> serde_json::Value {
    json!({
      "apiVersion": "v1",
      "kind": "Pod",
      "metadata": {"name": "miner", "namespace": "shop"},
      "spec": {
        "hostPID": true,
        "containers": [{
          "name": "app",
          "image": "docker.io/library/busybox:1.36",
          "securityContext": {"privileged": true}
        }]
      }
    })
}

fn denied() -> rampart_admission::Decision {
    let policy = AdmissionPolicy::default();
    let d = policy.evaluate("Pod", "shop", &privileged_pod(), &NoScans, 1);
    assert!(!d.allowed, "{d:?}");
    d
}

const BY: Requester<'static> = Requester {
    user: "system:serviceaccount:ci:deployer",
    operation: "CREATE",
};

#[test]
fn the_event_names_the_request_and_the_clauses() {
    let d = denied();
    let ev = rampart_admission::event(&d, BY, "central", 42);
    let Payload::Admission(a) = &ev.payload else {
        panic!("{:?}", ev.payload)
    };
    assert_eq!(
        (a.kind.as_str(), a.namespace.as_str(), a.name.as_str()),
        ("Pod", "shop", "miner")
    );
    assert_eq!(a.user, "system:serviceaccount:ci:deployer");
    assert_eq!(a.operation, "CREATE");
    assert_eq!(a.decision, "deny");
    assert!(
        a.denied_by.contains(&"privileged".to_string())
            && a.denied_by.contains(&"host_namespaces".to_string()),
        "{:?}",
        a.denied_by
    );
    assert_eq!(a.images, vec!["docker.io/library/busybox:1.36"]);
    assert_eq!(ev.kind(), rampart_event::EventKind::Admission);
    // The JSON form the API and outputs carry.
    let v = serde_json::to_value(&ev).unwrap();
    assert_eq!(v["kind"], "admission");
    assert_eq!(v["data"]["user"], "system:serviceaccount:ci:deployer");
    assert_eq!(v["data"]["denied_by"][0], a.denied_by[0]);
    let back: rampart_event::Event = serde_json::from_value(v).unwrap();
    assert_eq!(back, ev);
    // A clean admission is an `allow` event with no clauses.
    let ok = AdmissionPolicy {
        clauses: rampart_admission::policy::Clauses {
            privileged: rampart_admission::Action::Off,
            host_namespaces: rampart_admission::Action::Off,
            run_as_root: rampart_admission::Action::Off,
            unscanned_images: rampart_admission::Action::Off,
            missing_limits: rampart_admission::Action::Off,
            ..Default::default()
        },
        ..Default::default()
    }
    .evaluate("Pod", "shop", &privileged_pod(), &NoScans, 1);
    let ev = rampart_admission::event(&ok, BY, "central", 43);
    let Payload::Admission(a) = &ev.payload else {
        panic!()
    };
    assert_eq!(a.decision, "allow", "{ok:?}");
    assert!(a.denied_by.is_empty() && a.warned_by.is_empty());
}

#[test]
fn rules_match_and_render_admission_events() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("admission.yaml");
    std::fs::write(
        &rules,
        r#"
- rule: Privileged pod requested by a CI account
  desc: a CI service account asked for a privileged pod
  condition: >
    evt.type = admission and ka.verb = create and ka.user.name startswith "system:serviceaccount:ci:"
    and admission.clauses contains privileged and k8s.ns.name = shop
  output: "%ka.user.name asked for %ka.target.resource %ka.target.namespace/%ka.target.name (%admission.decision by %admission.clauses; images %ka.req.pod.containers.image)"
  priority: WARNING
- rule: Never on a file open
  desc: admission fields are absent on other events
  condition: evt.type = open and ka.user.name exists
  output: never
  priority: WARNING
"#,
    )
    .unwrap();
    let (engine, errors) = rampart_detect::RuleEngine::load(&[&rules]).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let d = denied();
    let alerts = engine.evaluate(&rampart_admission::event(&d, BY, "central", 42));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].rule, "Privileged pod requested by a CI account");
    // Denying clauses first, then the warning ones (run as root, limits and scans
    // warn by default).
    assert_eq!(
        alerts[0].message,
        "system:serviceaccount:ci:deployer asked for pods shop/miner (deny by \
         host_namespaces, privileged, run_as_root, missing_limits, unscanned_images; \
         images docker.io/library/busybox:1.36)"
    );
    // Another user: no match.
    let other = Requester {
        user: "alice",
        operation: "CREATE",
    };
    assert!(engine
        .evaluate(&rampart_admission::event(&d, other, "central", 43))
        .is_empty());
}

#[test]
fn the_recorder_keeps_admission_events_and_alerts() {
    let d = denied();
    let alert = rampart_admission::alert(&d, BY, "central", 1_700_000_000_000_000_000).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig {
        max_age: None,
        ..rampart_recorder::RecorderConfig::with_dir(dir.path())
    })
    .unwrap();
    let w = rampart_recorder::Writer::start(rec.clone()).unwrap();
    assert!(w.try_append_event(Arc::new(alert.event.clone())));
    assert!(w.try_append_alert(alert.clone()));
    w.close().unwrap();
    let back: Vec<rampart_recorder::Record> = rec
        .query(&rampart_recorder::Query::new())
        .unwrap()
        .collect();
    assert_eq!(back.len(), 2, "{back:?}");
    assert!(back
        .iter()
        .any(|r| matches!(r, rampart_recorder::Record::Event(e) if *e == alert.event)));
    assert!(back
        .iter()
        .any(|r| matches!(r, rampart_recorder::Record::Alert(a) if **a == alert)));
    // Selected by kind and by the request's fields.
    let rules = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    let q = rampart_recorder::Query::new()
        .kinds(vec![rampart_event::EventKind::Admission])
        .records(rampart_recorder::RecordTypes {
            events: true,
            alerts: false,
            lifecycle: false,
        })
        .with_where(
            "ka.target.name = miner and admission.decision = deny",
            &[&rules],
        )
        .unwrap();
    let found: Vec<_> = rec.query(&q).unwrap().collect();
    assert_eq!(found.len(), 1, "{found:?}");
}
