//! Retro-hunts checked against the live engine over the same events.

mod common;

use rampart_recorder::{Query, Recorder};

#[test]
fn retro_hunt_raises_what_the_live_engine_raised() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    let events = common::attack_mix();
    common::record(&rec, &events);
    let live = common::live_alerts(&events);
    assert!(live.len() > 20, "{} live alerts", live.len());
    let hunt = rec
        .retro_hunt(&[common::rules_dir()], &Query::new())
        .unwrap();
    assert_eq!(hunt.events as usize, events.len());
    assert!(hunt.alerts.iter().all(|a| a.retro));
    assert!(live.iter().all(|a| !a.retro));
    let mut a: Vec<_> = live.iter().map(common::key).collect();
    let mut b: Vec<_> = hunt.alerts.iter().map(common::key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // A time range limits the hunt.
    let mid = events[events.len() / 2].ts_ns;
    let half = rec
        .retro_hunt(&[common::rules_dir()], &Query::new().since(mid))
        .unwrap();
    assert!(half.events < hunt.events);
    // The retro flag survives JSON.
    let json = serde_json::to_string(&hunt.alerts[0]).unwrap();
    assert!(json.contains("\"retro\":true"));
    assert!(!serde_json::to_string(&live[0]).unwrap().contains("retro"));
}
