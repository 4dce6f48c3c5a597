//! `rampart up` on a host where containers run under containerd with the kubelet's
//! CRI labels and Docker is not involved (`no_docker`): a container reading
//! /etc/shadow raises an alert that names its pod, namespace, container and node.
//! Needs root, the kernel, containerd and ctr: skips with the reason elsewhere, fails
//! in CI.

mod support;

use std::time::{Duration, Instant};

use rampart_testbed::containerd::Containerd;
use support::{Line, Up};

#[test]
fn an_alert_from_a_containerd_pod_names_it() {
    if !rampart_testbed::kernel_ready()
        || !rampart_testbed::ready(rampart_testbed::TEST_IMAGE)
        || !rampart_testbed::require(rampart_testbed::containerd::containerd_unavailable())
    {
        return;
    }
    let containerd = Containerd::start("k8s-up").expect("containerd starts");
    let image = containerd
        .import_image(rampart_testbed::TEST_IMAGE)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("up.yaml");
    std::fs::write(
        &config,
        format!(
            "sensor:\n  no_docker: true\n  containerd_socket: {}\n  k8s_node: node-7\nrecorder: {{enabled: false}}\nscanner: {{enabled: false}}\nresponse: {{control_socket: null}}\noutputs: {{sinks: [{{type: stdout}}]}}\n",
            containerd.socket.display()
        ),
    )
    .unwrap();
    let up = Up::start(&config);
    let o = containerd.ctr(&[
        "run",
        "--rm",
        "--label",
        "io.kubernetes.pod.name=payments-6f7c9d8b4-zx2lp",
        "--label",
        "io.kubernetes.pod.namespace=billing",
        "--label",
        "io.kubernetes.container.name=api",
        &image,
        "k8s-up-shadow",
        "cat",
        "/etc/shadow",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    let alert = loop {
        assert!(
            Instant::now() < deadline,
            "no alert for the pod's /etc/shadow read"
        );
        if let Ok(Line::Out(l)) = up.lines().recv_timeout(Duration::from_millis(200)) {
            if l.contains("/etc/shadow") && l.contains("payments-6f7c9d8b4-zx2lp") {
                break serde_json::from_str::<serde_json::Value>(&l).unwrap();
            }
        }
    };
    let text = alert.to_string();
    for want in [
        "\"pod\":\"payments-6f7c9d8b4-zx2lp\"",
        "\"namespace\":\"billing\"",
        "\"container\":\"api\"",
        "\"node\":\"node-7\"",
        "\"runtime\":\"containerd\"",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    up.stop();
}
