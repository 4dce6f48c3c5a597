//! What the kernel tests of this crate share: the probe attached to Docker's cgroups,
//! a directory of the running containers, and a compose-labelled test container.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rampart_bpf::netflow::{NetflowOptions, NetflowProbe};
use rampart_netflow::directory::docker_parent_dirs;
use rampart_netflow::{Directory, FlowTable};
use rampart_testbed::{TestContainer, TEST_IMAGE};

/// Loads the netflow programs and attaches them above every container; `None` (after
/// skip_or_fail) when the test bed lacks something.
pub fn probe() -> Option<NetflowProbe> {
    if !rampart_testbed::ready(TEST_IMAGE) {
        return None;
    }
    let dirs = docker_parent_dirs();
    if dirs.is_empty() {
        rampart_testbed::skip_or_fail("no cgroup v2 directory of Docker's containers");
        return None;
    }
    let object = rampart_testbed::netflow_object();
    let mut p = NetflowProbe::load(object.as_deref(), NetflowOptions::default())
        .expect("netflow programs load");
    for d in dirs {
        p.attach(&d).expect("attach to Docker's cgroup");
    }
    Some(p)
}

pub fn directory() -> Directory {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut d = Directory::new();
    d.load_host_ips();
    rt.block_on(d.load_docker())
        .expect("docker lists containers");
    d
}

/// The cgroup id of container `id`, from the directory.
pub fn cgroup_of(dir: &Directory, id: &str) -> u64 {
    dir.containers()
        .find(|c| c.id == id)
        .map(|c| c.cgroup_id)
        .expect("the container is in the directory")
}

/// A container of the test image in compose project `nettest` as service `service`.
pub fn service(name: &str, service: &str, network: &str, cmd: &[&str]) -> TestContainer {
    let label = format!("com.docker.compose.service={service}");
    TestContainer::start(
        name,
        &[
            "--network",
            network,
            "--label",
            "com.docker.compose.project=nettest",
            "--label",
            &label,
        ],
        cmd,
    )
}

