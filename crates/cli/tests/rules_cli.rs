//! `rampart rules validate|list|test` through the binary: output and exit codes (0 ok,
//! 1 an error, a failing case or, with `--strict`, a warning).

use std::path::PathBuf;
use std::process::{Command, Output};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap()
}

fn path(relative: &str) -> String {
    format!("{}/{relative}", env!("CARGO_MANIFEST_DIR"))
}

fn example() -> String {
    path("../detect/tests/data/example_rules.yaml")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_shipped_rules_validate_and_their_tests_pass() {
    let rules = path("../../rules");
    let validate = rampart(&["rules", "validate", "--warnings", &rules]);
    assert_eq!(validate.status.code(), Some(0), "{}", stdout(&validate));
    let test = rampart(&["rules", "test", &rules]);
    let out = stdout(&test);
    assert_eq!(test.status.code(), Some(0), "{out}");
    assert!(out.ends_with(" passed, 0 failed\n"), "{out}");
    assert!(out.contains("\n0 rule(s) without tests\n"), "{out}");
}

#[test]
fn a_failing_rule_test_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("ip: 198.51.100.7, port: 3333", "ip: 198.51.100.7, port: 80");
    let failing = dir.path().join("failing.yaml");
    std::fs::write(&failing, text).unwrap();
    let output = rampart(&["rules", "test", failing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("\nFAILED "), "{}", stdout(&output));
}

#[test]
fn validate_exit_codes() {
    let ok = rampart(&["rules", "validate", &example()]);
    assert_eq!(ok.status.code(), Some(0));
    assert!(stdout(&ok).contains(" rule(s) loaded, 0 error(s), "));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "- rule: x\n  desc: d\n  condition: proc.pid contains 1\n  output: o\n  priority: INFO\n- macro: [\n").unwrap();
    let output = rampart(&["rules", "validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with(&format!("{}:", bad.display())));
    // A file is required.
    assert_eq!(rampart(&["rules", "validate"]).status.code(), Some(2));
}

#[test]
fn list_shows_rules_and_coverage() {
    let falco = PathBuf::from(path("../../../shared/fixtures/falco/falco_rules.yaml"));
    let output = rampart(&["rules", "list", falco.to_str().unwrap(), &example()]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    assert!(out.starts_with("RULE "), "{out}");
    assert!(out.contains("\nMITRE coverage by tactic:\n"), "{out}");
    assert!(out.ends_with(" rule(s), 0 error(s)\n"), "{out}");
}

#[test]
fn list_coverage_places_the_library_in_the_containers_matrix() {
    let output = rampart(&["rules", "list", "--coverage", &path("../../rules")]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(
        out.starts_with("MITRE ATT&CK for Containers (ATT&CK v"),
        "{out}"
    );
    assert!(out.contains("\nTA0004 Privilege Escalation\n"), "{out}");
    let escape = out
        .lines()
        .find(|l| l.trim_start().starts_with("T1611 "))
        .unwrap_or_default();
    assert!(escape.contains("Mount attempted in container"), "{out}");
    let rce = out
        .lines()
        .find(|l| l.trim_start().starts_with("T1190 "))
        .unwrap_or_default();
    assert!(
        rce.contains("Reconnaissance command run by a web request handler"),
        "{out}"
    );
    assert!(out.contains("\nTechniques without a rule ("), "{out}");
    assert!(out.ends_with(" techniques covered, 0 error(s)\n"), "{out}");
}
