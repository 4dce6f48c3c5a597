//! Response latency end to end: from the kernel event that triggers a rule to the
//! action completed (process dead, container frozen), with the real sensor, rules and
//! response stage of `rampart up` in its own process, against real containers.
//!
//! Each trial is an exec in a container (a loop runs `/tmp/rbk/sleep 30` or
//! `/tmp/rbf/true` every 0.1 s or 0.3 s); a rule fires on it and the response policy kills
//! the process or freezes the container in enforce mode. The audit alert `rampart up`
//! writes carries the trigger's kernel timestamp (`trigger_ts_ns`, the event's) and
//! the moment the effect was confirmed (`completed_ns`: the pidfd readable, the
//! cgroup reporting frozen); their difference is one sample. After a freeze the bench
//! thaws the container so the loop runs the next trial. Containers are `resp-bench-*`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::Percentiles;

pub struct ResponseOptions {
    /// The `rampart` binary to run `up` with.
    pub rampart: PathBuf,
    pub trials: usize,
    /// Busybox image (must exist locally).
    pub image: String,
}

#[derive(Debug, Serialize, Default)]
pub struct ResponseReport {
    /// Kernel event -> process dead.
    pub kill: Option<Percentiles>,
    /// Kernel event -> container frozen.
    pub freeze: Option<Percentiles>,
    /// Of those, kernel event -> the responder's decision (sensor, rules, pipeline).
    pub kill_decided: Option<Percentiles>,
    pub freeze_decided: Option<Percentiles>,
    /// And decision -> action completed (the act and its confirmation).
    pub kill_act: Option<Percentiles>,
    pub freeze_act: Option<Percentiles>,
    /// Actions that did not complete (failed, refused, rate limited).
    pub failures: u64,
}

const RULES: &str = r#"
- rule: Bench kill trigger
  desc: response bench; a process the policy kills
  condition: evt.type in (execve, execveat) and proc.exe startswith "/tmp/rbk/"
  output: bench kill (command=%proc.cmdline container=%container.name)
  priority: CRITICAL
  tags: [bench]
- rule: Bench freeze trigger
  desc: response bench; a container the policy freezes
  condition: evt.type in (execve, execveat) and proc.exe startswith "/tmp/rbf/"
  output: bench freeze (command=%proc.cmdline container=%container.name)
  priority: CRITICAL
  tags: [bench]
"#;

const POLICY: &str = r#"
scope: {names: ["resp-bench-*"]}
rate_limit:
  per_container: {count: 1000000, seconds: 1}
  global: {count: 1000000, seconds: 1}
responses:
  - {name: kill, when: {rules: ["Bench kill trigger"]}, action: kill, mode: enforce}
  - {name: freeze, when: {rules: ["Bench freeze trigger"]}, action: freeze, mode: enforce}
"#;

