//! Reads Falco rules files (lists, macros, rules, appends and overrides) and compiles
//! them into a [`RuleSet`].
//!
//! As in Falco, loading has two phases: every item of every file is *collected* in
//! order (definitions replace, appends extend, `enabled`-only entries toggle), then
//! the final lists, macros and rules are *compiled*. Lists may name earlier lists;
//! conditions see every list and macro whatever the order. A bad item fails alone
//! with its file, line and column; everything else still loads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_event::Priority;
use yaml_serde::{Mapping, Value};

use crate::ast::{Expr, Op};
use crate::compile::{self, Env, MacroDef};
pub use crate::diagnostic::{LoadError, LoadWarning};
use crate::fields::Availability;
use crate::hostnames::{HostRegistry, ResolveOptions};
use crate::output::OutputTemplate;
use crate::parser::parse_condition;
use crate::rule::CompiledRule;
use crate::ruleset::RuleSet;
use crate::source::{FileLayout, Pos, Source};
use crate::tests_format::{parse_rule_tests, RuleTests};

#[derive(Clone)]
struct ListInfo {
    items: Vec<String>,
    /// Definition order, for Falco's "a list sees earlier lists" rule.
    index: usize,
}

#[derive(Clone)]
struct MacroInfo {
    cond: Source,
}

#[derive(Clone)]
struct ExceptionInfo {
    name: String,
    fields: Entry,
    comps: Option<Entry>,
    values: Vec<Entry>,
    pos: Pos,
}

#[derive(Clone, Debug)]
enum Entry {
    One(String),
    Many(Vec<Entry>),
}

/// The tag on the alerts of a rule with `capture: true`: the network stage writes the
/// packets around such an alert (see [`crate`]'s `capture:` rule key).
pub const CAPTURE_TAG: &str = "capture";

#[derive(Clone)]
struct RuleInfo {
    name: String,
    desc: String,
    cond: Source,
    output: String,
    output_pos: Pos,
    priority: Priority,
    tags: Vec<String>,
    enabled: bool,
    source: String,
    exceptions: Vec<ExceptionInfo>,
    exceptions_pos: Pos,
    skip_if_unknown_filter: bool,
    file: Arc<str>,
    pos: Pos,
    tests: RuleTests,
    detector: Option<crate::rate::MassRewriteSpec>,
    /// The detector's `unless:` condition: checked only when the detector decides.
    detector_unless: Option<String>,
}

/// Everything collected from the files, before compilation.
#[derive(Default)]
struct Collector {
    next_index: usize,
    lists: HashMap<String, ListInfo>,
    list_order: Vec<String>,
    macros: HashMap<String, MacroInfo>,
    macro_order: Vec<String>,
    rules: Vec<RuleInfo>,
    rule_index: HashMap<String, usize>,
    errors: Vec<LoadError>,
    warnings: Vec<LoadWarning>,
    required_engine_version: Option<String>,
}

/// Loads rules files in order and compiles them.
///
/// Returns the set of rules that loaded and every error met; an unreadable file or a
/// YAML syntax error fails that file only.
pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> (RuleSet, Vec<LoadError>) {
    load_files_with(paths, &ResolveOptions::default())
}

/// [`load_files`] with a given resolver for the host names conditions mention.
pub fn load_files_with<P: AsRef<Path>>(
    paths: &[P],
    resolve: &ResolveOptions,
) -> (RuleSet, Vec<LoadError>) {
    let mut texts = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        let p = p.as_ref();
        for file in expand_dir(p, &mut errors) {
            match std::fs::read_to_string(&file) {
                Ok(t) => texts.push((file.display().to_string(), t)),
                Err(e) => errors.push(LoadError::at(
                    &file.display().to_string(),
                    Pos { line: 0, col: 0 },
                    None,
                    format!("cannot read: {e}"),
                )),
            }
        }
    }
    let (set, mut errs) = load_texts_with(&texts, resolve);
    errors.append(&mut errs);
    (set, errors)
}

/// A directory stands for its `*.yaml`/`*.yml` files, sorted by name.
fn expand_dir(p: &Path, errors: &mut Vec<LoadError>) -> Vec<PathBuf> {
    if !p.is_dir() {
        return vec![p.to_path_buf()];
    }
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            v.sort();
            v
        }
        Err(e) => {
            errors.push(LoadError::at(
                &p.display().to_string(),
                Pos::default(),
                None,
                format!("cannot read directory: {e}"),
            ));
            Vec::new()
        }
    }
}

/// Loads rules from in-memory texts `(file name, content)`, in order.
pub fn load_texts(files: &[(String, String)]) -> (RuleSet, Vec<LoadError>) {
    load_texts_with(files, &ResolveOptions::default())
}

/// [`load_texts`] with a given resolver for the host names conditions mention.
pub fn load_texts_with(
    files: &[(String, String)],
    resolve: &ResolveOptions,
) -> (RuleSet, Vec<LoadError>) {
    let mut c = Collector::default();
    for (name, text) in files {
        c.collect_file(name, text);
    }
    c.compile(resolve)
}

