//! The flow table on real containers: a client container fetches a file from an HTTP
//! server container on an internal Docker network, and the kernel's counters make an
//! edge client → server:8080 with bytes both ways and the process that connected; a
//! six-second transfer is counted while it lasts and to the byte range when it ends.

mod common;

use rampart_netflow::{Peer, Proto};
use rampart_testbed::TestNetwork;

#[test]
fn http_between_containers_makes_an_edge_with_bytes_both_ways() {
    // Every probe sees every container: the other test's fetches would join this edge.
    let _turn = common::serial();
    let Some(probe) = common::probe() else { return };
    let net = TestNetwork::create("net-flow");
    let server = common::http_server("net-flow-srv", "web", &net.name, 200_000);
    let client = common::service("net-flow-cli", "client", &net.name, &[]);
    let ip = server.ip(&net.name);
    let got = client.exec(&format!("wget -q -O- http://{ip}:8080/file | wc -c"));
    assert_eq!(got.trim(), "200000", "the client fetched the file");

    let (table, _dir) = common::wait_for(&probe, |t| {
        t.flows()
            .any(|f| f.container_id == client.id && f.remote_port == 8080 && f.bytes_in > 200_000)
    });
    let flow = table
        .flows()
        .find(|f| f.container_id == client.id && f.remote_port == 8080)
        .expect("the client's flow is in the table");
    assert_eq!(flow.proto, Proto::Tcp);
    assert_eq!(flow.direction, rampart_netflow::Direction::Outbound);
    assert!(flow.bytes_in > 200_000, "{flow:?}");
    assert!(flow.bytes_out > 0 && flow.packets_out > 0, "{flow:?}");
    assert!(
        matches!(&flow.peer, Peer::Container { id, workload, .. } if *id == server.id && workload == "compose:nettest/web"),
        "{:?}",
        flow.peer
    );
    assert_eq!(flow.process.as_ref().map(|p| p.comm.as_str()), Some("wget"));
    // The server counted the same connection from its side.
    let server_side = table
        .flows()
        .find(|f| f.container_id == server.id && f.local_port == 8080)
        .expect("the server's flow is in the table");
    assert_eq!(server_side.direction, rampart_netflow::Direction::Inbound);
    assert!(server_side.bytes_out > 200_000);
    assert!(table
        .listening(server_side.cgroup_id)
        .contains(&(Proto::Tcp, 8080)));

    let edge = common::fetch_edge(
        table.flows(),
        "compose:nettest/client",
        "compose:nettest/web",
        200_000,
    );
    assert_eq!(edge.processes, vec!["wget".to_string()]);
    let stats = probe.stats().unwrap();
    assert!(stats.flows_created >= 2, "{stats:?}");
}

