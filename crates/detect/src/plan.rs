//! Per-kind evaluation plans.
//!
//! A condition compiles to a [`Node`] tree whose leaves are typed closures. Before it
//! runs, the tree is specialised once for each event kind: a leaf whose value is the
//! same for every event of the kind (an `evt.type` test, `evt.res` of an exec, a file
//! field on a process event) is decided on a probe event of that kind and folded
//! away, `and`/`or` are flattened and their operands ordered cheapest first. What is
//! left is a small [`Prog`] per kind, plus a gate (`proc.name`/`proc.exe` values the
//! rule needs) for the rule index.

use std::sync::{Arc, OnceLock};

use rampart_event::{Event, EventKind};

use crate::ast::{FieldRef, Op};
use crate::fields::{Availability, EvalCtx, Getter};
use crate::kinds::{evt_type_static_kinds, KindSet, Predicate};
use crate::probe::probe_event;

/// A compiled condition before specialisation.
#[derive(Clone)]
pub(crate) enum Node {
    Leaf(Arc<Leaf>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// One test on the event.
pub(crate) struct Leaf {
    pub eval: Predicate,
    /// Rough cost of one evaluation, for ordering `and`/`or` operands.
    pub cost: u32,
    /// Guessed probability that the leaf holds on an event of a kind it can match
    /// (tests for a value are rare, negations and inequalities common).
    pub p_true: f32,
    /// Kinds whose events all give this leaf the same value.
    pub static_kinds: KindSet,
    /// Kinds on which the leaf can hold at all.
    pub may_match: KindSet,
    /// When the leaf holds, the process has one of these names.
    pub gate: Option<Gate>,
}

impl Leaf {
    pub fn new(eval: Predicate, cost: u32, p_true: f32, static_kinds: KindSet) -> Self {
        Leaf {
            eval,
            cost,
            p_true,
            static_kinds,
            may_match: KindSet::ALL,
            gate: None,
        }
    }
}

/// Process identity fields indexed by the rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateField {
    /// `proc.name` (the kernel's comm).
    ProcName,
    /// `proc.exe` (argv[0] as invoked, else the executable path).
    ProcExe,
    /// A path prefix of `fd.name` ending at a `/` (`/etc/ssh` for
    /// `/etc/ssh/sshd_config`), or the whole name.
    PathPrefix,
    /// The last component of `fd.name`.
    FileName,
    /// A substring of the field's value, ASCII case-insensitively (the index runs one
    /// automaton per field over all the rules' literals).
    Contains(SubField),
}

/// Strings the rule index scans for literals ([`GateField::Contains`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubField {
    /// `fd.name` (also standing for `fd.directory`, `fd.filename` and `fs.path.name`,
    /// whose values are substrings of it).
    FdName,
    /// `fd.nameraw`: the path as the process passed it.
    FdNameRaw,
    /// `proc.cmdline` (also standing for `proc.args` and `proc.name`, substrings of
    /// it).
    Cmdline,
    /// `proc.exe`: argv[0] as invoked, else the executable path.
    Exe,
    /// `proc.exepath`.
    ExePath,
    /// `proc.cwd` (with its trailing `/`).
    Cwd,
}

/// A necessary condition: the rule can hold only if one of these fields has one of
/// the listed values (for [`GateField::Contains`], contains one of them). An empty
/// gate never opens.
#[derive(Debug, Clone, Default)]
pub struct Gate(pub Vec<(GateField, Arc<[String]>)>);

impl Gate {
    /// How often the gate is expected to open, roughly (smaller is more selective):
    /// an exact name rarely matches, a short path prefix or a short literal often.
    fn weight(&self) -> f32 {
        self.0
            .iter()
            .map(|(f, vals)| {
                vals.iter()
                    .map(|v| {
                        let len = v.len().max(1) as f32;
                        match f {
                            GateField::ProcName | GateField::ProcExe | GateField::FileName => 1.0,
                            GateField::PathPrefix => 1.0 + 8.0 / len,
                            GateField::Contains(_) => 2.0 + 16.0 / len,
                        }
                    })
                    .sum::<f32>()
            })
            .sum()
    }
}

