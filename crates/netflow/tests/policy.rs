//! NetworkPolicy generation checked against the Kubernetes v1.33 JSON schema of
//! networking.k8s.io/v1 NetworkPolicy (tests/fixtures, strict: unknown fields fail),
//! and simulation of policies over observed flows.

use rampart_netflow::flow::{Direction, Flow, Peer, Proto};
use rampart_netflow::graph::{self, GraphQuery};
use rampart_netflow::policy::{self, generate, parse_policies, simulate};
use rampart_netflow::EdgeState;

fn schema() -> jsonschema::Validator {
    let text = include_str!("fixtures/networkpolicy-networking-v1.schema.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    jsonschema::validator_for(&v).unwrap()
}

fn flow(workload: &str, peer: Peer, remote: &str, port: u16, dir: Direction) -> Flow {
    Flow {
        cgroup_id: 1,
        container_id: format!("{workload}-1"),
        workload: workload.into(),
        proto: Proto::Tcp,
        local_ip: "10.1.0.5".parse().unwrap(),
        local_port: if dir == Direction::Inbound {
            port
        } else {
            40000
        },
        remote_ip: remote.parse().unwrap(),
        remote_port: if dir == Direction::Inbound {
            40001
        } else {
            port
        },
        direction: dir,
        bytes_out: 100,
        packets_out: 2,
        bytes_in: 200,
        packets_in: 2,
        first_ns: 1,
        last_ns: 2,
        tcp_flags_out: 0x12,
        tcp_flags_in: 0x12,
        peer,
        process: None,
        tls: None,
    }
}

fn container(workload: &str) -> Peer {
    Peer::Container {
        id: "x".into(),
        name: "x".into(),
        image: "x".into(),
        workload: workload.into(),
    }
}

fn observed() -> Vec<Flow> {
    vec![
        flow(
            "k8s:shop/web",
            container("k8s:shop/db"),
            "10.1.0.9",
            5432,
            Direction::Outbound,
        ),
        flow(
            "k8s:shop/web",
            container("k8s:ops/metrics"),
            "10.2.0.3",
            9090,
            Direction::Outbound,
        ),
        flow(
            "k8s:shop/web",
            Peer::External {
                dns_name: Some("api.stripe.com".into()),
            },
            "203.0.113.7",
            443,
            Direction::Outbound,
        ),
        flow(
            "k8s:shop/web",
            Peer::External { dns_name: None },
            "198.51.100.20",
            80,
            Direction::Inbound,
        ),
        flow(
            "compose:tools/cron",
            Peer::Host,
            "172.17.0.1",
            8125,
            Direction::Outbound,
        ),
    ]
}

#[test]
fn generated_policies_pass_the_kubernetes_schema_and_allow_what_was_observed() {
    let flows = observed();
    let g = graph::build(&flows, &GraphQuery::default(), |_| EdgeState::Unlearned);
    let policies = generate(&g, &flows);
    let names: Vec<_> = policies.iter().map(|p| p.metadata.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cron-rampart",
            "metrics-rampart",
            "db-rampart",
            "web-rampart"
        ]
    );
    let yaml = policy::to_yaml(&policies).unwrap();
    let validator = schema();
    for doc in yaml.split("---\n").filter(|d| !d.trim().is_empty()) {
        let v: serde_json::Value = yaml_serde::from_str(doc).unwrap();
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{doc}\n{errors:?}");
    }
    let web = policies
        .iter()
        .find(|p| p.metadata.name == "web-rampart")
        .unwrap();
    assert_eq!(web.metadata.namespace, "shop");
    let egress = serde_json::to_string(&web.spec.egress).unwrap();
    assert!(egress.contains(r#""cidr":"203.0.113.7/32""#), "{egress}");
    assert!(
        egress.contains(r#""kubernetes.io/metadata.name":"ops""#),
        "{egress}"
    );
    let ingress = serde_json::to_string(&web.spec.ingress).unwrap();
    assert!(ingress.contains("198.51.100.0/24"), "{ingress}");

    // The policies block none of what they were made from, and a new edge.
    let reread = parse_policies(&yaml, "policies.yaml").unwrap();
    assert_eq!(reread, policies);
    assert_eq!(simulate(&reread, &flows), vec![]);
    let mut more = flows.clone();
    more.push(flow(
        "k8s:shop/web",
        container("k8s:shop/db"),
        "10.1.0.9",
        22,
        Direction::Outbound,
    ));
    let blocked = simulate(&reread, &more);
    assert!(
        blocked
            .iter()
            .any(|b| b.source == "k8s:shop/web" && b.target == "k8s:shop/db" && b.port == 22),
        "{blocked:?}"
    );
}

#[test]
fn the_schema_check_rejects_a_malformed_policy() {
    let bad = serde_json::json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "x"},
        "spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"except": []}}], "ports": [{"port": {"n": 1}}]}], "bogus": 1}
    });
    assert!(!schema().is_valid(&bad));
    let err = parse_policies("kind: NetworkPolicy\nspec: [\n", "p.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("p.yaml:"), "{err}");
}
