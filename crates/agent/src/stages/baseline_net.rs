//! Protect mode's network half for the baseline stage: a container of a workload whose
//! baseline is locked in protect mode may open only the connections its baseline
//! learned (and accept only on the ports it learned), enforced in the kernel by the
//! network part's segmentation programs through [`EdgeGuard`]: a connect to anything
//! else fails in the container with EPERM and is reported here as an alert naming the
//! edge, the process, the container and the workload, with the edges it has.
//!
//! The allow list is the baseline's normal network ([`NetworkAllow`]): learned
//! destination address and port, inbound ports, and the addresses the container
//! resolves its normal DNS names to (read from the DNS answers it receives while
//! guarded, on the ports of its learned outbound edges). A new address of a normal name
//! is allowed once its answer has been read, a fraction of a second after it arrives: a
//! connect racing its own answer is refused once and goes through on retry.
//!
//! The guard loads on the first protected container and its rules lift when the
//! workload leaves protect, the container ends, or the node stops (the network rules
//! are not pinned, unlike the exec denials).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rampart_baseline::netallow::{self, AllowedEdge, EdgeDirection, NetworkAllow};
use rampart_baseline::{Baseline, ProtectRequest};
use rampart_bpf::netflow::{SegDirection, SegRule};
use rampart_event::{Alert, Event, L4Proto, Payload, Priority, Process, SockAddr, Workload};
use rampart_netflow::guard::{EdgeGuard, GuardEvent};

/// The rule name of a refused edge.
pub const BLOCKED_RULE: &str = "Network edge outside the workload baseline blocked";
const NS: u64 = 1_000_000_000;
/// Edges named in an alert's explanation.
const EDGES_NAMED: usize = 8;
/// Refused edges remembered for `repeat_secs`; past it the memory starts over (a scan
/// of many addresses must not grow it without bound).
const MAX_REMEMBERED: usize = 10_000;

struct Guarded {
    container_id: String,
    /// Its cgroup v2 directory (the guard's programs are attached there).
    dir: PathBuf,
    workload: String,
    name: String,
    container: Arc<Workload>,
    allow: NetworkAllow,
    /// Edges to addresses the container resolved its normal names to.
    resolved: BTreeSet<AllowedEdge>,
}

impl Guarded {
    fn rules(&self) -> Vec<SegRule> {
        self.allow
            .edges
            .iter()
            .chain(&self.resolved)
            .map(|e| {
                let direction = match e.direction {
                    EdgeDirection::Outbound => SegDirection::Outbound,
                    EdgeDirection::Inbound => SegDirection::Inbound,
                };
                SegRule::exact(direction, e.proto, e.addr, e.port)
            })
            .collect()
    }
}

/// The kernel network protection of protected workloads' containers.
#[derive(Default)]
pub(super) struct NetProtect {
    guard: Option<EdgeGuard>,
    /// By cgroup id.
    guarded: HashMap<u64, Guarded>,
    /// Last alert per (cgroup, edge key), for `repeat_secs`.
    last_alert: HashMap<(u64, String), u64>,
    seq: u64,
}

