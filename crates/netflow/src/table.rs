//! The node's flow table in user space: the kernel's per-flow counters (read whole,
//! never per packet) with names, processes and TLS facts joined on, and the ports
//! each container listens on.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use rampart_bpf::netflow::{ConnectOwner, FlowEnds, Initiator, KernelFlow};
use rampart_event::{Event, Payload};

use crate::directory::Directory;
use crate::dns::DnsMessage;
use crate::flow::{Direction, Flow, Peer, ProcessRef, Proto, TlsInfo};

/// A flow's identity: cgroup, protocol and both ends.
pub type FlowId = (u64, u8, IpAddr, u16, IpAddr, u16);

fn id_of(k: &KernelFlow) -> FlowId {
    (
        k.cgroup_id,
        k.proto,
        k.local,
        k.local_port,
        k.remote,
        k.remote_port,
    )
}

type Connectors = HashMap<(u64, u8, IpAddr, u16), ProcessRef>;
type Listeners = HashMap<(u64, u8, u16), ProcessRef>;

fn process_for(c: &Connectors, l: &Listeners, k: &KernelFlow) -> Option<ProcessRef> {
    match k.initiator {
        Initiator::Remote => l.get(&(k.cgroup_id, k.proto, k.local_port)).cloned(),
        _ => c
            .get(&(k.cgroup_id, k.proto, k.remote, k.remote_port))
            .cloned(),
    }
}

/// Flows and listening ports of the containers on this node.
#[derive(Debug, Default)]
pub struct FlowTable {
    flows: HashMap<FlowId, Flow>,
    /// Who connected to a remote end: (cgroup, proto, remote, port).
    connectors: Connectors,
    /// Who listens on a port: (cgroup, proto, port).
    listeners: Listeners,
    listening: BTreeMap<u64, BTreeSet<(Proto, u16)>>,
    tls: HashMap<FlowId, TlsInfo>,
    /// The directory's version the peers were last named from.
    named_at: Option<u64>,
    /// Flows by when they were taken in (first seen, id), oldest first: the flood
    /// detectors look at recent flows without walking the table.
    recent: VecDeque<(u64, FlowId)>,
}

