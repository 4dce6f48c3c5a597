//! Every action against real containers (Docker, the kernel), and the responder
//! driving them from alerts through a policy. Containers are named
//! `rampart-respond-*` and removed on drop.

use std::sync::Arc;
use std::time::Duration;

use rampart_event::{Alert, Container, Event, Payload, Priority, Process, Workload};
use rampart_respond::freeze::{is_frozen, Freeze, FreezeMethod};
use rampart_respond::kill::Kill;
use rampart_respond::lifecycle::Lifecycle;
use rampart_respond::policy::{ActionSpec, Policy};
use rampart_respond::target::{ContainerCgroups, ProcessRef};
use rampart_respond::{
    Action, ActionKind, AuditResult, Mode, PolicyStore, RespondError, Responder, Target, Toolbox,
};
use rampart_testbed::{TestContainer, TEST_IMAGE};

fn target(c: &TestContainer, pid: Option<u32>) -> Target {
    Target {
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        image: TEST_IMAGE.into(),
        process: pid.map(|pid| ProcessRef {
            pid,
            exec_id: proc_exec_id(pid),
            exe: String::new(),
        }),
        ..Target::default()
    }
}

/// The exec id the sensor gives a live process (rampart_event::exec_id from its /proc
/// start time), so the kill path's pid-reuse check runs on real ids.
fn proc_exec_id(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks: u64 = stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    Some(rampart_event::exec_id(
        "boot",
        pid,
        ticks * rampart_event::EXEC_ID_NS_PER_TICK,
    ))
}

fn cgroups(c: &TestContainer) -> ContainerCgroups {
    ContainerCgroups::find(&c.id, None)
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn ppid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    rest.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Waits for `n` processes named `name` in the container.
fn wait_for_procs(c: &TestContainer, name: &str, n: usize) -> Vec<u32> {
    for _ in 0..100 {
        let pids: Vec<u32> = cgroups(c)
            .pids()
            .into_iter()
            .filter(|p| comm(*p) == name)
            .collect();
        if pids.len() >= n {
            return pids;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{n} {name} processes did not appear");
}

/// The kernel's response state (the response object's pinned maps and links: kernel
/// kills, deny lists, quarantines) is host-wide, and a test that loads it can replace
/// what another test put there: the tests of this file take turns.
fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn kill_takes_a_whole_tree_and_refuses_other_processes() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let c = TestContainer::start("rampart-respond-kill", &[], &[]);
    c.exec("(sh -c 'sleep 1001 & sleep 1002 & wait' &) ; true");
    let sleeps = wait_for_procs(&c, "sleep", 3);
    let parent = sleeps
        .iter()
        .map(|p| ppid(*p))
        .find(|pp| comm(*pp) == "sh")
        .expect("the sleeps' shell");
    let children: Vec<u32> = sleeps
        .iter()
        .copied()
        .filter(|p| ppid(*p) == parent)
        .collect();
    assert_eq!(children.len(), 2);

    // Not the host's processes, not a process outside the container.
    let me = std::process::id();
    let err = Kill { tree: false }
        .apply(&target(&c, Some(me)), Mode::Enforce)
        .unwrap_err();
    assert!(matches!(err, RespondError::Refused(_)), "{err}");
    let host = Target {
        container_id: String::new(),
        ..target(&c, Some(me))
    };
    assert!(matches!(
        Kill { tree: false }.apply(&host, Mode::Enforce),
        Err(RespondError::Refused(_))
    ));
    // A reused pid (start time differs) is refused.
    let mut stale = target(&c, Some(parent));
    if let Some(p) = stale.process.as_mut() {
        p.exec_id = Some("boot:1:5".into());
    }
    assert!(matches!(
        Kill { tree: true }.apply(&stale, Mode::Enforce),
        Err(RespondError::Refused(_))
    ));

    let dry = Kill { tree: true }
        .apply(&target(&c, Some(parent)), Mode::DryRun)
        .expect("dry run");
    assert!(!dry.performed);
    assert_eq!(dry.pids.len(), 3, "{dry:?}");
    assert!(std::path::Path::new(&format!("/proc/{parent}")).exists());

    let done = Kill { tree: true }
        .apply(&target(&c, Some(parent)), Mode::Enforce)
        .expect("kill");
    assert!(done.performed);
    let mut pids = done.pids.clone();
    pids.sort_unstable();
    let mut want = vec![parent, children[0], children[1]];
    want.sort_unstable();
    assert_eq!(pids, want);
    for p in want {
        // Dead (zombies reaped by the container's init, or gone).
        let state = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z"),
            "{p} alive: {state}"
        );
    }
    // The container itself still runs (only the tree was hit).
    assert!(c.exec("echo alive").contains("alive"));
}

#[test]
fn freeze_and_thaw_by_each_freezer() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let c = TestContainer::start("rampart-respond-freeze", &[], &[]);
    let cg = cgroups(&c);
    let toolbox = Toolbox::new();
    for method in [
        FreezeMethod::Auto,
        FreezeMethod::CgroupV2,
        FreezeMethod::CgroupV1,
        FreezeMethod::DockerPause,
    ] {
        let f = Freeze {
            method,
            toolbox: toolbox.clone(),
        };
        let t = target(&c, None);
        let dry = f.apply(&t, Mode::DryRun).expect("dry run");
        assert!(!is_frozen(&cg), "{method:?}: dry run froze");
        let o = f.apply(&t, Mode::Enforce).expect("freeze");
        assert!(o.performed);
        assert_eq!(dry.method, o.method);
        eprintln!("{method:?}: {}", o.detail);
        assert!(is_frozen(&cg), "{method:?}: not frozen");
        let u = f.undo(&t, Mode::Enforce).expect("thaw");
        assert!(!is_frozen(&cg), "{method:?}: still frozen ({})", u.detail);
        assert!(c.exec("echo thawed").contains("thawed"), "{method:?}");
    }
}