/// A rule's `detector:` mapping: `type: mass_rewrite` with optional `files` (at least
/// 2), `window_secs` (at least 1) and `unless` (a condition checked only when the
/// detector decides: exceptions too costly to evaluate on every event).
fn parse_detector(
    d: &yaml_serde::Mapping,
) -> Result<(crate::rate::MassRewriteSpec, Option<String>), String> {
    let mut spec = crate::rate::MassRewriteSpec::default();
    let mut unless = None;
    let mut typed = false;
    for (k, v) in d {
        let key = scalar_text(k).unwrap_or_default();
        let number = |min: u64| -> Result<u64, String> {
            v.as_u64()
                .filter(|n| *n >= min)
                .ok_or_else(|| format!("`{key}` must be a whole number of at least {min}"))
        };
        match key.as_str() {
            "type" => match scalar_text(v).as_deref() {
                Some("mass_rewrite") => typed = true,
                other => return Err(format!("unknown type {other:?} (expected mass_rewrite)")),
            },
            "files" => spec.files = number(2)? as usize,
            "window_secs" => spec.window_secs = number(1)?,
            "unless" => unless = Some(scalar_text(v).ok_or("`unless` must be a condition string")?),
            other => {
                return Err(format!(
                    "unknown key `{other}` (expected type, files, window_secs, unless)"
                ))
            }
        }
    }
    if !typed {
        return Err("needs `type: mass_rewrite`".into());
    }
    Ok((spec, unless))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn to_entry(v: &Value) -> Option<Entry> {
    match v {
        Value::Sequence(s) => s
            .iter()
            .map(to_entry)
            .collect::<Option<Vec<_>>>()
            .map(Entry::Many),
        other => scalar_text(other).map(Entry::One),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Update {
    Define,
    Append,
    Replace,
}

impl Collector {
    fn collect_file(&mut self, file: &str, text: &str) {
        let file_arc: Arc<str> = file.into();
        let doc: Value = match yaml_serde::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let (line, col) = e
                    .location()
                    .map(|l| (l.line() as u32, l.column() as u32))
                    .unwrap_or((1, 1));
                self.errors.push(LoadError::at(
                    file,
                    Pos { line, col },
                    None,
                    format!("invalid YAML: {e}"),
                ));
                return;
            }
        };
        let items = match doc {
            Value::Null => return,
            Value::Sequence(s) => s,
            _ => {
                self.errors.push(LoadError::at(
                    file,
                    Pos { line: 1, col: 1 },
                    None,
                    "expected a sequence of items (`- rule: …`, `- macro: …`, `- list: …`)",
                ));
                return;
            }
        };
        let layout = FileLayout::new(text, items.len());
        for (i, item) in items.iter().enumerate() {
            let pos = layout.item_pos(i);
            let Value::Mapping(m) = item else {
                self.errors.push(LoadError::at(
                    file,
                    pos,
                    None,
                    "expected a mapping (`rule:`, `macro:`, `list:` …)",
                ));
                continue;
            };
            let r = if m.contains_key("rule") {
                self.collect_rule(&file_arc, &layout, i, m)
            } else if m.contains_key("macro") {
                self.collect_macro(&file_arc, &layout, i, m)
            } else if m.contains_key("list") {
                self.collect_list(m)
            } else if let Some(v) = m.get("required_engine_version") {
                self.required_engine_version = scalar_text(v);
                Ok(())
            } else if m.contains_key("required_plugin_versions") {
                // Plugins are a Falco runtime concept; Rampart has none to check.
                self.warnings.push(LoadError::at(
                    file,
                    pos,
                    None,
                    "required_plugin_versions ignored: Rampart has no plugins",
                ));
                Ok(())
            } else {
                let keys: Vec<String> = m.keys().filter_map(scalar_text).collect();
                Err((None, format!("unknown item with keys [{}]: expected rule, macro, list, required_engine_version or required_plugin_versions", keys.join(", "))))
            };
            if let Err((item_name, msg)) = r {
                self.errors.push(LoadError::at(file, pos, item_name, msg));
            }
        }
    }

    fn update_mode(m: &Mapping, field: &str) -> Result<Update, String> {
        let append = match m.get("append") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("`append` must be true or false".into()),
        };
        match m.get("override") {
            None => Ok(if append {
                Update::Append
            } else {
                Update::Define
            }),
            Some(_) if append => Err("`append` and `override` cannot be used together".into()),
            Some(Value::Mapping(o)) => {
                let mut mode = None;
                for (k, v) in o {
                    let k = scalar_text(k).unwrap_or_default();
                    let v = scalar_text(v).unwrap_or_default();
                    let this = match v.as_str() {
                        "append" => Update::Append,
                        "replace" => Update::Replace,
                        _ => {
                            return Err(format!(
                                "override of `{k}` must be `append` or `replace`, found `{v}`"
                            ))
                        }
                    };
                    if k == field {
                        mode = Some(this);
                    }
                }
                Ok(mode.unwrap_or(Update::Replace))
            }
            Some(_) => Err("`override` must be a mapping like {condition: append}".into()),
        }
    }

    fn collect_list(&mut self, m: &Mapping) -> Result<(), (Option<String>, String)> {
        let name = m
            .get("list")
            .and_then(scalar_text)
            .ok_or((None, "list name must be a string".to_string()))?;
        let label = Some(format!("list '{name}'"));
        let items = match m.get("items") {
            Some(Value::Sequence(s)) => s
                .iter()
                .map(|v| {
                    scalar_text(v).ok_or_else(|| {
                        (
                            label.clone(),
                            "list items must be strings or numbers".to_string(),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(Value::Null) => Vec::new(),
            _ => return Err((label, "list needs `items:` with a sequence".into())),
        };
        let mode = Self::update_mode(m, "items").map_err(|e| (label.clone(), e))?;
        match mode {
            Update::Define | Update::Replace
                if mode == Update::Define || self.lists.contains_key(&name) =>
            {
                let index = self.next_index;
                self.next_index += 1;
                if !self.lists.contains_key(&name) {
                    self.list_order.push(name.clone());
                }
                let index = self
                    .lists
                    .get(&name)
                    .map(|l| l.index)
                    .filter(|_| mode == Update::Replace)
                    .unwrap_or(index);
                self.lists.insert(name, ListInfo { items, index });
            }
            _ => {
                let Some(prev) = self.lists.get_mut(&name) else {
                    return Err((
                        label,
                        "list has `append`/`override` but no list by that name was defined before"
                            .into(),
                    ));
                };
                prev.items.extend(items);
            }
        }
        Ok(())
    }

    fn collect_macro(
        &mut self,
        file: &Arc<str>,
        layout: &FileLayout<'_>,
        i: usize,
        m: &Mapping,
    ) -> Result<(), (Option<String>, String)> {
        let name = m
            .get("macro")
            .and_then(scalar_text)
            .ok_or((None, "macro name must be a string".to_string()))?;
        let label = Some(format!("macro '{name}'"));
        let cond = m.get("condition").and_then(scalar_text).ok_or_else(|| {
            (
                label.clone(),
                "macro needs a `condition:` string".to_string(),
            )
        })?;
        let src = layout.value_source(file, i, "condition", &cond);
        let mode = Self::update_mode(m, "condition").map_err(|e| (label.clone(), e))?;
        match mode {
            Update::Append => {
                let Some(prev) = self.macros.get_mut(&name) else {
                    return Err((
                        label,
                        "macro has `append` but no macro by that name was defined before".into(),
                    ));
                };
                prev.cond = prev.cond.append(" ", &src);
            }
            Update::Replace if !self.macros.contains_key(&name) => {
                return Err((
                    label,
                    "macro has `override` but no macro by that name was defined before".into(),
                ));
            }
            _ => {
                if !self.macros.contains_key(&name) {
                    self.macro_order.push(name.clone());
                }
                self.macros.insert(name, MacroInfo { cond: src });
            }
        }
        Ok(())
    }

    fn collect_rule(
        &mut self,
        file: &Arc<str>,
        layout: &FileLayout<'_>,
        i: usize,
        m: &Mapping,
    ) -> Result<(), (Option<String>, String)> {
        let name = m
            .get("rule")
            .and_then(scalar_text)
            .ok_or((None, "rule name must be a string".to_string()))?;
        let label = Some(format!("rule '{name}'"));
        let e = |msg: String| (label.clone(), msg);
        let pos = layout.item_pos(i);
        let key_pos = |k: &str| layout.key_pos(i, k).map(|(p, _)| p).unwrap_or(pos);
        let get_str = |k: &str| -> Result<Option<String>, (Option<String>, String)> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => scalar_text(v)
                    .map(Some)
                    .ok_or_else(|| e(format!("`{k}` must be a string"))),
            }
        };
        let cond = get_str("condition")?;
        let output = get_str("output")?;
        let desc = get_str("desc")?;
        let priority = match get_str("priority")? {
            Some(p) => Some(Priority::parse(&p).ok_or_else(|| e(format!("unknown priority `{p}` (expected emergency, alert, critical, error, warning, notice, informational, debug)")))?),
            None => None,
        };
        let mut tags = match m.get("tags") {
            None | Some(Value::Null) => None,
            Some(Value::Sequence(s)) => Some(s.iter().filter_map(scalar_text).collect::<Vec<_>>()),
            Some(_) => return Err(e("`tags` must be a sequence".into())),
        };
        // Falco's `capture: true` (with `capture_duration` in ms): the rule's alerts ask
        // for the packets around them. They carry the tag `capture`, which the network
        // stage acts on (its capture window is `network.capture`'s, not the duration).
        match m.get("capture") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                let t = tags.get_or_insert_with(Vec::new);
                if !t.iter().any(|x| x == CAPTURE_TAG) {
                    t.push(CAPTURE_TAG.to_string());
                }
            }
            Some(_) => return Err(e("`capture` must be true or false".into())),
        }
        match m.get("capture_duration") {
            None | Some(Value::Null) => {}
            Some(v) if v.as_u64().is_some() => {}
            Some(_) => {
                return Err(e(
                    "`capture_duration` must be a whole number of milliseconds".into(),
                ))
            }
        }
        let enabled = match m.get("enabled") {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(e("`enabled` must be true or false".into())),
        };
        let exceptions = match m.get("exceptions") {
            None | Some(Value::Null) => None,
            Some(Value::Sequence(s)) => Some(
                s.iter()
                    .map(|x| parse_exception(x, key_pos("exceptions")))
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(e)?,
            ),
            Some(_) => return Err(e("`exceptions` must be a sequence".into())),
        };
        let source = get_str("source")?.unwrap_or_else(|| "syscall".into());
        let tests = match m.get("tests") {
            None => RuleTests::default(),
            Some(v) => parse_rule_tests(v).map_err(|msg| e(format!("tests: {msg}")))?,
        };
        let skip_if_unknown_filter =
            matches!(m.get("skip-if-unknown-filter"), Some(Value::Bool(true)));
        let (detector, detector_unless) = match m.get("detector") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Mapping(d)) => {
                let (spec, unless) =
                    parse_detector(d).map_err(|msg| e(format!("detector: {msg}")))?;
                (Some(spec), unless)
            }
            Some(_) => {
                return Err(e(
                    "`detector` must be a mapping, e.g. {type: mass_rewrite, files: 10, window_secs: 60}"
                        .into(),
                ))
            }
        };
        let cond_src = cond
            .as_ref()
            .map(|c| layout.value_source(file, i, "condition", c));
        let is_update = m.contains_key("append") || m.contains_key("override");

        if is_update {
            let mode_for = |f: &str| Self::update_mode(m, f).map_err(&e);
            let Some(&idx) = self.rule_index.get(&name) else {
                return Err(e(
                    "rule has `append`/`override` but no rule by that name was defined before"
                        .into(),
                ));
            };
            let prev = &mut self.rules[idx];
            if let Some(c) = &cond_src {
                match mode_for("condition")? {
                    Update::Append | Update::Define => prev.cond = prev.cond.append(" ", c),
                    Update::Replace => prev.cond = c.clone(),
                }
            }
            if let Some(o) = output {
                match mode_for("output")? {
                    Update::Replace => prev.output = o,
                    _ => prev.output = format!("{} {o}", prev.output),
                }
            }
            if let Some(d) = desc {
                match mode_for("desc")? {
                    Update::Replace => prev.desc = d,
                    _ => prev.desc = format!("{} {d}", prev.desc),
                }
            }
            if let Some(t) = tags {
                match mode_for("tags")? {
                    Update::Replace => prev.tags = t,
                    _ => {
                        for tag in t {
                            if !prev.tags.contains(&tag) {
                                prev.tags.push(tag);
                            }
                        }
                    }
                }
            }
            if let Some(exs) = exceptions {
                match mode_for("exceptions")? {
                    Update::Replace => prev.exceptions = exs,
                    _ => {
                        for ex in exs {
                            match prev.exceptions.iter_mut().find(|p| p.name == ex.name) {
                                Some(p) => p.values.extend(ex.values),
                                None => prev.exceptions.push(ex),
                            }
                        }
                    }
                }
            }
            if let Some(p) = priority {
                prev.priority = p;
            }
            if let Some(en) = enabled {
                prev.enabled = en;
            }
            if !tests.is_empty() {
                prev.tests.extend(tests);
            }
            return Ok(());
        }

        // Old-style toggle: only `rule` and `enabled`.
        if cond_src.is_none() && output.is_none() && enabled.is_some() {
            let Some(&idx) = self.rule_index.get(&name) else {
                return Err(e(
                    "rule has only `enabled` but no rule by that name was defined before".into(),
                ));
            };
            self.rules[idx].enabled = enabled.unwrap_or(true);
            return Ok(());
        }
        let missing: Vec<&str> = [
            ("condition", cond_src.is_none()),
            ("output", output.is_none()),
            ("priority", priority.is_none()),
        ]
        .iter()
        .filter(|(_, miss)| *miss)
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(e(format!(
                "rule is missing required key(s): {}",
                missing.join(", ")
            )));
        }
        let info = RuleInfo {
            name: name.clone(),
            desc: desc.unwrap_or_default(),
            cond: cond_src.unwrap_or_else(|| Source::synthetic(file.clone(), String::new(), pos)),
            output: output.unwrap_or_default(),
            output_pos: key_pos("output"),
            priority: priority.unwrap_or(Priority::Warning),
            tags: tags.unwrap_or_default(),
            enabled: enabled.unwrap_or(true),
            source,
            exceptions: exceptions.unwrap_or_default(),
            exceptions_pos: key_pos("exceptions"),
            skip_if_unknown_filter,
            file: file.clone(),
            pos,
            tests,
            detector,
            detector_unless,
        };
        match self.rule_index.get(&name) {
            Some(&idx) => self.rules[idx] = info,
            None => {
                self.rule_index.insert(name, self.rules.len());
                self.rules.push(info);
            }
        }
        Ok(())
    }

    fn compile(self, resolve: &ResolveOptions) -> (RuleSet, Vec<LoadError>) {
        let Collector {
            lists: list_infos,
            list_order,
            macros: macro_infos,
            macro_order,
            rules,
            mut errors,
            mut warnings,
            ..
        } = self;

        let lists = expand_lists(&list_infos, &list_order);

        // Macros: parse each once; their errors are reported once, at the macro.
        let mut macros: HashMap<String, MacroDef> = HashMap::new();
        for name in &macro_order {
            let Some(info) = macro_infos.get(name) else {
                continue;
            };
            let source = Arc::new(info.cond.clone());
            let ast = match parse_condition(&info.cond.text) {
                Ok(a) => Ok(a),
                Err(pe) => {
                    let pos = info.cond.position(pe.offset);
                    errors.push(LoadError::at(
                        &info.cond.file,
                        pos,
                        Some(format!("macro '{name}'")),
                        pe.message.clone(),
                    ));
                    Err(pe.message)
                }
            };
            macros.insert(name.clone(), MacroDef { ast, source });
        }
        let hosts = HostRegistry::default();
        let env = Env {
            lists: &lists,
            macros: &macros,
            hosts: &hosts,
        };

        let mut compiled = Vec::new();
        for r in rules {
            let label = Some(format!("rule '{}'", r.name));
            if r.source != "syscall" {
                warnings.push(LoadError::at(
                    &r.file,
                    r.pos,
                    label,
                    format!(
                        "source `{}` is not handled by Rampart; rule skipped",
                        r.source
                    ),
                ));
                continue;
            }
            let full = match build_condition(&r) {
                Ok(s) => s,
                Err(msg) => {
                    errors.push(LoadError::at(&r.file, r.exceptions_pos, label, msg));
                    continue;
                }
            };
            let expr: Expr = match parse_condition(&full.text) {
                Ok(e) => e,
                Err(pe) => {
                    errors.push(LoadError::at(
                        &r.file,
                        full.position(pe.offset),
                        label,
                        pe.message,
                    ));
                    continue;
                }
            };
            let full = Arc::new(full);
            let (c, notes) = match compile::compile(&expr, &full, &env) {
                Ok(x) => x,
                Err(ce) => {
                    let unknown = ce.message.starts_with("unknown field")
                        || ce.message.contains("is not supported");
                    if r.skip_if_unknown_filter && unknown {
                        warnings.push(LoadError::at(
                            &ce.file,
                            ce.pos,
                            label,
                            format!("skipped (skip-if-unknown-filter): {}", ce.message),
                        ));
                    } else {
                        errors.push(LoadError::at(&ce.file, ce.pos, label, ce.message));
                    }
                    continue;
                }
            };
            let output = match OutputTemplate::parse(&r.output) {
                Ok((t, out_notes)) => {
                    for n in out_notes {
                        warnings.push(LoadError::at(
                            &r.file,
                            r.output_pos,
                            label.clone(),
                            format!("output: {n}"),
                        ));
                    }
                    t
                }
                Err(msg) => {
                    errors.push(LoadError::at(
                        &r.file,
                        r.output_pos,
                        label,
                        format!("output: {msg}"),
                    ));
                    continue;
                }
            };
            for (field, avail) in &notes.field_notes {
                let msg = match avail {
                    Availability::NotProvided(why) => format!("condition uses `{field}`, which Rampart's events do not provide yet ({why}); checks on it are always false"),
                    Availability::Approximate(why) => format!("condition uses `{field}`, approximated: {why}"),
                    Availability::Provided | Availability::Probe(_) => continue,
                };
                warnings.push(LoadError::at(&r.file, r.pos, label.clone(), msg));
            }
            if c.kinds.0 == 0 {
                warnings.push(LoadError::at(
                    &r.file,
                    r.pos,
                    label.clone(),
                    "its event types are not produced by Rampart's sensor: the rule can never fire",
                ));
            }
            let detector = r.detector.map(|spec| {
                crate::rate::Detector::MassRewrite(crate::rate::MassRewrite::new(spec))
            });
            let detector_unless = match &r.detector_unless {
                None => None,
                Some(text) => {
                    let src = Arc::new(Source::synthetic(r.file.clone(), text.clone(), r.pos));
                    let compiled =
                        parse_condition(text)
                            .map_err(|pe| pe.message)
                            .and_then(|expr| {
                                compile::compile(&expr, &src, &env).map_err(|ce| ce.message)
                            });
                    match compiled {
                        Ok((c, _)) => Some(c),
                        Err(msg) => {
                            errors.push(LoadError::at(
                                &r.file,
                                r.pos,
                                label,
                                format!("detector unless: {msg}"),
                            ));
                            continue;
                        }
                    }
                }
            };
            compiled.push(
                CompiledRule::new(
                    r.name,
                    r.desc,
                    r.priority,
                    r.tags,
                    r.enabled,
                    c,
                    output,
                    r.file.to_string(),
                    r.pos,
                    r.tests,
                    notes.field_notes,
                )
                .with_detector(detector, detector_unless),
            );
        }
        // Host names the conditions compare addresses with: resolved before the
        // set is used (bounded by the timeout).
        let hosts = Arc::new(hosts.into_table(resolve.clone()));
        hosts.refresh();
        let set = RuleSet::new(compiled, warnings, hosts);
        (set, errors)
    }
}

