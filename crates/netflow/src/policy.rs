//! Kubernetes NetworkPolicy from the learned graph, one per workload, and simulation:
//! given policy YAML, which observed flows it would block.
//!
//! Pods are selected by `app.kubernetes.io/name: <workload name>` (the last part of
//! the workload key: `k8s:shop/web` → `web`), in the workload's namespace (`default`
//! outside Kubernetes). Peers that are workloads become pod selectors (with a
//! namespace selector across namespaces); the host and external endpoints become
//! `ipBlock`s: the network of a `cidr:` node, the addresses seen for a DNS name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::flow::{Flow, Proto};
use crate::graph::{edge_ends, peer_node, Graph};
use crate::NetflowError;

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const NAMESPACE_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PolicySpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(default)]
    pub pod_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Peer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Peer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PolicyPort>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelectorOrd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelectorOrd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// A label selector that sorts (peers are kept in sets).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorOrd {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    #[serde(default = "tcp")]
    pub protocol: String,
    /// A number, or a name (a named port matches nothing in simulation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortValue {
    Number(u32),
    Name(String),
}

fn tcp() -> String {
    "TCP".into()
}

/// (namespace, name) of a workload key.
pub fn workload_identity(workload: &str) -> (String, String) {
    let (kind, rest) = workload.split_once(':').unwrap_or(("", workload));
    let (ns, name) = match kind {
        "k8s" => rest.split_once('/').unwrap_or(("default", rest)),
        _ => ("default", rest.rsplit('/').next().unwrap_or(rest)),
    };
    (ns.to_string(), dns_label(name))
}

/// A string made a valid label value / DNS label (lowercase alphanumerics and `-`,
/// at most 63).
fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(63);
    let t = out.trim_matches('-').to_string();
    if t.is_empty() {
        "workload".into()
    } else {
        t
    }
}

fn host_cidr(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

fn proto_name(p: Proto) -> String {
    match p {
        Proto::Tcp => "TCP".into(),
        Proto::Udp => "UDP".into(),
        Proto::Other(132) => "SCTP".into(),
        Proto::Other(_) => "TCP".into(),
    }
}

/// The peers a graph node stands for, from the point of view of namespace `ns`.
fn peers_of(node: &str, ns: &str, addresses: &BTreeMap<String, BTreeSet<IpAddr>>) -> Vec<Peer> {
    if let Some(cidr) = node.strip_prefix("cidr:") {
        return vec![Peer {
            ip_block: Some(IpBlock {
                cidr: cidr.to_string(),
                except: Vec::new(),
            }),
            ..Default::default()
        }];
    }
    if node == "host" || node.starts_with("dns:") {
        return addresses
            .get(node)
            .into_iter()
            .flatten()
            .map(|ip| Peer {
                ip_block: Some(IpBlock {
                    cidr: host_cidr(ip),
                    except: Vec::new(),
                }),
                ..Default::default()
            })
            .collect();
    }
    let (pns, name) = workload_identity(node);
    vec![Peer {
        pod_selector: Some(LabelSelectorOrd {
            match_labels: BTreeMap::from([(NAME_LABEL.to_string(), name)]),
        }),
        namespace_selector: (pns != ns).then(|| LabelSelectorOrd {
            match_labels: BTreeMap::from([(NAMESPACE_LABEL.to_string(), pns)]),
        }),
        ip_block: None,
    }]
}

/// One NetworkPolicy per workload node of the graph: ingress from the peers that
/// reached it, egress to the peers it reached, each with the ports seen. `flows`
/// give the addresses of external and host peers.
pub fn generate<'a>(
    graph: &Graph,
    flows: impl IntoIterator<Item = &'a Flow>,
) -> Vec<NetworkPolicy> {
    let mut addresses: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for f in flows {
        if let Some((id, _, _)) = peer_node(f) {
            if id == "host" || id.starts_with("dns:") {
                addresses.entry(id).or_default().insert(f.remote_ip);
            }
        }
    }
    let workloads: BTreeSet<&str> = graph
        .nodes
        .iter()
        .filter(|n| n.kind == crate::graph::NodeKind::Workload)
        .map(|n| n.id.as_str())
        .collect();
    let mut out = Vec::new();
    for w in workloads {
        let (ns, name) = workload_identity(w);
        // peer node → ports, per direction.
        let mut ingress: BTreeMap<&str, BTreeSet<PolicyPort>> = BTreeMap::new();
        let mut egress: BTreeMap<&str, BTreeSet<PolicyPort>> = BTreeMap::new();
        for e in &graph.edges {
            let port = PolicyPort {
                protocol: proto_name(e.protocol),
                port: Some(PortValue::Number(u32::from(e.port))),
                end_port: None,
            };
            if e.target == w {
                ingress.entry(&e.source).or_default().insert(port.clone());
            }
            if e.source == w {
                egress.entry(&e.target).or_default().insert(port);
            }
        }
        let ingress = ingress
            .into_iter()
            .map(|(peer, ports)| IngressRule {
                from: peers_of(peer, &ns, &addresses),
                ports: ports.into_iter().collect(),
            })
            .filter(|r| !r.from.is_empty())
            .collect();
        let egress = egress
            .into_iter()
            .map(|(peer, ports)| EgressRule {
                to: peers_of(peer, &ns, &addresses),
                ports: ports.into_iter().collect(),
            })
            .filter(|r| !r.to.is_empty())
            .collect();
        out.push(NetworkPolicy {
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            metadata: Metadata {
                name: format!("{name}-rampart"),
                namespace: ns,
                labels: BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "rampart".to_string(),
                )]),
            },
            spec: PolicySpec {
                pod_selector: LabelSelector {
                    match_labels: BTreeMap::from([(NAME_LABEL.to_string(), name)]),
                },
                policy_types: vec!["Ingress".into(), "Egress".into()],
                ingress,
                egress,
            },
        });
    }
    out
}