/// A specialised condition, evaluated by a small match over the tree; the leaves are
/// the compiled closures.
pub(crate) enum Prog {
    Const(bool),
    Leaf(Arc<Leaf>),
    And(Box<[Prog]>),
    Or(Box<[Prog]>),
    Not(Box<Prog>),
}

impl Prog {
    #[inline]
    pub fn eval(&self, ctx: &EvalCtx<'_>) -> bool {
        match self {
            Prog::Leaf(l) => (l.eval)(ctx),
            Prog::And(ps) => ps.iter().all(|p| p.eval(ctx)),
            Prog::Or(ps) => ps.iter().any(|p| p.eval(ctx)),
            Prog::Not(p) => !p.eval(ctx),
            Prog::Const(b) => *b,
        }
    }

    /// Expected cost of one evaluation, given the operands' order.
    fn cost(&self) -> f32 {
        match self {
            Prog::Const(_) => 0.0,
            Prog::Leaf(l) => l.cost as f32,
            Prog::Not(p) => p.cost(),
            // An operand runs only when the ones before it did not decide.
            Prog::And(ps) => {
                let (mut cost, mut reach) = (0.0, 1.0);
                for p in ps.iter() {
                    cost += reach * p.cost();
                    reach *= p.p_true();
                }
                cost
            }
            Prog::Or(ps) => {
                let (mut cost, mut reach) = (0.0, 1.0);
                for p in ps.iter() {
                    cost += reach * p.cost();
                    reach *= 1.0 - p.p_true();
                }
                cost
            }
        }
    }

    fn p_true(&self) -> f32 {
        match self {
            Prog::Const(b) => f32::from(u8::from(*b)),
            Prog::Leaf(l) => l.p_true,
            Prog::Not(p) => 1.0 - p.p_true(),
            Prog::And(ps) => ps.iter().map(Prog::p_true).product(),
            Prog::Or(ps) => 1.0 - ps.iter().map(|p| 1.0 - p.p_true()).product::<f32>(),
        }
    }

    /// Values of `proc.name`/`proc.exe` the program needs to hold, if it implies a set.
    pub fn gate(&self) -> Option<Gate> {
        match self {
            Prog::Const(false) => Some(Gate::default()),
            Prog::Const(true) | Prog::Not(_) => None,
            Prog::Leaf(l) => l.gate.clone(),
            Prog::And(ps) => ps
                .iter()
                .filter_map(Prog::gate)
                .min_by(|a, b| a.weight().total_cmp(&b.weight())),
            Prog::Or(ps) => {
                let mut all = Gate::default();
                for p in ps.iter() {
                    all.0.extend(p.gate()?.0);
                }
                Some(all)
            }
        }
    }
}

/// One probe event per kind (None where no default event of the kind can be built):
/// a leaf that is static for a kind has the probe's value on every event of it.
fn probes() -> &'static [Option<Event>] {
    static PROBES: OnceLock<Vec<Option<Event>>> = OnceLock::new();
    PROBES.get_or_init(|| EventKind::ALL.iter().map(|k| probe_event(*k)).collect())
}

/// Specialises `node` for events of kind `k`: static leaves folded, `and`/`or`
/// flattened and ordered by cost. `Prog::Const(false)`: the rule cannot match `k`.
pub(crate) fn specialize(node: &Node, k: EventKind) -> Prog {
    let probe = probes().get(k as usize).and_then(Option::as_ref);
    spec(node, k, probe)
}

fn spec(node: &Node, k: EventKind, probe: Option<&Event>) -> Prog {
    match node {
        Node::Leaf(l) => {
            if !l.may_match.contains(k) {
                return Prog::Const(false);
            }
            match probe {
                Some(ev) if l.static_kinds.contains(k) => Prog::Const((l.eval)(&EvalCtx::new(ev))),
                _ => Prog::Leaf(l.clone()),
            }
        }
        Node::Not(inner) => match spec(inner, k, probe) {
            Prog::Const(b) => Prog::Const(!b),
            Prog::Not(p) => *p,
            p => Prog::Not(Box::new(p)),
        },
        Node::And(items) => junction(items, k, probe, true),
        Node::Or(items) => junction(items, k, probe, false),
    }
}

