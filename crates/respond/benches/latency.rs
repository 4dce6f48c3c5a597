//! Time from an alert's event timestamp to the action completed (process dead,
//! container frozen, quarantine in the kernel), through the Responder and a policy in
//! enforce mode, against real containers. p50/p99 over `RAMPART_BENCH_TRIALS` (default
//! 200) trials each.
//!
//! The event timestamp is stamped when the bench hands the alert over, so this is the
//! response path alone (policy, checks, the act, its confirmation); the sensor's own
//! kernel-to-alert latency is what `rampart bench latency` measures.
//!
//! `cargo bench -p rampart-respond --bench latency`

use std::sync::Arc;
use std::time::Duration;

use rampart_event::{Alert, Container, Event, Payload, Priority, Process, Workload};
use rampart_respond::freeze::{Freeze, FreezeMethod};
use rampart_respond::policy::Policy;
use rampart_respond::target::ContainerCgroups;
use rampart_respond::{Action, AuditResult, Mode, PolicyStore, Responder, Toolbox};
use rampart_testbed::{TestContainer, TEST_IMAGE};

const POLICY: &str = r#"
scope: {names: ["rampart-respond-bench-*"]}
rate_limit:
  per_container: {count: 1000000, seconds: 1}
  global: {count: 1000000, seconds: 1}
responses:
  - {name: kill, when: {rules: [kill]}, action: kill, mode: enforce}
  - {name: freeze, when: {rules: [freeze]}, action: freeze, mode: enforce}
  - {name: quarantine, when: {rules: [quarantine]}, action: quarantine, mode: enforce}
"#;

fn alert(c: &TestContainer, rule: &str, pid: u32) -> Alert {
    let ts = rampart_respond::wall_ns();
    Alert {
        id: format!("bench-{ts}"),
        ts_ns: ts,
        first_ts_ns: ts,
        count: 1,
        rule: rule.into(),
        priority: Priority::Critical,
        mitre: vec![],
        tags: vec![],
        message: String::new(),
        output_fields: Default::default(),
        source: "syscall".into(),
        retro: false,
        event: Event {
            schema: 1,
            ts_ns: ts,
            host: "bench".into(),
            seq: 1,
            process: Some(Arc::new(Process {
                pid,
                tid: pid,
                ..Process::default()
            })),
            container: Arc::new(Workload::Container(Container {
                id: c.id.clone(),
                name: c.name.clone(),
                image: TEST_IMAGE.into(),
                ..Container::default()
            })),
            compat_syscall: false,
            payload: Payload::Exec {
                filename: "/bin/sleep".into(),
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
        },
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The container's current `sleep` (its loop starts a new one after each kill).
fn next_sleep(c: &TestContainer, not: u32) -> u32 {
    for _ in 0..2000 {
        if let Some(p) = ContainerCgroups::find(&c.id, None)
            .pids()
            .into_iter()
            .find(|p| *p != not && comm(*p) == "sleep")
        {
            return p;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    panic!("no sleep process appeared");
}

fn report(what: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let pct = |p: f64| {
        let i = ((ns.len() as f64 - 1.0) * p).round() as usize;
        ns[i] as f64 / 1e6
    };
    println!(
        "{what:<11} n={:<4} p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        ns.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
}

fn run(responder: &Responder, c: &TestContainer, rule: &str, pid: u32) -> u64 {
    let a = alert(c, rule, pid);
    let recs = responder.on_alert(&a);
    let r = recs.first().expect("one response");
    assert_eq!(r.result, AuditResult::Done, "{r:?}");
    r.latency_ns().expect("latency")
}

fn main() {
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let trials: usize = std::env::var("RAMPART_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let policy = Policy::parse(POLICY, std::path::Path::new("bench.yaml")).expect("policy");
    let toolbox = Toolbox::new();
    let responder = Responder::new(Arc::new(PolicyStore::new(policy)), toolbox.clone());

    let killc = TestContainer::start(
        "rampart-respond-bench-kill",
        &[],
        &["sh", "-c", "while :; do sleep 1000; done"],
    );
    let mut lat = Vec::with_capacity(trials);
    let mut last = 0;
    for _ in 0..trials {
        let pid = next_sleep(&killc, last);
        lat.push(run(&responder, &killc, "kill", pid));
        last = pid;
    }
    report("kill", lat);

    let frz = TestContainer::start("rampart-respond-bench-freeze", &[], &[]);
    let thaw = Freeze {
        method: FreezeMethod::Auto,
        toolbox: toolbox.clone(),
    };
    let t = rampart_respond::Target {
        container_id: frz.id.clone(),
        ..Default::default()
    };
    let mut lat = Vec::with_capacity(trials);
    for _ in 0..trials {
        lat.push(run(&responder, &frz, "freeze", 0));
        thaw.undo(&t, Mode::Enforce).expect("thaw");
    }
    report("freeze", lat);

    let q = TestContainer::start("rampart-respond-bench-quarantine", &[], &[]);
    let release = rampart_respond::policy::ActionSpec::Release.build(&toolbox);
    let tq = rampart_respond::Target {
        container_id: q.id.clone(),
        ..Default::default()
    };
    let mut lat = Vec::with_capacity(trials);
    for _ in 0..trials {
        lat.push(run(&responder, &q, "quarantine", 0));
        release.apply(&tq, Mode::Enforce).expect("release");
    }
    report("quarantine", lat);
}
