//! Learned segmentation on real containers: what a client did while discovered is its
//! baseline; in monitor mode a new edge alerts naming both ends, the port and the
//! process; in protect mode the kernel refuses the new connection (connect fails) and
//! drops a new inbound one, each with an alert, while the baseline edge keeps working.

mod common;

use rampart_netflow::flow::Proto;
use rampart_netflow::segment::{BaselineEdge, EdgeDirection, Mode, SegmentationConfig};
use rampart_netflow::EngineConfig;
use rampart_testbed::TestNetwork;

/// Fetches the 1000-byte file; the output ends with `got=<bytes>`, and carries
/// wget's error when there is one.
fn fetch(c: &rampart_testbed::TestContainer, ip: &str) -> String {
    c.exec(&format!(
        "timeout 4 wget -O- http://{ip}:8080/file >/tmp/f 2>/tmp/e; echo got=$(wc -c < /tmp/f); cat /tmp/e"
    ))
}

/// The network engine with segmentation modes moved only by the test (no automatic
/// move to monitor); `None` (after skip_or_fail) when the test bed lacks something.
fn engine_with_modes_set_by_hand() -> Option<rampart_netflow::NetworkEngine> {
    common::engine(EngineConfig {
        segmentation: SegmentationConfig {
            auto_monitor: false,
            ..Default::default()
        },
        ..Default::default()
    })
}

#[test]
fn monitor_alerts_a_new_edge_and_protect_blocks_it_while_the_baseline_works() {
    let _turn = common::serial();
    let Some(mut engine) = engine_with_modes_set_by_hand() else {
        return;
    };
    let net = TestNetwork::create("net-seg");
    let web = common::http_server("net-seg-web", "web", &net.name, 1000);
    let admin = common::http_server("net-seg-admin", "admin", &net.name, 1000);
    let client = common::service("net-seg-cli", "client", &net.name, &[]);
    let intruder = common::service("net-seg-intruder", "intruder", &net.name, &[]);
    let (web_ip, admin_ip) = (web.ip(&net.name), admin.ip(&net.name));
    engine.refresh_directory(common::now_ns());

    // Discover: the client's edge to web is learned (and web's inbound edge from it).
    let out = fetch(&client, &web_ip);
    assert!(out.contains("got=1000"), "{out}");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine
        .segmentation
        .baselines
        .workloads
        .get("compose:nettest/web")
        .is_none_or(|b| b.allow.is_empty())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "web baseline was not learned: {:?} {:?} {:?}\n{:#?}",
            engine.probe().unwrap().stats(),
            engine.probe().unwrap().flows().map(|f| f.len()),
            engine.segmentation.baselines,
            engine.table.flows().collect::<Vec<_>>()
        );
        seen.extend(engine.poll(common::now_ns()).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        seen.is_empty(),
        "nothing alerts while discovering: {seen:?}"
    );
    let yaml = engine.segmentation.to_yaml().unwrap();
    assert!(
        yaml.contains("compose:nettest/client") && yaml.contains("port: 8080"),
        "{yaml}"
    );

    // Monitor: the baseline edge is quiet, a new one alerts.
    let now = common::now_ns();
    engine
        .segmentation
        .set_mode("compose:nettest/client", Mode::Monitor, now);
    assert!(fetch(&client, &web_ip).contains("got=1000"));
    assert!(fetch(&client, &admin_ip).contains("got=1000"));
    let alert = common::poll_for(&mut engine, &mut seen, |a| {
        a.rule == "Network edge outside baseline"
    })
    .unwrap_or_else(|| {
        panic!(
            "the new edge alerts in monitor mode: {seen:?}\n{:#?}\n{:#?}",
            engine.segmentation.baselines,
            engine.table.flows().collect::<Vec<_>>()
        )
    });
    assert!(
        alert
            .message
            .contains("compose:nettest/client → compose:nettest/admin tcp/8080")
            && alert.message.contains("wget"),
        "{}",
        alert.message
    );
    assert_eq!(
        alert.event.container.container().map(|c| c.id.as_str()),
        Some(client.id.as_str())
    );
    assert_eq!(
        seen.iter()
            .filter(|a| a.rule == "Network edge outside baseline")
            .count(),
        1,
        "the baseline edge did not alert: {seen:?}"
    );

    // Protect: the client may reach web only; web accepts the client only.
    let mut fresh = engine.segmentation.clone();
    fresh
        .baselines
        .workloads
        .get_mut("compose:nettest/client")
        .unwrap()
        .allow
        .retain(|e| e.peer != "compose:nettest/admin");
    engine.segmentation = fresh;
    let now = common::now_ns();
    engine
        .segmentation
        .set_mode("compose:nettest/client", Mode::Protect, now);
    engine
        .segmentation
        .set_mode("compose:nettest/web", Mode::Protect, now);
    engine.poll(now).unwrap();
    let out = fetch(&client, &admin_ip);
    assert!(!out.contains("got=1000"), "{out}");
    assert!(
        out.to_lowercase().contains("not permitted") || out.contains("can't connect"),
        "the new edge's connect fails at once: {out}"
    );
    let blocked = common::poll_for(&mut engine, &mut seen, |a| a.rule == "Network edge blocked")
        .expect("the blocked connect alerts");
    assert!(
        blocked
            .message
            .contains("compose:nettest/client → compose:nettest/admin tcp/8080")
            && blocked.message.contains("wget"),
        "{}",
        blocked.message
    );
    let ok = fetch(&client, &web_ip);
    assert!(ok.contains("got=1000"), "the baseline edge works: {ok}");

    // Inbound: web accepts the client, not the intruder (its SYN is dropped).
    let out = fetch(&intruder, &web_ip);
    assert!(!out.contains("got=1000"), "the intruder got in: {out}");
    let inbound = common::poll_for(&mut engine, &mut seen, |a| {
        a.rule == "Network edge blocked" && a.message.contains("compose:nettest/web tcp/8080")
    })
    .expect("the dropped inbound connection alerts");
    assert!(
        inbound
            .message
            .contains("compose:nettest/intruder → compose:nettest/web"),
        "{}",
        inbound.message
    );
    assert!(fetch(&client, &web_ip).contains("got=1000"));
    let stats = engine.probe().unwrap().stats().unwrap();
    assert!(
        stats.connects_denied >= 1 && stats.inbound_denied >= 1,
        "{stats:?}"
    );
    drop((web, admin, client, intruder));
}