/// `and` (`all`) or `or`: the absorbing constant decides, the neutral one drops out.
fn junction(items: &[Node], k: EventKind, probe: Option<&Event>, all: bool) -> Prog {
    let mut out: Vec<Prog> = Vec::with_capacity(items.len());
    for i in items {
        match spec(i, k, probe) {
            Prog::Const(b) if b == all => {}
            Prog::Const(_) => return Prog::Const(!all),
            Prog::And(ps) if all => out.extend(ps.into_vec()),
            Prog::Or(ps) if !all => out.extend(ps.into_vec()),
            p => out.push(p),
        }
    }
    // Operands are pure, so their order is free. For independent operands the
    // expected cost is least when `and` runs them by cost / P(false) and `or` by
    // cost / P(true), ascending (stable: ties keep the rule author's order).
    let rank = |p: &Prog| {
        let decides = if all { 1.0 - p.p_true() } else { p.p_true() };
        p.cost() / decides.max(1e-3)
    };
    out.sort_by(|a, b| rank(a).total_cmp(&rank(b)));
    match out.len() {
        0 => Prog::Const(all),
        1 => out.pop().unwrap_or(Prog::Const(all)),
        _ if all => Prog::And(out.into_boxed_slice()),
        _ => Prog::Or(out.into_boxed_slice()),
    }
}

fn kinds(ks: &[EventKind]) -> KindSet {
    KindSet(ks.iter().fold(0, |m, k| m | KindSet::bit(*k)))
}

/// Kinds without a file or socket: every `fd.*` field is absent on their events.
fn no_fd_kinds() -> KindSet {
    use EventKind::*;
    kinds(&[
        Exec,
        Fork,
        Exit,
        SetId,
        Capset,
        Ptrace,
        ProcessVm,
        Mount,
        Umount,
        Namespace,
        Bpf,
        Lost,
        ExecFailed,
        ProcessRename,
        Chroot,
    ])
}

/// Kinds on whose events `field` always has the same value (absent, or a constant
/// given by the payload's variant). Only fields computed from the payload's variant
/// are listed; anything else is dynamic everywhere. `tests::static_fields_hold`
/// checks the table against real events.
pub(crate) fn field_static_kinds(f: &FieldRef) -> KindSet {
    use EventKind::*;
    // (A transformer is a function of the value: a static field stays static.)
    if let Ok(r) = crate::fields::resolve(f) {
        if matches!(r.availability, Availability::NotProvided(_)) {
            return KindSet::ALL;
        }
    }
    let name = f.name.as_str();
    match name {
        "evt.type" | "syscall.type" => evt_type_static_kinds(),
        "evt.dir" | "evt.category" | "evt.source" | "evt.count" | "evt.is_open_exec" => {
            KindSet::ALL
        }
        "evt.is_open_read" | "evt.is_open_write" | "evt.is_open_create" => {
            KindSet(KindSet::ALL.0 & !KindSet::bit(FileOpen))
        }
        "evt.res" | "evt.rawres" | "evt.failed" => kinds(&[Exec, DnsQuery, Exit, Lost]),
        "fd.name" | "fd.nameraw" | "fd.directory" | "fd.filename" | "fs.path.name"
        | "fs.path.nameraw" | "fs.path.source" | "fs.path.sourceraw" | "fs.path.target"
        | "fs.path.targetraw" | "fd.type" | "fd.types" | "fd.typechar" | "fd.num"
        | "fd.l4proto" | "fd.sockfamily" | "fd.connected" | "fd.name_changed" | "fd.sip"
        | "fd.snet" | "fd.cip" | "fd.cnet" | "fd.lip" | "fd.lnet" | "fd.rip" | "fd.rnet"
        | "fd.ip" | "fd.net" | "fd.sport" | "fd.cport" | "fd.lport" | "fd.rport" | "fd.port" => {
            no_fd_kinds()
        }
        _ => KindSet::NONE,
    }
}

