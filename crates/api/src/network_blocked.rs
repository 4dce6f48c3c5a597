//! Blocked edges in `GetNetworkGraph`: a connection the kernel refused (protect mode)
//! never becomes a flow, so the flow table cannot show it; the netflow stage raises a
//! "Network edge blocked" alert for each refusal (aggregated, with a count), naming the
//! workload, the peer, the protocol and the port. Those alerts, from the store, mark
//! the graph's edges blocked with the number of refusals, and add the edges that
//! carried no traffic at all.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_proto::v1 as pb;
use rampart_store::{AlertQuery, Store};

/// The rule the netflow stage raises for each refused connection.
pub const BLOCKED_RULE: &str = "Network edge blocked";
/// At most this many blocked-edge alerts are read per graph (pages of the store's
/// maximum); past it the counts are a lower bound.
const MAX_ALERTS: usize = 20_000;

/// One blocked edge: source, target, protocol, port.
type EdgeKey = (String, String, String, u32);
type Fields = std::collections::BTreeMap<String, serde_json::Value>;

/// The edge an alert names, source first. The message says the direction: `A → B`
/// with A the workload for an outbound refusal, the peer for an inbound one.
fn edge_of(message: &str, fields: &Fields) -> Option<EdgeKey> {
    let workload = fields.get("net.workload")?.as_str()?.to_string();
    let peer = fields.get("net.peer")?.as_str()?.to_string();
    let proto = fields.get("net.proto")?.as_str()?.to_string();
    let port = u32::try_from(fields.get("net.port")?.as_u64()?).ok()?;
    if workload.is_empty() || peer.is_empty() {
        return None;
    }
    let arrow = format!("{peer} → {workload} ");
    let inbound = message.contains(&arrow);
    Some(if inbound {
        (peer, workload, proto, port)
    } else {
        (workload, peer, proto, port)
    })
}

/// Refusals per edge since `since_ns`, with the last refusal's time.
pub fn blocked_edges(
    store: &Arc<dyn Store>,
    since_ns: u64,
) -> Result<HashMap<EdgeKey, (u64, u64)>, rampart_store::StoreError> {
    let mut out: HashMap<EdgeKey, (u64, u64)> = HashMap::new();
    let mut q = AlertQuery {
        rule: Some(BLOCKED_RULE.into()),
        since_ns: (since_ns > 0).then_some(since_ns),
        limit: rampart_store::MAX_PAGE,
        ..AlertQuery::default()
    };
    let mut read = 0;
    loop {
        let page = store.query_alerts(&q)?;
        read += page.alerts.len();
        for s in &page.alerts {
            if let Some(key) = edge_of(&s.alert.message, &s.alert.output_fields) {
                let e = out.entry(key).or_default();
                e.0 += s.alert.count.max(1);
                e.1 = e.1.max(s.alert.ts_ns);
            }
        }
        match page.next {
            Some(next) if read < MAX_ALERTS => q.after = Some(next),
            _ => break,
        }
    }
    Ok(out)
}

fn namespace_of(id: &str) -> String {
    id.strip_prefix("k8s:")
        .and_then(|r| r.split_once('/'))
        .map(|(ns, _)| ns.to_string())
        .unwrap_or_default()
}

/// Marks `g`'s edges blocked from `blocked` and adds those it lacks (and their ends),
/// keeping to `namespace` when one is asked.
pub fn merge(
    g: &mut pb::GetNetworkGraphResponse,
    blocked: HashMap<EdgeKey, (u64, u64)>,
    namespace: &str,
) {
    let node = g.nodes.first().map(|n| n.node.clone()).unwrap_or_default();
    for ((source, target, protocol, port), (count, last)) in blocked {
        if !namespace.is_empty()
            && namespace_of(&source) != namespace
            && namespace_of(&target) != namespace
        {
            continue;
        }
        if let Some(e) = g.edges.iter_mut().find(|e| {
            e.source == source && e.target == target && e.protocol == protocol && e.port == port
        }) {
            e.blocked = true;
            e.anomalous = true;
            e.blocked_connections += count;
            e.last_seen_ns = e.last_seen_ns.max(last);
            continue;
        }
        for id in [&source, &target] {
            if !g.nodes.iter().any(|n| &n.id == id) {
                g.nodes.push(pb::GraphNode {
                    id: id.clone(),
                    label: id.split_once(':').map(|(_, r)| r).unwrap_or(id).to_string(),
                    node: node.clone(),
                    namespace: namespace_of(id),
                });
            }
        }
        g.edges.push(pb::GraphEdge {
            source,
            target,
            protocol,
            port,
            connections: 0,
            bytes: 0,
            last_seen_ns: last,
            anomalous: true,
            blocked: true,
            blocked_connections: count,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(workload: &str, peer: &str) -> Fields {
        [
            ("net.workload", serde_json::json!(workload)),
            ("net.peer", serde_json::json!(peer)),
            ("net.proto", serde_json::json!("tcp")),
            ("net.port", serde_json::json!(8080)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn the_message_says_which_end_is_the_source() {
        let out = edge_of(
            "network edge blocked in the kernel (outside the baseline, protect mode): label:c → label:a tcp/8080 (172.17.0.2:8080) by process wget[7]",
            &fields("label:c", "label:a"),
        );
        let want = Some(("label:c".into(), "label:a".into(), "tcp".into(), 8080));
        assert_eq!(out, want);
        let inb = edge_of(
            "network edge blocked in the kernel (outside the baseline, protect mode): label:c → label:a tcp/8080 (172.17.0.9:41000) by process unknown",
            &fields("label:a", "label:c"),
        );
        assert_eq!(inb, want);
        assert_eq!(edge_of("x", &Fields::new()), None);

        // An edge the flow table has is marked; one it lacks is added with its ends.
        let mut g = pb::GetNetworkGraphResponse {
            edges: vec![pb::GraphEdge {
                source: "label:c".into(),
                target: "label:a".into(),
                protocol: "tcp".into(),
                port: 8080,
                connections: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut m = HashMap::new();
        m.insert(want.clone().unwrap(), (3, 10));
        m.insert(
            ("label:d".into(), "label:a".into(), "tcp".into(), 80),
            (1, 11),
        );
        merge(&mut g, m, "");
        assert!(g.edges[0].blocked && g.edges[0].anomalous);
        assert_eq!(
            (g.edges[0].blocked_connections, g.edges[0].connections),
            (3, 2)
        );
        assert_eq!(g.edges.len(), 2);
        assert!(g.edges[1].blocked && g.edges[1].blocked_connections == 1);
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["label:d", "label:a"]);
        // Another namespace's edges stay out.
        let mut g = pb::GetNetworkGraphResponse::default();
        let mut m = HashMap::new();
        m.insert(
            ("k8s:a/x".into(), "k8s:a/y".into(), "tcp".into(), 80),
            (1, 1),
        );
        merge(&mut g, m, "b");
        assert!(g.edges.is_empty());
    }
}
