//! Engine behaviour: aggregation, rate limits, atomic reload.

use rampart_detect::tests_format::build_event;
use rampart_detect::{load_texts, NoiseConfig, RuleEngine};
use rampart_event::Event;
use serde_json::json;

const RULES: &str = "- rule: Shell\n  desc: d\n  condition: evt.type = execve and proc.name = bash\n  output: shell %proc.cmdline in %container.id\n  priority: WARNING\n  tags: [mitre_execution, T1059.004]\n";

fn shell(ts_s: u64, parent: &str, container: &str) -> Event {
    let mut e = build_event(&json!({
        "kind": "exec",
        "process": {"comm": "bash", "exe": "/bin/bash", "argv": ["bash", "-i"], "ancestry": [{"exe": parent}]},
        "container": {"type": "container", "id": container},
    }))
    .unwrap();
    e.ts_ns = ts_s * 1_000_000_000;
    e
}

fn engine(cfg: NoiseConfig) -> RuleEngine {
    let (set, errors) = load_texts(&[("r.yaml".into(), RULES.into())]);
    assert!(errors.is_empty(), "{errors:?}");
    RuleEngine::from_ruleset(set, cfg, &["r.yaml"])
}

#[test]
fn identical_alerts_aggregate_with_a_count() {
    let e = engine(NoiseConfig {
        window_ns: 10_000_000_000,
        rate_per_sec: 0.0,
        burst: 0.0,
    });
    let first = e.evaluate(&shell(100, "/usr/sbin/sshd", "c1"));
    assert_eq!(first.len(), 1, "first alert is delivered at once");
    assert_eq!(first[0].count, 1);
    assert_eq!(first[0].message, "shell bash -i in c1");
    assert_eq!(first[0].mitre, ["T1059.004"]);
    for t in 101..105 {
        assert!(
            e.evaluate(&shell(t, "/usr/sbin/sshd", "c1")).is_empty(),
            "suppressed inside the window"
        );
    }
    // Another lineage or container is a different alert.
    assert_eq!(e.evaluate(&shell(105, "/usr/sbin/nginx", "c1")).len(), 1);
    assert_eq!(e.evaluate(&shell(105, "/usr/sbin/sshd", "c2")).len(), 1);
    assert!(e.flush(109_000_000_000).is_empty(), "window still open");
    let agg = e.flush(110_000_000_000);
    assert_eq!(agg.len(), 1);
    assert_eq!(agg[0].count, 4);
    assert_eq!(agg[0].first_ts_ns, 101_000_000_000);
    assert_eq!(agg[0].ts_ns, 104_000_000_000);
    assert_ne!(agg[0].id, first[0].id);
    // After the window, the next one is a fresh first alert.
    let again = e.evaluate(&shell(111, "/usr/sbin/sshd", "c1"));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].count, 1);
}

#[test]
fn window_closes_on_later_events_too() {
    let e = engine(NoiseConfig {
        window_ns: 10_000_000_000,
        rate_per_sec: 0.0,
        burst: 0.0,
    });
    e.evaluate(&shell(1, "/a", "c1"));
    e.evaluate(&shell(2, "/a", "c1"));
    let out = e.evaluate(&shell(30, "/a", "c1"));
    assert_eq!(
        out.iter().map(|a| a.count).collect::<Vec<_>>(),
        [1, 1],
        "aggregate of 1, then a new first alert"
    );
}

#[test]
fn per_rule_rate_limit_folds_the_excess_into_one_aggregate() {
    let e = engine(NoiseConfig {
        window_ns: 10_000_000_000,
        rate_per_sec: 1.0,
        burst: 2.0,
    });
    let mut delivered = 0;
    for i in 0..10 {
        delivered += e.evaluate(&shell(50, &format!("/p{i}"), "c1")).len();
    }
    assert_eq!(delivered, 2, "burst of 2");
    let agg = e.flush_all();
    assert_eq!(agg.len(), 1);
    assert_eq!(agg[0].count, 8);
    // Tokens refill with (event) time.
    assert_eq!(e.evaluate(&shell(53, "/q", "c1")).len(), 1);
}

