//! The learner and checker: events in, baselines extended (discover) or checked
//! (monitor, protect), alerts out with their explanation; minutes scored; baselines
//! locked once stable; noise control for other rules' alerts.
//!
//! The per-event path looks the container up once by its cgroup id, builds each item's
//! key in a reused buffer (numbers and addresses written by hand, not through
//! `core::fmt`) and does one hash lookup per item; an item of a locked baseline that is
//! already normal is counted in place and goes no further. Nothing is allocated once
//! warm, except when something new is learned or raised: a container's minute keeps its
//! sets' capacity, and holds one event of the minute (for an anomaly alert) rather than
//! swapping an `Arc` on every event.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use rampart_event::{Alert, Container, Event, L4Proto, Payload, Priority, SockAddr, Workload};

use crate::anomaly::Window;
use crate::config::BaselineConfig;
use crate::model::{short_id, Baseline, Confidence, Item, ItemKind, Mode, Origin, MAX_REPLICAS};
use crate::normalize;

/// Most items one event yields.
const MAX_KEYS: usize = 2;
const NS: u64 = 1_000_000_000;
const MINUTE_NS: u64 = 60 * NS;

/// The rule name of a deviation alert.
pub const DEVIATION_RULE: &str = "Behaviour outside the workload baseline";
/// The rule name of an anomalous-minute alert.
pub const ANOMALY_RULE: &str = "Anomalous minute for the workload";
/// The tag a downgraded alert carries.
pub const DOWNGRADED_TAG: &str = "baseline_downgraded";

/// The workload a container belongs to: its Kubernetes workload (from CRI labels), else
/// its compose project and service, else its image repository and tag. Every replica
/// of a workload shares its baseline.
pub fn workload_of(c: &Container) -> String {
    let label = |k: &str| c.labels.get(k).filter(|v| !v.is_empty());
    if let Some(pod) = label("io.kubernetes.pod.name") {
        let ns = label("io.kubernetes.pod.namespace").map_or("default", String::as_str);
        let container = label("io.kubernetes.container.name").map_or("", String::as_str);
        return format!("k8s:{ns}/{}/{container}", pod_owner(pod));
    }
    if let (Some(p), Some(s)) = (
        label("com.docker.compose.project"),
        label("com.docker.compose.service"),
    ) {
        return format!("compose:{p}/{s}");
    }
    if !c.image_repository.is_empty() {
        let tag = if c.image_tag.is_empty() {
            "latest"
        } else {
            &c.image_tag
        };
        return format!("image:{}:{tag}", c.image_repository);
    }
    if !c.image.is_empty() {
        return format!("image:{}", c.image);
    }
    format!("container:{}", short_id(&c.id))
}

/// The owner of a pod from its name: a Deployment's `web-7d4b9c8f6-x2k9p` and a
/// DaemonSet's `agent-x2k9p` are `web` and `agent`; a StatefulSet's `db-0` is `db`.
fn pod_owner(pod: &str) -> &str {
    let mut name = pod;
    let random = |s: &str, lens: &[usize]| {
        lens.contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some((head, tail)) = name.rsplit_once('-') {
        if random(tail, &[5]) {
            name = head;
            if let Some((h2, t2)) = name.rsplit_once('-') {
                if random(t2, &[8, 9, 10]) && t2.bytes().any(|b| b.is_ascii_digit()) {
                    name = h2;
                }
            }
            return name;
        }
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            return head;
        }
    }
    name
}

/// Why something is outside the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Never seen during learning.
    New,
    /// The executable is known, not with this parent or command line.
    NewCommandLine,
    /// Seen during learning by one replica only, of several.
    OneReplica,
    /// The executable is not in the image.
    NotInImage,
    /// An operator forbade it.
    Forbidden,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::New => "never seen during learning",
            Reason::NewCommandLine => {
                "the executable is known, but never ran with this parent or command line"
            }
            Reason::OneReplica => {
                "seen during learning by only one replica while the others never did"
            }
            Reason::NotInImage => "the executable is not in the image",
            Reason::Forbidden => "forbidden by an operator",
        }
    }
}

/// A container of a protected workload that needs its exec denial in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectRequest {
    pub workload: String,
    pub container_id: String,
    pub container_name: String,
    /// A process of the container (to find its cgroup and root).
    pub pid: u32,
    /// Executables held as normal: everything else is denied.
    pub allowed: Vec<String>,
    /// The container as events name it (what an alert about it carries).
    pub container: Arc<Workload>,
}

/// A container first seen: which workload it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSeen {
    pub container_id: String,
    pub name: String,
    pub workload: String,
    pub ts_ns: u64,
}