#[test]
fn stop_and_restart_through_docker() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let c = TestContainer::start("rampart-respond-lifecycle", &[], &[]);
    let toolbox = Toolbox::new();
    let started = || rampart_testbed::docker(&["inspect", "-f", "{{.State.StartedAt}}", &c.name]);
    let before = started();
    let restart = Lifecycle {
        restart: true,
        grace_s: 0,
        toolbox: toolbox.clone(),
    };
    restart
        .apply(&target(&c, None), Mode::Enforce)
        .expect("restart");
    assert_ne!(started(), before, "restart did not restart");
    let stop = Lifecycle {
        restart: false,
        grace_s: 0,
        toolbox,
    };
    let dry = stop.apply(&target(&c, None), Mode::DryRun).expect("dry");
    assert!(dry.detail.contains("would stop"), "{}", dry.detail);
    stop.apply(&target(&c, None), Mode::Enforce).expect("stop");
    let running = rampart_testbed::docker(&["inspect", "-f", "{{.State.Running}}", &c.name]);
    assert_eq!(running, "false");
}

fn alert_for(c: &TestContainer, rule: &str, pid: u32, labels: &[(&str, &str)]) -> Alert {
    let event = Event {
        schema: 1,
        ts_ns: rampart_respond::wall_ns(),
        host: "test".into(),
        seq: 1,
        process: Some(Arc::new(Process {
            pid,
            tid: pid,
            exe: "/bin/sleep".into(),
            comm: "sleep".into(),
            ..Process::default()
        })),
        container: Arc::new(Workload::Container(Container {
            id: c.id.clone(),
            name: c.name.clone(),
            image: TEST_IMAGE.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Container::default()
        })),
        compat_syscall: false,
        payload: Payload::Exec {
            filename: "/bin/sleep".into(),
            interpreter: None,
            from_memfd: false,
            from_deleted: false,
        },
    };
    Alert {
        id: format!("alert-{pid}"),
        ts_ns: event.ts_ns,
        first_ts_ns: event.ts_ns,
        count: 1,
        rule: rule.into(),
        priority: Priority::Critical,
        mitre: vec!["T1059".into()],
        tags: vec!["shell".into()],
        message: String::new(),
        output_fields: Default::default(),
        source: "syscall".into(),
        retro: false,
        event,
    }
}

const POLICY: &str = r#"
scope:
  names: ["rampart-respond-*"]
stateful_label: rampart.io/stateful
rate_limit:
  per_container: {count: 2, seconds: 60}
responses:
  - name: kill-shells
    when: {rules: ["Shell in*"], min_priority: error}
    action: kill
    mode: enforce
  - name: simulate-stop
    when: {rules: ["Miner*"]}
    action: stop
    mode: dry-run
  - name: log-only
    when: {tags: [shell]}
    action: freeze
"#;