#[test]
fn reload_is_atomic_and_a_bad_file_keeps_the_running_rules() {
    let dir = std::env::temp_dir().join(format!("rampart-detect-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    let bad = dir.join("bad.yaml");
    std::fs::write(&good, RULES).unwrap();
    std::fs::write(&bad, "- rule: Broken\n  desc: d\n  condition: proc.name = bash and (\n  output: o\n  priority: INFO\n").unwrap();
    let (engine, errors) = RuleEngine::load(&[&good]).unwrap();
    assert!(errors.is_empty());
    let err = engine.reload(&[&good, &bad]).unwrap_err();
    assert!(err.to_string().contains("bad.yaml:3:"), "{err}");
    assert_eq!(engine.ruleset().rules().len(), 1);
    assert_eq!(
        engine.evaluate(&shell(1, "/x", "c")).len(),
        1,
        "old rules still evaluate"
    );
    std::fs::write(
        &good,
        RULES.replace("Shell", "Shell2").replace("bash", "zsh"),
    )
    .unwrap();
    let set = engine.reload_same().unwrap();
    assert_eq!(set.rules()[0].name, "Shell2");
    assert!(
        engine.evaluate(&shell(100, "/x", "c")).is_empty(),
        "new rules in place"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A recorded event is history: `proc.env` beyond what the sensor kept is not read
/// from the live `/proc` (whatever holds the pid now is not the recorded process),
/// while the live path reads it. Here the pid and comm are this test's own, so the
/// live read finds an environment and the recorded one must not.
#[test]
fn recorded_events_do_not_read_the_live_environment() {
    let rules = "- rule: Env\n  desc: d\n  condition: evt.type = execve and proc.env contains \"PATH=\"\n  output: env\n  priority: WARNING\n";
    let (set, errors) = load_texts(&[("r.yaml".into(), rules.into())]);
    assert!(errors.is_empty(), "{errors:?}");
    let engine = RuleEngine::from_ruleset(set, NoiseConfig::default(), &["r.yaml"]);
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let ev = build_event(&json!({
        "kind": "exec",
        "process": {"pid": std::process::id(), "comm": comm.trim_end(), "exe": "/bin/x"},
    }))
    .unwrap();
    let set = engine.ruleset();
    let (mut live, mut recorded) = (Vec::new(), Vec::new());
    engine.match_rules(&set, &ev, &mut live);
    engine.match_recorded_rules(&set, &ev, &mut recorded);
    assert_eq!(live, [0], "the live path reads /proc/<pid>/environ");
    assert!(recorded.is_empty(), "{recorded:?}");
}

/// The filesystem probes look at today's files: on history they are unknown, in the
/// stateless match, the sequential evaluation and the output fields alike. Here a
/// virtual environment exists beside the recorded executable, so the live path
/// finds it.
#[test]
fn recorded_events_do_not_probe_the_live_filesystem() {
    let venv = tempfile::tempdir().unwrap();
    std::fs::create_dir(venv.path().join("bin")).unwrap();
    std::fs::write(venv.path().join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    let exe = venv.path().join("bin/python3");
    std::fs::write(&exe, b"").unwrap();
    let rules = "- rule: Venv\n  desc: d\n  condition: evt.type = execve and proc.is_exe_in_venv = true\n  output: venv=%proc.is_exe_in_venv\n  priority: WARNING\n";
    let (set, errors) = load_texts(&[("r.yaml".into(), rules.into())]);
    assert!(errors.is_empty(), "{errors:?}");
    let engine = RuleEngine::from_ruleset(set, NoiseConfig::default(), &["r.yaml"]);
    let ev = build_event(&json!({
        "kind": "exec",
        "process": {"pid": 999_999_999u32, "comm": "python3", "exe": exe.to_str().unwrap()},
    }))
    .unwrap();
    let set = engine.ruleset();
    let (mut live, mut recorded) = (Vec::new(), Vec::new());
    engine.match_rules(&set, &ev, &mut live);
    engine.match_recorded_rules(&set, &ev, &mut recorded);
    assert_eq!(live, [0], "the live path finds pyvenv.cfg");
    assert!(recorded.is_empty(), "{recorded:?}");
    assert!(engine.evaluate_recorded(&ev).is_empty());
    assert_eq!(engine.evaluate(&ev).len(), 1);
}
