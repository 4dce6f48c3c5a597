//! The offline rule tools (validate, list, test) on real files; the `rampart rules`
//! command and its exit codes are tested in the `rampart` crate's `rules_cli.rs`.

use rampart_detect::{list_rules, test_files, validate_files};
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
    let dir = std::env::temp_dir().join(format!("rampart-detect-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn rule_tests_in_the_example_file_pass() {
    let report = test_files(&[example()]);
    assert!(!report.is_failure(), "{:?}", report.outcomes);
    assert!(report.passed() > 0);
    assert_eq!(report.failed(), 0);
}

#[test]
fn a_failing_rule_test_fails_the_run() {
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("ip: 198.51.100.7, port: 3333", "ip: 198.51.100.7, port: 80");
    let p = tmp("failing.yaml", &text);
    let report = test_files(&[p]);
    assert!(report.is_failure());
    assert!(report.failed() > 0);
    assert!(report.outcomes.iter().any(|o| !o.failures.is_empty()));
}

#[test]
fn validate_reports_errors_and_warnings() {
    let falco = validate_files(&[falco("falco_rules.yaml")]);
    assert!(!falco.failed(false), "{:?}", falco.errors);
    assert!(falco.rules > 0);
    let example = validate_files(&[example()]);
    assert!(!example.failed(false), "{:?}", example.errors);
    let bad = tmp("bad.yaml", "- rule: x\n  desc: d\n  condition: proc.pid contains 1\n  output: o\n  priority: INFO\n- macro: [\n");
    let bad = validate_files(&[bad]);
    assert!(bad.failed(false));
    assert!(
        bad.errors[0].to_string().contains("bad.yaml:"),
        "{:?}",
        bad.errors
    );
}

#[test]
fn list_shows_coverage() {
    let listing = list_rules(&[falco("falco_rules.yaml"), example()]);
    assert!(listing.errors.is_empty(), "{:?}", listing.errors);
    assert!(!listing.rules.is_empty());
    let counted: usize = listing.coverage.values().map(|c| c.rules).sum();
    assert!(
        counted >= listing.rules.len(),
        "every rule is under a tactic"
    );
    for c in listing.coverage.values() {
        let unique: std::collections::HashSet<&String> = c.techniques.iter().collect();
        assert_eq!(unique.len(), c.techniques.len());
    }
}
