//! The secret scanner: compiled gitleaks rules applied to one file at a time,
//! following gitleaks' `detect` package step by step (path allowlists, keyword
//! pre-filter, rule regex, secret group, entropy, allowlists, `gitleaks:allow`,
//! composite rules, generic-rule de-duplication).

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::Regex;
use serde::Serialize;

use crate::config::{self, RawAllowlist, RawRule};
use crate::go_regex;

/// Marker on a line that tells gitleaks (and Rampart) to ignore a finding there.
const GITLEAKS_ALLOW_SIGNATURE: &[u8] = b"gitleaks:allow";

/// How much of a file is inspected for NUL bytes to call it binary.
const BINARY_SNIFF_LEN: usize = 8 * 1024;

/// Extensions of files whose content is never text worth scanning.
const BINARY_EXTENSIONS: &[&str] = &[
    "7z", "a", "apk", "avi", "bin", "bmp", "bz2", "class", "dat", "db", "deb", "dll", "dylib",
    "ear", "eot", "exe", "flac", "gif", "gz", "ico", "iso", "jar", "jpeg", "jpg", "lz4", "mkv",
    "mov", "mp3", "mp4", "o", "ogg", "otf", "pdf", "png", "pyc", "pyo", "rar", "rlib", "rpm", "so",
    "sqlite", "tar", "tgz", "tif", "tiff", "ttf", "war", "wasm", "wav", "webm", "webp", "whl",
    "woff", "woff2", "xz", "zip", "zst",
];

/// Gitleaks' TOML could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SecretRulesError {
    #[error("gitleaks rules: TOML syntax error at line {line}, column {column}: {message}")]
    Toml {
        line: usize,
        column: usize,
        message: String,
    },
}

/// A rule (or global allowlist) that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRule {
    /// The rule's id, or a label such as `[allowlist]` for a global allowlist.
    pub rule_id: String,
    pub reason: String,
}

/// One secret found in a file. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretFinding {
    pub rule_id: String,
    pub description: String,
    pub path: String,
    /// 1-based line of the match's start.
    pub line: usize,
    /// 1-based byte column of the match's start.
    pub column: usize,
    /// A short prefix of the secret followed by `****`.
    pub redacted: String,
    /// Shannon entropy of the secret (`None` for path-only rules).
    pub entropy: Option<f32>,
    /// `path:rule:line`, the same form as gitleaks' global fingerprint.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Or,
    And,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegexTarget {
    Secret,
    Match,
    Line,
}

struct CompiledAllowlist {
    condition: Condition,
    has_commits: bool,
    paths: Vec<Regex>,
    regex_target: RegexTarget,
    regexes: Vec<Regex>,
    /// Lower-cased stop words, searched case-insensitively in the secret.
    stopwords: Option<AhoCorasick>,
}