#[test]
fn responder_acts_as_the_policy_says_and_audits_it() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let c = TestContainer::start("rampart-respond-policy", &[], &[]);
    let policy = Policy::parse(POLICY, std::path::Path::new("test.yaml")).expect("policy");
    let responder = Responder::new(Arc::new(PolicyStore::new(policy)), Toolbox::new());

    c.exec("(sleep 1003 &) ; true");
    let pid = wait_for_procs(&c, "sleep", 2)
        .into_iter()
        .find(|p| ppid(*p) != 0 && comm(ppid(*p)) != "sleep" && ppid(*p) != 0)
        .expect("sleep");
    let pid = cgroups(&c)
        .pids()
        .into_iter()
        .filter(|p| comm(*p) == "sleep")
        .max()
        .unwrap_or(pid);
    let alert = alert_for(&c, "Shell in container", pid, &[]);
    let records = responder.on_alert(&alert);
    // kill (enforce) and freeze (alert mode: no record).
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.result, AuditResult::Done, "{r:?}");
    assert_eq!(r.rule.as_deref(), Some("Shell in container"));
    assert_eq!(r.alert_id.as_deref(), Some(alert.id.as_str()));
    assert!(r.latency_ns().is_some());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z")
    );
    let audit = r.to_alert(alert.event.clone());
    assert_eq!(audit.source, "response");
    assert!(audit.output_fields.contains_key("response.actor"));
    // The audit alert itself is never responded to.
    assert!(responder.on_alert(&audit).is_empty());

    // Dry run: simulated, container untouched; stateful label turns stop into freeze.
    let miner = alert_for(&c, "Miner detected", 1, &[]);
    let rec = responder.on_alert(&miner);
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].result, AuditResult::Simulated);
    assert!(rec[0].detail.contains("would stop"), "{}", rec[0].detail);
    let stateful = alert_for(&c, "Miner detected", 1, &[("rampart.io/stateful", "true")]);
    let rec = responder.on_alert(&stateful);
    // Third action on this container within the window: rate limited.
    assert_eq!(rec[0].result, AuditResult::RateLimited, "{rec:?}");

    // Out of scope: nothing.
    let mut other = alert_for(&c, "Shell in container", pid, &[]);
    if let Workload::Container(ct) = Arc::make_mut(&mut other.event.container) {
        ct.name = "someone-elses".into();
    }
    assert!(responder.on_alert(&other).is_empty());
}

#[test]
fn stateful_workloads_are_frozen_not_stopped() {
    let _turn = take_turn();
    let policy = Policy::parse(POLICY, std::path::Path::new("test.yaml")).expect("policy");
    let t = Target {
        container_id: "a".repeat(64),
        container_name: "rampart-respond-db".into(),
        labels: [("rampart.io/stateful".to_string(), "true".to_string())].into(),
        ..Target::default()
    };
    let mut alert_event_target = t.clone();
    alert_event_target.process = None;
    let event = Event {
        schema: 1,
        ts_ns: 1,
        host: "h".into(),
        seq: 1,
        process: None,
        container: Arc::new(Workload::Container(Container {
            id: t.container_id.clone(),
            name: t.container_name.clone(),
            labels: t.labels.clone(),
            ..Container::default()
        })),
        compat_syscall: false,
        payload: Payload::Exec {
            filename: "/x".into(),
            interpreter: None,
            from_memfd: false,
            from_deleted: false,
        },
    };
    let alert = Alert {
        id: "x".into(),
        ts_ns: 1,
        first_ts_ns: 1,
        count: 1,
        rule: "Miner detected".into(),
        priority: Priority::Warning,
        mitre: vec![],
        tags: vec![],
        message: String::new(),
        output_fields: Default::default(),
        source: "syscall".into(),
        retro: false,
        event,
    };
    let d = policy.decide(&alert, &alert_event_target);
    assert_eq!(d.len(), 1);
    assert!(matches!(d[0].action, ActionSpec::Freeze { .. }));
    assert!(d[0]
        .substituted
        .as_deref()
        .unwrap_or("")
        .contains("stateful"));
}

