//! The offline rule tools behind `rampart rules …`: validate rules files, list their
//! rules with MITRE coverage, and run the tests the rules carry. Each returns a report;
//! printing it is the caller's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rampart_event::Priority;

use crate::fields::EvalCtx;
use crate::hostnames::{ResolveOptions, StaticResolver};
use crate::loader::{load_files_with, LoadError, LoadWarning};
use crate::ruleset::RuleSet;
use crate::tests_format::build_event;

/// Loads rules for the offline tools: checking, listing and testing rules must not
/// depend on (or wait for) DNS, so the host names conditions mention stay unresolved
/// here; `rampart up` resolves them.
pub fn load_offline(files: &[PathBuf]) -> (RuleSet, Vec<LoadError>) {
    let offline = ResolveOptions {
        resolver: std::sync::Arc::new(StaticResolver::new()),
        timeout: std::time::Duration::ZERO,
    };
    load_files_with(files, &offline)
}

/// What loading a set of rules files found.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Rules loaded.
    pub rules: usize,
    pub errors: Vec<LoadError>,
    pub warnings: Vec<LoadWarning>,
}

impl Validation {
    /// Any error fails; with `strict`, so does any warning.
    pub fn failed(&self, strict: bool) -> bool {
        !self.errors.is_empty() || (strict && !self.warnings.is_empty())
    }
}

/// Loads `files` (offline) and reports errors and warnings, each located.
pub fn validate_files(files: &[PathBuf]) -> Validation {
    let (set, errors) = load_offline(files);
    Validation {
        rules: set.rules().len(),
        errors,
        warnings: set.warnings().to_vec(),
    }
}

/// One rule as `rampart rules list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRule {
    pub name: String,
    pub priority: Priority,
    pub enabled: bool,
    pub mitre: Vec<String>,
}

/// The rules under one MITRE tactic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TacticCoverage {
    pub rules: usize,
    /// MITRE ids of those rules, in first-seen order, each once.
    pub techniques: Vec<String>,
}

/// The tactic a rule without one is counted under.
pub const NO_TACTIC: &str = "(no tactic)";

/// Rules in load order, and MITRE coverage by tactic.
#[derive(Debug, Clone)]
pub struct Listing {
    pub rules: Vec<ListedRule>,
    /// By tactic name; rules without a tactic under [`NO_TACTIC`].
    pub coverage: BTreeMap<String, TacticCoverage>,
    pub errors: Vec<LoadError>,
}

/// Loads `files` (offline) and places their enabled rules in the MITRE ATT&CK for
/// Containers matrix ([`crate::coverage`]).
pub fn containers_coverage(
    files: &[PathBuf],
) -> (
    Result<crate::coverage::MatrixCoverage, crate::coverage::MatrixError>,
    Vec<LoadError>,
) {
    let (set, errors) = load_offline(files);
    (crate::coverage::attack_containers(&set), errors)
}

/// Loads `files` (offline) and lists their rules with MITRE coverage.
pub fn list_rules(files: &[PathBuf]) -> Listing {
    let (set, errors) = load_offline(files);
    let mut coverage: BTreeMap<String, TacticCoverage> = BTreeMap::new();
    let mut rules = Vec::with_capacity(set.rules().len());
    for r in set.rules() {
        rules.push(ListedRule {
            name: r.name.clone(),
            priority: r.priority,
            enabled: r.enabled,
            mitre: r.mitre.clone(),
        });
        let tactics = r.tactics();
        for t in if tactics.is_empty() {
            vec![NO_TACTIC.to_string()]
        } else {
            tactics
        } {
            let e = coverage.entry(t).or_default();
            e.rules += 1;
            for m in &r.mitre {
                if !e.techniques.contains(m) {
                    e.techniques.push(m.clone());
                }
            }
        }
    }
    Listing {
        rules,
        coverage,
        errors,
    }
}

/// The outcome of every rule's in-file tests.
#[derive(Debug)]
pub struct TestReport {
    /// One per rule that carries tests, in load order.
    pub outcomes: Vec<RuleTestOutcome>,
    /// Rules that carry no tests.
    pub untested: usize,
    pub load_errors: Vec<LoadError>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.outcomes.iter().map(|o| o.passed).sum()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.iter().map(|o| o.failures.len()).sum()
    }

    /// A failing case or a file that did not load fails the run.
    pub fn is_failure(&self) -> bool {
        self.failed() > 0 || !self.load_errors.is_empty()
    }
}

/// Loads `files` (offline) and runs the tests each rule carries
/// (`tests: {should_fire, should_not_fire}`) against the whole set.
pub fn test_files(files: &[PathBuf]) -> TestReport {
    let (set, load_errors) = load_offline(files);
    TestReport {
        outcomes: run_rule_tests(&set),
        untested: set.rules().iter().filter(|r| r.tests.is_empty()).count(),
        load_errors,
    }
}

/// Result of one rule's tests.
#[derive(Debug)]
pub struct RuleTestOutcome {
    pub rule: String,
    pub passed: usize,
    pub failures: Vec<String>,
}

/// Runs every rule's tests against the full rule set (kind index included).
pub fn run_rule_tests(set: &RuleSet) -> Vec<RuleTestOutcome> {
    let mut out = Vec::new();
    for r in set.rules() {
        if r.tests.is_empty() {
            continue;
        }
        let mut o = RuleTestOutcome {
            rule: r.name.clone(),
            passed: 0,
            failures: Vec::new(),
        };
        for (want, list) in [
            (true, &r.tests.should_fire),
            (false, &r.tests.should_not_fire),
        ] {
            for (i, snippet) in list.iter().enumerate() {
                let label = if want {
                    "should_fire"
                } else {
                    "should_not_fire"
                };
                match build_event(snippet) {
                    Ok(ev) => {
                        let ctx = EvalCtx::new(&ev);
                        let fired = r.matches(&ctx);
                        if fired == want {
                            o.passed += 1;
                        } else {
                            o.failures.push(format!(
                                "{label}[{i}]: rule {} on {}",
                                if fired { "fired" } else { "did not fire" },
                                serde_json::to_string(snippet).unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => o.failures.push(format!("{label}[{i}]: {e}")),
                }
            }
        }
        out.push(o);
    }
    out
}