/// The node reads only what changed: a flow is reported once its packets flow, not
/// again while it is idle, and again (with the new counters) when it carries more.
#[test]
fn only_changed_flows_are_read_and_each_change_is() {
    let _turn = common::serial();
    let Some(mut probe) = common::probe() else {
        return;
    };
    let net = TestNetwork::create("net-chg");
    // Services of their own, so that no other test's edge counts these connections.
    let server = common::http_server("net-chg-srv", "chg-web", &net.name, 50_000);
    let client = common::service("net-chg-cli", "chg-client", &net.name, &[]);
    let ip = server.ip(&net.name);
    let dir = common::directory();
    let client_cg = common::cgroup_of(&dir, &client.id);
    let client_reads = |probe: &mut rampart_bpf::netflow::NetflowProbe| {
        let mut out = Vec::new();
        let read = probe.read_changes(&mut out).expect("read_changes");
        assert!(!read.full_read, "the change ring overflowed: {read:?}");
        out.retain(|k| k.cgroup_id == client_cg && k.remote_port == 8080);
        out
    };
    // Whatever came before (the container's start).
    client_reads(&mut probe);

    let fetch = || {
        let got = client.exec(&format!("wget -q -O- http://{ip}:8080/file | wc -c"));
        assert_eq!(got.trim(), "50000", "the client fetched the file");
    };
    fetch();
    let first = client_reads(&mut probe);
    assert_eq!(
        first.len(),
        1,
        "one connection, one flow reported: {first:?}"
    );
    assert!(first[0].bytes_in > 50_000, "{:?}", first[0]);
    // Packets after the read but before the next one were read by it too: the
    // connection's last packets (FIN/ACK) may have come late, so read until quiet.
    let mut quiet = false;
    for _ in 0..20 {
        if client_reads(&mut probe).is_empty() {
            quiet = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(quiet, "an idle flow is not reported again and again");

    fetch();
    let second = client_reads(&mut probe);
    assert_eq!(second.len(), 1, "the second connection's flow: {second:?}");
    assert_ne!(
        second[0].local_port, first[0].local_port,
        "a new connection, a new flow"
    );
    let stats = probe.stats().unwrap();
    assert_eq!(stats.changes_lost, 0, "{stats:?}");
}

/// A TCP flow is counted from its socket, not per packet: while a connection lasts
/// its counters keep moving (folded at least once a MiB), and when it ends both ends
/// hold what went over the wire: the payload plus a header per segment, within a few
/// percent.
#[test]
fn a_long_connection_is_counted_while_it_lasts_and_to_the_byte_range_when_it_ends() {
    const MIB: u64 = 1 << 20;
    const SENT: u64 = 6 * MIB;
    let _turn = common::serial();
    let Some(probe) = common::probe() else { return };
    let net = TestNetwork::create("net-long");
    let server = common::http_server("net-long-srv", "long-web", &net.name, SENT as usize);
    let client = common::service("net-long-cli", "long-reader", &net.name, &[]);
    let ip = server.ip(&net.name);
    let dir = common::directory();
    let (client_cg, server_cg) = (
        common::cgroup_of(&dir, &client.id),
        common::cgroup_of(&dir, &server.id),
    );
    let flow_of = |cg: u64| {
        probe
            .flows()
            .unwrap()
            .into_iter()
            .find(|f| f.cgroup_id == cg && (f.remote_port == 8080 || f.local_port == 8080))
    };
    std::thread::scope(|s| {
        // The reader takes a MiB a second, so the connection lasts about six seconds.
        let reader = s.spawn(|| common::fetch_slowly(&client, &ip));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // Both ends' counters move: the client's received (ingress), the server's
        // sent (egress).
        let moved = || {
            let client_in = flow_of(client_cg).map_or(0, |f| f.bytes_in);
            let server_out = flow_of(server_cg).map_or(0, |f| f.bytes_out);
            client_in >= 2 * MIB && server_out >= 2 * MIB
        };
        let mut seen = false;
        while std::time::Instant::now() < deadline && !reader.is_finished() {
            if moved() {
                seen = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let open = flow_of(client_cg);
        assert!(
            seen && !reader.is_finished(),
            "the open connection's counters did not move past 2 MiB each way (reader done: {}): {open:?} {:?}",
            reader.is_finished(),
            flow_of(server_cg)
        );
        assert!(
            open.as_ref().is_some_and(|f| f.tcp_flags_in & 1 == 0),
            "read while the connection lasted: {open:?}"
        );
        let total = reader.join().expect("the reader ran");
        assert_eq!(total, SENT, "the reader got the whole file");
    });
    // The last FINs and ACKs may trail the reader's exit.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let client_flow = flow_of(client_cg).expect("the client's flow");
    let server_flow = flow_of(server_cg).expect("the server's flow");
    common::assert_download_counted(&client_flow, &server_flow, SENT);
    assert!(
        client_flow.tcp_flags_out & 1 != 0 && client_flow.tcp_flags_in & 1 != 0,
        "both FINs are on the client's flow: {client_flow:?}"
    );
}

/// How a connection ended stays on its flow, though most of its packets pass the
/// programs at once: a connect to a closed port is refused (SYN out, RST in, nothing
/// answered); a client that quits with unread data resets the connection (RST out,
/// and in at the server); a fetch that ends normally closes with FINs both ways.
#[test]
fn a_connection_ends_refused_reset_or_closed_and_its_flow_says_which() {
    const FIN: u8 = 1;
    const SYN: u8 = 2;
    const RST: u8 = 4;
    const ACK: u8 = 16;
    let _turn = common::serial();
    let Some(probe) = common::probe() else { return };
    let net = TestNetwork::create("net-end");
    let server = common::http_server("net-end-srv", "end-web", &net.name, 8 << 20);
    let client = common::service("net-end-cli", "end-client", &net.name, &[]);
    let ip = server.ip(&net.name);
    let dir = common::directory();
    let (client_cg, server_cg) = (
        common::cgroup_of(&dir, &client.id),
        common::cgroup_of(&dir, &server.id),
    );
    let flows_of = |cg: u64, port: u16| -> Vec<_> {
        probe
            .flows()
            .unwrap()
            .into_iter()
            .filter(|f| f.cgroup_id == cg && (f.remote_port == port || f.local_port == port))
            .collect()
    };

    // Refused: nothing listens on 9.
    client.exec(&format!("nc {ip} 9 </dev/null; true"));
    // Reset: wget stalls on a full pipe with the socket's receive queue full, and
    // is killed: its socket closes with data unread.
    client.exec(&format!(
        "(timeout 1 wget -q -O- http://{ip}:8080/file; true) | sleep 3"
    ));
    // Closed: a fetch of the file's first bytes that ends normally.
    let got = client.exec(&format!("wget -q -O- http://{ip}:8080/small | wc -c"));
    assert_eq!(
        got.trim(),
        "0",
        "the second file is not there (a 404): {got:?}"
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (refused, reset, closed) = loop {
        let refused = flows_of(client_cg, 9).into_iter().next();
        let to_web = flows_of(client_cg, 8080);
        let reset = to_web.iter().find(|f| f.tcp_flags_out & RST != 0).cloned();
        let closed = to_web
            .iter()
            .find(|f| f.tcp_flags_out & FIN != 0 && f.tcp_flags_out & RST == 0)
            .cloned();
        if (refused.is_some() && reset.is_some() && closed.is_some())
            || std::time::Instant::now() > deadline
        {
            break (refused, reset, closed);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let refused = refused.expect("the refused connect's flow");
    assert_eq!(refused.tcp_flags_out & (SYN | FIN), SYN, "{refused:?}");
    assert_eq!(
        refused.tcp_flags_in & (SYN | RST),
        RST,
        "refused: an RST came back, no SYN: {refused:?}"
    );
    let reset = reset.unwrap_or_else(|| panic!("no reset flow in {:?}", flows_of(client_cg, 8080)));
    assert!(
        reset.bytes_in > 64 * 1024 && reset.tcp_flags_in & SYN != 0,
        "the reset connection was answered and carried data: {reset:?}"
    );
    assert_eq!(
        reset.tcp_flags_in & FIN,
        0,
        "a reset is not a close: {reset:?}"
    );
    let server_reset = flows_of(server_cg, 8080)
        .into_iter()
        .find(|f| f.remote_port == reset.local_port)
        .expect("the server's side of the reset connection");
    assert!(
        server_reset.tcp_flags_in & RST != 0,
        "the server received the RST: {server_reset:?}"
    );
    let closed =
        closed.unwrap_or_else(|| panic!("no closed flow in {:?}", flows_of(client_cg, 8080)));
    assert_eq!(
        (
            closed.tcp_flags_out & (FIN | ACK),
            closed.tcp_flags_in & (FIN | ACK)
        ),
        (FIN | ACK, FIN | ACK),
        "closed: FINs and ACKs both ways: {closed:?}"
    );
}
