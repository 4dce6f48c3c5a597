//! Attribution through containerd with Docker not involved: the real sensor in the
//! real kernel follows a containerd of the test's own (crates/testbed), whose
//! containers run as a Kubernetes node's do (`ctr -n k8s.io run` with the kubelet's
//! CRI labels, cgroup `/k8s.io/<id>`). The sensor is given no Docker (what a node
//! with dockerd stopped, or without it, sees). Images come from the shared engine
//! (`rampart-test/busybox:latest`, scripts/build-test-images). Needs root, the
//! kernel, containerd and ctr: skips with the reason elsewhere, fails in CI.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rampart_event::{Container, Event, Payload};
use rampart_sensor::SensorConfig;
use rampart_testbed::containerd::Containerd;

struct Bed {
    events: Arc<(Mutex<Vec<Arc<Event>>>, Condvar)>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    collector: Option<std::thread::JoinHandle<()>>,
    image: String,
    /// Ran before the sensor started.
    preexisting: String,
    // Dropped last: its containers are killed and it stops after the sensor.
    containerd: Containerd,
}

impl Drop for Bed {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.collector.take() {
            let _ = t.join();
        }
    }
}

fn ready() -> bool {
    rampart_testbed::ready(rampart_testbed::TEST_IMAGE)
        && rampart_testbed::require(rampart_testbed::containerd::containerd_unavailable())
}

fn start_bed() -> Bed {
    let containerd = Containerd::start("k8s-sensor").expect("containerd starts");
    let image = containerd
        .import_image(rampart_testbed::TEST_IMAGE)
        .expect("image imports");
    let preexisting = "k8s-before-sensor".to_string();
    run(
        &containerd,
        &["-d"],
        &image,
        &preexisting,
        ("early-5c9f7b6d4-q8k2m", "batch"),
        &["sleep", "600"],
    );
    let mut sensor = rampart_sensor::start(SensorConfig {
        bpf_object: rampart_testbed::bpf_object(),
        queue_capacity: 1 << 20,
        docker: false,
        containerd_socket: Some(containerd.socket.clone()),
        k8s_node: "node-a".into(),
        ..Default::default()
    })
    .expect("sensor starts");
    // Listed before start returned (containerd is idle now: nothing but the listing
    // can have named it).
    assert!(
        sensor.containers.get(&preexisting).is_some(),
        "a container that existed before the sensor is known at start"
    );
    let events: Arc<(Mutex<Vec<Arc<Event>>>, Condvar)> = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = std::thread::spawn({
        let (events, stop) = (events.clone(), stop.clone());
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(ev) = sensor.events.recv_timeout(Duration::from_millis(100)) {
                    events.0.lock().unwrap().push(Arc::new(ev));
                    events.1.notify_all();
                }
            }
            sensor.stop();
        }
    });
    Bed {
        events,
        stop,
        collector: Some(collector),
        image,
        preexisting,
        containerd,
    }
}

/// `ctr run` in k8s.io with the CRI labels the kubelet sets.
fn run(c: &Containerd, flags: &[&str], image: &str, id: &str, pod: (&str, &str), cmd: &[&str]) {
    let name_label = format!("io.kubernetes.pod.name={}", pod.0);
    let ns_label = format!("io.kubernetes.pod.namespace={}", pod.1);
    let mut args = vec![
        "run",
        "--label",
        &name_label,
        "--label",
        &ns_label,
        "--label",
        "io.kubernetes.container.name=app",
        "--label",
        "io.kubernetes.pod.uid=0b4a9d2e-1111-4c4c-9c9c-123456789abc",
    ];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image, id]);
    args.extend_from_slice(cmd);
    let o = c.ctr(&args);
    assert!(
        o.status.success(),
        "ctr run {id}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn wait_for(s: &Bed, what: &str, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Arc<Event> {
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    let mut guard = s.events.0.lock().unwrap();
    loop {
        if let Some(e) = guard[seen..].iter().find(|e| pred(e)) {
            return e.clone();
        }
        seen = guard.len();
        let now = Instant::now();
        assert!(now < deadline, "no event: {what} (searched {seen} events)");
        guard = s.events.1.wait_timeout(guard, deadline - now).unwrap().0;
    }
}

fn reads_shadow(e: &Event) -> bool {
    matches!(&e.payload, Payload::FileOpen { path, access, .. } if path == "/etc/shadow" && access.read)
}

fn in_container<'a>(e: &'a Event, id: &str) -> Option<&'a Container> {
    e.container.container().filter(|c| c.id == id)
}

const T: Duration = Duration::from_secs(20);

