//! `rampart respond` end to end against real containers: through a running
//! `rampart up` (its control socket, root only by mode and by SO_PEERCRED) and
//! directly when no node runs; every action is audited with the operator, their uid
//! and reason, in the alert outputs and the flight recorder.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rampart_testbed::{TestContainer, TEST_IMAGE};
use support::Up;

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("SUDO_USER", "alice")
        .output()
        .expect("rampart runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn frozen(c: &TestContainer) -> bool {
    rampart_respond::freeze::is_frozen(&rampart_respond::target::ContainerCgroups::find(
        &c.id, None,
    ))
}

fn running(c: &TestContainer) -> bool {
    rampart_testbed::docker(&["inspect", "-f", "{{.State.Running}}", &c.name]) == "true"
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The recorded audit alerts of a container.
fn recorded(dir: &Path, container: &str) -> Vec<serde_json::Value> {
    let o = rampart(&[
        "query",
        "--dir",
        dir.to_str().unwrap(),
        "--container",
        container,
        "--alerts",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["source"] == "response")
        .collect()
}

#[test]
fn manual_response_through_the_node_and_directly_is_audited() {
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("recording");
    let socket = dir.path().join("control.sock");
    let config = dir.path().join("up.yaml");
    std::fs::write(
        &config,
        format!(
            "sensor: {{kinds: [process]}}\nrecorder:\n  dir: {}\nresponse:\n  control_socket: {}\n",
            recording.display(),
            socket.display()
        ),
    )
    .unwrap();
    let a = TestContainer::start("resp-cli-a", &[], &[]);
    let b = TestContainer::start("resp-cli-b", &[], &[]);
    let sock = socket.to_str().unwrap();
    let cfg = config.to_str().unwrap();

    let up = Up::start(&config);
    let mode = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    // Through the node.
    let o = rampart(&[
        "respond",
        "freeze",
        "resp-cli-a",
        "--reason",
        "suspicious miner",
        "--socket",
        sock,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("done by the running node"),
        "{}",
        text(&o)
    );
    assert!(frozen(&a));
    up.alerts_until("Response freeze");
    let o = rampart(&[
        "respond",
        "unfreeze",
        "resp-cli-a",
        "--reason",
        "false positive",
        "--socket",
        sock,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!frozen(&a));
    up.alerts_until("Response unfreeze");
    let o = rampart(&[
        "respond",
        "kill",
        "resp-cli-a",
        "--reason",
        "reverse shell",
        "--socket",
        sock,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    wait_until("the killed container to exit", || !running(&a));
    up.alerts_until("Response kill");
    // Root only: even with the file mode opened up, the peer's uid decides.
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "respond",
            "freeze",
            "resp-cli-b",
            "--reason",
            "x",
            "--socket",
            sock,
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("uid 65534 is not root"), "{}", text(&o));
    assert!(!frozen(&b));
    up.stop();

    // Directly: no node listens; the audit goes to the same recorder and outputs.
    let o = rampart(&[
        "respond",
        "freeze",
        "resp-cli-b",
        "--reason",
        "node down",
        "--socket",
        sock,
        "--config",
        cfg,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("done directly"), "{}", text(&o));
    assert!(frozen(&b));
    let out: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .expect("the audit alert on stdout"),
    )
    .unwrap();
    assert_eq!(out["rule"], "Response freeze");
    assert_eq!(out["output_fields"]["response.reason"], "node down");
    // release --all thaws what rampart froze.
    let o = rampart(&[
        "respond",
        "release",
        "--all",
        "--reason",
        "incident closed",
        "--socket",
        sock,
        "--config",
        cfg,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!frozen(&b), "release --all left it frozen: {}", text(&o));

    // The flight recorder has every manual action, with who and why.
    let rec_a = recorded(&recording, "resp-cli-a");
    let verbs: Vec<&str> = rec_a
        .iter()
        .filter_map(|v| v["output_fields"]["response.action"].as_str())
        .collect();
    assert_eq!(verbs, ["freeze", "unfreeze", "kill"], "{rec_a:#?}");
    for v in &rec_a {
        let f = &v["output_fields"];
        assert_eq!(f["response.actor"]["type"], "operator", "{v}");
        assert_eq!(f["response.actor"]["name"], "alice (uid 0)", "{v}");
        assert_eq!(f["response.result"], "done", "{v}");
    }
    assert_eq!(
        rec_a[2]["output_fields"]["response.reason"],
        "reverse shell"
    );
    let rec_b = recorded(&recording, "resp-cli-b");
    let verbs: Vec<&str> = rec_b
        .iter()
        .filter_map(|v| v["output_fields"]["response.action"].as_str())
        .collect();
    assert!(verbs.starts_with(&["freeze", "unfreeze"]), "{rec_b:#?}");
}

#[test]
fn rules_marked_kill_kill_in_the_kernel_or_from_user_space() {
    if !rampart_testbed::ready(TEST_IMAGE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("kill.yaml");
    std::fs::write(
        &rules,
        "- rule: Dropped tool run\n  desc: d\n  condition: evt.type in (execve, execveat) and proc.exe = /tmp/kx/busybox\n  output: dropped (%proc.cmdline)\n  priority: CRITICAL\n  action: kill\n\
         - rule: Staged tool run\n  desc: d\n  condition: evt.type in (execve, execveat) and proc.exe startswith /tmp/u/\n  output: staged (%proc.cmdline)\n  priority: CRITICAL\n  action: kill\n\
         - rule: Secret opened\n  desc: d\n  condition: evt.type in (open, openat, openat2) and fd.name startswith /tmp/secret/\n  output: secret (%fd.name)\n  priority: CRITICAL\n  action: kill\n",
    )
    .unwrap();
    let config = dir.path().join("up.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [{}]\nsensor: {{kinds: [process]}}\nrecorder: {{enabled: false}}\nresponse: {{control_socket: null}}\n",
            rules.display()
        ),
    )
    .unwrap();
    let c = TestContainer::start("resp-cli-killrules", &[], &[]);
    c.exec("mkdir -p /tmp/kx /tmp/u /tmp/secret && cp /bin/busybox /tmp/kx/ && cp /bin/busybox /tmp/u/sleep && touch /tmp/secret/key");
    let up = Up::start(&config);
    let exec = |args: &[&str]| {
        let mut a = vec!["exec", "resp-cli-killrules"];
        a.extend_from_slice(args);
        Command::new("docker").args(&a).status().unwrap().code()
    };
    // In the kernel: the exec never runs its first instruction.
    assert_eq!(exec(&["/tmp/kx/busybox", "touch", "/tmp/m1"]), Some(137));
    // From user space: the alert arrives and the process is killed.
    let t0 = Instant::now();
    assert_eq!(exec(&["/tmp/u/sleep", "20"]), Some(137));
    assert!(t0.elapsed() < Duration::from_secs(10));
    // In the kernel: the open never returns (the shell's redirection opens the file,
    // its next command writes the marker).
    let open_secret = ["sh", "-c", "exec 3< /tmp/secret/key; touch /tmp/m2"];
    assert_eq!(exec(&open_secret), Some(137));
    let listing = c.exec("ls /tmp");
    assert!(
        !listing.contains("m1") && !listing.contains("m2"),
        "{listing}"
    );
    // Two kills audited: the kernel's (the exec rule's alert) and user space's.
    up.alerts_until("Response kill");
    up.alerts_until("Response kill");
    up.stop();
    // The kernel kills are lifted with the node.
    assert_eq!(exec(&["/tmp/kx/busybox", "true"]), Some(0));
    assert_eq!(exec(&open_secret), Some(0));
}
