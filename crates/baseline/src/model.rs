//! What a baseline is: per workload, the items seen during learning (each with first and
//! last seen, a count, the replicas that saw it, and a confidence), the lifecycle state,
//! and the per-minute feature model.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::anomaly::FeatureModel;

/// A fast, non-cryptographic hasher (FxHash's multiply-rotate) for the per-event
/// lookups: keys come from the node's own events, and SipHash's flood resistance is
/// not worth its cost on every event here.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for b in chunks.remainder() {
            self.add(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }
    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

/// A hash map with [`Fx`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
/// A hash set with [`Fx`].
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<Fx>>;

/// Replicas remembered per item: beyond it the item is seen by "many".
pub const MAX_REPLICAS: usize = 32;

/// The kinds of behaviour learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// `EXE <- PARENT_EXE : ARGV` with argv normalised.
    Process,
    /// Directory prefixes written or created under.
    FileWrite,
    /// Credentials, keys, other processes' memory.
    SensitiveRead,
    /// `out tcp 10.0.0.5:5432`, `in tcp :8080`, `listen tcp :8080`.
    Network,
    /// Effective user ids processes ran as.
    User,
    /// Privilege calls and capability changes (`setuid`, `capset`, `mount`…).
    Privilege,
    /// DNS names queried.
    Dns,
}

impl ItemKind {
    pub const ALL: [ItemKind; 7] = [
        ItemKind::Process,
        ItemKind::FileWrite,
        ItemKind::SensitiveRead,
        ItemKind::Network,
        ItemKind::User,
        ItemKind::Privilege,
        ItemKind::Dns,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Process => "process",
            ItemKind::FileWrite => "file_write",
            ItemKind::SensitiveRead => "sensitive_read",
            ItemKind::Network => "network",
            ItemKind::User => "user",
            ItemKind::Privilege => "privilege",
            ItemKind::Dns => "dns",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Words for an explanation (`process`, `file write under`…).
    pub fn describe(self) -> &'static str {
        match self {
            ItemKind::Process => "process",
            ItemKind::FileWrite => "file write under",
            ItemKind::SensitiveRead => "sensitive read of",
            ItemKind::Network => "network edge",
            ItemKind::User => "user id",
            ItemKind::Privilege => "privilege call",
            ItemKind::Dns => "DNS name",
        }
    }
}

/// Where an item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Seen during discover.
    #[default]
    Learned,
    /// Added by an operator (`rampart baseline allow`): normal whatever was seen.
    Allowed,
    /// Marked by an operator (`rampart baseline forbid`): never normal.
    Forbidden,
}

/// How far an item can be trusted to be normal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Not normal: forbidden, a binary not in the image, or seen by only one replica
    /// of several.
    None,
    Low,
    Medium,
    High,
}

impl Confidence {
    /// How far `item` can be trusted as normal in a baseline whose workload has had
    /// `workload_replicas` contributing containers (what [`Baseline::confidence`]
    /// answers, without borrowing the baseline, so the per-event path can update the
    /// item it just looked at).
    pub fn of(item: &Item, workload_replicas: usize, min_observations: u64) -> Confidence {
        Self::rule(
            item.origin,
            item.not_in_image,
            (workload_replicas, item.replicas.len()),
            item.count,
            min_observations,
        )
    }