/// Reads the kernel's table into a fresh user-space table until `done` holds.
pub fn wait_for(
    probe: &NetflowProbe,
    mut done: impl FnMut(&FlowTable) -> bool,
) -> (FlowTable, Directory) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dir = directory();
        let mut table = FlowTable::new();
        for o in probe.owners().unwrap() {
            table.learn_owner(&o);
        }
        table.ingest(&probe.flows().unwrap(), &dir);
        if done(&table) || Instant::now() > deadline {
            return (table, dir);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An HTTP server (busybox httpd on 8080) serving /www/file of `size` bytes.
pub fn http_server(name: &str, svc: &str, network: &str, size: usize) -> TestContainer {
    let script = format!(
        "mkdir -p /www && head -c {size} /dev/zero > /www/file && exec httpd -f -p 8080 -h /www"
    );
    let c = service(name, svc, network, &["sh", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.exec("netstat -ltn").contains(":8080") {
        assert!(Instant::now() < deadline, "httpd did not listen in {name}");
        std::thread::sleep(Duration::from_millis(100));
    }
    c
}

/// A network engine attached to Docker's containers (`None` after skip_or_fail).
pub fn engine(config: rampart_netflow::EngineConfig) -> Option<rampart_netflow::NetworkEngine> {
    if !rampart_testbed::ready(TEST_IMAGE) {
        return None;
    }
    let object = rampart_testbed::netflow_object();
    Some(
        rampart_netflow::NetworkEngine::start(config, object.as_deref(), "test-node")
            .expect("the network engine starts"),
    )
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Polls until an alert matches `want` (returned), or 10 s pass (`None`); every
/// alert seen goes to `seen`.
pub fn poll_for(
    engine: &mut rampart_netflow::NetworkEngine,
    seen: &mut Vec<rampart_event::Alert>,
    want: impl Fn(&rampart_event::Alert) -> bool,
) -> Option<rampart_event::Alert> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = engine.poll(now_ns()).expect("poll");
        let hit = alerts.iter().find(|a| want(a)).cloned();
        seen.extend(alerts);
        if hit.is_some() || Instant::now() > deadline {
            return hit;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls for `secs` seconds, returning every alert.
pub fn poll_quiet(
    engine: &mut rampart_netflow::NetworkEngine,
    secs: u64,
) -> Vec<rampart_event::Alert> {
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        all.extend(engine.poll(now_ns()).expect("poll"));
        std::thread::sleep(Duration::from_millis(200));
    }
    all
}

/// Engines see every container on the host: the tests of one binary that start one
/// take turns.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The workload graph's edge `source` → `target` of one HTTP fetch on 8080: TCP, more
/// than `received` bytes back and some sent, one connection (the server's view of it
/// is not counted again); panics with the graph otherwise.
pub fn fetch_edge<'a>(
    flows: impl Iterator<Item = &'a rampart_netflow::Flow>,
    source: &str,
    target: &str,
    received: u64,
) -> rampart_netflow::GraphEdge {
    use rampart_netflow::graph::{self, GraphQuery};
    let g = graph::build(flows, &GraphQuery::default(), |_| {
        rampart_netflow::EdgeState::Unlearned
    });
    let edge = g
        .edges
        .iter()
        .find(|e| e.source == source && e.target == target)
        .cloned()
        .unwrap_or_else(|| panic!("no {source} → {target} edge in\n{}", g.to_table()));
    assert_eq!(
        (edge.protocol, edge.port),
        (rampart_netflow::Proto::Tcp, 8080)
    );
    assert!(
        edge.bytes_received > received && edge.bytes_sent > 0,
        "{edge:?}"
    );
    assert_eq!(
        edge.connections, 1,
        "the server's view is not counted twice"
    );
    edge
}

/// Fetches http://`ip`:8080/file in `client` and reads it a MiB a second, so the
/// connection lasts about six seconds for a 6 MiB file; returns the bytes read.
pub fn fetch_slowly(client: &TestContainer, ip: &str) -> u64 {
    let got = client.exec(&format!(
        "wget -q -O- http://{ip}:8080/file | \
         (for i in 1 2 3 4 5 6 7; do dd bs=65536 count=16 2>/dev/null | wc -c; sleep 1; done)"
    ));
    got.lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .sum()
}

/// A flow's counters, kernel-side (`KernelFlow`) or the engine's (`Flow`).
pub trait Counters: std::fmt::Debug {
    /// (bytes in, packets in, bytes out, packets out).
    fn counters(&self) -> (u64, u64, u64, u64);
}

impl Counters for rampart_bpf::netflow::KernelFlow {
    fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.bytes_in,
            self.packets_in,
            self.bytes_out,
            self.packets_out,
        )
    }
}

impl Counters for rampart_netflow::Flow {
    fn counters(&self) -> (u64, u64, u64, u64) {
        (
            self.bytes_in,
            self.packets_in,
            self.bytes_out,
            self.packets_out,
        )
    }
}

/// A download of `sent` bytes counted whole at both ends: the client's bytes in and
/// the server's bytes out are the payload with its headers (20 IPv4 + 20..32 TCP a
/// segment of at most 1448 bytes) in at least that many segments, and little went the
/// other way (the request, ACKs, a FIN). Both flows are shown on failure.
pub fn assert_download_counted(client: &impl Counters, server: &impl Counters, sent: u64) {
    let flows = format!("{client:?}\n{server:?}");
    let on_the_wire = |bytes: u64| (sent..sent + sent / 20).contains(&bytes);
    let (bytes_in, segments_in, bytes_out, _) = client.counters();
    let (_, _, server_bytes_out, server_segments_out) = server.counters();
    assert!(on_the_wire(bytes_in), "client's bytes in: {flows}");
    assert!(on_the_wire(server_bytes_out), "server's bytes out: {flows}");
    assert!(segments_in >= sent / 1448, "client's segments in: {flows}");
    assert!(
        server_segments_out >= sent / 1448,
        "server's segments out: {flows}"
    );
    assert!(
        bytes_out > 0 && bytes_out < sent / 20,
        "client's bytes out: {flows}"
    );
}

/// DNS queries from Python, each answer read with recvmsg (A) or recvfrom (TXT), the
/// calls socket accounting reads answers at: `SERVER A NAME…` (one A question each),
/// or `SERVER TXT N DOMAIN` (N long random names under DOMAIN, as tunnelling tools
/// make them). Prints each answer's length.
pub const PY_RESOLVER: &str = r#"
import os, socket, struct, sys
def query(name, qtype, server, read):
    q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, (server, 53))
    data = s.recvmsg(1024)[0] if read == "recvmsg" else s.recvfrom(1024)[0]
    s.close()
    return len(data)
server = sys.argv[1]
if sys.argv[2] == "A":
    for name in sys.argv[3:]:
        print(query(name, 1, server, "recvmsg"))
else:
    for i in range(int(sys.argv[3])):
        label = os.urandom(24).hex()
        print(query(f"{label}.t{i}.{sys.argv[4]}", 16, server, "recvfrom"))
"#;

/// A DNS server: A questions get 192.0.2.77, any other one TXT "ok".
pub const DNS_SINK: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
while True:
    q, a = s.recvfrom(4096)
    if len(q) < 12:
        continue
    end = 12
    while end < len(q) and q[end] != 0:
        end += q[end] + 1
    question = q[12:end + 5]
    if q[end + 1:end + 3] == b"\x00\x01":
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x4d"
    else:
        answer = b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x3c\x00\x03\x02ok"
    s.sendto(q[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + question + answer, a)
"#;
