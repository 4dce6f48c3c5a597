//! `rampart rules …`: validate, list (with MITRE coverage) and test rules files. The
//! loading, listing and rule tests are `rampart-detect`'s; this module parses the
//! arguments and prints the reports.

use std::path::PathBuf;

use rampart_detect::tools::{containers_coverage, list_rules, test_files, validate_files};

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
        /// Instead, print the MITRE ATT&CK for Containers matrix: each tactic's
        /// techniques with the rules under them, then the techniques with none.
        #[arg(long)]
        coverage: bool,
    },
    /// Run the tests carried by each rule (`tests: {should_fire, should_not_fire}`).
    Test {
        /// Rules files or directories (default: ./rules).
        files: Vec<PathBuf>,
    },
}

fn or_default(files: Vec<PathBuf>) -> Vec<PathBuf> {
    if files.is_empty() {
        // ./rules, else the library inside the binary.
        vec![rampart_agent::config::default_rules_dir()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RULES_DIR))]
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
            let report = validate_files(&files);
            for e in &report.errors {
                println!("{e}");
            }
            if warnings || strict {
                for w in &report.warnings {
                    println!("warning: {w}");
                }
            }
            println!(
                "{} rule(s) loaded, {} error(s), {} warning(s)",
                report.rules,
                report.errors.len(),
                report.warnings.len()
            );
            Ok(i32::from(report.failed(strict)))
        }
        RulesCommand::List {
            files,
            coverage: true,
        } => print_containers_coverage(&or_default(files)),
        RulesCommand::List { files, .. } => {
            let listing = list_rules(&or_default(files));
            for e in &listing.errors {
                eprintln!("{e}");
            }
            let width = listing
                .rules
                .iter()
                .map(|r| r.name.len())
                .max()
                .unwrap_or(4)
                .min(60);
            println!(
                "{:<width$}  {:<13}  {:<7}  MITRE",
                "RULE", "PRIORITY", "ENABLED"
            );
            for r in &listing.rules {
                println!(
                    "{:<width$}  {:<13}  {:<7}  {}",
                    r.name,
                    r.priority.falco_name(),
                    if r.enabled { "yes" } else { "no" },
                    r.mitre.join(",")
                );
            }
            println!("\nMITRE coverage by tactic:");
            for (t, c) in &listing.coverage {
                println!(
                    "  {t:<22} {:>3} rule(s)  {}",
                    c.rules,
                    c.techniques.join(", ")
                );
            }
            println!(
                "{} rule(s), {} error(s)",
                listing.rules.len(),
                listing.errors.len()
            );
            Ok(i32::from(!listing.errors.is_empty()))
        }
        RulesCommand::Test { files } => {
            let report = test_files(&or_default(files));
            for e in &report.load_errors {
                println!("load error: {e}");
            }
            for o in &report.outcomes {
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
            println!("{} rule(s) without tests", report.untested);
            println!("{} passed, {} failed", report.passed(), report.failed());
            Ok(i32::from(report.is_failure()))
        }
    }
}

/// `rampart rules list --coverage`: the ATT&CK for Containers matrix against the rules.
fn print_containers_coverage(files: &[PathBuf]) -> anyhow::Result<i32> {
    let (matrix, errors) = containers_coverage(files);
    for e in &errors {
        eprintln!("{e}");
    }
    let matrix = matrix?;
    println!(
        "MITRE ATT&CK for Containers ({}), enabled rules under each technique",
        matrix.version
    );
    for tactic in &matrix.tactics {
        println!("\n{} {}", tactic.id, tactic.name);
        for t in &tactic.techniques {
            let rules = if t.rules.is_empty() {
                "-".to_string()
            } else {
                t.rules.join("; ")
            };
            println!("  {:<10} {:<44} {rules}", t.id, t.name);
        }
    }
    let uncovered = matrix.uncovered();
    println!("\nTechniques without a rule ({}):", uncovered.len());
    for (id, name) in &uncovered {
        println!("  {id:<10} {name}");
    }
    let (all, covered) = matrix.counts();
    println!(
        "{covered} of {all} techniques covered, {} error(s)",
        errors.len()
    );
    Ok(i32::from(!errors.is_empty()))
}
