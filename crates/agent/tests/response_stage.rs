//! The response stage in a running pipeline against real containers: a Docker stop
//! waiting out its grace period does not hold up the next alert's freeze, and a
//! quarantined container that goes has its kernel rules lifted once its lifecycle
//! record arrives. Containers are named `resp-stage-*` and removed on drop.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::stages::{AlertLog, ResponseStage};
use rampart_agent::{
    Batch, Controls, EventSource, PipelineBuilder, Record, Stage, StageContext, StageError,
    Subscription,
};
use rampart_event::{
    Alert, Container, ContainerLifecycle, Event, LifecycleAction, Payload, Priority, Workload,
};
use rampart_respond::policy::{ActionSpec, Policy};
use rampart_respond::target::ContainerCgroups;
use rampart_respond::{Mode, PolicyStore, Toolbox};
use rampart_testbed::{TestContainer, TEST_IMAGE};

/// Events and lifecycle changes from the test.
struct Feed {
    events: Receiver<Event>,
    lifecycle: Receiver<ContainerLifecycle>,
}

impl EventSource for Feed {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }
    fn try_recv(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
    fn stop(&mut self) {}
    fn try_recv_lifecycle(&mut self) -> Option<ContainerLifecycle> {
        self.lifecycle.try_recv().ok()
    }
}

/// Raises an alert per event, named by the exec'd path, as detection would.
struct Raiser;
impl Stage for Raiser {
    fn name(&self) -> &str {
        "raiser"
    }
    fn subscription(&self) -> Subscription {
        Subscription::EVENTS
    }
    fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError> {
        for r in &batch.records {
            if let Record::Event(ev) = r {
                let Payload::Exec { filename, .. } = &ev.payload else {
                    continue;
                };
                ctx.emit_alert(Alert {
                    id: format!("alert-{}", ev.seq),
                    ts_ns: ev.ts_ns,
                    first_ts_ns: ev.ts_ns,
                    count: 1,
                    rule: filename.clone(),
                    priority: Priority::Critical,
                    mitre: vec![],
                    tags: vec![],
                    message: "m".into(),
                    output_fields: Default::default(),
                    source: "syscall".into(),
                    event: (**ev).clone(),
                    retro: false,
                });
            }
        }
        Ok(())
    }
}

/// The response stage's audit alerts, with the moment each came out of the pipeline.
fn audits(log: &AlertLog) -> Vec<(Instant, Arc<Alert>)> {
    log.timed()
        .into_iter()
        .filter(|(_, a)| a.source == "response")
        .collect()
}

fn event(seq: u64, c: &TestContainer, rule: &str) -> Event {
    Event {
        schema: 1,
        ts_ns: rampart_agent::wall_ns(),
        host: "h".into(),
        seq,
        process: None,
        container: Arc::new(Workload::Container(Container {
            id: c.id.clone(),
            name: c.name.clone(),
            image: TEST_IMAGE.into(),
            ..Container::default()
        })),
        compat_syscall: false,
        payload: Payload::Exec {
            filename: rule.into(),
            interpreter: None,
            from_memfd: false,
            from_deleted: false,
        },
    }
}

