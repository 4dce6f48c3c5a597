//! The network a locked baseline holds as normal, in the shape kernel enforcement takes:
//! protect mode turns a workload's learned edges into an allow list that the node's
//! stage puts in force through the network part's segmentation (connects outside it
//! fail in the kernel). This crate only reads its own item keys back; it knows nothing
//! of the kernel.
//!
//! - `out tcp 10.0.0.5:5432` (a connect) allows connects to that address and port;
//! - `in tcp :8080` (an accept) and `listen tcp :8080` allow connections to that port
//!   of the container from any address (learning keeps no peer for them);
//! - a DNS name is normal, so the addresses a protected container resolves it to are
//!   allowed on the ports (and protocols) of the workload's learned outbound edges.
//!
//! Only items held as normal count (at least medium confidence, as for executables): an
//! edge seen by one replica of several, or forbidden by an operator, is refused.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::engine::Reason;
use crate::model::{Baseline, Confidence, ItemKind, Origin};

/// IP protocol numbers, as the kernel names them.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Which way an allowed edge goes, from the workload's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeDirection {
    /// Connections the container opens.
    Outbound,
    /// Connections to the container.
    Inbound,
}

/// One edge a protected workload may take.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllowedEdge {
    pub direction: EdgeDirection,
    /// [`TCP`] or [`UDP`].
    pub proto: u8,
    /// The peer (outbound) or `None`: any address.
    pub addr: Option<IpAddr>,
    /// The peer's port (outbound) or the container's (inbound).
    pub port: u16,
}

/// A workload's normal network: its edges and the DNS names it resolves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkAllow {
    pub edges: BTreeSet<AllowedEdge>,
    pub dns_names: BTreeSet<String>,
}

impl NetworkAllow {
    /// What `b` holds as normal (items of at least medium confidence, given
    /// `min_observations`).
    pub fn of(b: &Baseline, min_observations: u64) -> Self {
        let normal = |kind: ItemKind| {
            b.items
                .get(&kind)
                .into_iter()
                .flatten()
                .filter(move |(_, item)| b.confidence(item, min_observations) >= Confidence::Medium)
        };
        let edges = normal(ItemKind::Network)
            .filter_map(|(key, _)| parse_edge(key))
            .collect();
        let dns_names = normal(ItemKind::Dns)
            .map(|(key, _)| key.trim_end_matches('.').to_string())
            .collect();
        Self { edges, dns_names }
    }

    /// The edges a resolved address of a normal DNS name is allowed: one per
    /// (protocol, port) of the learned outbound edges to other hosts.
    pub fn edges_for_resolved(&self, addr: IpAddr) -> Vec<AllowedEdge> {
        let ports: BTreeSet<(u8, u16)> = self
            .edges
            .iter()
            // Loopback peers (a local resolver) say nothing of a name's service.
            .filter(|e| {
                e.direction == EdgeDirection::Outbound && e.addr.is_some_and(|a| !a.is_loopback())
            })
            .map(|e| (e.proto, e.port))
            .collect();
        ports
            .into_iter()
            .map(|(proto, port)| AllowedEdge {
                direction: EdgeDirection::Outbound,
                proto,
                addr: Some(addr),
                port,
            })
            .collect()
    }
}

impl AllowedEdge {
    /// The network item's key this edge is learned as (`out tcp 10.0.0.5:5432`,
    /// `in tcp :8080`).
    pub fn key(&self) -> String {
        let proto = match self.proto {
            TCP => "tcp",
            UDP => "udp",
            _ => "other",
        };
        match (self.direction, self.addr) {
            (EdgeDirection::Outbound, Some(ip)) => format!("out {proto} {ip}:{}", self.port),
            (EdgeDirection::Outbound, None) => format!("out {proto} :{}", self.port),
            (EdgeDirection::Inbound, _) => format!("in {proto} :{}", self.port),
        }
    }
}

/// Why an edge a protected workload took is outside its baseline (as a deviation
/// alert words it): forbidden, learned from one replica of several, or never seen.
pub fn reason_outside(b: &Baseline, edge: &AllowedEdge, min_observations: u64) -> Reason {
    match b.item(ItemKind::Network, &edge.key()) {
        Some(item) if item.origin == Origin::Forbidden => Reason::Forbidden,
        Some(item) if b.confidence(item, min_observations) < Confidence::Medium => {
            Reason::OneReplica
        }
        // Known and trusted, yet refused: learned after protect began (the allow list
        // follows the next baseline update), or an inbound edge from a peer.
        Some(_) | None => Reason::New,
    }
}

