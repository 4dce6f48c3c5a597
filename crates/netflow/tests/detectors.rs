//! The network detectors on real containers, each with a benign neighbour that must
//! not fire: a scan against ordinary repeated connections, DNS tunnelling (long TXT
//! queries to a local DNS sink) against ordinary lookups, a connection flood against a
//! web client under steady load, cloud metadata access, a plaintext protocol on a port
//! it does not own; and the pcapng of an alert, read back by tshark.

mod common;

use std::time::Duration;

use rampart_bpf::netflow::Accounting;
use rampart_netflow::capture::CaptureConfig;
use rampart_netflow::segment::{Mode, SegmentationConfig};
use rampart_netflow::EngineConfig;
use rampart_testbed::TestNetwork;

const PY_IMAGE: &str = "rampart-test/pyapp:1";
const PY_IMAGE_REPO: &str = "rampart-test/pyapp";

/// A TCP server that accepts and closes, with a deep backlog (the flood's target).
const ACCEPTOR: &str = r#"
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(4096)
while True:
    c, _ = s.accept(); c.close()
"#;

const FLOOD: &str = r#"
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
t = time.time()
for _ in range(n):
    try:
        c = socket.create_connection((host, 8080), timeout=2); c.close()
    except OSError:
        pass
print(n / (time.time() - t))
"#;

/// SYNs from forged addresses (`N` of them: 20 unused addresses of the target's /24,
/// N/20 ports each) to `HOST:PORT`, through a raw socket: handshakes that never
/// finish, as a SYN flood leaves them.
const SYN_FLOOD: &str = r#"
import random, socket, struct, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
dst = socket.inet_aton(host)
for i in range(n):
    src = dst[:3] + bytes([200 + i % 20])
    tcp = struct.pack("!HHIIBBHHH", 20000 + i, port, random.getrandbits(32), 0, 5 << 4, 2, 64240, 0, 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xffff, 0, 64, 6, 0, src, dst)
    s.sendto(ip + tcp, (host, 0))
print(n)
"#;