/// One condition compiled on its own (a query's `--where`), with the lists and macros
/// of the rules texts it was compiled against.
pub struct Condition {
    compiled: compile::Compiled,
    // Host names the condition compares addresses with, resolved at compile time.
    _hosts: Arc<crate::hostnames::HostTable>,
    /// Fields the condition uses that Rampart lacks or approximates.
    pub field_notes: Vec<(String, Availability)>,
}

impl Condition {
    /// True when the event satisfies the condition.
    pub fn matches(&self, ev: &rampart_event::Event) -> bool {
        self.compiled.matches(&crate::fields::EvalCtx::new(ev))
    }

    /// Event kinds the condition can match.
    pub fn kinds(&self) -> compile::KindSet {
        self.compiled.kinds
    }
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condition")
            .field("kinds", &self.compiled.kinds.0)
            .finish()
    }
}

/// Compiles a condition in the rule language against the lists and macros defined in
/// `context` (rules texts `(file name, content)`, e.g. the shipped `rules/`; their
/// rules are not compiled). Errors locate themselves in `condition` (file `<where>`).
pub fn compile_condition(
    condition: &str,
    context: &[(String, String)],
) -> Result<Condition, LoadError> {
    const FILE: &str = "<where>";
    let mut c = Collector::default();
    for (name, text) in context {
        c.collect_file(name, text);
    }
    let lists = expand_lists(&c.lists, &c.list_order);
    let mut macros: HashMap<String, MacroDef> = HashMap::new();
    for name in &c.macro_order {
        let Some(info) = c.macros.get(name) else {
            continue;
        };
        let ast = parse_condition(&info.cond.text).map_err(|pe| pe.message);
        let source = Arc::new(info.cond.clone());
        macros.insert(name.clone(), MacroDef { ast, source });
    }
    let source = Arc::new(Source::synthetic(
        FILE.into(),
        condition.to_owned(),
        Pos { line: 1, col: 1 },
    ));
    let at = |offset: usize, msg: String| {
        LoadError::at(
            FILE,
            Pos {
                line: 1,
                col: offset as u32 + 1,
            },
            None,
            msg,
        )
    };
    let expr = parse_condition(condition).map_err(|pe| at(pe.offset, pe.message))?;
    let hosts = HostRegistry::default();
    let env = Env {
        lists: &lists,
        macros: &macros,
        hosts: &hosts,
    };
    let (compiled, notes) = compile::compile(&expr, &source, &env)
        .map_err(|ce| LoadError::at(&ce.file, ce.pos, None, ce.message))?;
    let hosts = Arc::new(hosts.into_table(ResolveOptions::default()));
    hosts.refresh();
    Ok(Condition {
        compiled,
        _hosts: hosts,
        field_notes: notes.field_notes,
    })
}

