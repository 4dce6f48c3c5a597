//! Baselines end to end with the real sensor, the shipped rules and real containers of
//! rampart-test/debian:12 (scripts/build-debian-image): a web server serving a client
//! and its health checks is learned and locked; a shell and a download tool run by
//! `docker exec` then alert, naming the executable and the workload, while the same
//! traffic raises nothing; in protect mode a new executable never runs; a tool one
//! replica of two ran during learning does not become normal; and the risk ranking puts
//! a container with SYS_ADMIN and the Docker socket that raised an alert above an idle
//! one, and says why. Containers are named `base-*` and removed on drop.
//!
//! One test at a time: the sensor and the response guard's pinned maps are host-wide.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_agent::stages::{AlertLog, BaselineStage, DetectionStage};
use rampart_agent::{Controls, PipelineBuilder};
use rampart_baseline::risk::{self, Privileges, RiskInput};
use rampart_baseline::{BaselineConfig, BaselineStore, Mode, SqliteBaselines};
use rampart_event::Alert;

const IMAGE: &str = "rampart-test/debian:12";
static SERIAL: Mutex<()> = Mutex::new(());

/// Containers and a network removed on drop.
struct Cleanup(Vec<String>, Option<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.0 {
            rampart_testbed::remove_container(c);
        }
        if let Some(n) = &self.1 {
            let _ = Command::new("docker").args(["network", "rm", n]).output();
        }
    }
}

/// `docker exec NAME ARGS…`: (exit code, stdout).
fn exec(name: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new("docker")
        .arg("exec")
        .arg(name)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn health_check(name: &str) {
    let (code, _) = exec(
        name,
        &[
            "python3",
            "-c",
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/').read()",
        ],
    );
    assert_eq!(code, 0, "health check of {name} failed");
}

fn run_compose(name: &str, project: &str, service: &str, extra: &[&str], cmd: &[&str]) {
    rampart_testbed::remove_container(name);
    let p = format!("com.docker.compose.project={project}");
    let s = format!("com.docker.compose.service={service}");
    let mut args = vec!["run", "-d", "--name", name, "--label", &p, "--label", &s];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.extend_from_slice(cmd);
    rampart_testbed::docker(&args);
}

fn config(db: &std::path::Path) -> BaselineConfig {
    BaselineConfig {
        enabled: true,
        db: db.to_path_buf(),
        window_secs: 8,
        stable_secs: 4,
        min_observations: 2,
        save_secs: 1,
        poll_secs: 1,
        ..BaselineConfig::default()
    }
}

fn rules_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")
}

struct Node {
    stop: Arc<std::sync::atomic::AtomicBool>,
    runner: Option<std::thread::JoinHandle<rampart_agent::PipelineStats>>,
    alerts: AlertLog,
}

impl Node {
    fn start(cfg: BaselineConfig, noise: bool) -> Self {
        let sensor = rampart_sensor::start(rampart_sensor::SensorConfig {
            bpf_object: rampart_testbed::bpf_object(),
            ..rampart_sensor::SensorConfig::default()
        })
        .unwrap();
        let (engine, _) = rampart_detect::RuleEngine::load(&[rules_dir()]).unwrap();
        let (stage, handle) = BaselineStage::open(cfg).unwrap();
        let mut detection = DetectionStage::new(engine);
        if noise {
            detection = detection.with_adjust(Box::new(move |a| {
                handle.downgrade(a);
            }));
        }
        let alerts = AlertLog::new();
        let pipeline = PipelineBuilder::new()
            .stage(detection)
            .stage(stage)
            .stage(alerts.stage())
            .start()
            .unwrap();
        let controls = Controls {
            deadline: Some(Instant::now() + Duration::from_secs(240)),
            ..Controls::default()
        };
        let stop = controls.stop.clone();
        let runner = std::thread::spawn(move || {
            let mut sensor = sensor;
            pipeline.run(&mut sensor, &controls)
        });
        Self {
            stop,
            runner: Some(runner),
            alerts,
        }
    }

