//! The flow table on real containers: a client container fetches a file from an HTTP
//! server container on an internal Docker network, and the kernel's counters make an
//! edge client → server:8080 with bytes both ways and the process that connected.

mod common;

use rampart_netflow::graph::{self, GraphQuery};
use rampart_netflow::{EdgeState, Peer, Proto};
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

    let g = graph::build(table.flows(), &GraphQuery::default(), |_| {
        EdgeState::Unlearned
    });
    let edge = g
        .edges
        .iter()
        .find(|e| e.source == "compose:nettest/client" && e.target == "compose:nettest/web")
        .unwrap_or_else(|| panic!("no client → web edge in\n{}", g.to_table()));
    assert_eq!((edge.protocol, edge.port), (Proto::Tcp, 8080));
    assert!(
        edge.bytes_received > 200_000 && edge.bytes_sent > 0,
        "{edge:?}"
    );
    assert_eq!(
        edge.connections, 1,
        "the server's view is not counted twice"
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
    let client_cg = dir
        .containers()
        .find(|c| c.id == client.id)
        .map(|c| c.cgroup_id)
        .expect("the client is in the directory");
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
