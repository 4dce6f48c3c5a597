//! `rampart rules …`: validate, list (with MITRE coverage) and test rules files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::hostnames::{ResolveOptions, StaticResolver};
use crate::loader::{load_files_with, LoadError};
use crate::ruleset::RuleSet;
use crate::tests_format::run_rule_tests;

/// Loads rules for the offline subcommands: checking, listing and testing rules must
/// not depend on (or wait for) DNS, so the host names conditions mention stay
/// unresolved here; `rampart up` resolves them.
fn load_offline(files: &[PathBuf]) -> (RuleSet, Vec<LoadError>) {
    let offline = ResolveOptions {
        resolver: std::sync::Arc::new(StaticResolver::new()),
        timeout: std::time::Duration::ZERO,
    };
    load_files_with(files, &offline)
}

/// Default rules location when no file is given.
pub const DEFAULT_RULES_DIR: &str = "rules";

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Load rules files and report every error as file:line:col: message (exit 1 on any).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also print warnings (fields Rampart lacks, rules that can never fire).
        #[arg(long)]
        warnings: bool,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// List rules with priority and MITRE ids, then MITRE coverage by tactic.
    List {
        /// Rules files or directories (default: ./rules).
        files: Vec<PathBuf>,
    },
    /// Run the tests carried by each rule (`tests: {should_fire, should_not_fire}`).
    Test {
        /// Rules files or directories (default: ./rules).
        files: Vec<PathBuf>,
    },
}

fn or_default(files: Vec<PathBuf>) -> Vec<PathBuf> {
    if files.is_empty() {
        vec![PathBuf::from(DEFAULT_RULES_DIR)]
    } else {
        files
    }
}

/// Runs a `rampart rules` subcommand; returns the process exit code.
pub fn run(cmd: RulesCommand) -> anyhow::Result<i32> {
    match cmd {
        RulesCommand::Validate {
            files,
            warnings,
            strict,
        } => {
            let (set, errors) = load_offline(&files);
            for e in &errors {
                println!("{e}");
            }
            if warnings || strict {
                for w in set.warnings() {
                    println!("warning: {w}");
                }
            }
            let failed = !errors.is_empty() || (strict && !set.warnings().is_empty());
            println!(
                "{} rule(s) loaded, {} error(s), {} warning(s)",
                set.rules().len(),
                errors.len(),
                set.warnings().len()
            );
            Ok(i32::from(failed))
        }
        RulesCommand::List { files } => {
            let (set, errors) = load_offline(&or_default(files));
            for e in &errors {
                eprintln!("{e}");
            }
            let width = set
                .rules()
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(4)
                .min(60);
            println!(
                "{:<width$}  {:<13}  {:<7}  MITRE",
                "RULE", "PRIORITY", "ENABLED"
            );
            let mut by_tactic: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
            for r in set.rules() {
                println!(
                    "{:<width$}  {:<13}  {:<7}  {}",
                    r.name,
                    r.priority.falco_name(),
                    if r.enabled { "yes" } else { "no" },
                    r.mitre.join(",")
                );
                let tactics = r.tactics();
                for t in if tactics.is_empty() {
                    vec!["(no tactic)".to_string()]
                } else {
                    tactics
                } {
                    let e = by_tactic.entry(t).or_default();
                    e.0 += 1;
                    for m in &r.mitre {
                        if !e.1.contains(m) {
                            e.1.push(m.clone());
                        }
                    }
                }
            }
            println!("\nMITRE coverage by tactic:");
            for (t, (n, techniques)) in &by_tactic {
                println!("  {t:<22} {n:>3} rule(s)  {}", techniques.join(", "));
            }
            println!("{} rule(s), {} error(s)", set.rules().len(), errors.len());
            Ok(i32::from(!errors.is_empty()))
        }
        RulesCommand::Test { files } => {
            let (set, errors) = load_offline(&or_default(files));
            for e in &errors {
                println!("load error: {e}");
            }
            let outcomes = run_rule_tests(&set);
            let (mut passed, mut failed) = (0usize, 0usize);
            for o in &outcomes {
                passed += o.passed;
                failed += o.failures.len();
                let status = if o.failures.is_empty() {
                    "ok"
                } else {
                    "FAILED"
                };
                println!(
                    "{status:<6} {} ({} case(s))",
                    o.rule,
                    o.passed + o.failures.len()
                );
                for f in &o.failures {
                    println!("       {f}");
                }
            }
            let untested = set.rules().iter().filter(|r| r.tests.is_empty()).count();
            println!("{untested} rule(s) without tests");
            println!("{passed} passed, {failed} failed");
            Ok(i32::from(failed > 0 || !errors.is_empty()))
        }
    }
}