impl CompiledAllowlist {
    fn compile(raw: &RawAllowlist) -> Result<Self, String> {
        let condition = match raw.condition.to_ascii_uppercase().as_str() {
            "" | "OR" | "||" => Condition::Or,
            "AND" | "&&" => Condition::And,
            other => {
                return Err(format!(
                    "unknown allowlist condition '{other}' (expected 'AND' or 'OR')"
                ))
            }
        };
        let regex_target = match raw.regex_target.as_str() {
            "" | "secret" => RegexTarget::Secret,
            "match" => RegexTarget::Match,
            "line" => RegexTarget::Line,
            other => {
                return Err(format!(
                    "unknown allowlist regexTarget '{other}' (expected 'secret', 'match' or 'line')"
                ))
            }
        };
        if raw.commits.is_empty()
            && raw.paths.is_empty()
            && raw.regexes.is_empty()
            && raw.stopwords.is_empty()
        {
            return Err(
                "allowlist must contain at least one of: commits, paths, regexes, stopwords"
                    .to_string(),
            );
        }
        let paths = compile_all(&raw.paths, "allowlist path")?;
        let regexes = compile_all(&raw.regexes, "allowlist regex")?;
        let stopwords = if raw.stopwords.is_empty() {
            None
        } else {
            let lowered: Vec<String> = raw.stopwords.iter().map(|w| w.to_lowercase()).collect();
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .build(&lowered)
                    .map_err(|e| format!("allowlist stopwords: {e}"))?,
            )
        };
        Ok(Self {
            condition,
            has_commits: !raw.commits.is_empty(),
            paths,
            regex_target,
            regexes,
            stopwords,
        })
    }

    fn path_allowed(&self, path: &str) -> bool {
        !path.is_empty() && self.paths.iter().any(|p| p.is_match(path.as_bytes()))
    }

    /// gitleaks `checkCommitOrPathAllowed`: may the whole file be skipped?
    /// Files carry no commit here, so a commit check never passes.
    fn allows_whole_file(&self, path: &str) -> bool {
        match self.condition {
            Condition::Or => self.path_allowed(path),
            Condition::And => {
                if !self.regexes.is_empty() || self.stopwords.is_some() {
                    return false; // decided per finding
                }
                if self.has_commits {
                    return false;
                }
                !self.paths.is_empty() && self.path_allowed(path)
            }
        }
    }

    /// gitleaks `checkFindingAllowed` for one allowlist.
    fn allows_finding(&self, path: &str, candidate: &Candidate<'_>) -> bool {
        let target = match self.regex_target {
            RegexTarget::Secret => candidate.secret,
            RegexTarget::Match => candidate.matched,
            RegexTarget::Line => candidate.line_text,
        };
        let regex_allowed = !target.is_empty() && self.regexes.iter().any(|r| r.is_match(target));
        let stopword_allowed = !candidate.secret.is_empty()
            && self
                .stopwords
                .as_ref()
                .is_some_and(|words| words.is_match(candidate.secret));
        match self.condition {
            Condition::Or => regex_allowed || stopword_allowed,
            Condition::And => {
                let mut checks = Vec::with_capacity(4);
                if self.has_commits {
                    checks.push(false);
                }
                if !self.paths.is_empty() {
                    checks.push(self.path_allowed(path));
                }
                if !self.regexes.is_empty() {
                    checks.push(regex_allowed);
                }
                if self.stopwords.is_some() {
                    checks.push(stopword_allowed);
                }
                checks.iter().all(|&ok| ok)
            }
        }
    }
}

fn compile_all(patterns: &[String], what: &str) -> Result<Vec<Regex>, String> {
    patterns
        .iter()
        .map(|pattern| go_regex::compile(pattern).map_err(|e| format!("{what} `{pattern}`: {e}")))
        .collect()
}

struct RequiredRule {
    rule_index: usize,
    within_lines: Option<u64>,
    within_columns: Option<u64>,
}

struct CompiledRule {
    id: String,
    description: String,
    regex: Option<Regex>,
    /// A faster necessary condition for `regex` (see
    /// `go_regex::without_leading_context`): when it does not match, the rule
    /// has no match in the file.
    quick_reject: Option<Regex>,
    secret_group: usize,
    /// 0 means no entropy check, as in gitleaks.
    entropy: f64,
    path: Option<Regex>,
    keywords: Vec<String>,
    allowlists: Vec<CompiledAllowlist>,
    required: Vec<RequiredRule>,
    skip_report: bool,
    is_generic: bool,
}

/// A match being checked, before it becomes a finding.
struct Candidate<'a> {
    matched: &'a [u8],
    secret: &'a [u8],
    line_text: &'a [u8],
}

/// A finding before redaction (holds the secret only while scanning).
struct RawFinding<'a> {
    rule_index: usize,
    line: usize,
    column: usize,
    secret: &'a [u8],
    entropy: Option<f64>,
}

/// Secret scanner over gitleaks-format rules.
pub struct SecretScanner {
    rules: Vec<CompiledRule>,
    global_allowlists: Vec<CompiledAllowlist>,
    /// Every distinct lower-cased keyword; pattern id = index into `keyword_rules`.
    keyword_matcher: Option<AhoCorasick>,
    /// For each keyword, the rules that list it.
    keyword_rules: Vec<Vec<usize>>,
    /// Rules without keywords: they run on every file.
    unconditional_rules: Vec<usize>,
    skipped: Vec<SkippedRule>,
    notes: Vec<String>,
}