    /// The trust rule of one node's items and of the fleet's merged ones alike:
    /// `observers` is (how many observe the workload, how many of them saw the item),
    /// replicas on a node, nodes across the fleet.
    pub(crate) fn rule(
        origin: Origin,
        not_in_image: bool,
        observers: (usize, usize),
        count: u64,
        min_observations: u64,
    ) -> Confidence {
        match origin {
            Origin::Forbidden => return Confidence::None,
            Origin::Allowed => return Confidence::High,
            Origin::Learned => {}
        }
        if not_in_image {
            return Confidence::None;
        }
        // Seen by one observer while the others never did: a compromise during
        // learning must not become normal.
        let (all, saw) = observers;
        if all >= 2 && saw <= 1 {
            return Confidence::Low;
        }
        if count >= min_observations {
            Confidence::High
        } else {
            Confidence::Medium
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::None => "none",
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// One learned item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub first_ns: u64,
    pub last_ns: u64,
    pub count: u64,
    /// Short ids (12 hex) of the containers that saw it, at most [`MAX_REPLICAS`].
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub replicas: BTreeSet<String>,
    /// The executable was not in the image (overlay upper layer): never normal.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_in_image: bool,
    #[serde(default)]
    pub origin: Origin,
}

impl Item {
    pub fn new(ts_ns: u64, origin: Origin) -> Self {
        Self {
            first_ns: ts_ns,
            last_ns: ts_ns,
            count: 0,
            replicas: BTreeSet::new(),
            not_in_image: false,
            origin,
        }
    }
}

/// The lifecycle mode of a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Learning: new behaviour extends the baseline.
    #[default]
    Discover,
    /// Anything outside the locked baseline is an alert with its explanation.
    Monitor,
    /// As monitor, and executables outside it are denied exec in the kernel.
    Protect,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Discover => "discover",
            Mode::Monitor => "monitor",
            Mode::Protect => "protect",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Mode::Discover, Mode::Monitor, Mode::Protect]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Everything learned about one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The workload's identity (see [`crate::workload_of`]).
    pub workload: String,
    pub mode: Mode,
    /// Locked: nothing new is learned; what is outside is a deviation.
    pub locked: bool,
    /// When discover started.
    pub started_ns: u64,
    /// When a new item last appeared.
    pub last_new_ns: u64,
    /// When it was locked.
    #[serde(default)]
    pub locked_ns: u64,
    /// Events learned from.
    pub observations: u64,
    /// Containers that contributed (short ids), at most [`MAX_REPLICAS`].
    pub replicas: BTreeSet<String>,
    /// The items, by kind, by key.
    pub items: BTreeMap<ItemKind, FastMap<String, Item>>,
    /// Deviations raised since the lock.
    #[serde(default)]
    pub deviations: u64,
    /// Per-minute feature samples and the fitted normal ranges.
    #[serde(default)]
    pub features: FeatureModel,
}

impl Baseline {
    pub fn new(workload: &str, now_ns: u64) -> Self {
        Self {
            workload: workload.to_string(),
            mode: Mode::Discover,
            locked: false,
            started_ns: now_ns,
            last_new_ns: now_ns,
            locked_ns: 0,
            observations: 0,
            replicas: BTreeSet::new(),
            items: BTreeMap::new(),
            deviations: 0,
            features: FeatureModel::default(),
        }
    }

    pub fn item(&self, kind: ItemKind, key: &str) -> Option<&Item> {
        self.items.get(&kind)?.get(key)
    }

    /// How far `item` can be trusted as normal in this baseline, given
    /// `min_observations` (the count below which an item is only medium).
    pub fn confidence(&self, item: &Item, min_observations: u64) -> Confidence {
        Confidence::of(item, self.replicas.len(), min_observations)
    }

    /// Items total.
    pub fn len(&self) -> usize {
        self.items.values().map(FastMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Executables (process items' first field) this baseline holds as normal (at
    /// least medium confidence).
    pub fn normal_executables(&self, min_observations: u64) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(procs) = self.items.get(&ItemKind::Process) {
            for (key, item) in procs {
                if self.confidence(item, min_observations) >= Confidence::Medium {
                    out.insert(process_exe(key).to_string());
                }
            }
        }
        out
    }
}

/// The executable part of a process key (`EXE <- PARENT : ARGV`).
pub fn process_exe(key: &str) -> &str {
    key.split(" <- ").next().unwrap_or(key)
}

/// The 12-character short form of a container id.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}