fn assert_named(c: &Container, pod: &str, namespace: &str) {
    assert_eq!(c.runtime, "containerd", "{c:?}");
    assert!(c.metadata_complete, "metadata arrived: {c:?}");
    let k = c.k8s.as_ref().expect("kubernetes identity");
    assert_eq!(
        (k.pod.as_str(), k.namespace.as_str(), k.container.as_str()),
        (pod, namespace, "app")
    );
    assert_eq!(k.node, "node-a");
    assert_eq!(c.name, "app");
    assert!(c.image.ends_with("rampart-test/busybox:latest"), "{c:?}");
}

fn a_k8s_io_container_reading_shadow_is_named_by_pod_and_namespace(s: &Bed) {
    let id = "k8s-shadow-reader";
    run(
        &s.containerd,
        &["-d"],
        &s.image,
        id,
        ("web-7d4b9c8f5-x2x9k", "shop"),
        &[
            "sh",
            "-c",
            "sleep 0.5; cat /etc/shadow >/dev/null; sleep 30",
        ],
    );
    let ev = wait_for(s, "/etc/shadow read in the k8s.io container", T, |e| {
        reads_shadow(e) && in_container(e, id).is_some()
    });
    let c = ev.container.container().unwrap();
    assert_named(c, "web-7d4b9c8f5-x2x9k", "shop");
    assert_ne!(c.cgroup_id, 0, "the kernel's cgroup id is kept");
    let _ = s.containerd.ctr(&["task", "kill", "-s", "SIGKILL", id]);
}

/// The whole container lives less than 50 ms: its cgroup and containerd's record are
/// gone by the time anyone could ask, and the event still names it.
fn a_container_gone_within_50_ms_is_still_named(s: &Bed) {
    let id = "k8s-brief";
    let started = Instant::now();
    run(
        &s.containerd,
        &["--rm"],
        &s.image,
        id,
        ("brief-job-abcde", "batch"),
        &["cat", "/etc/shadow"],
    );
    let ran = started.elapsed();
    let ev = wait_for(s, "/etc/shadow read in the short-lived container", T, |e| {
        reads_shadow(e) && in_container(e, id).is_some()
    });
    assert_named(
        ev.container.container().unwrap(),
        "brief-job-abcde",
        "batch",
    );
    // Its process: exec to exit within 50 ms (ctr's own set-up is slower).
    let exec = wait_for(s, "the container's exec", T, |e| {
        matches!(e.payload, Payload::Exec { .. }) && in_container(e, id).is_some()
    });
    let exit = wait_for(s, "the container's exit", T, |e| {
        matches!(e.payload, Payload::Exit { .. }) && in_container(e, id).is_some()
    });
    let lived = Duration::from_nanos(exit.ts_ns.saturating_sub(exec.ts_ns));
    assert!(
        lived < Duration::from_millis(50),
        "lived {lived:?} (ctr run took {ran:?})"
    );
    assert_named(
        exit.container.container().unwrap(),
        "brief-job-abcde",
        "batch",
    );
}

fn a_container_started_before_the_sensor_is_named(s: &Bed) {
    let o = s.containerd.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "probe",
        &s.preexisting,
        "cat",
        "/etc/shadow",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ev = wait_for(
        s,
        "/etc/shadow read in the container started first",
        T,
        |e| reads_shadow(e) && in_container(e, &s.preexisting).is_some(),
    );
    let c = ev.container.container().unwrap();
    assert_named(c, "early-5c9f7b6d4-q8k2m", "batch");
    let k = c.k8s.as_ref().unwrap();
    // No sandbox labels here (ctr makes no pod sandbox): the pod is its own workload.
    assert_eq!(
        (k.workload_kind.as_str(), k.workload_name.as_str()),
        ("Pod", "early-5c9f7b6d4-q8k2m")
    );
}