/// Rampart's own default rule set, in gitleaks format.
const BUILTIN_RULES: &str = include_str!("../rules/default.toml");

impl SecretScanner {
    /// Loads gitleaks-format rules. Only a TOML syntax error is fatal; rules
    /// (and allowlists) that do not compile are skipped and listed by
    /// [`SecretScanner::skipped_rules`].
    pub fn from_gitleaks_toml(text: &str) -> Result<Self, SecretRulesError> {
        let raw = config::parse(text).map_err(|e| SecretRulesError::Toml {
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let mut skipped = Vec::new();
        let mut notes = Vec::new();
        if raw.has_extend {
            notes.push(
                "[extend] ignored: Rampart loads exactly the rules in this file \
                 (no gitleaks default config or other file is merged in)"
                    .to_string(),
            );
        }

        // Global allowlists; those with targetRules attach to their rules.
        let mut global_allowlists = Vec::new();
        let mut targeted: Vec<(Vec<String>, CompiledAllowlist, String)> = Vec::new();
        for entry in raw.allowlists {
            let compiled = entry
                .parsed
                .and_then(|a| CompiledAllowlist::compile(&a).map(|c| (a.target_rules, c)));
            match compiled {
                Ok((targets, allowlist)) if targets.is_empty() => global_allowlists.push(allowlist),
                Ok((targets, allowlist)) => targeted.push((targets, allowlist, entry.label)),
                Err(reason) => skipped.push(SkippedRule {
                    rule_id: entry.label,
                    reason,
                }),
            }
        }

        // Rules in file order; a later rule with the same id replaces the
        // earlier one (gitleaks keeps rules in a map keyed by id).
        let mut rules: Vec<CompiledRule> = Vec::new();
        let mut raw_required: Vec<Vec<config::RawRequired>> = Vec::new();
        let mut index_by_id: HashMap<String, usize> = HashMap::new();
        for entry in raw.rules {
            let label = entry.label.clone();
            let compiled = entry
                .parsed
                .and_then(|raw_rule| compile_rule(&raw_rule).map(|rule| (rule, raw_rule.required)));
            match compiled {
                Ok((rule, required)) => {
                    if let Some(&previous) = index_by_id.get(&rule.id) {
                        skipped.push(SkippedRule {
                            rule_id: rule.id.clone(),
                            reason: "duplicate rule id: the later definition replaces this one"
                                .to_string(),
                        });
                        rules[previous] = rule;
                        raw_required[previous] = required;
                    } else {
                        index_by_id.insert(rule.id.clone(), rules.len());
                        rules.push(rule);
                        raw_required.push(required);
                    }
                }
                Err(reason) => skipped.push(SkippedRule {
                    rule_id: label,
                    reason,
                }),
            }
        }

        // Composite rules need every required rule to exist.
        let mut dropped = vec![false; rules.len()];
        for (index, required_list) in raw_required.iter().enumerate() {
            let mut resolved = Vec::new();
            for required in required_list {
                match index_by_id.get(&required.id) {
                    Some(&rule_index) => resolved.push(RequiredRule {
                        rule_index,
                        within_lines: required.within_lines,
                        within_columns: required.within_columns,
                    }),
                    None => {
                        skipped.push(SkippedRule {
                            rule_id: rules[index].id.clone(),
                            reason: format!(
                                "required rule '{}' does not exist (or was skipped)",
                                required.id
                            ),
                        });
                        dropped[index] = true;
                    }
                }
            }
            rules[index].required = resolved;
        }

        for (targets, allowlist, label) in targeted {
            let indices: Vec<usize> = targets
                .iter()
                .filter_map(|id| {
                    let found = index_by_id.get(id).copied();
                    if found.is_none() {
                        skipped.push(SkippedRule {
                            rule_id: label.clone(),
                            reason: format!("targetRules names unknown rule '{id}'"),
                        });
                    }
                    found
                })
                .collect();
            attach_to_rules(&mut rules, &indices, allowlist);
        }

        // Remove dropped composite rules, remapping indices.
        if dropped.iter().any(|&d| d) {
            let mut new_index = vec![usize::MAX; rules.len()];
            let mut kept = Vec::new();
            for (old, rule) in rules.into_iter().enumerate() {
                if !dropped[old] {
                    new_index[old] = kept.len();
                    kept.push(rule);
                }
            }
            for rule in &mut kept {
                rule.required
                    .retain(|r| new_index[r.rule_index] != usize::MAX);
                for required in &mut rule.required {
                    required.rule_index = new_index[required.rule_index];
                }
            }
            rules = kept;
        }

        let mut scanner = Self {
            rules,
            global_allowlists,
            keyword_matcher: None,
            keyword_rules: Vec::new(),
            unconditional_rules: Vec::new(),
            skipped,
            notes,
        };
        scanner.build_prefilter();
        Ok(scanner)
    }

    /// Rampart's own default rule set (`rules/default.toml`).
    pub fn builtin() -> Self {
        match Self::from_gitleaks_toml(BUILTIN_RULES) {
            Ok(scanner) => scanner,
            // The file is part of the crate and tested; an error here is a
            // build defect, reported by an empty scanner rather than a panic.
            Err(error) => {
                let mut scanner = Self::empty();
                scanner.skipped.push(SkippedRule {
                    rule_id: "builtin".to_string(),
                    reason: error.to_string(),
                });
                scanner
            }
        }
    }

    fn empty() -> Self {
        Self {
            rules: Vec::new(),
            global_allowlists: Vec::new(),
            keyword_matcher: None,
            keyword_rules: Vec::new(),
            unconditional_rules: Vec::new(),
            skipped: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn build_prefilter(&mut self) {
        let mut keyword_ids: HashMap<String, usize> = HashMap::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut unconditional = Vec::new();
        for (rule_index, rule) in self.rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                unconditional.push(rule_index);
                continue;
            }
            for keyword in &rule.keywords {
                let id = *keyword_ids.entry(keyword.clone()).or_insert_with(|| {
                    keywords.push(keyword.clone());
                    keyword_rules.push(Vec::new());
                    keywords.len() - 1
                });
                if !keyword_rules[id].contains(&rule_index) {
                    keyword_rules[id].push(rule_index);
                }
            }
        }
        // A DFA is the fastest Aho-Corasick form; with a few hundred short
        // keywords it stays small.
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .or_else(|_| {
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .build(&keywords)
            });
        match matcher {
            Ok(matcher) if !keywords.is_empty() => self.keyword_matcher = Some(matcher),
            Ok(_) => {}
            Err(error) => {
                // Without a pre-filter every rule runs: slower, same findings.
                self.notes.push(format!(
                    "keyword pre-filter unavailable ({error}); all rules run"
                ));
                unconditional = (0..self.rules.len()).collect();
            }
        }
        self.keyword_rules = keyword_rules;
        self.unconditional_rules = unconditional;
    }

    /// Rules that were left out, each with its id and the reason.
    pub fn skipped_rules(&self) -> &[SkippedRule] {
        &self.skipped
    }

    /// Remarks about the configuration that are not errors (e.g. `[extend]`).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Number of rules that compiled and will be applied.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Ids of the loaded rules, in file order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Scans one file. Binary files get only path-based rules; their content
    /// is not searched.
    pub fn scan(&self, path: &str, bytes: &[u8]) -> Vec<SecretFinding> {
        self.scan_selected(path, bytes, true)
    }

    /// [`SecretScanner::scan`] without the keyword pre-filter: every rule's
    /// regex runs on every file. This is the baseline the benchmark measures
    /// the pre-filter against. It finds a superset: also matches of rules
    /// whose keywords do not occur in the file, which gitleaks never reports.
    pub fn scan_without_prefilter(&self, path: &str, bytes: &[u8]) -> Vec<SecretFinding> {
        self.scan_selected(path, bytes, false)
    }

    fn scan_selected(&self, path: &str, bytes: &[u8], prefilter: bool) -> Vec<SecretFinding> {
        if self
            .global_allowlists
            .iter()
            .any(|a| a.allows_whole_file(path))
        {
            return Vec::new();
        }
        let binary = is_binary(path, bytes);
        let mut active = vec![false; self.rules.len()];
        if !prefilter {
            active.iter_mut().for_each(|a| *a = true);
        } else {
            for &index in &self.unconditional_rules {
                active[index] = true;
            }
            if !binary {
                if let Some(matcher) = &self.keyword_matcher {
                    let mut seen = vec![false; self.keyword_rules.len()];
                    let mut remaining = seen.len();
                    for hit in matcher.find_overlapping_iter(bytes) {
                        let id = hit.pattern().as_usize();
                        if !seen[id] {
                            seen[id] = true;
                            for &rule_index in &self.keyword_rules[id] {
                                active[rule_index] = true;
                            }
                            remaining -= 1;
                            if remaining == 0 {
                                break;
                            }
                        }
                    }
                }
            }
        }

        let mut raw_findings = Vec::new();
        for (rule_index, rule) in self.rules.iter().enumerate() {
            if !active[rule_index] || rule.skip_report {
                continue;
            }
            if binary && rule.regex.is_some() {
                continue;
            }
            let primary = self.detect_rule(rule_index, path, bytes);
            if rule.required.is_empty() || primary.is_empty() {
                raw_findings.extend(primary);
                continue;
            }
            raw_findings.extend(self.with_required_rules(rule, path, bytes, primary));
        }

        let keep = generic_filter(&self.rules, &raw_findings);
        let mut findings: Vec<SecretFinding> = raw_findings
            .iter()
            .zip(keep)
            .filter(|(_, keep)| *keep)
            .map(|(raw, _)| {
                let rule = &self.rules[raw.rule_index];
                SecretFinding {
                    rule_id: rule.id.clone(),
                    description: rule.description.clone(),
                    path: path.to_string(),
                    line: raw.line,
                    column: raw.column,
                    redacted: redact(raw.secret),
                    entropy: raw.entropy.map(|e| e as f32),
                    fingerprint: format!("{path}:{}:{}", rule.id, raw.line),
                }
            })
            .collect();
        findings
            .sort_by(|a, b| (a.line, a.column, &a.rule_id).cmp(&(b.line, b.column, &b.rule_id)));
        findings
    }

    /// gitleaks composite rules: keep a primary finding only when every
    /// required rule has a finding close enough to it.
    fn with_required_rules<'a>(
        &self,
        rule: &CompiledRule,
        path: &str,
        bytes: &'a [u8],
        primary: Vec<RawFinding<'a>>,
    ) -> Vec<RawFinding<'a>> {
        let required_findings: Vec<Vec<RawFinding<'a>>> = rule
            .required
            .iter()
            .map(|required| self.detect_rule(required.rule_index, path, bytes))
            .collect();
        primary
            .into_iter()
            .filter(|finding| {
                rule.required
                    .iter()
                    .zip(&required_findings)
                    .all(|(required, found)| {
                        found.iter().any(|other| {
                            let lines_ok = required.within_lines.is_none_or(|limit| {
                                finding.line.abs_diff(other.line) as u64 <= limit
                            });
                            let columns_ok = required.within_columns.is_none_or(|limit| {
                                finding.column.abs_diff(other.column) as u64 <= limit
                            });
                            lines_ok && columns_ok
                        })
                    })
            })
            .collect()
    }

