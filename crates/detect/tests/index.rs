//! The rule index (per kind, gated on proc.name / proc.exe / fd.name keys) never
//! drops a rule that matches: for every event of the recorded workload, the rules'
//! in-file tests and generated file events (deep, relative and odd paths), the
//! indexed result equals evaluating every rule's plan on its own.

use std::io::{BufRead, BufReader};

use rampart_detect::tests_format::build_event;
use rampart_detect::{load_files, EvalCtx, RuleSet};
use rampart_event::Event;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
const FALCO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/falco/falco_rules.yaml"
);
const WORKLOAD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../detect-e2e/benches/data/workload.jsonl.gz"
);

fn brute_force<'a>(set: &'a RuleSet, ev: &Event) -> Vec<&'a str> {
    let ctx = EvalCtx::new(ev);
    set.rules()
        .iter()
        .filter(|r| r.enabled && r.matches(&ctx))
        .map(|r| r.name.as_str())
        .collect()
}

fn generated() -> Vec<Event> {
    let deep = format!(
        "/{}/x",
        (0..20)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>()
            .join("/")
    );
    let paths = [
        "/etc/shadow",
        "/etc/ssh/ssh_host_rsa_key",
        "/root/.ssh/id_rsa",
        "/home/bob/.ssh/authorized_keys",
        "/etc/sudoers.d/x",
        "/etc/pam.d/sshd",
        "/etc/cron.daily/x",
        "/etc/crontab",
        "/proc/12/mem",
        "/proc/self/environ",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "/root/.bash_history",
        "/dev/shm/x",
        "/tmp/x",
        "/etc/ld.so.preload",
        "../../etc/shadow",
        "./id_rsa",
        "shadow",
        "/etc//shadow",
        "/etc/./ssh/../shadow",
        "/",
        "/etc",
        "/etc/",
        "/etcx/shadow",
        deep.as_str(),
        "/etc/letsencrypt/live/a/privkey1.pem",
        "/var/log/app/app.log",
        "/usr/lib/x86_64-linux-gnu/security/pam_x.so",
    ];
    let comms = ["cat", "bash", "sshd", "python3", "vi"];
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let comm = comms[i % comms.len()];
        for (kind, flags) in [
            ("file_open", 0),
            ("file_open", 577),
            ("file_open", 2),
            ("file_unlink", 0),
        ] {
            let snippet = serde_json::json!({
                "kind": kind,
                "process": {"comm": comm, "exe": format!("/usr/bin/{comm}"), "argv": [comm], "cwd": "/var/www/html"},
                "container": {"type": "container", "id": "0123456789ab0123456789ab", "name": "app", "image": "nginx:1", "image_repository": "nginx"},
                "data": {"path": p, "flags": flags, "ret": 3},
            });
            if let Ok(ev) = build_event(&snippet) {
                out.push(ev);
            }
        }
    }
    // Exec events for the literal gates on proc.exe, proc.exepath, proc.cwd and
    // proc.cmdline (arguments split across argv entries, odd cwd forms).
    let execs = [
        ("sh", "/bin/sh", vec!["sh", "-c", "/dev/shm/x"], "/"),
        ("x", "/dev/shm/x", vec!["/dev/shm/x"], "/"),
        ("x", "/dev/shm/x", vec!["./x"], "/dev/shm"),
        ("x", "/dev/shm/x", vec!["./x"], "/dev/shm/"),
        (
            "python3",
            "/usr/bin/python3",
            vec!["python3", "./run.py"],
            "/dev/shm",
        ),
        (
            "bash",
            "/bin/bash",
            vec!["bash", "-c", "history", "-c"],
            "/root",
        ),
        (
            "curl",
            "/usr/bin/curl",
            vec!["curl", "-o", "/tmp/x", "http://h/x"],
            "/tmp",
        ),
        (
            "xmrig",
            "/tmp/xmrig",
            vec!["xmrig", "--donate-level", "1"],
            "/tmp/",
        ),
        ("kworker/0:1", "/var/tmp/k", vec!["kworker/0:1"], "/var/tmp"),
        (
            "bash",
            "/bin/bash",
            vec!["bash", "-c", "LD_PRELOAD=/tmp/x.so id"],
            "/",
        ),
    ];
    for (comm, exe, argv, cwd) in execs {
        let snippet = serde_json::json!({
            "kind": "exec",
            "process": {"comm": comm, "exe": exe, "argv": argv, "cwd": cwd},
            "container": {"type": "container", "id": "0123456789ab0123456789ab", "name": "app", "image": "nginx:1", "image_repository": "nginx"},
            "data": {"filename": exe},
        });
        if let Ok(ev) = build_event(&snippet) {
            out.push(ev);
        }
    }
    out
}

#[test]
fn index_matches_brute_force() {
    let (set, errors) = load_files(&[FALCO, RULES]);
    assert!(errors.is_empty(), "{errors:?}");
    let mut events: Vec<Event> = set
        .rules()
        .iter()
        .flat_map(|r| r.tests.should_fire.iter().chain(&r.tests.should_not_fire))
        .filter_map(|s| build_event(s).ok())
        .collect();
    events.extend(generated());
    let f = std::fs::File::open(WORKLOAD).expect("recorded workload");
    for line in BufReader::new(flate2::read::GzDecoder::new(f)).lines() {
        let line = line.expect("gzip");
        if let Ok(ev) = serde_json::from_str::<Event>(&line) {
            events.push(ev);
        }
    }
    assert!(events.len() > 20_000, "{} events", events.len());
    let mut matched = 0;
    for ev in &events {
        let want = brute_force(&set, ev);
        // Conditions only: rules with a stateful detector (rate.rs) decide later.
        assert_eq!(set.matching_conditions(ev), want, "{ev:?}");
        matched += want.len();
    }
    assert!(matched > 300, "only {matched} matches");
}