/// Expands references to lists defined earlier (Falco's visibility rule), strips quotes.
fn expand_lists(
    infos: &HashMap<String, ListInfo>,
    order: &[String],
) -> HashMap<String, Vec<String>> {
    let mut lists: HashMap<String, Vec<String>> = HashMap::new();
    let mut ordered: Vec<(&String, &ListInfo)> = order
        .iter()
        .filter_map(|n| infos.get(n).map(|l| (n, l)))
        .collect();
    ordered.sort_by_key(|(_, l)| l.index);
    for (name, info) in &ordered {
        // Lists are sets (`in`, `pmatch`, `intersects`): duplicates are dropped, so
        // lists that each include the previous one twice stay small instead of
        // doubling at every level.
        let mut out = Vec::with_capacity(info.items.len());
        let mut seen: HashSet<String> = HashSet::with_capacity(info.items.len());
        for item in &info.items {
            match infos
                .get(item)
                .filter(|r| r.index < info.index)
                .and_then(|_| lists.get(item))
            {
                Some(expanded) => {
                    for e in expanded {
                        if seen.insert(e.clone()) {
                            out.push(e.clone());
                        }
                    }
                }
                None => {
                    let v = unquote_item(item);
                    if seen.insert(v.clone()) {
                        out.push(v);
                    }
                }
            }
        }
        lists.insert((*name).clone(), out);
    }
    lists
}