    /// gitleaks `detectRule` for one rule on one file.
    fn detect_rule<'a>(
        &self,
        rule_index: usize,
        path: &str,
        bytes: &'a [u8],
    ) -> Vec<RawFinding<'a>> {
        let rule = &self.rules[rule_index];
        let mut findings = Vec::new();
        if rule.allowlists.iter().any(|a| a.allows_whole_file(path)) {
            return findings;
        }
        if let Some(path_regex) = &rule.path {
            let path_matches = path_regex.is_match(path.as_bytes());
            if rule.regex.is_none() {
                if path_matches {
                    findings.push(RawFinding {
                        rule_index,
                        line: 0,
                        column: 0,
                        secret: b"",
                        entropy: None,
                    });
                }
                return findings;
            }
            if !path_matches {
                return findings;
            }
        }
        let Some(regex) = &rule.regex else {
            return findings;
        };
        if let Some(quick) = &rule.quick_reject {
            if !quick.is_match(bytes) {
                return findings;
            }
        }

        let mut line_cursor = LineCursor::default();
        for found in regex.find_iter(bytes) {
            // gitleaks trims newlines around the match before using it.
            let (trim_start, matched) = trim_newlines(found.as_bytes());
            if matched.is_empty() {
                continue;
            }
            let start = found.start() + trim_start;
            let end = start + matched.len();
            let (line, line_start) = line_cursor.advance_to(bytes, start);
            let line_end = memchr::memchr(b'\n', &bytes[end..]).map_or(bytes.len(), |p| end + p);
            let line_text = &bytes[line_start..line_end.max(end)];
            if memchr::memmem::find(line_text, GITLEAKS_ALLOW_SIGNATURE).is_some() {
                continue;
            }

            // The secret is a capture group found by matching the rule again
            // on the match text alone, exactly as gitleaks does.
            let mut secret = matched;
            if let Some(groups) = regex.captures(matched) {
                if groups.len() >= 2 {
                    if rule.secret_group > 0 {
                        match groups.get(rule.secret_group) {
                            Some(group) => secret = group.as_bytes(),
                            None if groups.len() <= rule.secret_group => continue,
                            None => secret = b"",
                        }
                    } else if let Some(group) =
                        groups.iter().skip(1).flatten().find(|g| !g.is_empty())
                    {
                        secret = group.as_bytes();
                    }
                }
            }

            let entropy = shannon_entropy(secret);
            if rule.entropy != 0.0 && entropy <= rule.entropy {
                continue;
            }
            let candidate = Candidate {
                matched,
                secret,
                line_text,
            };
            if self
                .global_allowlists
                .iter()
                .any(|a| a.allows_finding(path, &candidate))
                || rule
                    .allowlists
                    .iter()
                    .any(|a| a.allows_finding(path, &candidate))
            {
                continue;
            }
            findings.push(RawFinding {
                rule_index,
                line,
                column: start - line_start + 1,
                secret,
                entropy: Some(entropy),
            });
        }
        findings
    }
}