/// `docker exec NAME ARGS…` without a shell around it: (exit code, stdout).
fn exec_status(c: &TestContainer, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new("docker")
        .arg("exec")
        .arg(&c.name)
        .args(args)
        .output()
        .expect("docker exec");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn quarantine_and_blocked_destinations_in_the_kernel() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let server = TestContainer::start(
        "rampart-respond-net-server",
        &[],
        &["httpd", "-f", "-p", "8080", "-h", "/etc"],
    );
    let client = TestContainer::start("rampart-respond-net-client", &[], &[]);
    let ip = rampart_testbed::docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.IPAddress}}",
        &server.name,
    ]);
    // busybox nc, not wget (the test image's static wget crashes resolving names).
    let get = |addr: &str| format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr}");
    let fetch = || {
        let t = std::time::Instant::now();
        let out = client.exec(&get(&format!("{ip} 8080")));
        (out.contains("200 OK"), t.elapsed())
    };
    let mut ok = false;
    for _ in 0..20 {
        ok = fetch().0;
        if ok {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ok, "the client cannot reach the server before any response");

    let toolbox = Toolbox::new();
    let t = target(&client, None);
    let block = ActionSpec::Block {
        deny: vec![rampart_respond::net::Destination {
            cidr: ip.parse().expect("cidr"),
            ports: vec![8080],
        }],
    }
    .build(&toolbox);
    let o = block.apply(&t, Mode::Enforce).expect("block");
    assert_eq!(o.method, "bpf-cgroup");
    let (reached, took) = fetch();
    assert!(!reached, "blocked destination reached");
    // Refused at connect(), not left to time out.
    assert!(took < Duration::from_secs(2), "took {took:?}");

    let quarantine = ActionSpec::Quarantine {
        allow: vec![],
        allow_dns: true,
        allow_loopback: true,
    }
    .build(&toolbox);
    let o = quarantine.apply(&t, Mode::Enforce).expect("quarantine");
    eprintln!("{}", o.detail);
    assert!(o.detail.contains("quarantine"), "{}", o.detail);
    assert!(
        o.detail.contains("deny"),
        "block kept under quarantine: {}",
        o.detail
    );
    block.undo(&t, Mode::Enforce).expect("lift block");
    assert!(!fetch().0, "quarantined client reached the server");
    // Loopback still works inside the quarantined container.
    client.exec("httpd -p 127.0.0.1:8081 -h /etc");
    assert!(
        client.exec(&get("127.0.0.1 8081")).contains("200 OK"),
        "loopback in quarantine"
    );

    quarantine.undo(&t, Mode::Enforce).expect("release");
    assert!(fetch().0, "released client cannot reach the server");
    let guard = toolbox.guard().expect("guard");
    let cgid = rampart_bpf::response::cgroup_id(cgroups(&client).v2.as_deref().unwrap()).unwrap();
    assert!(guard.network_policy(cgid).unwrap().is_none());
}

#[test]
fn denied_execs_never_write_their_marker() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let c = TestContainer::start("rampart-respond-exec", &[], &[]);
    // Named busybox so that `busybox touch` works from either copy.
    c.exec(
        "mkdir /tmp/evil /tmp/other && cp /bin/busybox /tmp/evil/ && cp /bin/busybox /tmp/other/",
    );
    let toolbox = Toolbox::new();
    let t = target(&c, None);
    let by_path = ActionSpec::DenyExec {
        deny_paths: vec!["/tmp/evil/busybox".into()],
        not_in_image: false,
    }
    .build(&toolbox);
    let o = by_path.apply(&t, Mode::Enforce).expect("deny exec");
    eprintln!("exec denial here: {} ({})", o.method, o.detail);
    assert!(o.method == "bpf-signal" || o.method == "bpf-lsm");
    let (code, _) = exec_status(&c, &["/tmp/evil/busybox", "touch", "/tmp/m1"]);
    assert_eq!(code, 137, "not killed");
    let (code, _) = exec_status(&c, &["/tmp/other/busybox", "touch", "/tmp/m2"]);
    assert_eq!(code, 0, "a path not denied");
    assert!(c.exec("ls /tmp").contains("m2"));
    assert!(
        !c.exec("ls /tmp").contains("m1"),
        "denied exec wrote its marker"
    );
    // A second denial on the same container adds to the first.
    let second = ActionSpec::DenyExec {
        deny_paths: vec!["/tmp/other/busybox".into()],
        not_in_image: false,
    }
    .build(&toolbox);
    second.apply(&t, Mode::Enforce).expect("second deny exec");
    let (code, _) = exec_status(&c, &["/tmp/other/busybox", "touch", "/tmp/m6"]);
    assert_eq!(code, 137, "the second list is not in force");
    let (code, _) = exec_status(&c, &["/tmp/evil/busybox", "touch", "/tmp/m7"]);
    assert_eq!(code, 137, "the first list was replaced, not merged");

    // Not in the image: anything written into the container.
    let upper = ActionSpec::DenyExec {
        deny_paths: vec![],
        not_in_image: true,
    }
    .build(&toolbox);
    upper.apply(&t, Mode::Enforce).expect("deny upper");
    let (code, _) = exec_status(&c, &["/tmp/other/busybox", "touch", "/tmp/m3"]);
    assert_eq!(code, 137, "not killed");
    let (code, _) = exec_status(&c, &["/bin/touch", "/tmp/m4"]);
    assert_eq!(code, 0, "an image binary is denied");
    let ls = c.exec("ls /tmp");
    assert!(!ls.contains("m3") && ls.contains("m4"), "{ls}");

    upper.undo(&t, Mode::Enforce).expect("release");
    let (code, _) = exec_status(&c, &["/tmp/evil/busybox", "touch", "/tmp/m5"]);
    assert_eq!(code, 0, "released");
}

