//! The backplane against a real nats-server of the test's own (Debian's, from
//! scripts/setup), on a free port with its own store, so killing it disturbs no one:
//! a node spools through an outage and nothing is lost; a restarted consumer resumes
//! from its durable position.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_bus::{Backplane, Forwarder, Spool, SpoolConfig};
use rampart_bus_nats::{NatsBackplane, NatsConfig};
use rampart_testbed::NatsServer;

fn config(url: &str) -> NatsConfig {
    NatsConfig {
        // Short, so messages lost in flight when the server died come again quickly.
        ack_wait: Duration::from_secs(3),
        // JetStream reserves the stream's bound on disk: a test needs little.
        max_bytes: 64 << 20,
        ..NatsConfig::new(url)
    }
}

/// How long the server stays down: the 30 s unless RAMPART_NATS_OUTAGE_SECS says.
fn outage() -> Duration {
    let secs = std::env::var("RAMPART_NATS_OUTAGE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_nats_dies_mid_stream() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(&dir.path().join("nats"));
    let url = server.url();

    // The node: spool + forwarder onto JetStream.
    let node_bus: Arc<dyn Backplane> =
        Arc::new(NatsBackplane::connect(config(&url)).await.unwrap());
    let spool = Spool::open(SpoolConfig::new(dir.path().join("spool"), "node-a")).unwrap();
    let fwd = Forwarder::spawn(spool.clone(), node_bus, &tokio::runtime::Handle::current());

    // Central: a durable consumer collecting what it receives, acking each.
    let central = NatsBackplane::connect(config(&url)).await.unwrap();
    let mut consumer = central.consumer("central").await.unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let consume = tokio::spawn(async move {
        while let Ok(Some(d)) = consumer.next().await {
            let i: u64 = std::str::from_utf8(&d.payload).unwrap().parse().unwrap();
            let _ = seen_tx.send(i);
            // The ack may fail while the server is away: the message comes again.
            let _ = d.ack().await;
        }
    });

    const PER_PHASE: u64 = 200;
    let push = |from: u64| {
        for i in from..from + PER_PHASE {
            spool.push(1, i.to_string().as_bytes()).unwrap().unwrap();
        }
    };
    let mut received = Vec::new();
    let mut wait_for = |n: u64, rx: &mut tokio::sync::mpsc::UnboundedReceiver<u64>| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.iter().collect::<BTreeSet<_>>().len() < n as usize {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} arrived",
                received.len()
            );
            match rx.try_recv() {
                Ok(i) => received.push(i),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    };

    push(0);
    // Mid-stream: the first phase is still going out when the server dies.
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.kill();
    let down_at = Instant::now();
    push(PER_PHASE);
    tokio::time::sleep(outage()).await;
    let queued_during_outage = spool.stats().queued_messages;
    server.restart();
    let up_at = Instant::now();
    push(2 * PER_PHASE);
    tokio::task::block_in_place(|| wait_for(3 * PER_PHASE, &mut seen_rx));
    let caught_up = up_at.elapsed();

    let distinct: BTreeSet<u64> = received.iter().copied().collect();
    assert_eq!(distinct, (0..3 * PER_PHASE).collect(), "nothing lost");
    // In order: each message first arrives after every earlier one (a redelivery may
    // repeat an old one later, which the store ignores).
    let mut firsts = Vec::new();
    let mut had = BTreeSet::new();
    for i in &received {
        if had.insert(*i) {
            firsts.push(*i);
        }
    }
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "first arrivals in order"
    );
    let stats = spool.stats();
    assert!(
        queued_during_outage >= PER_PHASE,
        "the outage was spooled: {stats:?}"
    );
    assert!(stats.publish_errors > 0, "the outage was felt: {stats:?}");
    assert_eq!((stats.dropped_messages, stats.queued_messages), (0, 0));
    eprintln!(
        "outage {:?}: {} spooled at restart, caught up {:?} after restart, {} duplicates delivered, {} publish errors",
        up_at - down_at,
        queued_during_outage,
        caught_up,
        received.len() - distinct.len(),
        stats.publish_errors
    );
    fwd.shutdown(Duration::from_secs(1)).await;
    consume.abort();
}

