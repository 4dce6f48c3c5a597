//! The writer's lag: nothing waits while it keeps up; when its encoder stalls, the
//! records queued behind it and how long the oldest has waited grow, and both fall
//! back to zero once it has caught up.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_recorder::{Recorder, Writer, WriterLag};

#[test]
fn lag_grows_while_the_writer_stalls_and_clears_after() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::open(common::config(dir.path())).unwrap();
    let w = Writer::start(rec).unwrap();
    let probe = w.lag_probe();
    let events: Vec<_> = common::workload()
        .into_iter()
        .take(200)
        .map(Arc::new)
        .collect();
    for e in &events[..100] {
        assert!(w.try_append_event(e.clone()));
    }
    w.flush().unwrap();
    assert_eq!(w.lag(), WriterLag::default(), "a writer that keeps up");

    let stall = Duration::from_millis(1500);
    let stalled = Instant::now();
    assert!(w.stall(stall));
    assert!(w.try_append_events(events[100..].to_vec()));
    std::thread::sleep(Duration::from_millis(300));
    let early = probe.lag();
    assert_eq!(early.queued, 100, "{early:?}");
    assert!(early.behind >= Duration::from_millis(250), "{early:?}");
    std::thread::sleep(Duration::from_millis(600));
    let later = probe.lag();
    assert_eq!(later.queued, 100, "{later:?}");
    assert!(
        later.behind >= early.behind + Duration::from_millis(500),
        "the lag grows while stalled: {early:?} then {later:?}"
    );
    assert!(later.behind <= stalled.elapsed(), "{later:?}");

    w.flush().unwrap();
    assert!(stalled.elapsed() >= stall);
    assert_eq!(probe.lag(), WriterLag::default(), "caught up");
    let stats = w.close().unwrap();
    assert_eq!(stats.appended, 200);
    assert_eq!(stats.shed, 0);
}
