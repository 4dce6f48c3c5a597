//! The gitleaks TOML configuration format, as read by gitleaks' `config`
//! package (viper, so keys are matched without regard to case; the aliases
//! below cover the spellings seen in real configs).
//!
//! The file is parsed in two steps: the TOML syntax as a whole (an error here
//! is fatal, with line and column), then each rule and allowlist on its own, so
//! a rule with a wrong field type is reported and skipped while the rest load.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAllowlist {
    pub description: String,
    pub condition: String,
    pub commits: Vec<String>,
    pub paths: Vec<String>,
    #[serde(alias = "regextarget", alias = "regex_target")]
    #[serde(rename = "regexTarget")]
    pub regex_target: String,
    pub regexes: Vec<String>,
    #[serde(alias = "stopWords", alias = "stop_words")]
    pub stopwords: Vec<String>,
    /// Only meaningful in a global `[[allowlists]]`: the rules it applies to.
    #[serde(rename = "targetRules", alias = "targetrules", alias = "target_rules")]
    pub target_rules: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRequired {
    pub id: String,
    #[serde(rename = "withinLines", alias = "withinlines", alias = "within_lines")]
    pub within_lines: Option<u64>,
    #[serde(
        rename = "withinColumns",
        alias = "withincolumns",
        alias = "within_columns"
    )]
    pub within_columns: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRule {
    pub id: String,
    pub description: String,
    pub regex: String,
    pub path: String,
    #[serde(rename = "secretGroup", alias = "secretgroup", alias = "secret_group")]
    pub secret_group: i64,
    pub entropy: f64,
    pub keywords: Vec<String>,
    pub tags: Vec<String>,
    /// Deprecated single `[rules.allowlist]` table (gitleaks still reads it).
    pub allowlist: Option<RawAllowlist>,
    pub allowlists: Vec<RawAllowlist>,
    pub required: Vec<RawRequired>,
    #[serde(rename = "skipReport", alias = "skipreport", alias = "skip_report")]
    pub skip_report: bool,
}

/// One `[[rules]]` entry: parsed, or the reason it could not be.
pub struct RuleEntry {
    /// The rule's `id` if it has a string one, else `rules[N]`.
    pub label: String,
    pub parsed: Result<RawRule, String>,
}

/// One global allowlist: parsed, or the reason it could not be.
pub struct AllowlistEntry {
    pub label: String,
    pub parsed: Result<RawAllowlist, String>,
}

pub struct RawConfig {
    pub rules: Vec<RuleEntry>,
    pub allowlists: Vec<AllowlistEntry>,
    /// Set when the file has an `[extend]` table, which Rampart does not follow.
    pub has_extend: bool,
}

/// A TOML syntax error with its position (1-based).
#[derive(Debug)]
pub struct TomlSyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

pub fn parse(text: &str) -> Result<RawConfig, TomlSyntaxError> {
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or((0, 0));
        TomlSyntaxError {
            line,
            column,
            message: error.message().to_string(),
        }
    })?;

    let mut rules = Vec::new();
    match table.get("rules") {
        None => {}
        Some(toml::Value::Array(entries)) => {
            for (index, entry) in entries.iter().enumerate() {
                let label = entry
                    .get("id")
                    .and_then(toml::Value::as_str)
                    .filter(|id| !id.trim().is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("rules[{index}]"));
                let parsed = RawRule::deserialize(entry.clone()).map_err(|e| e.to_string());
                rules.push(RuleEntry { label, parsed });
            }
        }
        Some(other) => rules.push(RuleEntry {
            label: "rules".to_string(),
            parsed: Err(format!(
                "expected an array of tables `[[rules]]`, found a {}",
                other.type_str()
            )),
        }),
    }

    let mut allowlists = Vec::new();
    // Both the deprecated `[allowlist]` table and `[[allowlists]]` are read;
    // gitleaks refuses a file with both, Rampart applies both.
    if let Some(value) = table.get("allowlist") {
        allowlists.push(AllowlistEntry {
            label: "[allowlist]".to_string(),
            parsed: RawAllowlist::deserialize(value.clone()).map_err(|e| e.to_string()),
        });
    }
    match table.get("allowlists") {
        None => {}
        Some(toml::Value::Array(entries)) => {
            for (index, entry) in entries.iter().enumerate() {
                allowlists.push(AllowlistEntry {
                    label: format!("[[allowlists]][{index}]"),
                    parsed: RawAllowlist::deserialize(entry.clone()).map_err(|e| e.to_string()),
                });
            }
        }
        Some(other) => allowlists.push(AllowlistEntry {
            label: "allowlists".to_string(),
            parsed: Err(format!(
                "expected an array of tables `[[allowlists]]`, found a {}",
                other.type_str()
            )),
        }),
    }

    Ok(RawConfig {
        rules,
        allowlists,
        has_extend: table.contains_key("extend"),
    })
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