struct Slot {
    workload: usize,
    short_id: String,
    id: String,
    name: String,
    /// The container as its first event named it.
    container: Arc<Workload>,
    window: Window,
    /// The minute's first event: what an anomaly alert for the minute carries.
    minute_event: Option<Arc<Event>>,
    /// The pid of the container's latest event's process (0: none yet), which
    /// protect's exec denial finds the container's cgroup and root through.
    last_pid: u32,
    /// Protect has been requested for this container.
    protected: bool,
    /// The last normal file-write, network and user item (see [`Memo`]).
    memo: [Memo; MEMOS],
}

/// Memos per container: file writes, network edges, user ids. Not processes: their
/// command lines vary from one start to the next often enough that keeping the last one
/// cost more (copying it in on every change) than its repeats saved (measured with
/// `rampart bench baseline`: process starts 188 ns with it, 172 without).
const MEMOS: usize = 3;
const MEMO_WRITE: usize = 0;
const MEMO_CONNECT: usize = 1;
const MEMO_KIND: [ItemKind; MEMOS] = [ItemKind::FileWrite, ItemKind::Network, ItemKind::User];

/// The memo an item of `kind` goes through, if any.
fn memo_of(kind: ItemKind) -> Option<usize> {
    match kind {
        ItemKind::FileWrite => Some(MEMO_WRITE),
        ItemKind::Network => Some(MEMO_CONNECT),
        ItemKind::User => Some(2),
        _ => None,
    }
}

/// The locked path's repeat case: the key of the last item of its kind that was normal
/// in a locked baseline, and the counts not yet added to it. The same key again is
/// counted here without looking it up; and for file writes and connects, whose key
/// follows from a raw input (a written file's directory; a connect's protocol, address
/// and port), the same raw input again is counted without even building the key. The
/// counts reach the item when the memo moves on, at every tick and before baselines are
/// saved ([`Engine::flush_counts`]). A memo is valid for one generation of its baseline
/// (installed or locked anew: a new one).
#[derive(Default)]
struct Memo {
    generation: u64,
    /// `raw` holds the input the key came from.
    raw_valid: bool,
    raw: Vec<u8>,
    key: String,
    pending: u64,
    last_ns: u64,
}

impl Memo {
    /// Adds the held counts to the item (when the baseline is still the one it was
    /// made for) and forgets them.
    fn flush(&mut self, b: &mut Baseline, generation: u64, kind: ItemKind) {
        if self.pending == 0 {
            return;
        }
        if self.generation == generation {
            if let Some(item) = b.items.get_mut(&kind).and_then(|m| m.get_mut(&self.key)) {
                item.count += self.pending;
                item.last_ns = item.last_ns.max(self.last_ns);
            }
        }
        self.pending = 0;
    }
}

/// The memo an event's item goes through and its raw input, written to `raw`: the
/// directory of a file written, or a connect's protocol, address and port.
fn memo_input<'a>(payload: &'a Payload, raw: &'a mut [u8; 20]) -> Option<(usize, &'a [u8])> {
    match payload {
        Payload::FileOpen {
            path, access, ret, ..
        } if *ret >= 0 && (access.write || access.create || access.truncate) => {
            let b = path.as_bytes();
            let dir_end = b.iter().rposition(|&c| c == b'/').unwrap_or(0);
            Some((MEMO_WRITE, &b[..dir_end]))
        }
        Payload::NetConnect {
            proto,
            remote: SockAddr::Inet { ip, port },
            ret,
            ..
        } if *ret >= 0 || *ret == -115 => {
            raw[0] = *proto as u8;
            raw[1] = u8::from(ip.is_ipv6());
            raw[2..4].copy_from_slice(&port.to_le_bytes());
            match ip {
                IpAddr::V4(a) => raw[4..8].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => raw[4..20].copy_from_slice(&a.octets()),
            }
            let len = if ip.is_ipv6() { 20 } else { 8 };
            Some((MEMO_CONNECT, &raw[..len]))
        }
        _ => None,
    }
}

/// Counters of the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    pub events: u64,
    pub learned: u64,
    pub deviations: u64,
    pub suppressed: u64,
    pub anomalies: u64,
    pub downgraded: u64,
    pub locked: u64,
}