#[test]
fn kernel_kills_stop_the_process_before_its_syscall_returns() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    use rampart_bpf::response::{KernelKills, KillConnect};
    let c = TestContainer::start("resp-kernel-kill", &[], &[]);
    c.exec("mkdir /tmp/kx /tmp/ok && cp /bin/busybox /tmp/kx/ && cp /bin/busybox /tmp/ok/");
    // Listeners for the connects: one port the rule names, one it does not.
    c.exec("(nc -ll -p 9999 -e true &) ; (nc -ll -p 9998 -e true &)");
    std::thread::sleep(Duration::from_millis(300));
    let toolbox = Toolbox::new();
    toolbox
        .guard()
        .expect("guard")
        .set_kernel_kills(&KernelKills {
            exec_paths: vec![("/tmp/kx/busybox".into(), 7)],
            connects: vec![KillConnect {
                addr: None,
                port: 9999,
                rule: 8,
            }],
            ..KernelKills::default()
        })
        .expect("kernel kills");
    // Exec of the path: killed before the new image runs (no marker, exit 137).
    let (code, _) = exec_status(&c, &["/tmp/kx/busybox", "touch", "/tmp/m1"]);
    assert_eq!(code, 137, "the exec was not killed");
    let (code, _) = exec_status(&c, &["/tmp/ok/busybox", "touch", "/tmp/m2"]);
    assert_eq!(code, 0, "another path was killed");
    // Connect: nc runs its -e program only after connect() returns; it never does.
    let (code, _) = exec_status(&c, &["nc", "127.0.0.1", "9999", "-e", "touch", "/tmp/m3"]);
    assert_eq!(code, 137, "the connect was not killed");
    let (code, _) = exec_status(&c, &["nc", "127.0.0.1", "9998", "-e", "touch", "/tmp/m4"]);
    assert_eq!(code, 0, "a connect to another port was killed");
    std::thread::sleep(Duration::from_millis(200));
    let ls = c.exec("ls /tmp");
    assert!(
        !ls.contains("m1") && !ls.contains("m3"),
        "a killed process went on: {ls}"
    );
    assert!(ls.contains("m2") && ls.contains("m4"), "{ls}");
    // The host's own processes are never killed: this test connects to that port too.
    let _ = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:9999".parse().unwrap(),
        Duration::from_millis(200),
    );
    let mut guard = toolbox.guard().expect("guard");
    assert!(guard.kernel_kill_count(7) >= 1);
    assert!(guard.kernel_kill_count(8) >= 1);
    guard.release_kernel_kills().expect("release");
    drop(guard);
    let (code, _) = exec_status(&c, &["/tmp/kx/busybox", "touch", "/tmp/m5"]);
    assert_eq!(code, 0, "released");
}

