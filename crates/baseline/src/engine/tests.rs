use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_event::{
    Alert, Ancestor, Container, Event, OpenAccess, Payload, Priority, Process, Workload,
};

use super::*;

const S: u64 = 1_000_000_000;

fn container(id: &str) -> Container {
    let mut labels = BTreeMap::new();
    labels.insert("com.docker.compose.project".into(), "shop".into());
    labels.insert("com.docker.compose.service".into(), "web".into());
    Container {
        id: id.repeat(64 / id.len()),
        cgroup_id: id.as_bytes()[0] as u64,
        name: format!("web-{id}"),
        image: "nginx:1".into(),
        labels,
        metadata_complete: true,
        ..Container::default()
    }
}

fn exec(c: &str, ts: u64, exe: &str, argv: &[&str]) -> Arc<Event> {
    event(
        c,
        ts,
        exe,
        argv,
        false,
        Payload::Exec {
            filename: exe.into(),
            interpreter: None,
            from_memfd: false,
            from_deleted: false,
        },
    )
}

fn event(c: &str, ts: u64, exe: &str, argv: &[&str], upper: bool, payload: Payload) -> Arc<Event> {
    Arc::new(Event {
        schema: 1,
        ts_ns: ts,
        host: "h".into(),
        seq: ts,
        process: Some(Arc::new(Process {
            pid: 100,
            exe: exe.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ancestry: vec![Arc::new(Ancestor {
                exe: "/usr/bin/containerd-shim-runc-v2".into(),
                ..Ancestor::default()
            })],
            exe_upper_layer: upper,
            ..Process::default()
        })),
        container: Arc::new(Workload::Container(container(c))),
        compat_syscall: false,
        payload,
    })
}

fn cfg() -> BaselineConfig {
    BaselineConfig {
        enabled: true,
        window_secs: 10,
        stable_secs: 5,
        min_observations: 2,
        ..BaselineConfig::default()
    }
}

fn learn_web(e: &mut Engine, t0: u64) {
    let mut out = Vec::new();
    for i in 0..3 {
        for c in ["a", "b"] {
            e.observe(
                &exec(
                    c,
                    t0 + i * S,
                    "/usr/bin/python3.11",
                    &["python3", "-m", "http.server", "8080"],
                ),
                &mut out,
            );
            e.observe(
                &event(
                    c,
                    t0 + i * S,
                    "/usr/bin/python3.11",
                    &[],
                    false,
                    Payload::FileOpen {
                        path: format!("/var/log/app/{i}.log"),
                        path_raw: None,
                        flags: 0o101,
                        mode: 0o644,
                        access: OpenAccess::from_flags(0o101),
                        ret: 3,
                        repeats: 0,
                    },
                ),
                &mut out,
            );
        }
    }
    assert!(out.is_empty(), "discover raises nothing: {out:?}");
}

#[test]
fn workload_identity_prefers_kubernetes_then_compose_then_image() {
    let mut c = container("a");
    assert_eq!(workload_of(&c), "compose:shop/web");
    c.labels.insert(
        "io.kubernetes.pod.name".into(),
        "web-7d4b9c8f6d-x2k9p".into(),
    );
    c.labels
        .insert("io.kubernetes.pod.namespace".into(), "prod".into());
    c.labels
        .insert("io.kubernetes.container.name".into(), "nginx".into());
    assert_eq!(workload_of(&c), "k8s:prod/web/nginx");
    c.labels
        .insert("io.kubernetes.pod.name".into(), "db-0".into());
    assert_eq!(workload_of(&c), "k8s:prod/db/nginx");
    let plain = Container {
        id: "f".repeat(64),
        image_repository: "nginx".into(),
        image_tag: "1.25".into(),
        ..Container::default()
    };
    assert_eq!(workload_of(&plain), "image:nginx:1.25");
}

