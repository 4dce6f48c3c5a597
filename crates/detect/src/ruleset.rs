//! Compiled rules indexed by event kind ([`RuleSet`], immutable) and the reloadable
//! [`RuleEngine`] that turns events into alerts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rampart_event::{Alert, Event, EventKind, Priority};

use crate::alerts::{NoiseConfig, NoiseControl};
use crate::compile::{Compiled, FastMap, KindSet};
use crate::fields::{Availability, EvalCtx};
use crate::loader::{load_files, LoadError, LoadWarning};
use crate::output::{OutputTemplate, RenderedOutput};
use crate::plan::GateField;
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
    compiled: Compiled,
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
            compiled,
            output,
            file,
            pos,
            tests,
            field_notes,
        }
    }

    /// Evaluates the condition alone (no kind index, ignores `enabled`).
    pub fn matches(&self, ctx: &EvalCtx<'_>) -> bool {
        self.compiled.matches(ctx)
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

/// Rules for one event kind, as bit sets over `rules` (load order): those that run
/// for every event of the kind, and per `proc.name` / `proc.exe` value those whose
/// condition needs that value.
#[derive(Default)]
struct KindIndex {
    rules: Vec<u32>,
    always: Box<[u64]>,
    by_name: FastMap<Box<str>, Box<[u64]>>,
    by_exe: FastMap<Box<str>, Box<[u64]>>,
    by_path_prefix: FastMap<Box<str>, Box<[u64]>>,
    by_file_name: FastMap<Box<str>, Box<[u64]>>,
    /// Rules gated on a path key (all of them run when an event has too many keys).
    path_gated: Box<[u64]>,
}

impl KindIndex {
    fn build(kind: EventKind, rules: &[CompiledRule]) -> Self {
        let members: Vec<u32> = rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.enabled && r.kinds.contains(kind))
            .map(|(i, _)| i as u32)
            .collect();
        let words = members.len().div_ceil(64);
        let empty = || vec![0u64; words].into_boxed_slice();
        let mut idx = KindIndex {
            always: empty(),
            path_gated: empty(),
            ..Default::default()
        };
        for (pos, &ri) in members.iter().enumerate() {
            let (w, bit) = (pos / 64, 1u64 << (pos % 64));
            match rules[ri as usize].compiled.gates[kind as usize].as_ref() {
                Some(gate) => {
                    for (field, values) in &gate.0 {
                        let map = match field {
                            GateField::ProcName => &mut idx.by_name,
                            GateField::ProcExe => &mut idx.by_exe,
                            GateField::PathPrefix => {
                                idx.path_gated[w] |= bit;
                                &mut idx.by_path_prefix
                            }
                            GateField::FileName => {
                                idx.path_gated[w] |= bit;
                                &mut idx.by_file_name
                            }
                        };
                        for v in values.iter() {
                            map.entry(v.as_str().into()).or_insert_with(empty)[w] |= bit;
                        }
                    }
                }
                None => idx.always[w] |= bit,
            }
        }
        idx.rules = members;
        idx
    }
}

/// An immutable set of compiled rules with a per-kind index (and within a kind, a
/// `proc.name` / `proc.exe` index for rules whose condition requires one of a set of
/// names).
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    by_kind: Vec<KindIndex>,
    warnings: Vec<LoadWarning>,
}

impl RuleSet {
    pub(crate) fn new(rules: Vec<CompiledRule>, warnings: Vec<LoadWarning>) -> Self {
        let by_kind = EventKind::ALL
            .iter()
            .map(|k| KindIndex::build(*k, &rules))
            .collect();
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
        self.by_kind[k as usize].rules.len()
    }

    /// Calls `f` for each enabled rule matching the event, in load order.
    pub fn for_each_match<'s>(&'s self, ctx: &EvalCtx<'_>, mut f: impl FnMut(&'s CompiledRule)) {
        let kind = ctx.ev.kind();
        let idx = &self.by_kind[kind as usize];
        let (mut named, mut by_exe): (Option<&[u64]>, Option<&[u64]>) = (None, None);
        if let Some(p) = ctx.ev.process.as_deref() {
            if !idx.by_name.is_empty() {
                named = idx.by_name.get(p.comm.as_str()).map(|b| &b[..]);
            }
            if !idx.by_exe.is_empty() {
                // Falco's proc.exe: argv[0] as invoked, else the executable path.
                let argv0 = p.argv.first().map(String::as_str).unwrap_or(&p.exe);
                by_exe = idx.by_exe.get(argv0).map(|b| &b[..]);
            }
        }
        // Path gates: every prefix of fd.name that ends before a `/`, the whole name,
        // and its last component.
        let mut path_hits: [&[u64]; 12] = [&[]; 12];
        let map_get = |m: &'s FastMap<Box<str>, Box<[u64]>>, k: &str| m.get(k).map(|b| &b[..]);
        let mut n_path = 0;
        let mut path_overflow = false;
        if !idx.by_path_prefix.is_empty() || !idx.by_file_name.is_empty() {
            if let Some(name) = ctx.fd_name() {
                let mut add = |b: Option<&'s [u64]>| {
                    if let Some(b) = b {
                        if n_path < path_hits.len() {
                            path_hits[n_path] = b;
                            n_path += 1;
                        } else {
                            path_overflow = true;
                        }
                    }
                };
                if !idx.by_path_prefix.is_empty() {
                    for (i, _) in name.match_indices('/').skip(1) {
                        add(map_get(&idx.by_path_prefix, &name[..i]));
                    }
                    add(map_get(&idx.by_path_prefix, name));
                }
                if !idx.by_file_name.is_empty() {
                    let base = name.rsplit('/').next().unwrap_or(name);
                    add(map_get(&idx.by_file_name, base));
                }
            }
        }
        for (w, &always) in idx.always.iter().enumerate() {
            let mut bits = always | named.map_or(0, |b| b[w]) | by_exe.map_or(0, |b| b[w]);
            for b in &path_hits[..n_path] {
                bits |= b[w];
            }
            if path_overflow {
                // More matching path keys than slots: run every path-gated rule
                // rather than risk missing one.
                bits |= idx.path_gated[w];
            }
            while bits != 0 {
                let pos = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let r = &self.rules[idx.rules[pos] as usize];
                if let Some(prog) = &r.compiled.progs[kind as usize] {
                    if prog.eval(ctx) {
                        f(r);
                    }
                }
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
