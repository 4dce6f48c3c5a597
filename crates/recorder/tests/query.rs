//! Queries over the recorded workload, checked against a brute-force filter of the
//! same events.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rampart_event::{Event, EventKind, Payload};
use rampart_recorder::{
    compile_where, Query, Record, RecordTypes, Recorder, RecorderConfig, Writer,
};

fn events_of(it: impl Iterator<Item = Record>) -> Vec<Event> {
    it.filter_map(|r| match r {
        Record::Event(e) => Some(e),
        _ => None,
    })
    .collect()
}

fn sorted_by_ts(mut v: Vec<Event>) -> Vec<Event> {
    v.sort_by_key(|e| e.ts_ns);
    v
}

fn setup(block_bytes: usize) -> (tempfile::TempDir, Arc<Recorder>, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(RecorderConfig {
        block_bytes,
        segment_bytes: 64 << 10,
        ..common::config(dir.path())
    })
    .unwrap();
    let events = common::workload();
    common::record(&rec, &events);
    (dir, rec, events)
}

#[test]
fn all_records_come_back_in_time_order_across_segments() {
    let (_d, rec, events) = setup(16 << 10);
    let (blocks, n) = rec.totals().unwrap();
    assert!(blocks > 20, "{blocks} blocks");
    assert_eq!(n as usize, events.len());
    let got = events_of(rec.query(&Query::new()).unwrap());
    assert_eq!(got.len(), events.len());
    assert!(got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    assert_eq!(got, sorted_by_ts(events));
}

#[test]
fn filters_match_a_brute_force_scan() {
    let (_d, rec, events) = setup(32 << 10);
    let first = events[0].container.container().unwrap().clone();
    let t0 = events[events.len() / 4].ts_ns;
    let t1 = events[events.len() / 2].ts_ns;

    // Container by name, and by id prefix, within a time range.
    for key in [first.name.clone(), first.id[..12].to_string()] {
        let q = Query::new().container(&key).since(t0).until(t1);
        let got = events_of(rec.query(&q).unwrap());
        let want: Vec<Event> = sorted_by_ts(
            events
                .iter()
                .filter(|e| e.container.container().is_some_and(|c| c.id == first.id))
                .filter(|e| e.ts_ns >= t0 && e.ts_ns <= t1)
                .cloned()
                .collect(),
        );
        assert!(!want.is_empty());
        assert_eq!(got.len(), want.len(), "container {key}");
    }

    // Image and kinds.
    let q = Query::new()
        .image(first.image.split(':').next().unwrap())
        .kinds(vec![EventKind::Exec, EventKind::NetConnect]);
    let got = events_of(rec.query(&q).unwrap());
    let want = events
        .iter()
        .filter(|e| {
            e.container
                .container()
                .is_some_and(|c| c.image == first.image)
        })
        .filter(|e| matches!(e.kind(), EventKind::Exec | EventKind::NetConnect))
        .count();
    assert!(want > 0);
    assert_eq!(got.len(), want);

    // A rule-language condition, with the shipped macros.
    let cond = "evt.type in (execve, execveat) and proc.name in (curl, wget, bash, sh)";
    let c = compile_where(cond, &[common::rules_dir()]).unwrap();
    let want = events.iter().filter(|e| c.matches(e)).count();
    let q = Query::new()
        .with_where(cond, &[common::rules_dir()])
        .unwrap();
    let got = events_of(rec.query(&q).unwrap());
    assert!(want > 0);
    assert_eq!(got.len(), want);
    assert!(Query::new()
        .with_where("proc.name = = x", &[common::rules_dir()])
        .is_err());

    // A name nobody had: nothing, quickly.
    assert_eq!(
        rec.query(&Query::new().container("no-such"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn tree_holds_a_process_and_its_descendants() {
    let (_d, rec, events) = setup(32 << 10);
    // The exec id with the most descendants by ancestry.
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for e in &events {
        if let Some(p) = &e.process {
            for a in &p.ancestry {
                *counts.entry(a.exec_id.as_str()).or_default() += 1;
            }
        }
    }
    // A process in a container (skip the runtime's and the host's).
    let root = events
        .iter()
        .filter_map(|e| e.process.as_ref())
        .filter(|p| p.comm == "bash" || p.comm == "sh")
        .map(|p| p.exec_id.as_str())
        .max_by_key(|x| counts.get(x).copied().unwrap_or(0))
        .unwrap()
        .to_string();
    let tree = rec.process_tree(&root, None, None).unwrap();
    assert!(tree.nodes.len() > 1, "{}", tree.render());
    let text = tree.render();
    assert!(text.lines().count() >= tree.nodes.len().min(2));
    let ids = tree.exec_ids();
    let got = events_of(rec.query(&Query::new().tree(&root)).unwrap());
    // Every process whose ancestry names the root is in the result.
    let want = events
        .iter()
        .filter(|e| {
            e.process
                .as_ref()
                .is_some_and(|p| p.exec_id == root || p.ancestry.iter().any(|a| a.exec_id == root))
        })
        .count();
    assert!(got.len() >= want, "{} < {want}", got.len());
    assert!(got
        .iter()
        .all(|e| ids.contains(&e.process.as_ref().unwrap().exec_id)));
    assert!(got
        .iter()
        .any(|e| matches!(e.payload, Payload::Exec { .. })));
}

#[test]
fn follow_sees_blocks_as_they_are_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    let events = common::workload();
    let w = Writer::start(rec.clone()).unwrap();
    // A full queue sheds what it is offered: offer each event until it is taken.
    let append = |e: &rampart_event::Event| {
        let e = Arc::new(e.clone());
        while !w.try_append_event(e.clone()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    events[..100].iter().for_each(append);
    w.flush().unwrap();
    let mut follow = rec
        .follow(&Query::new().records(RecordTypes::EVENTS))
        .unwrap();
    // Nothing new yet.
    assert!(follow
        .next_timeout(Duration::from_millis(50))
        .unwrap()
        .is_none());
    let reader = std::thread::spawn(move || {
        let mut got = 0;
        while got < 200 {
            match follow.next_timeout(Duration::from_secs(10)).unwrap() {
                Some(_) => got += 1,
                None => break,
            }
        }
        got
    });
    events[100..300].iter().for_each(append);
    w.flush().unwrap();
    assert_eq!(reader.join().unwrap(), 200);
}

#[test]
fn the_catalog_reads_only_the_blocks_a_query_needs() {
    let (_d, rec, events) = setup(16 << 10);
    let (total, _) = rec.totals().unwrap();
    let read = |q: Query| {
        let mut it = rec.query(&q).unwrap();
        let n = it.by_ref().count();
        (n, it.blocks_read() as u64)
    };
    assert_eq!(read(Query::new()).1, total, "everything reads every block");

    // One container: only its blocks (the writer keeps a block per container).
    let mut sizes: std::collections::HashMap<String, usize> = Default::default();
    for e in &events {
        if let Some(c) = e.container.container() {
            *sizes.entry(c.name.clone()).or_default() += 1;
        }
    }
    let (small, want) = sizes.iter().min_by_key(|(_, n)| **n).unwrap();
    let (got, blocks) = read(Query::new().container(small).records(RecordTypes::EVENTS));
    assert_eq!(got, *want);
    assert!(
        blocks >= 1 && blocks * 4 < total,
        "{small}: {blocks} of {total} blocks read for {want} events"
    );

    // A tenth of the time: the blocks overlapping it.
    let mut ts: Vec<u64> = events.iter().map(|e| e.ts_ns).collect();
    ts.sort();
    let (t0, t1) = (ts[ts.len() / 2], ts[ts.len() / 2 + ts.len() / 10]);
    let (_, blocks) = read(Query::new().since(t0).until(t1));
    assert!(
        blocks * 2 < total,
        "{blocks} of {total} blocks for a tenth of the time"
    );

    // A rare kind: the blocks holding it.
    let (got, blocks) = read(
        Query::new()
            .kinds(vec![EventKind::NetListen])
            .records(RecordTypes::EVENTS),
    );
    let want = events
        .iter()
        .filter(|e| e.kind() == EventKind::NetListen)
        .count();
    assert_eq!(got, want);
    assert!(blocks <= want as u64, "{blocks} blocks for {want} events");
}
