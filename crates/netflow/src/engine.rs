//! The node's network engine: the kernel programs, the directory of names, the flow
//! table, segmentation, detectors and capture buffers, driven by [`NetworkEngine::poll`]
//! (once a second or so). The agent's netflow stage and `rampart net` both run it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use rampart_bpf::netflow::{
    Accounting, FlowEnds, NetRecord, NetflowOptions, NetflowProbe, NetflowStats, SegRule,
};
use rampart_event::{Alert, Event, Priority};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::capture::{CaptureBuffers, CaptureConfig};
use crate::detect::{to_alert, Detection, DetectorConfig, Detectors, FlowRef};
use crate::directory::{docker_parent_dirs, Directory};
use crate::flow::{Direction, Flow, Proto};
use crate::graph::{self, peer_node, Graph, GraphQuery};
use crate::segment::{EdgeDirection, Mode, Segmentation, SegmentationConfig};
use crate::table::FlowTable;
use crate::{dns, tls, NetflowError};

const NS: u64 = 1_000_000_000;

/// The `network:` section of the node configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub enabled: bool,
    /// cgroup v2 directories to attach to; empty: Docker's.
    pub cgroup_dirs: Vec<PathBuf>,
    /// Where TCP flows are counted: `packets` (cgroup_skb on every packet; UDP
    /// flows, DNS answers and first payloads too) or `sockets` (from the sockets,
    /// nothing on the packet path until a capture or protect mode needs it; DNS
    /// answers from the resolvers' recvfrom/recvmsg/recvmmsg, not from those that
    /// read() them; first payloads from tcp_sendmsg where the kernel has BPF
    /// trampolines; no UDP flows).
    pub accounting: Accounting,
    /// Read DNS answers (names of external peers, DNS detectors).
    pub dns: bool,
    /// Read each TCP flow's first payload (TLS SNI/JA4, plaintext protocols).
    pub first_payload: bool,
    /// Flows idle this long leave the table.
    pub flow_ttl_secs: u64,
    /// Seconds between re-reads of the container runtime's list.
    pub directory_refresh_secs: u64,
    pub segmentation: SegmentationConfig,
    /// Where baselines are kept (YAML), read at start and written on change;
    /// default `<state_dir>/baselines.yaml`.
    pub baselines_file: Option<PathBuf>,
    /// Where the node writes its flow table (`flows.json`, every few seconds) for
    /// `rampart net graph` to read; null: nowhere.
    pub state_dir: Option<PathBuf>,
    pub detectors: DetectorConfig,
    pub capture: CaptureConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cgroup_dirs: Vec::new(),
            accounting: Accounting::Packets,
            dns: true,
            first_payload: true,
            flow_ttl_secs: 900,
            directory_refresh_secs: 5,
            segmentation: SegmentationConfig::default(),
            baselines_file: None,
            state_dir: Some(PathBuf::from("/var/lib/rampart/network")),
            detectors: DetectorConfig::default(),
            capture: CaptureConfig::default(),
        }
    }
}

/// What the engine did, for metrics and the CLI.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStats {
    pub polls: u64,
    pub flows: usize,
    pub alerts: u64,
    pub captures_written: u64,
    pub kernel: NetflowStats,
    /// Flows read from the kernel (changed since the read before), over all polls.
    pub flows_read: u64,
    /// Flows the kernel reported changed but had dropped before they were read (its
    /// table full: LRU eviction), over all polls.
    pub flows_evicted_unread: u64,
    /// Polls that read the whole kernel table (the change ring had overflowed).
    pub full_reads: u64,
}