fn attach_to_rules(rules: &mut [CompiledRule], indices: &[usize], allowlist: CompiledAllowlist) {
    // Compiled regexes share their programs when cloned, so a copy per target
    // rule is cheap.
    for &index in indices {
        rules[index].allowlists.push(allowlist.clone_compiled());
    }
}

impl CompiledAllowlist {
    fn clone_compiled(&self) -> Self {
        Self {
            condition: self.condition,
            has_commits: self.has_commits,
            paths: self.paths.clone(),
            regex_target: self.regex_target,
            regexes: self.regexes.clone(),
            stopwords: self.stopwords.clone(),
        }
    }
}

fn compile_rule(raw: &RawRule) -> Result<CompiledRule, String> {
    let id = raw.id.trim().to_string();
    if id.is_empty() {
        return Err("rule id is missing or empty".to_string());
    }
    let regex = if raw.regex.is_empty() {
        None
    } else {
        Some(go_regex::compile(&raw.regex).map_err(|e| format!("regex: {e}"))?)
    };
    // Only worth having when it compiles; otherwise the full regex runs.
    let quick_reject = go_regex::without_leading_context(&raw.regex)
        .and_then(|stripped| go_regex::compile(&stripped).ok());
    let path = if raw.path.is_empty() {
        None
    } else {
        Some(go_regex::compile(&raw.path).map_err(|e| format!("path: {e}"))?)
    };
    if regex.is_none() && path.is_none() {
        return Err("both regex and path are empty: the rule would have no effect".to_string());
    }
    if raw.secret_group < 0 {
        return Err(format!("secretGroup {} is negative", raw.secret_group));
    }
    let secret_group = usize::try_from(raw.secret_group).unwrap_or(usize::MAX);
    if let Some(regex) = &regex {
        let groups = regex.captures_len() - 1;
        if secret_group > groups {
            return Err(format!(
                "secretGroup {secret_group} but the regex has only {groups} capture group(s)"
            ));
        }
    }
    if !raw.entropy.is_finite() || raw.entropy < 0.0 {
        return Err(format!(
            "entropy {} is not a non-negative number",
            raw.entropy
        ));
    }
    let mut allowlists = Vec::new();
    let raw_allowlists = raw.allowlist.iter().chain(raw.allowlists.iter());
    for (index, raw_allowlist) in raw_allowlists.enumerate() {
        allowlists.push(
            CompiledAllowlist::compile(raw_allowlist)
                .map_err(|e| format!("allowlist #{}: {e}", index + 1))?,
        );
    }
    let mut keywords: Vec<String> = raw
        .keywords
        .iter()
        .map(|k| k.to_lowercase())
        .filter(|k| !k.is_empty())
        .collect();
    keywords.dedup();
    Ok(CompiledRule {
        is_generic: id.to_lowercase().contains("generic"),
        id,
        description: raw.description.clone(),
        regex,
        quick_reject,
        secret_group,
        entropy: raw.entropy,
        path,
        keywords,
        allowlists,
        required: Vec::new(),
        skip_report: raw.skip_report,
    })
}