/// Every workload's baseline on this node, and the containers seen.
pub struct Engine {
    cfg: BaselineConfig,
    baselines: Vec<Baseline>,
    by_name: HashMap<String, usize>,
    dirty: Vec<bool>,
    /// Per baseline: bumped when it is installed or locked (memos of an older one are
    /// void). From 1: a memo never filled in (generation 0) matches none.
    generations: Vec<u64>,
    slots: crate::model::FastMap<u64, Slot>,
    key_buf: String,
    keys: Vec<(ItemKind, usize, usize)>,
    last_alert: HashMap<(usize, ItemKind, String), u64>,
    protect: Vec<ProtectRequest>,
    seen: Vec<ContainerSeen>,
    alert_seq: u64,
    /// The scored window's length (`feature_window_secs`, a minute by default).
    window_ns: u64,
    pub stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: BaselineConfig) -> Self {
        let window_ns = cfg.feature_window_secs.max(1) * NS;
        Self {
            cfg,
            baselines: Vec::new(),
            by_name: HashMap::new(),
            dirty: Vec::new(),
            generations: Vec::new(),
            slots: crate::model::FastMap::default(),
            key_buf: String::with_capacity(256),
            keys: Vec::with_capacity(MAX_KEYS),
            last_alert: HashMap::new(),
            protect: Vec::new(),
            seen: Vec::new(),
            alert_seq: 0,
            window_ns,
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &BaselineConfig {
        &self.cfg
    }

    /// Puts a stored baseline in place (at start, or when an operator changed it).
    pub fn install(&mut self, b: Baseline) {
        let locked_protect = b.locked && b.mode == Mode::Protect;
        let idx = match self.by_name.get(&b.workload) {
            Some(&i) => {
                self.baselines[i] = b;
                self.generations[i] += 1;
                i
            }
            None => {
                self.by_name
                    .insert(b.workload.clone(), self.baselines.len());
                self.baselines.push(b);
                self.dirty.push(false);
                self.generations.push(1);
                self.baselines.len() - 1
            }
        };
        if locked_protect {
            self.request_protect_all(idx);
        } else {
            for s in self.slots.values_mut().filter(|s| s.workload == idx) {
                s.protected = false;
            }
        }
    }

    pub fn baselines(&self) -> &[Baseline] {
        &self.baselines
    }

    pub fn get(&self, workload: &str) -> Option<&Baseline> {
        self.by_name.get(workload).map(|&i| &self.baselines[i])
    }

    /// Baselines changed since the last call (to be saved), with every count held in a
    /// memo added first.
    pub fn take_dirty(&mut self) -> Vec<&Baseline> {
        self.flush_counts();
        let mut out = Vec::new();
        for (i, d) in self.dirty.iter_mut().enumerate() {
            if std::mem::take(d) {
                out.push(&self.baselines[i]);
            }
        }
        out
    }

    /// Containers of protected workloads that need their exec denial.
    pub fn take_protect_requests(&mut self) -> Vec<ProtectRequest> {
        std::mem::take(&mut self.protect)
    }

    /// Containers seen for the first time since the last call.
    pub fn take_containers_seen(&mut self) -> Vec<ContainerSeen> {
        std::mem::take(&mut self.seen)
    }

    fn workload_index(&mut self, name: &str, now_ns: u64) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        self.by_name.insert(name.to_string(), self.baselines.len());
        self.baselines.push(Baseline::new(name, now_ns));
        self.dirty.push(true);
        self.generations.push(1);
        self.baselines.len() - 1
    }

    fn slot_key(c: &Container) -> u64 {
        if c.cgroup_id != 0 {
            return c.cgroup_id;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        c.id.hash(&mut h);
        h.finish() | (1 << 63)
    }

    /// A container's first event: its workload, its slot.
    fn first_seen(
        &mut self,
        key: u64,
        c: &Container,
        container: &Arc<Workload>,
        ts_ns: u64,
    ) -> (usize, u64) {
        let name = workload_of(c);
        let w = self.workload_index(&name, ts_ns);
        self.seen.push(ContainerSeen {
            container_id: c.id.clone(),
            name: c.name.clone(),
            workload: name,
            ts_ns,
        });
        self.slots.insert(
            key,
            Slot {
                workload: w,
                short_id: short_id(&c.id).to_string(),
                id: c.id.clone(),
                name: c.name.clone(),
                container: container.clone(),
                window: Window::new(ts_ns / self.window_ns),
                minute_event: None,
                last_pid: 0,
                protected: false,
                memo: Default::default(),
            },
        );
        (w, ts_ns / self.window_ns)
    }

    /// Learns from or checks one event; alerts go to `out`.
    pub fn observe(&mut self, ev: &Arc<Event>, out: &mut Vec<Alert>) {
        let Some(c) = ev.container.container() else {
            return;
        };
        if c.id.is_empty() {
            return;
        }
        self.stats.events += 1;
        let key = Self::slot_key(c);
        let minute = ev.ts_ns / self.window_ns;
        let seen = self.slots.get(&key).map(|s| (s.workload, s.window.minute));
        let (w, window_minute) = match seen {
            Some(seen) => seen,
            None => self.first_seen(key, c, &ev.container, ev.ts_ns),
        };
        if minute > window_minute {
            self.close_window(key, minute, out);
        }
        let protect_now = {
            let b = &self.baselines[w];
            b.locked && b.mode == Mode::Protect
        };
        let Some(s) = self.slots.get_mut(&key) else {
            return;
        };
        if let Some(p) = &ev.process {
            s.last_pid = p.pid;
        }
        if s.minute_event.is_none() {
            s.minute_event = Some(ev.clone());
        }
        s.window.count(ev);
        if protect_now && !s.protected && s.last_pid != 0 {
            s.protected = true;
            let b = &self.baselines[w];
            self.protect.push(ProtectRequest {
                workload: b.workload.clone(),
                container_id: s.id.clone(),
                container_name: s.name.clone(),
                pid: s.last_pid,
                allowed: b
                    .normal_executables(self.cfg.min_observations)
                    .into_iter()
                    .collect(),
                container: s.container.clone(),
            });
        }
        let generation = self.generations[w];
        let locked = self.baselines[w].locked;
        let mut raw = [0u8; 20];
        let input = memo_input(&ev.payload, &mut raw);
        if let Some((m, input)) = input {
            let memo = &mut s.memo[m];
            if locked && memo.generation == generation && memo.raw_valid && memo.raw == input {
                memo.pending += 1;
                memo.last_ns = memo.last_ns.max(ev.ts_ns);
                return;
            }
        }
        let mut keys = std::mem::take(&mut self.keys);
        let mut buf = std::mem::take(&mut self.key_buf);
        item_keys(ev, &mut buf, &mut keys);
        let upper_exe = ev.process.as_ref().is_some_and(|p| p.exe_upper_layer);
        // Items whose key is the one their memo holds: counted there.
        let mut held = [false; MAX_KEYS];
        if locked {
            for (i, &(kind, start, end)) in keys.iter().enumerate() {
                let Some(m) = memo_of(kind) else {
                    continue;
                };
                let memo = &mut s.memo[m];
                if memo.generation == generation
                    && memo.key.as_bytes() == &buf.as_bytes()[start..end]
                {
                    memo.pending += 1;
                    memo.last_ns = memo.last_ns.max(ev.ts_ns);
                    held[i] = true;
                }
            }
        }
        for (i, &(kind, start, end)) in keys.iter().enumerate() {
            if held[i] {
                continue;
            }
            let key_str = &buf[start..end];
            if !self.count_if_normal(w, kind, key_str, upper_exe, ev.ts_ns) {
                self.apply(w, key, kind, key_str, ev, out);
                continue;
            }
            // Normal: the next event with the same key (or raw input) is counted in
            // the memo.
            let Some(m) = memo_of(kind) else {
                continue;
            };
            let Some(s) = self.slots.get_mut(&key) else {
                continue;
            };
            let memo = &mut s.memo[m];
            memo.flush(&mut self.baselines[w], generation, MEMO_KIND[m]);
            memo.generation = generation;
            memo.raw.clear();
            memo.raw_valid = false;
            if let Some((im, input)) = input {
                if im == m {
                    memo.raw.extend_from_slice(input);
                    memo.raw_valid = true;
                }
            }
            memo.key.clear();
            memo.key.push_str(key_str);
            memo.last_ns = 0;
        }
        self.keys = keys;
        self.key_buf = buf;
    }

    /// The locked path's fast case: `key` is an item of `w`'s locked baseline trusted
    /// as normal (at least medium confidence, and not an executable from the upper
    /// layer), so it is counted in place and nothing more is done. False sends the item
    /// to [`Engine::apply`] (learning, or a deviation).
    fn count_if_normal(
        &mut self,
        w: usize,
        kind: ItemKind,
        key: &str,
        upper_exe: bool,
        ts_ns: u64,
    ) -> bool {
        let b = &mut self.baselines[w];
        if !b.locked || (upper_exe && kind == ItemKind::Process) {
            return false;
        }
        let replicas = b.replicas.len();
        let Some(item) = b.items.get_mut(&kind).and_then(|m| m.get_mut(key)) else {
            return false;
        };
        if Confidence::of(item, replicas, self.cfg.min_observations) < Confidence::Medium {
            return false;
        }
        item.count += 1;
        item.last_ns = item.last_ns.max(ts_ns);
        true
    }

    fn close_window(&mut self, slot: u64, minute: u64, out: &mut Vec<Alert>) {
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        let minute_event = s.minute_event.take();
        let Some((old_minute, v)) = s.window.restart(minute) else {
            return;
        };
        let b = &mut self.baselines[s.workload];
        if !b.locked {
            b.features.add_sample(v);
            self.dirty[s.workload] = true;
            return;
        }
        let Some(score) = b.features.score(&v, 3) else {
            return;
        };
        if score.score < self.cfg.anomaly_threshold {
            return;
        }
        let Some(ev) = minute_event else {
            return;
        };
        self.stats.anomalies += 1;
        let priority = if score.score >= 2.0 * self.cfg.anomaly_threshold {
            Priority::Warning
        } else {
            Priority::Notice
        };
        let message = format!(
            "Minute of container {} ({}) of workload {} scored {:.1} against its baseline: {}",
            s.name,
            s.short_id,
            b.workload,
            score.score,
            score.explain()
        );
        let mut fields = BTreeMap::new();
        fields.insert("baseline.workload".into(), b.workload.clone().into());
        fields.insert("baseline.score".into(), score.score.into());
        fields.insert(
            "baseline.features".into(),
            serde_json::to_value(&score.top).unwrap_or_default(),
        );
        fields.insert("container.name".into(), s.name.clone().into());
        fields.insert("container.id".into(), s.id.clone().into());
        let ts = (old_minute + 1) * self.window_ns;
        self.alert_seq += 1;
        out.push(Alert {
            id: format!("bl{:016x}{:06x}", ts, self.alert_seq),
            ts_ns: ts,
            first_ts_ns: old_minute * self.window_ns,
            count: 1,
            rule: ANOMALY_RULE.into(),
            priority,
            mitre: vec![],
            tags: vec!["baseline".into(), "anomaly".into()],
            message,
            output_fields: fields,
            source: "baseline".into(),
            event: (*ev).clone(),
            retro: false,
        });
    }

    fn apply(
        &mut self,
        w: usize,
        slot: u64,
        kind: ItemKind,
        key: &str,
        ev: &Event,
        out: &mut Vec<Alert>,
    ) {
        let min_obs = self.cfg.min_observations;
        let upper =
            kind == ItemKind::Process && ev.process.as_ref().is_some_and(|p| p.exe_upper_layer);
        let Some(s) = self.slots.get_mut(&slot) else {
            return;
        };
        let b = &mut self.baselines[w];
        if !b.locked {
            // Discover: learn.
            if b.replicas.len() < MAX_REPLICAS && !b.replicas.contains(&s.short_id) {
                b.replicas.insert(s.short_id.clone());
            }
            b.observations += 1;
            let items = b.items.entry(kind).or_default();
            let item = match items.get_mut(key) {
                Some(i) => i,
                None => {
                    b.last_new_ns = ev.ts_ns;
                    self.stats.learned += 1;
                    if kind == ItemKind::Process {
                        s.window.new_executables += 1;
                    }
                    items
                        .entry(key.to_string())
                        .or_insert_with(|| Item::new(ev.ts_ns, Origin::Learned))
                }
            };
            item.count += 1;
            item.last_ns = item.last_ns.max(ev.ts_ns);
            item.not_in_image |= upper;
            if item.replicas.len() < MAX_REPLICAS && !item.replicas.contains(&s.short_id) {
                item.replicas.insert(s.short_id.clone());
            }
            self.dirty[w] = true;
            return;
        }
        let reason = match b.items.get(&kind).and_then(|m| m.get(key)) {
            Some(item) => match b.confidence(item, min_obs) {
                Confidence::Medium | Confidence::High if !upper => {
                    if let Some(item) = b.items.get_mut(&kind).and_then(|m| m.get_mut(key)) {
                        item.count += 1;
                        item.last_ns = item.last_ns.max(ev.ts_ns);
                    }
                    return;
                }
                _ if item.origin == Origin::Forbidden => Reason::Forbidden,
                _ if item.not_in_image || upper => Reason::NotInImage,
                _ => Reason::OneReplica,
            },
            None if upper => Reason::NotInImage,
            None if kind == ItemKind::Process => {
                let exe = crate::model::process_exe(key);
                let known = b.items.get(&kind).is_some_and(|m| {
                    m.iter().any(|(k, i)| {
                        crate::model::process_exe(k) == exe
                            && b.confidence(i, min_obs) >= Confidence::Medium
                    })
                });
                if known {
                    Reason::NewCommandLine
                } else {
                    Reason::New
                }
            }
            None => Reason::New,
        };
        if kind == ItemKind::Process && reason != Reason::NewCommandLine {
            s.window.note_new_executable(key);
        }
        // One alert per deviation per repeat window.
        let dedup = (w, kind, key.to_string());
        let now = ev.ts_ns;
        if let Some(last) = self.last_alert.get(&dedup) {
            if now.saturating_sub(*last) < self.cfg.repeat_secs * NS {
                self.stats.suppressed += 1;
                return;
            }
        }
        self.last_alert.insert(dedup, now);
        b.deviations += 1;
        self.dirty[w] = true;
        self.stats.deviations += 1;
        let mode = b.mode;
        let priority = match (kind, reason, mode) {
            (ItemKind::Process, Reason::NewCommandLine, _) => Priority::Notice,
            (ItemKind::Process, _, Mode::Protect) => Priority::Error,
            (ItemKind::Process | ItemKind::SensitiveRead | ItemKind::Privilege, _, _) => {
                Priority::Warning
            }
            _ => Priority::Notice,
        };
        let (exe, cmdline) = ev
            .process
            .as_ref()
            .map(|p| (p.exe.clone(), p.argv.join(" ")))
            .unwrap_or_default();
        let enforced = if mode == Mode::Protect && kind == ItemKind::Process {
            "; exec denied in the kernel (protect mode)"
        } else {
            ""
        };
        let message = format!(
            "{} {key} is outside the baseline of workload {} ({}){enforced}: executable {exe} ({cmdline}) in container {} ({})",
            kind.describe(),
            b.workload,
            reason.as_str(),
            s.name,
            s.short_id,
        );
        let mut fields = BTreeMap::new();
        fields.insert("baseline.workload".into(), b.workload.clone().into());
        fields.insert("baseline.kind".into(), kind.as_str().into());
        fields.insert("baseline.item".into(), key.into());
        fields.insert("baseline.reason".into(), reason.as_str().into());
        fields.insert("baseline.mode".into(), mode.as_str().into());
        fields.insert("proc.exe".into(), exe.into());
        fields.insert("proc.cmdline".into(), cmdline.into());
        fields.insert("container.name".into(), s.name.clone().into());
        fields.insert("container.id".into(), s.id.clone().into());
        self.alert_seq += 1;
        out.push(Alert {
            id: format!("bl{:016x}{:06x}", now, self.alert_seq),
            ts_ns: now,
            first_ts_ns: now,
            count: 1,
            rule: DEVIATION_RULE.into(),
            priority,
            mitre: if kind == ItemKind::Process {
                vec!["TA0002".into()]
            } else {
                vec![]
            },
            tags: vec!["baseline".into(), "baseline_deviation".into()],
            message,
            output_fields: fields,
            source: "baseline".into(),
            event: ev.clone(),
            retro: false,
        });
    }

    /// The periodic tick: closes finished minutes and locks baselines that are stable.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Alert>) {
        self.flush_counts();
        let minute = now_ns / self.window_ns;
        let stale: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.window.minute < minute)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            self.close_window(k, minute, out);
        }
        if !self.cfg.auto_lock {
            return;
        }
        for i in 0..self.baselines.len() {
            let b = &self.baselines[i];
            if b.locked
                || b.mode != Mode::Discover
                || b.observations < self.cfg.min_observations
                || now_ns.saturating_sub(b.started_ns) < self.cfg.window_secs * NS
                || now_ns.saturating_sub(b.last_new_ns) < self.cfg.stable_secs * NS
            {
                continue;
            }
            let mode = self.cfg.locked_mode;
            self.lock(i, now_ns, mode);
            tracing::info!(workload = %self.baselines[i].workload, items = self.baselines[i].len(), mode = mode.as_str(), "baseline locked automatically");
        }
    }

    fn lock(&mut self, i: usize, now_ns: u64, mode: Mode) {
        self.generations[i] += 1;
        let b = &mut self.baselines[i];
        lock(b, now_ns, mode);
        self.dirty[i] = true;
        self.stats.locked += 1;
        if b.mode == Mode::Protect {
            self.request_protect_all(i);
        }
    }

    /// Locks a workload's baseline now (`rampart baseline lock`), in `mode`.
    pub fn lock_now(&mut self, workload: &str, now_ns: u64, mode: Mode) -> bool {
        match self.by_name.get(workload) {
            Some(&i) => {
                self.lock(i, now_ns, mode);
                true
            }
            None => false,
        }
    }

    fn request_protect_all(&mut self, i: usize) {
        let b = &self.baselines[i];
        let allowed: Vec<String> = b
            .normal_executables(self.cfg.min_observations)
            .into_iter()
            .collect();
        for s in self.slots.values_mut().filter(|s| s.workload == i) {
            let pid = s.last_pid;
            if pid != 0 {
                s.protected = true;
                self.protect.push(ProtectRequest {
                    workload: b.workload.clone(),
                    container_id: s.id.clone(),
                    container_name: s.name.clone(),
                    pid,
                    allowed: allowed.clone(),
                    container: s.container.clone(),
                });
            }
        }
    }

    /// Forgets a container that is gone (its items stay in the baseline, with its
    /// held counts).
    pub fn container_gone(&mut self, container_id: &str) {
        for s in self.slots.values_mut().filter(|s| s.id == container_id) {
            for (m, kind) in s.memo.iter_mut().zip(MEMO_KIND) {
                m.flush(
                    &mut self.baselines[s.workload],
                    self.generations[s.workload],
                    kind,
                );
            }
        }
        self.slots.retain(|_, s| s.id != container_id);
    }

    /// Adds the counts the containers' memos hold to their items (done at every tick
    /// and before baselines are saved; call it before reading counts otherwise).
    pub fn flush_counts(&mut self) {
        for s in self.slots.values_mut() {
            for (m, kind) in s.memo.iter_mut().zip(MEMO_KIND) {
                m.flush(
                    &mut self.baselines[s.workload],
                    self.generations[s.workload],
                    kind,
                );
            }
        }
    }

    /// Why `ev`'s behaviour is inside a locked, high-confidence baseline, or `None`.
    pub fn covers(&self, ev: &Event) -> Option<String> {
        let c = ev.container.container()?;
        let b = self.get(&workload_of(c))?;
        if !b.locked || b.mode == Mode::Discover {
            return None;
        }
        let mut buf = String::new();
        let mut keys = Vec::new();
        item_keys(ev, &mut buf, &mut keys);
        if keys.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        for &(kind, s, e) in &keys {
            let key = &buf[s..e];
            let item = b.item(kind, key)?;
            if b.confidence(item, self.cfg.min_observations) != Confidence::High {
                return None;
            }
            parts.push(format!(
                "{} {key} seen {} times by {} replica(s)",
                kind.describe(),
                item.count,
                item.replicas.len()
            ));
        }
        Some(format!(
            "inside the locked baseline of workload {} ({}, high confidence)",
            b.workload,
            parts.join("; ")
        ))
    }

    /// Noise control: downgrades `alert` when its rule is generic (not critical, not
    /// excluded) and its behaviour is inside a locked, high-confidence baseline. The
    /// reason goes on the alert (`baseline.downgraded` and its original priority).
    pub fn downgrade(&mut self, alert: &mut Alert) -> bool {
        let n = &self.cfg.noise;
        if !n.enabled
            || alert.source == "baseline"
            || alert.priority <= Priority::Critical
            || alert.tags.iter().any(|t| t == "critical")
            || n.never.contains(&alert.rule)
            || (!n.rules.is_empty() && !n.rules.contains(&alert.rule))
            || alert.priority >= n.downgrade_to
        {
            return false;
        }
        let Some(reason) = self.covers(&alert.event) else {
            return false;
        };
        alert.output_fields.insert(
            "baseline.original_priority".into(),
            alert.priority.falco_name().into(),
        );
        alert
            .output_fields
            .insert("baseline.downgraded".into(), reason.into());
        alert.priority = n.downgrade_to;
        alert.tags.push(DOWNGRADED_TAG.into());
        self.stats.downgraded += 1;
        true
    }
}