fn audit_for<'a>(
    seen: &'a [(Instant, Arc<Alert>)],
    rule: &str,
) -> Option<&'a (Instant, Arc<Alert>)> {
    seen.iter().find(|(_, a)| {
        a.output_fields
            .get("response.rule")
            .and_then(|v| v.as_str())
            == Some(rule)
    })
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_slow_stop_does_not_hold_up_a_freeze_and_gone_containers_are_released() {
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    // PID 1 ignores SIGTERM: the stop waits out its whole grace period.
    let slow = TestContainer::start("resp-stage-slow", &[], &[]);
    let frozen = TestContainer::start("resp-stage-frozen", &[], &[]);
    let gone = TestContainer::start("resp-stage-gone", &[], &[]);
    let policy = Policy::parse(
        "scope: {names: [\"resp-stage-*\"]}\nrate_limit: {per_container: {count: 10, seconds: 60}}\nresponses:\n  - {name: stop-it, when: {rules: [\"/stop\"]}, action: stop, mode: enforce, with: {grace_s: 4}}\n  - {name: freeze-it, when: {rules: [\"/freeze\"]}, action: freeze, mode: enforce}\n  - {name: isolate-it, when: {rules: [\"/quarantine\"]}, action: quarantine, mode: enforce}\n",
        std::path::Path::new("policy.yaml"),
    )
    .unwrap();
    let toolbox = Toolbox::new();
    let seen = AlertLog::new();
    let pipeline = PipelineBuilder::new()
        .stage(Raiser)
        .stage(ResponseStage::new(
            Arc::new(PolicyStore::new(policy)),
            toolbox.clone(),
        ))
        .stage(seen.stage())
        .start()
        .unwrap();
    let (etx, erx) = mpsc::channel();
    let (ltx, lrx) = mpsc::channel();
    let controls = Controls::default();
    let stop = controls.stop.clone();
    let runner = std::thread::spawn(move || {
        let mut feed = Feed {
            events: erx,
            lifecycle: lrx,
        };
        pipeline.run(&mut feed, &controls)
    });

    let t0 = Instant::now();
    etx.send(event(1, &slow, "/stop")).unwrap();
    etx.send(event(2, &frozen, "/freeze")).unwrap();
    wait_until("the freeze's audit", 10, || {
        audit_for(&audits(&seen), "/freeze").is_some()
    });
    let freeze_after = t0.elapsed();
    assert!(
        audit_for(&audits(&seen), "/stop").is_none(),
        "the stop finished before the freeze was audited"
    );
    assert!(
        freeze_after < Duration::from_secs(2),
        "freeze waited {freeze_after:?} behind the stop"
    );
    wait_until("the stop's audit", 20, || {
        audit_for(&audits(&seen), "/stop").is_some()
    });
    let stop_after = t0.elapsed();
    eprintln!("freeze audited after {freeze_after:?}, the slow stop after {stop_after:?}");
    assert!(stop_after >= Duration::from_secs(3), "{stop_after:?}");
    let running = rampart_testbed::docker(&["inspect", "-f", "{{.State.Running}}", &slow.name]);
    assert_eq!(running, "false");
    for (_, a) in audits(&seen).iter() {
        assert_eq!(
            a.output_fields.get("response.result"),
            Some(&serde_json::json!("done")),
            "{a:#?}"
        );
    }

    // Quarantine, then the container goes: its kernel rules are lifted.
    let cgid = rampart_bpf::response::cgroup_id(
        ContainerCgroups::find(&gone.id, None)
            .v2
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    etx.send(event(3, &gone, "/quarantine")).unwrap();
    wait_until("the quarantine's audit", 10, || {
        audit_for(&audits(&seen), "/quarantine").is_some()
    });
    assert!(toolbox
        .guard()
        .unwrap()
        .network_policy(cgid)
        .unwrap()
        .is_some());
    rampart_testbed::remove_container(&gone.name);
    ltx.send(ContainerLifecycle {
        ts_ns: rampart_agent::wall_ns(),
        action: LifecycleAction::Die { exit_code: 137 },
        container_id: gone.id.clone(),
        name: gone.name.clone(),
        image: TEST_IMAGE.into(),
        labels: Default::default(),
    })
    .unwrap();
    // An event to wake the router, which forwards lifecycle records as it goes.
    etx.send(event(4, &frozen, "/nothing")).unwrap();
    wait_until("the gone container's rules lifted", 15, || {
        toolbox
            .guard()
            .unwrap()
            .network_policy(cgid)
            .unwrap()
            .is_none()
    });

    stop.store(true, Ordering::Relaxed);
    runner.join().unwrap();
    let thaw = ActionSpec::Unfreeze.build(&toolbox);
    let t = rampart_respond::Target {
        container_id: frozen.id.clone(),
        container_name: frozen.name.clone(),
        ..Default::default()
    };
    thaw.apply(&t, Mode::Enforce).unwrap();
}