/// A JWT as the kubelet's projected token has it (only the claims matter here).
fn token_for(namespace: &str, sa: &str) -> String {
    use base64::Engine;
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let claims = format!(
        r#"{{"aud":["https://kubernetes.default.svc"],"kubernetes.io":{{"namespace":"{namespace}","serviceaccount":{{"name":"{sa}","uid":"1"}}}},"sub":"system:serviceaccount:{namespace}:{sa}"}}"#
    );
    format!(
        "{}.{}.{}",
        e(br#"{"alg":"RS256"}"#),
        e(claims.as_bytes()),
        e(b"sig")
    )
}

/// The pod's service account, from the token the kubelet would mount (a real bind
/// mount at the kubelet's path in the container's spec), on the events; the events go
/// through a real recorder, where `where k8s.…` finds them and they come back whole.
fn the_service_account_is_named_and_recorded(s: &Bed) {
    let id = "k8s-sa-reader";
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("token"), token_for("shop", "cart-runner")).unwrap();
    let mount = format!(
        "type=bind,src={},dst={},options=rbind:ro",
        vol.path().display(),
        rampart_sensor::cri::SERVICE_ACCOUNT_MOUNT
    );
    run(
        &s.containerd,
        &["-d", "--mount", &mount],
        &s.image,
        id,
        ("cart-6b7c8d9e0f-abcde", "shop"),
        &[
            "sh",
            "-c",
            "sleep 0.5; cat /var/run/secrets/kubernetes.io/serviceaccount/token >/dev/null; cat /etc/shadow >/dev/null; sleep 30",
        ],
    );
    let ev = wait_for(
        s,
        "/etc/shadow read in the pod with a service account",
        T,
        |e| reads_shadow(e) && in_container(e, id).is_some(),
    );
    let c = ev.container.container().unwrap();
    assert_named(c, "cart-6b7c8d9e0f-abcde", "shop");
    assert_eq!(c.k8s.as_ref().unwrap().service_account, "cart-runner");
    let _ = s.containerd.ctr(&["task", "kill", "-s", "SIGKILL", id]);

    // Through the recorder: every event the sensor gave for this container.
    let ours: Vec<Arc<Event>> = s
        .events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| in_container(e, id).is_some())
        .cloned()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let rec = rampart_recorder::Recorder::open(rampart_recorder::RecorderConfig {
        max_age: None,
        ..rampart_recorder::RecorderConfig::with_dir(dir.path())
    })
    .unwrap();
    let rules = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"));
    // The shipped rules alert on the read, with the pod's identity in the alert's
    // fields.
    let (engine, errors) = rampart_detect::RuleEngine::load(&[&rules]).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let alert = ours
        .iter()
        .flat_map(|e| engine.evaluate(e))
        .find(|a| reads_shadow(&a.event))
        .expect("a shipped rule fires on the /etc/shadow read");
    assert_eq!(
        alert.output_fields["k8s.sa.name"], "cart-runner",
        "{alert:?}"
    );
    assert_eq!(alert.output_fields["k8s.ns.name"], "shop");
    assert_eq!(alert.output_fields["k8s.pod.name"], "cart-6b7c8d9e0f-abcde");
    let w = rampart_recorder::Writer::start(rec.clone()).unwrap();
    for e in &ours {
        while !w.try_append_event(e.clone()) {
            std::thread::yield_now();
        }
    }
    assert!(w.try_append_alert(alert.clone()));
    w.close().unwrap();
    let found: Vec<Event> = rec
        .query(
            &rampart_recorder::Query::new()
                .with_where(
                    "k8s.ns.name = shop and k8s.sa.name = cart-runner and fd.name = /etc/shadow",
                    &[&rules],
                )
                .unwrap(),
        )
        .unwrap()
        .filter_map(|r| match r {
            rampart_recorder::Record::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(
        !found.is_empty(),
        "the recorded shadow read is found by pod"
    );
    assert_eq!(
        found[0].container.container().unwrap().k8s,
        c.k8s,
        "the identity comes back whole"
    );
    // The alert's incident bundle names the pod.
    let bundle = dir.path().join("incident.tar.gz");
    let summary = rec
        .incident_bundle(
            &alert.id,
            Duration::from_secs(60),
            Duration::from_secs(60),
            &bundle,
        )
        .unwrap();
    assert!(summary.events > 0, "{summary:?}");
    let tar = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(&bundle)
        .args(["--wildcards", "*/summary.md"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let text = String::from_utf8(tar.stdout).unwrap();
    assert!(
        text.contains(
            "- Kubernetes: pod shop/cart-6b7c8d9e0f-abcde, container app, \
             Pod cart-6b7c8d9e0f-abcde, node node-a, service account cart-runner"
        ),
        "{text}"
    );
}

/// One containerd and one sensor for the three cases (the sensor's kernel state is
/// host-wide), torn down at the end.
#[test]
fn containerd_containers_are_named_without_docker() {
    if !ready() {
        return;
    }
    let bed = start_bed();
    a_container_started_before_the_sensor_is_named(&bed);
    a_k8s_io_container_reading_shadow_is_named_by_pod_and_namespace(&bed);
    a_container_gone_within_50_ms_is_still_named(&bed);
    the_service_account_is_named_and_recorded(&bed);
}