/// Parsed conditions for the benchmark's tree-walking baseline: rule ASTs (with
/// exceptions), macro ASTs and expanded lists. Items that fail are left out.
#[doc(hidden)]
pub struct AstBundle {
    pub rules: Vec<(String, Expr)>,
    pub macros: HashMap<String, Expr>,
    pub lists: HashMap<String, Vec<String>>,
}

#[doc(hidden)]
pub fn rule_asts(files: &[(String, String)]) -> AstBundle {
    let mut c = Collector::default();
    for (name, text) in files {
        c.collect_file(name, text);
    }
    let lists = expand_lists(&c.lists, &c.list_order);
    let macros = c
        .macros
        .iter()
        .filter_map(|(n, m)| parse_condition(&m.cond.text).ok().map(|e| (n.clone(), e)))
        .collect();
    let rules = c
        .rules
        .iter()
        .filter(|r| r.enabled)
        .filter_map(|r| {
            let full = build_condition(r).ok()?;
            parse_condition(&full.text)
                .ok()
                .map(|e| (r.name.clone(), e))
        })
        .collect();
    AstBundle {
        rules,
        macros,
        lists,
    }
}

/// Falco's list item form: `"a b"` / `'a'` stand for the text inside the quotes.
fn unquote_item(item: &str) -> String {
    let t = item.trim();
    if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        let inner = &t[1..t.len() - 1];
        return inner
            .replace("\\\"", "\"")
            .replace("\\'", "'")
            .replace("\\\\", "\\");
    }
    item.to_string()
}