/// Rough cost of reading a field (relative units).
pub(crate) fn field_cost(f: &FieldRef, getter: &Getter) -> u32 {
    let base = match f.name.as_str() {
        "evt.type" | "syscall.type" | "evt.dir" | "evt.category" => 1,
        // Built strings (cached per event, but the first reader pays).
        "proc.cmdline" | "proc.args" | "proc.pcmdline" | "proc.cwd" => 12,
        "proc.acmdline"
        | "evt.args"
        | "evt.time"
        | "evt.time.iso8601"
        | "evt.datetime"
        | "evt.time.s"
        | "thread.cap_effective"
        | "thread.cap_permitted"
        | "thread.cap_inheritable" => 40,
        "user.name" | "user.homedir" | "user.shell" | "group.name" | "user.loginname" => 8,
        "fd.name" | "fd.nameraw" | "fd.directory" | "fd.filename" | "fs.path.name" => 4,
        n if n.starts_with("evt.arg") || n.starts_with("evt.rawarg") => 10,
        _ => 2,
    };
    let base = if f.transformer.is_some() {
        base + 20
    } else {
        base
    };
    match getter {
        // Every ancestor.
        Getter::StrAny(_) => base * 4,
        _ => base,
    }
}

/// Guessed probability that a test holds (for ordering): a test for given values
/// rarely holds, an inequality or existence test usually does.
pub(crate) fn op_p_true(op: Op, ty: crate::fields::FieldType) -> f32 {
    use crate::fields::FieldType as T;
    match (op, ty) {
        (Op::Ne | Op::Exists, _) => 0.9,
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, _) => 0.5,
        (_, T::Bool) => 0.5,
        (_, T::Int | T::Ip) => 0.2,
        (_, T::Str) => 0.1,
    }
}

/// Rough cost of an operator on a read value (relative units).
pub(crate) fn op_cost(op: Op, n_values: usize) -> u32 {
    match op {
        Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Exists => 1,
        Op::StartsWith | Op::EndsWith | Op::BStartsWith => 2,
        Op::In | Op::Intersects => {
            if n_values <= 1 {
                2
            } else {
                4
            }
        }
        Op::Contains => 8,
        Op::Pmatch | Op::Glob => 15,
        Op::IContains | Op::BContains => 20,
        Op::IGlob => 40,
        Op::Regex => 60,
    }
}

/// The path-prefix key a path starting with `prefix` surely has: `prefix` cut at its
/// last `/` (`/etc/cron.` -> `/etc`, `/etc/ssl/private/` -> `/etc/ssl/private`).
/// `None` when that leaves the root, which every path has.
fn dir_key(prefix: &str) -> Option<String> {
    let cut = prefix.rfind('/')?;
    (cut > 0).then(|| prefix[..cut].to_string())
}

/// Keys of a whole path value (`fd.name = /etc/shadow`, `fd.directory = /etc/pam.d`):
/// the value itself, without a trailing `/`. `None` for the root or a relative value.
fn path_key(v: &str) -> Option<String> {
    let v = v.trim_end_matches('/');
    (v.starts_with('/') && v.len() > 1).then(|| v.to_string())
}

/// A gate for a string test on a path field (`fd.name`, `fd.directory`,
/// `fd.filename`) with the given operator and values, when it implies one.
pub(crate) fn path_gate(f: &FieldRef, op: Op, values: &[String]) -> Option<Gate> {
    if f.arg.is_some() || f.transformer.is_some() || values.is_empty() {
        return None;
    }
    let keys: Option<Vec<String>> = match (f.name.as_str(), op) {
        ("fd.name", Op::Eq | Op::In | Op::Intersects) => {
            values.iter().map(|v| path_key(v)).collect()
        }
        // fd.directory is fd.name's parent: the directory is a prefix of the name.
        ("fd.directory", Op::Eq | Op::In | Op::Intersects | Op::Pmatch)
        | ("fd.name", Op::Pmatch) => values.iter().map(|v| path_key(v)).collect(),
        ("fd.name" | "fd.directory", Op::StartsWith) => values.iter().map(|v| dir_key(v)).collect(),
        ("fd.name", Op::Glob) => values
            .iter()
            .map(|v| {
                let lit = v
                    .find(['*', '?', '[', '\\'])
                    .map_or(v.as_str(), |i| &v[..i]);
                // Without a wildcard the glob is the whole name.
                if lit.len() == v.len() {
                    path_key(v)
                } else {
                    dir_key(lit)
                }
            })
            .collect(),
        ("fd.filename", Op::Eq | Op::In | Op::Intersects) => {
            return Some(Gate(vec![(GateField::FileName, values.to_vec().into())]));
        }
        _ => None,
    };
    Some(Gate(vec![(GateField::PathPrefix, keys?.into())]))
}

