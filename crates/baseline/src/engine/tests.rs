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

/// Generated traffic for the differential test: three replicas, known and new commands
/// with volatile arguments, writes, connects to known and new places, a binary from the
/// upper layer, a tool only one replica ran.
fn mixed_events(seed: u64, n: usize, t0: u64) -> Vec<Arc<Event>> {
    let mut r = seed;
    let mut next = move || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r
    };
    let cmds: [(&str, &[&str]); 5] = [
        ("/usr/bin/python3.11", &["python3", "-m", "http.server"]),
        (
            "/usr/bin/curl",
            &["curl", "-fsS", "http://127.0.0.1/health"],
        ),
        ("/usr/bin/gzip", &["gzip", "/var/log/app/rotated"]),
        ("/usr/bin/nc", &["nc", "-e", "/bin/sh"]),
        ("/tmp/dropper", &["dropper"]),
    ];
    let mut out = Vec::new();
    for i in 0..n {
        let c = ["a", "b", "c"][(next() % 3) as usize];
        let ts = t0 + i as u64 * (S / 4);
        let mut which = (next() % 100) as usize;
        // nc is run by replica a only: one replica's item, low confidence.
        if (90..=97).contains(&which) && c != "a" {
            which = 0;
        }
        // Mostly the three normal commands; now and then nc, rarely the dropper.
        let k = match which {
            0..=89 => which % 3,
            90..=97 => 3,
            _ => 4,
        };
        let (exe, base) = cmds[k];
        let mut argv: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        argv.push((next() % 10_000).to_string());
        let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
        out.push(event(
            c,
            ts,
            exe,
            &argv_ref,
            k == 4,
            Payload::Exec {
                filename: exe.into(),
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
        ));
        let dir = ["/var/log/app", "/var/lib/app/data", "/etc/cron.d"][(next() % 3) as usize];
        out.push(event(
            c,
            ts + 1,
            exe,
            &argv_ref,
            false,
            Payload::FileOpen {
                path: format!("{dir}/f{}", next() % 100),
                path_raw: None,
                flags: 0o101,
                mode: 0o644,
                access: OpenAccess::from_flags(0o101),
                ret: 3,
                repeats: 0,
            },
        ));
        let ip = [10, 0, 0, (next() % 3) as u8];
        out.push(event(
            c,
            ts + 2,
            exe,
            &argv_ref,
            false,
            Payload::NetConnect {
                proto: rampart_event::L4Proto::Tcp,
                local: None,
                remote: rampart_event::SockAddr::Inet {
                    ip: std::net::IpAddr::from(ip),
                    port: [5432, 8080][(next() % 2) as usize],
                },
                ret: 0,
            },
        ));
    }
    out
}

#[test]
fn the_engine_scores_every_item_as_the_first_written_path_does() {
    let mut e = Engine::new(BaselineConfig {
        auto_lock: false,
        ..cfg()
    });
    let t0 = 1_000 * S;
    let mut out = Vec::new();
    // Learning sees only the normal commands (the first 90% of the mix is decided per
    // event, so some nc and dropper runs are learned too, by one replica or from the
    // upper layer: both must stay outside).
    for ev in mixed_events(7, 600, t0) {
        e.observe(&ev, &mut out);
    }
    assert!(e.lock_now("compose:shop/web", t0 + 200 * S, Mode::Monitor));
    let mut reference = reference::Scorer::new(e.baselines().to_vec(), cfg().min_observations);
    let before = e.stats.clone();
    out.clear();
    for ev in mixed_events(11, 3000, t0 + 300 * S) {
        e.observe(&ev, &mut out);
        reference.observe(&ev);
    }
    let outside =
        (e.stats.deviations - before.deviations) + (e.stats.suppressed - before.suppressed);
    assert!(
        reference.outside > 0,
        "the mix has items outside the baseline"
    );
    assert_eq!(outside, reference.outside, "same items outside");
    // Every item counted in place by one is counted by the other (the engine also
    // counts the deviations it raised, which the reference does not raise).
    // Repeats held in the containers' memos reach their items at the flush.
    e.flush_counts();
    let items = |bs: &[Baseline]| bs.iter().map(|b| b.items.clone()).collect::<Vec<_>>();
    assert_eq!(items(e.baselines()), items(reference.baselines()));
}

#[test]
fn repeats_counted_in_a_memo_reach_the_item_and_a_forbid_voids_the_memo() {
    let mut e = Engine::new(BaselineConfig {
        auto_lock: false,
        ..cfg()
    });
    let t0 = 1_000 * S;
    learn_web(&mut e, t0);
    assert!(e.lock_now("compose:shop/web", t0 + 10 * S, Mode::Monitor));
    let write = |ts: u64, n: u32| {
        event(
            "a",
            ts,
            "/usr/bin/python3.11",
            &[],
            false,
            Payload::FileOpen {
                path: format!("/var/log/app/{n}.log"),
                path_raw: None,
                flags: 0o101,
                mode: 0o644,
                access: OpenAccess::from_flags(0o101),
                ret: 3,
                repeats: 0,
            },
        )
    };
    let count = |e: &Engine| {
        e.get("compose:shop/web")
            .and_then(|b| b.item(ItemKind::FileWrite, "/var/log/app/"))
            .map(|i| i.count)
    };
    let before = count(&e).unwrap();
    let mut out = Vec::new();
    for n in 0..5 {
        e.observe(&write(t0 + (20 + u64::from(n)) * S, n), &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    e.flush_counts();
    assert_eq!(count(&e), Some(before + 5), "every repeat counted");

    // An operator forbids the prefix: the memo of it is void, the next write alerts.
    let mut b = e.get("compose:shop/web").unwrap().clone();
    if let Some(item) = b
        .items
        .get_mut(&ItemKind::FileWrite)
        .and_then(|m| m.get_mut("/var/log/app/"))
    {
        item.origin = Origin::Forbidden;
    }
    e.install(b);
    e.observe(&write(t0 + 30 * S, 9), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        out[0].output_fields["baseline.reason"],
        "forbidden by an operator"
    );
}
