//! Compiled rules indexed by event kind ([`RuleSet`], immutable) and the reloadable
//! [`RuleEngine`] that turns events into alerts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rampart_event::{Alert, Event, EventKind, Priority};

use crate::alerts::{NoiseConfig, NoiseControl};
use crate::compile::{Compiled, FastMap, KindSet, Predicate};
use crate::fields::{Availability, EvalCtx};
use crate::loader::{load_files, LoadError, LoadWarning};
use crate::output::{OutputTemplate, RenderedOutput};
use crate::source::Pos;
use crate::tests_format::RuleTests;

/// One rule, ready to evaluate.
pub struct CompiledRule {
    pub name: String,
    pub desc: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    /// MITRE ATT&CK technique / tactic ids found in the tags (`T1059.004`, `TA0003`).
    pub mitre: Vec<String>,
    pub enabled: bool,
    pub kinds: KindSet,
    /// `proc.name` values the rule needs, when its condition implies a set.
    pub proc_names: Option<Vec<String>>,
    predicate: Predicate,
    output: OutputTemplate,
    pub file: String,
    pub pos: Pos,
    pub tests: RuleTests,
    /// Fields the condition uses that Rampart lacks or approximates.
    pub field_notes: Vec<(String, Availability)>,
}

impl CompiledRule {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        desc: String,
        priority: Priority,
        tags: Vec<String>,
        enabled: bool,
        compiled: Compiled,
        output: OutputTemplate,
        file: String,
        pos: Pos,
        tests: RuleTests,
        field_notes: Vec<(String, Availability)>,
    ) -> Self {
        let mitre = tags.iter().filter(|t| is_mitre_id(t)).cloned().collect();
        Self {
            name,
            desc,
            priority,
            tags,
            mitre,
            enabled,
            kinds: compiled.kinds,
            proc_names: compiled.proc_names,
            predicate: compiled.predicate,
            output,
            file,
            pos,
            tests,
            field_notes,
        }
    }

    /// Evaluates the condition alone (no kind index, ignores `enabled`).
    pub fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        self.kinds.contains(ctx.ev.kind()) && (self.predicate)(ctx)
    }

    pub fn render(&self, ctx: &EvalCtx<'_>) -> RenderedOutput {
        self.output.render(ctx)
    }

    /// MITRE tactic names from `mitre_<tactic>` tags.
    pub fn tactics(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter_map(|t| t.strip_prefix("mitre_"))
            .map(|t| t.replace('_', " "))
            .collect()
    }
}

/// `T1059`, `T1059.004`, `TA0002`.
pub fn is_mitre_id(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    if let Some(rest) = t.strip_prefix("TA") {
        return rest.len() == 4 && digits(rest.as_bytes());
    }
    if b.first() != Some(&b'T') {
        return false;
    }
    match t[1..].split_once('.') {
        None => t.len() == 5 && digits(&b[1..]),
        Some((a, s)) => {
            a.len() == 4 && digits(a.as_bytes()) && s.len() == 3 && digits(s.as_bytes())
        }
    }
}

/// Rules for one event kind: those gated on `proc.name` by name, the others in a list.
#[derive(Default, Clone)]
struct KindIndex {
    /// Rules without a `proc.name` gate (evaluated for every event of the kind).
    always: Vec<u32>,
    /// `proc.name` value -> rules that need it.
    by_name: FastMap<String, Vec<u32>>,
    total: usize,
}

/// An immutable set of compiled rules with a per-kind index (and within a kind, a
/// `proc.name` index for rules whose condition requires one of a set of names).
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    by_kind: Vec<KindIndex>,
    warnings: Vec<LoadWarning>,
}

impl RuleSet {
    pub(crate) fn new(rules: Vec<CompiledRule>, warnings: Vec<LoadWarning>) -> Self {
        let mut by_kind = vec![KindIndex::default(); EventKind::ALL.len()];
        for (i, r) in rules.iter().enumerate() {
            if !r.enabled {
                continue;
            }
            for k in r.kinds.kinds() {
                let idx = &mut by_kind[k as usize];
                idx.total += 1;
                match &r.proc_names {
                    Some(names) => {
                        for n in names {
                            let v = idx.by_name.entry(n.clone()).or_default();
                            if v.last() != Some(&(i as u32)) {
                                v.push(i as u32);
                            }
                        }
                    }
                    None => idx.always.push(i as u32),
                }
            }
        }
        Self {
            rules,
            by_kind,
            warnings,
        }
    }

    pub fn empty() -> Self {
        Self::new(Vec::new(), Vec::new())
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }

    /// Number of enabled rules evaluated for events of this kind.
    pub fn rules_for_kind(&self, k: EventKind) -> usize {
        self.by_kind[k as usize].total
    }