/// The policies as one multi-document YAML stream.
pub fn to_yaml(policies: &[NetworkPolicy]) -> Result<String, NetflowError> {
    let mut out = String::new();
    for p in policies {
        out.push_str("---\n");
        out.push_str(&yaml_serde::to_string(p).map_err(|e| NetflowError::Parse {
            what: "NetworkPolicy".into(),
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// Reads NetworkPolicy documents (other kinds are skipped); errors carry the file,
/// line and column.
pub fn parse_policies(yaml: &str, origin: &str) -> Result<Vec<NetworkPolicy>, NetflowError> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(yaml) {
        let v = yaml_serde::Value::deserialize(doc).map_err(|e| located(origin, &e))?;
        if v.get("kind").and_then(|k| k.as_str()) != Some("NetworkPolicy") {
            continue;
        }
        let p: NetworkPolicy = yaml_serde::from_value(v).map_err(|e| NetflowError::Parse {
            what: origin.to_string(),
            reason: format!("{e} (expected a networking.k8s.io/v1 NetworkPolicy)"),
        })?;
        out.push(p);
    }
    Ok(out)
}

fn located(origin: &str, e: &yaml_serde::Error) -> NetflowError {
    let at = e
        .location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default();
    NetflowError::Parse {
        what: format!("{origin}{at}"),
        reason: e.to_string(),
    }
}

/// A flow the policies would block, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocked {
    pub source: String,
    pub target: String,
    pub protocol: Proto,
    pub port: u16,
    pub remote: String,
    /// The policies that select the blocking side.
    pub policies: Vec<String>,
    /// `egress` (the source's policy) or `ingress` (the target's).
    pub side: &'static str,
}

fn selects(sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn labels_of(workload: &str) -> (String, BTreeMap<String, String>) {
    let (ns, name) = workload_identity(workload);
    (ns, BTreeMap::from([(NAME_LABEL.to_string(), name)]))
}

fn cidr_contains(cidr: &str, ip: &IpAddr) -> bool {
    let Some((net, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len)) = (net.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(*a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(*a) & mask
        }
        _ => false,
    }
}

fn peer_matches(p: &Peer, own_ns: &str, other: Option<&str>, ip: &IpAddr) -> bool {
    if let Some(b) = &p.ip_block {
        return cidr_contains(&b.cidr, ip) && !b.except.iter().any(|e| cidr_contains(e, ip));
    }
    let Some(w) = other else { return false };
    if w == "host" || w.starts_with("dns:") || w.starts_with("cidr:") {
        return false;
    }
    let (ns, labels) = labels_of(w);
    let ns_ok = match &p.namespace_selector {
        Some(s) => selects(
            &s.match_labels,
            &BTreeMap::from([(NAMESPACE_LABEL.to_string(), ns.clone())]),
        ),
        None => ns == own_ns,
    };
    let pod_ok = p
        .pod_selector
        .as_ref()
        .is_none_or(|s| selects(&s.match_labels, &labels));
    ns_ok && pod_ok
}

fn port_matches(ports: &[PolicyPort], proto: Proto, port: u16) -> bool {
    ports.is_empty()
        || ports.iter().any(|p| {
            p.protocol.eq_ignore_ascii_case(&proto_name(proto))
                && match &p.port {
                    None => true,
                    Some(PortValue::Name(_)) => false,
                    Some(PortValue::Number(n)) => {
                        let end = p.end_port.unwrap_or(*n);
                        (*n..=end).contains(&u32::from(port))
                    }
                }
        })
}

/// Which observed flows `policies` would block (Kubernetes semantics: a pod selected
/// by any policy of a direction's type allows only what one of them allows).
pub fn simulate<'a>(
    policies: &[NetworkPolicy],
    flows: impl IntoIterator<Item = &'a Flow>,
) -> Vec<Blocked> {
    let mut out: BTreeMap<(String, String, Proto, u16, &'static str), Blocked> = BTreeMap::new();
    for f in flows {
        let Some((source, target, port)) = edge_ends(f) else {
            continue;
        };
        let remote_ip = f.remote_ip;
        // Egress: the source's policies (when the source is a workload of ours).
        let checks: [(&str, &str, &'static str, &str); 2] = [
            (source.as_str(), target.as_str(), "egress", "Egress"),
            (target.as_str(), source.as_str(), "ingress", "Ingress"),
        ];
        for (own, other, side, ptype) in checks {
            if own == "host" || own.starts_with("dns:") || own.starts_with("cidr:") {
                continue;
            }
            let (ns, labels) = labels_of(own);
            let selecting: Vec<&NetworkPolicy> = policies
                .iter()
                .filter(|p| {
                    (p.metadata.namespace.is_empty() || p.metadata.namespace == ns)
                        && selects(&p.spec.pod_selector.match_labels, &labels)
                        && (p.spec.policy_types.iter().any(|t| t == ptype)
                            || (p.spec.policy_types.is_empty() && ptype == "Ingress"))
                })
                .collect();
            if selecting.is_empty() {
                continue;
            }
            let other_ip = remote_ip;
            let allowed = selecting.iter().any(|p| {
                if side == "egress" {
                    p.spec.egress.iter().any(|r| {
                        (r.to.is_empty()
                            || r.to
                                .iter()
                                .any(|peer| peer_matches(peer, &ns, Some(other), &other_ip)))
                            && port_matches(&r.ports, f.proto, port)
                    })
                } else {
                    p.spec.ingress.iter().any(|r| {
                        (r.from.is_empty()
                            || r.from
                                .iter()
                                .any(|peer| peer_matches(peer, &ns, Some(other), &other_ip)))
                            && port_matches(&r.ports, f.proto, port)
                    })
                }
            });
            if !allowed {
                out.entry((source.clone(), target.clone(), f.proto, port, side))
                    .or_insert_with(|| Blocked {
                        source: source.clone(),
                        target: target.clone(),
                        protocol: f.proto,
                        port,
                        remote: format!("{}:{}", f.remote_ip, f.remote_port),
                        policies: selecting
                            .iter()
                            .map(|p| format!("{}/{}", p.metadata.namespace, p.metadata.name))
                            .collect(),
                        side,
                    });
            }
        }
    }
    out.into_values().collect()
}
