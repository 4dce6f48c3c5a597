//! `rampart up` on a host where containers run under containerd with the kubelet's
//! CRI labels and Docker is not involved (`no_docker`): a container reading
//! /etc/shadow raises an alert that names its pod, namespace, container and node;
//! recorded, `rampart query --where 'k8s.ns.name = …'` finds it and `rampart incident`
//! names the pod. Needs root, the kernel, containerd and ctr: skips with the reason elsewhere, fails
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
            "sensor:\n  no_docker: true\n  containerd_socket: {}\n  k8s_node: node-7\nrecorder: {{dir: {}}}\nscanner: {{enabled: false}}\nresponse: {{control_socket: null}}\noutputs: {{sinks: [{{type: stdout}}]}}\n",
            containerd.socket.display(),
            dir.path().join("recording").display()
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

    // From the recording: the pod's events by namespace, and the alert's bundle.
    let recording = dir.path().join("recording");
    let rampart = |args: &[&str]| -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .output()
            .expect("rampart runs");
        assert!(
            out.status.success(),
            "rampart {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dir_arg = recording.to_str().unwrap();
    let found = rampart(&[
        "query",
        "--dir",
        dir_arg,
        "--where",
        "k8s.ns.name = billing and k8s.node.name = node-7 and fd.name = /etc/shadow",
    ]);
    assert!(found.contains("/etc/shadow"), "{found}");
    let none = rampart(&[
        "query",
        "--dir",
        dir_arg,
        "--where",
        "k8s.ns.name = elsewhere and fd.name = /etc/shadow",
    ]);
    assert!(!none.contains("/etc/shadow"), "{none}");
    let alerts = rampart(&["query", "--dir", dir_arg, "--alerts", "--format", "json"]);
    let recorded = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|a| a.to_string().contains("payments-6f7c9d8b4-zx2lp"))
        .unwrap_or_else(|| panic!("the pod's alert is recorded:\n{alerts}"));
    let bundle = dir.path().join("incident.tar.gz");
    rampart(&[
        "incident",
        recorded["id"].as_str().unwrap(),
        "--dir",
        dir_arg,
        "-o",
        bundle.to_str().unwrap(),
    ]);
    let tar = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(&bundle)
        .args(["--wildcards", "*/summary.md"])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&tar.stdout);
    assert!(
        summary.contains("- Kubernetes: pod billing/payments-6f7c9d8b4-zx2lp, container api, Pod payments-6f7c9d8b4-zx2lp, node node-7"),
        "{summary}"
    );
}
