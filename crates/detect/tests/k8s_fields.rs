//! The Kubernetes fields on an event of a pod's container: pod, namespace, node,
//! workload (and Falco's per-owner names) and the pod's labels.

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_event::{Container, Event, KubernetesIdentity, OpenAccess, Payload, Workload};

fn event(k8s: Option<KubernetesIdentity>) -> Event {
    Event {
        schema: rampart_event::SCHEMA_VERSION,
        ts_ns: 1,
        host: "n".into(),
        seq: 1,
        process: None,
        container: Arc::new(Workload::Container(Container {
            id: "c".repeat(64),
            runtime: "containerd".into(),
            k8s,
            metadata_complete: true,
            ..Default::default()
        })),
        compat_syscall: false,
        payload: Payload::FileOpen {
            path: "/etc/shadow".into(),
            path_raw: None,
            flags: 0,
            mode: 0,
            access: OpenAccess {
                read: true,
                ..Default::default()
            },
            ret: 3,
            repeats: 0,
        },
    }
}

#[test]
fn kubernetes_fields_name_the_pod_its_workload_node_and_labels() {
    let rule = |name: &str, cond: &str| {
        format!("- rule: {name}\n  desc: d\n  condition: evt.type = open and {cond}\n  output: o\n  priority: WARNING\n")
    };
    let text = [
        rule(
            "deployment",
            "k8s.deployment.name = web and k8s.workload.kind = Deployment",
        ),
        rule(
            "pod",
            "k8s.pod.name = web-7d4b9c8f5-x2x9k and k8s.ns.name = shop",
        ),
        rule("node", "k8s.node.name = node-a"),
        rule(
            "labels",
            "k8s.pod.labels contains \"app:web\" and k8s.pod.label[tier] = front",
        ),
        rule("statefulset", "k8s.statefulset.name = web"),
        rule("service account", "k8s.sa.name = web-sa"),
    ]
    .concat();
    let (set, errors) = rampart_detect::loader::load_texts(&[("k8s.yaml".into(), text)]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut k = KubernetesIdentity {
        namespace: "shop".into(),
        pod: "web-7d4b9c8f5-x2x9k".into(),
        container: "app".into(),
        node: "node-a".into(),
        service_account: "web-sa".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("tier".to_string(), "front".to_string()),
            ("pod-template-hash".to_string(), "7d4b9c8f5".to_string()),
        ]),
        ..Default::default()
    };
    k.fill_workload(&k.labels.clone());
    let mut hits = set.matching_rules(&event(Some(k)));
    hits.sort();
    assert_eq!(
        hits,
        vec!["deployment", "labels", "node", "pod", "service account"]
    );
    assert!(
        set.matching_rules(&event(None)).is_empty(),
        "no pod, no match"
    );
}

/// Every alert on a pod's event carries the pod's identity in its output fields,
/// service account included, whatever the rule's output names; the host's alerts get
/// none, and a field the template rendered keeps its rendering.
#[test]
fn alerts_of_a_pod_carry_its_identity() {
    let text = "- rule: shadow\n  desc: d\n  condition: evt.type = open\n  output: \"read by %proc.name ns=%k8s.ns.name\"\n  priority: WARNING\n";
    let (set, errors) = rampart_detect::loader::load_texts(&[("k8s.yaml".into(), text.into())]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut k = KubernetesIdentity {
        namespace: "shop".into(),
        pod: "web-7d4b9c8f5-x2x9k".into(),
        container: "app".into(),
        node: "node-a".into(),
        service_account: "web-sa".into(),
        labels: BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("pod-template-hash".to_string(), "7d4b9c8f5".to_string()),
        ]),
        ..Default::default()
    };
    k.fill_workload(&k.labels.clone());
    let ev = event(Some(k));
    let rule = &set.rules()[0];
    let alert = rule.alert(&rampart_detect::fields::EvalCtx::new(&ev), "a1".into());
    let f = &alert.output_fields;
    assert_eq!(f["k8s.sa.name"], "web-sa");
    assert_eq!(f["k8s.pod.name"], "web-7d4b9c8f5-x2x9k");
    assert_eq!(f["k8s.workload.kind"], "Deployment");
    assert_eq!(f["k8s.workload.name"], "web");
    assert_eq!(f["k8s.node.name"], "node-a");
    assert_eq!(f["k8s.pod.labels"], "app:web, pod-template-hash:7d4b9c8f5");
    assert_eq!(f["k8s.ns.name"], "shop");
    assert_eq!(alert.message, "read by <NA> ns=shop");
    let host = event(None);
    let alert = rule.alert(&rampart_detect::fields::EvalCtx::new(&host), "a2".into());
    assert!(!alert.output_fields.contains_key("k8s.sa.name"));
}