/// A gate for a positive string test (`field op values`) on a field whose value is a
/// substring of one the index scans: each value, or the longest literal run of a
/// glob, must occur in it. `None` when a value gives no literal to look for.
pub(crate) fn substr_gate(f: &FieldRef, op: Op, values: &[String]) -> Option<Gate> {
    if f.arg.is_some() || f.transformer.is_some() || values.is_empty() {
        return None;
    }
    let field = match f.name.as_str() {
        "fd.name" | "fs.path.name" | "fd.directory" | "fd.filename" => SubField::FdName,
        "fd.nameraw" => SubField::FdNameRaw,
        "proc.cmdline" | "proc.args" | "proc.name" => SubField::Cmdline,
        "proc.exe" => SubField::Exe,
        "proc.exepath" => SubField::ExePath,
        "proc.cwd" => SubField::Cwd,
        _ => return None,
    };
    let lits: Option<Vec<String>> = match op {
        Op::Eq
        | Op::In
        | Op::Intersects
        | Op::Contains
        | Op::IContains
        | Op::StartsWith
        | Op::EndsWith => values.iter().map(|v| Some(v.clone())).collect(),
        // `pmatch` holds for the value itself or a path below it; `/` for all.
        Op::Pmatch => values
            .iter()
            .map(|v| {
                let v = v.trim_end_matches('/');
                (!v.is_empty()).then(|| v.to_string())
            })
            .collect(),
        Op::Glob => values.iter().map(|v| glob_literal(v)).collect(),
        // `iglob` lowercases with Unicode rules: only ASCII literals fold the same.
        Op::IGlob => values
            .iter()
            .map(|v| glob_literal(v).filter(|l| l.is_ascii()))
            .collect(),
        _ => None,
    };
    let lits = lits?;
    if lits.iter().any(String::is_empty) {
        return None;
    }
    Some(Gate(vec![(GateField::Contains(field), lits.into())]))
}

/// The longest run of literal characters of a glob (outside `*`, `?` and `[…]`),
/// which every match contains. `None` when there is none.
fn glob_literal(pat: &str) -> Option<String> {
    let b = pat.as_bytes();
    let (mut best, mut start, mut i) = ((0, 0), 0, 0);
    let close = |start: usize, end: usize, best: &mut (usize, usize)| {
        if end - start > best.1 - best.0 {
            *best = (start, end);
        }
    };
    while i < b.len() {
        match b[i] {
            b'*' | b'?' => {
                close(start, i, &mut best);
                i += 1;
                start = i;
            }
            b'[' => {
                close(start, i, &mut best);
                // A class spans to its `]` (a `]` right after `[` or `[!` is part
                // of it); without one, stop: what follows is not safely literal.
                let mut j = i + 1;
                if matches!(b.get(j), Some(b'!' | b'^')) {
                    j += 1;
                }
                if b.get(j) == Some(&b']') {
                    j += 1;
                }
                match b[j.min(b.len())..].iter().position(|&c| c == b']') {
                    Some(k) => {
                        i = j + k + 1;
                        start = i;
                    }
                    None => {
                        start = b.len();
                        i = b.len();
                    }
                }
            }
            _ => i += 1,
        }
    }
    close(start.min(b.len()), b.len(), &mut best);
    let lit = pat.get(best.0..best.1)?;
    (!lit.is_empty()).then(|| lit.to_string())
}

