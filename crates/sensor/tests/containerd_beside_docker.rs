//! Docker and containerd side by side on one host, each container named once: the
//! sensor follows the shared Docker engine and a containerd of the test's own; a
//! Docker container and a `ctr -n k8s.io` container each read /etc/shadow and each is
//! named by its own runtime. And containerd's `moby` namespace (Docker's containers,
//! seen through dockerd's own containerd, read only) is left to the Docker watcher.
//! Needs root, the kernel, Docker, containerd and ctr: skips with the reason
//! elsewhere, fails in CI.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use rampart_event::{Event, Payload};
use rampart_sensor::{ContainerCache, ContainerdWatcher, SensorConfig};
use rampart_testbed::containerd::Containerd;
use rampart_testbed::TestContainer;

fn ready() -> bool {
    rampart_testbed::ready(rampart_testbed::TEST_IMAGE)
        && rampart_testbed::require(rampart_testbed::containerd::containerd_unavailable())
}

fn reads_shadow(e: &Event) -> bool {
    matches!(&e.payload, Payload::FileOpen { path, access, .. } if path == "/etc/shadow" && access.read)
}

#[test]
fn docker_and_containerd_containers_are_each_named_once_by_their_runtime() {
    if !ready() {
        return;
    }
    let containerd = Containerd::start("k8s-beside").expect("containerd starts");
    let image = containerd
        .import_image(rampart_testbed::TEST_IMAGE)
        .expect("image imports");
    let mut sensor = rampart_sensor::start(SensorConfig {
        bpf_object: rampart_testbed::bpf_object(),
        queue_capacity: 1 << 20,
        docker: true,
        containerd_socket: Some(containerd.socket.clone()),
        ..Default::default()
    })
    .expect("sensor starts");
    let docker_side = TestContainer::start(
        "k8s-beside-docker",
        &[],
        &[
            "sh",
            "-c",
            "sleep 0.5; cat /etc/shadow >/dev/null; sleep 30",
        ],
    );
    let ctr_id = "k8s-beside-ctr";
    let o = containerd.ctr(&[
        "run",
        "-d",
        "--label",
        "io.kubernetes.pod.name=side-0",
        "--label",
        "io.kubernetes.pod.namespace=beside",
        &image,
        ctr_id,
        "sh",
        "-c",
        "sleep 0.5; cat /etc/shadow >/dev/null; sleep 30",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let (mut from_docker, mut from_containerd) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while (from_docker.is_none() || from_containerd.is_none()) && Instant::now() < deadline {
        match sensor.events.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) if reads_shadow(&ev) => {
                let Some(c) = ev.container.container() else {
                    continue;
                };
                if c.id == docker_side.id {
                    from_docker = Some(c.clone());
                } else if c.id == ctr_id {
                    from_containerd = Some(c.clone());
                }
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let d = from_docker.expect("the Docker container's read");
    assert_eq!(
        (d.runtime.as_str(), d.name.as_str()),
        ("docker", "k8s-beside-docker")
    );
    assert!(d.metadata_complete);
    let c = from_containerd.expect("the containerd container's read");
    assert_eq!(c.runtime, "containerd");
    assert_eq!(c.k8s.as_ref().map(|k| k.pod.as_str()), Some("side-0"));
    let listed = sensor.containers.list();
    for id in [&docker_side.id, &ctr_id.to_string()] {
        assert_eq!(
            listed.iter().filter(|c| &c.id == id).count(),
            1,
            "{id} named once"
        );
    }
    sensor.stop();
    let _ = containerd.ctr(&["task", "kill", "-s", "SIGKILL", ctr_id]);
}

/// dockerd's own containerd holds Docker's containers in namespace `moby`: a
/// containerd watcher beside the Docker one skips them, so Docker names them alone.
#[test]
fn dockers_moby_namespace_is_left_to_the_docker_watcher() {
    if !ready() {
        return;
    }
    let socket = std::path::Path::new("/var/run/docker/containerd/containerd.sock");
    let socket = if socket.exists() {
        socket
    } else {
        std::path::Path::new(rampart_sensor::containerd::DEFAULT_SOCKET)
    };
    if !rampart_testbed::require(
        (!socket.exists()).then(|| "dockerd's containerd socket is not found".to_string()),
    ) {
        return;
    }
    let docker_side = TestContainer::start("k8s-moby-probe", &[], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed = |skip: Option<String>| {
        let cache = ContainerCache::default();
        let watcher = ContainerdWatcher::new(socket.into(), cache.clone(), Duration::from_secs(30))
            .skip_namespaces(skip);
        let (tx, rx) = tokio::sync::oneshot::channel();
        rt.block_on(async {
            let task = tokio::spawn(watcher.run(Some(tx)));
            let n = tokio::time::timeout(Duration::from_secs(10), rx).await;
            task.abort();
            n.expect("listing in time")
                .expect("listing sent")
                .expect("containerd answers")
        });
        cache
    };
    let all = listed(None);
    let probe = all
        .get(&docker_side.id)
        .expect("containerd knows Docker's container");
    let c = probe.container().unwrap();
    assert_eq!(
        c.labels.get("io.containerd.namespace").map(String::as_str),
        Some("moby")
    );
    let beside_docker = listed(Some("moby".into()));
    assert!(
        beside_docker.get(&docker_side.id).is_none(),
        "moby is Docker's to name"
    );
}
