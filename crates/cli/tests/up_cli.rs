//! `rampart up` end to end: real sensor, rules from a file, alerts as JSON lines on
//! stdout, and SIGHUP reloads (a good file replaces the running set; a broken one is
//! refused and the running set stays). Needs root and the kernel: skips with the
//! reason elsewhere, fails in CI.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::Up;

fn ready() -> bool {
    rampart_testbed::ready("rampart-test/busybox:latest")
}

fn rule(name: &str, path: &Path) -> String {
    format!(
        "- rule: {name}\n  desc: test marker\n  condition: evt.type in (open, openat) and fd.name = {}\n  output: marker opened %fd.name\n  priority: WARNING\n  tags: [test]\n",
        path.display()
    )
}

fn touch(p: &Path) {
    std::fs::write(p, b"x").unwrap();
}

#[test]
fn sighup_reload_replaces_rules_and_refuses_broken_files() {
    if !ready() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rampart-up-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b, sentinel) = (dir.join("a"), dir.join("b"), dir.join("sentinel"));
    let rules: PathBuf = dir.join("rules.yaml");
    std::fs::write(&rules, rule("marker-a", &a) + &rule("sentinel", &sentinel)).unwrap();
    let config = dir.join("up.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [{}]\nrecorder:\n  dir: {}\nalerts:\n  aggregate_window_secs: 0\n  rate_per_rule: 0\n",
            rules.display(),
            dir.join("recording").display()
        ),
    )
    .unwrap();

    let up = Up::start(&config);
    touch(&a);
    assert!(up
        .alerts_until("marker-a")
        .contains(&"marker-a".to_string()));

    // Replace marker-a by marker-b, reload.
    std::fs::write(&rules, rule("marker-b", &b) + &rule("sentinel", &sentinel)).unwrap();
    up.signal(libc::SIGHUP);
    up.wait_stderr("rules reloaded");
    touch(&a);
    touch(&b);
    touch(&sentinel);
    let seen = up.alerts_until("sentinel");
    assert!(seen.contains(&"marker-b".to_string()), "{seen:?}");
    assert!(
        !seen.contains(&"marker-a".to_string()),
        "removed rule still fires: {seen:?}"
    );

    // A broken file is refused, and the running set (marker-b) keeps working.
    std::fs::write(&rules, "- rule: broken\n  condition: evt.type = (\n").unwrap();
    up.signal(libc::SIGHUP);
    up.wait_stderr("rules reload refused");
    touch(&b);
    touch(&sentinel);
    let seen = up.alerts_until("sentinel");
    assert!(seen.contains(&"marker-b".to_string()), "{seen:?}");
    up.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A response policy in enforce mode: a shell whose start matches a critical rule is
/// killed with its children before its next command runs, and the action comes out
/// as an audit alert beside the alert that caused it.
#[test]
fn an_enforced_kill_stops_a_shell_before_its_next_command_and_is_audited() {
    if !ready() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("rampart-up-respond-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "rampart-up-respond";
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "- rule: stage one\n  desc: test marker\n  condition: evt.type in (execve, execveat) and proc.args contains rampart-stage-one\n  output: stage one %proc.cmdline\n  priority: CRITICAL\n  tags: [test]\n",
    )
    .unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "scope:\n  names: [{name}]\nresponses:\n  - name: stop-stage-two\n    when: {{rules: [stage one]}}\n    action: kill_tree\n    mode: enforce\n"
        ),
    )
    .unwrap();
    let config = dir.join("up.yaml");
    std::fs::write(
        &config,
        format!(
            "rules: [{}]\nresponse:\n  policy: {}\nrecorder:\n  dir: {}\nalerts:\n  aggregate_window_secs: 0\n  rate_per_rule: 0\n",
            rules.display(),
            policy.display(),
            dir.join("recording").display()
        ),
    )
    .unwrap();
    let container = rampart_testbed::TestContainer::start(name, &[], &[]);
    let up = Up::start(&config);
    container.exec(": rampart-stage-one; sleep 3; touch /tmp/stage-two");
    let seen = up.alerts_until("Response kill");
    assert!(seen.contains(&"stage one".to_string()), "{seen:?}");
    std::thread::sleep(Duration::from_secs(4));
    let listing = container.exec("ls /tmp");
    assert!(
        !listing.contains("stage-two"),
        "the second command ran: {listing}"
    );
    up.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