pub struct NetworkEngine {
    pub config: EngineConfig,
    probe: Option<NetflowProbe>,
    pub directory: Directory,
    pub table: FlowTable,
    pub segmentation: Segmentation,
    pub detectors: Detectors,
    pub capture: CaptureBuffers,
    host: String,
    protected: HashMap<u64, Vec<SegRule>>,
    captured: std::collections::HashSet<u64>,
    runtime: Option<tokio::runtime::Runtime>,
    last_refresh_ns: u64,
    last_expire_ns: u64,
    /// Cgroups of flows that were no container at the last re-read of the runtime's
    /// list (the host's own, or gone): not a reason to re-read it before its time.
    not_containers: std::collections::HashSet<u64>,
    changed: Vec<rampart_bpf::netflow::KernelFlow>,
    records: Vec<NetRecord>,
    pub written: Vec<(String, PathBuf)>,
    pub stats: EngineStats,
}

impl NetworkEngine {
    /// Loads the kernel programs, attaches them and reads the container list.
    pub fn start(
        config: EngineConfig,
        object: Option<&[u8]>,
        host: &str,
    ) -> Result<Self, NetflowError> {
        let options = NetflowOptions {
            accounting: config.accounting,
            dns: config.dns,
            tls: config.first_payload,
            snaplen: config.capture.snaplen,
        };
        let mut probe = NetflowProbe::load(object, options)?;
        let dirs = if config.cgroup_dirs.is_empty() {
            docker_parent_dirs()
        } else {
            config.cgroup_dirs.clone()
        };
        if dirs.is_empty() {
            return Err(NetflowError::Parse {
                what: "network.cgroup_dirs".into(),
                reason: "no cgroup v2 directory to attach to (Docker's was not found)".into(),
            });
        }
        for d in &dirs {
            probe.attach(d)?;
        }
        let mut e = Self::without_kernel(config, host)?;
        e.probe = Some(probe);
        e.refresh_directory(0);
        Ok(e)
    }