impl NetProtect {
    fn guard(&mut self) -> Option<&mut EdgeGuard> {
        if self.guard.is_none() {
            match EdgeGuard::start(None) {
                Ok(g) => self.guard = Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, "protect: network edges cannot be enforced in the kernel");
                    return None;
                }
            }
        }
        self.guard.as_mut()
    }

    /// Puts the network half of protect in force for `req`'s container (cgroup v2
    /// directory `dir`, id `cgroup_id`), from the workload's baseline `b`.
    pub(super) fn protect(
        &mut self,
        req: &ProtectRequest,
        dir: Option<PathBuf>,
        cgroup_id: Option<u64>,
        b: &Baseline,
        min_observations: u64,
    ) {
        let (Some(dir), Some(cgroup_id)) = (dir, cgroup_id) else {
            tracing::warn!(container = %req.container_name, "protect: no cgroup v2 directory; network edges not enforced");
            return;
        };
        let allow = NetworkAllow::of(b, min_observations);
        let Some(guard) = self.guard() else { return };
        let mut resolved = BTreeSet::new();
        for name in &allow.dns_names {
            for ip in guard.resolved_ips(cgroup_id, name) {
                resolved.extend(allow.edges_for_resolved(ip));
            }
        }
        let g = Guarded {
            container_id: req.container_id.clone(),
            dir: dir.clone(),
            workload: req.workload.clone(),
            name: req.container_name.clone(),
            container: req.container.clone(),
            allow,
            resolved,
        };
        match guard.guard(&dir, cgroup_id, &g.rules()) {
            Ok(changed) => {
                if changed {
                    tracing::info!(
                        workload = %g.workload,
                        container = %g.name,
                        edges = g.allow.edges.len(),
                        dns_names = g.allow.dns_names.len(),
                        "protect: network edges outside the baseline refused in the kernel"
                    );
                }
                self.guarded.insert(cgroup_id, g);
            }
            Err(e) => {
                tracing::warn!(workload = %g.workload, container = %g.name, error = %e, "protect: network edges not enforced")
            }
        }
    }

    /// Lifts the protection of the containers `keep` says no to.
    pub(super) fn release_unless(&mut self, keep: impl Fn(&str, &str) -> bool) {
        let gone: Vec<u64> = self
            .guarded
            .iter()
            .filter(|(_, g)| !keep(&g.container_id, &g.workload))
            .map(|(cg, _)| *cg)
            .collect();
        for cg in gone {
            self.release(cg);
        }
    }

    /// Lifts a container's protection (its end).
    pub(super) fn release_container(&mut self, container_id: &str) {
        self.release_unless(|id, _| id != container_id);
    }

    fn release(&mut self, cgroup_id: u64) {
        let Some(g) = self.guarded.remove(&cgroup_id) else {
            return;
        };
        if let Some(guard) = self.guard.as_mut() {
            match guard.release(cgroup_id) {
                Ok(()) => {
                    tracing::info!(workload = %g.workload, container = %g.name, "protect: network edges no longer enforced")
                }
                Err(e) => {
                    tracing::warn!(container = %g.name, error = %e, "protect: network rules not lifted")
                }
            }
        }
        self.last_alert.retain(|(cg, _), _| *cg != cgroup_id);
    }

    /// Reads what the kernel refused (alerts into `out`) and the names guarded
    /// containers resolved (their addresses allowed when the name is normal).
    pub(super) fn poll(
        &mut self,
        repeat_secs: u64,
        min_observations: u64,
        baseline: impl Fn(&str) -> Option<Baseline>,
        out: &mut Vec<Alert>,
    ) {
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        let mut events = Vec::new();
        guard.poll(&mut events);
        for ev in events {
            match ev {
                GuardEvent::Resolved {
                    cgroup_id,
                    name,
                    addresses,
                    ..
                } => self.resolved(cgroup_id, &name, &addresses),
                GuardEvent::Denied {
                    cgroup_id,
                    direction,
                    proto,
                    remote,
                    port,
                    pid,
                    comm,
                    ts_ns,
                } => {
                    let Some(g) = self.guarded.get(&cgroup_id) else {
                        continue;
                    };
                    let edge = AllowedEdge {
                        direction: match direction {
                            SegDirection::Outbound => EdgeDirection::Outbound,
                            SegDirection::Inbound => EdgeDirection::Inbound,
                        },
                        proto,
                        addr: Some(remote),
                        port,
                    };
                    let key = edge.key();
                    if self.last_alert.len() >= MAX_REMEMBERED {
                        self.last_alert.clear();
                    }
                    let last = self.last_alert.entry((cgroup_id, key)).or_insert(0);
                    if *last != 0 && ts_ns.saturating_sub(*last) < repeat_secs * NS {
                        continue;
                    }
                    *last = ts_ns;
                    let b = baseline(&g.workload);
                    self.seq += 1;
                    out.push(blocked_alert(
                        g,
                        &edge,
                        b.as_ref(),
                        min_observations,
                        (pid, &comm),
                        ts_ns,
                        self.seq,
                    ));
                }
            }
        }
    }

    fn resolved(&mut self, cgroup_id: u64, name: &str, addresses: &[IpAddr]) {
        let Some(g) = self.guarded.get_mut(&cgroup_id) else {
            return;
        };
        if !g.allow.dns_names.contains(name) {
            return;
        }
        let before = g.resolved.len();
        for ip in addresses {
            g.resolved.extend(g.allow.edges_for_resolved(*ip));
        }
        if g.resolved.len() == before {
            return;
        }
        let rules = g.rules();
        let Some(guard) = self.guard.as_mut() else {
            return;
        };
        match guard.guard(&g.dir, cgroup_id, &rules) {
            Ok(_) => {
                tracing::info!(workload = %g.workload, container = %g.name, name, addresses = ?addresses, "protect: a normal DNS name's new addresses allowed")
            }
            Err(e) => {
                tracing::warn!(container = %g.name, error = %e, "protect: resolved addresses not allowed")
            }
        }
    }
}

