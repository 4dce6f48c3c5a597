//! The scoring path as it was first written, kept as the measure and the oracle of the
//! engine's: `rampart bench baseline` scores the same replayed events with it in the
//! same run (the comparison the engine's per-event figure is read against), and the
//! tests check that the engine classifies every item as it does.
//!
//! Per event it looks the container up several times, builds the keys through
//! `core::fmt` and the byte-at-a-time collapsing, looks each item up twice (to judge,
//! then to count), starts every minute with fresh sets, and keeps the container's last
//! event (an `Arc` swapped, the old one often freed, on every event). It only scores:
//! baselines are locked before it sees them, and what is outside is counted, not raised.

use std::collections::HashMap;
use std::sync::Arc;

use rampart_event::{Container, Event, L4Proto, Payload, SockAddr};

use super::{parent_name, workload_of, MINUTE_NS};
use crate::anomaly::Window;
use crate::model::{Baseline, Confidence, FastMap, ItemKind};
use crate::normalize;

struct Slot {
    workload: usize,
    window: Window,
    last_event: Option<Arc<Event>>,
}

/// Scores events against locked baselines the way the engine first did.
pub struct Scorer {
    baselines: Vec<Baseline>,
    by_name: HashMap<String, usize>,
    slots: FastMap<u64, Slot>,
    min_observations: u64,
    key_buf: String,
    keys: Vec<(ItemKind, usize, usize)>,
    /// Items outside the baseline (what the engine raises or suppresses as repeats).
    pub outside: u64,
    /// Minutes scored against the fitted model.
    pub minutes_scored: u64,
}

impl Scorer {
    /// A scorer over `baselines` (locked, as the engine holds them).
    pub fn new(baselines: Vec<Baseline>, min_observations: u64) -> Self {
        let by_name = baselines
            .iter()
            .enumerate()
            .map(|(i, b)| (b.workload.clone(), i))
            .collect();
        Self {
            baselines,
            by_name,
            slots: FastMap::default(),
            min_observations,
            key_buf: String::with_capacity(256),
            keys: Vec::with_capacity(2),
            outside: 0,
            minutes_scored: 0,
        }
    }

    pub fn baselines(&self) -> &[Baseline] {
        &self.baselines
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

    /// Scores one event.
    pub fn observe(&mut self, ev: &Arc<Event>) {
        let Some(c) = ev.container.container() else {
            return;
        };
        if c.id.is_empty() {
            return;
        }
        let key = Self::slot_key(c);
        if !self.slots.contains_key(&key) {
            let Some(&w) = self.by_name.get(&workload_of(c)) else {
                return;
            };
            self.slots.insert(
                key,
                Slot {
                    workload: w,
                    window: Window::new(ev.ts_ns / MINUTE_NS),
                    last_event: None,
                },
            );
        }
        let minute = ev.ts_ns / MINUTE_NS;
        let (w, window_minute) = match self.slots.get(&key) {
            Some(s) => (s.workload, s.window.minute),
            None => return,
        };
        if minute > window_minute {
            if let Some(s) = self.slots.get_mut(&key) {
                let old = std::mem::replace(&mut s.window, Window::new(minute));
                if !old.is_empty() {
                    let v = old.vector();
                    if self.baselines[w].features.score(&v, 3).is_some() {
                        self.minutes_scored += 1;
                    }
                }
            }
        }
        if let Some(s) = self.slots.get_mut(&key) {
            s.window.count(ev);
        }
        let mut keys = std::mem::take(&mut self.keys);
        let mut buf = std::mem::take(&mut self.key_buf);
        item_keys(ev, &mut buf, &mut keys);
        let upper = ev.process.as_ref().is_some_and(|p| p.exe_upper_layer);
        for &(kind, start, end) in &keys {
            let k = &buf[start..end];
            let b = &mut self.baselines[w];
            let upper = upper && kind == ItemKind::Process;
            let normal = match b.items.get(&kind).and_then(|m| m.get(k)) {
                Some(item) => {
                    matches!(
                        b.confidence(item, self.min_observations),
                        Confidence::Medium | Confidence::High
                    ) && !upper
                }
                None => false,
            };
            if normal {
                if let Some(item) = b.items.get_mut(&kind).and_then(|m| m.get_mut(k)) {
                    item.count += 1;
                    item.last_ns = item.last_ns.max(ev.ts_ns);
                }
            } else {
                self.outside += 1;
            }
        }
        self.keys = keys;
        self.key_buf = buf;
        if let Some(s) = self.slots.get_mut(&key) {
            s.last_event = Some(ev.clone());
        }
    }
}

/// The items one event yields, as first written (numbers and addresses through
/// `core::fmt`, the plain collapsing).
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
            normalize::reference::push_argv(buf, &p.argv);
            push(buf, ItemKind::Process, 0);
            let s = buf.len();
            let _ = write!(buf, "{}", p.euid);
            push(buf, ItemKind::User, s);
        }
        Payload::FileOpen {
            path, access, ret, ..
        } if *ret >= 0 => {
            if access.write || access.create || access.truncate {
                normalize::reference::push_write_prefix(buf, path);
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
            normalize::reference::push_write_prefix(buf, path);
            push(buf, ItemKind::FileWrite, 0);
        }
        Payload::FileRename { new_path, ret, .. } | Payload::FileLink { new_path, ret, .. }
            if *ret >= 0 =>
        {
            normalize::reference::push_write_prefix(buf, new_path);
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

fn push_addr(buf: &mut String, proto: L4Proto, a: &SockAddr, with_ip: bool) {
    use std::fmt::Write;
    buf.push_str(match proto {
        L4Proto::Tcp => "tcp ",
        L4Proto::Udp => "udp ",
        L4Proto::Unix => "unix ",
        L4Proto::Other => "other ",
    });
    match (a.ip(), a.port()) {
        (Some(ip), Some(port)) if with_ip => {
            let _ = write!(buf, "{ip}:{port}");
        }
        (_, Some(port)) => {
            let _ = write!(buf, ":{port}");
        }
        _ => {}
    }
}
