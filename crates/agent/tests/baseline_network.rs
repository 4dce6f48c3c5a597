//! Protect mode's network half end to end, with the real sensor, the kernel's netflow
//! segmentation programs and real containers of rampart-test/debian:12: a web client
//! learns its server (curl to `web:8080` every half second) and locks in protect mode;
//! it keeps reaching its server, while a connect to another server fails in the
//! container with EPERM and raises an alert naming the edge, the process and the
//! workload; when its server's name moves to a new address the client follows it (the
//! guard reads the container's DNS answers); putting the baseline back in monitor lifts
//! the refusal. Containers are
//! named `bas-*` and removed on drop.
//!
//! One test at a time: the sensor and the response guard's pinned maps are host-wide.

use std::process::Command;
use std::time::{Duration, Instant};

use rampart_agent::stages::{AlertLog, BaselineStage, BASELINE_BLOCKED_RULE};
use rampart_agent::{Controls, PipelineBuilder};
use rampart_baseline::{
    BaselineConfig, BaselineStore, Item, ItemKind, Mode, Origin, SqliteBaselines,
};

const IMAGE: &str = "rampart-test/debian:12";

/// Containers and a network removed on drop.
struct Cleanup(Vec<String>, String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.0 {
            rampart_testbed::remove_container(c);
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.1])
            .output();
    }
}

/// `docker exec NAME ARGS…`: (exit code, stdout, stderr).
fn exec(name: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("docker")
        .arg("exec")
        .arg(name)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP connect from inside the container with bash's /dev/tcp (bash is in the
/// client's baseline, so protect's exec denial lets it run).
fn connect(container: &str, ip: &str, port: u16) -> (i32, String) {
    let script = format!("exec 3<>/dev/tcp/{ip}/{port} && echo connected");
    let (code, out, err) = exec(container, &["bash", "-c", &script]);
    (code, format!("{out}{err}"))
}

fn ip_of(container: &str) -> String {
    rampart_testbed::docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container,
    ])
    .trim()
    .to_string()
}

/// Requests the web server logged (http.server writes one line per request).
fn requests_served(server: &str) -> usize {
    let out = Command::new("docker")
        .args(["logs", server])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("\"GET /"))
        .count()
}