/// Fields the rule index can look up directly.
pub(crate) fn gate_field(f: &FieldRef) -> Option<GateField> {
    if f.arg.is_some() || f.transformer.is_some() {
        return None;
    }
    match f.name.as_str() {
        "proc.name" => Some(GateField::ProcName),
        "proc.exe" => Some(GateField::ProcExe),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE_FIELDS: &[&str] = &[
        "evt.type",
        "evt.dir",
        "evt.category",
        "evt.source",
        "evt.count",
        "evt.is_open_exec",
        "evt.is_open_read",
        "evt.is_open_write",
        "evt.is_open_create",
        "evt.res",
        "evt.rawres",
        "evt.failed",
        "fd.name",
        "fd.nameraw",
        "fd.directory",
        "fd.filename",
        "fs.path.name",
        "fs.path.nameraw",
        "fs.path.source",
        "fs.path.target",
        "fd.type",
        "fd.types",
        "fd.typechar",
        "fd.num",
        "fd.l4proto",
        "fd.sockfamily",
        "fd.connected",
        "fd.name_changed",
        "fd.sip",
        "fd.snet",
        "fd.cip",
        "fd.lip",
        "fd.rip",
        "fd.ip",
        "fd.sport",
        "fd.cport",
        "fd.lport",
        "fd.rport",
        "fd.port",
    ];

    /// Events of every kind with varied payloads: the in-file tests of the rule
    /// library plus generated variations.
    fn sample_events() -> Vec<Event> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
        let (set, _) = crate::load_files(&[dir]);
        let mut out: Vec<Event> = set
            .rules()
            .iter()
            .flat_map(|r| r.tests.should_fire.iter().chain(&r.tests.should_not_fire))
            .filter_map(|s| crate::tests_format::build_event(s).ok())
            .collect();
        let variants = [
            serde_json::json!({"kind": "exec", "data": {"filename": "/memfd:x", "from_memfd": true}}),
            serde_json::json!({"kind": "exit", "data": {"code": 3}}),
            serde_json::json!({"kind": "dns_query", "data": {"query": "a.b", "qtype": 28, "server": {"family": "inet6", "ip": "::1", "port": 5353}}}),
            serde_json::json!({"kind": "lost", "data": {"source": "user", "count": 9}}),
            serde_json::json!({"kind": "fork", "data": {"child_pid": 5, "child_exec_id": "x"}}),
            serde_json::json!({"kind": "set_id", "data": {"call": "setresgid", "args": [1, 2, 3], "ret": -1}}),
            serde_json::json!({"kind": "namespace", "data": {"call": "setns", "flags": 1073741824, "ret": -1}}),
            serde_json::json!({"kind": "mount", "data": {"source": "/dev/sda1", "target": "/host", "fstype": "ext4", "flags": 1, "ret": -1}}),
            serde_json::json!({"kind": "ptrace", "data": {"request": 0, "target_pid": 9, "ret": -1}}),
            serde_json::json!({"kind": "bpf", "data": {"cmd": 0, "ret": -1}}),
            serde_json::json!({"kind": "capset", "data": {"effective": 255, "permitted": 255, "inheritable": 0, "ret": -1}}),
            serde_json::json!({"kind": "proc_mem_write", "data": {"path": "relative/mem", "target_pid": 3, "ret": -13}}),
        ];
        out.extend(
            variants
                .iter()
                .filter_map(|v| crate::tests_format::build_event(v).ok()),
        );
        out
    }

    #[test]
    fn static_fields_hold() {
        let events = sample_events();
        let mut checked = 0;
        for name in TABLE_FIELDS {
            let f = FieldRef {
                name: (*name).into(),
                arg: None,
                transformer: None,
                pos: 0,
            };
            let getter = crate::fields::resolve(&f).expect("known field").getter;
            let statics = field_static_kinds(&f);
            for ev in &events {
                let k = ev.kind();
                if !statics.contains(k) {
                    continue;
                }
                let Some(probe) = probes()[k as usize].as_ref() else {
                    continue;
                };
                let want = getter.render(&EvalCtx::new(probe));
                let got = getter.render(&EvalCtx::new(ev));
                assert_eq!(got, want, "{name} on {k:?} is not static: {ev:?}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} checks");
    }

    #[test]
    fn probes_exist_for_every_kind_the_tests_use() {
        for ev in sample_events() {
            assert!(
                probes()[ev.kind() as usize].is_some(),
                "no probe for {:?}",
                ev.kind()
            );
        }
    }
}