    /// Calls `f` for each enabled rule matching the event, in load order.
    pub fn for_each_match<'s>(&'s self, ctx: &EvalCtx<'_>, mut f: impl FnMut(&'s CompiledRule)) {
        let idx = &self.by_kind[ctx.ev.kind() as usize];
        let named: &[u32] = match ctx.ev.process.as_deref() {
            Some(p) if !idx.by_name.is_empty() => idx
                .by_name
                .get(p.comm.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]),
            _ => &[],
        };
        // Merge the two ascending lists to keep load order.
        let (mut a, mut b) = (idx.always.iter().peekable(), named.iter().peekable());
        loop {
            let i = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x <= y => {
                    a.next();
                    x
                }
                (_, Some(&&y)) => {
                    b.next();
                    y
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, None) => break,
            };
            let r = &self.rules[i as usize];
            if (r.predicate)(ctx) {
                f(r);
            }
        }
    }

    /// Names of the enabled rules that match.
    pub fn matching_rules(&self, ev: &Event) -> Vec<&str> {
        let ctx = EvalCtx::new(ev);
        let mut out = Vec::new();
        self.for_each_match(&ctx, |r| out.push(r.name.as_str()));
        out
    }

    /// Counts matches without building alerts (benchmarks, replay).
    pub fn count_matches(&self, ev: &Event) -> usize {
        let ctx = EvalCtx::new(ev);
        let mut n = 0;
        self.for_each_match(&ctx, |_| n += 1);
        n
    }

    /// Builds an un-aggregated alert for a rule that matched.
    pub fn alert_for(&self, rule: &CompiledRule, ctx: &EvalCtx<'_>, id: String) -> Alert {
        let out = rule.render(ctx);
        Alert {
            id,
            ts_ns: ctx.ev.ts_ns,
            first_ts_ns: ctx.ev.ts_ns,
            count: 1,
            rule: rule.name.clone(),
            priority: rule.priority,
            mitre: rule.mitre.clone(),
            tags: rule.tags.clone(),
            message: out.message,
            output_fields: out.fields,
            source: "syscall".into(),
            event: ctx.ev.clone(),
        }
    }
}

/// Why the engine refused a load.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no rule loaded; {} error(s), first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    NothingLoaded(Vec<LoadError>),
    #[error("reload refused, the running rules stay in place: {} error(s), first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    ReloadRefused(Vec<LoadError>),
}

/// The running detection engine: current rules (swapped atomically on reload) and
/// alert noise control.
pub struct RuleEngine {
    rules: ArcSwap<RuleSet>,
    noise: Mutex<NoiseControl>,
    paths: Mutex<Vec<PathBuf>>,
}

impl RuleEngine {
    /// Loads rules files; rules that fail are reported and the others run.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<(RuleEngine, Vec<LoadError>), EngineError> {
        Self::load_with(paths, NoiseConfig::default())
    }

    pub fn load_with<P: AsRef<Path>>(
        paths: &[P],
        noise: NoiseConfig,
    ) -> Result<(RuleEngine, Vec<LoadError>), EngineError> {
        let (set, errors) = load_files(paths);
        if set.rules().is_empty() && !errors.is_empty() {
            return Err(EngineError::NothingLoaded(errors));
        }
        Ok((Self::from_ruleset(set, noise, paths), errors))
    }

    pub fn from_ruleset<P: AsRef<Path>>(
        set: RuleSet,
        noise: NoiseConfig,
        paths: &[P],
    ) -> RuleEngine {
        RuleEngine {
            rules: ArcSwap::from_pointee(set),
            noise: Mutex::new(NoiseControl::new(noise)),
            paths: Mutex::new(paths.iter().map(|p| p.as_ref().to_path_buf()).collect()),
        }
    }

    /// Replaces the rules atomically. Any load error refuses the reload and keeps the
    /// running set; evaluation in other threads is never blocked.
    pub fn reload<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Arc<RuleSet>, EngineError> {
        let (set, errors) = load_files(paths);
        if !errors.is_empty() {
            return Err(EngineError::ReloadRefused(errors));
        }
        let set = Arc::new(set);
        self.rules.store(set.clone());
        if let Ok(mut p) = self.paths.lock() {
            *p = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        }
        Ok(set)
    }

    /// Reloads the files last loaded (SIGHUP).
    pub fn reload_same(&self) -> Result<Arc<RuleSet>, EngineError> {
        let paths = self.paths.lock().map(|p| p.clone()).unwrap_or_default();
        self.reload(&paths)
    }

    pub fn ruleset(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Evaluates one event: alerts to deliver now (first of a burst, and aggregates of
    /// windows that closed before this event's time).
    pub fn evaluate(&self, ev: &Event) -> Vec<Alert> {
        let set = self.rules.load();
        let ctx = EvalCtx::new(ev);
        let mut matched: Vec<&CompiledRule> = Vec::new();
        set.for_each_match(&ctx, |r| matched.push(r));
        let Ok(mut noise) = self.noise.lock() else {
            return Vec::new();
        };
        let mut out = noise.flush(ev.ts_ns);
        for r in matched {
            noise.offer(r, &ctx, &set, &mut out);
        }
        out
    }

    /// Closes aggregation windows that ended by `now_ns` (call on a timer).
    pub fn flush(&self, now_ns: u64) -> Vec<Alert> {
        self.noise
            .lock()
            .map(|mut n| n.flush(now_ns))
            .unwrap_or_default()
    }

    /// Closes every window (shutdown).
    pub fn flush_all(&self) -> Vec<Alert> {
        self.flush(u64::MAX)
    }
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field(
                "rules",
                &self
                    .rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("warnings", &self.warnings.len())
            .finish()
    }
}
