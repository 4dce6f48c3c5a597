//! The rule library in `rules/`: loads without errors (alone and beside Falco's stable
//! rules), every rule carries its documentation, MITRE tags and in-file tests, and
//! every in-file test passes (`rampart rules validate rules/` / `rampart rules test rules/`).

use std::path::PathBuf;

use rampart_detect::load_files;

fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
}

fn falco_rules() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/falco/falco_rules.yaml"
    ))
}

#[test]
fn library_loads_without_errors_and_is_large_enough() {
    let (set, errors) = load_files(&[rules_dir()]);
    assert!(errors.is_empty(), "load errors:\n{errors:#?}");
    let enabled = set.rules().iter().filter(|r| r.enabled).count();
    assert!(
        set.rules().len() >= 80,
        "only {} rules in rules/",
        set.rules().len()
    );
    assert!(enabled >= 80, "only {enabled} enabled rules");
    // Fields the engine lacks show up as warnings; only disabled rules may use them.
    for r in set.rules().iter().filter(|r| r.enabled) {
        assert!(
            r.field_notes
                .iter()
                .all(|(_, a)| !matches!(a, rampart_detect::fields::Availability::NotProvided(_))),
            "enabled rule {:?} uses a field without data: {:?}",
            r.name,
            r.field_notes
        );
    }
}

#[test]
fn every_rule_is_documented_tagged_and_tested() {
    let (set, errors) = load_files(&[rules_dir()]);
    assert!(errors.is_empty(), "{errors:#?}");
    let mut problems = Vec::new();
    for r in set.rules() {
        if r.desc.split_whitespace().count() < 12 {
            problems.push(format!(
                "{}: desc too short to say why and what the exceptions are for",
                r.name
            ));
        }
        if !r
            .mitre
            .iter()
            .any(|m| m.starts_with('T') && !m.starts_with("TA"))
        {
            problems.push(format!("{}: no MITRE technique tag (T….)", r.name));
        }
        if r.tactics().is_empty() || !r.tags.iter().any(|t| t.starts_with("mitre_")) {
            problems.push(format!("{}: no mitre_<tactic> tag", r.name));
        }
        if r.enabled && r.tests.should_fire.is_empty() {
            problems.push(format!("{}: no should_fire test", r.name));
        }
        if r.tests.should_not_fire.is_empty() {
            problems.push(format!("{}: no should_not_fire test", r.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rules_validate_and_in_file_tests_pass() {
    let validation = rampart_detect::validate_files(&[rules_dir()]);
    // Strict: the shipped library loads without a single warning either
    // (`rampart rules validate --strict rules/`).
    assert!(
        !validation.failed(true),
        "rampart rules validate --strict rules/ failed: {:#?} {:#?}",
        validation.errors,
        validation.warnings
    );
    let report = rampart_detect::test_files(&[rules_dir()]);
    let failures: Vec<&String> = report.outcomes.iter().flat_map(|o| &o.failures).collect();
    assert!(
        !report.is_failure(),
        "rampart rules test rules/ failed: {:?} {failures:?}",
        report.load_errors
    );
}

#[test]
fn library_loads_beside_falco_stable_rules() {
    let (falco_alone, falco_errors) = load_files(&[falco_rules()]);
    let (ours, _) = load_files(&[rules_dir()]);
    let (both, errors) = load_files(&[falco_rules(), rules_dir()]);
    assert_eq!(
        errors, falco_errors,
        "our library adds load errors to Falco's"
    );
    assert_eq!(
        both.rules().len(),
        falco_alone.rules().len() + ours.rules().len(),
        "a rule name of ours collides with one of Falco's"
    );
    // Falco's rules keep their own behaviour next to ours (macro names do not clash).
    for name in [
        "Read sensitive file untrusted",
        "Terminal shell in container",
    ] {
        assert!(
            both.rules().iter().any(|r| r.name == name),
            "{name} missing"
        );
    }
    // The in-file tests still pass with Falco's lists and macros loaded first.
    let outcomes = rampart_detect::tools::run_rule_tests(&both);
    let failures: Vec<_> = outcomes
        .iter()
        .flat_map(|o| o.failures.iter().map(move |f| format!("{}: {f}", o.rule)))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