#[test]
fn a_client_locked_in_protect_reaches_its_learned_server_and_nothing_else() {
    if !rampart_testbed::ready(IMAGE) {
        return;
    }
    let pid = std::process::id();
    let project = format!("bas{pid}");
    let (web, web2, other, client, net) = (
        format!("bas-web-{pid}"),
        format!("bas-web2-{pid}"),
        format!("bas-other-{pid}"),
        format!("bas-client-{pid}"),
        format!("bas-net-{pid}"),
    );
    let _cleanup = Cleanup(
        vec![web.clone(), web2.clone(), other.clone(), client.clone()],
        net.clone(),
    );
    let _ = Command::new("docker")
        .args(["network", "rm", &net])
        .output();
    rampart_testbed::docker(&["network", "create", &net]);

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("baselines.db");
    let cfg = BaselineConfig {
        enabled: true,
        db: db.clone(),
        window_secs: 8,
        stable_secs: 4,
        min_observations: 2,
        locked_mode: Mode::Protect,
        save_secs: 1,
        poll_secs: 1,
        repeat_secs: 1,
        ..BaselineConfig::default()
    };
    let sensor = rampart_sensor::start(rampart_sensor::SensorConfig {
        bpf_object: rampart_testbed::bpf_object(),
        ..rampart_sensor::SensorConfig::default()
    })
    .unwrap();
    let (stage, _) = BaselineStage::open(cfg).unwrap();
    let alerts = AlertLog::new();
    let pipeline = PipelineBuilder::new()
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
    std::thread::sleep(Duration::from_secs(1));

    let netarg = format!("--network={net}");
    for (name, alias) in [(&web, "web"), (&other, "other")] {
        rampart_testbed::remove_container(name);
        rampart_testbed::docker(&[
            "run",
            "-d",
            "--name",
            name,
            &netarg,
            "--network-alias",
            alias,
            IMAGE,
            "python3",
            "-m",
            "http.server",
            "8080",
        ]);
    }
    rampart_testbed::remove_container(&client);
    rampart_testbed::docker(&[
        "run",
        "-d",
        "--name",
        &client,
        &netarg,
        "--label",
        &format!("com.docker.compose.project={project}"),
        "--label",
        "com.docker.compose.service=client",
        IMAGE,
        "bash",
        "-c",
        "while true; do curl -s -o /dev/null http://web:8080/; sleep 0.5; done",
    ]);
    let (web_ip, other_ip) = (ip_of(&web), ip_of(&other));
    let workload = format!("compose:{project}/client");

    // Discover, then the baseline locks itself in protect mode.
    let store = SqliteBaselines::open(&db).unwrap();
    let locked = rampart_testbed::wait_for(Duration::from_secs(90), || {
        let (b, _) = store.get(&workload).ok()??;
        b.locked.then_some(b)
    })
    .expect("the client's baseline locked after its window and stable period");
    assert_eq!(locked.mode, Mode::Protect);
    let network: Vec<&String> = locked
        .items
        .get(&ItemKind::Network)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    eprintln!("learned network: {network:?}");
    let learned_edge = format!("out tcp {web_ip}:8080");
    assert!(
        network.iter().any(|k| **k == learned_edge),
        "{learned_edge} learned: {network:?}"
    );
    // The servers (one workload: their image) lock in protect mode too: their inbound
    // edges are enforced as well, so the traffic below also shows that the learned
    // inbound port stays open.
    let servers = format!("image:{IMAGE}");
    let server_baseline = rampart_testbed::wait_for(Duration::from_secs(60), || {
        let (b, _) = store.get(&servers).ok()??;
        b.locked.then_some(b)
    })
    .expect("the servers' baseline locked");
    assert_eq!(server_baseline.mode, Mode::Protect);
    let inbound: Vec<&String> = server_baseline
        .items
        .get(&ItemKind::Network)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    eprintln!("servers' learned network: {inbound:?}");
    assert!(
        inbound.iter().any(|k| k.ends_with(" tcp :8080")),
        "{inbound:?}"
    );
    // The protect request goes out with the container's next event.
    std::thread::sleep(Duration::from_secs(3));

    // The learned server is still reached: by the client's own loop and by hand.
    let served = requests_served(&web);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        requests_served(&web) >= served + 3,
        "the client's loop keeps reaching its server in protect mode"
    );
    let (code, out) = connect(&client, &web_ip, 8080);
    assert_eq!((code, out.trim()), (0, "connected"), "learned edge");

    // A new destination: refused in the kernel, in the container.
    let (code, out) = connect(&client, &other_ip, 8080);
    assert_ne!(code, 0, "the connect to a new destination failed: {out}");
    assert!(
        out.contains("Operation not permitted"),
        "refused by segmentation (EPERM): {out}"
    );
    let blocked_edge = format!("out tcp {other_ip}:8080");
    let alert = rampart_testbed::wait_for(Duration::from_secs(10), || {
        alerts
            .alerts()
            .into_iter()
            .find(|a| a.rule == BASELINE_BLOCKED_RULE && a.message.contains(&blocked_edge))
    })
    .expect("the refused edge raised an alert");
    eprintln!("blocked: {}", alert.message);
    assert!(alert.message.contains(&workload), "{}", alert.message);
    assert!(alert.message.contains(&client), "{}", alert.message);
    assert!(
        alert.message.contains("bash"),
        "names the process: {}",
        alert.message
    );
    assert!(
        alert.message.contains(&learned_edge),
        "lists the learned edges: {}",
        alert.message
    );
    assert_eq!(
        alert.event.container.container().map(|c| c.name.as_str()),
        Some(client.as_str())
    );
    // By name too: `other` was never resolved while learning.
    let (code, _, _) = exec(&client, &["curl", "-s", "-m", "5", "http://other:8080/"]);
    assert_ne!(code, 0, "curl to a new server by name failed");

    // A normal name moving to a new address: `web` now answers with a second server's
    // address (the first is gone); the client's loop follows it once the guard has read
    // the answer (a connect racing its own answer is refused once).
    // The name is made normal as an operator does (`rampart baseline allow WORKLOAD
    // dns web`; the node picks it up at its next poll), so this part does not hang on
    // the learning window. Written when glibc's sendmmsg queries went unseen (fixed
    // since, a5cd2be): learning the name from the client's own queries is not tested
    // here.
    let names: Vec<&String> = locked
        .items
        .get(&ItemKind::Dns)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    eprintln!("learned names: {names:?}");
    store
        .update(&workload, &mut |b| {
            b.items
                .entry(ItemKind::Dns)
                .or_default()
                .entry("web".into())
                .or_insert_with(|| Item::new(0, Origin::Allowed))
                .origin = Origin::Allowed;
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    rampart_testbed::remove_container(&web2);
    rampart_testbed::docker(&[
        "run",
        "-d",
        "--name",
        &web2,
        &netarg,
        "--network-alias",
        "web",
        IMAGE,
        "python3",
        "-m",
        "http.server",
        "8080",
    ]);
    rampart_testbed::remove_container(&web);
    let web2_ip = ip_of(&web2);
    let followed = rampart_testbed::wait_for(Duration::from_secs(20), || {
        (requests_served(&web2) >= 3).then_some(())
    });
    if followed.is_none() {
        // It failed in 2 of 5 suite runs (never alone): say what the client saw.
        let (_, hosts, _) = exec(&client, &["getent", "hosts", "web"]);
        let (code, out) = connect(&client, &web2_ip, 8080);
        let (_, curl, curl_err) = exec(
            &client,
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "http://web:8080/",
            ],
        );
        let refusals: Vec<String> = alerts
            .alerts()
            .into_iter()
            .filter(|a| a.rule == BASELINE_BLOCKED_RULE && a.message.contains(&web2_ip))
            .map(|a| a.message.clone())
            .collect();
        panic!(
            "the client did not reach {web2_ip}, the new address of its normal name web \
             ({} requests served): `getent hosts web` {hosts:?}; a connect to it: {code} \
             {out:?}; curl by name: {curl:?} {curl_err:?}; refusals of it: {refusals:?}",
            requests_served(&web2)
        );
    }
    let (code, out) = connect(&client, &web2_ip, 8080);
    assert_eq!((code, out.trim()), (0, "connected"), "resolved edge");

    // Monitor lifts the refusal.
    store
        .update(&workload, &mut |b| b.mode = Mode::Monitor)
        .unwrap();
    let reached = rampart_testbed::wait_for(Duration::from_secs(10), || {
        let (code, _) = connect(&client, &other_ip, 8080);
        (code == 0).then_some(())
    });
    assert!(reached.is_some(), "monitor mode lets the new edge through");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = runner.join();
}