/// gitleaks `filter`: a generic rule's finding is dropped when a specific rule
/// found a secret containing it on the same line.
fn generic_filter(rules: &[CompiledRule], findings: &[RawFinding<'_>]) -> Vec<bool> {
    findings
        .iter()
        .map(|finding| {
            let rule = &rules[finding.rule_index];
            if !rule.is_generic {
                return true;
            }
            !findings.iter().any(|other| {
                let other_rule = &rules[other.rule_index];
                other.line == finding.line
                    && other.rule_index != finding.rule_index
                    && !other_rule.is_generic
                    && memchr::memmem::find(other.secret, finding.secret).is_some()
            })
        })
        .collect()
}

/// Tracks the line number while matches advance through a file, so each
/// match costs only the bytes since the previous one.
#[derive(Default)]
struct LineCursor {
    position: usize,
    line: usize,
    line_start: usize,
}

impl LineCursor {
    /// Returns the 1-based line of `offset` and the offset where it begins.
    fn advance_to(&mut self, bytes: &[u8], offset: usize) -> (usize, usize) {
        if offset < self.position {
            *self = Self::default();
        }
        for newline in memchr::memchr_iter(b'\n', &bytes[self.position..offset]) {
            self.line += 1;
            self.line_start = self.position + newline + 1;
        }
        self.position = offset;
        (self.line + 1, self.line_start)
    }
}

fn trim_newlines(bytes: &[u8]) -> (usize, &[u8]) {
    let start = bytes
        .iter()
        .position(|&b| b != b'\n')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b'\n')
        .map_or(start, |p| p + 1);
    (start, &bytes[start..end])
}

