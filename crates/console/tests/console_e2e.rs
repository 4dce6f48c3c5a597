//! The web console end to end: a real `rampart up` (sensor, detection, central in
//! SQLite, the API and the console on one TLS port), real containers, and Debian's
//! Chromium driven by playwright-core running `web/tests/console.e2e.mjs`.
//!
//! Before the start, the store is seeded with `RAMPART_CONSOLE_SEED` alerts (100,000 by
//! default) spread over the last 23 hours. The browser script logs in (a wrong token
//! is refused), asks this test to run `cat /etc/shadow` in a container and waits for
//! the alert in the list (live, no reload, within 5 s), opens it (process tree),
//! clicks freeze and confirms (this test then reads the container's cgroup freezer:
//! frozen, and the API must say the node did it), downloads the alert's incident bundle
//! from the server (401 without a token, 403 for a viewer; a tar.gz whose summary.md
//! names the rule), visits every page (screenshots and an axe-core check each), checks
//! the network page (the network stage is on: an edge between two containers that talk,
//! and a blocked one from a third whose workload is in protect mode), then times
//! loading and scrolling the 100k alerts (long tasks). Screenshots and `figures.json`
//! go to `target/console-e2e/`.
//!
//! Needs root, the kernel, Docker with the busybox test image, the `rampart` binary
//! (`cargo build -p rampart`; `RAMPART_BIN` names another), node with `web/`'s npm
//! packages (`scripts/build-console` runs `npm ci`) and `/usr/bin/chromium`
//! (`scripts/setup`): skips with the reason elsewhere, fails in CI.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_event::{Alert, Container, Event, OpenAccess, Payload, Priority, Process, Workload};
use rampart_store::{Ingest, SqliteStore, Store};