fn docker(args: &[&str]) -> Result<String, String> {
    let o = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// A container removed on drop.
struct Bench(String);
impl Drop for Bench {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

/// `pause`: seconds between trials, longer than a trial takes, so one trigger's
/// action lands before the next trigger (a freeze queued behind another would
/// measure the queue, not the response).
fn start(
    name: &str,
    image: &str,
    dir: &str,
    cmd: &str,
    pause: &str,
) -> Result<(Bench, String), String> {
    let _ = docker(&["rm", "-f", name]);
    // Waits for /tmp/go, so no trial runs before rampart watches.
    let script = format!(
        "mkdir -p {dir} && cp /bin/busybox {dir}/sleep && cp /bin/busybox {dir}/true && \
         while [ ! -e /tmp/go ]; do sleep 0.1; done; while :; do {dir}/{cmd}; sleep {pause}; done"
    );
    let id = docker(&["run", "-d", "--name", name, image, "sh", "-c", &script])?;
    Ok((Bench(name.to_string()), id))
}

/// Samples (µs) of one action: event -> completed, event -> decided, decided ->
/// completed.
#[derive(Default)]
struct Samples {
    total: Vec<u64>,
    decided: Vec<u64>,
    act: Vec<u64>,
}

/// Samples of one action from the audit alerts on `lines`, until `n` or a timeout;
/// `after` runs after each (thaw).
fn collect(
    lines: &mpsc::Receiver<String>,
    action: &str,
    n: usize,
    failures: &mut u64,
    mut after: impl FnMut() -> Result<(), String>,
) -> Result<Samples, String> {
    let mut samples = Samples::default();
    let us = &mut samples.total;
    let deadline = Instant::now() + Duration::from_secs(60 + n as u64 / 2);
    while us.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{action}: only {} of {n} trials in time", us.len()));
        }
        let Ok(line) = lines.recv_timeout(left) else {
            return Err(format!(
                "{action}: rampart up stopped after {} trials",
                us.len()
            ));
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let f = &v["output_fields"];
        if v["source"] != "response" || f["response.action"] != action {
            continue;
        }
        match (
            f["response.result"].as_str(),
            f["response.trigger_ts_ns"].as_u64(),
            f["response.completed_ns"].as_u64(),
            f["response.ts_ns"].as_u64(),
        ) {
            (Some("done"), Some(t0), Some(t1), Some(td)) => {
                us.push(t1.saturating_sub(t0) / 1000);
                samples.decided.push(td.saturating_sub(t0) / 1000);
                samples.act.push(t1.saturating_sub(td) / 1000);
            }
            _ => *failures += 1,
        }
        after()?;
    }
    Ok(samples)
}

pub fn response(opts: &ResponseOptions) -> Result<ResponseReport, String> {
    let dir = std::env::temp_dir().join(format!("rampart-bench-response-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let write = |name: &str, body: &str| -> Result<PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    let rules = write("rules.yaml", RULES)?;
    let policy = write("policy.yaml", POLICY)?;
    let config = write(
        "up.yaml",
        &format!(
            "rules: [{}]\nsensor: {{kinds: [process]}}\nalerts: {{aggregate_window_secs: 0, rate_per_rule: 0}}\nrecorder: {{enabled: false}}\nresponse: {{policy: {}, control_socket: null}}\n",
            rules.display(),
            policy.display()
        ),
    )?;
    let result = run(opts, &config);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(opts: &ResponseOptions, config: &Path) -> Result<ResponseReport, String> {
    let (_k, _) = start(
        "resp-bench-kill",
        &opts.image,
        "/tmp/rbk",
        "sleep 30",
        "0.1",
    )?;
    let (_f, freeze_id) = start("resp-bench-freeze", &opts.image, "/tmp/rbf", "true", "0.3")?;
    let mut up = Command::new(&opts.rampart)
        .args(["up", "--log", "warn,rampart_agent=info", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting rampart up: {e}"))?;
    let (tx, lines) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    if let Some(out) = up.stdout.take() {
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    if let Some(err) = up.stderr.take() {
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if l.contains("sensor, detection and outputs running") {
                    let _ = ready_tx.send(());
                }
            }
        });
    }
    let result = (|| {
        ready
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "rampart up did not start".to_string())?;
        let mut report = ResponseReport::default();
        docker(&["exec", "resp-bench-kill", "touch", "/tmp/go"])?;
        let kill = collect(&lines, "kill", opts.trials, &mut report.failures, || Ok(()))?;
        docker(&["rm", "-f", "resp-bench-kill"])?;
        let cg = rampart_respond::target::ContainerCgroups::find(&freeze_id, None);
        let thaw = rampart_respond::freeze::Freeze {
            method: rampart_respond::freeze::FreezeMethod::Auto,
            toolbox: rampart_respond::Toolbox::new(),
        };
        let target = rampart_respond::Target {
            container_id: freeze_id.clone(),
            container_name: "resp-bench-freeze".into(),
            ..Default::default()
        };
        docker(&["exec", "resp-bench-freeze", "touch", "/tmp/go"])?;
        let freeze = collect(&lines, "freeze", opts.trials, &mut report.failures, || {
            use rampart_respond::Action;
            // A second trigger can be in flight (the loop ran again before the
            // freeze landed): its freeze may come after this thaw, so thaw until
            // the container stays thawed.
            let mut last = String::new();
            for _ in 0..5 {
                match thaw.undo(&target, rampart_respond::Mode::Enforce) {
                    Ok(_) if !rampart_respond::freeze::is_frozen(&cg) => return Ok(()),
                    Ok(_) => last = "still frozen after the thaw".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            Err(format!("thawing: {last}"))
        })?;
        report.kill = Percentiles::of(kill.total);
        report.kill_decided = Percentiles::of(kill.decided);
        report.kill_act = Percentiles::of(kill.act);
        report.freeze = Percentiles::of(freeze.total);
        report.freeze_decided = Percentiles::of(freeze.decided);
        report.freeze_act = Percentiles::of(freeze.act);
        Ok(report)
    })();
    // SAFETY: kill with the child's pid and SIGTERM.
    unsafe { libc::kill(up.id() as i32, libc::SIGTERM) };
    let _ = up.wait();
    result
}