impl FlowTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    pub fn flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows.values()
    }

    pub fn get(&self, id: &FlowId) -> Option<&Flow> {
        self.flows.get(id)
    }

    /// Whether the process that connected from `cgroup_id` to `remote`:`port` is known.
    pub fn knows_connector(&self, cgroup_id: u64, proto: u8, remote: IpAddr, port: u16) -> bool {
        self.connectors
            .contains_key(&(cgroup_id, proto, remote, port))
    }

    /// Whether a flow the kernel counted is in the table already.
    pub fn contains(&self, k: &KernelFlow) -> bool {
        self.flows.contains_key(&id_of(k))
    }

    /// Takes in the kernel's counters for one flow. Returns true when the flow is
    /// new to the table.
    pub fn update(&mut self, k: &KernelFlow, dir: &Directory) -> bool {
        let id = id_of(k);
        if let Some(f) = self.flows.get_mut(&id) {
            f.bytes_out = k.bytes_out;
            f.packets_out = k.packets_out;
            f.bytes_in = k.bytes_in;
            f.packets_in = k.packets_in;
            f.last_ns = k.last_ns;
            f.tcp_flags_out = k.tcp_flags_out;
            f.tcp_flags_in = k.tcp_flags_in;
            if f.process.is_none() {
                f.process = process_for(&self.connectors, &self.listeners, k);
            }
            return false;
        }
        let direction = match k.initiator {
            Initiator::Local => Direction::Outbound,
            Initiator::Remote => Direction::Inbound,
            Initiator::Unknown => Direction::Unknown,
        };
        if direction == Direction::Inbound && k.proto == rampart_bpf::netflow::TCP {
            self.listening
                .entry(k.cgroup_id)
                .or_default()
                .insert((Proto::Tcp, k.local_port));
        }
        let container = dir.container(k.cgroup_id);
        let flow = Flow {
            cgroup_id: k.cgroup_id,
            container_id: container.map(|c| c.id.clone()).unwrap_or_default(),
            workload: container.map(|c| c.workload()).unwrap_or_default(),
            proto: Proto::from_number(k.proto),
            local_ip: k.local,
            local_port: k.local_port,
            remote_ip: k.remote,
            remote_port: k.remote_port,
            direction,
            bytes_out: k.bytes_out,
            packets_out: k.packets_out,
            bytes_in: k.bytes_in,
            packets_in: k.packets_in,
            first_ns: k.first_ns,
            last_ns: k.last_ns,
            tcp_flags_out: k.tcp_flags_out,
            tcp_flags_in: k.tcp_flags_in,
            peer: dir.peer(k.cgroup_id, &k.remote),
            process: process_for(&self.connectors, &self.listeners, k),
            tls: self.tls.remove(&id),
        };
        self.recent.push_back((flow.first_ns, id));
        self.flows.insert(id, flow);
        true
    }

    /// Takes in a whole read of the kernel's table; returns the ids of new flows.
    pub fn ingest(&mut self, flows: &[KernelFlow], dir: &Directory) -> Vec<FlowId> {
        let mut new = Vec::new();
        for k in flows {
            if self.update(k, dir) {
                new.push(id_of(k));
            }
        }
        new
    }

    /// The kernel's record of who connected where (`cgroup/connect4|6`).
    pub fn learn_owner(&mut self, o: &ConnectOwner) {
        self.connectors
            .entry((o.cgroup_id, o.proto, o.remote, o.remote_port))
            .or_insert_with(|| ProcessRef {
                pid: o.pid,
                comm: o.comm.clone(),
                exe: String::new(),
            });
    }

    /// A sensor event: connects name their process (with its executable), listens
    /// and accepts name the listening ports and their process.
    pub fn observe_event(&mut self, ev: &Event) {
        let Some(c) = ev.container.container() else {
            return;
        };
        let cgid = c.cgroup_id;
        let process = ev.process.as_ref().map(|p| ProcessRef {
            pid: p.pid,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
        });
        let proto_num = |p: &rampart_event::L4Proto| match p {
            rampart_event::L4Proto::Tcp => 6u8,
            rampart_event::L4Proto::Udp => 17,
            _ => 0,
        };
        match &ev.payload {
            Payload::NetConnect { proto, remote, .. } => {
                if let (Some(ip), Some(port), Some(p)) = (remote.ip(), remote.port(), process) {
                    self.connectors
                        .insert((cgid, proto_num(proto), ip, port), p);
                }
            }
            Payload::NetListen {
                proto,
                local: Some(local),
                ret,
                ..
            } if *ret == 0 => {
                if let Some(port) = local.port() {
                    let n = proto_num(proto);
                    self.listening
                        .entry(cgid)
                        .or_default()
                        .insert((Proto::from_number(n), port));
                    if let Some(p) = process {
                        self.listeners.insert((cgid, n, port), p);
                    }
                }
            }
            Payload::NetAccept {
                proto,
                local: Some(local),
                ..
            } => {
                if let (Some(port), Some(p)) = (local.port(), process) {
                    self.listeners
                        .entry((cgid, proto_num(proto), port))
                        .or_insert(p);
                }
            }
            _ => {}
        }
    }

    /// A DNS answer the container received: teaches the directory which names its
    /// addresses came from.
    pub fn learn_dns(dir: &mut Directory, cgroup_id: u64, msg: &DnsMessage, now_ns: u64) {
        for (_, ip) in &msg.addresses {
            if let Some(name) = msg.asked_name_for(ip) {
                dir.learn_dns(cgroup_id, name, *ip, now_ns);
            }
        }
    }

    /// What the flow's ClientHello said (before or after the flow is in the table).
    pub fn set_tls(&mut self, ends: &FlowEnds, info: TlsInfo) {
        let id = (
            ends.cgroup_id,
            ends.proto,
            ends.local,
            ends.local_port,
            ends.remote,
            ends.remote_port,
        );
        match self.flows.get_mut(&id) {
            Some(f) => f.tls = Some(info),
            None => {
                self.tls.insert(id, info);
            }
        }
    }

    /// A port the kernel found listened on (socket accounting's iterator).
    pub fn learn_listening(&mut self, cgroup_id: u64, proto: Proto, port: u16) {
        self.listening
            .entry(cgroup_id)
            .or_default()
            .insert((proto, port));
    }

    /// The ports a container listens on.
    pub fn listening(&self, cgroup_id: u64) -> Vec<(Proto, u16)> {
        self.listening
            .get(&cgroup_id)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Names peers again (the directory learned of new containers or names); does
    /// nothing when no name changed since the last call.
    pub fn rename(&mut self, dir: &Directory) {
        if self.named_at == Some(dir.version()) {
            return;
        }
        self.named_at = Some(dir.version());
        for f in self.flows.values_mut() {
            if matches!(f.peer, Peer::External { dns_name: None }) || f.container_id.is_empty() {
                f.peer = dir.peer(f.cgroup_id, &f.remote_ip);
                if let Some(c) = dir.container(f.cgroup_id) {
                    f.container_id = c.id.clone();
                    f.workload = c.workload();
                }
            }
        }
    }

    /// Drops flows last seen before `before_ns`; returns how many.
    pub fn expire(&mut self, before_ns: u64) -> usize {
        self.expire_ids(before_ns).len()
    }

    /// Drops flows last seen before `before_ns`; returns their ids (for the kernel's
    /// table to drop them too).
    pub fn expire_ids(&mut self, before_ns: u64) -> Vec<FlowId> {
        let mut gone = Vec::new();
        self.flows.retain(|id, f| {
            let keep = f.last_ns >= before_ns;
            if !keep {
                gone.push(*id);
            }
            keep
        });
        gone
    }

    /// Adds a flow as it is (replay, tests, benches).
    pub fn insert(&mut self, f: Flow) {
        let id = (
            f.cgroup_id,
            f.proto.number(),
            f.local_ip,
            f.local_port,
            f.remote_ip,
            f.remote_port,
        );
        let first_ns = f.first_ns;
        if self.flows.insert(id, f).is_none() {
            self.recent.push_back((first_ns, id));
        }
    }

    /// Forgets, for [`Self::recent_flows`], flows first seen before `before_ns`.
    pub fn trim_recent(&mut self, before_ns: u64) {
        // Taken in roughly in order of first sight: a straggler behind a newer flow
        // stays until that one goes, and `recent_flows` filters it out.
        while self.recent.front().is_some_and(|(t, _)| *t < before_ns) {
            self.recent.pop_front();
        }
    }

    /// The flows first seen at or after `since_ns` (of those not trimmed), without
    /// walking the whole table.
    pub fn recent_flows(&self, since_ns: u64) -> impl Iterator<Item = &Flow> {
        self.recent
            .iter()
            .filter(move |(t, _)| *t >= since_ns)
            .filter_map(|(_, id)| self.flows.get(id))
            .filter(move |f| f.first_ns >= since_ns)
    }
}
