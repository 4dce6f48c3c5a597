//! The fleet's view of a workload: the baselines several nodes learned for it, merged
//! into one (the union of their items), each item with what every node saw of it (its
//! count and how many of that node's replicas saw it). For the central service, which
//! receives each node's baseline; and its [`FleetBaseline::to_baseline`] is one profile
//! that can be imported on every node (`rampart baseline import`), so a workload spread
//! over nodes is judged alike everywhere.
//!
//! Trust carries over from the nodes and across them: an item an operator forbade on any
//! node stays forbidden; one allowed by an operator (and forbidden nowhere) is allowed;
//! a binary that was not in the image on any node is never normal; and an item seen on
//! one node only, while the workload ran on several, is held with low confidence, as an
//! item seen by one replica of several is on a node: a compromise of one node during
//! learning does not become normal for the fleet.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{Baseline, Confidence, Item, ItemKind, Mode, Origin, MAX_REPLICAS};

/// What one node saw of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeSight {
    pub count: u64,
    /// That node's replicas that saw it.
    pub replicas: usize,
}

/// One item of the merged baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetItem {
    pub first_ns: u64,
    pub last_ns: u64,
    /// Over all nodes.
    pub count: u64,
    /// Distinct replicas that saw it, over all nodes (at most [`MAX_REPLICAS`] each).
    pub replicas: usize,
    /// Per node (by name).
    pub nodes: BTreeMap<String, NodeSight>,
    pub not_in_image: bool,
    pub origin: Origin,
    /// Its trust across the fleet (see the module's rules).
    pub confidence: Confidence,
}

/// One node's part in a merged baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeBaseline {
    pub mode: Mode,
    pub locked: bool,
    pub observations: u64,
    pub replicas: usize,
}

/// A workload's baselines from several nodes, merged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetBaseline {
    pub workload: String,
    pub nodes: BTreeMap<String, NodeBaseline>,
    pub items: BTreeMap<ItemKind, BTreeMap<String, FleetItem>>,
}

/// Merges the baselines `from` (node name, that node's baseline) of one workload; the
/// others are left out. `min_observations` as the nodes use it (below it, medium).
pub fn merge<'a>(
    workload: &str,
    from: impl IntoIterator<Item = (&'a str, &'a Baseline)>,
    min_observations: u64,
) -> FleetBaseline {
    let mut nodes = BTreeMap::new();
    let mut items: BTreeMap<ItemKind, BTreeMap<String, FleetItem>> = BTreeMap::new();
    // Distinct replicas (short ids) per item, over nodes.
    let mut seen_by: BTreeMap<(ItemKind, String), BTreeSet<String>> = BTreeMap::new();
    let mut node_count = 0usize;
    for (node, b) in from {
        if b.workload != workload {
            continue;
        }
        node_count += 1;
        nodes.insert(
            node.to_string(),
            NodeBaseline {
                mode: b.mode,
                locked: b.locked,
                observations: b.observations,
                replicas: b.replicas.len(),
            },
        );
        for (kind, map) in &b.items {
            for (key, item) in map {
                let merged = items
                    .entry(*kind)
                    .or_default()
                    .entry(key.clone())
                    .or_insert_with(|| FleetItem {
                        first_ns: item.first_ns,
                        last_ns: item.last_ns,
                        count: 0,
                        replicas: 0,
                        nodes: BTreeMap::new(),
                        not_in_image: false,
                        origin: Origin::Learned,
                        confidence: Confidence::None,
                    });
                merged.first_ns = merged.first_ns.min(item.first_ns);
                merged.last_ns = merged.last_ns.max(item.last_ns);
                merged.count += item.count;
                merged.not_in_image |= item.not_in_image;
                merged.origin = match (merged.origin, item.origin) {
                    (Origin::Forbidden, _) | (_, Origin::Forbidden) => Origin::Forbidden,
                    (Origin::Allowed, _) | (_, Origin::Allowed) => Origin::Allowed,
                    _ => Origin::Learned,
                };
                merged.nodes.insert(
                    node.to_string(),
                    NodeSight {
                        count: item.count,
                        replicas: item.replicas.len(),
                    },
                );
                seen_by
                    .entry((*kind, key.clone()))
                    .or_default()
                    .extend(item.replicas.iter().cloned());
            }
        }
    }
    for (kind, map) in &mut items {
        for (key, item) in map.iter_mut() {
            item.replicas = seen_by.get(&(*kind, key.clone())).map_or(0, BTreeSet::len);
            item.confidence = fleet_confidence(item, node_count, min_observations);
        }
    }
    FleetBaseline {
        workload: workload.to_string(),
        nodes,
        items,
    }
}