async fn next(c: &mut Box<dyn rampart_bus::Consumer>) -> rampart_bus::Delivery {
    tokio::time::timeout(Duration::from_secs(10), c.next())
        .await
        .expect("a message within 10 s")
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_from_its_durable_position() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&dir.path().join("nats"));
    let url = server.url();
    let node = NatsBackplane::connect(config(&url)).await.unwrap();
    for i in 0..20u32 {
        let msg = rampart_bus::OutMessage {
            id: format!("m{i}"),
            node: "node-a".into(),
            payload: i.to_string().into(),
        };
        node.publish(msg.clone()).await.unwrap();
        // A resend of the same id is held once.
        node.publish(msg).await.unwrap();
    }
    {
        let central = NatsBackplane::connect(config(&url)).await.unwrap();
        let mut c = central.consumer("central").await.unwrap();
        for i in 0..10u32 {
            let d = next(&mut c).await;
            assert_eq!(
                (d.id.as_str(), d.node.as_str()),
                (format!("m{i}").as_str(), "node-a")
            );
            d.ack().await.unwrap();
        }
        // Central stops here: the rest was never acked.
    }
    let central = NatsBackplane::connect(config(&url)).await.unwrap();
    let mut c = central.consumer("central").await.unwrap();
    let mut got = Vec::new();
    for _ in 10..20u32 {
        let d = next(&mut c).await;
        got.push(d.id.clone());
        d.ack().await.unwrap();
    }
    let expected: Vec<String> = (10..20).map(|i| format!("m{i}")).collect();
    assert_eq!(
        got, expected,
        "resumed after the last ack, duplicates dropped"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(4), c.next())
            .await
            .is_err(),
        "nothing more: each id was stored once"
    );
    assert_eq!(
        c.lost_messages(),
        0,
        "messages delivered before and delivered again are not lost"
    );
}

/// A stream full past its bound discards its oldest messages (JetStream's limits):
/// those central never read are counted as lost and said, not passed over in silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_the_stream_discards_before_central_reads_them_are_counted_as_lost() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&dir.path().join("nats"));
    let url = server.url();
    // Room for about 16 of the 4 KiB messages below.
    let small = NatsConfig {
        max_bytes: 64 << 10,
        ..config(&url)
    };
    let node = NatsBackplane::connect(small.clone()).await.unwrap();
    let message = |i: u32| rampart_bus::OutMessage {
        id: format!("m{i}"),
        node: "node-a".into(),
        payload: vec![b'x'; 4096].into(),
    };
    {
        let central = NatsBackplane::connect(small.clone()).await.unwrap();
        let mut c = central.consumer("central").await.unwrap();
        for i in 0..2u32 {
            node.publish(message(i)).await.unwrap();
            next(&mut c).await.ack().await.unwrap();
        }
        assert_eq!(c.lost_messages(), 0);
        // Central stops (its connection closed, so no pull of it is left waiting for
        // the next batches); the node goes on publishing past the stream's bound.
        drop(c);
        let _ = central.client().drain().await;
    }
    for i in 2..100u32 {
        node.publish(message(i)).await.unwrap();
    }
    // nats-server may still hand the first of these to the stopped central's pull
    // before it notices the pull is gone (one to three of them here). Discarded
    // unacked, they move the consumer's ack floor past them and are not counted: the
    // count is of batches never delivered, from past what the server had delivered.
    let js = async_nats::jetstream::new(node.client().clone());
    let mut durable: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream(&small.stream)
        .await
        .unwrap()
        .get_consumer("central")
        .await
        .unwrap();
    let delivered = durable.info().await.unwrap().delivered.stream_sequence;
    let central = NatsBackplane::connect(small).await.unwrap();
    let mut c = central.consumer("central").await.unwrap();
    let mut got = BTreeSet::new();
    // Longer than the ack wait, so batches handed to the stopped pull come again.
    while let Ok(d) = tokio::time::timeout(Duration::from_secs(4), c.next()).await {
        let d = d.unwrap().unwrap();
        got.insert(
            d.id.strip_prefix('m')
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap(),
        );
        d.ack().await.unwrap();
    }
    let first = *got.first().expect("central read what the stream kept");
    assert!(first > 2, "the stream discarded the oldest: {got:?}");
    assert_eq!(
        got,
        (first..100).collect::<BTreeSet<u64>>(),
        "what the stream kept"
    );
    // Message m{i} has stream sequence i + 1: those never delivered and discarded are
    // sequences delivered + 1 ..= first.
    let expected = first.saturating_sub(delivered);
    assert!(
        expected >= 70,
        "most of m2..m{} were never delivered: {delivered}",
        first - 1
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.lost_messages() != expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        c.lost_messages(),
        expected,
        "lost of m2..m{} (the server had delivered up to sequence {delivered})",
        first - 1
    );
}