/// Locks a baseline in `mode` (monitor when `discover` is asked) and fits its minute
/// model: what the node does when it is stable and what `rampart baseline lock` does.
pub fn lock(b: &mut Baseline, now_ns: u64, mode: Mode) {
    b.locked = true;
    b.locked_ns = now_ns;
    b.mode = if mode == Mode::Discover {
        Mode::Monitor
    } else {
        mode
    };
    b.features.fit();
}

/// Puts a baseline in `mode` as an operator asks (`rampart baseline mode`, the API's
/// `SetBaselineMode`): discover unlocks it; monitor or protect lock it (fitting the
/// minute model) unless it is locked already, when only the mode changes.
pub fn set_mode(b: &mut Baseline, now_ns: u64, mode: Mode) {
    if mode == Mode::Discover {
        unlock(b, now_ns);
    } else if b.locked {
        b.mode = mode;
    } else {
        lock(b, now_ns, mode);
    }
}

/// Unlocks a baseline: back to discover, learning again from what it holds.
pub fn unlock(b: &mut Baseline, now_ns: u64) {
    b.locked = false;
    b.mode = Mode::Discover;
    b.started_ns = now_ns;
    b.last_new_ns = now_ns;
}

/// The items one event yields, as (kind, start, end) ranges of `buf`.
fn item_keys(ev: &Event, buf: &mut String, keys: &mut Vec<(ItemKind, usize, usize)>) {
    use std::fmt::Write;
    buf.clear();
    keys.clear();
    let mut push = |buf: &mut String, kind: ItemKind, start: usize| {
        keys.push((kind, start, buf.len()));
    };
    match &ev.payload {
        Payload::Exec { .. } => {
            let Some(p) = &ev.process else { return };
            // The runtime's own `runc init` (run from a memfd) is not the workload's.
            if p.exe == "/" && p.argv.first().is_some_and(|a| a == "runc") {
                return;
            }
            buf.push_str(&p.exe);
            buf.push_str(" <- ");
            buf.push_str(p.ancestry.first().map_or("?", |a| parent_name(&a.exe)));
            buf.push_str(" : ");
            normalize::push_argv(buf, &p.argv);
            push(buf, ItemKind::Process, 0);
            let s = buf.len();
            push_decimal(buf, u64::from(p.euid));
            push(buf, ItemKind::User, s);
        }
        Payload::FileOpen {
            path, access, ret, ..
        } if *ret >= 0 => {
            if access.write || access.create || access.truncate {
                normalize::push_write_prefix(buf, path);
                push(buf, ItemKind::FileWrite, 0);
            } else if normalize::sensitive_read(path).is_some() {
                normalize::push_sensitive_key(buf, path);
                push(buf, ItemKind::SensitiveRead, 0);
            }
        }
        Payload::FileUnlink { path, ret }
        | Payload::FileChmod { path, ret, .. }
        | Payload::FileChown { path, ret, .. }
        | Payload::FileTruncate { path, ret, .. }
            if *ret >= 0 =>
        {
            normalize::push_write_prefix(buf, path);
            push(buf, ItemKind::FileWrite, 0);
        }
        Payload::FileRename { new_path, ret, .. } | Payload::FileLink { new_path, ret, .. }
            if *ret >= 0 =>
        {
            normalize::push_write_prefix(buf, new_path);
            push(buf, ItemKind::FileWrite, 0);
        }
        Payload::NetConnect {
            proto, remote, ret, ..
        } if *ret >= 0 || *ret == -115 => {
            if matches!(remote, SockAddr::Unix { .. } | SockAddr::Other { .. }) {
                return;
            }
            buf.push_str("out ");
            push_addr(buf, *proto, remote, true);
            push(buf, ItemKind::Network, 0);
        }
        Payload::NetAccept {
            proto,
            local: Some(local),
            ret,
            ..
        } if *ret >= 0 => {
            if matches!(local, SockAddr::Unix { .. } | SockAddr::Other { .. }) {
                return;
            }
            buf.push_str("in ");
            push_addr(buf, *proto, local, false);
            push(buf, ItemKind::Network, 0);
        }
        Payload::NetListen {
            proto,
            local: Some(local),
            ret,
            ..
        } if *ret >= 0 => {
            if matches!(local, SockAddr::Unix { .. } | SockAddr::Other { .. }) {
                return;
            }
            buf.push_str("listen ");
            push_addr(buf, *proto, local, false);
            push(buf, ItemKind::Network, 0);
        }
        Payload::DnsQuery { query, .. } => {
            for ch in query.chars() {
                buf.push(ch.to_ascii_lowercase());
            }
            push(buf, ItemKind::Dns, 0);
        }
        Payload::SetId { call, ret, .. } if *ret >= 0 => {
            buf.push_str(call);
            push(buf, ItemKind::Privilege, 0);
        }
        Payload::Capset { effective, ret, .. } if *ret >= 0 => {
            let _ = write!(buf, "capset {effective:#x}");
            push(buf, ItemKind::Privilege, 0);
        }
        Payload::Mount { call, fstype, .. } => {
            let _ = write!(buf, "{call} {fstype}");
            push(buf, ItemKind::Privilege, 0);
        }
        Payload::Namespace { call, .. }
        | Payload::ModuleLoad { call, .. }
        | Payload::ProcessVm { call, .. } => {
            buf.push_str(call);
            push(buf, ItemKind::Privilege, 0);
        }
        Payload::Ptrace { .. } | Payload::Bpf { .. } | Payload::Chroot { .. } => {
            buf.push_str(ev.kind().as_str());
            push(buf, ItemKind::Privilege, 0);
        }
        _ => {}
    }
}

