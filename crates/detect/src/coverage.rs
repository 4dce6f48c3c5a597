//! Coverage of the MITRE ATT&CK for Containers matrix by a rule set: for each tactic
//! in the matrix's order, its techniques and the rules tagged with each, and the
//! techniques no rule names. The matrix ships in `data/attack-containers.tsv` (its
//! source, ATT&CK version and licence are recorded there).
//!
//! A rule counts under a technique when it carries its id, or (for a parent
//! technique) the id of one of its sub-techniques: a rule for T1053.007 covers part of
//! T1053, a rule for T1053 does not cover T1053.007.

use crate::ruleset::RuleSet;

/// The shipped matrix.
pub const ATTACK_CONTAINERS: &str = include_str!("../data/attack-containers.tsv");

/// One technique of the matrix and the rules under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TechniqueCoverage {
    pub id: String,
    pub name: String,
    pub rules: Vec<String>,
}

/// One tactic (column) of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TacticColumn {
    pub id: String,
    pub name: String,
    pub techniques: Vec<TechniqueCoverage>,
}

/// The whole matrix against one rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixCoverage {
    /// The matrix's ATT&CK version, as recorded in its file.
    pub version: String,
    pub tactics: Vec<TacticColumn>,
}

impl MatrixCoverage {
    /// Techniques (each once, in matrix order) that no rule covers.
    pub fn uncovered(&self) -> Vec<(&str, &str)> {
        let mut seen = std::collections::HashSet::new();
        self.tactics
            .iter()
            .flat_map(|t| &t.techniques)
            .filter(|t| t.rules.is_empty() && seen.insert(t.id.as_str()))
            .map(|t| (t.id.as_str(), t.name.as_str()))
            .collect()
    }

    /// Distinct techniques in the matrix, and how many of them have a rule.
    pub fn counts(&self) -> (usize, usize) {
        let mut all = std::collections::HashSet::new();
        let mut covered = std::collections::HashSet::new();
        for t in self.tactics.iter().flat_map(|t| &t.techniques) {
            all.insert(t.id.as_str());
            if !t.rules.is_empty() {
                covered.insert(t.id.as_str());
            }
        }
        (all.len(), covered.len())
    }
}

/// A malformed line of a matrix file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matrix line {line}: {problem}")]
pub struct MatrixError {
    pub line: usize,
    pub problem: String,
}

/// Parses a matrix file: `#` comments (one of them `# version<TAB>…`), then lines of
/// `tactic_id<TAB>tactic<TAB>technique_id<TAB>technique`.
pub fn parse_matrix(text: &str) -> Result<MatrixCoverage, MatrixError> {
    let mut m = MatrixCoverage {
        version: String::new(),
        tactics: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(v) = line.strip_prefix("# version\t") {
            m.version = v.trim().to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [tactic_id, tactic, technique_id, technique] = cols[..] else {
            return Err(MatrixError {
                line: i + 1,
                problem: format!("expected 4 tab-separated columns, found {}", cols.len()),
            });
        };
        if !crate::rule::is_mitre_id(tactic_id) || !crate::rule::is_mitre_id(technique_id) {
            return Err(MatrixError {
                line: i + 1,
                problem: format!("`{tactic_id}` / `{technique_id}` is not an ATT&CK id"),
            });
        }
        if m.tactics.last().is_none_or(|t| t.id != tactic_id) {
            m.tactics.push(TacticColumn {
                id: tactic_id.into(),
                name: tactic.into(),
                techniques: Vec::new(),
            });
        }
        if let Some(t) = m.tactics.last_mut() {
            t.techniques.push(TechniqueCoverage {
                id: technique_id.into(),
                name: technique.into(),
                rules: Vec::new(),
            });
        }
    }
    Ok(m)
}

/// Whether a rule tagged `tag` counts under `technique`.
fn covers(tag: &str, technique: &str) -> bool {
    tag == technique
        || (!technique.contains('.')
            && tag
                .strip_prefix(technique)
                .is_some_and(|rest| rest.starts_with('.')))
}

/// Fills `matrix` with the enabled rules of `set` under each technique.
pub fn coverage_of(set: &RuleSet, mut matrix: MatrixCoverage) -> MatrixCoverage {
    for tactic in &mut matrix.tactics {
        for t in &mut tactic.techniques {
            t.rules = set
                .rules()
                .iter()
                .filter(|r| r.enabled && r.mitre.iter().any(|m| covers(m, &t.id)))
                .map(|r| r.name.clone())
                .collect();
        }
    }
    matrix
}

/// The shipped ATT&CK for Containers matrix against `set`.
pub fn attack_containers(set: &RuleSet) -> Result<MatrixCoverage, MatrixError> {
    Ok(coverage_of(set, parse_matrix(ATTACK_CONTAINERS)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_matrix_parses_with_its_version_and_every_tactic() {
        let m = parse_matrix(ATTACK_CONTAINERS).unwrap();
        assert!(m.version.starts_with("ATT&CK v"), "{}", m.version);
        let ids: Vec<&str> = m.tactics.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids.first(), Some(&"TA0001"));
        assert!(ids.contains(&"TA0004") && ids.contains(&"TA0040"));
        assert!(m.counts().0 >= 40, "{} techniques", m.counts().0);
        assert!(parse_matrix("TA0001\tInitial Access\tT1190\n").is_err());
        assert!(parse_matrix("TA0001\tx\tnot-an-id\ty\n").is_err());
    }

    #[test]
    fn sub_technique_rules_count_under_their_parent_not_the_reverse() {
        assert!(covers("T1053.007", "T1053.007"));
        assert!(covers("T1053.007", "T1053"));
        assert!(!covers("T1053", "T1053.007"));
        assert!(!covers("T10530", "T1053"));
        let (set, errors) = crate::load_texts(&[(
            "r.yaml".to_string(),
            "- rule: cron in container\n  desc: d\n  condition: proc.name = crontab\n  output: o\n  priority: WARNING\n  tags: [mitre_execution, T1053.003]\n".to_string(),
        )]);
        assert!(errors.is_empty(), "{errors:?}");
        let m = attack_containers(&set).unwrap();
        let row = |id: &str| {
            m.tactics
                .iter()
                .flat_map(|t| &t.techniques)
                .find(|t| t.id == id)
                .unwrap()
                .rules
                .clone()
        };
        assert_eq!(row("T1053"), vec!["cron in container".to_string()]);
        assert!(row("T1053.007").is_empty());
        assert!(m.uncovered().iter().any(|(id, _)| *id == "T1053.007"));
        assert!(!m.uncovered().iter().any(|(id, _)| *id == "T1053"));
    }
}