/// A server whose file store is smaller than the stream's bound refuses the stream
/// (JetStream reserves it); the error says which stream, how much, and what to change,
/// and a bound that fits is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_server_cannot_reserve_is_refused_with_what_to_change() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("nats");
    let nats = NatsServer::start_with_config(
        &store,
        &format!(
            "jetstream {{ store_dir: \"{}\", max_file_store: 32MB }}\n",
            store.display()
        ),
    );
    let too_big = NatsConfig {
        max_bytes: 256 << 20,
        ..config(&nats.url())
    };
    let plane = NatsBackplane::connect(too_big).await.unwrap();
    let msg = rampart_bus::OutMessage {
        id: "m-1".into(),
        node: "n1".into(),
        payload: b"x".to_vec().into(),
    };
    let err = plane.publish(msg.clone()).await.unwrap_err().to_string();
    assert!(err.contains("256 MiB") && err.contains("RAMPART"), "{err}");
    assert!(err.contains("stream_max_mb"), "{err}");

    let fits = NatsConfig {
        max_bytes: 16 << 20,
        ..config(&nats.url())
    };
    let plane = NatsBackplane::connect(fits).await.unwrap();
    plane.publish(msg).await.unwrap();
}

/// A backlog of large batches reaches a consumer whole and without a stall: the pull
/// asks for at most `pull_max_bytes` at once, so the server never queues more for the
/// client than its `max_pending` allows (beyond it the server drops the client as a
/// slow consumer, and what was in flight waits out the 30 s ack wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_large_batches_is_pulled_within_the_servers_pending_bound() {
    if !rampart_testbed::nats_server_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start_with_config(&dir.path().join("nats"), "max_pending: 4MB\n");
    let url = server.url();
    let cfg = NatsConfig {
        pull_max_bytes: std::env::var("RAMPART_TEST_PULL_MAX_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2 << 20),
        max_bytes: 64 << 20,
        ..NatsConfig::new(&url)
    };
    let node = NatsBackplane::connect(cfg.clone()).await.unwrap();
    const MESSAGES: u32 = 40;
    let body = vec![b'x'; 512 << 10];
    for i in 0..MESSAGES {
        node.publish(rampart_bus::OutMessage {
            id: format!("big{i}"),
            node: "node-a".into(),
            payload: body.clone().into(),
        })
        .await
        .unwrap();
    }
    let central = NatsBackplane::connect(cfg).await.unwrap();
    let mut c = central.consumer("central").await.unwrap();
    let started = Instant::now();
    for i in 0..MESSAGES {
        let d = next(&mut c).await;
        assert_eq!(d.id, format!("big{i}"));
        assert_eq!(d.payload.len(), body.len());
        d.ack().await.unwrap();
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "{MESSAGES} batches of 512 KiB took {took:?}"
    );
}