fn config() -> EngineConfig {
    EngineConfig {
        state_dir: None,
        segmentation: SegmentationConfig {
            auto_monitor: false,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn rules(alerts: &[rampart_event::Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| format!("{}: {}", a.rule, a.message))
        .collect()
}

#[test]
fn scans_floods_tunnels_metadata_and_plaintext_fire_and_their_neighbours_do_not() {
    detectors_fire_and_neighbours_do_not(Accounting::Packets);
}

/// The same with socket accounting (no program on the packet path): the detectors
/// read the flows from the sockets, the DNS answers from the resolver's receives, and
/// the first payloads from tcp_sendmsg where the kernel has BPF trampolines.
#[test]
fn with_socket_accounting_the_same_detectors_fire_and_their_neighbours_do_not() {
    detectors_fire_and_neighbours_do_not(Accounting::Sockets);
}

fn detectors_fire_and_neighbours_do_not(accounting: Accounting) {
    if !rampart_testbed::image_present(PY_IMAGE) {
        rampart_testbed::skip_or_fail(format!("{PY_IMAGE} is missing (scripts/setup builds it)"));
        return;
    }
    let _turn = common::serial();
    let Some(mut engine) = common::engine(EngineConfig {
        accounting,
        ..config()
    }) else {
        return;
    };
    let net = TestNetwork::create("net-det");
    let web = common::http_server("net-det-web", "web", &net.name, 100);
    let steady = common::service("net-det-steady", "steady", &net.name, &[]);
    let scanner = common::service("net-det-scan", "scanner", &net.name, &[]);
    rampart_testbed::remove_container("net-det-dns");
    rampart_testbed::remove_container("net-det-flood");
    let sink_id = rampart_testbed::docker(&[
        "run",
        "-d",
        "--name",
        "net-det-dns",
        "--network",
        &net.name,
        PY_IMAGE,
        "python3",
        "-c",
        common::DNS_SINK,
    ]);
    let _sink_guard = Guard("net-det-dns");
    let flooder_id = rampart_testbed::docker(&[
        "run",
        "-d",
        "--name",
        "net-det-flood",
        "--network",
        &net.name,
        "--label",
        "com.docker.compose.project=nettest",
        "--label",
        "com.docker.compose.service=flooder",
        PY_IMAGE,
        "sleep",
        "300",
    ]);
    let _flood_guard = Guard("net-det-flood");
    let web_ip = web.ip(&net.name);
    let sink_ip = rampart_testbed::docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"net-det\").IPAddress}}",
        &sink_id,
    ]);
    // DNS queries from the flooder's Python (busybox's nslookup read()s its answers,
    // which socket accounting does not see).
    let resolve = |args: &[&str]| {
        let mut all = vec!["exec", flooder_id.as_str(), "python3", "-c"];
        all.extend([common::PY_RESOLVER, sink_ip.as_str()]);
        all.extend(args);
        rampart_testbed::docker(&all)
    };
    engine.refresh_directory(common::now_ns());
    // Everything below is judged outside discovery.
    let now = common::now_ns();
    for w in ["steady", "scanner", "flooder", "web"] {
        engine
            .segmentation
            .set_mode(&format!("compose:nettest/{w}"), Mode::Monitor, now);
    }

    // Benign neighbours first: steady web load (60 requests over 6 s), ordinary DNS
    // lookups, HTTP on 8080.
    steady.exec(&format!(
        "for i in $(seq 1 60); do wget -q -O- http://{web_ip}:8080/file >/dev/null; sleep 0.1; done"
    ));
    let names: Vec<String> = (1..=12).map(|i| format!("www{i}.example.test")).collect();
    let mut args = vec!["A"];
    args.extend(names.iter().map(String::as_str));
    let lookups = resolve(&args);
    assert_eq!(
        lookups.lines().count(),
        12,
        "every lookup answered: {lookups}"
    );
    let quiet = common::poll_quiet(&mut engine, 3);
    let noisy: Vec<_> = rules(&quiet)
        .into_iter()
        .filter(|r| !r.starts_with("Network edge outside baseline"))
        .collect();
    assert!(noisy.is_empty(), "benign traffic alerted: {noisy:#?}");

    let mut seen = Vec::new();
    // Vertical scan: 60 ports of the web container.
    scanner.exec(&format!(
        "for p in $(seq 8000 8060); do timeout 1 nc {web_ip} $p </dev/null >/dev/null 2>&1; done"
    ));
    let scan = common::poll_for(&mut engine, &mut seen, |a| a.rule == "Port scan (vertical)")
        .unwrap_or_else(|| panic!("no scan alert: {:#?}", rules(&seen)));
    assert!(scan.mitre.contains(&"T1046".to_string()));
    assert!(scan.message.contains(&web_ip), "{}", scan.message);

    // DNS tunnelling: long random TXT queries to the sink.
    let queries = resolve(&["TXT", "14", "exfil.test"]);
    assert_eq!(
        queries.lines().count(),
        14,
        "every query answered: {queries}"
    );
    let tunnel = common::poll_for(&mut engine, &mut seen, |a| a.rule == "DNS tunnelling")
        .unwrap_or_else(|| panic!("no DNS tunnelling alert: {:#?}", rules(&seen)));
    assert!(tunnel.message.contains("exfil.test"), "{}", tunnel.message);
    assert!(tunnel.mitre.contains(&"T1071.004".to_string()));

    // Cloud metadata from a workload that never used it.
    scanner.exec("timeout 2 wget -q -O- http://169.254.169.254/latest/meta-data/ >/dev/null 2>&1");
    let meta = common::poll_for(&mut engine, &mut seen, |a| {
        a.rule == "Cloud metadata access"
    })
    .unwrap_or_else(|| panic!("no metadata alert: {:#?}", rules(&seen)));
    assert!(meta.message.contains("169.254.169.254"), "{}", meta.message);

    // SSH spoken to port 443 (a first payload: with socket accounting, only where
    // the kernel has BPF trampolines).
    let first_payloads = engine.probe().is_some_and(|p| p.reads_first_payload());
    if !first_payloads {
        eprintln!(
            "{accounting:?} accounting reads no first payloads on this kernel (no BPF \
             trampolines): the plaintext-protocol detector is not tried"
        );
    }
    let tls_port = common::service(
        "net-det-443",
        "fake443",
        &net.name,
        &["sh", "-c", "while true; do nc -l -p 443 >/dev/null; done"],
    );
    std::thread::sleep(Duration::from_millis(500));
    let ip443 = tls_port.ip(&net.name);
    scanner.exec(&format!(
        "printf 'SSH-2.0-OpenSSH_9.2p1\\r\\n' | timeout 2 nc {ip443} 443"
    ));
    if first_payloads {
        let plain = common::poll_for(&mut engine, &mut seen, |a| {
            a.rule == "Plaintext protocol on an unusual port"
        })
        .unwrap_or_else(|| panic!("no plaintext alert: {:#?}", rules(&seen)));
        assert!(
            plain.message.contains("spoke ssh") && plain.message.contains(":443"),
            "{}",
            plain.message
        );
    }

    // A connection flood: 1,500 connects as fast as Python goes (about 2,000/s
    // here), against a server that keeps up.
    rampart_testbed::remove_container("net-det-target");
    let target_id = rampart_testbed::docker(&[
        "run",
        "-d",
        "--name",
        "net-det-target",
        "--network",
        &net.name,
        PY_IMAGE,
        "python3",
        "-c",
        ACCEPTOR,
    ]);
    let _target_guard = Guard("net-det-target");
    let target_ip = rampart_testbed::docker(&[
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"net-det\").IPAddress}}",
        &target_id,
    ]);
    std::thread::sleep(Duration::from_millis(500));
    rampart_testbed::docker(&[
        "exec",
        "-d",
        &flooder_id,
        "python3",
        "-c",
        FLOOD,
        &target_ip,
        "1500",
    ]);
    // Both ends see it: the flooder's connections out, the target's in.
    let from = common::poll_for(&mut engine, &mut seen, |a| {
        a.rule == "Connection flood" && a.message.contains("compose:nettest/flooder →")
    })
    .unwrap_or_else(|| panic!("no flood alert from the flooder: {:#?}", rules(&seen)));
    assert!(
        from.message.contains(&format!("{target_ip}:8080")),
        "{}",
        from.message
    );
    assert!(
        seen.iter().any(|a| a.rule == "Connection flood"
            && a.message
                .contains(&format!("→ image:{PY_IMAGE_REPO} port 8080"))),
        "no flood alert against the target: {:#?}",
        rules(&seen)
    );

    // The connection flood's handshakes all finished: no SYN flood.
    assert!(
        !seen.iter().any(|a| a.rule == "SYN flood"),
        "finished handshakes taken for a SYN flood: {:#?}",
        rules(&seen)
    );
    // A SYN flood against the same listener, from forged addresses: the packet path
    // counts the handshakes left half-open over all their sources, socket accounting
    // reads them off the listener's queue.
    let sent = rampart_testbed::docker(&[
        "exec",
        &flooder_id,
        "python3",
        "-c",
        SYN_FLOOD,
        &target_ip,
        "8080",
        "400",
    ]);
    assert_eq!(sent.trim(), "400", "the SYNs went out");
    let syn = common::poll_for(&mut engine, &mut seen, |a| a.rule == "SYN flood")
        .unwrap_or_else(|| panic!("no SYN flood alert: {:#?}", rules(&seen)));
    assert!(
        syn.message.contains("half-open connections"),
        "{}",
        syn.message
    );
    if accounting == Accounting::Packets {
        assert!(syn.message.contains("from 20 addresses"), "{}", syn.message);
    }
    assert!(
        syn.message
            .contains(&format!("→ image:{PY_IMAGE_REPO} port 8080")),
        "{}",
        syn.message
    );
    assert!(
        !seen
            .iter()
            .any(|a| a.rule.contains("flood") && a.message.contains("steady")),
        "the steady client was taken for a flood"
    );
    if accounting == Accounting::Sockets {
        let stats = engine
            .probe()
            .expect("the engine has its kernel programs")
            .stats()
            .expect("stats");
        assert_eq!(stats.flows_created, 0, "no packet program ran");
    }
}

struct Guard(&'static str);

impl Drop for Guard {
    fn drop(&mut self) {
        rampart_testbed::remove_container(self.0);
    }
}

#[test]
fn the_pcap_of_an_alert_opens_in_tshark_and_holds_the_connection() {
    if !rampart_testbed::tool_ready("tshark", &["--version"], "scripts/setup installs tshark") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("net-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = EngineConfig {
        capture: CaptureConfig {
            enabled: true,
            before_secs: 20,
            after_secs: 1,
            dir: dir.clone(),
            ..Default::default()
        },
        ..config()
    };
    let _turn = common::serial();
    let Some(mut engine) = common::engine(cfg) else {
        return;
    };
    let net = TestNetwork::create("net-cap");
    let server = common::service(
        "net-cap-srv",
        "sshd-on-443",
        &net.name,
        &["sh", "-c", "while true; do nc -l -p 443 >/dev/null; done"],
    );
    let client = common::service("net-cap-cli", "capclient", &net.name, &[]);
    engine.refresh_directory(common::now_ns());
    // Capturing starts for the containers the engine knows.
    engine.poll(common::now_ns()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let ip = server.ip(&net.name);
    client.exec(&format!(
        "printf 'SSH-2.0-OpenSSH_9.2p1\\r\\n' | timeout 2 nc {ip} 443"
    ));
    let mut seen = Vec::new();
    let alert = common::poll_for(&mut engine, &mut seen, |a| {
        a.rule == "Plaintext protocol on an unusual port"
    })
    .unwrap_or_else(|| panic!("no alert: {:#?}", rules(&seen)));
    // The capture is written once the window after the alert has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let path = loop {
        engine.poll(common::now_ns()).unwrap();
        if let Some((_, p)) = engine
            .written
            .iter()
            .find(|(name, _)| name.contains(&alert.id))
        {
            break p.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no capture written: {:?}",
            engine.written
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The alert's incident bundle carries the capture: the alert recorded, then
    // bundled with the capture directory, and tshark reads the copy in the bundle.
    let rec_dir = tempfile::tempdir().unwrap();
    let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig::with_dir(
        rec_dir.path(),
    ))
    .unwrap();
    let writer = rampart_recorder::Writer::start(rec.clone()).unwrap();
    assert!(writer.try_append_alert(alert.clone()));
    writer.flush().unwrap();
    let bundle = rec_dir.path().join("incident.tar.gz");
    let summary = rec
        .incident_bundle_with_captures(
            &alert.id,
            Duration::from_secs(60),
            Duration::from_secs(60),
            &bundle,
            Some(&dir),
        )
        .unwrap();
    assert_eq!(summary.captures, 1, "{summary:?}");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&bundle).unwrap(),
    ));
    let mut in_bundle = None;
    let mut summary_md = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.contains("/packets/") && name.ends_with(".pcapng") {
            let out = rec_dir.path().join("from-bundle.pcapng");
            entry.unpack(&out).unwrap();
            in_bundle = Some(out);
        } else if name.ends_with("summary.md") {
            std::io::Read::read_to_string(&mut entry, &mut summary_md).unwrap();
        }
    }
    let path = in_bundle.unwrap_or_else(|| panic!("no capture in the bundle ({path:?})"));
    assert!(summary_md.contains("## Packet captures"), "{summary_md}");
    writer.close().unwrap();
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&path)
        .args([
            "-Y",
            "tcp.port == 443",
            "-T",
            "fields",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.payload",
        ])
        .output()
        .expect("tshark runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{ip}\t443")),
        "the connection is in the capture:\n{text}"
    );
    // "SSH-" in hex: the payload's first bytes were kept.
    assert!(
        text.contains("5353482d"),
        "the payload is in the capture:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// nmap (the host's, from scripts/setup) run inside a container: moved into the
/// container's cgroup v2 directory and network namespace before it execs, which is
/// what the kernel attributes flows by. A connect scan (-sT) of 111 ports is a
/// vertical scan, and so is a SYN scan (-sS: root's default, its SYNs written through
/// a raw socket, which no socket counts).
#[test]
fn an_nmap_scan_from_a_container_is_detected() {
    nmap_scans_are_detected(Accounting::Packets);
}

/// The same with socket accounting: a SYN scan's packets are counted at the raw
/// socket's sends, where the kernel has BPF trampolines.
#[test]
fn with_socket_accounting_an_nmap_scan_from_a_container_is_detected() {
    nmap_scans_are_detected(Accounting::Sockets);
}

fn nmap_scans_are_detected(accounting: Accounting) {
    if !rampart_testbed::tool_ready("nmap", &["--version"], "scripts/setup installs nmap") {
        return;
    }
    let _turn = common::serial();
    let net = TestNetwork::create("net-nmap");
    let web = common::http_server("net-nmap-web", "web", &net.name, 10);
    let scanner = common::service("net-nmap-scan", "nmapper", &net.name, &[]);
    let pid = rampart_testbed::docker(&["inspect", "-f", "{{.State.Pid}}", &scanner.id]);
    let cgroup = rampart_netflow::directory::docker_cgroup_dir(&scanner.id)
        .expect("the scanner's cgroup v2 directory");
    let target = web.ip(&net.name);
    for kind in ["-sT", "-sS"] {
        // A new engine each time: the scan alert fires once per scanner and target.
        let Some(mut engine) = common::engine(EngineConfig {
            accounting,
            ..config()
        }) else {
            return;
        };
        let probe = engine.probe().expect("the engine has its kernel programs");
        if kind == "-sS" && !probe.reads_raw_sends() {
            eprintln!(
                "skipping the SYN scan with socket accounting: this kernel refuses BPF \
                 trampolines, which counting raw sockets' packets needs"
            );
            continue;
        }
        engine.refresh_directory(common::now_ns());
        engine
            .segmentation
            .set_mode("compose:nettest/nmapper", Mode::Monitor, common::now_ns());
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec nsenter -t {pid} -n nmap {kind} -Pn -n --max-retries 0 -p 7990-8100 {target}",
            cgroup.display()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("nmap runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("8080/tcp open"),
            "nmap {kind} saw the web port: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut seen = Vec::new();
        let scan = common::poll_for(&mut engine, &mut seen, |a| a.rule == "Port scan (vertical)")
            .unwrap_or_else(|| panic!("no scan alert for nmap {kind}: {:#?}", rules(&seen)));
        assert!(
            scan.message.contains("compose:nettest/nmapper") && scan.message.contains(&target),
            "{}",
            scan.message
        );
        assert!(
            scan.message.contains("nmap"),
            "the process is named: {}",
            scan.message
        );
        if accounting == Accounting::Sockets {
            let probe = engine.probe().expect("the engine has its kernel programs");
            let stats = probe.stats().expect("stats");
            assert_eq!(stats.flows_created, 0, "no packet program ran");
            if kind == "-sS" {
                assert!(stats.socket_flows_created >= 100, "{stats:?}");
            }
        }
    }
}
