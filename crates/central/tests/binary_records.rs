//! A node's recorded events asked for in binary (the recorder's block encoding) come
//! back to central as the same records, in the same order, as the JSON lines an older
//! central asks for, over a real nats-server; the JSON central makes of them for the
//! API is the node's own, line for line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::fleet::{serve_requests, NodeService};
use rampart_bus::rpc::EventQuery;
use rampart_bus_nats::{NatsBackplane, NatsConfig};
use rampart_central::nodes::{NodeClient, RecordBatch};

#[test]
fn binary_records_are_the_json_lines_records() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nats = rampart_testbed::NatsServer::start(&dir.path().join("nats"));
    let recorder_dir = dir.path().join("recorder");
    let workload =
        rampart_recorder::sample::load_events(&rampart_recorder::sample::workload_file()).unwrap();
    // More than one chunk's worth (256 KiB of either form).
    let n = 30_000usize;
    {
        let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig::with_dir(
            &recorder_dir,
        ))
        .unwrap();
        let w = rampart_recorder::Writer::start(rec).unwrap();
        let span = workload.last().unwrap().ts_ns - workload[0].ts_ns + 1;
        for i in 0..n {
            let mut ev = workload[i % workload.len()].clone();
            ev.ts_ns += (i / workload.len()) as u64 * span;
            let ev = Arc::new(ev);
            while !w.try_append_event(ev.clone()) {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        w.close().unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // JetStream reserves the stream's bound on disk: a test needs little.
    let nats_config = NatsConfig {
        max_bytes: 64 << 20,
        ..NatsConfig::new(&nats.url())
    };
    let plane = Arc::new(rt.block_on(NatsBackplane::connect(nats_config)).unwrap());
    let mut service = NodeService::new("bin-node", &recorder_dir, Vec::new());
    // Small chunks, so the answer takes several (their numbering is checked).
    service.binary_chunk_bytes = 16 << 10;
    let service = Arc::new(service);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(serve_requests(plane.clone(), service, async {
        let _ = stop_rx.await;
    }));
    let client = NodeClient::new(plane, None);
    let (json_lines, json_bytes, records, binary_bytes, binary_as_json) = rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.ping("bin-node").await.is_err() {
            assert!(Instant::now() < deadline, "the node answers");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut s = client
            .query_events("bin-node", EventQuery::default())
            .await
            .unwrap();
        let mut json_lines = Vec::new();
        while let Some(b) = s.next_records().await.unwrap() {
            match b {
                RecordBatch::Lines(l) => json_lines.extend(l.lines().map(str::to_string)),
                RecordBatch::Records(_) => panic!("records where lines were asked for"),
            }
        }
        let json_bytes = s.received_bytes();
        let binary = EventQuery {
            binary: true,
            ..Default::default()
        };
        let mut s = client
            .query_events("bin-node", binary.clone())
            .await
            .unwrap();
        let mut records = Vec::new();
        let mut chunks = 0;
        while let Some(b) = s.next_records().await.unwrap() {
            chunks += 1;
            match b {
                RecordBatch::Records(r) => records.extend(r),
                RecordBatch::Lines(l) => assert!(l.is_empty(), "lines in a binary answer"),
            }
        }
        assert!(chunks > 2, "the answer came in several chunks ({chunks})");
        assert_eq!(s.summary().unwrap()["records"], n as u64);
        let binary_bytes = s.received_bytes();
        let (as_json, _) = client
            .query_events("bin-node", binary)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        (json_lines, json_bytes, records, binary_bytes, as_json)
    });
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
    assert_eq!(json_lines.len(), n);
    assert_eq!(records.len(), n);
    for (i, (line, r)) in json_lines.iter().zip(&records).enumerate() {
        let rampart_recorder::Record::Event(e) = r else {
            panic!("record {i} is not an event: {r:?}");
        };
        let from_json: rampart_event::Event = serde_json::from_str(line).unwrap();
        assert_eq!(&from_json, e, "record {i}");
    }
    assert_eq!(binary_as_json, json_lines, "central's JSON is the node's");
    assert!(
        binary_bytes * 10 < json_bytes,
        "binary {binary_bytes} B against JSON {json_bytes} B"
    );
}