const IMAGE: &str = "rampart-test/busybox:latest";
const CHROMIUM: &str = "/usr/bin/chromium";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/debug/rampart` beside this test's own binary (`target/debug/deps/…`).
fn rampart_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("RAMPART_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("rampart");
    p.exists().then_some(p)
}

fn missing() -> Option<String> {
    if let Some(r) = rampart_testbed::unavailable(IMAGE) {
        return Some(r);
    }
    if rampart_bin().is_none() {
        return Some("the rampart binary is not built (cargo build -p rampart)".into());
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is missing (scripts/setup installs chromium)"
        ));
    }
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is missing (scripts/setup)".into());
    }
    let web = repo_root().join("web/node_modules");
    for pkg in ["playwright-core", "axe-core"] {
        if !web.join(pkg).exists() {
            return Some(format!(
                "web/node_modules/{pkg} is missing (scripts/build-console runs npm ci)"
            ));
        }
    }
    None
}

/// Alerts of a few real rules (with their MITRE ids and tactic tags), spread over the
/// last 23 hours, on five seed nodes.
fn seed(path: &Path, n: u64) {
    const RULES: [(&str, Priority, &str, &str); 6] = [
        (
            "Shadow file read in container or by untrusted program",
            Priority::Warning,
            "T1003.008",
            "mitre_credential_access",
        ),
        (
            "Terminal shell in container",
            Priority::Notice,
            "T1059.004",
            "mitre_execution",
        ),
        (
            "Outbound connection to C2 port",
            Priority::Critical,
            "T1571",
            "mitre_command_and_control",
        ),
        (
            "Crypto miner launched",
            Priority::Critical,
            "T1496",
            "mitre_impact",
        ),
        (
            "Package manager in container",
            Priority::Error,
            "T1105",
            "mitre_command_and_control",
        ),
        (
            "Container escape via mount",
            Priority::Alert,
            "T1611",
            "mitre_privilege_escalation",
        ),
    ];
    let store = SqliteStore::open(path).expect("the seed store opens");
    let now = rampart_event::wall_ns();
    let span = 23 * 3600 * 1_000_000_000u64;
    let mut i = 0;
    while i < n {
        let batch: Vec<Alert> = (i..(i + 5000).min(n))
            .map(|k| {
                let (rule, pri, mitre, tactic) = RULES[(k % 6) as usize];
                let ts = now - span + k * (span / n.max(1));
                let c = k % 300;
                Alert {
                    id: format!("{k:016x}-seed"),
                    ts_ns: ts,
                    first_ts_ns: ts,
                    count: 1,
                    rule: rule.into(),
                    priority: pri,
                    mitre: vec![mitre.into()],
                    tags: vec!["container".into(), tactic.into()],
                    message: format!("seeded alert {k} in seed-app-{c}"),
                    output_fields: Default::default(),
                    source: "syscall".into(),
                    retro: false,
                    event: Event {
                        schema: rampart_event::SCHEMA_VERSION,
                        ts_ns: ts,
                        host: "seed-node".into(),
                        seq: k,
                        process: Some(Arc::new(Process {
                            pid: (k % 30000) as u32 + 2,
                            tid: (k % 30000) as u32 + 2,
                            exe: "/bin/cat".into(),
                            argv: vec!["cat".into(), "/etc/shadow".into()],
                            comm: "cat".into(),
                            ..Default::default()
                        })),
                        container: Arc::new(Workload::Container(Container {
                            id: format!("5eed{c:04}{}", "0".repeat(56)),
                            name: format!("seed-app-{c}"),
                            image: format!("registry.local/seed-{}:1", c % 12),
                            metadata_complete: true,
                            ..Default::default()
                        })),
                        compat_syscall: false,
                        payload: Payload::FileOpen {
                            path: "/etc/shadow".into(),
                            path_raw: None,
                            flags: 0,
                            mode: 0,
                            access: OpenAccess::from_flags(0),
                            ret: 3,
                            repeats: 0,
                        },
                    },
                }
            })
            .collect();
        store
            .ingest(&Ingest {
                node: "seed-node",
                node_version: "seed",
                seen_ns: now - span,
                alerts: &batch,
                ..Ingest::default()
            })
            .expect("seeding the store");
        i += batch.len() as u64;
    }
    // A seed node's scan of one image as the image-scan stage reports it: a finding
    // from before its database update and one the update brought, each with the layer
    // (and Dockerfile instruction) that introduced its package.
    use rampart_event::fleet::{NodeReport, ScanReport, VulnFinding};
    let hour = 3600 * 1_000_000_000u64;
    let finding =
        |id: &str, package: &str, layer: u32, command: &str, first_seen_ns: u64| VulnFinding {
            id: id.into(),
            package: package.into(),
            version: "1.0-1".into(),
            ecosystem: "Debian:12".into(),
            fixed_version: Some("1.0-2".into()),
            severity: rampart_event::Severity::High,
            summary: format!("seeded {id}"),
            in_use: Some(true),
            layer: Some(format!("sha256:{:02x}{}", 0xa0 + layer, "0".repeat(62))),
            layer_index: Some(layer),
            layer_command: Some(command.into()),
            first_seen_ns,
            ..Default::default()
        };
    store
        .put_reports(
            "seed-node",
            &[NodeReport::Scan(ScanReport {
                ts_ns: now - hour,
                target: "container:5eed0000".into(),
                image: "registry.local/seed-0:1".into(),
                image_id: "sha256:5eed".into(),
                container_name: "seed-app-0".into(),
                packages: 120,
                db_updated_ns: now - 2 * hour,
                vulnerabilities: vec![
                    finding(
                        "CVE-2099-0001",
                        "openssl",
                        0,
                        "ADD rootfs.tar /",
                        now - 20 * hour,
                    ),
                    finding(
                        "CVE-2099-0002",
                        "libexpat1",
                        2,
                        "RUN apt-get install -y libexpat1",
                        now - hour,
                    ),
                ],
                ..Default::default()
            })],
        )
        .expect("seeding a scan report");
}

/// `rampart up` as a child, its stderr followed.
struct Up {
    child: Child,
    lines: Receiver<String>,
}

impl Up {
    fn start(bin: &Path, config: &Path, state: &Path) -> (Self, String) {
        let mut child = Command::new(bin)
            .args(["up", "--api-listen", "127.0.0.1:0", "--state-dir"])
            .arg(state)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rampart starts");
        let (tx, lines) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[up] {l}");
                let _ = tx.send(l);
            }
        });
        let up = Self { child, lines };
        let api = up.wait_for("rampart: API on https://");
        let addr = api
            .split("https://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("the API address")
            .trim_end_matches('/')
            .to_string();
        up.wait_for("sensor, detection and outputs running");
        (up, addr)
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.contains(needle) => return l,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no {needle:?} from rampart up"),
                Err(RecvTimeoutError::Disconnected) => panic!("rampart up exited"),
            }
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // SAFETY: kill with our child's pid and a valid signal.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn full_id(name: &str) -> String {
    rampart_testbed::docker(&["inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

/// Whether the container's cgroup is frozen, read from the cgroup files themselves
/// (v1 freezer, or v2 `cgroup.freeze` wherever Docker put the container), and which
/// file said so.
fn cgroup_frozen(id: &str) -> (bool, Vec<String>) {
    let mut seen = Vec::new();
    let mut frozen = false;
    let v1 = format!("/sys/fs/cgroup/freezer/docker/{id}/freezer.state");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        frozen |= s.trim() == "FROZEN";
        seen.push(format!("{v1}={}", s.trim()));
    }
    for dir in [
        format!("/sys/fs/cgroup/unified/docker/{id}"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
        format!("/sys/fs/cgroup/docker/{id}"),
    ] {
        let f = format!("{dir}/cgroup.freeze");
        if let Ok(s) = std::fs::read_to_string(&f) {
            frozen |= s.trim() == "1";
            seen.push(format!("{f}={}", s.trim()));
        }
    }
    (frozen, seen)
}

struct Containers(Vec<String>);
impl Drop for Containers {
    fn drop(&mut self) {
        for name in &self.0 {
            // No panic here (a drop during a failed test's unwinding would abort).
            let id = Command::new("docker")
                .args(["inspect", "-f", "{{.Id}}", name])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            if id.is_empty() {
                rampart_testbed::remove_container(name);
                continue;
            }
            // A frozen container cannot be removed: thaw it first.
            let v1 = format!("/sys/fs/cgroup/freezer/docker/{id}/freezer.state");
            let _ = std::fs::write(v1, "THAWED");
            for f in [
                format!("/sys/fs/cgroup/unified/docker/{id}/cgroup.freeze"),
                format!("/sys/fs/cgroup/system.slice/docker-{id}.scope/cgroup.freeze"),
            ] {
                let _ = std::fs::write(f, "0");
            }
            rampart_testbed::remove_container(name);
        }
    }
}

#[test]
fn the_console_in_chromium_against_rampart_up() {
    if !rampart_testbed::require(missing()) {
        return;
    }
    let bin = rampart_bin().unwrap();
    let seeded: u64 = std::env::var("RAMPART_CONSOLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let t = Instant::now();
    seed(&state.join("central.sqlite"), seeded);
    eprintln!("seeded {seeded} alerts in {:?}", t.elapsed());
    let pid = std::process::id();
    let attacked = format!("console-attack-{pid}");
    let gone = format!("console-gone-{pid}");
    let net_a = format!("console-net-a-{pid}");
    let net_b = format!("console-net-b-{pid}");
    let net_c = format!("console-net-c-{pid}");

    // The network stage on, with its state here; the third container's workload is in
    // protect mode with an empty baseline, so each of its connects is refused in the
    // kernel (a blocked edge).
    let network = dir.path().join("network");
    std::fs::create_dir_all(&network).unwrap();
    std::fs::write(
        network.join("baselines.yaml"),
        format!("workloads:\n  label:{net_c}:\n    mode: protect\n"),
    )
    .unwrap();
    let config = dir.path().join("up.yaml");
    std::fs::write(
        &config,
        format!(
            // A control socket of its own: the API's response actions go through it,
            // and another test's node may hold the default one.
            "recorder:\n  dir: {}\nalerts:\n  aggregate_window_secs: 0\nresponse:\n  control_socket: {}\nnetwork:\n  state_dir: {}\n",
            dir.path().join("recording").display(),
            dir.path().join("control.sock").display(),
            network.display()
        ),
    )
    .unwrap();
    // A viewer's token, issued before the start (the server reads its token file then).
    let viewer = format!("rmp_console_viewer_{pid}_{}", rampart_event::wall_ns());
    let digest = ring::digest::digest(&ring::digest::SHA256, viewer.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(
        state.join("api-tokens"),
        format!("{{\"name\":\"console-viewer\",\"role\":\"viewer\",\"sha256\":\"{hex}\"}}\n"),
    )
    .unwrap();
    let (up, addr) = Up::start(&bin, &config, &state);
    let token = std::fs::read_to_string(state.join("admin-token"))
        .unwrap()
        .trim()
        .to_string();

    // A container that comes and goes (the inventory keeps it), the attacked one, and
    // two that talk to each other over the bridge.
    let _ = rampart_testbed::TestContainer::start(&gone, &[], &["true"]);
    let _attacked = rampart_testbed::TestContainer::start(&attacked, &[], &[]);
    // Each its own workload (`label:<name>`): the graph names them.
    let label = |n: &str| format!("rampart.workload={n}");
    let (la, lb, lc) = (label(&net_a), label(&net_b), label(&net_c));
    let _a = rampart_testbed::TestContainer::start(
        &net_a,
        &["--label", &la],
        &["httpd", "-f", "-p", "8080"],
    );
    let a_ip =
        rampart_testbed::docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &net_a])
            .trim()
            .to_string();
    let fetch_loop =
        format!("while true; do wget -q -O /dev/null http://{a_ip}:8080/ ; sleep 1; done");
    let _b = rampart_testbed::TestContainer::start(
        &net_b,
        &["--label", &lb],
        &["sh", "-c", &fetch_loop],
    );
    let _c = rampart_testbed::TestContainer::start(
        &net_c,
        &["--label", &lc],
        &["sh", "-c", &fetch_loop],
    );
    // Declared last, so dropped first: thaws the attacked container before the
    // TestContainers above remove theirs.
    let _cleanup = Containers(vec![
        attacked.clone(),
        gone.clone(),
        net_a.clone(),
        net_b.clone(),
        net_c.clone(),
    ]);

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/console-e2e")
        .canonicalize()
        .unwrap_or_else(|_| {
            let p = repo_root().join("target/console-e2e");
            std::fs::create_dir_all(&p).unwrap();
            p
        });
    std::fs::create_dir_all(&artifacts).unwrap();
    // Chromium abandons a page load when the host's interfaces or addresses change, and
    // the containers just started still get their veths' IPv6 link-local addresses
    // (after duplicate address detection, a second or two later).
    wait_for_host_network_to_settle();
    let mut node = Command::new("node")
        .arg(repo_root().join("web/tests/console.e2e.mjs"))
        .current_dir(repo_root().join("web"))
        .env("RAMPART_URL", format!("https://{addr}"))
        .env("RAMPART_TOKEN", &token)
        .env("RAMPART_VIEWER_TOKEN", &viewer)
        .env("RAMPART_CONTAINER", &attacked)
        .env("RAMPART_SEEDED", seeded.to_string())
        .env("RAMPART_ARTIFACTS", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts");
    // A browser script that hangs must not hang the suite.
    let node_pid = node.id() as i32;
    let (finished, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if watchdog.recv_timeout(Duration::from_secs(600)).is_err() {
            eprintln!("the browser script ran for 10 minutes: killed");
            // SAFETY: kill with our child's pid and a valid signal.
            unsafe { libc::kill(node_pid, libc::SIGKILL) };
        }
    });
    let mut to_node = node.stdin.take().unwrap();
    let from_node = BufReader::new(node.stdout.take().unwrap());
    let mut figures = Vec::new();
    let mut done = false;
    for line in from_node.lines().map_while(Result::ok) {
        eprintln!("[browser] {line}");
        if let Some(f) = line.strip_prefix("@@figure ") {
            figures.push(f.to_string());
        } else if line.starts_with("@@done") {
            done = true;
        } else if let Some(ask) = line.strip_prefix("@@ask ") {
            let step = ask.split_whitespace().next().unwrap_or_default();
            let answer = match step {
                "attack" => {
                    let out = Command::new("docker")
                        .args(["exec", &attacked, "cat", "/etc/shadow"])
                        .output()
                        .unwrap();
                    assert!(out.status.success(), "the attack ran");
                    serde_json::json!({ "ok": true })
                }
                "freeze" => {
                    // The freeze is asked of the node through the API: give it a moment.
                    let id = full_id(&attacked);
                    let deadline = Instant::now() + Duration::from_secs(3);
                    let (mut frozen, mut seen) = cgroup_frozen(&id);
                    while !frozen && ask.contains("\"done\"") && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                        (frozen, seen) = cgroup_frozen(&id);
                    }
                    assert!(!seen.is_empty(), "no freezer file found for container {id}");
                    serde_json::json!({ "frozen": frozen, "files": seen })
                }
                "network" => serde_json::json!({ "a": net_a, "b": net_b, "c": net_c }),
                other => panic!("the browser script asked for {other:?}"),
            };
            writeln!(to_node, "{answer}").unwrap();
            to_node.flush().unwrap();
        }
    }
    let status = node.wait().unwrap();
    let _ = finished.send(());
    eprintln!("console figures:\n  {}", figures.join("\n  "));
    eprintln!("screenshots: {}", artifacts.display());
    assert!(
        status.success() && done,
        "the browser script failed ({status}); see its output above and {}",
        artifacts.display()
    );
    drop(up);
}

/// Waits (15 s at most) until the host's links and IPv6 addresses have not changed for
/// 1.5 s.
fn wait_for_host_network_to_settle() {
    let snapshot = || {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        // Link names with their state, and every IPv6 address with its flags.
        let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let state = read(&format!("/sys/class/net/{name}/operstate"));
                        format!("{name}:{}", state.trim())
                    })
                    .collect()
            })
            .unwrap_or_default();
        links.sort();
        let mut addrs: Vec<String> = read("/proc/net/if_inet6")
            .lines()
            .map(str::to_string)
            .collect();
        addrs.sort();
        (links, addrs)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = snapshot();
    let mut stable_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = snapshot();
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if stable_since.elapsed() >= Duration::from_millis(1500) {
            return;
        }
    }
    eprintln!("the host's network was still changing after 15 s; the browser starts anyway");
}
