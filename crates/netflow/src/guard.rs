//! Protect mode for another part's allow lists: the kernel segmentation of
//! [`crate::segment`] (the same netflow programs and maps: `cgroup/connect4|6`,
//! `sendmsg4|6` and the inbound SYN check), driven by an allow list someone else decides
//! (the behaviour baselines' learned edges) rather than by this crate's segmentation.
//!
//! A guard is its own load of the netflow object, attached to the guarded containers'
//! own cgroup directories only, so the containers nobody guards pay nothing twice and the
//! network engine's segmentation stays independent of it: a connect must pass every
//! protect mode that applies (the kernel runs each attached program and refuses when one
//! says no). It reads back what it refused and the DNS answers the guarded containers
//! received, so names can be followed to the addresses they resolve to.
//!
//! Like the engine's, the guard's rules live as long as the process: they are not pinned,
//! so they lift when the node stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rampart_bpf::netflow::{NetRecord, NetflowOptions, NetflowProbe, SegDirection, SegRule};

use crate::directory::Directory;
use crate::table::FlowTable;
use crate::{dns, NetflowError};

/// What a guard saw in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardEvent {
    /// A connection refused (outbound: the connect failed; inbound: the SYN dropped).
    Denied {
        cgroup_id: u64,
        direction: SegDirection,
        proto: u8,
        /// The peer's address.
        remote: IpAddr,
        /// The peer's port (outbound) or the container's (inbound).
        port: u16,
        /// The process that connected (outbound only; 0 and empty inbound).
        pid: u32,
        comm: String,
        ts_ns: u64,
    },
    /// A guarded container received a DNS answer: `name` (the name it asked for)
    /// resolves to `addresses`.
    Resolved {
        cgroup_id: u64,
        name: String,
        addresses: Vec<IpAddr>,
        ts_ns: u64,
    },
}

/// Kernel protect mode for containers whose allow list is decided elsewhere.
pub struct EdgeGuard {
    probe: NetflowProbe,
    /// Guarded cgroups and the rules in force for each.
    guarded: HashMap<u64, Vec<SegRule>>,
    /// Names each guarded container resolved, with their addresses.
    names: Directory,
    records: Vec<NetRecord>,
}

impl EdgeGuard {
    /// Loads the netflow programs (`object`, else the embedded one), reading DNS answers
    /// but not first payloads; nothing is attached until a container is guarded.
    pub fn start(object: Option<&[u8]>) -> Result<Self, NetflowError> {
        let probe = NetflowProbe::load(
            object,
            NetflowOptions {
                dns: true,
                tls: false,
                ..NetflowOptions::default()
            },
        )?;
        Ok(Self {
            probe,
            guarded: HashMap::new(),
            names: Directory::new(),
            records: Vec::new(),
        })
    }

    /// Puts `rules` in force for the container of `cgroup_id` (whose cgroup v2 directory
    /// is `cgroup_dir`): only those edges may begin. Replaces what it had; rules equal
    /// to those in force change nothing in the kernel. True when the kernel changed.
    pub fn guard(
        &mut self,
        cgroup_dir: &Path,
        cgroup_id: u64,
        rules: &[SegRule],
    ) -> Result<bool, NetflowError> {
        let mut sorted = rules.to_vec();
        sorted.sort_by_key(|r| format!("{r:?}"));
        sorted.dedup();
        if self.guarded.get(&cgroup_id) == Some(&sorted) {
            return Ok(false);
        }
        self.probe.attach(cgroup_dir)?;
        self.probe.protect(cgroup_id, &sorted)?;
        self.guarded.insert(cgroup_id, sorted);
        Ok(true)
    }

    /// Ends protect mode for a container (nothing when it was not guarded).
    pub fn release(&mut self, cgroup_id: u64) -> Result<(), NetflowError> {
        if self.guarded.remove(&cgroup_id).is_some() {
            self.probe.unprotect(cgroup_id)?;
        }
        self.names.remove(cgroup_id);
        Ok(())
    }

    /// The rules in force for a container, if it is guarded.
    pub fn rules(&self, cgroup_id: u64) -> Option<&[SegRule]> {
        self.guarded.get(&cgroup_id).map(Vec::as_slice)
    }

    /// Guarded containers.
    pub fn guarded(&self) -> impl Iterator<Item = u64> + '_ {
        self.guarded.keys().copied()
    }

    /// The cgroup directories the programs were attached to.
    pub fn attached(&self) -> &[PathBuf] {
        self.probe.attached()
    }

    /// Every address the container resolved `name` to while guarded.
    pub fn resolved_ips(&self, cgroup_id: u64, name: &str) -> Vec<IpAddr> {
        self.names.resolved_ips(cgroup_id, name)
    }

    /// Drains what the kernel reported since the last call into `out`.
    pub fn poll(&mut self, out: &mut Vec<GuardEvent>) {
        self.records.clear();
        self.probe.read_records(&mut self.records);
        for r in &self.records {
            match r {
                NetRecord::ConnectDenied {
                    flow,
                    ts_ns,
                    pid,
                    comm,
                } => out.push(GuardEvent::Denied {
                    cgroup_id: flow.cgroup_id,
                    direction: SegDirection::Outbound,
                    proto: flow.proto,
                    remote: flow.remote,
                    port: flow.remote_port,
                    pid: *pid,
                    comm: comm.clone(),
                    ts_ns: *ts_ns,
                }),
                NetRecord::InboundDenied { flow, ts_ns } => out.push(GuardEvent::Denied {
                    cgroup_id: flow.cgroup_id,
                    direction: SegDirection::Inbound,
                    proto: flow.proto,
                    remote: flow.remote,
                    port: flow.local_port,
                    pid: 0,
                    comm: String::new(),
                    ts_ns: *ts_ns,
                }),
                NetRecord::DnsAnswer {
                    flow,
                    ts_ns,
                    message,
                } => {
                    let Some(msg) = dns::parse(message) else {
                        continue;
                    };
                    FlowTable::learn_dns(&mut self.names, flow.cgroup_id, &msg, *ts_ns);
                    let mut by_name: HashMap<&str, Vec<IpAddr>> = HashMap::new();
                    for (_, ip) in &msg.addresses {
                        if let Some(name) = msg.asked_name_for(ip) {
                            by_name.entry(name).or_default().push(*ip);
                        }
                    }
                    for (name, addresses) in by_name {
                        out.push(GuardEvent::Resolved {
                            cgroup_id: flow.cgroup_id,
                            name: name.trim_end_matches('.').to_string(),
                            addresses,
                            ts_ns: *ts_ns,
                        });
                    }
                }
                NetRecord::TlsClientHello { .. } | NetRecord::FirstData { .. } => {}
            }
        }
    }
}
