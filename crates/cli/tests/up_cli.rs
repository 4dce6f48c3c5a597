//! `rampart up` end to end: real sensor, rules from a file, alerts as JSON lines on
//! stdout, and SIGHUP reloads (a good file replaces the running set; a broken one is
//! refused and the running set stays). Needs root and the kernel: skips with the
//! reason elsewhere, fails in CI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

fn ready() -> bool {
    rampart_testbed::ready("rampart-test/busybox:latest")
}

enum Line {
    Out(String),
    Err(String),
}

struct Up {
    child: Child,
    lines: Receiver<Line>,
}

impl Up {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["up", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rampart starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Line::Out(l));
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[up] {l}");
                let _ = tx2.send(Line::Err(l));
            }
        });
        let up = Self { child, lines };
        up.wait_stderr("sensor, detection and outputs running");
        up
    }

    fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Line::Err(l)) if l.contains(needle) => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no {needle:?} on stderr"),
                Err(RecvTimeoutError::Disconnected) => panic!("rampart up exited"),
            }
        }
    }

    /// Alerts (rule names) written to stdout until `quiet` passes without output or
    /// `until` rule shows up.
    fn alerts_until(&self, until: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut rules = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(Line::Out(l)) => {
                    let v: serde_json::Value = serde_json::from_str(&l)
                        .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
                    let rule = v["rule"].as_str().unwrap_or_default().to_string();
                    let done = rule == until;
                    rules.push(rule);
                    if done {
                        return rules;
                    }
                }
                Ok(Line::Err(_)) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no alert of {until:?}; saw {rules:?}");
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill with a valid pid and signal.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "rampart up exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("rampart up did not stop on SIGTERM");
    }
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
            "rules: [{}]\nalerts:\n  aggregate_window_secs: 0\n  rate_per_rule: 0\n",
            rules.display()
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
            "rules: [{}]\nresponse:\n  policy: {}\nalerts:\n  aggregate_window_secs: 0\n  rate_per_rule: 0\n",
            rules.display(),
            policy.display()
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