    /// An engine over flows given to it (replay, tests, benches): no kernel.
    pub fn without_kernel(config: EngineConfig, host: &str) -> Result<Self, NetflowError> {
        let mut config = config;
        if config.baselines_file.is_none() {
            config.baselines_file = config.state_dir.as_ref().map(|d| d.join("baselines.yaml"));
        }
        let mut segmentation = Segmentation::new(config.segmentation.clone());
        if let Some(path) = &config.baselines_file {
            if path.exists() {
                let text = std::fs::read_to_string(path)?;
                segmentation.import_yaml(&text, &path.display().to_string())?;
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok();
        let mut directory = Directory::new();
        directory.load_host_ips();
        Ok(Self {
            detectors: Detectors::new(config.detectors.clone()),
            capture: CaptureBuffers::new(config.capture.clone()),
            config,
            probe: None,
            directory,
            table: FlowTable::new(),
            segmentation,
            host: host.to_string(),
            protected: HashMap::new(),
            captured: Default::default(),
            runtime,
            last_refresh_ns: 0,
            last_expire_ns: 0,
            not_containers: Default::default(),
            changed: Vec::new(),
            records: Vec::new(),
            written: Vec::new(),
            stats: EngineStats::default(),
        })
    }

    pub fn probe(&self) -> Option<&NetflowProbe> {
        self.probe.as_ref()
    }

    /// Re-reads the container runtime's list of containers.
    pub fn refresh_directory(&mut self, now_ns: u64) {
        self.last_refresh_ns = now_ns;
        self.not_containers.clear();
        if let Some(rt) = &self.runtime {
            if let Err(e) = rt.block_on(self.directory.load_docker()) {
                tracing::debug!(error = %e, "network: container list unavailable");
            }
        }
        self.table.rename(&self.directory);
    }

    /// A sensor event (connects, listens, accepts name processes and ports).
    pub fn observe_event(&mut self, ev: &Event) {
        self.table.observe_event(ev);
    }

    /// The workload graph, edges judged by the segmentation.
    pub fn graph(&self, query: &GraphQuery) -> Graph {
        graph::build(self.table.flows(), query, |e| {
            self.segmentation.edge_state(e)
        })
    }

    fn flow_for(&self, ends: &FlowEnds, now: u64) -> Flow {
        let id = (
            ends.cgroup_id,
            ends.proto,
            ends.local,
            ends.local_port,
            ends.remote,
            ends.remote_port,
        );
        if let Some(f) = self.table.get(&id) {
            return f.clone();
        }
        let c = self.directory.container(ends.cgroup_id);
        Flow {
            cgroup_id: ends.cgroup_id,
            container_id: c.map(|c| c.id.clone()).unwrap_or_default(),
            workload: c.map(|c| c.workload()).unwrap_or_default(),
            proto: Proto::from_number(ends.proto),
            local_ip: ends.local,
            local_port: ends.local_port,
            remote_ip: ends.remote,
            remote_port: ends.remote_port,
            direction: Direction::Outbound,
            bytes_out: 0,
            packets_out: 0,
            bytes_in: 0,
            packets_in: 0,
            first_ns: now,
            last_ns: now,
            tcp_flags_out: 0,
            tcp_flags_in: 0,
            peer: self.directory.peer(ends.cgroup_id, &ends.remote),
            process: None,
            tls: None,
        }
    }

    /// Reads the kernel, judges what is new, enforces protect mode, writes due
    /// captures. Returns the alerts raised.
    pub fn poll(&mut self, now: u64) -> Result<Vec<Alert>, NetflowError> {
        self.stats.polls += 1;
        let mut found: Vec<Detection> = Vec::new();
        let refresh = self.config.directory_refresh_secs * NS;
        if now >= self.last_refresh_ns + refresh {
            self.refresh_directory(now);
        }
        if let Some(probe) = self.probe.as_mut() {
            // Only the flows that changed since the last poll.
            let mut kflows = std::mem::take(&mut self.changed);
            kflows.clear();
            let read = probe.read_changes(&mut kflows)?;
            self.stats.flows_read += read.changed as u64;
            self.stats.flows_evicted_unread += read.gone as u64;
            if read.full_read {
                self.stats.full_reads += 1;
            }
            for q in probe.listener_queues() {
                self.table.learn_listening(q.cgroup_id, Proto::Tcp, q.port);
            }
            // Who opened each new outbound flow: one lookup per remote end not yet
            // known (the connect program keeps them by remote end).
            for k in &kflows {
                if k.initiator == rampart_bpf::netflow::Initiator::Local
                    && !self.table.contains(k)
                    && !self
                        .table
                        .knows_connector(k.cgroup_id, k.proto, k.remote, k.remote_port)
                {
                    if let Some(o) = probe.owner(k.cgroup_id, k.proto, k.remote, k.remote_port)? {
                        self.table.learn_owner(&o);
                    }
                }
            }
            // Containers started since the last read: name them before their flows.
            let unnamed: Vec<u64> = kflows
                .iter()
                .map(|k| k.cgroup_id)
                .filter(|c| {
                    self.directory.container(*c).is_none() && !self.not_containers.contains(c)
                })
                .collect();
            if !unnamed.is_empty() && now >= self.last_refresh_ns + NS {
                self.refresh_directory(now);
                for c in unnamed {
                    if self.directory.container(c).is_none() {
                        self.not_containers.insert(c);
                    }
                }
            }
            let new = self.table.ingest(&kflows, &self.directory);
            self.changed = kflows;
            for id in new {
                let Some(f) = self.table.get(&id) else {
                    continue;
                };
                let learning = self
                    .segmentation
                    .mode(&f.workload)
                    .is_none_or(|m| m == Mode::Discover);
                if let Some(a) = self.segmentation.observe(f, now) {
                    found.push(anomaly_detection(f, &a));
                }
                found.extend(self.detectors.on_flow(f, learning, now));
            }
            let probe = self.probe.as_mut().ok_or_else(|| NetflowError::Parse {
                what: "network".into(),
                reason: "the kernel side went away".into(),
            })?;
            self.records.clear();
            probe.read_records(&mut self.records);
            let mut packets = Vec::new();
            probe.read_packets(&mut packets);
            for p in packets {
                self.capture.push(p);
            }
            self.stats.kernel = probe.stats()?;
            // Socket accounting sees no SYN: a flood against a listener shows in its
            // half-open queue instead.
            let queues = probe.listener_queues().to_vec();
            for q in queues {
                let listener = FlowEnds {
                    cgroup_id: q.cgroup_id,
                    proto: 6,
                    local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    local_port: q.port,
                    remote: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    remote_port: 0,
                };
                let mut f = self.flow_for(&listener, now);
                f.direction = Direction::Inbound;
                found.extend(self.detectors.on_half_open(
                    &f,
                    q.port,
                    q.half_open,
                    None,
                    q.syn_flood_warned,
                    now,
                ));
            }
        }
        let records = std::mem::take(&mut self.records);
        for r in &records {
            found.extend(self.on_record(r, now));
        }
        self.records = records;
        self.table
            .trim_recent(now.saturating_sub(self.detectors.config.flood_window_secs * NS));
        found.extend(self.detectors.on_poll(&self.table, now));
        for (w, m) in self.segmentation.tick(now) {
            tracing::info!(workload = %w, mode = ?m, "network: segmentation mode moved forward");
            self.save_baselines();
        }
        self.enforce()?;
        self.update_capture()?;
        let mut alerts = Vec::new();
        for d in &found {
            let alert = to_alert(d, &self.directory, &self.host);
            self.capture_around(&alert.id, d.cgroup_id, d.ts_ns);
            alerts.push(alert);
        }
        self.capture.prune(now);
        for path in self.capture.complete(now)? {
            self.stats.captures_written += 1;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.written.push((name, path));
        }
        if now >= self.last_expire_ns + 10 * NS {
            self.last_expire_ns = now;
            let before = now.saturating_sub(self.config.flow_ttl_secs * NS);
            let gone = self.table.expire_ids(before);
            if let Some(p) = self.probe.as_mut() {
                for (cgroup_id, proto, local, local_port, remote, remote_port) in gone {
                    p.remove_flow(&FlowEnds {
                        cgroup_id,
                        proto,
                        local,
                        local_port,
                        remote,
                        remote_port,
                    })?;
                }
            }
        }
        self.stats.flows = self.table.len();
        self.stats.alerts += alerts.len() as u64;
        Ok(alerts)
    }

    /// Takes in flows from elsewhere (no kernel), judging the new ones as `poll` does.
    pub fn ingest_flows(&mut self, flows: Vec<Flow>, now: u64) -> Vec<Alert> {
        let mut found = Vec::new();
        for f in flows {
            let learning = self
                .segmentation
                .mode(&f.workload)
                .is_none_or(|m| m == Mode::Discover);
            if let Some(a) = self.segmentation.observe(&f, now) {
                found.push(anomaly_detection(&f, &a));
            }
            found.extend(self.detectors.on_flow(&f, learning, now));
            self.table.insert(f);
        }
        found
            .iter()
            .map(|d| to_alert(d, &self.directory, &self.host))
            .collect()
    }

    fn on_record(&mut self, r: &NetRecord, now: u64) -> Vec<Detection> {
        match r {
            NetRecord::DnsAnswer {
                flow,
                ts_ns,
                message,
            } => {
                let Some(msg) = dns::parse(message) else {
                    return Vec::new();
                };
                FlowTable::learn_dns(&mut self.directory, flow.cgroup_id, &msg, *ts_ns);
                let workload = self
                    .directory
                    .container(flow.cgroup_id)
                    .map(|c| c.workload())
                    .unwrap_or_else(|| format!("cgroup {}", flow.cgroup_id));
                self.detectors.on_dns(
                    flow.cgroup_id,
                    &workload,
                    &msg,
                    Some((flow.remote, flow.remote_port)),
                    now,
                )
            }
            NetRecord::TlsClientHello { flow, record, .. } => {
                let Some(hello) = tls::parse_client_hello(record) else {
                    return Vec::new();
                };
                self.table.set_tls(
                    flow,
                    crate::flow::TlsInfo {
                        sni: hello.sni.clone(),
                        ja4: hello.ja4.clone(),
                    },
                );
                let f = self.flow_for(flow, now);
                self.detectors.on_tls(&f, &hello, now)
            }
            NetRecord::FirstData { flow, data, .. } => {
                let f = self.flow_for(flow, now);
                self.detectors.on_first_data(&f, data, now)
            }
            NetRecord::ConnectDenied {
                flow,
                ts_ns,
                pid,
                comm,
            } => {
                let mut f = self.flow_for(flow, now);
                f.process = Some(crate::flow::ProcessRef {
                    pid: *pid,
                    comm: comm.clone(),
                    exe: String::new(),
                });
                vec![blocked_detection(&f, *ts_ns, EdgeDirection::Outbound)]
            }
            NetRecord::InboundDenied { flow, ts_ns } => {
                let mut f = self.flow_for(flow, now);
                f.direction = Direction::Inbound;
                vec![blocked_detection(&f, *ts_ns, EdgeDirection::Inbound)]
            }
        }
    }

    /// Puts protect mode in force in the kernel for every container of a protected
    /// workload, and lifts it from the others.
    fn enforce(&mut self) -> Result<(), NetflowError> {
        let Some(probe) = self.probe.as_mut() else {
            return Ok(());
        };
        let mut want: HashMap<u64, Vec<SegRule>> = HashMap::new();
        for c in self.directory.containers() {
            let w = c.workload();
            if self.segmentation.mode(&w) == Some(Mode::Protect) {
                let rules = self.segmentation.kernel_rules(
                    &w,
                    c.cgroup_id,
                    &self.directory,
                    self.table.flows(),
                );
                want.insert(c.cgroup_id, rules);
            }
        }
        for (cg, rules) in &want {
            if self.protected.get(cg) != Some(rules) {
                probe.protect(*cg, rules)?;
            }
        }
        for cg in self.protected.keys() {
            if !want.contains_key(cg) {
                probe.unprotect(*cg)?;
            }
        }
        self.protected = want;
        Ok(())
    }

    fn update_capture(&mut self) -> Result<(), NetflowError> {
        let Some(probe) = self.probe.as_mut() else {
            return Ok(());
        };
        if !self.capture.config.enabled {
            return Ok(());
        }
        for c in self.directory.containers() {
            if self.captured.insert(c.cgroup_id) {
                probe.set_capture(c.cgroup_id, true)?;
            }
        }
        Ok(())
    }

    /// Asks for the packets of container `cgroup_id` around an alert (this engine's
    /// or another stage's; `name`: its id, the capture's file name), when captures
    /// are on; false when they are off or the alert is the host's.
    pub fn capture_around(&mut self, name: &str, cgroup_id: u64, at_ns: u64) -> bool {
        if !self.capture.config.enabled || cgroup_id == 0 {
            return false;
        }
        self.capture.request(name, cgroup_id, at_ns);
        true
    }

    /// Starts capturing a container's packets now (on demand), whatever the config.
    pub fn capture_container(&mut self, cgroup_id: u64) -> Result<(), NetflowError> {
        if let Some(p) = self.probe.as_mut() {
            p.set_capture(cgroup_id, true)?;
            self.captured.insert(cgroup_id);
        }
        Ok(())
    }

    /// Re-reads the baselines file (edited by `rampart net baseline`); a bad file
    /// keeps the baselines in force.
    pub fn reload_baselines(&mut self) -> Result<usize, NetflowError> {
        let Some(path) = &self.config.baselines_file else {
            return Ok(0);
        };
        let text = std::fs::read_to_string(path)?;
        let parsed = crate::segment::parse_baselines(&text, &path.display().to_string())?;
        let n = parsed.workloads.len();
        self.segmentation.baselines = parsed;
        Ok(n)
    }

    /// Writes the flow table to `<state_dir>/flows.json` (for `rampart net graph`).
    pub fn save_flows(&self) -> Result<(), NetflowError> {
        let Some(dir) = &self.config.state_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let flows: Vec<&Flow> = self.table.flows().collect();
        let text = serde_json::to_vec(&flows).map_err(|e| NetflowError::Parse {
            what: "flows".into(),
            reason: e.to_string(),
        })?;
        let tmp = dir.join("flows.json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, dir.join("flows.json"))?;
        Ok(())
    }

    /// Writes the baselines file, when one is configured.
    pub fn save_baselines(&self) {
        let Some(path) = &self.config.baselines_file else {
            return;
        };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        match self.segmentation.to_yaml() {
            Ok(y) => {
                if let Err(e) = std::fs::write(path, y) {
                    tracing::warn!(path = %path.display(), error = %e, "network: baselines not saved");
                }
            }
            Err(e) => tracing::warn!(error = %e, "network: baselines not serialized"),
        }
    }
}

fn peer_name(f: &Flow) -> String {
    peer_node(f)
        .map(|(id, _, _)| id)
        .unwrap_or_else(|| f.remote_ip.to_string())
}

fn proc_of(f: &Flow) -> String {
    f.process
        .as_ref()
        .map(|p| format!("{}[{}]", p.comm, p.pid))
        .unwrap_or_else(|| "unknown".into())
}

fn edge_fields(f: &Flow, d: &mut Detection) {
    d.fields.insert("net.workload".into(), json!(f.workload));
    d.fields.insert("net.peer".into(), json!(peer_name(f)));
    d.fields.insert("net.proto".into(), json!(f.proto.name()));
    d.fields.insert("net.port".into(), json!(f.service_port()));
    d.fields.insert(
        "net.remote".into(),
        json!(format!("{}:{}", f.remote_ip, f.remote_port)),
    );
}

fn edge_text(f: &Flow, inbound: bool) -> String {
    let (a, b) = if inbound {
        (peer_name(f), f.workload.clone())
    } else {
        (f.workload.clone(), peer_name(f))
    };
    format!(
        "{a} → {b} {}/{} ({}:{})",
        f.proto.name(),
        f.service_port(),
        f.remote_ip,
        f.remote_port
    )
}

fn anomaly_detection(f: &Flow, a: &crate::segment::Anomaly) -> Detection {
    let inbound = a.edge.direction == EdgeDirection::Inbound;
    let what = if a.forbidden {
        "forbidden"
    } else {
        "outside the baseline"
    };
    let mut d = Detection {
        rule: "Network edge outside baseline",
        priority: if a.forbidden {
            Priority::Error
        } else {
            Priority::Warning
        },
        mitre: vec!["TA0008", "T1021"],
        message: format!(
            "network edge {what}: {} by process {} (mode {:?})",
            edge_text(f, inbound),
            proc_of(f),
            a.mode
        ),
        fields: Default::default(),
        cgroup_id: f.cgroup_id,
        flow: Some(FlowRef::of(f)),
        ts_ns: f.first_ns,
    };
    edge_fields(f, &mut d);
    d
}

fn blocked_detection(f: &Flow, ts_ns: u64, dir: EdgeDirection) -> Detection {
    let inbound = dir == EdgeDirection::Inbound;
    let mut d = Detection {
        rule: "Network edge blocked",
        priority: Priority::Warning,
        mitre: vec!["TA0008", "T1021"],
        message: format!(
            "network edge blocked in the kernel (outside the baseline, protect mode): {} by process {}",
            edge_text(f, inbound),
            proc_of(f)
        ),
        fields: Default::default(),
        cgroup_id: f.cgroup_id,
        flow: Some(FlowRef::of(f)),
        ts_ns,
    };
    edge_fields(f, &mut d);
    d
}
