//! Socket accounting (`network.accounting: sockets`) on real containers: the network
//! engine counts TCP flows from the sockets (their end, and an iterator while they
//! live) with no program on the packet path, and its table says what the packet
//! programs' does: the edge with bytes both ways and who connected, a long transfer
//! while it lasts, how each connection ended. A capture attaches the packet programs.

mod common;

use std::time::{Duration, Instant};

use rampart_bpf::netflow::Accounting;
use rampart_netflow::{Direction, EngineConfig, Flow, NetworkEngine, Peer, Proto};
use rampart_testbed::TestNetwork;

const FIN: u8 = 1;
const SYN: u8 = 2;
const RST: u8 = 4;
const ACK: u8 = 16;

fn socket_engine() -> Option<NetworkEngine> {
    common::engine(EngineConfig {
        accounting: Accounting::Sockets,
        state_dir: None,
        ..EngineConfig::default()
    })
}

/// Polls the engine until `done` holds of its table or 10 s pass; returns whether it held.
fn poll_until(engine: &mut NetworkEngine, mut done: impl FnMut(&NetworkEngine) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        engine.poll(common::now_ns()).expect("poll");
        if done(engine) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn flows_of(engine: &NetworkEngine, cgroup_id: u64, port: u16) -> Vec<Flow> {
    engine
        .table
        .flows()
        .filter(|f| f.cgroup_id == cgroup_id && (f.remote_port == port || f.local_port == port))
        .cloned()
        .collect()
}

fn packet_flows_created(engine: &NetworkEngine) -> u64 {
    engine
        .probe()
        .expect("the engine has its kernel programs")
        .stats()
        .expect("stats")
        .flows_created
}

#[test]
fn an_http_fetch_makes_an_edge_with_bytes_both_ways_and_no_packet_program_runs() {
    let _turn = common::serial();
    let Some(mut engine) = socket_engine() else {
        return;
    };
    let net = TestNetwork::create("net-sock");
    let server = common::http_server("net-sock-srv", "sock-web", &net.name, 200_000);
    let client = common::service("net-sock-cli", "sock-client", &net.name, &[]);
    let ip = server.ip(&net.name);
    let got = client.exec(&format!("wget -q -O- http://{ip}:8080/file | wc -c"));
    assert_eq!(got.trim(), "200000", "the client fetched the file");
    let dir = common::directory();
    let (client_cg, server_cg) = (
        common::cgroup_of(&dir, &client.id),
        common::cgroup_of(&dir, &server.id),
    );
    let both = poll_until(&mut engine, |e| {
        flows_of(e, client_cg, 8080)
            .iter()
            .any(|f| f.bytes_in > 200_000 && f.process.is_some())
            && flows_of(e, server_cg, 8080)
                .iter()
                .any(|f| f.bytes_out > 200_000)
    });
    let client_flow = flows_of(&engine, client_cg, 8080).into_iter().next();
    let server_flow = flows_of(&engine, server_cg, 8080).into_iter().next();
    assert!(both, "client {client_flow:?}\nserver {server_flow:?}");
    let (client_flow, server_flow) = (client_flow.unwrap(), server_flow.unwrap());
    assert_eq!(client_flow.proto, Proto::Tcp);
    assert_eq!(
        client_flow.direction,
        Direction::Outbound,
        "{client_flow:?}"
    );
    assert!(
        client_flow.bytes_out > 0 && client_flow.packets_out > 0,
        "{client_flow:?}"
    );
    assert!(
        matches!(&client_flow.peer, Peer::Container { id, workload, .. } if *id == server.id && workload == "compose:nettest/sock-web"),
        "{:?}",
        client_flow.peer
    );
    assert_eq!(
        client_flow.process.as_ref().map(|p| p.comm.as_str()),
        Some("wget")
    );
    assert_eq!(
        (client_flow.tcp_flags_out, client_flow.tcp_flags_in),
        (SYN | ACK | FIN, SYN | ACK | FIN),
        "answered and closed: {client_flow:?}"
    );
    assert_eq!(server_flow.direction, Direction::Inbound, "{server_flow:?}");
    assert!(engine
        .table
        .listening(server_cg)
        .contains(&(Proto::Tcp, 8080)));

    let edge = common::fetch_edge(
        engine.table.flows(),
        "compose:nettest/sock-client",
        "compose:nettest/sock-web",
        200_000,
    );
    assert_eq!(edge.processes, vec!["wget".to_string()]);
    // Nothing ran on the packet path: the packet programs' table never made a flow.
    assert_eq!(packet_flows_created(&engine), 0);
}

#[test]
fn a_long_connection_is_counted_while_it_lasts_and_to_the_byte_range_when_it_ends() {
    const MIB: u64 = 1 << 20;
    const SENT: u64 = 6 * MIB;
    let _turn = common::serial();
    let Some(mut engine) = socket_engine() else {
        return;
    };
    let net = TestNetwork::create("net-sock-long");
    let server = common::http_server(
        "net-sock-long-srv",
        "sock-long-web",
        &net.name,
        SENT as usize,
    );
    let client = common::service("net-sock-long-cli", "sock-long-reader", &net.name, &[]);
    let ip = server.ip(&net.name);
    let dir = common::directory();
    let (client_cg, server_cg) = (
        common::cgroup_of(&dir, &client.id),
        common::cgroup_of(&dir, &server.id),
    );
    std::thread::scope(|s| {
        // A MiB a second: the connection lasts about six seconds.
        let reader = s.spawn(|| common::fetch_slowly(&client, &ip));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = None;
        while Instant::now() < deadline && !reader.is_finished() {
            engine.poll(common::now_ns()).expect("poll");
            let client_in = flows_of(&engine, client_cg, 8080)
                .first()
                .map_or(0, |f| f.bytes_in);
            let server_out = flows_of(&engine, server_cg, 8080)
                .first()
                .map_or(0, |f| f.bytes_out);
            if client_in >= 2 * MIB && server_out >= 2 * MIB {
                seen = flows_of(&engine, client_cg, 8080).into_iter().next();
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            seen.is_some() && !reader.is_finished(),
            "the open connection's counters did not move past 2 MiB each way (reader done: {}): {:?} {:?}",
            reader.is_finished(),
            flows_of(&engine, client_cg, 8080),
            flows_of(&engine, server_cg, 8080)
        );
        let open = seen.unwrap();
        assert_eq!(open.tcp_flags_in & FIN, 0, "read while it lasted: {open:?}");
        let total = reader.join().expect("the reader ran");
        assert_eq!(total, SENT, "the reader got the whole file");
    });
    let ended = poll_until(&mut engine, |e| {
        flows_of(e, client_cg, 8080)
            .iter()
            .any(|f| f.tcp_flags_in & FIN != 0)
            && flows_of(e, server_cg, 8080)
                .iter()
                .any(|f| f.tcp_flags_out & FIN != 0)
    });
    let client_flow = flows_of(&engine, client_cg, 8080)
        .into_iter()
        .next()
        .expect("client flow");
    let server_flow = flows_of(&engine, server_cg, 8080)
        .into_iter()
        .next()
        .expect("server flow");
    assert!(ended, "both ends closed: {client_flow:?} {server_flow:?}");
    common::assert_download_counted(&client_flow, &server_flow, SENT);
}

#[test]
fn a_connection_ends_refused_reset_or_closed_and_its_flow_says_which() {
    let _turn = common::serial();
    let Some(mut engine) = socket_engine() else {
        return;
    };
    let net = TestNetwork::create("net-sock-end");
    let server = common::http_server("net-sock-end-srv", "sock-end-web", &net.name, 8 << 20);
    let client = common::service("net-sock-end-cli", "sock-end-client", &net.name, &[]);
    let ip = server.ip(&net.name);
    let dir = common::directory();
    let (client_cg, server_cg) = (
        common::cgroup_of(&dir, &client.id),
        common::cgroup_of(&dir, &server.id),
    );
    // Refused: nothing listens on 9.
    client.exec(&format!("nc {ip} 9 </dev/null; true"));
    // Reset: wget is killed with its receive queue full (a close with unread data).
    client.exec(&format!(
        "(timeout 1 wget -q -O- http://{ip}:8080/file; true) | sleep 3"
    ));
    // Closed: a fetch that ends normally (a 404).
    client.exec(&format!("wget -q -O- http://{ip}:8080/small | wc -c"));

    let reset_of = |e: &NetworkEngine| {
        flows_of(e, client_cg, 8080)
            .into_iter()
            .find(|f| f.tcp_flags_out & RST != 0)
    };
    let closed_of = |e: &NetworkEngine| {
        flows_of(e, client_cg, 8080)
            .into_iter()
            .find(|f| f.tcp_flags_out & FIN != 0 && f.tcp_flags_out & RST == 0)
    };
    let all = poll_until(&mut engine, |e| {
        !flows_of(e, client_cg, 9).is_empty() && reset_of(e).is_some() && closed_of(e).is_some()
    });
    assert!(
        all,
        "refused, reset and closed flows: {:?} {:?}",
        flows_of(&engine, client_cg, 9),
        flows_of(&engine, client_cg, 8080)
    );
    let refused = flows_of(&engine, client_cg, 9).remove(0);
    assert_eq!(refused.direction, Direction::Outbound, "{refused:?}");
    assert_eq!(refused.tcp_flags_out & (SYN | FIN), SYN, "{refused:?}");
    assert_eq!(
        refused.tcp_flags_in & (SYN | RST),
        RST,
        "refused: an RST came back, no SYN: {refused:?}"
    );
    assert_eq!(refused.state(), "refused");
    let reset = reset_of(&engine).unwrap();
    assert!(
        reset.bytes_in > 64 * 1024 && reset.tcp_flags_in & SYN != 0,
        "the reset connection was answered and carried data: {reset:?}"
    );
    assert_eq!(
        reset.tcp_flags_in & FIN,
        0,
        "a reset is not a close: {reset:?}"
    );
    let server_saw_reset = poll_until(&mut engine, |e| {
        flows_of(e, server_cg, 8080)
            .iter()
            .any(|f| f.remote_port == reset.local_port && f.tcp_flags_in & RST != 0)
    });
    assert!(
        server_saw_reset,
        "the server received the RST: {:?}",
        flows_of(&engine, server_cg, 8080)
    );
    let closed = closed_of(&engine).unwrap();
    assert_eq!(closed.state(), "closed", "{closed:?}");
}

#[test]
fn a_capture_attaches_the_packet_programs_to_the_watched_cgroups() {
    let _turn = common::serial();
    let Some(mut engine) = socket_engine() else {
        return;
    };
    let net = TestNetwork::create("net-sock-cap");
    let server = common::http_server("net-sock-cap-srv", "sock-cap-web", &net.name, 10_000);
    let client = common::service("net-sock-cap-cli", "sock-cap-client", &net.name, &[]);
    let ip = server.ip(&net.name);
    let dir = common::directory();
    let client_cg = common::cgroup_of(&dir, &client.id);
    client.exec(&format!("wget -q -O- http://{ip}:8080/file | wc -c"));
    engine.poll(common::now_ns()).expect("poll");
    assert_eq!(packet_flows_created(&engine), 0, "no packet program yet");
    engine.capture_container(client_cg).expect("capture");
    client.exec(&format!("wget -q -O- http://{ip}:8080/file | wc -c"));
    assert!(
        packet_flows_created(&engine) >= 1,
        "the packet programs counted the capture's connection"
    );
}

const PY_IMAGE: &str = "rampart-test/pyapp:1";

/// A container of the Python image on `network`, removed on drop.
fn py_container(name: &str, extra: &[&str], cmd: &[&str]) -> rampart_testbed::TestContainer {
    rampart_testbed::remove_container(name);
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.push(PY_IMAGE);
    args.extend_from_slice(cmd);
    rampart_testbed::TestContainer {
        id: rampart_testbed::docker(&args),
        name: name.to_string(),
    }
}

/// With no program on the packet path, DNS answers come from the resolvers' receive
/// calls: each container's answer names its address in that container's cache
/// (glibc's resolver, which reads with recvfrom, and a Python resolver reading with
/// recvmsg), and long random TXT queries still raise the DNS tunnelling alert.
#[test]
fn dns_answers_are_read_from_the_resolvers_receives_and_name_the_addresses() {
    if !rampart_testbed::image_present(PY_IMAGE) {
        rampart_testbed::skip_or_fail(format!("{PY_IMAGE} is missing (scripts/setup builds it)"));
        return;
    }
    let _turn = common::serial();
    let Some(mut engine) = socket_engine() else {
        return;
    };
    let net = TestNetwork::create("net-sdns");
    let on_net = ["--network", net.name.as_str()];
    let sink = py_container(
        "net-sdns-sink",
        &on_net,
        &["python3", "-c", common::DNS_SINK],
    );
    let sink_ip = sink.ip(&net.name);
    let glibc = py_container(
        "net-sdns-libc",
        &["--network", &net.name, "--dns", &sink_ip],
        &["sleep", "300"],
    );
    let python = py_container("net-sdns-py", &on_net, &["sleep", "300"]);
    let resolved =
        glibc.exec("python3 -c 'import socket; print(socket.gethostbyname(\"api.example.test\"))'");
    assert_eq!(resolved.trim(), "192.0.2.77", "glibc asked the sink");
    let got = python.exec(&format!(
        "python3 -c '{}' {sink_ip} A py.example.test",
        common::PY_RESOLVER
    ));
    assert!(got.trim().parse::<usize>().is_ok_and(|n| n > 12), "{got}");
    let dir = common::directory();
    let (glibc_cg, py_cg) = (
        common::cgroup_of(&dir, &glibc.id),
        common::cgroup_of(&dir, &python.id),
    );
    let addr: std::net::IpAddr = "192.0.2.77".parse().expect("an address");
    let named = poll_until(&mut engine, |e| {
        e.directory.dns_name(glibc_cg, &addr) == Some("api.example.test")
            && e.directory.dns_name(py_cg, &addr) == Some("py.example.test")
    });
    assert!(
        named,
        "each container's answer names the address: {:?} {:?}",
        engine.directory.dns_name(glibc_cg, &addr),
        engine.directory.dns_name(py_cg, &addr)
    );

    let sent = python.exec(&format!(
        "python3 -c '{}' {sink_ip} TXT 14 exfil.test",
        common::PY_RESOLVER
    ));
    assert_eq!(sent.lines().count(), 14, "every TXT query answered: {sent}");
    let mut seen = Vec::new();
    let tunnel = common::poll_for(&mut engine, &mut seen, |a| a.rule == "DNS tunnelling")
        .unwrap_or_else(|| {
            panic!(
                "no DNS tunnelling alert: {:#?}",
                seen.iter().map(|a| &a.rule).collect::<Vec<_>>()
            )
        });
    assert!(tunnel.message.contains("exfil.test"), "{}", tunnel.message);
    assert_eq!(packet_flows_created(&engine), 0, "no packet program ran");
}
