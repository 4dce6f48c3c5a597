//! The plugin against a real dockerd of the test's own (crates/testbed's Dockerd):
//! the policy's denials as the docker CLI sees them, dockerd failing closed while the
//! plugin is down, the break-glass deregistration, and fail_mode: open.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use rampart_authz::{daemon, ManagedPlugin, Policy, PLUGIN_SOCKET_DIR};
use rampart_testbed::dockerd::{dockerd_unavailable, Dockerd};
use rampart_testbed::{require, unavailable, TEST_IMAGE};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn policy(d: &Dockerd, extra: &str) -> Policy {
    let text = format!(
        "docker_host: {}\ndockerd_pidfile: {}\n{extra}deny:\n  exec_labels: {{rampart.io/production: \"true\"}}\n  privileged: true\n  host_namespaces: [pid, network, ipc]\n  bind_mounts: [/, /var/run/docker.sock, /etc]\n",
        d.host,
        d.pidfile.display()
    );
    Policy::parse(&text, Path::new("authz-test.yaml")).unwrap()
}

fn denied(o: &Output, name: &str, what: &str) {
    let t = text(o);
    assert!(!o.status.success(), "{what}: allowed: {t}");
    assert!(
        t.contains(&format!("authorization denied by plugin {name}")) && t.contains("rampart:"),
        "{what}: {t}"
    );
}

#[test]
fn a_real_dockerd_asks_the_plugin_and_fails_closed_without_it() {
    if !require(dockerd_unavailable().or_else(|| unavailable(TEST_IMAGE))) {
        return;
    }
    let name = format!("resp-authz-{}", std::process::id());
    let dir = Path::new(PLUGIN_SOCKET_DIR);
    // dockerd checks the plugin when it starts: the socket must answer first. The
    // engine to ask for labels is the test's dockerd, whose socket is known up front.
    let d0 = Dockerd::start("resp-authz", "{}").expect("dockerd");
    let plugin = ManagedPlugin::start(dir, &name, policy(&d0, "")).unwrap();
    assert!(daemon::set_registered(&d0.config, &name, true).unwrap());
    daemon::reload_dockerd(&d0.pidfile).unwrap();
    let d = d0;
    d.load_image(TEST_IMAGE).unwrap();
    let ok = |args: &[&str]| {
        let o = d.docker(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // The reload is asynchronous: wait until the plugin is asked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while plugin
        .handle()
        .unwrap()
        .counters()
        .allowed
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "dockerd never asked the plugin: {}",
            d.log_text()
        );
        ok(&["ps"]);
        std::thread::sleep(Duration::from_millis(100));
    }

    let run = |extra: &[&str]| {
        let mut a = vec!["run", "-d", "--network", "none"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&[TEST_IMAGE, "sleep", "300"]);
        d.docker(&a)
    };
    ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "resp-authz-prod",
        "--label",
        "rampart.io/production=true",
        TEST_IMAGE,
        "sleep",
        "300",
    ]);
    ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "resp-authz-dev",
        "--label",
        "rampart.io/production=false",
        TEST_IMAGE,
        "sleep",
        "300",
    ]);
    denied(
        &d.docker(&["exec", "resp-authz-prod", "true"]),
        &name,
        "exec into production",
    );
    assert_eq!(ok(&["exec", "resp-authz-dev", "echo", "hello"]), "hello");
    denied(
        &d.docker(&["exec", "--privileged", "resp-authz-dev", "true"]),
        &name,
        "privileged exec",
    );
    denied(&run(&["--privileged"]), &name, "--privileged");
    denied(&run(&["--pid", "host"]), &name, "--pid host");
    denied(
        &d.docker(&["run", "-d", "--network", "host", TEST_IMAGE, "true"]),
        &name,
        "--network host",
    );
    denied(&run(&["--ipc", "host"]), &name, "--ipc host");
    denied(&run(&["-v", "/:/host:ro"]), &name, "-v /");
    denied(
        &run(&["-v", "/var/run/docker.sock:/s"]),
        &name,
        "-v docker.sock",
    );
    denied(
        &run(&["-v", "/run/docker.sock:/s"]),
        &name,
        "-v /run/docker.sock",
    );
    denied(&run(&["-v", "/etc/shadow:/s:ro"]), &name, "-v /etc/shadow");
    denied(
        &run(&["--mount", "type=bind,src=/etc,dst=/e"]),
        &name,
        "--mount /etc",
    );
    denied(
        &run(&["-v", "/var:/v"]),
        &name,
        "-v /var (contains docker.sock)",
    );
    // Everything else is allowed.
    let tmp = tempfile::tempdir().unwrap();
    let allowed = run(&[
        "--cap-add",
        "NET_ADMIN",
        "-v",
        &format!("{}:/data", tmp.path().display()),
    ]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    let counters = plugin.handle().unwrap().counters();
    assert!(counters.denied.load(std::sync::atomic::Ordering::Relaxed) >= 12);

    // Fail closed: with the plugin gone, dockerd refuses every call (after retrying).
    drop(plugin);
    let t0 = Instant::now();
    let o = d.docker(&["ps"]);
    let waited = t0.elapsed();
    let t = text(&o);
    assert!(
        !o.status.success(),
        "dockerd answered without its plugin: {t}"
    );
    assert!(t.contains(&name), "{t}");
    eprintln!(
        "fail closed: `docker ps` refused after {waited:?}: {}",
        t.trim()
    );

    // Break glass: out of daemon.json, SIGHUP, and Docker answers again.
    assert!(daemon::set_registered(&d.config, &name, false).unwrap());
    daemon::reload_dockerd(&d.pidfile).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.docker(&["ps"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "still locked out after break-glass: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // fail_mode: open: the plugin registers itself while it runs and leaves on stop.
    let open = format!("fail_mode: open\ndaemon_config: {}\n", d.config.display());
    let plugin = ManagedPlugin::start(dir, &name, policy(&d, &open)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = d.docker(&["exec", "resp-authz-prod", "true"]);
        if !o.status.success() {
            denied(
                &o,
                &name,
                "exec into production, registered by fail_mode open",
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the self-registration never took effect"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    plugin.stop().unwrap();
    let t0 = Instant::now();
    assert_eq!(ok(&["exec", "resp-authz-prod", "echo", "open"]), "open");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "fail open took {:?}",
        t0.elapsed()
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&d.config).unwrap()).unwrap();
    assert!(v.get("authorization-plugins").is_none(), "{v}");

    let _ = d.docker(&["rm", "-f", "resp-authz-prod", "resp-authz-dev"]);
    let ids = ok(&["ps", "-aq"]);
    for id in ids.lines() {
        let _ = d.docker(&["rm", "-f", id]);
    }
}