#[test]
fn learns_then_locks_when_stable_and_explains_a_new_executable() {
    let mut e = Engine::new(cfg());
    let t0 = 1_000 * S;
    learn_web(&mut e, t0);
    let b = e.get("compose:shop/web").unwrap();
    assert_eq!(b.replicas.len(), 2);
    let key = "/usr/bin/python3.11 <- <runtime> : python3 -m http.server N";
    let item = b
        .item(ItemKind::Process, key)
        .expect("process learned with normalised argv");
    assert_eq!((item.count, item.replicas.len()), (6, 2));
    assert_eq!(b.confidence(item, 2), Confidence::High);
    assert!(b.item(ItemKind::FileWrite, "/var/log/app/").is_some());
    assert!(b.item(ItemKind::User, "0").is_some());

    let mut out = Vec::new();
    // Inside the window: no lock yet.
    e.tick(t0 + 8 * S, &mut out);
    assert!(!e.get("compose:shop/web").unwrap().locked);
    e.tick(t0 + 11 * S, &mut out);
    let b = e.get("compose:shop/web").unwrap();
    assert!(
        b.locked && b.mode == Mode::Monitor,
        "locked after window and stable period"
    );

    // The same traffic raises nothing.
    e.observe(
        &exec(
            "a",
            t0 + 20 * S,
            "/usr/bin/python3.11",
            &["python3", "-m", "http.server", "9090"],
        ),
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    // A shell and a download tool do, naming the executable and the workload.
    e.observe(
        &exec(
            "a",
            t0 + 21 * S,
            "/usr/bin/bash",
            &["bash", "-c", "curl http://x"],
        ),
        &mut out,
    );
    e.observe(
        &exec("a", t0 + 21 * S, "/usr/bin/curl", &["curl", "http://x"]),
        &mut out,
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        out[1].message.contains("/usr/bin/curl"),
        "{}",
        out[1].message
    );
    assert!(
        out[1].message.contains("compose:shop/web"),
        "{}",
        out[1].message
    );
    assert!(
        out[1].message.contains("never seen during learning"),
        "{}",
        out[1].message
    );
    assert_eq!(out[1].output_fields["baseline.kind"], "process");
    // Repeats within the window are counted, not raised again.
    out.clear();
    e.observe(
        &exec("a", t0 + 22 * S, "/usr/bin/curl", &["curl", "http://x"]),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(e.stats.suppressed, 1);
}

#[test]
fn one_replica_only_and_not_in_image_are_never_normal() {
    let mut e = Engine::new(cfg());
    let t0 = 1_000 * S;
    learn_web(&mut e, t0);
    let mut out = Vec::new();
    // Replica b runs a tool once (and again) during learning; a dropped binary runs.
    for i in 0..3 {
        e.observe(
            &exec("b", t0 + 3 * S + i, "/usr/bin/nc", &["nc", "-l"]),
            &mut out,
        );
    }
    e.observe(
        &event(
            "a",
            t0 + 3 * S,
            "/tmp/x",
            &["/tmp/x"],
            true,
            Payload::Exec {
                filename: "/tmp/x".into(),
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
        ),
        &mut out,
    );
    assert!(e.lock_now("compose:shop/web", t0 + 4 * S, Mode::Monitor));
    let b = e.get("compose:shop/web").unwrap();
    let nc = b.items[&ItemKind::Process]
        .iter()
        .find(|(k, _)| k.starts_with("/usr/bin/nc"))
        .unwrap()
        .1;
    assert_eq!(b.confidence(nc, 2), Confidence::Low);
    assert!(!b.normal_executables(2).contains("/usr/bin/nc"));
    assert!(!b.normal_executables(2).contains("/tmp/x"));
    e.observe(
        &exec("a", t0 + 30 * S, "/usr/bin/nc", &["nc", "-l"]),
        &mut out,
    );
    e.observe(
        &event(
            "a",
            t0 + 31 * S,
            "/tmp/x",
            &["/tmp/x"],
            true,
            Payload::Exec {
                filename: "/tmp/x".into(),
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
        ),
        &mut out,
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        out[0].output_fields["baseline.reason"],
        Reason::OneReplica.as_str()
    );
    assert_eq!(
        out[1].output_fields["baseline.reason"],
        Reason::NotInImage.as_str()
    );
}

#[test]
fn protect_asks_for_exec_denial_of_everything_outside() {
    let mut e = Engine::new(BaselineConfig {
        locked_mode: Mode::Protect,
        ..cfg()
    });
    let t0 = 1_000 * S;
    learn_web(&mut e, t0);
    let mut out = Vec::new();
    e.tick(t0 + 20 * S, &mut out);
    let reqs = e.take_protect_requests();
    assert_eq!(reqs.len(), 2, "one per container: {reqs:?}");
    assert_eq!(reqs[0].allowed, ["/usr/bin/python3.11"]);
    assert!(e.take_protect_requests().is_empty());
}

fn generic_alert(ev: &Arc<Event>, priority: Priority) -> Alert {
    Alert {
        id: "x".into(),
        ts_ns: ev.ts_ns,
        first_ts_ns: ev.ts_ns,
        count: 1,
        rule: "Write below var log".into(),
        priority,
        mitre: vec![],
        tags: vec![],
        message: "m".into(),
        output_fields: BTreeMap::new(),
        source: "syscall".into(),
        event: (**ev).clone(),
        retro: false,
    }
}

#[test]
fn noise_control_downgrades_generic_alerts_inside_the_baseline_only() {
    let mut e = Engine::new(cfg());
    let t0 = 1_000 * S;
    learn_web(&mut e, t0);
    let write = event(
        "a",
        t0 + 30 * S,
        "/usr/bin/python3.11",
        &[],
        false,
        Payload::FileOpen {
            path: "/var/log/app/9.log".into(),
            path_raw: None,
            flags: 0o101,
            mode: 0,
            access: OpenAccess::from_flags(0o101),
            ret: 3,
            repeats: 0,
        },
    );
    let mut a = generic_alert(&write, Priority::Warning);
    assert!(!e.downgrade(&mut a), "not before the lock");
    e.lock_now("compose:shop/web", t0 + 5 * S, Mode::Monitor);
    assert!(e.downgrade(&mut a));
    assert_eq!(a.priority, Priority::Informational);
    assert!(a.output_fields["baseline.downgraded"]
        .as_str()
        .unwrap()
        .contains("compose:shop/web"));
    assert_eq!(a.output_fields["baseline.original_priority"], "Warning");
    let mut crit = generic_alert(&write, Priority::Critical);
    assert!(!e.downgrade(&mut crit), "critical rules never");
    let outside = event(
        "a",
        t0 + 30 * S,
        "/usr/bin/python3.11",
        &[],
        false,
        Payload::FileOpen {
            path: "/etc/cron.d/x".into(),
            path_raw: None,
            flags: 0o101,
            mode: 0,
            access: OpenAccess::from_flags(0o101),
            ret: 3,
            repeats: 0,
        },
    );
    let mut b = generic_alert(&outside, Priority::Warning);
    assert!(!e.downgrade(&mut b), "outside the baseline stays");
}

#[test]
fn a_noisy_minute_after_lock_is_an_explained_anomaly() {
    let mut e = Engine::new(cfg());
    let t0 = 6_000 * S;
    let mut out = Vec::new();
    // Ten quiet minutes of learning: two execs a minute.
    for m in 0..10 {
        for k in 0..2 {
            e.observe(
                &exec(
                    "a",
                    t0 + m * 60 * S + k,
                    "/usr/bin/python3.11",
                    &["python3", "-c", "ping"],
                ),
                &mut out,
            );
        }
    }
    e.tick(t0 + 10 * 60 * S, &mut out);
    assert!(out.is_empty(), "{out:?}");
    e.lock_now("compose:shop/web", t0 + 10 * 60 * S, Mode::Monitor);
    // A burst: forty known execs in one minute.
    for k in 0..40 {
        e.observe(
            &exec(
                "a",
                t0 + 11 * 60 * S + k,
                "/usr/bin/python3.11",
                &["python3", "-c", "ping"],
            ),
            &mut out,
        );
    }
    e.tick(t0 + 12 * 60 * S, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].rule, ANOMALY_RULE);
    assert!(
        out[0].message.contains("exec_per_min=40"),
        "{}",
        out[0].message
    );
}