fn parse_exception(v: &Value, pos: Pos) -> Result<ExceptionInfo, String> {
    let Value::Mapping(m) = v else {
        return Err("each exception must be a mapping with name, fields, comps, values".into());
    };
    let name = m
        .get("name")
        .and_then(scalar_text)
        .ok_or("exception needs a `name`")?;
    let fields = m
        .get("fields")
        .and_then(to_entry)
        .ok_or_else(|| format!("exception '{name}' needs `fields`"))?;
    let comps = m.get("comps").and_then(to_entry);
    let values = match m.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|x| {
                to_entry(x)
                    .ok_or_else(|| format!("exception '{name}': values must be strings or lists"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("exception '{name}': `values` must be a sequence")),
    };
    Ok(ExceptionInfo {
        name,
        fields,
        comps,
        values,
        pos,
    })
}

/// Quotes a value holding blanks, as Falco does when it writes exceptions out.
fn quote_item(v: &str) -> String {
    if v.contains(' ') && !v.starts_with('"') && !v.starts_with('\'') {
        format!("\"{}\"", v.replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

/// The rule's condition with its exceptions appended, Falco-style:
/// `(cond) and not (f in (v1, v2)) and not ((f1 = a and f2 = b) or (…))`.
fn build_condition(r: &RuleInfo) -> Result<Source, String> {
    if r.exceptions.is_empty() {
        return Ok(r.cond.clone());
    }
    let mut full = r.cond.wrap("(", ")");
    for ex in &r.exceptions {
        if ex.values.is_empty() {
            continue;
        }
        let text = match &ex.fields {
            Entry::One(field) => {
                let comp = match &ex.comps {
                    None => "in".to_string(),
                    Some(Entry::One(c)) => c.clone(),
                    Some(Entry::Many(_)) => {
                        return Err(format!(
                            "exception '{}': fields and comps must both be strings",
                            ex.name
                        ))
                    }
                };
                if !matches!(comp.as_str(), "in" | "pmatch" | "intersects") {
                    return Err(format!("exception '{}': when fields is a single value, comps must be one of (in, pmatch, intersects)", ex.name));
                }
                let mut vals = Vec::new();
                for v in &ex.values {
                    match v {
                        Entry::One(s) => vals.push(quote_item(s)),
                        Entry::Many(_) => {
                            return Err(format!(
                                "exception '{}': expected values to be a list of strings",
                                ex.name
                            ))
                        }
                    }
                }
                format!("({field} {comp} ({}))", vals.join(", "))
            }
            Entry::Many(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| match f {
                        Entry::One(s) => Ok(s.clone()),
                        Entry::Many(_) => {
                            Err(format!("exception '{}': fields must be strings", ex.name))
                        }
                    })
                    .collect::<Result<_, _>>()?;
                let comps: Vec<String> = match &ex.comps {
                    None => vec!["=".into(); fields.len()],
                    Some(Entry::Many(c)) => c
                        .iter()
                        .map(|x| match x {
                            Entry::One(s) => s.clone(),
                            Entry::Many(_) => String::new(),
                        })
                        .collect(),
                    Some(Entry::One(_)) => {
                        return Err(format!(
                            "exception '{}': fields is a list, so comps must be a list too",
                            ex.name
                        ))
                    }
                };
                if comps.len() != fields.len() {
                    return Err(format!(
                        "exception '{}': fields and comps lists must have equal length",
                        ex.name
                    ));
                }
                for c in &comps {
                    if Op::parse(c).is_none() {
                        return Err(format!(
                            "exception '{}': `{c}` is not a supported comparison operator",
                            ex.name
                        ));
                    }
                }
                let mut rows = Vec::new();
                for row in &ex.values {
                    let Entry::Many(vals) = row else {
                        return Err(format!(
                            "exception '{}': each value must be a list as long as fields",
                            ex.name
                        ));
                    };
                    if vals.len() != fields.len() {
                        return Err(format!(
                            "exception '{}': fields and values lists must have equal length",
                            ex.name
                        ));
                    }
                    let parts: Vec<String> = fields
                        .iter()
                        .zip(&comps)
                        .zip(vals)
                        .map(|((f, c), v)| {
                            let is_list_op = Op::parse(c).is_some_and(Op::takes_list);
                            let val = match v {
                                Entry::Many(items) => format!(
                                    "({})",
                                    items
                                        .iter()
                                        .map(|i| match i {
                                            Entry::One(s) => quote_item(s),
                                            Entry::Many(_) => String::new(),
                                        })
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                                Entry::One(s) if is_list_op && !s.starts_with('(') => {
                                    format!("({})", quote_item(s))
                                }
                                Entry::One(s) => quote_item(s),
                            };
                            format!("{f} {c} {val}")
                        })
                        .collect();
                    rows.push(format!("({})", parts.join(" and ")));
                }
                format!("({})", rows.join(" or "))
            }
        };
        let ex_src = Source::synthetic(r.file.clone(), text, ex.pos);
        full = full.append(" and not ", &ex_src);
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (RuleSet, Vec<LoadError>) {
        load_texts(&[("t.yaml".to_string(), text.to_string())])
    }

    #[test]
    fn errors_point_into_the_file() {
        let (set, errs) = load(
            "- macro: m\n  condition: proc.name = sh\n- rule: good\n  desc: d\n  condition: m\n  output: o\n  priority: INFO\n- rule: bad\n  desc: d\n  condition: >\n    m and\n    proc.pid contains x\n  output: o\n  priority: INFO\n",
        );
        assert_eq!(set.rules().len(), 1);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let e = &errs[0];
        assert_eq!((e.line, e.col), (12, 14), "{e}");
        assert!(e.message.contains("contains"), "{e}");
    }

    #[test]
    fn capture_true_tags_the_rule_and_a_bad_capture_is_an_error() {
        let (set, errs) = load(
            "- rule: r\n  desc: d\n  condition: proc.name = sh\n  output: o\n  priority: INFO\n  tags: [shell]\n  capture: true\n  capture_duration: 5000\n- rule: q\n  desc: d\n  condition: proc.name = sh\n  output: o\n  priority: INFO\n  capture: sometimes\n",
        );
        assert_eq!(set.rules().len(), 1);
        assert_eq!(set.rules()[0].tags, vec!["shell", CAPTURE_TAG]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].message.contains("`capture` must be true or false"),
            "{}",
            errs[0]
        );
        assert_eq!(errs[0].line, 9, "{}", errs[0]);
    }

    #[test]
    fn lists_macros_append_and_override() {
        let (set, errs) = load(
            "- list: a\n  items: [x]\n- list: b\n  items: [a, y]\n- list: a\n  items: [z]\n  append: true\n- macro: m\n  condition: proc.name in (b)\n- macro: m\n  condition: or proc.name = w\n  override:\n    condition: append\n- rule: r\n  desc: d\n  condition: m\n  output: o\n  priority: INFO\n- rule: r\n  enabled: false\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert!(!set.rules()[0].enabled);
    }

    #[test]
    fn exceptions_expand_like_falco() {
        let r = RuleInfo {
            name: "r".into(),
            desc: String::new(),
            cond: Source::synthetic("f".into(), "proc.name = sh".into(), Pos::default()),
            output: String::new(),
            output_pos: Pos::default(),
            priority: Priority::Informational,
            tags: vec![],
            enabled: true,
            source: "syscall".into(),
            exceptions: vec![ExceptionInfo {
                name: "e".into(),
                fields: Entry::Many(vec![
                    Entry::One("proc.pname".into()),
                    Entry::One("fd.name".into()),
                ]),
                comps: Some(Entry::Many(vec![
                    Entry::One("=".into()),
                    Entry::One("in".into()),
                ])),
                values: vec![Entry::Many(vec![
                    Entry::One("bash x".into()),
                    Entry::One("l".into()),
                ])],
                pos: Pos::default(),
            }],
            exceptions_pos: Pos::default(),
            skip_if_unknown_filter: false,
            file: "f".into(),
            pos: Pos::default(),
            tests: RuleTests::default(),
            detector: None,
            detector_unless: None,
        };
        assert_eq!(
            build_condition(&r).unwrap().text,
            "(proc.name = sh) and not ((proc.pname = \"bash x\" and fd.name in (l)))"
        );
    }

    #[test]
    fn one_condition_compiles_against_macros() {
        let ctx = vec![(
            "m.yaml".to_string(),
            "- list: shells\n  items: [sh, bash]\n- macro: spawned_shell\n  condition: evt.type = execve and proc.name in (shells)\n".to_string(),
        )];
        let c = super::compile_condition("spawned_shell and container.id != host", &ctx).unwrap();
        assert!(c.kinds().0 != 0);
        let e = super::compile_condition("proc.name = ", &ctx).unwrap_err();
        assert_eq!(e.file, "<where>");
        assert!(super::compile_condition("no_such_macro", &ctx).is_err());
    }
}
