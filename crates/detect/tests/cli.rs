//! `rampart rules …` exit codes on real files.

use rampart_detect::cli::{run, RulesCommand};
use std::path::PathBuf;

fn example() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/example_rules.yaml"
    ))
}

fn falco(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/falco/"
    ))
    .join(name)
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-detect-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn rule_tests_in_the_example_file_pass() {
    assert_eq!(
        run(RulesCommand::Test {
            files: vec![example()]
        })
        .unwrap(),
        0
    );
}

#[test]
fn a_failing_rule_test_fails_the_command() {
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("ip: 198.51.100.7, port: 3333", "ip: 198.51.100.7, port: 80");
    let p = tmp("failing.yaml", &text);
    assert_eq!(run(RulesCommand::Test { files: vec![p] }).unwrap(), 1);
}

#[test]
fn validate_exit_codes() {
    assert_eq!(
        run(RulesCommand::Validate {
            files: vec![falco("falco_rules.yaml")],
            warnings: true,
            strict: false
        })
        .unwrap(),
        0
    );
    assert_eq!(
        run(RulesCommand::Validate {
            files: vec![example()],
            warnings: false,
            strict: false
        })
        .unwrap(),
        0
    );
    let bad = tmp("bad.yaml", "- rule: x\n  desc: d\n  condition: proc.pid contains 1\n  output: o\n  priority: INFO\n- macro: [\n");
    assert_eq!(
        run(RulesCommand::Validate {
            files: vec![bad],
            warnings: false,
            strict: false
        })
        .unwrap(),
        1
    );
}

#[test]
fn list_shows_coverage() {
    assert_eq!(
        run(RulesCommand::List {
            files: vec![falco("falco_rules.yaml"), example()]
        })
        .unwrap(),
        0
    );
}
