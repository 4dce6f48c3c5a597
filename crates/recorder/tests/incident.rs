//! Incident bundles made concurrently while a writer is writing.

mod common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use rampart_event::Alert;
use rampart_recorder::{LifecycleAction, LifecycleRecord, Recorder, Writer};

fn untar(path: &std::path::Path) -> Vec<(String, String)> {
    let f = std::fs::File::open(path).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        out.push((name, s));
    }
    out
}

#[test]
fn incident_bundles_are_made_concurrently_next_to_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    let events = common::attack_mix();
    let alerts = common::live_alerts(&events);
    let w = Writer::start(rec.clone()).unwrap();
    let c = events[0].container.container().unwrap().clone();
    w.try_append_lifecycle(LifecycleRecord {
        ts_ns: events[0].ts_ns - 1,
        action: LifecycleAction::Start,
        container_id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        labels: Default::default(),
    });
    for e in &events {
        while !w.try_append_event(Arc::new(e.clone())) {
            std::thread::yield_now();
        }
    }
    for a in &alerts {
        assert!(w.try_append_alert(a.clone()));
    }
    w.try_append_lifecycle(LifecycleRecord {
        ts_ns: events.last().unwrap().ts_ns + 1,
        action: LifecycleAction::Die { exit_code: 137 },
        container_id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        labels: Default::default(),
    });
    w.flush().unwrap();

    // Alerts in the recorded container, found by id.
    let ours: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.event.container.container().is_some_and(|x| x.id == c.id))
        .take(3)
        .collect();
    assert!(!ours.is_empty());
    assert_eq!(rec.find_alert(&ours[0].id).unwrap().rule, ours[0].rule);
    assert!(rec.find_alert("nope").is_err());

    // Several bundles at once while the writer keeps writing.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feeder = {
        let stop = stop.clone();
        let events = events.clone();
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut e = events[i % events.len()].clone();
                e.ts_ns += 10_000_000_000_000;
                w.try_append_event(Arc::new(e));
                i += 1;
                if i % 1000 == 0 {
                    w.flush().unwrap();
                }
            }
            w.close().unwrap()
        })
    };
    let handles: Vec<_> = ours
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let rec = rec.clone();
            let id = a.id.clone();
            let out = dir.path().join(format!("bundle-{i}.tar.gz"));
            std::thread::spawn(move || {
                rec.incident_bundle(
                    &id,
                    Duration::from_secs(600),
                    Duration::from_secs(600),
                    &out,
                )
                .unwrap()
            })
        })
        .collect();
    let summaries: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();

    for s in &summaries {
        assert_eq!(s.container, c.id);
        assert!(
            s.events > 100 && s.processes > 1 && s.connections > 0,
            "{s:?}"
        );
        assert_eq!(s.lifecycle, 2);
        let files = untar(&s.path);
        let names: Vec<&str> = files
            .iter()
            .map(|(n, _)| n.rsplit('/').next().unwrap())
            .collect();
        for want in [
            "summary.md",
            "alert.json",
            "events.jsonl",
            "process-tree.txt",
            "network.txt",
            "files-written.txt",
            "lifecycle.jsonl",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        let get = |n: &str| &files.iter().find(|(x, _)| x.ends_with(n)).unwrap().1;
        assert_eq!(get("events.jsonl").lines().count(), s.events);
        let alert: Alert = serde_json::from_str(get("alert.json")).unwrap();
        assert_eq!(alert.id, s.alert_id);
        let md = get("summary.md");
        assert!(md.contains("## Timeline"), "{md}");
        assert!(md.contains("(this alert)"), "{md}");
        assert!(md.contains("**exec"), "{md}");
        assert!(md.contains("**network**"), "{md}");
        assert!(md.contains("**lifecycle**: container started"), "{md}");
        assert!(get("lifecycle.jsonl").contains("\"exit_code\":137"));
    }
}