#[test]
fn kernel_kills_on_open_of_a_path_before_the_open_returns() {
    let _turn = take_turn();
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    use rampart_bpf::response::{KernelKills, KillOpen, OpenMatch};
    let c = TestContainer::start("resp-kernel-kill-open", &[], &[]);
    c.exec(
        "mkdir -p /tmp/secret /tmp/dir/sub /tmp/wo && \
         touch /tmp/secret/key /tmp/dir/f /tmp/dir/sub/f /tmp/exact /tmp/exactly /tmp/wo/f && \
         ln -s /tmp/secret/key /tmp/link",
    );
    let open = |path: &str, matches, rule| KillOpen {
        path: path.into(),
        matches,
        syscalls: vec![],
        read: false,
        write: false,
        regular_only: false,
        rule,
    };
    let toolbox = Toolbox::new();
    toolbox
        .guard()
        .expect("guard")
        .set_kernel_kills(&KernelKills {
            opens: vec![
                open("/tmp/secret", OpenMatch::Prefix, 9),
                open("/tmp/dir", OpenMatch::Directory, 10),
                open("/tmp/exact", OpenMatch::Exact, 11),
                KillOpen {
                    write: true,
                    regular_only: true,
                    ..open("/tmp/wo/", OpenMatch::Prefix, 12)
                },
                // Longer than rule 9's entry and not met by a read: the read still
                // dies by rule 9 (the kernel retries with the shorter entries).
                KillOpen {
                    write: true,
                    ..open("/tmp/secret/key", OpenMatch::Exact, 13)
                },
            ],
            ..KernelKills::default()
        })
        .expect("kernel kills");
    // The shell opens the file itself (a redirection), then writes its marker: a
    // killed open never returns, so the marker is never written.
    let opens = |n: u32, open: &str| {
        let (code, _) = exec_status(&c, &["sh", "-c", &format!("{open}; touch /tmp/m{n}")]);
        code
    };
    for (n, open, killed) in [
        (1, "exec 3< /tmp/secret/key", true),
        (2, "cd /tmp/secret && exec 3< key", true),
        (3, "exec 3< /tmp/link", true),
        (4, "exec 3< /tmp/dir/f", true),
        (5, "exec 3< /tmp/dir/sub/f", false),
        (6, "exec 3< /tmp/exact", true),
        (7, "exec 3< /tmp/exactly", false),
        (8, "exec 3< /tmp/wo/f", false),
        (9, "exec 3>> /tmp/wo/f", true),
        (10, "exec 3< /tmp/secret", true),
        // fd.name startswith compares bytes, as the rule engine does.
        (11, "exec 3> /tmp/secretary", true),
    ] {
        let code = opens(n, open);
        if killed {
            assert_eq!(code, 137, "{open}: not killed");
        } else {
            assert_eq!(code, 0, "{open}: killed");
        }
    }
    let ls = c.exec("ls /tmp");
    for (n, written) in [
        (1, false),
        (2, false),
        (3, false),
        (4, false),
        (5, true),
        (6, false),
        (7, true),
        (8, true),
        (9, false),
        (10, false),
        (11, false),
    ] {
        assert_eq!(
            ls.split_whitespace().any(|f| f == format!("m{n}")),
            written,
            "marker m{n}: {ls}"
        );
    }
    // The alert of a rule the kernel enforces is audited as that kill: done when
    // the process is gone; failed when it still runs (a syscall the kernel's hook
    // does not see), and then killed from user space.
    let responder = Responder::new(Arc::new(PolicyStore::empty()), toolbox.clone());
    responder.set_kernel_kills(["Secret opened".to_string()]);
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let audits = responder.on_alert(&alert_for(&c, "Secret opened", gone.id(), &[]));
    assert_eq!(audits.len(), 1, "{audits:?}");
    assert_eq!(
        (audits[0].result, audits[0].method.as_str()),
        (AuditResult::Done, "kernel")
    );
    let live = wait_for_procs(&c, "sleep", 1)[0];
    assert!(responder
        .on_alert(&alert_for(&c, "Another rule", live, &[]))
        .is_empty());

    let mut guard = toolbox.guard().expect("guard");
    assert!(guard.kernel_kill_count(9) >= 5);
    assert!(guard.kernel_kill_count(10) >= 1);
    assert!(guard.kernel_kill_count(12) >= 1);
    guard.release_kernel_kills().expect("release");
    drop(guard);
    assert_eq!(opens(12, "exec 3< /tmp/secret/key"), 0, "released");
    let audits = responder.on_alert(&alert_for(&c, "Secret opened", live, &[]));
    assert_eq!(audits.len(), 2, "{audits:?}");
    assert_eq!(
        (audits[0].result, audits[0].method.as_str()),
        (AuditResult::Failed, "kernel"),
        "{audits:?}"
    );
    assert_eq!(
        (audits[1].action, audits[1].result),
        (ActionKind::Kill, AuditResult::Done),
        "{audits:?}"
    );
    // SIGKILL is delivered at once but acted on when the process next runs: on a
    // loaded host that can take a moment.
    let gone = || {
        !std::path::Path::new(&format!("/proc/{live}")).exists()
            || std::fs::read_to_string(format!("/proc/{live}/stat"))
                .is_ok_and(|st| st.contains(") Z "))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gone() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone(), "the process the kernel missed still runs");
}