/// A network item's key (`out tcp 10.0.0.5:5432`, `in tcp :8080`,
/// `listen udp :53`) as an edge; `None` for other protocols and keys it does not read.
pub fn parse_edge(key: &str) -> Option<AllowedEdge> {
    let mut parts = key.splitn(3, ' ');
    let (verb, proto, addr) = (parts.next()?, parts.next()?, parts.next()?);
    let proto = match proto {
        "tcp" => TCP,
        "udp" => UDP,
        _ => return None,
    };
    // The port is always last (an IPv6 address has colons of its own).
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match verb {
        "out" => Some(AllowedEdge {
            direction: EdgeDirection::Outbound,
            proto,
            addr: Some(host.trim_matches(['[', ']']).parse().ok()?),
            port,
        }),
        "in" | "listen" if host.is_empty() => Some(AllowedEdge {
            direction: EdgeDirection::Inbound,
            proto,
            addr: None,
            port,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;

    fn baseline(items: &[(ItemKind, &str, u64, &[&str], Origin)], replicas: &[&str]) -> Baseline {
        let mut b = Baseline::new("compose:shop/client", 0);
        b.replicas = replicas.iter().map(|r| r.to_string()).collect();
        for (kind, key, count, seen_by, origin) in items {
            let mut item = Item::new(0, *origin);
            item.count = *count;
            item.replicas = seen_by.iter().map(|r| r.to_string()).collect();
            b.items
                .entry(*kind)
                .or_default()
                .insert(key.to_string(), item);
        }
        b
    }

    #[test]
    fn learned_edges_and_names_become_the_allow_list_and_untrusted_ones_do_not() {
        let both: &[&str] = &["aaa", "bbb"];
        let b = baseline(
            &[
                (
                    ItemKind::Network,
                    "out tcp 10.0.0.5:5432",
                    9,
                    both,
                    Origin::Learned,
                ),
                (
                    ItemKind::Network,
                    "out udp fd00::1:53",
                    9,
                    both,
                    Origin::Learned,
                ),
                (ItemKind::Network, "in tcp :8080", 9, both, Origin::Learned),
                (
                    ItemKind::Network,
                    "out udp 127.0.0.11:53",
                    9,
                    both,
                    Origin::Learned,
                ),
                (
                    ItemKind::Network,
                    "listen tcp :9090",
                    1,
                    both,
                    Origin::Learned,
                ),
                // One replica of two: a compromise during learning stays refused.
                (
                    ItemKind::Network,
                    "out tcp 6.6.6.6:4444",
                    9,
                    &["aaa"],
                    Origin::Learned,
                ),
                (
                    ItemKind::Network,
                    "out tcp 10.0.0.9:22",
                    9,
                    both,
                    Origin::Forbidden,
                ),
                (ItemKind::Network, "out unix :0", 9, both, Origin::Learned),
                (ItemKind::Dns, "api.example.com", 9, both, Origin::Learned),
                (ItemKind::Dns, "evil.example", 9, &["bbb"], Origin::Learned),
            ],
            both,
        );
        let allow = NetworkAllow::of(&b, 3);
        let out = |a: &str, port, proto| AllowedEdge {
            direction: EdgeDirection::Outbound,
            proto,
            addr: Some(a.parse().unwrap()),
            port,
        };
        let inbound = |port| AllowedEdge {
            direction: EdgeDirection::Inbound,
            proto: TCP,
            addr: None,
            port,
        };
        assert_eq!(
            allow.edges,
            BTreeSet::from([
                out("10.0.0.5", 5432, TCP),
                out("fd00::1", 53, UDP),
                out("127.0.0.11", 53, UDP),
                inbound(8080),
                inbound(9090),
            ])
        );
        assert_eq!(
            allow.dns_names,
            BTreeSet::from(["api.example.com".to_string()])
        );
        let resolved: IpAddr = "93.184.216.34".parse().unwrap();
        assert_eq!(
            allow.edges_for_resolved(resolved),
            vec![
                out("93.184.216.34", 5432, TCP),
                out("93.184.216.34", 53, UDP),
            ]
        );
    }

    #[test]
    fn an_edge_names_its_item_and_why_it_is_outside() {
        let edge = parse_edge("out tcp 10.0.0.9:22").unwrap();
        assert_eq!(edge.key(), "out tcp 10.0.0.9:22");
        assert_eq!(parse_edge("in udp :53").unwrap().key(), "in udp :53");
        assert_eq!(parse_edge("listen tcp :80").unwrap().key(), "in tcp :80");
        let both: &[&str] = &["aaa", "bbb"];
        let b = baseline(
            &[
                (
                    ItemKind::Network,
                    "out tcp 10.0.0.9:22",
                    9,
                    both,
                    Origin::Forbidden,
                ),
                (
                    ItemKind::Network,
                    "out tcp 6.6.6.6:4444",
                    9,
                    &["aaa"],
                    Origin::Learned,
                ),
            ],
            both,
        );
        assert_eq!(reason_outside(&b, &edge, 3), Reason::Forbidden);
        let one = parse_edge("out tcp 6.6.6.6:4444").unwrap();
        assert_eq!(reason_outside(&b, &one, 3), Reason::OneReplica);
        let new = parse_edge("out tcp 1.1.1.1:443").unwrap();
        assert_eq!(reason_outside(&b, &new, 3), Reason::New);
    }

    #[test]
    fn keys_it_cannot_read_are_no_edge() {
        for key in [
            "out tcp 10.0.0.5",
            "out tcp :80",
            "in tcp 10.0.0.1:80",
            "sideways tcp :1",
            "out tcp nonsense:80",
            "out tcp 10.0.0.5:99999",
        ] {
            assert_eq!(parse_edge(key), None, "{key}");
        }
        assert_eq!(
            parse_edge("out tcp [fd00::2]:443").and_then(|e| e.addr),
            Some("fd00::2".parse().unwrap())
        );
    }
}
