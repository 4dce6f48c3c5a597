//! Compiled rules indexed by event kind ([`RuleSet`], immutable); the reloadable engine
//! that runs them is [`crate::engine::RuleEngine`].

use std::sync::Arc;

use rampart_event::{Alert, Event, EventKind};

use crate::compile::FastMap;
use crate::diagnostic::LoadWarning;
use crate::fields::EvalCtx;
use crate::hostnames::{HostRegistry, HostTable, ResolveOptions};
use crate::plan::{GateField, SubField};
use crate::rule::CompiledRule;
use crate::users::{NoUsers, UserDirectory};
use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

/// A bit set over the rules of one kind.
type RuleBits = Box<[u64]>;

/// Rules for one event kind, as bit sets over `rules` (load order): those that run
/// for every event of the kind, per `proc.name` / `proc.exe` / path key those whose
/// condition needs that value, and per scanned field an automaton over the literals
/// some rule needs to find in it.
#[derive(Default)]
struct KindIndex {
    rules: Vec<u32>,
    always: Box<[u64]>,
    by_name: FastMap<Box<str>, Box<[u64]>>,
    by_exe: FastMap<Box<str>, Box<[u64]>>,
    by_path_prefix: PathTrie,
    by_file_name: FastMap<Box<str>, Box<[u64]>>,
    /// Per scanned field: the automaton of all literals and each literal's rules.
    by_literal: Vec<(SubField, DFA, Vec<RuleBits>)>,
}

/// Path keys by component: a key (`/etc/ssh`) holds for a path equal to it or below
/// it, so one walk down the path's components finds every key it has, stopping at the
/// first component no key continues with.
#[derive(Default)]
struct PathTrie {
    bits: Option<Box<[u64]>>,
    children: FastMap<Box<str>, PathTrie>,
}

impl PathTrie {
    fn insert(&mut self, key: &str, words: usize, w: usize, bit: u64) {
        // Keys are absolute (relative ones can never match a normalised fd.name).
        let Some(rest) = key.strip_prefix('/') else {
            return;
        };
        let mut node = self;
        for comp in rest.split('/') {
            node = node.children.entry(comp.into()).or_default();
        }
        node.bits
            .get_or_insert_with(|| vec![0u64; words].into_boxed_slice())[w] |= bit;
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    fn len(&self) -> usize {
        self.children
            .values()
            .map(|c| usize::from(c.bits.is_some()) + c.len())
            .sum()
    }
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
            ..Default::default()
        };
        let mut literals: Vec<(SubField, FastMap<String, RuleBits>)> = Vec::new();
        for (pos, &ri) in members.iter().enumerate() {
            let (w, bit) = (pos / 64, 1u64 << (pos % 64));
            let Some(gate) = rules[ri as usize].compiled.gates[kind as usize].as_ref() else {
                idx.always[w] |= bit;
                continue;
            };
            for (field, values) in &gate.0 {
                let map = match field {
                    GateField::ProcName => &mut idx.by_name,
                    GateField::ProcExe => &mut idx.by_exe,
                    GateField::PathPrefix => {
                        for v in values.iter() {
                            idx.by_path_prefix.insert(v, words, w, bit);
                        }
                        continue;
                    }
                    GateField::FileName => &mut idx.by_file_name,
                    GateField::Contains(sf) => {
                        let i = match literals.iter().position(|(f, _)| f == sf) {
                            Some(i) => i,
                            None => {
                                literals.push((*sf, FastMap::default()));
                                literals.len() - 1
                            }
                        };
                        for v in values.iter() {
                            literals[i].1.entry(v.clone()).or_insert_with(empty)[w] |= bit;
                        }
                        continue;
                    }
                };
                for v in values.iter() {
                    map.entry(v.as_str().into()).or_insert_with(empty)[w] |= bit;
                }
            }
        }
        for (sf, lits) in literals {
            let (pats, bits): (Vec<String>, Vec<Box<[u64]>>) = lits.into_iter().unzip();
            // Standard semantics: a match state reports every literal ending there,
            // so one pass finds all (overlapping) occurrences.
            let dfa = aho_corasick::dfa::Builder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .prefilter(false)
                .build(&pats);
            match dfa {
                Ok(ac) => idx.by_literal.push((sf, ac, bits)),
                // Cannot happen for a few hundred literals; if it did, the rules
                // gated on them run for every event rather than never.
                Err(_) => {
                    for b in bits {
                        for (a, x) in idx.always.iter_mut().zip(b.iter()) {
                            *a |= x;
                        }
                    }
                }
            }
        }
        idx.rules = members;
        idx
    }
}

/// Calls `on` with the id of every literal occurring in `hay`.
#[inline]
fn scan(dfa: &DFA, hay: Option<&str>, on: &mut impl FnMut(usize)) {
    if let Some(hay) = hay {
        scan_parts(dfa, std::iter::once(hay), on);
    }
}