    fn alerts_of(&self, workload: &str) -> Vec<Arc<Alert>> {
        self.alerts
            .alerts()
            .into_iter()
            .filter(|a| {
                a.event
                    .container
                    .container()
                    .is_some_and(|c| rampart_baseline::workload_of(c) == workload)
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(r) = self.runner.take() {
            let _ = r.join();
        }
    }
}

fn baseline_alerts(alerts: &[Arc<Alert>]) -> Vec<&Arc<Alert>> {
    alerts.iter().filter(|a| a.source == "baseline").collect()
}

#[test]
fn a_locked_web_server_alerts_on_a_shell_and_a_download_tool_and_protect_denies_them() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !rampart_testbed::ready(IMAGE) {
        return;
    }
    let pid = std::process::id();
    let project = format!("base{pid}");
    let (web, client, net) = (
        format!("base-web-{pid}"),
        format!("base-client-{pid}"),
        format!("base-net-{pid}"),
    );
    let _cleanup = Cleanup(vec![web.clone(), client.clone()], Some(net.clone()));
    let _ = Command::new("docker")
        .args(["network", "rm", &net])
        .output();
    rampart_testbed::docker(&["network", "create", &net]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baselines.db");
    let node = Node::start(config(&db), true);
    std::thread::sleep(Duration::from_secs(1));

    let netarg = format!("--network={net}");
    run_compose(
        &web,
        &project,
        "web",
        &[&netarg, "--network-alias", "web"],
        &["python3", "-m", "http.server", "8080"],
    );
    run_compose(
        &client,
        &project,
        "client",
        &[&netarg],
        &[
            "bash",
            "-c",
            "while true; do curl -s -o /dev/null http://web:8080/; sleep 0.5; done",
        ],
    );
    let workload = format!("compose:{project}/web");
    // Discover: client traffic and health checks until the baseline locks itself.
    let store = SqliteBaselines::open(&db).unwrap();
    let locked = rampart_testbed::wait_for(Duration::from_secs(90), || {
        health_check(&web);
        let (b, _) = store.get(&workload).ok()??;
        b.locked.then_some(b)
    })
    .expect("the web server's baseline locked after its window and stable period");
    assert_eq!(locked.mode, Mode::Monitor);
    let procs: Vec<&String> = locked.items[&rampart_baseline::ItemKind::Process]
        .keys()
        .collect();
    eprintln!("learned processes: {procs:#?}");
    eprintln!(
        "learned network: {:#?}",
        locked
            .items
            .get(&rampart_baseline::ItemKind::Network)
            .map(|m| m.keys().collect::<Vec<_>>())
    );
    assert!(procs.iter().any(|k| k.contains("http.server")), "{procs:?}");

    // The same traffic after the lock raises nothing from the baseline.
    let before = node.alerts_of(&workload).len();
    for _ in 0..5 {
        health_check(&web);
        std::thread::sleep(Duration::from_millis(400));
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = node.alerts_of(&workload);
    let quiet: Vec<_> = baseline_alerts(&after[before..]);
    assert!(
        quiet.is_empty(),
        "normal traffic alerted: {:#?}",
        quiet.iter().map(|a| &a.message).collect::<Vec<_>>()
    );

    // A shell and a download tool.
    let (code, _) = exec(
        &web,
        &[
            "bash",
            "-c",
            "curl -s -o /tmp/page http://client:1/ || true",
        ],
    );
    assert_eq!(code, 0);
    let deviation = rampart_testbed::wait_for(Duration::from_secs(10), || {
        let all = node.alerts_of(&workload);
        let dev: Vec<Arc<Alert>> = baseline_alerts(&all)
            .into_iter()
            .filter(|a| a.rule == rampart_baseline::engine::DEVIATION_RULE)
            .cloned()
            .collect();
        let curl = dev.iter().any(|a| a.message.contains("/usr/bin/curl"));
        let bash = dev.iter().any(|a| a.message.contains("bash"));
        (curl && bash).then_some(dev)
    })
    .expect("bash and curl alerted");
    for a in &deviation {
        eprintln!("deviation: {}", a.message);
        assert!(a.message.contains(&workload), "{}", a.message);
    }

    // Protect: the operator switches the mode (as `rampart baseline mode`).
    store
        .update(&workload, &mut |b| b.mode = Mode::Protect)
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let (code, _) = exec(&web, &["touch", "/tmp/pwned"]);
    assert_eq!(code, 137, "touch was killed before it ran (SIGKILL)");
    let (_, exists) = exec(
        &web,
        &[
            "python3",
            "-c",
            "import os; print(os.path.exists('/tmp/pwned'))",
        ],
    );
    assert_eq!(exists.trim(), "False", "the denied executable never ran");
    let (code, _) = exec(
        &web,
        &["curl", "-s", "-o", "/tmp/page2", "http://client:1/"],
    );
    assert_eq!(code, 137, "curl is denied too");
    // What is in the baseline still runs.
    health_check(&web);
    let denied = rampart_testbed::wait_for(Duration::from_secs(10), || {
        node.alerts_of(&workload)
            .into_iter()
            .find(|a| a.message.contains("/usr/bin/touch") && a.message.contains("protect"))
    });
    assert!(denied.is_some(), "the denied exec is reported");
    store
        .update(&workload, &mut |b| b.mode = Mode::Monitor)
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (code, _) = exec(&web, &["touch", "/tmp/allowed-again"]);
    assert_eq!(code, 0, "leaving protect lifts the denial");

    // Noise control on the benign workloads: rule alerts downgraded.
    let all = node.alerts.alerts();
    let ours: Vec<_> = all
        .iter()
        .filter(|a| {
            a.source != "baseline"
                && a.event
                    .container
                    .container()
                    .is_some_and(|c| c.name == web || c.name == client)
        })
        .collect();
    let downgraded = ours
        .iter()
        .filter(|a| a.tags.iter().any(|t| t == "baseline_downgraded"))
        .count();
    eprintln!(
        "noise control: {} rule alerts on the web workload and its client, {} downgraded: {:?}",
        ours.len(),
        downgraded,
        ours.iter()
            .map(|a| (
                a.rule.as_str(),
                a.priority,
                a.event.process.as_ref().map(|p| p.exe.clone())
            ))
            .collect::<Vec<_>>()
    );
    drop(node);
}

#[test]
fn one_replica_running_a_tool_does_not_make_it_normal_and_risk_ranks_the_privileged_first() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !rampart_testbed::ready(IMAGE) {
        return;
    }
    let pid = std::process::id();
    let project = format!("base{pid}r");
    let (r1, r2, admin, idle) = (
        format!("base-app1-{pid}"),
        format!("base-app2-{pid}"),
        format!("base-admin-{pid}"),
        format!("base-idle-{pid}"),
    );
    let _cleanup = Cleanup(
        vec![r1.clone(), r2.clone(), admin.clone(), idle.clone()],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baselines.db");
    let mut cfg = config(&db);
    cfg.auto_lock = false;
    let node = Node::start(cfg, true);
    std::thread::sleep(Duration::from_secs(1));
    for r in [&r1, &r2] {
        run_compose(r, &project, "app", &[], &["sleep", "600"]);
    }
    run_compose(
        &admin,
        &project,
        "admin",
        &[
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
        ],
        &["sleep", "600"],
    );
    run_compose(&idle, &project, "idle", &[], &["sleep", "600"]);
    let app = format!("compose:{project}/app");
    // Both replicas do their normal work; replica 2 runs `id` once during learning.
    for _ in 0..3 {
        for r in [&r1, &r2] {
            assert_eq!(exec(r, &["python3", "-c", "pass"]).0, 0);
        }
    }
    assert_eq!(exec(&r2, &["id"]).0, 0);
    let store = SqliteBaselines::open(&db).unwrap();
    let learned = rampart_testbed::wait_for(Duration::from_secs(20), || {
        let (b, _) = store.get(&app).ok()??;
        let procs = b.items.get(&rampart_baseline::ItemKind::Process)?;
        (b.replicas.len() == 2 && procs.keys().any(|k| k.starts_with("/usr/bin/id "))).then_some(())
    });
    assert!(learned.is_some(), "both replicas and the tool were seen");
    // The operator locks it (as `rampart baseline lock`).
    store
        .update(&app, &mut |b| {
            rampart_baseline::lock(b, rampart_agent::wall_ns(), Mode::Monitor)
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(exec(&r1, &["python3", "-c", "pass"]).0, 0);
    assert_eq!(exec(&r1, &["id"]).0, 0);
    let alert = rampart_testbed::wait_for(Duration::from_secs(10), || {
        node.alerts_of(&app)
            .into_iter()
            .find(|a| a.source == "baseline" && a.message.contains("/usr/bin/id"))
    })
    .expect("the tool one replica ran during learning still alerts");
    eprintln!("{}", alert.message);
    assert_eq!(
        alert.output_fields["baseline.reason"],
        "seen during learning by only one replica while the others never did"
    );
    assert!(
        !node
            .alerts_of(&app)
            .iter()
            .any(|a| a.source == "baseline" && a.message.contains("python3")),
        "what both replicas did stays normal"
    );

    // Risk: the admin container (SYS_ADMIN, Docker socket) raises a rule alert.
    let (code, _) = exec(&admin, &["bash", "-c", "cat /etc/shadow > /dev/null"]);
    assert_eq!(code, 0);
    let admin_workload = format!("compose:{project}/admin");
    let idle_workload = format!("compose:{project}/idle");
    rampart_testbed::wait_for(Duration::from_secs(10), || {
        store
            .alerts()
            .ok()?
            .iter()
            .any(|a| a.workload == admin_workload)
            .then_some(())
    })
    .expect("an alert of the admin container was counted");
    let inputs: Vec<RiskInput> = [(&admin_workload, &admin), (&idle_workload, &idle)]
        .into_iter()
        .map(|(w, name)| {
            let inspect: serde_json::Value =
                serde_json::from_str(&rampart_testbed::docker(&["inspect", name])).unwrap();
            let mut input = RiskInput {
                workload: w.clone(),
                alerts: store
                    .alerts()
                    .unwrap()
                    .into_iter()
                    .filter(|a| a.workload == *w)
                    .collect(),
                privileges: vec![Privileges::from_inspect(&inspect[0])],
                ..RiskInput::default()
            };
            if let Ok(Some((b, _))) = store.get(w) {
                input = input.with_baseline(&b);
            }
            input
        })
        .collect();
    let ranked = risk::rank(&inputs, rampart_agent::wall_ns());
    eprintln!("{ranked:#?}");
    assert_eq!(ranked[0].workload, admin_workload);
    assert!(ranked[0].score > ranked[1].score);
    let privileges = ranked[0]
        .factors
        .iter()
        .find(|f| f.name == "privileges")
        .expect("privileges in the breakdown");
    assert!(privileges.detail.contains("SYS_ADMIN"), "{privileges:?}");
    assert!(
        privileges.detail.contains("Docker socket"),
        "{privileges:?}"
    );
    assert!(ranked[0].factors.iter().any(|f| f.name == "alerts"));
    drop(node);
}

#[test]
fn a_burst_after_learned_normal_windows_raises_an_anomaly_naming_its_features() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !rampart_testbed::ready(IMAGE) {
        return;
    }
    let pid = std::process::id();
    let project = format!("base{pid}a");
    let name = format!("base-steady-{pid}");
    let _cleanup = Cleanup(vec![name.clone()], None);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baselines.db");
    let mut cfg = config(&db);
    cfg.auto_lock = false;
    // Two-second "minutes", so the model's ten learning windows take seconds.
    cfg.feature_window_secs = 2;
    let node = Node::start(cfg, false);
    std::thread::sleep(Duration::from_secs(1));
    // A steady worker: two execs (cat, sleep) every half second or so.
    run_compose(
        &name,
        &project,
        "steady",
        &[],
        &[
            "bash",
            "-c",
            "while true; do cat /etc/hostname > /dev/null; sleep 0.5; done",
        ],
    );
    let workload = format!("compose:{project}/steady");
    let store = SqliteBaselines::open(&db).unwrap();
    let samples = rampart_testbed::wait_for(Duration::from_secs(60), || {
        let (b, _) = store.get(&workload).ok()??;
        (b.features.samples.len() >= 14).then_some(b.features.samples)
    })
    .expect("fourteen learning windows of the steady worker stored");
    eprintln!("learned windows: {samples:?}");
    // The operator locks it (as `rampart baseline lock`): the model is fitted.
    let (locked, _) = store
        .update(&workload, &mut |b| {
            rampart_baseline::lock(b, rampart_agent::wall_ns(), Mode::Monitor)
        })
        .unwrap();
    let ranges = locked
        .features
        .fitted
        .clone()
        .expect("the model fitted at lock");
    eprintln!("normal ranges: {ranges:?}");
    let anomalies = || -> Vec<Arc<Alert>> {
        node.alerts_of(&workload)
            .into_iter()
            .filter(|a| a.rule == rampart_baseline::engine::ANOMALY_RULE)
            .collect()
    };
    // The node picks the lock up; the same steady work then scores as normal.
    std::thread::sleep(Duration::from_secs(8));
    let quiet = anomalies();
    assert!(
        quiet.is_empty(),
        "steady windows scored anomalous: {:#?}",
        quiet.iter().map(|a| &a.message).collect::<Vec<_>>()
    );
    // A burst: a hundred and fifty execs in a window.
    let (code, _) = exec(
        &name,
        &["bash", "-c", "for i in $(seq 150); do /usr/bin/true; done"],
    );
    assert_eq!(code, 0);
    let alert =
        rampart_testbed::wait_for(Duration::from_secs(15), || anomalies().into_iter().next())
            .expect("the burst raised an anomaly");
    eprintln!("anomaly: {}", alert.message);
    assert!(alert.message.contains(&workload), "{}", alert.message);
    assert!(alert.message.contains(&name), "{}", alert.message);
    let top = alert.output_fields["baseline.features"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let execs = top
        .iter()
        .find(|f| f["feature"] == "exec_per_min")
        .unwrap_or_else(|| panic!("exec rate not among the top features: {top:?}"));
    let (value, high) = (
        execs["value"].as_f64().unwrap(),
        execs["normal_high"].as_f64().unwrap(),
    );
    assert!(value > high, "{execs}");
    assert!(value >= 50.0, "{execs}");
    // The explanation names the feature, its value and the normal range.
    assert!(
        alert
            .message
            .contains(&format!("exec_per_min={}", value as i64))
            && alert.message.contains("normal"),
        "{}",
        alert.message
    );
    assert!(
        alert.output_fields["baseline.score"].as_f64().unwrap() >= 6.0,
        "{:?}",
        alert.output_fields
    );
}

#[test]
fn protect_denials_stay_in_the_kernel_when_the_node_stops_unless_told_to_release() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !rampart_testbed::ready(IMAGE) {
        return;
    }
    let pid = std::process::id();
    let project = format!("base{pid}s");
    let name = format!("base-stop-{pid}");
    let _cleanup = Cleanup(vec![name.clone()], None);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baselines.db");
    let mut cfg = config(&db);
    cfg.auto_lock = false;
    let node = Node::start(cfg.clone(), false);
    std::thread::sleep(Duration::from_secs(1));
    run_compose(&name, &project, "app", &[], &["sleep", "600"]);
    let workload = format!("compose:{project}/app");
    let store = SqliteBaselines::open(&db).unwrap();
    rampart_testbed::wait_for(Duration::from_secs(20), || {
        assert_eq!(exec(&name, &["cat", "/etc/hostname"]).0, 0);
        let (b, _) = store.get(&workload).ok()??;
        let procs = b.items.get(&rampart_baseline::ItemKind::Process)?;
        procs
            .keys()
            .any(|k| k.starts_with("/usr/bin/cat "))
            .then_some(())
    })
    .expect("cat learned");
    store
        .update(&workload, &mut |b| {
            rampart_baseline::set_mode(b, rampart_agent::wall_ns(), Mode::Protect)
        })
        .unwrap();
    let denied = || exec(&name, &["true"]).0 == 137;
    assert!(
        rampart_testbed::wait_for(Duration::from_secs(15), || denied().then_some(())).is_some(),
        "protect in force"
    );

    // keep (the default): the node stops, the denial stays (fail-closed).
    assert_eq!(cfg.protect_on_stop, rampart_baseline::ProtectOnStop::Keep);
    drop(node);
    assert!(denied(), "the exec denial outlived the node (keep)");
    assert_eq!(
        exec(&name, &["cat", "/etc/hostname"]).0,
        0,
        "what is learned runs"
    );

    // A node started again takes the denial over; with release it is lifted at stop.
    cfg.protect_on_stop = rampart_baseline::ProtectOnStop::Release;
    let node = Node::start(cfg, false);
    std::thread::sleep(Duration::from_secs(2));
    // The container's next event makes the new node put its own list in place.
    assert_eq!(exec(&name, &["cat", "/etc/hostname"]).0, 0);
    assert!(
        rampart_testbed::wait_for(Duration::from_secs(10), || denied().then_some(())).is_some(),
        "still denied under the new node"
    );
    drop(node);
    assert!(
        rampart_testbed::wait_for(Duration::from_secs(5), || (!denied()).then_some(())).is_some(),
        "release: the denial is lifted when the node stops"
    );
}