/// A TCP connect to `ip:port`, with wget's error (`not permitted` when refused).
fn connect(c: &rampart_testbed::TestContainer, ip: &str, port: u16) -> String {
    c.exec(&format!(
        "timeout 3 wget -O- http://{ip}:{port}/ 2>&1; true"
    ))
}

/// One UDP datagram sent with sendto() on an unconnected socket (busybox traceroute's
/// probes), with the error when the send is refused.
fn sendto(c: &rampart_testbed::TestContainer, ip: &str) -> String {
    c.exec(&format!(
        "timeout 4 traceroute -n -m 1 -q 1 -w 1 {ip} 2>&1; true"
    ))
}

/// Protect with a network in the baseline: every address of it may be reached, over
/// TCP and over UDP sent without connect(), and an address outside it is refused
/// either way (the UDP refusal alerts like a connect's).
#[test]
fn a_network_in_the_baseline_admits_its_addresses_and_unconnected_udp_is_judged() {
    let _turn = common::serial();
    let Some(mut engine) = engine_with_modes_set_by_hand() else {
        return;
    };
    let net = TestNetwork::create("net-cidr");
    let client = common::service("net-cidr-cli", "cidrclient", &net.name, &[]);
    let now = common::now_ns();
    engine.refresh_directory(now);
    let workload = "compose:nettest/cidrclient";
    for protocol in [Proto::Tcp, Proto::Udp] {
        let edge = BaselineEdge {
            direction: EdgeDirection::Outbound,
            peer: "cidr:10.99.0.0/16".into(),
            protocol,
            port: 0,
        };
        engine.segmentation.allow(workload, edge, now);
    }
    engine.segmentation.set_mode(workload, Mode::Protect, now);
    engine.poll(now).unwrap();

    // Inside the network (nothing answers there: refused would say "not permitted").
    let inside = connect(&client, "10.99.3.4", 8080);
    assert!(
        inside.contains("Connecting to") && !inside.contains("not permitted"),
        "{inside}"
    );
    let inside_udp = sendto(&client, "10.99.200.1");
    assert!(
        inside_udp.contains("\n 1 ") && !inside_udp.contains("not permitted"),
        "the probe went out (its first hop answers or times out): {inside_udp}"
    );

    // Outside it: refused at once.
    let outside = connect(&client, "10.98.3.4", 8080);
    assert!(outside.contains("not permitted"), "{outside}");
    let outside_udp = sendto(&client, "10.98.3.4");
    assert!(
        outside_udp.contains("not permitted"),
        "a datagram outside the baseline is refused: {outside_udp}"
    );
    let mut seen = Vec::new();
    let blocked = common::poll_for(&mut engine, &mut seen, |a| {
        a.rule == "Network edge blocked" && a.message.contains("udp/")
    })
    .unwrap_or_else(|| panic!("the refused datagram alerts: {seen:?}"));
    assert!(
        blocked.message.contains("cidrclient") && blocked.message.contains("10.98.3.4"),
        "{}",
        blocked.message
    );
    let stats = engine.probe().unwrap().stats().unwrap();
    assert!(stats.connects_denied >= 2, "{stats:?}");
    drop(client);
}