/// A parent as a process key names it: the container runtime's processes (`runc`,
/// the containerd shim, `conmon`, `crun`), which start `docker exec`'s processes and
/// which one a process sees depends on timing, are all `<runtime>`.
fn parent_name(exe: &str) -> &str {
    let base = exe
        .as_bytes()
        .iter()
        .rposition(|&c| c == b'/')
        .map_or(exe, |i| &exe[i + 1..]);
    if exe == "/"
        || matches!(base, "runc" | "crun" | "conmon" | "containerd" | "dockerd")
        || base.starts_with("containerd-shim")
    {
        "<runtime>"
    } else {
        exe
    }
}

fn push_addr(buf: &mut String, proto: L4Proto, a: &SockAddr, with_ip: bool) {
    use std::fmt::Write;
    buf.push_str(match proto {
        L4Proto::Tcp => "tcp ",
        L4Proto::Udp => "udp ",
        L4Proto::Unix => "unix ",
        L4Proto::Other => "other ",
    });
    match (a.ip(), a.port()) {
        (Some(IpAddr::V4(ip)), Some(port)) if with_ip => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push('.');
                }
                push_decimal(buf, u64::from(octet));
            }
            buf.push(':');
            push_decimal(buf, u64::from(port));
        }
        (Some(ip), Some(port)) if with_ip => {
            let _ = write!(buf, "{ip}:{port}");
        }
        (_, Some(port)) => {
            buf.push(':');
            push_decimal(buf, u64::from(port));
        }
        _ => {}
    }
}

/// Appends `n` in decimal, as `{}` would, without `core::fmt`'s machinery (a
/// measurable share of the per-event cost when every event writes a number).
fn push_decimal(buf: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        buf.push(char::from(d));
    }
}

#[doc(hidden)]
pub mod reference;

#[cfg(test)]
mod tests;