/// Calls `on` with the id of every literal occurring in the concatenation of `parts`.
#[inline]
fn scan_parts<'a>(dfa: &DFA, parts: impl Iterator<Item = &'a str>, on: &mut impl FnMut(usize)) {
    let Ok(mut sid) = dfa.start_state(Anchored::No) else {
        return;
    };
    for part in parts {
        for &b in part.as_bytes() {
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) {
                if dfa.is_dead(sid) {
                    return;
                }
                if dfa.is_match(sid) {
                    for i in 0..dfa.match_len(sid) {
                        on(dfa.match_pattern(sid, i).as_usize());
                    }
                }
            }
        }
    }
}

/// An immutable set of compiled rules with a per-kind index (and within a kind, a
/// `proc.name` / `proc.exe` index for rules whose condition requires one of a set of
/// names).
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    by_kind: Vec<KindIndex>,
    warnings: Vec<LoadWarning>,
    hosts: Arc<HostTable>,
}

impl RuleSet {
    pub(crate) fn new(
        rules: Vec<CompiledRule>,
        warnings: Vec<LoadWarning>,
        hosts: Arc<HostTable>,
    ) -> Self {
        let by_kind = EventKind::ALL
            .iter()
            .map(|k| KindIndex::build(*k, &rules))
            .collect();
        Self {
            rules,
            by_kind,
            warnings,
            hosts,
        }
    }

    pub fn empty() -> Self {
        Self::new(
            Vec::new(),
            Vec::new(),
            Arc::new(HostRegistry::default().into_table(ResolveOptions::default())),
        )
    }

    /// Host names the conditions compare addresses with (`fd.sip.name = …`), with
    /// their current addresses; [`HostTable::refresh`] re-resolves them.
    pub fn hostnames(&self) -> &Arc<HostTable> {
        &self.hosts
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
        self.for_each_candidate(ctx, |ri| {
            let r = &self.rules[ri];
            if let Some(prog) = &r.compiled.progs[kind as usize] {
                if r.decide(prog.eval(ctx), ctx) {
                    f(r);
                }
            }
        });
    }

    /// [`RuleSet::for_each_match`] giving each matching rule's index into
    /// [`RuleSet::rules`].
    pub fn for_each_match_index(&self, ctx: &EvalCtx<'_>, mut f: impl FnMut(usize)) {
        let kind = ctx.ev.kind();
        self.for_each_candidate(ctx, |ri| {
            let r = &self.rules[ri];
            if let Some(prog) = &r.compiled.progs[kind as usize] {
                if r.decide(prog.eval(ctx), ctx) {
                    f(ri);
                }
            }
        });
    }

    /// Indices (into [`RuleSet::rules`]) of the rules the index selects for the
    /// event, in load order: the rules whose condition is evaluated (profiling).
    #[doc(hidden)]
    pub fn candidates(&self, ev: &Event) -> Vec<usize> {
        let mut out = Vec::new();
        self.for_each_candidate(&EvalCtx::new(ev), |ri| out.push(ri));
        out
    }

    /// How the index gates the rules of one kind (profiling): rules run for every
    /// event, and per gate field the number of keys or literals.
    #[doc(hidden)]
    pub fn index_summary(&self, k: EventKind) -> String {
        let idx = &self.by_kind[k as usize];
        let always: u32 = idx.always.iter().map(|w| w.count_ones()).sum();
        let mut out = format!(
            "{} rules, {always} ungated; keys: {} names, {} exes, {} path prefixes, {} file names",
            idx.rules.len(),
            idx.by_name.len(),
            idx.by_exe.len(),
            idx.by_path_prefix.len(),
            idx.by_file_name.len()
        );
        let ungated: Vec<&str> = idx
            .rules
            .iter()
            .enumerate()
            .filter(|(pos, _)| idx.always[pos / 64] & (1 << (pos % 64)) != 0)
            .map(|(_, &ri)| self.rules[ri as usize].name.as_str())
            .collect();
        if !ungated.is_empty() {
            out.push_str(&format!(" {ungated:?}"));
        }
        for (sf, dfa, bits) in &idx.by_literal {
            out.push_str(&format!(
                "; {sf:?}: {} literals ({} B DFA)",
                bits.len(),
                dfa.memory_usage()
            ));
        }
        out
    }

    /// Evaluates rule `ri`'s plan for the event's kind, as the index does (profiling).
    #[doc(hidden)]
    pub fn eval_rule(&self, ri: usize, ctx: &EvalCtx<'_>) -> bool {
        self.rules
            .get(ri)
            .and_then(|r| r.compiled.progs[ctx.ev.kind() as usize].as_ref())
            .is_some_and(|p| p.eval(ctx))
    }