fn fleet_confidence(item: &FleetItem, nodes: usize, min_observations: u64) -> Confidence {
    Confidence::rule(
        item.origin,
        item.not_in_image,
        (nodes, item.nodes.len()),
        item.count,
        min_observations,
    )
}

impl FleetBaseline {
    /// Items of at least `at_least` confidence across the fleet, by kind.
    pub fn trusted(&self, at_least: Confidence) -> BTreeMap<ItemKind, Vec<&str>> {
        let mut out: BTreeMap<ItemKind, Vec<&str>> = BTreeMap::new();
        for (kind, map) in &self.items {
            for (key, item) in map {
                if item.confidence >= at_least {
                    out.entry(*kind).or_default().push(key);
                }
            }
        }
        out
    }

    /// The merged baseline as one node's profile, unlocked (in discover, to be locked
    /// where it is imported): items the fleet does not trust carry what makes a node
    /// distrust them too (forbidden stays forbidden, not-in-image stays so, and an item
    /// of one node of several keeps that node's replicas only, which is low confidence
    /// wherever the workload has more).
    pub fn to_baseline(&self, now_ns: u64) -> Baseline {
        let mut b = Baseline::new(&self.workload, now_ns);
        b.observations = self.nodes.values().map(|n| n.observations).sum();
        // Replica names: `NODE#N`, one per replica of each node.
        let replica = |node: &str, r: usize| format!("{node}#{r}");
        b.replicas = self
            .nodes
            .iter()
            .flat_map(|(node, n)| (0..n.replicas).map(move |r| replica(node, r)))
            .take(MAX_REPLICAS)
            .collect();
        for (kind, map) in &self.items {
            let items = b.items.entry(*kind).or_default();
            for (key, fi) in map {
                let mut item = Item::new(fi.first_ns, fi.origin);
                item.last_ns = fi.last_ns;
                item.count = fi.count;
                item.not_in_image = fi.not_in_image;
                // One node's item of several: one replica, low wherever it lands.
                let per_node = if fi.confidence == Confidence::Low {
                    1
                } else {
                    MAX_REPLICAS
                };
                for (node, sight) in &fi.nodes {
                    for r in 0..sight.replicas.min(per_node) {
                        if item.replicas.len() < MAX_REPLICAS {
                            item.replicas.insert(replica(node, r));
                        }
                    }
                }
                items.insert(key.clone(), item);
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rampart_event::{Ancestor, Container, Event, Payload, Process, Workload};

    use super::*;
    use crate::store::{BaselineStore, SqliteBaselines};
    use crate::{BaselineConfig, Engine};

    const S: u64 = 1_000_000_000;

    fn exec(container: &str, ts: u64, exe: &str) -> Arc<Event> {
        let mut labels = BTreeMap::new();
        labels.insert("com.docker.compose.project".into(), "shop".into());
        labels.insert("com.docker.compose.service".into(), "web".into());
        Arc::new(Event {
            schema: 1,
            ts_ns: ts,
            host: "h".into(),
            seq: ts,
            process: Some(Arc::new(Process {
                pid: 100,
                exe: exe.into(),
                argv: vec![exe.rsplit('/').next().unwrap_or(exe).to_string()],
                ancestry: vec![Arc::new(Ancestor {
                    exe: "/usr/bin/sh".into(),
                    ..Ancestor::default()
                })],
                ..Process::default()
            })),
            container: Arc::new(Workload::Container(Container {
                id: container.repeat(64 / container.len()),
                cgroup_id: container.bytes().fold(0, |h, b| h * 256 + u64::from(b)),
                name: format!("web-{container}"),
                image: "nginx:1".into(),
                labels,
                metadata_complete: true,
                ..Container::default()
            })),
            compat_syscall: false,
            payload: Payload::Exec {
                filename: exe.into(),
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
        })
    }

    /// A node: an engine learning `runs` (container, executable) and saving to its
    /// own database, as the node's stage does.
    fn node(dir: &std::path::Path, name: &str, runs: &[(&str, &str)]) -> SqliteBaselines {
        let mut e = Engine::new(BaselineConfig {
            auto_lock: false,
            ..BaselineConfig::default()
        });
        let mut out = Vec::new();
        for (i, (c, exe)) in runs.iter().enumerate() {
            e.observe(&exec(c, (100 + i as u64) * S, exe), &mut out);
        }
        let store = SqliteBaselines::open(&dir.join(format!("{name}.db"))).unwrap();
        for b in e.take_dirty() {
            store.save(b, 0).unwrap();
        }
        store
    }

    #[test]
    fn nodes_baselines_merge_into_a_union_with_what_each_node_saw() {
        let dir = tempfile::tempdir().unwrap();
        let a = node(
            dir.path(),
            "node-a",
            &[
                ("a1", "/usr/sbin/nginx"),
                ("a2", "/usr/sbin/nginx"),
                ("a1", "/usr/sbin/nginx"),
                ("a2", "/usr/bin/curl"),
            ],
        );
        let b = node(
            dir.path(),
            "node-b",
            &[
                ("b1", "/usr/sbin/nginx"),
                ("b1", "/usr/sbin/nginx"),
                ("b1", "/usr/bin/nc"),
                ("b1", "/usr/bin/nc"),
                ("b1", "/usr/bin/nc"),
            ],
        );
        let (ba, _) = a.get("compose:shop/web").unwrap().unwrap();
        let (bb, _) = b.get("compose:shop/web").unwrap().unwrap();
        let mut other = Baseline::new("compose:shop/db", 0);
        other.observations = 1;
        let fleet = merge(
            "compose:shop/web",
            [("node-a", &ba), ("node-b", &bb), ("node-c", &other)],
            3,
        );
        assert_eq!(
            fleet.nodes.len(),
            2,
            "another workload's baseline is left out"
        );
        assert_eq!(fleet.nodes["node-a"].replicas, 2);
        let procs = &fleet.items[&ItemKind::Process];
        let nginx = &procs["/usr/sbin/nginx <- /usr/bin/sh : nginx"];
        assert_eq!(nginx.count, 5);
        assert_eq!(nginx.replicas, 3);
        assert_eq!(
            nginx.nodes["node-a"],
            NodeSight {
                count: 3,
                replicas: 2
            }
        );
        assert_eq!(nginx.nodes["node-b"].count, 2);
        assert_eq!(nginx.confidence, Confidence::High);
        // Seen on one node of two: low, however often that node saw it.
        let nc = &procs["/usr/bin/nc <- /usr/bin/sh : nc"];
        assert_eq!((nc.count, nc.nodes.len()), (3, 1));
        assert_eq!(nc.confidence, Confidence::Low);
        let trusted = fleet.trusted(Confidence::Medium);
        assert_eq!(
            trusted[&ItemKind::Process],
            vec!["/usr/sbin/nginx <- /usr/bin/sh : nginx"]
        );

        // As one profile: what the fleet distrusts, the importing node distrusts.
        let profile = fleet.to_baseline(1_000 * S);
        assert!(!profile.locked);
        assert_eq!(profile.replicas.len(), 3);
        let normal = profile.normal_executables(3);
        assert!(normal.contains("/usr/sbin/nginx"), "{normal:?}");
        assert!(!normal.contains("/usr/bin/nc"), "{normal:?}");
        assert!(!normal.contains("/usr/bin/curl"), "{normal:?}");
        let nginx = profile
            .item(ItemKind::Process, "/usr/sbin/nginx <- /usr/bin/sh : nginx")
            .unwrap();
        assert_eq!(profile.confidence(nginx, 3), Confidence::High);
    }

    #[test]
    fn forbidden_anywhere_stays_forbidden_and_not_in_image_is_never_normal() {
        let key = "/usr/bin/nc <- /usr/bin/sh : nc";
        let mut a = Baseline::new("w", 0);
        let mut b = Baseline::new("w", 0);
        for (base, origin, upper) in [
            (&mut a, Origin::Forbidden, false),
            (&mut b, Origin::Learned, false),
        ] {
            let mut item = Item::new(1, origin);
            item.count = 9;
            item.not_in_image = upper;
            item.replicas.insert("r".into());
            base.items
                .entry(ItemKind::Process)
                .or_default()
                .insert(key.into(), item);
        }
        let mut dropped = Item::new(1, Origin::Allowed);
        dropped.count = 9;
        b.items
            .entry(ItemKind::Process)
            .or_default()
            .insert("/tmp/x <- /usr/bin/sh : x".into(), dropped.clone());
        let mut upper = dropped;
        upper.origin = Origin::Learned;
        upper.not_in_image = true;
        a.items
            .entry(ItemKind::Process)
            .or_default()
            .insert("/tmp/y <- /usr/bin/sh : y".into(), upper.clone());
        b.items
            .entry(ItemKind::Process)
            .or_default()
            .insert("/tmp/y <- /usr/bin/sh : y".into(), upper);
        let fleet = merge("w", [("a", &a), ("b", &b)], 3);
        let procs = &fleet.items[&ItemKind::Process];
        assert_eq!(procs[key].origin, Origin::Forbidden);
        assert_eq!(procs[key].confidence, Confidence::None);
        assert_eq!(
            procs["/tmp/x <- /usr/bin/sh : x"].confidence,
            Confidence::High
        );
        assert_eq!(
            procs["/tmp/y <- /usr/bin/sh : y"].confidence,
            Confidence::None
        );
        let profile = fleet.to_baseline(0);
        assert_eq!(
            profile.item(ItemKind::Process, key).map(|i| i.origin),
            Some(Origin::Forbidden)
        );
    }
}