fn blocked_alert(
    g: &Guarded,
    edge: &AllowedEdge,
    b: Option<&Baseline>,
    min_observations: u64,
    (pid, comm): (u32, &str),
    ts_ns: u64,
    seq: u64,
) -> Alert {
    let reason = b.map_or(rampart_baseline::engine::Reason::New, |b| {
        netallow::reason_outside(b, edge, min_observations)
    });
    let key = edge.key();
    let mut learned: Vec<String> = g.allow.edges.iter().map(AllowedEdge::key).collect();
    let more = learned.len().saturating_sub(EDGES_NAMED);
    learned.truncate(EDGES_NAMED);
    let learned = if learned.is_empty() {
        "none".to_string()
    } else if more > 0 {
        format!("{} and {more} more", learned.join(", "))
    } else {
        learned.join(", ")
    };
    let who = if pid != 0 {
        format!("process {comm}[{pid}]")
    } else {
        "a peer".to_string()
    };
    let what = match edge.direction {
        EdgeDirection::Outbound => "connect refused",
        EdgeDirection::Inbound => "inbound connection dropped",
    };
    let short = &g.container_id[..g.container_id.len().min(12)];
    let message = format!(
        "network edge {key} is outside the baseline of workload {} ({}); {what} in the kernel (protect mode): {who} in container {} ({short}); the workload's learned edges: {learned}",
        g.workload,
        reason.as_str(),
        g.name,
    );
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("baseline.workload".into(), g.workload.clone().into());
    fields.insert("baseline.kind".into(), "network".into());
    fields.insert("baseline.item".into(), key.into());
    fields.insert("baseline.reason".into(), reason.as_str().into());
    fields.insert("baseline.mode".into(), "protect".into());
    fields.insert("container.name".into(), g.name.clone().into());
    fields.insert("container.id".into(), g.container_id.clone().into());
    if let Some(ip) = edge.addr {
        fields.insert("net.remote".into(), format!("{ip}:{}", edge.port).into());
    }
    fields.insert("proc.name".into(), comm.into());
    let remote = SockAddr::Inet {
        ip: edge.addr.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        port: edge.port,
    };
    let event = Event {
        schema: rampart_event::SCHEMA_VERSION,
        ts_ns,
        host: Arc::from(rampart_sensor::hostname().as_str()),
        seq: 0,
        process: (pid != 0).then(|| {
            Arc::new(Process {
                pid,
                tid: pid,
                comm: comm.to_string(),
                ..Process::default()
            })
        }),
        container: g.container.clone(),
        compat_syscall: false,
        payload: Payload::NetConnect {
            proto: match edge.proto {
                netallow::TCP => L4Proto::Tcp,
                netallow::UDP => L4Proto::Udp,
                _ => L4Proto::Other,
            },
            local: None,
            remote,
            // EPERM: what the container's connect returned.
            ret: -1,
        },
    };
    Alert {
        id: format!("bn{ts_ns:016x}{seq:06x}"),
        ts_ns,
        first_ts_ns: ts_ns,
        count: 1,
        rule: BLOCKED_RULE.into(),
        priority: Priority::Error,
        mitre: vec!["TA0011".into(), "TA0008".into()],
        tags: vec![
            "baseline".into(),
            "baseline_deviation".into(),
            "network".into(),
        ],
        message,
        output_fields: fields,
        source: "baseline".into(),
        event,
        retro: false,
    }
}