    #[inline]
    fn for_each_candidate(&self, ctx: &EvalCtx<'_>, mut f: impl FnMut(usize)) {
        let kind = ctx.ev.kind();
        let idx = &self.by_kind[kind as usize];
        let words = idx.always.len();
        let mut inline = [0u64; 8];
        let mut heap = Vec::new();
        let bits: &mut [u64] = if words <= inline.len() {
            &mut inline[..words]
        } else {
            heap.resize(words, 0);
            &mut heap
        };
        bits.copy_from_slice(&idx.always);
        let or = |bits: &mut [u64], b: Option<&Box<[u64]>>| {
            if let Some(b) = b {
                for (a, x) in bits.iter_mut().zip(b.iter()) {
                    *a |= x;
                }
            }
        };
        if let Some(p) = ctx.ev.process.as_deref() {
            if !idx.by_name.is_empty() {
                or(bits, idx.by_name.get(p.comm.as_str()));
            }
            if !idx.by_exe.is_empty() {
                // Falco's proc.exe: argv[0] as invoked, else the executable path.
                let argv0 = p.argv.first().map(String::as_str).unwrap_or(&p.exe);
                or(bits, idx.by_exe.get(argv0));
            }
        }
        // Path keys: fd.name and the directories above it, and its last component.
        if !idx.by_path_prefix.is_empty() || !idx.by_file_name.is_empty() {
            if let Some(name) = ctx.fd_name() {
                if let (false, Some(rest)) = (idx.by_path_prefix.is_empty(), name.strip_prefix('/'))
                {
                    let mut node = &idx.by_path_prefix;
                    for comp in rest.split('/') {
                        let Some(n) = node.children.get(comp) else {
                            break;
                        };
                        or(bits, n.bits.as_ref());
                        node = n;
                    }
                }
                if !idx.by_file_name.is_empty() {
                    let base = name.rsplit('/').next().unwrap_or(name);
                    or(bits, idx.by_file_name.get(base));
                }
            }
        }
        for (sf, dfa, lit_bits) in &idx.by_literal {
            let mut on = |pid: usize| or(bits, lit_bits.get(pid));
            match sf {
                SubField::FdName => scan(dfa, ctx.fd_name(), &mut on),
                SubField::FdNameRaw => scan(dfa, ctx.fd_nameraw(), &mut on),
                // proc.cmdline is comm and the arguments joined by spaces: walked in
                // place rather than built.
                SubField::Cmdline => {
                    if let Some(p) = ctx.ev.process.as_deref() {
                        let args = p.argv.iter().skip(1);
                        let parts = std::iter::once(p.comm.as_str())
                            .chain(args.flat_map(|a| [" ", a.as_str()]));
                        scan_parts(dfa, parts, &mut on);
                    }
                }
                SubField::Exe => {
                    let p = ctx.ev.process.as_deref();
                    let argv0 = p.map(|p| p.argv.first().map(String::as_str).unwrap_or(&p.exe));
                    scan(dfa, argv0, &mut on);
                }
                SubField::ExePath => scan(
                    dfa,
                    ctx.ev.process.as_deref().map(|p| p.exe.as_str()),
                    &mut on,
                ),
                // Falco's proc.cwd ends with a `/`.
                SubField::Cwd => {
                    if let Some(p) = ctx.ev.process.as_deref() {
                        let slash = if p.cwd.ends_with('/') { "" } else { "/" };
                        scan_parts(dfa, [p.cwd.as_str(), slash].into_iter(), &mut on);
                    }
                }
            }
        }
        for (w, word) in bits.iter().enumerate() {
            let mut word = *word;
            while word != 0 {
                let pos = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                f(idx.rules[pos] as usize);
            }
        }
    }

    /// Names of the enabled rules that match, with no user directory (only uid 0 has
    /// a name).
    pub fn matching_rules(&self, ev: &Event) -> Vec<&str> {
        self.matching_rules_with(ev, &NoUsers)
    }

    /// Names of the enabled rules that match, `user.*` fields named from `users`.
    pub fn matching_rules_with(&self, ev: &Event, users: &dyn UserDirectory) -> Vec<&str> {
        let ctx = EvalCtx::with_users(ev, users);
        let mut out = Vec::new();
        self.for_each_match(&ctx, |r| out.push(r.name.as_str()));
        out
    }

    /// Names of the enabled rules whose condition matches through the kind index,
    /// without handing the event to any rule's stateful detector (tests of the index
    /// against a brute-force evaluation of every condition).
    #[doc(hidden)]
    pub fn matching_conditions(&self, ev: &Event) -> Vec<&str> {
        let ctx = EvalCtx::new(ev);
        let kind = ev.kind();
        let mut out = Vec::new();
        self.for_each_candidate(&ctx, |ri| {
            let r = &self.rules[ri];
            if let Some(prog) = &r.compiled.progs[kind as usize] {
                if prog.eval(&ctx) {
                    out.push(r.name.as_str());
                }
            }
        });
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
        rule.alert(ctx, id)
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
