//! The edge guard on real containers: a guarded client reaches the address its allow
//! list names and nothing else (the connect fails in the container, reported as a
//! denial naming the process), and reaches everything again once released. Containers
//! are named `bas-guard-*`.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rampart_bpf::netflow::{SegDirection, SegRule, TCP};
use rampart_netflow::directory::{cgroup_id, docker_cgroup_dir};
use rampart_netflow::guard::{EdgeGuard, GuardEvent};
use rampart_testbed::{TestNetwork, TEST_IMAGE};

/// Fetches the 1000-byte file; the output ends with `got=<bytes>`, and carries wget's
/// error when there is one.
fn fetch(c: &rampart_testbed::TestContainer, ip: &str) -> String {
    c.exec(&format!(
        "timeout 4 wget -O- http://{ip}:8080/file >/tmp/f 2>/tmp/e; echo got=$(wc -c < /tmp/f); cat /tmp/e"
    ))
}

#[test]
fn a_guarded_container_reaches_only_its_allowed_edges_until_released() {
    let _turn = common::serial();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let object = rampart_testbed::netflow_object();
    let mut guard = EdgeGuard::start(object.as_deref()).expect("the netflow programs load");
    let net = TestNetwork::create("bas-guard-net");
    let web = common::http_server("bas-guard-web", "web", &net.name, 1000);
    let other = common::http_server("bas-guard-other", "other", &net.name, 1000);
    let client = common::service("bas-guard-cli", "client", &net.name, &[]);
    let (web_ip, other_ip) = (web.ip(&net.name), other.ip(&net.name));
    let dir = docker_cgroup_dir(client.id.trim()).expect("the client's cgroup v2 directory");
    let cg = cgroup_id(&dir).expect("its cgroup id");

    let allowed: IpAddr = web_ip.parse().unwrap();
    let rules = [SegRule::exact(
        SegDirection::Outbound,
        TCP,
        Some(allowed),
        8080,
    )];
    assert!(guard.guard(&dir, cg, &rules).unwrap(), "the kernel changed");
    assert!(
        !guard.guard(&dir, cg, &rules).unwrap(),
        "the same rules change nothing"
    );
    assert!(guard.attached().contains(&dir));

    let out = fetch(&client, &web_ip);
    assert!(out.contains("got=1000"), "the allowed edge works: {out}");
    let out = fetch(&client, &other_ip);
    assert!(out.contains("got=0"), "the other server is refused: {out}");

    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let denied = loop {
        guard.poll(&mut events);
        let hit = events.iter().find_map(|e| match e {
            GuardEvent::Denied {
                cgroup_id,
                direction: SegDirection::Outbound,
                remote,
                port: 8080,
                comm,
                ..
            } if *cgroup_id == cg && remote.to_string() == other_ip => Some(comm.clone()),
            _ => None,
        });
        if hit.is_some() || Instant::now() > deadline {
            break hit;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(denied.as_deref(), Some("wget"), "{events:?}");

    guard.release(cg).unwrap();
    assert!(guard.rules(cg).is_none());
    let out = fetch(&client, &other_ip);
    assert!(out.contains("got=1000"), "released: {out}");
}