/// Shannon entropy in bits per character, computed as gitleaks does: counts
/// per character (an invalid UTF-8 byte counts as U+FFFD), divided by the
/// length in bytes.
pub fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts: HashMap<char, usize> = HashMap::new();
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            *counts.entry(c).or_default() += 1;
        }
        if !chunk.invalid().is_empty() {
            *counts.entry(char::REPLACEMENT_CHARACTER).or_default() += chunk.invalid().len();
        }
    }
    let inverse_length = 1.0 / data.len() as f64;
    counts
        .values()
        .map(|&count| {
            let frequency = count as f64 * inverse_length;
            -frequency * frequency.log2()
        })
        .sum()
}

/// A short prefix of the secret and `****`: at most 4 characters, and never
/// more than a quarter of the secret, so short secrets stay hidden.
pub fn redact(secret: &[u8]) -> String {
    let text = String::from_utf8_lossy(secret);
    let length = text.chars().count();
    let shown = (length / 4).min(4);
    let prefix: String = text.chars().take(shown).collect();
    format!("{prefix}****")
}

/// Binary: a NUL byte in the first 8 KiB, or a known binary extension.
pub fn is_binary(path: &str, bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(BINARY_SNIFF_LEN)];
    if memchr::memchr(0, head).is_some() {
        return true;
    }
    let file_name = path.rsplit('/').next().unwrap_or(path);
    match file_name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => BINARY_EXTENSIONS
            .iter()
            .any(|known| extension.eq_ignore_ascii_case(known)),
        _ => false,
    }
}
